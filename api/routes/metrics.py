"""`GET /metrics`: the stack's figures for Prometheus (api/metrics.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import RedisDep
from api.metrics import render, take_snapshot

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics: jobs, queue depth, streams, answer latency, admission")
async def metrics(request: Request, redis: RedisDep) -> Response:
    snap = await take_snapshot(redis, request.app.state.consumers)
    return Response(render(snap), media_type=CONTENT_TYPE_LATEST)
