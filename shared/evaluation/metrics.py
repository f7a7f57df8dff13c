"""Ranking metrics over binary relevance: hit@k, reciprocal rank, nDCG@k, and latency percentiles.

Pure functions of ranks (1-based positions in the retrieved list), so they are tested on hand-made rankings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def first_rank(relevant: Sequence[bool]) -> int | None:
    """The 1-based position of the first relevant item, None when there is none."""
    return next((i for i, hit in enumerate(relevant, start=1) if hit), None)


def hit_at(rank: int | None, k: int) -> float:
    """1 when a relevant item is among the first `k`, else 0."""
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int) -> float:
    """1 / rank of the first relevant item within the first `k`, else 0 (the term MRR@k averages)."""
    return 1.0 / rank if rank is not None and rank <= k else 0.0


def ndcg_at(relevant: Sequence[bool], k: int, relevant_count: int) -> float:
    """nDCG@k with binary gains: DCG of the first `k` items over the DCG of `relevant_count` relevant items
    ranked first (at most `k` of them), capped at 1 (several chunks may match one relevant entry)."""
    dcg = sum(1.0 / math.log2(i + 1) for i, hit in enumerate(relevant[:k], start=1) if hit)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(relevant_count, k) + 1))
    return min(1.0, dcg / ideal) if ideal else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100), interpolated linearly between the two nearest values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
