"""ZhipuAI (GLM-4-Flash, embedding-2) through the stock LlamaIndex integrations.

The integrations build their own SDK client from the key alone; we swap in one that carries the
configured base URL, timeout and retry count, so ZHIPUAI_BASE_URL (a local protocol server in tests,
a proxy in production) and upstream timeouts come from our settings. The LLM's client also records its
open responses, so a cancel can close the upstream stream.
"""

from __future__ import annotations

import httpx
from llama_index.llms.zhipuai import ZhipuAI
from zhipuai import ZhipuAI as ZhipuAIClient

from shared.providers.open_responses import OpenResponses
from shared.providers.zhipu_batched import BatchedZhipuEmbedding
from shared.settings import Settings


def _client(settings: Settings, http_client: httpx.Client | None = None) -> ZhipuAIClient:
    return ZhipuAIClient(
        api_key=settings.ZHIPU_API_KEY,
        base_url=settings.ZHIPUAI_BASE_URL,
        timeout=settings.UPSTREAM_TIMEOUT_S,
        max_retries=settings.UPSTREAM_MAX_RETRIES,
        http_client=http_client,
    )


def build_zhipu_llm(settings: Settings) -> tuple[ZhipuAI, OpenResponses]:
    """The LLM, and the tracker of its open responses (to close them on cancel)."""
    llm = ZhipuAI(model=settings.CHAT_MODEL, api_key=settings.ZHIPU_API_KEY or "", timeout=settings.UPSTREAM_TIMEOUT_S)
    responses = OpenResponses()
    http_client = httpx.Client(
        timeout=settings.UPSTREAM_TIMEOUT_S,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        event_hooks={"response": [responses.track]},
    )
    llm._client = _client(settings, http_client)
    return llm, responses


def build_zhipu_embedding(settings: Settings) -> BatchedZhipuEmbedding:
    """Batched, concurrent embedding with retries (the stock class sends one text per request, serially)."""
    return BatchedZhipuEmbedding(
        model=settings.EMBED_MODEL,
        api_key=settings.ZHIPU_API_KEY or "",
        base_url=settings.ZHIPUAI_BASE_URL,
        timeout=settings.UPSTREAM_TIMEOUT_S,
        batch_size=settings.ZHIPU_EMBED_BATCH_SIZE,
        max_concurrency=settings.EMBED_CONCURRENCY,
        max_attempts=settings.UPSTREAM_MAX_RETRIES + 1,
    )
