"""shared/ops/gc_tuning.py, in a child interpreter: it changes the whole process's collector."""

from __future__ import annotations

import json
import subprocess
import sys

from harness.processes import ROOT

PROBE = """
import gc, json, sys
from shared.ops.gc_tuning import tune_gc
before = gc.get_threshold()
tune_gc(int(sys.argv[1]))
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def _probe(threshold: int) -> dict[str, list[int] | int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(threshold)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    seen = _probe(20_000)
    assert seen["after"] == [20_000, *seen["before"][1:]]  # type: ignore[index]
    frozen = seen["frozen"]
    assert isinstance(frozen, int) and frozen > 1000  # the modules start-up imported are out of the collector's walks


def test_zero_leaves_cpython_alone() -> None:
    seen = _probe(0)
    assert seen["after"] == seen["before"] and seen["frozen"] == 0
