"""The transfer rule judged on measured devices: each device's tables predicted as if it had none.

``costmodel.calibrate.TRANSFER_RULE`` gives a device without measurements the fitted parameters of the
nearest measured device of the same architecture, with its own datasheet. Every device of the public
tables has measurements, so the rule is checked leave-one-device-out: each measured device takes the
parameters of the device :data:`LEAVE_ONE_OUT` names (through :func:`costmodel.calibrate.transferable`,
as ``costmodel calibrate`` transfers them), never its own, and every one of its rows is predicted
(split ``"transfer"``; none of them was fitted on). The partner is the same rule with the device itself
left out: the other measured device of the same kernel generation (Ampere / Ada: warp-level ``mma.sync``
tensor cores, CUTLASS 2.x, FlashAttention-2; Hopper / Blackwell: TMA, warp-specialised persistent
kernels, FlashAttention-3 / FlashInfer), which is also the nearest product class among those measured.

Keys are looked up as always (:func:`costmodel.kernels.params_for`, :func:`costmodel.kernels.fallback_keys`):
the exact key, else the same kernel under the name another version of its engine gives it (vLLM 0.14's
``vllm_flash_attn`` is 0.24's ``vllm_flash_attn_fa2`` on an sm80 / sm89 device;
:data:`costmodel.kernels.SAME_KERNEL`), else (GEMM) the engine's pooled parameters for the format, else the
format's pooled parameters, else the same engine's nearest other kernel of the same format and operation
(FlashAttention-2's parameters for FlashAttention-3 on an A100), else the datasheet defaults: that is what
the rule gives for a kernel the source device never ran.

    python -m validation transfer --data validation/data/public-gpu --out OUT    # OUT/transfer.json
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from costmodel.calibrate import git_revision, transferable
from costmodel.errors import CostmodelError
from costmodel.registry import load_hardware
from costmodel.specs import HardwareProfile
from validation.public.evaluate import Evaluation, predict_table
from validation.public.reader import iter_tables, read_revision

LEAVE_ONE_OUT: dict[str, str] = {
    "h100-sxm": "b200",  # Hopper <- Blackwell: TMA and warp-specialised kernels, SXM with HBM
    "b200": "h100-sxm",
    "a100-80gb": "l40s",  # Ampere <- Ada: mma.sync tensor cores, CUTLASS 2.x, FlashAttention-2
    "l40s": "a100-80gb",
}
"""Measured device -> the measured device whose parameters it takes when its own are left out."""

SPLIT = "transfer"


@cache
def transferred_hardware(name: str) -> HardwareProfile:
    """``name``'s own profile (datasheet) with the fitted parameters of ``LEAVE_ONE_OUT[name]``, as
    ``costmodel calibrate`` would write them for a device without measurements."""
    if name not in LEAVE_ONE_OUT:
        raise CostmodelError(f"no leave-one-out partner for hardware {name!r}: add it to LEAVE_ONE_OUT")
    target, source = load_hardware(name), load_hardware(LEAVE_ONE_OUT[name])
    calibration = source.kernel_calibration
    if calibration is None:
        raise CostmodelError(f"hardware {source.name!r} has no calibration to transfer to {name!r}")
    moved = calibration.model_copy(
        update={
            "params": transferable(calibration.params, source, target),
            "record": calibration.record.model_copy(update={"transferred_from": source.name}),
        }
    )
    return target.model_copy(update={"kernel_calibration": moved})


def evaluate_transfer(root: str | Path) -> pd.DataFrame:
    """Every row of every measured device in ``LEAVE_ONE_OUT``, predicted with its partner's parameters."""
    evaluation = Evaluation()
    for table in iter_tables(root):
        if table.hardware in LEAVE_ONE_OUT:
            predict_table(table.frame, evaluation, transferred_hardware)
    return evaluation.frame()


