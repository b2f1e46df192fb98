"""Predict every measured row of the public tables with the committed profiles; never fit.

For each table, rows are grouped by ``op_name``; an ``op_name`` with an adapter
(:mod:`validation.public.families`) is predicted group by group (hardware, parameter key) with
``costmodel.kernels.params_for`` on the built-in (committed, calibrated) hardware profiles. Rows that cannot
be predicted are counted per ``op_name`` with the reason (no adapter, no hardware profile, a datasheet
figure the model needs is missing), never dropped silently.

Outputs: ``summary.json`` (``"kernels"``: one entry per system, family, engine, dtype, kernel and split with
``n``, ``median_abs_err``, ``p90_abs_err``, ``median_signed_err``; errors are fractions, signed =
predicted / measured - 1), ``rows.csv`` (every predicted row with ``predicted_s``), and the dashboard's
``rows_sample.parquet`` and ``regimes.json`` (:mod:`validation.public.sample`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from costmodel.errors import CostmodelError
from costmodel.kernels import params_for
from costmodel.registry import load_hardware
from costmodel.specs import HardwareProfile
from validation.public.calibrate import fitted_rows
from validation.public.families import adapter_for
from validation.public.reader import iter_tables, read_revision
from validation.public.sample import provenance, write_page_files
from validation.public.silicon import SILICON_FILE, predict_silicon, silicon_summary, uncovered_reasons

SUMMARY_KEYS = ("system", "family", "engine", "dtype", "kernel", "split",
                "n", "median_abs_err", "p90_abs_err", "median_signed_err")  # fmt: skip
"""One entry of ``summary.json``'s ``"kernels"``: issue 14's keys plus ``kernel`` (the table's
``kernel_source``), since one format runs through several kernels whose errors differ."""
GROUP_KEYS = ("system", "family", "engine", "dtype", "kernel", "split")
ROW_COLUMNS = ("system", "hardware", "family", "engine", "engine_version", "table", "kernel_source", "dtype",
               "key", "split", "latency_s", "predicted_s")  # fmt: skip


@dataclass
class Evaluation:
    """Predicted rows (one DataFrame per table) and what could not be predicted."""

    rows: list[pd.DataFrame] = field(default_factory=list)
    uncovered: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(op_name, reason) -> rows."""

    def frame(self) -> pd.DataFrame:
        """All predicted rows, one frame (columns: ``ROW_COLUMNS`` first, then each table's own)."""
        if not self.rows:
            return pd.DataFrame(columns=list(ROW_COLUMNS))
        return pd.concat(self.rows, ignore_index=True, sort=False)


def predict_table(
    frame: pd.DataFrame, evaluation: Evaluation, hardware_of: Callable[[str], HardwareProfile] = load_hardware
) -> None:
    """Predict the rows of one table (with the reader's added columns) into ``evaluation``; ``hardware_of``
    gives the profile of a hardware name (the committed one by default)."""
    for op_name, rows in frame.groupby("op_name", sort=True):
        op_name = str(op_name)
        adapter = adapter_for(op_name)
        if adapter is None:
            evaluation.uncovered[(op_name, "no adapter for this op_name")] += len(rows)
            continue
        module = adapter.KERNEL_MODULE
        keys = np.asarray(adapter.params_key(rows), dtype=str)
        shapes = adapter.shapes(rows)
        predicted = np.full(len(rows), np.nan)
        hardware_names = rows["hardware"].to_numpy(dtype=str)
        for hw_name in np.unique(hardware_names):
            try:
                hardware = hardware_of(str(hw_name))
            except CostmodelError:
                evaluation.uncovered[(op_name, f"no hardware profile {hw_name!r}")] += int(
                    (hardware_names == hw_name).sum()
                )
                continue
            for key in np.unique(keys[hardware_names == hw_name]):
                mask = (hardware_names == hw_name) & (keys == key)
                try:
                    params = params_for(hardware, module, str(key))
                    predicted[mask] = module.time_s(
                        hardware, params, **{name: value[mask] for name, value in shapes.items()}
                    )
                except CostmodelError as e:
                    evaluation.uncovered[(op_name, f"{hw_name} {key}: {e}")] += int(mask.sum())
        done = np.isfinite(predicted)
        if not done.any():
            continue
        out = rows.loc[done].copy()
        out["family"] = op_name
        out["key"] = keys[done]
        dtypes = adapter.dtype(rows) if hasattr(adapter, "dtype") else np.char.partition(keys, ":")[:, 0]
        out["dtype"] = np.asarray(dtypes, dtype=str)[done]
        out["split"] = np.where(out["calibration"].to_numpy(dtype=bool), "calibration", "held-out")
        out["predicted_s"] = predicted[done]
        evaluation.rows.append(out)


