"""estimate(), sweep() and train(): physics the time model must obey, each derived in its docstring.

Accuracy against published measurements is not pinned here: ``benchmarks/bench_accuracy.py`` prints it and
docs/performance.md reports it. What is tested is what first principles fix: bounds (no step is faster
than reading its bytes at the datasheet bandwidth or doing its FLOPs at the datasheet peak), orderings
(fewer bytes per weight never slow a memory-bound step) and hand-derived quantities.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import costmodel
from costmodel.estimate import estimate, sweep, train
from costmodel.roofline import ridge_point_flop_per_byte
from costmodel.specs import Deployment, Workload


def test_batch1_decode_is_bounded_by_streaming_the_weights() -> None:
    """A batch-1 decode step reads every matmul weight once (the output head included; the embedding is
    only gathered, 2-7 % of the bytes, so the bound below is that much too strict and still holds): it
    cannot beat weight bytes / datasheet bandwidth (Llama-2-7B on an A100-80GB: 2,039 GB/s), and it must
    come within twice that bound (nothing else is large at batch 1 and a 200-token context)."""
    a100 = costmodel.load_hardware("a100-80gb")
    m = costmodel.load_model("llama-2-7b")
    for dtype in ("bf16", "int8", "int4"):
        bound_s = costmodel.weight_bytes(m, weight_dtype=dtype) / a100.memory_bandwidth_bytes_per_s
        tpot = float(estimate(m, a100, Workload(1, 5, 200, weight_dtype=dtype)).tpot_s)
        assert bound_s < tpot < 2 * bound_s, dtype


def test_fewer_bytes_per_weight_never_slow_a_memory_bound_decode() -> None:
    """At batch 1 decode is memory bound: bf16 (2 bytes/weight) >= int8 (~1) >= int4 (~0.52) in TPOT, on
    every GPU profile; weight-only formats add dequantization work but read fewer bytes."""
    for hw in ("a100-80gb", "h100-sxm", "l40s"):
        t = [float(estimate("llama-2-7b", hw, Workload(1, 128, 64, weight_dtype=d)).tpot_s)
             for d in ("bf16", "int8", "int4")]  # fmt: skip
        assert t[0] > t[1] > t[2], hw


def test_prefill_is_bounded_by_the_compute_peak() -> None:
    """Prefill of 2,048 tokens is compute bound: TTFT >= FLOPs / dense peak of the compute dtype, so fp8
    (twice the H100's bf16 peak) can at most halve it, and it is slower than the bound."""
    from costmodel.flops import forward_flop

    h100 = costmodel.load_hardware("h100-sxm")
    flop = float(
        forward_flop(costmodel.load_model("llama-2-7b"), batch_size=1, new_tokens=2048, logits="last").total
    )
    ttft = {}
    for dtype in ("bf16", "fp8"):
        w = Workload(1, 2048, 1, weight_dtype=dtype, activation_dtype=dtype, kv_dtype=dtype)
        ttft[dtype] = float(estimate("llama-2-7b", h100, w).ttft_s)
        assert ttft[dtype] > flop / h100.peak_flop_per_s(dtype)
    assert ttft["bf16"] / 2 <= ttft["fp8"] < ttft["bf16"]


def test_ttft_grows_with_the_prompt_and_tpot_with_the_context() -> None:
    prompts = np.array([128, 512, 2048, 8128])  # + 64 output = the 8k context
    r = estimate("llama-3-8b", "h100-sxm", Workload(1, prompts, 64))
    assert np.all(np.diff(r.ttft_s) > 0)
    assert np.all(np.diff(r.tpot_s) > 0)


def test_default_matmul_fraction_is_a_fraction() -> None:
    for name in ("a100-80gb", "h100-sxm", "l40s"):
        eff = costmodel.load_hardware(name).efficiency
        assert 0 < eff.matmul_fraction <= 1
        assert 0 < eff.memory_bandwidth_fraction <= 1


def test_cost_and_energy_arithmetic() -> None:
    w = Workload(8, 1024, 128)
    r = estimate("llama-3-8b", "h100-sxm", w, usd_per_hour=2.0)
    decode_s = float(r.e2e_s - r.ttft_s)
    assert float(r.usd_per_million_output_tokens) == pytest.approx(2.0 / 3600 * decode_s / (8 * 127) * 1e6)
    assert float(r.usd_per_million_input_tokens) == pytest.approx(
        2.0 / 3600 * float(r.ttft_s) / (8 * 1024) * 1e6
    )
    assert float(r.joules_per_million_output_tokens) == pytest.approx(700 * float(r.e2e_s) / (8 * 128) * 1e6)
    two = estimate("llama-3-8b", "h100-sxm", w, Deployment(tp=2, replicas=3), usd_per_hour=2.0)
    assert two.usd_per_hour == pytest.approx(12.0)


def test_sweep_is_tidy_and_matches_estimate() -> None:
    df = sweep(["llama-3-8b", "mistral-7b"], ["h100-sxm", "l40s"], batch_size=[1, 16], prompt_len=[256, 2048],
               output_len=128, weight_dtype=["bf16", "int4"])  # fmt: skip
    assert len(df) == 2 * 2 * 2 * 2 * 2
    row = df[(df.model == "mistral-7b") & (df.hardware == "l40s") & (df.weight_dtype == "int4")
             & (df.batch_size == 16) & (df.prompt_len == 2048)].iloc[0]  # fmt: skip
    one = estimate("mistral-7b", "l40s", Workload(16, 2048, 128, weight_dtype="int4"))
    assert row.tpot_s == pytest.approx(float(one.tpot_s), rel=1e-12)
    assert row.fits == bool(one.fits)


def test_to_frame_per_operator_table() -> None:
    frame = estimate("mixtral-8x7b", "h100-sxm", Workload(4, 512, 32), Deployment(tp=2)).to_frame()
    assert set(frame.phase) == {"prefill", "decode"}
    assert {"experts_up", "router", "attention", "allreduce_attn"} <= set(frame.op)
    assert np.isclose(frame.groupby("phase").time_fraction.sum(), 1.0).all()
    assert set(frame.bound) <= {"compute", "memory", "communication"}


def test_to_frame_takes_an_operator_without_work() -> None:
    """The achieved rate is an operator's FLOPs over its time: 0 FLOP/s for one with no FLOPs, whatever it
    cost (GLM-5's sparse-attention indexer in a prefill shorter than its top-k), and finite everywhere."""
    frame = estimate("glm-5", "h100-sxm", Workload(), Deployment(tp=8)).to_frame()
    idle = frame.flop == 0
    assert idle.any()  # the indexer's GEMMs below the top-k
    assert (frame.achieved_flop_per_s[idle] == 0.0).all()
    busy = frame[~idle]
    assert (busy.time_s > 0).all()
    assert np.allclose(busy.achieved_flop_per_s, busy.flop / busy.time_s, rtol=1e-12, atol=0.0)
    assert np.all(np.isfinite(frame.achieved_flop_per_s))


@pytest.mark.parametrize("bad", [0.0, float("nan")])
def test_to_frame_names_an_operator_with_work_and_no_time(bad: float) -> None:
    """An operator with FLOPs timed at 0 s or NaN has no achieved rate: the table refuses it, naming it."""
    report = estimate("llama-3-8b", "h100-sxm", Workload(1, 128, 8))
    ops, times = report._ops[0], report.prefill_ops
    i = next(j for j, op in enumerate(ops) if op.flop > 0)
    broken = dataclasses.replace(
        times,
        compute_s=tuple(np.asarray(bad) if j == i else c for j, c in enumerate(times.compute_s)),
        memory_s=tuple(np.asarray(bad) if j == i else m for j, m in enumerate(times.memory_s)),
        communication_s=tuple(np.zeros(()) if j == i else k for j, k in enumerate(times.communication_s)),
        overhead_s=0.0,
    )
    with pytest.raises(costmodel.CostmodelError, match=re.escape(repr(ops[i].name))):
        dataclasses.replace(report, prefill_ops=broken).to_frame()


def test_largest_batch_fits_and_one_more_does_not() -> None:
    w = Workload(1, 4096, 512)
    r = estimate("llama-3-8b", "l40s", w)
    b = int(r.max_batch_size)
    assert b > 1
    assert bool(estimate("llama-3-8b", "l40s", Workload(b, 4096, 512)).fits)
    assert not bool(estimate("llama-3-8b", "l40s", Workload(b + 1, 4096, 512)).fits)


def test_roofline_chart_points() -> None:
    h100 = costmodel.load_hardware("h100-sxm")
    roofline = h100.efficiency.model_copy(update={"time_model": "roofline"})
    frame = estimate("llama-3-8b", h100, Workload(1, 1024, 16), efficiency=roofline).to_frame()
    decode = frame[(frame.phase == "decode") & (frame.kind == "matmul")]
    # memory bound at batch 1: achieved FLOP/s = FLOP / (bytes / effective bandwidth + launch overhead)
    bw = h100.memory_bandwidth_bytes_per_s * h100.efficiency.memory_bandwidth_fraction
    big = decode[decode.op == "mlp_up"].iloc[0]
    assert big.bound == "memory"
    per_layer_bytes, per_layer_flop = big.bytes / big.layers, big.flop / big.layers
    expected = per_layer_flop / (per_layer_bytes / bw + h100.efficiency.kernel_overhead_s)
    assert big.achieved_flop_per_s == pytest.approx(expected, rel=1e-9)
    assert big.intensity_flop_per_byte < ridge_point_flop_per_byte(h100)


# ----------------------------------------------------------------------------------------------------
# Weight-only quantization: what is read is what is dequantized
# ----------------------------------------------------------------------------------------------------


def test_quantized_moe_dequantizes_only_the_touched_experts() -> None:
    """Hand count for Mixtral-8x7B (d = 4,096, expert d_ff = 14,336, 8 experts, top-2, gated), one decode
    token: 1 - (1 - 2/8)^1 = 1/4 of the experts (2 of 8) are read, so 2 x 3 x 4,096 x 14,336 = 352,321,536
    expert weights per layer are dequantized, at 2 vector ops each (scale multiply + convert):
    469,762,048 FLOP for the gate/up pair (2/3 of the weights) and 234,881,024 for down. At batch 64,
    1 - 0.75^64 = 1 - 1e-8: every expert. The router and the output head stay in bf16: no dequantization.
    """
    from costmodel.ops import forward_ops

    m = costmodel.load_model("mixtral-8x7b")
    ops = {
        op.name: op for op in forward_ops(m, batch_size=1, new_tokens=1, past_tokens=512, weight_dtype="int4")
    }
    assert float(ops["experts_up"].dequant_flop) == 2 * 2 * (2 * 4096 * 14336)
    assert float(ops["experts_down"].dequant_flop) == 2 * 2 * (4096 * 14336)
    assert float(ops["router"].dequant_flop) == 0.0
    assert float(ops["lm_head"].dequant_flop) == 0.0
    big = {op.name: op for op in forward_ops(m, batch_size=64, new_tokens=1, weight_dtype="int4")}
    assert float(big["experts_up"].dequant_flop) == pytest.approx(2 * 8 * (2 * 4096 * 14336), rel=1e-7)
    # every weight read in int4 is dequantized once: dequant FLOP per weight byte is the same for all
    ratios = {n: float(op.dequant_flop) / float(op.weight_bytes) for n, op in ops.items() if op.dequant_flop}
    assert set(ratios) == {"qkv_proj", "o_proj", "experts_up", "experts_down"}
    assert max(ratios.values()) == pytest.approx(min(ratios.values()), rel=1e-3)


def test_quantized_moe_decode_is_memory_bound_on_a100() -> None:
    """Mixtral-8x7B int4 at batch 1 on an A100 (19.5 TFLOP/s fp32, 2.04 TB/s): per layer the two touched
    experts are 352e6 weights, 0.5195 bytes each with the g128 scales = 183 MB, 112 us at 80 % of the
    bandwidth; dequantizing them is 705e6 vector FLOP = 52 us at 70 % of the fp32 peak. So the expert
    matmuls are memory bound. Charging dequantization for all 8 experts (4 x 52 = 206 us) made them
    compute bound and the step ~55 % slower."""
    r = estimate("mixtral-8x7b", "a100-80gb", Workload(1, 512, 2, weight_dtype="int4"))
    frame = r.to_frame()
    experts = frame[(frame.phase == "decode") & frame.op.isin(["experts_up", "experts_down"])]
    assert set(experts.bound) == {"memory"}


# ----------------------------------------------------------------------------------------------------
# Pipeline parallelism
# ----------------------------------------------------------------------------------------------------

H100_NVLINK_SEND_BYTES_PER_S = 450e9 * 0.8  # datasheet NVLink per direction x default interconnect_fraction
LAUNCH_S = 5e-6  # default kernel_overhead_s


def _send_s(tokens: float, d_model: int = 4096) -> float:
    """One stage-to-stage send on one node at tp = 1: tokens x d_model bf16 values over NVLink + a launch."""
    return tokens * d_model * 2 / H100_NVLINK_SEND_BYTES_PER_S + LAUNCH_S


@pytest.mark.parametrize("pp", [2, 4])
def test_pipeline_one_sequence_walks_the_stages_in_turn(pp: int) -> None:
    """One sequence cannot be split across stages: each decode step runs stage 1, sends its hidden state
    (4,096 bf16 values = 8 KiB), runs stage 2, ... The stage times add up to the whole model's time on one
    GPU, so TPOT(pp) = TPOT(1) + (pp - 1) sends, and prefill likewise with 2,048 tokens per send. Half (or
    three quarters) of the GPUs idle at any moment, so the MBU of the replica drops by pp."""
    w = Workload(1, 2048, 64)
    one = estimate("llama-3-8b", "h100-sxm", w)
    piped = estimate("llama-3-8b", "h100-sxm", w, Deployment(pp=pp))
    assert float(piped.tpot_s) == pytest.approx(float(one.tpot_s) + (pp - 1) * _send_s(1), rel=1e-9)
    assert float(piped.ttft_s) == pytest.approx(float(one.ttft_s) + (pp - 1) * _send_s(2048), rel=1e-9)
    t1, tp_ = float(one.tpot_s), float(piped.tpot_s)  # first-step MBU: same bytes, pp x the GPUs
    assert float(piped.decode_mbu) == pytest.approx(float(one.decode_mbu) / pp * t1 / tp_, rel=2e-3)


def test_pipeline_micro_batches_keep_the_stages_busy() -> None:
    """With B = 8 sequences and pp = 2, two micro-batches of 4 alternate: while one walks the stages the
    other fills the idle one, so each advances one token per (time of 4 sequences through the whole model
    + one send), with no fill or drain per step: TPOT(pp=2, B=8) = TPOT(pp=1, B=4) + send. Throughput
    beats one GPU at B=8 because each pass is smaller."""
    w8, w4 = Workload(8, 1024, 64), Workload(4, 1024, 64)
    piped = estimate("llama-3-8b", "h100-sxm", w8, Deployment(pp=2))
    half = estimate("llama-3-8b", "h100-sxm", w4)
    assert float(piped.tpot_s) == pytest.approx(float(half.tpot_s) + _send_s(4), rel=1e-9)
    assert float(piped.output_tokens_per_s) > float(
        estimate("llama-3-8b", "h100-sxm", w8).output_tokens_per_s
    )


def _simulated_cycle_s(stage_s: float, send_s: float, pp: int, m: int, steps: int = 200) -> float:
    """Discrete-event simulation of autoregressive micro-batches on a pipeline: micro-batch j's step
    enters stage 0 once its previous step left stage pp - 1 and stage 0 is free; stages serve in FIFO
    order; a send delays arrival at the next stage. Returns the mean time between a micro-batch's steps."""
    free = [0.0] * pp  # when each stage is next free
    ready = [0.0] * m  # when each micro-batch's next step may start
    finish = [[0.0] * steps for _ in range(m)]
    for step in range(steps):
        for j in range(m):
            t = ready[j]
            for s in range(pp):
                start = max(t, free[s])
                free[s] = start + stage_s
                t = free[s] + (send_s if s < pp - 1 else 0.0)
            finish[j][step] = t
            ready[j] = t
    half = steps // 2
    return (finish[0][-1] - finish[0][half]) / (steps - 1 - half)


@pytest.mark.parametrize(("pp", "m", "batch"), [(2, 1, 1), (2, 2, 8), (4, 4, 8), (2, 4, 8), (4, 8, 8)])
def test_pipeline_step_matches_a_simulation(pp: int, m: int, batch: int) -> None:
    from costmodel.estimate import step_time_s

    w = Workload(batch, 512, 2)
    b = -(-batch // m)
    whole = float(step_time_s("llama-3-8b", "h100-sxm", w, batch_size=b, new_tokens=1, past_tokens=512))
    model = float(step_time_s("llama-3-8b", "h100-sxm", w, Deployment(pp=pp, microbatches=m), batch_size=batch,
                              new_tokens=1, past_tokens=512))  # fmt: skip
    assert model == pytest.approx(_simulated_cycle_s(whole / pp, _send_s(b), pp, min(m, batch)), rel=1e-6)


@pytest.mark.parametrize("pp", [1, 2, 4, 8])
@pytest.mark.parametrize("batch", [1, 3, 16, 256])
def test_utilisation_of_a_pipelined_replica_never_exceeds_one(pp: int, batch: int) -> None:
    r = estimate("llama-3-8b", "h100-sxm", Workload(batch, 1024, 32), Deployment(pp=pp))
    assert 0 < float(r.decode_mbu) <= 1
    assert 0 < float(r.prefill_mfu) <= 1


@pytest.mark.parametrize(
    ("weights", "activations", "deployment"),
    [
        ("fp8", "bf16", Deployment(tp=8)),
        ("fp8_block", "fp8", Deployment(tp=8)),
        ("fp8", "bf16", Deployment(attention_dp=8, moe_ep=8)),
        ("fp8_block", "fp8", Deployment(attention_dp=8, moe_ep=8)),
    ],
)
def test_an_mla_decodes_bandwidth_utilisation_counts_the_absorbed_form_it_is_timed_in(
    weights: str, activations: str, deployment: Deployment
) -> None:
    """The README's DeepSeek-V3 examples on an H200. The kernel models time the MLA decode absorbed; its MBU
    divided the naive expansion's bytes (every cached token's 128 per-head keys and values rebuilt and read)
    by that time and came out at 417 % / 302 %. A GPU cannot move more than its bandwidth: MBU <= 1."""
    batch = 256 if deployment.attention_dp > 1 else 16
    w = Workload(batch, 1024, 256, weight_dtype=weights, activation_dtype=activations)
    r = estimate("deepseek-v3", "h200", w, deployment)
    assert 0 < float(r.decode_mbu) <= 1


def test_an_absorbed_mla_decode_reads_the_cached_latent_once_per_sequence() -> None:
    """Oracle: DeepSeek-V3's cache holds kv_lora_rank + rope = 512 + 64 elements a token and layer (DeepSeek-V2
    §2.1.2); the absorbed decode reads them once per sequence for all 128 heads (61 layers x 32 sequences x
    2,304 tokens x 576 x 2 bytes), reads each head's absorbed query (576 wide) and writes its latent output
    (512 wide) in 16 bits, and writes the new token's 576-element latent to the cache."""
    from costmodel.kernel_times import timed_bytes
    from costmodel.ops import forward_ops

    ops = forward_ops(costmodel.load_model("deepseek-v3"), batch_size=32, new_tokens=1, past_tokens=2303)
    attention = next(op for op in ops if op.name == "attention")
    cache = 61 * 32 * 2304 * 576 * 2.0
    heads = 61 * 32 * 128 * (576 + 512) * 2.0
    written = 61 * 32 * 576 * 2.0
    assert float(timed_bytes(attention)) * attention.layers == pytest.approx(
        cache + heads + written, rel=1e-9
    )
    assert float(attention.bytes) > 50 * float(timed_bytes(attention))  # the naive count it replaces


def test_an_absorbed_mla_verification_reads_the_cached_latent_once_for_its_queries() -> None:
    """Oracle, by hand from DeepSeek-V3's dimensions: a verification of 3 drafts (4 queries a sequence) after
    2,303 cached tokens, timed absorbed, reads each sequence's 2,307 latent rows (kv_lora_rank + rope =
    512 + 64 elements) once for all 4 x 128 query heads, reads the 4 x 128 absorbed queries (576 wide) and
    writes their latent outputs (512 wide) in 16 bits, and writes the 4 new latents to the cache; its absorb
    matmuls read the 16-bit W_UK / W_UV (128 heads x 512 x (128 + 128)) once and, per new token and head,
    q_nope (128) in, its latent (512) out, the latent output (512) in and v (128) out."""
    from costmodel.kernel_times import timed_bytes
    from costmodel.ops import forward_ops

    m = costmodel.load_model("deepseek-v3")
    ops = forward_ops(m, batch_size=32, new_tokens=4, past_tokens=2303, draft_tokens=3)
    by_name = {op.name: op for op in ops}
    attention, up = by_name["attention"], by_name["kv_up_proj"]
    cache = 61 * 32 * 2307 * 576 * 2.0
    heads = 61 * 32 * 4 * 128 * (576 + 512) * 2.0
    written = 61 * 32 * 4 * 576 * 2.0
    assert float(timed_bytes(attention)) * attention.layers == pytest.approx(
        cache + heads + written, rel=1e-9
    )
    weights = 128 * 512 * (128 + 128) * 2.0
    acts = 32 * 4 * 128 * (128 + 512 + 512 + 128) * 2.0
    assert float(timed_bytes(up)) == pytest.approx(weights + acts, rel=1e-9)
    # without drafts the same 4 tokens are a prefill chunk, counted (and timed) naive
    naive = {op.name: op for op in forward_ops(m, batch_size=32, new_tokens=4, past_tokens=2303)}
    assert np.array_equal(timed_bytes(naive["attention"]), naive["attention"].bytes)
    assert float(naive["attention"].bytes) > 20 * float(timed_bytes(attention))


def test_draft_tokens_that_do_not_fit_the_pass_are_named() -> None:
    """``draft_tokens`` is per entry of the pass: a shape that does not broadcast to batch_size x new_tokens
    x past_tokens is bad input naming the argument (it was numpy's "cannot broadcast a non-scalar")."""
    from costmodel.estimate import step_time_s

    w = Workload(1, 2048, 256, weight_dtype="fp8")
    with pytest.raises(costmodel.CostmodelError, match=r"draft_tokens \(shape \(3,\)\) must broadcast"):
        step_time_s("deepseek-v3", "h200", w, Deployment(tp=8), batch_size=8, new_tokens=2, past_tokens=2176,
                    draft_tokens=[1, 2, 3])  # fmt: skip
    pair = step_time_s("deepseek-v3", "h200", w, Deployment(tp=8), batch_size=[8, 16], new_tokens=2,
                       past_tokens=2176, draft_tokens=[1, 1])  # fmt: skip
    one = step_time_s("deepseek-v3", "h200", w, Deployment(tp=8), batch_size=[8, 16], new_tokens=2,
                      past_tokens=2176, draft_tokens=1)  # fmt: skip
    np.testing.assert_array_equal(pair, one)


def test_training_micro_batches_are_whole_sequences() -> None:
    """16 sequences per replica (Llama 3 405B, Table 4: 2,048 x 8,192 tokens over DP 128) can form 1, 2,
    4, 8 or 16 micro-batches, not 64 (a quarter sequence each)."""
    dep = Deployment(tp=8, pp=16, replicas=128)
    kw = {"global_batch_size": 2048, "seq_len": 8192}
    with pytest.raises(costmodel.CostmodelError, match="microbatches"):
        train("llama-3.1-405b", "h100-sxm", **kw, deployment=dep.model_copy(update={"microbatches": 64}))
    with pytest.raises(costmodel.CostmodelError, match="replicas"):
        train("llama-3.1-405b", "h100-sxm", global_batch_size=100, seq_len=8192, deployment=dep)
    with pytest.raises(costmodel.CostmodelError, match="virtual_stages"):
        train("llama-3.1-405b", "h100-sxm", **kw, deployment=dep, virtual_stages=9)
    mfu = [float(train("llama-3.1-405b", "h100-sxm", **kw, deployment=dep.model_copy(update={"microbatches": m})).mfu)
           for m in (1, 2, 4, 8, 16)]  # fmt: skip
    assert np.all(np.diff(mfu) > 0)  # more micro-batches, smaller bubble
    assert max(mfu) < 1


def test_training_pipeline_step_by_hand() -> None:
    """Llama-3-8B, pp = 4 on one node, 8 sequences of 1,024 tokens, one sequence per micro-batch (m = 8),
    v virtual stages. The forward+backward of one sequence through the whole model, F, is the pp = 1 step of
    one sequence minus its Adam update (replicas = 1: no all-reduce). With pp = 4 and v = 1 the step is
    (m + pp - 1) F / pp (GPipe, Huang et al. 2019) + 2 (pp - 1) sends of 1,024 x 4,096 bf16 values (the
    first micro-batch forward, the last one's gradients back) + the update of a quarter of the weights; v = 2
    halves the bubble term, (m + (pp - 1) / 2) F / pp (Narayanan et al. 2021 §2.2.2), and doubles the chunk
    boundaries crossed: 2 (2 pp - 1) sends."""
    from costmodel.params import param_count

    update_bytes_per_s = 3.35e12 * 0.8
    params = param_count(costmodel.load_model("llama-3-8b")).total
    one = train("llama-3-8b", "h100-sxm", global_batch_size=1, seq_len=1024)
    f = float(one.step_time_s) - 32 * params / update_bytes_per_s
    for v, sends in ((1, 2 * 3), (2, 2 * 7)):
        r = train("llama-3-8b", "h100-sxm", global_batch_size=8, seq_len=1024, deployment=Deployment(pp=4),
                  virtual_stages=v)  # fmt: skip
        expected = (8 + 3 / v) * f / 4 + sends * _send_s(1024) + 32 * params / 4 / update_bytes_per_s
        assert float(r.step_time_s) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("hardware", ["h200", "mi325x"])
def test_the_operator_table_shows_an_mla_decode_in_the_absorbed_form_it_is_timed_in(hardware: str) -> None:
    """Oracle: DeepSeek-V3's dims by hand (61 layers, 128 heads over tp 8, kv_lora_rank 512, nope / rope / v
    128 / 64 / 128), 16 sequences after 1,024 prompt tokens, the first decode step (1,025 keys). kv_up: the
    two per-head bmm, 2 x 16 x 16 x 512 x 256 FLOP a layer, reading the 16-bit W_UK / W_UV and moving
    16 x 16 x (128 + 512 + 512 + 128) 16-bit activations; the attention: 2 x 16 x 1025 x 16 x (576 + 512)
    FLOP, the cached latent read once a sequence. Under the kernel models (H200) and the roofline (MI325X)
    alike; the prefill rows keep the naive count (the form both time)."""
    w = Workload(16, 1024, 8)
    frame = estimate("deepseek-v3", hardware, w, Deployment(tp=8)).to_frame()
    decode = frame[frame.phase == "decode"].set_index("op")
    kv_up, attention = decode.loc["kv_up_proj"], decode.loc["attention"]
    assert kv_up.flop == pytest.approx(61 * 2.0 * 16 * 16 * 512 * 256, rel=1e-12)
    assert kv_up.bytes == pytest.approx(61 * (16 * 512 * 256 * 2.0 + 16 * 16 * 1280 * 2.0), rel=1e-12)
    assert attention.flop == pytest.approx(61 * 2.0 * 16 * 1025 * 16 * 1088, rel=1e-12)
    reads = 16 * 1025 * 576 * 2.0 + 16 * 16 * 576 * 2.0
    assert attention.bytes == pytest.approx(61 * (reads + 16 * 16 * 512 * 2.0 + 16 * 576 * 2.0), rel=1e-12)
    assert attention.intensity_flop_per_byte == pytest.approx(attention.flop / attention.bytes, rel=1e-12)
    prefill = frame[frame.phase == "prefill"].set_index("op").loc["kv_up_proj"]
    assert prefill.flop == pytest.approx(61 * 2.0 * 16 * 1024 * 512 * 16 * 256, rel=1e-12)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_size_and_estimate_agree_for_the_same_engine(engine: str) -> None:
    """``size(engine=...)`` counts the W_UK / W_UV copies the engine keeps, as ``estimate`` does for an
    efficiency of that ``kernel_engine``: same weights per GPU and max batch."""
    hw = costmodel.load_hardware("h200")
    dep = Deployment(tp=8)
    sized = costmodel.size(
        "deepseek-v3",
        hw,
        batch_size=64,
        prompt_len=2048,
        output_len=256,
        weight_dtype="fp8",
        deployment=dep,
        engine=engine,
    )
    eff = hw.efficiency.model_copy(update={"kernel_engine": engine})
    report = estimate("deepseek-v3", hw, Workload(64, 2048, 256, weight_dtype="fp8"), dep, efficiency=eff)
    assert sized.engine == engine
    assert sized.weight_bytes_per_gpu == float(report.weight_bytes_per_gpu)
    assert sized.max_batch_size == int(report.max_batch_size)


def test_size_counts_sglang_one_byte_copies_of_a_per_tensor_fp8_kv_b_proj() -> None:
    """vLLM keeps bf16 W_UK / W_UV copies, SGLang 1-byte ones for per-tensor fp8 weights: the difference
    a GPU at tp 8 is 61 layers x 128 heads x (128 + 128) rows x 512 columns x 1 byte / 8."""
    kwargs = dict(batch_size=1, prompt_len=128, output_len=1, weight_dtype="fp8", deployment=Deployment(tp=8))
    vllm = costmodel.size("deepseek-v3", "h200", **kwargs)  # type: ignore[arg-type]
    sglang = costmodel.size("deepseek-v3", "h200", engine="sglang", **kwargs)  # type: ignore[arg-type]
    assert vllm.weight_bytes_per_gpu - sglang.weight_bytes_per_gpu == pytest.approx(
        61 * 128 * (128 + 128) * 512 / 8, rel=1e-12
    )
    with pytest.raises(costmodel.CostmodelError, match="engine"):
        costmodel.size("deepseek-v3", "h200", engine="tgi", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", ["deepseek-v3", "llama-3-8b"])
@pytest.mark.parametrize("device", ["mi325x", "tpu-v5e"])
def test_tensorrt_llm_is_refused_on_a_device_it_does_not_run_on(model: str, device: str) -> None:
    """TensorRT-LLM builds for NVIDIA GPUs only: sizing or estimating it on an AMD GPU or a TPU is an error
    naming the engine, the device and the fix, MLA model or not, under either time model (the MLA decode's
    absorbed-bmm format is not asked first); SGLang on the same device is accepted."""
    hw = costmodel.load_hardware(device)
    refused = f"'trtllm' does not run on {device} .*: it runs on nvidia devices only; use 'vllm' or 'sglang'$"
    with pytest.raises(costmodel.CostmodelError, match=refused):
        costmodel.size(model, hw, batch_size=1, prompt_len=128, output_len=1, engine="trtllm")
    for time_model in ("kernels", "roofline"):
        eff = hw.efficiency.model_copy(update={"kernel_engine": "trtllm", "time_model": time_model})
        with pytest.raises(costmodel.CostmodelError, match=refused):
            estimate(model, hw, Workload(1, 128, 1), efficiency=eff)
    costmodel.size(model, hw, batch_size=1, prompt_len=128, output_len=1, engine="sglang")


def test_tensorrt_llm_copies_on_rocm_are_refused() -> None:
    from costmodel.memory import mla_absorb_bytes_per_element

    with pytest.raises(costmodel.CostmodelError, match="AMD"):
        mla_absorb_bytes_per_element("trtllm", "fp8_block", rocm=True)
    assert mla_absorb_bytes_per_element("sglang", "fp8_block", rocm=True) == (1.0, 1.0)
