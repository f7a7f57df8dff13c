"""PPTX: one section per slide, in slide order: the title, text and tables in reading order, then speaker notes.

Deliberate choices:
- Reading order is position on the slide, top then left (a group's shapes in their own order at its place), not
  the order shapes were added in, which is how PowerPoint stacks them and not how anyone reads them.
- A table whose first row is formatted as a header (PowerPoint's default) is one line per row told with that
  header, `季度: Q2 | 目标: 扩容`, as sheets are (workers/loaders/sheets.py): a long slide is split into
  chunks, and a row cut off from its header would be figures without meaning. Other tables are `cell | cell`.
- Speaker notes come last, their first line opened by `Notes:`, so a reader tells what the audience saw from
  what the speaker meant to say; like `slide` and `sheet` in locations, the service's own labels are English.
- Slides holding no text at all are left out; hidden slides are read (PowerPoint still shows them while editing).
  Pictures, charts and SmartArt hold no text python-pptx reads, and are left out.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import pptx
from lxml.etree import XMLSyntaxError
from pptx.exc import PackageNotFoundError, PythonPptxError
from pptx.shapes.autoshape import Shape
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame
from pptx.shapes.group import GroupShape
from pptx.slide import Slide
from pptx.table import Table
from pptx.text.text import TextFrame

from workers.loaders.limits import LoadLimits
from workers.loaders.sections import Section, UnreadableDocument
from workers.loaders.sheets import failure_reason, labelled_row

NOTES_LABEL = "Notes:"
_MAX_TITLE_CHARS = 60
# What python-pptx raises on a file that is not a well-formed presentation (another OOXML type is a ValueError).
_BROKEN_PRESENTATION = (PythonPptxError, zipfile.BadZipFile, KeyError, ValueError, XMLSyntaxError)


def load_pptx(path: Path, limits: LoadLimits) -> list[Section]:
    try:
        slides = pptx.Presentation(str(path)).slides
        sections = [slide_section(slide, number) for number, slide in enumerate(slides, 1)]
    except _BROKEN_PRESENTATION as exc:
        reason = "it is not a zip package" if isinstance(exc, PackageNotFoundError) else failure_reason(exc)
        raise UnreadableDocument(
            f"not a valid PowerPoint .pptx file ({reason}): open it in PowerPoint and save it again as .pptx"
        ) from exc
    return [s for s in sections if s is not None]


def slide_section(slide: Slide, number: int) -> Section | None:
    """The slide's text located `slide 2: 各季度目标` (`slide 2` without a title); None for a slide without text."""
    title_shape = slide.shapes.title
    title = _one_line(title_shape.text_frame.text) if title_shape is not None and title_shape.has_text_frame else ""
    lines = [title] if title else []
    lines += shape_lines(s for s in slide.shapes if title_shape is None or s != title_shape)
    lines += notes_lines(slide)
    if not lines:
        return None
    if len(title) > _MAX_TITLE_CHARS:
        title = title[: _MAX_TITLE_CHARS - 1].rstrip() + "…"
    return Section("\n".join(lines), f"slide {number}: {title}" if title else f"slide {number}")


def shape_lines(shapes: Iterable[BaseShape]) -> list[str]:
    """The text of `shapes` in reading order: top to bottom, then left to right, into groups."""
    lines: list[str] = []
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if isinstance(shape, GroupShape):
            lines += shape_lines(shape.shapes)
        elif isinstance(shape, GraphicFrame) and shape.has_table:
            lines += table_lines(shape.table)
        elif isinstance(shape, Shape) and shape.has_text_frame:
            lines += frame_lines(shape.text_frame)
    return lines


def frame_lines(frame: TextFrame) -> list[str]:
    """Non-empty lines of a text frame; python-pptx reads a line break inside a paragraph as a vertical tab."""
    return [line for p in frame.paragraphs for line in map(_one_line, p.text.split("\v")) if line]


def table_lines(table: Table) -> list[str]:
    """One line per row: told with the header row's names when the table has one, else `cell | cell`."""
    rows = [[_one_line(c.text) if not c.is_spanned else "" for c in row.cells] for row in table.rows]
    lines = [" | ".join(v for v in row if v) for row in rows]
    if table.first_row and len(rows) > 1:
        lines[1:] = [labelled_row(rows[0], row) for row in rows[1:]]
    return [line for line in lines if line]


def notes_lines(slide: Slide) -> list[str]:
    """The speaker notes, the first line labelled; a slide that never had notes gets no notes part created."""
    frame = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
    lines = frame_lines(frame) if frame is not None else []
    if lines:
        lines[0] = f"{NOTES_LABEL} {lines[0]}"
    return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())
