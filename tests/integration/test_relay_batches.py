"""The relay hands a client every event that arrived while it was busy in one batch, still exactly once and in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from api.pubsub_hub import PubSubHub, Subscription
from api.relay import EventBatch, relay_events, subscribe
from harness.processes import RedisServer
from shared.jobs.records import new_job_id
from shared.streams.endings import QueryEnding, end_query
from shared.streams.events import AnswerTimings, DonePayload, EventName, TokenPayload
from shared.streams.publisher import EventPublisher

pytestmark = pytest.mark.integration

TTL_S = 60


@pytest.fixture(scope="module")
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    yield redis_server.url(redis_server.claim_db("relay batches"))


async def _arrived(subscription: Subscription, count: int) -> None:
    """Wait until `count` live messages sit in the subscription's queue, unread."""
    for _ in range(500):
        if subscription.queue.qsize() >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{subscription.queue.qsize()} of {count} live messages arrived")


def _seqs(batch: EventBatch) -> list[int]:
    return [event.seq for event in batch]


def _done() -> QueryEnding:
    timings = AnswerTimings(retrieval=1.0, first_token=2.0, total=3.0)
    return QueryEnding.succeeded(
        DonePayload(tokens=6, sources=0, answerer="test", question="q", mode="hybrid", timings_ms=timings)
    )


def test_events_that_arrived_together_come_in_one_batch_and_a_missed_one_is_filled_from_the_log(
    redis_url: str,
) -> None:
    job_id = new_job_id()
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    events = EventPublisher(sync, job_id, TTL_S)

    async def run() -> list[EventBatch]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        hub = PubSubHub(client)
        await hub.start()
        try:
            subscription = await subscribe(hub, job_id)
            relay: AsyncIterator[EventBatch] = relay_events(
                client,
                hub,
                job_id,
                subscription=subscription,
                replay_ttl_s=TTL_S,
                queue_timeout_s=60,
                heartbeat_grace_s=1,
            )
            batches = []
            events.publish(EventName.TOKEN, TokenPayload(text="a"))
            batches.append(await anext(relay))  # the client is now up to date
            for text in "bcd":
                events.publish(EventName.TOKEN, TokenPayload(text=text))
            await _arrived(subscription, 3)  # three events arrived while the client was busy elsewhere
            batches.append(await anext(relay))
            for text in "ef":
                events.publish(EventName.TOKEN, TokenPayload(text=text))
            await _arrived(subscription, 2)
            subscription.queue.get_nowait()  # `e`'s live message lost (a pub/sub reconnect): only `f` arrives
            batches.append(await anext(relay))
            end_query(sync, job_id, _done(), TTL_S)
            batches.extend([batch async for batch in relay])
            return batches
        finally:
            await hub.stop()
            await client.aclose()

    batches = asyncio.run(run())
    assert [_seqs(b) for b in batches] == [[1], [2, 3, 4], [5, 6], [7]]
    texts = [event.token().text for batch in batches for event in batch if event.event == EventName.TOKEN]
    assert texts == list("abcdef")
    assert batches[-1][0].event == EventName.DONE
