"""Sending query tasks: one Celery message per question when they come one at a time, one per burst otherwise.

A question goes out at once when nothing is being sent. Questions that arrive while a send is in flight wait
for it, then go out together as one `answer_queries` task of at most QUERY_BATCH_MAX requests
(shared/jobs/tasks.py, `QueryBatchTask`). No question waits for a timer: batches form only while the
broker is busy, which is exactly when one message per question would queue up behind the worker's Celery
consumer (docs/benchmarks.md).

A lone question keeps its job id as its Celery task id, so Flower shows it under that id. A batch gets an id
of its own: revoking one job's id (a cancel) must never revoke the other questions sent with it.
"""

from __future__ import annotations

import asyncio
import uuid

from celery import Celery
from starlette.concurrency import run_in_threadpool

from api.job_records import broker_unavailable
from shared.jobs.dispatch import send
from shared.jobs.tasks import QueryBatchTask, QueryTask, TaskMessage


class QueryDispatcher:
    """Per API process: queues questions while a send is in flight and sends them together."""

    def __init__(self, celery: Celery, max_batch: int) -> None:
        self.celery = celery
        self.max_batch = max_batch
        self._waiting: list[tuple[QueryTask, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def send(self, task: QueryTask) -> None:
        """Return once `task` is on the broker; ApiError 503 `broker_unavailable` when it could not be sent."""
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((task, sent))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_waiting())
        await sent

    async def _send_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            tasks = [task for task, _ in batch]
            message: TaskMessage = tasks[0] if len(tasks) == 1 else QueryBatchTask(requests=tasks)
            task_id = tasks[0].job_id if len(tasks) == 1 else f"batch-{uuid.uuid4().hex}"
            try:
                await run_in_threadpool(send, self.celery, message, task_id)
            except Exception as exc:  # broker unreachable: these jobs cannot run
                for _, sent in batch:
                    if not sent.done():  # its request may have gone (client disconnect)
                        sent.set_exception(broker_unavailable(exc))
                continue
            for _, sent in batch:
                if not sent.done():
                    sent.set_result(None)
