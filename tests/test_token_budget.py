"""One rule for an attention-DP rank's token budget (costmodel.token_budget), read by the Pareto planner and
the public evaluation alike: the expected budgets are the engines' own rules, written out here from their
sources (vLLM and TensorRT-LLM give every rank the launch's whole value, each rank running its own
scheduler; SGLang's handle_data_parallelism divides chunked_prefill_size by dp_size), not the module's
output."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel import pareto
from costmodel.errors import CostmodelError, UnknownNameError
from costmodel.registry import load_hardware, load_model
from costmodel.token_budget import rank_token_budget, worker_batched_tokens
from validation.public.engine_memory import (
    MIB,
    engine_memory,
    sglang_cuda_graph_max_bs,
    sglang_mem_fraction_static,
)
from validation.public.silicon import _pool_engine, row_formats, token_budget

ENGINES = ("vllm", "sglang", "trtllm")
RANK_BUDGET_AT_DP4 = {"vllm": 8192, "trtllm": 8192, "sglang": 8192 // 4}
"""A rank's budget of a worker of 4 attention-DP ranks launched with 8,192 tokens, by each engine's rule."""


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_gives_a_rank_its_rule(engine: str) -> None:
    assert rank_token_budget(engine, 8192, 4) == RANK_BUDGET_AT_DP4[engine]
    # one rank: the launch's value, whatever the engine
    for budget in (1, 2048, 8191, 16384):
        assert rank_token_budget(engine, budget, 1) == budget
    # a worker's budget is its ranks' together, never below the sequences it admits
    assert worker_batched_tokens(engine, 8192, attention_dp=4, sequences=16) == 4 * RANK_BUDGET_AT_DP4[engine]
    assert worker_batched_tokens(engine, 8192, attention_dp=1, sequences=16384) == 16384


def test_sglang_keeps_a_rank_at_one_token_at_least() -> None:
    assert rank_token_budget("sglang", 3, 8) == 1
    assert rank_token_budget("sglang", 16384, 8) == 2048


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(token_budget=0, attention_dp=1), "token_budget must be an integer >= 1"),
        (dict(token_budget=8192.0, attention_dp=1), "token_budget must be an integer >= 1"),
        (dict(token_budget=True, attention_dp=1), "token_budget must be an integer >= 1"),
        (dict(token_budget=8192, attention_dp=0), "attention_dp must be an integer >= 1"),
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CostmodelError, match=message):
        rank_token_budget("vllm", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["SGLang", "sgl", "tgi", ""])
def test_an_unknown_engine_is_refused_not_given_the_per_rank_rule(name: str) -> None:
    # "SGLang" divides nothing if read as an unknown engine (8,192 a rank at dp 8, not SGLang's 1,024)
    with pytest.raises(UnknownNameError, match=f"unknown engine {name!r}"):
        rank_token_budget(name, 8192, 8)
    with pytest.raises(UnknownNameError, match="Known: sglang, trtllm, vllm"):
        worker_batched_tokens(name, 8192, attention_dp=8, sequences=8)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_planner_and_the_evaluation_give_a_rank_the_same_budget(engine: str) -> None:
    """An attention-DP worker of 4 ranks at 64 clients (16 a rank): the planner's aggregated worker and
    disaggregated pools (launched with its default budget), and the evaluation's pool engine (the engine's
    default on an H100, the same 8,192 tokens for all three), each rank carrying the engine's rule."""
    model, hardware = load_model("qwen3-30b-a3b"), load_hardware("h100-sxm")
    for engine_name in ENGINES:
        assert token_budget(engine_name, hardware) == pareto.TOKEN_BUDGET == 8192
    layout = pareto._Layout(tp=1, pp=1, ep=4, format="bf16", attention_dp=4)
    built = pareto._engine(model, hardware, layout, "bf16", 1, pareto.TOKEN_BUDGET)
    agg = pareto._launched(built, 64, pareto.TOKEN_BUDGET, engine)
    pool = pareto._disagg_launched(built, pareto.TOKEN_BUDGET, engine)
    formats = row_formats(model, engine, "h100_sxm", "bf16", "bf16")
    row = _pool_engine(model, formats, "h100_sxm", engine, "bf16", 1, 1, 4, {"moe_tp": 1, "moe_ep": 4}, 16)
    expected = RANK_BUDGET_AT_DP4[engine]
    assert agg.rank_batched_tokens == pool.rank_batched_tokens == row.rank_batched_tokens == expected
    assert agg.max_batch_size == row.max_batch_size == 64


