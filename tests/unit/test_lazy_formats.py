"""A worker starts, and answers questions, without the format libraries or the OCR runtime loaded."""

from __future__ import annotations

import json
import subprocess
import sys

from workers.loaders import LOADERS

HEAVY = ("onnxruntime", "rapidocr_onnxruntime", "cv2", "openpyxl", "pptx", "pypdfium2", "bs4")


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_starting_a_worker_loads_no_format_library_or_ocr_runtime() -> None:
    # One process imports the app, then each task module, and notes what was loaded after each: what appears first
    # after a module's import is that module's doing (a process each cost about 4 s of CPU).
    probe = (
        "import importlib, json, sys\n"
        "for module in ('workers.celery_app', 'workers.tasks.query', 'workers.tasks.index'):\n"
        "    importlib.import_module(module)\n"
        "    print(json.dumps([module, sorted(sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    heavy_after = {module: [n for n in HEAVY if n in loaded] for module, loaded in map(json.loads, out.splitlines())}
    assert heavy_after == {"workers.celery_app": [], "workers.tasks.query": [], "workers.tasks.index": []}


def test_reading_a_text_file_loads_no_format_library() -> None:
    loaded = modules_after(
        "import pathlib, tempfile\n"
        "from workers.loaders import load_sections\n"
        "p = pathlib.Path(tempfile.mkdtemp()) / 'a.md'\n"
        "p.write_text('# 标题\\n正文')\n"
        "load_sections(p)"
    )
    assert not [name for name in HEAVY if name in loaded]


def test_every_format_names_a_loader_that_exists() -> None:
    for suffix, found in LOADERS.items():
        assert callable(found.loader()), suffix
