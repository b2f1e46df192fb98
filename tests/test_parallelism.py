"""Attention data parallelism and separate MoE TP / EP degrees: the Deployment fields, memory per GPU, the
operator graph's FLOPs and collectives, the serving engine's capacity and step time."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import costmodel
from costmodel.errors import CostmodelError
from costmodel.flops import forward_flop
from costmodel.memory import fit, kv_cache_bytes, replica_memory
from costmodel.ops import forward_ops
from costmodel.roofline import link_bandwidth_bytes_per_s, op_times
from costmodel.serving import Engine, kv_capacity_tokens, step_time
from costmodel.specs import Deployment, Efficiency, Workload
from tests.conftest import PUBLIC_GPU

DSV3 = costmodel.load_model("deepseek-v3")
B200 = costmodel.load_hardware("b200")
NO_OVERHEAD = Efficiency(
    matmul_fraction=1.0, memory_bandwidth_fraction=1.0, interconnect_fraction=1.0, kernel_overhead_s=0.0
)


# ----------------------------------------------------------------------------------------------------
# Deployment
# ----------------------------------------------------------------------------------------------------


def test_the_older_ep_keeps_its_meaning() -> None:
    d = Deployment(tp=8, ep=4)
    assert (d.moe_ep_size, d.moe_tp_size, d.moe_gpus, d.gpus_per_replica) == (4, 2, 8, 8)
    assert Deployment(tp=8, ep=4) != Deployment(tp=8, moe_ep=4)  # two spellings, one layout
    assert Deployment(tp=8, moe_ep=4).moe_tp_size == 2


def test_attention_dp_counts_gpus_and_splits_the_moe_layer() -> None:
    d = Deployment(tp=2, attention_dp=4, moe_tp=2, moe_ep=4, pp=2, replicas=3)
    assert (d.moe_gpus, d.gpus_per_replica, d.n_gpus) == (8, 16, 48)
    assert Deployment(tp=1, attention_dp=8, moe_ep=8).moe_tp_size == 1
    assert Deployment(tp=1, attention_dp=8).moe_tp_size == 8  # experts TP over all 8 by default


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tp": 1, "attention_dp": 4, "moe_tp": 2, "moe_ep": 4}, r"moe_tp x moe_ep \(2 x 4 = 8\) must equal"),
        ({"tp": 4, "ep": 2, "moe_ep": 4}, r"ep \(2\) and moe_ep \(4\) disagree"),
        ({"tp": 2, "attention_dp": 3, "moe_ep": 4}, r"moe_ep \(4\) must divide tp x attention_dp"),
        ({"tp": 4, "ep": 3}, r"ep \(3\) must divide tp \(4\)"),
        ({"attention_dp": 0}, "attention_dp"),
        ({"moe_tp": 0}, "moe_tp"),
    ],
)
def test_incoherent_splits_are_one_error_naming_the_field(fields: dict[str, int], message: str) -> None:
    with pytest.raises(CostmodelError, match=message):
        Deployment(**fields)


def test_the_model_must_fit_the_split() -> None:
    with pytest.raises(ValueError, match=r"attention_dp \(2\) > 1 needs a mixture-of-experts model"):
        Deployment(attention_dp=2).check(costmodel.load_model("llama-3-8b"))
    with pytest.raises(ValueError, match=r"moe_ep \(512\) must divide moe.n_experts \(256\)"):
        Deployment(tp=8, attention_dp=64, moe_ep=512, moe_tp=1).check(DSV3)
    with pytest.raises(ValueError, match=r"moe_tp \(3\) must divide moe.expert_d_ff \(2048\)"):
        Deployment(tp=1, attention_dp=3, moe_tp=3).check(DSV3)
    # moe_tp left to its default (tp x attention_dp / moe_ep = 3): the message says where the 3 comes from,
    # since the caller wrote only attention_dp. No split of 3 GPUs exists: 2048 = 2^11 and 256 = 2^8 have no
    # factor 3, so the advice is another attention_dp, not a moe_tp / moe_ep pair
    with pytest.raises(
        ValueError, match=r"moe_tp, by default tp x attention_dp / moe_ep \(1 x 3 / 1 = 3\)"
    ) as e:
        Deployment(tp=1, attention_dp=3).check(DSV3)
    assert "choose an attention_dp with tp x attention_dp dividing 2048 x 256" in str(e.value)
    assert "e.g." not in str(e.value)
    # legacy ep: the message names the field the caller set
    with pytest.raises(ValueError, match=r"tp x attention_dp / ep \(8 x 3 / 2 = 12\)"):
        Deployment(tp=8, attention_dp=3, ep=2).check(DSV3)


def test_the_moe_split_the_error_names_is_one_the_model_takes() -> None:
    """Oracle: the split named must pass the same check. tp 8 x attention_dp 512 = 4,096 GPUs: moe_tp's default
    4,096 does not divide DeepSeek-V3's 2,048-wide experts, but 4,096 = 2,048 x 256 divides as moe_tp | 2,048
    and moe_ep | 256."""
    with pytest.raises(ValueError, match=r"e\.g\. moe_tp=(\d+), moe_ep=(\d+)") as e:
        Deployment(tp=8, attention_dp=512).check(DSV3)
    found = re.search(r"moe_tp=(\d+), moe_ep=(\d+)", str(e.value))
    assert found is not None
    moe_tp, moe_ep = int(found[1]), int(found[2])
    assert moe_tp * moe_ep == 8 * 512
    Deployment(tp=8, attention_dp=512, moe_tp=moe_tp, moe_ep=moe_ep).check(DSV3)  # raises nothing


# ----------------------------------------------------------------------------------------------------
# Memory per GPU
# ----------------------------------------------------------------------------------------------------

# DeepSeek-V3's routed experts (its config.json: 61 layers, the first 3 dense; 256 experts of
# moe_intermediate_size 2048 on hidden_size 7168, gate, up and down projections), counted by hand
DSV3_EXPERT_PARAMS = (61 - 3) * 256 * 3 * 7168 * 2048
# and its MLA down projections (q_a 7168 -> 1536, kv_a 7168 -> 512 + 64) with their two RMSNorms, which every
# TP rank holds whole (SGLang's fused_qkv_a_proj_with_mqa is a ReplicatedLinear)
DSV3_REPLICATED_PARAMS = 61 * (7168 * (1536 + 512 + 64) + 1536 + 512)


@pytest.mark.parametrize(("tp", "dp", "pp"), [(1, 8, 1), (2, 4, 1), (1, 4, 2), (8, 1, 1), (4, 16, 2)])
def test_weights_summed_over_gpus_replicate_all_but_the_routed_experts(tp: int, dp: int, pp: int) -> None:
    """Every GPU of the replica together hold attention_dp copies of everything outside the routed
    experts, one copy of the experts, and tp x attention_dp copies of the replicated MLA down
    projections."""
    total = 2 * costmodel.param_count(DSV3).total  # bf16
    experts, replicated = 2 * DSV3_EXPERT_PARAMS, 2 * DSV3_REPLICATED_PARAMS
    device = replica_memory(DSV3, tp=tp, pp=pp, attention_dp=dp)
    summed = device.weight_bytes * tp * dp * pp
    assert summed == pytest.approx(dp * (total - experts) + experts + (tp - 1) * dp * replicated, rel=1e-14)


def test_deepseek_fp8_with_attention_dp_on_eight_gpus() -> None:
    """8 x H200, SGLang --tp 8 --dp 8 --enable-dp-attention: each GPU holds the whole model but 7/8 of
    its routed experts."""
    fp8 = replica_memory(DSV3, tp=1, attention_dp=8, weight_dtype="fp8")
    whole = costmodel.weight_bytes(DSV3, weight_dtype="fp8")
    tp8 = replica_memory(DSV3, tp=8, weight_dtype="fp8")
    assert tp8.weight_bytes < fp8.weight_bytes < whole
    # the latent cache is not split by attention DP: each rank caches its own sequences in full
    assert fp8.kv_bytes_per_token == tp8.kv_bytes_per_token == costmodel.kv_bytes_per_token(DSV3)


@pytest.mark.parametrize(("batch", "dp"), [(64, 8), (61, 8), (7, 8), (1, 16)])
def test_each_rank_caches_its_own_sequences(batch: int, dp: int) -> None:
    ctx = 3000
    report = fit(DSV3, B200, batch_size=batch, context_len=ctx, tp=1, attention_dp=dp, weight_dtype="fp8")
    rank = math.ceil(batch / dp)  # the fullest rank
    assert float(report.kv_cache_bytes_per_gpu) == int(kv_cache_bytes(DSV3, batch_size=rank, context_len=ctx))
    # the replica's largest batch is attention_dp times one rank's, and exact against `fits`
    most = int(report.max_batch_size)
    assert most % dp == 0
    assert most > 0
    at = fit(DSV3, B200, batch_size=most, context_len=ctx, tp=1, attention_dp=dp, weight_dtype="fp8")
    over = fit(DSV3, B200, batch_size=most + 1, context_len=ctx, tp=1, attention_dp=dp, weight_dtype="fp8")
    assert bool(at.fits)
    assert not bool(over.fits)


def test_size_reports_the_layout() -> None:
    s = costmodel.size(
        DSV3,
        B200,
        batch_size=64,
        prompt_len=1024,
        output_len=1024,
        weight_dtype="fp8",
        deployment=Deployment(tp=1, attention_dp=8, moe_ep=8),
    )
    assert (s.n_gpus, s.attention_dp) == (8, 8)
    assert s.kv_cache_bytes_per_gpu == s.kv_cache_bytes / 8


# ----------------------------------------------------------------------------------------------------
# Operator graph
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["deepseek-v3", "qwen3-30b-a3b", "mixtral-8x7b"])
@pytest.mark.parametrize(("tp", "dp", "ep"), [(1, 8, 8), (1, 4, 1), (1, 4, 2), (2, 4, 8), (4, 4, 16)])
@pytest.mark.parametrize(("batch", "new", "past"), [(1, 1, 100), (4, 512, 0), (3, 7, 5000)])
def test_flops_over_every_gpu_are_the_forward_pass_of_every_rank(
    name: str, tp: int, dp: int, ep: int, batch: int, new: int, past: int
) -> None:
    """Summed over the tp x attention_dp GPUs, the counted FLOPs are one forward pass of all ranks'
    sequences, plus the router and MLA's down projections (q_a, kv_a), which every GPU of a rank runs
    whole (replicated over tp)."""
    model = costmodel.load_model(name)
    if model.moe is None or model.moe.n_experts % ep or (model.n_heads or 0) % tp:
        pytest.skip("split does not apply")
    ops = forward_ops(
        model, batch_size=batch, new_tokens=new, past_tokens=past, tp=tp, ep=ep, attention_dp=dp,
        moe_tp=tp * dp // ep,
    )  # fmt: skip
    per_gpu = sum(op.flop * op.layers for op in ops if op.counted)
    router = 2.0 * batch * new * model.d_model * model.moe.n_experts * model.n_moe_layers
    if model.mla is not None:
        a_width = (model.mla.q_lora_rank or 0) + model.mla.kv_lora_rank + model.mla.qk_rope_head_dim
        router += 2.0 * batch * new * model.d_model * a_width * model.n_layers
    expected = forward_flop(model, batch_size=batch * dp, new_tokens=new, past_tokens=past).total
    assert per_gpu * tp * dp == pytest.approx(expected + (tp - 1) * dp * router, rel=1e-12)


def test_attention_dp_gathers_and_scatters_tokens_around_the_moe_layer() -> None:
    B, dp, tp = 16, 8, 2
    ops = {op.name: op for op in forward_ops(DSV3, batch_size=B, new_tokens=1, tp=tp, ep=16, attention_dp=dp)}
    gathered = B * dp * DSV3.d_model * 2  # every rank's tokens, bf16
    for name, kind in (("allgather_moe", "allgather"), ("reducescatter_moe", "reducescatter")):
        op = ops[name]
        assert (op.kind, op.group, op.span, op.layers) == (kind, dp, tp * dp, DSV3.n_moe_layers)
        assert float(op.bytes_read) == gathered
    assert "alltoall_dispatch" not in ops
    assert ops["allreduce_moe"].group == tp  # within the rank: the shared experts' and slices' sums
    assert float(ops["allreduce_attn"].bytes_read) == B * DSV3.d_model * 2  # the rank's own tokens
    # a large batch touches every expert: the GPUs together read each expert weight once
    big = {
        op.name: op for op in forward_ops(DSV3, batch_size=4096, new_tokens=1, tp=tp, ep=16, attention_dp=dp)
    }
    read = sum(big[n].weight_bytes for n in ("experts_up", "experts_down")) * DSV3.n_moe_layers * tp * dp
    assert read == pytest.approx(2 * DSV3_EXPERT_PARAMS, rel=1e-12)


def test_the_moe_gather_moves_the_bf16_residual_stream_unless_the_engine_quantizes_first() -> None:
    """The attention-DP ranks gather the hidden states for the MoE and reduce-scatter its output as the
    residual stream holds them, bf16 (2 bytes an element), whatever format the matmuls quantize their
    inputs to (fp8 block scales: TensorRT-LLM's DEEPGEMM MoE gathers bf16 and quantizes after). Where the
    engine quantizes first (TensorRT-LLM's nvfp4 MoE, ``quantized_moe_gather``) the gather moves nvfp4:
    4 bits and one 8-bit scale per 16 elements (the NVFP4 layout, 0.5625 bytes an element), the
    reduce-scatter still bf16; fp8 block-scaled inputs are gathered in bf16 either way."""
    B, dp = 16, 8
    kw = {"batch_size": B, "new_tokens": 1, "tp": 1, "ep": 8, "attention_dp": dp}
    tokens = B * dp * DSV3.d_model
    for fmt, first in (("fp8_block", False), ("fp8_block", True), ("nvfp4", False), ("nvfp4", True)):
        ops = {
            op.name: op
            for op in forward_ops(
                DSV3, weight_dtype=fmt, activation_dtype=fmt, quantized_moe_gather=first, **kw
            )
        }
        gather = tokens * (0.5 + 1 / 16) if (fmt, first) == ("nvfp4", True) else tokens * 2
        assert float(ops["allgather_moe"].bytes_read) == pytest.approx(gather, rel=1e-12), (fmt, first)
        assert float(ops["reducescatter_moe"].bytes_read) == tokens * 2, (fmt, first)


def test_an_rmsnorm_over_all_heads_all_reduces_its_mean_squares_under_tp() -> None:
    """MiniMax-M2's q and k norms span every head (``qk_norm: per_layer``): under TP each rank holds some
    heads, so each attention layer all-reduces the two partial mean squares per token, fp32 (vLLM's
    ``MiniMaxText01RMSNormTP.forward_qk``: ``torch.cat([q_var, k_var], -1)`` of two [T, 1] fp32 tensors).
    A per-head norm (Qwen3) and a single GPU need none."""
    minimax, qwen = costmodel.load_model("minimax-m2.5"), costmodel.load_model("qwen3-32b")
    B, n, tp = 8, 3, 4
    ops = {op.name: op for op in forward_ops(minimax, batch_size=B, new_tokens=n, tp=tp)}
    op = ops["allreduce_qk_norm"]
    per_token = 2 * np.dtype(np.float32).itemsize  # q's and k's mean square
    assert (op.kind, op.group, op.layers) == ("allreduce", tp, minimax.n_attention_layers)
    assert float(op.bytes_read) == B * n * per_token
    assert "allreduce_qk_norm" not in {op.name for op in forward_ops(minimax, batch_size=B, new_tokens=n)}
    assert "allreduce_qk_norm" not in {op.name for op in forward_ops(qwen, batch_size=B, new_tokens=n, tp=tp)}


def test_a_collective_beyond_the_scale_up_domain_runs_on_the_network() -> None:
    ops = [op for op in forward_ops(DSV3, batch_size=4, new_tokens=1, tp=1, ep=64, attention_dp=64)
           if op.name == "allgather_moe"]  # fmt: skip
    inside = op_times(ops, B200, efficiency=NO_OVERHEAD, scale_up_domain=64)
    across = op_times(ops, B200, efficiency=NO_OVERHEAD, scale_up_domain=8)
    message = 4 * 64 * DSV3.d_model * 2
    intra, inter = (link_bandwidth_bytes_per_s(B200, link) for link in ("intra", "inter"))
    ring = 63 / 64 * message / intra + 10e-6  # one ring over the 64 GPUs of one NVLink domain + latency
    assert float(inside.time_s(0)) == pytest.approx(ring)
    # 8 nodes of 8: the ring inside each node, then each GPU's eighth of the buffer over its own NIC,
    # gathered among the 8 nodes on that GPU's rail
    hierarchical = (7 / 8 * message / intra + 10e-6) + (7 / 8 * message / 8 / inter + 10e-6)
    assert float(across.time_s(0)) == pytest.approx(hierarchical)


# ----------------------------------------------------------------------------------------------------
# Serving
# ----------------------------------------------------------------------------------------------------


def test_each_rank_holds_its_own_kv_cache() -> None:
    dep = Deployment(tp=1, attention_dp=8, moe_ep=8)
    rank = replica_memory(DSV3, tp=1, attention_dp=8, weight_dtype="fp8", prefill_tokens=8192)
    room = 0.9 * B200.memory_bytes - rank.weight_bytes - float(rank.activation_bytes)
    expected = 8 * int(room // rank.kv_bytes_per_token)
    assert kv_capacity_tokens(DSV3, B200, weight_dtype="fp8", deployment=dep) == expected
    fp8 = Workload(1, 1, 1, weight_dtype="fp8")
    engine = Engine(DSV3, B200, fp8, dep, max_batch_size=512, max_batched_tokens=8 * 8192)  # 8192 a rank
    per_rank = (expected // 8) // 16  # blocks of 16 tokens on one rank
    assert int(engine.max_concurrency(2048).max_sequences) == 8 * (per_rank // (2048 // 16))


def test_a_rank_attends_only_to_its_own_sequences() -> None:
    """The decodes' attention of r ranks at r x b sequences is that of one GPU at b sequences (tp = 1)."""
    model = costmodel.load_model("qwen3-30b-a3b")
    w = Workload(1, 1, 1)
    dp = Deployment(tp=1, attention_dp=4, moe_ep=4)
    one = Deployment()
    for b, c in ((8, 1000), (64, 4000)):
        with_dp = step_time(model, B200, w, dp, decode_batch=4 * b, decode_context=c) - step_time(
            model, B200, w, dp, decode_batch=4 * b
        )
        alone = step_time(model, B200, w, one, decode_batch=b, decode_context=c) - step_time(
            model, B200, w, one, decode_batch=b
        )
        assert float(with_dp) == pytest.approx(float(alone), rel=1e-12)


def test_the_closed_loop_runs_each_rank_on_its_share() -> None:
    from costmodel.closed_loop import closed_loop

    model = costmodel.load_model("qwen3-30b-a3b")
    dep = Deployment(tp=1, attention_dp=4, moe_ep=4)
    engine = Engine(model, B200, Workload(1, 1, 1), dep, max_batch_size=4 * 32, max_batched_tokens=4 * 8192)
    result = closed_loop(engine, concurrency=4 * 32, isl=1024, osl=256)
    assert float(result.running) == pytest.approx(4 * 32)
    assert float(result.output_tokens_per_s) == pytest.approx(float(result.requests_per_s) * 256, rel=1e-12)
    # the replica decodes what all its ranks decode
    assert 0 < float(result.decodes_per_iteration) <= float(result.running)


# ----------------------------------------------------------------------------------------------------
# The public serving sample
# ----------------------------------------------------------------------------------------------------


def test_attention_dp_rows_of_the_sample_are_predicted(tmp_path: Path, silicon_table: pd.DataFrame) -> None:
    from validation.public.silicon import predict_silicon

    table = silicon_table
    rows = table[(table["model_path"] == "openai/gpt-oss-120b") & (table["attention_dp_size"] > 1)]
    assert len(rows) >= 10
    rows.drop(columns="concurrency").to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    name = "openai--gpt-oss-120b_config.json"
    shutil.copy(PUBLIC_GPU / "model_configs" / name, tmp_path / "model_configs" / name)
    predicted = predict_silicon(tmp_path, {})
    assert predicted["covered"].all(), predicted["reason"].value_counts()
    assert np.all(predicted[["predicted_ttft_ms", "predicted_tpot_ms"]].to_numpy() > 0)


def test_fewer_clients_than_ranks_is_refused_naming_concurrency() -> None:
    from costmodel.closed_loop import closed_loop

    model = costmodel.load_model("qwen3-30b-a3b")
    engine = Engine(
        model, B200, Workload(1, 1, 1), Deployment(tp=1, attention_dp=8, moe_ep=8), max_batch_size=64
    )
    with pytest.raises(CostmodelError, match=r"concurrency \(4\) is below attention_dp \(8\)"):
        closed_loop(engine, concurrency=4, isl=128, osl=16)


# ----------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------


def test_estimate_takes_the_split_and_names_a_bad_one() -> None:
    import json

    from typer.testing import CliRunner

    from costmodel.cli import app

    runner = CliRunner()
    args = ["estimate", "--model", "deepseek-v3", "--hardware", "h200", "--weight-dtype", "fp8"]
    ok = runner.invoke(app, [*args, "--attention-dp", "8", "--moe-ep", "8", "--json"])
    assert ok.exit_code == 0, ok.output
    figures = json.loads(ok.output)
    assert (figures["n_gpus"], figures["attention_dp"]) == (8, 8)
    bad = runner.invoke(app, [*args, "--attention-dp", "8", "--moe-ep", "4", "--moe-tp", "4"])
    assert bad.exit_code == 2
    assert "--moe-tp x --moe-ep (4 x 4 = 16) must equal the GPUs of the MoE layer" in bad.output


def test_the_simulator_refuses_attention_dp() -> None:
    from costmodel.serving import Lengths, Traffic
    from costmodel.simulate import serve

    model = costmodel.load_model("qwen3-30b-a3b")
    engine = Engine(model, B200, Workload(1, 1, 1), Deployment(tp=1, attention_dp=2, moe_ep=2))
    traffic = Traffic(1.0, Lengths.fixed(128), Lengths.fixed(16))
    with pytest.raises(CostmodelError, match=r"attention_dp \(2\) > 1 is not simulated"):
        serve(engine, traffic, n_requests=10)
