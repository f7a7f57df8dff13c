"""Job state and progress: a snapshot, a live SSE feed, and per-document statuses of index jobs."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import HubDep, PrincipalDep, RedisDep, SettingsDep
from api.job_records import load_job, load_job_for, recent_jobs
from api.openapi_responses import EVENT_STREAM, errors, no_content, text_response
from api.pubsub_hub import PubSubHub
from api.schemas import MAX_OFFSET, JobId
from api.sse import STREAM_HEADERS
from shared import keys
from shared.jobs.document_status import DocStatus, DocumentStatus
from shared.jobs.records import FINAL_STATES, JobKind, JobRecord, JobState
from shared.streams.events import JobEventName

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "",
    response_model=list[JobRecord],
    responses=errors(422),
    summary="Recent jobs (index, query and evaluation), newest first; filter and page",
)
async def list_jobs(
    redis: RedisDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200, description="How many jobs to return")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many matching jobs to skip (paging)")] = 0,
    state: Annotated[JobState | None, Query(description="Only jobs in this state")] = None,
    kind: Annotated[JobKind | None, Query(description="Only `index`, `query` or `evaluation` jobs")] = None,
) -> list[JobRecord]:
    # With keys on, only the caller's own jobs (the owner filter); with keys off, every job.
    return await recent_jobs(redis, limit, offset, state, kind, owner=principal.key_id)


@router.get(
    "/{job_id}",
    response_model=JobRecord,
    responses=errors(404, 422),
    summary="State, progress {done, total, stage}, result, and a clear error when the job failed",
)
async def get_job(job_id: JobId, redis: RedisDep, principal: PrincipalDep) -> JobRecord:
    return await load_job_for(redis, job_id, principal)


async def _job_events(redis: Any, hub: PubSubHub, job_id: str) -> AsyncIterator[ServerSentEvent]:
    subscription = await hub.subscribe(keys.progress_channel(job_id))  # before the first read: no change slips by
    try:
        last = None
        while True:
            job = await load_job(redis, job_id)
            snapshot = job.model_dump_json()
            final = job.state in FINAL_STATES
            if snapshot != last or final:
                name = JobEventName.END if final else JobEventName.PROGRESS
                # The `end` event's id is what a reconnecting EventSource sends back: it then gets 204.
                yield ServerSentEvent(event=name.value, data=snapshot, id=name.value if final else None)
                last = snapshot
            if final:
                return
            # Wake on the next change, or re-read after a second (a burst of changes is coalesced).
            await subscription.get(timeout=1.0)
            subscription.drain()
    finally:
        await subscription.close()


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        **text_response(EVENT_STREAM, why="The job's `progress` events, then one `end`", events=JobEventName),
        **no_content("Last-Event-ID `end`: the job already ended"),
        **errors(404, 422),
    },
    summary="SSE: a `progress` event with the job record on every change, then one `end` event (id `end`)",
)
async def job_events(
    job_id: JobId,
    principal: PrincipalDep,
    settings: SettingsDep,
    redis: RedisDep,
    hub: HubDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Any:
    await load_job_for(redis, job_id, principal)  # 404 now, not inside the stream
    if last_event_id == JobEventName.END:
        return Response(status_code=204)  # an EventSource reconnecting after `end`: 204 stops it
    return EventSourceResponse(
        _job_events(redis, hub, job_id),
        ping=settings.PING_INTERVAL_S,
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        headers=STREAM_HEADERS,
    )


class JobDocuments(BaseModel):
    job_id: str
    counts: dict[DocStatus, int]  # of every document of the job, whatever `status` filtered
    documents: list[DocumentStatus]


@router.get(
    "/{job_id}/documents",
    response_model=JobDocuments,
    responses=errors(404, 422),
    summary="Per-document status of an index job: queued, indexing, indexed, unchanged or failed (with why)",
)
async def job_documents(
    job_id: JobId,
    redis: RedisDep,
    principal: PrincipalDep,
    status: Annotated[DocStatus | None, Query(description="Only documents with this status")] = None,
) -> JobDocuments:
    await load_job_for(redis, job_id, principal)
    raw = cast(dict[str, str], await redis.hgetall(keys.job_documents_key(job_id)))  # type: ignore[misc]
    documents = [DocumentStatus.from_stored(name, value) for name, value in sorted(raw.items())]
    counts = dict(Counter(doc.status for doc in documents))
    if status:
        documents = [d for d in documents if d.status == status]
    return JobDocuments(job_id=job_id, counts=counts, documents=documents)
