"""Decode attention's split-K choice (:func:`generation_attention.best_splits`): the one-pass search picks
the same count as a scan over the candidates, and that count's time is the least of theirs."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pytest

from costmodel import load_hardware
from costmodel.kernels import generation_attention as gen

DEVICES = ("h100-sxm", "b200", "a100-80gb", "mi300x")


def _scan_best_splits(
    params: gen.Params,
    *,
    total_bytes: npt.ArrayLike,
    flop: npt.ArrayLike,
    ctas_unsplit: npt.ArrayLike,
    max_allowed: npt.ArrayLike,
    overhead: gen.Overhead,
) -> np.ndarray:
    """The reference: one candidate at a time, kept where strictly faster (the implementation before the
    one-pass search, at e1f2c5e)."""
    moved = np.asarray(total_bytes, dtype=np.float64)
    groups = np.asarray(ctas_unsplit, dtype=np.float64)
    top = np.asarray(max_allowed, dtype=np.float64)
    work = np.asarray(flop, dtype=np.float64)
    shape = np.broadcast(moved, groups, top).shape
    best = np.ones(shape)
    best_s = gen._time_at_splits(params, moved, work, groups, best, overhead)
    limit = float(np.max(top)) if top.size else 1.0
    counts = sorted(
        {float(c) for c in range(2, gen.EXHAUSTIVE_SPLITS + 1)}
        | {2.0**k for k in range(1, int(np.log2(max(limit, 1.0))) + 1)}
    )
    for count in [*counts, None]:
        candidate = np.broadcast_to(top if count is None else np.minimum(count, top), shape)
        t = gen._time_at_splits(params, moved, work, groups, candidate, overhead)
        best = np.where(t < best_s, candidate, best)
        best_s = np.minimum(t, best_s)
    return np.asarray(best, dtype=np.float64)


def _random_params(rng: np.random.Generator, device: str) -> gen.Params:
    """Parameters drawn over the fitter's bounds (log-uniform where they span decades)."""
    base = gen.default_params(load_hardware(device), "bf16")
    update: dict[str, float] = {}
    for name, (lo, hi) in gen.BOUNDS.items():
        if lo > 0 and hi / lo > 20:
            update[name] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        else:
            update[name] = float(rng.uniform(lo, hi))
    update["max_splits"] = float(rng.choice([1.0, 4.0, 16.0, 64.0, 100.0, 256.0]))
    update["split_min_tokens"] = float(rng.choice([16.0, 64.0, 256.0]))
    update["resident_ctas_per_sm"] = float(rng.choice([1.0, 2.0, 3.0, 8.0, 64.0]))
    if rng.random() < 0.3:  # some calls with the zero fixed costs a serving step uses
        update |= {"cta_overlap_fraction": 0.0, "cache_bytes": 0.0}
    return dataclasses.replace(base, **update)


