"""Bytes: weights, KV cache, activations, training state, and whether it all fits on a device.

Weights and KV cache are exact integers (given the storage layout stated in :mod:`costmodel.dtypes`);
activations are a model of what a framework keeps alive, with its assumptions stated per function.

Departures from the seed notes (seed 003, "Memory Requirements"):

- KV cache: the seed's 2 B S L d b assumes multi-head attention. With grouped-query attention the
  width is 2 H_kv d_h, not 2 d (Llama-3-8B: 8 KV heads -> 1/4 of the seed's figure); MLA caches
  ``kv_lora_rank + qk_rope_head_dim`` per token and layer; a sliding window caps S; an SSM keeps a state
  that does not grow with S. The seed's LLaMA-7B example, 2 x 1 x 2048 x 32 x 4096 x 2 =
  1,073,741,824 bytes, is exact (it is 1 GiB, "1.07 GB").
- Training: the seed's 4 x M_weights counts weights, gradients and two Adam moments at the weights'
  precision. Mixed-precision Adam keeps 16 bytes per parameter (2 bf16 weight + 2 bf16 gradient +
  12 fp32 master weight and moments; Rajbhandari et al. 2020, ZeRO §3), i.e. 8 x M_weights in bf16.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from costmodel import checks
from costmodel.dtypes import check_exact_bytes, get_dtype, map_dtypes, matrix_bytes, storage_bytes
from costmodel.errors import CostmodelError, UnknownNameError
from costmodel.flops import Recompute
from costmodel.params import Component, Tensor, param_count, tensors
from costmodel.specs import NORMS_PER_LAYER, AttentionSpan, CheckpointFormat, HardwareProfile, ModelProfile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

QUANTIZABLE: tuple[Component, ...] = (
    "attention",
    "linear_attention",
    "mlp",
    "experts",
    "shared_experts",
    "ssm",
)
"""Components whose matmul weights weight-only quantization converts (GPTQ/AWQ/bitsandbytes practice);
embeddings, the output head, routers, norms and biases stay in ``keep_dtype``."""

UNQUANTIZED_PROJECTIONS: frozenset[str] = frozenset({"indexer_weights_proj"})
"""Projections of a quantizable component that the engines build without a quantization method, so they
stay in ``keep_dtype`` whatever the checkpoint: the lightning indexer's head-gate projection
(``weights_proj``, a ``ReplicatedLinear`` with ``quant_config=None`` in SGLang's ``Indexer.__init__``,
python/sglang/srt/layers/attention/nsa/nsa_indexer.py, https://github.com/sgl-project/sglang, and in
vLLM's DeepSeek-V3.2 ``Indexer``, vllm/model_executor/models/deepseek_v2.py; GLM-5-FP8's
quantization_config leaves it unconverted too)."""


Sparsity = Literal["none", "2:4"]


def tensor_bytes(
    t: Tensor,
    *,
    weight_dtype: str = "bf16",
    group_size: int | None = None,
    keep_dtype: str = "bf16",
    sparsity: Sparsity = "none",
    component_dtypes: Mapping[str, str] | None = None,
) -> int:
    """Bytes of one copy of tensor ``t`` stored as :func:`weight_bytes` stores it [bytes]."""
    checks.choice("sparsity", sparsity, get_args(Sparsity))
    n = t.numel // t.count
    compressible = _compressible(t)
    dtype = stored_dtype(
        t, weight_dtype=weight_dtype, keep_dtype=keep_dtype, component_dtypes=component_dtypes
    )
    if compressible and sparsity == "2:4":
        from costmodel.compression import nm_sparse_bytes

        return int(nm_sparse_bytes(n, n=2, m=4, value_dtype=dtype))
    if compressible:
        return matrix_bytes(t.shape, dtype, group_size=group_size)
    return int(storage_bytes(n, dtype, group_size=0))


def _compressible(t: Tensor) -> bool:
    return (
        t.kind == "matmul"
        and t.component in QUANTIZABLE
        and t.name.split(".")[0] not in UNQUANTIZED_PROJECTIONS
    )


def stored_dtype(
    t: Tensor,
    *,
    weight_dtype: str = "bf16",
    keep_dtype: str = "bf16",
    component_dtypes: Mapping[str, str] | None = None,
) -> str:
    """The format tensor ``t`` is stored in (:func:`tensor_bytes`): ``weight_dtype`` for the matmul weights of
    :data:`QUANTIZABLE` components (or their component's / projection's own format in ``component_dtypes``),
    ``keep_dtype`` for what a quantized format leaves alone."""
    compressible = _compressible(t)
    dtype = weight_dtype if compressible or not get_dtype(weight_dtype).quantized else keep_dtype
    if compressible and component_dtypes:
        # "attention.o_proj": one projection of a component, before the component's own format
        projection = f"{t.component}.{t.name.split('.')[0]}"
        dtype = component_dtypes.get(projection, component_dtypes.get(t.component, dtype))
    return dtype


def weight_bytes(
    model: ModelProfile,
    *,
    weight_dtype: str = "bf16",
    group_size: int | None = None,
    keep_dtype: str = "bf16",
    sparsity: Sparsity = "none",
    component_dtypes: Mapping[str, str] | None = None,
) -> int:
    """Bytes of all parameters [bytes].

    Parameters
    ----------
    model : ModelProfile
    weight_dtype : str
        Storage format of the weights. A float format (fp32/bf16/fp16) applies to every parameter; a
        quantized one (fp8, int8, int4, nf4, ternary, binary) to the matmul weights of
        :data:`QUANTIZABLE` components, with per-group scale metadata (see :mod:`costmodel.dtypes`).
    group_size : int, optional
        Quantization group size [elements]; default: the format's.
    keep_dtype : str
        Format of what quantization leaves alone (embeddings, head, norms, biases, routers).
    sparsity : {"none", "2:4"}
        2:4 structured sparsity of the same matmul weights: half the values plus a 2-bit position per
        kept value (NVIDIA's sparse tensor-core layout; :func:`costmodel.compression.nm_sparse_bytes`).
    component_dtypes : mapping, optional
        Format of the matmul weights of some components, overriding ``weight_dtype`` for them, e.g.
        ``{"experts": "mxfp4"}`` (gpt-oss as shipped).
    """
    checks.choice("sparsity", sparsity, get_args(Sparsity))
    get_dtype(keep_dtype)
    # scale groups never straddle two tensors: size one copy, then multiply
    return sum(
        tensor_bytes(
            t,
            weight_dtype=weight_dtype,
            group_size=group_size,
            keep_dtype=keep_dtype,
            sparsity=sparsity,
            component_dtypes=component_dtypes,
        )
        * t.count
        for t in tensors(model)
    )


def _bytes_where(
    model: ModelProfile,
    keep: Callable[[Tensor], bool],
    *,
    weight_dtype: str,
    sparsity: Sparsity,
    keep_dtype: str,
    component_dtypes: Mapping[str, str] | None,
) -> int:
    """Bytes of the tensors of ``model`` that ``keep`` selects, all layers, each as :func:`tensor_bytes`
    stores it [bytes]."""
    return sum(
        tensor_bytes(
            t,
            weight_dtype=weight_dtype,
            keep_dtype=keep_dtype,
            sparsity=sparsity,
            component_dtypes=component_dtypes,
        )
        * t.count
        for t in tensors(model)
        if keep(t)
    )


def expert_weight_bytes(
    model: ModelProfile,
    *,
    weight_dtype: str = "bf16",
    sparsity: Sparsity = "none",
    keep_dtype: str = "bf16",
    component_dtypes: Mapping[str, str] | None = None,
) -> int:
    """Bytes of the routed experts' weights, all MoE layers [bytes] (0 for a dense model): the part of
    :func:`weight_bytes` that MoE tensor and expert parallelism split over every device of the MoE layer
    (:class:`costmodel.specs.Deployment`); shared experts and the router are not in it."""
    return _bytes_where(
        model,
        lambda t: t.component == "experts",
        weight_dtype=weight_dtype,
        sparsity=sparsity,
        keep_dtype=keep_dtype,
        component_dtypes=component_dtypes,
    )


REPLICATED_PROJECTIONS: frozenset[str] = frozenset(
    {
        "q_a_proj",
        "q_a_norm",
        "kv_a_proj",
        "kv_a_norm",
        "indexer_wq_b",
        "indexer_wk",
        "indexer_k_norm",
        "indexer_weights_proj",
    }
)
"""Attention weights every tensor-parallel rank holds whole: MLA's down projections and their norms
(SGLang's ``fused_qkv_a_proj_with_mqa``, a ``ReplicatedLinear``; vLLM's ``fused_qkv_a_proj``,
``disable_tp=True``; TensorRT-LLM's ``kv_a_proj_with_mqa``, no ``tensor_parallel_mode``) and the lightning
indexer (``ReplicatedLinear`` projections; :mod:`costmodel.ops` prices both so)."""


def replicated_weight_bytes(
    model: ModelProfile,
    *,
    weight_dtype: str = "bf16",
    sparsity: Sparsity = "none",
    keep_dtype: str = "bf16",
    component_dtypes: Mapping[str, str] | None = None,
) -> int:
    """Bytes of the attention weights that tensor parallelism does not split
    (:data:`REPLICATED_PROJECTIONS`), all layers [bytes]: the part of :func:`weight_bytes` each TP rank
    holds whole."""
    return _bytes_where(
        model,
        lambda t: t.component == "attention" and t.name.split(".")[0] in REPLICATED_PROJECTIONS,
        weight_dtype=weight_dtype,
        sparsity=sparsity,
        keep_dtype=keep_dtype,
        component_dtypes=component_dtypes,
    )


ENGINES = ("vllm", "sglang", "trtllm")
"""Serving engines whose load-time weight copies :func:`mla_absorb_copy_bytes` knows (the names of
:class:`costmodel.specs.Efficiency`'s ``kernel_engine``)."""
ENGINE_VENDORS: dict[str, tuple[str, ...]] = {"trtllm": ("nvidia",)}
"""Device vendors an engine runs on, for the engines that do not run on every vendor: TensorRT-LLM builds
for NVIDIA GPUs only (CUDA, TensorRT; https://github.com/NVIDIA/TensorRT-LLM, README)."""
MLA_COPY_DTYPE_BYTES = 2.0
"""Bytes per element of a dequantized MLA up-projection copy: the model's 16-bit dtype (bf16) [bytes]."""


@dataclass(frozen=True)
class MlaAbsorbFormat:
    """How an engine holds and multiplies W_UK / W_UV for the absorbed MLA decode (DeepSeek-V2 §2.1.2), per
    element: what memory counts beside ``kv_b_proj`` and what each of the two per-head bmm (``q_nope x
    W_UK``, ``latent x W_UV``) reads and runs, from one rule (:func:`mla_absorb_format`), so the bytes a
    replica holds (:func:`mla_absorb_copy_bytes`) and the bytes and peak the decode is timed with
    (:mod:`costmodel.kernel_times`, :mod:`costmodel.roofline`) cannot disagree on the format."""

    copy_bytes: tuple[float, float]
    """Bytes kept per element of W_UK and of W_UV besides ``kv_b_proj`` itself [bytes] (0: a view)."""
    bmm_dtype: Literal["bf16", "fp8"]
    """The tensor-core format the bmm multiplies in (its weights and inputs)."""
    weight_bytes: float
    """Bytes per weight element the bmm reads [bytes] (2: a 16-bit tensor; 1: fp8)."""
    input_bytes: float
    """Bytes per input element the bmm reads [bytes] (its output is bf16, 2 bytes, in every engine)."""
    quantize_bytes: float = 0.0
    """Bytes per input element moved by the activation quantization before an fp8 bmm [bytes]: SGLang's
    ``per_tensor_quant_mla_fp8`` reads the bf16 input twice (the absmax pass, then the quantize pass) and
    writes fp8 (2 + 2 + 1); TensorRT-LLM's ``fp8_batched_quantize_1x128_permute102`` reads it once (2 + 1)."""
    output_copy_bytes: float = 0.0
    """Bytes per output element moved after the bmm [bytes]: TensorRT-LLM's SM 90 path writes a new tensor
    and ``out.copy_`` s it into the attention's buffer (2 + 2)."""
    weight_pass_bytes: float = 0.0
    """Bytes per weight element moved by every call before the bmm [bytes]: SGLang on ROCm multiplies
    ``w_kc.to(torch.bfloat16) * w_scale`` each call (an fp8 copy: 1 + 2 for the cast, 2 + 2 for the
    scale; a bf16 one: 2 + 2 for the scale by 1.0)."""
    extra_kernels: float = 0.0
    """Kernels each bmm runs besides the bmm itself [-] (the quantization passes, the copy, the casts)."""
    measured_kernel: str | None = None
    """Name (part of a ``kernel_source``) of the public tables' measurement of the whole fp8 call, where
    one exists: TensorRT-LLM's ``fp8_block_scaling_bmm_out`` (quantize, bmm, copy), which the kernel
    models then time the call with (:func:`costmodel.kernel_times._mla_up_s`)."""


@lru_cache(maxsize=256)
def mla_absorb_format(
    engine: str, kv_b_dtype: str, *, rocm: bool = False, blackwell: bool = False
) -> MlaAbsorbFormat:
    """How ``engine`` holds and multiplies W_UK / W_UV for the absorbed MLA decode with ``kv_b_proj``
    stored in ``kv_b_dtype``, on an AMD GPU (``rocm``) or a Blackwell one (``blackwell``, compute
    capability 10.x; both False: an NVIDIA GPU before Blackwell). ``kv_b_proj`` stays loaded in every
    engine: the prefill's naive form runs it. From the engines' weight loading and decode:

    - **vLLM** (``process_weights_after_loading`` and ``_v_up_proj`` / ``_q_proj_and_k_up_proj``, first in
      vllm/v1/attention/backends/mla/common.py, since moved to
      https://github.com/vllm-project/vllm/blob/90b0a26e0e1a8ae3ba34e9e0ea514411f1a6a182/vllm/model_executor/layers/attention/mla_attention.py,
      where the rule below still holds): an unquantized ``kv_b_proj`` is split into ``W_UK_T`` and
      ``W_UV`` by views of its own weight (no copy, 0); a quantized one is dequantized once into a 16-bit
      tensor ("we currently do not have quantized bmm's ... we just store fp16/bf16 copies"), which both
      views keep alive (2 bytes an element). The bmm are ``torch.bmm`` in 16 bits. On ROCm with
      ``VLLM_ROCM_USE_AITER=1`` (off by default, and then ``VLLM_ROCM_USE_AITER_FP8BMM`` on by default)
      the copies are fp8 ``W_K`` / ``W_V`` and the bmm fp8 instead (``is_rocm_aiter_fp8bmm_enabled``);
      the default is what is counted.
    - **SGLang** (``DeepseekV2ForCausalLM.post_load_weights``, ``forward_absorb_prepare`` /
      ``forward_absorb_core``, python/sglang/srt/models/deepseek_v2.py,
      https://github.com/sgl-project/sglang/blob/3e4a39ee73308590c5c753108bdcb8d333f7f1c6/python/sglang/srt/models/deepseek_v2.py):
      ``w_kc`` / ``w_vc`` are contiguous copies (``.contiguous()`` of the transposed split) of the weight
      after its conversion: per-tensor and per-channel fp8 (any fp8 weight without ``weight_block_size``)
      requantized to one tensor scale (``channel_quant_to_tensor_quant``, 1 byte), block fp8 dequantized to
      bf16 on CUDA (``block_quant_dequant``, 2; DeepGEMM's grouped fp8 bmm only with ``SGL_USE_DEEPGEMM_BMM``,
      off by default) and requantized per tensor on ROCm (``block_quant_to_tensor_quant``, 1), anything else
      in 16 bits (a bf16 weight copied, AWQ / int8 dequantized: 2). On CUDA an fp8 ``w_kc`` runs ``bmm_fp8``
      on inputs quantized per tensor by ``per_tensor_quant_mla_fp8`` (two Triton kernels,
      python/sglang/srt/layers/quantization/fp8_kernel.py); a 16-bit one ``torch.bmm``. On ROCm every bmm is
      ``torch.bmm`` in bf16 of ``w_kc.to(torch.bfloat16) * w_scale``, made on each call ("TODO: add bmm_fp8 to
      ROCm"; ``w_scale`` is 1.0 for a 16-bit weight).
    - **TensorRT-LLM** (``MLA.create_weights`` and ``fp8_block_scaling_bmm_out``,
      https://github.com/NVIDIA/TensorRT-LLM/blob/00547a25ac61d28d1dabb2e47383a1af605ebb59/tensorrt_llm/_torch/modules/attention.py,
      whose decode calls ``fp8_block_scaling_bmm_out`` on an fp8 ``k_b_proj_trans`` / ``v_b_proj`` with
      their ``*_dequant`` copies):
      ``k_b_proj_trans``, W_UK transposed, is a parameter of its own, fp8 with a block-fp8 ``kv_b_proj``
      (1) and the model's dtype otherwise (2); ``v_b_proj`` "will view into self.kv_b_proj.weight" (0).
      A 16-bit ``k_b_proj_trans`` runs ``torch.ops.trtllm.bmm_out``. A block-fp8 one runs
      ``fp8_block_scaling_bmm_out``: on SM 89 / 90 ``fp8_batched_quantize_1x128_permute102`` of the
      input, the fp8 block-scaled bmm into a new tensor, and ``out.copy_`` of it; on Blackwell
      (``is_sm_100f``: compute capability 10.x) ``torch.bmm`` in bf16 of the bf16
      ``k_b_proj_trans_dequant`` and ``v_b_proj_dequant``, two more copies (2 each). The public tables
      time both: TensorRT-LLM 1.3.0rc20's ``mla_bmm`` rows on the H100 (``trtllm_fp8_block_scaling_bmm_out``,
      2.1 x the bf16 bmm's time at the median row) and the B200 (``trtllm_bmm_out_dequant_bf16``, the bf16
      bmm's time within 0.2 % at the median row).

    TensorRT-LLM's figures are sourced for a bf16 and a block-fp8 ``kv_b_proj`` only (the cited code's two
    cases); for other formats (per-tensor fp8, nvfp4, ...) they apply the same rule, unverified. It does
    not run on AMD GPUs: ``rocm`` with ``"trtllm"`` is refused. Block and tensor scales (one fp32 per
    128 x 128 block at most) are left out."""
    checks.choice("engine", engine, ENGINES)
    vendors = ENGINE_VENDORS.get(engine)
    if rocm and vendors is not None and "amd" not in vendors:
        raise CostmodelError(f"engine {engine!r} does not run on AMD GPUs (rocm=True)")
    dtype = get_dtype(kv_b_dtype)
    copy = MLA_COPY_DTYPE_BYTES
    bf16 = MlaAbsorbFormat((0.0, 0.0), "bf16", copy, copy)
    if engine == "vllm":
        return replace(bf16, copy_bytes=(copy, copy) if dtype.quantized else (0.0, 0.0))
    block = kv_b_dtype == "fp8_block"
    if engine == "sglang":
        per_tensor = kv_b_dtype in ("fp8", "fp8_channel") or (block and rocm)
        own = 1.0 if per_tensor else (dtype.bits / 8 if not dtype.quantized else copy)
        if rocm:  # torch.bmm of w_kc.to(torch.bfloat16) * w_scale, made on every call
            cast = (own + copy, 1.0) if own < copy else (0.0, 0.0)
            return replace(
                bf16, copy_bytes=(own, own), weight_pass_bytes=cast[0] + 2 * copy, extra_kernels=1 + cast[1]
            )
        if per_tensor:  # per_tensor_quant_mla_fp8 (absmax, then quantize), then bmm_fp8
            return MlaAbsorbFormat(
                (own, own), "fp8", 1.0, 1.0, quantize_bytes=2 * copy + 1.0, extra_kernels=2.0
            )
        return replace(bf16, copy_bytes=(own, own))
    if block and blackwell:  # torch.bmm of the bf16 k_b_proj_trans_dequant / v_b_proj_dequant
        return replace(bf16, copy_bytes=(1.0 + copy, copy))
    if block:  # fp8_batched_quantize_1x128_permute102, fp8_block_scaling_bmm_out, out.copy_
        return MlaAbsorbFormat(
            (1.0, 0.0),
            "fp8",
            1.0,
            1.0,
            quantize_bytes=copy + 1.0,
            output_copy_bytes=2 * copy,
            extra_kernels=2.0,
            measured_kernel="fp8_block_scaling_bmm",
        )
    return replace(bf16, copy_bytes=(copy, 0.0))


def mla_absorb_bytes_per_element(
    engine: str, kv_b_dtype: str, *, rocm: bool = False, blackwell: bool = False
) -> tuple[float, float]:
    """Bytes an engine keeps per element of ``kv_b_proj``'s key part (W_UK) and value part (W_UV) besides
    ``kv_b_proj`` itself, for the absorbed MLA decode, with ``kv_b_proj`` stored in ``kv_b_dtype`` [bytes]:
    :attr:`MlaAbsorbFormat.copy_bytes` of :func:`mla_absorb_format` (which cites each engine's code), the
    same rule the decode's bmm are timed by."""
    return mla_absorb_format(engine, kv_b_dtype, rocm=rocm, blackwell=blackwell).copy_bytes


def device_kind(hardware: HardwareProfile | None) -> dict[str, bool]:
    """``rocm`` (an AMD GPU) and ``blackwell`` (compute capability 10.x) of ``hardware`` for
    :func:`mla_absorb_format` (None: an NVIDIA GPU before Blackwell)."""
    if hardware is None:
        return {"rocm": False, "blackwell": False}
    capability = hardware.datasheet.cuda_compute_capability
    return {
        "rocm": hardware.vendor == "amd",
        "blackwell": capability is not None and capability.value.split(".")[0] == "10",
    }


def check_engine_vendor(engine: str, hardware: HardwareProfile | None) -> None:
    """Refuse an engine on a device whose vendor it does not run on (:data:`ENGINE_VENDORS`): TensorRT-LLM
    on an AMD GPU or a TPU. ``hardware`` None (an NVIDIA GPU) is accepted."""
    vendors = ENGINE_VENDORS.get(engine)
    if hardware is not None and vendors is not None and hardware.vendor not in vendors:
        raise CostmodelError(
            f"engine {engine!r} does not run on {hardware.name} ({hardware.vendor} hardware): it runs on "
            f"{', '.join(vendors)} devices only; use 'vllm' or 'sglang'"
        )


def mla_absorb_copy_bytes(
    model: ModelProfile,
    *,
    engine: str = "vllm",
    weight_dtype: str = "bf16",
    keep_dtype: str = "bf16",
    component_dtypes: Mapping[str, str] | None = None,
    hardware: HardwareProfile | None = None,
) -> float:
    """Bytes of the W_UK / W_UV copies ``engine`` keeps beside an MLA model's ``kv_b_proj`` for the absorbed
    decode, all layers and heads [bytes] (0 for other models): per element of ``kv_b_proj`` as
    :func:`mla_absorb_bytes_per_element` says, over its heads' key (``qk_nope_head_dim``) and value
    (``v_head_dim``) rows. Split over tensor parallelism with ``kv_b_proj``'s heads (a column-parallel layer
    in every engine). DeepSeek-V3 stored in fp8 under vLLM: 61 layers x 512 x 128 x 256 x 2 bytes = 2.05 GB
    a replica."""
    checks.choice("engine", engine, ENGINES)
    check_engine_vendor(engine, hardware)
    if model.mla is None:
        return 0.0
    own = tuple(sorted(component_dtypes.items())) if component_dtypes else None
    return _mla_absorb_copy_bytes(model, engine, weight_dtype, keep_dtype, own, **device_kind(hardware))


@lru_cache(maxsize=512)
def _mla_absorb_copy_bytes(
    model: ModelProfile,
    engine: str,
    weight_dtype: str,
    keep_dtype: str,
    own: tuple[tuple[str, str], ...] | None,
    *,
    rocm: bool,
    blackwell: bool,
) -> float:
    """:func:`mla_absorb_copy_bytes`, once per model, engine, formats and device kind (an engine sizes its
    memory on every ``max_concurrency`` call)."""
    mla = model.mla
    assert mla is not None
    nope, v = mla.qk_nope_head_dim, mla.v_head_dim
    formats = dict(own) if own else None
    total = 0.0
    for t in tensors(model):
        if t.component != "attention" or t.name != "kv_b_proj.weight":
            continue
        dtype = stored_dtype(t, weight_dtype=weight_dtype, keep_dtype=keep_dtype, component_dtypes=formats)
        k, vb = mla_absorb_bytes_per_element(engine, dtype, rocm=rocm, blackwell=blackwell)
        total += t.numel * (nope * k + v * vb) / (nope + v)
    return total


RELEASE = "release"
"""The name :func:`shipped_checkpoints` gives the checkpoint the profile itself describes."""


def shipped_checkpoints(model: ModelProfile) -> dict[str, CheckpointFormat]:
    """Every published checkpoint of ``model`` by name: ``"release"`` (``model.checkpoint``, or bf16
    throughout when the profile has none), then ``model.checkpoints`` (e.g. ``"fp8"``, ``"nvfp4"``)."""
    release = model.checkpoint or CheckpointFormat(source=model.source)
    return {RELEASE: release} | {str(c.name): c for c in model.checkpoints}


def checkpoint_formats(model: ModelProfile, name: str = RELEASE) -> tuple[str, dict[str, str]]:
    """(weight_dtype, component_dtypes) that store ``model``'s weights as its published checkpoint
    ``name`` does (:func:`shipped_checkpoints`), for :func:`weight_bytes`, :func:`replica_memory`,
    :func:`fit` and :func:`costmodel.estimate.size`."""
    formats = shipped_checkpoints(model)
    if name not in formats:
        raise UnknownNameError(f"checkpoint of {model.name}", name, list(formats))
    return formats[name].weight_dtype, formats[name].component_dtypes


CHECKPOINT_COMPONENTS: tuple[Component, ...] = ("attention", "mlp", "shared_experts")
"""The components other than the routed experts whose formats a published checkpoint may set (and a
:class:`costmodel.specs.Workload` with them, ``component_dtypes``)."""


def workload_formats(
    model: ModelProfile, name: str = RELEASE, hardware: HardwareProfile | None = None
) -> dict[str, Any]:
    """The :class:`costmodel.specs.Workload` formats that run ``model``'s published checkpoint ``name``
    (:func:`shipped_checkpoints`) as stored: ``weight_dtype``, ``activation_dtype``, ``expert_dtype``,
    ``expert_activation_dtype`` and ``component_dtypes`` (None where nothing is stored apart), e.g.
    ``Workload(4, 1024, 128, **workload_formats(model, "nvfp4", hardware))``. The weights come out as the
    checkpoint stores them, to the byte (:func:`checkpoint_bytes`).

    - ``weight_dtype``: the quantized format that stores most of the attention, dense-MLP and
      shared-expert matmul parameters (their majority format where none is quantized); those components
      stored otherwise are ``component_dtypes`` (NVIDIA's NVFP4 Gemma-4-31B: NVFP4 with
      ``{"attention": "bf16"}``; its NVFP4 DeepSeek-V3: NVFP4 with bf16 attention but an NVFP4 o_proj).
    - Routed experts: exactly in their stored format (``expert_dtype``; gpt-oss: bf16 everything, MXFP4
      experts).
    - Inputs (``activation_dtype``): the checkpoint's intended kernels where ``hardware`` (None: any) has
      the tensor cores for them: fp8 inputs for fp8 weights (W8A8), NVFP4 inputs for NVFP4 weights (W4A4,
      the fp4 peak); a component kept in bf16 runs bf16 x bf16. On a GPU without them the weights run
      weight-only with bf16 inputs, as vLLM serves such checkpoints there (Marlin:
      ``is_fp4_marlin_supported`` needs only sm80,
      https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/quantization/utils/marlin_utils_fp4.py;
      FP8 likewise, .../utils/marlin_utils_fp8.py); TensorRT-LLM would refuse NVFP4 there. Weight-only
      formats (int4, MXFP4) take bf16 inputs: gpt-oss's MXFP4 experts run MXFP4 x bf16 in vLLM's default
      kernels on every GPU (TensorRT-LLM on Blackwell feeds them MXFP8: pass
      ``expert_activation_dtype="mxfp8"`` for that engine; docs/serving.md, "Formats").
    """
    checkpoint_formats(model, name)  # an unknown name lists the known ones
    fmt = shipped_checkpoints(model)[name]
    parts = fmt.component_dtypes
    present: dict[str, int] = {}
    stored_by: dict[str, str] = {}  # component (and attention.o_proj) -> its stored format
    for t in tensors(model):
        if t.kind != "matmul" or t.component not in CHECKPOINT_COMPONENTS:
            continue
        where = f"{t.component}.{t.name.split('.')[0]}"
        stored = parts.get(where, parts.get(t.component, fmt.weight_dtype))
        present[stored] = present.get(stored, 0) + t.numel
        stored_by.setdefault(t.component, parts.get(t.component, fmt.weight_dtype))
        if where == "attention.o_proj":
            stored_by[where] = stored
    quantized = {d: n for d, n in present.items() if get_dtype(d).quantized}
    pool = quantized or present
    weight = max(pool, key=lambda d: pool[d]) if pool else fmt.weight_dtype
    expert = parts.get("experts", weight)
    apart: dict[str, str] = {c: d for c, d in stored_by.items() if c in CHECKPOINT_COMPONENTS and d != weight}
    if "attention.o_proj" in stored_by and stored_by["attention.o_proj"] != apart.get("attention", weight):
        apart["attention.o_proj"] = stored_by["attention.o_proj"]

    def inputs(stored: str) -> str:
        compute = get_dtype(stored).compute_dtype
        intended = {"fp8": "fp8", "fp4": "nvfp4"}.get(str(compute)) if stored != "mxfp4" else None
        if intended is None or (hardware is not None and compute not in hardware.compute_dtypes):
            return "bf16"
        return intended

    return {
        "weight_dtype": weight,
        "activation_dtype": inputs(weight),
        "expert_dtype": expert if expert != weight else None,
        "expert_activation_dtype": inputs(expert) if inputs(expert) != inputs(weight) else None,
        "component_dtypes": apart or None,
    }


def checkpoint_bytes(model: ModelProfile, name: str = RELEASE) -> int:
    """Bytes of the weights as the published checkpoint ``name`` stores them [bytes]: every tensor the
    profile counts, each component's matmul weights in the checkpoint's format with every scale, the rest
    in its ``weight_dtype`` (:func:`shipped_checkpoints`; the default, the release the profile describes).

    What a checkpoint holds beyond the model that serves tokens (a multi-token-prediction module, a
    vision encoder) is not counted.
    """
    weight_dtype, component_dtypes = checkpoint_formats(model, name)
    return weight_bytes(model, weight_dtype=weight_dtype, component_dtypes=component_dtypes)


def kv_elements_per_token(model: ModelProfile, span: AttentionSpan = "sliding") -> int:
    """Values cached per token per layer [-]: 2 H_kv d_h, or the MLA latent (and the sparse-attention
    indexer's key); 0 for an SSM. ``span="full"`` gives the full-attention layers' where their geometry
    differs (``global_attention``, Gemma 4); the default, every other attention layer's."""
    if model.ssm is not None:
        return 0
    if model.mla is not None:
        indexer = model.sparse_attention.index_head_dim if model.sparse_attention else 0
        return model.mla.kv_lora_rank + model.mla.qk_rope_head_dim + indexer
    head_dim, kv_heads = model.attention_geometry(span)
    return 2 * kv_heads * head_dim


def ssm_state_bytes(model: ModelProfile, *, kv_dtype: str = "bf16") -> int:
    """SSM state per sequence, all layers [bytes]: the conv window d_inner x d_conv in ``kv_dtype`` and
    the scan state d_inner x N in fp32 (transformers' Mamba cache keeps the recurrent state in float32
    whatever the model dtype, for the precision of the long recurrence)."""
    if model.ssm is None:
        return 0
    d_inner = model.ssm.expand * model.d_model
    conv = int(storage_bytes(d_inner * model.ssm.d_conv, kv_dtype))
    scan = int(storage_bytes(d_inner * model.ssm.d_state, "fp32"))
    return (conv + scan) * model.n_layers


def linear_attention_state_bytes(model: ModelProfile, *, kv_dtype: str = "bf16") -> int:
    """Gated DeltaNet state per sequence, all linear-attention layers [bytes]: the convolution window
    (q, k and v channels x conv_kernel, in ``kv_dtype``) and the recurrent state (a d_k x d_v matrix per
    value head, in fp32), as transformers' LinearAttentionLayer cache keeps them."""
    m = model.linear_attention
    if m is None:
        return 0
    conv = int(storage_bytes(m.conv_dim * m.conv_kernel, kv_dtype))
    state = int(storage_bytes(m.n_value_heads * m.key_head_dim * m.value_head_dim, "fp32"))
    return (conv + state) * model.n_linear_attention_layers


def mamba2_state_bytes(model: ModelProfile, *, kv_dtype: str = "bf16") -> int:
    """Mamba-2 state per sequence, all 'mamba2' blocks [bytes]: the convolution window (x, B and C
    channels x conv_kernel, in ``kv_dtype``) and the recurrent state (head_dim x d_state per head, in
    fp32: NemotronHConfig's mamba_ssm_cache_dtype default), as transformers' LinearAttentionLayer cache
    keeps them for Nemotron-H."""
    m = model.mamba2
    if m is None:
        return 0
    conv = int(storage_bytes(m.conv_dim * m.conv_kernel, kv_dtype))
    state = int(storage_bytes(m.n_heads * m.head_dim * m.d_state, "fp32"))
    return (conv + state) * model.n_mamba2_layers


def _kv_bytes_per_token_per_layer(model: ModelProfile, kv_dtype: str, span: AttentionSpan = "sliding") -> int:
    return int(storage_bytes(kv_elements_per_token(model, span), kv_dtype))


def kv_bytes_per_token(model: ModelProfile, *, kv_dtype: str = "bf16") -> int:
    """KV-cache bytes one more token of context adds to one sequence [bytes], over every layer whose
    cache grows with the context: all attention layers, but for the ``local_window`` layers of a
    ``layer_types`` model, whose cache is bounded (:func:`local_window_kv_bytes`). A model-wide
    ``sliding_window`` is counted here and capped by the caller (as :func:`kv_cache_bytes` does)."""
    growing = model.n_attention_layers if model.layer_types is None else model.attention_windows.get(None, 0)
    return _kv_bytes_per_token_per_layer(model, kv_dtype, "full") * growing


def local_window_kv_bytes(model: ModelProfile, *, kv_dtype: str = "bf16") -> int:
    """Per sequence, the KV cache of the local-window layers of a ``layer_types`` model once their
    window is full [bytes]: ``local_window`` tokens in each (0 for other models). An upper bound for
    shorter contexts; exact from ``local_window`` tokens on."""
    if model.layer_types is None:
        return 0
    per_layer = _kv_bytes_per_token_per_layer(model, kv_dtype)
    return sum(w * per_layer * n for w, n in model.attention_windows.items() if w is not None)


def sequence_state_bytes(model: ModelProfile, *, kv_dtype: str = "bf16") -> int:
    """Per sequence, the bytes that do not grow with the context [bytes]: an SSM's state
    (:func:`ssm_state_bytes`), linear-attention and Mamba-2 states (:func:`linear_attention_state_bytes`,
    :func:`mamba2_state_bytes`) and full local-window caches (:func:`local_window_kv_bytes`)."""
    return (
        ssm_state_bytes(model, kv_dtype=kv_dtype)
        + mamba2_state_bytes(model, kv_dtype=kv_dtype)
        + linear_attention_state_bytes(model, kv_dtype=kv_dtype)
        + local_window_kv_bytes(model, kv_dtype=kv_dtype)
    )


def kv_cache_bytes(
    model: ModelProfile,
    *,
    batch_size: npt.ArrayLike,
    context_len: npt.ArrayLike,
    kv_dtype: str | npt.ArrayLike = "bf16",
) -> IntArray:
    """KV-cache (or SSM state) bytes for ``batch_size`` sequences of ``context_len`` tokens [bytes].

    ``batch_size``, ``context_len`` and ``kv_dtype`` (a name or an array of names) broadcast together.

    Contiguous cache of exactly ``context_len`` tokens per sequence (paged allocation and reservation
    policies belong to the serving model). A sliding window caps the cached tokens at the window, per
    layer when ``layer_types`` mixes full and local layers; an SSM's state is constant in ``context_len``.

    ``context_len`` counts the token being decoded: it is the cache the attention of the query at
    position ``context_len - 1`` reads, the engine's peak. Between steps, transformers' sliding-window
    layers keep one token fewer (``window - 1``), re-attaching the new token's K/V during the step.
    """
    checks.counts("batch_size", batch_size)
    checks.counts("context_len", context_len)
    B = np.asarray(batch_size, dtype=np.int64)
    S = np.asarray(context_len, dtype=np.int64)
    if model.ssm is not None:
        state = map_dtypes(kv_dtype, lambda d: ssm_state_bytes(model, kv_dtype=d))
        return np.asarray(B * state + 0 * S, dtype=np.int64)

    def per_layer(window: int | None) -> Any:
        span: AttentionSpan = "full" if window is None else "sliding"
        return map_dtypes(kv_dtype, lambda d: _kv_bytes_per_token_per_layer(model, d, span))

    # per token, summed over the layers: each window's layers with their own geometry
    cached_bytes = sum(
        (
            n * (S if w is None else np.minimum(S, w)) * per_layer(w)
            for w, n in model.attention_windows.items()
        ),
        start=np.zeros((), dtype=np.int64),
    )
    linear = map_dtypes(
        kv_dtype,
        lambda d: linear_attention_state_bytes(model, kv_dtype=d) + mamba2_state_bytes(model, kv_dtype=d),
    )
    check_exact_bytes("KV cache", B.astype(np.float64) * (cached_bytes + linear))
    return np.asarray(B * (cached_bytes + linear), dtype=np.int64)


def _activation_width(model: ModelProfile) -> float:
    """Widest set of values one token keeps alive inside a layer during inference [elements]."""
    d = model.d_model
    if model.ssm is not None:
        return 2 * d + 4 * model.ssm.expand * d  # in_proj output (x, z) and the conv/scan outputs
    if model.mla is not None:
        m, H = model.mla, model.n_heads or 0
        attn = H * (2 * m.qk_head_dim + m.v_head_dim) + H * m.v_head_dim
    else:
        attn = (model.n_heads or 0) * model.head_size * 2 + 2 * model.kv_heads * model.head_size
    per = 3 if model.mlp == "gated" else 2
    widths = [attn, per * (model.d_ff or 0)]
    if model.mamba2 is not None:  # in_proj output (z, x, B, C, dt), then the conv and scan outputs
        m2 = model.mamba2
        widths.append(m2.inner + m2.conv_dim + m2.n_heads + m2.conv_dim + m2.inner)
    if model.moe is not None:
        moe = model.moe
        widths.append(per * (moe.top_k * moe.expert_d_ff + moe.n_shared_experts * moe.shared_d_ff))
    return 2 * d + max(widths)


def inference_activation_bytes(
    model: ModelProfile,
    *,
    batch_size: npt.ArrayLike,
    new_tokens: npt.ArrayLike,
    activation_dtype: str = "bf16",
    logits: Literal["all", "last", "none"] = "last",
) -> FloatArray:
    """Peak activation bytes of one inference forward pass [bytes] (a model, not an exact count).

    Assumptions: layers run one after another and free their intermediates, so the peak is the residual
    stream plus the widest layer intermediate (q, k, v and attention output; or the MLP's gate, up and
    product) for all ``batch_size x new_tokens`` tokens, plus fp32 logits for the tokens whose logits are
    computed (``"none"``: layers alone, no head). Attention is fused (FlashAttention): no S x S score
    matrix is materialised.
    """
    B = checks.counts("batch_size", batch_size, whole=False)
    n = checks.counts("new_tokens", new_tokens, whole=False)
    checks.choice("logits", logits, ("all", "last", "none"))
    elem = get_dtype(activation_dtype).bits / 8
    logit_tokens = {"all": B * n, "last": B * np.minimum(n, 1.0), "none": 0.0 * B}[logits]
    return np.asarray(B * n * _activation_width(model) * elem + logit_tokens * model.vocab_size * 4.0)


# ----------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingMemory:
    """Training memory per GPU by kind [bytes]."""

    weights: FloatArray
    gradients: FloatArray
    optimizer: FloatArray
    activations: FloatArray
    trainable_params: int

    @property
    def total(self) -> FloatArray:
        """Everything one GPU holds [bytes]."""
        return np.asarray(self.weights + self.gradients + self.optimizer + self.activations)


def training_activation_bytes(
    model: ModelProfile,
    *,
    batch_size: npt.ArrayLike,
    seq_len: npt.ArrayLike,
    recompute: Recompute = "none",
    attention: Literal["flash", "eager"] = "flash",
    dropout: bool = False,
) -> FloatArray:
    """Activations stored for the backward pass, 16-bit, no tensor parallelism [bytes].

    Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", §4.1,
    Eq. 1) count, per layer, s b h (34 + 5 a s / h) bytes for a GPT layer (MHA, d_ff = 4h, dropout,
    unfused attention). We keep their term-by-term accounting and generalise the widths:

    - attention: norm output 2sbh, Q 2sb(H d_h), K and V 2sb(H_kv d_h) each, output-projection input
      2sb(H d_h), dropout mask sbh; scores: softmax output 2as^2b, plus dropout mask and output 3as^2b
      when ``dropout``; with ``attention="flash"`` no s^2 term, only fp32 log-sum-exp 4asb;
    - MLP: input 2sbh; standard: pre- and post-activation 2sb d_ff each; gated: gate, up, act(gate)
      and product 2sb d_ff each; dropout mask sbh. MoE: the input once, each token's top_k experts and
      shared experts as above;
    - norms: input of each norm 2sbh;
    - output: fp32 logits 4sbV for the loss (the paper leaves it out; it is large for big vocabularies).

    ``recompute="selective"`` drops the s^2 terms (recomputed); ``"full"`` keeps only each layer's input
    (2sbh) plus one layer's activations while it is recomputed. With MHA, d_ff = 4h, a standard MLP,
    dropout and eager attention this gives exactly 34 sbh + 5 a s^2 b per layer.
    """
    b = checks.counts("batch_size", batch_size, whole=False)
    s = checks.counts("seq_len", seq_len, whole=False)
    checks.choice("recompute", recompute, get_args(Recompute))
    checks.choice("attention", attention, ("flash", "eager"))
    d = model.d_model
    mask = 1.0 if dropout else 0.0
    sb = s * b
    if (
        model.ssm is not None
    ):  # Mamba: projections, conv and scan inputs/outputs (selective scan recomputes states)
        di = model.ssm.expand * d
        per_layer = sb * (2 * d + 2 * d + 8 * di)
        scores = np.zeros_like(per_layer)
    else:
        H = model.n_heads or 0
        if model.mla is not None:
            m = model.mla
            q_w, k_w, v_w, o_w = H * m.qk_head_dim, H * m.qk_head_dim, H * m.v_head_dim, H * m.v_head_dim
        else:
            q_w, k_w, v_w, o_w = (
                H * model.head_size,
                *(2 * [model.kv_heads * model.head_size]),
                H * model.head_size,
            )
        attn = sb * (2 * d + 2 * (q_w + k_w + v_w + o_w) + mask * d)
        # eager attention keeps the s x s softmax output (and dropout mask and output); flash keeps fp32 LSE
        scores = H * s * s * b * (2.0 + 3.0 * mask) if attention == "eager" else 4.0 * H * sb
        gate = 8 if model.mlp == "gated" else 4
        dense_mlp = sb * (2 * d + gate * (model.d_ff or 0) + mask * d)
        norms = sb * 2 * d * NORMS_PER_LAYER[model.norm_placement]
        per_layer = attn + norms
        if model.moe is not None:
            moe = model.moe
            moe_mlp = sb * (
                2 * d
                + gate * (moe.top_k * moe.expert_d_ff + moe.n_shared_experts * moe.shared_d_ff)
                + mask * d
            )
            mlp_total = dense_mlp * model.n_dense_mlp_layers + moe_mlp * model.n_moe_layers
        else:
            mlp_total = dense_mlp * model.n_layers
        per_layer = per_layer + mlp_total / model.n_layers
    L = model.n_layers
    logits = 4.0 * sb * model.vocab_size
    if recompute == "full":
        return np.asarray(L * 2 * sb * d + per_layer + scores + logits)
    if recompute == "selective" and attention == "eager":
        scores = np.zeros_like(scores)
    return np.asarray(L * (per_layer + scores) + logits)


LORA_COMPONENTS: tuple[Component, ...] = ("attention", "linear_attention", "ssm", "mlp")
"""The components :func:`lora_params` adapts by default: the projections of a layer's token mixer (softmax
attention; Gated DeltaNet linear attention, ``out_proj`` included; a Mamba / Mamba-2 block's ``in_proj`` /
``x_proj`` / ``dt_proj``, not its ``out_proj``) and of its dense MLP. This is what PEFT's
``target_modules="all-linear"`` trains: every ``nn.Linear`` but the output layer
(``_maybe_include_all_linear_layers``, src/peft/tuners/tuners_utils.py), except that PEFT refuses a
target named ``out_proj`` or ``conv1d`` on model types mamba, mamba2, falcon_mamba, falcon_h1 and
nemotron_h, whose fused kernels read ``out_proj.weight`` directly (``_check_lora_target_modules_mamba``,
huggingface/peft PR #2562, at https://github.com/huggingface/peft/blob/005fdd53c63ed5a27177fd200295a00f93a57b55/src/peft/tuners/tuners_utils.py),
so all-linear there raises unless the user excludes ``out_proj``. Every Mamba / Mamba-2 mixer costmodel
reads from a config.json comes from one of those types (mamba, nemotron_h); Gated DeltaNet's model type
(qwen3_5) is not on the list. PEFT's default mapping (``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``,
src/peft/utils/constants.py, PEFT 0.21.2) has no entry for a pure state-space model and gives nemotron_h
only its attention's q / k / v / o projections. Routed experts and the output head are left out, as before."""

SSM_LORA_REFUSED = ("out_proj.", "conv1d.")
"""Name prefixes of the Mamba / Mamba-2 tensors PEFT will not adapt (``_check_lora_target_modules_mamba``,
see :data:`LORA_COMPONENTS`); only ``out_proj`` is a matmul."""


def lora_params(model: ModelProfile, *, rank: int, components: Sequence[Component] = LORA_COMPONENTS) -> int:
    """Trainable parameters of LoRA adapters of rank ``rank`` on every matmul of ``components`` [-]
    (default :data:`LORA_COMPONENTS`: the token mixer's projections, attention, linear attention or SSM,
    and the dense MLP's). A Mamba / Mamba-2 block's ``out_proj`` is never adapted: PEFT refuses it on
    Mamba-type models (:data:`SSM_LORA_REFUSED`).

    An adapter on a ``[out, in]`` weight adds A ``[rank, in]`` and B ``[out, rank]`` (Hu et al. 2021, §4.1).
    Its update B A has rank at most min(out, in), and every adapted matmul reads or writes the hidden state
    (or a narrower one), so min(out, in) <= ``d_model``: a rank above the hidden size adds parameters and
    no capacity, and is refused. Below it the bound is per matmul and not enforced: above a narrower
    matmul's own min(out, in) (GQA's k / v projections: kv_heads x head_dim) its adapter only adds
    parameters. ``components`` that hold no matmul of ``model`` (``("attention", "mlp")`` on a pure Mamba
    model) are refused, naming the components that do: zero adapters would be a silently wrong count. A
    bare string, or a name that is not a :data:`~costmodel.params.Component`, is refused too.
    """
    checks.positive_int("lora rank", rank)
    if isinstance(components, str):  # a bare name would be matched letter by letter ("attention" in it)
        raise CostmodelError(
            f"lora components must be a sequence of names, got the string {components!r}: "
            f"write ({components!r},)"
        )
    for name in components:
        if name not in get_args(Component):
            raise UnknownNameError("lora component", name, get_args(Component))
    if rank > model.d_model:
        raise CostmodelError(
            f"lora_rank {rank:,} exceeds {model.name}'s hidden size d_model = {model.d_model:,}: an "
            "adapter's update B A has rank at most min(out, in) <= d_model (Hu et al. 2021); use at most "
            f"{model.d_model:,}"
        )
    matmuls = [t for t in tensors(model) if t.kind == "matmul"]
    chosen = [
        t
        for t in matmuls
        if t.component in components and not (t.component == "ssm" and t.name.startswith(SSM_LORA_REFUSED))
    ]
    if not chosen:
        held = ", ".join(dict.fromkeys(t.component for t in matmuls))
        raise CostmodelError(
            f"lora components {tuple(components)} hold no matmul of {model.name}, so no adapter would be "
            f"trained; its matmuls are in: {held} (e.g. 'ssm' for a Mamba block's projections)"
        )
    return sum(rank * (t.shape[0] + t.shape[1]) * t.count for t in chosen)


def training_memory(
    model: ModelProfile,
    *,
    batch_size: npt.ArrayLike,
    seq_len: npt.ArrayLike,
    method: Literal["full", "lora", "qlora"] = "full",
    n_gpus: int = 1,
    zero_stage: Literal[0, 1, 2, 3] = 0,
    recompute: Recompute = "none",
    attention: Literal["flash", "eager"] = "flash",
    lora_rank: int = 16,
    lora_components: Sequence[Component] = LORA_COMPONENTS,
) -> TrainingMemory:
    """Memory per GPU to train or fine-tune ``model`` with mixed-precision Adam [bytes].

    ``batch_size`` is the micro-batch per GPU. Full training keeps 2 bytes of bf16 weights, 2 of
    gradients and 12 of fp32 master weights and Adam moments per parameter; ZeRO (Rajbhandari et al.
    2020, Fig. 1) partitions the optimizer state across ``n_gpus`` (stage 1), then the gradients (stage 2),
    then the weights (stage 3). LoRA freezes the base model in bf16 and trains adapters (16 bytes per
    adapter parameter); QLoRA stores the frozen base in nf4 (Dettmers et al. 2023). Activations are
    :func:`training_activation_bytes` for the micro-batch; ZeRO does not partition them. ``seq_len`` must
    fit the model's ``max_context`` (as a serving context must, :func:`costmodel.specs.check_context`;
    not enforced for a state-space model, which has no positional limit).
    """
    checks.positive_int("n_gpus", n_gpus)
    checks.choice("method", method, ("full", "lora", "qlora"))
    checks.choice("zero_stage", zero_stage, (0, 1, 2, 3))
    checks.choice("recompute", recompute, get_args(Recompute))
    checks.choice("attention", attention, ("flash", "eager"))
    if method == "full":
        trainable = param_count(model).total
        frozen_bytes = 0
    else:
        trainable = lora_params(model, rank=lora_rank, components=lora_components)
        frozen_bytes = weight_bytes(model, weight_dtype="nf4" if method == "qlora" else "bf16")
    weights, gradients, optimizer = model_state_bytes(
        trainable, n_gpus=n_gpus, zero_stage=zero_stage, frozen_bytes=frozen_bytes
    )
    acts = training_activation_bytes(
        model, batch_size=batch_size, seq_len=seq_len, recompute=recompute, attention=attention
    )
    longest = float(np.max(np.asarray(seq_len, dtype=np.float64)))  # checked above
    if model.ssm is None and longest > model.max_context:
        raise CostmodelError(
            f"seq_len = {longest:,.0f} tokens exceeds {model.name}'s context of {model.max_context:,} tokens "
            "(max_context): train on shorter sequences"
        )
    return TrainingMemory(
        weights=np.asarray(weights),
        gradients=np.asarray(gradients),
        optimizer=np.asarray(optimizer),
        activations=acts,
        trainable_params=trainable,
    )


def model_state_bytes(
    trainable_params: int, *, n_gpus: int = 1, zero_stage: Literal[0, 1, 2, 3] = 0, frozen_bytes: int = 0
) -> tuple[float, float, float]:
    """(weights, gradients, optimizer state) per GPU for mixed-precision Adam under ZeRO [bytes].

    2 + 2 + 12 bytes per trainable parameter (Rajbhandari et al. 2020, §3: K = 12); stage 1 divides the
    optimizer state by ``n_gpus``, stage 2 also the gradients, stage 3 also the weights (their Fig. 1).
    Frozen weights (LoRA's base model) count in ``weights`` and are sharded only by stage 3.
    """
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be 0, 1, 2 or 3, got {zero_stage}")
    n = float(n_gpus)
    split_w, split_g, split_o = {0: (1, 1, 1), 1: (1, 1, n), 2: (1, n, n), 3: (n, n, n)}[zero_stage]
    weights = (frozen_bytes + 2.0 * trainable_params) / split_w
    return weights, 2.0 * trainable_params / split_g, 12.0 * trainable_params / split_o


# ----------------------------------------------------------------------------------------------------
# Per device of a serving replica: the one memory model
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaMemory:
    """What one device of a ``tp x pp`` serving replica holds [bytes]: its share of the weights, the
    activations of one prefill chunk, and the KV cache (or SSM state) each token / sequence adds."""

    weight_bytes: float
    activation_bytes: FloatArray
    kv_bytes_per_token: float
    state_bytes_per_sequence: float

    def cache_bytes(self, *, batch_size: npt.ArrayLike, context_len: npt.ArrayLike) -> FloatArray:
        """KV cache (or SSM state) of ``batch_size`` sequences of ``context_len`` tokens on this device
        [bytes]; a sliding window is the caller's to apply (:func:`fit` does)."""
        B = np.asarray(batch_size, dtype=np.float64)
        S = np.asarray(context_len, dtype=np.float64)
        return np.asarray(B * (S * self.kv_bytes_per_token + self.state_bytes_per_sequence))

    def total_bytes(self, *, batch_size: npt.ArrayLike, context_len: npt.ArrayLike) -> FloatArray:
        """Memory of one device serving ``batch_size`` sequences of ``context_len`` cached tokens [bytes]."""
        cache = self.cache_bytes(batch_size=batch_size, context_len=context_len)
        return np.asarray(self.weight_bytes + self.activation_bytes + cache)

    def free_bytes(self, capacity_bytes: float) -> FloatArray:
        """Room left for the KV cache on a device of ``capacity_bytes`` [bytes] (negative: does not fit)."""
        return np.asarray(capacity_bytes - self.weight_bytes - self.activation_bytes)


def checked_draft_kv_layers(value: object, model: ModelProfile) -> int:
    """``value`` as a count of a speculative draft's KV layers in the target's pool [-] (``int``, numpy
    integers cast before any arithmetic), or one error naming ``draft_kv_layers``: a bool, a non-integer, a
    negative count, or more layers than the target ``model`` has (a draft caching more layers than its
    target is no draft of these engines: an MTP module caches its draft length, an EAGLE head one layer;
    :func:`costmodel.speculative.pool_draft_kv_layers`)."""
    if not (isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)):
        raise CostmodelError(f"draft_kv_layers must be an integer >= 0, got {value!r}")
    layers = int(value)
    if not 0 <= layers <= model.n_layers:
        raise CostmodelError(
            f"draft_kv_layers must be an integer in [0, {model.n_layers}] (at most the target's own "
            f"n_layers: a draft caches no more layers than its target), got {value!r}"
        )
    return layers


def replica_memory(
    model: ModelProfile,
    *,
    tp: int = 1,
    pp: int = 1,
    attention_dp: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    sparsity: Sparsity = "none",
    prefill_tokens: npt.ArrayLike = 8192,
    expert_dtype: str | None = None,
    component_dtypes: Mapping[str, str] | None = None,
    engine: str | None = "vllm",
    hardware: HardwareProfile | None = None,
    draft_kv_layers: int = 0,
) -> ReplicaMemory:
    """Per-device memory of a tensor- (``tp``) and pipeline- (``pp``) parallel replica.

    Layout (Megatron-LM): weights split evenly over tp x pp devices (but the replicated attention weights,
    :data:`REPLICATED_PROJECTIONS`, whole on every TP rank); KV heads split over
    min(tp, n_kv_heads) devices and replicated beyond; the MLA latent and Mamba state replicated over tp;
    layers (and so the cache) split over pp; activations of one prefill chunk of ``prefill_tokens`` split
    over tp. :func:`fit` (and through it :func:`costmodel.estimate.size`,
    :func:`costmodel.estimate.estimate`, the CLI and the dashboard) and the serving engine
    (:func:`costmodel.serving.kv_capacity_tokens`, and so the capacity planner) size a device from it.

    With ``attention_dp`` ranks of ``tp`` devices (attention data parallelism, SGLang / TensorRT-LLM /
    vLLM for MoE models): everything but the routed experts is split tp ways within a rank and
    replicated on every rank; the routed experts are split moe_tp x moe_ep = tp x attention_dp ways
    (:func:`expert_weight_bytes`); the KV cache figures are those of one rank, for its own sequences
    (:func:`fit` gives each rank ceil(batch / attention_dp) of them).

    ``component_dtypes`` stores some components' matmul weights in their own formats, as a published
    checkpoint does (:func:`checkpoint_formats`; :func:`weight_bytes`).

    An MLA model's weights include the W_UK / W_UV copies ``engine`` (``"vllm"``, ``"sglang"``,
    ``"trtllm"``; default vLLM, the library's default engine) keeps for the absorbed decode on ``hardware``
    (None: an NVIDIA GPU before Blackwell), split with ``kv_b_proj``'s heads (:func:`mla_absorb_copy_bytes`).
    ``engine=None`` counts no copies: the checkpoint's weights only, as held by an engine that runs MLA
    unabsorbed (no W_UK / W_UV kept beside ``kv_b_proj``).

    ``draft_kv_layers``: attention layers of the model's own shape that a speculative draft (an MTP
    module, an EAGLE head) caches per token in the same KV pool [-], on the last pipeline stage, where the
    draft runs: they add to ``kv_bytes_per_token`` there (the fullest device). The engines' rules are in
    :func:`costmodel.speculative.pool_draft_kv_layers`.
    """
    for name, value in (("tp", tp), ("pp", pp), ("attention_dp", attention_dp)):
        if not (isinstance(value, int | np.integer) and value >= 1):
            raise CostmodelError(f"{name} must be an integer >= 1, got {value!r}")
    draft_kv_layers = checked_draft_kv_layers(draft_kv_layers, model)
    # the routed experts in their own format where it differs (expert_dtype: gpt-oss's MXFP4 experts),
    # and any other component in a published checkpoint's format (component_dtypes)
    own = {**(component_dtypes or {}), **({"experts": expert_dtype} if expert_dtype else {})} or None
    total, experts, replicated = _weight_and_expert_bytes(
        model, weight_dtype, sparsity, tuple(sorted(own.items())) if own else None
    )
    # the replicated attention weights (REPLICATED_PROJECTIONS) whole on every TP rank
    copies = (
        0.0
        if engine is None
        else mla_absorb_copy_bytes(
            model, engine=engine, weight_dtype=weight_dtype, component_dtypes=own, hardware=hardware
        )
    )
    weights = (
        (total - experts - replicated + copies) / (tp * pp)
        + replicated / pp
        + experts / (tp * attention_dp * pp)
    )
    acts = (
        inference_activation_bytes(
            model, batch_size=1, new_tokens=prefill_tokens, activation_dtype=activation_dtype
        )
        / tp
    )
    kv_split = 1 if model.mla is not None or model.ssm is not None else min(tp, model.kv_heads)
    # the growing (full-attention) layers' KV heads: Gemma 4's are fewer than its local layers'
    full_split = kv_split if model.global_attention is None else min(tp, model.global_attention.n_kv_heads)
    return ReplicaMemory(
        weight_bytes=weights,
        activation_bytes=np.asarray(acts),
        kv_bytes_per_token=(
            kv_bytes_per_token(model, kv_dtype=kv_dtype) / pp
            + draft_kv_layers * _kv_bytes_per_token_per_layer(model, kv_dtype, "full")
        )
        / full_split,
        state_bytes_per_sequence=(
            ssm_state_bytes(model, kv_dtype=kv_dtype)
            + local_window_kv_bytes(model, kv_dtype=kv_dtype) / kv_split
            + linear_attention_state_bytes(model, kv_dtype=kv_dtype)
            / min(tp, model.linear_attention.n_value_heads if model.linear_attention else 1)
            + mamba2_state_bytes(model, kv_dtype=kv_dtype)
            / min(tp, model.mamba2.n_heads if model.mamba2 else 1)
        )
        / pp,
    )


@lru_cache(maxsize=512)
def _weight_and_expert_bytes(
    model: ModelProfile, weight_dtype: str, sparsity: Sparsity, own: tuple[tuple[str, str], ...] | None
) -> tuple[int, int, int]:
    """(:func:`weight_bytes`, :func:`expert_weight_bytes`, :func:`replicated_weight_bytes`) of ``model`` in
    these formats [bytes], once per
    model and formats: an engine asks :func:`replica_memory` on every ``max_concurrency`` call, and the
    byte counts are a sum over every tensor that depends on nothing else."""
    formats = dict(own) if own else None
    return (
        weight_bytes(model, weight_dtype=weight_dtype, sparsity=sparsity, component_dtypes=formats),
        expert_weight_bytes(model, weight_dtype=weight_dtype, sparsity=sparsity, component_dtypes=formats),
        replicated_weight_bytes(
            model, weight_dtype=weight_dtype, sparsity=sparsity, component_dtypes=formats
        ),
    )


@dataclass(frozen=True)
class FitReport:
    """Memory of one device of a ``tp x pp`` serving replica, and the limits it implies [bytes, -].

    Arrays follow broadcast(batch_size, context_len, prompt_len). The same names as
    :class:`costmodel.estimate.Report` and :class:`costmodel.estimate.SizingReport`, which take them
    from here.
    """

    weight_bytes_per_gpu: float
    kv_cache_bytes_per_gpu: FloatArray
    activation_bytes_per_gpu: FloatArray
    capacity_bytes_per_gpu: float
    max_batch_size: IntArray
    """Most sequences of ``context_len`` tokens that fit [-]; 0 when the weights and activations alone do
    not."""
    max_context_len: IntArray
    """Longest context that fits at ``batch_size``, capped at the model's ``max_context`` [tokens]; 0 when
    not even one token does."""

    @property
    def memory_bytes_per_gpu(self) -> FloatArray:
        """Weights + KV cache + activations on one device [bytes]."""
        # the order of batch_fits in fit(), so that max_batch_size agrees with fits to the last bit
        return np.asarray(
            self.weight_bytes_per_gpu + self.activation_bytes_per_gpu + self.kv_cache_bytes_per_gpu
        )

    @property
    def free_bytes_per_gpu(self) -> FloatArray:
        """Usable memory left on one device (negative: does not fit) [bytes]."""
        return np.asarray(self.capacity_bytes_per_gpu - self.memory_bytes_per_gpu)

    @property
    def fits(self) -> npt.NDArray[np.bool_]:
        """Whether every device's requirement is within its usable capacity."""
        return np.asarray(self.memory_bytes_per_gpu <= self.capacity_bytes_per_gpu)


def fit(
    model: ModelProfile,
    hardware: HardwareProfile,
    *,
    batch_size: npt.ArrayLike,
    context_len: npt.ArrayLike,
    prompt_len: npt.ArrayLike | None = None,
    tp: int = 1,
    pp: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    sparsity: Sparsity = "none",
    usable_fraction: float = 0.9,
    prefill_chunk_tokens: int = 8192,
    attention_dp: int = 1,
    expert_dtype: str | None = None,
    component_dtypes: Mapping[str, str] | None = None,
    engine: str = "vllm",
) -> FitReport:
    """Whether ``batch_size`` sequences of ``context_len`` tokens fit on each device of a ``tp x pp``
    replica, and the largest batch / context that would.

    Parameters
    ----------
    batch_size : int or array
        Sequences held at once [-].
    context_len : int or array
        Tokens each sequence has cached, prompt and output together [tokens].
    prompt_len : int or array, optional
        Tokens each sequence prefills [tokens]; default ``context_len``.
    tp, pp : int
        Tensor-parallel degree and pipeline stages of the replica [-].
    attention_dp : int
        Attention data-parallel ranks of the replica [-] (:func:`replica_memory`): the ``batch_size``
        sequences are the replica's, each rank holds ceil(batch_size / attention_dp) of them, and
        ``max_batch_size`` is attention_dp times what one rank holds.
    usable_fraction : float
        Share of each device's memory for weights, cache and activations [-] (the rest goes to the CUDA
        context, allocator fragmentation and workspaces; vLLM's default ``gpu_memory_utilization`` is 0.9).
    prefill_chunk_tokens : int
        Longest prefill chunk [tokens] (chunked prefill; vLLM's ``max_num_batched_tokens``).
    expert_dtype : str, optional
        Format of the routed experts' weights where it differs from ``weight_dtype`` [-].
    component_dtypes : mapping, optional
        Formats of some components' matmul weights where they differ from ``weight_dtype``, e.g. a
        published checkpoint's (:func:`checkpoint_formats`).
    engine : {"vllm", "sglang", "trtllm"}
        The serving engine, whose load-time W_UK / W_UV copies an MLA model's weights include
        (:func:`mla_absorb_copy_bytes`); default vLLM.

    Layout: :func:`replica_memory` (weights over tp x pp, KV heads over min(tp, n_kv_heads) and
    replicated beyond, layers over pp). Activations are those of prefilling one chunk of
    ``min(prompt_len, prefill_chunk_tokens)`` tokens of one sequence, split over tp (a chunked-prefill
    engine runs one chunk at a time; decode steps of one token per sequence need less while
    ``batch_size`` is below the chunk). A sliding window caps the cached tokens; an SSM's state does not
    grow with the context. ``max_batch_size`` is at ``context_len``; ``max_context_len`` at
    ``batch_size`` with the same prefill chunk. Both are exact against :attr:`FitReport.fits`.
    """
    checks.fraction("usable_fraction", usable_fraction)
    checks.positive_int("tp", tp)
    checks.positive_int("pp", pp)
    checks.positive_int("attention_dp", attention_dp)
    checks.positive_int("prefill_chunk_tokens", prefill_chunk_tokens)
    checks.counts("batch_size", batch_size)
    checks.counts("context_len", context_len)
    # the sequences of the fullest attention-DP rank (all of them without attention DP)
    B = -(-np.asarray(batch_size, dtype=np.int64) // attention_dp)
    S = np.asarray(context_len, dtype=np.int64)
    P = S if prompt_len is None else np.asarray(prompt_len, dtype=np.int64)
    device = replica_memory(
        model,
        tp=tp,
        pp=pp,
        attention_dp=attention_dp,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        activation_dtype=activation_dtype,
        sparsity=sparsity,
        prefill_tokens=np.minimum(P, prefill_chunk_tokens),
        expert_dtype=expert_dtype,
        component_dtypes=component_dtypes,
        engine=engine,
        hardware=hardware,
    )
    window = model.sliding_window
    cached = S if window is None else np.minimum(S, window)
    capacity = usable_fraction * hardware.memory_bytes
    room = np.asarray(device.free_bytes(capacity) + 0 * B + 0 * S)  # for the cache [bytes]
    kv = device.cache_bytes(batch_size=B, context_len=cached)

    # largest batch: floor(room / per sequence), then nudged so that it agrees with `fits` exactly
    per_seq = np.asarray(device.cache_bytes(batch_size=1, context_len=cached) + 0 * room)
    unbounded = per_seq <= 0
    ceiling = float(2**62)
    estimate = np.where(
        room < 0, 0.0, np.where(unbounded, ceiling, np.floor(room / np.where(unbounded, 1.0, per_seq)))
    )
    max_batch = np.minimum(estimate, ceiling)

    def batch_fits(b: FloatArray) -> npt.NDArray[np.bool_]:
        return np.asarray(device.total_bytes(batch_size=b, context_len=cached) <= capacity)

    max_batch = np.where((max_batch > 0) & ~batch_fits(max_batch), max_batch - 1, max_batch)
    max_batch = np.where(~unbounded & batch_fits(max_batch + 1), max_batch + 1, max_batch)

    # longest context at this batch
    per_tok = device.kv_bytes_per_token
    state = np.asarray(B * device.state_bytes_per_sequence)
    if per_tok == 0:  # SSM: the state does not grow with context
        max_ctx = np.where(room >= state, float(model.max_context), 0.0)
    else:
        per_step = np.maximum(B, 1) * per_tok
        max_ctx = np.floor(np.maximum(room - state, 0) / per_step)

        def ctx_fits(s: FloatArray) -> npt.NDArray[np.bool_]:
            return np.asarray(device.total_bytes(batch_size=B, context_len=s) <= capacity)

        max_ctx = np.where((max_ctx > 0) & ~ctx_fits(max_ctx), max_ctx - 1, max_ctx)
        max_ctx = np.where(ctx_fits(max_ctx + 1), max_ctx + 1, max_ctx)
        if window is not None:  # the cache stops growing at the window
            max_ctx = np.where(max_ctx >= window, model.max_context, max_ctx)
    max_ctx = np.minimum(max_ctx, model.max_context)
    return FitReport(
        weight_bytes_per_gpu=float(device.weight_bytes),
        kv_cache_bytes_per_gpu=kv,
        activation_bytes_per_gpu=np.asarray(device.activation_bytes + 0.0 * S),
        capacity_bytes_per_gpu=capacity,
        max_batch_size=np.asarray(np.minimum(max_batch * attention_dp, ceiling), dtype=np.int64),
        max_context_len=np.asarray(max_ctx, dtype=np.int64),
    )
