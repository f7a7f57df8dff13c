"""Query jobs: submit a question, then relay its answer as SSE (resumable with Last-Event-ID)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from api.auth import stream_token_accepted
from api.cancellation import cancel_query_job
from api.deps import CeleryDep, HubDep, PrincipalDep, QueryDispatcherDep, RedisDep, SettingsDep, StoreDep
from api.errors import ApiError
from api.idempotency import IdempotencyKeyDep, idempotent, request_fingerprint
from api.job_records import load_job_for
from api.key_limits import KeyGateDep
from api.openapi_responses import ASKING, EVENT_STREAM, errors, no_content, text_response
from api.query_jobs import QuerySpec, check_history_texts, check_query, submit_query
from api.relay import relay_events
from api.resume import already_ended, parse_seq
from api.schemas import JobId, QueryAccepted, QueryRequest
from api.sse import event_source_response
from api.stream_tokens import signed_url
from shared.jobs.records import FINAL_STATES, JobKind, JobState
from shared.streams.events import EventName

router = APIRouter(prefix="/v1/queries", tags=["queries"])


@router.post(
    "",
    status_code=202,
    response_model=QueryAccepted,
    responses=errors(400, 404, 409, 413, 422, *ASKING),
    summary="Ask a question of a collection; the answer streams from stream_url",
    description="With API keys on, `stream_url` carries a signed `?token=` valid for STREAM_TOKEN_TTL_S: an "
    "EventSource can open it without the key (docs/security.md).",
)
async def create_query(
    body: QueryRequest,
    response: Response,
    principal: PrincipalDep,
    gate: KeyGateDep,
    settings: SettingsDep,
    store: StoreDep,
    redis: RedisDep,
    dispatcher: QueryDispatcherDep,
    idempotency_key: IdempotencyKeyDep,
) -> QueryAccepted:
    async def submit() -> QueryAccepted:
        principal.require_collection(body.collection)
        question = await check_query(settings, store, body.collection, body.question)
        history = [turn.content for turn in body.history]
        check_history_texts(history, settings.MAX_HISTORY_TURNS, settings.MAX_HISTORY_CHARS)
        spec = QuerySpec(body.collection, question, body.top_k, body.history, body.mode, rerank=body.rerank)
        job_id = await submit_query(redis, dispatcher, settings, spec, gate=gate)
        stream_url = f"/v1/queries/{job_id}/stream"
        return QueryAccepted(job_id=job_id, stream_url=stream_url, status_url=f"/v1/jobs/{job_id}")

    fingerprint = request_fingerprint(body.model_dump(mode="json"))
    accepted = await idempotent(
        redis, settings, "queries", idempotency_key, fingerprint, submit, QueryAccepted, response
    )
    # Signed here, not in submit: a replayed answer gets a fresh token, and no token is stored in Redis.
    return accepted.model_copy(update={"stream_url": signed_url(accepted.stream_url, accepted.job_id, settings)})


@router.get(
    "/{job_id}/stream",
    response_class=EventSourceResponse,
    responses={
        **text_response(EVENT_STREAM, why="The answer's events, from after Last-Event-ID", events=EventName),
        **no_content("Last-Event-ID at or past the terminal event"),
        **errors(401, 404, 410, 422),
    },
    summary="SSE: `sources`, `token`s, then exactly one `done` or `error`; each event has an `id:`",
)
@stream_token_accepted
async def stream_query(
    job_id: JobId,
    principal: PrincipalDep,
    gate: KeyGateDep,
    settings: SettingsDep,
    redis: RedisDep,
    hub: HubDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_param: Annotated[
        str | None, Query(alias="last_event_id", description="For clients that cannot set headers")
    ] = None,
    token: Annotated[
        str | None,
        Query(description="The signed token from POST /v1/queries's stream_url: opens this stream without a key"),
    ] = None,
) -> Response:
    # `token` is checked by api/auth.py's authenticate (this route is @stream_token_accepted); declared for the docs.
    job = await load_job_for(redis, job_id, principal)
    if job.kind != JobKind.QUERY:
        raise ApiError(404, "job_not_found", f"job {job_id!r} is an {job.kind} job, not a query")
    after = parse_seq(last_event_id if last_event_id is not None else last_event_id_param)
    if await already_ended(redis, settings, job_id, after):
        return Response(status_code=204)  # a reconnect after the end: 204 stops an EventSource
    if after == 0:
        await gate.count_stream(job_id)
    events = relay_events(
        redis,
        hub,
        job_id,
        after_seq=after,
        replay_ttl_s=settings.REPLAY_TTL_S,
        queue_timeout_s=settings.QUEUE_TIMEOUT_S,
        heartbeat_grace_s=settings.HEARTBEAT_INTERVAL_S,
    )
    return event_source_response(events, settings)


class CancelAccepted(BaseModel):
    job_id: str
    state: JobState


@router.delete(
    "/{job_id}",
    status_code=202,
    response_model=CancelAccepted,
    responses=errors(404, 409, 422),
    summary="Cancel: the worker stops the upstream LLM call within one chunk; the stream ends with "
    "`error` code `cancelled`, and the job becomes `cancelled`",
)
async def cancel_query(
    job_id: JobId, principal: PrincipalDep, settings: SettingsDep, redis: RedisDep, celery: CeleryDep
) -> CancelAccepted:
    job = await load_job_for(redis, job_id, principal)
    if job.kind != JobKind.QUERY:
        raise ApiError(404, "job_not_found", f"job {job_id!r} is an {job.kind} job, not a query")
    if job.state in FINAL_STATES:
        raise ApiError(409, "job_finished", f"job {job_id!r} already ended ({job.state}); nothing to cancel")
    return CancelAccepted(job_id=job_id, state=await cancel_query_job(redis, celery, settings, job))
