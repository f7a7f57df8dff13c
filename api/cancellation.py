"""Cancelling a query: on `DELETE /v1/queries/{id}`, and when the client of an answer it asked for left for good.

A `/stream_chat` or streaming `/v1/chat/completions` client asked the question on the same request, so when it
disconnects before the end and no client is back on the job's stream within STREAM_ABANDON_GRACE_S (an
EventSource reconnect with Last-Event-ID, on any API process), the answer is cancelled the way DELETE does it,
so the worker stops paying the upstream LLM (otherwise every abandoned stream runs to its end). Who is back
is read from Redis (PUBSUB NUMSUB of the job's channel: every API process's hub subscribes to it while it has
a client on it). Deliberately, `/v1/queries/{id}/stream` is not watched, because that job was created by a
POST and is its owner's to cancel with DELETE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import cast

import redis.asyncio as aioredis
from celery import Celery
from starlette.concurrency import run_in_threadpool

from api.job_records import load_job
from api.relay import EventBatch
from shared import keys
from shared.jobs.records import FINAL_STATES, JobRecord, JobState
from shared.settings import Settings
from shared.streams.endings import QueryEnding, end_query_async

log = logging.getLogger(__name__)

# Grace timers of streams whose client left; held so the event loop does not drop them mid-sleep.
_timers: set[asyncio.Task[None]] = set()


async def cancel_query_job(redis: aioredis.Redis, celery: Celery, settings: Settings, job: JobRecord) -> JobState:
    """Ask the job's worker to stop (it sees the cancel key at its next publish); a queued job ends here."""
    await redis.set(keys.cancel_key(job.id), "1", ex=settings.REPLAY_TTL_S)
    if job.state == JobState.QUEUED:
        # No worker holds it yet: end it here. A worker that picks it up later finds the stream ended.
        await run_in_threadpool(celery.control.revoke, job.id)
        await end_query_async(redis, job.id, QueryEnding.cancelled(job.id), settings.REPLAY_TTL_S)
        return JobState.CANCELLED
    return job.state


async def cancel_when_abandoned(
    events: AsyncIterator[EventBatch], redis: aioredis.Redis, celery: Celery, settings: Settings, job_id: str
) -> AsyncIterator[EventBatch]:
    """`events` unchanged; if the client goes before the terminal event, start the job's grace timer."""
    ended = False
    try:
        async for batch in events:
            ended = batch[-1].is_terminal
            yield batch
    finally:
        if not ended:  # a disconnect arrives as cancellation (or as the generator's close), both land here
            timer = asyncio.get_running_loop().create_task(_cancel_unless_back(redis, celery, settings, job_id))
            _timers.add(timer)
            timer.add_done_callback(_timers.discard)


async def _cancel_unless_back(redis: aioredis.Redis, celery: Celery, settings: Settings, job_id: str) -> None:
    await asyncio.sleep(settings.STREAM_ABANDON_GRACE_S)
    try:
        listeners = cast(list[tuple[str, int]], await redis.pubsub_numsub(keys.stream_channel(job_id)))
        if listeners and listeners[0][1] > 0:
            return  # a client is back (an EventSource's reconnect), here or on another API process
        job = await load_job(redis, job_id)
        if job.state in FINAL_STATES:
            return
        await cancel_query_job(redis, celery, settings, job)
        log.info(
            "query %s cancelled: its client left %.0f s ago and did not come back",
            job_id,
            settings.STREAM_ABANDON_GRACE_S,
        )
    except Exception:  # Redis down or the record expired: the answer runs on, as before this existed
        log.warning("could not cancel the abandoned query %s", job_id, exc_info=True)
