"""A sheet's rows packed into chunks: whole rows only, each chunk located by the rows it holds.

Each row already carries its header (`编号: db-07 | 内存: 512GB`), so every chunk repeats the header it needs
and a question about one cell finds its row. A row longer than a chunk on its own is split like prose.
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.node_parser import SentenceSplitter

from shared.ingest.text_normalize import normalize_text
from workers.loaders.sections import Row


def row_chunks(rows: Sequence[Row], location: str, splitter: SentenceSplitter) -> list[tuple[str, str]]:
    """(text, location) per chunk: consecutive rows up to the splitter's chunk size, never a row cut in two."""
    budget = splitter.chunk_size
    pieces: list[tuple[str, str]] = []
    held: list[Row] = []
    held_tokens = 0

    def flush() -> None:
        nonlocal held, held_tokens
        if held:
            pieces.append(("\n".join(r.text for r in held), _located(location, held[0].number, held[-1].number)))
        held, held_tokens = [], 0

    for row in rows:
        text = normalize_text(row.text)
        if not text:
            continue
        tokens = len(splitter._tokenizer(text)) + 1  # the splitter's own count, so chunks fit as prose ones do
        if tokens > budget:
            flush()
            where = _located(location, row.number, row.number)
            pieces.extend((p, where) for p in splitter.split_text(text) if p.strip())
            continue
        if held_tokens + tokens > budget:
            flush()
        held.append(Row(row.number, text))
        held_tokens += tokens
    flush()
    return pieces


def _located(location: str, first: int, last: int) -> str:
    rows = f"row {first}" if first == last else f"rows {first}–{last}"
    return f"{location}, {rows}" if location else rows
