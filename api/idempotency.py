"""Idempotency-Key on job submissions: a retried submit with the same key and body returns the same job.

A client that loses its connection before it saw the answer (httpx: "Server disconnected without sending a
response") cannot know whether its job was created. With an `Idempotency-Key` header it can simply send
the request again: the same key with the same request returns the first job's response (same `job_id`,
status and body, plus `Idempotent-Replayed: true`); the same key with another request is refused with 409
`idempotency_key_reused`.

Deliberate choices:
- Keys are scoped per route (`queries`, `documents`, `index-jobs`, `evaluations`) and per API key (api/auth.py):
  another caller sending the same Idempotency-Key gets a job of its own, never the first caller's. The
  collection in the path is part of the fingerprint, so one key reused for another collection is a 409.
- Race-safe: the first request reserves the key with SET NX (fingerprint plus a pending marker), creates the
  job, then stores the response. A concurrent request with the same key waits for that response instead of
  creating a second job; if the owner fails, it releases the reservation and the next attempt runs afresh.
- Only accepted submissions are remembered. A refused one (4xx, 503) releases the key, so a retry after the
  client fixed its request (or Redis came back) is evaluated again.
- A reservation whose owner died (the API process killed mid-request) expires after PENDING_TTL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import redis.asyncio as aioredis
from fastapi import Depends, Header, Response
from pydantic import BaseModel
from redis.exceptions import RedisError

from api.auth import Principal, authenticate
from api.errors import ApiError
from shared import keys
from shared.settings import Settings

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"[!-~]{1,255}")  # visible ASCII, no spaces: UUIDs, ULIDs, "order-42:retry"
PENDING_TTL_S = 120  # a reservation outlives any submit (uploads are stored before the key is reserved)
POLL_S = 0.05

Model = TypeVar("Model", bound=BaseModel)

# Delete the reservation only if it is still ours (it may have expired and been taken by another request).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class IdempotencyKey:
    """The header's value and the caller it belongs to (its key id; "" with keys off)."""

    value: str
    owner: str

    def __str__(self) -> str:
        return self.value


async def idempotency_key_header(
    principal: Annotated[Principal, Depends(authenticate)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="Optional. Send the same key again to retry this submit safely: you get the job the "
            "first attempt created instead of a second one. 1-255 visible ASCII characters (a UUID is ideal); "
            "remembered for IDEMPOTENCY_TTL_S (24 h). The same key with another request: 409.",
        ),
    ] = None,
) -> IdempotencyKey | None:
    """The request's Idempotency-Key, or a 422 `invalid_idempotency_key` if it is not 1-255 visible ASCII."""
    if idempotency_key is None:
        return None
    if not KEY_PATTERN.fullmatch(idempotency_key):
        raise ApiError(
            422,
            "invalid_idempotency_key",
            f"{HEADER} must be 1-255 visible ASCII characters without spaces (a UUID, for instance); "
            f"got {len(idempotency_key)} character(s)",
        )
    return IdempotencyKey(idempotency_key, principal.owner)


IdempotencyKeyDep = Annotated[IdempotencyKey | None, Depends(idempotency_key_header)]


def request_fingerprint(request: Any) -> str:
    """sha256 of the request's canonical JSON (sorted keys, no whitespace, UTF-8)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reused(key: IdempotencyKey) -> ApiError:
    return ApiError(
        409,
        "idempotency_key_reused",
        f"{HEADER} {key.value!r} was already used for a different request on this route; "
        "use a new key for a new request",
    )


async def idempotent(
    redis: aioredis.Redis,
    settings: Settings,
    scope: str,
    key: IdempotencyKey | None,
    fingerprint: str,
    submit: Callable[[], Awaitable[Model]],
    model: type[Model],
    response: Response,
) -> Model:
    """Run `submit` once per (scope, key): later calls with the same fingerprint get its stored response, kept for
    IDEMPOTENCY_TTL_S; a call meeting another still running waits for it up to IDEMPOTENCY_WAIT_S."""
    ttl_s, wait_s = settings.IDEMPOTENCY_TTL_S, settings.IDEMPOTENCY_WAIT_S
    if key is None:
        return await submit()
    # One namespace per API key: the same header value from two callers never meets (owner "" = keys off).
    redis_key = keys.idempotency_key(f"{scope}:{key.owner}" if key.owner else scope, key.value)
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        pending = json.dumps({"fingerprint": fingerprint, "pending": secrets.token_hex(8)})
        if await redis.set(redis_key, pending, nx=True, ex=PENDING_TTL_S):
            return await _run_reserved(redis, redis_key, pending, fingerprint, submit, ttl_s)
        raw = await redis.get(redis_key)
        if raw is None:  # released or expired between our SET and GET: try to reserve it again
            continue
        record = json.loads(raw)
        if record["fingerprint"] != fingerprint:
            raise _reused(key)
        if "body" in record:
            response.headers[REPLAYED_HEADER] = "true"
            return model.model_validate(record["body"])
        if asyncio.get_running_loop().time() > deadline:
            raise ApiError(
                409,
                "idempotency_key_in_progress",
                f"a request with {HEADER} {key.value!r} is still being processed; retry in a moment",
            )
        await asyncio.sleep(POLL_S)


async def _run_reserved(
    redis: aioredis.Redis,
    redis_key: str,
    pending: str,
    fingerprint: str,
    submit: Callable[[], Awaitable[Model]],
    ttl_s: int,
) -> Model:
    try:
        result = await submit()
    except BaseException:
        with contextlib.suppress(RedisError):  # Redis down: the reservation expires by itself
            await redis.eval(_RELEASE, 1, redis_key, pending)  # type: ignore[misc]
        raise
    record = {"fingerprint": fingerprint, "body": result.model_dump(mode="json")}
    await redis.set(redis_key, json.dumps(record), ex=ttl_s)
    return result
