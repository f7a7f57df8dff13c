"""`ragq eval`: run an evaluation job and show its metrics per retrieval mode, or compare two saved runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Table

from cli.client import ApiClient, CliError
from shared.evaluation.result import EvaluationResult, ModeMetrics

FINAL_STATES = ("succeeded", "failed", "cancelled")
NDJSON = "application/x-ndjson"


def run(client: ApiClient, eval_set: Path, collection: str, k: int, err: Console) -> EvaluationResult:
    """Upload the set, follow the job's progress on `err`, return its result (CliError if it did not succeed)."""
    try:
        body = eval_set.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {eval_set}: {exc.strerror or exc}") from exc
    accepted = client.post(
        f"/v1/collections/{collection}/evaluations", content=body, headers={"Content-Type": NDJSON}, params={"k": k}
    )
    job_id = accepted["job_id"]
    err.print(f"evaluation job {job_id} on '{collection}', k={k}", highlight=False)
    record: dict[str, Any] = {}
    last = ""
    for _, record in client.events(f"/v1/jobs/{job_id}/events"):
        progress = record["progress"]
        line = f"evaluating: {progress['done']}/{progress['total']} cases" if progress["total"] else ""
        if line and line != last:
            err.print(line, highlight=False)
            last = line
        if record["state"] in FINAL_STATES:
            break
    if record.get("state") != "succeeded":
        error = record.get("error") or {}
        raise CliError(f"evaluation job {job_id} {record.get('state')}: {error.get('message', 'no result')}")
    return EvaluationResult.model_validate(record["result"])


def load(path: Path) -> EvaluationResult:
    """A run saved by `ragq eval --json-out` (or a job record holding one under `result`)."""
    try:
        return EvaluationResult.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValidationError as first:
        try:  # the whole job record, as `ragq job ID --json` prints it
            return EvaluationResult.model_validate(json.loads(path.read_bytes())["result"])
        except (ValueError, KeyError, TypeError, ValidationError):
            raise CliError(f"{path} is not an evaluation result ({first.error_count()} problems)") from first


def _metrics(mode: ModeMetrics) -> dict[str, float]:
    """The figures shown per mode, in column order."""
    hits = {f"hit@{cutoff}": value for cutoff, value in sorted(mode.hit_at.items())}
    return {
        **hits,
        f"MRR@{mode.k}": mode.mrr,
        f"nDCG@{mode.k}": mode.ndcg,
        "p50 ms": mode.latency_ms_p50,
        "p95 ms": mode.latency_ms_p95,
    }


def _number(name: str, value: float) -> str:
    return f"{value:.1f}" if name.endswith("ms") else f"{value:.3f}"


def metrics_table(out: Console, result: EvaluationResult) -> None:
    """Mode × metrics, then the questions no mode found."""
    names = list(_metrics(result.modes[0])) if result.modes else []
    table = Table(
        "mode", *names, box=box.SIMPLE_HEAD, title=f"{result.collection}: {result.cases} questions, k={result.k}"
    )
    for mode in result.modes:
        figures = _metrics(mode)
        table.add_row(mode.mode, *(_number(n, figures[n]) for n in names))
    out.print(table)
    if not result.modes:
        return
    # Every mode lists the cases in the same order (the set's).
    first = result.modes[0].questions
    missed = [q for i, q in enumerate(first) if all(m.questions[i].rank is None for m in result.modes)]
    for question in missed:
        out.print(
            f"not found in the top {result.k} by any mode: line {question.line}: {question.question}",
            highlight=False,
            markup=False,
        )


def compare_table(out: Console, a: EvaluationResult, b: EvaluationResult, names: tuple[str, str]) -> None:
    """The two runs' figures side by side per mode with B − A, then each question whose rank changed."""
    table = Table("mode", "metric", names[0], names[1], "Δ", box=box.SIMPLE_HEAD, title=f"{names[0]} → {names[1]}")
    b_modes = {m.mode: m for m in b.modes}
    for mode in a.modes:
        other = b_modes.get(mode.mode)
        if other is None:
            continue
        ours, theirs = _metrics(mode), _metrics(other)
        for name in ours:
            if name in theirs:
                delta = theirs[name] - ours[name]
                table.add_row(
                    mode.mode,
                    name,
                    _number(name, ours[name]),
                    _number(name, theirs[name]),
                    f"{delta:+.3f}" if not name.endswith("ms") else f"{delta:+.1f}",
                )
    out.print(table)
    if a.k != b.k:
        out.print(f"k differs ({a.k}, {b.k}): only the cut-offs both runs report are compared", highlight=False)
    only = sorted({m.mode for m in a.modes} ^ set(b_modes))
    if only:
        out.print(f"in one run only: {', '.join(only)}", highlight=False)
    for mode in a.modes:
        other = b_modes.get(mode.mode)
        if other is None:
            continue
        their_ranks = {q.question: q.rank for q in other.questions}
        for question in mode.questions:
            if question.question in their_ranks and their_ranks[question.question] != question.rank:
                change = f"{_rank(question.rank)} → {_rank(their_ranks[question.question])}"
                out.print(
                    f"{mode.mode}: rank {change}: {question.question}",
                    highlight=False,
                    markup=False,
                )


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)
