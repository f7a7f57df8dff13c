"""Feedback on an answer: the rating a person gives a finished query job, and its stored form rag:feedback:{id}.

A feedback keeps its own copy of the question and of the chunks the answer was given, taken when it is first
given: the job record (JOB_TTL_S) and the replay log holding the `sources` event (REPLAY_TTL_S) expire long
before the feedback (FEEDBACK_TTL_S), which feeds evaluation sets (shared/eval_set.py).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, TypeAdapter

from shared.streams.events import SourcePayload

MAX_COMMENT_CHARS = 2000

_SOURCES = TypeAdapter(list[SourcePayload])


class Rating(StrEnum):
    UP = "up"
    DOWN = "down"


class FeedbackRequest(BaseModel):
    """`POST /v1/queries/{id}/feedback`: a second one for the same job replaces the first."""

    rating: Rating = Field(description="`up`: a good answer; `down`: a bad one")
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_COMMENT_CHARS)] | None = Field(
        default=None, description=f"Why, in at most {MAX_COMMENT_CHARS} characters", examples=["名称写错了"]
    )


class Feedback(BaseModel):
    """Feedback as stored and listed: the rating with the question and the chunks the answer was given."""

    job_id: str
    collection: str
    question: str
    rating: Rating
    comment: str | None = None
    given_at: float = Field(description="Unix time of the latest rating (a new one replaces the old)")
    sources: list[SourcePayload] = Field(
        description="The chunks the answer was given, best first; empty if its events had expired (REPLAY_TTL_S) "
        "when the job was first rated"
    )


class FeedbackField(StrEnum):
    """Fields of the hash rag:feedback:{job_id}."""

    JOB_ID = "job_id"
    COLLECTION = "collection"
    QUESTION = "question"
    RATING = "rating"
    COMMENT = "comment"
    GIVEN_AT = "given_at"
    SOURCES = "sources"  # JSON list of SourcePayload
    OWNER = "owner"  # the job's owner key id ("" with keys off): who may list it; never returned
    BY = "by"  # the key id that gave the rating; never returned


def feedback_fields(feedback: Feedback, owner: str, by: str) -> dict[str, str]:
    """The hash fields of one feedback."""
    f = FeedbackField
    return {
        f.JOB_ID: feedback.job_id,
        f.COLLECTION: feedback.collection,
        f.QUESTION: feedback.question,
        f.RATING: feedback.rating.value,
        f.COMMENT: feedback.comment or "",
        f.GIVEN_AT: repr(feedback.given_at),
        f.SOURCES: json.dumps([s.model_dump(mode="json") for s in feedback.sources], ensure_ascii=False),
        f.OWNER: owner,
        f.BY: by,
    }


def parse_feedback(fields: dict[str, str]) -> Feedback:
    """Rebuild a Feedback from its hash (decoded strings)."""
    f = FeedbackField
    return Feedback(
        job_id=fields[f.JOB_ID],
        collection=fields[f.COLLECTION],
        question=fields[f.QUESTION],
        rating=Rating(fields[f.RATING]),
        comment=fields.get(f.COMMENT) or None,
        given_at=float(fields[f.GIVEN_AT]),
        sources=_SOURCES.validate_json(fields.get(f.SOURCES) or "[]"),
    )
