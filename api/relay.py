"""Relay a query job's events from Redis to one client: subscribe, replay what was missed, then go live.

Pub/sub is at-most-once, so the relay subscribes before it reads the replay buffer, and drops anything
whose seq it already sent (DESIGN.md). Do not fix: events can arrive twice (buffer and live) by design;
the seq check is what makes delivery exactly-once. A disconnecting client cancels the generator, and the
`finally` frees the pub/sub connection at once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from shared import keys
from shared.events import REPLAY_FIELD, ErrorCode, EventName, StreamEvent
from shared.jobs import FINAL_STATES, JobState


async def subscribe(redis: aioredis.Redis, job_id: str) -> PubSub:
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(keys.stream_channel(job_id))
    return pubsub


async def buffered_events(redis: aioredis.Redis, job_id: str, after_seq: int) -> list[StreamEvent]:
    """Events in the replay buffer with seq > after_seq, in order (entry ids are 0-{seq})."""
    entries = cast(
        list[tuple[str, dict[str, str]]], await redis.xrange(keys.replay_key(job_id), min=f"0-{after_seq + 1}")
    )
    return [StreamEvent.from_wire(fields[REPLAY_FIELD]) for _, fields in entries]


async def relay_events(
    redis: aioredis.Redis,
    job_id: str,
    *,
    after_seq: int = 0,
    pubsub: PubSub | None = None,
    idle_timeout_s: float = 120.0,
    poll_s: float = 1.0,
) -> AsyncIterator[StreamEvent]:
    """Every event after `after_seq` exactly once, in order, ending with the terminal one."""
    pubsub = pubsub or await subscribe(redis, job_id)
    last = after_seq
    last_activity = time.monotonic()
    try:
        for event in await buffered_events(redis, job_id, last):
            yield event
            last = event.seq
            if event.is_terminal:
                return
        while True:
            message = await pubsub.get_message(timeout=poll_s)
            if message is None:
                if time.monotonic() - last_activity > idle_timeout_s:
                    yield await _timeout_event(redis, job_id, last, idle_timeout_s)
                    return
                continue
            last_activity = time.monotonic()
            event = StreamEvent.from_wire(message["data"])
            if event.seq <= last:
                continue
            # A gap means live messages were missed: fill it from the buffer (which holds this event too).
            batch = await buffered_events(redis, job_id, last) if event.seq > last + 1 else [event]
            for item in batch:
                if item.seq > last:
                    yield item
                    last = item.seq
                    if item.is_terminal:
                        return
    finally:
        await pubsub.aclose()


async def _timeout_event(redis: aioredis.Redis, job_id: str, last: int, idle_timeout_s: float) -> StreamEvent:
    """The terminal event a client gets when its job stopped producing events."""
    state = cast(str | None, await redis.hget(keys.job_key(job_id), "state"))
    if state is None:
        code, message = ErrorCode.NOT_FOUND, f"no job {job_id!r} (unknown, or expired)"
    elif JobState(state) in FINAL_STATES:
        code, message = ErrorCode.WORKER_LOST, f"job ended ({state}) without finishing its stream"
    else:
        code = ErrorCode.STREAM_TIMEOUT
        message = f"no event for {idle_timeout_s:.0f} s while the job is {state}; is a query worker running?"
    return StreamEvent(seq=last + 1, event=EventName.ERROR, data={"code": code, "message": message})
