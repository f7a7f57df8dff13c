"""PDF: each page's text layer, located by its page number; a page without a usable layer is read by OCR.

A page's text layer is usable unless it holds no real character (letters, digits, punctuation; not spaces,
control codes, private-use codes or U+FFFD, which is what a font without a Unicode map extracts to), or holds
only a few (a page number, a stamp) on a page mostly covered by images: a scan with a header added. Such a
page is rendered by PDFium and read by OCR (located `p. N (OCR)`); if OCR finds nothing, its few layer
characters are kept. Pages with a usable layer are never rendered, so a mixed PDF only OCRs its scans.
"""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path
from typing import Any

from PIL import Image
from pypdf import PasswordType, PdfReader

from workers.loaders.limits import LoadLimits
from workers.loaders.ocr import MAX_SIDE_PX, ocr_image
from workers.loaders.sections import Section, UnreadableDocument

# A layer with fewer real characters than this is a page number or a stamp, if images cover the page.
_FEW_CHARS = 32
# A page is a scan when images cover at least this share of it.
_SCAN_COVERAGE = 0.5
# Small print stays legible at this resolution; RapidOCR scales anything larger down to MAX_SIDE_PX anyway.
_RENDER_DPI = 200
_POINTS_PER_INCH = 72


def load_pdf(path: Path, limits: LoadLimits) -> list[Section]:
    reader = PdfReader(path)
    # Many PDFs are "encrypted" with an empty user password, which opens them; others need a password we lack.
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise UnreadableDocument("the PDF is password-protected; upload it without the password")
    layers = [page.extract_text() or "" for page in reader.pages]
    sections = [Section(text, f"p. {number}") for number, text in enumerate(layers, 1)]
    sparse = [index for index, text in enumerate(layers) if real_chars(text) < _FEW_CHARS]
    read = _ocr_pages(path, layers, sparse, limits) if sparse else {}
    for index, text in read.items():
        if text.strip() or not layers[index].strip():
            sections[index] = Section(text, f"p. {index + 1} (OCR)")
    if not any(s.text.strip() for s in sections):
        raise UnreadableDocument(
            f"no extractable text: none of its {len(sections)} page(s) has a text layer, and OCR found no text "
            "on them (or none it was sure of: lines below OCR_MIN_CONFIDENCE are dropped)"
        )
    return sections


def real_chars(text: str) -> int:
    """Characters a reader would see: not spaces, nor control, private-use or replacement codes."""
    return sum(1 for c in text if c != "\ufffd" and unicodedata.category(c)[0] not in "CZ")


def _ocr_pages(path: Path, layers: list[str], sparse: list[int], limits: LoadLimits) -> dict[int, str]:
    """OCR text of the pages (0-based) that are scans, among the `sparse` ones with few or no layer characters."""
    import pypdfium2 as pdfium  # only a PDF with scanned pages pays for PDFium

    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise UnreadableDocument(f"the PDF's scanned pages cannot be rendered for OCR ({exc})") from exc
    try:
        scans = [i for i in sparse if real_chars(layers[i]) == 0 or _image_coverage(document[i]) >= _SCAN_COVERAGE]
        if len(scans) > limits.ocr_max_pages:
            raise UnreadableDocument(
                f"{len(scans)} pages have no text layer, more than OCR_MAX_PAGES ({limits.ocr_max_pages}) "
                "allows through OCR; split the document or raise OCR_MAX_PAGES"
            )
        read: dict[int, str] = {}
        for index in scans:
            try:
                read[index] = ocr_image(_render(document[index], limits), limits)
            except UnreadableDocument as exc:
                raise UnreadableDocument(f"p. {index + 1}: {exc}") from exc
        return read
    finally:
        document.close()


def _image_coverage(page: Any) -> float:
    """The share of the page that its images cover (overlaps counted twice, capped at the whole page)."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    covered = 0.0
    for image in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2):
        left, bottom, right, top = image.get_bounds()
        covered += max(0.0, min(right, width) - max(left, 0.0)) * max(0.0, min(top, height) - max(bottom, 0.0))
    return min(covered / max(width * height, 1.0), 1.0)


def _render(page: Any, limits: LoadLimits) -> Image.Image:
    """The page as a bitmap at `_RENDER_DPI`, smaller if needed to stay within MAX_SIDE_PX and MAX_IMAGE_PIXELS."""
    width, height = page.get_size()  # in points
    scale = min(
        _RENDER_DPI / _POINTS_PER_INCH,
        MAX_SIDE_PX / max(width, height, 1.0),
        math.sqrt(limits.max_image_pixels / max(width * height, 1.0)),
    )
    image: Image.Image = page.render(scale=scale).to_pil()
    return image