def evaluate(root: str | Path) -> Evaluation:
    """Predict every table under ``root`` (see the module docstring)."""
    evaluation = Evaluation()
    for table in iter_tables(root):
        # "calibration": the rows the committed calibration fitted (validation.public.calibrate.fitted_rows)
        predict_table(table.frame.assign(calibration=fitted_rows(table)), evaluation)
    return evaluation


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per system, family, engine, dtype, kernel and split: n, median |err|, p90 |err|, median signed err."""
    signed = rows["predicted_s"] / rows["latency_s"] - 1.0
    work = rows[["system", "family", "engine", "dtype", "split"]].assign(
        kernel=rows["kernel_source"].astype(str), signed=signed, abs=signed.abs()
    )
    grouped = work.groupby(list(GROUP_KEYS), sort=True)
    summary = grouped.agg(
        n=("abs", "size"),
        median_abs_err=("abs", "median"),
        p90_abs_err=("abs", lambda s: float(np.quantile(s, 0.9))),
        median_signed_err=("signed", "median"),
    ).reset_index()
    return summary[list(SUMMARY_KEYS)]


def write_outputs(root: str | Path, out_dir: str | Path, evaluation: Evaluation) -> dict[str, Any]:
    """Write ``summary.json``, ``rows.csv`` and the dashboard's files (:mod:`validation.public.sample`)
    into ``out_dir``; return the summary document."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = evaluation.frame()
    summary = summarize(rows) if len(rows) else pd.DataFrame(columns=list(SUMMARY_KEYS))
    about = provenance(root, rows, read_revision(root))
    document: dict[str, Any] = {
        "data": str(root),
        "data_revision": about["data_revision"],
        "costmodel_revision": about["costmodel_revision"],
        "date": about["date"],
        "environment": {k: about[k] for k in ("systems", "costmodel_version", "software", "command")},
        "errors": "fractions; signed = predicted / measured - 1",
        "kernels": [
            {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}
            for record in summary.to_dict(orient="records")
        ],
        "uncovered": [
            {"family": op, "reason": reason, "n": n}
            for (op, reason), n in sorted(evaluation.uncovered.items())
        ],
    }
    first = [c for c in ROW_COLUMNS if c in rows.columns]
    rows = rows[first + [c for c in rows.columns if c not in first and c != "calibration"]]
    silicon = None
    if (Path(root) / SILICON_FILE).is_file():
        silicon = predict_silicon(Path(root))
        document["silicon"] = silicon_summary(silicon)
        document["silicon_uncovered"] = [
            {"reason": str(reason), "n": int(n)} for reason, n in uncovered_reasons(silicon).items()
        ]
    document["outputs"] = {"rows": "rows.csv"} | write_page_files(out, rows, silicon, about)
    if silicon is not None:
        rows = pd.concat([rows, silicon.assign(family="silicon")], ignore_index=True, sort=False)
    (out / "summary.json").write_text(json.dumps(document, indent=1, default=_plain) + "\n", encoding="utf-8")
    rows.to_csv(out / "rows.csv", index=False, float_format="%.6g")
    return document


def _plain(value: Any) -> Any:
    """numpy scalars as plain numbers in summary.json."""
    return value.item() if isinstance(value, np.generic) else str(value)


def table_text(document: dict[str, Any]) -> str:
    """The summary as a plain-text table for people."""
    lines = [f"{'system':<10} {'family':<22} {'engine':<7} {'dtype':<10} {'kernel':<28} {'split':<11} "
             f"{'n':>7} {'med|err|':>8} {'p90|err|':>8} {'med err':>8}"]  # fmt: skip
    for r in document["kernels"]:
        lines.append(
            f"{r['system']:<10} {r['family']:<22} {r['engine']:<7} {r['dtype']:<10} {r['kernel'][:28]:<28} "
            f"{r['split']:<11} "
            f"{r['n']:>7} {r['median_abs_err']:>8.1%} {r['p90_abs_err']:>8.1%} "
            f"{r['median_signed_err']:>+8.1%}"
        )
    if document["uncovered"]:
        lines.append("\nnot covered:")
        lines.extend(f"  {u['family']:<22} {u['n']:>7}  {u['reason']}" for u in document["uncovered"])
    if document.get("silicon"):
        lines.append(
            f"\nserving (silicon_sample.csv)\n{'system':<10} {'engine':<7} {'mode':<7} {'metric':<5} "
            f"{'split':<11} {'covered':>7} {'total':>6} {'med|err|':>8} {'p90|err|':>8} {'med err':>8}"
        )
        for r in document["silicon"]:
            if not r["n"]:
                continue
            lines.append(
                f"{r['system']:<10} {r['engine']:<7} {r['mode']:<7} {r['metric']:<5} {r['split']:<11} "
                f"{r['covered']:>7} {r['total']:>6} {r['median_abs_err']:>8.1%} {r['p90_abs_err']:>8.1%} "
                f"{r['median_signed_err']:>+8.1%}"
            )
        lines.append("serving rows not covered:")
        lines.extend(f"  {u['n']:>7}  {u['reason']}" for u in document["silicon_uncovered"])
    return "\n".join(lines)


def markdown(document: dict[str, Any]) -> str:
    """Held-out and calibration errors side by side, one line per system, family, engine, dtype and kernel."""
    by_key: dict[tuple[str, str, str, str, str], dict[str, dict[str, Any]]] = {}
    for r in document["kernels"]:
        key = (r["system"], r["family"], r["engine"], r["dtype"], r["kernel"])
        by_key.setdefault(key, {})[r["split"]] = r
    lines = [
        "| system | family | engine | dtype | kernel | held-out rows | median abs err | p90 abs err "
        "| median signed | calibration rows | median abs err |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (system, family, engine, dtype, kernel), splits in sorted(by_key.items()):
        held, cal = splits.get("held-out"), splits.get("calibration")
        h = (
            f"{held['n']} | {held['median_abs_err']:.1%} | {held['p90_abs_err']:.1%} | "
            f"{held['median_signed_err']:+.1%}"
            if held
            else "0 | - | - | -"
        )
        c = f"{cal['n']} | {cal['median_abs_err']:.1%}" if cal else "0 | -"
        lines.append(f"| {system} | {family} | {engine} | {dtype} | {kernel} | {h} | {c} |")
    return "\n".join(lines)
