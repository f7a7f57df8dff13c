"""The machine line every bench prints and writes beside its figures (bench/host.py)."""

from __future__ import annotations

import os
import re

import pytest

from bench import host


def test_the_machine_line_names_cores_cpu_python_and_the_reference_loops_cpu_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(host, "REFERENCE_LOOP", 10_000)  # the real loop takes 0.4-1.3 s; its figure is what matters
    host.machine.cache_clear()
    try:
        line = host.machine()
        assert line is host.machine()  # measured once per run, at the first call
    finally:
        host.machine.cache_clear()
    assert line.startswith(f"{os.cpu_count()} cores ({host.cpu_model()}), ")
    assert "Python 3." in line
    assert re.fullmatch(r".*; reference loop \(10,000 squares summed\) \d+\.\d\d CPU-s", line), line
    assert host.cpu_model() and host.core_speed_s(repeats=1) >= 0
