"""The exact copy a record keeps when its display copy is not exact.

A record shows its arguments and return value masked (apps.tasks.masking) and capped
(``record_args_max_bytes``). When that display copy differs from the real value, the record also
keeps the exact value, encrypted (Fernet, with a key derived from ``SECRET_KEY``; keys of
``SECRET_KEY_FALLBACKS`` still decrypt), so that the record stays an outbox the reconciler and
retry can re-send from, and Django Tasks' ``get_result`` returns exact results, while no secret
sits in the records table in clear.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_CONTEXT = b"apps.tasks.records.payload"


def _fernet_key(secret: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(_CONTEXT + secret.encode()).digest())


@lru_cache(maxsize=8)
def _keys(secret: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(key)) for key in (secret, *fallbacks)])


def _fernet() -> MultiFernet:
    from django.conf import settings

    return _keys(settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ())))


def seal(value: Any) -> str:
    """``value`` as encrypted JSON text."""
    return _fernet().encrypt(json.dumps(value, separators=(",", ":"), default=str).encode()).decode()


def unseal(text: str) -> Any:
    """The value ``seal`` made; LookupError when there is none or it cannot be decrypted (another SECRET_KEY)."""
    if not text:
        raise LookupError("the record keeps no exact copy")
    try:
        return json.loads(_fernet().decrypt(text.encode()))
    except InvalidToken:
        raise LookupError("the record's exact copy was encrypted with another SECRET_KEY") from None


def exact_arguments(record: Any) -> tuple[list, dict]:
    """A record's arguments as sent: its display copy when that is exact, else the sealed copy
    (LookupError when neither holds them)."""
    if record.args_complete:
        return list(record.args), dict(record.kwargs)
    value = unseal(record.payload)
    return list(value["args"]), dict(value["kwargs"])


def exact_result(record: Any) -> Any:
    """A record's return value as returned: the sealed copy when the display copy is not exact."""
    return unseal(record.result_payload) if record.result_payload else record.result
