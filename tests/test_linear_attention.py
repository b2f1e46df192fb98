"""Gated DeltaNet (Qwen3.5) layers: recurrent state bytes against transformers' cache, FLOPs against
FlopCounterMode over transformers' model and over a reference implementation of the recurrence."""

from __future__ import annotations

import copy
from functools import cache

import pytest
import torch
import transformers
from oracles import gated_delta_rule_reference
from torch.utils.flop_counter import FlopCounterMode
from transformers.models.qwen3_5_moe import modeling_qwen3_5_moe

import costmodel
from costmodel.flops import forward_flop
from costmodel.memory import kv_cache_bytes, linear_attention_state_bytes
from costmodel.specs import ModelProfile


@cache
def tiny_qwen3_5() -> tuple[transformers.PreTrainedModel, ModelProfile]:
    """Three gated DeltaNet layers and one gated full-attention layer; MoE with a gated shared expert."""
    config = transformers.Qwen3_5MoeTextConfig(
        vocab_size=101,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=8,
        linear_value_head_dim=12,
        linear_conv_kernel_dim=4,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=24,
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    return hf, costmodel.ModelProfile.from_hf_config(config.to_dict(), name="tiny-qwen3.5")


def test_the_tiny_model_counts_like_transformers() -> None:
    hf, model = tiny_qwen3_5()
    assert model.attention_windows == {None: 1}
    assert model.n_linear_attention_layers == 3
    assert costmodel.param_count(model).total == sum(p.numel() for p in hf.parameters())


@pytest.mark.parametrize(("batch", "context"), [(1, 1), (2, 3), (3, 9)])
def test_state_and_kv_cache_equal_transformers_cache(batch: int, context: int) -> None:
    """Per linear layer: a conv window of (2 H_k d_k + H_v d_v) x conv_kernel in the model dtype and a
    d_k x d_v fp32 state per value head, constant in the context; the full layer's K/V grows."""
    hf, model = tiny_qwen3_5()
    with torch.no_grad():
        cache_ = hf(torch.randint(0, 101, (batch, context)), use_cache=True).past_key_values
    total = 0
    for layer in cache_.layers:
        if isinstance(layer, transformers.cache_utils.LinearAttentionLayer):
            tensors = [*layer.conv_states.values(), *layer.recurrent_states.values()]
        else:
            tensors = [layer.keys, layer.values]
        total += sum(t.numel() * t.element_size() for t in tensors)
    assert kv_cache_bytes(model, batch_size=batch, context_len=context, kv_dtype="bf16") == total
    assert linear_attention_state_bytes(model) == 3 * ((2 * 2 * 8 + 4 * 12) * 4 * 2 + 4 * 8 * 12 * 4)


def test_reference_recurrence_computes_what_transformers_computes_and_its_flops() -> None:
    torch.manual_seed(0)
    B, T, H, dk, dv = 2, 5, 4, 8, 12
    q, k = torch.randn(B, T, H, dk), torch.randn(B, T, H, dk)
    v, g, beta = torch.randn(B, T, H, dv), -torch.rand(B, T, H), torch.rand(B, T, H)
    state = torch.randn(B, H, dk, dv)
    expected, expected_state = modeling_qwen3_5_moe.torch_recurrent_gated_delta_rule(
        q, k, v, g, beta, initial_state=state, output_final_state=True
    )
    with FlopCounterMode(display=False) as counter:
        out, final = gated_delta_rule_reference(q, k, v, g, beta, state)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(final, expected_state)
    # costmodel: three d_k x d_v state products per value head and token, 2 FLOP per multiply-add
    assert counter.get_total_flops() == 2 * 3 * B * T * H * dk * dv


@pytest.mark.parametrize(("batch", "past"), [(1, 3), (2, 7)])
def test_decode_flops_equal_flop_counter_over_transformers(batch: int, past: int) -> None:
    """One decode step of the whole tiny model (eager attention, eager experts). transformers' recurrent
    step multiplies and sums elementwise (FlopCounterMode counts 0 for it: the reference above counts it),
    and its decode convolution runs over conv_state + the new token without padding, producing one more
    output than it keeps: 2 x channels x conv_kernel FLOP per sequence and layer on top."""
    shared, model = tiny_qwen3_5()
    hf = copy.deepcopy(shared).float()
    hf.config._attn_implementation = "eager"
    hf.config._experts_implementation = "eager"
    # no parameter needs a gradient: FlopCounterMode's module tracker hooks the backward of every module input
    # that requires one, and transformers 5.25 passes parameters to submodules as inputs (its hook then fails)
    hf.requires_grad_(False)
    with torch.no_grad():
        cache_ = hf(torch.randint(0, 101, (batch, past)), use_cache=True).past_key_values
        with FlopCounterMode(display=False) as counter:
            hf(torch.randint(0, 101, (batch, 1)), past_key_values=cache_, use_cache=True)
    f = forward_flop(model, batch_size=batch, new_tokens=1, past_tokens=past, attention="full")
    la = model.linear_attention
    assert la is not None
    recurrence = 2 * 3 * batch * 3 * la.n_value_heads * la.key_head_dim * la.value_head_dim
    discarded_conv_output = 2 * batch * 3 * la.conv_dim * la.conv_kernel
    assert f.total - recurrence + discarded_conv_output == counter.get_total_flops()
