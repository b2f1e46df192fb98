"""Matmul FLOPs against torch.utils.flop_counter.FlopCounterMode running the reference decoder.

On CPU, F.scaled_dot_product_attention's fused kernel is counted as 0 FLOP by FlopCounterMode, so the
reference runs under the MATH backend, whose explicit matmuls over the whole (unmasked) score rectangle
are counted; that is costmodel's ``attention="full"``. The causal count is checked against a brute-force
sum of the mask.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.flops import (
    approx_training_flop,
    attended_keys,
    forward_flop,
    training_flop,
)
from costmodel.specs import MLASpec, ModelProfile, MoESpec
from validation.kernels.decoder import Decoder, attention_mask


def counted_flop(model: ModelProfile, batch: int, new: int, past: int, device: str) -> int:
    """FLOPs FlopCounterMode sees for one forward pass of the reference decoder."""
    torch.manual_seed(0)
    with torch.device(device):
        decoder = Decoder(model)
        cache = decoder.empty_cache(batch, past)
        tokens = torch.randint(0, model.vocab_size, (batch, new))
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            decoder(tokens, cache)
    return int(counter.get_total_flops())


def tiny(**update: object) -> ModelProfile:
    base = dict(
        name="tiny",
        source="test",
        vocab_size=211,
        d_model=64,
        n_layers=2,
        n_heads=8,
        d_ff=96,
        max_context=512,
    )
    return ModelProfile.model_validate(base | update)


CPU_MODELS = {
    "gqa": tiny(n_kv_heads=2),
    "mqa-bias-window": tiny(n_kv_heads=1, qkv_bias=True, out_bias=True, sliding_window=7),
    "gpt2-like": tiny(
        mlp="standard",
        activation="gelu_tanh",
        norm="layernorm",
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        tie_embeddings=True,
        position="learned",
    ),
    "head-dim": tiny(head_dim=24, n_kv_heads=4),
    "moe": tiny(n_kv_heads=2, d_ff=None, moe=MoESpec(n_experts=4, top_k=2, expert_d_ff=48)),
    "deepseek-like": tiny(
        n_layers=3,
        d_ff=128,
        moe=MoESpec(n_experts=8, top_k=3, expert_d_ff=32, n_shared_experts=1, first_dense_layers=1),
        mla=MLASpec(q_lora_rank=40, kv_lora_rank=24, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12),
    ),
    "mla-no-q-lora": tiny(
        mla=MLASpec(kv_lora_rank=24, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
    ),
}
SHAPES = [(1, 1, 0), (1, 9, 0), (3, 5, 11), (2, 1, 37)]  # (batch, new tokens, past tokens)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", CPU_MODELS)
def test_forward_flop_equals_flop_counter(name: str, shape: tuple[int, int, int]) -> None:
    model = CPU_MODELS[name]
    batch, new, past = shape
    expected = counted_flop(model, batch, new, past, "cpu")
    got = forward_flop(model, batch_size=batch, new_tokens=new, past_tokens=past, attention="full").total
    assert got == expected


@pytest.mark.parametrize("name", ["llama-3-8b", "qwen2.5-7b", "gemma-7b", "gpt2-xl"])
def test_real_sized_layers_on_meta(name: str) -> None:
    """Two real-width layers on the meta device (no memory, no data): exact at full size."""
    model = costmodel.load_model(name).model_copy(update={"n_layers": 2})
    expected = counted_flop(model, batch=4, new=128, past=1000, device="meta")
    assert (
        forward_flop(model, batch_size=4, new_tokens=128, past_tokens=1000, attention="full").total
        == expected
    )


@pytest.mark.parametrize("window", [None, 1, 5, 16])
@pytest.mark.parametrize(("new", "past"), [(1, 0), (7, 0), (7, 3), (1, 30), (12, 20)])
def test_causal_keys_equal_the_mask_sum(new: int, past: int, window: int | None) -> None:
    mask = attention_mask(new, past, window, "cpu")
    assert attended_keys(new, past, sliding_window=window) == mask.sum().item()
    assert attended_keys(new, past, attention="full") == mask.numel()


def test_decode_step_of_a_dense_model_is_about_2n() -> None:
    model = costmodel.load_model("llama-2-7b")
    exact = forward_flop(model, batch_size=1, new_tokens=1, past_tokens=0).total
    p = costmodel.param_count(model)
    # one token, no context: every matmul weight once (2 FLOP each; the embedding lookup is free), plus
    # the token attending to itself: q.k and a.v, 2 d FLOP each, in each of the 32 layers
    assert exact == 2 * (p.total - p.embedding - p.norms) + 32 * 4 * 4096


def test_seed_flop_formula_errata() -> None:
    """Seed 003 says attention projections cost 4 B S d^2; four d x d matmuls cost 8 B S d^2."""
    model = costmodel.load_model("llama-2-7b").model_copy(update={"n_layers": 1})
    B, S, d = 2, 512, 4096
    f = forward_flop(model, batch_size=B, new_tokens=S)
    assert f.attention_proj == 8 * B * S * d**2
    assert f.mlp == 6 * B * S * d * 11008  # gated: three matrices, 2 FLOP per multiply-add
    assert f.attention_scores == 2 * B * d * S * (S + 1) / 2  # causal half of the seed's 2 B S^2 d


def test_training_flop_is_close_to_6n_for_short_context() -> None:
    model = costmodel.load_model("llama-3-8b")
    exact = training_flop(model, batch_size=1, seq_len=2048)
    six_n = approx_training_flop(model, tokens=2048)
    assert 1.0 < exact / six_n < 1.15  # attention scores add what 6N leaves out
    full = training_flop(model, batch_size=1, seq_len=2048, recompute="full")
    assert full == pytest.approx(exact * 4 / 3)


def test_broadcasting_matches_scalar_calls() -> None:
    model = costmodel.load_model("mistral-7b")
    batch = np.array([1, 4, 16])[:, None]
    past = np.array([0, 100, 5000, 9000])[None, :]
    grid = forward_flop(model, batch_size=batch, new_tokens=3, past_tokens=past).total
    assert grid.shape == (3, 4)
    for i, b in enumerate(batch[:, 0]):
        for j, p in enumerate(past[0]):
            assert (
                grid[i, j] == forward_flop(model, batch_size=int(b), new_tokens=3, past_tokens=int(p)).total
            )


# --- the 2025 architectures, against transformers' own modules as the reference implementation ---


def transformers_flop(kind: str, batch: int, new: int, past: int) -> tuple[int, ModelProfile]:
    """FlopCounterMode over one forward pass of a tiny transformers model of ``kind`` (eager attention,
    whose score rectangle is costmodel's ``attention="full"``; eager experts, a matmul per expert hit)."""
    from test_memory import tiny_hf_new

    shared, model = tiny_hf_new(kind)
    hf = copy.deepcopy(shared).float()
    hf.config._attn_implementation = "eager"
    hf.config._experts_implementation = "eager"
    torch.manual_seed(0)
    with torch.no_grad():
        cache = hf(torch.randint(0, 101, (batch, past)), use_cache=True).past_key_values if past else None
        with FlopCounterMode(display=False) as counter:
            hf(torch.randint(0, 101, (batch, new)), past_key_values=cache, use_cache=True)
    return int(counter.get_total_flops()), model


@pytest.mark.parametrize(("batch", "new", "past"), [(1, 9, 0), (2, 3, 0), (2, 1, 3), (1, 2, 2)])
@pytest.mark.parametrize("kind", ["qwen3", "qwen3_moe", "minimax_m2", "gpt_oss", "llama4"])
def test_forward_flop_equals_flop_counter_over_transformers(
    kind: str, batch: int, new: int, past: int
) -> None:
    """QK-norm (Qwen3, MiniMax-M2), top-k experts without biases (Qwen3-MoE), sinks and biased experts
    (gpt-oss), interleaved MoE/dense layers with a shared expert and chunked layers (Llama 4): none adds
    a matrix product beyond what costmodel counts. Contexts stay within the 5-token window (chunk), where
    transformers' eager rectangle is the whole context."""
    expected, model = transformers_flop(kind, batch, new, past)
    f = forward_flop(model, batch_size=batch, new_tokens=new, past_tokens=past, attention="full")
    got = f.total
    if kind == "llama4":  # transformers' Llama4TextExperts runs every expert on every token (one bmm)
        assert model.moe is not None
        got += f.experts * (model.moe.n_experts / model.moe.top_k - 1)
    assert got == expected


def chunk_mask(new: int, past: int, chunk: int) -> torch.Tensor:
    """Boolean [n, p + n]: query at absolute position q sees key j iff j <= q and j // chunk == q // chunk."""
    q = torch.arange(past, past + new)[:, None]
    k = torch.arange(past + new)[None, :]
    return (k <= q) & (k // chunk == q // chunk)


@pytest.mark.parametrize("chunk", [1, 4, 7])
@pytest.mark.parametrize(("new", "past"), [(1, 0), (7, 0), (7, 3), (1, 30), (12, 20), (30, 5)])
def test_chunked_keys_equal_the_mask_sum(new: int, past: int, chunk: int) -> None:
    assert attended_keys(new, past, chunk=chunk) == chunk_mask(new, past, chunk).sum().item()


@pytest.mark.parametrize(("new", "past"), [(1, 0), (9, 0), (1, 30), (12, 20)])
def test_mixed_local_and_full_layers_sum_their_own_masks(new: int, past: int) -> None:
    model = tiny(
        n_layers=5,
        n_kv_heads=2,
        layer_types=[
            "sliding_attention",
            "full_attention",
            "sliding_attention",
            "full_attention",
            "full_attention",
        ],
        local_window=6,
        attention_sinks=True,
    )
    keys = (
        2 * attention_mask(new, past, 6, "cpu").sum().item()
        + 3 * attention_mask(new, past, None, "cpu").sum().item()
    )
    f = forward_flop(model, batch_size=3, new_tokens=new, past_tokens=past)
    assert f.attention_scores == 2 * 3 * keys * 8 * 8  # 8 heads of width 8
    assert f.attention_values == f.attention_scores


@pytest.mark.parametrize(("batch", "new", "past"), [(1, 6, 0), (2, 1, 4), (2, 3, 2)])
def test_sparse_attention_indexer_flops_equal_flop_counter_over_transformers(
    batch: int, new: int, past: int
) -> None:
    """DeepSeek-V3.2's lightning indexer (q.k per indexer head, then the weighted sum over heads) and
    MLA under transformers' masked (dense) implementation, on the SDPA math backend: costmodel's
    ``attention="full"`` counts."""
    from test_memory import tiny_dsa

    shared, model = tiny_dsa()
    hf = copy.deepcopy(shared).float()
    hf.config._attn_implementation = "sdpa"
    hf.config._experts_implementation = "eager"
    torch.manual_seed(0)
    with torch.no_grad():
        cache = hf(torch.randint(0, 101, (batch, past)), use_cache=True).past_key_values if past else None
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            hf(torch.randint(0, 101, (batch, new)), past_key_values=cache, use_cache=True)
    f = forward_flop(model, batch_size=batch, new_tokens=new, past_tokens=past, attention="full")
    assert f.indexer == 2 * batch * 3 * new * (past + new) * 2 * (8 + 1)  # 3 layers, 2 heads of 8
    assert f.total == counter.get_total_flops()


def test_sparse_attention_attends_to_top_k_keys_and_scores_all() -> None:
    from test_memory import tiny_dsa

    _, model = tiny_dsa()
    f = forward_flop(model, batch_size=1, new_tokens=1, past_tokens=99)  # a decode step at 100 tokens
    dense = forward_flop(
        model.model_copy(update={"sparse_attention": None}), batch_size=1, new_tokens=1, past_tokens=99
    )
    assert f.attention_scores == dense.attention_scores * 3 / 100  # index_topk = 3 of 100 keys
    assert f.indexer == 3 * 100 * 2 * 2 * (8 + 1)
