"""Exact matmul FLOPs of a forward pass, and training FLOPs.

Convention: a matrix product of ``[m, k] @ [k, n]`` costs ``2 m k n`` FLOP (one multiply, one add per
term), as ``torch.utils.flop_counter`` counts it. Only matrix products (and the Mamba convolution and
state read-out) are counted; norms, softmax, activations and residual adds are O(tokens x width), well
under 1 % of the total for any real model, and are memory-bound: :mod:`costmodel.ops` charges them by
bytes moved.

One function covers prefill and decoding: ``new_tokens`` tokens per sequence are processed on top of
``past_tokens`` already in the KV cache. Prefill is ``past_tokens=0``; a decode step is ``new_tokens=1``.

Attention scores and values are counted for the keys each query actually attends to:

- ``attention="causal"`` (default): query at absolute position p attends to positions <= p (within
  the sliding window, if any). This is the work a FlashAttention-style kernel does, up to its tile
  granularity.
- ``attention="full"``: every new query attends to every key (past + new), the rectangle that an
  unfused ``softmax(Q K^T) V`` computes before masking — what FlopCounterMode reports for the math
  backend of ``F.scaled_dot_product_attention``.

Departures from the seed notes (seed 003, "Computational Complexity"): the seed gives attention
projections as 4 B S d^2; four d x d matrices cost 2 x 4 = 8 B S d^2. Its MLP line (2 B S d d_ff)
counts one of the two matrices; a 2-matrix MLP costs 4 B S d d_ff and a gated one 6 B S d d_ff.
The score term 2 B S^2 d is Q K^T alone, unmasked; A V adds as much again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from costmodel import checks
from costmodel.params import param_count, tensors
from costmodel.specs import ModelProfile

FloatArray = npt.NDArray[np.float64]
AttentionMask = Literal["causal", "full"]


@dataclass(frozen=True)
class FlopBreakdown:
    """Forward-pass matmul FLOPs by component [FLOP]; arrays broadcast over the workload inputs.

    Values are float64: exact integers up to 2^53 (9.0e15 FLOP), relative error <= 1.1e-16 beyond.
    """

    attention_proj: FloatArray
    attention_scores: FloatArray
    attention_values: FloatArray
    indexer: FloatArray
    linear_attention: FloatArray
    mlp: FloatArray
    router: FloatArray
    experts: FloatArray
    shared_experts: FloatArray
    ssm: FloatArray
    output_head: FloatArray

    @property
    def total(self) -> FloatArray:
        """All counted FLOPs [FLOP]."""
        out: FloatArray = sum((getattr(self, f.name) for f in fields(self)), start=np.zeros(()))
        return out

    def as_dict(self) -> dict[str, FloatArray]:
        """Components and ``total``."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"total": self.total}


def attended_keys(
    new_tokens: npt.ArrayLike,
    past_tokens: npt.ArrayLike = 0,
    *,
    sliding_window: int | None = None,
    attention: AttentionMask = "causal",
    chunk: int | None = None,
) -> FloatArray:
    """Sum over the new queries of the number of keys each attends to [-].

    Causal, no window: ``n * past + n (n + 1) / 2``. With a window ``w`` the query at absolute
    position p sees ``min(p + 1, w)`` keys; the sum over p in [past, past + n) is F(past + n) - F(past)
    with F(m) = sum_{p<m} min(p + 1, w). With chunks of ``c`` tokens (Llama 4's chunked local attention)
    it sees the ``p mod c + 1`` keys of its chunk: F(m) = floor(m / c) c (c + 1) / 2 + r (r + 1) / 2,
    r = m mod c. ``"full"`` counts the whole rectangle ``n * (past + n)``, window or not (what an unfused
    kernel computes before masking).
    """
    n = np.asarray(new_tokens, dtype=np.float64)
    past = np.asarray(past_tokens, dtype=np.float64)
    if attention == "full":
        return np.asarray(n * (past + n), dtype=np.float64)
    if chunk is not None:
        c = float(chunk)

        def in_chunks(m: FloatArray) -> FloatArray:
            r = np.mod(m, c)
            return np.asarray(np.floor(m / c) * c * (c + 1) / 2 + r * (r + 1) / 2, dtype=np.float64)

        return np.asarray(in_chunks(past + n) - in_chunks(past), dtype=np.float64)
    if sliding_window is None:
        return np.asarray(n * past + n * (n + 1) / 2, dtype=np.float64)
    w = float(sliding_window)

    def seen(m: FloatArray) -> FloatArray:  # F(m) above
        return np.where(m <= w, m * (m + 1) / 2, w * (w + 1) / 2 + (m - w) * w)

    return np.asarray(seen(past + n) - seen(past), dtype=np.float64)


