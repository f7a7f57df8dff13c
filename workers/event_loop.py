"""One asyncio event loop per worker process, in a thread of its own, for asynchronous answer generation.

A query task retrieves in its Celery pool thread, then hands its answer's generation to this loop and returns
(workers/loop_answers.py): reading the answerer's stream and publishing events for every answer of the process
happen on the one loop. Started on first use, after any fork; a daemon thread, so it never keeps a stopping
worker alive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


class EventLoopThread:
    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()  # libuv's loop: less CPU per wake-up than asyncio's (docs/benchmarks.md)
        self._thread = threading.Thread(target=self.loop.run_forever, name="answer-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and wait for it; its exception is raised here."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # the task's own time limit or shutdown interrupted the wait: stop the coroutine too
            raise
