"""BatchedZhipuEmbedding over real HTTP against the Zhipu protocol server: batching, order, bounds, retries."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from llama_index.embeddings.zhipuai import ZhipuAIEmbedding
from zhipuai import ZhipuAI as ZhipuAIClient
from zhipuai.core._errors import APIInternalError, APIReachLimitError, APIRequestFailedError

from harness.fakes.zhipu_server import ZhipuFakeServer
from shared.providers.zhipu_batched import BatchedZhipuEmbedding

pytestmark = pytest.mark.integration

TEXTS = [f"第{i}段：虚拟内存把逻辑地址映射到物理页框，缺页时由操作系统调入。{i * 7}" for i in range(23)]
KEY = "batched-test.key"


@pytest.fixture(scope="module")
def server() -> Iterator[ZhipuFakeServer]:
    with ZhipuFakeServer() as srv:
        yield srv


@pytest.fixture
def fake(server: ZhipuFakeServer) -> Iterator[ZhipuFakeServer]:
    server.reset()
    yield server
    server.reset()


def batched(server: ZhipuFakeServer, **kw: Any) -> BatchedZhipuEmbedding:
    kw.setdefault("backoff_initial_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    return BatchedZhipuEmbedding(model="embedding-2", api_key=KEY, base_url=server.base_url, **kw)


class ClientProxy:
    """Stands in for the SDK client: counts requests in flight, and can act around each real call."""

    def __init__(self, real: ZhipuAIClient, around: Callable[[Callable[[], Any]], Any] | None = None) -> None:
        self._real, self._around = real, around or (lambda call: call())
        self._lock = threading.Lock()
        self.active = self.peak = 0

    def post(self, path: str, **kw: Any) -> Any:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            return self._around(lambda: self._real.post(path, **kw))
        finally:
            with self._lock:
                self.active -= 1


def embedding_bodies(server: ZhipuFakeServer) -> list[dict[str, Any]]:
    return [r["body"] for r in server.requests("/embeddings")]


def test_texts_go_in_lists_of_batch_size_one_request_per_batch(fake: ZhipuFakeServer) -> None:
    vectors = batched(fake, batch_size=5).get_text_embedding_batch(TEXTS)

    bodies = embedding_bodies(fake)
    assert len(vectors) == len(TEXTS)
    assert fake.counters()["embedding_requests"] == len(bodies) == math.ceil(len(TEXTS) / 5)
    assert all(isinstance(b["input"], list) and len(b["input"]) <= 5 for b in bodies)
    assert sorted(t for b in bodies for t in b["input"]) == sorted(TEXTS)
    assert fake.counters()["embedding_inputs"] == len(TEXTS)
    assert all("dimensions" not in b for b in bodies)  # embedding-2's size is fixed


def test_vectors_equal_the_stock_integration_in_input_order(fake: ZhipuFakeServer) -> None:
    stock = ZhipuAIEmbedding(model="embedding-2", api_key=KEY)
    stock._client = ZhipuAIClient(api_key=KEY, base_url=fake.base_url, max_retries=0)
    expected = stock.get_text_embedding_batch(TEXTS)
    assert fake.counters()["embedding_requests"] == len(TEXTS)  # the stock class: one request per text

    embed = batched(fake, batch_size=4, max_concurrency=3)
    assert embed.get_text_embedding_batch(TEXTS) == expected
    assert asyncio.run(embed.aget_text_embedding_batch(TEXTS)) == expected
    assert embed.get_query_embedding(TEXTS[3]) == expected[3]


def test_vectors_follow_input_order_when_the_api_returns_items_out_of_order(fake: ZhipuFakeServer) -> None:
    def reversed_items(call: Callable[[], Any]) -> httpx.Response:
        body = call().json()  # the raw response (the class decodes its body itself)
        return httpx.Response(200, json={**body, "data": list(reversed(body["data"]))})

    embed = batched(fake, batch_size=6)
    expected = embed.get_text_embedding_batch(TEXTS)
    embed._client = ClientProxy(embed._client, reversed_items)
    assert embed.get_text_embedding_batch(TEXTS) == expected


def test_requests_in_flight_never_exceed_max_concurrency(fake: ZhipuFakeServer) -> None:
    fake.configure(embedding_delay_ms=30)
    limit = 3
    full = threading.Event()

    def hold_until_full(call: Callable[[], Any]) -> Any:
        # Each request waits until `limit` are in flight at once, so reaching the bound does not depend on timing.
        if proxy.active >= limit:
            full.set()
        full.wait(timeout=5)
        return call()

    # One call with every text, so only the thread pool (not LlamaIndex's own split) bounds the requests.
    embed = batched(fake, batch_size=2, max_concurrency=limit, embed_batch_size=len(TEXTS))
    proxy = ClientProxy(embed._client, hold_until_full)
    embed._client = proxy
    vectors = embed.get_text_embedding_batch(TEXTS)

    assert len(vectors) == len(TEXTS)
    assert full.is_set(), "the requests never reached max_concurrency in flight"
    assert proxy.peak == limit
    assert fake.counters()["embedding_requests"] == math.ceil(len(TEXTS) / 2)


@pytest.mark.parametrize("status", [429, 500])
def test_a_rate_limit_or_server_error_is_retried_and_then_succeeds(fake: ZhipuFakeServer, status: int) -> None:
    fake.configure(embedding_fail_status=status)

    def heal_after_first_failure(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (APIReachLimitError, APIInternalError):
            fake.configure(embedding_fail_status=None)  # the next attempt reaches a healthy server
            raise

    embed = batched(fake, batch_size=len(TEXTS), max_attempts=3)
    embed._client = ClientProxy(embed._client, heal_after_first_failure)
    vectors = embed.get_text_embedding_batch(TEXTS)

    assert len(vectors) == len(TEXTS)
    assert fake.counters()["failures"] == 1
    assert fake.counters()["embedding_requests"] == 2


def test_a_persistent_server_error_raises_after_max_attempts(fake: ZhipuFakeServer) -> None:
    fake.configure(embedding_fail_status=500)
    embed = batched(fake, batch_size=len(TEXTS), max_attempts=3)

    with pytest.raises(APIInternalError) as info:
        embed.get_text_embedding_batch(TEXTS)

    assert fake.counters()["embedding_requests"] == 3
    assert "gave up after 3 attempt(s)" in "\n".join(info.value.__notes__)


def test_a_client_error_is_not_retried(fake: ZhipuFakeServer) -> None:
    fake.configure(embedding_fail_status=400)

    with pytest.raises(APIRequestFailedError):
        batched(fake, batch_size=len(TEXTS), max_attempts=3).get_text_embedding_batch(TEXTS)

    assert fake.counters()["embedding_requests"] == 1


def test_batch_size_above_zhipus_64_text_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="64"):
        BatchedZhipuEmbedding(model="embedding-3", api_key=KEY, batch_size=65)
