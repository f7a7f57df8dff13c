"""A small SSE reader over httpx for tests: events with id, name and parsed JSON data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    id: int | None
    event: str
    data: Any


def iter_events(response: httpx.Response) -> Iterator[Event]:
    """Parse `text/event-stream` lines into events; comments (`: ping`) are skipped."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Event(
                    id=int(fields["id"]) if "id" in fields else None,
                    event=fields.get("event", "message"),
                    data=json.loads("\n".join(data)),
                )
            fields, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


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
