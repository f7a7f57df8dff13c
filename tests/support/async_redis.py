"""Run a coroutine against a real Redis from a synchronous test, on an async client of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

T = TypeVar("T")


def run_with_client(redis_url: str, body: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    """`body(client)` on a new event loop with a decoding client, closed after."""

    async def run() -> T:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(run())
