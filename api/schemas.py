"""Request and response models of the v1 API (they are the OpenAPI schema users read)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from shared.store import COLLECTION_NAME_RULE
from shared.store.retrieval import DEFAULT_MODE, RetrievalMode

CollectionName = Annotated[str, StringConstraints(pattern=COLLECTION_NAME_RULE)]


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


class QueryAccepted(BaseModel):
    job_id: str
    stream_url: str
    status_url: str
