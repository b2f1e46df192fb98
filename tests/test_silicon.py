"""The public serving sample: every row is predicted or counted with its reason; the split is a rule."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PUBLIC_GPU as DATA

from costmodel.closed_loop import BOUNDS, LoopParams, LoopParts
from costmodel.disagg import BOUNDS as DISAGG_BOUNDS
from costmodel.disagg import DisaggParts
from costmodel.errors import CostmodelError
from validation.public.evaluate import Evaluation, write_outputs
from validation.public.sglang import cold_start_rows
from validation.public.silicon import (
    _config_path,
    acceptance_rate_of,
    fit_disagg_params,
    fit_loop_params,
    launched_model,
    mtp_run_dates,
    predict_silicon,
    read_disagg_burst_fraction,
    read_disagg_overheads,
    read_disagg_share_dispersion,
    read_loop_params,
    read_silicon,
    repeated_measurement,
    row_formats,
    row_speculation,
    silicon_parts,
    silicon_summary,
)
from validation.public.split import calibration_mask

AMBIGUOUS = "2026_03_25_deepseek_r1_b200_sxm_trtllm_fp4_disagg_1024x1024_c10_tp4_0_ep4_0_1152"
"""A disaggregated row without worker counts that two deployments of InferenceX's master configuration run
(an STP and an MTP one of the same workers): refused with that reason."""


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama-3.1-70B rows of the vendored sample (aggregated), disaggregated rows (two DeepSeek-V3 ones with
    attention data parallelism in both pools, one without worker counts, one Qwen3-32B row that states its
    pools), one row of an unknown model and one aggregated row with attention data parallelism."""
    table = pd.read_csv(DATA / "silicon_sample.csv")
    llama = table[table["model_path"] == "meta-llama/Llama-3.1-70B"]
    disagg = table[table["mode"] == "disagg"]
    rows = pd.concat(
        [
            llama[llama["mode"] == "agg"].head(30),
            disagg.head(2),
            # without worker counts, and of two deployments of InferenceX's master configuration (STP, MTP)
            disagg[disagg["id"] == AMBIGUOUS],
            disagg[disagg["model_path"] == "nvidia/Qwen3-32B-NVFP4"].head(1),
            table[table["attention_dp_size"].fillna(1) > 1].head(1),
            table.head(1).assign(model_path="nobody/unknown-model"),
        ]
    )
    root = tmp_path_factory.mktemp("silicon")
    rows.to_csv(root / "silicon_sample.csv", index=False)
    (root / "model_configs").mkdir()
    for name in (
        "meta-llama--Meta-Llama-3.1-70B_config.json",
        "Qwen--Qwen3-32B_config.json",
        "deepseek-ai--DeepSeek-V3_config.json",
    ):
        shutil.copy(DATA / "model_configs" / name, root / "model_configs" / name)
    return root


def test_every_row_is_predicted_or_counted_with_its_reason(sample: Path) -> None:
    rows = predict_silicon(sample, {})
    assert len(rows) == 36
    covered = rows[rows["covered"]]
    assert len(covered) == 33
    # the Qwen3-32B row, and the two DeepSeek-V3 rows whose pools run attention DP 8 (prefill experts TP 8,
    # decode experts EP 8)
    assert (covered["mode"] == "disagg").sum() == 3
    assert np.all(np.isfinite(covered[["predicted_ttft_ms", "predicted_tpot_ms"]].to_numpy()))
    assert np.all(covered[["predicted_ttft_ms", "predicted_tpot_ms"]].to_numpy() > 0)
    reasons = set(rows.loc[~rows["covered"], "reason"])
    # a disaggregated row without workers is counted with why: the generic reason, or why InferenceX's
    # master configuration does not name one deployment for it (validation.public.inferencex_disagg_workers)
    assert any(r.startswith("disagg row without") or "InferenceX" in r for r in reasons)
    assert "no config.json for nobody/unknown-model" in reasons
    summary = silicon_summary(rows)
    assert sum(e["total"] for e in summary if e["metric"] == "ttft") == 36
    assert {e["split"] for e in summary} <= {"calibration", "held-out"}


def test_the_split_ignores_the_measurements(sample: Path) -> None:
    """The calibration rows are the same whatever was measured (a rule on row identity; measurements enter
    only through which rows repeat one measurement, which scaling them all keeps)."""
    table, _ = silicon_parts(sample)
    changed = sample.parent / "silicon-changed"
    shutil.copytree(sample, changed, dirs_exist_ok=True)
    raw = pd.read_csv(sample / "silicon_sample.csv")
    raw["silicon_ttft_ms"] *= 3.0
    raw.to_csv(changed / "silicon_sample.csv", index=False)
    again, _ = silicon_parts(changed)
    assert (table["split"] == again["split"]).all()


def test_copies_of_one_measurement_share_a_split(sample: Path) -> None:
    """A row exported again under another source (the sample's result files and database dump hold the same
    runs) is the same measurement: both copies land in one split, whichever the copy's own hash says."""
    raw = pd.read_csv(sample / "silicon_sample.csv")
    original = raw.iloc[0]
    copies = pd.DataFrame(
        [original.to_dict() | {"id": f"copy-{n}", "silicon_data_source": f"db-dump/run-{n};{original['silicon_data_source']}"}
         for n in range(12)]
    )  # fmt: skip
    changed = sample.parent / "silicon-copies"
    shutil.copytree(sample, changed, dirs_exist_ok=True)
    pd.concat([raw, copies]).to_csv(changed / "silicon_sample.csv", index=False)
    table, _ = silicon_parts(changed)
    twins = table[table["id"].astype(str).str.startswith("copy-") | (table["id"] == original["id"])]
    assert len(twins) == 13
    assert twins["split"].nunique() == 1
    # the rule by itself (a hash of each row's identity) would have put some copies in the other split
    identity = twins.drop(columns=["silicon_ttft_ms", "silicon_tpot_ms", "reason", "split"])
    assert len(set(calibration_mask(identity))) == 2
    assert twins["split"].iloc[0] == table.loc[table["id"] == original["id"], "split"].iloc[0]
    # whatever the order of the sample's rows
    shuffled = sample.parent / "silicon-copies-reversed"
    shutil.copytree(changed, shuffled, dirs_exist_ok=True)
    pd.concat([raw, copies]).iloc[::-1].to_csv(shuffled / "silicon_sample.csv", index=False)
    again, _ = silicon_parts(shuffled)
    by_id = again.set_index(again["id"].astype(str))["split"]
    assert (by_id.loc[table["id"].astype(str)].to_numpy() == table["split"].to_numpy()).all()
    # a different measurement of the same deployment is not a copy: its split is its own hash's
    labels = repeated_measurement(
        table.assign(silicon_ttft_ms=table["silicon_ttft_ms"] + np.arange(len(table)))
    )
    assert len(set(labels)) == len(table)


def test_the_split_ignores_why_a_row_is_not_covered(sample: Path) -> None:
    """Removing Llama-3.1-70B's config.json turns its 30 rows from covered to refused; no row changes split."""
    table, _ = silicon_parts(sample)
    changed = sample.parent / "silicon-no-config"
    shutil.copytree(sample, changed, dirs_exist_ok=True)
    (changed / "model_configs" / "meta-llama--Meta-Llama-3.1-70B_config.json").unlink()
    again, _ = silicon_parts(changed)
    assert (again["reason"] != table["reason"]).any()
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
    disagg = fit_disagg_params(table, groups, fitted)
    assert set(disagg) == {"trtllm"}  # the one disaggregated row that states its pools
    for values in disagg.values():
        assert set(values) == set(DISAGG_BOUNDS)
        for name, (low, high) in DISAGG_BOUNDS.items():
            assert low <= values[name] <= high
    assert all(v >= 0 for v in read_disagg_overheads().values())
    assert all(0 <= v <= 1 for v in read_disagg_share_dispersion().values())
    # every engine whose disaggregated rows were fitted has its own wave share (none falls back silently)
    assert read_disagg_overheads()
    assert set(read_disagg_burst_fraction()) == set(read_disagg_overheads())
    assert all(0 <= v <= 1 for v in read_disagg_burst_fraction().values())


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
    assert (written["family"] == "silicon").sum() == 36


def test_a_disaggregated_row_is_its_two_pools(sample: Path) -> None:
    """The Qwen3-32B nvfp4 row (40 prefill workers at tp 1 and batch 1, 6 decode workers at tp 4 and batch
    80, 480 clients, 15,000 / 500 tokens on B200) is disagg_loop on engines built from those columns, with
    TensorRT-LLM's defaults as in its aggregated rows (fp8 KV cache with quantized weights, its memory
    rule), but for the prefill workers' token budget, isl + 1500, which aiconfigurator's generator writes for
    its collection (:func:`validation.public.silicon.generator_prefill_budget`)."""
    from costmodel.disagg import disagg_loop
    from costmodel.registry import load_hardware
    from costmodel.serving import Engine
    from costmodel.specs import Deployment, ModelProfile, Workload
    from validation.public.engine_memory import engine_memory

    rows = predict_silicon(sample, {})
    row = rows[(rows["model_path"] == "nvidia/Qwen3-32B-NVFP4") & rows["covered"]].iloc[0]
    model = ModelProfile.from_hf_config(sample / "model_configs" / "Qwen--Qwen3-32B_config.json")
    workload = Workload(1, 1, 1, weight_dtype="nvfp4", activation_dtype="nvfp4", kv_dtype="fp8")  # W4A4

    hardware = load_hardware("b200")
    efficiency = hardware.efficiency.model_copy(update={"kernel_engine": "trtllm"})  # the row's backend

    def engine(tp: int, batch: int, budget: int = 8192) -> Engine:
        return engine_memory("trtllm", Engine(
            model, hardware, workload, Deployment(tp=tp), max_batch_size=batch, max_batched_tokens=budget,
            efficiency=efficiency,
        ))  # fmt: skip

    expected = disagg_loop(
        engine(1, 1, 15000 + 1500),
        engine(4, 80),
        prefill_workers=40,
        decode_workers=6,
        concurrency=480,
        isl=15000,
        osl=500,
    )
    assert (row["isl"], row["osl"], row["concurrency"]) == (15000, 500, 480)
    assert row["predicted_ttft_ms"] == pytest.approx(float(expected.ttft_s) * 1e3, rel=1e-12)
    assert row["predicted_tpot_ms"] == pytest.approx(float(expected.tpot_s) * 1e3, rel=1e-12)


def test_every_format_combination_of_the_sample_maps_to_a_kernel_format() -> None:
    """Each (system, engine, model, gemm_quant_mode, moe_quant_mode) of the vendored sample resolves to
    formats costmodel knows, for a model whose config loads."""
    from costmodel.dtypes import get_dtype
    from costmodel.errors import CostmodelError
    from costmodel.specs import ModelProfile, Workload

    table = pd.read_csv(DATA / "silicon_sample.csv")
    table["gemm_quant_mode"] = table["gemm_quant_mode"].fillna("bf16")
    table["moe_quant_mode"] = table["moe_quant_mode"].fillna(table["gemm_quant_mode"])
    combos = table.groupby(["system", "backend", "model_path", "gemm_quant_mode", "moe_quant_mode"]).size()
    for system, backend, model_path, gemm, moe in combos.index:
        try:
            model = ModelProfile.from_hf_config(_config_path(DATA / "model_configs", model_path))
        except (CostmodelError, ValueError, OSError):
            continue  # counted as not covered with its reason (test above)
        model = launched_model(model, backend, model_path, gemm)
        formats = row_formats(model, backend, system, gemm, moe)
        Workload(1, 1, 1, **formats)  # every name is a known format
        parts = formats.get("component_dtypes") or {}  # a checkpoint's components stored apart
        named = [f for k, f in formats.items() if k != "component_dtypes"] + list(parts.values())
        assert all(f is None or get_dtype(f) for f in named)


@pytest.mark.parametrize(
    ("backend", "system", "expert_activation"),
    [("trtllm", "b200_sxm", "mxfp8"), ("vllm", "b200_sxm", "bf16"), ("vllm", "h100_sxm", "bf16"),
     ("trtllm", "h100_sxm", "bf16")],
)  # fmt: skip
def test_gpt_oss_is_served_as_shipped_whatever_its_label(
    backend: str, system: str, expert_activation: str
) -> None:
    """MXFP4 experts and bf16 everything else (the checkpoint); MXFP8 expert inputs only in TensorRT-LLM on
    Blackwell (its TRTLLM MoE backend), bf16 in vLLM (SM100_FI_MXFP4_BF16 by default) and on Hopper."""
    from costmodel.specs import ModelProfile

    model = ModelProfile.from_hf_config(DATA / "model_configs" / "openai--gpt-oss-120b_config.json")
    for label in ("nvfp4", "fp8"):
        formats = row_formats(model, backend, system, label, label)
        assert formats["weight_dtype"] == formats["activation_dtype"] == "bf16"
        assert formats["expert_dtype"] == "mxfp4"
        assert formats["expert_activation_dtype"] == expert_activation


