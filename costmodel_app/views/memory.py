"""Memory: what each device of one replica holds against its memory, the largest batch and context that
fit, and the memory of training with ZeRO, LoRA and QLoRA. Every number comes from costmodel.memory (the
per-device model that costmodel.size and costmodel.estimate report)."""

import components as ui
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import published
import streamlit as st

import costmodel as cm

# ---------------------------------------------------------------------------- inputs
sc = ui.scenario()
st.title("Memory")

# ---------------------------------------------------------------------------- guard
try:
    model = ui.model(sc)
    devices = ui.hardware(sc)
    ui.deployment(sc, model)  # memory is per device: the split must be possible
except ui.BAD_INPUT as e:
    ui.show_error(e)
    st.stop()
st.caption(ui.describe(sc, model.name))
gpus = sc.gpus_per_replica  # one replica
context = sc.prompt_len + sc.output_len


def device_fit(hw: cm.HardwareProfile, batch_size: int, context_len: object) -> cm.memory.FitReport:
    """costmodel.fit for this scenario's replica on ``hw``."""
    return cm.fit(
        model,
        hw,
        batch_size=batch_size,
        context_len=context_len,
        prompt_len=np.minimum(sc.prompt_len, context_len),
        tp=sc.tp,
        pp=sc.pp,
        attention_dp=sc.attention_dp,
        weight_dtype=sc.weight_dtype,
        kv_dtype=sc.kv_dtype,
        activation_dtype=sc.activation_dtype,
        expert_dtype=sc.expert_formats["expert_dtype"],
        component_dtypes=sc.component_dtypes,
    )


# ---------------------------------------------------------------------------- compute: serving
fits = {hw.name: device_fit(hw, sc.batch_size, context) for hw in devices}
primary = devices[0]
f = fits[primary.name]
bars = pd.DataFrame(
    [
        {
            "hardware": hw.name,
            "gpus": gpus,
            "weight_bytes_per_gpu": r.weight_bytes_per_gpu,
            "kv_cache_bytes_per_gpu": float(r.kv_cache_bytes_per_gpu),
            "activation_bytes_per_gpu": float(r.activation_bytes_per_gpu),
            "reserved_bytes_per_gpu": hw.memory_bytes - r.capacity_bytes_per_gpu,
            "memory_bytes_per_gpu": float(r.memory_bytes_per_gpu),
            "capacity_bytes_per_gpu": r.capacity_bytes_per_gpu,
            "device_memory_bytes": hw.memory_bytes,
            "fits": bool(r.fits),
            "max_batch_size": int(r.max_batch_size),
            "max_context_len": int(r.max_context_len),
        }
        for hw, r in ((hw, fits[hw.name]) for hw in devices)
    ]
)
contexts = np.unique(
    np.r_[2 ** np.arange(8, int(np.log2(model.max_context)) + 1), model.max_context, context]
)
limits = pd.concat(
    [
        pd.DataFrame(
            {
                "hardware": hw.name,
                "context_len": contexts,
                "max_batch_size": device_fit(hw, 1, contexts).max_batch_size,
            }
        )
        for hw in devices
    ],
    ignore_index=True,
)

# ---------------------------------------------------------------------------- render: serving
adp = f", attention DP {sc.attention_dp}" if sc.attention_dp > 1 else ""
where = f"{gpus} × {primary.name}" + (f" (TP {sc.tp}{adp}, PP {sc.pp})" if gpus > 1 else "")
need, usable = ui.gb(float(f.memory_bytes_per_gpu)), ui.gb(f.capacity_bytes_per_gpu)
if bool(f.fits):
    st.success(f"Fits on {where}: {need} of {usable} usable per GPU.")
elif int(f.max_batch_size) == 0:
    st.warning(
        f"Does not fit on {where}: the weights and activations alone need more than the "
        f"{usable} usable per GPU. Try more GPUs (TP/PP), a smaller weight format, or a larger device."
    )
else:
    st.warning(
        f"Does not fit on {where}: needs {need} per GPU, {usable} usable. The largest batch at this "
        f"context is {int(f.max_batch_size):,}; the longest context at this batch is "
        f"{int(f.max_context_len):,} tokens."
    )
