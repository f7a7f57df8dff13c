"""The `maintenance` queue's task: the periodic reaper (workers/reaper.py), sent by `celery beat`."""

from __future__ import annotations

import logging
from dataclasses import asdict

from shared.jobs.tasks import REAP_TASK
from shared.settings import get_settings
from workers.celery_app import app
from workers.reaper import run_reaper, sweep_uploads_if_due
from workers.runtime import get_runtime

log = logging.getLogger(__name__)


@app.task(name=REAP_TASK)
def reap() -> dict[str, int | bool]:
    """End dead and timed-out query jobs, requeue orphaned index batches, sweep unreferenced uploads (when due)."""
    settings = get_settings()
    report = run_reaper(settings, app)
    rt = get_runtime()
    uploads = sweep_uploads_if_due(rt.redis, rt.stores, settings)
    if uploads:
        log.info("reaper deleted %d uploads no document refers to", uploads)
    if report.worker_lost or report.queue_timeout or report.requeued_batches:
        log.info(
            "reaper ended %d worker_lost and %d queue_timeout query jobs, requeued %d index batches",
            report.worker_lost,
            report.queue_timeout,
            report.requeued_batches,
        )
    return {**asdict(report), "uploads_deleted": uploads}
