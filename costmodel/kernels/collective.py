"""Time of one collective (all-reduce, all-gather, reduce-scatter, all-to-all) among GPUs of one node.

Latency plus size over bandwidth, for the faster of two algorithms, the way NCCL's tuner and the engines'
custom all-reduce choose by message size:

    t = max(host_floor_s, smoothmin(t_small, t_large)),  smoothmin(a, b) = (a^-q + b^-q)^(-1/q)
    t_small = small_latency_s + hop_latency_s x (n - 1)
              + bytes x f_small(op, n) x c(n)
                / (link_bandwidth x large_bandwidth_fraction x small_bandwidth_ratio)
    t_large = small_latency_s + large_extra_latency_s + hop_latency_s x steps(op, n)
              + bytes x f_large(op, n) x c(n) / (link_bandwidth x large_bandwidth_fraction)

- ``bytes`` is the collective's buffer: the all-reduce's input (= output), the all-gather's output, the
  reduce-scatter's input, the all-to-all's send buffer (nccl-tests' ``size``).
- The large-message algorithm is the bandwidth-optimal one: a ring (or the two-shot custom all-reduce:
  reduce-scatter then all-gather), whose per-GPU traffic gives NCCL's bus-bandwidth factors
  ``f_large = 2 (n - 1) / n`` for all-reduce and ``(n - 1) / n`` for all-gather, reduce-scatter and
  all-to-all (NCCL tests, "Performance reported by NCCL tests",
  https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md; Patarasuk & Yuan 2009,
  https://doi.org/10.1016/j.jpdc.2008.09.002); ``steps`` = ``2 (n - 1)`` ring steps for all-reduce,
  ``n - 1`` otherwise. NVLS (NVLink SHARP reduction in the switch) and NCCL's Simple protocol live in
  the fitted ``large_bandwidth_fraction`` and ``large_extra_latency_s``.
- The small-message algorithm is latency-optimal: the one-shot custom all-reduce, where every GPU reads
  all ``n - 1`` peers' full buffers at once (``f_small = n - 1``; vLLM's ``custom_all_reduce.cuh``,
  https://github.com/vllm-project/vllm/blob/main/csrc/custom_all_reduce.cuh, and TensorRT-LLM's
  ``customAllReduceKernels.cu``), or, for NCCL, the ring with the LL protocol (8-byte stores carrying a
  4-byte flag, so about half the link bandwidth; NCCL's tuning model,
  https://github.com/NVIDIA/nccl/blob/master/src/graph/tuning.cc) with the ring factors.
- ``c(n) = (n - 1) ^ contention_exponent``: GPUs behind a shared PCIe fabric (L40S servers: PCIe
  switches and the CPU root complex, no NVLink) share its bandwidth, so the per-GPU rate falls as more GPUs
  take part; about 0 on an NVSwitch node, where every GPU has its own full-rate port (slightly negative
  in the data: two GPUs reach a lower bus bandwidth than eight).

``link_bandwidth`` is the datasheet's per-direction intra-node bandwidth (NVLink or PCIe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError
from costmodel.specs import HardwareProfile

FloatArray = npt.NDArray[np.float64]

OPS: Final = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
"""Collectives by the names NCCL and the public tables use."""


SWITCH_SHARPNESS: Final = 4.0
"""q of the smooth minimum between the two algorithms: within 19 % of the faster path where both are equal,
within 1 % once one is 2.2 x faster."""

EAGER_HOST_FLOOR_S: Final = 20e-6
"""Default host time per eager-mode call (Python dispatch of a custom op, its launch and checks): tens of
microseconds, as PyTorch eager-mode overheads are (https://pytorch.org/blog/accelerating-pytorch-with-cuda-graphs/:
CUDA graphs remove per-kernel CPU launch overheads). CUDA-graph replays pay none. An assumption the fit
replaces."""


@dataclass(frozen=True)
class Params:
    """Named parameters of the collective time model for one (device, implementation, op)."""

    small_latency_s: float
    """Fixed time of the latency-optimal algorithm (launch, flag handshake) [s]."""
    large_extra_latency_s: float
    """Fixed time of the bandwidth-optimal algorithm beyond the latency-optimal one's [s] (>= 0, so the
    small-message path is always the one with the lower latency)."""
    hop_latency_s: float
    """Time per ring step / per peer (a flag round trip over the link) [s]."""
    small_bandwidth_ratio: float
    """Rate of the latency-optimal algorithm over the bandwidth-optimal one's on the same links [-]:
    about 0.5 for NCCL's LL protocol (half of every 8-byte store is a flag), about 1 for a one-shot
    custom all-reduce (plain loads over the same links as its two-shot path)."""
    large_bandwidth_fraction: float
    """Achieved fraction of link bandwidth by the bandwidth-optimal algorithm (bus bandwidth) [-]."""
    contention_exponent: float
    """Scaling of the per-GPU rate with the GPU count: divided by (n - 1) ^ this [-]. Positive where GPUs
    share a fabric (PCIe); slightly negative where more GPUs keep more links and channels busy (NCCL's
    bus bandwidth on an NVSwitch node grows from 2 to 8 GPUs: H100 all-reduce of 2^28 half elements,
    318 / 350 / 445 GB/s on 2 / 4 / 8 GPUs)."""
    host_floor_s: float
    """Host-side time per call that the GPU work hides behind (eager mode: Python and launch work, a
    buffer registration check); the call takes at least this long [s]."""
    link_bandwidth_bytes_per_s: float
    """Datasheet per-direction link bandwidth between GPUs of a node [bytes/s] (not fitted)."""
    one_shot: bool
    """True for a custom all-reduce whose small-message path is one-shot (each GPU reads all peers'
    buffers); False for NCCL, whose small-message path is the ring with the LL protocol (not fitted)."""


BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "small_latency_s": (5e-7, 2e-4),
    "large_extra_latency_s": (0.0, 5e-5),
    "hop_latency_s": (0.0, 5e-5),
    "small_bandwidth_ratio": (0.05, 1.5),
    "large_bandwidth_fraction": (0.005, 1.5),
    "contention_exponent": (-1.0, 3.0),  # negative: see the field
    "host_floor_s": (0.0, 2e-4),
}
"""Bandwidth fractions may exceed 1: NVLS reduces in the switch, so an all-reduce's bus bandwidth can
exceed the per-direction link rate (NCCL 2.17+, NVLink SHARP)."""


def link_bandwidth_bytes_per_s(hardware: HardwareProfile) -> float:
    """Per-direction intra-node link bandwidth from the datasheet [bytes/s]; a clear error if absent."""
    link = hardware.datasheet.intra_node_bandwidth_gb_per_s
    if link is None:
        raise CostmodelError(
            f"hardware {hardware.name!r} has no datasheet.intra_node_bandwidth_gb_per_s: add it to the "
            "profile to time collectives"
        )
    return float(link.value) * 1e9


def default_params(hardware: HardwareProfile, dtype: str = "nccl") -> Params:
    """Datasheet-only parameters for a key: ``"nccl..."`` is NCCL, anything else a custom all-reduce.

    Defaults: the profile's ``interconnect_fraction`` for the ring, half of it for NCCL's latency-optimal
    path (LL protocol) and all of it for a one-shot all-reduce, 2 x ``kernel_overhead_s`` fixed, 1 µs per
    hop, a contention exponent of 1 on PCIe (GPUs share the fabric), 0 on switched links, and
    ``EAGER_HOST_FLOOR_S`` for keys naming eager mode (``vLLM_custom_eager``), none otherwise.
    """
    eff = hardware.efficiency
    shared = hardware.datasheet.intra_node_link == "pcie"
    return Params(
        small_latency_s=2 * eff.kernel_overhead_s,
        large_extra_latency_s=2 * eff.kernel_overhead_s,
        hop_latency_s=1e-6,
        small_bandwidth_ratio=0.5 if dtype.lower().startswith("nccl") else 1.0,
        large_bandwidth_fraction=eff.interconnect_fraction,
        contention_exponent=1.0 if shared else 0.0,
        host_floor_s=EAGER_HOST_FLOOR_S if "eager" in dtype.lower() else 0.0,
        link_bandwidth_bytes_per_s=link_bandwidth_bytes_per_s(hardware),
        one_shot=not dtype.lower().startswith("nccl"),
    )


def bus_factor(op: npt.ArrayLike, num_gpus: npt.ArrayLike) -> FloatArray:
    """Per-GPU link traffic over the buffer size for the ring algorithm [-] (NCCL's bus-bandwidth factor).

    ``2 (n - 1) / n`` for all-reduce, ``(n - 1) / n`` for all-gather, reduce-scatter and all-to-all.
    """
    n = np.asarray(num_gpus, dtype=np.float64)
    ops = np.broadcast_to(np.asarray(op, dtype=str), n.shape)
    _check_ops(ops)
    return np.asarray(np.where(ops == "all_reduce", 2.0, 1.0) * (n - 1.0) / n, dtype=np.float64)


def _check_ops(ops: npt.NDArray[np.str_]) -> None:
    unknown = sorted(set(np.unique(ops).tolist()) - set(OPS))
    if unknown:
        raise CostmodelError(f"collective op {unknown[0]!r} is not known: use one of {', '.join(OPS)}")


@dataclass(frozen=True)
class CollectiveBreakdown:
    """Both algorithms' times [s]; ``total`` is the faster one."""

    small_s: FloatArray
    large_s: FloatArray
    host_floor_s: float

    @property
    def total(self) -> FloatArray:
        faster = np.minimum(self.small_s, self.large_s)
        ratio = faster / np.maximum(self.small_s, self.large_s)
        # a smooth minimum: the tuner's choice is sharp per size, but measurements blur the switch (each
        # size is a median over runs; NCCL splits work over channels that switch protocol at different
        # sizes), and a smooth switch keeps both paths visible to a least-squares fit
        smooth = faster * (1.0 + ratio**SWITCH_SHARPNESS) ** (-1.0 / SWITCH_SHARPNESS)
        return np.asarray(np.maximum(self.host_floor_s, smooth), dtype=np.float64)


def breakdown(
    hardware: HardwareProfile,
    params: Params,
    *,
    message_bytes: npt.ArrayLike,
    num_gpus: npt.ArrayLike,
    op: npt.ArrayLike = "all_reduce",
) -> CollectiveBreakdown:
    """The two algorithms' times (same arguments as ``time_s``)."""
    size, n = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(message_bytes, num_gpus))
    if np.any(n < 2):
        raise CostmodelError("collective num_gpus must be >= 2 (one GPU needs no collective)")
    if np.any(size < 0):
        raise CostmodelError("collective message_bytes must be >= 0")
    ops = np.broadcast_to(np.asarray(op, dtype=str), n.shape)
    ring = bus_factor(ops, n)
    is_all_reduce = ops == "all_reduce"
    one_shot = np.where(is_all_reduce & params.one_shot, n - 1.0, ring)
    steps = np.where(is_all_reduce, 2.0, 1.0) * (n - 1.0)
    rate = params.link_bandwidth_bytes_per_s / (n - 1.0) ** params.contention_exponent
    small = (
        params.small_latency_s
        + params.hop_latency_s * (n - 1.0)
        + size * one_shot / (rate * params.large_bandwidth_fraction * params.small_bandwidth_ratio)
    )
    large = (
        params.small_latency_s
        + params.large_extra_latency_s
        + params.hop_latency_s * steps
        + size * ring / (rate * params.large_bandwidth_fraction)
    )
    return CollectiveBreakdown(
        np.asarray(small, dtype=np.float64), np.asarray(large, dtype=np.float64), params.host_floor_s
    )


def time_s(
    hardware: HardwareProfile,
    params: Params,
    *,
    message_bytes: npt.ArrayLike,
    num_gpus: npt.ArrayLike,
    op: npt.ArrayLike = "all_reduce",
) -> FloatArray:
    """Time of one collective [s].

    Parameters
    ----------
    message_bytes : the collective's buffer (nccl-tests' size) [bytes].
    num_gpus : GPUs taking part, all in one node [-].
    op : ``"all_reduce"``, ``"all_gather"``, ``"reduce_scatter"`` or ``"alltoall"``, per row.
    """
    return breakdown(hardware, params, message_bytes=message_bytes, num_gpus=num_gpus, op=op).total
