"""Benchmark: the fuzz suite at scale, with counts (issue 17, "Done means").

Run: ``.venv/bin/python benchmarks/bench_fuzz.py [--examples N]``. Draws N inputs (default 500) per
family from the strategies of ``tests/fuzzing.py`` (public API, mutated config.json, CLI, dashboard link
parameters), runs each as a user would, and prints how many gave a checked result, how many were
refused with costmodel's own one-line error, how many were failures (a traceback, a non-finite or
negative result, a message that is not one line, a call over the time bound: there should be none), the
slowest call and the peak memory Python allocated during one call (tracemalloc, numpy included).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's costmodel, and the fuzz cases

import fuzzing  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.strategies import SearchStrategy  # noqa: E402


def run(name: str, strategy: SearchStrategy[Any], case: Callable[[Any], str], examples: int) -> None:
    outcomes: Counter[str] = Counter()
    slowest = 0.0
    peak = 0
    failures: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[__import__("hypothesis").Phase.generate],  # count, do not shrink
    )
    @given(strategy)
    def body(drawn: Any) -> None:
        nonlocal slowest, peak
        tracemalloc.start()
        start = time.monotonic()
        try:
            outcomes[case(drawn)] += 1
        except fuzzing.FuzzFailureError as e:
            outcomes["failure"] += 1
            failures.append(str(e)[:300])
        finally:
            slowest = max(slowest, time.monotonic() - start)
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()

    start = time.monotonic()
    body()
    total = sum(outcomes.values())
    print(
        f"{name:<7} {total:>6,} cases in {time.monotonic() - start:6.1f} s: {outcomes['ok']:>6,} ok, "
        f"{outcomes['refused']:>6,} refused, {outcomes['failure']:>3} failures; slowest call "
        f"{slowest * 1e3:,.0f} ms, peak allocation {peak / 2**20:,.1f} MiB"
    )
    for failure in failures[:5]:
        print(f"        failure: {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="cases per family")
    n = parser.parse_args().examples
    run("api", fuzzing.api_inputs, fuzzing.run_api, n)
    run("valid", fuzzing.valid_api_inputs, fuzzing.run_api, n)
    run("config", fuzzing.mutations, fuzzing.run_config, n)
    run("cli", fuzzing.cli_args, fuzzing.run_cli, max(n // 5, 1))  # each CLI case runs a whole command
    run("link", fuzzing.queries, fuzzing.run_scenario, n)
    run("page", fuzzing.page_queries, fuzzing.run_dashboard_link, max(n // 10, 1))  # each runs the dashboard


if __name__ == "__main__":
    main()
