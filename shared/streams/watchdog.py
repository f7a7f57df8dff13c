"""The watchdog's endings for query jobs nobody else will end: a dead worker, or no worker at all.

Run by the API's relay while a client listens (api/relay.py) and by the periodic reaper whether or not one
does (workers/reaper.py); both end through shared/streams/endings.py, so racing each other or a redelivered
task is safe.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from shared import keys
from shared.jobs.records import JobField, JobKind, JobState
from shared.streams.endings import QueryEnding, end_query_async
from shared.streams.events import ErrorCode

WORKER_LOST_MESSAGE = "the worker running this query stopped (killed or crashed) before it finished; please ask again"


async def reap_if_dead(redis: aioredis.Redis, job_id: str, replay_ttl_s: int, grace_s: float) -> bool:
    """End a `running` query job whose worker stopped sending heartbeats; True if it was reaped.

    A heartbeat found missing is looked for again `grace_s` later (the worker's beat interval) before the job is
    ended. After a pause of the whole machine (a paused VM, a swap storm) Redis expires the key at once, while
    the worker, alive, has not yet had its turn to refresh it; watchdog and worker wake together, and a single
    look would end a live answer `worker_lost`.
    """
    if not await _running_without_heartbeat(redis, job_id):
        return False
    await asyncio.sleep(grace_s)
    if not await _running_without_heartbeat(redis, job_id):
        return False
    return await end_query_async(
        redis, job_id, QueryEnding.failed(ErrorCode.WORKER_LOST, WORKER_LOST_MESSAGE), replay_ttl_s
    )


async def _running_without_heartbeat(redis: aioredis.Redis, job_id: str) -> bool:
    state, kind = await redis.hmget(keys.job_key(job_id), [JobField.STATE, JobField.KIND])  # type: ignore[misc]
    if state != JobState.RUNNING or kind != JobKind.QUERY:
        return False
    return not await redis.exists(keys.heartbeat_key(job_id))


async def end_if_still_queued(redis: aioredis.Redis, job_id: str, waited_s: float, replay_ttl_s: int) -> bool:
    """No worker picked the job up in time: end its stream with an error a person can act on; True if ended here."""
    state = await redis.hget(keys.job_key(job_id), JobField.STATE)  # type: ignore[misc]
    if state != JobState.QUEUED:
        return False
    message = f"no query worker picked this job up within {waited_s:.0f} s; is a worker running on the `query` queue?"
    return await end_query_async(redis, job_id, QueryEnding.failed(ErrorCode.QUEUE_TIMEOUT, message), replay_ttl_s)
