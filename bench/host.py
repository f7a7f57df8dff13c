"""The machine a benchmark ran on, as its figures must say: cores, CPU model, system, and how fast a core was.

The same code has measured twice as fast on one host as on another (an Intel Xeon against an AMD EPYC, both
2 cores), and ±50% on one host from hour to hour, so a rate without the speed of the cores it ran on cannot be
compared with another. `core_speed_s` times a fixed pure-Python loop in the calling thread's CPU seconds: another
process on the core does not count, a slower or throttled core does. Call `machine()` first thing, before a bench
starts anything, as its figure is kept for the rest of the run.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from pathlib import Path

# Squares summed by the reference loop: about 0.4 CPU-s on the faster of the hosts above, 0.7-1.3 on the slower.
REFERENCE_LOOP = 10**7


def core_speed_s(repeats: int = 2) -> float:
    """CPU seconds the reference loop takes on this thread, the best of `repeats`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        sum(i * i for i in range(REFERENCE_LOOP))
        best = min(best, time.thread_time() - start)
    return best


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what the platform says elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    return model or platform.processor() or platform.machine() or "unknown CPU"


@functools.cache
def machine() -> str:
    """One line for a bench's output and its docs section, e.g. `2 cores (Intel(R) Xeon(R) Processor), Linux
    6.18.44, Python 3.11.7; reference loop (10,000,000 squares summed) 0.42 CPU-s` (measured at the first call)."""
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    speed = core_speed_s()
    loop = f"reference loop ({REFERENCE_LOOP:,} squares summed) {speed:.2f} CPU-s"
    return f"{os.cpu_count()} cores ({cpu_model()}), {system}; {loop}"
