"""The `ragq` commands (typer): index, ask, chat, jobs, job, collections, status. Entry point: `main`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cli import answers, feedback, render
from cli.client import ApiClient, CliError
from cli.progress import follow
from cli.uploads import batches, collect_files, upload
from cli.usage import usage_table
from shared.feedback import MAX_COMMENT_CHARS, Rating
from shared.ingest.import_paths import SUPPORTED_TYPES

DEFAULT_API = "http://127.0.0.1:8000"
PER_FILE_DEFAULT_MAX = 50

app = typer.Typer(
    name="ragq",
    help="ragqueue from the terminal: index your files, ask questions, watch jobs. "
    "Talks to the ragqueue HTTP API only, so the server may be remote.",
    epilog="Examples:  ragq index docs/kb --collection demo  ·  ragq ask '什么是 KV 缓存？' --collection demo  ·  "
    "ragq --api http://server:8000 status",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

Collection = Annotated[str, typer.Option("--collection", "-c", help="The collection to use")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text")]
TopK = Annotated[int | None, typer.Option("--top-k", min=1, max=50, help="Chunks to retrieve")]
Mode = Annotated[str, typer.Option("--mode", help="Retrieval: hybrid, vector or bm25")]
Comment = Annotated[
    str | None, typer.Option("--comment", help=f"Why, with a rating (at most {MAX_COMMENT_CHARS} characters)")
]


def _client(ctx: typer.Context) -> ApiClient:
    return ApiClient(**ctx.obj)


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False))


@app.callback()
def options(
    ctx: typer.Context,
    api: Annotated[str, typer.Option("--api", envvar="RAGQ_API", help="Base URL of the ragqueue API")] = DEFAULT_API,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="RAGQ_API_KEY", help="Sent as `Authorization: Bearer KEY`")
    ] = None,
) -> None:
    ctx.obj = {"base_url": api, "api_key": api_key}


@app.command(
    epilog="Examples:\n\n"
    "  ragq index docs/kb --collection demo\n\n"
    "  ragq index notes/ report.pdf -c work --skip-invalid\n\n"
    "  ragq index big-folder/ -c archive --no-wait   # prints the job id; follow it with `ragq job ID`"
)
def index(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help=f"Files, or folders (walked for {SUPPORTED_TYPES})")],
    collection: Collection,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the job id(s) and return at once")] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Index the good files even if some are refused")
    ] = False,
    per_file: Annotated[
        bool | None,
        typer.Option(
            "--files/--no-files",
            help=f"A line per file (status, chunks, why it failed); default: when at most {PER_FILE_DEFAULT_MAX} files",
        ),
    ] = None,
) -> None:
    """Upload files into a collection, show the indexing progress live, then a summary."""
    files = collect_files(paths)
    with _client(ctx) as client:
        jobs: dict[str, int] = {}  # job id -> files it indexes
        rejected: list[dict[str, Any]] = []
        for batch in batches(files):
            accepted = upload(client, collection, batch, skip_invalid)
            jobs[accepted["job_id"]] = len(accepted["documents"])
            rejected += accepted.get("rejected") or []
        if no_wait:
            for job_id in jobs:
                out.print(job_id)
            return
        err.print(f"uploaded {sum(jobs.values())} file(s) to '{collection}' ({len(jobs)} index job(s))")
        run = follow(client, jobs, err)
    records = list(run.records.values())
    listed = per_file if per_file is not None else len(files) <= PER_FILE_DEFAULT_MAX
    if listed:
        with _client(ctx) as client:
            documents = [d for job_id in jobs for d in client.get(f"/v1/jobs/{job_id}/documents")["documents"]]
        render.document_outcomes(out, documents, rejected)
    render.index_summary(out, collection, records, rejected, list_failures=not listed)
    if any(r["state"] != "succeeded" for r in records):
        raise CliError("indexing did not succeed (see above)")


@app.command(
    epilog="Examples:\n\n"
    "  ragq ask '什么是 KV 缓存？' --collection demo\n\n"
    "  ragq ask 'What is speculative decoding?' -c demo --json | jq -r .answer\n\n"
    "  ragq ask '什么是 KV 缓存？' -c demo --rate down --comment 'wrong document'\n\n"
    "Ctrl-C stops the answer and cancels the job on the server."
)
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question")],
    collection: Collection,
    as_json: AsJson = False,
    top_k: TopK = None,
    mode: Mode = "hybrid",
    rate: Annotated[Rating | None, typer.Option("--rate", help="Rate the answer once it is written")] = None,
    comment: Comment = None,
) -> None:
    """Ask a question: the answer streams into the terminal as it is written, then its sources."""
    body: dict[str, Any] = {"collection": collection, "question": question, "mode": mode}
    if top_k:
        body["top_k"] = top_k
    with _client(ctx) as client:
        answer = answers.ask(client, body, as_json, out, err)
        if rate and answer.job_id:
            err.print(feedback.rated(feedback.rate(client, answer.job_id, rate, comment)), markup=False)


@app.command(
    epilog="Examples:\n\n"
    "  ragq rate 3f2a9c... up\n\n"
    "  ragq rate 3f2a9c... down --comment 'cites the wrong version'\n\n"
    "Rating the same answer again replaces the earlier rating."
)
def rate(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The query job's id (`ragq ask --json` prints it)")],
    rating: Annotated[Rating, typer.Argument(help="up or down")],
    comment: Comment = None,
) -> None:
    """Rate a finished answer up or down, with an optional comment."""
    with _client(ctx) as client:
        out.print(feedback.rated(feedback.rate(client, job_id, rating, comment)), markup=False)


@app.command(
    epilog="Examples:\n\n"
    "  ragq chat --collection demo\n\n"
    "Follow-up questions ('and its memory cost?') are understood in the conversation's context. "
    "/reset forgets it, /exit or Ctrl-D leaves, Ctrl-C stops the current answer."
)
def chat(ctx: typer.Context, collection: Collection, top_k: TopK = None, mode: Mode = "hybrid") -> None:
    """Chat with a collection: an interactive loop that keeps the conversation."""
    extra: dict[str, Any] = {"mode": mode, **({"top_k": top_k} if top_k else {})}
    with _client(ctx) as client:
        answers.chat(client, collection, extra, out, err)


@app.command(epilog="Examples:\n\n  ragq jobs\n\n  ragq jobs --limit 100 --json")
def jobs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=200, help="How many")] = 20,
    as_json: AsJson = False,
) -> None:
    """Recent jobs (index and query), newest first."""
    with _client(ctx) as client:
        records = client.get("/v1/jobs", limit=limit)
    _print_json(records) if as_json else render.jobs_table(out, records)


@app.command(epilog="Examples:\n\n  ragq job 3f2a9c...\n\n  ragq job 3f2a9c... --json")
def job(ctx: typer.Context, job_id: Annotated[str, typer.Argument(help="The job id")], as_json: AsJson = False) -> None:
    """One job: state, progress, result or error, and the documents that failed."""
    with _client(ctx) as client:
        record = client.get(f"/v1/jobs/{job_id}")
        failed = []
        if record["kind"] == "index":
            failed = client.get(f"/v1/jobs/{job_id}/documents", status="failed")["documents"]
    if as_json:
        _print_json({**record, "failed_documents": failed})
    else:
        render.job_detail(out, record, failed)
        if record["kind"] == "evaluation" and record.get("result"):
            from cli import evaluation  # its result models cost every other command ~70 ms to import
            from shared.evaluation.result import EvaluationResult

            evaluation.metrics_table(out, EvaluationResult.model_validate(record["result"]))


@app.command(epilog="Examples:\n\n  ragq collections\n\n  ragq collections --json")
def collections(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every collection with its documents, chunks and embedding model."""
    with _client(ctx) as client:
        infos = client.get("/v1/collections")
    _print_json(infos) if as_json else render.collections_table(out, infos)


