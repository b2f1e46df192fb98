"""Speculative decoding: the speedup over acceptance rate and draft length (costmodel.speculative.speedup,
optimal_k), and the speedup and best draft length against batch size on a device (speculative.plan)."""

import components as ui
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots
from scenario import draft_options

import costmodel as cm
from costmodel import speculative
from costmodel.errors import CostmodelError

# ---------------------------------------------------------------------------- inputs
sc = ui.scenario()
st.title("Speculative decoding")
cols = st.columns(4)
with cols[0]:
    draft = ui.select(
        "Draft", "draft", draft_options(), help="A built-in model, or a recipe from the target."
    )
    heterogeneous = st.checkbox(
        "Heterogeneous vocabulary",
        key="heterogeneous_vocab",
        bind="query-params",
        help="Allow a draft model whose vocabulary differs from the target's, as vLLM's "
        "use_heterogeneous_vocab: it drafts over the tokens both vocabularies hold (greedy drafting "
        "only), so α must be the one measured that way. Without it such a draft is refused, as vLLM "
        "refuses it.",
    )
with cols[1]:
    alpha = st.slider(
        "Acceptance rate α",
        0.0,
        1.0,
        value=ui.DEFAULT.alpha,
        step=0.01,
        key="alpha",
        bind="query-params",
        help="Probability that a drafted token is kept; measure it for your draft and data.",
    )
with cols[2]:
    k_max = ui.integer("Longest draft k", "k_max")
with cols[3]:
    manual_c = st.number_input(
        "c = T_draft / T_target for the heatmap",
        min_value=0.0,
        max_value=10.0,
        value=None,
        step=0.01,
        placeholder="from the draft on the device",
        key="draft_cost_ratio",
        bind="query-params",
    )

# ---------------------------------------------------------------------------- guard and compute: the plan
plan = None
with ui.friendly_errors():
    model = ui.model(sc)
    primary = ui.hardware(sc)[0]
    deployment = ui.deployment(sc, model)
    st.caption(ui.describe(sc, model.name) + f" · draft {draft}")
    target = cm.estimate(model, primary, sc.workload(), deployment)  # the target alone, without its draft
    # the draft's own weights on the fullest GPU (a separate model or a quantized copy; none for an early
    # exit or an n-gram table) and its own KV cache for the page's batch and context (vLLM keeps it in the
    # target's pool)
    try:
        extra = speculative.draft_weight_bytes_per_gpu(
            model, draft, sc.workload(), deployment=deployment, heterogeneous_vocab=heterogeneous
        )
        extra += float(
            speculative.draft_kv_bytes_per_gpu(
                model,
                draft,
                sc.workload(),
                batch_size=sc.batch_size,
                context_len=sc.prompt_len + sc.output_len,
                deployment=deployment,
                heterogeneous_vocab=heterogeneous,
            )
        )
    except CostmodelError as e:  # name the page's box, not the API's keyword
        raise CostmodelError(
            str(e).replace("heterogeneous_vocab=True", 'tick "Heterogeneous vocabulary"')
        ) from None
    needed = float(target.memory_bytes_per_gpu) + extra
    if not bool(target.fits) or needed > target.capacity_bytes_per_gpu:
        with_draft = f" ({ui.gb(extra)} of them the draft's weights and KV cache)" if extra else ""
        st.warning(
            f"The target{' with its draft' if extra else ' alone'} does not fit on {primary.name}: "
            f"{ui.gb(needed)} per GPU needed{with_draft}, {ui.gb(target.capacity_bytes_per_gpu)} usable "
            f"(largest batch that fits the target alone: {int(target.max_batch_size):,}). The speedups "
            "below are what it would give if it did."
        )
    batches = sorted({*(2**i for i in range(9)), sc.batch_size})
    try:
        plan = speculative.plan(
            model,
            draft,
            primary,
            sc.workload(),
            alpha=alpha,
            k_max=k_max,
            batch_sizes=batches,
            deployment=deployment,
            heterogeneous_vocab=heterogeneous,
        )
    except CostmodelError as e:  # name the page's box, not the API's keyword
        raise CostmodelError(
            str(e).replace("heterogeneous_vocab=True", 'tick "Heterogeneous vocabulary"')
        ) from None

# best k per batch size: the k that maximises the speedup, or 0 where no k beats plain decoding; at k = 0
# the deployment decodes without a draft: speedup 1 and plain decoding's tokens/s (the best draft's
# speedup and k stay in `draft_speedup` / `k` for the warning and the table)
best = None
here = None
if plan is not None:
    best = plan.loc[plan.groupby("batch_size")["speedup"].idxmax()].reset_index(drop=True)
    pays = best["speedup"] > 1.0
    best["best_k"] = np.where(pays, best["k"], 0)
    best["draft_speedup"] = best["speedup"]
    best["speedup"] = np.where(pays, best["speedup"], 1.0)
    best["tokens_per_s"] = np.where(pays, best["tokens_per_s"], best["tokens_per_s"] / best["draft_speedup"])
    here = best[best["batch_size"] == sc.batch_size].iloc[0]
