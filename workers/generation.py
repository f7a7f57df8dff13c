"""Stream an answer's text into its job's events, coalesced (shared/streams/coalescer.py), on the event loop.

Every answerer (shared/providers/answerers.py) is read on the worker process's event loop
(workers/loop_answers.py), where a timer also flushes a window whose text is waiting. A `StreamClosed` (cancel,
or the stream ended elsewhere) closes the upstream response, by closing the answer's generator, before it
propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from shared.providers.answerers import NO_CONTEXT_ANSWER
from shared.providers.upstream_errors import UpstreamStreamError
from shared.store import ScoredChunk
from shared.streams.coalescer import TokenCoalescer
from shared.streams.events import EventName, TokenPayload
from shared.streams.publisher import AsyncEventPublisher
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


def condense(rt: Runtime, question: str, history: list[dict[str, str]], usage: TokenUsage | None = None) -> str:
    """A follow-up in a conversation ("and its memory cost?") rewritten into a standalone question (from the
    task's thread)."""
    if not history:  # nothing to rewrite: no trip to the event loop, which may be busy with other answers
        return question
    return rt.loop.run(rt.answerer.acondense(question, history, usage))


async def generate(rt: Runtime, job_id: str, question: str, chunks: Sequence[ScoredChunk]) -> Generated:
    """Publish the answer as `token` events; returns how many pieces the answerer produced, when the first, and
    the tokens its upstream call used."""
    publisher = AsyncEventPublisher(rt.append_batcher, job_id, rt.settings.REPLAY_TTL_S)
    usage = TokenUsage()
    pieces = rt.answerer.astream(question, chunks, usage) if chunks else _one(NO_CONTEXT_ANSWER)
    generated = await stream_answer(pieces, publisher, rt.settings.TOKEN_COALESCE_MS / 1000)
    generated.usage = usage
    return generated


async def _one(text: str) -> AsyncIterator[str]:
    yield text


async def stream_answer(pieces: AsyncIterator[str], events: AsyncEventPublisher, window_s: float) -> Generated:
    """Read `pieces` to the end, publishing their text as coalesced `token` events."""
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
