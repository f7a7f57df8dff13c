"""A document as the loaders hand it on: sections of text, each with where it sits in the document."""

from __future__ import annotations

from dataclasses import dataclass

LOCATION_SEPARATOR = " › "
_MAX_HEADING_CHARS = 80


@dataclass(frozen=True)
class Row:
    """One row of a sheet, already rendered with its header (`编号: db-07 | 内存: 512GB`)."""

    number: int  # as the user sees it: the spreadsheet's row number, or the CSV line's record number
    text: str


@dataclass(frozen=True)
class Section:
    text: str
    # "p. 3" for a PDF page, "p. 3 (OCR)" for a page read by OCR, "标题 › 小节" for a heading path, "" before the
    # first heading of a document; for rows, what holds them ("sheet 服务器清单"), completed by the row range.
    location: str = ""
    # A sheet's rows: split into chunks at row boundaries (a row is never cut), each chunk located by its rows.
    rows: tuple[Row, ...] = ()


class UnreadableDocument(ValueError):
    """The file opened, but nothing indexable came out of it; the message says why."""


class HeadingSections:
    """Cuts a document into sections at its headings; each section's location is its heading path.

    A heading's text stays in the section it opens, so titles and headings are searchable. A heading with no
    text of its own before the next one (a title right above its first subheading) joins the next section.
    """

    def __init__(self) -> None:
        self._path: list[tuple[int, str]] = []
        self._lines: list[str] = []
        self._has_body = False
        self._sections: list[Section] = []

    def heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            return
        if self._has_body:
            self._flush()
        self._path = [(lvl, t) for lvl, t in self._path if lvl < level]
        self._path.append((level, title[:_MAX_HEADING_CHARS]))
        self._lines.append(title)

    def text(self, text: str) -> None:
        if text.strip():
            self._lines.append(text)
            self._has_body = True

    def sections(self) -> list[Section]:
        self._flush()
        return self._sections

    def _flush(self) -> None:
        if self._lines:
            location = LOCATION_SEPARATOR.join(t for _, t in self._path)
            self._sections.append(Section("\n".join(self._lines), location))
        self._lines, self._has_body = [], False