@pytest.mark.parametrize("engine", ENGINES)
def test_without_attention_dp_the_planner_launches_what_it_always_did(engine: str) -> None:
    """One rank: every engine's worker carries the planner's budget raised to its clients, the engine
    the planner built before the rule existed (max_batched_tokens = max(budget, clients)), so its figures
    are the same to the bit."""
    model, hardware = load_model("qwen3-30b-a3b"), load_hardware("h100-sxm")
    built = pareto._engine(model, hardware, pareto._Layout(2, 1, 2, "bf16"), "bf16", 1, 4096)
    for clients in (1, 64, 4096, 16384):
        launched = pareto._launched(built, clients, 4096, engine)
        assert (launched.max_batch_size, launched.max_batched_tokens) == (clients, max(4096, clients))
        pool = pareto._disagg_launched(built, max(4096, clients), engine)
        assert (pool.max_batch_size, pool.max_batched_tokens) == (max(4096, clients),) * 2


def test_sglangs_memory_rule_reads_the_launch_value_not_a_ranks_share() -> None:
    """SGLang sizes its reserve from chunked_prefill_size before dividing it among the ranks
    (_handle_gpu_memory_settings runs before handle_data_parallelism), so a worker of 4 ranks at the
    default reserves for the whole 8,192-token value (12,288 MiB of activations' share) while each rank
    chunks 2,048 tokens."""
    model = load_model("qwen3-30b-a3b")
    formats = row_formats(model, "sglang", "h100_sxm", "bf16", "bf16")
    ranked = _pool_engine(
        model, formats, "h100_sxm", "sglang", "bf16", 1, 1, 4, {"moe_tp": 1, "moe_ep": 4}, 16
    )
    assert ranked.rank_batched_tokens == 2048
    memory = float(ranked.hardware.memory_bytes)
    static = sglang_mem_fraction_static(
        memory / MIB, tp=4, pp=1, chunked_prefill_size=8192,
        cuda_graph_max_bs=sglang_cuda_graph_max_bs(memory / MIB, 4), dp_attention=4,
    )  # fmt: skip
    activations = float(np.max(ranked.replica_memory().activation_bytes))
    sized = engine_memory("sglang", ranked, defaults=True, chunked_prefill_size=8192)
    assert sized.usable_fraction == pytest.approx(static + activations / memory, rel=1e-12)
    # the pool engine passes the launch value itself, whatever its worker budget reads
    assert _pool_engine(
        model, formats, "h100_sxm", "sglang", "bf16", 1, 1, 4, {"moe_tp": 1, "moe_ep": 4}, 16, defaults=True
    ).usable_fraction == pytest.approx(static + activations / memory, rel=1e-12)  # fmt: skip


