"""OCR throughput and accuracy on scanned Chinese pages: ragqueue's RapidOCR path against Tesseract (chi_sim).

The scans are made here, with known text: paragraphs of docs/kb set on A4 in the CID font STSong-Light
(reportlab), rasterised by PDFium at the scan resolution in grey, tilted a little, speckled, and saved as JPEG
inside an image-only PDF, as an office scanner writes one. PDFium needs a CJK system font to draw
STSong-Light (Debian: fonts-wqy-microhei). Both engines read the same bitmaps; ragqueue's own path (load_pdf:
PDFium render, then OCR) is timed on the PDF too. Tesseract is run through its CLI, one process per page, as a
worker would call it (Debian: tesseract-ocr tesseract-ocr-chi-sim); it is not a project dependency.

Figures: pages/s (wall), CPU seconds per page (all threads; Tesseract's from its own processes), character
accuracy (1 - edit distance / length, whitespace removed, both sides normalised as the indexer does, which keeps
Chinese punctuation full-width; then again on letters and digits only), model load time and resident memory.

Run from the repository root:  .venv/bin/python -m bench.ocr_throughput --help
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageChops
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from shared.ingest.text_normalize import normalize_text
from workers.loaders.limits import LoadLimits
from workers.loaders.ocr import load_engine, ocr_image
from workers.loaders.pdf import load_pdf

ROOT = Path(__file__).resolve().parents[1]
FONT = "STSong-Light"
FONT_PT, LEADING_PT, MARGIN_PT = 12, 18, 60


@dataclass
class Run:
    engine: str
    path: str
    pages: int
    wall_s: float
    cpu_s: float
    accuracy: float
    letters: float
    load_s: float | None = None
    rss_mib: float | None = None
    peak_mib: float | None = None


def kb_pages(count: int) -> list[list[str]]:
    """`count` A4 pages of docs/kb paragraphs wrapped to the text width; "" between paragraphs."""
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    paragraphs = []
    for path in sorted((ROOT / "docs" / "kb").glob("*.*")):
        for block in path.read_text(encoding="utf-8").split("\n\n"):
            text = re.sub(r"^#+\s*|[*`]", "", block.strip()).replace("\n", "")
            if text:
                paragraphs.append(text)
    width = A4[0] - 2 * MARGIN_PT
    per_page = int((A4[1] - 2 * MARGIN_PT) // LEADING_PT)
    lines: list[str] = []
    for paragraph in paragraphs:
        line = ""
        for char in paragraph:
            if pdfmetrics.stringWidth(line + char, FONT, FONT_PT) > width:
                lines.append(line)
                line = ""
            line += char
        lines += [line, ""]
    pages = [lines[i : i + per_page] for i in range(0, len(lines), per_page)][:count]
    if len(pages) < count:
        raise SystemExit(f"docs/kb fills only {len(pages)} pages; ask for fewer")
    return pages


def scans(pages: list[list[str]], dpi: int, skew: float, seed: int) -> list[Image.Image]:
    """Each page set in STSong-Light, rasterised in grey at `dpi`, tilted, speckled and passed through JPEG."""
    if not _draws_cjk():
        raise SystemExit("PDFium drew no Chinese: install a CJK font (apt-get install fonts-wqy-microhei)")
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for lines in pages:
        pdf.setFont(FONT, FONT_PT)
        for row, line in enumerate(lines):
            pdf.drawString(MARGIN_PT, A4[1] - MARGIN_PT - FONT_PT - LEADING_PT * row, line)
        pdf.showPage()
    pdf.save()
    document = pdfium.PdfDocument(buffer.getvalue())
    rng = np.random.default_rng(seed)
    images = []
    for page in document:
        grey = page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
        tilted = grey.rotate(skew, resample=Image.Resampling.BICUBIC, fillcolor=255)
        noisy = np.asarray(tilted, dtype=np.float64) * 0.94 + rng.normal(8.0, 6.0, (tilted.height, tilted.width))
        jpeg = io.BytesIO()
        Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8)).save(jpeg, "JPEG", quality=75)
        images.append(Image.open(io.BytesIO(jpeg.getvalue())).convert("L"))
    document.close()
    return images


def _draws_cjk() -> bool:
    """Whether PDFium finds a CJK font for STSong-Light (not embedded in such PDFs; without one it draws nothing)."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(100, 40))
    pdf.setFont(FONT, 20)
    pdf.drawString(10, 10, "中文")
    pdf.save()
    document = pdfium.PdfDocument(buffer.getvalue())
    grey = document[0].render(grayscale=True).to_pil().convert("L")
    document.close()
    return ImageChops.invert(grey).getbbox() is not None


