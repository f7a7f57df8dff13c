"""Redis restarting under an open answer stream: the client is told why, and resumes the answer where it stopped.

api/relay.py's contract (docs/api.md, "Error codes on a stream"): when the API loses Redis while relaying, the
stream ends with `error` `redis_unavailable` whose `id:` repeats the last seq sent, and that event is not in the
job's log; a reconnect with that `Last-Event-ID` once `/readyz` answers 200 gets the rest exactly once, in
order (here partly from the log, partly live), ending with one `done`. Redis keeps its data across the restart
(append-only file), as in production, and the restart falls in a pause of the upstream between two tokens, so
the worker's answer goes on.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from harness.sse import Event, iter_events, read_stream
from shared import keys
from tests.conftest import client_for, stack_env
from tests.support.contracts import wait_until
from tests.support.jobs import index_and_wait, wait_for_job
from tests.support.private_redis import PrivateRedis

pytestmark = [pytest.mark.integration, pytest.mark.faults]

COLLECTION = "restart"
TOKENS = ["甲", "乙", "丙"]
# The upstream's pause between the first two tokens: longer than the API takes to give up on a stopped Redis (a
# quiet second, then redis-py's retries with jittered backoff: 1-2 s here, about 6 s at worst) plus the restart, so
# the worker has nothing to publish while Redis is away.
PAUSE_MS = 7000
# Then before the last token: long enough for the resumed stream to be open, so it comes live, after the log.
LIVE_GAP_MS = 1500


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("restart-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(
    private_redis: PrivateRedis, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("restart")
    env = stack_env(RedisServer(host="127.0.0.1", port=private_redis.port), "restart", root, zhipu_server)
    env.update(WORKER_PING_CACHE_S="0")  # /readyz says at once when the worker is back on the broker
    started = Stack("restart", env, root).start([("worker", "index,query", "threads", 2)])
    yield started
    started.stop()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def _until_terminal(events: Iterator[Event], seen: list[Event]) -> list[Event]:
    for event in events:
        seen.append(event)
        if event.event in ("done", "error"):
            break
    return seen


def test_after_redis_restarts_mid_answer_the_stream_says_redis_unavailable_and_last_event_id_resumes_it(
    stack: Stack, private_redis: PrivateRedis, zhipu: ZhipuFakeServer
) -> None:
    note = stack.import_dir / "note.md"
    note.write_text("# 重启\n\nRedis 重启之后，回答从断开的地方继续。\n", encoding="utf-8")
    with client_for(stack) as client:
        assert index_and_wait(client, COLLECTION, ["note.md"])["state"] == "succeeded"
        zhipu.configure(tokens=TOKENS, token_gaps_ms=[PAUSE_MS, LIVE_GAP_MS])
        accepted = client.post("/v1/queries", json={"collection": COLLECTION, "question": "Redis 重启会怎样？"})
        assert accepted.status_code == 202, accepted.text
        job_id, url = accepted.json()["job_id"], accepted.json()["stream_url"]

        with client.stream("GET", url) as response:
            events = iter_events(response)
            before = [next(events), next(events)]  # `sources`, then the first token
            assert [e.event for e in before] == ["sources", "token"], before
            private_redis.stop()  # the upstream now pauses PAUSE_MS before the next token
            lost = _until_terminal(events, [])
        private_redis.start()

        assert [e.event for e in lost] == ["error"], lost
        assert lost[0].data["code"] == "redis_unavailable", lost[0].data
        assert lost[0].raw_id == before[-1].raw_id == "2"  # the last seq sent, repeated

        wait_until(lambda: _ready(client), 60, "/readyz 200 once Redis is back")
        # Resume once the next token is in the log: the rest then comes from the log first, then live.
        with redis.Redis.from_url(stack.env["REDIS_URL"]) as log:
            wait_until(lambda: log.xlen(keys.replay_key(job_id)) >= 3, 30, "the second token published meanwhile")
        rest = read_stream(client, url, headers={"Last-Event-ID": lost[0].raw_id})
        job, _ = wait_for_job(client, job_id)
        replayed = read_stream(client, url)  # the whole log, from the start

    assert [e.event for e in rest] == ["token", "token", "done"], rest
    assert [e.id for e in rest] == [3, 4, 5]
    assert [e.data["text"] for e in before + rest if e.event == "token"] == TOKENS  # each token once, in order
    assert job["state"] == "succeeded", job
    # The error was this connection's, not the job's: the log holds the answer alone.
    assert [(e.id, e.event) for e in replayed] == [
        (1, "sources"),
        (2, "token"),
        (3, "token"),
        (4, "token"),
        (5, "done"),
    ]
