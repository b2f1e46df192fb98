"""Execution modes: how the host issues a pass's kernels, and the kernels each operator launches in eager
PyTorch.

An operator of :mod:`costmodel.ops` is what a fused engine runs as (about) one kernel. Eager PyTorch runs
many of them as several: an ``nn.RMSNorm`` is six elementwise kernels (``pow``, ``mean``, ``add``,
``rsqrt`` and two ``mul``), a gated MLP's activation two (``silu``, ``mul``), each projection its own
``mm``. Every kernel the Python interpreter issues passes through the PyTorch dispatcher, which costs
microseconds of host time per operator whatever its size (PyTorch, "Accelerating PyTorch with CUDA
Graphs", https://pytorch.org/blog/accelerating-pytorch-with-cuda-graphs/: "the CPU overheads of launching
each kernel"; Zachary DeVito's dispatcher notes, http://blog.ezyang.com/2020/09/lets-talk-about-the-pytorch-dispatcher/).

Modes (``Efficiency.execution_mode``):

- ``"graphs"`` (the default): the pass is replayed as a captured CUDA graph or a compiled program. The
  host launches it once (``Efficiency.step_overhead_s`` per pass) and pays nothing per kernel; each
  operator costs its device time plus ``kernel_overhead_s``, the device-side fixed cost of its kernel.
  This is what costmodel has always computed.
- ``"eager"``: PyTorch eager. Each operator also pays ``dispatch_s`` for every kernel it launches
  (``Op.launches``, counted by :func:`eager_launches`). On a CPU the same core dispatches and computes, so
  the dispatch adds to the operator's time; on a GPU the host enqueues kernels asynchronously, so an
  operator takes the longer of its device time and its dispatch (host-bound where its kernels are shorter
  than their launches). The sum of those maxima bounds the pass from above: a host that runs ahead during a
  long kernel can hide the launches of the short ones after it.

The counts are those of the reference decoder in ``validation/kernels/decoder.py`` (``nn.Linear``,
``nn.RMSNorm`` / ``nn.LayerNorm``, ``F.scaled_dot_product_attention``, a preallocated or concatenated KV
cache, routed experts looped over in Python as Hugging Face's Mixtral does), checked against a
``TorchDispatchMode`` count of the module in ``tests/test_execution.py``. Views (``view``, ``transpose``,
``t``, ``slice``, ...) and allocations launch no kernel and are not counted; their host time rides in
``dispatch_s``, which is measured per counted kernel. Not counted: rotary embeddings (the reference leaves
them out; Hugging Face's ``apply_rotary_pos_emb`` adds about 7 kernels per layer for q and k), an explicit
attention mask (3 kernels per pass, 3 more with a sliding window), and operators the reference does not run
(SSM scans, linear attention, MLA's absorbed form, the sparse-attention indexer: one kernel each).

TensorRT-LLM's PyTorch backend run without CUDA graphs is counted apart (``launch_counts="trtllm"`` of
:func:`costmodel.ops.forward_ops`, chosen by ``Efficiency.kernel_engine``): its DeepSeek-V3 layer issues
fused custom operators, not the reference decoder's per-expert loop, so each operator pays ``dispatch_s``
for every host call of :data:`TRTLLM_DEEPSEEK_V3_HOST_CALLS` (:func:`trtllm_launches`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from costmodel.ops import AttentionImpl, Op
    from costmodel.specs import ModelProfile

LaunchCounts = Literal["reference", "trtllm"]
"""Whose kernel sequence an eager pass launches: the reference decoder's (:func:`eager_launches`) or
TensorRT-LLM's PyTorch backend's (:func:`trtllm_launches`)."""

FloatArray = npt.NDArray[np.float64]
ExecutionMode = Literal["graphs", "eager"]
EXECUTION_MODES: tuple[ExecutionMode, ...] = ("graphs", "eager")

NORM_KERNELS = {"rmsnorm": 6.0, "layernorm": 1.0}
"""Kernels of one norm module: ``nn.RMSNorm`` decomposes into pow, mean, add (eps), rsqrt, mul, mul
(weight); ``nn.LayerNorm`` is one ``native_layer_norm``."""
ACTIVATION_KERNELS = {"silu": 1.0, "gelu": 1.0, "gelu_tanh": 1.0, "relu": 1.0, "relu2": 2.0}
"""Kernels of one activation (squared ReLU: relu, then square)."""
ATTENTION_KERNELS = {"flash": 1.0, "eager": 7.0}
"""Kernels of the attention itself: one fused ``scaled_dot_product_attention``; or, unfused (Hugging Face's
``eager_attention_forward``), repeat_kv for K and V, QK^T, scaling, mask add, softmax and AV."""
CACHE_WRITE_KERNELS = 2.0
"""Writing the new tokens' K and V into the cache (two ``copy_`` into a preallocated cache, or two ``cat``
onto a growing one); MLA writes one latent."""
ROUTER_KERNELS = 4.0
"""Routing: the router GEMM, top-k, the softmax over the chosen experts, the zeroed output."""
EXPERT_SCAN_KERNELS = 2.0
"""Per expert of the layer, touched or not: which tokens chose it (``eq``, ``nonzero``)."""
EXPERT_GATHER_KERNELS = 2.0
"""Per touched expert: gathering its tokens and their routing weights (two ``index``)."""
EXPERT_COMBINE_KERNELS = 2.0
"""Per touched expert after its down projection: the weight multiply and the ``index_add_`` back."""
SAMPLE_KERNELS = 1.0
"""The greedy pick of the next token after the head (``argmax``), once per pass."""


def norm_kernels(norm: str) -> float:
    """Kernels of one norm module in eager PyTorch [-]."""
    return NORM_KERNELS[norm]


def activation_kernels(activation: str, gated: bool) -> float:
    """Kernels of an MLP's activation in eager PyTorch, with the gate's multiply when gated [-]."""
    return ACTIVATION_KERNELS[activation] + (1.0 if gated else 0.0)


@lru_cache(maxsize=256)
def _per_layer_counts(model: ModelProfile, attention_impl: AttentionImpl) -> dict[str, float]:
    """Operator name -> kernels per occurrence, for the operators whose count does not depend on the
    workload; remembered per model (a search asks for the same model's operators thousands of times)."""
    from costmodel.ops import _OP_OF_TENSOR
    from costmodel.params import tensors

    norm = norm_kernels(model.norm)
    gated = model.mlp == "gated"
    act = activation_kernels(model.activation, gated)
    linears: dict[tuple[str, str], float] = {}  # (component, op) -> nn.Linear / norm kernels per layer
    for t in tensors(model):
        op = _OP_OF_TENSOR.get(t.name.split(".")[0])
        if op is None or t.kind not in ("matmul", "norm") or t.component == "norms":
            continue
        kernels = 1.0 if t.kind == "matmul" else norm
        linears[(t.component, op)] = linears.get((t.component, op), 0.0) + kernels
    up = 2.0 if gated else 1.0
    counts: dict[str, float] = {
        "embedding": 1.0 + (3.0 if model.position == "learned" else 0.0),  # + arange, gather, add
        "norm": norm + 1.0,  # fused with the residual add before it (costmodel.ops)
        "qkv_proj": linears.get(("attention", "qkv_proj"), 1.0),
        "qkv_a_proj": linears.get(("attention", "qkv_a_proj"), 1.0),  # MLA's replicated down projections
        "o_proj": linears.get(("attention", "o_proj"), 1.0),
        "mlp_up": up,
        "mlp_act": act,
        "mlp_down": 1.0,
        "lm_head": 1.0 + (norm if model.final_norm else 0.0) + SAMPLE_KERNELS,  # final norm, head, argmax
    }
    mla = model.mla is not None
    counts["attention"] = (1.0 if mla else CACHE_WRITE_KERNELS) + ATTENTION_KERNELS[attention_impl]
    if mla:  # the rope key broadcast to the heads and concatenated to the no-rope part
        counts["attention"] = counts["attention"] + 1.0
    return counts


def eager_launches(
    model: ModelProfile,
    ops: Sequence[Op],
    *,
    tokens: npt.ArrayLike,
    ep: int = 1,
    attention_impl: AttentionImpl = "flash",
) -> tuple[Op, ...]:
    """``ops`` (of :func:`costmodel.ops.forward_ops` for ``model``) with ``launches`` set to the kernels each
    occurrence launches in eager PyTorch (see the module docstring).

    Parameters
    ----------
    model : ModelProfile
    ops : the pass's operators.
    tokens : tokens in the pass, B x new [tokens]; the routed experts a pass touches depend on it.
    ep : expert-parallel degree: experts per device = n_experts / ep [-].
    attention_impl : {"flash", "eager"}
    """
    counts: dict[str, float | FloatArray] = dict(_per_layer_counts(model, attention_impl))
    if model.moe is not None:
        moe, up = model.moe, 2.0 if model.mlp == "gated" else 1.0
        act = activation_kernels(model.activation, model.mlp == "gated")
        experts = moe.n_experts / ep
        T = np.asarray(tokens, dtype=np.float64)
        touched = experts * (1.0 - (1.0 - moe.top_k / moe.n_experts) ** T)  # costmodel.ops' expectation
        counts |= {
            "router": ROUTER_KERNELS,
            "experts_up": EXPERT_SCAN_KERNELS * experts + touched * (EXPERT_GATHER_KERNELS + up),
            "experts_act": touched * act,
            "experts_down": touched * (1.0 + EXPERT_COMBINE_KERNELS),
            "shared_up": moe.n_shared_experts * up,
            "shared_act": moe.n_shared_experts * act,
            "shared_down": moe.n_shared_experts * 2.0,  # the down projection and the add into the output
        }
    return tuple(_with_launches(op, counts.get(op.name, 1.0)) for op in ops)


def _with_launches(op: Op, launches: float | FloatArray) -> Op:
    """``dataclasses.replace(op, launches=launches)`` for the frozen :class:`Op`, which validates nothing in
    its constructor: a copy with the one field set, at half replace's cost (every pass copies every op)."""
    out = copy.copy(op)
    object.__setattr__(out, "launches", launches)
    return out


def host_terms(
    compute_s: FloatArray,
    memory_s: FloatArray,
    host_s: FloatArray | float,
    *,
    same_core: bool,
) -> tuple[FloatArray, FloatArray]:
    """An operator's (compute, memory) times with its eager dispatch ``host_s`` [s]: added to both where the
    host is the device (a CPU), else the device time floored at it (a GPU's asynchronous launches)."""
    if same_core:
        return np.asarray(compute_s + host_s), np.asarray(memory_s + host_s)
    return np.asarray(np.maximum(compute_s, host_s)), np.asarray(memory_s)


TRTLLM_DEEPSEEK_V3_HOST_CALLS: dict[str, float] = {
    "embedding": 1.0,
    "norm": 1.0,
    "qkv_a_proj": 5.0,
    "qkv_proj": 2.0,
    "kv_up_proj": 6.0,
    "attention": 2.0,
    "o_proj": 2.0,
    "mlp_up": 2.0,
    "mlp_act": 1.0,
    "mlp_down": 2.0,
    "router": 11.0,
    "experts_up": 1.0,
    "experts_act": 0.0,
    "experts_down": 1.0,
    "shared_up": 2.0,
    "shared_act": 1.0,
    "shared_down": 3.0,
    "lm_head": 3.0,
}
"""Host calls (PyTorch operators issued from Python, each one dispatch and at least one kernel) per
occurrence of each operator of a DeepSeek-V3 decode pass in TensorRT-LLM's PyTorch backend on Hopper, with
fp8 block-scaled weights, attention DP (no tensor-parallel all-reduce, ``enable_fusion`` off) and the
``WIDEEP`` MoE with DeepEP's normal all-to-all, counted from the source
(https://github.com/NVIDIA/TensorRT-LLM, ``tensorrt_llm/_torch``):

- ``norm`` 1: ``RMSNorm`` with the residual is one fused add + norm kernel; a layer has two
  (``post_attention_layernorm``, ``next_layer_layernorm``: ``DeepseekV3DecoderLayer.forward_MoE``).
- ``qkv_a_proj`` 5 and ``qkv_proj`` 2 (``MLA.forward_impl``, ``modules/attention.py``):
  ``kv_a_proj_with_mqa`` (an fp8 block-scaled ``Linear``: the 1 x 128 activation quantization, then the
  GEMM: 2), ``q_a_layernorm`` and ``kv_a_layernorm`` (2) and the ``torch.concat`` of the latent cache entry
  (1) are the replicated down projections' 5; ``q_b_proj`` (2) is the split query projection's.
- ``kv_up_proj`` 6 (``MLA.forward_absorption_generation``): the absorbed ``k_b_proj`` and ``v_b_proj``
  products, each ``fp8_block_scaling_bmm_out`` on SM 90: ``fp8_batched_quantize_1x128_permute102``, the
  bmm, the ``copy_`` into the output (3 each).
- ``attention`` 2: ``mla_rope_generation``, then the attention op (``_attn_forward_gen``).
- ``o_proj``, ``mlp_up``, ``mlp_down``, ``shared_up`` 2 each (quantization and GEMM); ``mlp_act`` and
  ``shared_act`` 1 (the fused SwiGLU); ``shared_down`` 3 (its 2, and ``shared_output + routed_output`` in
  ``Deepseekv3MoE.forward``).
- ``router`` 11: ``dsv3_router_gemm_op`` (``DeepseekV3Gate.forward``), the compiled ``get_scores`` and
  ``noaux_tc_op`` and the indices' ``.to(torch.int32)`` (``Deepseekv3RoutingImpl``: 3), the slots'
  ``.to(torch.int64)`` for DeepEP, DeepEP's ``get_dispatch_layout`` and ``dispatch`` (2), and the adapter
  after it (``recv_topk_idx.to(torch.int32)``, ``== -1``, ``+=``, the masked assignment: 4)
  (``WideEPMoE.forward_chunk``, ``modules/fused_moe/fused_moe_wide_ep.py``). The all-to-all is the
  ``allgather_moe`` operator of :mod:`costmodel.ops`, a collective, which pays no host time in
  :func:`costmodel.kernel_times.op_times`, so its host calls ride on the router before it.
- ``experts_up`` 1: ``torch.ops.trtllm.fused_moe``, one call for the routed experts' permutation, both
  grouped GEMMs, the activation and the finalize (``experts_act`` 0); ``experts_down`` 1: DeepEP's
  ``combine`` (the ``reducescatter_moe`` collective's host call).
- ``embedding`` 1; ``lm_head`` 3: the final norm, the head GEMM and the sampler's pick.

The kernels a C++ operator launches inside one call (``fused_moe``'s routing, the attention op's
scheduling, DeepEP's notify kernels) ride on that call's one dispatch, so the count is a lower bound of the
kernels and the count of what the Python host issues: 38 per MoE layer, 24 per dense layer."""


def has_trtllm_launches(model: ModelProfile) -> bool:
    """Whether :data:`TRTLLM_DEEPSEEK_V3_HOST_CALLS` counts ``model``'s layer: multi-head latent attention
    without a sparse-attention indexer, routed experts and one shared expert (DeepSeek-V3's; not
    DeepSeek-V3.2's or GLM-5's, whose indexer's calls are not counted)."""
    return (
        model.mla is not None
        and model.sparse_attention is None
        and model.moe is not None
        and model.moe.n_shared_experts == 1
    )


def trtllm_launches(model: ModelProfile, ops: Sequence[Op]) -> tuple[Op, ...]:
    """``ops`` with ``launches`` set to the host calls TensorRT-LLM's PyTorch backend issues for each
    occurrence (:data:`TRTLLM_DEEPSEEK_V3_HOST_CALLS`), for a pass it runs without CUDA graphs.

    The counts are DeepSeek-V3's layer (MLA, routed and shared experts); another architecture raises
    :class:`costmodel.errors.CostmodelError` rather than borrow them."""
    from costmodel.errors import CostmodelError

    if not has_trtllm_launches(model):
        raise CostmodelError(
            f"{model.name}: TensorRT-LLM's eager launch counts are counted for DeepSeek-V3's layer only "
            "(multi-head latent attention, routed experts and one shared expert)"
        )
    from costmodel.ops import COLLECTIVES

    unknown = sorted(
        {op.name for op in ops if op.kind not in COLLECTIVES} - set(TRTLLM_DEEPSEEK_V3_HOST_CALLS)
    )
    if unknown:
        raise CostmodelError(f"{model.name}: no TensorRT-LLM launch count for operators {unknown}")
    # a collective pays no host time of its own in the eager timing: its host calls are counted around it
    return tuple(_with_launches(op, TRTLLM_DEEPSEEK_V3_HOST_CALLS.get(op.name, 0.0)) for op in ops)
