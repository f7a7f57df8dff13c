"""`LLM_PROVIDER=zhipu` answers on the event loop with no thread: LlamaIndex's LLM interface, Zhipu's wire protocol.

The stock LlamaIndex ZhipuAI's `astream_chat` reads the sync SDK in a thread per chunk (`asyncio.to_thread`);
these tests run the answerer on a loop whose default executor records what it is sent: a thread hop fails them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from llama_index.core import MockEmbedding
from llama_index.core.llms import LLM

from harness.fakes.zhipu_server import ZhipuFakeServer
from shared.providers.answerers import AsyncLLMAnswerer
from shared.providers.factory import build_answerer
from shared.settings import Settings
from shared.store import ScoredChunk
from shared.usage import TokenUsage
from tests.support.executors import CountingThreads

TOKENS = [f"词{i:02d}" for i in range(12)]
T = TypeVar("T")
CHUNKS = [ScoredChunk("c1", "d1", "kb/kv.md", "KV 缓存保存历史词元的键和值。", 1.0)]


@pytest.fixture
def answerer(zhipu: ZhipuFakeServer) -> AsyncLLMAnswerer:
    settings = Settings(  # type: ignore[call-arg]
        ZHIPU_API_KEY="test-key.secret", ZHIPUAI_BASE_URL=zhipu.base_url, UPSTREAM_MAX_RETRIES=0, _env_file=None
    )
    built = build_answerer(settings, MockEmbedding(embed_dim=8))
    assert isinstance(built, AsyncLLMAnswerer)
    return built


def _on_a_loop_without_threads(answerer: AsyncLLMAnswerer, main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on a new event loop and check it sent nothing to a thread; the client's first request may (the
    openai SDK looks up the platform for its headers once per client), so one request warms it first."""

    async def run() -> T:
        threads = CountingThreads()
        asyncio.get_running_loop().set_default_executor(threads)
        try:
            await answerer.llm.acomplete("warm-up")
            threads.sent.clear()
            result = await main
            assert threads.sent == [], "sent to a thread while answering"
            return result
        finally:
            await answerer.llm.aclient.close()  # type: ignore[attr-defined]

    return asyncio.run(run())


def test_the_default_zhipu_answerer_is_async_on_llama_index_llm(answerer: AsyncLLMAnswerer) -> None:
    assert isinstance(answerer.llm, LLM)
    assert answerer.name == "zhipu/glm-4-flash"


def test_a_streamed_answer_is_the_upstreams_text_and_usage_without_a_thread(
    answerer: AsyncLLMAnswerer, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=2)
    usage = TokenUsage()

    async def read() -> list[str]:
        return [piece async for piece in answerer.astream("什么是 KV 缓存？", CHUNKS, usage)]

    assert _on_a_loop_without_threads(answerer, read()) == TOKENS
    request = zhipu.requests("/chat/completions")[-1]
    assert request["auth"] == "Bearer test-key.secret"  # the key itself, as the zhipuai SDK sends it
    assert request["body"]["stream"] is True and request["body"]["model"] == "glm-4-flash"
    assert CHUNKS[0].text in request["body"]["messages"][-1]["content"]
    # the usage Zhipu reports on its last chunk, not an estimate
    prompt = request["body"]["messages"][-1]["content"]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (len(prompt), len(TOKENS), False)


def test_a_follow_up_is_condensed_without_a_thread_and_its_usage_counted(
    answerer: AsyncLLMAnswerer, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS)
    usage = TokenUsage()
    history = [{"role": "user", "content": "什么是 KV 缓存？"}, {"role": "assistant", "content": "键和值。"}]
    assert _on_a_loop_without_threads(answerer, answerer.acondense("它多大？", history, usage)) == "".join(TOKENS)
    request = zhipu.requests("/chat/completions")[-1]
    assert request["body"]["stream"] is False and "它多大？" in request["body"]["messages"][-1]["content"]
    assert (usage.completion_tokens, usage.estimated) == (len(TOKENS), False)


def test_closing_an_answer_midway_closes_the_upstream_stream(
    answerer: AsyncLLMAnswerer, zhipu: ZhipuFakeServer
) -> None:
    """A cancel closes the answer's generator (workers/generation.py); the LLM must stop generating for nobody."""

    async def read_three_then_close() -> dict[str, Any]:
        # Slow tokens for this answer only, after the helper's warm-up request (which would stream them too: 2.4 s).
        zhipu.configure(tokens=TOKENS, token_delay_ms=200)
        pieces = answerer.astream("什么是 KV 缓存？", CHUNKS, TokenUsage())
        assert [await anext(pieces) for _ in range(3)] == TOKENS[:3]
        await pieces.aclose()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 2  # well under the 9 tokens × 200 ms the stream had left
        while not zhipu.requests("/chat/completions")[-1].get("disconnected") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        # Read before the client is closed (which would end the stream anyway): the generator's close alone.
        return zhipu.requests("/chat/completions")[-1]

    record = _on_a_loop_without_threads(answerer, read_three_then_close())
    assert record["disconnected"] and not record["completed"]
