"""Job state and progress."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import RedisDep
from api.errors import ErrorResponse
from api.job_records import load_job
from shared.jobs import JobRecord

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    response_model=JobRecord,
    responses={404: {"model": ErrorResponse}},
    summary="State, progress {done, total, stage}, result, and a clear error when the job failed",
)
async def get_job(job_id: str, redis: RedisDep) -> JobRecord:
    return await load_job(redis, job_id)
