"""An index job's `result`: what its documents came to, and the collection after it.

Written once by the batch that finishes the job (workers/tasks/index.py), returned in the job record
(`GET /v1/jobs/{id}`, shared/jobs/records.py) and summed by `ragq index`.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field

from shared.jobs.document_status import DocStatus, DocumentStatus

# The result names this many failed documents at most; GET /v1/jobs/{id}/documents lists every one.
MAX_FAILURES_IN_RESULT = 50

# The collection's fields are left out, not null, when there is no collection (nothing was ever stored in it):
# clients test for the key (cli/render.py).
_ABSENT_WHEN_NONE = Field(default=None, exclude_if=lambda value: value is None)


class FailedDocument(BaseModel):
    source: str  # the document's name, as in its status
    error: str


class IndexResult(BaseModel):
    """A finished index job's `result`; a failed job whose documents all failed has one too."""

    collection: str
    files: int  # documents found, failed ones included
    documents_indexed: int
    documents_unchanged: int
    documents_failed: int
    chunks: int  # of the documents indexed or unchanged
    failed: list[FailedDocument]  # at most MAX_FAILURES_IN_RESULT
    collection_documents: int | None = _ABSENT_WHEN_NONE
    collection_chunks: int | None = _ABSENT_WHEN_NONE
    embed_model: str | None = _ABSENT_WHEN_NONE
    dimension: int | None = _ABSENT_WHEN_NONE

    @classmethod
    def of(cls, collection: str, documents: list[DocumentStatus]) -> IndexResult:
        """What a job's documents came to; the collection's own fields are the caller's to add."""
        by_status = Counter(doc.status for doc in documents)
        failed = [doc for doc in documents if doc.status == DocStatus.FAILED]
        return cls(
            collection=collection,
            files=len(documents),
            documents_indexed=by_status[DocStatus.INDEXED],
            documents_unchanged=by_status[DocStatus.UNCHANGED],
            documents_failed=by_status[DocStatus.FAILED],
            chunks=sum(doc.chunks for doc in documents),
            failed=[FailedDocument(source=doc.name, error=doc.error or "") for doc in failed[:MAX_FAILURES_IN_RESULT]],
        )
