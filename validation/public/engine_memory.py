"""How much KV cache each engine of the silicon sample keeps, and what an admitted request holds of it.

A closed loop of C clients runs everyone at once only while C sequences' caches fit; past that the engine
queues the rest, and TTFT takes the wait for a slot (:mod:`costmodel.closed_loop`). Where that limit falls
is each engine's own memory rule at its defaults, applied here to the row's engine
(:func:`engine_memory`), with the admission rule (:func:`reserved_tokens`):

- **vLLM**: ``gpu_memory_utilization`` 0.9 of the device's memory for weights, activations and the cache
  (https://docs.vllm.ai/en/latest/configuration/engine_args.html); a request takes blocks as its context
  grows (admitted while its prompt's blocks are free, the newest preempted when blocks run out), so a
  running sequence holds isl + osl / 2 tokens on average. The activations are what vLLM's profile run
  peaked at, and the cache is what is left (``Worker.determine_available_memory``: requested memory less
  weights, the torch peak and non-torch memory). The profile run is a forward pass of
  ``max_num_batched_tokens`` tokens and then a sampler pass over ``min(max_num_seqs,
  max_num_batched_tokens)`` dummy requests (``GPUModelRunner.profile_run`` / ``_dummy_sampler_run``,
  https://github.com/vllm-project/vllm/blob/main/vllm/v1/worker/gpu_model_runner.py), whose full-vocabulary
  logits every TP rank holds (gathered) in fp32, with the sampler's sort, softmax and cumulative sums over
  them: :func:`vllm_sampler_peak_bytes`, :data:`VLLM_SAMPLER_BYTES_PER_LOGIT` per logit, with
  ``max_num_seqs`` by default 1024 on GPUs of 70 GiB or more other than the A100 and 256 on the others
  (``EngineArgs.get_batch_defaults``,
  https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py; :func:`vllm_max_num_seqs`).
  At the large GPUs' defaults the sampler, not the forward pass, sets the peak: 4.8-7.4 GiB per GPU at
  tp 1 and 2 alike in the measurements below, against the forward pass's 0.16-0.8 GiB
  (:func:`engine_memory` takes the larger).
- **SGLang**: its default ``mem_fraction_static`` is (memory - reserved) / memory for weights and cache,
  reserved [MiB] = max(512 + 1.5 max(chunked_prefill_size, 2048) + 2 cuda_graph_max_bs + 1024 tp pp / 8,
  10240) on devices of more than 60 GiB, with ``cuda_graph_max_bs`` 256 below tp 4 and 512 from it below
  160 GiB, 512 above (``ServerArgs._handle_gpu_memory_settings`` and ``_handle_gpu_memory_settings``'s
  device table,
  https://github.com/sgl-project/sglang/blob/469c63e54e7d94591617ef9590c6aa26d54dc1bb/python/sglang/srt/server_args.py;
  :func:`sglang_mem_fraction_static`): 0.836 of an H100 at tp 1 and its 8192-token chunk, 0.856 of a B200
  at tp 4 and its 16384-token chunk. The activations are inside the reserve, so the cache is that share
  less the weights. It applies where the row ran SGLang's defaults: aiconfigurator's collection
  (:func:`validation.public.harness.row_harness`). InferenceX's SGLang scripts set their own (e.g.
  ``--mem-fraction-static`` 0.82 at tp 8 and 0.95 at tp 4 in
  https://github.com/SemiAnalysisAI/InferenceX/blob/1fc5d73cdd31c7fbdd657f3c7e5ec2180f4b0598/benchmarks/dsr1_fp8_b200.sh):
  their scripts' eras are not all known, so those rows keep vLLM's 0.9; tokens on demand as vLLM's.
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

from costmodel.errors import CostmodelError
from costmodel.serving import Engine
from costmodel.specs import HardwareProfile
from costmodel.token_budget import vllm_large_gpu

MIB = 2**20
VLLM_GPU_MEMORY_UTILIZATION = 0.9
"""vLLM's default share of device memory for weights, activations and the KV cache."""
VLLM_MAX_NUM_SEQS = 1024
"""vLLM's default ``max_num_seqs`` on its large GPUs (:func:`costmodel.token_budget.vllm_large_gpu`: 70 GiB or
more, A100s excepted; the API server's and the ``LLM`` class's, ``EngineArgs.get_batch_defaults``): the
dummy requests of its profile run's sampler pass (:func:`vllm_max_num_seqs`)."""
VLLM_SMALL_GPU_MAX_NUM_SEQS = 256
"""vLLM's default ``max_num_seqs`` on the other GPUs (smaller ones, and every A100)."""
VLLM_SAMPLER_BYTES_PER_LOGIT = 39.0
"""Device bytes per (request, vocabulary entry) at the peak of vLLM's profile-run sampler pass [B]: the
logits in the model's dtype and in fp32, the sort's values (fp32) and indices (int64) of top-k / top-p, the
softmax and its cumulative sum (fp32), masks and the random draw: 2 + 4 + 4 + 8 + 4 + 4 + ... ~ 30-40 B.
Measured (llm-d-benchmark's logs of vLLM on one H100 of 79.18 GiB,
https://github.com/llm-d/llm-d-benchmark/blob/4f4d449/config_explorer/empirical-vllm-memory-results.md):
the profile run's torch peak is 4.76 GiB for Llama-3.1-8B and 4.84 GiB for Llama-3.3-70B fp8 at tp 2
(vocabulary 128,256), 5.56 GiB for Qwen3-0.6B and 5.64 GiB for Qwen3-32B at tp 1 and tp 2 alike (151,936),
7.38 GiB for gpt-oss-20b and -120b (201,088): 38.5-39.6 B per logit at 1024 requests, across text-only
models of 0.6B to 120B parameters at tp 1 and 2 on that one device. Those rows ran the ``latest`` container
image with ``max_num_seqs`` and the token budget unset: their vLLM version (taken as the 0.11.0 of the
one row that states it), and so the 1024 requests and 8192-token budget (its defaults on an H100), are
inferred, not stated there. One row of that file does not fit: Mistral-Small-3.2-24B (multimodal, vocabulary
131,072), stated as vLLM 0.11.0 with an 8192-token budget, peaks at 2.12 GiB where 39 B per logit at 1024
requests predicts 4.87 GiB (17 B per logit if it too ran 1024, which is not stated either); the file gives no
measured cause."""
TRTLLM_FREE_GPU_MEMORY_FRACTION = 0.9
"""TensorRT-LLM's default share of the memory left free after weights and activations for the cache."""
KV_FP8_ENGINES: frozenset[str] = frozenset({"trtllm"})
"""Engines whose quantized-weight deployments store the KV cache in fp8 (module docstring)."""
QUANTIZED_LABELS = frozenset({"fp8", "fp8_block", "nvfp4"})
"""``gemm_quant_mode`` labels of 8-bit or narrower weights and activations."""


