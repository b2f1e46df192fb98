"""Compression trade-offs: memory, speed and expected quality of weight formats, KV-cache formats and 2:4
sparsity for the scenario on its first device (costmodel.compression.tradeoffs), and the quality-penalty
model behind the quality column (costmodel.compression.quality_penalty)."""

import json
from typing import get_args

import components as ui
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import costmodel as cm
from costmodel import compression

WEIGHT_FORMATS = ["bf16", "fp8", "int8", "int4", "nf4"]  # tradeoffs()'s defaults
KV_FORMATS = ["bf16", "fp8"]
SPARSITIES = ["none", "2:4"]
METHODS = list(get_args(compression.Method))


@st.cache_data(show_spinner=False, max_entries=64)
def load_tradeoffs(
    model_key: str,
    _model: cm.ModelProfile,
    hardware: str,
    sizes: tuple[int, int, int],
    activation_dtype: str,
    deployment_json: str,
    formats: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
    method: str,
) -> pd.DataFrame:
    """compression.tradeoffs, cached by its inputs (``_model`` is identified by ``model_key``; the
    deployment, attention DP and the MoE split included, by its JSON)."""
    batch_size, prompt_len, output_len = sizes
    weight_dtypes, kv_dtypes, sparsities = formats
    return compression.tradeoffs(
        _model,
        ui.hardware_profile(hardware),
        cm.Workload(batch_size, prompt_len, output_len, activation_dtype=activation_dtype),
        weight_dtypes=weight_dtypes,
        kv_dtypes=kv_dtypes,
        sparsities=sparsities,
        method=method,
        deployment=cm.Deployment.model_validate_json(deployment_json),
    )


def label(row: pd.Series) -> str:
    """'int4 · KV fp8 · 2:4' for a tradeoffs row."""
    return f"{row['weight_dtype']} · KV {row['kv_dtype']}" + ("" if row["sparsity"] == "none" else " · 2:4")


def nats(x: float) -> str:
    return "no quality model" if x != x else f"{x:.3g} nats"  # NaN != NaN


# ---------------------------------------------------------------------------- inputs
sc = ui.scenario()
st.title("Compression trade-offs")
cols = st.columns([4, 2, 2, 2])
with cols[0]:
    weight_formats = st.multiselect(
        "Weight formats",
        list(cm.DTYPES),
        default=WEIGHT_FORMATS,
        key="weight_formats",
        bind="query-params",
        help="Storage formats of the weights; weight-only formats compute in the activation format.",
    )
with cols[1]:
    kv_formats = st.multiselect(
        "KV-cache formats", list(cm.DTYPES), default=KV_FORMATS, key="kv_formats", bind="query-params"
    )
with cols[2]:
    sparsities = st.pills(
        "Sparsity",
        SPARSITIES,
        selection_mode="multi",
        default=SPARSITIES,
        key="sparsities",
        bind="query-params",
        help="2:4 structured sparsity, on devices with sparse tensor cores only.",
    )
with cols[3]:
    method = st.selectbox(
        "Quality fitted to",
        METHODS,
        key="quality_method",
        bind="query-params",
        help="Which published quantization results the quality penalty is fitted to: round-to-nearest, "
        "GPTQ or AWQ.",
    )

# ---------------------------------------------------------------------------- guard
try:
    model = ui.model(sc)
    primary = ui.hardware(sc)[0]
    deployment = ui.deployment(sc, model)
    sc.workload()  # the sidebar's sizes and formats are valid
except ui.BAD_INPUT as e:
    ui.show_error(e)
    st.stop()
if not (weight_formats and kv_formats and sparsities):
    st.info("Choose at least one weight format, one KV-cache format and one sparsity.")
    st.stop()
st.caption(ui.describe(sc, model.name) + f" · compared on {primary.name}")
if sc.expert_dtype or sc.expert_activation_dtype or sc.attention_dtype:
    st.info(
        "Each choice below stores every weight in its one format and computes in the activation format: "
        "the sidebar's routed-expert and attention formats are not used on this page."
    )
