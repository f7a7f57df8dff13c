"""`EMBED_PROVIDER=openai_compatible`: any OpenAI-compatible `/embeddings` (Text Embeddings Inference, vLLM,
Ollama, Infinity, Xinference, OpenAI) with many texts per request, bounded concurrency and retries.

Deliberate choices:
- The sync `openai` client, one request per batch of `batch_size` texts, `max_concurrency` batches in flight
  through one thread pool per process (created on first use, again after a fork): an index batch keeps every
  request slot busy, as the Zhipu path does.
- `encoding_format="float"`: the SDK asks for base64 unless told, which some self-hosted servers do not speak.
- The SDK's own retries are off (`max_retries=0`); tenacity retries 408, 429, 5xx, timeouts and dropped
  connections here, honouring `Retry-After`, so the two never multiply.
- The SDK sends the request and raises its own error types, but hands back the raw response
  (`cast_to=httpx.Response`), whose body orjson decodes: the stdlib decoder costs ~0.2 ms of CPU per 1024-d
  vector, orjson a tenth of that, with the same floats.
- Models trained with instructions (e5: `query: ` / `passage: `; bge: a query instruction) get them from
  `EMBED_QUERY_PREFIX` and `EMBED_PASSAGE_PREFIX`; they are part of the model's identity a collection records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import openai
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from shared.providers.embedding_requests import RequestPool, Vectors, vectors_in_order, with_retries
from shared.settings import Settings


def is_retryable(exc: BaseException) -> bool:
    """True for failures another attempt may cure: 408, 429, 5xx, timeouts and dropped connections."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError | httpx.TransportError)  # APITimeoutError included


class OpenAICompatibleEmbedding(BaseEmbedding):
    """Embeddings from an OpenAI-compatible server, `batch_size` texts per request, `max_concurrency` at once."""

    batch_size: int = Field(default=32, ge=1, description="Texts per /embeddings request.")
    max_concurrency: int = Field(default=4, ge=1, description="Requests in flight at once, per process.")
    max_attempts: int = Field(default=3, ge=1, description="Attempts per request, the first included.")
    query_prefix: str = Field(default="", description="Put before every question (e5: 'query: ').")
    passage_prefix: str = Field(default="", description="Put before every chunk (e5: 'passage: ').")

    _client: openai.OpenAI = PrivateAttr()
    _requests: RequestPool = PrivateAttr()

    def __init__(self, client: openai.OpenAI, **kwargs: Any) -> None:
        # Hand the pipeline enough texts per call to fill every request slot (LlamaIndex splits by this).
        batch, concurrency = kwargs.get("batch_size", 32), kwargs.get("max_concurrency", 4)
        kwargs.setdefault("embed_batch_size", min(batch * concurrency, 2048))
        super().__init__(**kwargs)
        self._client = client
        self._requests = RequestPool(self.max_concurrency, "embed")

    @classmethod
    def class_name(cls) -> str:
        return "OpenAICompatibleEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([self.query_prefix + query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await asyncio.to_thread(self._embed, [self.query_prefix + query]))[0]

    def get_query_embeddings(self, queries: list[str]) -> list[list[float]]:
        """Several questions together (shared/providers/query_embeddings.py)."""
        return self._embed_all([self.query_prefix + q for q in queries])

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([self.passage_prefix + text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await asyncio.to_thread(self._embed, [self.passage_prefix + text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed_all([self.passage_prefix + t for t in texts])

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    def _embed_all(self, texts: Sequence[str]) -> Vectors:
        """`texts` in batches, at most `max_concurrency` requests at once; vectors in input order."""
        batches = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        # Executor.map yields in submission order and cancels batches not yet started if one fails.
        return [vector for batch in self._requests.executor().map(self._embed, batches) for vector in batch]

    def _embed(self, texts: list[str]) -> Vectors:
        """One /embeddings request for `texts`, retried on transient failures."""
        return with_retries(
            self._create,
            texts,
            retryable=is_retryable,
            attempts=self.max_attempts,
            backoff_initial_s=0.5,
            backoff_max_s=20.0,
            what=f"/embeddings ({self.model_name})",
        )

    def _create(self, texts: list[str]) -> Vectors:
        # Never the SDK's models: building them float by float costs milliseconds per vector.
        body = {"model": self.model_name, "input": texts, "encoding_format": "float"}
        response = self._client.post("/embeddings", body=body, cast_to=httpx.Response)
        return vectors_in_order(response.content, len(texts), "/embeddings")


def build_openai_compatible_embedding(settings: Settings) -> OpenAICompatibleEmbedding:
    client = openai.OpenAI(
        api_key=settings.embed_api_key,
        base_url=settings.embed_base_url,
        timeout=settings.UPSTREAM_TIMEOUT_S,
        max_retries=0,
    )
    return OpenAICompatibleEmbedding(
        client,
        model_name=settings.EMBED_MODEL,
        batch_size=settings.EMBED_TEXTS_PER_REQUEST,
        max_concurrency=settings.EMBED_CONCURRENCY,
        max_attempts=settings.UPSTREAM_MAX_RETRIES + 1,
        query_prefix=settings.EMBED_QUERY_PREFIX,
        passage_prefix=settings.EMBED_PASSAGE_PREFIX,
    )
