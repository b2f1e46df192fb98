"""costmodel_app/published.py: published checkpoint sizes and real deployments' weights per GPU beside
costmodel's, as the Memory page and docs/models.md show them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import costmodel as cm
from costmodel.dtypes import matrix_bytes
from costmodel.memory import checkpoint_bytes, checkpoint_formats, replica_memory
from costmodel.params import tensors

pytest.importorskip("streamlit", reason="the dashboard needs the app extra: pip install 'costmodel[app]'")
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "costmodel_app"
sys.path.insert(0, str(APP))  # the app's own modules, as `streamlit run` puts them on the path
sys.path.insert(0, str(ROOT / "docs"))
import memory_table  # noqa: E402
import published  # noqa: E402
from components import header  # noqa: E402


def test_checkpoints_that_store_only_the_served_model_match_to_the_byte() -> None:
    table = published.checkpoint_table()
    only_served = table["costmodel_bytes"] == table["served_model_bytes"]
    assert only_served.sum() >= 6
    assert (table.loc[only_served, "costmodel_bytes"] == table.loc[only_served, "published_bytes"]).all()


def test_a_checkpoint_with_an_mtp_module_matches_once_the_module_is_counted() -> None:
    """DeepSeek-V3 stores a multi-token-prediction module beside the served model; the index also holds
    the routers' fp32 score-correction buffers, which no parameter count includes (59 x 256 x 4 bytes):
    1e-4 (69 MB) covers them with room, and the served model alone is 2.2 % short."""
    row = published.checkpoint_table().set_index("model").loc["deepseek-v3"]
    assert row.costmodel_bytes == pytest.approx(row.published_bytes, rel=1e-4)
    assert row.served_model_bytes < 0.98 * row.published_bytes


def test_an_engine_holds_at_least_the_checkpoint_split_over_its_gpus() -> None:
    """What an engine loads per GPU is the checkpoint's share plus what it keeps beyond it (replicated
    projections, its kernels' layouts), never less."""
    table = published.deployment_table()
    assert (table["costmodel_weight_bytes_per_gpu"] <= table["published_weight_bytes_per_gpu"]).all()
    assert table["fits"].all()


def test_deepseek_mla_down_projections_kept_whole_on_every_gpu_explain_part_of_the_gap() -> None:
    """vLLM's DeepseekV2MLAAttention builds q_a_proj and kv_a_proj_with_mqa as ReplicatedLinear
    (https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/models/deepseek_v2.py): each of
    the 8 GPUs holds them whole, and costmodel counts them so (``memory.REPLICATED_PROJECTIONS``): its
    figure is an eighth of the checkpoint plus 7/8 of those down projections, and stays below what vLLM
    logged."""
    row = published.deployment_table().set_index("model").loc["deepseek-v3"]
    model = cm.load_model("deepseek-v3")
    down = [t for t in tensors(model) if t.name.startswith(("q_a_proj", "kv_a_proj"))]
    whole = sum(matrix_bytes(t.shape, "fp8_block") * t.count for t in down)
    assert whole > 0.9e9  # 61 layers x (1536 + 576) x 7168 fp8 values and their block scales
    norms = sum(
        t.count * int(np.prod(t.shape)) * 2
        for t in tensors(model)
        if t.name.split(".")[0] in ("q_a_norm", "kv_a_norm")
    )
    stored = checkpoint_bytes(model, str(row.checkpoint))
    assert row.costmodel_weight_bytes_per_gpu == pytest.approx(
        stored / 8 + (whole + norms) * 7 / 8, rel=1e-12
    )
    assert row.costmodel_weight_bytes_per_gpu <= row.published_weight_bytes_per_gpu


