"""Per-key limits in a real Redis (api/key_limits.py), with "now" given to the gate as the API's clock gives it.

Many gates at once stand for many requests, in one or many API processes: the scripts are what makes a limit
exact, so exactly `limit` of them pass however they interleave.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from api.auth import Principal
from api.errors import ApiError
from api.key_limits import KeyGate, usage_day_of
from harness.processes import RedisServer
from shared import keys
from shared.jobs.records import JobKind, initial_fields, new_job_id
from shared.key_limits import KeyLimits
from shared.settings import Settings
from shared.streams.endings import QueryEnding, end_query_async
from shared.usage import UsageField
from tests.support.async_redis import run_with_client

pytestmark = pytest.mark.integration

NOON = 1_796_212_800.0  # 2026-12-02 12:00:00 UTC


@pytest.fixture(scope="module")
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    yield redis_server.url(redis_server.claim_db("key limits"))


def _key(name: str, **limits: int) -> Principal:
    return Principal(key_id=new_job_id()[:16], name=name, limits=KeyLimits(**limits))


def _gate(client: aioredis.Redis, principal: Principal, now: float = NOON) -> KeyGate:
    return KeyGate(client, Settings(), principal, now)


async def _outcomes(calls: list[Awaitable[object]]) -> list[ApiError | None]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if result is not None and not isinstance(result, ApiError | dict):
            raise result  # type: ignore[misc]
    return [r if isinstance(r, ApiError) else None for r in results]


def test_a_key_at_its_rate_gets_429_with_headers_and_another_key_is_unaffected(redis_url: str) -> None:
    busy, other = _key("busy", requests_per_minute=5), _key("other", requests_per_minute=5)

    async def body(client: aioredis.Redis) -> None:
        refused = await _outcomes([_gate(client, busy).check_rate() for _ in range(20)])
        assert sum(r is None for r in refused) == 5  # 20 at once against 5: exactly 5 pass
        error = next(r for r in refused if r is not None)
        assert (error.status_code, error.code) == (429, "rate_limited")
        assert "requests_per_minute" in error.message
        assert error.headers == {
            "Retry-After": "60",
            "RateLimit-Limit": "5",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": "60",
        }
        headers = await _gate(client, other, NOON + 15).check_rate()
        assert headers == {"RateLimit-Limit": "5", "RateLimit-Remaining": "4", "RateLimit-Reset": "45"}
        assert await _gate(client, busy, NOON + 60).check_rate() == {
            "RateLimit-Limit": "5",
            "RateLimit-Remaining": "4",
            "RateLimit-Reset": "60",
        }  # the next minute starts afresh

    run_with_client(redis_url, body)


def test_concurrent_questions_against_a_daily_quota_admit_exactly_that_many(redis_url: str) -> None:
    key = _key("quota", questions_per_day=3)

    async def body(client: aioredis.Redis) -> None:
        refused = await _outcomes([_gate(client, key).admit_question(new_job_id()) for _ in range(12)])
        assert sum(r is None for r in refused) == 3
        error = next(r for r in refused if r is not None)
        assert (error.code, error.headers and error.headers["Retry-After"]) == ("quota_exceeded", "43200")
        assert "questions_per_day" in error.message
        usage = await client.hgetall(keys.usage_key(key.key_id or "", usage_day_of(NOON)))
        assert usage == {UsageField.QUESTIONS: "3"}  # refused questions are not counted

    run_with_client(redis_url, body)


def test_the_token_quota_stops_the_next_question_and_resets_the_next_utc_day(redis_url: str) -> None:
    key = _key("tokens", tokens_per_day=100)
    today = keys.usage_key(key.key_id or "", usage_day_of(NOON))

    async def body(client: aioredis.Redis) -> None:
        await client.hset(today, mapping={UsageField.PROMPT_TOKENS: 60, UsageField.COMPLETION_TOKENS: 39})
        await _gate(client, key).admit_question(new_job_id())  # 99 of 100: still answered
        await client.hincrby(today, UsageField.COMPLETION_TOKENS, 1)
        with pytest.raises(ApiError) as refused:
            await _gate(client, key).admit_question(new_job_id())
        assert (refused.value.code, refused.value.status_code) == ("quota_exceeded", 429)
        assert "tokens_per_day" in refused.value.message
        with pytest.raises(ApiError):  # 23:59:59 the same day
            await _gate(client, key, NOON + 12 * 3600 - 1).admit_question(new_job_id())
        await _gate(client, key, NOON + 12 * 3600).admit_question(new_job_id())  # 00:00 UTC the next day

    run_with_client(redis_url, body)


async def _open_job(client: aioredis.Redis, key: Principal, gate: KeyGate) -> str:
    job_id = new_job_id()
    await gate.admit_question(job_id)
    await client.hset(keys.job_key(job_id), mapping=cast(Any, initial_fields(job_id, JobKind.QUERY, "c", key.owner)))
    return job_id


def test_a_stream_slot_is_freed_when_the_answer_ends_or_is_cancelled_or_expires(redis_url: str) -> None:
    key = _key("streams", max_streams=2)
    settings = Settings()

    async def body(client: aioredis.Redis) -> None:
        first = await _open_job(client, key, _gate(client, key))
        second = await _open_job(client, key, _gate(client, key))
        with pytest.raises(ApiError) as refused:
            await _gate(client, key).admit_question(new_job_id())
        assert refused.value.code == "rate_limited" and "max_streams" in refused.value.message
        # The one script every ending goes through (done, error, cancel, the reaper's worker_lost) frees it.
        await end_query_async(client, first, QueryEnding.failed("worker_lost", "its worker died"), 60)
        third = await _open_job(client, key, _gate(client, key))
        await end_query_async(client, second, QueryEnding.cancelled(second), 60)
        await _open_job(client, key, _gate(client, key))
        with pytest.raises(ApiError):
            await _gate(client, key).admit_question(new_job_id())
        # A job that never ends (its record lost) holds its slot no longer than any job can stay open.
        expired = NOON + settings.QUEUE_TIMEOUT_S + settings.TASK_TIME_LIMIT_S + 1
        await _gate(client, key, expired).admit_question(new_job_id())
        assert third

    run_with_client(redis_url, body)


def test_uploads_past_the_daily_bytes_are_refused_and_not_counted(redis_url: str) -> None:
    key = _key("uploads", upload_bytes_per_day=1000)

    async def body(client: aioredis.Redis) -> None:
        await _gate(client, key).admit_upload(600)
        with pytest.raises(ApiError) as refused:
            await _gate(client, key).admit_upload(401)
        assert refused.value.code == "quota_exceeded" and "upload_bytes_per_day" in refused.value.message
        await _gate(client, key).admit_upload(400)
        usage = await client.hget(keys.usage_key(key.key_id or "", usage_day_of(NOON)), UsageField.UPLOAD_BYTES)
        assert usage == "1000"

    run_with_client(redis_url, body)
