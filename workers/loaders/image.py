"""Images (PNG, JPEG, TIFF, BMP, WebP): each frame read by OCR, its size checked before it is decoded."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from workers.loaders.limits import LoadLimits
from workers.loaders.ocr import ocr_image
from workers.loaders.sections import Section, UnreadableDocument

_WHITE = (255, 255, 255)


def load_image(path: Path, limits: LoadLimits) -> list[Section]:
    with _open(path, limits) as image:
        # A TIFF's frames are a scan's pages; other formats' extra frames are animation or a camera's preview.
        frames = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
        if frames > limits.ocr_max_pages:
            raise UnreadableDocument(
                f"the image has {frames} pages, more than OCR_MAX_PAGES ({limits.ocr_max_pages}) allows through OCR"
            )
        texts: list[str] = []
        for number, frame in enumerate(itertools.islice(ImageSequence.Iterator(image), frames), 1):
            try:
                texts.append(_read(frame, limits))
            except UnreadableDocument as exc:
                if frames == 1:
                    raise
                raise UnreadableDocument(f"p. {number}: {exc}") from exc
    if not any(text.strip() for text in texts):
        raise UnreadableDocument(
            "no extractable text: OCR found no text in the image "
            "(or none it was sure of: lines below OCR_MIN_CONFIDENCE are dropped)"
        )
    if frames == 1:
        return [Section(texts[0], "(OCR)")]
    return [Section(text, f"p. {number} (OCR)") for number, text in enumerate(texts, 1)]


def _open(path: Path, limits: LoadLimits) -> Image.Image:
    """The image with only its header read: its size is known, its pixels are not decoded yet."""
    try:
        # Pillow's own bomb check warns past its limit; ours, against MAX_IMAGE_PIXELS, follows at once.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        # Past twice Pillow's own limit, Pillow refuses before we see the size, whatever MAX_IMAGE_PIXELS says.
        pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        if limits.max_image_pixels < pillow_limit:
            raise UnreadableDocument(
                f"the image is larger than MAX_IMAGE_PIXELS ({limits.max_image_pixels}) allows; it was not decoded"
            ) from exc
        raise UnreadableDocument(
            f"the image is larger than Pillow decodes ({pillow_limit} pixels, a decompression-bomb guard), "
            f"below MAX_IMAGE_PIXELS ({limits.max_image_pixels}); it was not decoded"
        ) from exc
    except UnidentifiedImageError as exc:
        raise UnreadableDocument(
            "not a readable image: the file is damaged or not PNG, JPEG, TIFF, BMP or WebP"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableDocument(f"the image is damaged: its header cannot be read ({exc})") from exc
    try:
        _check_size(image, limits)
    except UnreadableDocument:
        image.close()
        raise
    return image


def _check_size(image: Image.Image, limits: LoadLimits) -> None:
    width, height = image.size
    if width * height > limits.max_image_pixels:
        raise UnreadableDocument(
            f"the image is {width}×{height} = {width * height} pixels, more than MAX_IMAGE_PIXELS "
            f"({limits.max_image_pixels}) allows; it was not decoded"
        )


def _read(frame: Image.Image, limits: LoadLimits) -> str:
    """One frame's text: its size checked (each page of a TIFF has its own), then decoded and read by OCR."""
    _check_size(frame, limits)
    try:
        frame.load()
    except (OSError, ValueError, SyntaxError) as exc:  # a damaged file fails with a message, not a traceback
        raise UnreadableDocument(f"the image is damaged or truncated and cannot be decoded ({exc})") from exc
    # A phone stores a photo as the sensor saw it and says in EXIF which way up it is shown.
    return ocr_image(for_ocr(ImageOps.exif_transpose(frame)), limits)


def for_ocr(image: Image.Image) -> Image.Image:
    """An 8-bit RGB or grey copy of the image for OCR: transparency laid on white, deep or float pixels scaled."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _stretched(image)
    if image.mode in ("P", "PA", "LA", "La", "RGBA", "RGBa") or "transparency" in image.info:
        # Text drawn on a transparent background (a screenshot, a logo) would otherwise turn black on black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _stretched(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float grey image mapped onto 0-255 by its own range (Pillow would clip it at 255)."""
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.full_like(values, 255.0)
    return Image.fromarray(scaled.round().astype(np.uint8))  # 2-D uint8: mode L
