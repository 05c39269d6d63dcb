"""The one masking policy: what counts as a secret, and how it is hidden on every way out.

Every output of the task layer passes through here: log lines (``apps.tasks.logging``), job
records and their events (error text and tracebacks, arguments), dead letters, the API, the
admin, the dashboard, the commands' output and Django's DEBUG error page
(``apps.tasks.debug.TaskExceptionReporterFilter``).

A *secret key* is a key (a keyword argument, a dict key, a ``name=value`` in text) one of whose
words is in ``TASK_CONFIG.secret_arg_keys`` (default: password, passwd, secret, token, api_key,
apikey, authorization). Keys are split into words at ``_ - .`` and camelCase, so ``api_token``,
``X-Api-Key``, ``clientSecret`` and ``PASSWORD2`` are secret while ``tokenizer`` and
``secretary`` are not (whole words, not substrings). In free text, the values of such keys
(``password='…'``, ``"api_token": "…"``, ``token=…``), ``Bearer …`` credentials and the passwords of
URLs (``redis://:…@host``) become ``***``.

Stdlib only at import time: ``project/settings.py`` imports the logging module, which imports this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

MASK = "***"
#: The words of TaskConfig.secret_arg_keys' default (kept here so logging works before settings load).
DEFAULT_SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "authorization")

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
_BEARER = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}", re.IGNORECASE)
# name=value, name: value, 'name': 'value', "name"="value" …; the value quoted or up to a delimiter.
_PAIR = re.compile(
    r"""(?P<quote>["']?)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)(?P=quote)(?P<sep>\s*[=:]\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;&)}\]'"]+)"""
)


def key_words(key: str) -> list[str]:
    """The lower-case words of a key: ``X-Api-Key`` → ``['x', 'api', 'key']``."""
    return [word.lower() for word in _WORD.findall(key)]


@lru_cache(maxsize=4096)
def _is_secret(key: str, words: tuple[str, ...]) -> bool:
    parts = key_words(key)
    wanted = {word.lower().replace("-", "_") for word in words}
    for start in range(len(parts)):
        for end in range(start + 1, min(start + 3, len(parts)) + 1):
            span = parts[start:end]
            if "_".join(span) in wanted or "".join(span) in wanted:
                return True
    return False


def secret_words() -> tuple[str, ...]:
    """``TASK_CONFIG.secret_arg_keys`` once settings are loaded, else the defaults."""
    from django.conf import settings

    if not settings.configured:
        return DEFAULT_SECRET_WORDS
    try:
        from apps.tasks.config import get_task_config

        return tuple(get_task_config().secret_arg_keys)
    except Exception:  # settings still loading (a log line from settings.py itself)
        return DEFAULT_SECRET_WORDS


def is_secret_key(key: str, words: Iterable[str] | None = None) -> bool:
    """Whether ``key`` names a secret (see the module docstring)."""
    return _is_secret(key, tuple(words) if words is not None else secret_words())


def mask_value(value: Any, words: Iterable[str] | None = None) -> tuple[Any, bool]:
    """``value`` with the entries of dicts (at any depth) whose key names a secret replaced by ***,
    and strings masked as text; and whether anything was masked."""
    words = tuple(words) if words is not None else secret_words()
    masked_any = False

    def walk(item: Any) -> Any:
        nonlocal masked_any
        if isinstance(item, dict):
            out = {}
            for key, inner in item.items():
                if isinstance(key, str) and _is_secret(key, words):
                    out[key] = MASK
                    masked_any = True
                else:
                    out[key] = walk(inner)
            return out
        if isinstance(item, list | tuple):
            return [walk(inner) for inner in item]
        if isinstance(item, str) and ("=" in item or ":" in item or " " in item):
            text = mask_text(item, words)
            masked_any = masked_any or text != item
            return text
        return item

    return walk(value), masked_any


def mask_text(text: str, words: Iterable[str] | None = None) -> str:
    """``text`` (an error message, a traceback, a log line, a repr) with secrets replaced by ***."""
    if not text:
        return text
    words = tuple(words) if words is not None else secret_words()
    text = _URL_USERINFO.sub(rf"\1{MASK}@", text)
    text = _BEARER.sub(lambda match: f"{match.group(1)} {MASK}", text)

    def pair(match: re.Match) -> str:
        if not _is_secret(match.group("key"), words):
            return match.group(0)
        value = match.group("value")
        shown = f"{value[0]}{MASK}{value[0]}" if value[:1] in ("'", '"') else MASK
        quote = match.group("quote")
        return f"{quote}{match.group('key')}{quote}{match.group('sep')}{shown}"

    return _PAIR.sub(pair, text)
