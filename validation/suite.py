"""The validation points: what to run (a reference kernel), what costmodel predicts for it, and how its
FLOPs are counted independently.

A :class:`Point` names a kernel and its shapes. :func:`build` makes the torch callable that is timed;
:func:`predict` asks costmodel (no torch) for its time, regime, FLOPs and peak memory through the same
operator records the estimators use (``costmodel.ops.Op`` and ``forward_ops``); :func:`count_flop`
runs the callable on the ``meta`` device under ``torch.utils.flop_counter.FlopCounterMode`` with the
MATH attention backend (fused SDPA kernels count as 0 FLOP on the CPU), so FLOPs are compared with
costmodel's ``attention="full"`` count.

Calibration points (``calibration=True``: large GEMMs, a copy, a tiny kernel, a tiny layer) are the only
ones whose measurements set efficiencies; every other point is held out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.dtypes import get_dtype
from costmodel.execution import activation_kernels, norm_kernels
from costmodel.flops import attended_keys
from costmodel.kernel_shapes import GemmShape
from costmodel.memory import inference_activation_bytes, kv_cache_bytes, tensor_bytes, weight_bytes
from costmodel.ops import DEQUANT_FLOP_PER_WEIGHT, ELEMENTWISE_FLOP, HEAD_OPS, Op, forward_ops
from costmodel.params import tensors
from costmodel.roofline import OpTimes, op_times
from costmodel.specs import Efficiency, HardwareProfile, ModelProfile, MoESpec
from validation.kernels import attention, gemm
from validation.kernels.decoder import MLP, Decoder, Layer, MoE, _norm, sdpa_mask

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# A Llama-3-shaped model small enough for a CPU (8 layers, d_model 512, GQA 8/2, SwiGLU).
SMALL = ModelProfile(
    name="llama-small",
    source="scaled-down Llama-3 shape for CPU validation",
    vocab_size=2048,
    d_model=512,
    n_layers=8,
    n_heads=8,
    n_kv_heads=2,
    d_ff=1792,
    max_context=4096,
)
# The same layer with almost no work (d_model 64, head_dim 8): one token through it times the host's
# dispatch of its kernels (the calibration of ``dispatch_s``).
TINY = SMALL.model_copy(update={"name": "llama-tiny", "d_model": 64, "d_ff": 64, "vocab_size": 64})
SMALL_MOE = SMALL.model_copy(
    update={
        "name": "moe-small",
        "d_ff": None,
        "n_layers": 4,
        "moe": MoESpec(n_experts=8, top_k=2, expert_d_ff=896),
    }
)


@dataclass(frozen=True)
class Point:
    """One measurement: a kernel, its family and its parameters (shapes, dtype, model)."""

    kernel: str
    family: str
    params: dict[str, Any] = field(hash=False)
    calibration: bool = False

    @property
    def id(self) -> str:
        """Stable identifier, used to resume an interrupted run."""
        text = json.dumps([self.kernel, self.params], sort_keys=True)
        return f"{self.kernel}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"

    @property
    def dtype(self) -> str:
        return str(self.params.get("dtype", "bf16"))


def model_of(point: Point) -> ModelProfile:
    """The (possibly scaled-down) model profile of a layer/model point."""
    name = point.params["model"]
    known = {"llama-small": SMALL, "moe-small": SMALL_MOE, "llama-tiny": TINY}
    base = known.get(name) or costmodel.load_model(name)
    layers = point.params.get("layers")
    return base.model_copy(update={"n_layers": layers}) if layers else base


# ----------------------------------------------------------------------------------------------------
# Reference callables (torch)
# ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _allocating(device: str, dtype: torch.dtype) -> Iterator[None]:
    """Create modules directly on ``device`` in ``dtype`` (no fp32 copy on the host first)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype if dtype.is_floating_point else previous)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build(point: Point, device: str) -> Callable[[], Any]:
    """The torch callable that is timed for ``point`` on ``device``: inference, so without autograd (which
    would keep every intermediate for a backward pass and time its bookkeeping)."""
    fn = _build(point, device)
    return lambda: _no_grad(fn)


def _no_grad(fn: Callable[[], Any]) -> Any:
    with torch.no_grad():
        return fn()


