"""The kernel an operator runs, with the shape its kernel family's time model needs.

:mod:`costmodel.ops` lists *what* a forward pass computes (FLOPs and bytes per operator, exact); each
:class:`~costmodel.ops.Op` may carry one of the records below in its ``kernel`` field, naming the kernel
family of :mod:`costmodel.kernels` that runs it and that family's shape arguments, per GPU.
:mod:`costmodel.kernel_times` turns them into time. An operator without a record (norms, activations,
the embedding gather, SSM scans) is timed by the plain roofline.

Shapes are arrays that broadcast with the operator's FLOPs and bytes (over the pass's ``batch_size``,
``new_tokens`` and ``past_tokens``); a GEMM's or MoE block's token count keeps its own shape (it does not
depend on the cached context), so a grid of contexts times each GEMM once per token count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GemmShape:
    """One GEMM ``[m, k] @ [k, n]`` on one GPU (:mod:`costmodel.kernels.gemm`): ``m`` tokens of this pass
    through a ``k x n`` weight slice."""

    m: FloatArray
    """Rows: tokens through the matrix in this pass [tokens]."""
    n: float
    """Output columns on this GPU [elements]."""
    k: float
    """Reduction (input) width [elements]."""
    quantizable: bool = True
    """Whether the weight is stored in the pass's weight dtype (False: kept in 16 bits, as routers and the
    output head are, :data:`costmodel.memory.QUANTIZABLE`)."""


@dataclass(frozen=True)
class AttentionShape:
    """Fused attention of ``batch`` sequences of ``new_tokens`` after ``past_tokens`` cached ones, on one GPU.

    ``new_tokens == 1`` is the decode regime (:mod:`costmodel.kernels.generation_attention`: the new
    token's query against ``past_tokens + 1`` keys); more new tokens the prefill regime
    (:mod:`costmodel.kernels.context_attention`, causal over the chunk and its past). With ``mla`` set the
    MLA kernels of :mod:`costmodel.kernels.mla` run instead: absorbed where ``new_tokens <= decode_tokens``
    (a decode, or a speculative verification run by the decode kernel), naive otherwise (a prefill chunk)."""

    batch: FloatArray
    """Sequences [-]."""
    new_tokens: FloatArray
    """Tokens per sequence in this pass [tokens]."""
    past_tokens: FloatArray
    """Tokens per sequence already cached [tokens]."""
    n_heads: float
    """Query heads on this GPU [-]."""
    n_kv_heads: float
    """Key/value heads on this GPU [-]."""
    head_dim: float
    """Query/key head dimension [-]."""
    v_head_dim: float
    """Value head dimension [-]."""
    window: float = 0.0
    """Sliding window [tokens]; 0: full causal attention."""
    kv_bytes: float = 2.0
    """Bytes per cached K/V element [bytes]."""
    act_bytes: float = 2.0
    """Bytes per Q/O element [bytes]."""
    mla: MlaDims | None = None
    """The model's MLA dimensions, for MLA attention."""
    decode_tokens: FloatArray | float = 1.0
    """Longest query per sequence an MLA pass runs in the absorbed decode kernel [tokens]: 1, or 1 + k in a
    speculative verification of k drafts (:func:`costmodel.ops.forward_ops`' ``draft_tokens``)."""
    sparse_mla: bool = False
    """A top-k sparse MLA decode (DeepSeek-V3.2, GLM-5) over the selected latent rows: trtllm-gen then takes
    its low-latency kernel below 128 heads (:func:`costmodel.kernels.mla.low_latency_passes`)."""


@dataclass(frozen=True)
class MlaDims:
    """Multi-head latent attention dimensions (DeepSeek-V2 §2.1) of a model [elements]."""

    d_model: float
    q_lora_rank: float
    kv_lora_rank: float
    qk_nope_head_dim: float
    qk_rope_head_dim: float
    v_head_dim: float


@dataclass(frozen=True)
class MlaUpShape:
    """MLA's key/value up-projection on one GPU: in prefill the naive ``kv_b_proj`` GEMM over every
    attended token (``context`` rows); in decode (``new_tokens <= decode_tokens``: one token, or a
    speculative verification's 1 + k) the engines' absorbed form, two per-head batched matmuls over the new
    tokens (``tokens`` rows) instead (:mod:`costmodel.kernels.mla`)."""

    tokens: FloatArray
    """New tokens in this pass [tokens]."""
    context: FloatArray
    """Attended tokens the naive form expands [tokens]."""
    new_tokens: FloatArray
    """New tokens per sequence (1: decode) [tokens]."""
    n_heads: float
    """Query heads on this GPU [-]."""
    dims: MlaDims
    decode_tokens: FloatArray | float = 1.0
    """Longest query per sequence run in the absorbed form [tokens] (:attr:`AttentionShape.decode_tokens`)."""
    kv_b_dtype: str = "bf16"
    """The format ``kv_b_proj`` is stored in (the pass's weight format or its component's): with the engine
    and the device it says what the absorbed bmm read and run in
    (:func:`costmodel.memory.mla_absorb_format`)."""


@dataclass(frozen=True)
class MoEShape:
    """One fused MoE block (routed experts: up-projection, activation, down-projection) of
    :mod:`costmodel.kernels.moe`; its operator carries the whole block's time, the others of the block
    carry :class:`FusedInto`."""

    tokens: FloatArray
    """Tokens entering the block on the expert-parallel group [tokens]."""
    hidden: float
    """Model width d_model [elements]."""
    inter: float
    """Expert intermediate width (whole expert, before the MoE TP split) [elements]."""
    topk: float
    """Experts per token [-]."""
    experts: float
    """Routed experts [-]."""
    tp: float
    """MoE tensor-parallel degree: each expert split this many ways [-]."""
    ep: float
    """Expert-parallel degree: experts spread over this many GPUs [-]."""
    gated: bool = True
    """Gated (SwiGLU) experts: two up-projections."""


@dataclass(frozen=True)
class FusedInto:
    """This operator runs inside another operator's kernel (the named one), which carries its time."""

    op: str


@dataclass(frozen=True)
class CollectiveShape:
    """One collective among ``group`` GPUs (:mod:`costmodel.kernels.collective`)."""

    op: str
    """``"all_reduce"`` or ``"alltoall"`` (the public tables' names)."""
    message_bytes: FloatArray
    """The collective's buffer per GPU (nccl-tests' size) [bytes]."""
    group: int
    """GPUs taking part [-]."""
    fused_norm: bool = False
    """Whether this all-reduce is a residual all-reduce whose following residual add and RMSNorm the engine
    runs inside it, as one fused call (:func:`costmodel.ops.fused_norms`: the norms it removes are these
    all-reduces' norms, so the price of the fused call and the removal follow one rule)."""


KernelShape = GemmShape | AttentionShape | MlaUpShape | MoEShape | CollectiveShape | FusedInto
"""What an :class:`~costmodel.ops.Op` may carry in ``kernel``."""
