"""Following index jobs through their SSE progress feed: a live bar on a terminal, plain lines otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.client import ApiClient

FINAL_STATES = ("succeeded", "failed", "cancelled")


@dataclass
class IndexRun:
    """What the jobs of one `ragq index` reported: the last record of each job, in order."""

    files: dict[str, int]  # files uploaded per job: its document count until the job knows it
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def documents(self) -> tuple[int, int]:
        done = 0
        total = sum(self.files.values())
        for job_id, record in self.records.items():
            progress = record["progress"]
            total += (progress.get("documents_total") or self.files[job_id]) - self.files[job_id]
            done += progress.get("documents_done") or 0
        return done, total

    def chunks(self) -> tuple[int, int]:
        return (
            sum(r["progress"]["done"] for r in self.records.values()),
            sum(r["progress"]["total"] for r in self.records.values()),
        )

    def line(self) -> str:
        (docs_done, docs_total), (chunks_done, chunks_total) = self.documents(), self.chunks()
        stages = {r["progress"].get("stage") or r["state"] for r in self.records.values()}
        return f"{docs_done}/{docs_total} documents, {chunks_done}/{chunks_total} chunks ({', '.join(sorted(stages))})"


def follow(client: ApiClient, files: dict[str, int], console: Console) -> IndexRun:
    """Read each job's `progress` events until its `end` event; `files`: job id -> files it was given."""
    run = IndexRun(files)
    job_ids = list(files)
    if console.is_terminal:
        columns = (
            TextColumn("[bold]indexing[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("documents · {task.description}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("queued", total=sum(files.values()))
            for job_id in job_ids:
                for record in _records(client, job_id):
                    run.records[job_id] = record
                    done, total = run.documents()
                    chunks_done, chunks_total = run.chunks()
                    bar.update(task, completed=done, total=total, description=f"{chunks_done}/{chunks_total} chunks")
    else:  # a log or a pipe: one line per change, no cursor tricks
        last = ""
        for job_id in job_ids:
            for record in _records(client, job_id):
                run.records[job_id] = record
                line = run.line()
                if line != last:
                    console.print(f"indexing: {line}", highlight=False)
                    last = line
    return run


def _records(client: ApiClient, job_id: str) -> Iterator[dict[str, Any]]:
    for _, record in client.events(f"/v1/jobs/{job_id}/events"):
        yield record
        if record["state"] in FINAL_STATES:
            return
