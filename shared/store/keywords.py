"""Keyword search's text side: jieba tokens for chunks and questions, written into the engine's own index.

Both engines rank keywords inside the database (SQLite FTS5's `bm25()`, PostgreSQL's `tsvector` over a GIN
index), so a write is visible to the next query with nothing rebuilt. Neither engine segments Chinese, so the
application cuts the text with jieba and stores the tokens joined by spaces; the engines then only split on
whitespace (the approach RAGFlow takes with Elasticsearch).

Deliberate choices:
- jieba's search mode also emits the shorter words inside a long one (中华人民共和国 → 中华, 人民, 共和国, ...),
  so a question may match part of a compound.
- Each distinct question term counts once: search mode emits overlapping sub-words, and repeating them would
  let a long compound outweigh the rest of the question.
- Text goes through `normalize_text` before cutting, so a question typed with full-width letters (ＫＶ) or
  radical lookalikes matches the normalised text the index holds.
- jieba is imported and its dictionary loaded on first use, not on import, with its log line silenced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shared.text_normalize import normalize_text

_cut: Callable[[str], list[str]] | None = None
_cut_lock = threading.Lock()


def _search_cut() -> Callable[[str], list[str]]:
    """jieba's search-mode cut, with its dictionary loaded once per process (about a second)."""
    global _cut
    with _cut_lock:
        if _cut is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)  # else "Building prefix dict ..." on stderr in every process
            jieba.initialize()
            _cut = jieba.lcut_for_search
        return _cut


def tokenize(text: str) -> list[str]:
    """Lower-cased jieba search-mode tokens, without whitespace or punctuation-only tokens."""
    tokens = (t.strip().lower() for t in _search_cut()(normalize_text(text)))
    return [t for t in tokens if any(ch.isalnum() for ch in t)]


def index_text(text: str) -> str:
    """What the keyword index stores for a chunk: its tokens joined by single spaces."""
    return " ".join(tokenize(text))


def query_terms(question: str) -> list[str]:
    """The question's distinct tokens, in order."""
    return list(dict.fromkeys(tokenize(question)))
