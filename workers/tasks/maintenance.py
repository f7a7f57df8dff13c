"""The `maintenance` queue's task: the periodic reaper (workers/reaper.py), sent by `celery beat`."""

from __future__ import annotations

import logging
from dataclasses import asdict

from shared.jobs.tasks import REAP_TASK
from shared.settings import get_settings
from workers.celery_app import app
from workers.reaper import run_reaper

log = logging.getLogger(__name__)


@app.task(name=REAP_TASK)
def reap() -> dict[str, int | bool]:
    """End dead and timed-out query jobs, requeue orphaned index batches; any live worker runs it."""
    report = run_reaper(get_settings(), app)
    if report.worker_lost or report.queue_timeout or report.requeued_batches:
        log.info(
            "reaper ended %d worker_lost and %d queue_timeout query jobs, requeued %d index batches",
            report.worker_lost,
            report.queue_timeout,
            report.requeued_batches,
        )
    return asdict(report)
