"""One forward pass as a list of operators, each with its FLOPs and the bytes it moves.

This is the single source for the performance model: :mod:`costmodel.roofline` turns each operator into
time, the per-operator table and the roofline chart read the same records. The matmul FLOPs of the
operators add up to :func:`costmodel.flops.forward_flop` exactly (``Op.counted``), and their weight
bytes to the weights a pass reads.

Everything is per GPU of a tensor-parallel group of ``tp`` devices and an expert-parallel group of
``ep`` devices (Megatron-LM layout, Shoeybi et al. 2019 §3: attention heads and MLP columns/rows split
``tp`` ways; experts split ``ep`` ways). Shapes broadcast over ``batch_size``, ``new_tokens`` and
``past_tokens``.

Assumptions, stated once:

- **Activations** are read and written once per operator in ``activation_dtype``; norms are fused with
  the residual add before them (read input and residual, write both), as in vLLM/TensorRT-LLM. A GEMM
  reads its inputs in the format it multiplies, group scales included
  (:func:`costmodel.dtypes.activation_bytes_per_element`), and writes the 16-bit stream.
- **Attention** (``attention_impl="flash"``, Dao et al. 2022): reads Q, the cached K and V of the
  attended positions once per sequence, writes the output and the new tokens' K and V; only the causal
  (and windowed) score entries are computed. ``"eager"`` computes the full score rectangle and writes and
  reads the score matrix (QK^T written, softmax read and written, A V read: 4 passes).
- **MLA** (DeepSeek-V2 §2.1) caches the latent; ``kv_up_proj`` rebuilds per-head K and V for every
  attended position and the attention kernel reads them (the form counted in :mod:`costmodel.flops`). A
  decode (one new token a sequence, or a speculative verification's 1 + k) runs absorbed instead, and is
  timed and tabulated so (:func:`costmodel.kernel_times.timed_flop`,
  :func:`costmodel.kernel_times.timed_bytes`).
- **MoE**: tokens spread uniformly over experts; a pass reads the weights of the experts it touches,
  E (1 - (1 - k/E)^T) of them in expectation for T tokens with top-k routing (each token picks k
  distinct experts uniformly) — so decoding a small batch reads a fraction of the experts.
- **Weight-only quantization** (a weight format the kernel cannot multiply as stored:
  :func:`costmodel.dtypes.runs_natively`) reads weights in their storage format and computes in
  ``activation_dtype``; dequantizing costs ``DEQUANT_FLOP_PER_WEIGHT`` vector operations per weight
  element read per pass (scale multiply and type conversion), charged at the fp32 (non-tensor) peak. A
  MoE pass dequantizes the touched experts only, the same expected fraction whose bytes it reads; the
  router and the output head stay in ``keep_dtype`` (see :data:`costmodel.memory.QUANTIZABLE`) and cost none.
- **Communication**: tensor parallelism all-reduces the layer output twice per layer (after attention
  and after the MLP) and all-gathers the vocab-parallel head's logits once per pass
  (:data:`LOGITS_GATHER_OP`); expert parallelism sends each token's hidden state to its k experts and
  back (two all-to-alls per MoE layer). Message sizes are per GPU; :mod:`costmodel.roofline` applies
  the ring cost.
- **Attention data parallelism** (``attention_dp`` ranks; :class:`costmodel.specs.Deployment`):
  ``batch_size`` is one rank's; attention, dense MLPs, shared experts, router and head run on the rank's
  tokens, split ``tp`` ways. The routed experts run on every rank's tokens (attention_dp x T, balanced),
  split ``moe_tp`` ways and spread over ``moe_ep`` groups. Around each MoE layer the ranks all-gather
  their tokens (the gathered buffer, attention_dp x T x d_model, among the attention_dp ranks) and
  reduce-scatter the experts' partial outputs back (the same buffer), then all-reduce within the rank
  over ``tp`` (the shared experts' and the expert slices' partial sums): the default MoE communication of
  vLLM (``allgather_reducescatter``, https://docs.vllm.ai/en/latest/serving/expert_parallel_deployment/),
  TensorRT-LLM and SGLang's DP attention. The opt-in all-to-all backends (DeepEP, wide EP), which send
  each token only to its k experts' devices, are not modelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from costmodel.dtypes import activation_bytes_per_element, get_dtype, runs_natively, storage_bytes
from costmodel.errors import CostmodelError
from costmodel.execution import LaunchCounts, eager_launches, trtllm_launches
from costmodel.flops import AttentionMask, attended_keys, group_attended_keys
from costmodel.kernel_shapes import (
    AttentionShape,
    CollectiveShape,
    FusedInto,
    GemmShape,
    KernelShape,
    MlaDims,
    MlaUpShape,
    MoEShape,
)
from costmodel.memory import (
    QUANTIZABLE,
    UNQUANTIZED_PROJECTIONS,
    Sparsity,
    kv_elements_per_token,
    linear_attention_state_bytes,
    mamba2_state_bytes,
    ssm_state_bytes,
    tensor_bytes,
)
from costmodel.params import Tensor, tensors
from costmodel.specs import AttentionSpan, ModelProfile

FloatArray = npt.NDArray[np.float64]
OpKind = Literal["matmul", "attention", "elementwise", "allreduce", "alltoall", "allgather", "reducescatter"]
COLLECTIVES: tuple[OpKind, ...] = ("allreduce", "alltoall", "allgather", "reducescatter")
"""Operator kinds that move data between devices (:mod:`costmodel.roofline` times them on a link)."""
AttentionImpl = Literal["flash", "eager"]

DEQUANT_FLOP_PER_WEIGHT = 2.0
"""Vector operations to dequantize one stored weight (scale multiply + convert); an assumption."""
QK_NORM_ALLREDUCE_BYTES_PER_TOKEN = 8.0
"""Bytes per token of the all-reduce a ``qk_norm: per_layer`` model runs in each attention layer under
tensor parallelism [bytes]: the RMSNorm over all heads of q (and of k) needs the mean square over every
rank's heads, so each rank all-reduces its two partial mean squares, one fp32 each for q and k, before
normalising (``MiniMaxText01RMSNormTP.forward_qk`` concatenates them and calls
``tensor_model_parallel_all_reduce``,
https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/mamba/linear_attn.py; used by
``MiniMaxM2Attention``, vllm/model_executor/models/minimax_m2.py). A message of a few kB at most: its time
is the collective's latency."""
ELEMENTWISE_FLOP = {"norm": 5.0, "act_gated": 6.0, "act": 4.0, "softmax": 5.0}
"""Rough vector FLOPs per element for non-matmul work; these ops are memory bound on every device here,
so the numbers only need the right order of magnitude."""

