"""The reranking stage: the fused candidates ordered by a cross-encoder, the best `top_k` kept.

A reranker that fails or times out never fails the answer: the fused order stands and the outcome says why,
so the `done` event can tell the reader (shared/streams/events.py `RerankOutcome`).
"""

from __future__ import annotations

import logging
import time

from shared.providers.rerankers import HttpReranker
from shared.store import ScoredChunk
from shared.streams.events import RerankOutcome

log = logging.getLogger(__name__)


def rerank_chunks(
    reranker: HttpReranker, question: str, candidates: list[ScoredChunk], top_k: int
) -> tuple[list[ScoredChunk], list[float] | None, RerankOutcome]:
    """(the `top_k` chunks to answer from, their rerank scores or None, what the stage did)."""
    started = time.perf_counter()
    try:
        scores = reranker.scores(question, [c.text for c in candidates])
    except Exception as exc:  # any failure of the reranker leaves the fused order
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        log.warning("reranker %s failed, keeping the fused order: %s", reranker.name, exc)
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return candidates[:top_k], None, RerankOutcome(applied=False, reranker=reranker.name, ms=elapsed, error=reason)
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])[:top_k]
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    outcome = RerankOutcome(applied=True, reranker=reranker.name, ms=elapsed, candidates=len(candidates))
    return [candidates[i] for i in order], [scores[i] for i in order], outcome
