"""Context (prefill) attention: a fused FlashAttention-style kernel over a whole prompt.

One kernel call computes ``softmax(Q K^T / sqrt(d)) V`` for ``batch_size`` sequences of ``seq_len`` new
tokens each, ``n_heads`` query heads sharing ``n_kv_heads`` key/value heads (GQA/MQA), causal by default,
optionally within a sliding window of ``window`` keys. The model:

    time = launch_s + max(compute_s, memory_s)

- **Work, counted in tiles.** FlashAttention splits queries and keys into tiles of ``tile_tokens`` rows
  and skips key tiles above the causal diagonal (Dao 2023, "FlashAttention-2", section 3.1.1,
  https://arxiv.org/abs/2307.08691). A query tile ``i`` visits ``i + 1`` key tiles (causal), or the
  ``ceil(window / tile) + 1`` tiles a window touches. Diagonal tiles are computed whole, and a sequence
  shorter than a tile still costs one full tile: that is the short-sequence padding. ``causal_pairs``
  gives the exact (untiled) count: ``s (s + 1) / 2`` per head and sequence, about half of ``s^2``.
- **Time per (query, key) pair** = two matmuls, ``2 (head_dim + v_head_dim)`` FLOP at a fraction of the
  tensor-core peak of the compute dtype (bf16, or fp8 where the kernel runs FP8 FMHA), plus one
  exponential in the softmax at ``softmax_pairs_per_s``. The exponential unit is about 256 times slower
  than the bf16 tensor cores on H100 (989 TFLOPS vs 3.9 TFLOPS of special functions; Shah et al. 2024,
  "FlashAttention-3", section 3.1, https://arxiv.org/abs/2407.08608), so small ``head_dim`` kernels run
  at a lower fraction of the matmul peak.
- **Filling the SMs.** One thread block (CTA) computes one query tile of one head of one sequence. The
  longest CTA (the last query tile, which visits the most key tiles) runs on one SM at
  ``lone_cta_speedup / sm_count`` of the device rate. Causal CTAs differ in size and are scheduled in
  launch order, so the time is the average load per SM plus the longest CTA (Graham's bound for a
  greedy list schedule); with few tiles the longest CTA dominates: the GPU is under-filled. Full
  attention's equal CTAs run in waves of ``sm_count``.
- **Memory**: the attention kernel reads Q, K, V and writes O once, overlapped with its compute; before
  it the engine's cache-write kernel reads the new K, V and writes them into the paged KV cache (vLLM
  ``reshape_and_cache``, TensorRT-LLM's QKV preprocessing), not overlapped. Both at a fraction of the
  datasheet bandwidth; they bound short prompts in large batches. Tensors that fit in L2 together stay
  there when the same call repeats (as in a kernel benchmark) and move ``cache_bandwidth_ratio``
  times faster; in serving each layer brings its own, so pass ``cache_bytes=0`` there.
- **cta_overhead_s**: each CTA's fixed time outside the key loop (load Q, fill the load pipeline,
  normalise and write O); it is what makes many short sequences cost more than their FLOPs.
- **launch_s**: the fixed cost of the call (kernel launches, metadata), seconds.

- **A chunk after a prefix** (``past_len``, chunked prefill and speculative verification): each of the
  ``seq_len`` new queries also attends to the ``past_len`` cached keys before it (within the window); the
  pairs are ``causal_pairs(past_len + seq_len) - causal_pairs(past_len)``, the diagonal tiles are the
  chunk's own, and the kernel reads the prefix's K and V once. ``past_len=0`` (the default, the public
  tables' setting) is the prompt-from-scratch case.

Assumptions: compute and memory overlap inside the kernel; key tiles of a window start on a tile boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError
from costmodel.kernels import cache_bytes, sm_count
from costmodel.specs import HardwareProfile

FloatArray = npt.NDArray[np.float64]

#: Dtype keys name the compute dtype, optionally prefixed by a kernel class (``"fa3:bf16"``) and
#: suffixed by the KV-cache format (``"bf16+fp8kv"``). Only the compute dtype changes the defaults.
COMPUTE_DTYPES = ("bf16", "fp16", "fp8")


@dataclass(frozen=True)
class Params:
    """Named parameters of the context-attention model for one (device, dtype key)."""

    peak_flop_per_s: float
    """Dense tensor-core peak of the compute dtype [FLOP/s] (datasheet)."""
    bandwidth_bytes_per_s: float
    """Datasheet memory bandwidth [bytes/s]."""
    sm_count: float
    """Streaming multiprocessors [-] (datasheet)."""
    cache_bytes: float = 0.0
    """On-chip L2 cache [bytes] (datasheet); 0 when unknown."""
    compute_fraction: float = 0.7
    """Achieved fraction of the tensor-core peak on the two matmuls [-]."""
    softmax_pairs_per_s: float = 3.9e12
    """Softmax throughput, (query, key) pairs per second for the whole device [1/s]."""
    bandwidth_fraction: float = 0.8
    """Achieved fraction of the datasheet memory bandwidth [-]."""
    softmax_overlap_fraction: float = 0.5
    """Fraction of the shorter of (matmul, softmax) time hidden under the longer [-]: 0 when the two run
    one after the other (FlashAttention-2), towards 1 with FlashAttention-3's ping-pong scheduling."""
    masked_tile_extra_fraction: float = 0.5
    """Extra time of a tile the causal or window mask cuts, relative to an unmasked one [-] (the mask
    is applied element by element on the scores)."""
    launch_s: float = 5e-6
    """Fixed cost per call [s]."""
    cta_overhead_s: float = 1e-6
    """Time one SM spends per CTA outside the key loop (load the Q tile, fill the pipeline, normalise and
    write the O tile) [s]."""
    cache_bandwidth_ratio: float = 1.0
    """Memory rate from L2 over the rate from HBM [-] for a call whose tensors stay in L2 between calls
    (1 by default: datasheets give no L2 bandwidth; calibration finds it)."""
    lone_cta_speedup: float = 1.0
    """How much faster one CTA runs when few run at once than its share ``1 / sm_count`` of the full
    device's rate [-] (boost-clock headroom, no contention for L2 and HBM); sets the critical path."""
    tile_tokens: float = 128.0
    """Query and key tile size [tokens] (FlashAttention-2/3 use 128 on Ampere/Hopper for head_dim <= 128)."""
    feed_rows: float = 128.0
    """Query-tile height [rows] below which a ``gqa_packed`` kernel's CTA cannot feed its tensor cores at
    the full pair rate: a tile of ``r`` rows runs at ``min(1, r / feed_rows)`` of it (FlashInfer's 16- and
    64-row tiles load the same K / V tiles for fewer rows than its 128-row one; default: the rate scales
    with the rows up to the 128-row tile). 16: no slowdown."""
    gqa_packed: float = 0.0
    """1 for a kernel that packs the query heads sharing a KV head into one query tile, with a tile height
    chosen from the packed length (FlashInfer's FA2 prefill: one CTA per KV head and ``cta_tile_q`` packed
    rows, :func:`packed_tile_rows`); 0 for one CTA per query head and ``tile_tokens`` tokens
    (FlashAttention-2/3). Set from the key (:data:`GQA_PACKED_KERNELS`), not fitted [-]."""
    swaps_single_query: float = 0.0
    """1 for a kernel reached through FlashAttention-2's varlen interface, which runs a one-token GQA call
    (``seq_len`` 1, ``n_heads > n_kv_heads``, no window) with the query heads of a KV head swapped into
    the sequence dimension: one CTA per (sequence, KV head) over the group's rows instead of one per query
    head, and, unless the swap is a view, copies of the query and the output (``query_copy_s``;
    ``seqlenq_ngroups_swapped`` in ``mha_varlen_fwd``,
    https://github.com/vllm-project/flash-attention/blob/main/csrc/flash_attn/flash_api.cpp). Set from the
    key (:data:`SWAPPED_QUERY_KERNELS`), not fitted [-]."""
    query_copy_s: float = 0.0
    """Fixed time of the copies a swapped one-token GQA call makes of its query and output when the swap is
    not a view (``batch_size > 1`` and ``n_kv_heads > 1``; :func:`swapped_query_copy_s`); 0 elsewhere [s]."""


