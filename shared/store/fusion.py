"""Reciprocal rank fusion: merge rankings whose scores are not comparable (cosine vs BM25).

RRF (Cormack, Clarke and Büttcher, SIGIR 2009) scores an item `sum(1 / (k + rank))` over the rankings
that contain it, with ranks from 1. It uses only positions, so no score normalisation is needed; k = 60
is the paper's value and damps the weight of the very top ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """(id, RRF score) over all rankings, best first; ties keep the order in which ids were first seen."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    scores: dict[str, float] = {}
    for ranking in rankings:
        seen: set[str] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:  # a repeated id keeps its best rank; later repeats add nothing
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    # sorted() is stable, so equal scores stay in first-seen order.
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)
