"""Headless Chromium with API keys on: an EventSource on the signed stream URL, and the page's key prompt.

The `browser` fixture (tests/e2e/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.processes import Stack
from tests.e2e.conftest import KeyedApi
from tests.e2e.test_browser_eventsource import COLLECT_JS, STREAM_TIMEOUT_MS
from tests.support.jobs import index_and_wait

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

COLLECTION = "auth-browser"
DOCUMENT = "# KV 缓存\n\nKV 缓存保存注意力的键向量和值向量，解码时直接读取，避免重复计算。代价是显存占用。\n"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(STREAM_TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def collection(keyed_api: KeyedApi, offline_stack: Stack) -> str:
    folder = offline_stack.import_dir / COLLECTION
    folder.mkdir(exist_ok=True)
    (folder / "kv.md").write_text(DOCUMENT, encoding="utf-8")
    with keyed_api.client(keyed_api.key_a) as a:
        assert index_and_wait(a, COLLECTION, [COLLECTION])["state"] == "succeeded"
    return COLLECTION


def test_a_browser_event_source_streams_the_signed_stream_url(keyed_api: KeyedApi, collection: str, page: Page) -> None:
    with keyed_api.client(keyed_api.key_a) as a:
        accepted = a.post("/v1/queries", json={"collection": collection, "question": "什么是 KV 缓存？"}).json()
    page.goto(f"{keyed_api.url}/healthz")  # same origin, no key anywhere in the browser
    events: list[dict[str, Any]] = page.evaluate(COLLECT_JS, [accepted["stream_url"], STREAM_TIMEOUT_MS])
    assert events[0]["type"] == "sources" and events[0]["data"]
    assert "".join(e["data"]["text"] for e in events if e["type"] == "token")
    assert events[-1]["type"] == "done"


def test_the_page_asks_for_a_key_then_uploads_and_answers_with_it(
    keyed_api: KeyedApi, page: Page, tmp_path: Path
) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{keyed_api.url}/")
    page.wait_for_selector("#key-form:not([hidden])")  # the collections call got 401
    page.fill("#api-key", keyed_api.key_a)
    page.click("#key-button")
    page.wait_for_selector("#key-form[hidden]", state="attached")

    document = tmp_path / "kv-page.md"
    document.write_text(DOCUMENT, encoding="utf-8")
    page.fill("#collection", "auth-page")
    page.set_input_files("#files", str(document))
    page.click("#upload-button")
    page.wait_for_selector("#upload-form[data-state=succeeded]")  # followed by polling with the key

    page.fill("#question", "什么是 KV 缓存？")
    page.press("#question", "Enter")
    page.wait_for_selector("#conversation .turn[data-state=done]")
    assert "KV 缓存" in page.locator("#conversation .answer").last.inner_text()
    assert page.evaluate("sessionStorage.getItem('ragqueue.apiKey')") == keyed_api.key_a
    assert any("/stream?token=" in url for url in urls)
    assert not [url for url in urls if keyed_api.key_a in url]  # the key never goes into a URL
