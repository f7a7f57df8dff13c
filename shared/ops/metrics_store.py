"""Counters and histograms every process adds to in Redis, so `/metrics` on any API process shows them all.

Why Redis and not prometheus-client's multiprocess mode: the figures come from API processes and from Celery
workers on other machines, and Redis is the one thing they all share. Each sample is a field of one hash,
`name|label=value,...`; a histogram's buckets are kept cumulative (`name_bucket|le=...`), as Prometheus
exposes them. api/metrics.py turns the hash into prometheus-client metric families at scrape time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import redis
import redis.asyncio as aioredis

from shared import keys
from shared.streams.events import DonePayload
from shared.usage import UsageField

# Seconds; an answer's first token usually comes within a second or two, the whole answer within a minute.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)

FIRST_TOKEN = "ragqueue_answer_first_token_seconds"
ANSWER_TOTAL = "ragqueue_answer_total_seconds"
TOKENS = "ragqueue_answer_tokens_total"
ANSWERS = "ragqueue_answers_total"
INDEX_CHUNKS = "ragqueue_index_chunks_total"
REJECTIONS = "ragqueue_admission_rejections_total"
KEY_USAGE = "ragqueue_key_usage_total"

# Every family kept here: (type, help). api/metrics.py exposes each, at zero before its first sample.
FAMILIES: dict[str, tuple[str, str]] = {
    FIRST_TOKEN: ("histogram", "Seconds from a query task's start to the answer's first token (the done event)"),
    ANSWER_TOTAL: ("histogram", "Seconds from a query task's start to the answer's end (the done event)"),
    TOKENS: ("counter", "Answer pieces streamed by query workers, counted from each done event"),
    ANSWERS: ("counter", "Answers finished with a done event"),
    INDEX_CHUNKS: ("counter", "Chunks embedded and stored by index workers"),
    REJECTIONS: ("counter", "New questions refused at the door, by reason (too_many_queries, no_query_workers...)"),
    KEY_USAGE: ("counter", "Each API key's use (shared/usage.py fields: questions, prompt_tokens...), by key name"),
}


def field(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The hash field of one sample: its name, then its labels sorted by name."""
    return f"{name}|" + ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def parse_field(raw: str) -> tuple[str, dict[str, str]]:
    name, _, rest = raw.partition("|")
    labels = dict(pair.split("=", 1) for pair in rest.split(",") if pair)
    return name, labels


async def count(client: aioredis.Redis, name: str, labels: Mapping[str, str] | None = None, by: int = 1) -> None:
    await client.hincrby(keys.metric_counters_key(), field(name, labels), by)  # type: ignore[misc]


def key_usage_field(key_id: str, usage_field: str) -> str:
    """A key's usage sample, stored by key id; `/metrics` shows it by the key's name (api/metrics.py)."""
    return field(KEY_USAGE, {"key": key_id, "field": usage_field})


def count_key_usage(client: redis.Redis, key_id: str, counts: Mapping[UsageField, int]) -> None:
    """Add a key's use to its `/metrics` counters (nothing for no key: keys off)."""
    if not key_id:
        return
    pipe = client.pipeline(transaction=False)
    for usage_field, by in counts.items():
        if by:
            pipe.hincrby(keys.metric_counters_key(), key_usage_field(key_id, usage_field), by)
    pipe.execute()


async def count_key_usage_async(client: aioredis.Redis, key_id: str, counts: Mapping[UsageField, int]) -> None:
    """`count_key_usage` from the API."""
    for usage_field, by in counts.items():
        if key_id and by:
            await client.hincrby(keys.metric_counters_key(), key_usage_field(key_id, usage_field), by)  # type: ignore[misc]


def _histogram_fields(name: str, value: float) -> dict[str, float]:
    fields = {field(f"{name}_bucket", {"le": str(b)}): 1.0 for b in LATENCY_BUCKETS if value <= b}
    fields[field(f"{name}_bucket", {"le": "+Inf"})] = 1.0
    fields[field(f"{name}_sum")] = value
    fields[field(f"{name}_count")] = 1.0
    return fields


def record_answer(client: redis.Redis, summary: DonePayload) -> None:
    """One finished answer, from the `done` event's summary: time to first token, total time, tokens."""
    updates: dict[str, float] = {}
    for name, value in ((FIRST_TOKEN, summary.timings_ms.first_token), (ANSWER_TOTAL, summary.timings_ms.total)):
        if math.isfinite(value):
            updates.update(_histogram_fields(name, value / 1000))
    updates[field(TOKENS)] = float(summary.tokens)
    updates[field(ANSWERS)] = 1.0
    pipe = client.pipeline(transaction=False)
    for name, by in updates.items():
        pipe.hincrbyfloat(keys.metric_counters_key(), name, by)
    pipe.execute()
