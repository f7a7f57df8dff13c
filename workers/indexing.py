"""The index pipeline's steps: load a file, normalise, split into chunks, embed in batches."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter

from shared.ingest.items import IndexItem
from shared.ingest.text_normalize import normalize_text
from shared.store import ChunkRecord
from workers.loaders import LoadLimits, UnreadableDocument, load_sections
from workers.row_chunks import row_chunks


@dataclass(frozen=True)
class SplitDocument:
    doc_id: str
    source: str
    sha256: str
    chunks: list[ChunkRecord]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_and_split(item: IndexItem, splitter: SentenceSplitter, limits: LoadLimits | None = None) -> SplitDocument:
    """Read one file with the loader for its type, normalise each section and split it into located chunks.

    Sections are split one by one, so a chunk never straddles two pages or two headings and keeps one location;
    a sheet's rows are packed whole (workers/row_chunks.py).
    """
    path = Path(item.path)
    pieces: list[tuple[str, str]] = []
    for section in load_sections(path, limits):
        location = normalize_text(section.location)
        if section.rows:
            pieces.extend(row_chunks(section.rows, location, splitter))
            continue
        text = normalize_text(section.text)
        if text:
            pieces.extend((p, location) for p in splitter.split_text(text) if p.strip())
    if not pieces:
        raise UnreadableDocument("no extractable text: the file holds no text once read")
    chunks = [ChunkRecord(doc_id=item.doc_id, position=i, text=t, location=loc) for i, (t, loc) in enumerate(pieces)]
    return SplitDocument(doc_id=item.doc_id, source=item.name, sha256=file_sha256(path), chunks=chunks)


def embed_chunks(
    embed_model: BaseEmbedding, chunks: Sequence[ChunkRecord], batch_size: int, on_batch: Callable[[int], None]
) -> np.ndarray:
    """Embed chunk texts batch by batch, calling `on_batch(n)` after each so progress stays true."""
    rows: list[list[float]] = []
    for start in range(0, len(chunks), batch_size):
        batch = [c.text for c in chunks[start : start + batch_size]]
        rows.extend(embed_model.get_text_embedding_batch(batch))
        on_batch(len(batch))
    vectors = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)
