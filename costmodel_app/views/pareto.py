"""Pareto: output tokens/s per GPU against tokens/s per user over deployments (TP, PP, EP, weight format,
concurrency, aggregated or disaggregated) on each selected device, and the cheapest deployment that meets
mean TTFT and TPOT objectives (costmodel.pareto.frontier), for the engine's token budget per iteration."""

import json

import components as ui
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from scenario import MAX_USD_PER_HOUR

import costmodel as cm
from costmodel import pareto
from costmodel.loop_params import read_engine_params
from costmodel.token_budget import default_token_budget

TP_DEGREES = pareto.TP
PP_STAGES = pareto.PP
ATTENTION_DP = (1, 2, 4, 8)  # ranks the opt-in search tries, as `costmodel pareto --attention-dp 1,2,4,8`
ENGINES = tuple(sorted(read_engine_params())) or ("vllm",)
PRICE_HINT = "give each one a price per GPU-hour above the chart"
MAX_TOKEN_BUDGET = 1 << 20  # [tokens] per iteration: far past any engine's default (2,048 to 16,384)
FIGURES = (  # the table's columns, what to compare first
    "label",
    "concurrency",
    "gpus",
    "ttft_s",
    "tpot_s",
    "tokens_per_s_per_user",
    "output_tokens_per_s_per_gpu",
    "usd_per_million_output_tokens",
    "meets_slo",
    "best",
    "system",
    "mode",
    "format",
    "tp",
    "pp",
    "ep",
    "prefill_workers",
    "prefill_tp",
    "decode_workers",
    "batch_size",
    "output_tokens_per_s",
    "usd_per_hour",
    "usd_per_million_tokens",
)


@st.cache_data(show_spinner="Searching deployments…", max_entries=32)
def search(
    model_key: str,
    _model: cm.ModelProfile,
    hardware: tuple[str, ...],
    isl: int,
    osl: int,
    objectives: tuple[float, float],
    formats: tuple[str, ...],
    tps: tuple[int, ...],
    pps: tuple[int, ...],
    modes: tuple[str, ...],
    engine: str,
    kv_dtype: str,
    attention_dp: tuple[int, ...] = (1,),
    token_budget: int | None = None,
) -> pareto.Frontier:
    """pareto.frontier for these inputs (cached; ``_model`` is identified by ``model_key``, a device by
    its key with the user's price, ``name@price``: :meth:`Scenario.priced`, or the page's own price for a
    device without one)."""
    return pareto.frontier(
        _model,
        [ui.hardware_profile(key) for key in hardware],
        isl=isl,
        osl=osl,
        ttft_s=objectives[0],
        tpot_s=objectives[1],
        formats=formats,
        tp=tps,
        pp=pps,
        modes=modes,
        engine=engine,
        kv_dtype=kv_dtype,
        attention_dp=attention_dp,
        token_budget=token_budget,
    )


# ---------------------------------------------------------------------------- inputs
sc = ui.scenario()
st.title("Pareto frontier")
cols = st.columns(5)
with cols[0]:
    ttft_ms = st.number_input(
        "Mean TTFT objective [ms]",
        min_value=1.0,
        max_value=1e6,
        value=1000.0,
        step=100.0,
        key="pareto_ttft_ms",
        bind="query-params",
    )
with cols[1]:
    tpot_ms = st.number_input(
        "Mean TPOT objective [ms]",
        min_value=0.1,
        max_value=1e5,
        value=50.0,
        step=5.0,
        key="pareto_tpot_ms",
        bind="query-params",
        help="Tokens/s per user = 1 / TPOT: the objective is a vertical line on the chart.",
    )
with cols[2]:
    engine = st.selectbox(
        "Engine",
        ENGINES,
        index=ENGINES.index("vllm") if "vllm" in ENGINES else 0,
        key="pareto_engine",
        bind="query-params",
        help="Whose fitted closed-loop parameters (step and request overheads, burst share) and kernels "
        "(its calibrated kernels, the MoE kernels it runs, its all-reduce rule) apply.",
    )
with cols[3]:
    token_budget = st.number_input(
        "Token budget [tokens]",
        min_value=1,
        max_value=MAX_TOKEN_BUDGET,
        value=None,
        step=1024,
        placeholder="the engine's default",
        key="pareto_token_budget",
        bind="query-params",
        help="The engine's chunked-prefill token budget per iteration, the value it is launched with "
        "(vLLM's `max_num_batched_tokens`, TensorRT-LLM's `max_num_tokens`, SGLang's "
        "`chunked_prefill_size`). With attention DP, vLLM and TensorRT-LLM give each rank the whole "
        "value and SGLang divides it among a worker's ranks. A smaller budget splits a long prompt over "
        "more iterations. Raised to a point's clients per worker where they are more (each point's "
        "workers are launched for its own clients); as `costmodel pareto --token-budget`. Empty: each "
        "engine's own default on each device (vLLM 8,192 on GPUs of 70 GiB or more but A100, else 2,048; "
        "SGLang 2,048 / 4,096 / 8,192 / 16,384 by device memory; TensorRT-LLM 8,192).",
    )
