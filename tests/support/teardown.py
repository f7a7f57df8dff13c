"""Session fixtures stop their stacks and servers side by side instead of one after another.

pytest tears session fixtures down one at a time after a test process's last test; stopping each stack's
workers, the fake upstream and PostgreSQL (its shutdown checkpoint) in turn took 6 to 14 s at the end of every
process, and the last process to finish sets the run's length. A fixture hands its stop to `stop_later`;
whatever the stops still need (the session's Redis) calls `wait_for_stops` before it goes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_pending: list[tuple[str, threading.Thread, list[BaseException]]] = []


def stop_later(name: str, stop: Callable[[], object]) -> None:
    """Run `stop` in its own thread now; `wait_for_stops` waits for it and raises what it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            stop()
        except BaseException as exc:  # noqa: BLE001 - handed to wait_for_stops
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"stop-{name}")
    thread.start()
    _pending.append((name, thread, errors))


def wait_for_stops(timeout_s: float = 60) -> None:
    """Wait for every stop handed over so far; raise the first error one of them raised."""
    failed: list[BaseException] = []
    while _pending:
        name, thread, errors = _pending.pop(0)
        thread.join(timeout_s)
        if thread.is_alive():
            failed.append(TimeoutError(f"stopping {name} took over {timeout_s} s"))
        failed.extend(errors)
    if failed:
        raise failed[0]
