"""`LLM_PROVIDER=openai_compatible`: any OpenAI-compatible `/chat/completions` (Zhipu's `/api/paas/v4`, vLLM,
Ollama, DeepSeek) through the asynchronous `openai` client.

Truly asynchronous: one event loop per worker process holds many answers at once, with no thread per answer
and no per-chunk thread hop (LlamaIndex's ZhipuAI `astream_chat` calls the sync SDK underneath).
The SDK sends the request and parses the upstream's SSE; we only read `choices[0].delta.content`. Leaving the
`async with` closes the upstream response, which is how a cancel stops the LLM.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from openai import AsyncOpenAI, AsyncStream

from shared.providers.answerers import CONDENSE_PROMPT, QA_PROMPT, fill_usage, format_context
from shared.providers.upstream_http import upstream_http_client
from shared.settings import Settings
from shared.store import ScoredChunk
from shared.usage import TokenUsage


class OpenAICompatibleAnswerer:
    """Streams an answer grounded in the retrieved chunks from an OpenAI-compatible chat endpoint."""

    max_answers = None  # waiting on the upstream costs the process nothing

    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self.client = client
        self.model = model
        self.name = f"openai_compatible/{model}"

    async def acondense(self, question: str, history: Sequence[dict[str, str]], usage: TokenUsage | None = None) -> str:
        """A standalone question from a follow-up and the earlier turns ({role, content} dicts)."""
        if not history:
            return question
        chat_history = "\n".join(f"{turn['role']}: {turn['content']}" for turn in history)
        prompt = CONDENSE_PROMPT.format(chat_history=chat_history, question=question)
        completion = await self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}]
        )
        condensed = completion.choices[0].message.content if completion.choices else None
        if usage is not None:
            fill_usage(usage, completion.usage, prompt, len(condensed or ""))
        return (condensed or "").strip() or question

    async def astream(
        self, question: str, chunks: Sequence[ScoredChunk], usage: TokenUsage | None = None
    ) -> AsyncIterator[str]:
        prompt = QA_PROMPT.format(context_str=format_context(chunks), query_str=question)
        # The SDK's own request (retries, timeouts, errors) and SSE parsing, but each chunk left as the parsed
        # JSON (`cast_to=object`) instead of a `ChatCompletionChunk` built per chunk: that construction was
        # about a third of the generation step's CPU (docs/benchmarks.md, bench/generation_cpu.py).
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "stream": True}
        stream = await self.client.post(
            "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=AsyncStream[object]
        )
        pieces, reported = 0, None
        async with stream:
            async for chunk in stream:
                if isinstance(chunk, dict) and chunk.get("usage"):
                    reported = chunk["usage"]  # servers that report it (some do unasked) do on the last chunk
                if delta := delta_text(chunk):
                    pieces += 1
                    yield delta
        if usage is not None:
            fill_usage(usage, reported, prompt, pieces)


def delta_text(chunk: object) -> str | None:
    """`choices[0].delta.content` of a chat-completion chunk, if it has text."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return None
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) and content else None


def async_chat_client(api_key: str, base_url: str, settings: Settings) -> AsyncOpenAI:
    """An async `openai` client with the upstream timeout and retries from settings, on the aiohttp transport
    (shared/providers/upstream_http.py)."""
    return AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=settings.UPSTREAM_TIMEOUT_S,
        max_retries=settings.UPSTREAM_MAX_RETRIES,
        http_client=upstream_http_client(settings.UPSTREAM_TIMEOUT_S),
    )


def build_openai_compatible_answerer(settings: Settings) -> OpenAICompatibleAnswerer:
    client = async_chat_client(settings.llm_api_key, settings.llm_base_url, settings)
    return OpenAICompatibleAnswerer(client, settings.CHAT_MODEL)
