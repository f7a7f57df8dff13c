"""jieba's search-mode segmentation, computed by jieba-rs (the `rjieba` binding) with the same tokens as jieba.

jieba (pure Python) took ~1.1 ms of CPU per 512-token chunk, the largest share of an index worker's CPU; jieba-rs
with the same bundled dictionary takes about a tenth. The two differ in one place, and this module covers it:
jieba's HMM step splits a run of non-Chinese characters that is not a dictionary word on
`[a-zA-Z0-9]+(?:\\.\\d+)?%?` (`3.UNIX` → `3`, `.`, `UNIX`; `C-SCAN` → `C`, `-`, `SCAN`), where jieba-rs keeps the
run whole. So the precise-mode words come from jieba-rs, such runs are split as jieba splits them, and search
mode's extra words (every dictionary 2-gram of a word longer than 2, then every 3-gram of one longer than 3, then
the word) are added here, as jieba adds them. tests/unit/test_segmenter.py holds the equality to jieba.

The dictionary (jieba's dict.txt, built into jieba-rs) loads on first use, in about 0.1 s.
"""

from __future__ import annotations

import re
import threading
from typing import Any

_HAN = re.compile(r"[\u4E00-\u9FD5]")
_JIEBA_SKIP = re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)")  # jieba.finalseg's re_skip

_jieba: Any = None
_lock = threading.Lock()


def _segmenter() -> Any:
    global _jieba
    with _lock:
        if _jieba is None:
            from rjieba import Jieba

            _jieba = Jieba()
        return _jieba


def precise_words(text: str) -> list[str]:
    """jieba-rs's precise-mode words of `text` (HMM on): the words `search_words` expands one by one."""
    return _segmenter().cut(text, True)  # type: ignore[no-any-return]


def search_words(word: str) -> list[str]:
    """What jieba's search mode emits for one precise-mode word: its dictionary sub-words, then the word."""
    is_word = _segmenter().has_word
    n = len(word)
    if n > 1 and not _HAN.search(word) and not is_word(word):
        return [piece for piece in _JIEBA_SKIP.split(word) if piece]
    tokens: list[str] = []
    if n > 2:
        tokens.extend(gram for gram in (word[i : i + 2] for i in range(n - 1)) if is_word(gram))
    if n > 3:
        tokens.extend(gram for gram in (word[i : i + 3] for i in range(n - 2)) if is_word(gram))
    tokens.append(word)
    return tokens


def cut_for_search(text: str) -> list[str]:
    """The tokens of `jieba.lcut_for_search(text)`, in the same order."""
    return [token for word in precise_words(text) for token in search_words(word)]
