"""LlamaIndex's SentenceSplitter with the same chunks for less tokenizer work.

Splitting was the index worker's largest cost, and counting tokens (tiktoken's BPE) most of that
(docs/benchmarks.md). The stock splitter counts a whole section before splitting it, then each of its pieces,
then again each piece too long for a chunk at the top of the recursive call: on the benchmark corpus it ran the BPE
over 3.5 times the text. Only two things about a count matter: a split's exact size, which decides how splits
merge into chunks and overlap, and, for a longer text, that it is over the chunk size, which only decides to
split it further. So this splitter:

- counts each text once (a piece too long for a chunk is not counted again at the top of its recursive call);
- proves a text over the chunk size without counting it when it holds more CJK characters than
  `MAX_CJK_PER_TOKEN` times the chunk size. Exact, not an estimate: each of those characters starts with a UTF-8
  byte 0xE4-0xE9 that lies in exactly one token, and no token of the encoding holds more than
  `MAX_CJK_PER_TOKEN` such bytes, so the text has at least (CJK characters / MAX_CJK_PER_TOKEN) tokens;
- calls tiktoken's `encode_ordinary` instead of `encode(allowed_special="all")`, whose per-call checks of the
  special tokens cost as much as the BPE of a sentence; the count is the same unless the text spells a special
  token (`<|endoftext|>`), which goes the stock way;
- asks NLTK's sentence tokenizer (Punkt) for sentences only in a text that has one of the only characters Punkt
  ends a sentence at (`.`, `?`, `!`): without one Punkt returns the whole text, which the splitter then treats
  as not split, and Chinese text ends its sentences with `。！？`;
- skips LlamaIndex's per-call callback event, which nothing here listens to.

The CJK bound and `encode_ordinary` hold for LlamaIndex's default tokenizer (cl100k_base) only: a splitter given
another tokenizer counts every text with it, once. The Punkt shortcut applies only when the splitter keeps its
default sentence tokenizer.

The splitting and merging themselves are the stock ones, so the chunks are identical
(tests/unit/test_chunk_splitter.py compares them on the sample documents).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import tiktoken
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.node_parser.text.sentence import _Split
from llama_index.core.utils import get_tokenizer

# The most bytes 0xE4-0xE9 (lead bytes of U+4000-U+9FFF) any cl100k_base token holds (' 生命周期函数'); the
# test derives it again from the encoding's vocabulary.
MAX_CJK_PER_TOKEN = 6
_CJK_LEADS = tuple(bytes([lead]) for lead in range(0xE4, 0xEA))

_SENTENCE_END = re.compile(r"[.?!]")  # Punkt's sentence-ending characters (its PunktLanguageVars.sent_end_chars)

TokenCount = Callable[[str, int], int]  # (text, chunk size) -> its token count, or a lower bound over the chunk size


def cjk_token_floor(text: str) -> int:
    """A lower bound on `text`'s cl100k_base token count from its CJK characters alone."""
    data = text.encode("utf-8")
    return -(-sum(data.count(lead) for lead in _CJK_LEADS) // MAX_CJK_PER_TOKEN)


def cl100k_count(encoding: tiktoken.Encoding, stock: Callable[[str], list[int]], text: str, chunk_size: int) -> int:
    """`len(stock(text))`, with `stock` LlamaIndex's default tokenizer; or, when the text is over `chunk_size` for
    certain, a lower bound over it (then the count is only compared with the chunk size, to split the text
    further)."""
    if len(text) > chunk_size * MAX_CJK_PER_TOKEN and (floor := cjk_token_floor(text)) > chunk_size:
        return floor
    return len(encoding.encode_ordinary(text) if "<|" not in text else stock(text))


def token_count(tokenizer: Callable[[str], list[int]]) -> TokenCount:
    """How `ChunkSplitter` counts with `tokenizer`: `cl100k_count` for LlamaIndex's default, else the tokenizer."""
    if tokenizer is get_tokenizer():
        encoding = getattr(getattr(tokenizer, "func", None), "__self__", None)  # partial(Encoding.encode, ...)
        if isinstance(encoding, tiktoken.Encoding) and encoding.name == "cl100k_base":
            return partial(cl100k_count, encoding, tokenizer)
    return lambda text, _chunk_size: len(tokenizer(text))


def sentences_where_they_can_end(sentences: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """`sentences` (Punkt), called only for a text where a sentence can end; else the text, unsplit."""

    def split(text: str) -> list[str]:
        return sentences(text) if _SENTENCE_END.search(text) else [text]

    return split


class ChunkSplitter(SentenceSplitter):
    """`SentenceSplitter`'s chunks, each text's tokens counted at most once and long texts not counted at all."""

    def __init__(self, **kwargs: Any) -> None:
        default_sentences = kwargs.get("chunking_tokenizer_fn") is None
        super().__init__(**kwargs)
        if default_sentences:
            self._split_fns[1] = sentences_where_they_can_end(self._chunking_tokenizer_fn)

    def _split_text(self, text: str, chunk_size: int) -> list[str]:
        if text == "":
            return [text]
        return self._merge(self._split(text, chunk_size, token_count(self._tokenizer)), chunk_size)

    def _split(  # type: ignore[override]
        self, text: str, chunk_size: int, count: TokenCount, size: int | None = None
    ) -> list[_Split]:
        """The stock `_split` (paragraphs, then sentences, then phrases, then words, recursively until every split
        fits), told the size of a text its caller already counted."""
        if size is None:
            size = count(text, chunk_size)
        if size <= chunk_size:
            return [_Split(text, is_sentence=True, token_size=size)]
        pieces, is_sentence = self._get_splits_by_fns(text)
        splits: list[_Split] = []
        for piece in pieces:
            piece_size = count(piece, chunk_size)
            if piece_size <= chunk_size or len(pieces) == 1:
                # Fits; or cannot be split further, when _merge refuses it as the stock splitter does.
                splits.append(_Split(piece, is_sentence=is_sentence, token_size=piece_size))
            else:
                splits.extend(self._split(piece, chunk_size, count, piece_size))
        return splits
