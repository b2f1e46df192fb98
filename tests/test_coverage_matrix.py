"""Every model and system added for today's deployments, in every format its checkpoints ship in:
``size()``, ``estimate()``, the capacity planner and the dashboard run on each combination, or refuse it
with one clear error (issue 15, "done means").

The deployment of each combination is the fewest GPUs (tensor-parallel degree x pipeline stages, fewer
stages first) the model splits into whose weights take at most 80 % of a device."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import costmodel as cm
from costmodel.capacity import SLO, plan
from costmodel.estimate import scale_up_domain_size
from costmodel.memory import (
    checkpoint_bytes,
    checkpoint_formats,
    mla_absorb_copy_bytes,
    replicated_weight_bytes,
    shipped_checkpoints,
    workload_formats,
)
from costmodel.serving import Lengths, Traffic

NEW_MODELS = (
    "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b", "gpt-oss-20b", "gpt-oss-120b",
    "minimax-m2.5", "qwen3.5-122b-a10b", "qwen3.5-397b-a17b", "glm-5", "deepseek-v3", "deepseek-v3.2",
    "kimi-k2.5", "llama-4-scout", "llama-4-maverick", "gemma-4-26b-a4b", "gemma-4-31b", "nemotron-h-56b",
    "nemotron-3-nano-30b-a3b", "nemotron-3-super-120b-a12b",
)  # fmt: skip
NEW_SYSTEMS = ("b300", "gb200", "gb300", "rtx-pro-6000-server", "h20", "mi325x", "mi355x")
SHIPPED = [(m, c) for m in NEW_MODELS for c in shipped_checkpoints(cm.load_model(m))]
TP_DEGREES = (1, 2, 4, 8, 16, 32, 64)
NO_SCALE_OUT = "no inter-node bandwidth"  # profiles without a cited NIC bandwidth stop at one node


@cache
def deployment(model_name: str, checkpoint: str, system: str) -> cm.Deployment:
    model, hw = cm.load_model(model_name), cm.load_hardware(system)
    size = checkpoint_bytes(model, checkpoint)
    splits = sorted(((tp, pp) for tp in TP_DEGREES for pp in (1, 2, 4)), key=lambda s: (s[0] * s[1], s[1]))
    for tp, pp in splits:
        try:
            cm.Deployment(tp=tp, pp=pp).check(model)
        except ValueError:
            continue
        if size / (tp * pp) <= 0.8 * hw.memory_bytes:
            return cm.Deployment(tp=tp, pp=pp)
    raise AssertionError(f"{model_name} {checkpoint} fits no tensor-parallel split of {system}")


def test_the_matrix_covers_every_new_model_and_system() -> None:
    assert set(NEW_MODELS) <= set(cm.list_models())
    assert set(NEW_SYSTEMS) <= set(cm.list_hardware())
    assert len(SHIPPED) > len(NEW_MODELS)  # some ship in more than one format


@pytest.mark.parametrize("system", NEW_SYSTEMS)
@pytest.mark.parametrize(("model_name", "checkpoint"), SHIPPED)
def test_size_and_estimate_run_in_every_shipped_format(model_name: str, checkpoint: str, system: str) -> None:
    model, hw = cm.load_model(model_name), cm.load_hardware(system)
    formats = workload_formats(model, checkpoint, hw)
    dep = deployment(model_name, checkpoint, system)
    multi_node = dep.gpus_per_replica > scale_up_domain_size(hw, dep)
    sized = cm.size(
        model, hw, batch_size=4, prompt_len=1024, output_len=128, deployment=dep, checkpoint=checkpoint
    )
    # the checkpoint's bytes as stored, split over the TP group (routed experts over every GPU of it)
    assert sized.weight_bytes == checkpoint_bytes(model, checkpoint)
    assert 0 < sized.weight_bytes_per_gpu <= 0.8 * hw.memory_bytes
    # every GPU holds its share, and each of the TP ranks holds the replicated attention weights whole
    # (MLA's down projections, the sparse-attention indexer): tp - 1 copies beyond the checkpoint; an MLA
    # model's GPUs also hold the default engine's (vLLM's) W_UK / W_UV copies of a quantized kv_b_proj,
    # split with its heads
    weight_dtype, component_dtypes = checkpoint_formats(model, checkpoint)
    replicated = replicated_weight_bytes(model, weight_dtype=weight_dtype, component_dtypes=component_dtypes)
    copies = mla_absorb_copy_bytes(
        model, weight_dtype=weight_dtype, component_dtypes=component_dtypes, hardware=hw
    )
    assert sized.weight_bytes_per_gpu * dep.tp * dep.pp == pytest.approx(
        sized.weight_bytes + (dep.tp - 1) * replicated + copies, rel=1e-9
    )
    workload = cm.Workload(4, 1024, 128, **formats)
    if multi_node and hw.datasheet.inter_node_bandwidth_gb_per_s is None:
        with pytest.raises(ValueError, match=NO_SCALE_OUT):
            cm.estimate(model, hw, workload, dep)
        return
    report = cm.estimate(model, hw, workload, dep)
    # estimate() holds the checkpoint as stored too, each component in its own format
    assert report.weight_bytes_per_gpu == pytest.approx(sized.weight_bytes_per_gpu, rel=1e-12)
    for value in (report.ttft_s, report.tpot_s):
        assert np.all(np.isfinite(value))
        assert np.all(np.asarray(value) > 0)


@pytest.mark.parametrize(("model_name", "checkpoint"), SHIPPED)
def test_the_planner_runs_in_every_shipped_format(model_name: str, checkpoint: str) -> None:
    """One plan over every new system and the TP degrees within a node: each row is a plan or says why
    not."""
    model = cm.load_model(model_name)
    # formats any of the systems runs: NVFP4 / fp8 inputs where each has the tensor cores is per system,
    # so one plan over all of them takes the checkpoint's weight-only inputs (bf16) where they differ
    formats = _common_formats(model, checkpoint)
    traffic = Traffic(2.0, Lengths.fixed(1024), Lengths.fixed(128))
    table = plan(
        model,
        list(NEW_SYSTEMS),
        traffic,
        SLO(ttft_s=10.0, tpot_s=0.5),
        tp=(1, 2, 4, 8),
        **formats,
        samples=200,
    )
    assert set(table["hardware"]) == set(NEW_SYSTEMS)
    feasible = table["feasible"].astype(bool)
    assert (table.loc[feasible, "replicas"] >= 1).all()
    assert table.loc[~feasible, "reason"].astype(str).str.len().gt(0).all()


# --- the dashboard, through streamlit's AppTest (as tests/test_app.py) ---

APP = Path(__file__).resolve().parents[1] / "costmodel_app"


def _common_formats(model: cm.ModelProfile, checkpoint: str) -> dict[str, Any]:
    """The checkpoint's formats (:func:`workload_formats`) that every new system runs."""
    per_system = [workload_formats(model, checkpoint, cm.load_hardware(s)) for s in NEW_SYSTEMS]
    return {k: v if all(f[k] == v for f in per_system) else "bf16" for k, v in per_system[0].items()}


