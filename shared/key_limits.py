"""What one API key may use: its limits, from its `[[key]]` table or the KEY_* settings (shared/keys_file.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shared.keys_file import KeyTable
from shared.settings import Settings

# The limits a key can have, as named in the keys file, in 429 messages and in RateLimit headers' policy.
LIMIT_NAMES = ("requests_per_minute", "max_streams", "questions_per_day", "tokens_per_day", "upload_bytes_per_day")


@dataclass(frozen=True)
class KeyLimits:
    """None: no limit of that kind."""

    requests_per_minute: int | None = None
    max_streams: int | None = None
    questions_per_day: int | None = None
    tokens_per_day: int | None = None
    upload_bytes_per_day: int | None = None

    @classmethod
    def defaults(cls, settings: Settings) -> KeyLimits:
        """The KEY_* settings: the limits of a key from API_KEYS, and of a file key that sets none of its own."""
        return cls(
            requests_per_minute=settings.KEY_REQUESTS_PER_MINUTE,
            max_streams=settings.KEY_MAX_STREAMS,
            questions_per_day=settings.KEY_QUESTIONS_PER_DAY,
            tokens_per_day=settings.KEY_TOKENS_PER_DAY,
            upload_bytes_per_day=settings.KEY_UPLOAD_BYTES_PER_DAY,
        )

    @classmethod
    def for_table(cls, table: KeyTable, settings: Settings) -> KeyLimits:
        """A file key's own limits, each falling back to its KEY_* setting."""
        fallback = cls.defaults(settings)
        return cls(**{name: getattr(table, name) or getattr(fallback, name) for name in LIMIT_NAMES})

    @property
    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in LIMIT_NAMES)


def usage_day(now: datetime) -> str:
    """The UTC day a use is counted in, `20261202`: daily quotas and usage reset at 00:00 UTC."""
    return now.astimezone(UTC).strftime("%Y%m%d")
