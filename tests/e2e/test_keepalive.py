"""The API keeps idle connections open for API_KEEPALIVE_S, longer than clients' own idle timeouts.

uvicorn's default of 5 s equals httpx's keep-alive expiry: a request sent on a pooled connection at the moment
the server closes it dies with "Server disconnected without sending a response".
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from harness import local_http
from harness.processes import Stack

pytestmark = pytest.mark.e2e

IDLE_S = 6.0  # past uvicorn's default keep-alive (5 s)


def test_an_idle_connection_is_still_open_after_uvicorns_default_timeout(offline_stack: Stack) -> None:
    assert offline_stack.keepalive_s > IDLE_S
    connects: list[str] = []

    def trace(name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.complete":
            connects.append(name)

    limits = httpx.Limits(keepalive_expiry=offline_stack.keepalive_s)
    with local_http.client(base_url=offline_stack.base_url, limits=limits, trust_env=False) as client:
        assert client.get("/healthz", extensions={"trace": trace}).status_code == 200
        time.sleep(IDLE_S)
        assert client.get("/healthz", extensions={"trace": trace}).status_code == 200
    assert connects == ["connection.connect_tcp.complete"], "the server closed the idle connection"
