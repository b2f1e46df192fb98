"""Shared pieces of the dashboard: the scenario sidebar and page widgets (bound to the URL), cached profile
loading, friendly errors, number formats, and charts with their numbers one click away.

Pages never compute physics: they call costmodel and show what it returns. Everything here is
presentation: reading widgets into a :class:`~scenario.Scenario`, formatting, drawing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from pydantic import ValidationError
from scenario import (
    DEFAULT,
    MAX_USD_PER_HOUR,
    MODEL_SOURCES,
    MOE_FIELDS,
    WIDGET_FIELDS,
    Scenario,
    activation_dtypes,
    attention_dtypes,
    attention_label,
    weight_dtypes,
)

import costmodel as cm
from costmodel.errors import CostmodelError, describe_validation_error
from costmodel.hf import MAX_CONFIG_BYTES, SUPPORTED_MODEL_TYPES
from costmodel.specs import Price, check_context

BAD_INPUT = (CostmodelError, ValueError)
"""What costmodel raises for input it cannot use; its message is written to be shown as is."""


# ----------------------------------------------------------------------------------------------------
# Profiles, cached for the whole server (they are immutable)
# ----------------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def model_profile(name: str) -> cm.ModelProfile:
    """A built-in model profile."""
    return cm.load_model(name)


@st.cache_resource(show_spinner=False)
def hardware_profile(key: str) -> cm.HardwareProfile:
    """A built-in hardware profile by name, or ``name@price`` (:meth:`Scenario.priced`) with the user's
    price per GPU-hour replacing the profile's."""
    name, _, price = key.partition("@")
    profile = cm.load_hardware(name)
    if not price:
        return profile
    own = Price(usd_per_hour=float(price), source="entered in the dashboard", date="")
    return profile.model_copy(update={"price": own})


def price_note(profile: cm.HardwareProfile) -> str:
    """``$6.88/h (AWS EC2 On-Demand, 2026-11)``: a device's price per GPU-hour and where it comes from."""
    if profile.price is None:
        return f"{profile.name}: no price"
    when = f", {profile.price.date}" if profile.price.date else ""
    return f"{profile.name}: ${profile.price.usd_per_hour:,.2f}/h ({profile.price.provider}{when})"


@st.cache_resource(show_spinner=False)
def model_from_config(config_json: str) -> cm.ModelProfile:
    """A model profile from a Hugging Face config.json's text (keyed by the text, so cached per file)."""
    return cm.ModelProfile.from_hf_config(json.loads(config_json))


