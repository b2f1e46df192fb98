"""The Poisson-traffic engine (:class:`costmodel.serving.Engine`) with a named serving engine's fitted costs
beyond the kernels: its iterations and first tokens in the analytic model, the simulator and the planner.

Oracles: the kernels' own step time plus the fitted terms summed by hand (per iteration, per layer, per
eager prompt layer, per first token); the kernels-only engine, which ``LoopParams()`` must reproduce
exactly; and the ratio of decode step times, which sets the replica count where the answer is
throughput-bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from costmodel.capacity import SLO, analyze, plan
from costmodel.closed_loop import LoopParams, loop_parts
from costmodel.errors import CostmodelError
from costmodel.loop_params import engine_params
from costmodel.serving import Engine, Lengths, StepTable, Traffic
from costmodel.simulate import serve

MODEL, HW = "llama-3-8b", "h100-sxm"
LAYERS = 32  # Llama-3-8B
KERNELS = Engine.build(MODEL, HW, max_batch_size=64, max_batched_tokens=4096)
TRAFFIC = Traffic(4.0, Lengths.lognormal(512, 0.8, max_tokens=4096), Lengths.geometric(128, max_tokens=2048))


def test_an_iteration_is_its_kernels_plus_the_fitted_terms_summed_by_hand() -> None:
    vllm = KERNELS.replace(engine_name="vllm")
    p = engine_params("vllm")
    every = p.step_overhead_s + p.overlapped_host_s + LAYERS * p.layer_step_overhead_s  # vLLM: serial host
    decode = dict(decode_batch=32, decode_context=1000)
    assert float(vllm.step_time(**decode)) == pytest.approx(
        float(KERNELS.step_time(**decode)) + every, rel=1e-12
    )
    # a prompt iteration above vLLM's captured graphs (min(2 x 64, 512) = 128 tokens) runs eagerly
    assert vllm.graph_tokens_in_force == 128
    big = dict(decode_batch=32, decode_context=1000, prefill_tokens=1024)
    eager = every + LAYERS * p.prefill_layer_overhead_s
    assert float(vllm.step_time(**big)) == pytest.approx(float(KERNELS.step_time(**big)) + eager, rel=1e-12)
    # one of 32 + 64 = 96 tokens fits the graphs: no per-layer host cost of an eager pass
    small = dict(decode_batch=32, decode_context=1000, prefill_tokens=64)
    assert float(vllm.step_time(**small)) == pytest.approx(
        float(KERNELS.step_time(**small)) + every, rel=1e-12
    )


def test_an_overlapping_engine_hides_its_host_work_behind_longer_kernels() -> None:
    # SGLang prepares the next batch while the GPU runs: max(kernels + per-layer GPU work, host) + serial part
    loop = LoopParams(step_overhead_s=1e-3, overlapped_host_s=0.05, layer_step_overhead_s=1e-5)
    sglang = KERNELS.replace(engine_name="sglang", loop=loop)
    decode = dict(decode_batch=8, decode_context=500)
    kernels = float(KERNELS.step_time(**decode))
    assert kernels + LAYERS * 1e-5 < 0.05  # the host is the longer: the iteration is the host's
    assert float(sglang.step_time(**decode)) == pytest.approx(0.05 + 1e-3, rel=1e-12)
    short = sglang.replace(
        loop=LoopParams(step_overhead_s=1e-3, overlapped_host_s=1e-4, layer_step_overhead_s=1e-5)
    )
    assert float(short.step_time(**decode)) == pytest.approx(kernels + LAYERS * 1e-5 + 1e-3, rel=1e-12)


def test_the_engine_iteration_is_the_closed_loops() -> None:
    # one rule for both: the closed loop's step of the same kernels, host overlap and eager layers
    p = engine_params("trtllm")
    engine = KERNELS.replace(engine_name="trtllm")
    parts = loop_parts(engine, concurrency=16, isl=1024, osl=128)
    decodes = parts.decodes * parts.ranks
    assert float(engine.iteration_s(parts.decode_only_s, tokens=decodes, prompt=False)) == pytest.approx(
        float(parts.step_s(parts.decode_only_s, p)), rel=1e-12
    )
    with_prompt = parts.step_s(parts._with_prompt_s(p), p)  # every layer eager: TensorRT-LLM graphs no prompt
    mine = engine.iteration_s(parts.with_prompt_s, tokens=decodes + 1024.0, prompt=True)
    assert float(mine) == pytest.approx(float(with_prompt), rel=1e-12)


def test_empty_loop_params_give_the_kernels_exactly() -> None:
    none = KERNELS.replace(engine_name="vllm", loop=LoopParams())
    assert none.iteration_params() is None
    assert KERNELS.iteration_params() is None
    a, b = analyze(KERNELS, TRAFFIC, samples=512), analyze(none, TRAFFIC, samples=512)
    for name in ("max_rate_per_s", "ttft_s", "tpot_s", "e2e_s", "mean_batch_size"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    s0 = serve(KERNELS, TRAFFIC, n_requests=300, seed=1)
    s1 = serve(none, TRAFFIC, n_requests=300, seed=1)
    np.testing.assert_array_equal(s0.first_token_s, s1.first_token_s)
    slo = SLO(ttft_s=1.0, tpot_s=0.05)
    p0 = plan(MODEL, [HW], TRAFFIC, slo, tp=(1,), engine=None)
    p1 = plan(MODEL, [HW], TRAFFIC, slo, tp=(1,), engine="vllm", loop=LoopParams())
    assert p0.replicas.tolist() == p1.replicas.tolist()
    assert p0.ttft_p99_s.tolist() == p1.ttft_p99_s.tolist()


def test_the_request_overhead_delays_each_first_token_and_no_iteration() -> None:
    late = KERNELS.replace(engine_name="vllm", loop=LoopParams(request_overhead_s=0.1))
    s0 = serve(KERNELS, TRAFFIC, n_requests=300, seed=2)
    s1 = serve(late, TRAFFIC, n_requests=300, seed=2)
    np.testing.assert_allclose(s1.first_token_s - s0.first_token_s, 0.1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s1.tpot_s, s0.tpot_s, rtol=1e-12)
    a0, a1 = analyze(KERNELS, TRAFFIC, samples=512), analyze(late, TRAFFIC, samples=512)
    np.testing.assert_allclose(a1.ttft_s - a0.ttft_s, 0.1, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(a1.tpot_s, a0.tpot_s)
    assert float(a1.max_rate_per_s) == float(a0.max_rate_per_s)


def test_the_simulator_table_adds_the_same_terms() -> None:
    vllm = KERNELS.replace(engine_name="vllm")
    bare, table = StepTable(KERNELS), StepTable(vllm)
    for decodes, chunks in ((16, []), (16, [(1000, 0)]), (0, [(100, 0)]), (40, [(50, 0), (30, 10)])):
        t = bare.iteration_s(decodes, 800.0 * decodes, chunks)
        tokens = decodes + sum(k for k, _ in chunks)
        expected = float(vllm.iteration_s(t, tokens=tokens, prompt=bool(chunks)))
        assert table.iteration_s(decodes, 800.0 * decodes, chunks) == pytest.approx(expected, rel=1e-12)


def test_the_analytic_model_keeps_the_simulator_with_the_engine_terms() -> None:
    # the planner's model against the discrete-event replay, both with vLLM's fitted costs
    vllm = KERNELS.replace(engine_name="vllm")
    saturation = float(analyze(vllm, TRAFFIC).max_rate_per_s)
    assert saturation < float(analyze(KERNELS, TRAFFIC).max_rate_per_s)  # the host costs slow it
    rate = 0.5 * saturation
    m = analyze(vllm, TRAFFIC, rate_per_s=rate)
    sim = serve(vllm, TRAFFIC.with_rate(rate), n_requests=3000, seed=7)
    assert sim.output_tokens_per_s == pytest.approx(float(m.output_tokens_per_s), rel=0.05)
    for metric in ("ttft", "tpot"):
        got = float(getattr(m, f"{metric}_s")[..., 1])  # p90
        assert got == pytest.approx(float(sim.quantile(metric, 0.9)), rel=0.15)


def test_host_costs_raise_a_throughput_bound_plan_by_the_step_ratio() -> None:
    # one-token prompts and long outputs: a replica's rate is B / (t_d(B) x occupancy), prompts nearly free,
    # and loose objectives leave the 0.7 load ceiling as the only bound, so replicas scale with t_d(B)
    traffic = Traffic(400.0, Lengths.fixed(1), Lengths.fixed(1000))
    slo = SLO(ttft_s=100.0, tpot_s=10.0)
    kw = dict(tp=(1,), batch_limits=(64,))
    before = plan(MODEL, [HW], traffic, slo, engine=None, **kw).iloc[0]
    after = plan(MODEL, [HW], traffic, slo, engine="vllm", **kw).iloc[0]
    p = engine_params("vllm")
    host = p.step_overhead_s + p.overlapped_host_s + LAYERS * p.layer_step_overhead_s
    t_d = float(KERNELS.step_time(decode_batch=64, decode_context=500))
    ratio = (t_d + host) / t_d
    assert after.replicas >= before.replicas
    assert after.replicas / before.replicas == pytest.approx(ratio, rel=0.02)
    assert before.replicas == math.ceil(400.0 / (0.7 * before.max_rate_per_replica_per_s))
    assert after.replicas == math.ceil(400.0 / (0.7 * after.max_rate_per_replica_per_s))


def test_an_engine_off_its_vendor_is_refused_by_name() -> None:
    with pytest.raises(CostmodelError, match=r"'trtllm' does not run on .*use 'vllm' or 'sglang'"):
        Engine.build(MODEL, "mi300x", engine_name="trtllm")
    with pytest.raises(CostmodelError, match="engine"):
        Engine.build(MODEL, HW, engine_name="tgi")
    frame = plan(MODEL, ["mi300x", HW], TRAFFIC, SLO(ttft_s=2.0), tp=(1,), engine="trtllm")
    amd = frame[frame.hardware == "mi300x"].iloc[0]
    assert not amd.feasible
    assert "does not run on" in amd.reason
    assert frame[frame.hardware == HW].feasible.all()


def test_plan_cli_takes_the_engine_and_refuses_it_off_its_vendor() -> None:
    import json

    from typer.testing import CliRunner

    from costmodel.cli import app

    runner = CliRunner()
    common = ["plan", "--model", MODEL, "--rate", "400", "--tp", "1", "--ttft-p99", "60s", "--json"]
    rows = {
        e: json.loads(runner.invoke(app, [*common, "--hardware", HW, "--engine", e]).stdout)[0]
        for e in ("none", "vllm")
    }
    assert rows["vllm"]["replicas"] > rows["none"]["replicas"]
    refused = runner.invoke(app, [*common, "--hardware", "mi300x", "--engine", "trtllm"])
    assert refused.exit_code != 0
    assert "--engine trtllm does not run on mi300x" in " ".join(refused.output.split())


def test_each_batch_limit_is_timed_with_its_own_launch() -> None:
    # a batch limit b is deployed as vLLM's --max-num-seqs b, which also sets its CUDA-graph ceiling to
    # min(2 b, 512, budget) (vllm/config/vllm.py, _set_cudagraph_sizes): prompt iterations of 2b+1..512
    # tokens run eagerly and pay the per-layer host cost; plan, analyze and meets_slo time each limit so
    from costmodel.capacity import candidate_engine, meets_slo

    traffic = Traffic(
        100.0, Lengths.lognormal(150, 0.8, max_tokens=4096), Lengths.geometric(64, max_tokens=2048)
    )
    launch = candidate_engine(MODEL, HW)  # max_num_seqs 256: graphs up to 512 tokens
    own = candidate_engine(MODEL, HW, max_batch_size=64)
    assert (launch.graph_tokens_in_force, own.graph_tokens_in_force) == (512, 128)
    # the mechanism: a 300-token prompt iteration is eager at b = 64, graphed at 256
    p = engine_params("vllm")
    big = dict(decode_batch=32, decode_context=500, prefill_tokens=300)
    eager = float(own.step_time(**big)) - float(own.replace(graph_tokens=512).step_time(**big))
    assert eager == pytest.approx(LAYERS * p.prefill_layer_overhead_s, rel=1e-9)
    # analyze at limit 64 on the 256 launch is the 64 launch's answer, point for point
    rate = 100.0 / 3
    m = analyze(launch, traffic, rate_per_s=rate, max_batch_size=np.array([64, 256]))
    alone = analyze(own, traffic, rate_per_s=rate)
    assert m.quantile("tpot", 0.99)[0] == pytest.approx(float(alone.quantile("tpot", 0.99)), rel=1e-9)
    assert m.quantile("ttft", 0.99)[0] == pytest.approx(float(alone.quantile("ttft", 0.99)), rel=1e-9)
    pinned = analyze(launch.replace(graph_tokens=512), traffic, rate_per_s=rate, max_batch_size=64)
    assert alone.quantile("tpot", 0.99) > pinned.quantile("tpot", 0.99)  # the eager prompt iterations
    # plan's row at a limit is analyze's on that limit's own launch; meets_slo is plan's criterion
    slo = SLO(ttft_s=0.3, tpot_s=0.012)
    row = plan(MODEL, [HW], traffic, slo, tp=(1,), batch_limits=(64,)).iloc[0]
    check = analyze(own, traffic, rate_per_s=100.0 / row.replicas, samples=1024, quantiles=(0.5, 0.99))
    assert row.max_batch_size == 64
    assert row.utilization == pytest.approx(float(check.utilization), rel=1e-12)
    ok = meets_slo(launch, traffic, slo, replicas=np.arange(1, 9))
    assert int(np.argmax(ok.any(axis=1))) + 1 == plan(MODEL, [HW], traffic, slo, tp=(1,)).iloc[0].replicas


def test_plan_refuses_the_string_none_and_loop_without_an_engine() -> None:
    with pytest.raises(CostmodelError, match="engine=None"):
        plan(MODEL, [HW], TRAFFIC, SLO(ttft_s=1.0), engine="none")
    with pytest.raises(CostmodelError, match="engine is None"):
        plan(MODEL, [HW], TRAFFIC, SLO(ttft_s=1.0), engine=None, loop=LoopParams(step_overhead_s=0.01))


def test_the_token_budget_is_the_engines_own_default_on_each_device() -> None:
    # vLLM's server launches with max_num_batched_tokens 2,048 on an A100 and 8,192 on an H100
    # (costmodel.token_budget.default_token_budget, as pareto launches it); the kernels alone keep 8,192
    from costmodel.capacity import candidate_engine
    from costmodel.registry import load_hardware
    from costmodel.token_budget import default_token_budget

    assert candidate_engine(MODEL, "a100-80gb").max_batched_tokens == 2048
    assert candidate_engine(MODEL, HW).max_batched_tokens == 8192
    assert candidate_engine(MODEL, "a100-80gb", engine=None).max_batched_tokens == 8192
    a100 = load_hardware("a100-80gb")
    assert candidate_engine(MODEL, a100, engine="sglang").max_batched_tokens == default_token_budget(
        "sglang", a100
    )
    slo = SLO(ttft_s=1.0, tpot_s=0.05)
    default = plan(MODEL, ["a100-80gb"], TRAFFIC, slo, tp=(1,))
    explicit = plan(MODEL, ["a100-80gb"], TRAFFIC, slo, tp=(1,), max_batched_tokens=2048)
    assert default.equals(explicit)


def test_plan_cli_takes_the_token_budget() -> None:
    from typer.testing import CliRunner

    from costmodel.cli import app

    runner = CliRunner()
    common = ["plan", "--model", MODEL, "--rate", "400", "--tp", "1", "--ttft-p99", "60s", "--hardware", HW]
    assert runner.invoke(app, [*common, "--token-budget", "2048", "--json"]).exit_code == 0
    refused = runner.invoke(app, [*common, "--token-budget", "0"])
    assert refused.exit_code != 0
    assert "--token-budget must be at least 1 token" in " ".join(refused.output.split())


def test_an_infeasible_reason_holds_for_the_candidate_not_its_largest_launch() -> None:
    # each limit is searched on its own launch; where none passes, the reason is over all the limits: each
    # objective's lowest held value among the limits under the load cap, and the limit reaching it. On
    # vLLM's launches the p99 TTFT is lowest at one limit and the p99 TPOT at another (bigger graph
    # ceilings), so with each objective met only at its own limit the SLO fails for different reasons at
    # different limits, and no single one meets both: the largest launch alone said its TTFT missed
    from costmodel.capacity import BATCH_LIMITS, SAMPLING_MARGIN, candidate_engine

    traffic = Traffic(
        1.0, Lengths.lognormal(300, 0.8, max_tokens=4000), Lengths.geometric(512, max_tokens=2000)
    )
    launch = candidate_engine(MODEL, HW)
    limits = np.array(BATCH_LIMITS)
    m = analyze(launch, traffic, max_batch_size=limits, quantiles=(0.5, 0.99), samples=1024)

    def held(metric: str) -> np.ndarray:  # the value plan() holds to the objective, per limit
        p99, upper = np.asarray(m.quantile(metric, 0.99)), np.asarray(m.quantile_upper(metric, 0.99))
        return np.where(np.asarray(m.utilization) <= 0.7, p99 + SAMPLING_MARGIN * (upper - p99), np.inf)

    ttft, tpot = held("ttft"), held("tpot")
    a, c = int(np.argmin(ttft)), int(np.argmin(tpot))
    assert a != c, "the oracle case needs the lowest TTFT and TPOT at different limits"

    def reason(slo: SLO) -> str:
        row = plan(MODEL, [HW], traffic, slo, tp=(1,), max_replicas=1).iloc[0]
        assert not row.feasible
        return str(row.reason)

    # a TTFT objective no limit meets: the lowest over every limit, named, not the largest launch's
    text = reason(SLO(ttft_s=0.9 * ttft[a], tpot_s=1.0))
    assert (
        f"p99 TTFT {ttft[a]:.3g} s (+ sampling error) > {0.9 * ttft[a]:.3g} s (at batch limit {limits[a]})"
        in text
    )
    # TTFT met only at a, TPOT only at c: no single limit meets both, and no objective is said to miss
    between = lambda x, i: (x[i] + np.sort(x)[1]) / 2.0  # noqa: E731  above the lowest, below the rest
    text = reason(SLO(ttft_s=between(ttft, a), tpot_s=between(tpot, c)))
    assert "no single limit meets them all" in text
    assert "TTFT" not in text
    assert "TPOT" not in text


def test_an_infeasible_reason_names_every_limit_that_prints_the_lowest_value() -> None:
    # at 1,000 replicas of 1 request/s each replica sees 0.001 requests/s: the batch never fills, so the
    # held p99 TTFT is the same at every limit to the printed digits (analyze on each limit's launch, the
    # oracle), and the reason must not name one limit as if it mattered (it named the argmin's, on
    # last-bit noise, before review 20c)
    from costmodel.capacity import BATCH_LIMITS, SAMPLING_MARGIN, candidate_engine

    traffic = Traffic(
        1.0, Lengths.lognormal(300, 0.8, max_tokens=4000), Lengths.geometric(512, max_tokens=2000)
    )
    limits = np.array(BATCH_LIMITS)
    m = analyze(
        candidate_engine(MODEL, HW),
        traffic.with_rate(1.0 / 1000),
        max_batch_size=limits,
        quantiles=(0.5, 0.99),
        samples=1024,
    )
    p99, upper = np.asarray(m.quantile("ttft", 0.99)), np.asarray(m.quantile_upper("ttft", 0.99))
    held = p99 + SAMPLING_MARGIN * (upper - p99)
    assert len({f"{h:.3g}" for h in held}) == 1, "the oracle case needs every limit to print alike"
    row = plan(MODEL, [HW], traffic, SLO(ttft_s=1e-3), tp=(1,), max_replicas=1000).iloc[0]
    assert not row.feasible
    assert f"p99 TTFT {held.min():.3g} s (+ sampling error) > 0.001 s (at every batch limit)" in row.reason


def test_the_limits_a_reason_names_are_runs_of_the_sorted_limits() -> None:
    from costmodel.capacity import _limit_names

    limits = np.array([8, 16, 32, 119, 64])  # as concatenated over launches: not sorted
    assert _limit_names(limits, np.array([1, 0, 0, 0, 0], dtype=bool)) == "batch limit 8"
    assert _limit_names(limits, np.array([1, 1, 1, 0, 0], dtype=bool)) == "batch limits 8-32"
    assert _limit_names(limits, np.array([1, 0, 1, 1, 1], dtype=bool)) == "batch limits 8, 32-119"
    assert _limit_names(limits, np.ones(5, dtype=bool)) == "every batch limit"
    assert _limit_names(np.array([64]), np.array([True])) == "batch limit 64"


def test_a_replan_notes_no_passes_of_the_launches_the_memo_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    # a launch's prepared tables are memoised (costmodel.memo): a second identical plan reads them, so
    # noting their kernel passes for a joint evaluation would compute passes nothing reads; the answer
    # is the same to the bit either way (each pass is elementwise), and cold the launches are noted
    import pandas as pd

    from costmodel import memo
    from costmodel.capacity import candidate_engine

    traffic = Traffic(
        2.0, Lengths.lognormal(300, 0.8, max_tokens=4000), Lengths.geometric(256, max_tokens=2000)
    )
    slo = SLO(ttft_s=0.5, tpot_s=0.05)
    parts = type(candidate_engine(MODEL, HW).parts)
    noted: list[object] = []
    note = parts.note
    monkeypatch.setattr(parts, "note", lambda self, fn: (noted.append(fn), note(self, fn))[1])
    memo.clear()
    cold = plan(MODEL, [HW], traffic, slo, tp=(1,))
    assert noted, "the oracle case needs launches of several graph ceilings (vLLM's)"
    noted.clear()
    warm = plan(MODEL, [HW], traffic, slo, tp=(1,))
    assert noted == []
    pd.testing.assert_frame_equal(cold, warm)
