"""API keys over real HTTP: 401 without a key, 404 for another key's job or collection, signed streams.

Runs against `keyed_api` (tests/e2e/conftest.py): key A and key B unlimited, a third key limited to one
collection, all served by the offline stack's real workers.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from api import stream_tokens
from harness import local_http
from harness.processes import BIN, Stack, free_port, run_program
from harness.sse import read_stream
from tests.e2e.conftest import LIMITED_TO, KeyedApi
from tests.e2e.test_cli import one_line_error, ragq
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.e2e

COLLECTION = "auth-a"
QUESTION = {"collection": COLLECTION, "question": "什么是 KV 缓存？"}
DOCUMENT = "# KV 缓存\n\nKV 缓存保存每一层注意力在历史位置上算出的键向量和值向量，解码时直接读取，避免重复计算。\n"
OPEN_ROUTES = {"/healthz", "/readyz", "/metrics"}
UNKNOWN_JOB = uuid.uuid4().hex


@pytest.fixture(scope="module")
def owned(keyed_api: KeyedApi, offline_stack: Stack) -> dict[str, str]:
    """Key A's collection, an index job and a finished query job, all made with key A."""
    folder = offline_stack.import_dir / "auth-docs"
    folder.mkdir(exist_ok=True)
    (folder / "kv.md").write_text(DOCUMENT, encoding="utf-8")
    with keyed_api.client(keyed_api.key_a) as a:
        response = a.post(f"/v1/collections/{COLLECTION}/index-jobs", json={"paths": ["auth-docs"]})
        assert response.status_code == 202, response.text
        index_job = response.json()["job_id"]
        assert wait_for_job(a, index_job)[0]["state"] == "succeeded"
        query = a.post("/v1/queries", json=QUESTION)
        assert query.status_code == 202, query.text
        query_job = query.json()["job_id"]
        assert read_stream(a, f"/v1/queries/{query_job}/stream")[-1].event == "done"
    return {"index_job": index_job, "query_job": query_job}


def _operations(keyed_api: KeyedApi) -> list[tuple[str, str, str]]:
    """(method, template, url) of every operation in the served OpenAPI schema, path parameters filled in."""
    schema = local_http.get(f"{keyed_api.url}/openapi.json").json()
    filled = {"{job_id}": UNKNOWN_JOB, "{collection}": COLLECTION, "{doc_id}": "doc"}
    found = []
    for template, methods in schema["paths"].items():
        url = template
        for name, value in filled.items():
            url = url.replace(name, value)
        assert "{" not in url, f"fill in the parameters of {template}"
        found += [(method.upper(), template, url) for method in methods]
    return found


def _assert_unauthorized(response: httpx.Response, what: str) -> None:
    assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"
    assert response.json()["error"]["code"] == "unauthorized", what
    assert response.headers["www-authenticate"] == "Bearer", what


def test_every_protected_route_needs_a_key(keyed_api: KeyedApi) -> None:
    operations = _operations(keyed_api)
    templates = {template for _, template, _ in operations}
    assert {"/stream_chat", "/v1/chat/completions", "/v1/queries/{job_id}/stream", "/v1/status"} <= templates
    schema = local_http.get(f"{keyed_api.url}/openapi.json").json()
    with keyed_api.client(None) as anonymous, keyed_api.client("not-a-key-of-this-server") as wrong:
        for method, template, url in operations:
            if template in OPEN_ROUTES:
                continue
            # The schema says so too (Swagger's Authorize button, schemathesis with a key).
            assert schema["paths"][template][method.lower()].get("security"), f"{method} {template}"
            _assert_unauthorized(anonymous.request(method, url), f"{method} {template} without a key")
            _assert_unauthorized(wrong.request(method, url), f"{method} {template} with a wrong key")


def test_probes_metrics_and_the_page_stay_open(keyed_api: KeyedApi) -> None:
    with keyed_api.client(None) as anonymous:
        for path in ["/healthz", "/readyz", "/metrics", "/", "/static/app.js", "/openapi.json"]:
            assert anonymous.get(path).status_code == 200, path


def test_a_key_reaches_everything_of_its_own(keyed_api: KeyedApi, owned: dict[str, str]) -> None:
    index_job, query_job = owned["index_job"], owned["query_job"]
    with keyed_api.client(keyed_api.key_a) as a:
        assert a.get(f"/v1/jobs/{query_job}").json()["state"] == "succeeded"
        assert a.get(f"/v1/jobs/{index_job}/documents").json()["counts"] == {"indexed": 1}
        with a.stream("GET", f"/v1/jobs/{index_job}/events") as events:
            assert events.status_code == 200
        assert read_stream(a, f"/v1/queries/{query_job}/stream")[-1].event == "done"
        assert a.delete(f"/v1/queries/{query_job}").json()["error"]["code"] == "job_finished"
        listed = {job["id"] for job in a.get("/v1/jobs", params={"limit": 200}).json()}
        assert {index_job, query_job} <= listed
        resumed = a.get("/stream_chat", params={"param": "x"}, headers={"Last-Event-ID": f"{query_job}:1"})
        assert resumed.status_code == 200, resumed.text
        assert COLLECTION in {c["name"] for c in a.get("/v1/collections").json()}


