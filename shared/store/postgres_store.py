"""The PostgreSQL engine: pgvector HNSW for vectors, a GIN-indexed tsvector for keywords, uploads as bytea.

A new collection's HNSW and GIN indexes are built after its first load (shared/store/postgres_indexes.py).

API and workers on any number of machines share nothing but Redis and this database. PostgreSQL's text
search does not segment Chinese, so chunks are cut with jieba in the application and stored as a tsvector
literal of those tokens with their positions (the `simple` approach without PostgreSQL's parser, which in a
C-locale database would drop CJK characters); questions become a tsquery literal of their tokens.

Deliberate choices:
- Values are always bound parameters; only identifiers (a collection's table, made from its numeric id)
  are composed, with psycopg's `sql.Identifier`.
- Hybrid retrieval is one statement: both candidate lists, their ranks and the weighted RRF fusion are CTEs.
  It follows one small read of the question terms' chunk counts (the `terms_<id>` table), which picks the
  terms to search and their idf (shared/store/keywords.py `plan_terms`).
- `ts_rank` has no idf, so the keyword score is, per searched term, its idf times `ts_rank` for that term
  alone (normalised by chunk length, flag 1), summed.
- `plan_cache_mode = force_custom_plan`: psycopg prepares repeated statements, and a generic plan could
  stop the planner from using the HNSW index for `ORDER BY embedding <=> $1 LIMIT $2`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg_pool import ConnectionPool

from shared.store.base import CollectionStore, Store, StoreUnavailableError
from shared.store.blobs import BlobNotFoundError, BlobStore, blob_path, write_atomically
from shared.store.keywords import plan_terms, query_terms, tokenize
from shared.store.postgres_indexes import BUILD_MEMORY_MB, build_search_indexes, search_indexes_usable
from shared.store.postgres_schema import SCHEMA, chunk_table, create_chunk_table, migrate, term_table
from shared.store.records import (
    COLLECTION_NAME_RULE,
    CollectionInfo,
    DocumentInfo,
    DocumentWrite,
    ScoredChunk,
    valid_collection_name,
)
from shared.store.retrieval_modes import HYBRID_RRF_K, KEYWORD_WEIGHT, VECTOR_WEIGHT, fusion_pool

# Keyword postings budget (keywords.plan_terms): each candidate row costs ~4-5 µs here (filter, then ts_rank
# per term) against ~1 µs per posting in FTS5, so PostgreSQL reads fewer to stay within its latency target.
POSTGRES_POSTINGS_BUDGET = 5_000
_SEARCH_PATH = sql.SQL("SET search_path TO {}, public").format(sql.Identifier(SCHEMA))


TSVECTOR_MAX_BYTES = 6000  # the tokens column is stored inline (postgres_schema), so it must fit a page


def tsvector_literal(tokens: Sequence[str]) -> str:
    """A tsvector in PostgreSQL's input syntax: each token quoted, with its positions (1-based, ≤ 16383).

    At most 16 positions a token: the keyword score's term frequency saturates long before. A chunk far
    longer than CHUNK_SIZE's default could still outgrow a page: it then keeps its tokens without positions,
    and past that only its first distinct tokens, so the row is never refused.
    """
    # Built with as little Python per token as it can: it runs for every stored chunk (docs/benchmarks.md).
    positions: dict[str, list[int]] = {}
    for i, token in enumerate(tokens, start=1):
        held = positions.get(token)
        if held is None:
            positions[token] = [i]
        elif len(held) < 16:
            held.append(i)
    if len(tokens) > 16383:
        for held in positions.values():
            held[:] = [min(i, 16383) for i in held]
    # Quoting doubles a token's quotes and backslashes; most chunks have neither, so check them all at once.
    escape = any("'" in token or "\\" in token for token in positions)
    items = [(_escape(t), p) for t, p in positions.items()] if escape else positions.items()
    literal = " ".join([f"'{t}':{p[0] if len(p) == 1 else ','.join(map(str, p))}" for t, p in items])
    if len(literal.encode()) - max(len(positions) - 1, 0) <= TSVECTOR_MAX_BYTES:  # the entries, without spaces
        return literal
    entries, size = [], 0
    for token in positions:
        entry = _quote(token)
        size += len(entry.encode()) + 1
        if size > TSVECTOR_MAX_BYTES:
            break
        entries.append(entry)
    return " ".join(entries)


def _quote(token: str) -> str:
    return "'" + _escape(token) + "'"


def _escape(token: str) -> str:
    return token.replace("\\", "\\\\").replace("'", "''")


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)
    conn.execute(_SEARCH_PATH)
    conn.execute("SET plan_cache_mode = force_custom_plan")
    conn.commit()


def check_database(url: str, timeout_s: float = 5.0) -> None:
    """Stop early with one clear line: the database answers, has pgvector, and carries the current schema."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
            if not available:
                raise StoreUnavailableError(
                    f"VECTOR_STORE_URL {redact(url)}: the server lacks the pgvector extension "
                    "(install it, e.g. postgresql-NN-pgvector, or use a server that has it)"
                )
            migrate(conn)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailableError(f"VECTOR_STORE_URL {redact(url)} does not answer: {reason}") from exc
    except psycopg.Error as exc:
        raise StoreUnavailableError(f"VECTOR_STORE_URL {redact(url)}: {type(exc).__name__}: {exc}") from exc


