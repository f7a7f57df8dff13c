"""The coalescing rule: first piece at once, then at most one event per window, text unchanged."""

from __future__ import annotations

from shared.streams.coalescer import TokenCoalescer


def test_the_first_piece_goes_out_at_once_then_one_event_per_window() -> None:
    c = TokenCoalescer(window_s=0.015)
    assert c.add("a", now=0.0) == "a"
    assert c.add("b", now=0.005) is None
    assert c.add("c", now=0.010) is None
    assert c.deadline() == 0.015
    assert c.due(now=0.014) is None
    assert c.due(now=0.015) == "bc"
    assert c.deadline() is None
    assert c.add("d", now=0.020) is None  # the window opened by the last event runs to 0.030
    assert c.add("e", now=0.031) == "de"
    assert c.add("f", now=0.032) is None
    assert c.drain() == "f"
    assert c.drain() is None


def test_a_piece_after_a_quiet_window_goes_out_at_once() -> None:
    c = TokenCoalescer(window_s=0.015)
    assert c.add("a", now=0.0) == "a"
    assert c.add("b", now=1.0) == "b"


def test_a_zero_window_publishes_every_piece() -> None:
    c = TokenCoalescer(window_s=0)
    assert [c.add(p, now=0.0) for p in "abc"] == ["a", "b", "c"]
