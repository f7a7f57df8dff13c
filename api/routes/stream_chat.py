"""The wow-rag seed's `GET /stream_chat`: submit and relay in one call.

A plain client (the seed's `requests` loop over `iter_content(decode_unicode=True)`) gets the answer as
UTF-8 text chunks; a client sending `Accept: text/event-stream` (a browser EventSource) gets framed SSE
whose ids (`<job_id>:<seq>`) let its reconnect resume the same job (api/resume.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from api.cancellation import cancel_when_abandoned
from api.deps import CeleryDep, HubDep, PrincipalDep, QueryDispatcherDep, RedisDep, SettingsDep, StoreDep
from api.errors import ApiError
from api.job_records import load_job_for
from api.key_limits import KeyGateDep
from api.openapi_responses import ASKING, EVENT_STREAM, PLAIN_TEXT, errors, no_content, text_response
from api.query_jobs import QuerySpec, check_query, submit_and_subscribe
from api.relay import EventBatch, relay_events
from api.resume import already_ended, job_event_id, parse_job_event_id
from api.sse import STREAM_HEADERS, event_source_response, wants_event_stream
from shared.jobs.records import JobKind
from shared.store.retrieval_modes import DEFAULT_MODE, RetrievalMode
from shared.streams.events import EventName, StreamEvent

router = APIRouter(tags=["seed"])


async def _answer_text(events: AsyncIterator[EventBatch]) -> AsyncIterator[str]:
    async for batch in events:
        if text := "".join(map(_plain_text, batch)):
            yield text


def _plain_text(event: StreamEvent) -> str:
    if event.event == EventName.TOKEN:
        return event.token().text
    if event.event == EventName.ERROR:
        failure = event.error()
        return f"\n[error {failure.code}] {failure.message}\n"
    return ""


@router.get(
    "/stream_chat",
    response_class=StreamingResponse,
    responses={
        **text_response(
            PLAIN_TEXT,
            EVENT_STREAM,
            why="The answer as text, or SSE with `Accept: text/event-stream`",
            events=EventName,
        ),
        **no_content("An EventSource's Last-Event-ID at or past the terminal event"),
        **errors(401, 404, 409, 410, 413, 422, *ASKING),
    },
    summary="The seed's endpoint: ask and stream the answer in one call",
)
async def stream_chat(
    request: Request,
    principal: PrincipalDep,
    gate: KeyGateDep,
    settings: SettingsDep,
    store: StoreDep,
    redis: RedisDep,
    hub: HubDep,
    celery: CeleryDep,
    dispatcher: QueryDispatcherDep,
    param: Annotated[str, Query(description="The question", examples=["什么是 KV 缓存？"])],
    collection: Annotated[str | None, Query(description="Defaults to DEFAULT_COLLECTION")] = None,
    top_k: Annotated[int | None, Query(ge=1, le=50)] = None,
    mode: Annotated[RetrievalMode, Query(description="vector, bm25 or hybrid")] = DEFAULT_MODE,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="An EventSource's reconnect: `<job_id>:<seq>`")
    ] = None,
) -> Response:
    resume = parse_job_event_id(last_event_id)
    if resume.job_id is not None:
        # An EventSource reconnecting: resume the job its ids name; never ask the question again.
        job_id = resume.job_id
        if (await load_job_for(redis, job_id, principal)).kind != JobKind.QUERY:
            raise ApiError(404, "job_not_found", f"job {job_id!r} is not a query")
        if await already_ended(redis, settings, job_id, resume.after_seq):
            return Response(status_code=204)
        events = relay_events(
            redis,
            hub,
            job_id,
            after_seq=resume.after_seq,
            replay_ttl_s=settings.REPLAY_TTL_S,
            queue_timeout_s=settings.QUEUE_TIMEOUT_S,
            heartbeat_grace_s=settings.HEARTBEAT_INTERVAL_S,
        )
    else:
        name = collection or settings.DEFAULT_COLLECTION
        principal.require_collection(name)
        question = await check_query(settings, store, name, param)
        spec = QuerySpec(name, question, top_k, mode=mode)
        job_id, events = await submit_and_subscribe(redis, hub, dispatcher, settings, spec, gate=gate)
        await gate.count_stream(job_id)
    # The client asked on this request: if it leaves and is not back within the grace period, stop the answer.
    events = cancel_when_abandoned(events, redis, celery, settings, job_id)
    headers = {**STREAM_HEADERS, "X-Job-Id": job_id}
    if wants_event_stream(request):
        response = event_source_response(events, settings, lambda seq: job_event_id(job_id, seq))
        response.headers.update(headers)
        return response
    return StreamingResponse(_answer_text(events), media_type="text/plain; charset=utf-8", headers=headers)
