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


CANCELLED_MESSAGE = "the query was cancelled (DELETE /v1/queries/{job_id})"
