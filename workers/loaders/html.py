"""HTML: the page's visible text (title, headings, body), no markup, scripts or styles; cut at its headings.

The bytes are decoded by the shared rule (a byte-order mark, then the charset the page declares, then
UTF-8, then GB18030), then parsed with BeautifulSoup and Python's own HTML parser.

Deliberately no boilerplate removal (trafilatura, readability), because on short pages it drops headings or
the title, and on a Chinese article page measured while choosing it flattened the headings into one line.
A user's own documents are all content; only elements that never show as text are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag

from shared.ingest.text_decoding import decode_bytes
from workers.loaders.limits import LoadLimits
from workers.loaders.sections import HeadingSections, Section

_HIDDEN = {"head", "title", "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "nav"}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = {
    *("address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt", "figcaption"),
    *("figure", "footer", "form", "header", "hr", "li", "main", "ol", "p", "pre", "section", "summary"),
    *("table", "tr", "ul", "caption"),
}
_CELLS = {"td", "th"}
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


def load_html(path: Path, limits: LoadLimits) -> list[Section]:
    return html_sections(decode_bytes(path.read_bytes(), html=True))


def html_sections(markup: str) -> list[Section]:
    soup = BeautifulSoup(markup, "html.parser")
    builder = HeadingSections()
    walker = _Walker(builder)
    if soup.title and soup.title.get_text(strip=True):
        builder.text(soup.title.get_text(" ", strip=True))
    walker.walk(soup)
    walker.end_line()
    return builder.sections()


class _Walker:
    """Collects the text of inline content into lines, ending a line at every block element."""

    def __init__(self, builder: HeadingSections) -> None:
        self._builder = builder
        self._line: list[str] = []

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Tag):
                self._element(child)
            elif type(child) is NavigableString:  # not a Comment, Doctype or other markup-only string
                self._line.append(_SPACES.sub(" ", str(child)))

    def end_line(self) -> None:
        line = "".join(self._line).strip()
        self._line = []
        if line:
            self._builder.text(line)

    def _element(self, tag: Tag) -> None:
        name = tag.name.lower()
        if name in _HIDDEN or tag.has_attr("hidden"):
            return
        if name in _HEADINGS:
            self.end_line()
            self._builder.heading(_HEADINGS[name], tag.get_text(" ", strip=True))
            return
        if name in _CELLS:
            self._line.append(" ")
        block = name in _BLOCKS
        if block:
            self.end_line()
        self.walk(tag)
        if block:
            self.end_line()