def read_hf_config(content: bytes, file_name: str) -> dict[str, Any]:
    """Parse an uploaded config.json and check that costmodel can read it; CostmodelError if not."""
    if len(content) > MAX_CONFIG_BYTES:
        raise CostmodelError(f"{file_name} is over {MAX_CONFIG_BYTES:,} bytes: not a config.json")
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = (
            f": {e.msg} at line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        )
        raise CostmodelError(f"{file_name} is not valid JSON{where}") from None
    except (ValueError, RecursionError):  # integers past 4,300 digits, nesting past the recursion limit
        raise CostmodelError(f"{file_name} holds an oversized number or nesting: not a config.json") from None
    if not isinstance(data, dict):
        raise CostmodelError(f"{file_name} must hold a JSON object, not {type(data).__name__}")
    try:
        model_from_config(json.dumps(data, sort_keys=True))
    except (TypeError, KeyError, AttributeError) as e:  # odd value types the reader does not expect
        raise CostmodelError(
            f"{file_name} is not a Hugging Face config.json costmodel can read: {e}"
        ) from None
    return data


def model(sc: Scenario) -> cm.ModelProfile:
    """The scenario's model profile (built-in or uploaded), checked against the scenario's lengths by
    costmodel's one context rule; CostmodelError with the reason if there is none or it cannot run them."""
    profile = _model(sc)
    check_context(profile, sc.prompt_len, sc.output_len)
    return profile


def _model(sc: Scenario) -> cm.ModelProfile:
    if sc.model_source == "built-in":
        return model_profile(sc.model)
    error = st.session_state.get("config_error")
    if error:
        raise CostmodelError(error)
    if sc.hf_config is None:
        raise CostmodelError(
            "no config.json uploaded yet: upload a Hugging Face config.json in the sidebar, "
            "or choose a built-in model"
        )
    return model_from_config(json.dumps(sc.hf_config, sort_keys=True))


def deployment(sc: Scenario, model: cm.ModelProfile) -> cm.Deployment:
    """The scenario's deployment, checked against the model: a split the model cannot take is a ValueError
    naming the field and the TP degrees (or MoE splits) that do work."""
    try:
        dep = sc.deployment()
    except ValueError as e:  # the MoE split does not multiply out (costmodel's own error)
        reason = re.sub(r"^invalid Deployment: \(profile\): ", "", str(e))
        raise ValueError(f"{reason}{_moe_hint(sc, model)}") from None
    try:
        dep.check(model)
    except ValueError as e:
        works = [tp for tp in range(1, 129) if _splits(model, tp)]
        if sc.tp not in works:
            hint = f"; TP that works for {model.name}: {', '.join(map(str, works))}"
        elif model.moe is not None and sc.attention_dp == 1 and sc.moe_tp == 0 and sc.moe_ep == 1:
            hint = ""
        else:
            hint = _moe_hint(sc, model)
        raise ValueError(f"{e}{hint}") from None
    return dep


def experts_caption(sc: Scenario) -> str:
    """ ", attention bf16, routed experts W x A" where the scenario gives them their own formats, else ""."""
    attention = f", attention {attention_label(sc.attention_dtype)}" if sc.attention_dtype else ""
    if not (sc.expert_dtype or sc.expert_activation_dtype):
        return attention
    weights = sc.expert_dtype or sc.weight_dtype
    return f"{attention}, routed experts {weights} x {sc.expert_activation_dtype or sc.activation_dtype}"


def _moe_hint(sc: Scenario, model: cm.ModelProfile) -> str:
    """The expert-parallel degrees that split ``model``'s experts over the scenario's MoE GPUs."""
    gpus = sc.tp * sc.attention_dp
    if model.moe is None:
        return ""
    works = []
    for ep in range(1, gpus + 1):
        if gpus % ep:
            continue
        try:
            split = cm.Deployment(tp=sc.tp, attention_dp=sc.attention_dp, moe_tp=gpus // ep, moe_ep=ep)
            split.check(model)
        except ValueError:
            continue
        works.append(f"{gpus // ep} x {ep}")
    return (
        f"; the MoE layer spans tp x attention_dp = {gpus} GPUs: MoE TP x EP that work for {model.name}: "
        + ", ".join(works)
    )


def _splits(model: cm.ModelProfile, tp: int) -> bool:
    try:
        cm.Deployment(tp=tp).check(model)
    except ValueError:
        return False
    return True


def _sidebar_model_is_moe() -> bool:
    """Whether the model the sidebar has chosen (built-in or uploaded) has routed experts."""
    try:
        if st.session_state.get("model_source", DEFAULT.model_source) == "built-in":
            name = st.session_state.get("model") or from_query("model") or DEFAULT.model
            return model_profile(str(name)).moe is not None
        config = st.session_state.get("hf_config")
        return config is not None and model_from_config(json.dumps(config, sort_keys=True)).moe is not None
    except (CostmodelError, ValueError):
        return False


def hardware(sc: Scenario) -> list[cm.HardwareProfile]:
    """The selected hardware profiles, in the order they were picked."""
    return [hardware_profile(sc.priced(name)) for name in sc.hardware]


# ----------------------------------------------------------------------------------------------------
# The scenario: widgets bound to the URL, session state, JSON files
# ----------------------------------------------------------------------------------------------------


def from_query(field: str) -> Any:
    """The URL's value for a field whose widget is not on this page (None if absent or unreadable)."""
    raw: Any = st.query_params.get_all(field) if field == "hardware" else st.query_params.get(field)
    if raw in (None, []):
        return None
    candidates = [raw]
    if isinstance(raw, str):
        with suppress(json.JSONDecodeError):
            candidates.append(json.loads(raw))  # "2" -> 2, "false" -> False
    for value in candidates:
        try:
            Scenario.model_validate({field: value})
        except ValidationError:
            continue
        return value
    return None


def scenario() -> Scenario:
    """The current scenario: widget values, then the URL for widgets not on this page, then defaults."""
    values: dict[str, Any] = {}
    dense = not _sidebar_model_is_moe()
    for field in WIDGET_FIELDS:
        if dense and field in MOE_FIELDS:  # no widget for it: a value left by an MoE model does not apply
            continue
        if field in st.session_state:
            values[field] = st.session_state[field]
        elif (value := from_query(field)) is not None:
            values[field] = value
    values["hf_config"] = st.session_state.get("hf_config")
    try:
        return Scenario.model_validate(values)
    except ValidationError as e:  # e.g. every device unselected: say so, and use the default for that field
        bad = {str(item["loc"][0]) for item in e.errors() if item["loc"]}
        st.warning(
            describe_validation_error(e, "scenario").replace("\n", "  \n")
            + f"  \nUsing the default for {', '.join(sorted(bad))}."
        )
        return Scenario.model_validate({k: v for k, v in values.items() if k not in bad})


def apply(sc: Scenario) -> None:
    """Put a scenario into the widgets (a callback: runs before the script, while widgets may be set)."""
    for field in WIDGET_FIELDS:
        st.session_state[field] = getattr(sc, field)
    st.session_state["hf_config"] = sc.hf_config
    st.session_state["config_error"] = None
    st.session_state["scenario_error"] = None


def _on_scenario_upload() -> None:
    upload = st.session_state.get("scenario_upload")
    if upload is None:
        return
    try:
        apply(Scenario.from_json(upload.getvalue()))
    except CostmodelError as e:
        st.session_state["scenario_error"] = f"{upload.name}: {e}"


def _on_config_upload() -> None:
    upload = st.session_state.get("config_upload")
    st.session_state["config_error"] = None
    if upload is None:
        st.session_state["hf_config"] = None
        return
    try:
        st.session_state["hf_config"] = read_hf_config(upload.getvalue(), upload.name)
    except CostmodelError as e:
        st.session_state["hf_config"] = None
        st.session_state["config_error"] = str(e)


def select(label: str, field: str, options: Sequence[Any], **kwargs: Any) -> Any:
    """A selectbox for ``field``, bound to the URL, defaulting to the scenario default."""
    default = getattr(DEFAULT, field)
    return st.selectbox(
        label, options, index=list(options).index(default), key=field, bind="query-params", **kwargs
    )


def integer(
    label: str, field: str, *, min_value: int = 1, max_value: int | None = None, **kwargs: Any
) -> int:
    """A whole-number input for ``field``, bound to the URL."""
    info = Scenario.model_fields[field]
    for meta in info.metadata:  # the field's own bounds, so the widget cannot produce an invalid scenario
        max_value = getattr(meta, "le", None) or max_value
    return int(
        st.number_input(
            label,
            min_value=min_value,
            max_value=max_value,
            value=getattr(DEFAULT, field),
            step=1,
            key=field,
            bind="query-params",
            **kwargs,
        )
    )


def scenario_sidebar() -> None:
    """The scenario widgets every page shares, and saving / loading / resetting the scenario."""
    with st.sidebar:
        st.header("Scenario")
        source = st.radio(
            "Model from", MODEL_SOURCES, horizontal=True, key="model_source", bind="query-params"
        )
        if source == "built-in":
            select("Model", "model", cm.list_models())
        else:
            st.file_uploader(
                "Hugging Face config.json",
                type=["json"],
                key="config_upload",
                on_change=_on_config_upload,
                help="Read offline, without transformers: " + ", ".join(SUPPORTED_MODEL_TYPES),
            )
            if st.session_state.get("config_error"):
                st.error(st.session_state["config_error"])
            elif st.session_state.get("hf_config") is not None:
                uploaded = model_from_config(json.dumps(st.session_state["hf_config"], sort_keys=True))
                st.caption(f"Uploaded: {plain(uploaded.name)}")
        st.multiselect(
            "Hardware (first = the one single-device charts use)",
            cm.list_hardware(),
            default=DEFAULT.hardware,
            key="hardware",
            bind="query-params",
        )
        tp, pp, replicas = st.columns(3)
        with tp:
            tp_degree = integer("TP", "tp", help="Tensor-parallel degree: must divide the attention heads.")
        with pp:
            stages = integer("PP", "pp", help="Pipeline stages.")
        with replicas:
            copies = integer("Replicas", "replicas", help="Copies of the model serving in parallel.")
        ranks = 1
        if _sidebar_model_is_moe():  # attention DP and the MoE split mean something only with experts
            adp, moe_tp, moe_ep = st.columns(3)
            with adp:
                ranks = integer(
                    "Attention DP",
                    "attention_dp",
                    help="Attention data-parallel ranks per replica, each of TP GPUs with its own requests' "
                    "KV cache; the MoE layers span TP x attention DP GPUs (SGLang --enable-dp-attention, "
                    "TensorRT-LLM enable_attention_dp, vLLM --data-parallel-size on MoE models).",
                )
            with moe_tp:
                integer(
                    "MoE TP",
                    "moe_tp",
                    min_value=0,
                    help="Tensor-parallel degree of each routed expert; 0: TP x attention DP / MoE EP. "
                    "MoE TP x MoE EP must equal TP x attention DP.",
                )
            with moe_ep:
                integer(
                    "MoE EP",
                    "moe_ep",
                    help="Expert-parallel degree: groups that each hold 1/EP of the experts.",
                )
        gpus = tp_degree * ranks * stages * copies
        dp = f" × attention DP {ranks}" if ranks > 1 else ""
        st.caption(
            f"{gpus:,} GPU{'s' if gpus > 1 else ''}: TP {tp_degree}{dp} × PP {stages} × {copies:,} replica(s)"
        )
        select("Weight format", "weight_dtype", weight_dtypes())
        select(
            "Attention weight format",
            "attention_dtype",
            attention_dtypes(),
            format_func=lambda v: {"": "as the weights"}.get(v, v),  # the URL holds the label: keep it
            help="Where a published checkpoint keeps the attention projections apart (NVIDIA's NVFP4 "
            "Gemma-4-31B, GLM-5 and Kimi-K2.5 keep them in bf16; its NVFP4 DeepSeek too, all but the output "
            "projection, stored as the weights: bf16_except_o_proj): they are sized and run in it.",
        )
        select("Activation / compute format", "activation_dtype", activation_dtypes())
        if _sidebar_model_is_moe():  # a published MoE checkpoint may store its experts apart (gpt-oss: mxfp4)
            as_rest = {"": "as the weights"}
            select(
                "Routed-expert weight format",
                "expert_dtype",
                ["", *weight_dtypes()],
                format_func=lambda v: as_rest.get(v, v),
            )
            select(
                "Routed-expert activation format",
                "expert_activation_dtype",
                ["", *activation_dtypes()],
                format_func=lambda v: {"": "as the activations"}.get(v, v),
            )
        select("KV-cache format", "kv_dtype", list(cm.DTYPES))
        integer("Batch size", "batch_size", help="Concurrent sequences.")
        prompt, output = st.columns(2)
        with prompt:
            integer("Prompt tokens", "prompt_len")
        with output:
            integer("Output tokens", "output_len")
        selected = st.session_state.get("hardware") or DEFAULT.hardware
        st.number_input(
            f"Your $ per GPU-hour for {selected[0]} (0: its listed price)",
            min_value=0.0,
            max_value=MAX_USD_PER_HOUR,
            value=DEFAULT.usd_per_hour,
            step=0.1,
            format="%.2f",
            key="usd_per_hour",
            bind="query-params",
            help="Listed prices are on-demand prices from different providers and dates (below): "
            "your own contract price makes the costs yours.",
        )
        st.caption(
            "Prices: " + "; ".join(price_note(p) for p in hardware(scenario())),
            help="Each profile's price, its provider and date (hardware_profiles/*.yaml, field price).",
        )

        with st.expander("Share, save, load", icon=":material/share:"):
            st.caption("The page's URL holds this scenario: copy it to share the view.")
            st.download_button(
                "Download scenario (JSON)",
                data=scenario().to_json(),
                file_name="costmodel-scenario.json",
                mime="application/json",
                on_click="ignore",
                icon=":material/download:",
                key="scenario_download",
            )
            st.file_uploader(
                "Load a scenario (JSON)", type=["json"], key="scenario_upload", on_change=_on_scenario_upload
            )
            if st.session_state.get("scenario_error"):
                st.error(st.session_state["scenario_error"])
            st.button("Reset to the default scenario", on_click=apply, args=(DEFAULT,), key="reset")


# ----------------------------------------------------------------------------------------------------
# Errors and page furniture
# ----------------------------------------------------------------------------------------------------


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$])")


