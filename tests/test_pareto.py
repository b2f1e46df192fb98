"""The Pareto planner (costmodel.pareto) and `costmodel pareto`: the frontier is the set of non-dominated
points, the chosen point is the cheapest that meets the objectives, the cost is price x GPUs / tokens per
hour, and the engine model's TPOT never falls as clients are added."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from costmodel import pareto
from costmodel.cli import app
from costmodel.closed_loop import LoopParams, closed_loop
from costmodel.errors import CostmodelError
from costmodel.loop_params import (
    decode_share_dispersion,
    engine_params,
    engine_params_file,
    read_engine_params,
    transfer_overhead_s,
)
from costmodel.registry import load_hardware, load_model
from costmodel.serving import Engine
from costmodel.specs import Deployment, Workload

runner = CliRunner()
SMALL = dict(isl=1024, osl=128, tp=(1, 2, 4), pp=(1,), concurrency=(1, 4, 16, 64, 256))


@pytest.fixture(scope="module")
def result() -> pareto.Frontier:
    return pareto.frontier(
        "llama-3-8b", ["h100-sxm", "a100-80gb", "l40s"], ttft_s=0.5, tpot_s=0.03, modes=("agg",), **SMALL
    )


def dominated_by(p: pareto.Points, i: int) -> np.ndarray:
    """Points of i's system that are at least as good on both axes and better on one."""
    x, y = p.tokens_per_s_per_user, p.output_tokens_per_s_per_gpu
    same = p.system == p.system[i]
    return same & (x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i]))


def test_frontier_points_are_not_dominated_and_the_rest_are(result: pareto.Frontier) -> None:
    p = result.points
    x, y = p.tokens_per_s_per_user, p.output_tokens_per_s_per_gpu
    assert p.on_frontier.any()
    for i in range(len(p)):
        beaten = dominated_by(p, i).any()
        if p.on_frontier[i]:
            assert not beaten, p.label(i)
        else:  # beaten, or the same point as one on the frontier
            twin = p.on_frontier & (p.system == p.system[i]) & (x == x[i]) & (y == y[i])
            assert beaten or twin.any(), p.label(i)
    assert set(p.system[p.on_frontier]) == set(p.system)  # a frontier per system


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 1)), min_size=1, max_size=40))
def test_pareto_mask_against_brute_force(rows: list[tuple[int, int, int]]) -> None:
    x, y, g = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    mask = pareto.pareto_mask(x, y, g)
    for i in range(len(x)):
        same = g == g[i]
        beaten = (same & (x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i]))).any()
        earlier_twin = (same[:i] & (x[:i] == x[i]) & (y[:i] == y[i])).any()
        assert mask[i] == (not beaten and not earlier_twin)


def test_a_nan_point_is_never_on_the_frontier() -> None:
    assert pareto.pareto_mask([1.0, math.nan, 0.5], [1.0, 5.0, 0.5]).tolist() == [True, False, False]


def test_the_chosen_point_meets_the_objectives_and_is_the_cheapest(result: pareto.Frontier) -> None:
    p = result.points
    assert result.best is not None
    b = result.best
    assert p.ttft_s[b] <= 0.5
    assert p.tpot_s[b] <= 0.03
    assert p.meets_slo[b]
    feasible = (p.ttft_s <= 0.5) & (p.tpot_s <= 0.03)
    np.testing.assert_array_equal(p.meets_slo, feasible)
    assert p.usd_per_million_output_tokens[b] == np.min(p.usd_per_million_output_tokens[feasible])


def test_no_point_meets_impossible_objectives() -> None:
    found = pareto.frontier("llama-3-8b", ["h100-sxm"], ttft_s=1e-4, modes=("agg",), **SMALL)
    assert found.best is None
    assert not found.points.meets_slo.any()
    assert found.points.on_frontier.any()  # the frontier does not depend on the objectives


def test_cost_is_price_times_gpus_over_tokens_per_hour(result: pareto.Frontier) -> None:
    p = result.points
    for i in range(len(p)):
        price = load_hardware(str(p.system[i])).price
        assert price is not None
        tokens_per_hour = p.output_tokens_per_s[i] * 3600.0
        assert p.usd_per_hour[i] == price.usd_per_hour * p.gpus[i]
        assert p.usd_per_million_output_tokens[i] == price.usd_per_hour * p.gpus[i] / tokens_per_hour * 1e6
        assert p.gpus[i] == p.tp[i] * p.pp[i]  # one aggregated worker
        assert p.output_tokens_per_s_per_gpu[i] == p.output_tokens_per_s[i] / p.gpus[i]
        assert p.tokens_per_s_per_user[i] == 1.0 / p.tpot_s[i]


def test_a_price_given_replaces_the_profiles() -> None:
    found = pareto.frontier(
        "llama-3-8b", ["h100-sxm"], usd_per_hour={"h100-sxm": 1.0}, modes=("agg",), **SMALL
    )
    np.testing.assert_array_equal(found.points.usd_per_gpu_hour, 1.0)


def test_a_device_without_a_price_has_no_cost_and_is_never_chosen() -> None:
    assert load_hardware("gb300").price is None
    found = pareto.frontier("llama-3-8b", ["gb300"], modes=("agg",), **SMALL)
    assert np.isnan(found.points.usd_per_million_output_tokens).all()
    assert found.best is None


@pytest.mark.parametrize(
    ("model", "hardware", "tp", "pp", "weight", "compute"),
    [
        ("llama-3-8b", "h100-sxm", 1, 1, "bf16", "bf16"),
        ("llama-3-70b", "h100-sxm", 4, 1, "fp8", "fp8"),
        ("llama-3-70b", "a100-80gb", 4, 2, "bf16", "bf16"),
        ("qwen3-30b-a3b", "b200", 2, 1, "fp8", "fp8"),
    ],
)  # fmt: skip
@pytest.mark.parametrize(("isl", "osl"), [(128, 1024), (1024, 256), (8000, 200)])
def test_more_clients_never_lower_tpot(
    model: str, hardware: str, tp: int, pp: int, weight: str, compute: str, isl: int, osl: int
) -> None:
    engine = Engine.build(
        model, hardware, tp=tp, pp=pp, weight_dtype=weight, activation_dtype=compute,
        max_batch_size=2048, max_batched_tokens=8192,
    )  # fmt: skip
    clients = np.unique(np.round(np.geomspace(1, 2048, 60)))
    for params in (LoopParams(), engine_params("vllm"), engine_params("sglang")):
        loop = closed_loop(engine, concurrency=clients, isl=isl, osl=osl, params=params)
        # One more sequence can make a decode step slightly cheaper where the decode-attention kernel's
        # split-K heuristic stops splitting (FlashDecoding: b x kv_heads CTAs reach the SM count, the
        # combine pass goes); that is a kernel effect of about one combine pass per layer, never more
        # than a few per cent of the step (TTFT counts the same steps). A larger drop would be a scheduling
        # error.
        assert np.all(np.diff(loop.tpot_s) >= -0.02 * loop.tpot_s[1:])
        assert np.all(np.diff(loop.ttft_s) >= -0.02 * loop.ttft_s[1:])


