"""Time of one fused mixture-of-experts layer (routing, grouped expert GEMMs, combine) on one GPU.

The layer is modelled as the grouped GEMMs of the experts its tokens touch on the measured GPU:

    t = launch_s + expert_map_s x [ep > 1]
        + per_expert_s x n_touched + per_local_expert_s x E/ep + per_token_s x T
        + fallback_routing_s x [k or E beyond the engine's fused routing kernel, ROUTING_KERNEL_LIMITS]
        + per_routed_pair_s x T k
        + per_pair_s x pairs
        + group_switch_s x switches            (CUTLASS grouped GEMMs' TMA descriptor updates: group_switches)
        + (t_memory^p + t_compute^p)^(1/p)
        + dequant_elements x dequant_s_per_element               (weight-only formats only)
    t_memory = config x misaligned_memory x ((up_bytes / fill_up + down_bytes / fill_down + 2 bytes x 2 T H)
                                                 x c(hit_weights)
                                             + sum over j of 2 x 2 bytes x rows x w_j x c(hit_j))
               / (bandwidth x bandwidth_fraction),      c(hit) = 1 - hit + hit / cache_speedup
    fill = min(1, n_touched x max(1, columns / stream_tile_n) / SMs)   (up: (m - 1) I/tp columns, down: H)
    activation_bytes = 2 bytes x (2 T H + 2 x rows x (m I/tp + H))
    rows = pairs + routed_pair_fraction x (T k - pairs)
    hit(S) = 1 / (1 + (S / (cache_fraction x on-chip cache))^cache_sharpness)
    hit_weights = hit(weight_bytes + activation_bytes / 2)
    hit_j = hit(d_j + intermediate_weight_share x weight_bytes), the three intermediates j (width w_j per
            row, producer -> consumer reuse distance d_j): gate/up output ((m - 1) I/tp; d = 2 bytes x
            rows x m I/tp), activation (I/tp; d = 2 bytes x rows x (I/tp + H)), down output (H;
            d = 2 bytes x (rows + T) H)
    t_compute = config x misaligned_compute x FLOP x (1 + tile_overhead_k x ((m - 1) / H + 1 / (I/tp)) / m)
                x (1 + compute_fill_share x (compute_fill_ratio - 1)) / (peak x compute_fraction)
    compute_fill_ratio = the FLOP-weighted mean of 1 / min(1, output tiles / SMs) over the up and down GEMMs
                         (tiles: touched experts x ceil(rows per expert / tile) x ceil(N / 128))
    config = default_config_ratio where the call runs a default launch configuration's large-batch tiles
             (not tuned_config and T > E/ep), else 1
    misaligned_* = misaligned_*_ratio where I/tp is not a multiple of ALIGNMENT_ELEMENTS (16), else 1
    FLOP = 2 m H I/tp x max(pairs + imbalance_fraction (n_touched x busiest - pairs),
                            n_touched x tile)
    tile = max(tile_m_tokens, local_tile_share x local_share_tile(T, k, E, ep))

where, for the GPU that holds ``E / ep`` experts, each of ``I / tp`` intermediate width:

- ``n_touched`` experts of that GPU receive at least one token (see ``routing_load``); only their weights
  stream from memory, ``n_touched x m x H x I/tp`` elements with ``m = 3`` matrices for a gated (SwiGLU)
  expert (gate, up, down) and ``m = 2`` for a non-gated one (up, down);
- ``pairs`` token-expert pairs land on that GPU; a grouped GEMM pads each expert's rows up to its M tile,
  so each touched expert costs at least ``tile_m_tokens`` rows, or the per-call tile a trtllm-gen runner
  picks from the rows per *held* expert (``local_tile_share``, :func:`local_share_tile`); and it does not
  spread the busiest expert's rows over the GPU as evenly as the total, so a share ``imbalance_fraction``
  of the work scales with ``n_touched x busiest`` (every expert as loaded as the busiest) instead of
  ``pairs``;
- the compute peak is the datasheet's dense tensor peak of the format's compute dtype (bf16 for bf16 and
  weight-only formats, fp8 for fp8 / fp8_block / mxfp8 activations, fp4 for nvfp4);
- weight-only formats (int4 / mxfp4 weights with bf16 activations, e.g. Marlin) also dequantize the touched
  experts' weights: the cost counts touched experts only, never all of them.

Every expert the GPU holds, touched or not: ``per_local_expert_s`` per expert of ``E / ep``. A grouped GEMM
whose persistent CTAs find their tiles by walking the group list pays for every group in it, empty ones
included: the block-scaled grouped GEMM of TensorRT-LLM's fp8 block-scale MoE (DeepGEMM's schedulers,
ported into TensorRT-LLM; e.g. ``GroupedWithOffsetScheduler::get_next_block`` in the copy vendored by ONNX
Runtime, ``onnxruntime/contrib_ops/cuda/llm/deep_gemm/scheduler.cuh``,
https://github.com/microsoft/onnxruntime) loops over the groups until the last one, two dependent
``__ldg`` loads of the group's row offsets per group, and every CTA runs that loop to its end before it
stops. H100 TensorRT-LLM fp8_block, one or two tokens: measured 0.20-0.24 µs more than the model without
this term per expert held, from 64 to 512 experts per GPU and whatever the expert's size (hidden 2048-7168,
width 128-8192); B200 DeepGEMM the same; bf16 / fp8 CUTLASS under 0.02 µs.

``per_token_s`` and ``per_routed_pair_s`` charge the routing, which runs on every GPU over the whole
batch whatever the expert split (a top-k over the router logits of every token, then sorting all ``T k``
expert ids into expert blocks, e.g. vLLM's ``moe_align_block_size``); ``per_pair_s`` the permutation of
this GPU's token-expert pairs into expert order and their weighted combine back. ``p`` (the
``overlap_exponent``) says how well weight streaming hides under compute: ``p = 1`` adds them, a large
``p`` is the roofline's max.

SM fill, ``fill``: with few rows per expert a grouped GEMM streams weights, one CTA per output tile of
``stream_tile_n`` columns walking the whole reduction dimension; the up GEMM of a few narrow experts (high
TP: ``I/tp`` of 24-64 columns) has fewer such tiles than the GPU has SMs, so only that many SMs pull weights
and the stream runs at that share of the full rate (the GEMM model's tiles over the SMs,
:mod:`costmodel.kernels.gemm`, without split-K: the grouped MoE GEMMs do not split the reduction). B200
TRT-LLM bf16, 3072 x 1024 experts, top-8, TP 32, one token: 44 µs where the full-rate stream of 3 MB of
weights and the launch give 29 µs.

Intermediates: each routed row's gate/up output (``(m - 1) I/tp`` wide), its activation (``I/tp``) and
its down-projection output (``H``) are written once and read once by the next kernel (the combine reads
the last). ``rows`` are the token-expert pairs whose intermediates this GPU holds: its own ``pairs``, plus
the share ``routed_pair_fraction`` of the batch's other pairs that a kernel keeps a row for even though
their expert lives on another GPU. vLLM's ``fused_experts`` with an ``expert_map`` does exactly that: its
intermediate caches are ``T x k`` rows, and the Triton kernel writes zeros for every block whose expert is
not local (``write_zeros_to_output`` in vLLM's ``fused_moe.py``, above); so at large batches its time no
longer falls with EP (L40S fp8, 128 experts, top-8, 16,384 tokens: 5.9 ms at EP 1, 4.5 ms at EP 128 where
the local work is 1/128). Kernels that compact the routed rows first (TensorRT-LLM's permute) have a
fraction near 0.

Cache (L2) residency, ``hit``: a benchmark (and a decode loop) runs the same layer again and again, so a
call's working set (the touched experts' weights and the distinct intermediate bytes) that fits in the
on-chip L2 cache stays there and streams at ``cache_speedup`` times the HBM rate. A cyclic sweep over more
bytes than a least-recently-used cache holds evicts every line before its reuse, so the hit rate falls
from ~1 to ~0 around the capacity rather than in proportion (Mattson et al. 1970, "Evaluation techniques
for storage hierarchies", https://doi.org/10.1147/sj.92.0078: LRU hit ratio as a function of reuse
distance). The logistic step of exponent ``cache_sharpness`` around ``cache_fraction`` of the datasheet's
L2 is that cliff, smoothed (L40S, 96 MiB of L2, fp8 experts of 3 x 2048 x 768: 16 experts, 75 MB, stream
in 33 µs, 32 experts, 151 MB, in 242 µs, HBM speed). ``cache_fraction`` is the part of the L2 a call keeps.
The weights are reused from one call to the next, so their reuse distance is the whole call's working set;
each intermediate is written by one kernel of the call and read by the next (gate/up GEMM -> activation ->
down GEMM -> combine), so its reuse distance is the intermediates' own bytes plus the weights streamed
between the write and the read (``intermediate_weight_share`` of them: 1 is one hit rate for the whole
call, 0 none of the weights), and a batch whose intermediates fit keeps them in the L2 even where the
touched experts' weights do not (L40S fp8, Mixtral
8x7B experts at TP 8, 176 MB of weights per call: 1,024 tokens, 38 MB of intermediates, measured 0.39 ms,
where one hit rate for the whole call, none since the weights overflow, predicted 0.50 ms; 4,096 tokens,
154 MB of intermediates, pay the memory's rate).

Launch configuration and alignment. vLLM's Triton fused_moe takes its tiles from a tuned file per
(experts per GPU, width per GPU, device, format) where vLLM ships one, else from ``get_default_config``:
64 x 64 x 32 tiles when the call has more tokens than the GPU has experts (16 x 32 x 64 otherwise, the
small-M tile tuning also picks), which runs the grouped GEMM ``default_config_ratio`` times slower
(:mod:`costmodel.kernels.moe_configs` says which files exist; A100, Mixtral 8x7B experts: TP 2-8, which
have files, ran 40-60 % faster than the single-ratio model fitted to the others predicted; TP 1 and 16-32,
which have none, within 5 %). An expert width ``I/tp`` that is not a multiple of 16 elements loses the
compiler's alignment specialization (see ``ALIGNMENT_ELEMENTS``) and streams and computes
``misaligned_memory_ratio`` / ``misaligned_compute_ratio`` times slower (H100 bf16, 128 experts of
2048 x 768 at TP 32, 24 columns: 2.2 x its aligned neighbours at TP 16).

Small batches stream weights (memory bound: time grows with the touched experts, not the tokens); large
batches are compute bound at the achieved fraction of the format's peak (Williams, Waterman & Patterson
2009, "Roofline", https://doi.org/10.1145/1498765.1498785). The grouped-GEMM formulation follows
MegaBlocks (Gale et al. 2023, https://arxiv.org/abs/2211.15841) and vLLM's fused_moe kernel, which pads
each expert's token block to ``BLOCK_SIZE_M`` (``moe_align_block_size``,
https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/fused_moe/fused_moe.py).

Routing. ``routing`` names how tokens pick experts:

- ``"balanced"``: every expert gets ``T k / E`` pairs (round-robin); ``min(E, T k)`` experts touched.
- ``"uniform"``: each token draws ``k`` distinct experts uniformly at random; the expected number touched
  is ``E (1 - (1 - k/E)^T)`` (occupancy, Feller 1968, vol. 1, ch. IV).
- ``"power_law_<alpha>"``: expert loads proportional to draws of a truncated power law ``x^-alpha``
  (NVIDIA aiconfigurator's MoE collector, ``collector/helper.py``, and its ``docs/power_law.md``,
  https://github.com/ai-dynamo/aiconfigurator): on ``[1, 0.8 T]`` when ``T k > E`` else on
  ``[0.01, 2]``, scaled to ``T k`` pairs, rounded, clamped at ``T`` per expert and fixed up to the exact
  sum; with expert parallelism the busiest group of ``E / ep`` experts is the one measured, since the
  slowest GPU sets the layer's time. ``power_law_load`` takes the expectation of that process over seeded
  draws (see its docstring); ``"power_law_legacy_<alpha>"`` is the collector's earlier fix-up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError, UnknownNameError
from costmodel.kernels import cache_bytes
from costmodel.specs import HardwareProfile

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MoEFormat:
    """A MoE weight/activation format: storage bits per weight (scales included) and compute dtype."""

    name: str
    weight_bits: float
    compute_dtype: str
    weight_only: bool
    source: str
    local_tile_max_tokens: float = 256.0
    """Largest token (M) tile of the trtllm-gen MoE runners for this format's activations [tokens]: the
    top of the power-of-two ladder FlashInfer's launchers pick from (``mSupportedTileNums`` /
    ``getSupportedTileNums`` in ``csrc/trtllm_fused_moe_kernel_launcher.cu``,
    https://github.com/flashinfer-ai/flashinfer): 128 for bf16, fp8 per-tensor and DeepSeek fp8 block
    scales, 64 for MXFP4 weights with bf16 activations, 256 for nvfp4 and MXFP8 activations."""


FORMATS: Final[dict[str, MoEFormat]] = {
    f.name: f
    for f in (
        MoEFormat("bf16", 16.0, "bf16", False, "plain bfloat16", 128.0),
        MoEFormat("fp8", 8.0, "fp8", False, "E4M3 weights and activations, per-tensor scales", 128.0),
        MoEFormat(
            "fp8_block",
            8.0 + 32.0 / (128 * 128),
            "fp8",
            False,
            "DeepSeek-V3 block scaling: one fp32 scale per 128x128 weight block "
            "(https://arxiv.org/abs/2412.19437, sec. 3.3.2)",
            128.0,
        ),
        MoEFormat(
            "nvfp4",
            4.0 + 8.0 / 16,
            "fp4",
            False,
            "NVFP4: E2M1 values, one E4M3 scale per 16 elements "
            "(https://developer.nvidia.com/blog/introducing-nvfp4-for-efficient-and-accurate-low-precision-inference/)",
        ),
        MoEFormat(
            "w4a8_mxfp4_mxfp8",
            4.0 + 8.0 / 32,
            "fp8",
            False,
            "MXFP4 weights (E8M0 scale per 32, OCP MX spec v1.0) with MXFP8 activations",
        ),
        MoEFormat(
            "w4a16_mxfp4",
            4.0 + 8.0 / 32,
            "bf16",
            True,
            "MXFP4 weights (E8M0 scale per 32, OCP Microscaling Formats spec v1.0, "
            "https://www.opencompute.org/documents/ocp-microscaling-formats-mx-v1-0-spec-final-pdf), "
            "bf16 activations: dequantized in the kernel",
            64.0,
        ),
        MoEFormat(
            "int4_wo",
            4.0 + 16.0 / 128,
            "bf16",
            True,
            "GPTQ-style int4 weights, one 16-bit scale per 128 (https://arxiv.org/abs/2210.17323), "
            "bf16 activations: dequantized in the kernel (Marlin, https://arxiv.org/abs/2408.11743)",
            128.0,
        ),
    )
}
"""MoE formats by name (the names NVIDIA aiconfigurator's tables use, ``bfloat16`` read as ``bf16``)."""

FP4_OVER_FP8_PEAK_RATIO: Final = 2.0
"""Dense fp4 tensor peak over fp8 on Blackwell, used where a profile has no fp4 entry: B200 9 PFLOPS FP4
vs 4.5 PFLOPS FP8 dense (NVIDIA DGX B200 datasheet, https://www.nvidia.com/en-us/data-center/dgx-b200/)."""

ALIGNMENT_ELEMENTS: Final = 16
"""Expert widths ``I/tp`` that are a multiple of this many elements take the kernels' aligned path. Triton
compiles a kernel once per alignment class of its arguments: an integer argument (a row stride such as the
intermediate's ``N``) divisible by 16 is marked so, which lets the compiler issue 16-byte vector loads and
asynchronous copies; any other value gets a specialization without that hint (``triton.jit``,
``do_not_specialize_on_alignment``, https://triton-lang.org/main/python-api/generated/triton.jit.html).
CUTLASS kernels likewise take their 128-bit access paths only for aligned leading dimensions. vLLM's
Triton fused_moe at ``I/tp`` = 22-232 columns not divisible by 16 runs 1.3-2 x slower than its aligned
neighbours (H100, A100, L40S tables), and up to ~50 x with fp8 on L40S."""

VECTOR_OPS_PER_DEQUANT_ELEMENT: Final = 4.0
"""Default dequantization cost: about 4 fp32 vector operations per weight (unpack, convert, scale, and
a zero-point or exponent fix-up), run on the non-tensor units. An assumption the fit replaces."""


@dataclass(frozen=True)
class Params:
    """Named parameters of the MoE time model for one (device, format, kernel)."""

    launch_s: float
    """Fixed time per layer call: routing top-k, token sort / align, the kernels' launches [s]."""
    expert_map_s: float
    """Fixed time a call pays only under expert parallelism (``ep > 1``) [s]; 0 for a kernel whose EP and
    non-EP calls cost the same. An EP call first maps the router's global expert ids to the GPU's local
    ones (-1 for experts held elsewhere): vLLM's MXFP4 Triton path, ``triton_kernel_moe_forward`` in
    ``vllm/model_executor/layers/fused_moe/experts/gpt_oss_triton_kernels_moe.py``
    (https://github.com/vllm-project/vllm), gathers ``expert_map[topk_ids]`` before building its routing
    bitmatrix over the local experts (``make_routing_data``), one more kernel; with the older
    ``triton_kernels`` API the non-EP call instead runs the single fused ``routing()`` launch. The public
    tables charge more than that launch: H100 vLLM Triton MXFP4, gpt-oss-120b's experts at one token,
    67-69 us at every EP from 4 to 128 (one local expert at 128) against 38-48 us at TP 2-32, a per-call
    cost independent of the local work. It is GPU time: vLLM 0.24.0's MoE collector requires the CUDA-graph
    capture (``benchmark_with_power`` without ``allow_graph_fail``, aiconfigurator ``collector/helper.py``),
    so these rows are graph replays, and a serving step's graph replay pays it in full."""
    per_expert_s: float
    """Scheduling cost per touched expert (its group's setup in the grouped GEMM) [s]."""
    per_local_expert_s: float
    """Cost per expert the GPU holds (``E / ep``), touched or not: a grouped GEMM's scheduler walking its
    whole group list [s]."""
    group_switch_s: float
    """Time a grouped GEMM's CTA spends each time its next output tile belongs to another expert [s]:
    CUTLASS's persistent grouped (``GroupProblemShape``) kernels rewrite the CTA's TMA descriptors for the
    new group and fence them before the tile's first load (``tensormaps_perform_update``,
    ``tensormaps_cp_fence_release`` / ``tensormaps_fence_acquire`` on ``did_batch_change``; see
    :func:`group_switches`). Held at 0 (not fitted) for kernels without that path
(:func:`runs_cutlass_grouped_gemm`)."""
    per_token_s: float
    """Routing time per token of the batch (top-k of its router logits) [s]."""
    fallback_routing_s: float
    """Fixed time of the engine's unfused routing path, taken where its fused routing kernel does not
    support the layer (``topk > routing_kernel_max_topk`` or ``num_experts > routing_kernel_max_experts``):
    separate top-k, softmax and cast kernels instead of one [s]."""
    routing_kernel_max_topk: float
    """Largest top-k the engine's fused routing kernel takes (0 = no limit; not fitted) [-]."""
    routing_kernel_max_experts: float
    """Largest expert count the engine's fused routing kernel takes (0 = no limit; not fitted) [-]."""
    per_routed_pair_s: float
    """Routing / sorting time per token-expert pair of the whole batch, paid on every GPU [s]."""
    per_pair_s: float
    """Permutation and combine time per token-expert pair routed to this GPU [s]."""
    overlap_exponent: float
    """p of the p-norm combining memory and compute time: 1 = no overlap, large = roofline max [-]."""
    bandwidth_fraction: float
    """Achieved fraction of datasheet memory bandwidth while streaming expert weights [-]."""
    compute_fraction: float
    """Achieved fraction of the format's dense tensor peak in the expert GEMMs [-]."""
    imbalance_fraction: float
    """Share of the grouped GEMM's work paced by the busiest expert rather than the total [-]."""
    compute_fill_share: float
    """Share of the expert GEMMs' compute that runs only on as many SMs as the call has output tiles [-]
    (:func:`compute_fill_ratio`; 0 = the whole GPU computes every call, 1 = a call of few tiles leaves the
    other SMs idle, as a kernel that does not split its reduction does)."""
    cache_fraction: float
    """Part of the on-chip cache a call's working set can keep between calls [-]."""
    cache_sharpness: float
    """Exponent of the hit rate's fall past that capacity: large = LRU's cliff, 1 = gradual [-]."""
    routed_pair_fraction: float
    """Share of the batch's token-expert pairs routed to other GPUs' experts whose intermediate rows this
    GPU still writes and reads (1 = vLLM's expert_map path, 0 = kernels that compact to local rows) [-]."""
    cache_speedup: float
    """Cache bandwidth over memory bandwidth for weights found in the cache [-]."""
    intermediate_weight_share: float
    """Share of the call's weight bytes streamed between an intermediate's write and its read, counted in
    the intermediates' reuse distance beside their own bytes [-] (1 = one hit rate for the whole call's
    working set, 0 = the intermediates alone: the weights stream before or after)."""
    tile_overhead_k: float
    """Pipeline fill and epilogue of one output tile, as elements of its reduction loop [elements]: the
    down GEMM reduces over only I/tp, so at high TP this share of its time grows (the GEMM model's
    ``tile_overhead_k``)."""
    stream_tile_n: float
    """Output columns one CTA streams weights for in the few-row regime [elements]: a GEMM whose touched
    experts give fewer such tiles than the GPU has SMs streams its weights on only that many SMs. Bounded
    by the N widths of the CTA tiles grouped-GEMM kernels use (up to 256)."""
    tile_m_tokens: float
    """Rows of an expert's M tile: an expert with fewer tokens still pays a full tile [tokens]."""
    local_tile_share: float
    """M tile of the kernel's per-call tile heuristic, as a share of the tile it picks from the batch's
    rows per *local* expert (``T k / (E/ep)`` to the next power of two, ``LOCAL_TILE_TOKENS`` bounds) [-]:
    TensorRT-LLM's trtllm-gen MoE runners pick their token tile from that estimate, so every touched
    expert computes a tile that steps with ``T x ep`` (0 = off: a fixed ``tile_m_tokens``)."""
    local_tile_max_tokens: float
    """Largest tile of that heuristic [tokens]: the top of the runner's tile ladder for the format's
    activations (``MoEFormat.local_tile_max_tokens``; not fitted)."""
    misaligned_memory_ratio: float
    """Weight / activation streaming time of an expert width ``I/tp`` that is not a multiple of
    ``ALIGNMENT_ELEMENTS``, over that of an aligned one [-] (1 = no penalty)."""
    misaligned_compute_ratio: float
    """Tile-loop (compute) time of such a misaligned width over an aligned one [-] (1 = no penalty)."""
    default_config_ratio: float
    """Grouped-GEMM time of a call that falls back to the kernel's default launch configuration over that
    of a tuned one (vLLM's Triton fused_moe without a config file: :mod:`costmodel.kernels.moe_configs`)
    [-]."""
    dequant_s_per_element: float
    """Time to dequantize one weight element, weight-only formats only [s] (the inverse of a rate, so
    that every fitted value stays small: a least-squares step is judged against the norm of them all)."""
    memory_bandwidth_bytes_per_s: float
    """Datasheet memory bandwidth [bytes/s] (not fitted)."""
    cache_bytes: float
    """Datasheet on-chip (L2) cache [bytes]; 0 where the profile has none (not fitted)."""
    compute_units: float
    """Datasheet streaming multiprocessors [-]; 0 where the profile has none (no SM limit; not fitted)."""
    peak_flop_per_s: float
    """Datasheet dense tensor peak of the format's compute dtype [FLOP/s] (not fitted)."""
    weight_bits: float
    """Storage bits per weight including scales [bits] (not fitted)."""
    activation_bytes: float
    """Bytes per activation element moved between the kernels (bf16) [bytes] (not fitted)."""
    weight_only: bool
    """True when weights are dequantized to the activation dtype in the kernel (not fitted)."""


LOCAL_TILE_TOKENS: Final = (8.0, 256.0)
"""Smallest and largest token tile of the local-share heuristic (``Params.local_tile_share``) [tokens]:
TensorRT-LLM's ``calculate_tile_tokens_dim`` clamps its power of two to at least 8 tokens; B200
MXFP4 x MXFP8 rows step at 64 and at 128 rows per local expert and are flat beyond (2-CTA M of 256)."""


def local_share_tile(
    num_tokens: npt.ArrayLike,
    topk: npt.ArrayLike,
    num_experts: npt.ArrayLike,
    ep_size: npt.ArrayLike,
    max_tokens: float = LOCAL_TILE_TOKENS[1],
) -> FloatArray:
    """The token tile a trtllm-gen MoE runner picks for a call [tokens]: the batch's rows per expert the
    GPU holds, ``T k / (E / ep)``, rounded up to a power of two within ``LOCAL_TILE_TOKENS``.

    TensorRT-LLM's block-scale MoE runners take their valid tile configurations from the token count and
    the *local* expert count (``MxE4m3MxE2m1BlockScaleMoeRunner::getValidConfigs(topK, hidden,
    intermediate, numLocalExperts, numTokens)``; the Python side's ``calculate_tile_tokens_dim``: tokens
    per expert assuming a perfect spread, padded to the next power of two, clamped), in
    ``tensorrt_llm/_torch/custom_ops/trtllm_gen_custom_ops.py`` and ``cpp/tensorrt_llm/thop/
    mxFp4BlockScaleMoe.cpp``, https://github.com/NVIDIA/TensorRT-LLM. The routed rows are spread over all
    ``E`` experts, not the ``E / ep`` held here, so the tile is ``ep`` x too large for them and every
    touched expert computes (pads to) that tile. FlashInfer's copy of those runners, which vLLM's
    FlashInfer trtllm-gen MoE backends call, does the same: ``computeSelectedTileN(supported_tile_nums,
    num_tokens, top_k, num_local_experts)`` centres its candidate tiles (the power of two above
    ``T k / num_local_experts`` clamped to the launcher's ladder, with its -1, +1 and +2 neighbours, among
    which the autotuner picks) in ``csrc/trtllm_fused_moe_kernel_launcher.cu``,
    https://github.com/flashinfer-ai/flashinfer. ``max_tokens`` is the top of that ladder
    (``MoEFormat.local_tile_max_tokens``)."""
    T, k, E, ep = (np.asarray(v, dtype=np.float64) for v in (num_tokens, topk, num_experts, ep_size))
    rows = np.maximum(T * k * ep / E, 1.0)
    low, high = LOCAL_TILE_TOKENS[0], min(float(max_tokens), LOCAL_TILE_TOKENS[1])
    if high < low:
        raise CostmodelError(f"moe.local_share_tile: max_tokens must be >= {low:g}, got {max_tokens!r}")
    return np.asarray(np.clip(2.0 ** np.ceil(np.log2(rows) - 1e-9), low, high), dtype=np.float64)


ROUTING_KERNEL_LIMITS: Final[dict[str, tuple[float, float]]] = {"trtllm": (16.0, 512.0)}
"""(largest top-k, largest expert count) of an engine's fused routing kernel, by the engine part of a
parameter key. TensorRT-LLM's ``RenormalizeMoeRoutingMethod.apply`` (the routing NVIDIA aiconfigurator's
collector gives its non-``min_latency`` MoE layers) runs ``torch.ops.trtllm.renorm_moe_routing_op`` unless
``num_experts > 512 or top_k > 16``, where it falls back to ``torch.topk`` and a softmax in PyTorch
(``tensorrt_llm/_torch/modules/fused_moe/routing.py``, https://github.com/NVIDIA/TensorRT-LLM; earlier
releases had 128 and 8, which the B200 rows contradict: 256 experts, top-8 layers take no longer at one
token than 128-expert ones). Engines not listed: no limit."""


def _engine_of(key: str) -> str:
    """The engine part of a parameter key (``"bf16:trtllm:moe_torch_flow"`` -> ``"trtllm"``; "" if none)."""
    parts = key.split(":")
    return parts[1].strip().lower() if len(parts) > 1 else ""


def unfused_routing(params: Params, topk: npt.ArrayLike, num_experts: npt.ArrayLike) -> FloatArray:
    """1 where the layer's routing takes the engine's unfused path (``Params.routing_kernel_max_topk`` /
    ``routing_kernel_max_experts`` exceeded), else 0."""
    k, experts = (np.asarray(v, dtype=np.float64) for v in (topk, num_experts))
    over_k = (params.routing_kernel_max_topk > 0) & (k > params.routing_kernel_max_topk)
    over_e = (params.routing_kernel_max_experts > 0) & (experts > params.routing_kernel_max_experts)
    return np.asarray(over_k | over_e, dtype=np.float64)


FIT_LOSS: Final = "cauchy"
"""Robust loss ``costmodel.calibrate.fit_params`` uses for this family. The public MoE tables hold whole
series (one engine, dtype and shape, every token count) measured 2-5 x slower than the same per-GPU work
in neighbouring (TP, EP, routing) cells, ~2-10 % of a kernel's rows (TRT-LLM autotunes each series
separately); soft-L1 lets them pull every parameter, Cauchy's pull fades past ~10 % error."""

CALL_PARAMS: tuple[str, ...] = (
    "launch_s",
    "expert_map_s",
    "per_expert_s",
    "per_local_expert_s",
    "group_switch_s",
    "per_token_s",
    "fallback_routing_s",
    "per_routed_pair_s",
    "per_pair_s",
)
"""The times of one call's own sequence of kernels [s]: its launches, the routing and expert map, the
per-expert and per-group switches, and the per-token and per-pair permutation and finalize work. For a key of
:data:`SAME_CALL_KERNELS` they do not depend on the weight format, which enters the grouped GEMMs' rates
(the fractions, the tile and cache parameters) and the weight-only dequantization
(``dequant_s_per_element``), neither of which is here. A key with no stored fit at any fallback level takes
their median over the device's stored keys of the same call under other formats
(:func:`costmodel.kernels.params_for`)."""

SAME_CALL_KERNELS: tuple[str, ...] = ("trtllm:moe_torch_flow_cutlass", "trtllm:moe_torch_flow_nongated")
"""``<engine>:<kernel>`` parts of MoE keys that name one backend, and so one call sequence, for every weight
format and on every device. aiconfigurator's TensorRT-LLM MoE collector builds every non-gpt-oss MoE that is
neither in min-latency mode nor fp8_block on SM100 with ``model_config.moe_backend = "cutlass"``
(TensorRT-LLM's CUTLASS fused MoE: routing, permutation, two grouped GEMMs, finalize), and logs it as
``moe_torch_flow_cutlass``, or ``moe_torch_flow_nongated`` for a non-gated (Relu2) model
(``run_moe_torch``, collector/trtllm/collect_moe.py, https://github.com/ai-dynamo/aiconfigurator). Not
``moe_torch_flow``: the collector's gpt-oss path, Triton on Hopper and TensorRT-LLM-gen on Blackwell (the
same file), another backend on another device. A fact about software, never a per-shape choice."""

BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "launch_s": (1e-6, 2e-3),
    "expert_map_s": (0.0, 2e-4),
    "per_expert_s": (0.0, 5e-5),
    "per_local_expert_s": (0.0, 2e-6),
    "group_switch_s": (0.0, 1e-5),
    "per_token_s": (0.0, 1e-7),
    "fallback_routing_s": (0.0, 5e-5),
    "per_routed_pair_s": (0.0, 1e-7),
    "per_pair_s": (0.0, 1e-7),
    "overlap_exponent": (1.0, 8.0),
    "bandwidth_fraction": (0.02, 1.0),
    "compute_fraction": (0.02, 1.0),
    "tile_m_tokens": (1.0, 256.0),
    "local_tile_share": (0.0, 4.0),
    "stream_tile_n": (8.0, 256.0),
    "tile_overhead_k": (0.0, 1024.0),
    "cache_fraction": (0.0, 1.0),
    "cache_speedup": (1.0, 10.0),
    "cache_sharpness": (1.0, 16.0),
    "intermediate_weight_share": (0.0, 1.0),
    "routed_pair_fraction": (0.0, 1.0),
    "imbalance_fraction": (0.0, 1.0),
    "compute_fill_share": (0.0, 1.0),
    "misaligned_memory_ratio": (1.0, 100.0),
    "misaligned_compute_ratio": (1.0, 100.0),
    "default_config_ratio": (0.5, 4.0),
    "dequant_s_per_element": (0.0, 1e-11),
}


