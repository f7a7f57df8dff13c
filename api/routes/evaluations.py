"""Evaluation jobs: an uploaded evaluation set scored against a collection's retrieval, in every mode."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.collection_checks import check_embedding_model, existing_store
from api.deps import CeleryDep, PrincipalDep, RedisDep, SettingsDep, StoreDep
from api.errors import ApiError
from api.idempotency import IdempotencyKeyDep, idempotent, request_fingerprint
from api.job_records import create_job, dispatch
from api.openapi_responses import errors
from api.routes.collections import CollectionPath
from api.schemas import CollectionName, JobAccepted
from shared.evaluation.result import DEFAULT_K, MAX_K
from shared.evaluation.upload import EvalSetError, parse_eval_set
from shared.jobs.records import JobKind
from shared.jobs.tasks import EvaluationTask

router = APIRouter(prefix="/v1/collections", tags=["evaluations"])

# JSON Lines has no registered media type; both names are in use.
EVAL_SET_TYPES = ("application/x-ndjson", "application/jsonl")

EVAL_SET_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            EVAL_SET_TYPES[0]: {
                "schema": {"type": "string", "description": "One EvalCase per line (docs/api.md)"},
                "example": '{"question": "什么是 KV 缓存？", "relevant": [{"document": "大模型推理.txt", '
                '"text": "在历史位置上算出的键向量和值向量保存在显存中"}]}\n',
            }
        },
    }
}


@router.post(
    "/{collection}/evaluations",
    status_code=202,
    response_model=JobAccepted,
    responses=errors(404, 409, 413, 415, 422, 503),
    openapi_extra=EVAL_SET_BODY,
    summary="Evaluate retrieval on an evaluation set (JSON Lines body): an evaluation job",
    description="The body is the evaluation set, `Content-Type: application/x-ndjson`, at most MAX_JSON_BODY_BYTES "
    "and EVAL_MAX_CASES cases; a bad line is refused with 422 naming it. The job retrieves each question's top `k` "
    "chunks in every mode (vector, bm25, hybrid, and hybrid+rerank when a reranker is configured) and its `result` "
    "holds hit@k, MRR@k, nDCG@k, latency and every question's rank per mode.",
)
async def create_evaluation(
    request: Request,
    response: Response,
    principal: PrincipalDep,
    settings: SettingsDep,
    store: StoreDep,
    redis: RedisDep,
    celery: CeleryDep,
    idempotency_key: IdempotencyKeyDep,
    collection: CollectionName = CollectionPath,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="Chunks retrieved per question; hit@1 and @3 too")] = DEFAULT_K,
) -> JobAccepted:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in EVAL_SET_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the evaluation set as JSON Lines, Content-Type: {EVAL_SET_TYPES[0]} (got {media_type or 'none'})",
        )
    body = await request.body()  # MAX_JSON_BODY_BYTES is enforced while it is read (api/body_limit.py)

    async def submit() -> JobAccepted:
        found = await existing_store(store, collection)
        await check_embedding_model(settings, found)
        try:
            cases, lines = parse_eval_set(body, settings.EVAL_MAX_CASES)
        except EvalSetError as exc:
            raise ApiError(422, "invalid_eval_set", str(exc)) from exc
        job_id = await create_job(redis, settings, JobKind.EVALUATION, collection, owner=principal.owner)
        await dispatch(celery, EvaluationTask(job_id=job_id, collection=collection, k=k, cases=cases, lines=lines))
        return JobAccepted(job_id=job_id, status_url=f"/v1/jobs/{job_id}")

    # The set as sent, byte for byte, with what else decides the job: the same key with another set is a 409.
    fingerprint = request_fingerprint({"collection": collection, "k": k, "set": hashlib.sha256(body).hexdigest()})
    return await idempotent(redis, settings, "evaluations", idempotency_key, fingerprint, submit, JobAccepted, response)