with cols[4]:
    modes = st.pills(
        "Modes",
        pareto.MODES,
        selection_mode="multi",
        default=list(pareto.MODES),
        key="pareto_modes",
        bind="query-params",
        help="agg: prefill and decode on the same workers; disagg: x prefill : y decode workers.",
    )
cols = st.columns([3, 2, 1])
with cols[0]:
    formats = st.pills(
        "Weight formats",
        tuple(pareto.FORMATS),
        selection_mode="multi",
        default=["bf16", "fp8"],
        key="pareto_formats",
        bind="query-params",
        help="A device without the format's compute peak skips it (listed below).",
    )
with cols[1]:
    tps = st.pills(
        "TP degrees", TP_DEGREES, selection_mode="multi", default=list(TP_DEGREES), key="pareto_tp",
        bind="query-params",
    )  # fmt: skip
with cols[2]:
    pps = st.pills(
        "PP stages", PP_STAGES, selection_mode="multi", default=list(PP_STAGES), key="pareto_pp",
        bind="query-params",
    )  # fmt: skip

# one price per selected device that has none (its profile has no price, and the sidebar's own price, which
# is the first device's, does not give it one), as `costmodel pareto --usd-per-hour gb300=5,h20=2`
no_price = [hw for hw in sc.hardware if ui.hardware_profile(sc.priced(hw)).price is None]
own_prices: dict[str, float] = {}
if no_price:
    cols = st.columns(min(len(no_price), 4))
    for k, hw in enumerate(no_price):
        with cols[k % len(cols)]:
            own_prices[hw] = st.number_input(
                f"$ per GPU-hour for {hw} (0: none)",
                min_value=0.0,
                max_value=MAX_USD_PER_HOUR,
                value=0.0,
                step=0.1,
                format="%.2f",
                key=f"pareto_usd_per_hour_{hw}",
                bind="query-params",
                help=f"{hw}'s profile has no price per GPU-hour: give yours, or its deployments are shown "
                "but not ranked by cost. As `costmodel pareto --usd-per-hour` (one price per device).",
            )
priced = tuple(
    f"{hw}@{own_prices[hw]!r}" if own_prices.get(hw, 0.0) > 0 else sc.priced(hw) for hw in sc.hardware
)

# ---------------------------------------------------------------------------- guard
try:
    model = ui.model(sc)
except ui.BAD_INPUT as e:
    ui.show_error(e)
    st.stop()
search_attention_dp = st.checkbox(
    "Search attention data parallelism",
    key="pareto_attention_dp",
    bind="query-params",
    disabled=model.moe is None,
    help="MoE models: also try 2, 4 and 8 attention-DP ranks per worker, as costmodel pareto "
    "--attention-dp 1,2,4,8 (a slower search).",
)
attention_dp = ATTENTION_DP if search_attention_dp and model.moe is not None else (1,)
missing = [name for name, chosen in (("mode", modes), ("format", formats), ("TP degree", tps),
                                     ("PP stage", pps)) if not chosen]  # fmt: skip
if missing:
    st.info(f"Choose at least one {' and one '.join(missing)} to search.")
    st.stop()
model_key = sc.model if sc.model_source == "built-in" else json.dumps(sc.hf_config, sort_keys=True)
objective = f"mean TTFT ≤ {ui.number(ttft_ms)} ms and mean TPOT ≤ {ui.number(tpot_ms)} ms"
if token_budget is None:  # each engine's own default on each device, as pareto.frontier launches it
    try:
        defaults = {
            hw: default_token_budget(engine, ui.hardware_profile(key))
            for hw, key in zip(sc.hardware, priced, strict=True)
        }
    except ui.BAD_INPUT as e:  # a TPU or CPU: no engine default known, the box must hold one
        ui.show_error(e)
        st.info("Give the launch value in the Token budget [tokens] box.")
        st.stop()
    budget = (
        "the engine's default token budget per iteration ("
        + ", ".join(f"{hw} {value:,}" for hw, value in defaults.items())
        + " tokens)"
    )
    smallest = min(defaults.values())
else:
    budget = f"a token budget of {token_budget:,} tokens per iteration"
    smallest = int(token_budget)
if smallest < max(pareto.CONCURRENCY):
    budget += " (raised to a point's clients per worker where they are more)"
