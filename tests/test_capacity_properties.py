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

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from costmodel.capacity import SLO, plan
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


def _no_more(fewer: pd.Series, more: pd.Series) -> None:
    """``fewer`` (the easier case) needs at most the replicas of ``more``, and is feasible where it is."""
    event(f"the harder case {'feasible' if more.feasible else 'infeasible'}")
    if more.feasible:
        assert fewer.feasible, fewer.reason
        assert fewer.replicas <= more.replicas


@SETTINGS
@given(**CASE, factor=st.floats(1.05, 4.0))
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
    _no_more(low, high)


@SETTINGS
@given(**CASE, looser=st.tuples(st.floats(1.0, 3.0), st.floats(1.0, 3.0)))
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
    _no_more(loose, tight)


@SETTINGS
@given(**CASE, speed=st.floats(1.1, 3.0))
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
    _no_more(fast, slow)
