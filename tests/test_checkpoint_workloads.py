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
        "component_dtypes": None,
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
def test_the_workload_is_the_checkpoint_to_the_byte(name: str) -> None:
    """Every published checkpoint, each component in its stored format (Workload.component_dtypes): the
    weights estimate() and the planner's engine hold are checkpoint_bytes exactly."""
    model = cm.load_model(name)
    for label in shipped_checkpoints(model):
        formats = workload_formats(model, label)
        own = dict(formats["component_dtypes"] or {})
        if formats["expert_dtype"]:
            own["experts"] = formats["expert_dtype"]
        sized = weight_bytes(model, weight_dtype=str(formats["weight_dtype"]), component_dtypes=own or None)
        assert sized == checkpoint_bytes(model, label), label
        workload = cm.Workload(1, 16, 1, **formats)
        assert workload.component_formats == (formats["component_dtypes"] or {})


def test_gemma4_31b_nvfp4_runs_bf16_attention_and_nvfp4_mlps() -> None:
    """NVIDIA's NVFP4 Gemma-4-31B keeps every attention projection in bf16 (hf_quant_config.json
    exclude_modules: each layer's self_attn): attention reads 2 bytes a parameter and multiplies bf16 x bf16
    at the bf16 peak, the MLPs read NVFP4 and run W4A4 on a GPU with fp4 tensor cores."""
    model, hw = cm.load_model("gemma-4-31b"), cm.load_hardware("b200")
    formats = workload_formats(model, "nvfp4", hw)
    assert formats["weight_dtype"] == "nvfp4"
    assert formats["activation_dtype"] == "nvfp4"
    assert formats["component_dtypes"] == {"attention": "bf16"}
    report = cm.estimate(model, hw, cm.Workload(4, 1024, 128, **formats))
    assert report.weight_bytes_per_gpu == checkpoint_bytes(model, "nvfp4")
    ops = _decode_ops(report)
    bf16 = _decode_ops(cm.estimate(model, hw, cm.Workload(4, 1024, 128)))
    nvfp4 = _decode_ops(cm.estimate(model, hw, cm.Workload(4, 1024, 128, "nvfp4", "nvfp4")))
    for name in ("qkv_proj", "o_proj"):
        assert ops[name].weight_bytes == bf16[name].weight_bytes > nvfp4[name].weight_bytes, name
        assert ops[name].compute_dtype == "bf16"
        assert ops[name].weight_dtype == "bf16"
        assert ops[name].dequant_flop == 0
    for name in ("mlp_up", "mlp_down"):
        assert ops[name].weight_bytes == nvfp4[name].weight_bytes < bf16[name].weight_bytes, name
        assert ops[name].compute_dtype is None
        assert ops[name].weight_dtype is None
    # more bytes to read than all-NVFP4, fewer than all-bf16: the decode step's time lies between
    tpot = {
        f: float(cm.estimate(model, hw, cm.Workload(4, 1024, 128, f, f)).tpot_s) for f in ("nvfp4", "bf16")
    }
    assert tpot["nvfp4"] < float(report.tpot_s) < tpot["bf16"]


def test_deepseek_nvfp4_keeps_its_nvfp4_o_proj_inside_bf16_attention() -> None:
    model = cm.load_model("deepseek-v3")
    formats = workload_formats(model, "nvfp4")
    assert formats["component_dtypes"] == {"attention": "bf16", "attention.o_proj": "nvfp4"}
    ops = _decode_ops(cm.estimate(model, "b200", cm.Workload(4, 1024, 128, **formats), cm.Deployment(tp=8)))
    assert ops["qkv_proj"].weight_dtype == "bf16"
    assert ops["o_proj"].weight_dtype is None


@pytest.mark.parametrize(
    ("component_dtypes", "message"),
    [
        ({"experts": "nvfp4"}, "expert_dtype"),
        ({"attn": "bf16"}, "unknown component 'attn'"),
        ({"attention": "bf17"}, "bf17"),
        ("attention", "must map components to formats"),
    ],
)
def test_a_workload_refuses_component_formats_it_cannot_run(component_dtypes: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cm.Workload(weight_dtype="nvfp4", component_dtypes=component_dtypes)