def accuracy(found: str, truth: str, letters_only: bool = False) -> float:
    """1 - Levenshtein distance / len(truth), on normalised text without whitespace (or letters and digits only)."""
    a, b = (_comparable(text, letters_only) for text in (found, truth))
    previous = np.arange(len(a) + 1)
    codes = np.array([ord(c) for c in a])
    steps = np.arange(len(a) + 1)
    for i, char in enumerate(b, 1):
        kept = np.minimum(previous[1:] + 1, previous[:-1] + (codes != ord(char)))
        row = np.concatenate(([i], kept))
        previous = np.minimum.accumulate(row - steps) + steps  # insertions, run along the row at once
    return max(0.0, 1.0 - previous[-1] / max(len(b), 1))


def _comparable(text: str, letters_only: bool) -> str:
    """The text as the indexer normalises it (Chinese punctuation kept full-width), without whitespace."""
    kept = "".join(normalize_text(text).split())
    return "".join(c for c in kept if unicodedata.category(c)[0] in "LN") if letters_only else kept


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS), or its peak since the last `reset_peak` (VmHWM)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def reset_peak() -> None:
    """Start VmHWM again from the current RSS, so a peak is the OCR's own and not the scan generation's."""
    Path("/proc/self/clear_refs").write_text("5")


def bench_rapidocr(images: list[Image.Image], truths: list[str], pdf_path: Path, threads: int) -> list[Run]:
    limits = LoadLimits(ocr_threads=threads, ocr_page_timeout_s=600)
    before, wall = rss_mib(), time.perf_counter()
    load_engine(limits)  # imports onnxruntime and OpenCV, opens the three models
    load_s, loaded = time.perf_counter() - wall, rss_mib()
    print(f"RapidOCR: RSS {before:.0f} MiB before the models, {loaded:.0f} MiB after ({loaded - before:+.0f})")
    ocr_image(images[0], limits)  # warm-up: ONNX Runtime sizes its buffers on the first page
    reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    texts = [ocr_image(image, limits) for image in images]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    name = "RapidOCR PP-OCRv4 (ragqueue)"
    engine = Run(
        name, "same bitmaps", len(texts), wall, cpu, *_accuracies(texts, truths), load_s, loaded, rss_mib("VmHWM")
    )
    print(f"RapidOCR: RSS {rss_mib():.0f} MiB after the pages")
    reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    sections = load_pdf(pdf_path, limits)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    accurate = _accuracies([s.text for s in sections], truths)
    return [engine, Run(name, "load_pdf: render + OCR", len(sections), wall, cpu, *accurate, peak_mib=rss_mib("VmHWM"))]


# What an index worker process imports, then the OCR models it loads on its first scanned page.
_WORKER_PROBE = """
import json, re, sys, time
from pathlib import Path
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
import workers.celery_app, workers.tasks.index
from workers.loaders.limits import LoadLimits
from workers.loaders.ocr import load_engine
before, started = rss(), time.perf_counter()
load_engine(LoadLimits(ocr_threads=int(sys.argv[1])))
print(json.dumps([before, rss(), time.perf_counter() - started]))
"""


def worker_model_load(threads: int) -> tuple[float, float, float]:
    """An index worker's RSS before and after the OCR models load, and the seconds they take, in a fresh process."""
    command = [sys.executable, "-c", _WORKER_PROBE, str(threads)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    before, after, seconds = json.loads(done.stdout.splitlines()[-1])
    return before, after, seconds


# Runs one command and reports its peak RSS (KiB) and CPU seconds: measured from this small process, the
# figures are Tesseract's own, not inflated by a fork of the bench's large one.
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:])\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime, file=sys.stderr)\n"
    "sys.exit(done.returncode)"
)


