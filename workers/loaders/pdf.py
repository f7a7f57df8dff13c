"""PDF: the text layer of each page, located by its page number."""

from __future__ import annotations

from pathlib import Path

from pypdf import PdfReader

from workers.loaders.sections import Section, UnreadableDocument


def load_pdf(path: Path) -> list[Section]:
    reader = PdfReader(path)
    if reader.is_encrypted:
        reader.decrypt("")  # many PDFs are "encrypted" with an empty user password; others fail here, alone
    sections = [Section(page.extract_text() or "", f"p. {number}") for number, page in enumerate(reader.pages, 1)]
    if not any(s.text.strip() for s in sections):
        raise UnreadableDocument(
            f"no extractable text: none of its {len(sections)} page(s) has a text layer "
            "(a scanned PDF needs OCR before it can be indexed)"
        )
    return sections
