"""The wow-rag seed's client against /stream_chat, and a browser-style SSE client."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import httpx
import pytest
import requests

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack
from harness.sse import iter_events
from tests.conftest import client_for, copy_sample_docs
from tests.support.jobs import index_and_wait

pytestmark = pytest.mark.e2e

TOKENS = ["预填充", "阶段", "一次", "处理", "整个", "提示", "，", "解码", "阶段", "逐个", "生成", "。"]


@pytest.fixture(scope="module")
def collection(zhipu_stack: Stack) -> str:
    copy_sample_docs(zhipu_stack, "kb")
    with client_for(zhipu_stack) as client:
        job = index_and_wait(client, "default", ["kb"])
        assert job["state"] == "succeeded", job
    return "default"


def seed_client_loop(url: str, question: str) -> None:
    """The tutorial's client, unchanged."""
    params = {"param": question}
    response = requests.get(url, params=params, stream=True)
    for chunk in response.iter_content(decode_unicode=True):
        print(chunk, end="")


def test_the_seed_requests_loop_prints_the_answer_text(
    zhipu_stack: Stack, collection: str, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        seed_client_loop(f"{zhipu_stack.base_url}/stream_chat", "预填充和解码有什么区别？")
    assert out.getvalue() == "".join(TOKENS)  # plain text: no `data:` framing, no mojibake


def test_stream_chat_gives_framed_sse_to_an_event_stream_client(
    zhipu_stack: Stack, collection: str, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS)
    with (
        client_for(zhipu_stack) as client,
        client.stream(
            "GET",
            "/stream_chat",
            params={"param": "什么是解码阶段？", "collection": collection},
            headers={"Accept": "text/event-stream"},
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = list(_until_terminal(iter_events(response)))
    assert [e.data["text"] for e in events if e.event == "token"] == TOKENS
    assert events[-1].event == "done"


def _until_terminal(events: Iterator) -> Iterator:
    for event in events:
        yield event
        if event.event in ("done", "error"):
            return


def test_stream_chat_allows_cross_origin_browsers(zhipu_stack: Stack) -> None:
    response = httpx.options(
        f"{zhipu_stack.base_url}/stream_chat",
        headers={"Origin": "http://example.test", "Access-Control-Request-Method": "GET"},
    )
    assert response.headers["access-control-allow-origin"] in ("*", "http://example.test")
