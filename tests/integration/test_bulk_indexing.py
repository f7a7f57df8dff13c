"""Bulk indexing: uploads of hundreds of files, true progress, idempotence, deletion, bad input, two workers."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from celery import Celery

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from harness.sse import iter_events
from shared import keys
from shared.ingest.items import IndexItem
from shared.jobs.dispatch import send
from shared.jobs.tasks import IndexBatchTask
from tests.conftest import client_for, stack_env
from tests.support.contracts import wait_until
from tests.support.jobs import wait_for_job
from tests.support.teardown import stop_later

pytestmark = pytest.mark.integration

FILES = 300


@pytest.fixture(scope="module")
def bulk_stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Two prefork index workers sharing jobs, one query worker; small upload limit to test 413."""
    root = tmp_path_factory.mktemp("bulk")
    env = stack_env(redis_server, "bulk", root, zhipu_server)
    env.update(MAX_UPLOAD_FILE_BYTES="200000", INDEX_BATCH_FILES="16")
    stack = Stack("bulk", env, root).start(
        [("index-1", "index", "prefork", 1), ("index-2", "index", "prefork", 1), ("query", "query", "threads", 4)]
    )
    yield stack
    stop_later("bulk indexing stack", stack.stop)  # while the next module starts


@pytest.fixture(scope="module")
def client(bulk_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(bulk_stack) as c:
        yield c


def note(i: int, extra: str = "") -> bytes:
    return f"# 笔记 {i}\n\n第 {i} 号文档记录了编号为 N{i:04d} 的实验。{extra}\n".encode()


def files(count: int, extra: str = "") -> list[tuple[str, tuple[str, io.BytesIO, str]]]:
    return [("files", (f"notes/n{i:04d}.md", io.BytesIO(note(i, extra)), "text/markdown")) for i in range(count)]


def upload(client: httpx.Client, collection: str, parts: list, **params: str) -> httpx.Response:
    return client.post(f"/v1/collections/{collection}/documents", files=parts, params=params)


def follow_events(client: httpx.Client, job_id: str) -> list[dict]:
    """The job records the /events SSE feed sent, the last being the `end` one."""
    records = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        for event in iter_events(response):
            records.append({**event.data, "_event": event.event})
            if event.event == "end":
                break
    return records


def test_hundreds_of_files_in_one_upload_are_indexed_with_true_progress(client: httpx.Client) -> None:
    response = upload(client, "bulk", files(FILES))
    assert response.status_code == 202, response.text
    body = response.json()
    assert len(body["documents"]) == FILES
    assert {"id", "filename", "sha256", "bytes"} <= set(body["documents"][0])

    records = follow_events(client, body["job_id"])
    final = records[-1]
    assert final["_event"] == "end" and final["state"] == "succeeded", final
    assert all(r["progress"]["done"] <= r["progress"]["total"] for r in records)
    assert final["progress"]["done"] == final["progress"]["total"] == final["result"]["chunks"] >= FILES
    assert final["result"]["documents_indexed"] == FILES
    assert final["progress"]["documents_done"] == final["progress"]["documents_total"] == FILES
    assert all(r["progress"]["documents_done"] <= FILES for r in records if r["progress"]["documents_done"])
    assert len(records) > 2  # progress was reported along the way, not only at the end

    docs = client.get(f"/v1/jobs/{body['job_id']}/documents").json()
    assert docs["counts"] == {"indexed": FILES}
    assert len({d["worker"] for d in docs["documents"]}) == 2  # both index workers shared the job
    info = client.get("/v1/collections/bulk").json()
    assert (info["documents"], info["chunks"]) == (FILES, final["result"]["chunks"])


def test_uploading_the_same_files_again_adds_nothing(client: httpx.Client) -> None:
    before = client.get("/v1/collections/bulk").json()["chunks"]
    job, _ = wait_for_job(client, upload(client, "bulk", files(FILES)).json()["job_id"])
    assert job["state"] == "succeeded" and job["result"]["documents_unchanged"] == FILES
    assert client.get("/v1/collections/bulk").json()["chunks"] == before


def test_a_task_delivered_twice_leaves_one_copy_of_each_chunk(client: httpx.Client, bulk_stack: Stack) -> None:
    response = upload(client, "twice", files(20))
    body = response.json()
    job, _ = wait_for_job(client, body["job_id"])
    chunks = client.get("/v1/collections/twice").json()["chunks"]
    uploads = bulk_stack.data_dir.resolve() / "uploads"
    items = [
        IndexItem(doc_id=d["id"], name=d["filename"], path=str(uploads / d["sha256"][:2] / f"{d['sha256']}.md"))
        for d in body["documents"]
    ]
    celery = Celery(broker=bulk_stack.env["REDIS_URL"])
    for _ in range(2):  # the same batch again, as a broker redelivery would send it
        send(celery, IndexBatchTask(job_id=body["job_id"], collection="twice", batch=0, batches=1, items=items))
    # Both redeliveries have run once the batch counts three deliveries and none is running (no heartbeat).
    with redis.Redis.from_url(bulk_stack.env["REDIS_URL"], decode_responses=True) as r:

        def both_ran() -> bool:
            attempts = r.hget(keys.job_batches_key(body["job_id"]), "0:attempts")
            return attempts == "3" and not r.exists(keys.batch_heartbeat_key(body["job_id"], 0))

        wait_until(both_ran, 60, "the repeated batch to run twice")
    assert client.get("/v1/collections/twice").json()["chunks"] == chunks
    assert client.get(f"/v1/jobs/{body['job_id']}").json()["state"] == "succeeded"
    # Still this job's indexed documents: a repeated batch finds them stored by its first delivery.
    assert client.get(f"/v1/jobs/{body['job_id']}/documents").json()["counts"] == {"indexed": 20}


def test_a_changed_file_replaces_its_old_chunks_and_deleting_removes_it_from_answers(
    client: httpx.Client, zhipu: ZhipuFakeServer
) -> None:
    name = "notes/unique.md"
    first = upload(
        client,
        "edits",
        [("files", (name, io.BytesIO("量子退火机 ZQX-17 的冷却时间是九分钟。".encode()), "text/markdown"))],
    )
    wait_for_job(client, first.json()["job_id"])
    changed = upload(
        client,
        "edits",
        [("files", (name, io.BytesIO("量子退火机 ZQX-17 的冷却时间是三分钟。".encode()), "text/markdown"))],
    )
    job, _ = wait_for_job(client, changed.json()["job_id"])
    assert job["result"]["documents_indexed"] == 1
    assert first.json()["documents"][0]["id"] == changed.json()["documents"][0]["id"]  # same name, same document
    docs = client.get("/v1/collections/edits/documents").json()["documents"]
    assert [(d["source"], d["chunks"]) for d in docs] == [(name, 1)]

    def sources(question: str) -> list[str]:
        query = client.post("/v1/queries", json={"collection": "edits", "question": question, "mode": "bm25"})
        with client.stream("GET", query.json()["stream_url"]) as stream:
            first_event = next(iter_events(stream))
        assert first_event.event == "sources"
        return [s["text"] for s in first_event.data]

    assert sources("ZQX-17 冷却时间") == ["量子退火机 ZQX-17 的冷却时间是三分钟。"]
    doc_id = docs[0]["id"]
    deleted = client.delete(f"/v1/collections/edits/documents/{doc_id}")
    assert deleted.status_code == 200 and deleted.json()["chunks_removed"] == 1
    assert sources("ZQX-17 冷却时间") == []
    assert client.delete(f"/v1/collections/edits/documents/{doc_id}").status_code == 404


@pytest.mark.parametrize(
    "name, content, status, code",
    [
        ("virus.exe", b"MZ", 415, "unsupported_type"),
        ("big.txt", b"x" * 200_001, 413, "file_too_large"),
        ("empty.md", b"", 422, "empty_file"),
        ("latin1.txt", "caf\xe9".encode("latin-1"), 422, "invalid_encoding"),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_indexed(
    client: httpx.Client, name: str, content: bytes, status: int, code: str
) -> None:
    parts = [*files(2), ("files", (name, io.BytesIO(content), "application/octet-stream"))]
    response = upload(client, "bad", parts)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and name in error["message"]
    if code == "unsupported_type":
        assert ".pdf" in error["message"] and ".docx" in error["message"]  # names the supported types
    assert client.get("/v1/collections/bad").status_code == 404


def test_skip_invalid_indexes_the_good_files_and_lists_the_bad(client: httpx.Client) -> None:
    parts = [*files(3), ("files", ("virus.exe", io.BytesIO(b"MZ"), "application/octet-stream"))]
    response = upload(client, "skipping", parts, skip_invalid="true")
    assert response.status_code == 202, response.text
    assert [r["filename"] for r in response.json()["rejected"]] == ["virus.exe"]
    job, _ = wait_for_job(client, response.json()["job_id"])
    assert job["state"] == "succeeded" and job["result"]["documents_indexed"] == 3


def test_a_corrupt_pdf_fails_alone(client: httpx.Client) -> None:
    parts = [*files(2), ("files", ("broken.pdf", io.BytesIO(b"%PDF-1.4 this is not a pdf"), "application/pdf"))]
    job, _ = wait_for_job(client, upload(client, "pdfs", parts).json()["job_id"])
    assert job["state"] == "succeeded"
    assert job["result"]["documents_indexed"] == 2 and job["result"]["documents_failed"] == 1
    failed = client.get(f"/v1/jobs/{job['id']}/documents", params={"status": "failed"}).json()["documents"]
    assert [d["name"] for d in failed] == ["broken.pdf"] and failed[0]["error"]


def test_bad_collection_names_and_deleting_collections(client: httpx.Client) -> None:
    response = upload(client, "Bad_Name", files(1))
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    job, _ = wait_for_job(client, upload(client, "doomed", files(2)).json()["job_id"])
    assert "doomed" in [c["name"] for c in client.get("/v1/collections").json()]
    assert client.delete("/v1/collections/doomed").status_code == 200
    assert client.get("/v1/collections/doomed").status_code == 404
    assert "doomed" not in [c["name"] for c in client.get("/v1/collections").json()]


def test_a_batch_whose_worker_keeps_dying_is_given_up_not_retried_forever(
    client: httpx.Client, bulk_stack: Stack
) -> None:
    body = upload(client, "poison", files(3)).json()
    job, _ = wait_for_job(client, body["job_id"])
    assert job["state"] == "succeeded"
    # as if three deliveries of batch 0 had each died mid-way; the next delivery must not try again
    r = redis.Redis.from_url(bulk_stack.env["REDIS_URL"])
    r.hset(f"rag:job:{body['job_id']}:batches", "0:attempts", 3)
    uploads = bulk_stack.data_dir.resolve() / "uploads"
    items = [
        IndexItem(doc_id=d["id"], name=d["filename"], path=str(uploads / d["sha256"][:2] / f"{d['sha256']}.md"))
        for d in body["documents"]
    ]
    batch = IndexBatchTask(job_id=body["job_id"], collection="poison", batch=0, batches=1, items=items)
    send(Celery(broker=bulk_stack.env["REDIS_URL"]), batch)
    deadline = time.monotonic() + 60
    while (docs := client.get(f"/v1/jobs/{body['job_id']}/documents").json())["counts"] != {"failed": 3}:
        assert time.monotonic() < deadline, docs
        time.sleep(0.2)
    assert "died 3 times" in docs["documents"][0]["error"]