BOUNDS: dict[str, tuple[float, float]] = {
    "compute_fraction": (0.02, 1.0),
    "softmax_pairs_per_s": (1e11, 1e15),
    "bandwidth_fraction": (0.05, 1.0),
    "softmax_overlap_fraction": (0.0, 1.0),
    "masked_tile_extra_fraction": (0.0, 4.0),
    "launch_s": (1e-7, 5e-4),
    "cta_overhead_s": (1e-8, 1e-4),
    "lone_cta_speedup": (0.5, 4.0),
    "cache_bandwidth_ratio": (1.0, 10.0),
    "feed_rows": (16.0, 128.0),
    "query_copy_s": (0.0, 5e-5),
}

SWAPPED_QUERY_KERNELS = ("vllm.vllm_flash_attn:", "vllm.vllm_flash_attn_fa2:")
"""Key prefixes of the kernels reached through FlashAttention-2's varlen interface (``swaps_single_query``):
vLLM's FlashAttention-2 build (``vllm_flash_attn`` on the A100 in vLLM 0.14, ``vllm_flash_attn_fa2`` on the
L40S). FlashAttention-3 packs the group inside its kernel (``pack_gqa``); FlashInfer and TensorRT-LLM take
the query as it is laid out. In the L40S tables a one-token call with the swap takes time in proportion to
``batch_size x n_kv_heads`` whatever ``n_heads`` (batch 256: 14-16 / 27-33 / 42-48 / 70-77 µs at 1 / 2 / 4 / 8
KV heads for 2 to 96 query heads), without it in proportion to ``batch_size x n_heads`` (Llama-style 32
heads: 212 µs)."""


