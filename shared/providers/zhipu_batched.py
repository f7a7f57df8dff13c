"""Zhipu embeddings with many texts per request, a bounded number of requests in flight, and retries.

The stock `ZhipuAIEmbedding` sends one HTTP request per text, one after another. This subclass
keeps its LlamaIndex interface and changes only how texts reach `/embeddings`.

Deliberate choices:
- `batch_size` is capped at 64: Zhipu's API reference (POST /paas/v4/embeddings, `input`) allows at most
  64 texts per request for embedding-3, and at most 8K tokens in the whole list for embedding-2 (512 per
  text), so with 512-token chunks embedding-2 needs `batch_size` <= 16.
- One thread pool per instance and per process bounds the requests in flight for every caller together
  (a threaded worker's tasks share it). It is created on first use, and again after a fork.
- The SDK client is built with `max_retries=0`: tenacity retries here, so the two would multiply.
- `dimensions` is not sent for embedding-2 (its size is fixed at 1024; the parameter is embedding-3's).
- A per-request `timeout` is only sent when set: the stock class sends `timeout=None`, which overrides the
  client's timeout with none at all.
- `x-should-retry` is deliberately not consulted, because it is an OpenAI-style header, not Zhipu's own;
  whether to retry is decided by status and exception type alone.
- The SDK builds and sends the request and raises its own error types, but hands back the raw response
  (`cast_type=httpx.Response`), whose body orjson decodes: the stdlib decoder took ~0.2 ms of GIL-bound CPU
  per 1024-d vector, a sixth of an index worker's CPU per chunk; orjson takes a tenth of that, with the same
  floats (both round each decimal to the nearest double).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.embeddings.zhipuai import ZhipuAIEmbedding
from zhipuai import ZhipuAI as ZhipuAIClient
from zhipuai.core import NOT_GIVEN, make_request_options
from zhipuai.core._errors import (
    APIConnectionError,
    APIInternalError,
    APIReachLimitError,
    APIServerFlowExceedError,
    APIStatusError,
    APITimeoutError,
)

from shared.providers.embedding_requests import RequestPool, vectors_in_order, with_retries

MAX_TEXTS_PER_REQUEST = 64
_FIXED_DIMENSION_MODELS = frozenset({"embedding-2"})


def is_retryable(exc: BaseException) -> bool:
    """True for failures that another attempt may cure: 408, 429, 5xx, timeouts and dropped connections."""
    if isinstance(exc, APIReachLimitError | APIInternalError | APIServerFlowExceedError):
        return True
    if isinstance(exc, APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    # The SDK wraps send errors in APIConnectionError/APITimeoutError; errors while reading a body are raw httpx.
    return isinstance(exc, APITimeoutError | APIConnectionError | httpx.TransportError)


class BatchedZhipuEmbedding(ZhipuAIEmbedding):
    """`ZhipuAIEmbedding` that sends `batch_size` texts per request, `max_concurrency` requests at a time."""

    batch_size: int = Field(default=16, ge=1, le=MAX_TEXTS_PER_REQUEST, description="Texts per /embeddings request.")
    max_concurrency: int = Field(default=4, ge=1, description="Requests in flight at once, per instance.")
    max_attempts: int = Field(default=3, ge=1, description="Attempts per request, the first included.")
    backoff_initial_s: float = Field(default=0.5, ge=0, description="First retry wait; it doubles, plus jitter.")
    backoff_max_s: float = Field(default=20.0, ge=0, description="Longest wait between two attempts.")

    _requests: RequestPool = PrivateAttr()

    def __init__(
        self,
        model: str,
        api_key: str,
        *,
        base_url: str | None = None,
        batch_size: int = 16,
        max_concurrency: int = 4,
        max_attempts: int = 3,
        timeout: float | None = None,
        dimensions: int | None = 1024,
        **kwargs: Any,
    ) -> None:
        # Hand the pipeline enough texts per call to fill every request slot (LlamaIndex splits by this).
        kwargs.setdefault("embed_batch_size", min(batch_size * max_concurrency, 2048))
        super().__init__(
            model=model,
            api_key=api_key,
            dimensions=dimensions,
            timeout=timeout,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            max_attempts=max_attempts,
            **kwargs,
        )
        self._client = ZhipuAIClient(
            api_key=api_key,
            base_url=base_url,
            timeout=NOT_GIVEN if timeout is None else timeout,
            max_retries=0,
        )
        self._requests = RequestPool(max_concurrency, "zhipu-embed")

    @classmethod
    def class_name(cls) -> str:
        return "BatchedZhipuEmbedding"

    def close(self) -> None:
        """Stop the request threads (they also stop on their own at interpreter exit)."""
        self._requests.close()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed_request([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await asyncio.to_thread(self._embed_request, [query]))[0]

    def get_query_embeddings(self, queries: list[str]) -> list[list[float]]:
        """Several questions in one request per `batch_size` (shared/providers/query_embeddings.py)."""
        return self._get_text_embeddings(queries)  # embedding-2/3 embed a query and a passage alike

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed_request([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await asyncio.to_thread(self._embed_request, [text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` in batches, at most `max_concurrency` requests at once; results in input order."""
        # Executor.map yields in submission order and cancels batches not yet started if one fails.
        results = self._requests.executor().map(self._embed_request, self._batches(texts))
        return [vector for batch in results for vector in batch]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        loop, pool = asyncio.get_running_loop(), self._requests.executor()
        futures = [loop.run_in_executor(pool, self._embed_request, batch) for batch in self._batches(texts)]
        try:
            results = await asyncio.gather(*futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return [vector for batch in results for vector in batch]

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        return [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]

    def _embed_request(self, texts: list[str]) -> list[list[float]]:
        """One /embeddings request for `texts`, retried on transient failures; vectors in input order."""
        return with_retries(
            self._create,
            texts,
            retryable=is_retryable,
            attempts=self.max_attempts,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            what=f"zhipu /embeddings ({self.model})",
        )

    def _create(self, texts: list[str]) -> list[list[float]]:
        dimensions = NOT_GIVEN if self.model in _FIXED_DIMENSION_MODELS or not self.dimensions else self.dimensions
        # The body `embeddings.create` sends; values left NOT_GIVEN are dropped by the SDK.
        response = self._client.post(
            "/embeddings",
            body={"model": self.model, "input": texts, "dimensions": dimensions},
            options=make_request_options(timeout=NOT_GIVEN if self.timeout is None else self.timeout),
            cast_type=httpx.Response,
        )
        return vectors_in_order(response.content, len(texts), "zhipu /embeddings")
