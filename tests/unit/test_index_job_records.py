"""An index job's stored records: per-document statuses and the result, as the worker writes and the API reads them."""

from __future__ import annotations

import json

from shared.jobs.document_status import DocStatus, DocumentStatus
from shared.jobs.index_result import MAX_FAILURES_IN_RESULT, IndexResult
from shared.jobs.records import JobKind, JobRecord, JobState, final_fields, initial_fields, parse_job
from shared.streams.events import AnswerTimings, DonePayload

JOB = "0123456789abcdef0123456789abcdef"


def test_a_stored_status_keeps_its_field_names_and_reads_back_under_its_name() -> None:
    status = DocumentStatus(
        name="a.md", doc_id="d1", status=DocStatus.FAILED, error="too big", code="upstream_error", worker="w@h"
    )
    stored = json.loads(status.stored())
    assert stored == {
        "doc_id": "d1",
        "status": "failed",
        "chunks": 0,
        "error": "too big",
        "code": "upstream_error",
        "worker": "w@h",
    }
    assert DocumentStatus.from_stored("a.md", status.stored()) == status


def test_a_status_stored_without_code_or_worker_still_reads() -> None:
    queued = DocumentStatus.from_stored("b.md", '{"doc_id": "d2", "status": "queued", "chunks": 0, "error": null}')
    assert (queued.status, queued.code, queued.worker) == (DocStatus.QUEUED, None, None)


def _statuses(failed: int) -> list[DocumentStatus]:
    return [
        DocumentStatus(name="ok.md", doc_id="d0", status=DocStatus.INDEXED, chunks=3),
        DocumentStatus(name="same.md", doc_id="d1", status=DocStatus.UNCHANGED, chunks=2),
        *(
            DocumentStatus(name=f"bad{i}.md", doc_id=f"x{i}", status=DocStatus.FAILED, error="broken")
            for i in range(failed)
        ),
    ]


def test_the_result_counts_documents_and_names_at_most_the_first_failures() -> None:
    result = IndexResult.of("notes", _statuses(MAX_FAILURES_IN_RESULT + 5))
    assert (result.files, result.documents_indexed, result.documents_unchanged) == (MAX_FAILURES_IN_RESULT + 7, 1, 1)
    assert result.documents_failed == MAX_FAILURES_IN_RESULT + 5 and result.chunks == 5
    assert len(result.failed) == MAX_FAILURES_IN_RESULT and result.failed[0].source == "bad0.md"


def test_a_result_without_a_collection_leaves_its_fields_out_not_null() -> None:
    # `ragq index` prints the collection's size only when the result has the key.
    result = IndexResult.of("notes", _statuses(1))
    assert "collection_documents" not in json.loads(result.model_dump_json())
    result.collection_documents, result.collection_chunks, result.embed_model, result.dimension = 2, 5, "m", 8
    assert json.loads(result.model_dump_json())["collection_documents"] == 2


def test_a_job_record_reads_its_result_by_kind_and_returns_the_stored_fields() -> None:
    index_result = IndexResult.of("notes", _statuses(1))
    done = DonePayload(
        tokens=3,
        sources=1,
        answerer="extractive",
        question="q",
        mode="hybrid",
        timings_ms=AnswerTimings(retrieval=1.0, first_token=2.0, total=3.0),
    )
    for kind, result in ((JobKind.INDEX, index_result), (JobKind.QUERY, done)):
        fields = {**initial_fields(JOB, kind, "notes"), **final_fields(JobState.SUCCEEDED, result, None)}
        record = parse_job(fields)
        assert record.result == result
        served = json.loads(JobRecord.model_validate(record.model_dump()).model_dump_json())
        assert served["result"] == json.loads(fields["result"])
