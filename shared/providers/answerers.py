"""Answerers turn a question and its retrieved chunks into a stream of text pieces, on the worker's event loop.

`AsyncLLMAnswerer` prompts any LlamaIndex LLM (GLM-4-Flash by default) and yields its deltas as they arrive.
`ExtractiveAnswerer` is the no-LLM fallback: it quotes the retrieved sentences closest to the question
and says plainly that no language model wrote the answer. Every answerer is asynchronous, so the worker has one
generation path; CPU work an answerer does (the extractive one's embeddings) goes to threads, off the loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from typing import Protocol

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import LLM
from llama_index.core.prompts import PromptTemplate

from shared.store import ScoredChunk
from shared.usage import TokenUsage

NO_CONTEXT_ANSWER = "知识库中没有找到与这个问题相关的内容，无法根据资料回答。"
EXTRACTIVE_NOTICE = "【未配置大模型：以下是从资料中摘录的与问题最相关的原文，并非生成的回答。】\n"

QA_PROMPT = PromptTemplate(
    "以下是检索到的参考资料，每段以 [编号] 开头。\n"
    "---------------------\n"
    "{context_str}\n"
    "---------------------\n"
    "请只根据参考资料回答问题，不要使用资料以外的知识；引用资料时在句末注明编号，如 [1]。"
    "如果资料中没有答案，请直接说明资料中没有相关内容。\n"
    "问题：{query_str}\n"
    "回答："
)

CONDENSE_PROMPT = PromptTemplate(
    "下面是一段对话和一个后续问题。请把后续问题改写成一个不依赖对话、可以单独理解的完整问题，"
    "保持原来的语言，只输出改写后的问题。\n"
    "对话：\n{chat_history}\n"
    "后续问题：{question}\n"
    "独立问题："
)

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|\n+")


class Answerer(Protocol):
    """Streams an answer on the worker process's event loop (many answers, no thread each)."""

    name: str

    @property
    def max_answers(self) -> int | None:
        """How many answers a worker process works on at once when the answerer's work is CPU (beyond it, a query
        task waits with its message, which another worker process may take); None: only LOOP_MAX_ANSWERS."""

    async def acondense(self, question: str, history: Sequence[dict[str, str]], usage: TokenUsage | None = None) -> str:
        """A standalone question from a follow-up and the earlier turns ({role, content} dicts); `usage` gets
        the tokens of the LLM call it made, if any."""

    def astream(
        self, question: str, chunks: Sequence[ScoredChunk], usage: TokenUsage | None = None
    ) -> AsyncIterator[str]:
        """The answer's pieces; `usage` gets the call's tokens once the stream is read to its end. Closing the
        iterator stops the upstream call."""


def fill_usage(usage: TokenUsage, reported: object, prompt: str, pieces: int) -> None:
    """The upstream's `usage` (an object or a dict with prompt_tokens and completion_tokens); without one, an
    estimate marked as such: a character of the prompt and a piece of the answer for a token each."""
    if isinstance(reported, dict):
        prompt_tokens, completion_tokens = reported.get("prompt_tokens"), reported.get("completion_tokens")
    else:
        prompt_tokens = getattr(reported, "prompt_tokens", None)
        completion_tokens = getattr(reported, "completion_tokens", None)
    if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
        usage.prompt_tokens, usage.completion_tokens, usage.estimated = prompt_tokens, completion_tokens, False
    else:
        usage.prompt_tokens, usage.completion_tokens, usage.estimated = len(prompt), pieces, True


def format_context(chunks: Sequence[ScoredChunk]) -> str:
    return "\n\n".join(f"[{i}] {c.text}" for i, c in enumerate(chunks, start=1))


class AsyncLLMAnswerer:
    """Streams a LlamaIndex LLM's answer grounded in the retrieved chunks, through the LLM's async interface: on
    the worker process's event loop, no thread per answer."""

    max_answers = None  # waiting on the upstream costs the process nothing

    def __init__(self, llm: LLM, name: str) -> None:
        self.llm = llm
        self.name = name

    async def acondense(self, question: str, history: Sequence[dict[str, str]], usage: TokenUsage | None = None) -> str:
        if not history:
            return question
        chat_history = "\n".join(f"{turn['role']}: {turn['content']}" for turn in history)
        prompt = CONDENSE_PROMPT.format(chat_history=chat_history, question=question)
        response = await self.llm.acomplete(prompt)
        if usage is not None:
            fill_usage(usage, _reported_usage(response.raw), prompt, len(response.text))
        return response.text.strip() or question

    async def astream(
        self, question: str, chunks: Sequence[ScoredChunk], usage: TokenUsage | None = None
    ) -> AsyncIterator[str]:
        prompt = QA_PROMPT.format(context_str=format_context(chunks), query_str=question)
        pieces, reported = 0, None
        # Closed explicitly when this generator is (a cancel), so the LLM's stream closes its upstream response.
        async with aclosing(await self.llm.astream_complete(prompt)) as responses:
            async for response in responses:
                reported = _reported_usage(response.raw) or reported  # the last chunk reports the call's usage
                if response.delta:
                    pieces += 1
                    yield response.delta
        if usage is not None:
            fill_usage(usage, reported, prompt, pieces)


