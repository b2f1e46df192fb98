"""Byte counts where the format or the engine states them exactly (issue #14): the GEMMs' block-scaled and
fp4 inputs with their scales, the vocab-parallel output head's logits and their gather. Every expected value
is counted by hand from the format's definition or the model's config, or is the ``nbytes`` of the real
layout's tensors on PyTorch's meta device, never a number the code produced."""

from __future__ import annotations

import pytest

import costmodel
from costmodel.dtypes import activation_bytes_per_element
from costmodel.kernels import gemm
from costmodel.ops import LOGITS_GATHER_OP, forward_ops

LLAMA_70B = costmodel.load_model("llama-3-70b")
HIDDEN = 8192  # Llama-3-70B's config.json: "hidden_size": 8192
VOCAB = 128256  # "vocab_size": 128256
HEADS, HEAD_DIM = 64, 128  # "num_attention_heads": 64, hidden_size / heads
FFN = 28672  # "intermediate_size": 28672
BF16 = 2  # bytes a bf16 element

# bits a value + scale bits per group, from each format's definition
HAND = {
    # NVIDIA NVFP4: E2M1 values, one E4M3 scale per 16 (https://developer.nvidia.com/blog/
    # introducing-nvfp4-for-efficient-and-accurate-low-precision-inference/)
    "nvfp4": (4 + 8 / 16) / 8,
    # OCP MX v1.0 §5: MXFP4 = E2M1 values, one E8M0 scale per block of 32; MXFP8 = E4M3 values, same scale
    "mxfp4": (4 + 8 / 32) / 8,
    "mxfp8": (8 + 8 / 32) / 8,
    # DeepSeek-V3 §3.3.2 (arXiv:2412.19437): activations scaled per 1 x 128 tile, one fp32 each
    "fp8_block": (8 + 32 / 128) / 8,
    "fp8": 1.0,  # E4M3, one per-tensor scale (not per element)
    "bf16": 2.0,
}


@pytest.mark.parametrize(("fmt", "expected"), HAND.items())
def test_an_activation_row_costs_its_values_and_its_group_scales(fmt: str, expected: float) -> None:
    assert activation_bytes_per_element(fmt) == expected


