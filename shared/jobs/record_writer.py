"""Worker side of job records in rag:job:{id}: state changes, progress, result and error."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from shared import keys
from shared.jobs.records import FINAL_STATES, JobError, JobState


class JobStore:
    """Writes one job's record; every change also announces itself on the job's progress channel."""

    def __init__(self, client: redis.Redis, job_id: str, ttl_s: int) -> None:
        self.client = client
        self.job_id = job_id
        self.ttl_s = ttl_s

    def _write(self, fields: dict[str, str]) -> None:
        fields["updated_at"] = str(time.time())
        key = keys.job_key(self.job_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping=cast(Any, fields))
        pipe.expire(key, self.ttl_s)
        pipe.publish(keys.progress_channel(self.job_id), json.dumps(fields))
        pipe.execute()

    def running(self, stage: str | None = None) -> None:
        self._write({"state": JobState.RUNNING.value, "stage": stage or ""})

    def progress(self, done: int, total: int, stage: str) -> None:
        self._write({"done": str(done), "total": str(total), "stage": stage})

    def finish(self, state: JobState, result: dict[str, Any] | None = None, error: JobError | None = None) -> None:
        if state not in FINAL_STATES:
            raise ValueError(f"{state} is not a final state")
        fields = {"state": state.value, "stage": ""}
        if result is not None:
            fields["result"] = json.dumps(result, ensure_ascii=False)
        if error is not None:
            fields["error"] = error.model_dump_json()
        self._write(fields)
        self.client.zrem(keys.open_queries_key(), self.job_id)  # frees its admission slot (api/admission.py)
