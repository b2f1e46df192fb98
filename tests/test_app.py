"""The dashboard (costmodel_app/), headless through streamlit.testing.v1.AppTest: every page on the default
scenario and on edge values, with the figures it shows checked against the Python API for the same
scenario (the page must show what costmodel returns, rounded as displayed), and friendly messages, never
a traceback, for bad input."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import HF_CONFIGS
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st_

import costmodel as cm
from costmodel import capacity, compression, speculative
from costmodel.errors import CostmodelError
from costmodel.memory import checkpoint_bytes, checkpoint_formats, replicated_weight_bytes
from costmodel.roofline import attainable_flop_per_s
from costmodel.serving import Lengths, Traffic

pytest.importorskip("streamlit", reason="the dashboard needs the app extra: pip install 'costmodel[app]'")
pytest.importorskip("plotly", reason="the dashboard needs the app extra: pip install 'costmodel[app]'")
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "costmodel_app"
sys.path.insert(0, str(APP))  # the app's own modules, as `streamlit run` puts them on the path
from components import duration, header, human, log_ticks, tick_text  # noqa: E402
from components import plain as ui_plain  # noqa: E402
from scenario import ATTENTION_EXCEPT_O_PROJ, DEFAULT, Scenario  # noqa: E402

PAGES = ("memory", "performance", "speculative", "capacity", "compression", "validation")


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------


def open_page(page: str, **query: Any) -> AppTest:
    """The app on ``page`` with the scenario given as URL query parameters (a shared link)."""
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = [str(v) for v in value] if isinstance(value, list) else str(value)
    if page != "memory":  # the default page; a link to another page opens on that page
        at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


SHOWN = 5e-4  # tables show 4 significant digits (the CSV keeps every digit)


def table(at: AppTest, index: int, columns: Any) -> pd.DataFrame:
    """A table the page shows, read back into costmodel's column names and SI units: its header names
    the unit (``TTFT p99 [ms]``, ``Memory [GB per GPU]``) and header() gives the factor the page used."""
    shown = at.dataframe[index].value
    out = {}
    for column in columns:
        title, factor = header(str(column))
        values = shown[title]
        if factor != 1.0 and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            values = values / factor
        out[column] = values
    return pd.DataFrame(out)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


UNITS = {"ms": 1e-3, "s": 1.0, "GB": 1e9, "B": 1e9, "%": 1e-2, "×": 1.0, "": 1.0}


def assert_shows(text: str, value: float) -> None:
    """``text`` is ``value`` rounded to the precision shown (4.06 GB, 374.4 ms, $1.857, 64.1%, 1,234)."""
    match = re.fullmatch(r"\$?([-0-9.,]+(?:e[-+]?\d+)?)\s*(ms|s|GB|B|%|×)?", text.strip())
    assert match, f"cannot read a number from {text!r}"
    number, unit = match[1].replace(",", ""), match[2] or ""
    decimals = len(number.split(".")[1]) if "." in number else 0
    scale = UNITS[unit]
    assert float(number) * scale == pytest.approx(value, abs=0.5 * 10**-decimals * scale * (1 + 1e-9)), (
        f"shown {text!r}, API {value!r}"
    )


def errors(at: AppTest) -> list[str]:
    """The error messages as a reader sees them (the page escapes Markdown in them: names are text)."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]


def charts(at: AppTest) -> list[dict[str, Any]]:
    """The plotly figures on the page, as the browser receives them."""
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def trace(figure: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in figure["data"] if t.get("name") == name)


def values(data: Any) -> np.ndarray:
    """A plotly array: a list, or the typed array plotly >= 6 sends ({'dtype', 'bdata', 'shape'})."""
    if isinstance(data, dict):
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        shape = [int(n) for n in data.get("shape", str(array.size)).split(",")]
        return array.reshape(shape)
    return np.asarray(data, dtype=float)


def api_fit(sc: Scenario, hardware: str) -> Any:
    """The per-device memory of ``sc``'s replica, from costmodel.size (the figures estimate reports)."""
    return cm.size(
        sc.model,
        hardware,
        batch_size=sc.batch_size,
        prompt_len=sc.prompt_len,
        output_len=sc.output_len,
        weight_dtype=sc.weight_dtype,
        kv_dtype=sc.kv_dtype,
        activation_dtype=sc.activation_dtype,
        deployment=cm.Deployment(tp=sc.tp, pp=sc.pp),
    )


def api_estimate(sc: Scenario, hardware: str) -> cm.Report:
    return cm.estimate(sc.model, hardware, sc.workload(), sc.deployment())


def check_memory(at: AppTest, sc: Scenario) -> None:
    shown, f = metrics(at), api_fit(sc, sc.hardware[0])
    assert_shows(shown[f"Weights per GPU ({sc.weight_dtype})"], f.weight_bytes_per_gpu)
    assert_shows(shown[f"KV cache per GPU ({sc.kv_dtype})"], f.kv_cache_bytes_per_gpu)
    assert_shows(shown["Activations per GPU"], f.activation_bytes_per_gpu)
    assert_shows(shown["Memory per GPU"], f.memory_bytes_per_gpu)
    assert_shows(shown["Usable per GPU (90%)"], f.capacity_bytes_per_gpu)
    assert_shows(shown["Largest batch at this context"], f.max_batch_size)
    assert_shows(shown["Longest context at this batch"], int(f.max_context_len))
    assert_shows(shown["Parameters"], cm.param_count(cm.load_model(sc.model)).total)  # in billions


def check_performance(at: AppTest, sc: Scenario) -> None:
    shown, r = metrics(at), api_estimate(sc, sc.hardware[0])
    assert_shows(shown["Time to first token"], float(r.ttft_s))
    assert_shows(shown["Time per output token"], float(r.tpot_s))
    assert_shows(shown["End to end"], float(r.e2e_s))
    per_replica = " per replica" if sc.replicas > 1 else ""
    assert_shows(shown[f"Output tokens/s{per_replica}"], float(r.output_tokens_per_s))
    assert_shows(shown["$ per million output tokens"], float(r.usd_per_million_output_tokens))
    assert_shows(shown["$ per million input tokens"], float(r.usd_per_million_input_tokens))
    assert_shows(shown["Prefill MFU"], float(r.prefill_mfu))
    assert_shows(shown["Decode MBU"], float(r.decode_mbu))


# ----------------------------------------------------------------------------------------------------
# the scenario record
# ----------------------------------------------------------------------------------------------------


def test_default_scenario_is_the_demo() -> None:
    # the default: Llama-3-8B on an H100, bf16, batch 8, 2k prompt, 256 output tokens
    assert (DEFAULT.model, DEFAULT.hardware, DEFAULT.batch_size) == ("llama-3-8b", ["h100-sxm"], 8)
    assert (DEFAULT.prompt_len, DEFAULT.output_len) == (2048, 256)
    assert {DEFAULT.weight_dtype, DEFAULT.activation_dtype, DEFAULT.kv_dtype} == {"bf16"}


def test_scenario_json_round_trip() -> None:
    config = json.loads((HF_CONFIGS / "mistral-7b.json").read_text())
    sc = Scenario(model_source="config.json", hf_config=config, hardware=["l40s", "a10g"], batch_size=3)
    assert Scenario.from_json(sc.to_json()) == sc
    assert Scenario.from_json("{}") == DEFAULT  # missing fields take their defaults


def test_the_attention_format_gives_the_workloads_component_formats() -> None:
    """'' keeps attention as the weights; a format stores it apart; bf16_except_o_proj keeps the output
    projection in the weights' format, as costmodel.memory.workload_formats gives NVIDIA's NVFP4 DeepSeek."""
    assert Scenario().component_dtypes is None
    assert Scenario(attention_dtype="bf16", weight_dtype="nvfp4").component_dtypes == {"attention": "bf16"}
    sc = Scenario(model="deepseek-v3", attention_dtype=ATTENTION_EXCEPT_O_PROJ, weight_dtype="nvfp4")
    formats = cm.memory.workload_formats(cm.load_model("deepseek-v3"), "nvfp4")
    assert (
        sc.component_dtypes
        == formats["component_dtypes"]
        == {"attention": "bf16", "attention.o_proj": "nvfp4"}
    )
    assert Scenario.from_json(sc.to_json()) == sc
    with pytest.raises(CostmodelError, match="attention_dtype"):
        Scenario.from_json('{"attention_dtype": "fp8_except_q_proj"}')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON at line 1"),
        ("[1, 2]", "must hold a JSON object, not list"),
        ('{"model": "lama-3-8b"}', "Did you mean 'llama-3-8b'"),
        ('{"batch_size": 0}', "batch_size: Input should be greater than or equal to 1"),
        ('{"hardware": ["h100"]}', "unknown hardware 'h100'"),
        ('{"colour": "red"}', "colour: unknown field"),
    ],
)
def test_bad_scenario_file_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(CostmodelError, match=re.escape(message)):
        Scenario.from_json(text)


def test_the_gpu_count_is_tp_x_pp_x_replicas() -> None:
    """Every choice of TP, PP and replicas is a deployment (issue 17, item 16): the GPU count follows."""
    sc = Scenario(tp=2, pp=2, replicas=3)
    assert (sc.n_gpus, sc.deployment().n_gpus, sc.deployment().replicas) == (12, 12, 3)
    # a scenario file of an earlier version gives the GPU count: whole replicas become `replicas`
    assert Scenario.from_json('{"n_gpus": 8, "tp": 2, "pp": 2}').replicas == 2
    with pytest.raises(
        CostmodelError, match=r"n_gpus \(6\) must be a whole number of replicas of tp x pp = 4"
    ):
        Scenario.from_json('{"n_gpus": 6, "tp": 2, "pp": 2}')


