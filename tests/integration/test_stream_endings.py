"""Every stream ends with exactly one terminal event: on cancel, and when the worker is killed mid-answer."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from harness.sse import Event, iter_events
from shared.jobs.dispatch import send
from shared.jobs.records import new_job_id
from shared.jobs.tasks import QueryTask
from shared.streams.events import REPLAY_FIELD, EventName, StreamEvent
from shared.streams.replay_log import TERMINAL_FIELD
from tests.conftest import client_for, copy_sample_docs, stack_env
from tests.support.jobs import index_and_wait, wait_for_job
from tests.support.teardown import stop_later

pytestmark = pytest.mark.integration

SLOW_TOKENS = [f"词{i}" for i in range(60)]


def _collection(stack: Stack, client: httpx.Client, name: str) -> str:
    copy_sample_docs(stack, "kb")
    job = index_and_wait(client, name, ["kb"])
    assert job["state"] == "succeeded", job
    return name


def _ask(client: httpx.Client, collection: str) -> str:
    response = client.post("/v1/queries", json={"collection": collection, "question": "什么是投机解码？"})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def _read_until(response: httpx.Response, tokens: int) -> tuple[Iterator[Event], list[Event]]:
    events = iter_events(response)
    seen: list[Event] = []
    for event in events:
        seen.append(event)
        if sum(e.event == "token" for e in seen) == tokens:
            break
    return events, seen


def _rest(events: Iterator[Event], seen: list[Event]) -> list[Event]:
    for event in events:
        seen.append(event)
        if event.event in ("done", "error"):
            break
    return seen


def _wait_for(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


class TestCancel:
    @pytest.fixture(scope="class")
    def client(self, zhipu_stack: Stack) -> Iterator[httpx.Client]:
        with client_for(zhipu_stack) as c:
            yield c

    def test_cancel_stops_the_upstream_call_and_ends_the_stream(
        self, client: httpx.Client, zhipu_stack: Stack, zhipu: ZhipuFakeServer
    ) -> None:
        collection = _collection(zhipu_stack, client, "cancel")
        zhipu.configure(tokens=SLOW_TOKENS, token_delay_ms=100)
        job_id = _ask(client, collection)
        with client.stream("GET", f"/v1/queries/{job_id}/stream") as response:
            events, seen = _read_until(response, 3)
            cancel = client.delete(f"/v1/queries/{job_id}")
            assert cancel.status_code == 202, cancel.text
            seen = _rest(events, seen)

        assert seen[-1].event == "error" and seen[-1].data["code"] == "cancelled"
        assert [e.event for e in seen].count("error") == 1
        tokens = [e.data["text"] for e in seen if e.event == "token"]
        assert tokens == SLOW_TOKENS[: len(tokens)] and len(tokens) < len(SLOW_TOKENS)
        # the upstream server saw its streaming connection closed before it finished
        _wait_for(lambda: zhipu.requests("/chat/completions")[-1].get("disconnected"))
        record = zhipu.requests("/chat/completions")[-1]
        assert not record["completed"] and record["chunks_sent"] < len(SLOW_TOKENS)
        job, _ = wait_for_job(client, job_id)
        assert job["state"] == "cancelled"

    def test_cancelling_a_finished_query_is_a_conflict(
        self, client: httpx.Client, zhipu_stack: Stack, zhipu: ZhipuFakeServer
    ) -> None:
        job_id = _ask(client, _collection(zhipu_stack, client, "cancel"))
        wait_for_job(client, job_id)
        response = client.delete(f"/v1/queries/{job_id}")
        assert response.status_code == 409 and response.json()["error"]["code"] == "job_finished"


@pytest.fixture(scope="module")
def crash_stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack of its own, since a test kills its worker; heartbeats and pings tuned to show within seconds."""
    root = tmp_path_factory.mktemp("crash")
    env = stack_env(redis_server, "crash", root, zhipu_server)
    env.update(
        HEARTBEAT_INTERVAL_S="0.5",
        HEARTBEAT_TTL_S="3",
        PING_INTERVAL_S="0.2",
        UPSTREAM_TIMEOUT_S="2",
        QUEUE_TIMEOUT_S="2",
        # A test asks with no worker running, to see the queue timeout: admission would refuse it with 503.
        ADMISSION_REQUIRE_CONSUMER="0",
    )
    stack = Stack("crash", env, root).start([("worker", "index,query", "threads", 4)])
    yield stack
    stop_later("stream endings stack", stack.stop)  # while the next module starts


def test_a_quiet_stream_gets_pings_and_proxy_headers(crash_stack: Stack, zhipu: ZhipuFakeServer) -> None:
    with client_for(crash_stack) as client:
        collection = _collection(crash_stack, client, "crash")
        zhipu.configure(tokens=SLOW_TOKENS[:4], first_token_delay_ms=1000)
        job_id = _ask(client, collection)
        with client.stream("GET", f"/v1/queries/{job_id}/stream") as response:
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            lines = []
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith("event: done"):
                    break
        assert ": ping" in lines


def test_a_disconnecting_client_frees_its_subscription_and_can_resume(
    crash_stack: Stack, zhipu: ZhipuFakeServer, redis_server: RedisServer
) -> None:
    db = int(crash_stack.env["REDIS_URL"].rsplit("/", 1)[1])
    r = redis.Redis.from_url(redis_server.url(db))
    with client_for(crash_stack) as client:
        collection = _collection(crash_stack, client, "crash")
        zhipu.configure(tokens=SLOW_TOKENS[:20], token_delay_ms=100)
        job_id = _ask(client, collection)
        channel = f"rag:stream:{job_id}"
        with client.stream("GET", f"/v1/queries/{job_id}/stream") as response:
            _, seen = _read_until(response, 2)
            assert r.pubsub_numsub(channel)[0][1] == 1
        _wait_for(lambda: r.pubsub_numsub(channel)[0][1] == 0)  # freed on disconnect, not at the stream's end
        assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "running"  # generation goes on
        last = seen[-1].id
        with client.stream("GET", f"/v1/queries/{job_id}/stream", headers={"Last-Event-ID": str(last)}) as again:
            rest = _rest(iter_events(again), [])
    ids = [e.id for e in seen + rest]
    assert ids == list(range(1, len(ids) + 1))  # nothing lost, nothing twice
    ending = (seen + rest)[-1]
    assert ending.event == "done", f"the answer ended with {ending.event}: {ending.data}"
    assert [e.data["text"] for e in seen + rest if e.event == "token"] == SLOW_TOKENS[:20]


@pytest.mark.faults
def test_an_upstream_that_stops_answering_ends_with_a_timeout_error(crash_stack: Stack, zhipu: ZhipuFakeServer) -> None:
    with client_for(crash_stack) as client:
        collection = _collection(crash_stack, client, "crash")
        zhipu.configure(tokens=SLOW_TOKENS[:4], first_token_delay_ms=6000)  # past UPSTREAM_TIMEOUT_S=2
        job_id = _ask(client, collection)
        with client.stream("GET", f"/v1/queries/{job_id}/stream") as response:
            events = _rest(iter_events(response), [])
    assert [e.event for e in events] == ["sources", "error"]
    assert events[-1].data["code"] == "upstream_timeout"


@pytest.mark.faults
def test_killing_the_worker_mid_answer_ends_the_stream_with_worker_lost_and_the_next_query_is_served(
    crash_stack: Stack, zhipu: ZhipuFakeServer
) -> None:
    with client_for(crash_stack) as client:
        collection = _collection(crash_stack, client, "crash")
        zhipu.configure(tokens=SLOW_TOKENS, token_delay_ms=100)
        job_id = _ask(client, collection)
        with client.stream("GET", f"/v1/queries/{job_id}/stream") as response:
            events, seen = _read_until(response, 3)
            killed_at = time.monotonic()
            worker = crash_stack.processes.pop("worker")
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            seen = _rest(events, seen)
            ended_after = time.monotonic() - killed_at

        assert [e.event for e in seen if e.event in ("done", "error")] == ["error"]
        assert seen[-1].data["code"] == "worker_lost"
        tokens = [e.data["text"] for e in seen if e.event == "token"]
        assert tokens == SLOW_TOKENS[: len(tokens)]
        assert [e.id for e in seen] == list(range(1, len(seen) + 1))
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["state"] == "failed" and job["error"]["code"] == "worker_lost"
        # a client reconnecting later gets the same ending from the replay buffer
        with client.stream("GET", f"/v1/queries/{job_id}/stream", headers={"Last-Event-ID": "3"}) as again:
            replay = _rest(iter_events(again), [])
        assert [e.id for e in replay] == [e.id for e in seen[3:]]
        # How long a client may wait for its ending: far above what it takes (HEARTBEAT_TTL_S=3, plus a poll).
        assert ended_after < 30, f"the client got its error {ended_after:.1f} s after the kill"

        # the next question is served by a replacement worker (the next test stops it again)
        crash_stack.start_worker("worker", "index,query", "threads", 4)
        control = Celery(broker=crash_stack.env["REDIS_URL"]).control
        _wait_for(lambda: control.ping(timeout=0.5), timeout=60)  # it consumes: QUEUE_TIMEOUT_S is 2 s here
        zhipu.configure(tokens=SLOW_TOKENS[:5], token_delay_ms=0)
        with client.stream("GET", f"/v1/queries/{_ask(client, collection)}/stream") as response:
            served = _rest(iter_events(response), [])
        assert served[-1].event == "done", served[-1]


def test_with_no_worker_a_queued_query_times_out_and_a_cancel_ends_it_at_once(crash_stack: Stack) -> None:
    with client_for(crash_stack) as client:
        if "worker" in crash_stack.processes:  # (the test above killed it already when run with it)
            _collection(crash_stack, client, "crash")
            crash_stack.stop("worker")
        waiting = _ask(client, "crash")
        with client.stream("GET", f"/v1/queries/{waiting}/stream") as response:
            events = _rest(iter_events(response), [])
        assert [e.event for e in events] == ["error"] and events[0].data["code"] == "queue_timeout"
        assert "query" in events[0].data["message"]

        queued = _ask(client, "crash")
        cancel = client.delete(f"/v1/queries/{queued}")
        assert cancel.status_code == 202 and cancel.json()["state"] == "cancelled"
        with client.stream("GET", f"/v1/queries/{queued}/stream") as response:
            events = _rest(iter_events(response), [])
        assert [e.event for e in events] == ["error"] and events[0].data["code"] == "cancelled"
        assert client.get(f"/v1/jobs/{queued}").json()["state"] == "cancelled"


def test_a_missed_live_message_is_recovered_from_the_buffer(zhipu_stack: Stack, redis_server: RedisServer) -> None:
    """Events that reach the replay buffer but never arrive on pub/sub still reach the client."""
    r = redis.Redis.from_url(zhipu_stack.env["REDIS_URL"], decode_responses=True)
    job_id = new_job_id()
    now = str(time.time())
    r.hset(f"rag:job:{job_id}", mapping={"id": job_id, "kind": "query", "state": "running", "created_at": now})
    r.set(f"rag:heartbeat:{job_id}", "1", ex=60)
    with client_for(zhipu_stack) as client, client.stream("GET", f"/v1/queries/{job_id}/stream") as response:
        assert response.status_code == 200
        for seq, event, data, terminal in [(1, "token", {"text": "悄悄"}, False), (2, "done", {"tokens": 1}, True)]:
            wire = StreamEvent(seq=seq, event=EventName(event), data=data).to_wire()
            fields: dict[Any, Any] = {REPLAY_FIELD: wire, **({TERMINAL_FIELD: "1"} if terminal else {})}
            r.xadd(f"rag:replay:{job_id}", fields, id=f"0-{seq}")  # no PUBLISH: the live message is "lost"
        events = _rest(iter_events(response), [])
    assert [(e.id, e.event) for e in events] == [(1, "token"), (2, "done")]


def test_two_clients_on_one_stream_each_get_all_of_it_when_one_leaves_early(
    zhipu_stack: Stack, zhipu: ZhipuFakeServer
) -> None:
    with client_for(zhipu_stack) as first, client_for(zhipu_stack) as second:
        collection = _collection(zhipu_stack, first, "shared")
        zhipu.configure(tokens=SLOW_TOKENS[:15], token_delay_ms=60)
        job_id = _ask(first, collection)
        url = f"/v1/queries/{job_id}/stream"
        with second.stream("GET", url) as staying:
            with first.stream("GET", url) as leaving:
                _read_until(leaving, 2)  # then this client goes away; the shared subscription must stay
            events = _rest(iter_events(staying), [])
    assert [e.data["text"] for e in events if e.event == "token"] == SLOW_TOKENS[:15]
    assert [e.id for e in events] == list(range(1, len(events) + 1))


def test_a_query_task_delivered_again_never_starts_a_second_answer(zhipu_stack: Stack, zhipu: ZhipuFakeServer) -> None:
    r = redis.Redis.from_url(zhipu_stack.env["REDIS_URL"], decode_responses=True)
    celery = Celery(broker=zhipu_stack.env["REDIS_URL"])
    with client_for(zhipu_stack) as client:
        collection = _collection(zhipu_stack, client, "again")
        finished = _ask(client, collection)
        wait_for_job(client, finished)
        before = r.xlen(f"rag:replay:{finished}")
        # a job whose worker died after two events: its stream has no ending yet
        cut = new_job_id()
        r.hset(f"rag:job:{cut}", mapping={"id": cut, "kind": "query", "state": "running", "created_at": time.time()})
        for seq, event, data in [(1, "sources", []), (2, "token", {"text": "半"})]:
            r.xadd(
                f"rag:replay:{cut}",
                {REPLAY_FIELD: StreamEvent(seq=seq, event=EventName(event), data=data).to_wire()},
                id=f"0-{seq}",
            )
        for job_id in (finished, cut):  # what the broker does after a worker died holding the task
            send(celery, QueryTask(job_id=job_id, collection=collection, question="再问一次", top_k=4))
        with client.stream("GET", f"/v1/queries/{cut}/stream") as response:
            events = _rest(iter_events(response), [])
        assert [(e.id, e.event) for e in events] == [(1, "sources"), (2, "token"), (3, "error")]
        assert events[-1].data["code"] == "worker_lost"
        assert client.get(f"/v1/jobs/{cut}").json()["state"] == "failed"
        assert r.xlen(f"rag:replay:{finished}") == before  # the finished answer got nothing appended
