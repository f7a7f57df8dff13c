"""Plain text and Markdown: decoded by the shared rule, Markdown cut into sections at its headings."""

from __future__ import annotations

import threading
from pathlib import Path

from markdown_it import MarkdownIt

from shared.ingest.text_decoding import decode_bytes
from workers.loaders.limits import LoadLimits
from workers.loaders.sections import HeadingSections, Section

_parsers = threading.local()


def _block_parser() -> MarkdownIt:
    """A CommonMark parser that finds blocks only, one per thread (a threaded worker's tasks parse at once).

    Headings and their titles come from the block pass; parsing inline markup (emphasis, links) as well took half
    of the parse's CPU and changed nothing that is read here.
    """
    parser: MarkdownIt | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = MarkdownIt("commonmark").disable("inline")
    return parser


def load_text(path: Path, limits: LoadLimits) -> list[Section]:
    return [Section(decode_bytes(path.read_bytes()))]


def load_markdown(path: Path, limits: LoadLimits) -> list[Section]:
    return markdown_sections(decode_bytes(path.read_bytes()))


def markdown_sections(text: str) -> list[Section]:
    """Sections at the document's own headings (ATX `#` and setext), found by a CommonMark parser.

    Only top-level headings count: a `#` line inside a code fence or a quote is body text.
    """
    lines = text.splitlines()
    tokens = _block_parser().parse(text)
    headings = [  # (first line, line after, level, title)
        (tok.map[0], tok.map[1], int(tok.tag[1]), tokens[i + 1].content)
        for i, tok in enumerate(tokens)
        if tok.type == "heading_open" and tok.level == 0 and tok.map
    ]
    builder = HeadingSections()
    position = 0
    for start, end, level, title in headings:
        builder.text("\n".join(lines[position:start]))
        builder.heading(level, title)
        position = end
    builder.text("\n".join(lines[position:]))
    return builder.sections()
