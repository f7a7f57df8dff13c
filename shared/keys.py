"""Every Redis key and channel name ragqueue uses, defined once."""

from __future__ import annotations

PREFIX = "rag"


def job_key(job_id: str) -> str:
    """Hash holding a job's state, progress, result and error."""
    return f"{PREFIX}:job:{job_id}"


def jobs_index_key() -> str:
    """Sorted set of recent job ids scored by creation time, for `GET /v1/jobs` (trimmed as it grows)."""
    return f"{PREFIX}:jobs"


def stream_channel(job_id: str) -> str:
    """Pub/sub channel carrying a query job's events live."""
    return f"{PREFIX}:stream:{job_id}"


def replay_key(job_id: str) -> str:
    """Redis Stream keeping a query job's events for late subscribers and Last-Event-ID."""
    return f"{PREFIX}:replay:{job_id}"


def progress_channel(job_id: str) -> str:
    """Pub/sub channel announcing an index job's progress changes."""
    return f"{PREFIX}:progress:{job_id}"


def cancel_key(job_id: str) -> str:
    """Flag a worker checks between chunks; set by a cancel request."""
    return f"{PREFIX}:cancel:{job_id}"


def heartbeat_key(job_id: str) -> str:
    """Expiring key a worker refreshes while it runs the job; its absence means the worker is gone."""
    return f"{PREFIX}:heartbeat:{job_id}"


def batch_heartbeat_key(job_id: str, batch: int) -> str:
    """Expiring key the worker indexing one batch of an index job refreshes; the reaper requeues it when gone."""
    return f"{heartbeat_key(job_id)}:{batch}"


def job_batches_key(job_id: str) -> str:
    """Hash of an index job's per-batch progress: `{n}:planned` and `{n}:done` chunk counts."""
    return f"{PREFIX}:job:{job_id}:batches"


def job_finished_batches_key(job_id: str) -> str:
    """Set of an index job's batch numbers that have finished."""
    return f"{PREFIX}:job:{job_id}:finished"


def job_documents_key(job_id: str) -> str:
    """Hash of an index job's per-document status: document name -> JSON {doc_id, status, chunks, error}."""
    return f"{PREFIX}:job:{job_id}:documents"


def hub_channel() -> str:
    """A channel the API's shared pub/sub connection always listens to, so it is never without one."""
    return f"{PREFIX}:hub"


def idempotency_key(scope: str, key: str) -> str:
    """A client's Idempotency-Key on one route (`scope`): the request's fingerprint, then the job it created."""
    return f"{PREFIX}:idempotency:{scope}:{key}"


def open_queries_key() -> str:
    """Sorted set of query jobs queued or running (job id scored by creation time), for admission control."""
    return f"{PREFIX}:queries:open"


def reaper_lock_key() -> str:
    """Lock held by the one reaper run at a time, however many beat processes or replicas run it."""
    return f"{PREFIX}:reaper:lock"


def uploads_sweep_key() -> str:
    """Set (with UPLOAD_GC_INTERVAL_S to live) by the reaper run that sweeps unreferenced uploads."""
    return f"{PREFIX}:reaper:uploads-swept"


def metric_counters_key() -> str:
    """Hash of counters shared by every process (`name|label=value,...` -> count), read by `/metrics`."""
    return f"{PREFIX}:metrics:counters"


def usage_key(key_id: str, day: str) -> str:
    """Hash of one API key's use on one UTC day (`20261202`): shared/usage.py `UsageField` -> count."""
    return f"{PREFIX}:usage:{key_id}:{day}"


def rate_window_key(key_id: str, minute: int) -> str:
    """Counter of one API key's requests in one minute (unix time // 60), for `requests_per_minute`."""
    return f"{PREFIX}:limit:rate:{key_id}:{minute}"


def key_streams_key(key_id: str) -> str:
    """Sorted set of one API key's open answer streams (job id scored by expiry), for `max_streams`."""
    return f"{PREFIX}:limit:streams:{key_id}"


def feedback_key(job_id: str) -> str:
    """Hash of the feedback on one query job's answer (rating, comment, when, by which key)."""
    return f"{PREFIX}:feedback:{job_id}"


def feedback_index_key(collection: str) -> str:
    """Sorted set of the query jobs with feedback in one collection, scored by when it was given."""
    return f"{PREFIX}:feedback:collection:{collection}"
