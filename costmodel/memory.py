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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from costmodel import checks
from costmodel.dtypes import check_exact_bytes, get_dtype, map_dtypes, storage_bytes
from costmodel.flops import Recompute
from costmodel.params import Component, Tensor, param_count, tensors
from costmodel.specs import NORMS_PER_LAYER, HardwareProfile, ModelProfile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

QUANTIZABLE: tuple[Component, ...] = ("attention", "mlp", "experts", "shared_experts", "ssm")
"""Components whose matmul weights weight-only quantization converts (GPTQ/AWQ/bitsandbytes practice);
embeddings, the output head, routers, norms and biases stay in ``keep_dtype``."""


Sparsity = Literal["none", "2:4"]


def tensor_bytes(
    t: Tensor,
    *,
    weight_dtype: str = "bf16",
    group_size: int | None = None,
    keep_dtype: str = "bf16",
    sparsity: Sparsity = "none",
) -> int:
    """Bytes of one copy of tensor ``t`` stored as :func:`weight_bytes` stores it [bytes]."""
    checks.choice("sparsity", sparsity, get_args(Sparsity))
    n = t.numel // t.count
    compressible = t.kind == "matmul" and t.component in QUANTIZABLE
    dtype = weight_dtype if compressible or not get_dtype(weight_dtype).quantized else keep_dtype
    if compressible and sparsity == "2:4":
        from costmodel.compression import nm_sparse_bytes

        return int(nm_sparse_bytes(n, n=2, m=4, value_dtype=dtype))
    return int(storage_bytes(n, dtype, group_size=group_size if compressible else 0))


