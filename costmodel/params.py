"""Exact parameter counts, from the list of weight tensors a model profile implies.

:func:`tensors` enumerates every parameter tensor the way a PyTorch implementation would hold it
(``q_proj.weight`` of shape ``[H*d_h, d]``, one row per output feature). Everything else counts from
that one list — the parameter breakdown here, weight bytes in :mod:`costmodel.memory` and the matmul
FLOPs in :mod:`costmodel.flops` — so the three can never disagree.

The seed notes' estimate P = 12 L d^2 + V d (seed 003, "Model Size Analysis") assumes a 2-matrix MLP
with d_ff = 4d, multi-head attention, no biases and a tied head. For LLaMA-2-7B it gives 6.57e9; the
exact count is 6,738,415,616 (gated 3-matrix MLP with d_ff = 11008 and an untied output head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Literal

from costmodel.specs import ModelProfile

Component = Literal[
    "embedding",
    "position_embedding",
    "attention",
    "linear_attention",
    "mlp",
    "router",
    "experts",
    "shared_experts",
    "ssm",
    "norms",
    "output_head",
]
TensorKind = Literal["matmul", "bias", "norm", "embedding", "other"]


@dataclass(frozen=True)
class Tensor:
    """One parameter tensor, repeated ``count`` times (once per layer, or per layer and expert)."""

    component: Component
    name: str
    shape: tuple[int, ...]
    count: int
    kind: TensorKind

    @property
    def numel(self) -> int:
        """Elements in all ``count`` copies [-]."""
        return math.prod(self.shape) * self.count


@dataclass(frozen=True)
class ParamBreakdown:
    """Parameters by component [-]. ``total`` counts a tied embedding once; ``active`` is what one token
    uses: all but the routed experts it is not sent to (DeepSeek-V3's "37B activated")."""

    embedding: int
    position_embedding: int
    attention: int
    linear_attention: int
    mlp: int
    router: int
    experts: int
    shared_experts: int
    ssm: int
    norms: int
    output_head: int
    active: int

    @property
    def total(self) -> int:
        """All parameters [-]."""
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "active")

    def as_dict(self) -> dict[str, int]:
        """Components, then ``total`` and ``active``, for tables."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "active"}
        return out | {"total": self.total, "active": self.active}


def _linear(
    component: Component, name: str, out_features: int, in_features: int, count: int, bias: bool
) -> list[Tensor]:
    out = [Tensor(component, f"{name}.weight", (out_features, in_features), count, "matmul")]
    if bias:
        out.append(Tensor(component, f"{name}.bias", (out_features,), count, "bias"))
    return out


def _mlp(
    component: Component, model: ModelProfile, d_ff: int, count: int, width: int | None = None
) -> list[Tensor]:
    d, bias = width or model.d_model, model.mlp_bias
    if model.mlp == "gated":
        return [
            *_linear(component, "gate_proj", d_ff, d, count, bias),
            *_linear(component, "up_proj", d_ff, d, count, bias),
            *_linear(component, "down_proj", d, d_ff, count, bias),
        ]
    return [
        *_linear(component, "up_proj", d_ff, d, count, bias),
        *_linear(component, "down_proj", d, d_ff, count, bias),
    ]


def _norm(component: Component, name: str, width: int, count: int, with_bias: bool) -> list[Tensor]:
    out = [Tensor(component, f"{name}.weight", (width,), count, "norm")]
    if with_bias:
        out.append(Tensor(component, f"{name}.bias", (width,), count, "norm"))
    return out


def _linear_attention(model: ModelProfile) -> list[Tensor]:
    """Gated DeltaNet (the layout of transformers' Qwen3_5MoeGatedDeltaNet)."""
    m, d, L = model.linear_attention, model.d_model, model.n_linear_attention_layers
    if m is None or not L:
        return []
    value = m.n_value_heads * m.value_head_dim
    c: Component = "linear_attention"
    return [
        *_linear(c, "in_proj_qkv", m.conv_dim, d, L, False),
        *_linear(c, "in_proj_z", value, d, L, False),  # output gate
        *_linear(c, "in_proj_b", m.n_value_heads, d, L, False),  # beta (write strength)
        *_linear(c, "in_proj_a", m.n_value_heads, d, L, False),  # decay
        Tensor(c, "conv1d.weight", (m.conv_dim, 1, m.conv_kernel), L, "other"),
        Tensor(c, "dt_bias", (m.n_value_heads,), L, "other"),
        Tensor(c, "A_log", (m.n_value_heads,), L, "other"),
        *_norm(c, "norm", m.value_head_dim, L, False),  # gated RMSNorm over each head's output
        *_linear(c, "out_proj", d, value, L, False),
    ]


def _mha(model: ModelProfile, hd: int, Hkv: int, L: int, *, values: bool) -> list[Tensor]:
    """Multi-head (GQA) attention projections of ``L`` layers with heads of ``hd`` and ``Hkv`` KV heads."""
    if not L:
        return []
    d, H = model.d_model, model.n_heads or 0
    gate = 2 if model.attention_output_gate else 1  # q_proj also yields the output gate
    out = [
        *_linear("attention", "q_proj", gate * H * hd, d, L, model.qkv_bias),
        *_linear("attention", "k_proj", Hkv * hd, d, L, model.qkv_bias),
        *(_linear("attention", "v_proj", Hkv * hd, d, L, model.qkv_bias) if values else []),
        *_linear("attention", "o_proj", d, H * hd, L, model.out_bias),
    ]
    if model.qk_norm != "none":  # RMSNorm over head_dim (shared by the heads) or over all heads
        q_width, k_width = (hd, hd) if model.qk_norm == "per_head" else (H * hd, Hkv * hd)
        out += [
            *_norm("attention", "q_norm", q_width, L, False),
            *_norm("attention", "k_norm", k_width, L, False),
        ]
    return out


def _attention(model: ModelProfile) -> list[Tensor]:
    d, L, H = model.d_model, model.n_attention_layers, model.n_heads or 0
    if model.mla is None:
        g = model.global_attention
        n_global = model.attention_groups.get(("full", None), 0) if g is not None else 0
        out = _mha(model, model.head_size, model.kv_heads, L - n_global, values=True)
        if g is not None and n_global:  # Gemma 4's full layers: their own head width and KV heads
            out += _mha(model, g.head_dim, g.n_kv_heads, n_global, values=not g.values_from_keys)
        if model.attention_sinks:  # gpt-oss: one learned logit per query head
            out.append(Tensor("attention", "sinks", (H,), L, "other"))
        return out
    m = model.mla
    # DeepSeek-V2 §2.1.2-2.1.3: queries through an optional low-rank bottleneck; keys and values rebuilt
    # from the compressed latent c_KV (kv_lora_rank) plus one rotary key shared by all heads.
    norm_bias = model.has_norm_bias  # the latent norms follow the model's norm kind
    q = (
        [
            *_linear("attention", "q_a_proj", m.q_lora_rank, d, L, model.qkv_bias),
            *_norm("attention", "q_a_norm", m.q_lora_rank, L, norm_bias),
            *_linear("attention", "q_b_proj", H * m.qk_head_dim, m.q_lora_rank, L, False),
        ]
        if m.q_lora_rank
        else _linear("attention", "q_proj", H * m.qk_head_dim, d, L, False)
    )
    indexer: list[Tensor] = []
    if model.sparse_attention is not None and m.q_lora_rank:
        # DeepSeek-V3.2's lightning indexer: queries from the compressed query, one shared key per token
        s = model.sparse_attention
        indexer = [
            *_linear(
                "attention", "indexer_wq_b", s.index_n_heads * s.index_head_dim, m.q_lora_rank, L, False
            ),
            *_linear("attention", "indexer_wk", s.index_head_dim, d, L, False),
            *_norm("attention", "indexer_k_norm", s.index_head_dim, L, True),  # a LayerNorm
            *_linear("attention", "indexer_weights_proj", s.index_n_heads, d, L, False),
        ]
    return [
        *q,
        *indexer,
        *_linear("attention", "kv_a_proj", m.kv_lora_rank + m.qk_rope_head_dim, d, L, model.qkv_bias),
        *_norm("attention", "kv_a_norm", m.kv_lora_rank, L, norm_bias),
        *_linear("attention", "kv_b_proj", H * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, L, False),
        *_linear("attention", "o_proj", d, H * m.v_head_dim, L, model.out_bias),
    ]


def _ssm(model: ModelProfile) -> list[Tensor]:
    # Mamba-1 block (Gu & Dao 2023, Fig. 3; the layout of the reference mamba_simple.py).
    assert model.ssm is not None
    s, d, L = model.ssm, model.d_model, model.n_layers
    di = s.expand * d
    out = [
        *_linear("ssm", "in_proj", 2 * di, d, L, s.proj_bias),
        Tensor("ssm", "conv1d.weight", (di, 1, s.d_conv), L, "other"),
    ]
    if s.conv_bias:
        out.append(Tensor("ssm", "conv1d.bias", (di,), L, "bias"))
    return [
        *out,
        *_linear("ssm", "x_proj", s.dt_rank + 2 * s.d_state, di, L, False),
        *_linear("ssm", "dt_proj", di, s.dt_rank, L, True),
        Tensor("ssm", "A_log", (di, s.d_state), L, "other"),
        Tensor("ssm", "D", (di,), L, "other"),
        *_linear("ssm", "out_proj", d, di, L, s.proj_bias),
    ]


def _mamba2(model: ModelProfile) -> list[Tensor]:
    """Mamba-2 blocks (the layout of transformers' NemotronHMamba2Mixer)."""
    m, d, L = model.mamba2, model.d_model, model.n_mamba2_layers
    if m is None or not L:
        return []
    c: Component = "ssm"
    out = [
        # z (gate), x, B, C and one time step per head
        *_linear(c, "in_proj", m.inner + m.conv_dim + m.n_heads, d, L, m.proj_bias),
        Tensor(c, "conv1d.weight", (m.conv_dim, 1, m.conv_kernel), L, "other"),
    ]
    if m.conv_bias:
        out.append(Tensor(c, "conv1d.bias", (m.conv_dim,), L, "bias"))
    return [
        *out,
        Tensor(c, "dt_bias", (m.n_heads,), L, "other"),
        Tensor(c, "A_log", (m.n_heads,), L, "other"),
        Tensor(c, "D", (m.n_heads,), L, "other"),
        *_norm(c, "norm", m.inner, L, False),  # gated RMSNorm, per group
        *_linear(c, "out_proj", d, m.inner, L, m.proj_bias),
    ]


@lru_cache(maxsize=256)
def tensors(model: ModelProfile) -> tuple[Tensor, ...]:
    """Every parameter tensor of ``model``, grouped by component.

    A tied output head is not listed (it is the embedding); :mod:`costmodel.flops` still charges its
    matmul.
    """
    d, L = model.d_model, model.n_layers
    out = [Tensor("embedding", "embed_tokens.weight", (model.vocab_size, d), 1, "embedding")]
    if model.position == "learned":
        out.append(
            Tensor("position_embedding", "embed_positions.weight", (model.max_context, d), 1, "embedding")
        )
    norm_bias = model.has_norm_bias
    if model.ssm is not None:
        out += _ssm(model)
        out += _norm("norms", "layer_norm", d, L, norm_bias)  # a Mamba block has one norm
    else:
        out += _attention(model)
        out += _linear_attention(model)
        out += _mamba2(model)
        out += _norm("norms", "layer_norm", d, model.n_layer_norms, norm_bias)
        if model.n_dense_mlp_layers and model.d_ff:
            out += _mlp("mlp", model, model.d_ff, model.n_dense_mlp_layers)
        if model.moe is not None and model.n_moe_layers:
            moe, n = model.moe, model.n_moe_layers
            out += _linear("router", "router", moe.n_experts, d, n, moe.router_bias)
            if moe.router_scales:  # Gemma 4: per-channel input scale, per-expert output scale
                out += [
                    Tensor("router", "router_scale", (d,), n, "other"),
                    Tensor("router", "router_per_expert_scale", (moe.n_experts,), n, "other"),
                ]
            out += _mlp("experts", model, moe.expert_d_ff, n * moe.n_experts, moe.latent_dim)
            if moe.latent_dim:  # every token goes through both, whichever experts it picks
                out += _linear("router", "fc1_latent_proj", moe.latent_dim, d, n, model.mlp_bias)
                out += _linear("router", "fc2_latent_proj", d, moe.latent_dim, n, model.mlp_bias)
            if moe.n_shared_experts:
                out += _mlp("shared_experts", model, moe.shared_d_ff, n * moe.n_shared_experts)
            if moe.shared_expert_gate:
                out += _linear("router", "shared_expert_gate", 1, d, n, False)
    if model.final_norm:
        out += _norm("norms", "final_norm", d, 1, norm_bias)
    if not model.tie_embeddings:
        out += _linear("output_head", "lm_head", model.vocab_size, d, 1, model.lm_head_bias)
    elif model.lm_head_bias:
        out.append(Tensor("output_head", "lm_head.bias", (model.vocab_size,), 1, "bias"))
    return tuple(out)


def param_count(model: ModelProfile) -> ParamBreakdown:
    """Exact parameter count by component, with the active parameters per token.

    Parameters
    ----------
    model : ModelProfile

    Returns
    -------
    ParamBreakdown
        Counts [-]; ``.total`` and ``.active``.
    """
    by: dict[str, int] = {}
    for t in tensors(model):
        by[t.component] = by.get(t.component, 0) + t.numel
    names = [f.name for f in fields(ParamBreakdown) if f.name != "active"]
    total = sum(by.values())
    inactive = 0
    if model.moe is not None:
        per_expert = by.get("experts", 0) // max(model.n_moe_layers * model.moe.n_experts, 1)
        inactive = (model.moe.n_experts - model.moe.top_k) * per_expert * model.n_moe_layers
    return ParamBreakdown(**{n: by.get(n, 0) for n in names}, active=total - inactive)
