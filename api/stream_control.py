"""Writes that end a query stream: on cancel, and the watchdog's (the relay's and the reaper's) for dead jobs."""

from __future__ import annotations

import json
import time
from typing import cast

import redis.asyncio as aioredis

from shared import keys
from shared.jobs.records import JobError, JobKind, JobState
from shared.streams.events import ErrorCode, EventName
from shared.streams.replay_log import APPEND_SCRIPT, STREAM_ENDED, append_call


async def end_stream(redis: aioredis.Redis, job_id: str, code: str, message: str, ttl_s: int) -> bool:
    """Append a terminal `error` unless the stream already ended; True if this call ended it."""
    script_keys, args = append_call(job_id, EventName.ERROR, {"code": code, "message": message}, ttl_s, False)
    seq = await redis.eval(APPEND_SCRIPT, len(script_keys), *script_keys, *args)  # type: ignore[misc]
    return int(seq) != STREAM_ENDED


async def finish_job(redis: aioredis.Redis, job_id: str, state: JobState, error: JobError) -> None:
    fields = {"state": state.value, "stage": "", "error": error.model_dump_json(), "updated_at": str(time.time())}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.job_key(job_id), mapping=cast(dict, fields))
        pipe.publish(keys.progress_channel(job_id), json.dumps(fields))
        pipe.zrem(keys.open_queries_key(), job_id)  # frees its admission slot (api/admission.py)
        await pipe.execute()


async def reap_if_dead(redis: aioredis.Redis, job_id: str, replay_ttl_s: int) -> bool:
    """End a `running` query job whose worker stopped sending heartbeats; True if it was reaped."""
    state, kind = await redis.hmget(keys.job_key(job_id), ["state", "kind"])  # type: ignore[misc]
    if state != JobState.RUNNING or kind != JobKind.QUERY:
        return False
    if await redis.exists(keys.heartbeat_key(job_id)):
        return False
    message = "the worker running this query stopped (killed or crashed) before it finished; please ask again"
    if await end_stream(redis, job_id, ErrorCode.WORKER_LOST, message, replay_ttl_s):
        await finish_job(redis, job_id, JobState.FAILED, JobError(code=ErrorCode.WORKER_LOST, message=message))
        return True
    return False


async def end_if_still_queued(redis: aioredis.Redis, job_id: str, waited_s: float, replay_ttl_s: int) -> bool:
    """No worker picked the job up in time: end its stream with an error a person can act on; True if ended here."""
    state = await redis.hget(keys.job_key(job_id), "state")  # type: ignore[misc]
    if state != JobState.QUEUED:
        return False
    message = f"no query worker picked this job up within {waited_s:.0f} s; is a worker running on the `query` queue?"
    if await end_stream(redis, job_id, ErrorCode.QUEUE_TIMEOUT, message, replay_ttl_s):
        await finish_job(redis, job_id, JobState.FAILED, JobError(code=ErrorCode.QUEUE_TIMEOUT, message=message))
        return True
    return False
