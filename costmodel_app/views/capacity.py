"""Capacity planning: the fewest replicas (device x tensor-parallel degree x batch limit) that meet p99
latency objectives at a request rate, ranked by cost (costmodel.capacity.plan), and p99 TTFT and TPOT
against the load on one replica (costmodel.capacity.analyze)."""

import inspect
import json

import components as ui
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots
from scenario import attention_component_dtypes

import costmodel as cm
from costmodel import capacity
from costmodel.errors import CostmodelError
from costmodel.loop_params import read_engine_params
from costmodel.serving import Lengths, Traffic

ENGINES = (*sorted(read_engine_params()), "none")  # "none": the kernels alone
KINDS = ("fixed", "geometric", "lognormal")
TP_DEGREES = (1, 2, 4, 8)
QUANTILE = 0.99  # the SLOs are p99
PLAN_SAMPLES = (
    capacity.PLAN_SAMPLES
)  # plan()'s quadrature points: the curves use the same, so they pass through its rows
COLUMNS = (  # plan()'s columns at QUANTILE, what to compare first; infeasible rows lack the numbers
    "feasible",
    "reason",
    "replicas",
    "gpus",
    "max_batch_size",
    "utilization",
    "ttft_p99_s",
    "ttft_p99_error_s",
    "tpot_p99_s",
    "tpot_p99_error_s",
    "confirmed_by_simulation",
    "validity",
    "usd_per_hour",
    "usd_per_million_tokens",
    "usd_per_million_output_tokens",
    "hardware",
    "tp",
    "gpus_per_replica",
    "batch_limit_in_force",
    "rate_per_replica_per_s",
    "max_rate_per_replica_per_s",
    "mean_batch_size",
    "ttft_p50_s",
    "e2e_p99_s",
    "kv_safe_batch_size",
    "sim_ttft_p99_s",
    "sim_tpot_p99_s",
)
MAX_UTILIZATION = inspect.signature(capacity.plan).parameters["max_utilization"].default
TrafficSpec = tuple[float, tuple[str, int, float], tuple[str, int, float], int]


def lengths(kind: str, mean: int, sigma: float, cap: int) -> Lengths:
    """A length distribution with this mean; the tail beyond ``cap`` (the model's context) is lumped on
    it, as an engine's max-tokens limit does."""
    if kind == "fixed":
        return Lengths.fixed(mean)
    if kind == "geometric":
        return Lengths.geometric(mean, max_tokens=cap)
    return Lengths.lognormal(mean, sigma, max_tokens=cap)


def traffic(spec: TrafficSpec) -> Traffic:
    rate, prompt, output, cap = spec
    return Traffic(rate, lengths(*prompt, cap), lengths(*output, cap))


@st.cache_data(show_spinner=False, max_entries=512)
def plan_candidate(
    model_key: str,
    _model: cm.ModelProfile,
    hardware: str,
    tps: tuple[int, ...],
    spec: TrafficSpec,
    slo: tuple[float, float],
    dtypes: tuple[str, str, str, str, str, str],
    engine: str = "vllm",
) -> list[dict[str, object]]:
    """capacity.plan for one device at the TP degrees ``tps``, in one call (the quadrature is built once
    for all of them); cached by its inputs (``_model`` is identified by ``model_key``). A device the
    planner cannot evaluate gives infeasible rows with costmodel's message as the reason, so one device
    without (say) a price does not take the others down (plan() itself turns a TP degree it cannot run
    into such a row)."""
    weight_dtype, kv_dtype, activation_dtype, expert_dtype, expert_activation_dtype, attention_dtype = dtypes
    try:
        frame = capacity.plan(
            _model,
            [ui.hardware_profile(hardware)],
            traffic(spec),
            capacity.SLO(ttft_s=slo[0], tpot_s=slo[1], quantile=QUANTILE),
            tp=list(tps),
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            activation_dtype=activation_dtype,
            expert_dtype=expert_dtype or None,
            expert_activation_dtype=expert_activation_dtype or None,
            component_dtypes=attention_component_dtypes(attention_dtype, weight_dtype),
            engine=None if engine == "none" else engine,
        )
    except ui.BAD_INPUT as e:
        name = hardware.partition("@")[0]  # the key may carry the user's price (Scenario.priced)
        return [
            {"hardware": name, "tp": tp, "gpus_per_replica": tp, "feasible": False, "reason": str(e)}
            for tp in tps
        ]
    return frame.to_dict("records")


