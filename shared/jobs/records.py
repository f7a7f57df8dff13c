"""Job records: states, the stored shape of rag:job:{id}, and parsing it back."""

from __future__ import annotations

import json
import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class JobKind(StrEnum):
    INDEX = "index"
    QUERY = "query"


class Progress(BaseModel):
    """`done`/`total`: chunks embedded of chunks planned so far (an index job's batches add to `total` as they
    split their files); `documents_done`/`documents_total`: documents finished of all the job's documents."""

    done: int = 0
    total: int = 0
    stage: str | None = None
    documents_done: int | None = None
    documents_total: int | None = None


class JobError(BaseModel):
    code: str
    message: str


class JobRecord(BaseModel):
    """What `GET /v1/jobs/{id}` returns."""

    id: str
    kind: JobKind
    state: JobState
    collection: str | None = None
    progress: Progress = Progress()
    files: int | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None
    created_at: float
    updated_at: float


def new_job_id() -> str:
    return uuid.uuid4().hex


def initial_fields(job_id: str, kind: JobKind, collection: str | None) -> dict[str, str]:
    """Hash fields written when a job is accepted, before it is dispatched."""
    now = str(time.time())
    return {
        "id": job_id,
        "kind": kind.value,
        "state": JobState.QUEUED.value,
        "collection": collection or "",
        "done": "0",
        "total": "0",
        "stage": "",
        "created_at": now,
        "updated_at": now,
    }


def parse_job(fields: dict[str, str]) -> JobRecord:
    """Rebuild a JobRecord from the Redis hash (decoded strings)."""
    return JobRecord(
        id=fields["id"],
        kind=JobKind(fields["kind"]),
        state=JobState(fields["state"]),
        collection=fields.get("collection") or None,
        progress=Progress(
            done=int(fields.get("done", 0)),
            total=int(fields.get("total", 0)),
            stage=fields.get("stage") or None,
            documents_done=int(fields["documents_done"]) if fields.get("documents_done") else None,
            documents_total=int(fields["files"]) if fields.get("files") else None,
        ),
        files=int(fields["files"]) if fields.get("files") else None,
        result=json.loads(fields["result"]) if fields.get("result") else None,
        error=JobError.model_validate_json(fields["error"]) if fields.get("error") else None,
        created_at=float(fields["created_at"]),
        updated_at=float(fields.get("updated_at", fields["created_at"])),
    )
