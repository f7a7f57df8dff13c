"""A live answer is not ended `worker_lost` because its heartbeat expired during a pause of the whole machine.

When every process stalls (a paused VM, a swap storm), Redis expires a running job's heartbeat key at once on
waking, while the worker, alive, has not yet had its turn to refresh it; watchdog and worker wake together. So the
watchdog (the relay's and the reaper's, shared/streams/watchdog.py) looks again one beat interval later before it
ends the job. And the event loop's heartbeats keep going whatever one refresh raises (workers/loop_answers.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis

from harness.processes import RedisServer
from shared import keys
from shared.jobs.records import JobField, JobKind, JobState, new_job_id
from shared.settings import Settings
from shared.streams.events import REPLAY_FIELD, StreamEvent
from shared.streams.watchdog import reap_if_dead
from tests.support.async_redis import run_with_client
from workers.event_loop import EventLoopThread
from workers.loop_answers import LoopAnswers
from workers.reaper import reap_once

pytestmark = pytest.mark.integration

GRACE_S = 0.6  # the beat interval the watchdog waits for
TTL_S = 60


@pytest.fixture(scope="module")
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    yield redis_server.url(redis_server.claim_db("watchdog grace"))


async def _running_query(client: aioredis.Redis) -> str:
    """A query job its worker marked running, whose heartbeat key has just expired."""
    job_id = new_job_id()
    fields: dict[str, str | float] = {
        JobField.STATE: JobState.RUNNING,
        JobField.KIND: JobKind.QUERY,
        JobField.CREATED_AT: time.time(),
    }
    await client.hset(keys.job_key(job_id), mapping=fields)  # type: ignore[arg-type,misc]
    await client.zadd(keys.open_queries_key(), {job_id: time.time()})
    return job_id


async def _beats_again(client: aioredis.Redis, job_id: str) -> None:
    """The worker, woken a moment after the watchdog, refreshes its heartbeat as it does every interval."""
    await asyncio.sleep(GRACE_S / 3)
    await client.set(keys.heartbeat_key(job_id), "1", px=10_000)


async def _outcome(client: aioredis.Redis, job_id: str) -> tuple[str, list[Any]]:
    state = await client.hget(keys.job_key(job_id), JobField.STATE)  # type: ignore[misc]
    entries = cast(list[tuple[str, dict[str, str]]], await client.xrange(keys.replay_key(job_id)))
    events = [StreamEvent.from_wire(fields[REPLAY_FIELD]) for _, fields in entries]
    return str(state), [(e.event, e.data.get("code") if isinstance(e.data, dict) else None) for e in events]


def test_a_worker_that_beats_again_within_a_beat_keeps_its_answer(redis_url: str) -> None:
    async def body(client: aioredis.Redis) -> tuple[bool, tuple[str, list[Any]]]:
        job_id = await _running_query(client)
        reaped, _ = await asyncio.gather(reap_if_dead(client, job_id, TTL_S, GRACE_S), _beats_again(client, job_id))
        return reaped, await _outcome(client, job_id)

    assert run_with_client(redis_url, body) == (False, ("running", []))


def test_a_worker_that_stays_silent_for_the_grace_is_reaped_worker_lost(redis_url: str) -> None:
    async def body(client: aioredis.Redis) -> tuple[bool, tuple[str, list[Any]]]:
        job_id = await _running_query(client)
        return await reap_if_dead(client, job_id, TTL_S, GRACE_S), await _outcome(client, job_id)

    assert run_with_client(redis_url, body) == (True, ("failed", [("error", "worker_lost")]))


def test_the_reaper_ends_only_the_silent_job_of_two_whose_heartbeats_expired_together(redis_url: str) -> None:
    settings = Settings(REDIS_URL=redis_url, HEARTBEAT_INTERVAL_S=GRACE_S)

    async def body(client: aioredis.Redis) -> tuple[int, tuple[str, list[Any]], tuple[str, list[Any]]]:
        alive, dead = await _running_query(client), await _running_query(client)
        report, _ = await asyncio.gather(reap_once(client, settings), _beats_again(client, alive))
        return report.worker_lost, await _outcome(client, alive), await _outcome(client, dead)

    lost, alive, dead = run_with_client(redis_url, body)
    assert (lost, alive, dead) == (1, ("running", []), ("failed", [("error", "worker_lost")]))


class _FailsOnce(aioredis.Redis):
    """A Redis client whose first pipeline fails with an error that is not Redis's (a bug, a closed transport)."""

    failed = False

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        if not _FailsOnce.failed:
            _FailsOnce.failed = True
            raise RuntimeError("the transport went away")
        return super().pipeline(*args, **kwargs)


def test_the_event_loops_heartbeats_go_on_after_a_refresh_fails(redis_url: str) -> None:
    loop = EventLoopThread()
    interval_s, ttl_s = 0.1, 0.5
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        aclient = _FailsOnce.from_url(redis_url, decode_responses=True)
        answers = LoopAnswers(loop, client, aclient, 4, interval_s, ttl_s)
        job_id = new_job_id()
        answers.begin(job_id)
        try:
            deadline = time.monotonic() + 10 * ttl_s
            while time.monotonic() < deadline and not _FailsOnce.failed:
                time.sleep(0.05)
            time.sleep(3 * ttl_s)  # long past the TTL: only refreshes after the failure keep the key
            assert _FailsOnce.failed and client.exists(keys.heartbeat_key(job_id)) == 1
        finally:
            answers.end(job_id)
            loop.run(aclient.aclose())
