"""Adapter: the public ``context_attention`` tables -> ``costmodel.kernels.context_attention``.

Columns used: ``engine`` (added by the reader from the path, or ``framework``), ``kernel_source``,
``batch_size``, ``isl`` (prompt tokens), ``num_heads``, ``num_key_value_heads``, ``head_dim``,
``window_size`` (0 or absent: full attention), ``attn_dtype`` (``fp8``: the kernel computes in FP8),
``kv_cache_dtype``. The collectors run causal self-attention over ``isl`` new tokens with no prefix
(aiconfigurator ``collector/vllm/collect_attn.py``: ``seq_lens = query_lens = isl``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.kernels import context_attention

KERNEL_MODULE = context_attention
OP_NAMES = ("context_attention",)

_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "fp8": "fp8"}
_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}


def short_dtype(values: pd.Series) -> npt.NDArray[np.str_]:
    """Table dtype names -> costmodel names (``bfloat16`` -> ``bf16``); unknown names stay as they are."""
    return np.asarray(values.astype(str).map(lambda v: _DTYPE.get(v, v)), dtype=str)


def engine(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The engine of each row: the reader's ``engine`` column, else ``framework`` lower-cased."""
    column = table["engine"] if "engine" in table else table["framework"]
    return np.asarray(column.astype(str).str.lower(), dtype=str)


def params_key(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """``"<engine>.<kernel_source>:<compute dtype>[+fp8kv]"``: one parameter set per kernel and format."""
    compute = short_dtype(table["attn_dtype"])
    kv = short_dtype(table["kv_cache_dtype"])
    kernel = np.char.add(np.char.add(engine(table), "."), table["kernel_source"].astype(str).to_numpy(str))
    suffix = np.where(kv != compute, np.char.add("+", np.char.add(kv, "kv")), "")
    return np.asarray(np.char.add(np.char.add(np.char.add(kernel, ":"), compute), suffix), dtype=str)


def dtype(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The format of each row: the compute dtype, ``+fp8kv`` where the KV cache is stored in another one
    (the part of the key after the kernel)."""
    return np.asarray(np.char.partition(params_key(table), ":")[:, 2], dtype=str)


def shapes(table: pd.DataFrame) -> dict[str, npt.NDArray[np.float64]]:
    """Per-row keyword arrays for ``context_attention.time_s``."""
    window = table["window_size"].fillna(0) if "window_size" in table else pd.Series(0, index=table.index)
    return {
        "batch_size": table["batch_size"].to_numpy(np.float64),
        "seq_len": table["isl"].to_numpy(np.float64),
        "n_heads": table["num_heads"].to_numpy(np.float64),
        "n_kv_heads": table["num_key_value_heads"].to_numpy(np.float64),
        "head_dim": table["head_dim"].to_numpy(np.float64),
        "window": window.to_numpy(np.float64),
        "act_bytes": np.vectorize(_BYTES.get)(short_dtype(table["attn_dtype"])).astype(np.float64),
        "kv_bytes": np.vectorize(_BYTES.get)(short_dtype(table["kv_cache_dtype"])).astype(np.float64),
    }