@app.command(epilog="Examples:\n\n  ragq status\n\n  RAGQ_API=http://server:8000 ragq status --json")
def status(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Is the stack ready? Workers per queue and the messages waiting in each. Exits 1 when not ready."""
    with _client(ctx) as client:
        state = client.get("/v1/status")
    if as_json:
        _print_json(state)
    else:
        render.status_view(out, client.base_url, state)
    if not state["ready"]:
        raise typer.Exit(1)


@app.command(
    epilog="Examples:\n\n  ragq usage\n\n  ragq usage --from 2026-12-01 --to 2026-12-31\n\n  ragq usage --json"
)
def usage(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option("--from", help="First UTC day, YYYY-MM-DD (default: --to)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last UTC day, YYYY-MM-DD (default: today)")] = None,
    as_json: AsJson = False,
) -> None:
    """What this API key used per UTC day (an admin key: every key): questions, tokens, embeddings, uploads."""
    params = {name: value for name, value in (("from", start), ("to", end)) if value is not None}
    with _client(ctx) as client:
        report = client.get("/v1/usage", **params)
    _print_json(report) if as_json else usage_table(out, report)


@app.command(
    name="eval",
    epilog="Examples:\n\n"
    "  ragq eval docs/kb-eval.jsonl -c demo\n\n"
    "  ragq eval qa.jsonl -c demo -k 10 --json-out before.json\n\n"
    "  ragq eval --compare before.json after.json\n\n"
    "The set: JSON Lines, {question, relevant: [{document, text, chunk_id?}]} per line (docs/api.md).",
)
def eval_(
    ctx: typer.Context,
    eval_set: Annotated[Path | None, typer.Argument(help="The evaluation set (JSON Lines)")] = None,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="The collection to evaluate")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="Chunks retrieved per question")] = 5,
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Also write the result as JSON here")] = None,
    compare: Annotated[
        tuple[Path, Path] | None, typer.Option("--compare", help="Compare two saved results instead (A B)")
    ] = None,
) -> None:
    """Score retrieval on an evaluation set: hit@k, MRR, nDCG and latency per mode; or compare two runs."""
    from cli import evaluation  # its result models cost every other command ~70 ms to import

    if compare:
        a, b = compare
        evaluation.compare_table(out, evaluation.load(a), evaluation.load(b), (a.name, b.name))
        return
    if eval_set is None or collection is None:
        raise CliError("give an evaluation set and --collection (or --compare A.json B.json)")
    with _client(ctx) as client:
        result = evaluation.run(client, eval_set, collection, k, err)
    if json_out:
        json_out.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    evaluation.metrics_table(out, result)


app.add_typer(feedback.app, name="feedback")


def main() -> None:
    """Run `ragq`; a CliError becomes one line on stderr and a non-zero exit code."""
    try:
        app()
    except CliError as exc:
        err.print(f"ragq: {exc.message}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
