"""Requeue index batches whose worker died: the reaper's half for index jobs (workers/reaper.py runs it).

A prefork child that dies has its batch redelivered by its parent at once; a whole worker process that dies
(SIGKILL, OOM, host lost) leaves the batch in the broker's unacked set until the visibility timeout, above
the task time limit (about half an hour). A running batch refreshes `rag:heartbeat:{job}:{batch}`; a batch
message delivered more than twice HEARTBEAT_TTL_S ago, still unacked, unfinished and without a heartbeat
is put back on its queue with kombu's own `restore_by_tag`, and another index worker takes it; so is a finished
one when every batch of its job is finished and the job is still open (its worker died finalising it). The batch
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
from shared.jobs.records import JobField, JobState
from shared.jobs.tasks import INDEX_BATCH_TASK, REQUEST_KWARG, IndexBatchTask
from shared.settings import Settings


def _batch_args(raw: bytes) -> tuple[Any, str, int, int] | None:
    """(delivery payload, job id, batch number, the job's batches) of an unacked index-batch message, else None."""
    payload, _exchange, _routing_key = json.loads(raw)
    headers = payload.get("headers") or {}
    if headers.get("task") != INDEX_BATCH_TASK:
        return None
    body = payload["body"]
    if payload.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    _args, kwargs, _embed = json.loads(body)
    task = IndexBatchTask.model_validate(kwargs[REQUEST_KWARG])
    return payload, task.job_id, task.batch, task.batches


def _finaliser_died(client: Any, job_id: str, batches: int) -> bool:
    """Every batch of the job is finished and the job is still open: the worker that was finalising it died, and
    its last batch, delivered again, finalises it (shared/jobs/index_progress.py)."""
    if client.scard(keys.job_finished_batches_key(job_id)) != batches:
        return False
    state = client.hget(keys.job_key(job_id), JobField.STATE)
    state = state.decode() if isinstance(state, bytes) else state
    return state in (JobState.QUEUED.value, JobState.RUNNING.value)


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
            _, job_id, batch, batches = parsed
            if client.exists(keys.batch_heartbeat_key(job_id, batch)):
                continue
            if client.sismember(keys.job_finished_batches_key(job_id), batch) and not _finaliser_died(
                client, job_id, batches
            ):
                continue
            channel.qos.restore_by_tag(tag.decode() if isinstance(tag, bytes) else tag, client=client)
            requeued += 1
    return requeued
