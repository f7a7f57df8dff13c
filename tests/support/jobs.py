"""Waiting on jobs through the API, as a client would."""

from __future__ import annotations

import time
from typing import Any, cast

import httpx
import redis

from shared import keys
from shared.streams.events import REPLAY_FIELD, StreamEvent

FINAL = {"succeeded", "failed", "cancelled"}


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120.0) -> tuple[dict[str, Any], list[dict]]:
    """The job's final record, and every distinct progress value seen while polling."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if not seen or seen[-1] != job["progress"]:
            seen.append(job["progress"])
        if job["state"] in FINAL:
            return job, seen
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def index_and_wait(client: httpx.Client, collection: str, paths: list[str]) -> dict[str, Any]:
    response = client.post(f"/v1/collections/{collection}/index-jobs", json={"paths": paths})
    assert response.status_code == 202, response.text
    job, _ = wait_for_job(client, response.json()["job_id"])
    return job


def write_queued_query(r: redis.Redis, job_id: str, collection: str) -> None:
    """The record the API writes for a question before it sends its task (for tests that send tasks directly)."""
    record: dict[str, str | float] = {
        "id": job_id,
        "kind": "query",
        "state": "queued",
        "collection": collection,
        "created_at": time.time(),
    }
    r.hset(f"rag:job:{job_id}", mapping=cast(Any, record))  # redis-py types keys and values invariantly


def replay_log(r: redis.Redis, job_id: str) -> list[StreamEvent]:
    """A query job's events as its replay log holds them, in order (`r` decodes responses)."""
    entries = cast(list[tuple[str, dict[str, str]]], r.xrange(keys.replay_key(job_id)))
    return [StreamEvent.from_wire(fields[REPLAY_FIELD]) for _, fields in entries]
