"""API side of feedback: store a rating on a query job's answer (replacing an earlier one), list ratings."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis

from shared import keys
from shared.feedback import Feedback, FeedbackField, Rating, feedback_fields, parse_feedback
from shared.streams.events import REPLAY_FIELD, EventName, SourcePayload, StreamEvent

# How many job ids a listing reads from a collection's index per round trip while it filters them.
INDEX_PAGE = 200
# The `sources` event is a query stream's first; a few entries cover it even if something came before.
SOURCES_SEARCH = 4


async def given_sources(redis: aioredis.Redis, job_id: str) -> list[SourcePayload]:
    """The chunks a query job's answer was given, from its replay log; [] once that expired (REPLAY_TTL_S)."""
    entries = cast(list[Any], await redis.xrange(keys.replay_key(job_id), "-", "+", count=SOURCES_SEARCH))
    for _, fields in entries:
        event = StreamEvent.from_wire(fields[REPLAY_FIELD])
        if event.event == EventName.SOURCES:
            return event.sources()
    return []


async def stored_feedback(redis: aioredis.Redis, job_id: str) -> Feedback | None:
    fields = cast(dict[str, str], await redis.hgetall(keys.feedback_key(job_id)))  # type: ignore[misc]
    return parse_feedback(fields) if fields else None


async def save_feedback(redis: aioredis.Redis, feedback: Feedback, *, owner: str, by: str, ttl_s: int) -> None:
    """Write the feedback whole (replacing any earlier one for the job) and index it under its collection."""
    key = keys.feedback_key(feedback.job_id)
    index = keys.feedback_index_key(feedback.collection)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=cast(Any, feedback_fields(feedback, owner, by)))
        pipe.expire(key, ttl_s)
        pipe.zadd(index, {feedback.job_id: feedback.given_at})
        # Scored by when given, and each feedback lives ttl_s from then: older entries name expired hashes.
        pipe.zremrangebyscore(index, "-inf", feedback.given_at - ttl_s)
        pipe.expire(index, ttl_s)
        await pipe.execute()


async def list_feedback(
    redis: aioredis.Redis,
    collection: str,
    *,
    owner: str | None,
    rating: Rating | None,
    limit: int,
    offset: int,
) -> list[Feedback]:
    """A collection's feedback, latest first: only `owner`'s jobs (None: everyone's), only `rating` if given."""
    index = keys.feedback_index_key(collection)
    found: list[Feedback] = []
    to_skip = offset
    start = 0
    while len(found) < limit:
        ids = cast(list[str], await redis.zrevrange(index, start, start + INDEX_PAGE - 1))
        if not ids:
            break
        start += INDEX_PAGE
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(keys.feedback_key(job_id))
            rows = cast(list[dict[str, str]], await pipe.execute())
        for fields in rows:
            if not fields:  # expired since it was indexed
                continue
            if owner is not None and fields.get(FeedbackField.OWNER, "") != owner:
                continue
            if rating is not None and fields.get(FeedbackField.RATING) != rating:
                continue
            if to_skip:
                to_skip -= 1
                continue
            found.append(parse_feedback(fields))
    return found[:limit]
