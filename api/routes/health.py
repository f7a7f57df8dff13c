"""Liveness, readiness, and the stack's status: workers per queue and messages waiting."""

from __future__ import annotations

from typing import Any

from celery import Celery
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from kombu.exceptions import ChannelError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import CeleryDep, RedisDep
from api.errors import ErrorBody, error_json
from shared.tasks import INDEX_QUEUE, QUERY_QUEUE

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _problem(redis: Any, workers: list[str] | None) -> ErrorBody | None:
    """Why the stack cannot answer (Redis down, broker down, no worker), or None when it can."""
    try:
        await redis.ping()
    except Exception as exc:
        return ErrorBody(code="redis_unavailable", message=f"Redis at the configured REDIS_URL does not answer: {exc}")
    if workers is None:
        return ErrorBody(code="broker_unavailable", message="could not reach the workers through the broker")
    if not workers:
        return ErrorBody(code="no_workers", message="no Celery worker answered a ping; start one (see `make up`)")
    return None


def _ping(celery: Celery) -> list[str] | None:
    try:
        replies = celery.control.ping(timeout=1.0)
    except Exception:
        return None
    return sorted(name for reply in replies for name in reply)


@router.get("/readyz", summary="Redis answers and at least one worker answers a ping; 503 with the reason otherwise")
async def readyz(redis: RedisDep, celery: CeleryDep) -> JSONResponse:
    workers = await run_in_threadpool(_ping, celery)
    problem = await _problem(redis, workers)
    if problem:
        return error_json(503, problem.code, problem.message)
    return JSONResponse({"status": "ready", "redis": "ok", "workers": workers})


class QueueStatus(BaseModel):
    name: str
    workers: list[str] = Field(description="Workers consuming this queue")
    waiting: int | None = Field(description="Messages not yet taken by a worker; null if the broker did not say")


class StackStatus(BaseModel):
    ready: bool
    problem: ErrorBody | None = Field(description="Why the stack cannot answer; null when ready")
    queues: list[QueueStatus]


def _workers_by_queue(celery: Celery) -> dict[str, list[str]] | None:
    try:
        replies: dict[str, list[dict[str, Any]]] | None = celery.control.inspect(timeout=1.0).active_queues()
    except Exception:
        return None
    by_queue: dict[str, list[str]] = {}
    for worker, queues in (replies or {}).items():
        for queue in queues or []:
            by_queue.setdefault(queue["name"], []).append(worker)
    return {name: sorted(workers) for name, workers in by_queue.items()}


def _waiting(celery: Celery, queue: str) -> int | None:
    try:
        with celery.connection_for_read() as conn:
            return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError:  # a passive declare of a queue the broker has no messages for
        return 0
    except Exception:
        return None


def _queue_status(celery: Celery) -> tuple[list[str] | None, list[QueueStatus]]:
    by_queue = _workers_by_queue(celery)
    queues = [
        QueueStatus(name=q, workers=(by_queue or {}).get(q, []), waiting=_waiting(celery, q))
        for q in (INDEX_QUEUE, QUERY_QUEUE)
    ]
    workers = None if by_queue is None else sorted({w for names in by_queue.values() for w in names})
    return workers, queues


@router.get(
    "/v1/status",
    response_model=StackStatus,
    summary="Read-only: ready or why not, and per queue the workers consuming it and the messages waiting",
)
async def stack_status(redis: RedisDep, celery: CeleryDep) -> StackStatus:
    workers, queues = await run_in_threadpool(_queue_status, celery)
    problem = await _problem(redis, workers)
    return StackStatus(ready=problem is None, problem=problem, queues=queues)
