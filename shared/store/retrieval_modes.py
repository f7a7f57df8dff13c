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
# RRF's k for hybrid mode. The paper's k = 60 suits fusing many deep runs; here two lists of `fusion_pool` chunks
# are fused and the first few are answered from. At k = 60 a chunk's first place on one side is worth 1.3 times a
# 20th place, so any chunk both sides hold somewhere outranks the first of either; at k = 10 it is worth 2.7
# times. Measured MRR@5 on both question sets of the study-notes corpus rose (docs/benchmarks.md, "Offline
# ranking, before and after"); k = 5 and 10 ranked alike, 20 and 60 lower.
HYBRID_RRF_K = 10


def fusion_pool(top_k: int) -> int:
    """How many candidates hybrid mode takes from each side before fusing.

    A chunk ranked 7th by both sides should beat one ranked 1st by one side only, and it can only if both
    lists reach rank 7.
    """
    return max(top_k * 4, MIN_FUSION_POOL)
