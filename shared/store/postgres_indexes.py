"""A PostgreSQL collection's search indexes (GIN over tokens, HNSW over vectors), built once its first load is in.

A new chunk table has neither (postgres_schema.create_chunk_table): the first index job loads it without index
maintenance, and its finaliser builds both; every later write then updates them row by row. Until they exist,
searches are exact scans: the same answers, slower.

Deliberate choices:
- `CREATE INDEX CONCURRENTLY`: a plain build holds a SHARE lock that stops every writer of the table (another
  job's batches into the same collection) for the whole build, minutes for a large collection; a concurrent one
  lets them write, for an extra pass over the table (measured in docs/benchmarks.md). It cannot run in a
  transaction block, so the build has a connection of its own in autocommit mode, outside the pool.
- A session advisory lock per collection: two finalisers of one collection build once; the second waits, then
  finds the indexes there.
- A concurrent build that died (its worker killed, the server restarted) leaves an INVALID index that
  `IF NOT EXISTS` would keep for good: such an index is dropped and built again.
- `maintenance_work_mem` is set for the build to what the collection's HNSW graph takes, up to a ceiling
  (PG_INDEX_BUILD_MEMORY_MB). A graph that outgrows it is finished much more slowly (pgvector's "hnsw graph no
  longer fits into maintenance_work_mem"): 100,000 1024-d vectors took 207 s with 256 MB and 71 s with 1 GB
  (docs/benchmarks.md). From PARALLEL_BUILD_MIN_CHUNKS it is also at least the 32 MB a process PostgreSQL wants
  for each parallel worker and the leader, or it plans none. No more than that either: a parallel build reserves
  all of it as shared memory, and a PostgreSQL in a container has 64 MB of /dev/shm unless given more. When the
  server cannot reserve it ("could not resize shared memory segment"), the index is built again by one process,
  in its own memory.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from shared.store.postgres_schema import SCHEMA, chunk_table, search_indexes

log = logging.getLogger(__name__)

BUILD_MEMORY_MB = 1024  # the default ceiling (PG_INDEX_BUILD_MEMORY_MB)
# What pgvector's in-memory HNSW graph takes a vector beyond the vector itself (measured 720 bytes with m = 16 from
# its "no longer fits" notice: 3,483 1024-d vectors in 16 MB), rounded up.
GRAPH_BYTES_PER_ELEMENT = 1024
MIN_BUILD_MEMORY_MB = 16
# PostgreSQL gives a build no more parallel workers than leave each process (workers and leader) 32 MB of
# maintenance_work_mem. A graph sized exactly (37 MB for 6,000 1024-d chunks) therefore got none, and one process
# built it while the other cores idled: 2.1 s against 1.35-1.5 s with two workers. From this many chunks a build
# asks for at least what its workers need.
PARTICIPANT_MEMORY_MB = 32
PARALLEL_BUILD_MIN_CHUNKS = 2_000
_MB = 1 << 20


def build_memory_mb(chunks: int, dimension: int, ceiling_mb: int, workers: int = 0) -> int:
    """The maintenance_work_mem, in MB, for building the search indexes of `chunks` vectors of `dimension`: their
    HNSW graph with a quarter more, at least MIN_BUILD_MEMORY_MB (and, from PARALLEL_BUILD_MIN_CHUNKS, what
    `workers` parallel workers and the leader need), and never more than `ceiling_mb`."""
    graph = chunks * (dimension * 4 + GRAPH_BYTES_PER_ELEMENT)
    floor = MIN_BUILD_MEMORY_MB
    if workers and chunks >= PARALLEL_BUILD_MIN_CHUNKS:
        floor = max(floor, PARTICIPANT_MEMORY_MB * (workers + 1))
    return min(ceiling_mb, max(floor, -(-graph * 5 // 4 // _MB)))


def set_build_memory(conn: psycopg.Connection, collection_id: int, ceiling_mb: int) -> int:
    """Size this session's maintenance_work_mem for the collection's build from its chunk count; the MB set."""
    row = conn.execute(
        sql.SQL("SELECT chunk_count, dimension FROM {} WHERE id = %s").format(sql.Identifier(SCHEMA, "collections")),
        (collection_id,),
    ).fetchone()
    chunks, dimension = (int(row[0]), int(row[1])) if row else (0, 0)
    workers = int(conn.execute("SHOW max_parallel_maintenance_workers").fetchone()[0])  # type: ignore[index]
    memory_mb = build_memory_mb(chunks, dimension, ceiling_mb, workers)
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(f"{memory_mb}MB")))
    return memory_mb


def index_validity(conn: psycopg.Connection, names: list[str]) -> dict[str, bool]:
    """Which of these indexes of the `ragqueue` schema exist, and whether each is valid (usable by queries)."""
    rows = conn.execute(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (SCHEMA, names),
    ).fetchall()
    return {str(name): bool(valid) for name, valid in rows}


def _usable(found: dict[str, bool], names: list[str]) -> bool:
    return all(found.get(name, False) for name in names)


def search_indexes_usable(conn: psycopg.Connection, collection_id: int) -> bool:
    """Whether the collection's search indexes are all built and valid."""
    names = list(search_indexes(collection_id))
    return _usable(index_validity(conn, names), names)


def _drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(SCHEMA, name)))


def build_search_indexes(conninfo: str, collection_id: int, memory_ceiling_mb: int = BUILD_MEMORY_MB) -> list[str]:
    """Build the collection's missing (or invalid) search indexes; the names built, empty when none was."""
    statements = search_indexes(collection_id)
    names = list(statements)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if search_indexes_usable(conn, collection_id):  # the usual case for every job after a collection's first
            return []
        # Released when this connection closes, however the build ends.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"search-indexes:{collection_id}",))
        if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.chunks_{collection_id}",)).fetchone() == (None,):
            return []  # the collection was dropped meanwhile
        found = index_validity(conn, names)  # again under the lock: another finaliser may have built them
        if _usable(found, names):
            return []
        memory_mb = set_build_memory(conn, collection_id, memory_ceiling_mb)
        # PostgreSQL also plans a build's workers from the size of the table's heap, which holds only TOAST pointers
        # where the vectors are (a 6,000-chunk heap is under min_parallel_table_scan_size); the build's work is the
        # vectors, so the heap's size does not decide (the memory above and max_parallel_maintenance_workers do).
        conn.execute("SET min_parallel_table_scan_size = 0")
        missing = [name for name in names if not found.get(name, False)]
        log.info("building %s with maintenance_work_mem %d MB", ", ".join(missing), memory_mb)
        for name in missing:
            statement = statements[name]
            if name in found:  # invalid: left by a concurrent build that died
                _drop(conn, name)
            try:
                conn.execute(statement)
            except (psycopg.errors.OutOfMemory, psycopg.errors.DiskFull) as exc:
                if "shared memory segment" not in str(exc):
                    raise
                log.warning(
                    "PostgreSQL could not reserve %d MB of shared memory for a parallel build of %s (%s): building "
                    "it with one process instead, more slowly. Give the server a larger /dev/shm (a container's "
                    "--shm-size) or lower PG_INDEX_BUILD_MEMORY_MB.",
                    memory_mb,
                    name,
                    exc.diag.message_primary,
                )
                _drop(conn, name)  # the failed concurrent build left it invalid
                conn.execute("SET max_parallel_maintenance_workers = 0")  # one process builds in its own memory
                conn.execute(statement)
        conn.execute(sql.SQL("ANALYZE {}").format(chunk_table(collection_id)))
        return missing
