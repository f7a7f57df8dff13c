"""The ASGI app (`api.main:app`): builds FastAPI, its Redis clients and routes."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from api.admission import AdmissionMiddleware
from api.auth import AuthConfigError, load_keyring, require_path_collection
from api.body_limit import BodyLimitMiddleware
from api.errors import install_error_handlers
from api.idempotency import REPLAYED_HEADER
from api.key_limits import RATELIMIT_HEADERS, RateLimitHeadersMiddleware, key_gate
from api.keyring_reload import keyring_reloads
from api.openapi_responses import errors
from api.pubsub_hub import PubSubHub
from api.query_dispatch import QueryDispatcher
from api.queue_workers import ConsumerProbe
from api.routes import (
    collections,
    documents,
    evaluations,
    feedback,
    health,
    jobs,
    metrics,
    openai_compat,
    queries,
    stream_chat,
    usage,
    web,
)
from shared.jobs.dispatch import create_celery
from shared.ops.gc_tuning import tune_gc
from shared.ops.log_setup import configure_api_logging
from shared.settings import get_settings
from shared.store import StoreUnavailableError, open_store


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.settings = settings
    configure_api_logging(settings)  # after uvicorn configured its loggers: redacted, JSON with LOG_JSON
    try:
        app.state.keyring = load_keyring(settings)
    except AuthConfigError as exc:  # one line, no traceback, as for the store below
        print(f"ragqueue api: cannot start: {exc}", file=sys.stderr, flush=True)
        os._exit(3)
    try:
        app.state.store = await run_in_threadpool(open_store, settings)
    except StoreUnavailableError as exc:
        # One line a person can act on, then stop. Any exception out of a lifespan makes uvicorn print
        # a traceback, which buries the line; nothing has been started yet, so leaving at once is safe.
        print(f"ragqueue api: cannot start: {exc}", file=sys.stderr, flush=True)
        os._exit(3)

    def pool(**options: object) -> aioredis.BlockingConnectionPool:
        return aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            decode_responses=True,
            max_connections=settings.REDIS_MAX_CONNECTIONS,
            timeout=settings.REDIS_POOL_TIMEOUT_S,
            **options,
        )

    app.state.redis = aioredis.Redis(connection_pool=pool())
    # No socket timeout: pub/sub reads block, and redis-py 8 defaults socket_timeout to 5 s.
    app.state.pubsub_redis = aioredis.Redis(connection_pool=pool(socket_timeout=None))
    app.state.hub = PubSubHub(app.state.pubsub_redis)
    await app.state.hub.start()
    app.state.celery = create_celery(settings)  # a producer only: api/ never imports workers/
    app.state.query_dispatcher = QueryDispatcher(app.state.celery, settings.QUERY_BATCH_MAX)
    tune_gc(settings.GC_THRESHOLD)  # last: everything built above is frozen
    app.state.consumers = ConsumerProbe(app.state.celery, settings.WORKER_PING_TIMEOUT_S, settings.WORKER_PING_CACHE_S)
    try:
        async with keyring_reloads(app.state, settings):  # API_KEYS_FILE on SIGHUP and when it changes
            yield
    finally:
        await app.state.redis.aclose()
        await app.state.hub.stop()
        await app.state.pubsub_redis.aclose()
        await run_in_threadpool(app.state.store.close)


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="ragqueue",
        version="0.1.0",
        summary="RAG over your own documents: index jobs and streamed answers through Celery, Redis and SSE.",
        lifespan=lifespan,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.MAX_JSON_BODY_BYTES,
        max_upload_bytes=settings.MAX_UPLOAD_REQUEST_BYTES,
    )
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(AdmissionMiddleware)  # inside CORS, so a refusal carries CORS headers too
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,  # none by default once keys are on (docs/security.md)
        allow_methods=["*"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
        expose_headers=["Content-Type", "X-Job-Id", REPLAYED_HEADER, "Retry-After", *RATELIMIT_HEADERS],
    )
    install_error_handlers(app)
    # Open: probes, metrics and the page (its API calls carry the key). Health's /v1/status asks for a key itself.
    for module in (health, metrics, web):
        app.include_router(module.router)
    # Everything else needs a key when keys are on, a `{collection}` in the path the key may use, and counts
    # against the key's requests_per_minute (api/key_limits.py).
    for module in (collections, documents, evaluations, jobs, queries, feedback, usage, openai_compat, stream_chat):
        app.include_router(
            module.router,
            dependencies=[Depends(require_path_collection), Depends(key_gate)],
            responses=errors(401, 429),
        )
    app.state.clock = time.time  # "now" for the per-key limits; tests may set another
    app.mount("/static", web.static_files(), name="static")
    return app


app = create_app()