# ----------------------------------------------------------------------------------------------------
# every page on the default scenario
# ----------------------------------------------------------------------------------------------------


def test_memory_page_shows_the_api_figures() -> None:
    at = open_page("memory")
    assert not errors(at)
    check_memory(at, DEFAULT)
    assert "Fits on 1 × h100-sxm" in at.success[0].value
    figures = charts(at)
    assert len(figures) == 3
    bars = figures[0]
    f = api_fit(DEFAULT, "h100-sxm")
    assert values(trace(bars, "weights")["y"])[0] * 1e9 == pytest.approx(f.weight_bytes_per_gpu)
    assert values(trace(bars, "KV cache")["y"])[0] * 1e9 == pytest.approx(f.kv_cache_bytes_per_gpu)
    # training memory: one figure per method, each equal to costmodel.training_memory
    shown = metrics(at)
    model = cm.load_model("llama-3-8b")
    for label, method in (("full", "full"), ("LoRA r=16", "lora"), ("QLoRA r=16", "qlora")):
        expected = cm.training_memory(model, batch_size=1, seq_len=2048, method=method, zero_stage=1)
        assert_shows(shown[f"{label} per GPU"], float(expected.total))


def test_performance_page_shows_the_api_figures() -> None:
    at = open_page("performance")
    assert not errors(at)
    assert not at.warning  # the default scenario fits
    check_performance(at, DEFAULT)
    # h100-sxm is timed by the kernel models with its fitted parameters, not 'default (uncalibrated)' ones
    assert any("Kernel models with h100-sxm's fitted parameters" in c.value for c in at.caption)
    figures = charts(at)
    assert len(figures) == 4  # vs batch, vs prompt, roofline, cost by device
    # the roofline: the roof is costmodel.roofline's, the operators are Report.to_frame()'s
    report = api_estimate(DEFAULT, "h100-sxm")
    ops = report.to_frame()
    roofline = figures[2]
    prefill = ops[(ops["phase"] == "prefill") & (ops["flop"] > 0) & (ops["bytes"] > 0)]
    points = trace(roofline, "prefill operators")
    assert list(points["text"]) == list(prefill["op"])
    np.testing.assert_allclose(values(points["x"]), prefill["intensity_flop_per_byte"], rtol=1e-12)
    np.testing.assert_allclose(
        values(points["y"]) * 1e12, prefill["achieved_flop_per_s"], rtol=1e-12
    )  # TFLOP/s
    roof = trace(roofline, "achievable roof")
    h100 = cm.load_hardware("h100-sxm")
    np.testing.assert_allclose(
        values(roof["y"]) * 1e12, attainable_flop_per_s(h100, values(roof["x"])), rtol=1e-12
    )
    assert roofline["layout"]["yaxis"]["title"]["text"] == "TFLOP/s"
    # the sweep vs batch is costmodel.sweep
    swept = cm.sweep("llama-3-8b", "h100-sxm", batch_size=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])
    # TTFT reaches tens of seconds at batch 1,024: that subplot is in s, not in thousands of ms
    assert swept["ttft_s"].max() > 10
    assert figures[0]["layout"]["annotations"][0]["text"] == "TTFT [s]"
    np.testing.assert_allclose(values(trace(figures[0], "h100-sxm")["y"]), swept["ttft_s"], rtol=1e-12)
    assert figures[0]["layout"]["annotations"][1]["text"] == "TPOT [ms]"
    # the comparison ranks every built-in device with a price by $ per million output tokens
    bars = figures[3]["data"][0]
    costs = {h: float(api_estimate(DEFAULT, h).usd_per_million_output_tokens) for h in bars["y"]}
    np.testing.assert_allclose(values(bars["x"]), list(costs.values()), rtol=1e-12)
    assert list(costs.values()) == sorted(costs.values())
    assert set(bars["y"]) == {h for h in cm.list_hardware() if cm.load_hardware(h).price is not None}


def test_the_attention_format_reaches_the_headline_figures() -> None:
    """The sidebar's attention format was in the charts (sweep's component_dtypes) but not in the headline
    metrics nor the device ranking (Scenario.workload() left it out): NVIDIA's NVFP4 Gemma-4-31B with bf16
    attention showed the TPOT of all-NVFP4 weights, 5.74 ms instead of 8.11 ms on a B200."""
    query = dict(model="gemma-4-31b", hardware="b200", weight_dtype="nvfp4", attention_dtype="bf16")
    kept_apart = cm.Workload(8, 2048, 256, weight_dtype="nvfp4", component_dtypes={"attention": "bf16"})
    expected = cm.estimate("gemma-4-31b", "b200", kept_apart)
    all_nvfp4 = cm.estimate("gemma-4-31b", "b200", cm.Workload(8, 2048, 256, weight_dtype="nvfp4"))
    assert float(expected.tpot_s) > 1.2 * float(all_nvfp4.tpot_s)  # bf16 attention reads more bytes
    assert Scenario(**(query | {"hardware": ["b200"]})).workload() == kept_apart
    at = open_page("performance", **query)
    assert not errors(at)
    shown = metrics(at)
    assert_shows(shown["Time per output token"], float(expected.tpot_s))
    assert_shows(shown["Time to first token"], float(expected.ttft_s))
    bars = charts(at)[3]["data"][0]
    b200 = list(bars["y"]).index("b200")
    assert values(bars["x"])[b200] == pytest.approx(float(expected.usd_per_million_output_tokens), rel=1e-12)


def test_speculative_page_shows_the_api_figures() -> None:
    at = open_page("speculative")
    assert not errors(at)
    plan = speculative.plan(
        "llama-3-8b",
        "early-exit:8",
        "h100-sxm",
        DEFAULT.workload(),
        alpha=0.7,
        k_max=8,
        batch_sizes=[8],
    )
    best = plan.loc[plan["speedup"].idxmax()]
    shown = metrics(at)
    assert shown["Best k at batch 8"] == str(int(best["k"]))
    assert_shows(shown["Speedup at batch 8"], float(best["speedup"]))
    assert_shows(shown["c = T_draft / T_target"], float(best["c"]))
    c = float(best["c"])
    k = int(speculative.optimal_k(0.7, c, k_max=8))
    assert shown[f"Optimal k at α = 0.70, c = {c:.4g}"] == str(k)
    assert_shows(shown["Its speedup (memory-bound verify)"], float(speculative.speedup(0.7, k, c)))
    heatmap = charts(at)[0]["data"][0]
    alphas, ks = values(heatmap["y"]), values(heatmap["x"])
    np.testing.assert_allclose(
        values(heatmap["z"]), speculative.speedup(alphas[:, None], ks[None, :], c), rtol=1e-12
    )
    assert (alphas.min(), alphas.max(), ks.min(), ks.max()) == (0.0, 1.0, 1, 8)


def test_speculative_page_where_no_draft_pays_shows_plain_decoding() -> None:
    """Best k 0 stood next to 'Speedup 0.805×' and the slower draft's tokens/s: with no draft the
    deployment decodes plainly (speedup 1, batch / T_target tokens/s); the warning names the best draft."""
    at = open_page("speculative", draft="llama-3-8b")  # the target drafting itself: c = 1, never pays
    assert not errors(at)
    plan = speculative.plan(
        "llama-3-8b", "llama-3-8b", "h100-sxm", DEFAULT.workload(), alpha=0.7, k_max=8, batch_sizes=[8]
    )
    assert (plan["speedup"] < 1).all()
    shown = metrics(at)
    assert shown["Best k at batch 8"] == "0"
    assert shown["Speedup at batch 8"] == "1.000×"
    assert_shows(shown["Decode tokens/s (no draft pays)"], 8 / float(plan["target_step_s"].iloc[0]))
    best = plan.loc[plan["speedup"].idxmax()]
    assert f"the best draft is {best['speedup']:.3f}× (k = {int(best['k'])})" in at.warning[0].value
    by_batch = charts(at)[1]
    assert values(trace(by_batch, "speedup at the best k")["y"]).min() >= 1.0
    assert values(trace(by_batch, "best k (0: none pays)")["y"]).max() == 0


def test_speculative_page_says_when_the_target_does_not_fit() -> None:
    """Llama-3-70B in bf16 on one L40S (141 GB of weights, 46 GB usable) drew speedups without a word."""
    sc = Scenario(model="llama-3-70b", hardware=["l40s"])
    fit = api_fit(sc, "l40s")
    assert not bool(fit.fits)
    at = open_page("speculative", model="llama-3-70b", hardware="l40s")
    assert not errors(at)
    warning = at.warning[0].value
    assert warning.startswith("The target alone does not fit on l40s")
    assert_shows(warning.split(": ")[1].split(" per GPU")[0], float(fit.memory_bytes_per_gpu))
    assert not open_page("speculative").warning  # the default scenario fits


def test_speculative_page_offers_a_draft_of_another_vocabulary_behind_its_box() -> None:
    """Mistral-7B (32,000 tokens) cannot draft for Llama-3-8B (128,256): vLLM refuses the pair unless
    use_heterogeneous_vocab is set. The page says so naming its own box, not the API's keyword, and with the
    box ticked it shows the plan the API gives with ``heterogeneous_vocab=True``."""
    at = open_page("speculative", draft="mistral-7b")
    shown = errors(at)
    assert shown
    assert 'tick "Heterogeneous vocabulary"' in shown[0]
    assert "heterogeneous_vocab=True" not in shown[0]
    at.checkbox(key="heterogeneous_vocab").check().run()
    assert not errors(at)
    plan = speculative.plan("llama-3-8b", "mistral-7b", "h100-sxm", DEFAULT.workload(), alpha=0.7, k_max=8,
                            batch_sizes=[8], heterogeneous_vocab=True)  # fmt: skip
    best = plan.loc[plan["speedup"].idxmax()]
    # a 7B draft for an 8B target never pays: the page then shows plain decoding's 1x (dashwalk's rule)
    assert_shows(metrics(at)["Speedup at batch 8"], max(float(best["speedup"]), 1.0))


