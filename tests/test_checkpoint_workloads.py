"""A published checkpoint run as stored by estimate() and the planner (costmodel.memory.workload_formats):
the routed experts in their own format, NVFP4 as W4A4 where the GPU has fp4 tensor cores."""

from __future__ import annotations

import pytest

import costmodel as cm
from costmodel.capacity import SLO, plan
from costmodel.dtypes import matmul_compute_dtype
from costmodel.estimate import Report
from costmodel.memory import checkpoint_bytes, shipped_checkpoints, weight_bytes, workload_formats
from costmodel.ops import Op
from costmodel.params import tensors
from costmodel.serving import Engine, Lengths, Traffic


def _decode_ops(report: Report) -> dict[str, Op]:
    return {op.name: op for op in report._ops[1]}


def test_gpt_oss_runs_its_shipped_checkpoint_bf16_attention_and_mxfp4_experts() -> None:
    model, hw = cm.load_model("gpt-oss-120b"), cm.load_hardware("h100-sxm")
    formats = workload_formats(model, "release", hw)
    assert formats == {
        "weight_dtype": "bf16",
        "activation_dtype": "bf16",
        "expert_dtype": "mxfp4",
        "expert_activation_dtype": None,
    }
    report = cm.estimate(model, hw, cm.Workload(4, 1024, 128, **formats))
    # the weights one GPU holds are the checkpoint's tensors as stored, to the byte (checkpoint_bytes
    # counts nothing beyond the serving model's weights for gpt-oss: it has no MTP module)
    assert report.weight_bytes_per_gpu == checkpoint_bytes(model, "release")
    # per decode step, attention reads its projections in bf16 (2 bytes a parameter, biases and sinks included) and
    # the experts are multiplied as MXFP4 weights dequantized for bf16 inputs (weight-only)
    ops = _decode_ops(report)
    per_layer = {}
    for t in tensors(model):
        if t.component == "attention":
            key = "o_proj" if t.name.startswith("o_proj") else "qkv_proj"
            per_layer[key] = per_layer.get(key, 0) + 2 * t.numel // t.count
    for name in ("qkv_proj", "o_proj"):
        assert ops[name].weight_bytes == per_layer[name], name
        assert ops[name].dequant_flop == 0
    for name in ("experts_up", "experts_down"):
        assert ops[name].dequant_flop > 0
    all_mxfp4 = _decode_ops(cm.estimate(model, hw, cm.Workload(4, 1024, 128, weight_dtype="mxfp4")))
    all_bf16 = _decode_ops(cm.estimate(model, hw, cm.Workload(4, 1024, 128)))
    for name in ("experts_up", "experts_down"):
        assert ops[name].weight_bytes == all_mxfp4[name].weight_bytes < all_bf16[name].weight_bytes


def test_the_planner_sizes_gpt_oss_as_shipped() -> None:
    """The planner's replica holds the checkpoint's bytes: less KV room than if the bf16 attention were
    MXFP4 too, more than all-bf16 (which does not fit one H100 at all)."""
    model, hw = cm.load_model("gpt-oss-120b"), cm.load_hardware("h100-sxm")
    formats = workload_formats(model, "release", hw)
    engine = Engine.build(model, hw, **formats)  # type: ignore[arg-type]
    assert (engine.workload.weight_dtype, engine.workload.expert_dtype) == ("bf16", "mxfp4")
    all_mxfp4 = Engine.build(model, hw, weight_dtype="mxfp4").kv_capacity_tokens()
    assert all_mxfp4 > engine.kv_capacity_tokens() > Engine.build(model, hw).kv_capacity_tokens() == 0
    traffic = Traffic(1.0, Lengths.fixed(1024), Lengths.fixed(128))
    table = plan(model, [hw], traffic, SLO(ttft_s=10.0, tpot_s=0.5), tp=(1,), samples=100, **formats)  # type: ignore[arg-type]
    assert bool(table["feasible"].iloc[0]), table["reason"].iloc[0]


@pytest.mark.parametrize("system", ["b200", "h100-sxm"])
def test_nvfp4_runs_w4a4_where_the_gpu_has_fp4_and_weight_only_where_not(system: str) -> None:
    model, hw = cm.load_model("qwen3-235b-a22b"), cm.load_hardware(system)
    formats = workload_formats(model, "nvfp4", hw)
    assert formats["weight_dtype"] == "nvfp4"
    has_fp4 = "fp4" in hw.compute_dtypes
    assert formats["activation_dtype"] == ("nvfp4" if has_fp4 else "bf16")
    assert matmul_compute_dtype(str(formats["activation_dtype"])) in hw.compute_dtypes
    # the checkpoint's attention and experts are both NVFP4: the Workload is exact
    assert weight_bytes(model, weight_dtype="nvfp4") == checkpoint_bytes(model, "nvfp4")
    # a GPU without fp4 tensor cores refuses NVFP4 inputs, naming the field
    if not has_fp4:
        with pytest.raises(cm.CostmodelError, match="activation_dtype"):
            cm.estimate(
                model,
                hw,
                cm.Workload(weight_dtype="nvfp4", activation_dtype="nvfp4"),
                cm.Deployment(tp=8),
            )


@pytest.mark.parametrize("name", cm.list_models())
def test_the_workload_is_the_checkpoint_where_it_can_express_it(name: str) -> None:
    """Exact bytes wherever every component other than the routed experts shares one format; the others
    (listed) run their minority components in the majority's format."""
    model = cm.load_model(name)
    approximate = {("deepseek-v3", "nvfp4"), ("deepseek-v3.2", "nvfp4"), ("glm-5", "nvfp4")}
    approximate |= {("kimi-k2.5", "nvfp4"), ("gemma-4-31b", "nvfp4")}
    for label, fmt in shipped_checkpoints(model).items():
        formats = workload_formats(model, label)
        own = {"experts": str(formats["expert_dtype"])} if formats["expert_dtype"] else None
        sized = weight_bytes(model, weight_dtype=str(formats["weight_dtype"]), component_dtypes=own)
        present = {t.component for t in tensors(model) if t.kind == "matmul"}
        if present & {"linear_attention", "ssm"} and formats["weight_dtype"] != fmt.weight_dtype:
            continue  # a quantized Workload quantizes these too; the checkpoints keep them bf16
        assert (sized == checkpoint_bytes(model, label)) == ((name, label) not in approximate), label
