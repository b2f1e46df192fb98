"""The weight-packing pass of a CPU BLAS GEMM.

A CPU GEMM library (oneDNN, OpenBLAS, MKL: the GotoBLAS design) copies ("packs") a panel of the weight
matrix into a contiguous, cache-sized buffer in the order its register micro-kernel reads it, then runs the
micro-kernel over the packed panel (Goto & van de Geijn 2008, "Anatomy of high-performance matrix
multiplication", ACM TOMS 34(3), https://doi.org/10.1145/1356052.1356053, section 6; the BLIS framework's
"packing" of A and B, https://github.com/flame/blis/blob/master/docs/KernelsHowTo.md). The pack is one more
pass over the weights, on the same core and before the compute it feeds, so it adds to the GEMM's time:

    t = max(FLOP / R, bytes / B) + weight_bytes / (gemm_pack_fraction x B)    (m > gemv_max_rows)

with B the weight-streaming bandwidth (datasheet x ``memory_bandwidth_fraction``): the pack reads the
weights from the same memory the GEMV streams them from, and a shared machine's contention slows both.

For a matrix-vector product (a few rows) the libraries skip the pack and stream the weights once through a
GEMV kernel; measured on one thread of torch 2.13's CPU build, ``F.linear`` is flat in m up to m = 3 and
pays the pack from m = 4 (docs/validation.md, "On the CPU"). ``gemm_pack_fraction`` is calibrated by one
micro-benchmark (``validation/calibrate.py``: a 16-row GEMM over the 256 MB streaming weight, its time less
its model time without the pack, against the GEMV over the same weight in the same run); 0 (every GPU
profile) means no packing term. GPUs read weights from HBM straight into
shared memory tiles and have no such pass, so the term applies only where ``device_kind == "cpu"``
(:func:`costmodel.roofline.op_times`).

Routed experts (the reference loops over experts in Python, one GEMM per touched expert) are GEMMs of the
expected rows per touched expert, ``T k / (E touched)``, over the touched experts' weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from costmodel.kernel_shapes import FusedInto, GemmShape, MoEShape
from costmodel.ops import Op
from costmodel.specs import Efficiency

FloatArray = npt.NDArray[np.float64]


def touched_fraction(shape: MoEShape) -> FloatArray:
    """Expected fraction of the experts that at least one of the block's tokens picks [-] (as
    :func:`costmodel.ops.forward_ops`)."""
    return np.asarray(1.0 - (1.0 - shape.topk / shape.experts) ** np.asarray(shape.tokens, dtype=np.float64))


def gemm_rows(op: Op, kernels: Mapping[str, object]) -> tuple[FloatArray, FloatArray] | None:
    """(rows m of each GEMM the operator runs, the weight bytes those GEMMs read) [tokens, bytes], or None
    for an operator that runs no GEMM of its own. ``kernels``: every operator's ``kernel`` by name, to find
    the MoE block an expert down-projection is fused into."""
    if op.kind != "matmul":
        return None
    kernel: object = op.kernel
    if isinstance(kernel, FusedInto):
        kernel = kernels.get(kernel.op)
    if isinstance(kernel, GemmShape):
        return np.asarray(kernel.m, dtype=np.float64), np.asarray(op.weight_bytes, dtype=np.float64)
    if isinstance(kernel, MoEShape):
        touched = touched_fraction(kernel)
        rows = (
            np.asarray(kernel.tokens, dtype=np.float64)
            * kernel.topk
            / (kernel.experts * np.maximum(touched, 1e-30))
        )
        # the operator's weight_bytes are its largest (most experts touched) over the workload's arrays
        weights = op.weight_bytes * touched / max(float(np.max(touched)), 1e-30)
        return rows, np.asarray(weights)
    return None


def gemm_pack_s(
    op: Op, efficiency: Efficiency, kernels: Mapping[str, object], streaming_bytes_per_s: float
) -> FloatArray | float:
    """Time of the weight-packing pass of one occurrence of ``op`` on a CPU [s]: its weight bytes over
    ``gemm_pack_fraction`` x ``streaming_bytes_per_s`` (the weight-streaming bandwidth) where its GEMMs have
    more than ``gemv_max_rows`` rows, else 0."""
    bandwidth = efficiency.gemm_pack_fraction * streaming_bytes_per_s
    found = gemm_rows(op, kernels) if bandwidth > 0 else None
    if found is None:
        return 0.0
    rows, weights = found
    return np.asarray(np.where(rows > efficiency.gemv_max_rows, weights / bandwidth, 0.0))
