"""Does it fit: one per-device memory model behind size(), estimate(), the serving engine and the CLI.

Expected values are computed by hand from the layout (parameters x bytes, heads x head size x layers),
not from the function under test; the entry points are checked against each other.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import costmodel
from costmodel.cli import app
from costmodel.memory import fit, inference_activation_bytes
from costmodel.serving import kv_capacity_tokens

GiB = 2**30


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
    # the longest context at this batch keeps the prefill chunk of the question (a 128-token prompt)
    assert fit(model, hw, batch_size=16, context_len=s, prompt_len=128).fits
    assert not fit(model, hw, batch_size=16, context_len=s + 1, prompt_len=128).fits


def test_big_models_need_several_gpus() -> None:
    model, hw = costmodel.load_model("llama-3-70b"), costmodel.load_hardware("h100-sxm")
    assert not fit(model, hw, batch_size=1, context_len=2048).fits  # 141 GB of bf16 weights
    assert fit(model, hw, batch_size=1, context_len=2048, tp=2).fits
    assert fit(model, hw, batch_size=1, context_len=2048, pp=2).fits
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
    assert r.weight_bytes_per_gpu == r.weight_bytes  # one GPU
    assert r.kv_cache_bytes_per_gpu == r.kv_cache_bytes
    decode = costmodel.forward_flop(
        model, batch_size=1, new_tokens=1, past_tokens=np.arange(2048, 2304)
    ).total
    assert r.decode_flop_per_token == pytest.approx(decode.mean(), rel=1e-12)


def test_size_rejects_bad_workloads() -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        costmodel.size("gpt2", "cpu", batch_size=0, prompt_len=1, output_len=1)
    with pytest.raises(ValueError, match="tp"):
        costmodel.size(
            "llama-3-8b",
            "h100-sxm",
            batch_size=1,
            prompt_len=1,
            output_len=1,
            deployment=costmodel.Deployment(tp=3),
        )


# ----------------------------------------------------------------------------------------------------
# Regressions of issue 13 item 5 and issue 17 item 10 (each failed on 014c4e1)
# ----------------------------------------------------------------------------------------------------


def test_llama3_70b_on_16_h100_is_sized_per_device_with_replicated_kv_heads() -> None:
    """Issue 13 item 5: size() pooled 16 GPUs' memory and split 8 KV heads over 16 GPUs (largest batch
    815), where estimate() replicated them (408). Both now give the per-device figure, by hand:
    weights 2 x 70,553,706,496 bytes / 16; one KV head (2 x 128 values x 2 bytes) per GPU and layer."""
    model, hw = costmodel.load_model("llama-3-70b"), costmodel.load_hardware("h100-sxm")
    dep = costmodel.Deployment(tp=16)
    prompt, output = 3840, 256
    weights = 2 * 70_553_706_496 / 16
    kv_per_token = 80 * 2 * 1 * 128 * 2  # layers x (K, V) x one head x head size x bf16
    acts = float(inference_activation_bytes(model, batch_size=1, new_tokens=prompt)) / 16
    usable = 0.9 * 80 * GiB
    by_hand = int((usable - weights - acts) // ((prompt + output) * kv_per_token))
    assert 400 <= by_hand <= 410  # the 408, less the activations it left out

    s = costmodel.size(model, hw, batch_size=500, prompt_len=prompt, output_len=output, deployment=dep)
    w = costmodel.Workload(500, prompt, output)
    r = costmodel.estimate(model, hw, w, dep)
    assert s.max_batch_size == int(r.max_batch_size) == by_hand
    assert s.fits is bool(r.fits) is False
    assert s.memory_bytes_per_gpu == pytest.approx(weights + acts + 500 * 4096 * kv_per_token, rel=1e-12)
    assert s.memory_bytes_per_gpu == float(r.memory_bytes_per_gpu)
    assert s.capacity_bytes_per_gpu == r.capacity_bytes_per_gpu == usable


def test_cli_json_never_reports_a_pooled_requirement_next_to_fits() -> None:
    """Issue 13 item 5: `estimate --json` printed required 813 GB < capacity 1237 GB beside fits false."""
    result = CliRunner().invoke(
        app,
        [
            "estimate",
            "--model",
            "llama-3-70b",
            "--tp",
            "16",
            "--batch-size",
            "500",
            "--prompt-len",
            "3840",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "required_bytes" not in report
    assert "capacity_bytes" not in report
    assert report["fits"] is False
    assert report["memory_bytes_per_gpu"] > report["capacity_bytes_per_gpu"]
    assert report["max_batch_size"] < 500


def test_one_memory_per_gpu_for_one_scenario() -> None:
    """Issue 17 item 10: 18.71 GB (estimate: activations of the prompt) vs 18.69 GB (fit: activations of
    prompt + output, over all GPUs) for Llama-3-8B, batch 8, 2048 + 256 tokens on one H100."""
    s = costmodel.size("llama-3-8b", "h100-sxm", batch_size=8, prompt_len=2048, output_len=256)
    r = costmodel.estimate("llama-3-8b", "h100-sxm", costmodel.Workload(8, 2048, 256))
    assert s.memory_bytes_per_gpu == float(r.memory_bytes_per_gpu)
    model = costmodel.load_model("llama-3-8b")
    by_hand = (
        2 * 8_030_261_248
        + 8 * 2304 * 32 * 2 * 8 * 128 * 2  # batch x context x layers x (K, V) x KV heads x head size x bf16
        + float(inference_activation_bytes(model, batch_size=1, new_tokens=2048))
    )
    assert s.memory_bytes_per_gpu == pytest.approx(by_hand, rel=1e-12)


def test_serving_engine_holds_what_fit_says() -> None:
    """The planner's KV capacity and fit() are one model: the largest batch of a context that fit() gives
    is what the engine's token capacity holds."""
    model, hw = costmodel.load_model("llama-3-70b"), costmodel.load_hardware("h100-sxm")
    for tp, pp in ((4, 1), (8, 1), (16, 1), (4, 2)):
        dep = costmodel.Deployment(tp=tp, pp=pp)
        tokens = kv_capacity_tokens(model, hw, deployment=dep, prefill_chunk_tokens=8192)
        f = fit(model, hw, batch_size=1, context_len=1000, prompt_len=8192, tp=tp, pp=pp)
        assert int(f.max_batch_size) == tokens // 1000


