"""The evaluation set format (shared/eval_set.py): what `ragq feedback export` writes an evaluation reads back."""

from __future__ import annotations

import io

import pytest
from pydantic import ValidationError

from shared.eval_set import EvalCase, RelevantChunk, read_eval_set, write_eval_set
from shared.feedback import Feedback, Rating
from shared.streams.events import SourcePayload


def _feedback(job_id: str, rating: Rating, comment: str | None) -> Feedback:
    source = SourcePayload(
        index=1,
        document="kb/kv.md",
        location="KV 缓存 › 代价",
        doc_id="d1",
        chunk_id="c1",
        score=0.8,
        text="显存\n占用",
    )
    return Feedback(
        job_id=job_id,
        collection="demo",
        question="KV 缓存的代价是什么？",
        rating=rating,
        comment=comment,
        given_at=1.0,
        sources=[source],
    )


def test_rated_answers_written_as_json_lines_read_back_as_the_same_cases() -> None:
    cases = [
        EvalCase.from_feedback(_feedback("a" * 32, Rating.UP, None)),
        EvalCase.from_feedback(_feedback("b" * 32, Rating.DOWN, "漏了")),
    ]
    out = io.StringIO()
    assert write_eval_set(cases, out) == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "显存" in lines[0]  # one line each, the text's newline escaped, Chinese as is
    assert list(read_eval_set([lines[0], "", "  ", lines[1]])) == cases
    assert cases[1].relevant == [
        RelevantChunk(document="kb/kv.md", location="KV 缓存 › 代价", chunk_id="c1", text="显存\n占用")
    ]


def test_a_hand_written_case_needs_only_a_question_and_relevant_chunks() -> None:
    line = '{"question": "什么是 KV 缓存？", "relevant": [{"document": "kv.md", "text": "KV 缓存保存键值向量"}]}'
    (case,) = read_eval_set([line])
    assert case.rating is None and case.relevant[0].location is None and case.relevant[0].chunk_id is None


def test_a_line_without_a_question_is_refused() -> None:
    with pytest.raises(ValidationError):
        list(read_eval_set(['{"relevant": []}']))
