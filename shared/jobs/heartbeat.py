"""A worker's heartbeat for one running job: an expiring Redis key refreshed by a background thread.

A watchdog that finds a job `running` with no heartbeat knows its worker died (killed, OOM, host lost)
and ends the job's stream with `error` `worker_lost`: every stream ends with a terminal event, even when its
worker is gone.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType

import redis

from shared import keys


class Heartbeat:
    """`with Heartbeat(client, job_id, interval, ttl):` keeps rag:heartbeat:{job} alive while the block runs."""

    def __init__(
        self, client: redis.Redis, job_id: str, interval_s: float, ttl_s: float, key: str | None = None
    ) -> None:
        self.client = client
        self.key = key or keys.heartbeat_key(job_id)
        self.interval_s = interval_s
        self.ttl_ms = int(ttl_s * 1000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(redis.RedisError):  # a Redis blip must not kill the job; the next beat retries
                self.client.set(self.key, "1", px=self.ttl_ms)

    def __enter__(self) -> Heartbeat:
        self.client.set(self.key, "1", px=self.ttl_ms)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.client.delete(self.key)
