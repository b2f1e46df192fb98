"""The launch flags of the silicon sample's SemiAnalysis InferenceX runs: one :class:`Script` record per
script in one table (:data:`SCRIPTS`), found by one lookup (:func:`launch_script`, :func:`scripts_of` for
a whole table).

Part of the silicon sample comes from SemiAnalysis' InferenceX benchmark (``source_file=2026-03-25.csv``
and ``2026-04-06.csv`` in ``silicon_data_source``; images such as ``vllm/vllm-openai:v0.15.1`` or
``lmsysorg/sglang:v0.5.9-cu130``). Its rows carry the engine and version but not the flags its
per-model scripts launch the engine with, and some of those flags change what a step runs or when a
prompt is scheduled. Each entry of :data:`SCRIPTS` is one (backend, model, system[, precision[, engine
version]]) script, read at the commit cited, with the flags that differ from the engine's defaults
(None: the default). Only rows of an InferenceX run of that backend, model, system (and precision and
version where the key states them) get them; other rows keep the engines' defaults.

Flags that change the kernels or the engine's memory (beside what
:func:`validation.public.silicon.row_formats` and :func:`validation.public.engine_memory.kv_dtype` take
for an engine at its defaults):

- ``kv_dtype``: the KV cache format (vLLM ``kv-cache-dtype: fp8``, SGLang ``--kv-cache-dtype fp8_e4m3``),
  which halves the bytes a decode step's attention reads and doubles the sequences that fit;
- ``expert_activation_dtype``: the routed experts' input format (vLLM's
  ``VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1`` runs gpt-oss's MXFP4 experts on MXFP8 inputs, FlashInfer's
  TRT-LLM-gen MXFP4 x MXFP8 MoE at the fp8 peak, instead of its default ``SM100_FI_MXFP4_BF16``:
  ``get_mxfp4_backend`` in https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/quantization/mxfp4.py);
- ``cuda_graph_max_tokens``: vLLM's ``max-cudagraph-capture-size`` (:func:`cuda_graph_tokens`);
- ``gpu_memory_utilization``: vLLM's ``--gpu-memory-utilization``.

Flags that change when a prompt is prefilled, which differ by model, format, lengths and parallelism
within one engine (:func:`scheduler_flags`, :func:`isl_budget`, :func:`recv_interval`,
:func:`attention_dp_balance`):

- TensorRT-LLM's ``--max_num_tokens``, the token budget per iteration (its default 8192): a prompt longer
  than what is left of it beside the decodes is prefilled in more than one iteration, and a wave of
  prompts is prefilled budget by budget; vLLM's ``--max-num-batched-tokens $((ISL * 2))`` likewise;
- TensorRT-LLM's ``batch_wait_timeout_iters`` / ``batch_wait_max_tokens_ratio`` (0 by default): the
  executor holds new prompts while sequences decode until the timeout or the token threshold
  (:mod:`costmodel.batch_wait`);
- TensorRT-LLM's ``attention_dp_config`` with ``enable_balance`` on attention-DP runs
  (:mod:`costmodel.adp_balance`);
- SGLang's ``--scheduler-recv-interval`` in the DeepSeek-R1 scripts: the scheduler reads new requests
  every I iterations instead of before each.

Evidence in the sample that the TensorRT-LLM rows ran so, beside the scripts: B200 TensorRT-LLM
Llama-3.1-70B at 4 clients and isl 1024 measures a TTFT of 178-383 ms at osl 1024 and tp 1-4, but
58-104 ms at osl 8192 (and 62-67 ms at osl 1024 with tp 8), the same prompts: the scripts hold prompts
only for 1k/1k below tp 8, 20 iterations (18-19 TPOTs measured). DeepSeek-R1 fp8 (not fp4) at 64-128
clients, 1k/1k, tp 8 measures 466-738 ms against 137 ms for fp4 at 64 clients.

Flags the model does not express are a script's ``not_modelled`` (speculative decoding's gain, whose
draft acceptance on the benchmark's random prompts is not known: the drafting is modelled,
:func:`validation.public.silicon.row_speculation`, but off in the evaluation,
:data:`validation.public.silicon.SGLANG_DRAFTING`), so a reader sees what the prediction leaves out; a
script that drafts says so in ``speculative`` and ``speculative_flags`` (:mod:`validation.public.sglang`
reads the first).

The benchmark client (every InferenceX run, whatever the engine) draws each request's lengths uniformly
from ``[int(ratio x), x]`` for the nominal ``isl`` / ``osl`` x with ``RANDOM_RANGE_RATIO`` 0.8
(``sample_random_requests``,
https://github.com/SemiAnalysisAI/InferenceX/blob/086eabbe8611b283b2bbec13ea527b99adec369f/utils/bench_serving/benchmark_serving.py;
``RANDOM_RANGE_RATIO: 0.8`` in
https://github.com/SemiAnalysisAI/InferenceX/blob/00983c3e22a0489aa5f3219f4b8765f2258099fe/.github/workflows/benchmark-tmpl.yml),
a mean of 0.9 x (:func:`mean_length`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.closed_loop import cuda_graph_tokens as closed_loop_graph_tokens

SOURCE_FILES = ("2026-03-25.csv", "2026-04-06.csv")
"""``source_file`` values of the InferenceX runs in ``silicon_data_source``."""
REEXPORTED_FILES = ("qwen3.5-397b-gap-analysis.csv", "kimi-k2.5-gap-analysis.csv")
"""``source_file`` values of per-model gap-analysis files whose every row repeats an InferenceX run: each of
their rows (61 SGLang Qwen3.5-397B-A17B, 32 vLLM Kimi-K2.5 on B200) measures, to the hundredth of a
millisecond, the TTFT and TPOT of a row of the two files above or of the database dump at the same model,
lengths and concurrency (the same run, rounded and re-labelled), so they ran InferenceX's client and
scripts."""
DB_DUMP = "db-dump/"
"""Prefix of ``silicon_data_source`` for rows read from InferenceX's results database (a
``workflow_run_id`` and the run's image; 85 of its 345 aggregated rows measure exactly what a row of the
two files above measures: the same runs)."""
REPOSITORY = "https://github.com/SemiAnalysisAI/InferenceX/blob"
RANGE_RATIO = 0.8
"""InferenceX's ``RANDOM_RANGE_RATIO``: each request's isl and osl are uniform integers in
[int(0.8 x), x] for the nominal x (module docstring)."""
CLIENT_ENGINES = ("sglang", "trtllm", "vllm")
"""Engines whose InferenceX rows are predicted at the client's mean lengths (:func:`mean_length`). The
client is the same for every engine: each InferenceX script passes
``--random-range-ratio "$RANDOM_RANGE_RATIO"`` to ``run_benchmark_serving`` (e.g.
https://github.com/SemiAnalysisAI/InferenceX/blob/c6b96dd0f880da4e11f68d2085e9ababa8d1ba63/benchmarks/gptoss_fp4_h100.sh,
https://github.com/SemiAnalysisAI/InferenceX/blob/2a205bb3c2af74ada9a341f3e415f16e00f356fa/benchmarks/70b_fp8_h100_slurm.sh;
docs/serving.md, "SGLang's aggregated rows", "TensorRT-LLM's harnesses", "vLLM, session 9")."""


REQUESTS_PER_CLIENT = 10
"""Requests per client of an InferenceX TensorRT-LLM run: its scripts send ``--num-prompts $(( $CONC * 10 ))``
with ``--max-concurrency $CONC`` (each TensorRT-LLM script cited in :data:`SCRIPTS`; the gpt-oss one passes
the workflow's ``NUM_PROMPTS``, taken alike). The first C requests leave together, a wave; the client draws
each request's lengths at random (:func:`mean_length`), so TensorRT-LLM's decode-first batches finish them
at different iterations and the later cycles stagger: a share 1 / 10 of the requests arrives in a wave
(:func:`costmodel.closed_loop.loop_parts`, ``wave_share``). Every InferenceX TensorRT-LLM row's, with a
script in :data:`SCRIPTS` or not (the client is the workflow's)."""


FloatArray = npt.NDArray[np.float64]


class Run(NamedTuple):
    """The rows a script's rules read, each field an array over the rows: whole numbers (truncated toward
    zero, as the scripts' shell arithmetic takes them; NaN where the row states none), and the format."""

    isl: FloatArray
    """Nominal prompt tokens (``$ISL``) [tokens]."""
    osl: FloatArray
    """Nominal output tokens (``$OSL``) [tokens]."""
    tp: FloatArray
    """Tensor-parallel GPUs of the engine (``$TP``) [-]."""
    concurrency: FloatArray
    """Clients of the worker (``$CONC``) [-]."""
    precision: npt.NDArray[np.object_]
    """The row's ``precision`` (``fp8``, ``fp4``, ...: the format the script's file is named by)."""
    attention_dp: FloatArray
    """Attention-DP ranks of the engine (``$DP_ATTENTION`` true where above 1) [-]."""


@dataclass(frozen=True)
class BatchWaitFlags:
    """TensorRT-LLM's batch waiting as a script sets it, on the rows where it does."""

    timeout_iters: int
    """``batch_wait_timeout_iters`` [iterations]."""
    max_tokens_ratio: float
    """``batch_wait_max_tokens_ratio``: the threshold as a fraction of ``--max_num_tokens`` [-]."""
    where: Callable[[Run], npt.NDArray[np.bool_]]
    """The rows the script sets them on (elsewhere 0: no hold)."""


@dataclass(frozen=True)
class Script:
    """One InferenceX launch script: the flags it sets that change what the engine runs or when it
    schedules a prompt (None: the engine's default)."""

    source: str
    """The script, at the commit read [URL]."""
    kv_dtype: str | None = None
    """The KV cache format."""
    expert_activation_dtype: str | None = None
    """The routed experts' input format."""
    cuda_graph_max_tokens: int | None = None
    """vLLM's ``max-cudagraph-capture-size``: the largest batch [tokens] replayed as CUDA graphs, mixed
    prefill-decode batches included (default :func:`cuda_graph_tokens`)."""
    budget_isl_multiple: int | None = None
    """vLLM's ``max-num-batched-tokens`` as a multiple of the nominal isl (``$((ISL * 2))``: 2), the token
    budget of every iteration (default: the engine's, :func:`validation.public.silicon.token_budget`;
    :func:`isl_budget`)."""
    gpu_memory_utilization: float | None = None
    """vLLM's ``--gpu-memory-utilization``: the share of device memory for weights, activations and the
    KV cache (default :data:`validation.public.engine_memory.VLLM_GPU_MEMORY_UTILIZATION`)."""
    max_num_seqs: int | Literal["clients"] | None = None
    """vLLM's ``--max-num-seqs`` (``"clients"``: ``$CONC``, the row's clients): the dummy requests of its
    profile run's sampler pass, which sizes the activations its KV cache is left after
    (:func:`validation.public.engine_memory.vllm_sampler_peak_bytes`; default
    :func:`validation.public.engine_memory.vllm_max_num_seqs`)."""
    max_num_tokens: int | Callable[[Run], FloatArray] | None = None
    """TensorRT-LLM's ``--max_num_tokens`` [tokens], a number or a rule of the row
    (:func:`scheduler_flags`)."""
    batch_wait: BatchWaitFlags | None = None
    """TensorRT-LLM's batch waiting (never with attention DP, :func:`scheduler_flags`)."""
    attention_dp_balance: tuple[int, int] | None = None
    """(``timeout_iters``, ``batching_wait_iters``) of TensorRT-LLM's ``attention_dp_config`` with
    ``enable_balance: true`` on the script's attention-DP runs (:mod:`costmodel.adp_balance`,
    :func:`attention_dp_balance`)."""
    scheduler_recv_interval: Callable[[Run], FloatArray] | None = None
    """SGLang's ``--scheduler-recv-interval`` [iterations], a rule of the row (:func:`recv_interval`)."""
    radix_cache: bool = True
    """SGLang's radix (prefix) cache, on by default; False where the script launches with
    ``--disable-radix-cache``. On a hybrid linear-attention model it decides the overlap scheduler
    (:func:`validation.public.sglang.overlap_host`)."""
    speculative: str | None = None
    """The speculative decoding algorithm the script runs (SGLang's ``--speculative-algorithm``), which
    changes the engine's scheduler (:mod:`validation.public.sglang`) and each decode iteration
    (:func:`validation.public.silicon.row_speculation`, off in the evaluation: ``not_modelled``)."""
    speculative_flags: tuple[int, int, int] | None = None
    """SGLang's (``--speculative-num-steps``, ``--speculative-eagle-topk``,
    ``--speculative-num-draft-tokens``) where ``speculative`` is set: draft steps, candidates per step,
    tokens each request verifies (with top-k 1 a chain: steps + 1)."""
    speculative_layouts: tuple[tuple[int, int], ...] | None = None
    """The (tensor-parallel GPUs, expert-parallel GPUs) of the rows that ran the drafting recipe, where the
    same format was also benchmarked without drafting at other layouts (None: every row of the script
    drafts). InferenceX keeps a plain and an MTP recipe of one model and format side by side under two
    configuration keys (``qwen3.5-fp8-b200-sglang`` and ``-mtp``) with disjoint search spaces, and the
    sample has no speculative-decoding column: the layout says which recipe a row ran
    (:func:`drafts`)."""
    acceptance_length: float | None = None
    """Mean tokens per verification, E, of the script's drafter at its draft count, where a measurement for
    that model's drafter is cited [tokens] (None: none cited; the drafting is then priced only with
    :data:`validation.public.silicon.SGLANG_DRAFTING`)."""
    not_modelled: str | None = None
    """What the script sets that changes a step but is not modelled."""
    moe_backend: Callable[[Run], npt.NDArray[np.object_]] | None = None
    """TensorRT-LLM's ``moe_config.backend`` (``CUTLASS``, ``TRTLLM``, ``DEEPGEMM``) or vLLM's
    ``VLLM_MXFP4_USE_MARLIN=1`` (``MARLIN``: its Marlin MXFP4 experts), a rule of the row
    (:func:`moe_backends`): the kernels the engine runs its routed experts with
    (``costmodel.specs.Efficiency.moe_backend``)."""
    symm_mem_all_reduce: bool = False
    """SGLang's ``--enable-symm-mem``: its all-reduces beyond its custom kernel's 8 MiB run NCCL on symmetric
    buffers rather than plain NCCL (``costmodel.specs.Efficiency.symm_mem_all_reduce``)."""
    norm_in_allreduce: bool = False
    """The engine fuses the residual add and RMSNorm after each tensor-parallel all-reduce into it, so at
    tp > 1 those norms run no kernel of their own (``costmodel.specs.Efficiency.norm_in_allreduce``,
    ``costmodel.ops.fused_norms``): vLLM's ``fuse_allreduce_rms`` pass where the script sets it; for
    TensorRT-LLM, a decoder that asks for ``AllReduceFusionOp.RESIDUAL_RMS_NORM`` (gpt-oss's)."""


MAX_MODEL_LEN_MARGIN = 200
"""InferenceX's default ``MAX_MODEL_LEN`` is isl + osl + 200 tokens (its benchmark workflow's
``MAX_MODEL_LEN=$(( ISL + OSL + 200 ))``); the fp4 Llama script passes it as ``--max_num_tokens``."""


def _max_model_len(run: Run) -> FloatArray:
    """``MAX_MODEL_LEN``: isl + osl + 200 tokens."""
    return run.isl + run.osl + MAX_MODEL_LEN_MARGIN


def _dsr1_max_num_tokens(run: Run) -> FloatArray:
    """``MAX_NUM_TOKENS=$(( ($CONC+$ISL+64+63)/64*64 ))``, at least 8192."""
    return np.maximum((run.concurrency + run.isl + 64 + 63) // 64 * 64, 8192)


def _dsr1_unfloored_max_num_tokens(run: Run) -> FloatArray:
    """``MAX_NUM_TOKENS=$(( ($CONC+$ISL+64+63)/64*64 ))`` without the later scripts' 8192 floor."""
    return np.asarray((run.concurrency + run.isl + 64 + 63) // 64 * 64, dtype=np.float64)


def _dsr1_mtp_max_num_tokens(run: Run) -> FloatArray:
    """The 1.1.0rc2.post2 MTP scripts' budget (``dsr1_fp8_b200_trt_mtp_slurm.sh`` and
    ``dsr1_fp4_b200_trt_mtp_slurm.sh`` at 40be3a4): ``MTP`` 1 with attention DP, else 3;
    ``MAX_BATCH_SIZE`` ``$CONC / $TP`` with attention DP, else ``$CONC``, at least 1;
    ``MAX_ISL`` ``isl x (1 + RANDOM_RANGE_RATIO)`` rounded (awk ``%.0f``); and
    ``MAX_NUM_TOKENS=$(( ((MTP+1)*MAX_BATCH_SIZE+MAX_ISL+64+63)/64*64 ))``."""
    adp = run.attention_dp > 1
    drafts = np.where(adp, 1.0, 3.0)
    batch = np.maximum(np.where(adp, run.concurrency // run.tp, run.concurrency), 1.0)
    longest = np.round(run.isl * (1.0 + RANGE_RATIO))
    return np.asarray(((drafts + 1.0) * batch + longest + 64 + 63) // 64 * 64, dtype=np.float64)


def _marlin(run: Run) -> npt.NDArray[np.object_]:
    """vLLM's Marlin MoE experts for every row (``export VLLM_MXFP4_USE_MARLIN=1``)."""
    return np.full(np.shape(run.isl), "MARLIN", dtype=object)


def _dsr1_fp4_mtp_moe_backend(run: Run) -> npt.NDArray[np.object_]:
    """``dsr1_fp4_b200_trt_mtp_slurm.sh`` (40be3a4): ``MOE_BACKEND`` ``CUTLASS`` with attention DP, else
    ``TRTLLM``."""
    return np.where(run.attention_dp > 1, "CUTLASS", "TRTLLM").astype(object)


def _deepgemm(run: Run) -> npt.NDArray[np.object_]:
    """``MOE_BACKEND="DEEPGEMM"`` at every row."""
    return np.full(np.shape(run.isl), "DEEPGEMM", dtype=object)


def _llama_1k1k_below_tp8(run: Run) -> npt.NDArray[np.bool_]:
    """The Llama scripts' batch waiting: 1k/1k below tp 8."""
    return np.asarray((run.isl == 1024) & (run.osl == 1024) & (run.tp < 8), dtype=bool)


def _dsr1_fp8_delay_batching(run: Run) -> npt.NDArray[np.bool_]:
    """``DELAY_BATCHING``: 1k/1k at 64 <= concurrency < 256."""
    lengths = (run.isl == 1024) & (run.osl == 1024)
    return np.asarray(lengths & (run.concurrency >= 64) & (run.concurrency < 256), dtype=bool)


def _dsr1_fp8_moe_backend(run: Run) -> npt.NDArray[np.object_]:
    """``MOE_BACKEND``: ``TRTLLM`` (trtllm-gen), ``DEEPGEMM`` at 256 clients and more with isl 1024 and
    osl 1024 or 8192."""
    deepgemm = (run.isl == 1024) & ((run.osl == 1024) | (run.osl == 8192)) & (run.concurrency >= 256)
    return np.where(deepgemm, "DEEPGEMM", "TRTLLM").astype(object)


def drafts(script: Script | None, *, tp: int, moe_ep: int) -> bool:
    """Whether a row of ``script`` at ``tp`` tensor-parallel and ``moe_ep`` expert-parallel GPUs ran its
    speculative decoding: a drafting script (``speculative`` set) at one of its
    ``speculative_layouts``, or at any layout where it states none."""
    if script is None or script.speculative is None:
        return False
    layouts = script.speculative_layouts
    return layouts is None or (int(tp), int(moe_ep)) in layouts


def _qwen35_recv_interval(run: Run) -> FloatArray:
    """The Qwen3.5 fp8 scripts' interval (the plain recipe and its MTP sibling alike): 10, relaxed to 30
    from 16 clients ("if CONC >= 16, relax to ~30")."""
    return np.where(run.concurrency >= 16, 30.0, 10.0)


def _dsr1_recv_interval(run: Run) -> FloatArray:
    """The DeepSeek-R1 SGLang scripts' interval: 10, relaxed to 30 from 16 clients ("recv every ~10
    requests; if CONC >= 16, relax to ~30"), except at tp 4 in fp8 (``dsr1_fp8_b200.sh``), always 10."""
    fp8_tp4 = (run.precision == "fp8") & (run.tp == 4)
    return np.where(fp8_tp4, 10.0, np.where(run.concurrency >= 16, 30.0, 10.0))


_GPTOSS_H100_DOCKER = Script(
    f"{REPOSITORY}/145e88f4e85eade7aa7eb8c4109f5cd48c6bb942/benchmarks/gptoss_fp4_h100_docker.sh",
    cuda_graph_max_tokens=2048,
    max_num_seqs="clients",
    not_modelled="compilation-config cudagraph_mode PIECEWISE (the c6b96dd script keeps vLLM's default "
    "FULL_AND_PIECEWISE); its client is kimbochen/bench_serving, not benchmark_lib",
)
"""H100 gpt-oss-120b's script before InferenceX #327 (the 2025-11-02 / 12-05 runs and vLLM 0.11.2's of
2025-12-08): ``cuda-graph-sizes: 2048``, ``--max-num-seqs=$CONC``, the default 8192-token budget, and no
``VLLM_MXFP4_USE_MARLIN``, so vLLM's default (Triton) experts (docs/serving.md, h14-oss2, h19-fix19c)."""

PRE_MARLIN_RUNS: Final = frozenset({("vllm", "h100_sxm", "2025-11-02"), ("vllm", "h100_sxm", "2025-12-05")})
"""(engine, system, measured date) of the unversioned H100 gpt-oss runs measured before InferenceX added
``VLLM_MXFP4_USE_MARLIN=1`` to the H100 script (#327, after #273's vLLM 0.11.2;
https://github.com/SemiAnalysisAI/InferenceX/blob/000de6df8af034076b0477bbfa2658851e8ceb74/perf-changelog.yaml):
the dates :data:`SCRIPTS` keys :data:`_GPTOSS_H100_DOCKER` under, since their rows name no engine version."""

SCRIPTS: dict[tuple[str, ...], Script] = {
    ("vllm", "openai/gpt-oss-120b", "b200_sxm"): Script(
        f"{REPOSITORY}/ffdb196ef8e7e73d003da2d1ec717242f4a98454/benchmarks/gptoss_fp4_b200.sh",
        kv_dtype="fp8",
        expert_activation_dtype="mxfp8",
        cuda_graph_max_tokens=2048,
        max_num_seqs=512,
        # compilation-config '{"pass_config":{"fuse_allreduce_rms":true,...}}'
        norm_in_allreduce=True,
    ),
    ("vllm", "openai/gpt-oss-120b", "h100_sxm"): Script(
        f"{REPOSITORY}/c6b96dd0f880da4e11f68d2085e9ababa8d1ba63/benchmarks/gptoss_fp4_h100.sh",
        cuda_graph_max_tokens=2048,
        max_num_seqs="clients",
        # export VLLM_MXFP4_USE_MARLIN=1: vLLM's gpt-oss method runs Mxfp4Backend.MARLIN on SM 90
        # (get_mxfp4_backend, vllm/model_executor/layers/quantization/mxfp4.py); docs/serving.md (h14-oss2)
        # vLLM's Marlin experts: kernel_times._marlin_moe_s (docs/serving.md, h19-h100long)
        moe_backend=_marlin,
    ),
    # the runs before InferenceX switched Marlin on: #273 moved H100 gpt-oss to vLLM 0.11.2, and #327
    # ("Update vLLM image from v0.11.2 to v0.13.0", "Add VLLM_MXFP4_USE_MARLIN=1 to H100 and H200")
    # came later (perf-changelog.yaml, PRE_MARLIN_RUNS): the docker script of the time, without the
    # variable, so vLLM's default (Triton) experts. The unversioned rows measured 2025-11-02 and
    # 2025-12-05 predate #327 too and are keyed by their dates (a pre-change script's dated key).
    ("vllm", "openai/gpt-oss-120b", "h100_sxm", "fp4", "0.11.2"): _GPTOSS_H100_DOCKER,
    ("vllm", "openai/gpt-oss-120b", "h100_sxm", "fp4", "", "2025-11-02"): _GPTOSS_H100_DOCKER,
    ("vllm", "openai/gpt-oss-120b", "h100_sxm", "fp4", "", "2025-12-05"): _GPTOSS_H100_DOCKER,
    ("sglang", "deepseek-ai/DeepSeek-R1", "b200_sxm"): Script(
        # dsr1_fp8_b200.sh and dsr1_fp4_b200.sh both launch with --kv-cache-dtype fp8_e4m3 and the same
        # --scheduler-recv-interval rule (but at tp 4 in fp8); dsr1_fp4_b200.sh at the same commit
        f"{REPOSITORY}/1fc5d73cdd31c7fbdd657f3c7e5ec2180f4b0598/benchmarks/dsr1_fp8_b200.sh",
        kv_dtype="fp8",
        scheduler_recv_interval=_dsr1_recv_interval,
    ),
    # the fp4 script at the same commit adds --enable-symm-mem (the fp8 one does not)
    ("sglang", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp4"): Script(
        f"{REPOSITORY}/1fc5d73cdd31c7fbdd657f3c7e5ec2180f4b0598/benchmarks/dsr1_fp4_b200.sh",
        kv_dtype="fp8",
        scheduler_recv_interval=_dsr1_recv_interval,
        symm_mem_all_reduce=True,
    ),
    # GLM-5 on B200: InferenceX #915 (2026-03-17) replaced the first script (87af9d6,
    # benchmarks/glm5_fp8_b200.sh: --speculative-algorithm EAGLE) with single_node/glm5_fp8_b200.sh, which
    # launches no speculative decoding (MTP became a separate recipe, glm5-fp8-b200-sglang-mtp, #1567's
    # list); the fp8 rows ran it (measured 2026-03-20 on nightly-dev-cu13-20260317). The fp4 rows (measured
    # 2026-03-29) ran glm5_fp4_b200.sh of #972 / #1011, which does not draft either
    ("sglang", "zhipuai/GLM-5", "b200_sxm"): Script(
        f"{REPOSITORY}/b9551f6e5eda1a3d52442b0fde574e547ee908b6/benchmarks/single_node/glm5_fp8_b200.sh",
        kv_dtype="fp8",
        radix_cache=False,
    ),
    # Qwen3.5-397B on B200: the benchmark's first script (10c3d8d, --speculative-algo NEXTN) was merged
    # plain: "Add Qwen3.5-397B-A17B BF16 B200 SGLang benchmark (STP only)", InferenceX #704, whose issue
    # #702 records the removal of --speculative-algo NEXTN and its flags. The bf16 (and nvfp4, #820) rows
    # ran that plain recipe; the fp8 recipe (#804, #918) too, but InferenceX added a separate MTP recipe
    # of fp8 (qwen3.5-fp8-b200-sglang-mtp, #898: EAGLE 3 steps, top-k 1, 4 draft tokens) whose only
    # search space is tp 4 with EP 1, where the plain fp8 recipe ran tp 4 with EP 4 and tp 8 with EP 1
    # (#804's table; #897's review: "the non-MTP FP8 config has tp:8, ep:1 entries")
    ("sglang", "Qwen/Qwen3.5-397B-A17B", "b200_sxm"): Script(
        f"{REPOSITORY}/29d69fa54d44d7fcdcf1f34e733bd64d2dc611f7/benchmarks/single_node/qwen3.5_bf16_b200.sh",
        # --disable-radix-cache, as #704's first version (20edd7f, benchmarks/qwen3.5_bf16_b200.sh) and the
        # nvfp4 script (088fe66, benchmarks/single_node/qwen3.5_fp4_b200.sh) launch too
        radix_cache=False,
    ),
    ("sglang", "Qwen/Qwen3.5-397B-A17B", "b200_sxm", "fp8"): Script(
        # the plain recipe; its MTP sibling, the same serving flags and EAGLE:
        # {REPOSITORY}/2ecc5ce3c6189f4187e1f83df192065efca28f21/benchmarks/single_node/qwen3.5_fp8_b200_mtp.sh
        f"{REPOSITORY}/01fa35cfe5273096451a21fe735b3c5ff8e6e300/benchmarks/single_node/qwen3.5_fp8_b200.sh",
        kv_dtype="fp8",
        radix_cache=False,  # both fp8 recipes: --disable-radix-cache
        # both fp8 recipes: --scheduler-recv-interval 10, 30 from 16 clients
        scheduler_recv_interval=_qwen35_recv_interval,
        speculative="EAGLE",  # --speculative-algorithm EAGLE, drafted by the checkpoint's MTP layer
        speculative_flags=(3, 1, 4),  # --speculative-num-steps 3 --speculative-eagle-topk 1 (draft tokens 4)
        speculative_layouts=((4, 1),),
        # InferenceX's golden acceptance length of Qwen3.5-397B-A17B's MTP layer at 3 drafts, thinking on
        # (SPEED-Bench coding, real drafting): golden_al_distribution/qwen3.5_mtp.yaml, 3.39, the value its
        # Qwen3.5 MTP recipes pin (e.g. benchmarks/single_node/agentic/qwen3.5_fp8_b200_sglang_mtp.sh)
        acceptance_length=3.39,
        not_modelled=(
            "the MTP layer's acceptance on the benchmark's random prompts (the cited length is SPEED-Bench "
            "coding's); --stream-interval 30"
        ),
    ),
    # Llama-3.1-70B on B200 (fp8 and nvfp4 scripts alike): fp8 KV cache and cudagraph_mode FULL_DECODE_ONLY,
    # so no batch carrying prompt tokens replays a graph. Not on H100: the script read there
    # (2a205bb, 70b_fp8_h100_slurm.sh, kv-cache-dtype fp8) is undated, and the H100 calibration row that
    # queues (tp 2, isl 8192, 32 clients: 6.5 s TTFT, 52.4 ms TPOT) ran about 29 sequences at once, what a
    # bf16 cache holds (28), not an fp8 one (56); the benchmark's earlier H100 script, from when it was
    # InferenceMAX, launches no fp8 cache (a fork's copy: https://github.com/jyothisambolu/InferenceMAX/blob/
    # b67d36f7ecff6bb58f12ba1f78a602997cb3f69f/benchmarks/70b_h100_slurm.sh; docs/serving.md, session 14).
    # Neither sets a CUDA graph capture size, so the defaults' eager prompt iterations hold there
    ("vllm", "meta-llama/Llama-3.1-70B", "b200_sxm"): Script(
        f"{REPOSITORY}/bb4c7f9389a89b399fb0bd0090944713baea59e5/benchmarks/70b_fp8_b200_docker.sh",
        kv_dtype="fp8",
        cuda_graph_max_tokens=0,
        max_num_seqs=512,
    ),
    # MiniMax-M2.5 fp8 on B200: its script's three eras launch bf16 KV at --gpu-memory-utilization 0.95
    # (80fd934, 13453b4) or fp8 KV at 0.90 with 2048-token graphs (8eec0d4, below), undated. The calibration
    # rows that queue (vLLM 0.19.0) say which ran: at tp 2, isl 8192, 128 clients (11.5 s TTFT, 46.6 ms
    # TPOT) about 103 sequences ran at once and at 512 clients of isl 1024 about 500: a bf16 cache at 0.95
    # holds 61 and 350, an fp8 one at 0.90 holds 106 and 602. Its nvfp4 sibling (minimaxm2.5_fp4_b200.sh)
    # keeps the defaults. Its --max-num-batched-tokens $((ISL * 2)) sets the budget (budget_isl_multiple);
    # not modelled: its --stream-interval 20.
    # Its first era, vLLM 0.17.0 (measured 2026-03-11 and 03-28): the script before EP_SIZE, launched
    # at --gpu-memory-utilization 0.95 with vLLM's defaults otherwise (bf16 KV, no expert parallelism,
    # graphs and budget at the defaults). The 0.17.0 rows are that sweep's: 4-64 clients and no EP, where
    # the 0.19.0 rows (2026-04-03 on) reach 512 clients and state EP 2-16, the later script's EP_SIZE.
    ("vllm", "MiniMaxAI/MiniMax-M2.5", "b200_sxm", "fp8", "0.17.0"): Script(
        f"{REPOSITORY}/80fd934be9928172e011dea86d117daaa59dc51a/benchmarks/minimaxm2.5_fp8_b200.sh",
        gpu_memory_utilization=0.95,
    ),
    ("vllm", "MiniMaxAI/MiniMax-M2.5", "b200_sxm", "fp8"): Script(
        f"{REPOSITORY}/8eec0d4ed58b1a7ab659bc8b4038ffddf3452ea2/benchmarks/single_node/fixed_seq_len/minimaxm2.5_fp8_b200.sh",
        kv_dtype="fp8",
        cuda_graph_max_tokens=2048,
        budget_isl_multiple=2,
    ),
    # Kimi-K2.5 nvfp4 on B200 likewise: its earlier script (04107b3) runs vLLM's defaults, the later one
    # (below) an fp8 KV cache with 2048-token graphs; the calibration row that would queue (tp 4, isl 8192,
    # 64 clients: 1.28 s TTFT, 33.5 ms TPOT) ran about 62 sequences at once, which an fp8 cache holds (93) and
    # a bf16 one does not (46). Its budget is 2 x isl as MiniMax-M2.5's; --stream-interval 20 not modelled.
    ("vllm", "moonshotai/Kimi-K2.5", "b200_sxm", "fp4"): Script(
        f"{REPOSITORY}/380b685df7cd81917d3ac25d326fef0e4a1793cb/benchmarks/single_node/fixed_seq_len/kimik2.5_fp4_b200.sh",
        kv_dtype="fp8",
        cuda_graph_max_tokens=2048,
        budget_isl_multiple=2,
        max_num_seqs="clients",
    ),
    # MiniMax-M2.5 fp8 on H100: vLLM's defaults where they matter here (0.90, bf16 KV, PIECEWISE graphs,
    # the default budget) but --max-num-seqs 256, which sizes its profile run's sampler pass
    ("vllm", "MiniMaxAI/MiniMax-M2.5", "h100_sxm"): Script(
        f"{REPOSITORY}/8eec0d4ed58b1a7ab659bc8b4038ffddf3452ea2/benchmarks/single_node/fixed_seq_len/minimaxm2.5_fp8_h100.sh",
        max_num_seqs=256,
    ),
    # TensorRT-LLM
    ("trtllm", "meta-llama/Llama-3.1-70B", "b200_sxm", "fp8"): Script(
        f"{REPOSITORY}/a267b4bd52f1cd162813fedfdcffb73936128dab/benchmarks/70b_fp8_b200_trt_slurm.sh",
        max_num_tokens=16384,
        batch_wait=BatchWaitFlags(20, 0.9, where=_llama_1k1k_below_tp8),
    ),
    ("trtllm", "meta-llama/Llama-3.1-70B", "b200_sxm", "fp4"): Script(
        f"{REPOSITORY}/73ef9225128eaf270ef655ff689247dde656ad6c/benchmarks/70b_fp4_b200_trt_slurm.sh",
        max_num_tokens=_max_model_len,
        batch_wait=BatchWaitFlags(20, 0.9, where=_llama_1k1k_below_tp8),
    ),
    ("trtllm", "openai/gpt-oss-120b", "b200_sxm", "fp4"): Script(
        f"{REPOSITORY}/1825e7f0676d9adf7a3dbffcf50708907b7b25db/benchmarks/gptoss_fp4_b200_trt.sh",
        max_num_tokens=20000,
        # enable_balance alone: TensorRT-LLM's AttentionDpConfig defaults, 50 and 10 iterations
        attention_dp_balance=(50, 10),
        # not a flag: TensorRT-LLM's gpt-oss decoder fuses both norms into its all-reduces at tp > 1
        # (TransformerBlock.forward_tp, tensorrt_llm/_torch/models/modeling_gpt_oss.py)
        norm_in_allreduce=True,
    ),
    # 1.1.0rc2.post2 served the plain scripts and, from InferenceX #392, their MTP siblings: the MTP run of
    # 2026-01-14 (silicon.MTP_RUNS) ran the MTP scripts (at 40be3a4), keyed by its date. The fp8 one keeps
    # the plain script's MoE backend (DEEPGEMM) and balancing but sizes its budget for the drafts and the
    # longest prompt (_dsr1_mtp_max_num_tokens); not modelled: stream_interval 10, drafting's CUDA graphs
    ("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp8", "1.1.0rc2.post2", "2026-01-14"): Script(
        f"{REPOSITORY}/40be3a4b73230a9b029bdc275f832547eb68df49/benchmarks/dsr1_fp8_b200_trt_mtp_slurm.sh",
        max_num_tokens=_dsr1_mtp_max_num_tokens,
        attention_dp_balance=(60, 0),
        moe_backend=_deepgemm,
        not_modelled="stream_interval 10",
    ),
    # its fp4 sibling: the same budget and balancing, MOE_BACKEND CUTLASS with attention DP, else TRTLLM
    ("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp4", "1.1.0rc2.post2", "2026-01-14"): Script(
        f"{REPOSITORY}/40be3a4b73230a9b029bdc275f832547eb68df49/benchmarks/dsr1_fp4_b200_trt_mtp_slurm.sh",
        max_num_tokens=_dsr1_mtp_max_num_tokens,
        attention_dp_balance=(60, 0),
        moe_backend=_dsr1_fp4_mtp_moe_backend,
        not_modelled="stream_interval 10",
    ),
    # the image's plain script before InferenceX #594 (the 2025-12-15 run; its budget has no 8192 floor)
    ("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp8", "1.1.0rc2.post2"): Script(
        f"{REPOSITORY}/2e46dba0393537668d37d83b532fff2cdbbad231/benchmarks/dsr1_fp8_b200_trt_slurm.sh",
        max_num_tokens=_dsr1_unfloored_max_num_tokens,
        attention_dp_balance=(60, 0),
        moe_backend=_deepgemm,
    ),
    ("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp8"): Script(
        f"{REPOSITORY}/0a919c5f81cec20c030d748c813de41c8c415db1/benchmarks/dsr1_fp8_b200_trt.sh",
        max_num_tokens=_dsr1_max_num_tokens,
        batch_wait=BatchWaitFlags(40, 0.8, where=_dsr1_fp8_delay_batching),
        attention_dp_balance=(60, 0),
        moe_backend=_dsr1_fp8_moe_backend,
    ),
    ("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp4"): Script(
        f"{REPOSITORY}/111f0312c13b4c3cca0dd365f6db4c017048f0d3/benchmarks/dsr1_fp4_b200_trt.sh",
        max_num_tokens=_dsr1_max_num_tokens,
        # as the MTP script of the 1.2.0rc6.post3 rows (dsr1_fp4_b200_trt_mtp.sh, 13dd0c2)
        attention_dp_balance=(60, 0),
    ),
}
"""(backend, model_path, system) -> the flags its InferenceX script sets, for every precision of that model;
a key that adds the row's ``precision`` (``fp8``, ``fp4``, ...: the format the script's file is named by)
is that format's script alone, one that also adds its ``backend_version`` that engine version's script,
one that also adds a ``measured=`` date (:func:`measured_dates`) the script of that one run;
the most specific key comes first (:func:`launch_script`)."""

SCRIPT_MODELS: dict[tuple[str, ...], str] = {
    ("trtllm", "deepseek-ai/DeepSeek-V3"): "deepseek-ai/DeepSeek-R1",
    ("sglang", "deepseek-ai/DeepSeek-V3", "fp4"): "deepseek-ai/DeepSeek-R1",
}
"""(backend, ``model_path``) of InferenceX rows that name another model of the same architecture than the
script they ran -> the script's model; a key that adds the row's ``precision`` maps that format's rows
alone. The 82 TensorRT-LLM DeepSeek-V3 rows of InferenceX's database dump (``db-dump/...``) are its
DeepSeek-R1 runs (``dsr1_*_b200_trt*.sh``): 61 of them measure, to the last digit, the TTFT and TPOT of a
DeepSeek-R1 row of the same format, parallelism, lengths and concurrency, and InferenceX benchmarks no
DeepSeek-V3 configuration on TensorRT-LLM. The 69 SGLang fp4 DeepSeek-V3 rows of the dump are its
``dsr1-fp4-b200-sglang`` runs (``dsr1_fp4_b200.sh``): all 69 measure an R1 row's TTFT and TPOT to 0.1 ms
(same lengths, parallelism and concurrency; where stated, the same image and measured date), and every
``nvidia-master.yaml`` read names one SGLang fp4 DeepSeek configuration on B200, of
``nvidia/DeepSeek-R1-0528-FP4-V2`` (docs/serving.md, h20-dsfp4 and fix20b). The dump's 28 SGLang fp8
DeepSeek-V3 rows are R1 twins too, but no source read here names their script, so they keep SGLang's
defaults (docs/serving.md, fix20b: left)."""


def launch_script(
    inferencex: bool,
    backend: str,
    model_path: str,
    system: str,
    precision: str = "",
    version: str = "",
    measured: str = "",
) -> Script | None:
    """The script a row's engine was launched with where it is known (an InferenceX row of a script in
    :data:`SCRIPTS`, under its :data:`SCRIPT_MODELS` name: the script of the run measured that day first,
    then that of the precision and engine version, then the precision's, then the model's), else None
    (the engine's defaults)."""
    if not inferencex:
        return None
    model = SCRIPT_MODELS.get((backend, model_path, precision)) or SCRIPT_MODELS.get(
        (backend, model_path), model_path
    )
    return (
        SCRIPTS.get((backend, model, system, precision, version, measured))
        or SCRIPTS.get((backend, model, system, precision, version))
        or SCRIPTS.get((backend, model, system, precision))
        or SCRIPTS.get((backend, model, system))
    )


def scripts_of(table: pd.DataFrame) -> list[tuple[Script, npt.NDArray[np.bool_]]]:
    """The scripts the rows of ``table`` ran (its ``inferencex``, ``backend``, ``model_path``, ``system``,
    ``precision`` and, where it has them, ``backend_version`` and ``silicon_data_source`` columns: the
    latter's ``measured=`` date), each with the rows it serves: :func:`launch_script` once per distinct
    key."""
    columns = ["backend", "model_path", "system", "precision", "backend_version", "measured"]
    inferencex = np.flatnonzero(table["inferencex"].to_numpy(bool))
    keys = table.iloc[inferencex].reindex(columns=columns[:-1]).fillna("").astype(str)
    keys["measured"] = measured_dates(table.iloc[inferencex]).fillna("").astype(str)
    served: dict[int, tuple[Script, npt.NDArray[np.bool_]]] = {}
    for key, positions in keys.groupby(columns, sort=False).indices.items():
        assert isinstance(key, tuple)
        script = launch_script(True, *(str(k) for k in key))
        if script is not None:
            rows = served.setdefault(id(script), (script, np.zeros(len(table), dtype=bool)))[1]
            rows[inferencex[positions]] = True
    return list(served.values())


def measured_dates(table: pd.DataFrame) -> pd.Series:
    """Per row of ``table`` (the silicon sample), the ``measured=`` date its ``silicon_data_source`` states
    (``YYYY-MM-DD``), NaN where it states none or the table has no such column."""
    if "silicon_data_source" not in table:
        return pd.Series(np.nan, index=table.index, dtype=object)
    return table["silicon_data_source"].astype(str).str.extract(r"measured=(\d{4}-\d{2}-\d{2})")[0]


def _run(
    isl: npt.ArrayLike,
    osl: npt.ArrayLike,
    tp: npt.ArrayLike,
    concurrency: npt.ArrayLike,
    precision: object,
    attention_dp: npt.ArrayLike = 1.0,
) -> Run:
    """The rows as a script's shell arithmetic reads them: whole numbers, truncated toward zero."""
    numbers = (isl, osl, tp, concurrency, attention_dp)
    arrays = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in numbers))
    formats = np.broadcast_to(np.asarray(precision, dtype=object), arrays[0].shape)
    isl_, osl_, tp_, clients, ranks = (np.trunc(x) for x in arrays)
    return Run(isl_, osl_, tp_, clients, precision=formats, attention_dp=ranks)


def scheduler_flags(
    script: Script | None,
    *,
    isl: npt.ArrayLike,
    osl: npt.ArrayLike,
    tp: npt.ArrayLike,
    attention_dp: npt.ArrayLike,
    concurrency: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per row: the script's TensorRT-LLM token budget [tokens] (0: the engine's default), its hold timeout
    [iterations] and hold threshold [tokens] (0, 0: no hold). A row of no concurrency keeps the defaults;
    attention DP never holds (TensorRT-LLM skips batch waiting with ``enable_attention_dp``)."""
    run = _run(isl, osl, tp, concurrency, "", attention_dp)
    none = np.zeros(run.isl.shape)
    if script is None or script.max_num_tokens is None:
        return none, none.copy(), none.copy()
    known = np.isfinite(run.concurrency)
    rule = script.max_num_tokens
    budget = np.where(known, rule(run) if callable(rule) else rule, 0.0)
    wait = script.batch_wait
    if wait is None:
        return budget, none, none.copy()
    single = run.attention_dp == 1
    on = known & wait.where(run) & single
    return (
        budget,
        np.where(on, float(wait.timeout_iters), 0.0),
        np.where(on, wait.max_tokens_ratio, 0.0) * budget,
    )


def moe_backends(
    script: Script | None,
    *,
    isl: npt.ArrayLike,
    osl: npt.ArrayLike,
    tp: npt.ArrayLike,
    concurrency: npt.ArrayLike,
    attention_dp: npt.ArrayLike = 1.0,
) -> npt.NDArray[np.object_]:
    """Per row: the MoE backend the script states (``Script.moe_backend``), "" where it states none or the
    row has no concurrency (the engine's default: its autotuner's fastest kernel)."""
    run = _run(isl, osl, tp, concurrency, "", attention_dp)
    out = np.full(run.isl.shape, "", dtype=object)
    if script is None or script.moe_backend is None:
        return out
    known = np.isfinite(run.concurrency)
    out[known] = script.moe_backend(run)[known]
    return out


def isl_budget(script: Script | None, isl: npt.ArrayLike) -> FloatArray:
    """Per row: the token budget [tokens] a vLLM script sets from the nominal isl, ``budget_isl_multiple``
    x isl, NaN where it sets none."""
    prompt = np.asarray(isl, dtype=np.float64)
    if script is None or script.budget_isl_multiple is None:
        return np.full(prompt.shape, np.nan)
    return script.budget_isl_multiple * prompt


def recv_interval(
    script: Script | None, *, tp: npt.ArrayLike, concurrency: npt.ArrayLike, precision: object = ""
) -> FloatArray:
    """Per row: SGLang's ``--scheduler-recv-interval`` I of the script, else 1 (the engine's default: the
    scheduler reads new requests before every iteration)."""
    clients = np.asarray(concurrency, dtype=np.float64)
    run = _run(np.zeros_like(clients), np.zeros_like(clients), tp, clients, precision)
    if script is None or script.scheduler_recv_interval is None:
        return np.ones(run.concurrency.shape)
    return np.asarray(script.scheduler_recv_interval(run), dtype=np.float64)


def attention_dp_balance(script: Script | None, attention_dp: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Per row: the script's attention-DP balancing, (``timeout_iters``, ``batching_wait_iters``), NaN
    where none: rows run with attention DP (``enable_attention_dp`` true, which is when the scripts write
    their ``attention_dp_config``) of a script that balances."""
    ranks = np.trunc(np.asarray(attention_dp, dtype=np.float64))
    nan = np.full(ranks.shape, np.nan)
    if script is None or script.attention_dp_balance is None:
        return nan, nan.copy()
    timeout, wait = script.attention_dp_balance
    on = ranks > 1
    return np.where(on, float(timeout), np.nan), np.where(on, float(wait), np.nan)


def cuda_graph_tokens(backend: str, script: Script | None, max_num_seqs: int, budget: int) -> int:
    """The largest iteration [tokens] that ``backend`` replays as CUDA graphs when it carries prompt tokens,
    with the script's ``max-cudagraph-capture-size`` where it sets one
    (:func:`costmodel.closed_loop.cuda_graph_tokens`: vLLM's default min(2 ``max_num_seqs``, 512,
    ``budget``); 0 for TensorRT-LLM and SGLang, which capture decode-only batches alone)."""
    capture = script.cuda_graph_max_tokens if script is not None else None
    return closed_loop_graph_tokens(backend, max_num_seqs, budget, capture)


def is_inferencex(table: pd.DataFrame) -> pd.Series:
    """Rows of ``table`` (the silicon sample) that come from an InferenceX run: those of its two result files,
    and those of InferenceX's database dump (``db-dump/...`` with the ``workflow_run_id`` of the GitHub
    Actions run that measured it), which repeat the result files' measurements (e.g. MiniMax-M2.5 fp8 on
    B200 vLLM 0.19.0, tp 2, 128 clients, 1024 / 1024: 297.2 ms TTFT and 28.0 ms TPOT in both)."""
    text = table["silicon_data_source"].astype(str)
    source = text.str.extract(r"source_file=([^;]+)")[0]
    dump = text.str.startswith(DB_DUMP) & text.str.contains("workflow_run_id=", regex=False)
    return source.isin(SOURCE_FILES + REEXPORTED_FILES) | dump


def mean_length(nominal: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Mean of InferenceX's request lengths for a nominal isl or osl x [tokens]: uniform integers in
    [int(0.8 x), x], so (int(0.8 x) + x) / 2 (:data:`RANGE_RATIO`)."""
    x = np.asarray(nominal, dtype=np.float64)
    return (np.floor(RANGE_RATIO * x) + x) / 2.0


VLLM_SCRIPTS_WITHOUT_DATA_PARALLEL = (
    f"{REPOSITORY}/80fd934be9928172e011dea86d117daaa59dc51a/benchmarks/minimaxm2.5_fp8_b200.sh",
    f"{REPOSITORY}/8eec0d4ed58b1a7ab659bc8b4038ffddf3452ea2/benchmarks/single_node/fixed_seq_len/minimaxm2.5_fp8_b200.sh",
    f"{REPOSITORY}/8eec0d4ed58b1a7ab659bc8b4038ffddf3452ea2/benchmarks/single_node/fixed_seq_len/minimaxm2.5_fp8_h100.sh",
    f"{REPOSITORY}/380b685df7cd81917d3ac25d326fef0e4a1793cb/benchmarks/single_node/fixed_seq_len/kimik2.5_fp4_b200.sh",
)
"""InferenceX's vLLM launch scripts of the models whose sample rows state an attention-DP size (MiniMax-M2.5
on B200 and H100, Kimi-K2.5 on B200), at the commits read: each runs one ``vllm serve
--tensor-parallel-size $TP`` (with ``--enable-expert-parallel`` when its EP size is above 1, the later
ones) and never ``--data-parallel-size``."""


def vllm_single_engine(table: pd.DataFrame) -> pd.Series:
    """Aggregated vLLM rows of the silicon sample that state ``attention_dp_size`` > 1, which ran as one
    engine of ``tp_size`` GPUs serving every client, the MoE layer expert-parallel over those GPUs.

    The sample writes such a row as tp_size T, attention_dp_size A, moe_ep_size T x A (T x A GPUs) and
    ``batch_size`` per rank (concurrency = batch_size x A). But (1) InferenceX's vLLM scripts of these
    models (:data:`VLLM_SCRIPTS_WITHOUT_DATA_PARALLEL`) launch no data parallelism: one ``vllm serve`` of
    T-way tensor parallelism, whose ``--enable-expert-parallel`` spreads the experts over its TP x DP = T
    GPUs (https://docs.vllm.ai/en/latest/serving/expert_parallel_deployment.html); InferenceX's own
    configurations count a ``dp-attn`` point's GPUs as its ``tp``
    (https://github.com/SemiAnalysisAI/InferenceX/blob/0004cf5f2577a1c1007a9bed7cc7d55656519507/.github/configs/nvidia-master.yaml:
    ``tp: 8, ep: 8, dp-attn: true`` is DEP8 on 8 GPUs); (2) the measurements say so: every Kimi-K2.5 nvfp4
    row at tp 4 / attention DP 4 / EP 16 repeats, to the hundredth of a millisecond, the TTFT and TPOT of a
    row of the same lengths and concurrency at tp 4 / EP 4 (``kimi-k2.5-gap-analysis.csv``), and the
    MiniMax-M2.5 rows at tp 2 / attention DP 2 measure the TPOT of tp 2 (docs/serving.md). Every such row of
    the sample is an InferenceX run (its source file, or InferenceX's database dump ``db-dump/...`` with a
    ``workflow_run_id``)."""
    return (
        (table["backend"] == "vllm") & (table["mode"] == "agg") & (table["attention_dp_size"].fillna(1) > 1)
    )
