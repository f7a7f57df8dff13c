"""`ragq rate`, `ragq ask --rate` and `ragq feedback export`: rate answers, export ratings as an evaluation set."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.client import ApiClient
from shared.eval_set import EvalCase, write_eval_set
from shared.feedback import Feedback, Rating

# GET /v1/feedback's largest page.
PAGE = 1000

app = typer.Typer(help="Feedback on answers: export it as an evaluation set.", no_args_is_help=True)
err = Console(stderr=True, highlight=False)


def rate(client: ApiClient, job_id: str, rating: Rating, comment: str | None) -> Feedback:
    """Rate a finished answer (a second rating of the same job replaces the first)."""
    body: dict[str, Any] = {"rating": rating.value, **({"comment": comment} if comment else {})}
    return Feedback.model_validate(client.post(f"/v1/queries/{job_id}/feedback", json=body))


def rated(feedback: Feedback) -> str:
    """The line saying a rating was recorded."""
    comment = f" ({feedback.comment})" if feedback.comment else ""
    return f"rated {feedback.rating.value}{comment}: query {feedback.job_id}"


def all_feedback(client: ApiClient, collection: str, rating: Rating | None) -> Iterator[Feedback]:
    """Every feedback the key may see in the collection, latest first, page by page."""
    offset = 0
    while True:
        params: dict[str, Any] = {"collection": collection, "limit": PAGE, "offset": offset}
        if rating:
            params["rating"] = rating.value
        page = client.get("/v1/feedback", **params)
        yield from (Feedback.model_validate(item) for item in page)
        if len(page) < PAGE:
            return
        offset += PAGE


@app.command(
    epilog="Examples:\n\n"
    "  ragq feedback export -c demo -o demo-eval.jsonl\n\n"
    "  ragq feedback export -c demo --rating down   # JSON Lines on stdout\n\n"
    "Each line: {question, relevant: [{document, location, chunk_id, text}], rating, comment, collection, job_id} "
    "(docs/api.md, 'Evaluation set format')."
)
def export(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection whose ratings to export")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout)")] = None,
    rating: Annotated[Rating | None, typer.Option("--rating", help="Only `up` or only `down` ratings")] = None,
) -> None:
    """Write rated answers as an evaluation set (JSON Lines): the question, its sources, the rating."""
    with ApiClient(**ctx.obj) as client:
        cases = [EvalCase.from_feedback(f) for f in all_feedback(client, collection, rating)]
    if output is None:
        count = write_eval_set(cases, sys.stdout)
    else:
        with output.open("w", encoding="utf-8") as f:
            count = write_eval_set(cases, f)
    err.print(f"exported {count} rated answer(s) from '{collection}'" + (f" to {output}" if output else ""))
