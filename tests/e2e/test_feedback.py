"""Feedback on answers over real HTTP: rate a finished answer, list ratings, export them as an evaluation set.

Runs on the offline stack (keys off) and on `keyed_api` (keys on, the same workers) for the owner scope; no stack
of its own.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from harness import local_http
from harness.processes import BIN, Stack, free_port
from harness.sse import read_stream
from shared.eval_set import read_eval_set
from shared.settings import Settings
from tests.conftest import client_for
from tests.e2e.conftest import KeyedApi, wait_ready
from tests.e2e.test_cli import ragq
from tests.support.jobs import index_and_wait, write_queued_query

pytestmark = pytest.mark.e2e

COLLECTION = "feedback"
KEYED_COLLECTION = "feedback-keyed"
DOCUMENT = """# KV 缓存

KV 缓存保存每一层注意力在历史位置上算出的键向量和值向量，解码时直接读取，避免重复计算。

## 代价

KV 缓存的代价是显存占用：序列越长、批次越大，缓存越大。
"""
QUESTIONS = iter(f"KV 缓存的代价是什么？（第 {n} 问）" for n in range(1000))


@dataclass(frozen=True)
class Answered:
    job_id: str
    question: str  # as the job's `done` event gives it
    sources: list[dict[str, Any]]  # the `sources` event's data


def _index(stack: Stack, client: httpx.Client, collection: str) -> str:
    folder = stack.import_dir / collection
    folder.mkdir(exist_ok=True)
    (folder / "kv-cache.md").write_text(DOCUMENT, encoding="utf-8")
    job = index_and_wait(client, collection, [collection])
    assert job["state"] == "succeeded", job
    return str(job["id"])


def answer(client: httpx.Client, collection: str = COLLECTION) -> Answered:
    """Ask a new question and read its answer to the end."""
    accepted = client.post("/v1/queries", json={"collection": collection, "question": next(QUESTIONS)})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    events = read_stream(client, f"/v1/queries/{job_id}/stream")
    assert [e.event for e in events if e.event != "token"] == ["sources", "done"], events
    return Answered(job_id, events[-1].data["question"], events[0].data)


@pytest.fixture(scope="module")
def client(offline_stack: Stack) -> Any:
    with client_for(offline_stack) as client:
        yield client


@pytest.fixture(scope="module")
def index_job(offline_stack: Stack, client: httpx.Client) -> str:
    return _index(offline_stack, client, COLLECTION)


@pytest.fixture(scope="module")
def store(offline_stack: Stack) -> Any:
    with redis.Redis.from_url(offline_stack.env["REDIS_URL"], decode_responses=True) as r:
        yield r


def listed(client: httpx.Client, **params: Any) -> dict[str, dict[str, Any]]:
    """GET /v1/feedback's entries by job id."""
    response = client.get("/v1/feedback", params={"collection": COLLECTION, "limit": 1000, **params})
    assert response.status_code == 200, response.text
    return {f["job_id"]: f for f in response.json()}


def test_a_rating_is_stored_with_the_question_and_sources_and_listed(
    client: httpx.Client, index_job: str, store: redis.Redis
) -> None:
    answered = answer(client)
    before = time.time()
    response = client.post(f"/v1/queries/{answered.job_id}/feedback", json={"rating": "up", "comment": " 讲得清楚 "})
    assert response.status_code == 200, response.text
    feedback = response.json()
    assert {k: v for k, v in feedback.items() if k != "given_at"} == {
        "job_id": answered.job_id,
        "collection": COLLECTION,
        "question": answered.question,
        "rating": "up",
        "comment": "讲得清楚",
        "sources": answered.sources,
    }
    assert answered.sources and "kv-cache.md" in answered.sources[0]["document"]
    assert before <= feedback["given_at"] <= time.time()
    assert listed(client)[answered.job_id] == feedback
    assert answered.job_id in listed(client, rating="up")
    assert answered.job_id not in listed(client, rating="down")
    # Kept past the job record (JOB_TTL_S), for FEEDBACK_TTL_S, and indexed under its collection.
    ttl = store.ttl(f"rag:feedback:{answered.job_id}")
    assert Settings.model_fields["JOB_TTL_S"].default < ttl <= Settings.model_fields["FEEDBACK_TTL_S"].default
    assert store.zscore(f"rag:feedback:collection:{COLLECTION}", answered.job_id) is not None