def fixed_for(key: str, hardware: HardwareProfile | None = None) -> tuple[str, ...]:
    """Parameters a fit must not move for ``key`` on any ``hardware``:
    the swapped query's copies, where the key's kernel never
    swaps (:data:`SWAPPED_QUERY_KERNELS`)."""
    return () if key.startswith(SWAPPED_QUERY_KERNELS) else ("query_copy_s",)


def swapped_query(
    seq_len: npt.ArrayLike, n_heads: npt.ArrayLike, n_kv_heads: npt.ArrayLike, window: npt.ArrayLike
) -> npt.NDArray[np.bool_]:
    """Where FlashAttention-2's varlen interface swaps the query heads of a KV head into the sequence
    dimension: one query token, grouped heads, no window (``seqlenq_ngroups_swapped``) [-]."""
    s, h, hkv, w = (np.asarray(x, dtype=np.float64) for x in (seq_len, n_heads, n_kv_heads, window))
    return np.asarray((s == 1.0) & (h > hkv) & (w <= 0.0))


def swapped_query_copy_s(
    params: Params,
    *,
    batch_size: npt.ArrayLike,
    seq_len: npt.ArrayLike,
    n_heads: npt.ArrayLike,
    n_kv_heads: npt.ArrayLike,
    head_dim: npt.ArrayLike,
    window: npt.ArrayLike = 0,
    act_bytes: npt.ArrayLike = 2.0,
) -> FloatArray:
    """The swapped call's copies of its query and output [s]: ``query_copy_s`` plus reading and writing
    both (``batch_size x n_heads x head_dim`` elements each) at the streaming rate, where the swap
    happens and is not a view (``q.reshape(b, h_kv, g, d).transpose(1, 2).reshape(b g, h_kv, d)`` is one
    only for ``batch_size == 1`` or ``n_kv_heads == 1``); 0 for kernels that never swap."""
    b = np.asarray(batch_size, dtype=np.float64)
    hkv = np.asarray(n_kv_heads, dtype=np.float64)
    copies = swapped_query(seq_len, n_heads, n_kv_heads, window) & (b > 1.0) & (hkv > 1.0)
    moved = 2.0 * 2.0 * b * np.asarray(n_heads, dtype=np.float64) * np.asarray(head_dim, dtype=np.float64)
    copy_s = params.query_copy_s + moved * np.asarray(act_bytes, dtype=np.float64) / (
        params.bandwidth_bytes_per_s * params.bandwidth_fraction
    )
    return np.asarray(np.where(copies & (params.swaps_single_query > 0.0), copy_s, 0.0), dtype=np.float64)


GQA_PACKED_KERNELS = ("flashinfer_fiprefill",)
"""Kernel names (in the key) of FlashInfer's own FA2 prefill template, which packs GQA groups into its query
tiles (``gqa_packed``): FlashInfer's ``PrefillPlan`` sizes tiles by ``qo_len x group_size``
(https://github.com/flashinfer-ai/flashinfer/blob/main/include/flashinfer/attention/scheduler.cuh) and
launches one CTA per (tile, KV head). vLLM's FlashInfer backend runs it for prefill on GPUs without
TensorRT-LLM's kernels (the L40S table's ``vllm_flashinfer_fiprefill``)."""

