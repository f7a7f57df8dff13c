"""Per-key limits (shared/key_limits.py), checked and counted in Redis so every API process shares them.

Each check-and-count is one Lua script, so two requests in the same instant cannot both pass a limit of one.

Deliberate choices:
- `requests_per_minute` is a fixed window per UTC minute (`rate_window_key`), counted on every route that needs
  a key (every `/v1` route but `/v1/status`, `/stream_chat`, the OpenAI routes); a refused request is not
  counted. A stream token stands for one job, not a key: its requests are not counted.
- A `max_streams` slot is taken when a query job is created, not when its stream is opened: the job costs a
  worker and an upstream call whether or not anyone listens. It is freed where the job's ending is written
  (shared/streams/replay_log.py: done, error, cancel, the reaper's `worker_lost` and `queue_timeout`), and each
  slot expires after QUEUE_TIMEOUT_S + TASK_TIME_LIMIT_S, which no open job can outlive, as a safety net.
- `questions_per_day` and `tokens_per_day` are checked when a query job is about to be created (after the
  request is validated: a 422 costs no question); the question is counted there, the tokens by the worker as
  the upstream reports them, so the question that crosses the token quota is answered and the next refused.
- "Now" is `app.state.clock` (time.time unless a test sets it), read once per request.
- The RateLimit-* headers (draft-ietf-httpapi-ratelimit-headers) describe `requests_per_minute` on every
  response of a limited route; a 429 of another limit carries that limit's figures instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, cast

import redis.asyncio as aioredis
from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Principal, authenticate
from api.errors import ApiError
from shared import keys
from shared.jobs.records import JobField
from shared.key_limits import KeyLimits, usage_day
from shared.ops.metrics_store import count_key_usage_async
from shared.settings import Settings
from shared.usage import USAGE_TTL_S, UsageField

Clock = Callable[[], float]
RATELIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
STATE_HEADERS = "ratelimit_headers"  # request.state entry the middleware below adds to the response
DAY_S = 86400

RATE_SCRIPT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return {0, used} end
used = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return {1, used}
"""

# KEYS: usage hash of today, the key's open streams. ARGV: max_streams, questions_per_day, tokens_per_day
# (-1: none), now, slot expiry, job id, usage TTL, then the usage field names questions, prompt, completion.
QUESTION_SCRIPT = """
local streams = tonumber(ARGV[1])
if streams >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
  local open = redis.call('ZCARD', KEYS[2])
  if open >= streams then return {'max_streams', open} end
end
local questions = tonumber(ARGV[2])
if questions >= 0 then
  local asked = tonumber(redis.call('HGET', KEYS[1], ARGV[8]) or '0')
  if asked >= questions then return {'questions_per_day', asked} end
end
local tokens = tonumber(ARGV[3])
if tokens >= 0 then
  local used = tonumber(redis.call('HGET', KEYS[1], ARGV[9]) or '0')
  used = used + tonumber(redis.call('HGET', KEYS[1], ARGV[10]) or '0')
  if used >= tokens then return {'tokens_per_day', used} end
end
redis.call('HINCRBY', KEYS[1], ARGV[8], 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
if streams >= 0 then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
  redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[5]) - tonumber(ARGV[4])))
end
return {'', 0}
"""

# KEYS: usage hash of today. ARGV: upload_bytes_per_day (-1: none), bytes, usage TTL, the field name.
UPLOAD_SCRIPT = """
local used = tonumber(redis.call('HGET', KEYS[1], ARGV[4]) or '0')
local limit = tonumber(ARGV[1])
if limit >= 0 and used + tonumber(ARGV[2]) > limit then return {0, used} end
redis.call('HINCRBY', KEYS[1], ARGV[4], tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, used}
"""


def _limit(value: int | None) -> str:
    return "-1" if value is None else str(value)


def seconds_to_next_minute(now: float) -> int:
    return max(1, math.ceil(60 - now % 60))


def seconds_to_next_day(now: float) -> int:
    return max(1, math.ceil(DAY_S - now % DAY_S))  # UTC days: unix time has no leap seconds


def ratelimit_headers(limit: int, remaining: int, reset_s: int) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(max(0, remaining)),
        "RateLimit-Reset": str(reset_s),
    }


def limit_refused(name: str, limit: int, used: int, retry_after_s: int) -> ApiError:
    """The 429 for a key past one of its limits: `rate_limited` per minute or per open stream, else `quota_exceeded`."""
    if name == "requests_per_minute":
        code, message = "rate_limited", f"this key made {used} requests this minute; its limit is {limit}"
    elif name == "max_streams":
        code, message = "rate_limited", f"this key has {used} answers open; its limit is {limit} at once"
    else:
        code, message = "quota_exceeded", f"this key used {used} of its {limit} today (UTC)"
    headers = {"Retry-After": str(retry_after_s), **ratelimit_headers(limit, 0, retry_after_s)}
    return ApiError(429, code, f"{message} ({name}); ask again in {retry_after_s} s", headers)


