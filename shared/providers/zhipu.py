"""ZhipuAI (GLM-4-Flash, embedding-2) through the stock LlamaIndex integrations.

The integrations build their own SDK client from the key alone; we swap in one that carries the
configured base URL, timeout and retry count, so ZHIPUAI_BASE_URL (a local protocol server in tests,
a proxy in production) and upstream timeouts come from our settings. The LLM's client also records its
open responses, so a cancel can close the upstream stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ChatResponseGen
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


class UsageReportingZhipuAI(ZhipuAI):
    """The stock integration, except that a chunk with no text is passed on (as an empty delta) when it carries
    the call's `usage`, as Zhipu's last chunk does: the stock one drops it, and a key's tokens come from it."""

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        messages_dict = self._convert_to_llm_messages(messages)

        def gen() -> ChatResponseGen:
            raw_response = self._client.chat.completions.create(
                model=self.model,
                messages=messages_dict,
                stream=True,
                tools=kwargs.get("tools"),
                tool_choice=kwargs.get("tool_choice"),
                stop=kwargs.get("stop"),
                timeout=self.timeout,
                extra_body=self.model_kwargs,
            )
            text = ""
            for chunk in raw_response:
                delta = chunk.choices[0].delta if chunk.choices else None
                content = delta.content if delta is not None else None
                if content is None and getattr(chunk, "usage", None) is None:
                    continue
                text += content or ""
                yield ChatResponse(
                    message=ChatMessage(
                        content=text,
                        role=(delta.role if delta is not None else None) or "assistant",
                        additional_kwargs={"tool_calls": delta.tool_calls if delta is not None else None},
                    ),
                    delta=content or "",
                    raw=chunk,
                )

        return gen()


def build_zhipu_llm(settings: Settings) -> tuple[ZhipuAI, OpenResponses]:
    """The LLM, and the tracker of its open responses (to close them on cancel)."""
    llm = UsageReportingZhipuAI(
        model=settings.CHAT_MODEL, api_key=settings.ZHIPU_API_KEY or "", timeout=settings.UPSTREAM_TIMEOUT_S
    )
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
