"""The HTTP side of `ragq`: one httpx client, API errors turned into one-line `CliError`s, SSE reading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

CONNECT_TIMEOUT_S = 5.0
# Streams send a ping comment every few seconds, so a minute of silence means the server is gone.
READ_TIMEOUT_S = 60.0


class CliError(Exception):
    """A failure `ragq` reports as one line on stderr, exiting with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def describe_error(response: httpx.Response) -> str:
    """The API's error shape {"error": {"code", "message"}} as one line; any other body, shortened."""
    response.read()
    if response.status_code == 401:  # keys on (docs/security.md): say which option to set, not just "unauthorized"
        return "the API needs a valid API key: pass --api-key KEY or set RAGQ_API_KEY (HTTP 401)"
    try:
        error = response.json()["error"]
        return f"{error['message']} ({error['code']}, HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        body = " ".join(response.text.split())[:200]
        return f"HTTP {response.status_code} from {response.request.url}: {body or response.reason_phrase}"


class ApiClient:
    """Calls the ragqueue API at `base_url`; every failure raises a CliError a person can act on."""

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        # Requests go to base_url only (no redirects are followed), so plain HTTP never uses TLS: skip loading the
        # CA bundle into httpx's default TLS context, about 45 ms of every run's CPU.
        verify = self.base_url.startswith("https://")
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, verify=verify)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _unreachable(self, exc: httpx.HTTPError) -> CliError:
        reason = str(exc) or type(exc).__name__
        return CliError(f"cannot reach the ragqueue API at {self.base_url} ({reason}); set --api or RAGQ_API")

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a 2xx answer."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise CliError(describe_error(response))
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(
                f"{method} {path} answered something that is not JSON; is {self.base_url} ragqueue?"
            ) from exc

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def events(self, path: str) -> Iterator[tuple[str, Any]]:
        """(event name, parsed data) of an SSE stream, until the server ends it."""
        try:
            with connect_sse(self.http, "GET", path) as source:
                if source.response.status_code >= 400:
                    raise CliError(describe_error(source.response))
                for sse in source.iter_sse():
                    if sse.data:  # pings are comments; httpx-sse skips them
                        yield sse.event, json.loads(sse.data)
        except SSEError as exc:
            raise CliError(f"{path} is not an event stream: {exc}") from exc
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    def data_stream(self, path: str, body: dict[str, Any]) -> Iterator[tuple[httpx.Headers, Any]]:
        """(response headers, parsed `data:`) of a POSTed OpenAI-style stream, up to `data: [DONE]`."""
        try:
            with connect_sse(self.http, "POST", path, json=body) as source:
                if source.response.status_code >= 400:
                    raise CliError(describe_error(source.response))
                for sse in source.iter_sse():
                    if sse.data == "[DONE]":
                        return
                    if sse.data:
                        yield source.response.headers, json.loads(sse.data)
        except SSEError as exc:
            raise CliError(f"{path} is not an event stream: {exc}") from exc
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
