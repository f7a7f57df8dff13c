"""The Zhipu path: real llama-index Zhipu integrations, over HTTP, through a real worker and the API."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
import redis

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack
from harness.sse import read_stream
from shared.providers.answerers import NO_CONTEXT_ANSWER
from tests.conftest import SAMPLE_DOCS, client_for, copy_sample_docs
from tests.support.jobs import index_and_wait, wait_for_job

pytestmark = pytest.mark.integration

SAMPLE_FILES = len(list(SAMPLE_DOCS.iterdir()))
WORKER_THREADS = 4  # zhipu_stack's worker: -P threads -c 4 (tests/conftest.py)
TOKENS = ["KV", " 缓存", "保存", "了", "历史", "词元", "的", "键", "和", "值", "，", "避免", "重复", "计算", "。"]


@pytest.fixture(scope="module")
def client(zhipu_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(zhipu_stack) as c:
        yield c


@pytest.fixture(scope="module")
def collection(client: httpx.Client, zhipu_stack: Stack) -> str:
    copy_sample_docs(zhipu_stack, "kb")
    job = index_and_wait(client, "zkb", ["kb"])
    assert job["state"] == "succeeded", job
    return "zkb"


def ask(client: httpx.Client, collection: str, question: str = "什么是 KV 缓存？") -> str:
    response = client.post("/v1/queries", json={"collection": collection, "question": question})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["stream_url"] == f"/v1/queries/{body['job_id']}/stream"
    return str(body["job_id"])


def test_index_job_embeds_through_zhipu_and_reports_true_progress(
    client: httpx.Client, zhipu_stack: Stack, zhipu: ZhipuFakeServer
) -> None:
    folder = zhipu_stack.import_dir / "progress"
    shutil.copytree(SAMPLE_DOCS, folder)
    response = client.post("/v1/collections/zprogress/index-jobs", json={"paths": ["progress"]})
    assert response.status_code == 202
    job, seen = wait_for_job(client, response.json()["job_id"])

    assert job["state"] == "succeeded", job
    chunks = job["result"]["chunks"]
    assert job["progress"]["done"] == job["progress"]["total"] == chunks > 0
    assert all(p["done"] <= p["total"] or p["total"] == 0 for p in seen)
    assert job["result"]["embed_model"] == "zhipu/embedding-2" and job["result"]["dimension"] == 1024
    embedded = [text for r in zhipu.requests("/embeddings") for text in _inputs(r["body"])]
    assert len(embedded) == chunks  # every chunk went over the wire to the embedding API
    info = client.get("/v1/collections/zprogress").json()
    assert (info["documents"], info["chunks"]) == (SAMPLE_FILES, chunks)


def _inputs(body: dict) -> list[str]:
    value = body["input"]
    return [value] if isinstance(value, str) else list(value)


def test_indexing_the_same_files_again_adds_nothing(client: httpx.Client, collection: str) -> None:
    before = client.get(f"/v1/collections/{collection}").json()["chunks"]
    job = index_and_wait(client, collection, ["kb"])
    assert job["state"] == "succeeded"
    assert job["result"]["documents_unchanged"] == SAMPLE_FILES
    assert client.get(f"/v1/collections/{collection}").json()["chunks"] == before


def test_stream_tokens_equal_what_upstream_sent(client: httpx.Client, collection: str, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=5)
    events = read_stream(client, f"/v1/queries/{ask(client, collection)}/stream")

    assert [e.event for e in events] == ["sources"] + ["token"] * len(TOKENS) + ["done"]
    assert [e.data["text"] for e in events if e.event == "token"] == TOKENS
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    sources = events[0].data
    assert sources and {"document", "chunk_id", "score", "text"} <= set(sources[0])
    assert events[-1].data["tokens"] == len(TOKENS)
    # the retrieved chunks reached the LLM in its prompt
    prompt = zhipu.requests("/chat/completions")[-1]["body"]["messages"][-1]["content"]
    assert sources[0]["text"] in prompt


def test_answers_share_the_worker_beyond_its_threads_each_exactly_the_upstreams_text(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer
) -> None:
    """The default provider answers on the worker's event loop: no thread (nor sync SDK call) held per answer."""
    zhipu.configure(tokens=TOKENS, first_token_delay_ms=1500)
    # More than a thread per answer could hold at once: the pool's threads plus as many for questions sent together.
    jobs = [ask(client, collection) for _ in range(3 * WORKER_THREADS)]
    assert zhipu.wait_for_active_streams(len(jobs)) >= len(jobs)
    for job_id in jobs:
        events = read_stream(client, f"/v1/queries/{job_id}/stream")
        assert [e.data["text"] for e in events if e.event == "token"] == TOKENS
        assert events[-1].event == "done" and events[-1].data["answerer"] == "zhipu/glm-4-flash"
        assert events[-1].data["tokens"] == len(TOKENS)


