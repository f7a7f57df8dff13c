"""The index worker's splitter: LlamaIndex's SentenceSplitter's chunks exactly, with less tokenizer work."""

from __future__ import annotations

import subprocess
import sys
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


def test_each_text_is_counted_once_and_a_long_chinese_text_not_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    stock_counted: list[str] = []
    counted: list[str] = []
    stock = SentenceSplitter(chunk_size=512, chunk_overlap=64)
    tokenizer = stock._tokenizer

    def stock_recording(text: str) -> list[int]:
        stock_counted.append(text)
        return tokenizer(text)

    stock._tokenizer = stock_recording
    encode_ordinary = tiktoken.Encoding.encode_ordinary

    def recording(encoding: tiktoken.Encoding, text: str) -> list[int]:
        counted.append(text)
        return encode_ordinary(encoding, text)

    monkeypatch.setattr(tiktoken.Encoding, "encode_ordinary", recording)
    long_text = TEXTS[-5]  # the three-fold knowledge base
    assert ChunkSplitter(chunk_size=512, chunk_overlap=64).split_text(long_text) == stock.split_text(long_text)
    assert counted and long_text in stock_counted and long_text not in counted
    assert len(counted) == len(set(counted))  # no text counted twice
    assert sum(map(len, counted)) < 0.7 * sum(map(len, stock_counted))


def test_a_text_that_spells_a_special_token_is_counted_as_the_stock_splitter_counts_it() -> None:
    text = "文档结尾写着 <|endoftext|> 这个标记。" * 40
    for size in (16, 32):
        stock = SentenceSplitter(chunk_size=size, chunk_overlap=0).split_text(text)
        assert ChunkSplitter(chunk_size=size, chunk_overlap=0).split_text(text) == stock


def test_another_tokenizer_is_used_as_given() -> None:
    def by_characters(text: str) -> list[int]:
        return [ord(ch) for ch in text]

    for text in TEXTS:
        stock = SentenceSplitter(chunk_size=200, chunk_overlap=20, tokenizer=by_characters).split_text(text)
        ours = ChunkSplitter(chunk_size=200, chunk_overlap=20, tokenizer=by_characters)  # type: ignore[call-arg]
        assert ours.split_text(text) == stock


def test_no_token_of_the_encoding_holds_more_cjk_characters_than_the_bound_assumes() -> None:
    assert get_tokenizer().func.__self__.name == "cl100k_base"  # type: ignore[attr-defined]
    vocabulary = tiktoken.get_encoding("cl100k_base").token_byte_values()
    most = max(sum(1 for byte in token if 0xE4 <= byte <= 0xE9) for token in vocabulary)
    assert most == MAX_CJK_PER_TOKEN


def test_the_floor_never_exceeds_the_count() -> None:
    tokenizer = get_tokenizer()
    for text in TEXTS:
        assert cjk_token_floor(text) <= len(tokenizer(text))


def test_a_warmed_up_worker_splits_its_first_long_text_without_loading_anything() -> None:
    script = (
        "import sys\n"
        "from workers.runtime import warm_up_splitting\n"
        "warm_up_splitting(512)\n"
        "before = set(sys.modules)\n"
        "from workers.chunk_splitter import ChunkSplitter\n"
        "ChunkSplitter(chunk_size=16, chunk_overlap=0).split_text('First sentence. Second one! 第三句。' * 8)\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout
