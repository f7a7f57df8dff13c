"""An append that Redis ran but whose reply never came back is sent again by redis-py (it retries a command whose
connection failed), and the stream still holds it once: the event keeps its seq, the next one follows it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import redis

from harness.processes import RedisServer
from shared import keys
from shared.jobs.records import JobState, new_job_id
from shared.streams.endings import QueryEnding, end_query
from shared.streams.events import EventName, StreamEvent, TokenPayload
from shared.streams.publisher import EventPublisher
from tests.support.jobs import replay_log

pytestmark = pytest.mark.integration


class ReplyDropper:
    """A TCP relay to Redis that, once armed, lets the next script call through and closes the client's connection
    as the reply arrives, without passing it on: what a connection lost at the wrong moment looks like."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            sent_script = threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, sent_script), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client, sent_script), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, sent_script: threading.Event) -> None:
        while data := _recv(client):
            if self.armed.is_set() and b"EVALSHA" in data.upper():
                sent_script.set()
            upstream.sendall(data)
        upstream.close()

    def _replies(self, upstream: socket.socket, client: socket.socket, sent_script: threading.Event) -> None:
        while data := _recv(upstream):
            if sent_script.is_set() and not data.startswith(b"-NOSCRIPT"):  # Redis ran it: lose its reply
                self.armed.clear()
                self.dropped += 1
                client.shutdown(socket.SHUT_RDWR)
                client.close()
                return
            client.sendall(data)
        client.close()

    def close(self) -> None:
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.fixture(scope="module")
def db(redis_server: RedisServer) -> int:
    return redis_server.claim_db("append retry")


@pytest.fixture
def relay(redis_server: RedisServer) -> Iterator[ReplyDropper]:
    dropper = ReplyDropper(redis_server.port)
    yield dropper
    dropper.close()


def _events(direct: redis.Redis, job_id: str) -> list[StreamEvent]:
    return replay_log(direct, job_id)


def test_a_token_whose_reply_was_lost_is_stored_once_with_its_seq(
    redis_server: RedisServer, db: int, relay: ReplyDropper
) -> None:
    job_id = new_job_id()
    through_relay = redis.Redis(port=relay.port, db=db, decode_responses=True)  # redis-py's default retries
    publisher = EventPublisher(through_relay, job_id, 60)
    assert publisher.publish(EventName.TOKEN, TokenPayload(text="甲")) == 1
    relay.armed.set()
    assert publisher.publish(EventName.TOKEN, TokenPayload(text="乙")) == 2  # ran, reply lost, sent again
    assert publisher.publish(EventName.TOKEN, TokenPayload(text="丙")) == 3
    assert relay.dropped == 1
    direct = redis.Redis(port=redis_server.port, db=db, decode_responses=True)
    assert [(e.seq, e.data["text"]) for e in _events(direct, job_id)] == [(1, "甲"), (2, "乙"), (3, "丙")]


def test_an_ending_whose_reply_was_lost_still_reports_that_it_ended_the_stream(
    redis_server: RedisServer, db: int, relay: ReplyDropper
) -> None:
    job_id = new_job_id()
    through_relay = redis.Redis(port=relay.port, db=db, decode_responses=True)
    assert EventPublisher(through_relay, job_id, 60).publish(EventName.TOKEN, TokenPayload(text="甲")) == 1
    relay.armed.set()
    failed = QueryEnding.failed("upstream_error", "the upstream answered 500")
    assert end_query(through_relay, job_id, failed, 60)  # ran, reply lost, sent again: still "this call ended it"
    assert relay.dropped == 1
    direct = redis.Redis(port=redis_server.port, db=db, decode_responses=True)
    assert [e.event for e in _events(direct, job_id)] == [EventName.TOKEN, EventName.ERROR]
    assert direct.hget(keys.job_key(job_id), "state") == JobState.FAILED
    assert not end_query(direct, job_id, QueryEnding.failed("worker_lost", "late"), 60)  # a second ending: refused
