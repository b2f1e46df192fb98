"""The formats the built-in models' published checkpoints ship in, and their bytes against the published
checkpoint sizes (``metadata.total_size`` of each Hub repository's ``model.safetensors.index.json``: the
sum of every stored tensor's bytes, file headers excluded)."""

from __future__ import annotations

import pytest

import costmodel
from costmodel.dtypes import get_dtype, matrix_bytes
from costmodel.errors import UnknownNameError
from costmodel.memory import RELEASE, checkpoint_bytes, shipped_checkpoints, weight_bytes, workload_formats
from costmodel.params import tensors

# name -> (published total_size [bytes], source). These checkpoints store exactly the tensors the profile
# counts (no multi-token-prediction module, no vision tower), so the bytes must agree to the byte.
PUBLISHED_EXACT = {
    "qwen3-8b": (
        16_381_470_720,
        "https://huggingface.co/Qwen/Qwen3-8B/blob/main/model.safetensors.index.json",
    ),
    "qwen3-32b": (
        65_524_246_528,
        "https://huggingface.co/Qwen/Qwen3-32B/blob/main/model.safetensors.index.json",
    ),
    "qwen3-30b-a3b": (
        61_064_245_248,
        "https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/model.safetensors.index.json",
    ),
    "qwen3-235b-a22b": (
        470_187_269_120,
        "https://huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/model.safetensors.index.json",
    ),
    "gpt-oss-20b": (
        13_761_264_768,
        "https://huggingface.co/openai/gpt-oss-20b/blob/main/model.safetensors.index.json",
    ),
    "gpt-oss-120b": (
        65_248_815_744,
        "https://huggingface.co/openai/gpt-oss-120b/blob/main/model.safetensors.index.json",
    ),
}


@pytest.mark.parametrize(("name", "published"), [(k, v[0]) for k, v in PUBLISHED_EXACT.items()])
def test_release_bytes_equal_the_published_checkpoint(name: str, published: int) -> None:
    assert checkpoint_bytes(costmodel.load_model(name)) == published


def test_deepseek_v3_fp8_bytes_with_its_mtp_module_equal_the_published_checkpoint() -> None:
    """DeepSeek-V3's repository stores 671B main-model parameters and a 14B multi-token-prediction module
    (README_WEIGHTS.md, https://github.com/deepseek-ai/DeepSeek-V3/blob/main/README_WEIGHTS.md), whose
    total_size is 688,586,727,753 bytes
    (https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/model.safetensors.index.json). The profile
    serves tokens without the MTP module; here it is added as README_WEIGHTS describes it: one more MoE
    decoder layer in the checkpoint's fp8 blocks, its own copies of the embedding and the output head,
    the 2d -> d eh_proj and three norms (enorm, hnorm, shared_head.norm), all in bf16. The tolerance, 1e-4
    (69 MB), covers what the index stores beyond the parameters transformers counts (the routers'
    e_score_correction_bias buffers in fp32: 59 x 256 x 4 bytes); the difference is 12 MB (0.002 %)."""
    model = costmodel.load_model("deepseek-v3")
    d = model.d_model
    mtp_layer = checkpoint_bytes(model.model_copy(update={"n_layers": 62})) - checkpoint_bytes(model)
    embedding_and_head = 2 * 2 * model.vocab_size * d
    eh_proj, norms = 2 * d * 2 * d, 3 * 2 * d
    total = checkpoint_bytes(model) + mtp_layer + embedding_and_head + eh_proj + norms
    assert total == pytest.approx(688_586_727_753, rel=1e-4)


