"""What the dashboard's Validation page reads: a small, stratified sample of the predicted rows and the error
by regime over every row, written by ``python -m validation public`` next to ``summary.json``.

``rows_sample.parquet`` (a few MB, committed as ``validation/results/public-gpu-rows-sample.parquet``)
    A uniform sample of each (system, family, engine, dtype, split) group: the rows with the smallest
    ``SAMPLE_SALT``-salted hash of their identity (every column except the measurement and the
    prediction), at most ``SAMPLE_PER_GROUP[split]`` of them. The hash never looks at a measurement or a
    prediction, so the sample's errors are distributed as the group's; the rule is deterministic and
    stable across machines. Every covered serving row (``silicon_sample.csv``) is kept, as two rows:
    ``metric`` ``ttft`` and ``tpot``. Columns: ``SAMPLE_COLUMNS``; ``shape`` is the row's shape for people
    (``m=128 n=4096 k=4096``), ``regime`` its bucket on the family's first regime axis. The file's schema
    metadata ``costmodel`` holds the provenance (:func:`provenance`) as JSON.
``regimes.json`` (committed as ``validation/results/public-gpu-regimes.json``)
    Error by regime over *every* predicted row (not the sample): per system, family, engine, metric,
    axis, regime and split, ``n``, median and p90 of ``|predicted / measured - 1|`` and the median signed
    error; and ``families``: the same per system, family and split, pooled over engines, dtypes and
    kernels (the per-device, per-family figures of issue 14's targets). Tables are pandas ``split``
    orient (``columns`` + ``data``). Regime axes per family: ``AXES``; a numeric axis is bucketed by its
    edges into ``(lower, upper]`` intervals.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

import costmodel
from costmodel.calibrate import git_revision
from costmodel.errors import CostmodelError
from costmodel.registry import load_hardware
from costmodel.specs import HardwareProfile

SAMPLE_FILE = "rows_sample.parquet"
REGIMES_FILE = "regimes.json"
SAMPLE_SALT = "costmodel-sample"  # 16 bytes: pandas' hash key length
SAMPLE_PER_GROUP = {"held-out": 300, "calibration": 100}
"""Rows kept per (system, family, engine, dtype, split): enough for a scatter that shows the spread."""
SAMPLE_COLUMNS = ("system", "hardware", "family", "engine", "dtype", "kernel", "split", "metric", "regime",
                  "shape", "measured_s", "predicted_s")  # fmt: skip
SAMPLE_GROUP = ("system", "family", "engine", "dtype", "split")
REGIME_KEYS = ("system", "family", "engine", "metric", "axis", "regime", "order", "split")
FAMILY_KEYS = ("system", "family", "split")
ERROR_COLUMNS = ("n", "median_abs_err", "p90_abs_err", "median_signed_err")

ELEMENT_BYTES = {"fp16": 2.0, "bf16": 2.0, "fp32": 4.0, "int8": 1.0, "fp8": 1.0}
"""Bytes per element of a collective's message, by the dtype the collective adapter reports."""
GEMM_INPUT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "nvfp4": 0.5}
GEMM_PEAK_DTYPE = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp4"}

_ATTENTION = ("context_attention", "context_mla", "mla_context", "mla_context_module")
_DECODE = ("generation_attention", "generation_mla", "mla_generation", "mla_generation_module")
_COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
_KIB, _MIB = 2.0**10, 2.0**20

Numeric = Callable[[pd.DataFrame], "pd.Series[float]"]


def _col(name: str) -> Numeric:
    return lambda rows: pd.to_numeric(rows[name], errors="coerce")


def _kv_tokens(rows: pd.DataFrame) -> pd.Series[float]:
    return pd.to_numeric(rows["isl"], errors="coerce") + pd.to_numeric(rows["step"], errors="coerce")


def _message_bytes(rows: pd.DataFrame) -> pd.Series[float]:
    return pd.to_numeric(rows["message_size"], errors="coerce") * rows["dtype"].map(ELEMENT_BYTES)