def format_of(key: str) -> MoEFormat:
    """The format named by ``key`` or by its part before the first ``:`` (``"fp8_block:vllm:triton"``)."""
    name = key.split(":", 1)[0].strip().lower()
    name = {"bfloat16": "bf16", "float16": "bf16", "fp16": "bf16"}.get(name, name)
    if name not in FORMATS:
        raise UnknownNameError("MoE format", name, FORMATS)
    return FORMATS[name]


def format_peak_flop_per_s(hardware: HardwareProfile, compute_dtype: str) -> float:
    """Dense tensor peak for ``compute_dtype`` [FLOP/s], falling back where the datasheet lacks it.

    fp4 without an entry: ``FP4_OVER_FP8_PEAK_RATIO`` x fp8. fp8 on a device without fp8 tensor cores
    (A100): bf16, since such kernels upcast the weights (weight-only fp8).
    """
    have = hardware.compute_dtypes
    if compute_dtype in have:
        return hardware.peak_flop_per_s(compute_dtype)
    if compute_dtype == "fp4" and "fp8" in have:
        return FP4_OVER_FP8_PEAK_RATIO * hardware.peak_flop_per_s("fp8")
    for fallback in ("fp8", "bf16", "fp16", "fp32"):
        if fallback in have and compute_dtype in ("fp4", "fp8"):
            return hardware.peak_flop_per_s(fallback)
    return hardware.peak_flop_per_s(compute_dtype)  # raises, listing what the device has


