"""Documents of every supported format, generated the way real tools write them (reportlab, python-docx)."""

from __future__ import annotations

import io

import docx
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

CJK_FONT = "STSong-Light"


def pdf_pages(pages: list[list[str]]) -> bytes:
    """A PDF whose text layer holds `pages` (lines per page), set in a CJK CID font as Chinese PDFs often are."""
    pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    for lines in pages:
        pdf.setFont(CJK_FONT, 14)
        for row, line in enumerate(lines):
            pdf.drawString(72, 760 - 24 * row, line)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def pdf_without_text(pages: int = 2) -> bytes:
    """A PDF with drawings but no text layer, as a scanner writes one. Small pages: OCR reads each one (and finds
    nothing), which costs about 3 s of CPU for an A4 page and a tenth of that for this size."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(200, 200))
    for _ in range(pages):
        pdf.rect(20, 60, 160, 80, fill=1)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def docx_document(title: str, blocks: list[tuple[int | None, str]], table: list[list[str]] | None = None) -> bytes:
    """A DOCX with a title, then `blocks`: (heading level, text) for headings, (None, text) for paragraphs."""
    document = docx.Document()
    document.add_heading(title, level=0)
    for level, text in blocks:
        if level is None:
            document.add_paragraph(text)
        else:
            document.add_heading(text, level=level)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
