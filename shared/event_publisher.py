"""Worker side of the token bus: every event goes to the replay buffer and to pub/sub in one round trip."""

from __future__ import annotations

from typing import Any, cast

import redis

from shared import keys
from shared.events import REPLAY_FIELD, EventName, StreamEvent


class EventPublisher:
    """Publishes a query job's events with consecutive sequence numbers starting at 1 (client decodes to str)."""

    def __init__(self, client: redis.Redis, job_id: str, replay_ttl_s: int) -> None:
        self.client = client
        self.job_id = job_id
        self.replay_ttl_s = replay_ttl_s
        self.seq = 0
        self.finished = False

    def resume_from_buffer(self) -> StreamEvent | None:
        """Continue numbering after what a previous delivery of this job already published; return its last."""
        last = cast(list[tuple[str, dict[str, str]]], self.client.xrevrange(keys.replay_key(self.job_id), count=1))
        if not last:
            return None
        event = StreamEvent.from_wire(last[0][1][REPLAY_FIELD])
        self.seq = event.seq
        self.finished = event.is_terminal
        return event

    def publish(self, event: EventName, data: Any) -> StreamEvent:
        if self.finished:
            raise RuntimeError(f"job {self.job_id} already ended its stream")
        self.seq += 1
        item = StreamEvent(seq=self.seq, event=event, data=data)
        wire = item.to_wire()
        # Buffer first, then publish: a subscriber that replays after subscribing sees every event at
        # least once, and de-duplicates by seq (DESIGN.md "The flow").
        pipe = self.client.pipeline(transaction=False)
        # Entry id 0-{seq}: readers can ask for "everything after seq N" directly, and Redis refuses a
        # second append of the same seq.
        pipe.xadd(keys.replay_key(self.job_id), {REPLAY_FIELD: wire}, id=f"0-{self.seq}")
        pipe.expire(keys.replay_key(self.job_id), self.replay_ttl_s)
        pipe.publish(keys.stream_channel(self.job_id), wire)
        pipe.execute()
        self.finished = item.is_terminal
        return item