def plain(text: object) -> str:
    """``text`` shown as written in Streamlit's Markdown: a name from an uploaded file (a link, an image,
    HTML) is never rendered, only displayed."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def show_error(error: Exception) -> None:
    """costmodel's own message, as it is (line breaks kept, no Markdown rendered), never a traceback."""
    st.error(plain(error).replace("\n", "  \n"), icon=":material/error:")


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Run one section of a page; bad input shows its message there and the rest of the page goes on."""
    try:
        yield
    except BAD_INPUT as e:
        show_error(e)


def describe(sc: Scenario, model_name: str) -> str:
    """One line naming the scenario, for a page's caption."""
    plural = "s" if sc.n_gpus > 1 else ""
    adp = f" × attention DP {sc.attention_dp}" if sc.attention_dp > 1 else ""
    moe = ""
    if sc.moe_tp or sc.moe_ep > 1:
        moe = f", MoE TP {sc.moe_tp or sc.tp * sc.attention_dp // sc.moe_ep} × EP {sc.moe_ep}"
    dep = f"{sc.n_gpus:,} GPU{plural} (TP {sc.tp}{adp} × PP {sc.pp} × {sc.replicas:,} replica(s){moe})"
    return (
        f"**{plain(model_name)}** on {', '.join(sc.hardware)} · {dep} · weights {sc.weight_dtype}, "
        f"activations {sc.activation_dtype}{experts_caption(sc)}, KV {sc.kv_dtype} · "
        f"batch {sc.batch_size:,}, "
        f"{sc.prompt_len:,} prompt + {sc.output_len:,} output tokens"
    )


