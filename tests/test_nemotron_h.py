"""Nemotron-H / Nemotron-3 (nemotron_h): single-mixer layers (Mamba-2, attention, MLP, MoE) counted like
transformers, total and active, and the Mamba-2 state and attention KV cache equal to transformers' cache."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import pytest
import torch
import transformers
from conftest import HF_CONFIGS
from oracles import hf_meta_model
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.errors import CostmodelError
from costmodel.flops import forward_flop
from costmodel.memory import kv_bytes_per_token, kv_cache_bytes, mamba2_state_bytes, sequence_state_bytes
from costmodel.ops import forward_ops
from costmodel.params import param_count
from costmodel.specs import ModelProfile

PUBLIC = HF_CONFIGS / "public-gpu"
NEMOTRON_H = sorted(p for p in PUBLIC.glob("*_config.json") if "Nemotron" in p.name)


def hf_active(hf: torch.nn.Module, config: transformers.PretrainedConfig) -> int:
    """Parameters one token uses in transformers' model: all but the routed experts it is not sent to."""
    total = sum(p.numel() for p in hf.parameters())
    routed = sum(p.numel() for n, p in hf.named_parameters() if ".experts." in n)
    if not routed:
        return total
    k, e = config.num_experts_per_tok, config.n_routed_experts
    assert routed % e == 0
    return total - routed // e * (e - k)


@cache
def tiny_nemotron_h() -> tuple[transformers.PreTrainedModel, ModelProfile]:
    """Every block kind once or twice: Mamba-2, MoE with a shared expert, attention, a dense MLP."""
    config = transformers.NemotronHConfig(
        vocab_size=101,
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        mamba_num_heads=4,
        mamba_head_dim=8,
        ssm_state_size=16,
        n_groups=2,
        conv_kernel=4,
        intermediate_size=48,
        n_routed_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=16,
        moe_shared_expert_intermediate_size=24,
        layers_block_type=["mamba", "moe", "attention", "mlp", "mamba"],
        max_position_embeddings=128,
        use_mamba_kernels=False,
    )
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    return hf, costmodel.ModelProfile.from_hf_config(config.to_dict(), name="tiny-nemotron-h")


def test_the_tiny_model_counts_like_transformers() -> None:
    hf, model = tiny_nemotron_h()
    assert model.blocks == ("mamba2", "moe", "attention", "mlp", "mamba2")
    assert (model.n_mamba2_layers, model.n_attention_layers) == (2, 1)
    assert (model.n_moe_layers, model.n_dense_mlp_layers) == (1, 1)
    counts = param_count(model)
    assert counts.total == sum(p.numel() for p in hf.parameters())
    assert counts.active == hf_active(hf, hf.config)


@pytest.mark.parametrize("path", NEMOTRON_H, ids=lambda p: p.name.removesuffix("_config.json"))
def test_public_configs_count_like_transformers_total_and_active(path: Path) -> None:
    model = costmodel.ModelProfile.from_hf_config(path)
    hf = hf_meta_model(path)
    counts = param_count(model)
    assert counts.total == sum(p.numel() for p in hf.parameters())
    assert counts.active == hf_active(hf, hf.config)


