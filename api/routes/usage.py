"""`GET /v1/usage`: what an API key used per UTC day (shared/usage.py); an admin key sees every key's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, cast

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from api.auth import KeyRing, Principal
from api.deps import PrincipalDep, RedisDep
from api.errors import ApiError
from api.key_limits import KeyGateDep
from api.openapi_responses import errors
from shared import keys
from shared.key_limits import KeyLimits
from shared.usage import UsageField

router = APIRouter(prefix="/v1/usage", tags=["usage"])

MAX_DAYS = 366


class UsageCounts(BaseModel):
    """Counts of one day or of the whole range; `estimated_tokens`: of the tokens, those the upstream did not report."""

    questions: int = 0
    streams: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_tokens: int = 0
    embedded_chunks: int = 0
    embedded_texts: int = 0
    documents_stored: int = 0
    upload_bytes: int = 0


class UsageDay(UsageCounts):
    day: date


class KeyLimitsOut(BaseModel):
    """The key's limits (null: none of that kind)."""

    requests_per_minute: int | None = None
    max_streams: int | None = None
    questions_per_day: int | None = None
    tokens_per_day: int | None = None
    upload_bytes_per_day: int | None = None


class KeyUsage(BaseModel):
    key: str  # the key's name in the keys file, else its id (never the key)
    key_id: str
    limits: KeyLimitsOut
    total: UsageCounts
    days: list[UsageDay]  # only days with some use


class UsageReport(BaseModel):
    start: date
    end: date
    keys: list[KeyUsage]


def _limits(limits: KeyLimits) -> KeyLimitsOut:
    return KeyLimitsOut(**{name: getattr(limits, name) for name in KeyLimitsOut.model_fields})


def _counts(stored: dict[str, str]) -> dict[str, int]:
    return {f.value: int(stored.get(f.value, 0)) for f in UsageField}


async def _key_usage(redis: RedisDep, principal: Principal, days: list[date]) -> KeyUsage:
    key_id = cast(str, principal.key_id)
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(keys.usage_key(key_id, day.strftime("%Y%m%d")))
        rows = cast(list[dict[str, str]], await pipe.execute())
    used = [UsageDay(day=day, **_counts(row)) for day, row in zip(days, rows, strict=True) if row]
    total = {f.value: sum(getattr(d, f.value) for d in used) for f in UsageField}
    return KeyUsage(
        key=principal.name or key_id,
        key_id=key_id,
        limits=_limits(principal.limits),
        total=UsageCounts(**total),
        days=used,
    )


@router.get(
    "",
    response_model=UsageReport,
    responses=errors(404, 422),
    summary="This key's use per UTC day from `from` to `to` (default: today); an admin key's: every key's",
)
async def get_usage(
    request: Request,
    principal: PrincipalDep,
    gate: KeyGateDep,
    redis: RedisDep,
    start: Annotated[date | None, Query(alias="from", description="First UTC day, YYYY-MM-DD")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last UTC day, YYYY-MM-DD (included)")] = None,
) -> UsageReport:
    if principal.key_id is None:
        raise ApiError(404, "usage_not_kept", "usage is counted per API key; with keys off (API_KEYS unset) none is")
    today = datetime.fromtimestamp(gate.now, UTC).date()
    end = end or today
    start = start or end
    if start > end:
        raise ApiError(422, "invalid_range", f"`from` ({start}) is after `to` ({end})")
    if (end - start).days >= MAX_DAYS:
        raise ApiError(422, "invalid_range", f"at most {MAX_DAYS} days at once; {start} to {end} is more")
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    ring: KeyRing = request.app.state.keyring
    who = [p for _, p in ring.entries if p.key_id] if principal.admin else [principal]
    return UsageReport(start=start, end=end, keys=[await _key_usage(redis, p, days) for p in who])
