"""Request and response models of the v1 API (they are the OpenAPI schema users read)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, Field, StringConstraints

from api.errors import ApiError
from shared.jobs.records import JOB_ID_PATTERN, valid_job_id
from shared.jobs.tasks import ChatTurn
from shared.store import COLLECTION_NAME_RULE
from shared.store.retrieval_modes import DEFAULT_MODE, RetrievalMode

CollectionName = Annotated[str, StringConstraints(pattern=COLLECTION_NAME_RULE)]

# Paging offsets stay within every database's integer (SQLite's OFFSET overflows at 2**63).
MAX_OFFSET = 2**31 - 1


async def _job_id(
    job_id: Annotated[
        str,
        PathParam(description="32 lower-case hex characters", json_schema_extra={"pattern": JOB_ID_PATTERN}),
    ],
) -> str:
    # Checked before an id reaches a Redis key name: `<id>:documents` named another key of the job (500s, issue
    # 11). Not a 422: an id of the wrong form names no job, the same answer as an unknown or expired one.
    if not valid_job_id(job_id):
        raise ApiError(404, "job_not_found", f"no job {job_id[:80]!r} (job ids are 32 lower-case hex characters)")
    return job_id


JobId = Annotated[str, Depends(_job_id)]


class IndexJobRequest(BaseModel):
    paths: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = Field(
        min_length=1,
        max_length=1000,
        description="Files or folders: absolute ones inside an allowed import root, relative ones under "
        "DATA_DIR/import.",
        examples=[["docs/kb"]],
    )


class JobAccepted(BaseModel):
    job_id: str
    status_url: str


class QueryRequest(BaseModel):
    collection: CollectionName = Field(examples=["default"])
    question: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        examples=["什么是 KV 缓存？"]
    )
    top_k: int | None = Field(default=None, ge=1, le=50)
    mode: RetrievalMode = Field(
        default=DEFAULT_MODE, description="vector, bm25 (jieba tokens), or hybrid (both, fused with RRF)"
    )
    history: list[ChatTurn] = Field(
        default=[],
        description="Earlier turns of the conversation, oldest first: a follow-up is rewritten into a standalone "
        "question with them before retrieval. At most MAX_HISTORY_TURNS turns of MAX_HISTORY_CHARS characters "
        "together.",
        examples=[[{"role": "user", "content": "什么是 KV 缓存？"}, {"role": "assistant", "content": "……"}]],
    )
    rerank: bool = Field(
        default=True,
        description="false: answer from the fused retrieval order without the reranking stage (when RERANK_PROVIDER "
        "is set; without one this has no effect)",
    )


class QueryAccepted(BaseModel):
    job_id: str
    stream_url: str
    status_url: str


# The upload route reads its multipart body itself (any field name, MAX_UPLOAD_FILES parts, streamed to disk), so
# FastAPI cannot infer it: declared here for the OpenAPI schema, as `files`, an array of binary parts.
UPLOAD_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "The files (any field name is accepted; `files` by convention)",
                        }
                    },
                    "required": ["files"],
                }
            }
        },
    }
}
