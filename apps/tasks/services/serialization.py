"""Job arguments as stored in a record: JSON, secrets masked, size-capped."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MASK = "***"


def mask_secrets(value: Any, secret_keys: Iterable[str]) -> tuple[Any, bool]:
    """Return ``value`` with dict entries whose key names a secret replaced, and whether any was."""
    lowered = tuple(key.lower() for key in secret_keys)
    masked_any = False

    def walk(item: Any) -> Any:
        nonlocal masked_any
        if isinstance(item, dict):
            out = {}
            for key, inner in item.items():
                if isinstance(key, str) and any(secret in key.lower() for secret in lowered):
                    out[key] = MASK
                    masked_any = True
                else:
                    out[key] = walk(inner)
            return out
        if isinstance(item, list | tuple):
            return [walk(inner) for inner in item]
        return item

    return walk(value), masked_any


def stored_arguments(
    args: Any, kwargs: Any, *, secret_keys: Iterable[str], max_bytes: int
) -> tuple[Any, dict[str, Any], bool]:
    """``(args, kwargs, complete)`` to store; ``complete`` is False if anything was masked or cut."""
    (args, kwargs), masked = mask_secrets([list(args or ()), dict(kwargs or {})], secret_keys)
    text = json.dumps([args, kwargs], default=str, separators=(",", ":"))
    if len(text) > max_bytes:
        preview = text[: max(0, max_bytes - 200)]
        return {"truncated": True, "size": len(text), "preview": preview}, {}, False
    if masked:
        return args, kwargs, False
    # default=str above may have changed values: store exactly what was measured.
    args, kwargs = json.loads(text)
    return args, kwargs, True


def stored_result(result: Any, max_bytes: int) -> Any:
    """A task's return value as JSON, or a marker when it is too large or not serialisable."""
    if result is None:
        return None
    try:
        text = json.dumps(result, separators=(",", ":"))
    except (TypeError, ValueError):
        return {"unserializable": True, "repr": repr(result)[:max_bytes]}
    if len(text) > max_bytes:
        return {"truncated": True, "size": len(text)}
    return json.loads(text)
