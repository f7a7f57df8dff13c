"""An executor that records what is sent to it: set as a loop's default executor, it shows what left the loop."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class CountingThreads(ThreadPoolExecutor):
    """A thread pool that records the repr of every callable submitted to it, in order."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.sent: list[str] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.sent.append(repr(fn))
        return super().submit(fn, *args, **kwargs)
