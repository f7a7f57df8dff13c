"""Retrieval metrics and the relevance rule on hand-made rankings (shared/evaluation/)."""

from __future__ import annotations

import math

import pytest

from shared.eval_set import RelevantChunk
from shared.evaluation.metrics import first_rank, hit_at, ndcg_at, percentile, reciprocal_rank
from shared.evaluation.relevance import RelevanceRule
from shared.evaluation.result import ModeMetrics, outcome


def test_first_rank_is_one_based_and_none_without_a_hit() -> None:
    assert first_rank([False, False, True, True]) == 3
    assert first_rank([True]) == 1
    assert first_rank([False, False]) is None
    assert first_rank([]) is None


def test_hit_and_reciprocal_rank_count_only_within_k() -> None:
    assert hit_at(3, 3) == 1.0 and hit_at(4, 3) == 0.0 and hit_at(None, 5) == 0.0
    assert reciprocal_rank(1, 5) == 1.0
    assert reciprocal_rank(4, 5) == 0.25
    assert reciprocal_rank(6, 5) == 0.0 and reciprocal_rank(None, 5) == 0.0


def test_ndcg_with_binary_gains() -> None:
    # one relevant chunk expected, found at rank 2: 1/log2(3) over the ideal 1/log2(2)
    assert ndcg_at([False, True, False], 3, 1) == pytest.approx(1 / math.log2(3))
    assert ndcg_at([True, False, False], 3, 1) == 1.0
    # two expected, found at ranks 1 and 3
    assert ndcg_at([True, False, True], 3, 2) == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    # only the first k count
    assert ndcg_at([False, False, True], 2, 1) == 0.0
    # more matching chunks than relevant entries never exceed 1
    assert ndcg_at([True, True, True], 3, 1) == 1.0
    assert ndcg_at([False], 1, 0) == 0.0


def test_percentile_interpolates_linearly() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(v) for v in range(1, 101)], 95) == pytest.approx(95.05)


def test_mode_metrics_average_the_cases_and_report_cutoffs_up_to_k() -> None:
    outcomes = [
        outcome(1, "a", [True, False, False, False, False], 1, 5, 10.0),
        outcome(2, "b", [False, False, True, False, False], 1, 5, 20.0),
        outcome(3, "c", [False] * 5, 1, 5, 30.0),
        outcome(4, "d", [False, False, False, False, True], 1, 5, 40.0),
    ]
    assert [o.rank for o in outcomes] == [1, 3, None, 5]
    metrics = ModeMetrics.of("hybrid", 5, outcomes)
    assert metrics.hit_at == {1: 0.25, 3: 0.5, 5: 0.75}
    assert metrics.mrr == round((1 + 1 / 3 + 0 + 1 / 5) / 4, 4)
    assert metrics.ndcg == round((1 + 1 / math.log2(4) + 0 + 1 / math.log2(6)) / 4, 4)
    assert metrics.latency_ms_p50 == 25.0
    assert ModeMetrics.of("bm25", 2, outcomes).hit_at.keys() == {1, 2}


def test_relevant_by_chunk_id_or_text_either_way_ignoring_whitespace() -> None:
    rule = RelevanceRule(
        [
            RelevantChunk(document="a.md", chunk_id="c1", text="unrelated"),
            RelevantChunk(document="b.md", text="长任务场景通常把\n预取倍数设为 1"),
        ]
    )
    assert rule.is_relevant("c1", "anything", "x.md")
    # the chunk holds the passage, split by a line break and spaces differently
    assert rule.is_relevant("c9", "前文。长任务场景 通常把预取倍数\n设为1。后文", "kb/b.md")
    # the passage holds the chunk
    assert rule.is_relevant("c9", "预取倍数", "kb/b.md")
    assert not rule.is_relevant("c9", "预取数量", "kb/b.md")
    assert not rule.is_relevant("c9", "   ", "kb/b.md")


def test_documents_count_only_when_an_entry_gives_no_text() -> None:
    by_document = RelevanceRule([RelevantChunk(document="任务队列.md", text="")])
    assert by_document.is_relevant("c", "whatever", "kb/任务队列.md")
    assert by_document.is_relevant("c", "whatever", "任务队列.md")
    assert not by_document.is_relevant("c", "whatever", "kb/x任务队列.md")
    with_text = RelevanceRule([RelevantChunk(document="任务队列.md", text="幂等")])
    assert not with_text.is_relevant("c", "whatever", "kb/任务队列.md")
