"""Summarise results files: median and p90 absolute relative error per family and regime, calibration
inputs apart from held-out points, and the held-out composites (several kernels: MLP, MoE, layers, whole
models, decode loops) on their own; a markdown table and (if plotly is installed) a figure.

:func:`repredict` asks the current costmodel again for every measured point (same shapes, a given
hardware profile), so a change to the model is judged on the same measurements: before / after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from costmodel.specs import HardwareProfile
from validation.run import read_records
from validation.suite import Point, predict

COMPOSITES = ("mlp", "moe", "layer", "model_prefill", "model_decode", "decode_loop")


def load(paths: list[Path]) -> pd.DataFrame:
    """Measured points of several results files, each with its file's device name."""
    rows = []
    for path in paths:
        records = read_records(path)
        env = next((r for r in records if r.get("record") == "environment"), {})
        for r in records:
            if r.get("record") == "point":
                rows.append(r | {"file": path.name, "device_name": env.get("device_name", r.get("device"))})
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (held_out, family, regime): points, median and p90 |rel_error|, FLOP matches."""
    ok = frame[frame.get("status", "ok") == "ok"].copy()
    ok["abs_error"] = ok["rel_error"].abs()
    groups = ok.groupby(["held_out", "family", "regime"], dropna=False)
    out = groups.agg(
        points=("abs_error", "size"),
        median_abs_rel_error=("abs_error", "median"),
        p90_abs_rel_error=("abs_error", lambda x: float(np.quantile(x, 0.9))),
        median_signed_error=("rel_error", "median"),
    ).reset_index()
    if "flop_match" in ok:
        flops = ok.dropna(subset=["flop_match"]).groupby(["held_out", "family", "regime"])["flop_match"]
        out = out.merge(flops.agg(flop_checked="size", flop_exact="sum").reset_index(), how="left")
    return out.sort_values(["held_out", "family", "regime"])


def markdown(frame: pd.DataFrame) -> str:
    """The summary as a markdown table, with an overall held-out row."""
    table = summary(frame)
    lines = [
        "| set | family | regime | points | median abs err | p90 abs err | median signed | FLOPs exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        checked = float(getattr(r, "flop_checked", float("nan")))
        flops = f"{int(r.flop_exact)}/{int(checked)}" if np.isfinite(checked) and checked > 0 else "-"
        kind = "held-out" if r.held_out else "calibration"
        errors = f"{r.median_abs_rel_error:.1%} | {r.p90_abs_rel_error:.1%} | {r.median_signed_error:+.1%}"
        lines.append(f"| {kind} | {r.family} | {r.regime} | {r.points} | {errors} | {flops} |")
    held = frame[(frame.get("status", "ok") == "ok") & frame["held_out"]]
    for label, rows in (
        ("**held-out, all**", held),
        ("**held-out composites**", held[held["family"].isin(COMPOSITES)]),
    ):
        if len(rows):
            err = rows["rel_error"].abs()
            lines.append(
                f"| {label} | | | {len(rows)} | {err.median():.1%} | {np.quantile(err, 0.9):.1%} | "
                f"{rows['rel_error'].median():+.1%} | |"
            )
    if "memory_rel_error" in frame:
        mem = frame["memory_rel_error"].dropna().abs()
        if len(mem):
            lines.append(
                f"\nPeak memory: {len(mem)} points, median abs error {mem.median():.1%}, max {mem.max():.1%}."
            )
    skipped = frame[frame.get("status", "ok") != "ok"]
    if len(skipped):
        lines.append(f"\nNot measured: {len(skipped)} points ({', '.join(sorted(set(skipped['status'])))}).")
    return "\n".join(lines)


def repredict(frame: pd.DataFrame, hardware: HardwareProfile) -> pd.DataFrame:
    """The measured points with ``predicted_s`` and ``rel_error`` from the current costmodel on
    ``hardware``; the recorded ones are kept as ``recorded_predicted_s`` and ``recorded_rel_error``."""
    ok = frame[frame.get("status", "ok") == "ok"].copy()
    ok["recorded_predicted_s"], ok["recorded_rel_error"] = ok["predicted_s"], ok["rel_error"]
    ok["predicted_s"] = [
        predict(Point(r.kernel, r.family, r.shape, not r.held_out), hardware).time_s for r in ok.itertuples()
    ]
    ok["rel_error"] = (ok["predicted_s"] - ok["measured_s"]) / ok["measured_s"]
    return ok


def before_after(frame: pd.DataFrame) -> str:
    """Median and p90 |error| per held-out family, as recorded and as the current model predicts (a frame
    from :func:`repredict`), and over the composites."""
    held = frame[frame["held_out"]]
    groups = [(str(f), g) for f, g in held.groupby("family")]
    groups.append(("**composites**", held[held["family"].isin(COMPOSITES)]))
    lines = [
        "| family | points | median before | median after | p90 before | p90 after |",
        "|---|---|---|---|---|---|",
    ]
    for family, g in groups:
        if not len(g):
            continue
        b, a = g["recorded_rel_error"].abs(), g["rel_error"].abs()
        lines.append(
            f"| {family} | {len(g)} | {b.median():.1%} | {a.median():.1%} | {np.quantile(b, 0.9):.1%} | "
            f"{np.quantile(a, 0.9):.1%} |"
        )
    return "\n".join(lines)


def figure(frame: pd.DataFrame, out: Path) -> Path | None:
    """Predicted vs measured (log-log) and the error histogram as one HTML file (needs plotly)."""
    try:
        import plotly.express as px
        from plotly.subplots import make_subplots
    except ImportError:
        return None
    ok = frame[frame.get("status", "ok") == "ok"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("predicted vs measured [s]", "relative error"))
    scatter = px.scatter(
        ok,
        x="measured_s",
        y="predicted_s",
        color="family",
        symbol="held_out",
        log_x=True,
        log_y=True,
        hover_data=["kernel", "regime", "rel_error"],
    )
    for trace in scatter.data:
        fig.add_trace(trace, row=1, col=1)
    lo, hi = (
        float(ok[["measured_s", "predicted_s"]].min().min()),
        float(ok[["measured_s", "predicted_s"]].max().max()),
    )
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", row=1, col=1)
    for family, group in ok.groupby("family"):
        fig.add_histogram(x=group["rel_error"], name=str(family), row=1, col=2, opacity=0.6)
    fig.update_xaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.write_html(out, include_plotlyjs="cdn")
    return out


def report(
    paths: list[Path], out_md: Path | None = None, *, hardware: HardwareProfile | None = None
) -> dict[str, Any]:
    """Print-ready markdown, written next to the first results file unless ``out_md`` is given. With
    ``hardware``, the predictions are asked again of the current model (:func:`repredict`) and a
    before / after table follows the summary; the markdown then goes to ``<results>.<profile>.md``."""
    frame = load(paths)
    if frame.empty:  # e.g. a serving-replay file: its records are metrics and requests, not kernel points
        return {
            "markdown": "no kernel measurements (point records) in these files",
            "markdown_path": None,
            "figure_path": None,
        }
    if hardware is not None:
        frame = repredict(frame, hardware)
        out_md = out_md or paths[0].with_suffix(f".{hardware.name}.md")
        text = (
            f"Predictions of the current model on {hardware.name} (measurements as recorded):\n\n"
            f"{markdown(frame)}\n\nBefore (as recorded) and after:\n\n{before_after(frame)}"
        )
    else:
        text = markdown(frame)
    out_md = out_md or paths[0].with_suffix(".md")
    out_md.write_text(text + "\n")
    fig = figure(frame, out_md.with_suffix(".html"))
    return {"markdown": text, "markdown_path": out_md, "figure_path": fig}
