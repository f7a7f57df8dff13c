"""The answers a route gives besides its success, for `responses=`: the OpenAPI schema says what really comes back.

Every error has the one shape of api/errors.py. A 422 is declared with that shape too: FastAPI would otherwise
document its own `HTTPValidationError` body, which our handler never sends. tests/e2e/test_schema_fuzz.py checks
every status, content type and body the running API sends against these declarations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from api.errors import ErrorResponse

WHY = {
    400: "The body cannot be parsed (not JSON, not UTF-8, a broken multipart form)",
    401: "Missing or unknown API key (API_KEYS), or a tampered or expired stream token",
    403: "A path outside the allowed import roots",
    404: "Unknown or expired job, collection, document or path",
    409: "Conflicts with the current state (another embedding model, a finished job, a reused Idempotency-Key)",
    410: "The job's events expired (REPLAY_TTL_S)",
    413: "Too large: a question over MAX_QUESTION_CHARS, an upload over its limits",
    415: "Wrong content type or unsupported file type",
    422: "Invalid input; the message names each bad field",
    429: "Too many questions queued (MAX_QUEUED_QUERIES); retry after `Retry-After` seconds",
    502: "The answer failed upstream (the error event's code and message)",
    503: "Redis, the broker or the workers are unavailable",
}

# Refused at the door by admission control (api/admission.py) on every route that asks a question.
ASKING = (429, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these error statuses, each with the error shape and why it happens."""
    return {status: {"model": ErrorResponse, "description": WHY[status]} for status in statuses}


def no_content(why: str) -> dict[int | str, dict[str, Any]]:
    """A 204 with no body (a reconnect after the end stops an EventSource)."""
    return {204: {"description": why}}


EVENT_STREAM = "text/event-stream"
PLAIN_TEXT = "text/plain"


def sse_event(names: Iterable[str] | None) -> dict[str, Any]:
    """One server-sent event, as OpenAPI before 3.2 describes an event stream: its `event` one of `names`
    (None: no `event:` field, as OpenAI's `data:` frames), `data` a string (JSON or `[DONE]`), `id` a string."""
    properties: dict[str, Any] = {"data": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}}
    if names is not None:
        properties["event"] = {"type": "string", "enum": [str(n) for n in names]}
    return {"type": "object", "properties": properties, "required": ["data"]}


def text_response(*media_types: str, why: str, events: Iterable[str] | None = None) -> dict[int | str, dict[str, Any]]:
    """A 200 whose body is text in these media types (SSE, plain text, Prometheus), not a JSON document."""
    content = {m: {"schema": sse_event(events) if m == EVENT_STREAM else {"type": "string"}} for m in media_types}
    return {200: {"description": why, "content": content}}
