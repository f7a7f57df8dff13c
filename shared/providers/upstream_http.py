"""The HTTP client our async LLM calls use: the `openai` SDK's aiohttp transport, keeping every byte received.

The aiohttp transport costs the generation step half the CPU of the SDK's default httpx one (docs/benchmarks.md).
But aiohttp's response stream raises a dropped connection's error on the next read even while bytes that
arrived before the drop are still buffered: its reader checks for the error first. So when an upstream broke a
stream mid-answer while the event loop was busy elsewhere, the last chunks it had sent were lost, and the
answer's `error` came one or two tokens early. The transport here hands those buffered bytes on, then raises the
same error, so an answer keeps every chunk its upstream sent (httpx's own transport behaves the same way).

The SDK's aiohttp client and transport classes are the SDK's vendored ones; reading the held bytes uses the aiohttp
reader's non-waiting read, which skips the error check (tests/unit/test_upstream_http.py pins both).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
from aiohttp import StreamReader
from openai import DefaultAioHttpClient
from openai._constants import DEFAULT_CONNECTION_LIMITS
from openai._vendor.httpx_aiohttp.transport import AiohttpResponseStream, AiohttpTransport


class _KeepsReceivedBytes(httpx2.AsyncByteStream):
    """An aiohttp response body that yields what it already received before raising a dropped connection."""

    def __init__(self, inner: AiohttpResponseStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx2.TransportError:
            if held := held_bytes(self._inner._aiohttp_response.content):
                yield held
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


def held_bytes(content: StreamReader) -> bytes:
    """The bytes `content` received and nobody read yet, even after its connection failed; none if this aiohttp
    keeps them elsewhere (then the stream ends as aiohttp ends it, with the connection's error)."""
    try:
        return content._read_nowait(-1) if content._buffer else b""
    except AttributeError:
        return b""


class KeepsReceivedBytesTransport(AiohttpTransport):
    """The SDK's aiohttp transport whose response bodies keep the bytes received before a dropped connection."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        if isinstance(response.stream, AiohttpResponseStream):
            response.stream = _KeepsReceivedBytes(response.stream)
        return response


def upstream_http_client(timeout_s: float) -> DefaultAioHttpClient:
    """The SDK's aiohttp client (its defaults: connection limits, redirects) on `KeepsReceivedBytesTransport`."""
    return DefaultAioHttpClient(
        timeout=timeout_s, transport=KeepsReceivedBytesTransport(limits=DEFAULT_CONNECTION_LIMITS)
    )