def redact(url: str) -> str:
    """The URL without its password, fit for a log line."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparsable URL)"
    host = info.get("host", "localhost")
    return f"postgresql://{info.get('user', '')}@{host}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class PostgresCollection(CollectionStore):
    """One collection's rows in PostgreSQL."""

    def __init__(self, store: PostgresStore, name: str) -> None:
        if not valid_collection_name(name):
            raise ValueError(f"invalid collection name {name!r}: must match {COLLECTION_NAME_RULE}")
        self.name = name
        self._pool = store.pool
        self._url = store.url
        self._ef_search = store.ef_search
        self._index_build_memory_mb = store.index_build_memory_mb
        self._postings_budget = store.postings_budget

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        with self._pool.connection() as conn:
            yield conn

    def _id(self, conn: psycopg.Connection) -> int | None:
        row = conn.execute("SELECT id FROM collections WHERE name = %s", (self.name,)).fetchone()
        return int(row[0]) if row else None

    def _require_id(self, conn: psycopg.Connection) -> int:
        collection_id = self._id(conn)
        if collection_id is None:
            raise LookupError(f"collection {self.name!r} does not exist")
        return collection_id

    def exists(self) -> bool:
        with self._conn() as conn:
            return self._id(conn) is not None

    def ensure(self, embed_model: str, dimension: int) -> None:
        with self._conn() as conn, conn.transaction():
            # Two index workers may create the same collection at once: one inserts, the other finds it.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"collection:{self.name}",))
            if self._id(conn) is None:
                now = time.time()
                row = conn.execute(
                    "INSERT INTO collections (name, embed_model, dimension, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (self.name, embed_model, dimension, now, now),
                ).fetchone()
                assert row is not None
                create_chunk_table(conn, int(row[0]), dimension)
        self.check_embedding(embed_model, dimension)

    def embedding(self) -> tuple[str, int]:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT embed_model, dimension FROM collections WHERE name = %s", (self.name,)
            ).fetchone()
        if row is None:
            raise LookupError(f"collection {self.name!r} does not exist")
        return str(row[0]), int(row[1])

    def info(self) -> CollectionInfo:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT id, embed_model, dimension, created_at, updated_at, "
                "(SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id), "
                "(SELECT COALESCE(SUM(chunks), 0) FROM documents d WHERE d.collection_id = c.id) "
                "FROM collections c WHERE name = %s",
                (self.name,),
            ).fetchone()
            if row is None:
                raise LookupError(f"collection {self.name!r} does not exist")
            built = search_indexes_usable(conn, int(row[0]))
        return CollectionInfo(
            name=self.name,
            embed_model=row[1],
            dimension=int(row[2]),
            documents=int(row[5]),
            chunks=int(row[6]),
            created_at=float(row[3]),
            updated_at=float(row[4]),
            search_indexes_built=built,
        )

    def replace_documents(self, documents: Sequence[DocumentWrite]) -> None:
        # A document listed twice ends as its last listing. Rows are written in doc_id and chunk id order, so two
        # transactions over the same documents (a redelivered batch beside its first delivery) lock them in one order.
        latest = {d.doc_id: d for d in sorted(documents, key=lambda d: d.doc_id)}
        if not latest:
            return
        tokens: dict[str, list[str]] = {}
        wanted = {doc_id: _chunk_rows(document, tokens) for doc_id, document in latest.items()}
        documents_rows = [(d.doc_id, d.source, d.sha256, len(wanted[d.doc_id])) for d in latest.values()]
        now = time.time()
        with self._conn() as conn, conn.transaction():
            collection_id = self._require_id(conn)
            table = chunk_table(collection_id)
            stored = conn.execute(
                sql.SQL("SELECT id, doc_id FROM {} WHERE doc_id = ANY(%s)").format(table), (list(latest),)
            ).fetchall()
            known = {chunk for chunk, doc_id in stored if chunk in wanted[doc_id]}
            gone = sorted(chunk for chunk, doc_id in stored if chunk not in wanted[doc_id])
            ordered = [row for doc_id in latest for _, row in sorted(wanted[doc_id].items())]
            new = [row for row in ordered if row[0] not in known]
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("UPDATE {} SET position = %s, location = %s WHERE id = %s AND doc_id = %s").format(table),
                    [(row[2], row[4], row[0], row[1]) for row in ordered if row[0] in known],
                )
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (id, doc_id, position, text, location, tokens, embedding) "
                        "VALUES (%s, %s, %s, %s, %s, %s::tsvector, %s)"
                    ).format(table),
                    new,
                )
                cur.executemany(
                    "INSERT INTO documents (collection_id, id, source, sha256, chunks, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (collection_id, id) DO UPDATE SET "
                    "source = EXCLUDED.source, sha256 = EXCLUDED.sha256, chunks = EXCLUDED.chunks, "
                    "updated_at = EXCLUDED.updated_at",
                    [(collection_id, *row, now) for row in documents_rows],
                )
            delta: Counter[str] = Counter()
            for row in new:
                delta.update(set(tokens[row[0]]))
            removed = self._remove_chunks(conn, collection_id, gone, delta)
            self._count(conn, collection_id, len(new) - removed, delta, now)

    @staticmethod
    def _remove_chunks(conn: psycopg.Connection, collection_id: int, ids: list[str], delta: Counter[str]) -> int:
        """Delete these chunks, subtracting their tokens from `delta`; how many went."""
        if not ids:
            return 0
        gone = conn.execute(
            sql.SQL(
                "WITH gone AS (DELETE FROM {} WHERE id = ANY(%s) RETURNING tokens) "
                "SELECT lexeme, COUNT(*) FROM gone, unnest(gone.tokens) GROUP BY lexeme"
            ).format(chunk_table(collection_id)),
            (ids,),
        ).fetchall()
        for lexeme, count in gone:
            delta[lexeme] -= int(count)
        return len(ids)

    @staticmethod
    def _count(conn: psycopg.Connection, collection_id: int, chunks: int, delta: Counter[str], now: float) -> None:
        """Apply a write's change to the chunk count and the term counts, as the last step of its transaction.

        The collection's row is locked first, so writers of one collection take the term rows one at a time
        and in the same (sorted) order: no deadlock, and each count stays exact.
        """
        conn.execute(
            "UPDATE collections SET chunk_count = chunk_count + %s, updated_at = %s WHERE id = %s",
            (chunks, now, collection_id),
        )
        changed = sorted((t, n) for t, n in delta.items() if n)
        if changed:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {0} AS t (term, df) SELECT * FROM unnest(%s::text[], %s::int[]) "
                    "ON CONFLICT (term) DO UPDATE SET df = t.df + EXCLUDED.df"
                ).format(term_table(collection_id)),
                ([t for t, _ in changed], [n for _, n in changed]),
            )

    def build_search_indexes(self) -> list[str]:
        with self._conn() as conn:
            collection_id = self._id(conn)
        if collection_id is None:
            return []
        return build_search_indexes(self._url, collection_id, self._index_build_memory_mb)

    def delete_document(self, doc_id: str) -> int | None:
        with self._conn() as conn, conn.transaction():
            collection_id = self._require_id(conn)
            ids = [
                r[0]
                for r in conn.execute(
                    sql.SQL("SELECT id FROM {} WHERE doc_id = %s ORDER BY id").format(chunk_table(collection_id)),
                    (doc_id,),
                )
            ]
            delta: Counter[str] = Counter()
            removed = self._remove_chunks(conn, collection_id, ids, delta)
            found = conn.execute(
                "DELETE FROM documents WHERE collection_id = %s AND id = %s", (collection_id, doc_id)
            ).rowcount
            if found or removed:
                self._count(conn, collection_id, -removed, delta, time.time())
        return removed if found else None

    def documents(self, limit: int = 1000, offset: int = 0) -> list[DocumentInfo]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT d.id, d.source, d.sha256, d.chunks, d.updated_at FROM documents d "
                "JOIN collections c ON c.id = d.collection_id WHERE c.name = %s "
                "ORDER BY d.source, d.id LIMIT %s OFFSET %s",
                (self.name, limit, offset),
            ).fetchall()
        return [DocumentInfo(id=r[0], source=r[1], sha256=r[2], chunks=r[3], updated_at=r[4]) for r in rows]

    def document_sha256s(self, doc_ids: Sequence[str]) -> dict[str, str]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT d.id, d.sha256 FROM documents d JOIN collections c ON c.id = d.collection_id "
                "WHERE c.name = %s AND d.id = ANY(%s)",
                (self.name, list(doc_ids)),
            ).fetchall()
        return {doc_id: sha256 for doc_id, sha256 in rows}

    def sha256s(self) -> set[str]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT DISTINCT d.sha256 FROM documents d JOIN collections c ON c.id = d.collection_id "
                "WHERE c.name = %s",
                (self.name,),
            ).fetchall()
        return {r[0] for r in rows}

    def drop(self) -> None:
        with self._conn() as conn, conn.transaction():
            collection_id = self._id(conn)
            if collection_id is None:
                return
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(chunk_table(collection_id)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(term_table(collection_id)))
            conn.execute("DELETE FROM collections WHERE id = %s", (collection_id,))

    def _search(self, mode: str, question: str, query_vector: np.ndarray | None, top_k: int) -> list[ScoredChunk]:
        with self._conn() as conn, conn.transaction():
            collection_id = self._id(conn)
            if collection_id is None:
                return []
            params: dict[str, Any] = {"cid": collection_id, "k": top_k}
            score: sql.Composable = sql.SQL("0")
            if mode != "vector":
                planned = self._plan(conn, collection_id, question)
                if not planned and mode == "bm25":
                    return []
                if not planned:  # no question term is in the collection: the vector side alone answers
                    mode = "vector"
                params["tsq"] = " | ".join(_quote(t) for t, _ in planned)
                for i, (term, idf) in enumerate(planned):
                    params.update({f"q{i}": _quote(term), f"w{i}": idf})
                score = _keyword_score(len(planned))
            if mode != "bm25":
                conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(self._ef_search)))
                params["q"] = _unit(query_vector) if query_vector is not None else None
            if mode == "hybrid":
                params.update(pool=fusion_pool(top_k), rrf=HYBRID_RRF_K, wv=VECTOR_WEIGHT, wk=KEYWORD_WEIGHT)
            statement = {"vector": _VECTOR_SQL, "bm25": _KEYWORD_SQL, "hybrid": _HYBRID_SQL}[mode]
            rows = conn.execute(statement.format(chunks=chunk_table(collection_id), score=score), params).fetchall()
        return [
            ScoredChunk(chunk_id=r[0], doc_id=r[1], source=r[2], text=r[3], location=r[4], score=float(r[5]))
            for r in rows
        ]

    def _plan(self, conn: psycopg.Connection, collection_id: int, question: str) -> list[tuple[str, float]]:
        """The question's terms worth searching, with their idf, from the collection's term counts."""
        terms = query_terms(question)
        if not terms:
            return []
        row = conn.execute("SELECT chunk_count FROM collections WHERE id = %s", (collection_id,)).fetchone()
        df: dict[str, int] = dict(
            conn.execute(
                sql.SQL("SELECT term, df FROM {} WHERE term = ANY(%s)").format(term_table(collection_id)), (terms,)
            ).fetchall()
        )
        return plan_terms(terms, df, int(row[0]) if row else 0, self._postings_budget)

    def vector_search(self, query_vector: np.ndarray, top_k: int) -> list[ScoredChunk]:
        return self._search("vector", "", query_vector, top_k)

    def keyword_search(self, question: str, top_k: int) -> list[ScoredChunk]:
        return self._search("bm25", question, None, top_k)

    def hybrid_search(self, question: str, query_vector: np.ndarray, top_k: int) -> list[ScoredChunk]:
        return self._search("hybrid", question, query_vector, top_k)


