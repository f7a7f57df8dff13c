"""`GET /v1/jobs?state=&kind=&limit=&offset=`: recent jobs filtered by state and kind, paged, newest first."""

from __future__ import annotations

from typing import Any

import pytest

from harness.processes import Stack
from tests.conftest import OFFLINE_KB, client_for
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.integration


def test_jobs_are_listed_by_kind_and_state_and_paged(offline_stack: Stack, offline_kb: dict[str, Any]) -> None:
    with client_for(offline_stack) as client:
        asked = []
        for question in ("什么是 KV 缓存？", "什么是投机解码？"):
            response = client.post("/v1/queries", json={"collection": OFFLINE_KB, "question": question})
            asked.append(response.json()["job_id"])
            wait_for_job(client, asked[-1])

        queries = client.get("/v1/jobs", params={"kind": "query", "state": "succeeded", "limit": 200}).json()
        assert all(j["kind"] == "query" and j["state"] == "succeeded" for j in queries)
        assert [j["id"] for j in queries[:2]] == asked[::-1]  # newest first
        index_jobs = client.get("/v1/jobs", params={"kind": "index"}).json()
        assert index_jobs and all(j["kind"] == "index" for j in index_jobs)

        page = [client.get("/v1/jobs", params={"kind": "query", "limit": 1, "offset": n}).json() for n in (0, 1)]
        assert [p[0]["id"] for p in page] == asked[::-1]
        assert client.get("/v1/jobs", params={"state": "nonsense"}).status_code == 422
