"""Worker process hooks: build models where tasks run, so the first task does not pay for them.

Prefork: in each child after the fork (`worker_process_init`); the local embedding engine starts OpenMP,
which is not fork-safe, so never in the parent. Threads or solo: tasks run in the worker's own process,
which never forks, so at start-up (`worker_init`).
"""

from __future__ import annotations

from typing import Any

from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_init, worker_process_init

from workers.runtime import warm_up


@worker_process_init.connect
def _warm_up_child(**_: Any) -> None:
    warm_up()


@worker_init.connect
def _warm_up_unforked_worker(sender: Any = None, **_: Any) -> None:
    pool = getattr(sender, "pool_cls", None)
    if isinstance(pool, type) and not issubclass(pool, PreforkPool):
        warm_up()
