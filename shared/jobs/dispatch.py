"""The Celery producer: the app's broker and queue configuration, and sending a typed task request.

Both sides build their Celery app here: the API only sends (it imports nothing from workers/), the workers
add their task modules with `include`. Building the app has no side effect; no connection is made until a
task is sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from kombu import Exchange, Queue

from shared.jobs import broker_transport
from shared.jobs.tasks import (
    EVALUATION_TASK,
    INDEX_BATCH_TASK,
    INDEX_QUEUE,
    INDEX_TASK,
    MAINTENANCE_QUEUE,
    QUERY_BATCH_TASK,
    QUERY_QUEUE,
    QUERY_TASK,
    REAP_TASK,
    REQUEST_KWARG,
    TaskMessage,
)
from shared.settings import Settings


def create_celery(settings: Settings, include: Sequence[str] = ()) -> Celery:
    """The ragqueue Celery app on `settings.REDIS_URL`; `include` names the task modules a worker loads."""
    celery = Celery("ragqueue", broker=settings.REDIS_URL, include=list(include))
    celery.conf.update(
        # Each queue gets its own exchange and routing key: with a shared default exchange, a message for one
        # queue would be delivered to both.
        task_queues=[Queue(q, Exchange(q), routing_key=q) for q in (INDEX_QUEUE, QUERY_QUEUE, MAINTENANCE_QUEUE)],
        task_default_queue=QUERY_QUEUE,
        task_routes={
            INDEX_TASK: {"queue": INDEX_QUEUE},
            INDEX_BATCH_TASK: {"queue": INDEX_QUEUE},
            QUERY_TASK: {"queue": QUERY_QUEUE},
            QUERY_BATCH_TASK: {"queue": QUERY_QUEUE},
            REAP_TASK: {"queue": MAINTENANCE_QUEUE},
            EVALUATION_TASK: {"queue": INDEX_QUEUE},
        },
        # `celery beat` sends the reaper this often; a message no worker took within one interval is dropped.
        beat_schedule={
            "reap": {
                "task": REAP_TASK,
                "schedule": settings.REAPER_INTERVAL_S,
                "options": {"expires": settings.REAPER_INTERVAL_S},
            }
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # job state lives in rag:job:{id}, not in a Celery result backend
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.TASK_SOFT_TIME_LIMIT_S,
        task_time_limit=settings.TASK_TIME_LIMIT_S,
        # Above the hard time limit, or a long task is delivered a second time while still running.
        broker_transport_options={"visibility_timeout": settings.TASK_TIME_LIMIT_S + 600},
        broker_connection_retry_on_startup=True,
        # kombu's Redis transport with a fix that lets a worker reconnect after Redis restarts mid-task.
        broker_transport=broker_transport.TRANSPORT if settings.REDIS_URL.startswith("redis://") else None,
        worker_send_task_events=True,  # Flower
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    return celery


def send(celery: Celery, request: TaskMessage, task_id: str | None = None) -> None:
    """Send `request` to its task on its queue (blocking: call it from a thread in async code)."""
    celery.send_task(
        request.TASK,
        kwargs={REQUEST_KWARG: request.model_dump(mode="json", exclude_none=True)},
        queue=request.QUEUE,
        task_id=task_id,
    )