_OP_OF_TENSOR = {
    "q_proj": "qkv_proj",
    "k_proj": "qkv_proj",
    "v_proj": "qkv_proj",
    "q_a_proj": "qkv_a_proj",
    "q_a_norm": "qkv_a_proj",
    "q_b_proj": "qkv_proj",
    "kv_a_proj": "qkv_a_proj",
    "kv_a_norm": "qkv_a_proj",
    "q_norm": "qkv_proj",
    "indexer_wq_b": "indexer_wq_b",
    "indexer_wk": "indexer_wk",
    "indexer_k_norm": "indexer_wk",
    "indexer_weights_proj": "indexer_weights_proj",
    "k_norm": "qkv_proj",
    "sinks": "qkv_proj",
    "kv_b_proj": "kv_up_proj",
    "o_proj": "o_proj",
    "gate_proj": "up",
    "up_proj": "up",
    "down_proj": "down",
    "router": "router",
    "in_proj": "in_proj",
    "conv1d": "conv",
    "x_proj": "x_dt_proj",
    "dt_proj": "x_dt_proj",
    "A_log": "scan",
    "D": "scan",
    "out_proj": "out_proj",
    "in_proj_qkv": "linear_in_proj",
    "in_proj_z": "linear_in_proj",
    "in_proj_b": "linear_in_proj",
    "in_proj_a": "linear_in_proj",
    "dt_bias": "scan",
    "norm": "out_proj",
    "shared_expert_gate": "router",
    "router_scale": "router",
    "fc1_latent_proj": "latent_proj",
    "fc2_latent_proj": "latent_proj",
    "router_per_expert_scale": "router",
    "lm_head": "lm_head",
}


INDEXER_ACT_BYTES = 2.0
"""The indexer's queries and keys are bf16 between its projections and their fp8 quantisation
(``rotate_activation`` asserts bf16) [bytes]."""
INDEXER_SCALE_BYTES = 4.0
"""One fp32 scale per 128-wide block of an fp8 indexer query or key (``act_quant``; SGLang's index-K cache
stores 132 bytes per token for 128 dimensions) [bytes]."""


def indexer_elementwise(
    tokens: FloatArray, heads: float, head_dim: float, rope: float, query_tokens: FloatArray | None = None
) -> tuple[tuple[str, FloatArray, FloatArray], ...]:
    """The small kernels of DeepSeek sparse attention's lightning indexer between its three projections
    and its logits, one row each (name, bytes read, bytes written; ``tokens`` queries, ``heads`` indexer
    heads of ``head_dim``, ``rope`` rotary dimensions), as SGLang's ``Indexer.forward_cuda`` launches them
    (python/sglang/srt/layers/attention/nsa/nsa_indexer.py, https://github.com/sgl-project/sglang, read at
    005e8bf):
    the key's LayerNorm (``k_norm``), one rotary kernel for the query and key parts, the two writes of
    the rotated parts back into the query and key, a Hadamard transform of each (``rotate_activation``),
    the fp8 quantisation of each (``act_quant``), the head gates scaled by the query's scales and the
    softmax scale (two multiplications in the decode branch), and the key written into the index-K cache
    (``set_index_k_scale_buffer``). Eleven kernels a layer; in a captured decode the gate projection
    runs on the main stream beside the second stream's chain, which these rows and the two other
    projections make up (the gate projection's GEMM is still counted on its own). ``query_tokens``
    (default ``tokens``) are the tokens whose query side runs: none where SGLang takes its key-only path."""
    x, b = INDEXER_ACT_BYTES, INDEXER_SCALE_BYTES
    tq = tokens if query_tokens is None else query_tokens
    q, k = tq * heads * head_dim, tokens * head_dim
    q_rope, k_rope = tq * heads * rope, tokens * rope
    gates = tq * heads * 4.0  # fp32
    quantised_q, quantised_k = q + tq * heads * b, k + tokens * b
    return (
        ("indexer_k_norm", k * x, k * x),
        ("indexer_rope", (q_rope + k_rope) * x, (q_rope + k_rope) * x),
        ("indexer_rope_write_q", q_rope * x, q_rope * x),
        ("indexer_rope_write_k", k_rope * x, k_rope * x),
        ("indexer_hadamard_q", q * x, q * x),
        ("indexer_hadamard_k", k * x, k * x),
        ("indexer_quant_q", q * x, quantised_q),
        ("indexer_quant_k", k * x, quantised_k),
        ("indexer_gate_scale", gates + tq * heads * b, gates),
        ("indexer_gate_softmax_scale", gates, gates),
        ("indexer_cache_write", quantised_k, quantised_k),
    )


@dataclass(frozen=True)
class Op:
    """One operator, repeated in ``layers`` layers; figures are per occurrence, per GPU.

    ``flop`` counts tensor-core work for matmul/attention ops and vector work for elementwise ops;
    ``counted`` marks the FLOPs that :func:`costmodel.flops.forward_flop` counts.
    """

    name: str
    kind: OpKind
    layers: int
    flop: FloatArray
    bytes_read: FloatArray
    bytes_written: FloatArray
    weight_bytes: float = 0.0
    dequant_flop: FloatArray | float = 0.0
    counted: bool = False
    group: int = field(default=1, repr=False)  # devices taking part in a collective
    span: int = field(default=0, repr=False)  # devices the collective's group spreads over (0: group)
    sparse: bool = False  # 2:4 structured-sparse weights: runs on sparse tensor cores
    kernel: KernelShape | None = field(default=None, repr=False, compare=False)
    """The kernel that runs this operator and its shape (:mod:`costmodel.kernel_shapes`), for the kernel
    time models; None: timed by the roofline."""
    compute_dtype: str | None = field(default=None, repr=False)
    weight_dtype: str | None = field(default=None, repr=False)
    """Format of this matmul's weights where it differs from the pass's ``weight_dtype`` (a component a
    checkpoint stores apart: ``Workload.component_dtypes``), for the kernel models' GEMM parameters."""
    """Format of this matmul's inputs where it differs from the pass's ``activation_dtype`` (the routed
    experts' ``expert_activation_dtype``); its peak is that format's (:mod:`costmodel.roofline`)."""
    launches: FloatArray | float = field(default=1.0, repr=False, compare=False)
    """Kernels one occurrence launches in eager PyTorch [-] (:func:`costmodel.execution.eager_launches`);
    each pays the host's dispatch in the 'eager' execution mode."""

    @property
    def bytes(self) -> FloatArray:
        """Bytes moved to and from device memory [bytes]."""
        return np.asarray(self.bytes_read + self.bytes_written)

    @property
    def intensity(self) -> FloatArray:
        """Arithmetic intensity [FLOP/byte]."""
        return np.asarray(self.flop / np.maximum(self.bytes, 1.0))


