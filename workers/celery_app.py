"""The Celery app (`workers.celery_app:app`): the shared producer's configuration plus the worker's task modules.

Importing this module is cheap and has no side effects beyond building the app object; models and
clients are created per worker process (workers/runtime.py), after the prefork.
"""

from __future__ import annotations

from shared.jobs.dispatch import create_celery
from shared.settings import get_settings

TASK_MODULES = (
    "workers.signals",
    "workers.log_signals",
    "workers.tasks.index",
    "workers.tasks.evaluation",
    "workers.tasks.query",
    "workers.tasks.maintenance",
)

app = create_celery(get_settings(), include=TASK_MODULES)
