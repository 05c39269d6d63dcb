"""Plain text out of a document's source: text, Markdown and HTML, with uploads decoded safely.

Bytes are refused when they are binary (known file signatures, NUL bytes, mostly control bytes);
otherwise they are decoded as UTF-8 (a BOM selects UTF-8 or UTF-16), and, failing that, as
Windows-1252, which covers Latin-1 files, when that gives text without stray control characters.
Anything else is refused with the offset of the first invalid byte: a failed document says why.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

FORMATS_BY_EXTENSION = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
}
SUPPORTED_EXTENSIONS = frozenset(FORMATS_BY_EXTENSION)

_SIGNATURES = (
    (b"%PDF-", "a PDF file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (docx, xlsx, ...)"),
    (b"\x1f\x8b", "gzip data"),
    (b"\x7fELF", "an executable"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
)
_SNIFF_BYTES = 64 * 1024
#: Control bytes that never occur in text (tab, newlines, form feed and escape are allowed).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_HTML_SNIFF = re.compile(r"\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>])", re.IGNORECASE | re.DOTALL)


class ExtractionError(Exception):
    """The source cannot be turned into text; the message is the reason recorded on the document."""


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    format: str  # "text", "markdown" or "html"
    encoding: str  # how bytes were decoded; "" for text given as a string


def format_for(filename: str) -> str | None:
    """The format a file name announces, or None for an unknown extension."""
    return FORMATS_BY_EXTENSION.get(PurePath(filename).suffix.lower()) if filename else None


def binary_kind(data: bytes) -> str | None:
    """Why ``data`` is not text, or None when it may be."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    head = data[:_SNIFF_BYTES]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    if b"\x00" in head:
        return "binary data (NUL bytes)"
    if head and sum(head.count(byte) for byte in _CONTROL_BYTES) > len(head) * 0.05:
        return "binary data (control bytes)"
    return None


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Text and the encoding used; ExtractionError when the bytes are not text."""
    kind = binary_kind(data)
    if kind:
        raise ExtractionError(f"binary content: the upload is {kind}, not text")
    if data.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8",)
    try:
        return data.decode(encodings[0]), encodings[0]
    except UnicodeDecodeError as exc:
        first_error = exc
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = None
    if text is not None and not _CONTROL_CHARS.search(text):
        return text, "cp1252"
    raise ExtractionError(
        f"undecodable text: invalid {first_error.encoding.upper()} byte 0x{data[first_error.start]:02x} at offset "
        f"{first_error.start}, and not Windows-1252/Latin-1 text either"
    )


def extract_text(source: str | bytes, filename: str = "") -> Extracted:
    """Plain text of ``source`` (a string, or the bytes of an upload named ``filename``)."""
    if isinstance(source, bytes):
        text, encoding = decode_bytes(source)
    else:
        text, encoding = source, ""
        if "\x00" in text:
            raise ExtractionError("binary content: the text contains NUL characters")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    fmt = format_for(filename) or ("html" if _HTML_SNIFF.match(text[:4096]) else "text")
    if fmt == "html":
        text = html_to_text(text)
    return Extracted(text=text, format=fmt, encoding=encoding)


class _HTMLText(HTMLParser):
    """Visible text of an HTML page: block elements become paragraph breaks; scripts and styles vanish."""

    SKIP = frozenset({"script", "style", "noscript", "template", "svg", "title"})
    BLOCKS = frozenset(
        "address article aside blockquote br dd details div dl dt figcaption figure footer form h1 h2 h3 h4 h5 "
        "h6 header hr li main nav ol p pre section summary table tbody thead tfoot tr ul".split()
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: list[str] = []
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.SKIP:
            self.skipping.append(tag)
        elif tag in self.BLOCKS:
            self.parts.append("\n" if tag == "br" else "\n\n")
            if tag == "pre":
                self.pre_depth += 1
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and tag == self.skipping[-1]:
            self.skipping.pop()
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")
            if tag == "pre" and self.pre_depth:
                self.pre_depth -= 1

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        self.parts.append(data if self.pre_depth else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()
