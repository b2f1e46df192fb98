"""Published checkpoint sizes and the weights per GPU of real deployments, next to what costmodel computes
for the same model, checkpoint and split.

The published figures are facts from elsewhere, each with its source; costmodel's come from running the
library (:func:`costmodel.memory.checkpoint_bytes`, :func:`costmodel.memory.replica_memory`). The Memory
page shows the tables, ``docs/memory_table.py`` writes them into docs/models.md, and the tests check that
each costmodel figure is within the stated reason of the published one.

Plain Python, pandas and costmodel (no streamlit), importable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import costmodel as cm
from costmodel.memory import checkpoint_bytes, checkpoint_formats, replica_memory, shipped_checkpoints
from costmodel.params import tensors


@dataclass(frozen=True)
class PublishedCheckpoint:
    """The bytes a Hub repository's safetensors files store (``metadata.total_size`` of its
    ``model.safetensors.index.json``)."""

    model: str
    """Built-in profile with the same weights' shapes."""
    checkpoint: str
    """Name among :func:`costmodel.memory.shipped_checkpoints`."""
    repository: str
    published_bytes: int
    source: str
    mtp_layers: int = 0
    """Multi-token-prediction decoder layers the repository stores beyond the model that serves tokens,
    each with its own embedding, output head, 2d -> d projection and three norms (DeepSeek-V3's
    README_WEIGHTS.md layout), counted here as one more decoder layer of the profile's checkpoint format
    plus those tensors in bf16."""
    note: str = ""


@dataclass(frozen=True)
class PublishedDeployment:
    """Weights one device of a real deployment holds, as the engine logs it."""

    model: str
    checkpoint: str
    hardware: str
    """Profile costmodel sizes the deployment on (the weights per device do not depend on it)."""
    tp: int
    setup: str
    """The deployment as published: devices, engine, split."""
    published_bytes_per_gpu: float
    source: str
    note: str = ""
    engine_layout: str = ""
    """A known engine weight layout (:data:`ENGINE_LAYOUTS`) whose bytes beyond the checkpoint's tensors
    are added in the table's ``with_engine_layout`` column; empty: none is modelled."""
    mla_copies_engine: str | None = None
    """The engine whose W_UK / W_UV copies of an MLA model's ``kv_b_proj``
    (:func:`costmodel.memory.mla_absorb_copy_bytes`) the logged figure includes; None: the logged run kept
    none (it ran MLA unabsorbed, or the model has no MLA)."""


