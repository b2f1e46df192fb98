"""The one timing helper the benchmarks share: the median wall time of repeated calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_s(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds per call of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def median_cpu_s(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU seconds of this process per call of ``fn()`` over ``repeats`` calls: on a machine
    shared with other jobs, the work itself (the wall time of an idle machine), without the waits for a
    core that the wall clock counts."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)