def _meta_layout_bytes(fmt: str, rows: int, cols: int) -> int:
    """nbytes of the tensors a kernel keeps for a [rows, cols] activation in ``fmt`` (meta device)."""
    torch = pytest.importorskip("torch")

    def empty(shape: tuple[int, int], dtype: object) -> int:
        return int(torch.empty(shape, dtype=dtype, device="meta").nbytes)

    if fmt == "nvfp4":  # packed e2m1 pairs + e4m3 scales per 16 (FlashInfer's fp4_quantize outputs)
        return empty((rows, cols // 2), torch.float4_e2m1fn_x2) + empty(
            (rows, cols // 16), torch.float8_e4m3fn
        )
    if fmt == "mxfp4":  # packed e2m1 pairs + e8m0 scales per 32
        return empty((rows, cols // 2), torch.float4_e2m1fn_x2) + empty(
            (rows, cols // 32), torch.float8_e8m0fnu
        )
    if fmt == "fp8_block":  # e4m3 values + one fp32 scale per 1 x 128 (DeepSeek's act_quant)
        return empty((rows, cols), torch.float8_e4m3fn) + empty((rows, cols // 128), torch.float32)
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4", "fp8_block"])
def test_the_activation_rate_is_the_real_layouts_bytes(fmt: str) -> None:
    rows, cols = 64, HIDDEN
    assert activation_bytes_per_element(fmt) * rows * cols == _meta_layout_bytes(fmt, rows, cols)


def _ops(tokens: int, activation: str, weight: str | None = None, tp: int = 8, **kw: object) -> dict:
    ops = forward_ops(
        LLAMA_70B,
        batch_size=tokens,
        new_tokens=1,
        past_tokens=100,
        tp=tp,
        weight_dtype=weight or activation,
        activation_dtype=activation,
        **kw,  # type: ignore[arg-type]
    )
    return {op.name: op for op in ops}


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4", "fp8_block", "fp8", "bf16"])
def test_each_gemm_reads_its_inputs_in_their_format_with_their_scales(fmt: str) -> None:
    tokens, tp = 32, 8
    ops = _ops(tokens, fmt, tp=tp)
    widths = {  # per-GPU input widths of Llama's four GEMMs under tp = 8
        "qkv_proj": HIDDEN,
        "o_proj": HEADS * HEAD_DIM // tp,
        "mlp_up": HIDDEN,
        "mlp_down": FFN // tp,
    }
    for name, width in widths.items():
        op = ops[name]
        inputs = float(op.bytes_read) - op.weight_bytes
        assert inputs == pytest.approx(tokens * width * HAND[fmt], rel=1e-12), name


def test_the_unquantized_head_reads_the_16_bit_stream_whatever_the_gemms_format() -> None:
    tokens = 16
    for fmt in ("nvfp4", "fp8_block", "fp8"):
        head = _ops(tokens, fmt, logits="last")["lm_head"]
        assert float(head.bytes_read) - head.weight_bytes == tokens * HIDDEN * BF16


@pytest.mark.parametrize("tp", [1, 2, 8])
def test_the_vocab_parallel_head_writes_its_slice_and_the_slices_are_gathered(tp: int) -> None:
    tokens = 48
    ops = _ops(tokens, "bf16", tp=tp, logits="last")
    assert float(ops["lm_head"].bytes_written) == tokens * VOCAB * BF16 / tp
    if tp == 1:
        assert LOGITS_GATHER_OP not in ops
        return
    gather = ops[LOGITS_GATHER_OP]
    assert gather.kind == "allgather"
    assert gather.group == tp
    assert float(gather.bytes_read) == tokens * VOCAB * BF16  # the gathered buffer, as nccl-tests size it
    assert gather.kernel.op == "all_gather"  # type: ignore[union-attr]


@pytest.mark.parametrize(("tp", "attention_dp"), [(1, 8), (2, 4)])
def test_under_attention_dp_the_head_serves_the_ranks_own_tokens(tp: int, attention_dp: int) -> None:
    """Attention DP: each rank's head covers its own ``tokens`` (``batch_size`` is one rank's), vocab-parallel
    over the rank's own ``tp`` (TensorRT-LLM's replicated head at tp = 1, SGLang's ``--enable-dp-lm-head``):
    at tp = 1 it writes every logit of its tokens and nothing is gathered; at tp = 2 it writes half of them
    and gathers the other half from its one peer, not from the other DP ranks."""
    tokens = 48
    ops = _ops(tokens, "bf16", tp=tp, logits="last", attention_dp=attention_dp)
    assert float(ops["lm_head"].bytes_written) == tokens * VOCAB * BF16 / tp
    if tp == 1:
        assert LOGITS_GATHER_OP not in ops
        return
    gather = ops[LOGITS_GATHER_OP]
    assert gather.group == tp
    assert float(gather.bytes_read) == tokens * VOCAB * BF16


def test_a_tied_head_writes_its_slice_too() -> None:
    gemma = costmodel.load_model("gemma-7b")
    assert gemma.tie_embeddings
    tokens, tp = 8, 4
    ops = {op.name: op for op in forward_ops(gemma, batch_size=tokens, new_tokens=1, tp=tp, logits="last")}
    # gemma-7b config.json: "vocab_size": 256000
    assert float(ops["lm_head"].bytes_written) == tokens * 256000 * BF16 / tp
    assert float(ops[LOGITS_GATHER_OP].bytes_read) == tokens * 256000 * BF16


def test_the_gemm_model_counts_block_scaled_weights_per_128_by_128_block() -> None:
    torch = pytest.importorskip("torch")
    m, n, k = 64, 4096, 7168
    # DeepSeek-V3's checkpoint: an e4m3 weight [n, k] and its fp32 weight_scale_inv [n / 128, k / 128]
    weight = torch.empty((n, k), dtype=torch.float8_e4m3fn, device="meta").nbytes
    weight += torch.empty((n // 128, k // 128), dtype=torch.float32, device="meta").nbytes
    inputs = _meta_layout_bytes("fp8_block", m, k)
    output = m * n * BF16
    quantize_read = m * k * BF16  # the quantization kernel reads the bf16 activations
    expected = inputs + weight + output + quantize_read
    assert float(gemm.operand_bytes("fp8_block", m=m, n=n, k=k)) == expected


def test_the_gemm_model_counts_nvfp4_operands_with_a_scale_per_16() -> None:
    m, n, k = 16, 2048, 4096
    per = (4 + 8 / 16) / 8
    expected = (m * k + k * n) * per + m * n * BF16 + m * k * BF16
    assert float(gemm.operand_bytes("nvfp4", m=m, n=n, k=k)) == expected
