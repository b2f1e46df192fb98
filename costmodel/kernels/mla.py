"""Multi-head latent attention (MLA, DeepSeek-V2/V3): the attention kernels, the absorb matmuls and the
whole attention module.

MLA caches one latent vector per token, ``kv_lora_rank`` (512) compressed K/V plus ``qk_rope_head_dim``
(64) rotary key dims, shared by all heads (DeepSeek-AI 2024, "DeepSeek-V2", section 2.1,
https://arxiv.org/abs/2405.04434). Engines run it in two forms:

- **Prefill (context): naive form.** The latent is expanded by ``kv_b_proj`` into per-head keys
  (``qk_nope + qk_rope`` = 192 dims) and values (128 dims), then ordinary causal attention runs with
  ``n_heads`` query and key heads: the context-attention model with ``head_dim=192, v_head_dim=128``.
- **Decode (generation): absorbed form.** ``W_UK`` is multiplied into the query and ``W_UV`` into the
  output (the two "absorb" batched matmuls, ``mla_gen_pre`` / ``mla_gen_post``), so every head attends
  in the 576-dim latent space directly against the cache: an MQA with one 576-dim key head whose first
  512 dims are also the value (FlashMLA, https://github.com/deepseek-ai/FlashMLA; FlashInfer MLA,
  https://docs.flashinfer.ai/api/mla.html). Bytes: ``kv_len x 576 x kv_bytes`` per sequence for each
  group of ``heads_per_cta`` heads (one CTA serves that many heads and streams the latent itself: FlashMLA
  64, vLLM's Triton MLA decode 16, its ``BLOCK_H``,
  https://github.com/vllm-project/vllm/blob/main/vllm/attention/ops/triton_decode_attention.py), FLOP:
  ``2 x n_heads x kv_len x (576 + 512)``; the generation-attention streaming model with its waves and
  overlap. Split count: enough chunks to fill the SMs (``fill_splits=1``: FlashMLA's metadata; trtllm-gen
  on Blackwell, ``low_latency_heads_per_cta`` set, the most that fit in one wave, ``floor(SMs / CTAs)``),
  or always ``max_splits`` (``fill_splits=0``: vLLM's Triton MLA launches ``num_kv_splits = 4`` whatever
  the batch, https://github.com/vllm-project/vllm/blob/main/vllm/v1/attention/backends/mla/triton_mla.py).
  The naive form (``absorbed=False``) caches full per-head K and V instead.
- **Absorb matmuls**: per head, ``[tokens, 128] x [128, 512]`` (pre) and ``[tokens, 512] x [512, 128]``
  (post); roofline of their FLOP and bytes (weights once, activations in and out).
- **Module**: everything the attention block of one layer runs: the fused ``q_a``/``kv_a``
  down-projection, ``q_b``, (prefill) ``kv_b``, the attention, (decode) the absorb matmuls, ``o_proj``,
  and a fixed number of small kernels (norms, RoPE, cache write, activation quantization), each paying
  ``module_kernel_s``. GEMMs are rooflines at ``gemm_compute_fraction`` of the GEMM dtype's peak.

Every op takes at least ``host_floor_s``: an eager-mode call whose kernels finish before the host has
issued them waits for the host (vLLM 0.14's Triton MLA tables on the A100: ~0.3 ms on every short row).

The op each row is is an integer code (``OP_*`` below), so one vectorised call serves a mixed table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError
from costmodel.kernels import (
    cache_bytes,
    compute_capability,
    context_attention,
    generation_attention,
    sm_count,
)
from costmodel.specs import HardwareProfile

FloatArray = npt.NDArray[np.float64]

OP_CONTEXT = 0
OP_GENERATION = 1
OP_BMM_PRE = 2
OP_BMM_POST = 3
OP_CONTEXT_MODULE = 4
OP_GENERATION_MODULE = 5
OPS = {
    "context": OP_CONTEXT,
    "generation": OP_GENERATION,
    "bmm_pre": OP_BMM_PRE,
    "bmm_post": OP_BMM_POST,
    "context_module": OP_CONTEXT_MODULE,
    "generation_module": OP_GENERATION_MODULE,
}
#: GEMM weight formats a module key may name after ``"/"`` (``"bf16/fp8_block"``), and the tensor peak
#: they run at. nvfp4 runs at the fp4 peak where the datasheet has one, else at the fp8 peak.
GEMM_DTYPES = {"bf16": ("bf16",), "fp8": ("fp8",), "fp8_block": ("fp8",), "nvfp4": ("fp4", "fp8")}
GEMM_WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0 + 4.0 / 128**2, "nvfp4": 0.5 + 1.0 / 16}
#: Small kernels per module call besides GEMMs and attention: q_a and kv_a norms, RoPE, cache write.
SMALL_KERNELS = 4


@dataclass(frozen=True)
class Params:
    """Named parameters of the MLA models for one (device, op, dtype key)."""

    peak_flop_per_s: float
    """Dense tensor-core peak of the attention compute dtype [FLOP/s] (datasheet)."""
    gemm_peak_flop_per_s: float
    """Dense tensor-core peak of the module GEMMs' dtype [FLOP/s] (datasheet)."""
    bandwidth_bytes_per_s: float
    """Datasheet memory bandwidth [bytes/s]."""
    sm_count: float
    """Streaming multiprocessors [-] (datasheet)."""
    cache_bytes: float = 0.0
    """On-chip L2 cache [bytes] (datasheet); 0 when unknown."""
    compute_fraction: float = 0.7
    """Achieved fraction of the attention compute peak [-]."""
    softmax_pairs_per_s: float = 3.9e12
    """Softmax throughput of prefill attention [(query, key) pairs / s]."""
    bandwidth_fraction: float = 0.8
    """Achieved fraction of the datasheet bandwidth [-]."""
    per_cta_bandwidth_fraction: float = 0.03
    """Bandwidth one decode CTA streams alone, as a fraction of the datasheet bandwidth [-]."""
    gemm_compute_fraction: float = 0.7
    """Achieved fraction of the GEMM peak in the module's projections and the absorb matmuls [-]."""
    launch_s: float = 5e-6
    """Fixed cost per call of the kernel (or of the first kernel of a module) [s]."""
    cta_overhead_s: float = 1e-6
    """Time one SM spends per CTA outside the main loop [s]."""
    module_kernel_s: float = 5e-6
    """Fixed cost of each further kernel of a module call [s]."""
    cache_bandwidth_ratio: float = 1.0
    """Streaming rate from L2 over the rate from HBM [-], for data that stays in L2 between calls of a
    repeated benchmark: the decode's latent cache where it fits (``generation_attention``'s rule), and the
    absorb matmuls' weights and activations where all heads' operands fit (:func:`gemm_time_s` with
    ``l2_resident``). A serving step runs other layers in between and prices both at 1
    (``costmodel.kernel_times``)."""
    heads_per_cta: float = 64.0
    """Query heads one absorbed decode CTA serves [-] (FlashMLA: 64, the rows of a Hopper wgmma tile;
    vLLM's Triton MLA decode: 16, its ``BLOCK_H``); each group of that many heads streams the latent
    cache again."""
    cta_overlap_fraction: float = 0.0
    """Fraction of the shorter of (streaming, per-CTA overhead) hidden under the longer in decode [-]
    (see ``generation_attention.Params``)."""
    max_splits: float = 64.0
    """Most split-K chunks of one sequence in decode [-]."""
    resident_ctas_per_sm: float = 64.0
    """Decode CTAs one SM holds at once [-] (see ``generation_attention.Params``)."""
    host_floor_s: float = 0.0
    """Host time to issue one call [s]: an eager-mode call whose kernels finish sooner waits for the
    host, so the call takes ``max(host_floor_s, device time)`` (0: the host keeps ahead, as under CUDA
    graphs). vLLM 0.14's Triton MLA on the A100 measures a ~0.3 ms floor on every row."""
    fill_splits: float = 1.0
    """How the decode kernel picks its split count [-]: 1, enough chunks to fill the SMs (FlashMLA's
    ``get_mla_metadata``, FlashInfer), at most ``max_splits``; 0, always ``max_splits`` whatever the
    batch (vLLM's Triton MLA decode, ``num_kv_splits = 4``). A property of the kernel, chosen by the fit's
    starting points, not moved by it."""
    single_head_rate_ratio: float = 1.0
    """Streaming rate of the decode kernel a one-head call runs, over the grouped kernel's, per CTA and
    in all [-]. vLLM's Triton decode attention takes its grouped kernel (tensor-core ``tl.dot`` over
    ``BLOCK_H`` heads) only when a KV head has more than one query head; MLA's one latent head with one
    query head (128 heads over tensor parallelism 128) runs the MHA kernel, whose CUDA-core dot products
    (``tl.sum`` over a 576-dim key padded to 1024) stream the latent several times slower
    (``decode_attention_fwd``, https://github.com/vllm-project/vllm/blob/main/vllm/attention/ops/triton_decode_attention.py).
    Fitted for the keys of ``SINGLE_HEAD_KERNELS`` only (1 elsewhere)."""
    low_latency_heads_per_cta: float = 0.0
    """Query heads per CTA of the decode kernel's low-latency variant [-], 0 where the kernel has none (a
    property of the kernel on the device, set by :func:`default_params` and never fitted, stored or pooled:
    :data:`KERNEL_PROPERTIES`). trtllm-gen's MLA decode on
    Blackwell (TensorRT-LLM's and FlashInfer's ``selectMlaGenerationKernel``) runs ``SwapsMmaAbForGeneration``
    with 16 heads per CTA, each CTA streaming the latent itself, when a KV head has at most 32 query heads
    or when ``batch x q x ceil(heads / 16)`` CTAs (q tokens a sequence) fit on the SMs with at most 1,024
    tokens per CTA after the split; otherwise ``KeepsMmaAbForGeneration``, 64 heads per CTA (128 heads: a
    2-CTA MMA pair), which streams the latent once a token. With this set, the decode's passes over the
    latent follow that rule instead of ``heads_per_cta``."""
    sibling_pass_fraction: float = 1.0
    """Share of each further head tile's pass over the latent that comes from HBM [-]: the low-latency
    kernel's CTAs of one sequence run together and read the same pages, so a sibling's re-read partly
    hits L2 (1: every pass from HBM). Fitted only where ``low_latency_heads_per_cta`` is set."""
    high_throughput_rate_ratio: float = 1.0
    """Streaming rate of trtllm-gen's high-throughput MLA decode kernel (``KeepsMmaAbForGeneration``, 64
    heads per CTA or a 2-CTA pair) over the low-latency kernel's, per CTA and in all [-]. Fitted only where
    ``low_latency_heads_per_cta`` is set: with an fp8 cache the B200 measures the 64 / 128-head kernel at
    5.6-5.8 TB/s where the 16-head one streams 6.8 TB/s (bf16: both ~5.9)."""


