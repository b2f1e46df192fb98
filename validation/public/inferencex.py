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
CLIENT_ENGINES = ("sglang",)
"""Engines whose InferenceX rows are predicted at the client's mean lengths (:func:`mean_length`). The
client is the same for every engine; vLLM's and TensorRT-LLM's rows keep the nominal lengths until their
loop parameters are refitted with them by their owners (docs/serving.md, "SGLang's aggregated rows")."""


@dataclass(frozen=True)
class Flags:
    """The launch flags of one InferenceX script that change the kernels (None: the engine's default)."""

    source: str
    """The script, at the commit read [URL]."""
    kv_dtype: str | None = None
    expert_activation_dtype: str | None = None


FLAGS: dict[tuple[str, str, str], Flags] = {
    ("vllm", "openai/gpt-oss-120b", "b200_sxm"): Flags(
        f"{REPOSITORY}/ffdb196ef8e7e73d003da2d1ec717242f4a98454/benchmarks/gptoss_fp4_b200.sh",
        kv_dtype="fp8",
        expert_activation_dtype="mxfp8",
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
}
"""(backend, model_path, system) -> the flags its InferenceX script sets."""

NOT_MODELLED: dict[tuple[str, str, str], str] = {
    ("sglang", "zhipuai/GLM-5", "b200_sxm"): "EAGLE speculative decoding, 3 steps, 4 draft tokens",
    ("sglang", "Qwen/Qwen3.5-397B-A17B", "b200_sxm"): (
        "NEXTN (MTP) speculative decoding, 3 steps, 4 draft tokens "
        f"({REPOSITORY}/10c3d8d58652373eb44ed354ada3743fa11685ae/benchmarks/qwen3.5_fp8_b200.sh)"
    ),
}
"""Flags of InferenceX scripts that change a step but are not modelled, with what they are."""


def is_inferencex(table: pd.DataFrame) -> pd.Series:
    """Rows of ``table`` (the silicon sample) that come from an InferenceX run: one of its two result
    files (:data:`SOURCE_FILES`) or its results database (:data:`DB_DUMP`)."""
    text = table["silicon_data_source"].astype(str)
    source = text.str.extract(r"source_file=([^;]+)")[0]
    return source.isin(SOURCE_FILES) | text.str.startswith(DB_DUMP)


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


def row_flags(inferencex: bool, backend: str, model_path: str, system: str) -> Flags | None:
    """The flags a row's engine was launched with where they are known (an InferenceX row of a script in
    :data:`FLAGS`), else None (the engine's defaults)."""
    return FLAGS.get((backend, model_path, system)) if inferencex else None
