"""The one periodic reaper: ends the query jobs nobody else would end, whether or not a client is listening.

The relay's watchdog acts only while a client reads the stream; this runs on a schedule (Celery beat sends
`ragqueue.reap` to the `maintenance` queue every REAPER_INTERVAL_S) and looks at every query job still
counted as open (the admission set, shared/keys.py): a `running` one whose heartbeat stopped ends with
`error` `worker_lost`, a `queued` one older than QUEUE_TIMEOUT_S with `queue_timeout`, and entries whose job
already ended or expired are dropped. It ends streams with the watchdog's own code (shared/streams/watchdog.py),
whose append script refuses a second ending, so racing the relay or a redelivered task is safe. Index batches
whose worker died are requeued (workers/index_reaper.py). A Redis lock keeps one run at a time however many
beats, workers or replicas there are. Uploads no document refers to are swept too (`sweep_uploads_if_due`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
from celery import Celery
from redis import Redis
from redis.exceptions import LockError

from shared import keys
from shared.jobs.records import FINAL_STATES, JobField, JobState
from shared.settings import Settings
from shared.store import Store
from shared.streams.watchdog import end_if_still_queued, reap_if_dead
from workers.index_reaper import requeue_orphaned_batches


@dataclass
class ReapReport:
    skipped: bool = False  # another run held the lock
    worker_lost: int = 0
    queue_timeout: int = 0
    dropped: int = 0  # admission entries whose job had already ended or expired
    requeued_batches: int = 0  # index batches whose worker died, put back on their queue


async def reap_once(redis: aioredis.Redis, settings: Settings, celery: Celery | None = None) -> ReapReport:
    """One pass over the open query jobs (and, given the Celery app, orphaned index batches), under the lock."""
    lock = redis.lock(keys.reaper_lock_key(), timeout=max(30.0, 4 * settings.REAPER_INTERVAL_S), blocking=False)
    if not await lock.acquire():
        return ReapReport(skipped=True)
    try:
        report = await _reap(redis, settings)
        if celery is not None:
            report.requeued_batches = await asyncio.to_thread(requeue_orphaned_batches, celery, settings)
        return report
    finally:
        with contextlib.suppress(LockError):  # it expired during a very slow pass; nothing to release
            await lock.release()


async def _reap(redis: aioredis.Redis, settings: Settings) -> ReapReport:
    report = ReapReport()
    now = time.time()
    entries = cast(list[tuple[str, float]], await redis.zrange(keys.open_queries_key(), 0, -1, withscores=True))
    # Every open job's state and heartbeat in one round trip (hundreds are open under load); only the suspects
    # are then looked at one by one, by the watchdog's own checks.
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, _ in entries:
            pipe.hget(keys.job_key(job_id), JobField.STATE)
            pipe.exists(keys.heartbeat_key(job_id))
        replies = await pipe.execute()
    silent: list[str] = []
    for (job_id, created_at), state, beating in zip(entries, replies[0::2], replies[1::2], strict=True):
        waited = now - created_at
        if (state is None and waited > settings.QUEUE_TIMEOUT_S) or (state is not None and state in FINAL_STATES):
            report.dropped += await redis.zrem(keys.open_queries_key(), job_id)
        elif state == JobState.RUNNING and not beating:
            silent.append(job_id)
        elif state == JobState.QUEUED and waited > settings.QUEUE_TIMEOUT_S:
            report.queue_timeout += await end_if_still_queued(redis, job_id, waited, settings.REPLAY_TTL_S)
    # Together, so the pass waits one grace however many heartbeats are missing.
    reaped = await asyncio.gather(
        *(reap_if_dead(redis, job_id, settings.REPLAY_TTL_S, settings.HEARTBEAT_INTERVAL_S) for job_id in silent)
    )
    report.worker_lost += sum(reaped)
    return report


def sweep_uploads_if_due(redis: Redis, store: Store, settings: Settings) -> int:
    """Delete uploads no document refers to, past UPLOAD_GC_GRACE_S, at most once per UPLOAD_GC_INTERVAL_S
    (across every worker); how many went. Listing every collection's hashes is not free, hence the interval."""
    if not redis.set(keys.uploads_sweep_key(), "1", nx=True, px=int(settings.UPLOAD_GC_INTERVAL_S * 1000)):
        return 0
    return len(store.collect_uploads(settings.UPLOAD_GC_GRACE_S))


def run_reaper(settings: Settings, celery: Celery | None = None) -> ReapReport:
    """One reaper pass from synchronous code (a Celery task), on a Redis client of its own."""

    async def run() -> ReapReport:
        client = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
        try:
            return await reap_once(client, settings, celery)
        finally:
            await client.aclose()

    return asyncio.run(run())
