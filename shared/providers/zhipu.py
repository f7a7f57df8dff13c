"""ZhipuAI (GLM-4-Flash, embedding-2) through LlamaIndex's integrations.

The integrations build their own SDK client from the key alone; we swap in one that carries the configured
base URL, timeout and retry count, so ZHIPUAI_BASE_URL (a local protocol server in tests, a proxy in
production) and upstream timeouts come from our settings.

The stock LLM's `astream_chat` calls the sync zhipuai SDK and hops to a thread for every chunk, and its `achat`
polls Zhipu's task API once a second: answering on a worker process's event loop needs neither. So the LLM's
async calls (`AsyncZhipuAI`) send `{ZHIPUAI_BASE_URL}/chat/completions` (Zhipu's v4 API speaks the OpenAI chat
protocol) through the async `openai` client, with the body the stock integration sends (model, messages,
temperature, max_tokens) and the key itself as the bearer token, as the zhipuai SDK sends it by default; its
sync calls stay the stock integration's. Streamed responses pass on Zhipu's last chunk, which carries the
call's `usage` and no text, as an empty delta (a key's tokens are counted from it); a stream is read inside
`async with`, so closing its generator (a cancel) closes the upstream response.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    MessageRole,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.llms.zhipuai import ZhipuAI
from openai import AsyncOpenAI, AsyncStream
from zhipuai import ZhipuAI as ZhipuAIClient

from shared.providers.openai_compatible import async_chat_client, delta_text
from shared.providers.zhipu_batched import BatchedZhipuEmbedding
from shared.settings import ZHIPU_OPENAI_COMPATIBLE_URL, Settings


def sdk_client(settings: Settings) -> ZhipuAIClient:
    """The zhipuai SDK's client with our base URL, timeout and retry count."""
    return ZhipuAIClient(
        api_key=settings.ZHIPU_API_KEY,
        base_url=settings.ZHIPUAI_BASE_URL,
        timeout=settings.UPSTREAM_TIMEOUT_S,
        max_retries=settings.UPSTREAM_MAX_RETRIES,
    )


class AsyncZhipuAI(ZhipuAI):
    """The stock ZhipuAI LLM, with asynchronous calls that need no thread: one event loop holds many answers."""

    _aclient: AsyncOpenAI = PrivateAttr()

    def __init__(self, aclient: AsyncOpenAI, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._aclient = aclient

    @classmethod
    def class_name(cls) -> str:
        return "AsyncZhipuAI"

    @property
    def aclient(self) -> AsyncOpenAI:
        return self._aclient

    def _body(self, messages: list[dict[str, str]], **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, **self.model_kwargs}
        body.update({name: kwargs[name] for name in ("tools", "tool_choice", "stop") if kwargs.get(name) is not None})
        return body

    async def _chunks(
        self, messages: list[dict[str, str]], **kwargs: Any
    ) -> AsyncGenerator[tuple[dict[str, Any], str], None]:
        """(chunk, its text) for every chunk with text, and for the one that reports `usage` (its text may be "")."""
        # Each chunk is left as the parsed JSON (`cast_to=object`): building a typed chunk object per chunk was
        # about a third of the generation step's CPU (docs/benchmarks.md, bench/generation_cpu.py).
        stream = await self._aclient.post(
            "/chat/completions",
            body={**self._body(messages, **kwargs), "stream": True},
            cast_to=object,
            stream=True,
            stream_cls=AsyncStream[object],
        )
        async with stream:
            async for chunk in stream:
                if not isinstance(chunk, dict):
                    continue
                text = delta_text(chunk)
                if text or chunk.get("usage"):
                    yield chunk, text or ""

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        completion = await self._aclient.chat.completions.create(
            **self._body(self._convert_to_llm_messages(messages), **kwargs), stream=False
        )
        message = completion.choices[0].message
        return ChatResponse(
            message=ChatMessage(
                content=message.content,
                role=message.role,
                additional_kwargs={"tool_calls": message.tool_calls or []},
            ),
            raw=completion,
        )

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        sent = self._convert_to_llm_messages(messages)

        async def gen() -> ChatResponseAsyncGen:
            text = ""
            async with aclosing(self._chunks(sent, **kwargs)) as chunks:
                async for chunk, delta in chunks:
                    text += delta
                    message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
                    yield ChatResponse(message=message, delta=delta, raw=chunk)

        return gen()

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        # Completion responses built directly, not converted from chat responses: one object per chunk, not three.
        sent = [{"role": MessageRole.USER.value, "content": prompt}]

        async def gen() -> CompletionResponseAsyncGen:
            text = ""
            async with aclosing(self._chunks(sent, **kwargs)) as chunks:
                async for chunk, delta in chunks:
                    text += delta
                    yield CompletionResponse(text=text, delta=delta, raw=chunk)

        return gen()


def build_zhipu_llm(settings: Settings) -> AsyncZhipuAI:
    """The LLM for `LLM_PROVIDER=zhipu`: async calls on an `openai` client with our base URL, timeout and retries;
    sync calls on the stock integration's SDK client, configured the same way."""
    aclient = async_chat_client(
        settings.ZHIPU_API_KEY or "", settings.ZHIPUAI_BASE_URL or ZHIPU_OPENAI_COMPATIBLE_URL, settings
    )
    llm = AsyncZhipuAI(
        aclient,
        model=settings.CHAT_MODEL,
        api_key=settings.ZHIPU_API_KEY or "",
        timeout=settings.UPSTREAM_TIMEOUT_S,
    )
    llm._client = sdk_client(settings)
    return llm


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
