"""Does it fit: limits agree with the requirement they are derived from."""

from __future__ import annotations

import numpy as np
import pytest

import costmodel
from costmodel.memory import fit


def test_max_batch_is_the_largest_that_fits() -> None:
    model, hw = costmodel.load_model("llama-3-8b"), costmodel.load_hardware("h100-sxm")
    r = fit(model, hw, batch_size=1, context_len=4096)
    b = int(r.max_batch_size)
    assert b > 1
    assert fit(model, hw, batch_size=b, context_len=4096).fits
    assert not fit(model, hw, batch_size=b + 1, context_len=4096).fits


def test_max_context_is_the_longest_that_fits() -> None:
    model, hw = costmodel.load_model("llama-2-7b"), costmodel.load_hardware("l4")
    r = fit(model, hw, batch_size=16, context_len=128)
    s = int(r.max_context_len)
    assert 0 < s < model.max_context
    assert fit(model, hw, batch_size=16, context_len=s, prefill_chunk_tokens=128).fits
    assert not fit(model, hw, batch_size=16, context_len=s + 1, prefill_chunk_tokens=128).fits


def test_big_models_need_several_gpus() -> None:
    model, hw = costmodel.load_model("llama-3-70b"), costmodel.load_hardware("h100-sxm")
    assert not fit(model, hw, batch_size=1, context_len=2048).fits  # 141 GB of bf16 weights
    assert fit(model, hw, batch_size=1, context_len=2048, n_gpus=2).fits
    assert fit(model, hw, batch_size=1, context_len=2048, weight_dtype="int4").fits


def test_ssm_context_is_unbounded_by_memory() -> None:
    model, hw = costmodel.load_model("mamba-2.8b"), costmodel.load_hardware("a10g")
    r = fit(model, hw, batch_size=np.array([1, 64]), context_len=2048)
    np.testing.assert_array_equal(r.max_context_len, [model.max_context] * 2)


def test_size_report_matches_the_building_blocks() -> None:
    r = costmodel.size("llama-3-8b", "h100-sxm", batch_size=8, prompt_len=2048, output_len=256)
    model = costmodel.load_model("llama-3-8b")
    assert r.weight_bytes == costmodel.weight_bytes(model)
    assert r.kv_cache_bytes == costmodel.kv_cache_bytes(model, batch_size=8, context_len=2304)
    decode = costmodel.forward_flop(
        model, batch_size=1, new_tokens=1, past_tokens=np.arange(2048, 2304)
    ).total
    assert r.decode_flop_per_token == pytest.approx(decode.mean(), rel=1e-12)


def test_size_rejects_bad_workloads() -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        costmodel.size("gpt2", "cpu", batch_size=0, prompt_len=1, output_len=1)
