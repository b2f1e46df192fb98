"""Benchmark harnesses of the silicon sample: which harness a row is from, and the fit of each harness's
own request overhead beside the engine's parameters."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PUBLIC_GPU as DATA

from costmodel.closed_loop import LoopParams, LoopParts
from validation.public.harness import (
    AICONFIGURATOR,
    MIN_CALIBRATION_ROWS,
    REFERENCE,
    row_harness,
    runs_as_train,
    stated_wave_share,
)
from validation.public.silicon import (
    MEASURED,
    fit_serving_params,
    read_harness_overheads,
    silicon_parts,
    write_loop_params,
)


def test_rows_are_labelled_by_their_source() -> None:
    sources = [
        "source_file=2026-04-06.csv; model=Llama-3.1-70B; silicon_concurrency=4",
        "db-dump/2026-04-27; config_id=91; silicon_concurrency=32",
        "source_file=/Users/x/aic-auto-gap-analysis/data/h100_sxm/trtllm/1.0.0rc3/Qwen.csv; silicon_concurrency=4",
        "source_file=kimi-k2.5-gap-analysis.csv; silicon_concurrency=8",
    ]
    labels = row_harness(pd.DataFrame({"silicon_data_source": sources}))
    assert labels.tolist() == [REFERENCE, REFERENCE, AICONFIGURATOR, REFERENCE]


def _sample_dir(factory: pytest.TempPathFactory, name: str, rows: pd.DataFrame) -> Path:
    """A data directory of ``rows`` as the evaluation reads one: the sample, the two models' configs, and the
    source's README, REVISION and LICENSE."""
    root = factory.mktemp(name)
    rows.to_csv(root / "silicon_sample.csv", index=False)
    (root / "model_configs").mkdir()
    for config in ("meta-llama--Meta-Llama-3.1-70B_config.json", "Qwen--Qwen3-32B_config.json"):
        shutil.copy(DATA / "model_configs" / config, root / "model_configs" / config)
    for source in ("README.md", "REVISION", "LICENSE"):
        shutil.copy(DATA / source, root / source)
    return root


