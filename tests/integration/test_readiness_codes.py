"""`/readyz` answers 503 with the code of what is wrong, each caused for real (docs/api.md, docs/operations.md).

One API process on a Redis of its own, with no worker unless a test starts one: `no_workers`, `no_index_workers`
(a query worker only, an index job waiting), `store_unavailable` (the collection store cannot be read) and
`broker_unavailable` (Redis answers but takes no writes, as an old primary demoted to a replica does). A ready
stack and `no_query_workers` are in test_readiness.py and test_admission.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from harness import local_http
from harness.processes import RedisServer, Stack, free_port
from tests.conftest import stack_env
from tests.support.contracts import start_api_only, wait_until
from tests.support.private_redis import PrivateRedis

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("readyz-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bare(private_redis: PrivateRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API process alone; every probe asks the workers afresh (WORKER_PING_CACHE_S=0)."""
    root = tmp_path_factory.mktemp("readyz")
    env = stack_env(RedisServer(host="127.0.0.1", port=private_redis.port), "readyz", root)
    env.update(WORKER_PING_CACHE_S="0")
    stack = start_api_only(Stack("readyz", env, root))
    yield stack
    stack.stop()


def _readyz(stack: Stack) -> tuple[int, dict[str, Any]]:
    response = local_http.get(f"{stack.base_url}/readyz", timeout=10)
    return response.status_code, response.json()


def _code(stack: Stack) -> str | None:
    status, body = _readyz(stack)
    return body["error"]["code"] if status == 503 else None


def _workers(body: dict[str, Any]) -> dict[str, list[str]]:
    return {q["name"]: q["workers"] for q in body["queues"]}


def test_with_no_worker_at_all_readyz_is_503_no_workers(bare: Stack) -> None:
    status, body = _readyz(bare)
    assert status == 503, body
    assert body["error"]["code"] == "no_workers", body
    assert (body["redis"], body["store"]) == ("ok", "ok")
    assert _workers(body) == {"index": [], "query": []}


def test_with_only_query_workers_readyz_is_503_no_index_workers_with_the_messages_waiting(bare: Stack) -> None:
    folder = bare.import_dir / "waiting"
    folder.mkdir(exist_ok=True)
    (folder / "note.md").write_text("# 等待\n\n没有索引 worker 时这份笔记在队列里等待。\n", encoding="utf-8")
    queued = local_http.post(f"{bare.base_url}/v1/collections/waiting/index-jobs", json={"paths": ["waiting"]})
    assert queued.status_code == 202, queued.text
    bare.start_worker("query", "query", "threads", 1)
    try:
        wait_until(lambda: _code(bare) != "no_workers", 60, "the query worker answering the ping")
        status, body = _readyz(bare)
        assert status == 503, body
        assert body["error"]["code"] == "no_index_workers", body
        assert "`index` queue" in body["error"]["message"], body["error"]
        workers = _workers(body)
        assert workers["index"] == [] and len(workers["query"]) == 1, workers
        assert {q["name"]: q["waiting"] for q in body["queues"]}["index"] == 1, body["queues"]
    finally:
        bare.stop("query")
    wait_until(lambda: _code(bare) == "no_workers", 30, "readiness without the query worker")


def test_a_store_that_cannot_be_read_makes_readyz_503_store_unavailable(bare: Stack) -> None:
    collections = bare.data_dir / "collections"
    collections.mkdir(parents=True, exist_ok=True)
    aside = collections.rename(bare.data_dir / "collections-aside")
    collections.write_text("not a folder: the store cannot list its collections\n")
    try:
        status, body = _readyz(bare)
    finally:
        collections.unlink()
        aside.rename(collections)
    assert status == 503, body
    assert body["error"]["code"] == "store_unavailable", body  # named first, before the missing workers
    assert body["store"].startswith("the collection store does not answer"), body["store"]
    # an open route: the folder is named by its setting, never by its path on the server
    assert str(bare.data_dir) not in body["store"] and "DATA_DIR" in body["store"], body["store"]
    assert body["redis"] == "ok"
    assert _code(bare) == "no_workers"  # back as soon as the store reads again


def test_a_redis_that_takes_no_writes_makes_readyz_503_broker_unavailable(
    bare: Stack, private_redis: PrivateRedis
) -> None:
    r = redis.Redis.from_url(private_redis.url())
    r.replicaof("127.0.0.1", free_port())  # demoted: reads and pings answer, writes get READONLY
    try:
        status, body = _readyz(bare)
    finally:
        r.replicaof("NO", "ONE")
    assert status == 503, body
    assert body["error"]["code"] == "broker_unavailable", body
    assert (body["redis"], body["store"]) == ("ok", "ok")
    assert _workers(body) == {"index": [], "query": []}
    wait_until(lambda: _code(bare) == "no_workers", 30, "readiness once Redis takes writes again")
