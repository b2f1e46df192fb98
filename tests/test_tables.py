"""``python -m validation tables``: the docs' figure tables against the committed results, and the renderer
on a tiny hand-written summary (bolding, rounding, a missing cell shown as ``-``, prose cells kept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from validation.__main__ import main as validation_main
from validation.tables import (
    COMMAND,
    LOOP_ROWS,
    ROOT,
    Results,
    aiconfigurator_table,
    at_bound,
    cpu_note,
    families_table,
    loop_value,
    pct,
    readme_serving_table,
    serving_misses_table,
    sig3,
    table_cells,
    transfer_table,
    update,
)


def test_docs_tables_match_the_committed_results() -> None:
    outcome = update(ROOT)
    assert not outcome.missing, f"generated blocks without markers: {outcome.missing}"
    assert not outcome.stale, (
        f"the docs' tables differ from the committed results in {', '.join(outcome.stale)}: run `{COMMAND} --write`"
    )


def _entry(
    system: str,
    engine: str,
    mode: str,
    metric: str,
    split: str,
    n: int,
    total: int,
    med: float,
    p90: float,
    signed: float,
) -> dict:
    return {
        "system": system,
        "engine": engine,
        "mode": mode,
        "metric": metric,
        "split": split,
        "n": n,
        "covered": n,
        "total": total,
        "median_abs_err": med if n else None,
        "p90_abs_err": p90 if n else None,
        "median_signed_err": signed if n else None,
    }


def tiny() -> Results:
    silicon = [
        # over the TTFT median target (0.2001 > 20 %) though it prints as 20.0; p90 at 0.495 rounds to 50, not bold
        _entry("b200_sxm", "vllm", "agg", "ttft", "held-out", 8, 10, 0.2001, 0.495, -0.0004),
        _entry("b200_sxm", "vllm", "agg", "tpot", "held-out", 8, 10, 0.0996, 0.2549, 0.031),
        _entry("b200_sxm", "vllm", "agg", "ttft", "calibration", 2, 2, 0.10, 0.20, 0.0),
        _entry("b200_sxm", "vllm", "agg", "tpot", "calibration", 2, 2, 0.05, 0.10, 0.0),
        _entry("h100_sxm", "sglang", "disagg", "ttft", "held-out", 0, 3, 0, 0, 0),
        _entry("h100_sxm", "sglang", "disagg", "tpot", "held-out", 0, 3, 0, 0, 0),
    ]
    kernels = [
        {
            "system": "b200_sxm",
            "family": "gemm",
            "engine": "vllm",
            "dtype": "fp8",
            "kernel": "k",
            "split": "held-out",
            "n": 10,
            "median_abs_err": 0.12,
            "p90_abs_err": 0.3,
            "median_signed_err": 0.0,
        },
    ]
    columns = ["system", "family", "split", "n", "median_abs_err", "p90_abs_err", "median_signed_err"]
    families = [
        ["b200_sxm", "gemm", "held-out", 1000, 0.06249, 0.2501, 0.0],  # p90 prints 25.0 but is over: bold
        ["b200_sxm", "gemm", "calibration", 200, 0.5, 0.9, 0.0],  # calibration rows never enter
        ["a100_sxm", "generation_mla", "held-out", 10, 0.04, 0.271, 0.0],  # the kernel part alone, named
        ["h100_sxm", "mla_gen_pre", "held-out", 10, 0.038, 0.161, 0.0],
        ["h100_sxm", "mla_gen_post", "held-out", 10, 0.038, 0.136, 0.0],
    ]
    transfer = [
        {
            "system": "b200_sxm",
            "family": "gemm",
            "engine": "all",
            "dtype": "all",
            "lookup": "all",
            "n": 5,
            "median_abs_err": 0.1501,
            "p90_abs_err": 0.524,
            "median_signed_err": 0.0,
        },
        {
            "system": "b200_sxm",
            "family": "gemm",
            "engine": "vllm",
            "dtype": "fp8",
            "lookup": "all",
            "n": 5,
            "median_abs_err": 0.9,
            "p90_abs_err": 0.9,
            "median_signed_err": 0.0,
        },
    ]
    systems = {s: {"hardware_profile": [p]} for s, p in (
        ("h100_sxm", "h100-sxm"), ("b200_sxm", "b200"), ("a100_sxm", "a100-80gb"), ("l40s", "l40s"))}  # fmt: skip
    summary = {
        "costmodel_revision": "abc1234",
        "date": "2026-01-01",
        "environment": {"systems": systems},
        "silicon": silicon,
        "kernels": kernels,
    }
    return Results(
        summary=summary,
        regimes={
            "costmodel_revision": "abc1234",
            "date": "2026-01-01",
            "families": {"columns": columns, "data": families},
        },
        transfer={
            "costmodel_revision": "def5678",
            "date": "2026-01-02",
            "leave_one_out": {"b200": "h100-sxm"},
            "transfer": transfer,
        },
        engines={},
        cpu_markdown="",
    )


def test_percent_rounding_and_bold_follow_the_unrounded_figure() -> None:
    assert pct(0.2001, 1, 0.20) == "**20.0**"
    assert pct(0.1996, 1, 0.20) == "20.0"
    assert pct(-0.0004, 1, sign=True) == "-0.0"
    assert pct(None, 1) == "-"
    assert (sig3(0.0014007), sig3(0.05), sig3(0.151302), sig3(3.0)) == ("0.00140", "0.0500", "0.151", "3.00")


def test_families_table_bolds_rounds_and_shows_missing_as_dash() -> None:
    rows = table_cells(families_table(tiny(), {}, gemm=True, diagnosis=False))
    assert rows["GEMM"][1:] == ["-", "6.2 / **25.0**", "-", "-"]  # H100, B200, A100, L40S
    assert rows["MLA generation (kernel / module)"][3] == "4.0 / **27.1** (kernel)"
    assert rows["MLA absorb matmuls (pre / post)"][1] == "3.8 / 16.1, 3.8 / 13.6"
    assert rows["MoE"][1:] == ["-"] * 4


def test_prose_column_is_kept_by_row_and_new_rows_get_an_empty_cell() -> None:
    old = table_cells(
        "| family | a | b | c | d | diagnosis |\n|---|---|---|---|---|---|\n| GEMM | 1 | 2 | 3 | 4 | tiles \\| waves |"
    )
    rows = table_cells(families_table(tiny(), old, gemm=True, diagnosis=True))
    assert rows["GEMM"][-1] == "tiles \\| waves"
    assert rows["MoE"][-1] == ""


def test_serving_tables_bold_over_target_and_skip_uncovered_groups() -> None:
    text = readme_serving_table(tiny(), {})
    rows = table_cells(text)
    assert rows["B200"][3:] == [
        "10 / 12",
        "8",
        "**20.0** / 50",
        "10.0 / **25**",
        "2",
        "10.0 / 20",
        "5.0 / 10",
    ]
    assert "H100 SXM" not in rows  # no covered row
    assert (
        "0 of the 2 held-out system x engine x mode x metric cells" in text
    )  # TTFT median over, TPOT p90 over
    misses = serving_misses_table(tiny(), {"B200 vLLM agg": ["B200 vLLM agg", "", "", "", "", "why"]})
    row = table_cells(misses)["B200 vLLM agg"]
    assert row[2:] == ["**20.0** / 50 (-0.0)", "10.0 / **25** (+3.1)", "10.0 / 5.0", "why"]
    assert "Covered: 10 of 15 deployments; H100 SGLang disagg has 0 of 3 covered." in misses


def test_transfer_table_pools_engines_bolds_the_median_only() -> None:
    text = transfer_table(tiny(), {})
    rows = table_cells(text)
    assert rows["B200 (H100 SXM)"][1:] == ["**15.0** / 52", "-", "-", "-", "-"]
    assert "0 of the 1 medians meet the 15 % target (costmodel revision def5678, 2026-01-02)." in text


def test_loop_values_at_a_bound() -> None:
    step = next(r for r in LOOP_ROWS if r.label == "`step_overhead_s`")
    assert loop_value(1.23e-13, step) == "0 (1e-10)"  # ms
    assert loop_value(1.0381e-4, step) == "0.104"
    assert (
        at_bound({"vllm": 1e-4, "sglang": 1e-13, "trtllm": 0.05}, step)
        == "**SGLang, lower; TensorRT-LLM, upper**"
    )
    assert at_bound({"vllm": 1e-4}, step) == "no"


INPUTS = (
    "README.md",
    "docs/validation.md",
    "docs/serving.md",
    "validation/results/public-gpu-summary.json",
    "validation/results/public-gpu-regimes.json",
    "validation/results/public-gpu-transfer.json",
    "validation/results/cpu-quick.jsonl",
    "benchmarks/results/aiconfigurator-silicon.json",
    "hardware_profiles/calibrated/serving-engines.yaml",
)


def copy_inputs(root: Path) -> None:
    for name in INPUTS:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text((ROOT / name).read_text())


def test_check_names_a_stale_block_and_write_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_inputs(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("| B200 | 218,460 |", "| B200 | 218,461 |"))
    assert validation_main(["tables", "--check", "--root", str(tmp_path)]) == 1
    assert (
        "stale: readme-gemm (README.md); run `python -m validation tables --write`" in capsys.readouterr().err
    )
    assert update(tmp_path).stale == ("readme-gemm (README.md)",)
    assert validation_main(["tables", "--write", "--root", str(tmp_path)]) == 0
    assert readme.read_text() == (ROOT / "README.md").read_text()
    assert validation_main(["tables", "--check", "--root", str(tmp_path)]) == 0


@pytest.mark.parametrize("name", ["readme-gemm", "serving-misses"])
def test_a_missing_marker_fails_the_check(tmp_path: Path, name: str) -> None:
    for file in ("README.md", "docs/validation.md", "docs/serving.md"):
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text((ROOT / file).read_text().replace(f"<!-- generated: {name} ", "<!-- "))
    from validation.tables import load_results

    outcome = update(tmp_path, load_results(ROOT))
    assert outcome.missing
    assert name in outcome.missing[0]


def test_a_missing_end_marker_is_one_error_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_inputs(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("<!-- end generated: readme-gemm -->\n", ""))
    assert validation_main(["tables", "--check", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "error: block 'readme-gemm': no closing '<!-- end generated: readme-gemm -->'; add it after the table\n"
    )


def test_write_names_a_row_whose_diagnosis_was_not_carried_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prose is kept by first cell: a group renamed in the doc (or new in the results) comes back without its
    diagnosis, and ``--write`` names it instead of dropping it silently."""
    copy_inputs(tmp_path)
    assert update(tmp_path).no_prose == ()
    serving = tmp_path / "docs/serving.md"
    serving.write_text(serving.read_text().replace("\n| H100 SGLang agg |", "\n| H100 SGLang (agg) |", 1))
    assert validation_main(["tables", "--write", "--root", str(tmp_path)]) == 0
    assert (
        "no prose: serving-misses (docs/serving.md): H100 SGLang agg (a new or renamed row: write its cell)"
        in capsys.readouterr().err
    )
    text = serving.read_text()
    assert text.index("\n| H100 SGLang agg | ") < text.index("<!-- end generated: serving-misses -->")
    assert "\n| H100 SGLang (agg) |" not in text


