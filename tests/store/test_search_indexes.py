"""A collection's search indexes are built after its first load, and searches answer the same before and after."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pytest

from harness.postgres import PostgresServer
from shared.store import ChunkRecord, DocumentWrite, Store
from shared.store.postgres_indexes import (
    MIN_BUILD_MEMORY_MB,
    PARALLEL_BUILD_MIN_CHUNKS,
    PARTICIPANT_MEMORY_MB,
    build_memory_mb,
    index_validity,
    set_build_memory,
)
from shared.store.postgres_store import PostgresStore
from shared.store.retrieval_modes import RETRIEVAL_MODES

TEXTS = [
    "KV 缓存把键向量和值向量保存在显存中",
    "连续批处理让新请求立即插入批次",
    "量化把权重压缩到四比特",
    "错误码 E1024 表示显存不足",
]
QUERY_VECTOR = np.array([0.9, 0.3, 0.1, -0.5], dtype=np.float32)


def _write(store: Store, name: str, doc_id: str = "d1", offset: int = 0) -> None:
    c = store.collection(name)
    c.ensure("m", 4)
    chunks = [ChunkRecord(doc_id, i, f"{t} {doc_id}") for i, t in enumerate(TEXTS)]
    vectors = np.roll(np.eye(4, dtype=np.float32), offset, axis=1)
    c.replace_documents([DocumentWrite(doc_id, f"{doc_id}.md", f"sha-{doc_id}", chunks, vectors)])


def _answers(store: Store, name: str) -> list[tuple[str, ...]]:
    c = store.collection(name)
    return [
        (mode, h.doc_id, h.chunk_id, f"{h.score:.5f}")
        for mode in RETRIEVAL_MODES
        for h in c.retrieve("E1024 显存", QUERY_VECTOR if mode != "bm25" else None, 10, mode)
    ]


def _search_indexes(store: PostgresStore, name: str) -> dict[str, str]:
    """The chunk table's indexes other than its primary key and doc_id index: name -> definition."""
    with store.pool.connection() as conn:
        row = conn.execute("SELECT id FROM collections WHERE name = %s", (name,)).fetchone()
        assert row is not None
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'ragqueue' AND tablename = %s",
            (f"chunks_{row[0]}",),
        ).fetchall()
    return {n: d for n, d in rows if not n.endswith(("_pkey", "_doc"))}


def test_searches_answer_the_same_before_and_after_the_search_indexes_are_built(store: Store) -> None:
    _write(store, "kb")
    assert store.collection("kb").info().search_indexes_built is (store.engine == "sqlite")
    before = _answers(store, "kb")
    assert [h for h in before if h[0] == "bm25"]  # the keyword side finds E1024 without its index
    built = store.collection("kb").build_search_indexes()
    assert built == ([] if store.engine == "sqlite" else ["chunks_1_tokens", "chunks_1_hnsw"])
    assert store.collection("kb").info().search_indexes_built is True
    assert _answers(store, "kb") == before
    assert store.collection("kb").build_search_indexes() == []  # a second call finds them there
    _write(store, "kb", "d2", offset=1)  # a later job's rows go into the indexes as they are written
    assert {(mode, doc) for mode, doc, *_ in _answers(store, "kb")} == {
        (m, d) for m in RETRIEVAL_MODES for d in ("d1", "d2")
    }


def test_building_the_search_indexes_of_a_collection_that_does_not_exist_builds_nothing(store: Store) -> None:
    assert store.collection("nowhere").build_search_indexes() == []


def test_a_new_postgres_collection_is_loaded_without_search_indexes_and_gets_both_when_built(
    pg: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    _write(pg, "kb")
    assert _search_indexes(pg, "kb") == {}
    with caplog.at_level(logging.INFO, logger="shared.store.postgres_indexes"):
        pg.collection("kb").build_search_indexes()
    # Sized from the collection's 4 chunks: the floor.
    assert f"building chunks_1_tokens, chunks_1_hnsw with maintenance_work_mem {MIN_BUILD_MEMORY_MB} MB" in caplog.text
    indexes = _search_indexes(pg, "kb")
    assert sorted(indexes) == ["chunks_1_hnsw", "chunks_1_tokens"]
    assert "USING hnsw (embedding vector_cosine_ops)" in indexes["chunks_1_hnsw"]
    assert "USING gin (tokens)" in indexes["chunks_1_tokens"]
    pg.collection("kb").build_search_indexes()
    assert _search_indexes(pg, "kb") == indexes


def test_a_collection_made_with_its_indexes_up_front_is_left_as_it_is(pg: PostgresStore) -> None:
    _write(pg, "old")
    with pg.pool.connection() as conn:  # as create_chunk_table made them before the build was deferred
        conn.execute("CREATE INDEX chunks_1_tokens ON chunks_1 USING gin (tokens)")
        conn.execute("CREATE INDEX chunks_1_hnsw ON chunks_1 USING hnsw (embedding vector_cosine_ops)")
    before = _search_indexes(pg, "old")
    assert pg.collection("old").build_search_indexes() == []
    assert _search_indexes(pg, "old") == before


def test_an_index_left_invalid_by_a_build_that_died_is_built_again(pg: PostgresStore) -> None:
    _write(pg, "kb")
    pg.collection("kb").build_search_indexes()
    with pg.pool.connection() as conn:  # what a concurrent build killed half way leaves
        conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ragqueue.chunks_1_hnsw'::regclass")
    assert pg.collection("kb").build_search_indexes() == ["chunks_1_hnsw"]
    with pg.pool.connection() as conn:
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ragqueue.chunks_1_hnsw'::regclass"
        ).fetchone()
    assert valid == (True,)


