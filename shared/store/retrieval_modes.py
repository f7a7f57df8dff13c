"""Retrieval modes a query may ask for, and how deep hybrid mode looks before fusing.

The search itself runs inside each engine (`CollectionStore.retrieve`): vector, keyword (BM25-style), or
both fused with reciprocal rank fusion.
"""

from __future__ import annotations

from typing import Literal, get_args

RetrievalMode = Literal["vector", "bm25", "hybrid"]
RETRIEVAL_MODES: tuple[RetrievalMode, ...] = get_args(RetrievalMode)
DEFAULT_MODE: RetrievalMode = "hybrid"
MIN_FUSION_POOL = 20
# Hybrid mode weighs the keyword ranking a little above the vector one (weighted RRF). On the study-notes
# corpus this lifted MRR@10 from 0.856 to 0.889 (docs/benchmarks.md): exact terms (TCP, Belady, 页表) decide
# more questions there than the small local embedding model does, and it breaks rank ties toward keywords.
KEYWORD_WEIGHT = 1.2
VECTOR_WEIGHT = 1.0


def fusion_pool(top_k: int) -> int:
    """How many candidates hybrid mode takes from each side before fusing.

    A chunk ranked 7th by both sides should beat one ranked 1st by one side only, and it can only if both
    lists reach rank 7.
    """
    return max(top_k * 4, MIN_FUSION_POOL)
