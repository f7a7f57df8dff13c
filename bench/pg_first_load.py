"""A PostgreSQL collection's first load with its search indexes in place during the load, or built after it.

In process, against a private PostgreSQL 18 + pgvector (harness/postgres.py): N chunks cut from a corpus, with
the fake Zhipu server's 1024-d vectors (computed before timing), are written into a new collection by
`replace_documents`, 16 documents of 12 chunks a call, as index batches write them. Modes:

- `kept`: the search indexes are built on the empty table, so every row is inserted into them;
- `deferred`: the product's path: load, then `build_search_indexes()` (CREATE INDEX CONCURRENTLY);
- `plain`: the same load, then the same indexes built without CONCURRENTLY;
- `deferred-<MB>mb`: deferred, with maintenance_work_mem left at MB (8: an HNSW graph that does not fit).

While the indexes build, another thread writes further batches of 16 documents into the same collection (as a
second job would; `--no-writer` to leave it out) and records how long each write took.

Wall time, this process's CPU (tokenising included) and PostgreSQL's CPU (every server process, the exited
backends counted through the postmaster's reaped-children times) per phase.

    .venv/bin/python -m bench.pg_first_load --corpus-dir /work/shared/corpus --chunks 3000
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import psycopg
import typer
from psycopg import sql

from harness.fakes.zhipu_vectors import embed_text
from harness.postgres import PostgresServer
from shared.store import ChunkRecord, CollectionStore, DocumentWrite
from shared.store.postgres_indexes import build_search_indexes
from shared.store.postgres_schema import search_indexes
from shared.store.postgres_store import PostgresStore

DIMENSION = 1024
CHUNKS_PER_DOCUMENT = 12
DOCUMENTS_PER_CALL = 16
TICK = os.sysconf("SC_CLK_TCK")

app = typer.Typer(add_completion=False)


def server_cpu_s(postmaster: int) -> float:
    """CPU seconds of the postmaster, its live children and the children it has reaped."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        if pid == postmaster:
            total += sum(int(x) for x in fields[11:15]) / TICK  # utime, stime, cutime, cstime
        elif ppid == postmaster:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def pieces(corpus: Path, count: int, size: int = 400) -> Iterator[str]:
    """`count` distinct chunk texts: the corpus cut into pieces, copies marked so each is new."""
    texts = [p.read_text() for p in sorted(corpus.rglob("*")) if p.suffix in (".md", ".txt")]
    cut = [t[i : i + size] for t in texts for i in range(0, len(t), size) if t[i : i + size].strip()]
    for n in range(count):
        yield f"{cut[n % len(cut)]}\n[副本 {n // len(cut)}]"


def documents(texts: list[str], vectors: np.ndarray, prefix: str) -> list[DocumentWrite]:
    out = []
    for start in range(0, len(texts), CHUNKS_PER_DOCUMENT):
        doc_id = f"{prefix}{start // CHUNKS_PER_DOCUMENT:05d}"
        chunk_texts = texts[start : start + CHUNKS_PER_DOCUMENT]
        chunks = [ChunkRecord(doc_id, i, t) for i, t in enumerate(chunk_texts)]
        out.append(DocumentWrite(doc_id, f"{doc_id}.md", doc_id, chunks, vectors[start : start + len(chunks)]))
    return out


class Meter:
    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster

    def __enter__(self) -> Meter:
        self.t0, self.c0, self.s0 = time.perf_counter(), time.process_time(), server_cpu_s(self.postmaster)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.client = time.process_time() - self.c0
        self.server = server_cpu_s(self.postmaster) - self.s0


class Writer(threading.Thread):
    """Another job's batches into the same collection while the indexes build: how long each write takes."""

    def __init__(self, collection: CollectionStore, documents: list[DocumentWrite]) -> None:
        super().__init__(daemon=True)
        self.collection, self.documents = collection, documents
        self.waits: list[float] = []
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        for i in range(0, len(self.documents), DOCUMENTS_PER_CALL):
            if self.done.wait(0.05):
                return
            t0 = time.perf_counter()
            self.collection.replace_documents(self.documents[i : i + DOCUMENTS_PER_CALL])
            self.waits.append(time.perf_counter() - t0)

    def stop(self) -> list[float]:
        self.done.set()
        self.join()
        return self.waits


