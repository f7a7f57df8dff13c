"""Questions sent together: the API's dispatcher on a real broker, and the workers' batch task.

A burst of questions leaves an API process as a few `answer_queries` messages instead of one message each
(api/query_dispatch.py); a worker answers every question of a batch as if it had come alone, including one
delivered again after a worker died (it ends `worker_lost`, the others are answered).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from api.errors import ApiError
from api.query_dispatch import QueryDispatcher
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from harness.sse import read_stream
from shared.jobs.dispatch import create_celery, send
from shared.jobs.records import new_job_id
from shared.jobs.tasks import QUERY_BATCH_TASK, QUERY_QUEUE, QUERY_TASK, QueryBatchTask, QueryTask
from shared.providers.answerers import EXTRACTIVE_NOTICE
from shared.settings import Settings
from shared.streams.events import REPLAY_FIELD, EventName, StreamEvent
from tests.conftest import OFFLINE_KB, client_for, copy_sample_docs
from tests.support.jobs import index_and_wait, write_queued_query

pytestmark = pytest.mark.integration

TOKENS = ["批", "量", "回", "答"]


def _queued(client: redis.Redis) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(task name, task id, requests) of every message waiting on the `query` queue, oldest first."""
    found = []
    for raw in reversed(client.lrange(QUERY_QUEUE, 0, -1)):  # kombu LPUSHes: the oldest is last
        message = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        request = kwargs["request"]
        requests = request["requests"] if message["headers"]["task"] == QUERY_BATCH_TASK else [request]
        found.append((message["headers"]["task"], message["headers"]["id"], requests))
    return found


def _task(collection: str = "c", question: str = "什么是 KV 缓存？") -> QueryTask:
    return QueryTask(job_id=new_job_id(), collection=collection, question=question, top_k=4)


def _redelivered(r: redis.Redis, ask: QueryTask) -> None:
    """As if its worker died after a token: delivered again, the question must end, never start over."""
    r.xadd(
        f"rag:replay:{ask.job_id}",
        {REPLAY_FIELD: StreamEvent(seq=1, event=EventName.TOKEN, data={"text": "半"}).to_wire()},
        id="0-1",
    )


def _text(events: list[Any]) -> str:
    return "".join(e.data["text"] for e in events if e.event == "token")


def _answer_batch(stack: Stack, client: httpx.Client, asks: list[QueryTask]) -> tuple[str, list[list[Any]]]:
    """Queue `asks` as the API would, the second as delivered again after its worker died, send them as one batch
    task and read every question's stream: (the batch's task id, each question's events)."""
    r = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    for ask in asks:
        write_queued_query(r, ask.job_id, ask.collection)
    _redelivered(r, asks[1])
    r.close()
    batch_id = f"batch-{uuid.uuid4().hex}"
    send(Celery(broker=stack.env["REDIS_URL"]), QueryBatchTask(requests=asks), task_id=batch_id)
    return batch_id, [read_stream(client, f"/v1/queries/{ask.job_id}/stream") for ask in asks]


def test_a_burst_leaves_as_shared_messages_and_a_lone_question_as_its_own(redis_server: RedisServer) -> None:
    url = redis_server.url(redis_server.claim_db("test_query_batches"))
    client = redis.Redis.from_url(url)
    dispatcher = QueryDispatcher(create_celery(Settings(REDIS_URL=url)), max_batch=8)
    burst = [_task() for _ in range(20)]

    async def send_all() -> None:
        await asyncio.gather(*(dispatcher.send(task) for task in burst))

    asyncio.run(send_all())
    queued = _queued(client)
    assert [(name, len(requests)) for name, _, requests in queued] == [(QUERY_BATCH_TASK, 8)] * 2 + [
        (QUERY_BATCH_TASK, 4)
    ]
    assert [r["job_id"] for _, _, requests in queued for r in requests] == [t.job_id for t in burst]
    # A batch's task id is its own: revoking one job's id (a cancel) must not revoke the questions sent with it.
    assert all(task_id.startswith("batch-") for _, task_id, _ in queued)

    client.delete(QUERY_QUEUE)
    lone = _task()
    asyncio.run(dispatcher.send(lone))
    assert _queued(client) == [(QUERY_TASK, lone.job_id, [lone.model_dump(mode="json", exclude_none=True)])]
    client.close()