def weight_bytes(
    model: ModelProfile,
    *,
    weight_dtype: str = "bf16",
    group_size: int | None = None,
    keep_dtype: str = "bf16",
    sparsity: Sparsity = "none",
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
    """
    checks.choice("sparsity", sparsity, get_args(Sparsity))
    get_dtype(keep_dtype)
    # scale groups never straddle two tensors: size one copy, then multiply
    return sum(
        tensor_bytes(
            t, weight_dtype=weight_dtype, group_size=group_size, keep_dtype=keep_dtype, sparsity=sparsity
        )
        * t.count
        for t in tensors(model)
    )


def kv_elements_per_token(model: ModelProfile) -> int:
    """Values cached per token per layer [-]: 2 H_kv d_h, or the MLA latent; 0 for an SSM."""
    if model.ssm is not None:
        return 0
    if model.mla is not None:
        return model.mla.kv_lora_rank + model.mla.qk_rope_head_dim
    return 2 * model.kv_heads * model.head_size


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


def kv_bytes_per_token(model: ModelProfile, *, kv_dtype: str = "bf16") -> int:
    """KV-cache bytes one more token of context adds to one sequence, over all layers [bytes]."""
    return int(storage_bytes(kv_elements_per_token(model), kv_dtype)) * model.n_layers


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
    policies belong to the serving model). A sliding window caps the cached tokens at the window; an SSM's
    state is constant in ``context_len``.
    """
    checks.counts("batch_size", batch_size)
    checks.counts("context_len", context_len)
    B = np.asarray(batch_size, dtype=np.int64)
    S = np.asarray(context_len, dtype=np.int64)
    if model.ssm is not None:
        state = map_dtypes(kv_dtype, lambda d: ssm_state_bytes(model, kv_dtype=d))
        return np.asarray(B * state + 0 * S, dtype=np.int64)
    cached = S if model.sliding_window is None else np.minimum(S, model.sliding_window)
    per_token = map_dtypes(kv_dtype, lambda d: kv_bytes_per_token(model, kv_dtype=d))
    check_exact_bytes("KV cache", B.astype(np.float64) * cached * per_token)
    return np.asarray(B * cached * per_token, dtype=np.int64)


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


def lora_params(
    model: ModelProfile, *, rank: int, components: Sequence[Component] = ("attention", "mlp")
) -> int:
    """Trainable parameters of LoRA adapters of rank ``rank`` on every matmul of ``components`` [-].

    An adapter on a ``[out, in]`` weight adds A ``[rank, in]`` and B ``[out, rank]`` (Hu et al. 2021, §4.1).
    """
    checks.positive_int("lora rank", rank)
    return sum(
        rank * (t.shape[0] + t.shape[1]) * t.count
        for t in tensors(model)
        if t.kind == "matmul" and t.component in components
    )


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
    lora_components: Sequence[Component] = ("attention", "mlp"),
) -> TrainingMemory:
    """Memory per GPU to train or fine-tune ``model`` with mixed-precision Adam [bytes].

    ``batch_size`` is the micro-batch per GPU. Full training keeps 2 bytes of bf16 weights, 2 of
    gradients and 12 of fp32 master weights and Adam moments per parameter; ZeRO (Rajbhandari et al.
    2020, Fig. 1) partitions the optimizer state across ``n_gpus`` (stage 1), then the gradients (stage 2),
    then the weights (stage 3). LoRA freezes the base model in bf16 and trains adapters (16 bytes per
    adapter parameter); QLoRA stores the frozen base in nf4 (Dettmers et al. 2023). Activations are
    :func:`training_activation_bytes` for the micro-batch; ZeRO does not partition them.
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
# Does it fit?
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitReport:
    """Inference memory on ``n_gpus`` devices [bytes], and the limits it implies."""

    weight_bytes: int
    kv_cache_bytes: IntArray
    activation_bytes: FloatArray
    capacity_bytes: float
    max_batch_size: IntArray
    max_context_len: IntArray

    @property
    def required_bytes(self) -> FloatArray:
        """Weights + KV cache + activations [bytes]."""
        return np.asarray(self.weight_bytes + self.kv_cache_bytes + self.activation_bytes)

    @property
    def fits(self) -> npt.NDArray[np.bool_]:
        """Whether the requirement is within the usable capacity."""
        return np.asarray(self.required_bytes <= self.capacity_bytes)


def fit(
    model: ModelProfile,
    hardware: HardwareProfile,
    *,
    batch_size: npt.ArrayLike,
    context_len: npt.ArrayLike,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    n_gpus: int = 1,
    usable_fraction: float = 0.9,
    prefill_chunk_tokens: int = 8192,
) -> FitReport:
    """Whether ``batch_size`` sequences of ``context_len`` tokens fit, and the largest batch / context.

    Assumptions: weights and KV cache are spread evenly over ``n_gpus``; ``usable_fraction`` of each
    device's memory is available (the rest goes to the CUDA context, allocator fragmentation and
    workspaces; vLLM's default ``gpu_memory_utilization`` is 0.9); activations are those of prefilling one
    chunk of ``min(context_len, prefill_chunk_tokens)`` tokens of one sequence (chunked prefill).
    ``max_batch_size`` is at ``context_len``; ``max_context_len`` at ``batch_size``, capped at the
    model's ``max_context`` (0 when even that does not fit).
    """
    checks.fraction("usable_fraction", usable_fraction)
    checks.positive_int("n_gpus", n_gpus)
    checks.positive_int("prefill_chunk_tokens", prefill_chunk_tokens)
    checks.counts("batch_size", batch_size)
    checks.counts("context_len", context_len)
    B = np.asarray(batch_size, dtype=np.int64)
    S = np.asarray(context_len, dtype=np.int64)
    w = weight_bytes(model, weight_dtype=weight_dtype)
    kv = kv_cache_bytes(model, batch_size=B, context_len=S, kv_dtype=kv_dtype)
    act = inference_activation_bytes(
        model, batch_size=1, new_tokens=np.minimum(S, prefill_chunk_tokens), activation_dtype=activation_dtype
    )
    capacity = usable_fraction * hardware.memory_bytes * n_gpus
    room = capacity - w - act
    per_seq = kv_cache_bytes(model, batch_size=1, context_len=S, kv_dtype=kv_dtype)
    max_batch = np.where(room > 0, np.floor(room / np.maximum(per_seq, 1)), 0).astype(np.int64)
    per_tok = kv_bytes_per_token(model, kv_dtype=kv_dtype)
    if per_tok == 0:  # SSM: the state does not grow with context
        max_ctx = np.where(room >= kv, model.max_context, 0)
    else:
        max_ctx = np.floor(np.maximum(room, 0) / (np.maximum(B, 1) * per_tok))
        if model.sliding_window is not None:  # the cache stops growing at the window
            max_ctx = np.where(max_ctx >= model.sliding_window, model.max_context, max_ctx)
    max_ctx = np.minimum(max_ctx, model.max_context).astype(np.int64)
    return FitReport(
        weight_bytes=w,
        kv_cache_bytes=kv,
        activation_bytes=act,
        capacity_bytes=capacity,
        max_batch_size=max_batch,
        max_context_len=max_ctx,
    )


# ----------------------------------------------------------------------------------------------------
# Per device of a serving replica
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaMemory:
    """What one device of a ``tp x pp`` serving replica holds [bytes]: its share of the weights, the
    activations of one prefill chunk, and the KV cache (or SSM state) each token / sequence adds."""

    weight_bytes: float
    activation_bytes: FloatArray
    kv_bytes_per_token: float
    state_bytes_per_sequence: float

    def total_bytes(self, *, batch_size: npt.ArrayLike, context_len: npt.ArrayLike) -> FloatArray:
        """Memory of one device serving ``batch_size`` sequences of ``context_len`` cached tokens [bytes]."""
        B = np.asarray(batch_size, dtype=np.float64)
        S = np.asarray(context_len, dtype=np.float64)
        cache = B * (S * self.kv_bytes_per_token + self.state_bytes_per_sequence)
        return np.asarray(self.weight_bytes + self.activation_bytes + cache)

    def free_bytes(self, capacity_bytes: float) -> FloatArray:
        """Room left for the KV cache on a device of ``capacity_bytes`` [bytes] (negative: does not fit)."""
        return np.asarray(capacity_bytes - self.weight_bytes - self.activation_bytes)


def replica_memory(
    model: ModelProfile,
    *,
    tp: int = 1,
    pp: int = 1,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    sparsity: Sparsity = "none",
    prefill_tokens: npt.ArrayLike = 8192,
) -> ReplicaMemory:
    """Per-device memory of a tensor- (``tp``) and pipeline- (``pp``) parallel replica.

    Layout (Megatron-LM): weights split evenly over tp x pp devices; KV heads split over
    min(tp, n_kv_heads) devices and replicated beyond; the MLA latent and Mamba state replicated over tp;
    layers (and so the cache) split over pp; activations of one prefill chunk of ``prefill_tokens`` split
    over tp. The one place :func:`costmodel.estimate.estimate` and the serving model size a device.
    """
    weights = weight_bytes(model, weight_dtype=weight_dtype, sparsity=sparsity) / (tp * pp)
    acts = (
        inference_activation_bytes(
            model, batch_size=1, new_tokens=prefill_tokens, activation_dtype=activation_dtype
        )
        / tp
    )
    kv_split = 1 if model.mla is not None or model.ssm is not None else min(tp, model.kv_heads)
    return ReplicaMemory(
        weight_bytes=weights,
        activation_bytes=np.asarray(acts),
        kv_bytes_per_token=kv_bytes_per_token(model, kv_dtype=kv_dtype) / (kv_split * pp),
        state_bytes_per_sequence=ssm_state_bytes(model, kv_dtype=kv_dtype) / pp,
    )
