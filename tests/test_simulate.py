"""The simulators: FCFS queues against their closed forms, the engine against independent timings.

Oracles: M/M/1 and M/M/c mean waits (Kleinrock 1975 Vol. 1 §3.2, §3.5; Erlang C summed here in
fractions), each inside a 99.9 % batch-means confidence interval of the simulated mean; a brute-force
Lindley loop; a single request's latency from :func:`costmodel.estimate.estimate` (prefill pass plus the
exact closed-form decode sum), which shares no code with the simulator's iteration table.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from costmodel.errors import CostmodelError
from costmodel.estimate import estimate
from costmodel.serving import Engine, Lengths, StepTable, Traffic, load_trace
from costmodel.simulate import batch_means_ci, fcfs_waits, serve
from costmodel.specs import Workload
from tests.conftest import DATA

MODEL, HW = "llama-3-8b", "h100-sxm"


def erlang_c_fraction(c: int, a: Fraction) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return float(top / (sum(a**k / math.factorial(k) for k in range(c)) + top))


@pytest.mark.parametrize(("lam", "mu", "c", "n"), [(0.7, 1.0, 1, 400_000), (2.4, 1.0, 3, 400_000)])
def test_simulated_mm_c_mean_wait_within_its_confidence_interval(
    lam: float, mu: float, c: int, n: int
) -> None:
    rng = np.random.default_rng(11)
    arrival = np.cumsum(rng.exponential(1 / lam, n))
    waits = fcfs_waits(arrival, rng.exponential(1 / mu, n), c)[n // 10 :]  # drop the empty start
    mean, half = batch_means_ci(waits, batches=20)
    expected = erlang_c_fraction(c, Fraction(lam / mu).limit_denominator()) / (c * mu - lam)
    assert abs(mean - expected) <= half, (mean, half, expected)
    assert half < 0.1 * expected  # the interval is tight enough to mean something


def test_lindley_matches_a_brute_force_loop() -> None:
    rng = np.random.default_rng(5)
    a = np.cumsum(rng.exponential(1.0, 2000))
    s = rng.exponential(0.9, 2000)
    w, free = [], 0.0
    for ai, si in zip(a, s, strict=True):
        start = max(ai, free)
        w.append(start - ai)
        free = start + si
    np.testing.assert_allclose(fcfs_waits(a, s, 1), w, atol=1e-9)
    np.testing.assert_allclose(fcfs_waits(a, s, 2)[:1], [0.0])


def test_fcfs_bad_input() -> None:
    with pytest.raises(CostmodelError):
        fcfs_waits([1.0, 0.5], [1.0, 1.0])
    with pytest.raises(CostmodelError):
        fcfs_waits([0.0], [1.0], 0)


def test_single_request_equals_the_static_estimate() -> None:
    engine = Engine.build(MODEL, HW, max_batch_size=8, max_batched_tokens=2048)
    traffic = Traffic(0.001, Lengths.fixed(1000), Lengths.fixed(200))
    r = serve(engine, traffic, n_requests=3, warmup_fraction=0.0)  # ~1000 s apart: always alone
    ref = estimate(MODEL, HW, Workload(1, 1000, 200))
    np.testing.assert_allclose(r.ttft_s, float(ref.ttft_s), rtol=5e-3)
    np.testing.assert_allclose(r.e2e_s, float(ref.e2e_s), rtol=5e-3)
    np.testing.assert_allclose(r.tpot_s, float(ref.tpot_s), rtol=5e-3)


def test_conservation_and_ordering_at_light_load() -> None:
    engine = Engine.build(MODEL, HW, max_batch_size=32, max_batched_tokens=2048)
    traffic = Traffic(
        5.0, Lengths.lognormal(300, 0.7, max_tokens=3000), Lengths.geometric(64, max_tokens=1000)
    )
    r = serve(engine, traffic, n_requests=400, seed=3)
    assert r.completed_fraction == 1.0
    assert np.all(np.isfinite(r.finish_s))
    assert np.all(r.first_token_s >= r.arrival_s)
    assert np.all(r.finish_s >= r.first_token_s)
    assert r.preemptions.sum() == 0
    assert np.all(r.e2e_s >= r.ttft_s)
    again = serve(engine, traffic, n_requests=400, seed=3)  # deterministic for a seed
    np.testing.assert_array_equal(again.finish_s, r.finish_s)


def test_trace_replay_scales_arrival_times() -> None:
    trace = load_trace(DATA / "traces" / "small.csv")
    engine = Engine.build(MODEL, HW, max_batch_size=16, max_batched_tokens=2048)
    r = serve(engine, Traffic.from_trace(trace, rate_per_s=2 * trace.rate_per_s), warmup_fraction=0.0)
    np.testing.assert_allclose(r.arrival_s, (trace.arrival_s - trace.arrival_s[0]) / 2)
    np.testing.assert_array_equal(r.output_tokens, trace.output_tokens)
    assert r.completed_fraction == 1.0


def test_tight_kv_memory_preempts_and_paged_beats_contiguous() -> None:
    # 22 % of 80 GiB leaves room for about 20,000 tokens of KV next to the 16 GB of weights
    kw = dict(max_batch_size=64, max_batched_tokens=2048, usable_fraction=0.22, max_len=4096)
    paged = Engine.build(MODEL, HW, allocation="paged", **kw)
    contiguous = Engine.build(MODEL, HW, allocation="contiguous", **kw)
    traffic = Traffic(60.0, Lengths.fixed(400), Lengths.geometric(200, max_tokens=2000))
    rp = serve(paged, traffic, n_requests=600, seed=1)
    rc = serve(contiguous, traffic, n_requests=600, seed=1)
    assert rp.preemptions.sum() > 0  # paged admits optimistically, and sometimes has to take back
    assert rc.preemptions.sum() == 0  # contiguous reserves the worst case up front
    assert rp.mean_batch_size > 2 * rc.mean_batch_size
    assert rp.output_tokens_per_s > 1.5 * rc.output_tokens_per_s
    finished = np.isfinite(rp.finish_s)
    np.testing.assert_array_less(0, rp.output_tokens[finished])


def test_request_longer_than_the_engine_allows() -> None:
    engine = Engine.build(MODEL, HW, max_batch_size=8, max_batched_tokens=1024, max_len=1000)
    with pytest.raises(CostmodelError, match="max_len"):
        serve(engine, Traffic(1.0, Lengths.fixed(1200), Lengths.fixed(10)), n_requests=5)
    # outputs are capped at max_len - prompt, as a max-tokens limit does
    r = serve(
        engine, Traffic(1.0, Lengths.fixed(900), Lengths.fixed(500)), n_requests=5, table=StepTable(engine)
    )
    np.testing.assert_array_equal(r.output_tokens, 100)
