"""Job arguments as stored in a record: JSON, secrets masked, size-capped."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from apps.tasks.masking import mask_text, mask_value


def mask_secrets(value: Any, secret_keys: Iterable[str]) -> tuple[Any, bool]:
    """Return ``value`` masked by the one policy (``apps.tasks.masking``), and whether anything was."""
    return mask_value(value, secret_keys)


def stored_arguments(args: Any, kwargs: Any, *, secret_keys: Iterable[str], max_bytes: int) -> tuple[str, str, bool]:
    """``(args_json, kwargs_json, complete)`` to store; ``complete`` is False if anything was masked or cut."""
    args, kwargs = list(args or ()), dict(kwargs or {})
    if kwargs or any(isinstance(item, dict | list | tuple | str) for item in args):
        (args, kwargs), masked = mask_secrets([args, kwargs], secret_keys)
    else:
        masked = False
    args_json = json.dumps(args, default=str, separators=(",", ":"))
    kwargs_json = json.dumps(kwargs, default=str, separators=(",", ":"))
    size = len(args_json) + len(kwargs_json)
    if size > max_bytes:
        text, length = args_json + " " + kwargs_json, max_bytes
        while True:  # escaping can grow the preview: shrink it until the whole marker fits
            marker = json.dumps({"truncated": True, "size": size, "preview": text[:length]})
            if len(marker) <= max_bytes:
                return marker, "{}", False
            length = length * 3 // 4
    return args_json, kwargs_json, not masked


def stored_result(result: Any, max_bytes: int, secret_keys: Iterable[str] | None = None) -> tuple[Any, Any]:
    """A task's return value as a record shows it (JSON, secrets masked, or a marker when too large
    or not serialisable) and the exact JSON value when that display copy differs from it (else None)."""
    if result is None:
        return None, None
    try:
        text = json.dumps(result, separators=(",", ":"))
    except (TypeError, ValueError):
        return {"unserializable": True, "repr": mask_text(repr(result)[:max_bytes])}, None
    exact = json.loads(text)
    if len(text) > max_bytes:
        return {"truncated": True, "size": len(text)}, exact
    shown, masked = mask_value(exact, secret_keys)
    return shown, (exact if masked else None)
