"""Admission control: 429 with Retry-After past MAX_QUEUED_QUERIES, 503 naming the `query` queue with no worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import httpx
import pytest
import redis

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from tests.conftest import client_for, copy_sample_docs, stack_env
from tests.support.jobs import index_and_wait, wait_for_job
from tests.support.teardown import stop_later

pytestmark = pytest.mark.integration

SLOW_TOKENS = [f"词{i}" for i in range(80)]
QUESTION = "什么是投机解码？"


@pytest.fixture(scope="module")
def door_stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack of its own (a test stops its query worker): two open questions at most, one answered at a time."""
    root = tmp_path_factory.mktemp("admission")
    env = stack_env(redis_server, "admission", root, zhipu_server)
    env.update(MAX_QUEUED_QUERIES="2", ADMISSION_RETRY_AFTER_S="7", WORKER_PING_CACHE_S="0")
    stack = Stack("admission", env, root).start([("index", "index", "threads", 2), ("query", "query", "threads", 1)])
    with client_for(stack) as client:
        copy_sample_docs(stack, "kb")
        assert index_and_wait(client, "door", ["kb"])["state"] == "succeeded"
    yield stack
    stop_later("admission stack", stack.stop)  # while the next module starts


def _query_jobs(stack: Stack) -> list[str]:
    """Every query job recorded, and what the broker holds for the `query` queue."""
    r = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    ids = cast(list[str], r.zrange("rag:jobs", 0, -1))
    return [i for i in ids if r.hget(f"rag:job:{i}", "kind") == "query"]


def _broker_depth(stack: Stack) -> int:
    return int(redis.Redis.from_url(stack.env["REDIS_URL"]).llen("query"))


def _assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.headers["retry-after"] == "7"


def test_past_the_limit_every_way_to_ask_gets_429_and_nothing_is_queued(
    door_stack: Stack, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=SLOW_TOKENS, token_delay_ms=150)
    with client_for(door_stack) as client:
        accepted = []
        for _ in range(2):  # one answered, one waiting behind it: both count
            response = client.post("/v1/queries", json={"collection": "door", "question": QUESTION})
            assert response.status_code == 202, response.text
            accepted.append(response.json()["job_id"])
        before = (_query_jobs(door_stack), _broker_depth(door_stack))

        refused = client.post("/v1/queries", json={"collection": "door", "question": QUESTION})
        _assert_refused(refused, 429, "too_many_queries")
        assert "MAX_QUEUED_QUERIES" in refused.json()["error"]["message"]
        _assert_refused(
            client.get("/stream_chat", params={"param": QUESTION, "collection": "door"}), 429, "too_many_queries"
        )
        chat = {"model": "door", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
        _assert_refused(client.post("/v1/chat/completions", json=chat), 429, "too_many_queries")
        assert (_query_jobs(door_stack), _broker_depth(door_stack)) == before
        metrics = client.get("/metrics").text
        assert 'ragqueue_admission_rejections_total{reason="too_many_queries"} 3.0' in metrics

        # An ended question frees its place at once.
        for job_id in accepted:
            assert client.delete(f"/v1/queries/{job_id}").status_code == 202
            assert wait_for_job(client, job_id)[0]["state"] == "cancelled"
        zhipu.reset()
        again = client.post("/v1/queries", json={"collection": "door", "question": QUESTION})
        assert again.status_code == 202, again.text
        assert wait_for_job(client, again.json()["job_id"])[0]["state"] == "succeeded"


def test_with_no_query_worker_a_question_gets_503_naming_the_queue_and_nothing_is_queued(door_stack: Stack) -> None:
    door_stack.stop("query")
    with client_for(door_stack) as client:
        before = (_query_jobs(door_stack), _broker_depth(door_stack))
        response = client.post("/v1/queries", json={"collection": "door", "question": QUESTION})
        _assert_refused(response, 503, "no_query_workers")
        assert "`query` queue" in response.json()["error"]["message"]
        _assert_refused(
            client.get("/stream_chat", params={"param": QUESTION, "collection": "door"}), 503, "no_query_workers"
        )
        assert (_query_jobs(door_stack), _broker_depth(door_stack)) == before
        ready = client.get("/readyz")  # and readiness names the same reason
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "no_query_workers"
        assert "`query` queue" in ready.json()["error"]["message"]
        assert [q["name"] for q in ready.json()["queues"] if q["workers"]] == ["index"]
