"""The index worker's splitter: LlamaIndex's SentenceSplitter's chunks exactly, with less tokenizer work."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiktoken
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.utils import get_tokenizer

from shared.ingest.text_normalize import normalize_text
from workers.chunk_splitter import MAX_CJK_PER_TOKEN, ChunkSplitter, cjk_token_floor
from workers.loaders import load_sections

KB = Path(__file__).resolve().parents[2] / "docs" / "kb"


def _kb_texts() -> list[str]:
    texts = [normalize_text(s.text) for path in sorted(KB.iterdir()) for s in load_sections(path, None) if s.text]
    whole = "\n\n".join(texts)
    return [
        *texts,
        whole,
        whole * 3,  # a section long enough to be proved over the chunk size without counting it
        whole.replace("\n", ""),  # no paragraphs: split by sentences
        "".join(ch for ch in whole if ch not in "。，；！？.,;!?\n") * 2,  # no sentences: split by phrases, words
        "KV 缓存 " * 400,  # short words, many separators
    ]


TEXTS = _kb_texts()


@pytest.mark.parametrize(("chunk_size", "overlap"), [(512, 64), (256, 32), (128, 16), (1024, 100)])
def test_the_chunks_are_the_stock_splitters(chunk_size: int, overlap: int) -> None:
    stock = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
    ours = ChunkSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
    for text in TEXTS:
        assert ours.split_text(text) == stock.split_text(text)


def test_a_piece_that_cannot_fit_is_refused_as_the_stock_splitter_refuses_it() -> None:
    text = "𠀀𠀀"  # each of these characters is three tokens
    with pytest.raises(ValueError, match="Single token exceeded chunk size"):
        SentenceSplitter(chunk_size=2, chunk_overlap=0).split_text(text)
    with pytest.raises(ValueError, match="Single token exceeded chunk size"):
        ChunkSplitter(chunk_size=2, chunk_overlap=0).split_text(text)


def test_each_text_is_counted_once_and_a_long_chinese_text_not_at_all() -> None:
    counted: list[str] = []
    stock_counted: list[str] = []
    ours, stock = ChunkSplitter(chunk_size=512, chunk_overlap=64), SentenceSplitter(chunk_size=512, chunk_overlap=64)
    tokenizer = ours._tokenizer
    ours._tokenizer = lambda text: counted.append(text) or tokenizer(text)
    stock._tokenizer = lambda text: stock_counted.append(text) or tokenizer(text)
    long_text = TEXTS[-5]  # the three-fold knowledge base
    assert ours.split_text(long_text) == stock.split_text(long_text)
    assert long_text in stock_counted and long_text not in counted
    assert len(counted) == len(set(counted))  # no text counted twice
    assert sum(map(len, counted)) < 0.7 * sum(map(len, stock_counted))


def test_no_token_of_the_encoding_holds_more_cjk_characters_than_the_bound_assumes() -> None:
    assert get_tokenizer().func.__self__.name == "cl100k_base"  # type: ignore[attr-defined]
    vocabulary = tiktoken.get_encoding("cl100k_base").token_byte_values()
    most = max(sum(1 for byte in token if 0xE4 <= byte <= 0xE9) for token in vocabulary)
    assert most == MAX_CJK_PER_TOKEN


def test_the_floor_never_exceeds_the_count() -> None:
    tokenizer = get_tokenizer()
    for text in TEXTS:
        assert cjk_token_floor(text) <= len(tokenizer(text))