def _random_case(rng: np.random.Generator, params: gen.Params) -> dict[str, object]:
    """A call as :func:`gen.stream_time_s` makes it: a grid of (batch, context) points, its arrays
    broadcast against each other the way the serving step's are (scalars, rows and columns)."""
    batch = rng.integers(1, 2048, size=(int(rng.integers(1, 6)), 1)).astype(np.float64)
    length = np.exp(rng.uniform(0.0, np.log(300_000.0), size=int(rng.integers(1, 30)))).round()
    heads = float(rng.choice([1.0, 2.0, 4.0, 8.0]))
    dims = float(rng.choice([64.0, 128.0, 256.0]))
    allowed = np.maximum(1.0, np.minimum(np.floor(length / params.split_min_tokens), params.max_splits))
    return dict(
        total_bytes=batch * length * heads * 2 * dims * 2.0,
        flop=batch * length * 4.0 * heads * dims * float(rng.choice([1.0, 8.0])),
        ctas_unsplit=batch * heads,
        max_allowed=allowed,
        overhead=gen.Overhead(
            np.asarray(params.cta_overhead_s + params.cta_overhead_per_dim_s * 2 * dims),
            batch * params.sequence_overhead_s,
        ),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_one_pass_search_picks_the_scans_split_count(device: str) -> None:
    """Identical split counts (and so identical times) to the candidate-by-candidate scan, over random
    parameters within the fitter's bounds and random (batch, context) grids."""
    rng = np.random.default_rng(sum(map(ord, device)))
    for _ in range(60):
        params = _random_params(rng, device)
        case = _random_case(rng, params)
        fast = gen.best_splits(params, **case)  # type: ignore[arg-type]
        slow = _scan_best_splits(params, **case)  # type: ignore[arg-type]
        assert fast.shape == slow.shape
        np.testing.assert_array_equal(fast, slow)


def test_chunked_search_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """A grid timed in several chunks gets the counts of one pass over it."""
    rng = np.random.default_rng(7)
    params = _random_params(rng, "h100-sxm")
    case = _random_case(rng, params)
    whole = gen.best_splits(params, **case)  # type: ignore[arg-type]
    monkeypatch.setattr(gen, "BEST_SPLITS_CHUNK_ELEMENTS", 50)
    np.testing.assert_array_equal(gen.best_splits(params, **case), whole)  # type: ignore[arg-type]


def test_best_split_is_an_allowed_candidate_with_the_least_time() -> None:
    """The chosen count is among the candidates, within 1 .. max_allowed, and no candidate is faster."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        params = _random_params(rng, "b200")
        case = _random_case(rng, params)
        best = gen.best_splits(params, **case)  # type: ignore[arg-type]
        top = np.broadcast_to(case["max_allowed"], best.shape)
        assert np.all((best >= 1.0) & (best <= top))
        args = (params, case["total_bytes"], case["flop"], case["ctas_unsplit"])
        chosen = gen._time_at_splits(*args, best, case["overhead"])  # type: ignore[arg-type]
        for candidate in gen.split_candidates(top):
            t = gen._time_at_splits(*args, candidate, case["overhead"])  # type: ignore[arg-type]
            assert np.all(chosen <= t)


def test_candidates_are_every_small_count_and_the_powers_of_two_up_to_the_cap() -> None:
    candidates = gen.split_candidates(np.array([1.0, 40.0, 256.0]))
    assert candidates.shape == (1 + 15 + 4 + 1, 3)  # 1; 2..16; 32, 64, 128, 256; the cap
    assert np.all(candidates[:, 0] == 1.0)  # one allowed chunk: every candidate is 1
    assert sorted(set(candidates[:, 1])) == [*range(1, 17), 32.0, 40.0]
    assert sorted(set(candidates[:, 2])) == [*range(1, 17), 32.0, 64.0, 128.0, 256.0]


def test_scalar_inputs_give_a_scalar_and_shapes_broadcast() -> None:
    params = gen.default_params(load_hardware("h100-sxm"), "bf16")
    one = gen.best_splits(params, total_bytes=1e6, ctas_unsplit=8.0, max_allowed=16.0)
    assert one.shape == ()
    grid = gen.best_splits(
        params, total_bytes=np.full((3, 1), 1e6), ctas_unsplit=np.array([1.0, 8.0]), max_allowed=16.0
    )
    assert grid.shape == (3, 2)


def test_an_undefined_time_ends_the_comparison_as_the_scan_does() -> None:
    """A NaN input (no physical call makes one) gives the scan's answer, not an arbitrary candidate."""
    rng = np.random.default_rng(3)
    params = _random_params(rng, "h100-sxm")
    case = _random_case(rng, params)
    moved = np.array(case["total_bytes"])  # (batch, context): the whole grid
    moved.flat[::3] = np.nan
    case["total_bytes"] = moved
    fast = gen.best_splits(params, **case)  # type: ignore[arg-type]
    np.testing.assert_array_equal(fast, _scan_best_splits(params, **case))  # type: ignore[arg-type]