@st.cache_data(show_spinner=False, max_entries=64)
def load_curve(
    model_key: str,
    _model: cm.ModelProfile,
    hardware: str,
    tp: int,
    batch_limit: int,
    rate_per_replica: float,
    spec: TrafficSpec,
    dtypes: tuple[str, str, str, str, str, str],
    saturation: float | None = None,
    engine: str = "vllm",
) -> tuple[pd.DataFrame, float]:
    """capacity.analyze of one replica, built as plan() builds it, from 2 % to 125 % of its saturation
    rate (and at ``rate_per_replica``); and that saturation rate (``saturation``: already known from the
    plan's row, else computed). Unstable rates have no latency."""
    weight_dtype, kv_dtype, activation_dtype, expert_dtype, expert_activation_dtype, attention_dtype = dtypes
    replica = capacity.candidate_engine(
        _model,
        ui.hardware_profile(hardware),
        engine=None if engine == "none" else engine,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        activation_dtype=activation_dtype,
        expert_dtype=expert_dtype or None,
        expert_activation_dtype=expert_activation_dtype or None,
        component_dtypes=attention_component_dtypes(attention_dtype, weight_dtype),
        tp=tp,
    )
    load = traffic(spec)
    if saturation is None:
        probe = capacity.analyze(replica, load, rate_per_s=1.0, max_batch_size=batch_limit, samples=64)
        saturation = float(probe.max_rate_per_s)
        if probe.kv_max_sequences < 1 or not saturation > 0:
            raise CostmodelError("the weights leave no room for a KV cache")
    rates = np.unique(np.r_[np.linspace(0.02, 1.25, 50) * saturation, rate_per_replica])
    m = capacity.analyze(
        replica,
        load,
        rate_per_s=rates,
        max_batch_size=batch_limit,
        quantiles=(0.5, QUANTILE),  # the two the curves draw
        samples=PLAN_SAMPLES,
    )
    stable = np.asarray(m.stable)

    def latency(metric: str, q: float) -> np.ndarray:  # inf where unstable: no number to show
        return np.where(stable, m.quantile(metric, q), np.nan)

    frame = pd.DataFrame(
        {
            "hardware": hardware,
            "tp": tp,
            "max_batch_size": batch_limit,
            "rate_per_replica_per_s": rates,
            "utilization": m.utilization,
            "load": np.where(stable, "stable", "unstable"),
            "stable": stable,
            "ttft_p50_s": latency("ttft", 0.5),
            "ttft_p99_s": latency("ttft", QUANTILE),
            "tpot_p50_s": latency("tpot", 0.5),
            "tpot_p99_s": latency("tpot", QUANTILE),
            "mean_batch_size": m.mean_batch_size,
            "output_tokens_per_s": m.output_tokens_per_s,
        }
    )
    return frame, saturation


def latency_or_unstable(seconds: float) -> str:
    return "unstable" if seconds != seconds else ui.duration(seconds)  # NaN: no finite latency


# ---------------------------------------------------------------------------- inputs
sc = ui.scenario()
st.title("Capacity planning")
cols = st.columns(5)
with cols[0]:
    rate = st.number_input(
        "Requests per second (total)",
        min_value=0.001,
        max_value=1e6,
        value=10.0,
        step=1.0,
        key="rate_per_s",
        bind="query-params",
        help="Poisson arrivals, split evenly over the replicas.",
    )
with cols[1]:
    ttft_slo_ms = st.number_input(
        "p99 TTFT objective [ms]",
        min_value=0.1,
        max_value=1e7,
        value=500.0,
        step=50.0,
        key="ttft_slo_ms",
        bind="query-params",
    )