def test_a_quantized_checkpoint_of_the_labels_kind_is_served_in_its_own_formats() -> None:
    """DeepSeek-R1's 128 x 128 fp8 blocks under an 'fp8' label; Kimi-K2.5's int4 experts (groups of 32,
    bf16 attention) under 'int4_wo'; an NVFP4 label on the fp8 checkpoint is another checkpoint (the label)."""
    from costmodel.specs import ModelProfile

    deepseek = ModelProfile.from_hf_config(DATA / "model_configs" / "deepseek-ai--DeepSeek-R1_config.json")
    assert row_formats(deepseek, "trtllm", "b200_sxm", "fp8", "fp8") == {
        "weight_dtype": "fp8_block", "activation_dtype": "fp8", "expert_dtype": None,
        "expert_activation_dtype": None,
    }  # fmt: skip
    assert row_formats(deepseek, "trtllm", "b200_sxm", "nvfp4", "nvfp4")["weight_dtype"] == "nvfp4"
    kimi = ModelProfile.from_hf_config(DATA / "model_configs" / "moonshotai--Kimi-K2.5_config.json")
    assert row_formats(kimi, "vllm", "b200_sxm", "int4_wo", "int4_wo") == {
        "weight_dtype": "bf16", "activation_dtype": "bf16", "expert_dtype": "int4_sym_g32",
        "expert_activation_dtype": None,
    }  # fmt: skip


