"""Integration fixtures built on the session's stacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from tests.conftest import stack_env
from tests.support.teardown import stop_later

JSON_LOGS_FLOWER_PASSWORD = "flower-pass-in-env"


@pytest.fixture(scope="session")
def json_coalescing_stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A Zhipu stack with JSON logs (LOG_JSON=1, a Flower password in its environment), one file per index batch
    and token events coalesced in 40 ms windows, for test_json_logs and test_token_coalescing: the settings do
    not touch each other's behaviour, and one stack start-up is seconds of CPU saved."""
    root = tmp_path_factory.mktemp("jsonlogs")
    env = stack_env(redis_server, "jsonlogs", root, zhipu_server)
    # One file per index batch: the three sample documents make three batch tasks.
    env.update(
        LOG_JSON="1",
        FLOWER_BASIC_AUTH=f"ops:{JSON_LOGS_FLOWER_PASSWORD}",
        INDEX_BATCH_FILES="1",
        TOKEN_COALESCE_MS="40",
    )
    stack = Stack("jsonlogs", env, root).start([("worker", "index,query", "threads", 2)])
    yield stack
    stop_later("jsonlogs stack", stack.stop)
