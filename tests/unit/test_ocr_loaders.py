"""OCR loaders: scanned PDF pages and images read offline, in reading order, within the per-document limits."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from tests.support.documents import pdf_pages
from tests.support.scans import (
    blank_scan_pdf,
    image_bomb_png,
    mixed_pdf,
    multipage_tiff,
    page_image,
    scanned_pdf,
    whiteboard_png,
)
from workers.loaders import pdf as pdf_loader
from workers.loaders.image import for_ocr, load_image
from workers.loaders.limits import LoadLimits
from workers.loaders.pdf import load_pdf
from workers.loaders.sections import UnreadableDocument

SCANNED = "扫描件上的这句话必须被识别出来：检索增强生成先取回相关段落。"
LIMITS = LoadLimits()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def unspaced(text: str) -> str:
    return "".join(text.split())


def test_a_scanned_pdf_page_is_read_by_ocr(tmp_path: Path) -> None:
    sections = load_pdf(write(tmp_path, "scan.pdf", scanned_pdf([[SCANNED]])), LIMITS)
    assert [s.location for s in sections] == ["p. 1 (OCR)"]
    assert SCANNED in unspaced(sections[0].text)


def test_a_mixed_pdf_reads_the_text_layer_and_ocrs_only_the_scanned_page(tmp_path: Path) -> None:
    path = write(
        tmp_path, "mixed.pdf", mixed_pdf(["第一页有文字层，可以直接提取。"], ["第二页是扫描件，需要光学字符识别。"])
    )
    sections = load_pdf(path, LIMITS)
    assert [s.location for s in sections] == ["p. 1", "p. 2 (OCR)"]
    assert "第一页有文字层，可以直接提取。" in sections[0].text
    assert unspaced(sections[1].text) == "第二页是扫描件，需要光学字符识别。"


def test_a_pdf_with_a_text_layer_is_never_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ocr(*args: object) -> str:
        raise AssertionError("a page with a text layer went through OCR")

    monkeypatch.setattr(pdf_loader, "ocr_image", no_ocr)
    sections = load_pdf(write(tmp_path, "a.pdf", pdf_pages([["第一页的内容。"], ["第二页。"]])), LIMITS)
    assert [s.location for s in sections] == ["p. 1", "p. 2"]


def test_lines_come_back_in_reading_order_joined_into_paragraphs(tmp_path: Path) -> None:
    lines = [
        "第一段的第一行写到这里，",
        "第一段的第二行接着写完。",
        "",
        "姓名：张三" + " " * 16 + "部门：研发部",
        "",
        "Query workers never",
        "load the OCR models.",
    ]
    [section] = load_pdf(write(tmp_path, "scan.pdf", scanned_pdf([lines])), LIMITS)
    assert section.text.split("\n\n") == [
        "第一段的第一行写到这里，第一段的第二行接着写完。",  # CJK lines of one paragraph run on
        "姓名：张三 部门：研发部",  # two boxes on one visual line stay one line, a gap between them
        "Query workers never load the OCR models.",  # Latin words across a line break keep a space
    ]


def test_a_whiteboard_photo_is_read_by_ocr(tmp_path: Path) -> None:
    path = write(tmp_path, "board.png", whiteboard_png(["白板照片：周五前完成向量索引迁移。", "负责人：张三、李四"]))
    [section] = load_image(path, LIMITS)
    assert section.location == "(OCR)"
    assert unspaced(section.text) == "白板照片：周五前完成向量索引迁移。负责人：张三、李四"


def test_each_page_of_a_tiff_is_a_section(tmp_path: Path) -> None:
    path = write(tmp_path, "fax.tiff", multipage_tiff([["第一页的传真内容。"], ["第二页的传真内容。"]]))
    sections = load_image(path, LIMITS)
    assert [(unspaced(s.text), s.location) for s in sections] == [
        ("第一页的传真内容。", "p. 1 (OCR)"),
        ("第二页的传真内容。", "p. 2 (OCR)"),
    ]


def test_a_page_scanned_upside_down_is_read_the_right_way_round(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    page_image(["倒着扫描的第一行文字。", "倒着扫描的第二行文字。"]).rotate(180).save(buffer, "PNG")
    [section] = load_image(write(tmp_path, "upside-down.png", buffer.getvalue()), LIMITS)
    assert unspaced(section.text) == "倒着扫描的第一行文字。倒着扫描的第二行文字。"


def test_a_phone_photo_is_read_the_way_its_exif_says_it_is_shown(tmp_path: Path) -> None:
    upright = Image.open(io.BytesIO(whiteboard_png(["手机横着拍的白板照片。", "第二行：周五前交付。"]))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 8  # Orientation: shown turned 90° anticlockwise from how the sensor stored it
    buffer = io.BytesIO()
    upright.rotate(-90, expand=True).save(buffer, "JPEG", quality=90, exif=exif)
    [section] = load_image(write(tmp_path, "photo.jpg", buffer.getvalue()), LIMITS)
    assert unspaced(section.text) == "手机横着拍的白板照片。第二行：周五前交付。"  # read sideways, the lines swap


def test_text_on_a_transparent_background_is_read(tmp_path: Path) -> None:
    grey = page_image(["透明背景上的黑色文字。"])
    transparent = Image.new("RGBA", grey.size, (0, 0, 0, 0))
    transparent.putalpha(grey.point(lambda v: 255 - v))  # black ink where the scan is dark, clear elsewhere
    buffer = io.BytesIO()
    transparent.save(buffer, "PNG")
    [section] = load_image(write(tmp_path, "logo.png", buffer.getvalue()), LIMITS)
    assert unspaced(section.text) == "透明背景上的黑色文字。"


def test_transparent_deep_and_other_images_become_8_bit_for_ocr() -> None:
    clear = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert for_ocr(clear).convert("L").getpixel((0, 0)) == 255  # laid on white, not read as black
    deep = Image.new("I;16", (2, 1))
    deep.putpixel((1, 0), 4000)  # a 12-bit scanner's white
    assert for_ocr(deep).mode == "L" and for_ocr(deep).getpixel((1, 0)) == 255  # scaled, not clipped
    for mode in ("P", "PA", "LA", "CMYK", "YCbCr", "1", "I", "F"):
        assert for_ocr(Image.new(mode, (2, 2))).mode in ("RGB", "L"), mode


@pytest.mark.parametrize("side", [8_000, 30_000])  # past MAX_IMAGE_PIXELS; past Pillow's own bomb limit too
def test_an_image_bomb_is_refused_from_its_header_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    path = write(tmp_path, "bomb.png", image_bomb_png(side, side))
    assert path.stat().st_size < 200_000

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    started = time.monotonic()
    with pytest.raises(UnreadableDocument, match="MAX_IMAGE_PIXELS"):
        load_image(path, LIMITS)
    assert time.monotonic() - started < 1.0


def test_a_later_tiff_page_past_max_image_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    small, huge = Image.new("1", (100, 100), 1), Image.new("1", (8_000, 8_000), 0)
    buffer = io.BytesIO()
    small.save(buffer, "TIFF", compression="group4", save_all=True, append_images=[huge])
    with pytest.raises(UnreadableDocument, match=r"^p\. 2: the image is 8000×8000 .*MAX_IMAGE_PIXELS"):
        load_image(write(tmp_path, "pages.tiff", buffer.getvalue()), LIMITS)


def test_a_damaged_image_is_unreadable_with_a_message(tmp_path: Path) -> None:
    whole = whiteboard_png(["白板照片"])
    with pytest.raises(UnreadableDocument, match="damaged or truncated"):
        load_image(write(tmp_path, "cut.png", whole[: len(whole) // 2]), LIMITS)
    with pytest.raises(UnreadableDocument, match="not a readable image"):
        load_image(write(tmp_path, "fake.png", b"not an image at all"), LIMITS)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("scan.pdf", lambda: scanned_pdf([["第一页。"], ["第二页。"], ["第三页。"]])),
        ("fax.tiff", lambda: multipage_tiff([["第一页。"], ["第二页。"], ["第三页。"]])),
    ],
)
def test_more_pages_for_ocr_than_ocr_max_pages_fail_the_document(
    tmp_path: Path, name: str, make: Callable[[], bytes]
) -> None:
    path = write(tmp_path, name, make())
    loader = load_pdf if name.endswith(".pdf") else load_image
    with pytest.raises(UnreadableDocument, match=r"3 pages.*OCR_MAX_PAGES \(2\)"):
        loader(path, LoadLimits(ocr_max_pages=2))


def test_a_page_past_the_ocr_timeout_fails_the_document_naming_the_setting(tmp_path: Path) -> None:
    path = write(tmp_path, "scan.pdf", scanned_pdf([[SCANNED]]))
    with pytest.raises(UnreadableDocument, match=r"^p\. 1: .*OCR_PAGE_TIMEOUT_S"):
        load_pdf(path, LoadLimits(ocr_page_timeout_s=1e-6))


def test_lines_below_the_minimum_confidence_are_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "board.png", whiteboard_png(["白板照片：周五前完成向量索引迁移。"]))
    with pytest.raises(UnreadableDocument, match="no extractable text.*OCR_MIN_CONFIDENCE"):
        load_image(path, LoadLimits(ocr_min_confidence=1.0))


def test_a_pdf_empty_even_after_ocr_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableDocument, match="no extractable text.*OCR found no text"):
        load_pdf(write(tmp_path, "blank.pdf", blank_scan_pdf()), LIMITS)


def test_importing_the_loaders_loads_no_ocr_runtime() -> None:
    heavy = ("onnxruntime", "rapidocr_onnxruntime", "cv2", "pypdfium2")  # started per process, on first use
    code = (
        "import sys, workers.loaders, workers.loaders.ocr, workers.loaders.image, workers.loaders.pdf\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})\n"
        "assert not loaded, loaded"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
