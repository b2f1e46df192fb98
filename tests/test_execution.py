"""Execution modes (costmodel.execution): eager kernel counts against an independent count of the reference
modules' kernels, and the physics of the per-kernel dispatch and per-pass costs."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pytest

import costmodel
from costmodel import kernel_times
from costmodel.errors import CostmodelError
from costmodel.ops import forward_ops
from costmodel.roofline import op_times
from costmodel.specs import ModelProfile

CPU = costmodel.load_hardware("cpu")
H100 = costmodel.load_hardware("h100-sxm")


def _small() -> ModelProfile:
    from validation.suite import SMALL

    return SMALL


def _eager(hardware: Any, dispatch_s: float = 3e-6, **update: Any) -> Any:
    return hardware.efficiency.model_copy(
        update={"execution_mode": "eager", "dispatch_s": dispatch_s, **update}
    )


def _launches(ops: Any) -> float:
    """Kernels of all the passes ``ops`` describe (arrays over the workload: one pass per element)."""
    return float(
        sum(float(np.sum(np.broadcast_to(op.launches, np.shape(op.flop)))) * op.layers for op in ops)
    )


# ------------------------------------------------------------------------------------------------------
# Kernel counts against a TorchDispatchMode count of the reference modules (the independent oracle)
# ------------------------------------------------------------------------------------------------------


def _dispatched_kernels(fn: Any) -> int:
    """Aten operators one call runs that do work on tensor data: every operator the dispatcher sees, less
    views (``OpOverload.is_view``, ``_unsafe_view``) and bare allocations (``empty*``)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.kernels: collections.Counter[str] = collections.Counter()

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            name = func.overloadpacket.__name__
            if not (func.is_view or name == "_unsafe_view" or name.startswith("empty")):
                self.kernels[name] += 1
            return func(*args, **(kwargs or {}))

    with Count() as count:
        fn()
    return sum(count.kernels.values())


POINTS = [
    ("layer", {"model": "llama-small", "B": 1, "new": 64, "past": 0}),  # prefill, causal SDPA
    ("layer", {"model": "llama-small", "B": 4, "new": 1, "past": 64}),  # decode against a cache
    ("model_prefill", {"model": "llama-small", "B": 1, "new": 16}),
    ("model_decode", {"model": "llama-small", "B": 2, "new": 1, "past": 32}),
    ("decode_loop", {"model": "llama-small", "B": 1, "new": 1, "past": 8, "steps": 3}),
    ("moe", {"model": "moe-small", "T": 64}),  # routed experts looped over in Python
    ("model_prefill", {"model": "moe-small", "B": 1, "new": 64}),
    ("layer", {"model": "llama-tiny", "B": 1, "new": 1}),  # the dispatch calibration point
]


@pytest.mark.parametrize(("kernel", "params"), POINTS, ids=[f"{k}-{p}" for k, p in POINTS])
def test_eager_kernel_counts_match_the_reference_modules(kernel: str, params: dict[str, Any]) -> None:
    pytest.importorskip("torch")
    from validation.suite import Point, _model_ops, build

    point = Point(kernel, kernel, params | {"dtype": "fp32"})
    _, ops = _model_ops(point, attention="causal")
    # 64 tokens over 8 experts, top-2: every expert is touched (expectation 8 x (1 - 0.75^64) = 8.0)
    assert _launches(ops) == pytest.approx(_dispatched_kernels(build(point, "cpu")), abs=1e-4)


@pytest.mark.parametrize("variant", ["layernorm+learned+gelu", "rmsnorm+relu2+bias"])
def test_eager_counts_follow_the_model_variant(variant: str) -> None:
    """Norm, position, activation and bias variants of the reference decoder, counted on a whole pass."""
    torch = pytest.importorskip("torch")
    from validation.kernels.decoder import Decoder

    update: dict[str, Any] = (
        {"norm": "layernorm", "position": "learned", "mlp": "standard", "activation": "gelu"}
        if variant.startswith("layernorm")
        else {"activation": "relu2", "qkv_bias": True, "mlp_bias": True}
    )
    model = _small().model_copy(update={"n_layers": 2, "d_model": 64, "d_ff": 128, **update})
    decoder = Decoder(model).eval()
    tokens = torch.randint(0, model.vocab_size, (1, 8))
    caches = decoder.empty_cache(1, 0, 8)

    def run() -> Any:
        with torch.no_grad():
            out, _ = decoder(tokens, caches)
            return out[:, -1:].argmax(-1)  # the greedy pick the head's count includes

    ops = forward_ops(model, batch_size=1, new_tokens=8, weight_dtype="fp32", activation_dtype="fp32")
    assert _launches(ops) == _dispatched_kernels(run)


