"""The periodic reaper (celery beat, a worker on `maintenance`) ends dead and stale query jobs nobody listens to."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import BIN, RedisServer, Stack
from shared import keys
from shared.streams.events import StreamEvent
from tests.conftest import client_for, copy_sample_docs, stack_env
from tests.support.jobs import index_and_wait, replay_log, wait_for_job
from tests.support.teardown import stop_later

pytestmark = pytest.mark.integration

SLOW_TOKENS = [f"词{i}" for i in range(200)]
QUESTION = "什么是投机解码？"


@pytest.fixture(scope="module")
def reaper_stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Index and query workers (both on `maintenance`) and one beat, with heartbeats and the reaper quick."""
    root = tmp_path_factory.mktemp("reaper")
    env = stack_env(redis_server, "reaper", root, zhipu_server)
    env.update(
        HEARTBEAT_INTERVAL_S="0.5",
        HEARTBEAT_TTL_S="3",
        REAPER_INTERVAL_S="1",
        QUEUE_TIMEOUT_S="4",
        INDEX_BATCH_FILES="2",
        ADMISSION_REQUIRE_CONSUMER="0",  # a test queues a question while no query worker runs
    )
    # One thread on the index worker the batch test kills: a second thread may be between the broker's BRPOP
    # and the unacked set when the SIGKILL lands, and a message lost in that window is beyond any reaper.
    stack = Stack("reaper", env, root).start(
        [("index", "index,maintenance", "threads", 1), ("query", "query,maintenance", "threads", 2)]
    )
    schedule = root / "celerybeat-schedule"
    stack.spawn("beat", [str(BIN / "celery"), "-A", "workers.taskless_app:app", "beat", "-s", str(schedule)])
    yield stack
    stop_later("reaper stack", stack.stop)  # while the next module starts


def _ending(stack: Stack, job_id: str) -> StreamEvent:
    r = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    return replay_log(r, job_id)[-1]


def _wait_for_tokens(stack: Stack, job_id: str, count: int, timeout: float = 60.0) -> None:
    r = redis.Redis.from_url(stack.env["REDIS_URL"])
    deadline = time.monotonic() + timeout
    while r.xlen(f"rag:replay:{job_id}") < count + 1:  # sources, then tokens
        assert time.monotonic() < deadline, "the answer did not start"
        time.sleep(0.05)


def test_a_killed_query_worker_ends_its_job_worker_lost_with_no_client_listening(
    reaper_stack: Stack, zhipu: ZhipuFakeServer
) -> None:
    with client_for(reaper_stack) as client:
        copy_sample_docs(reaper_stack, "kb")
        indexed = index_and_wait(client, "reaped", ["kb"])
        assert indexed["state"] == "succeeded", indexed
        zhipu.configure(tokens=SLOW_TOKENS, token_delay_ms=100)
        response = client.post("/v1/queries", json={"collection": "reaped", "question": QUESTION})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        _wait_for_tokens(reaper_stack, job_id, 3)  # nobody ever opens the stream

        worker = reaper_stack.processes.pop("query")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)

        job, _ = wait_for_job(client, job_id, timeout=60)
        assert job["state"] == "failed" and job["error"]["code"] == "worker_lost", job
        ending = _ending(reaper_stack, job_id)
        assert ending.event == "error" and ending.data["code"] == "worker_lost"
        assert "\nragqueue_queries_open 0.0\n" in client.get("/metrics").text  # its admission place is freed


def test_a_question_no_worker_takes_expires_queue_timeout_with_no_client_listening(reaper_stack: Stack) -> None:
    if "query" in reaper_stack.processes:  # (the test above killed it already when run with it)
        reaper_stack.stop("query")
    with client_for(reaper_stack) as client:
        copy_sample_docs(reaper_stack, "kb")
        index_and_wait(client, "reaped", ["kb"])
        response = client.post("/v1/queries", json={"collection": "reaped", "question": QUESTION})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        job, _ = wait_for_job(client, job_id, timeout=60)
    assert job["state"] == "failed" and job["error"]["code"] == "queue_timeout", job
    assert _ending(reaper_stack, job_id).data["code"] == "queue_timeout"