SIBLING_PHASES = ("decode",)
"""Kernel-name parts that mark another operation inside this family's tables (:func:`costmodel.kernels.
fallback_keys`): vLLM's FlashInfer backend sends a request whose query is one token through its decode
kernel (``FlashInferMetadataBuilder.build``: ``split_decodes_and_prefills(..., decode_threshold=self.
reorder_batch_threshold)``, https://github.com/vllm-project/vllm/blob/main/vllm/v1/attention/backends/
flashinfer.py), so the B200 table's one-token prompts are keyed ``vllm_flashinfer_trtllmdecode``. That
kernel's fit saw one-token queries only (memory-bound rows: no compute fraction to identify), so it is no
sibling of a prefill kernel (FlashAttention-3 on the H100 taking the median of it and FlashInfer's prefill),
nor a prefill kernel its sibling."""


def packed_tile_rows(packed_rows: npt.ArrayLike, head_dim: npt.ArrayLike) -> FloatArray:
    """FlashInfer's FA2 query-tile height for a packed length (query tokens x group size) [rows]:
    128 above 64 rows with head_dim below 256, else 64 above 16 rows, else 16 (``FA2DetermineCtaTileQ``,
    https://github.com/flashinfer-ai/flashinfer/blob/main/include/flashinfer/utils.cuh, Ampere and newer):
    a few-token prefill runs 16- or 64-row tiles, and head_dim 256 never the 128-row one."""
    rows = np.asarray(packed_rows, dtype=np.float64)
    d = np.asarray(head_dim, dtype=np.float64)
    return np.asarray(np.where((rows > 64) & (d < 256), 128.0, np.where(rows > 16, 64.0, 16.0)))


def compute_dtype(key: str) -> str:
    """The compute dtype a dtype key names: ``"fa3:bf16+fp8kv"`` -> ``"bf16"``."""
    name = key.rsplit(":", 1)[-1].split("+", 1)[0]
    if name not in COMPUTE_DTYPES:
        raise CostmodelError(
            f"attention dtype key {key!r}: compute dtype {name!r} is not one of {', '.join(COMPUTE_DTYPES)}"
        )
    return name


def default_params(hardware: HardwareProfile, dtype: str) -> Params:
    """Datasheet-only parameters.

    The softmax rate defaults to the tensor peak / 256, the H100 ratio of bf16 tensor throughput to
    exponential throughput quoted by FlashAttention-3 (section 3.1); the fractions are the profile's
    default efficiencies.
    """
    compute = compute_dtype(dtype)
    bf16_peak = hardware.peak_flop_per_s("bf16" if "bf16" in hardware.compute_dtypes else "fp16")
    swaps = dtype.startswith(SWAPPED_QUERY_KERNELS)
    return Params(
        peak_flop_per_s=hardware.peak_flop_per_s(compute),
        bandwidth_bytes_per_s=hardware.memory_bandwidth_bytes_per_s,
        sm_count=sm_count(hardware),
        cache_bytes=cache_bytes(hardware),
        compute_fraction=hardware.efficiency.matmul_fraction,
        softmax_pairs_per_s=bf16_peak / 256.0,
        bandwidth_fraction=hardware.efficiency.memory_bandwidth_fraction,
        launch_s=hardware.efficiency.kernel_overhead_s,
        gqa_packed=float(any(name in dtype for name in GQA_PACKED_KERNELS)),
        swaps_single_query=float(swaps),
        query_copy_s=hardware.efficiency.kernel_overhead_s if swaps else 0.0,  # one more eager launch
    )


def causal_pairs(seq_len: npt.ArrayLike, window: npt.ArrayLike = 0) -> FloatArray:
    """Exact (query, key) pairs a causal mask keeps per head and sequence [-].

    ``sum_i min(i + 1, window)`` over query positions ``i = 0 .. seq_len - 1``; ``window <= 0`` means no
    window: ``seq_len (seq_len + 1) / 2``.
    """
    s = np.asarray(seq_len, dtype=np.float64)
    w = np.asarray(window, dtype=np.float64)
    full = s * (s + 1.0) / 2.0
    w_eff = np.where(w > 0, np.minimum(w, s), s)
    windowed = w_eff * (w_eff + 1.0) / 2.0 + (s - w_eff) * w_eff
    return np.asarray(np.where(w > 0, windowed, full), dtype=np.float64)


