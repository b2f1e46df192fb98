"""Each engine's default memory rule and admission in the silicon evaluation
(validation/public/engine_memory.py), checked against the engines' documented defaults."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from costmodel.errors import CostmodelError
from costmodel.memory import replica_memory
from costmodel.registry import load_hardware
from costmodel.serving import Engine
from validation.public.engine_memory import (
    VLLM_MAX_NUM_SEQS,
    engine_memory,
    kv_dtype,
    reserved_tokens,
    sglang_cuda_graph_max_bs,
    sglang_mem_fraction_static,
    vllm_max_num_seqs,
    vllm_sampler_peak_bytes,
)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.build("llama-3-70b", "h100-sxm", weight_dtype="fp8", tp=2, max_batched_tokens=8192)


def test_sglang_without_its_own_rule_keeps_nine_tenths_of_the_device(engine: Engine) -> None:
    """SGLang's rows whose script's own setting is not known (InferenceX's) take vLLM's
    gpu_memory_utilization default, 0.9 of the whole device; its own rule applies with ``defaults``."""
    assert engine_memory("sglang", engine).usable_fraction == 0.9
    assert engine_memory("sglang", engine, gpu_memory_utilization=0.95).usable_fraction == 0.95


def test_vllm_sampler_peak_is_the_measured_profile_peak() -> None:
    """The sampler pass of vLLM's profile run at its defaults (1024 dummy requests): Llama-3's 128,256-token
    vocabulary gives 4.77 GiB, Qwen3's 151,936 5.65 GiB, gpt-oss's 201,088 7.47 GiB, within 2 % of the torch
    peaks vLLM (0.11, inferred) logs on an H100 (4.76-4.84, 5.56-5.64, 7.38 GiB; engine_memory's
    docstring); fewer sequences, or a token budget below them, shrink it in proportion."""
    gib = 2.0**30
    for vocab, measured in ((128_256, 4.80), (151_936, 5.60), (201_088, 7.38)):
        assert vllm_sampler_peak_bytes(vocab, 1024, 8192) / gib == pytest.approx(measured, rel=0.02)
    assert vllm_sampler_peak_bytes(128_256, 256, 8192) == pytest.approx(
        vllm_sampler_peak_bytes(128_256, 1024, 8192) / 4
    )
    assert vllm_sampler_peak_bytes(128_256, 1024, 512) == vllm_sampler_peak_bytes(128_256, 512, 8192)


def test_vllm_default_sequences_follow_the_device() -> None:
    """vLLM's batch defaults by device (``get_batch_defaults``): 1024 sequences on GPUs of 70 GiB or more
    other than the A100 (H100, H200, B200, MI300X), 256 on a 48 GB L40S and on an 80 GB A100; an L40S
    engine's profile-run sampler pass then holds a quarter of an H100 engine's bytes, and each cache is
    0.9 of its device less the weights and that device's own sampler peak."""
    for name, sequences in (("h100-sxm", 1024), ("h200", 1024), ("b200", 1024), ("mi300x", 1024),
                            ("l40s", 256), ("a100-80gb", 256), ("a100-40gb", 256), ("l4", 256)):  # fmt: skip
        assert vllm_max_num_seqs(load_hardware(name)) == sequences, name
    build = dict(weight_dtype="fp8", tp=1, max_batched_tokens=8192)
    h100 = Engine.build("llama-3-8b", "h100-sxm", **build)
    l40s = Engine.build("llama-3-8b", "l40s", **build)
    vocab = h100.model.vocab_size
    peak = {
        e.hardware.name: vllm_sampler_peak_bytes(vocab, vllm_max_num_seqs(e.hardware), 8192)
        for e in (h100, l40s)
    }
    assert peak["l40s"] == pytest.approx(peak["h100-sxm"] / 4, rel=1e-12)
    for e in (h100, l40s):  # the cache: 0.9 of the device less the weights and the device's own sampler peak
        memory = float(e.hardware.memory_bytes)
        device = e.replica_memory()
        assert peak[e.hardware.name] > float(device.activation_bytes)  # the sampler sets the peak
        room = engine_memory("vllm", e).usable_fraction * memory - float(
            device.weight_bytes + device.activation_bytes
        )
        assert room == pytest.approx(
            0.9 * memory - float(device.weight_bytes) - peak[e.hardware.name], rel=1e-9
        )
    assert engine_memory("vllm", l40s).usable_fraction == pytest.approx(
        engine_memory("vllm", l40s, max_num_seqs=256).usable_fraction, rel=1e-15
    )


def test_vllm_cache_is_its_share_less_weights_and_the_profile_peak(engine: Engine) -> None:
    """vLLM's cache = gpu_memory_utilization x device - weights - the profile run's peak, the larger of
    the forward pass's activations and the sampler's; the peak does not shrink with TP (every rank holds
    the gathered logits), so a wider engine loses the same bytes per GPU."""
    memory = float(engine.hardware.memory_bytes)
    device = engine.replica_memory()
    sampler = vllm_sampler_peak_bytes(engine.model.vocab_size, VLLM_MAX_NUM_SEQS, 8192)
    assert sampler > float(device.activation_bytes)  # the sampler sets the peak at the defaults
    vllm = engine_memory("vllm", engine)
    room = vllm.usable_fraction * memory - float(device.weight_bytes + device.activation_bytes)
    assert room == pytest.approx(0.9 * memory - float(device.weight_bytes) - sampler, rel=1e-9)
    # the script's own share and max_num_seqs: more sequences, a smaller cache; more share, a larger one
    fewer = engine_memory("vllm", engine, max_num_seqs=64).kv_capacity_tokens()
    assert fewer > vllm.kv_capacity_tokens()
    assert engine_memory("vllm", engine, gpu_memory_utilization=0.95).kv_capacity_tokens() > fewer
    wide = dataclasses.replace(engine, deployment=engine.deployment.model_copy(update={"tp": 4}))
    wide_device = wide.replica_memory()
    wide_room = engine_memory("vllm", wide).usable_fraction * memory - float(
        wide_device.weight_bytes + wide_device.activation_bytes
    )
    assert wide_room == pytest.approx(0.9 * memory - float(wide_device.weight_bytes) - sampler, rel=1e-9)


def test_tensorrt_llm_keeps_nine_tenths_of_what_is_free(engine: Engine) -> None:
    """TensorRT-LLM's free_gpu_memory_fraction 0.9 is of the memory left after weights and activations:
    its cache is 0.9 x (device - weights - activations)."""
    device = replica_memory(
        engine.model, tp=2, weight_dtype="fp8", activation_dtype="bf16", prefill_tokens=8192
    )
    memory = float(engine.hardware.memory_bytes)
    taken = float(device.weight_bytes + device.activation_bytes)
    trt = engine_memory("trtllm", engine)
    room = trt.usable_fraction * memory - taken
    assert room == pytest.approx(0.9 * (memory - taken), rel=1e-9)
    # more room than vLLM's 0.9 of the whole device once the weights take any memory
    assert trt.kv_capacity_tokens() > engine_memory("vllm", engine).kv_capacity_tokens()


def test_only_tensorrt_llm_reserves_whole_requests_and_stores_quantized_models_kv_in_fp8() -> None:
    isl, osl = np.array([1024.0, 8192.0]), np.array([8192.0, 1024.0])
    np.testing.assert_array_equal(reserved_tokens("trtllm", isl, osl), isl + osl)
    assert reserved_tokens("vllm", isl, osl) is None
    assert reserved_tokens("sglang", isl, osl) is None
    assert kv_dtype("trtllm", "fp8") == "fp8"
    assert kv_dtype("trtllm", "nvfp4") == "fp8"
    assert kv_dtype("trtllm", "bf16") == "bf16"
    assert kv_dtype("vllm", "fp8") == "bf16"
    assert kv_dtype("sglang", "nvfp4") == "bf16"


def test_the_free_memory_rule_and_the_cache_read_one_replica_memory() -> None:
    """TensorRT-LLM's free-memory rule and the KV capacity are both sized from Engine.replica_memory,
    formats included (a checkpoint that keeps attention in bf16 beside nvfp4 weights): the cache holds
    floor(0.9 x (device - weights - activations) / KV bytes per token) tokens of that one layout."""
    engine = Engine.build(
        "llama-3-8b",
        "b200",
        weight_dtype="nvfp4",
        component_dtypes={"attention": "bf16"},
        tp=2,
        max_batched_tokens=8192,
    )
    device = replica_memory(
        engine.model, tp=2, weight_dtype="nvfp4", component_dtypes={"attention": "bf16"}, prefill_tokens=8192
    )
    plain = replica_memory(engine.model, tp=2, weight_dtype="nvfp4", prefill_tokens=8192)
    assert device.weight_bytes > plain.weight_bytes  # the bf16 attention weights are counted
    mine = engine.replica_memory()
    assert mine.weight_bytes == device.weight_bytes
    assert mine.kv_bytes_per_token == device.kv_bytes_per_token
    memory = float(engine.hardware.memory_bytes)
    taken = float(device.weight_bytes + np.max(device.activation_bytes))
    trt = engine_memory("trtllm", engine)
    room = trt.usable_fraction * memory - taken
    assert room == pytest.approx(0.9 * (memory - taken), rel=1e-9)
    expected = (0.9 * (memory - taken)) // device.kv_bytes_per_token
    assert abs(trt.kv_capacity_tokens() - expected) <= 1  # the fraction's rounding


# SGLang's default mem_fraction_static (validation/public/engine_memory.py, ServerArgs at sglang 469c63e),
# by hand: reserved MiB = max(512 + 1.5 max(chunk, 2048) + 2 graph_bs + 1024 tp pp / 8, 10240 above 60 GiB)
@pytest.mark.parametrize(
    ("memory_mib", "tp", "chunk", "graph_bs", "expected"),
    [
        # H100 80 GiB, tp 1: 512 + 12288 + 512 + 128 = 13440; 68480 / 81920 = 0.83594
        (81920, 1, 8192, 256, 0.836),
        # B200 180 GiB, tp 4: 512 + 24576 + 1024 + 512 = 26624; 157696 / 184320 = 0.85556
        (184320, 4, 16384, 512, 0.856),
        # H100, tp 1, a 2048-token chunk: 512 + 3072 + 16 + 128 = 3728, floored at 10240; 71680 / 81920
        (81920, 1, 2048, 8, 0.875),
        # a 40 GiB device has no floor: 512 + 6144 + 64 + 128 = 6848; 34112 / 40960 = 0.83281
        (40960, 1, 4096, 32, 0.833),
    ],
)
def test_sglang_mem_fraction_static_is_sglangs_formula(
    memory_mib: int, tp: int, chunk: int, graph_bs: int, expected: float
) -> None:
    got = sglang_mem_fraction_static(
        memory_mib, tp=tp, chunked_prefill_size=chunk, cuda_graph_max_bs=graph_bs
    )
    assert got == expected


def test_sglang_graph_batch_default_by_device_and_tp() -> None:
    assert sglang_cuda_graph_max_bs(81920, 1) == 256
    assert sglang_cuda_graph_max_bs(81920, 4) == 512
    assert sglang_cuda_graph_max_bs(184320, 1) == 512


def test_more_memory_never_fewer_sglang_bytes_or_slots() -> None:
    """Within each of SGLang's device bands (up to 60 GiB, to 160 GiB, beyond) and at a fixed chunk and tp,
    the static share x memory, and so the cache beside fixed weights, never falls as the device grows.
    SGLang's own steps are at the band edges only: its 10 GiB floor from 60 GiB, and graphs to batch 512
    below tp 4 from 160 GiB (where its default chunk also doubles)."""
    memory = np.linspace(20 * 1024, 300 * 1024, 2000)
    for tp, chunk in ((1, 8192), (4, 16384), (8, 2048)):
        static = np.array(
            [
                sglang_mem_fraction_static(
                    m, tp=tp, chunked_prefill_size=chunk, cuda_graph_max_bs=sglang_cuda_graph_max_bs(m, tp)
                )
                * m
                for m in memory
            ]
        )
        band = np.digitize(memory, [60 * 1024, 160 * 1024])
        same_band = band[1:] == band[:-1]
        assert (np.diff(static)[same_band] >= 0).all()
    # and more device memory at one layout never fewer cache tokens on a real model
    engine = Engine.build("qwen3-32b", "h100-sxm", tp=1, max_batched_tokens=8192, max_batch_size=16)
    tokens = []
    for gib in (70, 80, 94, 120, 150):
        sheet = engine.hardware.datasheet
        size = sheet.memory_capacity_gib.model_copy(update={"value": gib})
        hardware = engine.hardware.model_copy(
            update={"datasheet": sheet.model_copy(update={"memory_capacity_gib": size})}
        )
        tokens.append(
            engine_memory(
                "sglang",
                dataclasses.replace(engine, hardware=hardware),
                defaults=True,
                chunked_prefill_size=8192,
            ).kv_capacity_tokens()
        )
    assert tokens == sorted(tokens)
    assert tokens[0] < tokens[-1]


def test_sglang_at_defaults_keeps_static_share_less_weights_for_qwen3_32b_on_h100() -> None:
    """The aiconfigurator H100 rows of Qwen3-32B in bf16 at tp 1: SGLang's 0.836 of 80 GiB less the
    weights, by hand from the model's config (64 layers, hidden 5120, 64 query and 8 KV heads of 128,
    MLP 25600, vocabulary 151936 untied): 32,762,123,264 parameters, 262,144 KV bytes a token."""
    hidden, layers, q, kv, head, mlp, vocab = 5120, 64, 64, 8, 128, 25600, 151936
    per_layer = hidden * head * (q + 2 * kv) + q * head * hidden + 3 * hidden * mlp + 2 * hidden + 2 * head
    params = layers * per_layer + 2 * vocab * hidden + hidden
    assert params == 32_762_123_264
    kv_bytes = layers * kv * head * 2 * 2
    pool = int((0.836 * 80 * 2**30 - 2 * params) // kv_bytes)
    assert pool == 23985
    engine = Engine.build("qwen3-32b", "h100-sxm", tp=1, max_batched_tokens=8192, max_batch_size=16)
    sglang = engine_memory("sglang", engine, defaults=True, chunked_prefill_size=8192)
    assert abs(sglang.kv_capacity_tokens() - pool) <= 1  # the share's float rounding
    assert sglang.kv_capacity_tokens() < engine_memory("sglang", engine).kv_capacity_tokens()
    # sequences at once in the closed loop (isl + osl / 2 each): all 16 clients at isl 1024 / osl 128,
    # 10 at isl 2048 / osl 512
    assert pool // (1024 + 64) == 22
    assert pool // (2048 + 256) == 10


def test_sglangs_own_memory_rule_needs_the_launch_value() -> None:
    engine = Engine.build("qwen3-32b", "h100-sxm", tp=1, max_batched_tokens=8192, max_batch_size=16)
    for bad in (None, 0, 8192.0, True):
        with pytest.raises(CostmodelError, match="reads the launch's chunked_prefill_size"):
            engine_memory("sglang", engine, defaults=True, chunked_prefill_size=bad)  # type: ignore[arg-type]


def test_vllm_default_token_budget_follows_the_device() -> None:
    """vLLM's API server defaults ``max_num_batched_tokens`` by device as it does ``max_num_seqs``
    (``get_batch_defaults``, ``OPENAI_API_SERVER``): 8192 on GPUs of 70 GiB or more other than the A100,
    2048 on an L40S, an L4 and either A100; SGLang and TensorRT-LLM keep theirs."""
    from validation.public.silicon import token_budget

    for name, tokens in (("h100-sxm", 8192), ("b200", 8192), ("mi300x", 8192), ("l40s", 2048),
                         ("l4", 2048), ("a100-80gb", 2048), ("a100-40gb", 2048)):  # fmt: skip
        assert token_budget("vllm", load_hardware(name)) == tokens, name
    assert token_budget("trtllm", load_hardware("a100-80gb")) == 8192
    assert token_budget("sglang", load_hardware("b200")) == 16384
