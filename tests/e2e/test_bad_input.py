"""Bad input on every route is a 4xx in the one error shape with a stable code, never a 5xx.

Runs against the session `offline_stack` (real API, real Celery workers, real Redis). The table covers every
route; the named tests after it pin each finding of a security review reproduced as a 500, a hang or an escape.
The last test asks a real question: after all of this, the workers still answer.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from harness.processes import Stack
from harness.sse import read_stream
from shared import keys
from tests.conftest import client_for
from tests.support.jobs import index_and_wait, wait_for_job

pytestmark = pytest.mark.e2e

COLLECTION = "bad-input"
UNKNOWN_JOB = "0" * 32
DOCUMENT = "KV 缓存保存每一层注意力的键向量和值向量，解码时直接读取，避免重复计算。\n"


@pytest.fixture(scope="module")
def client(offline_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(offline_stack) as c:
        yield c


@pytest.fixture(scope="module")
def query_job(client: httpx.Client, offline_stack: Stack) -> str:
    """A real collection and a real, finished query job on it."""
    folder = offline_stack.import_dir / COLLECTION
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kv.txt").write_text(DOCUMENT, encoding="utf-8")
    assert index_and_wait(client, COLLECTION, [COLLECTION])["state"] == "succeeded"
    accepted = client.post("/v1/queries", json={"collection": COLLECTION, "question": "什么是 KV 缓存？"})
    assert accepted.status_code == 202, accepted.text
    job_id = str(accepted.json()["job_id"])
    assert read_stream(client, f"/v1/queries/{job_id}/stream")[-1].event == "done"
    return job_id


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """A 4xx in the error shape with this code; returns the message."""
    assert response.status_code == status, f"{response.status_code} {response.text[:300]}"
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return str(body["error"]["message"])


def _json(body: Any) -> dict[str, Any]:
    return {"content": json.dumps(body, ensure_ascii=False).encode(), "headers": {"content-type": "application/json"}}


def _raw(content: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": content_type}}


def _files(count: int, name: str = "f{}.txt", data: bytes = b"x") -> dict[str, Any]:
    return {"files": [("files", (name.format(i), data)) for i in range(count)]}


def _query(**fields: Any) -> dict[str, Any]:
    return _json({"collection": COLLECTION, "question": "KV 缓存", **fields})


def _chat(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return _json({"model": COLLECTION, "messages": messages, **fields})


NO_FILE_PARTS = b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nno files\r\n--b--\r\n'
NAMELESS_PART = b'--b\r\nContent-Disposition: form-data; filename="a.txt"\r\n\r\nx\r\n--b--\r\n'
USER = {"role": "user", "content": "什么是 KV 缓存？"}
LONG_NAME = "a" * 500
UPLOAD = f"/v1/collections/{COLLECTION}/documents"
INDEX = f"/v1/collections/{COLLECTION}/index-jobs"

Q, CHAT, BAD, TOO_BIG = "/v1/queries", "/v1/chat/completions", "invalid_request", "request_too_large"
MULTIPART = "multipart/form-data; boundary=b"

# (id, method, url, request keyword arguments, status, code)
# fmt: off
TABLE: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    # POST /v1/queries
    ("query_empty_question", "POST", Q, _query(question=""), 422, BAD),
    ("query_whitespace_question", "POST", Q, _query(question=" \t\n "), 422, BAD),
    ("query_1mb_ascii_question", "POST", Q, _query(question="q" * 1_000_000), 413, "question_too_long"),
    ("query_1mb_chinese_question", "POST", Q, _query(question="问" * 400_000), 413, TOO_BIG),
    ("query_invalid_utf8", "POST", Q, _raw(b'{"collection":"bad-input","question":"\xff\xfe"}'), 400, "bad_request"),
    ("query_malformed_json", "POST", Q, _raw(b'{"collection": "bad-input", "question":'), 422, BAD),
    ("query_json_array", "POST", Q, _json([]), 422, BAD),
    ("query_json_null", "POST", Q, _json(None), 422, BAD),
    ("query_empty_body", "POST", Q, _raw(b""), 422, BAD),
    ("query_text_plain", "POST", Q, _raw(b'{"collection":"bad-input","question":"q"}', "text/plain"), 422, BAD),
    ("query_form_encoded", "POST", Q, _raw(b"collection=x&question=q", "application/x-www-form-urlencoded"), 422, BAD),
    ("query_top_k_negative", "POST", Q, _query(top_k=-1), 422, BAD),
    ("query_top_k_zero", "POST", Q, _query(top_k=0), 422, BAD),
    ("query_top_k_billion", "POST", Q, _query(top_k=10**9), 422, BAD),
    ("query_top_k_past_int64", "POST", Q, _query(top_k=10**30), 422, BAD),
    ("query_top_k_string", "POST", Q, _query(top_k="many"), 422, BAD),
    ("query_unknown_mode", "POST", Q, _query(mode="psychic"), 422, BAD),
    ("query_21_history_turns", "POST", Q, _query(history=[{"role": "user", "content": "q"}] * 21), 422,
     "history_too_long"),
    ("query_history_of_30k_chars", "POST", Q, _query(history=[{"role": "assistant", "content": "长" * 30_000}]), 422,
     "history_too_long"),
    ("query_history_unknown_role", "POST", Q, _query(history=[{"role": "tool", "content": "q"}]), 422, BAD),
    ("query_collection_dotdot", "POST", Q, _query(collection=".."), 422, BAD),
    ("query_collection_slash", "POST", Q, _query(collection="a/b"), 422, BAD),
    ("query_collection_unicode", "POST", Q, _query(collection="知识库"), 422, BAD),
    ("query_collection_500_chars", "POST", Q, _query(collection=LONG_NAME), 422, BAD),
    ("query_collection_newline", "POST", Q, _query(collection="probe\n"), 422, BAD),
    ("query_unknown_collection", "POST", Q, _query(collection="no-such-collection"), 404, "collection_not_found"),
    # POST /v1/collections/{c}/index-jobs
    ("index_no_paths", "POST", INDEX, _json({"paths": []}), 422, BAD),
    ("index_paths_not_a_list", "POST", INDEX, _json({"paths": "kv.txt"}), 422, BAD),
    ("index_1001_paths", "POST", INDEX, _json({"paths": ["a.txt"] * 1001}), 422, BAD),
    ("index_nul_byte", "POST", INDEX, _json({"paths": ["bad-input/kv\x00.txt"]}), 422, "invalid_path"),
    ("index_300_char_name", "POST", INDEX, _json({"paths": ["a" * 300]}), 422, "invalid_path"),
    ("index_2000_char_path", "POST", INDEX, _json({"paths": ["a/" * 1000]}), 422, "invalid_path"),
    ("index_whitespace_path", "POST", INDEX, _json({"paths": ["  "]}), 422, "invalid_path"),
    ("index_dotdot", "POST", INDEX, _json({"paths": ["../../../etc"]}), 403, "path_not_allowed"),
    ("index_absolute_outside", "POST", INDEX, _json({"paths": ["/etc/hostname"]}), 403, "path_not_allowed"),
    ("index_device", "POST", INDEX, _json({"paths": ["/dev/zero"]}), 403, "path_not_allowed"),
    ("index_malformed_json", "POST", INDEX, _raw(b'{"paths": ['), 422, BAD),
    ("index_collection_dotdot", "POST", "/v1/collections/%2E%2E/index-jobs", _json({"paths": ["x"]}), 422, BAD),
    ("index_collection_unicode", "POST", "/v1/collections/%E7%9F%A5/index-jobs", _json({"paths": ["x"]}), 422, BAD),
    ("index_collection_500_chars", "POST", f"/v1/collections/{LONG_NAME}/index-jobs", _json({"paths": ["x"]}), 422,
     BAD),
    ("index_collection_slash", "POST", "/v1/collections/a%2Fb/index-jobs", _json({"paths": ["x"]}), 404, "not_found"),
    # POST /v1/collections/{c}/documents (uploads)
    ("upload_zero_byte_file", "POST", UPLOAD, _files(1, "empty.txt", b""), 422, "empty_file"),
    ("upload_binary_named_txt", "POST", UPLOAD, _files(1, "blob.txt", bytes(range(256)) * 64), 422,
     "invalid_encoding"),
    ("upload_unsupported_type", "POST", UPLOAD, _files(1, "tool{}.exe"), 415, "unsupported_type"),
    ("upload_2001_files", "POST", UPLOAD, _files(2001), 413, "too_many_files"),
    ("upload_json_body", "POST", UPLOAD, _json({"files": []}), 415, "multipart_required"),
    ("upload_no_file_parts", "POST", UPLOAD, _raw(NO_FILE_PARTS, MULTIPART), 422, "no_files"),
    ("upload_garbage_multipart", "POST", UPLOAD, _raw(b"--b\r\ngarbage", MULTIPART), 422, "no_files"),
    ("upload_part_without_a_name", "POST", UPLOAD, _raw(NAMELESS_PART, MULTIPART), 400, "invalid_multipart"),
    ("upload_collection_unicode", "POST", "/v1/collections/%E7%9F%A5/documents", _files(1), 422, BAD),
    # GET /v1/collections/{c}/documents and the other collection routes
    ("documents_offset_past_int64", "GET", f"{UPLOAD}?offset=9223372036854775808", {}, 422, BAD),
    ("documents_offset_negative", "GET", f"{UPLOAD}?offset=-1", {}, 422, BAD),
    ("documents_limit_zero", "GET", f"{UPLOAD}?limit=0", {}, 422, BAD),
    ("documents_limit_billion", "GET", f"{UPLOAD}?limit=1000000000", {}, 422, BAD),
    ("documents_offset_not_a_number", "GET", f"{UPLOAD}?offset=abc", {}, 422, BAD),
    ("documents_unknown_collection", "GET", "/v1/collections/nope/documents", {}, 404, "collection_not_found"),
    ("delete_unknown_document", "DELETE", f"{UPLOAD}/{'f' * 32}", {}, 404, "document_not_found"),
    ("delete_document_nul", "DELETE", f"{UPLOAD}/%00", {}, 404, "document_not_found"),
    ("collection_dotdot", "GET", "/v1/collections/%2E%2E", {}, 422, BAD),
    ("collection_500_chars", "DELETE", f"/v1/collections/{LONG_NAME}", {}, 422, BAD),
    ("collection_newline", "GET", "/v1/collections/probe%0A", {}, 422, BAD),
    ("collection_unknown", "GET", "/v1/collections/no-such-collection", {}, 404, "collection_not_found"),
    # /v1/jobs
    ("jobs_offset_past_int64", "GET", "/v1/jobs?offset=9223372036854775808", {}, 422, BAD),
    ("jobs_limit_billion", "GET", "/v1/jobs?limit=1000000000", {}, 422, BAD),
    ("jobs_unknown_state", "GET", "/v1/jobs?state=sleeping", {}, 422, BAD),
    ("job_unknown", "GET", f"/v1/jobs/{UNKNOWN_JOB}", {}, 404, "job_not_found"),
    ("job_events_unknown", "GET", f"/v1/jobs/{UNKNOWN_JOB}/events", {}, 404, "job_not_found"),
    ("job_documents_unknown", "GET", f"/v1/jobs/{UNKNOWN_JOB}/documents", {}, 404, "job_not_found"),
    ("job_id_5000_chars", "GET", f"/v1/jobs/{'a' * 5000}", {}, 404, "job_not_found"),
    ("job_id_upper_case", "GET", f"/v1/jobs/{'A' * 32}", {}, 404, "job_not_found"),
    ("jobs_put", "PUT", "/v1/jobs", {}, 405, "method_not_allowed"),
    # /v1/queries/{id}
    ("stream_unknown_job", "GET", f"{Q}/{UNKNOWN_JOB}/stream", {}, 404, "job_not_found"),
    ("stream_bad_job_id", "GET", f"{Q}/nope/stream", {}, 404, "job_not_found"),
    ("cancel_unknown_job", "DELETE", f"{Q}/{UNKNOWN_JOB}", {}, 404, "job_not_found"),
    ("cancel_bad_job_id", "DELETE", f"{Q}/..%2F..", {}, 404, "not_found"),
    # GET /stream_chat
    ("stream_chat_no_question", "GET", "/stream_chat", {}, 422, BAD),
    ("stream_chat_empty_question", "GET", f"/stream_chat?param=%20&collection={COLLECTION}", {}, 422, "empty_question"),
    ("stream_chat_top_k_billion", "GET", "/stream_chat?param=q&top_k=1000000000", {}, 422, BAD),
    ("stream_chat_collection_dotdot", "GET", "/stream_chat?param=q&collection=..", {}, 422, "invalid_collection"),
    ("stream_chat_collection_nl", "GET", "/stream_chat?param=q&collection=probe%0A", {}, 422, "invalid_collection"),
    ("stream_chat_bad_last_event_id", "GET", "/stream_chat?param=q", {"headers": {"Last-Event-ID": "x:1"}}, 422,
     "invalid_last_event_id"),
    ("stream_chat_unknown_job", "GET", "/stream_chat?param=q", {"headers": {"Last-Event-ID": f"{UNKNOWN_JOB}:1"}},
     404, "job_not_found"),
    # POST /v1/chat/completions, GET /v1/models
    ("chat_no_messages", "POST", CHAT, _chat([]), 422, BAD),
    ("chat_last_not_user", "POST", CHAT, _chat([USER, {"role": "assistant", "content": "a"}]), 422, BAD),
    ("chat_unknown_role", "POST", CHAT, _chat([{"role": "wizard", "content": "q"}]), 422, BAD),
    ("chat_empty_question", "POST", CHAT, _chat([{"role": "user", "content": "  "}]), 422, "empty_question"),
    ("chat_model_dotdot", "POST", CHAT, _json({"model": "..", "messages": [USER]}), 422, "invalid_collection"),
    ("chat_top_k_billion", "POST", CHAT, _chat([USER], top_k=10**9), 422, BAD),
    ("chat_malformed_json", "POST", CHAT, _raw(b'{"model": "x", "messages": [{'), 422, BAD),
    ("chat_21_history_turns", "POST", CHAT, _chat([USER] * 22), 422, "history_too_long"),
    ("chat_history_of_30k_chars", "POST", CHAT, _chat([{"role": "assistant", "content": "长" * 30_000}, USER]), 422,
     "history_too_long"),
    ("chat_12mb_history", "POST", CHAT, _chat([{"role": "user", "content": "a" * 200_000}] * 60), 413, TOO_BIG),
    ("models_post", "POST", "/v1/models", {}, 405, "method_not_allowed"),
    ("unknown_route", "GET", "/v1/nothing-here", {}, 404, "not_found"),
]
# fmt: on


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "code"), [c[1:] for c in TABLE], ids=[c[0] for c in TABLE]
)
def test_bad_input_is_a_4xx_with_a_stable_code(
    client: httpx.Client, query_job: str, method: str, url: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    assert_error(client.request(method, url, **kwargs), status, code)


# --- Regression tests, one per finding of the security review ---------------------------------------------------------


def test_documents_offset_beyond_int64_is_422(client: httpx.Client, query_job: str) -> None:
    assert_error(client.get(UPLOAD, params={"offset": str(2**63)}), 422, "invalid_request")


def test_jobs_offset_beyond_int64_is_422_not_a_redis_error(client: httpx.Client) -> None:
    assert_error(client.get("/v1/jobs", params={"offset": str(2**63)}), 422, "invalid_request")
    assert_error(client.get("/v1/jobs", params={"offset": str(2**63 - 8)}), 422, "invalid_request")


@pytest.mark.parametrize("raw", ["²", "9" * 5000, "-1", "1.5", "+1", "0x1", "18446744073709551615"])
def test_last_event_id_not_a_bounded_ascii_integer_is_422(client: httpx.Client, query_job: str, raw: str) -> None:
    url = f"/v1/queries/{query_job}/stream"
    assert_error(client.get(url, headers=[(b"Last-Event-ID", raw.encode())]), 422, "invalid_last_event_id")
    chat = "/stream_chat?param=q"
    assert_error(
        client.get(chat, headers=[(b"Last-Event-ID", f"{query_job}:{raw}".encode())]), 422, "invalid_last_event_id"
    )


def test_last_event_id_param_past_int64_is_422_not_a_cut_stream(client: httpx.Client, query_job: str) -> None:
    url = f"/v1/queries/{query_job}/stream"
    assert_error(client.get(url, params={"last_event_id": "18446744073709551615"}), 422, "invalid_last_event_id")
    assert client.get(url, params={"last_event_id": "999999999999999999"}).status_code == 204  # past the end


@pytest.mark.parametrize("suffix", [":documents", ":batches", "x", "%0A"])
def test_job_id_naming_another_redis_key_is_404_on_every_job_route(
    client: httpx.Client, query_job: str, suffix: str
) -> None:
    """`<id>:documents` named an index job's documents hash: KeyError / WRONGTYPE 500s before ids were checked."""
    index_job = client.get("/v1/jobs", params={"kind": "index", "state": "succeeded", "limit": 1}).json()[0]["id"]
    job = index_job + suffix
    for method, url in [
        ("GET", f"/v1/jobs/{job}"),
        ("GET", f"/v1/jobs/{job}/events"),
        ("GET", f"/v1/jobs/{job}/documents"),
        ("GET", f"/v1/queries/{job}/stream"),
        ("DELETE", f"/v1/queries/{job}"),
    ]:
        assert_error(client.request(method, url), 404, "job_not_found")
    chat = client.get("/stream_chat?param=q", headers={"Last-Event-ID": f"{job}:1"})
    assert chat.status_code in (404, 422) and chat.json()["error"]["code"] in ("job_not_found", "invalid_last_event_id")


