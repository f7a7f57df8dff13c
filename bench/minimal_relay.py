"""The smallest answer server ragqueue's own libraries make: one process, no queue, no Redis, no retrieval.

`GET /stream_chat?param=...` asks the upstream with ragqueue's `openai_compatible` answerer (the `openai`
SDK on its aiohttp transport, one fixed context chunk), groups the pieces with ragqueue's TokenCoalescer
(TOKEN_COALESCE_MS windows) and sends each group as an SSE `token` event through FastAPI, sse-starlette and
uvicorn, then `done`. Everything ragqueue adds to scale out (the job record, the Celery hop, retrieval, the
replay log and pub/sub, the second process) is left out, so the CPU this server spends per answer is a floor
for ragqueue's API + workers on the same machine, and its time to first token a floor for ragqueue's.
bench/stream_floor.py `--through relay` serves it with uvicorn (`bench.minimal_relay:app_from_env`, a factory)
in a child process and measures it.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Query
from pydantic import SecretStr
from sse_starlette import EventSourceResponse, ServerSentEvent

from shared.providers.openai_compatible import OpenAICompatibleAnswerer, build_openai_compatible_answerer
from shared.settings import Settings
from shared.store import ScoredChunk
from shared.streams.coalescer import TokenCoalescer
from shared.streams.events import EventName, TokenPayload

CONTEXT = ScoredChunk(
    chunk_id="c1",
    doc_id="d1",
    source="kb.md",
    text="KV 缓存保存注意力层已经计算过的键和值，解码下一个词时不必重算。",
    score=1.0,
)


def _frame(seq: int, event: EventName, data: str) -> ServerSentEvent:
    return ServerSentEvent(id=str(seq), event=event.value, data=data)


async def _answer(answerer: OpenAICompatibleAnswerer, question: str, window_s: float) -> AsyncIterator[ServerSentEvent]:
    coalescer, seq = TokenCoalescer(window_s), 0
    async for piece in answerer.astream(question, [CONTEXT]):
        if (text := coalescer.add(piece, time.perf_counter())) is not None:
            seq += 1
            yield _frame(seq, EventName.TOKEN, TokenPayload(text=text).model_dump_json())
    if (text := coalescer.drain()) is not None:
        seq += 1
        yield _frame(seq, EventName.TOKEN, TokenPayload(text=text).model_dump_json())
    yield _frame(seq + 1, EventName.DONE, "{}")


def build_app(settings: Settings) -> FastAPI:
    answerer = build_openai_compatible_answerer(settings)
    window_s = settings.TOKEN_COALESCE_MS / 1000
    app = FastAPI()

    @app.get("/stream_chat")
    async def stream_chat(param: Annotated[str, Query(min_length=1)]) -> EventSourceResponse:
        return EventSourceResponse(_answer(answerer, param, window_s))

    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory: the upstream from RELAY_UPSTREAM_URL (each worker process builds its own app)."""
    settings = Settings(
        LLM_PROVIDER="openai_compatible",
        LLM_BASE_URL=os.environ["RELAY_UPSTREAM_URL"],
        LLM_API_KEY=SecretStr("bench.key"),
        UPSTREAM_MAX_RETRIES=0,
    )
    return build_app(settings)
