"""Roofline and operator graph: hand-checkable limits, the closed-form decode sum, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import costmodel
from costmodel.estimate import _affine_max_sum, _decode_total_s, _Setup, _tp_link, estimate
from costmodel.flops import forward_flop
from costmodel.ops import forward_ops
from costmodel.roofline import attainable_flop_per_s, op_times, ridge_point_flop_per_byte
from costmodel.specs import Deployment, Efficiency, Workload

H100 = costmodel.load_hardware("h100-sxm")
NO_OVERHEAD = Efficiency(
    matmul_fraction=1.0,
    memory_bandwidth_fraction=1.0,
    interconnect_fraction=1.0,
    kernel_overhead_s=0.0,
    time_model="roofline",  # the roofline's own limits (the kernel models: tests/test_kernel_times.py)
)
ROOFLINE = H100.efficiency.model_copy(update={"time_model": "roofline"})


@pytest.mark.parametrize(
    "name", ["llama-3-8b", "deepseek-v3", "mamba-2.8b", "mixtral-8x7b", "gpt2", "mistral-7b"]
)
@pytest.mark.parametrize(("batch", "new", "past"), [(1, 1, 100), (4, 512, 0), (3, 7, 5000)])
def test_operator_flops_add_up_to_forward_flop(name: str, batch: int, new: int, past: int) -> None:
    model = costmodel.load_model(name)
    ops = forward_ops(model, batch_size=batch, new_tokens=new, past_tokens=past)
    counted = sum(op.flop * op.layers for op in ops if op.counted)
    assert counted == pytest.approx(
        forward_flop(model, batch_size=batch, new_tokens=new, past_tokens=past).total, rel=1e-12
    )


def test_decode_reads_every_weight_once_for_a_dense_model() -> None:
    model = costmodel.load_model("llama-2-7b")
    ops = forward_ops(model, batch_size=1, new_tokens=1, past_tokens=0)
    p = costmodel.param_count(model)
    read = sum(op.weight_bytes * op.layers for op in ops)
    # every matmul weight in bf16; the embedding is gathered (one row), norms are in the norm op's traffic
    assert read == 2 * (p.total - p.embedding - p.norms)


def test_memory_bound_decode_approaches_weight_bytes_over_bandwidth() -> None:
    model = costmodel.load_model("llama-2-7b")
    r = estimate(model, H100, Workload(1, 16, 2), efficiency=NO_OVERHEAD)
    ideal = costmodel.weight_bytes(model) / H100.memory_bandwidth_bytes_per_s
    assert float(r.tpot_s) == pytest.approx(ideal, rel=0.02)  # KV, activations and logits add < 2 %


def test_large_prefill_approaches_flops_over_peak() -> None:
    model = costmodel.load_model("llama-2-7b")
    r = estimate(model, H100, Workload(8, 4095, 1), efficiency=NO_OVERHEAD)  # the whole 4,096 context
    ideal = forward_flop(model, batch_size=8, new_tokens=4095, logits="last").total / H100.peak_flop_per_s(
        "bf16"
    )
    # unfused norms and activation functions stay memory bound and add 8 % here
    assert float(r.ttft_s) == pytest.approx(ideal, rel=0.10)
    t = r.prefill_ops
    tensor_ops = [
        i for i, op in enumerate(r._ops[0]) if op.kind in ("matmul", "attention") and op.name != "lm_head"
    ]
    assert all(str(t.bound(i)) == "compute" for i in tensor_ops)
    tensor_time = sum(t.layers[i] * float(t.time_s(i)) for i in tensor_ops)
    tensor_flop = sum(op.flop * op.layers for i, op in enumerate(r._ops[0]) if i in tensor_ops)
    assert tensor_time == pytest.approx(float(tensor_flop) / H100.peak_flop_per_s("bf16"), rel=1e-12)


def test_ridge_point() -> None:
    assert ridge_point_flop_per_byte(H100, efficiency=NO_OVERHEAD) == pytest.approx(989.4e12 / 3.35e12)
    intensity = np.array([1.0, 100.0, 1e4])
    roof = attainable_flop_per_s(H100, intensity, efficiency=NO_OVERHEAD)
    np.testing.assert_allclose(roof, [3.35e12, 3.35e14, 989.4e12])


def test_tensor_parallel_halves_weights_and_adds_the_allreduce() -> None:
    model = costmodel.load_model("llama-3-70b")
    one = forward_ops(model, batch_size=4, new_tokens=1, past_tokens=1000)
    two = forward_ops(model, batch_size=4, new_tokens=1, past_tokens=1000, tp=2)
    w1 = sum(op.weight_bytes * op.layers for op in one if op.name != "lm_head")
    w2 = sum(op.weight_bytes * op.layers for op in two if op.name != "lm_head")
    assert w2 == pytest.approx(w1 / 2)
    times = op_times(two, H100, efficiency=NO_OVERHEAD, collective_latency_s=10e-6)
    i = times.names.index("allreduce_attn")
    message = 4 * 8192 * 2  # 4 tokens x d_model x bf16
    expected = 2 * (2 - 1) / 2 * message / 450e9 + 10e-6  # ring all-reduce on 450 GB/s NVLink + latency
    assert float(times.time_s(i)) == pytest.approx(expected)
    assert times.layers[i] == 80
    est1 = estimate(model, H100, Workload(4, 1000, 2), efficiency=NO_OVERHEAD)
    est2 = estimate(model, H100, Workload(4, 1000, 2), Deployment(tp=2), efficiency=NO_OVERHEAD)
    assert float(est2.memory_bytes_per_gpu) < 0.51 * float(est1.memory_bytes_per_gpu)


@given(st.floats(-5, 5), st.floats(-2, 2), st.floats(-5, 5), st.floats(-2, 2), st.integers(0, 40))
def test_affine_max_sum_equals_the_loop(x0: float, x1: float, y0: float, y1: float, n: int) -> None:
    loop = sum(max(x0 + x1 * j, y0 + y1 * j) for j in range(n))
    got = _affine_max_sum(*(np.asarray(v, dtype=float) for v in (x0, x1, y0, y1, n)))
    assert float(got) == pytest.approx(loop, abs=1e-9)


@pytest.mark.parametrize("name", ["llama-3-8b", "mistral-7b", "deepseek-v3"])
@pytest.mark.parametrize(("batch", "start", "steps"), [(1, 10, 1), (8, 4000, 300), (64, 100, 50)])
def test_decode_total_equals_the_sum_of_steps(name: str, batch: int, start: int, steps: int) -> None:
    model = costmodel.load_model(name)
    dep = Deployment()
    setup = _Setup(model, H100, Workload(), dep, ROOFLINE, "flash", _tp_link(dep))
    exact = _decode_total_s(setup, batch, start, steps)
    past = np.arange(start, start + steps)
    loop = setup.times(setup.ops(batch, 1, past, "all")).total_s.sum()
    assert float(exact) == pytest.approx(float(loop), rel=1e-9)


MODELS = ["llama-3-8b", "mixtral-8x7b", "mamba-2.8b", "deepseek-v3", "mistral-7b"]


@pytest.mark.parametrize("name", MODELS)
def test_time_and_memory_never_decrease_with_batch_and_context(name: str) -> None:
    batch = np.array([1, 2, 8, 64, 256])[:, None]
    model = costmodel.load_model(name)  # within the model's context (an SSM has no positional limit)
    longest = 30000 if model.ssm else min(30000, model.max_context - 64)
    prompt = np.array([16, 512, 4096, longest])[None, :]
    r = estimate(
        name, "h100-sxm", Workload(batch, prompt, 64), Deployment(tp=8) if name == "deepseek-v3" else None
    )
    for field in ("ttft_s", "tpot_s", "e2e_s", "memory_bytes_per_gpu"):
        grid = getattr(r, field)
        assert np.all(np.diff(grid, axis=0) >= -1e-15), field
        assert np.all(np.diff(grid, axis=1) >= -1e-15), field


@pytest.mark.parametrize("name", MODELS[:3])
def test_more_bandwidth_is_never_slower(name: str) -> None:
    slow = estimate(name, "h100-pcie", Workload(np.array([1, 32]), 1024, 128))
    fast_hw = costmodel.load_hardware("h100-pcie")
    sheet = fast_hw.datasheet.model_copy(
        update={
            "memory_bandwidth_tb_per_s": fast_hw.datasheet.memory_bandwidth_tb_per_s.model_copy(
                update={"value": 4.0}
            )
        }
    )
    fast = estimate(
        name, fast_hw.model_copy(update={"datasheet": sheet}), Workload(np.array([1, 32]), 1024, 128)
    )
    assert np.all(fast.tpot_s <= slow.tpot_s)
    assert np.all(fast.ttft_s <= slow.ttft_s)


def test_scalar_and_array_workloads_agree() -> None:
    batch, prompt, out = np.array([1, 4, 16]), np.array([128, 2048]), 64
    grid = estimate("qwen2.5-7b", "a100-80gb", Workload(batch[:, None], prompt[None, :], out))
    for i, b in enumerate(batch):
        for j, p in enumerate(prompt):
            one = estimate("qwen2.5-7b", "a100-80gb", Workload(int(b), int(p), out))
            for field in ("ttft_s", "tpot_s", "memory_bytes_per_gpu", "usd_per_million_output_tokens"):
                assert getattr(grid, field)[i, j] == pytest.approx(float(getattr(one, field)), rel=1e-12)


def test_bad_deployments_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"tp \(3\) must divide n_heads \(32\)"):
        estimate("llama-3-8b", "h100-sxm", Workload(), Deployment(tp=3))
    with pytest.raises(ValueError, match=r"ep .* needs a mixture-of-experts model"):
        estimate("llama-3-8b", "h100-sxm", Workload(), Deployment(tp=2, ep=2))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        Workload(0, 10, 10)


def test_2_4_sparsity_halves_compute_bound_matmul_time_and_shrinks_weights() -> None:
    model = costmodel.load_model("llama-3-8b")
    dense, sparse = (forward_ops(model, batch_size=8, new_tokens=2048, sparsity=s) for s in ("none", "2:4"))
    t_dense, t_sparse = (op_times(ops, H100, efficiency=NO_OVERHEAD) for ops in (dense, sparse))
    i = t_dense.names.index("mlp_up")
    assert str(t_dense.bound(i)) == "compute"
    assert float(t_sparse.time_s(i)) == pytest.approx(float(t_dense.time_s(i)) / 2, rel=1e-6)
    # weights: half the bf16 values plus a 2-bit index per kept value: 9 bits per dense weight
    assert sparse[i].weight_bytes == pytest.approx(dense[i].weight_bytes * 9 / 16)
    decode = estimate(model, H100, Workload(1, 512, 64), efficiency=NO_OVERHEAD)
    decode_sparse = estimate(model, H100, Workload(1, 512, 64, sparsity="2:4"), efficiency=NO_OVERHEAD)
    ratio = float(decode_sparse.tpot_s / decode.tpot_s)
    assert 0.55 < ratio < 0.7  # memory bound: the time follows the bytes (embedding/head stay dense)


def test_2_4_sparsity_needs_sparse_tensor_cores() -> None:
    with pytest.raises(costmodel.CostmodelError, match="no 2:4 sparse tensor cores"):
        estimate("llama-3-8b", "tpu-v5e", Workload(1, 128, 8, sparsity="2:4"))


def test_pipeline_microbatches_split_whole_sequences_and_one_microbatch_keeps_a_mean_batch() -> None:
    """GPipe micro-batches hold whole sequences: pp = 2 splits 5 sequences into 2 of ceil(5 / 2) = 3 (the
    larger sets the pace) and 0.5 sequences into 0.5 micro-batches of 1; one micro-batch holds the batch as
    it is, a fractional mean batch included (at least one sequence), as at pp = 1."""
    model = costmodel.load_model("llama-3-8b")
    batches = np.array([0.5, 1.0, 2.5, 5.0])
    split = Deployment(pp=2)
    m, per = _Setup(model, H100, Workload(), split, ROOFLINE, "flash", _tp_link(split)).microbatches(batches)
    np.testing.assert_array_equal(m, [0.5, 1.0, 2.0, 2.0])
    np.testing.assert_array_equal(per, [1.0, 1.0, 2.0, 3.0])
    whole = Deployment(pp=2, microbatches=1)
    m, per = _Setup(model, H100, Workload(), whole, ROOFLINE, "flash", _tp_link(whole)).microbatches(batches)
    np.testing.assert_array_equal(m, [0.5, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(per, [1.0, 1.0, 2.5, 5.0])


def _mla_decode(hardware: str, *, batch: int = 64, past: int = 2047, tp: int = 8, weights: str = "bf16"):
    """DeepSeek-V3's decode step on a device the roofline times, with no efficiency losses or overheads."""
    hw = costmodel.load_hardware(hardware)
    ops = forward_ops(costmodel.load_model("deepseek-v3"), batch_size=batch, new_tokens=1, past_tokens=past,
                      tp=tp, weight_dtype=weights)  # fmt: skip
    return hw, ops, op_times(ops, hw, efficiency=NO_OVERHEAD)


