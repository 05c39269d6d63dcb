"""Shortening text for tables and one-line displays, saying so when something was cut."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], limits: Mapping[str, int] | None = None) -> list[str]:
    """The lines of a table: each column as wide as its content, the columns named in ``limits``
    capped at that many characters (one line, "…" where cut), and a footer saying which were cut."""
    limits = limits or {}
    cut: dict[str, int] = {}
    cells = []
    for row in rows:
        cells.append([])
        for header, value in zip(headers, row, strict=True):
            text = str(value)
            if header in limits:
                shown = shorten(text, limits[header])
                if was_shortened(text, shown):
                    cut[header] = limits[header]
                text = shown
            cells[-1].append(text)
    widths = [max(len(header), *(len(row[index]) for row in cells)) for index, header in enumerate(headers)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in [list(headers), *cells]]  # fmt: skip
    if cut:
        columns = ", ".join(f"{header} cut at {limit} chars" for header, limit in cut.items())
        lines.append(f"({columns}; use --json for the full text)")
    return lines
