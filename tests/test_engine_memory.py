"""Each engine's default memory rule and admission in the silicon evaluation
(validation/public/engine_memory.py), checked against the engines' documented defaults."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel.memory import replica_memory
from costmodel.serving import Engine
from validation.public.engine_memory import engine_memory, kv_dtype, reserved_tokens


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.build("llama-3-70b", "h100-sxm", weight_dtype="fp8", tp=2, max_batched_tokens=8192)


def test_vllm_and_sglang_keep_nine_tenths_of_the_device(engine: Engine) -> None:
    """vLLM's gpu_memory_utilization default 0.9 of the whole device (SGLang's own setting, unknown in the
    sample, taken as the same)."""
    for backend in ("vllm", "sglang"):
        assert engine_memory(backend, engine).usable_fraction == 0.9


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
