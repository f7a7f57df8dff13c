"""The embedded engine: one SQLite file per collection under DATA_DIR, nothing to run.

SQLite in WAL mode lets any number of processes on the machine read while one writes. Keyword search is an
FTS5 table over jieba tokens, ranked by FTS5's own `bm25()` and written in the same transaction as the chunk;
vectors are float32 blobs that each process reads incrementally (shared/store/vector_cache.py). A write is
visible to the next query and costs it only the rows written: nothing is ever rebuilt.

Deliberate choices:
- `chunks.seq` is an AUTOINCREMENT key, never reused, so "rows since seq N" is exact; removals are logged by
  a trigger in `removed`, which also deletes the chunk's FTS row, so no code path can forget either.
- A chunk's id is a hash of its document and text: writing a document again updates positions and locations
  in place and inserts only new texts, so an index batch delivered twice leaves one copy of each chunk.
- Files written by the first version (no FTS table, PRAGMA user_version 0) are upgraded in place on first
  open: the chunks are copied with their vectors and tokenised once.
- Reads use one open connection per thread, checked against the file with a `stat` on each use
  (shared/store/sqlite_readers.py); each write opens its own.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from shared.store.base import CollectionStore, Store
from shared.store.blobs import FileBlobStore
from shared.store.keywords import DEFAULT_POSTINGS_BUDGET, index_text, plan_terms, query_terms
from shared.store.records import (
    COLLECTION_NAME_RULE,
    ChunkRecord,
    CollectionInfo,
    DocumentInfo,
    DocumentWrite,
    ScoredChunk,
    valid_collection_name,
)
from shared.store.sqlite_readers import ThreadReaders
from shared.store.vector_cache import VectorCache

SCHEMA_VERSION = 3
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS documents (
        id TEXT PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL,
        chunks INTEGER NOT NULL, updated_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS chunks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL,
        position INTEGER NOT NULL, text TEXT NOT NULL, location TEXT NOT NULL DEFAULT '',
        embedding BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id)",
    "CREATE TABLE IF NOT EXISTS removed (seq INTEGER PRIMARY KEY AUTOINCREMENT, chunk_seq INTEGER NOT NULL)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(tokens, tokenize = 'unicode61 remove_diacritics 0')",
    # How many chunks hold each token, kept with every write, to plan a keyword search (keywords.plan_terms);
    # FTS5's own fts5vocab table would count by reading the whole posting list (7 ms for 的 at 100k chunks).
    "CREATE TABLE IF NOT EXISTS terms (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID",
    """CREATE TRIGGER IF NOT EXISTS chunks_removed AFTER DELETE ON chunks BEGIN
        INSERT INTO removed (chunk_seq) VALUES (old.seq);
        DELETE FROM chunks_fts WHERE rowid = old.seq;
    END""",
)
_CHUNK_COLUMNS = "c.seq, c.id, c.doc_id, d.source, c.text, c.location"


class SQLiteCollection(CollectionStore):
    """Read and write one collection's SQLite file."""

    def __init__(self, root: Path, name: str, postings_budget: int = DEFAULT_POSTINGS_BUDGET) -> None:
        if not valid_collection_name(name):
            raise ValueError(f"invalid collection name {name!r}: must match {COLLECTION_NAME_RULE}")
        self.name = name
        self.postings_budget = postings_budget
        self.path = root / name / "store.sqlite3"
        self._vectors: VectorCache | None = None
        self._lock = threading.Lock()
        self._readers = ThreadReaders(self.path, self._open)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Every connection, not once per object: another process may have dropped and re-created the file.
            _upgrade(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _connect(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        """A new connection to the collection's file, for a write; only `ensure` may create the file."""
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise LookupError(f"collection {self.name!r} does not exist")
        conn = self._open()
        try:
            yield conn
        finally:
            conn.close()

    def _read(self) -> sqlite3.Connection:
        """This thread's open connection to the collection's file, for reads (shared/store/sqlite_readers.py)."""
        try:
            return self._readers.get()
        except FileNotFoundError:
            raise LookupError(f"collection {self.name!r} does not exist") from None

    def exists(self) -> bool:
        try:
            return self._read().execute("SELECT 1 FROM meta WHERE key = 'embed_model'").fetchone() is not None
        except (LookupError, sqlite3.OperationalError):  # removed, or dropped while we looked
            return False

    def ensure(self, embed_model: str, dimension: int) -> None:
        with self._connect(create=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0:
                now = str(time.time())
                conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("embed_model", embed_model),
                        ("dimension", str(dimension)),
                        ("created_at", now),
                        ("updated_at", now),
                        ("chunk_count", "0"),
                    ],
                )
            conn.execute("COMMIT")
        self.check_embedding(embed_model, dimension)

    def embedding(self) -> tuple[str, int]:
        rows = self._read().execute("SELECT key, value FROM meta WHERE key IN ('embed_model', 'dimension')")
        meta = dict(rows.fetchall())
        if "embed_model" not in meta:  # being created, or dropped while we looked
            raise LookupError(f"collection {self.name!r} does not exist")
        return meta["embed_model"], int(meta["dimension"])

    def info(self) -> CollectionInfo:
        conn = self._read()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
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

    def replace_documents(self, documents: Sequence[DocumentWrite]) -> None:
        latest = {d.doc_id: d for d in documents}  # a document listed twice ends as its last listing
        if not latest:
            return
        # Tokenising is the slow part: do it before taking the write lock.
        wanted = {doc_id: _chunk_rows(d) for doc_id, d in latest.items()}
        now = time.time()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            stored = conn.execute(
                "SELECT seq, id, doc_id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(latest)),),
            ).fetchall()
            gone = [seq for seq, chunk, doc_id in stored if chunk not in wanted[doc_id]]
            known = {chunk for _, chunk, doc_id in stored if chunk in wanted[doc_id]}
            delta = _remove(conn, gone)
            rows = [row for by_id in wanted.values() for row in by_id.values()]
            new = [row for row in rows if row[0] not in known]
            conn.executemany(
                "UPDATE chunks SET position = ?, location = ? WHERE id = ?",
                [(row[2], row[4], row[0]) for row in rows if row[0] in known],
            )
            conn.executemany(
                "INSERT INTO chunks (id, doc_id, position, text, location, embedding) VALUES (?, ?, ?, ?, ?, ?)",
                [row[:6] for row in new],
            )
            # A chunk's FTS row shares its seq, which AUTOINCREMENT assigned just above.
            conn.executemany(
                "INSERT INTO chunks_fts (rowid, tokens) SELECT seq, ? FROM chunks WHERE id = ?",
                [(row[6], row[0]) for row in new],
            )
            for row in new:
                delta.update(set(row[6].split()))
            conn.executemany(
                "INSERT OR REPLACE INTO documents (id, source, sha256, chunks, updated_at) VALUES (?,?,?,?,?)",
                [(d.doc_id, d.source, d.sha256, len(wanted[d.doc_id]), now) for d in latest.values()],
            )
            _count(conn, len(new) - len(gone), delta, now)
            conn.execute("COMMIT")

    def build_search_indexes(self) -> list[str]:
        return []  # FTS5 and the vector cache are kept up to date by every write; exact search needs no index

    def delete_document(self, doc_id: str) -> int | None:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            seqs = [r[0] for r in conn.execute("SELECT seq FROM chunks WHERE doc_id = ?", (doc_id,))]
            delta = _remove(conn, seqs)
            found = conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
            if found or seqs:
                _count(conn, -len(seqs), delta, time.time())
            conn.execute("COMMIT")
        return len(seqs) if found else None

    def documents(self, limit: int = 1000, offset: int = 0) -> list[DocumentInfo]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, source, sha256, chunks, updated_at FROM documents ORDER BY source, id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [DocumentInfo(id=r[0], source=r[1], sha256=r[2], chunks=r[3], updated_at=r[4]) for r in rows]

    def document_sha256s(self, doc_ids: Sequence[str]) -> dict[str, str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, sha256 FROM documents WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(doc_ids),)
            ).fetchall()
        return {doc_id: sha256 for doc_id, sha256 in rows}

    def sha256s(self) -> set[str]:
        with self._connect() as conn:
            return {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM documents")}

    def document_chunks(self, doc_id: str) -> tuple[list[ChunkRecord], np.ndarray]:
        """A document's chunks in order, with their stored vectors (to copy them without embedding again)."""
        with self._connect() as conn:
            dimension = int(conn.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()[0])
            rows = conn.execute(
                "SELECT doc_id, position, text, location, embedding FROM chunks WHERE doc_id = ? "
                "ORDER BY position, seq",
                (doc_id,),
            ).fetchall()
        chunks = [ChunkRecord(doc_id=r[0], position=r[1], text=r[2], location=r[3]) for r in rows]
        vectors = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32).reshape(-1, dimension)
        return chunks, vectors

    def release_readers(self) -> None:
        self._readers.release()

    def drop(self) -> None:
        self.release_readers()  # other threads' connections notice the file is gone when they next read
        shutil.rmtree(self.path.parent, ignore_errors=True)
        with self._lock:
            self._vectors = None

    def _cache(self, conn: sqlite3.Connection) -> VectorCache:
        """This process's vectors of the collection; a fresh cache when the file was dropped and re-created."""
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('dimension', 'created_at')").fetchall())
        generation = meta.get("created_at", "")
        with self._lock:
            if self._vectors is None or self._vectors.generation != generation:
                self._vectors = VectorCache(int(meta.get("dimension", 0)), generation)
            return self._vectors

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection | None]:
        """One connection for a search, or None when the collection does not exist: a search on a missing
        collection finds nothing, and the existence check shares the search's connection."""
        try:
            conn = self._read()
        except LookupError:
            yield None
            return
        created = conn.execute("SELECT 1 FROM meta WHERE key = 'embed_model'").fetchone() is not None
        yield conn if created else None

    def vector_search(self, query_vector: np.ndarray, top_k: int) -> list[ScoredChunk]:
        with self._reader() as conn:
            if conn is None:
                return []
            ranked = self._cache(conn).search(conn, query_vector, top_k)
            return _fetch(conn, ranked)

    def keyword_search(self, question: str, top_k: int) -> list[ScoredChunk]:
        terms = query_terms(question)
        if not terms:
            return []
        with self._reader() as conn:
            if conn is None:
                return []
            marks = ",".join("?" * len(terms))
            df = dict(conn.execute(f"SELECT term, df FROM terms WHERE term IN ({marks})", terms).fetchall())
            n = int(conn.execute("SELECT value FROM meta WHERE key = 'chunk_count'").fetchone()[0])
            planned = plan_terms(terms, df, n, self.postings_budget)
            if not planned:
                return []
            match = " OR ".join('"' + t.replace('"', '""') + '"' for t, _ in planned)
            # bm25() is lower for better matches; ORDER BY rank lets FTS5 rank without sorting every match.
            ranked = conn.execute(
                "SELECT rowid, -rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
                (match, top_k),
            ).fetchall()
            return _fetch(conn, ranked)