SGLANG_RESERVE_FLOOR_MIB = 10 * 1024
"""SGLang's least reserve on devices of more than :data:`SGLANG_FLOOR_DEVICE_MIB` [MiB]."""
SGLANG_FLOOR_DEVICE_MIB = 60 * 1024
SGLANG_LARGE_DEVICE_MIB = 160 * 1024
"""From this device memory [MiB] SGLang captures CUDA graphs up to batch 512 at every tp."""


def sglang_cuda_graph_max_bs(memory_mib: float, tp: int) -> int:
    """SGLang's default ``cuda_graph_max_bs`` on a device of 60 GiB or more (module docstring): 256 below
    tp 4 and 512 from it below 160 GiB, 512 above."""
    if memory_mib < SGLANG_LARGE_DEVICE_MIB and tp < 4:
        return 256
    return 512


def sglang_mem_fraction_static(
    memory_mib: float,
    *,
    tp: int,
    pp: int = 1,
    chunked_prefill_size: int,
    cuda_graph_max_bs: int,
    dp_attention: int = 1,
) -> float:
    """SGLang's default ``mem_fraction_static``: the share of a device of ``memory_mib`` [MiB] for weights
    and the KV cache, what is left after its reserve for metadata, one chunk's activations, CUDA graphs
    and parallelism (module docstring); ``dp_attention``: the attention-DP size when DP attention is on
    (1: off), which pads by 3 MiB per graph batch and rank and 1.5 more above batch 300. Rounded to three
    decimals as SGLang does. Without speculative decoding or piecewise CUDA graphs."""
    reserved = 512 + 1.5 * max(chunked_prefill_size, 2048) + 2 * cuda_graph_max_bs + tp * pp / 8 * 1024
    if dp_attention > 1:
        reserved += cuda_graph_max_bs * dp_attention * (3 + (1.5 if cuda_graph_max_bs > 300 else 0.0))
    if memory_mib > SGLANG_FLOOR_DEVICE_MIB:
        reserved = max(reserved, SGLANG_RESERVE_FLOOR_MIB)
    return max(round((memory_mib - reserved) / memory_mib, 3), 0.0)


def vllm_sampler_peak_bytes(vocab_size: int, max_num_seqs: int, max_num_batched_tokens: int) -> float:
    """Device bytes at the peak of vLLM's profile-run sampler pass [B]: min(``max_num_seqs``,
    ``max_num_batched_tokens``) dummy requests x ``vocab_size`` logits x
    :data:`VLLM_SAMPLER_BYTES_PER_LOGIT`, on every TP rank (module docstring)."""
    requests = min(int(max_num_seqs), int(max_num_batched_tokens))
    return float(requests) * float(vocab_size) * VLLM_SAMPLER_BYTES_PER_LOGIT


