"""The answers a worker process generates on its event loop: a capacity bound, their heartbeats, the hand-off.

Whatever the answerer, a query task retrieves in its pool thread (CPU-bound work stays off the loop), then hands
the generation to the process's event loop and returns, freeing the thread: one loop holds up to LOOP_MAX_ANSWERS
answers, with no thread each (fewer with an answerer whose work is CPU: its `max_answers`). The task is acked
when it hands off, so a worker killed mid-answer is noticed by the heartbeat watchdog (`worker_lost`), as for a
redelivered query task; a warm shutdown waits for the loop's answers (`drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any

import redis
import redis.asyncio as aioredis

from shared import keys
from workers.event_loop import EventLoopThread

log = logging.getLogger(__name__)


class LoopAnswers:
    def __init__(
        self,
        loop: EventLoopThread,
        client: redis.Redis,
        aclient: aioredis.Redis,
        capacity: int,
        heartbeat_interval_s: float,
        heartbeat_ttl_s: float,
    ) -> None:
        self.loop = loop
        self.client = client
        self.aclient = aclient
        self.interval_s = heartbeat_interval_s
        self.ttl_ms = int(heartbeat_ttl_s * 1000)
        self._slots = threading.BoundedSemaphore(capacity)
        self._lock = threading.Lock()
        self._beating: set[str] = set()
        asyncio.run_coroutine_threadsafe(self._beat(), loop.loop)

    def begin(self, job_id: str) -> None:
        """Take a slot (waiting while the loop is full) and start the job's heartbeat."""
        self._slots.acquire()
        self.client.set(keys.heartbeat_key(job_id), "1", px=self.ttl_ms)
        with self._lock:
            self._beating.add(job_id)

    def end(self, job_id: str) -> None:
        """The job ended before its hand-off (in the task's thread)."""
        self._forget(job_id)
        self.client.delete(keys.heartbeat_key(job_id))
        self._slots.release()

    def hand_off(self, job_id: str, generation: Coroutine[Any, Any, None]) -> None:
        """Run the job's generation on the loop; its slot and heartbeat end with it."""
        asyncio.run_coroutine_threadsafe(self._run(job_id, generation), self.loop.loop)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._beating)

    def drain(self, timeout_s: float) -> bool:
        """Wait until the loop's answers ended (a warm shutdown); False if some were still running."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.1)
        return not self.in_flight()

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._beating.discard(job_id)

    async def _run(self, job_id: str, generation: Coroutine[Any, Any, None]) -> None:
        try:
            await generation
        except Exception:
            log.exception("query job %s: generation on the event loop failed", job_id)
        finally:
            self._forget(job_id)
            with contextlib.suppress(redis.RedisError):
                await self.aclient.delete(keys.heartbeat_key(job_id))
            self._slots.release()

    async def _beat(self) -> None:
        """Refresh every running job's heartbeat key, in one round trip per interval."""
        while True:
            await asyncio.sleep(self.interval_s)
            with self._lock:
                job_ids = list(self._beating)
            if not job_ids:
                continue
            # Nothing may end this loop: were it to stop, every answer on the loop would be reaped `worker_lost`
            # while still streaming. A Redis blip is routine; anything else is logged. The next beat retries.
            try:
                async with self.aclient.pipeline(transaction=False) as pipe:
                    for job_id in job_ids:
                        pipe.set(keys.heartbeat_key(job_id), "1", px=self.ttl_ms)
                    await pipe.execute()
            except redis.RedisError:
                pass
            except Exception:
                log.exception(
                    "refreshing %d answers' heartbeats failed; retrying in %.1f s", len(job_ids), self.interval_s
                )
