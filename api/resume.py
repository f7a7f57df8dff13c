"""Reconnects (the HTML EventSource rules): where a `Last-Event-ID` resumes, and when the stream already ended.

A browser `EventSource` that is not closed reconnects whenever the server ends a stream, sending the last
`id:` it saw. A reconnect at or past the terminal event gets 204, the one answer that stops it; any other
reconnect resumes the same job after that event. Query streams use the seq as the id; `GET /stream_chat`
uses `<job_id>:<seq>`, so its reconnect (which repeats the question's URL) finds the job instead of asking again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from api.errors import ApiError
from shared import keys
from shared.jobs.records import FINAL_STATES, JobField, valid_job_id
from shared.settings import Settings
from shared.streams.replay_log import TERMINAL_FIELD

JOB_ID_SEPARATOR = ":"
# A seq is a bounded ASCII integer: `str.isdigit()` accepts '²' and int() a 5,000-digit number, and a
# seq past 2**63 breaks the Redis stream id it becomes. 18 digits stay below that with room for `after + 1`.
SEQ_RULE = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class ResumePoint:
    """A reconnect's job (None: the id named none) and the last seq the client saw."""

    job_id: str | None
    after_seq: int


def _invalid(raw: str, expected: str) -> ApiError:
    return ApiError(422, "invalid_last_event_id", f"Last-Event-ID must be {expected}, got {raw!r}")


def parse_seq(raw: str | None) -> int:
    """A query stream's `Last-Event-ID`: the seq of the last event seen (0 when absent)."""
    if raw is None or raw == "":
        return 0
    if not SEQ_RULE.fullmatch(raw):
        raise _invalid(raw[:40], "a non-negative integer of at most 18 digits")
    return int(raw)


def parse_job_event_id(raw: str | None) -> ResumePoint:
    """A `/stream_chat` `Last-Event-ID` of the form `<job_id>:<seq>`; no id means a new question."""
    if raw is None or raw == "":
        return ResumePoint(None, 0)
    job_id, separator, seq = raw.rpartition(JOB_ID_SEPARATOR)
    if not separator or not valid_job_id(job_id) or not SEQ_RULE.fullmatch(seq):
        raise _invalid(raw[:80], "<job_id>:<seq> as sent in this stream's `id:` fields")
    return ResumePoint(job_id, int(seq))


def job_event_id(job_id: str, seq: int) -> str:
    return f"{job_id}{JOB_ID_SEPARATOR}{seq}"


async def terminal_seq(redis: aioredis.Redis, job_id: str) -> int | None:
    """The seq of the stream's terminal event, or None while it has not ended."""
    last = cast(list[tuple[str, dict[str, str]]], await redis.xrevrange(keys.replay_key(job_id), "+", "-", count=1))
    if not last or TERMINAL_FIELD not in last[0][1]:
        return None
    return int(last[0][0].rpartition("-")[2])


async def already_ended(redis: aioredis.Redis, settings: Settings, job_id: str, after_seq: int) -> bool:
    """True when the client saw the terminal event (204 then); 410 when the events it needs are gone.

    Gone means: a resume finds no buffer, or any stream finds none for a job that ended (its buffer outlived by its
    record, REPLAY_TTL_S against JOB_TTL_S), which would otherwise wait forever for events.
    """
    ended = await terminal_seq(redis, job_id)
    if ended is not None:
        return bool(after_seq) and after_seq >= ended
    state = await redis.hget(keys.job_key(job_id), JobField.STATE.value)  # type: ignore[misc]
    if (after_seq or state in FINAL_STATES) and not await redis.exists(keys.replay_key(job_id)):
        raise ApiError(
            410,
            "replay_expired",
            f"the events of job {job_id!r} are no longer kept "
            f"(REPLAY_TTL_S={settings.REPLAY_TTL_S}); ask the question again",
        )
    return False