def test_sglangs_memory_rule_reads_the_launch_value_whatever_the_sequences() -> None:
    """4,096 sequences a rank at DP 4 raise the worker's budget to 16,384 tokens (every sequence decodes a
    token), but SGLang's reserve still reads the launch's 8,192-token chunked_prefill_size; nor is the
    worker's budget the launch value where the ranks do not divide it (8,192 // 3 x 3 = 8,190)."""
    model = load_model("qwen3-30b-a3b")
    formats = row_formats(model, "sglang", "h100_sxm", "bf16", "bf16")
    for dp, batch in ((4, 4096), (4, 16)):
        many = _pool_engine(
            model, formats, "h100_sxm", "sglang", "bf16", 1, 1, dp, {"moe_tp": 1, "moe_ep": dp}, batch,
            defaults=True,
        )  # fmt: skip
        memory = float(many.hardware.memory_bytes)
        static = sglang_mem_fraction_static(
            memory / MIB, tp=dp, pp=1, chunked_prefill_size=8192,
            cuda_graph_max_bs=sglang_cuda_graph_max_bs(memory / MIB, dp), dp_attention=dp,
        )  # fmt: skip
        activations = float(np.max(many.replica_memory().activation_bytes))
        assert many.usable_fraction == pytest.approx(static + activations / memory, rel=1e-12)
    assert many.max_batched_tokens == 8192  # at 16 a rank the rule leaves the launch value
    assert worker_batched_tokens("sglang", 8192, attention_dp=4, sequences=4 * 4096) == 16384
    assert worker_batched_tokens("sglang", 8192, attention_dp=3, sequences=3) == 8190


@pytest.mark.parametrize("engine", ENGINES)
def test_a_launch_value_through_the_rule_gives_each_rank_the_engines_budget(engine: str) -> None:
    """Engine.max_batched_tokens is the ranks' budgets together, no engine's flag: a vLLM / TensorRT-LLM
    launch of 8,192 at DP 8 gives a rank 8,192 tokens (65,536 a replica), SGLang's 8,192 // 8 = 1,024."""
    from costmodel.serving import Engine
    from costmodel.specs import Deployment, Workload

    model, hardware = load_model("qwen3-30b-a3b"), load_hardware("h100-sxm")
    tokens = worker_batched_tokens(engine, 8192, attention_dp=8, sequences=64)
    built = Engine(
        model, hardware, Workload(1, 1, 1), Deployment(tp=1, attention_dp=8, moe_ep=8),
        max_batch_size=64, max_batched_tokens=tokens,
    )  # fmt: skip
    assert built.rank_batched_tokens == (1024 if engine == "sglang" else 8192)


def test_sglang_caps_a_ranks_prompts_at_max_prefill_tokens() -> None:
    """SGLang's PrefillAdder stops adding prompts once ``--max-prefill-tokens`` (default 16,384, not
    divided under DP attention) is spent: a launch of 32,768 at one rank batches 16,384 prompt tokens,
    one that raises the cap to 32,768 all of them; at DP 4 the share 8,192 is below the default cap."""
    from dataclasses import replace

    from costmodel.token_budget import SGLANG_MAX_PREFILL_TOKENS
    from validation.public.inferencex_disagg import SGLANG_RECIPES, sglang_rank_limits

    assert SGLANG_MAX_PREFILL_TOKENS == 16384
    assert rank_token_budget("sglang", 32768, 1) == 16384
    assert rank_token_budget("sglang", 32768, 1, max_prefill_tokens=32768) == 32768
    assert rank_token_budget("sglang", 32768, 4) == 8192
    assert rank_token_budget("sglang", 32768, 4, max_prefill_tokens=4096) == 4096
    assert worker_batched_tokens("sglang", 32768, attention_dp=1, sequences=16) == 16384
    # the other engines have no such option: their launch value is the budget, and naming one is an error
    assert rank_token_budget("vllm", 32768, 1) == rank_token_budget("trtllm", 32768, 1) == 32768
    with pytest.raises(CostmodelError, match="max_prefill_tokens is SGLang's launch option"):
        rank_token_budget("vllm", 32768, 1, max_prefill_tokens=16384)
    with pytest.raises(CostmodelError, match="max_prefill_tokens must be an integer >= 1"):
        rank_token_budget("sglang", 32768, 1, max_prefill_tokens=0)
    # the evaluation's recipe path and the planner's rule are one rule
    recipe = replace(
        SGLANG_RECIPES[0], prefill_chunked_prefill_size=32768, prefill_max_prefill_tokens=16384,
        prefill_attention_dp=False,
    )  # fmt: skip
    assert sglang_rank_limits(recipe)[1] == rank_token_budget("sglang", 32768, 1) == 16384