def test_speculative_page_counts_the_drafts_weights_in_the_fit_warning() -> None:
    """Llama-3-70B at tp 2 on H100s fits alone, but a Llama-3-8B draft (tp 2 as well) adds half its bf16
    weights to each GPU: 8.03e9 x 2 bytes / 2, and half its KV cache. The warning says so; an early exit (the target's own layers)
    adds nothing and draws none."""
    from costmodel.memory import weight_bytes

    sc = Scenario(model="llama-3-70b", hardware=["h100-sxm"], tp=2)
    fit = api_fit(sc, "h100-sxm")
    assert bool(fit.fits)
    draft = weight_bytes(cm.load_model("llama-3-8b"), weight_dtype="bf16") / 2
    # and its own KV cache for the page's sequences: 32 layers x 2 x 8 KV heads x 128 x 2 bytes a token, the
    # heads split over the 2 GPUs (vLLM keeps it in the target's pool)
    draft += sc.batch_size * (sc.prompt_len + sc.output_len) * 32 * 2 * 8 * 128 * 2 / 2
    assert float(fit.memory_bytes_per_gpu) + draft > fit.capacity_bytes_per_gpu
    at = open_page("speculative", model="llama-3-70b", hardware="h100-sxm", tp=2, draft="llama-3-8b")
    assert not errors(at)
    warning = at.warning[0].value
    assert warning.startswith("The target with its draft does not fit on h100-sxm")
    assert_shows(warning.split(": ")[1].split(" per GPU")[0], float(fit.memory_bytes_per_gpu) + draft)
    assert not open_page("speculative", model="llama-3-70b", hardware="h100-sxm", tp=2).warning


def test_page_widgets_change_the_figures() -> None:
    at = open_page("speculative")
    at.slider(key="alpha").set_value(0.9).run()
    at.number_input(key="draft_cost_ratio").set_value(0.05).run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Optimal k at α = 0.90, c = 0.05"] == str(int(speculative.optimal_k(0.9, 0.05, k_max=8)))


def test_validation_page_without_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed app without the results files says so, on every tab, and shows no error."""
    monkeypatch.setenv("COSTMODEL_VALIDATION_RESULTS", str(tmp_path))
    for view in ("GPU kernels", "Serving"):
        at = open_page("validation", validation_view=view)
        (info,) = [i.value for i in at.info]
        assert "public GPU evaluation is not available" in info
        assert "public-gpu-rows-sample.parquet" in info
        assert "python -m validation public" in info
        assert not errors(at)
        assert not charts(at)
    at = open_page("validation", validation_view="Reference kernels")
    assert "No validation results yet" in at.info[0].value
    assert not errors(at)


def write_results(folder: Path) -> pd.DataFrame:
    """A results file as validation/run.py writes it, plus one line that is not JSON and one OOM point."""
    rng = np.random.default_rng(0)
    measured = 10 ** rng.uniform(-5, -2, 12)
    predicted = measured * rng.uniform(0.5, 1.6, 12)
    points = pd.DataFrame(
        {
            "record": "point",
            "kernel": [f"k{i}" for i in range(12)],
            "family": ["gemm", "attention", "norm"] * 4,
            "regime": "memory",
            "held_out": [i % 2 == 0 for i in range(12)],
            "device": "cuda:0",
            "status": "ok",
            "measured_s": measured,
            "predicted_s": predicted,
            "rel_error": (predicted - measured) / measured,
        }
    )
    lines = [json.dumps({"record": "environment", "device": "cuda:0", "device_name": "NVIDIA H100"})]
    lines += [json.dumps(r) for r in points.to_dict("records")]
    lines += [
        "{truncated",
        json.dumps({"record": "point", "kernel": "big", "family": "gemm", "status": "oom"}),
    ]
    (folder / "gpu.jsonl").write_text("\n".join(lines) + "\n")
    return points


def test_validation_page_summarises_the_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    points = write_results(tmp_path)
    monkeypatch.setenv("COSTMODEL_VALIDATION_RESULTS", str(tmp_path))
    at = open_page("validation", validation_view="Reference kernels")
    assert not errors(at)
    assert "Skipped 1 line" in at.warning[0].value
    shown = metrics(at)
    assert shown["Points"] == "12"
    assert_shows(shown["Median |error|"], points["rel_error"].abs().median())
    assert_shows(shown["Held-out median |error|"], points[points["held_out"]]["rel_error"].abs().median())
    scatter, by_family = charts(at)
    assert len(scatter["data"]) == 3 + 3  # three families, the exact line and two bands
    assert sorted(by_family["data"][0]["x"]) == ["attention", "gemm", "norm"]
    at.toggle[0].set_value(True).run()  # held-out only
    assert metrics(at)["Points"] == "6"
    # the filters are in the URL: a link reproduces the filtered view, and says nothing
    at = open_page(
        "validation",
        validation_view="Reference kernels",
        reference_families=["gemm"],
        reference_held_out="true",
    )
    assert not errors(at)
    assert len(at.warning) == 1  # the skipped line's, no ignored link parameter
    chosen = points[(points["family"] == "gemm") & points["held_out"]]
    assert metrics(at)["Points"] == str(len(chosen))
    assert_shows(metrics(at)["Median |error|"], chosen["rel_error"].abs().median())


RESULTS = Path(__file__).resolve().parents[1] / "validation" / "results"


def committed_public() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The committed sample, regime table, per-family table and summary, as the page reads them."""
    sample = pd.read_parquet(RESULTS / "public-gpu-rows-sample.parquet")
    regimes = json.loads((RESULTS / "public-gpu-regimes.json").read_text())
    table = pd.DataFrame(regimes["regimes"]["data"], columns=regimes["regimes"]["columns"])
    families = pd.DataFrame(regimes["families"]["data"], columns=regimes["families"]["columns"])
    summary = json.loads((RESULTS / "public-gpu-summary.json").read_text())
    return sample, table, families, summary