source = "costmodel.fit(...)"
cols = st.columns(4)
with cols[0]:
    ui.metric(
        f"Weights per GPU ({sc.weight_dtype})",
        ui.gb(f.weight_bytes_per_gpu),
        f"{source}.weight_bytes_per_gpu",
    )
with cols[1]:
    ui.metric(
        f"KV cache per GPU ({sc.kv_dtype})",
        ui.gb(float(f.kv_cache_bytes_per_gpu)),
        f"{source}.kv_cache_bytes_per_gpu",
    )
with cols[2]:
    ui.metric(
        "Activations per GPU", ui.gb(float(f.activation_bytes_per_gpu)), f"{source}.activation_bytes_per_gpu"
    )
with cols[3]:
    ui.metric("Memory per GPU", need, f"{source}.memory_bytes_per_gpu")
cols = st.columns(4)
with cols[0]:
    ui.metric("Usable per GPU (90%)", usable, f"{source}.capacity_bytes_per_gpu")
with cols[1]:
    ui.metric("Largest batch at this context", ui.count(f.max_batch_size), f"{source}.max_batch_size")
with cols[2]:
    ui.metric("Longest context at this batch", ui.count(f.max_context_len), f"{source}.max_context_len")
with cols[3]:
    params = cm.param_count(model).total
    st.metric(
        "Parameters",
        f"{params / 1e9:,.3f} B",
        help=f"{params:,} (`costmodel.param_count(model).total`)",
        border=True,
    )
st.caption(
    "Per GPU of one replica: weights over TP × PP, KV heads over min(TP, KV heads) and replicated beyond, "
    "layers over PP; activations of one prefill chunk of the prompt (at most 8,192 tokens) over TP. With "
    "attention DP, the routed experts spread over TP × attention DP GPUs and each rank holds the KV cache "
    "of its share of the batch."
)

left, right = st.columns(2)
with left:
    st.subheader("What each GPU holds")
    fig = go.Figure()
    for column, name in (
        ("weight_bytes_per_gpu", "weights"),
        ("kv_cache_bytes_per_gpu", "KV cache"),
        ("activation_bytes_per_gpu", "activations"),
        ("reserved_bytes_per_gpu", "reserved (10%)"),
    ):
        fig.add_bar(
            x=bars["hardware"], y=bars[column] / 1e9, name=name, marker_color=ui.COMPONENT_COLOURS[name]
        )
    fig.add_scatter(
        x=bars["hardware"],
        y=bars["device_memory_bytes"] / 1e9,
        mode="markers",
        marker=dict(symbol="line-ew-open", size=60, color="black", line=dict(width=3, color="black")),
        name="device memory",
    )
    fig.update_layout(barmode="stack", yaxis_title="GB per GPU")
    ui.chart(fig, bars, "memory-breakdown")
with right:
    st.subheader("Largest batch that fits, by context")
    fig = go.Figure()
    for name, group in limits.groupby("hardware", sort=False):
        colour = ui.device_colour(sc, str(name))
        fig.add_scatter(
            x=group["context_len"],
            y=group["max_batch_size"],
            name=str(name),
            mode="lines+markers",
            line=dict(color=colour),
            marker=dict(color=colour),
        )
    fig.add_scatter(
        x=[context],
        y=[sc.batch_size],
        mode="markers",
        marker=dict(symbol="star", size=14, color="black"),
        name="this scenario",
    )
    fig.update_layout(xaxis=dict(type="log", title="context [tokens]"), yaxis=dict(type="log", title="batch"))
    ui.chart(fig, limits, "max-batch-by-context")