Axis = tuple[str, "Numeric | str", tuple[float, ...] | None, str]
_DECODE_AXES: tuple[Axis, ...] = (
    ("batch", _col("batch_size"), (1, 8, 64, 256), ""),
    ("KV tokens", _kv_tokens, (1024, 8192, 32768), ""),
)
_COLLECTIVE_AXES: tuple[Axis, ...] = (
    ("message size", _message_bytes, (64 * _KIB, _MIB, 16 * _MIB, 256 * _MIB), "B"),
    ("GPUs", "num_gpus", None, ""),
)
AXES: dict[str, tuple[Axis, ...]] = {
    "gemm": (("m (tokens)", _col("m"), (16, 128, 1024, 8192), ""), ("bound", "bound", None, "")),
    **dict.fromkeys(_ATTENTION, (("prompt tokens", _col("isl"), (512, 2048, 8192), ""),)),
    **dict.fromkeys(_DECODE, _DECODE_AXES),
    **dict.fromkeys(("mla_gen_pre", "mla_gen_post"), (("tokens", _col("num_tokens"), (16, 128, 1024), ""),)),
    "moe": (("tokens", _col("num_tokens"), (16, 128, 1024, 8192), ""), ("routing", "distribution", None, "")),
    **dict.fromkeys(_COLLECTIVES, _COLLECTIVE_AXES),
    "serving": (("concurrency", _col("concurrency"), (4, 16, 64, 256), ""),),
}
"""Regime axes per family: (axis, value of each row or the column of a categorical axis, bucket edges,
unit of the edges). GEMM ``bound``: ``memory-bound`` where the arithmetic intensity
2 m n k / ((m k + k n) x input bytes + 2 m n) is below the device's datasheet ridge point (dense peak of the
format / memory bandwidth), else ``compute-bound``."""

AXIS_COLUMNS = {"m", "n", "k", "isl", "step", "batch_size", "num_tokens", "distribution", "message_size",
                "num_gpus", "concurrency"}  # fmt: skip
"""The columns the regime axes read."""

_ATTENTION_SHAPE = ("batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "window_size")
_DECODE_SHAPE = ("batch_size", "isl", "step", "num_heads", "num_key_value_heads", "head_dim", "window_size")
_MOE_SHAPE = ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size",
              "distribution")  # fmt: skip
SHAPE_COLUMNS: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "n", "k"),
    **dict.fromkeys(_ATTENTION, _ATTENTION_SHAPE),
    **dict.fromkeys(_DECODE, _DECODE_SHAPE),
    **dict.fromkeys(("mla_gen_pre", "mla_gen_post"), ("num_tokens", "num_heads")),
    "moe": _MOE_SHAPE,
    **dict.fromkeys(_COLLECTIVES, ("message_size", "num_gpus")),
    "serving": ("model_path", "isl", "osl", "concurrency"),
}
"""Columns of the hover text per family (those a table has; empty values left out)."""


def _bucket_text(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / _MIB:g} MiB" if value >= _MIB else f"{value / _KIB:g} KiB"
    return f"{value:,.0f}"