if "2:4" in sparsities and primary.datasheet.sparsity_speedup is None:  # tradeoffs() skips those rows
    st.info(f"No 2:4 rows: {primary.name} has no sparse tensor cores in its profile.")
    if "none" not in sparsities:
        st.stop()
model_key = sc.model if sc.model_source == "built-in" else json.dumps(sc.hf_config, sort_keys=True)

# ---------------------------------------------------------------------------- compute
frame = None
with ui.friendly_errors():
    frame = load_tradeoffs(
        model_key,
        model,
        sc.priced(primary.name),
        (sc.batch_size, sc.prompt_len, sc.output_len),
        sc.activation_dtype,
        deployment.model_dump_json(),
        (tuple(weight_formats), tuple(kv_formats), tuple(sparsities)),
        method,
    )
if frame is None:
    st.stop()
frame.insert(0, "choice", [label(row) for _, row in frame.iterrows()])
first = ["choice", "pareto", "fits", "memory_bytes_per_gpu", "tpot_s", "loss_increase", "quality_retention"]
frame = frame[first + [c for c in frame.columns if c not in first]]  # what to compare first
known = frame.dropna(subset=["loss_increase"])
ratios = {wd: compression.compression_ratio(wd) for wd in weight_formats}
penalty = compression.quality_penalty(np.array(list(ratios.values())), method=method)

# ---------------------------------------------------------------------------- render: headline
where = f"{deployment.gpus_per_replica} × {primary.name}"
if not frame["fits"].any():
    st.warning(
        f"No choice fits on {where} at batch {sc.batch_size:,}: the smallest needs "
        f"{ui.gb(frame['memory_bytes_per_gpu'].min())} per GPU. The times are what it would take if it did; "
        "try more GPUs (TP/PP) or a larger device."
    )
elif not frame["fits"].all():
    st.info(f"{(~frame['fits']).sum()} of {len(frame)} choices do not fit on {where} (× in the chart).")

mine = frame[
    (frame["weight_dtype"] == sc.weight_dtype)
    & (frame["kv_dtype"] == sc.kv_dtype)
    & (frame["sparsity"] == "none")
]
st.subheader(f"The sidebar's formats: weights {sc.weight_dtype}, KV cache {sc.kv_dtype}, dense")
if mine.empty:
    st.info(
        f"Add {sc.weight_dtype} to the weight formats and {sc.kv_dtype} to the KV-cache formats to see them."
    )
else:
    row = mine.iloc[0]
    source = "compression.tradeoffs(...)"
    figures = [
        ("Memory per GPU", ui.gb(row["memory_bytes_per_gpu"]), "memory_bytes_per_gpu"),
        ("Time per output token", ui.duration(row["tpot_s"]), "tpot_s"),
        ("Loss increase", nats(row["loss_increase"]), "loss_increase"),
        (
            "Quality retention",
            "no quality model"
            if row["quality_retention"] != row["quality_retention"]
            else f"{row['quality_retention']:.2%}",
            "quality_retention",
        ),
    ]
    for col, (name, value, attr) in zip(st.columns(4), figures, strict=True):
        with col:
            ui.metric(name, value, f"{source}.{attr}")
front = frame[frame["pareto"]]
st.caption(
    f"On the Pareto frontier (no other choice has less memory per GPU, a shorter time per output token and "
    f"a smaller loss increase together): {', '.join(front['choice']) or 'none'}."
)

st.subheader("Every choice")
ui.dataframe(
    frame,
    pareto=st.column_config.CheckboxColumn("Pareto"),
    quality_retention=st.column_config.NumberColumn("Quality retention", format="%.4f"),
)
st.caption(
    "**KV-cache quantization and 2:4 sparsity have no quality model**: their rows carry NaN (empty) loss "
    "increase and quality, as `costmodel.compression.tradeoffs` documents, and stay off the Pareto frontier "
    "rather than look free. Quality is modelled for weight-only quantization with a bf16 KV cache."
)

