"""Coalescing answer text into `token` events: the first piece at once, then at most one event per window.

Every event costs a Redis script call in the worker and a relay step and an SSE frame in the API (docs/benchmarks.md),
so pieces that arrive within one window travel together. The text is unchanged, only regrouped; event ids
stay dense because each flush is one event. The clock is passed in, so the rule is testable without sleeping.
"""

from __future__ import annotations


class TokenCoalescer:
    """Collects pieces; `add` returns the text to publish now, or None while the window is still open."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._buffer: list[str] = []
        self._next_at: float | None = None  # the earliest moment the next event may go; None: at once

    def add(self, piece: str, now: float) -> str | None:
        if piece:
            self._buffer.append(piece)
        if self._buffer and (self._next_at is None or now >= self._next_at):
            return self._take(now)
        return None

    def deadline(self) -> float | None:
        """When the text held now is due (None: nothing held)."""
        return self._next_at if self._buffer else None

    def due(self, now: float) -> str | None:
        """The held text if its window has closed (a timer's flush), else None."""
        if self._buffer and (self._next_at is None or now >= self._next_at):
            return self._take(now)
        return None

    def drain(self) -> str | None:
        """Everything still held, at the end of the answer."""
        if not self._buffer:
            return None
        text = "".join(self._buffer)
        self._buffer.clear()
        return text

    def _take(self, now: float) -> str:
        text = "".join(self._buffer)
        self._buffer.clear()
        self._next_at = now + self.window_s
        return text
