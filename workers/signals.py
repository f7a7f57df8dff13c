"""Worker process hooks: build models where tasks run, so the first task does not pay for them.

Prefork: in each child after the fork (`worker_process_init`); the local embedding engine starts OpenMP,
which is not fork-safe, so never in the parent. Threads or solo: tasks run in the worker's own process,
which never forks, so at start-up (`worker_init`).
"""

from __future__ import annotations

import sys
from typing import Any

from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_init, worker_process_init, worker_shutdown

from shared.jobs.tasks import INDEX_QUEUE
from shared.settings import get_settings
from shared.store import StoreUnavailableError
from shared.store.factory import check_store
from workers.runtime import get_runtime, warm_up


@worker_init.connect
def _check_store(**_: Any) -> None:
    """Refuse to start, in the main process and before any fork, when the store cannot be reached."""
    try:
        check_store(get_settings())
    except StoreUnavailableError as exc:
        print(f"ragqueue worker: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None  # SystemExit passes through Celery's signal dispatch; Exception would not


@worker_process_init.connect
def _warm_up_child(**_: Any) -> None:
    warm_up(indexes=_consumes_index_queue())


@worker_init.connect
def _warm_up_unforked_worker(sender: Any = None, **_: Any) -> None:
    pool = getattr(sender, "pool_cls", None)
    if isinstance(pool, type) and not issubclass(pool, PreforkPool):
        warm_up(indexes=_consumes_index_queue())


def _consumes_index_queue() -> bool:
    """Whether this worker takes index work (its -Q, selected before either signal): only such a worker reads
    and splits documents, so only it loads what that needs."""
    from workers.celery_app import app

    return INDEX_QUEUE in app.amqp.queues.consume_from


@worker_shutdown.connect
def _finish_loop_answers(**_: Any) -> None:
    """A warm shutdown lets the answers on the event loop finish, as Celery does its tasks."""
    get_runtime().drain_answers(get_settings().UPSTREAM_TIMEOUT_S)
