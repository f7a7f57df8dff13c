"""Several API processes share nothing but Redis: a stream begun on one resumes on another with Last-Event-ID."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from harness import local_http
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import BIN, Stack, free_port
from harness.sse import Event, iter_events
from tests.conftest import copy_sample_docs
from tests.support.jobs import index_and_wait

pytestmark = pytest.mark.integration

TOKENS = [f"片{i}" for i in range(30)]


@pytest.fixture(scope="module")
def second_api(zhipu_stack: Stack) -> Iterator[str]:
    """Another uvicorn process on the zhipu stack's Redis and DATA_DIR, as `make up API_WORKERS=2` would run."""
    port = free_port()
    name = "api-2"
    zhipu_stack.spawn(
        name,
        [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if local_http.get(f"{url}/readyz", timeout=3).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the second API process did not become ready"
        time.sleep(0.3)
    yield url
    zhipu_stack.stop(name)


def test_a_stream_begun_on_one_api_process_resumes_on_another(
    zhipu_stack: Stack, second_api: str, zhipu: ZhipuFakeServer
) -> None:
    timeout = httpx.Timeout(10.0, read=60.0)
    with (
        local_http.client(base_url=zhipu_stack.base_url, timeout=timeout) as first,
        local_http.client(base_url=second_api, timeout=timeout) as second,
    ):
        copy_sample_docs(zhipu_stack, "kb")
        assert index_and_wait(first, "replicas", ["kb"])["state"] == "succeeded"
        zhipu.configure(tokens=TOKENS, token_delay_ms=50)
        response = first.post("/v1/queries", json={"collection": "replicas", "question": "什么是投机解码？"})
        assert response.status_code == 202, response.text
        url = f"/v1/queries/{response.json()['job_id']}/stream"

        seen: list[Event] = []
        with first.stream("GET", url) as stream:
            for event in iter_events(stream):
                seen.append(event)
                if sum(e.event == "token" for e in seen) == 3:
                    break  # the client leaves the first process mid-answer
        with second.stream("GET", url, headers={"Last-Event-ID": str(seen[-1].id)}) as stream:
            for event in iter_events(stream):
                seen.append(event)
                if event.event in ("done", "error"):
                    break

    assert [e.id for e in seen] == list(range(1, len(seen) + 1))  # nothing lost, nothing twice
    assert [e.data["text"] for e in seen if e.event == "token"] == TOKENS
    assert seen[-1].event == "done"