def test_glm5_fp8_rows_run_the_block_fp8_checkpoint_their_launch_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sample ships GLM-5's bf16 release config (no quantization_config), but its SGLang fp8 rows launch
    zai-org/GLM-5-FP8 (silicon.LAUNCHED_CHECKPOINTS cites InferenceX). Oracle: the Workload formats of the
    glm-5 profile's published ``fp8`` checkpoint (memory.workload_formats from its quantization_config:
    128 x 128 blocks, W8A8), and for the decode's absorbed bmm SGLang's rule for a block-fp8 kv_b_proj on
    CUDA (block_quant_dequant: bf16 torch.bmm on 2-byte copies), not a per-tensor bmm_fp8. Another
    engine's rows keep the sample's config; a profile of other shapes is refused."""
    from costmodel.kernel_shapes import MlaUpShape
    from costmodel.memory import mla_absorb_format, workload_formats
    from costmodel.ops import forward_ops
    from costmodel.registry import load_hardware, load_model
    from costmodel.specs import ModelProfile
    from validation.public import silicon

    model = ModelProfile.from_hf_config(DATA / "model_configs" / "zai-org--GLM-5_config.json")
    assert model.checkpoint is None
    assert launched_model(model, "vllm", "zhipuai/GLM-5", "fp8") is model
    launched = launched_model(model, "sglang", "zhipuai/GLM-5", "fp8")
    shipped = workload_formats(load_model("glm-5"), "fp8", load_hardware("b200"))
    assert shipped["component_dtypes"] is None
    formats = row_formats(launched, "sglang", "b200_sxm", "fp8", "fp8_block")
    assert formats == {k: shipped[k] for k in formats}
    assert formats["weight_dtype"] == "fp8_block"
    ops = forward_ops(launched, batch_size=8, new_tokens=1, past_tokens=100, tp=8, **formats)
    (kernel,) = [op.kernel for op in ops if op.name == "kv_up_proj"]
    assert isinstance(kernel, MlaUpShape)
    fmt = mla_absorb_format("sglang", kernel.kv_b_dtype, blackwell=True)
    assert (fmt.bmm_dtype, fmt.copy_bytes) == ("bf16", (2.0, 2.0))
    monkeypatch.setitem(
        silicon.LAUNCHED_CHECKPOINTS, ("sglang", "zhipuai/GLM-5", "fp8"), ("deepseek-v3", "nvfp4")
    )
    with pytest.raises(CostmodelError, match="does not have the shapes"):
        launched_model(model, "sglang", "zhipuai/GLM-5", "fp8")


def test_glm5_nvfp4_rows_run_the_formats_nvidia_glm5_nvfp4_stores() -> None:
    """The sample's GLM-5 fp4 rows (SGLang, B200) launch nvidia/GLM-5-NVFP4 (silicon.LAUNCHED_CHECKPOINTS
    cites InferenceX #972 and its script's ``--quantization modelopt_fp4``), which stores the dense MLPs,
    the shared and the routed experts in NVFP4 and keeps every attention projection and the indexer in
    bf16 (glm-5.yaml, from its hf_quant_config.json). Oracles: the row's formats store the weights to the
    byte as the checkpoint does (memory.checkpoint_bytes, counted tensor by tensor), NVFP4 matmuls take
    NVFP4 inputs (W4A4) and bf16 ones bf16 inputs; the decode's absorbed MLA bmm runs on the stored bf16
    kv_b_proj, with no quantize pass; the rows no longer run NVFP4 attention."""
    from costmodel.kernel_shapes import MlaUpShape
    from costmodel.memory import checkpoint_bytes, mla_absorb_format, weight_bytes
    from costmodel.ops import forward_ops
    from costmodel.registry import load_model
    from costmodel.specs import ModelProfile

    model = ModelProfile.from_hf_config(DATA / "model_configs" / "zai-org--GLM-5_config.json")
    launched = launched_model(model, "sglang", "zhipuai/GLM-5", "nvfp4")
    assert launched.checkpoint is not None
    stored_as = {"mlp": "nvfp4", "experts": "nvfp4", "shared_experts": "nvfp4"}
    assert launched.checkpoint.component_dtypes == stored_as
    formats = row_formats(launched, "sglang", "b200_sxm", "nvfp4", "nvfp4")
    assert formats == {
        "weight_dtype": "nvfp4", "activation_dtype": "nvfp4", "expert_dtype": None,
        "expert_activation_dtype": None, "component_dtypes": {"attention": "bf16"},
    }  # fmt: skip
    stored = weight_bytes(launched, weight_dtype="nvfp4", component_dtypes=formats["component_dtypes"])
    assert stored == checkpoint_bytes(load_model("glm-5"), "nvfp4")
    assert weight_bytes(launched, weight_dtype="nvfp4") < stored  # the label's NVFP4 attention stores less
    ops = forward_ops(launched, batch_size=8, new_tokens=1, past_tokens=100, tp=8, **formats)
    (kernel,) = [op.kernel for op in ops if op.name == "kv_up_proj"]
    assert isinstance(kernel, MlaUpShape)
    assert kernel.kv_b_dtype == "bf16"
    fmt = mla_absorb_format("sglang", kernel.kv_b_dtype, blackwell=True)
    assert fmt.bmm_dtype == "bf16"


def test_deepseek_nvfp4_rows_run_the_formats_nvidia_r1_0528_fp4_v2_stores() -> None:
    """The sample's DeepSeek fp4 rows on SGLang and TensorRT-LLM (InferenceX B200 runs of DeepSeek-R1-0528,
    labelled deepseek-ai/DeepSeek-R1 or -V3 with the release's block-fp8 config) launch
    nvidia/DeepSeek-R1-0528-FP4-v2 (silicon.LAUNCHED_CHECKPOINTS cites InferenceX's configurations and
    launchers), which keeps q_a, q_b, kv_a and kv_b in bf16 and stores o_proj, the dense MLPs and every
    expert in NVFP4 (deepseek-v3.yaml's ``nvfp4``). Oracles: the row's formats are that checkpoint's
    (memory.workload_formats), so the weights they hold are the checkpoint's count (memory.checkpoint_bytes,
    the MTP layer out: a consistency check; the independent figure, NVIDIA's "385 GB" with the bf16 MTP
    layer in, is tests/test_checkpoints.py's), more than the label's all-NVFP4 pricing held; the decode's absorbed MLA
    bmm runs on the stored bf16 kv_b_proj. The fp8 rows keep the release's formats."""
    from costmodel.kernel_shapes import MlaUpShape
    from costmodel.memory import checkpoint_bytes, weight_bytes, workload_formats
    from costmodel.ops import forward_ops
    from costmodel.registry import load_hardware, load_model
    from costmodel.specs import ModelProfile

    published = load_model("deepseek-v3")
    shipped = workload_formats(published, "nvfp4", load_hardware("b200"))
    assert shipped["component_dtypes"] == {"attention": "bf16", "attention.o_proj": "nvfp4"}
    for path in ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3"):
        model = ModelProfile.from_hf_config(DATA / "model_configs" / f"{path.replace('/', '--')}_config.json")
        assert launched_model(model, "trtllm", path, "fp8") is model
        for backend in ("sglang", "trtllm"):
            launched = launched_model(model, backend, path, "nvfp4")
            formats = row_formats(launched, backend, "b200_sxm", "nvfp4", "nvfp4")
            assert formats == {k: shipped[k] for k in formats}
            stored = weight_bytes(
                launched, weight_dtype="nvfp4", component_dtypes=formats["component_dtypes"]
            )
            assert stored == checkpoint_bytes(published, "nvfp4")
            assert weight_bytes(launched, weight_dtype="nvfp4") < stored
            ops = forward_ops(launched, batch_size=8, new_tokens=1, past_tokens=100, tp=8, **formats)
            (kernel,) = [op.kernel for op in ops if op.name == "kv_up_proj"]
            assert isinstance(kernel, MlaUpShape)
            assert kernel.kv_b_dtype == "bf16"


def test_glm5_nvfp4_rows_take_the_checkpoints_fp8_kv_cache() -> None:
    """SGLang's ``--kv-cache-dtype auto`` stores the cache in fp8 where the served ModelOpt checkpoint states
    ``kv_cache_quant_algo: FP8`` (``ModelRunner.configure_kv_cache_dtype``, sglang PR #18394), as
    nvidia/GLM-5-NVFP4's hf_quant_config.json does: the GLM-5 nvfp4 rows' default KV format is fp8, whatever
    the engine's default for the label (bf16 on SGLang). zai-org/GLM-5-FP8 states none, another engine takes
    the sample's config (no launched checkpoint), and a row without one keeps the engine's default. Oracle:
    the checkpoint's stated field."""
    from validation.public import silicon
    from validation.public.engine_memory import kv_dtype

    assert kv_dtype("sglang", "nvfp4") == "bf16"
    assert silicon.launched_kv_dtype("sglang", "zhipuai/GLM-5", "nvfp4") == "fp8"
    assert silicon.launched_kv_dtype("sglang", "zhipuai/GLM-5", "fp8") is None
    assert silicon.launched_kv_dtype("vllm", "zhipuai/GLM-5", "nvfp4") is None
    assert silicon.launched_kv_dtype("sglang", "deepseek-ai/DeepSeek-R1", "nvfp4") is None
    assert set(silicon.LAUNCHED_KV_FORMATS) <= set(silicon.LAUNCHED_CHECKPOINTS.values())


def test_a_disaggregated_row_with_attention_dp_is_its_two_pools(sample: Path) -> None:
    """A DeepSeek-V3 fp8 row on B200 (TensorRT-LLM): one prefill worker of 8 attention-DP ranks, batch 1
    per rank, experts TP 8; one decode worker of 8 ranks, batch 16 per rank, experts EP 8; 128 clients =
    16 x 1 x 8, each decode rank holding 16 of them. Per-rank batch and token budget, as the aggregated
    rows, and TensorRT-LLM's defaults (fp8 KV cache with quantized weights, its memory rule); its recipe
    (``8k1k/stp/ctx1_gen1_dep8_batch128_eplb0_mtp0_128.yaml``) decodes with ``moe_config.backend: TRTLLM``."""
    from costmodel.disagg import disagg_loop
    from costmodel.registry import load_hardware
    from costmodel.serving import Engine
    from costmodel.specs import Deployment, ModelProfile, Workload
    from validation.public.engine_memory import engine_memory

    table = pd.read_csv(sample / "silicon_sample.csv").set_index("id")
    rows = predict_silicon(sample, {}).set_index("id")
    chosen = rows[(rows["model_path"] == "deepseek-ai/DeepSeek-V3") & rows["covered"]]
    assert len(chosen) == 2
    row_id = chosen.index[0]
    stated = table.loc[row_id]
    assert (stated["prefill_attention_dp_size"], stated["decode_attention_dp_size"]) == (8, 8)
    assert stated["decode_batch_size"] * stated["decode_num_workers"] * 8 == rows.loc[row_id, "concurrency"]
    model = ModelProfile.from_hf_config(sample / "model_configs" / "deepseek-ai--DeepSeek-V3_config.json")
    hardware = load_hardware("b200")
    # the fp8 label on DeepSeek-V3 serves its checkpoint as stored: 128 x 128 fp8 blocks
    workload = Workload(1, 1, 1, weight_dtype="fp8_block", activation_dtype="fp8", kv_dtype="fp8")
    efficiency = hardware.efficiency.model_copy(update={"kernel_engine": str(stated["backend"])})

    def engine(moe_tp: int, moe_ep: int, rank_batch: int, moe_backend: str | None = None) -> Engine:
        return engine_memory("trtllm", Engine(
            model, hardware, workload, Deployment(tp=1, attention_dp=8, moe_tp=moe_tp, moe_ep=moe_ep),
            max_batch_size=8 * rank_batch, max_batched_tokens=8 * 8192,
            efficiency=efficiency.model_copy(update={"moe_backend": moe_backend}),
        ))  # fmt: skip

    expected = disagg_loop(
        engine(int(stated["prefill_moe_tp_size"]), int(stated["prefill_moe_ep_size"]), 1),
        engine(int(stated["decode_moe_tp_size"]), int(stated["decode_moe_ep_size"]), int(stated["decode_batch_size"]),
               "TRTLLM"),
        prefill_workers=1, decode_workers=1, concurrency=rows.loc[row_id, "concurrency"], isl=stated["isl"],
        osl=stated["osl"],
    )  # fmt: skip
    assert rows.loc[row_id, "predicted_ttft_ms"] == pytest.approx(float(expected.ttft_s) * 1e3, rel=1e-12)
    assert rows.loc[row_id, "predicted_tpot_ms"] == pytest.approx(float(expected.tpot_s) * 1e3, rel=1e-12)


def test_trtllm_rows_whose_clients_fill_tp_ranks_are_attention_dp() -> None:
    """A TensorRT-LLM MoE row with an empty attention_dp_size whose concurrency is batch_size x tp_size is
    attention DP over tp_size GPUs; a row whose concurrency is batch_size, a stated attention_dp_size, a
    dense model or another engine is not."""
    from costmodel.registry import load_model
    from validation.public.silicon import tp_as_attention_dp

    models = {"moe": load_model("qwen3-30b-a3b"), "dense": load_model("llama-3-8b"), "gone": "no config"}
    table = pd.DataFrame(
        {
            "backend": ["trtllm", "trtllm", "trtllm", "trtllm", "sglang", "trtllm", "trtllm"],
            "mode": ["agg", "agg", "agg", "agg", "agg", "disagg", "agg"],
            "model_path": ["moe", "moe", "moe", "dense", "moe", "moe", "gone"],
            "tp_size": [4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0],
            "attention_dp_size": [np.nan, np.nan, 4.0, np.nan, np.nan, np.nan, np.nan],
            "batch_size": [56.0, 56.0, 56.0, 56.0, 56.0, 56.0, 56.0],
            "concurrency": [224.0, 56.0, 224.0, 224.0, 224.0, 224.0, 224.0],
        }
    )
    assert tp_as_attention_dp(table, models).tolist() == [True, False, False, False, False, False, False]


def test_a_job_holds_the_gpus_its_disaggregated_rows_state() -> None:
    """The GPUs of a job of aiconfigurator's collection are its disaggregated rows' pools, workers x tp x pp
    x attention DP of each (the rows' own columns): 16 for each of the six H100 rows of job 23364591, 40 x 1
    + 6 x 4 = 64 for job 23803065 on B200; a job without such a row is unknown."""
    from validation.public.silicon import job_gpus

    table = read_silicon(DATA)
    job = table["silicon_data_source"].astype(str).str.extract(r"gtl_job_id=(\d+)")[0]
    gpus = job_gpus(table)
    assert (job == "23364591").sum() == 15
    assert (gpus[job == "23364591"] == 16).all()
    assert (job == "23803065").sum() == 3
    assert (gpus[job == "23803065"] == 64).all()
    assert (job == "23879486").sum() == 11
    assert gpus[job == "23879486"].isna().all()
    assert gpus[job.isna()].isna().all()
    # pools that disagree leave the job unknown
    two = table[job == "23364591"].copy()
    two.loc[two["mode"] == "disagg", "decode_num_workers"] += np.arange((two["mode"] == "disagg").sum())
    assert job_gpus(two).isna().all()


def test_aiconfigurators_tensorrt_llm_prefill_workers_take_the_generators_budget() -> None:
    """aiconfigurator's generator gives a TensorRT-LLM prefill worker max_num_tokens = isl + 1500 with
    chunked prefill off (``rule_plugin/benchmark/trtllm.rule``, ``extra_engine_args.1.3.0rc1.yaml.j2``): its
    one covered disaggregated row, nvidia/Qwen3-32B-NVFP4 at isl 15000, gets 16500 tokens, a prompt per
    pass where TensorRT-LLM's default 8192 could not hold the prompt unchunked; every other row (another
    harness, or engine) keeps the engine's default (NaN here)."""
    from validation.public.harness import AICONFIGURATOR, row_harness
    from validation.public.silicon import TOKEN_BUDGET, generator_prefill_budget

    table = read_silicon(DATA)
    budget = generator_prefill_budget(table)
    qwen = (table["model_path"] == "nvidia/Qwen3-32B-NVFP4") & (table["mode"] == "disagg")
    assert qwen.sum() == 1
    assert float(budget[qwen].iloc[0]) == 15000 + 1500
    assert float(table.loc[qwen, "isl"].iloc[0]) > TOKEN_BUDGET
    stated = budget.notna()
    assert (table.loc[stated, "backend"] == "trtllm").all()
    assert (row_harness(table)[stated] == AICONFIGURATOR).all()
    np.testing.assert_array_equal(budget[stated], table.loc[stated, "isl"] + 1500)
    assert budget[table["backend"] != "trtllm"].isna().all()


def test_a_row_whose_workers_fill_its_job_is_not_read_as_attention_dp(tmp_path: Path) -> None:
    """nvidia/DeepSeek-V3.1-NVFP4 on B200 (job 23803065, tp 8, batch_size 56, 448 clients) ran 448 / 56 = 8
    tensor-parallel workers of 8 GPUs, the job's 64 (its Qwen3-32B-NVFP4 rows: 40 + 6 x 4 GPUs
    disaggregated, 32 aggregated workers of tp 2), each with 56 clients, not one attention-DP worker of 8
    ranks; nvidia/DeepSeek-R1-NVFP4 of job 23879486 (no disaggregated row: its GPUs unknown) stays attention
    DP over its 4 GPUs, 224 clients on one worker."""
    table = pd.read_csv(DATA / "silicon_sample.csv")
    source = table["silicon_data_source"].astype(str)
    r1 = table["id"].str.endswith("b200_sxm_trtllm_agg_4000x1000_c224_tp4_epnone_1")
    rows = table[source.str.contains("gtl_job_id=23803065") | r1]
    assert len(rows) == 4
    rows.to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    for model_path in rows["model_path"].unique():
        shutil.copy(_config_path(DATA / "model_configs", model_path), tmp_path / "model_configs")
    read, groups = silicon_parts(tmp_path)
    parts = {str(read.loc[index[0], "model_path"]): p for index, p in groups if isinstance(p, LoopParts)}
    v31, dsr1 = parts["nvidia/DeepSeek-V3.1-NVFP4"], parts["nvidia/DeepSeek-R1-NVFP4"]
    assert (v31.ranks, v31.concurrency.tolist()) == (1.0, [56.0])
    assert (dsr1.ranks, dsr1.concurrency.tolist()) == (4.0, [224.0])


def test_a_tp_row_read_as_attention_dp_is_the_closed_loop_of_its_ranks(tmp_path: Path) -> None:
    """gpt-oss-120b on H100 with TensorRT-LLM at tp_size 4 (MoE TP 4), batch_size 48 and 192 clients is
    predicted as four attention-DP ranks of one GPU with 48 sequences each (aiconfigurator's collection: a
    train of prompts)."""
    from costmodel.closed_loop import closed_loop
    from costmodel.registry import load_hardware
    from costmodel.serving import Engine
    from costmodel.specs import Deployment, ModelProfile, Workload
    from validation.public.engine_memory import engine_memory, kv_dtype, reserved_tokens

    table = pd.read_csv(DATA / "silicon_sample.csv")
    row = table[table["id"].str.endswith("h100_sxm_trtllm_agg_4000x1000_c192_tp4_epnone_1")]
    assert len(row) == 1
    row.to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    name = "openai--gpt-oss-120b_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    [predicted] = predict_silicon(tmp_path, {}).itertuples()

    model = ModelProfile.from_hf_config(tmp_path / "model_configs" / name)
    hardware = load_hardware("h100-sxm")
    formats = row_formats(model, "trtllm", "h100_sxm", str(row["gemm_quant_mode"].iloc[0]),
                          str(row["moe_quant_mode"].fillna(row["gemm_quant_mode"]).iloc[0]))  # fmt: skip
    kv = kv_dtype("trtllm", str(row["gemm_quant_mode"].iloc[0]))
    engine = Engine(
        model, hardware, Workload(1, 1, 1, kv_dtype=kv, **formats),
        Deployment(tp=1, attention_dp=4, moe_tp=4, moe_ep=1),
        max_batch_size=48 * 4, max_batched_tokens=8192 * 4,
        efficiency=hardware.efficiency.model_copy(update={"kernel_engine": "trtllm"}),
    )  # fmt: skip
    engine = engine_memory("trtllm", engine)
    expected = closed_loop(
        engine,
        concurrency=192,
        isl=4000,
        osl=1000,
        reserved_tokens=reserved_tokens("trtllm", 4000.0, 1000.0),
        train=True,  # aiconfigurator's fixed-length collection against TensorRT-LLM (harness.runs_as_train)
    )
    assert predicted.predicted_ttft_ms == pytest.approx(float(expected.ttft_s) * 1e3, rel=1e-12)
    assert predicted.predicted_tpot_ms == pytest.approx(float(expected.tpot_s) * 1e3, rel=1e-12)


def test_a_single_client_disaggregated_row_without_worker_counts_is_covered(tmp_path: Path) -> None:
    """A disaggregated row that states its pools' layouts but neither worker counts nor batches is covered
    when one client drives it (one request alone on one worker of each pool): it is disagg_loop at one
    worker of batch 1 per pool; with more clients it is counted with the reason."""
    from costmodel.disagg import disagg_loop
    from costmodel.registry import load_hardware
    from costmodel.serving import Engine
    from costmodel.specs import Deployment, ModelProfile, Workload
    from validation.public.engine_memory import engine_memory

    table = pd.read_csv(DATA / "silicon_sample.csv")
    unstated = table[(table["mode"] == "disagg") & table["prefill_num_workers"].isna()]
    one = unstated[unstated["id"].str.contains("b200_sxm_trtllm_fp8_disagg_8192x1024_c1_tp8_0_ep1_0")].head(1)
    many = unstated[unstated["id"] == AMBIGUOUS]
    assert (len(one), len(many)) == (1, 1)
    pd.concat([one, many]).to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    name = "deepseek-ai--DeepSeek-R1_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    rows = predict_silicon(tmp_path, {})
    assert rows["covered"].tolist() == [True, False]
    # 10 clients: InferenceX's master configuration runs an STP and an MTP deployment of those workers at that
    # count (validation.public.inferencex_disagg_workers)
    assert rows["reason"].iloc[1].endswith("c10 (1 with MTP): which one ran is not stated")

    model = ModelProfile.from_hf_config(tmp_path / "model_configs" / name)
    hardware = load_hardware("b200")
    formats = row_formats(model, "trtllm", "b200_sxm", "fp8", str(one["moe_quant_mode"].iloc[0]))

    def engine() -> Engine:  # TensorRT-LLM's defaults: fp8 KV cache with quantized weights, its memory rule
        return engine_memory("trtllm", Engine(
            model, hardware, Workload(1, 1, 1, kv_dtype="fp8", **formats), Deployment(tp=8, moe_tp=8, moe_ep=1),
            max_batch_size=1, max_batched_tokens=8192,
            efficiency=hardware.efficiency.model_copy(update={"kernel_engine": "trtllm"}),
        ))  # fmt: skip

    expected = disagg_loop(
        engine(), engine(), prefill_workers=1, decode_workers=1, concurrency=1, isl=8192, osl=1024
    )
    assert rows["predicted_ttft_ms"].iloc[0] == pytest.approx(float(expected.ttft_s) * 1e3, rel=1e-12)
    assert rows["predicted_tpot_ms"].iloc[0] == pytest.approx(float(expected.tpot_s) * 1e3, rel=1e-12)


def test_unstated_attention_dp_is_read_from_the_concurrency(tmp_path: Path) -> None:
    """gpt-oss-120b on H100 (TensorRT-LLM 1.3.0rc1) at tp_size 4 with attention_dp_size unstated, batch 48
    and 192 clients = 48 x 4: attention data parallel over the four GPUs (TensorRT-LLM's
    enable_attention_dp), each rank running its own 48; not four GPUs of attention TP queueing 144 clients
    behind a batch of 48."""
    from costmodel.closed_loop import LoopParts

    table = pd.read_csv(DATA / "silicon_sample.csv")
    rows = table[
        (table["model_path"] == "openai/gpt-oss-120b")
        & table["attention_dp_size"].isna()
        & (table["backend_version"] == "1.3.0rc1")
    ]
    assert len(rows) > 0
    (tmp_path / "model_configs").mkdir()
    name = "openai--gpt-oss-120b_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    rows.to_csv(tmp_path / "silicon_sample.csv", index=False)
    parsed, groups = silicon_parts(tmp_path)
    assert set(parsed["reason"]) == {""}
    for index, parts in groups:
        assert isinstance(parts, LoopParts)
        stated = parsed.loc[index]
        np.testing.assert_array_equal(parts.ranks, stated["tp_size"].to_numpy())
        np.testing.assert_array_equal(parts.running * parts.ranks, stated["concurrency"].to_numpy())
        assert np.all(stated["concurrency"] == stated["batch_size"] * stated["tp_size"])


def test_only_the_rows_of_an_mtp_image_speculate() -> None:
    """TensorRT-LLM 1.2.0rc6.post3 DeepSeek rows run MTP as their benchmark configuration says: three
    drafts, one with attention DP; the same model on another release, or a model without an MTP layer,
    decodes one token per iteration."""
    from costmodel.specs import ModelProfile

    deepseek = ModelProfile.from_hf_config(_config_path(DATA / "model_configs", "deepseek-ai/DeepSeek-R1"))
    qwen = ModelProfile.from_hf_config(_config_path(DATA / "model_configs", "Qwen/Qwen3-32B"))
    three = row_speculation(deepseek, "trtllm", "1.2.0rc6.post3", 1)
    assert three is not None
    assert three.draft_tokens == 3
    assert three.draft_cost_ratio == pytest.approx(1 / deepseek.n_layers)
    one = row_speculation(deepseek, "trtllm", "1.2.0rc6.post3", 8)
    assert one is not None
    assert one.draft_tokens == 1
    assert row_speculation(deepseek, "trtllm", "1.2.0rc6.post2", 1) is None
    assert row_speculation(qwen, "trtllm", "1.2.0rc6.post3", 1) is None


def test_a_shared_images_mtp_run_drafts_and_its_plain_run_does_not() -> None:
    """TensorRT-LLM 1.1.0rc2.post2 served InferenceX's plain DeepSeek-R1 configurations and, from
    InferenceX #392 (2026-01), their MTP siblings: the sample's 2026-01-14 run of that image drafts (three
    drafts, one with attention DP), its 2025-12-15 run, before the MTP configurations existed, does not, nor
    does any row of another engine or image."""
    from costmodel.specs import ModelProfile

    table = read_silicon(DATA)
    dates = mtp_run_dates(table)
    image = (table["backend"] == "trtllm") & (table["backend_version"] == "1.1.0rc2.post2")
    measured = table["silicon_data_source"].str.extract(r"measured=(\d{4}-\d{2}-\d{2})")[0]
    assert (dates[image & (measured == "2026-01-14")] == "2026-01-14").all()
    assert (image & (measured == "2026-01-14")).sum() > 0
    assert (image & (measured == "2025-12-15")).sum() > 0
    assert (dates[~(image & (measured == "2026-01-14"))] == "").all()
    deepseek = ModelProfile.from_hf_config(_config_path(DATA / "model_configs", "deepseek-ai/DeepSeek-R1"))
    three = row_speculation(deepseek, "trtllm", "1.1.0rc2.post2", 1, measured="2026-01-14")
    assert three is not None
    assert three.draft_tokens == 3
    one = row_speculation(deepseek, "trtllm", "1.1.0rc2.post2", 8, measured="2026-01-14")
    assert one is not None
    assert one.draft_tokens == 1
    assert row_speculation(deepseek, "trtllm", "1.1.0rc2.post2", 1, measured="2025-12-15") is None
    assert row_speculation(deepseek, "trtllm", "1.1.0rc2.post2", 1) is None


def test_the_shared_images_later_run_gains_what_the_mtp_image_gains() -> None:
    """The data's own signature of the 2026-01-14 run (no model): at 4 clients, DeepSeek-R1 fp8, its TPOT
    over the 2025-12-15 run of the same image and stated deployment (tp 8 x EP 8) is, at every length, the
    ratio of the MTP image's TPOT (1.2.0rc6.post3) over the plain image's (1.2.0rc6.post2) at tp 8, about
    one half: a gain drafting gives, and no scheduler setting can give a decode of 4 sequences."""
    table = read_silicon(DATA)
    deepseek = table[
        (table["backend"] == "trtllm")
        & (table["system"] == "b200_sxm")
        & table["model_path"].isin(["deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3"])
        & (table["precision"] == "fp8")
        & (table["concurrency"] == 4)
    ]
    measured = deepseek["silicon_data_source"].str.extract(r"measured=(\d{4}-\d{2}-\d{2})")[0]

    def tpot(isl: int, osl: int, version: str, tp: int, date: str | None = None) -> float:
        rows = deepseek[
            (deepseek["isl"] == isl)
            & (deepseek["osl"] == osl)
            & (deepseek["backend_version"] == version)
            & (deepseek["tp_size"] == tp)
            & ((measured == date) if date else True)
        ]
        assert len(rows), (isl, osl, version, date)
        return float(rows["silicon_tpot_ms"].median())

    for isl, osl in ((1024, 1024), (1024, 8192), (8192, 1024)):
        # tp_size 64 is the dump's record of tp 8 x EP 8 (silicon.squared_expert_layout)
        shared = tpot(isl, osl, "1.1.0rc2.post2", 64, "2026-01-14") / tpot(
            isl, osl, "1.1.0rc2.post2", 64, "2025-12-15"
        )
        images = tpot(isl, osl, "1.2.0rc6.post3", 8) / tpot(isl, osl, "1.2.0rc6.post2", 8)
        assert shared < 0.6
        assert images < 0.6
        assert shared == pytest.approx(images, abs=0.1)


def test_deepseek_mtp_later_drafts_reproduce_the_published_acceptance_length() -> None:
    """The MTP module's later-draft acceptance is the one that, after a first draft at DeepSeek-V3's
    85 %, gives the original module's published mean acceptance length, 3.20 tokens per verification
    at K = 7 drafts (temperature 0, nebius/MTP-DeepSeek-V3-0324's model card); both pools' DeepSeek
    rows draft with it, so 3 drafts yield fewer tokens than the i.i.d. chain and 1 draft as many."""
    from costmodel.closed_loop import Speculation
    from costmodel.specs import ModelProfile
    from costmodel.speculative import expected_tokens
    from validation.public.silicon import (
        MTP_ACCEPTANCE_RATE,
        MTP_LATER_ACCEPTANCE_RATE,
        disagg_speculation,
    )

    seven = Speculation(7, MTP_ACCEPTANCE_RATE, 0.0, later_acceptance_rate=MTP_LATER_ACCEPTANCE_RATE)
    assert seven.tokens_per_iteration == pytest.approx(3.20, abs=0.01)
    deepseek = ModelProfile.from_hf_config(_config_path(DATA / "model_configs", "deepseek-ai/DeepSeek-R1"))
    for spec in (
        row_speculation(deepseek, "trtllm", "1.2.0rc6.post3", 1),
        disagg_speculation(deepseek, 3, "trtllm"),
    ):
        assert spec is not None
        assert spec.later_acceptance_rate == MTP_LATER_ACCEPTANCE_RATE
        assert spec.tokens_per_iteration < float(expected_tokens(MTP_ACCEPTANCE_RATE, 3))
    one = disagg_speculation(deepseek, 1, "trtllm")
    assert one is not None
    assert one.tokens_per_iteration == pytest.approx(1 + MTP_ACCEPTANCE_RATE)


def test_an_sglang_decode_pool_drafts_as_sglangs_aggregated_eagle_chain() -> None:
    """Every SGLang MTP recipe's decode worker runs EAGLE (2 steps, top-k 1, 3 tokens verified), as the
    aggregated SGLang MTP rows do: its decode pool's drafting is the aggregated rows' (the independent
    oracle: :func:`twin_speculation`, read from those campaigns' flags), each draft step paying the shared
    output head. A TensorRT-LLM decode pool's MTP worker samples each draft from the shared head's logits
    too (``MTPWorker.forward``, ``tensorrt_llm/_torch/speculative/mtp.py``), so at the same depth it drafts
    as SGLang's chain does."""
    from costmodel.specs import ModelProfile
    from validation.public.inferencex_disagg_workers import SGLANG_MTP_DRAFT_TOKENS
    from validation.public.silicon import disagg_speculation, twin_speculation

    deepseek = ModelProfile.from_hf_config(_config_path(DATA / "model_configs", "deepseek-ai/DeepSeek-R1"))
    sglang = disagg_speculation(deepseek, SGLANG_MTP_DRAFT_TOKENS, "sglang")
    assert sglang == twin_speculation(deepseek)
    assert sglang is not None
    assert sglang.draft_head
    trtllm = disagg_speculation(deepseek, SGLANG_MTP_DRAFT_TOKENS, "trtllm")
    assert trtllm is not None
    assert trtllm.draft_head
    assert trtllm == sglang


@pytest.mark.parametrize("draft_tokens", [1, 2, 3, 7])
def test_an_acceptance_length_inverts_to_the_rate_that_gives_it(draft_tokens: int) -> None:
    """acceptance_rate_of inverts Leviathan et al.'s E(alpha, k) (the independent oracle:
    costmodel.speculative.expected_tokens): E at the returned rate is the cited length; 1 token is rate 0,
    k + 1 tokens rate 1, and a longer cited length rises to a higher rate; a length outside [1, k + 1] is
    refused by name."""
    from costmodel.speculative import expected_tokens

    lengths = np.linspace(1.0, draft_tokens + 1.0, 9)
    rates = [acceptance_rate_of(float(e), draft_tokens) for e in lengths]
    for e, alpha in zip(lengths, rates, strict=True):
        assert float(expected_tokens(alpha, draft_tokens)) == pytest.approx(e, abs=1e-9)
    assert rates[0] == pytest.approx(0.0, abs=1e-9)
    assert rates[-1] == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.diff(rates) > 0)
    for bad in (0.5, draft_tokens + 1.5, float("nan")):
        with pytest.raises(CostmodelError, match="acceptance length"):
            acceptance_rate_of(bad, draft_tokens)


