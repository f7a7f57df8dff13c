"""Schema fuzzing: schemathesis drives every route of the running offline stack over HTTP.

Each operation of `/openapi.json` gets its schema's examples, boundary cases and a few generated requests,
valid and invalid, sent to the real uvicorn in front of real Redis and Celery workers. Every answer must be
no 5xx, a status code the route declares, with the declared content type and a body matching its model. No
request left hanging: one that gets no response headers within its read timeout (`STREAM_READ_S` on streaming
routes, `READ_S` on the others, which may wait for a whole answer) fails; an event stream is read for
`STREAM_READ_S` at most, then closed (one that keeps sending or pinging is fine). Both keys off and keys on
(the second API process of tests/e2e/conftest.py, with key A's Bearer).

Aimed, so fuzzing never touches what other tests use: a collection name that passes the name rule is
replaced by a throwaway one (`DROP_COLLECTION` for `DELETE /v1/collections/{c}`, which would otherwise drop
the collection the rest of the run fuzzes), an index path that exists on the server by a one-file folder,
and some job and document ids by real ones, so the routes past their 404 are fuzzed too. Invalid names
and ids are sent as generated. Deterministic (`derandomize`) and bounded (`MAX_EXAMPLES` generated requests
per operation). Run it alone with `pytest -m fuzz`.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from harness import local_http
from harness.processes import Stack
from tests.e2e.conftest import KeyedApi
from tests.support.jobs import index_and_wait, wait_for_job

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

MAX_EXAMPLES = 15
CONNECT_S = 5.0
# Read timeout, and for an event stream the time it is read in all before it is closed.
STREAM_READ_S = 10.0
READ_S = 30.0
FUZZ_COLLECTION = "fuzz-target"
DROP_COLLECTION = "fuzz-drop"
NAME_RULE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
STREAMING = {"/v1/queries/{job_id}/stream", "/v1/jobs/{job_id}/events", "/stream_chat"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "deterministic": True},
        "phases": {"stateful": {"enabled": False}},
        "max-stream-events": 50,
    }
)


@dataclass(frozen=True)
class FuzzTarget:
    """What fuzzed requests are aimed at: an API process, its key (if keys are on), real jobs and a document."""

    base_url: str
    import_dir: Path
    headers: dict[str, str]
    folder: str
    query_job: str
    index_job: str
    doc_id: str


def _drain(client: httpx.Client, timeout: float = 120.0) -> None:
    """Wait until no job is queued or running: the answers fuzzing asked for must not leak into later tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [client.get("/v1/jobs", params={"state": s, "limit": 1}).json() for s in ("queued", "running")]
        if not any(busy):
            return
        time.sleep(0.3)
    raise TimeoutError(f"jobs started by fuzzing still running after {timeout} s")


def _target_for(base_url: str, import_dir: Path, key: str | None) -> Iterator[FuzzTarget]:
    folder = import_dir / "fuzz"
    folder.mkdir(exist_ok=True)
    (folder / "fuzz.md").write_text("# 模糊测试\n\nKV 缓存保存注意力的键和值，避免重复计算。\n", encoding="utf-8")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with local_http.client(base_url=base_url, headers=headers, timeout=httpx.Timeout(10.0, read=60.0)) as client:
        for name in (DROP_COLLECTION, FUZZ_COLLECTION):  # the first DELETE of the collection finds one
            index_job = index_and_wait(client, name, ["fuzz"])
            assert index_job["state"] == "succeeded", index_job
        doc_id = client.get(f"/v1/collections/{FUZZ_COLLECTION}/documents").json()["documents"][0]["id"]
        asked = client.post("/v1/queries", json={"collection": FUZZ_COLLECTION, "question": "KV 缓存是什么？"})
        assert asked.status_code == 202, asked.text
        query_job, _ = wait_for_job(client, asked.json()["job_id"])
        yield FuzzTarget(base_url, import_dir, headers, "fuzz", query_job["id"], index_job["id"], doc_id)
        _drain(client)
        for name in (FUZZ_COLLECTION, DROP_COLLECTION):
            client.delete(f"/v1/collections/{name}")


