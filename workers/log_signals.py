"""Worker logging: the redacting (and, with LOG_JSON, JSON) format on Celery's loggers, the job id per task."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun

from shared.jobs.tasks import REQUEST_KWARG
from shared.ops.log_setup import install, job_id_var
from shared.settings import get_settings

log = logging.getLogger("ragqueue.jobs")


@after_setup_logger.connect
@after_setup_task_logger.connect
def _format(logger: logging.Logger, **_: Any) -> None:
    install(logger, get_settings())


def logged_job_id(task_id: str, kwargs: dict[str, Any] | None) -> str:
    """The id a task's log lines carry: the `job_id` of its request (shared/jobs/tasks.py `TaskRequest`).

    Tasks are sent with their request as a keyword argument and, except a lone job's task, under a Celery id of
    their own (an index batch's is random). A message of several jobs (`QueryBatchTask`) has no one job id: its
    lines carry the batch's own task id (`batch-…`, api/query_dispatch.py), and each question's lines its job's.
    Tasks without a request (the reaper) carry their task id.
    """
    request = (kwargs or {}).get(REQUEST_KWARG)
    job_id = request.get("job_id") if isinstance(request, dict) else None
    return job_id if isinstance(job_id, str) else task_id


@task_prerun.connect
def _job_id(task_id: str, task: Any, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    job_id_var.set(logged_job_id(task_id, kwargs))
    log.info("%s started", task.name)


@task_postrun.connect
def _no_job_id(task: Any, state: str | None = None, **_: Any) -> None:
    log.info("%s ended: %s", task.name, state)
    job_id_var.set(None)
