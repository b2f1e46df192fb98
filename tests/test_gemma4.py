"""Gemma 4 (gemma4): sliding-window layers and full layers with their own geometry (wider heads, fewer KV
heads, values from k_proj), a dense MLP beside 128 experts in the 26B-A4B; counted like transformers, total
and active, and the KV cache equal to what transformers' attention reads."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
import transformers
from conftest import HF_CONFIGS
from oracles import hf_meta_model
from test_memory import attended_cache_nbytes

import costmodel
from costmodel.errors import CostmodelError
from costmodel.flops import forward_flop
from costmodel.memory import kv_bytes_per_token, kv_cache_bytes, local_window_kv_bytes
from costmodel.ops import forward_ops
from costmodel.params import param_count
from costmodel.specs import ModelProfile

PUBLIC = HF_CONFIGS / "public-gpu"
GEMMA4 = sorted(PUBLIC.glob("*emma-4*_config.json"))

TINY: dict[str, object] = {
    "model_type": "gemma4_text",
    "vocab_size": 101,
    "hidden_size": 64,
    "intermediate_size": 48,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "global_head_dim": 32,
    "num_global_key_value_heads": 1,
    "attention_k_eq_v": True,
    "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    "sliding_window": 5,
    "hidden_size_per_layer_input": 0,
    "enable_moe_block": True,
    "num_experts": 4,
    "top_k_experts": 2,
    "moe_intermediate_size": 16,
    "max_position_embeddings": 128,
}


def hf_active(hf: torch.nn.Module, top_k: int | None, n_experts: int | None) -> int:
    """Parameters one token uses in transformers' model: all but the routed experts it is not sent to."""
    total = sum(p.numel() for p in hf.parameters())
    routed = sum(p.numel() for n, p in hf.named_parameters() if ".experts." in n)
    if not routed or top_k is None or n_experts is None:
        return total
    return total - routed // n_experts * (n_experts - top_k)


@cache
def tiny_gemma4() -> tuple[transformers.PreTrainedModel, ModelProfile]:
    config = transformers.AutoConfig.for_model(**TINY)
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    return hf, costmodel.ModelProfile.from_hf_config(dict(TINY), name="tiny-gemma4")


def test_the_tiny_model_counts_like_transformers() -> None:
    hf, model = tiny_gemma4()
    assert model.attention_windows == {5: 2, None: 2}
    assert model.attention_geometry("full") == (32, 1)
    assert model.attention_geometry("sliding") == (16, 2)
    counts = param_count(model)
    assert counts.total == sum(p.numel() for p in hf.parameters())
    assert counts.active == hf_active(hf, 2, 4)


@pytest.mark.parametrize("path", GEMMA4, ids=lambda p: p.name.removesuffix("_config.json"))
def test_public_configs_count_like_transformers_total_and_active(path: Path) -> None:
    model = costmodel.ModelProfile.from_hf_config(path)
    hf = hf_meta_model(path)
    cfg = hf.config
    counts = param_count(model)
    assert counts.total == sum(p.numel() for p in hf.parameters())
    assert counts.active == hf_active(hf, cfg.top_k_experts, cfg.num_experts)


def test_the_builtins() -> None:
    """Google's model card: 26B-A4B 25.2B total, 3.8B active; 31B dense 30.7B."""
    moe = param_count(costmodel.load_model("gemma-4-26b-a4b"))
    dense = param_count(costmodel.load_model("gemma-4-31b"))
    assert (moe.total, moe.active) == (25_233_141_760, 3_822_530_560)
    assert dense.total == dense.active == 30_697_345_280


@pytest.mark.parametrize(("batch", "context"), [(1, 2), (3, 5), (2, 6), (2, 17)])
def test_kv_cache_equals_what_transformers_attends_to(batch: int, context: int) -> None:
    """Sliding layers: min(context, 5) tokens of 2 KV heads x 16; full layers: every token, 1 KV head
    x 32, keys and values cached apart although both come from k_proj."""
    hf, model = tiny_gemma4()
    attended, _ = attended_cache_nbytes(hf, batch, context)
    assert kv_cache_bytes(model, batch_size=batch, context_len=context, kv_dtype="bf16") == attended
    assert kv_bytes_per_token(model) == 2 * (2 * 1 * 32 * 2)
    assert local_window_kv_bytes(model) == 2 * 5 * (2 * 2 * 16 * 2)


def test_the_operator_graph_counts_the_forward_flops() -> None:
    for model in (tiny_gemma4()[1], costmodel.load_model("gemma-4-26b-a4b")):
        for new, past in ((16, 0), (1, 100), (3, 5000)):
            ops = forward_ops(model, batch_size=2, new_tokens=new, past_tokens=past)
            counted = sum(float(op.flop * op.layers) for op in ops if op.counted)
            f = forward_flop(model, batch_size=2, new_tokens=new, past_tokens=past)
            assert counted == pytest.approx(float(f.total), rel=1e-12)


def test_unsupported_fields_are_refused_by_name() -> None:
    for key, value in [
        ("hidden_size_per_layer_input", 256),
        ("num_kv_shared_layers", 2),
        ("use_bidirectional_attention", "all"),
        ("layer_types", ["chunked_attention"] * 4),
    ]:
        with pytest.raises(CostmodelError, match=f"{key}.*is not supported"):
            costmodel.ModelProfile.from_hf_config(TINY | {key: value})
