"""An embedded vector store: one SQLite file per collection under DATA_DIR, shared by every process.

SQLite in WAL mode lets any number of worker processes read while one writes, with no server to run
(issue 2: "a per-collection store ... every worker process on the machine can read while another writes").
Vectors are float32 blobs; search is a brute-force dot product over a matrix cached per process and
reloaded when the collection's `version` changes. Chunks are keyed by a hash of their document and text,
so writing the same document twice leaves one copy of each chunk.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.store.records import (
    COLLECTION_NAME_RULE,
    ChunkRecord,
    CollectionInfo,
    DocumentInfo,
    EmbeddingMismatchError,
    ScoredChunk,
    valid_collection_name,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL,
    chunks INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, position INTEGER NOT NULL,
    text TEXT NOT NULL, embedding BLOB NOT NULL, location TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
"""


# A collection's version: its creation time plus a write counter, so a collection deleted and created again
# never repeats a version a reader has cached.
_VERSION_SQL = (
    "SELECT (SELECT value FROM meta WHERE key = 'created_at') || ':' || (SELECT value FROM meta WHERE key = 'version')"
)


@dataclass
class _Matrix:
    version: str
    ids: list[str]
    vectors: np.ndarray


class CollectionStore:
    """Read and write one collection's SQLite file."""

    def __init__(self, root: Path, name: str) -> None:
        if not valid_collection_name(name):
            raise ValueError(f"invalid collection name {name!r}: must match {COLLECTION_NAME_RULE}")
        self.name = name
        self.path = root / name / "store.sqlite3"
        self._cache: _Matrix | None = None
        self._lock = threading.Lock()

    def exists(self) -> bool:
        """True once `ensure` has created the collection (a bare file left by a crash does not count)."""
        if not self.path.exists():
            return False
        with self._connect() as conn:
            try:
                return conn.execute("SELECT 1 FROM meta WHERE key = 'embed_model'").fetchone() is not None
            except sqlite3.OperationalError:
                return False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            yield conn
        finally:
            conn.close()

    def _meta(self, conn: sqlite3.Connection) -> dict[str, str]:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def ensure(self, embed_model: str, dimension: int) -> None:
        """Create the collection for this embedding model, or check it was built with the same one."""
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            meta = self._meta(conn)
            if not meta:
                now = str(time.time())
                conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("embed_model", embed_model),
                        ("dimension", str(dimension)),
                        ("created_at", now),
                        ("updated_at", now),
                        ("version", "0"),
                    ],
                )
            conn.execute("COMMIT")
        self.check_embedding(embed_model, dimension)

    def check_embedding(self, embed_model: str, dimension: int) -> None:
        info = self.info()
        if (info.embed_model, info.dimension) != (embed_model, dimension):
            raise EmbeddingMismatchError(
                f"collection {self.name!r} was built with {info.embed_model} ({info.dimension}-d) but this "
                f"server embeds with {embed_model} ({dimension}-d); use another collection or re-index it"
            )

    def replace_document(
        self, doc_id: str, source: str, sha256: str, chunks: Sequence[ChunkRecord], vectors: np.ndarray
    ) -> None:
        """Make the stored chunks of `doc_id` exactly `chunks`, in one transaction (idempotent)."""
        ids = [c.id for c in chunks]
        blobs = np.ascontiguousarray(vectors, dtype=np.float32)
        now = time.time()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "DELETE FROM chunks WHERE doc_id = ? AND id NOT IN (SELECT value FROM json_each(?))",
                (doc_id, _json_list(ids)),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO chunks (id, doc_id, position, text, embedding, location) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(c.id, doc_id, c.position, c.text, blobs[i].tobytes(), c.location) for i, c in enumerate(chunks)],
            )
            conn.execute(
                "INSERT OR REPLACE INTO documents (id, source, sha256, chunks, updated_at) VALUES (?,?,?,?,?)",
                (doc_id, source, sha256, len(set(ids)), now),
            )
            self._bump(conn, now)
            conn.execute("COMMIT")

    def delete_document(self, doc_id: str) -> int | None:
        """Remove a document and all its chunks; how many chunks went, or None if there is no such document."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            removed = conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,)).rowcount
            found = conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
            if found or removed:
                self._bump(conn, time.time())
            conn.execute("COMMIT")
        return int(removed) if found else None

    def documents(self, limit: int = 1000, offset: int = 0) -> list[DocumentInfo]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, source, sha256, chunks, updated_at FROM documents ORDER BY source LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [DocumentInfo(id=r[0], source=r[1], sha256=r[2], chunks=r[3], updated_at=r[4]) for r in rows]

    def drop(self) -> None:
        """Delete the whole collection from disk."""
        shutil.rmtree(self.path.parent, ignore_errors=True)
        self._cache = None

    def document_sha256(self, doc_id: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute("SELECT sha256 FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _bump(conn: sqlite3.Connection, now: float) -> None:
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'updated_at'", (str(now),))

    def info(self) -> CollectionInfo:
        with self._connect() as conn:
            meta = self._meta(conn)
            docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return CollectionInfo(
            name=self.name,
            embed_model=meta["embed_model"],
            dimension=int(meta["dimension"]),
            documents=docs,
            chunks=chunks,
            created_at=float(meta["created_at"]),
            updated_at=float(meta["updated_at"]),
        )

    def _matrix(self) -> _Matrix:
        with self._lock, self._connect() as conn:
            version = conn.execute(_VERSION_SQL).fetchone()[0]
            if self._cache is None or self._cache.version != version:
                rows = conn.execute("SELECT id, embedding FROM chunks ORDER BY rowid").fetchall()
                dim = int(self._meta(conn)["dimension"])
                vectors = (
                    np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
                    if rows
                    else np.zeros((0, dim), dtype=np.float32)
                )
                self._cache = _Matrix(version=version, ids=[r[0] for r in rows], vectors=vectors)
            return self._cache

    def version(self) -> str:
        """Changes whenever any writer commits a change to the collection (used to invalidate caches)."""
        with self._connect() as conn:
            return str(conn.execute(_VERSION_SQL).fetchone()[0])

    def chunk_texts(self) -> tuple[str, list[str], list[str]]:
        """(version, chunk ids, chunk texts) of the whole collection, read in one transaction."""
        with self._connect() as conn:
            conn.execute("BEGIN")
            version = conn.execute(_VERSION_SQL).fetchone()[0]
            rows = conn.execute("SELECT id, text FROM chunks ORDER BY rowid").fetchall()
            conn.execute("COMMIT")
        return str(version), [r[0] for r in rows], [r[1] for r in rows]

    def chunks_by_ids(self, ids: Sequence[str], scores: Sequence[float]) -> list[ScoredChunk]:
        """The chunks with these ids, in the given order, carrying the given scores (missing ids dropped)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT c.id, c.doc_id, d.source, c.text, c.location FROM chunks c JOIN documents d ON d.id = c.doc_id "
                "WHERE c.id IN (SELECT value FROM json_each(?))",
                (_json_list(ids),),
            ).fetchall()
        by_id = {r[0]: r for r in rows}
        return [
            ScoredChunk(
                chunk_id=i,
                doc_id=by_id[i][1],
                source=by_id[i][2],
                text=by_id[i][3],
                score=float(score),
                location=by_id[i][4],
            )
            for i, score in zip(ids, scores, strict=True)
            if i in by_id
        ]

    def search(self, query_vector: np.ndarray, top_k: int) -> list[ScoredChunk]:
        """The `top_k` chunks by cosine similarity (vectors are stored L2-normalised)."""
        matrix = self._matrix()
        if not matrix.ids:
            return []
        q = np.asarray(query_vector, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        scores = matrix.vectors @ q
        k = min(top_k, len(matrix.ids))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return self.chunks_by_ids([matrix.ids[i] for i in best], [float(scores[i]) for i in best])


def _json_list(items: Sequence[str]) -> str:
    return json.dumps(list(items))
