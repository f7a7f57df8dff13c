"""Appends from many answers on one event loop share pipelines, and each answer still gets exactly its own results."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from harness.processes import RedisServer, free_port
from shared.jobs.records import new_job_id
from shared.streams.append_batcher import AppendBatcher
from shared.streams.events import EventName, TokenPayload
from shared.streams.publisher import AsyncEventPublisher, StreamClosed
from shared.streams.replay_log import APPEND_SCRIPT, append_call
from tests.support.jobs import replay_log

pytestmark = pytest.mark.integration

ANSWERS, EVENTS = 40, 25


@pytest.fixture(scope="module")
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    yield redis_server.url(redis_server.claim_db("append batcher"))


async def _answer(batcher: AppendBatcher, job_id: str) -> list[int]:
    publisher = AsyncEventPublisher(batcher, job_id, 60)
    seqs = []
    for n in range(EVENTS):
        seqs.append(await publisher.publish(EventName.TOKEN, TokenPayload(text=f"{job_id[:4]}-{n}")))
        await asyncio.sleep(0)  # answers interleave, as tokens arriving from many upstream streams do
    return seqs


def test_many_answers_at_once_each_get_dense_seqs_and_their_own_events_in_order(redis_url: str) -> None:
    jobs = [new_job_id() for _ in range(ANSWERS)]

    async def run() -> list[list[int]]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            batcher = AppendBatcher(client)  # one per event loop, shared by all its answers
            return list(await asyncio.gather(*(_answer(batcher, job) for job in jobs)))
        finally:
            await client.aclose()

    results = asyncio.run(run())
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    for job_id, seqs in zip(jobs, results, strict=True):
        assert seqs == list(range(1, EVENTS + 1))
        stored = replay_log(r, job_id)
        assert [(e.seq, e.data["text"]) for e in stored] == [(n + 1, f"{job_id[:4]}-{n}") for n in range(EVENTS)]


def test_an_ended_stream_refuses_its_append_without_failing_the_others_in_the_batch(redis_url: str) -> None:
    ended, open_ = new_job_id(), new_job_id()
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    script_keys, args = append_call(ended, EventName.ERROR, TokenPayload(text="x"), 60, honour_cancel=False)
    r.register_script(APPEND_SCRIPT)(keys=script_keys, args=args)  # `ended` has its terminal event already

    async def run() -> tuple[BaseException | int, BaseException | int]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        batcher = AppendBatcher(client)
        try:
            first, second = await asyncio.gather(
                AsyncEventPublisher(batcher, ended, 60).publish(EventName.TOKEN, TokenPayload(text="late")),
                AsyncEventPublisher(batcher, open_, 60).publish(EventName.TOKEN, TokenPayload(text="on time")),
                return_exceptions=True,
            )
            return first, second
        finally:
            await client.aclose()

    late, on_time = asyncio.run(run())
    assert isinstance(late, StreamClosed) and not late.cancelled
    assert on_time == 1


def test_an_unreachable_redis_fails_every_caller_instead_of_leaving_one_waiting() -> None:
    async def run() -> list[BaseException | int]:
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=2)
        batcher = AppendBatcher(client)
        try:
            calls = [
                AsyncEventPublisher(batcher, new_job_id(), 60).publish(EventName.TOKEN, TokenPayload(text="t"))
                for _ in range(5)
            ]
            return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
        finally:
            await client.aclose()

    outcomes = asyncio.run(run())
    assert len(outcomes) == 5 and all(isinstance(o, redis.ConnectionError) for o in outcomes), outcomes


def test_appends_go_on_after_redis_lost_its_scripts_each_stored_once(redis_url: str) -> None:
    job_id = new_job_id()
    r = redis.Redis.from_url(redis_url, decode_responses=True)

    async def run() -> list[int]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            publisher = AsyncEventPublisher(AppendBatcher(client), job_id, 60)
            seqs = [await publisher.publish(EventName.TOKEN, TokenPayload(text="before"))]
            r.script_flush()  # as after a Redis restart: the batcher's next pipeline is refused with NOSCRIPT
            seqs += await asyncio.gather(
                *(publisher.publish(EventName.TOKEN, TokenPayload(text=f"after-{n}")) for n in range(3))
            )
            return seqs
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [1, 2, 3, 4]
    stored = replay_log(r, job_id)
    assert [e.data["text"] for e in stored] == ["before", "after-0", "after-1", "after-2"]
