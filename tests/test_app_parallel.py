"""The sidebar's attention-DP, MoE TP and MoE EP inputs (costmodel.Deployment.attention_dp / moe_tp /
moe_ep): shown for mixture-of-experts models, carried by shared links, checked like every other input,
and the pages show what costmodel gives for that split."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

import costmodel as cm

pytest.importorskip("streamlit", reason="the dashboard needs the app extra: pip install 'costmodel[app]'")
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "costmodel_app"
sys.path.insert(0, str(APP))  # the app's own modules, as `streamlit run` puts them on the path
from scenario import Scenario  # noqa: E402

MOE_INPUTS = ("attention_dp", "moe_tp", "moe_ep")


def open_page(page: str, **query: Any) -> AppTest:
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = [str(v) for v in value] if isinstance(value, list) else str(value)
    if page != "memory":
        at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def errors(at: AppTest) -> list[str]:
    return [plain(e.value) for e in at.error]


def sidebar_inputs(at: AppTest) -> set[str]:
    return {str(n.key) for n in at.sidebar.number_input}


def metric(at: AppTest, label: str) -> str:
    return next(str(m.value) for m in at.metric if m.label == label)


def test_the_inputs_show_for_moe_models_only() -> None:
    assert set(MOE_INPUTS) <= sidebar_inputs(open_page("memory", model="qwen3-30b-a3b"))
    assert not set(MOE_INPUTS) & sidebar_inputs(open_page("memory", model="llama-3-8b"))


def test_an_attention_dp_link_gives_what_costmodel_gives() -> None:
    """DeepSeek-V3 as SGLang runs it with --tp 8 --dp 8 --enable-dp-attention --ep 8: eight ranks of one
    GPU, each with its own requests' cache, the experts spread over all eight."""
    query = {"model": "deepseek-v3", "hardware": "h200", "tp": 1, "attention_dp": 8, "moe_ep": 8}
    query |= {"weight_dtype": "fp8_block", "activation_dtype": "fp8", "batch_size": 64}
    dep = cm.Deployment(tp=1, attention_dp=8, moe_ep=8)
    workload = cm.Workload(64, 2048, 256, weight_dtype="fp8_block", activation_dtype="fp8")
    performance = open_page("performance", **query)
    assert not errors(performance)
    caption = plain(performance.caption[0].value)
    assert "8 GPUs (TP 1 × attention DP 8 × PP 1 × 1 replica(s), MoE TP 1 × EP 8)" in caption
    report = cm.estimate("deepseek-v3", "h200", workload, dep)
    shown = metric(performance, "Time per output token")
    assert float(shown.split()[0]) == pytest.approx(float(report.tpot_s) * 1e3, rel=1e-3)
    memory = open_page("memory", **query)
    fit = cm.fit(
        cm.load_model("deepseek-v3"),
        cm.load_hardware("h200"),
        batch_size=64,
        context_len=2304,
        prompt_len=2048,
        tp=1,
        attention_dp=8,
        weight_dtype="fp8_block",
        activation_dtype="fp8",
    )
    assert metric(memory, "Weights per GPU (fp8_block)") == f"{fit.weight_bytes_per_gpu / 1e9:,.2f} GB"
    assert metric(memory, "KV cache per GPU (bf16)") == f"{float(fit.kv_cache_bytes_per_gpu) / 1e9:,.2f} GB"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"model": "deepseek-v3", "tp": 2, "attention_dp": 4, "moe_tp": 3, "moe_ep": 2},
            "moe_tp x moe_ep (3 x 2 = 6) must equal the GPUs of the MoE layer, tp x attention_dp (2 x 4 = 8); "
            "the MoE layer spans tp x attention_dp = 8 GPUs: MoE TP x EP that work for deepseek-v3: "
            "8 x 1, 4 x 2, 2 x 4, 1 x 8",
        ),
        (
            {"model": "qwen3-30b-a3b", "tp": 2, "moe_ep": 3},
            "moe_ep (3) must divide tp (2): experts are spread over the TP group; the MoE layer spans "
            "tp x attention_dp = 2 GPUs: MoE TP x EP that work for qwen3-30b-a3b: 2 x 1, 1 x 2",
        ),
    ],
)  # a dense model with attention_dp 2: the link's value is ignored, with a note (tests/test_app.py,
# test_switching_to_a_dense_model_drops_the_moe_settings_it_has_no_widget_for)
def test_a_split_that_does_not_work_is_one_error_naming_the_ones_that_do(
    query: dict[str, Any], message: str
) -> None:
    for page in ("memory", "performance"):
        at = open_page(page, **query)
        assert errors(at) == [message], page
        assert not at.metric  # no figures for a deployment that cannot exist


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("attention_dp", "0", "greater than or equal to 1"),
        ("moe_ep", "true", "must be a whole number, not true"),
        ("moe_tp", "-1", "greater than or equal to 0"),
        ("attention_dp", "2.5", "a valid integer"),
    ],
)
def test_a_link_with_a_bad_split_value_says_what_it_ignored(key: str, value: str, reason: str) -> None:
    at = open_page("performance", model="qwen3-30b-a3b", **{key: value})
    notes = [plain(w.value) for w in at.warning if w.value.startswith("This link")]
    assert len(notes) == 1, notes
    assert f"**{key}** = {value}: " in notes[0]
    assert reason in notes[0]


def test_the_scenario_file_keeps_the_split() -> None:
    sc = Scenario(model="deepseek-v3", tp=2, attention_dp=4, moe_ep=8)
    again = Scenario.from_json(sc.to_json())
    assert (again.attention_dp, again.moe_tp, again.moe_ep, again.n_gpus) == (4, 0, 8, 8)
    assert again.deployment() == cm.Deployment(tp=2, attention_dp=4, moe_ep=8)
