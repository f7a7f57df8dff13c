"""Worker side of job records in rag:job:{id}: state changes, progress, and an index job's ending.

A query job's ending is written with its terminal event, in one step, by shared/streams/endings.py.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from shared import keys
from shared.evaluation.result import EvaluationResult
from shared.jobs.index_result import IndexResult
from shared.jobs.records import JobError, JobField, JobStage, JobState, final_fields


class JobRecordWriter:
    """Writes one job's record; every change also announces itself on the job's progress channel."""

    def __init__(self, client: redis.Redis, job_id: str, ttl_s: int) -> None:
        self.client = client
        self.job_id = job_id
        self.ttl_s = ttl_s

    def _write(self, fields: dict[str, str]) -> None:
        fields[JobField.UPDATED_AT] = str(time.time())
        key = keys.job_key(self.job_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping=cast(Any, fields))
        pipe.expire(key, self.ttl_s)
        pipe.publish(keys.progress_channel(self.job_id), json.dumps(fields))
        pipe.execute()

    def running(self, stage: JobStage | None = None) -> None:
        self._write({JobField.STATE: JobState.RUNNING.value, JobField.STAGE: stage or ""})

    def progress(self, done: int, total: int, stage: JobStage) -> None:
        self._write({JobField.DONE: str(done), JobField.TOTAL: str(total), JobField.STAGE: stage})

    def finish(
        self, state: JobState, result: IndexResult | EvaluationResult | None = None, error: JobError | None = None
    ) -> None:
        """End an index or evaluation job (a query job ends through shared/streams/endings.py)."""
        self._write(final_fields(state, result, error))
