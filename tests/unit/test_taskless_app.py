"""Beat and Flower start from `workers.taskless_app`: the workers' Celery configuration without the task modules."""

from __future__ import annotations

from tests.unit.test_lazy_formats import modules_after
from workers.celery_app import app as worker_app
from workers.taskless_app import app as taskless_app


def test_the_taskless_app_loads_no_task_module_and_no_llamaindex() -> None:
    # What beat does at start (Flower does less): import the app's `include` modules.
    loaded = modules_after("from workers.taskless_app import app\napp.loader.import_default_modules()")
    assert not [name for name in loaded if name.startswith(("llama_index", "workers.tasks", "workers.runtime"))]


def test_it_routes_schedules_and_reaches_the_broker_as_the_workers_app() -> None:
    for key in ("task_queues", "task_routes", "beat_schedule", "broker_url", "broker_transport", "task_serializer"):
        assert taskless_app.conf[key] == worker_app.conf[key], key
    assert list(taskless_app.conf.include) == ["workers.log_signals"]  # the workers' log format, nothing else
