"""Benchmark: NVIDIA aiconfigurator's own predictions on the public serving sample, next to costmodel's.

Run (two steps; aiconfigurator lives in its own virtual environment, never in costmodel's)::

    python3 -m venv /tmp/aic-venv && /tmp/aic-venv/bin/pip install aiconfigurator
    python -m benchmarks.bench_aiconfigurator --aic-python /tmp/aic-venv/bin/python

The first step runs this file under ``--aic-python`` with ``--predict``: every row of
``silicon_sample.csv`` goes to aiconfigurator's ``cli_estimate`` (its Python API, with its own bundled
performance database and model configs, offline), mapped as its own regression tool
``tools/accuracy_regression_testing/predict_silicon_sample.py`` maps a row
(https://github.com/ai-dynamo/aiconfigurator): the row's model id, system, mode, backend and backend
version (falling back to aiconfigurator's default database when that version has none, or, as version
0.12 refuses every raw version string and asks for an alias, always), isl, osl, the
GEMM and MoE formats, and the parallelism and batch fields the row states (``batch_size`` and the five
parallel degrees for ``agg``; the ``prefill_*`` / ``decode_*`` ones, worker counts and batch sizes
required, for ``disagg``). Note that aiconfigurator is given the per-worker ``batch_size``, not the
client concurrency: its ``agg`` mode predicts a steady batch, not the closed loop. A model it does not
bundle it would download ``config.json`` for from the Hugging Face Hub, which this machine cannot reach;
there it reads the sample's own ``model_configs/`` file instead (column ``aic_model_config``), as
costmodel's evaluation does. A row it cannot predict (an exception) is counted with the exception's first
line.

The second step (under costmodel's environment) predicts the same rows with costmodel
(:func:`validation.public.silicon.predict_silicon`, the committed per-engine parameters) and prints per
system x engine x mode: rows covered / present and TTFT / TPOT median |error|, p90 |error| and median
signed error of each tool, on the held-out rows of costmodel's calibration rule (aiconfigurator was not
fitted on any of them, as far as this project knows; its database is its own), on all rows, and on the
rows both tools cover. It writes ``benchmarks/results/aiconfigurator-silicon.json`` (figures, date,
versions, git revision) and ``aiconfigurator-silicon-rows.csv`` (aiconfigurator's per-row predictions,
so the figures can be recomputed without it).

Where aiconfigurator does not install or cannot run, the script says so and exits 1 with what failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "validation" / "data" / "public-gpu"
RESULTS = ROOT / "benchmarks" / "results"
ROWS_FILE = RESULTS / "aiconfigurator-silicon-rows.csv"
SUMMARY_FILE = RESULTS / "aiconfigurator-silicon.json"

PARALLEL = ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")
AGG_FIELDS = ("batch_size", *PARALLEL)
DISAGG_FIELDS = tuple(
    f"{pool}_{field}" for pool in ("prefill", "decode") for field in (*PARALLEL, "batch_size", "num_workers")
)
REQUIRED_DISAGG = ("prefill_batch_size", "prefill_num_workers", "decode_batch_size", "decode_num_workers")


# ----------------------------------------------------------------------------------------------------
# Step 1: runs under aiconfigurator's interpreter (standard library and aiconfigurator only)
# ----------------------------------------------------------------------------------------------------


def _whole(text: str | None) -> int | None:
    """A stated degree or count as an int ("4.0" -> 4); None where the row leaves it empty."""
    if text is None or text.strip() == "":
        return None
    value = float(text)
    return None if math.isnan(value) else int(value)


def _arguments(row: dict[str, str]) -> dict[str, Any]:
    fields = AGG_FIELDS if row["mode"] == "agg" else DISAGG_FIELDS
    stated = {field: _whole(row.get(field)) for field in fields}
    return {
        "model_path": row["model_path"],
        "system_name": row["system"],
        "mode": row["mode"],
        "backend_name": row["backend"],
        "backend_version": row.get("backend_version") or None,
        "isl": int(float(row["isl"])),
        "osl": int(float(row["osl"])),
        "gemm_quant_mode": row.get("gemm_quant_mode") or None,
        "moe_quant_mode": row.get("moe_quant_mode") or None,
        **{field: value for field, value in stated.items() if value is not None},
    }


def _cache_database_scans() -> None:
    """Memoise aiconfigurator's scans of its bundled database folders within this run.

    Each ``cli_estimate`` call re-parses the ~500 ``collection_meta.yaml`` files of its database to find
    the versions it holds (about 5 s of pure-Python YAML per call, 95 % of the call); the files do not
    change during a run, so the scan's result is kept (a deep copy per call). Predictions are unchanged.
    """
    import copy
    import functools

    from aiconfigurator_core.sdk import perf_database  # type: ignore[import-not-found]

    for name in ("get_supported_databases", "_load_collection_meta_yaml"):
        original = getattr(perf_database, name, None)
        if original is None:
            continue
        cached = functools.lru_cache(maxsize=None)(original)

        def wrapper(*args: Any, _cached: Any = cached, _original: Any = original, **kwargs: Any) -> Any:
            try:
                return copy.deepcopy(_cached(*args, **kwargs))
            except TypeError:  # an unhashable argument (a list of paths): no caching
                return _original(*args, **kwargs)

        setattr(perf_database, name, wrapper)


def _local_config(data_dir: Path, model_path: str, aliases: dict[str, str], folder: Path) -> str | None:
    """A folder holding the sample's ``config.json`` for ``model_path`` (under its own id, else under the
    id whose config costmodel's evaluation uses for it, ``CONFIG_ALIASES``), for aiconfigurator to read
    offline where it would download it from the Hugging Face Hub; None where the sample has none."""
    import shutil

    for name in (model_path, aliases.get(model_path)):
        source = data_dir / "model_configs" / f"{str(name).replace('/', '--')}_config.json"
        if name and source.is_file():
            target = folder / str(name).replace("/", "--")
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / "config.json")
            return str(target)
    return None


def predict(data_dir: Path, out: Path, aliases: dict[str, str]) -> None:
    """aiconfigurator's TTFT / TPOT for every row of the sample, or the reason it gave none."""
    import contextlib
    import io
    import tempfile

    from aiconfigurator.cli.api import cli_estimate  # type: ignore[import-not-found]

    _cache_database_scans()

    missing_versions: set[tuple[str, str, str]] = set()
    cache: dict[tuple[tuple[str, Any], ...], tuple[float, float] | str] = {}

    configs = Path(tempfile.mkdtemp(prefix="aic-configs-"))
    offline: dict[str, str | None] = {}

    def estimate(args: dict[str, Any]) -> tuple[float, float]:
        key = (args["system_name"], args["backend_name"], str(args["backend_version"]))
        if key in missing_versions:
            args = {**args, "backend_version": None}
        if args["model_path"] in offline and offline[args["model_path"]]:
            args = {**args, "model_path": offline[args["model_path"]]}
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                result = cli_estimate(**args)
        except Exception as error:
            # a model it does not bundle: it downloads config.json from the Hub, which is unreachable here
            if "config.json from HuggingFace" not in str(error) or args["model_path"] in offline:
                raise
            offline[args["model_path"]] = _local_config(data_dir, args["model_path"], aliases, configs)
            if offline[args["model_path"]] is None:
                raise
            return estimate(args)
        return float(result.ttft), float(result.tpot)

    def estimate_version(args: dict[str, Any]) -> tuple[float, float]:
        key = (args["system_name"], args["backend_name"], str(args["backend_version"]))
        if key in missing_versions:
            args = {**args, "backend_version": None}
        try:
            return estimate(args)
        except ValueError as error:
            # a version its database has no data for ("Failed to load perf database"), or, since 0.12,
            # any raw version string ("looks like an old-style raw version query"): its default database
            if args["backend_version"] is None or not any(
                text in str(error) for text in ("Failed to load perf database", "raw version query")
            ):
                raise
            missing_versions.add(key)
            return estimate({**args, "backend_version": None})

    with (data_dir / "silicon_sample.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "aic_ttft_ms", "aic_tpot_ms", "aic_reason", "aic_model_config"])
        for i, row in enumerate(rows):
            args = _arguments(row)
            key = tuple(sorted(args.items()))
            if key not in cache:
                try:
                    if row["mode"] == "disagg" and any(args.get(name) is None for name in REQUIRED_DISAGG):
                        raise ValueError("disagg row without worker counts and batch sizes")
                    cache[key] = estimate_version(args)
                except Exception as error:  # aiconfigurator's own failure, counted with its reason
                    cache[key] = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            got = cache[key]
            config = "sample config.json" if offline.get(row["model_path"]) else "aiconfigurator's own"
            if isinstance(got, str):  # the temporary folder's name is no part of the reason
                writer.writerow([row["id"], "", "", got.replace(f"{configs}/", ""), config])
            else:
                writer.writerow([row["id"], f"{got[0]:.6f}", f"{got[1]:.6f}", "", config])
            if (i + 1) % 100 == 0:
                f.flush()
                print(
                    f"{i + 1}/{len(rows)} rows, {len(cache)} distinct, {time.perf_counter() - start:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )


def aic_version() -> str:
    from importlib.metadata import version

    return version("aiconfigurator")


# ----------------------------------------------------------------------------------------------------
# Step 2: runs under costmodel's interpreter
# ----------------------------------------------------------------------------------------------------


def _figures(measured: Any, predicted: Any) -> dict[str, float | int | None]:
    import numpy as np

    error = np.asarray(predicted, dtype=float) / np.asarray(measured, dtype=float) - 1.0
    error = error[np.isfinite(error)]
    if not len(error):
        return {"n": 0, "median_abs_err": None, "p90_abs_err": None, "median_signed_err": None}
    return {
        "n": len(error),
        "median_abs_err": float(np.median(np.abs(error))),
        "p90_abs_err": float(np.percentile(np.abs(error), 90)),
        "median_signed_err": float(np.median(error)),
    }


def compare(data_dir: Path, aic_python: str, *, reuse: bool = False) -> int:
    import datetime as dt

    import pandas as pd

    from costmodel.calibrate import git_revision
    from validation.public.reader import read_revision
    from validation.public.silicon import CONFIG_ALIASES, predict_silicon

    probe = subprocess.run(
        [aic_python, "-c", "import aiconfigurator.cli.api as a; from importlib.metadata import version; "
         "print(version('aiconfigurator'))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        print(
            f"aiconfigurator cannot be imported by {aic_python}: "
            f"{(probe.stderr.strip().splitlines() or ['no output'])[-1]}\n"
            "Install it in its own environment: python3 -m venv /tmp/aic-venv && "
            "/tmp/aic-venv/bin/pip install aiconfigurator",
            file=sys.stderr,
        )
        return 1
    version = probe.stdout.strip()
    print(f"aiconfigurator {version}: predicting {data_dir / 'silicon_sample.csv'} (its own database)")
    started = time.perf_counter()
    if not (reuse and ROWS_FILE.is_file()):
        run = subprocess.run(
            [aic_python, __file__, "--predict", "--data", str(data_dir), "--out", str(ROWS_FILE),
             "--aliases", json.dumps(CONFIG_ALIASES)],
            check=False,
        )  # fmt: skip
        if run.returncode != 0:
            print(
                f"aiconfigurator's run failed (exit {run.returncode}); see its messages above",
                file=sys.stderr,
            )
            return 1
    aic_seconds = None if reuse and ROWS_FILE.is_file() else round(time.perf_counter() - started, 1)

    ours = predict_silicon(data_dir)
    theirs = pd.read_csv(ROWS_FILE)
    rows = ours.merge(theirs, on="id", how="left", validate="one_to_one")
    rows["aic_covered"] = rows["aic_ttft_ms"].notna() & rows["aic_tpot_ms"].notna()

    entries: list[dict[str, Any]] = []
    groups = list(rows.groupby(["system", "backend", "mode"], sort=True))
    groups += [(("all", "all", mode), group) for mode, group in rows.groupby("mode", sort=True)]
    for (system, engine, mode), group in groups:
        for subset in ("held-out", "all", "both covered, held-out"):
            chosen = group if subset == "all" else group[group["split"] == "held-out"]
            if subset.startswith("both"):
                chosen = chosen[chosen["covered"] & chosen["aic_covered"]]
            for tool, covered_col, prefix in (("aiconfigurator", "aic_covered", "aic_"),
                                              ("costmodel", "covered", "predicted_")):  # fmt: skip
                c = chosen[chosen[covered_col]]
                entry: dict[str, Any] = {"system": system, "engine": engine, "mode": mode, "rows": subset,
                                         "tool": tool, "covered": len(c), "total": len(chosen)}  # fmt: skip
                for metric in ("ttft", "tpot"):
                    figures = _figures(c[f"{metric}_ms"], c[f"{prefix}{metric}_ms"])
                    entry.update({f"{metric}_{k}": v for k, v in figures.items()})
                entries.append(entry)
    reasons = rows.loc[~rows["aic_covered"], "aic_reason"].fillna("no prediction").value_counts()
    document = {
        "date": dt.date.today().isoformat(),
        "aiconfigurator_version": version,
        "aiconfigurator_seconds": aic_seconds,
        "data": f"silicon_sample.csv of {data_dir.name}",
        "data_revision": read_revision(data_dir),
        "costmodel_revision": git_revision(),
        "costmodel_parameters": "committed hardware_profiles/calibrated/serving-engines.yaml",
        "split": "costmodel's calibration rule (validation/public/split.py); aiconfigurator fits none",
        "figures": entries,
        "aiconfigurator_uncovered": {str(k): int(v) for k, v in reasons.items()},
    }
    SUMMARY_FILE.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    _print(entries, reasons)
    print(f"\nwrote {SUMMARY_FILE.relative_to(ROOT)} and {ROWS_FILE.relative_to(ROOT)}")
    return 0


def _print(entries: list[dict[str, Any]], reasons: Any) -> None:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.0f}"

    print(f"\n{'system':<9}{'engine':<7}{'mode':<7}{'rows':<23}{'tool':<15}{'covered':>11}  "
          f"{'TTFT med/p90 (signed) %':<24}TPOT med/p90 (signed) %")  # fmt: skip
    for e in entries:
        cells = [
            f"{pct(e[f'{m}_median_abs_err'])}/{pct(e[f'{m}_p90_abs_err'])} "
            f"({pct(e[f'{m}_median_signed_err'])})"
            for m in ("ttft", "tpot")
        ]
        print(f"{e['system']:<9}{e['engine']:<7}{e['mode']:<7}{e['rows']:<23}{e['tool']:<15}"
              f"{e['covered']:>5}/{e['total']:<5}  {cells[0]:<24}{cells[1]}")  # fmt: skip
    print("\naiconfigurator's uncovered rows by reason:")
    for reason, count in reasons.items():
        print(f"  {count:5d}  {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding silicon_sample.csv")
    parser.add_argument("--aic-python", default="/tmp/aic-venv/bin/python",
                        help="python of the environment aiconfigurator is installed in")  # fmt: skip
    parser.add_argument("--reuse", action="store_true",
                        help=f"reuse {ROWS_FILE.name} instead of running aiconfigurator again")  # fmt: skip
    parser.add_argument("--predict", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROWS_FILE, help=argparse.SUPPRESS)
    parser.add_argument("--aliases", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.predict:
        predict(args.data, args.out, json.loads(args.aliases))
        return 0
    if not Path(args.aic_python).exists():
        print(f"no interpreter at {args.aic_python}: install aiconfigurator in its own environment "
              "(python3 -m venv /tmp/aic-venv && /tmp/aic-venv/bin/pip install aiconfigurator) "
              "and pass --aic-python", file=sys.stderr)  # fmt: skip
        return 1
    return compare(args.data, args.aic_python, reuse=args.reuse)


if __name__ == "__main__":
    raise SystemExit(main())
