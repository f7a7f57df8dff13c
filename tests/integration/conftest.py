"""Integration fixtures built on the session's stacks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from tests.conftest import SAMPLE_DOCS, client_for, stack_env
from tests.support.jobs import index_and_wait

OFFLINE_KB = "kb"


@pytest.fixture(scope="session")
def offline_kb(offline_stack: Stack) -> dict[str, Any]:
    """The sample docs indexed once on the offline stack into `OFFLINE_KB`; the finished index job's record.

    The local embedding model makes this the costliest index job of the session (tens of seconds of CPU on a
    small machine); tests that only read the collection share it, and none of them changes it.
    """
    with client_for(offline_stack) as client:
        return index_and_wait(client, OFFLINE_KB, [str(SAMPLE_DOCS)])  # the sample docs are an allowed import root


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
    stack.stop()
