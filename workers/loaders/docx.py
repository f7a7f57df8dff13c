"""DOCX: paragraphs and tables in document order, cut into sections at paragraphs styled as headings."""

from __future__ import annotations

import re
from pathlib import Path

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from workers.loaders.limits import LoadLimits
from workers.loaders.sections import HeadingSections, Section

# Word stores built-in style names in English ("heading 1") whatever the language of its interface.
_HEADING = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)


def load_docx(path: Path, limits: LoadLimits) -> list[Section]:
    builder = HeadingSections()
    for block in docx.Document(str(path)).iter_inner_content():
        if isinstance(block, Paragraph):
            level = heading_level(block)
            if level is None:
                builder.text(block.text)
            else:
                builder.heading(level, block.text)
        elif isinstance(block, Table):
            builder.text(table_text(block))
    return builder.sections()


def heading_level(paragraph: Paragraph) -> int | None:
    """0 for the document title, 1-9 for headings, None for body text."""
    name = paragraph.style.name if paragraph.style is not None else ""
    if name and name.lower() == "title":
        return 0
    match = _HEADING.match(name or "")
    return int(match.group(1)) if match else None


def table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):  # a merged cell is listed once per grid column
                cells.append(text)
        rows.append(" | ".join(cells))
    return "\n".join(r for r in rows if r)
