"""Adapter: NVIDIA aiconfigurator's ``nccl_perf`` and ``custom_allreduce_perf`` tables ->
``costmodel.kernels.collective``.

``message_size`` counts elements of the table's dtype (``half`` / ``bfloat16``: 2 bytes, ``int8``: 1):
at 2^28 half elements an 8-GPU H100 NCCL all-gather takes 1.40 ms, 537 MB x 7/8 / 1.40 ms = 335 GB/s of
bus bandwidth, under the 450 GB/s NVLink port, while reading it as bytes would give half that. Parameters
are looked up per ``nccl:<op>`` for NCCL and per implementation for the engines' custom all-reduce
(``TRTLLM``; ``vLLM_custom`` for both of vLLM's rows, ``vLLM_custom_graph`` and ``vLLM_custom_eager``: the
same kernels, called from a CUDA graph or in eager mode, which only the ``eager`` shape tells apart).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.errors import CostmodelError
from costmodel.kernels import collective
from costmodel.registry import load_hardware

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


MODE_SUFFIXES = ("_graph", "_eager")
"""Suffixes of a kernel source naming the execution mode of the same custom all-reduce."""


def _implementation(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    kernel = table["kernel_source"].astype(str)
    for suffix in MODE_SUFFIXES:
        kernel = kernel.str.removesuffix(suffix)
    return np.asarray(kernel.to_numpy(dtype=str), dtype=str)


def _is_eager(table: pd.DataFrame) -> npt.NDArray[np.bool_]:
    return np.asarray(table["kernel_source"].astype(str).str.endswith("_eager").to_numpy(dtype=bool))


def params_key(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """``nccl:<op>`` for NCCL rows, the custom all-reduce implementation (the kernel source without its
    execution mode) otherwise, except where the engine hands the all-reduce over to NCCL at its published
    size limit (:func:`costmodel.kernels.collective.runs_on_nccl`, by the ``hardware`` column's profile):
    those rows are NCCL's all-reduce."""
    op = table["op_name"].astype(str).to_numpy(dtype=str)
    keys = np.asarray(np.where(_is_nccl(table), np.char.add("nccl:", op), _implementation(table)), dtype=str)
    if "hardware" not in table:
        return keys
    sizes = shapes(table)
    handed = np.zeros(len(table), dtype=bool)
    hardware_names = table["hardware"].to_numpy(dtype=str)
    for name in np.unique(hardware_names):
        for key in np.unique(keys[hardware_names == name]):
            mask = (hardware_names == name) & (keys == key)
            handed[mask] = collective.runs_on_nccl(
                load_hardware(str(name)),
                str(key),
                message_bytes=sizes["message_bytes"][mask],
                num_gpus=sizes["num_gpus"][mask],
            )
    return np.asarray(np.where(handed, "nccl:all_reduce", keys), dtype=str)


def dtype(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The element format of each row's message (``half`` -> ``fp16``, ``bfloat16`` -> ``bf16``, ``int8``)."""
    return np.asarray(_dtype(table).map(lambda v: _SHORT.get(v, v)), dtype=str)


def p2p_ll_max_bytes(table: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Per row, the largest message per peer its NCCL release sends point-to-point with the LL protocol
    (:func:`costmodel.kernels.collective.p2p_ll_max_bytes`) [bytes]: the release is the folder's version
    (``engine_version``) for NCCL's own tables (``engine`` ``nccl``), the newest rule for other rows or where
    the table names none. Every public NCCL table was collected on NVSwitch nodes (NVLink)."""
    newest = collective.p2p_ll_max_bytes(None)
    if "engine_version" not in table or "engine" not in table:
        return np.full(len(table), newest)
    nccl = table["engine"].astype(str).str.lower().eq("nccl").to_numpy(dtype=bool)
    releases = table["engine_version"].astype(str).to_numpy(dtype=str)
    by_release = {r: collective.p2p_ll_max_bytes(r) for r in np.unique(releases[nccl]).tolist()}
    return np.asarray(
        [by_release[r] if k else newest for r, k in zip(releases, nccl, strict=True)], dtype=float
    )


def shapes(table: pd.DataFrame) -> dict[str, Any]:
    """``message_bytes`` (elements x element size), ``num_gpus``, ``op``, ``eager`` and the NCCL release's
    point-to-point LL limit (:func:`p2p_ll_max_bytes`) per row."""
    dtype = _dtype(table)
    unknown = sorted(set(dtype) - set(ELEMENT_BYTES))
    if unknown:
        raise CostmodelError(f"collective dtype {unknown[0]!r} has no known element size")
    element = dtype.map(ELEMENT_BYTES).to_numpy(dtype=np.float64)
    return {
        "message_bytes": table["message_size"].to_numpy(dtype=np.float64) * element,
        "num_gpus": table["num_gpus"].to_numpy(dtype=np.float64),
        "op": table["op_name"].astype(str).to_numpy(dtype=str),
        "eager": _is_eager(table),
        "p2p_ll_max_bytes": p2p_ll_max_bytes(table),
    }
