"""`/metrics` in the Prometheus text format, the same on every API process: every figure is read from Redis.

Gauges are measured at scrape time (jobs by kind and state among the recent ones kept, questions open, queue
depth and consumers per queue, streams open); counters and histograms are what API processes and workers
added to Redis (shared/ops/metrics_store.py). prometheus-client formats them: a fresh registry per scrape holds
one collector over the snapshot, so nothing is kept in process memory and no multiprocess directory is needed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import cast

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from api.queue_workers import ConsumerProbe
from shared import keys
from shared.jobs.tasks import INDEX_QUEUE, QUERY_QUEUE
from shared.ops import metrics_store

QUEUES = (INDEX_QUEUE, QUERY_QUEUE)


@dataclass
class Snapshot:
    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)
    queries_open: int = 0
    depth: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, int] | None = None
    streams_open: int = 0
    samples: dict[str, float] = field(default_factory=dict)


async def take_snapshot(
    redis: aioredis.Redis, probe: ConsumerProbe, key_names: Mapping[str, str] | None = None
) -> Snapshot:
    """Every figure `/metrics` shows, read in a few Redis round trips (and the cached consumer ping); per-key
    samples by the key's name from `key_names` (key id -> name), those of keys no longer configured left out."""
    snap = Snapshot()
    job_ids = cast(list[str], await redis.zrange(keys.jobs_index_key(), 0, -1))
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job_key(job_id), ["kind", "state"])
        pipe.zcard(keys.open_queries_key())
        for queue in QUEUES:
            pipe.llen(queue)  # the Celery Redis transport keeps a queue's messages in a list named after it
        pipe.pubsub_channels(keys.stream_channel("*"))
        pipe.hgetall(keys.metric_counters_key())
        *rows, queries_open, index_depth, query_depth, channels, samples = await pipe.execute()
    snap.jobs.update((kind, state) for kind, state in rows if kind and state)
    snap.queries_open = int(queries_open)
    snap.depth = {INDEX_QUEUE: int(index_depth), QUERY_QUEUE: int(query_depth)}
    snap.streams_open = len(channels)
    snap.samples = _by_key_name(samples, key_names or {})
    by_queue = await probe.by_queue()
    if by_queue is not None:
        snap.consumers = {queue: len(by_queue.get(queue, [])) for queue in QUEUES}
    return snap


def _by_key_name(samples: dict[str, str], key_names: Mapping[str, str]) -> dict[str, float]:
    """Samples with a key's id in their labels shown under its name: a label set bounded by the keys file."""
    shown: dict[str, float] = {}
    for raw, value in samples.items():
        name, labels = metrics_store.parse_field(raw)
        if name == metrics_store.KEY_USAGE:
            if labels.get("key") not in key_names:
                continue
            raw = metrics_store.field(name, {**labels, "key": key_names[labels["key"]]})
        shown[raw] = shown.get(raw, 0.0) + float(value)
    return shown


def _gauge(name: str, doc: str, label: str | None = None, values: dict[str, float] | None = None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=[label] if label else None)
    for value_label, value in (values or {}).items():
        family.add_metric([value_label] if label else [], value)
    return family


class SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        snap = self.snap
        jobs = GaugeMetricFamily(
            "ragqueue_jobs",
            "Jobs by kind and state, among the most recent ones kept (up to 1000)",
            labels=["kind", "state"],
        )
        for (kind, state), n in sorted(snap.jobs.items()):
            jobs.add_metric([kind, state], n)
        yield jobs
        yield _gauge(
            "ragqueue_queries_open",
            "Questions queued or being answered (admission control counts these)",
            values={"": snap.queries_open},
        )
        yield _gauge("ragqueue_queue_depth", "Messages waiting in each Celery queue", "queue", dict(snap.depth))
        if snap.consumers is not None:
            yield _gauge("ragqueue_queue_consumers", "Workers consuming each queue", "queue", dict(snap.consumers))
        yield _gauge(
            "ragqueue_streams_open",
            "Query streams with at least one client listening, all API processes",
            values={"": snap.streams_open},
        )
        yield from self._shared()

    def _shared(self) -> Iterator[Metric]:
        by_family: dict[str, list[tuple[str, dict[str, str], float]]] = defaultdict(list)
        for raw, value in self.snap.samples.items():
            sample_name, labels = metrics_store.parse_field(raw)
            family = _family_of(sample_name)
            if family is not None:
                by_family[family].append((sample_name, labels, value))
        for name, (kind, doc) in metrics_store.FAMILIES.items():
            samples = by_family.get(name, [])
            if kind == "histogram":
                yield _histogram(name, doc, samples)
                continue
            label_names = sorted({k for _, labels, _ in samples for k in labels})
            counter = CounterMetricFamily(name, doc, labels=label_names or None)
            if not samples and not label_names:
                counter.add_metric([], 0)
            for _, labels, value in samples:
                counter.add_metric([labels.get(k, "") for k in label_names], value)
            yield counter


def _family_of(sample_name: str) -> str | None:
    for name, (kind, _) in metrics_store.FAMILIES.items():
        names = {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
        if sample_name in names:
            return name
    return None


def _histogram(name: str, doc: str, samples: list[tuple[str, dict[str, str], float]]) -> Metric:
    buckets = {labels["le"]: value for sample, labels, value in samples if sample == f"{name}_bucket"}
    total = next((value for sample, _, value in samples if sample == f"{name}_sum"), 0.0)
    bounds = [str(b) for b in metrics_store.LATENCY_BUCKETS] + ["+Inf"]
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], [(b, buckets.get(b, 0.0)) for b in bounds], sum_value=total)
    return family


def render(snap: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return generate_latest(registry)