def _job_routes(client: httpx.Client, job_id: str) -> dict[str, httpx.Response]:
    """Every route that takes a job id, called on `job_id`."""
    return {
        "snapshot": client.get(f"/v1/jobs/{job_id}"),
        "events": client.get(f"/v1/jobs/{job_id}/events"),
        "documents": client.get(f"/v1/jobs/{job_id}/documents"),
        "stream": client.get(f"/v1/queries/{job_id}/stream"),
        "cancel": client.delete(f"/v1/queries/{job_id}"),
        "stream_chat resume": client.get(
            "/stream_chat", params={"param": "x"}, headers={"Last-Event-ID": f"{job_id}:1"}
        ),
    }


def test_another_keys_job_is_not_found(keyed_api: KeyedApi, owned: dict[str, str]) -> None:
    with keyed_api.client(keyed_api.key_b) as b:
        unknown = _job_routes(b, UNKNOWN_JOB)
        for job_id in (owned["index_job"], owned["query_job"]):
            for route, response in _job_routes(b, job_id).items():
                assert response.status_code == 404, f"{route} of key A's job: {response.status_code} {response.text}"
                # Not a 403, and nothing that tells it apart from an id that never existed.
                expected = unknown[route].json()["error"]
                assert response.json()["error"] == {k: v.replace(UNKNOWN_JOB, job_id) for k, v in expected.items()}
        listed = {job["id"] for job in b.get("/v1/jobs", params={"limit": 200}).json()}
        assert not listed & set(owned.values())


def test_second_key_cannot_cancel_first_keys_answer(keyed_api: KeyedApi, owned: dict[str, str]) -> None:
    with keyed_api.client(keyed_api.key_a) as a, keyed_api.client(keyed_api.key_b) as b:
        accepted = a.post("/v1/queries", json=QUESTION).json()
        refused = b.delete(f"/v1/queries/{accepted['job_id']}")
        assert refused.status_code == 404, refused.text
        events = read_stream(a, f"/v1/queries/{accepted['job_id']}/stream")
    assert events[-1].event == "done"


def test_idempotency_key_is_scoped_per_api_key(keyed_api: KeyedApi, owned: dict[str, str]) -> None:
    headers = {"Idempotency-Key": f"same-{uuid.uuid4()}"}
    with keyed_api.client(keyed_api.key_a) as a, keyed_api.client(keyed_api.key_b) as b:
        first = a.post("/v1/queries", json=QUESTION, headers=headers)
        again = a.post("/v1/queries", json=QUESTION, headers=headers)
        other = b.post("/v1/queries", json=QUESTION, headers=headers)
    assert first.status_code == again.status_code == other.status_code == 202, other.text
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert other.json()["job_id"] != first.json()["job_id"]  # B never receives A's job
    assert "Idempotent-Replayed" not in other.headers


def test_a_key_limited_to_collections_gets_404_for_others(keyed_api: KeyedApi, owned: dict[str, str]) -> None:
    chat = {"model": COLLECTION, "messages": [{"role": "user", "content": "什么是 KV 缓存？"}]}
    with keyed_api.client(keyed_api.limited_key) as limited:
        requests = [
            limited.get(f"/v1/collections/{COLLECTION}"),
            limited.delete(f"/v1/collections/{COLLECTION}"),
            limited.post(f"/v1/collections/{COLLECTION}/index-jobs", json={"paths": ["auth-docs"]}),
            limited.post(f"/v1/collections/{COLLECTION}/documents", files={"files": ("a.md", b"# a\n\ntext\n")}),
            limited.get(f"/v1/collections/{COLLECTION}/documents"),
            limited.delete(f"/v1/collections/{COLLECTION}/documents/doc"),
            limited.post("/v1/queries", json=QUESTION),
            limited.post("/v1/chat/completions", json=chat),
            limited.get("/stream_chat", params={"param": "什么是 KV 缓存？", "collection": COLLECTION}),
        ]
        for response in requests:
            what = f"{response.request.method} {response.request.url}"
            assert response.status_code == 404, f"{what}: {response.status_code} {response.text}"
            assert response.json()["error"]["code"] == "collection_not_found", what
        assert {c["name"] for c in limited.get("/v1/collections").json()} <= {LIMITED_TO}
        assert {m["id"] for m in limited.get("/v1/models").json()["data"]} <= {LIMITED_TO}
    with keyed_api.client(keyed_api.key_a) as a:
        assert a.get(f"/v1/collections/{COLLECTION}").status_code == 200  # untouched by the attempts above


