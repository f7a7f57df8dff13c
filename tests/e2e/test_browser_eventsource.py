"""A real browser's `EventSource` on `/stream_chat` and `/v1/queries/{id}/stream`.

Headless Chromium from tests/support/browser.py (the `browser` fixture, tests/e2e/conftest.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack
from tests.conftest import client_for, copy_sample_docs
from tests.support.jobs import index_and_wait

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

COLLECTION = "browser"
TOKENS = ["预填充", "阶段", "一次", "处理", "整个", "提示", "，", "解码", "阶段", "逐个", "生成", "。"]
TOKEN_DELAY_MS = 60
STREAM_TIMEOUT_MS = 30_000

# Collects every event until `done`, then closes the source (left open, it reconnects when the server
# ends the response; see OPEN_JS for what that reconnect gets). Any `error`
# (the app's `event: error` has data, a connection error has none) rejects, so nothing is silently retried.
COLLECT_JS = """
([url, timeoutMs]) => new Promise((resolve, reject) => {
  const source = new EventSource(url);
  const seen = [];
  const finish = (settle, value) => { clearTimeout(timer); source.close(); settle(value); };
  const timer = setTimeout(
    () => finish(reject, new Error(`no done event in ${timeoutMs} ms, got ${JSON.stringify(seen)}`)),
    timeoutMs,
  );
  const record = (e) => seen.push(
    {type: e.type, data: JSON.parse(e.data), id: e.lastEventId, t: performance.now()},
  );
  for (const type of ["sources", "token", "message"]) source.addEventListener(type, record);
  source.addEventListener("done", (e) => { record(e); finish(resolve, seen); });
  source.addEventListener("error", (e) => finish(reject, new Error(e.data
    ? `error event: ${e.data}`
    : `connection error (readyState ${source.readyState}) after ${JSON.stringify(seen)}`)));
})
"""

# Leaves the source open, as most pages do: it reconnects with Last-Event-ID when the response ends, and
# settles once the browser gives up (readyState CLOSED after a 204), with every event it received.
OPEN_JS = """
([url, timeoutMs]) => new Promise((resolve, reject) => {
  const source = new EventSource(url);
  const seen = [];
  const timer = setTimeout(() => { source.close(); reject(new Error(`still open: ${JSON.stringify(seen)}`)); },
                           timeoutMs);
  const record = (e) => seen.push({type: e.type, data: JSON.parse(e.data), id: e.lastEventId});
  for (const type of ["sources", "token", "done"]) source.addEventListener(type, record);
  source.addEventListener("error", (e) => {
    if (e.data) { record(e); return; }
    if (source.readyState === EventSource.CLOSED) { clearTimeout(timer); resolve(seen); }
  });
})
"""


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def collection(zhipu_stack: Stack) -> str:
    copy_sample_docs(zhipu_stack, COLLECTION)
    with client_for(zhipu_stack) as client:
        assert index_and_wait(client, COLLECTION, [COLLECTION])["state"] == "succeeded"
    return COLLECTION


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>another origin</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def other_origin() -> Iterator[str]:
    """A page on another port of 127.0.0.1: a different origin, in the same (local) address space."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def collect(page: Page, url: str) -> list[dict[str, Any]]:
    """Every event an EventSource on `url` receives up to `done`, with its lastEventId and arrival time."""
    return page.evaluate(COLLECT_JS, [url, STREAM_TIMEOUT_MS])


def texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["text"] for e in events if e["type"] == "token"]


def test_a_browser_event_source_streams_stream_chat_progressively(
    zhipu_stack: Stack, collection: str, zhipu: ZhipuFakeServer, page: Page
) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=TOKEN_DELAY_MS)
    page.goto(f"{zhipu_stack.base_url}/healthz")  # same origin as the stream
    events = collect(page, "/stream_chat?" + urlencode({"param": "预填充和解码有什么区别？", "collection": collection}))
    assert texts(events) == TOKENS
    assert events[-1]["type"] == "done"
    assert events[-1]["data"]["tokens"] == len(TOKENS)
    arrivals = [e["t"] for e in events if e["type"] == "token"]
    # Buffered anywhere on the way (proxy headers, gzip, sse-starlette), the tokens would land together.
    assert arrivals[-1] - arrivals[0] > 0.5 * TOKEN_DELAY_MS * (len(TOKENS) - 1)


def test_a_browser_event_source_on_another_origin_gets_stream_chat(
    zhipu_stack: Stack, collection: str, zhipu: ZhipuFakeServer, page: Page, other_origin: str
) -> None:
    zhipu.configure(tokens=TOKENS)
    page.goto(other_origin)
    url = f"{zhipu_stack.base_url}/stream_chat?" + urlencode({"param": "什么是解码阶段？", "collection": collection})
    events = collect(page, url)
    assert texts(events) == TOKENS
    assert events[-1]["type"] == "done"


def test_a_browser_event_source_streams_a_query_with_sources_and_ids(
    zhipu_stack: Stack, collection: str, zhipu: ZhipuFakeServer, page: Page
) -> None:
    zhipu.configure(tokens=TOKENS)
    with client_for(zhipu_stack) as client:
        response = client.post("/v1/queries", json={"collection": collection, "question": "什么是 KV 缓存？"})
    assert response.status_code == 202, response.text
    stream_url = response.json()["stream_url"]
    page.goto(f"{zhipu_stack.base_url}/healthz")
    events = collect(page, stream_url)

    assert events[0]["type"] == "sources"
    assert events[0]["data"], "sources must list the retrieved chunks"
    assert texts(events) == TOKENS
    assert events[-1]["type"] == "done"
    # Every event's id is its seq (1, 2, ...), which is what the browser sends back as Last-Event-ID.
    assert [e["id"] for e in events] == [str(seq) for seq in range(1, len(events) + 1)]
    last_token = [e for e in events if e["type"] == "token"][-1]
    assert last_token["id"] == str(len(TOKENS) + 1)

    # A browser cannot set Last-Event-ID on a first connection; the query parameter resumes after it.
    resumed = collect(page, f"{stream_url}?last_event_id={last_token['id']}")
    assert [(e["type"], e["id"]) for e in resumed] == [("done", events[-1]["id"])]


def test_a_browser_event_source_left_open_on_stream_chat_stops_after_one_answer(
    zhipu_stack: Stack, collection: str, zhipu: ZhipuFakeServer, page: Page
) -> None:
    zhipu.configure(tokens=TOKENS)
    page.goto(f"{zhipu_stack.base_url}/healthz")
    url = "/stream_chat?" + urlencode({"param": "什么是解码阶段？", "collection": collection})
    events = page.evaluate(OPEN_JS, [url, STREAM_TIMEOUT_MS])
    assert texts(events) == TOKENS
    assert [e["type"] for e in events].count("done") == 1
    # Its reconnect after `done` got 204 (the browser closed the source) and did not ask again.
    assert len(zhipu.requests("/chat/completions")) == 1
