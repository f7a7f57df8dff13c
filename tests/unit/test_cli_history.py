"""`ragq chat` keeps sending a long conversation without ever passing the server's history limits."""

from __future__ import annotations

from cli.answers import HISTORY_CHARS, HISTORY_MESSAGES, _recent
from shared.settings import Settings


def _turns(pairs: int, answer_chars: int) -> list[dict[str, str]]:
    history: list[dict[str, str]] = []
    for n in range(pairs):
        history += [{"role": "user", "content": f"问题 {n}"}, {"role": "assistant", "content": "答" * answer_chars}]
    return history


def test_a_long_conversation_sends_only_its_latest_turns_within_the_server_limits() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert HISTORY_MESSAGES <= settings.MAX_HISTORY_TURNS and HISTORY_CHARS <= settings.MAX_HISTORY_CHARS
    kept = _recent(_turns(40, 100))
    assert len(kept) == HISTORY_MESSAGES and kept[-2]["content"] == "问题 39" and kept[0]["role"] == "user"


def test_long_answers_drop_the_oldest_pairs_first() -> None:
    kept = _recent(_turns(5, 3000))
    assert sum(len(m["content"]) for m in kept) <= HISTORY_CHARS
    assert kept and kept[0]["role"] == "user" and kept[-2]["content"] == "问题 4"
