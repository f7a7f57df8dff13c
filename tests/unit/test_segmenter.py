"""The keyword index's segmenter (jieba-rs) gives exactly jieba's search-mode tokens, so switching to it left every
stored token, keyword count and keyword ranking as it was."""

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jieba
import pytest
from llama_index.core.node_parser import SentenceSplitter

from shared.ingest.text_normalize import normalize_text
from shared.store.segmenter import cut_for_search

REPO = Path(__file__).resolve().parents[2]

# Where jieba's HMM step splits what jieba-rs would keep whole, and other mixed text.
EDGE_CASES = [
    "3.UNIX 与 4.CPU 调度",
    "C-SCAN 和 SCAN 磁盘调度",
    "Ｃ＋＋和C#以及.NET 3.5% 的增长",
    "iPhone 15 Pro 的 A17 芯片",
    "TCP/IP 协议栈与 x86_64 架构",
    "e-mail 地址 a.b@c.com，2023年3月5日上午10:30",
    "中华人民共和国国务院",
    "vLLM 的 PagedAttention，KV cache！",
    "",
    "   ",
]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _sample() -> list[str]:
    """docs/kb's chunks as the index cuts them, every question the benches and tests ask, and the edge cases."""
    splitter = SentenceSplitter(chunk_size=512, chunk_overlap=64)
    texts = [
        chunk
        for path in sorted((REPO / "docs" / "kb").iterdir())
        for chunk in splitter.split_text(normalize_text(path.read_text()))
    ]
    questions = ["bench/data/corpus_questions.json", "bench/data/corpus_questions_check.json"]
    questions.append("tests/data/qa_sample.json")
    for name in questions:
        texts += _strings(json.loads((REPO / name).read_text()))
    for line in (REPO / "docs" / "kb-eval.jsonl").read_text().splitlines():
        texts += _strings(json.loads(line))
    return [normalize_text(t) for t in texts] + EDGE_CASES


@pytest.fixture(scope="module")
def reference() -> Any:
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def test_the_segmenter_gives_jiebas_search_mode_tokens(reference: Any) -> None:
    sample = _sample()
    assert len(sample) > 100
    differing = [t for t in sample if cut_for_search(t) != reference.lcut_for_search(t)]
    assert differing == []


def test_a_run_of_latin_letters_and_digits_is_split_as_jieba_splits_it(reference: Any) -> None:
    assert cut_for_search("3.UNIX") == ["3", ".", "UNIX"] == reference.lcut_for_search("3.UNIX")
