"""The records a collection store reads and writes, and the rules for names and chunk ids."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

COLLECTION_NAME_RULE = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME = re.compile(COLLECTION_NAME_RULE)


def valid_collection_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))  # fullmatch: `$` alone would accept a trailing newline


def chunk_id(doc_id: str, text: str) -> str:
    """Content key of a chunk: the same text in the same document is the same chunk."""
    return hashlib.sha256(f"{doc_id}\x00{text}".encode()).hexdigest()[:32]


class EmbeddingMismatchError(ValueError):
    """The collection was built with another embedding model or dimension."""


@dataclass(frozen=True)
class ChunkRecord:
    doc_id: str
    position: int
    text: str
    # Where in the document the chunk is: "p. 3" for a PDF page, "标题 › 小节" for a heading path; "" if unknown.
    location: str = ""

    @property
    def id(self) -> str:
        return chunk_id(self.doc_id, self.text)


@dataclass(frozen=True)
class DocumentWrite:
    """A document's new content for `CollectionStore.replace_documents`: its chunks and their vectors, row by row."""

    doc_id: str
    source: str
    sha256: str
    chunks: Sequence[ChunkRecord]
    vectors: np.ndarray


@dataclass(frozen=True)
class ScoredChunk:
    chunk_id: str
    doc_id: str
    source: str
    text: str
    score: float
    location: str = ""


@dataclass(frozen=True)
class DocumentInfo:
    id: str
    source: str
    sha256: str
    chunks: int
    updated_at: float


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    embed_model: str
    dimension: int
    documents: int
    chunks: int
    created_at: float
    updated_at: float
    # False between a PostgreSQL collection's first load and the end of its search index build (HNSW, GIN): searches
    # are exact scans meanwhile, the same answers, slower. The embedded store's are always there.
    search_indexes_built: bool = True
