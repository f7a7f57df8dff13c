"""`/readyz` and `/v1/status` name Redis, the store and, per queue, its workers and the messages waiting."""

from __future__ import annotations

import pytest

from harness.processes import Stack
from tests.conftest import client_for

pytestmark = pytest.mark.integration


def test_a_ready_stack_reports_redis_the_store_and_each_queue(offline_stack: Stack) -> None:
    with client_for(offline_stack) as client:
        ready = client.get("/readyz")
        status = client.get("/v1/status").json()
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert (body["status"], body["redis"], body["store"]) == ("ready", "ok", "ok")
    queues = {q["name"]: q for q in body["queues"]}
    assert set(queues) == {"index", "query"}
    assert all(q["workers"] and q["waiting"] == 0 for q in queues.values())
    assert status["ready"] and status["problem"] is None and status["store"] == "ok"