def group_attended_keys(
    kind: str,
    size: int | None,
    n: npt.ArrayLike,
    past: npt.ArrayLike,
    attention: AttentionMask,
    *,
    top_k: int | None = None,
) -> FloatArray:
    """Attended keys of one layer of a group of :attr:`ModelProfile.attention_groups`; with ``top_k``
    (sparse attention) a causal query sees at most its ``top_k`` selected keys, ``min(p + 1, top_k)``:
    the window formula with ``w = top_k``."""
    if kind == "chunked":
        return attended_keys(n, past, chunk=size, attention=attention)
    if top_k is not None:
        size = top_k if size is None else min(size, top_k)
    return attended_keys(n, past, sliding_window=size, attention=attention)


def forward_flop(
    model: ModelProfile,
    *,
    batch_size: npt.ArrayLike,
    new_tokens: npt.ArrayLike,
    past_tokens: npt.ArrayLike = 0,
    attention: AttentionMask = "causal",
    logits: Literal["all", "last"] = "all",
) -> FlopBreakdown:
    """Matmul FLOPs of one forward pass over ``new_tokens`` per sequence [FLOP].

    Parameters
    ----------
    model : ModelProfile
    batch_size : int or array
        Sequences B [-].
    new_tokens : int or array
        Tokens processed per sequence in this pass [tokens].
    past_tokens : int or array
        Tokens already in each sequence's KV cache [tokens].
    attention : {"causal", "full"}
        Which score entries count (see the module docstring).
    logits : {"all", "last"}
        Output head for every new token (training, Hugging Face forward) or only the last one per
        sequence (serving engines' prefill).

    Notes
    -----
    Linear layers cost 2 x tokens x (weight elements); a routed MoE layer runs ``top_k`` of its experts
    per token plus the shared ones. Layers of a ``layer_types`` model attend within their own window
    or chunk.
    DeepSeek sparse attention: each causal query attends to at most ``index_topk`` keys, and the indexer
    scores all of them (2 H_I (d_I + 1) FLOP per query-key pair); with ``attention="full"`` both count
    the whole rectangle, as transformers' masked implementation computes it.
    Attention sinks (one extra logit per head in the softmax) and QK-norm add no matrix product. Gated
    DeltaNet layers (Yang et al. 2025, Eq. 10) are counted in their recurrent form: projections, the
    depthwise convolution and three d_k x d_v state products per value head and token; chunked prefill
    kernels (Yang et al. §3.3, chunks of 64) add intra-chunk products on top, not counted here.
    MLA caches the latent (DeepSeek-V2 §2.1.2) and up-projects keys and values from it for all
    ``past + new`` positions each pass; the weight-absorption form that serving engines use for decoding
    trades that up-projection for wider scores and is not modelled here.
    """
    B = checks.counts("batch_size", batch_size, whole=False)  # mean batches of the serving model
    n = checks.counts("new_tokens", new_tokens, whole=False)
    checks.counts("past_tokens", past_tokens, whole=False)
    checks.choice("attention", attention, get_args(AttentionMask))
    checks.choice("logits", logits, ("all", "last"))
    tokens = B * n
    matmul: dict[str, float] = {}
    latent_up = 0.0  # MLA: K and V are rebuilt from the cached latent at every attended position
    for t in tensors(model):
        if t.kind == "matmul" and t.name == "kv_b_proj.weight":
            latent_up = 2.0 * t.numel
        elif t.kind == "matmul":
            matmul[t.component] = matmul.get(t.component, 0.0) + 2.0 * t.numel
    if model.moe is not None and model.n_moe_layers:
        matmul["experts"] = matmul.get("experts", 0.0) * model.moe.top_k / model.moe.n_experts
    head = 2.0 * model.vocab_size * model.d_model  # charged even when the head is tied to the embedding
    head_tokens = tokens if logits == "all" else B * np.minimum(n, 1.0)

    zeros = np.zeros(np.broadcast(B, n, np.asarray(past_tokens)).shape)
    scores = values = ssm_extra = linear_extra = indexer = zeros
    if model.linear_attention is not None:
        la, layers = model.linear_attention, model.n_linear_attention_layers
        # depthwise causal conv over q, k, v; the gated delta rule's three state products per value
        # head (S^T k, the rank-1 update k (v - S^T k)^T beta, the read-out S^T q): 2 d_k d_v each
        conv = la.conv_dim * la.conv_kernel
        state = 3 * la.n_value_heads * la.key_head_dim * la.value_head_dim
        linear_extra = 2.0 * tokens * layers * (conv + state)
    if model.mamba2 is not None:
        m2, layers = model.mamba2, model.n_mamba2_layers
        # Mamba-2 in its recurrent form: the depthwise conv over x, B, C; per head the state update
        # x B^T and the read-out C h (2 head_dim d_state each); the chunked SSD form adds intra-chunk terms
        ssm_extra = 2.0 * tokens * layers * (m2.conv_dim * m2.conv_kernel + 2 * m2.inner * m2.d_state)
    if model.ssm is not None:
        s = model.ssm
        d_inner = s.expand * model.d_model
        # depthwise causal conv (d_conv taps per channel) and the read-out y = C h (d_state terms)
        ssm_extra = 2.0 * tokens * model.n_layers * d_inner * (s.d_conv + s.d_state)
    else:
        # summed over layers: each group of layers attends within its own window (or the whole context)
        sparse = model.sparse_attention
        top_k = sparse.index_topk if sparse else None
        # key-head widths attended, summed over the layers (Gemma 4's full layers have wider heads)
        qk_keys = v_keys = zeros
        for (kind, size), layers in model.attention_groups.items():
            keys = layers * group_attended_keys(kind, size, n, past_tokens, attention, top_k=top_k)
            if model.mla is not None:
                qk_dim, v_dim = model.mla.qk_head_dim, model.mla.v_head_dim
            else:
                qk_dim = v_dim = model.attention_geometry(kind)[0]
            qk_keys, v_keys = qk_keys + keys * qk_dim, v_keys + keys * v_dim
        if sparse is not None:
            # the indexer scores every (causal) key: q.k over its heads, then the weighted sum over heads
            every = model.n_layers * attended_keys(n, past_tokens, attention=attention)
            indexer = 2.0 * B * every * sparse.index_n_heads * (sparse.index_head_dim + 1)
        H = float(model.n_heads or 0)
        scores = 2.0 * B * qk_keys * H
        values = 2.0 * B * v_keys * H

    def per_token(component: str) -> FloatArray:
        return zeros + tokens * matmul.get(component, 0.0)

    context = B * (np.asarray(past_tokens, dtype=np.float64) + n)
    return FlopBreakdown(
        attention_proj=per_token("attention") + context * latent_up,
        attention_scores=zeros + scores,
        attention_values=zeros + values,
        indexer=zeros + indexer,
        linear_attention=per_token("linear_attention") + linear_extra,
        mlp=per_token("mlp"),
        router=per_token("router"),
        experts=per_token("experts"),
        shared_experts=per_token("shared_experts"),
        ssm=per_token("ssm") + ssm_extra,
        output_head=zeros + head_tokens * head,
    )


