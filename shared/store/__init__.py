"""Collections of documents, chunks and their embeddings, in one of two engines (shared/store/base.py)."""

from shared.store.base import CollectionStore, Store, StoreUnavailableError
from shared.store.factory import open_store
from shared.store.records import (
    COLLECTION_NAME_RULE,
    ChunkRecord,
    CollectionInfo,
    DocumentInfo,
    DocumentWrite,
    EmbeddingMismatchError,
    ScoredChunk,
    valid_collection_name,
)

__all__ = [
    "COLLECTION_NAME_RULE",
    "ChunkRecord",
    "CollectionInfo",
    "CollectionStore",
    "DocumentInfo",
    "DocumentWrite",
    "EmbeddingMismatchError",
    "ScoredChunk",
    "Store",
    "StoreUnavailableError",
    "open_store",
    "valid_collection_name",
]
