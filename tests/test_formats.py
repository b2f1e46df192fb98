"""Number formats in the step time: the bytes a format stores, the peak its matmuls run at, and where a
kernel pays dequantization (costmodel.dtypes, costmodel.ops, costmodel.roofline, costmodel.kernel_times).

Oracles: the storage layouts the formats' specifications and the published checkpoints state (OCP MX
spec v1.0; gpt-oss-120b's ``*_blocks`` / ``*_scales`` tensors), and the datasheet peaks of the profiles.
"""

from __future__ import annotations

import numpy as np
import pytest

from costmodel import kernel_times
from costmodel.dtypes import matmul_compute_dtype, runs_natively, storage_bytes
from costmodel.errors import CostmodelError
from costmodel.kernel_shapes import GemmShape
from costmodel.ops import Op, forward_ops
from costmodel.registry import load_hardware, load_model
from costmodel.roofline import op_times
from costmodel.specs import Workload


def test_mxfp8_stores_one_e8m0_scale_per_32_values() -> None:
    """OCP MX v1.0 §5: 32 E4M3 values share one 8-bit E8M0 scale: 33 bytes per 32 values."""
    assert int(storage_bytes(32 * 1000, "mxfp8")) == 33 * 1000


@pytest.mark.parametrize(
    ("activation", "compute"),
    [("bf16", "bf16"), ("fp8", "fp8"), ("fp8_block", "fp8"), ("mxfp8", "fp8"), ("nvfp4", "fp4"),
     ("mxfp4", "fp4")],
)  # fmt: skip
def test_matmul_inputs_run_on_their_formats_tensor_cores(activation: str, compute: str) -> None:
    assert matmul_compute_dtype(activation) == compute


@pytest.mark.parametrize(
    ("weight", "activation", "native"),
    [
        ("bf16", "bf16", True),
        ("fp8", "fp8", True),  # fp8 x fp8 MMA
        ("fp8", "bf16", False),  # weight-only fp8: upcast in the kernel
        ("nvfp4", "nvfp4", True),  # fp4 x fp4 MMA
        ("mxfp4", "mxfp8", True),  # Blackwell's mixed fp8 x fp4 MMA
        ("mxfp4", "bf16", False),  # MXFP4 x bf16: dequantized (vLLM's default, Hopper's Triton)
        ("int4", "bf16", False),
    ],
)
def test_dequantization_is_paid_only_where_the_kernel_cannot_multiply_the_stored_weight(
    weight: str, activation: str, native: bool
) -> None:
    assert runs_natively(weight, activation) is native


def _experts(ops: tuple[Op, ...]) -> list[Op]:
    return [op for op in ops if op.name in ("experts_up", "experts_down")]