def test_norm_and_mlp_counts_of_the_kernel_points() -> None:
    pytest.importorskip("torch")
    from validation.suite import Point, _kernel_ops, build

    for point in (
        Point("rmsnorm", "norm", {"T": 8, "d": 64, "dtype": "fp32"}),
        Point("layernorm", "norm", {"T": 8, "d": 64, "dtype": "fp32"}),
        Point("mlp", "mlp", {"T": 8, "d": 64, "d_ff": 128, "gated": True, "dtype": "fp32"}),
        Point("mlp", "mlp", {"T": 8, "d": 64, "d_ff": 128, "gated": False, "dtype": "fp32"}),
    ):
        assert _launches(_kernel_ops(point)) == _dispatched_kernels(build(point, "cpu")), point


# ------------------------------------------------------------------------------------------------------
# Physics
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("batch", "new", "past"), [(1, 1, 512), (8, 1, 2048), (1, 256, 0)])
def test_eager_adds_launches_times_dispatch_on_a_cpu(batch: int, new: int, past: int) -> None:
    """On a CPU the core that dispatches a kernel also runs it: a pass takes its graphs-mode time plus every
    kernel's dispatch, exactly."""
    model = costmodel.load_model("llama-3-8b")
    ops = forward_ops(model, batch_size=batch, new_tokens=new, past_tokens=past)
    graphs = float(op_times(ops, CPU).total_s)
    for dispatch in (1e-6, 5e-6, 20e-6):
        eager = float(op_times(ops, CPU, efficiency=_eager(CPU, dispatch)).total_s)
        assert eager == pytest.approx(graphs + _launches(ops) * dispatch, rel=1e-12)


def test_graphs_mode_has_no_per_kernel_cost() -> None:
    model = costmodel.load_model("llama-3-8b")
    ops = forward_ops(model, batch_size=4, new_tokens=1, past_tokens=1024)
    base = CPU.efficiency.model_copy(update={"execution_mode": "graphs"})
    times = [
        float(op_times(ops, CPU, efficiency=base.model_copy(update={"dispatch_s": d})).total_s)
        for d in (0.0, 1e-5, 1e-3)
    ]
    assert times[0] == times[1] == times[2]
    assert CPU.efficiency.execution_mode == H100.efficiency.execution_mode == "graphs"  # the default


def test_gpu_eager_is_the_longer_of_device_and_dispatch() -> None:
    """A GPU's host enqueues kernels asynchronously: an operator takes the longer of its device time and its
    dispatch, so eager is never faster than graphs, never slower than graphs + dispatch, and a pass of
    tiny kernels (decode at batch 1 of a small model) becomes host-bound."""
    model = _small()
    h100 = H100.model_copy(update={"kernel_calibration": None})  # the roofline path
    ops = forward_ops(model, batch_size=1, new_tokens=1, past_tokens=128)
    graphs = op_times(ops, h100)
    eager = op_times(ops, h100, efficiency=_eager(h100, 10e-6))
    for i, op in enumerate(ops):
        device = float(np.max(graphs.time_s(i)))
        host = float(np.max(op.launches)) * 10e-6
        assert float(np.max(eager.time_s(i))) == pytest.approx(max(device, host + graphs.overhead_s))
    total_g, total_e = float(graphs.total_s), float(eager.total_s)
    assert total_g <= total_e <= total_g + _launches(ops) * 10e-6 + 1e-15
    assert total_e == pytest.approx(_launches(ops) * 10e-6 + graphs.overhead_s * sum(op.layers for op in ops))


