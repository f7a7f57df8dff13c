"""A submit racing another with the same Idempotency-Key while the first has not answered yet (docs/api.md).

The first request is really stuck: its API process reaches Redis through a proxy that holds its task's LPUSH to
the `index` queue, as a slow broker would, after the key was reserved and the job recorded. The second waits for
the first's answer and gets the same job; if none comes within IDEMPOTENCY_WAIT_S (30 s by default), it gets
409 `idempotency_key_in_progress`, and the key still gives the first's job once that one answers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from harness import local_http
from harness.processes import Stack
from shared import keys
from shared.jobs.tasks import INDEX_QUEUE
from tests.support.contracts import HoldingProxy, spawn_api, wait_until
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.e2e

COLLECTION = "idem-in-progress"
# The held API's IDEMPOTENCY_WAIT_S (30 s by default): long enough for the first test's release, short for the 409.
WAIT_S = 4.0
# The RESP of kombu's `LPUSH index <message>`: the index job's task being sent to the broker.
SEND_INDEX_TASK = f"$5\r\nLPUSH\r\n${len(INDEX_QUEUE)}\r\n{INDEX_QUEUE}\r\n".encode()


@pytest.fixture(scope="module")
def proxy(offline_stack: Stack) -> Iterator[HoldingProxy]:
    redis_port = urlsplit(offline_stack.env["REDIS_URL"]).port
    assert redis_port is not None
    held = HoldingProxy(target_port=redis_port).start()
    yield held
    held.close()


@pytest.fixture(scope="module")
def api(offline_stack: Stack, proxy: HoldingProxy) -> Iterator[str]:
    """An API process on the offline stack's Redis DB, workers and DATA_DIR, reaching Redis through the proxy."""
    db = int(urlsplit(offline_stack.env["REDIS_URL"]).path.lstrip("/"))
    name = "api-held"
    yield spawn_api(offline_stack, name, {"REDIS_URL": proxy.url(db), "IDEMPOTENCY_WAIT_S": str(WAIT_S)})
    offline_stack.stop(name)


@pytest.fixture
def note(offline_stack: Stack) -> str:
    """A one-file folder to index (cheap for the stack's index worker)."""
    folder = offline_stack.import_dir / f"idem-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    (folder / "note.md").write_text("# 幂等\n\n同一个幂等键的并发请求只创建一个任务。\n", encoding="utf-8")
    return folder.name


def _submit(url: str, folder: str, key: str) -> httpx.Response:
    with local_http.client(base_url=url, timeout=httpx.Timeout(10.0, read=WAIT_S + 30)) as client:
        return client.post(
            f"/v1/collections/{COLLECTION}/index-jobs", json={"paths": [folder]}, headers={"Idempotency-Key": key}
        )


def _first_stuck_after_reserving(
    pool: ThreadPoolExecutor, api: str, proxy: HoldingProxy, folder: str, key: str
) -> Future[httpx.Response]:
    """Send the first request and return once it holds the key and its task is stuck on its way to the broker."""
    proxy.hold_next(SEND_INDEX_TASK)
    first = pool.submit(_submit, api, folder, key)
    wait_until(proxy.holding.is_set, 30, "the first request's task held on its way to the broker")
    assert not first.done()
    return first


def test_a_second_submit_with_the_same_key_waits_for_the_first_and_gets_its_job(
    api: str, proxy: HoldingProxy, note: str
) -> None:
    key = str(uuid.uuid4())
    idempotency = keys.idempotency_key("index-jobs", key).encode()
    with ThreadPoolExecutor(2) as pool:
        first = _first_stuck_after_reserving(pool, api, proxy, note, key)
        try:
            polls = proxy.count(idempotency)
            second = pool.submit(_submit, api, note, key)
            # The second request is polling the reservation (SET NX, then GET, twice over), not answered.
            wait_until(lambda: second.done() or proxy.count(idempotency) >= polls + 4, 10, "the second request polling")
            assert not second.done(), f"answered before the first: {second.result().text}"
        finally:
            proxy.release()
        a, b = first.result(), second.result()
    assert (a.status_code, b.status_code) == (202, 202), (a.text, b.text)
    assert b.json() == a.json()
    assert b.headers.get("idempotent-replayed") == "true" and "idempotent-replayed" not in a.headers
    with local_http.client(base_url=api) as client:
        assert wait_for_job(client, a.json()["job_id"])[0]["state"] == "succeeded"


def test_a_second_submit_still_waiting_after_the_wait_gets_409_idempotency_key_in_progress(
    api: str, proxy: HoldingProxy, note: str
) -> None:
    key = str(uuid.uuid4())
    with ThreadPoolExecutor(2) as pool:
        first = _first_stuck_after_reserving(pool, api, proxy, note, key)
        try:
            started = time.monotonic()
            second = _submit(api, note, key)
            waited = time.monotonic() - started
            assert not first.done()
        finally:
            proxy.release()
        accepted = first.result()
    assert second.status_code == 409, second.text
    error = second.json()["error"]
    assert error["code"] == "idempotency_key_in_progress", error
    assert key in error["message"] and "retry" in error["message"]
    assert waited >= WAIT_S, f"answered after {waited:.1f} s, before IDEMPOTENCY_WAIT_S"
    # The 409 did not use the key up: once the first answered, a retry gets its job.
    assert accepted.status_code == 202, accepted.text
    retried = _submit(api, note, key)
    assert retried.status_code == 202 and retried.json() == accepted.json(), retried.text
    assert retried.headers.get("idempotent-replayed") == "true"
