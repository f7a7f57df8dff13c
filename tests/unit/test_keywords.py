import subprocess
import sys
from pathlib import Path

from shared.store.keywords import index_text, query_terms, tokenize

REPO = Path(__file__).resolve().parents[2]


def test_tokens_are_lower_case_words_without_punctuation_or_spaces() -> None:
    assert tokenize("vLLM 的 PagedAttention，KV cache！") == ["vllm", "的", "pagedattention", "kv", "cache"]


def test_search_mode_also_emits_the_words_inside_a_compound() -> None:
    assert {"中华", "人民", "共和国", "中华人民共和国"} <= set(tokenize("中华人民共和国"))


def test_full_width_letters_match_their_ascii_form() -> None:
    # Indexed text is normalised (NFKC); a query typed in full width must still match it.
    assert tokenize("ＫＶ　缓存") == tokenize("KV 缓存")


def test_the_segmenter_loads_lazily_and_quietly() -> None:
    code = (
        "import sys; import shared.store.keywords as m; "
        "assert not {'jieba', 'rjieba'} & set(sys.modules), 'segmenter imported eagerly'; "
        "print(m.tokenize('中文分词'))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "Building prefix dict ..." log lines
    assert "分词" in done.stdout


def test_a_question_counts_each_term_once_in_order() -> None:
    assert query_terms("缓存 KV 缓存 kv") == ["缓存", "kv"]


def test_the_index_stores_tokens_joined_by_spaces() -> None:
    assert index_text("vLLM 的 KV cache！") == "vllm 的 kv cache"


def test_a_question_searches_what_it_asks_about_not_how_it_asks() -> None:
    # In a small collection 什么 and 是 are rare, so searching them ranks chunks that say "什么是…" first.
    assert query_terms("什么是 Belady 异常？") == ["belady", "异常"]
    assert query_terms("为什么说解码阶段受限于显存带宽？") == ["解码", "阶段", "受限", "限于", "受限于", "显存", "带宽"]


def test_a_negation_is_part_of_the_question() -> None:
    assert query_terms("硬链接为什么不能跨文件系统？") == ["硬", "链接", "不能", "跨", "文件", "系统", "文件系统"]


def test_a_question_made_only_of_question_words_still_searches_them() -> None:
    assert query_terms("是什么？") == ["是", "什么"]


def test_a_latin_letter_is_an_acronym_not_an_article() -> None:
    assert query_terms("A 类地址和 I/O 端口是什么？") == ["a", "类", "地址", "i", "o", "端口"]
