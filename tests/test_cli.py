"""The command line, run as users run it: exit codes, messages, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HF_CONFIGS
from typer.testing import CliRunner

import costmodel
from costmodel.cli import app
from costmodel.errors import CostmodelError

runner = CliRunner()


def test_models_and_hardware_list_everything() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"llama-3-8b", "deepseek-v3", "mamba-2.8b"} <= names
    result = runner.invoke(app, ["hardware"])
    assert result.exit_code == 0
    assert "h100-sxm" in result.stdout


def test_estimate_json() -> None:
    result = runner.invoke(
        app, ["estimate", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--batch-size", "8", "--json"]
    )
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["params_total"] == 8_030_261_248
    assert report["fits"] is True


def test_bad_input_is_one_message_and_exit_2() -> None:
    for args, needle in [
        (["estimate", "--model", "llama-3-80b"], "Did you mean 'llama-3-8b'"),
        (["estimate", "--model", "gpt2", "--hardware", "h100"], "unknown hardware 'h100'"),
        (["estimate", "--model", "gpt2", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["estimate", "--model", "gpt2", "--weight-dtype", "int3"], "unknown dtype 'int3'"),
        (["import-hf", "/nonexistent/config.json"], "cannot read"),
        # every command that reads a path: a missing one is one error naming it (issue 17)
        (["estimate", "--model", "/nonexistent/config.json"], "cannot read /nonexistent/config.json"),
        (
            ["estimate", "--model", "gpt2", "--hardware", "/nonexistent/h.yaml"],
            "cannot read /nonexistent/h.yaml",
        ),
        (
            ["compare", "--model", "gpt2", "--hardware", "/nonexistent/h.yaml"],
            "cannot read /nonexistent/h.yaml",
        ),
        (["plan", "--model", "/nonexistent/m.yaml", "--rate", "5"], "cannot read /nonexistent/m.yaml"),
        (
            ["calibrate", "--from", "/nonexistent", "--out", "/nonexistent/out"],
            "/nonexistent has no kernels/",
        ),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert needle in " ".join(result.stderr.split()), args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.output


def test_import_hf_prints_a_loadable_profile(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import-hf", str(HF_CONFIGS / "mixtral-8x7b.json")])
    assert result.exit_code == 0
    path = tmp_path / "m.yaml"
    path.write_text(result.stdout)
    import costmodel

    assert costmodel.param_count(costmodel.load_model(str(path))).total == 46_702_792_704


def test_console_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "costmodel", "models"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "llama-3.1-405b" in done.stdout


def test_import_costmodel_is_light() -> None:
    code = "import sys, costmodel; print(sorted({'torch', 'streamlit', 'plotly', 'transformers'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_estimate_shows_time_and_cost_and_compare_ranks() -> None:
    result = runner.invoke(app, ["estimate", "--model", "llama-3-70b", "--tp", "4", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ttft_s"] > 0
    assert report["tpot_s"] > 0
    assert report["usd_per_million_output_tokens"] > 0
    result = runner.invoke(
        app, ["compare", "--model", "llama-3-8b", "--hardware", "h100-sxm,l4,a100-80gb", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    costs = [r["usd_per_million_output_tokens"] for r in rows if r["fits"]]
    assert costs == sorted(costs)
    result = runner.invoke(app, ["estimate", "--model", "llama-3-8b", "--tp", "3"])
    assert result.exit_code == 2
    assert "tp (3) must divide n_heads (32)" in result.stderr


def test_speculative_command() -> None:
    result = runner.invoke(
        app, ["speculative", "--target", "llama-3-8b", "--draft", "ngram", "--alpha", "0.6", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["batch_size"] == 1
    assert rows[0]["best_k"] >= 1
    assert rows[0]["speedup"] > rows[-1]["speedup"]  # speculation pays less as the batch grows
    bad = runner.invoke(app, ["speculative", "--target", "llama-3-8b", "--draft", "ngram", "--alpha", "1.5"])
    assert bad.exit_code == 2
    assert "alpha" in bad.stderr


def test_plan_command() -> None:
    result = runner.invoke(
        app,
        [
            "plan",
            "--model",
            "llama-3-8b",
            "--rate",
            "5",
            "--ttft-p99",
            "0.5",
            "--tpot-p99",
            "0.05",
            "--hardware",
            "h100-sxm,l40s",
            "--tp",
            "1,2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    feasible = [r for r in rows if r["feasible"]]
    assert feasible
    assert all(r["ttft_p99_s"] <= 0.5 and r["tpot_p99_s"] <= 0.05 for r in feasible)
    costs = [r["usd_per_hour"] for r in feasible]
    assert costs == sorted(costs)
    bad = runner.invoke(app, ["plan", "--model", "llama-3-8b", "--rate", "-1"])
    assert bad.exit_code == 2


def test_plan_max_utilization_and_confirm() -> None:
    """--max-utilization caps the load per replica (default: the validated range); --confirm simulates
    every chosen row and says so (issue 13)."""
    import inspect

    from costmodel import capacity
    from costmodel.cli import plan as plan_command

    default = inspect.signature(plan_command).parameters["max_utilization"].default
    assert default == capacity.VALIDATED_UTILIZATION
    common = ["plan", "--model", "llama-3-8b", "--rate", "20", "--hardware", "h100-sxm", "--tp", "1"]
    common += ["--ttft-p99", "2s", "--tpot-p99", "100ms"]
    loose = json.loads(runner.invoke(app, [*common, "--json"]).stdout)[0]
    tight = json.loads(runner.invoke(app, [*common, "--max-utilization", "0.2", "--json"]).stdout)[0]
    assert loose["utilization"] <= capacity.VALIDATED_UTILIZATION
    assert tight["utilization"] <= 0.2
    assert tight["replicas"] > loose["replicas"]  # a lower cap never needs fewer replicas
    assert not loose["confirmed_by_simulation"]
    result = runner.invoke(app, [*common, "--confirm"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.stderr
    assert "simulated TTFT / TPOT p99" in result.stdout
    row = json.loads(runner.invoke(app, [*common, "--confirm", "--json"]).stdout)[0]
    assert row["confirmed_by_simulation"]
    assert row["validity"] == "confirmed by simulation"
    assert row["replicas"] >= loose["replicas"]  # confirmation only ever adds replicas
    assert row["sim_ttft_p99_s"] > 0
    assert row["sim_tpot_p99_s"] > 0
    text = " ".join(runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "200"}).stdout.split())
    assert "--max-utilization" in text
    assert "[0-1, e.g. 0.7]" in text
    assert "--confirm" in text


def test_plan_sampling_margin_is_the_planners() -> None:
    """--sampling-margin reaches plan(): the default is the planner's, and holding the p99 itself (0)
    never needs more replicas than holding the upper end of its sampling-error band (1)."""
    from costmodel import capacity

    common = ["plan", "--model", "llama-3-8b", "--rate", "20", "--hardware", "h100-sxm", "--tp", "1"]
    # margin 0: 3 replicas, 1: 4 (the margins differ between 12.2 and 12.8 ms), on the kernels alone
    common += ["--engine", "none"]
    common += ["--ttft-p99", "2s", "--tpot-p99", "12.5ms", "--json"]
    default = json.loads(runner.invoke(app, common).stdout)[0]
    margins = ("0", "1", f"{capacity.SAMPLING_MARGIN:g}")
    rows = {m: json.loads(runner.invoke(app, [*common, "--sampling-margin", m]).stdout)[0] for m in margins}
    assert rows["0"]["replicas"] < rows["1"]["replicas"]
    assert default["replicas"] == rows[margins[-1]]["replicas"]
    assert default["tpot_p99_s"] == rows[margins[-1]]["tpot_p99_s"]
    text = " ".join(runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "200"}).stdout.split())
    assert "--sampling-margin" in text


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_version() -> None:
    import costmodel

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"costmodel {costmodel.__version__}"


def test_help_keeps_units_in_brackets() -> None:
    """Help texts are plain text: '[s]', '[requests/s]' are not eaten as markup (issue 17, item 7)."""
    result = runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "[requests/s]" in text
    assert "500ms" in text
    assert "[USD]" in text


def test_slo_durations_take_units_and_refuse_implausible_bare_values() -> None:
    from costmodel.cli import parse_duration

    assert parse_duration("500ms", "--ttft-p99", 60) == pytest.approx(0.5)
    assert parse_duration("0.5s", "--ttft-p99", 60) == pytest.approx(0.5)
    assert parse_duration("0.5 s", "--ttft-p99", 60) == pytest.approx(0.5)
    assert parse_duration("0.5", "--ttft-p99", 60) == pytest.approx(0.5)  # bare: seconds
    assert parse_duration("200us", "--tpot-p99", 10) == pytest.approx(2e-4)
    assert parse_duration("500s", "--ttft-p99", 60) == 500.0  # explicit: taken as written
    assert parse_duration(None, "--ttft-p99", 60) is None
    for bad in ["500", "fast", "-5ms", "0ms", "nan", "infs", "1e400"]:
        with pytest.raises(CostmodelError, match="--ttft-p99"):
            parse_duration(bad, "--ttft-p99", 60)
    common = ["plan", "--model", "llama-3-8b", "--rate", "5", "--hardware", "h100-sxm", "--tp", "1", "--json"]
    refused = runner.invoke(app, [*common, "--ttft-p99", "500"])
    assert refused.exit_code == 2
    assert "500ms" in refused.stderr
    a = runner.invoke(app, [*common, "--ttft-p99", "500ms", "--tpot-p99", "50ms"])
    b = runner.invoke(app, [*common, "--ttft-p99", "0.5s", "--tpot-p99", "0.05"])
    assert a.exit_code == b.exit_code == 0, a.stderr
    assert _strict_json(a.stdout) == _strict_json(b.stdout)
    assert "TTFT p99 <= 500 ms, TPOT p99 <= 50 ms" in " ".join(a.stderr.split())


def test_json_output_is_strict_json() -> None:
    """Devices without a price (cpu) or TDP give null, never a bare NaN (issue 17, item 8)."""
    for args in (
        ["estimate", "--model", "llama-3-8b", "--hardware", "cpu", "--json"],
        ["compare", "--model", "llama-3-8b", "--hardware", "cpu,h100-sxm", "--json"],
        ["hardware", "--json"],
        ["models", "--json"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.stderr)
        _strict_json(result.stdout)
    rows = _strict_json(
        runner.invoke(
            app, ["compare", "--model", "gpt2", "--hardware", "cpu", "--prompt-len", "512", "--json"]
        ).stdout
    )
    assert isinstance(rows, list)
    assert rows[0]["usd_per_hour"] is None


def test_empty_hardware_list_and_infeasible_plan_are_errors() -> None:
    for args in (
        ["compare", "--model", "gpt2", "--hardware", ""],
        ["compare", "--model", "gpt2", "--hardware", " , "],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert "--hardware is empty" in result.stderr
    args = [
        "plan",
        "--model",
        "llama-3-8b",
        "--rate",
        "1000",
        "--hardware",
        "l40s",
        "--tp",
        "1",
        "--ttft-p99",
        "1ms",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    summary = " ".join(result.stderr.split())
    assert "no candidate meets TTFT p99 <= 1 ms at 1000 requests/s" in summary
    assert "l40s tp=1" in summary


def test_bad_options_give_one_line_naming_the_option() -> None:
    """No pydantic dump, no numpy repr, no traceback (issue 17, item 15)."""
    cases = [
        (["estimate", "--model", "gpt2", "--tp", "0"], "--tp must be greater than 0 (got 0)"),
        (["estimate", "--model", "gpt2", "--pp", "-1"], "--pp must be greater than 0 (got -1)"),
        (
            ["speculative", "--target", "gpt2", "--draft", "ngram", "--alpha", "0.5", "--k-max", "0"],
            "--k-max",
        ),
        (
            ["speculative", "--target", "gpt2", "--draft", "ngram", "--alpha", "0.5", "--k-max", "100000000"],
            "--k-max",
        ),
        (["speculative", "--target", "gpt2", "--draft", "ngram", "--alpha", "1.5"], "--alpha"),
        (["plan", "--model", "gpt2", "--rate", "1", "--tp", "0,a"], "--tp"),
        (["plan", "--model", "gpt2", "--rate", "-1"], "--rate"),
        (["plan", "--model", "gpt2", "--rate", "1", "--max-utilization", "70"], "--max-utilization"),
        (["plan", "--model", "gpt2", "--rate", "1", "--max-utilization", "0"], "--max-utilization"),
        (["plan", "--model", "gpt2", "--rate", "1", "--max-utilization", "nan"], "--max-utilization"),
        (["plan", "--model", "gpt2", "--rate", "1", "--sampling-margin", "2"], "--sampling-margin"),
        (["plan", "--model", "gpt2", "--rate", "1", "--sampling-margin", "-0.5"], "--sampling-margin"),
        (["compare", "--model", "gpt2", "--usd-per-hour", "2"], "one price each"),
        (["compare", "--model", "gpt2", "--usd-per-hour", "h100-sxm=-1"], "--usd-per-hour"),
        (["estimate", "--model", "gpt2", "--usd-per-hour", "l40s=2"], "not in --hardware"),
        (["dashboard", "--port", "-1"], "--port must be between 1 and 65535"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        message = result.stderr.strip()
        assert message.startswith("error: "), (args, message)
        assert "\n" not in message, (args, message)
        assert needle in message, (args, message)
        for leak in ("np.", "pydantic", "http", "Traceback", "argmax"):
            assert leak not in message, (args, message)


def test_prices_show_their_source_and_can_be_overridden() -> None:
    """compare says the workload it ranked and where each price comes from; --usd-per-hour replaces it
    (issue 17, item 11)."""
    import csv
    import io

    import costmodel

    result = runner.invoke(
        app, ["compare", "--model", "llama-3-8b", "--hardware", "h100-sxm,mi300x"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "llama-3-8b, batch 8, 2,048 prompt + 256 output tokens" in text
    h100 = costmodel.load_hardware("h100-sxm").price
    assert h100 is not None
    assert f"AWS EC2 On-Demand, {h100.date}" in text
    assert "different providers" in text
    args = [
        "compare",
        "--model",
        "llama-3-8b",
        "--hardware",
        "h100-sxm,mi300x",
        "--usd-per-hour",
        "h100-sxm=1.0",
    ]
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*args, "--csv"]).stdout)))
    assert [r["hardware"] for r in rows] == ["h100-sxm", "mi300x"]  # cheaper per token at $1/h
    assert float(rows[0]["usd_per_hour"]) == 1.0
    assert rows[0]["price_provider"] == "--usd-per-hour"
    assert rows[1]["price_provider"].startswith("DigitalOcean")
    assert {"model", "batch_size", "prompt_len", "output_len", "weight_dtype", "tp"} <= set(rows[0])
    single = _strict_json(
        runner.invoke(
            app, ["estimate", "--model", "gpt2", "--prompt-len", "512", "--usd-per-hour", "2", "--json"]
        ).stdout
    )
    assert isinstance(single, dict)
    assert single["usd_per_hour"] == 2.0
    plan = [
        "plan",
        "--model",
        "llama-3-8b",
        "--rate",
        "5",
        "--hardware",
        "h100-sxm,l40s",
        "--tp",
        "1",
        "--csv",
    ]
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, plan).stdout)))
    assert {r["hardware"] for r in rows} == {"h100-sxm", "l40s"}
    assert all(r["price_date"] for r in rows)


def test_a_device_without_a_price_says_so_and_how_to_give_one() -> None:
    """gb300 has no provider's dated on-demand price (hardware_profiles/gb300.yaml says why): its $ figures
    are '-', one line names it and --usd-per-hour; with a price given the line goes away."""
    for args in (
        ["estimate", "--model", "qwen3-8b", "--hardware", "gb300"],
        ["compare", "--model", "qwen3-8b", "--hardware", "gb300,h100-sxm"],
    ):
        result = runner.invoke(app, args, env={"COLUMNS": "300"})
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        assert "No price for gb300:" in text  # gb300 alone: h100-sxm has its price
        assert "--usd-per-hour" in text
    priced = runner.invoke(
        app,
        ["estimate", "--model", "qwen3-8b", "--hardware", "gb300", "--usd-per-hour", "5"],
        env={"COLUMNS": "300"},
    )
    assert priced.exit_code == 0
    assert "No price" not in priced.output


def test_plan_names_no_device_as_unpriced_for_a_layout_that_meets_no_slo() -> None:
    """A plan row that meets no SLO shows '-' for its $ figures, but its device has a price (l40s: AWS
    EC2's): the note naming devices without one must not name it (it did, taking the '-' for no price)."""
    args = ["plan", "--model", "llama-3-8b", "--rate", "20", "--ttft-p99", "500ms", "--tpot-p99", "50ms"]
    args += ["--hardware", "h100-sxm,l40s", "--tp", "1,4"]
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    rows = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert [r for r in rows if not r["feasible"]], "the case needs a layout meeting no SLO"
    assert all(r["price_provider"] for r in rows)  # every device here is priced
    assert "No price" not in result.output


@pytest.mark.parametrize(
    ("hardware", "says"),
    [
        ("h100-sxm", "Kernel models with h100-sxm's fitted parameters"),  # measured in the public tables
        ("gb200", "Kernel models with b200's fitted parameters (gb200 has no measurements of its own)"),
        ("l4", "Roofline with the profile's assumed (uncalibrated) efficiencies"),  # no overlay
    ],
)
def test_estimate_says_how_it_timed_the_steps(hardware: str, says: str) -> None:
    """The footer named 'default (uncalibrated) efficiencies' on every device, also where the kernel models
    time the steps with fitted parameters (hardware_profiles/calibrated/<device>.yaml; gb200's overlay
    records transferred_from: b200)."""
    result = runner.invoke(app, ["estimate", "--model", "llama-3-8b", "--hardware", hardware])
    assert result.exit_code == 0, result.output
    assert says in " ".join(result.output.split())


def test_a_workload_that_does_not_fit_says_so_and_how_to_make_it_fit() -> None:
    """Llama-3.1-405B in bf16 is 811.7 GB of weights (405,853,388,800 parameters x 2 bytes): on one L4 (24 GB)
    or two H100s (80 GB each) it does not fit. estimate and compare still show the times (their 'fits'
    column says NO), and one line says that they assume it did and names the fix; speculative, whose rows
    are times only, says so too. A workload that fits gets no such line."""
    speculate = ["speculative", "--target", "llama-3.1-405b", "--draft", "llama-3-8b", "--hardware", "l4"]
    cases = [
        (["estimate", "--model", "llama-3.1-405b", "--hardware", "l4"], "does not fit at tp=1, pp=1 (l4:"),
        (
            ["compare", "--model", "llama-3.1-405b", "--hardware", "l4,h100-sxm", "--tp", "2"],
            "does not fit at tp=2 (h100-sxm:",
        ),
        ([*speculate, "--alpha", "0.8"], "does not fit even at batch 1"),
    ]
    for args, says in cases:
        result = runner.invoke(app, args, env={"COLUMNS": "300"})
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        assert says in text
        assert "Shard it over more GPUs (--tp" in text
        assert "--weight-dtype fp8 or int4" in text  # bf16 weights: both smaller formats apply
        # 811.7 GB of weights alone exceed every device here: a smaller batch or context cannot help
        assert "of weights alone" in text
        assert "--batch-size" not in text
        assert "--prompt-len" not in text
    for args in (
        ["estimate", "--model", "llama-3-8b", "--hardware", "h100-sxm"],
        ["compare", "--model", "llama-3-8b", "--hardware", "h100-sxm,l40s"],
        ["speculative", "--target", "llama-3-70b", "--draft", "llama-3-8b", "--alpha", "0.8", "--tp", "4"],
    ):
        result = runner.invoke(app, args, env={"COLUMNS": "300"})
        assert result.exit_code == 0, result.output
        assert "Shard it" not in result.output


def test_the_does_not_fit_line_offers_only_the_fixes_that_apply_to_the_input() -> None:
    """Oracle: the input's own formats and sizes. DeepSeek-V3 in int4 (671B parameters x 4 bits, ~350 GB of
    weights) with an fp8 cache on one H100 (80 GB): no smaller format exists among those offered, and the
    weights alone exceed the GPU, so only more GPUs or a larger device help. Llama-3-70B in bf16 on two H100s
    (70.6B x 2 bytes / 2 = 70.6 GB a GPU) fits its weights but not 512 sequences of 8,100 tokens: smaller
    formats and fewer or shorter sequences (prompt and output both set the context) help."""
    heavy = ["estimate", "--model", "deepseek-v3", "--hardware", "h100-sxm", "--weight-dtype", "int4"]
    result = runner.invoke(app, [*heavy, "--kv-dtype", "fp8"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Shard it over more GPUs (--tp / --pp), or pick a larger --hardware." in text
    assert "--weight-dtype" not in text.split("does not fit")[1]
    assert "--kv-dtype" not in text
    assert "--batch-size" not in text
    long = ["--tp", "2", "--batch-size", "512", "--prompt-len", "8000", "--output-len", "100"]
    result = runner.invoke(app, ["estimate", "--model", "llama-3-70b", "--hardware", "h100-sxm", *long],
                           env={"COLUMNS": "300"})  # fmt: skip
    text = " ".join(result.output.split())
    assert "store it smaller (--weight-dtype fp8 or int4, --kv-dtype fp8)" in text
    assert "lower --batch-size / --prompt-len / --output-len" in text
    assert "of weights alone" not in text
    four_bit = ["speculative", "--target", "llama-3.1-405b", "--draft", "llama-3-8b", "--hardware", "l4"]
    result = runner.invoke(
        app, [*four_bit, "--alpha", "0.8", "--weight-dtype", "int4"], env={"COLUMNS": "300"}
    )
    text = " ".join(result.output.split())
    assert "does not fit even at batch 1" in text
    assert "--weight-dtype" not in text.split("does not fit")[1]


def test_speculative_checks_the_context_and_memory_before_it_prints() -> None:
    """Oracle: llama-3-70b's context is 8,192 tokens. A 200,000-token prompt fails first, one line on stderr
    with exit 2 and nothing on stdout, in table and JSON modes alike; the JSON carries each row's fit: the
    largest batch at this context beside the draft, the room the target alone leaves less the Llama-3-8B
    draft's own per-GPU weights at tp 4, over one sequence's two caches, the target's and the draft's (vLLM
    keeps the draft's layers in the target's pool; before session 19 the draft's cache was not counted). At tp 2 (the example of
    docs/dashboard.md) the target fits alone (70.6 GB of 77.3 GB usable) but not with the draft's 8.0 GB:
    no batch fits, and the closing line names the draft's share."""
    args = ["speculative", "--target", "llama-3-70b", "--draft", "llama-3-8b", "--alpha", "0.8", "--tp", "4"]
    for extra in ([], ["--json"]):
        result = runner.invoke(app, [*args, "--prompt-len", "200000", *extra])
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1
        assert "max_context" in result.stderr
    result = runner.invoke(app, [*args, "--json"])
    rows = json.loads(result.stdout)
    alone = costmodel.size("llama-3-70b", "h100-sxm", batch_size=1, prompt_len=1024, output_len=256,
                           deployment=costmodel.Deployment(tp=4))  # fmt: skip
    draft = costmodel.size("llama-3-8b", "h100-sxm", batch_size=1, prompt_len=1024, output_len=256,
                           deployment=costmodel.Deployment(tp=4)).weight_bytes_per_gpu  # fmt: skip
    assert draft == pytest.approx(8.03e9 * 2 / 4, rel=0.01)  # 8.03 B bf16 parameters over 4 GPUs
    room = alone.capacity_bytes_per_gpu - alone.weight_bytes_per_gpu - alone.activation_bytes_per_gpu
    # one sequence's caches at 1,280 tokens by hand, bf16: the target's 80 layers x 2 x 8 KV heads x 128 x 2
    # bytes and the draft's 32 layers x the same, each model's 8 KV heads split over the 4 GPUs
    target_kv, draft_kv = (layers * 2 * 8 * 128 * 2 / 4 * 1280 for layers in (80, 32))
    assert float(alone.kv_cache_bytes_per_gpu) == target_kv
    largest = int((room - draft) // (target_kv + draft_kv))
    assert 0 < largest < int((room - draft) // target_kv) < alone.max_batch_size
    assert all(r["max_batch_size"] == largest and r["fits"] == (r["batch_size"] <= largest) for r in rows)
    args[-1] = "2"
    rows = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert all(r["max_batch_size"] == 0 and not r["fits"] for r in rows)
    table = runner.invoke(app, args, terminal_width=400)
    assert (
        "with its draft's weights (8.03 GB a GPU) and KV cache (0.08 GB a sequence)" in table.stdout
    )  # 32 x 2 x 8 x 128 x 2 / 2 x 1,280
    assert "does not fit even at batch 1" in table.stdout


def test_each_price_names_its_provider_in_a_few_words() -> None:
    """The 'price from' column is the provider, the source up to its first comma, colon or bracket
    (specs.Price.provider): gb200's and mi325x's sources began with a sentence, which the column printed
    whole ('Spheron on-demand price as of 17 March 2026'). A provider is a name, not a price."""
    from costmodel.registry import list_hardware, load_hardware

    for name in list_hardware():
        price = load_hardware(name).price
        if price is None:
            continue
        assert len(price.provider.split()) <= 4, (name, price.provider)
        assert "$" not in price.provider, name


# ------------------------------------------------------------- parallelism and lengths named as typed


def _one_line_error(args: list[str]) -> str:
    """The stderr of a refused command: exit 2, one line, nothing on stdout."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["estimate", "--model", "llama-3-8b", "--tp", "3"],
        ["compare", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--tp", "3"],
        ["speculative", "--target", "llama-3-8b", "--draft", "ngram", "--alpha", "0.6", "--tp", "3"],
        # plan and pareto search lists: a degree the user typed that cannot split the model is bad input,
        # not a candidate that misses the objectives (plan used to exit 1, "no candidate meets")
        ["plan", "--model", "llama-3-8b", "--rate", "20", "--hardware", "h100-sxm", "--tp", "2,3"],
        ["pareto", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--tp", "3"],
    ],
)
def test_a_tensor_parallel_degree_that_does_not_split_the_heads_is_bad_input(args: list[str]) -> None:
    line = _one_line_error(args)
    # the degrees that split llama-3-8b (32 heads, 8 KV heads, d_ff 14336 = 2^11 x 7): the divisors of 32
    assert "--tp (3) must divide n_heads (32)" in line
    assert line.endswith("--tp takes 1, 2, 4, 8, 16, 32 for llama-3-8b")


def test_tp_degrees_are_the_splits_deployment_check_accepts() -> None:
    from costmodel.registry import load_model
    from costmodel.specs import tp_degrees

    llama = load_model("llama-3-8b")
    # 32 heads: its divisors; 8 KV heads split or replicated (8 | tp or tp | 8); d_ff = 14336 = 2^11 x 7
    assert tp_degrees(llama) == [1, 2, 4, 8, 16, 32]
    # Mixtral: 32 heads, 8 KV heads, expert width 14336: the same
    assert tp_degrees(load_model("mixtral-8x7b")) == [1, 2, 4, 8, 16, 32]
    assert tp_degrees(llama, up_to=6) == [1, 2, 4]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["estimate", "--model", "llama-3-8b", "--tp", "0"], "--tp must be greater than 0"),
        (["estimate", "--model", "llama-3-8b", "--pp", "33"], "--pp (33) exceeds the model's n_layers (32)"),
        (
            ["estimate", "--model", "mixtral-8x7b", "--tp", "4", "--moe-ep", "3"],
            "--moe-ep (3) must divide --tp (4)",
        ),
        (
            ["estimate", "--model", "mixtral-8x7b", "--tp", "2", "--attention-dp", "3", "--moe-ep", "3"],
            "--moe-ep (3) must divide moe.n_experts (8)",
        ),
        (
            ["estimate", "--model", "llama-3-8b", "--attention-dp", "2"],
            "--attention-dp (2) > 1 needs a mixture",
        ),
        (["plan", "--model", "llama-3-8b", "--rate", "20", "--tp", "0"], "--tp must be comma-separated"),
        (
            [
                "speculative",
                "--target",
                "llama-3-70b",
                "--draft",
                "llama-3-8b",
                "--alpha",
                "0.8",
                "--tp",
                "4",
                "--draft-tp",
                "2",
            ],
            "--draft-tp must be 1 or the target's --tp (4)",
        ),
        (["pareto", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--pp", "33"], "--pp (33) exceeds"),
        (
            ["pareto", "--model", "mixtral-8x7b", "--hardware", "h100-sxm", "--ep", "3"],
            "--ep (3) must divide",
        ),
        (
            ["pareto", "--model", "mixtral-8x7b", "--hardware", "h100-sxm", "--tp", "4", "--ep", "8"],
            "--ep (8) must divide one of --tp x --attention-dp (4)",
        ),
        (["pareto", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--ep", "2"], "--ep (2) > 1 needs a"),
        (  # 8 x 2 GPUs: more than a worker holds, so nothing to search (it said "0 tried: ")
            ["pareto", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--tp", "8", "--pp", "2"],
            "every --tp x --attention-dp x --pp exceeds the 8 GPUs a worker holds",
        ),
        (["compare", "--model", "llama-3-8b", "--tp", "0"], "--tp must be greater than 0 (got 0)"),
        (
            ["speculative", "--target", "llama-3-8b", "--draft", "ngram", "--alpha", "0.5", "--tp", "0"],
            "--tp must be greater than 0 (got 0)",
        ),
        (  # the draft's degree, named as such: gpt2's 12 heads do not split over 5 GPUs
            [
                "speculative",
                "--target",
                "gpt2-xl",
                "--draft",
                "gpt2",
                "--alpha",
                "0.7",
                "--tp",
                "5",
                "--prompt-len",
                "512",
                "--output-len",
                "128",
            ],
            "--draft-tp: the draft cannot be split over 5 GPUs (5 must divide n_heads (12) of gpt2)",
        ),
        (
            [
                "speculative",
                "--target",
                "llama-2-70b",
                "--draft",
                "ngram",
                "--alpha",
                "0.7",
                "--tp",
                "8",
                "--draft-tp",
                "8",
            ],
            "--draft-tp sets a draft model's GPUs; an n-gram draft has no model",
        ),
        (
            ["pareto", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--attention-dp", "2"],
            "--attention-dp (2) > 1 needs a mixture",
        ),
    ],
)
def test_other_bad_parallelism_is_one_line_naming_the_flag(args: list[str], needle: str) -> None:
    assert needle in _one_line_error(args)


@pytest.mark.parametrize(
    ("args", "lengths"),
    [
        (["estimate", "--model", "llama-3-8b", "--prompt-len", "9000"], "--prompt-len + --output-len"),
        (["compare", "--model", "llama-3-8b", "--prompt-len", "9000"], "--prompt-len + --output-len"),
        (
            [
                "speculative",
                "--target",
                "llama-3-8b",
                "--draft",
                "ngram",
                "--alpha",
                "0.6",
                "--prompt-len",
                "9000",
            ],
            "--prompt-len + --output-len",
        ),
        (["pareto", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--isl", "9000"], "--isl + --osl"),
        (
            ["plan", "--model", "llama-3-8b", "--rate", "1", "--prompt-mean", "9000"],
            "--prompt-mean + --output-mean",
        ),
    ],
)
def test_a_workload_past_the_context_names_the_flags_and_the_limit(args: list[str], lengths: str) -> None:
    line = _one_line_error(args)
    # 9000 + 256 (each command's default output) against Llama 3's 8192-token context
    assert f"{lengths} = 9,256 tokens exceeds llama-3-8b's context of 8,192 tokens" in line
    assert "prompt_len" not in line
    assert "output_len" not in line


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["estimate", "--model", "llama-3-8b", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["estimate", "--model", "llama-3-8b", "--sparsity", "1:2"], "--sparsity must be 'none' or '2:4'"),
        (["compare", "--model", "llama-3-8b", "--output-len", "0"], "--output-len must be >= 1"),
        (
            ["plan", "--model", "llama-3-8b", "--rate", "1", "--prompt-mean", "0"],
            "--prompt-mean must be at least 1",
        ),
    ],
)
def test_workload_sizes_are_named_as_typed(args: list[str], flag: str) -> None:
    assert flag in _one_line_error(args)


def test_api_errors_keep_the_api_names() -> None:
    from costmodel.specs import check_context

    with pytest.raises(CostmodelError, match=r"prompt_len \+ output_len = 9,256"):
        check_context(costmodel.load_model("llama-3-8b"), 9000, 256)


def test_speculative_refuses_a_draft_of_another_vocabulary_naming_the_flag() -> None:
    args = ["speculative", "--target", "llama-3-70b", "--draft", "llama-2-7b", "--alpha", "0.8", "--tp", "4"]
    line = _one_line_error(args)
    assert "a vocabulary of 32,000 tokens, the target llama-3-70b 128,256" in line
    assert "--heterogeneous-vocab" in line
    assert runner.invoke(app, [*args, "--heterogeneous-vocab", "--json"]).exit_code == 0


def test_estimate_takes_the_engine_for_kernels_and_mla_copies() -> None:
    """``--engine`` reaches both size() and estimate(): DeepSeek-V3 in per-tensor fp8 at tp 8 holds SGLang's
    1-byte W_UK / W_UV copies, 61 x 128 x 256 x 512 bytes / 8 fewer a GPU than vLLM's bf16 ones, and the JSON
    says which engine; TensorRT-LLM on an AMD GPU and an unknown engine are refused."""
    args = ["estimate", "--model", "deepseek-v3", "--hardware", "h200", "--tp", "8", "--weight-dtype", "fp8"]
    got = {}
    for engine in ("vllm", "sglang"):
        result = runner.invoke(app, [*args, "--engine", engine, "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["engine"] == engine
        got[engine] = data["weight_bytes_per_gpu"]
    assert got["vllm"] - got["sglang"] == pytest.approx(61 * 128 * 256 * 512 / 8, rel=1e-12)
    # the one-copy figure is the checkpoint's, the same for every engine; the label puts the engine's
    # copies on the per-GPU side alone
    table = runner.invoke(app, [*args, "--engine", "sglang"], terminal_width=400)
    assert "one copy / per GPU with sglang's MLA copies" in table.stdout
    one_copy = {
        engine: json.loads(runner.invoke(app, [*args, "--engine", engine, "--json"]).output)["weight_bytes"]
        for engine in ("vllm", "sglang")
    }
    assert one_copy["vllm"] == one_copy["sglang"]
    refused = runner.invoke(
        app, ["estimate", "--model", "llama-3-8b", "--hardware", "mi325x", "--engine", "trtllm"]
    )
    assert refused.exit_code != 0
    assert "--engine trtllm does not run on mi325x (AMD): use --engine vllm or sglang" in " ".join(
        refused.output.split()
    )
    # pareto names the flag too, before any search, where no listed system runs the engine
    args = ["pareto", "--model", "llama-3-8b", "--hardware", "mi325x", "--engine", "trtllm", "--tp", "1"]
    refused = runner.invoke(app, [*args, "--formats", "bf16", "--mode", "agg", "--concurrency", "8"])
    assert refused.exit_code != 0
    assert refused.stdout == ""
    assert "--engine trtllm does not run on mi325x (AMD)" in " ".join(refused.stderr.split())
    unknown = runner.invoke(app, ["estimate", "--model", "llama-3-8b", "--engine", "tgi"])
    assert unknown.exit_code != 0
    assert "--engine 'tgi' is not an engine" in " ".join(unknown.output.split())


def test_pareto_says_the_token_budget_each_system_was_launched_with() -> None:
    """Without --token-budget each system runs the engine's own default (vLLM: 2,048 on an A100, 8,192 on an
    H100, EngineArgs.get_batch_defaults); with it, the flag's value everywhere."""
    args = ["pareto", "--model", "llama-3-8b", "--hardware", "a100-80gb,h100-sxm", "--formats", "bf16",
            "--tp", "1", "--pp", "1", "--mode", "agg", "--isl", "1024", "--osl", "64", "--concurrency", "8"]  # fmt: skip
    shown = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert shown["token_budget_by_system"] == {"a100-80gb": 2048, "h100-sxm": 8192}
    given = json.loads(runner.invoke(app, [*args, "--json", "--token-budget", "4096"]).stdout)
    assert given["token_budget_by_system"] == {"a100-80gb": 4096, "h100-sxm": 4096}
    table = runner.invoke(app, args, terminal_width=400).stdout
    assert "(the engine default): a100-80gb 2,048, h100-sxm 8,192 tokens" in table
