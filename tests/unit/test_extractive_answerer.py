"""The offline answerer streams on the worker's event loop like the LLM ones, with its CPU work in its own threads.

Choosing the quoted sentences embeds every candidate (seconds of CPU with the local model on a small machine). Run
on the loop, that would stall every other answer of the process and their heartbeats; run in the loop's default
executor, the answers' endings would queue behind it. These tests stand a slow embedding model in for the local one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from llama_index.core import MockEmbedding

from shared.providers.answerers import EXTRACTIVE_NOTICE, NO_CONTEXT_ANSWER, ExtractiveAnswerer
from shared.store import ScoredChunk
from shared.usage import TokenUsage
from tests.support.executors import CountingThreads

DELAY_S = 0.25  # per embedding call; an answer makes two (the question, then its candidate sentences)
CHUNKS = [
    ScoredChunk("c1", "d1", "kb/a.md", "流式输出让用户更早看到回答的开头。投机解码用小模型先猜后验。", 1.0),
    ScoredChunk("c2", "d2", "kb/b.md", "KV 缓存保存历史词元的键和值，避免重复计算。", 0.9),
]


class SlowEmbedding(MockEmbedding):
    """Blocks its caller like the local engine; a sentence mentioning KV is the closest to any question."""

    def _get_query_embedding(self, query: str) -> list[float]:
        time.sleep(DELAY_S)
        return [1.0, 0.0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        time.sleep(DELAY_S)
        return [[1.0 if "KV" in text else 0.0, 1.0] for text in texts]


def _answerer(max_sentences: int = 1) -> ExtractiveAnswerer:
    return ExtractiveAnswerer(SlowEmbedding(embed_dim=2), max_sentences=max_sentences)


async def _read(pieces: AsyncIterator[str]) -> list[str]:
    return [piece async for piece in pieces]


def test_the_answer_quotes_the_closest_sentence_in_short_pieces_and_counts_no_tokens() -> None:
    answerer, usage = _answerer(), TokenUsage()
    pieces = asyncio.run(_read(answerer.astream("什么是 KV 缓存？", CHUNKS, usage)))
    line = "KV 缓存保存历史词元的键和值，避免重复计算。 [2]\n"
    assert pieces == [EXTRACTIVE_NOTICE, *(line[i : i + 8] for i in range(0, len(line), 8))]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (0, 0, False)


def test_without_a_sentence_to_quote_it_says_so_in_one_piece() -> None:
    headings = [ScoredChunk("c1", "d1", "kb/a.md", "# 标题", 1.0)]
    assert asyncio.run(_read(_answerer().astream("什么是 KV 缓存？", headings))) == [NO_CONTEXT_ANSWER]


def test_a_follow_up_is_searched_with_the_previous_question_without_a_thread() -> None:
    history = [{"role": "user", "content": "什么是 KV 缓存？"}, {"role": "assistant", "content": "……"}]
    assert asyncio.run(_answerer().acondense("它占多少内存？", history)) == "什么是 KV 缓存？\n它占多少内存？"


def test_answers_on_one_loop_choose_their_sentences_at_once_and_never_stall_the_loop() -> None:
    """Two answers take about as long as one, the loop keeps turning meanwhile (heartbeats, other answers'
    tokens), and the loop's default executor (the answers' endings) is never used."""
    answerer = _answerer()

    async def run() -> tuple[list[list[str]], float, int, list[str]]:
        default = CountingThreads()
        asyncio.get_running_loop().set_default_executor(default)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.perf_counter()
        answers = await asyncio.gather(*(_read(answerer.astream("什么是 KV 缓存？", CHUNKS)) for _ in range(2)))
        took = time.perf_counter() - started
        ticker.cancel()
        return answers, took, ticks, default.sent

    answers, took, ticks, sent_to_default = asyncio.run(run())
    assert answers[0] == answers[1] and answers[0][0] == EXTRACTIVE_NOTICE
    one_answer_s = 2 * DELAY_S
    assert took < 1.6 * one_answer_s, f"two answers took {took:.2f} s: one after the other"
    assert ticks >= one_answer_s / 0.01 / 2, f"the loop turned {ticks} times in {took:.2f} s: it was blocked"
    assert sent_to_default == []


def test_closing_the_stream_after_its_first_piece_stops_it() -> None:
    """A cancel closes the answer's generator after the piece the stream refused."""

    async def first_then_close() -> str:
        pieces = _answerer().astream("什么是 KV 缓存？", CHUNKS)
        first = await anext(pieces)
        await pieces.aclose()  # type: ignore[attr-defined]
        return first

    assert asyncio.run(first_then_close()) == EXTRACTIVE_NOTICE


class CountingEmbedding(SlowEmbedding):
    """The slow model, counting the sentences it is asked to embed."""

    embedded: list[str] = []

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return super()._get_text_embeddings(texts)


def test_a_sentence_is_embedded_once_and_the_answer_is_the_same_the_next_time() -> None:
    model = CountingEmbedding(embed_dim=2)
    answerer = ExtractiveAnswerer(model, max_sentences=1)
    first = asyncio.run(_read(answerer.astream("什么是 KV 缓存？", CHUNKS)))
    sentences = sorted(model.embedded)
    assert len(sentences) == 3
    model.embedded.clear()
    again = asyncio.run(_read(answerer.astream("KV 缓存为什么快？", list(reversed(CHUNKS)))))
    assert model.embedded == []  # every candidate sentence was embedded for the first answer
    assert first[1:] != [] and "".join(again).replace("[1]", "[2]") == "".join(first)


def test_the_least_recently_used_sentences_are_dropped_past_the_limit() -> None:
    model = CountingEmbedding(embed_dim=2)
    answerer = ExtractiveAnswerer(model, max_sentences=1)
    answerer.sentence_vectors.limit = 2
    rows = answerer.sentence_vectors(["句子一号的内容", "句子二号的内容", "句子一号的内容"])
    assert rows.shape == (3, 2) and (rows[0] == rows[2]).all()
    answerer.sentence_vectors(["句子一号的内容"])  # used again: the second is now the least recently used
    answerer.sentence_vectors(["句子三号的内容"])
    model.embedded.clear()
    answerer.sentence_vectors(["句子一号的内容", "句子三号的内容", "句子二号的内容"])
    assert model.embedded == ["句子二号的内容"]
