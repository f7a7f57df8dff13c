"""OpenAI-compatible chat: `POST /v1/chat/completions` (model = collection) and `GET /v1/models`.

The last user message is the question; earlier user/assistant turns go to the worker, which condenses
them with the question into a standalone one. Streaming answers are `data: {chunk}` frames ending with
`data: [DONE]`; the retrieved chunks travel in an extension field, `sources`, on the first chunk (and
on the non-streaming completion). An `error` event becomes a `data: {"error": ...}` frame, which the
official SDK raises as an APIError.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.cancellation import cancel_when_abandoned
from api.deps import CeleryDep, HubDep, PrincipalDep, QueryDispatcherDep, RedisDep, SettingsDep, StoreDep
from api.errors import ApiError, error_json
from api.key_limits import KeyGateDep
from api.openai_schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ModelCard,
    ModelList,
    ResponseMessage,
    Usage,
    check_history,
)
from api.openapi_responses import ASKING, EVENT_STREAM, errors, text_response
from api.query_jobs import QuerySpec, check_query, submit_and_subscribe
from api.relay import EventBatch
from api.routes.collections import list_collection_infos
from api.sse import STREAM_HEADERS
from shared.jobs.tasks import ChatTurn
from shared.streams.events import EventName, StreamEvent

router = APIRouter(prefix="/v1", tags=["openai"])


def _split(request: ChatCompletionRequest) -> tuple[str, list[ChatTurn]]:
    """(question, earlier turns) from the messages; the last one must be the user's."""
    last = request.messages[-1]
    if last.role != "user":
        raise ApiError(422, "invalid_request", "the last message must have role 'user' (it is the question)")
    history = [
        ChatTurn(role=m.role, content=m.text()) for m in request.messages[:-1] if m.role in ("user", "assistant")
    ]
    return last.text(), history


def _chunk(job_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
    body = {
        "id": f"chatcmpl-{job_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return json.dumps(body, ensure_ascii=False)


async def _stream_frames(job_id: str, model: str, events: AsyncIterator[EventBatch]) -> AsyncIterator[bytes]:
    """OpenAI's chunks, one write per batch of events that were ready together."""
    created = int(time.time())
    async for batch in events:
        yield b"".join(frame.encode() for event in batch for frame in _openai_frames(job_id, created, model, event))


def _openai_frames(job_id: str, created: int, model: str, event: StreamEvent) -> list[ServerSentEvent]:
    if event.event == EventName.SOURCES:
        first = _chunk(job_id, created, model, {"role": "assistant", "content": ""}, None, sources=event.data)
        return [ServerSentEvent(data=first)]
    if event.event == EventName.TOKEN:
        return [ServerSentEvent(data=_chunk(job_id, created, model, {"content": event.token().text}, None))]
    if event.event == EventName.DONE:
        return [ServerSentEvent(data=_chunk(job_id, created, model, {}, "stop")), ServerSentEvent(data="[DONE]")]
    if event.event == EventName.ERROR:
        failure = event.error()
        error = {"error": {"code": failure.code, "message": failure.message, "type": "server_error"}}
        return [ServerSentEvent(data=json.dumps(error, ensure_ascii=False))]
    return []


async def _complete(job_id: str, model: str, events: AsyncIterator[EventBatch]) -> Response:
    sources: list[dict[str, Any]] = []
    pieces: list[str] = []
    async for batch in events:
        for event in batch:
            if event.event == EventName.SOURCES:
                sources = event.data
            elif event.event == EventName.TOKEN:
                pieces.append(event.token().text)
            elif event.event == EventName.ERROR:
                failure = event.error()
                return error_json(502, failure.code, failure.message)
    completion = ChatCompletion(
        id=f"chatcmpl-{job_id}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message=ResponseMessage(content="".join(pieces)), finish_reason="stop")],
        usage=Usage(completion_tokens=len(pieces), total_tokens=len(pieces)),
        sources=sources,
    )
    return JSONResponse(completion.model_dump())


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        **text_response(EVENT_STREAM, why="The completion; with `stream: true`, SSE `data:` chunks then `[DONE]`"),
        **errors(400, 404, 409, 413, 422, 502, *ASKING),
    },
    summary="OpenAI-compatible chat over a collection (model = collection); `stream: true` for SSE chunks",
)
async def chat_completions(
    body: ChatCompletionRequest,
    principal: PrincipalDep,
    gate: KeyGateDep,
    settings: SettingsDep,
    store: StoreDep,
    redis: RedisDep,
    hub: HubDep,
    celery: CeleryDep,
    dispatcher: QueryDispatcherDep,
) -> Response:
    check_history(body, settings.MAX_HISTORY_TURNS, settings.MAX_HISTORY_CHARS)
    question, history = _split(body)
    principal.require_collection(body.model)
    question = await check_query(settings, store, body.model, question)
    job_id, events = await submit_and_subscribe(
        redis,
        hub,
        dispatcher,
        settings,
        QuerySpec(body.model, question, body.top_k, history, body.mode),
        gate=gate,
    )
    if body.stream:
        await gate.count_stream(job_id)
        # A client that leaves mid-answer and is not back within the grace period gets its answer stopped.
        events = cancel_when_abandoned(events, redis, celery, settings, job_id)
        return EventSourceResponse(
            _stream_frames(job_id, body.model, events),
            ping=settings.PING_INTERVAL_S,
            headers={**STREAM_HEADERS, "X-Job-Id": job_id},
        )
    return await _complete(job_id, body.model, events)


@router.get("/models", response_model=ModelList, summary="Collections, as OpenAI models")
async def list_models(store: StoreDep, principal: PrincipalDep) -> ModelList:
    infos = await run_in_threadpool(list_collection_infos, store, principal)
    return ModelList(data=[ModelCard(id=i.name, created=int(i.created_at)) for i in infos])
