"""ASGI app of the fake ZhipuAI server: config/record state, SSE chat stream, routes.

See :mod:`harness.fakes.zhipu_server` for the protocol description, the in-process
``ZhipuFakeServer`` helper and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .zhipu_vectors import dimension_for, embedding_array

API_PREFIX = "/api/paas/v4"
DEFAULT_TOKENS = ["根据", "资料", "，", "KV", " 缓存", "可以", "避免", "重复", "计算", "，", "加速", "推理", "。"]
DEFAULT_CONFIG: dict[str, Any] = {
    "tokens": DEFAULT_TOKENS,
    "first_token_delay_ms": 0,
    "token_delay_ms": 0,
    # The pause before each token after the first, one per gap; past its end (or None) token_delay_ms applies.
    "token_gaps_ms": None,
    "embedding_delay_ms": 0,
    "rerank_delay_ms": 0,
    # A text holding this string gets the top rerank score, whatever the query (None: scores by shared bigrams).
    "rerank_boost": None,
    "rerank_fail_status": None,
    "rerank_fail_count": None,
    "chat_fail_status": None,
    "chat_fail_after": None,
    "chat_fail_mode": "error_frame",  # or "disconnect", or "malformed" (a data line that is not JSON)
    "embedding_fail_status": None,
    # How many requests the *_fail_status applies to before the server answers normally again (None: all of them):
    # "the next N responses fail", for retries that end in success.
    "chat_fail_count": None,
    "embedding_fail_count": None,
    "fail_should_retry": None,  # None: no x-should-retry header; True/False: send it
    "require_auth": True,
}
_ERROR_CODES = {401: "1000", 429: "1302", 400: "1214"}
_COUNTERS = (
    "chat_requests",
    "stream_requests",
    "embedding_requests",
    "embedding_inputs",
    "rerank_requests",
    "failures",
    "completed_streams",
    "disconnects",
    "active_streams",
    "max_active_streams",
)


class FakeState:
    """Config, request records and counters; guarded by a lock (read from test threads)."""

    def __init__(self, **config: Any) -> None:
        self.lock = threading.Lock()
        self._initial = self._validated({**copy.deepcopy(DEFAULT_CONFIG), **config})
        self.reset()

    @staticmethod
    def _validated(config: dict[str, Any]) -> dict[str, Any]:
        unknown = set(config) - set(DEFAULT_CONFIG)
        if unknown:
            raise ValueError(f"unknown fake-zhipu config keys: {sorted(unknown)}")
        if config["chat_fail_mode"] not in ("error_frame", "disconnect", "malformed"):
            raise ValueError("chat_fail_mode must be 'error_frame', 'disconnect' or 'malformed'")
        return config

    def reset(self) -> None:
        with self.lock:
            active = getattr(self, "counters", {}).get("active_streams", 0)  # a gauge: survives resets
            self.config = copy.deepcopy(self._initial)
            self.records: list[dict[str, Any]] = []
            self.counters = dict.fromkeys(_COUNTERS, 0)
            self.counters["active_streams"] = active

    def configure(self, **kw: Any) -> dict[str, Any]:
        with self.lock:
            self.config = self._validated({**self.config, **kw})
            return copy.deepcopy(self.config)

    def take_failure(self, kind: str) -> int | None:
        """The status to fail this `kind` ("chat", "embedding", "rerank") request with, counted against its limit."""
        with self.lock:
            status, left = self.config[f"{kind}_fail_status"], self.config[f"{kind}_fail_count"]
            if not status or left is not None and left <= 0:
                return None
            if left is not None:
                self.config[f"{kind}_fail_count"] = left - 1
            return int(status)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.config)

    def record(self, path: str, body: Any, auth: str | None, **extra: Any) -> dict[str, Any]:
        rec = {"path": path, "body": body, "ts": time.time(), "auth": auth, **extra}
        with self.lock:
            self.records.append(rec)
        return rec

    def update(self, rec: dict[str, Any], **fields: Any) -> None:
        with self.lock:
            rec.update(fields)

    def bump(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] += n
            if name == "active_streams":
                self.counters["max_active_streams"] = max(
                    self.counters["max_active_streams"], self.counters["active_streams"]
                )

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": copy.deepcopy(self.records), "counters": dict(self.counters)}


def rerank_score(query: str, text: str, boost: str | None) -> float:
    """Deterministic relevance in [0, 2): the share of the query's character bigrams in the text, +1 if boosted."""
    pairs = {query[i : i + 2] for i in range(len(query) - 1)} or {query}
    shared = sum(1 for pair in pairs if pair in text) / len(pairs)
    return round(shared + (1.0 if boost and boost in text else 0.0), 6)