_ChunkRow = tuple[str, str, int, str, str, bytes, str]


def _chunk_rows(document: DocumentWrite) -> dict[str, _ChunkRow]:
    """The document's rows by chunk id (id, doc_id, position, text, location, vector, tokens); the same text twice
    in one document is one chunk, at its first position."""
    blobs = np.ascontiguousarray(document.vectors, dtype=np.float32)
    rows: dict[str, _ChunkRow] = {}
    for i, c in enumerate(document.chunks):
        if c.id not in rows:
            rows[c.id] = (c.id, document.doc_id, c.position, c.text, c.location, blobs[i].tobytes(), index_text(c.text))
    return rows


def _remove(conn: sqlite3.Connection, seqs: list[int]) -> Counter[str]:
    """Delete these chunks (the trigger logs them and drops their FTS rows); minus one per token they held."""
    delta: Counter[str] = Counter()
    if not seqs:
        return delta
    marks = json.dumps(seqs)
    for (tokens,) in conn.execute(
        "SELECT tokens FROM chunks_fts WHERE rowid IN (SELECT value FROM json_each(?))", (marks,)
    ):
        delta.subtract(set(tokens.split()))
    conn.execute("DELETE FROM chunks WHERE seq IN (SELECT value FROM json_each(?))", (marks,))
    return delta


