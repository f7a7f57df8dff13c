"""An upstream that drops the connection mid-answer: every chunk it sent before the drop still reaches the answer.

aiohttp raises a dropped connection's error before handing on bytes it already holds, so these tests read slowly
on purpose: the remaining chunks and the drop all arrive while the reader is away, as they do on a busy worker.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from llama_index.core import MockEmbedding

from harness.fakes.zhipu_server import ZhipuFakeServer
from shared.providers.answerers import AsyncLLMAnswerer
from shared.providers.factory import build_answerer
from shared.providers.upstream_errors import classify_upstream_error
from shared.settings import Settings
from shared.store import ScoredChunk
from shared.streams.events import ErrorCode

TOKENS = ["KV", " 缓存", "保存", "历史", "词元"]
CHUNKS = [ScoredChunk("c1", "d1", "kb/kv.md", "KV 缓存保存历史词元的键和值。", 1.0)]


@pytest.mark.parametrize("provider", ["zhipu", "openai_compatible"])
def test_a_dropped_stream_keeps_the_chunks_that_arrived_while_the_reader_was_busy(
    zhipu: ZhipuFakeServer, provider: str
) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=20, chat_fail_after=3, chat_fail_mode="disconnect")
    settings = Settings(  # type: ignore[call-arg]
        ZHIPU_API_KEY="test-key.secret",
        ZHIPUAI_BASE_URL=zhipu.base_url,
        LLM_PROVIDER=provider,  # type: ignore[arg-type]  # one of the two parameters
        LLM_BASE_URL=zhipu.base_url,
        UPSTREAM_MAX_RETRIES=0,
        _env_file=None,
    )
    answerer = build_answerer(settings, MockEmbedding(embed_dim=8))
    # The SDK client each answerer holds: the async LLM's, or the openai_compatible answerer's own.
    client = cast(Any, answerer.llm).aclient if isinstance(answerer, AsyncLLMAnswerer) else cast(Any, answerer).client

    async def read() -> tuple[list[str], BaseException]:
        pieces: list[str] = []
        try:
            async for piece in answerer.astream("什么是 KV 缓存？", CHUNKS):
                pieces.append(piece)
                if len(pieces) == 1:
                    # away while the next two chunks and the drop arrive
                    while not zhipu.requests("/chat/completions")[-1].get("failed"):
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.2)
        except Exception as exc:  # noqa: BLE001 - the error the worker turns into the stream's `error` event
            return pieces, exc
        finally:
            await client.close()
        raise AssertionError(f"the stream ended without an error after {pieces}")

    pieces, error = asyncio.run(read())
    assert pieces == TOKENS[:3]
    assert classify_upstream_error(error)[0] == ErrorCode.UPSTREAM