# ----------------------------------------------------------------------------------------------------
# Numbers for people (the metrics show these; the tables keep SI units)
# ----------------------------------------------------------------------------------------------------


def gb(n_bytes: float) -> str:
    """Bytes as GB (1e9 bytes), as the CLI prints them."""
    return f"{n_bytes / 1e9:,.2f} GB"


def duration(seconds: float) -> str:
    """A time, 4 significant digits: in ms below a second, in s above; whole seconds with thousands
    separators from 10,000 s (41,050 s, not 4.105e+04 s)."""
    if seconds < 1:
        return f"{seconds * 1e3:.4g} ms"
    return f"{seconds:,.4g} s" if seconds < 1e4 else f"{seconds:,.0f} s"


def number(x: float) -> str:
    """A figure to 4 significant digits, never in scientific notation: 8.463, 1,996, 100,000."""
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def rate(per_s: float) -> str:
    """A rate (the label names its unit) with thousands separators."""
    return f"{per_s:,.1f}"


def usd(amount: float) -> str:
    """Dollars, 4 significant digits; 'no price' where the profile has none."""
    return "no price" if amount != amount else f"${number(amount)}"  # NaN != NaN


def count(n: float) -> str:
    """A count with thousands separators."""
    return f"{int(n):,}"


def fraction(x: float) -> str:
    """A fraction as a percentage."""
    return f"{x:.1%}"


