"""Start the real parts for tests: the session's own Redis, Celery worker processes and the API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import httpx
import redis

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
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Per-process environment on top of `env` (e.g. a DATA_DIR of its own), by process name.
    env_for: dict[str, dict[str, str]] = field(default_factory=dict)
    # Every stack this process has spawned into, so `stop_all` can end the ones a failed fixture left running.
    spawned: ClassVar[list[Stack]] = []

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

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{self.name}-{name}.log").open("ab")
        env = {**self.env, **self.env_for.get(name, {})}
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = proc
        if self not in Stack.spawned:
            Stack.spawned.append(self)
        return proc

    def start_worker(self, name: str, queues: str, pool: str, concurrency: int) -> subprocess.Popen[bytes]:
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
            return httpx.get(f"{self.base_url}/readyz", timeout=3).status_code == 200
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
