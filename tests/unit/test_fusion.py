import pytest

from shared.store.fusion import reciprocal_rank_fusion


def test_score_is_the_sum_of_reciprocal_ranks_with_k_60() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b"], ["b", "c"]]))
    assert fused == {
        "a": pytest.approx(1 / 61),
        "b": pytest.approx(1 / 62 + 1 / 61),
        "c": pytest.approx(1 / 62),
    }


def test_an_item_both_rankings_agree_on_beats_the_top_of_one() -> None:
    fused = reciprocal_rank_fusion([["only-vector", "both", "x"], ["y", "both", "z"]])
    assert [i for i, _ in fused][:2] == ["both", "only-vector"]


def test_k_sets_how_much_the_top_ranks_dominate() -> None:
    assert reciprocal_rank_fusion([["a", "b"]], k=0) == [("a", pytest.approx(1.0)), ("b", pytest.approx(0.5))]
    with pytest.raises(ValueError, match="k must be >= 0"):
        reciprocal_rank_fusion([["a"]], k=-1)


def test_a_repeated_id_counts_once_per_ranking() -> None:
    assert dict(reciprocal_rank_fusion([["a", "a", "b"]]))["a"] == pytest.approx(1 / 61)


def test_ties_keep_first_seen_order() -> None:
    assert [i for i, _ in reciprocal_rank_fusion([["a", "b"], ["b", "a"]])] == ["a", "b"]
    assert [i for i, _ in reciprocal_rank_fusion([["b", "a"], ["a", "b"]])] == ["b", "a"]


def test_no_rankings_fuse_to_nothing() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


def test_a_weight_scales_one_rankings_share_and_breaks_ties_toward_it() -> None:
    fused = reciprocal_rank_fusion([["v"], ["k"]], weights=[1.0, 1.2])
    assert [i for i, _ in fused] == ["k", "v"]
    assert fused[0][1] == pytest.approx(1.2 / 61)


def test_weights_must_match_the_rankings() -> None:
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])
