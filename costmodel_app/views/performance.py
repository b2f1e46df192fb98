"""Performance: TTFT, TPOT and throughput, against batch size and context; the roofline with the model's
operators on it; the per-operator table; devices ranked by $ per million tokens. From costmodel.estimate."""

import components as ui
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import costmodel as cm
from costmodel.kernel_times import time_model_note
from costmodel.roofline import attainable_flop_per_s, ridge_point_flop_per_byte

# ---------------------------------------------------------------------------- inputs
sc = ui.scenario()
st.title("Performance")

# ---------------------------------------------------------------------------- guard
try:
    model = ui.model(sc)
    devices = ui.hardware(sc)
    deployment = ui.deployment(sc, model)
    workload = sc.workload()
except ui.BAD_INPUT as e:
    ui.show_error(e)
    st.stop()
st.caption(ui.describe(sc, model.name))
primary = devices[0]
per_replica = " per replica" if deployment.replicas > 1 else ""

# ---------------------------------------------------------------------------- headline figures
report = None
with ui.friendly_errors():
    report = cm.estimate(model, primary, workload, deployment)
    if not bool(report.fits):
        st.warning(
            f"Does not fit on {primary.name}: {ui.gb(float(report.memory_bytes_per_gpu))} per GPU needed, "
            f"{ui.gb(report.capacity_bytes_per_gpu)} usable (largest batch that fits: "
            f"{int(report.max_batch_size):,}). The times below are what it would take if it did."
        )
    figures = [
        ("Time to first token", ui.duration(float(report.ttft_s)), "ttft_s"),
        ("Time per output token", ui.duration(float(report.tpot_s)), "tpot_s"),
        (f"Output tokens/s{per_replica}", ui.rate(float(report.output_tokens_per_s)), "output_tokens_per_s"),
        (
            "$ per million output tokens",
            ui.usd(float(report.usd_per_million_output_tokens)),
            "usd_per_million_output_tokens",
        ),
        ("End to end", ui.duration(float(report.e2e_s)), "e2e_s"),
        (
            "$ per million input tokens",
            ui.usd(float(report.usd_per_million_input_tokens)),
            "usd_per_million_input_tokens",
        ),
        ("Prefill MFU", ui.fraction(float(report.prefill_mfu)), "prefill_mfu"),
        ("Decode MBU", ui.fraction(float(report.decode_mbu)), "decode_mbu"),
    ]
    for start in (0, 4):
        for col, (label, value, attr) in zip(st.columns(4), figures[start : start + 4], strict=True):
            with col:
                ui.metric(label, value, f"costmodel.estimate(...).{attr}")
    st.caption(
        f"On {deployment.gpus_per_replica} × {primary.name}. {time_model_note(primary)} "
        "Prefill time is charged to input tokens, decode time to output tokens."
    )

# ---------------------------------------------------------------------------- vs batch and context


def latency_figure(frame: pd.DataFrame, x: str, x_title: str) -> go.Figure:
    """TTFT, TPOT and throughput side by side; crosses mark points that do not fit in memory. Each time
    in ms, or in s where it reaches 10 s."""
    (ttft_scale, ttft_unit), (tpot_scale, tpot_unit) = (
        ui.time_scale(frame[c].max()) for c in ("ttft_s", "tpot_s")
    )
    fig = make_subplots(
        rows=1, cols=3, subplot_titles=(f"TTFT [{ttft_unit}]", f"TPOT [{tpot_unit}]", "output tokens/s")
    )
    for name, group in frame.groupby("hardware", sort=False):
        color = ui.device_colour(sc, str(name))
        symbols = np.where(group["fits"], "circle", "x")
        for col, (y, scale) in enumerate(
            (("ttft_s", ttft_scale), ("tpot_s", tpot_scale), ("output_tokens_per_s", 1.0)), start=1
        ):
            fig.add_scatter(
                x=group[x],
                y=group[y] * scale,
                name=str(name),
                legendgroup=str(name),
                showlegend=col == 1,
                mode="lines+markers",
                marker=dict(symbol=symbols, size=8, color=color),
                line=dict(color=color),
                row=1,
                col=col,
            )
    fig.update_xaxes(type="log", title_text=x_title)
    fig.update_yaxes(type="log")
    return fig


batches = sorted({*(2**i for i in range(11)), sc.batch_size})
longest_prompt = max(model.max_context - sc.output_len, 1)  # the context rule: prompt + output fit
prompts = sorted(
    {*(2**i for i in range(7, int(np.log2(longest_prompt)) + 1)), min(sc.prompt_len, longest_prompt)}
)
dtypes = dict(weight_dtype=sc.weight_dtype, kv_dtype=sc.kv_dtype, activation_dtype=sc.activation_dtype)
dtypes |= sc.expert_formats
dtypes |= {"component_dtypes": sc.component_dtypes}
by_batch, by_prompt = [], []
for hw in devices:  # a device that cannot run the scenario says why, once, and the others go on
    if report is None and hw is primary:  # the headline above has said why already
        continue
    with ui.friendly_errors():
        by_batch.append(
            cm.sweep(
                model,
                hw,
                batch_size=batches,
                prompt_len=sc.prompt_len,
                output_len=sc.output_len,
                deployments=[deployment],
                **dtypes,
            )
        )
        by_prompt.append(
            cm.sweep(
                model,
                hw,
                batch_size=sc.batch_size,
                prompt_len=prompts,
                output_len=sc.output_len,
                deployments=[deployment],
                **dtypes,
            )
        )
