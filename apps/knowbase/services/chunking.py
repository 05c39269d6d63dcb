"""Split extracted text into overlapping passages that keep their offsets.

The text is cut into units: sentences (or lines) inside paragraphs; a sentence longer than the
target is cut between words, and a word longer than the target is cut hard. Units are packed
greedily up to ``size`` characters; a chunk that has reached half the target ends at a paragraph
end when one is available, so passages rarely straddle paragraphs. The next chunk starts with
the previous chunk's last whole sentences, up to ``overlap`` characters. Every chunk's text is
``text[start:end]``: nothing is rewritten, so a hit can be shown in its document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n")
#: A sentence ends after ., !, ? or an ellipsis (and closing quotes or brackets) before white space,
#: or at a line break (list items, headings and verse are units of their own).
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*(?=\s)|\n")
_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Chunk:
    position: int
    text: str
    start: int
    end: int
    token_count: int


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    ends_paragraph: bool


def count_tokens(text: str) -> int:
    """Words and punctuation marks: a model-independent estimate of a passage's token count."""
    return sum(1 for _ in _TOKEN.finditer(text))


def _stripped(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _split(text: str, start: int, end: int, boundary: re.Pattern[str]) -> Iterator[tuple[int, int]]:
    """Spans of ``text[start:end]`` between matches of ``boundary``, trimmed, empty ones dropped."""
    position = start
    for match in boundary.finditer(text, start, end):
        span = _stripped(text, position, match.end())
        if span:
            yield span
        position = match.end()
    span = _stripped(text, position, end)
    if span:
        yield span


def _words(text: str, start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    """Cut an over-long sentence between words; an over-long word is cut every ``size`` characters."""
    window: tuple[int, int] | None = None
    for match in _WORD.finditer(text, start, end):
        word_start, word_end = match.span()
        if window and word_end - window[0] <= size:
            window = (window[0], word_end)
            continue
        if window:
            yield window
        while word_end - word_start > size:
            yield (word_start, word_start + size)
            word_start += size
        window = (word_start, word_end)
    if window:
        yield window


def _units(text: str, size: int) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph_start, paragraph_end in _split(text, 0, len(text), _PARAGRAPH_BREAK):
        first = len(units)
        for sentence_start, sentence_end in _split(text, paragraph_start, paragraph_end, _SENTENCE_END):
            if sentence_end - sentence_start <= size:
                units.append(_Unit(sentence_start, sentence_end, False))
            else:
                units.extend(
                    _Unit(start, end, False) for start, end in _words(text, sentence_start, sentence_end, size)
                )
        if len(units) > first:
            last = units[-1]
            units[-1] = _Unit(last.start, last.end, True)
    return units


def chunk_text(text: str, size: int = 800, overlap: int = 100) -> list[Chunk]:
    """Chunks of at most ``size`` characters (one over-long unit aside) with up to ``overlap`` repeated."""
    if size < 1:
        raise ValueError("size must be at least 1")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and smaller than size")
    units = _units(text, size)
    chunks: list[Chunk] = []
    first = 0
    while first < len(units):
        start = units[first].start
        last = first
        while last + 1 < len(units) and units[last + 1].end - start <= size:
            last += 1
        if last + 1 < len(units):
            # Prefer ending at a paragraph end once the chunk is at least half full.
            for candidate in range(last, first - 1, -1):
                if units[candidate].end - start < size // 2:
                    break
                if units[candidate].ends_paragraph:
                    last = candidate
                    break
        end = units[last].end
        chunk = text[start:end]
        chunks.append(Chunk(len(chunks), chunk, start, end, count_tokens(chunk)))
        if last + 1 >= len(units):
            break
        # The next chunk repeats whole trailing units within ``overlap`` and still gains a new one.
        following = units[last + 1]
        next_first = last + 1
        while (
            next_first - 1 > first
            and end - units[next_first - 1].start <= overlap
            and following.end - units[next_first - 1].start <= size
        ):
            next_first -= 1
        first = next_first
    return chunks
