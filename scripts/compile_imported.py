"""Compile to bytecode what ragqueue's programs and tests import, by importing it with bytecode writing on.

    .venv/bin/python scripts/compile_imported.py

Run by scripts/bootstrap.sh once the packages are installed. uv's --compile-bytecode compiled every module of the
venv, 12,300, in 26 s of the install on 2 cores; a whole test run imports about 4,700 of them (pandas, networkx,
pip and mypy's sources, for instance, never). Here two processes, side by side, import our programs' modules with
every format loader's libraries, and our test modules with pytest's plugins, so each module they reach is
compiled once, when first imported; the libraries below are compiled file by file (4,800 modules in 19 s). One
left out costs what it did before any compiling: each process that imports it compiles it in memory (with
PYTHONDONTWRITEBYTECODE set, as on CI machines, nothing writes it later).
"""

from __future__ import annotations

import compileall
import contextlib
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = {
    "programs": ("api", "workers", "shared", "cli"),
    "tests": ("harness", "tests"),
}
# Loaded by pytest itself (pyproject.toml's addopts) or by the browser tests at run time.
TEST_LIBRARIES = (
    "xdist.plugin",
    "xdist.remote",
    "pytest_timeout",
    "_hypothesis_pytestplugin",
    "schemathesis.pytest.plugin",
    "playwright.sync_api",
)


# Libraries whose modules load on first use (an HTTP request's transport, an image's format plugin, the OCR
# engine's geometry, supervisord): every file of each is compiled, without importing it, since which modules a run
# loads depends on what it meets.
COMPILED_LIBRARIES = (
    "httpcore",
    "httpcore2",
    "anyio",
    "websockets",
    "PIL",
    "shapely",
    "rapidocr_onnxruntime",
    "pyrate_limiter",
    "supervisor",
    "openai.resources",
    "openai.lib.streaming",
)


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException:  # one that fails here (or skips: pytest's skip is a BaseException) fails where it is used
        pass


def _compile_library(name: str) -> None:
    with contextlib.suppress(Exception):
        spec = importlib.util.find_spec(name)
        for folder in (spec and spec.submodule_search_locations) or ():
            compileall.compile_dir(folder, quiet=2)


def import_side(side: str) -> None:
    """Import every module of the side's packages, then what they load on first use."""
    sys.dont_write_bytecode = False
    sys.path.insert(0, str(ROOT))
    for package in SIDES[side]:
        _import(package)
        for info in pkgutil.walk_packages(sys.modules[package].__path__, f"{package}.", onerror=lambda _: None):
            _import(info.name)
    if side == "programs":
        for library in COMPILED_LIBRARIES:
            _compile_library(library)
        from workers.loaders import LOADERS

        for found in LOADERS.values():  # the format and OCR libraries, imported by a loader's first use
            with contextlib.suppress(Exception):
                found.loader()
    else:
        from harness.launcher import PROGRAM_MODULES  # what the console scripts import beyond our modules

        for name in (*TEST_LIBRARIES, *PROGRAM_MODULES):
            _import(name)


def main() -> None:
    if len(sys.argv) > 1:
        import_side(sys.argv[1])
        return
    sides = [subprocess.Popen([sys.executable, __file__, side], cwd=ROOT) for side in SIDES]
    sys.exit(max(side.wait() for side in sides))


if __name__ == "__main__":
    main()