# ---------------------------------------------------------------------------- render: memory vs TPOT
st.subheader(f"Memory vs time per output token on {primary.name}")
fig = go.Figure()
unknown = frame[frame["loss_increase"].isna()]
fig.add_scatter(
    x=unknown["memory_bytes_per_gpu"] / 1e9,
    y=unknown["tpot_s"] * 1e3,
    mode="markers",
    name="no quality model (KV quantization, 2:4)",
    marker=dict(size=10, color="#b0b0b0", symbol=np.where(unknown["fits"], "circle", "x")),
    text=unknown["choice"],
    hovertemplate="%{text}: %{x:.3g} GB, %{y:.4g} ms<extra></extra>",
)
if not known.empty:
    log_loss = np.log10(known["loss_increase"])
    ticks = np.arange(np.floor(log_loss.min()), np.ceil(log_loss.max()) + 1)
    fig.add_scatter(
        x=known["memory_bytes_per_gpu"] / 1e9,
        y=known["tpot_s"] * 1e3,
        mode="markers",
        name="loss increase (colour)",
        marker=dict(
            size=13,
            color=log_loss,
            colorscale="Viridis",
            cmin=float(ticks[0]),
            cmax=float(ticks[-1]) if len(ticks) > 1 else float(ticks[0]) + 1,
            symbol=np.where(known["fits"], "circle", "x"),
            colorbar=dict(
                title="loss increase [nats]",
                tickvals=ticks,
                ticktext=[f"1e{int(t)}" for t in ticks],
            ),
        ),
        text=known["choice"],
        customdata=known["loss_increase"],
        hovertemplate="%{text}: %{x:.3g} GB, %{y:.4g} ms, +%{customdata:.3g} nats<extra></extra>",
    )
# one label per point: formats with the same memory and speed (fp8 and int8 weights) share it
ringed = (
    front.groupby(["memory_bytes_per_gpu", "tpot_s"], sort=False)["weight_dtype"]
    .agg(" / ".join)
    .reset_index()
    .sort_values("memory_bytes_per_gpu")
)
fig.add_scatter(
    x=ringed["memory_bytes_per_gpu"] / 1e9,
    y=ringed["tpot_s"] * 1e3,
    mode="markers+text",
    name="Pareto frontier",
    marker=dict(size=22, symbol="circle-open", color="black", line=dict(width=2)),
    text=ringed["weight_dtype"],
    textposition=["bottom center" if i % 2 else "top center" for i in range(len(ringed))],
    hoverinfo="skip",
)
fig.update_layout(
    xaxis=dict(title="memory per GPU [GB]", rangemode="tozero"),
    yaxis=dict(title="time per output token [ms]", rangemode="tozero"),
    height=480,
)
ui.chart(fig, frame, "compression-memory-vs-tpot")
st.caption("× marks a choice that does not fit in memory. Ringed: on the Pareto frontier.")

# ---------------------------------------------------------------------------- render: the quality model
left, right = st.columns(2)
with left:
    st.subheader("Loss increase by weight format, 95 % band")
    bands = (
        known.drop_duplicates("weight_dtype")[
            [
                "weight_dtype",
                "memory_ratio",
                "loss_increase",
                "loss_increase_low",
                "loss_increase_high",
                "quality_retention",
            ]
        ]
        .sort_values("memory_ratio")
        .reset_index(drop=True)
    )
    if bands.empty:
        st.info(
            "Only rows with a bf16 KV cache and no sparsity have a quality model: add bf16 and none above."
        )
    else:
        fig = go.Figure()
        fig.add_scatter(
            x=bands["weight_dtype"],
            y=bands["loss_increase"],
            mode="markers",
            name="loss increase",
            marker=dict(size=11, color="#1f77b4"),
            error_y=dict(
                type="data",
                symmetric=False,
                array=bands["loss_increase_high"] - bands["loss_increase"],
                arrayminus=bands["loss_increase"] - bands["loss_increase_low"],
            ),
            customdata=np.c_[bands["loss_increase_low"], bands["loss_increase_high"]],
            hovertemplate="%{x}: %{y:.3g} nats (%{customdata[0]:.3g} to %{customdata[1]:.3g})<extra></extra>",
        )
        fig.update_layout(
            xaxis=dict(title="weight format (by weight memory ratio)", type="category"),
            yaxis=dict(type="log", title="loss increase [nats per token]", exponentformat="power"),
        )
        ui.chart(fig, bands, "compression-quality-band")