with cols[2]:
    tpot_slo_ms = st.number_input(
        "p99 TPOT objective [ms]",
        min_value=0.1,
        max_value=1e6,
        value=50.0,
        step=5.0,
        key="tpot_slo_ms",
        bind="query-params",
        help="Per request: its mean time per output token.",
    )
with cols[3]:
    tps = st.pills(
        "Tensor-parallel degrees to try",
        TP_DEGREES,
        selection_mode="multi",
        default=list(TP_DEGREES),
        key="tp_degrees",
        bind="query-params",
    )
with cols[4]:
    engine = st.selectbox(
        "Engine",
        ENGINES,
        index=ENGINES.index("vllm") if "vllm" in ENGINES else 0,
        key="capacity_engine",
        bind="query-params",
        help="Whose fitted costs beyond the kernels each iteration and first token pay (host time per "
        "iteration, per layer of an eager prompt iteration, per first token) and whose kernels time the "
        "passes, as on the Pareto page; none: the kernels alone. As `costmodel plan --engine`.",
    )
cols = st.columns(4)
with cols[0]:
    prompt_kind = st.selectbox(
        "Prompt lengths",
        KINDS,
        index=KINDS.index("lognormal"),
        key="prompt_kind",
        bind="query-params",
        help="Mean: the sidebar's prompt tokens.",
    )
with cols[1]:
    prompt_sigma = st.number_input(
        "Prompt σ (lognormal)",
        min_value=0.05,
        max_value=3.0,
        value=0.8,
        step=0.1,
        key="prompt_sigma",
        bind="query-params",
        disabled=prompt_kind != "lognormal",
        help="Standard deviation of the logarithm of the length.",
    )
with cols[2]:
    output_kind = st.selectbox(
        "Output lengths",
        KINDS,
        index=KINDS.index("geometric"),
        key="output_kind",
        bind="query-params",
        help="Mean: the sidebar's output tokens.",
    )
with cols[3]:
    output_sigma = st.number_input(
        "Output σ (lognormal)",
        min_value=0.05,
        max_value=3.0,
        value=1.0,
        step=0.1,
        key="output_sigma",
        bind="query-params",
        disabled=output_kind != "lognormal",
    )

# ---------------------------------------------------------------------------- guard
try:
    model = ui.model(sc)  # mean prompt + output lengths within the context: costmodel's one rule
    spec: TrafficSpec = (
        float(rate),
        (prompt_kind, sc.prompt_len, float(prompt_sigma)),
        (output_kind, sc.output_len, float(output_sigma)),
        model.max_context,
    )
    load = traffic(spec)
except ui.BAD_INPUT as e:
    ui.show_error(e)
    st.stop()
if not tps:
    st.info("Choose at least one tensor-parallel degree to plan with.")
    st.stop()
model_key = sc.model if sc.model_source == "built-in" else json.dumps(sc.hf_config, sort_keys=True)
dtypes = (
    sc.weight_dtype,
    sc.kv_dtype,
    sc.activation_dtype,
    sc.expert_dtype,
    sc.expert_activation_dtype,
    sc.attention_dtype,
)
slo = (ttft_slo_ms / 1e3, tpot_slo_ms / 1e3)
moe_split = ", attention DP, MoE TP and EP" if model.moe is not None else ""
objective = (
    f"p99 TTFT ≤ {ui.number(ttft_slo_ms)} ms and p99 TPOT ≤ {ui.number(tpot_slo_ms)} ms "
    f"at {ui.number(rate)} requests/s"
)
st.caption(
    f"**{ui.plain(model.name)}** on {', '.join(sc.hardware)} · weights {sc.weight_dtype}, activations "
    f"{sc.activation_dtype}{ui.experts_caption(sc)}, KV {sc.kv_dtype} · "
    f"{'kernels alone' if engine == 'none' else engine} · {objective} · "
    f"prompts {prompt_kind}, mean "
    f"{load.prompt.mean:,.0f} tokens · outputs {output_kind}, mean {load.output.mean:,.0f} tokens "
    f"(lengths capped at the {model.max_context:,}-token context). The planner chooses replicas, TP and "
    f"the batch limit: the sidebar's TP, PP, replicas{moe_split} and batch size are not used here."
)

