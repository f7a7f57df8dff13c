"""Liveness, readiness, and the stack's status: Redis, the store, and per queue its workers and messages waiting.

`/readyz` and `/v1/status` share one check (`stack_check`): `/readyz` answers 503 naming every problem found,
`/v1/status` always answers 200 with the same findings. Which workers consume each queue comes from the
process's cached ping (api/queue_workers.py), so probes cost a broadcast at most every WORKER_PING_CACHE_S.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import authenticate
from api.deps import RedisDep, SettingsDep, StoreDep
from api.errors import ErrorBody
from api.openapi_responses import errors
from api.queue_workers import ConsumerProbe, queue_depths
from shared.jobs.tasks import INDEX_QUEUE, QUERY_QUEUE
from shared.settings import Settings
from shared.store import Store

router = APIRouter(tags=["health"])

QUEUES = (INDEX_QUEUE, QUERY_QUEUE)
STORE_CHECK_TIMEOUT_S = 3.0


class QueueStatus(BaseModel):
    name: str
    workers: list[str] = Field(description="Workers consuming this queue")
    waiting: int | None = Field(description="Messages not yet taken by a worker; null if Redis did not say")


class StackStatus(BaseModel):
    ready: bool
    problem: ErrorBody | None = Field(description="Why the stack cannot answer (every reason found); null when ready")
    redis: str = Field(description="`ok`, or why not")
    store: str = Field(description="`ok`, or why not")
    queues: list[QueueStatus]


@router.get("/healthz", summary="The API process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _redis_check(redis: Any) -> str:
    try:
        await redis.ping()
    except Exception as exc:
        return f"Redis at the configured REDIS_URL does not answer: {exc}"
    return "ok"


async def _store_check(store: Store, settings: Settings) -> str:
    """A cheap read (the collection names) within a few seconds; never shows the store's URL, password or path."""
    try:
        await asyncio.wait_for(run_in_threadpool(store.collection_names), STORE_CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"the collection store did not answer within {STORE_CHECK_TIMEOUT_S:.0f} s"
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if settings.VECTOR_STORE_URL:
            detail = detail.replace(settings.VECTOR_STORE_URL, "VECTOR_STORE_URL")
        # /readyz is open: name the folder by its setting, never by where the server keeps it.
        for folder in sorted({str(settings.DATA_DIR.resolve()), str(settings.DATA_DIR)}, key=len, reverse=True):
            detail = detail.replace(folder, "DATA_DIR")
        return f"the collection store does not answer: {detail}"
    return "ok"


async def stack_check(redis: Any, probe: ConsumerProbe, store: Store, settings: Settings) -> StackStatus:
    """Redis, the store, and per queue whether any worker consumes it; every problem found, first one's code."""
    redis_state, store_state = await asyncio.gather(_redis_check(redis), _store_check(store, settings))
    by_queue = await probe.by_queue()
    depths: dict[str, int] = {}
    if redis_state == "ok":
        try:
            depths = await queue_depths(redis, QUEUES)
        except Exception:
            depths = {}
    queues = [QueueStatus(name=q, workers=(by_queue or {}).get(q, []), waiting=depths.get(q)) for q in QUEUES]
    problems: list[tuple[str, str]] = []
    if redis_state != "ok":
        problems.append(("redis_unavailable", redis_state))
    if store_state != "ok":
        problems.append(("store_unavailable", store_state))
    if by_queue is None:
        problems.append(("broker_unavailable", "could not reach the workers through the broker"))
    elif not any(q.workers for q in queues):
        problems.append(("no_workers", "no Celery worker answered a ping; start them (see `make up`)"))
    else:
        for q in queues:
            if not q.workers:
                waiting = f", {q.waiting} messages waiting" if q.waiting else ""
                problems.append((f"no_{q.name}_workers", f"no worker consumes the `{q.name}` queue{waiting}"))
    problem = None
    if problems:
        problem = ErrorBody(code=problems[0][0], message="; ".join(message for _, message in problems))
    return StackStatus(ready=not problems, problem=problem, redis=redis_state, store=store_state, queues=queues)


@router.get(
    "/readyz",
    responses=errors(503),
    summary="Redis and the store answer and every queue has a worker; 503 naming what is wrong otherwise",
)
async def readyz(request: Request, redis: RedisDep, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    status = await stack_check(redis, request.app.state.consumers, store, settings)
    queues = [q.model_dump() for q in status.queues]
    if status.problem:
        body = {"error": status.problem.model_dump(), "redis": status.redis, "store": status.store, "queues": queues}
        return JSONResponse(body, status_code=503)
    workers = sorted({w for q in status.queues for w in q.workers})
    return JSONResponse({"status": "ready", "redis": "ok", "store": "ok", "workers": workers, "queues": queues})


@router.get(
    "/v1/status",
    response_model=StackStatus,
    dependencies=[Depends(authenticate)],  # /healthz and /readyz stay open for probes; this one is /v1
    responses=errors(401),
    summary="Read-only: ready or why not, and per queue the workers consuming it and the messages waiting",
)
async def stack_status(request: Request, redis: RedisDep, store: StoreDep, settings: SettingsDep) -> StackStatus:
    return await stack_check(redis, request.app.state.consumers, store, settings)
