"""Per-collection storage of documents, chunks and their embeddings."""

from shared.store.collection_store import CollectionStore
from shared.store.records import (
    COLLECTION_NAME_RULE,
    ChunkRecord,
    CollectionInfo,
    DocumentInfo,
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
    "EmbeddingMismatchError",
    "ScoredChunk",
    "valid_collection_name",
]
