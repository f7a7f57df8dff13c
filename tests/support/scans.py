"""Scans made on the spot: CID-font PDFs rasterised by PDFium, as image-only PDFs, pictures and TIFFs, and a bomb.

PDFium draws the CID font STSong-Light with whatever CJK font the system has (PDFs of this kind do not embed
it); without one, the Chinese would come out blank, so `page_image` refuses to make a scan then.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageChops, ImageFilter
from pypdf import PdfReader, PdfWriter

from tests.support.documents import pdf_pages

# A scanner's usual resolution for text; a page's text in 14 pt comes out about 29 pixels high.
SCAN_DPI = 150
_MARGIN_PX = 40
# A scan is a page, not a strip of one line: at least this tall for its width (a slip, half a page).
_MIN_HEIGHT_PER_WIDTH = 0.5


def page_image(lines: list[str], dpi: int = SCAN_DPI) -> Image.Image:
    """`lines` set in STSong-Light by reportlab, rasterised by PDFium in grey, cut to a small page around them.

    Small, so OCR in tests stays fast: the text and a margin, with white below it up to half the width.
    """
    if not _cjk_font_available():
        raise RuntimeError(
            "PDFium drew no Chinese: the system has no CJK font for STSong-Light (scripts/install_browser.sh installs "
            "fonts-wqy-microhei)"
        )
    page = _rasterised(lines, dpi)
    box = ImageChops.invert(page).getbbox()
    assert box is not None, "nothing was drawn"
    left, top, right, bottom = box
    left, top, right = max(left - _MARGIN_PX, 0), max(top - _MARGIN_PX, 0), right + _MARGIN_PX
    bottom = max(bottom + _MARGIN_PX, top + round((right - left) * _MIN_HEIGHT_PER_WIDTH))
    return page.crop((left, top, right, bottom))


def scanned_pdf(pages: list[list[str]], dpi: int = SCAN_DPI) -> bytes:
    """An image-only PDF, one JPEG-compressed grey scan per page, with no text layer: what a scanner writes."""
    images = [page_image(lines, dpi) for lines in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return buffer.getvalue()


def blank_scan_pdf(width_in: float = 4.0, height_in: float = 3.0) -> bytes:
    """An image-only PDF of a blank sheet, off-white and speckled: the back of a page scanned on both sides."""
    size = (round(width_in * SCAN_DPI), round(height_in * SCAN_DPI))
    paper = np.random.default_rng(3).normal(240.0, 4.0, (size[1], size[0]))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(paper, 0, 255).round().astype(np.uint8)).save(buffer, "PDF", resolution=SCAN_DPI)
    return buffer.getvalue()


def mixed_pdf(text_lines: list[str], scan_lines: list[str]) -> bytes:
    """Page 1 with a text layer, page 2 a scan: a report with a signed page scanned back in."""
    writer = PdfWriter()
    for data in (pdf_pages([text_lines]), scanned_pdf([scan_lines])):
        writer.append(PdfReader(io.BytesIO(data)))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def whiteboard_png(lines: list[str], seed: int = 7) -> bytes:
    """A photo of a whiteboard, more or less: the text on a tinted, unevenly lit, noisy, slightly blurred ground."""
    grey = np.asarray(page_image(lines), dtype=np.float64) / 255.0
    height, width = grey.shape
    light = np.linspace(0.97, 0.85, width)[np.newaxis, :, np.newaxis]  # brighter on the left, as from a window
    tint = np.array([0.93, 0.97, 1.0])  # a cold board
    ink = np.array([0.1, 0.15, 0.45])  # a blue marker
    rgb = grey[..., np.newaxis] * tint * light + (1 - grey[..., np.newaxis]) * ink
    rgb += np.random.default_rng(seed).normal(0.0, 0.03, rgb.shape)
    image = Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8))
    buffer = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(0.8)).save(buffer, "PNG")
    return buffer.getvalue()


def multipage_tiff(pages: list[list[str]]) -> bytes:
    """A multi-page bilevel TIFF in CCITT Group 4, as a fax or a document scanner stores pages."""
    images = [page_image(lines).point(lambda v: 255 if v > 160 else 0).convert("1") for lines in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, "TIFF", compression="group4", save_all=True, append_images=images[1:], dpi=(SCAN_DPI,) * 2)
    return buffer.getvalue()


def image_bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid all-black 1-bit PNG whose header declares `width`×`height`: ~110 KB on disk, 900 MB as grey pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the row's bits
    packer = zlib.compressobj(9)
    rows_per_block = 1000
    blocks = [packer.compress(row * min(rows_per_block, height - n)) for n in range(0, height, rows_per_block)]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(blocks) + packer.flush())
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _rasterised(lines: list[str], dpi: int) -> Image.Image:
    document = pdfium.PdfDocument(pdf_pages([lines]))
    try:
        image: Image.Image = document[0].render(scale=dpi / 72, grayscale=True).to_pil()
        return image.convert("L")
    finally:
        document.close()


@cache
def _cjk_font_available() -> bool:
    """Whether PDFium draws a Chinese character in STSong-Light (it leaves it blank when no CJK font is found)."""
    return ImageChops.invert(_rasterised(["中文"], 72)).getbbox() is not None
