"""`GET /metrics`: the stack's figures for Prometheus (api/metrics.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.auth import KeyRing
from api.deps import RedisDep
from api.metrics import render, take_snapshot
from api.openapi_responses import text_response

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses=text_response(CONTENT_TYPE_LATEST.split(";")[0], why="Prometheus text exposition format"),
    summary="Prometheus metrics: jobs, queue depth, streams, answer latency, admission",
)
async def metrics(request: Request, redis: RedisDep) -> Response:
    ring: KeyRing = request.app.state.keyring
    names = {p.key_id: p.name or p.key_id for _, p in ring.entries if p.key_id}
    snap = await take_snapshot(redis, request.app.state.consumers, names)
    return Response(render(snap), media_type=CONTENT_TYPE_LATEST)
