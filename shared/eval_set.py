"""The evaluation set format: JSON Lines, one `EvalCase` per line (docs/api.md, "Evaluation set format").

`ragq feedback export` writes it from rated answers; an evaluation reads it back with `read_eval_set`. A case's
`relevant` chunks are the ones its answer was given: with rating `up` they answered the question, with `down`
the answer (or they) fell short, and `comment` says how.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO

from pydantic import BaseModel

from shared.feedback import Feedback, Rating


class RelevantChunk(BaseModel):
    """A chunk that counts as relevant to the question: where it is and its text."""

    document: str
    location: str | None = None
    chunk_id: str | None = None
    text: str


class EvalCase(BaseModel):
    """One line of an evaluation set."""

    question: str
    relevant: list[RelevantChunk]
    rating: Rating | None = None
    comment: str | None = None
    collection: str | None = None
    job_id: str | None = None  # the rated query job it came from

    def to_line(self) -> str:
        """The case as one JSON line (non-ASCII kept as is, no newline inside)."""
        return self.model_dump_json()

    @classmethod
    def from_feedback(cls, feedback: Feedback) -> EvalCase:
        relevant = [
            RelevantChunk(document=s.document, location=s.location, chunk_id=s.chunk_id, text=s.text)
            for s in feedback.sources
        ]
        return cls(
            question=feedback.question,
            relevant=relevant,
            rating=feedback.rating,
            comment=feedback.comment,
            collection=feedback.collection,
            job_id=feedback.job_id,
        )


def write_eval_set(cases: Iterable[EvalCase], out: IO[str]) -> int:
    """Write the cases as JSON Lines; returns how many."""
    count = 0
    for case in cases:
        out.write(case.to_line() + "\n")
        count += 1
    return count


def read_eval_set(lines: Iterable[str]) -> Iterator[EvalCase]:
    """The cases of an evaluation set, skipping blank lines; a bad line raises pydantic's ValidationError."""
    for line in lines:
        if line.strip():
            yield EvalCase.model_validate_json(line)
