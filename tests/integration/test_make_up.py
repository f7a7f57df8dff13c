"""`make up` keeps its data and its processes (scripts/stack.sh): every program runs under supervisord, which
restarts one that dies and `make status` counts it; the Redis it starts keeps an append-only file in the run
folder; the API keeps idle connections for API_KEEPALIVE_S; `make down` leaves nothing running. Once more on
PostgreSQL (VECTOR_STORE=postgres). Each stack has its own run folder, ports and Redis."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import redis

from harness import local_http
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import BIN, ROOT, free_port
from tests.conftest import SAMPLE_DOCS
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.integration

T = TypeVar("T")
STACK_SH = str(ROOT / "scripts" / "stack.sh")
KEEPALIVE_S = 7  # past uvicorn's default (5 s) and unlike the setting's default (75 s): only the setting gives it
FLOWER_LOGIN = ("ragqueue", "make-up-test")
PROGRAMS = {"api", "beat", "flower", "worker-index", "worker-query-1"}
SAMPLE_COUNT = len([p for p in SAMPLE_DOCS.iterdir() if p.is_file()])


@dataclass
class Row:
    """One program's line of `make status`."""

    state: str
    pid: int
    restarts: int
    last_exit: str


@dataclass
class UpStack:
    """A stack `scripts/stack.sh up` started with a private run folder, DATA_DIR, ports and Redis."""

    root: Path
    env: dict[str, str]
    pids: set[int] = field(default_factory=set)  # every pid any program of it has had
    idle_close: Future[float] | None = None

    @classmethod
    def create(cls, root: Path, zhipu: ZhipuFakeServer, **extra: str) -> UpStack:
        ports = {name: str(free_port()) for name in ("API_PORT", "FLOWER_PORT", "REDIS_PORT")}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZHIPU", "LLM_", "EMBED_", "VECTOR_STORE"))}
        env.update(
            ports,
            RUN_DIR=str(root / "run"),
            DATA_DIR=str(root / "data"),
            REDIS_URL=f"redis://127.0.0.1:{ports['REDIS_PORT']}/0",  # nothing answers there: stack.sh starts one
            RAGQ_API=f"http://127.0.0.1:{ports['API_PORT']}",
            # Embeddings and answers from the local Zhipu-protocol server: indexing costs HTTP round trips, not
            # the local model's CPU, which the processes under test do not depend on.
            ZHIPU_API_KEY="test-key.secret",
            ZHIPUAI_BASE_URL=zhipu.base_url,
            FLOWER_BASIC_AUTH=":".join(FLOWER_LOGIN),  # set, so scripts/flower_auth.py writes no .env
            API_KEEPALIVE_S=str(KEEPALIVE_S),
            QUERY_WORKERS="1",
            QUERY_CONCURRENCY="4",
            OMP_NUM_THREADS="1",
            # RUNNING after 3 s up instead of 10: the tests wait for it three times, and no program here fails
            # to start, which is what the longer wait is for.
            SUPERVISOR_STARTSECS="3",
            NO_COLOR="1",
            COLUMNS="200",
            **extra,
        )
        return cls(root, env)

    @property
    def run_dir(self) -> Path:
        return Path(self.env["RUN_DIR"])

    @property
    def api(self) -> str:
        return self.env["RAGQ_API"]

    def port(self, name: str) -> int:
        return int(self.env[f"{name}_PORT"])

    def run(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)

    def status(self) -> tuple[dict[str, Row], str]:
        """`make status`, parsed: each program's row, and the whole output."""
        out = self.run("make", "--no-print-directory", "-s", "status", timeout=30).stdout
        rows = {}
        for line in out.splitlines()[2:]:
            if ":" in line.split(" ", 1)[0]:  # `redis: ...`, `postgres: ...`
                break
            name, state, pid, _uptime, restarts, *last_exit = line.split(None, 5)
            rows[name] = Row(state, int(pid) if pid.isdigit() else 0, int(restarts), "".join(last_exit))
        self.pids |= {row.pid for row in rows.values() if row.pid}
        return rows, out

    def rows(self) -> dict[str, Row]:
        return self.status()[0]