def test_the_sglang_rows_of_a_drafting_script_run_its_eagle_chain() -> None:
    """The InferenceX Qwen3.5-397B fp8 MTP recipe (EAGLE) runs --speculative-num-steps 3,
    --speculative-eagle-topk 1, --speculative-num-draft-tokens 4: three drafts of the model's one MTP layer
    and the shared head, then four tokens verified per request, at the cited acceptance (and, for a script
    citing none, at the MTP rate); the GLM-5 and DeepSeek-R1 scripts decode plainly, and a tree (top-k > 1)
    is refused by name."""
    from costmodel.specs import ModelProfile
    from validation.public.inferencex import launch_script
    from validation.public.silicon import MTP_ACCEPTANCE_RATE

    b200, path = "b200_sxm", "Qwen/Qwen3.5-397B-A17B"
    model = ModelProfile.from_hf_config(_config_path(DATA / "model_configs", path))
    script = launch_script(True, "sglang", path, b200, "fp8")
    assert script is not None
    assert script.acceptance_length is not None
    assert script.speculative_flags == (3, 1, 4)
    for cited in (script, dataclasses.replace(script, acceptance_length=None)):
        spec = row_speculation(model, "sglang", "any", 1, cited)
        assert spec is not None
        assert (spec.draft_tokens, spec.draft_head) == (3, True)
        assert spec.draft_cost_ratio == pytest.approx(1 / model.n_layers)
        if cited.acceptance_length is None:  # no acceptance cited for the drafter: the MTP rate
            assert spec.acceptance_rate == MTP_ACCEPTANCE_RATE
        else:  # the cited tokens per verification, whatever the rate that gives them
            assert spec.tokens_per_iteration == pytest.approx(cited.acceptance_length)
    tree = dataclasses.replace(script, speculative_flags=(3, 4, 8))
    with pytest.raises(CostmodelError, match="tree"):
        row_speculation(model, "sglang", "any", 1, tree)
    for plain_path in ("deepseek-ai/DeepSeek-R1", "zhipuai/GLM-5"):
        plain_model = ModelProfile.from_hf_config(_config_path(DATA / "model_configs", plain_path))
        plain = launch_script(True, "sglang", plain_path, b200, "fp8")
        assert plain is not None
        assert plain.speculative is None
        assert row_speculation(plain_model, "sglang", "any", 1, plain) is None


def test_an_inferencex_row_runs_its_scripts_kv_and_expert_formats(tmp_path: Path) -> None:
    """gpt-oss-120b on B200 with vLLM from InferenceX: its script sets ``kv-cache-dtype: fp8``,
    ``VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1`` and ``max-cudagraph-capture-size: 2048``, so the row is the
    closed loop of an engine with an fp8 cache and MXFP8 expert inputs whose mixed batches of up to 2048
    tokens replay CUDA graphs, not vLLM's defaults (bf16 cache, bf16 expert inputs, 512-token graphs); its
    client draws the lengths whose means the loop runs at (:func:`validation.public.inferencex.mean_length`)."""
    from costmodel.closed_loop import closed_loop
    from costmodel.registry import load_hardware
    from costmodel.serving import Engine
    from costmodel.specs import Deployment, ModelProfile, Workload
    from validation.public.engine_memory import engine_memory
    from validation.public.inferencex import SCRIPTS, is_inferencex, mean_length

    table = read_silicon(DATA)
    chosen = (table["model_path"] == "openai/gpt-oss-120b") & (table["system"] == "b200_sxm")
    chosen &= (table["backend"] == "vllm") & (table["tp_size"] == 1) & (table["isl"] == 1024)
    row = table[chosen & is_inferencex(table)].head(1)
    assert len(row) == 1
    assert SCRIPTS[("vllm", "openai/gpt-oss-120b", "b200_sxm")].expert_activation_dtype == "mxfp8"
    row.drop(columns="concurrency").to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    name = "openai--gpt-oss-120b_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    [predicted] = predict_silicon(tmp_path, {}).itertuples()

    model = ModelProfile.from_hf_config(tmp_path / "model_configs" / name)
    hardware = load_hardware("b200")
    batch, clients = int(row["batch_size"].iloc[0]), float(row["concurrency"].iloc[0])
    isl, osl = (float(mean_length(row[column].iloc[0])) for column in ("isl", "osl"))
    formats = {"weight_dtype": "bf16", "activation_dtype": "bf16", "expert_dtype": "mxfp4",
               "expert_activation_dtype": "mxfp8"}  # fmt: skip
    engine = Engine(
        model, hardware, Workload(1, 1, 1, kv_dtype="fp8", **formats),
        Deployment(tp=1, moe_tp=1, moe_ep=1), max_batch_size=batch, max_batched_tokens=max(8192, batch),
        efficiency=hardware.efficiency.model_copy(update={"kernel_engine": "vllm"}),
    )  # fmt: skip
    expected = closed_loop(
        engine_memory("vllm", engine, max_num_seqs=512),
        concurrency=clients,
        isl=isl,
        osl=osl,
        graph_tokens=2048,
    )
    assert predicted.predicted_tpot_ms == pytest.approx(float(expected.tpot_s) * 1e3, rel=1e-12)
    assert predicted.predicted_ttft_ms == pytest.approx(float(expected.ttft_s) * 1e3, rel=1e-12)


