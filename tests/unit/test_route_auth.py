"""Every route of the app needs a key but the few left open on purpose (docs/security.md), read from the app itself.

The e2e walk (tests/e2e/test_auth.py) calls what the OpenAPI schema lists; this one also sees routes kept out of
the schema, so a hidden route cannot slip through without a key.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from api.auth import authenticate
from api.main import app
from tests.support.routes import dependency_calls, routes

OPEN = {"/healthz", "/readyz", "/metrics", "/"}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _needs_key(route: APIRoute, inherited: tuple[Any, ...]) -> bool:
    return authenticate in dependency_calls(route, inherited)


def test_every_route_but_probes_metrics_and_the_page_needs_a_key() -> None:
    api_routes: list[tuple[Any, tuple[Any, ...]]] = []
    other: list[tuple[Any, tuple[Any, ...]]] = []
    for route, inherited in routes(app.router.routes):
        (api_routes if isinstance(route, APIRoute) else other).append((route, inherited))
    assert len(api_routes) > 20
    for route, inherited in api_routes:
        assert _needs_key(route, inherited) != (route.path in OPEN), f"{sorted(route.methods)} {route.path}"
    for route, _ in other:
        assert (isinstance(route, Mount) and route.path == "/static") or (
            isinstance(route, Route) and route.path in DOCS
        ), f"{route!r} is neither an API route nor the page's assets nor the docs"