def dashboard(page: str, model_name: str, checkpoint: str) -> object:
    pytest.importorskip("streamlit", reason="the dashboard needs the app extra: pip install 'costmodel[app]'")
    from components import _splits  # the dashboard's own rule for the TP degrees a model splits into
    from scenario import ATTENTION_EXCEPT_O_PROJ, attention_label
    from streamlit.testing.v1 import AppTest

    model = cm.load_model(model_name)
    formats = _common_formats(model, checkpoint)
    tp = max(t for t in (1, 2, 4, 8) if t == 1 or _splits(model, t))
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=120)
    # the sidebar sets the weight, input, attention and routed-expert formats (DeepSeek's NVFP4 o_proj
    # inside bf16 attention: the attention format that keeps the output projection as the weights)
    query = {"model": model_name} | {
        k: v for k, v in formats.items() if v is not None and k != "component_dtypes"
    }
    apart = formats["component_dtypes"] or {}
    if set(apart) == {"attention"}:
        query["attention_dtype"] = apart["attention"]
    elif apart:
        assert apart == {"attention": "bf16", "attention.o_proj": formats["weight_dtype"]}, apart
        query["attention_dtype"] = ATTENTION_EXCEPT_O_PROJ
    for key, value in (query | {"tp": str(tp)}).items():
        at.query_params[key] = value
    at.query_params["hardware"] = list(NEW_SYSTEMS)
    if page != "memory":
        at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert not at.warning or all("Does not fit" in str(w.value) for w in at.warning), [
        w.value for w in at.warning
    ]
    caption = " ".join(str(c.value) for c in at.caption).replace("\\", "")  # markdown escapes
    assert model_name in caption
    assert "rtx-pro-6000-server" in caption
    if formats["expert_dtype"]:  # the experts run in their own format (gpt-oss: bf16 x MXFP4 experts)
        assert f"routed experts {formats['expert_dtype']}" in caption
    if "attention_dtype" in query:  # attention kept apart (NVFP4 Gemma-4-31B, GLM-5, Kimi-K2.5: bf16)
        assert f"attention {attention_label(query['attention_dtype'])}" in caption
    return at


sys.path.insert(0, str(APP))  # the app's own modules, as `streamlit run` puts them on the path


@pytest.mark.parametrize(("model_name", "checkpoint"), SHIPPED)
def test_the_memory_page_runs_in_every_shipped_format(model_name: str, checkpoint: str) -> None:
    dashboard("memory", model_name, checkpoint)


@pytest.mark.slow
@pytest.mark.parametrize("model_name", NEW_MODELS)
def test_the_performance_page_runs_on_every_new_model(model_name: str) -> None:
    """Each model as it is released (the largest of its formats runs estimate() on all seven systems)."""
    dashboard("performance", model_name, "release")
