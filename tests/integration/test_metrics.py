"""`/metrics`: Prometheus text with queue depth per queue and answer latency histograms that move with use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import Stack
from tests.conftest import OFFLINE_KB, client_for
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(offline_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(offline_stack) as c:
        yield c


def _samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_show_queue_depth_and_consumers_per_queue(client: httpx.Client) -> None:
    samples = _samples(client)
    for queue in ("index", "query"):
        assert (("ragqueue_queue_depth", (("queue", queue),))) in samples
        assert samples[("ragqueue_queue_consumers", (("queue", queue),))] >= 1
    assert ("ragqueue_streams_open", ()) in samples and ("ragqueue_queries_open", ()) in samples


def test_an_answer_moves_the_first_token_histogram_and_the_counters(
    client: httpx.Client, offline_kb: dict[str, Any]
) -> None:
    job = offline_kb
    assert job["state"] == "succeeded", job
    before = _samples(client)
    assert before[("ragqueue_index_chunks_total", ())] >= job["progress"]["done"] > 0

    response = client.post("/v1/queries", json={"collection": OFFLINE_KB, "question": "KV 缓存里保存的是什么？"})
    assert response.status_code == 202, response.text
    done, _ = wait_for_job(client, response.json()["job_id"])
    assert done["state"] == "succeeded", done
    after = _samples(client)

    count = ("ragqueue_answer_first_token_seconds_count", ())
    assert after[count] == before[count] + 1
    first_token_s = done["result"]["timings_ms"]["first_token"] / 1000
    assert after[("ragqueue_answer_first_token_seconds_sum", ())] == pytest.approx(
        before[("ragqueue_answer_first_token_seconds_sum", ())] + first_token_s
    )
    assert after[("ragqueue_answer_total_seconds_count", ())] == before[("ragqueue_answer_total_seconds_count", ())] + 1
    tokens = ("ragqueue_answer_tokens_total", ())
    assert after[tokens] == before[tokens] + done["result"]["tokens"]
    assert after[("ragqueue_jobs", (("kind", "query"), ("state", "succeeded")))] >= 1
