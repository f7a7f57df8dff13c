"""Requeue index batches whose worker died: the reaper's half for index jobs (workers/reaper.py runs it).

A prefork child that dies has its batch redelivered by its parent at once; a whole worker process that dies
(SIGKILL, OOM, host lost) leaves the batch in the broker's unacked set until the visibility timeout, above
the task time limit (about half an hour). A running batch refreshes `rag:heartbeat:{job}:{batch}`; a batch
message delivered more than twice HEARTBEAT_TTL_S ago, still unacked, unfinished and without a heartbeat
is put back on its queue with kombu's own `restore_by_tag`, and another index worker takes it. The batch
counts its deliveries, so one whose worker keeps dying is failed after its retry limit
(workers/tasks/index.py); re-running a batch is safe, chunks are keyed by content.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from celery import Celery

from shared import keys
from shared.jobs.tasks import INDEX_BATCH_TASK, REQUEST_KWARG, IndexBatchTask
from shared.settings import Settings


def _batch_args(raw: bytes) -> tuple[Any, str, int] | None:
    """(delivery payload, job id, batch number) of an unacked index-batch message, else None."""
    payload, _exchange, _routing_key = json.loads(raw)
    headers = payload.get("headers") or {}
    if headers.get("task") != INDEX_BATCH_TASK:
        return None
    body = payload["body"]
    if payload.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    _args, kwargs, _embed = json.loads(body)
    task = IndexBatchTask.model_validate(kwargs[REQUEST_KWARG])
    return payload, task.job_id, task.batch


def requeue_orphaned_batches(celery: Celery, settings: Settings) -> int:
    """Put back every index batch whose worker died; returns how many."""
    requeued = 0
    grace_s = 2 * settings.HEARTBEAT_TTL_S
    with celery.connection_for_write() as conn:
        channel: Any = conn.default_channel
        client = channel.client
        delivered = dict(client.zrange(channel.unacked_index_key, 0, -1, withscores=True))
        for tag, raw in client.hgetall(channel.unacked_key).items():
            parsed = _batch_args(raw)
            if parsed is None or time.time() - delivered.get(tag, time.time()) < grace_s:
                continue
            _, job_id, batch = parsed
            if client.exists(keys.batch_heartbeat_key(job_id, batch)):
                continue
            if client.sismember(keys.job_finished_batches_key(job_id), batch):
                continue
            channel.qos.restore_by_tag(tag.decode() if isinstance(tag, bytes) else tag, client=client)
            requeued += 1
    return requeued