def test_a_follow_up_with_history_is_rewritten_into_a_standalone_question(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer
) -> None:
    """`history` on POST /v1/queries: the LLM condenses the follow-up with the earlier turns before retrieval."""
    zhipu.configure(tokens=TOKENS)
    history = [
        {"role": "user", "content": "什么是 KV 缓存？"},
        {"role": "assistant", "content": "KV 缓存保存历史词元的键和值。"},
    ]
    body = {"collection": collection, "question": "它的显存开销怎么算？", "history": history}
    response = client.post("/v1/queries", json=body)
    assert response.status_code == 202, response.text
    events = read_stream(client, response.json()["stream_url"])
    assert events[-1].event == "done"
    condense, answer = [r["body"]["messages"][-1]["content"] for r in zhipu.requests("/chat/completions")][-2:]
    assert "什么是 KV 缓存？" in condense and "它的显存开销怎么算？" in condense
    assert events[-1].data["question"] == "".join(TOKENS)  # the fake's reply became the standalone question
    assert "".join(TOKENS) in answer


def test_a_client_connecting_after_the_answer_finished_gets_all_of_it(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS)
    job_id = ask(client, collection)
    job, _ = wait_for_job(client, job_id)
    assert job["state"] == "succeeded"
    events = read_stream(client, f"/v1/queries/{job_id}/stream")
    assert [e.data["text"] for e in events if e.event == "token"] == TOKENS
    assert events[-1].event == "done"


def test_last_event_id_resumes_after_that_event(client: httpx.Client, collection: str, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(tokens=TOKENS)
    job_id = ask(client, collection)
    full = read_stream(client, f"/v1/queries/{job_id}/stream")
    rest = read_stream(client, f"/v1/queries/{job_id}/stream", headers={"Last-Event-ID": "5"})
    assert [(e.id, e.event, e.data) for e in rest] == [(e.id, e.event, e.data) for e in full[5:]]
    by_param = read_stream(client, f"/v1/queries/{job_id}/stream?last_event_id=5")
    assert [e.id for e in by_param] == [e.id for e in rest]


@pytest.mark.faults
@pytest.mark.parametrize("status, code", [(500, "upstream_error"), (429, "upstream_rate_limited")])
def test_a_failing_upstream_ends_the_stream_with_an_error_event(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer, status: int, code: str
) -> None:
    zhipu.configure(chat_fail_status=status)
    job_id = ask(client, collection)
    events = read_stream(client, f"/v1/queries/{job_id}/stream")
    assert [e.event for e in events] == ["sources", "error"]
    assert events[-1].data["code"] == code
    assert str(status) in events[-1].data["message"]
    job, _ = wait_for_job(client, job_id)
    assert job["state"] == "failed" and job["error"]["code"] == code


@pytest.mark.faults
@pytest.mark.parametrize("how", ["error_frame", "disconnect", "malformed"])
def test_an_upstream_that_breaks_mid_stream_ends_with_one_error(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer, how: str
) -> None:
    zhipu.configure(tokens=TOKENS, chat_fail_after=3, chat_fail_mode=how)
    events = read_stream(client, f"/v1/queries/{ask(client, collection)}/stream")
    assert [e.event for e in events] == ["sources", "token", "token", "token", "error"]
    assert [e.data["text"] for e in events[1:4]] == TOKENS[:3]
    assert events[-1].data["code"] == "upstream_error"


def test_a_resume_after_the_replay_buffer_expired_is_410(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer, zhipu_stack: Stack
) -> None:
    job_id = ask(client, collection)
    wait_for_job(client, job_id)
    # what REPLAY_TTL_S does to the buffer when it runs out
    redis.Redis.from_url(zhipu_stack.env["REDIS_URL"]).delete(f"rag:replay:{job_id}")
    response = client.get(f"/v1/queries/{job_id}/stream", headers={"Last-Event-ID": "3"})
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "replay_expired"


def test_a_retrieval_that_finds_nothing_says_so_without_citations(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer
) -> None:
    response = client.post(
        "/v1/queries", json={"collection": collection, "question": "Xylophone zebra quartz?", "mode": "bm25"}
    )
    events = read_stream(client, response.json()["stream_url"])
    assert events[0].event == "sources" and events[0].data == []
    answer = "".join(e.data["text"] for e in events if e.event == "token")
    assert answer == NO_CONTEXT_ANSWER and "[" not in answer
    assert not zhipu.requests("/chat/completions")  # nothing was sent to the LLM to invent from