def test_the_build_memory_is_what_the_graph_takes_within_the_floor_and_the_ceiling() -> None:
    # 100,000 1024-d vectors: 100,000 x (4,096 + 1,024) bytes, a quarter more, in MB rounded up.
    assert build_memory_mb(100_000, 1024, ceiling_mb=1024) == 611
    assert build_memory_mb(100_000, 1024, ceiling_mb=256) == 256
    assert build_memory_mb(1_000, 1024, ceiling_mb=1024) == MIN_BUILD_MEMORY_MB
    assert build_memory_mb(0, 0, ceiling_mb=1024) == MIN_BUILD_MEMORY_MB
    assert build_memory_mb(1_000, 1024, ceiling_mb=8) == 8  # the ceiling wins, even below the floor
    # With parallel workers, from PARALLEL_BUILD_MIN_CHUNKS: 32 MB for each worker and the leader, or PostgreSQL
    # plans no worker; above that, the graph's own size; below it, one process.
    assert build_memory_mb(6_000, 1024, ceiling_mb=1024, workers=2) == 3 * PARTICIPANT_MEMORY_MB
    assert build_memory_mb(100_000, 1024, ceiling_mb=1024, workers=2) == 611
    assert build_memory_mb(PARALLEL_BUILD_MIN_CHUNKS - 1, 1024, ceiling_mb=1024, workers=2) < 3 * PARTICIPANT_MEMORY_MB
    assert build_memory_mb(6_000, 1024, ceiling_mb=64, workers=2) == 64


def test_a_build_sizes_its_sessions_memory_from_the_collections_chunk_count(pg: PostgresStore) -> None:
    _write(pg, "sized")
    with psycopg.connect(pg.url, autocommit=True) as conn:
        collection_id, chunks = conn.execute(
            "SELECT id, chunk_count FROM ragqueue.collections WHERE name = 'sized'"
        ).fetchone()  # type: ignore[misc]
        assert chunks == len(TEXTS)
        assert set_build_memory(conn, collection_id, ceiling_mb=1024) == MIN_BUILD_MEMORY_MB
        assert conn.execute("SHOW maintenance_work_mem").fetchone() == (f"{MIN_BUILD_MEMORY_MB}MB",)
        conn.execute(
            "UPDATE ragqueue.collections SET chunk_count = 200000, dimension = 256 WHERE id = %s", (collection_id,)
        )
        expected = build_memory_mb(200_000, 256, ceiling_mb=1024)
        assert set_build_memory(conn, collection_id, ceiling_mb=1024) == expected == 489
        assert conn.execute("SHOW maintenance_work_mem").fetchone() == (f"{expected}MB",)
        # The server's max_parallel_maintenance_workers (2 by default) sets the floor of a mid-sized collection's.
        conn.execute(
            "UPDATE ragqueue.collections SET chunk_count = 6000, dimension = 1024 WHERE id = %s", (collection_id,)
        )
        assert set_build_memory(conn, collection_id, ceiling_mb=1024) == 3 * PARTICIPANT_MEMORY_MB
        conn.execute("SET max_parallel_maintenance_workers = 0")
        assert set_build_memory(conn, collection_id, ceiling_mb=1024) == build_memory_mb(6_000, 1024, 1024) == 37


def test_a_parallel_build_denied_its_shared_memory_is_done_by_one_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Not under pytest's basetemp (see postgres_server in tests/conftest.py).
    folder = Path(tempfile.mkdtemp(prefix="ragqueue-pg-small-shm-"))
    server = PostgresServer.start_with_file_size_limit(folder, 48 << 20)  # as a container with a small /dev/shm
    try:
        store = PostgresStore(server.fresh_database("shm"), tmp_path / "uploads", pool_size=2)
        try:
            _write(store, "kb")
            exact = _answers(store, "kb")
            with psycopg.connect(store.url, autocommit=True) as conn:
                # Parallel workers for this small table, and a chunk count whose graph asks for 620 MB.
                conn.execute("ALTER TABLE ragqueue.chunks_1 SET (parallel_workers = 2)")
                conn.execute("UPDATE ragqueue.collections SET chunk_count = 500000")
            with caplog.at_level(logging.INFO, logger="shared.store.postgres_indexes"):
                built = store.collection("kb").build_search_indexes()
            assert built == ["chunks_1_tokens", "chunks_1_hnsw"]
            assert "could not reserve 620 MB of shared memory for a parallel build of chunks_1_" in caplog.text
            assert "--shm-size" in caplog.text
            with psycopg.connect(store.url, autocommit=True) as conn:
                assert index_validity(conn, built) == dict.fromkeys(built, True)
                conn.execute("UPDATE ragqueue.collections SET chunk_count = %s", (len(TEXTS),))  # the keyword score's N
            assert _answers(store, "kb") == exact
        finally:
            store.close()
    finally:
        server.discard()
        shutil.rmtree(folder, ignore_errors=True)
