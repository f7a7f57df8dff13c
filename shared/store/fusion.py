"""Reciprocal rank fusion: merge rankings whose scores are not comparable (cosine vs BM25).

RRF (Cormack, Clarke and Büttcher, SIGIR 2009) scores an item `sum(1 / (k + rank))` over the rankings
that contain it, with ranks from 1. It uses only positions, so no score normalisation is needed; k = 60
is the paper's value and damps the weight of the very top ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """(id, weighted RRF score) over all rankings, best first; ties keep the order ids were first seen in."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    weights = [1.0] * len(rankings) if weights is None else weights
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        seen: set[str] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:  # a repeated id keeps its best rank; later repeats add nothing
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    # sorted() is stable, so equal scores stay in first-seen order.
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)
