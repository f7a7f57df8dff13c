"""Admission control at the door: refuse a new question before any work when the stack cannot take it.

Every route that creates a query job (`POST /v1/queries`, `GET /stream_chat`, `POST /v1/chat/completions`) is
guarded here, before its body is read or validated, so a refusal costs two Redis round trips and a cached
answer. Past `MAX_QUEUED_QUERIES` query jobs queued or running it answers 429 with `Retry-After`; with no
worker consuming the `query` queue, 503 naming it. Either way nothing is recorded or queued.

Deliberately, the limit is checked here and the job counted where it is created (api/job_records.py), so
requests arriving in the same instant may pass the limit by their number: a bound, not an exact quota. That keeps
a refusal cheap (decided before the body is read); an exact quota would have to reserve a slot at the door and
give it back on every later refusal or failure.
A `/stream_chat` reconnect (an EventSource's `Last-Event-ID`) resumes a job and is never refused.
"""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis
import redis.exceptions
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_json
from api.queue_workers import ConsumerProbe
from shared import keys
from shared.jobs.tasks import QUERY_QUEUE
from shared.ops.metrics_store import REJECTIONS, count
from shared.settings import Settings

GUARDED = {("POST", "/v1/queries"), ("GET", "/stream_chat"), ("POST", "/v1/chat/completions")}


async def open_queries(redis: aioredis.Redis) -> int:
    """Query jobs queued or running, all API processes together."""
    return int(await redis.zcard(keys.open_queries_key()))


async def refusal(
    redis: aioredis.Redis, probe: ConsumerProbe, settings: Settings
) -> tuple[int, str, str, dict[str, str]] | None:
    """(status, code, message, headers) when a new question must be refused, else None."""
    if settings.ADMISSION_REQUIRE_CONSUMER:
        by_queue = await probe.by_queue()
        if by_queue is None:
            return 503, "broker_unavailable", "could not reach the workers through the broker", {}
        if not by_queue.get(QUERY_QUEUE):
            message = f"no worker consumes the `{QUERY_QUEUE}` queue; start one (see `make up`) and ask again"
            return 503, "no_query_workers", message, {"Retry-After": str(settings.ADMISSION_RETRY_AFTER_S)}
    queued = await open_queries(redis)
    if queued >= settings.MAX_QUEUED_QUERIES:
        message = (
            f"{queued} questions are queued or being answered, the limit is {settings.MAX_QUEUED_QUERIES} "
            f"(MAX_QUEUED_QUERIES); ask again in {settings.ADMISSION_RETRY_AFTER_S} s"
        )
        return 429, "too_many_queries", message, {"Retry-After": str(settings.ADMISSION_RETRY_AFTER_S)}
    return None


class AdmissionMiddleware:
    """Pure ASGI (streams pass through untouched); uses the Redis client and probe the lifespan built."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"].rstrip("/")) not in GUARDED:
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/stream_chat") and "last-event-id" in Headers(scope=scope):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        client = cast(aioredis.Redis, state.redis)
        try:
            refused = await refusal(client, state.consumers, state.settings)
        except redis.exceptions.ConnectionError as exc:
            refused = 503, "redis_unavailable", f"Redis is unavailable or saturated: {exc}", {}
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, code, message, headers = refused
        if code != "redis_unavailable":
            await count(client, REJECTIONS, {"reason": code})
        response = error_json(status, code, message)
        response.headers.update(headers)
        await response(scope, receive, send)