SINGLE_HEAD_KERNELS = ("vllm.vllm_triton_mla:gen",)
"""Key prefixes of MLA decode kernels that switch to another kernel for one query head
(``single_head_rate_ratio``): vLLM's Triton MLA. FlashMLA and FlashInfer's MLA run one kernel for every
head count."""

TRTLLM_GEN_MLA_KERNELS = ("trtllm.default:gen", "vllm.FLASHINFER_MLA:gen")
"""Key prefixes whose decode kernel is trtllm-gen's MLA kernel on Blackwell (compute capability 10.x):
TensorRT-LLM's default attention backend (``AttentionOp::mlaGeneration``, ``mUseTllmGen``) and vLLM's
FlashInfer MLA backend (``trtllm_batch_decode_with_kv_cache_mla``). On Hopper TensorRT-LLM runs FlashMLA
instead (``mUseGenFlashMLA``), which has no low-latency variant."""
TRTLLM_GEN_ONLY = ("sibling_pass_fraction", "high_throughput_rate_ratio")
"""Parameters of trtllm-gen's two MLA decode kernels, fitted only where a key runs them
(``TRTLLM_GEN_MLA_KERNELS`` keys on Blackwell: :func:`fixed_for`)."""
KERNEL_PROPERTIES: tuple[str, ...] = ("low_latency_heads_per_cta",)
"""Fields that describe the kernel a key runs on a device, not a fit: :func:`costmodel.kernels.params_for`
always takes them from :func:`default_params` (a stored or pooled value never replaces them: another key's 16
would give vLLM's CUTLASS MLA or FlashMLA on the B200 trtllm-gen's low-latency variant by fallback), and
``costmodel.calibrate`` does not store them."""
LOW_LATENCY_HEADS_PER_CTA = 16.0
"""``tileSizeQ`` of trtllm-gen's ``SwapsMmaAbForGeneration`` MLA decode kernel for more than 8 heads
(TensorRT-LLM ``cpp/tensorrt_llm/kernels/trtllmGenKernels/fmha/fmhaKernels.h``, ``selectMlaGenerationKernel``;
8 for at most 8 heads, still one CTA per sequence there)."""
LOW_LATENCY_MAX_HEADS = 32.0
"""Heads per KV head up to which trtllm-gen always takes the low-latency MLA decode kernel."""
LOW_LATENCY_STEP_KV = 256.0
"""KV tokens per step ``useSwapsMmaAbMlaGenKernel`` assumes when it splits a sequence over CTAs."""
LOW_LATENCY_MAX_TOKENS_PER_CTA = 1024.0
"""Most KV tokens per CTA (after the split) with which trtllm-gen takes the low-latency kernel above 32
heads."""
HIGH_THROUGHPUT_PAIR_HEADS = 128.0
"""Heads per KV head at which trtllm-gen's high-throughput MLA decode runs as a 2-CTA MMA pair
(``mUses2CtaMma`` where ``mNumHeadsQPerKv == 128``, each CTA 256 of the 512 value dims; ``fmhaKernels.h``,
``hashFromRunnerParams``)."""
HIGH_THROUGHPUT_PAIR_CTAS = 2.0
"""CTAs of that pair per sequence before the KV split (``numCtasX *= 2`` in ``computeNumCtas``, whose
``numCtasPerSeqKv = min(ceil(kv / stepKv), max(1, SMs / (numCtasX x numCtasY x batch)))`` follows)."""