def fused_norms(model: ModelProfile, tp: int, attention_dp: int, norm_in_allreduce: bool) -> int:
    """Layer norms of one pass that run inside the tensor-parallel all-reduce before them [-].

    An engine that fuses the residual add and RMSNorm into the all-reduce runs a pre-norm decoder's
    post-attention norm inside the attention's all-reduce and the next layer's input norm (after the last
    layer, the final norm) inside the MLP's: of its 2 L layer norms only the first layer's input norm keeps
    its own kernel. TensorRT-LLM's gpt-oss decoder asks for it at tp > 1 (``TransformerBlock.forward_tp``
    passes ``AllReduceFusionOp.RESIDUAL_RMS_NORM`` with the next norm's weight to both all-reduces,
    https://github.com/NVIDIA/TensorRT-LLM/blob/main/tensorrt_llm/_torch/models/modeling_gpt_oss.py);
    vLLM's ``fuse_allreduce_rms`` compilation pass rewrites all-reduce + fused add-RMSNorm into FlashInfer's
    fused all-reduce (``AllReduceFusionPass``, for inputs up to ``FI_ALLREDUCE_FUSION_MAX_SIZE_MB``,
    https://github.com/vllm-project/vllm/blob/main/vllm/compilation/passes/fusion/allreduce_rms_fusion.py).
    None at tp 1 (no all-reduce), with attention DP (TensorRT-LLM's ``forward_normal``, no all-reduce
    between the norms), or for other layouts (post-, sandwich or parallel norms, SSM or hybrid blocks, a
    dense MLP beside the experts), whose fused kernels are not read here."""
    if not norm_in_allreduce or tp <= 1 or attention_dp > 1:
        return 0
    if model.ssm is not None or model.blocks is not None or model.norm_placement != "pre":
        return 0
    if model.moe is not None and model.moe.with_dense_mlp:
        return 0
    return max(model.n_layer_norms - 1, 0)


@lru_cache(maxsize=256)
def _weights_by_op(
    model: ModelProfile,
    weight_dtype: str,
    keep_dtype: str,
    sparsity: Sparsity = "none",
    expert_dtype: str | None = None,
    component_dtypes: tuple[tuple[str, str], ...] | None = None,
) -> dict[tuple[str, str], tuple[float, float]]:
    """(component, op) -> (weight bytes per layer, matmul weight elements per layer). Remembered per model
    and formats (a search asks for the same model's operators thousands of times); callers only read it."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    parts = dict(component_dtypes or ()) | ({"experts": expert_dtype} if expert_dtype else {})
    for t in tensors(model):
        prefix = t.name.split(".")[0]
        op = _OP_OF_TENSOR.get(prefix)
        if op is None:
            continue
        copies = _copies_per_layer(model, t)
        b, n = out.get((t.component, op), (0.0, 0.0))
        size = tensor_bytes(
            t,
            weight_dtype=weight_dtype,
            keep_dtype=keep_dtype,
            sparsity=sparsity,
            component_dtypes=parts or None,
        )
        elements = (t.numel // t.count) * copies if t.kind == "matmul" else 0  # biases/norms: bytes, no FLOPs
        out[(t.component, op)] = (b + size * copies, n + elements)
    return out


@lru_cache(maxsize=256)
def _kv_token_bytes(model: ModelProfile, kv_dtype: str, span: AttentionSpan = "sliding") -> float:
    """Bytes of one token's cached K and V in one layer of ``span``'s geometry [bytes]. Remembered per
    model and format: the exact count costs more than a small pass's arithmetic."""
    return float(storage_bytes(kv_elements_per_token(model, span), kv_dtype))


def _copies_per_layer(model: ModelProfile, t: Tensor) -> float:
    layers = {
        "attention": model.n_attention_layers,
        "linear_attention": model.n_linear_attention_layers,
        "experts": model.n_moe_layers,
        "shared_experts": model.n_moe_layers,
        "router": model.n_moe_layers,
        "mlp": model.n_dense_mlp_layers,
        "ssm": model.n_layers if model.blocks is None else model.n_mamba2_layers,
        "output_head": 1,
    }.get(t.component, model.n_layers)
    # a mean over the component's layers where its tensors differ between layers (Gemma 4's attention)
    return t.count / max(layers, 1)


LOGITS_GATHER_OP = "allgather_logits"
"""The all-gather of the vocab-parallel output head's logits over the ``tp`` GPUs that split it (a
``tp`` > 1 pass's last operator, after ``lm_head``; ``head_tokens x vocab_size`` 16-bit logits, the
gathered buffer). Every engine gathers them before sampling: vLLM's ``LogitsProcessor._gather_logits``
all-gathers (``tensor_model_parallel_all_gather``) where ``current_platform.use_all_gather()``, which the
V1 engine sets (``Platform.use_all_gather``: ``envs.VLLM_USE_V1``; vllm/model_executor/layers/
logits_processor.py, vllm/platforms/interface.py, https://github.com/vllm-project/vllm), else gathers to
rank 0 (the same bytes into one GPU); SGLang's ``LogitsProcessor`` all-gathers where
``do_tensor_parallel_all_gather`` (tp > 1; python/sglang/srt/layers/logits_processor.py,
https://github.com/sgl-project/sglang); TensorRT-LLM's ``LMHead`` is a column-parallel ``Linear`` with
``gather_output`` (``allgather``), replicated, with no gather, under attention DP
(tensorrt_llm/_torch/modules/embedding.py, https://github.com/NVIDIA/TensorRT-LLM), where ``tp`` here is
each rank's own. Vocabulary padding (vLLM pads to a multiple of 64 per rank) is not counted.

Under SGLang attention DP the model assumes ``--enable-dp-lm-head``: the head is vocab-parallel over the
rank's own attention-TP group (``tp`` here) and its logits are gathered there, none at ``tp`` = 1. Without
the flag SGLang's ``LogitsProcessor`` (``use_attn_tp_group`` off, ``do_tensor_parallel_all_gather_dp_attn``)
gathers the DP ranks' hidden states, runs the head over the full ``tp_size`` and all-gathers and scatters the
logits back; that path is not priced. Every attention-DP pool of the SGLang recipes the evaluation maps sets
the flag (srt-slurm ``recipes/b200-fp8/8k1k/stp/max-tpt-dep8-1p1d.yaml`` and ``8k1k_stp_maxtpt_0`` / ``_3``,
``recipes/b200-fp4/1k1k-stp.yaml`` (its ``zip_override_maxtpt`` decode), ``8k1k/stp/max-tpt-dep4-7p-dep8-2d``
and ``low-latency-dep4-1p-tep8-1d``; :data:`validation.public.inferencex_disagg.SGLANG_RECIPES`); the
evaluated aggregated SGLang rows run no attention DP."""
HEAD_OPS: tuple[str, ...] = ("lm_head", LOGITS_GATHER_OP)
"""The output head's operators: its GEMM and, under tensor parallelism, the gather of its logits."""


PRE_GATHER_QUANTIZED_INPUTS: frozenset[str] = frozenset({"nvfp4", "mxfp8"})
"""Experts' input formats that an engine quantizing before the MoE's attention-DP all-gather
(``forward_ops(quantized_moe_gather=True)``) gathers in: TensorRT-LLM's MoE modules quantize bf16 inputs to
nvfp4 or mxfp8 "prior to post-communication (alltoall/allgather)" and leave fp8 block-scaled ones in bf16
("No change required before communication"; ``TRTLLMGenFusedMoE._quantize_for_post_quant_comm`` in
``tensorrt_llm/_torch/modules/fused_moe/fused_moe_trtllm_gen.py``, https://github.com/NVIDIA/TensorRT-LLM; the
nvfp4 gather is off only with ``TLLM_DISABLE_FP4_ALLGATHER=1``, ``disable_fp4_allgather`` in
``tensorrt_llm/_torch/utils.py``). DEEPGEMM's ``DeepGemmFusedMoE.forward_chunk`` gathers bf16 and quantizes
after."""


