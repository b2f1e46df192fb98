"""The launch flags of the silicon sample's SemiAnalysis InferenceX runs that change what the engine runs.

Part of the silicon sample comes from SemiAnalysis' InferenceX benchmark (``source_file=2026-03-25.csv``
and ``2026-04-06.csv`` in ``silicon_data_source``; images such as ``vllm/vllm-openai:v0.15.1`` or
``lmsysorg/sglang:v0.5.9-cu130``). Its rows carry the engine and version but not the flags its per-model
scripts launch the engine with, and some of those flags change the kernels a step runs. Each entry of
:data:`FLAGS` is one (backend, model, system) script, read at the commit cited, with the flags that
differ from what :func:`validation.public.silicon.row_formats` and
:func:`validation.public.engine_memory.kv_dtype` take for an engine at its defaults:

- ``kv_dtype``: the KV cache format (vLLM ``kv-cache-dtype: fp8``, SGLang ``--kv-cache-dtype fp8_e4m3``),
  which halves the bytes a decode step's attention reads and doubles the sequences that fit;
- ``expert_activation_dtype``: the routed experts' input format (vLLM's
  ``VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1`` runs gpt-oss's MXFP4 experts on MXFP8 inputs, FlashInfer's
  TRT-LLM-gen MXFP4 x MXFP8 MoE at the fp8 peak, instead of its default ``SM100_FI_MXFP4_BF16``:
  ``get_mxfp4_backend`` in https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/quantization/mxfp4.py).

Flags the model does not express are listed in :data:`NOT_MODELLED` (speculative decoding whose draft
acceptance on the benchmark's random prompts is not known), so a reader sees what the prediction leaves
out. Rows of other sources keep the engines' defaults.

Two more settings change the closed loop rather than the kernels:

- the benchmark client (every InferenceX run, whatever the engine) draws each request's lengths
  uniformly from ``[int(ratio x), x]`` for the nominal ``isl`` / ``osl`` x with ``RANDOM_RANGE_RATIO``
  0.8 (``sample_random_requests``,
  https://github.com/SemiAnalysisAI/InferenceX/blob/086eabbe8611b283b2bbec13ea527b99adec369f/utils/bench_serving/benchmark_serving.py;
  ``RANDOM_RANGE_RATIO: 0.8`` in
  https://github.com/SemiAnalysisAI/InferenceX/blob/00983c3e22a0489aa5f3219f4b8765f2258099fe/.github/workflows/benchmark-tmpl.yml),
  a mean of 0.9 x (:func:`mean_length`);
- SGLang's ``--scheduler-recv-interval`` in the DeepSeek-R1 scripts (:func:`scheduler_recv_interval`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.closed_loop import cuda_graph_tokens as closed_loop_graph_tokens

SOURCE_FILES = ("2026-03-25.csv", "2026-04-06.csv")
"""``source_file`` values of the InferenceX runs in ``silicon_data_source``."""
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


@dataclass(frozen=True)
class Flags:
    """The launch flags of one InferenceX script that change the kernels (None: the engine's default)."""

    source: str
    """The script, at the commit read [URL]."""
    kv_dtype: str | None = None
    expert_activation_dtype: str | None = None
    cuda_graph_max_tokens: int | None = None
    """vLLM's ``max-cudagraph-capture-size``: the largest batch [tokens] replayed as CUDA graphs, mixed
    prefill-decode batches included (default :func:`cuda_graph_tokens`)."""
    budget_isl_multiple: int | None = None
    """vLLM's ``max-num-batched-tokens`` as a multiple of the nominal isl (``$((ISL * 2))``: 2), the token
    budget of every iteration (default: the engine's, :func:`validation.public.silicon.token_budget`)."""
    gpu_memory_utilization: float | None = None
    """vLLM's ``--gpu-memory-utilization``: the share of device memory for weights, activations and the
    KV cache (default :data:`validation.public.engine_memory.VLLM_GPU_MEMORY_UTILIZATION`)."""


FLAGS: dict[tuple[str, ...], Flags] = {
    ("vllm", "openai/gpt-oss-120b", "b200_sxm"): Flags(
        f"{REPOSITORY}/ffdb196ef8e7e73d003da2d1ec717242f4a98454/benchmarks/gptoss_fp4_b200.sh",
        kv_dtype="fp8",
        expert_activation_dtype="mxfp8",
        cuda_graph_max_tokens=2048,
    ),
    ("vllm", "openai/gpt-oss-120b", "h100_sxm"): Flags(
        f"{REPOSITORY}/c6b96dd0f880da4e11f68d2085e9ababa8d1ba63/benchmarks/gptoss_fp4_h100.sh",
        cuda_graph_max_tokens=2048,
    ),
    ("sglang", "deepseek-ai/DeepSeek-R1", "b200_sxm"): Flags(
        # dsr1_fp8_b200.sh and dsr1_fp4_b200.sh both launch with --kv-cache-dtype fp8_e4m3
        f"{REPOSITORY}/1fc5d73cdd31c7fbdd657f3c7e5ec2180f4b0598/benchmarks/dsr1_fp8_b200.sh",
        kv_dtype="fp8",
    ),
    ("sglang", "zhipuai/GLM-5", "b200_sxm"): Flags(
        f"{REPOSITORY}/87af9d65f138afa34bd30825eb73dc879492850b/benchmarks/glm5_fp8_b200.sh",
        kv_dtype="fp8",
    ),
    # Llama-3.1-70B on B200 (fp8 and nvfp4 scripts alike): fp8 KV cache and cudagraph_mode FULL_DECODE_ONLY,
    # so no batch carrying prompt tokens replays a graph. Not on H100: the one script read there
    # (2a205bb, 70b_fp8_h100_slurm.sh, kv-cache-dtype fp8) is undated, and the H100 calibration row that
    # queues (tp 2, isl 8192, 32 clients: 6.5 s TTFT, 52.4 ms TPOT) ran about 29 sequences at once, what a
    # bf16 cache holds (28), not an fp8 one (56)
    ("vllm", "meta-llama/Llama-3.1-70B", "b200_sxm"): Flags(
        f"{REPOSITORY}/bb4c7f9389a89b399fb0bd0090944713baea59e5/benchmarks/70b_fp8_b200_docker.sh",
        kv_dtype="fp8",
        cuda_graph_max_tokens=0,
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
    ("vllm", "MiniMaxAI/MiniMax-M2.5", "b200_sxm", "fp8", "0.17.0"): Flags(
        f"{REPOSITORY}/80fd934be9928172e011dea86d117daaa59dc51a/benchmarks/minimaxm2.5_fp8_b200.sh",
        gpu_memory_utilization=0.95,
    ),
    ("vllm", "MiniMaxAI/MiniMax-M2.5", "b200_sxm", "fp8"): Flags(
        f"{REPOSITORY}/8eec0d4ed58b1a7ab659bc8b4038ffddf3452ea2/benchmarks/single_node/fixed_seq_len/minimaxm2.5_fp8_b200.sh",
        kv_dtype="fp8",
        cuda_graph_max_tokens=2048,
        budget_isl_multiple=2,
    ),
    # Kimi-K2.5 nvfp4 on B200 likewise: its earlier script (04107b3) runs vLLM's defaults, the later one
    # (below) an fp8 KV cache with 2048-token graphs; the calibration row that would queue (tp 4, isl 8192,
    # 64 clients: 1.28 s TTFT, 33.5 ms TPOT) ran about 62 sequences at once, which an fp8 cache holds (93) and
    # a bf16 one does not (46). Its budget is 2 x isl as MiniMax-M2.5's; --stream-interval 20 not modelled.
    ("vllm", "moonshotai/Kimi-K2.5", "b200_sxm", "nvfp4"): Flags(
        f"{REPOSITORY}/380b685df7cd81917d3ac25d326fef0e4a1793cb/benchmarks/single_node/fixed_seq_len/kimik2.5_fp4_b200.sh",
        kv_dtype="fp8",
        cuda_graph_max_tokens=2048,
        budget_isl_multiple=2,
    ),
}
"""(backend, model_path, system) -> the flags its InferenceX script sets; a key that adds the row's
``gemm_quant_mode`` is that format's script alone, one that also adds its ``backend_version`` that
engine version's script."""

NOT_MODELLED: dict[tuple[str, str, str], str] = {
    ("sglang", "zhipuai/GLM-5", "b200_sxm"): "EAGLE speculative decoding, 3 steps, 4 draft tokens",
    ("sglang", "Qwen/Qwen3.5-397B-A17B", "b200_sxm"): (
        "NEXTN (MTP) speculative decoding, 3 steps, 4 draft tokens "
        f"({REPOSITORY}/10c3d8d58652373eb44ed354ada3743fa11685ae/benchmarks/qwen3.5_fp8_b200.sh)"
    ),
}
"""Flags of InferenceX scripts that change a step but are not modelled, with what they are."""


def cuda_graph_tokens(backend: str, flags: Flags | None, max_num_seqs: int, budget: int) -> int:
    """The largest iteration [tokens] that ``backend`` replays as CUDA graphs when it carries prompt tokens,
    with the script's ``max-cudagraph-capture-size`` where it sets one
    (:func:`costmodel.closed_loop.cuda_graph_tokens`: vLLM's default min(2 ``max_num_seqs``, 512,
    ``budget``); 0 for TensorRT-LLM and SGLang, which capture decode-only batches alone)."""
    capture = flags.cuda_graph_max_tokens if flags is not None else None
    return closed_loop_graph_tokens(backend, max_num_seqs, budget, capture)


def is_inferencex(table: pd.DataFrame) -> pd.Series:
    """Rows of ``table`` (the silicon sample) that come from an InferenceX run: those of its two result files,
    and those of InferenceX's database dump (``db-dump/...`` with the ``workflow_run_id`` of the GitHub
    Actions run that measured it), which repeat the result files' measurements (e.g. MiniMax-M2.5 fp8 on
    B200 vLLM 0.19.0, tp 2, 128 clients, 1024 / 1024: 297.2 ms TTFT and 28.0 ms TPOT in both)."""
    text = table["silicon_data_source"].astype(str)
    source = text.str.extract(r"source_file=([^;]+)")[0]
    dump = text.str.startswith(DB_DUMP) & text.str.contains("workflow_run_id=", regex=False)
    return source.isin(SOURCE_FILES) | dump


def mean_length(nominal: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Mean of InferenceX's request lengths for a nominal isl or osl x [tokens]: uniform integers in
    [int(0.8 x), x], so (int(0.8 x) + x) / 2 (:data:`RANGE_RATIO`)."""
    x = np.asarray(nominal, dtype=np.float64)
    return (np.floor(RANGE_RATIO * x) + x) / 2.0


def scheduler_recv_interval(
    backend: str, model_path: str, system: str, tp: int, gemm: str, concurrency: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """SGLang's ``--scheduler-recv-interval`` I of an InferenceX row, by its script's rule, else 1 (the
    engine's default: the scheduler reads new requests before every iteration).

    DeepSeek-R1 on B200 sets it in both its scripts: 10, relaxed to 30 from 16 clients ("recv every ~10
    requests; if CONC >= 16, relax to ~30"), except at tp 4 in fp8, always 10
    (https://github.com/SemiAnalysisAI/InferenceX/blob/1fc5d73cdd31c7fbdd657f3c7e5ec2180f4b0598/benchmarks/dsr1_fp8_b200.sh,
    https://github.com/SemiAnalysisAI/InferenceX/blob/1fc5d73cdd31c7fbdd657f3c7e5ec2180f4b0598/benchmarks/dsr1_fp4_b200.sh)."""
    clients = np.asarray(concurrency, dtype=np.float64)
    if (backend, model_path, system) != ("sglang", "deepseek-ai/DeepSeek-R1", "b200_sxm"):
        return np.ones_like(clients)
    if gemm == "fp8" and tp == 4:
        return np.full_like(clients, 10.0)
    return np.where(clients >= 16, 30.0, 10.0)


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


def row_flags(
    inferencex: bool,
    backend: str,
    model_path: str,
    system: str,
    gemm_quant_mode: str = "",
    version: str = "",
) -> Flags | None:
    """The flags a row's engine was launched with where they are known (an InferenceX row of a script in
    :data:`FLAGS`: the script of the format and engine version first, then the format's, then the
    model's), else None (the engine's defaults)."""
    if not inferencex:
        return None
    return (
        FLAGS.get((backend, model_path, system, gemm_quant_mode, version))
        or FLAGS.get((backend, model_path, system, gemm_quant_mode))
        or FLAGS.get((backend, model_path, system))
    )