TRITON_MLA_DECODE_GRID: dict[str, float] = {
    "max_splits": 4.0,
    "heads_per_cta": 16.0,
    "resident_ctas_per_sm": 1.0,
}
"""vLLM's Triton MLA decode grid, fixed by its source rather than fitted: ``num_kv_splits = 4`` whatever the
batch (``triton_mla.py``), ``BLOCK_H = 16`` heads per program (``_decode_grouped_att_m_fwd`` in
https://github.com/vllm-project/vllm/blob/main/vllm/attention/ops/triton_decode_attention.py), and one
program per SM: its 32-token tile of the 576-wide latent (``BLOCK = 32``, ``BLOCK_DMODEL`` 512 +
``BLOCK_DPE`` 64, bf16) over ``num_stages = 2`` plus the 16-head query tile take about 90 KB of shared
memory, more than half of an A100 SM's 164 KB. Fitted freely they settled at 2.5 splits, 12.8 heads and
9.7 resident programs, which put the second wave of batch 32 (4 splits x 32 sequences = 128 programs on 108
SMs) a batch later than the kernel does."""


def fixed_for(key: str, hardware: HardwareProfile | None = None) -> tuple[str, ...]:
    """Parameters a fit must not move for ``key`` (on ``hardware`` where given): ``single_head_rate_ratio``
    outside ``SINGLE_HEAD_KERNELS``; vLLM's Triton MLA decode grid (:data:`TRITON_MLA_DECODE_GRID`, the values
    of :func:`initial_guesses`' fixed-split corners) for its keys; :data:`TRTLLM_GEN_ONLY` where the key does
    not run trtllm-gen's MLA decode: outside ``TRTLLM_GEN_MLA_KERNELS``, and on a device other than Blackwell
    (TensorRT-LLM's default backend runs FlashMLA on Hopper)."""
    if key.startswith(SINGLE_HEAD_KERNELS):
        return (*TRITON_MLA_DECODE_GRID, *TRTLLM_GEN_ONLY)
    trtllm_gen = _runs_trtllm_gen(hardware, key) if hardware else key.startswith(TRTLLM_GEN_MLA_KERNELS)
    if trtllm_gen:
        return ("single_head_rate_ratio",)
    return ("single_head_rate_ratio", *TRTLLM_GEN_ONLY)


