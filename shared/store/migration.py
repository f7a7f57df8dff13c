"""Copy embedded collections into PostgreSQL with their vectors (no re-embedding), then check the counts.

Each document is one transaction on the target, and writes are content-keyed, so a copy that stops half way
can simply be run again. Readers are never blocked: SQLite in WAL mode lets queries read the source while it
is copied, and PostgreSQL's MVCC lets them read the target while it fills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.store.base import Store
from shared.store.blobs import blob_path
from shared.store.sqlite_store import SQLiteStore

PAGE = 500


@dataclass(frozen=True)
class CopyReport:
    collection: str
    documents: int
    chunks: int
    target_documents: int
    target_chunks: int

    @property
    def counts_match(self) -> bool:
        return (self.documents, self.chunks) == (self.target_documents, self.target_chunks)


def copy_collection(
    source: SQLiteStore, target: Store, name: str, on_chunks: Callable[[int], None] = lambda n: None
) -> CopyReport:
    """Copy one collection's documents, chunks and vectors; `on_chunks(n)` after each document."""
    src = source.collection(name)
    info = src.info()
    dst = target.collection(name)
    dst.ensure(info.embed_model, info.dimension)  # refuses a target collection built with another model
    offset = 0
    while page := src.documents(limit=PAGE, offset=offset):
        for doc in page:
            chunks, vectors = src.document_chunks(doc.id)
            if chunks:
                dst.replace_document(doc.id, doc.source, doc.sha256, chunks, vectors)
            on_chunks(len(chunks))
        offset += len(page)
    dst.build_search_indexes()  # deferred by a new PostgreSQL collection until its rows are in
    after = dst.info()
    return CopyReport(name, info.documents, info.chunks, after.documents, after.chunks)


def copy_uploads(uploads_dir: Path, target: Store) -> int:
    """Put every uploaded file into the target's blob store (so re-indexing works on any machine)."""
    copied = 0
    for path in sorted(uploads_dir.glob("??/*")):
        if path.is_file() and path == blob_path(uploads_dir, path.name):
            target.blobs.put(path.name, path)
            copied += 1
    return copied