def test_an_mxfp4_expert_moe_layer_reads_the_bytes_the_checkpoint_stores() -> None:
    """gpt-oss-120b stores each expert's gate_up [2I, H] and down [H, I] as uint8 ``*_blocks`` (two e2m1 values
    a byte) and uint8 ``*_scales`` (one e8m0 per 32 values along the row), biases in bf16
    (https://huggingface.co/openai/gpt-oss-120b, model.safetensors.index.json): 4.25 bits per weight. A prefill
    pass touches every expert, so it reads all of them."""
    model = load_model("gpt-oss-120b")
    E, H, I = model.moe.n_experts, model.d_model, model.moe.expert_d_ff  # noqa: E741
    blocks = E * (2 * I * H + H * I) // 2
    scales = E * (2 * I * H // 32 + H * I // 32)
    biases = E * (2 * I + H) * 2
    per_layer = blocks + scales + biases
    ops = forward_ops(
        model, batch_size=1, new_tokens=8192, weight_dtype="bf16", expert_dtype="mxfp4"
    )  # (1 - 4/128)^8192: every expert touched
    assert sum(op.weight_bytes for op in _experts(ops)) == pytest.approx(per_layer, rel=1e-12)
    # the attention projections stay in bf16: 2 bytes per weight
    qkv = next(op for op in ops if op.name == "qkv_proj")
    q, kv = model.n_heads * model.head_dim, 2 * model.kv_heads * model.head_dim
    assert qkv.weight_bytes == pytest.approx(2 * (H * (q + kv) + q + kv) + 2 * model.n_heads, rel=1e-12)


def test_mxfp4_experts_with_bf16_inputs_dequantize_and_with_mxfp8_inputs_do_not() -> None:
    model = load_model("gpt-oss-120b")
    common = {"batch_size": 1, "new_tokens": 512, "weight_dtype": "bf16", "expert_dtype": "mxfp4"}
    w4a16 = _experts(forward_ops(model, **common))
    w4a8 = _experts(forward_ops(model, **common, expert_activation_dtype="mxfp8"))
    assert all(np.all(np.asarray(op.dequant_flop) > 0) for op in w4a16)
    assert all(np.all(np.asarray(op.dequant_flop) == 0) for op in w4a8)
    nvfp4 = forward_ops(model, batch_size=1, new_tokens=512, weight_dtype="nvfp4", activation_dtype="nvfp4")
    assert all(np.all(np.asarray(op.dequant_flop) == 0) for op in nvfp4)


def test_an_nvfp4_gemm_runs_at_the_fp4_peak_on_b200_and_a_w4a8_one_at_the_fp8_peak() -> None:
    """A compute-bound prefill GEMM: its compute time is FLOPs / (the peak of its inputs' format x the
    achieved fraction, HardwareProfile.default_matmul_fraction); B200's dense fp4 peak is twice its fp8 one."""
    b200 = load_hardware("b200")
    model = load_model("llama-3-8b")
    compute = {}
    for activation in ("nvfp4", "fp8"):
        ops = forward_ops(
            model, batch_size=1, new_tokens=8192, weight_dtype="nvfp4", activation_dtype=activation
        )
        times = op_times(ops, b200, activation_dtype=activation)
        i = next(i for i, op in enumerate(ops) if op.name == "mlp_up")
        # the achieved fraction of an unfitted matmul: for fp4 the B200's measured sustained fp4 share
        peak = b200.peak_flop_per_s(matmul_compute_dtype(activation)) * b200.default_matmul_fraction(
            matmul_compute_dtype(activation)
        )
        # NVFP4 weights with fp8 inputs are converted in the kernel (no fp4 x fp8 MMA with NVFP4's scales)
        vector = b200.peak_flop_per_s("fp32") * b200.efficiency.matmul("fp32")
        expected = float(ops[i].flop) / peak + float(np.asarray(ops[i].dequant_flop)) / vector
        assert float(times.compute_s[i]) == pytest.approx(expected, rel=1e-12)
        compute[activation] = float(times.compute_s[i])
    assert b200.peak_flop_per_s("fp4") == 2 * b200.peak_flop_per_s("fp8")
    assert compute["nvfp4"] < compute["fp8"]


def test_fp4_inputs_on_a_gpu_without_fp4_tensor_cores_are_refused_naming_the_field() -> None:
    ops = forward_ops(load_model("llama-3-8b"), batch_size=1, new_tokens=16, weight_dtype="nvfp4")
    with pytest.raises(CostmodelError, match=r"activation_dtype 'nvfp4'.*fp4"):
        op_times(ops, load_hardware("h100-sxm"), activation_dtype="nvfp4")


def test_a_workload_takes_fp4_inputs_but_no_other_sub_8_bit_ones() -> None:
    Workload(weight_dtype="nvfp4", activation_dtype="nvfp4")
    Workload(weight_dtype="bf16", expert_dtype="mxfp4", expert_activation_dtype="mxfp8")
    with pytest.raises(ValueError, match="activation_dtype"):
        Workload(activation_dtype="int4")
    with pytest.raises(ValueError, match="expert_activation_dtype"):
        Workload(expert_activation_dtype="int4")


def test_the_experts_run_at_their_own_inputs_peak() -> None:
    """gpt-oss on B200 in TensorRT-LLM: bf16 attention, MXFP4 x MXFP8 experts at the fp8 peak."""
    b200 = load_hardware("b200")
    model = load_model("gpt-oss-120b")
    ops = forward_ops(
        model, batch_size=1, new_tokens=8192, weight_dtype="bf16", expert_dtype="mxfp4",
        expert_activation_dtype="mxfp8",
    )  # fmt: skip
    times = op_times(ops, b200, activation_dtype="bf16")
    for name, dtype in (("experts_up", "fp8"), ("qkv_proj", "bf16")):
        i = next(i for i, op in enumerate(ops) if op.name == name)
        peak = b200.peak_flop_per_s(dtype) * b200.efficiency.matmul(dtype)
        expected = float(ops[i].flop) / peak + float(np.asarray(ops[i].dequant_flop)) / (
            b200.peak_flop_per_s("fp32") * b200.efficiency.matmul("fp32")
        )
        assert float(times.compute_s[i]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("weight", "activation", "fmt"),
    [("nvfp4", "nvfp4", "nvfp4"), ("nvfp4", "fp8", None), ("mxfp4", "bf16", "w4a16_mxfp4"),
     ("mxfp4", "mxfp8", "w4a8_mxfp4_mxfp8"), ("fp8_block", "fp8", "fp8_block"), ("int4_sym_g32", "bf16", "int4_wo")],
)  # fmt: skip
def test_the_moe_kernel_is_the_one_of_the_weights_and_their_inputs(
    weight: str, activation: str, fmt: str | None
) -> None:
    assert kernel_times.moe_format(weight, activation) == fmt


def test_the_nvfp4_gemm_kernel_is_w4a4_only() -> None:
    """The public tables' nvfp4 GEMM quantizes its inputs to NVFP4 (fp4 x fp4); with fp8 inputs the GEMM
    is another kernel, timed by the roofline at the fp8 peak."""
    b200 = load_hardware("b200")
    shape = GemmShape(np.asarray(64.0), 4096.0, 4096.0, True)
    assert kernel_times._gemm_key(b200, shape, "nvfp4", "nvfp4") == "nvfp4"
    assert kernel_times._gemm_key(b200, shape, "nvfp4", "fp8") is None
    assert kernel_times._gemm_key(load_hardware("h100-sxm"), shape, "nvfp4", "nvfp4") is None