def test_eager_on_the_kernel_models_adds_the_host() -> None:
    """The kernel-model path (a calibrated GPU) applies the same host terms, after its kernel times."""
    model = costmodel.load_model("llama-3-8b")
    ops = forward_ops(model, batch_size=1, new_tokens=1, past_tokens=1024)
    graphs = kernel_times.op_times(ops, H100)
    eager = kernel_times.op_times(ops, H100, efficiency=_eager(H100, 0.0))
    assert float(eager.total_s) == pytest.approx(float(graphs.total_s))
    slow = kernel_times.op_times(ops, H100, efficiency=_eager(H100, 1e-3))  # host-bound everywhere
    assert float(slow.total_s) >= _launches(ops) * 1e-3
    cpu_like = H100.model_copy(update={"device_kind": "cpu"})
    added = kernel_times.op_times(ops, cpu_like, efficiency=_eager(cpu_like, 1e-5))
    base = kernel_times.op_times(ops, cpu_like)
    assert float(added.total_s) == pytest.approx(float(base.total_s) + _launches(ops) * 1e-5)


def test_step_overhead_is_paid_once_per_pass() -> None:
    model = costmodel.load_model("llama-3-8b")
    pasts = np.arange(16) * 1 + 128  # a decode loop of 16 steps
    ops = forward_ops(model, batch_size=1, new_tokens=1, past_tokens=pasts)
    for hardware, timer in ((CPU, op_times), (H100, kernel_times.op_times)):
        base = np.asarray(timer(ops, hardware).total_s)
        eff = hardware.efficiency.model_copy(update={"step_overhead_s": 1e-3})
        stepped = np.asarray(timer(ops, hardware, efficiency=eff).total_s)
        assert stepped == pytest.approx(base + 1e-3)  # per step of the loop


def test_more_tokens_touch_more_experts_and_launch_more_kernels() -> None:
    model = costmodel.load_model("mixtral-8x7b")
    counts = [_launches(forward_ops(model, batch_size=1, new_tokens=t, past_tokens=0)) for t in (1, 2, 4, 64)]
    assert counts == sorted(counts)
    assert counts[0] < counts[-1]


def test_a_bad_execution_mode_is_costmodels_error(tmp_path: Any) -> None:
    text = (costmodel.registry._hardware_dir() / "cpu.yaml").read_text()
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("efficiency:\n", "efficiency:\n  execution_mode: compiled\n"))
    with pytest.raises(CostmodelError, match="execution_mode"):
        costmodel.load_hardware(str(path))


@pytest.mark.parametrize("hardware", [CPU, H100], ids=["cpu-roofline", "h100-kernels"])
def test_estimate_decode_steps_pay_the_eager_dispatch(hardware: Any) -> None:
    """A decode step of estimate() pays every kernel's dispatch: on a CPU exactly the graphs-mode step plus
    launches x dispatch_s (the closed-form sum over steps stays exact); a GPU host-bound at a large
    dispatch_s takes at least the dispatch of its kernels per step."""
    from costmodel.specs import Workload

    model = costmodel.load_model("llama-3-8b")
    work = Workload(batch_size=1, prompt_len=512, output_len=65)
    ops = forward_ops(model, batch_size=1, new_tokens=1, past_tokens=600, logits="last")
    graphs = costmodel.estimate(model, hardware, work)
    if hardware.device_kind == "cpu":
        eager = costmodel.estimate(model, hardware, work, efficiency=_eager(hardware, 7e-6))
        assert float(eager.tpot_s) == pytest.approx(float(graphs.tpot_s) + _launches(ops) * 7e-6, rel=1e-9)
    else:
        eager = costmodel.estimate(model, hardware, work, efficiency=_eager(hardware, 1e-3))
        assert float(eager.tpot_s) >= _launches(ops) * 1e-3 > float(graphs.tpot_s)