def test_the_gaudi_row_counts_no_absorbed_mla_copies_and_says_what_they_would_add() -> None:
    """The Gaudi log's row is the checkpoint only (``mla_copies_engine`` None). vLLM on a GPU would add
    its bf16 W_UK / W_UV copies of kv_b_proj, split with its heads: 61 layers x 128 heads x (128 + 128)
    rows x 512 columns x 2 bytes / 8 GPUs."""
    row = published.deployment_table().set_index("model").loc["deepseek-v3"]
    deployment = next(d for d in published.DEPLOYMENTS if d.model == "deepseek-v3")
    assert deployment.mla_copies_engine is None
    model = cm.load_model("deepseek-v3")
    weight_dtype, component_dtypes = checkpoint_formats(model, str(row.checkpoint))
    vllm = replica_memory(model, tp=8, weight_dtype=weight_dtype, component_dtypes=component_dtypes)
    by_hand = 61 * 128 * (128 + 128) * 512 * 2 / 8
    assert vllm.weight_bytes - row.costmodel_weight_bytes_per_gpu == pytest.approx(by_hand, rel=1e-12)
    assert "79.36 GiB" in deployment.note
    assert (row.costmodel_weight_bytes_per_gpu + by_hand) / 2**30 == pytest.approx(79.36, abs=0.005)


def test_every_shipped_checkpoint_is_listed_with_its_source() -> None:
    table = published.shipped_table()
    for name in cm.list_models():
        model = cm.load_model(name)
        if model.checkpoint is not None or model.checkpoints:
            assert name in set(table["model"]), name
    assert table["source"].str.len().gt(10).all()
    assert not table.duplicated(["model", "checkpoint"]).any()


def test_the_docs_table_is_what_the_code_gives() -> None:
    assert memory_table.main(["--check"]) == 0


def test_the_memory_page_shows_the_published_figures() -> None:
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = {tuple(frame.value.columns): frame.value for frame in at.dataframe}
    expected = published.checkpoint_table()
    columns = tuple(header(str(c))[0] for c in expected.columns)
    frame = shown[columns]
    title, factor = header("published_bytes")
    assert frame[title].tolist() == pytest.approx((expected["published_bytes"] * factor).tolist(), rel=5e-4)
    title, factor = header("costmodel_weight_bytes_per_gpu")
    deployments = next(f for f in shown.values() if title in f.columns)
    values = published.deployment_table()["costmodel_weight_bytes_per_gpu"] * factor
    assert deployments[title].tolist() == pytest.approx(values.tolist(), rel=5e-4)
    assert isinstance(deployments, pd.DataFrame)


def test_an_engine_weight_layout_adds_what_the_engine_holds_beyond_the_checkpoint() -> None:
    """With the engine's own weight layout added (vLLM's Triton MXFP4 backend on Hopper: padded expert
    weights and scales, fp32 expert biases) costmodel still holds no more than the engine logged."""
    table = published.deployment_table()
    modelled = table[table["engine_layout"] != "none modelled"]
    assert len(modelled) >= 1
    assert (modelled["with_engine_layout_bytes_per_gpu"] > modelled["costmodel_weight_bytes_per_gpu"]).all()
    assert (modelled["with_engine_layout_bytes_per_gpu"] <= modelled["published_weight_bytes_per_gpu"]).all()


def test_the_triton_hopper_layout_pads_only_what_is_not_aligned() -> None:
    """Expert widths already multiples of the layouts' alignments (Mixtral: d_model 4096, d_ff 14336 =
    56 x 256) take no padding, and Mixtral's experts have no biases: nothing beyond the checkpoint. gpt-oss's
    2880-wide experts (2880 = 11.25 x 256) are padded, and their biases held in fp32."""
    assert published.vllm_triton_hopper_mxfp4_bytes(cm.load_model("mixtral-8x7b")) == 0
    assert published.vllm_triton_hopper_mxfp4_bytes(cm.load_model("llama-3-8b")) == 0  # dense: no experts
    model = cm.load_model("gpt-oss-120b")
    experts = model.moe.n_experts * model.n_moe_layers if model.moe else 0
    fp32_biases = experts * (2 * 2880 + 2880) * 2
    assert published.vllm_triton_hopper_mxfp4_bytes(model) > fp32_biases
