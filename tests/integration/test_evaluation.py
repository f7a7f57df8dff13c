"""Evaluation jobs: the shipped evaluation set (docs/kb-eval.jsonl) scored against docs/kb on a real stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.processes import Stack
from tests.conftest import OFFLINE_KB, SAMPLE_DOCS, client_for
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.integration

COLLECTION = OFFLINE_KB  # the sample docs, indexed once for the session; evaluating only reads them
EVAL_SET = SAMPLE_DOCS.parent / "kb-eval.jsonl"
NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def client(offline_stack: Stack, offline_kb: dict[str, Any]) -> Iterator[httpx.Client]:
    assert offline_kb["state"] == "succeeded", offline_kb
    with client_for(offline_stack) as client:
        yield client


def evaluate(client: httpx.Client, body: bytes, **params: Any) -> httpx.Response:
    return client.post(f"/v1/collections/{COLLECTION}/evaluations", content=body, headers=NDJSON, params=params)


def test_the_shipped_set_scores_every_mode_with_per_question_ranks(client: httpx.Client) -> None:
    cases = EVAL_SET.read_text(encoding="utf-8").splitlines()
    response = evaluate(client, EVAL_SET.read_bytes())
    assert response.status_code == 202, response.text
    job, seen = wait_for_job(client, response.json()["job_id"])
    assert job["kind"] == "evaluation" and job["state"] == "succeeded", job
    assert job["progress"]["done"] == job["progress"]["total"] == len(cases)
    result = job["result"]
    assert result["collection"] == COLLECTION and result["k"] == 5 and result["cases"] == len(cases)
    assert result["reranker"] is None  # the offline stack has none: no hybrid+rerank
    by_mode = {m["mode"]: m for m in result["modes"]}
    assert list(by_mode) == ["vector", "bm25", "hybrid"]
    for mode in by_mode.values():
        assert set(mode["hit_at"]) == {"1", "3", "5"}
        assert mode["hit_at"]["1"] <= mode["hit_at"]["3"] <= mode["hit_at"]["5"]
        assert 0 < mode["mrr"] <= mode["hit_at"]["5"] and 0 < mode["ndcg"] <= 1
        assert 0 < mode["latency_ms_p50"] <= mode["latency_ms_p95"]
        assert [q["line"] for q in mode["questions"]] == list(range(1, len(cases) + 1))
        assert [q["question"] for q in mode["questions"]] == [json.loads(c)["question"] for c in cases]
        assert all(q["rank"] is None or 1 <= q["rank"] <= 5 for q in mode["questions"])
    hybrid = by_mode["hybrid"]
    assert hybrid["hit_at"]["5"] >= 0.8, hybrid
    # MRR is the mean of the reciprocal ranks the result lists
    ranks = [q["rank"] for q in hybrid["questions"]]
    assert hybrid["mrr"] == pytest.approx(sum(1 / r for r in ranks if r) / len(ranks), abs=1e-4)


def test_a_smaller_k_reports_cutoffs_up_to_it(client: httpx.Client) -> None:
    body = EVAL_SET.read_bytes().splitlines(keepends=True)[0]
    response = evaluate(client, body, k=2)
    job, _ = wait_for_job(client, response.json()["job_id"])
    assert job["state"] == "succeeded", job
    assert all(set(m["hit_at"]) == {"1", "2"} for m in job["result"]["modes"])


def test_no_relevant_chunk_scores_zero(client: httpx.Client) -> None:
    line = {"question": "Celery 由哪几个部分组成？", "relevant": [{"document": "x.md", "text": "这段话不在任何文档里"}]}
    job, _ = wait_for_job(client, evaluate(client, json.dumps(line).encode()).json()["job_id"])
    assert all(m["hit_at"]["5"] == 0 and m["questions"][0]["rank"] is None for m in job["result"]["modes"])


@pytest.mark.parametrize(
    ("lines", "named"),
    [
        (['{"question": "a", "relevant": [{"document": "d", "text": "t"}]}', "not json"], "line 2: not JSON"),
        (['{"question": "a"}'], "line 1: relevant: Field required"),
        (['{"question": "a", "relevant": []}'], "line 1: relevant is empty"),
        (["", '{"question": "a", "relevant": [{"document": "", "text": " "}]}'], "line 2: relevant.0"),
    ],
)
def test_a_bad_line_is_refused_naming_it(client: httpx.Client, lines: list[str], named: str) -> None:
    response = evaluate(client, "\n".join(lines).encode())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_eval_set" and error["message"].startswith(named), error


def test_refusals_before_a_job_is_made(client: httpx.Client) -> None:
    line = EVAL_SET.read_bytes().splitlines()[0]
    as_json = client.post(
        f"/v1/collections/{COLLECTION}/evaluations", content=line, headers={"Content-Type": "application/json"}
    )
    assert as_json.status_code == 415 and as_json.json()["error"]["code"] == "unsupported_media_type"
    missing = client.post("/v1/collections/nothing-here/evaluations", content=line, headers=NDJSON)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "collection_not_found"
    assert evaluate(client, b"\n\n").json()["error"]["code"] == "invalid_eval_set"
    assert evaluate(client, line, k=0).status_code == 422
