"""Adapter: NVIDIA aiconfigurator's ``nccl_perf`` and ``custom_allreduce_perf`` tables ->
``costmodel.kernels.collective``.

``message_size`` counts elements of the table's dtype (``half`` / ``bfloat16``: 2 bytes, ``int8``: 1):
at 2^28 half elements an 8-GPU H100 NCCL all-gather takes 1.40 ms, 537 MB x 7/8 / 1.40 ms = 335 GB/s of
bus bandwidth, under the 450 GB/s NVLink port, while reading it as bytes would give half that. Parameters
are looked up per ``nccl:<op>`` for NCCL and per ``<kernel_source>`` (``TRTLLM``, ``vLLM_custom_graph``,
``vLLM_custom_eager``) for the engines' custom all-reduce.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.errors import CostmodelError
from costmodel.kernels import collective

KERNEL_MODULE = collective
OP_NAMES = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")

ELEMENT_BYTES = {
    "half": 2,
    "float16": 2,
    "fp16": 2,
    "bfloat16": 2,
    "bf16": 2,
    "int8": 1,
    "float": 4,
    "float32": 4,
    "fp8": 1,
}


_SHORT = {"half": "fp16", "float16": "fp16", "bfloat16": "bf16", "float": "fp32", "float32": "fp32"}


def _dtype(table: pd.DataFrame) -> pd.Series:
    columns = [c for c in ("nccl_dtype", "allreduce_dtype") if c in table]
    if not columns:
        raise CostmodelError(
            "collective table has neither nccl_dtype nor allreduce_dtype: cannot size messages"
        )
    dtype = table[columns[0]]
    for column in columns[1:]:  # a concatenation of both tables has each column half empty
        dtype = dtype.fillna(table[column])
    return dtype.astype(str).str.lower()


def _is_nccl(table: pd.DataFrame) -> npt.NDArray[np.bool_]:
    return np.asarray(table["kernel_source"].astype(str).str.upper().eq("NCCL").to_numpy(dtype=bool))


def params_key(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """``nccl:<op>`` for NCCL rows, the kernel source (custom all-reduce implementation) otherwise."""
    op = table["op_name"].astype(str).to_numpy(dtype=str)
    kernel = table["kernel_source"].astype(str).to_numpy(dtype=str)
    return np.asarray(np.where(_is_nccl(table), np.char.add("nccl:", op), kernel), dtype=str)


def dtype(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The element format of each row's message (``half`` -> ``fp16``, ``bfloat16`` -> ``bf16``, ``int8``)."""
    return np.asarray(_dtype(table).map(lambda v: _SHORT.get(v, v)), dtype=str)


def shapes(table: pd.DataFrame) -> dict[str, Any]:
    """``message_bytes`` (elements x element size), ``num_gpus`` and ``op`` per row."""
    dtype = _dtype(table)
    unknown = sorted(set(dtype) - set(ELEMENT_BYTES))
    if unknown:
        raise CostmodelError(f"collective dtype {unknown[0]!r} has no known element size")
    element = dtype.map(ELEMENT_BYTES).to_numpy(dtype=np.float64)
    return {
        "message_bytes": table["message_size"].to_numpy(dtype=np.float64) * element,
        "num_gpus": table["num_gpus"].to_numpy(dtype=np.float64),
        "op": table["op_name"].astype(str).to_numpy(dtype=str),
    }