def metric(label: str, value: str, source: str) -> None:
    """A headline figure; the tooltip names the costmodel call it comes from."""
    st.metric(label, value, help=f"From `{source}`.", border=True)


# ----------------------------------------------------------------------------------------------------
# Charts with their numbers
# ----------------------------------------------------------------------------------------------------

LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.25))

COMPONENT_COLOURS = {
    "weights": "#8da0cb",
    "KV cache": "#66c2a5",
    "activations": "#fc8d62",
    "reserved (10%)": "#d9d9d9",
    "gradients": "#e5c494",
    "optimizer state": "#b3b3b3",
}
"""What a memory bar is made of: the same colour on every chart, none of them a device's colour."""
DEVICE_COLOURS = ("#1f4e9c", "#c0392b", "#1e8449", "#7d3c98", "#b9770e", "#17202a", "#0e6655", "#943126")
"""Devices, in the order they are selected: saturated, so never mistaken for a memory component."""


def device_colour(sc: Scenario, name: str) -> str:
    """The colour of device ``name`` on every chart of every page (its place in the sidebar's list)."""
    order = sc.hardware + sorted(set(cm.list_hardware()) - set(sc.hardware))
    return DEVICE_COLOURS[order.index(name) % len(DEVICE_COLOURS)] if name in order else "#555555"