def test_index_path_with_a_nul_byte_or_300_characters_is_422(client: httpx.Client) -> None:
    for path in ["kv\x00.txt", "a" * 300]:
        assert_error(client.post(INDEX, json={"paths": [path]}), 422, "invalid_path")


def test_symlink_escape_while_walking_a_folder_is_skipped_and_reported(
    client: httpx.Client, offline_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A review finding (high): symlinks to /etc/hostname and to a file outside the root were walked and indexed."""
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_text("外部机密：这段文字绝不能被索引。\n", encoding="utf-8")
    folder = offline_stack.import_dir / "escape"
    (folder / "sub").mkdir(parents=True)
    (folder / "kept.txt").write_text(DOCUMENT, encoding="utf-8")
    (folder / "hostname.txt").symlink_to("/etc/hostname")
    (folder / "secret.txt").symlink_to(outside)
    (folder / "linked").symlink_to(outside.parent, target_is_directory=True)
    accepted = client.post("/v1/collections/escape/index-jobs", json={"paths": ["escape"]})
    assert accepted.status_code == 202, accepted.text
    job, _ = wait_for_job(client, accepted.json()["job_id"])
    assert job["state"] == "succeeded" and job["result"]["documents_indexed"] == 1, job
    assert {f["source"]: f["error"] for f in job["result"]["failed"]} == {
        "escape/hostname.txt": "skipped: a symlink that resolves outside the import roots",
        "escape/secret.txt": "skipped: a symlink that resolves outside the import roots",
        "escape/linked": "skipped: a symlinked folder; folders are walked without following symlinks",
    }
    statuses = client.get(f"/v1/jobs/{job['id']}/documents").json()
    assert statuses["counts"] == {"indexed": 1, "failed": 3}
    # Only the file inside the root is in the collection, named relative to the import root.
    documents = client.get("/v1/collections/escape/documents").json()["documents"]
    assert [d["source"] for d in documents] == ["escape/kept.txt"]


def test_paths_in_errors_and_sources_are_relative_never_absolute(
    client: httpx.Client, offline_stack: Stack, query_job: str
) -> None:
    server_root = str(offline_stack.data_dir.resolve())
    for paths in (["missing.txt"], ["/etc/hostname"], ["../.."]):
        response = client.post(INDEX, json={"paths": paths})
        assert response.status_code in (403, 404) and server_root not in response.text, response.text
    events = read_stream_for(client, "什么是 KV 缓存？")
    assert events[0].event == "sources" and events[0].data
    assert all(not s["document"].startswith("/") for s in events[0].data), events[0].data


def read_stream_for(client: httpx.Client, question: str) -> list[Any]:
    accepted = client.post("/v1/queries", json={"collection": COLLECTION, "question": question})
    assert accepted.status_code == 202, accepted.text
    return read_stream(client, accepted.json()["stream_url"])


def test_chat_history_over_the_limits_is_refused(client: httpx.Client, query_job: str) -> None:
    """10 turns of 200k characters (12 MB) reached the worker; now the body limit or the history limits refuse it."""
    assert_error(client.post("/v1/chat/completions", **_chat([USER] * 21 + [USER])), 422, "history_too_long")
    many = [{"role": "user", "content": "长" * 5_000}] * 5
    assert_error(client.post("/v1/chat/completions", **_chat([*many, USER])), 422, "history_too_long")


def _raw_request(stack: Stack, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a request head and some body parts, then read what the server answers without sending the rest."""
    port = int(stack.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            received = sock.recv(65536)
            if not received:
                break
            answer += received
        return answer


def test_a_64_mb_query_body_is_refused_before_it_is_read(offline_stack: Stack) -> None:
    """The declared length is enough: the answer comes while 63.9 of the 64 MB were never sent."""
    head = b"POST /v1/queries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 67108864\r\n\r\n"
    answer = _raw_request(offline_stack, head, [b'{"collection": "' + b"a" * 65536])
    assert answer.startswith(b"HTTP/1.1 413") and b'"request_too_large"' in answer, answer[:300]


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(offline_stack: Stack) -> None:
    """No Content-Length: the count while reading refuses it after ~1 MiB, with the rest never sent."""
    head = (
        b"POST /v1/queries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    block = b"a" * (256 * 1024)
    chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    answer = _raw_request(offline_stack, head, [chunk] * 5)  # 1.25 MiB of a body that never ends
    assert answer.startswith(b"HTTP/1.1 413") and b'"request_too_large"' in answer, answer[:300]


def test_an_upload_over_the_request_limit_is_refused_before_it_is_read(offline_stack: Stack) -> None:
    """Uploads have their own limit (MAX_UPLOAD_REQUEST_BYTES, 512 MiB), enforced by the same body limit."""
    head = (
        f"POST /v1/collections/{COLLECTION}/documents HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 600000000\r\n\r\n"
    ).encode()
    answer = _raw_request(offline_stack, head, [b"--b\r\n"])
    assert answer.startswith(b"HTTP/1.1 413") and b'"request_too_large"' in answer, answer[:300]


def test_stream_on_a_job_whose_replay_buffer_expired_is_410(
    client: httpx.Client, offline_stack: Stack, query_job: str
) -> None:
    """The record lives 7 days, the events 1 hour: without this, a stream with no Last-Event-ID waited forever."""
    job = client.post("/v1/queries", json={"collection": COLLECTION, "question": "键向量"}).json()["job_id"]
    assert read_stream(client, f"/v1/queries/{job}/stream")[-1].event == "done"
    with redis.Redis.from_url(offline_stack.env["REDIS_URL"]) as r:
        assert r.delete(keys.replay_key(job)) == 1  # what REPLAY_TTL_S does an hour later
    for headers in ({}, {"Last-Event-ID": "2"}):
        assert_error(client.get(f"/v1/queries/{job}/stream", headers=headers), 410, "replay_expired")
    resume = client.get("/stream_chat?param=q", headers={"Last-Event-ID": f"{job}:2", "Accept": "text/event-stream"})
    assert_error(resume, 410, "replay_expired")


def test_405_lists_every_allowed_method(client: httpx.Client) -> None:
    response = client.put(f"/v1/collections/{COLLECTION}")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, DELETE"
    assert client.post("/v1/jobs").headers["allow"] == "GET"


def test_upload_route_declares_its_multipart_body_in_openapi(client: httpx.Client) -> None:
    upload = client.get("/openapi.json").json()["paths"]["/v1/collections/{collection}/documents"]["post"]
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["files"] == {
        "type": "array",
        "items": {"type": "string", "format": "binary"},
        "description": schema["properties"]["files"]["description"],
    }


def test_collection_name_with_a_trailing_newline_is_refused(client: httpx.Client) -> None:
    """`$` matched before a final newline: `probe%0A` passed the name pattern until it was a fullmatch."""
    assert_error(client.get("/v1/collections/probe%0A"), 422, "invalid_request")
    assert_error(client.post("/v1/queries", json={"collection": "probe\n", "question": "q"}), 422, "invalid_request")
    assert_error(client.get("/stream_chat", params={"param": "q", "collection": "probe\n"}), 422, "invalid_collection")


def test_workers_still_answer_after_the_bad_input(client: httpx.Client, query_job: str) -> None:
    events = read_stream_for(client, "KV 缓存保存什么？")
    assert [e.event for e in events][0] == "sources" and events[-1].event == "done"
    assert any(e.event == "token" for e in events)
