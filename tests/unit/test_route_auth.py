"""Every route of the app needs a key but the few left open on purpose (docs/security.md), read from the app itself.

The e2e walk (tests/e2e/test_auth.py) calls what the OpenAPI schema lists; this one also sees routes kept out of
the schema, so a hidden route cannot slip through without a key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from api.auth import authenticate
from api.main import app

OPEN = {"/healthz", "/readyz", "/metrics", "/"}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _routes(routes: list[Any], inherited: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """(route, dependencies of the routers that include it); FastAPI 0.16x keeps included routers as a branch."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is None:
            yield route, inherited
        else:
            deps = tuple(d.dependency for d in route.include_context.dependencies or [])
            yield from _routes(inner.routes, inherited + deps)


def _needs_key(route: APIRoute, inherited: tuple[Any, ...]) -> bool:
    calls = set(_calls(route.dependant))
    for dependency in inherited:
        calls.add(dependency)
        calls |= set(_calls(get_dependant(path=route.path, call=dependency)))
    return authenticate in calls


def test_every_route_but_probes_metrics_and_the_page_needs_a_key() -> None:
    api_routes, other = [], []
    for route, inherited in _routes(app.router.routes):
        (api_routes if isinstance(route, APIRoute) else other).append((route, inherited))
    assert len(api_routes) > 20
    for route, inherited in api_routes:
        assert _needs_key(route, inherited) != (route.path in OPEN), f"{sorted(route.methods)} {route.path}"
    for route, _ in other:
        assert (isinstance(route, Mount) and route.path == "/static") or (
            isinstance(route, Route) and route.path in DOCS
        ), f"{route!r} is neither an API route nor the page's assets nor the docs"
