"""`ragq eval`, the installed command, against the real stack: the metrics table, the JSON, and a comparison."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.processes import Stack
from tests.conftest import OFFLINE_KB, SAMPLE_DOCS
from tests.e2e.test_cli import one_line_error, ragq

pytestmark = pytest.mark.e2e

COLLECTION = OFFLINE_KB  # the sample docs, indexed once for the session; evaluating only reads them
EVAL_SET = SAMPLE_DOCS.parent / "kb-eval.jsonl"


@pytest.fixture(scope="module")
def api(offline_stack: Stack, offline_kb: dict[str, Any]) -> str:
    assert offline_kb["state"] == "succeeded"
    return offline_stack.base_url


def test_eval_prints_a_table_per_mode_and_writes_the_json(api: str, tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    result = ragq(api, "eval", str(EVAL_SET), "-c", COLLECTION, "--json-out", str(saved))
    assert result.returncode == 0, result.stderr
    assert "evaluating: 12/12 cases" in result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}
    header = next(line for line in result.stdout.splitlines() if "hit@1" in line).split()
    assert header == ["mode", "hit@1", "hit@3", "hit@5", "MRR@5", "nDCG@5", "p50", "ms", "p95", "ms"]
    assert {"vector", "bm25", "hybrid"} <= rows.keys()
    written = json.loads(saved.read_text(encoding="utf-8"))
    hybrid = next(m for m in written["modes"] if m["mode"] == "hybrid")
    assert rows["hybrid"][2] == f"{hybrid['hit_at']['5']:.3f}" and hybrid["hit_at"]["5"] >= 0.8
    assert len(hybrid["questions"]) == 12
    # `ragq job` shows an evaluation job's table too
    job_id = re.search(r"evaluation job ([0-9a-f]{32})", result.stderr).group(1)  # type: ignore[union-attr]
    shown = ragq(api, "job", job_id)
    assert shown.returncode == 0 and "evaluation job" in shown.stdout, shown.stderr
    assert any(line.split()[:4] == ["hybrid", *rows["hybrid"][:3]] for line in shown.stdout.splitlines())


def test_compare_shows_both_runs_and_the_difference(api: str, tmp_path: Path) -> None:
    runs = []
    for k in (1, 5):
        runs.append(tmp_path / f"k{k}.json")
        result = ragq(api, "eval", str(EVAL_SET), "-c", COLLECTION, "-k", str(k), "--json-out", str(runs[-1]))
        assert result.returncode == 0, result.stderr
    compared = ragq(api, "eval", "--compare", *map(str, runs))
    assert compared.returncode == 0, compared.stderr
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in runs)
    hit_a = next(m for m in a["modes"] if m["mode"] == "hybrid")["hit_at"]["1"]
    hit_b = next(m for m in b["modes"] if m["mode"] == "hybrid")["hit_at"]["1"]
    row = next(line.split() for line in compared.stdout.splitlines() if line.split()[:2] == ["hybrid", "hit@1"])
    assert row[2:] == [f"{hit_a:.3f}", f"{hit_b:.3f}", f"{hit_b - hit_a:+.3f}"]


def test_a_bad_set_is_one_line_naming_the_line(api: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "relevant": [{"document": "d", "text": "t"}]}\nnot json\n', encoding="utf-8")
    assert "line 2: not JSON" in one_line_error(ragq(api, "eval", str(bad), "-c", COLLECTION))
