"""A small SSE reader over httpx for tests: events with id, name and parsed JSON data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    id: int | None  # the seq: the whole id, or its part after the last `:` (`/stream_chat` ids are job:seq)
    event: str
    data: Any
    raw_id: str | None = None


class SSELineParser:
    """Feed `text/event-stream` lines one by one; returns an Event when a blank line completes one."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if line == "":
            event = None
            if self.data:
                raw_id = self.fields.get("id")
                seq = (raw_id or "").rpartition(":")[2]
                event = Event(
                    id=int(seq) if seq.isdigit() else None,
                    event=self.fields.get("event", "message"),
                    data=json.loads("\n".join(self.data)),
                    raw_id=raw_id,
                )
            self.fields, self.data = {}, []
            return event
        if not line.startswith(":"):  # comments (`: ping`) are skipped
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self.data.append(value)
            else:
                self.fields[name] = value
        return None


def iter_events(response: httpx.Response) -> Iterator[Event]:
    """Parse a streaming response's SSE lines into events."""
    parser = SSELineParser()
    for line in response.iter_lines():
        if (event := parser.feed(line)) is not None:
            yield event


def read_stream(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> list[Event]:
    """Every event of a query stream, up to and including its terminal event."""
    events: list[Event] = []
    with client.stream("GET", url, headers={"Accept": "text/event-stream", **(headers or {})}) as response:
        assert response.status_code == 200, response.read()
        for event in iter_events(response):
            events.append(event)
            if event.event in ("done", "error"):
                break
    return events