@dataclass(frozen=True)
class KeyGate:
    """The caller's limits at one instant, for the counts a route makes (questions, uploads)."""

    redis: aioredis.Redis
    settings: Settings
    principal: Principal
    now: float

    @property
    def limits(self) -> KeyLimits:
        return self.principal.limits

    @property
    def day(self) -> str:
        return usage_day_of(self.now)

    async def check_rate(self) -> dict[str, str]:
        """Count this request against `requests_per_minute`; its RateLimit-* headers, or the 429."""
        limit, key_id = self.limits.requests_per_minute, self.principal.key_id
        if limit is None or key_id is None:
            return {}
        window = keys.rate_window_key(key_id, int(self.now // 60))
        script = self.redis.register_script(RATE_SCRIPT)
        passed, used = cast(list[int], await script(keys=[window], args=[limit, 120]))
        reset = seconds_to_next_minute(self.now)
        if not passed:
            raise limit_refused("requests_per_minute", limit, int(used), reset)
        return ratelimit_headers(limit, limit - int(used), reset)

    async def admit_question(self, job_id: str) -> None:
        """Count a question for `job_id` and take its stream slot, or 429 naming the limit it would pass."""
        key_id = self.principal.key_id
        if key_id is None:
            return
        limits, s = self.limits, self.settings
        slot_expiry = self.now + s.QUEUE_TIMEOUT_S + s.TASK_TIME_LIMIT_S
        args: list[str | int | float] = [
            _limit(limits.max_streams),
            _limit(limits.questions_per_day),
            _limit(limits.tokens_per_day),
            self.now,
            slot_expiry,
            job_id,
            USAGE_TTL_S,
            UsageField.QUESTIONS,
            UsageField.PROMPT_TOKENS,
            UsageField.COMPLETION_TOKENS,
        ]
        script = self.redis.register_script(QUESTION_SCRIPT)
        usage, streams = keys.usage_key(key_id, self.day), keys.key_streams_key(key_id)
        name, used = cast(list[str], await script(keys=[usage, streams], args=args))
        if name:
            limit = cast(int, getattr(limits, name))
            wait = s.ADMISSION_RETRY_AFTER_S if name == "max_streams" else seconds_to_next_day(self.now)
            raise limit_refused(name, limit, int(used), wait)
        await count_key_usage_async(self.redis, key_id, {UsageField.QUESTIONS: 1})

    async def count_stream(self, job_id: str) -> None:
        """An answer stream opened (a reconnect is not one), counted for the job's owner: whoever opens it, a
        signed stream token included, it is that key's answer."""
        owner = cast(str | None, await self.redis.hget(keys.job_key(job_id), JobField.OWNER))
        if not owner:
            return
        usage = keys.usage_key(owner, self.day)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(usage, UsageField.STREAMS, 1)
            pipe.expire(usage, USAGE_TTL_S)
            await pipe.execute()
        await count_key_usage_async(self.redis, owner, {UsageField.STREAMS: 1})

    async def admit_upload(self, size: int) -> None:
        """Count `size` uploaded bytes, or 429 if they would pass `upload_bytes_per_day`."""
        key_id = self.principal.key_id
        if key_id is None:
            return
        limit = self.limits.upload_bytes_per_day
        args: list[str | int] = [_limit(limit), size, USAGE_TTL_S, UsageField.UPLOAD_BYTES]
        script = self.redis.register_script(UPLOAD_SCRIPT)
        passed, used = cast(list[int], await script(keys=[keys.usage_key(key_id, self.day)], args=args))
        if not passed:
            assert limit is not None
            raise limit_refused("upload_bytes_per_day", limit, int(used) + size, seconds_to_next_day(self.now))
        await count_key_usage_async(self.redis, key_id, {UsageField.UPLOAD_BYTES: size})


def usage_day_of(now: float) -> str:
    return usage_day(datetime.fromtimestamp(now, UTC))


async def key_gate(request: Request, principal: Annotated[Principal, Depends(authenticate)]) -> KeyGate:
    """Every limited route's dependency: counts the request against `requests_per_minute` (429 past it)."""
    state = request.app.state
    clock: Clock = getattr(state, "clock", time.time)
    gate = KeyGate(state.redis, state.settings, principal, clock())
    headers = await gate.check_rate()
    if headers:
        setattr(request.state, STATE_HEADERS, headers)
    return gate


KeyGateDep = Annotated[KeyGate, Depends(key_gate)]


class RateLimitHeadersMiddleware:
    """Adds the RateLimit-* headers `key_gate` computed to the response, streamed or not, unless it has its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            headers = scope.get("state", {}).get(STATE_HEADERS)
            if message["type"] == "http.response.start" and headers:
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode()) for k, v in headers.items() if k.lower().encode() not in present
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