@pytest.mark.parametrize("hardware", ["mi325x", "h20", "tpu-v5e"])
@pytest.mark.parametrize("weights", ["bf16", "fp8"])
def test_the_roofline_prices_an_mla_decode_in_the_absorbed_form(hardware: str, weights: str) -> None:
    """Oracle: DeepSeek-V3's dims (128 heads over tp 8 = 16 a GPU, kv_lora_rank 512, nope 128, rope 64, v 128)
    by hand. The engines decode MLA absorbed on every device (vLLM's ROCm ``AiterMLAImpl`` is an
    ``MLACommonImpl``, whose ``_forward_decode`` is the absorbed form): kv_up is two per-head bmm over the
    64 new tokens, 2 x 64 x 16 x 512 x (128 + 128) FLOP, reading the 16-bit W_UK / W_UV (16 x 512 x 256 x 2
    bytes) and the query in / latent out / latent in / value out (64 x 16 x (128 + 512 + 512 + 128) x 2);
    the attention is MQA over the 576-element latent of 2,048 tokens a sequence, 2 x 64 x 2048 x 16 x
    (576 + 512) FLOP, reading the latent once a sequence. Not the naive expansion of all 64 x 2,048 cached
    tokens into 16 heads' keys and values (kv_up alone 2 x 131,072 x 512 x 4,096 FLOP)."""
    hw, ops, times = _mla_decode(hardware, weights=weights)
    names = [op.name for op in ops]
    bf16 = hw.peak_flop_per_s("bf16") if "bf16" in hw.compute_dtypes else hw.peak_flop_per_s("fp16")
    bw = hw.memory_bandwidth_bytes_per_s
    kv_up = names.index("kv_up_proj")
    flop = 2.0 * 64 * 16 * 512 * 256
    moved = 16 * 512 * 256 * 2.0 + 64 * 16 * (128 + 512 + 512 + 128) * 2.0
    assert float(times.time_s(kv_up)) == pytest.approx(max(flop / bf16, moved / bw), rel=1e-9)
    att = names.index("attention")
    cache, heads, new = 64 * 2048 * 576 * 2.0, 64 * 16 * (576 + 512) * 2.0, 64 * 576 * 2.0
    assert float(times.memory_s[att]) == pytest.approx((cache + heads + new) / bw, rel=1e-9)
    assert float(times.compute_s[att]) * bf16 == pytest.approx(2.0 * 64 * 2048 * 16 * (576 + 512), rel=1e-9)


