"""Local fake of ZhipuAI's HTTP API (open.bigmodel.cn ``/api/paas/v4``) for tests and benchmarks.

Point the real ``zhipuai`` SDK at it with ``base_url=server.base_url`` (or env ``ZHIPUAI_BASE_URL``).
Implemented protocol parts:

* ``POST /api/paas/v4/chat/completions`` -- non-streaming: a ``Completion`` JSON whose content is the
  joined configured ``tokens``; ``"stream": true``: ``text/event-stream`` with one
  ``data: {chunk}\\n\\n`` per token (``choices[0].delta = {role, content}``), a final chunk with
  ``finish_reason: "stop"``, ``usage`` and *no* ``content`` (so llama-index yields exactly the tokens),
  then ``data: [DONE]\\n\\n``.
* ``POST /api/paas/v4/embeddings`` -- ``input`` str or list of str; deterministic unit vectors from
  :mod:`harness.fakes.zhipu_vectors` (embedding-2: 1024-d, other models honour ``dimensions``).
* ``Authorization: Bearer ...`` is required (401 otherwise) when ``require_auth``; not verified.
* Errors use Zhipu's shape ``{"error": {"code": "...", "message": "..."}}``.

Failure injection (config keys, see ``DEFAULT_CONFIG``): ``chat_fail_status`` / ``embedding_fail_status``
answer immediately with that HTTP status and Zhipu's error JSON (SDK: ``APIInternalError`` for 500,
``APIReachLimitError`` 429, ``APIRequestFailedError`` 400, ``APIServerFlowExceedError`` 503, else
``APIStatusError``; note the SDK retries 429/5xx ``max_retries`` times, default 3, with backoff).
``chat_fail_count`` / ``embedding_fail_count`` = N limits that to the next N requests, after which the
server answers normally (retries that end in success); None (default) fails every request.
``chat_fail_after=N`` (streams only; N <= len(tokens)) stops after N token chunks, either with an SSE
``data: {"error": {...}}`` frame and no ``[DONE]`` (``chat_fail_mode="error_frame"``, default: iteration
raises ``zhipuai.core._errors.APIResponseError("An error occurred during streaming")`` whose
``json_data`` is the error object) or by dropping the connection mid chunked body (``"disconnect"``:
iteration raises ``httpx.RemoteProtocolError``, uncaught by the SDK; uvicorn logs "ASGI callable
returned without completing response."). ``fail_should_retry`` (bool) adds ``x-should-retry: true|false``
to failed responses, which the SDK obeys (``False`` avoids the retry sleeps).

Control/inspection: ``GET|POST /_control`` (POST merges JSON into config), ``POST /_control/reset``
(back to the construction-time config, records cleared), ``GET /_requests`` ->
``{"requests": [{path, body, ts, auth, ...}], "counters": {...}}``; streamed chat records also carry
``chunks_sent``, ``completed`` and ``disconnected`` (client went away before the stream finished).

In-process use: ``with ZhipuFakeServer(token_delay_ms=5) as srv: ...``; CLI: ``python -m
harness.fakes.zhipu_server --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn

from harness import local_http

from .zhipu_app import API_PREFIX, DEFAULT_CONFIG, DEFAULT_TOKENS, FakeState, build_app

__all__ = ["API_PREFIX", "DEFAULT_CONFIG", "DEFAULT_TOKENS", "FakeState", "ZhipuFakeServer", "build_app", "main"]


class ZhipuFakeServer:
    """Runs the fake in a background uvicorn thread on 127.0.0.1 (``port=0``: pick a free port)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", **config: Any) -> None:
        self.host, self.port = host, port
        self.state = FakeState(**config)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + API_PREFIX

    def start(self, timeout: float = 10.0) -> ZhipuFakeServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"zhipu-fake-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if local_http.get(self.url + "/_requests", timeout=1, trust_env=False).status_code == 200:
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"fake ZhipuAI server did not start on {self.url}")

    def configure(self, **kw: Any) -> dict[str, Any]:
        return self.state.configure(**kw)

    def reset(self) -> None:
        self.state.reset()

    def requests(self, path_suffix: str = "") -> list[dict[str, Any]]:
        return [r for r in self.state.dump()["requests"] if r["path"].endswith(path_suffix)]

    def counters(self) -> dict[str, int]:
        return dict(self.state.dump()["counters"])

    def wait_for_active_streams(self, count: int, timeout_s: float = 30) -> int:
        """Wait until `count` chat streams are open at once (or `timeout_s` passes); the most ever open at once."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.counters()["active_streams"] < count:
            time.sleep(0.05)
        return self.counters()["max_active_streams"]

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> ZhipuFakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m harness.fakes.zhipu_server",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Fake ZhipuAI API (chat/completions + embeddings). Point the zhipuai SDK at "
        "http://HOST:PORT/api/paas/v4 (base_url=... or env ZHIPUAI_BASE_URL). "
        "Tweak at runtime with POST /_control, inspect with GET /_requests.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind")
    p.add_argument("--port", type=int, default=8765, help="TCP port")
    p.add_argument("--first-token-delay-ms", type=float, default=0, help="delay before the first chunk")
    p.add_argument("--token-delay-ms", type=float, default=0, help="delay between chunks")
    p.add_argument("--embedding-delay-ms", type=float, default=0, help="delay per /embeddings request")
    p.add_argument("--tokens-count", type=int, help="emit N tokens '词0'..'词N-1'; None: built-in 13-token list")
    p.add_argument("--chat-fail-status", type=int, help="answer every chat request with this HTTP status")
    p.add_argument("--chat-fail-after", type=int, help="abort streams after N token chunks")
    p.add_argument(
        "--chat-fail-mode",
        choices=["error_frame", "disconnect", "malformed"],
        default="error_frame",
        help="how --chat-fail-after aborts: SSE error frame, dropped connection, or a data line that is not JSON",
    )
    p.add_argument("--embedding-fail-status", type=int, help="answer every /embeddings call with this status")
    p.add_argument("--no-auth", action="store_true", help="do not require an Authorization header")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = _parse_args(argv)
    keys = (
        "first_token_delay_ms",
        "token_delay_ms",
        "embedding_delay_ms",
        "chat_fail_status",
        "chat_fail_after",
        "chat_fail_mode",
        "embedding_fail_status",
    )
    config: dict[str, Any] = {k: getattr(a, k) for k in keys}
    config["require_auth"] = not a.no_auth
    if a.tokens_count is not None:
        config["tokens"] = [f"词{i}" for i in range(a.tokens_count)]
    print(f"fake ZhipuAI listening: base_url=http://{a.host}:{a.port}{API_PREFIX}", flush=True)
    uvicorn.run(
        build_app(FakeState(**config)),
        host=a.host,
        port=a.port,
        log_level=a.log_level,
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
