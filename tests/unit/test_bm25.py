import math
import subprocess
import sys
from pathlib import Path

import pytest

from shared.store.bm25 import BM25Index, tokenize

REPO = Path(__file__).resolve().parents[2]


def test_tokens_are_lower_case_words_without_punctuation_or_spaces() -> None:
    assert tokenize("vLLM 的 PagedAttention，KV cache！") == ["vllm", "的", "pagedattention", "kv", "cache"]


def test_search_mode_also_emits_the_words_inside_a_compound() -> None:
    assert {"中华", "人民", "共和国", "中华人民共和国"} <= set(tokenize("中华人民共和国"))


def test_full_width_letters_match_their_ascii_form() -> None:
    # Indexed text is normalised (NFKC); a query typed in full width must still match it.
    assert tokenize("ＫＶ　缓存") == tokenize("KV 缓存")


def test_jieba_loads_lazily_and_quietly() -> None:
    code = (
        "import sys; import shared.store.bm25 as m; assert 'jieba' not in sys.modules, 'jieba imported eagerly'; "
        "print(m.tokenize('中文分词'))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "Building prefix dict ..." log lines
    assert "分词" in done.stdout


def test_score_is_okapi_bm25_with_k1_1_5_and_b_0_75() -> None:
    index = BM25Index(["a", "b", "c"], ["apple banana", "apple apple cherry date", "egg"])
    avg_length = 7 / 3
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 1 * 2.5 / (1 + 1.5 * (1 - 0.75 + 0.75 * 2 / avg_length))
    assert index.search("banana", 3) == [("a", pytest.approx(expected))]


def test_a_rare_term_outweighs_a_common_one() -> None:
    index = BM25Index(["a", "b", "c"], ["显存 错误码 E1024", "显存 调度", "显存 量化"])
    ranked = index.search("显存 E1024", 3)
    assert ranked[0][0] == "a"
    assert ranked[0][1] > 2 * ranked[1][1]


def test_a_term_in_every_chunk_still_scores_above_zero() -> None:
    # Okapi's original IDF is negative here and would rank these chunks below ones without the term.
    index = BM25Index(["a", "b", "c"], ["显存 调度", "显存 量化", "显存"])
    assert [i for i, _ in index.search("显存", 3)] == ["c", "a", "b"]
    assert all(score > 0 for _, score in index.search("显存", 3))


def test_a_repeated_query_word_counts_once() -> None:
    index = BM25Index(["a", "b"], ["kv 缓存", "缓存 调度"])
    assert index.search("kv kv kv 缓存", 2) == index.search("kv 缓存", 2)


def test_more_occurrences_and_shorter_chunks_rank_higher() -> None:
    index = BM25Index(
        ["once", "twice", "long"],
        ["kv 缓存", "kv kv 缓存", "kv 缓存 连续 批处理 调度 请求 插入 移出 队列"],
    )
    assert [i for i, _ in index.search("kv", 3)] == ["twice", "once", "long"]


def test_chunks_sharing_no_term_are_not_returned() -> None:
    index = BM25Index(["a", "b"], ["KV 缓存", "量化 权重"])
    assert [i for i, _ in index.search("缓存", 10)] == ["a"]
    assert index.search("流水线", 10) == []
    assert index.search("，。！", 10) == []


def test_top_k_limits_the_results() -> None:
    index = BM25Index([str(i) for i in range(10)], ["显存"] * 10)
    assert len(index.search("显存", 3)) == 3
    assert index.search("显存", 0) == []


def test_an_empty_index_finds_nothing() -> None:
    assert BM25Index([], []).search("显存", 5) == []


def test_ids_and_texts_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 ids but 1 texts"):
        BM25Index(["a", "b"], ["x"])