def test_a_latent_moe_counts_like_transformers() -> None:
    """Nemotron-3 Super/Ultra: the routed experts work on a moe_latent_size projection of the token."""
    config = tiny_nemotron_h()[0].config.to_dict() | {"moe_latent_size": 8}
    hf_config = transformers.NemotronHConfig(**{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        hf = transformers.AutoModelForCausalLM.from_config(hf_config)
    model = costmodel.ModelProfile.from_hf_config(config)
    assert model.moe is not None
    assert model.moe.latent_dim == 8
    counts = param_count(model)
    assert counts.total == sum(p.numel() for p in hf.parameters())
    assert counts.active == hf_active(hf, hf.config)


def test_the_builtins_carry_the_published_layouts() -> None:
    """Nemotron-H-56B: 54 Mamba-2, 10 attention, 54 MLP layers (arXiv:2504.03624, Table 1: 118 layers,
    ~8% attention); Nemotron-3 Nano: 23 Mamba-2, 6 attention, 23 MoE layers (NVIDIA's model card)."""
    h56 = costmodel.load_model("nemotron-h-56b")
    nano = costmodel.load_model("nemotron-3-nano-30b-a3b")
    assert (h56.n_mamba2_layers, h56.n_attention_layers, h56.n_dense_mlp_layers) == (54, 10, 54)
    assert (nano.n_mamba2_layers, nano.n_attention_layers, nano.n_moe_layers) == (23, 6, 23)
    assert param_count(h56).total == 56_324_350_464
    assert (param_count(nano).total, param_count(nano).active) == (31_577_937_344, 3_580_073_408)
    super_ = param_count(costmodel.load_model("nemotron-3-super-120b-a12b"))
    assert (super_.total, super_.active) == (120_668_687_360, 12_770_216_960)


@pytest.mark.parametrize(("batch", "context"), [(1, 1), (2, 3), (3, 9)])
def test_state_and_kv_cache_equal_transformers_cache(batch: int, context: int) -> None:
    """Per Mamba-2 layer: a conv window of (inner + 2 n_groups d_state) x conv_kernel in the model dtype
    and a head_dim x d_state fp32 state per head, constant in the context; the attention layer's K/V
    grows; MLP and MoE layers cache nothing."""
    hf, model = tiny_nemotron_h()
    with torch.no_grad():
        cache_ = hf(torch.randint(0, 101, (batch, context)), use_cache=True).past_key_values
    total = 0
    for layer in cache_.layers:
        if isinstance(layer, transformers.cache_utils.LinearAttentionLayer):
            tensors = [*layer.conv_states.values(), *layer.recurrent_states.values()]
        elif isinstance(layer, transformers.cache_utils.DynamicLayer):
            tensors = [layer.keys, layer.values]
        else:
            tensors = []
        total += sum(t.numel() * t.element_size() for t in tensors)
    assert kv_cache_bytes(model, batch_size=batch, context_len=context, kv_dtype="bf16") == total
    assert mamba2_state_bytes(model) == 2 * ((4 * 8 + 2 * 2 * 16) * 4 * 2 + 4 * 8 * 16 * 4)
    assert sequence_state_bytes(model) == mamba2_state_bytes(model)
    assert kv_bytes_per_token(model) == 1 * 2 * 2 * 16 * 2  # one attention layer: K and V, 2 heads x 16


def test_the_operator_graph_counts_the_forward_flops() -> None:
    """Every counted operator of the graph sums to forward_flop (matmuls, conv, state products,
    attention), for prefill and decode."""
    builtins = ("nemotron-3-nano-30b-a3b", "nemotron-3-super-120b-a12b")
    for model in (tiny_nemotron_h()[1], *map(costmodel.load_model, builtins)):
        for new, past in ((16, 0), (1, 100)):
            ops = forward_ops(model, batch_size=2, new_tokens=new, past_tokens=past)
            counted = sum(float(op.flop * op.layers) for op in ops if op.counted)
            f = forward_flop(model, batch_size=2, new_tokens=new, past_tokens=past)
            assert counted == pytest.approx(float(f.total), rel=1e-12)
            names = {op.name for op in ops}
            assert {"mamba_in_proj", "mamba_conv", "mamba_scan", "mamba_out_proj"} <= names


def test_unsupported_fields_are_refused_by_name() -> None:
    base = tiny_nemotron_h()[0].config.to_dict()
    for key, value in [
        ("mlp_hidden_act", "silu"),
        ("layers_block_type", ["mamba", "sliding_attention"]),
    ]:
        with pytest.raises(CostmodelError, match=f"{key}.*is not supported"):
            costmodel.ModelProfile.from_hf_config(base | {key: value})


@pytest.mark.parametrize(("batch", "past"), [(1, 3), (2, 7)])
def test_decode_flops_equal_flop_counter_over_transformers(batch: int, past: int) -> None:
    """One decode step of the whole tiny model (eager attention, eager experts). In transformers'
    reference Mamba-2 step the read-out C h is a batched matrix product (counted) but the state update
    dt x B^T is elementwise (FlopCounterMode counts 0 for it: 2 head_dim d_state per head, token and
    layer); its decode convolution runs over conv_state + the new token without padding, producing one
    more output than it keeps: 2 x channels x conv_kernel FLOP per sequence and layer on top."""
    shared, model = tiny_nemotron_h()
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
    m2 = model.mamba2
    assert m2 is not None
    layers = model.n_mamba2_layers
    state_update = 2 * batch * layers * m2.inner * m2.d_state
    discarded_conv_output = 2 * batch * layers * m2.conv_dim * m2.conv_kernel
    assert f.total - state_update + discarded_conv_output == counter.get_total_flops()