def test_a_batch_answers_each_question_alone_and_ends_a_redelivered_one(
    zhipu_stack: Stack, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=TOKENS, token_delay_ms=20)  # answers long enough to overlap
    with client_for(zhipu_stack) as client:
        copy_sample_docs(zhipu_stack, "kb")
        assert index_and_wait(client, "batches", ["kb"])["state"] == "succeeded"
        asks = [_task("batches"), _task("batches", "什么是投机解码？"), _task("batches"), _task("missing")]
        # More questions than the worker has pool threads (-c 4): every one is answered, not only the first few.
        asks += [_task("batches") for _ in range(10)]
        batch_id, streams = _answer_batch(zhipu_stack, client, asks)
    # The batch's task itself ends well and counts every question's outcome (it once failed on the first
    # success, and the questions after it were then cancelled). zhipu answers on the worker's
    # event loop: the task hands each answer off, and the streams below show how each ended.
    states = "{'generating on the event loop': 12, 'redelivered': 1, 'failed': 1}"
    assert _worker_log_line(zhipu_stack, batch_id).endswith(f"{{'answers': 14, 'states': {states}}}")
    for events in (streams[0], streams[2], *streams[4:]):
        assert events[0].event == "sources" and events[-1].event == "done"
        assert "".join(e.data["text"] for e in events if e.event == "token") == "".join(TOKENS)
        assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert [(e.event, e.data.get("code")) for e in streams[1][-1:]] == [("error", "worker_lost")]
    assert [(e.event, e.data.get("code")) for e in streams[3]] == [("error", "not_found")]


def test_an_offline_batch_is_answered_on_the_event_loop_with_each_questions_own_answer(
    offline_stack: Stack, offline_kb: dict[str, Any]
) -> None:
    """The extractive answerer takes the LLM answerers' path: every question of a batch is handed to the worker's
    event loop, and gets the answer it gets when asked alone, in events numbered 1, 2, ..."""
    assert offline_kb["state"] == "succeeded", offline_kb
    questions = ["KV 缓存里保存的是什么？", "什么是投机解码？"]
    with client_for(offline_stack) as client:
        alone = {}
        for question in questions:
            asked = client.post("/v1/queries", json={"collection": OFFLINE_KB, "question": question, "top_k": 4})
            alone[question] = _text(read_stream(client, asked.json()["stream_url"]))
        asks = [_task(OFFLINE_KB, questions[i % 2]) for i in range(6)] + [_task("missing")]
        batch_id, streams = _answer_batch(offline_stack, client, asks)
    states = "{'generating on the event loop': 5, 'redelivered': 1, 'failed': 1}"
    assert _worker_log_line(offline_stack, batch_id).endswith(f"{{'answers': 7, 'states': {states}}}")
    for ask, events in [(asks[0], streams[0]), *zip(asks[2:6], streams[2:6], strict=True)]:
        assert events[0].event == "sources" and events[-1].event == "done"
        assert _text(events) == alone[ask.question] and _text(events).startswith(EXTRACTIVE_NOTICE)
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        assert events[-1].data["answerer"] == "extractive" and events[-1].data["tokens"] > 1
    assert [(e.event, e.data.get("code")) for e in streams[1][-1:]] == [("error", "worker_lost")]
    assert [(e.event, e.data.get("code")) for e in streams[6]] == [("error", "not_found")]


def test_every_question_of_a_batch_the_broker_refused_gets_a_503_and_the_next_send_is_tried_again() -> None:
    dispatcher = QueryDispatcher(create_celery(Settings(REDIS_URL="redis://127.0.0.1:1/0")), max_batch=8)

    async def send_all() -> list[BaseException | None]:
        return list(await asyncio.gather(*(dispatcher.send(_task()) for _ in range(5)), return_exceptions=True))

    for _ in range(2):  # a failed batch leaves no sender behind: the next burst is sent, and refused, again
        refused = asyncio.run(send_all())
        assert all(isinstance(e, ApiError) and (e.status_code, e.code) == (503, "broker_unavailable") for e in refused)


def _worker_log_line(stack: Stack, task_id: str) -> str:
    """The worker log line saying how the task `task_id` ended."""
    for _ in range(100):
        for log in stack.log_dir.glob(f"{stack.name}-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if f"[{task_id}]" in line and (" succeeded in " in line or " raised " in line):
                    return line
        time.sleep(0.1)
    raise AssertionError(f"no outcome of task {task_id} in {stack.log_dir}")
