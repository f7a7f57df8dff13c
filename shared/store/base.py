"""The store interface both engines implement: one deployment-wide `Store`, one `CollectionStore` each.

The API and workers only ever use these methods, so the embedded SQLite engine and the PostgreSQL engine
are interchangeable (chosen by VECTOR_STORE_URL) and one contract test suite runs against both.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import replace

import numpy as np

from shared.store.blobs import BlobStore, blob_sha256
from shared.store.fusion import reciprocal_rank_fusion
from shared.store.records import (
    ChunkRecord,
    CollectionInfo,
    DocumentInfo,
    DocumentWrite,
    EmbeddingMismatchError,
    ScoredChunk,
)
from shared.store.retrieval_modes import (
    DEFAULT_MODE,
    HYBRID_RRF_K,
    KEYWORD_WEIGHT,
    RETRIEVAL_MODES,
    VECTOR_WEIGHT,
    RetrievalMode,
    fusion_pool,
)


class StoreUnavailableError(RuntimeError):
    """The configured store cannot be used (PostgreSQL does not answer, lacks pgvector, ...)."""


class CollectionStore(ABC):
    """One collection: its documents, chunks, vectors and keyword index."""

    name: str

    @abstractmethod
    def exists(self) -> bool:
        """True once `ensure` has created the collection."""

    @abstractmethod
    def ensure(self, embed_model: str, dimension: int) -> None:
        """Create the collection for this embedding model, or check it was built with the same one."""

    @abstractmethod
    def info(self) -> CollectionInfo: ...

    @abstractmethod
    def replace_documents(self, documents: Sequence[DocumentWrite]) -> None:
        """Make the stored chunks of each document exactly its `chunks`, all in one transaction (idempotent,
        content-keyed). A document listed twice ends as its last listing, as if written one after the other."""

    def replace_document(
        self, doc_id: str, source: str, sha256: str, chunks: Sequence[ChunkRecord], vectors: np.ndarray
    ) -> None:
        """Make the stored chunks of `doc_id` exactly `chunks`, in one transaction (idempotent, content-keyed)."""
        self.replace_documents([DocumentWrite(doc_id, source, sha256, chunks, vectors)])

    @abstractmethod
    def build_search_indexes(self) -> list[str]:
        """Build the search indexes the collection lacks (a new collection's are deferred until its first load is
        in); the names built, empty when there was none to build. Idempotent; searches are correct either way."""

    @abstractmethod
    def delete_document(self, doc_id: str) -> int | None:
        """Remove a document and its chunks; how many chunks went, or None if there is no such document."""

    @abstractmethod
    def documents(self, limit: int = 1000, offset: int = 0) -> list[DocumentInfo]: ...

    @abstractmethod
    def document_sha256s(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each of these documents the collection holds (one query for a batch)."""

    @abstractmethod
    def sha256s(self) -> set[str]:
        """The content hashes of the collection's documents (an upload's blob key starts with its hash)."""

    @abstractmethod
    def drop(self) -> None:
        """Delete the whole collection."""

    @abstractmethod
    def vector_search(self, query_vector: np.ndarray, top_k: int) -> list[ScoredChunk]:
        """The `top_k` chunks by cosine similarity, best first (score: the cosine)."""

    @abstractmethod
    def keyword_search(self, question: str, top_k: int) -> list[ScoredChunk]:
        """The `top_k` chunks by keyword relevance, best first; chunks sharing no term are left out."""

    def hybrid_search(self, question: str, query_vector: np.ndarray, top_k: int) -> list[ScoredChunk]:
        """Both rankings fused with RRF (score: the RRF score). Engines may do this in one round trip."""
        pool = fusion_pool(top_k)
        vector = self.vector_search(query_vector, pool)
        keyword = self.keyword_search(question, pool)
        by_id = {c.chunk_id: c for c in (*vector, *keyword)}
        fused = reciprocal_rank_fusion(
            [[c.chunk_id for c in vector], [c.chunk_id for c in keyword]],
            k=HYBRID_RRF_K,
            weights=[VECTOR_WEIGHT, KEYWORD_WEIGHT],
        )
        return [replace(by_id[i], score=s) for i, s in fused[:top_k]]

    def embedding(self) -> tuple[str, int]:
        """(embedding model, dimension) the collection was built with; LookupError when it does not exist.

        A store overrides it with one read of its own: a question asks this before every search."""
        info = self.info()
        return info.embed_model, info.dimension

    def check_embedding(self, embed_model: str, dimension: int | None = None) -> int:
        """The collection's dimension, once it is known to be built with `embed_model` (and `dimension`, when given):
        EmbeddingMismatchError otherwise, LookupError when it does not exist."""
        built_with, built_dimension = self.embedding()
        if built_with != embed_model or dimension not in (None, built_dimension):
            raise EmbeddingMismatchError(
                f"collection {self.name!r} was built with {built_with} ({built_dimension}-d) but this "
                f"server embeds with {embed_model} ({dimension or built_dimension}-d); use another collection or "
                "re-index it"
            )
        return built_dimension

    def retrieve(
        self, question: str, query_vector: np.ndarray | None, top_k: int, mode: RetrievalMode = DEFAULT_MODE
    ) -> list[ScoredChunk]:
        """The `top_k` best chunks for `question` in `mode`; `query_vector` may be None only in "bm25" mode.

        Scores are not comparable across modes: cosine similarity for "vector", the engine's keyword score
        for "bm25", the weighted RRF score (sum of weight / (HYBRID_RRF_K + rank) over both rankings) for "hybrid".
        """
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}: use one of {', '.join(RETRIEVAL_MODES)}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if mode == "bm25":
            return self.keyword_search(question, top_k)
        if query_vector is None:
            raise ValueError(f"mode {mode!r} needs a query vector")
        if mode == "vector":
            return self.vector_search(query_vector, top_k)
        return self.hybrid_search(question, query_vector, top_k)


class Store(ABC):
    """A deployment's store: every collection, and the uploaded files index workers read."""

    engine: str
    blobs: BlobStore

    @abstractmethod
    def collection(self, name: str) -> CollectionStore:
        """The collection's store object (it may not exist yet: see `exists`)."""

    @abstractmethod
    def collection_names(self) -> list[str]:
        """Names of the collections that exist, sorted."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's connections."""

    def referenced_sha256s(self) -> set[str]:
        """The content hashes of every document of every collection."""
        found: set[str] = set()
        for name in self.collection_names():
            with contextlib.suppress(LookupError):  # dropped since it was listed
                found |= self.collection(name).sha256s()
        return found

    def collect_uploads(self, grace_s: float, among: Collection[str] | None = None) -> list[str]:
        """Delete the uploads no document refers to that were last uploaded over `grace_s` ago; their keys.

        The grace period keeps a file whose index job has not stored its document yet. `among` limits the
        sweep to those sha256s (a dropped collection's). Content-addressed: a blob another collection's
        document refers to stays.
        """
        candidates = self.blobs.keys_stored_before(time.time() - grace_s)
        if among is not None:
            candidates = [k for k in candidates if blob_sha256(k) in among]
        if not candidates:
            return []
        referenced = self.referenced_sha256s()
        collected = [k for k in candidates if blob_sha256(k) not in referenced]
        for key in collected:
            self.blobs.delete(key)
        return collected