def test_cpu_block_states_the_runs_environment_record() -> None:
    env = {
        "date": "2026-12-02T01:04:56+01:00",
        "git_revision": "9007129e6760e701a81f8aae4ac3186a461c6681-dirty",
        "torch_version": "2.13.0+cpu",
        "host_cpu": "Intel(R) Xeon(R) Processor",
        "cpu_threads": 2,
        "clock": "thread",
        "load_average": [15.76, 15.16, 3.04],
        "suite": "quick",
    }
    assert cpu_note(env) == (
        "Measured 2026-12-02 00:04 UTC on Intel(R) Xeon(R) Processor: 2 threads, thread clock, torch "
        "2.13.0+cpu, load average 15.8 / 15.2 / 3.0 (1 / 5 / 15 min); costmodel revision 9007129-dirty "
        "(`validation/results/cpu-quick.jsonl`, suite quick)."
    )


def test_aiconfigurator_table_shows_a_tool_without_rows_as_dash() -> None:
    def entry(tool: str, covered: int, signed: float | None) -> dict:
        size = None if signed is None else abs(signed)
        figures = {f"{m}_{k}_err": size for m in ("ttft", "tpot") for k in ("median_abs", "p90_abs")}
        figures |= {f"{m}_median_signed_err": signed for m in ("ttft", "tpot")}
        return {"system": "h100_sxm", "engine": "sglang", "mode": "disagg", "rows": "held-out", "tool": tool,
                "covered": covered, "total": 34} | figures  # fmt: skip

    doc = {
        "aiconfigurator_version": "0.12.0", "costmodel_revision": "abc1234", "date": "2026-01-01",
        "figures": [entry("aiconfigurator", 0, None), entry("costmodel", 8, -0.004),
                    {**entry("costmodel", 8, 0.5), "rows": "all"}],
    }  # fmt: skip
    results = Results(summary={}, regimes={}, transfer={}, engines={}, cpu_markdown="", aiconfigurator=doc)
    row = table_cells(aiconfigurator_table(results, {}))["H100"]
    assert row[3:] == ["0 / 34", "8 / 34", "-", "0 / 0 (-0)", "-", "0 / 0 (-0)"]


def test_every_fitted_loop_parameter_has_a_row() -> None:
    from costmodel import closed_loop, disagg

    labels = {row.label for row in LOOP_ROWS}
    assert {f"`{name}`" for name in closed_loop.BOUNDS} <= labels
    assert {f"`{name}` (disagg)" for name in disagg.BOUNDS} <= labels
