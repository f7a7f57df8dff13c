"""HTTP to the tests' and benchmarks' own servers, with one TLS context for every client.

httpx builds a new TLS context for each `Client` and each call like `httpx.get`, loading certifi's bundle (about
45 ms of CPU) even for an http:// URL; the suite's readiness polls, five a second per starting stack, spent about
20 s of CPU on it. These take the same arguments and pass one context built on first use (certifi's bundle, as
httpx's default), so a client costs a fraction of a millisecond.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import certifi
import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(verify=tls_context(), **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, verify=tls_context(), **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, verify=tls_context(), **kwargs)
