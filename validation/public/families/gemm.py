"""GEMM tables (``op_name == "gemm"``: ``m``, ``n``, ``k``, ``gemm_dtype``, ``kernel_source``).

Parameters are keyed by dtype, engine and kernel class (``"fp8_block:vllm:DeepGemmFp8BlockScaledMMKernel"``):
the same format through CUTLASS, DeepGEMM or FlashInfer is a different kernel with its own achieved
fractions, and the engines call them differently: the tables time one call at a time in eager mode, so a
fixed cost includes the engine's host-side dispatch (vLLM's block-fp8 paths ~80-190 us, TensorRT-LLM's
``torch_flow`` ~5 us on the same GPU). A key that names its engine falls back to that engine's parameters
for the format (``"fp8_block:trtllm"``, :func:`costmodel.kernels.fallback_keys`) before any other engine's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.kernels import gemm as KERNEL_MODULE

OP_NAMES = ("gemm",)

_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4"}


def params_key(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """``"<dtype>:<engine>:<kernel_source>"`` per row (engine: the table's ``framework``, lower case)."""
    dtype = table["gemm_dtype"].astype(str).replace(_DTYPES)
    engine = table["framework"].astype(str).str.lower()
    return np.asarray(dtype + ":" + engine + ":" + table["kernel_source"].astype(str), dtype=str)


HARNESS_WEIGHT_COPIES: dict[tuple[str, str], float] = {
    ("vllm", "bf16"): 6.0,
    ("vllm", "fp16"): 6.0,
    ("vllm", "fp8"): 6.0,
    ("trtllm", "bf16"): 5.0,
    ("trtllm", "fp16"): 5.0,
    ("trtllm", "fp8"): 5.0,
    ("trtllm", "fp8_block"): 5.0,
    ("trtllm", "nvfp4"): 5.0,
}
"""(engine, dtype) -> the GEMM layers of one shape the tables' harness runs in turn per timed call (each
with its own weights; the latency is divided by their number), which ``gemm.time_s`` needs resident in L2
(``weight_copies``); 1 elsewhere. aiconfigurator's vLLM collector builds 6 ``RowParallelLinear`` layers
for bf16 and fp8 and 1 for fp8_block and nvfp4 (``outside_loop_count`` in
https://github.com/ai-dynamo/aiconfigurator/blob/main/collector/vllm/collect_gemm.py):
the L40S's weight-streaming rows (m <= 4) run at 1,000-1,350 GB/s up to 12 MiB of weights and at the
GDDR6's 600-700 GB/s from 16 MiB, its 96 MiB L2 over 6. The TensorRT-LLM collector
(https://github.com/ai-dynamo/aiconfigurator/blob/main/collector/trtllm/collect_gemm.py) builds
``max(1, min(5, ceil(L2 / weight bytes)))`` copies, so the weights stay in L2 exactly when 5 copies fit:
5 for the residency test."""


def weight_copies(table: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The harness's weight copies per row (:data:`HARNESS_WEIGHT_COPIES`)."""
    pair = table["framework"].astype(str).str.lower() + ":" + table["gemm_dtype"].astype(str).replace(_DTYPES)
    copies = pair.map({f"{e}:{d}": c for (e, d), c in HARNESS_WEIGHT_COPIES.items()})
    return np.asarray(copies.fillna(1.0).to_numpy(dtype=np.float64))


def shapes(table: pd.DataFrame) -> dict[str, npt.NDArray[np.float64]]:
    """``m``, ``n``, ``k`` per row, and the harness's ``weight_copies``."""
    out = {name: table[name].to_numpy(dtype=np.float64) for name in ("m", "n", "k")}
    out["weight_copies"] = weight_copies(table)
    return out


__all__ = ["KERNEL_MODULE", "OP_NAMES", "params_key", "shapes"]