# ---------------------------------------------------------------------------- compute: the plan
rows = [
    row
    for hw in sc.hardware
    for row in plan_candidate(model_key, model, sc.priced(hw), tuple(sorted(tps)), spec, slo, dtypes, engine)
]
ranked = (
    pd.DataFrame(rows, columns=list(COLUMNS))
    .astype({"feasible": bool})
    .sort_values(["feasible", "usd_per_hour"], ascending=[False, True], na_position="last", kind="stable")
    .reset_index(drop=True)
)  # plan()'s ranking: feasible first, then $ per hour
ranked.insert(
    0, "candidate", [f"{h} · TP {t}" for h, t in zip(ranked["hardware"], ranked["tp"], strict=True)]
)
feasible = ranked[ranked["feasible"]]

# ---------------------------------------------------------------------------- render: the plan
if feasible.empty:
    st.warning(
        f"No candidate meets {objective}: the table gives each one's reason. Relax the objectives, "
        "lower the rate, or add devices or TP degrees."
    )
else:
    best = feasible.iloc[0]
    source = "capacity.plan(...)"
    figures = [
        ("Cheapest device", str(best["hardware"]), "hardware"),
        ("TP", ui.count(best["tp"]), "tp"),
        ("Replicas", ui.count(best["replicas"]), "replicas"),
        ("GPUs", ui.count(best["gpus"]), "gpus"),
        ("Batch limit", ui.count(best["max_batch_size"]), "max_batch_size"),
        ("$ per hour", ui.usd(best["usd_per_hour"]), "usd_per_hour"),
        ("$ per million tokens", ui.usd(best["usd_per_million_tokens"]), "usd_per_million_tokens"),
        ("p99 TTFT", ui.duration(best["ttft_p99_s"]), "ttft_p99_s"),
        ("p99 TPOT", ui.duration(best["tpot_p99_s"]), "tpot_p99_s"),
        ("Utilisation per replica", ui.fraction(best["utilization"]), "utilization"),
    ]
    for start, widths in ((0, [2, 1, 1, 1, 1]), (5, 5)):  # a device's name is wider than a count
        for col, (label, value, attr) in zip(st.columns(widths), figures[start : start + 5], strict=True):
            with col:
                ui.metric(label, value, f"{source}.{attr}")
    st.caption(
        f"Each replica takes {ui.number(best['rate_per_replica_per_s'])} of the "
        f"{ui.number(best['max_rate_per_replica_per_s'])} requests/s it saturates at; "
        f"the planner keeps every replica at or below {MAX_UTILIZATION:.0%}. $ per million tokens counts "
        "input and output tokens; per output token alone it is "
        f"{ui.usd(best['usd_per_million_output_tokens'])}."
    )

st.subheader("Candidates, cheapest first")
ui.dataframe(
    ranked,
    feasible=st.column_config.CheckboxColumn("Meets the SLOs"),
    confirmed_by_simulation=st.column_config.CheckboxColumn(
        "Confirmed by simulation",
        help="Simulated with costmodel.simulate.serve: rows above the analytic model's validated load.",
    ),
    ttft_p99_error_s=st.column_config.NumberColumn(
        "± TTFT p99 [ms]", help="Sampling error of the planner's p99 TTFT (its quadrature).", format="%.3g"
    ),
    tpot_p99_error_s=st.column_config.NumberColumn(
        "± TPOT p99 [ms]", help="Sampling error of the planner's p99 TPOT (its quadrature).", format="%.3g"
    ),
    utilization=st.column_config.NumberColumn("Utilization", format="percent"),
    max_batch_size=st.column_config.NumberColumn("Batch limit"),
    usd_per_hour=st.column_config.NumberColumn("$ per hour", format="dollar"),
    usd_per_million_tokens=st.column_config.NumberColumn("$ per million tokens", format="%.4f"),
    usd_per_million_output_tokens=st.column_config.NumberColumn("$ per million output tokens", format="%.4f"),
)
st.caption(
    "Latencies in ms (as the objectives), rates in requests/s per replica; ± is the sampling error of the "
    "planner's p99. An infeasible candidate has no numbers, only its reason. Batch limits are lowered to "
    "what the KV cache holds without preempting (kv_safe_batch_size)."
)
infeasible = ranked[~ranked["feasible"]]
if not infeasible.empty:  # the reason is the information: in full, not cut to the table's column width
    st.markdown(
        "**Why the others do not meet the objectives**  \n"
        + "  \n".join(
            f"- {ui.plain(c)}: {ui.plain(r)}"
            for c, r in zip(infeasible["candidate"], infeasible["reason"], strict=True)
        )
    )
