"""The tsvector literal a PostgreSQL chunk row stores: its tokens quoted, with their first 16 positions."""

from __future__ import annotations

from shared.store.postgres_store import TSVECTOR_MAX_BYTES, tsvector_literal


def test_each_token_once_with_its_positions() -> None:
    assert tsvector_literal(["缓存", "kv", "缓存", "键"]) == "'缓存':1,3 'kv':2 '键':4"
    assert tsvector_literal([]) == ""


def test_quotes_and_backslashes_are_doubled() -> None:
    assert tsvector_literal(["it's", "a\\b", "ok"]) == "'it''s':1 'a\\\\b':2 'ok':3"


def test_a_token_keeps_its_first_16_positions_and_none_past_16383() -> None:
    assert tsvector_literal(["x"] * 20) == "'x':" + ",".join(str(i) for i in range(1, 17))
    tokens = ["pad"] * 16400 + ["late"]
    assert tsvector_literal(tokens).endswith("'late':16383")


def test_a_literal_over_a_page_drops_positions_then_tokens() -> None:
    many = [f"t{i:05d}" for i in range(2000)]
    literal = tsvector_literal(many)
    assert ":" not in literal and literal.startswith("'t00000' 't00001'")
    assert len(literal.encode()) <= TSVECTOR_MAX_BYTES < len(" ".join(f"'{t}'" for t in many).encode())
