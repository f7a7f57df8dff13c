"""What reading one document may cost: the loaders check these and fail that document alone past one."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Settings


@dataclass(frozen=True)
class LoadLimits:
    ocr_max_pages: int = 200
    ocr_page_timeout_s: float = 60.0
    ocr_min_confidence: float = 0.5
    ocr_threads: int = 2
    max_image_pixels: int = 50_000_000
    max_sheet_cells: int = 2_000_000
    max_archive_bytes: int = 500 * 1024 * 1024
    max_archive_members: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> LoadLimits:
        return cls(
            ocr_max_pages=settings.OCR_MAX_PAGES,
            ocr_page_timeout_s=settings.OCR_PAGE_TIMEOUT_S,
            ocr_min_confidence=settings.OCR_MIN_CONFIDENCE,
            ocr_threads=settings.OCR_THREADS,
            max_image_pixels=settings.MAX_IMAGE_PIXELS,
            max_sheet_cells=settings.MAX_SHEET_CELLS,
            max_archive_bytes=settings.MAX_ARCHIVE_BYTES,
            max_archive_members=settings.MAX_ARCHIVE_MEMBERS,
        )