def _build(point: Point, device: str) -> Callable[[], Any]:
    p, dtype = point.params, TORCH_DTYPES.get(point.dtype, torch.bfloat16)
    k = point.kernel
    torch.manual_seed(0)
    if k == "gemm" and point.dtype == "fp8":
        return gemm.fp8(p["M"], p["N"], p["K"], device)
    if k == "gemm":
        return gemm.gemm(p["M"], p["N"], p["K"], dtype, device)
    if k == "bmm":
        return gemm.bmm(p["B"], p["M"], p["N"], p["K"], dtype, device)
    if k == "int8_weight_only":
        return gemm.int8_weight_only(p["M"], p["N"], p["K"], dtype, device)
    if k == "int4_weight_only":
        return gemm.int4_weight_only(p["M"], p["N"], p["K"], dtype, device)
    if k == "copy":
        src = torch.empty(p["bytes"] // 4, dtype=torch.float32, device=device)
        dst = torch.empty_like(src)
        return lambda: dst.copy_(src)
    if k == "launch":  # the smallest matmul: what one modelled operator costs when it has no work
        x = torch.randn(1, 64, dtype=dtype, device=device)  # [1, 64]
        w = torch.randn(64, 64, dtype=dtype, device=device)  # [64, 64]
        return lambda: torch.nn.functional.linear(x, w)
    if k == "attention_prefill":
        return attention.prefill(p["B"], p["H"], p["Hkv"], p["S"], p["D"], dtype, device)
    if k == "attention_decode":
        return attention.decode(p["B"], p["H"], p["Hkv"], p["P"], p["D"], dtype, device)
    if k in ("rmsnorm", "layernorm"):
        m = SMALL.model_copy(update={"norm": k})
        with _allocating(device, dtype):
            norm = _norm(m, p["d"])
        x = torch.randn(p["T"], p["d"], dtype=dtype, device=device)  # [T, d]
        return lambda: norm(x)
    model = model_of(point) if "model" in p else None
    if k == "mlp":
        m = SMALL.model_copy(update={"d_model": p["d"], "mlp": "gated" if p["gated"] else "standard"})
        with _allocating(device, dtype):
            mlp = MLP(m, p["d_ff"])
        x = torch.randn(p["T"], p["d"], dtype=dtype, device=device)
        return lambda: mlp(x)
    if k == "moe":
        assert model is not None
        with _allocating(device, dtype):
            moe = MoE(model)
        x = torch.randn(p["T"], model.d_model, dtype=dtype, device=device)
        return lambda: moe(x)
    assert model is not None
    B, n, past = p["B"], p.get("new", 1), p.get("past", 0)
    steps = p.get("steps", 1)
    if k == "layer":
        with _allocating(device, dtype):
            layer = Layer(model, p.get("index", 0))
        cache = layer.attn.empty_cache(B, past, past + n, device=device, dtype=dtype)  # type: ignore[operator]
        x = torch.randn(B, n, model.d_model, dtype=dtype, device=device)  # [B, n, d]
        mask = sdpa_mask(n, past, model.sliding_window, device)

        def run_layer() -> Any:
            cache.length = past
            return layer(x, cache, mask)

        return run_layer
    with _allocating(device, dtype):
        decoder = Decoder(model).eval()
    caches = decoder.empty_cache(B, past, past + n * steps, device=device, dtype=dtype)
    tokens = torch.randint(0, model.vocab_size, (B, n), device=device)  # [B, n]

    def run_model() -> Any:
        for c in caches:
            c.length = past
        out, x, cache = None, tokens, caches
        for _ in range(steps):  # a decode loop feeds back the greedy token (steps = 1: one pass)
            out, cache = decoder(x, cache)
            x = out[:, -1:].argmax(-1)
        return out

    return run_model


def count_flop(point: Point) -> int | None:
    """FLOPs of one call counted by FlopCounterMode on the meta device (None where the kernel cannot run
    on meta, e.g. data-dependent MoE routing, or has no FLOPs)."""
    if point.kernel in ("copy", "launch", "int8_weight_only", "int4_weight_only", "moe") or "moe" in str(
        point.params.get("model", "")
    ):
        return None
    try:
        fn = build(point, "meta")
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())
    except Exception:  # a kernel the meta device cannot run (its FLOPs stay uncounted, not the run)
        return None


# ----------------------------------------------------------------------------------------------------
# Predictions (costmodel only)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    time_s: float
    regime: str
    flop: float | None  # comparable with count_flop: attention over the full rectangle
    memory_bytes: float | None  # peak allocation of the call, where modelled