# TensorRT-LLM's DeepSeek-V3 decode layer without CUDA graphs (attention DP, fp8 block scales, Hopper,
# WIDEEP MoE with DeepEP's normal all-to-all), written out call by call from its source
# (https://github.com/NVIDIA/TensorRT-LLM, tensorrt_llm/_torch): the oracle of the per-operator counts.
_MLA_GENERATION_CALLS = (  # modules/attention.py, MLA.forward_impl + forward_absorption_generation
    "kv_a_proj_with_mqa: fp8 1x128 quantize",
    "kv_a_proj_with_mqa: fp8 block-scaled GEMM",
    "q_a_layernorm",
    "kv_a_layernorm",
    "q_b_proj: quantize",
    "q_b_proj: GEMM",
    "torch.concat([compressed_kv, k_pe])",
    "k_b_proj_trans: fp8_batched_quantize_1x128_permute102",
    "k_b_proj_trans: fp8_block_scaling_bmm_out",
    "k_b_proj_trans: out.copy_",
    "mla_rope_generation",
    "attention op (_attn_forward_gen)",
    "v_b_proj: fp8_batched_quantize_1x128_permute102",
    "v_b_proj: fp8_block_scaling_bmm_out",
    "v_b_proj: out.copy_",
    "o_proj: quantize",
    "o_proj: GEMM",
)
_MOE_CALLS = (  # models/modeling_deepseekv3.py Deepseekv3MoE.forward; fused_moe_wide_ep.py forward_chunk
    "dsv3_router_gemm_op",
    "get_scores (torch.compile'd)",
    "noaux_tc_op",
    "topk_indices.to(torch.int32)",
    "token_selected_slots.to(torch.int64)",
    "DeepEP get_dispatch_layout",
    "DeepEP dispatch",
    "recv_topk_idx.to(torch.int32)",
    "token_selected_slots == -1",
    "token_selected_slots += offset",
    "token_selected_slots[mask] = num_slots",
    "torch.ops.trtllm.fused_moe",
    "DeepEP combine",
    "shared gate_up_proj: quantize",
    "shared gate_up_proj: GEMM",
    "shared SwiGLU",
    "shared down_proj: quantize",
    "shared down_proj: GEMM",
    "shared_output + routed_output",
)
_DENSE_MLP_CALLS = (
    "gate_up_proj: quantize",
    "gate_up_proj: GEMM",
    "SwiGLU",
    "down_proj: quantize",
    "down_proj: GEMM",
)
_LAYER_NORMS = ("post_attention_layernorm", "next_layer_layernorm")  # fused residual add + RMSNorm each


def _trtllm_decode_ops(model: Any, **kwargs: Any) -> Any:
    return forward_ops(
        model, batch_size=32, new_tokens=1, past_tokens=1024, weight_dtype="fp8", activation_dtype="fp8",
        kv_dtype="fp8", ep=16, attention_dp=16, launch_counts="trtllm", **kwargs,
    )  # fmt: skip


def test_trtllm_host_calls_follow_the_deepseek_v3_source() -> None:
    """Per layer, the host calls of the operators add up to the calls written out from TensorRT-LLM's
    source: 38 per MoE layer, 24 per dense one, and the pass's embedding and head (1 + 3)."""
    model = costmodel.load_model("deepseek-v3")
    assert model.moe is not None
    ops = _trtllm_decode_ops(model)
    per_layer: dict[str, float] = collections.defaultdict(float)
    for op in ops:
        per_layer[op.name] += float(op.launches) * op.layers
    moe_layers = model.n_layers - model.moe.first_dense_layers
    moe_call_count = len(_LAYER_NORMS) + len(_MLA_GENERATION_CALLS) + len(_MOE_CALLS)
    dense_call_count = len(_LAYER_NORMS) + len(_MLA_GENERATION_CALLS) + len(_DENSE_MLP_CALLS)
    assert (moe_call_count, dense_call_count) == (38, 24)
    assert _launches(ops) == moe_layers * moe_call_count + model.moe.first_dense_layers * dense_call_count + 4
    attention = sum(per_layer[n] for n in ("qkv_a_proj", "qkv_proj", "kv_up_proj", "attention", "o_proj"))
    assert attention == model.n_layers * len(_MLA_GENERATION_CALLS)
    routed = sum(per_layer[n] for n in ("router", "experts_up", "experts_act", "experts_down"))
    shared = sum(per_layer[n] for n in ("shared_up", "shared_act", "shared_down"))
    assert routed + shared == moe_layers * len(_MOE_CALLS)
    assert per_layer["norm"] == model.n_layers * len(_LAYER_NORMS)
    # the collectives carry no host time of their own: DeepEP's calls are on the router and experts_down
    assert all(float(op.launches) == 0.0 for op in ops if op.kind in ("allgather", "reducescatter"))


