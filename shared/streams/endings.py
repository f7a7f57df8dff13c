"""The one writer of a query's ending: its terminal event and its job's final record, in one Redis script.

Whoever ends a query — the worker when the answer is complete or fails, the cancel route, the watchdog that
finds a dead worker or a job no worker took — calls `end_query` (or `end_query_async`). The append script
(shared/streams/replay_log.py) refuses a second terminal event and writes the record only with the event it
accepts, so however many of them race, the stream ends once and the record agrees with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from shared.jobs.records import JobError, JobState, final_fields
from shared.streams.events import CANCELLED_MESSAGE, DonePayload, ErrorCode, ErrorPayload, EventName
from shared.streams.replay_log import APPEND_SCRIPT, STREAM_ENDED, append_call


@dataclass(frozen=True)
class QueryEnding:
    """How a query ended: its final state and the terminal event's payload (`done` or `error`)."""

    state: JobState
    payload: DonePayload | ErrorPayload

    @classmethod
    def succeeded(cls, summary: DonePayload) -> QueryEnding:
        return cls(JobState.SUCCEEDED, summary)

    @classmethod
    def failed(cls, code: str, message: str) -> QueryEnding:
        return cls(JobState.FAILED, ErrorPayload(code=code, message=message))

    @classmethod
    def cancelled(cls, job_id: str) -> QueryEnding:
        return cls(
            JobState.CANCELLED, ErrorPayload(code=ErrorCode.CANCELLED, message=CANCELLED_MESSAGE.format(job_id=job_id))
        )

    @property
    def event(self) -> EventName:
        return EventName.DONE if isinstance(self.payload, DonePayload) else EventName.ERROR

    def record(self) -> dict[str, str]:
        """The job hash's final fields."""
        if isinstance(self.payload, DonePayload):
            return final_fields(self.state, self.payload, None)
        return final_fields(self.state, None, JobError(code=self.payload.code, message=self.payload.message))


def _call(job_id: str, ending: QueryEnding, replay_ttl_s: int, job_ttl_s: int) -> tuple[list[str], list[str]]:
    return append_call(job_id, ending.event, ending.payload, replay_ttl_s, False, ending.record(), job_ttl_s)


def end_query(client: redis.Redis, job_id: str, ending: QueryEnding, replay_ttl_s: int, job_ttl_s: int = 0) -> bool:
    """End the query's stream and record unless it already ended; True if this call ended it.

    `job_ttl_s` > 0 renews the record's expiry (the worker does; the API leaves the one set at creation).
    """
    script_keys, args = _call(job_id, ending, replay_ttl_s, job_ttl_s)
    return int(client.register_script(APPEND_SCRIPT)(keys=script_keys, args=args)) != STREAM_ENDED


async def end_query_async(
    client: aioredis.Redis, job_id: str, ending: QueryEnding, replay_ttl_s: int, job_ttl_s: int = 0
) -> bool:
    """`end_query` from async code."""
    script_keys, args = _call(job_id, ending, replay_ttl_s, job_ttl_s)
    return int(await client.register_script(APPEND_SCRIPT)(keys=script_keys, args=args)) != STREAM_ENDED