def test_candidates_that_cannot_run_are_skipped_with_the_reason() -> None:
    found = pareto.frontier("llama-3-70b", ["a100-80gb"], formats=("bf16", "fp8"), modes=("agg",), **SMALL)
    reasons = dict(found.skipped)
    assert "fp8" in reasons["a100-80gb agg TP1 PP1 EP1 fp8"]  # no fp8 peak on an A100
    # 141 GB of weights on 80 GB: no cache at all, so the reason names the weights, not the requests' length
    assert "the weights leave no room for a KV cache" in reasons["a100-80gb agg TP1 PP1 EP1 bf16"]
    assert "more GPUs per worker" in reasons["a100-80gb agg TP1 PP1 EP1 bf16"]
    assert set(found.points.format) == {"bf16"}


def test_a_request_longer_than_the_cache_is_named_as_such() -> None:
    """Qwen2.5-7B in bf16 on an A10G (24 GiB): 15.2 GB of weights leave a cache, but not 125,001 tokens of
    one sequence at 57,344 bytes each (28 layers x 2 x 4 KV heads x 128 x 2 bytes: 7.2 GB): the reason is
    the request's length and a smaller cache format or shorter requests are the fix, as before. Launched
    with 8,192 tokens an iteration: at vLLM's own A10G default, 2,048, the smaller prefill activations leave
    the room and the request fits."""
    with pytest.raises(CostmodelError, match="not even one sequence of isl") as caught:
        pareto.frontier(
            "qwen2.5-7b", ["a10g"], isl=125_000, osl=2, tp=(1,), pp=(1,), concurrency=(1,),
            formats=("bf16",), modes=("agg",), token_budget=8192,
        )  # fmt: skip
    assert "smaller kv_dtype, or shorter requests" in str(caught.value)


