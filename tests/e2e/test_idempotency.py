"""Idempotency-Key: a retried submit returns the job the first attempt created; a reused key is a 409."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from harness.processes import Stack
from shared import keys
from tests.conftest import client_for
from tests.support.jobs import index_and_wait, wait_for_job

pytestmark = pytest.mark.e2e

COLLECTION = "idempotency"
JobCount = Callable[[], int]


@pytest.fixture(scope="module")
def client(offline_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(offline_stack) as c:
        assert index_and_wait(c, COLLECTION, [_folder(offline_stack)])["state"] == "succeeded"
        yield c


@pytest.fixture
def job_count(offline_stack: Stack) -> Iterator[JobCount]:
    """A callable: how many job records the stack's Redis holds now."""
    r = redis.Redis.from_url(offline_stack.env["REDIS_URL"], decode_responses=True)
    pattern = keys.job_key("*")
    yield lambda: sum(1 for k in r.scan_iter(pattern, count=1000) if k.count(":") == pattern.count(":"))
    r.close()


def _folder(stack: Stack) -> str:
    """One short note to index: these tests pin which jobs a key creates, not what they index, and an index job
    of the whole sample knowledge base costs the local embedding model seconds of CPU."""
    folder = stack.import_dir / "kb-idempotency"
    folder.mkdir(exist_ok=True)
    note = "# 幂等\n\nKV 缓存保存注意力的键和值。Celery 的队列把任务交给 worker。RAG 先检索再回答。\n"
    (folder / "note.md").write_text(note, encoding="utf-8")
    return str(folder)


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


def test_same_key_twice_gives_one_query_job(client: httpx.Client, job_count: JobCount) -> None:
    body, headers = {"collection": COLLECTION, "question": "什么是 KV 缓存？"}, _key()
    before = job_count()
    first = client.post("/v1/queries", json=body, headers=headers)
    again = client.post("/v1/queries", json=body, headers=headers)
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true" and "idempotent-replayed" not in first.headers
    assert job_count() == before + 1
    job, _ = wait_for_job(client, first.json()["job_id"])
    assert job["state"] == "succeeded"


def test_concurrent_submits_with_one_key_create_one_job(client: httpx.Client, job_count: JobCount) -> None:
    body, headers = {"collection": COLLECTION, "question": "Celery 的队列是什么？"}, _key()
    before = job_count()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: client.post("/v1/queries", json=body, headers=headers), range(8)))
    assert [r.status_code for r in responses] == [202] * 8, [r.text for r in responses]
    assert len({r.json()["job_id"] for r in responses}) == 1
    assert job_count() == before + 1


def test_a_used_key_with_another_body_is_refused(client: httpx.Client, job_count: JobCount) -> None:
    headers = _key()
    first = client.post("/v1/queries", json={"collection": COLLECTION, "question": "问题一"}, headers=headers)
    assert first.status_code == 202, first.text
    before = job_count()
    other = client.post("/v1/queries", json={"collection": COLLECTION, "question": "问题二"}, headers=headers)
    assert _error_code(other, 409) == "idempotency_key_reused"
    top_k = client.post(
        "/v1/queries", json={"collection": COLLECTION, "question": "问题一", "top_k": 9}, headers=headers
    )
    assert _error_code(top_k, 409) == "idempotency_key_reused"
    assert job_count() == before


def test_keys_are_scoped_per_route(client: httpx.Client, offline_stack: Stack) -> None:
    headers = _key()
    query = client.post("/v1/queries", json={"collection": COLLECTION, "question": "什么是 RAG？"}, headers=headers)
    folder = _folder(offline_stack)
    index = client.post(f"/v1/collections/{COLLECTION}/index-jobs", json={"paths": [folder]}, headers=headers)
    assert query.status_code == index.status_code == 202, (query.text, index.text)
    assert query.json()["job_id"] != index.json()["job_id"]


def test_same_key_twice_gives_one_index_job(client: httpx.Client, offline_stack: Stack, job_count: JobCount) -> None:
    folder, headers = _folder(offline_stack), _key()
    before = job_count()
    first = client.post(f"/v1/collections/{COLLECTION}/index-jobs", json={"paths": [folder]}, headers=headers)
    again = client.post(f"/v1/collections/{COLLECTION}/index-jobs", json={"paths": [folder]}, headers=headers)
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert again.json() == first.json()
    assert job_count() == before + 1
    # Another collection is another request, even with the same body.
    elsewhere = client.post("/v1/collections/idempotency-b/index-jobs", json={"paths": [folder]}, headers=headers)
    assert _error_code(elsewhere, 409) == "idempotency_key_reused"
    assert wait_for_job(client, first.json()["job_id"])[0]["state"] == "succeeded"


def test_same_key_twice_gives_one_evaluation_job_and_another_set_or_k_is_refused(
    client: httpx.Client, job_count: JobCount
) -> None:
    case = {"question": "什么是 KV 缓存？", "relevant": [{"document": "note.md", "text": "KV 缓存保存注意力的键和值"}]}
    body = (json.dumps(case, ensure_ascii=False) + "\n").encode()
    path, headers = f"/v1/collections/{COLLECTION}/evaluations", {**_key(), "Content-Type": "application/x-ndjson"}
    before = job_count()
    first = client.post(path, content=body, headers=headers)
    again = client.post(path, content=body, headers=headers)
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true" and "idempotent-replayed" not in first.headers
    assert job_count() == before + 1
    other_set = client.post(path, content=body.replace("什么是".encode(), "何为".encode()), headers=headers)
    assert _error_code(other_set, 409) == "idempotency_key_reused"
    other_k = client.post(path, params={"k": 3}, content=body, headers=headers)
    assert _error_code(other_k, 409) == "idempotency_key_reused"
    assert job_count() == before + 1
    assert wait_for_job(client, first.json()["job_id"])[0]["state"] == "succeeded"


def test_same_upload_twice_gives_one_job_and_changed_files_are_refused(client: httpx.Client) -> None:
    headers = _key()
    files = [("files", ("a.md", "# A\n\n幂等键让重试安全。\n".encode())), ("files", ("b.txt", b"second file\n"))]
    url = f"/v1/collections/{COLLECTION}/documents"
    first = client.post(url, files=files, headers=headers)
    again = client.post(url, files=files, headers=headers)
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert again.json() == first.json()
    changed = [files[0], ("files", ("b.txt", b"second file, edited\n"))]
    assert _error_code(client.post(url, files=changed, headers=headers), 409) == "idempotency_key_reused"
    reordered = [files[1], files[0]]
    assert _error_code(client.post(url, files=reordered, headers=headers), 409) == "idempotency_key_reused"
    assert wait_for_job(client, first.json()["job_id"])[0]["state"] == "succeeded"


def test_a_refused_submit_does_not_use_up_its_key(client: httpx.Client) -> None:
    headers = _key()
    unknown = client.post("/v1/queries", json={"collection": "no-such-collection", "question": "q"}, headers=headers)
    assert _error_code(unknown, 404) == "collection_not_found"
    fixed = client.post("/v1/queries", json={"collection": COLLECTION, "question": "q"}, headers=headers)
    assert fixed.status_code == 202, fixed.text


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "tab\there"])
def test_a_malformed_key_is_refused(client: httpx.Client, key: str) -> None:
    response = client.post(
        "/v1/queries", json={"collection": COLLECTION, "question": "q"}, headers={"Idempotency-Key": key}
    )
    assert _error_code(response, 422) == "invalid_idempotency_key"
