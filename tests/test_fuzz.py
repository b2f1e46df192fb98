"""The fuzz suite (issue 17, "Done means"): drawn inputs over the public API, the profile loaders, the CLI
and the dashboard's link parameters. Valid input gives finite, non-negative, consistent results; invalid
input gives costmodel's own error in one line naming the field, within a time bound; never a traceback,
never a result for invalid input. Bounded: a fixed number of examples, derandomized (the same cases on
every run, so CI is reproducible); ``benchmarks/bench_fuzz.py`` runs many more and prints the counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import fuzzing
import pytest
from hypothesis import HealthCheck, given, settings


def bounded(examples: int) -> settings:
    return settings(BASE, max_examples=examples)


BASE = settings(
    deadline=None,  # the time bound is fuzzing.TIME_BOUND_S, checked per call
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
seen: dict[str, Counter[str]] = {}


def _count(kind: str, outcome: str) -> None:
    seen.setdefault(kind, Counter())[outcome] += 1


@bounded(80)
@given(fuzzing.api_inputs)
def test_public_api(case: dict[str, Any]) -> None:
    _count("api", fuzzing.run_api(case))


@bounded(40)
@given(fuzzing.valid_api_inputs)
def test_public_api_on_valid_input_always_gives_a_checked_result(case: dict[str, Any]) -> None:
    assert fuzzing.run_api(case) == "ok"


@bounded(150)
@given(fuzzing.mutations)
def test_profile_loader(mutation: Any) -> None:
    _count("config", fuzzing.run_config(mutation))


@bounded(40)
@given(fuzzing.cli_args)
def test_cli(args: Any) -> None:
    _count("cli", fuzzing.run_cli(args))


@bounded(150)
@given(fuzzing.queries)
def test_dashboard_link_parameters(query: dict[str, str]) -> None:
    _count("link", fuzzing.run_scenario(query))


@bounded(12)  # each case runs the dashboard's Memory page (about a second)
@given(fuzzing.page_queries)
def test_dashboard_opened_on_a_link(query: dict[str, str]) -> None:
    _count("page", fuzzing.run_dashboard_link(query))


@pytest.mark.parametrize("kind", ["api", "config", "cli", "link", "page"])
def test_the_fuzz_reached_both_outcomes(kind: str) -> None:
    """A fuzz that only ever refuses (or only ever succeeds) tests one side: both must occur."""
    if kind not in seen:
        pytest.skip("runs after the fuzz tests of the same session")
    assert seen[kind]["ok"] > 0, seen[kind]
    assert seen[kind]["refused"] > 0, seen[kind]
