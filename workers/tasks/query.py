"""The `query` queue's task: retrieve, emit `sources`, stream the answer, end with one terminal event."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from celery import Task

from shared.jobs.record_writer import JobRecordWriter
from shared.jobs.records import JobStage
from shared.jobs.tasks import QUERY_BATCH_TASK, QUERY_TASK, QueryBatchTask, QueryTask
from shared.ops.log_setup import logging_job
from shared.ops.metrics_store import record_answer
from shared.providers.query_embeddings import embed_queries
from shared.providers.upstream_errors import classify_upstream_error
from shared.store import EmbeddingMismatchError, ScoredChunk
from shared.store.retrieval_modes import RetrievalMode
from shared.streams.endings import QueryEnding, end_query
from shared.streams.events import AnswerTimings, DonePayload, ErrorCode, EventName, RerankOutcome, SourcePayload
from shared.streams.publisher import EventPublisher, StreamClosed
from shared.usage import TokenUsage
from workers.celery_app import app
from workers.generation import Generated, condense, generate
from workers.reranking import rerank_chunks
from workers.runtime import Runtime, get_runtime
from workers.usage import record_query_usage

log = logging.getLogger(__name__)

WORKER_LOST_MESSAGE = "the worker generating this answer stopped before it finished; please ask again"


def _source_payload(chunks: list[ScoredChunk], rerank_scores: list[float] | None = None) -> list[SourcePayload]:
    return [
        SourcePayload(
            index=i,
            document=c.source,
            location=c.location,
            doc_id=c.doc_id,
            chunk_id=c.chunk_id,
            score=round(c.score, 4),
            text=c.text,
            rerank_score=None if rerank_scores is None else round(rerank_scores[i - 1], 4),
        )
        for i, c in enumerate(chunks, start=1)
    ]


def _end(rt: Runtime, job_id: str, ending: QueryEnding) -> bool:
    return end_query(rt.redis, job_id, ending, rt.settings.REPLAY_TTL_S, rt.settings.JOB_TTL_S)


@app.task(name=QUERY_TASK, bind=True)
def answer_query(self: Task, request: dict[str, Any]) -> dict[str, Any]:
    """Publish `sources`, then every answer chunk the moment it exists, then `done` or `error`."""
    return _answer(get_runtime(), QueryTask.model_validate(request))


@app.task(name=QUERY_BATCH_TASK, bind=True)
def answer_queries(self: Task, request: dict[str, Any]) -> dict[str, Any]:
    """The questions an API process sent together (api/query_dispatch.py), each answered as if it came alone."""
    asks = QueryBatchTask.model_validate(request).requests
    rt = get_runtime()
    # Each retrieves here in turn and hands its generation to the event loop, where the batch's answers stream
    # together; the questions are embedded together first, in one request where the model allows it.
    vectors = _query_vectors(rt, asks)
    states = [_state_of(rt, ask, vectors.get(ask.job_id)) for ask in asks]
    return {"answers": len(asks), "states": dict(Counter(states))}


def _state_of(rt: Runtime, ask: QueryTask, query_vector: list[float] | None) -> str:
    try:
        return str(_answer(rt, ask, query_vector)["state"])
    except Exception:  # `_answer` ends the job itself on any failure it expects; this one must not stop the rest
        log.exception("query job %s: answering it in a batch failed", ask.job_id)
        return "failed"


def _query_vectors(rt: Runtime, asks: list[QueryTask]) -> dict[str, list[float]]:
    """Embeddings of the questions that need no rewriting; {} when that fails (each then embeds its own, and
    fails on its own with an error that says why)."""
    plain = [ask for ask in asks if ask.mode != "bm25" and not ask.history]
    if len(plain) < 2:
        return {}
    try:
        vectors = embed_queries(rt.embed_model, [ask.question for ask in plain])
    except Exception:
        log.warning("embedding %d questions together failed; each is embedded on its own", len(plain), exc_info=True)
        return {}
    return {ask.job_id: vector for ask, vector in zip(plain, vectors, strict=True)}


def _answer(rt: Runtime, task: QueryTask, query_vector: list[float] | None = None) -> dict[str, Any]:
    # A batch's task logs under the batch's id (workers/log_signals.py); each of its questions under its own job's,
    # in the task's thread and on the event loop (its coroutine copies this context).
    with logging_job(task.job_id):
        return _answer_job(rt, task, query_vector)


def _answer_job(rt: Runtime, task: QueryTask, query_vector: list[float] | None) -> dict[str, Any]:
    job_id = task.job_id
    settings = rt.settings
    job = JobRecordWriter(rt.redis, job_id, settings.JOB_TTL_S)
    events = EventPublisher(rt.redis, job_id, settings.REPLAY_TTL_S)
    if events.has_events():
        # Delivered again after a worker died mid-answer: part of an answer is already out and cannot be
        # continued, so end the stream honestly (if the watchdog has not already) instead of starting over.
        _end(rt, job_id, QueryEnding.failed(ErrorCode.WORKER_LOST, WORKER_LOST_MESSAGE))
        return {"state": "redelivered"}

    # Retrieve here, in the task's thread (embedding and search are CPU work, kept off the loop); generate on the
    # process's event loop, which streams every answer of the process.
    rt.answers.begin(job_id)  # waits while the loop holds LOOP_MAX_ANSWERS; starts the heartbeat
    try:
        job.running(JobStage.RETRIEVING)
        prepared = _prepare(rt, job, events, task, query_vector)
    except Exception as exc:
        rt.answers.end(job_id)
        return _ended(rt, job_id, exc)
    rt.answers.hand_off(job_id, _generate_on_loop(rt, job_id, prepared))
    return {"state": "generating on the event loop"}


async def _generate_on_loop(rt: Runtime, job_id: str, prepared: Prepared) -> None:
    """The answer's stream on the loop; its ending (a Redis script call) in the loop's executor, off the loop."""
    loop = asyncio.get_running_loop()
    try:
        generated = await generate(rt, job_id, prepared.question, prepared.chunks)
    except Exception as exc:
        await loop.run_in_executor(None, _ended, rt, job_id, exc)
        return
    await loop.run_in_executor(None, _succeed, rt, job_id, prepared, generated)


def _ended(rt: Runtime, job_id: str, exc: Exception) -> dict[str, Any]:
    """End the stream and the job after a failure, or after the stream refused an event."""
    if isinstance(exc, StreamClosed):
        # Cancelled: end it here (the cancel route may race us; one ending wins). Otherwise someone else ended it.
        if not exc.cancelled:
            return {"state": "stream ended elsewhere"}
        _end(rt, job_id, QueryEnding.cancelled(job_id))
        return {"state": "cancelled"}
    code, message = classify_upstream_error(exc)
    if code == ErrorCode.INTERNAL:
        log.error("query job %s failed", job_id, exc_info=exc)
    _end(rt, job_id, QueryEnding.failed(code, message))
    return {"state": "failed", "code": code}


@dataclass(frozen=True)
class Prepared:
    """A question ready to answer: condensed, its chunks retrieved and published as `sources`."""

    question: str
    chunks: list[ScoredChunk]
    mode: RetrievalMode
    started: float
    retrieved: float
    rerank: RerankOutcome | None = None
    owner: str = ""  # the key whose usage the answer counts for
    condense_usage: TokenUsage = field(default_factory=TokenUsage)  # a follow-up's rewrite: an LLM call too


def _prepare(
    rt: Runtime, job: JobRecordWriter, events: EventPublisher, ask: QueryTask, query_vector: list[float] | None = None
) -> Prepared:
    """Condense, check the collection, retrieve (embedding the question unless `query_vector` is its embedding)."""
    started = time.perf_counter()
    # A follow-up in a conversation ("and its memory cost?") is rewritten into a standalone question first.
    condensed = TokenUsage()
    question = condense(rt, ask.question, [turn.model_dump() for turn in ask.history], condensed)
    store = rt.store(ask.collection)
    dimension = store.check_embedding(rt.embed_model_name)  # LookupError when the collection does not exist
    vector = None
    if ask.mode != "bm25":
        embedding = query_vector if query_vector is not None else rt.embed_model.get_query_embedding(question)
        vector = np.asarray(embedding, dtype=np.float32)
        if len(vector) != dimension:
            raise EmbeddingMismatchError(f"query embedding has {len(vector)} dimensions, collection has {dimension}")
    reranker = rt.reranker if ask.rerank else None
    candidates = max(ask.top_k, rt.settings.RERANK_CANDIDATES) if reranker else ask.top_k
    chunks = store.retrieve(question, vector, candidates, ask.mode)
    scores, outcome = None, None
    if reranker is not None and chunks:
        chunks, scores, outcome = rerank_chunks(reranker, question, chunks, ask.top_k)
    retrieved = time.perf_counter()
    events.publish(EventName.SOURCES, _source_payload(chunks, scores))
    job.running(JobStage.GENERATING)
    return Prepared(question, chunks, ask.mode, started, retrieved, outcome, ask.owner, condensed)


def _succeed(rt: Runtime, job_id: str, prepared: Prepared, generated: Generated) -> dict[str, Any]:
    finished = time.perf_counter()
    started = prepared.started
    summary = DonePayload(
        tokens=generated.pieces,
        sources=len(prepared.chunks),
        answerer=rt.answerer.name,
        question=prepared.question,
        mode=prepared.mode,
        timings_ms=AnswerTimings(
            retrieval=round((prepared.retrieved - started) * 1000, 1),
            first_token=round(((generated.first_piece_at or finished) - started) * 1000, 1),
            total=round((finished - started) * 1000, 1),
            rerank=prepared.rerank.ms if prepared.rerank else None,
        ),
        rerank=prepared.rerank,
    )
    _end(rt, job_id, QueryEnding.succeeded(summary))
    record_answer(rt.redis, summary)  # time to first token, total time and tokens, for `/metrics`
    usage = generated.usage.plus(prepared.condense_usage)
    record_query_usage(rt.redis, prepared.owner, usage, embedded_texts=0 if prepared.mode == "bm25" else 1)
    return {"state": "succeeded", **summary.model_dump()}