def log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis over [low, high]: 1-2-5 up to two and a half decades, 1-3 up to four,
    decades beyond (every other one past ten), finer steps within one decade, so a chart over less than a
    decade still has several labelled ticks."""
    if not (0 < low <= high < float("inf")):
        return []
    span = np.log10(high / low)
    if span < 0.3:
        mantissas: tuple[float, ...] = (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 9)
    elif span < 0.8:
        mantissas = (1, 1.5, 2, 3, 4, 5, 6, 8)
    else:
        mantissas = (1, 2, 5) if span <= 2.5 else (1, 3) if span <= 4 else (1,)
    step = 2 if span > 10 else 1
    first, last = int(np.floor(np.log10(low))), int(np.ceil(np.log10(high)))
    ticks = [m * 10.0**e for e in range(first, last + 1, step) for m in mantissas]
    return [t for t in ticks if low / 1.5 <= t <= high * 1.5]  # plotly hides those past its range


def tick_text(values: Sequence[float]) -> list[str]:
    """One format for every tick of an axis: plain numbers with thousands separators (0.05, 2, 200,000);
    k / M / G for counts past a million (300, 1k, 128k, 2M); scientific notation (2e-6) for the rest."""
    if all(1e-3 <= abs(v) < 1e6 for v in values if v):
        return [_plain_number(v) for v in values]
    if all(1 <= abs(v) < 1e12 for v in values):  # token counts and the like: 300, 1k, 128k, 2M
        return [_si(v) for v in values]
    return [_mantissa(f"{v:.2e}").replace("e+0", "e").replace("e-0", "e-").replace("e+", "e") for v in values]


def _plain_number(v: float) -> str:
    """3 significant digits, thousands separators, no trailing zeros: 0.0015, 2.5, 20,000."""
    decimals = max(0, 2 - int(np.floor(np.log10(abs(v))))) if v else 0
    text = f"{v:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _mantissa(text: str) -> str:
    """'1.50e+12' -> '1.5e+12': no trailing zeros in the mantissa."""
    mantissa, exponent = text.split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def _si(v: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g}{suffix}"
    return f"{v:.3g}"


def _label_log_axes(fig: go.Figure) -> None:
    """Explicit ticks (:func:`log_ticks`, :func:`tick_text`) on every log axis, from the data it shows."""
    layout = fig.layout.to_plotly_json()
    for axis_name, axis in layout.items():
        if not (axis_name.startswith(("xaxis", "yaxis")) and axis.get("type") == "log"):
            continue
        letter, suffix = axis_name[0], axis_name[5:]
        shown: list[np.ndarray] = []
        for trace in fig.data:
            if (getattr(trace, f"{letter}axis", None) or letter) != letter + suffix:
                continue
            with suppress(TypeError, ValueError):
                v = np.asarray(getattr(trace, letter), dtype=float)
                shown.append(v[np.isfinite(v) & (v > 0)])
        values = np.concatenate(shown) if shown else np.array([])
        if values.size:
            low, high = float(values.min()), float(values.max())
            if axis.get("range"):  # a range set by the page (in log10 units): ticks within it
                low, high = 10.0 ** axis["range"][0], 10.0 ** axis["range"][1]
            ticks = log_ticks(low, high)
            fig.layout[axis_name].update(tickvals=ticks, ticktext=tick_text(ticks))


def time_scale(seconds_max: float) -> tuple[float, str]:
    """The factor and unit for times up to ``seconds_max``: ms below 10 s, s from there (no 1e6 ms)."""
    return (1e3, "ms") if not seconds_max >= 10 else (1.0, "s")


@dataclass(frozen=True)
class ChartParts:
    """Everything :func:`chart` shows, made by :func:`chart_parts` and shown by :func:`show_chart` (a page
    may cache it: showing reads it, never changes it)."""

    figure: go.Figure
    table: pd.DataFrame
    """The numbers behind the chart for people (:func:`human`)."""
    column_config: dict[str, Any]
    csv: str
    """The same numbers in costmodel's names and SI units."""
    name: str


