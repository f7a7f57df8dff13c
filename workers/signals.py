"""Worker process hooks: build models per child process, after the prefork."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from workers.runtime import warm_up


@worker_process_init.connect
def _warm_up_child(**_: Any) -> None:
    warm_up()
