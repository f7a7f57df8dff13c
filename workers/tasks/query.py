"""The `query` queue's task: retrieve, emit `sources`, stream the answer, end with one terminal event."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from celery import Task

from shared import keys
from shared.event_publisher import EventPublisher, StreamClosed
from shared.events import CANCELLED_MESSAGE, ErrorCode, EventName
from shared.heartbeat import Heartbeat
from shared.job_store import JobStore
from shared.jobs import JobError, JobState
from shared.metrics_store import record_answer
from shared.providers.answerers import NO_CONTEXT_ANSWER
from shared.providers.upstream_errors import UpstreamStreamError, classify_upstream_error
from shared.store import EmbeddingMismatchError, ScoredChunk
from shared.store.retrieval import DEFAULT_MODE, RetrievalMode
from shared.tasks import QUERY_TASK
from shared.token_coalescer import TokenCoalescer
from workers.celery_app import app
from workers.runtime import Runtime, get_runtime

log = logging.getLogger(__name__)

WORKER_LOST_MESSAGE = "the worker generating this answer stopped before it finished; please ask again"


def _source_payload(chunks: list[ScoredChunk]) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "document": c.source,
            "location": c.location,
            "doc_id": c.doc_id,
            "chunk_id": c.chunk_id,
            "score": round(c.score, 4),
            "text": c.text,
        }
        for i, c in enumerate(chunks, start=1)
    ]


@app.task(name=QUERY_TASK, bind=True)
def answer_query(
    self: Task,
    job_id: str,
    collection: str,
    question: str,
    top_k: int,
    history: list[dict[str, str]] | None = None,
    mode: RetrievalMode = DEFAULT_MODE,
) -> dict[str, Any]:
    """Publish `sources`, then every answer chunk the moment it exists, then `done` or `error`."""
    rt = get_runtime()
    settings = rt.settings
    job = JobStore(rt.redis, job_id, settings.JOB_TTL_S)
    events = EventPublisher(rt.redis, job_id, settings.REPLAY_TTL_S)
    if events.has_events():
        # Delivered again after a worker died mid-answer: part of an answer is already out and cannot be
        # continued, so end the stream honestly (if the watchdog has not already) instead of starting over.
        if events.end(EventName.ERROR, {"code": ErrorCode.WORKER_LOST, "message": WORKER_LOST_MESSAGE}):
            job.finish(JobState.FAILED, error=JobError(code=ErrorCode.WORKER_LOST, message=WORKER_LOST_MESSAGE))
        return {"state": "redelivered"}

    with Heartbeat(rt.redis, job_id, settings.HEARTBEAT_INTERVAL_S, settings.HEARTBEAT_TTL_S):
        job.running("retrieving")
        try:
            return _answer(rt, job, events, collection, question, top_k, history or [], mode)
        except StreamClosed as closed:
            return _closed(rt, job, events, job_id, closed)
        except Exception as exc:
            code, message = classify_upstream_error(exc)
            if code == ErrorCode.INTERNAL:
                log.exception("query job %s failed", job_id)
            events.end(EventName.ERROR, {"code": code, "message": message})
            job.finish(JobState.FAILED, error=JobError(code=code, message=message))
            return {"state": "failed", "code": code}


def _closed(rt: Runtime, job: JobStore, events: EventPublisher, job_id: str, closed: StreamClosed) -> dict[str, Any]:
    """The stream refused an event: the job was cancelled, or someone else (cancel, watchdog) ended it."""
    message = CANCELLED_MESSAGE.format(job_id=job_id)
    if closed.cancelled:
        events.end(EventName.ERROR, {"code": ErrorCode.CANCELLED, "message": message})
    if closed.cancelled or rt.redis.exists(keys.cancel_key(job_id)):
        job.finish(JobState.CANCELLED, error=JobError(code=ErrorCode.CANCELLED, message=message))
        return {"state": "cancelled"}
    return {"state": "stream ended elsewhere"}


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


def _answer(
    rt: Runtime,
    job: JobStore,
    events: EventPublisher,
    collection: str,
    question: str,
    top_k: int,
    history: list[dict[str, str]],
    mode: RetrievalMode,
) -> dict[str, Any]:
    started = time.perf_counter()
    # A follow-up in a conversation ("and its memory cost?") is rewritten into a standalone question first.
    question = rt.answerer.condense(question, history)
    store = rt.store(collection)
    if not store.exists():
        raise LookupError(f"collection {collection!r} does not exist")
    dimension = store.info().dimension
    store.check_embedding(rt.embed_model_name, dimension)
    query_vector = None
    if mode != "bm25":
        query_vector = np.asarray(rt.embed_model.get_query_embedding(question), dtype=np.float32)
        if len(query_vector) != dimension:
            raise EmbeddingMismatchError(
                f"query embedding has {len(query_vector)} dimensions, collection has {dimension}"
            )
    chunks = store.retrieve(question, query_vector, top_k, mode)
    retrieved = time.perf_counter()
    events.publish(EventName.SOURCES, _source_payload(chunks))
    job.running("generating")

    tokens = 0
    first_token_at: float | None = None
    pieces = rt.answerer.stream(question, chunks) if chunks else iter([NO_CONTEXT_ANSWER])
    # Pieces within one window go out as one event; a window's text waits at most for the next piece.
    coalescer = TokenCoalescer(rt.settings.TOKEN_COALESCE_MS / 1000)
    try:
        for piece in _upstream(pieces):
            tokens += 1
            now = time.perf_counter()
            if first_token_at is None:
                first_token_at = now
            if (text := coalescer.add(piece, now)) is not None:
                events.publish(EventName.TOKEN, {"text": text})
        if (text := coalescer.drain()) is not None:
            events.publish(EventName.TOKEN, {"text": text})
    except StreamClosed:
        # Cancelled or ended elsewhere: stop generating and close the upstream HTTP stream now.
        close = getattr(pieces, "close", None)
        if close:
            close()
        rt.answerer.abort()
        raise
    finished = time.perf_counter()
    summary = {
        "tokens": tokens,
        "sources": len(chunks),
        "answerer": rt.answerer.name,
        "question": question,
        "mode": mode,
        "timings_ms": {
            "retrieval": round((retrieved - started) * 1000, 1),
            "first_token": round(((first_token_at or finished) - started) * 1000, 1),
            "total": round((finished - started) * 1000, 1),
        },
    }
    events.publish(EventName.DONE, summary, honour_cancel=False)
    job.finish(JobState.SUCCEEDED, result=summary)
    record_answer(rt.redis, summary)  # time to first token, total time and tokens, for `/metrics`
    return summary