BOUNDS: dict[str, tuple[float, float]] = {
    "compute_fraction": (0.02, 1.0),
    "softmax_pairs_per_s": (1e11, 1e15),
    "bandwidth_fraction": (0.05, 1.0),
    "per_cta_bandwidth_fraction": (1e-4, 1.0),
    "gemm_compute_fraction": (0.02, 1.0),
    "launch_s": (1e-7, 5e-4),
    "cta_overhead_s": (0.0, 1e-4),
    "module_kernel_s": (0.0, 1e-4),
    "cache_bandwidth_ratio": (1.0, 10.0),
    "heads_per_cta": (1.0, 128.0),
    "cta_overlap_fraction": (0.0, 1.0),
    "max_splits": (1.0, 256.0),
    "resident_ctas_per_sm": (1.0, 64.0),
    "host_floor_s": (0.0, 1e-3),
    "single_head_rate_ratio": (0.01, 1.0),
    "sibling_pass_fraction": (0.0, 1.0),
    "high_throughput_rate_ratio": (0.2, 2.0),
}


def gemm_dtype(key: str) -> str:
    """The GEMM weight format a key names after ``"/"`` (default bf16): ``"x:bf16/nvfp4"`` -> nvfp4."""
    name = key.rsplit("/", 1)[1] if "/" in key else "bf16"
    if name not in GEMM_DTYPES:
        raise CostmodelError(
            f"MLA dtype key {key!r}: GEMM format {name!r} is not one of {', '.join(GEMM_DTYPES)}"
        )
    return name