@pytest.fixture(scope="module")
def two_harnesses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TensorRT-LLM rows of both harnesses: H100 Qwen3-32B (aiconfigurator's collection) and B200
    Llama-3.1-70B (InferenceX), enough of each for its own request overhead."""
    table = pd.read_csv(DATA / "silicon_sample.csv")
    trt = table[(table["backend"] == "trtllm") & (table["mode"] == "agg")]
    rows = pd.concat(
        [
            trt[trt["model_path"] == "Qwen/Qwen3-32B"].head(MIN_CALIBRATION_ROWS + 4),
            trt[trt["model_path"] == "meta-llama/Llama-3.1-70B"].head(MIN_CALIBRATION_ROWS + 4),
        ]
    )
    return _sample_dir(tmp_path_factory, "harness", rows)


def test_the_fit_recovers_each_harness_request_overhead(two_harnesses: Path, tmp_path: Path) -> None:
    """Measurements made by the model itself with a known engine and a known second harness overhead are
    fitted back to them: the harness overhead is identified beside the engine's own parameters."""
    table, groups = silicon_parts(two_harnesses)
    table["split"] = "calibration"
    truth = LoopParams(
        step_overhead_s=0.001,
        request_overhead_s=0.015,
        burst_fraction=0.15,
        prefill_layer_overhead_s=0.0002,
        mla_prefill_layer_overhead_s=0.0,
        first_token_lag_iterations=1.5,
    )
    harness = row_harness(table)
    for index, parts in groups:
        assert isinstance(parts, LoopParts)
        own = truth if harness[index[0]] == REFERENCE else replace(truth, request_overhead_s=0.11)
        result = parts.result(own)
        table.loc[index, MEASURED[0]] = result.ttft_s * 1e3
        table.loc[index, MEASURED[1]] = result.tpot_s * 1e3
    fitted, overheads = fit_serving_params(table, groups)
    assert fitted["trtllm"].request_overhead_s == pytest.approx(0.015, abs=2e-3)
    assert overheads["trtllm"][AICONFIGURATOR] == pytest.approx(0.11, abs=2e-3)
    path = tmp_path / "serving-engines.yaml"
    write_loop_params(fitted, two_harnesses, path=path, harness=overheads)
    assert read_harness_overheads(path) == overheads


def test_other_engines_and_small_harnesses_keep_one_overhead(two_harnesses: Path) -> None:
    """Too few calibration rows of a harness: no figure of its own."""
    table, groups = silicon_parts(two_harnesses)
    harness = row_harness(table)
    table["split"] = np.where(harness == REFERENCE, "calibration", "held-out")
    table.loc[table.index[harness == AICONFIGURATOR][:3], "split"] = "calibration"
    _, overheads = fit_serving_params(table, groups)
    assert overheads == {}


def test_only_fixed_lengths_against_an_overlapped_scheduler_run_as_a_train(two_harnesses: Path) -> None:
    """aiconfigurator's collection asks for fixed lengths; InferenceX draws them from a range. Of the
    engines, TensorRT-LLM's overlapped scheduler makes a train of them (harness.TRAIN_ENGINES)."""
    aic, ref = pd.Series([AICONFIGURATOR] * 2), pd.Series([REFERENCE] * 2)
    assert runs_as_train("trtllm", aic)
    assert not runs_as_train("trtllm", ref)
    assert not runs_as_train("vllm", aic)
    assert not runs_as_train("trtllm", pd.Series([AICONFIGURATOR, REFERENCE]))
    table, groups = silicon_parts(two_harnesses)
    harness = row_harness(table)
    for index, parts in groups:
        assert isinstance(parts, LoopParts)
        assert parts.train == (harness[index[0]] == AICONFIGURATOR)


@pytest.fixture(scope="module")
def vllm_two_harnesses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """H100 vLLM rows of both harnesses: Qwen3-32B (aiconfigurator's collection) and Llama-3.1-70B
    (InferenceX)."""
    table = pd.read_csv(DATA / "silicon_sample.csv")
    vllm = table[(table["backend"] == "vllm") & (table["mode"] == "agg") & (table["system"] == "h100_sxm")]
    rows = pd.concat(
        [
            vllm[vllm["model_path"] == "Qwen/Qwen3-32B"].head(6),
            vllm[vllm["model_path"] == "meta-llama/Llama-3.1-70B"].head(6),
        ]
    )
    return _sample_dir(tmp_path_factory, "vllm_harness", rows)


def test_a_harness_that_starts_its_measured_requests_together_states_the_wave_share(
    vllm_two_harnesses: Path, two_harnesses: Path
) -> None:
    """aiconfigurator's runner measures ``--request-count`` 10 C requests at ``--concurrency`` C after a
    drained warm-up, so the first of each client's ten measured requests leave together: f = 1 / 10 on
    vLLM's rows of that harness. InferenceX's vLLM rows, and TensorRT-LLM's rows of either harness, keep
    what they had (the fitted share, or InferenceX TensorRT-LLM's own 1 / 10)."""
    runner_requests, runner_clients = 10 * 8, 8  # genai_perf_runner.run at --concurrency 8
    assert stated_wave_share("vllm", pd.Series([AICONFIGURATOR] * 3)) == pytest.approx(
        runner_clients / runner_requests
    )
    assert stated_wave_share("vllm", pd.Series([REFERENCE] * 3)) is None
    assert stated_wave_share("trtllm", pd.Series([AICONFIGURATOR] * 3)) is None
    with pytest.raises(RuntimeError, match="mix the harnesses"):  # one group is one harness, never a mix
        stated_wave_share("vllm", pd.Series([AICONFIGURATOR, REFERENCE]))
    kinds = []
    for data in (vllm_two_harnesses, two_harnesses):
        table, groups = silicon_parts(data)
        harness = row_harness(table)
        for index, parts in groups:
            assert isinstance(parts, LoopParts)
            kind = (str(table.loc[index[0], "backend"]), str(harness[index[0]]))
            kinds.append(kind)
            if kind == ("vllm", AICONFIGURATOR):
                assert parts.wave_share is not None
                assert np.allclose(parts.wave_share, runner_clients / runner_requests)
            elif kind[0] == "vllm" or kind == ("trtllm", AICONFIGURATOR):
                assert parts.wave_share is None
    assert set(kinds) == {(b, h) for b in ("vllm", "trtllm") for h in (AICONFIGURATOR, REFERENCE)}