def default_params(hardware: HardwareProfile, dtype: str) -> Params:
    """Datasheet-only parameters for a format key (``"bf16"``, ``"fp8_block:<engine>:<kernel>"``, ...). The
    compute fraction is :meth:`HardwareProfile.default_matmul_fraction` of the format's compute dtype (NVFP4
    experts: the measured ``datasheet.sustained_fp4_fraction`` where the profile states it)."""
    fmt = format_of(dtype)
    eff = hardware.efficiency
    limits = ROUTING_KERNEL_LIMITS.get(_engine_of(dtype), (0.0, 0.0))
    vector = (
        hardware.peak_flop_per_s("fp32")
        if "fp32" in hardware.compute_dtypes
        else format_peak_flop_per_s(hardware, "bf16") / 16
    )
    return Params(
        launch_s=4 * eff.kernel_overhead_s,  # routing, align, two GEMMs (one fused with the activation)
        expert_map_s=0.0,
        per_expert_s=0.0,
        per_local_expert_s=0.0,
        group_switch_s=0.0,
        per_token_s=0.0,
        fallback_routing_s=0.0,
        routing_kernel_max_topk=limits[0],
        routing_kernel_max_experts=limits[1],
        per_routed_pair_s=0.0,
        per_pair_s=0.0,
        overlap_exponent=4.0,
        bandwidth_fraction=eff.memory_bandwidth_fraction,
        compute_fraction=hardware.default_matmul_fraction(fmt.compute_dtype),
        tile_m_tokens=16.0,
        local_tile_share=0.0,
        local_tile_max_tokens=fmt.local_tile_max_tokens,
        stream_tile_n=128.0,
        tile_overhead_k=0.0,
        compute_units=float(hardware.datasheet.compute_units.value)
        if hardware.datasheet.compute_units
        else 0.0,
        cache_fraction=0.5,
        cache_speedup=2.0,
        cache_sharpness=4.0,
        intermediate_weight_share=1.0,
        routed_pair_fraction=0.0,
        cache_bytes=cache_bytes(hardware),
        imbalance_fraction=0.05,
        compute_fill_share=0.0,
        misaligned_memory_ratio=1.0,
        misaligned_compute_ratio=1.0,
        default_config_ratio=1.0,
        dequant_s_per_element=VECTOR_OPS_PER_DEQUANT_ELEMENT / vector,
        memory_bandwidth_bytes_per_s=hardware.memory_bandwidth_bytes_per_s,
        peak_flop_per_s=format_peak_flop_per_s(hardware, fmt.compute_dtype),
        weight_bits=fmt.weight_bits,
        activation_bytes=2.0,
        weight_only=fmt.weight_only,
    )