def test_an_absorbed_mla_decodes_up_projection_does_not_grow_with_the_context() -> None:
    """The absorbed bmm multiply the new tokens only: kv_up costs the same after 100 or 100,000 cached tokens
    (the naive form grew 1,000x), while the attention's latent reads grow with the context."""
    _, ops, short = _mla_decode("mi325x", past=100)
    _, _, long = _mla_decode("mi325x", past=100_000)
    kv_up, att = (next(i for i, op in enumerate(ops) if op.name == n) for n in ("kv_up_proj", "attention"))
    assert float(long.time_s(kv_up)) == pytest.approx(float(short.time_s(kv_up)), rel=1e-12)
    assert float(long.time_s(att)) > 100 * float(short.time_s(att))


def test_an_mla_prefill_stays_in_the_naive_form_on_the_roofline() -> None:
    """A prompt pass (2,048 new tokens) runs the naive form in every engine: kv_up is the kv_b_proj GEMM over
    its 2,048 tokens, 2 x 2048 x 512 x 16 x 256 FLOP at tp 8, the operators' own count."""
    hw = costmodel.load_hardware("mi325x")
    ops = forward_ops(costmodel.load_model("deepseek-v3"), batch_size=1, new_tokens=2048, tp=8)
    times = op_times(ops, hw, efficiency=NO_OVERHEAD)
    kv_up = next(i for i, op in enumerate(ops) if op.name == "kv_up_proj")
    assert float(ops[kv_up].flop) == pytest.approx(2.0 * 2048 * 512 * 16 * 256, rel=1e-12)
    assert float(times.compute_s[kv_up]) == pytest.approx(float(ops[kv_up].flop) / hw.peak_flop_per_s("bf16"))


