"""Query-time retrieval over one collection: vector, BM25 or both fused with RRF (issue 3).

One `Retriever` per process (a query worker holds it for all its threads). It keeps one BM25 index per
collection, tagged with the collection version it was built from, and rebuilds it when any writer has
changed the collection since; the vector half uses the store's own matrix cache.

Deliberate choices:
- Hybrid takes a deeper pool (`max(4 * top_k, 20)`) from each side before fusing: a chunk ranked 7th by
  both sides should beat one ranked 1st by one side only, and it can only if both lists reach rank 7.
- Scores are not comparable across modes: vector scores are cosine similarities, bm25 scores are BM25
  scores, hybrid scores are RRF scores (at most 2 / 61 ≈ 0.033 with two rankings and k = 60).
- A chunk deleted between the BM25 build and the fetch is dropped, so a result may hold fewer than
  `top_k` chunks while an index job is writing; the next query sees the new version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from shared.store.bm25 import BM25Index
from shared.store.collection_store import CollectionStore
from shared.store.fusion import reciprocal_rank_fusion
from shared.store.records import ScoredChunk

RetrievalMode = Literal["vector", "bm25", "hybrid"]
RETRIEVAL_MODES: tuple[RetrievalMode, ...] = get_args(RetrievalMode)
DEFAULT_MODE: RetrievalMode = "hybrid"
MIN_FUSION_POOL = 20


def fusion_pool(top_k: int) -> int:
    """How many candidates hybrid mode takes from each side before fusing."""
    return max(top_k * 4, MIN_FUSION_POOL)


@dataclass
class _CachedIndex:
    lock: threading.Lock = field(default_factory=threading.Lock)
    version: str | None = None
    index: BM25Index | None = None


class Retriever:
    """Retrieval for every collection a process serves; safe to share between threads."""

    def __init__(self) -> None:
        self._indexes: dict[Path, _CachedIndex] = {}
        self._lock = threading.Lock()

    def bm25_index(self, store: CollectionStore) -> BM25Index:
        """The collection's BM25 index, rebuilt only when the collection's version has changed."""
        with self._lock:
            entry = self._indexes.setdefault(store.path, _CachedIndex())
        # One lock per collection: a rebuild of one collection does not hold up queries on another,
        # and threads asking for the same stale index wait for one rebuild instead of each doing it.
        with entry.lock:
            if entry.index is None or entry.version != store.version():
                version, ids, texts = store.chunk_texts()
                entry.index, entry.version = BM25Index(ids, texts), version
            return entry.index

    def retrieve(
        self,
        store: CollectionStore,
        question: str,
        query_vector: np.ndarray | None,
        top_k: int,
        mode: RetrievalMode = DEFAULT_MODE,
    ) -> list[ScoredChunk]:
        """The `top_k` best chunks for `question`, best first.

        `score` depends on the mode: cosine similarity for "vector", the BM25 score for "bm25", the RRF
        score (sum of 1 / (60 + rank) over the vector and BM25 rankings) for "hybrid". `query_vector` may
        be None only in "bm25" mode.
        """
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}: use one of {', '.join(RETRIEVAL_MODES)}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if mode == "bm25":
            return self._by_ids(store, self.bm25_index(store).search(question, top_k))
        if query_vector is None:
            raise ValueError(f"mode {mode!r} needs a query vector")
        if mode == "vector":
            return store.search(query_vector, top_k)

        pool = fusion_pool(top_k)
        vector_ids = [c.chunk_id for c in store.search(query_vector, pool)]
        bm25_ids = [chunk_id for chunk_id, _ in self.bm25_index(store).search(question, pool)]
        return self._by_ids(store, reciprocal_rank_fusion([vector_ids, bm25_ids])[:top_k])

    @staticmethod
    def _by_ids(store: CollectionStore, ranked: list[tuple[str, float]]) -> list[ScoredChunk]:
        return store.chunks_by_ids([i for i, _ in ranked], [s for _, s in ranked]) if ranked else []