if by_batch:
    st.subheader("Latency and throughput vs batch size")
    frame = pd.concat(by_batch, ignore_index=True)
    ui.chart(latency_figure(frame, "batch_size", "batch size"), frame, "latency-vs-batch")
    st.subheader("Latency and throughput vs prompt length")
    frame = pd.concat(by_prompt, ignore_index=True)
    ui.chart(latency_figure(frame, "prompt_len", "prompt tokens"), frame, "latency-vs-prompt")
    st.caption("× marks a point that does not fit in memory.")

# ---------------------------------------------------------------------------- roofline
if report is not None:
    st.subheader(f"Roofline on {primary.name}: the model's operators")
    ops = report.to_frame()
    placed = ops[(ops["flop"] > 0) & (ops["bytes"] > 0)].copy()
    intensity = np.logspace(-1, 5, 241)
    full = cm.Efficiency(matmul_fraction=1.0, memory_bandwidth_fraction=1.0, source="datasheet")
    roof = pd.DataFrame(
        {
            "intensity_flop_per_byte": intensity,
            "attainable_flop_per_s": attainable_flop_per_s(
                primary, intensity, activation_dtype=sc.activation_dtype
            ),
            "datasheet_flop_per_s": attainable_flop_per_s(
                primary, intensity, activation_dtype=sc.activation_dtype, efficiency=full
            ),
        }
    )
    ridge = ridge_point_flop_per_byte(primary, activation_dtype=sc.activation_dtype)
    fig = go.Figure()  # FLOP/s shown in TFLOP/s
    fig.add_scatter(
        x=roof["intensity_flop_per_byte"],
        y=roof["datasheet_flop_per_s"] / 1e12,
        name="datasheet roof",
        mode="lines",
        line=dict(dash="dot", color="grey"),
    )
    fig.add_scatter(
        x=roof["intensity_flop_per_byte"],
        y=roof["attainable_flop_per_s"] / 1e12,
        name="achievable roof",
        mode="lines",
        line=dict(color="black"),
    )
    for phase, group in placed.groupby("phase", sort=False):
        fig.add_scatter(
            x=group["intensity_flop_per_byte"],
            y=group["achieved_flop_per_s"] / 1e12,
            name=f"{phase} operators",
            mode="markers",
            marker=dict(size=8 + 30 * np.sqrt(group["time_fraction"]), opacity=0.8),
            text=group["op"],
            customdata=np.c_[group["bound"], 100 * group["time_fraction"]],
            hovertemplate="%{text}: %{x:.3g} FLOP/byte, %{y:.3g} TFLOP/s, %{customdata[0]} bound, "
            "%{customdata[1]:.1f}% of the phase<extra></extra>",
        )
    # the ridge as a trace: plotly places annotations on a log axis by log10(x), shapes by x
    fig.add_scatter(
        x=[ridge, ridge],
        y=[roof["attainable_flop_per_s"].min() / 1e12, roof["datasheet_flop_per_s"].max() / 1e12],
        mode="lines",
        line=dict(dash="dash", color="grey", width=1),
        name=f"ridge point: {ridge:,.0f} FLOP/byte",
    )
    fig.update_layout(
        xaxis=dict(type="log", title="arithmetic intensity [FLOP/byte]"),
        yaxis=dict(type="log", title="TFLOP/s"),
    )
    ui.chart(fig, placed, "roofline")
    st.caption(
        "Marker size: share of the phase's time. Elementwise operators run on the vector units, below the "
        "tensor-core roof; launch overhead pulls small operators under it."
    )
    st.subheader("Per-operator table")
    ui.dataframe(ops)
    st.download_button(
        "CSV",
        data=ops.to_csv(index=False),
        file_name="operators.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="csv-operators",
    )

# ---------------------------------------------------------------------------- hardware comparison
st.subheader("Devices by $ per million output tokens")
compare_all = st.toggle(
    "Compare every built-in device (off: only the selected ones)",
    value=ui.DEFAULT.compare_all,
    key="compare_all",
    bind="query-params",
)
rows = []
for name in cm.list_hardware() if compare_all else sc.hardware:
    row: dict[str, object] = {"hardware": name, "selected": name in sc.hardware}
    try:
        r = cm.estimate(model, ui.hardware_profile(sc.priced(name)), workload, deployment)
    except ui.BAD_INPUT as e:
        rows.append(row | {"error": str(e)})
        continue
    summary = r.summary()
    rows.append(
        row
        | {
            key: summary[key]
            for key in (
                "fits",
                "usd_per_million_output_tokens",
                "usd_per_million_input_tokens",
                "output_tokens_per_s",
                "ttft_s",
                "tpot_s",
                "usd_per_hour",
            )
        }
    )
costs = pd.DataFrame(rows)
priced = costs.dropna(subset=["usd_per_million_output_tokens"]).sort_values("usd_per_million_output_tokens")
fig = go.Figure()
fig.add_bar(
    y=priced["hardware"],
    x=priced["usd_per_million_output_tokens"],
    orientation="h",
    marker=dict(
        color=np.where(priced["fits"].astype(bool), "#2a9d8f", "#c0c0c0"),
        line=dict(color="black", width=np.where(priced["selected"], 2.5, 0)),
    ),
    text=[
        f"${v:,.3g}" + ("" if fits else " (does not fit)")
        for v, fits in zip(priced["usd_per_million_output_tokens"], priced["fits"], strict=True)
    ],
    textposition="auto",
)
fig.update_layout(
    xaxis=dict(title="$ per million output tokens", rangemode="tozero"),
    yaxis=dict(autorange="reversed"),
    height=max(300, 32 * len(priced) + 120),
)
ui.chart(fig, costs, "cost-by-device")
st.caption(
    "Grey: does not fit in memory at this deployment. Outlined: selected in the sidebar. Devices "
    "without a price, or that cannot run the scenario, are listed in the table."
)
