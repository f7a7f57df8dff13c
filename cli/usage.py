"""`ragq usage`: what API keys used per UTC day (GET /v1/usage), as a table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

# Columns: (heading, field of a day's counts).
COLUMNS = (
    ("questions", "questions"),
    ("streams", "streams"),
    ("prompt tok", "prompt_tokens"),
    ("completion tok", "completion_tokens"),
    ("estimated tok", "estimated_tokens"),
    ("embedded", "embedded_texts"),
    ("chunks", "embedded_chunks"),
    ("documents", "documents_stored"),
    ("uploaded bytes", "upload_bytes"),
)


def _quota(limits: dict[str, Any], name: str) -> str:
    value = limits.get(name)
    return f"/{value}" if value is not None else ""


def usage_table(out: Console, report: dict[str, Any]) -> None:
    """One row per key and day with some use, then the key's total; quotas shown beside their counts."""
    title = f"Usage {report['start']}" + (f" to {report['end']}" if report["end"] != report["start"] else "") + " (UTC)"
    table = Table(title=title)
    table.add_column("key")
    table.add_column("day")
    for heading, _ in COLUMNS:
        table.add_column(heading, justify="right")
    for key in report["keys"]:
        limits = key["limits"]
        for day in key["days"]:
            table.add_row(key["key"], day["day"], *(f"{day[field]:,}" for _, field in COLUMNS))
        total = key["total"]
        cells = [f"{total[field]:,}" for _, field in COLUMNS]
        if len(key["days"]) == 1:
            cells[0] += _quota(limits, "questions_per_day")
            cells[-1] += _quota(limits, "upload_bytes_per_day")
        table.add_row(key["key"], "total", *cells, style="bold")
    out.print(table)
