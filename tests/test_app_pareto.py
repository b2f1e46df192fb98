"""The dashboard's Pareto page (costmodel_app/views/pareto.py), headless through AppTest: the figures and
the frontier it shows are costmodel.pareto.frontier's for the same inputs; bad or impossible input gives a
message, never a traceback."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from costmodel import pareto

pytest.importorskip("streamlit", reason="the dashboard needs the app extra: pip install 'costmodel[app]'")
pytest.importorskip("plotly", reason="the dashboard needs the app extra: pip install 'costmodel[app]'")
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "costmodel_app"
sys.path.insert(0, str(APP))  # the app's own modules, as `streamlit run` puts them on the path
from scenario import DEFAULT  # noqa: E402

HARDWARE = ["h100-sxm", "b200"]


def open_pareto(**query: Any) -> AppTest:
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = [str(v) for v in value] if isinstance(value, list) else str(value)
    at.run()
    at.switch_page("views/pareto.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def api(**changes: Any) -> pareto.Frontier:
    args: dict[str, Any] = dict(
        isl=DEFAULT.prompt_len, osl=DEFAULT.output_len, ttft_s=1.0, tpot_s=0.05, formats=("bf16", "fp8"),
        tp=(1, 2, 4, 8), pp=(1, 2), engine="vllm", kv_dtype=DEFAULT.kv_dtype,
    )  # fmt: skip
    return pareto.frontier(DEFAULT.model, HARDWARE, **(args | changes))


def values(data: Any) -> np.ndarray:
    """A plotly array: a list, or the typed array plotly >= 6 sends."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
    return np.asarray(data, dtype=float)


def figure(at: AppTest) -> dict[str, Any]:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def test_the_page_shows_the_frontier_and_the_cheapest_point() -> None:
    at = open_pareto(hardware=HARDWARE)
    assert not at.error
    found = api()
    p, b = found.points, found.best
    assert b is not None
    shown = {m.label: m.value for m in at.metric}
    assert shown["Cheapest device"] == p.system[b]
    assert any(f"**{p.label(b)}**" in m.value.replace("\\", "") for m in at.markdown)
    assert shown["Concurrency"] == f"{p.concurrency[b]:,}"
    assert shown["GPUs"] == str(p.gpus[b])
    assert shown["$ per million output tokens"] == f"${p.usd_per_million_output_tokens[b]:,.4g}"
    assert shown["Output tokens/s per GPU"] == f"{p.output_tokens_per_s_per_gpu[b]:,.1f}"
    traces = {t["name"]: t for t in figure(at)["data"]}
    for system in HARDWARE:  # one frontier per device, the API's points in the API's order
        idx = [i for i in found.frontier_index if p.system[i] == system]
        np.testing.assert_allclose(values(traces[system]["x"]), p.tokens_per_s_per_user[idx], rtol=1e-12)
        np.testing.assert_allclose(
            values(traces[system]["y"]), p.output_tokens_per_s_per_gpu[idx], rtol=1e-12
        )
        labels = [row[0] for row in traces[system]["customdata"]]  # the hover shows the configuration
        assert labels == [p.label(i) for i in idx]
    star = traces["cheapest meeting the objectives"]
    assert values(star["y"])[0] == pytest.approx(p.output_tokens_per_s_per_gpu[b], rel=1e-12)
    np.testing.assert_allclose(values(traces["TPOT objective"]["x"]), 1e3 / 50.0, rtol=1e-12)
    # the table behind the chart is the frontier
    table = at.dataframe[0].value
    assert len(table) == len(found.frontier_index)
    assert table["Label"].tolist() == [p.label(i) for i in found.frontier_index]


def test_a_page_option_changes_the_choice() -> None:
    at = open_pareto(hardware=HARDWARE)
    at.number_input(key="pareto_tpot_ms").set_value(12.0).run()
    assert not at.exception
    found = api(tpot_s=0.012)
    assert found.best is not None
    assert any(f"**{found.points.label(found.best)}**" in m.value.replace("\\", "") for m in at.markdown)