def wait_until(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def seconds_until_idle_close(port: int) -> float:
    """Send one keep-alive request, then time how long the server keeps the idle connection before closing it."""
    with socket.create_connection(("127.0.0.1", port), timeout=KEEPALIVE_S * 3) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response:
            response += conn.recv(4096)
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
        while len(body) < length:
            body += conn.recv(4096)
        idle_from = time.monotonic()
        while conn.recv(4096):  # b"" once the server closes it
            pass
        return time.monotonic() - idle_from


def option(pid: int, name: str) -> str:
    """The value after `name` on a running process's command line."""
    argv = (Path("/proc") / str(pid) / "cmdline").read_text().split("\0")
    return argv[argv.index(name) + 1]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def processes_of(run_dir: Path) -> list[str]:
    """Processes that got RUN_DIR=<run_dir> from stack.sh (supervisord, each program, pool children) or name it.
    Redis writes its process title over its environment: its pid and port are checked instead."""
    marker, found = f"RUN_DIR={run_dir}\0".encode(), []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if marker in (proc / "environ").read_bytes() or str(run_dir) in cmdline:
                found.append(f"{proc.name}: {cmdline}")
        except (OSError, ValueError):  # not a process, gone meanwhile, or not ours to read
            continue
    return found


def listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except ConnectionRefusedError:
        return False


def down_and_check_nothing_is_left(stack: UpStack, extra_pids: set[int]) -> None:
    pids = stack.pids | extra_pids | {int((stack.run_dir / f"{n}.pid").read_text()) for n in ("supervisord", "redis")}
    done = stack.run("make", "--no-print-directory", "-s", "down")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [pid for pid in pids if alive(pid)] == []
    assert processes_of(stack.run_dir) == []
    assert [p for p in ("API", "FLOWER", "REDIS") if listens(stack.port(p))] == []
    after = stack.run("make", "--no-print-directory", "-s", "status", timeout=30)
    assert after.returncode != 0 and "supervisord: not running" in after.stdout, after.stdout


def index_and_ask(stack: UpStack) -> None:
    """`ragq index docs/kb`, then `ragq ask`: the answer streams, then its sources."""
    indexed = stack.run(str(BIN / "ragq"), "index", "docs/kb", "-c", "demo")
    assert indexed.returncode == 0, indexed.stdout + indexed.stderr
    assert f"{SAMPLE_COUNT} documents indexed, 0 unchanged, 0 failed" in indexed.stdout
    asked = stack.run(str(BIN / "ragq"), "ask", "什么是 KV 缓存？", "-c", "demo")
    assert asked.returncode == 0, asked.stdout + asked.stderr
    answer, _, sources = asked.stdout.partition("Sources")
    assert answer.strip() and re.search(r"\[1\] kb/\S+\.(md|txt)", sources), asked.stdout
    assert re.search(r"\d+ pieces, first after [\d.]+ ms", asked.stderr), asked.stderr


@pytest.fixture(scope="module")
def stack(zhipu_server: ZhipuFakeServer) -> Iterator[UpStack]:
    # Not under pytest's basetemp, which a later pytest session makes private (see postgres_server in conftest).
    root = Path(tempfile.mkdtemp(prefix="ragqueue-up-"))
    up = UpStack.create(root, zhipu_server)
    try:
        with ThreadPoolExecutor(1) as background:
            started = up.run(STACK_SH, "up")
            assert started.returncode == 0, started.stdout + started.stderr
            # Timed in the background from the start, so the tests before the keep-alive one pay for its idle wait.
            up.idle_close = background.submit(seconds_until_idle_close, up.port("API"))
            yield up
    finally:
        up.run(STACK_SH, "down")
        shutil.rmtree(root, ignore_errors=True)


def all_running(stack: UpStack) -> tuple[dict[str, Row], str] | None:
    """`make status` once every program has stayed up past supervisord's startsecs."""
    rows, out = stack.status()
    return (rows, out) if {row.state for row in rows.values()} == {"RUNNING"} else None


def wait_all_running(stack: UpStack, timeout: float = 60) -> tuple[dict[str, Row], str]:
    """`all_running`, waited for; on a timeout the error holds the last `make status` and the tail of the log of
    each program not running, so a program that crashed or started slowly on a busy machine says which."""
    try:
        # Each `make status` is make, bash, supervisorctl and a Python script: about 0.2 s of CPU.
        return wait_until(lambda: all_running(stack), timeout, "every program to be RUNNING", every=0.5)
    except TimeoutError as exc:
        rows, out = stack.status()
        for name, row in rows.items():
            log = stack.run_dir / f"{name}.log"
            if row.state != "RUNNING" and log.exists():
                exc.add_note(f"--- {log} (last 2,000 characters):\n{log.read_text(errors='replace')[-2000:]}")
        exc.add_note(f"--- make status:\n{out}")
        raise


def test_every_program_runs_under_supervisord_and_the_api_is_ready(stack: UpStack) -> None:
    rows, out = wait_all_running(stack)
    assert {name: row.restarts for name, row in rows.items()} == dict.fromkeys(PROGRAMS, 0)
    assert f"redis: running (pid {(stack.run_dir / 'redis.pid').read_text().strip()}" in out
    assert local_http.get(f"{stack.api}/readyz", timeout=10).status_code == 200
    assert option(rows["worker-query-1"].pid, "-c") == stack.env["QUERY_CONCURRENCY"]
    flower = f"http://127.0.0.1:{stack.port('FLOWER')}/api/workers"
    assert local_http.get(flower, timeout=10).status_code == 401
    assert local_http.get(flower, auth=FLOWER_LOGIN, timeout=10).status_code == 200
    for name in PROGRAMS:
        assert (stack.run_dir / f"{name}.log").stat().st_size > 0, name


def test_a_killed_worker_is_restarted_and_make_status_counts_it(stack: UpStack) -> None:
    before = stack.rows()["worker-query-1"]
    os.kill(before.pid, signal.SIGKILL)

    def restarted() -> Row | None:
        row = stack.rows()["worker-query-1"]
        return row if row.state == "RUNNING" and row.pid != before.pid else None

    after = wait_until(restarted, 30, "supervisord to restart the killed worker", every=0.5)
    assert (after.restarts, after.last_exit) == (1, "terminated by SIGKILL; not expected")
    assert not alive(before.pid)
    others = {name: row.restarts for name, row in stack.rows().items() if name != "worker-query-1"}
    assert others == dict.fromkeys(PROGRAMS - {"worker-query-1"}, 0)


def test_the_api_keeps_idle_connections_for_api_keepalive_s(stack: UpStack) -> None:
    assert option(stack.rows()["api"].pid, "--timeout-keep-alive") == str(KEEPALIVE_S)
    assert stack.idle_close is not None
    idle = stack.idle_close.result(timeout=KEEPALIVE_S * 3)
    assert KEEPALIVE_S - 0.5 < idle < KEEPALIVE_S + 2, f"closed after {idle:.1f} s of idle"


def test_ragq_indexes_the_sample_kb_and_streams_an_answer(stack: UpStack) -> None:
    index_and_ask(stack)


def test_redis_keeps_job_records_across_a_restart(stack: UpStack) -> None:
    client = redis.Redis(port=stack.port("REDIS"), decode_responses=True)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert client.config_get("dir") == {"dir": str(stack.run_dir / "redis")}
    with local_http.client(base_url=stack.api, timeout=30) as api:
        files = {"files": ("aof.md", b"# AOF\n\nThe append-only file survives a restart.\n", "text/markdown")}
        accepted = api.post("/v1/collections/aof/documents", files=files)
        assert accepted.status_code == 202, accepted.text
        job, _ = wait_for_job(api, accepted.json()["job_id"], timeout=60)
        assert job["state"] == "succeeded", job
        redis_pid = int((stack.run_dir / "redis.pid").read_text())
        client.shutdown()  # a clean stop, which writes nothing without an append-only file (no RDB saves)
        wait_until(lambda: not alive(redis_pid), 10, "Redis to stop")
        # What `make up` runs first: it starts Redis again, from the run folder.
        again = stack.run(str(ROOT / "scripts" / "ensure_redis.sh"))
        assert again.returncode == 0, again.stdout + again.stderr
        assert int((stack.run_dir / "redis.pid").read_text()) != redis_pid

        def record() -> httpx.Response | None:
            response = api.get(f"/v1/jobs/{job['id']}")
            return None if response.status_code == 503 else response  # a pooled connection to the old Redis

        assert wait_until(record, 10, "the API to reach the new Redis").json() == job


def test_make_down_leaves_no_process_and_frees_every_port(stack: UpStack) -> None:
    wait_all_running(stack)
    down_and_check_nothing_is_left(stack, set())


def test_make_up_on_postgresql_indexes_answers_and_stops_it(zhipu_server: ZhipuFakeServer) -> None:
    # scripts/ensure_postgres.py keeps PostgreSQL in $RUN_DIR/postgres, listening on no TCP port, only on a Unix
    # socket in that folder: the private run folder is all it needs to be the test's own.
    root = Path(tempfile.mkdtemp(prefix="ragqueue-up-pg-"))
    up = UpStack.create(root, zhipu_server, VECTOR_STORE="postgres")
    try:
        started = up.run(STACK_SH, "up")
        assert started.returncode == 0, started.stdout + started.stderr
        rows, out = wait_all_running(up)
        assert set(rows) == PROGRAMS
        postmaster = int((up.run_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        assert f"postgres: running (pid {postmaster}" in out
        api_environ = (Path("/proc") / str(rows["api"].pid) / "environ").read_bytes().split(b"\0")
        assert any(v.startswith(b"VECTOR_STORE_URL=postgresql://") for v in api_environ)
        assert local_http.get(f"{up.api}/readyz", timeout=10).status_code == 200
        index_and_ask(up)
        assert not (root / "data" / "collections").exists()  # the chunks went to PostgreSQL
        down_and_check_nothing_is_left(up, {postmaster})
        assert not (up.run_dir / "postgres" / "postmaster.pid").exists()
    finally:
        up.run(STACK_SH, "down")
        shutil.rmtree(root, ignore_errors=True)
