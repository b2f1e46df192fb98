"""The token budget one iteration of an attention-DP rank carries, from the value an engine is launched with.

Every serving engine takes a token budget per iteration at launch (vLLM ``--max-num-batched-tokens``,
TensorRT-LLM ``max_num_tokens``, SGLang ``--chunked-prefill-size``); ``token_budget`` here is always that
launch value, the number one types on the engine's command line or in its YAML. Under attention data
parallelism (d ranks per worker, each of its own scheduler and KV cache) the engines read it differently:

- **vLLM**: each DP rank is its own engine core with its own scheduler ("each DP rank is deployed as a
  separate 'core engine' process", docs/serving/data_parallel_deployment.md at
  https://github.com/vllm-project/vllm/blob/01e4fce07423dafcc832600ba05159fb28dc1126/docs/serving/data_parallel_deployment.md),
  built from the one shared ``SchedulerConfig``, whose ``max_num_batched_tokens`` is the scheduler's
  ``max_num_scheduled_tokens`` (``Scheduler.__init__`` in vllm/v1/core/sched/scheduler.py at
  https://github.com/vllm-project/vllm/blob/b4622cf924bc72504aed99e486062d6633fde39e/vllm/v1/core/sched/scheduler.py):
  the whole value per rank.
- **TensorRT-LLM**: each rank runs its own executor and micro-batch scheduler of ``max_num_tokens``
  (``create_py_executor_instance``, tensorrt_llm/_torch/pyexecutor/_util.py), and its MoE layers size
  their buffers for ``max_num_tokens x dp_size`` because "the maximum number of tokens in MoE are
  multiplied by DP size when attention DP is enabled" (``CutlassFusedMoE.__init__`` in
  tensorrt_llm/_torch/modules/fused_moe/fused_moe_cutlass.py at
  https://github.com/NVIDIA/TensorRT-LLM/blob/7b437aaa73bf5a44b1102aee5c631074da763b8f/tensorrt_llm/_torch/modules/fused_moe/fused_moe_cutlass.py):
  the whole value per rank.
- **SGLang**: under ``--enable-dp-attention`` the server divides ``chunked_prefill_size`` by ``dp_size``
  after choosing its default (``handle_data_parallelism`` in python/sglang/srt/arg_groups/parallel_hook.py
  at
  https://github.com/sgl-project/sglang/blob/22faf6b5bd04f529bd8f350672f9071a1ab3b608/python/sglang/srt/arg_groups/parallel_hook.py,
  formerly ``ServerArgs._handle_data_parallelism`` in server_args.py): a rank gets value // d. SGLang also
  caps the new prompt tokens of one prefill batch at ``--max-prefill-tokens``
  (``ServerArgs.max_prefill_tokens``, default 16,384, not divided under DP attention, in
  python/sglang/srt/server_args.py; the scheduler's ``PrefillAdder`` starts each batch's ``rem_input_tokens``
  from it and stops adding prompts once it is spent, python/sglang/srt/managers/schedule_policy.py,
  https://github.com/sgl-project/sglang): a rank's budget is the smaller of the two. The first prompt of a
  batch is admitted whatever that cap, chunked at the chunk size, which one budget per rank cannot say: a
  launch whose chunk share exceeds ``--max-prefill-tokens`` is read as chunks of ``--max-prefill-tokens``
  (never at the defaults).

:func:`default_token_budget` is the launch value an engine takes when none is given, by engine and device
(each engine's source cited there).

:func:`rank_token_budget` is that rule, the one place the planner (:mod:`costmodel.pareto`) and the
public evaluation (``validation.public.silicon``) turn a launch value into a rank's budget;
:func:`worker_batched_tokens` is the :attr:`costmodel.serving.Engine.max_batched_tokens` of a worker
(its ranks' budgets together) that follows from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from costmodel.errors import CostmodelError, UnknownNameError

if TYPE_CHECKING:
    from costmodel.specs import HardwareProfile

ENGINES = ("sglang", "trtllm", "vllm")
"""The serving engines whose token-budget rule is known (``Efficiency.kernel_engine``'s names)."""

DP_DIVIDED_ENGINES = ("sglang",)
"""Engines that share the launch's token budget among a worker's attention-DP ranks (SGLang's
``chunked_prefill_size // dp_size``); every other engine gives each rank the whole value."""

SGLANG_MAX_PREFILL_TOKENS = 16384
"""SGLang's default ``--max-prefill-tokens`` [tokens]: the most new prompt tokens of one prefill batch
(``ServerArgs.max_prefill_tokens``, module docstring)."""


def _check(name: str, value: object) -> int:
    if not (isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1):
        raise CostmodelError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def rank_token_budget(
    engine: str, token_budget: int, attention_dp: int, *, max_prefill_tokens: int | None = None
) -> int:
    """Tokens one iteration of one attention-DP rank may carry [tokens] when ``engine`` is launched with a
    token budget of ``token_budget`` [tokens] on a worker of ``attention_dp`` ranks [-]: the value itself, or
    for :data:`DP_DIVIDED_ENGINES` (SGLang) its share ``token_budget // attention_dp`` (at least 1) capped at
    SGLang's ``max_prefill_tokens`` [tokens] (None: its default, :data:`SGLANG_MAX_PREFILL_TOKENS`; another
    engine takes none); the module docstring cites each engine's source. With one rank, ``token_budget`` for
    every engine (SGLang's at most its cap). A name outside :data:`ENGINES` raises
    :class:`~costmodel.errors.UnknownNameError`."""
    if engine not in ENGINES:  # a misspelt name must not get the per-rank rule silently
        raise UnknownNameError("engine", engine, ENGINES)
    budget = _check("token_budget", token_budget)
    ranks = _check("attention_dp", attention_dp)
    if engine != "sglang":
        if max_prefill_tokens is not None:
            raise CostmodelError(
                f"max_prefill_tokens is SGLang's launch option (--max-prefill-tokens), not {engine!r}'s"
            )
        return budget
    cap = (
        SGLANG_MAX_PREFILL_TOKENS
        if max_prefill_tokens is None
        else _check("max_prefill_tokens", max_prefill_tokens)
    )
    return min(max(budget // ranks, 1), cap)


def worker_batched_tokens(
    engine: str,
    token_budget: int,
    *,
    attention_dp: int,
    sequences: int,
    max_prefill_tokens: int | None = None,
) -> int:
    """:attr:`costmodel.serving.Engine.max_batched_tokens` of a worker of ``attention_dp`` ranks launched
    with ``token_budget`` [tokens] and admitting up to ``sequences`` sequences at once [-] (its
    ``max_batch_size``): its ranks' budgets together (:func:`rank_token_budget` x ``attention_dp``), at
    least ``sequences`` (every running sequence decodes a token per iteration), so that
    :attr:`~costmodel.serving.Engine.rank_batched_tokens` is the rank's budget wherever that holds its
    share of the sequences. ``max_prefill_tokens``: SGLang's launch value, as :func:`rank_token_budget`."""
    rank = rank_token_budget(engine, token_budget, attention_dp, max_prefill_tokens=max_prefill_tokens)
    return max(rank * int(attention_dp), _check("sequences", sequences))


VLLM_LARGE_GPU_GIB = 70.0
"""Device memory [GiB] from which vLLM takes its large-GPU batch defaults, A100s excepted
(:func:`vllm_large_gpu`)."""
VLLM_TOKEN_BUDGET = (2048, 8192)
"""vLLM's API server's default ``max_num_batched_tokens`` [tokens]: (other GPUs, large GPUs)."""
TRTLLM_TOKEN_BUDGET = 8192
"""TensorRT-LLM's default ``max_num_tokens`` [tokens]."""
SGLANG_CHUNKED_PREFILL_SIZE: tuple[tuple[float, int], ...] = (
    (20.0, 2048),
    (35.0, 2048),
    (60.0, 4096),
    (90.0, 8192),
    (160.0, 8192),
)
"""SGLang's default ``chunked_prefill_size`` [tokens] below each device memory [GiB] (T4 / 4080; A10 / 4090;
A100 40GB / L40; H100 / A100 80GB; H20 / H200), and :data:`SGLANG_LARGE_GPU_CHUNK` from the last up
(B200, MI300)."""
SGLANG_LARGE_GPU_CHUNK = 16384
"""SGLang's default ``chunked_prefill_size`` on a device of 160 GiB or more [tokens]."""


def vllm_large_gpu(hardware: HardwareProfile) -> bool:
    """Whether vLLM takes its large-GPU batch defaults on ``hardware``: a device of
    :data:`VLLM_LARGE_GPU_GIB` or more whose name does not name an A100 (``EngineArgs.get_batch_defaults``
    reads the device's memory and name; a larger budget lowered the A100's throughput, vLLM PR #17885;
    :func:`default_token_budget` cites the source)."""
    named = f"{hardware.name} {hardware.display_name}".lower()
    return bool(hardware.memory_bytes >= VLLM_LARGE_GPU_GIB * 2**30 and "a100" not in named)


def default_token_budget(engine: str, hardware: HardwareProfile) -> int:
    """The token budget per iteration [tokens] ``engine`` is launched with on ``hardware`` when the launch
    sets none: the value of its own flag, before any attention-DP share (:func:`rank_token_budget`).

    - **vLLM** (``vllm serve``, usage context ``OPENAI_API_SERVER``): ``max_num_batched_tokens`` 8,192 on a
      GPU of 70 GiB or more that is not an A100, 2,048 on the others (:func:`vllm_large_gpu`;
      ``EngineArgs.get_batch_defaults`` and ``_set_default_max_num_seqs_and_batched_tokens_args`` in
      vllm/engine/arg_utils.py at
      https://github.com/vllm-project/vllm/blob/99d7eb5d6a512cfcc5a2b104f24ebf2d6cda772b/vllm/engine/arg_utils.py;
      the ``LLM`` class's 16,384 / 8,192 are not a server's). With chunked prefill on (the default) vLLM caps
      it at max_num_seqs x max_model_len only, which no planner launch reaches.
    - **SGLang**: ``chunked_prefill_size`` by the device's memory, 2,048 below 35 GiB, 4,096 below 60 GiB,
      8,192 below 160 GiB and 16,384 from 160 GiB (:data:`SGLANG_CHUNKED_PREFILL_SIZE`;
      ``ServerArgs._handle_gpu_memory_settings`` in python/sglang/srt/server_args.py,
      https://github.com/sgl-project/sglang, read in session 19 from a stored copy without its commit).
    - **TensorRT-LLM**: ``max_num_tokens`` 8,192 (``TorchLlmArgs``,
      https://nvidia.github.io/TensorRT-LLM/llm-api/reference/TorchLlmArgs.html; the performance tuning
      guide, https://nvidia.github.io/TensorRT-LLM/performance/performance-tuning-guide/tuning-max-batch-size-and-max-num-tokens.html).

    The device's memory is its profile's (``HardwareProfile.memory_bytes``), which the engines read as the
    device reports it; no profile sits near a threshold. A name outside :data:`ENGINES` raises
    :class:`~costmodel.errors.UnknownNameError`.

    Only GPUs: a TPU or CPU profile raises :class:`~costmodel.errors.CostmodelError` naming
    ``--token-budget``, for every engine. SGLang's and TensorRT-LLM's rules above are GPU rules. vLLM's
    (the same file; at the commit above the code sits in ``EngineArgs._set_default_args``) has a CPU
    branch, 2,048 x pipeline x tensor-parallel size for the API server, which depends on the layout where
    this returns one value per device; and a TPU table keyed ``"V6E"`` / ``"V5E"`` / ``"V5P"``
    (1,024 / 512 / 256) that the TPU platforms' ``get_device_name`` (``f"TPU {chip_type.name}"`` in
    vllm/platforms/tpu.py at
    https://github.com/vllm-project/vllm/blob/60d375cbb7837e7abb4cbd47c676c06f38a1a47d/vllm/platforms/tpu.py
    and tpu_inference/platforms/tpu_platform.py at
    https://github.com/vllm-project/tpu-inference/blob/b0c2f7dcbaccbbb4a05ebef35375c0ca1ebc4e33/tpu_inference/platforms/tpu_platform.py)
    does not match as read, so which value a TPU launch takes is not settled from source."""
    if engine not in ENGINES:
        raise UnknownNameError("engine", engine, ENGINES)
    if hardware.device_kind != "gpu":
        rule = (
            "vLLM's own CPU default is 2,048 x tp x pp tokens (vllm/engine/arg_utils.py)"
            if hardware.device_kind == "cpu" and engine == "vllm"
            else f"costmodel knows {engine}'s default on GPUs only"
        )
        raise CostmodelError(
            f"no default token budget for {engine} on {hardware.name} (a {hardware.device_kind.upper()}): "
            f"{rule}; give the launch value as token_budget"
        )
    if engine == "vllm":
        return VLLM_TOKEN_BUDGET[int(vllm_large_gpu(hardware))]
    if engine == "trtllm":
        return TRTLLM_TOKEN_BUDGET
    gib = hardware.memory_bytes / 2**30
    smaller = (chunk for below, chunk in SGLANG_CHUNKED_PREFILL_SIZE if gib < below)
    return next(smaller, SGLANG_LARGE_GPU_CHUNK)
