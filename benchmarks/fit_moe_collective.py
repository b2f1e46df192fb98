"""Dev script: fit the MoE and collective kernel models on the public tables and print their errors.

Loads NVIDIA aiconfigurator's tables (``../shared/data/public-gpu/kernels`` by default, or the folder given
as the first argument) with pandas, fits each (system, parameter key) on the calibration split
(``validation.public.split.calibration_mask``, a hash rule that never sees the measurement) with
``costmodel.calibrate.fit_params``, and prints median / p90 |error| and the median signed error
(predicted / measured - 1) per (system, op_name, engine, dtype), calibration and held-out separately,
then the fitted parameters. Also prints the datasheet-default errors for comparison.

    python -m benchmarks.fit_moe_collective [DATA_DIR] [--family moe|comm] [--system h100_sxm]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from costmodel.calibrate import fit_params, robust_cost
from costmodel.registry import load_hardware
from validation.public.families import collective as collective_adapter
from validation.public.families import moe as moe_adapter
from validation.public.split import calibration_mask

SYSTEMS = {"h100_sxm": "h100-sxm", "b200_sxm": "b200", "a100_sxm": "a100-80gb", "l40s": "l40s"}
ADAPTERS: dict[str, ModuleType] = {"moe": moe_adapter, "comm": collective_adapter}
MAX_FIT_ROWS = 6000


def load(root: Path, family: str, systems: list[str]) -> pd.DataFrame:
    frames = []
    for system in systems:
        for path in sorted((root / system / family).glob("*/*/*.parquet")):
            table = pd.read_parquet(path)
            table = table.assign(
                calibration=calibration_mask(table),
                system=system,
                engine=path.parts[-3],
                table_version=path.parts[-2],
                engine_version=path.parts[-2],
            )
            frames.append(table)
    return pd.concat(frames, ignore_index=True)


def dtype_column(table: pd.DataFrame) -> pd.Series:
    columns = [c for c in ("moe_dtype", "nccl_dtype", "allreduce_dtype") if c in table]
    dtype = table[columns[0]]
    for column in columns[1:]:
        dtype = dtype.fillna(table[column])
    return dtype.astype(str)


def stats(err: np.ndarray) -> tuple[float, float, float]:
    return float(np.median(np.abs(err))), float(np.quantile(np.abs(err), 0.9)), float(np.median(err))


def starts(module: ModuleType, start: object) -> list[object]:
    """The default start and three variants (latencies x 3, fractions / 2, both), clipped to the bounds.

    A fit of a few parameters on 10-30 rows can settle in a local minimum (one of two algorithms switched
    off); the script keeps the start whose fit has the lowest calibration loss.
    """
    out = [start]
    for time_factor, fraction_factor in ((3.0, 1.0), (1.0, 0.5), (3.0, 0.5)):
        changes = {}
        for name, (low, high) in module.BOUNDS.items():
            value = float(getattr(start, name))
            factor = time_factor if name.endswith("_s") else fraction_factor if "fraction" in name else 1.0
            changes[name] = min(max(value * factor, low), high)
        out.append(dataclasses.replace(start, **changes))  # type: ignore[type-var]
    return out


def best_fit(module, hardware, key, start, rows, adapter, inert):  # type: ignore[no-untyped-def]
    """``fit_params`` from each of ``starts``; the fit with the lowest robust calibration loss (the family's
    ``FIT_LOSS``, soft-L1 where it names none)."""
    measured = rows["latency"].to_numpy() * 1e-3
    shapes = adapter.shapes(rows)
    best, best_loss = None, np.inf
    for initial in starts(module, start):
        params = fit_params(module, hardware, key, measured, shapes, initial=initial, fixed=inert)
        residual = np.log(module.time_s(hardware, params, **shapes) / measured)
        loss = robust_cost(residual, getattr(module, "FIT_LOSS", "soft_l1"))
        if loss < best_loss:
            best, best_loss = params, loss
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default="../shared/data/public-gpu/kernels")
    parser.add_argument("--family", choices=list(ADAPTERS), action="append")
    parser.add_argument("--system", choices=list(SYSTEMS), action="append")
    parser.add_argument("--by-key", action="store_true", help="also print errors per parameter key")
    parser.add_argument("--rows", help="write every row with its prediction to this parquet file")
    args = parser.parse_args()
    root = Path(args.data)
    systems = args.system or list(SYSTEMS)
    for family in args.family or list(ADAPTERS):
        adapter = ADAPTERS[family]
        module = adapter.KERNEL_MODULE
        started = time.perf_counter()
        table = load(root, family, systems)
        table = table[table["op_name"].isin(adapter.OP_NAMES)].reset_index(drop=True)
        table["key"] = adapter.params_key(table)
        table["dtype"] = dtype_column(table)
        measured = table["latency"].to_numpy() * 1e-3
        predicted = np.full(len(table), np.nan)
        default = np.full(len(table), np.nan)
        fitted: dict[tuple[str, str], object] = {}
        for (system, key), rows in table.groupby(["system", "key"], sort=True):
            hardware = load_hardware(SYSTEMS[str(system)])
            index = rows.index.to_numpy()
            shapes = adapter.shapes(rows)
            start = module.default_params(hardware, str(key))
            default[index] = module.time_s(hardware, start, **shapes)
            cal = rows["calibration"].to_numpy()
            cal_index = np.flatnonzero(cal)
            if len(cal_index) > MAX_FIT_ROWS:  # a fixed-seed subsample of the calibration rows, for speed
                cal_index = np.sort(np.random.default_rng(0).choice(cal_index, MAX_FIT_ROWS, replace=False))
            cal_rows = rows.iloc[cal_index]
            # a parameter with no effect on this key's rows stays at its default
            inert: tuple[str, ...] = () if getattr(start, "weight_only", True) else ("dequant_s_per_element",)
            if getattr(start, "cache_bytes", 1.0) == 0.0:  # no cache in the profile (B200)
                inert += ("cache_fraction", "cache_speedup", "cache_sharpness")
            if getattr(start, "compute_units", 1.0) == 0.0:  # no SM count: no streaming limit
                inert += ("stream_tile_n",)
            if family == "comm":  # 10-30 calibration rows per key: keep the best of several starts
                params = best_fit(module, hardware, str(key), start, cal_rows, adapter, inert)
            else:
                measured_cal = cal_rows["latency"].to_numpy() * 1e-3
                shapes_cal = adapter.shapes(cal_rows)
                params = fit_params(module, hardware, str(key), measured_cal, shapes_cal, fixed=inert)
            fitted[(str(system), str(key))] = params
            predicted[index] = module.time_s(hardware, params, **shapes)
        table["err"] = predicted / measured - 1
        table["default_err"] = default / measured - 1
        if args.rows:
            table.assign(predicted_ms=predicted * 1e3).to_parquet(f"{args.rows}.{family}.parquet")
        print(f"\n== {family}: {len(table)} rows, fitted in {time.perf_counter() - started:.0f} s ==")
        groups = ["system", "op_name", "engine", "dtype"]
        lines = []
        for name, rows in table.groupby(groups, sort=True):
            line = dict(zip(groups, name, strict=True))
            for split, mask in (("cal", rows["calibration"]), ("held", ~rows["calibration"])):
                part = rows[mask.to_numpy()]
                if len(part):
                    med, p90, signed = stats(part["err"].to_numpy())
                    line |= {
                        f"{split}_n": len(part),
                        f"{split}_med": med,
                        f"{split}_p90": p90,
                        f"{split}_signed": signed,
                    }
            line["default_med"] = stats(rows["default_err"].to_numpy())[0]
            lines.append(line)
        pd.set_option("display.width", 250)
        pd.set_option("display.max_rows", 500)
        print(pd.DataFrame(lines).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        held = table[~table["calibration"]]
        summary = held.groupby("system")["err"].agg(
            med=lambda e: np.median(np.abs(e)), p90=lambda e: np.quantile(np.abs(e), 0.9)
        )
        print("held-out per system:\n" + summary.to_string(float_format=lambda v: f"{v:.3f}"))
        if args.by_key:
            by_key = held.groupby(["system", "key"])["err"].agg(
                n="size",
                med=lambda e: np.median(np.abs(e)),
                p90=lambda e: np.quantile(np.abs(e), 0.9),
                signed="median",
            )
            print(by_key.to_string(float_format=lambda v: f"{v:.3f}"))
        print("fitted parameters:")
        for (system, key), params in fitted.items():
            values = {f: getattr(params, f) for f in module.BOUNDS}
            text = ", ".join(f"{f}={v:.3g}" for f, v in values.items())
            print(f"  {system} {key}: {text}")


if __name__ == "__main__":
    sys.exit(main())