def plain_build(url: str, collection_id: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in search_indexes(collection_id).values():
            conn.execute(sql.SQL(statement.as_string(conn).replace(" CONCURRENTLY", "")))  # type: ignore[arg-type]
        conn.execute(sql.SQL("ANALYZE ragqueue.{}").format(sql.Identifier(f"chunks_{collection_id}")))


def run(
    server: PostgresServer, mode: str, writes: list[DocumentWrite], extra: list[DocumentWrite], uploads: Path
) -> dict[str, float]:
    url = server.fresh_database(mode.replace("-", "_"))
    store = PostgresStore(url, uploads, pool_size=2)
    postmaster = server.pid
    c = store.collection("bench")
    c.ensure("fake/embedding-2", DIMENSION)
    if mode == "kept":
        c.build_search_indexes()
    with Meter(postmaster) as load:
        for i in range(0, len(writes), DOCUMENTS_PER_CALL):
            c.replace_documents(writes[i : i + DOCUMENTS_PER_CALL])
    with store.pool.connection() as conn:
        row = conn.execute("SELECT id FROM collections WHERE name = 'bench'").fetchone()
    assert row is not None
    writer = Writer(c, extra) if extra else None
    with Meter(postmaster) as build:
        if mode == "plain":
            plain_build(url, int(row[0]))
        elif mode.startswith("deferred-"):  # the server's maintenance_work_mem left as it is, or lowered
            memory_mb = int(mode.removeprefix("deferred-").removesuffix("mb"))
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET maintenance_work_mem = {}").format(
                        sql.Identifier(conn.info.dbname), sql.Literal(f"{memory_mb}MB")
                    )
                )
            build_search_indexes(url, int(row[0]), memory_ceiling_mb=memory_mb)
        else:
            c.build_search_indexes()
    waits = writer.stop() if writer else []
    store.close()
    return {
        "writes": len(waits),
        "write_max_s": max(waits, default=0.0),
        "load_s": load.wall,
        "load_client": load.client,
        "load_server": load.server,
        "build_s": build.wall,
        "build_client": build.client,
        "build_server": build.server,
    }


@app.command()
def main(
    corpus_dir: Annotated[Path, typer.Option(help="Folder of .md/.txt texts (read only).")],
    chunks: Annotated[int, typer.Option(help="Chunks to load per mode.")] = 3000,
    modes: Annotated[
        str, typer.Option(help="Comma-separated: kept, deferred, plain, deferred-<MB>mb.")
    ] = "kept,deferred,plain",
    writer: Annotated[bool, typer.Option(help="Another job writes to the collection while it builds.")] = True,
) -> None:
    texts = list(pieces(corpus_dir, chunks + (chunks // 3 if writer else 0)))
    vectors = np.array([embed_text(t, DIMENSION) for t in texts], dtype=np.float32)
    writes, extra = (
        documents(texts[:chunks], vectors[:chunks], "doc"),
        documents(texts[chunks:], vectors[chunks:], "more"),
    )
    folder = Path(tempfile.mkdtemp(prefix="ragqueue-bench-pg-"))
    server = PostgresServer.start(folder / "pg")
    try:
        print(f"load: {os.getloadavg()[0]:.2f}; {chunks} chunks in {len(writes)} documents, {len(extra)} more to write")
        print(
            "| mode | load s | build s | total s | client CPU s | PostgreSQL CPU s (load + build) "
            "| writes during build, slowest |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for mode in modes.split(","):
            r = run(server, mode, writes, extra if mode != "kept" else [], folder / "uploads")
            print(
                f"| {mode} | {r['load_s']:.1f} | {r['build_s']:.1f} | {r['load_s'] + r['build_s']:.1f} | "
                f"{r['load_client'] + r['build_client']:.1f} | "
                f"{r['load_server']:.1f} + {r['build_server']:.1f} = {r['load_server'] + r['build_server']:.1f} | "
                f"{r['writes']:.0f}, {r['write_max_s']:.2f} s |",
                flush=True,
            )
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    app()