def fixed_for_rows(dtype: str, shapes: dict[str, Any]) -> tuple[str, ...]:
    """Parameters ``costmodel.calibrate.fit_params`` keeps at their start for these rows of key ``dtype``:
    ``default_config_ratio`` unless the rows hold calls of more tokens than experts per GPU both on tuned
    and on default tiles (otherwise it only trades against the fractions); the misalignment ratios unless
    some rows have a misaligned width; ``fallback_routing_s`` unless the rows hold layers on both sides of
    the engine's fused routing kernel's limits (``ROUTING_KERNEL_LIMITS``); ``expert_map_s`` unless they
    hold calls both with and without expert parallelism."""
    fixed: list[str] = []
    tokens, experts, ep = (
        np.asarray(shapes.get(n, 1.0), dtype=np.float64) for n in ("num_tokens", "num_experts", "ep_size")
    )
    tuned, large = np.broadcast_arrays(
        np.asarray(shapes.get("tuned_config", True), dtype=bool), np.asarray(tokens > experts / ep)
    )
    if not (np.any(large & tuned) and np.any(large & ~tuned)):  # tuned and default large-batch tiles both
        fixed.append("default_config_ratio")
    width = np.asarray(shapes.get("inter_size", 1.0), dtype=np.float64) / np.asarray(
        shapes.get("tp_size", 1.0), dtype=np.float64
    )
    if not np.any(np.mod(width, ALIGNMENT_ELEMENTS) != 0):
        fixed += ["misaligned_memory_ratio", "misaligned_compute_ratio"]
    limit_k, limit_e = ROUTING_KERNEL_LIMITS.get(_engine_of(dtype), (0.0, 0.0))
    k, held = np.broadcast_arrays(np.asarray(shapes.get("topk", 1.0), dtype=np.float64), experts)
    unfused = ((limit_k > 0) & (k > limit_k)) | ((limit_e > 0) & (held > limit_e))
    if not (np.any(unfused) and np.any(~unfused)):  # otherwise the fallback only trades against launch_s
        fixed.append("fallback_routing_s")
    if not (np.any(ep > 1) and np.any(ep <= 1)):  # likewise the expert-map path's extra
        fixed.append("expert_map_s")
    if not runs_cutlass_grouped_gemm(dtype):  # the kernel has no per-group TMA descriptor update
        fixed.append("group_switch_s")
    return tuple(fixed)


def runs_cutlass_grouped_gemm(key: str) -> bool:
    """Whether the key's kernel runs CUTLASS's persistent array-TMA grouped GEMMs, the only path
    ``group_switch_s`` describes (:func:`group_switches`); a rule on the key's name, never on its error.

    True where the kernel name (the key's part after ``<format>:<engine>:``) names ``cutlass`` (TensorRT-LLM's
    ``CutlassFusedMoE``, FlashInfer's ``cutlass_fused_moe``, vLLM's FlashInfer CUTLASS experts, which all run
    ``CutlassMoeFCRunner`` of ``cpp/tensorrt_llm/kernels/cutlass_kernels/moe_gemm``,
    https://github.com/NVIDIA/TensorRT-LLM) or ``nongated`` (that runner with a non-gated activation), except
    the ``fp8_block`` format: with DeepSeek block scales the runner's ``BlockScaleFC1`` / ``BlockScaleFC2``
    run ``DeepSeekBlockScaleGemmRunner`` (``cutlass_kernels/include/moe_kernels.h``, the DeepGEMM-derived
    ``fp8_blockscale_gemm``), not the array-TMA grouped GEMM. False for Triton, Marlin, DeepGEMM,
    trtllm-gen (``trtllm``) and TensorRT-LLM's min-latency kernels, and for pooled keys (no kernel name)."""
    parts = [part.strip().lower() for part in key.split(":")]
    if len(parts) < 3 or format_of(key) is FORMATS["fp8_block"]:
        return False
    kernel = ":".join(parts[2:])
    return "cutlass" in kernel or "nongated" in kernel


def initial_guesses(hardware: HardwareProfile, dtype: str) -> list[Params]:
    """Starts for ``costmodel.calibrate.fit_params``: the datasheet defaults, and for weight-only formats
    three more (fixed times x 3, fractions / 2, both), the best fit of which is kept. Weight-only keys
    (Marlin, a few hundred rows each) have a dequantization term that trades against the bandwidth and
    compute fractions, and a single start settles where one of them is switched off.

    Where ``hardware`` already holds calibrated parameters for exactly this key, they are one more start
    (a parameter they lack keeps its default): a refit then keeps whichever of the datasheet's and the
    previous fit's basins reaches the lower cost on the calibration rows, and a refit after a change to the
    model starts from where the last one ended. A single datasheet start is not enough: with the
    intermediates' own hit rate, H100 vLLM Triton bf16 settled at a Cauchy cost of 13.6 from it, against
    8.8 for the previous fit; A100's key went on from its previous fit to 4.6 (was 5.9). Non-weight-only
    keys also start from each of those with ``compute_fill_share`` at 1 and the local-share tile at 1: from
    0 a fit keeps a previous fit's larger tile, which stood in for the idle SMs (B200 TensorRT-LLM MXFP4 x
    MXFP8 stayed at a share of 0.0007 from its stored parameters, 0.87 with these starts, at a lower cost)."""
    start = default_params(hardware, dtype)
    previous = _stored_params(hardware, dtype, start)
    if not runs_cutlass_grouped_gemm(dtype):  # held at 0 by fixed_for_rows, whatever an older fit stored
        previous = [dataclasses.replace(p, group_switch_s=0.0) for p in previous]
    if not start.weight_only:
        # the local-share tile has no gradient at 0 (the fixed tile is larger), so it also starts at 1
        # the SM-fill share's second basin: every few-tile call on its tiles' SMs, from a local-share tile
        # at 1 (a previous fit's larger tile stood in for those idle SMs)
        filled = [
            dataclasses.replace(p, local_tile_share=1.0, compute_fill_share=1.0) for p in (start, *previous)
        ]
        return [start, dataclasses.replace(start, local_tile_share=1.0), *previous, *filled]
    out = [start]
    for time_factor, fraction_factor in ((3.0, 1.0), (1.0, 0.5), (3.0, 0.5)):
        changes: dict[str, Any] = {}
        for name, (low, high) in BOUNDS.items():
            value = float(getattr(start, name))
            factor = time_factor if name.endswith("_s") else fraction_factor if "fraction" in name else 1.0
            changes[name] = min(max(value * factor, low), high)
        out.append(dataclasses.replace(start, **changes))
    return [*out, *previous]