def chart_parts(fig: go.Figure, data: pd.DataFrame, name: str) -> ChartParts:
    """The dashboard's layout on ``fig`` (changed in place), the table and the CSV of ``data``."""
    fig.update_layout(**LAYOUT)
    _label_log_axes(fig)
    if fig.layout.height is None:
        fig.update_layout(height=420)
    table, config = table_parts(data)
    return ChartParts(fig, table, config, data.to_csv(index=False), name)


def show_chart(parts: ChartParts) -> None:
    """A plotly chart, then the table behind it (one click) and a CSV download (one click)."""
    st.plotly_chart(parts.figure, key=f"chart-{parts.name}", config={"displaylogo": False})
    table, download = st.columns([3, 1], vertical_alignment="top")
    with table.expander("Numbers behind this chart", icon=":material/table:"):
        st.dataframe(parts.table, hide_index=True, column_config=parts.column_config)
    download.download_button(
        "CSV",
        data=parts.csv,
        file_name=f"{parts.name}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key=f"csv-{parts.name}",
    )


def chart(fig: go.Figure, data: pd.DataFrame, name: str) -> None:
    """A plotly chart, then the table behind it (one click) and a CSV download (one click)."""
    show_chart(chart_parts(fig, data, name))


# ----------------------------------------------------------------------------------------------------
# Tables for people: words and units in the headers; the CSV keeps costmodel's names and SI units
# ----------------------------------------------------------------------------------------------------

