"""Which encoding a text or HTML file is in: one rule for the upload check and the index worker's loaders.

The order is fixed, not guessed: a byte-order mark (UTF-8, UTF-16, UTF-32), then for HTML the charset the
page declares in its first bytes, then strict UTF-8, then strict GB18030 (a superset of GBK and GB2312,
the usual legacy encoding of Chinese files). A file none of these decode, or whose decoding holds NUL
characters (binary data, or UTF-16 without a byte-order mark), is refused rather than indexed as mojibake.

Deliberately no statistical detection (charset-normalizer, chardet), because it is unreliable on short texts
and a wrong guess indexes mojibake silently; a refusal tells the user to re-save the file as UTF-8.
"""

from __future__ import annotations

import codecs

import regex

# The first bytes the declared charset is looked for in (the HTML standard's prescan reads 1024).
DECLARATION_WINDOW = 4096
_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_FALLBACKS = ("utf-8", "gb18030")
# As the HTML standard does, read pages labelled with a GB2312/GBK charset with the GB18030 decoder.
# A page cannot declare UTF-16 in bytes it wrote in UTF-16, so that label means UTF-8 (also the standard's rule).
_SUPERSETS = {
    **dict.fromkeys(("gb2312", "gbk", "x-gbk", "cp936"), "gb18030"),
    **dict.fromkeys(("ascii", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"), "utf-8"),
    "iso8859-1": "cp1252",
}
# Bytes read in the wrong encoding (Big5 as GB18030, anything after a stray UTF-16 mark) turn into code points
# no text holds: unassigned, private-use, control characters. Counted over the first characters decoded, a
# share above this refuses the encoding; a real document rarely holds one, a misread one is full of them.
_IMPLAUSIBLE_SHARE = 0.01
_SAMPLE_CHARS = 1 << 16
_REFUSAL = "not text this service can decode: save it as UTF-8 (UTF-16 with a byte-order mark and GB18030 also work)"


class UndecodableText(ValueError):
    """The bytes are in none of the encodings we accept; the message says what to do."""


def declared_charset(head: bytes) -> str | None:
    """The Python codec for the charset an HTML page declares (`<meta charset>`, `http-equiv`, XML prolog)."""
    # Imported here: bs4 costs ~85 ms at every API and worker start, and only HTML pages need it.
    from bs4.dammit import EncodingDetector

    declared = EncodingDetector.find_declared_encoding(head[:DECLARATION_WINDOW], is_html=True)
    if not declared:
        return None
    try:
        name = _SUPERSETS.get(declared.lower()) or codecs.lookup(declared).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


class TextDecoder:
    """Incremental form of `decode_bytes`: feed blocks as they arrive, then `finish()` names the encoding."""

    def __init__(self, html: bool = False) -> None:
        self._html = html
        self._head = b""
        self._candidates: dict[str, codecs.IncrementalDecoder] | None = None
        self._sampled: dict[str, tuple[int, int]] = {}  # encoding -> (characters checked, implausible ones)
        self._failure = ""

    def feed(self, block: bytes) -> None:
        """Check one more block; raise `UndecodableText` as soon as no candidate encoding is left."""
        if self._candidates is None:
            self._head += block
            if len(self._head) < DECLARATION_WINDOW:
                return  # a BOM and a declaration are looked for in the first bytes, so gather them first
            block, self._head = self._head, b""
            self._candidates = self._start(block)
        self._decode(block, final=False)

    def finish(self) -> str:
        """The encoding the whole input decodes with, by the fixed order of preference."""
        if self._candidates is None:
            block, self._head = self._head, b""
            self._candidates = self._start(block)
            self._decode(block, final=False)
        self._decode(b"", final=True)
        return next(iter(self._candidates))

    def _start(self, head: bytes) -> dict[str, codecs.IncrementalDecoder]:
        for bom, encoding in _BOMS:
            if head.startswith(bom):
                return {encoding: codecs.getincrementaldecoder(encoding)()}
        declared = declared_charset(head) if self._html else None
        names = dict.fromkeys([declared, *_FALLBACKS] if declared else _FALLBACKS)
        return {name: codecs.getincrementaldecoder(name)() for name in names}

    def _decode(self, block: bytes, final: bool) -> None:
        assert self._candidates is not None
        for name, decoder in list(self._candidates.items()):
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as exc:
                self._failure = self._failure or f"{exc.encoding}: {exc.reason}"
                del self._candidates[name]
                continue
            if "\x00" in text:
                self._failure = "it holds NUL characters: binary data, or UTF-16 without a byte-order mark"
                del self._candidates[name]
                continue
            checked, implausible = self._sampled.get(name, (0, 0))
            if checked < _SAMPLE_CHARS:
                sample = text[: _SAMPLE_CHARS - checked]
                checked, implausible = checked + len(sample), implausible + len(_IMPLAUSIBLE.findall(sample))
                self._sampled[name] = (checked, implausible)
            if final and implausible > _IMPLAUSIBLE_SHARE * checked:
                self._failure = f"read as {name} it is full of unassigned or control characters"
                del self._candidates[name]
        if not self._candidates:
            raise UndecodableText(f"{_REFUSAL} ({self._failure})")


# Unassigned, private-use, surrogate and control code points (whitespace controls excepted), by the `regex`
# module's Unicode properties: compiled in microseconds, where a class of ranges built from `unicodedata` took
# a fifth of a second per process and matched about ten times slower.
_IMPLAUSIBLE = regex.compile(r"[[\p{Cn}\p{Co}\p{Cs}\p{Cc}]--[\t\n\v\f\r]]", regex.V1)


def detect_encoding(data: bytes, html: bool = False) -> str:
    decoder = TextDecoder(html=html)
    decoder.feed(data)
    return decoder.finish()


def decode_bytes(data: bytes, html: bool = False) -> str:
    """The text of a whole file, decoded by the rule above; raises `UndecodableText`."""
    return data.decode(detect_encoding(data, html=html))
