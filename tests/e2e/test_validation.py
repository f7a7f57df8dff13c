"""Bad input gets a clear 4xx in one error shape, and nothing is queued for it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.processes import Stack
from tests.conftest import client_for
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(zhipu_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(zhipu_stack) as c:
        yield c


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["workers"]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"collection": "Bad Name", "question": "q"}, 422, "invalid_request"),
        ({"collection": "nope", "question": "q"}, 404, "collection_not_found"),
        ({"collection": "nope", "question": "   "}, 422, "invalid_request"),
        ({"collection": "nope", "question": "问" * 5000}, 413, "question_too_long"),
        ({"collection": "nope", "question": "q", "top_k": 0}, 422, "invalid_request"),
        ({"question": "q"}, 422, "invalid_request"),
    ],
)
def test_bad_queries_are_refused(client: httpx.Client, body: dict, status: int, code: str) -> None:
    assert _error(client.post("/v1/queries", json=body), status, code)


def test_unknown_collection_message_says_what_to_do(client: httpx.Client) -> None:
    message = _error(
        client.post("/v1/queries", json={"collection": "nope", "question": "q"}), 404, "collection_not_found"
    )
    assert "index-jobs" in message


@pytest.mark.parametrize(
    "paths, status, code",
    [
        (["/etc"], 403, "path_not_allowed"),
        (["../../.."], 403, "path_not_allowed"),
        (["does-not-exist"], 404, "path_not_found"),
        ([], 422, "invalid_request"),
    ],
)
def test_bad_index_paths_are_refused(client: httpx.Client, paths: list[str], status: int, code: str) -> None:
    _error(client.post("/v1/collections/ok/index-jobs", json={"paths": paths}), status, code)


def test_bad_collection_name_in_path_is_refused(client: httpx.Client) -> None:
    _error(client.post("/v1/collections/Bad!/index-jobs", json={"paths": ["x"]}), 422, "invalid_request")


def test_unknown_job_and_stream_are_404(client: httpx.Client) -> None:
    _error(client.get("/v1/jobs/nope"), 404, "job_not_found")
    _error(client.get("/v1/queries/nope/stream"), 404, "job_not_found")


def test_a_non_query_job_has_no_stream_and_bad_last_event_id_is_refused(
    client: httpx.Client, zhipu_stack: Stack
) -> None:
    (zhipu_stack.import_dir / "one.txt").write_text("一段用于校验的文字。", encoding="utf-8")
    index_job = client.post("/v1/collections/valid/index-jobs", json={"paths": ["one.txt"]}).json()["job_id"]
    _error(client.get(f"/v1/queries/{index_job}/stream"), 404, "job_not_found")
    wait_for_job(client, index_job)
    query_job = client.post("/v1/queries", json={"collection": "valid", "question": "校验"}).json()["job_id"]
    _error(
        client.get(f"/v1/queries/{query_job}/stream", headers={"Last-Event-ID": "abc"}), 422, "invalid_last_event_id"
    )


def test_seed_endpoint_needs_a_question(client: httpx.Client) -> None:
    _error(client.get("/stream_chat"), 422, "invalid_request")


def test_a_document_offset_past_any_database_integer_is_refused_not_a_500(client: httpx.Client) -> None:
    response = client.get("/v1/collections/kb/documents", params={"offset": "9223372036854775808"})
    assert response.status_code == 422, response.text
