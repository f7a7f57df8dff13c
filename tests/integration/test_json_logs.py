"""With LOG_JSON=1 the workers log JSON lines carrying each job's id; no secret appears in any log."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import client_for, copy_sample_docs, stack_env
from tests.fakes.zhipu_server import ZhipuFakeServer
from tests.support.jobs import index_and_wait, wait_for_job
from tests.support.processes import RedisServer, Stack

pytestmark = pytest.mark.integration

FLOWER_PASSWORD = "flower-pass-in-env"


@pytest.fixture(scope="module")
def json_stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("jsonlogs")
    env = stack_env(redis_server, "jsonlogs", root, zhipu_server)
    env.update(LOG_JSON="1", FLOWER_BASIC_AUTH=f"ops:{FLOWER_PASSWORD}")
    stack = Stack("jsonlogs", env, root).start([("worker", "index,query", "threads", 2)])
    yield stack
    stack.stop()


def test_worker_logs_are_json_lines_with_the_job_id_and_no_secret(json_stack: Stack, zhipu: ZhipuFakeServer) -> None:
    with client_for(json_stack) as client:
        copy_sample_docs(json_stack, "kb")
        indexed = index_and_wait(client, "logs", ["kb"])
        response = client.post("/v1/queries", json={"collection": "logs", "question": "什么是投机解码？"})
        asked = response.json()["job_id"]
        assert wait_for_job(client, asked)[0]["state"] == "succeeded"

    text = (json_stack.log_dir / "jsonlogs-worker.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    by_job = {line.get("job_id") for line in lines}
    assert {indexed["id"], asked} <= by_job
    assert any(line["message"] == "ragqueue.answer_query ended: SUCCESS" and line["job_id"] == asked for line in lines)
    for name in ("worker", "api"):
        log = (json_stack.log_dir / f"jsonlogs-{name}.log").read_text()
        assert json_stack.env["ZHIPU_API_KEY"] not in log and FLOWER_PASSWORD not in log