def test_trtllm_counts_do_not_depend_on_the_batch() -> None:
    """Fused operators: the host calls of a pass are the same at 1 and 256 sequences per rank (the reference
    decoder's per-expert loop launches more as more experts are touched)."""
    model = costmodel.load_model("deepseek-v3")
    small, large = (
        forward_ops(model, batch_size=b, new_tokens=1, past_tokens=1024, ep=16, attention_dp=16,
                    launch_counts="trtllm")
        for b in (1, 256)
    )  # fmt: skip
    assert _launches(small) == _launches(large)


def test_trtllm_counts_refuse_another_architecture() -> None:
    with pytest.raises(CostmodelError, match="DeepSeek-V3"):
        forward_ops(costmodel.load_model("llama-3-8b"), batch_size=1, new_tokens=1, launch_counts="trtllm")


def test_graphed_trtllm_passes_are_untouched_and_eager_ones_pay_the_calls() -> None:
    """A TensorRT-LLM engine in the default 'graphs' mode: the same step as before, whatever the counts; in
    'eager' mode each operator takes the longer of its device time and its calls x dispatch_s, so the step
    grows by at most the pass's calls x dispatch_s."""
    from costmodel.specs import Deployment, Workload

    model = costmodel.load_model("deepseek-v3")
    work = Workload(batch_size=32, prompt_len=1024, output_len=64, weight_dtype="fp8",
                    activation_dtype="fp8", kv_dtype="fp8")  # fmt: skip
    dep = Deployment(tp=1, attention_dp=16, moe_ep=16)
    trt = H100.efficiency.model_copy(update={"kernel_engine": "trtllm"})
    graphs = costmodel.estimate(model, H100, work, dep, efficiency=trt)
    kernels_only = trt.model_copy(update={"execution_mode": "eager", "dispatch_s": 0.0})
    assert float(costmodel.estimate(model, H100, work, dep, efficiency=kernels_only).tpot_s) == pytest.approx(
        float(graphs.tpot_s)
    )
    eager = costmodel.estimate(
        model, H100, work, dep, efficiency=trt.model_copy(update={"execution_mode": "eager"})
    )
    calls = _launches(_trtllm_decode_ops(model, logits="last"))
    assert (
        float(graphs.tpot_s) < float(eager.tpot_s) <= float(graphs.tpot_s) + calls * trt.dispatch_s * 1.0001
    )


def test_an_eager_trtllm_engine_of_another_model_keeps_the_reference_count() -> None:
    """TensorRT-LLM's host calls are counted for DeepSeek-V3's layer only: an eager TensorRT-LLM estimate of
    a dense model takes the reference decoder's launches, as before those counts existed, not an error."""
    from costmodel.execution import has_trtllm_launches

    llama = costmodel.load_model("llama-3-8b")
    assert not has_trtllm_launches(llama)
    assert has_trtllm_launches(costmodel.load_model("deepseek-v3"))
    sparse = costmodel.load_model("deepseek-v3.2")  # MLA with an indexer, whose calls are not counted
    assert not has_trtllm_launches(sparse)
    hardware = costmodel.load_hardware("h100-sxm")
    efficiency = hardware.efficiency.model_copy(update={"kernel_engine": "trtllm", "execution_mode": "eager"})
    reference = hardware.efficiency.model_copy(update={"execution_mode": "eager"})
    from costmodel.specs import Deployment, Workload

    work = Workload(batch_size=4, prompt_len=256, output_len=16)
    trt = costmodel.estimate(llama, hardware, work, efficiency=efficiency)
    ref = costmodel.estimate(llama, hardware, work, efficiency=reference)
    # the same launches (the reference decoder's); only the kernel keys differ between the two engines
    assert float(trt.tpot_s) > 0
    assert float(ref.tpot_s) > 0
    eight = costmodel.load_hardware("h200")
    eager = eight.efficiency.model_copy(update={"kernel_engine": "trtllm", "execution_mode": "eager"})
    report = costmodel.estimate(sparse, eight, work, Deployment(tp=8), efficiency=eager)
    assert float(report.tpot_s) > 0
