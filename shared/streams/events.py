"""The query-stream event contract: names, payload shape and the wire form on Redis and SSE."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class EventName(StrEnum):
    """SSE event names on a query stream."""

    SOURCES = "sources"
    TOKEN = "token"
    DONE = "done"
    ERROR = "error"


class JobEventName(StrEnum):
    """SSE event names on `GET /v1/jobs/{id}/events`: the job record on every change, then once at the end."""

    PROGRESS = "progress"
    END = "end"


TERMINAL_EVENTS = frozenset({EventName.DONE, EventName.ERROR})

# Field name of the event JSON inside each replay-buffer (Redis Stream) entry.
REPLAY_FIELD = "e"


class SourcePayload(BaseModel):
    """One retrieved chunk; a `sources` event's data is the list of them, best first."""

    index: int
    document: str
    location: str | None = None
    doc_id: str
    chunk_id: str
    score: float
    text: str
    # The reranker's relevance score when the reranking stage ordered the sources (RERANK_PROVIDER), else null.
    rerank_score: float | None = None


class TokenPayload(BaseModel):
    """A `token` event's data: the answer text produced since the previous `token` event."""

    text: str


class AnswerTimings(BaseModel):
    retrieval: float
    first_token: float
    total: float
    rerank: float | None = None  # part of `retrieval`; null when no reranker ran


class RerankOutcome(BaseModel):
    """What the reranking stage did: `applied` false with an `error` means the sources keep the fused order."""

    applied: bool
    reranker: str
    ms: float
    candidates: int | None = None
    error: str | None = None


class DonePayload(BaseModel):
    """A `done` event's data, which is also the query job's `result`."""

    tokens: int
    sources: int
    answerer: str
    question: str
    mode: str
    timings_ms: AnswerTimings
    rerank: RerankOutcome | None = None  # null when no reranker is configured or the question asked for none


class ErrorPayload(BaseModel):
    """An `error` event's data (and the failed job's `error`): a stable `code` and a message a person can act on."""

    code: str
    message: str


EventPayload = TokenPayload | ErrorPayload | DonePayload | list[SourcePayload]


def payload_json(payload: EventPayload) -> str:
    """An event's `data` as the JSON written to the replay buffer (non-ASCII kept as is)."""
    if isinstance(payload, list):
        return "[" + ",".join(item.model_dump_json() for item in payload) + "]"
    return payload.model_dump_json()


class StreamEvent(BaseModel):
    """One event of a query stream; `seq` starts at 1 and is the SSE `id:`."""

    seq: int
    event: EventName
    data: Any

    @property
    def is_terminal(self) -> bool:
        return self.event in TERMINAL_EVENTS

    def to_wire(self) -> str:
        return json.dumps({"seq": self.seq, "event": self.event.value, "data": self.data}, ensure_ascii=False)

    @classmethod
    def from_wire(cls, raw: str | bytes) -> StreamEvent:
        return cls.model_validate_json(raw)

    def data_json(self) -> str:
        """The SSE `data:` payload."""
        return json.dumps(self.data, ensure_ascii=False)

    def token(self) -> TokenPayload:
        return TokenPayload.model_validate(self.data)

    def error(self) -> ErrorPayload:
        return ErrorPayload.model_validate(self.data)

    def done(self) -> DonePayload:
        return DonePayload.model_validate(self.data)

    def sources(self) -> list[SourcePayload]:
        return [SourcePayload.model_validate(item) for item in self.data]


class ErrorCode(StrEnum):
    """Stable `code` values for `error` events and failed jobs."""

    UPSTREAM = "upstream_error"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    RATE_LIMITED = "upstream_rate_limited"
    WORKER_LOST = "worker_lost"
    INTERNAL = "internal_error"
    CANCELLED = "cancelled"
    QUEUE_TIMEOUT = "queue_timeout"
    NOT_FOUND = "not_found"
    EMBEDDING_MISMATCH = "embedding_mismatch"
    # The API lost Redis while relaying a stream; the job itself may still end otherwise.
    REDIS_UNAVAILABLE = "redis_unavailable"


CANCELLED_MESSAGE = "the query was cancelled (DELETE /v1/queries/{job_id})"