@pytest.mark.parametrize(
    ("hardware", "engine", "weights", "peak", "weight_bytes", "input_bytes", "output_bytes"),
    [
        # vLLM: bf16 copies of a quantized kv_b_proj, torch.bmm in 16 bits (common.py)
        ("h20", "vllm", "fp8_block", "bf16", 2.0, 2.0, 2.0),
        # SGLang on CUDA, per-tensor fp8: w_kc / w_vc fp8, per_tensor_quant_mla_fp8 (reads the bf16 input
        # twice, writes fp8: 2 + 2 + 1) then bmm_fp8 reading the fp8 input (1), bf16 output (2)
        ("h20", "sglang", "fp8", "fp8", 1.0, 1.0 + 5.0, 2.0),
        # SGLang on CUDA, block fp8: block_quant_dequant to bf16 copies, torch.bmm
        ("h20", "sglang", "fp8_block", "bf16", 2.0, 2.0, 2.0),
        # SGLang on ROCm, block fp8: per-tensor fp8 copies, and each call torch.bmm of
        # w_kc.to(torch.bfloat16) * w_scale: the cast (1 read + 2 written), the scale (2 + 2), the bmm (2)
        ("mi325x", "sglang", "fp8_block", "bf16", 1.0 + 2.0 + 2.0 + 2.0 + 2.0, 2.0, 2.0),
        # TensorRT-LLM on SM 90, block fp8: fp8_batched_quantize_1x128_permute102 (2 + 1), the fp8 bmm
        # (1 in, 2 out), out.copy_ of the output (2 + 2)
        ("h20", "trtllm", "fp8_block", "fp8", 1.0, 1.0 + 3.0, 2.0 + 4.0),
        # TensorRT-LLM on SM 90, bf16: k_b_proj_trans / the v_b_proj view, bmm_out in 16 bits
        ("h20", "trtllm", "bf16", "bf16", 2.0, 2.0, 2.0),
    ],
)
def test_the_roofline_times_the_absorbed_bmm_in_the_format_the_engine_holds_them_in(
    hardware: str,
    engine: str,
    weights: str,
    peak: str,
    weight_bytes: float,
    input_bytes: float,
    output_bytes: float,
) -> None:
    """Oracle: DeepSeek-V3's dims by hand (16 heads a GPU at tp 8, kv_lora_rank 512, nope 128, v 128; 64
    new tokens), each engine's bytes per element from its source (memory.mla_absorb_format cites it): kv_up
    reads W_UK / W_UV (16 x 512 x 256 elements) at the bytes the bmm and the passes before it move, the
    inputs (q_nope 128 and the latent output 512 a head and token) and the outputs (its latent 512 and v
    128), and multiplies 2 x 64 x 16 x 512 x 256 FLOP at the peak of the format it multiplies in."""
    hw = costmodel.load_hardware(hardware)
    ops = forward_ops(costmodel.load_model("deepseek-v3"), batch_size=64, new_tokens=1, past_tokens=2047,
                      tp=8, weight_dtype=weights)  # fmt: skip
    eff = NO_OVERHEAD.model_copy(update={"kernel_engine": engine})
    times = op_times(ops, hw, efficiency=eff)
    kv_up = [op.name for op in ops].index("kv_up_proj")
    moved = 16 * 512 * 256 * weight_bytes + 64 * 16 * ((128 + 512) * input_bytes + (512 + 128) * output_bytes)
    flop = 2.0 * 64 * 16 * 512 * 256
    assert float(times.memory_s[kv_up]) == pytest.approx(moved / hw.memory_bandwidth_bytes_per_s, rel=1e-9)
    assert float(times.compute_s[kv_up]) == pytest.approx(flop / hw.peak_flop_per_s(peak), rel=1e-9)
