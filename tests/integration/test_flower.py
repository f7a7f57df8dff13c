"""Flower as `make up` runs it: basic auth on its UI and API, its health check and metrics open for probes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness import local_http
from harness.processes import BIN, Stack, free_port, start_program

pytestmark = pytest.mark.integration

USER, PASSWORD = "operator", "s3cret-for-this-test"


@pytest.fixture(scope="module")
def flower(offline_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Flower on the offline stack's Redis DB, started with the credentials through FLOWER_BASIC_AUTH."""
    port = free_port()
    log = Path(tmp_path_factory.mktemp("flower")) / "flower.log"
    env = {**offline_stack.env, "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}"}
    args = [str(BIN / "celery"), "-A", "workers.taskless_app:app", "flower", f"--port={port}", "--address=127.0.0.1"]
    proc = start_program(args, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"flower exited with {proc.returncode}"
            try:
                if local_http.get(f"{url}/healthcheck", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "flower did not answer /healthcheck"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def test_flower_api_refuses_requests_without_credentials(flower: str) -> None:
    assert local_http.get(f"{flower}/api/workers", timeout=10).status_code == 401
    assert local_http.get(f"{flower}/api/workers", auth=(USER, "wrong"), timeout=10).status_code == 401
    assert local_http.get(f"{flower}/", timeout=10).status_code == 401


def test_flower_lists_the_workers_of_both_queues_with_credentials(flower: str) -> None:
    response = local_http.get(f"{flower}/api/workers", params={"refresh": 1}, auth=(USER, PASSWORD), timeout=30)
    assert response.status_code == 200, response.text
    queues = {q["name"] for info in response.json().values() for q in info.get("active_queues") or []}
    assert {"index", "query"} <= queues, response.json().keys()


def test_flower_health_check_and_metrics_stay_open_for_probes(flower: str) -> None:
    assert local_http.get(f"{flower}/healthcheck", timeout=10).status_code == 200
    metrics = local_http.get(f"{flower}/metrics", timeout=10)
    assert metrics.status_code == 200 and "flower_" in metrics.text
