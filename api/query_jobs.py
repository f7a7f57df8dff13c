"""Accepting a query: validate it, record the job, dispatch it to the `query` queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from api.collection_checks import check_queryable
from api.errors import ApiError
from api.job_records import create_job
from api.key_limits import KeyGate
from api.pubsub_hub import PubSubHub
from api.query_dispatch import QueryDispatcher
from api.relay import EventBatch, relay_events, subscribe
from shared.jobs.records import JobKind, new_job_id
from shared.jobs.tasks import ChatTurn, QueryTask
from shared.settings import Settings
from shared.store import Store, valid_collection_name
from shared.store.retrieval_modes import DEFAULT_MODE, RetrievalMode


async def check_query(settings: Settings, store: Store, collection: str, question: str) -> str:
    """The cleaned question, or a 4xx ApiError a person can act on."""
    if not valid_collection_name(collection):
        raise ApiError(
            422, "invalid_collection", f"collection name {collection!r} must match ^[a-z0-9][a-z0-9_-]{{0,63}}$"
        )
    question = question.strip()
    if not question:
        raise ApiError(422, "empty_question", "the question is empty")
    if len(question) > settings.MAX_QUESTION_CHARS:
        raise ApiError(
            413,
            "question_too_long",
            f"the question has {len(question)} characters; the limit is "
            f"{settings.MAX_QUESTION_CHARS} (MAX_QUESTION_CHARS)",
        )
    await check_queryable(settings, store, collection)
    return question


def check_history_texts(earlier: list[str], max_turns: int, max_chars: int) -> None:
    """Bound the earlier turns (MAX_HISTORY_TURNS, MAX_HISTORY_CHARS): each costs worker and upstream work."""
    if len(earlier) > max_turns:
        raise ApiError(
            422,
            "history_too_long",
            f"{len(earlier)} messages before the question; the limit is {max_turns} (MAX_HISTORY_TURNS)",
        )
    chars = 0
    for number, text in enumerate(earlier, start=1):
        size = len(text)
        chars += size
        if chars > max_chars:  # a single huge message is named, the total is the limit
            raise ApiError(
                422,
                "history_too_long",
                f"message {number} brings the earlier messages to {chars} characters ({size} in it); "
                f"the limit is {max_chars} together (MAX_HISTORY_CHARS)",
            )


@dataclass(frozen=True)
class QuerySpec:
    """What a query job answers; becomes the `query` task's arguments."""

    collection: str
    question: str
    top_k: int | None = None
    history: list[ChatTurn] = field(default_factory=list)
    mode: RetrievalMode = DEFAULT_MODE
    rerank: bool = True


async def _dispatch(dispatcher: QueryDispatcher, settings: Settings, job_id: str, spec: QuerySpec, owner: str) -> None:
    task = QueryTask(
        job_id=job_id,
        collection=spec.collection,
        question=spec.question,
        top_k=spec.top_k or settings.TOP_K,
        history=spec.history,
        mode=spec.mode,
        rerank=spec.rerank,
        owner=owner,
    )
    await dispatcher.send(task)


async def _create(redis: aioredis.Redis, settings: Settings, spec: QuerySpec, gate: KeyGate) -> str:
    """Count the question against the caller's limits (429 past one), then record the job."""
    job_id = new_job_id()
    await gate.admit_question(job_id)
    return await create_job(redis, settings, JobKind.QUERY, spec.collection, owner=gate.principal.owner, job_id=job_id)


async def submit_query(
    redis: aioredis.Redis, dispatcher: QueryDispatcher, settings: Settings, spec: QuerySpec, *, gate: KeyGate
) -> str:
    job_id = await _create(redis, settings, spec, gate)
    await _dispatch(dispatcher, settings, job_id, spec, gate.principal.owner)
    return job_id


async def submit_and_subscribe(
    redis: aioredis.Redis,
    hub: PubSubHub,
    dispatcher: QueryDispatcher,
    settings: Settings,
    spec: QuerySpec,
    *,
    gate: KeyGate,
) -> tuple[str, AsyncIterator[EventBatch]]:
    """Submit a query and return its events, subscribed before dispatch so none can be missed."""
    job_id = await _create(redis, settings, spec, gate)
    subscription = await subscribe(hub, job_id)
    try:
        await _dispatch(dispatcher, settings, job_id, spec, gate.principal.owner)
    except Exception:
        await subscription.close()
        raise
    events = relay_events(
        redis,
        hub,
        job_id,
        subscription=subscription,
        replay_ttl_s=settings.REPLAY_TTL_S,
        queue_timeout_s=settings.QUEUE_TIMEOUT_S,
        heartbeat_grace_s=settings.HEARTBEAT_INTERVAL_S,
    )
    return job_id, events
