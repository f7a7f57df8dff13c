"""Per-format extraction: each loader turns one file into located sections of text (see sections.py).

A format's loader module is imported the first time a file of that type is read, so a worker that never
meets a spreadsheet or a scan never pays for openpyxl or the OCR runtime, and query workers load none of them.
Zip-based formats (Office files, EPUB) are checked as archives first (archive.py): size, members, paths, DTDs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from workers.loaders.limits import LoadLimits
from workers.loaders.sections import Row, Section, UnreadableDocument

Loader = Callable[[Path, LoadLimits], list[Section]]


@dataclass(frozen=True)
class Format:
    module: str  # under workers.loaders
    function: str
    archive: str | None = None  # what a zip-based format is called in messages ("Word .docx")

    def loader(self) -> Loader:
        return cast(Loader, getattr(importlib.import_module(f"workers.loaders.{self.module}"), self.function))


_IMAGE = Format("image", "load_image")
LOADERS: dict[str, Format] = {
    ".txt": Format("text", "load_text"),
    ".md": Format("text", "load_markdown"),
    ".markdown": Format("text", "load_markdown"),
    ".html": Format("html", "load_html"),
    ".htm": Format("html", "load_html"),
    ".csv": Format("sheets", "load_csv"),
    ".tsv": Format("sheets", "load_tsv"),
    ".pdf": Format("pdf", "load_pdf"),
    ".docx": Format("docx", "load_docx", archive="Word .docx"),
    ".pptx": Format("slides", "load_pptx", archive="PowerPoint .pptx"),
    ".xlsx": Format("sheets", "load_xlsx", archive="Excel .xlsx"),
    ".epub": Format("epub", "load_epub", archive="EPUB"),
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"), _IMAGE),
}

__all__ = ["LOADERS", "LoadLimits", "Row", "Section", "UnreadableDocument", "load_sections"]


def load_sections(path: Path, limits: LoadLimits | None = None) -> list[Section]:
    """The located sections of text in one file, read by the loader for its suffix, within `limits`."""
    found = LOADERS.get(path.suffix.lower())
    if found is None:
        raise UnreadableDocument(f"type {path.suffix or '(none)'} is not supported")
    limits = limits or LoadLimits()
    if found.archive:
        from workers.loaders.archive import check_archive

        check_archive(path, limits, found.archive)
    return found.loader()(path, limits)
