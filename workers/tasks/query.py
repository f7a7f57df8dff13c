"""The `query` queue's task: retrieve, emit `sources`, stream the answer, end with one terminal event."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from celery import Task

from shared.event_publisher import EventPublisher
from shared.events import ErrorCode, EventName
from shared.job_store import JobStore
from shared.jobs import JobError, JobState
from shared.providers.answerers import NO_CONTEXT_ANSWER
from shared.providers.upstream_errors import classify_upstream_error
from shared.store import EmbeddingMismatchError, ScoredChunk
from shared.tasks import QUERY_TASK
from workers.celery_app import app
from workers.runtime import Runtime, get_runtime

log = logging.getLogger(__name__)


def _source_payload(chunks: list[ScoredChunk]) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "document": c.source,
            "doc_id": c.doc_id,
            "chunk_id": c.chunk_id,
            "score": round(c.score, 4),
            "text": c.text,
        }
        for i, c in enumerate(chunks, start=1)
    ]


@app.task(name=QUERY_TASK, bind=True)
def answer_query(self: Task, job_id: str, collection: str, question: str, top_k: int) -> dict[str, Any]:
    """Publish `sources`, then every answer chunk the moment it exists, then `done` or `error`."""
    rt = get_runtime()
    job = JobStore(rt.redis, job_id, rt.settings.JOB_TTL_S)
    events = EventPublisher(rt.redis, job_id, rt.settings.REPLAY_TTL_S)
    previous = events.resume_from_buffer()
    if previous is not None:
        # A redelivery after a worker died mid-answer: the client already holds part of an answer that
        # cannot be continued, so end the stream honestly instead of starting a second answer.
        if not events.finished:
            message = "the worker generating this answer stopped before it finished; please ask again"
            events.publish(EventName.ERROR, {"code": ErrorCode.WORKER_LOST, "message": message})
            job.finish(JobState.FAILED, error=JobError(code=ErrorCode.WORKER_LOST, message=message))
        return {"state": "redelivered"}

    job.running("retrieving")
    started = time.perf_counter()
    try:
        return _answer(rt, job, events, collection, question, top_k, started)
    except Exception as exc:
        code, message = classify_upstream_error(exc)
        if code == ErrorCode.INTERNAL:
            log.exception("query job %s failed", job_id)
        if not events.finished:
            events.publish(EventName.ERROR, {"code": code, "message": message})
        job.finish(JobState.FAILED, error=JobError(code=code, message=message))
        return {"state": "failed", "code": code}


def _answer(
    rt: Runtime, job: JobStore, events: EventPublisher, collection: str, question: str, top_k: int, started: float
) -> dict[str, Any]:
    store = rt.store(collection)
    if not store.exists():
        raise LookupError(f"collection {collection!r} does not exist")
    store.check_embedding(rt.embed_model_name, store.info().dimension)
    query_vector = rt.embed_model.get_query_embedding(question)
    if len(query_vector) != store.info().dimension:
        raise EmbeddingMismatchError(
            f"query embedding has {len(query_vector)} dimensions, collection has {store.info().dimension}"
        )
    chunks = store.search(np.asarray(query_vector, dtype=np.float32), top_k)
    retrieved = time.perf_counter()
    events.publish(EventName.SOURCES, _source_payload(chunks))
    job.running("generating")

    tokens = 0
    first_token_at: float | None = None
    pieces = rt.answerer.stream(question, chunks) if chunks else iter([NO_CONTEXT_ANSWER])
    for piece in pieces:
        if first_token_at is None:
            first_token_at = time.perf_counter()
        events.publish(EventName.TOKEN, {"text": piece})
        tokens += 1
    finished = time.perf_counter()
    summary = {
        "tokens": tokens,
        "sources": len(chunks),
        "answerer": rt.answerer.name,
        "timings_ms": {
            "retrieval": round((retrieved - started) * 1000, 1),
            "first_token": round(((first_token_at or finished) - started) * 1000, 1),
            "total": round((finished - started) * 1000, 1),
        },
    }
    events.publish(EventName.DONE, summary)
    job.finish(JobState.SUCCEEDED, result=summary)
    return summary
