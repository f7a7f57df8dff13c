"""The Celery app for beat and Flower (`workers.taskless_app:app`): `workers.celery_app`'s configuration and log
format, without its task modules.

Beat sends the reaper by name and Flower watches events: neither runs a task. Loading the task modules (LlamaIndex,
the providers, the stores) made each of them start with about 2.5 s more CPU and hold LlamaIndex in memory for
nothing.
"""

from __future__ import annotations

from shared.jobs.dispatch import create_celery
from shared.settings import get_settings

app = create_celery(get_settings(), include=("workers.log_signals",))