def test_only_inferencex_sources_are_inferencex_rows() -> None:
    from validation.public.inferencex import is_inferencex, launch_script

    sources = pd.DataFrame(
        {
            "silicon_data_source": [
                "source_file=2026-03-25.csv; silicon_concurrency=4",
                "source_file=/x/a.csv",
                None,
                "db-dump/2026-04-27; config_id=690; silicon_concurrency=4; workflow_run_id=786",
                "db-dump/2026-04-27; silicon_concurrency=4",
            ]
        }
    )
    assert is_inferencex(sources).tolist() == [True, False, False, True, False]
    # InferenceX's results database: a workflow run and its image
    database = pd.DataFrame({"silicon_data_source": ["db-dump/2026-04-27; config_id=1; workflow_run_id=3"]})
    assert is_inferencex(database).tolist() == [True]
    assert launch_script(False, "vllm", "openai/gpt-oss-120b", "b200_sxm") is None
    assert launch_script(True, "vllm", "Qwen/Qwen3-32B", "h100_sxm") is None


def test_a_flag_keyed_by_format_reaches_that_formats_rows_alone() -> None:
    """MiniMax-M2.5 on B200 vLLM: the fp8 script's fp8 KV cache and 2048-token graphs are not the nvfp4
    script's (vLLM's defaults); a script keyed without a format serves every format of its model."""
    from validation.public.inferencex import launch_script

    fp8 = launch_script(True, "vllm", "MiniMaxAI/MiniMax-M2.5", "b200_sxm", "fp8")
    assert fp8 is not None
    assert (fp8.kv_dtype, fp8.cuda_graph_max_tokens) == ("fp8", 2048)
    assert launch_script(True, "vllm", "MiniMaxAI/MiniMax-M2.5", "b200_sxm", "fp4") is None
    gpt = launch_script(True, "vllm", "openai/gpt-oss-120b", "b200_sxm", "fp4")
    assert gpt is not None
    assert gpt.kv_dtype == "fp8"


