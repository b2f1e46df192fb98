"""The command line, run as users run it: exit codes, messages, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import HF_CONFIGS
from typer.testing import CliRunner

from costmodel.cli import app

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
        (["estimate", "--model", "gpt2", "--batch-size", "0"], "batch_size must be >= 1, got 0"),
        (["estimate", "--model", "gpt2", "--weight-dtype", "int3"], "unknown dtype 'int3'"),
        (["import-hf", "/nonexistent/config.json"], "cannot read"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert needle in " ".join(result.stderr.split()), args
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