def default_params(hardware: HardwareProfile, dtype: str) -> Params:
    """Datasheet-only parameters (see ``context_attention.default_params`` for the softmax default)."""
    attention_key = dtype.rsplit("/", 1)[0]
    gemm = gemm_dtype(dtype)
    peak_name = next((d for d in GEMM_DTYPES[gemm] if d in hardware.compute_dtypes), GEMM_DTYPES[gemm][-1])
    base = context_attention.default_params(hardware, attention_key)
    return Params(
        peak_flop_per_s=base.peak_flop_per_s,
        gemm_peak_flop_per_s=hardware.peak_flop_per_s(peak_name),
        bandwidth_bytes_per_s=hardware.memory_bandwidth_bytes_per_s,
        sm_count=sm_count(hardware),
        cache_bytes=cache_bytes(hardware),
        compute_fraction=base.compute_fraction,
        softmax_pairs_per_s=base.softmax_pairs_per_s,
        bandwidth_fraction=base.bandwidth_fraction,
        per_cta_bandwidth_fraction=min(1.0, 4.0 / sm_count(hardware)),
        # the unfitted share of the GEMM peak used (an fp4 peak: the measured sustained fp4 share)
        gemm_compute_fraction=hardware.default_matmul_fraction(peak_name),
        launch_s=base.launch_s,
        module_kernel_s=base.launch_s,
        low_latency_heads_per_cta=LOW_LATENCY_HEADS_PER_CTA if _runs_trtllm_gen(hardware, dtype) else 0.0,
    )


def _runs_trtllm_gen(hardware: HardwareProfile, key: str) -> bool:
    """Whether ``key``'s decode kernel is trtllm-gen's MLA kernel on ``hardware`` (a Blackwell datacenter
    GPU, compute capability 10.x, and a key of :data:`TRTLLM_GEN_MLA_KERNELS`)."""
    capability = compute_capability(hardware)
    return capability is not None and capability.startswith("10.") and key.startswith(TRTLLM_GEN_MLA_KERNELS)


def initial_guesses(hardware: HardwareProfile, dtype: str) -> list[Params]:
    """Starting points of a fit: the defaults, and for decode keys each split rule (``fill_splits``, which
    the fit does not move) with one or many resident CTAs per SM, 16 or 64 heads per CTA and the
    per-CTA overhead hidden or not (the model is piecewise in all four)."""
    start = default_params(hardware, dtype)
    floors = [dataclasses.replace(start, host_floor_s=floor) for floor in (0.0, 1e-4)]
    if ":gen:" not in f":{dtype}":
        return floors
    return [
        dataclasses.replace(
            floor,
            fill_splits=fill,
            max_splits=64.0 if fill else TRITON_MLA_DECODE_GRID["max_splits"],
            resident_ctas_per_sm=TRITON_MLA_DECODE_GRID["resident_ctas_per_sm"],
            heads_per_cta=64.0 if fill else TRITON_MLA_DECODE_GRID["heads_per_cta"],
            cta_overlap_fraction=0.5,
        )
        for fill in (0.0, 1.0)
        for floor in floors
    ]


def _context_params(params: Params) -> context_attention.Params:
    return context_attention.Params(
        peak_flop_per_s=params.peak_flop_per_s,
        bandwidth_bytes_per_s=params.bandwidth_bytes_per_s,
        sm_count=params.sm_count,
        compute_fraction=params.compute_fraction,
        softmax_pairs_per_s=params.softmax_pairs_per_s,
        bandwidth_fraction=params.bandwidth_fraction,
        launch_s=params.launch_s,
        cta_overhead_s=params.cta_overhead_s,
    )


def _generation_params(params: Params) -> generation_attention.Params:
    return generation_attention.Params(
        peak_flop_per_s=params.peak_flop_per_s,
        bandwidth_bytes_per_s=params.bandwidth_bytes_per_s,
        sm_count=params.sm_count,
        cache_bytes=params.cache_bytes,
        cache_bandwidth_ratio=params.cache_bandwidth_ratio,
        bandwidth_fraction=params.bandwidth_fraction,
        per_cta_bandwidth_fraction=params.per_cta_bandwidth_fraction,
        max_splits=params.max_splits,
        compute_fraction=params.compute_fraction,
        launch_s=params.launch_s,
        cta_overhead_s=params.cta_overhead_s,
        cta_overlap_fraction=params.cta_overlap_fraction,
        resident_ctas_per_sm=params.resident_ctas_per_sm,
    )


def _streaming_at(gen: generation_attention.Params, ratio: float) -> generation_attention.Params:
    """``gen`` with both its streaming fractions scaled by ``ratio``: another decode kernel of the same
    key that streams the latent cache at ``ratio`` times the rate (a head-tile or single-head variant)."""
    return dataclasses.replace(
        gen,
        bandwidth_fraction=gen.bandwidth_fraction * ratio,
        per_cta_bandwidth_fraction=gen.per_cta_bandwidth_fraction * ratio,
    )


