"""The evaluation task: every case's question retrieved in every mode, scored against its relevant chunks.

On the index queue (shared/jobs/tasks.py `EvaluationTask`), so it never competes with answers. The questions are
embedded once, together, and the vector shared by the modes that need it: the latency reported is the store's
retrieval (and the reranker's, in "hybrid+rerank"), the same for every mode, question embedding excluded.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from celery import Task

from shared.evaluation.relevance import RelevanceRule
from shared.evaluation.result import EvalMode, EvaluationResult, ModeMetrics, QuestionOutcome, outcome
from shared.jobs.record_writer import JobRecordWriter
from shared.jobs.records import JobError, JobStage, JobState
from shared.jobs.tasks import EVALUATION_TASK, EvaluationTask
from shared.providers.query_embeddings import embed_queries
from shared.providers.upstream_errors import classify_embedding_error
from shared.store import CollectionStore, EmbeddingMismatchError, ScoredChunk
from shared.store.retrieval_modes import RETRIEVAL_MODES
from shared.streams.events import ErrorCode
from workers.celery_app import app
from workers.reranking import rerank_chunks
from workers.runtime import Runtime, get_runtime

log = logging.getLogger(__name__)
RERANK_MODE: EvalMode = "hybrid+rerank"


@app.task(name=EVALUATION_TASK, bind=True)
def evaluate_retrieval(self: Task, request: dict[str, Any]) -> dict[str, Any]:
    """Score the collection's retrieval on the job's cases; the result is the job's `result`."""
    task = EvaluationTask.model_validate(request)
    rt = get_runtime()
    job = JobRecordWriter(rt.redis, task.job_id, rt.settings.JOB_TTL_S)
    job.running(JobStage.EVALUATING)
    try:
        result = _evaluate(rt, task, job)
    except LookupError:
        message = f"collection {task.collection!r} does not exist (or was deleted since the job was accepted)"
        job.finish(JobState.FAILED, error=JobError(code="collection_not_found", message=message))
        return {"state": "failed"}
    except EmbeddingMismatchError as exc:
        job.finish(JobState.FAILED, error=JobError(code=ErrorCode.EMBEDDING_MISMATCH.value, message=str(exc)))
        return {"state": "failed"}
    except Exception as exc:  # the embedding service or the store failed: the job fails saying why
        log.exception("evaluation job %s failed", task.job_id)
        code, reason = classify_embedding_error(exc)
        job.finish(JobState.FAILED, error=JobError(code=code or "internal", message=reason))
        return {"state": "failed"}
    job.finish(JobState.SUCCEEDED, result=result)
    return {"state": "succeeded", "cases": len(task.cases)}


def _evaluate(rt: Runtime, task: EvaluationTask, job: JobRecordWriter) -> EvaluationResult:
    store = rt.store(task.collection)
    dimension = store.check_embedding(rt.embed_model_name)  # LookupError when the collection does not exist
    vectors = np.asarray(embed_queries(rt.embed_model, [case.question for case in task.cases]), dtype=np.float32)
    if vectors.shape[1] != dimension:
        raise EmbeddingMismatchError(f"query embeddings have {vectors.shape[1]} dimensions, collection has {dimension}")
    reranker = rt.reranker
    modes: list[EvalMode] = [*RETRIEVAL_MODES, *([RERANK_MODE] if reranker else [])]
    outcomes: dict[EvalMode, list[QuestionOutcome]] = {mode: [] for mode in modes}
    rerank_failures = 0
    total = len(task.cases)
    for done, (line, case, vector) in enumerate(zip(task.lines, task.cases, vectors, strict=True), start=1):
        rule = RelevanceRule(case.relevant)
        for mode in modes:
            started = time.perf_counter()
            if mode == RERANK_MODE and reranker is not None:
                candidates = store.retrieve(case.question, vector, max(task.k, rt.settings.RERANK_CANDIDATES), "hybrid")
                chunks, _, reranked = rerank_chunks(reranker, case.question, candidates, task.k)
                rerank_failures += 0 if reranked.applied or not candidates else 1
            else:
                chunks = _retrieve(store, case.question, vector, task.k, mode)
            ms = (time.perf_counter() - started) * 1000
            relevant = [rule.is_relevant(c.chunk_id, c.text, c.source) for c in chunks]
            outcomes[mode].append(outcome(line, case.question, relevant, len(case.relevant), task.k, ms))
        job.progress(done, total, JobStage.EVALUATING)
    return EvaluationResult(
        collection=task.collection,
        k=task.k,
        cases=total,
        reranker=reranker.name if reranker else None,
        modes=[
            ModeMetrics.of(mode, task.k, found, rerank_failures if mode == RERANK_MODE else None)
            for mode, found in outcomes.items()
        ],
    )


def _retrieve(store: CollectionStore, question: str, vector: np.ndarray, k: int, mode: EvalMode) -> list[ScoredChunk]:
    for retrieval_mode in RETRIEVAL_MODES:
        if mode == retrieval_mode:
            return store.retrieve(question, None if mode == "bm25" else vector, k, retrieval_mode)
    raise ValueError(f"{mode!r} is not a retrieval mode")