# ---------------------------------------------------------------------------- published figures
st.header("Published checkpoints and deployments")
st.caption(
    "costmodel's figures for published checkpoints and for the weights each GPU of a real deployment "
    "loads, next to the published figure and its source (costmodel_app/published.py; the same tables "
    "are in docs/models.md). These do not depend on the scenario above."
)
link = {"source": st.column_config.LinkColumn("Source")}
st.subheader("Checkpoint sizes")
st.caption(
    "Published: the safetensors index's total_size (every stored tensor, headers excluded). costmodel: "
    "costmodel.memory.checkpoint_bytes(model, checkpoint), every scale counted, plus what the repository "
    "stores beyond the model that serves tokens (DeepSeek-V3's multi-token-prediction module)."
)
ui.dataframe(published.checkpoint_table(), **link)
st.subheader("Weights per GPU of real deployments")
st.caption(
    "Published: what the engine logged for one device. costmodel: costmodel.memory.replica_memory(...)"
    ".weight_bytes for the same checkpoint and tensor-parallel split."
)
ui.dataframe(published.deployment_table(), **link)
with st.expander("Every built-in model's published checkpoints and their formats"):
    ui.dataframe(published.shipped_table(), **link)

# ---------------------------------------------------------------------------- training: inputs
st.header("Training memory")
st.caption(
    "Mixed-precision Adam per GPU (costmodel.training_memory): ZeRO partitions across all "
    f"{sc.n_gpus} GPU(s) of the scenario; activations of one micro-batch, no tensor parallelism."
)
cols = st.columns(5)
with cols[0]:
    zero_stage = ui.select("ZeRO stage", "zero_stage", [0, 1, 2, 3])
with cols[1]:
    recompute = ui.select("Recomputation", "recompute", ["none", "selective", "full"])
with cols[2]:
    lora_rank = ui.integer("LoRA rank", "lora_rank")
with cols[3]:
    micro_batch = ui.integer("Micro-batch per GPU", "train_micro_batch")
with cols[4]:
    seq_len = ui.integer("Sequence length", "train_seq_len")

# ---------------------------------------------------------------------------- training: compute
methods = {"full": "full", "lora": f"LoRA r={lora_rank}", "qlora": f"QLoRA r={lora_rank}"}
try:  # a LoRA rank above the hidden size or a sequence past the context: the library's error
    train = pd.DataFrame(
        [
            {
                "method": label,
                "weights_bytes": float(t.weights),
                "gradients_bytes": float(t.gradients),
                "optimizer_bytes": float(t.optimizer),
                "activation_bytes": float(t.activations),
                "total_bytes": float(t.total),
                "trainable_params": t.trainable_params,
            }
            for label, t in (
                (
                    label,
                    cm.training_memory(
                        model,
                        batch_size=micro_batch,
                        seq_len=seq_len,
                        method=method,
                        n_gpus=sc.n_gpus,
                        zero_stage=zero_stage,
                        recompute=recompute,
                        lora_rank=lora_rank,
                    ),
                )
                for method, label in methods.items()
            )
        ]
    )
except ui.BAD_INPUT as e:
    ui.show_error(e)
    st.stop()

# ---------------------------------------------------------------------------- training: render
cols = st.columns(3)
for col, row in zip(cols, train.itertuples(), strict=True):
    with col:
        ui.metric(f"{row.method} per GPU", ui.gb(row.total_bytes), "costmodel.training_memory(...).total")
        st.caption(f"{row.trainable_params:,} trainable parameters")
fig = go.Figure()
for column, name in (
    ("weights_bytes", "weights"),
    ("gradients_bytes", "gradients"),
    ("optimizer_bytes", "optimizer state"),
    ("activation_bytes", "activations"),
):
    fig.add_bar(x=train["method"], y=train[column] / 1e9, name=name, marker_color=ui.COMPONENT_COLOURS[name])
# each device's memory as a line named in the legend (labels on the chart overlapped the bars and each
# other); devices with the same memory share one line
same_memory: dict[int, list[str]] = {}
for hw in devices:
    same_memory.setdefault(hw.memory_bytes, []).append(hw.name)
for memory_bytes, names in same_memory.items():
    line = dict(dash="dash", color=ui.device_colour(sc, names[0]), width=2)
    fig.add_hline(y=memory_bytes / 1e9, line=line)  # across the whole chart
    fig.add_scatter(  # its legend entry
        x=[None], y=[None], mode="lines", line=line, name=f"{', '.join(names)} memory ({ui.gb(memory_bytes)})"
    )
fig.update_layout(barmode="stack", yaxis_title="GB per GPU")
ui.chart(fig, train, "training-memory")
