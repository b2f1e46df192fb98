"""One battery of invariants over the estimators, with hypothesis-generated profiles and workloads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import costmodel
from costmodel.flops import forward_flop
from costmodel.memory import kv_cache_bytes, weight_bytes
from costmodel.params import param_count
from costmodel.specs import ModelProfile

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@st.composite
def profiles(draw: st.DrawFn) -> ModelProfile:
    kv = draw(st.sampled_from([1, 2, 4]))
    heads = kv * draw(st.integers(1, 4))
    head_dim = draw(st.sampled_from([8, 16, 32]))
    moe = None
    if draw(st.booleans()):
        n_experts = draw(st.integers(1, 16))
        moe = {
            "n_experts": n_experts,
            "top_k": draw(st.integers(1, n_experts)),
            "expert_d_ff": draw(st.integers(1, 256)),
            "n_shared_experts": draw(st.integers(0, 2)),
            "first_dense_layers": draw(st.integers(0, 1)),
        }
    return ModelProfile.model_validate(
        {
            "name": "random",
            "source": "hypothesis",
            "vocab_size": draw(st.integers(1, 5000)),
            "d_model": heads * head_dim,
            "n_layers": draw(st.integers(1, 8)),
            "n_heads": heads,
            "n_kv_heads": kv,
            "d_ff": draw(st.integers(1, 1024)),
            "mlp": draw(st.sampled_from(["gated", "standard"])),
            "qkv_bias": draw(st.booleans()),
            "norm": draw(st.sampled_from(["rmsnorm", "layernorm"])),
            "tie_embeddings": draw(st.booleans()),
            "max_context": 4096,
            "sliding_window": draw(st.one_of(st.none(), st.integers(1, 512))),
            "moe": moe,
        }
    )


MODELS = [
    costmodel.load_model(n) for n in ("llama-3-8b", "mixtral-8x7b", "deepseek-v3", "mamba-2.8b", "mistral-7b")
]


@given(profiles())
def test_active_never_exceeds_total(model: ModelProfile) -> None:
    p = param_count(model)
    assert 0 < p.active <= p.total


@given(
    profiles(), st.integers(1, 64), st.integers(1, 10_000), st.sampled_from(["bf16", "fp8", "int4", "fp32"])
)
def test_kv_bytes_linear_in_batch_and_context(
    model: ModelProfile, batch: int, context: int, dtype: str
) -> None:
    one = kv_cache_bytes(model, batch_size=1, context_len=1, kv_dtype=dtype)
    got = kv_cache_bytes(model, batch_size=batch, context_len=context, kv_dtype=dtype)
    cached = context if model.sliding_window is None else min(context, model.sliding_window)
    assert got == batch * cached * one
    assert kv_cache_bytes(model, batch_size=2 * batch, context_len=context, kv_dtype=dtype) == 2 * got


@given(profiles(), st.integers(1, 16), st.integers(1, 300), st.integers(0, 3000))
def test_flops_non_negative_and_monotone(model: ModelProfile, batch: int, new: int, past: int) -> None:
    f = forward_flop(model, batch_size=batch, new_tokens=new, past_tokens=past)
    assert all(np.all(v >= 0) for v in f.as_dict().values())
    assert forward_flop(model, batch_size=batch + 1, new_tokens=new, past_tokens=past).total > f.total
    assert forward_flop(model, batch_size=batch, new_tokens=new + 1, past_tokens=past).total > f.total
    assert forward_flop(model, batch_size=batch, new_tokens=new, past_tokens=past + 1).total >= f.total


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_scalar_1d_and_2d_inputs_agree(model: ModelProfile) -> None:
    batch = np.array([1, 3, 64])
    ctx = np.array([1, 128, 4097, 100_000])
    grid_kv = kv_cache_bytes(model, batch_size=batch[:, None], context_len=ctx[None, :])
    grid_fl = forward_flop(model, batch_size=batch[:, None], new_tokens=7, past_tokens=ctx[None, :]).total
    line_kv = kv_cache_bytes(model, batch_size=batch, context_len=ctx[1])
    assert grid_kv.shape == grid_fl.shape == (3, 4)
    np.testing.assert_array_equal(line_kv, grid_kv[:, 1])
    for i, b in enumerate(batch):
        for j, c in enumerate(ctx):
            assert grid_kv[i, j] == kv_cache_bytes(model, batch_size=int(b), context_len=int(c))
            assert (
                grid_fl[i, j]
                == forward_flop(model, batch_size=int(b), new_tokens=7, past_tokens=int(c)).total
            )


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_fewer_bits_never_more_bytes(model: ModelProfile) -> None:
    sizes = [
        weight_bytes(model, weight_dtype=d) for d in ("fp32", "bf16", "int8", "int4", "ternary", "binary")
    ]
    assert sizes == sorted(sizes, reverse=True)


# a numeric string such as "12" is accepted as 12 (pydantic's lax mode, as YAML users expect)
bad_values = st.one_of(
    st.integers(max_value=0), st.just(float("nan")), st.just(-1.5), st.text(alphabet="abc x", max_size=3)
)


@given(
    st.sampled_from(["vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "max_context"]),
    bad_values,
)
def test_bad_sizes_raise_validation_errors_naming_the_field(field: str, value: object) -> None:
    data = costmodel.load_model("llama-3-8b").model_dump() | {field: value}
    with pytest.raises(ValidationError) as info:
        ModelProfile.model_validate(data)
    assert field in str(info.value)


@given(st.integers(1, 64), st.integers(1, 64))
def test_heads_that_do_not_divide_are_rejected(heads: int, kv: int) -> None:
    data = {
        "name": "x",
        "source": "s",
        "vocab_size": 8,
        "d_model": heads * 8,
        "n_layers": 1,
        "n_heads": heads,
        "n_kv_heads": kv,
        "d_ff": 8,
        "max_context": 8,
    }
    if heads % kv == 0:
        assert ModelProfile.model_validate(data).kv_heads == kv
    else:
        with pytest.raises(ValidationError, match="n_kv_heads"):
            ModelProfile.model_validate(data)