def _stored_params(hardware: HardwareProfile, key: str, start: Params) -> list[Params]:
    """The calibrated parameters ``hardware`` stores for exactly ``key`` (none, or one ``Params``), on top of
    ``start`` (the datasheet's fields: bandwidth, peak, cache size)."""
    calibration = hardware.kernel_calibration
    stored = {} if calibration is None else calibration.params.get("moe", {}).get(key, {})
    names = set(BOUNDS)
    values: dict[str, Any] = {name: float(value) for name, value in stored.items() if name in names}
    return [dataclasses.replace(start, **values)] if values else []


# ----------------------------------------------------------------------------------------------------
# Routing: which experts a batch touches on the measured GPU
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingLoad:
    """Per-GPU routing outcome for the GPU that sets the layer's time (arrays broadcast together)."""

    pairs: FloatArray
    """Token-expert pairs routed to the GPU's experts [-]."""
    touched_experts: FloatArray
    """The GPU's experts that receive at least one token [-]."""
    busiest_expert_tokens: FloatArray
    """Tokens of the most loaded expert [-]."""


_POWER_LAW = re.compile(r"^power_law_(legacy_)?([0-9.]+)$")
_GROUP_LIMITED = re.compile(r"^balanced\+group_limited_([0-9]+)_([0-9]+)$")


