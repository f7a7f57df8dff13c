"""Typed dependencies made in the lifespan: settings, Redis clients, the Celery app, the query sender; the caller.

Every dependency of the API is `async def`: FastAPI runs a plain `def` one in the thread pool, a thread hop per
dependency per request (seven on `/stream_chat`, about a tenth of the API's CPU per answer under load;
docs/benchmarks.md).
tests/unit/test_dependencies.py keeps it that way.
"""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from celery import Celery
from fastapi import Depends, Request

from api.auth import Principal, authenticate
from api.pubsub_hub import PubSubHub
from api.query_dispatch import QueryDispatcher
from shared.settings import Settings
from shared.store import Store


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_redis(request: Request) -> aioredis.Redis:
    return request.app.state.redis


async def get_hub(request: Request) -> PubSubHub:
    """The process's shared pub/sub connection (api/pubsub_hub.py)."""
    return request.app.state.hub


async def get_store(request: Request) -> Store:
    """The deployment's collection store (embedded SQLite or PostgreSQL), opened in the lifespan."""
    return request.app.state.store


async def get_celery(request: Request) -> Celery:
    return request.app.state.celery


async def get_query_dispatcher(request: Request) -> QueryDispatcher:
    """The process's sender of query tasks (api/query_dispatch.py)."""
    return request.app.state.query_dispatcher


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
HubDep = Annotated[PubSubHub, Depends(get_hub)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
QueryDispatcherDep = Annotated[QueryDispatcher, Depends(get_query_dispatcher)]
StoreDep = Annotated[Store, Depends(get_store)]
# The caller (api/auth.py); every protected router also depends on it, so asking again costs nothing (cached).
PrincipalDep = Annotated[Principal, Depends(authenticate)]
