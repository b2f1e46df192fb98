"""GEMM tables (``op_name == "gemm"``: ``m``, ``n``, ``k``, ``gemm_dtype``, ``kernel_source``).

Parameters are keyed by dtype and kernel class (``"fp8_block:DeepGemmFp8BlockScaledMMKernel"``): the same
format through CUTLASS, DeepGEMM or FlashInfer is a different kernel with its own achieved fractions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.kernels import gemm as KERNEL_MODULE

OP_NAMES = ("gemm",)

_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4"}


def params_key(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """``"<dtype>:<kernel_source>"`` per row."""
    dtype = table["gemm_dtype"].astype(str).replace(_DTYPES)
    return np.asarray(dtype + ":" + table["kernel_source"].astype(str), dtype=str)


def shapes(table: pd.DataFrame) -> dict[str, npt.NDArray[np.float64]]:
    """``m``, ``n``, ``k`` per row."""
    return {name: table[name].to_numpy(dtype=np.float64) for name in ("m", "n", "k")}


__all__ = ["KERNEL_MODULE", "OP_NAMES", "params_key", "shapes"]