@pytest.fixture(scope="module", params=["open", "keys"])
def fuzz_target(request: pytest.FixtureRequest, offline_stack: Stack) -> Iterator[FuzzTarget]:
    """The offline stack's API with keys off, then its second API process with keys on (tests/e2e/conftest.py)."""
    if request.param == "open":
        yield from _target_for(offline_stack.base_url, offline_stack.import_dir, None)
    else:
        keyed: KeyedApi = request.getfixturevalue("keyed_api")
        yield from _target_for(keyed.url, offline_stack.import_dir, keyed.key_a)


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """An evaluation set's body (POST /v1/collections/{c}/evaluations) is declared as text: sent as it is."""
    return value if isinstance(value, bytes) else str(value).encode()


# The schema the app publishes at /openapi.json, built from the code at collection (one test per operation);
# the requests go to the stack's uvicorn. (schemathesis 4.32's lazy `from_fixture` needs pytest < 9.)
schema = schemathesis.openapi.from_dict(create_app().openapi(), config=CONFIG)


_turns = itertools.count()


def _pick(among: int) -> int:
    """Take turns (stable from run to run: the cases come in the same order, the run is derandomized)."""
    return next(_turns) % among


def _aim(case: schemathesis.Case, target: FuzzTarget) -> None:
    """Point generated names, paths and ids at the throwaway collection and real jobs (module docstring)."""
    path, method = case.operation.path, case.method.upper()
    params = case.path_parameters or {}
    name = params.get("collection")
    if isinstance(name, str) and NAME_RULE.fullmatch(name):
        dropping = method == "DELETE" and path == "/v1/collections/{collection}"
        params["collection"] = DROP_COLLECTION if dropping else FUZZ_COLLECTION
    job_id = params.get("job_id")
    if isinstance(job_id, str) and _pick(3) < 2:  # two thirds name a real job, the rest are unknown
        params["job_id"] = (target.query_job, target.index_job)[_pick(2)]
    if isinstance(params.get("doc_id"), str) and _pick(3) == 0:  # the first deletes it, the rest find it gone
        params["doc_id"] = target.doc_id
    body = case.body
    if isinstance(body, dict):
        if isinstance(name := body.get("collection"), str) and NAME_RULE.fullmatch(name):
            body["collection"] = FUZZ_COLLECTION
        # `model` (OpenAI's) and `/stream_chat`'s `collection` have no pattern: most name the collection, some not.
        if isinstance(body.get("model"), str) and _pick(4) > 0:
            body["model"] = FUZZ_COLLECTION
        paths = body.get("paths")
        if isinstance(paths, list) and path.endswith("/index-jobs"):
            root = target.import_dir
            # Nothing on the server but the fuzz folder is ever indexed; a third of the requests index it.
            aimed = [target.folder if isinstance(p, str) and _exists(root, p) else p for p in paths]
            body["paths"] = [target.folder] if aimed and _pick(3) == 0 else aimed
    if path == "/stream_chat" and isinstance(case.query, dict):
        collection = case.query.get("collection")
        if collection is None or (isinstance(collection, str) and _pick(4) > 0):
            case.query["collection"] = FUZZ_COLLECTION


def _exists(root: Path, raw: str) -> bool:
    """Whether an index path would name something on the server (so indexing it could read other tests' files)."""
    try:
        return bool(raw.strip()) and (root / raw).exists()
    except (OSError, ValueError):
        return False


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_route_answers_within_its_schema(case: schemathesis.Case, fuzz_target: FuzzTarget) -> None:
    _aim(case, fuzz_target)
    streaming = case.operation.path in STREAMING or (isinstance(case.body, dict) and case.body.get("stream") is True)
    case.call_and_validate(
        base_url=fuzz_target.base_url,
        headers=fuzz_target.headers,
        timeout=(CONNECT_S, STREAM_READ_S if streaming else READ_S),
        checks=CHECKS,
    )