def _chunk_rows(document: DocumentWrite, tokens: dict[str, list[str]]) -> dict[str, tuple[Any, ...]]:
    """The document's rows by chunk id (id, doc_id, position, text, location, tsvector, vector), its chunks' tokens
    put in `tokens`; the same text twice in one document is one chunk, at its first position."""
    vectors = np.ascontiguousarray(document.vectors, dtype=np.float32)
    rows: dict[str, tuple[Any, ...]] = {}
    for i, c in enumerate(document.chunks):
        if c.id not in rows:
            tokens[c.id] = words = tokenize(c.text)
            rows[c.id] = (c.id, document.doc_id, c.position, c.text, c.location, tsvector_literal(words), vectors[i])
    return rows


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    return v / (np.linalg.norm(v) or 1.0)


_SELECT = "SELECT r.id, r.doc_id, d.source, r.text, r.location, r.score FROM ranked r "
_JOIN = "JOIN documents d ON d.collection_id = %(cid)s AND d.id = r.doc_id ORDER BY r.score DESC"
_VECTOR_SQL = sql.SQL(
    "WITH ranked AS (SELECT id, doc_id, text, location, 1 - (embedding <=> %(q)s) AS score "
    "FROM {chunks} ORDER BY embedding <=> %(q)s LIMIT %(k)s) " + _SELECT + _JOIN
)


