"""Feedback on answers: rate a finished query job's answer (up or down, with a comment), list the ratings.

Deliberate choices:
- One feedback per job: a second POST replaces the first (rating, comment and time), so a page or a script may
  resend freely. The question and sources are copied on the first rating and kept by later ones, so a rating
  changed after the job's events expired keeps its sources.
- Only an answer can be rated: a job still queued or running is 409 `job_not_finished` (retry when it ends), a
  failed or cancelled one is 409 `job_not_answered`. Another key's job is the 404 an unknown one gets.
- A listing shows the caller's own jobs' feedback; an admin key sees every key's.
"""

from __future__ import annotations

import time
from typing import Annotated, cast

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, RedisDep, SettingsDep
from api.errors import ApiError
from api.feedback_records import given_sources, list_feedback, save_feedback, stored_feedback
from api.job_records import job_not_found, load_job_for
from api.openapi_responses import errors
from api.schemas import MAX_OFFSET, CollectionName, JobId
from shared import keys
from shared.feedback import Feedback, FeedbackRequest, Rating
from shared.jobs.records import FINAL_STATES, JobField, JobKind, JobState
from shared.streams.events import DonePayload

router = APIRouter(tags=["feedback"])


@router.post(
    "/v1/queries/{job_id}/feedback",
    response_model=Feedback,
    responses=errors(400, 404, 409, 422),
    summary="Rate a finished answer up or down, with an optional comment; a second rating replaces the first",
)
async def rate_answer(
    job_id: JobId, body: FeedbackRequest, principal: PrincipalDep, settings: SettingsDep, redis: RedisDep
) -> Feedback:
    job = await load_job_for(redis, job_id, principal)
    if job.kind != JobKind.QUERY:
        raise job_not_found(job_id)
    if job.state not in FINAL_STATES:
        raise ApiError(409, "job_not_finished", f"job {job_id!r} is {job.state}; rate its answer once it has ended")
    if job.state != JobState.SUCCEEDED or not isinstance(job.result, DonePayload):
        raise ApiError(409, "job_not_answered", f"job {job_id!r} {job.state} without an answer; nothing to rate")
    earlier = await stored_feedback(redis, job_id)
    feedback = Feedback(
        job_id=job_id,
        collection=earlier.collection if earlier else job.collection or "",
        question=earlier.question if earlier else job.result.question,
        rating=body.rating,
        comment=body.comment or None,
        given_at=time.time(),
        sources=earlier.sources if earlier else await given_sources(redis, job_id),
    )
    owner = cast(str | None, await redis.hget(keys.job_key(job_id), JobField.OWNER)) or ""  # type: ignore[misc]
    await save_feedback(redis, feedback, owner=owner, by=principal.owner, ttl_s=settings.FEEDBACK_TTL_S)
    return feedback


@router.get(
    "/v1/feedback",
    response_model=list[Feedback],
    responses=errors(404, 422),
    summary="Feedback on a collection's answers, latest first: your own jobs', or every key's for an admin key",
)
async def get_feedback(
    redis: RedisDep,
    principal: PrincipalDep,
    collection: Annotated[CollectionName, Query(description="The collection the rated questions asked")],
    rating: Annotated[Rating | None, Query(description="Only `up` or only `down`")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many to return")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many matching ones to skip (paging)")] = 0,
) -> list[Feedback]:
    if not principal.admin:
        principal.require_collection(collection)
    # With keys on, a key's own jobs unless it is an admin; with keys off (no key id), everyone's.
    owner = None if principal.admin or principal.key_id is None else principal.key_id
    return await list_feedback(redis, collection, owner=owner, rating=rating, limit=limit, offset=offset)
