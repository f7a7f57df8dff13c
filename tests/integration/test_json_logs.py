"""With LOG_JSON=1 the workers log JSON lines carrying each job's id; no secret appears in any log."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack
from shared.jobs.tasks import INDEX_BATCH_TASK
from tests.conftest import client_for, copy_sample_docs
from tests.integration.conftest import JSON_LOGS_FLOWER_PASSWORD
from tests.support.jobs import index_and_wait, wait_for_job

pytestmark = pytest.mark.integration

FLOWER_PASSWORD = JSON_LOGS_FLOWER_PASSWORD


@pytest.fixture(scope="module")
def json_stack(json_coalescing_stack: Stack) -> Stack:
    """LOG_JSON=1, a Flower password in the environment, one file per index batch (tests/integration/conftest.py)."""
    return json_coalescing_stack


def test_worker_logs_are_json_lines_with_the_job_id_and_no_secret(json_stack: Stack, zhipu: ZhipuFakeServer) -> None:
    with client_for(json_stack) as client:
        copy_sample_docs(json_stack, "kb")
        indexed = index_and_wait(client, "logs", ["kb"])
        response = client.post("/v1/queries", json={"collection": "logs", "question": "什么是投机解码？"})
        asked = response.json()["job_id"]
        assert wait_for_job(client, asked)[0]["state"] == "succeeded"

    lines = _worker_lines(json_stack)
    by_job = {line.get("job_id") for line in lines}
    assert {indexed["id"], asked} <= by_job
    assert any(line["message"] == "ragqueue.answer_query ended: SUCCESS" and line["job_id"] == asked for line in lines)
    for name in ("worker", "api"):
        log = (json_stack.log_dir / f"jsonlogs-{name}.log").read_text()
        assert json_stack.env["ZHIPU_API_KEY"] not in log and FLOWER_PASSWORD not in log


def test_an_index_batch_task_logs_under_its_job_id(json_stack: Stack) -> None:
    with client_for(json_stack) as client:
        copy_sample_docs(json_stack, "batched")
        job = index_and_wait(client, "batched", ["batched"])
    assert job["state"] == "succeeded" and job["files"] == 3  # three batch tasks

    def batch_lines(event: str) -> list[dict[str, Any]]:
        message = f"{INDEX_BATCH_TASK} {event}"
        return [
            line
            for line in _worker_lines(json_stack)
            if line["logger"].startswith("ragqueue") and line["message"].startswith(message)
        ]

    # A batch logs its end after the job's record says succeeded (the last batch finalises it first).
    deadline = time.monotonic() + 10
    while len([line for line in batch_lines("ended") if line.get("job_id") == job["id"]]) < 3:
        assert time.monotonic() < deadline, [line.get("job_id") for line in batch_lines("ended")]
        time.sleep(0.1)
    assert [line.get("job_id") for line in batch_lines("started")].count(job["id"]) == 3


def _worker_lines(stack: Stack) -> list[dict[str, Any]]:
    text = (stack.log_dir / "jsonlogs-worker.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
