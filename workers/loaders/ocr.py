"""OCR of one page image, offline: RapidOCR's PP-OCR models on ONNX Runtime, text put back in reading order.

Deliberate choices:
- Models: the detection, orientation and recognition ONNX files inside the rapidocr_onnxruntime wheel (its own
  config.yaml points at them). Nothing is downloaded, at install or at run time.
- One engine per process, created on first use: ONNX Runtime's thread pools do not survive a fork, so the
  engine is built in the index worker process that reads the page, and rebuilt if the process id changed (an
  engine inherited across a fork is never used). Importing this module imports neither rapidocr nor
  onnxruntime, so query workers and the API never load them.
- Threads: ONNX Runtime intra-op threads = `limits.ocr_threads`, capped at the CPU count (RapidOCR ignores a
  larger value and would use every core); inter-op 1, since each model is one sequential graph.
- Timeout: RapidOCR's one-call API runs a page to the end, so this module drives its stages itself: detection
  once, orientation once, then recognition in batches of a few lines, looking at the clock before each. A
  page stops within one model run of `OCR_PAGE_TIMEOUT_S`; one run is bounded because the page is scaled to at
  most `MAX_SIDE_PX` a side before detection and a batch holds `rec_batch_num` (6) lines.
- Memory: a page's model activations (~0.55 GB for an A4 page at `MAX_SIDE_PX`; RapidOCR turns ONNX Runtime's
  arena off) go back to glibc's malloc, which keeps them and lets them grow from page to page (~0.4 GB held
  after six pages). They are handed back to the system after every page: ~50 ms on a page of seconds, and a
  worker between pages holds only the models (~100 MB). Figures: docs/benchmarks.md, OCR.
- Orientation: decided for the page, not per line. RapidOCR turns each line its classifier calls upside down,
  and that classifier takes some long lines of Chinese for upside down (2 lines in the six pages of
  bench/ocr_throughput.py, each then read as nothing); here a page is turned only when most of its lines are.
- Confidence: the recogniser's mean character probability per line; lines below `ocr_min_confidence` are dropped.
- Reading order: lines top to bottom, boxes on one visual line left to right; a vertical gap well over a line's
  height starts a paragraph. Two columns side by side are read across, as one line each (a known limit).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from workers.loaders.limits import LoadLimits
from workers.loaders.sections import UnreadableDocument

# The longest side RapidOCR scales a page down to before detection; renderers need not draw more pixels.
MAX_SIDE_PX = 2000
# How far a detected line's box is grown around its core. RapidOCR's 1.6 cuts off a line's closing full-width
# punctuation (。) on some small scans; 2.0 keeps it and still leaves lines at 1.1 line spacing apart
# (docs/benchmarks.md, OCR).
_UNCLIP_RATIO = 2.0
# A gap between two lines over this many line heights, and well over the page's usual gap, starts a paragraph.
_PARAGRAPH_GAP = 1.0
_USUAL_GAP_FACTOR = 1.5
# Two boxes on one line are joined without a space across a CJK boundary, unless a gap this wide (in line
# heights) separates them, as between the cells of a table.
_CELL_GAP = 1.0

_engine: tuple[tuple[int, int], Any] | None = None


@dataclass(frozen=True)
class _Box:
    text: str
    left: float
    top: float
    right: float
    bottom: float

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 1.0)

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


def load_engine(limits: LoadLimits) -> Any:
    """This process's RapidOCR engine, created now if it has none yet (call it after the fork to pay up front)."""
    global _engine
    threads = max(1, min(limits.ocr_threads, os.cpu_count() or 1))
    key = (os.getpid(), threads)
    if _engine is None or _engine[0] != key:
        from rapidocr_onnxruntime import RapidOCR  # onnxruntime starts its thread pools: only after the fork

        engine = RapidOCR(
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
            max_side_len=MAX_SIDE_PX,
            det_unclip_ratio=_UNCLIP_RATIO,
        )
        _engine = (key, engine)
    return _engine[1]


def _release_memory() -> None:
    """Return the memory freed after OCR to the system (glibc keeps it otherwise); a no-op on other C libraries."""
    with contextlib.suppress(OSError, AttributeError):  # musl, macOS: no libc.so.6 or no malloc_trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def ocr_image(image: Image.Image, limits: LoadLimits) -> str:
    """The text of one page image, in reading order, paragraphs separated by a blank line."""
    engine = load_engine(limits)
    deadline = time.monotonic() + limits.ocr_page_timeout_s
    try:
        boxes = _recognise(engine, _bgr(image), deadline, limits)
    finally:
        _release_memory()
    return "\n\n".join(_paragraphs(_lines(boxes)))


