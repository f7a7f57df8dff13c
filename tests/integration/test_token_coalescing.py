"""Coalesced token events: the first piece at once, then one event per window; same text, exact resume."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack
from harness.sse import read_stream
from tests.conftest import client_for, copy_sample_docs
from tests.support.jobs import index_and_wait

pytestmark = pytest.mark.integration

TOKENS = [f"片段{i}，" for i in range(40)]
COLLECTION = "coalesce"


@pytest.fixture(scope="module")
def stack(json_coalescing_stack: Stack) -> Stack:
    """Token events coalesced in 40 ms windows (TOKEN_COALESCE_MS=40; tests/integration/conftest.py)."""
    assert json_coalescing_stack.env["TOKEN_COALESCE_MS"] == "40"
    return json_coalescing_stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with client_for(stack) as c:
        copy_sample_docs(stack, "kb")
        assert index_and_wait(c, COLLECTION, ["kb"])["state"] == "succeeded"
        yield c


def test_coalesced_events_carry_the_same_text_and_resume_exactly_at_any_id(
    client: httpx.Client, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=5)
    accepted = client.post("/v1/queries", json={"collection": COLLECTION, "question": "什么是 KV 缓存？"})
    job_id = accepted.json()["job_id"]
    full = read_stream(client, f"/v1/queries/{job_id}/stream")
    texts = [e.data["text"] for e in full if e.event == "token"]

    assert "".join(texts) == "".join(TOKENS), "coalescing regroups the text, never changes it"
    assert texts[0] == TOKENS[0], "the first piece goes out at once, alone"
    assert 1 < len(texts) < len(TOKENS), f"pieces 5 ms apart in 40 ms windows: {len(texts)} events"
    assert [e.id for e in full] == list(range(1, len(full) + 1)), "ids stay dense"
    assert full[-1].event == "done" and full[-1].data["tokens"] == len(TOKENS)

    for seen in range(len(full)):
        rest = read_stream(client, f"/v1/queries/{job_id}/stream", headers={"Last-Event-ID": str(seen)})
        assert [(e.id, e.event, e.data) for e in rest] == [(e.id, e.event, e.data) for e in full[seen:]]