with right:
    st.subheader(f"The quality penalty vs compression ratio ({method})")
    top = max(8.0, 1.1 * max(ratios.values()))
    cr = np.geomspace(min(1.0, 0.9 * min(ratios.values())), top, 121)
    power = compression.quality_penalty(cr, method=method)
    exponential = compression.quality_penalty(cr, method=method, model="exponential")
    curve = pd.DataFrame(
        {
            "compression_ratio": cr,
            "bits_per_weight": 16.0 / cr,
            "loss_increase": power.loss_increase,
            "loss_increase_low": power.low,
            "loss_increase_high": power.high,
            "exponential_loss_increase": exponential.loss_increase,
        }
    )
    fitted = compression.fit_points(method)
    held_out = compression.fit_points(method, held_out=True)
    fig = go.Figure()
    fig.add_scatter(x=cr, y=power.high, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip")
    fig.add_scatter(
        x=cr,
        y=power.low,
        mode="lines",
        line=dict(width=0),
        fill="tonexty",
        fillcolor="rgba(31, 119, 180, 0.2)",
        name="95 % band",
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=cr, y=power.loss_increase, mode="lines", name="power (the table's)", line=dict(color="#1f77b4")
    )
    fig.add_scatter(
        x=cr,
        y=exponential.loss_increase,
        mode="lines",
        name="exponential",
        line=dict(color="#ff7f0e", dash="dash"),
    )
    for points, name, symbol in (
        (fitted, "published, fitted", "circle"),
        (held_out, "published, held out", "circle-open"),
    ):
        fig.add_scatter(
            x=[p.compression_ratio for p in points],
            y=[p.loss_increase for p in points],
            mode="markers",
            name=name,
            marker=dict(symbol=symbol, size=8, color="black"),
            text=[f"{p.model} {p.bits}-bit g{p.group_size}" for p in points],
            hovertemplate="%{text}: CR %{x:.3g}, %{y:.3g} nats<extra></extra>",
        )
    names: dict[float, list[str]] = {}  # formats of the same ratio (fp8, int8) share one label
    for wd, ratio in ratios.items():
        names.setdefault(ratio, []).append(wd)
    fig.add_scatter(
        x=list(ratios.values()),
        y=penalty.loss_increase,
        mode="markers+text",
        name="the weight formats",
        marker=dict(symbol="diamond", size=11, color="#d62728"),
        text=[" / ".join(names[r]) if names[r][0] == wd else "" for wd, r in ratios.items()],
        textposition="top left",
    )
    shown = np.r_[power.low, penalty.loss_increase, [p.loss_increase for p in fitted + held_out]]
    fig.update_layout(  # the exponential model falls far below the data at low ratios: clip it there
        xaxis=dict(title="compression ratio vs bf16 (16 / stored bits per weight)", rangemode="tozero"),
        yaxis=dict(
            type="log",
            title="loss increase [nats per token]",
            exponentformat="power",
            range=[np.floor(np.log10(shown.min())), np.ceil(np.log10(power.high.max()))],
        ),
    )
    ui.chart(fig, curve, "compression-quality-penalty")
    crs = [p.compression_ratio for p in fitted]
    st.caption(
        f"`quality_penalty(compression_ratio, method='{method}')`: gamma CR^delta fitted to published "
        "WikiText-2 perplexities of LLaMA-family models, weight-only PTQ, at CR "
        f"{min(crs):.2f}-{max(crs):.2f}; beyond, it extrapolates. The band is the fit's and understates the "
        "spread between models."
    )