def _bgr(image: Image.Image) -> np.ndarray:
    """The image as the contiguous 8-bit BGR array OpenCV-based RapidOCR expects."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def _recognise(engine: Any, bgr: np.ndarray, deadline: float, limits: LoadLimits) -> list[_Box]:
    """Detection, the page's orientation, then recognition batch by batch, stopping at the deadline between runs."""
    img, _, _ = engine.preprocess(bgr)
    img, _ = engine.maybe_add_letterbox(img, {})
    found, _ = engine.auto_text_det(img)
    if found is None:
        return []
    _check_deadline(deadline, limits)
    crops = engine.get_crop_img_list(img, found)
    corners = [(box[:, 0], box[:, 1]) for box in found]
    if _upside_down(engine, crops):
        height, width = img.shape[:2]
        crops = [np.ascontiguousarray(crop[::-1, ::-1]) for crop in crops]
        corners = [(width - xs, height - ys) for xs, ys in corners]
    # Lines of similar width share a batch, as RapidOCR itself sorts them, so little padding is recognised.
    order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / max(crops[i].shape[0], 1))
    batch = int(engine.text_rec.rec_batch_num)
    boxes: list[_Box] = []
    for start in range(0, len(order), batch):
        _check_deadline(deadline, limits)
        chosen = order[start : start + batch]
        results, _ = engine.text_rec([crops[i] for i in chosen])
        for i, (text, score, *_) in zip(chosen, results, strict=True):
            if float(score) >= limits.ocr_min_confidence and text.strip():
                xs, ys = corners[i]
                boxes.append(_Box(text.strip(), float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())))
    return boxes


def _upside_down(engine: Any, crops: list[np.ndarray]) -> bool:
    """Whether most lines read upside down: the page was scanned the wrong way round."""
    _, angles, _ = engine.text_cls(crops)
    threshold = float(engine.text_cls.cls_thresh)
    return 2 * sum(1 for label, score in angles if label == "180" and float(score) > threshold) > len(crops)


def _check_deadline(deadline: float, limits: LoadLimits) -> None:
    if time.monotonic() > deadline:
        raise UnreadableDocument(
            f"OCR of one page took longer than OCR_PAGE_TIMEOUT_S ({limits.ocr_page_timeout_s:g} s); "
            "raise OCR_PAGE_TIMEOUT_S or OCR_THREADS, or split the document"
        )


def _lines(boxes: list[_Box]) -> list[list[_Box]]:
    """Boxes grouped into visual lines, top to bottom, each line's boxes left to right."""
    lines: list[list[_Box]] = []
    for box in sorted(boxes, key=lambda b: b.middle):
        if lines:
            line = lines[-1]
            middle = statistics.fmean(b.middle for b in line)
            height = min(box.height, statistics.median(b.height for b in line))
            if abs(box.middle - middle) < height / 2:
                line.append(box)
                continue
        lines.append([box])
    return [sorted(line, key=lambda b: b.left) for line in lines]


def _paragraphs(lines: list[list[_Box]]) -> list[str]:
    """Lines joined into paragraphs; a gap well over the line height (and the page's usual gap) ends one."""
    if not lines:
        return []
    tops = [min(b.top for b in line) for line in lines]
    bottoms = [max(b.bottom for b in line) for line in lines]
    height = statistics.median(statistics.median(b.height for b in line) for line in lines)
    gaps = [max(tops[i + 1] - bottoms[i], 0.0) for i in range(len(lines) - 1)]
    # With three gaps or more, the usual one tells the page's line spacing (double-spaced text is no paragraph).
    usual = statistics.median(gaps) if len(gaps) >= 3 else 0.0
    paragraphs: list[str] = []
    current = _line_text(lines[0], height)
    for gap, line in zip(gaps, lines[1:], strict=True):
        text = _line_text(line, height)
        if gap > _PARAGRAPH_GAP * height and gap > _USUAL_GAP_FACTOR * usual:
            paragraphs.append(current)
            current = text
        else:
            current = _join(current, text)
    paragraphs.append(current)
    return paragraphs


def _line_text(line: list[_Box], height: float) -> str:
    text = line[0].text
    for before, box in zip(line, line[1:], strict=False):
        wide_gap = box.left - before.right > _CELL_GAP * height
        text = text + " " + box.text if wide_gap else _join(text, box.text)
    return text


def _join(left: str, right: str) -> str:
    """Two pieces of one sentence: CJK runs on without a space, Latin words are separated by one."""
    return left + right if _is_cjk(left[-1]) or _is_cjk(right[0]) else left + " " + right


def _is_cjk(char: str) -> bool:
    """Scripts written without spaces between words: Han, kana, and their punctuation and full-width forms."""
    point = ord(char)
    return (
        0x3000 <= point <= 0x30FF  # CJK punctuation, hiragana, katakana
        or 0x3400 <= point <= 0x4DBF  # Han extension A
        or 0x4E00 <= point <= 0x9FFF  # Han
        or 0xF900 <= point <= 0xFAFF  # Han compatibility
        or 0xFF00 <= point <= 0xFFEF  # full-width forms: ，：（）
        or 0x20000 <= point <= 0x3FFFF  # Han extensions B and later
    )