def test_the_planner_gives_an_sglang_rank_at_most_max_prefill_tokens() -> None:
    model, hardware = load_model("qwen3-30b-a3b"), load_hardware("h100-sxm")
    built = pareto._engine(model, hardware, pareto._Layout(1, 1, 1, "bf16"), "bf16", 1, 32768)
    assert pareto._launched(built, 16, 32768, "sglang").rank_batched_tokens == 16384
    assert pareto._launched(built, 16, 32768, "vllm").rank_batched_tokens == 32768


def test_the_planners_default_is_each_engines_own_only_where_its_docstring_says() -> None:
    """pareto.TOKEN_BUDGET (8,192) is vLLM's API-server default on GPUs of 70 GiB or more other than the
    A100 and TensorRT-LLM's everywhere; SGLang's own default is 16,384 from 160 GiB and vLLM's 2,048 on an
    A100 or a smaller GPU, as the CLI help and the TOKEN_BUDGET docstring say."""
    for name in ("h100-sxm", "h200", "b200"):
        hardware = load_hardware(name)
        assert token_budget("vllm", hardware) == token_budget("trtllm", hardware) == pareto.TOKEN_BUDGET
    assert token_budget("sglang", load_hardware("h200")) == pareto.TOKEN_BUDGET
    assert token_budget("sglang", load_hardware("b200")) == 16384
    assert (
        token_budget("vllm", load_hardware("a100-80gb"))
        == token_budget("vllm", load_hardware("l40s"))
        == 2048
    )


@pytest.mark.parametrize(("engine", "rank_budget"), [("sglang", 16384), ("vllm", 32768), ("trtllm", 32768)])
def test_a_disaggregated_pool_keeps_sglangs_prefill_cap(engine: str, rank_budget: int) -> None:
    """Oracle: SGLang's PrefillAdder stops a prefill batch at --max-prefill-tokens, 16,384 by default
    (ServerArgs.max_prefill_tokens), so a pool launched with --chunked-prefill-size 32768 prefills at most
    two 8,192-token prompts a pass; vLLM and TensorRT-LLM have no such cap and take four. The pools admitted
    32,768 sequences, which raised SGLang's worker budget back to 32,768 (every sequence decodes a token)
    and cancelled the cap; they now admit what the budget holds, at least the decode worker's clients."""
    from costmodel.disagg import prefill_side

    model, hardware = load_model("qwen3-8b"), load_hardware("h200")
    built = pareto._engine(model, hardware, pareto._Layout(1, 1, 1, "fp8"), "bf16", 1, 32768)
    pool = pareto._disagg_launched(built, 32768, engine, 64)
    assert pool.rank_batched_tokens == rank_budget
    assert pool.max_batch_size >= 64  # a decode worker's clients still fit
    side = prefill_side(pool, isl=8192)
    assert float(np.asarray(side.prompts_per_pass).ravel()[0]) == rank_budget // 8192


# each engine's default launch value by device, written out from its source: vLLM's API server 8,192 on a GPU
# of 70 GiB or more that is not an A100, else 2,048 (EngineArgs.get_batch_defaults); SGLang's
# chunked_prefill_size 2,048 below 35 GiB, 4,096 below 60, 8,192 below 160, else 16,384
# (ServerArgs._handle_gpu_memory_settings); TensorRT-LLM's max_num_tokens 8,192
DEFAULTS = {
    # device: (its memory [GiB] in the profile, vLLM, SGLang, TensorRT-LLM)
    "l4": (24, 2048, 2048, 8192),
    "a10g": (24, 2048, 2048, 8192),
    "l40s": (48, 2048, 4096, 8192),
    "a100-40gb": (40, 2048, 4096, 8192),
    "a100-80gb": (80, 2048, 8192, 8192),
    "h100-sxm": (80, 8192, 8192, 8192),
    "h200": (141, 8192, 8192, 8192),
    "b200": (180, 8192, 16384, 8192),
    "mi300x": (192, 8192, 16384, 8192),
}


