"""The PostgreSQL engine's schema, owned by the project: numbered migrations applied once, in order.

Every table lives in the `ragqueue` schema, so the engine can share a database with other applications.
Each collection's chunks get a table of their own (`chunks_<collection id>`): the vector column needs a fixed
dimension for its HNSW index, collections may be built with models of different dimensions, and dropping a
collection is then one DROP TABLE. Migrations run under an advisory lock, so API and workers starting
together apply each one exactly once.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

SCHEMA = "ragqueue"
# Every write of a collection adds its chunks' tokens to the term counts (one upsert of a few thousand rows per
# index batch). With full pages each update writes a new row version elsewhere and a new index entry; with room
# left in the page it is a heap-only update. Measured on a 6,000-chunk first load, three runs each, alternating:
# 0.45-0.49 ms of server CPU a chunk with full pages, 0.33-0.41 with 70 (docs/benchmarks.md). Migration 2 sets
# the same on older tables.
TERM_FILLFACTOR = 70
_LOCK_ID = 0x72_61_67_71  # "ragq": serialises migrations across processes

# (version, what it does, statements). Append only: never edit a migration that has shipped.
MIGRATIONS: list[tuple[int, str, tuple[str, ...]]] = [
    (
        1,
        "collections, documents and uploads",
        (
            """CREATE TABLE collections (
                id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, embed_model text NOT NULL,
                dimension integer NOT NULL, created_at double precision NOT NULL,
                updated_at double precision NOT NULL, chunk_count bigint NOT NULL DEFAULT 0)""",
            """CREATE TABLE documents (
                collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
                id text NOT NULL, source text NOT NULL, sha256 text NOT NULL, chunks integer NOT NULL,
                updated_at double precision NOT NULL, PRIMARY KEY (collection_id, id))""",
            "CREATE INDEX documents_by_source ON documents (collection_id, source, id)",
            """CREATE TABLE uploads (
                key text PRIMARY KEY, bytes bigint NOT NULL, data bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now())""",
        ),
    ),
    (
        2,
        "term tables keep free space in their pages (see TERM_FILLFACTOR)",
        (
            """DO $$
            DECLARE c record;
            BEGIN
                FOR c IN SELECT id FROM collections LOOP
                    EXECUTE format('ALTER TABLE IF EXISTS %I.%I SET (fillfactor = 70)', 'ragqueue', 'terms_' || c.id);
                END LOOP;
            END $$""",
        ),
    ),
]
LATEST = MIGRATIONS[-1][0]


def chunk_table(collection_id: int) -> sql.Identifier:
    return sql.Identifier(SCHEMA, f"chunks_{collection_id}")


def term_table(collection_id: int) -> sql.Identifier:
    """How many of the collection's chunks hold each keyword token (BM25's document frequency)."""
    return sql.Identifier(SCHEMA, f"terms_{collection_id}")


def create_chunk_table(conn: psycopg.Connection, collection_id: int, dimension: int) -> None:
    """A collection's chunk table, indexed by document only, and its term table.

    The search indexes (`search_indexes`) come after the first load (shared/store/postgres_indexes.py): rows
    inserted into a table that already has them cost 1.6x as much as loading, then building both
    (docs/benchmarks.md)."""
    table = chunk_table(collection_id)
    name = f"chunks_{collection_id}"
    statements = [
        sql.SQL(
            "CREATE TABLE {} (id text PRIMARY KEY, doc_id text NOT NULL, position integer NOT NULL, "
            "text text NOT NULL, location text NOT NULL DEFAULT '', tokens tsvector NOT NULL, "
            "embedding vector({}) NOT NULL)"
        ).format(table, sql.Literal(dimension)),
        # Tokens stay inline and uncompressed: the keyword search reads them for every candidate row, and a
        # TOASTed tsvector is fetched and decompressed again by each ts_rank call. The text is read only for the
        # rows returned, so it goes out of line and keeps rows small. Measured on 10k chunks, one 3-term keyword
        # query: 165 ms with the defaults, 72 ms with MAIN storage, 47 ms so. tsvector_literal keeps a chunk's
        # tokens within a page.
        sql.SQL("ALTER TABLE {} ALTER COLUMN tokens SET STORAGE PLAIN, ALTER COLUMN text SET STORAGE EXTERNAL").format(
            table
        ),
        sql.SQL("CREATE INDEX {} ON {} (doc_id)").format(sql.Identifier(f"{name}_doc"), table),
        sql.SQL("CREATE TABLE {} (term text PRIMARY KEY, df integer NOT NULL) WITH (fillfactor = {})").format(
            term_table(collection_id), sql.Literal(TERM_FILLFACTOR)
        ),
    ]
    for statement in statements:
        conn.execute(statement)


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply the migrations this database lacks; the versions applied now (empty when it was current)."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(SCHEMA)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, name text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(SCHEMA, "schema_migrations"))
        )
        done = {
            r[0]
            for r in conn.execute(sql.SQL("SELECT version FROM {}").format(sql.Identifier(SCHEMA, "schema_migrations")))
        }
        for version, name, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                conn.execute(statement)  # type: ignore[call-overload]  # literal SQL from this module only
            conn.execute(
                sql.SQL("INSERT INTO {} (version, name) VALUES (%s, %s)").format(
                    sql.Identifier(SCHEMA, "schema_migrations")
                ),
                (version, name),
            )
            applied.append(version)
    return applied


def search_indexes(collection_id: int) -> dict[str, sql.Composed]:
    """The chunk table's search indexes, by name: GIN over the tokens, HNSW over the vectors (cosine).

    Each statement is `CREATE INDEX CONCURRENTLY IF NOT EXISTS`, so it runs outside a transaction block and
    writers of the table carry on while it builds. Collections made before these were deferred have both
    under the same names, so nothing here needs a migration.
    """
    table = chunk_table(collection_id)
    name = f"chunks_{collection_id}"
    # Cosine distance; vectors are stored L2-normalised, so 1 - distance is the cosine similarity.
    return {
        f"{name}_tokens": sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} USING gin (tokens)").format(
            sql.Identifier(f"{name}_tokens"), table
        ),
        f"{name}_hnsw": sql.SQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)"
        ).format(sql.Identifier(f"{name}_hnsw"), table),
    }
