"""Which workers consume each Celery queue: one broadcast with a short timeout, cached per API process.

Admission control asks this on every new question and readiness on every probe; a broadcast waits its whole
timeout for replies, so callers share one cached answer, and only one refresh runs at a time. Once there is
an answer, a stale one is refreshed in the background while callers get the last one at once, so no question
waits for a broadcast (except the first after start, and every one with WORKER_PING_CACHE_S=0).

An answer in which a required queue has no consumer (or the broker failed) is kept for at most
`MISSING_RECHECK_S` instead: it turns questions away and keeps /readyz at 503, so a worker that has just started
must be seen within about a second, not after a whole cache period; asking more often costs nothing then, since
no work is being admitted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from celery import Celery
from starlette.concurrency import run_in_threadpool

from shared.jobs.tasks import INDEX_QUEUE, QUERY_QUEUE

ByQueue = dict[str, list[str]]
MISSING_RECHECK_S = 1.0


def workers_by_queue(celery: Celery, timeout_s: float) -> ByQueue | None:
    """Queue name -> the workers consuming it, from `inspect().active_queues()`; None if the broker failed."""
    try:
        replies: dict[str, list[dict[str, Any]]] | None = celery.control.inspect(timeout=timeout_s).active_queues()
    except Exception:
        return None
    by_queue: ByQueue = {}
    for worker, queues in (replies or {}).items():
        for queue in queues or []:
            by_queue.setdefault(queue["name"], []).append(worker)
    return {name: sorted(workers) for name, workers in by_queue.items()}


class ConsumerProbe:
    """`workers_by_queue`, asked at most once per `cache_s` by this process."""

    def __init__(
        self, celery: Celery, timeout_s: float, cache_s: float, required: tuple[str, ...] = (INDEX_QUEUE, QUERY_QUEUE)
    ) -> None:
        self.celery = celery
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self.required = required
        self._lock = asyncio.Lock()
        self._answer: ByQueue | None = None
        self._asked_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    def _stale(self) -> bool:
        complete = self._answer is not None and all(self._answer.get(queue) for queue in self.required)
        keep_s = self.cache_s if complete else min(self.cache_s, MISSING_RECHECK_S)
        return time.monotonic() - self._asked_at >= keep_s

    async def _refresh(self, always: bool) -> None:
        async with self._lock:
            if always or self._stale():  # a caller that waited for the lock may find it just refreshed
                self._answer = await run_in_threadpool(workers_by_queue, self.celery, self.timeout_s)
                self._asked_at = time.monotonic()

    async def by_queue(self, fresh: bool = False) -> ByQueue | None:
        """The cached answer; a stale one is refreshed in the background (waited for when none exists yet)."""
        if fresh or self.cache_s == 0:
            await self._refresh(always=True)
        elif self._asked_at == float("-inf"):
            await self._refresh(always=False)
        elif self._stale() and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._refresh(always=False))
        return self._answer


async def queue_depths(redis: aioredis.Redis, queues: tuple[str, ...]) -> dict[str, int]:
    """Messages waiting per queue: the Celery Redis transport keeps a queue's messages in a list named after it."""
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue)
        depths = await pipe.execute()
    return {queue: int(depth) for queue, depth in zip(queues, depths, strict=True)}