def test_a_second_rating_of_the_same_answer_replaces_the_first(client: httpx.Client, index_job: str) -> None:
    answered = answer(client)
    first = client.post(f"/v1/queries/{answered.job_id}/feedback", json={"rating": "up", "comment": "好"})
    assert first.status_code == 200, first.text
    second = client.post(f"/v1/queries/{answered.job_id}/feedback", json={"rating": "down"})
    assert second.status_code == 200, second.text
    assert second.json()["rating"] == "down" and second.json()["comment"] is None
    assert second.json()["given_at"] > first.json()["given_at"]
    entries = client.get("/v1/feedback", params={"collection": COLLECTION, "limit": 1000}).json()
    assert [f for f in entries if f["job_id"] == answered.job_id] == [second.json()]  # one, the latest


@pytest.mark.parametrize(
    "body",
    [
        {"rating": "meh"},
        {},
        {"comment": "no rating"},
        {"rating": "up", "comment": "x" * 2001},
        {"rating": "up", "comment": 5},
        {"rating": ["up"]},
    ],
    ids=["unknown rating", "empty", "no rating", "comment too long", "comment not text", "rating a list"],
)
def test_a_bad_rating_or_comment_is_422_and_stores_nothing(
    client: httpx.Client, index_job: str, store: redis.Redis, body: dict[str, Any]
) -> None:
    answered = answer(client)
    response = client.post(f"/v1/queries/{answered.job_id}/feedback", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert not store.exists(f"rag:feedback:{answered.job_id}")


def test_a_comment_of_the_limit_is_kept_whole(client: httpx.Client, index_job: str) -> None:
    answered = answer(client)
    response = client.post(f"/v1/queries/{answered.job_id}/feedback", json={"rating": "down", "comment": "长" * 2000})
    assert response.status_code == 200, response.text
    assert response.json()["comment"] == "长" * 2000


@pytest.mark.parametrize(
    "params",
    [{}, {"collection": COLLECTION, "rating": "meh"}, {"collection": "Not A Name"}, {"collection": "x", "limit": 0}],
)
def test_a_bad_listing_is_422(client: httpx.Client, params: dict[str, Any]) -> None:
    response = client.get("/v1/feedback", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def test_only_a_finished_answer_can_be_rated(client: httpx.Client, index_job: str, store: redis.Redis) -> None:
    rating = {"rating": "up"}
    queued = uuid.uuid4().hex
    write_queued_query(store, queued, COLLECTION)
    response = client.post(f"/v1/queries/{queued}/feedback", json=rating)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "job_not_finished"), response.text
    store.hset(f"rag:job:{queued}", "state", "failed")
    response = client.post(f"/v1/queries/{queued}/feedback", json=rating)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "job_not_answered"), response.text
    for job_id in (index_job, uuid.uuid4().hex, "not-an-id"):
        response = client.post(f"/v1/queries/{job_id}/feedback", json=rating)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "job_not_found"), response.text
    assert not store.exists(f"rag:feedback:{queued}", f"rag:feedback:{index_job}")


@pytest.fixture(scope="module")
def keyed_collection(keyed_api: KeyedApi, offline_stack: Stack) -> str:
    """A collection indexed with key A on the keys-on API."""
    with keyed_api.client(keyed_api.key_a) as a:
        _index(offline_stack, a, KEYED_COLLECTION)
    return KEYED_COLLECTION


def test_another_keys_answer_cannot_be_rated_nor_its_rating_listed(
    keyed_api: KeyedApi, keyed_collection: str, store: redis.Redis
) -> None:
    with keyed_api.client(keyed_api.key_a) as a, keyed_api.client(keyed_api.key_b) as b:
        answered = answer(a, KEYED_COLLECTION)
        mine = a.post(f"/v1/queries/{answered.job_id}/feedback", json={"rating": "up", "comment": "A"})
        assert mine.status_code == 200, mine.text

        unknown = uuid.uuid4().hex
        expected = b.post(f"/v1/queries/{unknown}/feedback", json={"rating": "down"})
        theirs = b.post(f"/v1/queries/{answered.job_id}/feedback", json={"rating": "down"})
        # The very answer an id that never existed gets: nothing tells B the job exists.
        assert theirs.status_code == expected.status_code == 404, theirs.text
        assert theirs.content == expected.content.replace(unknown.encode(), answered.job_id.encode())

        params = {"collection": KEYED_COLLECTION}
        assert answered.job_id not in {f["job_id"] for f in b.get("/v1/feedback", params=params).json()}
        assert [f for f in a.get("/v1/feedback", params=params).json() if f["job_id"] == answered.job_id] == [
            mine.json()
        ]  # still A's rating, untouched by B's attempt
        assert local_http.post(f"{keyed_api.url}/v1/queries/{answered.job_id}/feedback", json={}).status_code == 401
    assert store.hget(f"rag:feedback:{answered.job_id}", "rating") == "up"