def forward_ops(
    model: ModelProfile,
    *,
    batch_size: npt.ArrayLike,
    new_tokens: npt.ArrayLike,
    past_tokens: npt.ArrayLike = 0,
    weight_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    attention_impl: AttentionImpl = "flash",
    logits: Literal["all", "last"] = "all",
    tp: int = 1,
    ep: int = 1,
    sparsity: Sparsity = "none",
    attention_dp: int = 1,
    moe_tp: int | None = None,
    expert_dtype: str | None = None,
    expert_activation_dtype: str | None = None,
    component_dtypes: Mapping[str, str] | None = None,
    count_launches: bool = True,
    launch_counts: LaunchCounts = "reference",
    norm_in_allreduce: bool = False,
    quantized_moe_gather: bool = False,
    draft_tokens: npt.ArrayLike = 0,
) -> tuple[Op, ...]:
    """The operators of one forward pass over ``new_tokens`` per sequence after ``past_tokens``.

    Parameters
    ----------
    model : ModelProfile
    batch_size, new_tokens, past_tokens : int or array
        Sequences [-], tokens processed now [tokens], tokens already cached [tokens].
    weight_dtype, activation_dtype, kv_dtype : str
        Storage formats (see :mod:`costmodel.dtypes`); ``activation_dtype`` is also the format the matmuls
        quantize their inputs to, and the GEMMs read them in it with their group scales (nvfp4 0.5625,
        fp8_block 1.03125 bytes an element). Activations between other operators are stored in it, but
        never in fewer than 8 bits: where an fp4 input is made (a norm's fused quantization or a pass of
        the GEMM's own) is not told apart.
    expert_dtype, expert_activation_dtype : str, optional
        The routed experts' weight and input formats where they differ from the rest (gpt-oss: MXFP4
        experts, bf16 attention); None: ``weight_dtype`` / ``activation_dtype``.
    component_dtypes : mapping, optional
        Weight formats of other components stored apart from ``weight_dtype``
        (``Workload.component_dtypes``: ``attention``, ``attention.o_proj``, ``mlp``, ``shared_experts``);
        a 16-bit one runs with inputs in its own format, a quantized one with ``activation_dtype``.
    attention_impl : {"flash", "eager"}
        Fused (FlashAttention) or unfused attention (see the module docstring).
    logits : {"all", "last"}
        Output head for every new token or the last one per sequence.
    tp, ep : int
        Tensor-parallel degree (of attention and all but the routed experts) and expert-parallel degree
        of the routed experts; figures are per GPU.
    attention_dp : int
        Attention data-parallel ranks whose tokens the MoE layers serve together [-]; ``batch_size`` is
        one rank's (see the module docstring).
    moe_tp : int, optional
        Tensor-parallel degree of each routed expert [-]; default tp x attention_dp / ep.
    sparsity : {"none", "2:4"}
        2:4 structured sparsity of the compressible matmul weights (as :func:`costmodel.memory.weight_bytes`):
        their bytes shrink and their operators are marked ``sparse`` (sparse tensor cores).
    count_launches : bool
        Set each operator's eager kernel count (``Op.launches``, :func:`costmodel.execution.eager_launches`);
        False leaves the default 1, for a caller timing in the 'graphs' execution mode, which never reads it.
    launch_counts : {"reference", "trtllm"}
        Whose kernel sequence the counts are: the reference decoder's
        (:func:`costmodel.execution.eager_launches`) or TensorRT-LLM's PyTorch backend's
        (:func:`costmodel.execution.trtllm_launches`).
    norm_in_allreduce : bool
        The engine fuses the residual add and RMSNorm that follow each tensor-parallel all-reduce into the
        all-reduce's kernel (:func:`fused_norms`): those norms run no kernel of their own.
    quantized_moe_gather : bool
        Under attention DP, the engine quantizes the routed experts' inputs to their format before the MoE's
        all-gather where that format is one of :data:`PRE_GATHER_QUANTIZED_INPUTS`, and the gather moves
        those bytes (nvfp4: 4 bits and an 8-bit scale per 16 elements). Otherwise, and for the
        reduce-scatter after the experts always, the collective moves the residual stream's 16-bit hidden
        states, whatever format the matmuls quantize their inputs to.
    draft_tokens : int or array
        Speculative draft tokens each sequence verifies in this pass, k [tokens] (0: none). An MLA pass of
        at most 1 + k new tokens per sequence is timed in the absorbed decode form, as the engines run a
        verification (:mod:`costmodel.kernels.mla`; a longer chunk stays naive); the operators' own FLOPs
        and bytes keep the naive count (:func:`costmodel.kernel_times.timed_bytes`).
    """
    B = np.asarray(batch_size, dtype=np.float64)
    n = np.asarray(new_tokens, dtype=np.float64)
    past = np.asarray(past_tokens, dtype=np.float64)
    T = B * n  # tokens in this pass
    drafts = np.asarray(draft_tokens, dtype=np.float64)
    if not (np.isfinite(drafts).all() and (drafts >= 0).all()):
        raise CostmodelError(f"draft_tokens must be finite and >= 0, got {draft_tokens!r}")
    zero = np.zeros(np.broadcast(B, n, past).shape)
    try:
        fits = np.broadcast(drafts, zero).shape == zero.shape
    except ValueError:
        fits = False
    if not fits:
        raise CostmodelError(
            f"draft_tokens (shape {drafts.shape}) must broadcast to the shape {zero.shape} of batch_size, "
            "new_tokens and past_tokens"
        )
    # the longest query per sequence an MLA pass runs absorbed, per entry of the pass
    decode_tokens = np.asarray(np.broadcast_to(1.0 + drafts, zero.shape), dtype=np.float64)
    a = max(get_dtype(activation_dtype).bits, 8.0) / 8
    quantized = get_dtype(weight_dtype).quantized
    keep = activation_dtype if not get_dtype(activation_dtype).quantized else "bf16"
    own = dict(component_dtypes or {})
    if model.sparse_attention is not None and (
        quantized or any(get_dtype(v).quantized for v in own.values())
    ):
        # what the engines never quantize runs in keep_dtype (memory.UNQUANTIZED_PROJECTIONS)
        own |= {f"attention.{p}": keep for p in UNQUANTIZED_PROJECTIONS}
    w = _weights_by_op(
        model,
        weight_dtype,
        keep if quantized else weight_dtype,
        sparsity,
        expert_dtype or None,
        tuple(sorted(own.items())) or None,
    )
    # a quantized weight is dequantized where its kernel cannot multiply it as stored: weight-only formats
    # (int4, MXFP4 or fp8 weights with bf16 inputs), not fp8 x fp8 or fp4 x fp4 (dtypes.runs_natively)
    dequantized = {
        c: get_dtype(wd).quantized and not runs_natively(wd, ad)
        for c, wd, ad in (
            ("", weight_dtype, activation_dtype),
            ("experts", expert_dtype or weight_dtype, expert_activation_dtype or activation_dtype),
        )
    }
    d, L = model.d_model, model.n_layers
    ops: list[Op] = []

    # what a GEMM writes [bytes an element]: keep_dtype (bf16) whatever its inputs' format: the W8A8 and
    # W4A4 kernels dequantize in their epilogue into a bf16 / fp16 output (vLLM's CUTLASS fp8 GEMMs accept
    # only those output types, cutlass_scaled_mm_blockwise_sm100_fp8 in csrc/quantization/cutlass_w8a8/c3x/
    # scaled_mm_blockwise_sm100_fp8.cu, https://github.com/vllm-project/vllm; the GEMM kernel model's
    # costmodel.kernels.gemm.OUTPUT_BYTES = 2 for every table's GEMMs); the next kernel makes its own input
    gemm_out = get_dtype(keep).bits / 8

    def matmul(
        name: str,
        component: str,
        op: str,
        layers: int,
        tokens: FloatArray,
        in_w: float,
        out_w: float,
        *,
        copies: int = 1,
        split: int = tp,
        weight_split: int | None = None,
        weight_fraction: FloatArray | float = 1.0,
        kernel: KernelShape | None = None,
    ) -> None:
        """``tokens`` rows through ``copies`` equal matrices (experts) of which each row uses one;
        ``in_w``/``out_w`` are the per-GPU activation widths read and written."""
        wb, we = w.get((component, op), (0.0, 0))
        if not layers or not we:
            return
        # a component stored apart (Workload.component_dtypes): its own weights, inputs and dequantization
        stored = own.get(f"{component}.{op}", own.get(component)) if component != "experts" else None
        inputs = expert_activation_dtype if component == "experts" else None
        dequant = dequantized["experts" if component == "experts" else ""]
        if stored is not None:
            quantized_here = get_dtype(stored).quantized
            inputs = (activation_dtype if quantized_here else stored) if stored != weight_dtype else None
            dequant = quantized_here and not runs_natively(stored, activation_dtype)
            inputs = None if inputs == activation_dtype else inputs
        # the GEMM reads its inputs in the format it multiplies, group scales included
        # (dtypes.activation_bytes_per_element: nvfp4 0.5625, fp8_block 1.03125 bytes an element); the
        # router and the output head, never quantized, read the 16-bit stream
        if component not in QUANTIZABLE:
            x_bytes = gemm_out
        else:
            x_bytes = activation_bytes_per_element(inputs or activation_dtype)
        flop = 2.0 * tokens * (we / copies) / split
        weights = wb * weight_fraction / (weight_split or split)
        # one GEMM per GPU: k = the input width, n such that 2 m n k is the operator's FLOPs
        gemm = GemmShape(
            np.asarray(tokens), we / copies / split / in_w, float(in_w), component in QUANTIZABLE
        )
        ops.append(
            Op(
                name,
                "matmul",
                layers,
                zero + flop,
                zero + weights + tokens * in_w * x_bytes,
                zero + tokens * out_w * gemm_out,
                weight_bytes=float(np.max(weights)),
                # what is read in the quantized format is dequantized: the touched experts' share of the
                # quantizable weights (routers and the head stay in keep_dtype and need no dequantization)
                dequant_flop=zero + DEQUANT_FLOP_PER_WEIGHT * we * weight_fraction / (weight_split or split)
                if component in QUANTIZABLE and dequant
                else 0.0,
                counted=True,
                sparse=sparsity == "2:4" and component in QUANTIZABLE,
                kernel=kernel or gemm,
                compute_dtype=inputs,
                weight_dtype=stored if stored != weight_dtype else None,
            )
        )

    def elementwise(
        name: str,
        layers: int,
        elements: FloatArray,
        flop_per: float,
        reads: float = 1.0,
        writes: float = 1.0,
        extra_read: FloatArray | float = 0.0,
    ) -> None:
        if layers:
            ops.append(
                Op(
                    name,
                    "elementwise",
                    layers,
                    zero + elements * flop_per,
                    zero + elements * reads * a + extra_read,
                    zero + elements * writes * a,
                )
            )

    def collective(
        name: str, kind: OpKind, layers: int, message: FloatArray, group: int, span: int, op: str
    ) -> None:
        """A collective of ``group`` devices spread over ``span`` devices, on a buffer of ``message`` bytes
        (the size nccl-tests report)."""
        ops.append(
            Op(
                name,
                kind,
                layers,
                zero,
                message,
                zero,
                group=group,
                span=span,
                kernel=CollectiveShape(op, message, group),
            )
        )

    # norms the engine runs inside the residual all-reduces before them: those all-reduces are its fused
    # all-reduce + RMSNorm call (CollectiveShape.fused_norm), one rule for both (fused_norms)
    fused = fused_norms(model, tp, attention_dp, norm_in_allreduce)

    # the residual stream [bytes an element]: the embedding, the GEMMs before each all-reduce (as every
    # GEMM, gemm_out) and the all-reduce itself write it unquantized (keep_dtype) whatever the GEMMs' input
    # format; fp8 / fp4 inputs are made from it per GEMM, by the norm before it or by the GEMM's own
    # quantization pass
    residual = gemm_out

    def allreduce(name: str, layers: int, group: int) -> None:
        if group > 1 and layers:
            message = zero + T * d * residual
            kernel = CollectiveShape("all_reduce", message, group, fused_norm=fused > 0)
            ops.append(
                Op(name, "allreduce", layers, zero, message, zero, group=group, span=tp, kernel=kernel)
            )

    # embedding lookup: gather T rows
    emb_row = model.d_model * get_dtype(weight_dtype if not quantized else keep).bits / 8
    ops.append(Op("embedding", "elementwise", 1, zero, zero + T * emb_row, zero + T * d * residual))

    # a layer norm adds its sublayer's output into the residual stream and normalizes the sum (the fused
    # add + RMSNorm of every engine): it reads both in the stream's format and writes the stream back in it
    # and the normalized output in a = max(bits, 8) / 8 bytes an element: fp8 for W8A8 (the norm fused with
    # the quantization, vLLM's fused_add_rms_norm_static_fp8_quant), and one byte for 4-bit inputs too, a
    # middle value: FlashInfer's add_rmsnorm_fp4quant writes 0.5 + 1 / 16 = 0.5625 (e2m1 values and one
    # e4m3 scale per 16), an engine that quantizes in a pass of its own writes bf16 here (2) and that pass,
    # which the GEMM kernel model charges (costmodel.kernels.gemm), makes the fp4 input
    norm_layers = model.n_layer_norms - fused
    norm_reads, norm_writes = 2 * residual / a, (residual + a) / a
    elementwise("norm", norm_layers, T * d, ELEMENTWISE_FLOP["norm"], reads=norm_reads, writes=norm_writes)

    if model.ssm is not None:
        s = model.ssm
        di = s.expand * d
        matmul("in_proj", "ssm", "in_proj", L, T, d, 2 * di)
        conv = 2.0 * T * di * s.d_conv
        conv_w, scan_w = w.get(("ssm", "conv"), (0.0, 0))[0], w.get(("ssm", "scan"), (0.0, 0))[0]
        ops.append(
            Op(
                "conv",
                "elementwise",
                L,
                zero + conv,
                zero + T * di * a + conv_w,
                zero + T * di * a,
                weight_bytes=conv_w,
                counted=True,
            )
        )
        matmul("x_dt_proj", "ssm", "x_dt_proj", L, T, di, s.dt_rank + 2 * s.d_state + di)
        state = ssm_state_bytes(model, kv_dtype=kv_dtype) / L
        readout = 2.0 * T * di * s.d_state
        ops.append(
            Op(
                "scan",
                "elementwise",
                L,
                zero + readout,
                zero + T * (3 * di + 2 * s.d_state) * a + B * state + scan_w,
                zero + T * di * a + B * state,
                weight_bytes=scan_w,
                counted=True,
            )
        )
        matmul("out_proj", "ssm", "out_proj", L, T, di, d)
    else:
        H = model.n_heads or 0
        mla = model.mla
        qk_dim = mla.qk_head_dim if mla else model.head_size
        v_dim = mla.v_head_dim if mla else model.head_size
        q_width = H * qk_dim
        kv_width = (mla.kv_lora_rank + mla.qk_rope_head_dim) if mla else 2 * model.kv_heads * model.head_size
        La = model.n_attention_layers  # softmax-attention layers (the others: linear attention)
        gate = q_width if model.attention_output_gate else 0  # q_proj also yields the output gate
        if mla:
            # MLA's down projections (q_a and kv_a, one fused GEMM) and their norms are replicated on every
            # TP rank in all three engines: SGLang's fused_qkv_a_proj_with_mqa is a ReplicatedLinear
            # (python/sglang/srt/models/deepseek_v2.py, DeepseekV2AttentionMLA.__init__), vLLM's
            # fused_qkv_a_proj a MergedColumnParallelLinear with disable_tp=True
            # (vllm/model_executor/models/deepseek_v2.py, DeepseekV2MLAAttention.__init__), TensorRT-LLM's
            # kv_a_proj_with_mqa a Linear with no tensor_parallel_mode (tensorrt_llm/_torch/modules/
            # attention.py, MLA.__init__). Only the query's up projection (q_b_proj, ColumnParallelLinear;
            # q_proj without a query LoRA) splits its heads over TP
            a_width = float((mla.q_lora_rank or 0) + mla.kv_lora_rank + mla.qk_rope_head_dim)
            matmul("qkv_a_proj", "attention", "qkv_a_proj", La, T, d, a_width, split=1)
            q_in = float(mla.q_lora_rank or d)
            matmul("qkv_proj", "attention", "qkv_proj", La, T, q_in, q_width / tp)
        else:
            matmul("qkv_proj", "attention", "qkv_proj", La, T, d, (q_width + gate + kv_width) / tp)
        if model.qk_norm == "per_layer" and tp > 1 and La:
            # an RMSNorm over all heads of q and of k needs their mean squares over every TP rank's heads:
            # one all-reduce per attention layer of the two fp32 partial sums per token
            # (QK_NORM_ALLREDUCE_BYTES_PER_TOKEN; MiniMaxText01RMSNormTP.forward_qk in vLLM)
            message = zero + T * QK_NORM_ALLREDUCE_BYTES_PER_TOKEN
            kernel = CollectiveShape("all_reduce", message, tp)
            ops.append(
                Op(
                    "allreduce_qk_norm",
                    "allreduce",
                    La,
                    zero,
                    message,
                    zero,
                    group=tp,
                    span=tp,
                    kernel=kernel,
                )
            )
        context = B * (past + n)
        mla_dims = (
            MlaDims(
                float(d),
                float(mla.q_lora_rank or 0),
                float(mla.kv_lora_rank),
                float(mla.qk_nope_head_dim),
                float(mla.qk_rope_head_dim),
                float(mla.v_head_dim),
            )
            if mla
            else None
        )
        if mla:
            assert mla_dims is not None
            matmul(
                "kv_up_proj",
                "attention",
                "kv_up_proj",
                La,
                context,
                mla.kv_lora_rank,
                H * (mla.qk_nope_head_dim + v_dim) / tp,
                kernel=MlaUpShape(
                    zero + T,
                    zero + context,
                    zero + n,
                    H / tp,
                    mla_dims,
                    decode_tokens,
                    # kv_b_proj's stored format (memory.stored_dtype's key, then matmul()'s)
                    own.get("attention.kv_b_proj", own.get("attention.kv_up_proj", own.get("attention")))
                    or weight_dtype,
                ),
            )
        # attention core, one operator per window (gpt-oss: full and 128-token local layers)
        kv_token = _kv_token_bytes(model, kv_dtype)  # per layer
        # KV heads split over TP, replicated once tp exceeds them; the MLA latent is replicated
        kv_split = 1 if mla else min(tp, model.kv_heads)
        groups = model.attention_groups
        sparse = model.sparse_attention
        mask: AttentionMask = "causal" if attention_impl == "flash" else "full"
        if sparse is not None:
            # the lightning indexer, replicated on every TP rank, as its kernels (indexer_elementwise): its
            # three projections (ReplicatedLinear: each rank computes every indexer head), the small
            # kernels between them, the logits over every cached indexer key, and the top-k
            hi, di = sparse.index_n_heads, sparse.index_head_dim
            # an extend (a prompt pass, n > 1) whose keys all fit in the top-k selects every key: SGLang
            # then runs the key side alone (Indexer.forward_cuda: _should_skip_logits_computation, then
            # _forward_cuda_k_only: wk, its norm, rope, Hadamard, quantisation and cache write, and the
            # select-all indices), no query projection, head gates, logits or top-k over them; a decode
            # (n = 1) runs the whole indexer, and so does a speculative verify (TARGET_VERIFY, the whole
            # indexer in SGLang: its n <= 1 + draft_tokens tokens are not an extend)
            extend = (n > 1) & (n > decode_tokens)
            full = zero + np.where(extend & (past + n <= sparse.index_topk), 0.0, 1.0)
            Tq = T * full
            q_lora = float(mla.q_lora_rank or d) if mla else float(d)
            matmul(
                "indexer_wq_b",
                "attention",
                "indexer_wq_b",
                La,
                Tq,
                q_lora,
                hi * di,
                split=1,
                weight_fraction=full,
            )
            matmul("indexer_wk", "attention", "indexer_wk", La, T, d, di, split=1)
            matmul(
                "indexer_weights_proj",
                "attention",
                "indexer_weights_proj",
                La,
                Tq,
                d,
                hi,
                split=1,
                weight_fraction=full,
            )
            rope = float(mla.qk_rope_head_dim) if mla else 0.0
            for name, read, written in indexer_elementwise(T, float(hi), float(di), rope, Tq):
                ops.append(Op(name, "elementwise", La, zero + read / 2.0, zero + read, zero + written))
            pairs = attended_keys(n, past, attention=mask) * full
            logit_bytes = Tq * (past + n) * 4.0  # fp32, one per query and cached key
            # the logits kernel reads the index-K cache as SGLang stores it, fp8 keys and one fp32 scale a
            # token (132 bytes at 128 dimensions, whatever the pass's activation dtype), the fp8 queries and
            # the fp32 head gates (which carry the queries' scales: indexer_gate_scale)
            key_bytes = di + INDEXER_SCALE_BYTES
            ops.append(
                Op(
                    "indexer",
                    "attention",
                    La,
                    zero + 2.0 * B * pairs * hi * (di + 1),
                    (zero + B * (past + n) * key_bytes + T * hi * (di + 4.0)) * full,
                    zero + logit_bytes,
                    counted=True,
                )
            )
            topk_indices = T * sparse.index_topk * 4.0  # int32
            ops.append(
                Op(
                    "indexer_topk",
                    "elementwise",
                    La,
                    zero + logit_bytes / 4.0,
                    zero + logit_bytes,
                    zero + topk_indices,
                )
            )
        n_kv = model.kv_heads
        for (kind, window), layers in groups.items():
            keys = group_attended_keys(
                kind, window, n, past, mask, top_k=sparse.index_topk if sparse else None
            )
            if model.global_attention is not None:  # Gemma 4: this group's own head width and KV heads
                hd, hkv = model.attention_geometry(kind)
                n_kv = hkv
                qk_dim = v_dim = hd
                kv_token = _kv_token_bytes(model, kv_dtype, kind)
                kv_split = min(tp, hkv)
            flop = 2.0 * B * keys * H * (qk_dim + v_dim) / tp
            cached = past + n if window is None else np.minimum(past + n, window)
            if sparse is not None:  # each query reads its top-k keys; the pass at most every cached one
                cached = np.minimum(cached, n * sparse.index_topk)
            # MLA reads the rebuilt per-head K and V (activations); others read the cache
            kv_read = B * cached * H * (qk_dim + v_dim) * a / tp if mla else B * cached * kv_token / kv_split
            reads = T * q_width * a / tp + kv_read
            writes = T * H * v_dim * a / tp + B * n * kv_token / kv_split
            if attention_impl == "eager":
                scores = B * H * n * (past + n) * a / tp
                reads, writes = reads + 2 * scores, writes + 2 * scores
            name = "attention" if len(groups) == 1 or window is None else "attention_local"
            # the fused (flash) kernels the engines run; eager, chunked-local and top-k sparse prefill
            # have no kernel model and keep the roofline. A top-k sparse MLA decode (DeepSeek-V3.2 §2.1)
            # is the absorbed MLA decode kernel over the selected latent rows, min(past + 1, top-k) keys.
            # A sparse verification of n = 1 + k tokens (n <= decode_tokens) gives each query token its own
            # top-k rows (the sparse kernels take indices per query token: FlashMLA's sparse decode
            # ``indices[batch, s_q, topk]``, vLLM's FlashInfer sparse-MLA backend block tables
            # ``[batch_size, q_len_per_request, sparse_mla_top_k]``, vllm/v1/attention/backends/mla/
            # flashinfer_mla_sparse.py), so it runs as B n one-query sparse decodes
            sparse_decode = (
                sparse is not None
                and mla is not None
                and bool(np.all(np.asarray(n) <= np.maximum(decode_tokens, 1.0)))
            )
            kernel_past = np.minimum(past, sparse.index_topk - 1) if sparse is not None else past
            per_query = sparse_decode and bool(np.any(np.asarray(n) > 1))
            kernel_batch = np.where(n > 1, B * n, B) if per_query else B
            kernel_n = np.minimum(n, 1.0) if per_query else n
            shape = (
                AttentionShape(
                    zero + kernel_batch,
                    zero + kernel_n,
                    zero + kernel_past,
                    H / tp,
                    H / tp if mla else n_kv / kv_split,
                    float(qk_dim),
                    float(v_dim),
                    float(window or 0) if kind == "sliding" else 0.0,
                    get_dtype(kv_dtype).bits / 8,
                    a,
                    mla_dims,
                    decode_tokens,
                    sparse_mla=sparse_decode,
                )
                if attention_impl == "flash" and kind != "chunked" and (sparse is None or sparse_decode)
                else None
            )
            ops.append(
                Op(
                    name,
                    "attention",
                    layers,
                    zero + flop,
                    zero + reads,
                    zero + writes,
                    counted=True,
                    kernel=shape,
                )
            )
        v_dim = mla.v_head_dim if mla else model.head_size
        matmul("o_proj", "attention", "o_proj", La, T, H * v_dim / tp, d)
        allreduce("allreduce_attn", La, tp)

        def recurrent_scan(
            names: tuple[str, str],
            component: str,
            layers: int,
            conv: tuple[float, int],
            split: int,
            scan_flop: FloatArray,
            scan_reads: FloatArray,
            scan_writes: FloatArray,
            state: float,
        ) -> None:
            """A recurrent block's causal depthwise conv over ``conv`` = (channels, kernel) and its state
            scan (``scan_flop`` already split; reads / writes in token-elements before the split), each
            carrying the B sequences' per-layer ``state`` bytes and its own small weights."""
            channels, kernel = conv
            conv_w = w.get((component, "conv"), (0.0, 0))[0] / split
            ops.append(
                Op(
                    names[0],
                    "elementwise",
                    layers,
                    zero + 2.0 * T * channels * kernel / split,
                    zero + T * channels * a / split + conv_w,
                    zero + T * channels * a / split,
                    weight_bytes=conv_w,
                    counted=True,
                )
            )
            scan_w = w.get((component, "scan"), (0.0, 0))[0] / split
            ops.append(
                Op(
                    names[1],
                    "elementwise",
                    layers,
                    zero + scan_flop,
                    zero + scan_reads * a / split + B * state + scan_w,
                    zero + scan_writes * a / split + B * state,
                    weight_bytes=scan_w,
                    counted=True,
                )
            )

        Ll = model.n_linear_attention_layers
        if model.linear_attention is not None and Ll:
            # gated DeltaNet: value heads (and their states) split over TP like attention heads
            la = model.linear_attention
            value, heads = la.n_value_heads * la.value_head_dim, la.n_value_heads
            split = min(tp, heads)
            in_w = la.conv_dim + value + 2 * heads  # q, k, v; output gate z; beta, decay a
            matmul("linear_in_proj", "linear_attention", "linear_in_proj", Ll, T, d, in_w / tp)
            recurrent_scan(
                ("linear_conv", "delta_rule"),
                "linear_attention",
                Ll,
                (la.conv_dim, la.conv_kernel),
                split,
                6.0 * T * heads * la.key_head_dim * la.value_head_dim / split,
                T * (la.conv_dim + 2 * heads),
                T * value,
                linear_attention_state_bytes(model, kv_dtype=kv_dtype) / Ll / split,  # per sequence
            )
            matmul("linear_out_proj", "linear_attention", "out_proj", Ll, T, value / tp, d)
            allreduce("allreduce_linear_attn", Ll, tp)

        Lm = model.n_mamba2_layers
        if model.mamba2 is not None and Lm:
            # Mamba-2 blocks: heads (and their states) split over TP like attention heads
            m2 = model.mamba2
            split = min(tp, m2.n_heads)
            in_w = m2.inner + m2.conv_dim + m2.n_heads  # z, x, B, C, dt
            matmul("mamba_in_proj", "ssm", "in_proj", Lm, T, d, in_w / tp)
            recurrent_scan(
                ("mamba_conv", "mamba_scan"),
                "ssm",
                Lm,
                (m2.conv_dim, m2.conv_kernel),
                split,
                # the state update x B^T and the read-out C h: 2 head_dim x d_state products per head
                4.0 * T * m2.inner * m2.d_state / split,
                T * (m2.conv_dim + m2.n_heads + m2.inner),
                T * m2.inner,
                mamba2_state_bytes(model, kv_dtype=kv_dtype) / Lm / split,  # per sequence
            )
            matmul("mamba_out_proj", "ssm", "out_proj", Lm, T, m2.inner / tp, d)
            allreduce("allreduce_mamba", Lm, tp)

        gated = model.mlp == "gated"
        act = ELEMENTWISE_FLOP["act_gated" if gated else "act"]
        n_dense = model.n_dense_mlp_layers
        if n_dense and model.d_ff:
            f = model.d_ff
            matmul("mlp_up", "mlp", "up", n_dense, T, d, (2 if gated else 1) * f / tp)
            elementwise("mlp_act", n_dense, T * f / tp, act, reads=2 if gated else 1)
            matmul("mlp_down", "mlp", "down", n_dense, T, f / tp, d)
            allreduce("allreduce_mlp", n_dense, tp)
        if model.moe is not None and model.n_moe_layers:
            moe, nm = model.moe, model.n_moe_layers
            E, k = moe.n_experts, moe.top_k
            dp, moe_gpus = attention_dp, tp * attention_dp
            # moe_gpus = etp x ep devices: ep groups each hold E/ep experts, each expert split etp ways
            etp = moe_tp if moe_tp is not None else moe_gpus // ep
            T_moe = T * dp  # tokens the MoE layer serves: every attention-DP rank's
            touched = 1.0 - (1.0 - k / E) ** T_moe  # fraction of experts some token picks
            routed = T_moe * k  # token-expert pairs
            matmul("router", "router", "router", nm, T, d, E, split=1)
            if moe.latent_dim:  # Nemotron-3: into the experts' latent space and back, every token
                matmul("experts_latent_proj", "router", "latent_proj", nm, T, d, moe.latent_dim)
            # the attention-DP ranks gather the residual stream's hidden states for the MoE and
            # reduce-scatter its output in 16 bits (``keep``), not in the format the experts' matmuls quantize
            # their inputs to, unless the engine quantizes first (``quantized_moe_gather``)
            gathered = zero + T_moe * d * residual
            x_fmt = expert_activation_dtype or activation_dtype
            before = quantized_moe_gather and x_fmt in PRE_GATHER_QUANTIZED_INPUTS
            gather = zero + T_moe * d * activation_bytes_per_element(x_fmt) if before else gathered
            if dp > 1:
                collective("allgather_moe", "allgather", nm, gather, dp, moe_gpus, "all_gather")
            per_gpu = routed / ep  # token-expert pairs each expert group serves, balanced
            up_w = (2 if gated else 1) * moe.expert_d_ff / etp
            matmul(
                "experts_up",
                "experts",
                "up",
                nm,
                per_gpu,
                d,
                up_w,
                copies=E,
                split=etp,
                weight_split=moe_gpus,
                weight_fraction=touched,
                kernel=MoEShape(
                    T_moe,
                    float(d),
                    float(moe.expert_d_ff),
                    float(k),
                    float(E),
                    float(etp),
                    float(ep),
                    gated,
                ),
            )
            elementwise("experts_act", nm, per_gpu * moe.expert_d_ff / etp, act, reads=2 if gated else 1)
            ops[-1] = replace(ops[-1], kernel=FusedInto("experts_up"))
            matmul(
                "experts_down",
                "experts",
                "down",
                nm,
                per_gpu,
                moe.expert_d_ff / etp,
                d,
                copies=E,
                split=etp,
                weight_split=moe_gpus,
                weight_fraction=touched,
                kernel=FusedInto("experts_up"),
            )
            if dp > 1:
                collective("reducescatter_moe", "reducescatter", nm, gathered, dp, moe_gpus, "reduce_scatter")
            if moe.n_shared_experts:
                sf = moe.shared_d_ff
                shared = sf * moe.n_shared_experts / tp
                matmul("shared_up", "shared_experts", "up", nm, T, d, (2 if gated else 1) * shared)
                elementwise("shared_act", nm, T * shared, act, reads=2 if gated else 1)
                matmul("shared_down", "shared_experts", "down", nm, T, shared, d)
            allreduce("allreduce_moe", nm, tp)

    # output head, vocab-parallel: each of the tp GPUs computes and writes its vocab / tp columns of the
    # logits (in the 16-bit stream's format: the head is never quantized); a tied head reads the embedding
    # matrix
    head_tokens = T if logits == "all" else B * np.minimum(n, 1.0)
    if model.tie_embeddings:
        hb = model.vocab_size * emb_row
        flop = 2.0 * head_tokens * model.vocab_size * d / tp
        ops.append(
            Op(
                "lm_head",
                "matmul",
                1,
                zero + flop,
                zero + hb / tp + head_tokens * d * gemm_out,
                zero + head_tokens * model.vocab_size * gemm_out / tp,
                weight_bytes=hb / tp,
                counted=True,
                kernel=GemmShape(np.asarray(head_tokens), model.vocab_size / tp, float(d), quantizable=False),
            )
        )
    else:
        matmul("lm_head", "output_head", "lm_head", 1, head_tokens, d, model.vocab_size / tp)
    if tp > 1:
        # the tp slices gathered into every token's whole row of logits before sampling
        # (LOGITS_GATHER_OP); the buffer is the gathered one, head_tokens x vocab
        logits_bytes = zero + head_tokens * model.vocab_size * gemm_out
        collective(LOGITS_GATHER_OP, "allgather", 1, logits_bytes, tp, tp, "all_gather")
    if not count_launches:
        return tuple(ops)
    if launch_counts == "trtllm":
        return trtllm_launches(model, ops)
    return eager_launches(model, ops, tokens=T, ep=ep, attention_impl=attention_impl)
