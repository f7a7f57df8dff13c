"""What is counted of each API key's use, per UTC day, in `rag:usage:{key_id}:{day}` (shared/keys.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import redis

from shared import keys
from shared.key_limits import usage_day


class UsageField(StrEnum):
    QUESTIONS = "questions"  # query jobs created (also the `questions_per_day` quota's count)
    STREAMS = "streams"  # answer streams opened
    PROMPT_TOKENS = "prompt_tokens"  # LLM tokens sent, as the upstream reported them
    COMPLETION_TOKENS = "completion_tokens"  # LLM tokens generated, as the upstream reported them
    ESTIMATED_TOKENS = "estimated_tokens"  # of the two above, how many were estimated (no `usage` reported)
    EMBEDDED_CHUNKS = "embedded_chunks"  # chunks embedded while indexing
    EMBEDDED_TEXTS = "embedded_texts"  # texts sent to the embedding model (chunks and questions)
    DOCUMENTS_STORED = "documents_stored"  # documents indexed or replaced
    UPLOAD_BYTES = "upload_bytes"  # bytes of files uploaded (also the `upload_bytes_per_day` quota's count)


# A usage day is kept over a year, for GET /v1/usage.
USAGE_TTL_S = 400 * 86400


@dataclass
class TokenUsage:
    """One LLM call's tokens: as the upstream reported them in its `usage`, or estimated (`estimated`) when it gave
    none (an OpenAI-compatible server streams no usage unless asked): prompt characters and pieces generated."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    def plus(self, other: TokenUsage) -> TokenUsage:
        """Two calls' tokens together (estimated if either was)."""
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.estimated or other.estimated,
        )

    def fields(self) -> dict[UsageField, int]:
        counts = {UsageField.PROMPT_TOKENS: self.prompt_tokens, UsageField.COMPLETION_TOKENS: self.completion_tokens}
        if self.estimated:
            counts[UsageField.ESTIMATED_TOKENS] = self.prompt_tokens + self.completion_tokens
        return counts


def add_usage(client: redis.Redis, key_id: str, now: float, counts: dict[UsageField, int]) -> None:
    """Add to a key's usage of the UTC day of `now` (a worker's count: tokens, chunks); nothing for no key."""
    if not key_id or not any(counts.values()):
        return
    key = keys.usage_key(key_id, usage_day(datetime.fromtimestamp(now, UTC)))
    with client.pipeline(transaction=True) as pipe:
        for field, count in counts.items():
            if count:
                pipe.hincrby(key, field, count)
        pipe.expire(key, USAGE_TTL_S)
        pipe.execute()
