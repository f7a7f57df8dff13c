"""Which workers consume each Celery queue: one broadcast with a short timeout, cached per API process.

Admission control asks this on every new question and readiness on every probe; a broadcast waits its whole
timeout for replies, so callers share one cached answer, and only one refresh runs at a time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from celery import Celery
from starlette.concurrency import run_in_threadpool

ByQueue = dict[str, list[str]]


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

    def __init__(self, celery: Celery, timeout_s: float, cache_s: float) -> None:
        self.celery = celery
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._lock = asyncio.Lock()
        self._answer: ByQueue | None = None
        self._asked_at = float("-inf")

    async def by_queue(self, fresh: bool = False) -> ByQueue | None:
        """The cached answer unless it is older than `cache_s` (or `fresh` is asked for)."""
        async with self._lock:
            if fresh or time.monotonic() - self._asked_at >= self.cache_s:
                self._answer = await run_in_threadpool(workers_by_queue, self.celery, self.timeout_s)
                self._asked_at = time.monotonic()
            return self._answer


async def queue_depths(redis: aioredis.Redis, queues: tuple[str, ...]) -> dict[str, int]:
    """Messages waiting per queue: the Celery Redis transport keeps a queue's messages in a list named after it."""
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue)
        depths = await pipe.execute()
    return {queue: int(depth) for queue, depth in zip(queues, depths, strict=True)}