def vllm_max_num_seqs(hardware: HardwareProfile) -> int:
    """vLLM's default ``max_num_seqs`` on ``hardware`` (``EngineArgs.get_batch_defaults``,
    https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py): :data:`VLLM_MAX_NUM_SEQS`
    on a large GPU (:func:`costmodel.token_budget.vllm_large_gpu`: 70 GiB or more, its name not an A100's),
    :data:`VLLM_SMALL_GPU_MAX_NUM_SEQS` else."""
    return VLLM_MAX_NUM_SEQS if vllm_large_gpu(hardware) else VLLM_SMALL_GPU_MAX_NUM_SEQS


def kv_dtype(backend: str, gemm_quant_mode: str) -> str:
    """The KV cache format of a row's deployment: fp8 on :data:`KV_FP8_ENGINES` with quantized weights,
    else bf16 (the engines' ``auto``, the model's dtype)."""
    return "fp8" if backend in KV_FP8_ENGINES and gemm_quant_mode in QUANTIZED_LABELS else "bf16"


def engine_memory(
    backend: str,
    engine: Engine,
    *,
    defaults: bool = False,
    gpu_memory_utilization: float | None = None,
    max_num_seqs: int | None = None,
    chunked_prefill_size: int | None = None,
) -> Engine:
    """``engine`` with the share of device memory its ``backend`` keeps for weights, activations and the
    KV cache (:class:`costmodel.serving.Engine`'s ``usable_fraction``). ``defaults``: the row ran the
    engine at its defaults (aiconfigurator's collection), so SGLang's own ``mem_fraction_static`` rule
    applies; else SGLang takes vLLM's 0.9 (module docstring). vLLM: its ``gpu_memory_utilization``
    (default :data:`VLLM_GPU_MEMORY_UTILIZATION`) less what its profile run's sampler pass peaks at above
    the forward pass's activations (:func:`vllm_sampler_peak_bytes`, ``max_num_seqs`` default
    :func:`vllm_max_num_seqs` of the engine's hardware), which the engine's own sizing does not count.
    ``chunked_prefill_size``: the launch's SGLang ``--chunked-prefill-size`` [tokens], which SGLang's own
    rule reads (needed there): the launch value itself, not read back from ``engine.max_batched_tokens``,
    which the token-budget rule raises to the sequences admitted, rounds down to a multiple of the ranks
    and a recipe's ``--max-prefill-tokens`` lowers (:func:`costmodel.token_budget.worker_batched_tokens`)."""
    memory = float(engine.hardware.memory_bytes)
    if backend == "vllm":
        share = VLLM_GPU_MEMORY_UTILIZATION if gpu_memory_utilization is None else gpu_memory_utilization
        forward = float(np.max(engine.replica_memory().activation_bytes))
        sampler = vllm_sampler_peak_bytes(
            engine.model.vocab_size,
            vllm_max_num_seqs(engine.hardware) if max_num_seqs is None else max_num_seqs,
            engine.rank_batched_tokens,
        )
        usable = share - max(sampler - forward, 0.0) / memory
        return dataclasses.replace(engine, usable_fraction=min(max(usable, 1e-6), 1.0))
    if backend == "sglang" and defaults:
        if not (
            isinstance(chunked_prefill_size, int | np.integer)
            and not isinstance(chunked_prefill_size, bool)
            and chunked_prefill_size >= 1
        ):
            raise CostmodelError(
                "SGLang's memory rule reads the launch's chunked_prefill_size: give it as an integer >= 1 "
                f"[tokens], got {chunked_prefill_size!r}"
            )
        dep = engine.deployment
        dp = int(dep.attention_dp)
        static = sglang_mem_fraction_static(
            memory / MIB,
            # SGLang's tp_size counts every GPU of the replica, its attention-DP ranks included
            tp=int(dep.tp) * dp,
            pp=int(dep.pp),
            # the launch's chunked_prefill_size, which SGLang's memory rule reads before it divides it among
            # the attention-DP ranks (handle_data_parallelism runs after _handle_gpu_memory_settings,
            # costmodel.token_budget)
            chunked_prefill_size=int(chunked_prefill_size),
            cuda_graph_max_bs=sglang_cuda_graph_max_bs(memory / MIB, int(dep.tp) * dp),
            dp_attention=dp,
        )
        # the activations are inside SGLang's reserve: give them back, so the cache is static - weights
        device = engine.replica_memory()
        usable = static + float(np.max(device.activation_bytes)) / memory
        return dataclasses.replace(engine, usable_fraction=min(max(usable, 1e-6), 1.0))
    if backend == "sglang":
        share = VLLM_GPU_MEMORY_UTILIZATION if gpu_memory_utilization is None else gpu_memory_utilization
        return dataclasses.replace(engine, usable_fraction=share)
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
