"""Helpers for the contract tests: waiting on a condition, a stack's effective settings, a Redis proxy that can
hold one command, and an API process of its own beside a stack's workers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from harness import local_http
from harness.processes import BIN, Process, Stack, free_port
from shared.settings import Settings


def wait_until(check: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `check` until it returns something true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not reached in {timeout} s")


def stack_setting(stack: Stack, name: str) -> float:
    """A number setting as the stack's processes read it: their environment, else the Settings default."""
    default = Settings.model_fields[name].default
    return float(stack.env.get(name, default))


def spawn_api(stack: Stack, name: str, env: dict[str, str]) -> str:
    """Start one more API process on `stack` (its workers and DATA_DIR) with `env` on top; wait for /readyz 200."""
    stack.env_for[name] = env
    port = free_port()
    process = stack.spawn(
        name,
        [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _ready(url, process), 60, f"API process {name} ready (log in {stack.log_dir})")
    return url


def start_api_only(stack: Stack) -> Stack:
    """`stack` with its API process and no worker, once /healthz answers (/readyz is 503 without workers)."""
    stack.import_dir.mkdir(parents=True, exist_ok=True)
    process = stack.spawn(
        "api",
        [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(stack.api_port)],
    )
    wait_until(
        lambda: _answers(f"{stack.base_url}/healthz", process), 60, f"{stack.name} API (logs in {stack.log_dir})"
    )
    return stack


def _answers(url: str, process: Process) -> bool:
    assert process.poll() is None, f"the API process exited with {process.returncode}"
    try:
        return local_http.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _ready(url: str, process: Process) -> bool:
    return _answers(f"{url}/readyz", process)


@dataclass
class HoldingProxy:
    """A TCP proxy in front of Redis that can hold the next command containing a marker, until released.

    The connection that sent it stalls as if Redis were slow to answer it; every other connection flows. It
    also counts how often a marker went by (client to server), so a test can wait for a request to be polling.
    """

    target_port: int
    port: int = field(default_factory=free_port)
    _hold: bytes | None = None
    holding: threading.Event = field(default_factory=threading.Event)
    _release: threading.Event = field(default_factory=threading.Event)
    _counted: dict[bytes, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sockets: list[socket.socket] = field(default_factory=list)
    _listener: socket.socket | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> HoldingProxy:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True, name="holding-proxy").start()
        return self

    def hold_next(self, marker: bytes) -> None:
        """Hold the next client-to-server chunk holding `marker`; `holding` is set once it is held."""
        with self._lock:
            self._hold = marker
            self.holding.clear()
            self._release.clear()

    def release(self) -> None:
        """Forward what was held, and everything after it."""
        self._release.set()

    def count(self, marker: bytes) -> int:
        """How many client-to-server chunks held `marker` since it was first asked about."""
        with self._lock:
            return self._counted.setdefault(marker, 0)

    def close(self) -> None:
        self._release.set()
        for sock in [self._listener, *self._sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if upstream and self._inspect(chunk):
                    self._release.wait()
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _inspect(self, chunk: bytes) -> bool:
        """Count the markers asked about in `chunk`; True if it is the one to hold."""
        with self._lock:
            for marker in self._counted:
                self._counted[marker] += marker in chunk
            if self._hold is not None and self._hold in chunk:
                self._hold = None
                self.holding.set()
                return True
        return False
