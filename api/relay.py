"""Relay a query job's events from Redis to one client: subscribe, replay what was missed, then go live.

Pub/sub is at-most-once, so the relay subscribes before it reads the replay buffer, and drops anything
whose seq it already sent. Events deliberately arrive twice (buffer and live), because reading both is what
leaves no gap; the seq check is what makes delivery exactly-once. While the stream is quiet the relay is also the
watchdog: a running job without a heartbeat gets its terminal `error` written to the log, which then
reaches every subscriber the normal way. A disconnecting client cancels the generator, and the `finally`
frees the pub/sub connection at once.

The relay yields the events in batches: everything that had arrived when it woke. A client that fell
behind (a busy API process) then gets them in one write instead of one write, one ASGI send and one
generator step each; an idle process still sends every event the moment it arrives.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.pubsub_hub import PubSubHub, Subscription
from shared import keys
from shared.streams.events import REPLAY_FIELD, ErrorCode, ErrorPayload, EventName, StreamEvent
from shared.streams.watchdog import end_if_still_queued, reap_if_dead


async def subscribe(hub: PubSubHub, job_id: str) -> Subscription:
    return await hub.subscribe(keys.stream_channel(job_id))


async def buffered_events(redis: aioredis.Redis, job_id: str, after_seq: int) -> list[StreamEvent]:
    """Events in the replay buffer with seq > after_seq, in order (entry ids are 0-{seq})."""
    entries = cast(
        list[tuple[str, dict[str, str]]], await redis.xrange(keys.replay_key(job_id), min=f"0-{after_seq + 1}")
    )
    return [StreamEvent.from_wire(fields[REPLAY_FIELD]) for _, fields in entries]


EventBatch = list[StreamEvent]


async def relay_events(
    redis: aioredis.Redis,
    hub: PubSubHub,
    job_id: str,
    *,
    replay_ttl_s: int,
    queue_timeout_s: float,
    heartbeat_grace_s: float,
    after_seq: int = 0,
    subscription: Subscription | None = None,
    poll_s: float = 1.0,
) -> AsyncIterator[EventBatch]:
    """Every event after `after_seq` exactly once, in order, ending with the terminal one; in non-empty batches.

    A `subscription` passed in was taken before the job was dispatched (api/query_jobs.py), so the buffer can
    hold nothing it will not also deliver: the first read of the buffer is skipped. (Were a message missed
    anyway, the gap or the first quiet second sends the relay to the buffer, as for any missed message.)
    """
    subscribed_first = subscription is not None
    subscription = subscription or await subscribe(hub, job_id)
    last = after_seq
    quiet_since = time.monotonic()
    try:
        batch = [] if subscribed_first else await buffered_events(redis, job_id, last)
        while True:
            fresh = _after(batch, last)
            if fresh:
                yield fresh
                last = fresh[-1].seq
                if fresh[-1].is_terminal:
                    return
            message = await subscription.get(timeout=poll_s)
            if message is None:
                # Quiet: re-read the buffer, so a missed live message (a pub/sub reconnect, or a publish that
                # raced the subscription) can never leave a client waiting; then act as the watchdog.
                batch = await buffered_events(redis, job_id, last)
                if not batch:
                    if (
                        not await reap_if_dead(redis, job_id, replay_ttl_s, heartbeat_grace_s)
                        and time.monotonic() - quiet_since > queue_timeout_s
                    ):
                        await end_if_still_queued(redis, job_id, queue_timeout_s, replay_ttl_s)
                        quiet_since = time.monotonic()
                    continue  # a terminal event written by the watchdog arrives as a message
            else:
                quiet_since = time.monotonic()
                batch = [StreamEvent.from_wire(m) for m in (message, *subscription.ready())]
                if not _dense(batch, last):
                    # Live messages were missed: fill the gap from the buffer (which holds these events too).
                    batch = await buffered_events(redis, job_id, last)
    except (RedisConnectionError, RedisTimeoutError):
        # Redis went away mid-stream (a restart): end this connection with an error instead of cutting it, so
        # the client learns why its stream stopped. The event is not in the job's log: its id repeats the last
        # seq sent, so a reconnect with it resumes the job where this stream stopped once Redis is back.
        yield [lost_redis_event(last)]
    finally:
        await subscription.close()


def _after(batch: EventBatch, last: int) -> EventBatch:
    """The batch's events past `last`, up to and including a terminal one."""
    fresh: EventBatch = []
    for event in batch:
        if event.seq > last:
            fresh.append(event)
            last = event.seq
            if event.is_terminal:
                break
    return fresh


def _dense(batch: EventBatch, last: int) -> bool:
    """Whether the live messages' new events follow `last` with no seq missing (old repeats are fine)."""
    for event in batch:
        if event.seq > last + 1:
            return False
        last = max(last, event.seq)
    return True


def lost_redis_event(last_seq: int) -> StreamEvent:
    message = (
        "the API lost its connection to Redis while relaying this answer; "
        "reconnect with Last-Event-ID once /readyz answers 200 to resume it"
    )
    return StreamEvent(
        seq=last_seq,
        event=EventName.ERROR,
        data=ErrorPayload(code=ErrorCode.REDIS_UNAVAILABLE, message=message).model_dump(),
    )