def test_validation_page_shows_the_public_evaluation_per_device_and_family(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From the committed files: the headline figures are the family's rows on the device, the scatter
    plots the sampled rows of both splits with the exact line, and the regimes and the summary follow."""
    monkeypatch.delenv("COSTMODEL_VALIDATION_RESULTS", raising=False)
    sample, table, families, summary = committed_public()
    at = open_page("validation", validation_device="h100_sxm", validation_family="GEMM (gemm)")
    assert not errors(at)
    held = families.query("system == 'h100_sxm' and family == 'gemm' and split == 'held-out'").iloc[0]
    shown = metrics(at)
    assert shown["Held-out rows"] == f"{int(held['n']):,}"
    assert_shows(shown["Held-out median"], held["median_abs_err"])
    assert_shows(shown["Held-out p90"], held["p90_abs_err"])
    figures = charts(at)
    scatter = figures[0]
    points = [t for t in scatter["data"] if t.get("mode") == "markers"]
    expected = sample.query("system == 'h100_sxm' and family == 'gemm' and metric == 'latency'")
    assert sum(len(values(t["x"])) for t in points) == len(expected)
    assert {a["text"] for a in scatter["layout"]["annotations"]} == {"held-out", "calibration"}
    assert scatter["layout"]["xaxis"]["type"] == "log"
    assert scatter["layout"]["yaxis"]["type"] == "log"
    exact = [t for t in scatter["data"] if t.get("name") == "predicted = measured"]
    assert len(exact) == 2
    assert all(list(values(t["x"])) == list(values(t["y"])) for t in exact)
    assert "m=" in points[0]["hovertext"][0]  # the shape on hover
    regimes = figures[1]
    gemm_m = table.query("system == 'h100_sxm' and family == 'gemm' and axis == 'm (tokens)'")
    bars = [t for t in regimes["data"] if t["type"] == "bar"]
    assert sum(len(t["x"]) for t in bars) == len(gemm_m)
    frame = next(
        d.value for d in at.dataframe if "Rows" in d.value.columns
    )  # the summary, not a chart's numbers
    assert {"Split", "Rows", "Median |error| [%]", "p90 |error| [%]"} <= set(frame.columns)
    rows = [e for e in summary["kernels"] if e["system"] == "h100_sxm" and e["family"] == "gemm"]
    assert len(frame) == len(rows)
    assert frame["Rows"].sum() == sum(e["n"] for e in rows)

    at.selectbox(key="validation_family").set_value("all_reduce").run()
    assert not errors(at)
    assert at.radio(key="regime_kernels").options == ["message size", "GPUs"]
    at.radio(key="regime_kernels").set_value("GPUs").run()
    bars = [t for t in charts(at)[1]["data"] if t["type"] == "bar"]
    assert {x for t in bars for x in t["x"]} == {"2", "4", "8"}


@pytest.mark.parametrize("family", ["all_reduce", "gemm"])
def test_a_validation_link_to_a_kernel_family_says_nothing(
    monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    """The family selector shows labels, and Streamlit writes the label into the URL: a shared link to
    a family showed it and yet warned 'validation_family = All-reduce (all_reduce): not a value this
    page's input takes'. A name that is no family's label is still named."""
    monkeypatch.delenv("COSTMODEL_VALIDATION_RESULTS", raising=False)
    families = committed_public()[2]
    label = {"all_reduce": "All-reduce (all_reduce)", "gemm": "GEMM (gemm)"}[family]
    at = open_page("validation", validation_device="h100_sxm", validation_family=label)
    assert not errors(at)
    assert not at.warning
    held = families.query(f"system == 'h100_sxm' and family == '{family}' and split == 'held-out'").iloc[0]
    assert metrics(at)["Held-out rows"] == f"{int(held['n']):,}"
    at = open_page("validation", validation_device="h100_sxm", validation_family="all-reduce")
    note = re.sub(r"\\(.)", r"\1", at.warning[0].value).replace("**", "")
    assert "validation_family = all-reduce: not a value this page's input takes" in note


def test_validation_page_shows_a_selection_the_same_after_visiting_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The page keeps its files, their index and its charts in caches shared by every rerun and session:
    showing never changes them, so a device and family look the same after others were shown, and the
    scatter holds exactly the sampled rows of the selection."""
    monkeypatch.delenv("COSTMODEL_VALIDATION_RESULTS", raising=False)
    sample = committed_public()[0]

    def shown(at: AppTest) -> tuple[list[dict[str, Any]], list[str]]:
        return charts(at), [d.value.to_csv() for d in at.dataframe]

    at = open_page("validation", validation_device="h100_sxm", validation_family="GEMM (gemm)")
    first = shown(at)
    for system, family in (("b200_sxm", "moe"), ("h100_sxm", "all_reduce"), ("a100_sxm", "gemm")):
        at.selectbox(key="validation_device").set_value(system).run()
        at.selectbox(key="validation_family").set_value(family).run()
        assert not errors(at)
        points = [t for t in charts(at)[0]["data"] if t.get("mode") == "markers"]
        rows = sample.query("system == @system and family == @family and metric == 'latency'")
        assert sum(len(values(t["x"])) for t in points) == len(rows)
    at.selectbox(key="validation_device").set_value("h100_sxm").run()
    at.selectbox(key="validation_family").set_value("gemm").run()
    assert shown(at) == first


@pytest.mark.parametrize("present", ["public-gpu-summary.json", "public-gpu-rows-sample.parquet"])
def test_validation_page_with_one_public_file_names_the_missing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, present: str
) -> None:
    (tmp_path / present).write_bytes((RESULTS / present).read_bytes())
    monkeypatch.setenv("COSTMODEL_VALIDATION_RESULTS", str(tmp_path))
    for view in ("GPU kernels", "Serving"):
        at = open_page("validation", validation_view=view)
        assert not errors(at)
        assert "public GPU evaluation is not available" in at.info[0].value
        assert present not in at.info[0].value
        assert "public-gpu-regimes.json" in at.info[0].value


def test_validation_page_shows_serving_per_system_and_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COSTMODEL_VALIDATION_RESULTS", raising=False)
    sample, _, _, summary = committed_public()
    at = open_page("validation", validation_view="Serving", validation_serving_device="h100_sxm")
    assert not errors(at)
    tables = [d.value for d in at.dataframe]
    serving = next(t for t in tables if "Rows predicted" in t.columns)
    rows = [e for e in summary["silicon"] if e["system"] == "h100_sxm"]
    assert len(serving) == len(rows)
    assert set(serving["Metric"]) == {"TTFT", "TPOT"}
    scatter = next(
        c for c in charts(at) if any(a["text"] == "ttft" for a in c["layout"].get("annotations", []))
    )
    points = [t for t in scatter["data"] if t.get("mode") == "markers"]
    expected = sample.query("system == 'h100_sxm' and family == 'serving'")
    assert sum(len(values(t["x"])) for t in points) == len(expected)


# ----------------------------------------------------------------------------------------------------
# edge values
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 1024])
def test_batch_size_extremes(batch_size: int) -> None:
    sc = Scenario(batch_size=batch_size)
    at = open_page("memory", batch_size=batch_size)
    check_memory(at, sc)
    at = open_page("performance", batch_size=batch_size)
    check_performance(at, sc)
    assert bool(api_estimate(sc, "h100-sxm").fits) == (not at.warning)
    at = open_page("speculative", batch_size=batch_size)
    assert f"Best k at batch {batch_size:,}" in metrics(at)


def test_a_model_that_does_not_fit() -> None:
    sc = Scenario(model="llama-3.1-405b", hardware=["h100-sxm", "mi300x"])
    query = {"model": sc.model, "hardware": sc.hardware}
    at = open_page("memory", **query)
    assert "Does not fit on 1 × h100-sxm" in at.warning[0].value
    check_memory(at, sc)
    at = open_page("performance", **query)
    assert "Does not fit on h100-sxm" in at.warning[0].value
    check_performance(at, sc)  # the times are still shown, with the warning
    assert len(charts(at)) == 4
    assert not errors(at)


def splits(model: cm.ModelProfile, tp: int) -> bool:
    try:
        cm.Deployment(tp=tp).check(model)
    except ValueError:
        return False
    return True


def test_tensor_parallel_that_does_not_divide_the_heads() -> None:
    with pytest.raises(ValueError, match="tp") as raised:
        cm.Deployment(tp=3).check(cm.load_model("llama-3-8b"))
    # costmodel's reason, and the degrees that do split the model (each checked by costmodel itself)
    works = [tp for tp in range(1, 129) if splits(cm.load_model("llama-3-8b"), tp)]
    assert works == [1, 2, 4, 8, 16, 32]  # the divisors of 32 heads that keep 8 KV heads whole or copied
    message = f"{raised.value}; TP that works for llama-3-8b: {', '.join(map(str, works))}"
    for page in ("performance", "speculative", "compression"):
        at = open_page(page, tp=3)
        assert errors(at) == [message]
        assert at.number_input(key="tp").value == 3  # the sidebar still works
    at = open_page("memory", tp=3)  # memory is per device: no figures for an impossible split
    assert errors(at) == [message]
    assert not at.success
    assert not metrics(at)


@pytest.mark.parametrize("page", ["memory", "performance", "speculative", "compression"])
def test_changing_tp_or_pp_keeps_every_page_coherent(page: str) -> None:
    """TP and PP change the replica and the GPU count follows (issue 17, item 16): no page is blank until
    another input is changed too, and Memory never shows an error beside a "Fits" banner."""
    at = open_page(page)
    for tp, pp, replicas in ((2, 1, 1), (4, 2, 1), (8, 1, 3)):
        at.number_input(key="tp").set_value(tp).run()
        at.number_input(key="pp").set_value(pp).run()
        at.number_input(key="replicas").set_value(replicas).run()
        assert not at.exception
        assert not errors(at), (tp, pp, errors(at))
        assert metrics(at), (tp, pp)
        assert f"{tp * pp * replicas} GPUs: TP {tp} × PP {pp}" in " ".join(
            c.value for c in at.sidebar.caption
        )
        assert not (at.success and at.error)
        if page == "performance":
            check_performance(at, Scenario(tp=tp, pp=pp, replicas=replicas))
        if page == "memory":
            check_memory(at, Scenario(tp=tp, pp=pp, replicas=replicas))


def test_a_device_that_cannot_run_the_scenario_is_left_out() -> None:
    at = open_page("performance", hardware=["h100-sxm", "a100-80gb"], activation_dtype="fp8")
    message = errors(at)
    assert len(message) == 1  # once, though two charts left it out
    assert "'a100-80gb' has no 'fp8' peak" in message[0]
    check_performance(at, Scenario(hardware=["h100-sxm", "a100-80gb"], activation_dtype="fp8"))
    # the first device itself: the headline says why, and the charts do not say it again
    at = open_page("performance", hardware=["a100-80gb", "h100-sxm"], activation_dtype="fp8")
    message = errors(at)
    assert len(message) == 1
    assert "'a100-80gb' has no 'fp8' peak" in message[0]
    by_batch = charts(at)[0]
    assert {t["name"] for t in by_batch["data"]} == {"h100-sxm"}


def test_switching_to_a_dense_model_drops_the_moe_settings_it_has_no_widget_for() -> None:
    """Mixtral with attention DP 2 x MoE EP 4, then Llama-3-8B chosen in the sidebar: the attention-DP
    widget went away but its 2 stayed (from the URL), and the page said 'attention_dp (2) > 1 needs a
    mixture-of-experts model' with nothing in the sidebar to change it. The sidebar's '2 GPUs: TP 2' was
    right; the page now agrees with it. A link that gives a dense model an MoE setting says so."""
    at = open_page("performance", model="mixtral-8x7b", tp=2, attention_dp=2, moe_ep=4, expert_dtype="int4")
    assert not errors(at)
    at.selectbox(key="model").set_value("llama-3-8b").run()
    assert not at.exception
    assert not errors(at)
    check_performance(at, Scenario(tp=2))
    assert "routed experts" not in at.caption[0].value
    at = open_page("performance", tp=2, attention_dp=2)
    assert not errors(at)
    check_performance(at, Scenario(tp=2))
    note = re.sub(r"\\(.)", r"\1", at.warning[0].value).replace("**", "")
    assert "attention_dp = 2: for mixture-of-experts models only; this one is dense. Using 1." in note


def test_widget_change_updates_the_figures() -> None:
    at = open_page("performance")
    at.number_input(key="batch_size").set_value(64).run()
    at.multiselect(key="hardware").set_value(["a100-80gb", "h100-sxm"]).run()
    assert not at.exception
    check_performance(at, Scenario(batch_size=64, hardware=["a100-80gb", "h100-sxm"]))


# ----------------------------------------------------------------------------------------------------
# readable charts and tables (issue 17, item 17)
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "title", "factor"),
    [
        ("ttft_p99_s", "TTFT p99 [ms]", 1e3),
        ("memory_bytes_per_gpu", "Memory [GB per GPU]", 1e-9),
        ("weights_bytes", "Weights [GB]", 1e-9),
        ("achieved_flop_per_s", "Achieved [TFLOP/s]", 1e-12),
        ("intensity_flop_per_byte", "Intensity [FLOP/byte]", 1.0),
        ("rate_per_replica_per_s", "Rate per replica [requests/s]", 1.0),
        ("output_tokens_per_s", "Output [tokens/s]", 1.0),
        ("usd_per_million_output_tokens", "$ per million output tokens", 1.0),
        ("tokens_per_s_per_user", "Tokens/s per user", 1.0),
        ("output_tokens_per_s_per_gpu", "Output tokens/s per GPU", 1.0),
        ("meets_slo", "Meets SLO", 1.0),
        ("max_batch_size", "Largest batch size", 1.0),
        ("kv_dtype", "KV format", 1.0),
        ("reason", "Reason", 1.0),
        ("k", "k", 1.0),
    ],
)
def test_table_headers_are_words_with_their_unit(name: str, title: str, factor: float) -> None:
    assert header(name) == (title, factor)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0072603, "7.26 ms"), (0.9999, "999.9 ms"), (2.1853, "2.185 s"), (9999.4, "9,999 s"),
     (41050.2, "41,050 s"), (7.192e7, "71,920,000 s")],
)  # fmt: skip
def test_durations_read_as_numbers_never_scientific_notation(seconds: float, text: str) -> None:
    """A headline time of batch 1,000,000 showed '4.105e+04 s'."""
    assert duration(seconds) == text


def test_tables_show_four_significant_digits_in_the_headers_units() -> None:
    frame = pd.DataFrame(
        {"hardware": ["h100-sxm"], "ttft_p99_s": [0.123456], "weights_bytes": [16060522496], "fits": [True]}
    )
    shown = human(frame)
    assert list(shown.columns) == ["Hardware", "TTFT p99 [ms]", "Weights [GB]", "Fits"]
    assert shown.iloc[0].tolist() == ["h100-sxm", 123.5, 16.06, True]


@settings(max_examples=200, deadline=None)
@given(st_.floats(-6, 15), st_.floats(0.2, 12))
def test_log_axis_ticks(low_exponent: float, decades: float) -> None:
    """Several labelled ticks on every log axis, however short, never a crowd; one format per axis."""
    low, high = 10.0**low_exponent, 10.0 ** (low_exponent + decades)
    ticks = log_ticks(low, high)
    inside = [t for t in ticks if low <= t <= high]
    assert len(inside) >= 2, (low, high, ticks)
    assert len(inside) <= 15
    assert ticks == sorted(ticks)
    text = tick_text(ticks)
    styles = {"e" if "e" in t else "si" if t[-1] in "kMG" else "plain" for t in text}
    assert len(styles) == 1 or styles == {"si", "plain"}, text  # 300, 1k, 3k is one style
    assert len(set(text)) == len(text), text  # no two ticks read the same


def log_axes(figure: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in figure["layout"].items() if k[1:5] == "axis" and v.get("type") == "log"}


@pytest.mark.parametrize("page", ["memory", "performance", "capacity"])
def test_log_axes_are_labelled_between_decades_in_sensible_units(page: str) -> None:
    at = open_page(page)
    for figure in charts(at):
        for name, axis in log_axes(figure).items():
            assert len(axis.get("tickvals", [])) >= 3, (page, name)
            assert len(set(axis["ticktext"])) == len(axis["ticktext"])
    if page == "performance":  # no axis of milliseconds in the thousands of thousands
        for figure in charts(at):
            titles = [a["text"] for a in figure["layout"].get("annotations", []) if "[ms]" in a["text"]]
            for i, title in enumerate(titles):
                axis = figure["layout"]["yaxis" + (str(i + 2) if i else "")]
                assert max(axis["tickvals"]) < 1e5, title


def test_memory_charts_keep_one_meaning_per_colour_and_no_labels_on_the_bars() -> None:
    at = open_page("memory", hardware=["h100-sxm", "a100-80gb", "h200"])
    breakdown, by_context, training = charts(at)
    component = {
        t["name"]: t["marker"]["color"] for t in breakdown["data"] + training["data"] if t["type"] == "bar"
    }
    assert component["weights"] == trace(training, "weights")["marker"]["color"]
    assert component["activations"] == trace(training, "activations")["marker"]["color"]
    devices = {t["name"]: t["line"]["color"] for t in by_context["data"] if t["name"] != "this scenario"}
    assert set(devices) == {"h100-sxm", "a100-80gb", "h200"}
    assert not set(devices.values()) & set(component.values())  # a colour means a device or a component
    assert len(set(devices.values())) == 3
    # device memory in the training chart: named in the legend, one line per size, no label over the bars
    assert not training["layout"].get("annotations")
    lines = [t["name"] for t in training["data"] if t["type"] == "scatter"]
    gb = {name: cm.load_hardware(name).memory_bytes / 1e9 for name in ("h100-sxm", "a100-80gb", "h200")}
    assert gb["h100-sxm"] == gb["a100-80gb"] != gb["h200"]
    assert lines == [
        f"h100-sxm, a100-80gb memory ({gb['h100-sxm']:,.2f} GB)",
        f"h200 memory ({gb['h200']:,.2f} GB)",
    ]
    # a device keeps its colour on the Performance page
    at.switch_page("views/performance.py").run()
    latency = charts(at)[0]
    assert {t["name"]: t["line"]["color"] for t in latency["data"] if t.get("showlegend", True)} == devices


def test_capacity_curves_name_the_unstable_range_in_the_legend() -> None:
    at = open_page("capacity", rate_per_s=100, tp_degrees=[1])
    curves = charts(at)[-1]
    assert not [a for a in curves["layout"].get("annotations", []) if a["text"] == "unstable"]
    assert trace(curves, "unstable (at or beyond saturation)")


def test_capacity_latency_axes_stay_near_the_objectives() -> None:
    """The p99 climbs without bound near saturation: the axes end at 20 x the objective (10 s for 500 ms,
    1 s for 50 ms), not at hundreds of thousands of ms."""
    curves = charts(open_page("capacity"))[-1]
    assert 10 ** curves["layout"]["yaxis"]["range"][1] == pytest.approx(20 * 500)
    assert 10 ** curves["layout"]["yaxis2"]["range"][1] == pytest.approx(20 * 50)
    assert max(curves["layout"]["yaxis"]["tickvals"]) <= 1.5 * 20 * 500


# ----------------------------------------------------------------------------------------------------
# shared links with values the dashboard cannot use (issue 17, item 9)
# ----------------------------------------------------------------------------------------------------


def link_notes(at: AppTest) -> list[str]:
    """The lines of the warning that lists what the link asked for and the page ignored."""
    shown = [re.sub(r"\\(.)", r"\1", w.value) for w in at.warning if w.value.startswith("This link")]
    return shown[0].split("\n")[1:] if shown else []


@pytest.mark.parametrize(
    ("page", "query", "reason", "used"),
    [
        (
            "memory",
            {"model": "llama-9-8b"},
            "unknown model 'llama-9-8b'. Did you mean 'llama-3-8b'",
            "llama-3-8b",
        ),
        ("performance", {"batch_size": "-5"}, "greater than or equal to 1", "8"),
        (
            "speculative",
            {"weight_dtype": "int3"},
            "unknown dtype 'int3'. Did you mean 'int8', 'int4'",
            "bf16",
        ),
        ("memory", {"batch_size": "1e400"}, "a finite number", "8"),  # was a traceback on every page
        ("capacity", {"prompt_len": "inf"}, "a finite number", "2048"),
        ("compression", {"hardware": ["h100", "l40s"]}, "unknown hardware 'h100'", "l40s"),
        ("memory", {"alpha": "2"}, "less than or equal to 1", "0.7"),  # another page's option, checked here
        ("capacity", {"rate_per_s": "inf"}, "not a value this page's input takes", "10.0"),
        ("capacity", {"tp_degrees": ["1", "3"]}, "not a value this page's input takes", "1"),
        ("performance", {"batch_size": "12.5"}, "a valid integer", "12"),  # Streamlit truncates: said so
    ],
)
def test_a_link_with_an_invalid_value_says_what_it_ignored(
    page: str, query: dict[str, Any], reason: str, used: str
) -> None:
    (key, value), valid = next(iter(query.items())), {"output_len": 128}  # one bad value, one good one
    at = open_page(page, **query, **valid)
    notes = link_notes(at)
    assert len(notes) == 1, notes
    given = ", ".join(value) if isinstance(value, list) else value
    assert notes[0].startswith(f"- **{key}** = {given}: "), notes
    assert reason in notes[0], notes
    assert notes[0].endswith(f"Using {used}."), notes
    assert at.number_input(key="output_len").value == 128  # the rest of the link is used
    assert not errors(at)


def test_a_link_names_every_parameter_it_ignores_and_the_notes_can_be_dismissed() -> None:
    at = open_page("performance", batch_size="-5", colour="red", n_gpus="4", kv_dtype="fp8")
    notes = link_notes(at)
    assert [n.split(" = ")[0] for n in notes] == ["- **batch_size**", "- **colour**", "- **n_gpus**"]
    assert "not an input of this page (unknown name)" in notes[1]
    assert "GPUs are now TP × PP × replicas: give `replicas`" in notes[2]
    check_performance(at, Scenario(kv_dtype="fp8"))  # what the link got right is used
    at.switch_page("views/memory.py").run()  # the notes stay until dismissed
    assert link_notes(at) == notes
    at.button(key="dismiss_link_warnings").click().run()
    assert not link_notes(at)


def test_a_valid_link_says_nothing() -> None:
    query = {"batch_size": "16", "hardware": ["l40s", "h100-sxm"], "tp": "2", "replicas": "2", "alpha": "0.5"}
    for page in ("performance", "speculative"):
        at = open_page(page, **query)
        assert not link_notes(at)
    assert at.slider(key="alpha").value == 0.5


# ----------------------------------------------------------------------------------------------------
# uploads
# ----------------------------------------------------------------------------------------------------


def upload_config(content: bytes, page: str = "memory") -> AppTest:
    at = open_page(page, model_source="config.json")
    at.file_uploader(key="config_upload").set_value(("config.json", content, "application/json")).run()
    assert not at.exception
    return at


def test_uploaded_config_is_the_model() -> None:
    at = upload_config((HF_CONFIGS / "llama-3-8b.json").read_bytes())
    assert not errors(at)
    check_memory(at, DEFAULT)  # the same architecture as the built-in profile
    at.switch_page("views/performance.py").run()
    check_performance(at, DEFAULT)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{ not json", "config.json is not valid JSON: Expecting property name enclosed in double quotes"),
        (b'["a list"]', "config.json must hold a JSON object, not list"),
        (b'{"model_type": "bert"}', "unsupported model_type 'bert'"),
        (b'{"model_type": "llama", "hidden_size": 4096}', "lacks 'num_attention_heads'"),
        (b'{"model_type": ["llama"]}', "unsupported model_type ['llama']"),
        (
            b'{"model_type": "gpt2", "n_embd": "768", "n_layer": 12, "n_head": 12, "vocab_size": 50257, '
            b'"n_positions": 1024}',
            "config.json field 'n_embd' must be a whole number, got string '768'",
        ),
        (b"[" * 50_000 + b"]" * 50_000, "oversized number or nesting"),
        (b'{"n_embd": ' + b"9" * 5000 + b"}", "oversized number or nesting"),
        (
            b'{"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 3, '
            b'"head_dim": 100000000000, "intermediate_size": 14336, "vocab_size": 128256, '
            b'"max_position_embeddings": 8192}',
            "'head_dim' must lie in",
        ),
    ],
)
def test_invalid_upload_gives_a_friendly_message(content: bytes, message: str) -> None:
    for page in PAGES[:3]:
        at = upload_config(content, page)
        shown = errors(at)
        assert len(shown) == 2, shown  # in the sidebar and on the page
        assert all(message in m for m in shown), shown
        assert at.number_input(key="batch_size").value == 8  # the rest of the app still works


def test_scenario_upload_sets_every_widget() -> None:
    sc = Scenario(model="mistral-7b", hardware=["l40s"], batch_size=16, kv_dtype="fp8", alpha=0.5)
    at = open_page("performance")
    at.file_uploader(key="scenario_upload").set_value(("s.json", sc.to_json().encode(), "application/json"))
    at.run()
    assert not at.exception
    assert at.selectbox(key="model").value == "mistral-7b"
    assert at.multiselect(key="hardware").value == ["l40s"]
    check_performance(at, sc)
    at.switch_page("views/speculative.py").run()
    assert at.slider(key="alpha").value == 0.5


def test_bad_scenario_upload_keeps_the_scenario() -> None:
    at = open_page("memory")
    at.file_uploader(key="scenario_upload").set_value(("s.json", b'{"batch_size": -1}', "application/json"))
    at.run()
    assert "s.json: invalid scenario file" in errors(at)[0]
    check_memory(at, DEFAULT)


def test_reset_restores_the_default() -> None:
    at = open_page("memory", batch_size=99, model="gpt2")
    at.button(key="reset").click().run()
    check_memory(at, DEFAULT)


def test_scenario_file_carries_an_uploaded_config() -> None:
    config = json.loads((HF_CONFIGS / "mistral-7b.json").read_text())
    sc = Scenario(model_source="config.json", hf_config=config, batch_size=4)
    at = open_page("memory")
    at.file_uploader(key="scenario_upload").set_value(("s.json", sc.to_json().encode(), "application/json"))
    at.run()
    assert at.radio(key="model_source").value == "config.json"
    assert not errors(at)
    check_memory(at, Scenario(model="mistral-7b", batch_size=4))  # the same architecture as the built-in


def test_no_hardware_selected_gives_a_message_and_the_default() -> None:
    at = open_page("performance")
    at.multiselect(key="hardware").set_value([]).run()
    assert not at.exception
    assert "choose at least one hardware profile" in at.warning[0].value
    check_performance(at, DEFAULT)


# ----------------------------------------------------------------------------------------------------
# capacity planning
# ----------------------------------------------------------------------------------------------------

SLO = capacity.SLO(ttft_s=0.5, tpot_s=0.05)  # the page's defaults: p99 TTFT 500 ms, p99 TPOT 50 ms


def api_traffic(rate: float = 10.0, context: int = 8192) -> Traffic:
    """The page's default traffic: lognormal prompts (sigma 0.8) and geometric outputs with the
    scenario's means, capped at the model's context."""
    return Traffic(
        rate,
        Lengths.lognormal(DEFAULT.prompt_len, 0.8, max_tokens=context),
        Lengths.geometric(DEFAULT.output_len, max_tokens=context),
    )


def api_curve(tp: int, batch_limit: int, rates: np.ndarray, traffic: Traffic) -> capacity.ServingMetrics:
    """capacity.analyze of one replica built as plan() builds it, with the planner's quadrature points."""
    engine = capacity.candidate_engine("llama-3-8b", "h100-sxm", tp=tp)  # the page's engine: vLLM
    return capacity.analyze(
        engine, traffic, rate_per_s=rates, max_batch_size=batch_limit, samples=capacity.PLAN_SAMPLES
    )


def subplot(figure: dict[str, Any], name: str, axis: str) -> dict[str, Any]:
    """The trace ``name`` on the subplot whose x axis is ``axis`` ('x', 'x2')."""
    return next(t for t in figure["data"] if t.get("name") == name and t.get("xaxis", "x") == axis)


def test_capacity_page_shows_the_plan() -> None:
    at = open_page("capacity")
    assert not errors(at)
    assert not at.warning
    plan = capacity.plan("llama-3-8b", ["h100-sxm"], api_traffic(), SLO, tp=(1, 2, 4, 8))
    best = plan.iloc[0]
    shown = metrics(at)
    assert shown["Cheapest device"] == best["hardware"]
    assert shown["TP"] == str(best["tp"])
    assert shown["Replicas"] == str(best["replicas"])
    assert shown["GPUs"] == str(best["gpus"])
    assert shown["Batch limit"] == str(best["max_batch_size"])
    assert_shows(shown["$ per hour"], best["usd_per_hour"])
    assert_shows(shown["$ per million tokens"], best["usd_per_million_tokens"])
    assert_shows(shown["p99 TTFT"], best["ttft_p99_s"])
    assert_shows(shown["p99 TPOT"], best["tpot_p99_s"])
    assert_shows(shown["Utilisation per replica"], best["utilization"])
    # the ranked table is plan()'s, row for row
    pd.testing.assert_frame_equal(table(at, 0, plan.columns), plan, check_dtype=False, rtol=SHOWN)
    cost, curves = charts(at)
    np.testing.assert_allclose(values(cost["data"][0]["y"]), plan["usd_per_hour"], rtol=1e-12)
    # the curves: analyze() of the cheapest plan's replica; the star is the plan's row
    rates = values(subplot(curves, "p99", "x")["x"])
    m = api_curve(int(best["tp"]), int(best["max_batch_size"]), rates, api_traffic())
    stable = np.asarray(m.stable)
    assert stable[0]  # from 2 % of saturation ...
    assert not stable[-1]  # ... to 125 %
    for axis, metric in (("x", "ttft"), ("x2", "tpot")):
        y = values(subplot(curves, "p99", axis)["y"])
        np.testing.assert_allclose(y[stable], m.quantile(metric, 0.99)[stable] * 1e3, rtol=1e-12)
        assert np.isnan(y[~stable]).all()  # unstable load has no latency, not a number
        star = subplot(curves, "this load", axis)
        assert values(star["x"])[0] == pytest.approx(best["rate_per_replica_per_s"])
        assert values(star["y"])[0] == pytest.approx(best[f"{metric}_p99_s"] * 1e3, rel=1e-12)
        objective = values(subplot(curves, "p99 objective", axis)["y"])
        assert set(objective) == {SLO.ttft_s * 1e3 if metric == "ttft" else SLO.tpot_s * 1e3}
    assert_shows(shown["Saturation [requests/s]"], float(m.max_rate_per_s[0]))
    # a page option changes the plan, and lands in the URL-bound widget
    at.number_input(key="rate_per_s").set_value(40.0).run()
    assert not at.exception
    best = capacity.plan("llama-3-8b", ["h100-sxm"], api_traffic(40.0), SLO, tp=(1, 2, 4, 8)).iloc[0]
    shown = metrics(at)
    assert (shown["TP"], shown["Replicas"]) == (str(best["tp"]), str(best["replicas"]))
    assert_shows(shown["$ per hour"], best["usd_per_hour"])
    # the engine selector reaches plan(): "none" is the kernels alone
    at.selectbox(key="capacity_engine").set_value("none").run()
    assert not at.exception
    best = capacity.plan(
        "llama-3-8b", ["h100-sxm"], api_traffic(40.0), SLO, tp=(1, 2, 4, 8), engine=None
    ).iloc[0]
    shown = metrics(at)
    assert (shown["TP"], shown["Replicas"]) == (str(best["tp"]), str(best["replicas"]))
    assert_shows(shown["p99 TTFT"], best["ttft_p99_s"])


def test_capacity_curve_on_an_unpriced_device_is_its_plan_with_the_fewest_gpus() -> None:
    """h20 has no price, so plan() leaves its rows in TP order: the curve was drawn for TP 4 x 3 replicas
    (12 GPUs), called 'the cheapest plan on h20', where TP 8 x 1 replica (8 GPUs) also meets the SLOs."""
    assert cm.load_hardware("h20").price is None
    # the case as it was found, on the kernels alone (with vLLM's costs plan()'s first row is the fewest)
    plan = capacity.plan("llama-3-8b", ["h20"], api_traffic(), SLO, tp=(1, 2, 4, 8), engine=None)
    feasible = plan[plan["feasible"]]
    fewest = feasible.loc[feasible["gpus"].idxmin()]
    assert int(fewest["gpus"]) < int(feasible.iloc[0]["gpus"])  # plan()'s first row is not the fewest
    at = open_page("capacity", hardware=["h20", "h100-sxm"], capacity_engine="none")
    assert not errors(at)
    title = f"p99 latency vs load on one h20 replica, TP {int(fewest['tp'])}, batch limit {int(fewest['max_batch_size'])}"
    assert title in [h.value for h in at.subheader]
    note = (
        f"The plan with the fewest GPUs (no price to rank by) on h20: {int(fewest['replicas'])} replica(s)."
    )
    assert any(c.value.startswith(note) for c in at.caption)


def test_capacity_page_names_the_sidebar_inputs_it_does_not_use_and_writes_rates_as_numbers() -> None:
    """The planner takes no attention DP nor MoE split: the caption now says so for an MoE model, as the
    Pareto page does. 100,000 requests/s read "1e+05 requests/s" and $208,300 per hour "$2.083e+05"."""
    at = open_page("capacity", model="mixtral-8x7b", tp=2, attention_dp=2, moe_ep=2, rate_per_s=100000)
    assert not errors(at)
    caption = at.caption[0].value
    assert (
        "the sidebar's TP, PP, replicas, attention DP, MoE TP and EP and batch size are not used" in caption
    )
    assert "at 100,000 requests/s" in caption
    assert "e+" not in " ".join([caption, *(w.value for w in at.warning), *metrics(at).values()])
    assert "attention DP" not in open_page("capacity").caption[0].value  # a dense model has none


def test_capacity_page_when_no_candidate_meets_the_slo() -> None:
    # 1 ms to the first token is out of reach, and 100 requests/s swamp one replica
    at = open_page("capacity", ttft_slo_ms=1, rate_per_s=100, tp_degrees=[1, 2])
    assert not errors(at)
    assert "No candidate meets p99 TTFT ≤ 1 ms" in at.warning[0].value
    plan = capacity.plan(
        "llama-3-8b", ["h100-sxm"], api_traffic(100.0), capacity.SLO(ttft_s=0.001, tpot_s=0.05), tp=(1, 2)
    )
    shown = table(at, 0, plan.columns)
    assert not shown["feasible"].any()
    assert list(shown["reason"]) == list(plan["reason"])
    reasons = " ".join(m.value for m in at.markdown)  # and in full below the table
    assert all(ui_plain(r) in reasons for r in plan["reason"])
    assert len(charts(at)) == 1  # no cost bars, only the curves
    shown = metrics(at)
    assert "Replicas" not in shown
    # the curves are one TP 1 replica taking all 100 requests/s: beyond saturation, said so
    assert shown["p99 TTFT at this load"] == shown["p99 TPOT at this load"] == "unstable"
    assert "the queue grows without bound" in at.warning[1].value
    saturation = float(api_curve(1, 256, np.array([1.0]), api_traffic(100.0)).max_rate_per_s[0])
    assert_shows(shown["Saturation [requests/s]"], saturation)


def test_capacity_page_with_a_model_and_a_device_that_cannot_serve() -> None:
    # llama-3.1-405b leaves no KV cache on H100s up to TP 8; the CPU has no engine default token budget
    at = open_page("capacity", model="llama-3.1-405b", hardware=["h100-sxm", "cpu"], tp_degrees=[1, 2])
    assert not errors(at)
    shown = table(at, 0, ["hardware", "tp", "feasible", "reason"]).set_index(["hardware", "tp"])
    assert not shown["feasible"].any()
    assert shown.loc[("h100-sxm", 1), "reason"] == "the weights leave no room for a KV cache"
    api = capacity.plan("llama-3.1-405b", ["cpu"], api_traffic(context=131072), SLO, tp=(2,))
    assert "no default token budget for vllm on cpu" in api.reason[0]  # the page launches engine defaults
    assert shown.loc[("cpu", 2), "reason"] == api.reason[0]  # costmodel's message, one row, not a crash
    assert "No latency curve on h100-sxm: TP 1, 2: the weights leave no room" in at.info[0].value
    # lengths the model cannot hold are refused with the reason: costmodel's one context rule, every page
    rule = "prompt_len + output_len = 8,256 tokens exceeds llama-3-8b's context of 8,192 tokens (max_context)"
    for page in ("capacity", "memory", "performance", "speculative", "compression"):
        at = open_page(page, prompt_len=8000)
        assert [e for e in errors(at) if rule in e], (page, errors(at))
    with pytest.raises(cm.CostmodelError, match=re.escape(rule)):
        cm.estimate("llama-3-8b", "h100-sxm", cm.Workload(1, 8000, 256))


# ----------------------------------------------------------------------------------------------------
# compression trade-offs
# ----------------------------------------------------------------------------------------------------


def api_tradeoffs(sc: Scenario, **options: Any) -> pd.DataFrame:
    return compression.tradeoffs(
        sc.model, sc.hardware[0], sc.workload(), deployment=sc.deployment(), **options
    )


def assert_nats(text: str, value: float) -> None:
    """'4.79e-06 nats': three significant digits."""
    assert text.endswith(" nats"), text
    assert float(text.removesuffix(" nats")) == pytest.approx(value, rel=5e-3)


def test_compression_page_shows_the_api_figures() -> None:
    at = open_page("compression")
    assert not errors(at)
    assert not at.warning
    frame = api_tradeoffs(DEFAULT)
    mine = frame[
        (frame["weight_dtype"] == "bf16") & (frame["kv_dtype"] == "bf16") & (frame["sparsity"] == "none")
    ]
    row = mine.iloc[0]
    shown = metrics(at)
    assert_shows(shown["Memory per GPU"], row["memory_bytes_per_gpu"])
    assert_shows(shown["Time per output token"], row["tpot_s"])
    assert_nats(shown["Loss increase"], row["loss_increase"])
    assert_shows(shown["Quality retention"], row["quality_retention"])
    # the table is tradeoffs()'s
    pd.testing.assert_frame_equal(table(at, 0, frame.columns), frame, check_dtype=False, rtol=SHOWN)
    assert "have no quality model" in " ".join(c.value for c in at.caption)
    scatter, bands, panel = charts(at)
    # memory vs TPOT: coloured by log10 of the loss increase, the Pareto rows ringed
    known = frame.dropna(subset=["loss_increase"])
    coloured = trace(scatter, "loss increase (colour)")
    np.testing.assert_allclose(values(coloured["x"]), known["memory_bytes_per_gpu"] / 1e9, rtol=1e-12)
    np.testing.assert_allclose(
        values(coloured["marker"]["color"]), np.log10(known["loss_increase"]), rtol=1e-12
    )
    front = frame[frame["pareto"]]
    ringed = values(trace(scatter, "Pareto frontier")["x"])
    assert sorted(ringed) == pytest.approx(sorted(set(front["memory_bytes_per_gpu"] / 1e9)))
    assert (
        len(values(trace(scatter, "no quality model (KV quantization, 2:4)")["x"]))
        == frame["loss_increase"].isna().sum()
    )
    # the 95 % band per weight format
    band = bands["data"][0]
    by_format = known.drop_duplicates("weight_dtype").set_index("weight_dtype").loc[band["x"]]
    np.testing.assert_allclose(values(band["y"]), by_format["loss_increase"], rtol=1e-12)
    np.testing.assert_allclose(
        values(band["error_y"]["array"]),
        by_format["loss_increase_high"] - by_format["loss_increase"],
        rtol=1e-12,
    )
    # the panel: quality_penalty over the compression ratio
    power = trace(panel, "power (the table's)")
    cr = values(power["x"])
    np.testing.assert_allclose(values(power["y"]), compression.quality_penalty(cr).loss_increase, rtol=1e-12)
    fitted = trace(panel, "published, fitted")
    assert len(fitted["x"]) == len(compression.fit_points("rtn"))


def test_compression_page_options_and_a_model_that_does_not_fit() -> None:
    sc = Scenario(model="llama-3.1-405b", weight_dtype="int4", kv_dtype="fp8")
    query = {"model": sc.model, "weight_dtype": "int4", "kv_dtype": "fp8"}
    options = dict(weight_dtypes=["int4", "nf4"], kv_dtypes=["fp8"], sparsities=["none"], method="gptq")
    at = open_page(
        "compression",
        **query,
        weight_formats=["int4", "nf4"],
        kv_formats="fp8",
        sparsities="none",
        quality_method="gptq",
    )
    assert not errors(at)
    frame = api_tradeoffs(sc, **options)
    assert "No choice fits on 1 × h100-sxm" in at.warning[0].value
    assert_shows(
        at.warning[0].value.split("needs ")[1].split(" per GPU")[0], frame["memory_bytes_per_gpu"].min()
    )
    pd.testing.assert_frame_equal(table(at, 0, frame.columns), frame, check_dtype=False, rtol=SHOWN)
    shown = metrics(at)
    assert_shows(shown["Memory per GPU"], frame.iloc[0]["memory_bytes_per_gpu"])
    assert shown["Loss increase"] == shown["Quality retention"] == "no quality model"  # an fp8 KV cache
    assert "Only rows with a bf16 KV cache and no sparsity" in at.info[0].value
    panel = charts(at)[-1]
    power = trace(panel, "power (the table's)")
    np.testing.assert_allclose(
        values(power["y"]),
        compression.quality_penalty(values(power["x"]), method="gptq").loss_increase,
        rtol=1e-12,
    )
    at.multiselect(key="weight_formats").set_value([]).run()
    assert "Choose at least one weight format" in at.info[0].value
    # 2:4 sparsity alone, on a device without sparse tensor cores: tradeoffs() would have no row
    at = open_page("compression", hardware="tpu-v5e", sparsities="2:4")
    assert at.info[0].value == "No 2:4 rows: tpu-v5e has no sparse tensor cores in its profile."
    assert not charts(at)


def test_compression_page_runs_the_sidebars_attention_dp_and_moe_split() -> None:
    """The page priced each choice on tp x pp alone: DeepSeek-V3 fp8 over attention DP 8 x MoE EP 8 (the
    Memory and Performance pages: 106 GB per GPU, 133 ms TPOT) showed 715 GB and 963 ms, 'no choice fits on
    8 x h200'. The sidebar's routed-expert format is not one of the page's choices: it says so."""
    dep = cm.Deployment(tp=1, attention_dp=8, moe_ep=8)
    workload = cm.Workload(256, 2048, 256, weight_dtype="fp8", activation_dtype="fp8")
    expected = cm.estimate("deepseek-v3", "h200", workload, dep)
    assert bool(expected.fits)
    query = dict(
        model="deepseek-v3", hardware="h200", weight_dtype="fp8", activation_dtype="fp8", tp=1,
        attention_dp=8, moe_ep=8, batch_size=256, weight_formats="fp8", kv_formats="bf16", sparsities="none",
    )  # fmt: skip
    at = open_page("compression", **query)
    assert not errors(at)
    assert not at.warning
    assert not at.info
    shown = metrics(at)
    assert_shows(shown["Memory per GPU"], float(expected.memory_bytes_per_gpu))
    assert_shows(shown["Time per output token"], float(expected.tpot_s))
    at = open_page("compression", **query, expert_dtype="int4")
    assert "routed-expert and attention formats are not used on this page" in at.info[0].value


def test_your_own_price_replaces_the_listed_one() -> None:
    """The sidebar says where each listed price comes from; a price typed in (or in the link) replaces the
    first device's, on every page that shows a cost (issue 17, item 11)."""
    at = open_page("performance", hardware=["h100-sxm", "l40s"])
    h100, l40s = cm.load_hardware("h100-sxm").price, cm.load_hardware("l40s").price
    assert h100 is not None
    assert l40s is not None
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert f"h100-sxm: ${h100.usd_per_hour:,.2f}/h (AWS EC2 On-Demand, {h100.date})" in captions
    assert f"l40s: ${l40s.usd_per_hour:,.2f}/h" in captions
    at = open_page("performance", hardware=["h100-sxm", "l40s"], usd_per_hour=2.0)
    assert not errors(at)
    report = cm.estimate(
        DEFAULT.model, "h100-sxm", DEFAULT.workload(), DEFAULT.deployment(), usd_per_hour=2.0
    )
    assert_shows(metrics(at)["$ per million output tokens"], float(report.usd_per_million_output_tokens))
    assert "h100-sxm: $2.00/h (entered in the dashboard)" in " ".join(c.value for c in at.sidebar.caption)
    bars = charts(at)[3]["data"][0]
    shown = dict(zip(bars["y"], values(bars["x"]), strict=True))
    assert shown["h100-sxm"] == pytest.approx(float(report.usd_per_million_output_tokens), rel=1e-12)
    assert shown["l40s"] == pytest.approx(float(api_estimate(DEFAULT, "l40s").usd_per_million_output_tokens))
    at = open_page("capacity", hardware=["h100-sxm"], usd_per_hour=2.0)
    assert not errors(at)
    shown = table(at, 0, ["feasible", "usd_per_hour", "gpus"])
    priced = shown[shown["feasible"].astype(bool)]
    np.testing.assert_allclose(priced["usd_per_hour"], 2.0 * priced["gpus"], rtol=SHOWN)


# ----------------------------------------------------------------------------------------------------
# One memory model: the dashboard shows what size() and estimate() say, for random configurations
# ----------------------------------------------------------------------------------------------------


@st_.composite
def memory_scenarios(draw: st_.DrawFn) -> Scenario:
    model = cm.load_model(draw(st_.sampled_from(["llama-3-8b", "llama-3-70b", "mixtral-8x7b", "mamba-2.8b"])))
    tp, pp = draw(st_.sampled_from([1, 2, 4, 8, 16])), draw(st_.sampled_from([1, 2]))
    try:
        cm.Deployment(tp=tp, pp=pp).check(model)
    except ValueError:
        assume(False)
    hardware = draw(st_.sampled_from(["h100-sxm", "a100-80gb", "mi300x"]))  # profiles with both links
    prompt = draw(st_.integers(1, model.max_context // 2))
    return Scenario(
        model=model.name,
        hardware=[hardware],
        tp=tp,
        pp=pp,
        weight_dtype=draw(st_.sampled_from(["bf16", "fp8", "int4"])),
        kv_dtype=draw(st_.sampled_from(["bf16", "fp8"])),
        batch_size=draw(st_.integers(1, 1024)),
        prompt_len=prompt,
        output_len=draw(st_.integers(1, model.max_context // 2)),
    )


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(memory_scenarios())
def test_dashboard_memory_agrees_with_size_and_estimate(sc: Scenario) -> None:
    query = {
        key: getattr(sc, key)
        for key in (
            "model",
            "hardware",
            "tp",
            "pp",
            "weight_dtype",
            "kv_dtype",
            "batch_size",
            "prompt_len",
            "output_len",
        )
    }
    s, r = api_fit(sc, sc.hardware[0]), api_estimate(sc, sc.hardware[0])
    assert (s.fits, s.max_batch_size, s.memory_bytes_per_gpu) == (
        bool(r.fits),
        int(r.max_batch_size),
        float(r.memory_bytes_per_gpu),
    )
    at = open_page("memory", **query)
    check_memory(at, sc)
    assert bool(at.success) == s.fits
    at = open_page("performance", **query)
    warned = [w.value for w in at.warning if w.value.startswith("Does not fit")]
    assert bool(warned) == (not s.fits)
    if warned:  # "Does not fit on X: 92.75 GB per GPU needed, ..."
        assert_shows(warned[0].split(": ", 1)[1].split(" per GPU")[0], s.memory_bytes_per_gpu)


def test_an_uploaded_model_name_is_text_not_markdown() -> None:
    """A name from an uploaded file is displayed as written: no link, no image (issue 17, item 14)."""
    name = "[click](http://example.invalid) ![x](http://example.invalid/x.png)"
    config = json.loads((HF_CONFIGS / "llama-3-8b.json").read_text()) | {"_name_or_path": name}
    at = upload_config(json.dumps(config).encode(), "memory")
    assert not errors(at)
    rendered = [c.value for c in at.sidebar.caption if "Uploaded" in c.value]
    assert rendered
    assert "\\[click\\]\\(http" in rendered[0]  # escaped: Markdown shows the brackets as text
    assert re.sub(r"\\(.)", r"\1", rendered[0]) == f"Uploaded: {name}"


def test_deepseek_nvfp4_weights_are_the_checkpoints_with_the_o_proj_as_the_weights() -> None:
    """NVIDIA's NVFP4 DeepSeek-V3 keeps attention in bf16 but its output projection in NVFP4: the sidebar's
    'bf16_except_o_proj' attention format sizes the weights as the checkpoint stores them, to the byte
    (plain bf16 attention stores the o_proj in bf16 too: 397 GB instead of 386 GB, 2.7 % more). Each of
    the 8 GPUs also holds MLA's replicated down projections whole (``memory.REPLICATED_PROJECTIONS``)."""
    model = cm.load_model("deepseek-v3")
    weight_dtype, component_dtypes = checkpoint_formats(model, "nvfp4")
    replicated = replicated_weight_bytes(model, weight_dtype=weight_dtype, component_dtypes=component_dtypes)
    stored = checkpoint_bytes(model, "nvfp4")
    shown, captions = {}, {}
    for attention in (ATTENTION_EXCEPT_O_PROJ, "bf16"):
        at = open_page(
            "memory", model="deepseek-v3", hardware="b200", tp=8, weight_dtype="nvfp4",
            activation_dtype="nvfp4", attention_dtype=attention,
        )  # fmt: skip
        assert not errors(at)
        assert not at.warning  # the link's value is the widget's
        shown[attention] = float(values(trace(charts(at)[0], "weights")["y"])[0]) * 1e9 * 8  # 8 GPUs
        captions[attention] = " ".join(str(c.value) for c in at.caption).replace("\\", "")
    assert shown[ATTENTION_EXCEPT_O_PROJ] == pytest.approx(stored + 7 * replicated, rel=1e-9)
    assert (
        shown["bf16"] > stored + 7 * replicated
    )  # the o_proj in bf16: 2 bytes per weight against NVFP4's 9/16
    assert "attention bf16, o_proj as the weights" in captions[ATTENTION_EXCEPT_O_PROJ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"lora_rank": 4096}, "lora_rank 4,096 exceeds"),
        ({"train_seq_len": 8193}, "seq_len = 8,193 tokens exceeds"),
    ],
)
def test_the_memory_page_refuses_a_lora_rank_above_the_hidden_size_and_a_sequence_past_the_context(
    query: dict[str, int], field: str
) -> None:
    """Gemma-7B: hidden size 3,072, context 8,192. The library's error names the field; the serving figures
    above still show."""
    at = open_page("memory", model="gemma-7b", **query)
    assert any(field in e for e in errors(at)), errors(at)
    assert at.dataframe  # the serving part of the page is drawn
