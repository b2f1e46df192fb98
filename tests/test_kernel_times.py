"""Step times from the kernel models (costmodel.kernel_times): the shapes the operators carry, the regime each
attention pass runs in, the families' own times, and the physics a step time must keep."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import costmodel
from costmodel import kernel_times
from costmodel.estimate import _decode_total_s, _Setup, _tp_link, step_time_s
from costmodel.kernel_shapes import AttentionShape, CollectiveShape, FusedInto, GemmShape, MoEShape
from costmodel.kernels import (
    collective,
    context_attention,
    gemm,
    generation_attention,
    moe,
    moe_configs,
    params_for,
)
from costmodel.ops import Op, forward_ops
from costmodel.roofline import op_times
from costmodel.specs import Deployment, HardwareProfile, Workload

H100 = costmodel.load_hardware("h100-sxm")
KERNELS = H100.efficiency.model_copy(update={"time_model": "kernels"})
ROOFLINE = H100.efficiency.model_copy(update={"time_model": "roofline"})


def _step(family: object, key: str) -> object:
    return kernel_times.step_params(H100, family, key, launch_s=kernel_times.launch_s(H100))


def _times(model: str, batch: object, new: object, past: object, **kw: object) -> tuple[list, object]:
    ops = list(
        forward_ops(costmodel.load_model(model), batch_size=batch, new_tokens=new, past_tokens=past, **kw)
    )
    return ops, kernel_times.op_times(ops, H100, efficiency=KERNELS)


@pytest.mark.parametrize(
    "name", ["llama-3-8b", "mixtral-8x7b", "deepseek-v3", "gpt-oss-20b", "qwen3-30b-a3b"]
)
def test_every_gemm_shape_carries_its_operators_flops(name: str) -> None:
    model = costmodel.load_model(name)
    for tp in (1, 8):
        ep = tp if model.moe is not None else 1
        for op in forward_ops(model, batch_size=3, new_tokens=7, past_tokens=100, tp=tp, ep=ep):
            if isinstance(op.kernel, GemmShape):
                assert 2 * op.kernel.m * op.kernel.n * op.kernel.k == pytest.approx(op.flop, rel=1e-12)


def test_default_time_model_follows_the_kernel_calibration() -> None:
    assert H100.kernel_calibration is not None
    assert kernel_times.uses_kernels(H100, H100.efficiency)  # "auto" on a calibrated device
    assert not kernel_times.uses_kernels(H100, ROOFLINE)
    bare = H100.model_copy(update={"kernel_calibration": None})
    assert not kernel_times.uses_kernels(bare, bare.efficiency)
    w = Workload()
    for b, n, p in [(1, 1, 500), (16, 1, 3000), (1, 2048, 0)]:
        auto = step_time_s("llama-3-8b", bare, w, batch_size=b, new_tokens=n, past_tokens=p)
        roof = step_time_s(
            "llama-3-8b", H100, w, batch_size=b, new_tokens=n, past_tokens=p, efficiency=ROOFLINE
        )
        assert float(auto) == float(roof)


def test_roofline_switch_reproduces_the_roofline_exactly() -> None:
    model = costmodel.load_model("llama-3-8b")
    ops = forward_ops(model, batch_size=4, new_tokens=1, past_tokens=1000)
    expected = op_times(ops, H100).total_s
    got = step_time_s(
        model, H100, Workload(), batch_size=4, new_tokens=1, past_tokens=1000, efficiency=ROOFLINE
    )
    assert float(got) == float(expected)


def test_one_new_token_is_decode_attention_and_more_are_prefill() -> None:
    ops, times = _times("llama-3-8b", 8, np.array([1, 512]), 1000)
    i = [op.name for op in ops].index("attention")
    shape = ops[i].kernel
    assert isinstance(shape, AttentionShape)
    key = "vllm.vllm_flash_attn_fa3:bf16"  # the sorted-first vLLM key on H100 (fa3 before fa4)
    decode = generation_attention.time_s(
        H100,
        _step(generation_attention, key),
        batch_size=8,
        kv_len=1001,
        n_heads=32,
        n_kv_heads=8,
        head_dim=128,
    )
    prefill = context_attention.time_s(
        H100,
        _step(context_attention, key),
        batch_size=8,
        seq_len=512,
        n_heads=32,
        n_kv_heads=8,
        head_dim=128,
        past_len=1000,
    )
    np.testing.assert_allclose(times.time_s(i), [float(decode), float(prefill)], rtol=1e-12)


def test_gemm_operators_take_the_gemm_models_time_and_never_beat_the_ideal_bound() -> None:
    ops, times = _times("llama-3-8b", np.array([1, 64, 4096]), 1, 0)
    p = _step(gemm, "bf16")
    for i, op in enumerate(ops):
        if isinstance(op.kernel, GemmShape):
            s = op.kernel
            np.testing.assert_allclose(times.time_s(i), gemm.time_s(H100, p, m=s.m, n=s.n, k=s.k), rtol=1e-12)
            assert np.all(times.time_s(i) >= gemm.roofline_bound_s(H100, m=s.m, n=s.n, k=s.k))


def test_fp8_weights_use_the_fp8_gemm_and_weight_only_int4_keeps_the_roofline() -> None:
    model = costmodel.load_model("llama-3-8b")
    fp8 = forward_ops(model, batch_size=1, new_tokens=2048, weight_dtype="fp8", activation_dtype="fp8")
    t8 = kernel_times.op_times(fp8, H100, weight_dtype="fp8", activation_dtype="fp8", efficiency=KERNELS)
    i = [op.name for op in fp8].index("mlp_up")
    s = fp8[i].kernel
    assert isinstance(s, GemmShape)
    p = _step(gemm, "fp8")
    assert float(t8.time_s(i)) == pytest.approx(float(gemm.time_s(H100, p, m=s.m, n=s.n, k=s.k)), rel=1e-12)
    int4 = forward_ops(model, batch_size=1, new_tokens=1, past_tokens=100, weight_dtype="int4")
    roof = op_times(
        int4,
        H100,
        efficiency=H100.efficiency.model_copy(update={"kernel_overhead_s": kernel_times.launch_s(H100)}),
    )
    t4 = kernel_times.op_times(int4, H100, weight_dtype="int4", efficiency=KERNELS)
    j = [op.name for op in int4].index("mlp_up")
    assert float(t4.time_s(j)) == pytest.approx(float(roof.time_s(j)), rel=1e-12)


def test_the_moe_block_is_one_fused_kernel_shared_by_its_operators() -> None:
    model = costmodel.load_model("mixtral-8x7b")
    ops = forward_ops(model, batch_size=16, new_tokens=1, past_tokens=500, tp=2, ep=1)
    times = kernel_times.op_times(ops, H100, efficiency=KERNELS)
    names = [op.name for op in ops]
    block = [names.index(n) for n in ("experts_up", "experts_act", "experts_down")]
    shape = ops[block[0]].kernel
    assert isinstance(shape, MoEShape)
    assert all(isinstance(ops[i].kernel, FusedInto) for i in block[1:])
    chooser = kernel_times._Keys(H100, "vllm", kernel_times.launch_s(H100))
    expected = min(
        moe.time_s(
            H100,
            _step(moe, key),
            num_tokens=16,
            hidden_size=4096,
            inter_size=14336,
            topk=2,
            num_experts=8,
            tp_size=2,
            ep_size=1,
            routing="uniform",  # a step's tokens route independently (kernel_times.STEP_ROUTING)
        )
        for key in kernel_times.moe_keys(chooser, "bf16")
    )
    assert sum(float(times.time_s(i)) for i in block) == pytest.approx(float(expected), rel=1e-12)


def test_a_step_touches_the_experts_independent_tokens_draw() -> None:
    # gpt-oss-120b's layer shape (128 experts, top-4): 32 tokens cover all 128 experts in a round-robin
    # split but 128 (1 - (1 - 4/128)^32) ~ 81 of them when each token draws its own (occupancy)
    load = moe.routing_load(kernel_times.STEP_ROUTING, tokens=32, topk=4, num_experts=128, ep_size=1)
    assert float(load.touched_experts) == pytest.approx(128 * (1 - (1 - 4 / 128) ** 32), rel=1e-9)
    # so the step's MoE streams fewer experts' weights than the balanced split's, never more
    key = kernel_times.moe_keys(kernel_times._Keys(H100, "vllm", kernel_times.launch_s(H100)), "bf16")[0]
    args = dict(num_tokens=32, hidden_size=2880, inter_size=2880, topk=4, num_experts=128)
    uniform = moe.time_s(H100, _step(moe, key), routing="uniform", **args)
    assert float(uniform) < float(moe.time_s(H100, _step(moe, key), routing="balanced", **args))


def test_tensor_parallel_all_reduce_is_the_engines_custom_all_reduce() -> None:
    ops = forward_ops(costmodel.load_model("llama-3-8b"), batch_size=8, new_tokens=1, past_tokens=100, tp=4)
    times = kernel_times.op_times(ops, H100, efficiency=KERNELS)
    i = [op.name for op in ops].index("allreduce_attn")
    shape = ops[i].kernel
    assert isinstance(shape, CollectiveShape)
    for engine, key in (("vllm", "vLLM_custom"), ("trtllm", "TRTLLM")):
        eff = KERNELS.model_copy(update={"kernel_engine": engine})
        t = kernel_times.op_times(ops, H100, efficiency=eff).time_s(i)
        expected = collective.time_s(  # engines serve from CUDA graphs: no eager host floor
            H100, _step(collective, key), message_bytes=8 * 4096 * 2, num_gpus=4, eager=False
        )
        assert float(t) == pytest.approx(float(expected), rel=1e-12)
    assert float(times.time_s(i)) > 0


def test_a_tensor_parallel_all_reduce_beyond_the_engines_limit_is_nccls() -> None:
    # an 8192-token prefill of Llama-3-70B at tp = 8: 8192 x 8192 x 2 bytes = 128 MiB, beyond vLLM's 64 MiB
    # (H100, 8 GPUs) and TensorRT-LLM's 8 MB: both run NCCL; one decode token stays on the custom kernels
    model = costmodel.load_model("llama-3-70b")
    for new, handed in ((8192, True), (1, False)):
        ops = forward_ops(model, batch_size=1, new_tokens=new, past_tokens=0, tp=8)
        i = [op.name for op in ops].index("allreduce_attn")
        message = float(ops[i].bytes_read)
        for engine, custom in (("vllm", "vLLM_custom"), ("trtllm", "TRTLLM")):
            eff = KERNELS.model_copy(update={"kernel_engine": engine})
            t = float(kernel_times.op_times(ops, H100, efficiency=eff).time_s(i))
            key = "nccl:all_reduce" if handed else custom
            expected = collective.time_s(
                H100, _step(collective, key), message_bytes=message, num_gpus=8, eager=False
            )
            assert t == pytest.approx(float(expected), rel=1e-12)


def test_an_all_reduce_across_two_nodes_runs_nccl_inside_each_and_every_nic_between() -> None:
    # tp = 16 on 8-GPU nodes: NCCL's all-reduce among each node's 8 GPUs (the engines' custom all-reduce
    # is for one node only), then each GPU's eighth of the buffer over its own NIC
    ops = forward_ops(
        costmodel.load_model("llama-3-70b"), batch_size=1, new_tokens=8192, past_tokens=0, tp=16
    )
    i = [op.name for op in ops].index("allreduce_attn")
    message = float(ops[i].bytes_read)
    assert message == 8192 * 8192 * 2
    for engine in ("vllm", "trtllm"):
        eff = KERNELS.model_copy(update={"kernel_engine": engine})
        across = float(kernel_times.op_times(ops, H100, efficiency=eff, scale_up_domain=8).time_s(i))
        node = float(
            collective.time_s(H100, _step(collective, "nccl:all_reduce"), message_bytes=message, num_gpus=8)
        )
        nic = H100.datasheet.inter_node_bandwidth_gb_per_s
        assert nic is not None
        rail = message / 8 / (nic.value * 1e9)  # 2 (2 - 1) / 2 x S / 8 on each GPU's NIC at line rate
        # both stages, each no faster than its own bound; far below a flat ring over 16 GPUs on one NIC
        assert across > node + rail
        flat = 2 * 15 / 16 * message / (nic.value * 1e9)
        assert across < flat / 4
    # the same 16 GPUs inside one scale-up domain (an NVL72 rack): the intra-node model alone
    inside = float(kernel_times.op_times(ops, H100, efficiency=KERNELS, scale_up_domain=72).time_s(i))
    assert inside < float(kernel_times.op_times(ops, H100, efficiency=KERNELS, scale_up_domain=8).time_s(i))


@pytest.mark.parametrize("name", ["llama-3-8b", "mixtral-8x7b", "deepseek-v3", "gpt-oss-20b"])
def test_step_time_grows_with_context_and_prompt(name: str) -> None:
    model = costmodel.load_model(name)
    dep = Deployment(tp=8, ep=8) if name == "deepseek-v3" else Deployment()
    w = Workload()
    context = np.array([0, 256, 1024, 4096, 16384])
    decode = step_time_s(
        model, H100, w, dep, batch_size=32, new_tokens=1, past_tokens=context, efficiency=KERNELS
    )
    assert np.all(np.diff(decode) > 0)
    prompt = np.array([16, 128, 1024, 4096, 8192])
    prefill = step_time_s(
        model, H100, w, dep, batch_size=1, new_tokens=prompt, past_tokens=0, efficiency=KERNELS
    )
    assert np.all(np.diff(prefill) > 0)


def test_decode_total_with_the_kernel_models_sums_the_steps() -> None:
    model = costmodel.load_model("llama-3-8b")
    dep = Deployment()
    setup = _Setup(model, H100, Workload(), dep, KERNELS, "flash", _tp_link(dep))
    for batch, start, steps in ((1, 10, 1), (8, 100, 9), (64, 4000, 5)):
        past = np.arange(start, start + steps)
        loop = setup.times(setup.ops(batch, 1, past, "all")).total_s.sum()
        assert float(_decode_total_s(setup, batch, start, steps)) == pytest.approx(float(loop), rel=1e-12)
    # longer runs: the trapezoid rule over evenly spaced steps, exact where a step's time is affine in the
    # context; the kernel models bend only where split-K changes its split count
    past = np.arange(1000, 1500)
    loop = setup.times(setup.ops(8, 1, past, "all")).total_s.sum()
    assert float(_decode_total_s(setup, 8, 1000, 500)) == pytest.approx(float(loop), rel=1e-3)


def test_context_attention_with_a_prefix_counts_the_pairs_a_loop_counts() -> None:
    # oracle: every (query, key) pair of a chunk of s queries after p cached keys, within a window w
    for s, p, w in ((5, 0, 0), (7, 11, 0), (16, 40, 8), (3, 2, 4)):
        loop = sum(min(p + i + 1, w) if w else p + i + 1 for i in range(s))
        got = context_attention.causal_pairs(p + s, w) - context_attention.causal_pairs(p, w)
        assert float(got) == loop
    params = context_attention.default_params(H100, "bf16")
    kw = dict(batch_size=4, seq_len=512, n_heads=32, n_kv_heads=8, head_dim=128)
    base = context_attention.time_s(H100, params, **kw)
    assert float(context_attention.time_s(H100, params, past_len=0, **kw)) == float(base)
    with_prefix = context_attention.time_s(H100, params, past_len=np.array([0, 512, 4096]), **kw)
    assert np.all(np.diff(with_prefix) > 0)


def test_fixed_costs_are_device_launches_not_the_eager_benchmarks_host_dispatch() -> None:
    launch = kernel_times.launch_s(H100)  # the device's calibrated plain bf16 GEMM call
    assert launch == params_for(H100, gemm, "bf16").launch_s < H100.efficiency.kernel_overhead_s
    for family, key, field, launches in (
        (gemm, "bf16", "launch_s", 1),
        (gemm, "fp8_block", "launch_s", 2),
        (generation_attention, "vllm.vllm_flash_attn_fa3:bf16", "combine_s", 1),
    ):
        fitted = getattr(params_for(H100, family, key), field)
        used = getattr(_step(family, key), field)
        assert used == min(fitted, launches * launch)
    # the fp8-block GEMM's fitted fixed cost (eager, per call) is tens of microseconds of host dispatch
    assert params_for(H100, gemm, "fp8_block").launch_s > 4 * launch
    # the MoE tables time CUDA-graph replays: their fixed cost is GPU time and the step keeps it
    assert _step(moe, "fp8").launch_s == params_for(H100, moe, "fp8").launch_s > 4 * launch


def test_a_serving_steps_moe_is_the_kernel_model_of_its_table_row() -> None:
    # Qwen3.5-397B-A17B on B200 SGLang, fp8 experts in 128 x 128 blocks, tp 8, EP 1 (512 experts of width
    # 1024, top-10): the step's MoE block (up, activation, down) costs what the kernel model predicts for
    # the public table's row of that shape (moe_tp_size 8, moe_ep_size 1) with its fitted parameters,
    # the fastest of the FlashInfer trtllm-gen kernels SGLang runs, at the step's routing, without the L2 reuse
    # of the table's repeated calls (each layer of a step streams its own experts from HBM)
    model = costmodel.load_model("qwen3.5-397b-a17b")
    tokens = np.array([4.0, 8.0, 16.0, 32.0, 128.0])
    ops = forward_ops(
        model,
        batch_size=tokens,
        new_tokens=1,
        past_tokens=1024,
        weight_dtype="fp8",
        activation_dtype="fp8",
        kv_dtype="fp8",
        expert_dtype="fp8_block",
        tp=8,
        logits="last",
    )
    eff = B200.efficiency.model_copy(update={"kernel_engine": "sglang"})
    times = kernel_times.op_times(
        ops, B200, weight_dtype="fp8", activation_dtype="fp8", expert_dtype="fp8_block", efficiency=eff
    )
    moe_ops = [i for i, op in enumerate(ops) if op.name in ("experts_up", "experts_act", "experts_down")]
    assert len(moe_ops) == 3
    step = sum(np.asarray(times.time_s(i)) for i in moe_ops)
    sglang = kernel_times.ENGINE_PREFIX["sglang"]
    keys = kernel_times.moe_keys(kernel_times._Keys(B200, sglang, kernel_times.launch_s(B200)), "fp8_block")
    assert keys
    assert all("flashinfer_trtllm" in k for k in keys)
    shape = MoEShape(tokens, hidden=4096.0, inter=1024.0, topk=10.0, experts=512.0, tp=8.0, ep=1.0)
    fitted = [dataclasses.replace(params_for(B200, moe, key), cache_bytes=0.0) for key in keys]
    table = _moe_under_each(B200, fitted, shape).min(axis=0)
    np.testing.assert_allclose(step, table, rtol=1e-9)


@pytest.mark.parametrize(
    ("device", "engine", "expert_activation", "tp", "fmt"),
    [
        ("b200", "trtllm", "mxfp8", 1, "w4a8_mxfp4_mxfp8"),  # TensorRT-LLM's trtllm-gen MxE4m3 runner
        ("b200", "vllm", "bf16", 2, "w4a16_mxfp4"),  # vLLM's FlashInfer trtllm-gen MXFP4 x bf16 experts
        ("h100-sxm", "vllm", "bf16", 2, "w4a16_mxfp4"),  # vLLM's OpenAI triton_kernels MXFP4 experts
        ("h100-sxm", "trtllm", "bf16", 1, "w4a16_mxfp4"),  # TensorRT-LLM's TritonFusedMoE
    ],
)
def test_gpt_oss_steps_pay_their_mxfp4_moe_tables_fixed_cost_in_full(
    device: str, engine: str, expert_activation: str, tp: int, fmt: str
) -> None:
    # a wiring test, not an independent oracle: every MXFP4 MoE table a gpt-oss step reads is graph-timed
    # (docs/serving.md, "Which MoE tables were timed eagerly"), so the step's MoE block (up, activation, down) is the kernel model of the table row of
    # its shape with the key's fitted parameters, fixed cost included, the fastest of the engine's keys;
    # the one difference is the L2 reuse of a benchmark repeating one call, which a step's layers, each on
    # its own weights, do not get
    hardware = costmodel.load_hardware(device)
    model = costmodel.load_model("gpt-oss-120b")
    tokens = np.array([1.0, 4.0, 16.0, 64.0])
    ops = forward_ops(
        model,
        batch_size=tokens,
        new_tokens=1,
        past_tokens=1024,
        expert_dtype="mxfp4",
        expert_activation_dtype=expert_activation,
        tp=tp,
        logits="last",
    )
    eff = hardware.efficiency.model_copy(update={"kernel_engine": engine})
    times = kernel_times.op_times(
        ops, hardware, expert_dtype="mxfp4", expert_activation_dtype=expert_activation, efficiency=eff
    )
    moe_ops = [i for i, op in enumerate(ops) if op.name in ("experts_up", "experts_act", "experts_down")]
    assert len(moe_ops) == 3
    step = sum(np.asarray(times.time_s(i)) for i in moe_ops)
    chooser = kernel_times._Keys(
        hardware, kernel_times.ENGINE_PREFIX[engine], kernel_times.launch_s(hardware)
    )
    keys = kernel_times.moe_keys(chooser, fmt)
    assert keys
    assert all(k.startswith(f"{fmt}:{engine}:") and "compressedtensors" not in k for k in keys)
    fitted = [dataclasses.replace(params_for(hardware, moe, key), cache_bytes=0.0) for key in keys]
    table = _moe_under_each(hardware, fitted, MoEShape(tokens, **GPT_OSS_MOE, tp=tp, ep=1.0)).min(axis=0)
    np.testing.assert_allclose(step, table, rtol=1e-9)
    # the fixed cost is more than a graph's few launches: the step did not cap it
    assert min(p.launch_s for p in fitted) > 4 * kernel_times.launch_s(hardware)


B200 = costmodel.load_hardware("b200")
DEEPSEEK_MOE = {"hidden": 7168.0, "inter": 2048.0, "topk": 8.0, "experts": 256.0}
GPT_OSS_MOE = {"hidden": 2880.0, "inter": 2880.0, "topk": 4.0, "experts": 128.0}


def _moe_under_each(hardware: HardwareProfile, params: list[Any], shape: MoEShape) -> np.ndarray:
    """The kernel model of ``shape``'s fused MoE under each of ``params``, its tokens routed as a step
    routes them (:data:`kernel_times.STEP_ROUTING`): one row per parameter set [s]."""
    return np.array(
        [
            moe.time_s(
                hardware,
                each,
                num_tokens=shape.tokens,
                hidden_size=shape.hidden,
                inter_size=shape.inter,
                topk=shape.topk,
                num_experts=shape.experts,
                tp_size=shape.tp,
                ep_size=shape.ep,
                routing=kernel_times.STEP_ROUTING,
            )
            for each in params
        ]
    )


def _moe_layer_s(hardware: object, engine: str, fmt: str, tokens: object, tp: float, ep: float) -> object:
    chooser = kernel_times._Keys(hardware, engine, kernel_times.launch_s(hardware))
    shape = MoEShape(np.asarray(tokens, dtype=np.float64), **DEEPSEEK_MOE, tp=tp, ep=ep)
    weight, activation = {"nvfp4": ("nvfp4", "nvfp4"), "fp8_block": ("fp8_block", "fp8")}[fmt]
    return kernel_times._moe_s(hardware, chooser, shape, weight, activation)


@pytest.mark.parametrize("engine", ["trtllm", "vllm"])
@pytest.mark.parametrize("fmt", ["nvfp4", "fp8_block"])
def test_an_engines_moe_layer_runs_the_fastest_of_its_own_kernels(engine: str, fmt: str) -> None:
    # the engine's autotuner keeps the fastest runner per shape: never slower than any kernel it ships,
    # and as fast as one of them at every token count
    tokens = np.array([1.0, 16.0, 64.0, 512.0, 8192.0])
    chooser = kernel_times._Keys(B200, engine, kernel_times.launch_s(B200))
    own = kernel_times.moe_keys(chooser, fmt)
    assert own
    assert all(k.startswith(f"{fmt}:{engine}:") and "nongated" not in k for k in own)
    stepped = [kernel_times.step_params(B200, moe, key, launch_s=kernel_times.launch_s(B200)) for key in own]
    each = _moe_under_each(B200, stepped, MoEShape(tokens, **DEEPSEEK_MOE, tp=8.0, ep=1.0))
    layer = _moe_layer_s(B200, engine, fmt, tokens, 8.0, 1.0)
    np.testing.assert_allclose(layer, each.min(axis=0), rtol=1e-12)


def test_another_engines_kernels_never_change_an_engines_moe_layer() -> None:
    calibration = B200.kernel_calibration
    assert calibration is not None
    params = dict(calibration.params)
    params["moe"] = {k: v for k, v in params["moe"].items() if ":trtllm:" not in k}
    vllm_only = B200.model_copy(
        update={"kernel_calibration": calibration.model_copy(update={"params": params})}
    )
    tokens = np.array([1.0, 64.0, 4096.0])
    np.testing.assert_allclose(
        _moe_layer_s(vllm_only, "vllm", "nvfp4", tokens, 1.0, 8.0),
        _moe_layer_s(B200, "vllm", "nvfp4", tokens, 1.0, 8.0),
        rtol=1e-12,
    )
    # with no kernel of its own for the format, an engine falls back to the format's pooled fit
    chooser = kernel_times._Keys(vllm_only, "trtllm", kernel_times.launch_s(vllm_only))
    assert kernel_times.moe_keys(chooser, "nvfp4") == ["nvfp4"]


def test_an_mla_verification_runs_the_absorbed_decode_kernel_and_a_prefill_chunk_stays_naive() -> None:
    """A speculative verification of k drafts (k + 1 queries a sequence over its cache) runs in the engines'
    absorbed decode kernel (vLLM's reorder_batch_threshold = 1 + k, SGLang's MLA dispatch of TARGET_VERIFY,
    TensorRT-LLM's absorbed generation). Oracles, DeepSeek-V3 on H100 at 16 and 128 heads a GPU:
    - its queries do the FLOPs of a decode of B (k + 1) sequences over the same keys and read the cached
      latent once a sequence, not k + 1 times: never dearer than that decode, never cheaper than a decode
      of the B sequences alone;
    - the absorb matmuls run over the pass's B (k + 1) new tokens: those of the B (k + 1)-sequence decode;
    - far below the naive form (the cache's 128 heads' keys and values rebuilt), which a pass without
      drafts keeps, and which a 2,048-token chunk over a cache keeps whatever the draft count."""
    m = costmodel.load_model("deepseek-v3")
    B, past = 32, 4095

    def t(name: str, **kw: Any) -> float:
        ops = forward_ops(m, **kw)
        names = [op.name for op in ops]
        return float(kernel_times.op_times(ops, H100, efficiency=KERNELS).time_s(names.index(name)))

    for tp in (8, 1):
        for k in (1, 3):
            kw: dict[str, Any] = {"tp": tp, "batch_size": B, "past_tokens": past}
            verify = t("attention", new_tokens=k + 1, draft_tokens=k, **kw)
            naive = t("attention", new_tokens=k + 1, **kw)
            kw.update(batch_size=B * (k + 1), past_tokens=past + k)
            decodes = t("attention", new_tokens=1, **kw)
            alone = t("attention", batch_size=B, new_tokens=1, past_tokens=past, tp=tp)
            assert alone <= verify <= decodes
            assert naive > 5 * verify
            up = t("kv_up_proj", batch_size=B, new_tokens=k + 1, past_tokens=past, draft_tokens=k, tp=tp)
            assert up == pytest.approx(t("kv_up_proj", new_tokens=1, **kw), rel=1e-12)
    chunk = {"batch_size": 1, "new_tokens": 2048, "past_tokens": 4096, "tp": 8}
    for name in ("attention", "kv_up_proj"):
        assert t(name, draft_tokens=3, **chunk) == t(name, **chunk)
    with pytest.raises(costmodel.CostmodelError, match="draft_tokens"):
        forward_ops(m, batch_size=1, new_tokens=2, draft_tokens=-1)


def test_top_k_sparse_mla_decode_is_the_mla_kernel_over_the_selected_keys() -> None:
    """DeepSeek sparse attention (GLM-5): a decode reads the top-k selected latent rows with the absorbed
    MLA decode kernel, so below top-k cached tokens it is the dense MLA decode, and beyond it stops
    growing with the context, while the indexer still scores every cached key."""
    sparse = costmodel.load_model("glm-5")
    assert sparse.sparse_attention is not None
    dense = sparse.model_copy(update={"sparse_attention": None})
    top_k = sparse.sparse_attention.index_topk
    eff = B200.efficiency.model_copy(update={"time_model": "kernels", "kernel_engine": "vllm"})

    def times(model: object, past: float) -> tuple[float, float]:
        ops = forward_ops(model, batch_size=16, new_tokens=1, past_tokens=past, tp=8)
        t = kernel_times.op_times(ops, B200, efficiency=eff)
        names = [op.name for op in ops]
        assert isinstance(ops[names.index("attention")].kernel, AttentionShape)
        indexer = float(t.time_s(names.index("indexer"))) if "indexer" in names else 0.0
        return float(t.time_s(names.index("attention"))), indexer

    short = top_k / 4
    assert times(sparse, short)[0] == pytest.approx(times(dense, short)[0], rel=1e-12)
    at_top_k, indexer_at = times(sparse, top_k - 1)
    far, indexer_far = times(sparse, 8 * top_k)
    assert far == pytest.approx(at_top_k, rel=1e-12)
    assert far < times(dense, 8 * top_k)[0]
    assert indexer_far > indexer_at
    # a prefill chunk's top-k attention has no kernel model and keeps the roofline
    ops = forward_ops(sparse, batch_size=1, new_tokens=512, past_tokens=0, tp=8)
    assert ops[[op.name for op in ops].index("attention")].kernel is None


@pytest.mark.parametrize("past", [100.0, 1000.0, 20000.0])
def test_a_sparse_mla_verification_is_one_sparse_decode_a_query_token(past: float) -> None:
    """GLM-5 verifying k = 3 drafts (n = 4 tokens a sequence): each query token gets its own top-k rows
    (FlashMLA's sparse decode takes ``indices[batch, s_q, topk]``; vLLM's FlashInfer sparse-MLA backend a
    block table ``[batch_size, q_len_per_request, sparse_mla_top_k]``), so the attention kernel is the one
    of b n one-token sparse decodes at the same past, timed equal to the bit, and the verify runs the whole
    indexer as a decode does (SGLang's TARGET_VERIFY is not an extend), even within the top-k."""
    glm = costmodel.load_model("glm-5")
    eff = B200.efficiency.model_copy(update={"time_model": "kernels", "kernel_engine": "vllm"})

    def attention(batch: float, new: float, drafts: float) -> tuple[AttentionShape, float, dict[str, Op]]:
        ops = forward_ops(glm, batch_size=batch, new_tokens=new, past_tokens=past, tp=8, draft_tokens=drafts)
        names = [op.name for op in ops]
        i = names.index("attention")
        shape = ops[i].kernel
        assert isinstance(shape, AttentionShape)
        return (
            shape,
            float(kernel_times.op_times(ops, B200, efficiency=eff).time_s(i)),
            dict(zip(names, ops, strict=True)),
        )

    verify, t_verify, ops_verify = attention(16, 4, 3)
    decode, t_decode, ops_decode = attention(64, 1, 0)
    assert float(verify.batch) == 64
    assert verify.sparse_mla  # the engine's sparse kernel (mla.low_latency_passes' ``sparse``)
    assert float(verify.new_tokens) == 1
    assert float(verify.past_tokens) == float(decode.past_tokens)
    assert t_verify == t_decode
    for name in ("indexer_wq_b", "indexer_weights_proj"):
        assert float(ops_verify[name].flop) == float(ops_decode[name].flop)


def test_the_sparse_attention_indexer_runs_replicated_as_its_kernels() -> None:
    """GLM-5's lightning indexer as SGLang launches it (``Indexer.forward_cuda``): its three projections
    are ``ReplicatedLinear``, so each GPU reads the checkpoint's whole tensors whatever the tensor
    parallelism (oracle: the config's shapes), as it does MLA's fused down projections (q_a and kv_a,
    ``fused_qkv_a_proj_with_mqa``, a ``ReplicatedLinear`` in deepseek_v2.py), while the query's up
    projection (``q_b_proj``, a ``ColumnParallelLinear``) splits its heads over it; eleven small
    kernels run between the projections and the logits, each paying at least a launch; the logits are
    written in fp32, one per query and cached key, and read back by the top-k, which writes the selected
    keys' int32 indices."""
    glm = costmodel.load_model("glm-5")
    dsa, mla = glm.sparse_attention, glm.mla
    assert dsa is not None
    assert mla is not None
    assert mla.q_lora_rank is not None
    batch, past = 4, 1000.0
    by_tp = {}
    for tp in (1, 8):
        ops = forward_ops(glm, batch_size=batch, new_tokens=1, past_tokens=past, tp=tp)
        by_tp[tp] = {op.name: op for op in ops}
    one, eight = by_tp[1], by_tp[8]
    heads, width = dsa.index_n_heads, dsa.index_head_dim
    assert eight["indexer_wq_b"].weight_bytes == 2.0 * heads * width * mla.q_lora_rank  # bf16
    assert eight["indexer_weights_proj"].weight_bytes == 2.0 * heads * glm.d_model
    assert eight["indexer_wk"].weight_bytes >= 2.0 * width * glm.d_model  # and its LayerNorm
    for name in ("indexer_wq_b", "indexer_wk", "indexer_weights_proj"):
        assert eight[name].weight_bytes == one[name].weight_bytes
    assert eight["qkv_proj"].weight_bytes == pytest.approx(one["qkv_proj"].weight_bytes / 8, rel=1e-12)
    assert eight["qkv_a_proj"].weight_bytes == one["qkv_a_proj"].weight_bytes
    # the fused down projection's whole GEMM on each GPU: d x (q_lora + kv_lora + rope) (the config's shapes)
    a_width = mla.q_lora_rank + mla.kv_lora_rank + mla.qk_rope_head_dim
    assert float(eight["qkv_a_proj"].flop) == 2.0 * batch * glm.d_model * a_width
    assert float(eight["qkv_proj"].flop) == 2.0 * batch * mla.q_lora_rank * glm.n_heads * mla.qk_head_dim / 8
    # the head-gate projection is never quantized (quant_config=None): bf16 in an fp8 pass too, where the
    # query projection is fp8 (one byte a weight, plus block scales)
    fp8 = {
        op.name: op
        for op in forward_ops(
            glm,
            batch_size=batch,
            new_tokens=1,
            past_tokens=past,
            tp=8,
            weight_dtype="fp8",
            activation_dtype="fp8",
        )
    }
    assert fp8["indexer_weights_proj"].weight_bytes == 2.0 * heads * glm.d_model
    assert fp8["indexer_weights_proj"].compute_dtype == "bf16"
    assert fp8["indexer_wq_b"].weight_bytes < 1.1 * heads * width * mla.q_lora_rank
    # the logits read SGLang's index-K cache, fp8 keys and an fp32 scale (132 bytes a token at 128
    # dimensions), and the fp8 queries with their fp32 head gates, whatever the pass's activation dtype
    assert width == 128
    index_reads = batch * (past + 1) * 132.0 + batch * heads * (width + 4.0)
    for pass_ops in (eight, fp8):
        assert float(pass_ops["indexer"].bytes_read) == index_reads
    small = [op for op in by_tp[8].values() if op.kind == "elementwise" and op.name.startswith("indexer_")]
    assert len(small) == 11 + 1  # the eleven kernels, and the top-k
    logits = batch * (past + 1) * 4.0
    assert float(eight["indexer"].bytes_written) == logits
    assert float(eight["indexer_topk"].bytes_read) == logits
    assert float(eight["indexer_topk"].bytes_written) == batch * dsa.index_topk * 4.0
    eff = B200.efficiency.model_copy(update={"time_model": "kernels", "kernel_engine": "sglang"})
    ops = forward_ops(glm, batch_size=batch, new_tokens=1, past_tokens=past, tp=8)
    t = kernel_times.op_times(ops, B200, efficiency=eff)
    launch = kernel_times.launch_s(B200, eff)
    for i, op in enumerate(ops):
        if op.kind == "elementwise" and op.name.startswith("indexer_"):
            assert float(t.time_s(i)) >= launch


def test_a_serving_step_pays_no_eager_host_floor_in_mla() -> None:
    """The A100 MLA tables' ~0.3 ms floor is the eager host issuing each benchmark call; under CUDA graphs a
    serving step does not wait for it, so the step's MLA parameters carry none."""
    from costmodel.kernels import mla

    a100 = costmodel.load_hardware("a100-80gb")
    for key in ("vllm.vllm_triton_mla:gen:bf16", "vllm.vllm_triton_mla:ctx:bf16"):
        stored = params_for(a100, mla, key)
        step = kernel_times.step_params(a100, mla, key, launch_s=kernel_times.launch_s(a100))
        assert step.host_floor_s == 0.0
        assert stored.host_floor_s >= 0.0


def test_a_step_all_reduce_never_shrinks_with_the_batch_across_the_engines_switches() -> None:
    # B200, vLLM, 8 GPUs: the kernel table's time drops from the two-shot kernel (512 KiB) to symmetric
    # memory (1 MiB); a serving step keeps the slower path's time until the faster one catches up
    b200 = costmodel.load_hardware("b200")
    eff = b200.efficiency.model_copy(update={"kernel_engine": "vllm", "time_model": "kernels"})
    batch = np.arange(1.0, 2049.0)
    ops = forward_ops(
        costmodel.load_model("llama-3-70b"), batch_size=batch, new_tokens=1, past_tokens=512, tp=8
    )
    i = [op.name for op in ops].index("allreduce_attn")
    t = kernel_times.op_times(ops, b200, efficiency=eff).time_s(i)
    assert np.all(np.diff(t) >= 0)
    message = batch * 8192 * 2
    key = kernel_times.step_params(b200, collective, "vLLM_custom", launch_s=kernel_times.launch_s(b200))
    kernel = collective.time_s(b200, key, message_bytes=message, num_gpus=8, eager=False)
    one_shot = message < 256 * 1024
    np.testing.assert_allclose(t[one_shot], kernel[one_shot], rtol=1e-12)  # below any switch: the kernel's


def test_a_stated_moe_backend_runs_its_own_kernels_else_the_same_kernel_of_another_engine() -> None:
    # TensorRT-LLM's moe_config.backend picks the kernels: DEEPGEMM its own DeepGEMM rows; TRTLLM (the
    # trtllm-gen kernels) has no fp8_block rows of TensorRT-LLM's own on B200, so FlashInfer's trtllm-gen
    # kernels as vLLM's rows time them; CUTLASS its own CUTLASS rows
    launch = kernel_times.launch_s(B200)

    def keys(backend: str | None, fmt: str) -> list[str]:
        return kernel_times.moe_keys(kernel_times._Keys(B200, "trtllm", launch, backend), fmt)

    assert keys("DEEPGEMM", "fp8_block") == keys(None, "fp8_block") == ["fp8_block:trtllm:deepgemm"]
    gen = keys("TRTLLM", "fp8_block")
    assert gen
    assert all(k.startswith("fp8_block:vllm:") and "flashinfer_trtllm" in k for k in gen)
    assert keys("CUTLASS", "nvfp4") == ["nvfp4:trtllm:moe_torch_flow_cutlass"]
    assert keys("TRTLLM", "nvfp4") == ["nvfp4:trtllm:moe_torch_flow_min_latency"]


def test_a_stated_moe_backend_times_the_layer_with_the_fastest_of_that_backends_kernels() -> None:
    tokens = np.array([1.0, 64.0, 4096.0])
    shape = MoEShape(tokens, **DEEPSEEK_MOE, tp=1.0, ep=8.0)
    launch = kernel_times.launch_s(B200)

    def layer(backend: str | None) -> object:
        chooser = kernel_times._Keys(B200, "trtllm", launch, backend)
        return kernel_times._moe_s(B200, chooser, shape, "fp8_block", "fp8")

    np.testing.assert_allclose(layer("DEEPGEMM"), layer(None), rtol=1e-12)
    gen = kernel_times.moe_keys(kernel_times._Keys(B200, "trtllm", launch, "TRTLLM"), "fp8_block")
    each = _moe_under_each(
        B200, [kernel_times.step_params(B200, moe, key, launch_s=launch) for key in gen], shape
    )
    np.testing.assert_allclose(layer("TRTLLM"), each.min(axis=0), rtol=1e-12)


def test_vllms_mxfp8_gpt_oss_moe_chooses_among_its_own_kernels_and_tensorrt_llms_trtllm_gen_table() -> None:
    """vLLM's gpt-oss MoE with MXFP8 inputs runs FlashInfer's trtllm-gen MXFP4 x MXFP8 kernel
    (``SM100_FI_MXFP4_MXFP8_TRTLLM``), which TensorRT-LLM's table times at gpt-oss-120b's shape
    (``TRTLLMGenFusedMoE`` on SM100): the step's layer is the fastest of vLLM's own keys and that one. Other
    formats, and TensorRT-LLM's own steps, keep their keys."""
    fmt, shared = "w4a8_mxfp4_mxfp8", "w4a8_mxfp4_mxfp8:trtllm:moe_torch_flow"
    launch = kernel_times.launch_s(B200)
    vllm_keys = kernel_times.moe_keys(kernel_times._Keys(B200, "vllm", launch), fmt)
    own = [k for k in vllm_keys if k.startswith(f"{fmt}:vllm:")]
    assert own
    assert set(vllm_keys) == {*own, shared}
    assert kernel_times.moe_keys(kernel_times._Keys(B200, "trtllm", launch), fmt) == [shared]
    assert all(
        ":vllm:" in k for k in kernel_times.moe_keys(kernel_times._Keys(B200, "vllm", launch), "w4a16_mxfp4")
    )

    tokens = np.array([1.0, 4.0, 16.0, 64.0, 256.0])
    for tp in (1.0, 4.0):
        shape = MoEShape(tokens, **GPT_OSS_MOE, tp=tp, ep=1.0)
        chooser = kernel_times._Keys(B200, "vllm", launch)
        layer = kernel_times._moe_s(B200, chooser, shape, "mxfp4", "mxfp8")
        stepped = [kernel_times.step_params(B200, moe, key, launch_s=launch) for key in vllm_keys]
        each = _moe_under_each(B200, stepped, shape)
        np.testing.assert_allclose(layer, each.min(axis=0), rtol=1e-12)


def test_norms_fused_into_the_tensor_parallel_all_reduce_run_no_kernel_of_their_own() -> None:
    # a pre-norm decoder has two norms a layer; fused into the all-reduce after attention and after the MLP,
    # only the first layer's input norm keeps its kernel, and only where an all-reduce precedes the norms
    model = costmodel.load_model("gpt-oss-20b")
    L = model.n_layers

    def norm(**kw: Any) -> Any:
        ops = forward_ops(model, batch_size=4, new_tokens=1, past_tokens=1000, **kw)
        return next(op for op in ops if op.name == "norm")

    assert norm(tp=1).layers == norm(tp=1, norm_in_allreduce=True).layers == 2 * L
    assert norm(tp=4).layers == 2 * L
    assert norm(tp=4, norm_in_allreduce=True).layers == 1
    # attention DP: the ranks' tokens differ, no all-reduce sits between the norms
    assert norm(tp=4, ep=4, attention_dp=4, norm_in_allreduce=True).layers == 2 * L


def _norm_time(hardware: HardwareProfile, model: str, tp: int, batch: Any, **eff: Any) -> Any:
    """One norm kernel's step time in the pass built without ``norm_in_allreduce`` (the norm that a fused
    all-reduce's pass drops), under the same kernels as :func:`_allreduce_times`."""
    update = {"kernel_engine": "vllm", "time_model": "kernels", **eff}
    efficiency = hardware.efficiency.model_copy(update=update)
    ops = forward_ops(costmodel.load_model(model), batch_size=batch, new_tokens=1, past_tokens=512, tp=tp)
    i = [op.name for op in ops].index("norm")
    return kernel_times.op_times(ops, hardware, efficiency=efficiency).time_s(i)


def _allreduce_times(hardware: HardwareProfile, model: str, tp: int, batch: Any, **eff: Any) -> Any:
    """The attention all-reduce's step time under vLLM's kernels (``eff``: other efficiency fields), its
    operators and the engine's efficiency built without and with ``norm_in_allreduce``, as a serving step
    builds them (``costmodel.estimate._Setup.ops``)."""
    out = []
    for flag in (False, True):
        update = {"kernel_engine": "vllm", "time_model": "kernels", "norm_in_allreduce": flag, **eff}
        efficiency = hardware.efficiency.model_copy(update=update)
        ops = forward_ops(
            costmodel.load_model(model),
            batch_size=batch,
            new_tokens=1,
            past_tokens=512,
            tp=tp,
            norm_in_allreduce=flag,
        )
        i = [op.name for op in ops].index("allreduce_attn")
        out.append(kernel_times.op_times(ops, hardware, efficiency=efficiency).time_s(i))
    return out[0], out[1]


def _table(hardware: HardwareProfile, key: str, size: Any, gpus: int) -> Any:
    params = kernel_times.step_params(hardware, collective, key, launch_s=kernel_times.launch_s(hardware))
    return collective.time_s(hardware, params, message_bytes=size, num_gpus=gpus, eager=False)


def test_vllms_fused_all_reduce_is_tensorrt_llms_kernel_up_to_vllms_size_limit() -> None:
    # vLLM's fuse_allreduce_rms pass calls FlashInfer's port of TensorRT-LLM's fused all-reduce for inputs
    # up to 1 MiB on 8 B200 GPUs (FI_ALLREDUCE_FUSION_MAX_SIZE_MB), its own all-reduce beyond
    b200 = costmodel.load_hardware("b200")
    limit = collective.vllm_fused_norm_max_bytes(b200, 8)
    assert limit == 2**20
    batch = np.array([4.0, 64.0, 2048.0])  # 46 KiB, 737 KiB and 23 MiB of gpt-oss's 2880-wide bf16 rows
    message = batch * 2880 * 2
    t_plain, t_fused = _allreduce_times(b200, "gpt-oss-120b", 8, batch)
    below = message <= limit
    np.testing.assert_allclose(t_fused[below], _table(b200, "TRTLLM", message[below], 8), rtol=1e-12)
    # beyond the limit vLLM's own all-reduce, never faster than the fused call at the limit, and then the
    # residual add + RMSNorm kernel that the pass without the fusion runs
    norm = _norm_time(b200, "gpt-oss-120b", 8, batch)
    np.testing.assert_allclose(
        t_fused[~below],
        np.maximum(t_plain[~below], _table(b200, "TRTLLM", float(limit), 8)) + norm[~below],
        rtol=1e-12,
    )
    # TensorRT-LLM's own steps do not change with the flag inside its workspace (8 MB on 8 GPUs):
    # aiconfigurator's collector times its all-reduce with fusion_op=NONE (benchmark_trtllm_allreduce), a
    # plain all-reduce that stands in for the fused call, its norm taken as free; past the workspace it
    # hands over to NCCL and runs the norm apart (fallbackRunSubsequentOps)
    trt_plain, trt_fused = _allreduce_times(b200, "gpt-oss-120b", 8, batch, kernel_engine="trtllm")
    inside = message <= 8e6
    assert list(inside) == [True, True, False]
    np.testing.assert_allclose(trt_fused[inside], trt_plain[inside], rtol=1e-12)
    trt_norm = _norm_time(b200, "gpt-oss-120b", 8, batch, kernel_engine="trtllm")
    np.testing.assert_allclose(trt_fused[~inside], trt_plain[~inside] + trt_norm[~inside], rtol=1e-12)


def test_where_no_fused_call_runs_the_dropped_norm_is_paid_beside_the_all_reduce() -> None:
    # vLLM lists no fused all-reduce size for the A100 (compute capability 8.0), so its pass leaves every
    # all-reduce and norm as they were: the flagged pass drops the norms' operator, and each residual
    # all-reduce carries one norm kernel instead, at any batch
    a100 = costmodel.load_hardware("a100-80gb")
    assert collective.vllm_fused_norm_max_bytes(a100, 8) == 0.0
    batch = np.array([4.0, 2048.0])
    t_plain, t_fused = _allreduce_times(a100, "gpt-oss-120b", 8, batch)
    norm = _norm_time(a100, "gpt-oss-120b", 8, batch)
    np.testing.assert_allclose(t_fused, t_plain + norm, rtol=1e-12)
    assert np.all(norm > 0)


def test_vllms_fused_all_reduce_runs_past_tensorrt_llms_own_workspace_up_to_vllms_limit() -> None:
    # at tp 2 vLLM sizes FlashInfer's fused all-reduce workspace to its 64 MiB limit, past TensorRT-LLM's
    # own 16 MB (TRTLLM_WORKSPACE_BYTES, beyond which TensorRT-LLM hands over to NCCL): 23.6 MB is still the
    # fused call, priced with TensorRT-LLM's kernel model (not its NCCL hand-over)
    b200 = costmodel.load_hardware("b200")
    assert collective.vllm_fused_norm_max_bytes(b200, 2) == 64 * 2**20
    batch = np.array([2048.0, 4096.0])
    message = batch * 2880 * 2
    assert message[0] <= 16e6 < message[1] <= 64 * 2**20
    assert list(collective.runs_on_nccl(b200, "TRTLLM", message_bytes=message, num_gpus=2)) == [False, True]
    _, t_fused = _allreduce_times(b200, "gpt-oss-120b", 2, batch)
    np.testing.assert_allclose(t_fused, _table(b200, "TRTLLM", message, 2), rtol=1e-12)


def test_a_model_whose_norms_stay_keeps_vllms_plain_all_reduce() -> None:
    # gemma-4-26b-a4b has sandwich norms and a dense MLP beside its experts: the fused all-reduce + RMSNorm
    # does not run (ops.fused_norms), so with the engine's flag set it keeps every norm and the plain
    # all-reduce's price at tp 8 on B200; one rule decides both
    b200 = costmodel.load_hardware("b200")
    batch = np.array([4.0, 64.0])

    def marked(name: str, flag: bool) -> tuple[float, list[str]]:
        ops = forward_ops(
            costmodel.load_model(name),
            batch_size=batch,
            new_tokens=1,
            past_tokens=512,
            tp=8,
            norm_in_allreduce=flag,
        )
        norms = next(op for op in ops if op.name == "norm").layers
        return norms, [
            op.name for op in ops if isinstance(op.kernel, CollectiveShape) and op.kernel.fused_norm
        ]

    gemma = costmodel.load_model("gemma-4-26b-a4b")
    assert marked("gemma-4-26b-a4b", False) == marked("gemma-4-26b-a4b", True) == (gemma.n_layer_norms, [])
    np.testing.assert_allclose(*_allreduce_times(b200, "gemma-4-26b-a4b", 8, batch), rtol=1e-12)
    # gpt-oss's residual all-reduces carry the mark, and only with the flag
    assert marked("gpt-oss-120b", True) == (1, ["allreduce_attn", "allreduce_moe"])
    assert marked("gpt-oss-120b", False)[1] == []


def test_each_tp_rank_holds_the_replicated_attention_weights_whole() -> None:
    """MLA's fused down projections (q_a, kv_a and their RMSNorms) and the lightning indexer are replicated
    on every TP rank in the engines (``ReplicatedLinear``), so a rank of a tp-8 replica holds them whole
    and an eighth of the rest (oracle: GLM-5's config shapes, bf16, no norm biases but the indexer's
    LayerNorm)."""
    from costmodel.memory import replica_memory

    glm = costmodel.load_model("glm-5")
    dsa, mla = glm.sparse_attention, glm.mla
    assert dsa is not None
    assert mla is not None
    assert mla.q_lora_rank is not None
    d, q, kv, rope = glm.d_model, mla.q_lora_rank, mla.kv_lora_rank, mla.qk_rope_head_dim
    hi, di = dsa.index_n_heads, dsa.index_head_dim
    per_layer = d * (q + kv + rope) + q + kv + hi * di * q + d * di + 2 * di + d * hi
    replicated = 2.0 * per_layer * glm.n_attention_layers
    one = replica_memory(glm, tp=1).weight_bytes
    eight = replica_memory(glm, tp=8).weight_bytes
    assert eight == pytest.approx((one - replicated) / 8 + replicated, rel=1e-12)


def test_a_prompt_pass_within_the_top_k_runs_the_indexer_key_side_only() -> None:
    """SGLang's ``Indexer.forward_cuda`` skips the query projection, head gates, logits and top-k of an
    extend whose keys all fit in the top-k (``_should_skip_logits_computation``: the top-k selects every
    key), running the key side alone (``_forward_cuda_k_only``); a decode runs the whole indexer. Oracle:
    GLM-5's index_topk (2048) and the key side's shapes."""
    glm = costmodel.load_model("glm-5")
    dsa = glm.sparse_attention
    assert dsa is not None
    top_k = dsa.index_topk

    def indexer(new: float, past: float) -> dict[str, Op]:
        ops = forward_ops(glm, batch_size=2, new_tokens=new, past_tokens=past, tp=8)
        return {op.name: op for op in ops if op.name.startswith("indexer")}

    within, beyond, decode = indexer(top_k, 0), indexer(top_k, 1), indexer(1, 100)
    for name in ("indexer_wq_b", "indexer_weights_proj", "indexer", "indexer_hadamard_q", "indexer_quant_q"):
        assert float(within[name].flop) == 0.0
        assert float(within[name].bytes_read) == 0.0
        assert float(beyond[name].bytes_read) > 0.0
        assert float(decode[name].bytes_read) > 0.0
    assert float(within["indexer_topk"].bytes_read) == 0.0
    assert float(within["indexer_topk"].bytes_written) == 2 * top_k * top_k * 4.0  # the select-all indices
    assert float(within["indexer_wk"].flop) == 2.0 * 2 * top_k * glm.d_model * dsa.index_head_dim
    assert float(within["indexer_cache_write"].bytes_written) == 2 * top_k * (dsa.index_head_dim + 4.0)


def _gemm_table(system: str, engine: str, version: str) -> Any:
    import pandas as pd
    from conftest import PUBLIC_GPU

    path = PUBLIC_GPU / "kernels" / system / "gemm" / engine / version / "gemm_perf.parquet"
    return pd.read_parquet(path)


@pytest.mark.parametrize("hardware", [H100, B200])
def test_tensorrt_llms_block_fp8_linear_layers_run_its_own_kernels_in_a_step(
    hardware: HardwareProfile,
) -> None:
    # Qwen3-235B-A22B-FP8's attention projections at tp 4 (128 x 128 fp8 blocks): TensorRT-LLM's step
    # times them with TensorRT-LLM's own block-fp8 kernels (fp8_block_scaling_gemm on Hopper, DeepGEMM on
    # Blackwell: the pool of its table's rows), vLLM's with the format's pool of every engine's rows
    model = costmodel.load_model("qwen3-235b-a22b")
    tokens = np.array([1.0, 4.0, 16.0, 64.0, 512.0])
    ops = forward_ops(
        model, batch_size=tokens, new_tokens=1, past_tokens=1024, weight_dtype="fp8_block",
        activation_dtype="fp8", tp=4, logits="last",
    )  # fmt: skip
    launch = kernel_times.launch_s(hardware)
    gemms = [i for i, op in enumerate(ops) if op.name in ("qkv_proj", "o_proj")]
    assert len(gemms) == 2
    for engine, key in (("trtllm", "fp8_block:trtllm"), ("vllm", "fp8_block"), ("sglang", "fp8_block")):
        eff = hardware.efficiency.model_copy(update={"time_model": "kernels", "kernel_engine": engine})
        times = kernel_times.op_times(
            ops, hardware, weight_dtype="fp8_block", activation_dtype="fp8", efficiency=eff
        )
        p = kernel_times.step_params(hardware, gemm, key, launch_s=launch)
        for i in gemms:
            s = ops[i].kernel
            assert isinstance(s, GemmShape)
            np.testing.assert_allclose(
                times.time_s(i), gemm.time_s(hardware, p, m=s.m, n=s.n, k=s.k), rtol=1e-12
            )
    # a device whose calibration holds no TensorRT-LLM block-fp8 pool: the format's pool
    calibration = hardware.kernel_calibration
    assert calibration is not None
    params = {
        f: {k: v for k, v in d.items() if k != "fp8_block:trtllm"} for f, d in calibration.params.items()
    }
    bare = hardware.model_copy(
        update={"kernel_calibration": calibration.model_copy(update={"params": params})}
    )
    assert kernel_times._Keys(bare, "trtllm", launch).gemm_key("fp8_block") == "fp8_block"
    assert kernel_times._Keys(hardware, "trtllm", launch).gemm_key("fp8") == "fp8"


@pytest.mark.parametrize(
    ("hardware", "system", "source"), [(H100, "h100_sxm", "torch_flow"), (B200, "b200_sxm", "deepgemm")]
)
def test_tensorrt_llms_own_block_fp8_pool_prices_its_decode_gemms_nearer_its_table_than_the_formats_pool(
    hardware: HardwareProfile, system: str, source: str
) -> None:
    # Oracle: TensorRT-LLM's block-fp8 GEMM as aiconfigurator's collector times it, one call at a time at
    # decode sizes (m = 1-16, every weight of at least 2048 x 2048). The step's parameters (fixed cost capped
    # at its launches, no L2 reuse) of TensorRT-LLM's own pool are nearer these calls than the format's
    # pool's, whose shape terms also carry vLLM's eager, host-bound rows.
    table = _gemm_table(system, "trtllm", "1.3.0rc20")
    rows = table[
        (table.gemm_dtype == "fp8_block")
        & (table.kernel_source == source)
        & table.m.isin([1, 4, 16])
        & (table.n >= 2048)
        & (table.k >= 2048)
    ]
    assert len(rows) > 20
    m, n, k = (rows[c].to_numpy(dtype=np.float64) for c in ("m", "n", "k"))
    measured = rows.latency.to_numpy() * 1e-3  # [ms] -> [s]
    keys = kernel_times._Keys(hardware, "trtllm", kernel_times.launch_s(hardware))
    own, pooled = (
        gemm.time_s(
            hardware, kernel_times.step_params(hardware, gemm, key, launch_s=keys.launch_s), m=m, n=n, k=k
        )
        for key in (keys.gemm_key("fp8_block"), "fp8_block")
    )
    assert keys.gemm_key("fp8_block") == "fp8_block:trtllm"
    assert np.median(np.abs(np.log(own / measured))) < np.median(np.abs(np.log(pooled / measured)))


def test_an_mla_decode_absorbs_its_kv_up_projection_whatever_the_weight_format() -> None:
    """A decode step runs MLA absorbed: two per-head bmm in 16 bits (vLLM keeps bf16 copies of W_UK and W_UV
    whatever kv_b_proj's format: "we currently do not have quantized bmm's", MLACommonImpl.
    process_weights_after_loading, vllm/v1/attention/backends/mla/common.py). With weight-only fp8 (fp8
    weights, bf16 activations: no GEMM model) the decode priced the naive expansion of every cached token
    by the roofline instead: for DeepSeek-V3 at 32 sequences of 2,304 tokens on an H200, about 3.6 ms a layer
    (218 ms over 61 layers a step) against 0.02 ms a layer (1.2 ms a step) absorbed. The prefill, not absorbed,
    keeps the roofline's expansion."""
    h200 = costmodel.load_hardware("h200")
    dsv3 = costmodel.load_model("deepseek-v3")
    times = {}
    for weights in ("bf16", "fp8"):
        ops = forward_ops(dsv3, batch_size=32, new_tokens=1, past_tokens=2303, weight_dtype=weights)
        i = [op.name for op in ops].index("kv_up_proj")
        times[weights] = float(
            kernel_times.op_times(ops, h200, weight_dtype=weights, activation_dtype="bf16").time_s(i)
        )
        # the naive expansion's bytes alone (the operators' count), what the decode was priced at before:
        # far above the absorbed bmm
        assert times[weights] < 0.2 * float(ops[i].bytes) / h200.memory_bandwidth_bytes_per_s
    assert times["fp8"] == pytest.approx(times["bf16"], rel=1e-12)
    prefill = forward_ops(dsv3, batch_size=1, new_tokens=2048, weight_dtype="fp8")
    j = [op.name for op in prefill].index("kv_up_proj")
    kernel = kernel_times.op_times(prefill, h200, weight_dtype="fp8", activation_dtype="bf16").time_s(j)
    # the roofline's expansion, as kernel_times prices an operator without a model (its launch aside)
    assert float(kernel) == pytest.approx(float(op_times(prefill, h200).time_s(j)), rel=0.05)


@pytest.mark.parametrize(("weights", "activations"), [("fp8", "bf16"), ("fp8", "fp8"), ("bf16", "bf16")])
def test_an_mla_up_projection_prices_each_entry_of_a_mixed_array_as_it_would_alone(
    weights: str, activations: str
) -> None:
    """Oracle: the same entries priced one call at a time. An array that holds a decode entry (one new token
    after 2,303 cached) beside a prefill entry (2,048 new tokens) must price each as its own call does; with
    weight-only fp8 (no GEMM model for the prefill's expansion) the decode entry used to drop back to the
    naive roofline, about 180x its absorbed time, because its neighbour had no model."""
    h200 = costmodel.load_hardware("h200")
    dsv3 = costmodel.load_model("deepseek-v3")
    entries = [(32, 1, 2303), (1, 2048, 0), (8, 1, 100), (4, 512, 1024)]

    def kv_up(batch: Any, new: Any, past: Any) -> Any:
        ops = forward_ops(dsv3, batch_size=batch, new_tokens=new, past_tokens=past, weight_dtype=weights)
        i = [op.name for op in ops].index("kv_up_proj")
        timed = kernel_times.op_times(ops, h200, weight_dtype=weights, activation_dtype=activations)
        return np.asarray(timed.time_s(i), dtype=np.float64)

    alone = np.array([float(kv_up(b, n, p)) for b, n, p in entries])
    mixed = kv_up(*(np.array(column, dtype=np.float64) for column in zip(*entries, strict=True)))
    np.testing.assert_allclose(mixed, alone, rtol=1e-9)


# H100 public tables (aiconfigurator), balanced routing, 256 experts of 6144 x 2048, top-8, TP 8, EP 1: the
# shape nearest DeepSeek-V3's 7168 x 2048 where per-tensor and block fp8 experts are both timed [ms]
_PER_TENSOR_VS_BLOCK_FP8_MS = {
    # engine: (per-tensor fp8 key, block fp8 key, {tokens: (per-tensor ms, block ms)})
    "vllm": (
        "fp8:vllm:vllm_modeloptfp8moe_flashinfer_cutlass_flashinferexperts",
        "fp8_block:vllm:vllm_fp8moe_triton_tritonexperts",
        {16: (1.370, 0.250), 128: (2.239, 0.524)},
    ),
    "trtllm": (
        "fp8:trtllm:moe_torch_flow_cutlass",
        "fp8_block:trtllm:moe_torch_flow_cutlass",
        {16: (0.248, 0.284), 128: (0.495, 0.545)},
    ),
}


@pytest.mark.parametrize("engine", sorted(_PER_TENSOR_VS_BLOCK_FP8_MS))
def test_per_tensor_fp8_experts_cost_what_each_engines_kernel_measured_against_block_fp8(engine: str) -> None:
    """Per-tensor and block fp8 experts stream the same weight bytes (to 0.02 %), yet vLLM 0.24.0's
    per-tensor fp8 MoE on Hopper (ModelOptFp8MoE -> FLASHINFER_CUTLASS -> FlashInferExperts, the chain its
    table's collection_meta.yaml names; vLLM's fp8 MoE oracle tries FlashInfer CUTLASS before Triton for
    static per-tensor fp8 on SM90, vllm/model_executor/layers/fused_moe/oracle/fp8.py) measured 4-5x its
    block-fp8 Triton kernel at the same shape, while TensorRT-LLM's per-tensor CUTLASS MoE runs as fast as its
    block-fp8 one. The model keeps each engine's measured ratio (within 1.5x of it) and picks vLLM's kernel."""
    fp8_key, block_key, measured = _PER_TENSOR_VS_BLOCK_FP8_MS[engine]
    if engine == "vllm":
        chooser = kernel_times._Keys(H100, engine, kernel_times.launch_s(H100))
        assert kernel_times.moe_keys(chooser, "fp8") == [fp8_key]
    fp8, block = params_for(H100, moe, fp8_key), params_for(H100, moe, block_key)
    # 8 bits a weight; the block format adds one fp32 scale per 128 x 128 block (the per-tensor scale: none)
    assert fp8.weight_bits == 8.0
    assert block.weight_bits == pytest.approx(8.0 + 32.0 / 128**2, rel=1e-12)
    for tokens, (fp8_ms, block_ms) in measured.items():
        shape = dict(num_tokens=tokens, hidden_size=6144, inter_size=2048, topk=8, num_experts=256, tp_size=8)
        ratio = float(moe.time_s(H100, fp8, **shape) / moe.time_s(H100, block, **shape))
        assert abs(np.log(ratio / (fp8_ms / block_ms))) < np.log(1.5)


# The vLLM L40S table times the Triton fused MoE with per-tensor (ModelOptFp8MoE -> TritonExperts) and with
# 128 x 128 block fp8 scales (Fp8MoE -> TritonExperts) at the same shapes, routing and parallelism:
# per-tensor over block 1.008 median, p10 0.893, p90 1.087 (10,341 row pairs)
_TRITON_PER_TENSOR_OVER_BLOCK_P10_P90 = (0.893, 1.087)


def _sglang_keys(hardware: HardwareProfile) -> Any:
    prefix = kernel_times.ENGINE_PREFIX["sglang"]
    return kernel_times._Keys(hardware, prefix, kernel_times.launch_s(hardware), kernel_engine="sglang")


@pytest.mark.parametrize("device", ["h100-sxm", "h100-pcie", "h200"])
def test_sglang_per_tensor_fp8_experts_run_the_triton_fused_moe_on_hopper(device: str) -> None:
    """SGLang runs per-tensor fp8 experts on SM90 with its Triton runner (``Fp8MoEMethod.create_moe_runner``
    with ``--moe-runner-backend auto``; ``ModelOptFp8MoEMethod`` always), never FlashInfer CUTLASS, the kernel
    vLLM runs there. Its step reads the Triton fused MoE's key (the block-fp8 measurement, the only Triton
    fp8 one the Hopper tables hold) for per-tensor and block-fp8 experts alike, and vLLM's per-tensor step
    keeps FlashInfer CUTLASS."""
    hardware = costmodel.load_hardware(device)
    keys = kernel_times.moe_keys(_sglang_keys(hardware), "fp8")
    assert keys == ["fp8_block:vllm:vllm_fp8moe_triton_tritonexperts"]
    assert moe_configs.reads_vllm_configs(keys[0])  # the Triton fused_moe kernel family
    # the same runner for block-fp8 experts: Triton, not the block-fp8 FlashInfer CUTLASS kernel
    assert kernel_times.moe_keys(_sglang_keys(hardware), "fp8_block") == keys
    vllm = kernel_times.moe_keys(kernel_times._Keys(hardware, "vllm", kernel_times.launch_s(hardware)), "fp8")
    assert vllm
    assert all("flashinfer_cutlass" in k for k in vllm)
    # non-gated experts: no non-gated Triton measurement on Hopper, so the general rule
    assert kernel_times.moe_keys(_sglang_keys(hardware), "fp8", gated=False) == kernel_times.moe_keys(
        kernel_times._Keys(hardware, "vllm", kernel_times.launch_s(hardware)), "fp8", gated=False
    )


def test_sglang_per_tensor_fp8_experts_elsewhere_take_the_kernel_sglang_runs_there() -> None:
    """Where a table times the kernel SGLang runs with per-tensor scales, that key: the Triton fused MoE on
    L40S; on B200 FlashInfer's trtllm-gen per-tensor MoE (routing in the kernel), which SGLang's server
    arguments select on SM100 for fp8 DeepSeek-V3 / Qwen3-MoE / Llama-4 models, not FlashInfer CUTLASS."""
    l40s = costmodel.load_hardware("l40s")
    assert kernel_times.moe_keys(_sglang_keys(l40s), "fp8") == [
        "fp8:vllm:vllm_modeloptfp8moe_triton_tritonexperts"
    ]
    assert kernel_times.moe_keys(_sglang_keys(B200), "fp8") == [
        "fp8:vllm:vllm_modeloptfp8moe_flashinfer_trtllm_trtllmfp8expertsmonolithic"
    ]


def test_sglang_per_tensor_fp8_experts_cost_what_the_triton_kernel_measures() -> None:
    """The Triton kernel's time does not depend on the scale granularity (the L40S table: per-tensor over
    block 0.89-1.09, p10-p90), and per-tensor weights stream 32 / 128^2 bits a weight fewer than block ones.
    So at the H100 table's shape nearest DeepSeek-V3 the SGLang per-tensor price is within 1.5x of the
    measured block-fp8 Triton time, and a DeepSeek-V3 SGLang estimate prices per-tensor experts at the
    block-fp8 price (to the measured band) where vLLM's per-tensor kernel costs 3-5x (its table's ratio)."""
    lo, hi = _TRITON_PER_TENSOR_OVER_BLOCK_P10_P90
    (key,) = kernel_times.moe_keys(_sglang_keys(H100), "fp8")
    per_tensor = dataclasses.replace(params_for(H100, moe, key), weight_bits=8.0)
    _, _, measured = _PER_TENSOR_VS_BLOCK_FP8_MS["vllm"]
    for tokens, (_, triton_block_ms) in measured.items():
        shape = dict(num_tokens=tokens, hidden_size=6144, inter_size=2048, topk=8, num_experts=256, tp_size=8)
        model_ms = float(moe.time_s(H100, per_tensor, **shape)) * 1e3
        assert abs(np.log(model_ms / triton_block_ms)) < np.log(1.5)
    # the step streams the per-tensor bytes: never more than the block format's at the same kernel
    step = MoEShape(
        np.array([1.0, 16.0, 128.0, 4096.0]),
        hidden=7168.0,
        inter=2048.0,
        topk=8.0,
        experts=256.0,
        tp=8.0,
        ep=1.0,
    )
    fp8 = kernel_times._moe_s(H100, _sglang_keys(H100), step, "fp8", "fp8")
    block = kernel_times._moe_s(H100, _sglang_keys(H100), step, "fp8_block", "fp8")
    assert fp8 is not None
    assert block is not None
    assert np.all(fp8 <= block)
    assert np.all(fp8 >= lo * block)

    def tpot_s(engine: str, experts: str) -> float:
        eff = H100.efficiency.model_copy(update={"kernel_engine": engine})
        work = Workload(
            batch_size=16,
            prompt_len=1024,
            output_len=128,
            weight_dtype="fp8_block",
            activation_dtype="fp8",
            expert_dtype=experts,
        )
        return float(costmodel.estimate("deepseek-v3", H100, work, Deployment(tp=8), efficiency=eff).tpot_s)

    assert lo <= tpot_s("sglang", "fp8") / tpot_s("sglang", "fp8_block") <= hi
    assert tpot_s("vllm", "fp8") / tpot_s("vllm", "fp8_block") > 1.5


def test_every_kernel_name_sglangs_fp8_rule_narrows_to_names_a_stored_kernel() -> None:
    """Each of SGLang's fp8 MoE kernel names matches some stored key of vLLM's tables (no dead name): the
    Triton fused MoE (``..._triton_tritonexperts``) on Hopper, FlashInfer's trtllm-gen MoE on B200."""
    from costmodel.kernels import moe

    stored = [
        k
        for device in ("h100-sxm", "h200", "b200", "l40s")
        for k in kernel_times._Keys(
            costmodel.load_hardware(device), "vllm", kernel_times.launch_s(costmodel.load_hardware(device))
        ).stored(moe)
    ]
    for name in kernel_times.SGLANG_FP8_MOE_KERNELS:
        assert any(
            name in k.split(":")[-1] for k in stored if k.startswith(("fp8:vllm:", "fp8_block:vllm:"))
        ), name
    # only fp8 and block-fp8 experts are narrowed (ENGINE_MOE_KERNELS' scope, as its docstring says)
    assert {fmt for _, fmt in kernel_times.ENGINE_MOE_KERNELS} == {"fp8", "fp8_block"}


def _kv_up_decode_s(hardware: HardwareProfile, engine: str, weights: str, activations: str) -> float:
    """DeepSeek-V3's decode kv_up (64 sequences, tp 8) timed by the kernel models as ``engine`` runs it."""
    ops = forward_ops(costmodel.load_model("deepseek-v3"), batch_size=64, new_tokens=1, past_tokens=2047,
                      tp=8, weight_dtype=weights, activation_dtype=activations)  # fmt: skip
    eff = hardware.efficiency.model_copy(update={"kernel_engine": engine, "time_model": "kernels"})
    i = [op.name for op in ops].index("kv_up_proj")
    times = kernel_times.op_times(
        ops, hardware, weight_dtype=weights, activation_dtype=activations, efficiency=eff
    )
    return float(times.time_s(i))


def _bmm_s(hardware: HardwareProfile, key: str, op: int, weight_bytes: float, **replace: float) -> float:
    """One absorbed bmm of DeepSeek-V3 (64 tokens, 16 heads) with a stored key's step parameters."""
    from costmodel.kernels import mla

    launch = kernel_times.launch_s(hardware)
    params = dataclasses.replace(kernel_times.step_params(hardware, mla, key, launch_s=launch), **replace)
    return float(mla.time_s(hardware, params, op=op, batch_size=64.0, seq_len=1.0, n_heads=16.0,
                            weight_bytes=weight_bytes))  # fmt: skip


def test_tensorrt_llms_absorbed_bmm_follow_its_block_fp8_path_on_each_architecture() -> None:
    """TensorRT-LLM's ``fp8_block_scaling_bmm_out`` (tensorrt_llm/_torch/modules/attention.py): on SM 90 the
    input's 1 x 128 quantization, the fp8 block-scaled bmm and the output copy, which the public tables time
    as one call (``trtllm_fp8_block_scaling_bmm_out`` rows, H100, fitted at fp8 weight bytes); on Blackwell
    ``torch.bmm`` in bf16 of the bf16 dequantized copies, the same kernel a bf16 model runs (the tables' B200
    ``trtllm_bmm_out_dequant_bf16`` rows time the bf16 bmm's within 0.2 % at the median row)."""
    from costmodel.kernels import mla

    h100, b200 = H100, costmodel.load_hardware("b200")
    fp8 = _kv_up_decode_s(h100, "trtllm", "fp8_block", "fp8")
    measured = sum(
        _bmm_s(h100, f"trtllm.trtllm_fp8_block_scaling_bmm_out:{regime}:bf16/fp8", op, 1.0)
        for regime, op in (("bmm_pre", mla.OP_BMM_PRE), ("bmm_post", mla.OP_BMM_POST))
    )
    assert fp8 == pytest.approx(measured, rel=1e-9)
    assert _kv_up_decode_s(b200, "trtllm", "fp8_block", "fp8") == pytest.approx(
        _kv_up_decode_s(b200, "trtllm", "bf16", "bf16"), rel=1e-12
    )


def test_tensorrt_llms_measured_fp8_bmm_call_keeps_the_fixed_cost_of_its_three_kernels() -> None:
    """``fp8_block_scaling_bmm_out`` on SM 90 is three kernels in one timed call (the input's 1 x 128
    quantization, the fp8 block-scaled bmm, ``out.copy_``; tensorrt_llm/_torch/modules/attention.py): a
    CUDA-graph step keeps its fitted fixed cost up to three launches, a one-kernel bf16 bmm's up to two (the
    MLA family's cap). Oracle: min(fitted, launches x launch_s) from the stored parameters."""
    from costmodel.kernels import mla

    launch = kernel_times.launch_s(H100)
    for key, launches in (
        ("trtllm.trtllm_fp8_block_scaling_bmm_out:bmm_pre:bf16/fp8", 3),
        ("trtllm.trtllm_fp8_block_scaling_bmm_out:bmm_post:bf16/fp8", 3),
        ("trtllm.trtllm_bmm_out:bmm_pre:bf16", 2),
        ("vllm.vllm_torch_bmm:bmm_post:bf16", 2),
    ):
        fitted = params_for(H100, mla, key).launch_s
        step = kernel_times.step_params(H100, mla, key, launch_s=launch)
        assert step.launch_s == min(fitted, launches * launch), key


def test_sglangs_per_tensor_fp8_bmm_reads_one_byte_weights_after_quantizing_its_inputs() -> None:
    """SGLang with a per-tensor fp8 kv_b_proj on CUDA (python/sglang/srt/models/deepseek_v2.py,
    ``forward_absorb_prepare`` / ``forward_absorb_core``): ``per_tensor_quant_mla_fp8`` (two Triton kernels:
    the absmax pass and the quantize pass, 2 + 2 + 1 bytes an input element) then ``bmm_fp8`` on the fp8
    ``w_kc`` / ``w_vc``. The tables time no such kernel, so each bmm is its bf16 bmm's parameters (vLLM's
    torch bmm, which SGLang's keys read) at 1 byte a weight and the fp8 peak, plus the quantization streamed
    at the same achieved bandwidth and one launch per kernel. Oracle: that sum by hand over DeepSeek-V3's
    64 tokens x 16 heads x (128 into the first bmm, 512 into the second)."""
    from costmodel.kernels import mla

    b200 = costmodel.load_hardware("b200")
    launch = kernel_times.launch_s(b200)
    total = 0.0
    for regime, op, inputs in (("bmm_pre", mla.OP_BMM_PRE, 128), ("bmm_post", mla.OP_BMM_POST, 512)):
        key = f"vllm.vllm_torch_bmm:{regime}:bf16"
        params = kernel_times.step_params(b200, mla, key, launch_s=launch)
        fp8_peak = b200.peak_flop_per_s("fp8")
        quantize = 64 * 16 * inputs * 5.0 / (params.bandwidth_bytes_per_s * params.bandwidth_fraction)
        total += _bmm_s(b200, key, op, 1.0, gemm_peak_flop_per_s=fp8_peak) + quantize + 2 * launch
    assert _kv_up_decode_s(b200, "sglang", "fp8", "fp8") == pytest.approx(total, rel=1e-9)
    # a block-fp8 kv_b_proj is dequantized to bf16 copies on CUDA (block_quant_dequant): the bf16 bmm
    assert _kv_up_decode_s(b200, "sglang", "fp8_block", "fp8") == pytest.approx(
        _kv_up_decode_s(b200, "sglang", "bf16", "bf16"), rel=1e-12
    )


def _marlin_composed_s(shape: MoEShape, *, padded: bool = True) -> np.ndarray:
    """vLLM's Marlin MXFP4 experts on H100 composed by hand from the two keys' breakdowns: the Marlin key's
    compute, dequantization and per-token / per-pair terms at the padded shape (hidden to 256, each rank's
    intermediate to 128: ``Mxfp4MoEMethod.create_weights``) with Marlin's overlap exponent, the Triton MXFP4
    kernel's memory and per-call terms at the layer's own shape."""
    from scipy import stats

    from costmodel.kernels import moe_configs

    launch = kernel_times.launch_s(H100)
    (own,) = kernel_times.moe_keys(kernel_times._Keys(H100, "vllm", launch), "w4a16_mxfp4")
    (mar,) = kernel_times.moe_keys(kernel_times._Keys(H100, "vllm", launch, "MARLIN"), "w4a16_mxfp4")
    T = np.asarray(shape.tokens, dtype=np.float64)
    hidden = np.ceil(shape.hidden / 256) * 256 if padded else shape.hidden
    inter = np.ceil(shape.inter / shape.tp / 128) * 128 * shape.tp if padded else shape.inter

    def terms(key: str, h: Any, i: Any) -> tuple[Any, Any]:
        p = kernel_times._Keys(H100, "vllm", launch).params(moe, key)
        b = moe.breakdown(
            H100, p, num_tokens=T, hidden_size=h, inter_size=i, topk=shape.topk, num_experts=shape.experts,
            tp_size=shape.tp, ep_size=shape.ep, routing=kernel_times.STEP_ROUTING,
            tuned_config=moe_configs.tuned_config(H100, key, shape.experts / shape.ep, i / shape.tp),
        )  # fmt: skip
        pairs = p.per_token_s * T + p.per_routed_pair_s * T * shape.topk + p.per_pair_s * b.load.pairs
        return b, pairs

    (t, t_pairs), (m, m_pairs) = terms(own, shape.hidden, shape.inter), terms(mar, hidden, inter)
    # each expert's Binomial(T, k / E) rows padded to whole blocks of the first of 8, 16, 32, 48 rows that
    # the mean fills less than 0.9 times, else 64; over the table's padding: 4096-16384 tokens at 896
    # experts and top-16 hold 73-293 rows, padded to 128, 128, 192, 256, 320
    rows = np.arange(0.0, 2000.0)
    padding = np.ones_like(T)
    for n, tokens in enumerate(T):
        pmf = stats.binom.pmf(rows, int(tokens), shape.topk / shape.experts)
        mean = tokens * shape.topk / shape.experts
        block = next((b for b in (8, 16, 32, 48) if mean / b < 0.9), 64)
        padding[n] = max(float((np.ceil(rows / block) * block * pmf).sum()) / mean, 1.0)
    table = np.array([4096.0, 6144.0, 8192.0, 12288.0, 16384.0]) * 16 / 896
    compute_s = m.compute_s * padding / np.exp(np.mean(np.log(np.array([128, 128, 192, 256, 320]) / table)))
    p = m.overlap_exponent
    big = np.maximum(t.memory_s, compute_s)
    both = big * ((t.memory_s / big) ** p + (compute_s / big) ** p) ** (1.0 / p)
    return np.asarray(t.fixed_s - t_pairs + m_pairs + both + m.dequant_s)


def test_vllms_marlin_experts_compose_marlins_compute_and_pair_terms_with_the_formats_memory() -> None:
    """``MARLIN`` (vLLM's Marlin MXFP4 experts, timed by the tables at other shapes only): each term from
    the key whose fitted value carries across shapes, composed independently here; the padding counts."""
    launch = kernel_times.launch_s(H100)
    marlin = kernel_times.moe_keys(kernel_times._Keys(H100, "vllm", launch, "MARLIN"), "w4a16_mxfp4")
    assert marlin
    assert all("marlin" in k.split(":")[-1] for k in marlin)
    plain = kernel_times.moe_keys(kernel_times._Keys(H100, "vllm", launch), "w4a16_mxfp4")
    assert not any("marlin" in k for k in plain)
    tokens = np.array([1.0, 4.0, 8192.0, 16384.0])
    for tp in (1.0, 2.0, 4.0, 8.0):
        shape = MoEShape(tokens, **GPT_OSS_MOE, tp=tp, ep=1.0)
        layer = kernel_times._moe_s(
            H100, kernel_times._Keys(H100, "vllm", launch, "MARLIN"), shape, "mxfp4", "bf16"
        )
        np.testing.assert_allclose(layer, _marlin_composed_s(shape), rtol=1e-9)
    # int4 weight-only experts under MARLIN: the tables' int4 Marlin kernel itself at the layer's shape
    int4 = MoEShape(tokens, hidden=7168.0, inter=2048.0, topk=8.0, experts=384.0, tp=2.0, ep=1.0)
    (int4_marlin,) = kernel_times.moe_keys(kernel_times._Keys(H100, "vllm", launch, "MARLIN"), "int4_wo")
    assert "marlin" in int4_marlin
    from costmodel.kernels import moe_configs

    np.testing.assert_allclose(
        kernel_times._moe_s(
            H100, kernel_times._Keys(H100, "vllm", launch, "MARLIN"), int4, "int4_sym_g32", "bf16"
        ),
        moe.time_s(
            H100,
            kernel_times._Keys(H100, "vllm", launch).params(moe, int4_marlin),
            num_tokens=tokens,
            hidden_size=7168.0,
            inter_size=2048.0,
            topk=8.0,
            num_experts=384.0,
            tp_size=2.0,
            ep_size=1.0,
            routing=kernel_times.STEP_ROUTING,
            tuned_config=moe_configs.tuned_config(H100, int4_marlin, 384.0, 1024.0),
        ),
        rtol=1e-12,
    )
    # tp 8: each rank's 360 intermediate columns run as 384 (and 2880 hidden as 3072)
    shape = MoEShape(tokens, **GPT_OSS_MOE, tp=8.0, ep=1.0)
    assert np.all(_marlin_composed_s(shape) > _marlin_composed_s(shape, padded=False))


def test_vllms_marlin_experts_reproduce_the_marlin_tables_rows_at_their_own_shape() -> None:
    """Oracle: vLLM's H100 table of its Marlin MXFP4 experts (compressed-tensors, 896 experts of 3584 x
    3072, top-16, balanced routing). At >= 4k tokens and tp 1-8 the composed term is within 15 % of the
    measured rows (median per tp): the carried terms (compute, dequantization, per-pair costs) are what
    time a long prompt."""
    import pandas as pd
    from conftest import PUBLIC_GPU

    table = pd.read_parquet(
        PUBLIC_GPU / "kernels" / "h100_sxm" / "moe" / "vllm" / "0.24.0" / "moe_perf.parquet"
    )
    rows = table[
        (table.moe_dtype == "w4a16_mxfp4")
        & table.kernel_source.str.contains("marlin")
        & (table.moe_ep_size == 1)
        & (table.distribution == "balanced")
        & (table.num_tokens >= 4096)
    ]
    shape_of = rows[["hidden_size", "inter_size", "topk", "num_experts"]].itertuples(index=False)
    assert set(shape_of) == {tuple(kernel_times.MARLIN_TABLE_SHAPE.values())}
    assert sorted(set(rows.num_tokens)) == list(kernel_times.MARLIN_TABLE_COMPUTE_TOKENS)
    launch = kernel_times.launch_s(H100)
    for tp in (1, 2, 4, 8):
        at = rows[rows.moe_tp_size == tp]
        assert len(at) >= 4
        shape = MoEShape(
            at.num_tokens.to_numpy(np.float64), hidden=3584.0, inter=3072.0, topk=16.0, experts=896.0,
            tp=float(tp), ep=1.0,
        )  # fmt: skip
        layer = kernel_times._moe_s(
            H100, kernel_times._Keys(H100, "vllm", launch, "MARLIN"), shape, "mxfp4", "bf16"
        )
        ratio = layer / (at.latency.to_numpy() * 1e-3)
        assert np.all(np.abs(ratio - 1.0) < 0.15), (tp, ratio)


def test_marlins_experts_pad_each_experts_rows_to_whole_blocks() -> None:
    """vLLM's ``fused_marlin_moe`` pads each expert's rows to blocks of 8-64 rows, chosen from the mean rows
    per expert: the table's 73 and 110 rows (4096 and 6144 tokens, 896 experts, top-16) are both two
    64-row blocks, 146 three; 18.3 rows take one 32-row block."""
    ratio = kernel_times.marlin_padded_rows(
        np.array([4096.0, 6144.0, 8192.0, 1024.0]), 16.0, 896.0, "balanced"
    )
    rows = np.array([4096.0, 6144.0, 8192.0, 1024.0]) * 16 / 896
    np.testing.assert_allclose(ratio * rows, [128.0, 128.0, 192.0, 32.0], rtol=1e-12)
    # routed at random, an expert's rows scatter about the mean and its last block is partly empty even
    # where the mean is a whole number of blocks (gpt-oss-120b: 8192 tokens x 4 / 128 experts = 256 rows)
    uniform = kernel_times.marlin_padded_rows(np.array([8192.0]), 4.0, 128.0, "uniform")
    assert 1.0 < float(uniform[0]) < 320.0 / 256.0
    table_rows = np.array(kernel_times.MARLIN_TABLE_COMPUTE_TOKENS) * 16 / 896
    padded = np.array([128.0, 128.0, 192.0, 256.0, 320.0])
    assert float(np.exp(np.mean(np.log(padded / table_rows)))) == pytest.approx(
        kernel_times.MARLIN_TABLE_PADDING, rel=1e-12
    )