def _keyword_score(terms: int) -> sql.Composed:
    """BM25-like keyword score: each planned term's idf times `ts_rank` for that term alone (a term frequency
    that saturates, normalised by the chunk's length), summed; written out per term, which costs half what
    a per-row subquery over arrays does."""
    return sql.SQL(" + ").join(
        sql.SQL("{} * ts_rank(c.tokens, CAST({} AS tsquery), 1)").format(
            sql.Placeholder(f"w{i}"), sql.Placeholder(f"q{i}")
        )
        for i in range(terms)
    )


_KEYWORD_SQL = sql.SQL(
    "WITH ranked AS (SELECT id, doc_id, text, location, {score} AS score "
    "FROM {chunks} c WHERE c.tokens @@ CAST(%(tsq)s AS tsquery) "
    "ORDER BY score DESC, id LIMIT %(k)s) " + _SELECT + _JOIN
)
_HYBRID_SQL = sql.SQL(
    "WITH vec AS (SELECT id, %(wv)s::float8 AS weight, row_number() OVER (ORDER BY dist, id) AS rank FROM "
    "  (SELECT id, embedding <=> %(q)s AS dist FROM {chunks} ORDER BY embedding <=> %(q)s LIMIT %(pool)s) v), "
    "kw AS (SELECT id, %(wk)s::float8 AS weight, row_number() OVER (ORDER BY score DESC, id) AS rank FROM "
    "  (SELECT id, {score} AS score FROM {chunks} c WHERE c.tokens @@ CAST(%(tsq)s AS tsquery) "
    "   ORDER BY score DESC, id LIMIT %(pool)s) k), "
    "fused AS (SELECT id, SUM(weight / (%(rrf)s + rank)) AS score, MIN(rank) AS best FROM "
    "  (SELECT * FROM vec UNION ALL SELECT * FROM kw) both_lists GROUP BY id "
    "  ORDER BY score DESC, best, id LIMIT %(k)s), "
    "ranked AS (SELECT c.id, c.doc_id, c.text, c.location, f.score FROM fused f JOIN {chunks} c USING (id)) "
    + _SELECT
    + _JOIN
)


