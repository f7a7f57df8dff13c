"""The load generators of the stream benches: N SSE streams at once from one event loop, checked event by event.

Two clients with one interface (`StreamClient`): `aiohttp` (the default) and `httpx`. Both hold one pooled
session for every round, sized max(N) + 10 connections with a 5 s keep-alive expiry, so idle connections
are reused from round to round. They differ in what they cost the machine the bench runs on:
bench/stream_floor.py, straight on the fake upstream with no ragqueue in between, measured the httpx
client at 22 ms of CPU per stream at N = 500 (its connection pool walks every connection on each request
and each release) and aiohttp's at 0.7 ms. On 2 shared cores the httpx client alone held the first token of
the median stream back by 4.4 s, so it measured itself more than the server.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp
import httpx

from bench.stream_latency import ANSWER_TOKENS
from harness.sse import SSELineParser

ClientKind = Literal["aiohttp", "httpx"]
KEEPALIVE_S = 5.0
ANSWER_TEXT = "".join(ANSWER_TOKENS)


@dataclass
class Stream:
    """What one client received."""

    ttft_ms: float = float("nan")
    total_ms: float = float("nan")
    ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    terminals: list[str] = field(default_factory=list)
    worker_first_token_ms: float | None = None
    status: int = 0  # HTTP status; 0 when no response came
    failure: str = ""
    exception: str = ""  # qualified class of the exception that lost the stream, if one did

    def take(self, seq: int, event: str, data: Any, started: float) -> None:
        """Record one event of the stream."""
        self.ids.append(seq)
        if event == "token":
            if not self.texts:
                self.ttft_ms = (time.perf_counter() - started) * 1000
            self.texts.append(data["text"])
        elif event in ("done", "error"):
            self.terminals.append(event if event == "done" else f"error {data.get('code')}")
            if event == "done":
                self.worker_first_token_ms = data["timings_ms"]["first_token"]

    @property
    def refused(self) -> bool:
        return self.status != 200

    # Characters, not events: the worker coalesces the tokens of a short window into one event (TOKEN_COALESCE_MS).
    @property
    def lost(self) -> int:
        return sum((Counter(ANSWER_TEXT) - Counter("".join(self.texts))).values())

    @property
    def duplicated(self) -> int:
        return sum((Counter("".join(self.texts)) - Counter(ANSWER_TEXT)).values())

    @property
    def intact(self) -> bool:
        ordered = "".join(self.texts) == ANSWER_TEXT and self.ids == list(range(1, len(self.ids) + 1))
        return ordered and self.terminals == ["done"] and not self.failure

    def failed_with(self, exc: BaseException) -> None:
        self.exception = f"{type(exc).__module__.split('._')[0]}.{type(exc).__qualname__}"
        self.failure = f"{self.exception}: {exc}"


class StreamClient(Protocol):
    async def stream(self, path: str, question: str, collection: str, go: asyncio.Event) -> Stream:
        """Wait for `go`, then ask `question` on `path` (stream_chat or queries) and read the whole stream."""

    async def aclose(self) -> None: ...


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[int, str, Any]]:
    parser = SSELineParser()
    async for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event.id or 0, event.event, event.data


class HttpxClient:
    def __init__(self, base_url: str, max_streams: int, timeout: float) -> None:
        size = max_streams + 10
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=KEEPALIVE_S)
        self.client = httpx.AsyncClient(
            base_url=base_url, limits=limits, timeout=httpx.Timeout(timeout, connect=timeout), trust_env=False
        )

    async def stream(self, path: str, question: str, collection: str, go: asyncio.Event) -> Stream:
        stream = Stream()
        await go.wait()
        started = time.perf_counter()
        try:
            url, params = "/stream_chat", {"param": question, "collection": collection}
            if path == "queries":
                accepted = await self.client.post("/v1/queries", json={"collection": collection, "question": question})
                accepted.raise_for_status()
                url, params = accepted.json()["stream_url"], {}
            headers = {"Accept": "text/event-stream"}
            async with self.client.stream("GET", url, params=params, headers=headers) as r:
                stream.status = r.status_code
                if r.status_code != 200:
                    stream.failure = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
                    return stream
                async for seq, event, data in _events(r.aiter_lines()):
                    stream.take(seq, event, data, started)
        except (httpx.HTTPError, OSError) as exc:
            stream.failed_with(exc)
        stream.total_ms = (time.perf_counter() - started) * 1000
        return stream

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpClient:
    def __init__(self, base_url: str, max_streams: int, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        connector = aiohttp.TCPConnector(limit=max_streams + 10, keepalive_timeout=KEEPALIVE_S)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False
        )

    async def stream(self, path: str, question: str, collection: str, go: asyncio.Event) -> Stream:
        stream = Stream()
        await go.wait()
        started = time.perf_counter()
        try:
            url, params = f"{self.base_url}/stream_chat", {"param": question, "collection": collection}
            if path == "queries":
                body = {"collection": collection, "question": question}
                async with self.session.post(f"{self.base_url}/v1/queries", json=body) as accepted:
                    accepted.raise_for_status()
                    url, params = f"{self.base_url}{(await accepted.json())['stream_url']}", {}
            async with self.session.get(url, params=params, headers={"Accept": "text/event-stream"}) as r:
                stream.status = r.status
                if r.status != 200:
                    stream.failure = f"HTTP {r.status}: {(await r.read())[:200]!r}"
                    return stream
                async for seq, event, data in _events(_lines(r)):
                    stream.take(seq, event, data, started)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            stream.failed_with(exc)
        stream.total_ms = (time.perf_counter() - started) * 1000
        return stream

    async def aclose(self) -> None:
        await self.session.close()


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for raw in response.content:  # one line at a time, with its line ending
        yield raw.decode().rstrip("\r\n")


def stream_client(kind: ClientKind, base_url: str, max_streams: int, timeout: float) -> StreamClient:
    """The pooled load generator for every round (create it inside the event loop that uses it)."""
    if kind == "httpx":
        return HttpxClient(base_url, max_streams, timeout)
    return AiohttpClient(base_url, max_streams, timeout)