def test_an_aggregated_row_of_several_workers_is_the_loop_of_one() -> None:
    """Concurrency a whole multiple W > 1 of batch_size x attention_dp_size: W workers, each with C / W
    clients; a row whose concurrency is its ranks' batches, or not a whole multiple of them, is one."""
    from validation.public.silicon import agg_workers

    filled = pd.DataFrame(
        {
            "batch_size": [13.0, 13.0, 16.0, 16.0, 10.0, np.nan],
            "attention_dp_size": [1.0, 1.0, 8.0, 1.0, 1.0, 1.0],
            "concurrency": [416.0, 13.0, 128.0, 24.0, 4.0, 480.0],
        }
    )
    assert agg_workers(filled).tolist() == [32.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_the_qwen3_32b_row_of_32_workers_is_predicted_as_one_worker_of_13_clients(tmp_path: Path) -> None:
    """The Qwen3-32B-NVFP4 row with 416 clients at batch_size 13 (32 tp-2 workers, the 64 GPUs of its
    disaggregated sibling) predicts what the same deployment predicts with 13 clients on one worker."""
    table = pd.read_csv(DATA / "silicon_sample.csv")
    row = table[table["id"].str.endswith("b200_sxm_trtllm_agg_15000x500_c416_tp2_0_epnone_2")]
    assert len(row) == 1
    one = row.assign(
        id="one-worker",
        silicon_data_source=row["silicon_data_source"].str.replace(
            "silicon_concurrency=416", "silicon_concurrency=13"
        ),
    )
    pd.concat([row, one]).to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    name = "Qwen--Qwen3-32B_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    rows = predict_silicon(tmp_path, {}).set_index("id")
    assert rows["covered"].all()
    assert rows.loc["one-worker", "concurrency"] == 13
    both = rows[["predicted_ttft_ms", "predicted_tpot_ms"]].to_numpy()
    np.testing.assert_allclose(both[0], both[1], rtol=1e-12)


def test_vllm_rows_stating_attention_dp_are_one_tp_engine() -> None:
    """Only aggregated vLLM rows with attention_dp_size > 1 are read as one engine of tp_size GPUs: InferenceX's
    vLLM scripts launch no data parallelism."""
    from validation.public.inferencex import vllm_single_engine

    table = pd.DataFrame(
        {
            "backend": ["vllm", "vllm", "vllm", "trtllm", "sglang", "vllm"],
            "mode": ["agg", "agg", "agg", "agg", "agg", "disagg"],
            "attention_dp_size": [2.0, 1.0, np.nan, 8.0, 8.0, 2.0],
        }
    )
    assert vllm_single_engine(table).tolist() == [True, False, False, False, False, False]


def test_a_vllm_attention_dp_row_predicts_its_tp_twin(tmp_path: Path) -> None:
    """MiniMax-M2.5 on B200 with vLLM, stated as tp 2 / attention DP 2 / EP 4 with 32 sequences per rank and 64
    clients, is predicted as the tp 2 / EP 2 engine with all 64 clients and 64 sequences: the same TTFT and
    TPOT as that twin row."""
    table = pd.read_csv(DATA / "silicon_sample.csv")
    row = table[table["id"] == "2026_04_06_minimax_m2_5_b200_sxm_vllm_fp8_agg_1024x1024_c64_tp2_ep2_1395"]
    assert len(row) == 1
    assert (row["attention_dp_size"].iloc[0], row["moe_ep_size"].iloc[0]) == (2, 4)
    twin = row.assign(id="twin", attention_dp_size=1.0, moe_ep_size=2.0, moe_tp_size=1.0, batch_size=64.0)
    pd.concat([row, twin]).to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    name = "MiniMaxAI--MiniMax-M2.5_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    rows = predict_silicon(tmp_path, {"vllm": LoopParams(step_overhead_s=1e-3)}).set_index("id")
    assert rows["covered"].all()
    dp, tp = rows.loc[row["id"].iloc[0]], rows.loc["twin"]
    assert dp["predicted_ttft_ms"] == pytest.approx(tp["predicted_ttft_ms"], rel=1e-12)
    assert dp["predicted_tpot_ms"] == pytest.approx(tp["predicted_tpot_ms"], rel=1e-12)


def test_the_cuda_graphs_a_batch_with_prompt_tokens_replays() -> None:
    """vLLM replays mixed batches up to min(2 max_num_seqs, 512, budget) tokens by default, up to a script's
    max-cudagraph-capture-size (gpt-oss: 2048), none under cudagraph_mode FULL_DECODE_ONLY (Llama-3.1-70B
    on B200); TensorRT-LLM and SGLang graph decode-only batches alone."""
    from validation.public.inferencex import cuda_graph_tokens, launch_script

    gpt = launch_script(True, "vllm", "openai/gpt-oss-120b", "b200_sxm", "fp4")
    llama = launch_script(True, "vllm", "meta-llama/Llama-3.1-70B", "b200_sxm", "fp8")
    assert cuda_graph_tokens("vllm", None, 4, 8192) == 8
    assert cuda_graph_tokens("vllm", None, 1024, 8192) == 512
    assert cuda_graph_tokens("vllm", None, 1024, 256) == 256
    assert cuda_graph_tokens("vllm", gpt, 512, 8192) == 2048
    assert cuda_graph_tokens("vllm", llama, 512, 8192) == 0
    assert cuda_graph_tokens("trtllm", None, 512, 8192) == cuda_graph_tokens("sglang", gpt, 512, 8192) == 0


def test_an_expert_parallel_row_recorded_as_e_by_e_gpus_runs_on_e() -> None:
    """tp_size (or attention_dp_size) = moe_tp_size x moe_ep_size with moe_tp = moe_ep = E, wider than a
    node: E GPUs with E-way expert parallelism. Within a node, or with unequal degrees, rows are read as
    stated; disaggregated rows are not aggregated ones."""
    from validation.public.silicon import squared_expert_layout

    filled = pd.DataFrame(
        {
            "mode": ["agg", "agg", "agg", "agg", "agg", "disagg"],
            "tp_size": [16.0, 64.0, 4.0, 8.0, 1.0, 16.0],
            "attention_dp_size": [1.0, 1.0, 1.0, 1.0, 16.0, 1.0],
            "moe_tp_size": [4.0, 8.0, 2.0, 2.0, 4.0, 4.0],
            "moe_ep_size": [4.0, 8.0, 2.0, 4.0, 4.0, 4.0],
        }
    )
    assert squared_expert_layout(filled).tolist() == [True, True, False, False, True, False]


@pytest.mark.parametrize(
    ("backend", "wide", "narrow"),
    [
        # SGLang tp_size 16 = moe_tp 4 x moe_ep 4: tp 4 x EP 4 (moe_tp 1)
        ("sglang", {"tp_size": 16, "moe_ep_size": 4}, {"tp_size": 4, "moe_ep_size": 4, "moe_tp_size": 1}),
        # TensorRT-LLM attention_dp_size 64 = 8 x 8, batch_size per recorded rank: 8 ranks of 8 x as many
        ("trtllm", {"attention_dp_size": 64}, {"attention_dp_size": 8, "moe_ep_size": 8, "moe_tp_size": 1}),
    ],
)
def test_a_row_recorded_as_e_by_e_gpus_is_predicted_as_its_measured_twin_on_e(
    tmp_path: Path, backend: str, wide: dict[str, int], narrow: dict[str, int]
) -> None:
    """The sample's own evidence: a DeepSeek-R1 row recorded on E x E GPUs measures to the last digit what
    its twin on E GPUs (moe_tp 1, EP E) measures, the same run; both are predicted as that deployment."""
    table = read_silicon(DATA)
    r1 = table[(table["model_path"] == "deepseek-ai/DeepSeek-R1") & (table["backend"] == backend)]
    r1 = r1[r1["mode"] == "agg"]
    pick = [r1[np.logical_and.reduce([r1[k] == v for k, v in where.items()])] for where in (wide, narrow)]
    same = ["isl", "osl", "concurrency", "gemm_quant_mode", "silicon_ttft_ms", "silicon_tpot_ms"]
    twins = pick[0].merge(pick[1], on=same, suffixes=("", "_twin"))
    assert len(twins) > 0
    first = twins.iloc[0]
    rows = pd.concat([pick[0][pick[0]["id"] == first["id"]], pick[1][pick[1]["id"] == first["id_twin"]]])
    rows.drop(columns="concurrency").to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    name = "deepseek-ai--DeepSeek-R1_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    predicted = predict_silicon(tmp_path, {backend: LoopParams(0.002, 0.1, 0.5, 0.0)})
    assert predicted["covered"].all()
    for column in ("predicted_ttft_ms", "predicted_tpot_ms"):
        assert predicted[column].iloc[0] == pytest.approx(predicted[column].iloc[1], rel=1e-12)


def test_the_inferencex_client_draws_lengths_below_the_nominal() -> None:
    """Uniform integers in [int(0.8 x), x]: the mean of a run of whole numbers is its ends' mean."""
    from validation.public.inferencex import mean_length

    np.testing.assert_array_equal(mean_length([1024, 8192, 2]), [(819 + 1024) / 2, (6553 + 8192) / 2, 1.5])


def test_the_deepseek_scripts_relax_the_recv_interval_from_16_clients() -> None:
    """dsr1_fp8_b200.sh / dsr1_fp4_b200.sh: 10, 30 from 16 clients, 10 at tp 4 in fp8; 1 elsewhere."""
    from validation.public.inferencex import launch_script, recv_interval

    def scheduler_recv_interval(
        backend: str, model: str, system: str, tp: int, precision: str, clients: list[int]
    ) -> np.ndarray:
        script = launch_script(True, backend, model, system, precision)
        return recv_interval(script, tp=tp, concurrency=clients, precision=precision)

    clients = [4, 15, 16, 512]
    model, system = "deepseek-ai/DeepSeek-R1", "b200_sxm"
    assert scheduler_recv_interval("sglang", model, system, 8, "fp8", clients).tolist() == [10, 10, 30, 30]
    assert scheduler_recv_interval("sglang", model, system, 4, "fp4", clients).tolist() == [10, 10, 30, 30]
    assert scheduler_recv_interval("sglang", model, system, 4, "fp8", clients).tolist() == [10] * 4
    assert scheduler_recv_interval("sglang", "zhipuai/GLM-5", system, 8, "fp8", clients).tolist() == [1] * 4
    assert scheduler_recv_interval("vllm", model, system, 8, "fp8", clients).tolist() == [1] * 4


def test_an_inferencex_sglang_row_is_the_loop_of_its_clients_mean_lengths_and_recv_interval(
    tmp_path: Path,
) -> None:
    """A DeepSeek-R1 fp8 tp 8 SGLang row of InferenceX at 1024 / 1024 and 64 clients is the closed loop at
    the client's mean lengths (921.5 tokens each) with the scheduler reading its queue every 30 decode
    iterations: all 64 clients run at once, so its TTFT is the request overhead, 15 mean iterations of
    wait for the read and its prompt's chunk."""
    from costmodel.closed_loop import LoopParts

    table = read_silicon(DATA)
    chosen = (table["model_path"] == "deepseek-ai/DeepSeek-R1") & (table["backend"] == "sglang")
    chosen &= (table["tp_size"] == 8) & (table["moe_ep_size"] == 1) & (table["gemm_quant_mode"] == "fp8")
    chosen &= (table["isl"] == 1024) & (table["osl"] == 1024) & (table["concurrency"] == 64)
    chosen &= table["silicon_data_source"].str.startswith("source_file=2026-03-25.csv")
    row = table[chosen].head(1)
    assert len(row) == 1
    (tmp_path / "model_configs").mkdir()
    name = "deepseek-ai--DeepSeek-R1_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    row.drop(columns="concurrency").to_csv(tmp_path / "silicon_sample.csv", index=False)
    _, [(_, parts)] = silicon_parts(tmp_path)
    assert isinstance(parts, LoopParts)
    np.testing.assert_array_equal(parts.isl, [921.5])
    np.testing.assert_array_equal(parts.osl, [921.5])
    np.testing.assert_array_equal(parts.arrival_wait, [15.0])
    assert float(parts.running[0]) == 64
    params = LoopParams(0.002, 0.1, 0.0, 0.0)
    prompt = float(parts.chunks[0]) * (float(parts.with_prompt_s[0]) + params.step_overhead_s)
    waited = float(parts.steady_ttft_s(params)[0]) - params.request_overhead_s - prompt
    assert waited == pytest.approx(15.0 * float(parts.iteration_s(params)[0]), rel=1e-6)


def test_the_vllm_scripts_that_set_the_budget_from_the_prompt() -> None:
    """minimaxm2.5_fp8_b200.sh (8eec0d4) and kimik2.5_fp4_b200.sh (380b685) launch with
    --max-num-batched-tokens $((ISL * 2)); the other vLLM scripts keep the engine's budget."""
    from validation.public.inferencex import launch_script
    from validation.public.silicon import _vllm_script_budget

    filled = pd.DataFrame(
        {
            "backend": ["vllm", "vllm", "vllm", "vllm", "sglang"],
            "inferencex": [True, True, False, True, True],
            "model_path": [
                "MiniMaxAI/MiniMax-M2.5",
                "moonshotai/Kimi-K2.5",
                "MiniMaxAI/MiniMax-M2.5",
                "openai/gpt-oss-120b",
                "MiniMaxAI/MiniMax-M2.5",
            ],
            "system": ["b200_sxm"] * 5,
            "precision": ["fp8", "fp4", "fp8", "fp4", "fp8"],
            "isl": [1024.0, 8192.0, 1024.0, 1024.0, 1024.0],
            "backend_version": ["0.19.0", "0.17.0", "0.19.0", "0.15.1", "0.5.9"],
        }
    )
    budget = _vllm_script_budget(filled)
    assert budget.iloc[:2].tolist() == [2048.0, 16384.0]
    assert budget.iloc[2:].isna().all()
    assert launch_script(True, "vllm", "MiniMaxAI/MiniMax-M2.5", "b200_sxm", "fp4") is None
    # MiniMax-M2.5 fp8's first era (vLLM 0.17.0) ran the script before it set a budget
    first = _vllm_script_budget(filled.assign(backend_version="0.17.0"))
    assert pd.isna(first.iloc[0])


def test_the_minimax_fp8_b200_rows_of_vllm_0_17_ran_the_first_script() -> None:
    """minimaxm2.5_fp8_b200.sh at 80fd934: --gpu-memory-utilization 0.95 and vLLM's defaults otherwise (bf16
    KV, default graphs and budget); the 0.19.0 rows ran the later script (fp8 KV, 2048-token graphs, the
    2 x isl budget). The sample's 0.17.0 rows are that sweep's: 4-64 clients, none with expert
    parallelism, where the 0.19.0 rows reach 512 clients and state EP."""
    from validation.public.inferencex import launch_script

    model, system = "MiniMaxAI/MiniMax-M2.5", "b200_sxm"
    first = launch_script(True, "vllm", model, system, "fp8", "0.17.0")
    later = launch_script(True, "vllm", model, system, "fp8", "0.19.0")
    assert first is not None
    assert later is not None
    assert "80fd934" in first.source
    assert (first.kv_dtype, first.cuda_graph_max_tokens, first.budget_isl_multiple) == (None, None, None)
    assert first.gpu_memory_utilization == 0.95
    assert (later.kv_dtype, later.cuda_graph_max_tokens, later.budget_isl_multiple) == ("fp8", 2048, 2)
    table = read_silicon(DATA)
    rows = table[(table["model_path"] == model) & (table["system"] == system) & (table["backend"] == "vllm")]
    rows = rows[rows["gemm_quant_mode"] == "fp8"]
    early = rows[rows["backend_version"] == "0.17.0"]
    assert len(early) > 0
    assert early["concurrency"].max() <= 64
    assert (early["moe_ep_size"].fillna(1) == 1).all()
    assert (rows.loc[rows["backend_version"] == "0.19.0", "moe_ep_size"] > 1).any()


def test_an_inferencex_vllm_row_is_the_loop_of_its_clients_mean_lengths_and_its_scripts_budget(
    tmp_path: Path,
) -> None:
    """InferenceX's client draws vLLM's lengths as SGLang's (uniform in [int(0.8 x), x]: 921.5 tokens for
    1024), and the MiniMax-M2.5 fp8 B200 script sets --max-num-batched-tokens $((ISL * 2)): 2048 tokens per
    iteration, all of them inside its 2048-token CUDA graphs (no eager layer). A vLLM row of another source
    (aiconfigurator's own H100 Qwen3-32B collection) keeps the nominal lengths and vLLM's 8192 budget."""
    from costmodel.closed_loop import LoopParts

    table = read_silicon(DATA)
    minimax = (table["model_path"] == "MiniMaxAI/MiniMax-M2.5") & (table["backend"] == "vllm")
    minimax &= (table["system"] == "b200_sxm") & (table["gemm_quant_mode"] == "fp8")
    minimax &= (table["isl"] == 1024) & (table["osl"] == 1024) & (table["concurrency"] == 4)
    minimax &= (table["tp_size"] == 2) & (table["attention_dp_size"].fillna(1) == 1)
    minimax &= (table["moe_ep_size"].fillna(1) == 1) & (table["backend_version"] == "0.19.0")
    qwen = (table["model_path"] == "Qwen/Qwen3-32B") & (table["backend"] == "vllm") & (table["mode"] == "agg")
    qwen &= (table["isl"] == 1024) & (table["concurrency"] == 8)
    rows = pd.concat([table[minimax].head(1), table[qwen].head(1)])
    assert len(rows) == 2
    (tmp_path / "model_configs").mkdir()
    for name in ("MiniMaxAI--MiniMax-M2.5_config.json", "Qwen--Qwen3-32B_config.json"):
        shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    rows.drop(columns="concurrency").to_csv(tmp_path / "silicon_sample.csv", index=False)
    _, groups = silicon_parts(tmp_path)
    parts = {int(p.isl[0] != 1024): p for _, p in groups}
    assert all(isinstance(p, LoopParts) for p in parts.values())
    inferencex, other = parts[1], parts[0]
    np.testing.assert_array_equal(inferencex.isl, [921.5])
    np.testing.assert_array_equal(inferencex.osl, [921.5])
    # the prompt budget is what the decodes leave of the script's 2048 tokens
    assert float(inferencex.prompt_budget[0] + inferencex.decodes[0]) == pytest.approx(2048.0)
    assert float(np.max(inferencex.layers)) == 0.0
    np.testing.assert_array_equal(other.isl, [1024.0])
    assert float(other.prompt_budget[0] + other.decodes[0]) == pytest.approx(8192.0)


def test_sglang_overlaps_its_host_work_except_while_drafting() -> None:
    """SGLang's overlap scheduler is on by default and off with EAGLE / NEXTN speculative decoding
    (ServerArgs._handle_speculative_decoding): the InferenceX Qwen3.5-397B fp8 recipe drafts only at its MTP
    sibling's layout (tp 4, EP 1), the plain Qwen3.5 recipes (bf16, nvfp4, fp8 at tp 8 or with EP 4), the
    GLM-5 script (InferenceX #915) and the DeepSeek-R1 ones not at all; a row of another source
    keeps the defaults; other engines never overlap."""
    from validation.public.inferencex import launch_script
    from validation.public.sglang import overlap_host, speculative

    b200, qwen = "b200_sxm", "Qwen/Qwen3.5-397B-A17B"
    deepseek = launch_script(True, "sglang", "deepseek-ai/DeepSeek-R1", b200, "fp8")
    glm = launch_script(True, "sglang", "zhipuai/GLM-5", b200, "fp8")
    fp8 = launch_script(True, "sglang", qwen, b200, "fp8")
    assert overlap_host("sglang", deepseek, tp=8, moe_ep=1)
    for tp, ep in ((8, 1), (8, 8), (4, 4)):
        assert overlap_host("sglang", glm, tp=tp, moe_ep=ep)
        assert overlap_host("sglang", fp8, tp=tp, moe_ep=ep)
    assert not overlap_host("sglang", fp8, tp=4, moe_ep=1)
    assert speculative(fp8, tp=4, moe_ep=1)
    for precision in ("bf16", "fp4"):
        plain = launch_script(True, "sglang", qwen, b200, precision)
        assert plain is not None
        assert not speculative(plain, tp=4, moe_ep=1)
        assert overlap_host("sglang", plain, tp=8, moe_ep=1)
    assert overlap_host("sglang", launch_script(False, "sglang", qwen, b200, "fp8"), tp=4, moe_ep=1)
    assert not overlap_host("vllm", None, tp=8, moe_ep=1)
    assert not overlap_host("trtllm", None, tp=8, moe_ep=1)


def test_sglangs_eagle_rows_prepare_three_passes_per_iteration_on_the_host() -> None:
    """Where an SGLang server runs EAGLE (the Qwen3.5-397B fp8 MTP layout, tp 4 with EP 1, or a row of a
    campaign's MTP series) its worker builds the draft, the verification and the draft extend in turn
    (EAGLEWorker.forward_batch_generation): three passes; the same script's plain layouts, the GLM-5 and
    DeepSeek-R1 scripts, a row of no known script and the other engines prepare one."""
    from validation.public.inferencex import launch_script
    from validation.public.sglang import EAGLE_HOST_PASSES, host_passes

    assert EAGLE_HOST_PASSES == 3
    b200, qwen = "b200_sxm", "Qwen/Qwen3.5-397B-A17B"
    fp8 = launch_script(True, "sglang", qwen, b200, "fp8")
    deepseek = launch_script(True, "sglang", "deepseek-ai/DeepSeek-R1", b200, "fp8")
    glm = launch_script(True, "sglang", "zhipuai/GLM-5", b200, "fp8")
    assert host_passes("sglang", fp8, tp=4, moe_ep=1) == 3.0
    assert host_passes("sglang", deepseek, tp=8, moe_ep=1, twin=True) == 3.0
    for tp, ep in ((8, 1), (4, 4)):
        assert host_passes("sglang", fp8, tp=tp, moe_ep=ep) == 1.0
    assert host_passes("sglang", deepseek, tp=8, moe_ep=1) == 1.0
    assert host_passes("sglang", glm, tp=8, moe_ep=1) == 1.0
    assert host_passes("sglang", None, tp=4, moe_ep=1) == 1.0
    for other in ("vllm", "trtllm"):
        assert host_passes(other, fp8, tp=4, moe_ep=1) == 1.0


def test_an_sglang_eagle_decode_pool_prepares_three_passes_beside_its_kernels() -> None:
    """Every SGLang MTP recipe read decodes with EAGLE under SGLANG_ENABLE_SPEC_V2=1, which keeps the
    overlap scheduler on (ServerArgs._handle_speculative_decoding: "Spec v2 is enabled for eagle/eagle3
    speculative decoding and overlap schedule is turned on"): such a disaggregated decode worker prepares
    EAGLEWorker's three passes beside the kernels, a plain one (or another engine's) one; SGLang's pools
    keep the engine-wide overlap."""
    from validation.public.inferencex_disagg_workers import SGLANG_MTP_RECIPES
    from validation.public.sglang import EAGLE_HOST_PASSES, disagg_decode_host_passes, overlaps_by_default

    assert len(SGLANG_MTP_RECIPES) >= 1
    assert disagg_decode_host_passes("sglang", drafts=True) == float(EAGLE_HOST_PASSES) == 3.0
    assert disagg_decode_host_passes("sglang", drafts=False) == 1.0
    assert disagg_decode_host_passes("trtllm", drafts=True) == 1.0
    assert overlaps_by_default("sglang")


def test_a_hybrid_models_radix_cache_decides_sglangs_overlap() -> None:
    """SGLang switches its overlap scheduler off for a hybrid linear-attention model whose states go to the
    default ``no_buffer`` MambaRadixCache, i.e. with the radix cache on and no drafting
    (ServerArgs._handle_mamba_radix_cache: "Disabling overlap schedule since mamba no_buffer is not
    compatible with overlap schedule, try to use --disable-radix-cache"). Every Qwen3.5-397B script read
    launches with --disable-radix-cache (bf16 and nvfp4: qwen3.5_bf16_b200.sh at 20edd7f and 29d69fa,
    qwen3.5_fp4_b200.sh; fp8: qwen3.5_fp8_b200.sh and its MTP sibling), so its plain rows overlap; the same
    recipe with the radix cache on would not, and a model without linear-attention or Mamba layers keeps
    the overlap whatever its radix cache."""
    import dataclasses

    import costmodel
    from validation.public.inferencex import launch_script
    from validation.public.sglang import mamba_radix_cache, overlap_host

    model = costmodel.load_model("qwen3.5-397b-a17b")
    assert model.n_linear_attention_layers > 0  # gated DeltaNet beside full attention: hybrid
    b200, qwen = "b200_sxm", "Qwen/Qwen3.5-397B-A17B"
    for precision in ("bf16", "fp4", "fp8"):
        script = launch_script(True, "sglang", qwen, b200, precision)
        assert script is not None
        assert not script.radix_cache
        assert not mamba_radix_cache(script, hybrid=True)
        assert overlap_host("sglang", script, tp=8, moe_ep=1, hybrid=True)
        radix = dataclasses.replace(script, radix_cache=True)
        assert mamba_radix_cache(radix, hybrid=True)
        assert not overlap_host("sglang", radix, tp=8, moe_ep=1, hybrid=True)
        assert overlap_host("sglang", radix, tp=8, moe_ep=1, hybrid=False)
    # drafting turns it off on its own; a hybrid row of no known script runs the default, the cache on
    fp8 = launch_script(True, "sglang", qwen, b200, "fp8")
    assert not overlap_host("sglang", fp8, tp=4, moe_ep=1, hybrid=True)
    assert not overlap_host("sglang", None, tp=8, moe_ep=1, hybrid=True)
    assert not overlap_host("vllm", None, tp=8, moe_ep=1, hybrid=False)


def test_the_deepseek_mtp_series_is_the_second_series_of_a_dumped_configuration() -> None:
    """The 2026-03-25 DeepSeek-R1 fp8 tp 8 EP 1 campaign measured each configuration the database dump holds
    twice (drafting_rows): the rows flagged are result-file rows of a configuration the dump measured, each
    measuring what no dump row does; every configuration the dump lacks keeps its one series unflagged. The
    flagged series is the faster one at 4 clients at every length (the drafting signature; the rule itself
    never compares sizes), and the drafting it runs gains 1 + 0.85 + 0.85 x 0.63 tokens per verification
    (EAGLE 2 steps, DeepSeek-V3's MTP rates)."""
    from costmodel.specs import ModelProfile
    from validation.public.sglang import drafting_rows
    from validation.public.silicon import (
        MTP_ACCEPTANCE_RATE,
        MTP_LATER_ACCEPTANCE_RATE,
        repeated_measurement,
        twin_speculation,
    )

    table = read_silicon(DATA)
    flagged = drafting_rows(table, repeated_measurement(table))
    rows = table[flagged]
    assert len(rows) == 17
    assert set(rows["model_path"]) <= {"deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3"}
    assert not rows["silicon_data_source"].astype(str).str.startswith("db-dump/").any()
    text = table["silicon_data_source"].astype(str)
    dump = table[text.str.contains("config_id=87;", regex=False)]
    for _, row in rows.iterrows():
        twin = dump[
            (dump["isl"] == row["isl"])
            & (dump["osl"] == row["osl"])
            & (dump["concurrency"] == row["concurrency"])
        ]
        assert len(twin) == 1
        assert abs(float(twin["silicon_tpot_ms"].iloc[0]) - float(row["silicon_tpot_ms"])) > 0.01
        if row["concurrency"] == 4:
            assert float(row["silicon_tpot_ms"]) < float(twin["silicon_tpot_ms"].iloc[0])
    model = ModelProfile.from_hf_config(_config_path(DATA / "model_configs", "deepseek-ai/DeepSeek-R1"))
    spec = twin_speculation(model)
    assert (spec.draft_tokens, spec.draft_head) == (2, True)
    expected = 1 + MTP_ACCEPTANCE_RATE + MTP_ACCEPTANCE_RATE * MTP_LATER_ACCEPTANCE_RATE
    assert spec.tokens_per_iteration == pytest.approx(expected)


def test_the_qwen35_mtp_layout_rows_decode_faster_than_the_plain_recipe_can() -> None:
    """The data's own signature of the drafting layout (no model): at 4 clients, 1k / 1k, the fp8 rows at
    tp 4 with EP 1 (the MTP recipe's only layout) measure a shorter TPOT than the plain recipe's tp 8 rows,
    although each of their GPUs reads twice the weights per token; the plain recipe's tp 4 rows with EP 4
    are the slowest of the three. From 64 clients on, the MTP rows' verification (four tokens per
    sequence) is no longer faster than the plain tp 4 EP 4 rows' decode."""
    table = read_silicon(DATA)
    fp8 = table[
        (table["model_path"] == "Qwen/Qwen3.5-397B-A17B")
        & (table["precision"] == "fp8")
        & (table["isl"] == 1024)
        & (table["osl"] == 1024)
    ]

    def tpot(tp: int, ep: int, clients: int) -> float:
        rows = fp8[(fp8["tp_size"] == tp) & (fp8["moe_ep_size"] == ep) & (fp8["concurrency"] == clients)]
        assert len(rows), (tp, ep, clients)
        return float(rows["silicon_tpot_ms"].median())

    # tp 16 / EP 4 is the squared record of tp 4 x EP 4 (silicon.squared_expert_layout)
    assert tpot(4, 1, 4) < tpot(8, 1, 4) < tpot(16, 4, 4)
    assert tpot(4, 1, 128) >= 0.95 * tpot(16, 4, 128)


def test_an_sglang_row_hides_its_overlapped_host_work_behind_its_kernels(tmp_path: Path) -> None:
    """The DeepSeek-R1 fp8 and GLM-5 InferenceX rows (no drafting) are predicted with the host overlapped:
    a host cost below their decode step's kernels leaves their TPOT as it was; the Qwen3.5-397B fp8 MTP
    row of the same source (EAGLE, tp 4 with EP 1) pays it in full on every iteration, once for each of the
    three passes SGLang's EAGLE worker prepares in turn (draft, verification, draft extend), that is, per
    token, three host costs over the tokens an iteration yields."""
    table = read_silicon(DATA)
    source = table["silicon_data_source"].str.startswith("source_file=2026-03-25.csv")
    common = (table["backend"] == "sglang") & source & (table["isl"] == 1024) & (table["osl"] == 1024)
    common &= (table["concurrency"] == 4) & (table["gemm_quant_mode"] == "fp8")
    deepseek = table[common & (table["model_path"] == "deepseek-ai/DeepSeek-R1") & (table["tp_size"] == 8)]
    glm = table[common & (table["model_path"] == "zhipuai/GLM-5")]
    qwen = table[common & (table["model_path"] == "Qwen/Qwen3.5-397B-A17B") & (table["tp_size"] == 4)]
    qwen = qwen[qwen["moe_ep_size"] == 1]
    rows = pd.concat([deepseek.head(1), glm.head(1), qwen.head(1)])
    assert len(rows) == 3
    (tmp_path / "model_configs").mkdir()
    for name in (
        "deepseek-ai--DeepSeek-R1_config.json",
        "zai-org--GLM-5_config.json",
        "Qwen--Qwen3.5-397B-A17B_config.json",
    ):
        shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    rows.drop(columns="concurrency").to_csv(tmp_path / "silicon_sample.csv", index=False)
    out, groups = silicon_parts(tmp_path)
    by_model = {str(out.loc[index[0], "model_path"]): parts for index, parts in groups}
    r1, glm5 = by_model["deepseek-ai/DeepSeek-R1"], by_model["zhipuai/GLM-5"]
    mtp = by_model["Qwen/Qwen3.5-397B-A17B"]
    for parts in (r1, glm5, mtp):
        assert isinstance(parts, LoopParts)
    assert r1.overlap_host
    assert glm5.overlap_host
    assert not mtp.overlap_host
    assert mtp.tokens_per_iteration > 1.0
    assert (r1.host_passes, glm5.host_passes, mtp.host_passes) == (1.0, 1.0, 3.0)
    host = 0.5 * min(float(np.min(parts.decode_only_s)) for parts in (r1, glm5, mtp))
    for parts, added in ((r1, 0.0), (glm5, 0.0), (mtp, 3.0 * host / mtp.tokens_per_iteration)):
        bare = parts.result(LoopParams(step_overhead_s=1e-3))
        hosted = parts.result(LoopParams(step_overhead_s=1e-3, overlapped_host_s=host))
        np.testing.assert_allclose(hosted.tpot_s - bare.tpot_s, added, rtol=1e-9, atol=1e-15)


def test_the_cold_start_rule_takes_the_first_waves_beyond_the_chunk_of_that_campaign_alone() -> None:
    """A row of the 2025-11-10 SGLang campaign's script (DeepSeek-R1 or its V3 copy, nvfp4, B200) is refused
    exactly when its first wave (clients x nominal isl) cannot be prefilled in one 16384-token chunk;
    another date, another engine, or another script measured that day (another model, format or GPU) is
    untouched."""
    source = "db-dump/x; silicon_concurrency={c}; measured={d}T00:00:00.000Z; workflow_run_id=1"
    r1, v3, glm = "deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3", "zhipuai/GLM-5"
    rows = [
        ("sglang", "2025-11-10", 1024, 16, r1, "nvfp4", "b200_sxm"),  # 16384 tokens: one chunk
        ("sglang", "2025-11-10", 1024, 32, r1, "nvfp4", "b200_sxm"),
        ("sglang", "2025-11-10", 8192, 2, v3, "nvfp4", "b200_sxm"),  # 16384 tokens: one chunk
        ("sglang", "2025-11-10", 8192, 4, v3, "nvfp4", "b200_sxm"),
        ("sglang", "2026-03-25", 1024, 128, r1, "nvfp4", "b200_sxm"),
        ("trtllm", "2025-11-10", 1024, 128, r1, "nvfp4", "b200_sxm"),
        ("sglang", "2025-11-10", 1024, 128, glm, "nvfp4", "b200_sxm"),
        ("sglang", "2025-11-10", 1024, 128, r1, "fp8", "b200_sxm"),
        ("sglang", "2025-11-10", 1024, 128, r1, "nvfp4", "h100_sxm"),
    ]
    table = pd.DataFrame(
        {
            "backend": [r[0] for r in rows],
            "silicon_data_source": [source.format(c=r[3], d=r[1]) for r in rows],
            "isl": [r[2] for r in rows],
            "concurrency": [float(r[3]) for r in rows],
            "model_path": [r[4] for r in rows],
            "gemm_quant_mode": [r[5] for r in rows],
            "system": [r[6] for r in rows],
        }
    )
    expected = [False, True, False, True, False, False, False, False, False]
    assert cold_start_rows(table).tolist() == expected


def test_every_sglang_row_of_the_cold_start_date_is_that_campaigns_script(
    silicon_table: pd.DataFrame,
) -> None:
    """The sample's SGLang rows measured on 2025-11-10 are all the script's (``dsr1_fp4_b200.sh``: 33
    DeepSeek-R1 nvfp4 B200 rows and their 33 DeepSeek-V3 copies in InferenceX's dump), so tying the campaign
    to its script refuses the same 42 rows that the date alone would."""
    table = silicon_table
    day = (table["backend"] == "sglang") & table["silicon_data_source"].str.contains(
        "measured=2025-11-10", regex=False
    )
    rows = table[day]
    assert len(rows) == 66
    assert set(rows["system"]) == {"b200_sxm"}
    assert set(rows["gemm_quant_mode"]) == {"nvfp4"}
    assert rows["model_path"].value_counts().to_dict() == {
        "deepseek-ai/DeepSeek-R1": 33,
        "deepseek-ai/DeepSeek-V3": 33,
    }
    refused = cold_start_rows(table)
    assert int(refused.sum()) == 42
    assert (refused == day & (table["concurrency"] * table["isl"] > 16384)).all()


def test_the_cold_start_rows_carry_a_step_in_ttft_that_their_tpot_does_not(
    silicon_table: pd.DataFrame,
) -> None:
    """The data's own signature, no model involved: in the campaign, at each parallelism and osl of isl 1024,
    the mean TTFT jumps by more than 5 s between 16 and 32 clients (the chunk's edge), over ten times, while
    the TPOT rises by less than the clients double, and the TTFT is near-constant beyond (a cost paid once
    per run, not per request)."""
    table = silicon_table
    campaign = table[
        (table["backend"] == "sglang")
        & table["silicon_data_source"].str.contains("measured=2025-11-10", regex=False)
        & (table["model_path"] == "deepseek-ai/DeepSeek-R1")
        & (table["isl"] == 1024)
    ]
    refused = cold_start_rows(campaign)
    groups = 0
    for _, group in campaign.groupby(["tp_size", "osl"]):
        by_clients = group.set_index("concurrency")
        below, above = by_clients.loc[16.0], by_clients.loc[32.0]
        assert above["silicon_ttft_ms"] - below["silicon_ttft_ms"] > 5000.0
        assert above["silicon_tpot_ms"] < 2.0 * below["silicon_tpot_ms"]
        beyond = by_clients.loc[by_clients.index >= 32, "silicon_ttft_ms"]
        assert beyond.max() < 1.5 * beyond.min()
        assert refused[group.index].tolist() == (group["concurrency"] >= 32).tolist()
        groups += 1
    assert groups == 4


def test_the_refused_isl_8192_rows_stall_against_the_later_campaign_of_the_same_script(
    silicon_table: pd.DataFrame,
) -> None:
    """The isl-8192 rows of the campaign all lie beyond the line (4 x 8192 > 16384), so none below it can
    show their step; the script's 2026-03-25 campaign (SGLang 0.5.9, the same model, GPU, nvfp4, tp and
    clients; its MoE runs expert-parallel where this one ran tensor-parallel) can, model-free: each refused
    row with a later twin measures a TTFT over 3 s above it (a stall S / 10 of 5-8 s) while the TPOT, the
    engine's steady state, differs by less than 2x."""
    table = silicon_table
    deepseek = (
        (table["backend"] == "sglang")
        & (table["model_path"] == "deepseek-ai/DeepSeek-R1")
        & (table["system"] == "b200_sxm")
        & (table["gemm_quant_mode"] == "nvfp4")
        & (table["isl"] == 8192)
    )
    refused = table[deepseek & cold_start_rows(table)]
    later = table[deepseek & table["silicon_data_source"].str.startswith("source_file=2026-03-25.csv")]
    key = ["tp_size", "osl", "concurrency"]
    pairs = refused.merge(later, on=key, suffixes=("", "_later"))
    assert len(refused) == 9
    assert len(pairs) == 6
    assert set(pairs["tp_size"]) == {4.0, 8.0}
    assert (pairs["silicon_ttft_ms"] - pairs["silicon_ttft_ms_later"] > 3000.0).all()
    ratio = pairs["silicon_tpot_ms"] / pairs["silicon_tpot_ms_later"]
    assert ((ratio > 0.5) & (ratio < 2.0)).all()


def test_the_decode_share_is_held_even_and_the_wave_share_is_fitted(sample: Path) -> None:
    """The disaggregated fit holds the decode share's dispersion at 0 (an even share, as round-robin
    routing keeps it: Dynamo's default router) whether or not a calibration row could feel it, and fits the
    KV transfer's fixed cost and the disaggregated loop's own wave share within their bounds. One of the
    sample's rows (480 clients on 6 decode workers of 80 slots) can queue for a slot; given as many slots
    per worker as clients, none can, and the dispersion is 0 all the same."""
    table, groups = silicon_parts(sample)
    table["split"] = "calibration"
    fitted = fit_loop_params(table, groups)
    disagg = [parts for _, parts in groups if isinstance(parts, DisaggParts)]
    assert disagg
    assert any(np.any(parts.concurrency > parts.decode_slots) for parts in disagg)
    roomy = [
        (index, dataclasses.replace(parts, decode_slots=np.maximum(parts.decode_slots, parts.concurrency)))
        if isinstance(parts, DisaggParts)
        else (index, parts)
        for index, parts in groups
    ]
    for chosen in (groups, roomy):
        values = fit_disagg_params(table, chosen, fitted)["trtllm"]
        assert values["decode_share_dispersion"] == 0.0
        for name in ("kv_transfer_overhead_s", "burst_fraction"):
            low, high = DISAGG_BOUNDS[name]
            assert low <= values[name] <= high


def test_sglang_drafting_is_an_argument_off_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row of a drafting script that cites no acceptance for its drafter (here the Qwen3.5-397B fp8 MTP
    recipe with its citation removed) decodes plainly by default, one token per iteration; with
    ``sglang_drafting`` it runs the script's chain, E = 1 + a + a^2 + a^3 tokens per iteration at the MTP
    rate a (three drafts, Leviathan et al.'s expectation). A GLM-5 row (a plain script) decodes plainly
    either way."""
    from validation.public import inferencex
    from validation.public.silicon import MTP_ACCEPTANCE_RATE

    key = ("sglang", "Qwen/Qwen3.5-397B-A17B", "b200_sxm", "fp8")
    monkeypatch.setitem(
        inferencex.SCRIPTS, key, dataclasses.replace(inferencex.SCRIPTS[key], acceptance_length=None)
    )
    table = read_silicon(DATA)
    source = table["silicon_data_source"].str.startswith("source_file=2026-03-25.csv")
    common = (table["backend"] == "sglang") & source & (table["isl"] == 1024) & (table["osl"] == 1024)
    qwen = common & (table["model_path"] == "Qwen/Qwen3.5-397B-A17B") & (table["gemm_quant_mode"] == "fp8")
    qwen &= (table["tp_size"] == 4) & (table["moe_ep_size"] == 1)
    glm = common & (table["model_path"] == "zhipuai/GLM-5")
    a = MTP_ACCEPTANCE_RATE
    for rows, drafted in ((table[qwen].head(1), 1 + a + a**2 + a**3), (table[glm].head(1), 1.0)):
        assert len(rows) == 1
        folder = tmp_path / str(rows["model_path"].iloc[0]).replace("/", "--")
        (folder / "model_configs").mkdir(parents=True)
        for name in ("zai-org--GLM-5_config.json", "Qwen--Qwen3.5-397B-A17B_config.json"):
            shutil.copy(DATA / "model_configs" / name, folder / "model_configs" / name)
        rows.drop(columns="concurrency").to_csv(folder / "silicon_sample.csv", index=False)
        [(_, plain)] = silicon_parts(folder)[1]
        [(_, drafting)] = silicon_parts(folder, sglang_drafting=True)[1]
        assert isinstance(plain, LoopParts)
        assert isinstance(drafting, LoopParts)
        assert plain.tokens_per_iteration == 1.0
        assert drafting.tokens_per_iteration == pytest.approx(drafted)


def test_the_dumps_deepseek_v3_rows_are_copies_of_deepseek_r1_measurements(
    silicon_table: pd.DataFrame,
) -> None:
    """InferenceX's database dump names DeepSeek-R1 runs (ids ``dsr1_*``) DeepSeek-V3; each repeats an R1
    row's TTFT and TPOT to the hundredth of a millisecond at the same system, engine, lengths and
    concurrency, so the two are one measurement and share a label (and so a split), whatever the model
    column says."""
    table = silicon_table.reset_index(drop=True)
    labels = pd.Series(repeated_measurement(table), index=table.index)
    v3_r1 = (table["model_path"] == "deepseek-ai/DeepSeek-V3") & table["id"].str.startswith("dsr1_")
    assert v3_r1.sum() > 100
    r1_labels = set(labels[table["model_path"] == "deepseek-ai/DeepSeek-R1"])
    assert labels[v3_r1].isin(r1_labels).mean() > 0.5  # most have their R1 result-file row in the sample
    # and no label joins two models other than this pair
    models = table.groupby(labels)["model_path"].agg(lambda names: frozenset(names))
    assert {m for m in models if len(m) > 1} <= {
        frozenset({"deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3"})
    }


def test_the_2025_11_18_fp8_campaign_lacks_the_flat_stall_the_rule_asks_for(
    silicon_table: pd.DataFrame,
) -> None:
    """The audit's rule (docs/serving.md, "The cold-start signature across engines") refuses a campaign
    beyond its chunk only where the TTFT beyond the line is flat over at least two concurrencies. The
    2025-11-18 SGLang fp8 campaign (tp 8, ``--chunked-prefill-size 32768``, ``dsr1_fp8_b200.sh``) steps at
    that line but shows no such plateau: at isl 1024 a single concurrency (64 clients) lies beyond it, and
    at isl 8192 the TTFT beyond it grows by more than half from 8 to 64 clients. Its rows stay covered."""
    table = silicon_table
    campaign = table[
        (table["backend"] == "sglang")
        & table["silicon_data_source"].str.contains("measured=2025-11-18", regex=False)
        & (table["model_path"] == "deepseek-ai/DeepSeek-R1")
    ]
    chunk = 32768.0
    beyond = campaign[campaign["concurrency"] * campaign["isl"] > chunk]
    for isl, rows in beyond.groupby("isl"):
        if isl == 1024:
            assert rows["concurrency"].nunique() == 1
        else:
            ttft = rows["silicon_ttft_ms"]
            assert rows["concurrency"].nunique() >= 2
            assert ttft.max() > 1.5 * ttft.min()
    assert set(beyond["isl"]) == {1024, 8192}
    assert not cold_start_rows(campaign).any()


def test_deepseeks_b200_sglang_expert_layouts_are_each_one_image_and_the_older_image_decodes_slower(
    silicon_table: pd.DataFrame,
) -> None:
    """Why B200 SGLang's DeepSeek-R1 fp8 EP-8 rows ask more of a step than its EP-1 rows, and its nvfp4
    EP rows less (docs/serving.md, "B200 SGLang DeepSeek fp8 EP 8: the campaign, not the layout"): in the
    sample each layout is one campaign. The fp8 EP-8 rows are the 2025-11-18 run, which states no image
    (InferenceX #204 had moved the recipe to ``lmsysorg/sglang:v0.5.5-cu129-amd64`` with ``--ep-size`` 8 at
    tp 8; #276 to v0.5.6), the fp8 EP-1 rows ran 0.5.6 / 0.5.9; the nvfp4 EP-1 rows are the 2025-11 runs
    (no image), the nvfp4 EP-4 / EP-8 rows 0.5.9. Model-free: at tp 8 and the same lengths and clients, the
    older image's layout measures the slower TPOT in both formats, whichever of the two is
    expert-parallel (fp8 EP 8 slower than every fp8 EP-1 series, nvfp4 EP 1 slower than nvfp4 EP 8)."""
    table = silicon_table
    rows = table[
        (table["backend"] == "sglang")
        & (table["system"] == "b200_sxm")
        & (table["mode"] == "agg")
        & (table["model_path"] == "deepseek-ai/DeepSeek-R1")
    ]
    source = rows["silicon_data_source"].astype(str)
    date = source.str.extract(r"measured=(\d{4}-\d\d-\d\d)")[0]
    image = source.str.extract(r"sglang:(v[0-9.]+)")[0]
    ep = rows["moe_ep_size"].fillna(1.0)
    fp8, fp4 = rows["gemm_quant_mode"] == "fp8", rows["gemm_quant_mode"] == "nvfp4"
    # each layout, one image (the older campaigns state none)
    assert set(date[fp8 & (ep == 8)]) == {"2025-11-18"}
    assert image[fp8 & (ep == 8)].isna().all()
    assert set(image[fp8 & (ep == 1)]) <= {"v0.5.6", "v0.5.9"}
    assert image[fp8 & (ep == 1)].notna().all()
    assert set(image[fp4 & (ep > 1)]) == {"v0.5.9"}
    assert date[fp4 & (ep == 1)].str.startswith("2025-11").all()
    assert image[fp4 & (ep == 1)].isna().all()
    # on 8 GPUs (the sample writes some tp 8 x EP 8 rows as tp 64: silicon.squared_expert_layout), the
    # older image is the slower
    gpus = rows["tp_size"].where(rows["tp_size"] != 64, rows["moe_ep_size"])
    tp8 = rows[gpus == 8].assign(ep=ep, old=date.str.startswith("2025-11"))
    pairs = 0
    for fmt in ("fp8", "nvfp4"):
        layouts = tp8[tp8["gemm_quant_mode"] == fmt]
        tpot = layouts.groupby(["isl", "osl", "concurrency", "old"])["silicon_tpot_ms"]
        slowest_new, fastest_old = tpot.max().xs(False, level="old"), tpot.min().xs(True, level="old")
        shared = slowest_new.index.intersection(fastest_old.index)
        assert len(shared) >= 2
        assert (fastest_old[shared] > slowest_new[shared]).all()
        # and the older layout is the expert-parallel one in fp8, the tensor-parallel one in nvfp4
        old_ep = set(layouts.loc[layouts["old"], "ep"])
        assert old_ep == ({8.0} if fmt == "fp8" else {1.0})
        pairs += len(shared)
    assert pairs >= 6
