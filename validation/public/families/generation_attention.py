"""Adapter: the public ``generation_attention`` tables -> ``costmodel.kernels.generation_attention``.

Columns used as in the context adapter, plus ``step``: the collectors time one new token per sequence
against ``step`` cached tokens (``isl`` is 1), so the kernel attends ``isl + step`` keys.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.kernels import generation_attention
from validation.public.families.context_attention import _BYTES, short_dtype
from validation.public.families.context_attention import dtype as _context_dtype
from validation.public.families.context_attention import params_key as _context_key

KERNEL_MODULE = generation_attention
OP_NAMES = ("generation_attention",)
#: Query heads per KV head above which a row is keyed as the wide-group decode kernel.
WIDE_GROUP = 32


def params_key(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The context keys plus a decode-kernel class: ``+mha`` for rows without grouped KV heads and
    ``+wide`` for more than ``WIDE_GROUP`` query heads per KV head. Engines dispatch different decode
    kernels by group size (TensorRT-LLM runs masked multi-head attention for MHA and XQA for MQA/GQA,
    https://nvidia.github.io/TensorRT-LLM/advanced/gpt-attention.html); in its measurements the time
    per row switches from per-KV-head to per-query-head work between 32 and 48 heads per KV head.
    ``+swa`` marks sliding-window rows: vLLM's FlashAttention-2 decode (L40S) runs them on another path,
    whose time grows with batch x query heads even for a two-token cache."""
    group = (table["num_heads"] / table["num_key_value_heads"]).to_numpy(np.float64)
    base = _context_key(table)
    suffix = np.where(group == 1, "+mha", np.where(group > WIDE_GROUP, "+wide", ""))
    window = table["window_size"].fillna(0).to_numpy(np.float64) if "window_size" in table else 0.0
    suffix = np.where(np.asarray(window) > 0, np.char.add(suffix, "+swa"), suffix)
    return np.asarray(np.char.add(base, suffix), dtype=str)


def dtype(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The format of each row, as for context attention (the decode-kernel class is not a format)."""
    return _context_dtype(table)


def shapes(table: pd.DataFrame) -> dict[str, npt.NDArray[np.float64]]:
    """Per-row keyword arrays for ``generation_attention.time_s``."""
    window = table["window_size"].fillna(0) if "window_size" in table else pd.Series(0, index=table.index)
    return {
        "batch_size": table["batch_size"].to_numpy(np.float64),
        "kv_len": (table["isl"] + table["step"]).to_numpy(np.float64),
        "n_heads": table["num_heads"].to_numpy(np.float64),
        "n_kv_heads": table["num_key_value_heads"].to_numpy(np.float64),
        "head_dim": table["head_dim"].to_numpy(np.float64),
        "window": window.to_numpy(np.float64),
        "kv_bytes": np.vectorize(_BYTES.get)(short_dtype(table["kv_cache_dtype"])).astype(np.float64),
    }
