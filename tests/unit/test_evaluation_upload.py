"""Reading an uploaded evaluation set (shared/evaluation/upload.py): every case kept with its line, bad lines named."""

from __future__ import annotations

import pytest

from shared.evaluation.upload import EvalSetError, parse_eval_set

GOOD = b'{"question": "q", "relevant": [{"document": "a.md", "text": "t"}]}'


def test_cases_keep_their_line_numbers_across_blank_lines() -> None:
    cases, lines = parse_eval_set(b"\n".join([GOOD, b"", b"  ", GOOD]) + b"\n", max_cases=10)
    assert [c.question for c in cases] == ["q", "q"]
    assert lines == [1, 4]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (GOOD + b"\n{oops", "line 2: not JSON"),
        (b'{"question": "q"}', "line 1: relevant: Field required"),
        (b'{"question": " ", "relevant": [{"document": "a", "text": "t"}]}', "line 1: question is empty"),
        (b'{"question": "q", "relevant": [{"document": "", "text": ""}]}', "line 1: relevant.0: give a text"),
        (b"\xff\xfe", "the evaluation set is not UTF-8"),
        (b"\n", "the evaluation set has no cases"),
    ],
)
def test_a_bad_set_is_refused_naming_the_line(body: bytes, message: str) -> None:
    with pytest.raises(EvalSetError) as refused:
        parse_eval_set(body, max_cases=10)
    assert str(refused.value).startswith(message)


def test_every_bad_line_is_named_up_to_five() -> None:
    with pytest.raises(EvalSetError) as refused:
        parse_eval_set(b"\n".join([b"x"] * 8), max_cases=100)
    assert str(refused.value).count("not JSON") == 5


def test_more_cases_than_allowed_are_refused() -> None:
    with pytest.raises(EvalSetError, match="EVAL_MAX_CASES"):
        parse_eval_set(b"\n".join([GOOD] * 3), max_cases=2)
