"""Faults with real processes on a stack of its own (private Redis, one worker, beat).

A client that leaves a `/stream_chat` or OpenAI stream for good gets its answer cancelled upstream; one back
within the grace period resumes. Uploads no document refers to are collected. An embedding upstream that
answers 429 or 500 or hangs is retried, then the index job fails saying why. Redis restarts, idle and under
an open stream: the stream ends with `error`, `/readyz` goes 503 then 200, and API and worker serve again
without a restart of theirs (these run last: they stop the stack's Redis).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from harness import local_http
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import BIN, RedisServer, Stack
from harness.sse import Event, iter_events
from shared import keys
from tests.conftest import client_for, copy_sample_docs, stack_env
from tests.support.jobs import index_and_wait, wait_for_job
from tests.support.private_redis import PrivateRedis

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SLOW_TOKENS = [f"词{i}" for i in range(100)]
QUESTION = "什么是投机解码？"
SSE = {"Accept": "text/event-stream"}
GRACE_S = 2


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("faults-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def faults_stack(
    private_redis: PrivateRedis, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("faults")
    env = stack_env(RedisServer(host="127.0.0.1", port=private_redis.port), "faults", root, zhipu_server)
    env.update(
        HEARTBEAT_INTERVAL_S="0.5",
        # Past a whole-machine stall of a few seconds (seen once on a loaded CI machine: beat, worker and API all
        # silent for ~3.5 s), after which the reaper found a live answer's heartbeat expired and ended it
        # worker_lost instead of the cancel this module waits for.
        HEARTBEAT_TTL_S="6",
        PING_INTERVAL_S="1",
        REAPER_INTERVAL_S="1",
        STREAM_ABANDON_GRACE_S=str(GRACE_S),
        UPLOAD_GC_GRACE_S="30",
        UPLOAD_GC_INTERVAL_S="1",
        UPSTREAM_MAX_RETRIES="2",  # three attempts per embedding request
        UPSTREAM_TIMEOUT_S="2",
        WORKER_PING_CACHE_S="0",
    )
    stack = Stack("faults", env, root).start([("worker", "index,query,maintenance", "threads", 4)])
    stack.spawn("beat", [str(BIN / "celery"), "-A", "workers.taskless_app:app", "beat", "-s", str(root / "beat")])
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def client(faults_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(faults_stack) as c:
        yield c


@pytest.fixture(scope="module")
def collection(client: httpx.Client, faults_stack: Stack) -> str:
    copy_sample_docs(faults_stack, "kb")
    job = index_and_wait(client, "faults", ["kb"])
    assert job["state"] == "succeeded", job
    return "faults"


def _wait_for(check: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout} s")


def _first_tokens(response: httpx.Response | Iterator[Event], count: int) -> list[Event]:
    seen: list[Event] = []
    for event in iter_events(response) if isinstance(response, httpx.Response) else response:
        seen.append(event)
        if sum(e.event == "token" for e in seen) == count:
            return seen
    raise AssertionError(f"the stream ended before {count} tokens: {seen}")


def _leave_stream_chat(client: httpx.Client, collection: str) -> str:
    params = {"param": QUESTION, "collection": collection}
    with client.stream("GET", "/stream_chat", params=params, headers=SSE) as response:
        assert response.status_code == 200, response.read()
        _first_tokens(response, 3)
        return response.headers["x-job-id"]


def _leave_openai_stream(client: httpx.Client, collection: str) -> str:
    body = {"model": collection, "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, response.read()
        frames = 0
        for line in response.iter_lines():
            frames += line.startswith("data: ")
            if frames == 4:  # the first chunk (sources), then three of text
                return response.headers["x-job-id"]
    raise AssertionError("the stream ended early")


@pytest.mark.parametrize("leave", [_leave_stream_chat, _leave_openai_stream], ids=["stream_chat", "openai"])
def test_a_client_that_leaves_and_does_not_return_has_its_answer_cancelled_upstream(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer, leave: object
) -> None:
    zhipu.configure(tokens=SLOW_TOKENS, token_delay_ms=100)
    job_id = leave(client, collection)  # type: ignore[operator]
    job, _ = wait_for_job(client, job_id, timeout=30)
    assert job["state"] == "cancelled" and job["error"]["code"] == "cancelled", job
    # the worker stopped asking the LLM: the upstream stream was closed before its end
    _wait_for(lambda: zhipu.requests("/chat/completions")[-1]["disconnected"], what="upstream stream closed")
    record = zhipu.requests("/chat/completions")[-1]
    assert not record["completed"] and record["chunks_sent"] < len(SLOW_TOKENS)


def test_a_stream_chat_client_back_within_the_grace_period_resumes_its_answer(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer
) -> None:
    tokens = SLOW_TOKENS[:50]  # 5 s of answer: it outlasts the grace period while the client is back
    zhipu.configure(tokens=tokens, token_delay_ms=100)
    params = {"param": QUESTION, "collection": collection}
    with client.stream("GET", "/stream_chat", params=params, headers=SSE) as response:
        job_id = response.headers["x-job-id"]
        first = _first_tokens(response, 3)
    time.sleep(0.5)
    headers = {**SSE, "Last-Event-ID": str(first[-1].raw_id)}
    rest: list[Event] = []
    with client.stream("GET", "/stream_chat", params=params, headers=headers) as response:
        for event in iter_events(response):
            rest.append(event)
            if event.event in ("done", "error"):
                break
    assert rest[-1].event == "done", rest[-1]
    assert [e.data["text"] for e in first + rest if e.event == "token"] == tokens
    assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "succeeded"
    assert zhipu.requests("/chat/completions")[-1]["completed"]


def test_a_deleted_collections_uploads_go_unless_another_collection_holds_the_same_file(
    client: httpx.Client, faults_stack: Stack
) -> None:
    shared, own = "# 共享\n\n两个集合都有这份笔记。\n".encode(), "# 独有\n\n只有第一个集合有这份笔记。\n".encode()
    for name, files in [("gc-a", [("shared.md", shared), ("own.md", own)]), ("gc-b", [("shared.md", shared)])]:
        response = client.post(f"/v1/collections/{name}/documents", files=[("files", f) for f in files])
        assert response.status_code == 202, response.text
        job, _ = wait_for_job(client, response.json()["job_id"])
        assert job["state"] == "succeeded", job
    uploads = faults_stack.data_dir / "uploads"
    blobs = {p.name.split(".")[0]: p for p in uploads.glob("??/*.md")}
    by_name = {name: blobs[_sha(data)] for name, data in [("shared", shared), ("own", own)]}
    stale, fresh = _orphan(uploads, "a", age_s=120), _orphan(uploads, "b", age_s=0)
    for path in by_name.values():
        _age(path, 120)  # past UPLOAD_GC_GRACE_S=30

    assert client.delete("/v1/collections/gc-a").status_code == 200
    assert not by_name["own"].exists()  # at once, with the collection
    assert by_name["shared"].exists()  # gc-b still refers to the same bytes
    _wait_for(lambda: not stale.exists(), what="the reaper's sweep")  # an upload no document ever referred to
    assert fresh.exists()  # within the grace period: its index job may not have run yet
    assert by_name["shared"].exists()


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _orphan(uploads: Path, fill: str, age_s: float) -> Path:
    path = uploads / (fill * 2) / f"{fill * 64}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# 无人引用\n")
    _age(path, age_s)
    return path


@pytest.mark.parametrize(
    "fault, code",
    [
        ({"embedding_fail_status": 429}, "upstream_rate_limited"),
        ({"embedding_fail_status": 500}, "upstream_error"),
        ({"embedding_delay_ms": 6000}, "upstream_timeout"),  # past UPSTREAM_TIMEOUT_S=2: a hang
    ],
    ids=["429", "500", "hang"],
)
def test_an_embedding_upstream_that_keeps_failing_is_retried_then_fails_the_index_job_saying_why(
    client: httpx.Client, zhipu: ZhipuFakeServer, fault: dict, code: str
) -> None:
    zhipu.configure(**fault)
    note = ("files", ("note.md", "# 笔记\n\n嵌入服务出故障时这份笔记无法索引。\n".encode(), "text/markdown"))
    response = client.post(f"/v1/collections/emb-{code}/documents", files=[note])
    assert response.status_code == 202, response.text
    job, _ = wait_for_job(client, response.json()["job_id"], timeout=60)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == code, job["error"]
    assert "embedding" in job["error"]["message"] and "3 attempt" in job["error"]["message"], job["error"]
    assert len(zhipu.requests("/embeddings")) == 3  # retried, then given up


def test_an_embedding_upstream_that_fails_twice_is_retried_and_the_index_job_succeeds(
    client: httpx.Client, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(embedding_fail_status=429, embedding_fail_count=2)  # the next two answers are 429s
    note = ("files", ("note.md", "# 笔记\n\n限流过去之后这份笔记照常索引。\n".encode(), "text/markdown"))
    response = client.post("/v1/collections/emb-recovers/documents", files=[note])
    assert response.status_code == 202, response.text
    job, _ = wait_for_job(client, response.json()["job_id"], timeout=60)
    assert job["state"] == "succeeded", job
    assert [r.get("status") for r in zhipu.requests("/embeddings")] == [429, 429, None]


# Redis restarts: these stop the stack's Redis, so they run last in this module.


def _ask(client: httpx.Client, collection: str) -> str:
    response = client.post("/v1/queries", json={"collection": collection, "question": QUESTION})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def _to_the_end(response: httpx.Response | Iterator[Event], seen: list[Event] | None = None) -> list[Event]:
    seen = seen if seen is not None else []
    for event in iter_events(response) if isinstance(response, httpx.Response) else response:
        seen.append(event)
        if event.event in ("done", "error"):
            break
    return seen


def _status(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path, timeout=10).status_code
    except httpx.HTTPError:
        return 0


def _answered(client: httpx.Client, collection: str) -> list[Event]:
    with client.stream("GET", f"/v1/queries/{_ask(client, collection)}/stream") as response:
        return _to_the_end(response)


def test_after_redis_restarts_while_idle_readyz_goes_503_then_200_and_questions_are_answered(
    client: httpx.Client, collection: str, private_redis: PrivateRedis, zhipu: ZhipuFakeServer
) -> None:
    private_redis.stop()
    _wait_for(lambda: _status(client, "/readyz") == 503, what="/readyz 503 while Redis is down")
    private_redis.start()
    _wait_for(lambda: _status(client, "/readyz") == 200, timeout=60, what="/readyz 200 once Redis is back")
    events = _answered(client, collection)  # the same API and worker processes, none restarted
    assert events[-1].event == "done", events[-1]


def test_a_stream_open_while_redis_restarts_ends_with_an_error_event_and_the_next_question_is_answered(
    client: httpx.Client, collection: str, private_redis: PrivateRedis, zhipu: ZhipuFakeServer, faults_stack: Stack
) -> None:
    zhipu.configure(tokens=SLOW_TOKENS, token_delay_ms=100)
    job_id = _ask(client, collection)
    reader = local_http.client(base_url=faults_stack.base_url, timeout=httpx.Timeout(10.0, read=30.0))
    with reader, reader.stream("GET", f"/v1/queries/{job_id}/stream") as response:
        stream = iter_events(response)
        seen = _first_tokens(stream, 3)
        private_redis.stop()
        time.sleep(1)
        private_redis.start()
        events = _to_the_end(stream, seen)  # within the 30 s read timeout, or this raises
    assert events[-1].event == "error", events[-1]
    assert [e.event for e in events].count("error") == 1
    assert events[-1].data["code"] in ("redis_unavailable", "worker_lost", "internal_error"), events[-1]
    # the API's hub let go of the channel although Redis was away when the stream ended
    r = redis.Redis.from_url(faults_stack.env["REDIS_URL"])
    _wait_for(lambda: r.pubsub_numsub(keys.stream_channel(job_id))[0][1] == 0, what="the channel unsubscribed")
    zhipu.configure(tokens=SLOW_TOKENS[:5], token_delay_ms=0)
    _wait_for(lambda: _status(client, "/readyz") == 200, timeout=60, what="/readyz 200 once Redis is back")
    assert _answered(client, collection)[-1].event == "done"
