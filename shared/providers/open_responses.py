"""Track the HTTP responses each thread opens upstream, so a cancelled answer can close its stream now.

Breaking out of a LlamaIndex streaming generator does not close the SDK's HTTP response (it stays open
until garbage collection), so the upstream LLM would keep generating for nobody. An httpx response hook
records every response per thread; `close_all()` closes the current thread's, so a cancel stops the upstream
LLM call within one chunk.
"""

from __future__ import annotations

import threading

import httpx


class OpenResponses:
    def __init__(self) -> None:
        self._local = threading.local()

    def _responses(self) -> list[httpx.Response]:
        if not hasattr(self._local, "responses"):
            self._local.responses = []
        responses: list[httpx.Response] = self._local.responses
        return responses

    def track(self, response: httpx.Response) -> None:
        """httpx `response` event hook."""
        self._responses().append(response)

    def forget(self) -> None:
        self._responses().clear()

    def close_all(self) -> int:
        """Close every response this thread opened since the last `forget`; returns how many."""
        responses = self._responses()
        for response in responses:
            response.close()
        count = len(responses)
        responses.clear()
        return count
