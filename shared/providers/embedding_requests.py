"""What every remote embedding provider needs around its HTTP call: a thread pool that survives a fork, the vectors
of a response in input order, and retries of transient failures that honour `Retry-After`
(shared/providers/zhipu_batched.py, openai_embedding.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)

_RETRY_AFTER_CAP_S = 60.0
Vectors = list[list[float]]


def retry_after_s(exc: BaseException | None) -> float:
    """Seconds a 429/503 asked us to wait (`Retry-After`, in seconds), else 0."""
    response = getattr(exc, "response", None)
    if not isinstance(response, httpx.Response):
        return 0.0
    try:
        return min(float(response.headers.get("retry-after", 0)), _RETRY_AFTER_CAP_S)
    except ValueError:  # an HTTP date: rare, and the exponential wait still applies
        return 0.0


class RequestPool:
    """Threads for the requests of one embedding model, at most `size` in flight; made again after a fork."""

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():  # threads do not survive a fork
                self._pool = ThreadPoolExecutor(self.size, thread_name_prefix=self.name)
                self._pid = os.getpid()
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


def vectors_in_order(body: bytes, count: int, what: str) -> Vectors:
    """The vectors of an OpenAI-shaped `/embeddings` response body, in input order, decoded by orjson (the stdlib
    decoder costs ~0.2 ms of CPU per 1024-d vector, orjson a tenth, with the same floats); a response that does not
    hold exactly one vector per input text is an error naming `what`."""
    items = sorted(orjson.loads(body)["data"], key=lambda item: item["index"])
    if [item["index"] for item in items] != list(range(count)):
        raise ValueError(f"{what} returned indexes {[item['index'] for item in items]} for {count} texts")
    return [item["embedding"] for item in items]


def with_retries(
    call: Callable[[list[str]], Vectors],
    texts: list[str],
    *,
    retryable: Callable[[BaseException], bool],
    attempts: int,
    backoff_initial_s: float,
    backoff_max_s: float,
    what: str,
) -> Vectors:
    """`call(texts)`, tried `attempts` times on failures `retryable` accepts, waiting the longer of an exponential
    backoff with jitter and the server's `Retry-After`; the last failure is raised with a note saying `what`."""

    def wait(state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(initial=backoff_initial_s, max=backoff_max_s, jitter=0.5)
        return max(backoff(state), retry_after_s(state.outcome.exception() if state.outcome else None))

    retrying = Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(attempts),
        wait=wait,
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    try:
        return retrying(call, texts)
    except Exception as exc:
        tried = retrying.statistics.get("attempt_number", 1)
        exc.add_note(f"{what} ({len(texts)} texts): gave up after {tried} attempt(s)")
        raise
