"""Worker side of the token bus: each event is appended to the replay buffer and published in one step."""

from __future__ import annotations

import redis

from shared import keys
from shared.streams.append_batcher import AppendBatcher
from shared.streams.events import EventName, EventPayload
from shared.streams.replay_log import APPEND_SCRIPT, CANCELLED, STREAM_ENDED, append_call


class StreamClosed(Exception):
    """The stream cannot take more events: it already ended, or the job was cancelled."""

    def __init__(self, cancelled: bool) -> None:
        super().__init__("job cancelled" if cancelled else "stream already ended")
        self.cancelled = cancelled


class EventPublisher:
    """Publishes one query job's events; Redis assigns the sequence numbers (see shared/streams/replay_log.py)."""

    def __init__(self, client: redis.Redis, job_id: str, replay_ttl_s: int) -> None:
        self.client = client
        self.job_id = job_id
        self.replay_ttl_s = replay_ttl_s
        self._append = client.register_script(APPEND_SCRIPT)

    def has_events(self) -> bool:
        """True once anything was published for this job (by this delivery of the task or an earlier one)."""
        return bool(self.client.exists(keys.replay_key(self.job_id)))

    def publish(self, event: EventName, data: EventPayload) -> int:
        """Append and publish a non-terminal event; returns its seq. Raises StreamClosed if ended or cancelled.

        Terminal events go through shared/streams/endings.py, with the job's final record.
        """
        script_keys, args = append_call(self.job_id, event, data, self.replay_ttl_s, honour_cancel=True)
        seq = int(self._append(keys=script_keys, args=args))
        if seq in (STREAM_ENDED, CANCELLED):
            raise StreamClosed(cancelled=seq == CANCELLED)
        return seq


class AsyncEventPublisher:
    """`EventPublisher` for the worker's event loop (zhipu, openai_compatible): the same script, batched."""

    def __init__(self, batcher: AppendBatcher, job_id: str, replay_ttl_s: int) -> None:
        self.job_id = job_id
        self.replay_ttl_s = replay_ttl_s
        self._batcher = batcher  # the loop's answers share its pipelines (shared/streams/append_batcher.py)

    async def publish(self, event: EventName, data: EventPayload) -> int:
        """Append and publish a non-terminal event; returns its seq. Raises StreamClosed if ended or cancelled."""
        script_keys, args = append_call(self.job_id, event, data, self.replay_ttl_s, honour_cancel=True)
        seq = await self._batcher.append(script_keys, args)
        if seq in (STREAM_ENDED, CANCELLED):
            raise StreamClosed(cancelled=seq == CANCELLED)
        return seq
