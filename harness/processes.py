"""Start the real parts for tests: the session's own Redis, Celery worker processes and the API."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import httpx
import redis

from harness import local_http
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLAIM_KEY = "ragqueue:test-session"
DATABASES = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@dataclass
class RedisServer:
    """The test session's own redis-server, on a free port with a private folder: never the machine's Redis,
    so two test runs on one machine (two checkouts, a review run beside CI) cannot see each other's data."""

    host: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    claimed: list[int] = field(default_factory=list)

    def url(self, db: int) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    @classmethod
    def start(cls, folder: Path) -> RedisServer:
        port = free_port()
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)]
        proc = subprocess.Popen(
            ["redis-server", *args, "--databases", str(DATABASES)],
            stdout=(folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        server = cls(host="127.0.0.1", port=port, process=proc)
        _wait(lambda: redis_answers(server.url(0)), 10, f"redis-server on port {port} (log in {folder})")
        return server

    def claim_db(self, purpose: str) -> int:
        """A Redis DB of its own for one stack or test (they share the session's server), flushed for it."""
        db = len(self.claimed) + 1
        if db >= DATABASES:
            raise RuntimeError(f"the test Redis has {DATABASES} DBs and all are claimed; raise DATABASES")
        client = redis.Redis.from_url(self.url(db))
        client.flushdb()
        client.set(CLAIM_KEY, f"{os.getpid()} {purpose}")
        self.claimed.append(db)
        return db

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)


class Process(Protocol):
    """What the tests use of a started program: `subprocess.Popen` or `LaunchedProcess`."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def send_signal(self, sig: int) -> None: ...


class LaunchedProcess:
    """A program forked by the launcher (harness/launcher.py), with Popen's methods: its exit status comes over
    the connection it was requested on, since the test process is not its parent."""

    def __init__(self, args: list[str], pid: int, conn: socket.socket, pending: bytes = b"") -> None:
        self.args, self.pid, self._conn = args, pid, conn
        self._returncode: int | None = None
        self._pending = pending  # what arrived after the `pid` line: the exit line of a program that ended at once

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def _read(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._returncode is None:
            if b"\n" in self._pending:
                line = self._pending.split(b"\n", 1)[0].decode()
                self._returncode = int(line.removeprefix("exit "))
                self._conn.close()
                return
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._conn.settimeout(left)
            try:
                data = self._conn.recv(256)
            except (TimeoutError, BlockingIOError):
                return
            if not data:  # the launcher ended without a word: the program's fate is unknown, say so
                raise RuntimeError(f"the launcher closed the connection of pid {self.pid} ({self.args[:3]})")
            self._pending += data

    def poll(self) -> int | None:
        self._read(0)
        return self._returncode

    def wait(self, timeout: float | None = None) -> int:
        self._read(timeout)
        if self._returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Launcher:
    """The launcher (harness/launcher.py) a test process forks its programs from: the one whose socket
    `SOCKET_ENV` names (the test session's, shared by its pytest-xdist processes), else one of its own."""

    SOCKET_ENV: ClassVar[str] = "RAGQUEUE_TEST_LAUNCHER"
    _instance: ClassVar[Launcher | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, socket_path: str, process: subprocess.Popen[bytes] | None = None) -> None:
        self.socket, self.process = socket_path, process

    @classmethod
    def start(cls) -> Launcher:
        """Start a launcher, without waiting for its imports (seconds): `launch` waits for its socket, so the
        imports overlap whatever runs meanwhile (the test processes' start and collection)."""
        folder = Path(tempfile.mkdtemp(prefix="ragqueue-launcher-"))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        launcher = cls(str(folder / "launcher.sock"))
        launcher.process = subprocess.Popen(
            [sys.executable, "-m", "harness.launcher", launcher.socket],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,  # it exits when this closes, with the process that started it
            stdout=subprocess.DEVNULL,
        )
        atexit.register(launcher.stop)
        return launcher

    @classmethod
    def share(cls) -> None:
        """Start this process's launcher now and name it in the environment, for the processes it starts next."""
        os.environ[cls.SOCKET_ENV] = cls.get().socket

    @classmethod
    def get(cls) -> Launcher:
        with cls._lock:
            if cls._instance is None:
                shared = os.environ.get(cls.SOCKET_ENV)
                cls._instance = Launcher(shared) if shared else Launcher.start()
            return cls._instance

    def _connect(self, timeout: float = 120) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(self.socket)
                return conn
            except (FileNotFoundError, ConnectionRefusedError):  # still importing
                conn.close()
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"harness.launcher exited with {self.process.returncode}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"harness.launcher did not listen on {self.socket} in {timeout} s") from None
                time.sleep(0.05)

    def launch(self, args: list[str], env: dict[str, str], log: Path, stderr: Path | None = None) -> LaunchedProcess:
        """Fork `args` (a console script of this venv); its output goes to `log`, or to `log` and `stderr` apart."""
        conn = self._connect()
        files = {"stdout": str(log), "stderr": str(stderr)} if stderr else {"log": str(log)}
        conn.sendall(json.dumps({"argv": args, "env": env, "cwd": str(ROOT), **files}).encode() + b"\n")
        reply = b""
        while b"\n" not in reply and (chunk := conn.recv(256)):
            reply += chunk
        line, _, rest = reply.partition(b"\n")
        if not line.startswith(b"pid "):
            conn.close()
            raise RuntimeError(f"harness.launcher could not start {args[:3]}: {reply.decode().strip()}")
        return LaunchedProcess(args, int(line[4:]), conn, rest)

    def stop(self) -> None:
        """End the launcher this process started, and remove the folder of its socket (a shared one is its
        starter's to stop)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:  # still importing (a short session on a busy machine): not needed now
                self.process.kill()
                self.process.wait()
        shutil.rmtree(Path(self.socket).parent, ignore_errors=True)


def is_console_script(path: str) -> bool:
    """A script of this venv that runs under its Python (celery, uvicorn, ragq), which the launcher can start."""
    try:
        with open(path, "rb") as script:
            return script.readline().strip() == f"#!{sys.executable}".encode()
    except OSError:
        return False


def _forked(args: list[str]) -> bool:
    """Whether `args` starts as a fork of the launcher: a console script of this venv, when the suite uses one."""
    return Stack.use_launcher and is_console_script(args[0])


def start_program(args: list[str], env: dict[str, str], log: Path) -> Process:
    """Start a program with its output in `log`: a console script of this venv as a fork of the launcher when the
    test suite uses one (`Stack.use_launcher`), anything else with Popen."""
    if _forked(args):
        return Launcher.get().launch(args, env, log)
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def run_program(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(args, capture_output=True, text=True)` from the project's folder, with no stdin; a console
    script of this venv is forked by the launcher when the suite uses one, saving its interpreter's start and
    imports (most of a short command's CPU)."""
    if not _forked(args):
        return subprocess.run(
            args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    with tempfile.TemporaryDirectory(prefix="ragqueue-run-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        proc = Launcher.get().launch(args, env, out, stderr=err)
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise
        return subprocess.CompletedProcess(
            args, returncode, out.read_text(errors="replace"), err.read_text(errors="replace")
        )


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


@dataclass
class Stack:
    """One API process and its Celery workers, sharing a Redis DB and a DATA_DIR."""

    name: str
    env: dict[str, str]
    log_dir: Path
    api_port: int = field(default_factory=free_port)
    processes: dict[str, Process] = field(default_factory=dict)
    # Per-process environment on top of `env` (e.g. a DATA_DIR of its own), by process name.
    env_for: dict[str, dict[str, str]] = field(default_factory=dict)
    # Every stack this process has spawned into, so `stop_all` can end the ones a failed fixture left running.
    spawned: ClassVar[list[Stack]] = []
    # Start this venv's console scripts as forks of the launcher (harness/launcher.py), which has their libraries
    # imported already: the test suite turns it on (tests/conftest.py); benchmarks start every program afresh.
    use_launcher: ClassVar[bool] = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def keepalive_s(self) -> int:
        """The API's idle keep-alive timeout, as `make up` passes it to uvicorn (the API_KEEPALIVE_S setting)."""
        return int(self.env.get("API_KEEPALIVE_S", Settings.model_fields["API_KEEPALIVE_S"].default))

    @property
    def data_dir(self) -> Path:
        return Path(self.env["DATA_DIR"])

    @property
    def import_dir(self) -> Path:
        return self.data_dir / "import"

    def spawn(self, name: str, args: list[str]) -> Process:
        """Start one program of the stack, logging to <log_dir>/<stack>-<name>.log: a console script of this venv
        through the launcher (harness/launcher.py), anything else with Popen."""
        log = self.log_dir / f"{self.name}-{name}.log"
        proc = start_program(args, {**self.env, **self.env_for.get(name, {})}, log)
        self.processes[name] = proc
        if self not in Stack.spawned:
            Stack.spawned.append(self)
        return proc

    def start_worker(self, name: str, queues: str, pool: str, concurrency: int) -> Process:
        return self.spawn(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "workers.celery_app:app",
                "worker",
                "-Q",
                queues,
                "-P",
                pool,
                "-c",
                str(concurrency),
                "-n",
                f"{self.name}-{name}@%h",
                "--loglevel=INFO",
                "--without-mingle",
                "--without-gossip",
            ],
        )

    def start(self, workers: list[tuple[str, str, str, int]]) -> Stack:
        self.import_dir.mkdir(parents=True, exist_ok=True)
        for worker in workers:
            self.start_worker(*worker)
        self.spawn(
            "api",
            [
                str(BIN / "uvicorn"),
                "api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--log-level",
                "warning",
                "--timeout-keep-alive",
                str(self.keepalive_s),
            ],
        )
        try:
            _wait(self._ready, 90, f"{self.name} stack to be ready (logs in {self.log_dir})")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                log = (self.log_dir / f"{self.name}-{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{self.name} {name} exited with {proc.returncode}:\n{log}")
        try:
            return local_http.get(f"{self.base_url}/readyz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    @classmethod
    def stop_all(cls) -> None:
        """Stop whatever any stack of this process still runs: a fixture that failed after starting its stack
        never reaches its own teardown, and its workers would outlive the test run."""
        for stack in cls.spawned:
            stack.stop()
        cls.spawned.clear()

    def stop(self, name: str | None = None) -> None:
        """Stop one process, or every process of the stack: all get SIGTERM first, so their shutdowns overlap."""
        stopping = [self.processes.pop(key) for key in ([name] if name else list(self.processes))]
        for proc in stopping:
            proc.terminate()
        deadline = time.monotonic() + 15
        for proc in stopping:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