def computed_pairs(
    seq_len: npt.ArrayLike,
    window: npt.ArrayLike,
    causal: npt.ArrayLike,
    tile_tokens: npt.ArrayLike,
    past_len: npt.ArrayLike = 0,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per head and sequence: query tiles, pairs in unmasked tiles, pairs in masked tiles, and the pairs
    the longest query tile computes [-].

    Causal: every query tile has one diagonal tile the mask cuts (two with a window shorter than the
    sequence: the window's left edge too); masked tiles are computed whole. Full attention: ``seq_len^2``
    pairs, none masked. With ``past_len`` cached tokens before the chunk (causal only), each query also
    attends to them: ``causal_pairs(past + seq_len) - causal_pairs(past)`` pairs.
    """
    s = np.asarray(seq_len, dtype=np.float64)
    w = np.asarray(window, dtype=np.float64)
    p = np.asarray(past_len, dtype=np.float64)
    tile = np.asarray(tile_tokens, dtype=np.float64)
    rows = np.minimum(s, tile)
    q_tiles = np.ceil(np.maximum(s, 1.0) / tile)
    edges = np.where((w > 0) & (p + s > w), 2.0, 1.0)
    masked = q_tiles * edges * rows * rows
    unmasked = np.maximum(causal_pairs(p + s, w) - causal_pairs(p, w) - masked / 2.0, 0.0)
    span = np.where(w > 0, np.minimum(p + s, w), p + s)
    is_causal = np.asarray(causal, dtype=bool)
    full = s * np.where(w > 0, np.minimum(s, 2.0 * w), s)
    longest = rows * np.where(is_causal, span + edges * rows / 2.0, full / np.maximum(s, 1.0))
    return (
        q_tiles,
        np.asarray(np.where(is_causal, unmasked, full), dtype=np.float64),
        np.asarray(np.where(is_causal, masked, 0.0), dtype=np.float64),
        np.asarray(longest, dtype=np.float64),
    )


def pair_time_s(params: Params, head_dim: FloatArray, v_head_dim: FloatArray) -> FloatArray:
    """Device time per (query, key) pair [s]: two matmuls and one exponential, partly overlapped."""
    matmul_s = 2.0 * (head_dim + v_head_dim) / (params.peak_flop_per_s * params.compute_fraction)
    softmax_s = np.broadcast_to(1.0 / params.softmax_pairs_per_s, np.shape(matmul_s))
    hidden_s = params.softmax_overlap_fraction * np.minimum(matmul_s, softmax_s)
    return np.asarray(matmul_s + softmax_s - hidden_s, dtype=np.float64)


def time_s(
    hardware: HardwareProfile,
    params: Params,
    *,
    batch_size: npt.ArrayLike,
    seq_len: npt.ArrayLike,
    n_heads: npt.ArrayLike,
    n_kv_heads: npt.ArrayLike,
    head_dim: npt.ArrayLike,
    v_head_dim: npt.ArrayLike | None = None,
    window: npt.ArrayLike = 0,
    causal: npt.ArrayLike = True,
    act_bytes: npt.ArrayLike = 2.0,
    kv_bytes: npt.ArrayLike = 2.0,
    past_len: npt.ArrayLike = 0,
) -> FloatArray:
    """Context-attention kernel time [s].

    Parameters
    ----------
    batch_size : sequences [-].
    seq_len : new tokens per sequence [tokens].
    n_heads, n_kv_heads : query and key/value heads on this device [-].
    head_dim : query/key head dimension [-]; ``v_head_dim`` the value's (default: the same).
    window : sliding-window size [tokens]; 0 for full attention.
    causal : causal mask (default) or full.
    act_bytes : bytes per element of Q and O [bytes]; ``kv_bytes`` of K and V [bytes].
    past_len : cached tokens of each sequence before these ``seq_len`` [tokens] (causal attention only).
    """
    b = np.asarray(batch_size, dtype=np.float64)
    h = np.asarray(n_heads, dtype=np.float64)
    hkv = np.asarray(n_kv_heads, dtype=np.float64)
    d = np.asarray(head_dim, dtype=np.float64)
    dv = d if v_head_dim is None else np.asarray(v_head_dim, dtype=np.float64)
    s = np.asarray(seq_len, dtype=np.float64)
    q_tiles, unmasked, masked, longest = computed_pairs(seq_len, window, causal, params.tile_tokens, past_len)
    pairs = unmasked + masked * (1.0 + params.masked_tile_extra_fraction)
    second_per_pair = pair_time_s(params, d, dv)
    ctas = b * h * q_tiles
    if params.gqa_packed:
        # one CTA per KV head and tile of packed (token, query head) rows: fewer, longer CTAs than one per
        # query head; the longest holds tile_rows / group tokens of every head of the group
        group = h / np.maximum(hkv, 1.0)
        tile_rows = packed_tile_rows(s * group, d)
        tile_q = np.maximum(tile_rows / group, 1.0)  # query tokens per CTA (whole tokens)
        longest = computed_pairs(seq_len, window, causal, tile_q, past_len)[3]
        longest = longest * np.minimum(group, tile_rows)
        ctas = b * hkv * np.ceil(np.maximum(s, 1.0) * group / tile_rows)
        # a shorter query tile does fewer MMAs per K / V tile it loads: below feed_rows it cannot keep
        # the tensor cores fed (operand bytes per FLOP grow as the tile shrinks)
        second_per_pair = second_per_pair / np.minimum(1.0, tile_rows / params.feed_rows)
    if params.swaps_single_query:
        # a swapped one-token call: one CTA per (sequence, KV head) over the group's query heads as rows
        swapped = swapped_query(s, h, hkv, window)
        group = h / np.maximum(hkv, 1.0)
        ctas = np.where(swapped, b * hkv * np.ceil(group / params.tile_tokens), ctas)
        longest = np.where(swapped, longest * np.minimum(group, params.tile_tokens), longest)
    # SM-seconds: every CTA's key loop plus its fixed prologue / epilogue
    sm_s = b * h * pairs * second_per_pair * params.sm_count + ctas * params.cta_overhead_s
    bulk_s = sm_s / params.sm_count
    # Full attention: CTAs of equal size run in waves of sm_count. Causal CTAs differ in size and run
    # in launch order, not longest first: a greedy list schedule ends within the average load plus
    # the longest CTA (Graham 1969, "Bounds on multiprocessing timing anomalies", SIAM J. Appl. Math.)
    waves = np.ceil(ctas / params.sm_count)
    wave_s = bulk_s * waves * params.sm_count / np.maximum(ctas, 1.0)
    critical_s = longest * second_per_pair * params.sm_count / params.lone_cta_speedup + params.cta_overhead_s
    compute_s = np.where(np.asarray(causal, dtype=bool), bulk_s + critical_s, np.maximum(wave_s, critical_s))
    tokens = b * s
    act = np.asarray(act_bytes, dtype=np.float64)
    kv = np.asarray(kv_bytes, dtype=np.float64)
    w = np.asarray(window, dtype=np.float64)
    past = np.asarray(past_len, dtype=np.float64)
    prefix = b * np.where(w > 0, np.minimum(past, np.maximum(w - 1.0, 0.0)), past)  # cached keys read
    attention_bytes = tokens * (h * (d + dv) * act + hkv * (d + dv) * kv) + prefix * hkv * (d + dv) * kv
    cache_write_bytes = tokens * hkv * (d + dv) * (act + kv)
    # tensors small enough to stay in L2 between calls (a benchmark repeating one call) move at L2 rate
    fits = attention_bytes + cache_write_bytes <= params.cache_bytes
    from_cache = np.where(fits, params.cache_bandwidth_ratio, 1.0)
    bandwidth = params.bandwidth_bytes_per_s * params.bandwidth_fraction * from_cache
    # the attention kernel reads Q and the cached K, V and writes O, overlapped with its compute
    attention_s = attention_bytes / bandwidth
    # the engine's cache-write kernel before it reads the new K, V and writes them into the paged cache
    cache_write_s = cache_write_bytes / bandwidth
    copy_s = swapped_query_copy_s(
        params,
        batch_size=b,
        seq_len=s,
        n_heads=h,
        n_kv_heads=hkv,
        head_dim=d,
        window=window,
        act_bytes=act,
    )
    return np.asarray(
        params.launch_s + np.maximum(compute_s, attention_s) + cache_write_s + copy_s, dtype=np.float64
    )
