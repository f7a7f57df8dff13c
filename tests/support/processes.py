"""Start the real parts for tests: a Redis (reused or started), Celery worker processes and the API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLAIM_KEY = "ragqueue:test-session"


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
    """A Redis server for the test session: the one at REDIS_URL if it answers, else our own."""

    host: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    claimed: list[int] = field(default_factory=list)

    def url(self, db: int) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    @classmethod
    def obtain(cls, tmp: Path) -> RedisServer:
        configured = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        if redis_answers(configured):
            parsed = redis.connection.parse_url(configured)
            return cls(host=parsed.get("host", "127.0.0.1"), port=int(parsed.get("port", 6379)))
        port = free_port()
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = cls(host="127.0.0.1", port=port, process=proc)
        _wait(lambda: redis_answers(server.url(0)), 10, "redis-server to answer")
        return server

    def claim_db(self, purpose: str) -> int:
        """A Redis DB no other test session is using (several may share one server), flushed for us."""
        for db in range(15, 0, -1):
            client = redis.Redis.from_url(self.url(db))
            if client.set(CLAIM_KEY, f"{os.getpid()} {purpose}", nx=True, ex=3600):
                client.flushdb()
                client.set(CLAIM_KEY, f"{os.getpid()} {purpose}", ex=3600)
                self.claimed.append(db)
                return db
        raise RuntimeError(f"every Redis DB 1-15 at {self.host}:{self.port} is claimed by another test session")

    def stop(self) -> None:
        for db in self.claimed:
            redis.Redis.from_url(self.url(db)).flushdb()
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
        _wait(self._ready, 90, f"{self.name} stack to be ready (logs in {self.log_dir})")
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

    def stop(self, name: str | None = None) -> None:
        for key in [name] if name else list(self.processes):
            proc = self.processes.pop(key)
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