@lru_cache(maxsize=4096)
def _group_limited_counts(tokens: int, topk: int, num_experts: int, n_group: int, kept_groups: int) -> bytes:
    """Pairs per expert (int64 bytes, ``num_experts`` of them) of :func:`group_limited_balanced_load`."""
    T, k, E = tokens, topk, num_experts
    stride = -(-E // k)
    t = np.arange(T, dtype=np.float64)[:, None]
    i = np.arange(k, dtype=np.float64)[None, :]
    # aiconfigurator's balanced_logits: token t's i-th expert (t + i stride) mod E, spread as t stride / T
    # below one stride of tokens; the float index is truncated by the one-hot encoding
    chosen = np.where(stride <= T, t + i * stride, t * stride / T + i * stride)
    chosen = np.mod(np.floor(chosen), E).astype(np.int64)
    level = np.zeros((T, E), dtype=np.int64)
    np.add.at(level, (np.repeat(np.arange(T), k), chosen.ravel()), 1)
    # the gate's scores are sigmoid(softmax(level)) + a zero bias: monotone in the level, so only the
    # levels' order matters; a group scores the sum of its two best experts
    size = E // n_group
    if size == 1:
        # one expert per group: the kernel scores a group by its best lane plus its second best, and the
        # empty second lane holds the invalid score, -inf, so every group scores -inf whatever the logits
        # (the routing/ kernels of TensorRT-LLM 1.3.0rc20, every B200 min_latency row's version; the older
        # blockScaleMoe/RoutingDeepSeek.cu used -1, a finite score under which the logits would matter);
        # its warp top-k takes the tie's lowest lane (group 0) and writes the same -inf back, so group 0
        # wins all kept_groups picks and its one expert all k picks (see group_limited_balanced_load)
        counts = np.zeros(E, dtype=np.int64)
        counts[0] = T * k
        return counts.tobytes()
    grouped = np.sort(level[:, : size * n_group].reshape(T, n_group, size), axis=2)
    group_score = grouped[:, :, -min(2, size) :].sum(axis=2)
    # top kept_groups groups, ties to the lower group index (a stable sort of the negated score)
    kept = np.argsort(-group_score, axis=1, kind="stable")[:, :kept_groups]
    allowed = np.zeros((T, n_group), dtype=bool)
    np.put_along_axis(allowed, kept, True, axis=1)
    allowed_expert = np.repeat(allowed, size, axis=1)
    masked = np.where(allowed_expert, level[:, : size * n_group], -1)
    top = np.argsort(-masked, axis=1, kind="stable")[:, :k]  # ties to the lower expert index
    counts = np.bincount(top.ravel(), minlength=E).astype(np.int64)
    return counts.tobytes()


def group_limited_balanced_load(
    tokens: int, topk: int, num_experts: int, ep_size: int, n_group: int, kept_groups: int
) -> tuple[float, float, float]:
    """(pairs, touched experts, busiest expert's tokens) on EP rank 0 when the collector's balanced logits
    pass through a group-limited gate (DeepSeek-V3's ``noaux_tc``: ``n_group`` groups of consecutive
    experts, each scored by the sum of its two best expert scores; only the ``kept_groups`` best groups'
    experts may be picked; then the top ``topk`` of those).

    TensorRT-LLM's ``min_latency`` MoE as NVIDIA aiconfigurator collects it routes through
    ``DeepseekV3Gate(n_group=8, topk_group=4)`` whatever the table's ``distribution`` says
    (``collector/trtllm/collect_moe.py``, https://github.com/ai-dynamo/aiconfigurator), over logits drawn
    for a plain top-k: ``balanced_logits`` gives each token's ``k`` experts one stride ``ceil(E / k)``
    apart, softmax-ed, so its chosen experts score high and every other expert the same low score. The
    gate (``Deepseekv3RoutingImpl.noaux_tc`` in TensorRT-LLM's ``modeling_deepseekv3.py``,
    https://github.com/NVIDIA/TensorRT-LLM) adds its ``e_score_correction_bias``, which the collector
    never loads (read here as zero). Where ``k`` chosen experts fall one per group (``k = n_group``: the
    stride is the group size) every group scores alike and the tie keeps the lowest groups; the picks the
    kept groups lack are filled, again by a tie, with their lowest-index experts. So at 256 experts, top-8,
    all of a token's pairs land on experts 0-127 (EP 2 rank 0 times as much work as EP 1) and four of them
    on experts 0-4 (EP 64-256: 4, 2 and 1 touched experts at one token). Ties go to the lower index
    (assumed: the measured EP series step exactly so; a stable sort here).

    A group of one expert (``E = n_group``: Mixtral's 8 experts in 8 groups) collapses. TensorRT-LLM's
    routing kernel (``routingMainKernel`` in
    ``cpp/tensorrt_llm/kernels/trtllmGenKernels/blockScaleMoe/routing/RoutingDeepSeek.cu``) scores a group
    as the sum of its warp's two best lanes, and an empty lane holds the invalid score ``-inf``, so each
    group scores ``-inf``. Its warp top-k (``reduceTopK`` in ``RoutingKernelTopK.cuh``) packs value and
    ``65535 - index``, so ties go to the lowest lane, and it retires a pick by writing ``(-inf, index)``
    back, the value that lane already holds: group 0 is picked ``kept_groups`` times, its one expert fills
    every candidate slot, and all ``k`` picks of every token are expert 0. Rank 0 holds expert 0 at every
    EP, so it runs all ``T k`` pairs on one expert whatever the EP and the logits (the tables: TP 1, 16,384
    tokens of 6144 x 16384, 3.61-3.82 ms at EP 1, 2, 4, 8, balanced and power law alike; one token 44-47 µs,
    one expert's 151 MB of fp4 weights).

    EP rank 0 (experts ``0 .. E/ep - 1``), the one the collector times, is also the busiest here.
    """
    if num_experts % n_group or kept_groups > n_group or kept_groups * (num_experts // n_group) < topk:
        raise CostmodelError(
            f"routing balanced+group_limited_{n_group}_{kept_groups}: {num_experts} experts must split into "
            f"{n_group} equal groups and the {kept_groups} kept groups must hold at least top-k = {topk}"
        )
    counts = np.frombuffer(
        _group_limited_counts(tokens, topk, num_experts, n_group, kept_groups), dtype=np.int64
    )
    local = counts[: num_experts // ep_size]
    return float(local.sum()), float(max(int((local > 0).sum()), 1)), float(local.max())


def expected_touched_experts_uniform(
    tokens: npt.ArrayLike, topk: npt.ArrayLike, num_experts: npt.ArrayLike
) -> FloatArray:
    """Expected distinct experts touched by ``tokens`` each picking ``topk`` of ``num_experts`` at random.

    An expert is missed by one token with probability ``1 - k/E``, by all with ``(1 - k/E)^T``, so
    ``E[touched] = E (1 - (1 - k/E)^T)`` (occupancy; Feller 1968, "An Introduction to Probability Theory",
    vol. 1, ch. IV). It never exceeds ``min(E, T k)`` and tends to ``E`` as ``T`` grows.
    """
    T = np.asarray(tokens, dtype=np.float64)
    k = np.asarray(topk, dtype=np.float64)
    E = np.asarray(num_experts, dtype=np.float64)
    touched = E * -np.expm1(T * np.log1p(-np.minimum(k / E, 1.0 - 1e-12)))
    return np.asarray(np.minimum(touched, np.minimum(E, T * k)), dtype=np.float64)


POWER_LAW_DRAWS: Final = 128
"""Draws of the collector's routing process averaged by :func:`power_law_load` (a fixed seed, so the model
is deterministic; the same uniforms serve every shape, so the expectation moves smoothly with the tokens)."""


@dataclass
class _RankCounts:
    """Per draw and EP rank: pairs, experts with at least one pair, and the largest expert's pairs."""

    pairs: npt.NDArray[np.int64]
    touched: npt.NDArray[np.int64]
    largest: npt.NDArray[np.int64]


def _round_robin(ranks: _RankCounts, change: npt.NDArray[np.int64], group: int, tokens: int) -> _RankCounts:
    """The collector's fix-up, one pair at a time over the ranks in turn (``_round_robin_adjust_per_rank``):
    ``change > 0`` adds each pair to the rank's least-loaded expert (below ``T``), so empty experts fill
    first; ``change < 0`` takes each pair off the rank's most-loaded expert. Returns the updated counts."""
    ep = ranks.pairs.shape[1]
    n = np.abs(change)[:, None]
    share = n // ep + (np.arange(ep)[None, :] < n % ep)
    add = np.where((change > 0)[:, None], share, 0)
    take = np.where((change < 0)[:, None], share, 0)
    pairs = np.minimum(ranks.pairs + add, group * tokens)
    touched = np.minimum(ranks.touched + add, group)
    level = -(-pairs // group)  # water-filling raises the least-loaded experts towards the mean
    largest = np.where(add > 0, np.maximum(ranks.largest, level), ranks.largest)
    ones = largest <= 1  # only when every loaded expert holds one pair does a removal empty one
    touched = np.where(ones, np.maximum(touched - take, 0), touched)
    return _RankCounts(np.maximum(pairs - take, 0), touched, largest)


@lru_cache(maxsize=65536)
def power_law_load(
    tokens: int, topk: int, num_experts: int, ep_size: int, alpha: float, legacy: bool = False
) -> tuple[float, float, float]:
    """Expected (pairs, touched experts, busiest expert's tokens) on the timed GPU under aiconfigurator's
    power-law routing, averaged over ``POWER_LAW_DRAWS`` draws of its process (``collector/helper.py``,
    ``_generate_power_law_distribution``, https://github.com/ai-dynamo/aiconfigurator; the collector times
    the mean of five draws per shape):

    1. one weight per expert from ``x^-alpha`` on ``[1, 0.8 T]`` (on ``[0.01, 2]`` when ``T k <= E``);
    2. ``T k`` pairs split in proportion and rounded; no expert above ``T`` (a token picks an expert once):
       the excess, then whatever the rounding missed, go one pair at a time to the ranks in turn, each to
       the rank's least-loaded expert; a rounding surplus comes off each rank's most-loaded expert in turn;
    3. of the ``ep`` ranks of ``E / ep`` consecutive experts, the one with the most pairs is the one timed.

    Step 2 at small ``T`` touches about as many experts as ``T k`` (empty experts are filled first): the
    tables' power-law and balanced rows take the same time up to ``T k`` ~ ``E / 8``.

    ``legacy``: the collector's earlier step 2 (``power_law_logits_v3`` before the clamp was added):
    no clamp at ``T``; missing pairs go one each to the largest counts in turn (equal counts in expert
    order), a surplus comes off the smallest non-zero counts. At small ``T`` the missing pairs then pile
    onto experts that already have some, or onto the first experts, which sit on rank 0.
    """
    rng = np.random.default_rng(20_240_601 + num_experts)  # the same uniforms for every T of an expert count
    u = rng.random((POWER_LAW_DRAWS, num_experts))
    lo, hi = (1.0, 0.8 * tokens) if tokens * topk > num_experts else (0.01, 2.0)
    a = 1.0 - alpha
    weights = ((hi**a - lo**a) * u + lo**a) ** (1.0 / a)
    target = tokens * topk
    counts = np.round(weights / weights.sum(axis=1, keepdims=True) * target).astype(np.int64)
    group = num_experts // ep_size
    if legacy:
        return _legacy_load(counts, target, tokens, group, ep_size)
    excess = np.maximum(counts - tokens, 0).sum(axis=1)
    held = np.minimum(counts, tokens)[:, : group * ep_size].reshape(POWER_LAW_DRAWS, ep_size, group)
    ranks = _RankCounts(held.sum(axis=2), (held > 0).sum(axis=2), held.max(axis=2))
    ranks = _round_robin(ranks, excess, group, tokens)
    ranks = _round_robin(ranks, target - ranks.pairs.sum(axis=1), group, tokens)
    timed = np.argmax(ranks.pairs, axis=1)
    draw = np.arange(POWER_LAW_DRAWS)
    return (
        float(ranks.pairs[draw, timed].mean()),
        float(np.maximum(ranks.touched[draw, timed], 1).mean()),
        float(np.minimum(ranks.largest[draw, timed], tokens).mean()),
    )


def _legacy_load(
    counts: npt.NDArray[np.int64], target: int, tokens: int, group: int, ep: int
) -> tuple[float, float, float]:
    """``power_law_load(legacy=True)`` from the rounded counts (draws in rows)."""
    draws, experts = counts.shape
    delta = (target - counts.sum(axis=1))[:, None]
    rank = np.empty_like(counts)
    rank[np.arange(draws)[:, None], np.argsort(-counts, axis=1, kind="stable")] = np.arange(experts)[None, :]
    add = np.maximum(delta, 0)
    counts = counts + add // experts + (rank < add % experts)
    smallest = (experts - 1 - rank) < np.maximum(-delta, 0)  # a surplus is a few pairs at most
    taken = smallest & (counts > 0)
    counts = counts - taken
    counts[np.arange(draws), np.argmax(counts, axis=1)] -= (smallest & ~taken).sum(axis=1)
    ranks = counts[:, : group * ep].reshape(draws, ep, group)
    timed = ranks[np.arange(draws), np.argmax(ranks.sum(axis=2), axis=1)]
    return (
        float(timed.sum(axis=1).mean()),
        float(np.maximum((timed > 0).sum(axis=1), 1).mean()),
        float(np.minimum(timed.max(axis=1), tokens).mean()),
    )


def routing_load(
    routing: npt.ArrayLike,
    *,
    tokens: npt.ArrayLike,
    topk: npt.ArrayLike,
    num_experts: npt.ArrayLike,
    ep_size: npt.ArrayLike = 1,
) -> RoutingLoad:
    """Pairs, touched experts and busiest expert on the most loaded of ``ep_size`` GPUs.

    ``routing``: ``"balanced"``, ``"uniform"``, ``"power_law_<alpha>"`` or ``"power_law_legacy_<alpha>"``
    (alpha > 1; the collector's earlier fix-up, see :func:`power_law_load`), per row.

    Power law: the expected values of one draw of the collector's process (:func:`power_law_load`; the
    collector draws once per measured shape). Tokens, top-k, experts and EP size are rounded to whole
    numbers there.
    """
    T, k, E, ep = (
        np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(tokens, topk, num_experts, ep_size)
    )
    kinds = np.broadcast_to(np.asarray(routing, dtype=str), T.shape)
    if np.any(T < 1) or np.any(k < 1) or np.any(E < 1) or np.any(ep < 1):
        raise CostmodelError("routing_load: tokens, topk, num_experts and ep_size must be >= 1")
    memo = (
        hashlib.blake2b(b"".join(np.ascontiguousarray(a).tobytes() for a in (T, k, E, ep, kinds))).digest(),
        T.shape,
    )
    known = _ROUTING_MEMO.get(memo)
    if known is None:
        known = _routing_load(kinds, T, k, E, ep)
        if len(_ROUTING_MEMO) >= ROUTING_MEMO_SIZE:
            _ROUTING_MEMO.pop(next(iter(_ROUTING_MEMO)))
        _ROUTING_MEMO[memo] = known
    return known


ROUTING_MEMO_SIZE: Final = 64
"""Routing outcomes :func:`routing_load` keeps (by the content of its inputs): a fit evaluates the same rows'
routing thousands of times, and the power-law expectation is most of a call's cost."""
_ROUTING_MEMO: dict[tuple[bytes, tuple[int, ...]], RoutingLoad] = {}


def _routing_load(
    kinds: npt.NDArray[np.str_], T: FloatArray, k: FloatArray, E: FloatArray, ep: FloatArray
) -> RoutingLoad:
    """:func:`routing_load` on checked, broadcast arrays; its arrays are read-only (they are memoized)."""
    group = E / ep
    total = T * k
    even = np.ceil(total / ep)

    balanced_pairs = np.minimum(even, group * T)
    balanced = RoutingLoad(
        pairs=balanced_pairs,
        touched_experts=np.maximum(np.minimum(group, balanced_pairs), 1.0),
        busiest_expert_tokens=np.ceil(total / E),
    )

    uniform_touched = expected_touched_experts_uniform(T, k, E) / ep
    mean_load = total / E
    uniform = RoutingLoad(
        pairs=total / ep,
        touched_experts=np.maximum(uniform_touched, 1.0),
        busiest_expert_tokens=np.minimum(
            T, mean_load + np.sqrt(2.0 * mean_load * np.log(np.maximum(E, 2.0)))
        ),
    )

    alpha = np.full(T.shape, np.nan)
    legacy = np.zeros(T.shape)
    gated = np.zeros(T.shape, dtype=bool)
    gate_load = np.ones((3, *T.shape))
    for value in np.unique(kinds):
        match = _POWER_LAW.match(value)
        gate = _GROUP_LIMITED.match(value)
        rows = kinds == value
        if match:
            alpha[rows] = float(match.group(2))
            legacy[rows] = float(match.group(1) is not None)
        elif gate:
            gated |= rows
            n_group, kept = int(gate.group(1)), int(gate.group(2))
            combos = np.stack([T, k, E, ep], axis=-1)[rows]
            unique, inverse = np.unique(combos, axis=0, return_inverse=True)
            loads = np.array(
                [
                    group_limited_balanced_load(round(t), round(kk), round(e), round(p), n_group, kept)
                    for t, kk, e, p in unique
                ]
            )
            gate_load[:, rows] = loads[inverse.ravel()].T
        elif value not in ("balanced", "uniform"):
            raise CostmodelError(
                f"routing {value!r} is not known: use 'balanced', 'uniform', 'power_law_<alpha>', "
                "'power_law_legacy_<alpha>' (alpha > 1) or 'balanced+group_limited_<groups>_<kept>'"
            )
    is_power = np.isfinite(alpha)
    if np.any(alpha[is_power] <= 1.0):
        raise CostmodelError("routing power_law_<alpha> needs alpha > 1 (e.g. power_law_1.2)")
    power_pairs, power_touched, top = (np.ones_like(T) for _ in range(3))
    if is_power.any():
        combos = np.stack([T, k, E, ep, alpha, legacy], axis=-1)[is_power]
        unique, inverse = np.unique(combos, axis=0, return_inverse=True)
        loads = np.array(
            [
                power_law_load(round(t), round(kk), round(e), round(p), float(al), bool(old))
                for t, kk, e, p, al, old in unique
            ]
        )
        power_pairs[is_power], power_touched[is_power], top[is_power] = loads[inverse.ravel()].T
    power = RoutingLoad(pairs=power_pairs, touched_experts=power_touched, busiest_expert_tokens=top)

    grouped = RoutingLoad(
        pairs=gate_load[0], touched_experts=gate_load[1], busiest_expert_tokens=gate_load[2]
    )

    def pick(field: str) -> FloatArray:
        return np.asarray(
            np.where(
                is_power,
                getattr(power, field),
                np.where(
                    gated,
                    getattr(grouped, field),
                    np.where(kinds == "uniform", getattr(uniform, field), getattr(balanced, field)),
                ),
            ),
            dtype=np.float64,
        )

    out = RoutingLoad(pick("pairs"), pick("touched_experts"), pick("busiest_expert_tokens"))
    for array in (out.pairs, out.touched_experts, out.busiest_expert_tokens):
        array.setflags(write=False)
    return out


# ----------------------------------------------------------------------------------------------------
# Time
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoEBreakdown:
    """The terms of the MoE time [s] and the routing outcome behind them (arrays)."""

    fixed_s: FloatArray
    memory_s: FloatArray
    compute_s: FloatArray
    dequant_s: FloatArray
    load: RoutingLoad

    overlap_exponent: float

    @property
    def total(self) -> FloatArray:
        p = self.overlap_exponent
        big = np.maximum(np.maximum(self.memory_s, self.compute_s), 1e-30)  # scaled for a stable p-norm
        combined = big * ((self.memory_s / big) ** p + (self.compute_s / big) ** p) ** (1.0 / p)
        return np.asarray(self.fixed_s + combined + self.dequant_s, dtype=np.float64)


def breakdown(
    hardware: HardwareProfile,
    params: Params,
    *,
    num_tokens: npt.ArrayLike,
    hidden_size: npt.ArrayLike,
    inter_size: npt.ArrayLike,
    topk: npt.ArrayLike,
    num_experts: npt.ArrayLike,
    tp_size: npt.ArrayLike = 1,
    ep_size: npt.ArrayLike = 1,
    routing: npt.ArrayLike = "balanced",
    gated: npt.ArrayLike = True,
    tuned_config: npt.ArrayLike = True,
) -> MoEBreakdown:
    """The terms of ``time_s`` (same arguments)."""
    T, H, I, k, E, tp, ep = (  # noqa: E741 (I: the paper's symbol for the intermediate width)
        np.asarray(v, dtype=np.float64)
        for v in np.broadcast_arrays(num_tokens, hidden_size, inter_size, topk, num_experts, tp_size, ep_size)
    )
    for name, value in (("hidden_size", H), ("inter_size", I), ("tp_size", tp)):
        if np.any(value < 1):
            raise CostmodelError(f"moe.time_s: {name} must be >= 1")
    if params.compute_units <= 0 and (params.compute_fill_share > 0 or params.group_switch_s > 0):
        # the key's other terms were fitted with these SM terms adding time back: without them it runs fast
        raise CostmodelError(
            f"moe.time_s: hardware {hardware.name!r} has no datasheet.compute_units (SM count), which the "
            "kernel models need: these MoE parameters spread "
            f"compute_fill_share={params.compute_fill_share:g} and group_switch_s={params.group_switch_s:g} "
            "over the SMs; add it to the profile with its source"
        )
    load = routing_load(routing, tokens=T, topk=k, num_experts=E, ep_size=ep)
    matrices = np.where(np.asarray(gated, dtype=bool), 3.0, 2.0)
    expert_weights = matrices * H * I / tp  # elements of one expert's slice on this GPU
    weight_bytes = load.touched_experts * expert_weights * params.weight_bits / 8.0
    # The up (gate/up) and down GEMMs stream their weights one after the other, each over as many SMs as
    # it has column tiles (at least one per touched expert): few narrow experts leave SMs idle.
    up_columns = (matrices - 1.0) * I / tp
    up_bytes = load.touched_experts * up_columns * H * params.weight_bits / 8.0
    streamed = up_bytes / _sm_fill(params, load.touched_experts, up_columns) + (
        weight_bytes - up_bytes
    ) / _sm_fill(params, load.touched_experts, H)
    # rows whose intermediates this GPU writes and reads once each: gate/up output, activation, down output
    rows = load.pairs + params.routed_pair_fraction * np.maximum(T * k - load.pairs, 0.0)
    width = I / tp
    activation_bytes = params.activation_bytes * (2.0 * T * H + 2.0 * rows * (matrices * I / tp + H))
    capacity = params.cache_fraction * params.cache_bytes
    # the weights (and the layer's input and output) are reused from one call to the next, across the
    # whole call's working set; each intermediate is written by one kernel and read by the next, so its
    # reuse distance is its own producer -> consumer pair plus the share of the weights streamed between
    hit = _hit_rate(params, capacity, weight_bytes + 0.5 * activation_bytes)
    intermediate_bytes = _intermediate_traffic(params, capacity, T, H, width, matrices, rows, weight_bytes)
    # a grouped GEMM cannot spread the busiest expert's rows over the whole GPU as evenly as the total:
    # a fraction of the work scales with (touched experts x busiest expert's rows) instead of the pairs
    busiest = np.minimum(load.busiest_expert_tokens, load.pairs)
    skewed_pairs = load.pairs + params.imbalance_fraction * np.maximum(
        load.touched_experts * busiest - load.pairs, 0.0
    )
    # each touched expert computes at least one M tile: a fixed one, or the per-call tile a trtllm-gen
    # runner picks from the rows per local expert (local_share_tile), whichever is larger
    tile = np.maximum(
        params.tile_m_tokens,
        params.local_tile_share * local_share_tile(T, k, E, ep, params.local_tile_max_tokens),
    )
    padded_pairs = np.maximum(skewed_pairs, load.touched_experts * tile)
    # each output tile's pipeline fill and epilogue cost as much as tile_overhead_k more elements of its
    # reduction loop: the up GEMM reduces over H, the down GEMM over I/tp (short at high TP)
    k0 = params.tile_overhead_k
    flop = 2.0 * padded_pairs * ((matrices - 1.0) * width * (H + k0) + H * (width + k0))
    dequant = (
        load.touched_experts * expert_weights * params.dequant_s_per_element
        if params.weight_only
        else np.zeros_like(T)
    )
    # a width that is not a multiple of ALIGNMENT_ELEMENTS takes the kernels' unvectorized path; a default
    # launch configuration (no tuned file) runs the whole grouped GEMM slower, but only vLLM's large-batch
    # default (64 x 64 x 32 tiles, tokens > experts on the GPU): with no more tokens than experts it takes a
    # 16 x 32 x 64 tile, the kind tuning also picks for few rows (get_default_config, moe_configs)
    misaligned = np.mod(width, ALIGNMENT_ELEMENTS) != 0
    fill_ratio = compute_fill_ratio(params, load.touched_experts, padded_pairs, tile, up_columns, H, width)
    default_tiles = ~np.asarray(tuned_config, dtype=bool) & (E / ep < T)
    untuned = np.where(default_tiles, params.default_config_ratio, 1.0)
    memory_ratio = untuned * np.where(misaligned, params.misaligned_memory_ratio, 1.0)
    compute_ratio = (
        untuned
        * np.where(misaligned, params.misaligned_compute_ratio, 1.0)
        * (1.0 + params.compute_fill_share * (fill_ratio - 1.0))
    )
    return MoEBreakdown(
        fixed_s=params.launch_s
        + params.expert_map_s * (ep > 1)
        + params.per_expert_s * load.touched_experts
        + params.per_local_expert_s * E / ep
        + params.group_switch_s * group_switches(params, load, up_columns, H)
        + params.per_token_s * T
        + params.fallback_routing_s * unfused_routing(params, k, E)
        + params.per_routed_pair_s * T * k
        + params.per_pair_s * load.pairs,
        memory_s=memory_ratio
        * (
            streamed * (1.0 - hit + hit / params.cache_speedup)
            + params.activation_bytes * 2.0 * T * H * (1.0 - hit + hit / params.cache_speedup)
            + intermediate_bytes
        )
        / (params.memory_bandwidth_bytes_per_s * params.bandwidth_fraction),
        compute_s=compute_ratio * flop / (params.peak_flop_per_s * params.compute_fraction),
        dequant_s=np.asarray(dequant, dtype=np.float64),
        load=load,
        overlap_exponent=params.overlap_exponent,
    )


GROUPED_TILE_TOKENS: Final = 128.0
"""Rows (M) of one output tile of the CUTLASS grouped GEMMs :func:`group_switches` counts [tokens]: the
128-row UMMA tile of one Blackwell CTA (and Hopper's 128-row warp-group tiles), TensorRT-LLM's most common
MoE CTA shape (``CtaShape128x128x..`` in ``cpp/tensorrt_llm/kernels/cutlass_kernels/moe_gemm``,
https://github.com/NVIDIA/TensorRT-LLM). Not fitted."""

GROUPED_TILE_COLUMNS: Final = 128.0
"""Columns (N) of that tile [elements]. Not fitted."""


def group_switches(params: Params, load: RoutingLoad, up_columns: FloatArray, H: FloatArray) -> FloatArray:
    """Group changes one CTA of a call's two grouped GEMMs makes, the mean over the GPU's SMs [-].

    CUTLASS's persistent grouped GEMM (``PersistentTileSchedulerSm90Group`` and its SM100 counterpart)
    hands CTA ``c`` the tiles ``c, c + SMs, c + 2 SMs, ...`` of the groups' tiles laid end to end. A CTA
    whose next tile lies in another group (``did_batch_change`` in ``sm90_gemm_array_tma_warpspecialized_
    cooperative.hpp`` / ``sm100_gemm_array_tma_warpspecialized.hpp``, https://github.com/NVIDIA/cutlass)
    rewrites its TMA descriptors for that group in shared memory, copies them out and fences them
    (``tensormaps_perform_update``, ``tensormaps_cp_fence_release``) and its producer waits on that fence
    before the first load (``tensormaps_fence_acquire``). An expert with fewer tiles than the GPU has SMs
    (every MoE expert at small and medium batches) gives each CTA at most one of its tiles, so each CTA
    changes group on nearly every tile: the switches per CTA are the tiles over the SMs, each expert's
    ``ceil(rows / 128)`` x ``ceil(N / 128)`` tiles (:data:`GROUPED_TILE_TOKENS`,
    :data:`GROUPED_TILE_COLUMNS`) with its tiles capped at one per SM, summed over the up and down GEMMs.
    Unlike the streamed bytes this grows with the experts' column count, not their size: B200
    TensorRT-LLM nvfp4 CUTLASS, 64 tokens x top-8, 384 experts of 7168 x 2048 (9.5 GB, 12,288 + 21,504
    tiles) run in 1.53 ms, 6.2 TB/s, where 256 experts of 2048 x 512 at TP 2 (226 MB, 1,024 + 4,096
    tiles) take 137 us, 1.7 TB/s.

    The mean, not the busiest CTA: the tiles are dealt round-robin, so every CTA gets the same number of
    tiles to within one per GEMM. Assumption: every touched expert holds the mean rows per expert
    (``pairs / touched_experts``), so skewed routing, where a busy expert has more M tiles, is under-counted.
    0 where the profile has no SM count (``compute_units`` 0): no term rather than a guessed SM count
    (:func:`breakdown` raises where a key's ``group_switch_s`` is above 0 on such a profile)."""
    if params.compute_units <= 0:
        return np.zeros_like(np.asarray(load.pairs, dtype=np.float64))
    sms = params.compute_units
    rows = load.pairs / np.maximum(load.touched_experts, 1.0)
    total = np.zeros_like(rows)
    for columns in (up_columns, H):
        total = total + _output_tiles(
            load.touched_experts, rows, GROUPED_TILE_TOKENS, columns, GROUPED_TILE_COLUMNS, per_expert_cap=sms
        )
    return np.asarray(total / sms, dtype=np.float64)


def compute_fill_ratio(
    params: Params,
    experts: FloatArray,
    padded_pairs: FloatArray,
    tile: FloatArray,
    up_columns: FloatArray,
    H: FloatArray,
    width: FloatArray,
) -> FloatArray:
    """Compute time of the call's two grouped GEMMs on the SMs their output tiles occupy, over that on the
    whole GPU [-] (>= 1; 1 where the profile has no SM count).

    A grouped GEMM hands each CTA one output tile of ``tile`` rows (the M tile each touched expert pads to)
    by :data:`GROUPED_TILE_COLUMNS` columns and runs its whole reduction there, so a GEMM of fewer tiles
    than the GPU has SMs computes on only that many: per GEMM, ``fill = min(1, experts x ceil(rows per
    expert / tile) x ceil(N / 128) / SMs)`` (N: the up GEMM's ``(m - 1) I/tp`` columns, the down GEMM's
    ``H``), and the ratio is the FLOP-weighted mean of ``1 / fill`` (the up GEMM does ``(m - 1) I/tp x H``
    per row, the down GEMM ``H x I/tp``). TensorRT-LLM's trtllm-gen kernels (which its ``min_latency`` and
    MXFP4 MoE runners and FlashInfer's ``trtllm_*_moe`` launch) are compiled per tile, the weights' 128 rows
    against the tokens' tile (``tile128x8x256 ... transposeMmaOutput`` in their kernel names), some with the
    reduction split over 4 CTAs (``splitK4``; ``cpp/tensorrt_llm/kernels/trtllmGenKernels/gemmGatedAct/
    trtllmGen_gatedAct_export/KernelMetaInfo.h``, https://github.com/NVIDIA/TensorRT-LLM), so how much of
    a call's compute waits on its tiles' SMs is fitted (``Params.compute_fill_share``). B200 TensorRT-LLM
    MXFP4 x MXFP8, one expert of 4096 x 2048 per GPU (EP 256), top-6: from 48 to 1,024 tokens its 256-row
    tile gives 32 up and 32 down tiles for 148 SMs, and the call takes 54-61 us where the whole-GPU
    compute put it at 32-42 us. :func:`breakdown` raises where a key's ``compute_fill_share`` is above 0 on a
    profile with no SM count."""
    if params.compute_units <= 0:
        return np.ones_like(np.asarray(padded_pairs, dtype=np.float64))
    sms = params.compute_units
    groups = np.maximum(experts, 1.0)
    rows = padded_pairs / groups
    total = np.zeros_like(np.asarray(padded_pairs, dtype=np.float64))
    spread = np.zeros_like(total)
    for columns, work in ((up_columns, up_columns * H), (H, H * width)):
        ctas = _output_tiles(groups, rows, np.maximum(tile, 1.0), columns, GROUPED_TILE_COLUMNS)
        fill = np.minimum(ctas / sms, 1.0)
        total = total + work
        spread = spread + work / fill
    return np.asarray(spread / total, dtype=np.float64)


def _intermediate_traffic(
    params: Params,
    capacity: float,
    T: FloatArray,
    H: FloatArray,
    width: FloatArray,
    matrices: FloatArray,
    rows: FloatArray,
    weight_bytes: FloatArray,
) -> FloatArray:
    """Bytes of the intermediates' writes and reads (each once), each weighted by its own hit rate (a hit
    costs ``1 / cache_speedup`` of a byte from memory).

    Three intermediates pass between the kernels of one call, each written by one and read by the next:
    the gate/up output (``(m - 1) I/tp`` per routed row; the activation reads it while writing its own
    output, so its reuse distance is both, ``m I/tp`` per row), the activation (``I/tp``; the down GEMM
    reads it while writing its output, ``I/tp + H``) and the down projection's output (``H``; the combine
    reads it while writing the layer's output, ``rows H + T H``). Each distance also holds
    ``intermediate_weight_share`` of the weights streamed between the write and the read. A batch whose
    intermediates overflow the L2 together may still keep each producer -> consumer pair in it: L40S fp8,
    128 experts of 2048 x 768 at EP 16-128, 2,048 tokens x top-8: 50, 25 and 67 MB intermediates, pairs of
    75-92 MB in the 96 MB L2, 0.27-0.35 ms; 4,096 tokens (pairs of 150-184 MB) take 0.84-0.91 ms."""
    size = params.activation_bytes * rows  # bytes per element-column of all routed rows
    shared = params.intermediate_weight_share * weight_bytes
    parts = (
        ((matrices - 1.0) * width, matrices * width * size),
        (width, (width + H) * size),
        (H, H * size + params.activation_bytes * T * H),
    )
    total = np.zeros_like(T)
    for columns, distance in parts:
        hit = _hit_rate(params, capacity, distance + shared)
        total = total + 2.0 * columns * size * (1.0 - hit + hit / params.cache_speedup)
    return np.asarray(total, dtype=np.float64)


def _hit_rate(params: Params, capacity: float, working_set: FloatArray) -> FloatArray:
    """LRU hit rate of a working set swept cyclically through ``capacity`` bytes of cache: the logistic
    step of exponent ``cache_sharpness`` around the capacity (0 where the profile has no cache size)."""
    if capacity <= 0:
        return np.zeros_like(working_set)
    # exp(-n log(W / C)) keeps the step finite for any working set
    ratio_log = np.log(np.maximum(working_set, 1.0)) - np.log(capacity)
    return np.asarray(
        1.0 / (1.0 + np.exp(np.minimum(params.cache_sharpness * ratio_log, 700.0))), dtype=np.float64
    )


def _sm_fill(params: Params, experts: FloatArray, columns: FloatArray) -> FloatArray:
    """Share of the SMs a weight-streaming GEMM keeps busy: its column tiles (``columns / stream_tile_n``
    per touched expert, at least one; each expert's few rows one M tile) over the SM count, at most 1 (1
    where the profile has no SM count). The column count is not rounded up: ``stream_tile_n`` is a fitted
    width, and a whole-tile count would leave the fit no slope in it between steps."""
    if params.compute_units <= 0:
        return np.ones_like(experts)
    tiles = _output_tiles(experts, 1.0, 1.0, columns, params.stream_tile_n, whole_columns=False)
    return np.asarray(np.minimum(tiles / params.compute_units, 1.0), dtype=np.float64)


def _output_tiles(
    experts: FloatArray | float,
    rows: FloatArray | float,
    tile_m: FloatArray | float,
    columns: FloatArray | float,
    tile_n: FloatArray | float,
    *,
    per_expert_cap: float = np.inf,
    whole_columns: bool = True,
) -> FloatArray:
    """Output tiles of one grouped GEMM over ``experts`` experts of ``rows`` rows and ``columns`` columns
    each [-]: per expert ``ceil(rows / tile_m)`` (at least one) M tiles x ``ceil(columns / tile_n)`` N
    tiles (``max(columns / tile_n, 1)`` unrounded where ``whole_columns`` is False), at most
    ``per_expert_cap`` per expert, times the experts. The one count of "tiles over SMs" that
    :func:`group_switches`, :func:`compute_fill_ratio` and :func:`_sm_fill` each take with their own
    tile shape."""
    m_tiles = np.maximum(np.ceil(np.divide(rows, tile_m) - 1e-9), 1.0)
    ratio = np.divide(columns, tile_n)
    n_tiles = np.ceil(ratio - 1e-9) if whole_columns else np.maximum(ratio, 1.0)
    return np.asarray(experts * np.minimum(m_tiles * n_tiles, per_expert_cap), dtype=np.float64)


def time_s(
    hardware: HardwareProfile,
    params: Params,
    *,
    num_tokens: npt.ArrayLike,
    hidden_size: npt.ArrayLike,
    inter_size: npt.ArrayLike,
    topk: npt.ArrayLike,
    num_experts: npt.ArrayLike,
    tp_size: npt.ArrayLike = 1,
    ep_size: npt.ArrayLike = 1,
    routing: npt.ArrayLike = "balanced",
    gated: npt.ArrayLike = True,
    tuned_config: npt.ArrayLike = True,
) -> FloatArray:
    """Time of one MoE layer on the GPU that finishes last [s].

    Parameters
    ----------
    num_tokens : tokens entering the layer (the whole batch, before expert parallelism) [-].
    hidden_size : model width H [-].  inter_size : one expert's intermediate width I [-].
    topk : experts per token k [-].  num_experts : routed experts E [-].
    tp_size : tensor parallelism inside each expert (I split) [-].
    ep_size : expert parallelism (E split) [-].
    routing : ``"balanced"``, ``"uniform"`` or ``"power_law_<alpha>"``.
    gated : True for gate/up/down experts (SwiGLU), False for up/down only.
    tuned_config : False where the kernel falls back to its default launch configuration (vLLM's Triton
        fused_moe without a tuned file: :func:`costmodel.kernels.moe_configs.tuned_config`).
    """
    return breakdown(
        hardware,
        params,
        num_tokens=num_tokens,
        hidden_size=hidden_size,
        inter_size=inter_size,
        topk=topk,
        num_experts=num_experts,
        tp_size=tp_size,
        ep_size=ep_size,
        routing=routing,
        gated=gated,
        tuned_config=tuned_config,
    ).total