c = manual_c if manual_c is not None else (None if here is None else float(here["c"]))

# ---------------------------------------------------------------------------- render: on the device
if here is not None:
    cols = st.columns(4)
    with cols[0]:
        ui.metric(f"Best k at batch {sc.batch_size:,}", str(int(here["best_k"])), "speculative.plan(...)")
    with cols[1]:
        ui.metric(f"Speedup at batch {sc.batch_size:,}", f"{here['speedup']:.3f}×", "speculative.plan(...)")
    with cols[2]:
        ui.metric("c = T_draft / T_target", f"{here['c']:.4f}", "speculative.plan(...).c")
    with cols[3]:
        ui.metric(
            "Decode tokens/s with the draft" if here["best_k"] else "Decode tokens/s (no draft pays)",
            ui.rate(here["tokens_per_s"]),
            "speculative.plan(...).tokens_per_s",
        )
    if here["best_k"] == 0:
        st.warning(
            f"With α = {alpha:.2f}, no draft length pays at batch {sc.batch_size:,}: "
            f"the best draft is {here['draft_speedup']:.3f}× (k = {int(here['k'])}), "
            "so the figures are plain decoding's."
        )

# ---------------------------------------------------------------------------- render: the heatmap
st.subheader("Speedup over acceptance rate and draft length")
if c is None:
    st.info("Enter c = T_draft / T_target above to draw the heatmap.")
else:
    alphas = np.round(np.linspace(0.0, 1.0, 21), 2)
    ks = np.arange(1, k_max + 1)
    grid = speculative.speedup(alphas[:, None], ks[None, :], c)
    optimal = speculative.optimal_k(alphas, c, k_max=k_max)
    best_here = int(speculative.optimal_k(alpha, c, k_max=k_max))
    cols = st.columns(2)
    with cols[0]:
        ui.metric(
            f"Optimal k at α = {alpha:.2f}, c = {c:.4g}", str(best_here), "speculative.optimal_k(alpha, c)"
        )
    with cols[1]:
        value = float(speculative.speedup(alpha, best_here, c)) if best_here else 1.0
        ui.metric("Its speedup (memory-bound verify)", f"{value:.3f}×", "speculative.speedup(alpha, k, c)")
    top = max(2.0, float(grid.max()))
    heat = pd.DataFrame(grid, index=pd.Index(alphas, name="alpha"), columns=ks).reset_index()
    heat = heat.melt(id_vars="alpha", var_name="k", value_name="speedup")
    heat["c"] = c
    heat["optimal_k"] = np.repeat(optimal, len(ks))
    fig = go.Figure(
        go.Heatmap(
            x=ks,
            y=alphas,
            z=grid,
            # red below 1 (slower than plain decoding), white at 1, blue above
            colorscale=[[0.0, "#b2182b"], [1.0 / top, "#f7f7f7"], [1.0, "#2166ac"]],
            zmin=0.0,
            zmax=top,
            colorbar=dict(title="speedup"),
            hovertemplate="α %{y}, k %{x}: %{z:.2f}×<extra></extra>",
        )
    )
    fig.add_scatter(
        x=optimal[optimal > 0],
        y=alphas[optimal > 0],
        mode="lines+markers",
        name="optimal k",
        line=dict(color="black"),
    )
    fig.add_hline(y=alpha, line_dash="dash", annotation_text=f"α = {alpha:.2f}")
    fig.update_layout(xaxis_title="draft length k", yaxis_title="acceptance rate α")
    ui.chart(fig, heat, "speculative-heatmap")
    st.caption(
        "Leviathan et al. 2023, Theorem 3.8: verification taken as one target step (memory bound). "
        "The plan below measures the real verification cost on the device."
    )

# ---------------------------------------------------------------------------- render: vs batch size
if best is not None and plan is not None:
    st.subheader(f"Speedup and best k vs batch size on {primary.name}")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(
        x=best["batch_size"], y=best["speedup"], name="speedup at the best k", mode="lines+markers"
    )
    fig.add_scatter(
        x=best["batch_size"],
        y=best["best_k"],
        name="best k (0: none pays)",
        mode="lines+markers",
        line=dict(shape="hv", dash="dot"),
        secondary_y=True,
    )
    fig.add_hline(y=1.0, line=dict(dash="dash", color="black", width=1))
    fig.add_scatter(  # named in the legend: a label on the line sat on the best-k steps
        x=[None],
        y=[None],
        mode="lines",
        line=dict(dash="dash", color="black", width=1),
        name="plain decoding",
    )
    fig.update_xaxes(type="log", title_text="batch size")
    fig.update_yaxes(title_text="speedup [×]", secondary_y=False)
    fig.update_yaxes(
        title_text="best k", secondary_y=True, range=[-0.2, k_max + 0.5], dtick=1, showgrid=False
    )
    ui.chart(fig, plan, "speculative-vs-batch")
    st.caption(
        "As the batch grows the verification pass of k + 1 tokens becomes compute bound and costs more "
        "than one decoding step, so the best draft shortens and the speedup fades."
    )
