"""Validation: predicted against measured times, from committed results files only.

Three views: the public GPU kernel measurements (NVIDIA aiconfigurator's tables, predicted by
``python -m validation public``: a stratified sample of rows for the scatter, the error by regime and the
summary over every row), the public end-to-end serving measurements (TTFT and TPOT per system and engine),
and the project's own torch reference kernels (``validation/results/*.jsonl``). The page reads the files;
it never runs the evaluation and never imports ``validation/``.

Where the files are: ``$COSTMODEL_VALIDATION_RESULTS`` if set, else ``validation/results/`` of the source
checkout, else the copy the wheel ships in ``costmodel_app/_data/results/``.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import components as ui
import link
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

HERE = Path(__file__).resolve().parent
# where results are looked for: the source checkout's folder, then the copy shipped in the wheel
CANDIDATES = [HERE.parents[1] / "validation" / "results", HERE.parent / "_data" / "results"]
SUMMARY_FILE = "public-gpu-summary.json"
SAMPLE_FILE = "public-gpu-rows-sample.parquet"
REGIMES_FILE = "public-gpu-regimes.json"
COMMAND = "python -m validation public --data validation/data/public-gpu --out OUT"

FAMILY_NAMES = {
    "gemm": "GEMM",
    "context_attention": "Context (prefill) attention",
    "generation_attention": "Generation (decode) attention",
    "context_mla": "MLA context kernel",
    "mla_context": "MLA context kernel",
    "generation_mla": "MLA generation kernel",
    "mla_generation": "MLA generation kernel",
    "mla_context_module": "MLA context module (whole attention block)",
    "mla_generation_module": "MLA generation module (whole attention block)",
    "mla_gen_pre": "MLA absorb batched matmul (before attention)",
    "mla_gen_post": "MLA absorb batched matmul (after attention)",
    "moe": "MoE (grouped expert GEMMs)",
    "all_reduce": "All-reduce",
    "all_gather": "All-gather",
    "reduce_scatter": "Reduce-scatter",
    "alltoall": "All-to-all",
}  # table op_name -> a name for people (the op_name is shown next to it)
SPLITS = ["held-out", "calibration"]
METRICS = ["ttft", "tpot"]
ERROR_HEADERS = {
    "n": "Rows",
    "median_abs_err": "Median |error| [%]",
    "p90_abs_err": "p90 |error| [%]",
    "median_signed_err": "Median signed error [%]",
}
PERCENT = ("median_abs_err", "p90_abs_err", "median_signed_err")


def results_folder() -> Path | None:
    """The folder holding the results files, or None when there is none (see the module docstring)."""
    env = os.environ.get("COSTMODEL_VALIDATION_RESULTS")
    if env:
        return Path(env)
    return next((path for path in CANDIDATES if path.is_dir()), None)


def stamp(path: Path) -> tuple[str, float, int]:
    """A file's cache key: path, mtime and size (an edit reloads)."""
    stat = path.stat()
    return (str(path), stat.st_mtime, stat.st_size)


def family_label(family: str) -> str:
    return f"{FAMILY_NAMES.get(family, family)} ({family})"


def as_table(document: dict[str, Any], name: str) -> pd.DataFrame:
    """A pandas ``split``-orient table of ``document`` (columns + data)."""
    part = document.get(name) or {}
    return pd.DataFrame(part.get("data", []), columns=part.get("columns", []))


