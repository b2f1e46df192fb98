"""Generation (decode) attention: one new query token per sequence against its cached K and V.

Decode attention does about one multiply-add per byte of KV cache it reads, so it streams the cache
from HBM. The model:

    time = launch_s + max(stream_s, compute_s) + combine_s
    stream_s = load_s + fixed_s - cta_overlap_fraction x min(load_s, fixed_s)

- **KV bytes**: ``batch_size x kv_len x n_kv_heads x (head_dim + v_head_dim) x kv_bytes`` (a sliding
  window caps ``kv_len``); fp8 KV halves them.
- **Split-K (FlashDecoding).** One thread block (CTA) per (sequence, KV head) leaves most SMs idle when
  ``batch_size x n_kv_heads`` is small, so decode kernels split the sequence into chunks of at least
  ``split_min_tokens`` and reduce the partial results in a second pass (Dao et al. 2023,
  "Flash-Decoding for long-context inference", https://pytorch.org/blog/flash-decoding/; FlashInfer's
  split-KV, https://flashinfer.ai/2024/02/02/cascade-inference.html). The split count is the allowed
  one (chunks of at least ``split_min_tokens``, at most ``max_splits``) that takes the least time
  (:func:`best_splits`), as the kernels' split heuristics aim to: enough CTAs to saturate the bandwidth,
  no more than their per-CTA overhead repays.
- **Streaming rate.** With ``u`` CTAs the achieved bandwidth is ``min(1, u / sm_count) x
  per_sm_bandwidth_fraction x ...``: a CTA streams at most ``bandwidth x bandwidth_fraction /
  (sm_count x per_sm_share)``; below one CTA per SM the kernel cannot reach the device bandwidth
  (Little's law: too few loads in flight).
- **Compute**: ``4 x n_heads x kv_len x head_dim`` FLOP per sequence at a fraction of the tensor peak;
  matters for wide GQA groups and large head_dim.
- **Wide head groups.** A CTA serves at most ``heads_per_cta`` query heads of one KV head (the rows of
  its tensor-core tile); a wider group (MQA with 64-128 query heads) is split over more CTAs, each
  streaming the KV again.
- **L2 residency.** A KV cache no larger than the L2 cache stays there when the same call repeats (as
  in a kernel benchmark), and streams ``cache_bandwidth_ratio`` times faster. In serving, each layer
  reads its own cache, so a step streams from HBM: pass ``cache_bytes=0`` in the parameters there.
- **Fixed time outside the streaming loop**: each CTA pays ``cta_overhead_s + cta_overhead_per_dim_s x
  (head_dim + v_head_dim)`` of SM time (load Q and fill the load pipeline with the first K/V tiles, write
  O: wider heads cost more), each sequence ``sequence_overhead_s`` (its page table and split metadata),
  spread over the SMs; it is what thousands of short sequences cost beyond their bytes. With several CTAs
  resident on an SM, one CTA's prologue runs while another's loads are in flight:
  ``cta_overlap_fraction`` of the shorter of (streaming, fixed time) is hidden under the longer. In the
  tables a batch of 2048 one-token caches and the same batch at 128 tokens take the same time.
- **Waves.** An SM holds ``resident_ctas_per_sm`` CTAs at once (shared memory and registers); when those
  in flight cannot saturate the bandwidth, a grid a little over a whole number of waves pays a whole
  extra wave (:func:`wave_load_s`). A large value is the fluid limit.
- **Sliding windows**: the bytes are the window's. A kernel sizes its split grid by the window, or by the
  whole cached sequence up to the CTAs that fill the resident slots, the chunks outside the window
  ending after their fixed time (``window_grid_full_length``; in the tables TensorRT-LLM's window-128
  decode at batch 1-8 grows with the cache length up to 65k tokens, then stays flat once the grid fills
  the GPU). Which one is a property of the kernel, chosen by the fit's starting points.
- **combine_s**: the split-K reduction kernel, charged when a row splits.
- **launch_s**: the fixed cost of the call [s].
- **FlashAttention-2's query copy** (``query_copy_s``): for one-token GQA decode FlashAttention-2's
  varlen interface swaps the query heads of a KV head into the sequence dimension (``q.reshape(b, h_kv,
  g, d).transpose(1, 2).reshape(b g, h_kv, d)``, ``seqlenq_ngroups_swapped`` in ``mha_varlen_fwd``,
  https://github.com/vllm-project/flash-attention/blob/main/csrc/flash_attn/flash_api.cpp). That last
  reshape is a view only when ``batch_size == 1`` or ``n_kv_heads == 1``; otherwise it copies the query,
  one more kernel: a fixed ``query_copy_s`` plus reading and writing the query at the streaming rate. It
  applies only where the swap does (``n_heads > n_kv_heads``, no sliding window) and only to the keys of
  kernels that run this interface (:func:`fixed_for`; 0 elsewhere). In the A100 tables (vLLM 0.14) a
  2-to-128-token cache takes 12.5 us at batch 1 or one KV head and 18 us otherwise.

Assumptions: pages of the paged cache are read whole only at the sequence end (ignored); the query,
output and partial results are small next to the cache.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from costmodel.kernels import cache_bytes, sm_count
from costmodel.kernels.context_attention import SWAPPED_QUERY_KERNELS, compute_dtype
from costmodel.specs import HardwareProfile

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Params:
    """Named parameters of the decode-attention model for one (device, dtype key)."""

    peak_flop_per_s: float
    """Dense tensor-core peak of the compute dtype [FLOP/s] (datasheet)."""
    bandwidth_bytes_per_s: float
    """Datasheet memory bandwidth [bytes/s]."""
    sm_count: float
    """Streaming multiprocessors [-] (datasheet)."""
    cache_bytes: float = 0.0
    """On-chip L2 cache [bytes] (datasheet); 0 when unknown."""
    bandwidth_fraction: float = 0.8
    """Achieved fraction of the datasheet bandwidth with every SM streaming [-]."""
    per_cta_bandwidth_fraction: float = 0.03
    """Bandwidth one CTA streams alone, as a fraction of the datasheet bandwidth [-]."""
    compute_fraction: float = 0.3
    """Achieved fraction of the tensor-core peak [-] (decode tiles are mostly padding)."""
    split_min_tokens: float = 256.0
    """Fewest KV tokens one split-K chunk holds [tokens]."""
    max_splits: float = 64.0
    """Most chunks a kernel splits one sequence into [-] (some kernels use a small fixed count)."""
    launch_s: float = 5e-6
    """Fixed cost per call [s]."""
    combine_s: float = 2e-6
    """Split-K reduction pass, when a call splits [s]."""
    cta_overhead_s: float = 1e-6
    """Time one SM spends per CTA outside the streaming loop (load the query, write the output) [s]."""
    cta_overhead_per_dim_s: float = 0.0
    """Further per-CTA time per head-dimension element of K plus V [s]: the prologue fills the load
    pipeline with the first key/value tiles and the epilogue writes O, both as wide as the head (in
    the H100 tables, a CTA's fixed time at head_dim 256 is 1.2-1.4 times that at 128)."""
    sequence_overhead_s: float = 0.0
    """SM time per sequence outside any CTA's streaming loop [s]: its page table and split metadata,
    read whatever the number of KV heads."""
    cta_overlap_fraction: float = 0.0
    """Fraction of the shorter of (streaming, per-CTA overhead) hidden under the longer [-]: with several
    CTAs resident on an SM, one CTA's prologue and epilogue run while the others' loads are in flight
    (0: one after the other, the earlier model; 1: fully overlapped)."""
    resident_ctas_per_sm: float = 64.0
    """CTAs one SM holds at once [-] (its shared memory and registers over one CTA's): CTAs beyond
    ``sm_count x resident_ctas_per_sm`` wait for a free slot, so a grid that cannot saturate the bandwidth
    runs in waves (a large value, the default, is the fluid limit)."""
    window_grid_full_length: float = 0.0
    """How a sliding-window kernel sizes its split-K grid [-]: 0, over the tokens the window keeps
    (the least-time split count); 1, over the whole cached sequence, up to the CTAs that fill the SMs'
    resident slots, the chunks outside the window ending after their fixed time (TensorRT-LLM's
    window-128 decode grows with the cache length until the grid fills the GPU). A property of the
    kernel, chosen by the fit's starting points, not moved by it."""
    cache_bandwidth_ratio: float = 1.0
    """Streaming rate from L2 over the rate from HBM [-], for a KV cache that stays in L2 between calls
    (1 by default: datasheets give no L2 bandwidth; calibration finds it)."""
    heads_per_cta: float = 16.0
    """Query heads of one KV head a CTA serves at most [-]: the rows of its tensor-core tile (16 for
    ``mma.sync.m16n8k16``, NVIDIA PTX ISA, https://docs.nvidia.com/cuda/parallel-thread-execution/;
    64 for Hopper's wgmma in FlashMLA); larger groups are split over more CTAs, each streaming the
    group's KV again."""
    query_copy_s: float = 0.0
    """Fixed time of the query copy FlashAttention-2's swapped GQA decode makes when ``batch_size > 1``
    and ``n_kv_heads > 1`` (its launch and dispatch) [s]; 0 for kernels without it (module docstring)."""


BOUNDS: dict[str, tuple[float, float]] = {
    "bandwidth_fraction": (0.05, 1.0),
    "per_cta_bandwidth_fraction": (1e-4, 1.0),
    "compute_fraction": (0.005, 1.0),
    "launch_s": (1e-7, 5e-4),
    "combine_s": (0.0, 1e-4),
    "cta_overhead_s": (0.0, 1e-4),
    "cta_overhead_per_dim_s": (0.0, 1e-7),
    "sequence_overhead_s": (0.0, 1e-4),
    "cta_overlap_fraction": (0.0, 1.0),
    "resident_ctas_per_sm": (1.0, 64.0),
    "cache_bandwidth_ratio": (1.0, 10.0),
    "heads_per_cta": (1.0, 256.0),
    "max_splits": (1.0, 256.0),
    "query_copy_s": (0.0, 5e-5),
}

QUERY_COPY_KERNELS = SWAPPED_QUERY_KERNELS
"""Key prefixes of the decode kernels reached through FlashAttention-2's varlen interface, which copies
the swapped query (``query_copy_s``): vLLM's FlashAttention-2 build (``vllm_flash_attn`` on the A100 in
vLLM 0.14, ``vllm_flash_attn_fa2`` on the L40S). FlashAttention-3 packs the group inside its kernel
(``pack_gqa``) and FlashInfer / TensorRT-LLM take the query as it is laid out: no copy."""


def copies_query(key: str) -> bool:
    """Whether the decode kernel of ``key`` can copy the swapped query: a kernel of
    ``QUERY_COPY_KERNELS`` on grouped KV heads without a window (``+mha`` has one query head per KV head
    and ``+swa`` rows pass a window: neither swaps)."""
    return key.startswith(QUERY_COPY_KERNELS) and "+mha" not in key and "+swa" not in key


def fixed_for(key: str, hardware: HardwareProfile | None = None) -> tuple[str, ...]:
    """Parameters a fit must not move for ``key`` on any ``hardware``:
    the query copy, where the key's kernel never makes it
    (:func:`copies_query`)."""
    return () if copies_query(key) else ("query_copy_s",)


CALL_LAUNCHES = 2.0
"""GPU kernels one decode-attention call launches before any split-K reduction [-]: the engine's cache
write of the new token's K and V, then the attention kernel. vLLM's ``FlashAttentionImpl.forward`` ran
``reshape_and_cache_flash`` and then ``flash_attn_varlen_func``
(``vllm/v1/attention/backends/flash_attn.py``, https://github.com/vllm-project/vllm/blob/0084b783bcda6d7ee15c337b1062cbee9985c954/vllm/v1/attention/backends/flash_attn.py),
and the public tables time one ``forward`` (``run_attention_torch``,
https://github.com/ai-dynamo/aiconfigurator/blob/main/collector/vllm/collect_attn.py). The default
``launch_s`` is that many ``kernel_overhead_s``; ``costmodel.kernel_times.GRAPH_LAUNCHES`` caps a serving
step's ``launch_s`` at the same count.

An fp8 KV cache adds no kernel to the timed call: vLLM >= 0.11 quantizes the query in the attention layer
(``Attention.forward``, PR #24914, https://github.com/vllm-project/vllm/pull/24914, fusable by
torch.compile), not in the backend's ``forward`` (its comment "queries are quantized in the attention
layer", https://github.com/vllm-project/vllm/blob/5704f34f361c6c59a9c092c4e1e96730cc6dc14d/vllm/v1/attention/backends/flash_attn.py),
and the collector casts the query to fp8 before the timed call (``query_vllm.to(fp8)`` for FLASH_ATTN with
an fp8 cache, ``collect_attn.py`` at aiconfigurator 5ef50c9 and 15cb360; FLASHINFER too at 15cb360).

Known, left (session 20, review 20a): since vLLM PR #25954 (https://github.com/vllm-project/vllm/pull/25954)
FlashAttention's cache write is ``do_kv_cache_update``, outside ``forward``
(``forward_includes_kv_cache_update = False`` at 5704f34), so the 0.24.0 FlashAttention tables time one
kernel (plus the split-K combine) where this constant says two. Lowering it moves the committed fits'
defaults and the serving cap, which needs a kernel refit; a serving step does run the cache write."""

CAPABILITY_PICKED_KERNELS: tuple[str, ...] = ("trtllm.torch_flow:",)
"""Key prefixes of decode calls whose engine picks another kernel by the device's compute capability, under
one key: TensorRT-LLM's attention op (its ``TRTLLM`` backend, ``torch_flow``) decodes with the trtllm-gen
kernels where the SM version is at least 100 and not 120 or 121 (``mUseTllmGen = (mSM >= 100) && (mSM !=
120) && (mSM != 121)``, ``cpp/tensorrt_llm/common/attentionOp.h``, https://github.com/NVIDIA/TensorRT-LLM),
and with XQA or masked MHA elsewhere (:func:`capability_kernel`). Not its FlashInfer backend
(``torch_flow_flashinfer``), which is not that op."""

KERNEL_INDEPENDENT_PARAMS: tuple[str, ...] = ()
"""What one device's decode fit says of another kernel on another device [-]: nothing.
``costmodel.calibrate.transferable`` carries only these where :func:`capability_kernel` differs between
the two devices, so such a key takes the target's datasheet defaults whole. Every decode parameter is fitted
jointly with the kernel's grid (splits, heads per CTA) and differs between kernels on one device in the
committed fits: ``bandwidth_fraction`` on the B200 0.054 / 0.063 for TensorRT-LLM's trtllm-gen ``+wide``
keys against 0.82-0.95 for the same trtllm-gen kernels reached through vLLM's FlashInfer, the H100's XQA
``+wide`` 0.24 / 0.49 against 0.72-0.99 for its other keys; ``cache_bandwidth_ratio`` 1.0-4.5 between the
B200's keys (review 20a). Neither is demonstrably the device's, so neither crosses a kernel change."""


def capability_kernel(key: str, capability: str | None) -> str | None:
    """The kernel a :data:`CAPABILITY_PICKED_KERNELS` key decodes with on a device of CUDA compute capability
    ``capability`` (``"10.0"``): ``"trtllm-gen"`` where the SM version is at least 100 and not 120 or 121,
    else ``"xqa"`` (XQA or masked MHA); ``None`` for a key of another kernel (one kernel on every device) or
    an unstated capability."""
    if not key.startswith(CAPABILITY_PICKED_KERNELS) or capability is None:
        return None
    major, _, minor = capability.partition(".")
    sm = 10 * int(major) + int(minor or 0)
    return "trtllm-gen" if sm >= 100 and sm not in (120, 121) else "xqa"


DIE_PARAMS: tuple[str, ...] = ("cache_bandwidth_ratio",)
"""Parameters that describe the device, not the kernel [-]: the rate of L2-resident KV over the memory's
is the die's (its L2 slices and crossbar against its DRAM), whichever decode kernel streams it. A key
with no stored fit at any level of :func:`costmodel.kernels.fallback_keys` takes their median over the
family's stored keys on the device (:func:`costmodel.kernels.params_for`), not the datasheet's 1, which
would time a KV cache the L2 holds at the DRAM's rate."""


SIBLING_LIBRARY: bool = True
"""A decode key's fallback sibling (:func:`costmodel.kernels.fallback_keys`, level 4) must be a kernel of the
same library (FlashAttention, FlashInfer, Triton), its name sharing a whole name part past the engine's.
A decode call's time is its kernel's own structure, what this family fits per key: its launches, its split
of the KV and the combine, what one CTA of its code does (:data:`CTA_PARAMS`), none of which another
library's code shares; a key with no such sibling takes the datasheet with the device's L2 rate
(:data:`DIE_PARAMS`). Context attention keeps the nearest name of any library: a prompt's time is mostly
its tensor work, at a fraction FlashAttention and FlashInfer prefill kernels both reach."""


CTA_PARAMS: tuple[str, ...] = (
    "per_cta_bandwidth_fraction",
    "cta_overhead_s",
    "cta_overhead_per_dim_s",
    "cta_overlap_fraction",
    "resident_ctas_per_sm",
)
"""Parameters of what one CTA of a kernel's code does [-, s]: the loads it keeps in flight, its prologue and
epilogue (the dependent loads of the block table, the first K / V tiles and the output store), and how many
of it an SM holds (its shared memory and registers). A window or a head grouping changes the grid, not that
code: a key with no stored fit at any fallback level takes their median over the device's stored keys of the
same kernel (another format or variant; :func:`costmodel.kernels.params_for`), as FlashAttention-2 with a
window does from FlashAttention-2 without one. Not the call's launch, the grid (``max_splits``,
``heads_per_cta``: :func:`unswapped_structure`) or the device-wide fractions."""


def default_params(hardware: HardwareProfile, dtype: str) -> Params:
    """Datasheet-only parameters: profile efficiencies; one CTA streams 4 / sm_count of the device
    bandwidth (a few SMs' share), the call costs ``CALL_LAUNCHES`` kernel launches (cache write and
    attention) and the split-K reduction one more."""
    units = sm_count(hardware)
    return Params(
        peak_flop_per_s=hardware.peak_flop_per_s(compute_dtype(dtype)),
        bandwidth_bytes_per_s=hardware.memory_bandwidth_bytes_per_s,
        sm_count=units,
        cache_bytes=cache_bytes(hardware),
        bandwidth_fraction=hardware.efficiency.memory_bandwidth_fraction,
        per_cta_bandwidth_fraction=min(1.0, 4.0 / units),
        launch_s=CALL_LAUNCHES * hardware.efficiency.kernel_overhead_s,
        combine_s=hardware.efficiency.kernel_overhead_s,
        **unswapped_structure(dtype),
    )


def unswapped_structure(key: str) -> dict[str, float]:
    """Default grid of a FlashAttention-2 varlen decode that does not swap its query heads (a key of
    ``QUERY_COPY_KERNELS`` with ``+mha`` or ``+swa``, :func:`copies_query` false): FlashAttention-2 splits
    the KV only on the swapped path (``set_params_splitkv`` under ``if (seqlenq_ngroups_swapped)``,
    ``mha_varlen_fwd``, https://github.com/vllm-project/flash-attention/blob/main/csrc/flash_attn/flash_api.cpp),
    so ``max_splits`` 1; with a window the query heads of a KV head are not packed into one CTA's rows, so
    ``heads_per_cta`` 1. Defaults only, for a key nobody fitted: a fit moves both freely (it finds about
    two heads per CTA on the L40S, whose CTAs of one group re-read a KV head from the L2). Empty for any
    other key."""
    if not key.startswith(QUERY_COPY_KERNELS) or copies_query(key):
        return {}
    return {"max_splits": 1.0, **({"heads_per_cta": 1.0} if "+swa" in key else {})}


def initial_guesses(hardware: HardwareProfile, dtype: str) -> list[Params]:
    """Starting points of a fit: the defaults with the per-CTA overhead in series with the streaming or
    mostly hidden, and two or many resident CTAs per SM (the model is piecewise in both; FlashAttention-2
    keys start their query copy at one kernel overhead); for
    sliding-window keys (``+swa``) also the grid over the whole sequence (``window_grid_full_length``).

    The starts keep one launch and the generic grid (``max_splits`` 64, ``heads_per_cta`` 16), not the
    defaults' ``CALL_LAUNCHES`` and :func:`unswapped_structure`: those state what a key nobody fitted is
    predicted with, and every committed fit began here (a refit from them moves every key by its
    piecewise optimum, unmeasured; docs/validation.md, session 12)."""
    generic = Params(peak_flop_per_s=1.0, bandwidth_bytes_per_s=1.0, sm_count=1.0)
    start = dataclasses.replace(
        default_params(hardware, dtype),
        launch_s=hardware.efficiency.kernel_overhead_s,
        max_splits=generic.max_splits,
        heads_per_cta=generic.heads_per_cta,
    )
    if copies_query(dtype):  # one eager launch, as the split-K reduction's default
        start = dataclasses.replace(start, query_copy_s=hardware.efficiency.kernel_overhead_s)
    starts = [
        dataclasses.replace(start, cta_overlap_fraction=overlap, resident_ctas_per_sm=resident)
        for overlap in (0.0, 0.9)
        for resident in (2.0, 64.0)
    ]
    if "+swa" not in dtype:
        return starts
    return starts + [
        dataclasses.replace(s, window_grid_full_length=1.0, resident_ctas_per_sm=8.0) for s in starts[:2]
    ]


def kv_cache_bytes(
    *,
    batch_size: npt.ArrayLike,
    kv_len: npt.ArrayLike,
    n_kv_heads: npt.ArrayLike,
    head_dim: npt.ArrayLike,
    v_head_dim: npt.ArrayLike | None = None,
    window: npt.ArrayLike = 0,
    kv_bytes: npt.ArrayLike = 2.0,
) -> FloatArray:
    """Bytes of K and V one decode step reads [bytes]."""
    d = np.asarray(head_dim, dtype=np.float64)
    dv = d if v_head_dim is None else np.asarray(v_head_dim, dtype=np.float64)
    length = _attended(kv_len, window)
    return np.asarray(
        np.asarray(batch_size, dtype=np.float64)
        * length
        * np.asarray(n_kv_heads, dtype=np.float64)
        * (d + dv)
        * np.asarray(kv_bytes, dtype=np.float64),
        dtype=np.float64,
    )


def _attended(kv_len: npt.ArrayLike, window: npt.ArrayLike) -> FloatArray:
    length = np.asarray(kv_len, dtype=np.float64)
    w = np.asarray(window, dtype=np.float64)
    return np.asarray(np.where(w > 0, np.minimum(length, w), length), dtype=np.float64)


def time_s(
    hardware: HardwareProfile,
    params: Params,
    *,
    batch_size: npt.ArrayLike,
    kv_len: npt.ArrayLike,
    n_heads: npt.ArrayLike,
    n_kv_heads: npt.ArrayLike,
    head_dim: npt.ArrayLike,
    v_head_dim: npt.ArrayLike | None = None,
    window: npt.ArrayLike = 0,
    kv_bytes: npt.ArrayLike = 2.0,
) -> FloatArray:
    """Decode-attention kernel time [s].

    Parameters
    ----------
    batch_size : sequences, one query token each [-].
    kv_len : cached tokens per sequence, the new one included [tokens].
    n_heads, n_kv_heads : query and key/value heads on this device [-].
    head_dim : key head dimension [-]; ``v_head_dim`` the value's (default: the same).
    window : sliding-window size [tokens]; 0 for full attention.
    kv_bytes : bytes per cached element [bytes] (2 for bf16, 1 for fp8).
    """
    b = np.asarray(batch_size, dtype=np.float64)
    hkv = np.asarray(n_kv_heads, dtype=np.float64)
    d = np.asarray(head_dim, dtype=np.float64)
    dv = d if v_head_dim is None else np.asarray(v_head_dim, dtype=np.float64)
    length = _attended(kv_len, window)
    total_bytes = kv_cache_bytes(
        batch_size=b, kv_len=length, n_kv_heads=hkv, head_dim=d, v_head_dim=dv, kv_bytes=kv_bytes
    )
    h = np.asarray(n_heads, dtype=np.float64)
    flop = 2.0 * b * h * length * (d + dv)
    # continuous in heads_per_cta so that a fit can find it; a kernel splits whole groups
    passes = np.maximum(1.0, h / hkv / params.heads_per_cta)
    shared = dict(
        total_bytes=total_bytes * passes,
        flop=flop,
        ctas_unsplit=b * hkv * passes,
        cta_overhead_s=params.cta_overhead_s + params.cta_overhead_per_dim_s * (d + dv),
        fixed_sm_s=b * params.sequence_overhead_s,
    )
    t = stream_time_s(params, kv_len=length, best_split=True, **shared)  # type: ignore[arg-type]
    t = t + query_copy_time_s(params, batch_size=b, n_heads=h, n_kv_heads=hkv, head_dim=d, window=window)
    if params.window_grid_full_length < 0.5:
        return t
    full = np.asarray(kv_len, dtype=np.float64)
    grid_s = stream_time_s(params, kv_len=full, fill_slots=True, **shared)  # type: ignore[arg-type]
    return np.asarray(np.where(full > length, grid_s, t), dtype=np.float64)


QUERY_BYTES = 2.0
"""Bytes per query element: decode attention takes its query in bf16 whatever the KV format [bytes]."""


def query_copy_time_s(
    params: Params,
    *,
    batch_size: npt.ArrayLike,
    n_heads: npt.ArrayLike,
    n_kv_heads: npt.ArrayLike,
    head_dim: npt.ArrayLike,
    window: npt.ArrayLike = 0,
) -> FloatArray:
    """FlashAttention-2's copy of the swapped query [s] (module docstring): ``query_copy_s`` plus reading
    and writing ``batch_size x n_heads x head_dim`` bf16 elements at the streaming rate, where the swap
    happens (``n_heads > n_kv_heads``, no window) and is not a view (``batch_size > 1`` and
    ``n_kv_heads > 1``); 0 elsewhere and whenever ``query_copy_s`` is 0."""
    b = np.asarray(batch_size, dtype=np.float64)
    h = np.asarray(n_heads, dtype=np.float64)
    hkv = np.asarray(n_kv_heads, dtype=np.float64)
    copies = (b > 1.0) & (hkv > 1.0) & (h > hkv) & (np.asarray(window, dtype=np.float64) <= 0.0)
    moved = 2.0 * QUERY_BYTES * b * h * np.asarray(head_dim, dtype=np.float64)
    rate = params.bandwidth_bytes_per_s * params.bandwidth_fraction
    copy_s = params.query_copy_s + moved / rate
    return np.asarray(np.where(copies & (params.query_copy_s > 0.0), copy_s, 0.0), dtype=np.float64)


def stream_time_s(
    params: Params,
    *,
    total_bytes: npt.ArrayLike,
    flop: npt.ArrayLike,
    ctas_unsplit: npt.ArrayLike,
    kv_len: npt.ArrayLike,
    best_split: bool = False,
    fixed_splits: bool = False,
    fill_slots: bool = False,
    cta_overhead_s: npt.ArrayLike | None = None,
    fixed_sm_s: npt.ArrayLike = 0.0,
    floor_fill: bool = False,
) -> FloatArray:
    """Time of a decode kernel that streams ``total_bytes`` of cache and does ``flop`` of work [s].

    ``ctas_unsplit`` thread blocks before split-K (one per sequence and KV head, or per sequence and head
    group); each may be split into chunks of at least ``split_min_tokens`` of the ``kv_len`` tokens, at
    most ``max_splits``. With ``best_split`` the split count is the allowed one that takes the least time
    (:func:`best_splits`), as a kernel's split heuristic aims to; without it, the count that fills the SMs
    (the MLA decode model, which shares this function, still uses that rule); with ``fixed_splits``,
    always ``max_splits``; with ``fill_slots``, as many as fill every SM's resident slots. The count that
    fills the SMs is ``ceil(SMs / ctas_unsplit)``, or with ``floor_fill`` ``max(1, floor(SMs /
    ctas_unsplit))``, the most chunks that still fit in one wave (trtllm-gen's ``computeNumCtas``:
    ``numCtasPerSeqKv = min(maxNumCtasPerSeqKv, max(1, int32_t(mMultiProcessorCount / (numCtasX * numCtasY *
    numCtasZ))))``, an integer division; ``fmhaKernels.h`` in TensorRT-LLM's
    ``cpp/tensorrt_llm/kernels/trtllmGenKernels/fmha/``, https://github.com/NVIDIA/TensorRT-LLM, and
    FlashInfer's copy).
    ``cta_overhead_s`` is each CTA's fixed time (default ``params.cta_overhead_s``),
    ``fixed_sm_s`` SM time that does not depend on the split count (per-sequence work); both overlap
    with the streaming as ``cta_overlap_fraction`` says.
    """
    overhead = Overhead(
        np.asarray(params.cta_overhead_s if cta_overhead_s is None else cta_overhead_s, dtype=np.float64),
        np.asarray(fixed_sm_s, dtype=np.float64),
    )
    groups = np.asarray(ctas_unsplit, dtype=np.float64)
    length = np.asarray(kv_len, dtype=np.float64)
    moved = np.asarray(total_bytes, dtype=np.float64)
    allowed = np.maximum(1.0, np.minimum(np.floor(length / params.split_min_tokens), params.max_splits))
    if best_split:
        splits = best_splits(
            params, total_bytes=moved, flop=flop, ctas_unsplit=groups, max_allowed=allowed, overhead=overhead
        )
    elif fixed_splits:  # a fixed grid of max_splits chunks, however short the sequence
        splits = np.broadcast_to(np.asarray(params.max_splits, dtype=np.float64), allowed.shape)
    elif fill_slots:
        splits = np.minimum(np.ceil(params.sm_count * params.resident_ctas_per_sm / groups), allowed)
    elif floor_fill:
        splits = np.minimum(np.maximum(1.0, np.floor(params.sm_count / groups)), allowed)
    else:
        splits = np.minimum(np.ceil(params.sm_count / groups), allowed)
    return _time_at_splits(params, moved, np.asarray(flop, dtype=np.float64), groups, splits, overhead)


class Overhead(NamedTuple):
    """SM time outside the streaming loops: ``per_cta_s`` per CTA, ``fixed_sm_s`` in all [s]."""

    per_cta_s: FloatArray
    fixed_sm_s: FloatArray


def _time_at_splits(
    params: Params,
    moved: FloatArray,
    flop: FloatArray,
    groups: FloatArray,
    splits: FloatArray,
    overhead: Overhead | None = None,
) -> FloatArray:
    """Kernel time with ``splits`` chunks per unsplit CTA [s]."""
    ctas = groups * splits
    # a cache small enough to stay in L2 between calls (a benchmark repeating one call) streams from L2
    from_cache = np.where(moved <= params.cache_bytes, params.cache_bandwidth_ratio, 1.0)
    device_bw = params.bandwidth_bytes_per_s * params.bandwidth_fraction * from_cache
    cta_bw = params.bandwidth_bytes_per_s * params.per_cta_bandwidth_fraction * from_cache
    load_s = wave_load_s(moved, ctas, params.sm_count * params.resident_ctas_per_sm, device_bw, cta_bw)
    if overhead is None:
        overhead = Overhead(np.asarray(params.cta_overhead_s), np.asarray(0.0))
    overhead_s = (ctas * overhead.per_cta_s + overhead.fixed_sm_s) / params.sm_count
    stream_s = load_s + overhead_s - params.cta_overlap_fraction * np.minimum(load_s, overhead_s)
    compute_s = flop / (params.peak_flop_per_s * params.compute_fraction)
    combine_s = np.where(splits > 1.0, params.combine_s, 0.0)
    return np.asarray(params.launch_s + np.maximum(stream_s, compute_s) + combine_s, dtype=np.float64)


def wave_load_s(
    moved: FloatArray, ctas: FloatArray, slots: npt.ArrayLike, device_bw: FloatArray, cta_bw: FloatArray
) -> FloatArray:
    """Time to stream ``moved`` bytes split evenly over ``ctas`` CTAs, ``slots`` of which run at once [s].

    Each full wave of ``slots`` CTAs streams at ``min(device_bw, slots x cta_bw)``, the last partial wave
    of ``r`` CTAs at ``min(device_bw, r x cta_bw)``: when the CTAs in flight cannot saturate the device, a
    grid just over a whole number of waves pays a whole extra wave (wave quantization). With ``ctas <=
    slots`` this is ``moved / min(device_bw, ctas x cta_bw)``.
    """
    slots_ = np.asarray(slots, dtype=np.float64)
    per_cta = moved / np.maximum(ctas, 1e-30)
    full = np.floor(ctas / slots_)
    last = ctas - full * slots_
    full_s = full * slots_ * per_cta / np.minimum(device_bw, slots_ * cta_bw)
    with np.errstate(divide="ignore", invalid="ignore"):
        last_s = np.where(last > 0, last * per_cta / np.minimum(device_bw, last * cta_bw), 0.0)
    return np.asarray(full_s + last_s, dtype=np.float64)


EXHAUSTIVE_SPLITS = 16
"""Split counts up to this many are all tried by :func:`best_splits`; above it, the powers of two and the
cap."""

BEST_SPLITS_CHUNK_ELEMENTS = 1 << 16
"""Most (candidate, point) pairs :func:`best_splits` times in one array pass: bounds its temporaries on
large grids while small calls (a serving step: tens of points) take a single pass."""


def split_candidates(max_allowed: npt.ArrayLike) -> FloatArray:
    """The split counts :func:`best_splits` compares, in its order of preference on a tie [-]: 1, then
    every count from 2 to ``EXHAUSTIVE_SPLITS`` and the powers of two up to the largest ``max_allowed``,
    each capped at the point's ``max_allowed``, then ``max_allowed`` itself. Shape ``(candidates,
    *max_allowed.shape)``."""
    top = np.asarray(max_allowed, dtype=np.float64)
    limit = float(np.max(top)) if top.size else 1.0
    counts = sorted(
        {float(c) for c in range(2, EXHAUSTIVE_SPLITS + 1)}
        | {2.0**k for k in range(1, int(np.log2(max(limit, 1.0))) + 1)}
    )
    column = (slice(None),) + (None,) * top.ndim
    capped = np.minimum(np.asarray(counts)[column], top)
    return np.concatenate([np.ones((1, *top.shape)), capped, top[None]])


def best_splits(
    params: Params,
    *,
    total_bytes: npt.ArrayLike,
    flop: npt.ArrayLike = 0.0,
    ctas_unsplit: npt.ArrayLike,
    max_allowed: npt.ArrayLike,
    overhead: Overhead | None = None,
) -> FloatArray:
    """The split count that minimises the kernel time [-], among every count from 1 to
    ``EXHAUSTIVE_SPLITS`` and the powers of two up to ``max_allowed`` (and ``max_allowed`` itself)
    (:func:`split_candidates`); on a tie, the earlier candidate.

    With waves, the overlap's min and the reduction pass the time is not convex in the count, so counts
    are compared, not solved for. The candidates depend on the length and the parameters only, never on
    the batch, so the chosen time never falls as the batch grows (each candidate's time rises with it).
    Every candidate at every point is timed in one array pass (in chunks of
    ``BEST_SPLITS_CHUNK_ELEMENTS``): a serving step asks for tens of points, where per-call overhead,
    not arithmetic, is the cost.
    """
    moved = np.asarray(total_bytes, dtype=np.float64)
    groups = np.asarray(ctas_unsplit, dtype=np.float64)
    top = np.asarray(max_allowed, dtype=np.float64)
    if overhead is None:
        overhead = Overhead(np.asarray(params.cta_overhead_s), np.asarray(0.0))
    work = np.asarray(flop, dtype=np.float64)
    per_cta, fixed = (np.asarray(x, dtype=np.float64) for x in overhead)
    columns = np.broadcast_arrays(moved, work, groups, top, per_cta, fixed)
    shape = columns[0].shape
    moved, work, groups, top, per_cta, fixed = (np.ravel(c) for c in columns)
    candidates = split_candidates(top)  # (candidates, points)
    step = max(1, BEST_SPLITS_CHUNK_ELEMENTS // len(candidates))
    best = np.ones(top.size)
    for lo in range(0, top.size, step):
        part = slice(lo, lo + step)
        t = _time_at_splits(
            params,
            moved[None, part],
            work[None, part],
            groups[None, part],
            candidates[:, part],
            Overhead(per_cta[None, part], fixed[None, part]),
        )
        undefined = np.isnan(t)
        if undefined.any():  # a NaN time ends the comparison there, as a scan's ``<`` would
            t = np.where(np.logical_or.accumulate(undefined, axis=0), np.inf, t)
        best[part] = np.take_along_axis(candidates[:, part], np.argmin(t, axis=0)[None], axis=0)[0]
    return best.reshape(shape)