def bench_tesseract(images: list[Image.Image], truths: list[str], threads: int, folder: Path) -> list[Run]:
    if shutil.which("tesseract") is None:
        print("tesseract not found (apt-get install -y tesseract-ocr tesseract-ocr-chi-sim): skipped")
        return []
    env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}

    def read(path: Path) -> tuple[str, float, float]:
        command = ["tesseract", str(path), "stdout", "-l", "chi_sim", "--psm", "3"]
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *command], env=env, capture_output=True, text=True, check=True
        )
        peak_kib, cpu_s = done.stderr.split()[-2:]
        return done.stdout, int(peak_kib) / 1024, float(cpu_s)

    Image.new("L", (64, 64), 255).save(folder / "blank.png")
    wall = time.perf_counter()
    read(folder / "blank.png")  # process start and chi_sim model load, no text
    load_s = time.perf_counter() - wall
    paths = []
    for number, image in enumerate(images):
        paths.append(folder / f"page-{number}.png")
        image.save(paths[-1])
    wall = time.perf_counter()
    runs = [read(path) for path in paths]
    wall_s = time.perf_counter() - wall
    texts = [text for text, _, _ in runs]
    peak, cpu = max(peak for _, peak, _ in runs), sum(cpu for _, _, cpu in runs)
    accurate = _accuracies(texts, truths)
    return [Run("Tesseract 5 chi_sim (LSTM)", "same bitmaps", len(texts), wall_s, cpu, *accurate, load_s, None, peak)]


def _accuracies(texts: list[str], truths: list[str]) -> tuple[float, float]:
    """Mean character accuracy over the pages: all characters, then letters and digits only."""
    pairs = list(zip(texts, truths, strict=True))
    return (
        float(np.mean([accuracy(text, truth) for text, truth in pairs])),
        float(np.mean([accuracy(text, truth, letters_only=True) for text, truth in pairs])),
    )


def table(runs: list[Run]) -> str:
    def cell(value: float | None, digits: int) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    rows = [
        "| engine | input | pages | pages/s | CPU s/page | char accuracy | without punctuation | model load s "
        "| RSS after load MiB | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        rows.append(
            f"| {r.engine} | {r.path} | {r.pages} | {r.pages / r.wall_s:.2f} | {r.cpu_s / r.pages:.2f} "
            f"| {r.accuracy:.4f} | {r.letters:.4f} "
            f"| {cell(r.load_s, 2)} | {cell(r.rss_mib, 0)} | {cell(r.peak_mib, 0)} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ocr_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pages", type=int, default=6, help="A4 pages of docs/kb text to scan (default 6)")
    parser.add_argument("--dpi", type=int, default=200, help="scan resolution of the generated pages (default 200)")
    parser.add_argument("--skew", type=float, default=0.4, help="degrees the scans are tilted (default 0.4)")
    parser.add_argument("--threads", type=int, default=2, help="OCR_THREADS, and Tesseract's OMP_THREAD_LIMIT")
    parser.add_argument("--engines", default="rapidocr,tesseract", help="comma-separated: rapidocr, tesseract")
    parser.add_argument("--keep", type=Path, help="also write the scanned PDF and page PNGs to this folder")
    args = parser.parse_args(argv)
    engines = set(args.engines.split(","))
    if "rapidocr" in engines:
        before, after, seconds = worker_model_load(args.threads)
        print(
            f"index worker process: RSS {before:.0f} MiB after its imports, {after:.0f} MiB with the OCR models "
            f"({after - before:+.0f}), loaded in {seconds:.2f} s"
        )
    pages = kb_pages(args.pages)
    truths = ["".join(lines) for lines in pages]
    images = scans(pages, args.dpi, args.skew, seed=11)
    print(
        f"{len(images)} pages, {sum(map(len, truths))} characters, {images[0].width}×{images[0].height} px; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="ocr-bench-") as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        pdf_path = folder / "scanned.pdf"
        images[0].save(pdf_path, "PDF", resolution=args.dpi, save_all=True, append_images=images[1:])
        runs = []
        if "rapidocr" in engines:
            runs += bench_rapidocr(images, truths, pdf_path, args.threads)
        if "tesseract" in engines:
            runs += bench_tesseract(images, truths, args.threads, folder)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
