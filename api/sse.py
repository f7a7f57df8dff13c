"""Turn a relayed event stream into an SSE response (sse-starlette), with `: ping` comments."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi import Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.relay import EventBatch
from shared.settings import Settings

# Proxies must neither cache nor buffer a token stream: a buffering proxy (nginx unless told
# `X-Accel-Buffering: no`) holds tokens back until its buffer fills (docs/operations.md, "Keep-alive and proxies").
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping")


async def _frames(batches: AsyncIterator[EventBatch], event_id: Callable[[int], str]) -> AsyncIterator[bytes]:
    """One chunk per batch: the events that were ready together go out in one write."""
    async for batch in batches:
        yield b"".join(
            ServerSentEvent(id=event_id(event.seq), event=event.event.value, data=event.data_json()).encode()
            for event in batch
        )


def event_source_response(
    events: AsyncIterator[EventBatch], settings: Settings, event_id: Callable[[int], str] = str
) -> EventSourceResponse:
    """SSE of a query stream; `event_id` turns a seq into the `id:` a reconnect sends back."""
    return EventSourceResponse(
        _frames(events, event_id), ping=settings.PING_INTERVAL_S, ping_message_factory=_ping, headers=STREAM_HEADERS
    )