def _error(status: int, message: str, should_retry: bool | None = None) -> JSONResponse:
    headers = {} if should_retry is None else {"x-should-retry": str(bool(should_retry)).lower()}
    body = {"error": {"code": _ERROR_CODES.get(status, "1234"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _sse(payload: Any) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _prompt_len(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content") or "")) for m in body.get("messages") or [] if isinstance(m, dict))


async def _sleep_ms(ms: float) -> None:
    if ms and ms > 0:
        await asyncio.sleep(ms / 1000)


def _gap_ms(cfg: dict[str, Any], token: int) -> float:
    """The pause before token number `token` (1 for the second token): its entry of token_gaps_ms, if any."""
    gaps = cfg["token_gaps_ms"]
    return float(gaps[token - 1]) if gaps is not None and token <= len(gaps) else float(cfg["token_delay_ms"])


class ChatStream:
    """ASGI response streaming SSE chunks while watching for ``http.disconnect``."""

    def __init__(self, state: FakeState, rec: dict[str, Any], cfg: dict[str, Any], body: dict[str, Any]):
        self.state, self.rec, self.cfg, self.body = state, rec, cfg, body
        self.id = f"fake-{uuid.uuid4().hex[:16]}"
        self.finishing = False

    def _chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, usage: dict[str, int] | None = None
    ) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        extra: dict[str, Any] = {}
        if finish_reason:
            choice["finish_reason"] = finish_reason
        if usage:
            extra["usage"] = usage
        return _sse(
            {"id": self.id, "created": int(time.time()), "model": self.body.get("model"), "choices": [choice], **extra}
        )

    async def _produce(self, send: Send) -> None:
        tokens, fail_after = list(self.cfg["tokens"]), self.cfg["chat_fail_after"]
        failing = fail_after is not None and fail_after <= len(tokens)
        await _sleep_ms(self.cfg["first_token_delay_ms"])
        for i, token in enumerate(tokens[:fail_after] if failing else tokens):
            if i:
                await _sleep_ms(_gap_ms(self.cfg, i))
            frame = self._chunk({"role": "assistant", "content": token})
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            self.state.update(self.rec, chunks_sent=i + 1)
        self.finishing = True
        if failing:
            self.state.bump("failures")
            self.state.update(self.rec, failed=True)
            if self.cfg["chat_fail_mode"] == "disconnect":
                return  # returning without more_body=False makes uvicorn drop the connection
            if self.cfg["chat_fail_mode"] == "malformed":
                await send({"type": "http.response.body", "body": b'data: {"choices": [tru\n\n', "more_body": False})
                return
            err = {"error": {"code": "1234", "message": f"fake stream failure after {fail_after} chunks"}}
            await send({"type": "http.response.body", "body": _sse(err), "more_body": False})
            return
        final = self._chunk(
            {"role": "assistant"}, finish_reason="stop", usage=_usage(_prompt_len(self.body), len(tokens))
        )
        await send({"type": "http.response.body", "body": final + _sse("[DONE]"), "more_body": False})
        self.state.update(self.rec, completed=True)
        self.state.bump("completed_streams")

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        self.state.bump("active_streams")
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            producer = asyncio.ensure_future(self._produce(send))
            watcher = asyncio.ensure_future(self._watch(receive))
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not producer.done() and not self.finishing:
                producer.cancel()
                self.state.update(self.rec, disconnected=True)
                self.state.bump("disconnects")
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
        finally:
            self.state.bump("active_streams", -1)


def build_app(state: FakeState) -> Starlette:
    """Starlette app serving the fake API backed by ``state``."""

    def guarded(handler: Callable[[Request, dict[str, Any], str | None], Awaitable[Any]]) -> Any:
        async def endpoint(request: Request) -> Any:
            auth = request.headers.get("authorization")
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "request body is not valid JSON")
            if state.snapshot()["require_auth"] and not (auth or "").startswith("Bearer "):
                state.record(request.url.path, body, auth, status=401)
                return _error(401, "身份验证失败。")
            return await handler(request, body, auth)

        return endpoint

    async def chat(request: Request, body: dict[str, Any], auth: str | None) -> Any:
        cfg, stream = state.snapshot(), bool(body.get("stream"))
        state.bump("chat_requests")
        rec = state.record(
            request.url.path,
            body,
            auth,
            stream=stream,
            chunks_sent=0,
            completed=False,
            disconnected=False,
            failed=False,
        )
        if status := state.take_failure("chat"):
            state.bump("failures")
            state.update(rec, failed=True, status=status)
            return _error(status, "fake injected chat failure", cfg["fail_should_retry"])
        if stream:
            state.bump("stream_requests")
            return ChatStream(state, rec, cfg, body)
        tokens = list(cfg["tokens"])
        await _sleep_ms(cfg["first_token_delay_ms"] + sum(_gap_ms(cfg, i) for i in range(1, len(tokens))))
        state.update(rec, completed=True, chunks_sent=len(tokens))
        message = {"role": "assistant", "content": "".join(tokens)}
        return JSONResponse(
            {
                "id": f"fake-{uuid.uuid4().hex[:16]}",
                "request_id": body.get("request_id"),
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                "usage": _usage(_prompt_len(body), len(tokens)),
            }
        )

    async def embeddings(request: Request, body: dict[str, Any], auth: str | None) -> Any:
        cfg = state.snapshot()
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        state.bump("embedding_requests")
        rec = state.record(request.url.path, body, auth)
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(400, "input must be a string or a list of strings")
        state.bump("embedding_inputs", len(texts))
        failing = state.take_failure("embedding")  # decided on arrival: a request still sleeping counts as before
        await _sleep_ms(cfg["embedding_delay_ms"])
        if status := failing:
            state.bump("failures")
            state.update(rec, failed=True, status=status)
            return _error(status, "fake injected embedding failure", cfg["fail_should_retry"])
        model = str(body.get("model") or "embedding-2")
        dim = dimension_for(model, body.get("dimensions"))
        data = [{"index": i, "object": "embedding", "embedding": embedding_array(t, dim)} for i, t in enumerate(texts)]
        n = sum(len(t) for t in texts)
        # orjson: the stdlib encoder spent ~0.25 ms of CPU per 1024-d vector, on the cores of the stack it serves.
        body = {"data": data, "model": model, "object": "list", "usage": _usage(n, 0)}
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    async def rerank(request: Request, body: dict[str, Any], auth: str | None) -> Any:
        """Cohere/Jina style, as Zhipu, vLLM, Jina, Infinity and Xinference serve it; TEI's own form at `/rerank`."""
        tei = not request.url.path.startswith(API_PREFIX)
        cfg, query, texts = state.snapshot(), body.get("query"), body.get("texts" if tei else "documents")
        state.bump("rerank_requests")
        rec = state.record(request.url.path, body, auth)
        if not isinstance(query, str) or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(400, "query must be a string and documents a list of strings")
        failing = state.take_failure("rerank")
        await _sleep_ms(cfg["rerank_delay_ms"])
        if status := failing:
            state.bump("failures")
            state.update(rec, failed=True, status=status)
            return _error(status, "fake injected rerank failure", cfg["fail_should_retry"])
        scores = [rerank_score(query, text, cfg["rerank_boost"]) for text in texts]
        ranked = sorted(range(len(texts)), key=lambda i: -scores[i])
        if tei:
            return JSONResponse([{"index": i, "score": scores[i]} for i in ranked])
        top_n = int(body.get("top_n") or len(texts))
        results = [{"index": i, "relevance_score": scores[i]} for i in ranked[:top_n]]
        return JSONResponse({"id": uuid.uuid4().hex, "model": body.get("model"), "results": results})

    async def control(request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse(state.snapshot())
        try:
            return JSONResponse(state.configure(**(await request.json())))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": {"code": "400", "message": str(exc)}}, status_code=400)

    async def reset(request: Request) -> JSONResponse:
        state.reset()
        return JSONResponse(state.snapshot())

    async def requests_(request: Request) -> JSONResponse:
        return JSONResponse(state.dump())

    return Starlette(
        routes=[
            Route(f"{API_PREFIX}/chat/completions", guarded(chat), methods=["POST"]),
            Route(f"{API_PREFIX}/embeddings", guarded(embeddings), methods=["POST"]),
            Route(f"{API_PREFIX}/rerank", guarded(rerank), methods=["POST"]),
            Route("/rerank", guarded(rerank), methods=["POST"]),
            Route("/_control", control, methods=["GET", "POST"]),
            Route("/_control/reset", reset, methods=["POST"]),
            Route("/_requests", requests_, methods=["GET"]),
        ]
    )
