"""EventSource reconnects: 204 once the stream ended, and a `/stream_chat` reconnect resumes, never re-asks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack
from harness.sse import Event, iter_events, read_stream
from tests.conftest import client_for, copy_sample_docs
from tests.support.jobs import index_and_wait

pytestmark = pytest.mark.integration

TOKENS = [f"第{i}段，" for i in range(40)]
QUESTION = {"param": "什么是 KV 缓存？", "collection": "reconnect"}
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def client(zhipu_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(zhipu_stack) as c:
        yield c


@pytest.fixture(scope="module")
def collection(client: httpx.Client, zhipu_stack: Stack) -> str:
    copy_sample_docs(zhipu_stack, "kb")
    job = index_and_wait(client, QUESTION["collection"], ["kb"])
    assert job["state"] == "succeeded", job
    return QUESTION["collection"]


def _chat_requests(zhipu: ZhipuFakeServer) -> int:
    return len(zhipu.requests("/chat/completions"))


def _stream_chat(client: httpx.Client, last_event_id: str | None = None, stop_after_tokens: int = 0) -> list[Event]:
    """Events of one `/stream_chat` SSE connection, up to the end (or closed after that many tokens)."""
    headers = {**SSE, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    events: list[Event] = []
    with client.stream("GET", "/stream_chat", params=QUESTION, headers=headers) as response:
        assert response.status_code == 200, response.read()
        for event in iter_events(response):
            events.append(event)
            tokens = sum(e.event == "token" for e in events)
            if event.event in ("done", "error") or (stop_after_tokens and tokens == stop_after_tokens):
                break
    return events


def test_a_reconnect_after_the_end_gets_204_on_every_stream_route(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS[:5])
    accepted = client.post("/v1/queries", json={"collection": collection, "question": QUESTION["param"]})
    job_id = accepted.json()["job_id"]
    events = read_stream(client, f"/v1/queries/{job_id}/stream")
    assert events[-1].event == "done"
    end = events[-1].id
    assert end is not None
    for seen in (end, end + 3):
        response = client.get(f"/v1/queries/{job_id}/stream", headers={**SSE, "Last-Event-ID": str(seen)})
        assert response.status_code == 204, response.text
    # One event short of the end still gets that event.
    assert [e.event for e in read_stream(client, f"/v1/queries/{job_id}/stream?last_event_id={end - 1}")] == ["done"]

    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=SSE) as response:
        job_events = list(iter_events(response))
    assert job_events[-1].event == "end" and job_events[-1].raw_id == "end"
    response = client.get(f"/v1/jobs/{job_id}/events", headers={**SSE, "Last-Event-ID": "end"})
    assert response.status_code == 204, response.text

    chat = _stream_chat(client)
    assert chat[-1].event == "done"
    asked = _chat_requests(zhipu)
    response = client.get("/stream_chat", params=QUESTION, headers={**SSE, "Last-Event-ID": str(chat[-1].raw_id)})
    assert response.status_code == 204, response.text
    assert _chat_requests(zhipu) == asked, "a reconnect after the end must not ask the LLM again"


def test_a_stream_chat_reconnect_mid_answer_resumes_the_same_answer(
    client: httpx.Client, collection: str, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=20)
    first = _stream_chat(client, stop_after_tokens=3)
    assert first[-1].event == "token"
    job_id, _, _ = str(first[-1].raw_id).rpartition(":")
    assert all(e.raw_id == f"{job_id}:{e.id}" for e in first), "every id names the job"

    rest = _stream_chat(client, last_event_id=first[-1].raw_id)
    events = first + rest
    assert [e.id for e in events] == list(range(1, len(events) + 1)), "each event exactly once, in order"
    assert "".join(e.data["text"] for e in events if e.event == "token") == "".join(TOKENS)
    assert [e.event for e in events].count("done") == 1 and events[-1].event == "done"
    assert _chat_requests(zhipu) == 1, "the reconnect resumed the answer; the LLM was asked once"

    again = client.get("/stream_chat", params=QUESTION, headers={**SSE, "Last-Event-ID": str(events[-1].raw_id)})
    assert again.status_code == 204
    assert _chat_requests(zhipu) == 1


def test_a_malformed_stream_chat_last_event_id_is_refused(client: httpx.Client, collection: str) -> None:
    response = client.get("/stream_chat", params=QUESTION, headers={**SSE, "Last-Event-ID": "12"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_last_event_id"