def _reported_usage(raw: object) -> object:
    """The `usage` of an upstream response or chunk, parsed JSON or an SDK object; None if it has none."""
    return raw.get("usage") if isinstance(raw, dict) else getattr(raw, "usage", None)


class SentenceVectors:
    """The embedding model's vector of each candidate sentence, kept for the `limit` most recently used ones.

    The same chunks come back for the questions a team asks most, and every answer embedded each of their
    sentences again: about 1.8 s of CPU for 24 sentences with the local model on a small machine, before the first
    word. A sentence's vector depends on its text alone, so a repeated one is looked up (about 3 KB each).
    """

    def __init__(self, embed_model: BaseEmbedding, limit: int = 4096) -> None:
        self.embed_model = embed_model
        self.limit = limit
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # answers choose their sentences in several threads

    def __call__(self, sentences: list[str]) -> np.ndarray:
        """One row per sentence, in order."""
        with self._lock:
            known = {s: self._vectors[s] for s in sentences if s in self._vectors}
            for sentence in known:
                self._vectors.move_to_end(sentence)
        missing = [s for s in dict.fromkeys(sentences) if s not in known]
        if missing:
            embedded = self.embed_model.get_text_embedding_batch(missing)
            known.update((s, np.asarray(v)) for s, v in zip(missing, embedded, strict=True))
            with self._lock:
                for sentence in missing:
                    self._vectors[sentence] = known[sentence]
                while len(self._vectors) > self.limit:
                    self._vectors.popitem(last=False)
        return np.stack([known[s] for s in sentences])


class ExtractiveAnswerer:
    """Quotes the most relevant retrieved sentences, citing their chunk numbers; no LLM involved.

    Choosing the sentences is CPU work (the embedding model reads each candidate), so it runs in this answerer's
    own threads: the event loop that streams every answer of the process never waits for it, and the loop's
    default executor, which writes the answers' endings, is not queued behind it. A process works on as many
    answers at once as it has threads for them, so a burst of questions is shared with the other worker processes
    instead of queueing behind one process's embedding model.
    """

    name = "extractive"

    def __init__(
        self,
        embed_model: BaseEmbedding,
        max_sentences: int = 3,
        piece_chars: int = 8,
        min_chars: int = 10,
        max_candidates: int = 24,
        max_answers: int = min(32, (os.cpu_count() or 1) + 4),  # concurrent.futures' default for blocking work
    ) -> None:
        self.embed_model = embed_model
        # Candidates are taken from the best-ranked chunks first; embedding each costs CPU before the
        # first word can stream, so their number is capped.
        self.max_candidates = max_candidates
        self.min_chars = min_chars
        self.max_sentences = max_sentences
        self.piece_chars = piece_chars
        self.max_answers = max_answers
        self.sentence_vectors = SentenceVectors(embed_model)
        # Threads start on first use, so building the answerer before a fork starts none.
        self.executor = ThreadPoolExecutor(max_answers, thread_name_prefix="extractive")

    async def acondense(self, question: str, history: Sequence[dict[str, str]], usage: TokenUsage | None = None) -> str:
        """Without an LLM to rewrite it, a follow-up is searched together with the previous user turn."""
        earlier = [turn["content"] for turn in history if turn.get("role") == "user"]
        return f"{earlier[-1]}\n{question}" if earlier else question

    async def astream(
        self, question: str, chunks: Sequence[ScoredChunk], usage: TokenUsage | None = None
    ) -> AsyncIterator[str]:
        """No LLM, no tokens: `usage` stays at 0 (and is not an estimate)."""
        loop = asyncio.get_running_loop()
        for piece in await loop.run_in_executor(self.executor, self.pieces, question, chunks):
            yield piece

    def pieces(self, question: str, chunks: Sequence[ScoredChunk]) -> list[str]:
        """The whole answer, in the pieces it streams as: the notice, then each quoted sentence cut into short
        pieces (or the no-context answer when no sentence qualifies). Blocking CPU work."""
        sentences: list[tuple[int, str]] = []
        seen: set[str] = set()
        for number, chunk in enumerate(chunks, start=1):
            for raw in _SENTENCE_END.split(chunk.text):
                sentence = raw.strip()
                # Overlapping chunks repeat sentences; headings are too short to answer anything.
                if len(sentence) >= self.min_chars and sentence not in seen:
                    seen.add(sentence)
                    sentences.append((number, sentence))
        sentences = sentences[: self.max_candidates]
        if not sentences:
            return [NO_CONTEXT_ANSWER]
        q = np.asarray(self.embed_model.get_query_embedding(question))
        vectors = self.sentence_vectors([s for _, s in sentences])
        best = np.argsort(-(vectors @ q))[: self.max_sentences]
        pieces = [EXTRACTIVE_NOTICE]
        for rank in best:
            number, sentence = sentences[int(rank)]
            line = f"{sentence} [{number}]\n"
            pieces += [line[start : start + self.piece_chars] for start in range(0, len(line), self.piece_chars)]
        return pieces
