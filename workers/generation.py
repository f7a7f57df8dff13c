"""Stream an answer's text into its job's events, coalesced (shared/streams/coalescer.py).

Two paths, chosen by the answerer: a sync answerer (extractive) is read in the task's own thread, and a
window's text goes out with the next piece or at the end; an async answerer (zhipu, openai_compatible) runs on
the worker process's event loop (workers/loop_answers.py), where a timer also flushes a window whose text is
waiting. Either way a `StreamClosed` (cancel, or the stream ended elsewhere) closes the upstream response
before it propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

from typing_extensions import TypeIs

from shared.providers.answerers import NO_CONTEXT_ANSWER, Answerer, AsyncAnswerer
from shared.providers.upstream_errors import UpstreamStreamError
from shared.store import ScoredChunk
from shared.streams.coalescer import TokenCoalescer
from shared.streams.events import EventName, TokenPayload
from shared.streams.publisher import AsyncEventPublisher, EventPublisher, StreamClosed
from shared.usage import TokenUsage
from workers.runtime import Runtime


@dataclass
class Generated:
    pieces: int = 0
    first_piece_at: float | None = None  # time.perf_counter()
    usage: TokenUsage = field(default_factory=TokenUsage)  # the LLM call's tokens, filled when its stream ends

    def count(self, now: float) -> None:
        self.pieces += 1
        if self.first_piece_at is None:
            self.first_piece_at = now


def is_async(answerer: Answerer | AsyncAnswerer) -> TypeIs[AsyncAnswerer]:
    return hasattr(answerer, "astream")


def condense(rt: Runtime, question: str, history: list[dict[str, str]], usage: TokenUsage | None = None) -> str:
    """A follow-up in a conversation ("and its memory cost?") rewritten into a standalone question."""
    if not history:  # nothing to rewrite: no trip to the event loop, which may be busy with other answers
        return question
    answerer = rt.answerer
    if is_async(answerer):
        return rt.loop.run(answerer.acondense(question, history, usage))
    return answerer.condense(question, history, usage)


def generate(rt: Runtime, events: EventPublisher, question: str, chunks: Sequence[ScoredChunk]) -> Generated:
    """Publish the answer as `token` events; returns how many pieces the answerer produced, and when the first."""
    window_s = rt.settings.TOKEN_COALESCE_MS / 1000
    answerer = rt.answerer
    if not chunks or is_async(answerer):
        return _generate_sync(iter([NO_CONTEXT_ANSWER]), events, window_s, None)
    usage = TokenUsage()
    generated = _generate_sync(answerer.stream(question, chunks, usage), events, window_s, answerer)
    generated.usage = usage
    return generated


async def generate_async(
    rt: Runtime, events: EventPublisher, question: str, chunks: Sequence[ScoredChunk]
) -> Generated:
    """`generate` on the process's event loop, for an async answerer (zhipu, openai_compatible)."""
    publisher = AsyncEventPublisher(rt.append_batcher, events.job_id, events.replay_ttl_s)
    answerer = rt.answerer
    usage = TokenUsage()
    pieces = answerer.astream(question, chunks, usage) if chunks and is_async(answerer) else _one(NO_CONTEXT_ANSWER)
    generated = await _generate_async(pieces, publisher, rt.settings.TOKEN_COALESCE_MS / 1000)
    generated.usage = usage
    return generated


async def _one(text: str) -> AsyncIterator[str]:
    yield text


def _upstream(pieces: Iterator[str]) -> Iterator[str]:
    """The answer's pieces; a failure while producing the next one is the upstream's, whatever its type."""
    while True:
        try:
            piece = next(pieces)
        except StopIteration:
            return
        except Exception as exc:
            raise UpstreamStreamError(str(exc)) from exc
        yield piece


def _generate_sync(
    pieces: Iterator[str], events: EventPublisher, window_s: float, answerer: Answerer | None
) -> Generated:
    generated, coalescer = Generated(), TokenCoalescer(window_s)
    try:
        for piece in _upstream(pieces):
            now = time.perf_counter()
            generated.count(now)
            if (text := coalescer.add(piece, now)) is not None:
                events.publish(EventName.TOKEN, TokenPayload(text=text))
        if (text := coalescer.drain()) is not None:
            events.publish(EventName.TOKEN, TokenPayload(text=text))
    except StreamClosed:
        # Cancelled or ended elsewhere: stop generating and close the upstream HTTP stream now.
        close = getattr(pieces, "close", None)
        if close:
            close()
        if answerer is not None:
            answerer.abort()
        raise
    return generated


async def _generate_async(pieces: AsyncIterator[str], events: AsyncEventPublisher, window_s: float) -> Generated:
    generated, coalescer = Generated(), TokenCoalescer(window_s)
    reading: asyncio.Future[str | None] | None = None
    try:
        while True:
            deadline = coalescer.deadline()
            if deadline is None:
                # Nothing waiting: just read (finishing a read a timer flush interrupted, if there is one).
                piece_or_none: str | None = await (reading or _next(pieces))
                reading = None
            else:
                # Text is waiting for its window to close: read on, but flush when the window closes first.
                reading = reading or asyncio.ensure_future(_next(pieces))
                done, _ = await asyncio.wait({reading}, timeout=max(0.0, deadline - time.perf_counter()))
                if not done:
                    if (text := coalescer.due(time.perf_counter())) is not None:
                        await events.publish(EventName.TOKEN, TokenPayload(text=text))
                    continue
                piece_or_none, reading = reading.result(), None
            if piece_or_none is None:
                break
            now = time.perf_counter()
            generated.count(now)
            if (text := coalescer.add(piece_or_none, now)) is not None:
                await events.publish(EventName.TOKEN, TokenPayload(text=text))
        if (text := coalescer.drain()) is not None:
            await events.publish(EventName.TOKEN, TokenPayload(text=text))
    finally:
        # On cancel, an error or the end: stop reading and close the upstream response (the stream's `async with`).
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading
        await pieces.aclose()  # type: ignore[attr-defined]
    return generated


async def _next(pieces: AsyncIterator[str]) -> str | None:
    """The next piece, None at the end; a failure while reading is the upstream's, whatever its type."""
    try:
        return await anext(pieces)
    except StopAsyncIteration:
        return None
    except Exception as exc:
        raise UpstreamStreamError(str(exc)) from exc
