"""Job records: states, the stored shape of rag:job:{id}, and parsing it back."""

from __future__ import annotations

import re
import time
import uuid
from enum import StrEnum

from pydantic import BaseModel

from shared.evaluation.result import EvaluationResult
from shared.jobs.index_result import IndexResult
from shared.streams.events import DonePayload


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class JobStage(StrEnum):
    """What a running job is doing: its record's `stage`."""

    # index jobs
    PLANNING = "planning"
    LOADING = "loading"
    EMBEDDING = "embedding"
    STORING = "storing"
    # PostgreSQL: a collection's first load is stored without its HNSW and GIN indexes, built at its end
    BUILDING_SEARCH_INDEXES = "building_search_indexes"
    # query jobs
    RETRIEVING = "retrieving"
    GENERATING = "generating"
    # evaluation jobs
    EVALUATING = "evaluating"


class JobKind(StrEnum):
    INDEX = "index"
    QUERY = "query"
    EVALUATION = "evaluation"  # retrieval quality of a collection on an evaluation set, on the index queue


class JobField(StrEnum):
    """Fields of the job hash rag:job:{id}. The Lua scripts in shared/jobs/index_progress.py and
    shared/streams/replay_log.py spell the ones they write the same way."""

    ID = "id"
    KIND = "kind"
    STATE = "state"
    COLLECTION = "collection"
    DONE = "done"
    TOTAL = "total"
    STAGE = "stage"
    FILES = "files"
    BATCHES = "batches"
    DOCUMENTS_DONE = "documents_done"
    RESULT = "result"
    ERROR = "error"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    OWNER = "owner"  # the key id that created it, "" with keys off (api/auth.py); never returned


class Progress(BaseModel):
    """`done`/`total`: chunks embedded of chunks planned so far (an index job's batches add to `total` as they
    split their files); `documents_done`/`documents_total`: documents finished of all the job's documents."""

    done: int = 0
    total: int = 0
    stage: JobStage | None = None
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
    # By `kind`: an index job's IndexResult, a query's `done` event's data, an evaluation's EvaluationResult.
    result: IndexResult | DonePayload | EvaluationResult | None = None
    error: JobError | None = None
    created_at: float
    updated_at: float


# Every job id is `new_job_id`'s form; the API checks ids against it before they reach a Redis key name.
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
_JOB_ID = re.compile(JOB_ID_PATTERN.strip("^$"))


def new_job_id() -> str:
    return uuid.uuid4().hex


def valid_job_id(job_id: str) -> bool:
    return _JOB_ID.fullmatch(job_id) is not None


def initial_fields(job_id: str, kind: JobKind, collection: str | None, owner: str = "") -> dict[str, str]:
    """Hash fields written when a job is accepted, before it is dispatched; `owner` is the caller's key id."""
    now = str(time.time())
    return {
        JobField.ID: job_id,
        JobField.KIND: kind.value,
        JobField.STATE: JobState.QUEUED.value,
        JobField.COLLECTION: collection or "",
        JobField.DONE: "0",
        JobField.TOTAL: "0",
        JobField.STAGE: "",
        JobField.CREATED_AT: now,
        JobField.UPDATED_AT: now,
        JobField.OWNER: owner,
    }


JobResult = IndexResult | DonePayload | EvaluationResult


def final_fields(state: JobState, result: JobResult | None, error: JobError | None) -> dict[str, str]:
    """Hash fields written when a job ends (by shared/jobs/record_writer.py or shared/streams/endings.py)."""
    if state not in FINAL_STATES:
        raise ValueError(f"{state} is not a final state")
    fields = {JobField.STATE.value: state.value, JobField.STAGE.value: "", JobField.UPDATED_AT.value: str(time.time())}
    if result is not None:
        fields[JobField.RESULT] = result.model_dump_json()
    if error is not None:
        fields[JobField.ERROR] = error.model_dump_json()
    return fields


def parse_job(fields: dict[str, str]) -> JobRecord:
    """Rebuild a JobRecord from the Redis hash (decoded strings)."""
    f = JobField
    kind = JobKind(fields[f.KIND])
    return JobRecord(
        id=fields[f.ID],
        kind=kind,
        state=JobState(fields[f.STATE]),
        collection=fields.get(f.COLLECTION) or None,
        progress=Progress(
            done=int(fields.get(f.DONE, 0)),
            total=int(fields.get(f.TOTAL, 0)),
            stage=JobStage(fields[f.STAGE]) if fields.get(f.STAGE) else None,
            documents_done=int(fields[f.DOCUMENTS_DONE]) if fields.get(f.DOCUMENTS_DONE) else None,
            documents_total=int(fields[f.FILES]) if fields.get(f.FILES) else None,
        ),
        files=int(fields[f.FILES]) if fields.get(f.FILES) else None,
        result=_result(kind, fields[f.RESULT]) if fields.get(f.RESULT) else None,
        error=JobError.model_validate_json(fields[f.ERROR]) if fields.get(f.ERROR) else None,
        created_at=float(fields[f.CREATED_AT]),
        updated_at=float(fields.get(f.UPDATED_AT, fields[f.CREATED_AT])),
    )


_RESULT_MODELS: dict[JobKind, type[JobResult]] = {
    JobKind.INDEX: IndexResult,
    JobKind.QUERY: DonePayload,
    JobKind.EVALUATION: EvaluationResult,
}


def _result(kind: JobKind, stored: str) -> JobResult:
    return _RESULT_MODELS[kind].model_validate_json(stored)
