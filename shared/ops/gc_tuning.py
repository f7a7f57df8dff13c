"""Garbage collection for a long-running server: what start-up built is frozen, young collections are rarer.

CPython collects its youngest generation every 700 net allocations and, every tenth and hundredth time, the
older ones, walking every object they hold. A process streaming hundreds of answers at once allocates many
short-lived objects per event, and a native profile of the API at N = 500 put the collector at about a fifth
of its CPU (docs/benchmarks.md). `gc.freeze()` moves everything start-up built (modules, the app, the models)
out of the collector's walks for good, and a first threshold of GC_THRESHOLD allocations makes young
collections rarer. Cycles are still collected; 0 leaves CPython's settings alone.
"""

from __future__ import annotations

import gc


def tune_gc(threshold: int) -> None:
    """Freeze what exists now and collect the youngest generation every `threshold` allocations (0: untouched)."""
    if threshold <= 0:
        return
    gc.collect()  # start-up's own garbage is freed, not frozen
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
