"""The measuring side of bench/store_scale.py: runs in a fresh process, as a query worker would.

It opens the store, times the very first query (the embedded engine loads its vectors then), warms up,
records RSS, times every mode over the questions (embedded beforehand, so only retrieval is timed), then
`writes` times lets a second store object write a 5-chunk document and times the next hybrid query, asking
questions already timed, so it compares with their steady p50.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from shared.store import ChunkRecord, Store
from shared.store.keywords import tokenize
from shared.store.retrieval_modes import RETRIEVAL_MODES

COLLECTION = "scale"
TOP_K = 4  # the service's TOP_K
WARM_UP = 20
PROBE_CHUNKS = 5


@dataclass(frozen=True)
class EngineSpec:
    engine: str  # "sqlite" or "postgresql"
    location: str  # the collections folder, or the PostgreSQL URL
    uploads: str


def _open(spec: EngineSpec) -> Store:
    from bench.store_scale import open_engine

    return open_engine(spec)


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, q)) if samples else float("nan")


def measure(spec: EngineSpec, questions: list[str], vectors: np.ndarray, rounds: int, writes: int) -> dict[str, Any]:
    """Latencies (ms), RSS (MiB) and the first-query-after-write figures for the collection as it is now."""
    store = _open(spec)
    collection = store.collection(COLLECTION)
    tokenize("预热")  # jieba's dictionary loads once per process (about a second): keep it out of the cold query
    started = time.perf_counter()
    collection.retrieve(questions[0], vectors[0], TOP_K, "hybrid")
    cold_ms = 1000 * (time.perf_counter() - started)
    for i in range(WARM_UP):
        for mode in RETRIEVAL_MODES:
            collection.retrieve(questions[i], vectors[i], TOP_K, mode)
    rss_warm = psutil.Process().memory_info().rss / 2**20

    timings: dict[str, list[float]] = {mode: [] for mode in RETRIEVAL_MODES}
    by_question: dict[int, list[float]] = {i: [] for i in range(len(questions))}
    for _ in range(rounds):
        for i, (question, vector) in enumerate(zip(questions, vectors, strict=True)):
            for mode in RETRIEVAL_MODES:  # interleaved, so machine noise spreads over every mode alike
                t0 = time.perf_counter()
                collection.retrieve(question, vector, TOP_K, mode)
                timings[mode].append(time.perf_counter() - t0)
            by_question[i].append(timings["hybrid"][-1])

    writer = _open(spec)  # another store object: its own caches and connections, as an index worker has
    target = writer.collection(COLLECTION)
    after_write, write_s = [], []
    # Each probe asks a question already timed above, so "after a write" compares with the same questions.
    probes = [(i * len(questions)) // writes for i in range(writes)]
    for i, asked in enumerate(probes):
        doc_id = f"probe-{i}"
        question, vector = questions[asked], vectors[asked]
        chunks = [ChunkRecord(doc_id, p, f"{question} 探针 {i}-{p}") for p in range(PROBE_CHUNKS)]
        t0 = time.perf_counter()
        target.replace_document(doc_id, f"{doc_id}.md", f"{i:064x}", chunks, np.tile(vector, (PROBE_CHUNKS, 1)))
        t1 = time.perf_counter()
        collection.retrieve(question, vector, TOP_K, "hybrid")
        after_write.append(time.perf_counter() - t1)
        write_s.append(t1 - t0)
    for i in range(writes):
        target.delete_document(f"probe-{i}")
    collection.retrieve(questions[0], vectors[0], TOP_K, "hybrid")  # take in the deletions
    writer.close()
    store.close()

    steady = percentile(timings["hybrid"], 50)
    return {
        "samples": len(timings["hybrid"]),
        "hybrid_p50": steady,
        "hybrid_p99": percentile(timings["hybrid"], 99),
        "vector_p50": percentile(timings["vector"], 50),
        "vector_p99": percentile(timings["vector"], 99),
        "keyword_p50": percentile(timings["bm25"], 50),
        "keyword_p99": percentile(timings["bm25"], 99),
        "after_write_p50": percentile(after_write, 50),
        "after_write_max": max(after_write) * 1000,
        "after_write_steady_p50": percentile([t for i in probes for t in by_question[i]], 50),
        "write_p50": percentile(write_s, 50),
        "cold_ms": cold_ms,
        "rss_mib": rss_warm,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_fresh(
    spec: EngineSpec, questions: list[str], vectors: np.ndarray, rounds: int, writes: int
) -> dict[str, Any]:
    """`measure` in a new process (spawned: nothing inherited from the loader), as a query worker would be."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        figures: dict[str, Any] = pool.apply(measure, (spec, questions, vectors, rounds, writes))
    return figures


def analyze(store: Store, spec: EngineSpec) -> None:
    """PostgreSQL: refresh the planner's statistics after a bulk insert, as autovacuum soon would."""
    if spec.engine != "postgresql":
        return
    from shared.store.postgres_store import PostgresStore

    assert isinstance(store, PostgresStore)
    with store.pool.connection() as conn:
        row = conn.execute("SELECT id FROM ragqueue.collections WHERE name = %s", (COLLECTION,)).fetchone()
        assert row is not None
        conn.execute(f"ANALYZE ragqueue.chunks_{int(row[0])}")


def disk_size(store: Store, spec: EngineSpec) -> dict[str, Any]:
    """The collection's size on disk in MiB: SQLite's file and WAL; PostgreSQL's table, HNSW and GIN indexes."""
    if spec.engine == "sqlite":
        folder = Path(spec.location) / COLLECTION
        return {"disk_mib": sum(f.stat().st_size for f in folder.iterdir()) / 2**20}
    from shared.store.postgres_store import PostgresStore

    assert isinstance(store, PostgresStore)
    with store.pool.connection() as conn:
        row = conn.execute("SELECT id FROM ragqueue.collections WHERE name = %s", (COLLECTION,)).fetchone()
        assert row is not None
        table = f"ragqueue.chunks_{row[0]}"
        sizes = conn.execute(
            "SELECT pg_total_relation_size(%s::regclass), pg_relation_size(%s::regclass), "
            "pg_relation_size(%s::regclass), current_setting('shared_buffers')",
            (table, f"{table}_hnsw", f"{table}_tokens"),
        ).fetchone()
    assert sizes is not None
    return {
        "disk_mib": sizes[0] / 2**20,
        "hnsw_mib": sizes[1] / 2**20,
        "gin_mib": sizes[2] / 2**20,
        "shared_buffers": sizes[3],
    }