Recompute = Literal["none", "selective", "full"]


def training_flop(
    model: ModelProfile,
    *,
    batch_size: npt.ArrayLike,
    seq_len: npt.ArrayLike,
    recompute: Recompute = "none",
) -> FloatArray:
    """Matmul FLOPs of one training step (forward + backward) over ``batch_size`` sequences [FLOP].

    The backward pass costs twice the forward (a gradient for the input and one for the weight of every
    matmul; Kaplan et al. 2020 §2.1, Narayanan et al. 2021 §5.1). Activation recomputation adds a second
    forward: all of it with ``"full"`` checkpointing, only the attention score and value products with
    ``"selective"`` (Korthikanti et al. 2022, §4.2).
    """
    checks.choice("recompute", recompute, get_args(Recompute))
    f = forward_flop(model, batch_size=batch_size, new_tokens=seq_len, past_tokens=0)
    extra = {
        "none": np.zeros(()),
        "selective": f.attention_scores + f.attention_values,
        "full": f.total,
    }[recompute]
    return np.asarray(3.0 * f.total + extra, dtype=np.float64)


def approx_forward_flop(model: ModelProfile, *, tokens: npt.ArrayLike) -> FloatArray:
    """The 2N rule: 2 x active parameters (without embeddings) per token [FLOP] (Kaplan et al. 2020)."""
    p = param_count(model)
    n = p.active - p.embedding - p.position_embedding
    return np.asarray(2.0 * n * checks.counts("tokens", tokens, whole=False), dtype=np.float64)


def approx_training_flop(model: ModelProfile, *, tokens: npt.ArrayLike) -> FloatArray:
    """The 6N rule: 6 x active non-embedding parameters per token [FLOP] (Kaplan et al. 2020, Eq. 2.1)."""
    return 3.0 * approx_forward_flop(model, tokens=tokens)