def partner_key(key: str, fitted: Any, hardware: HardwareProfile) -> str | None:
    """The key of ``fitted`` (the partner's keys of a family) that holds ``key``'s own kernel: ``key`` itself,
    else the same kernel under the name another version of its engine gives it on ``hardware``'s compute
    capability (:func:`costmodel.kernels.same_kernel_keys`; vLLM 0.14's ``vllm_flash_attn`` on the A100 is
    vLLM 0.24's ``vllm_flash_attn_fa2`` on the L40S); ``None`` where the partner never ran that kernel."""
    from costmodel.kernels import compute_capability, same_kernel_keys

    if key in fitted:
        return key
    return next((k for k in same_kernel_keys(key, compute_capability(hardware)) if k in fitted), None)


def exact_keys(rows: pd.DataFrame) -> np.ndarray:
    """Per row, whether the partner fitted the row's own kernel and format (``True``: its key, or the same
    kernel under another engine version's name, :func:`partner_key`) or the rule looked it up through
    :func:`costmodel.kernels.fallback_keys` or the datasheet defaults (``False``): a kernel, format or
    variant the partner never ran. The rule's own use (H200 from H100: the same software on the same die)
    looks up exact keys only."""
    from costmodel.kernels import family_name
    from validation.public.families import adapter_for

    exact = np.zeros(len(rows), dtype=bool)
    positions = pd.RangeIndex(len(rows))
    for (hardware, op_name), where in pd.Series(positions).groupby(
        [rows["hardware"].to_numpy(), rows["family"].to_numpy()], sort=True
    ):
        adapter = adapter_for(str(op_name))
        calibration = transferred_hardware(str(hardware)).kernel_calibration
        if adapter is None or calibration is None:
            continue
        fitted = calibration.params.get(family_name(adapter.KERNEL_MODULE), {})
        target = transferred_hardware(str(hardware))
        keys = rows["key"].iloc[where.to_numpy()]
        found = {k: partner_key(str(k), fitted, target) is not None for k in keys.unique()}
        exact[where.to_numpy()] = keys.map(found).to_numpy(bool)
    return exact


def summarize_transfer(rows: pd.DataFrame) -> pd.DataFrame:
    """Per system and family (all rows, and the rows whose key the partner fitted or not: ``lookup``
    ``"exact"`` / ``"fallback"``, :func:`exact_keys`), and per system, family, engine and dtype: n, median
    and p90 |error|, median signed error (fractions, signed = predicted / measured - 1), and the source."""
    signed = rows["predicted_s"] / rows["latency_s"] - 1.0
    work = rows[["system", "hardware", "family", "engine", "dtype"]].assign(
        signed=signed, abs=signed.abs(), lookup=np.where(exact_keys(rows), "exact", "fallback")
    )
    parts = []
    for keys in (
        ["system", "hardware", "family"],
        ["system", "hardware", "family", "lookup"],
        ["system", "hardware", "family", "engine", "dtype"],
    ):
        part = (
            work.groupby(keys, sort=True)
            .agg(
                n=("abs", "size"),
                median_abs_err=("abs", "median"),
                p90_abs_err=("abs", lambda s: float(np.quantile(s, 0.9))),
                median_signed_err=("signed", "median"),
            )
            .reset_index()
        )
        defaults = {name: part.get(name, "all") for name in ("engine", "dtype", "lookup")}
        parts.append(part.assign(**defaults))
    out = pd.concat(parts, ignore_index=True)
    out["split"] = SPLIT
    out["source"] = out["hardware"].map(LEAVE_ONE_OUT)
    columns = ["system", "family", "engine", "dtype", "lookup", "split", "source", "n"]
    return out[[*columns, "median_abs_err", "p90_abs_err", "median_signed_err"]]