@pytest.fixture(scope="module")
def admin_api(
    keyed_api: KeyedApi, offline_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(url, admin key): one more API process with `keyed_api`'s keys (so their jobs keep their owners) and an
    admin key from a keys file."""
    admin_key = f"key-admin-{secrets.token_urlsafe(24)}"
    keys_file = tmp_path_factory.mktemp("admin") / "admin-keys.toml"
    keys_file.write_text(f'[[key]]\nname = "admin"\nkey = "{admin_key}"\nadmin = true\n')
    name = "api-feedback-admin"
    offline_stack.env_for[name] = {
        "API_KEYS": f"{keyed_api.key_a}, {keyed_api.key_b}",
        "API_KEYS_FILE": str(keys_file),
        "STREAM_TOKEN_SECRET": keyed_api.stream_secret,
    }
    port = free_port()
    process = offline_stack.spawn(
        name,
        [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, "the API process with an admin key", process)
    yield url, admin_key
    offline_stack.stop(name)


def test_an_admin_key_lists_every_keys_feedback(
    keyed_api: KeyedApi, keyed_collection: str, admin_api: tuple[str, str]
) -> None:
    with keyed_api.client(keyed_api.key_a) as a:
        answered = answer(a, keyed_collection)
        assert a.post(f"/v1/queries/{answered.job_id}/feedback", json={"rating": "down"}).status_code == 200
    url, admin_key = admin_api
    params = {"collection": KEYED_COLLECTION, "rating": "down"}
    as_admin = local_http.get(f"{url}/v1/feedback", params=params, headers={"Authorization": f"Bearer {admin_key}"})
    assert as_admin.status_code == 200, as_admin.text
    assert answered.job_id in {f["job_id"] for f in as_admin.json()}
    as_b = local_http.get(f"{url}/v1/feedback", params=params, headers={"Authorization": f"Bearer {keyed_api.key_b}"})
    assert as_b.status_code == 200 and answered.job_id not in {f["job_id"] for f in as_b.json()}


def test_ragq_rates_answers_and_exports_them_as_an_evaluation_set(
    offline_stack: Stack, client: httpx.Client, index_job: str, tmp_path: Path
) -> None:
    asked = ragq(offline_stack.base_url, "ask", next(QUESTIONS), "-c", COLLECTION, "--json", "--rate", "up")
    assert asked.returncode == 0, asked.stderr
    up_job = json.loads(asked.stdout)["job_id"]
    assert f"rated up: query {up_job}" in asked.stderr
    down = answer(client)
    rated = ragq(offline_stack.base_url, "rate", down.job_id, "down", "--comment", "漏了显存")
    assert rated.returncode == 0, rated.stderr
    assert f"rated down (漏了显存): query {down.job_id}" in rated.stdout

    output = tmp_path / "eval.jsonl"
    exported = ragq(offline_stack.base_url, "feedback", "export", "-c", COLLECTION, "-o", str(output))
    assert exported.returncode == 0, exported.stderr
    lines = output.read_text(encoding="utf-8").splitlines()
    cases = {case.job_id: case for case in read_eval_set(lines)}
    assert len(cases) == len(lines) == len(listed(client))
    expected = {job_id: f for job_id, f in listed(client).items() if job_id in (up_job, down.job_id)}
    for job_id, feedback in expected.items():
        case = cases[job_id]
        assert (case.question, case.rating, case.comment, case.collection) == (
            feedback["question"],
            feedback["rating"],
            feedback["comment"],
            COLLECTION,
        )
        assert [c.model_dump() for c in case.relevant] == [
            {"document": s["document"], "location": s["location"], "chunk_id": s["chunk_id"], "text": s["text"]}
            for s in feedback["sources"]
        ]
        assert case.relevant, f"{job_id}: no relevant chunks exported"
    assert cases[down.job_id].question == down.question and cases[down.job_id].comment == "漏了显存"
    line = json.loads(next(line for line in lines if down.job_id in line))
    assert set(line) == {"question", "relevant", "rating", "comment", "collection", "job_id"}

    only_down = ragq(offline_stack.base_url, "feedback", "export", "-c", COLLECTION, "--rating", "down")
    assert only_down.returncode == 0, only_down.stderr
    downs = list(read_eval_set(only_down.stdout.splitlines()))
    assert down.job_id in {c.job_id for c in downs} and up_job not in {c.job_id for c in downs}
    assert all(c.rating == "down" for c in downs)