@pytest.mark.parametrize("device", DEFAULTS)
def test_each_engines_default_budget_follows_the_device(device: str) -> None:
    from costmodel.token_budget import default_token_budget

    hardware = load_hardware(device)
    gib, *budgets = DEFAULTS[device]
    assert hardware.memory_bytes == gib * 2**30
    for engine, expected in zip(("vllm", "sglang", "trtllm"), budgets, strict=True):
        assert default_token_budget(engine, hardware) == expected, engine
        assert token_budget(engine, hardware) == expected  # the evaluation reads the same rule
    with pytest.raises(UnknownNameError):
        default_token_budget("SGLang", hardware)


@pytest.mark.parametrize("device", ["cpu", "tpu-v5e"])
def test_no_engine_default_is_given_on_a_tpu_or_cpu_and_the_planner_asks_for_the_budget(device: str) -> None:
    """The three rules are GPU rules; vLLM's CPU default (2,048 x tp x pp) depends on the layout and its
    TPU table is not settled from source: every engine refuses there, naming the budget to give, and a
    given budget still plans (before: the GPU rule, e.g. vLLM 2,048 and SGLang 16,384 on the CPU)."""
    from costmodel.token_budget import default_token_budget

    hardware = load_hardware(device)
    for engine in ("vllm", "sglang", "trtllm"):
        with pytest.raises(
            CostmodelError, match=f"no default token budget for {engine} on {device}.*token_budget"
        ):
            default_token_budget(engine, hardware)
    args: dict[str, object] = dict(isl=512, osl=16, formats=("bf16",), tp=(1,), pp=(1,), modes=("agg",),
                                   concurrency=(1,), engine="vllm")  # fmt: skip
    with pytest.raises(CostmodelError, match="token_budget"):
        pareto.frontier("gpt2", [device], **args)  # type: ignore[arg-type]
    assert len(pareto.frontier("gpt2", [device], token_budget=2048, **args).points) == 1  # type: ignore[arg-type]
    from typer.testing import CliRunner

    from costmodel.cli import app

    flags = ["pareto", "--model", "gpt2", "--hardware", device, "--isl", "512", "--osl", "16", "--mode", "agg",
             "--concurrency", "1", "--tp", "1", "--pp", "1", "--formats", "bf16", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, flags)
    assert result.exit_code != 0
    assert "give the launch value as --token-budget" in result.output
    assert "engine default" not in result.output
    assert "Traceback" not in result.output


def test_the_planner_launches_each_device_with_its_engines_default() -> None:
    """Without token_budget, an A100's vLLM workers run vLLM's 2,048 and an H100's its 8,192: the same
    points as those budgets given by hand, device by device (before session 19: 8,192 on both)."""
    args: dict[str, object] = dict(isl=4096, osl=64, formats=("bf16",), tp=(1,), pp=(1,), modes=("agg",),
                                   concurrency=(1, 8), engine="vllm")  # fmt: skip
    found = pareto.frontier("llama-3-8b", ["a100-80gb", "h100-sxm"], **args).points  # type: ignore[arg-type]
    for device, budget in (("a100-80gb", 2048), ("h100-sxm", 8192)):
        given = pareto.frontier("llama-3-8b", [device], token_budget=budget, **args).points  # type: ignore[arg-type]
        mine = found.system == device
        assert np.array_equal(found.ttft_s[mine], given.ttft_s)
        assert np.array_equal(found.tpot_s[mine], given.tpot_s)
    a100 = pareto.frontier("llama-3-8b", ["a100-80gb"], token_budget=8192, **args).points  # type: ignore[arg-type]
    assert np.all(found.ttft_s[found.system == "a100-80gb"] > a100.ttft_s)  # 4,096 tokens in two chunks
