"""An index job's per-document status: the contract between the batches that write it and the API that lists it.

Stored in the hash rag:job:{id}:documents (shared/keys.py), one JSON value per document, under the document's
name; `GET /v1/jobs/{id}/documents` returns the same fields with the name beside them.
"""

from __future__ import annotations

import json
from enum import StrEnum

from pydantic import BaseModel


class DocStatus(StrEnum):
    QUEUED = "queued"
    INDEXING = "indexing"
    INDEXED = "indexed"
    UNCHANGED = "unchanged"
    FAILED = "failed"


class DocumentStatus(BaseModel):
    """Where one document of an index job stands."""

    name: str  # as the user knows it (never an absolute server path); the hash field, not in the stored value
    doc_id: str  # "" for a file skipped while the job was planned
    status: DocStatus
    chunks: int = 0
    error: str | None = None  # why it failed, for a person to act on
    code: str | None = None  # a stable code when the cause was upstream (the embedding service down, say)
    worker: str | None = None  # the worker that last wrote it; none while queued

    def stored(self) -> str:
        """The JSON value stored under the document's name."""
        return self.model_dump_json(exclude={"name"})

    @classmethod
    def from_stored(cls, name: str, value: str) -> DocumentStatus:
        """A status read back from the hash: its field (the name) and its JSON value."""
        return cls.model_validate({**json.loads(value), "name": name})