GIB = 2**30


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def vllm_triton_hopper_mxfp4_bytes(model: cm.ModelProfile, tp: int = 1) -> int:
    """Bytes per GPU that vLLM's Triton MXFP4 MoE backend on Hopper holds beyond the checkpoint's expert
    tensors [bytes] (none beyond the routed experts).

    vLLM (``Mxfp4MoEMethod``, https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/quantization/mxfp4.py,
    and ``_swizzle_mxfp4`` in .../quantization/utils/mxfp4_utils.py) converts each expert's bf16 biases
    to fp32 and stores its MXFP4 weights in triton_kernels' Hopper layouts, which pad: the values' packed
    reduction axis to 64 bytes and the other to 256 (``HopperMXValueLayoutTransformation._padded_shape``,
    https://github.com/triton-lang/triton/blob/main/python/triton_kernels/triton_kernels/tensor_details/layout_details/hopper_value.py),
    the scales' rows to 2 x num_warps x 2 x 8 = 256 with vLLM's 8 warps and their count to 2
    (``HopperMXScaleLayoutTransformation``, .../layout_details/hopper_scale.py). Each expert's w13 is
    [2 I, H] and w2 [H, I], with H = d_model and I the expert's intermediate width on this GPU."""
    moe = model.moe
    if moe is None:
        return 0
    h, i = model.d_model, moe.expert_d_ff // tp
    values = (
        _round_up(h // 2, 64) * _round_up(2 * i, 256)
        - (h // 2) * (2 * i)
        + _round_up(i // 2, 64) * _round_up(h, 256)
        - (i // 2) * h
    )
    scales = (
        _round_up(2 * i, 256) * _round_up(h // 32, 2)
        - (2 * i) * (h // 32)
        + _round_up(h, 256) * _round_up(i // 32, 2)
        - h * (i // 32)
    )
    has_biases = any(t.component == "experts" and t.kind == "bias" for t in tensors(model))
    biases = (2 * i + h) * (4 - 2) if has_biases else 0  # fp32 in place of bf16
    return (values + scales + biases) * moe.n_experts * model.n_moe_layers


ENGINE_LAYOUTS = {"vllm-triton-hopper-mxfp4": vllm_triton_hopper_mxfp4_bytes}
"""Engine weight layouts with a model of their bytes beyond the checkpoint's tensors, by name."""

CHECKPOINTS: tuple[PublishedCheckpoint, ...] = (
    PublishedCheckpoint(
        "qwen3-8b",
        "release",
        "Qwen/Qwen3-8B",
        16_381_470_720,
        "https://huggingface.co/Qwen/Qwen3-8B/blob/main/model.safetensors.index.json",
    ),
    PublishedCheckpoint(
        "qwen3-32b",
        "release",
        "Qwen/Qwen3-32B",
        65_524_246_528,
        "https://huggingface.co/Qwen/Qwen3-32B/blob/main/model.safetensors.index.json",
    ),
    PublishedCheckpoint(
        "qwen3-30b-a3b",
        "release",
        "Qwen/Qwen3-30B-A3B",
        61_064_245_248,
        "https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/model.safetensors.index.json",
    ),
    PublishedCheckpoint(
        "qwen3-235b-a22b",
        "release",
        "Qwen/Qwen3-235B-A22B",
        470_187_269_120,
        "https://huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/model.safetensors.index.json",
    ),
    PublishedCheckpoint(
        "gpt-oss-20b",
        "release",
        "openai/gpt-oss-20b",
        13_761_264_768,
        "https://huggingface.co/openai/gpt-oss-20b/blob/main/model.safetensors.index.json",
        note="MXFP4 experts (4-bit values, an 8-bit scale per 32), the rest bf16",
    ),
    PublishedCheckpoint(
        "gpt-oss-120b",
        "release",
        "openai/gpt-oss-120b",
        65_248_815_744,
        "https://huggingface.co/openai/gpt-oss-120b/blob/main/model.safetensors.index.json",
        note="MXFP4 experts (4-bit values, an 8-bit scale per 32), the rest bf16",
    ),
    PublishedCheckpoint(
        "deepseek-v3",
        "release",
        "deepseek-ai/DeepSeek-V3",
        688_586_727_753,
        "https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/model.safetensors.index.json",
        mtp_layers=1,
        note="fp8 in 128 x 128 blocks with an fp32 scale each; 671B main model + the 14B MTP module "
        "(README_WEIGHTS.md); the index also stores the routers' fp32 score-correction biases",
    ),
)

DEPLOYMENTS: tuple[PublishedDeployment, ...] = (
    PublishedDeployment(
        "deepseek-v3",
        "release",
        "h200",
        8,
        "DeepSeek-R1 fp8, TP 8, vLLM (HabanaAI fork) on 8 x Gaudi 2: 'Pre-loading model weights on hpu:0 "
        "took 79.41 GiB of device memory'",
        79.41 * GIB,
        "https://github.com/HabanaAI/vllm-fork/issues/809",
        note="DeepSeek-R1 has DeepSeek-V3's shapes; the same TP 8 split on 8 x H200. vLLM keeps the "
        "small q_a and kv_a down-projections of MLA whole on every GPU, and so does costmodel since "
        "session 14 (memory.REPLICATED_PROJECTIONS): 0.75 GiB of the difference it had. The row counts "
        "the checkpoint only, without vLLM's bf16 W_UK / W_UV copies of kv_b_proj (mla_copies_engine "
        "None). The fork logs this line after get_model (vllm/worker/hpu_model_runner.py, load_model), "
        "and so after process_weights_after_loading, where vLLM makes the copies "
        "(vllm/attention/backends/mla/common.py); but whether the fork's February 2025 build "
        "(v0.6.3.dev2207) ran MLA absorbed on HPU at all is not settled by the sources, and the run "
        "failed in its first forward pass. With vLLM's copies the row would read 79.36 GiB (+0.24 GiB "
        "a GPU), -0.07%",
    ),
    PublishedDeployment(
        "gpt-oss-120b",
        "release",
        "h100-sxm",
        1,
        "gpt-oss-120b on one H100 80GB, vLLM 0.14.1 (Triton MXFP4 backend): 'Model loading took 64.38 "
        "GiB memory'",
        64.38 * GIB,
        "https://github.com/vllm-project/vllm/issues/33155",
        note="vLLM's Triton MXFP4 backend on Hopper stores the experts in triton_kernels' Hopper layouts, "
        "which pad each expert's weights and scales (packed rows of 1,440 -> 1,472 bytes, 5,760 -> 5,888 "
        "and 2,880 -> 3,072 columns), and keeps the expert biases in fp32: +3.41 GiB "
        "(vllm_triton_hopper_mxfp4_bytes, with the sources)",
        engine_layout="vllm-triton-hopper-mxfp4",
    ),
)


def mtp_layer_bytes(model: cm.ModelProfile, checkpoint: str) -> int:
    """Bytes of one multi-token-prediction module as DeepSeek-V3 stores it: one more decoder layer in the
    checkpoint's formats, its own embedding and output head, the 2d -> d eh_proj and three norms in bf16
    [bytes]."""
    longer = model.model_copy(update={"n_layers": model.n_layers + 1})
    if longer.moe is not None and longer.moe.first_dense_layers > longer.n_layers:
        raise ValueError(f"{model.name}: cannot add an MTP layer")
    layer = checkpoint_bytes(longer, checkpoint) - checkpoint_bytes(model, checkpoint)
    d = model.d_model
    return layer + 2 * 2 * model.vocab_size * d + 2 * (2 * d) * d + 3 * 2 * d


def checkpoint_table() -> pd.DataFrame:
    """Published checkpoint sizes and costmodel's, one row per :data:`CHECKPOINTS` entry."""
    rows = []
    for c in CHECKPOINTS:
        model = cm.load_model(c.model)
        served = checkpoint_bytes(model, c.checkpoint)
        total = served + c.mtp_layers * mtp_layer_bytes(model, c.checkpoint)
        rows.append(
            {
                "repository": c.repository,
                "model": c.model,
                "checkpoint": c.checkpoint,
                "published_bytes": c.published_bytes,
                "costmodel_bytes": total,
                "served_model_bytes": served,
                "difference_fraction": (total - c.published_bytes) / c.published_bytes,
                "note": c.note,
                "source": c.source,
            }
        )
    return pd.DataFrame(rows)


def deployment_table() -> pd.DataFrame:
    """Published weights per device of real deployments and costmodel's for the same split."""
    rows = []
    for d in DEPLOYMENTS:
        model = cm.load_model(d.model)
        weight_dtype, component_dtypes = checkpoint_formats(model, d.checkpoint)
        replica = replica_memory(
            model,
            tp=d.tp,
            weight_dtype=weight_dtype,
            component_dtypes=component_dtypes,
            engine=d.mla_copies_engine,
        )
        layout = ENGINE_LAYOUTS[d.engine_layout](model, d.tp) if d.engine_layout else 0
        with_layout = replica.weight_bytes + layout
        rows.append(
            {
                "setup": d.setup,
                "model": d.model,
                "checkpoint": d.checkpoint,
                "hardware": d.hardware,
                "tp": d.tp,
                "published_weight_bytes_per_gpu": d.published_bytes_per_gpu,
                "costmodel_weight_bytes_per_gpu": replica.weight_bytes,
                "difference_fraction": (replica.weight_bytes - d.published_bytes_per_gpu)
                / d.published_bytes_per_gpu,
                "engine_layout": d.engine_layout or "none modelled",
                "with_engine_layout_bytes_per_gpu": with_layout,
                "with_engine_layout_difference_fraction": (with_layout - d.published_bytes_per_gpu)
                / d.published_bytes_per_gpu,
                "fits": replica.weight_bytes < cm.load_hardware(d.hardware).memory_bytes,
                "note": d.note,
                "source": d.source,
            }
        )
    return pd.DataFrame(rows)


def shipped_table() -> pd.DataFrame:
    """Every built-in model's published checkpoints with their formats and costmodel's bytes."""
    rows = []
    for name in cm.list_models():
        model = cm.load_model(name)
        formats = shipped_checkpoints(model)
        if len(formats) == 1 and model.checkpoint is None:
            continue  # bf16 throughout, one release: nothing to tell apart
        for label, fmt in formats.items():
            parts = ", ".join(f"{c} {f}" for c, f in fmt.component_dtypes.items()) or "none"
            rows.append(
                {
                    "model": name,
                    "checkpoint": label,
                    "formats": f"{parts}; rest {fmt.weight_dtype}",
                    "checkpoint_bytes": checkpoint_bytes(model, label),
                    "source": fmt.source,
                }
            )
    return pd.DataFrame(rows)
