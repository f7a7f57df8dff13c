"""Okapi BM25 over jieba tokens: the lexical half of hybrid retrieval (issue 3).

Embeddings blur exact terms (model names, error codes, "KV"); BM25 matches them. Chinese has no spaces
between words, so text is cut with jieba's search mode, which also emits the shorter words inside a long
one (中华人民共和国 → 中华, 人民, 共和国, ...) so a query may match part of a compound.

Deliberate choices:
- IDF is Lucene's `log(1 + (N - n + 0.5) / (n + 0.5))`, which stays positive: Okapi's original goes
  negative for a term in more than half the chunks, and a tiny collection would then rank a chunk that
  contains a common query word *below* one that does not.
- Each distinct query term counts once: search mode emits overlapping sub-words, and counting repeats
  would let a long compound outweigh the rest of the question.
- Text goes through `normalize_text` before cutting, so a query typed with full-width letters (ＫＶ) or
  radical lookalikes matches the normalised text the index holds.
- jieba is imported and its dictionary loaded on first use, not on import, with its log line silenced.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from heapq import nlargest

from shared.text_normalize import normalize_text

K1 = 1.5
B = 0.75

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


class BM25Index:
    """An in-memory inverted index over chunk texts, scored with Okapi BM25 (k1=1.5, b=0.75)."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], k1: float = K1, b: float = B) -> None:
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        self.ids = list(ids)
        self.k1 = k1
        self.b = b
        postings: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
        self._lengths: list[int] = []
        for doc, text in enumerate(texts):
            counts = Counter(tokenize(text))
            self._lengths.append(sum(counts.values()))
            for term, tf in counts.items():
                postings[term].append((doc, tf))
        self._postings: dict[str, list[tuple[int, int]]] = dict(postings)
        self._avg_length = (sum(self._lengths) / len(self._lengths)) if self._lengths else 0.0

    def __len__(self) -> int:
        return len(self.ids)

    def idf(self, term: str) -> float:
        n = len(self._postings.get(term, ()))
        return math.log(1.0 + (len(self.ids) - n + 0.5) / (n + 0.5))

    def search(self, query: str, top_k: int) -> list[tuple[str, float]]:
        """The best `top_k` (chunk id, BM25 score) pairs, best first; chunks sharing no term are left out."""
        if top_k <= 0 or not self.ids:
            return []
        scores: dict[int, float] = defaultdict(float)
        avg = self._avg_length or 1.0
        for term in dict.fromkeys(tokenize(query)):
            postings = self._postings.get(term)
            if not postings:
                continue
            idf = self.idf(term)
            for doc, tf in postings:
                norm = self.k1 * (1.0 - self.b + self.b * self._lengths[doc] / avg)
                scores[doc] += idf * tf * (self.k1 + 1.0) / (tf + norm)
        # Equal scores go to the earlier chunk, so results do not depend on dict order.
        best = nlargest(top_k, scores.items(), key=lambda item: (item[1], -item[0]))
        return [(self.ids[doc], score) for doc, score in best if score > 0.0]
