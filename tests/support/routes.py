"""The app's routes as FastAPI runs them, for tests that check every route: which routes, which dependencies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute


def routes(app_routes: list[Any], inherited: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """(route, dependencies of the routers that include it); FastAPI 0.16x keeps included routers as a branch."""
    for route in app_routes:
        inner = getattr(route, "original_router", None)
        if inner is None:
            yield route, inherited
        else:
            deps = tuple(d.dependency for d in route.include_context.dependencies or [])
            yield from routes(inner.routes, inherited + deps)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def dependency_calls(route: APIRoute, inherited: tuple[Any, ...]) -> set[Callable[..., Any]]:
    """Every dependency FastAPI calls for `route`: its own, its routers', and theirs, at any depth."""
    calls = set(_calls(route.dependant))
    for dependency in inherited:
        calls.add(dependency)
        calls |= set(_calls(get_dependant(path=route.path, call=dependency)))
    return calls