osl = max(sc.output_len, 2)  # pareto.frontier needs a second output token: TPOT is the time between two
st.caption(
    f"**{ui.plain(model.name)}** on {', '.join(sc.hardware)} · {sc.prompt_len:,} prompt and "
    f"{osl:,} output tokens per request{' (at least 2: TPOT needs two)' if osl > sc.output_len else ''} · "
    f"KV {sc.kv_dtype} · {engine} loop parameters and kernels, {budget} · "
    f"{objective}. A closed loop of clients sending one request after another (costmodel.closed_loop); the "
    f"search chooses formats, TP, PP, EP{', attention DP' if len(attention_dp) > 1 else ''} and the "
    "concurrency: the sidebar's weight, attention, routed-expert and activation formats, TP, PP, replicas, "
    "attention DP, MoE TP and EP and batch size are not used here (its KV format is)."
)

# ---------------------------------------------------------------------------- compute
try:
    found = search(
        model_key,
        model,
        priced,
        sc.prompt_len,
        osl,
        (ttft_ms / 1e3, tpot_ms / 1e3),
        tuple(formats),
        tuple(sorted(tps)),
        tuple(sorted(pps)),
        tuple(m for m in pareto.MODES if m in modes),
        engine,
        sc.kv_dtype,
        attention_dp,
        None if token_budget is None else int(token_budget),
    )
except ui.BAD_INPUT as e:
    ui.show_error(e)
    st.stop()
table = found.table()
front = table.iloc[found.frontier_index].reset_index(drop=True)

# ---------------------------------------------------------------------------- render: the chosen point
unpriced = sorted(set(table.loc[table["meets_slo"] & table["usd_per_hour"].isna(), "system"]))
if found.best is None and unpriced:  # deployments meet the objectives, but without a price none is cheapest
    st.warning(
        f"Deployments on {', '.join(unpriced)} meet {objective}, but "
        f"{'it has' if len(unpriced) == 1 else 'they have'} no price per GPU-hour to rank them by: "
        f"{PRICE_HINT}."
    )
elif found.best is None:
    st.warning(
        f"No deployment meets {objective}: the frontier below shows what each device reaches. "
        "Relax the objectives, or add devices, formats or TP degrees."
    )
else:
    best = table.iloc[found.best]
    source = "pareto.frontier(...).points"
    usd, per_gpu = "usd_per_million_output_tokens", "output_tokens_per_s_per_gpu"
    figures = [
        ("Cheapest device", str(best["system"]), "system"),
        ("Concurrency", ui.count(best["concurrency"]), "concurrency"),
        ("GPUs", ui.count(best["gpus"]), "gpus"),
        ("$ per million output tokens", ui.usd(best[usd]), usd),
        ("Mean TTFT", ui.duration(best["ttft_s"]), "ttft_s"),
        ("Mean TPOT", ui.duration(best["tpot_s"]), "tpot_s"),
        ("Tokens/s per user", ui.rate(best["tokens_per_s_per_user"]), "tokens_per_s_per_user"),
        ("Output tokens/s per GPU", ui.rate(best[per_gpu]), per_gpu),
    ]
    st.markdown(
        f"Cheapest deployment meeting {objective}: **{ui.plain(best['label'])}** at {best['concurrency']:,} "
        f"clients on {best['gpus']:,} GPU{'s' if best['gpus'] > 1 else ''}"
        + (
            f" ({best['prefill_workers']} prefill and {best['decode_workers']} decode workers)"
            if best["mode"] == "disagg"
            else ""
        )
        + "."
    )
    for start in (0, 4):
        for col, (label, value, attr) in zip(st.columns(4), figures[start : start + 4], strict=True):
            with col:
                ui.metric(label, value, f"{source}.{attr}")
    if unpriced:
        st.caption(
            f"Not ranked for want of a price per GPU-hour, though some of their deployments meet the "
            f"objectives: {', '.join(unpriced)}; {PRICE_HINT}."
        )

# ---------------------------------------------------------------------------- render: the frontier
st.subheader("Output tokens/s per GPU against tokens/s per user")
absent = [system for system in sc.hardware if system not in set(table["system"])]
if absent:  # every candidate of these devices was skipped: no curve, so say why here, not only below
    st.info(
        f"No deployment on {', '.join(absent)} could be evaluated with these choices, so "
        f"{'it has' if len(absent) == 1 else 'they have'} no frontier: the candidates skipped, under the "
        "chart, give each reason.",
        icon=":material/block:",
    )
