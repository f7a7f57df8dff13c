"""Typed dependencies: settings, Redis clients and the Celery app, created in the lifespan."""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from celery import Celery
from fastapi import Depends, Request

from shared.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> aioredis.Redis:
    return request.app.state.redis


def get_relay_redis(request: Request) -> aioredis.Redis:
    """A client with no socket timeout, for blocking pub/sub reads (STYLE.md pitfall: redis-py 8)."""
    return request.app.state.relay_redis


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
RelayRedisDep = Annotated[aioredis.Redis, Depends(get_relay_redis)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
