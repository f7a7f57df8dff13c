"""PostgreSQL at 1M chunks for the store scale bench, bulk-loaded instead of grown by `replace_document`.

`replace_document` runs at about 250 chunks/s on PostgreSQL (jieba, then one HNSW insertion per row), so 1M
chunks would take over an hour. This script builds the same collection (same seed and documents as
bench/store_scale.py) the way a bulk import would, then measures it with the same probe:

1. The store creates the collection (`ensure`), so tables and indexes are the product's.
2. Each distinct corpus sentence is tokenised once with the store's `tokenize`; a chunk's tokens are its
   sentences' tokens concatenated. That equals tokenising the chunk itself up to jieba's segmentation at the
   sentence boundaries (the script reports the share of tokens that agree on a sample).
3. The GIN and HNSW indexes are dropped, the chunks loaded with one `COPY` (the tsvector as
   `tsvector_literal`, the vector in pgvector's text form), the documents and the term counts
   (`terms_<id>`, from `unnest(tokens)`) and `chunk_count` filled in; then both indexes are recreated from
   their own definitions (`pg_indexes`) with a large maintenance_work_mem, and the database ANALYZEd.
4. A fresh process measures latencies, the first query after a write, RSS and disk (bench/scale_probe.py).

    .venv/bin/python -m bench.store_scale_bulk                       # 1M chunks in a private pgserver
    .venv/bin/python -m bench.store_scale_bulk --chunks 20000 --postgres-url postgresql://...
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from itertools import chain
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import psycopg
import typer
from psycopg import sql
from rich.console import Console

from bench.scale_data import DIMENSION, SyntheticCorpus, document_sha256, embed_question
from bench.scale_probe import COLLECTION, EngineSpec, disk_size, measure_fresh
from bench.scale_report import markdown_table, summary_lines
from bench.store_scale import REPO, open_engine, postgres_database
from shared.store.keywords import tokenize
from shared.store.postgres_schema import SCHEMA, chunk_table, term_table
from shared.store.postgres_store import PostgresStore, tsvector_literal
from shared.store.records import chunk_id

console = Console()
app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)
_VECTOR_TEXT = "[" + ",".join(["%.9g"] * DIMENSION) + "]"  # 9 digits: float32 values survive the round trip


def token_agreement(data: SyntheticCorpus, tokens: list[list[str]], sample: int = 300) -> float:
    """Share of a sample of chunks' own tokens that their sentences' concatenated tokens also hold."""
    agree = total = 0
    for _, (_, picks) in zip(range(max(1, sample // 50)), data.document_picks(), strict=False):
        for pick in picks:
            own = Counter(tokenize(data.chunk_text(pick)))
            joined = Counter(chain.from_iterable(tokens[j] for j in pick))
            agree += sum((own & joined).values())
            total += sum(own.values())
    return agree / total if total else 1.0


def copy_chunks(
    conn: psycopg.Connection, collection_id: int, data: SyntheticCorpus, tokens: list[list[str]], chunks: int
) -> int:
    """COPY documents of the synthetic stream until `chunks` chunks; the documents' rows too. Chunks loaded."""
    table = chunk_table(collection_id)
    loaded, documents, now = 0, [], time.time()
    columns = "(id, doc_id, position, text, location, tokens, embedding)"
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} " + columns + " FROM STDIN").format(table)) as copy:
        for doc_id, picks in data.document_picks():
            picks = picks[: chunks - loaded]
            vectors = data.chunk_vectors(picks)
            texts, seen = [], set()
            for position, (pick, vector) in enumerate(zip(picks, vectors, strict=True)):
                text = data.chunk_text(pick)
                texts.append(text)
                key = chunk_id(doc_id, text)
                if key in seen:  # the same text twice in a document is one chunk, as in replace_document
                    continue
                seen.add(key)
                literal = tsvector_literal(list(chain.from_iterable(tokens[j] for j in pick)))
                copy.write_row((key, doc_id, position, text, "", literal, _VECTOR_TEXT % tuple(vector.tolist())))
            loaded += len(seen)
            sha = document_sha256(texts)
            documents.append((collection_id, doc_id, f"{doc_id}.md", sha, len(seen), now))
            if len(documents) % 2000 == 0:
                console.print(f"  {loaded:,} chunks copied", highlight=False)
            if loaded >= chunks:
                break
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {SCHEMA}.documents (collection_id, id, source, sha256, chunks, updated_at) FROM STDIN") as copy,
    ):
        for row in documents:
            copy.write_row(row)
    return loaded


def search_indexes(conn: psycopg.Connection, collection_id: int) -> dict[str, str]:
    """The chunk table's GIN and HNSW indexes: name -> definition, as the server prints it (`pg_indexes`)."""
    names = [f"chunks_{collection_id}_tokens", f"chunks_{collection_id}_hnsw"]
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = ANY(%s)", (SCHEMA, names)
    ).fetchall()
    assert len(rows) == len(names), f"expected indexes {names}, found {rows}"
    return {name: definition for name, definition in sorted(rows, key=lambda r: names.index(r[0]))}


