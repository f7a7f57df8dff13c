"""The API's cached answer to "which workers consume each queue" (api/queue_workers.py): a complete answer is kept
for WORKER_PING_CACHE_S, one missing a required queue for about a second, so a worker that has just started is
seen at once by /readyz and admission instead of after a whole cache period."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from api import queue_workers
from api.queue_workers import MISSING_RECHECK_S, ConsumerProbe

WORKER = "w@host"
NOBODY: dict[str, list[dict[str, str]]] = {}
EVERY_QUEUE = {WORKER: [{"name": "index"}, {"name": "query"}]}
INDEX_ONLY = {WORKER: [{"name": "index"}]}


class Broker:
    """Celery's `control.inspect(timeout).active_queues()`, answering from a list and counting broadcasts."""

    def __init__(self, replies: list[dict[str, list[dict[str, str]]]]) -> None:
        self.replies, self.broadcasts = replies, 0
        self.control = SimpleNamespace(inspect=lambda timeout: SimpleNamespace(active_queues=self._answer))

    def _answer(self) -> dict[str, list[dict[str, str]]]:
        self.broadcasts += 1
        return self.replies[min(self.broadcasts, len(self.replies)) - 1]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(queue_workers, "time", fake)
    return fake


async def _settled(probe: ConsumerProbe) -> Any:
    """The probe's answer once any background refresh it started has finished."""
    answer = await probe.by_queue()
    if probe._refreshing is not None:
        await probe._refreshing
    return answer


def _answers(probe: ConsumerProbe, clock: Clock, steps: list[float]) -> list[Any]:
    async def run() -> list[Any]:
        seen = []
        for step in steps:
            clock.now += step
            seen.append(await _settled(probe))
        return seen

    return asyncio.run(run())


@pytest.mark.parametrize("missing", [NOBODY, INDEX_ONLY], ids=["no worker", "no query worker"])
def test_an_answer_missing_a_queue_is_asked_again_after_about_a_second(clock: Clock, missing: Any) -> None:
    broker = Broker([missing, EVERY_QUEUE])
    probe = ConsumerProbe(broker, timeout_s=1.0, cache_s=30.0)  # type: ignore[arg-type]
    first, too_soon, stale, fresh = _answers(probe, clock, [0, MISSING_RECHECK_S / 2, MISSING_RECHECK_S, 0])
    assert first == too_soon == stale == queue_workers.workers_by_queue(Broker([missing]), 1.0)  # type: ignore[arg-type]
    assert fresh == {"index": [WORKER], "query": [WORKER]}
    assert broker.broadcasts == 2


def test_a_complete_answer_is_kept_for_the_whole_cache_period(clock: Clock) -> None:
    broker = Broker([EVERY_QUEUE, NOBODY])
    probe = ConsumerProbe(broker, timeout_s=1.0, cache_s=30.0)  # type: ignore[arg-type]
    answers = _answers(probe, clock, [0, MISSING_RECHECK_S * 2, 20])
    assert answers == [{"index": [WORKER], "query": [WORKER]}] * 3
    assert broker.broadcasts == 1
    assert _answers(probe, clock, [10, 0])[-1] == {}  # past the cache period: asked again, and now nobody
