"""Validation: predicted against measured kernel times from the committed results files
(validation/results/*.jsonl, JSON Lines written by ``python -m validation``)."""

import json
import os
from pathlib import Path

import components as ui
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

RESULTS = Path(
    os.environ.get(
        "COSTMODEL_VALIDATION_RESULTS", Path(__file__).resolve().parents[2] / "validation" / "results"
    )
)


@st.cache_data(show_spinner=False)
def load(files: tuple[tuple[str, float, int], ...]) -> tuple[pd.DataFrame, int]:
    """Measured points of the results files (keyed by path, mtime and size, so an edit reloads), and the
    number of lines that could not be read. A point needs measured_s and predicted_s; a file's
    environment record names its device; points whose status is not 'ok' were not measured."""
    rows, unreadable = [], 0
    for path, _, _ in files:
        device_name = None
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                unreadable += 1
                continue
            if not isinstance(record, dict):
                unreadable += 1
                continue
            if record.get("record") == "environment":
                device_name = record.get("device_name") or record.get("device")
                continue
            if record.get("record", "point") != "point" or record.get("status", "ok") != "ok":
                continue
            try:
                measured, predicted = float(record["measured_s"]), float(record["predicted_s"])
            except (KeyError, TypeError, ValueError):
                unreadable += 1
                continue
            if not (measured > 0 and predicted > 0):
                unreadable += 1
                continue
            rel = record.get("rel_error")
            rows.append(
                {
                    "kernel": str(record.get("kernel", "")),
                    "family": str(record.get("family", "unknown")),
                    "regime": str(record.get("regime", "")),
                    "held_out": bool(record.get("held_out", False)),
                    "device": str(
                        record.get("device_name") or device_name or record.get("device", "unknown")
                    ),
                    "measured_s": measured,
                    "predicted_s": predicted,
                    # (predicted - measured) / measured, as validation/run.py writes it
                    "rel_error": float(rel) if rel is not None else predicted / measured - 1.0,
                    "file": Path(path).name,
                }
            )
    return pd.DataFrame(rows), unreadable


# ---------------------------------------------------------------------------- inputs
st.title("Validation")
st.caption(
    f"Predicted against measured kernel times, from `{RESULTS}`: the time model at its default "
    "efficiencies, on the reference kernels of `validation/`."
)
paths = sorted(RESULTS.glob("*.jsonl")) if RESULTS.is_dir() else []

# ---------------------------------------------------------------------------- guard
if not paths:
    st.info(
        "No validation results yet: run the validation harness (`python -m validation`) to write "
        "`validation/results/*.jsonl`, then reload."
    )
    st.stop()
frame, unreadable = load(tuple((str(p), p.stat().st_mtime, p.stat().st_size) for p in paths))
if unreadable:
    st.warning(f"Skipped {unreadable:,} line(s) that are not a readable measured point.")
if frame.empty:
    st.info("The results files hold no measured points yet.")
    st.stop()

cols = st.columns(3)
with cols[0]:
    devices = st.multiselect(
        "Devices", sorted(frame["device"].unique()), default=sorted(frame["device"].unique())
    )
with cols[1]:
    families = st.multiselect(
        "Kernel families", sorted(frame["family"].unique()), default=sorted(frame["family"].unique())
    )
with cols[2]:
    held_out_only = st.toggle("Held-out points only", value=False, help="Points not used for calibration.")

# ---------------------------------------------------------------------------- compute
shown = frame[frame["device"].isin(devices) & frame["family"].isin(families)]
if held_out_only:
    shown = shown[shown["held_out"]]
shown = shown.assign(abs_rel_error=shown["rel_error"].abs())
by_group = (
    shown.groupby(["family", "device"])
    .agg(
        points=("rel_error", "size"),
        median_abs_rel_error=("abs_rel_error", "median"),
        median_rel_error=("rel_error", "median"),
    )
    .reset_index()
)

# ---------------------------------------------------------------------------- render
if shown.empty:
    st.info("No points match the filters.")
    st.stop()
held = shown[shown["held_out"]]
cols = st.columns(4)
with cols[0]:
    ui.metric("Points", ui.count(len(shown)), "validation/results/*.jsonl")
with cols[1]:
    ui.metric("Median |error|", ui.fraction(shown["abs_rel_error"].median()), "rel_error")
with cols[2]:
    ui.metric(
        "Held-out median |error|",
        ui.fraction(held["abs_rel_error"].median()) if len(held) else "none",
        "rel_error of held_out points",
    )
with cols[3]:
    ui.metric("Within ±25%", ui.fraction((shown["abs_rel_error"] <= 0.25).mean()), "rel_error")

left, right = st.columns(2)
with left:
    st.subheader("Predicted vs measured")
    fig = px.scatter(
        shown,
        x="measured_s",
        y="predicted_s",
        color="family",
        symbol="device" if shown["device"].nunique() > 1 else None,
        hover_data=["kernel", "regime", "held_out", "rel_error"],
        log_x=True,
        log_y=True,
    )
    low, high = (
        shown[["measured_s", "predicted_s"]].min().min(),
        shown[["measured_s", "predicted_s"]].max().max(),
    )
    line = np.array([low / 1.5, high * 1.5])
    fig.add_trace(go.Scatter(x=line, y=line, mode="lines", name="exact", line=dict(color="black")))
    for factor, name in ((1.25, "+25%"), (1 / 1.25, "-20%")):
        fig.add_trace(
            go.Scatter(x=line, y=line * factor, mode="lines", name=name, line=dict(color="grey", dash="dot"))
        )
    fig.update_layout(xaxis_title="measured [s]", yaxis_title="predicted [s]")
    ui.chart(fig, shown, "validation-points")
with right:
    st.subheader("Error by kernel family and device")
    fig = px.bar(
        by_group,
        x="family",
        y="median_abs_rel_error",
        color="device",
        barmode="group",
        text="points",
        hover_data=["median_rel_error"],
    )
    fig.update_layout(yaxis=dict(title="median |relative error|", tickformat=".0%"))
    ui.chart(fig, by_group, "validation-error-by-family")
