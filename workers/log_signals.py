"""Worker logging: the redacting (and, with LOG_JSON, JSON) format on Celery's loggers, the job id per task."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun

from shared.jobs.tasks import INDEX_BATCH_TASK
from shared.ops.log_setup import install, job_id_var
from shared.settings import get_settings

log = logging.getLogger("ragqueue.jobs")


@after_setup_logger.connect
@after_setup_task_logger.connect
def _format(logger: logging.Logger, **_: Any) -> None:
    install(logger, get_settings())


@task_prerun.connect
def _job_id(task_id: str, task: Any, args: tuple[Any, ...] = (), **_: Any) -> None:
    # A task's id is its job's id (api/job_records.py), except an index batch's, whose job id is its first argument.
    job_id_var.set(str(args[0]) if task.name == INDEX_BATCH_TASK and args else task_id)
    log.info("%s started", task.name)


@task_postrun.connect
def _no_job_id(task: Any, state: str | None = None, **_: Any) -> None:
    log.info("%s ended: %s", task.name, state)
    job_id_var.set(None)