def write_transfer(root: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Predict, summarise and write ``OUT/transfer.json`` (``"transfer"``: the summary's records)."""
    summary = summarize_transfer(evaluate_transfer(root))
    document = {
        "data": str(root),
        "data_revision": read_revision(root),
        "costmodel_revision": git_revision(),
        "date": dt.date.today().isoformat(),
        "rule": "leave-one-device-out: each device predicted with LEAVE_ONE_OUT[device]'s fitted parameters "
        "(costmodel.calibrate.transferable) and its own datasheet; every row of the device",
        "leave_one_out": LEAVE_ONE_OUT,
        "errors": "fractions; signed = predicted / measured - 1",
        "transfer": [
            {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}
            for record in summary.to_dict(orient="records")
        ],
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "transfer.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return document


def table_text(document: dict[str, Any]) -> str:
    """Per system and family: source, rows, median / p90 |error| (%), median signed (%), and the rows whose
    key the partner fitted (``exact``: rows, median |error|)."""
    records = document["transfer"]
    exact = {
        (r["system"], r["family"]): r for r in records if r["engine"] == "all" and r.get("lookup") == "exact"
    }
    head = f"{'system':10} {'family':28} {'from':10} {'rows':>8} {'median':>7} {'p90':>7} {'signed':>7}"
    lines = [f"{head}  {'exact':>8} {'median':>7}"]
    for r in records:
        if r["engine"] == "all" and r.get("lookup", "all") == "all":
            same = exact.get((r["system"], r["family"]))
            tail = "" if same is None else f"  {same['n']:8d} {100 * same['median_abs_err']:6.1f}%"
            lines.append(
                f"{r['system']:10} {r['family']:28} {r['source']:10} {r['n']:8d} "
                f"{100 * r['median_abs_err']:6.1f}% {100 * r['p90_abs_err']:6.1f}% "
                f"{100 * r['median_signed_err']:+6.1f}%{tail}"
            )
    return "\n".join(lines)


FIXED_TIMES, DIMENSIONLESS = "all fixed times", "all dimensionless"
"""Attribution variants that swap a whole class of a family's fitted parameters at once: those in seconds
(names ending ``_s`` but not ``_per_s``: launch, latency, per-row and per-CTA costs) or all the others
(fractions, ratios, rates, tile and pipeline constants)."""

ATTRIBUTION_ROWS = 4000
"""Rows per table the attribution predicts: every ``ceil(n / ATTRIBUTION_ROWS)``-th row in the table's own
order (a rule that never looks at the error)."""


def attribute_parameters(root: str | Path, max_rows: int = ATTRIBUTION_ROWS) -> pd.DataFrame:
    """Which fitted parameters do not carry over: a diagnostic, not a prediction (it uses the device's fit).

    On the keys both the device and its partner fitted (so the lookup is exact; the partner's key may name
    the same kernel under another engine version's name, :func:`partner_key`), each device's rows are
    predicted with the partner's parameters (:func:`transferred_hardware`), with its own, and with the
    partner's set in which one parameter of the family's ``BOUNDS`` at a time is replaced by the device's own
    value, and then with all its fixed times (:data:`FIXED_TIMES`) or all its dimensionless parameters
    (:data:`DIMENSIONLESS`) replaced at once. One row per (device, family, variant): ``variant`` is
    ``"partner"``, ``"own"``, one of those two groups or the swapped parameter's name; ``n``,
    ``median_abs_err``, and ``recovered`` (the partner's median |error| minus this variant's: how much of
    the transfer's miss that one parameter carries)."""
    import dataclasses

    from costmodel.kernels import family_name
    from validation.public.families import adapter_for

    errors: dict[tuple[str, str, str], list[np.ndarray]] = {}
    for table in iter_tables(root):
        if table.hardware not in LEAVE_ONE_OUT:
            continue
        own_hw, moved_hw = load_hardware(table.hardware), transferred_hardware(table.hardware)
        assert own_hw.kernel_calibration is not None
        assert moved_hw.kernel_calibration is not None
        frame = table.frame.iloc[:: max(1, -(-len(table.frame) // max_rows))]
        for op_name, rows in frame.groupby("op_name", sort=True):
            adapter = adapter_for(str(op_name))
            if adapter is None:
                continue
            module = adapter.KERNEL_MODULE
            family = family_name(module)
            own_table = own_hw.kernel_calibration.params.get(family, {})
            moved_table = moved_hw.kernel_calibration.params.get(family, {})
            keys = np.asarray(adapter.params_key(rows), dtype=str)
            shapes = adapter.shapes(rows)
            measured = rows["latency_s"].to_numpy(np.float64)
            for key in np.unique(keys):
                theirs = partner_key(str(key), moved_table, own_hw)
                if key not in own_table or theirs is None:
                    continue
                mask = keys == key
                start = module.default_params(own_hw, str(key))
                names = {f.name for f in dataclasses.fields(start)}
                partner = dataclasses.replace(start, **_known(moved_table[theirs], names))
                own = dataclasses.replace(start, **_known(own_table[key], names))
                variants = {"partner": partner, "own": own}
                fitted = [p for p in module.BOUNDS if p in names]
                variants.update({p: dataclasses.replace(partner, **{p: getattr(own, p)}) for p in fitted})
                for group, members in (
                    (FIXED_TIMES, [p for p in fitted if _is_time(p)]),
                    (DIMENSIONLESS, [p for p in fitted if not _is_time(p)]),
                ):
                    variants[group] = dataclasses.replace(partner, **{p: getattr(own, p) for p in members})
                for variant, params in variants.items():
                    try:
                        predicted = module.time_s(own_hw, params, **{n: v[mask] for n, v in shapes.items()})
                    except CostmodelError:
                        continue
                    signed = np.asarray(predicted, dtype=np.float64) / measured[mask] - 1.0
                    errors.setdefault((table.hardware, family, variant), []).append(np.abs(signed))
    records = [
        {"hardware": hw, "source": LEAVE_ONE_OUT[hw], "family": family, "variant": variant,
         "n": int(sum(len(a) for a in parts)), "median_abs_err": float(np.median(np.concatenate(parts)))}
        for (hw, family, variant), parts in sorted(errors.items())
    ]  # fmt: skip
    out = pd.DataFrame(records)
    if out.empty:
        return out
    partner_err = out[out["variant"] == "partner"].set_index(["hardware", "family"])["median_abs_err"]
    out["recovered"] = [
        partner_err.get((hw, fam), np.nan) - err
        for hw, fam, err in zip(out["hardware"], out["family"], out["median_abs_err"], strict=True)
    ]
    return out


def _is_time(name: str) -> bool:
    """A parameter in seconds (``launch_s``, ``cta_overhead_s``), not a rate (``softmax_pairs_per_s``)."""
    return name.endswith("_s") and not name.endswith("_per_s")


def _known(values: dict[str, float], names: set[str]) -> dict[str, float]:
    return {k: v for k, v in values.items() if k in names}


def attribution_text(frame: pd.DataFrame, top: int = 3) -> str:
    """Per device and family: rows, |error| with the partner's and the own parameters (%), and the ``top``
    parameters whose own value recovers the most (percentage points)."""
    head = f"{'device':10} {'from':10} {'family':22} {'rows':>6} {'partner':>8} {'own':>6} {'times':>6}"
    lines = [f"{head} {'dimless':>7}  parameters (points recovered)"]
    groups = ["partner", "own", FIXED_TIMES, DIMENSIONLESS]
    for (hw, family), part in frame.groupby(["hardware", "family"], sort=True):
        err = {k: 100 * v for k, v in part.set_index("variant")["median_abs_err"].items()}
        swaps = part[~part["variant"].isin(groups)].nlargest(top, "recovered")
        names = ", ".join(
            f"{v} {100 * r:.0f}" for v, r in zip(swaps["variant"], swaps["recovered"], strict=True)
        )
        n = int(part.loc[part["variant"] == "partner", "n"].iloc[0])
        lines.append(
            f"{hw:10} {LEAVE_ONE_OUT[hw]:10} {family:22} {n:6d} {err['partner']:7.1f}% {err['own']:5.1f}% "
            f"{err.get(FIXED_TIMES, np.nan):5.1f}% {err.get(DIMENSIONLESS, np.nan):6.1f}%  {names}"
        )
    return "\n".join(lines)