if not feasible.empty:
    fig = go.Figure()
    fig.add_bar(
        x=feasible["candidate"],
        y=feasible["usd_per_hour"],
        marker=dict(color=np.where(np.arange(len(feasible)) == 0, "#2a9d8f", "#8ab6d6")),
        text=[
            f"{int(r)} × TP {int(t)} = {int(g)} GPUs"
            for r, t, g in zip(feasible["replicas"], feasible["tp"], feasible["gpus"], strict=True)
        ],
        textposition="auto",
        customdata=np.c_[
            feasible["max_batch_size"], 1e3 * feasible["ttft_p99_s"], 1e3 * feasible["tpot_p99_s"]
        ],
        hovertemplate="%{x}: $%{y:,.2f}/h, batch limit %{customdata[0]}, p99 TTFT %{customdata[1]:.4g} ms, "
        "p99 TPOT %{customdata[2]:.4g} ms<extra></extra>",
    )
    fig.update_layout(yaxis=dict(title="$ per hour", rangemode="tozero"), xaxis_title="device · TP")
    ui.chart(fig, ranked, "capacity-cost")
    st.caption("Candidates that cannot meet the SLOs are in the table above, with the reason.")

# ---------------------------------------------------------------------------- compute: latency vs load
first = sc.hardware[0]
on_first = feasible[feasible["hardware"] == first]
curve = None
if not on_first.empty:  # the cheapest plan on the first device (fewest GPUs if unpriced), at its load
    if on_first["usd_per_hour"].notna().any():
        pick, which = on_first.iloc[0], "cheapest plan"
    else:  # no price to rank by: plan()'s order is then the TP degrees', not the GPUs'
        pick = on_first.sort_values(["gpus", "tp"], kind="stable").iloc[0]
        which = "plan with the fewest GPUs (no price to rank by)"
    tp, batch_limit, replicas = int(pick["tp"]), int(pick["max_batch_size"]), int(pick["replicas"])
    note = f"The {which} on {first}: {replicas} replica(s)"
    with ui.friendly_errors():
        curve, saturation = load_curve(
            model_key,
            model,
            sc.priced(first),
            tp,
            batch_limit,
            rate / replicas,
            spec,
            dtypes,
            float(pick["max_rate_per_replica_per_s"]),  # the plan's row has it: no probe
            engine,
        )
else:  # nothing meets the SLOs there: one replica of the first TP degree that has room, all the load
    batch_limit, replicas = max(capacity.BATCH_LIMITS), 1
    note = f"No plan on {first} meets the SLOs: one replica takes the whole load"
    failures: dict[str, list[str]] = {}  # reason -> TP degrees, so a reason they share is said once
    for tp in sorted(tps):
        try:
            curve, saturation = load_curve(
                model_key, model, sc.priced(first), tp, batch_limit, rate, spec, dtypes, engine=engine
            )
            break
        except ui.BAD_INPUT as e:
            failures.setdefault(str(e), []).append(str(tp))
    if curve is None:
        st.info(
            f"No latency curve on {first}: "
            + "; ".join(f"TP {', '.join(degrees)}: {reason}" for reason, degrees in failures.items())
            + "."
        )

