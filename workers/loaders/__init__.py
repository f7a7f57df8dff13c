"""Per-format extraction: each loader turns one file into located sections of text (see sections.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from workers.loaders.docx import load_docx
from workers.loaders.html import load_html
from workers.loaders.limits import LoadLimits
from workers.loaders.pdf import load_pdf
from workers.loaders.sections import Row, Section, UnreadableDocument
from workers.loaders.text import load_markdown, load_text

Loader = Callable[[Path, LoadLimits], list[Section]]

LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".html": load_html,
    ".htm": load_html,
}

__all__ = ["LOADERS", "LoadLimits", "Row", "Section", "UnreadableDocument", "load_sections"]


def load_sections(path: Path, limits: LoadLimits | None = None) -> list[Section]:
    """The located sections of text in one file, read by the loader for its suffix, within `limits`."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnreadableDocument(f"type {path.suffix or '(none)'} is not supported")
    return loader(path, limits or LoadLimits())