def gemm_bytes(m: FloatArray, k: npt.ArrayLike, n: npt.ArrayLike, weight_bytes: npt.ArrayLike) -> FloatArray:
    """Bytes one ``[m, k] x [k, n]`` GEMM moves [bytes]: its weights once, bf16 activations in and out."""
    kk = np.asarray(k, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    weights = kk * nn * np.asarray(weight_bytes, dtype=np.float64)
    return np.asarray(weights + m * (kk + nn) * 2.0, dtype=np.float64)


def gemm_time_s(
    params: Params,
    m: FloatArray,
    k: npt.ArrayLike,
    n: npt.ArrayLike,
    weight_bytes: npt.ArrayLike,
    count: npt.ArrayLike = 1.0,
    l2_resident: bool = False,
) -> FloatArray:
    """Roofline time of ``count`` independent ``[m, k] x [k, n]`` GEMMs with bf16 activations [s] (a
    batched matmul over ``count`` heads), without a launch cost. With ``l2_resident``, where all ``count``
    GEMMs' bytes (:func:`gemm_bytes`) fit in L2 (``cache_bytes``) they stay there between calls of a
    repeated benchmark and stream at ``cache_bandwidth_ratio`` times the achieved HBM rate."""
    kk = np.asarray(k, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    many = np.asarray(count, dtype=np.float64)
    flop = many * 2.0 * m * kk * nn
    moved = many * gemm_bytes(m, kk, nn, weight_bytes)
    hbm = params.bandwidth_bytes_per_s * params.bandwidth_fraction
    in_l2 = l2_resident & (moved <= params.cache_bytes)
    rate = np.where(in_l2, hbm * params.cache_bandwidth_ratio, hbm)
    return np.asarray(
        np.maximum(flop / (params.gemm_peak_flop_per_s * params.gemm_compute_fraction), moved / rate),
        dtype=np.float64,
    )


def low_latency_passes(
    params: Params,
    batch: FloatArray,
    kv_len: FloatArray,
    heads: FloatArray,
    query_len: npt.ArrayLike = 1.0,
    sparse: bool = False,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Passes over the latent cache of trtllm-gen's MLA decode [-]: ``ceil(heads / 16)`` where it takes the
    low-latency kernel (one CTA per 16 heads, each streaming the latent; the passes after the first at
    ``sibling_pass_fraction``), else 1 (the 64-head tile, or the 2-CTA pair at 128 heads, whose two CTAs
    share one pass). The choice of ``selectMlaGenerationKernel`` / ``useSwapsMmaAbMlaGenKernel``: at most 32
    heads, or a top-k sparse MLA (``sparse``, the source's ``mSparseMla``) below 128 heads, or ``batch x
    ceil(heads / 16)`` CTAs within the SMs with each sequence split into ``min(ceil(kv / 256), max(1,
    floor(SMs / CTAs)))`` chunks of at most 1,024 tokens (at least one chunk: an empty cache still takes one
    CTA). Also returns the CTAs per sequence before the split and where the low-latency kernel runs. The
    CTAs per sequence are the head tiles for the low-latency kernel, 1 for the 64-head tile, and
    :data:`HIGH_THROUGHPUT_PAIR_CTAS` at :data:`HIGH_THROUGHPUT_PAIR_HEADS` heads: the 2-CTA MMA pair takes
    two CTAs in the grid's x dimension (``numCtasX *= 2`` in ``computeNumCtas``) before the KV split divides
    the SMs among them, so the pair halves the split count the kernel picks. The source's 8-head tile at
    most 8 heads (``tileSizeQ = 8``) is one tile as the 16-head one is, so it is not told apart.

    ``query_len`` q (a speculative verification's 1 + k tokens a sequence) multiplies the work, never the
    choice: the kernel and its head tile follow the heads and the sparse flag (``mNumHeadsQPerKv <= 32 ||
    (mSparseMla && mNumHeadsQPerKv < 128)``, ``mNumHeadsQPerKv == 128``), while the CTA count of the
    low-latency test is ``batch x q x ceil(heads / 16)`` (``mBatchSize * mMaxSeqLenQ *
    ceil_div(mNumHeadsQPerKv, 16)`` in ``useSwapsMmaAbMlaGenKernel``).
    A tile holds one token's heads (16 or 64 of at least as many heads; the pair 128), so each of the q
    tokens runs its own CTAs over the sequence's latent (``numCtasPerSeqQ = mMaxSeqLenQ`` for a generation
    kernel that does not group tokens with heads, ``computeCtaAndClusterConfig``): q times the CTAs a
    sequence, and the passes after the first (the other tokens' and tiles') at ``sibling_pass_fraction``.
    FlashInfer ``include/flashinfer/trtllm/fmha/fmhaKernels.cuh``
    (https://github.com/flashinfer-ai/flashinfer), TensorRT-LLM's ``fmhaKernels.h`` alike. q = 1 is the
    plain decode, bit for bit."""
    q = np.asarray(query_len, dtype=np.float64)
    tiles = np.ceil(heads / params.low_latency_heads_per_cta)
    ctas = batch * q * tiles
    chunks = np.minimum(
        np.maximum(1.0, np.ceil(kv_len / LOW_LATENCY_STEP_KV)),
        np.maximum(1.0, np.floor(params.sm_count / np.maximum(ctas, 1.0))),
    )
    fits = (ctas <= params.sm_count) & (np.ceil(kv_len / chunks) <= LOW_LATENCY_MAX_TOKENS_PER_CTA)
    low_latency = (heads <= LOW_LATENCY_MAX_HEADS) | (sparse & (heads < HIGH_THROUGHPUT_PAIR_HEADS)) | fits
    tiles = np.maximum(tiles, 1.0)
    # streaming units a sequence: each token's head tiles (low latency), or each token's one tile / pair
    units = q * np.where(low_latency, tiles, 1.0)
    passes = 1.0 + params.sibling_pass_fraction * (units - 1.0)
    high_throughput_ctas = np.where(heads == HIGH_THROUGHPUT_PAIR_HEADS, HIGH_THROUGHPUT_PAIR_CTAS, 1.0)
    ctas_per_sequence = q * np.where(low_latency, tiles, high_throughput_ctas)
    return (
        np.asarray(passes, dtype=np.float64),
        np.asarray(ctas_per_sequence, dtype=np.float64),
        np.asarray(low_latency, dtype=bool),
    )


def time_s(
    hardware: HardwareProfile,
    params: Params,
    *,
    op: npt.ArrayLike,
    batch_size: npt.ArrayLike,
    seq_len: npt.ArrayLike,
    n_heads: npt.ArrayLike,
    kv_bytes: npt.ArrayLike = 2.0,
    weight_bytes: npt.ArrayLike = 2.0,
    absorbed: npt.ArrayLike = True,
    query_len: npt.ArrayLike = 1.0,
    sparse: bool = False,
    d_model: float = 7168.0,
    q_lora_rank: float = 1536.0,
    kv_lora_rank: float = 512.0,
    qk_nope_head_dim: float = 128.0,
    qk_rope_head_dim: float = 64.0,
    v_head_dim: float = 128.0,
) -> FloatArray:
    """MLA kernel or module time [s].

    Parameters
    ----------
    op : ``OP_*`` code per row.
    batch_size : sequences [-] (for the absorb matmuls: tokens, with ``seq_len`` 1).
    seq_len : prompt tokens (context ops) or cached tokens incl. the new one (generation ops) [tokens].
    n_heads : query heads on this device [-] (128 / tensor-parallel degree for DeepSeek-V3).
    kv_bytes : bytes per cached latent element [bytes]; ``weight_bytes`` per GEMM weight [bytes].
    absorbed : decode in the absorbed form (default) or the naive one.
    query_len : new tokens a sequence in one generation call (1 + k for a verification of k drafts) [-]: the
        decode runs ``n_heads x query_len`` query rows over the sequence's one latent cache; the head count
        alone chooses trtllm-gen's kernel (:func:`low_latency_passes`).
    sparse : a top-k sparse MLA decode (trtllm-gen's ``mSparseMla``), which takes the low-latency kernel below
        128 heads.
    d_model ... v_head_dim : the model's MLA dimensions (defaults: DeepSeek-V3).
    """
    code = np.asarray(op)
    b = np.asarray(batch_size, dtype=np.float64)
    s = np.asarray(seq_len, dtype=np.float64)
    h = np.asarray(n_heads, dtype=np.float64)
    q_len = np.asarray(query_len, dtype=np.float64)
    rows = h * q_len  # query rows a sequence: FlashMLA's seqlen_q x heads
    qk_dim = qk_nope_head_dim + qk_rope_head_dim
    latent = kv_lora_rank + qk_rope_head_dim
    is_context = (code == OP_CONTEXT) | (code == OP_CONTEXT_MODULE)

    context_s = context_attention.time_s(
        hardware,
        _context_params(params),
        batch_size=b,
        seq_len=s,
        n_heads=h,
        n_kv_heads=h,
        head_dim=qk_dim,
        v_head_dim=v_head_dim,
        kv_bytes=kv_bytes,
    )
    gen = _generation_params(params)
    # each group of heads_per_cta heads streams the latent cache once (continuous so a fit can find it)
    passes = np.maximum(1.0, rows / params.heads_per_cta)
    ctas_per_sequence = passes
    high_throughput = np.zeros(np.broadcast(b, s, rows).shape, dtype=bool)
    if params.low_latency_heads_per_cta > 0.0:
        passes, ctas_per_sequence, low_latency = low_latency_passes(params, b, s, h, q_len, sparse)
        high_throughput = ~low_latency
    kvb = np.asarray(kv_bytes, dtype=np.float64)
    # every head's query (576 dims, quantized like the cache) is read and its 512-dim output written in bf16
    # once per sequence: the traffic that grows with heads at short caches
    query_output_bytes = b * rows * (latent * kvb + kv_lora_rank * 2.0)
    stream = dict(
        total_bytes=b * s * latent * kvb * passes + query_output_bytes,
        flop=2.0 * b * rows * s * (latent + kv_lora_rank),
        ctas_unsplit=b * ctas_per_sequence,
        kv_len=s,
        fixed_splits=params.fill_splits < 0.5,
        # trtllm-gen splits each sequence into as many chunks as fit in one wave (floor), not ceil
        floor_fill=params.low_latency_heads_per_cta > 0.0,
    )
    absorbed_s = generation_attention.stream_time_s(gen, **stream)  # type: ignore[arg-type]
    if params.high_throughput_rate_ratio != 1.0 and np.any(high_throughput):  # trtllm-gen's 64-head kernel
        tile = _streaming_at(gen, params.high_throughput_rate_ratio)
        tile_s = generation_attention.stream_time_s(tile, **stream)  # type: ignore[arg-type]
        absorbed_s = np.where(high_throughput, tile_s, absorbed_s)
    if params.single_head_rate_ratio != 1.0:  # one query head: the kernel without head groups
        single = _streaming_at(gen, params.single_head_rate_ratio)
        single_s = generation_attention.stream_time_s(single, **stream)  # type: ignore[arg-type]
        absorbed_s = np.where(h <= 1.0, single_s, absorbed_s)
    naive_s = generation_attention.time_s(
        hardware,
        gen,
        batch_size=b,
        kv_len=s,
        n_heads=rows,
        n_kv_heads=rows,
        head_dim=qk_dim,
        v_head_dim=v_head_dim,
        kv_bytes=kv_bytes,
    )
    generation_s = np.where(np.asarray(absorbed, dtype=bool), absorbed_s, naive_s)

    tokens = np.where(is_context, b * s, b)
    # the absorb matmuls over h heads, named, not told apart by size (v_head_dim may equal kv_lora_rank)
    absorb = {
        name: gemm_time_s(params, tokens, k, n, weight_bytes, count=h, l2_resident=True)
        for name, (k, n) in (("pre", (qk_nope_head_dim, kv_lora_rank)), ("post", (kv_lora_rank, v_head_dim)))
    }
    bmm_pre_s, bmm_post_s = absorb["pre"], absorb["post"]

    w = weight_bytes
    projections_s = (
        gemm_time_s(params, tokens, d_model, q_lora_rank + latent, w)
        + gemm_time_s(params, tokens, q_lora_rank, h * qk_dim, w)
        + gemm_time_s(params, tokens, h * v_head_dim, d_model, w)
    )
    kv_b_s = gemm_time_s(params, tokens, kv_lora_rank, h * (qk_nope_head_dim + v_head_dim), w)
    context_module_s = projections_s + kv_b_s + context_s + (3 + SMALL_KERNELS) * params.module_kernel_s
    generation_module_s = (
        projections_s + bmm_pre_s + bmm_post_s + generation_s + (4 + SMALL_KERNELS) * params.module_kernel_s
    )
    device_s = np.asarray(
        np.select(
            [
                code == OP_CONTEXT,
                code == OP_GENERATION,
                code == OP_BMM_PRE,
                code == OP_BMM_POST,
                code == OP_CONTEXT_MODULE,
            ],
            [
                context_s,
                generation_s,
                params.launch_s + bmm_pre_s,
                params.launch_s + bmm_post_s,
                context_module_s,
            ],
            default=generation_module_s,
        ),
        dtype=np.float64,
    )
    return np.asarray(np.maximum(device_s, params.host_floor_s), dtype=np.float64)
