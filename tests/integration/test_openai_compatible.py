"""LLM_PROVIDER=openai_compatible: the async openai client on the worker's event loop, against the fake server's
OpenAI-compatible `/chat/completions` (Zhipu's `/api/paas/v4` speaks it)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from celery import Celery

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from harness.sse import iter_events, read_stream
from shared.jobs.dispatch import send
from shared.jobs.records import new_job_id
from shared.jobs.tasks import QueryBatchTask, QueryTask
from tests.conftest import client_for, copy_sample_docs, stack_env
from tests.support.jobs import index_and_wait, wait_for_job, write_queued_query
from tests.support.teardown import stop_later

pytestmark = pytest.mark.integration

TOKENS = [f"词{i}，" for i in range(40)]
COLLECTION = "oai"
QUESTION = "什么是 KV 缓存？"
THREADS = 2


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("oai")
    env = stack_env(redis_server, "oai", root, zhipu_server)
    env.update(LLM_PROVIDER="openai_compatible", LLM_BASE_URL=zhipu_server.base_url, TOKEN_COALESCE_MS="40")
    started = Stack("oai", env, root).start([("worker", "index,query", "threads", THREADS)])
    yield started
    stop_later("openai compatible stack", started.stop)  # while the next module starts


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with client_for(stack) as c:
        copy_sample_docs(stack, "kb")
        job = index_and_wait(c, COLLECTION, ["kb"])
        assert job["state"] == "succeeded", (job["error"], job["result"])
        yield c


def _ask(client: httpx.Client) -> str:
    response = client.post("/v1/queries", json={"collection": COLLECTION, "question": QUESTION})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def test_an_answer_streams_coalesced_and_resumes_exactly_at_any_id(
    client: httpx.Client, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=5)
    job_id = _ask(client)
    full = read_stream(client, f"/v1/queries/{job_id}/stream")
    texts = [e.data["text"] for e in full if e.event == "token"]
    assert "".join(texts) == "".join(TOKENS), full[-1]
    assert texts[0] == TOKENS[0] and 1 < len(texts) < len(TOKENS)
    assert [e.id for e in full] == list(range(1, len(full) + 1))
    assert full[-1].event == "done" and full[-1].data["answerer"] == "openai_compatible/glm-4-flash"
    assert full[-1].data["tokens"] == len(TOKENS)
    request = zhipu.requests("/chat/completions")[-1]
    assert request["body"]["stream"] is True and request["auth"] == "Bearer test-key.secret"
    for seen in range(len(full)):
        rest = read_stream(client, f"/v1/queries/{job_id}/stream", headers={"Last-Event-ID": str(seen)})
        assert [(e.id, e.data) for e in rest] == [(e.id, e.data) for e in full[seen:]]
    assert wait_for_job(client, job_id)[0]["state"] == "succeeded"


def test_many_answers_share_one_process_beyond_its_thread_count(client: httpx.Client, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(tokens=TOKENS[:10], first_token_delay_ms=1500)
    jobs = [_ask(client) for _ in range(4 * THREADS)]
    # Every answer's upstream stream is open at once, though the worker has THREADS pool threads.
    assert zhipu.wait_for_active_streams(len(jobs)) >= len(jobs)
    for job_id in jobs:
        events = read_stream(client, f"/v1/queries/{job_id}/stream")
        assert "".join(e.data["text"] for e in events if e.event == "token") == "".join(TOKENS[:10])


@pytest.mark.parametrize("status, code", [(500, "upstream_error"), (429, "upstream_rate_limited")])
def test_a_failing_upstream_ends_the_stream_with_one_error(
    client: httpx.Client, zhipu: ZhipuFakeServer, status: int, code: str
) -> None:
    zhipu.configure(chat_fail_status=status)
    job_id = _ask(client)
    events = read_stream(client, f"/v1/queries/{job_id}/stream")
    assert [e.event for e in events] == ["sources", "error"] and events[-1].data["code"] == code
    job, _ = wait_for_job(client, job_id)
    assert job["state"] == "failed" and job["error"]["code"] == code


def test_an_upstream_breaking_mid_stream_ends_with_one_error(client: httpx.Client, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(tokens=TOKENS, chat_fail_after=3, chat_fail_mode="disconnect")
    job_id = _ask(client)
    events = read_stream(client, f"/v1/queries/{job_id}/stream")
    assert [e.event for e in events if e.event in ("done", "error")] == ["error"]
    assert events[-1].data["code"] == "upstream_error"


def test_cancel_closes_the_upstream_stream(client: httpx.Client, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=100)
    job_id = _ask(client)
    with client.stream("GET", f"/v1/queries/{job_id}/stream") as response:
        seen = []
        for event in iter_events(response):
            seen.append(event)
            if event.event == "token" and len(seen) == 3:
                assert client.delete(f"/v1/queries/{job_id}").status_code == 202
            if event.event in ("done", "error"):
                break
    assert seen[-1].event == "error" and seen[-1].data["code"] == "cancelled"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not zhipu.requests("/chat/completions")[-1].get("disconnected"):
        time.sleep(0.05)
    record = zhipu.requests("/chat/completions")[-1]
    assert record["disconnected"] and not record["completed"]
    assert wait_for_job(client, job_id)[0]["state"] == "cancelled"


def test_a_batch_embeds_its_questions_in_one_request_and_answers_each(
    stack: Stack, client: httpx.Client, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS[:5])
    r = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    questions = [f"{QUESTION} {i}" for i in range(3)]
    asks = [QueryTask(job_id=new_job_id(), collection=COLLECTION, question=q, top_k=4) for q in questions]
    for ask in asks:
        write_queued_query(r, ask.job_id, COLLECTION)
    send(Celery(broker=stack.env["REDIS_URL"]), QueryBatchTask(requests=asks))
    for ask in asks:
        events = read_stream(client, f"/v1/queries/{ask.job_id}/stream")
        assert events[-1].event == "done" and events[-1].data["question"] == ask.question
        assert "".join(e.data["text"] for e in events if e.event == "token") == "".join(TOKENS[:5])
    inputs = [request["body"]["input"] for request in zhipu.requests("/embeddings")]
    assert questions in inputs  # the three questions in one /embeddings request
    r.close()
