"""What only a worker knows of a key's use (shared/usage.py): LLM tokens, embedded texts and chunks, documents.

Counted for the job's owner (its record's `owner`, the key id that created it) on the UTC day the worker's clock
says; a job created with keys off has no owner and counts for nobody.
"""

from __future__ import annotations

import time

import redis

from shared import keys
from shared.jobs.records import JobField
from shared.ops.metrics_store import count_key_usage
from shared.usage import TokenUsage, UsageField, add_usage


def job_owner(client: redis.Redis, job_id: str) -> str:
    return str(client.hget(keys.job_key(job_id), JobField.OWNER) or "")


def record_usage(client: redis.Redis, job_id: str, counts: dict[UsageField, int]) -> None:
    """A job's counts, for its record's owner."""
    count_usage(client, job_owner(client, job_id), counts)


def count_usage(client: redis.Redis, owner: str, counts: dict[UsageField, int]) -> None:
    add_usage(client, owner, time.time(), counts)
    count_key_usage(client, owner, counts)


def record_query_usage(client: redis.Redis, owner: str, usage: TokenUsage, *, embedded_texts: int) -> None:
    """An answered question's tokens (0 from the extractive answerer, which calls no LLM) and its embedding, for
    `owner` (the query task's): no Redis call at all with keys off."""
    count_usage(client, owner, {**usage.fields(), UsageField.EMBEDDED_TEXTS: embedded_texts})