def test_nvfp4_checkpoint_bytes_count_every_scale() -> None:
    """Qwen3-235B-A22B-NVFP4 (ModelOpt, every linear but the head and routers): 4-bit values, an fp8 scale
    per 16 values of a row and an fp32 weight_scale_2 per tensor, counted here matrix by matrix from the
    format's definition; the rest stays bf16."""
    model = costmodel.load_model("qwen3-235b-a22b")
    expected = 0
    for t in tensors(model):
        per_copy = t.numel // t.count
        if t.kind == "matmul" and t.component in ("attention", "experts"):
            rows, cols = per_copy // t.shape[-1], t.shape[-1]
            expected += t.count * (rows * cols // 2 + rows * (cols // 16) + 4)
        else:
            expected += t.count * 2 * per_copy
    assert checkpoint_bytes(model, "nvfp4") == expected


def test_deepseek_nvfp4_quantizes_only_o_proj_of_attention() -> None:
    model = costmodel.load_model("deepseek-v3")
    fmt = shipped_checkpoints(model)["nvfp4"]
    o_proj = next(t for t in tensors(model) if t.component == "attention" and t.name.startswith("o_proj"))
    others = [
        t for t in tensors(model) if t.component == "attention" and t.kind == "matmul" and t is not o_proj
    ]
    bf16_o_proj = model.model_copy(update={"checkpoints": (fmt.model_copy(update={"attention_out": None}),)})
    saved = checkpoint_bytes(bf16_o_proj, "nvfp4") - checkpoint_bytes(model, "nvfp4")
    assert saved == o_proj.count * (2 * o_proj.numel // o_proj.count - matrix_bytes(o_proj.shape, "nvfp4"))
    assert others  # q_a, q_b, kv_a, kv_b stay bf16


BUILTINS = costmodel.list_models()


@pytest.mark.parametrize("name", BUILTINS)
def test_every_shipped_checkpoint_is_sized_and_uniform_ones_run_as_one_workload_format(name: str) -> None:
    """A checkpoint whose quantized components share one format is exactly the Workload that runs it
    (weight_bytes with that format), so estimate(), size() and the planner size it exactly."""
    model = costmodel.load_model(name)
    for label, fmt in shipped_checkpoints(model).items():
        size = checkpoint_bytes(model, label)
        assert 0 < size <= weight_bytes(model, weight_dtype="fp32")
        formats = workload_formats(model, label)
        weight = str(formats["weight_dtype"])
        assert get_dtype(str(formats["activation_dtype"])).bits >= 4
        present = {t.component for t in tensors(model) if t.kind == "matmul"}
        covers_all = {c for c in fmt.component_dtypes if c != "attention.o_proj"} >= (
            present & {"attention", "mlp", "experts", "shared_experts"}
        )
        if (
            len(set(fmt.component_dtypes.values())) == 1
            and covers_all
            and not present & {"linear_attention", "ssm"}
        ):
            assert size == weight_bytes(model, weight_dtype=weight), label


def test_an_unknown_checkpoint_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="Known: fp8, nvfp4, release"):
        checkpoint_bytes(costmodel.load_model("qwen3-235b-a22b"), "fp4")


def test_checkpoints_need_distinct_names() -> None:
    model = costmodel.load_model("qwen3-8b")
    fmt = model.checkpoints[0]
    with pytest.raises(ValueError, match="each needs its own name"):
        costmodel.ModelProfile(**(model.model_dump() | {"checkpoints": [fmt.model_dump(), fmt.model_dump()]}))
    assert RELEASE == "release"


def test_deepseek_nvfp4_v2_bytes_with_its_bf16_mtp_layer_equal_nvidias_385() -> None:
    """nvidia/DeepSeek-R1-0528-FP4-v2 (the InferenceX fp4 rows' checkpoint; deepseek-v3.yaml's ``nvfp4``):
    NVIDIA's Triton + TensorRT-LLM deployment guide ("Example: DeepSeek-R1 in NVFP4 on 8x B200", the
    Triton server docs' 'Deploying an LLM with Triton and TRT-LLM') says quantization "brings the
    checkpoint from 642 GB (FP8) down to 385 GB". Its unit is GiB: the FP8 release's published total,
    688,586,727,753 bytes (model.safetensors.index.json, the test above), is 641.3 GiB (688.6 decimal
    GB). ModelOpt's DeepSeek PTQ (examples/deepseek/ptq.py) excludes the MTP layer (``layers.61*``) from
    quantization, so the checkpoint holds it in bf16 with its own embedding and head copies, eh_proj and
    norms. costmodel's count of the serving model (the MTP layer out) plus that bf16 MTP module must give
    the guide's 385 within its rounding to whole units (the same guide's 642 sits 0.7 GiB above the exact
    641.3): 1 GiB."""
    model = costmodel.load_model("deepseek-v3")
    d = model.d_model
    gib = 2.0**30
    assert 688_586_727_753 / gib == pytest.approx(642, abs=1.0)  # the guide's unit
    bf16 = {"weight_dtype": "bf16"}
    mtp_layer = weight_bytes(model.model_copy(update={"n_layers": 62}), **bf16) - weight_bytes(model, **bf16)
    embedding_and_head = 2 * 2 * model.vocab_size * d
    eh_proj, norms = 2 * d * 2 * d, 3 * 2 * d
    total = checkpoint_bytes(model, "nvfp4") + mtp_layer + embedding_and_head + eh_proj + norms
    assert total / gib == pytest.approx(385, abs=1.0)
