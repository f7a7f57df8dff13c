"""Query jobs: submit a question, then relay its answer as SSE (resumable with Last-Event-ID)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from api.deps import CeleryDep, HubDep, RedisDep, SettingsDep, StoreDep
from api.errors import ApiError, ErrorResponse
from api.idempotency import IdempotencyKeyDep, idempotent, request_fingerprint
from api.job_records import load_job
from api.query_jobs import QuerySpec, check_query, submit_query
from api.relay import relay_events
from api.resume import already_ended, parse_seq
from api.schemas import QueryAccepted, QueryRequest
from api.sse import event_source_response
from shared import keys
from shared.jobs.records import FINAL_STATES, JobKind, JobState
from shared.streams.endings import QueryEnding, end_query_async

router = APIRouter(prefix="/v1/queries", tags=["queries"])


@router.post(
    "",
    status_code=202,
    response_model=QueryAccepted,
    responses={
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
    summary="Ask a question of a collection; the answer streams from stream_url",
)
async def create_query(
    body: QueryRequest,
    response: Response,
    settings: SettingsDep,
    store: StoreDep,
    redis: RedisDep,
    celery: CeleryDep,
    idempotency_key: IdempotencyKeyDep,
) -> QueryAccepted:
    async def submit() -> QueryAccepted:
        question = await check_query(settings, store, body.collection, body.question)
        spec = QuerySpec(body.collection, question, body.top_k, mode=body.mode)
        job_id = await submit_query(redis, celery, settings, spec)
        stream_url = f"/v1/queries/{job_id}/stream"
        return QueryAccepted(job_id=job_id, stream_url=stream_url, status_url=f"/v1/jobs/{job_id}")

    fingerprint = request_fingerprint(body.model_dump(mode="json"))
    return await idempotent(
        redis, "queries", idempotency_key, fingerprint, submit, QueryAccepted, response, settings.IDEMPOTENCY_TTL_S
    )


@router.get(
    "/{job_id}/stream",
    response_class=EventSourceResponse,
    responses={
        204: {"description": "Last-Event-ID at or past the terminal event"},
        404: {"model": ErrorResponse},
        410: {"model": ErrorResponse},
    },
    summary="SSE: `sources`, `token`s, then exactly one `done` or `error`; each event has an `id:`",
)
async def stream_query(
    job_id: str,
    settings: SettingsDep,
    redis: RedisDep,
    hub: HubDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_param: Annotated[
        str | None, Query(alias="last_event_id", description="For clients that cannot set headers")
    ] = None,
) -> Response:
    job = await load_job(redis, job_id)
    if job.kind != JobKind.QUERY:
        raise ApiError(404, "job_not_found", f"job {job_id!r} is an {job.kind} job, not a query")
    after = parse_seq(last_event_id if last_event_id is not None else last_event_id_param)
    if await already_ended(redis, settings, job_id, after):
        return Response(status_code=204)  # a reconnect after the end: 204 stops an EventSource
    events = relay_events(
        redis,
        hub,
        job_id,
        after_seq=after,
        replay_ttl_s=settings.REPLAY_TTL_S,
        queue_timeout_s=settings.QUEUE_TIMEOUT_S,
    )
    return event_source_response(events, settings)


class CancelAccepted(BaseModel):
    job_id: str
    state: JobState


@router.delete(
    "/{job_id}",
    status_code=202,
    response_model=CancelAccepted,
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
    summary="Cancel: the worker stops the upstream LLM call within one chunk; the stream ends with "
    "`error` code `cancelled`, and the job becomes `cancelled`",
)
async def cancel_query(job_id: str, settings: SettingsDep, redis: RedisDep, celery: CeleryDep) -> CancelAccepted:
    job = await load_job(redis, job_id)
    if job.kind != JobKind.QUERY:
        raise ApiError(404, "job_not_found", f"job {job_id!r} is an {job.kind} job, not a query")
    if job.state in FINAL_STATES:
        raise ApiError(409, "job_finished", f"job {job_id!r} already ended ({job.state}); nothing to cancel")
    await redis.set(keys.cancel_key(job_id), "1", ex=settings.REPLAY_TTL_S)
    if job.state == JobState.QUEUED:
        # No worker holds it yet: end it here. A worker that picks it up later finds the stream ended.
        await run_in_threadpool(celery.control.revoke, job_id)
        await end_query_async(redis, job_id, QueryEnding.cancelled(job_id), settings.REPLAY_TTL_S)
        return CancelAccepted(job_id=job_id, state=JobState.CANCELLED)
    return CancelAccepted(job_id=job_id, state=job.state)
