"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import CeleryDep, RedisDep
from api.errors import error_json

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis answers and at least one worker answers a ping; 503 with the reason otherwise")
async def readyz(redis: RedisDep, celery: CeleryDep) -> JSONResponse:
    try:
        await redis.ping()
    except Exception as exc:
        return error_json(503, "redis_unavailable", f"Redis at the configured REDIS_URL does not answer: {exc}")
    try:
        replies = await run_in_threadpool(celery.control.ping, timeout=1.0)
    except Exception as exc:
        return error_json(503, "broker_unavailable", f"could not ping workers: {exc}")
    workers = sorted(name for reply in replies for name in reply)
    if not workers:
        return error_json(503, "no_workers", "no Celery worker answered a ping; start one (see `make up`)")
    return JSONResponse({"status": "ready", "redis": "ok", "workers": workers})