def percent_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The error fractions as percentages, under human headers."""
    out = frame.copy()
    for column in PERCENT:
        if column in out:
            out[column] = out[column] * 100.0
    return out.rename(columns=ERROR_HEADERS)


PERCENT_CONFIG = {ERROR_HEADERS[c]: st.column_config.NumberColumn(format="%.1f%%") for c in PERCENT} | {
    ERROR_HEADERS["n"]: st.column_config.NumberColumn(format="localized")
}


def add_exact_lines(fig: go.Figure, frame: pd.DataFrame) -> None:
    """y = x and ±25 % lines on every panel of a log-log scatter."""
    low = float(frame[["measured_s", "predicted_s"]].min().min())
    high = float(frame[["measured_s", "predicted_s"]].max().max())
    line = np.array([low / 1.5, high * 1.5])
    styles = (
        (1.0, "predicted = measured", dict(color="black")),
        (1.25, "+25%", dict(color="grey", dash="dot")),
        (1 / 1.25, "-20%", dict(color="grey", dash="dot")),
    )
    for factor, name, style in styles:
        for index, anchor in enumerate(sorted(k for k in fig.layout if k.startswith("xaxis"))):
            fig.add_trace(
                go.Scatter(
                    x=line,
                    y=line * factor,
                    mode="lines",
                    name=name,
                    line=style,
                    hoverinfo="skip",
                    showlegend=index == 0,
                    legendgroup=name,
                    xaxis=anchor.replace("axis", ""),
                    yaxis=anchor.replace("xaxis", "y"),
                )
            )


def first_panel_title_only(fig: go.Figure) -> None:
    """The y-axis title on the first panel of a faceted figure only (it would overlap the next panel)."""
    fig.for_each_yaxis(lambda axis: axis.update(title=None) if axis.anchor not in (None, "x") else None)


def scatter(frame: pd.DataFrame, *, facet: str, color: str, symbol: str | None, name: str) -> ui.ChartParts:
    """Predicted against measured, log-log, one panel per ``facet`` value, the shape in the hover."""
    shown = frame.assign(error=frame["predicted_s"] / frame["measured_s"] - 1.0)
    orders = {"split": SPLITS, "metric": METRICS}
    fig = px.scatter(
        shown,
        x="measured_s",
        y="predicted_s",
        color=color,
        symbol=symbol,
        facet_col=facet,
        category_orders={facet: [v for v in orders.get(facet, []) if v in set(shown[facet])] or None},
        hover_name="shape",
        hover_data={
            "engine": True,
            "dtype": True,
            "kernel": True,
            "regime": True,
            "error": ":+.1%",
            "measured_s": ":.3g",
            "predicted_s": ":.3g",
            "split": False,
        },
        log_x=True,
        log_y=True,
        opacity=0.6,
    )
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    add_exact_lines(fig, shown)
    fig.update_xaxes(title="measured [s]")
    fig.update_yaxes(title="predicted [s]")
    first_panel_title_only(fig)
    fig.update_layout(height=480)
    return ui.chart_parts(fig, shown, name)


# ---------------------------------------------------------------------------- loading


FileKey = tuple[str, float, int] | None


@dataclass(frozen=True)
class Public:
    """The public evaluation's files, read once and indexed by what the page selects (shared by every
    session and rerun: :func:`public` is a cached resource, so nothing here is ever changed)."""

    summary: dict[str, Any]
    about: dict[str, Any]
    regimes: dict[str, Any]
    sample_empty: bool
    kernels: pd.DataFrame  # the summary's "kernels" list
    families: pd.DataFrame  # regimes.json's "families" table
    regime_table: pd.DataFrame  # regimes.json's "regimes" table
    kernel_systems: list[str]
    kernel_families: dict[str, set[str]]  # system -> families with a summary row or sampled row
    kernel_points: dict[tuple[str, str], pd.DataFrame]  # (system, family) -> sampled latency rows
    no_points: pd.DataFrame  # the sample's columns, no rows
    silicon: pd.DataFrame  # the summary's "silicon" list
    serving_systems: list[str]
    serving_points: dict[str, pd.DataFrame]  # system -> sampled serving rows
    serving_sampled: bool  # the sample holds serving rows


def read_public(
    summary_key: FileKey, sample_key: FileKey, regimes_key: FileKey
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """The summary document, the sample and its provenance, and the regimes document (empty if absent)."""
    summary = json.loads(Path(summary_key[0]).read_text(encoding="utf-8")) if summary_key else {}
    regimes = json.loads(Path(regimes_key[0]).read_text(encoding="utf-8")) if regimes_key else {}
    sample, about = pd.DataFrame(), {}
    if sample_key:
        import pyarrow.parquet as pq  # a dependency of streamlit

        table = pq.read_table(sample_key[0])
        about = json.loads((table.schema.metadata or {}).get(b"costmodel", b"{}"))
        sample = table.to_pandas()
    return summary, sample, about, regimes


def _groups(frame: pd.DataFrame, by: list[str]) -> dict[Any, pd.DataFrame]:
    """``frame``'s rows per value of ``by``, each group selected by the same row mask the page used to
    apply at every rerun (so its tables and charts are the same to the byte)."""
    if frame.empty:
        return {}
    out: dict[Any, pd.DataFrame] = {}
    for key in frame[by].drop_duplicates().itertuples(index=False, name=None):
        mask = np.ones(len(frame), dtype=bool)
        for column, value in zip(by, key, strict=True):
            mask &= (frame[column] == value).to_numpy(dtype=bool, na_value=False)
        out[key if len(by) > 1 else key[0]] = frame[mask]
    return out


@st.cache_resource(show_spinner=False, max_entries=4)
def public(summary_key: FileKey, sample_key: FileKey, regimes_key: FileKey) -> Public:
    """:func:`read_public`, indexed (keyed by each file's path, mtime and size, so an edit reloads)."""
    summary, sample, about, regimes = read_public(summary_key, sample_key, regimes_key)
    kernels = pd.DataFrame(summary.get("kernels", []))
    kernel_sample = sample[sample["metric"] == "latency"] if len(sample) else sample
    systems = sorted(set(kernels.get("system", [])) | set(kernel_sample.get("system", [])))
    families: dict[str, set[str]] = {}
    for system in systems:
        present = set(kernels.loc[kernels["system"] == system, "family"]) if len(kernels) else set()
        if len(kernel_sample):
            present |= set(kernel_sample.loc[kernel_sample["system"] == system, "family"])
        families[system] = present
    serving = sample[sample["family"] == "serving"] if len(sample) else sample
    silicon = pd.DataFrame(summary.get("silicon", []))
    return Public(
        summary=summary,
        about=about,
        regimes=regimes,
        sample_empty=sample.empty,
        kernels=kernels,
        families=as_table(regimes, "families"),
        regime_table=as_table(regimes, "regimes"),
        kernel_systems=systems,
        kernel_families=families,
        kernel_points=_groups(kernel_sample, ["system", "family"]),
        no_points=kernel_sample.iloc[0:0],
        silicon=silicon,
        serving_systems=sorted(set(silicon.get("system", [])) | set(serving.get("system", []))),
        serving_points=_groups(serving, ["system"]),
        serving_sampled=not serving.empty,
    )


@st.cache_resource(show_spinner=False, max_entries=64)
def kernel_scatter(keys: tuple[FileKey, FileKey, FileKey], system: str, family: str) -> ui.ChartParts:
    """The scatter of one device and family's sampled rows, made once per files and selection."""
    points = public(*keys).kernel_points[(system, family)]
    return scatter(
        points,
        facet="split",
        color="dtype",
        symbol="engine" if points["engine"].nunique() > 1 else None,
        name=f"validation-{system}-{family}",
    )


@st.cache_resource(show_spinner=False, max_entries=16)
def serving_scatter(keys: tuple[FileKey, FileKey, FileKey], system: str) -> ui.ChartParts:
    """The scatter of one system's predicted deployments, made once per files and system."""
    mine = public(*keys).serving_points[system]
    return scatter(mine, facet="metric", color="engine", symbol="split", name=f"validation-serving-{system}")


@st.cache_data(show_spinner=False)
def load_reference(files: tuple[tuple[str, float, int], ...]) -> tuple[pd.DataFrame, int]:
    """Measured points of the reference results files (keyed by path, mtime and size, so an edit reloads),
    and the number of lines that could not be read. A point needs measured_s and predicted_s; a file's
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


# ---------------------------------------------------------------------------- the views


def missing_public(folder: Path | None, missing: list[str]) -> None:
    where = f"`{folder}`" if folder else "`validation/results/` (no such folder here)"
    st.info(
        f"The public GPU evaluation is not available here: {', '.join(f'`{m}`' for m in missing)} not found "
        f"in {where}. The files are written by `{COMMAND}` and committed in `validation/results/` of the "
        "source repository (the wheel ships a copy); set `COSTMODEL_VALIDATION_RESULTS` to a folder "
        "holding them."
    )


def provenance_line(summary: dict[str, Any], about: dict[str, Any], system: str | None = None) -> str:
    systems = about.get("systems") or summary.get("environment", {}).get("systems", {})
    parts = []
    if system and system in systems:
        info = systems[system]
        engines = ", ".join(f"{e} {'/'.join(v)}" for e, v in sorted(info.get("engines", {}).items()))
        parts.append(f"{system}: {', '.join(info.get('devices', []))} ({engines})")
    parts.append(
        f"data revision {str(summary.get('data_revision', about.get('data_revision', '?')))[:7]}; "
        f"summary: costmodel {summary.get('costmodel_revision', '?')}, {summary.get('date', '?')}"
    )
    if about:
        parts.append(f"sample: costmodel {about.get('costmodel_revision', '?')}, {about.get('date', '?')}")
    return " · ".join(parts)


def kernels_view(data: Public, keys: tuple[FileKey, FileKey, FileKey]) -> None:
    summary, about, kernels, families = data.summary, data.about, data.kernels, data.families
    systems = data.kernel_systems
    if not systems:
        st.info("The public evaluation files hold no kernel rows.")
        return
    cols = st.columns(2)
    with cols[0]:
        system = st.selectbox("Device", systems, key="validation_device", bind="query-params")
    present = data.kernel_families[system]
    options = [f for f in FAMILY_NAMES if f in present] + sorted(present - set(FAMILY_NAMES))
    with cols[1]:
        family = st.selectbox(
            "Kernel family",
            options,
            format_func=link.labelled("validation_family", family_label),  # the URL holds the label
            key="validation_family",
            bind="query-params",
        )
    st.caption(provenance_line(summary, about, system))

    # headline: every row of this device and family (regimes.json's "families")
    mine = (
        families[(families["system"] == system) & (families["family"] == family)]
        if len(families)
        else families
    )
    by_split = {str(r["split"]): r for r in mine.to_dict("records")}
    held, cal = by_split.get("held-out"), by_split.get("calibration")
    cols = st.columns(5)
    source = f"{REGIMES_FILE}: every row, not the sample"
    with cols[0]:
        ui.metric("Held-out rows", ui.count(held["n"]) if held else "none", source)
    with cols[1]:
        ui.metric(
            "Held-out median", ui.fraction(held["median_abs_err"]) if held else "-", f"|error|, {source}"
        )
    with cols[2]:
        ui.metric("Held-out p90", ui.fraction(held["p90_abs_err"]) if held else "-", f"|error|, {source}")
    with cols[3]:
        signed = f"{held['median_signed_err']:+.1%}" if held else "-"
        ui.metric("Held-out bias", signed, f"median of predicted / measured - 1, {source}")
    with cols[4]:
        ui.metric(
            "Calibration median", ui.fraction(cal["median_abs_err"]) if cal else "-", f"|error|, {source}"
        )

    st.subheader("Predicted vs measured")
    points = data.kernel_points.get((system, family), data.no_points)
    if points.empty:
        st.info("No sampled rows for this device and family.")
    else:
        total = int(mine["n"].sum()) if len(mine) else len(points)
        st.caption(
            f"{len(points):,} of {total:,} rows: {about.get('sample_rule', 'a sample')}. Held-out rows were "
            "never seen by the calibration; calibration rows are shown apart. Hover a point for its shape."
        )
        ui.show_chart(kernel_scatter(keys, system, family))

    st.subheader("Error by regime")
    regime_view(data.regime_table, keys, system, family, key="kernels", color="engine")

    st.subheader("Summary by engine, format and kernel")
    if len(kernels):
        rows = kernels[(kernels["system"] == system) & (kernels["family"] == family)]
        shown = percent_columns(
            rows.drop(columns=["system", "family"]).rename(
                columns={"engine": "Engine", "dtype": "Format", "kernel": "Kernel", "split": "Split"}
            )
        )
        st.dataframe(shown, hide_index=True, column_config=PERCENT_CONFIG)
        st.caption(f"From `{SUMMARY_FILE}` (every row); errors: signed = predicted / measured - 1.")


def regime_rows(table: pd.DataFrame, system: str, family: str, split: str | None) -> pd.DataFrame:
    """The regimes table's rows of one device and family (of one ``split`` only when given)."""
    mine = table[(table["system"] == system) & (table["family"] == family)]
    return mine[mine["split"] == split] if split else mine


def regime_view(
    table: pd.DataFrame,
    keys: tuple[FileKey, FileKey, FileKey],
    system: str,
    family: str,
    *,
    key: str,
    color: str,
    facet: str = "split",
    split: str | None = None,
) -> None:
    """Median |error| per regime bucket of one axis (a selector when the family has several), over every
    row (``regimes.json``), not the sample; of one ``split`` only when given. A log axis where some bucket
    is off by more than 200 %."""
    if table.empty:
        st.info(f"No error-by-regime table (`{REGIMES_FILE}`): regenerate it with `{COMMAND}`.")
        return
    axes = list(dict.fromkeys(regime_rows(table, system, family, split)["axis"]))
    if not axes:
        st.info("No regime axis for this family.")
        return
    axis = st.radio("Regime", axes, horizontal=True, key=f"regime_{key}") if len(axes) > 1 else axes[0]
    ui.show_chart(regime_chart(keys, system, family, axis, key, color, facet, split))


@st.cache_resource(show_spinner=False, max_entries=64)
def regime_chart(
    keys: tuple[FileKey, FileKey, FileKey],
    system: str,
    family: str,
    axis: str,
    key: str,
    color: str,
    facet: str,
    split: str | None,
) -> ui.ChartParts:
    """The bars of :func:`regime_view` for one axis, made once per files and selection."""
    mine = regime_rows(public(*keys).regime_table, system, family, split)
    part = mine[mine["axis"] == axis].sort_values(["order", "regime"])
    fig = px.bar(
        part,
        x="regime",
        y="median_abs_err",
        color=color,
        facet_col=facet,
        barmode="group",
        category_orders={"regime": list(dict.fromkeys(part["regime"])), "split": SPLITS, "metric": METRICS},
        hover_data={"n": True, "p90_abs_err": ":.1%", "median_signed_err": ":+.1%", "median_abs_err": ":.1%"},
        text="n",
    )
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig.update_yaxes(title="median |error|", tickformat=".0%")
    if part["median_abs_err"].max() > 2.0:
        fig.update_yaxes(type="log", tickformat=".0%")
    fig.update_xaxes(title=axis)
    first_panel_title_only(fig)
    return ui.chart_parts(fig, part, f"validation-regimes-{key}-{system}-{family}")


def serving_view(data: Public, keys: tuple[FileKey, FileKey, FileKey]) -> None:
    summary, about, silicon = data.summary, data.about, data.silicon
    if silicon.empty and not data.serving_sampled:
        st.info(
            "The public evaluation files hold no serving results (`silicon_sample.csv` was not evaluated)."
        )
        return
    st.caption(
        "End-to-end deployments measured by a closed loop of clients (NVIDIA aiconfigurator's silicon "
        "sample), predicted by `costmodel.closed_loop` with per-engine parameters fitted on the calibration "
        "rows. " + provenance_line(summary, about)
    )
    systems = data.serving_systems
    system = st.selectbox("Device", systems, key="validation_serving_device", bind="query-params")
    if len(silicon):
        rows = silicon[silicon["system"] == system].copy()
        rows["metric"] = rows["metric"].str.upper()
        shown = percent_columns(
            rows.drop(columns=["system"]).rename(
                columns={
                    "engine": "Engine",
                    "mode": "Mode",
                    "metric": "Metric",
                    "split": "Split",
                    "covered": "Rows predicted",
                    "total": "Rows measured",
                }
            )
        )
        st.dataframe(shown, hide_index=True, column_config=PERCENT_CONFIG)
        st.caption(f"Per engine, TTFT and TPOT, from `{SUMMARY_FILE}`: rows predicted of rows measured.")
    mine = data.serving_points.get(system)
    if mine is not None and len(mine):
        st.subheader("Predicted vs measured")
        st.caption(
            f"Every predicted deployment of {system} ({len(mine) // 2:,}); hover for the model and lengths."
        )
        ui.show_chart(serving_scatter(keys, system))
    st.subheader("Error by client concurrency, held-out deployments")
    regime_view(
        data.regime_table, keys, system, "serving", key="serving", color="engine", facet="metric",
        split="held-out",
    )  # fmt: skip


def reference_view(folder: Path | None) -> None:
    """The project's own torch reference kernels (``*.jsonl`` written by ``python -m validation``)."""
    st.caption(
        f"Predicted against measured kernel times, from `{folder}`: the time model at its default "
        "efficiencies, on the reference kernels of `validation/`."
    )
    paths = sorted(folder.glob("*.jsonl")) if folder and folder.is_dir() else []
    if not paths:
        st.info(
            "No validation results yet: run the validation harness (`python -m validation`) to write "
            "`validation/results/*.jsonl`, then reload."
        )
        return
    frame, unreadable = load_reference(tuple(stamp(p) for p in paths))
    if unreadable:
        st.warning(f"Skipped {unreadable:,} line(s) that are not a readable measured point.")
    if frame.empty:
        st.info("The results files hold no measured points yet.")
        return

    cols = st.columns(3)
    with cols[0]:
        devices = st.multiselect(
            "Devices",
            sorted(frame["device"].unique()),
            default=sorted(frame["device"].unique()),
            key="reference_devices",
            bind="query-params",
        )
    with cols[1]:
        families = st.multiselect(
            "Kernel families",
            sorted(frame["family"].unique()),
            default=sorted(frame["family"].unique()),
            key="reference_families",
            bind="query-params",
        )
    with cols[2]:
        held_out_only = st.toggle(
            "Held-out points only",
            value=False,
            help="Points not used for calibration.",
            key="reference_held_out",
            bind="query-params",
        )

    shown = frame[frame["device"].isin(devices) & frame["family"].isin(families)]
    if held_out_only:
        shown = shown[shown["held_out"]]
    if shown.empty:
        st.info("No points match the filters.")
        return
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
                go.Scatter(
                    x=line, y=line * factor, mode="lines", name=name, line=dict(color="grey", dash="dot")
                )
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


# ---------------------------------------------------------------------------- page
st.title("Validation")
st.caption(
    "How well costmodel's time model matches measured GPU times: public kernel and serving measurements "
    "on real GPUs, and this project's own reference kernels. Every figure is read from committed results "
    "files; nothing here is fitted or run."
)
folder = results_folder()
VIEWS = {"GPU kernels": "public measurements", "Serving": "public measurements", "Reference kernels": "torch"}
view = st.radio(
    "View",
    list(VIEWS),
    captions=list(VIEWS.values()),
    horizontal=True,
    key="validation_view",
    bind="query-params",
)
if view == "Reference kernels":
    reference_view(folder)
    st.stop()
files = {name: (folder / name if folder else None) for name in (SUMMARY_FILE, SAMPLE_FILE, REGIMES_FILE)}
keys = {name: stamp(path) if path and path.is_file() else None for name, path in files.items()}
missing = [name for name, key in keys.items() if key is None]
if missing:
    missing_public(folder, missing)
file_keys = (keys[SUMMARY_FILE], keys[SAMPLE_FILE], keys[REGIMES_FILE])
data = public(*file_keys)
if not data.summary and data.sample_empty:
    st.stop()
if view == "Serving":
    serving_view(data, file_keys)
else:
    kernels_view(data, file_keys)
