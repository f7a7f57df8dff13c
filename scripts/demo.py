"""Index the sample knowledge base through the running API, then stream an answer into the terminal."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
app = typer.Typer(add_completion=False, help=__doc__)
SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "docs" / "kb"


def _fail(response: httpx.Response) -> None:
    console.print(f"[red]HTTP {response.status_code}[/red] {response.text}")
    raise typer.Exit(1)


def index(client: httpx.Client, collection: str, docs: Path) -> None:
    response = client.post(f"/v1/collections/{collection}/index-jobs", json={"paths": [str(docs)]})
    if response.status_code != 202:
        _fail(response)
    job_id = response.json()["job_id"]
    columns = (
        TextColumn("[bold]indexing[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(str(docs), total=None)
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            progress = job["progress"]
            bar.update(task, completed=progress["done"], total=progress["total"] or None)
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.2)
    if job["state"] != "succeeded":
        console.print(f"[red]index job {job['state']}:[/red] {job['error']}")
        raise typer.Exit(1)
    result = job["result"]
    console.print(
        f"indexed {result['files']} files into '{collection}': {result['collection_chunks']} chunks, "
        f"{result['embed_model']} ({result['dimension']}-d)"
    )


def ask(client: httpx.Client, collection: str, question: str) -> None:
    response = client.post("/v1/queries", json={"collection": collection, "question": question})
    if response.status_code != 202:
        _fail(response)
    console.print(f"\n[bold]问：[/bold]{question}\n[bold]答：[/bold]", end="")
    event = None
    sources: list[dict] = []
    with client.stream("GET", response.json()["stream_url"], headers={"Accept": "text/event-stream"}) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                if event == "token":
                    console.out(data["text"], end="", highlight=False)
                elif event == "sources":
                    sources = data
                elif event == "done":
                    console.print(
                        f"\n[dim]{data['tokens']} pieces streamed, first after "
                        f"{data['timings_ms']['first_token']} ms, by {data['answerer']}[/dim]"
                    )
                elif event == "error":
                    console.print(f"\n[red]error {data['code']}:[/red] {data['message']}")
    console.print("[bold]来源：[/bold]")
    for s in sources:
        console.print(f"  [{s['index']}] {Path(s['document']).name}  (score {s['score']})")


@app.command()
def main(
    question: Annotated[str, typer.Option(help="The question to ask")] = "什么是 KV 缓存？它为什么能加快大模型推理？",
    collection: Annotated[str, typer.Option(help="Collection to index into and ask")] = "default",
    docs: Annotated[Path, typer.Option(help="Folder (under an allowed import root) to index")] = SAMPLE_DOCS,
    api: Annotated[str, typer.Option(help="API base URL")] = f"http://127.0.0.1:{os.environ.get('API_PORT', '8000')}",
) -> None:
    """Index DOCS into COLLECTION with a progress bar, then stream the answer to QUESTION."""
    with httpx.Client(base_url=api, timeout=httpx.Timeout(10.0, read=300.0)) as client:
        index(client, collection, docs)
        ask(client, collection, question)


if __name__ == "__main__":
    app()
