"""Text extraction: formats, safe decoding, and refusals with a reason."""

from __future__ import annotations

import codecs

import pytest

from apps.knowbase.services.extraction import ExtractionError, decode_bytes, extract_text, html_to_text


def test_plain_and_markdown_text_pass_through_with_newlines_normalised():
    assert extract_text("one\r\ntwo\rthree").text == "one\ntwo\nthree"
    extracted = extract_text(b"# Title\n\nBody *text*.", "notes.md")
    assert (extracted.text, extracted.format, extracted.encoding) == ("# Title\n\nBody *text*.", "markdown", "utf-8")


def test_html_keeps_visible_text_as_paragraphs():
    html = """<!DOCTYPE html><html><head><title>Page</title><style>p {color: red}</style>
    <script>var secret = "hidden";</script></head><body><h1>Heading</h1>
    <p>First   paragraph
    with a line break &amp; an entity.</p><div>Second<br>line</div><ul><li>item one</li><li>item two</li></ul>
    <pre>  keep   spacing</pre></body></html>"""
    text = html_to_text(html)
    assert "hidden" not in text and "color" not in text and "Page" not in text
    assert "Heading\n\nFirst paragraph with a line break & an entity.\n\nSecond\nline" in text
    assert "item one\n\nitem two" in text
    assert "keep   spacing" in text
    assert extract_text(html.encode(), "page.html").format == "html"
    assert extract_text(html).format == "html"  # sniffed from a string too


def test_bom_and_utf16_are_decoded():
    assert decode_bytes(codecs.BOM_UTF8 + "café".encode()) == ("café", "utf-8-sig")
    assert decode_bytes("naïve text".encode("utf-16")) == ("naïve text", "utf-16")


def test_latin1_bytes_fall_back_to_windows_1252():
    text, encoding = decode_bytes("Café crème, déjà vu — naïve.\n".encode("cp1252"))
    assert (text, encoding) == ("Café crème, déjà vu — naïve.\n", "cp1252")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3 binary", "a PDF file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (b"text with a \x00 NUL byte", "NUL bytes"),
        (bytes(range(1, 9)) * 50, "control bytes"),
    ],
)
def test_binary_uploads_are_refused_with_the_reason(data, reason):
    with pytest.raises(ExtractionError, match="binary content") as caught:
        extract_text(data, "upload.txt")
    assert reason in str(caught.value)


def test_bytes_that_are_neither_utf8_nor_cp1252_are_refused_with_the_offset():
    with pytest.raises(ExtractionError, match=r"invalid UTF-8 byte 0x81 at offset 6"):
        decode_bytes(b"hello \x81\x8d\x8f\x90\x9d world")


def test_nul_characters_in_a_string_are_refused():
    with pytest.raises(ExtractionError, match="NUL"):
        extract_text("abc\x00def")
