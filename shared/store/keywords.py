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
- A question's own wording (什么, 为什么, 是, 的, 吗 ...) is left out of its search (shared/store/stopwords.py);
  chunks keep every token.
- Text goes through `normalize_text` before cutting, so a question typed with full-width letters (ＫＶ) or
  radical lookalikes matches the normalised text the index holds.
- The segmenter's dictionary is loaded on first use, not on import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import chain

from shared.ingest.text_normalize import normalize_text
from shared.store.segmenter import precise_words, search_words
from shared.store.stopwords import QUESTION_STOPWORDS

# Postings a keyword search may read (see `plan_terms`); KEYWORD_POSTINGS_BUDGET overrides it.
DEFAULT_POSTINGS_BUDGET = 20_000


class _WordTokens(dict[str, tuple[str, ...]]):
    """Keyword tokens per precise-mode word, computed once per distinct word.

    A word's search-mode tokens depend on the word alone, and a corpus repeats a few thousand words, so looking
    them up replaces most of the per-token Python work. Emptied when full, to bound a long-lived worker's memory.
    """

    LIMIT = 1 << 15  # about 220 bytes a word: at most ~7 MB

    def __missing__(self, word: str) -> tuple[str, ...]:
        tokens = (t.strip().lower() for t in search_words(word))
        found = tuple(t for t in tokens if any(ch.isalnum() for ch in t))
        if len(self) >= self.LIMIT:
            self.clear()
        self[word] = found
        return found


_word_tokens = _WordTokens()


def tokenize(text: str) -> list[str]:
    """Lower-cased jieba search-mode tokens, without whitespace or punctuation-only tokens."""
    return list(chain.from_iterable(map(_word_tokens.__getitem__, precise_words(normalize_text(text)))))


def index_text(text: str) -> str:
    """What the keyword index stores for a chunk: its tokens joined by single spaces."""
    return " ".join(tokenize(text))


def query_terms(question: str) -> list[str]:
    """The question's distinct tokens, in order, without question words; all of them when nothing else is left."""
    terms = list(dict.fromkeys(tokenize(question)))
    return [t for t in terms if t not in QUESTION_STOPWORDS] or terms


def bm25_idf(df: int, n: int) -> float:
    """Lucene's BM25 idf, log(1 + (N - df + 0.5) / (df + 0.5)): positive even for a term in every chunk."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def plan_terms(terms: Sequence[str], df: Mapping[str, int], n: int, budget: int) -> list[tuple[str, float]]:
    """The question terms worth searching, rarest first, with their idf.

    Terms no chunk holds are dropped. Then the rarest terms are kept while their chunk counts add up to at
    most `budget` (the rarest always): a keyword search costs about as much as the postings it reads, and
    terms like 是/的/什么 appear in most chunks of a large collection while adding almost nothing to the
    ranking (their idf is near zero). A small collection is searched with every term.
    """
    known = sorted(((t, df[t]) for t in dict.fromkeys(terms) if df.get(t, 0) > 0), key=lambda item: (item[1], item[0]))
    picked: list[tuple[str, float]] = []
    postings = 0
    for term, count in known:
        if picked and postings + count > budget:
            break
        picked.append((term, bm25_idf(count, n)))
        postings += count
    return picked