# ---------------------------------------------------------------------------- render: latency vs load
if curve is not None:
    st.subheader(f"p99 latency vs load on one {first} replica, TP {tp}, batch limit {batch_limit}")
    here = curve.iloc[int(np.argmin(np.abs(curve["rate_per_replica_per_s"] - rate / replicas)))]
    cols = st.columns(4)
    with cols[0]:
        ui.metric(
            "Saturation [requests/s]",
            ui.number(saturation),
            "capacity.analyze(...).max_rate_per_s",
        )
    with cols[1]:
        ui.metric("Load [requests/s]", ui.number(rate / replicas), "traffic rate / replicas")
    with cols[2]:
        ui.metric(
            "p99 TTFT at this load", latency_or_unstable(here["ttft_p99_s"]), "capacity.analyze(...).ttft_s"
        )
    with cols[3]:
        ui.metric(
            "p99 TPOT at this load", latency_or_unstable(here["tpot_p99_s"]), "capacity.analyze(...).tpot_s"
        )
    if not here["stable"]:
        st.warning(
            f"{ui.number(rate / replicas)} requests/s is beyond what one replica can serve "
            f"({ui.number(saturation)}/s): "
            "the queue grows without bound and no latency is finite."
        )
    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT [ms]", "TPOT [ms]"))
    for col, metric, target in ((1, "ttft", ttft_slo_ms), (2, "tpot", tpot_slo_ms)):
        for q, dash in (("p99", "solid"), ("p50", "dot")):
            fig.add_scatter(
                x=curve["rate_per_replica_per_s"],
                y=curve[f"{metric}_{q}_s"] * 1e3,
                name=q,
                legendgroup=q,
                showlegend=col == 1,
                mode="lines",
                line=dict(dash=dash, color="#1f77b4"),
                row=1,
                col=col,
            )
        # the objective as a trace: plotly places an hline's annotation on a log axis at 10^y
        fig.add_scatter(
            x=[0.0, float(curve["rate_per_replica_per_s"].max())],
            y=[target, target],
            name="p99 objective",
            legendgroup="objective",
            showlegend=col == 1,
            mode="lines",
            line=dict(dash="dash", color="#d62728"),
            row=1,
            col=col,
        )
        fig.add_scatter(
            x=[here["rate_per_replica_per_s"]],
            y=[here[f"{metric}_p99_s"] * 1e3],
            name="this load",
            legendgroup="here",
            showlegend=col == 1,
            mode="markers",
            marker=dict(symbol="star", size=14, color="black"),
            row=1,
            col=col,
        )
    fig.add_vrect(
        x0=saturation,
        x1=float(curve["rate_per_replica_per_s"].max()),
        fillcolor="grey",
        opacity=0.2,
        line_width=0,
        row="all",
        col="all",
    )
    fig.add_scatter(  # the shaded range named in the legend: a label on the chart sat under the objective
        x=[None],
        y=[None],
        mode="markers",
        marker=dict(symbol="square", size=14, color="rgba(128, 128, 128, 0.35)"),
        name="unstable (at or beyond saturation)",
    )
    fig.update_xaxes(title_text="arrival rate per replica [requests/s]", rangemode="tozero")
    fig.update_yaxes(type="log")
    # near saturation the queue's p99 climbs without bound: show up to 20 x the objective (or the star),
    # so the axis reads in ms around the objective instead of running to hundreds of seconds
    for col, metric, target in ((1, "ttft", ttft_slo_ms), (2, "tpot", tpot_slo_ms)):
        shown = curve[[f"{metric}_p50_s", f"{metric}_p99_s"]].to_numpy() * 1e3
        low = float(np.nanmin(shown)) if np.isfinite(shown).any() else target / 10
        star = here[f"{metric}_p99_s"] * 1e3
        high = max(20 * target, 3 * star if np.isfinite(star) else 0.0, 2 * low)
        fig.update_yaxes(range=[np.log10(min(low, target) / 1.5), np.log10(high)], row=1, col=col)
    ui.chart(fig, curve, "capacity-latency-vs-load")
    st.caption(
        f"{note}. Grey: at or beyond saturation ({ui.number(saturation)} requests/s) the queue grows without "
        "bound and there is no finite latency (load = unstable in the table). The analytic model is "
        f"validated against the simulator up to {capacity.VALIDATED_UTILIZATION:.0%} of saturation "
        "(docs/serving.md); the same quadrature as the planner, so the star is the plan's row."
    )
