"""Evaluation jobs with keys on: owned by the key that started them, like every job (api/auth.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import OFFLINE_KB, SAMPLE_DOCS
from tests.e2e.conftest import LIMITED_TO, KeyedApi
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.e2e

COLLECTION = OFFLINE_KB  # the sample docs, indexed once for the session; evaluating only reads them
EVAL_SET = SAMPLE_DOCS.parent / "kb-eval.jsonl"
NDJSON = {"Content-Type": "application/x-ndjson"}


def test_an_evaluation_job_is_seen_only_by_its_key(offline_kb: dict[str, Any], keyed_api: KeyedApi) -> None:
    assert offline_kb["state"] == "succeeded"
    body = EVAL_SET.read_bytes()
    with keyed_api.client(keyed_api.key_a) as a, keyed_api.client(keyed_api.key_b) as b:
        response = a.post(f"/v1/collections/{COLLECTION}/evaluations", content=body, headers=NDJSON)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        job, _ = wait_for_job(a, job_id)
        assert job["kind"] == "evaluation" and job["state"] == "succeeded"
        assert b.get(f"/v1/jobs/{job_id}").status_code == 404
        assert job_id not in [j["id"] for j in b.get("/v1/jobs", params={"kind": "evaluation"}).json()]
        assert job_id in [j["id"] for j in a.get("/v1/jobs", params={"kind": "evaluation"}).json()]
    with keyed_api.client(keyed_api.limited_key) as limited, keyed_api.client(None) as anonymous:
        refused = limited.post(f"/v1/collections/{COLLECTION}/evaluations", content=body, headers=NDJSON)
        assert COLLECTION != LIMITED_TO and refused.status_code == 404, refused.text
        assert (
            anonymous.post(f"/v1/collections/{COLLECTION}/evaluations", content=body, headers=NDJSON).status_code == 401
        )