WORDS = {
    "ttft": "TTFT",
    "tpot": "TPOT",
    "e2e": "end-to-end",
    "kv": "KV",
    "tp": "TP",
    "pp": "PP",
    "ep": "EP",
    "gpu": "GPU",
    "gpus": "GPUs",
    "mfu": "MFU",
    "mbu": "MBU",
    "usd": "$",
    "op": "operator",
    "dtype": "format",
    "flop": "FLOP",
    "max": "largest",
    "len": "length",
    "p99": "p99",
    "p50": "p50",
    "slo": "SLO",
    "alpha": "α",
    "abs": "absolute",
    "rel": "relative",
}
UNITS: tuple[tuple[str, str, float], ...] = (
    # suffix of costmodel's name, unit shown, factor from the SI value
    ("_bytes_per_gpu", "GB per GPU", 1e-9),
    ("_bytes", "GB", 1e-9),
    ("_flop_per_s", "TFLOP/s", 1e-12),
    ("_flop_per_byte", "FLOP/byte", 1.0),
    ("_flop", "GFLOP", 1e-9),
    ("_tokens_per_s", "tokens/s", 1.0),
    ("_per_s", "/s", 1.0),
    ("_s", "ms", 1e3),
)


def header(name: str) -> tuple[str, float]:
    """A person's header for a costmodel column name, and the factor its values are shown with:
    ``ttft_p99_s`` -> ``("TTFT p99 [ms]", 1e3)``, ``memory_bytes_per_gpu`` -> ``("Memory [GB per GPU]",
    1e-9)``, ``usd_per_hour`` -> ``("$ per hour", 1)``."""
    unit, factor, stem = "", 1.0, name
    for suffix, shown, scale in UNITS:
        if name.endswith(suffix) and name != suffix.lstrip("_"):
            stem, unit, factor = name[: -len(suffix)], shown, scale
            break
    if stem.startswith("usd_per_"):
        unit = ""
    words = " ".join(WORDS.get(w, w) for w in stem.split("_")).replace(" per s per ", "/s per ")
    text = words[:1].upper() + words[1:] if len(words) > 1 and words[:1].islower() else words  # k, c stay
    if unit == "/s":
        return f"{text} [{'requests/s' if 'rate' in stem else '/s'}]", factor
    return (f"{text} [{unit}]" if unit else text), factor


def human(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a person's headers and each number in the unit its header names (:func:`header`),
    to 4 significant digits (the CSV download keeps every digit, in SI units)."""
    shown = {}
    for column in frame.columns:
        title, factor = header(str(column))
        values = frame[column]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric and (factor != 1.0 or pd.api.types.is_float_dtype(values)):
            values = _significant(values * factor, 4)
        shown[title] = values
    return pd.DataFrame(shown, index=frame.index)


def _significant(values: pd.Series, digits: int) -> pd.Series:
    x = values.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(x))))
        rounded = np.where(np.isfinite(scale) & (x != 0), np.round(x * scale) / scale, x)
    return pd.Series(rounded, index=values.index, name=values.name)


def _longest_text(values: pd.Series) -> int:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return 0
    return max((len(v) for v in values if isinstance(v, str)), default=0)


def table_parts(frame: pd.DataFrame, **column_config: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """What :func:`dataframe` shows: the table for people (:func:`human`) and its column configuration."""
    config: dict[str, Any] = {}
    for column in frame.columns:
        title = header(str(column))[0]
        if column in column_config:
            config[title] = column_config[column]
        elif _longest_text(frame[column]) > 30:  # a sentence (a reason, an error): wide enough to read
            config[title] = st.column_config.TextColumn(title, width="large")
    return human(frame), config


def dataframe(frame: pd.DataFrame, **column_config: Any) -> None:
    """A table for people (:func:`human`); ``column_config`` keyed by costmodel's column names. Text
    columns are wide: a reason is the information, never cut to a few words."""
    table, config = table_parts(frame, **column_config)
    st.dataframe(table, hide_index=True, column_config=config)