def test_prefill_mfu_of_sparse_weights_is_a_fraction_of_the_sparse_peak() -> None:
    """Issue 17 item 10: prefill MFU 115 % with 2:4 sparsity (dense-equivalent FLOPs over the dense
    peak). MFU is now over the peak the sparse matmuls can reach, so it stays below 1."""
    w = costmodel.Workload(np.array([1, 8, 64]), 4096, 16, sparsity="2:4")
    sparse = costmodel.estimate("llama-3-8b", "h100-sxm", w)
    assert np.all(sparse.prefill_mfu <= 1.0)
    dense = costmodel.estimate("llama-3-8b", "h100-sxm", costmodel.Workload(np.array([1, 8, 64]), 4096, 16))
    assert np.all(dense.prefill_mfu <= 1.0)


# ----------------------------------------------------------------------------------------------------
# Property: every entry point gives the same fits / largest batch / memory per GPU
# ----------------------------------------------------------------------------------------------------

settings.register_profile(
    "fit", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

MODELS = costmodel.list_models()
DEVICES = costmodel.list_hardware()


@st.composite
def configurations(draw: st.DrawFn) -> dict[str, object]:
    model = costmodel.load_model(draw(st.sampled_from(MODELS)))
    tp = draw(st.sampled_from([1, 2, 4, 8, 16]))
    pp = draw(st.sampled_from([1, 2, 4]))
    dep = costmodel.Deployment(tp=tp, pp=pp)
    try:
        dep.check(model)
    except ValueError:
        assume(False)
    hardware = costmodel.load_hardware(draw(st.sampled_from(DEVICES)))
    sheet = hardware.datasheet
    links = (sheet.intra_node_bandwidth_gb_per_s, sheet.inter_node_bandwidth_gb_per_s)
    assume(tp * pp == 1 or None not in links)  # a multi-device replica needs its links in the profile
    return {
        "model": model.name,
        "hardware": hardware.name,
        "tp": tp,
        "pp": pp,
        "weight_dtype": draw(st.sampled_from(["bf16", "fp8", "int8", "int4"])),
        "kv_dtype": draw(st.sampled_from(["bf16", "fp8"])),
        "batch_size": draw(st.integers(1, 512)),
        "prompt_len": (prompt := draw(st.integers(1, min(16384, model.max_context - 1)))),
        "output_len": draw(st.integers(1, min(2048, model.max_context - prompt))),  # within the context
    }


@settings(settings.get_profile("fit"))
@given(configurations())
def test_size_estimate_and_cli_agree(c: dict[str, object]) -> None:
    dep = costmodel.Deployment(tp=c["tp"], pp=c["pp"])
    s = costmodel.size(
        c["model"],  # type: ignore[arg-type]
        c["hardware"],  # type: ignore[arg-type]
        batch_size=c["batch_size"],  # type: ignore[arg-type]
        prompt_len=c["prompt_len"],  # type: ignore[arg-type]
        output_len=c["output_len"],  # type: ignore[arg-type]
        weight_dtype=c["weight_dtype"],  # type: ignore[arg-type]
        kv_dtype=c["kv_dtype"],  # type: ignore[arg-type]
        deployment=dep,
    )
    w = costmodel.Workload(
        c["batch_size"],
        c["prompt_len"],
        c["output_len"],
        weight_dtype=c["weight_dtype"],
        kv_dtype=c["kv_dtype"],
    )
    r = costmodel.estimate(c["model"], c["hardware"], w, dep)  # type: ignore[arg-type]
    assert s.fits is bool(r.fits)
    assert s.max_batch_size == int(r.max_batch_size)
    assert s.memory_bytes_per_gpu == float(r.memory_bytes_per_gpu)
    assert s.capacity_bytes_per_gpu == r.capacity_bytes_per_gpu
    assert s.fits == (s.memory_bytes_per_gpu <= s.capacity_bytes_per_gpu)
    # the largest batch is exactly the boundary of `fits`
    assert s.fits == (s.batch_size <= s.max_batch_size)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in c.items()]
    result = CliRunner().invoke(app, ["estimate", *args, "--json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    assert cli["fits"] is s.fits
    assert cli["max_batch_size"] == s.max_batch_size
    assert cli["memory_bytes_per_gpu"] == s.memory_bytes_per_gpu