@pytest.mark.faults
def test_an_index_batch_whose_worker_was_killed_is_requeued_and_the_job_finishes_with_every_chunk_once(
    reaper_stack: Stack, zhipu: ZhipuFakeServer
) -> None:
    reaper_stack.start_worker("index-2", "index,maintenance", "threads", 2)
    zhipu.configure(embedding_delay_ms=1500)  # each batch takes a while: time to kill its worker mid-batch
    with client_for(reaper_stack) as client:
        notes = [
            ("files", (f"n{i}.md", f"# 笔记 {i}\n\n第 {i} 号实验测量了批处理吞吐。\n".encode(), "text/markdown"))
            for i in range(8)
        ]
        response = client.post("/v1/collections/orphans/documents", files=notes)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        def taken_by_first_worker() -> bool:
            docs = client.get(f"/v1/jobs/{job_id}/documents").json()["documents"]
            return any(d["status"] == "indexing" and "reaper-index@" in (d["worker"] or "") for d in docs)

        deadline = time.monotonic() + 60
        while not taken_by_first_worker():
            assert time.monotonic() < deadline, "no batch started on the first index worker"
            time.sleep(0.1)
        worker = reaper_stack.processes.pop("index")
        os.kill(worker.pid, signal.SIGKILL)  # its batches stay unacked in the broker: only the reaper frees them
        worker.wait(10)

        job, _ = wait_for_job(client, job_id, timeout=120)
        counts = client.get(f"/v1/jobs/{job_id}/documents").json()["counts"]
        assert job["state"] == "succeeded", job
        assert counts == {"indexed": 8}, counts

        # The same files indexed with no fault: the collections must hold the same documents and chunks.
        zhipu.configure(embedding_delay_ms=0)
        clean = client.post("/v1/collections/orphans-clean/documents", files=notes)
        assert wait_for_job(client, clean.json()["job_id"])[0]["state"] == "succeeded"
        killed, uninterrupted = (_contents(client, c) for c in ("orphans", "orphans-clean"))
    assert killed == uninterrupted  # none missing, none twice
    assert len(killed[0]) == 8 and killed[1] == sum(chunks for _, _, chunks in killed[0])


def _contents(client: httpx.Client, collection: str) -> tuple[list[tuple[str, str, int]], int]:
    """(source, sha256, chunks) of each document, and the collection's chunk count."""
    documents = client.get(f"/v1/collections/{collection}/documents").json()["documents"]
    info = client.get(f"/v1/collections/{collection}").json()
    return sorted((d["source"], d["sha256"], d["chunks"]) for d in documents), info["chunks"]


@pytest.mark.faults
def test_a_job_whose_worker_died_finalising_it_is_finalised_by_its_last_batch_again(
    reaper_stack: Stack, zhipu: ZhipuFakeServer
) -> None:
    """A worker killed while it finalised a job (its last batch recorded finished, the job not ended yet: in a long
    search index build, say) leaves the job running and the batch unacked. The reaper puts that batch back, and its
    next run ends the job. Set up here by recording the job's one batch finished before a worker takes it, then
    killing that worker mid-batch: the state a kill inside the finalisation leaves."""
    for name in [name for name in reaper_stack.processes if name.startswith("index")]:
        reaper_stack.stop(name)
    zhipu.configure(embedding_delay_ms=1500)  # time to kill the worker mid-batch
    with client_for(reaper_stack) as client:
        note = ("files", ("last.md", "# 最后一批\n\n最后一批再次送达时，作业照样结束。\n".encode(), "text/markdown"))
        response = client.post("/v1/collections/refinalised/documents", files=[note])
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        with redis.Redis.from_url(reaper_stack.env["REDIS_URL"]) as r:
            r.sadd(keys.job_finished_batches_key(job_id), 0)
        doomed = reaper_stack.start_worker("index-doomed", "index,maintenance", "threads", 1)

        def indexing() -> bool:
            docs = client.get(f"/v1/jobs/{job_id}/documents").json()["documents"]
            return any(d["status"] == "indexing" for d in docs)

        deadline = time.monotonic() + 60
        while not indexing():
            assert time.monotonic() < deadline, "the batch never started"
            time.sleep(0.1)
        os.kill(reaper_stack.processes.pop("index-doomed").pid, signal.SIGKILL)
        doomed.wait(10)
        zhipu.configure(embedding_delay_ms=0)
        reaper_stack.start_worker("index-after", "index,maintenance", "threads", 1)
        job, _ = wait_for_job(client, job_id, timeout=60)
    assert job["state"] == "succeeded", job
    assert job["result"]["documents_indexed"] == 1, job["result"]