def test_objectives_nothing_meets_give_a_warning_and_still_the_frontier() -> None:
    at = open_pareto(pareto_ttft_ms=1)
    assert not at.error
    assert any("No deployment" in w.value for w in at.warning)
    assert not at.metric
    assert len(at.get("plotly_chart")) == 1


def test_nothing_chosen_to_search_is_a_message() -> None:
    at = open_pareto()
    at.pills(key="pareto_tp").set_value([]).run()
    assert not at.exception
    assert any("Choose at least one TP degree" in i.value for i in at.info)


def test_a_model_that_fits_nowhere_is_a_message() -> None:
    at = open_pareto(model="llama-3.1-405b", hardware=["l4"], pareto_tp=[1], pareto_pp=[1])
    assert not at.exception
    assert any("could be evaluated" in e.value for e in at.error)


def test_a_tpu_or_cpu_without_a_token_budget_asks_for_one() -> None:
    """No engine default is known off GPUs (costmodel.token_budget.default_token_budget): the page shows the
    API's message instead of a guessed budget called the engine's default."""
    at = open_pareto(model="llama-3-8b", hardware=["cpu"], pareto_tp=[1], pareto_pp=[1])
    assert not at.exception
    assert any("no default token budget for vllm on cpu" in e.value for e in at.error)
    assert [i.value for i in at.info] == ["Give the launch value in the Token budget [tokens] box."]


MOE = dict(  # a small MoE search: one device, one format, aggregated workers
    model="qwen3-30b-a3b", hardware=["h100-sxm"], pareto_formats=["fp8"], pareto_tp=[1, 2], pareto_pp=[1],
    pareto_modes=["agg"],
)  # fmt: skip


def moe_api(attention_dp: tuple[int, ...]) -> pareto.Frontier:
    return pareto.frontier(
        "qwen3-30b-a3b", ["h100-sxm"], isl=DEFAULT.prompt_len, osl=DEFAULT.output_len, ttft_s=1.0,
        tpot_s=0.05, formats=("fp8",), tp=(1, 2), pp=(1,), modes=("agg",), engine="vllm",
        kv_dtype=DEFAULT.kv_dtype, attention_dp=attention_dp,
    )  # fmt: skip


def test_attention_dp_is_opt_in_and_searches_what_the_cli_does() -> None:
    """Off: the default search (attention_dp=(1,)); on: `costmodel pareto --attention-dp 1,2,4,8`'s
    frontier and choice, attention-DP layouts among them."""
    at = open_pareto(**MOE)
    box = at.checkbox(key="pareto_attention_dp")
    assert not box.value
    assert not box.disabled
    plain = moe_api((1,))
    assert at.dataframe[0].value["Label"].tolist() == [plain.points.label(i) for i in plain.frontier_index]
    box.check().run()
    assert not at.exception
    assert not at.error
    found = moe_api((1, 2, 4, 8))
    p = found.points
    labels = at.dataframe[0].value["Label"].tolist()
    assert labels == [p.label(i) for i in found.frontier_index]
    assert any(" ADP" in label for label in labels)  # attention-DP layouts reach the frontier
    assert found.best is not None
    assert any(f"**{p.label(found.best)}**" in m.value.replace("\\", "") for m in at.markdown)
    assert any("EP, attention DP and the concurrency" in str(c.value) for c in at.caption)


def test_attention_dp_is_disabled_for_a_dense_model() -> None:
    at = open_pareto(hardware=HARDWARE, pareto_attention_dp="true")
    box = at.checkbox(key="pareto_attention_dp")
    assert box.value  # the link's value, kept
    assert box.disabled
    searched = "EP, attention DP and the concurrency"  # the dense search is unchanged
    assert not any(searched in str(c.value) for c in at.caption)
    assert len(at.dataframe[0].value) == len(api().frontier_index)


