"""Fit and check the attention and MLA kernel models on NVIDIA aiconfigurator's public tables.

A development script: reads ``../shared/data/public-gpu/kernels`` (or ``--data``) with pandas directly,
fits each (system, dtype key)'s named parameters with ``costmodel.calibrate.fit_params`` on the
calibration rows (``validation.public.split.calibration_mask``, a hash of each row's identity), and prints
median and p90 |error| and the median signed error (predicted / measured - 1) on the calibration and the
held-out rows separately, per (system, op_name, engine, dtype key), then the fitted parameters.

    python -m benchmarks.fit_attention [--data DIR] [--family context_attention ...] [--system h100_sxm ...]
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from costmodel.calibrate import fit_params
from costmodel.registry import load_hardware
from validation.public.split import calibration_mask

SYSTEMS = {"h100_sxm": "h100-sxm", "b200_sxm": "b200", "a100_sxm": "a100-80gb", "l40s": "l40s"}
FAMILIES = ("context_attention", "generation_attention", "mla")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "public-gpu" / "kernels"


def load_rows(data: Path, adapter: ModuleType, system: str) -> pd.DataFrame:
    """Every row of ``system`` whose op_name the adapter handles, with engine and calibration columns."""
    frames = []
    for path in sorted((data / system).glob("*/*/*/*.parquet")):
        table = pd.read_parquet(path)
        table = table[table["op_name"].isin(adapter.OP_NAMES)]
        if table.empty:
            continue
        raw = pd.read_parquet(path).loc[table.index]
        table = table.reset_index(drop=True)
        table["calibration"] = calibration_mask(raw.reset_index(drop=True))
        table["engine"] = path.parts[-3]
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summarize(error: np.ndarray) -> str:
    a = np.abs(error)
    return f"{len(a):6d} {np.median(a):6.1%} {np.quantile(a, 0.9):6.1%} {np.median(error):+7.1%}"


def run(data: Path, family: str, systems: list[str]) -> None:
    adapter = importlib.import_module(f"validation.public.families.{family}")
    kernel = adapter.KERNEL_MODULE
    for system in systems:
        rows = load_rows(data, adapter, system)
        if rows.empty:
            continue
        hardware = load_hardware(SYSTEMS[system])
        keys = adapter.params_key(rows)
        shapes = adapter.shapes(rows)
        measured_s = rows["latency"].to_numpy(np.float64) * 1e-3
        predicted = np.full(len(rows), np.nan)
        fitted = {}
        for key in np.unique(keys):
            sel = keys == key
            cal = sel & rows["calibration"].to_numpy(bool)
            part = {k: (v[sel] if np.ndim(v) == 1 else v) for k, v in shapes.items()}
            part_cal = {k: (v[cal] if np.ndim(v) == 1 else v) for k, v in shapes.items()}
            params = fit_params(kernel, hardware, key, measured_s[cal], part_cal)
            fitted[key] = params
            predicted[sel] = kernel.time_s(hardware, params, **part)
        error = predicted / measured_s - 1.0
        rows["key"] = keys
        print(f"\n{system} {family}: n, median |err|, p90 |err|, median signed (calibration | held-out)")
        for (op, engine, key), group in rows.groupby(["op_name", "engine", "key"]):
            idx = group.index.to_numpy()
            cal = group["calibration"].to_numpy(bool)
            figures = f"{summarize(error[idx[cal]])} | {summarize(error[idx[~cal]])}"
            print(f"  {op:22s} {engine:6s} {key:52s} {figures}")
        cal = rows["calibration"].to_numpy(bool)
        print(f"  {'all (calibration | held-out)':81s} {summarize(error[cal])} | {summarize(error[~cal])}")
        for key, params in fitted.items():
            values = ", ".join(f"{n}={getattr(params, n):.4g}" for n in kernel.BOUNDS)
            print(f"  fitted {key}: {values}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--family", nargs="*", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--system", nargs="*", default=list(SYSTEMS), choices=list(SYSTEMS))
    args = parser.parse_args()
    for family in args.family:
        run(args.data.resolve(), family, args.system)


if __name__ == "__main__":
    main()