def fill_counts(conn: psycopg.Connection, collection_id: int, chunks: int) -> None:
    """The term counts keyword search plans with, and the collection's chunk count, from the loaded rows."""
    conn.execute(
        sql.SQL("INSERT INTO {} (term, df) SELECT lexeme, count(*) FROM {}, unnest(tokens) GROUP BY lexeme").format(
            term_table(collection_id), chunk_table(collection_id)
        )
    )
    conn.execute(
        f"UPDATE {SCHEMA}.collections SET chunk_count = %s, updated_at = %s WHERE id = %s",
        (chunks, time.time(), collection_id),
    )


def build_indexes(conn: psycopg.Connection, definitions: dict[str, str]) -> dict[str, float]:
    """Create each index from its definition, with room to build in memory; seconds per index."""
    conn.execute("SET maintenance_work_mem = '4GB'")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    seconds = {}
    for name, definition in definitions.items():
        t0 = time.perf_counter()
        conn.execute(definition)  # type: ignore[call-overload]  # the server's own text for its index
        took = seconds[f"{name.rsplit('_', 1)[1]}_build_s"] = time.perf_counter() - t0
        console.print(f"{definition}: {took:.0f} s", highlight=False)
    return seconds


def bulk_load(url: str, uploads: Path, data: SyntheticCorpus, chunks: int) -> dict[str, Any]:
    """Create the collection through the store, load it, rebuild its indexes; the phases' timings in seconds."""
    store = PostgresStore(url, uploads, pool_size=1)
    store.collection(COLLECTION).ensure("fake-hash-384", DIMENSION)
    store.close()
    t0 = time.perf_counter()
    tokens = [tokenize(s) for s in data.sentences]
    timings: dict[str, Any] = {"tokenize_s": time.perf_counter() - t0, "token_agreement": token_agreement(data, tokens)}
    console.print(
        f"sentences tokenised in {timings['tokenize_s']:.1f} s; a chunk's own tokens agree with its "
        f"sentences' at {100 * timings['token_agreement']:.2f}% (sample)"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT id FROM {SCHEMA}.collections WHERE name = %s", (COLLECTION,)).fetchone()
        assert row is not None
        collection_id = int(row[0])
        definitions = search_indexes(conn, collection_id)
        for name in definitions:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(SCHEMA, name)))
        t0 = time.perf_counter()
        with conn.transaction():
            loaded = copy_chunks(conn, collection_id, data, tokens, chunks)
            fill_counts(conn, collection_id, loaded)
        timings.update(chunks=loaded, load_s=time.perf_counter() - t0)
        console.print(
            f"{loaded:,} chunks, documents and term counts loaded in {timings['load_s']:.0f} s "
            f"({loaded / timings['load_s']:.0f} chunks/s)"
        )
        timings.update(build_indexes(conn, definitions))
        t0 = time.perf_counter()
        conn.execute("ANALYZE")
        timings["analyze_s"] = time.perf_counter() - t0
    return timings


def bulk_cell(r: dict[str, Any]) -> str:
    minutes = (r["tokens_build_s"] + r["hnsw_build_s"]) / 60
    return f"bulk: {r['chunks'] / r['load_s']:,.0f} chunks/s COPY + index build {minutes:.0f} min"


@app.command()
def main(
    chunks: Annotated[int, typer.Option(min=100, help="Chunks to load.")] = 1_000_000,
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
    queries: Annotated[int, typer.Option(min=20, help="Distinct questions per round and mode.")] = 100,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds over the questions (samples = queries × rounds).")] = 2,
    writes: Annotated[int, typer.Option(min=1, help="Write-then-query repetitions.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic collection.")] = 8,
    work_dir: Annotated[Path | None, typer.Option(help="Where the pgserver goes (default: system temp).")] = None,
    save: Annotated[Path | None, typer.Option(help="Also write the result as JSON to this file.")] = None,
) -> None:
    """Bulk-load one PostgreSQL collection of --chunks chunks, then measure it as bench/store_scale.py does."""
    started, load_before = time.perf_counter(), os.getloadavg()
    data = SyntheticCorpus(corpus_dir, seed)
    questions = data.questions(corpus_questions, queries)
    vectors = np.stack([embed_question(q) for q in questions])
    with (
        tempfile.TemporaryDirectory(prefix="ragqueue-bulk-", dir=work_dir) as tmp,
        postgres_database(postgres_url, Path(tmp)) as url,
    ):
        spec = EngineSpec("postgresql", url, str(Path(tmp) / "uploads"))
        result: dict[str, Any] = bulk_load(url, Path(spec.uploads), data, chunks)
        console.print(f"measuring {result['chunks']:,} chunks in a fresh process ...")
        result.update(measure_fresh(spec, questions, vectors, rounds, writes))
        store = open_engine(spec)
        try:
            result.update(disk_size(store, spec))
        finally:
            store.close()
    rate = result["chunks"] / result["load_s"]
    result.update(engine="postgresql", target=chunks, insert_rate=rate, partial=False, bulk=True)
    result["insert_cell"] = bulk_cell(result)
    print(markdown_table([result]))
    for line in summary_lines([result]):
        print(f"- {line}")
    machine = {
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "minutes": (time.perf_counter() - started) / 60,
    }
    console.print(f"machine: {machine}")
    if save:
        save.write_text(json.dumps({"results": [result], "machine": machine}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    app()
