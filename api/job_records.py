"""API side of job records: accept a job (write it queued), dispatch it to Celery, read it back."""

from __future__ import annotations

import time
from typing import Any, cast

import redis.asyncio as aioredis
from celery import Celery
from starlette.concurrency import run_in_threadpool

from api.auth import OPEN, Principal
from api.errors import ApiError
from shared import keys
from shared.jobs.dispatch import send
from shared.jobs.records import JobField, JobKind, JobRecord, JobState, initial_fields, new_job_id, parse_job
from shared.jobs.tasks import TaskRequest
from shared.ops.log_setup import job_id_var
from shared.settings import Settings

# How many job ids `GET /v1/jobs` can page through; older ids fall out of the index (their records expire anyway).
JOBS_INDEX_SIZE = 1000


async def create_job(
    redis: aioredis.Redis,
    settings: Settings,
    kind: JobKind,
    collection: str | None,
    *,
    owner: str,
    job_id: str | None = None,
) -> str:
    """Record a queued job owned by `owner` (the caller's key id, Principal.owner) and return its id (`job_id`
    if given: the id a key's stream slot was taken for, api/key_limits.py)."""
    job_id = job_id or new_job_id()
    job_id_var.set(job_id)  # the rest of this request logs with it (shared/ops/log_setup.py)
    key = keys.job_key(job_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=cast(Any, initial_fields(job_id, kind, collection, owner)))
        pipe.expire(key, settings.JOB_TTL_S)
        pipe.zadd(keys.jobs_index_key(), {job_id: time.time()})
        pipe.zremrangebyrank(keys.jobs_index_key(), 0, -JOBS_INDEX_SIZE - 1)
        if kind == JobKind.QUERY:  # counted until it ends, for admission control (api/admission.py)
            pipe.zadd(keys.open_queries_key(), {job_id: time.time()})
        await pipe.execute()
    return job_id


async def dispatch(celery: Celery, request: TaskRequest) -> None:
    """Send the job's task with the job id as its Celery task id (so Flower shows the same id)."""
    try:
        await run_in_threadpool(send, celery, request, request.job_id)
    except Exception as exc:  # broker unreachable: the job cannot run
        raise broker_unavailable(exc) from exc


def broker_unavailable(exc: Exception) -> ApiError:
    """The 503 for a job whose task the broker did not take."""
    return ApiError(503, "broker_unavailable", f"could not queue the job: {exc}")


async def recent_jobs(
    redis: aioredis.Redis,
    limit: int,
    offset: int = 0,
    state: JobState | None = None,
    kind: JobKind | None = None,
    owner: str | None = None,
) -> list[JobRecord]:
    """Jobs still kept, newest first, filtered by state, kind and owner, `limit` of them after skipping `offset`."""
    if state is None and kind is None and owner is None:
        ids = cast(list[str], await redis.zrevrange(keys.jobs_index_key(), offset, offset + limit - 1))
    else:  # the index holds at most JOBS_INDEX_SIZE ids: filter them by three fields each, then page
        every = cast(list[str], await redis.zrevrange(keys.jobs_index_key(), 0, -1))
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in every:
                pipe.hmget(keys.job_key(job_id), [JobField.STATE, JobField.KIND, JobField.OWNER])
            fields = cast(list[list[str | None]], await pipe.execute())
        matching = [
            job_id
            for job_id, (job_state, job_kind, job_owner) in zip(every, fields, strict=True)
            if (state is None or job_state == state)
            and (kind is None or job_kind == kind)
            and (owner is None or (job_owner or "") == owner)
        ]
        ids = matching[offset : offset + limit]
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(keys.job_key(job_id))
        rows = cast(list[dict[str, str]], await pipe.execute())
    return [parse_job(fields) for fields in rows if fields]


async def load_job(redis: aioredis.Redis, job_id: str) -> JobRecord:
    """Any caller's job (for the API's own housekeeping); routes use `load_job_for`."""
    return await load_job_for(redis, job_id, OPEN)


async def load_job_for(redis: aioredis.Redis, job_id: str, principal: Principal) -> JobRecord:
    """`load_job` for a route: another key's job gets the very same 404 as an unknown one (api/auth.py)."""
    job_id_var.set(job_id)
    fields = cast(dict[str, str], await redis.hgetall(keys.job_key(job_id)))
    if not fields or not principal.may_see_job(job_id, fields.get(JobField.OWNER, "")):
        raise job_not_found(job_id)
    return parse_job(fields)


def job_not_found(job_id: str) -> ApiError:
    return ApiError(404, "job_not_found", f"no job {job_id!r} (unknown, or expired)")
