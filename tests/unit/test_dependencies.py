"""No dependency of any route runs in the thread pool: FastAPI hands a plain `def` dependency to a worker thread,
a hop per dependency per request that cost the API about a tenth of its CPU per answer (api/deps.py)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute

from api.main import app
from tests.support.routes import dependency_calls, routes


def _runs_on_the_loop(call: Callable[..., Any]) -> bool:
    """A coroutine function, or an object whose `__call__` is one (FastAPI's security schemes)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def test_every_dependency_is_async() -> None:
    threaded: set[str] = set()
    for route, inherited in routes(app.routes):
        if isinstance(route, APIRoute):
            threaded |= {
                f"{call.__module__}.{getattr(call, '__qualname__', call)}"
                for call in dependency_calls(route, inherited)
                if not _runs_on_the_loop(call)
            }
    assert not threaded, f"dependencies FastAPI would run in the thread pool: {sorted(threaded)}"
