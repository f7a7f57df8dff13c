"""An evaluation job's `result`: per retrieval mode, the metrics and every question's rank.

Written by workers/tasks/evaluation.py, returned in the job record (`GET /v1/jobs/{id}`), printed and compared by
`ragq eval` (docs/api.md, "Evaluation jobs").
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.evaluation.metrics import first_rank, hit_at, mean, ndcg_at, percentile, reciprocal_rank

# "hybrid+rerank": hybrid retrieval of RERANK_CANDIDATES chunks ordered by the configured reranker.
EvalMode = Literal["vector", "bm25", "hybrid", "hybrid+rerank"]
DEFAULT_K = 5
MAX_K = 50
# Cut-offs reported besides k itself, when k reaches them.
EXTRA_CUTOFFS = (1, 3)


class QuestionOutcome(BaseModel):
    """One case in one mode: where its first relevant chunk came, and how long retrieval took."""

    line: int  # the case's line in the uploaded set (1-based)
    question: str
    rank: int | None  # 1-based position of the first relevant chunk among the k retrieved; null: none
    ndcg: float
    ms: float


class ModeMetrics(BaseModel):
    mode: EvalMode
    k: int
    hit_at: dict[int, float]  # cut-off (1, 3 when k reaches them, and k) -> share of cases with a hit
    mrr: float  # MRR@k
    ndcg: float  # nDCG@k, binary relevance
    latency_ms_p50: float
    latency_ms_p95: float
    rerank_failures: int | None = Field(default=None, exclude_if=lambda v: v is None)  # hybrid+rerank only
    questions: list[QuestionOutcome]

    @classmethod
    def of(
        cls, mode: EvalMode, k: int, outcomes: list[QuestionOutcome], rerank_failures: int | None = None
    ) -> ModeMetrics:
        cutoffs = sorted({c for c in EXTRA_CUTOFFS if c < k} | {k})
        ms = [o.ms for o in outcomes]
        return cls(
            mode=mode,
            k=k,
            hit_at={c: round(mean([hit_at(o.rank, c) for o in outcomes]), 4) for c in cutoffs},
            mrr=round(mean([reciprocal_rank(o.rank, k) for o in outcomes]), 4),
            ndcg=round(mean([o.ndcg for o in outcomes]), 4),
            latency_ms_p50=round(percentile(ms, 50), 2),
            latency_ms_p95=round(percentile(ms, 95), 2),
            rerank_failures=rerank_failures,
            questions=outcomes,
        )


def outcome(line: int, question: str, relevant: list[bool], relevant_count: int, k: int, ms: float) -> QuestionOutcome:
    """A case's outcome from the relevance of its retrieved chunks, in order."""
    rank = first_rank(relevant[:k])
    return QuestionOutcome(
        line=line, question=question, rank=rank, ndcg=round(ndcg_at(relevant, k, relevant_count), 4), ms=round(ms, 2)
    )


class EvaluationResult(BaseModel):
    """A finished evaluation job's `result`."""

    collection: str
    k: int
    cases: int
    reranker: str | None = None  # the reranker "hybrid+rerank" used; null: none configured, no such mode
    modes: list[ModeMetrics]
