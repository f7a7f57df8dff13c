"""What is counted of each API key's use, per UTC day, in `rag:usage:{key_id}:{day}` (shared/keys.py)."""

from __future__ import annotations

from enum import StrEnum


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