def test_signed_stream_url_streams_without_a_key(keyed_api: KeyedApi, owned: dict[str, str]) -> None:
    with keyed_api.client(keyed_api.key_a) as a:
        accepted = a.post("/v1/queries", json=QUESTION).json()
    url = accepted["stream_url"]
    assert url.startswith(f"/v1/queries/{accepted['job_id']}/stream?token=")
    assert keyed_api.key_a not in url
    with keyed_api.client(None) as anonymous:
        events = read_stream(anonymous, url)
    assert events[0].event == "sources"
    assert events[-1].event == "done"


def test_tampered_other_job_and_expired_stream_tokens_are_refused(keyed_api: KeyedApi, owned: dict[str, str]) -> None:
    job_id = owned["query_job"]
    with keyed_api.client(keyed_api.key_a) as a:
        other = a.post("/v1/queries", json=QUESTION).json()
    token = other["stream_url"].partition("?token=")[2]
    mac_start = token.index(".") + 1
    tampered = token[:mac_start] + ("A" if token[mac_start] != "A" else "B") + token[mac_start + 1 :]
    expired = stream_tokens.sign(keyed_api.stream_secret, job_id, int(time.time()) - 1)
    forged = stream_tokens.sign("another-secret-" + keyed_api.stream_secret, job_id, int(time.time()) + 600)
    with keyed_api.client(None) as anonymous:
        for url in [
            f"/v1/queries/{other['job_id']}/stream?token={tampered}",
            f"/v1/queries/{job_id}/stream?token={token}",  # signed for the other job
            f"/v1/queries/{job_id}/stream?token={expired}",
            f"/v1/queries/{job_id}/stream?token={forged}",
            f"/v1/queries/{job_id}/stream?token=garbage",
        ]:
            _assert_unauthorized(anonymous.get(url), url)
        # A token opens that job's stream and nothing else.
        _assert_unauthorized(anonymous.delete(f"/v1/queries/{other['job_id']}?token={token}"), "cancel by token")
        _assert_unauthorized(anonymous.get(f"/v1/jobs/{other['job_id']}?token={token}"), "snapshot by token")


def test_cors_preflight_from_unknown_origin_refused(keyed_api: KeyedApi, offline_stack: Stack) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"}
    refused = httpx.options(f"{keyed_api.url}/v1/queries/{UNKNOWN_JOB}", headers=preflight)
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    # Keys off: every origin, and a browser script may read the job id and the replay header.
    allowed = httpx.options(f"{offline_stack.base_url}/v1/queries/{UNKNOWN_JOB}", headers=preflight)
    assert allowed.status_code == 200
    simple = local_http.get(f"{offline_stack.base_url}/healthz", headers={"Origin": "https://page.example"})
    exposed = simple.headers["access-control-expose-headers"].lower()
    assert "x-job-id" in exposed
    assert "idempotent-replayed" in exposed


def test_api_refuses_to_start_with_keys_but_no_stream_secret(offline_stack: Stack) -> None:
    # The other refusals (placeholder secret, short key, bad keys file) are in tests/unit/test_auth_config.py.
    env = {**offline_stack.env, "API_KEYS": "a-key-long-enough-1234"}
    env.pop("STREAM_TOKEN_SECRET", None)
    args = [str(BIN / "uvicorn"), "api.main:app", "--port", str(free_port()), "--log-level", "warning"]
    done = run_program(args, env)
    assert done.returncode == 3
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("ragqueue api: cannot start: API keys are set but STREAM_TOKEN_SECRET is not")
    )
    assert "Traceback" not in done.stderr


def test_ragq_sends_its_api_key_and_says_which_option_to_set_on_401(keyed_api: KeyedApi, owned: dict[str, str]) -> None:
    refused = ragq(keyed_api.url, "collections")
    assert "--api-key" in one_line_error(refused) and "RAGQ_API_KEY" in one_line_error(refused)
    wrong = ragq(keyed_api.url, "--api-key", "not-a-key-of-this-server", "jobs")
    assert "HTTP 401" in one_line_error(wrong)
    answered = ragq(
        keyed_api.url, "--api-key", keyed_api.key_a, "ask", QUESTION["question"], "-c", COLLECTION, "--json"
    )
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["answer"]
