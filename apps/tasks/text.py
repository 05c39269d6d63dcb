"""Shortening text for tables and one-line displays, saying so when something was cut."""

from __future__ import annotations

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """The first line of ``text`` in at most ``limit`` characters, ending in "…" when anything was
    left out (characters or further lines): a reader must not take a cut value for the whole one."""
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if len(lines) <= 1 and len(first) <= limit:
        return first
    return first[: max(limit - 1, 0)] + ELLIPSIS


def was_shortened(text: str, shown: str) -> bool:
    """Whether ``shown`` (from ``shorten``) leaves part of ``text`` out."""
    return shown != text and shown.endswith(ELLIPSIS)
