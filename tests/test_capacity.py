"""The analytic serving model against the discrete-event simulator, and the capacity planner.

Oracle: :func:`costmodel.simulate.serve`, an iteration-by-iteration replay of the same scheduler, run
with fixed seeds; and the roofline pass :func:`costmodel.estimate.step_time_s` at zero load. The
tolerances are the ones ``docs/serving.md`` states for the range where the approximation claims to hold
(load <= 80 % of saturation, KV cache not binding); that file reports the errors near saturation too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from costmodel.capacity import SLO, analyze, plan
from costmodel.errors import CostmodelError
from costmodel.estimate import step_time_s
from costmodel.serving import Engine, Lengths, StepTable, Traffic
from costmodel.simulate import ServeResult, serve
from costmodel.specs import Workload

MODEL, HW = "llama-3-8b", "h100-sxm"
ENGINE = Engine.build(MODEL, HW, max_batch_size=64, max_batched_tokens=4096)
TRAFFIC = Traffic(1.0, Lengths.lognormal(512, 0.8, max_tokens=4096), Lengths.geometric(128, max_tokens=2048))
LOADS = (0.3, 0.6, 0.8)
PERCENTILE_LOADS = (0.3, 0.5, 0.7)  # where the p99 TTFT claim holds; docs/serving.md shows 0.8 and up
TOL_MEAN, TOL_P50_P90, TOL_P99 = 0.20, 0.15, 0.30


@pytest.fixture(scope="module")
def saturation() -> float:
    return float(analyze(ENGINE, TRAFFIC).max_rate_per_s)


@pytest.fixture(scope="module")
def runs(saturation: float) -> dict[float, ServeResult]:
    table = StepTable(ENGINE)
    return {
        rho: serve(ENGINE, TRAFFIC.with_rate(rho * saturation), n_requests=3000, seed=7, table=table)
        for rho in sorted({*LOADS, *PERCENTILE_LOADS, 1.3})
    }


@pytest.mark.parametrize("rho", LOADS)
def test_throughput_and_batch_match_the_simulator(rho: float, saturation: float, runs: dict) -> None:
    sim = runs[rho]
    m = analyze(ENGINE, TRAFFIC, rate_per_s=rho * saturation)
    assert bool(m.stable)
    assert sim.output_tokens_per_s == pytest.approx(float(m.output_tokens_per_s), rel=0.05)
    assert sim.mean_batch_size == pytest.approx(float(m.mean_batch_size), rel=0.10)


def test_saturated_throughput_matches_the_simulator(saturation: float, runs: dict) -> None:
    over = runs[1.3]  # 30 % more arrivals than the engine can take: it runs flat out
    m = analyze(ENGINE, TRAFFIC, rate_per_s=1.3 * saturation)
    assert not bool(m.stable)
    assert np.all(np.isinf(m.ttft_s))
    assert over.output_tokens_per_s == pytest.approx(float(m.output_tokens_per_s), rel=0.05)
    assert over.mean_batch_size == pytest.approx(float(m.max_batch_size), rel=0.05)  # every slot busy


@pytest.mark.parametrize("rho", PERCENTILE_LOADS)
@pytest.mark.parametrize("metric", ["ttft", "tpot", "e2e"])
def test_latency_distribution_matches_the_simulator(
    rho: float, metric: str, saturation: float, runs: dict
) -> None:
    sim = runs[rho]
    m = analyze(ENGINE, TRAFFIC, rate_per_s=rho * saturation, quantiles=(0.5, 0.9, 0.99))
    simulated = getattr(sim, f"{metric}_s")
    assert float(getattr(m, f"{metric}_mean_s")) == pytest.approx(simulated.mean(), rel=TOL_MEAN)
    for q, tol in ((0.5, TOL_P50_P90), (0.9, TOL_P50_P90), (0.99, TOL_P99)):
        assert float(m.quantile(metric, q)) == pytest.approx(np.quantile(simulated, q), rel=tol), q


def test_zero_load_limit_is_the_roofline() -> None:
    traffic = Traffic(1e-4, Lengths.fixed(1000), Lengths.fixed(101))
    m = analyze(ENGINE, traffic)
    w = Workload()
    prefill = float(step_time_s(MODEL, HW, w, batch_size=1, new_tokens=1000, past_tokens=0, logits="last"))
    # decode steps j = 1..100 attend to 1000 + j - 1 past tokens: mean 1049.5 (affine in the context)
    decode = float(step_time_s(MODEL, HW, w, batch_size=1, new_tokens=1, past_tokens=1049.5))
    assert float(m.tpot_mean_s) == pytest.approx(decode, rel=1e-3)
    assert float(m.quantile("tpot", 0.5)) == pytest.approx(decode, rel=1e-3)
    # an idle engine: the prompt's pass (the model adds one decode row's linear work: < 1 %)
    assert float(m.quantile("ttft", 0.5)) == pytest.approx(prefill, rel=0.02)


def test_vectorised_over_rates_and_batch_limits_and_monotone() -> None:
    rates = np.array([[2.0], [10.0], [20.0], [30.0]])
    m = analyze(ENGINE, TRAFFIC, rate_per_s=rates, max_batch_size=np.array([16, 32, 64]), samples=2048)
    assert m.ttft_s.shape == (4, 3, 3)
    assert m.stable.shape == (4, 3)
    both = m.stable[1:] & m.stable[:-1]
    # more load, never less latency (common random numbers keep the quadrature monotone too)
    for metric in ("ttft_mean_s", "tpot_mean_s", "e2e_mean_s"):
        v = np.where(m.stable, getattr(m, metric), 0.0)  # unstable points are inf; compare stable pairs
        assert np.all(np.where(both, np.diff(v, axis=0), 0.0) >= -1e-12), metric
    q = np.where(m.stable[..., None], m.ttft_s, 0.0)
    assert np.all(np.where(both[..., None], np.diff(q, axis=0), 0.0) >= -1e-12)
    # a larger batch limit never lowers the saturation rate
    assert np.all(np.diff(m.max_rate_per_s[0]) >= 0)
    single = analyze(ENGINE, TRAFFIC, rate_per_s=10.0, max_batch_size=32, samples=2048)
    np.testing.assert_allclose(single.ttft_s, m.ttft_s[1, 1])


def test_bad_arguments() -> None:
    with pytest.raises(CostmodelError):
        analyze(ENGINE, TRAFFIC, max_batch_size=1000)
    with pytest.raises(CostmodelError):
        analyze(ENGINE, TRAFFIC, rate_per_s=-1.0)
    with pytest.raises(CostmodelError):
        SLO(ttft_s=-1.0)
    with pytest.raises(CostmodelError):
        SLO(quantile=1.0)


# ----------------------------------------------------------------------------------------------------
# The planner
# ----------------------------------------------------------------------------------------------------

PLAN_TRAFFIC = Traffic(
    20.0, Lengths.lognormal(1024, 0.8, max_tokens=6000), Lengths.geometric(256, max_tokens=2048)
)
PLAN_SLO = SLO(ttft_s=0.5, tpot_s=0.05)


@pytest.fixture(scope="module")
def frame():  # type: ignore[no-untyped-def]
    return plan(MODEL, ["h100-sxm", "a100-80gb", "l40s", "l4"], PLAN_TRAFFIC, PLAN_SLO, tp=(1, 2))


def test_plan_ranks_by_cost_and_explains_infeasible(frame) -> None:  # type: ignore[no-untyped-def]
    feasible = frame[frame.feasible]
    assert len(feasible) >= 4
    assert list(feasible.usd_per_hour) == sorted(feasible.usd_per_hour)
    assert feasible.index.max() < frame[~frame.feasible].index.min()  # feasible rows first
    l4 = frame[(frame.hardware == "l4") & (frame.tp == 1)].iloc[0]
    assert not l4.feasible
    assert "SLO" in l4.reason  # a 6000-token prompt takes > 0.5 s to prefill on an L4
    # the cost columns agree with the price and the traffic
    row = feasible.iloc[0]
    out_per_hour = 20.0 * PLAN_TRAFFIC.output.mean * 3600
    assert row.usd_per_million_output_tokens == pytest.approx(row.usd_per_hour / out_per_hour * 1e6)


def test_plan_picks_the_fewest_replicas(frame) -> None:  # type: ignore[no-untyped-def]
    for _, row in frame[frame.feasible].iterrows():
        engine = Engine.build(MODEL, row.hardware, tp=int(row.tp), max_batch_size=256)
        at = analyze(
            engine,
            PLAN_TRAFFIC,
            rate_per_s=20.0 / row.replicas,
            max_batch_size=int(row.max_batch_size),
            samples=512,
        )
        assert bool(at.stable)
        assert float(at.quantile("ttft", 0.99)) <= PLAN_SLO.ttft_s
        assert float(at.quantile("tpot", 0.99)) <= PLAN_SLO.tpot_s
        assert float(at.utilization) <= 0.85 + 1e-9
        if row.replicas > 1:  # one fewer replica misses the SLO or the utilisation cap, at every batch limit
            fewer = analyze(
                engine,
                PLAN_TRAFFIC,
                rate_per_s=20.0 / (row.replicas - 1),
                max_batch_size=np.array([8, 16, 32, 64, 128, 256]),
                samples=512,
            )
            meets = (
                fewer.stable
                & (fewer.utilization <= 0.85)
                & (fewer.quantile("ttft", 0.99) <= PLAN_SLO.ttft_s)
                & (fewer.quantile("tpot", 0.99) <= PLAN_SLO.tpot_s)
            )
            assert not meets.any(), row.hardware


def test_plan_finds_the_fewest_replicas_far_above_the_saturation_bound() -> None:
    # a TTFT objective close to the prompt's own prefill time: the load per replica must be tiny, so the
    # answer lies far above ceil(rate / max_rate) and the search crosses several brackets and rounds
    traffic = Traffic(5.0, Lengths.fixed(2048), Lengths.geometric(128, max_tokens=1024))
    slo = SLO(ttft_s=0.3, tpot_s=0.03)
    limits = np.array([4, 8, 16, 64])
    row = plan(
        "llama-3-70b", ["h200"], traffic, slo, tp=(2,), batch_limits=tuple(limits), allocation="contiguous"
    ).iloc[0]
    assert row.feasible
    engine = Engine.build("llama-3-70b", "h200", tp=2, max_batch_size=64, allocation="contiguous")
    r = int(row.replicas)
    at = analyze(
        engine, traffic, rate_per_s=5.0 / np.array([[r], [r - 1]]), max_batch_size=limits, samples=512
    )
    meets = (
        at.stable
        & (at.utilization <= 0.85)
        & (at.quantile("ttft", 0.99) <= slo.ttft_s)
        & (at.quantile("tpot", 0.99) <= slo.tpot_s)
    )
    assert r > 2 * np.ceil(5.0 / (0.85 * at.max_rate_per_s[0])).max()  # far above the saturation bound
    assert meets[0, list(limits).index(int(row.max_batch_size))]
    assert not meets[1].any()  # one fewer replica misses at every batch limit


def test_plan_rows_do_not_depend_on_the_other_candidates(frame) -> None:  # type: ignore[no-untyped-def]
    # the dashboard plans one candidate at a time and shows the rows of a plan over all of them
    alone = plan(MODEL, ["l40s"], PLAN_TRAFFIC, PLAN_SLO, tp=(1, 2))
    together = frame[frame.hardware == "l40s"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, together, check_dtype=False, check_exact=False, rtol=1e-12)


def test_looser_slo_never_needs_more_gpus(frame) -> None:  # type: ignore[no-untyped-def]
    loose = plan(
        MODEL, ["h100-sxm", "a100-80gb", "l40s", "l4"], PLAN_TRAFFIC, SLO(ttft_s=5.0, tpot_s=0.5), tp=(1, 2)
    )
    merged = frame.merge(loose, on=["hardware", "tp"], suffixes=("", "_loose"))
    both = merged[merged.feasible & merged.feasible_loose]
    assert np.all(both.gpus_loose <= both.gpus)
    assert merged.feasible_loose.sum() >= merged.feasible.sum()


def test_planned_deployment_meets_the_slo_in_simulation(frame) -> None:  # type: ignore[no-untyped-def]
    row = frame[frame.feasible & (frame.hardware == "h100-sxm") & (frame.tp == 1)].iloc[0]
    engine = Engine.build(MODEL, HW, max_batch_size=int(row.max_batch_size))
    sim = serve(engine, PLAN_TRAFFIC.with_rate(20.0 / row.replicas), n_requests=2500, seed=3)
    # the plan leaves the model's p99 under the SLO; the simulated p99 stays within the stated tolerance of it
    assert sim.quantile("ttft", 0.99) <= PLAN_SLO.ttft_s * (1 + TOL_P99)
    assert sim.quantile("tpot", 0.99) <= PLAN_SLO.tpot_s * (1 + TOL_P99)


def test_plan_keeps_going_past_a_candidate_that_cannot_run_and_keeps_its_columns() -> None:
    from costmodel.capacity import SLO, plan
    from costmodel.serving import Lengths, Traffic

    traffic = Traffic(2.0, Lengths.fixed(256), Lengths.fixed(32))
    frame = plan("llama-3-8b", ["cpu", "h100-sxm"], traffic, SLO(ttft_s=0.5, tpot_s=0.05), tp=(1, 2))
    cpu_tp2 = frame[(frame.hardware == "cpu") & (frame.tp == 2)].iloc[0]
    assert not cpu_tp2.feasible
    assert "intra-node bandwidth" in cpu_tp2.reason  # the CPU profile has no link: TP 2 cannot run
    assert frame[frame.hardware == "h100-sxm"].feasible.all()
    none = plan("llama-3-8b", ["cpu"], traffic, SLO(ttft_s=1e-4, tpot_s=1e-5), tp=(1,))
    assert list(none.columns) == list(frame.columns)
    assert not none.feasible.any()


def test_plan_does_not_trust_the_coarse_pass_as_a_lower_bound() -> None:
    # tight SLOs on an H100: the few-point coarse pass fails replica counts that pass with the full
    # quadrature; the plan must still find the fewest (it once answered 11 where 3 meet the SLO)
    traffic = Traffic(
        20.0, Lengths.lognormal(1024, 0.8, max_tokens=6000), Lengths.geometric(256, max_tokens=2048)
    )
    slo = SLO(ttft_s=0.15, tpot_s=0.015)
    row = plan("llama-3-8b", ["h100-sxm"], traffic, slo, tp=(1,)).iloc[0]
    assert row.feasible
    engine = Engine.build("llama-3-8b", "h100-sxm", max_batch_size=256)
    limits = np.array([8, 16, 32, 64, 128, 256])
    r = int(row.replicas)
    at = analyze(
        engine, traffic, rate_per_s=20.0 / np.array([[r], [r - 1]]), max_batch_size=limits, samples=512
    )
    meets = (
        at.stable
        & (at.utilization <= 0.85)
        & (at.quantile("ttft", 0.99) <= slo.ttft_s)
        & (at.quantile("tpot", 0.99) <= slo.tpot_s)
    )
    assert meets[0].any()
    assert not meets[1].any()
