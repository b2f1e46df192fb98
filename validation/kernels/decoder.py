"""A decoder-only transformer built from a costmodel ``ModelProfile``, at random init.

Covers what the profiles describe for attention models: MHA/GQA/MQA, multi-head latent attention
(DeepSeek-V2/V3, latent KV cache), gated and standard MLPs, top-k routed experts with shared experts,
biases, RMSNorm/LayerNorm, learned positions, tied heads and sliding windows. A forward pass takes
``new`` tokens per sequence on top of a cache of ``past`` tokens, so one module serves prefill and
decoding. Rotary embeddings are left out: they are elementwise and change no matmul shape.

Shapes: B batch, n new tokens, p past tokens, d model width, H query heads, Hkv key/value heads,
hd head width, E experts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from costmodel.specs import ModelProfile

ACTIVATIONS = {
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "relu2": lambda x: F.relu(x).square(),  # squared ReLU (Nemotron-H)
}


def _norm(model: ModelProfile, width: int) -> nn.Module:
    if model.norm == "layernorm":
        return nn.LayerNorm(width, bias=model.has_norm_bias)
    return nn.RMSNorm(width)


def sdpa_mask(new: int, past: int, window: int | None, device: torch.device | str) -> Tensor | None:
    """The mask to give ``scaled_dot_product_attention``, or None where its own ``is_causal`` (a prefill
    from an empty cache) or no mask at all (one query, which sees every cached key) says the same: an
    explicit mask keeps a GPU off its fused FlashAttention kernel, which real engines run."""
    within = window is None or past + new <= window
    return None if within and (past == 0 or new == 1) else attention_mask(new, past, window, device)


def attention_mask(new: int, past: int, window: int | None, device: torch.device | str) -> Tensor:
    """Boolean [n, p + n]: query i (absolute position p + i) sees key j iff j <= p + i (and within window)."""
    q_pos = torch.arange(past, past + new, device=device)[:, None]  # [n, 1]
    k_pos = torch.arange(past + new, device=device)[None, :]  # [1, p + n]
    mask = k_pos <= q_pos
    if window is not None:
        mask &= k_pos > q_pos - window
    return mask


@dataclass
class LayerCache:
    """What one layer keeps per sequence: K and V ([B, Hkv, p, hd] each), or the MLA latent ([B, p, r]).

    With ``static=True`` the tensors are preallocated buffers of the full capacity (a decode loop
    writes each step's K/V in place, gpt-fast style) and ``length`` says how many positions are valid;
    otherwise the cache grows by concatenation and ``length`` is the tensors' length.
    """

    k: Tensor
    v: Tensor | None = None
    length: int = -1
    static: bool = False

    def __post_init__(self) -> None:
        if self.length < 0:
            self.length = self.k.shape[2] if self.v is not None else self.k.shape[1]


class Attention(nn.Module):
    def __init__(self, model: ModelProfile) -> None:
        super().__init__()
        d, self.H, self.Hkv, self.hd = model.d_model, model.n_heads or 0, model.kv_heads, model.head_size
        self.q_proj = nn.Linear(d, self.H * self.hd, bias=model.qkv_bias)
        self.k_proj = nn.Linear(d, self.Hkv * self.hd, bias=model.qkv_bias)
        self.v_proj = nn.Linear(d, self.Hkv * self.hd, bias=model.qkv_bias)
        self.o_proj = nn.Linear(self.H * self.hd, d, bias=model.out_bias)

    def empty_cache(self, batch: int, past: int, capacity: int | None = None, **kw: object) -> LayerCache:
        shape = (batch, self.Hkv, capacity or past, self.hd)
        k, v = torch.randn(shape, **kw), torch.randn(shape, **kw)  # type: ignore[arg-type]
        return LayerCache(k, v, length=past, static=capacity is not None)

    def forward(self, x: Tensor, cache: LayerCache, mask: Tensor | None) -> tuple[Tensor, LayerCache]:
        """``mask`` from :func:`sdpa_mask`: None means causal (n > 1, empty cache) or unmasked (n = 1)."""
        B, n, _ = x.shape
        q = self.q_proj(x).view(B, n, self.H, self.hd).transpose(1, 2)  # [B, H, n, hd]
        k = self.k_proj(x).view(B, n, self.Hkv, self.hd).transpose(1, 2)  # [B, Hkv, n, hd]
        v = self.v_proj(x).view(B, n, self.Hkv, self.hd).transpose(1, 2)  # [B, Hkv, n, hd]
        assert cache.v is not None
        p = cache.length
        if cache.static:  # write in place, attend over the valid prefix
            cache.k[:, :, p : p + n] = k
            cache.v[:, :, p : p + n] = v
            new_cache = LayerCache(cache.k, cache.v, length=p + n, static=True)
            k, v = cache.k[:, :, : p + n], cache.v[:, :, : p + n]  # [B, Hkv, p + n, hd]
        else:
            k = torch.cat([cache.k[:, :, :p], k], dim=2)  # [B, Hkv, p + n, hd]
            v = torch.cat([cache.v[:, :, :p], v], dim=2)
            new_cache = LayerCache(k, v)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and n > 1, enable_gqa=self.Hkv != self.H
        )  # [B, H, n, hd]
        y = y.transpose(1, 2).reshape(B, n, self.H * self.hd)  # [B, n, H * hd]
        return self.o_proj(y), new_cache


class LatentAttention(nn.Module):
    """MLA (DeepSeek-V2 §2.1): cache the latent c_KV [B, p, r] and the shared rotary key [B, p, hr];
    rebuild per-head keys and values from the latent for every attended position."""

    def __init__(self, model: ModelProfile) -> None:
        super().__init__()
        assert model.mla is not None
        m, d = model.mla, model.d_model
        self.H, self.m = model.n_heads or 0, m
        if m.q_lora_rank:
            self.q_a_proj = nn.Linear(d, m.q_lora_rank, bias=model.qkv_bias)
            self.q_a_norm = _norm(model, m.q_lora_rank)
            self.q_b_proj = nn.Linear(m.q_lora_rank, self.H * m.qk_head_dim, bias=False)
        else:
            self.q_proj = nn.Linear(d, self.H * m.qk_head_dim, bias=False)
        self.kv_a_proj = nn.Linear(d, m.kv_lora_rank + m.qk_rope_head_dim, bias=model.qkv_bias)
        self.kv_a_norm = _norm(model, m.kv_lora_rank)
        self.kv_b_proj = nn.Linear(m.kv_lora_rank, self.H * (m.qk_nope_head_dim + m.v_head_dim), bias=False)
        self.o_proj = nn.Linear(self.H * m.v_head_dim, d, bias=model.out_bias)

    def empty_cache(self, batch: int, past: int, capacity: int | None = None, **kw: object) -> LayerCache:
        width = self.m.kv_lora_rank + self.m.qk_rope_head_dim
        latent = torch.randn((batch, capacity or past, width), **kw)  # type: ignore[arg-type]
        return LayerCache(latent, length=past, static=capacity is not None)

    def forward(self, x: Tensor, cache: LayerCache, mask: Tensor | None) -> tuple[Tensor, LayerCache]:
        B, n, _ = x.shape
        m, H = self.m, self.H
        q = self.q_b_proj(self.q_a_norm(self.q_a_proj(x))) if m.q_lora_rank else self.q_proj(x)
        q = q.view(B, n, H, m.qk_head_dim).transpose(1, 2)  # [B, H, n, qk_hd]
        p = cache.length
        if cache.static:
            cache.k[:, p : p + n] = self.kv_a_proj(x)
            latent = cache.k[:, : p + n]  # [B, p + n, r + hr]
        else:
            latent = torch.cat([cache.k[:, :p], self.kv_a_proj(x)], dim=1)  # [B, p + n, r + hr]
        c_kv, k_rope = latent.split([m.kv_lora_rank, m.qk_rope_head_dim], dim=-1)
        kv = self.kv_b_proj(self.kv_a_norm(c_kv))  # [B, p + n, H * (nope + v)]
        kv = kv.view(B, -1, H, m.qk_nope_head_dim + m.v_head_dim).transpose(1, 2)
        k_nope, v = kv.split([m.qk_nope_head_dim, m.v_head_dim], dim=-1)  # [B, H, p + n, *]
        k_rope = k_rope[:, None].expand(B, H, -1, m.qk_rope_head_dim)  # one rotary key shared by all heads
        k = torch.cat([k_nope, k_rope], dim=-1)  # [B, H, p + n, qk_hd]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and n > 1
        )  # [B, H, n, v_hd]
        y = y.transpose(1, 2).reshape(B, n, H * m.v_head_dim)
        return self.o_proj(y), LayerCache(
            cache.k if cache.static else latent, length=p + n, static=cache.static
        )


class MLP(nn.Module):
    def __init__(self, model: ModelProfile, d_ff: int) -> None:
        super().__init__()
        d, bias = model.d_model, model.mlp_bias
        self.gated = model.mlp == "gated"
        self.act = ACTIVATIONS[model.activation]
        if self.gated:
            self.gate_proj = nn.Linear(d, d_ff, bias=bias)
        self.up_proj = nn.Linear(d, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.gated:
            return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(self.act(self.up_proj(x)))


class MoE(nn.Module):
    """Top-k routing with softmax weights over the chosen experts, plus always-on shared experts."""

    def __init__(self, model: ModelProfile) -> None:
        super().__init__()
        assert model.moe is not None
        moe = model.moe
        self.top_k = moe.top_k
        self.router = nn.Linear(model.d_model, moe.n_experts, bias=moe.router_bias)
        self.experts = nn.ModuleList(MLP(model, moe.expert_d_ff) for _ in range(moe.n_experts))
        self.shared = nn.ModuleList(MLP(model, moe.shared_d_ff) for _ in range(moe.n_shared_experts))

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # [T, d]
        weights, chosen = self.router(x).topk(self.top_k, dim=-1)  # [T, k]
        weights = weights.softmax(dim=-1)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = (chosen == e).nonzero(as_tuple=True)  # tokens routed to expert e
            if token.numel():
                out.index_add_(0, token, weights[token, slot, None] * expert(x[token]))
        for expert in self.shared:
            out = out + expert(x)
        return out.reshape(shape)


class Layer(nn.Module):
    def __init__(self, model: ModelProfile, index: int) -> None:
        super().__init__()
        self.attn_norm = _norm(model, model.d_model)
        self.mlp_norm = _norm(model, model.d_model)
        self.attn: nn.Module = LatentAttention(model) if model.mla else Attention(model)
        dense = model.moe is None or index < model.moe.first_dense_layers
        self.mlp: nn.Module = MLP(model, model.d_ff or 0) if dense else MoE(model)

    def forward(self, x: Tensor, cache: LayerCache, mask: Tensor | None) -> tuple[Tensor, LayerCache]:
        h, cache = self.attn(self.attn_norm(x), cache, mask)
        x = x + h
        return x + self.mlp(self.mlp_norm(x)), cache


class Decoder(nn.Module):
    """Pre-norm decoder. ``n_layers`` can be lowered to fit a device (``layers=``)."""

    def __init__(self, model: ModelProfile, *, layers: int | None = None) -> None:
        super().__init__()
        if model.ssm is not None:
            raise ValueError(f"{model.name} is an SSM model; the reference decoder covers attention models")
        self.profile = model
        self.window = model.sliding_window
        self.embed_tokens = nn.Embedding(model.vocab_size, model.d_model)
        self.embed_positions = (
            nn.Embedding(model.max_context, model.d_model) if model.position == "learned" else None
        )
        self.layers = nn.ModuleList(Layer(model, i) for i in range(layers or model.n_layers))
        self.final_norm = _norm(model, model.d_model) if model.final_norm else nn.Identity()
        self.lm_head = nn.Linear(model.d_model, model.vocab_size, bias=model.lm_head_bias)
        if model.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def empty_cache(
        self, batch: int, past: int, capacity: int | None = None, **kw: object
    ) -> list[LayerCache]:
        """Random K/V (or latents) standing for ``past`` cached tokens of ``batch`` sequences; with
        ``capacity``, preallocated buffers that hold up to ``capacity`` positions."""
        return [layer.attn.empty_cache(batch, past, capacity, **kw) for layer in self.layers]  # type: ignore[operator]

    def forward(
        self, tokens: Tensor, cache: list[LayerCache], *, n_layers: int | None = None
    ) -> tuple[Tensor, list[LayerCache]]:
        """Logits [B, n, V] for ``tokens`` [B, n] after the cached ones, and the grown cache.

        ``n_layers`` runs only the first layers, then the final norm and head: an early-exit draft that
        shares the target's weights (``cache`` then holds those layers only).
        """
        n = tokens.shape[1]  # tokens: [B, n]
        past = cache[0].length
        x = self.embed_tokens(tokens)  # [B, n, d]
        if self.embed_positions is not None:
            x = x + self.embed_positions(torch.arange(past, past + n, device=tokens.device))
        mask = sdpa_mask(n, past, self.window, tokens.device)  # [n, p + n] or None
        new_cache = []
        for layer, layer_cache in zip(self.layers[: n_layers or len(self.layers)], cache, strict=True):
            x, c = layer(x, layer_cache, mask)
            new_cache.append(c)
        return self.lm_head(self.final_norm(x)), new_cache  # [B, n, V]
