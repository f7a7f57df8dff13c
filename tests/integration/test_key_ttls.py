"""Every Redis key a job leaves behind expires, each after its own setting: a key without a TTL leaks forever.

Per job (shared/keys.py): the job record (`JOB_TTL_S`), a query's replay log (`REPLAY_TTL_S`), an index job's
per-document status hash, per-batch progress hash and finished-batches set (`JOB_TTL_S`), each `Idempotency-Key`
(`IDEMPOTENCY_TTL_S`), a cancel flag (`REPLAY_TTL_S`) and a running job's heartbeat (`HEARTBEAT_TTL_S`, deleted
at the end). Each is checked to expire after its setting, counted from about now (not after another, shorter or
longer, one), and any other key named after the job must expire too. The shared keys (the jobs index, open
queries, metric counters, Celery's queues) are bounded otherwise and not checked here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack
from harness.sse import iter_events, read_stream
from shared import keys
from tests.conftest import client_for
from tests.support.contracts import stack_setting, wait_until
from tests.support.jobs import index_and_wait, wait_for_job

pytestmark = pytest.mark.integration

COLLECTION = "key-ttls"
NOTE = "# 过期\n\n每个任务在 Redis 里留下的键都会过期，否则内存会一直增长。\n"


@pytest.fixture
def r(offline_stack: Stack) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(offline_stack.env["REDIS_URL"], decode_responses=True) as client:
        yield client


def _note_folder(stack: Stack, name: str) -> str:
    folder: Path = stack.import_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "note.md").write_text(NOTE, encoding="utf-8")
    return name


def _assert_expires(r: redis.Redis, key: str, setting_s: float, since: float) -> None:
    """`key` exists and expires within `setting_s`, counted from no earlier than `since` (time.monotonic())."""
    ttl_ms = int(r.pttl(key))  # -2: no such key; -1: no expiry
    assert ttl_ms != -2, f"{key} is missing"
    assert ttl_ms != -1, f"{key} never expires"
    elapsed_ms = (time.monotonic() - since) * 1000
    assert setting_s * 1000 - elapsed_ms - 1000 <= ttl_ms <= setting_s * 1000, (key, ttl_ms, setting_s)


def _assert_every_key_of_expires(r: redis.Redis, job_id: str) -> list[str]:
    """Every key whose name holds `job_id` has a TTL; returns their names."""
    found = sorted(r.scan_iter(f"*{job_id}*", count=1000))
    assert found, job_id
    never = [key for key in found if r.pttl(key) == -1]
    assert not never, f"keys of job {job_id} that never expire: {never}"
    return found


def test_a_query_and_an_index_job_leave_only_keys_that_expire_after_their_setting(
    offline_stack: Stack, r: redis.Redis
) -> None:
    job_ttl, replay_ttl = stack_setting(offline_stack, "JOB_TTL_S"), stack_setting(offline_stack, "REPLAY_TTL_S")
    idempotency_ttl = stack_setting(offline_stack, "IDEMPOTENCY_TTL_S")
    index_key, query_key = str(uuid.uuid4()), str(uuid.uuid4())
    started = time.monotonic()
    with client_for(offline_stack) as client:
        folder = _note_folder(offline_stack, "kb-key-ttls")
        index = client.post(
            f"/v1/collections/{COLLECTION}/index-jobs", json={"paths": [folder]}, headers={"Idempotency-Key": index_key}
        )
        assert index.status_code == 202, index.text
        index_id = index.json()["job_id"]
        assert wait_for_job(client, index_id)[0]["state"] == "succeeded"
        query = client.post(
            "/v1/queries",
            json={"collection": COLLECTION, "question": "Redis 的键会过期吗？"},
            headers={"Idempotency-Key": query_key},
        )
        assert query.status_code == 202, query.text
        query_id = query.json()["job_id"]
        assert read_stream(client, query.json()["stream_url"])[-1].event == "done"
        assert wait_for_job(client, query_id)[0]["state"] == "succeeded"
    # The heartbeats are deleted as the jobs end; wait for that rather than catch one between its SET and DEL.
    wait_until(lambda: not r.exists(keys.heartbeat_key(index_id), keys.heartbeat_key(query_id)), 10, "heartbeats")

    expected = {
        keys.job_key(index_id): job_ttl,
        keys.job_documents_key(index_id): job_ttl,
        keys.job_batches_key(index_id): job_ttl,
        keys.job_finished_batches_key(index_id): job_ttl,
        keys.idempotency_key("index-jobs", index_key): idempotency_ttl,
        keys.job_key(query_id): job_ttl,
        keys.replay_key(query_id): replay_ttl,
        keys.idempotency_key("queries", query_key): idempotency_ttl,
    }
    for key, setting_s in expected.items():
        _assert_expires(r, key, setting_s, started)
    _assert_every_key_of_expires(r, index_id)
    _assert_every_key_of_expires(r, query_id)


def test_a_running_query_s_heartbeat_and_a_cancelled_one_s_cancel_flag_expire(
    zhipu_stack: Stack, zhipu: ZhipuFakeServer
) -> None:
    with client_for(zhipu_stack) as client:
        assert index_and_wait(client, COLLECTION, [_note_folder(zhipu_stack, "kb-key-ttls")])["state"] == "succeeded"
        zhipu.configure(tokens=[f"词{i}" for i in range(100)], token_delay_ms=100)
        accepted = client.post("/v1/queries", json={"collection": COLLECTION, "question": "键会过期吗？"})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        with (
            redis.Redis.from_url(zhipu_stack.env["REDIS_URL"], decode_responses=True) as r,
            client.stream("GET", accepted.json()["stream_url"]) as response,
        ):
            next(e for e in iter_events(response) if e.event == "token")  # the worker is answering
            started = time.monotonic()
            heartbeat_ttl = stack_setting(zhipu_stack, "HEARTBEAT_TTL_S")
            heartbeat_ms = int(r.pttl(keys.heartbeat_key(job_id)))
            assert 0 < heartbeat_ms <= heartbeat_ttl * 1000, heartbeat_ms
            assert client.delete(f"/v1/queries/{job_id}").status_code == 202
            _assert_expires(r, keys.cancel_key(job_id), stack_setting(zhipu_stack, "REPLAY_TTL_S"), started)
            assert wait_for_job(client, job_id)[0]["state"] == "cancelled"
            wait_until(lambda: not r.exists(keys.heartbeat_key(job_id)), 10, "the heartbeat deleted at the end")
            named = _assert_every_key_of_expires(r, job_id)
    assert keys.cancel_key(job_id) in named and keys.replay_key(job_id) in named
