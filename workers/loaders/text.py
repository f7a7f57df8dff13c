"""Plain text and Markdown: decoded by the shared rule, Markdown cut into sections at its headings."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from markdown_it_pyrs import MarkdownIt

from shared.ingest.text_decoding import decode_bytes
from workers.loaders.limits import LoadLimits
from workers.loaders.sections import HeadingSections, Section

_parsers = threading.local()
_LINE_BREAK = re.compile(r"\r\n?")


def _parser() -> MarkdownIt:
    """A CommonMark parser, one per thread (a threaded worker's tasks parse at once).

    markdown-it's Rust port: the Python one's block pass alone was a tenth of an index batch's CPU on a
    Markdown corpus, five times this parser's whole parse. Its headings (lines, level, title) are the Python
    parser's on every example of the CommonMark spec (tests/unit/test_markdown_headings.py).
    """
    parser: MarkdownIt | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = MarkdownIt("commonmark")
    return parser


def load_text(path: Path, limits: LoadLimits) -> list[Section]:
    return [Section(decode_bytes(path.read_bytes()))]


def load_markdown(path: Path, limits: LoadLimits) -> list[Section]:
    return markdown_sections(decode_bytes(path.read_bytes()))


def markdown_headings(text: str) -> list[tuple[int, int, int, str]]:
    """The document's top-level headings (ATX `#` and setext): (first line, line after, level, title).

    Lines are numbered as CommonMark counts them (CR LF and a lone CR end a line too), from 0. Only top-level
    headings count: a `#` line inside a code fence, a list or a quote is body text.
    """
    source = _LINE_BREAK.sub("\n", text).replace("\0", "\ufffd")  # CommonMark's own normalisation
    data = source.encode()  # the parse tree's offsets are UTF-8 byte offsets
    headings = []
    for node in _parser().tree(source).children:
        if node.name not in ("heading", "lheading") or node.srcmap is None:
            continue
        start, end = node.srcmap
        parts = [part.srcmap for part in node.children]  # the title's inline pieces, as they are in the source
        title = data[parts[0][0] : parts[-1][1]].decode() if parts and parts[0] and parts[-1] else ""
        first_line = data.count(b"\n", 0, start)
        headings.append((first_line, data.count(b"\n", 0, max(end - 1, start)) + 1, node.meta["level"], title.strip()))
    return headings


def markdown_sections(text: str) -> list[Section]:
    """Sections at the document's own top-level headings (`markdown_headings`)."""
    lines = text.splitlines()
    builder = HeadingSections()
    position = 0
    for start, end, level, title in markdown_headings(text):
        builder.text("\n".join(lines[position:start]))
        builder.heading(level, title)
        position = end
    builder.text("\n".join(lines[position:]))
    return builder.sections()
