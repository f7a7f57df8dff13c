"""The chat page at `/` in headless Chromium: upload with progress, a streamed answer with sources, stop.

Screenshots go to tests/artifacts/ (git-ignored). A missing browser fails, it never skips (see
scripts/install_browser.sh).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness import local_http
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack
from tests.conftest import client_for, copy_sample_docs
from tests.support.jobs import index_and_wait, wait_for_job

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_MS = 60_000
DOCUMENT = """# KV 缓存

KV 缓存保存每一层注意力在历史位置上算出的键向量和值向量，解码时直接读取，避免重复计算。

## 代价

KV 缓存的代价是显存占用：序列越长、批次越大，缓存越大。
"""
# Counts every EventSource the page opens, so a test can check each was closed at its terminal event.
TRACK_EVENT_SOURCES = """
(() => {
  const Native = window.EventSource;
  window.__sources = [];
  window.EventSource = function (url, init) {
    const source = new Native(url, init);
    window.__sources.push(source);
    return source;
  };
  window.EventSource.prototype = Native.prototype;
  Object.assign(window.EventSource, {CONNECTING: 0, OPEN: 1, CLOSED: 2});
})();
"""
# Records the answer's text each time it grows, to show tokens arrive one by one, not all at once.
WATCH_ANSWER = """
() => {
  window.__growth = [];
  new MutationObserver(() => {
    const answers = document.querySelectorAll("#conversation .answer");
    const last = answers[answers.length - 1];
    if (last) window.__growth.push(last.textContent.length);
  }).observe(document.getElementById("conversation"), {childList: true, subtree: true, characterData: true});
}
"""


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="zh-CN")
    context.add_init_script(TRACK_EVENT_SOURCES)
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def ask(page: Page, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")  # the keyboard path: Enter asks


def test_upload_shows_progress_to_the_end_then_an_answer_streams_with_sources(
    offline_stack: Stack, page: Page, tmp_path: Path
) -> None:
    document = tmp_path / "kv-cache.md"
    document.write_text(DOCUMENT, encoding="utf-8")
    page.goto(f"{offline_stack.base_url}/")
    assert page.evaluate("[document.characterSet, document.documentElement.lang]") == ["UTF-8", "zh-CN"]

    page.fill("#collection", "web")
    page.set_input_files("#files", str(document))
    page.click("#upload-button")
    page.wait_for_selector("#upload-form[data-state=succeeded]")
    bar = page.locator("#upload-progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "1"
    assert "Indexed into web: 1 new, 0 unchanged, 0 failed" in page.inner_text("#upload-status")
    page.screenshot(path=str(ARTIFACTS / "web-upload.png"), full_page=True)

    page.evaluate(WATCH_ANSWER)
    ask(page, "什么是 KV 缓存？")
    turn = page.locator("#conversation .turn").last
    page.wait_for_selector("#conversation .turn[data-state=done]")
    answer = turn.locator(".answer").inner_text()
    assert "KV 缓存" in answer
    growth = page.evaluate("window.__growth.filter((n, i, all) => n > 0 && n !== all[i - 1])")
    assert len(growth) > 1 and growth == sorted(growth), f"the answer arrived in one piece: {growth}"
    sources = turn.locator(".sources li")
    assert sources.count() >= 1
    first = sources.first.inner_text()
    assert "kv-cache.md" in first and "KV 缓存" in first  # the document's name and a snippet
    assert turn.locator(".answer").get_attribute("aria-live") == "polite"

    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/queries")) as follow_up:
        ask(page, "KV 缓存的代价是什么？")  # the conversation stays on the page, and goes with the follow-up
    history = json.loads(follow_up.value.post_data or "{}")["history"]
    assert [(t["role"], t["content"]) for t in history] == [("user", "什么是 KV 缓存？"), ("assistant", answer)]
    page.wait_for_selector("#conversation .turn:nth-child(2)[data-state=done]")
    assert page.locator("#conversation .turn").count() == 2
    assert "显存" in page.locator("#conversation .turn").last.locator(".answer").inner_text()
    # every stream (the job's progress and both answers) was closed at its terminal event
    assert page.evaluate("window.__sources.map((s) => s.readyState)") == [2, 2, 2]
    page.screenshot(path=str(ARTIFACTS / "web-answer.png"), full_page=True)


@pytest.fixture(scope="module")
def slow_collection(zhipu_stack: Stack) -> str:
    copy_sample_docs(zhipu_stack, "web-stop")
    with client_for(zhipu_stack) as client:
        assert index_and_wait(client, "web-stop", ["web-stop"])["state"] == "succeeded"
    return "web-stop"


def test_stop_cancels_a_streaming_answer(
    zhipu_stack: Stack, zhipu: ZhipuFakeServer, slow_collection: str, page: Page
) -> None:
    tokens = [f"词{i}" for i in range(80)]
    zhipu.configure(tokens=tokens, token_delay_ms=100)
    page.goto(f"{zhipu_stack.base_url}/")
    page.fill("#collection", slow_collection)
    ask(page, "什么是投机解码？")
    turn = page.locator("#conversation .turn").last
    page.wait_for_function("document.querySelector('#conversation .answer')?.textContent.includes('词3')")
    assert turn.locator(".sources li").count() >= 1
    page.click("#stop-button")
    page.wait_for_selector("#conversation .turn[data-state=stopped]")
    assert turn.locator(".ending").inner_text() == "Stopped."
    answer = turn.locator(".answer").inner_text()
    assert answer == "".join(tokens)[: len(answer)] and len(answer) < len("".join(tokens))
    assert page.evaluate("window.__sources.map((s) => s.readyState)") == [2]
    page.screenshot(path=str(ARTIFACTS / "web-stopped.png"), full_page=True)

    job_id = page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)")
    stream = next(url for url in job_id if "/v1/queries/" in url and url.endswith("/stream"))
    with local_http.client(base_url=zhipu_stack.base_url, timeout=10) as client:
        job, _ = wait_for_job(client, stream.split("/v1/queries/")[1].removesuffix("/stream"))
    assert job["state"] == "cancelled"


def test_a_thumb_under_a_finished_answer_records_its_rating(offline_stack: Stack, page: Page) -> None:
    folder = offline_stack.import_dir / "web-feedback"
    folder.mkdir(exist_ok=True)
    (folder / "kv-cache.md").write_text(DOCUMENT, encoding="utf-8")
    with client_for(offline_stack) as client:
        assert index_and_wait(client, "web-feedback", ["web-feedback"])["state"] == "succeeded"
        page.goto(f"{offline_stack.base_url}/")
        page.fill("#collection", "web-feedback")
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/v1/queries")) as posted:
            ask(page, "KV 缓存的代价是什么？")
        job_id = posted.value.json()["job_id"]
        turn = page.locator("#conversation .turn").last
        page.wait_for_selector("#conversation .turn[data-state=done] .rating")

        def stored() -> list[tuple[str, str]]:
            entries = client.get("/v1/feedback", params={"collection": "web-feedback"}).json()
            return [(f["rating"], f["question"]) for f in entries if f["job_id"] == job_id]

        for rating, other in (("down", "up"), ("up", "down")):  # the second click replaces the first rating
            turn.locator(f".rating .thumb[data-rating={rating}]").click()
            page.wait_for_selector(f"#conversation .turn[data-rating={rating}]")
            assert turn.locator(".rating-status").inner_text() == "Feedback recorded, thank you."
            assert turn.locator(f".thumb[data-rating={rating}]").get_attribute("aria-pressed") == "true"
            assert turn.locator(f".thumb[data-rating={other}]").get_attribute("aria-pressed") == "false"
            assert stored() == [(rating, "KV 缓存的代价是什么？")]
    page.screenshot(path=str(ARTIFACTS / "web-feedback.png"), full_page=True)
