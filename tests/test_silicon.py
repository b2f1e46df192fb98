"""The public serving sample: every row is predicted or counted with its reason; the split is a rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costmodel.closed_loop import BOUNDS, LoopParams
from validation.public.evaluate import Evaluation, write_outputs
from validation.public.silicon import (
    fit_loop_params,
    predict_silicon,
    read_loop_params,
    silicon_parts,
    silicon_summary,
)

DATA = Path(__file__).resolve().parents[1] / "validation" / "data" / "public-gpu"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama-3.1-70B rows of the vendored sample (aggregated and disaggregated), one row of an unknown
    model and one with attention data parallelism."""
    table = pd.read_csv(DATA / "silicon_sample.csv")
    llama = table[table["model_path"] == "meta-llama/Llama-3.1-70B"]
    rows = pd.concat(
        [
            llama[llama["mode"] == "agg"].head(30),
            table[table["mode"] == "disagg"].head(2),
            table[table["attention_dp_size"].fillna(1) > 1].head(1),
            table.head(1).assign(model_path="nobody/unknown-model"),
        ]
    )
    root = tmp_path_factory.mktemp("silicon")
    rows.to_csv(root / "silicon_sample.csv", index=False)
    (root / "model_configs").mkdir()
    name = "meta-llama--Meta-Llama-3.1-70B_config.json"
    shutil.copy(DATA / "model_configs" / name, root / "model_configs" / name)
    return root


def test_every_row_is_predicted_or_counted_with_its_reason(sample: Path) -> None:
    rows = predict_silicon(sample, {})
    assert len(rows) == 34
    covered = rows[rows["covered"]]
    assert len(covered) == 30
    assert np.all(np.isfinite(covered[["predicted_ttft_ms", "predicted_tpot_ms"]].to_numpy()))
    assert np.all(covered[["predicted_ttft_ms", "predicted_tpot_ms"]].to_numpy() > 0)
    reasons = set(rows.loc[~rows["covered"], "reason"])
    assert "disaggregated serving is not modelled yet" in reasons
    assert "no config.json for nobody/unknown-model" in reasons
    summary = silicon_summary(rows)
    assert sum(e["total"] for e in summary if e["metric"] == "ttft") == 34
    assert {e["split"] for e in summary} <= {"calibration", "held-out"}


def test_the_split_ignores_the_measurements(sample: Path) -> None:
    """The calibration rows are the same whatever was measured (a rule on row identity)."""
    table, _ = silicon_parts(sample)
    changed = sample.parent / "silicon-changed"
    shutil.copytree(sample, changed, dirs_exist_ok=True)
    raw = pd.read_csv(sample / "silicon_sample.csv")
    raw["silicon_ttft_ms"] *= 3.0
    raw.to_csv(changed / "silicon_sample.csv", index=False)
    again, _ = silicon_parts(changed)
    assert (table["split"] == again["split"]).all()


def test_the_fit_stays_in_bounds_and_the_committed_parameters_load(sample: Path) -> None:
    table, groups = silicon_parts(sample)
    table["split"] = "calibration"  # every covered row, so the tiny sample has something to fit
    fitted = fit_loop_params(table, groups)
    assert set(fitted) <= {"vllm", "sglang", "trtllm"}
    for params in fitted.values():
        for name, (low, high) in BOUNDS.items():
            assert low <= getattr(params, name) <= high
    committed = read_loop_params()
    assert all(isinstance(p, LoopParams) for p in committed.values())


@pytest.mark.parametrize("content", ["", "{}\n", "fitted_on: {}\n"])
def test_empty_loop_parameters_are_refused_naming_the_file(tmp_path: Path, content: str) -> None:
    from costmodel.errors import CostmodelError

    path = tmp_path / "serving_params.yaml"
    path.write_text(content)
    with pytest.raises(CostmodelError, match=f"^{path} is empty or has no 'engines'"):
        read_loop_params(path)


def test_the_evaluation_writes_the_silicon_summary(sample: Path, tmp_path: Path) -> None:
    document = write_outputs(sample, tmp_path, Evaluation())
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    keys = {"system", "engine", "mode", "metric", "split", "n", "covered", "total", "median_abs_err",
            "p90_abs_err", "median_signed_err"}  # fmt: skip
    assert on_disk["silicon"]
    assert all(set(e) == keys for e in on_disk["silicon"])
    assert document["silicon_uncovered"]
    written = pd.read_csv(tmp_path / "rows.csv")
    assert (written["family"] == "silicon").sum() == 34