def test_disaggregated_candidates_go_through_the_plug_in(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def fake(pairs: list[tuple[Engine, Engine]], *, prefill_workers: np.ndarray, decode_workers: np.ndarray,
             concurrency: np.ndarray, **kw: object) -> list[pareto.Served | str]:  # fmt: skip
        out: list[pareto.Served | str] = []
        X, Y, c = prefill_workers[:, None], decode_workers[:, None], concurrency.astype(float)
        np.testing.assert_array_equal(
            concurrency, Y * np.array(SMALL["concurrency"])[None, :]
        )  # per decode worker
        for prefill, decode in pairs:
            calls.append((prefill.deployment.tp, decode.deployment.tp))
            if prefill.deployment.tp == 2 and decode.deployment.tp == 2:
                out.append("a reason")
                continue
            shape = np.broadcast_shapes(X.shape, c.shape)
            out.append(
                pareto.Served(
                    ttft_s=np.full(shape, 0.1), tpot_s=np.broadcast_to(0.01 + 0.001 * c, shape),
                    output_tokens_per_s=np.broadcast_to(100.0 * c, shape), batch_size=np.broadcast_to(c, shape),
                    gpus=X * prefill.gpus + Y * decode.gpus + 0 * c,
                )
            )  # fmt: skip
        return out

    monkeypatch.setattr(pareto, "disagg_points", fake)
    found = pareto.frontier(
        "llama-3-8b", ["h100-sxm"], disagg_workers=[(1, 2), (3, 1)], formats=("bf16",),
        **(SMALL | {"tp": (1, 2), "pp": (1, 2)}),
    )  # fmt: skip
    assert sorted(calls) == [(1, 1), (1, 2), (2, 1), (2, 2)]  # one pipeline stage in either pool
    p = found.points
    disagg = p.mode == "disagg"
    assert disagg.sum() == 3 * 2 * 5  # pairs that run x ratios x concurrency
    np.testing.assert_array_equal(
        p.gpus[disagg],
        p.prefill_workers[disagg] * p.prefill_tp[disagg] + p.decode_workers[disagg] * p.tp[disagg],
    )
    assert ("h100-sxm disagg TP2 PP1 EP1 bf16 : TP2 PP1 EP1 bf16", "a reason") in found.skipped
    first = int(np.flatnonzero(disagg & (p.tp == 2) & (p.prefill_tp == 1) & (p.prefill_workers == 3))[0])
    assert "3x(TP1) : 1x(TP2)" in p.label(first)


@pytest.fixture(scope="module")
def both() -> pareto.Frontier:
    return pareto.frontier("llama-3-8b", ["h100-sxm", "b200"], ttft_s=0.5, tpot_s=0.03, **SMALL)


def test_disaggregated_points_are_disagg_loop_on_their_pools(both: pareto.Frontier) -> None:
    from costmodel.disagg import DisaggParams, disagg_loop

    p = both.points
    disagg = np.flatnonzero(p.mode == "disagg")
    assert disagg.size
    assert set(
        zip(p.prefill_workers[disagg].tolist(), p.decode_workers[disagg].tolist(), strict=True)
    ) == set(pareto.DISAGG_WORKERS)
    np.testing.assert_array_equal(
        p.gpus[disagg],
        p.prefill_workers[disagg] * p.prefill_tp[disagg] * p.prefill_pp[disagg]
        + p.decode_workers[disagg] * p.tp[disagg] * p.pp[disagg],
    )
    # a spread of them, each against the model itself. Both pools' engines admit what the token budget
    # holds (a prefill pass is limited by its tokens; a decode worker launched for its C clients caps its
    # slots at C, which the even share of the clients over the decode workers, dispersion 0, never
    # exceeds), so the oracle's engines are launched with max_batch_size = the budget
    for i in disagg[:: max(disagg.size // 7, 1)]:

        def engine(tp: int, i: int = i) -> Engine:
            weight, compute = pareto.FORMATS[str(p.format[i])]
            return Engine.build("llama-3-8b", str(p.system[i]), tp=tp, weight_dtype=weight,
                                activation_dtype=compute, max_batch_size=8192, max_batched_tokens=8192)  # fmt: skip

        loop = disagg_loop(
            engine(int(p.prefill_tp[i])), engine(int(p.tp[i])),
            prefill_workers=int(p.prefill_workers[i]), decode_workers=int(p.decode_workers[i]),
            concurrency=int(p.concurrency[i]), isl=1024, osl=128,
            params=DisaggParams.from_loop(engine_params("vllm"), kv_transfer_overhead_s=transfer_overhead_s("vllm"),
                                          decode_share_dispersion=decode_share_dispersion("vllm")),
        )  # fmt: skip
        assert p.ttft_s[i] == pytest.approx(float(loop.ttft_s), rel=1e-12)
        assert p.tpot_s[i] == pytest.approx(float(loop.tpot_s), rel=1e-12)
        assert p.output_tokens_per_s[i] == pytest.approx(float(loop.output_tokens_per_s), rel=1e-12)


def test_both_modes_share_one_frontier_per_system(both: pareto.Frontier) -> None:
    p = both.points
    assert set(p.mode) == {"agg", "disagg"}
    for system in ("h100-sxm", "b200"):
        mine = p.system == system
        x, y = p.tokens_per_s_per_user, p.output_tokens_per_s_per_gpu
        for i in np.flatnonzero(mine & p.on_frontier):
            assert not dominated_by(p, i).any()
        for i in np.flatnonzero(mine & ~p.on_frontier):
            assert dominated_by(p, i).any() or (p.on_frontier & mine & (x == x[i]) & (y == y[i])).any()
    feasible = p.meets_slo & np.isfinite(p.usd_per_million_output_tokens)
    assert both.best is not None
    assert p.usd_per_million_output_tokens[both.best] == p.usd_per_million_output_tokens[feasible].min()
    tokens_per_hour = p.output_tokens_per_s * 3600.0
    np.testing.assert_array_equal(
        p.usd_per_million_output_tokens, p.usd_per_gpu_hour * p.gpus / tokens_per_hour * 1e6
    )


def test_moe_models_search_expert_parallelism() -> None:
    found = pareto.frontier("qwen3-30b-a3b", ["h100-sxm"], modes=("agg",), **(SMALL | {"tp": (2, 4)}))
    pairs = set(zip(found.points.tp.tolist(), found.points.ep.tolist(), strict=True))
    assert pairs == {(2, 1), (2, 2), (4, 1), (4, 4)}


def test_attention_data_parallelism_is_searched_for_moe_models() -> None:
    found = pareto.frontier(
        "qwen3-30b-a3b", ["h100-sxm"], attention_dp=(1, 2), modes=("agg",), formats=("bf16",),
        **(SMALL | {"tp": (1, 2), "concurrency": (1, 4, 64)}),
    )  # fmt: skip
    p = found.points
    layouts = set(zip(p.tp.tolist(), p.attention_dp.tolist(), p.ep.tolist(), strict=True))
    assert layouts == {(1, 1, 1), (2, 1, 1), (2, 1, 2), (1, 2, 1), (1, 2, 2), (2, 2, 1), (2, 2, 4)}
    np.testing.assert_array_equal(p.gpus, p.tp * p.attention_dp * p.pp)
    ranked = p.attention_dp == 2
    assert p.concurrency[ranked].min() == 4  # one client cannot feed two ranks
    i = int(np.flatnonzero(ranked & (p.tp == 2) & (p.ep == 4) & (p.concurrency == 64))[0])
    assert "TP2 ADP2 EP4" in p.label(i)
    engine = Engine(
        load_model("qwen3-30b-a3b"), load_hardware("h100-sxm"), Workload(1, 1, 1),
        Deployment(tp=2, attention_dp=2, moe_ep=4), max_batch_size=64,
        max_batched_tokens=2 * 8192,  # vLLM: each DP rank's own scheduler takes the whole budget
    )  # fmt: skip
    loop = closed_loop(engine, concurrency=64, isl=1024, osl=128, params=engine_params("vllm"))
    assert p.tpot_s[i] == pytest.approx(float(loop.tpot_s), rel=1e-12)
    assert p.ttft_s[i] == pytest.approx(float(loop.ttft_s), rel=1e-12)
    dense = pareto.frontier("llama-3-8b", ["h100-sxm"], attention_dp=(1, 2), modes=("agg",), **SMALL)
    assert set(dense.points.attention_dp) == {1}  # a dense model has no MoE layer to tie ranks together


def test_attention_data_parallelism_is_searched_in_either_disaggregated_pool() -> None:
    """A MoE model's disaggregated search pairs attention-DP workers in either pool; a decode worker of r
    ranks gets at least r clients (one client cannot feed two ranks); each point is the disaggregated loop
    on its two engines."""
    from costmodel.disagg import DisaggParams, disagg_loop

    found = pareto.frontier(
        "qwen3-30b-a3b", ["h100-sxm"], attention_dp=(1, 2), modes=("disagg",), formats=("bf16",),
        disagg_workers=[(1, 1), (1, 2)], **(SMALL | {"tp": (1, 2), "concurrency": (1, 4, 64)}),
    )  # fmt: skip
    p = found.points
    layouts = set(zip(p.prefill_attention_dp.tolist(), p.attention_dp.tolist(), strict=True))
    assert layouts == {(1, 1), (1, 2), (2, 1), (2, 2)}
    ranked = p.attention_dp == 2
    assert (p.concurrency[ranked] // p.decode_workers[ranked]).min() == 4
    assert (p.concurrency[~ranked] // p.decode_workers[~ranked]).min() == 1
    np.testing.assert_array_equal(
        p.gpus,
        p.prefill_workers * p.prefill_tp * p.prefill_attention_dp + p.decode_workers * p.tp * p.attention_dp,
    )
    assert np.isfinite(p.ttft_s).all()
    chosen = (p.prefill_attention_dp == 2) & (p.prefill_tp == 1) & (p.prefill_ep == 2) & ranked & (p.tp == 2)
    i = int(np.flatnonzero(chosen & (p.ep == 4) & (p.decode_workers == 2) & (p.concurrency == 128))[0])
    assert "1x(TP1 ADP2 EP2) : 2x(TP2 ADP2 EP4)" in p.label(i)
    model, hardware = load_model("qwen3-30b-a3b"), load_hardware("h100-sxm")

    def engine(deployment: Deployment) -> Engine:  # both pools launched as the search launches them
        # vLLM: each of the worker's DP ranks runs its own scheduler of the whole 8,192-token budget
        tokens = 8192 * deployment.attention_dp
        return Engine(
            model, hardware, Workload(1, 1, 1), deployment, max_batch_size=8192, max_batched_tokens=tokens
        )

    loop = disagg_loop(
        engine(Deployment(tp=1, attention_dp=2, moe_ep=2)), engine(Deployment(tp=2, attention_dp=2, moe_ep=4)),
        prefill_workers=1, decode_workers=2, concurrency=128, isl=1024, osl=128,
        params=DisaggParams.from_loop(engine_params("vllm"), kv_transfer_overhead_s=transfer_overhead_s("vllm")),
    )  # fmt: skip
    assert p.ttft_s[i] == pytest.approx(float(loop.ttft_s), rel=1e-12)
    assert p.tpot_s[i] == pytest.approx(float(loop.tpot_s), rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(isl=0), "isl must be an integer >= 1"),
        (dict(osl=1), "osl must be an integer >= 2"),
        (dict(ttft_s=-1.0), "ttft_s must be a positive time"),
        (dict(tp=()), "tp must be a non-empty list"),
        (dict(concurrency=(0, 4)), "concurrency must be a non-empty list of integers >= 1"),
        (dict(formats=("fp7",)), "unknown format 'fp7'"),
        (dict(modes=("mixed",)), "unknown mode 'mixed'"),
        (dict(engine="tgi"), "unknown engine 'tgi'"),
        (dict(disagg_workers=[(1,)]), "disagg_workers must be"),
        (dict(isl=200_000), "context"),
        (dict(token_budget=0), "token_budget must be an integer >= 1"),
        (dict(token_budget=512.5), "token_budget must be an integer >= 1"),
        # nothing to search is bad input, not a search that found nothing ("0 tried")
        (dict(tp=(8,), pp=(2,)), r"every tp x attention_dp x pp exceeds the 8 GPUs of a worker"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], message: str) -> None:
    args = dict(isl=1024, osl=128) | kwargs
    with pytest.raises(CostmodelError, match=message):
        pareto.frontier("llama-3-8b", ["h100-sxm"], **args)  # type: ignore[arg-type]


def test_nothing_that_runs_is_an_error_with_reasons() -> None:
    with pytest.raises(CostmodelError, match=r"no deployment of .* could be evaluated"):
        pareto.frontier("llama-3.1-405b", ["l4"], modes=("agg",), **SMALL)


def test_the_shipped_engine_parameters_load() -> None:
    assert engine_params_file().is_file()
    shipped = read_engine_params()
    assert {"vllm", "sglang", "trtllm"} <= set(shipped)
    assert engine_params("vllm") == shipped["vllm"]


def test_the_table_marks_the_frontier_and_the_best(result: pareto.Frontier) -> None:
    table = result.table(frontier_only=True)
    assert table["on_frontier"].all()
    assert len(table) == int(result.points.on_frontier.sum())
    assert table["best"].sum() == (1 if result.points.on_frontier[result.best] else 0)
    full = result.table()
    assert full["best"].sum() == 1
    assert full.loc[full["best"], "label"].item() == result.points.label(result.best)


# ----------------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------------

CLI = ["pareto", "--model", "llama-3-8b", "--hardware", "h100-sxm,gb300", "--tp", "1,2", "--pp", "1",
       "--concurrency", "1,8,64", "--osl", "128"]  # fmt: skip


def strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_cli_json_is_strict_and_matches_the_api() -> None:
    result = runner.invoke(app, [*CLI, "--ttft", "500ms", "--tpot", "30ms", "--json"])
    assert result.exit_code == 0, result.output
    document = strict(result.stdout)
    assert isinstance(document, dict)
    api = pareto.frontier(
        "llama-3-8b", ["h100-sxm", "gb300"], isl=1024, osl=128, ttft_s=0.5, tpot_s=0.03,
        tp=(1, 2), pp=(1,), concurrency=(1, 8, 64),
    )  # fmt: skip
    assert len(document["frontier"]) == int(api.points.on_frontier.sum())
    assert document["best"]["label"] == api.points.label(api.best)
    assert document["best"]["usd_per_million_output_tokens"] == pytest.approx(
        api.points.usd_per_million_output_tokens[api.best], rel=1e-12
    )
    unpriced = [row for row in document["frontier"] if row["system"] == "gb300"]
    assert unpriced
    assert all(row["usd_per_million_output_tokens"] is None for row in unpriced)
    assert {row["mode"] for row in document["frontier"]} <= {"agg", "disagg"}


def test_cli_table_and_csv() -> None:
    result = runner.invoke(app, CLI)
    assert result.exit_code == 0, result.output
    assert "TTFT [ms]" in result.stdout
    assert "$/M output tokens" in result.stdout
    result = runner.invoke(app, [*CLI, "--csv", "--all", "--mode", "agg"])
    assert result.exit_code == 0
    header, *rows = result.stdout.strip().splitlines()
    assert header.startswith("label,system,mode,format,tp,")
    assert "ttft_s" in header
    assert "usd_per_million_output_tokens" in header
    assert len(rows) == 2 * 2 * 3 * 2  # systems x tp x concurrency x formats


@pytest.mark.parametrize("off_frontier", [True, False])
def test_cli_table_shows_the_cheapest_point_meeting_the_objectives_on_or_off_the_frontier(
    off_frontier: bool,
) -> None:
    """The table marks the chosen point with '*' whether or not it lies on the frontier (off it when a point
    with more tokens/s per GPU and per user misses the TTFT); it was left out of the table when off the
    frontier, which the title's '* = cheapest meeting them' promises to show. The objectives of each case
    are found through the API (which of them puts the choice off the frontier depends on the fitted
    parameters), so a refit does not silently drop a case."""
    found = None
    for ttft_ms in (50, 100, 150, 200, 300, 500, 1000):
        for tpot_ms in (10, 30, 50):
            api = pareto.frontier(
                "llama-3-8b", ["h100-sxm", "gb300"], isl=1024, osl=128, ttft_s=ttft_ms / 1e3,
                tpot_s=tpot_ms / 1e3, tp=(1, 2), pp=(1,), concurrency=(1, 8, 64),
            )  # fmt: skip
            if api.best is not None and (not api.points.on_frontier[api.best]) == off_frontier:
                found = (api, f"{ttft_ms}ms", f"{tpot_ms}ms")
                break
        if found:
            break
    where = "off" if off_frontier else "on"
    assert found is not None, f"no objectives on the grid put the chosen point {where} the frontier"
    api, ttft, tpot = found
    result = runner.invoke(app, [*CLI, "--ttft", ttft, "--tpot", tpot], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    starred = [line for line in result.stdout.splitlines() if "│ * " in line]
    assert len(starred) == 1
    assert f"* {api.points.label(api.best)} " in starred[0]
    assert ("is off the frontier" in result.stdout) == off_frontier
    # the CSV carries the chosen point too: exactly one row with best=True, the chosen point's
    listed = runner.invoke(app, [*CLI, "--ttft", ttft, "--tpot", tpot, "--csv"])
    assert listed.exit_code == 0, listed.output
    chosen = [r for r in csv.DictReader(io.StringIO(listed.stdout)) if r["best"] == "True"]
    assert [r["label"] for r in chosen] == [api.points.label(api.best)]
    assert chosen[0]["on_frontier"] == str(not off_frontier)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tp", "0"], "--tp must be"),
        (["--formats", "fp7"], "--formats 'fp7' is not a format"),
        (["--mode", "mixed"], "--mode 'mixed' is not a mode"),
        (["--osl", "1"], "--osl must be at least 2"),
        (["--ttft", "500"], "--ttft 500 would mean 500 s"),
        (["--engine", "tgi"], "--engine 'tgi' has no fitted parameters"),
        (["--concurrency", "a,b"], "--concurrency must be"),
        (["--token-budget", "0"], "--token-budget must be at least 1 tokens"),
    ],
)
def test_cli_bad_flags_are_named(extra: list[str], message: str) -> None:
    result = runner.invoke(app, [*CLI, *extra])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_cli_exits_1_when_nothing_meets_the_objectives() -> None:
    result = runner.invoke(app, [*CLI, "--tpot", "0.1ms"])
    assert result.exit_code == 1
    assert "no deployment meets" in " ".join(result.output.split())


def test_cli_says_a_price_is_missing_when_points_meet_the_objectives_unpriced() -> None:
    """gb300 has no on-demand price (hardware_profiles/gb300.yaml): points that meet the objectives cannot
    be ranked by cost, so nothing is chosen (exit 1); the message names the device and --usd-per-hour
    rather than telling to relax objectives that are met. With a price given, one is chosen."""
    args = ["pareto", "--model", "llama-3-8b", "--hardware", "gb300", "--tp", "1", "--pp", "1"]
    args += ["--concurrency", "1,8", "--osl", "128", "--ttft", "1s"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "gb300 meets them but has no on-demand price" in text
    assert "--usd-per-hour gb300=" in text
    assert "relax the objectives" not in text
    priced = runner.invoke(app, [*args, "--usd-per-hour", "gb300=5"])
    assert priced.exit_code == 0, priced.output


def test_a_vllm_point_whose_prompt_fits_its_cuda_graphs_pays_no_eager_host_cost() -> None:
    """The planner's engine model is the evaluation's: vLLM replays iterations with prompt tokens of up to
    min(2 max_num_seqs, 512) tokens as CUDA graphs, so a 128-token prompt beside 4 decodes pays no per-layer
    host cost, and a 2048-token one (beyond the graphs) pays one per layer of its prefill iteration."""
    from costmodel.closed_loop import cuda_graph_tokens

    engine = Engine(
        load_model("llama-3-8b"), load_hardware("h100-sxm"), Workload(1, 1, 1), Deployment(),
        max_batch_size=512, max_batched_tokens=8192,
    )  # fmt: skip
    graphs = cuda_graph_tokens("vllm", 512, 8192)
    assert graphs == 512
    assert cuda_graph_tokens("sglang", 512, 8192) == cuda_graph_tokens("trtllm", 512, 8192) == 0
    assert cuda_graph_tokens("vllm", 4, 8192) == 8
    assert cuda_graph_tokens("vllm", 512, 256) == 256
    assert cuda_graph_tokens("vllm", 4, 8192, capture_size=2048) == 2048
    host = LoopParams(prefill_layer_overhead_s=1e-3)
    for isl, eager in ((128, False), (2048, True)):
        point = {"concurrency": [4], "isl": isl, "osl": 64}
        bare = pareto.agg_point(engine, params=LoopParams(), graph_tokens=graphs, **point)
        graphed = pareto.agg_point(engine, params=host, graph_tokens=graphs, **point)
        ungraphed = pareto.agg_point(engine, params=host, graph_tokens=0, **point)
        layers = engine.model.n_layers * host.prefill_layer_overhead_s
        assert float(ungraphed.ttft_s[0]) >= float(bare.ttft_s[0]) + layers
        if eager:
            assert float(graphed.ttft_s[0]) == pytest.approx(float(ungraphed.ttft_s[0]), rel=1e-12)
        else:
            assert float(graphed.ttft_s[0]) == pytest.approx(float(bare.ttft_s[0]), rel=1e-12)


@pytest.mark.parametrize("bad", ["1.5", "high", ".nan", "true"])
def test_a_bad_shipped_disaggregated_value_is_refused_naming_file_key_and_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    """A value outside its calibration bounds (1.5 for a dispersion in [0, 1]), not a number, not finite or
    a boolean: one error naming the file, the key and the engine, when the file is read; and the planner
    raises it rather than recording every disaggregated pair as skipped."""
    from costmodel import loop_params

    file = tmp_path / "serving-engines.yaml"
    file.write_text(
        engine_params_file().read_text(encoding="utf-8")
        + f"disagg_decode_share_dispersion:\n  vllm: {bad}\n",
        encoding="utf-8",
    )
    pattern = rf"{file}.*disagg_decode_share_dispersion\.vllm.*\[0\.0, 1\.0\]"
    with pytest.raises(CostmodelError, match=pattern):
        loop_params.read_disagg_entry("disagg_decode_share_dispersion", file)
    monkeypatch.setattr(loop_params, "engine_params_file", lambda: file)
    loop_params._shipped_disagg.cache_clear()
    try:
        with pytest.raises(CostmodelError, match=pattern):
            pareto.frontier("llama-3-8b", ["h100-sxm"], formats=("bf16",), **SMALL)
    finally:
        loop_params._shipped_disagg.cache_clear()


def test_good_shipped_disaggregated_values_are_read(tmp_path: Path) -> None:
    from costmodel.loop_params import read_disagg_entry

    file = tmp_path / "serving-engines.yaml"
    file.write_text("disagg_decode_share_dispersion:\n  trtllm: 0.9\n  sglang: 1\n", encoding="utf-8")
    assert read_disagg_entry("disagg_decode_share_dispersion", file) == {"trtllm": 0.9, "sglang": 1.0}
    assert read_disagg_entry("disagg_kv_transfer_overhead_s", file) == {}
    assert read_disagg_entry("disagg_kv_transfer_overhead_s", tmp_path / "absent.yaml") == {}
    file.write_text("disagg_kv_transfer_overhead_s:\n  trtllm: 0.2\n", encoding="utf-8")  # above 50 ms
    with pytest.raises(CostmodelError, match=r"disagg_kv_transfer_overhead_s\.trtllm"):
        read_disagg_entry("disagg_kv_transfer_overhead_s", file)
    # the disaggregated loop's own wave share: a share, in [0, 1]
    file.write_text("disagg_burst_fraction:\n  trtllm: 0.36\n", encoding="utf-8")
    assert read_disagg_entry("disagg_burst_fraction", file) == {"trtllm": 0.36}
    file.write_text("disagg_burst_fraction:\n  trtllm: 1.5\n", encoding="utf-8")
    with pytest.raises(CostmodelError, match=r"disagg_burst_fraction\.trtllm"):
        read_disagg_entry("disagg_burst_fraction", file)


def test_an_older_or_misspelt_serving_file_is_refused_not_read_as_none_fitted(tmp_path: Path) -> None:
    """silicon-calibrate writes every disaggregated field of an engine whose rows it fitted, so an engine with
    a transfer overhead but no wave share is an older or partial file (its disaggregated TTFT would silently
    fall back to the aggregated wave share); an entry the format does not have is a misspelling."""
    from costmodel.loop_params import read_disagg_entry, read_engine_params

    file = tmp_path / "serving-engines.yaml"
    file.write_text("disagg_kv_transfer_overhead_s:\n  trtllm: 0.01\n", encoding="utf-8")
    with pytest.raises(CostmodelError, match=rf"^{file}: disagg_burst_fraction has no value for 'trtllm'"):
        read_disagg_entry("disagg_burst_fraction", file)
    assert read_disagg_entry("disagg_kv_transfer_overhead_s", file) == {"trtllm": 0.01}
    shipped = engine_params_file().read_text(encoding="utf-8")
    file.write_text(shipped.replace("disagg_burst_fraction:", "disagg_burstfraction:"), encoding="utf-8")
    for read in (lambda: read_disagg_entry("disagg_burst_fraction", file), lambda: read_engine_params(file)):
        with pytest.raises(CostmodelError, match=rf"^{file}: unknown entry 'disagg_burstfraction'"):
            read()


def test_the_planner_takes_the_shipped_disaggregated_wave_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped ``disagg_burst_fraction`` reaches the planner's disaggregated points: a wave of all the
    clients (1) never gives a shorter TTFT than none (0) and a longer one where several clients share a
    prefill pool, while the aggregated points, which do not read it, are the same."""
    import yaml

    from costmodel import loop_params

    shipped = yaml.safe_load(engine_params_file().read_text(encoding="utf-8"))
    tables = {}
    for share in (0.0, 1.0):
        document = shipped | {"disagg_burst_fraction": dict.fromkeys(shipped["disagg_burst_fraction"], share)}
        file = tmp_path / f"serving-engines-{share}.yaml"
        file.write_text(yaml.safe_dump(document), encoding="utf-8")
        monkeypatch.setattr(loop_params, "engine_params_file", lambda file=file: file)
        loop_params._shipped_disagg.cache_clear()
        try:
            found = pareto.frontier("llama-3-8b", ["h100-sxm"], formats=("bf16",), engine="trtllm", **SMALL)
        finally:
            loop_params._shipped_disagg.cache_clear()
        tables[share] = found.table()
    none, wave = tables[0.0], tables[1.0]
    assert list(none["label"]) == list(wave["label"])
    disagg = (none["mode"] == "disagg").to_numpy()
    assert disagg.any()
    assert (~disagg).any()
    assert np.array_equal(none["ttft_s"][~disagg], wave["ttft_s"][~disagg])
    assert (wave["ttft_s"][disagg] >= none["ttft_s"][disagg] * (1 - 1e-12)).all()
    assert (wave["ttft_s"][disagg] > none["ttft_s"][disagg] * 1.01).any()


def test_the_decode_share_dispersion_in_the_planner() -> None:
    """Through the planner's plug-in: a deployment of one decode worker is the same under any dispersion
    (one worker is one queue); with several, the output rate never rises with the dispersion (a spread
    share decodes fewer sequences per iteration), and falls where the clients fill the slots."""
    engine = Engine.build("llama-3-8b", "h100-sxm", max_batch_size=64, max_batched_tokens=8192)
    clients = np.array([4, 16, 64])
    X, Y = np.array([1, 3]), np.array([1, 3])  # as many prefill as decode workers: the decode slots bind
    runs = []
    for dispersion in (0.0, 0.5, 1.0):
        (served,) = pareto.disagg_points(
            [(engine, engine)],
            prefill_workers=X,
            decode_workers=Y,
            concurrency=clients[None, :] * Y[:, None],
            isl=256,
            osl=128,
            params=engine_params("vllm"),
            decode_share_dispersion=dispersion,
        )
        assert isinstance(served, pareto.Served)
        runs.append(served)
    for served in runs[1:]:
        for name in ("ttft_s", "tpot_s", "output_tokens_per_s"):
            np.testing.assert_array_equal(getattr(served, name)[0], getattr(runs[0], name)[0])
    rates = np.stack([np.asarray(s.output_tokens_per_s)[1] for s in runs])
    assert np.all(np.diff(rates, axis=0) <= 1e-9 * rates[:-1])
    assert rates[-1, -1] < rates[0, -1]  # 192 clients on 3 x 64 slots


def test_a_smaller_token_budget_chunks_a_long_prompt_into_more_iterations() -> None:
    # chunked prefill: a 4,096-token prompt takes one iteration of an 8,192-token budget and eight of a
    # 512-token one, each carrying the running decodes and the per-iteration costs, so a lone client's
    # first token comes later, and every decode iteration it shares with a chunk is no shorter
    args = dict(isl=4096, osl=64, tp=(1,), pp=(1,), concurrency=(1, 16), modes=("agg",), formats=("bf16",))
    wide = pareto.frontier("llama-3-8b", ["h100-sxm"], **args).points  # type: ignore[arg-type]
    narrow = pareto.frontier("llama-3-8b", ["h100-sxm"], token_budget=512, **args).points  # type: ignore[arg-type]
    assert len(wide) == len(narrow) == 2
    assert np.all(narrow.ttft_s > wide.ttft_s)


def test_the_cli_token_budget_default_is_the_planners() -> None:
    import inspect

    from costmodel.cli import pareto as command

    # None on both: the engine's own default on each device (costmodel.token_budget.default_token_budget)
    default = inspect.signature(command).parameters["token_budget"].default
    assert default is None
    assert inspect.signature(pareto.frontier).parameters["token_budget"].default is None


def test_a_points_figures_do_not_depend_on_the_other_client_counts_searched() -> None:
    # each point's workers are launched for its own clients (InferenceX's --max-num-seqs $CONC): vLLM's
    # CUDA graphs (min(2 max_num_seqs, 512) tokens) and a decode worker's slots follow its count, not the
    # largest count searched; 16,384 clients raise their own token budget and nobody else's
    args = dict(isl=256, osl=64, tp=(1, 2), pp=(1,), formats=("fp8",), engine="vllm", token_budget=8192)
    alone = pareto.frontier("llama-3-8b", ["h100-sxm"], concurrency=(16,), **args).points  # type: ignore[arg-type]
    among = pareto.frontier("llama-3-8b", ["h100-sxm"], concurrency=(1, 16, 512, 16384), **args).points  # type: ignore[arg-type]
    assert set(alone.mode) == {"agg", "disagg"}
    mine = {(among.label(i), int(among.concurrency[i])): i for i in range(len(among))}
    for i in range(len(alone)):
        j = mine[(alone.label(i), int(alone.concurrency[i]))]
        for name in (
            "ttft_s",
            "tpot_s",
            "output_tokens_per_s",
            "batch_size",
            "usd_per_million_output_tokens",
        ):
            assert getattr(among, name)[j] == getattr(alone, name)[i], (alone.label(i), name)


def test_an_aggregated_point_is_one_worker_launched_for_its_clients() -> None:
    # the oracle: closed_loop on an engine built here with max_batch_size = C, the budget raised to C where
    # smaller, and vLLM's default graph capture for max_num_seqs C (min(2 C, 512, budget))
    from costmodel.closed_loop import cuda_graph_tokens

    clients = (4, 64, 16384)
    found = pareto.frontier(
        "llama-3-8b", ["h100-sxm"], isl=256, osl=64, tp=(1,), pp=(1,), formats=("bf16",), modes=("agg",),
        concurrency=clients, engine="vllm",
    ).points  # fmt: skip
    for c in clients:
        (i,) = np.flatnonzero(found.concurrency == c)
        budget = max(pareto.TOKEN_BUDGET, c)
        engine = Engine(
            load_model("llama-3-8b"), load_hardware("h100-sxm"), Workload(1, 1, 1), Deployment(tp=1),
            max_batch_size=c, max_batched_tokens=budget,
        )  # fmt: skip
        loop = closed_loop(
            engine, concurrency=c, isl=256, osl=64, params=engine_params("vllm"),
            graph_tokens=min(2 * c, 512, budget),
        )  # fmt: skip
        assert cuda_graph_tokens("vllm", c, budget) == min(2 * c, 512, budget)
        assert found.ttft_s[i] == pytest.approx(float(loop.ttft_s), rel=1e-12)
        assert found.tpot_s[i] == pytest.approx(float(loop.tpot_s), rel=1e-12)


def test_a_decode_worker_runs_no_more_sequences_than_its_clients() -> None:
    found = pareto.frontier(
        "llama-3-8b", ["h100-sxm"], isl=256, osl=64, tp=(1,), pp=(1,), formats=("fp8",), modes=("disagg",),
        concurrency=(1, 8, 64),
    ).points  # fmt: skip
    per_worker = found.concurrency / found.decode_workers
    assert np.all(found.batch_size <= per_worker * (1 + 1e-12))


def test_each_unpriced_device_takes_its_own_price() -> None:
    # gb300 and h20 ship without a price: each is priced by its own entry, and cost = price x GPUs / tokens
    assert load_hardware("gb300").price is None
    assert load_hardware("h20").price is None
    prices = {"gb300": 5.0, "h20": 1.5}
    found = pareto.frontier(
        "llama-3-8b", ["gb300", "h20"], usd_per_hour=prices, modes=("agg",), formats=("fp8",), **SMALL
    )
    p = found.points
    assert set(p.system) == {"gb300", "h20"}
    for system, price in prices.items():
        mine = p.system == system
        assert np.all(p.usd_per_gpu_hour[mine] == price)
        np.testing.assert_allclose(
            p.usd_per_million_output_tokens[mine],
            price * p.gpus[mine] / (p.output_tokens_per_s[mine] * 3600.0) * 1e6,
            rtol=1e-12,
        )
    assert found.best is not None
    unpriced = pareto.frontier("llama-3-8b", ["gb300", "h20"], usd_per_hour={"h20": 1.5}, modes=("agg",),
                               formats=("fp8",), **SMALL).points  # fmt: skip
    assert np.all(np.isnan(unpriced.usd_per_million_output_tokens[unpriced.system == "gb300"]))


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"b200": 2.0}, r"usd_per_hour names 'b200', which is not one of the systems searched \(h100-sxm\)"),
        ({"h100-sxm": -1.0}, r"usd_per_hour\['h100-sxm'\] must be a positive price per GPU-hour"),
        ({"h100-sxm": math.nan}, r"usd_per_hour\['h100-sxm'\] must be a positive price"),
        ({"h100-sxm": "2"}, r"usd_per_hour\['h100-sxm'\] must be a positive price"),
        ({"h100-sxm": True}, r"usd_per_hour\['h100-sxm'\] must be a positive price"),
        ([2.0], "usd_per_hour must map system names to prices"),
    ],
)
def test_a_bad_price_names_the_field(prices: object, message: str) -> None:
    with pytest.raises(CostmodelError, match=message):
        pareto.frontier("llama-3-8b", ["h100-sxm"], isl=1024, osl=128, usd_per_hour=prices)  # type: ignore[arg-type]


def test_the_cli_prices_each_device_given() -> None:
    out = runner.invoke(
        app,
        ["pareto", "--model", "llama-3-8b", "--hardware", "gb300,h20", "--isl", "1024", "--osl", "128",
         "--tp", "1", "--pp", "1", "--formats", "fp8", "--mode", "agg", "--concurrency", "1,16",
         "--usd-per-hour", "gb300=5,h20=1.5", "--all", "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)["points"]
    assert {(r["system"], r["usd_per_gpu_hour"]) for r in rows} == {("gb300", 5.0), ("h20", 1.5)}
    bad = runner.invoke(
        app, ["pareto", "--model", "llama-3-8b", "--hardware", "gb300,h20", "--usd-per-hour", "b200=5"]
    )
    assert bad.exit_code != 0
    assert "--usd-per-hour names 'b200'" in bad.output


def test_the_cli_gives_a_point_the_same_figures_whatever_else_it_searches() -> None:
    """`costmodel pareto --concurrency 16` and `--concurrency 1,16,512` give each 16-client point the same
    figures, the API's (every point with --all)."""
    base = ["pareto", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--isl", "256", "--osl", "64",
            "--tp", "1", "--pp", "1", "--formats", "fp8", "--all", "--json"]  # fmt: skip
    runs = []
    for counts in ("16", "1,16,512"):
        result = runner.invoke(app, [*base, "--concurrency", counts])
        assert result.exit_code == 0, result.output
        points = strict(result.stdout)["points"]  # type: ignore[index]
        runs.append(
            {
                (r["label"], r["concurrency"]): r
                for r in points
                if r["concurrency"] // r["decode_workers"] == 16
            }
        )
    assert runs[0].keys() == runs[1].keys()
    api = pareto.frontier(
        "llama-3-8b", ["h100-sxm"], isl=256, osl=64, tp=(1,), pp=(1,), formats=("fp8",), concurrency=(16,)
    ).points
    assert len(runs[0]) == len(api)
    for i in range(len(api)):
        key = (api.label(i), int(api.concurrency[i]))
        for name in ("ttft_s", "tpot_s", "output_tokens_per_s_per_gpu", "usd_per_million_output_tokens"):
            assert runs[0][key][name] == runs[1][key][name] == getattr(api, name)[i].item(), (key, name)


def test_a_moe_search_gives_each_point_what_its_own_engines_give() -> None:
    # the search shares each layout's passes between its aggregated, prefill and decode workers, evaluated
    # together (serving._Parts.note); the oracle is each point on engines built here, alone, as the
    # evaluation builds them: closed_loop for an aggregated point, disagg_loop for a disaggregated one. A MoE
    # model, whose kernel models hold the arithmetic (x ** p) that numpy rounds differently on a scalar
    from costmodel.closed_loop import cuda_graph_tokens
    from costmodel.disagg import DisaggParams, disagg_loop

    model, isl, osl = load_model("qwen3-30b-a3b"), 1024, 128
    found = pareto.frontier(
        model, ["h100-sxm"], isl=isl, osl=osl, tp=(1, 2), pp=(1,), formats=("fp8",), concurrency=(1, 16, 256),
        engine="vllm",
    ).points  # fmt: skip
    hw, params = load_hardware("h100-sxm"), engine_params("vllm")

    def engine(tp: int, ep: int, batch: int, budget: int) -> Engine:
        return Engine(
            model, hw, Workload(1, 1, 1, weight_dtype="fp8", activation_dtype="fp8"), Deployment(tp=tp, ep=ep),
            max_batch_size=batch, max_batched_tokens=budget,
        )  # fmt: skip

    agg, disagg = np.flatnonzero(found.mode == "agg"), np.flatnonzero(found.mode == "disagg")
    assert agg.size
    assert disagg.size
    assert set(found.ep[found.tp == 2].tolist()) == {1, 2}
    for i in agg:
        c = int(found.concurrency[i])
        budget = max(pareto.TOKEN_BUDGET, c)
        loop = closed_loop(
            engine(int(found.tp[i]), int(found.ep[i]), c, budget), concurrency=c, isl=isl, osl=osl, params=params,
            graph_tokens=cuda_graph_tokens("vllm", c, budget),
        )  # fmt: skip
        assert found.ttft_s[i] == pytest.approx(float(loop.ttft_s), rel=1e-12)
        assert found.tpot_s[i] == pytest.approx(float(loop.tpot_s), rel=1e-12)
    budget = pareto.TOKEN_BUDGET
    for i in disagg[:: max(disagg.size // 12, 1)]:
        loop = disagg_loop(
            engine(int(found.prefill_tp[i]), int(found.prefill_ep[i]), budget, budget),
            engine(int(found.tp[i]), int(found.ep[i]), budget, budget),
            prefill_workers=int(found.prefill_workers[i]), decode_workers=int(found.decode_workers[i]),
            concurrency=int(found.concurrency[i]), isl=isl, osl=osl,
            params=DisaggParams.from_loop(params, kv_transfer_overhead_s=transfer_overhead_s("vllm"),
                                          decode_share_dispersion=decode_share_dispersion("vllm")),
        )  # fmt: skip
        assert found.ttft_s[i] == pytest.approx(float(loop.ttft_s), rel=1e-12)
        assert found.tpot_s[i] == pytest.approx(float(loop.tpot_s), rel=1e-12)
        assert found.output_tokens_per_s[i] == pytest.approx(float(loop.output_tokens_per_s), rel=1e-12)


@pytest.mark.parametrize("engine", ["sglang", "trtllm", "vllm"])
def test_a_point_runs_its_engines_kernels_not_vllms(engine: str) -> None:
    """``engine=`` picks the kernels as well as the loop parameters: an aggregated point is closed_loop on
    an engine built here whose efficiency names ``engine`` as the kernel engine (as the evaluation builds
    each row's, validation.public.silicon), with that engine's loop parameters, CUDA-graph rule and host
    overlap."""
    from costmodel.closed_loop import cuda_graph_tokens
    from costmodel.loop_params import overlaps_host

    model, hw, isl, osl, c = load_model("qwen3-30b-a3b"), load_hardware("h200"), 1024, 256, 16
    found = pareto.frontier(
        model, [hw], isl=isl, osl=osl, tp=(1,), pp=(1,), ep=(1,), formats=("fp8",), modes=("agg",),
        concurrency=(c,), engine=engine,
    ).points  # fmt: skip
    (i,) = np.flatnonzero(found.concurrency == c)
    budget = pareto.TOKEN_BUDGET
    built = Engine(
        model, hw, Workload(1, 1, 1, weight_dtype="fp8", activation_dtype="fp8"), Deployment(tp=1, ep=1),
        max_batch_size=c, max_batched_tokens=budget,
        efficiency=hw.efficiency.model_copy(update={"kernel_engine": engine}),
    )  # fmt: skip
    loop = closed_loop(
        built, concurrency=c, isl=isl, osl=osl, params=engine_params(engine),
        graph_tokens=cuda_graph_tokens(engine, c, budget), overlap_host=overlaps_host(engine),
    )  # fmt: skip
    assert found.ttft_s[i] == pytest.approx(float(loop.ttft_s), rel=1e-12)
    assert found.tpot_s[i] == pytest.approx(float(loop.tpot_s), rel=1e-12)


def test_an_sglang_fp8_moe_point_on_hopper_is_timed_with_sglangs_triton_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SGLang runs per-tensor fp8 experts on its Triton fused MoE on Hopper (``Fp8MoEMethod`` without
    DeepEP: docs/validation.md, "Per-tensor fp8 experts under SGLang"), not vLLM's FlashInfer CUTLASS
    kernel: every engine the SGLang search builds reads the Triton key alone, and a vLLM search none."""
    from costmodel.kernel_times import ENGINE_PREFIX, _Keys, launch_s, moe_keys

    built: list[Engine] = []
    original = pareto._engine

    def spy(*args: object, **kwargs: object) -> Engine:
        out = original(*args, **kwargs)  # type: ignore[arg-type]
        built.append(out)
        return out

    monkeypatch.setattr(pareto, "_engine", spy)
    hw = load_hardware("h200")
    for engine in ("sglang", "vllm"):
        built.clear()
        pareto.frontier(
            "qwen3-30b-a3b", [hw], isl=1024, osl=256, tp=(1,), pp=(1,), ep=(1,), formats=("fp8",),
            modes=("agg",), concurrency=(16,), engine=engine,
        )  # fmt: skip
        assert built
        for e in built:
            eff = e.efficiency
            assert eff is not None
            assert eff.kernel_engine == engine
            keys = _Keys(hw, ENGINE_PREFIX[engine], launch_s(hw, eff), None, kernel_engine=engine)
            chosen = moe_keys(keys, "fp8")
            triton = [k.endswith("_triton_tritonexperts") for k in chosen]
            assert all(triton) if engine == "sglang" else not any(triton), chosen


def test_a_vllm_attention_dp_rank_captures_graphs_for_its_own_sequences() -> None:
    """Each vLLM DP rank is an engine core of its own, launched with its share of the worker's C sequences
    as ``max_num_seqs``; its default graph capture is min(2 max_num_seqs, 512) tokens (vLLM's
    ``max_cudagraph_capture_size`` default), so at ADP 2 and 64 clients a rank replays iterations of up
    to 2 x 32 = 64 tokens, not 128, as the evaluation passes a rank's batch."""
    from costmodel.loop_params import overlaps_host

    model, hw, c, isl, osl = load_model("qwen3-30b-a3b"), load_hardware("h100-sxm"), 64, 60, 64
    p = pareto.frontier(
        model, [hw], isl=isl, osl=osl, tp=(1,), pp=(1,), ep=(2,), attention_dp=(2,), modes=("agg",),
        formats=("bf16",), concurrency=(c,), engine="vllm",
    ).points  # fmt: skip
    (i,) = np.flatnonzero(p.concurrency == c)
    engine = Engine(
        model, hw, Workload(1, 1, 1), Deployment(tp=1, attention_dp=2, moe_ep=2), max_batch_size=c,
        max_batched_tokens=2 * 8192,
    )  # fmt: skip

    def loop(graphs: int) -> Any:
        return closed_loop(
            engine, concurrency=c, isl=isl, osl=osl, params=engine_params("vllm"), graph_tokens=graphs,
            overlap_host=overlaps_host("vllm"),
        )  # fmt: skip

    rank = loop(min(2 * (c // 2), 512, 8192))
    assert p.ttft_s[i] == pytest.approx(float(rank.ttft_s), rel=1e-12)
    assert p.tpot_s[i] == pytest.approx(float(rank.tpot_s), rel=1e-12)
    assert float(loop(min(2 * c, 512, 8192)).ttft_s) != float(rank.ttft_s)  # the oracle tells them apart


def test_an_sglang_search_sizes_the_kv_cache_with_sglangs_mla_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review 18c item 5: ``frontier(engine="sglang")`` sized memory with vLLM's W_UK / W_UV copies. Every
    engine an SGLang search builds holds the KV tokens of an Engine built with ``kernel_engine`` "sglang";
    for DeepSeek-V3 in per-tensor fp8 at tp 8 that is what SGLang's 1-byte copies leave beyond vLLM's bf16
    ones: 61 layers x 128 heads x 256 rows x 512 columns x (2 - 1) bytes / 8 GPUs, over the 61 x 576 x 2
    bytes of one token's bf16 latent and rope key (floor of each, so within one token)."""
    built: list[Engine] = []
    original = pareto._engine

    def spy(*args: object, **kwargs: object) -> Engine:
        out = original(*args, **kwargs)  # type: ignore[arg-type]
        built.append(out)
        return out

    monkeypatch.setattr(pareto, "_engine", spy)
    model, hw = load_model("deepseek-v3"), load_hardware("h200")
    capacity: dict[str, int] = {}
    for engine in ("sglang", "vllm"):
        built.clear()
        pareto.frontier(
            model, [hw], isl=1024, osl=128, tp=(8,), pp=(1,), ep=(8,), formats=("fp8",), modes=("agg",),
            concurrency=(16,), engine=engine,
        )  # fmt: skip
        assert built
        direct = Engine(
            model, hw, Workload(1, 1, 1, weight_dtype="fp8", activation_dtype="fp8"), Deployment(tp=8, ep=8),
            max_batch_size=1, max_batched_tokens=pareto.TOKEN_BUDGET,
            efficiency=hw.efficiency.model_copy(update={"kernel_engine": engine}),
        ).kv_capacity_tokens()  # fmt: skip
        assert {e.kv_capacity_tokens() for e in built} == {direct}
        capacity[engine] = direct
    extra = 61 * 128 * 256 * 512 * (2 - 1) / 8 / (61 * 576 * 2)
    assert capacity["sglang"] - capacity["vllm"] in (math.floor(extra), math.floor(extra) + 1)


def test_a_layout_over_the_gpus_of_a_worker_is_skipped_with_the_reason() -> None:
    """SGLang's ``--tp 8 --dp 8 --enable-dp-attention`` is 8 GPUs; here tp 8 with attention DP 8 is
    8 x 8 x 1 = 64 GPUs, over the 8 a worker holds: it is not searched, and listed in ``skipped`` with the
    count, while tp 1 x attention DP 8 (8 GPUs) is searched."""
    found = pareto.frontier(
        "deepseek-v3", ["h200"], formats=("fp8",), modes=("agg",), tp=(1, 8), pp=(1,), attention_dp=(8,),
        ep=(8,), concurrency=(64,), isl=1000, osl=100, engine="sglang",
    )  # fmt: skip
    reasons = dict(found.skipped)
    assert "64 GPUs exceeds the 8 GPUs a worker holds" in reasons["TP8 ADP8 PP1 (every system and format)"]
    assert set(zip(found.points.tp, found.points.attention_dp, strict=True)) == {(1, 8)}


def test_a_single_integer_is_a_list_of_one_and_a_string_is_refused() -> None:
    """``attention_dp=1`` (or ``tp=2``) searches that one value, as ``(1,)`` does; a string is one clear
    error naming the argument, never a TypeError from inside the search."""
    from costmodel.pareto import _check_ints

    assert _check_ints("attention_dp", 1) == (1,)
    assert _check_ints("tp", np.int64(4)) == (4,)
    assert _check_ints("tp", [2, 2, 4]) == (2, 4)
    for bad in ("8", 0, [0], [], 2.0):
        with pytest.raises(CostmodelError, match="tp"):
            _check_ints("tp", bad)