def _count(conn: sqlite3.Connection, chunks: int, delta: Counter[str], now: float) -> None:
    """Apply a write's change to the chunk count and the per-token chunk counts, inside its transaction."""
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'chunk_count'", (chunks,))
    conn.executemany(
        "INSERT INTO terms (term, df) VALUES (?, ?) ON CONFLICT (term) DO UPDATE SET df = df + excluded.df",
        [(t, n) for t, n in delta.items() if n],
    )
    conn.execute("DELETE FROM terms WHERE df <= 0")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'updated_at'", (str(now),))


def _fetch(conn: sqlite3.Connection, ranked: Sequence[tuple[int, float]]) -> list[ScoredChunk]:
    """The chunks with these seqs, in the given order and with the given scores (vanished ones dropped)."""
    if not ranked:
        return []
    rows = conn.execute(
        f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "WHERE c.seq IN (SELECT value FROM json_each(?))",
        (json.dumps([seq for seq, _ in ranked]),),
    ).fetchall()
    by_seq = {r[0]: r for r in rows}
    return [
        ScoredChunk(chunk_id=r[1], doc_id=r[2], source=r[3], text=r[4], location=r[5], score=float(score))
        for seq, score in ranked
        if (r := by_seq.get(seq))
    ]


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring the file to SCHEMA_VERSION: create it, or move a first-version file's chunks into the new tables."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    _enable_wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:  # another process did it
            conn.execute("COMMIT")
            return
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        legacy = "chunks" in tables and "chunks_fts" not in tables
        if legacy:
            conn.execute("ALTER TABLE chunks RENAME TO chunks_v1")
            conn.execute("DROP INDEX IF EXISTS chunks_doc")
        for statement in _SCHEMA:
            conn.execute(statement)
        if legacy:
            old = conn.execute("SELECT id, doc_id, position, text, embedding FROM chunks_v1 ORDER BY rowid")
            for row in old.fetchall():
                seq = conn.execute(
                    "INSERT INTO chunks (id, doc_id, position, text, embedding) VALUES (?, ?, ?, ?, ?)", row
                ).lastrowid
                conn.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)", (seq, index_text(row[3])))
            conn.execute("DROP TABLE chunks_v1")
            conn.execute("DELETE FROM meta WHERE key = 'version'")
        _recount(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _recount(conn: sqlite3.Connection) -> None:
    """Count chunks and per-token chunks from scratch: once, when a file from an earlier version is upgraded."""
    counts: Counter[str] = Counter()
    for (tokens,) in conn.execute("SELECT tokens FROM chunks_fts"):
        counts.update(set(tokens.split()))
    conn.execute("DELETE FROM terms")
    conn.executemany("INSERT INTO terms (term, df) VALUES (?, ?)", counts.items())
    if conn.execute("SELECT 1 FROM meta WHERE key = 'embed_model'").fetchone():
        chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('chunk_count', ?)", (str(chunks),))


def _enable_wal(conn: sqlite3.Connection, attempts: int = 300) -> None:
    """Switch the file to WAL (persistent), waiting out another process doing the same on a new file.

    Changing the journal mode needs an exclusive lock and SQLite does not always call the busy handler for
    it, so two workers creating one collection at once could see "database is locked" at once.
    """
    for _ in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.1)
    conn.execute("PRAGMA journal_mode=WAL")


class SQLiteStore(Store):
    """Every collection as a SQLite file under DATA_DIR/collections; uploads as files under DATA_DIR/uploads."""

    engine = "sqlite"

    def __init__(
        self, collections_dir: Path, uploads_dir: Path, postings_budget: int = DEFAULT_POSTINGS_BUDGET
    ) -> None:
        self.root = collections_dir
        self.postings_budget = postings_budget
        self.blobs = FileBlobStore(uploads_dir)
        self._collections: dict[str, SQLiteCollection] = {}
        self._lock = threading.Lock()

    def collection(self, name: str) -> SQLiteCollection:
        """One object per collection per process, so its vector cache is shared by every thread."""
        with self._lock:
            if name not in self._collections:
                self._collections[name] = SQLiteCollection(self.root, name, self.postings_budget)
            return self._collections[name]

    def close(self) -> None:
        """Close the calling thread's read connections; other threads' close with their thread or collection."""
        with self._lock:
            collections = list(self._collections.values())
        for collection in collections:
            collection.release_readers()

    def collection_names(self) -> list[str]:
        if not self.root.exists():
            return []
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and valid_collection_name(p.name))
        return [n for n in names if self.collection(n).exists()]