class PostgresBlobStore(BlobStore):
    """Uploads in the `uploads` table; a worker caches each one under its own DATA_DIR/uploads on first use."""

    def __init__(self, pool: ConnectionPool, local_root: Path) -> None:
        super().__init__(local_root)
        self._pool = pool

    def put(self, key: str, path: Path) -> None:
        data = path.read_bytes()
        with self._pool.connection() as conn:
            conn.execute(
                # Content-addressed: the same key holds the same bytes; a new upload only renews its time, which
                # the upload collection's grace period counts from (Store.collect_uploads).
                "INSERT INTO uploads (key, bytes, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET created_at = now()",
                (key, len(data), data),
            )

    def keys_stored_before(self, when: float) -> list[str]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT key FROM uploads WHERE created_at < to_timestamp(%s) ORDER BY key", (when,)
            ).fetchall()
        return [r[0] for r in rows]

    def delete(self, key: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM uploads WHERE key = %s", (key,))
        self._delete_local(key)

    def local_path(self, key: str) -> Path:
        path = blob_path(self.local_root, key)
        if path.exists():  # content-addressed: a file with this name holds these bytes
            return path
        with self._pool.connection() as conn:
            row = conn.execute("SELECT data FROM uploads WHERE key = %s", (key,)).fetchone()
        if row is None:
            raise BlobNotFoundError(f"uploaded file {key} is not in the database")
        write_atomically(path, bytes(row[0]))
        return path


class PostgresStore(Store):
    """Every collection and upload in one PostgreSQL database with pgvector."""

    engine = "postgresql"

    def __init__(
        self,
        url: str,
        uploads_dir: Path,
        pool_size: int = 10,
        ef_search: int = 100,
        postings_budget: int = POSTGRES_POSTINGS_BUDGET,
        index_build_memory_mb: int = BUILD_MEMORY_MB,
    ) -> None:
        check_database(url)
        self.url = url
        self.ef_search = ef_search
        self.index_build_memory_mb = index_build_memory_mb
        self.postings_budget = postings_budget
        self.pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, configure=_configure, open=True, name="ragqueue-store"
        )
        self.blobs = PostgresBlobStore(self.pool, uploads_dir)
        self._collections: dict[str, PostgresCollection] = {}
        self._lock = threading.Lock()

    def collection(self, name: str) -> PostgresCollection:
        with self._lock:
            if name not in self._collections:
                self._collections[name] = PostgresCollection(self, name)
            return self._collections[name]

    def collection_names(self) -> list[str]:
        with self.pool.connection() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM collections ORDER BY name")]

    def close(self) -> None:
        self.pool.close()