def open_pareto_first(**query: Any) -> AppTest:
    """The Pareto page on the session's first run, as a shared link opens it (the link's notes name this
    page's inputs)."""
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = [str(v) for v in value] if isinstance(value, list) else str(value)
    at.switch_page("views/pareto.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chosen(at: AppTest) -> list[str]:
    return [m.value.replace("\\", "") for m in at.markdown if "Cheapest deployment" in m.value]


def test_the_token_budget_reaches_the_search() -> None:
    """A budget of 512 tokens per iteration (as `costmodel pareto --token-budget 512`) chunks the 2,048-token
    prompts over four iterations: the page shows the API's frontier and choice for that budget, which
    differ from the default budget's."""
    at = open_pareto(hardware=HARDWARE)
    box = at.number_input(key="pareto_token_budget")
    assert box.value is None  # each engine's own default on each device
    default = api()
    box.set_value(512).run()
    assert not at.exception
    assert not at.error
    found = api(token_budget=512)
    p = found.points
    assert found.best is not None
    assert default.best is not None
    assert p.label(found.best) != default.points.label(default.best)  # the budget matters here
    assert any(f"**{p.label(found.best)}**" in text for text in chosen(at))
    assert at.metric[3].value == f"${p.usd_per_million_output_tokens[found.best]:,.4g}"
    table = at.dataframe[0].value
    assert table["Label"].tolist()[: len(found.frontier_index)] == [p.label(i) for i in found.frontier_index]
    assert "a token budget of 512 tokens per iteration" in at.caption[0].value


def test_a_budget_below_the_concurrency_searched_is_raised_as_the_api_raises_it() -> None:
    """pareto.frontier raises the budget to each point's clients per worker where they are more: the page
    searches what the API does for 100 tokens, and the caption says so."""
    at = open_pareto_first(hardware=HARDWARE, pareto_token_budget=100)
    assert not at.warning  # a value the input takes: nothing ignored
    found = api(token_budget=100)
    assert found.best is not None
    assert any(f"**{found.points.label(found.best)}**" in text for text in chosen(at))
    assert (
        "a token budget of 100 tokens per iteration (raised to a point's clients per worker where they are more)"
        in at.caption[0].value
    )


@pytest.mark.parametrize("bad", ["0", "-5", "abc", str(2**21)])
def test_a_link_with_a_budget_the_input_cannot_take_says_so_and_uses_the_default(bad: str) -> None:
    at = open_pareto_first(pareto_token_budget=bad)
    assert not at.error
    (note,) = [w.value.replace("\\", "") for w in at.warning if "This link" in w.value]
    assert f"pareto_token_budget** = {bad}: not a value this page's input takes" in note
    assert "Using the input's default (empty)." in note
    assert at.number_input(key="pareto_token_budget").value is None
    # vLLM's own default on each of the page's devices (H100 / H200 / B200 by default: 8,192 on each)
    assert "the engine's default token budget per iteration (" in at.caption[0].value


SMALL = dict(pareto_formats=["fp8"], pareto_tp=[1], pareto_pp=[1])  # a quick search


def small_api(systems: list[str], **changes: Any) -> pareto.Frontier:
    args: dict[str, Any] = dict(
        isl=DEFAULT.prompt_len, osl=DEFAULT.output_len, ttft_s=1.0, tpot_s=0.05, formats=("fp8",), tp=(1,),
        pp=(1,), engine="vllm", kv_dtype=DEFAULT.kv_dtype,
    )  # fmt: skip
    return pareto.frontier(DEFAULT.model, systems, **(args | changes))


def test_a_device_without_a_price_is_named_not_priced_at_zero() -> None:
    """h20's profile has no price: its points meet the objectives but cannot be ranked by cost; the page
    says so (not 'no deployment meets'), and the hover says 'no price', never $0."""
    assert pareto_price("h20") is None
    at = open_pareto_first(hardware=["h20"], **SMALL)
    found = small_api(["h20"])
    assert found.best is None
    assert found.points.meets_slo.any()
    (warning,) = [w.value for w in at.warning]
    assert "Deployments on h20 meet mean TTFT ≤ 1,000 ms and mean TPOT ≤ 50 ms" in warning
    assert "no price per GPU-hour" in warning
    assert not at.metric
    hover = [row[4] for row in figure(at)["data"][0]["customdata"]]
    assert hover
    assert all(text == "no price for h20: give one above the chart" for text in hover)
    # with a priced device beside it, the choice is the priced device's, and the unpriced one is named
    at = open_pareto_first(hardware=["h100-sxm", "h20"], **SMALL)
    found = small_api(["h100-sxm", "h20"])
    assert found.best is not None
    assert {m.label: m.value for m in at.metric}["Cheapest device"] == "h100-sxm"
    assert any(
        "Not ranked for want of a price per GPU-hour" in c.value and "h20" in c.value for c in at.caption
    )


def pareto_price(system: str) -> float | None:
    import costmodel as cm

    price = cm.load_hardware(system).price
    return None if price is None else price.usd_per_hour


def test_the_hover_and_the_table_say_what_the_api_says() -> None:
    """Hover: clients, GPUs (singular for one), TTFT and TPOT as the metrics show them, the cost; the
    table behind the chart holds the star's row too when a TTFT objective keeps it off the frontier."""
    at = open_pareto_first(hardware=["h100-sxm"])
    found = small_api(["h100-sxm"], formats=("bf16", "fp8"), tp=(1, 2, 4, 8), pp=(1, 2))
    p, b = found.points, found.best
    assert b is not None
    assert not p.on_frontier[b]  # here the star is off the frontier (the TTFT objective rules points out)
    traces = {t["name"]: t for t in figure(at)["data"]}
    star = traces["cheapest meeting the objectives"]["customdata"][0]
    gpus = int(p.gpus[b])
    assert star[0] == p.label(b)
    assert star[1] == f"{p.concurrency[b]:,} clients on {gpus} GPU{'s' if gpus > 1 else ''}"
    assert star[2] == f"{p.ttft_s[b] * 1e3:.4g} ms"
    assert star[3] == f"{p.tpot_s[b] * 1e3:.4g} ms"
    assert star[4] == f"${p.usd_per_million_output_tokens[b]:,.4g} per million output tokens"
    rest = np.flatnonzero(~p.on_frontier)  # the other points' trace, in the API's order
    shown = [row[1] for row in traces["h100-sxm: other points"]["customdata"]]
    assert len(shown) == len(rest)
    assert all(text.endswith(" on 1 GPU") == (p.gpus[i] == 1) for text, i in zip(shown, rest, strict=True))
    assert (p.gpus[rest] == 1).any()
    # which objectives each point meets: the API's meets_slo, and the TTFT one named where it is missed
    verdicts = [row[5] for row in traces["h100-sxm"]["customdata"]]
    for text, i in zip(verdicts, found.frontier_index, strict=True):
        assert (text == "meets both objectives") == p.meets_slo[i]
        assert ("TTFT" in text) == (p.ttft_s[i] > 1.0)
    assert any("misses the TTFT objective" in text for text in verdicts)  # frontier points the TTFT rules out
    table = at.dataframe[0].value
    assert len(table) == len(found.frontier_index) + 1
    assert table["Label"].iloc[-1] == p.label(b)
    assert table["Best"].iloc[-1]
    assert not table["Best"].iloc[:-1].any()
    for title in ("Tokens/s per user", "Output tokens/s per GPU", "Meets SLO", "$ per million output tokens"):
        assert title in table.columns


def test_one_output_token_is_searched_as_two_and_the_caption_says_so() -> None:
    """pareto.frontier needs osl >= 2 (TPOT is the time between two output tokens): the sidebar's 1 is
    searched as 2, and the caption names what was searched."""
    at = open_pareto_first(output_len=1, hardware=["h100-sxm"], **SMALL)
    assert not at.error
    assert "2 output tokens per request (at least 2: TPOT needs two)" in at.caption[0].value
    found = small_api(["h100-sxm"], osl=2)
    assert found.best is not None
    assert any(f"**{found.points.label(found.best)}**" in text for text in chosen(at))


def test_a_device_every_candidate_of_which_is_skipped_is_named_above_the_chart() -> None:
    """nvfp4 needs an fp4 peak: H100 has none, so its every candidate is skipped (the API says why) and
    the chart has no H100 curve; the page names it there, not only in the skipped list below."""
    at = open_pareto_first(hardware=HARDWARE, pareto_formats=["nvfp4"], pareto_tp=[1], pareto_pp=[1])
    found = small_api(HARDWARE, formats=("nvfp4",))
    assert "h100-sxm" not in set(found.points.system)
    assert any(name.startswith("h100-sxm") and "fp4" in why for name, why in found.skipped)
    (note,) = [i.value for i in at.info]
    assert note.startswith("No deployment on h100-sxm could be evaluated with these choices")
    assert {t["name"] for t in figure(at)["data"]} >= {"b200"}
    assert "h100-sxm" not in {t["name"] for t in figure(at)["data"]}


UNPRICED = ["gb300", "h20"]  # profiles without a price


def test_each_device_without_a_price_has_its_own_input_and_the_search_uses_it() -> None:
    """One price input per selected device without a price (none for a priced device, none for the first
    device once the sidebar prices it); the page then ranks what pareto.frontier(usd_per_hour=...) ranks,
    as `costmodel pareto --usd-per-hour gb300=5,h20=1.5`."""
    assert [pareto_price(s) for s in UNPRICED] == [None, None]
    at = open_pareto_first(hardware=["h100-sxm", *UNPRICED], **SMALL)
    keys = {n.key for n in at.number_input if n.key.startswith("pareto_usd_per_hour_")}
    assert keys == {f"pareto_usd_per_hour_{s}" for s in UNPRICED}
    at = open_pareto_first(
        hardware=UNPRICED, pareto_usd_per_hour_gb300=5, pareto_usd_per_hour_h20=1.5, **SMALL
    )
    assert not at.warning
    found = small_api(UNPRICED, usd_per_hour={"gb300": 5.0, "h20": 1.5})
    p, b = found.points, found.best
    assert b is not None
    shown = {m.label: m.value for m in at.metric}
    assert shown["Cheapest device"] == p.system[b]
    assert shown["$ per million output tokens"] == f"${p.usd_per_million_output_tokens[b]:,.4g}"
    for trace in figure(at)["data"]:
        if trace["name"] in UNPRICED:  # every frontier point of either device has its cost in the hover
            assert all(row[4].endswith("per million output tokens") for row in trace["customdata"])
    # one price of the two: the other device is named, not ranked
    at.number_input(key="pareto_usd_per_hour_gb300").set_value(0.0).run()
    assert not at.exception
    only = small_api(UNPRICED, usd_per_hour={"h20": 1.5})
    assert only.best is not None
    assert {m.label: m.value for m in at.metric}["Cheapest device"] == only.points.system[only.best] == "h20"
    assert any("Not ranked" in c.value and "gb300" in c.value for c in at.caption)
    # the sidebar's price is the first device's: it then has no input of its own here
    at = open_pareto_first(hardware=UNPRICED, usd_per_hour=4, **SMALL)
    keys = {n.key for n in at.number_input if n.key.startswith("pareto_usd_per_hour_")}
    assert keys == {"pareto_usd_per_hour_h20"}


@pytest.mark.parametrize("bad", ["-1", "abc", "1e9"])
def test_a_link_with_a_price_the_input_cannot_take_names_it(bad: str) -> None:
    at = open_pareto_first(hardware=["h20"], pareto_usd_per_hour_h20=bad, **SMALL)
    assert not at.exception
    (note,) = [w.value.replace("\\", "") for w in at.warning if "This link" in w.value]
    assert f"pareto_usd_per_hour_h20** = {bad}: not a value this page's input takes" in note
    assert "Using 0.0." in note
