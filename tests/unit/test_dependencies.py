"""No dependency of any route runs in the thread pool: FastAPI hands a plain `def` dependency to a worker thread,
a hop per dependency per request that cost the API about a tenth of its CPU per answer (issue 9, api/deps.py)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute

from api.main import app
from tests.unit.test_route_auth import _routes


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _runs_on_the_loop(call: Callable[..., Any]) -> bool:
    """A coroutine function, or an object whose `__call__` is one (FastAPI's security schemes)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def test_every_dependency_is_async() -> None:
    threaded: set[str] = set()
    for route, inherited in _routes(app.routes):
        if not isinstance(route, APIRoute):
            continue
        calls = set(_calls(route.dependant))
        for dependency in inherited:
            calls.add(dependency)
            calls |= set(_calls(get_dependant(path=route.path, call=dependency)))
        threaded |= {
            f"{call.__module__}.{getattr(call, '__qualname__', call)}" for call in calls if not _runs_on_the_loop(call)
        }
    assert not threaded, f"dependencies FastAPI would run in the thread pool: {sorted(threaded)}"