def _kernel_ops(point: Point) -> list[Op]:
    p = point.params
    s = get_dtype(point.dtype).bits / 8
    zero = np.zeros(())
    k = point.kernel
    if k in ("gemm", "bmm", "int8_weight_only", "int4_weight_only"):
        b = p.get("B", 1)
        M, N, K = p["M"], p["N"], p["K"]
        flop = 2.0 * b * M * N * K
        if k == "int8_weight_only":
            w_bytes, deq = K * N * 1.0 + N * s, DEQUANT_FLOP_PER_WEIGHT * K * N
        elif k == "int4_weight_only":
            w_bytes, deq = K * N * 0.5 + (K // 128) * N * 4.0, DEQUANT_FLOP_PER_WEIGHT * K * N
        else:
            w_bytes, deq = b * K * N * s, 0.0
        out_s = 2.0 if point.dtype == "fp8" else s  # the fp8 GEMM writes bf16
        return [
            Op(
                k,
                "matmul",
                1,
                zero + flop,
                zero + b * M * K * s + w_bytes,
                zero + b * M * N * out_s,
                weight_bytes=w_bytes,
                dequant_flop=deq,
                counted=True,
                # a plain GEMM's shape: on a CPU its BLAS packs the weights (costmodel.cpu_gemm)
                kernel=GemmShape(zero + M, float(N), float(K)) if k == "gemm" else None,
            )
        ]
    if k == "copy":
        return [Op(k, "elementwise", 1, zero, zero + p["bytes"], zero + p["bytes"])]
    if k == "launch":
        return [Op(k, "matmul", 1, zero + 2.0 * 64 * 64, zero + 65 * 64 * s, zero + 64 * s)]
    if k in ("attention_prefill", "attention_decode"):
        B, H, Hkv, D = p["B"], p["H"], p["Hkv"], p["D"]
        n, past = (p["S"], 0) if k == "attention_prefill" else (1, p["P"])
        keys = attended_keys(n, past)  # causal
        flop = 4.0 * B * H * D * keys
        reads = B * (n * H * D + 2 * (past + n) * Hkv * D) * s
        return [Op(k, "attention", 1, zero + flop, zero + reads, zero + B * n * H * D * s, counted=True)]
    if k in ("rmsnorm", "layernorm"):
        T, d = p["T"], p["d"]
        return [
            Op(
                k,
                "elementwise",
                1,
                zero + ELEMENTWISE_FLOP["norm"] * T * d,
                zero + (T * d + d) * s,
                zero + T * d * s,
                launches=norm_kernels(k),
            )
        ]
    if k == "mlp":
        T, d, f, gated = p["T"], p["d"], p["d_ff"], p["gated"]
        up = (2 if gated else 1) * f
        act = ELEMENTWISE_FLOP["act_gated" if gated else "act"]
        return [
            Op(
                "mlp_up",
                "matmul",
                1,
                zero + 2.0 * T * d * up,
                zero + (d * up + T * d) * s,
                zero + T * up * s,
                weight_bytes=d * up * s,
                counted=True,
                kernel=GemmShape(zero + T, float(up), float(d)),
                launches=2.0 if gated else 1.0,
            ),
            Op(
                "mlp_act",
                "elementwise",
                1,
                zero + act * T * f,
                zero + T * up * s,
                zero + T * f * s,
                launches=activation_kernels(SMALL.activation, gated),
            ),
            Op(
                "mlp_down",
                "matmul",
                1,
                zero + 2.0 * T * d * f,
                zero + (d * f + T * f) * s,
                zero + T * d * s,
                weight_bytes=d * f * s,
                counted=True,
                kernel=GemmShape(zero + T, float(d), float(f)),
            ),
        ]
    raise KeyError(k)


def _model_ops(point: Point, *, attention: str) -> tuple[ModelProfile, list[Op]]:
    p, model = point.params, model_of(point)
    B, n, past = p.get("B", 1), p.get("new", 1), p.get("past", 0)
    kw = dict(
        weight_dtype=point.dtype,
        activation_dtype=point.dtype,
        kv_dtype=point.dtype,
        attention_impl="flash" if attention == "causal" else "eager",
    )
    if point.kernel == "moe":
        ops = forward_ops(model.model_copy(update={"n_layers": 1}), batch_size=1, new_tokens=p["T"], **kw)  # type: ignore[arg-type]
        return model, [op for op in ops if op.name in ("router", "experts_up", "experts_act", "experts_down")]
    if point.kernel == "layer":
        one = model.model_copy(update={"n_layers": 1})
        ops = forward_ops(one, batch_size=B, new_tokens=n, past_tokens=past, **kw)  # type: ignore[arg-type]
        return model, [op for op in ops if op.name not in ("embedding", *HEAD_OPS)]
    steps = p.get("steps", 1)
    pasts = past + np.arange(steps) * n
    ops = list(forward_ops(model, batch_size=B, new_tokens=n, past_tokens=pasts, logits="all", **kw))  # type: ignore[arg-type]
    return model, ops


def predict(point: Point, hardware: HardwareProfile, efficiency: Efficiency | None = None) -> Prediction:
    """costmodel's time, regime, FLOPs and (for model points) peak memory for ``point``."""
    if point.kernel in (
        "gemm",
        "bmm",
        "int8_weight_only",
        "int4_weight_only",
        "copy",
        "launch",
        "attention_prefill",
        "attention_decode",
        "rmsnorm",
        "layernorm",
        "mlp",
    ):
        ops = _kernel_ops(point)
        model = None
    else:
        model, ops = _model_ops(point, attention="causal")
    dtype = point.dtype if point.dtype in ("fp32", "bf16", "fp16", "fp8", "int8") else "bf16"
    times = op_times(ops, hardware, activation_dtype=dtype, efficiency=efficiency)
    total = float(np.sum(times.total_s))
    regime = _regime(times)
    flop = _comparable_flop(point, ops)
    memory = _peak_memory(point, model) if model is not None and point.kernel != "moe" else None
    return Prediction(total, regime, flop, memory)


def _regime(times: OpTimes) -> str:
    """'compute' when compute-bound operators take more of the time than memory-bound ones."""
    compute = memory = 0.0
    for n, c, m in zip(times.layers, times.compute_s, times.memory_s, strict=True):
        compute += n * float(np.sum(np.where(c >= m, c, 0.0)))
        memory += n * float(np.sum(np.where(c < m, m, 0.0)))
    return "compute" if compute > memory else "memory"


def _comparable_flop(point: Point, ops: list[Op]) -> float | None:
    if point.kernel in ("copy", "launch", "int8_weight_only", "int4_weight_only", "moe"):
        return None
    if point.kernel in ("rmsnorm", "layernorm"):
        return 0.0
    if point.kernel in ("attention_prefill", "attention_decode"):
        p = point.params
        n, past = (p["S"], 0) if point.kernel == "attention_prefill" else (1, p["P"])
        return 4.0 * p["B"] * p["H"] * p["D"] * float(attended_keys(n, past, attention="full"))
    if point.kernel in ("gemm", "bmm", "mlp"):
        return float(sum(float(np.sum(op.flop)) * op.layers for op in ops if op.counted))
    if "moe" in str(point.params.get("model", "")):
        return None
    _, full_ops = _model_ops(point, attention="full")
    return float(sum(float(np.sum(op.flop)) * op.layers for op in full_ops if op.counted))


def _peak_memory(point: Point, model: ModelProfile) -> float:
    """Weights + the preallocated KV cache + the activation peak of one pass (costmodel.memory)."""
    p = point.params
    B, n, past, steps = p["B"], p.get("new", 1), p.get("past", 0), p.get("steps", 1)
    if point.kernel == "layer":  # one layer's own weights: no embedding, head or final norm
        model = model.model_copy(update={"n_layers": 1})
        outside = ("embedding", "position_embedding", "output_head")
        w = sum(
            tensor_bytes(t, weight_dtype=point.dtype) * t.count
            for t in tensors(model)
            if t.component not in outside and not t.name.startswith("final_norm")
        )
    else:
        w = weight_bytes(model, weight_dtype=point.dtype)
    kv = kv_cache_bytes(model, batch_size=B, context_len=past + n * steps, kv_dtype=point.dtype)
    act = inference_activation_bytes(
        model,
        batch_size=B,
        new_tokens=n,
        activation_dtype=point.dtype,
        logits="none" if point.kernel == "layer" else "all",
    )
    return float(w + kv + act)


# ----------------------------------------------------------------------------------------------------
# Suites
# ----------------------------------------------------------------------------------------------------


def calibration_points(device: str) -> list[Point]:
    """Micro-benchmarks only: large GEMMs per dtype (compute), a matrix-vector product over a weight much
    larger than the caches (the bandwidth at which weights stream through a matmul, decode's dominant
    traffic), on a CPU a 16-row GEMM over the same weight (the BLAS's weight-packing pass), a large copy (for
    information), the smallest matmul (the fixed cost of one operator), and one token through a decoder layer
    with almost no work (``TINY``: the host's dispatch per eager kernel)."""
    if device.startswith("cuda"):
        dtypes, size, stream, copy_bytes = ("bf16", "fp16", "fp32"), 8192, 32768, 2**32
    else:
        dtypes, size, stream, copy_bytes = ("fp32", "bf16"), 1024, 8192, 2**28
    pts = [Point("gemm", "gemm", {"M": size, "N": size, "K": size, "dtype": d}, True) for d in dtypes]
    pts.append(Point("gemm", "memory", {"M": 1, "N": stream, "K": stream, "dtype": dtypes[0]}, True))
    pts.append(Point("copy", "memory", {"bytes": copy_bytes, "dtype": "fp32"}, True))
    pts.append(Point("launch", "overhead", {"dtype": dtypes[0]}, True))
    if not device.startswith("cuda"):  # the BLAS's weight-packing pass: 16 rows over the streaming weight
        pts.append(Point("gemm", "pack", {"M": 16, "N": stream, "K": stream, "dtype": dtypes[0]}, True))
    tiny = {"model": "llama-tiny", "B": 1, "new": 1, "dtype": dtypes[0]}
    pts.append(Point("layer", "overhead", tiny, True))
    if device.startswith("cuda"):  # last: the newest kernel (torch._scaled_mm), unsupported on older GPUs
        pts.append(Point("gemm", "gemm", {"M": size, "N": size, "K": size, "dtype": "fp8"}, True))
    return pts


def quick_points() -> list[Point]:
    """A CPU-sized sweep that runs in about a minute on two cores."""
    pts: list[Point] = []
    for M, N, K in [(1, 2048, 2048), (16, 2048, 2048), (128, 1024, 1024), (512, 512, 512), (256, 2048, 512)]:
        pts.append(Point("gemm", "gemm", {"M": M, "N": N, "K": K, "dtype": "fp32"}))
    pts.append(Point("bmm", "gemm", {"B": 16, "M": 128, "N": 128, "K": 64, "dtype": "fp32"}))
    pts.append(Point("int8_weight_only", "quantized_gemm", {"M": 16, "N": 2048, "K": 2048, "dtype": "fp32"}))
    for S in (256, 1024):
        pts.append(
            Point(
                "attention_prefill", "attention", {"B": 1, "H": 8, "Hkv": 2, "S": S, "D": 64, "dtype": "fp32"}
            )
        )
    for B, P in [(1, 2048), (8, 1024)]:
        pts.append(
            Point(
                "attention_decode", "attention", {"B": B, "H": 8, "Hkv": 2, "P": P, "D": 64, "dtype": "fp32"}
            )
        )
    pts.append(Point("rmsnorm", "norm", {"T": 4096, "d": 1024, "dtype": "fp32"}))
    pts.append(Point("layernorm", "norm", {"T": 4096, "d": 1024, "dtype": "fp32"}))
    pts.append(Point("mlp", "mlp", {"T": 256, "d": 512, "d_ff": 1792, "gated": True, "dtype": "fp32"}))
    pts.append(Point("mlp", "mlp", {"T": 256, "d": 512, "d_ff": 2048, "gated": False, "dtype": "fp32"}))
    pts.append(Point("moe", "moe", {"model": "moe-small", "T": 128, "dtype": "fp32"}))
    pts.append(
        Point("layer", "layer", {"model": "llama-small", "B": 1, "new": 256, "past": 0, "dtype": "fp32"})
    )
    pts.append(
        Point("layer", "layer", {"model": "llama-small", "B": 4, "new": 1, "past": 512, "dtype": "fp32"})
    )
    for S in (64, 256):
        pts.append(
            Point(
                "model_prefill", "model_prefill", {"model": "llama-small", "B": 1, "new": S, "dtype": "fp32"}
            )
        )
    pts.append(
        Point("model_prefill", "model_prefill", {"model": "moe-small", "B": 1, "new": 128, "dtype": "fp32"})
    )
    for B, P in [(1, 256), (4, 512), (16, 128)]:
        pts.append(
            Point(
                "model_decode",
                "model_decode",
                {"model": "llama-small", "B": B, "new": 1, "past": P, "dtype": "fp32"},
            )
        )
    pts.append(
        Point(
            "decode_loop",
            "decode_loop",
            {"model": "llama-small", "B": 1, "new": 1, "past": 128, "steps": 16, "dtype": "fp32"},
        )
    )
    return pts


def full_points() -> list[Point]:
    """The GPU sweep (H100/H200-sized): >= 50 points across GEMM, attention, layers and whole models."""
    pts: list[Point] = []
    for dtype in ("bf16", "fp16"):
        for M in (1, 16, 128, 512, 2048, 8192):
            for N, K in [(4096, 4096), (14336, 4096), (4096, 14336), (8192, 8192)]:
                pts.append(Point("gemm", "gemm", {"M": M, "N": N, "K": K, "dtype": dtype}))
    # Square sizes between the whole-wave ones: the data to test a wave-quantization term (tiles of the
    # output spread over the SMs; a last, partial wave costs a whole one) and small-size efficiency.
    for n in (1024, 1536, 2048, 2560, 3072, 3584, 4608, 5120, 6144, 7168):
        pts.append(Point("gemm", "gemm", {"M": n, "N": n, "K": n, "dtype": "bf16"}))
    for N in (1024, 2048):  # small matrix-vector products: the fixed cost per operator beside bandwidth
        pts.append(Point("gemm", "gemm", {"M": 1, "N": N, "K": N, "dtype": "bf16"}))
    pts.append(Point("bmm", "gemm", {"B": 64, "M": 512, "N": 512, "K": 128, "dtype": "bf16"}))
    for S in (128, 512, 1024, 2048, 4096, 8192, 16384):  # attention efficiency against sequence length
        pts.append(
            Point(
                "attention_prefill",
                "attention",
                {"B": 1, "H": 32, "Hkv": 8, "S": S, "D": 128, "dtype": "bf16"},
            )
        )
    for B, P in [(1, 1024), (1, 8192), (8, 4096), (64, 1024), (32, 32768)]:
        pts.append(
            Point(
                "attention_decode",
                "attention",
                {"B": B, "H": 32, "Hkv": 8, "P": P, "D": 128, "dtype": "bf16"},
            )
        )
    pts.append(Point("rmsnorm", "norm", {"T": 16384, "d": 4096, "dtype": "bf16"}))
    pts.append(Point("mlp", "mlp", {"T": 2048, "d": 4096, "d_ff": 14336, "gated": True, "dtype": "bf16"}))
    pts.append(Point("moe", "moe", {"model": "mixtral-8x7b", "layers": 1, "T": 1024, "dtype": "bf16"}))
    for B, n, past in [(1, 2048, 0), (8, 1, 2048), (64, 1, 1024)]:
        pts.append(
            Point("layer", "layer", {"model": "llama-3-8b", "B": B, "new": n, "past": past, "dtype": "bf16"})
        )
    for model, layers in [("llama-3-8b", None), ("mixtral-8x7b", 4), ("qwen2.5-7b", None)]:
        for S in (512, 2048):
            pts.append(
                Point(
                    "model_prefill",
                    "model_prefill",
                    {"model": model, "layers": layers, "B": 1, "new": S, "dtype": "bf16"},
                )
            )
        for B in (1, 8, 32, 128):
            pts.append(
                Point(
                    "model_decode",
                    "model_decode",
                    {"model": model, "layers": layers, "B": B, "new": 1, "past": 1024, "dtype": "bf16"},
                )
            )
    pts.append(
        Point(
            "decode_loop",
            "decode_loop",
            {"model": "llama-3-8b", "B": 1, "new": 1, "past": 512, "steps": 32, "dtype": "bf16"},
        )
    )
    # Last, the kernels newest to this harness: an error that breaks the CUDA context here costs no
    # other point. fp8 is E4M3 with per-tensor scales (recorded unsupported where absent).
    for M in (1, 16, 128, 2048, 8192):  # fp8 (E4M3, per-tensor scales): recorded unsupported where absent
        for N, K in [(4096, 4096), (14336, 4096)]:
            pts.append(Point("gemm", "gemm", {"M": M, "N": N, "K": K, "dtype": "fp8"}))
    for M in (1, 16, 128):
        pts.append(
            Point("int8_weight_only", "quantized_gemm", {"M": M, "N": 4096, "K": 4096, "dtype": "bf16"})
        )
        pts.append(
            Point("int4_weight_only", "quantized_gemm", {"M": M, "N": 4096, "K": 4096, "dtype": "bf16"})
        )
    return pts


SUITES: dict[str, Callable[[], list[Point]]] = {"quick": quick_points, "full": full_points}
