"""How `ragq` shows collections, jobs, the stack's status and an index run's summary."""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _age(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def progress_text(job: dict[str, Any]) -> str:
    p = job["progress"]
    parts = []
    if p.get("documents_total"):
        parts.append(f"{p.get('documents_done') or 0}/{p['documents_total']} docs")
    if p.get("total"):
        parts.append(f"{p['done']}/{p['total']} chunks")
    return ", ".join(parts)


def collections_table(out: Console, collections: list[dict[str, Any]]) -> None:
    if not collections:
        out.print("no collections yet: ragq index PATH --collection NAME")
        return
    table = Table("collection", "documents", "chunks", "embedding model", box=box.SIMPLE_HEAD)
    for c in collections:
        table.add_row(c["name"], str(c["documents"]), str(c["chunks"]), f"{c['embed_model']} ({c['dimension']}-d)")
    out.print(table)
    building = [c["name"] for c in collections if not c.get("search_indexes_built", True)]  # absent: an older API
    if building:
        out.print(
            f"search indexes not built yet: {', '.join(building)} (their first index job builds them at its end; "
            "questions are answered meanwhile, by slower exact scans)"
        )


def jobs_table(out: Console, jobs: list[dict[str, Any]]) -> None:
    if not jobs:
        out.print("no recent jobs")
        return
    table = Table(box=None, pad_edge=False, header_style="bold underline")
    table.add_column("job", no_wrap=True, min_width=32)  # whole, so it can be pasted into `ragq job ID`
    for name in ("kind", "state", "collection", "docs", "age"):
        table.add_column(name, no_wrap=True)
    for j in jobs:
        p = j["progress"]
        documents = f"{p.get('documents_done') or 0}/{p['documents_total']}" if p.get("documents_total") else ""
        age = _age(j["created_at"]).removesuffix(" ago")
        table.add_row(j["id"], j["kind"], j["state"], j.get("collection") or "", documents, age)
    out.print(table)


def job_detail(out: Console, job: dict[str, Any], failed_documents: list[dict[str, Any]]) -> None:
    out.print(
        f"[bold]{job['id']}[/bold]  {job['kind']} job on '{job.get('collection') or ''}': [bold]{job['state']}[/bold]"
    )
    out.print(f"created {_age(job['created_at'])}, updated {_age(job['updated_at'])}")
    if progress_text(job):
        stage = job["progress"].get("stage")
        out.print(f"progress: {progress_text(job)}" + (f" ({stage})" if stage else ""))
    result = job.get("result") or {}
    for key in ("documents_indexed", "documents_unchanged", "documents_failed", "chunks"):
        if key in result:
            out.print(f"{key.replace('_', ' ')}: {result[key]}")
    if job.get("error"):
        out.print(f"[red]error {job['error']['code']}:[/red] {job['error']['message']}", highlight=False)
    for doc in failed_documents:
        out.print(f"  [red]failed[/red] {doc['name']}: {doc['error']}", highlight=False)


def status_view(out: Console, base_url: str, status: dict[str, Any]) -> None:
    if status["ready"]:
        out.print(f"[green]ready[/green]  {base_url}")
    else:
        problem = status["problem"]
        out.print(f"[red]not ready[/red]  {base_url}: {problem['message']} ({problem['code']})", highlight=False)
    table = Table("queue", "workers", "waiting", box=box.SIMPLE_HEAD)
    for q in status["queues"]:
        waiting = "?" if q["waiting"] is None else str(q["waiting"])
        table.add_row(q["name"], "\n".join(q["workers"]) or "[red]none[/red]", waiting)
    out.print(table)


def document_outcomes(out: Console, documents: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> None:
    """One line per file: how its indexing ended, its chunks, and why it failed or was refused."""
    table = Table("file", "outcome", "chunks", "why", box=box.SIMPLE_HEAD)
    style = {"indexed": "green", "unchanged": "cyan", "failed": "red"}
    for doc in sorted(documents, key=lambda d: d["name"]):
        colour = style.get(doc["status"], "yellow")
        table.add_row(
            escape(doc["name"]), f"[{colour}]{doc['status']}[/{colour}]", str(doc["chunks"]), escape(doc["error"] or "")
        )
    for r in rejected:
        table.add_row(escape(r["filename"]), "[red]rejected[/red]", "0", escape(r["message"]))
    out.print(table)


def index_summary(
    out: Console,
    collection: str,
    records: list[dict[str, Any]],
    rejected: list[dict[str, Any]],
    list_failures: bool = True,
) -> None:
    total = {"documents_indexed": 0, "documents_unchanged": 0, "documents_failed": 0, "chunks": 0}
    failures: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for record in records:
        result = record.get("result") or {}
        for key in total:
            total[key] += int(result.get(key) or 0)
        failures += result.get("failed") or []
        info = result or info
        if record["state"] != "succeeded" and record.get("error") and not result.get("failed"):
            failures.append({"source": f"job {record['id']}", "error": record["error"]["message"]})
    out.print(
        f"[bold]{collection}[/bold]: {total['documents_indexed']} documents indexed, "
        f"{total['documents_unchanged']} unchanged, {total['documents_failed'] + len(rejected)} failed; "
        f"{total['chunks']} chunks"
    )
    if "collection_documents" in info:
        out.print(
            f"the collection now holds {info['collection_documents']} documents, {info['collection_chunks']} chunks "
            f"({info['embed_model']}, {info['dimension']}-d)"
        )
    if not list_failures:
        return
    for r in rejected:
        out.print(f"  [red]rejected[/red] {r['filename']}: {r['message']}", highlight=False)
    for f in failures:
        out.print(f"  [red]failed[/red] {f['source']}: {f['error']}", highlight=False)