def bucket(
    values: pd.Series[float], edges: tuple[float, ...], unit: str = ""
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Labels and orders of ``values`` in the ``(lower, upper]`` intervals of ``edges``: ``≤ e1``,
    ``e1–e2``, ..., ``> en``; NaN -> ``unknown`` (order -1)."""
    text = [_bucket_text(e, unit) for e in edges]
    inner = [f"{a}–{b}" for a, b in itertools.pairwise(text)]
    labels = np.array([f"≤ {text[0]}", *inner, f"> {text[-1]}"])
    x = values.to_numpy(np.float64)
    order = np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="left")
    known = np.isfinite(x)
    return np.where(known, labels[np.minimum(order, len(edges))], "unknown"), np.where(known, order, -1)


@functools.cache
def _hardware(name: str) -> HardwareProfile:
    return load_hardware(name)


def gemm_bound(rows: pd.DataFrame) -> npt.NDArray[np.str_]:
    """``memory-bound`` / ``compute-bound`` per GEMM row against the device's datasheet ridge point
    (see ``AXES``); ``unknown`` where the profile has no peak for the format."""
    m, n, k = (pd.to_numeric(rows[c], errors="coerce").to_numpy(np.float64) for c in ("m", "n", "k"))
    width = rows["dtype"].map(GEMM_INPUT_BYTES).to_numpy(np.float64)
    intensity = 2 * m * n * k / ((m * k + k * n) * width + 2 * m * n)
    ridge = np.full(len(rows), np.nan)
    hardware = rows["hardware"].to_numpy(str)
    dtypes = rows["dtype"].to_numpy(str)
    for hw, dtype in set(zip(hardware, dtypes, strict=True)):
        try:
            profile = _hardware(hw)
            peak = profile.peak_flop_per_s(GEMM_PEAK_DTYPE.get(dtype, dtype))
        except (CostmodelError, KeyError, ValueError):
            continue
        ridge[(hardware == hw) & (dtypes == dtype)] = peak / profile.memory_bandwidth_bytes_per_s
    bound = np.where(intensity < ridge, "memory-bound", "compute-bound")
    return np.asarray(np.where(np.isfinite(ridge) & np.isfinite(intensity), bound, "unknown"), dtype=str)


def regimes_of(
    rows: pd.DataFrame, family: str, first: bool = False
) -> list[tuple[str, npt.NDArray[Any], npt.NDArray[Any]]]:
    """(axis, label per row, order per row) for every regime axis of ``family`` (none if it has no axes),
    or for its first axis only."""
    out = []
    for axis, value, edges, unit in AXES.get(family, ())[: 1 if first else None]:
        if value == "bound":
            labels = gemm_bound(rows)
            order = np.where(labels == "memory-bound", 0, np.where(labels == "compute-bound", 1, -1))
        elif isinstance(value, str):
            column = rows[value] if value in rows else pd.Series(np.nan, index=rows.index)
            labels = np.asarray(column.astype(object).where(column.notna(), "unknown").astype(str))
            numbers = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
            if np.isfinite(numbers).all():  # a count (GPUs): its value is its order
                labels, order = np.array([f"{v:g}" for v in numbers], dtype=str), numbers
            else:
                order = pd.factorize(labels, sort=True)[0]
        else:
            try:
                numbers = value(rows)
            except KeyError:
                numbers = pd.Series(np.nan, index=rows.index)
            labels, order = bucket(numbers, edges or (), unit)
        out.append((axis, labels, np.asarray(order, dtype=np.float64)))
    return out


def _errors(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = frame.groupby(keys, sort=True, observed=True)
    return grouped.agg(
        n=("abs", "size"),
        median_abs_err=("abs", "median"),
        p90_abs_err=("abs", lambda s: float(np.quantile(s, 0.9))),
        median_signed_err=("signed", "median"),
    ).reset_index()


def kernel_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The predicted kernel rows with ``measured_s``, ``metric`` (``latency``) and ``kernel``."""
    return rows.assign(
        measured_s=rows["latency_s"], metric="latency", kernel=rows["kernel_source"].astype(str)
    )


def serving_frame(silicon: pd.DataFrame) -> pd.DataFrame:
    """Covered serving rows as two rows each (``metric`` ttft and tpot), seconds, family ``serving``."""
    covered = silicon[silicon["covered"].astype(bool)]
    parts = []
    for metric in ("ttft", "tpot"):
        measured, predicted = covered[f"{metric}_ms"] / 1e3, covered[f"predicted_{metric}_ms"] / 1e3
        ok = (measured > 0) & (predicted > 0)
        extra = {"family": "serving", "engine": covered["backend"].astype(str), "dtype": "",
                 "kernel": covered["mode"], "metric": metric, "hardware": ""}  # fmt: skip
        parts.append(covered[ok].assign(measured_s=measured[ok], predicted_s=predicted[ok], **extra))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def regime_tables(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(error by regime, error per system x family x split) over every row of ``frames``."""
    regime_parts, family_parts = [], []
    for frame in frames:
        if frame.empty:
            continue
        signed = frame["predicted_s"] / frame["measured_s"] - 1.0
        needed = {"system", "family", "engine", "metric", "split", "hardware", "dtype"} | AXIS_COLUMNS
        base = frame[[c for c in frame.columns if c in needed]].assign(signed=signed, abs=signed.abs())
        serving = base["family"] == "serving"
        named = base.assign(family=np.where(serving, "serving " + base["metric"], base["family"]))
        family_parts.append(_errors(named, list(FAMILY_KEYS)))
        for family, rows in base.groupby("family", sort=True):
            for axis, labels, order in regimes_of(rows, str(family)):
                work = rows[["system", "family", "engine", "metric", "split", "signed", "abs"]].assign(
                    axis=axis, regime=labels, order=order
                )
                regime_parts.append(_errors(work, list(REGIME_KEYS)))
    regimes = pd.concat(regime_parts, ignore_index=True) if regime_parts else pd.DataFrame()
    families = pd.concat(family_parts, ignore_index=True) if family_parts else pd.DataFrame()
    return regimes, families


def shape_text(rows: pd.DataFrame) -> npt.NDArray[np.str_]:
    """``name=value`` of each row's shape columns (``SHAPE_COLUMNS`` of its family), space-separated."""
    text = pd.Series("", index=rows.index, dtype=object)
    for family, part in rows.groupby("family", sort=False):
        pieces = pd.Series("", index=part.index, dtype=object)
        for column in SHAPE_COLUMNS.get(str(family), ()):
            if column not in part:
                continue
            values = part[column]
            numbers = pd.to_numeric(values, errors="coerce")
            shown = values.astype(str).where(numbers.isna(), numbers.map(lambda v: f"{v:g}"))
            present = values.notna() & (values.astype(str) != "")
            joined = pieces + np.where(pieces == "", "", " ") + f"{column}=" + shown
            pieces = joined.where(present, pieces)
        text[part.index] = pieces
    return np.asarray(text.to_numpy(), dtype=str)


def sample_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The documented sample of ``frame`` (kernel rows, see the module docstring)."""
    identity = frame.drop(
        columns=[c for c in ("latency", "latency_s", "predicted_s", "measured_s") if c in frame]
    )
    rank = pd.util.hash_pandas_object(identity, index=False, hash_key=SAMPLE_SALT).to_numpy()
    order = np.argsort(rank, kind="stable")
    keys = frame[list(SAMPLE_GROUP)].iloc[order]
    keep = keys.groupby(list(SAMPLE_GROUP), sort=False).cumcount().to_numpy()
    limit = keys["split"].map(SAMPLE_PER_GROUP).fillna(0).to_numpy()
    return frame.iloc[order[keep < limit]]


def provenance(root: str | Path, rows: pd.DataFrame, data_revision: str) -> dict[str, Any]:
    """Where the predictions come from: the data (its systems, devices and engine versions), the code and
    the software that ran it, and when."""
    systems: dict[str, Any] = {}
    if len(rows):
        cols = [c for c in ("system", "hardware", "device", "engine", "engine_version") if c in rows]
        distinct = rows[cols].drop_duplicates()
        for system, part in distinct.groupby("system", sort=True):
            engines = part.groupby("engine")["engine_version"].unique() if "engine_version" in part else {}
            systems[str(system)] = {
                "hardware_profile": sorted(part["hardware"].dropna().astype(str).unique()),
                "devices": sorted(part["device"].dropna().astype(str).unique()) if "device" in part else [],
                "engines": {str(e): sorted(map(str, v)) for e, v in dict(engines).items()},
            }
    return {
        "data": str(root),
        "data_revision": data_revision,
        "systems": systems,
        "costmodel_version": costmodel.__version__,
        "costmodel_revision": git_revision(),
        "date": dt.date.today().isoformat(),
        "software": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "command": f"python -m validation public --data {root} --out OUT",
    }


def write_page_files(
    out: Path, kernels: pd.DataFrame, silicon: pd.DataFrame | None, about: dict[str, Any]
) -> dict[str, Any]:
    """Write ``SAMPLE_FILE`` and ``REGIMES_FILE`` into ``out``; return what ``summary.json`` says of them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frames = [kernel_frame(kernels) if len(kernels) else pd.DataFrame()]
    if silicon is not None and len(silicon):
        frames.append(serving_frame(silicon))
    regimes, families = regime_tables(frames)
    sampled = [sample_rows(frames[0])] if len(frames[0]) else []
    sampled += frames[1:]  # every covered serving row
    sample = pd.concat(sampled, ignore_index=True, sort=False) if sampled else pd.DataFrame()
    if len(sample):
        first = {}
        for family, rows in sample.groupby("family", sort=False):
            axes = regimes_of(rows, str(family), first=True)
            first[family] = pd.Series(axes[0][1] if axes else "", index=rows.index)
        sample["regime"] = pd.concat(first.values()).reindex(sample.index)
        sample["shape"] = shape_text(sample)
        sample = sample[list(SAMPLE_COLUMNS)].sort_values(
            ["system", "family", "engine", "dtype", "split", "measured_s"], kind="stable"
        )
    else:
        sample = pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    rule = (
        f"per (system, family, engine, dtype, split): the rows with the smallest hash of their identity "
        f"(pandas hash_pandas_object, key {SAMPLE_SALT!r}, every column but the measurement and the "
        f"prediction), at most {SAMPLE_PER_GROUP['held-out']} held-out and {SAMPLE_PER_GROUP['calibration']} "
        "calibration rows; every covered serving row"
    )
    meta = about | {"sample_rule": rule}
    table = pa.Table.from_pandas(sample.reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"costmodel": json.dumps(meta)})
    pq.write_table(table, out / SAMPLE_FILE, compression="zstd")
    document = about | {
        "axes": {f: [a[0] for a in axes] for f, axes in AXES.items()},
        "errors": "fractions; signed = predicted / measured - 1; over every predicted row, not the sample",
        "families": _split_orient(families),
        "regimes": _split_orient(regimes),
    }
    (out / REGIMES_FILE).write_text(json.dumps(document, default=_plain) + "\n", encoding="utf-8")
    return {
        "rows_sample": SAMPLE_FILE,
        "rows_sample_n": len(sample),
        "sample_rule": rule,
        "regimes": REGIMES_FILE,
    }


def _split_orient(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {"columns": [], "data": []}
    rounded = frame.copy()
    for column in ("median_abs_err", "p90_abs_err", "median_signed_err"):
        rounded[column] = rounded[column].astype(float).round(5)
    return {"columns": list(rounded.columns), "data": rounded.to_numpy().tolist()}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)
