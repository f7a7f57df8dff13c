"""PDF: the text layer of each page, located by its page number."""

from __future__ import annotations

from pathlib import Path

from pypdf import PasswordType, PdfReader

from workers.loaders.limits import LoadLimits
from workers.loaders.sections import Section, UnreadableDocument


def load_pdf(path: Path, limits: LoadLimits) -> list[Section]:
    reader = PdfReader(path)
    # Many PDFs are "encrypted" with an empty user password, which opens them; others need a password we lack.
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise UnreadableDocument("the PDF is password-protected; upload it without the password")
    sections = [Section(page.extract_text() or "", f"p. {number}") for number, page in enumerate(reader.pages, 1)]
    if not any(s.text.strip() for s in sections):
        raise UnreadableDocument(
            f"no extractable text: none of its {len(sections)} page(s) has a text layer "
            "(a scanned PDF needs OCR before it can be indexed)"
        )
    return sections
