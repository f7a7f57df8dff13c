"""The Celery app (`workers.celery_app:app`): broker config and the `index` / `query` queues.

Importing this module is cheap and has no side effects beyond building the app object; models and
clients are created per worker process (workers/runtime.py), after the prefork.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from shared.jobs.tasks import (
    INDEX_BATCH_TASK,
    INDEX_QUEUE,
    INDEX_TASK,
    MAINTENANCE_QUEUE,
    QUERY_QUEUE,
    QUERY_TASK,
    REAP_TASK,
)
from shared.settings import get_settings


def create_app() -> Celery:
    settings = get_settings()
    celery = Celery(
        "ragqueue",
        broker=settings.REDIS_URL,
        include=[
            "workers.signals",
            "workers.log_signals",
            "workers.tasks.index",
            "workers.tasks.query",
            "workers.tasks.maintenance",
        ],
    )
    celery.conf.update(
        # Each queue gets its own exchange and routing key: with a shared default exchange, a message for one
        # queue would be delivered to both.
        task_queues=[Queue(q, Exchange(q), routing_key=q) for q in (INDEX_QUEUE, QUERY_QUEUE, MAINTENANCE_QUEUE)],
        task_default_queue=QUERY_QUEUE,
        task_routes={
            INDEX_TASK: {"queue": INDEX_QUEUE},
            INDEX_BATCH_TASK: {"queue": INDEX_QUEUE},
            QUERY_TASK: {"queue": QUERY_QUEUE},
            REAP_TASK: {"queue": MAINTENANCE_QUEUE},
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
        worker_send_task_events=True,  # Flower
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    return celery


app = create_app()
