"""Properties of the capacity planner (:func:`costmodel.capacity.plan`, with vLLM's costs, its default) that
hold by construction, checked on random cases.

Oracle: monotonicity. A candidate's pass/fail is monotone in the load of one replica (every latency
quantile and the utilisation are non-decreasing in its arrival rate, ``docs/serving.md``, the planner's
Search), and the planner returns the fewest replicas exactly. So more traffic can only need as many
replicas or more; a looser objective can only need as many or fewer; and a device whose every kernel is
at least as fast (the same profile with a higher memory bandwidth and higher peaks, the engine's fitted
host costs unchanged) can only need as many or fewer.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from costmodel.capacity import SLO, VALIDATED_UTILIZATION, candidate_engine, meets_slo, plan
from costmodel.registry import load_hardware
from costmodel.serving import Lengths, Traffic

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CASE = {
    "model": st.sampled_from(["llama-3-8b", "qwen2.5-7b", "llama-2-13b"]),
    "hardware": st.sampled_from(["h100-sxm", "a100-80gb", "l40s"]),
    "rate": st.floats(0.5, 30.0),
    "prompt_mean": st.floats(100.0, 2000.0),
    "output_mean": st.floats(16.0, 300.0),
    "ttft_s": st.floats(0.15, 3.0),
    "tpot_s": st.floats(0.015, 0.1),
}


def _row(
    model: str, hardware: object, rate: float, prompt_mean: float, output_mean: float, slo: SLO
) -> pd.Series:
    traffic = Traffic(
        rate,
        Lengths.lognormal(prompt_mean, 0.8, max_tokens=2048),
        Lengths.geometric(output_mean, max_tokens=1024),
    )
    return plan(model, [hardware], traffic, slo, tp=(1,)).iloc[0]  # type: ignore[list-item]


def _known(model: str, hardware: object, rate: float, prompt_mean: float, output_mean: float) -> bool:
    """The fixed example (:data:`KNOWN`), whose harder case must be feasible (asserted, not assumed)."""
    return (model, hardware, rate, prompt_mean, output_mean) == tuple(KNOWN.values())[:5]


def _no_more(fewer: pd.Series, more: pd.Series, known: bool) -> None:
    """``fewer`` (the easier case) needs at most the replicas of ``more``, and is feasible where it is.
    Only a feasible harder case says anything (a planner calling every case infeasible would otherwise
    pass): an infeasible one is rejected as an example, and each test has a fixed example known to be
    feasible (the harder case at 4-7 replicas)."""
    assert more.feasible or not known, more.reason
    assume(more.feasible)
    assert fewer.feasible, fewer.reason
    assert fewer.replicas <= more.replicas


# a case every test's harder variant finds feasible (Llama-3-8B on H100, 20 requests/s, 4-7 replicas)
KNOWN = {
    "model": "llama-3-8b",
    "hardware": "h100-sxm",
    "rate": 20.0,
    "prompt_mean": 1000.0,
    "output_mean": 200.0,
    "ttft_s": 1.0,
    "tpot_s": 0.05,
}


@SETTINGS
@given(**CASE, factor=st.floats(1.05, 4.0))
@example(**KNOWN, factor=1.5)
def test_more_traffic_never_needs_fewer_replicas(
    model: str,
    hardware: str,
    rate: float,
    prompt_mean: float,
    output_mean: float,
    ttft_s: float,
    tpot_s: float,
    factor: float,
) -> None:
    slo = SLO(ttft_s=ttft_s, tpot_s=tpot_s)
    low = _row(model, hardware, rate, prompt_mean, output_mean, slo)
    high = _row(model, hardware, rate * factor, prompt_mean, output_mean, slo)
    _no_more(low, high, _known(model, hardware, rate, prompt_mean, output_mean))


@SETTINGS
@given(**CASE, looser=st.tuples(st.floats(1.0, 3.0), st.floats(1.0, 3.0)))
@example(**KNOWN, looser=(1.5, 1.5))
def test_a_looser_slo_never_needs_more_replicas(
    model: str,
    hardware: str,
    rate: float,
    prompt_mean: float,
    output_mean: float,
    ttft_s: float,
    tpot_s: float,
    looser: tuple[float, float],
) -> None:
    tight = _row(model, hardware, rate, prompt_mean, output_mean, SLO(ttft_s=ttft_s, tpot_s=tpot_s))
    loose = _row(
        model,
        hardware,
        rate,
        prompt_mean,
        output_mean,
        SLO(ttft_s=ttft_s * looser[0], tpot_s=tpot_s * looser[1]),
    )
    _no_more(loose, tight, _known(model, hardware, rate, prompt_mean, output_mean))


@SETTINGS
@given(**CASE, speed=st.floats(1.1, 3.0))
@example(**KNOWN, speed=1.5)
def test_a_faster_device_never_needs_more_replicas(
    model: str,
    hardware: str,
    rate: float,
    prompt_mean: float,
    output_mean: float,
    ttft_s: float,
    tpot_s: float,
    speed: float,
) -> None:
    hw = load_hardware(hardware)
    sheet = hw.datasheet
    peaks = {
        k: v.model_copy(update={"value": v.value * speed}) for k, v in sheet.peak_dense_tflop_per_s.items()
    }
    bandwidth = sheet.memory_bandwidth_tb_per_s
    faster = hw.model_copy(
        update={
            "datasheet": sheet.model_copy(
                update={
                    "peak_dense_tflop_per_s": peaks,
                    "memory_bandwidth_tb_per_s": bandwidth.model_copy(
                        update={"value": bandwidth.value * speed}
                    ),
                }
            )
        }
    )
    slo = SLO(ttft_s=ttft_s, tpot_s=tpot_s)
    slow = _row(model, hw, rate, prompt_mean, output_mean, slo)
    fast = _row(model, faster, rate, prompt_mean, output_mean, slo)
    _no_more(fast, slow, _known(model, hardware, rate, prompt_mean, output_mean))


@SETTINGS
@given(**CASE)
@example(**KNOWN)
def test_the_answer_passes_the_criterion_and_one_fewer_replica_does_not(
    model: str,
    hardware: str,
    rate: float,
    prompt_mean: float,
    output_mean: float,
    ttft_s: float,
    tpot_s: float,
) -> None:
    """A real oracle, not a comparison of two plans: the planner's criterion (:func:`meets_slo`, each batch
    limit on its own launch) holds at the answer r for some limit and at r - 1 for none (minimality), and
    r is at least the utilisation bound ceil(rate / (max_utilization x the saturation rate)) at the
    chosen limit. Fails under a planner that calls every case infeasible, or whose count is off by one."""
    slo = SLO(ttft_s=ttft_s, tpot_s=tpot_s)
    traffic = Traffic(
        rate,
        Lengths.lognormal(prompt_mean, 0.8, max_tokens=2048),
        Lengths.geometric(output_mean, max_tokens=1024),
    )
    row = plan(model, [hardware], traffic, slo, tp=(1,)).iloc[0]
    assert row.feasible or not _known(model, hardware, rate, prompt_mean, output_mean), row.reason
    assume(row.feasible)
    assert not row.confirmed_by_simulation  # the criterion alone set r (below the validated load)
    r = int(row.replicas)
    passing = meets_slo(candidate_engine(model, hardware, tp=1), traffic, slo, replicas=[r, max(r - 1, 1)])
    assert passing[0].any()
    assert r == 1 or not passing[1].any()
    bound = math.ceil(rate / (VALIDATED_UTILIZATION * row.max_rate_per_replica_per_s) - 1e-9)
    assert r >= bound
    assert np.isclose(row.utilization, rate / r / row.max_rate_per_replica_per_s)
