"""The `maintenance` queue's task: the periodic reaper (workers/reaper.py), sent by `celery beat`."""

from __future__ import annotations

import logging
from dataclasses import asdict

from shared.settings import get_settings
from shared.tasks import REAP_TASK
from workers.celery_app import app
from workers.reaper import run_reaper

log = logging.getLogger(__name__)


@app.task(name=REAP_TASK)
def reap() -> dict[str, int | bool]:
    """End dead and timed-out query jobs; every worker consumes `maintenance`, so any live one runs it."""
    report = run_reaper(get_settings())
    if report.worker_lost or report.queue_timeout:
        log.info(
            "reaper ended %d worker_lost and %d queue_timeout query jobs", report.worker_lost, report.queue_timeout
        )
    return asdict(report)
