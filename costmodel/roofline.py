"""Operator time on a device: the roofline model with efficiencies and a fixed per-kernel overhead.

    time = max(FLOP / (peak x matmul_fraction), bytes / (bandwidth x memory_bandwidth_fraction))
           + kernel_overhead_s

(Williams, Waterman & Patterson 2009, "Roofline: an insightful visual performance model"). Compute and
memory traffic are assumed to overlap perfectly inside a kernel and not at all across kernels.
Tensor-core work (matmul, attention) runs at the dense peak of the compute dtype (2:4 sparse weights at that
peak times the datasheet's sparsity speedup, on devices that have sparse tensor cores); elementwise work and
weight dequantization at the fp32 (vector) peak. Collectives cost the ring algorithm's
2 (n - 1) / n x bytes / link bandwidth for an all-reduce (Patarasuk & Yuan 2009; NCCL's "bus
bandwidth") and (n - 1) / n x bytes / bandwidth for an all-to-all, an all-gather (bytes: its output) and a
reduce-scatter (bytes: its input), plus one latency each; an all-reduce, all-gather or reduce-scatter spread
over several nodes runs hierarchically, the ring inside each node and every GPU's share on its own NIC
between them (:func:`costmodel.kernels.collective.multi_node_s`).

An MLA decode (one new token per sequence, or the 1 + k of a speculative verification: at most
``decode_tokens`` a sequence, :func:`costmodel.kernel_times.absorbed`) is timed in the absorbed form the
engines run, not in the naive expansion the operators count: its FLOPs and bytes are
:func:`costmodel.kernel_times.timed_flop` and :func:`costmodel.kernel_times.timed_bytes` (the kernel
models' form), its two per-head bmm at the peak of the format the engine multiplies them in
(:func:`costmodel.kernel_times.absorb_format`: 16 bits but for SGLang's per-tensor fp8 and TensorRT-LLM's
Hopper block fp8).

Efficiencies come from the hardware profile (defaults, later calibrated) and can be replaced per call.
In the 'eager' execution mode each operator also pays the host's dispatch of every kernel it launches, and
each pass a fixed host cost (:mod:`costmodel.execution`). On a CPU a GEMM of more than a few rows also pays
its BLAS's weight-packing pass (:mod:`costmodel.cpu_gemm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from costmodel.cpu_gemm import gemm_pack_s
from costmodel.errors import CostmodelError
from costmodel.execution import host_terms
from costmodel.ops import COLLECTIVES, Op
from costmodel.specs import Efficiency, HardwareProfile

FloatArray = npt.NDArray[np.float64]
Link = Literal["intra", "inter"]
BOUNDS = ("compute", "memory", "communication")


def compute_dtype_of(activation_dtype: str) -> str:
    """The datasheet compute format of matmuls with ``activation_dtype`` inputs: a storage format's
    tensor-core format (:func:`costmodel.dtypes.matmul_compute_dtype`: ``fp8_block`` -> ``fp8``,
    ``nvfp4`` -> ``fp4``), or the name itself where it is a compute format only (``tf32``, ``fp4``)."""
    from costmodel.dtypes import DTYPES, matmul_compute_dtype

    if activation_dtype in DTYPES or "_g" in activation_dtype:
        return matmul_compute_dtype(activation_dtype)
    return activation_dtype


def compute_peak_flop_per_s(hardware: HardwareProfile, activation_dtype: str) -> float:
    """Dense peak for matmuls with ``activation_dtype`` inputs [FLOP/s]: the peak of their compute format
    (:func:`compute_dtype_of`; fp8 for fp8 and block-scaled fp8 inputs, fp4 for NVFP4 / MXFP4 inputs).

    Weight-only formats compute in the activation dtype. A device without bf16 (e.g. a CPU profile without
    it) falls back to fp16, then fp32. A device without the format's peak (fp4 inputs on a GPU without fp4
    tensor cores, H100) is refused: the matmul cannot run there as asked.
    """
    dtype = compute_dtype_of(activation_dtype)
    candidates = [dtype, "bf16", "fp16", "fp32"] if dtype in ("bf16", "fp16") else [dtype]
    for candidate in candidates:
        if candidate in hardware.compute_dtypes:
            return hardware.peak_flop_per_s(candidate)
    raise CostmodelError(
        f"hardware {hardware.name!r} has no {dtype!r} peak in its datasheet (it has: "
        f"{', '.join(hardware.compute_dtypes)}): activation_dtype {activation_dtype!r} runs on {dtype} "
        "tensor cores; choose an activation_dtype whose peak it has (e.g. bf16, weight-only)"
    )


def attention_compute_dtype(activation_dtype: str) -> str:
    """The format attention kernels compute in with ``activation_dtype`` matmul inputs: fp4 inputs stop at
    the GEMMs (no engine runs fp4 attention; FlashAttention-3 and TensorRT-LLM's FMHA take bf16 or fp8), so
    fp4 -> fp8; anything else as the matmuls."""
    return "fp8" if compute_dtype_of(activation_dtype) == "fp4" else activation_dtype


def vector_peak_flop_per_s(hardware: HardwareProfile) -> float:
    """Non-tensor (fp32 vector) peak [FLOP/s]; the tensor peak / 16 where no fp32 figure is published."""
    if "fp32" in hardware.compute_dtypes:
        return hardware.peak_flop_per_s("fp32")
    return max(hardware.peak_flop_per_s(d) for d in hardware.compute_dtypes) / 16


def sparsity_speedup(hardware: HardwareProfile) -> float:
    """Dense-equivalent speedup of 2:4 sparse matmuls [-]; raises for devices without sparse tensor cores."""
    entry = hardware.datasheet.sparsity_speedup
    if entry is None:
        raise CostmodelError(
            f"hardware {hardware.name!r} has no 2:4 sparse tensor cores in its profile "
            "(datasheet.sparsity_speedup); use sparsity='none' on it"
        )
    return float(entry.value)


def link_bandwidth_bytes_per_s(hardware: HardwareProfile, link: Link) -> float:
    """Per-direction device-to-device bandwidth inside or across nodes [bytes/s]."""
    sheet = hardware.datasheet
    entry = sheet.intra_node_bandwidth_gb_per_s if link == "intra" else sheet.inter_node_bandwidth_gb_per_s
    if entry is None:
        raise ValueError(
            f"hardware {hardware.name!r} has no {link}-node bandwidth in its profile; "
            "multi-device deployments need datasheet.{intra,inter}_node_bandwidth_gb_per_s"
        )
    return entry.value * 1e9


@dataclass(frozen=True)
class OpTimes:
    """Per operator (in the order of ``ops``): times per occurrence [s], arrays over the workload."""

    names: tuple[str, ...]
    layers: tuple[int, ...]
    compute_s: tuple[FloatArray, ...]
    memory_s: tuple[FloatArray, ...]
    communication_s: tuple[FloatArray, ...]
    overhead_s: float

    def time_s(self, i: int) -> FloatArray:
        """Time of one occurrence of operator ``i`` [s]."""
        return np.asarray(
            np.maximum(self.compute_s[i], self.memory_s[i]) + self.communication_s[i] + self.overhead_s
        )

    @property
    def total_s(self) -> FloatArray:
        """Time of the whole pass: every operator times its layer count [s]."""
        out: FloatArray = np.zeros(())
        for i, n in enumerate(self.layers):
            out = out + n * self.time_s(i)
        return out

    def bound(self, i: int) -> npt.NDArray[np.str_]:
        """What limits operator ``i``: 'compute', 'memory' or 'communication'."""
        c, m, k = np.broadcast_arrays(self.compute_s[i], self.memory_s[i], self.communication_s[i])
        return np.where(k > np.maximum(c, m), "communication", np.where(c >= m, "compute", "memory"))


def op_times(
    ops: Sequence[Op],
    hardware: HardwareProfile,
    *,
    activation_dtype: str = "bf16",
    efficiency: Efficiency | None = None,
    link: Link = "intra",
    collective_latency_s: float = 10e-6,
    scale_up_domain: int | None = None,
) -> OpTimes:
    """Roofline time of each operator on ``hardware`` (see the module docstring).

    Parameters
    ----------
    ops : sequence of Op
        From :func:`costmodel.ops.forward_ops`.
    hardware : HardwareProfile
    activation_dtype : str
        Format of the matmuls' inputs [-]: they run at its compute format's peak (:func:`compute_dtype_of`);
        an operator with its own ``compute_dtype`` (the routed experts') at that one's.
    efficiency : Efficiency, optional
        Replaces ``hardware.efficiency`` (e.g. a calibrated one).
    link : {"intra", "inter"}
        Which link the collectives use.
    collective_latency_s : float
        Fixed cost of one collective [s] (NCCL small-message latency on NVLink is ~10 us).
    scale_up_domain : int, optional
        Devices the intra-node link joins [-]: when given, each collective runs on the intra-node link
        while the devices its group spreads over (``Op.span``) fit in it and on the inter-node network
        beyond, instead of on ``link``.
    """
    from costmodel.kernel_shapes import MlaUpShape
    from costmodel.kernel_times import absorb_format, absorbed, timed_bytes, timed_flop

    eff = efficiency or hardware.efficiency
    peaks: dict[str, float] = {}

    def tensor(dtype: str) -> float:
        """Dense peak x achieved fraction of matmuls with ``dtype`` inputs [FLOP/s]."""
        if dtype not in peaks:
            peaks[dtype] = compute_peak_flop_per_s(hardware, dtype) * hardware.default_matmul_fraction(
                compute_dtype_of(dtype), eff
            )
        return peaks[dtype]

    tensor(activation_dtype)  # a device that cannot run the pass's inputs is refused up front
    vector = vector_peak_flop_per_s(hardware) * eff.matmul("fp32")
    bandwidth = hardware.memory_bandwidth_bytes_per_s * eff.memory_bandwidth_fraction
    compute, memory, comm = [], [], []
    cpu = hardware.device_kind == "cpu"
    eager = eff.execution_mode == "eager"
    kernels = {op.name: op.kernel for op in ops} if cpu else {}
    for op in ops:
        if op.kind in COLLECTIVES:
            op_link: Link = link
            if scale_up_domain is not None:
                op_link = "intra" if (op.span or op.group) <= scale_up_domain else "inter"
            link_bw = link_bandwidth_bytes_per_s(hardware, op_link) * eff.interconnect_fraction
            n = op.group
            factor = 2.0 * (n - 1) / n if op.kind == "allreduce" else (n - 1) / n
            compute.append(np.zeros(()))
            memory.append(np.zeros(()))
            if op_link == "inter" and scale_up_domain is not None and op.kind in HIERARCHICAL_KINDS:
                comm.append(_multi_node_ring_s(op, hardware, eff, scale_up_domain, collective_latency_s))
                continue
            comm.append(np.asarray(factor * op.bytes_read / link_bw + collective_latency_s))
            continue
        if op.kind == "matmul":
            peak = tensor(op.compute_dtype or activation_dtype)
        elif op.kind == "attention":
            peak = tensor(attention_compute_dtype(activation_dtype))
        else:
            peak = vector
        if op.sparse:
            peak = peak * sparsity_speedup(hardware)
        flop, moved, dequant = op.flop, op.bytes, op.dequant_flop
        rate: FloatArray | float = peak
        mla = absorbed(op)
        if mla is not None:  # an MLA decode in the absorbed form the engines run (kernel_times.timed_flop)
            fmt = (
                absorb_format(op.kernel, hardware, eff.kernel_engine)
                if isinstance(op.kernel, MlaUpShape)
                else None
            )
            flop, moved = timed_flop(op), timed_bytes(op, fmt)
            if fmt is not None:  # its bmm multiply W_UK / W_UV in the format the engine holds them in
                bmm = fmt.bmm_dtype if fmt.bmm_dtype in hardware.compute_dtypes else "bf16"
                rate = np.where(mla, tensor(bmm), peak)
                dequant = np.where(mla, 0.0, dequant)
        c, m = np.asarray(flop / rate + dequant / vector), np.asarray(moved / bandwidth)
        dispatch, step = host_s(op, eff)
        if cpu:  # the BLAS's weight-packing pass, serialized with the compute on the same core
            dispatch = dispatch + gemm_pack_s(op, eff, kernels, bandwidth)
        if cpu or eager:  # (in graphs mode a GPU operator has no dispatch: its times stay as they are)
            c, m = host_terms(c, m, dispatch, same_core=cpu)
        if step:
            c, m = c + step, m + step
        compute.append(c)
        memory.append(m)
        comm.append(np.zeros(()))
    return OpTimes(
        names=tuple(op.name for op in ops),
        layers=tuple(op.layers for op in ops),
        compute_s=tuple(compute),
        memory_s=tuple(memory),
        communication_s=tuple(comm),
        overhead_s=eff.kernel_overhead_s,
    )


HIERARCHICAL_KINDS = {"allreduce": "all_reduce", "allgather": "all_gather", "reducescatter": "reduce_scatter"}
"""Collective kinds timed across nodes by the hierarchical algorithm (:mod:`costmodel.kernels.collective`)."""


def _multi_node_ring_s(
    op: Op, hardware: HardwareProfile, eff: Efficiency, scale_up_domain: int, latency_s: float
) -> FloatArray:
    """A collective spread beyond one scale-up domain: the ring inside each node on the intra-node link,
    then each GPU's share on its own NIC (:func:`costmodel.kernels.collective.multi_node_s`)."""
    from costmodel.kernels.collective import multi_node_s, node_split

    nodes, g = node_split(op.group, op.span or op.group, scale_up_domain)
    factor = 2.0 * (g - 1) / g if op.kind == "allreduce" else (g - 1) / g
    intra_bw = link_bandwidth_bytes_per_s(hardware, "intra") * eff.interconnect_fraction
    intra = factor * op.bytes_read / intra_bw + latency_s if g > 1 else 0.0
    return multi_node_s(
        hardware,
        intra,
        message_bytes=op.bytes_read,
        nodes=nodes,
        gpus_per_node=g,
        op=HIERARCHICAL_KINDS[op.kind],
        interconnect_fraction=eff.interconnect_fraction,
        latency_s=latency_s,
    )


def host_s(op: Op, efficiency: Efficiency) -> tuple[FloatArray | float, float]:
    """Host time of one occurrence of ``op`` outside its device time [s]: (its kernels' dispatch, in the
    'eager' execution mode ``dispatch_s`` per kernel it launches, ``op.launches``; the pass's fixed
    ``step_overhead_s``, charged on its embedding lookup, which every forward pass runs once)
    (:mod:`costmodel.execution`)."""
    launches = op.launches if efficiency.execution_mode == "eager" else 0.0
    step = efficiency.step_overhead_s if op.name == "embedding" else 0.0
    return launches * efficiency.dispatch_s, step


def ridge_point_flop_per_byte(
    hardware: HardwareProfile, *, activation_dtype: str = "bf16", efficiency: Efficiency | None = None
) -> float:
    """Arithmetic intensity where the compute and memory roofs meet, with efficiencies applied [FLOP/byte]."""
    eff = efficiency or hardware.efficiency
    compute = compute_dtype_of(activation_dtype)
    share = hardware.default_matmul_fraction(compute, eff)
    peak = compute_peak_flop_per_s(hardware, activation_dtype) * share
    return peak / (hardware.memory_bandwidth_bytes_per_s * eff.memory_bandwidth_fraction)


def attainable_flop_per_s(
    hardware: HardwareProfile,
    intensity: npt.ArrayLike,
    *,
    activation_dtype: str = "bf16",
    efficiency: Efficiency | None = None,
) -> FloatArray:
    """The roofline itself: min(peak, intensity x bandwidth) [FLOP/s], for drawing the chart."""
    eff = efficiency or hardware.efficiency
    compute = compute_dtype_of(activation_dtype)
    share = hardware.default_matmul_fraction(compute, eff)
    peak = compute_peak_flop_per_s(hardware, activation_dtype) * share
    bw = hardware.memory_bandwidth_bytes_per_s * eff.memory_bandwidth_fraction
    return np.asarray(np.minimum(peak, np.asarray(intensity, dtype=np.float64) * bw))
