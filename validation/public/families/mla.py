"""Adapter: the public MLA tables (``mla`` and ``mla_bmm`` folders) -> ``costmodel.kernels.mla``.

Op names: ``context_mla`` (vLLM) / ``mla_context`` (TensorRT-LLM) prefill attention kernels,
``generation_mla`` / ``mla_generation`` decode kernels, ``mla_context_module`` / ``mla_generation_module``
the whole attention block of a DeepSeek-V3 layer, ``mla_gen_pre`` / ``mla_gen_post`` the absorb batched
matmuls. ``num_heads`` is the heads on one GPU (128 / ``tp_size``). Generation rows attend ``isl + step``
cached tokens. Columns used besides those: ``mla_dtype`` (``fp8``: FP8 attention), ``kv_cache_dtype``,
``gemm_type`` (modules), ``bmm_dtype`` and ``num_tokens`` (absorb matmuls).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.kernels import mla
from validation.public.families.context_attention import _BYTES, engine, short_dtype

KERNEL_MODULE = mla
OP_NAMES = (
    "context_mla",
    "mla_context",
    "generation_mla",
    "mla_generation",
    "mla_context_module",
    "mla_generation_module",
    "mla_gen_pre",
    "mla_gen_post",
)
_OP = {
    "context_mla": ("ctx", mla.OP_CONTEXT),
    "mla_context": ("ctx", mla.OP_CONTEXT),
    "generation_mla": ("gen", mla.OP_GENERATION),
    "mla_generation": ("gen", mla.OP_GENERATION),
    "mla_context_module": ("ctx_module", mla.OP_CONTEXT_MODULE),
    "mla_generation_module": ("gen_module", mla.OP_GENERATION_MODULE),
    "mla_gen_pre": ("bmm_pre", mla.OP_BMM_PRE),
    "mla_gen_post": ("bmm_post", mla.OP_BMM_POST),
}
_GEMM = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4"}


def _column(table: pd.DataFrame, name: str, fill: str) -> pd.Series:
    return (
        table[name].astype(object).fillna(fill).astype(str)
        if name in table
        else pd.Series(fill, index=table.index)
    )


def params_key(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """``"<engine>.<kernel_source>:<op>:<attention dtype>[+fp8kv][/<gemm format>]"``."""
    op = table["op_name"].astype(str).map(lambda o: _OP[o][0]).to_numpy(str)
    is_bmm = np.char.startswith(op, "bmm")
    compute = np.where(is_bmm, "bf16", short_dtype(_column(table, "mla_dtype", "bfloat16")))
    kv = short_dtype(_column(table, "kv_cache_dtype", "bfloat16"))
    gemm_source = np.where(
        is_bmm, _column(table, "bmm_dtype", "bfloat16"), _column(table, "gemm_type", "bfloat16")
    )
    gemm = np.array([_GEMM.get(g, g) for g in gemm_source], dtype=str)
    kernel = np.char.add(np.char.add(engine(table), "."), table["kernel_source"].astype(str).to_numpy(str))
    key = np.char.add(np.char.add(np.char.add(np.char.add(kernel, ":"), op), ":"), compute)
    key = np.where((kv != compute) & ~is_bmm, np.char.add(key, np.char.add("+", np.char.add(kv, "kv"))), key)
    return np.asarray(np.where(gemm != "bf16", np.char.add(np.char.add(key, "/"), gemm), key), dtype=str)


def dtype(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The format of each row: ``<attention dtype>[+fp8kv][/<gemm format>]``, the key after its kernel and
    operation."""
    return np.asarray(np.char.rpartition(params_key(table), ":")[:, 2], dtype=str)


def shapes(table: pd.DataFrame) -> dict[str, npt.NDArray[np.float64]]:
    """Per-row keyword arrays for ``mla.time_s``."""
    op = table["op_name"].astype(str).map(lambda o: _OP[o][1]).to_numpy(np.int64)
    is_bmm = (op == mla.OP_BMM_PRE) | (op == mla.OP_BMM_POST)
    is_generation = (op == mla.OP_GENERATION) | (op == mla.OP_GENERATION_MODULE)
    isl = _number(table, "isl", 1.0)
    step = _number(table, "step", 0.0)
    gemm_source = np.where(
        is_bmm, _column(table, "bmm_dtype", "bfloat16"), _column(table, "gemm_type", "bfloat16")
    )
    return {
        "op": op,
        "batch_size": np.where(is_bmm, _number(table, "num_tokens", 1.0), _number(table, "batch_size", 1.0)),
        "seq_len": np.where(is_bmm, 1.0, np.where(is_generation, isl + step, isl)),
        "n_heads": table["num_heads"].to_numpy(np.float64),
        "kv_bytes": np.array([_BYTES[k] for k in short_dtype(_column(table, "kv_cache_dtype", "bfloat16"))]),
        "weight_bytes": np.array([mla.GEMM_WEIGHT_BYTES[_GEMM.get(g, g)] for g in gemm_source]),
    }


def _number(table: pd.DataFrame, name: str, fill: float) -> npt.NDArray[np.float64]:
    return table[name].fillna(fill).to_numpy(np.float64) if name in table else np.full(len(table), fill)
