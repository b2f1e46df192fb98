"""How much KV cache each engine of the silicon sample keeps, and what an admitted request holds of it.

A closed loop of C clients runs everyone at once only while C sequences' caches fit; past that the engine
queues the rest, and TTFT takes the wait for a slot (:mod:`costmodel.closed_loop`). Where that limit falls
is each engine's own memory rule at its defaults, applied here to the row's engine
(:func:`engine_memory`), with the admission rule (:func:`reserved_tokens`):

- **vLLM**: ``gpu_memory_utilization`` 0.9 of the device's memory for weights, activations and the cache
  (https://docs.vllm.ai/en/latest/configuration/engine_args.html); a request takes blocks as its context
  grows (admitted while its prompt's blocks are free, the newest preempted when blocks run out), so a
  running sequence holds isl + osl / 2 tokens on average.
- **SGLang**: its default ``mem_fraction_static`` is (memory - reserved) / memory for weights and cache,
  reserved [MB] = max(512 + 1.5 max(chunked_prefill_size, 2048) + 2 cuda_graph_max_bs + 1024 tp pp / 8,
  10240) on devices of more than 60 GiB (``ServerArgs._handle_gpu_memory_settings``,
  https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/server_args.py): 0.85 on a B200 at its
  16384-token chunk. The sample's SGLang deployments cannot have run at it: DeepSeek-V3/R1 in fp8 at tp 4
  on B200 (measured rows) needs 168 GB of weights per GPU, more than 0.85 of the device, so they set their
  own. Unknown, it is taken as vLLM's 0.9; tokens on demand as vLLM's.
- **TensorRT-LLM**: ``KvCacheConfig.free_gpu_memory_fraction`` 0.9 of the memory left *free* after the
  weights and activations (https://nvidia.github.io/TensorRT-LLM/examples/kvcacheconfig.html); its default
  capacity scheduler ``GUARANTEED_NO_EVICT`` admits a request only when the blocks of its whole prompt and
  output are free and keeps them reserved until it ends
  (https://nvidia.github.io/TensorRT-LLM/performance/performance-tuning-guide/useful-runtime-flags.html),
  so each running sequence holds isl + osl.

The sample does not state the KV cache's format. :data:`KV_FP8_ENGINES` names the engines whose
deployments store it in fp8 when the row's weights are 8-bit or narrower (``gemm_quant_mode`` fp8,
fp8_block or nvfp4): the quantized checkpoints these engines are run with carry an fp8 KV scheme (ModelOpt's
``kv_cache_quant_algo: FP8``) that TensorRT-LLM's ``KvCacheConfig.dtype = "auto"`` takes from the
checkpoint. The choice is made on the calibration rows (docs/serving.md, "KV cache and admission"); bf16
otherwise.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from costmodel.serving import Engine

VLLM_GPU_MEMORY_UTILIZATION = 0.9
"""vLLM's default share of device memory for weights, activations and the KV cache."""
TRTLLM_FREE_GPU_MEMORY_FRACTION = 0.9
"""TensorRT-LLM's default share of the memory left free after weights and activations for the cache."""
KV_FP8_ENGINES: frozenset[str] = frozenset({"trtllm"})
"""Engines whose quantized-weight deployments store the KV cache in fp8 (module docstring)."""
QUANTIZED_LABELS = frozenset({"fp8", "fp8_block", "nvfp4"})
"""``gemm_quant_mode`` labels of 8-bit or narrower weights and activations."""


def kv_dtype(backend: str, gemm_quant_mode: str) -> str:
    """The KV cache format of a row's deployment: fp8 on :data:`KV_FP8_ENGINES` with quantized weights,
    else bf16 (the engines' ``auto``, the model's dtype)."""
    return "fp8" if backend in KV_FP8_ENGINES and gemm_quant_mode in QUANTIZED_LABELS else "bf16"


def engine_memory(backend: str, engine: Engine) -> Engine:
    """``engine`` with the share of device memory its ``backend`` keeps for weights, activations and the
    KV cache at its defaults (:class:`costmodel.serving.Engine`'s ``usable_fraction``)."""
    memory = float(engine.hardware.memory_bytes)
    if backend in ("vllm", "sglang"):
        return dataclasses.replace(engine, usable_fraction=VLLM_GPU_MEMORY_UTILIZATION)
    if backend == "trtllm":
        device = engine.replica_memory()  # what kv_capacity_tokens sizes the cache from
        taken = float(device.weight_bytes + np.max(device.activation_bytes))
        free = max(memory - taken, 0.0)
        usable = (taken + TRTLLM_FREE_GPU_MEMORY_FRACTION * free) / memory
        return dataclasses.replace(engine, usable_fraction=min(max(usable, 1e-6), 1.0))
    return engine


def reserved_tokens(backend: str, isl: npt.ArrayLike, osl: npt.ArrayLike) -> npt.NDArray[np.float64] | None:
    """KV tokens an admitted request holds against the pool [tokens]: its whole isl + osl under
    TensorRT-LLM's ``GUARANTEED_NO_EVICT``; None (the closed loop's on-demand mean, isl + osl / 2) else."""
    if backend == "trtllm":
        return np.asarray(isl, dtype=np.float64) + np.asarray(osl, dtype=np.float64)
    return None
