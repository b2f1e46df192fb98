"""Matrix products: plain, batched, fp8 (scaled) and weight-only int8 / int4 where the platform has a kernel.

Shapes: M rows of activations, K the reduction, N output features, B a batch of independent products.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def gemm(M: int, N: int, K: int, dtype: torch.dtype, device: str) -> Callable[[], Tensor]:
    """``a @ b`` with a [M, K] and b [K, N]."""
    a = torch.randn(M, K, dtype=dtype, device=device)  # [M, K]
    b = torch.randn(K, N, dtype=dtype, device=device)  # [K, N]
    return lambda: a @ b  # [M, N]


def bmm(B: int, M: int, N: int, K: int, dtype: torch.dtype, device: str) -> Callable[[], Tensor]:
    """``torch.bmm`` of B independent [M, K] @ [K, N] products."""
    a = torch.randn(B, M, K, dtype=dtype, device=device)  # [B, M, K]
    b = torch.randn(B, K, N, dtype=dtype, device=device)  # [B, K, N]
    return lambda: torch.bmm(a, b)  # [B, M, N]


def fp8(M: int, N: int, K: int, device: str) -> Callable[[], Tensor]:
    """``a @ b`` in float8 (E4M3) with one fp32 scale per tensor and a bf16 result, through
    ``torch._scaled_mm`` (cuBLASLt's fp8 GEMM on Hopper; the layout it wants: a row-major, b column-major).
    Raises where the platform has no fp8 matmul."""
    e4m3 = torch.float8_e4m3fn
    a = torch.randn(M, K, dtype=torch.bfloat16, device=device).to(e4m3)  # [M, K]
    b = torch.randn(N, K, dtype=torch.bfloat16, device=device).to(e4m3).t()  # [K, N], column-major
    scale_a = torch.ones((), dtype=torch.float32, device=device)
    scale_b = torch.ones((), dtype=torch.float32, device=device)
    run = lambda: torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.bfloat16)  # noqa: E731  [M, N]
    run()
    return run


def int8_weight_only(M: int, N: int, K: int, dtype: torch.dtype, device: str) -> Callable[[], Tensor]:
    """x [M, K] times int8 weights [N, K] with per-output-channel scales, the weights dequantized inside
    the matmul. On the CPU: ``torch._weight_int8pack_mm`` (PyTorch's fused kernel there). On CUDA:
    gpt-fast's int8 path, ``F.linear(x, w.to(x.dtype)) * scales`` under ``torch.compile``, which fuses
    the conversion into the product (PyTorch's CUDA ``_weight_int8pack_mm`` runs on the CUDA cores, one
    warp per output, and is no serving kernel). Raises where unsupported."""
    x = torch.randn(M, K, dtype=dtype, device=device)  # [M, K]
    w = torch.randint(-127, 128, (N, K), dtype=torch.int8, device=device)  # [N, K]
    scales = torch.rand(N, dtype=dtype, device=device)  # [N]
    if device.startswith("cuda"):
        linear = torch.compile(lambda x, w, s: F.linear(x, w.to(x.dtype)) * s, dynamic=False)
        run = lambda: linear(x, w, scales)  # noqa: E731  [M, N]
    else:
        run = lambda: torch._weight_int8pack_mm(x, w, scales)  # noqa: E731  [M, N]
    run()  # fail here, not in the timing loop, where the platform lacks the kernel
    return run


IMPLEMENTATIONS = {
    ("int8_weight_only", "cpu"): "torch._weight_int8pack_mm",
    ("int8_weight_only", "cuda"): "torch.compile(F.linear(x, w.to(x.dtype)) * scales) (gpt-fast)",
    ("int4_weight_only", "cuda"): "torch._weight_int4pack_mm (tinygemm), group 128, inner_k_tiles 8",
    ("gemm-fp8", "cuda"): "torch._scaled_mm, E4M3, per-tensor fp32 scales, bf16 out",
    ("gemm-fp8", "cpu"): "torch._scaled_mm, E4M3, per-tensor fp32 scales, bf16 out",
}


def implementation(kernel: str, dtype: str, device: str) -> str | None:
    """Which kernel a quantized or fp8 point times on ``device`` (None for plain matmuls)."""
    key = f"{kernel}-{dtype}" if dtype == "fp8" else kernel
    return IMPLEMENTATIONS.get((key, "cuda" if device.startswith("cuda") else "cpu"))


def int4_weight_only(
    M: int, N: int, K: int, dtype: torch.dtype, device: str, group_size: int = 128
) -> Callable[[], Tensor]:
    """x [M, K] times int4 weights [N, K] packed for ``torch._weight_int4pack_mm`` (tinygemm, CUDA bf16),
    groups of ``group_size`` with a scale and zero each. Raises where unsupported."""
    if not device.startswith("cuda"):
        raise NotImplementedError("int4 weight-only matmul is measured on CUDA only")
    x = torch.randn(M, K, dtype=torch.bfloat16, device=device)  # [M, K]
    w = torch.randint(0, 16, (N, K), dtype=torch.int32, device=device)  # [N, K] 4-bit values
    w_uint8 = (w[:, ::2] << 4 | w[:, 1::2]).to(torch.uint8)  # [N, K / 2], two values per byte (torch >= 2.5)
    packed = torch._convert_weight_to_int4pack(w_uint8, 8)  # inner_k_tiles = 8
    scales_zeros = torch.rand(K // group_size, N, 2, dtype=torch.bfloat16, device=device)
    run = lambda: torch._weight_int4pack_mm(x, packed, group_size, scales_zeros)  # noqa: E731  [M, N]
    run()
    return run
