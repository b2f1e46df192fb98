"""Generation (decode) attention: one new query token per sequence against its cached K and V.

Decode attention does about one multiply-add per byte of KV cache it reads, so it streams the cache
from HBM. The model:

    time = launch_s + max(stream_s, compute_s) + combine_s

- **KV bytes**: ``batch_size x kv_len x n_kv_heads x (head_dim + v_head_dim) x kv_bytes`` (a sliding
  window caps ``kv_len``); fp8 KV halves them.
- **Split-K (FlashDecoding).** One thread block (CTA) per (sequence, KV head) leaves most SMs idle when
  ``batch_size x n_kv_heads`` is small, so decode kernels split the sequence into chunks of at least
  ``split_min_tokens`` and reduce the partial results in a second pass (Dao et al. 2023,
  "Flash-Decoding for long-context inference", https://pytorch.org/blog/flash-decoding/; FlashInfer's
  split-KV, https://flashinfer.ai/2024/02/02/cascade-inference.html). The splits are chosen to give
  ``sm_count`` CTAs where the sequence is long enough.
- **Streaming rate.** With ``u`` CTAs the achieved bandwidth is ``min(1, u / sm_count) x
  per_sm_bandwidth_fraction x ...``: a CTA streams at most ``bandwidth x bandwidth_fraction /
  (sm_count x per_sm_share)``; below one CTA per SM the kernel cannot reach the device bandwidth
  (Little's law: too few loads in flight).
- **Compute**: ``4 x n_heads x kv_len x head_dim`` FLOP per sequence at a fraction of the tensor peak;
  matters for wide GQA groups and large head_dim.
- **cta_overhead_s**: each CTA's fixed time outside the streaming loop, spread over the SMs; it is
  what thousands of short sequences cost beyond their bytes.
- **combine_s**: the split-K reduction kernel, charged when a row splits.
- **launch_s**: the fixed cost of the call [s].

Assumptions: pages of the paged cache are read whole only at the sequence end (ignored); the query,
output and partial results are small next to the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costmodel.kernels.context_attention import compute_dtype, sm_count
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
    bandwidth_fraction: float = 0.8
    """Achieved fraction of the datasheet bandwidth with every SM streaming [-]."""
    per_cta_bandwidth_fraction: float = 0.03
    """Bandwidth one CTA streams alone, as a fraction of the datasheet bandwidth [-]."""
    compute_fraction: float = 0.3
    """Achieved fraction of the tensor-core peak [-] (decode tiles are mostly padding)."""
    split_min_tokens: float = 256.0
    """Fewest KV tokens one split-K chunk holds [tokens]."""
    launch_s: float = 5e-6
    """Fixed cost per call [s]."""
    combine_s: float = 2e-6
    """Split-K reduction pass, when a call splits [s]."""
    cta_overhead_s: float = 1e-6
    """Time one SM spends per CTA outside the streaming loop (load the query, write the output) [s]."""


BOUNDS: dict[str, tuple[float, float]] = {
    "bandwidth_fraction": (0.05, 1.0),
    "per_cta_bandwidth_fraction": (1e-4, 1.0),
    "compute_fraction": (0.005, 1.0),
    "launch_s": (1e-7, 5e-4),
    "combine_s": (0.0, 1e-4),
    "cta_overhead_s": (0.0, 1e-4),
}


def default_params(hardware: HardwareProfile, dtype: str) -> Params:
    """Datasheet-only parameters: profile efficiencies; one CTA streams 4 / sm_count of the device
    bandwidth (a few SMs' share), the split-K reduction costs one more kernel launch."""
    units = sm_count(hardware)
    return Params(
        peak_flop_per_s=hardware.peak_flop_per_s(compute_dtype(dtype)),
        bandwidth_bytes_per_s=hardware.memory_bandwidth_bytes_per_s,
        sm_count=units,
        bandwidth_fraction=hardware.efficiency.memory_bandwidth_fraction,
        per_cta_bandwidth_fraction=min(1.0, 4.0 / units),
        launch_s=hardware.efficiency.kernel_overhead_s,
        combine_s=hardware.efficiency.kernel_overhead_s,
    )


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
    flop = 2.0 * b * np.asarray(n_heads, dtype=np.float64) * length * (d + dv)
    return stream_time_s(params, total_bytes=total_bytes, flop=flop, ctas_unsplit=b * hkv, kv_len=length)


def stream_time_s(
    params: Params,
    *,
    total_bytes: npt.ArrayLike,
    flop: npt.ArrayLike,
    ctas_unsplit: npt.ArrayLike,
    kv_len: npt.ArrayLike,
) -> FloatArray:
    """Time of a decode kernel that streams ``total_bytes`` of cache and does ``flop`` of work [s].

    ``ctas_unsplit`` thread blocks before split-K (one per sequence and KV head, or per sequence and head
    group); each is split into chunks of at least ``split_min_tokens`` of the ``kv_len`` tokens until the
    SMs are filled. Shared by the MLA decode model.
    """
    groups = np.asarray(ctas_unsplit, dtype=np.float64)
    length = np.asarray(kv_len, dtype=np.float64)
    wanted = np.ceil(params.sm_count / groups)
    splits = np.maximum(1.0, np.minimum(wanted, np.floor(length / params.split_min_tokens)))
    ctas = groups * splits
    device_bw = params.bandwidth_bytes_per_s * params.bandwidth_fraction
    cta_bw = params.bandwidth_bytes_per_s * params.per_cta_bandwidth_fraction
    stream_s = np.asarray(total_bytes, dtype=np.float64) / np.minimum(device_bw, ctas * cta_bw)
    stream_s = stream_s + ctas * params.cta_overhead_s / params.sm_count
    compute_s = np.asarray(flop, dtype=np.float64) / (params.peak_flop_per_s * params.compute_fraction)
    combine_s = np.where(splits > 1.0, params.combine_s, 0.0)
    return np.asarray(params.launch_s + np.maximum(stream_s, compute_s) + combine_s, dtype=np.float64)
