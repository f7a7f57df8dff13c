"""ZhipuAI (GLM-4-Flash, embedding-2) through the stock LlamaIndex integrations.

The integrations build their own SDK client from the key alone; we swap in one that carries the
configured base URL, timeout and retry count, so ZHIPUAI_BASE_URL (a local protocol server in tests,
a proxy in production) and upstream timeouts come from our settings.
"""

from __future__ import annotations

from llama_index.embeddings.zhipuai import ZhipuAIEmbedding
from llama_index.llms.zhipuai import ZhipuAI
from zhipuai import ZhipuAI as ZhipuAIClient

from shared.settings import Settings


def _client(settings: Settings) -> ZhipuAIClient:
    return ZhipuAIClient(
        api_key=settings.ZHIPU_API_KEY,
        base_url=settings.ZHIPUAI_BASE_URL,
        timeout=settings.UPSTREAM_TIMEOUT_S,
        max_retries=settings.UPSTREAM_MAX_RETRIES,
    )


def build_zhipu_llm(settings: Settings) -> ZhipuAI:
    llm = ZhipuAI(model=settings.CHAT_MODEL, api_key=settings.ZHIPU_API_KEY or "", timeout=settings.UPSTREAM_TIMEOUT_S)
    llm._client = _client(settings)
    return llm


def build_zhipu_embedding(settings: Settings) -> ZhipuAIEmbedding:
    embed = ZhipuAIEmbedding(
        model=settings.EMBED_MODEL, api_key=settings.ZHIPU_API_KEY or "", embed_batch_size=settings.EMBED_BATCH_SIZE
    )
    embed._client = _client(settings)
    return embed