fig = go.Figure()
hover = (
    "<b>%{customdata[0]}</b><br>%{customdata[1]}<br>"
    "TTFT %{customdata[2]}, TPOT %{customdata[3]}<br>"
    "%{x:,.1f} tokens/s per user, %{y:,.0f} output tokens/s per GPU<br>"
    "%{customdata[4]}<br>%{customdata[5]}<extra></extra>"
)


def verdict(ttft_s: float, tpot_s: float) -> str:
    """Which objectives a point meets (the API's test: TTFT <= its objective and TPOT <= its)."""
    missed = [name for name, value, goal in (("TTFT", ttft_s, ttft_ms), ("TPOT", tpot_s, tpot_ms))
              if not value <= goal / 1e3]  # fmt: skip
    return (
        "meets both objectives"
        if not missed
        else f"misses the {' and '.join(missed)} objective{'s' * (len(missed) > 1)}"
    )


def customdata(rows: pd.DataFrame) -> np.ndarray:
    """The hover's text per point: label, clients and GPUs, TTFT, TPOT, cost (no price: said so), and the
    objectives it meets (a frontier point right of the TPOT line may still miss the TTFT objective)."""
    return np.array(
        [
            [
                str(row.label),
                f"{row.concurrency:,} clients on {row.gpus:,} GPU{'s' if row.gpus > 1 else ''}",
                ui.duration(row.ttft_s),
                ui.duration(row.tpot_s),
                f"{ui.usd(row.usd_per_million_output_tokens)} per million output tokens"
                if row.usd_per_million_output_tokens == row.usd_per_million_output_tokens  # not NaN
                else f"no price for {row.system}: give one above the chart",
                verdict(row.ttft_s, row.tpot_s),
            ]
            for row in rows.itertuples()
        ],
        dtype=object,
    ).reshape(len(rows), 6)


for system in sc.hardware:
    color = ui.device_colour(sc, system)
    mine = front[front["system"] == system]
    if mine.empty:
        continue
    fig.add_scatter(
        x=mine["tokens_per_s_per_user"],
        y=mine["output_tokens_per_s_per_gpu"],
        name=system,
        mode="lines+markers",
        line=dict(color=color, shape="vh"),  # the staircase of what is attainable: right of a point, the next
        marker=dict(color=color, symbol=np.where(mine["mode"] == "disagg", "diamond", "circle")),
        customdata=customdata(mine),
        hovertemplate=hover,
    )
    rest = table[(table["system"] == system) & ~table["on_frontier"]]
    fig.add_scatter(
        x=rest["tokens_per_s_per_user"],
        y=rest["output_tokens_per_s_per_gpu"],
        name=f"{system}: other points",
        mode="markers",
        marker=dict(color=color, size=4, opacity=0.25),
        customdata=customdata(rest),
        hovertemplate=hover,
        visible="legendonly",
    )
fig.add_scatter(
    x=[1e3 / tpot_ms] * 2,
    y=[0.0, float(table["output_tokens_per_s_per_gpu"].max())],
    name="TPOT objective",
    mode="lines",
    line=dict(dash="dash", color="#555555"),  # grey: no device's colour (ui.DEVICE_COLOURS has reds)
    hoverinfo="skip",
)
if found.best is not None:
    best = table.iloc[found.best]
    fig.add_scatter(
        x=[best["tokens_per_s_per_user"]],
        y=[best["output_tokens_per_s_per_gpu"]],
        name="cheapest meeting the objectives",
        mode="markers",
        marker=dict(symbol="star", size=16, color="black"),
        customdata=customdata(table.iloc[[found.best]]),
        hovertemplate=hover,
    )
fig.update_xaxes(title_text="tokens/s per user (1 / TPOT)", type="log")
fig.update_yaxes(title_text="output tokens/s per GPU", rangemode="tozero")
fig.update_layout(height=520)
shown = (
    front
    if found.best is None or table["on_frontier"].iloc[found.best]
    else pd.concat([front, table.iloc[[found.best]]], ignore_index=True)
)  # the star's row too, where a TTFT objective keeps it off the frontier
ui.chart(fig, shown[list(FIGURES)], "pareto-frontier")
st.caption(
    "Per device, the deployments that no other deployment on the same device beats on both axes "
    "(diamonds: disaggregated); hover for the configuration. Right of the dashed line TPOT meets its "
    "objective; the star is the cheapest point meeting both objectives, by $ per million output tokens = "
    "price per GPU-hour × GPUs / output tokens per hour. Click a legend entry to show the other points "
    "searched. Latencies are means of a steady closed loop, not percentiles."
)
if found.skipped:
    n = len(found.skipped)
    with st.expander(
        f"{n:,} candidate{'s' if n > 1 else ''} skipped, with the reason", icon=":material/block:"
    ):
        ui.dataframe(pd.DataFrame(found.skipped, columns=["candidate", "reason"]))
