"""Predict the public end-to-end serving measurements (``silicon_sample.csv``) with the closed-loop model.

Each row of NVIDIA aiconfigurator's silicon sample (Apache-2.0) is one deployment measured by a closed
loop of clients: backend and version, model (Hugging Face id), formats, ``isl`` / ``osl``, parallelism,
the per-worker ``batch_size``, the client concurrency (``silicon_concurrency=`` in
``silicon_data_source``), and the measured mean TTFT and TPOT in milliseconds.

A row is *covered* when costmodel can express it: its model's ``config.json`` is in ``DIR/model_configs``
and of a supported architecture, its system maps to a hardware profile, its formats to costmodel dtypes,
and its deployment to a :class:`costmodel.Deployment`. Every other row is counted with the reason, never
dropped. Covered aggregated rows are predicted by :func:`costmodel.closed_loop.closed_loop` on an engine
of the row's model, device, formats and parallelism: ``tp_size`` (attention TP within a rank),
``attention_dp_size``, ``moe_tp_size`` x ``moe_ep_size`` (= tp x attention_dp: the GPUs of the MoE
layer) and ``pp_size`` as :class:`costmodel.Deployment` fields; ``batch_size`` is per attention-DP rank
(the client concurrency is batch_size x attention_dp_size in the sample), so the engine's limits are
attention_dp times a rank's; a TensorRT-LLM row that leaves ``attention_dp_size`` empty while its
concurrency is batch_size x tp_size is attention DP over its tp_size GPUs (:func:`tp_as_attention_dp`),
unless that many workers of tp_size GPUs fill its job's GPUs (:func:`job_gpus`); a
vLLM row that states attention DP ran one engine of tp_size GPUs, expert parallel over them
(:func:`validation.public.inferencex.vllm_single_engine`).
Disaggregated rows (``mode == "disagg"``) that state both pools' worker
counts, batch sizes and layouts are predicted by :func:`costmodel.disagg.disagg_loop` (each pool's
attention DP and MoE split as above); the others are counted with the reason.

Formats: :func:`row_formats` maps the row's labels (and the checkpoint where the engine serves it as stored)
to the formats the engine's kernels run (docs/serving.md, "Formats: what each row's engine runs").

Assumptions, stated once: the KV cache's format, the share of device memory it gets and what an admitted
request holds of it follow each engine's defaults (:mod:`validation.public.engine_memory`: bf16 on vLLM
and SGLang, fp8 on TensorRT-LLM with quantized weights; TensorRT-LLM reserves a request's whole isl + osl),
except where the row is an InferenceX run whose script sets the KV format or the experts' input format
(:mod:`validation.public.inferencex`);
the engine's token budget per iteration is its default (:func:`token_budget`), launched, of which an
attention-DP rank gets the engine's share (:func:`costmodel.token_budget.rank_token_budget`), and its
sequence limit the
row's ``batch_size``, except on a disaggregated TensorRT-LLM or SGLang row run from a recipe that states
both (the recipe's, and an SGLang recipe's KV format, :mod:`validation.public.inferencex_disagg`); the
rows whose engine image is that of a benchmark configuration with multi-token prediction run it
(:data:`MTP_IMAGES`, :data:`MTP_RUNS`, :func:`row_speculation`), the others decode one token per
iteration. A row that leaves attention_dp_size unstated while its concurrency is batch_size x tp_size
runs attention data parallel over its tp_size GPUs (:func:`tp_as_attention_dp`).

Calibration: the closed-loop model's eight named parameters (:class:`costmodel.closed_loop.LoopParams`)
are fitted per engine (the ``backend`` column) on the calibration rows, chosen by the same rule as the
kernel tables (:func:`validation.public.split.calibration_mask` over the row's identity, never its
measurements), by :func:`fit_loop_params`; ``python -m validation silicon-calibrate`` writes them to
``SERVING_PARAMS`` and the evaluation only reads them back. The rest of the rows are held out.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml

from costmodel.adp_balance import AdpBalance
from costmodel.batch_wait import BatchWait
from costmodel.closed_loop import BOUNDS, LoopParams, LoopParts, Speculation, loop_parts
from costmodel.disagg import DisaggParams, DisaggParts
from costmodel.errors import CostmodelError
from costmodel.loop_params import engine_params_file, read_disagg_entry, read_engine_params
from costmodel.memory import RELEASE, shipped_checkpoints, workload_formats
from costmodel.registry import load_hardware, load_model
from costmodel.serving import Engine
from costmodel.specs import Deployment, HardwareProfile, ModelProfile, Workload
from costmodel.speculative import acceptance_for_tokens, pool_draft_kv_layers
from costmodel.token_budget import default_token_budget, rank_token_budget, worker_batched_tokens
from validation.public.engine_memory import engine_memory, kv_dtype, reserved_tokens
from validation.public.harness import (
    AICONFIGURATOR,
    HARNESS_ENGINES,
    row_harness,
    runs_as_train,
    stated_wave_share,
)
from validation.public.harness import MIN_CALIBRATION_ROWS as HARNESS_MIN_ROWS
from validation.public.harness import REFERENCE as HARNESS_REFERENCE
from validation.public.inferencex import (
    CLIENT_ENGINES,
    REQUESTS_PER_CLIENT,
    Script,
    attention_dp_balance,
    cuda_graph_tokens,
    drafts,
    is_inferencex,
    isl_budget,
    launch_script,
    mean_length,
    measured_dates,
    moe_backends,
    recv_interval,
    scheduler_flags,
    scripts_of,
    vllm_single_engine,
)
from validation.public.inferencex_disagg import (
    recipe_decode_graphs,
    recipe_limits,
    recipe_moe_backends,
    recipe_prefill_split,
    sglang_recipe_limits,
)
from validation.public.inferencex_disagg_workers import DRAFT_TOKENS, WORKER_COLUMNS, master_workers
from validation.public.reader import SYSTEM_PROFILES
from validation.public.sglang import (
    COLD_START_REASON,
    DRAFTING_CAMPAIGNS,
    cold_start_rows,
    disagg_decode_host_passes,
    drafting_rows,
    host_passes,
    overlap_host,
    overlaps_by_default,
)
from validation.public.split import calibration_mask

Served = list[tuple[Script, npt.NDArray[np.bool_]]]
"""The scripts some rows ran, each with the rows it serves (:func:`scripts_of`)."""

SILICON_FILE = "silicon_sample.csv"
SERVING_PARAMS = engine_params_file()
"""The committed per-engine closed-loop parameters, fitted on the calibration rows: a library data file
(:mod:`costmodel.loop_params`), so that the library's planners read what this module writes."""
MEASURED = ("silicon_ttft_ms", "silicon_tpot_ms")
TOKEN_BUDGET = 8192
"""The engines' default token budget per iteration on a GPU of 70 GiB or more (:func:`token_budget`)."""
Parts = LoopParts | DisaggParts
"""What a covered group of rows is predicted from: an aggregated closed loop or a disaggregated one."""

CONFIG_ALIASES: dict[str, str] = {
    "meta-llama/Llama-3.1-70B": "meta-llama/Meta-Llama-3.1-70B",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B",
    "zhipuai/GLM-5": "zai-org/GLM-5",
    "nvidia/DeepSeek-R1-NVFP4": "deepseek-ai/DeepSeek-R1",
    "nvidia/Qwen3-32B-NVFP4": "Qwen/Qwen3-32B",
}
"""Hugging Face ids whose ``config.json`` ships under another id with the same architecture (an instruct
or quantized variant of the same weights' shapes)."""

QUANT_MODES: dict[str, tuple[str, str]] = {
    "bf16": ("bf16", "bf16"),
    "fp8": ("fp8", "fp8"),
    "fp8_block": ("fp8_block", "fp8"),
    "nvfp4": ("nvfp4", "nvfp4"),
    "int4_wo": ("int4", "bf16"),
}
"""``gemm_quant_mode`` / ``moe_quant_mode`` -> (weight dtype, the dtype the matmuls take their inputs in):
fp8 is W8A8 at the fp8 peak, ``fp8_block`` DeepSeek-style 128 x 128 weight blocks with 1 x 128 fp8
activation groups, ``nvfp4`` ModelOpt's NVFP4 (W4A4: weights and activations in NVFP4, the fp4 peak,
https://nvidia.github.io/TensorRT-Model-Optimizer/guides/_choosing_quant_methods.html), ``int4_wo``
weight-only int4 (bf16 inputs). Where the row's checkpoint is served as stored, :func:`row_formats` takes
its formats instead (docs/serving.md, "Formats")."""
WEIGHT_DTYPES = {mode: weight for mode, (weight, _) in QUANT_MODES.items()}
"""``gemm_quant_mode`` -> costmodel weight dtype."""


LAUNCHED_CHECKPOINTS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("sglang", "zhipuai/GLM-5", "fp8"): ("glm-5", "fp8"),
    ("sglang", "zhipuai/GLM-5", "nvfp4"): ("glm-5", "nvfp4"),
    **{
        (backend, path, "nvfp4"): ("deepseek-v3", "nvfp4")
        for backend in ("sglang", "trtllm")
        for path in ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3")
    },
}
"""(backend, model_path, ``gemm_quant_mode``) of rows whose launch serves a published checkpoint other than
the ``config.json`` the sample ships for the model -> (costmodel model profile, name of that checkpoint
among its ``checkpoints``), whose stored formats :func:`launched_model` gives the row's model.

- GLM-5 fp8 on SGLang (B200, InferenceX ``glm5-fp8-b200-sglang``): the sample's config is the bf16 release
  (zai-org/GLM-5, no ``quantization_config``), but the rows launch zai-org/GLM-5-FP8, 128 x 128 fp8 blocks
  (costmodel/models/glm-5.yaml's ``fp8`` checkpoint records its ``quantization_config``; its
  ``modules_to_not_convert`` leaves out the indexer's weights_proj, not kv_b_proj: the same layout as
  zai-org/GLM-5.1-FP8, whose fp8 kv_b_proj sglang-jax dequantizes for the absorbed MLA,
  https://github.com/sgl-project/sglang-jax/pull/1111). The script,
  https://github.com/SemiAnalysisAI/InferenceX/blob/b9551f6/benchmarks/single_node/glm5_fp8_b200.sh
  (added by https://github.com/SemiAnalysisAI/InferenceX/pull/915), runs ``--model-path=$MODEL ...
  --quantization fp8``; ``$MODEL`` comes from ``.github/configs/nvidia-master.yaml``, whose line for this
  configuration could not be read (the stored copy, @0004cf5, holds multi-node entries only). That it is
  GLM-5-FP8 rests on InferenceX's other GLM-5 fp8 SGLang configurations, which name it
  (https://github.com/SemiAnalysisAI/InferenceX/issues/844, H200: ``model: zai-org/GLM-5-FP8``;
  https://github.com/SemiAnalysisAI/InferenceX/issues/761, MI355X: ``--model zai-org/GLM-5-FP8``), on
  SGLang's GLM-5 cookbook, whose FP8 variant is that checkpoint, and on the sample's own experts label,
  ``moe_quant_mode=fp8_block``. So these rows run the block-fp8 formats: dense GEMMs and experts in
  128 x 128 blocks, and the absorbed MLA bmm in bf16 on SGLang's dequantized W_UK / W_UV copies on CUDA
  (:func:`costmodel.memory.mla_absorb_format`), not per-tensor fp8.
- GLM-5 nvfp4 on SGLang (B200, measured 2026-03-29, image ``nightly-dev-cu13-20260328``): the rows launch
  nvidia/GLM-5-NVFP4 (ModelOpt NVFP4, released 2026-03-16; glm-5.yaml's ``nvfp4`` checkpoint: the dense
  MLPs, shared and routed experts in NVFP4, every attention projection and the indexer in bf16).
  https://github.com/SemiAnalysisAI/InferenceX/issues/972 (2026-03-29, the rows' date) asks for
  "glm5 nvfp4 for b200 TP8 from conc=4 to 64 ``nvidia/GLM-5-NVFP4``" with ``--quantization
  modelopt_fp4``, and its script, ``benchmarks/single_node/glm5_fp4_b200.sh`` (read at 405c601, after
  #1011), launches ``--model-path=$MODEL ... --quantization modelopt_fp4``, the method of ModelOpt's
  exported NVFP4 checkpoints; InferenceX's sibling configurations name the same checkpoint
  (https://github.com/SemiAnalysisAI/InferenceX/pull/1088, ``glm5-fp4-b300-sglang-mtp``: "the NVFP4
  weights in ``nvidia/GLM-5-NVFP4``"). Its config line in ``nvidia-master.yaml`` could not be read, as for
  the fp8 rows. So these rows run NVFP4 W4A4 only where the checkpoint stores NVFP4; their attention (and
  its absorbed MLA bmm) runs bf16, and their KV cache fp8, the format the checkpoint states for SGLang's
  ``auto`` (:data:`LAUNCHED_KV_FORMATS`, :func:`launched_kv_dtype`; #1011's later script states
  ``--kv-cache-dtype fp8_e4m3``).
- DeepSeek nvfp4 on SGLang and TensorRT-LLM (B200; every such row is an InferenceX DeepSeek-R1-0528 fp4
  run, whose result files and database the sample labels ``deepseek-ai/DeepSeek-R1`` or ``-V3``: SGLang
  0.5.9 aggregated, 0.5.8.post1 disaggregated; TensorRT-LLM 1.1.0rc2.post2, 1.2.0rc6.post2 / .post3
  aggregated, Dynamo 0.8.1.post1 disaggregated): the rows launch nvidia/DeepSeek-R1-0528-FP4-v2 (ModelOpt
  NVFP4; deepseek-v3.yaml's ``nvfp4`` checkpoint: o_proj, the dense MLPs, shared and routed experts in
  NVFP4, q_a, q_b, kv_a and kv_b projections bf16). The single-node configurations name it as ``model:``
  (``dsr1-fp4-b200-sglang``, ``dsr1-fp4-b200-trt``, ``dsr1-fp4-b200-trt-mtp``) in each
  ``nvidia-master.yaml`` read: https://github.com/InferenceMAX/InferenceMAX/blob/525079ad1fbd689b61201d73a20552f8a3e1a101/.github/configs/nvidia-master.yaml
  (TensorRT-LLM ``release:1.1.0rc2.post2``, SGLang v0.5.6) and
  https://github.com/SemiAnalysisAI/InferenceX/blob/48f302ccb820ad839646a486b783ba93e5b2e99e/.github/configs/nvidia-master.yaml
  (``1.2.0rc6.post2`` / ``.post3``; a fork's copy of December 2025,
  https://github.com/ROCm/InferenceMAX/blob/f11aefefaf665142d66bc6dbfbcc8106e82643be/.github/configs/nvidia-master.yaml,
  names it too). The rows of November 2025 (no version in the sample) share the key; no configuration of
  their date was read. The move to SGLang v0.5.9 changed the image only
  (https://github.com/SemiAnalysisAI/InferenceX/pull/814, superseded by #943), and the model stayed the
  same through later image moves (https://github.com/SemiAnalysisAI/InferenceX/pull/2989: "Model ...
  unchanged"). The scripts serve ``$MODEL`` as stored (``dsr1_fp4_b200.sh``: ``hf download "$MODEL"``,
  ``--model-path $MODEL --quantization modelopt_fp4``; ``dsr1_fp4_b200_trt.sh``: ``trtllm-serve $MODEL``).
  The disaggregated configurations name a local alias (``model: deepseek-r1-fp4``), which the B200
  multi-node launcher maps to its copy ``/lustre/fsw/models/dsr1-0528-nvfp4-v2``
  (https://github.com/SemiAnalysisAI/InferenceX/blob/0158b5771030d313c1c1361dded99e9673cd331a/runners/launch_b200-dgxc-slurm.sh),
  read by the srt-slurm recipes as ``model: path: dsr1`` (SGLang ones with ``quantization:
  modelopt_fp4``, :mod:`validation.public.inferencex_disagg`'s recipes). NVIDIA's card for the v2
  checkpoint: "Compared to nvidia/DeepSeek-R1-0528-FP4, this checkpoint additionally quantizes the wo
  module in attention layers" (https://huggingface.co/nvidia/DeepSeek-R1-0528-FP4-v2). Left as they are
  (another question): aiconfigurator's rows whose model path names its checkpoint
  (``nvidia/DeepSeek-R1-NVFP4``, ``nvidia/DeepSeek-V3.1-NVFP4``)."""


LAUNCHED_KV_FORMATS: dict[tuple[str, str], str] = {("glm-5", "nvfp4"): "fp8"}
"""(costmodel model profile, checkpoint name) of a :data:`LAUNCHED_CHECKPOINTS` checkpoint -> the KV cache
format it states for the engine: nvidia/GLM-5-NVFP4's ``hf_quant_config.json`` has ``kv_cache_quant_algo:
FP8`` (https://huggingface.co/nvidia/GLM-5-NVFP4/blob/main/hf_quant_config.json). zai-org/GLM-5-FP8 states
none (its ``quantization_config`` quantizes weights only; SGLang's GLM-5 cookbook dropped its explicit fp8
cache flag for that reason, https://github.com/sgl-project/sgl-cookbook/pull/237)."""

CHECKPOINT_KV_ENGINES: frozenset[str] = frozenset({"sglang"})
"""Engines whose default KV format (``--kv-cache-dtype auto``) is the one a ModelOpt checkpoint states:
SGLang's ``ModelRunner.configure_kv_cache_dtype`` picks ``float8_e4m3fn`` under ``auto`` where the model's
quantization config has ``kv_cache_quant_algo`` FP8 (sglang PR #18394, 2026-02-07,
https://github.com/sgl-project/sglang/pull/18394, before the GLM-5 rows' images of 2026-03). GLM-5 on a
Blackwell device gets fp8 under ``auto`` a second way where SGLang routes ``GlmMoeDsaForCausalLM`` through
its DeepSeek-DSA path (``_set_default_nsa_kv_cache_dtype``: ``fp8_e4m3`` from SM 100), which concerns the
fp8 rows too; their script states ``--kv-cache-dtype fp8_e4m3`` anyway
(``validation.public.inferencex.SCRIPTS``)."""


def launched_kv_dtype(backend: str, model_path: str, gemm: str) -> str | None:
    """The KV cache format the row's engine takes from the checkpoint its launch serves by default
    (:data:`LAUNCHED_KV_FORMATS` of the :data:`LAUNCHED_CHECKPOINTS` entry, on a
    :data:`CHECKPOINT_KV_ENGINES` engine), else None (the engine's own default,
    :func:`validation.public.engine_memory.kv_dtype`). A launch script's ``--kv-cache-dtype`` overrides it."""
    found = LAUNCHED_CHECKPOINTS.get((backend, model_path, gemm))
    if found is None or backend not in CHECKPOINT_KV_ENGINES:
        return None
    return LAUNCHED_KV_FORMATS.get(found)


def launched_model(model: ModelProfile, backend: str, model_path: str, gemm: str) -> ModelProfile:
    """``model`` (the sample config's profile) with the stored formats of the checkpoint the row's launch
    serves where :data:`LAUNCHED_CHECKPOINTS` names one (as its ``checkpoint``), else ``model`` itself.
    The named profile must have the sample config's shapes: a checkpoint of other weights is refused."""
    found = LAUNCHED_CHECKPOINTS.get((backend, model_path, gemm))
    if found is None:
        return model
    profile, name = found
    published = load_model(profile)
    shapes = ("d_model", "n_layers", "n_heads", "vocab_size", "moe", "mla")
    if any(getattr(published, f) != getattr(model, f) for f in shapes):
        raise CostmodelError(
            f"LAUNCHED_CHECKPOINTS[{(backend, model_path, gemm)!r}]: profile {profile!r} does not have the "
            f"shapes of {model_path}'s config ({', '.join(shapes)}); name the profile of the same weights"
        )
    checkpoint = shipped_checkpoints(published)[name]
    return model.model_copy(update={"checkpoint": checkpoint.model_copy(update={"name": None})})


def row_formats(model: ModelProfile, backend: str, system: str, gemm: str, moe: str) -> dict[str, Any]:
    """The formats an engine runs one row in: :class:`costmodel.specs.Workload`'s ``weight_dtype``,
    ``activation_dtype``, ``expert_dtype`` and ``expert_activation_dtype``.

    From the row's labels (:data:`QUANT_MODES`: ``gemm_quant_mode`` for the dense matmuls,
    ``moe_quant_mode`` for the routed experts), except where the labelled checkpoint is served as stored
    (``model.checkpoint``, read from its ``quantization_config``), which an engine does whenever the label
    is of the checkpoint's own kind; it never requantizes a quantized checkpoint:

    - MXFP4 experts (gpt-oss, ``quant_method: mxfp4``; the sample labels its rows ``nvfp4`` or ``fp8``,
      aiconfigurator's database modes): the experts stay MXFP4 and everything else bf16. The experts take
      MXFP8 inputs in TensorRT-LLM on Blackwell (fp8 x fp4 MMA at the fp8 peak) and bf16 inputs elsewhere
      (vLLM's default ``SM100_FI_MXFP4_BF16`` on Blackwell, Triton on Hopper; TensorRT-LLM's TRITON
      backend on Hopper) (docs/serving.md, "Formats", for the sources).
    - a weight-only int4 label on an int4 checkpoint (Kimi-K2.5's compressed-tensors experts, groups of
      32), and an 8-bit label on a checkpoint in 128 x 128 fp8 blocks (DeepSeek-V3/R1, Qwen3-FP8,
      MiniMax-M2.5): each component in its checkpoint format (the rest bf16), inputs as the label says.
    - an ``nvfp4`` label on a ModelOpt NVFP4 checkpoint (the launched nvidia/GLM-5-NVFP4 and
      nvidia/DeepSeek-R1-0528-FP4-v2, :data:`LAUNCHED_CHECKPOINTS`): exactly the checkpoint's stored formats,
      :func:`costmodel.memory.workload_formats` (NVFP4 W4A4 where it stores NVFP4, bf16 where it keeps
      bf16: ``component_dtypes``, the one key only this case returns).
    """
    weight, activation = QUANT_MODES[gemm]
    expert, expert_activation = QUANT_MODES.get(moe, (weight, activation))
    stored = model.checkpoint.component_dtypes if model.checkpoint is not None else {}
    hardware = load_hardware(SYSTEM_PROFILES[system])
    if stored.get("experts") == "mxfp4":
        mxfp8 = backend == "trtllm" and "fp4" in hardware.compute_dtypes
        return {
            "weight_dtype": "bf16",
            "activation_dtype": "bf16",
            "expert_dtype": "mxfp4",
            "expert_activation_dtype": "mxfp8" if mxfp8 else "bf16",
        }
    if stored and gemm == "nvfp4" and set(stored.values()) == {"nvfp4"}:
        return workload_formats(model, RELEASE, hardware)
    kind = {"int4": "int4", "fp8": "fp8", "fp8_block": "fp8"}
    if stored and all(kind.get(f.split("_")[0]) == kind.get(weight.split("_")[0]) for f in stored.values()):
        dense = stored.get("attention", model.checkpoint.weight_dtype if model.checkpoint else weight)
        expert = stored.get("experts", expert)
        if dense == "bf16":
            activation = "bf16"  # a bf16 weight runs in bf16: the label's inputs are the quantized layers'
        weight = dense
    return {
        "weight_dtype": weight,
        "activation_dtype": activation,
        "expert_dtype": expert if expert != weight else None,
        "expert_activation_dtype": expert_activation if expert_activation != activation else None,
    }


INFERENCEX_CONFIG = (
    "https://github.com/SemiAnalysisAI/InferenceX/blob/0004cf5f2577a1c1007a9bed7cc7d55656519507/"
    ".github/configs/nvidia-master.yaml"
)
"""SemiAnalysis InferenceX's benchmark configurations (engine images, parallelism, speculative decoding)."""
MTP_IMAGES: dict[tuple[str, str], str] = {("trtllm", "1.2.0rc6.post3"): INFERENCEX_CONFIG}
"""(backend, backend_version) of the rows that run multi-token prediction (MTP) speculative decoding,
with the source that says so. The sample has no speculative-decoding column; these rows come from
SemiAnalysis' InferenceX runs (``source_file=2026-03-25.csv`` / ``2026-04-06.csv``, image
``nvcr.io#nvidia/tensorrt-llm/release:1.2.0rc6.post3``), and in InferenceX's benchmark configuration
that image is the one of ``dsr1-fp8-b200-trt-mtp`` and ``dsr1-fp4-b200-trt-mtp`` (``spec-decoding: mtp``,
"MTP=3 (or MTP=1 when DP_ATTN=true)"), while the plain ``dsr1-*-b200-trt`` configurations run
``1.2.0rc6.post2``. aiconfigurator's own regression tool predicts these rows without MTP (``nextn`` 0,
tools/accuracy_regression_testing/predict_silicon_sample.py)."""
MTP_RUNS: dict[tuple[str, str, str], str] = {
    ("trtllm", "1.1.0rc2.post2", "2026-01-14"): "https://github.com/SemiAnalysisAI/InferenceX/pull/642"
}
"""(backend, backend_version, ``measured=`` date) of runs of an image that InferenceX's plain and MTP
configurations shared, run by the MTP configuration, with the source of the image's MTP use
(:func:`mtp_run_dates`). ``dsr1-fp4-b200-trt-mtp`` and ``dsr1-fp8-b200-trt-mtp`` came with
https://github.com/SemiAnalysisAI/InferenceX/pull/392 (opened 2026-01-07: ``MTP=1`` with attention DP,
``MTP=3`` otherwise, as on 1.2.0rc6.post3) on ``release:1.1.0rc2.post2``, the image of the plain
``dsr1-*-b200-trt`` configurations until #594 / #620; #642 moved the fp4 MTP configuration "from
release:1.1.0rc2.post2 to release:1.2.0rc6.post3" (``perf-changelog.yaml``). The sample's 1.1.0rc2.post2
rows are two campaigns: 2025-12-15, before #392, plain; and 2026-01-14, after it, whose TPOT is half that of
the 2025-12-15 run of the same stated deployment (fp8, tp 8 x EP 8, 1k / 1k, 4 clients: 7.8 against 14.6 ms;
8k / 1k: 7.6 against 15.6 ms), a gain MTP gives and no scheduler setting can on one image. InferenceX's
database dump, which holds plain runs (:data:`validation.public.sglang.DRAFTING_CAMPAIGNS`), has no
TensorRT-LLM run of 2026-01-14, as it has none of the 1.2.0rc6.post3 MTP image."""
MTP_ACCEPTANCE_RATE = 0.85
"""Acceptance rate alpha of a DeepSeek MTP draft token [-]: DeepSeek-V3's technical report measures
85-90 % for its second-token prediction (https://arxiv.org/abs/2412.19437, section 5.4.3); the lower end,
taken for the first draft position."""

MTP_LATER_ACCEPTANCE_RATE = 0.63
"""Acceptance of a DeepSeek MTP draft at positions 2 .. k, each given the ones before it kept [-]. The
MTP module is trained to predict one token ahead; drafting k > 1 runs it again on its own drafts, which
it was not trained for, and the later drafts are kept less often (Samarin et al. 2026, "LK Losses",
model card of https://huggingface.co/nebius/MTP-DeepSeek-V3-0324: "The original DeepSeek-V3 MTP module
was trained primarily for first-token prediction and reused autoregressively for later positions,
causing degraded acceptance rates at later draft positions"). Its measured average acceptance length of
the original module, tau = 3.20 tokens per verification at K = 7 drafts (MT-Bench, HumanEval and GSM8K,
temperature 0; 3.09 at temperature 1), with the first draft at :data:`MTP_ACCEPTANCE_RATE`, solves
1 + 0.85 (1 - a^7) / (1 - a) = 3.20 for a = 0.629: E = 1.85, 2.39 and 2.72 tokens per verification at
k = 1, 2, 3 (at a = 0.63) where the i.i.d. 0.85 gives 1.85, 2.57 and 3.19.

Assumptions, each with what it moves: (1) the card's tau counts the verifier's bonus token (EAGLE's
convention, hence the leading 1; if it does not, 1 + 3.20 = E gives a ~ 0.78); (2) the card's table is
at K = 7 drafts (the fine-tuned module was trained at K = 6; K = 6 gives a = 0.64); (3) the first draft
is the V3 report's lower 0.85 (its upper 0.90 gives a = 0.60); (4) tau was measured on V3-0324's module
with MT-Bench, HumanEval and GSM8K at temperature 0 (3.09 at temperature 1 gives a = 0.61), not on the
rows' random prompts."""

SGLANG_DRAFTING = False
"""The default of :func:`silicon_parts`' and :func:`predict_silicon`'s ``sglang_drafting``: whether the
evaluation runs SGLang's speculative decoding on the rows of a drafting InferenceX script
(:func:`row_speculation` with the script). Off: with the cited acceptance (:data:`MTP_ACCEPTANCE_RATE`)
the B200 SGLang aggregated held-out TPOT goes from 11.4 / 36.3 % (median / p90) to 22.7 / 53.4 % after a
refit, and no single acceptance improves it (docs/serving.md, "SGLang's speculative decoding"). Those
figures are session 10's, measured with every draft kept i.i.d. at 0.85, before the later drafts' lower
rate (:data:`MTP_LATER_ACCEPTANCE_RATE`) existed; they were not re-measured with it. The rows keep plain
decoding and the scheduler changes alone (:mod:`validation.public.sglang`), but for a script that cites its
drafter's acceptance (:attr:`Script.acceptance_length`, Qwen3.5-397B's MTP recipe: :func:`priced`), whose
drafting is priced whatever this flag."""


def priced(script: Script | None, sglang_drafting: bool, *, tp: int, moe_ep: int) -> bool:
    """Whether a row of ``script`` at its layout runs its SGLang drafting in the prediction: the script
    drafts there (:func:`validation.public.inferencex.drafts`) and either cites its drafter's acceptance
    (:attr:`Script.acceptance_length`) or ``sglang_drafting`` is set (:data:`SGLANG_DRAFTING`)."""
    if not drafts(script, tp=tp, moe_ep=moe_ep):
        return False
    assert script is not None
    return sglang_drafting or script.acceptance_length is not None


def mtp_run_dates(table: pd.DataFrame) -> pd.Series:
    """Per row of ``table`` (the silicon sample), its ``measured=`` date where its (backend,
    backend_version, date) names a run of :data:`MTP_RUNS`, else "" (every other row, so that a row's date
    splits no group of rows it does not concern)."""
    measured = measured_dates(table)
    backend = table["backend"].astype(str)
    keys = zip(backend, table["backend_version"].fillna("").astype(str), measured.fillna(""), strict=True)
    return pd.Series([k[2] if k in MTP_RUNS else "" for k in keys], index=table.index, dtype=object)


def row_speculation(
    model: ModelProfile,
    backend: str,
    version: str,
    attention_dp: int,
    script: Script | None = None,
    measured: str = "",
) -> Speculation | None:
    """The speculative decoding a row runs, else None.

    TensorRT-LLM (:data:`MTP_IMAGES`, or a run of :data:`MTP_RUNS`, named by the row's ``measured``
    date): MTP with 3 draft tokens, 1 with attention DP (InferenceX's configuration), each drafted by
    the model's one MTP layer, a decoder layer like the others (TensorRT-LLM,
    https://nvidia.github.io/TensorRT-LLM/blogs/tech_blog/blog1_Pushing_Latency_Boundaries_Optimizing_DeepSeek-R1_Performance_on_NVIDIA_B200_GPUs.html:
    "1x Multi-Tokens Prediction (MTP) layer (MoE-architecture equivalent)"), so a draft step costs
    1 / n_layers of a decoding step (the output head's share understated).

    SGLang (an InferenceX script whose ``speculative`` is set, :attr:`Script.speculative_flags`): EAGLE,
    or NEXTN, which SGLang runs as EAGLE with the model's own MTP (NextN) layer as the draft model
    (``ServerArgs._handle_speculative_decoding``; Qwen3.5's script gives no draft model, so
    EAGLE loads the checkpoint's MTP layer too). ``EAGLEWorker``
    (https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/speculative/eagle_worker.py) runs,
    per decode iteration, ``--speculative-num-steps`` draft forwards of that one layer and the shared
    output head at the batch (the draft extend over the accepted tokens and num_steps - 1 draft decodes;
    the extend's tokens taken as the batch's), then one target forward verifying
    ``--speculative-num-draft-tokens`` tokens per request (top-k 1: a chain of num_steps drafts and the
    last verified token), each in its CUDA graph. So k = num_draft_tokens - 1 drafts, a draft step of
    1 / n_layers of a decode step less its head plus the head (``draft_head``), and the verification
    over B (k + 1) tokens (:func:`costmodel.closed_loop.loop_parts`). The acceptance is
    :data:`MTP_ACCEPTANCE_RATE` for every position, the one cited figure for a one-layer MTP draft (an
    assumption: neither model's acceptance on the benchmark's random prompts is published); a tree
    (top-k > 1) is refused."""
    if script is not None and script.speculative is not None:
        if script.speculative_flags is None:
            raise CostmodelError(f"the script {script.source} drafts but states no speculative_flags")
        steps, topk, verified = script.speculative_flags
        if topk != 1 or verified != steps + 1:
            raise CostmodelError(f"a speculative tree (top-k {topk}, {verified} draft tokens): not modelled")
        alpha = MTP_ACCEPTANCE_RATE
        if script.acceptance_length is not None:
            alpha = acceptance_rate_of(script.acceptance_length, steps)
        return Speculation(
            draft_tokens=steps,
            acceptance_rate=alpha,
            draft_cost_ratio=1.0 / model.n_layers,
            draft_head=True,
        )
    drafting = (backend, version) in MTP_IMAGES or (backend, version, measured) in MTP_RUNS
    if not drafting or model.mla is None:  # DeepSeek-V3-architecture models
        return None
    return Speculation(
        draft_tokens=1 if attention_dp > 1 else 3,
        acceptance_rate=MTP_ACCEPTANCE_RATE,
        draft_cost_ratio=1.0 / model.n_layers,
        later_acceptance_rate=MTP_LATER_ACCEPTANCE_RATE,
    )


def twin_speculation(model: ModelProfile) -> Speculation:
    """The drafting of a row of a :data:`validation.public.sglang.DRAFTING_CAMPAIGNS` MTP series: SGLang's
    EAGLE chain with the checkpoint's MTP layer (that campaign's ``speculative_flags``: 2 steps, 3 tokens
    verified), a draft step of 1 / n_layers of a decode step less its head plus the head, DeepSeek-V3's MTP
    rates (:data:`MTP_ACCEPTANCE_RATE` for the first draft, :data:`MTP_LATER_ACCEPTANCE_RATE` after)."""
    ((steps, _, _),) = {c.speculative_flags for c in DRAFTING_CAMPAIGNS.values()}
    return Speculation(
        draft_tokens=steps,
        acceptance_rate=MTP_ACCEPTANCE_RATE,
        draft_cost_ratio=1.0 / model.n_layers,
        draft_head=True,
        later_acceptance_rate=MTP_LATER_ACCEPTANCE_RATE,
    )


def acceptance_rate_of(acceptance_length: float, draft_tokens: int) -> float:
    """The i.i.d. acceptance alpha [-] whose expected tokens per verification at ``draft_tokens`` k equal
    ``acceptance_length`` E [tokens] (:func:`costmodel.speculative.acceptance_for_tokens`, the inverse of
    :func:`costmodel.speculative.expected_tokens`). E outside [1, k + 1] is an error naming the acceptance
    length."""
    if not (np.isfinite(acceptance_length) and 1.0 <= acceptance_length <= draft_tokens + 1):
        raise CostmodelError(
            f"an acceptance length must be in [1, {draft_tokens + 1}] at {draft_tokens} drafts, "
            f"got {acceptance_length!r}"
        )
    return float(acceptance_for_tokens(acceptance_length, draft_tokens))


def disagg_speculation(model: ModelProfile, draft_tokens: int, backend: str) -> Speculation | None:
    """The MTP speculative decoding of a disaggregated row's decode pool, else None: ``draft_tokens`` k
    from the deployment's recipe (:func:`validation.public.inferencex_disagg_workers.draft_tokens`), each
    drafted by the model's one MTP layer at 1 / n_layers of a decoding step, accepted at
    :data:`MTP_ACCEPTANCE_RATE`: the aggregated rows' rule (:func:`row_speculation`), the same draft model
    and source, so neither pool's acceptance is fitted to its rows. Each draft step also runs the shared
    output head at the batch (``draft_head``): SGLang's EAGLE (every SGLang MTP recipe,
    ``speculative-algorithm: EAGLE``; ``EAGLEWorker``), priced as the aggregated SGLang rows' drafts
    (:func:`row_speculation`, :func:`twin_speculation`), and TensorRT-LLM's MTP, whose worker samples each
    draft token from the logits of the MTP layer's ``shared_head`` over the target's ``lm_head``
    (``MTPWorker.forward`` and ``MTPEagleWorker.forward``: ``mtp_layer.shared_head(hidden_states,
    draft_model.lm_head, attn_metadata)`` once per draft step, ``tensorrt_llm/_torch/speculative/mtp.py``,
    https://github.com/NVIDIA/TensorRT-LLM). ``backend``: the decode worker's engine, "sglang" or "trtllm"
    (the engines whose disaggregated rows draft). The aggregated TensorRT-LLM rule (:func:`row_speculation`)
    still leaves the head out (docs/serving.md, h16-trtdis3: neutral there, not applied)."""
    if draft_tokens < 1 or model.mla is None:  # DeepSeek-V3-architecture models
        return None
    return Speculation(
        draft_tokens=int(draft_tokens),
        acceptance_rate=MTP_ACCEPTANCE_RATE,
        draft_cost_ratio=1.0 / model.n_layers,
        draft_head=backend in ("sglang", "trtllm"),
        later_acceptance_rate=MTP_LATER_ACCEPTANCE_RATE,
    )


ROW_COLUMNS = ("id", "system", "backend", "mode", "model_path", "isl", "osl", "concurrency", "covered",
               "reason", "split", "ttft_ms", "tpot_ms", "predicted_ttft_ms", "predicted_tpot_ms")  # fmt: skip


def token_budget(backend: str, hardware: HardwareProfile) -> int:
    """The engine's default token budget per iteration (prompt chunks and decodes together) on
    ``hardware``, as the launch's flag holds it: :func:`costmodel.token_budget.default_token_budget`, the
    one rule the planner reads too (each engine's source cited there; an attention-DP rank's share of it is
    :func:`costmodel.token_budget.rank_token_budget`: SGLang divides it among the ranks, after choosing this
    default). The sample's rows all ran on H100 / B200: 8,192 for every engine, but SGLang's 16,384 on
    B200. vLLM's default is then capped at max_num_seqs x max_model_len only, above 8,192 for the
    InferenceX launches that set no budget (MiniMax-M2.5: 1024 and 256 sequences of at least 1224 tokens).
    """
    return default_token_budget(backend, hardware)


def read_silicon(data_dir: Path) -> pd.DataFrame:
    """The silicon sample of ``data_dir`` with the client concurrency parsed into ``concurrency``."""
    path = Path(data_dir) / SILICON_FILE
    table = pd.read_csv(path)
    missing = {"id", "backend", "model_path", "system", "mode", "isl", "osl", "silicon_ttft_ms"} - set(
        table.columns
    )
    if missing:
        raise CostmodelError(f"{path}: missing columns {sorted(missing)}")
    found = table["silicon_data_source"].astype(str).str.extract(r"silicon_concurrency=(\d+)")[0]
    table["concurrency"] = pd.to_numeric(found, errors="coerce")
    return table


def _config_path(configs: Path, model_path: str) -> Path:
    org_name = CONFIG_ALIASES.get(model_path, model_path)
    return configs / (org_name.replace("/", "--") + "_config.json")


def _load_models(configs: Path, model_paths: list[str]) -> dict[str, ModelProfile | str]:
    """Model profile per id, or the reason it cannot be loaded."""
    out: dict[str, ModelProfile | str] = {}
    for model_path in model_paths:
        path = _config_path(configs, model_path)
        if not path.is_file():
            out[model_path] = f"no config.json for {model_path}"
            continue
        try:
            out[model_path] = ModelProfile.from_hf_config(path)
        except (CostmodelError, ValueError) as error:
            first = str(error).splitlines()[0]
            out[model_path] = f"model not supported: {re.sub(r'^.*?: ', '', first)[:120]}"
    return out


def _shipped_format(configs: Path, model_path: str) -> str | None:
    """ "bf16" when the model's config.json ships unquantized 16-bit weights, else None (unknown)."""
    path = _config_path(configs, model_path)
    if not path.is_file() or path.stat().st_size > 16_000_000:
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    if "quantization_config" in config or "quantization_config" in text:
        return None
    dtype = text.get("torch_dtype", config.get("torch_dtype"))
    return "bf16" if dtype in ("bfloat16", "float16") else None


def silicon_parts(
    data_dir: Path, *, sglang_drafting: bool = SGLANG_DRAFTING
) -> tuple[pd.DataFrame, list[tuple[pd.Index, Parts]]]:
    """The sample with ``reason`` (empty where covered) and ``split``, and the closed-loop parts of every
    covered group of rows (one engine each; :class:`DisaggParts` for a group of disaggregated rows).
    ``sglang_drafting``: SGLang rows of a drafting InferenceX script run its speculative decoding
    (:data:`SGLANG_DRAFTING`, off by default)."""
    table = read_silicon(data_dir)
    models = _load_models(Path(data_dir) / "model_configs", sorted(table["model_path"].unique()))
    reason = pd.Series("", index=table.index, dtype=object)

    def refuse(mask: Any, why: str) -> None:
        reason[mask & (reason == "")] = why

    refuse(~table["mode"].isin(["agg", "disagg"]), "mode not modelled (neither agg nor disagg)")
    _refuse_disagg(table, refuse)
    refuse(~table["system"].isin(list(SYSTEM_PROFILES)), "system without a hardware profile")
    refuse(table["concurrency"].isna(), "no silicon_concurrency in silicon_data_source")
    refuse(cold_start_rows(table), COLD_START_REASON)
    # bf16 rows carry no gemm_quant_mode; a row that states no precision runs the checkpoint as shipped,
    # which for a config.json without quantization_config and with bf16 / fp16 weights is bf16
    shipped = {m: _shipped_format(Path(data_dir) / "model_configs", m) for m in models}
    unstated = table["precision"].isna() & table["gemm_quant_mode"].isna()
    table.loc[unstated, "precision"] = table.loc[unstated, "model_path"].map(shipped)
    bf16 = table["gemm_quant_mode"].isna() & (table["precision"] == "bf16")
    table.loc[bf16, "gemm_quant_mode"] = "bf16"
    refuse(table["precision"].isna(), "no precision, and the checkpoint is not a plain bf16 one")
    refuse(~table["gemm_quant_mode"].isin(list(WEIGHT_DTYPES)), "gemm_quant_mode not mapped")
    refuse(
        table["moe_quant_mode"].notna() & ~table["moe_quant_mode"].isin(list(QUANT_MODES)),
        "moe_quant_mode not mapped",
    )
    for model_path, model in models.items():
        if isinstance(model, str):
            refuse(table["model_path"] == model_path, model)
    # an unstated degree is 1 (no such parallelism); filled in a copy, the row identity (the split) unchanged
    degrees = ["tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size"]
    # the experts' label where the row states one, else the dense matmuls' (bf16 rows state neither);
    # filled in a copy, the row identity (the split) unchanged
    filled = table.assign(
        **{column: table[column].fillna(1) for column in degrees},
        moe_quant_mode=table["moe_quant_mode"].fillna(table["gemm_quant_mode"]),
        backend_version=table["backend_version"].fillna("").astype(str),
        inferencex=is_inferencex(table),
    )
    ranks = tp_as_attention_dp(table, models)
    filled.loc[ranks, "attention_dp_size"] = filled.loc[ranks, "tp_size"]
    filled.loc[ranks, "tp_size"] = 1
    # vLLM rows whose script ran one TP engine with EP over its GPUs, all the clients on it
    single = vllm_single_engine(table)
    filled.loc[single, "batch_size"] *= filled.loc[single, "attention_dp_size"]
    filled.loc[single, "moe_ep_size"] = filled.loc[single, "tp_size"]
    filled.loc[single, ["attention_dp_size", "moe_tp_size"]] = 1
    squared = squared_expert_layout(filled)
    # E x E ranks of batch_size each are E ranks of E x batch_size (the clients stay where they were)
    ranks = squared & (filled["attention_dp_size"] > 1)
    filled.loc[ranks, "batch_size"] *= (
        filled.loc[ranks, "attention_dp_size"] / filled.loc[ranks, "moe_ep_size"]
    )
    for column in ("tp_size", "attention_dp_size"):
        wide = squared & (filled[column] > 1)
        filled.loc[wide, column] = filled.loc[wide, "moe_ep_size"]
    filled.loc[squared, "moe_tp_size"] = 1
    # each worker's share of the clients (all of them but on the rows of several workers)
    filled["concurrency"] = filled["concurrency"] / agg_workers(filled)
    # the token budget and batch waiting of the row's InferenceX TensorRT-LLM script (0: the defaults)
    # the rows' scripts, looked up once (the columns that find them stay as they are below)
    scripts = scripts_of(filled)
    # the result-file series of a campaign that ran a plain recipe and its MTP sibling at one layout
    filled["mtp_twin"] = drafting_rows(table, repeated_measurement(table))
    # the date of a run an image's MTP configuration made, where the plain one shared that image
    filled["mtp_run"] = mtp_run_dates(table)
    filled[["script_budget", "hold_iterations", "hold_tokens"]] = _script_columns(filled, scripts)
    filled[["balance_timeout", "balance_wait"]] = _balance_columns(filled, scripts)
    filled["moe_backend"] = _moe_backend_column(filled, scripts)
    # the token budget of the row's InferenceX vLLM script where it sets one (a multiple of the nominal isl)
    filled["script_budget"] = _vllm_script_budget(filled, scripts).fillna(filled["script_budget"])

    groups: list[tuple[pd.Index, Parts]] = []
    keys = ["backend", "model_path", "system", "gemm_quant_mode", "moe_quant_mode", *degrees, "batch_size"]
    keys.extend(
        ["backend_version", "inferencex", "script_budget", "precision", "moe_backend", "mtp_twin", "mtp_run"]
    )
    for key, rows in filled[(reason == "") & (table["mode"] == "agg")].groupby(keys, sort=True):
        backend, model_path, system, quant, moe_quant, tp, pp, dp, moe_tp, moe_ep, batch = key[:11]
        version, ix, sb, precision, moe_backend, twin, mtp_run = key[11:]
        model = models[str(model_path)]
        assert isinstance(model, ModelProfile)
        model = launched_model(model, str(backend), str(model_path), str(quant))
        hardware = load_hardware(SYSTEM_PROFILES[str(system)])
        # the MoE split means nothing for a dense model
        moe = {"moe_tp": int(moe_tp), "moe_ep": int(moe_ep)} if model.moe is not None else {}
        try:
            formats = row_formats(model, str(backend), str(system), str(quant), str(moe_quant))
            kv = launched_kv_dtype(str(backend), str(model_path), str(quant)) or kv_dtype(
                str(backend), str(quant)
            )
            where = (str(backend), str(model_path), str(system))
            # the launch flags of the benchmark's script where the row's source states them
            script = launch_script(bool(ix), *where, str(precision), str(version), str(mtp_run))
            if script is not None:
                kv = script.kv_dtype or kv
                if script.expert_activation_dtype is not None:
                    formats["expert_activation_dtype"] = script.expert_activation_dtype
            # the script's token budget where it sets one (InferenceX TensorRT-LLM), else the engine's
            # default, as launched: a rank's share of it is the engine's rule (costmodel.token_budget)
            launched = int(sb) or token_budget(str(backend), hardware)
            budget = rank_token_budget(str(backend), launched, int(dp))
            speculation = (
                twin_speculation(model)
                if twin
                else row_speculation(
                    model,
                    str(backend),
                    str(version),
                    int(dp),
                    script if priced(script, sglang_drafting, tp=int(tp), moe_ep=int(moe_ep)) else None,
                    measured=str(mtp_run),
                )
            )
            engine = Engine(
                model,
                hardware,
                Workload(1, 1, 1, kv_dtype=kv, **formats),
                Deployment(tp=int(tp), pp=int(pp), attention_dp=int(dp), **moe),
                # batch_size is per attention-DP rank
                max_batch_size=int(batch) * int(dp),
                max_batched_tokens=worker_batched_tokens(
                    str(backend), launched, attention_dp=int(dp), sequences=int(batch) * int(dp)
                ),
                # the kernel models read the calibrated kernels of the row's engine (and the MoE backend
                # its script states)
                efficiency=hardware.efficiency.model_copy(
                    update={
                        "kernel_engine": str(backend),
                        "moe_backend": str(moe_backend) or None,
                        "norm_in_allreduce": script is not None and script.norm_in_allreduce,
                        "symm_mem_all_reduce": script is not None and script.symm_mem_all_reduce,
                    }
                ),
                # the draft's KV cache in the engine's own pool, by the engine's rule
                draft_kv_layers=0
                if speculation is None
                else pool_draft_kv_layers(str(backend), speculation.draft_tokens),
            )
            # the engine's own memory rule and admission (validation/public/engine_memory.py)
            # (SGLang's own rule where the row ran its defaults: aiconfigurator's collection)
            engine = engine_memory(
                str(backend),
                engine,
                defaults=bool((row_harness(rows) == AICONFIGURATOR).all()),
                gpu_memory_utilization=None if script is None else script.gpu_memory_utilization,
                max_num_seqs=_script_max_num_seqs(script, engine.max_batch_size),
                chunked_prefill_size=launched,
            )
            isl, osl = rows["isl"].to_numpy(float), rows["osl"].to_numpy(float)
            clients = rows["concurrency"].to_numpy(float)
            poll = np.ones_like(clients)
            if ix and backend in CLIENT_ENGINES:  # InferenceX's client and its scripts' recv interval
                isl, osl = mean_length(isl), mean_length(osl)
                poll = recv_interval(script, tp=int(tp), concurrency=clients, precision=str(precision))
            osl = np.maximum(osl, 2.0)
            parts = loop_parts(
                engine,
                concurrency=clients,
                isl=isl,
                osl=osl,
                reserved_tokens=reserved_tokens(str(backend), isl, osl),
                speculation=speculation,
                # per rank, as the budget: the piecewise CUDA graphs a mixed batch can replay
                graph_tokens=cuda_graph_tokens(str(backend), script, int(batch), max(budget, int(batch))),
                poll_iterations=poll,
                batch_wait=_row_batch_wait(rows),
                adp_balance=_row_balance(rows),
                # InferenceX's TensorRT-LLM runs: the first of ten cycles per client is a wave; a harness
                # whose measured phase starts with every client at once states its own (vLLM's rows)
                wave_share=1.0 / REQUESTS_PER_CLIENT
                if ix and backend == "trtllm"
                else stated_wave_share(str(backend), row_harness(rows)),
                overlap_host=not twin
                and overlap_host(
                    str(backend),
                    script,
                    tp=int(tp),
                    moe_ep=int(moe_ep),
                    hybrid=model.n_linear_attention_layers + model.n_mamba2_layers > 0,
                ),
                # fixed lengths against an overlapped scheduler: the clients' prompts come in a train
                train=runs_as_train(str(backend), row_harness(rows)),
                # SGLang's EAGLE worker prepares its draft, verification and draft extend in turn
                host_passes=host_passes(
                    str(backend), script, tp=int(tp), moe_ep=int(moe_ep), twin=bool(twin)
                ),
            )
        except (CostmodelError, ValueError) as error:
            why = re.sub(r"^invalid Deployment: \(profile\): ", "", str(error).splitlines()[0])
            reason[rows.index] = f"not expressible: {why[:120]}"
            continue
        groups.append((rows.index, parts))
    groups.extend(_disagg_groups(table, models, reason))
    table["reason"] = reason
    # the row as the sample states it: not the measurements, nor why costmodel cannot predict it (a
    # reworded or newly lifted refusal must not move rows between calibration and held-out)
    identity = table.drop(columns=[c for c in (*MEASURED, "reason") if c in table.columns])
    split = pd.Series(np.where(calibration_mask(identity), "calibration", "held-out"), index=table.index)
    # one measurement exported twice (a result file and the database dump, or a re-exported file) is one
    # measurement: every copy takes the split of the copy with the smallest id (whatever the rows' order),
    # so no copy of a held-out row calibrates
    copies = pd.DataFrame(
        {"label": repeated_measurement(table), "id": table["id"].astype(str), "split": split}
    )
    chosen = copies.sort_values(["label", "id"], kind="stable").groupby("label")["split"].first()
    table["split"] = chosen.reindex(copies["label"]).to_numpy()
    return table, groups


REPEAT_KEYS = ("system", "backend", "mode", "isl", "osl", "concurrency")
"""What rows repeating one measurement share besides its TTFT and TPOT (:func:`repeated_measurement`). Not
the model: InferenceX's database dump labels DeepSeek-R1 runs (ids ``dsr1_*``) as DeepSeek-V3, the same
measurement as the R1 result file's row to the hundredth of a millisecond, so a model key gave the two copies
separate splits."""


def repeated_measurement(table: pd.DataFrame) -> npt.NDArray[np.intp]:
    """Per row, a label shared by the rows that repeat one measurement: the same system, engine, mode,
    lengths and concurrency, and the same measured TTFT and TPOT to 0.01 ms (the sample's
    precision). The sample holds one benchmark run more than once: its result file and the database dump
    of the same run (which names DeepSeek-R1 runs DeepSeek-V3, :data:`REPEAT_KEYS`), and files that
    re-export other runs (:data:`validation.public.inferencex.REEXPORTED_FILES`); 1,449 of its 2,969 rows
    repeat another's measurement. Equality of two measurements is all this looks at, never their size or any
    prediction."""
    keys = table[list(REPEAT_KEYS)].astype(str)
    keys = keys.assign(
        ttft=table["silicon_ttft_ms"].round(2).astype(str),
        tpot=table["silicon_tpot_ms"].round(2).astype(str),
    )
    return np.asarray(keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup().to_numpy())


def _script_max_num_seqs(script: Script | None, clients: int) -> int | None:
    """vLLM's ``--max-num-seqs`` of the row's script (its ``clients`` where the script passes ``$CONC``),
    None where it sets none (the engine's default)."""
    if script is None or script.max_num_seqs is None:
        return None
    return int(clients) if script.max_num_seqs == "clients" else int(script.max_num_seqs)


def _script_columns(filled: pd.DataFrame, scripts: Served | None = None) -> pd.DataFrame:
    """Per row: the token budget of its InferenceX TensorRT-LLM script (0: the engine's default), and the
    iterations and tokens of its batch waiting (0: none)
    (:func:`validation.public.inferencex.scheduler_flags`), one pass over the rows of each script
    (``scripts``: :func:`scripts_of` of ``filled``, where the caller has it)."""
    out = np.zeros((len(filled), 3))
    columns = ("isl", "osl", "tp_size", "attention_dp_size", "concurrency")
    isl, osl, tp, dp, clients = (filled[column].to_numpy(float) for column in columns)
    for script, rows in scripts_of(filled) if scripts is None else scripts:
        flags = scheduler_flags(
            script,
            isl=isl[rows],
            osl=osl[rows],
            tp=tp[rows],
            attention_dp=dp[rows],
            concurrency=clients[rows],
        )
        out[rows] = np.column_stack(flags)
    return pd.DataFrame(out, index=filled.index, columns=["script_budget", "hold_iterations", "hold_tokens"])


def _moe_backend_column(filled: pd.DataFrame, scripts: Served | None = None) -> pd.Series:
    """Per row: the MoE backend its InferenceX script states ("": none, the engine's fastest kernel;
    :func:`validation.public.inferencex.moe_backends`), one pass over the rows of each script
    (``scripts``: :func:`scripts_of` of ``filled``, where the caller has it)."""
    out = np.full(len(filled), "", dtype=object)
    columns = ("isl", "osl", "tp_size", "concurrency", "attention_dp_size")
    isl, osl, tp, clients, dp = (filled[column].to_numpy(float) for column in columns)
    for script, rows in scripts_of(filled) if scripts is None else scripts:
        run = {"isl": isl[rows], "osl": osl[rows], "tp": tp[rows], "attention_dp": dp[rows]}
        out[rows] = moe_backends(script, concurrency=clients[rows], **run)
    return pd.Series(out, index=filled.index)


def _balance_columns(filled: pd.DataFrame, scripts: Served | None = None) -> pd.DataFrame:
    """Per row: the attention-DP balancing of its InferenceX TensorRT-LLM script, timeout and batching
    wait [iterations] (NaN: none; :func:`validation.public.inferencex.attention_dp_balance`), one pass over
    the rows of each script (``scripts``: :func:`scripts_of` of ``filled``, where the caller has it)."""
    out = np.full((len(filled), 2), np.nan)
    dp = filled["attention_dp_size"].to_numpy(float)
    for script, rows in scripts_of(filled) if scripts is None else scripts:
        out[rows] = np.column_stack(attention_dp_balance(script, dp[rows]))
    return pd.DataFrame(out, index=filled.index, columns=["balance_timeout", "balance_wait"])


def _row_balance(rows: pd.DataFrame) -> AdpBalance | None:
    """The attention-DP balancing of a group's rows (:func:`_balance_columns`), None where none holds."""
    if rows["balance_timeout"].isna().all():
        return None
    return AdpBalance(
        rows["balance_timeout"].fillna(0.0).to_numpy(float), rows["balance_wait"].fillna(0.0).to_numpy(float)
    )


def _vllm_script_budget(filled: pd.DataFrame, scripts: Served | None = None) -> pd.Series:
    """Per row: the token budget its InferenceX vLLM script sets, ``budget_isl_multiple`` x the nominal isl
    (:func:`validation.public.inferencex.isl_budget`), NaN where it sets none; one pass over the rows of
    each script (``scripts``: :func:`scripts_of` of ``filled``, where the caller has it)."""
    out = np.full(len(filled), np.nan)
    isl = filled["isl"].to_numpy(float)
    for script, rows in scripts_of(filled) if scripts is None else scripts:
        out[rows] = isl_budget(script, isl[rows])
    return pd.Series(out, index=filled.index)


def _row_batch_wait(rows: pd.DataFrame) -> BatchWait | None:
    """The batch waiting of a group's rows (:func:`_script_columns`), None where none holds."""
    if not (rows["hold_iterations"] > 0).any():
        return None
    return BatchWait(rows["hold_iterations"].to_numpy(float), rows["hold_tokens"].to_numpy(float))


def agg_workers(filled: pd.DataFrame) -> pd.Series:
    """Workers of an aggregated row: W when its client concurrency is a whole multiple W > 1 of
    ``batch_size`` x ``attention_dp_size`` (after :func:`tp_as_attention_dp`), else 1. Such a row runs W
    identical workers behind the router, each with C / W clients (Dynamo's router spreads requests over
    the workers, round robin or at random:
    https://docs.nvidia.com/dynamo/additional-resources/tensor-rt-llm-details/dp-rank-routing), so each
    is the closed loop of C / W clients.

    One row of the sample reads so, nvidia/Qwen3-32B-NVFP4 on B200 with TensorRT-LLM 1.3.0rc5 (isl 15000,
    osl 500, tp 2, batch_size 13, concurrency 416 = 32 x 13): (1) its disaggregated sibling of the same
    job (``gtl_job_id=23803065``, same model, lengths and day) runs 40 one-GPU prefill and 6 four-GPU
    decode workers, 64 GPUs, which are 32 workers of tp 2; (2) its measured mean TTFT of 0.72 s with a
    TPOT of 13.7 ms rules out 403 clients queueing for one worker's 13 slots, each freed every
    500 x 13.7 ms = 6.8 s (read as one worker, the loop predicts 227 s). Every other aggregated row's
    concurrency is batch_size x attention_dp_size (or batch_size x tp_size, :func:`tp_as_attention_dp`),
    except nvidia/DeepSeek-V3.1-NVFP4 of the same job: 448 = 8 x 56 clients, 8 workers of tp 8
    (:func:`tp_as_attention_dp`)."""
    ranks = filled["batch_size"] * filled["attention_dp_size"]
    workers = filled["concurrency"] / ranks
    whole = (workers > 1) & np.isclose(workers, np.round(workers))
    return pd.Series(np.where(whole, np.round(workers), 1.0), index=filled.index)


def tp_as_attention_dp(table: pd.DataFrame, models: dict[str, ModelProfile | str]) -> pd.Series:
    """Aggregated TensorRT-LLM rows of a MoE model that state ``tp_size`` but leave ``attention_dp_size``
    empty, and whose client concurrency is batch_size x tp_size: TensorRT-LLM attention DP over the
    ``tp_size`` GPUs (one attention-DP rank per GPU, each with ``batch_size`` sequences), expressed as
    tp = 1 and attention_dp = tp_size.

    TensorRT-LLM's ``tensor_parallel_size`` is the worker's world size, and ``enable_attention_dp`` makes
    each of its GPUs an attention-DP rank ("The --enable-attention-dp flag sets attention_dp_size =
    tensor_parallel_size", https://docs.nvidia.com/dynamo/additional-resources/tensor-rt-llm-details/dp-rank-routing).
    The 11 rows this selects (nvidia/DeepSeek-R1-NVFP4 on B200, openai/gpt-oss-120b on H100; the
    gap-analysis campaign of Dynamo 0.9.0) read as that: (1) their concurrency is
    batch_size x tp_size on every one of them (224 = 56 x 4, ..., 40 = 5 x 8), the rule of the sample's
    attention-DP rows (batch_size per rank x ranks), where every other aggregated row with tp > 1 and an
    empty attention_dp_size has concurrency = batch_size (563 of the other 569; 6 state none); (2) their
    moe_tp_size x moe_ep_size is tp_size, the MoE layer over all the worker's GPUs; (3) their measured mean
    TTFT (0.4-2.3 s against 47-91 ms per output token, osl 1000) rules out the 2-8 clients per sequence
    slot a worker of batch_size sequences would make wait: read as tensor parallelism, the loop predicts
    28-136 s.

    Except a row whose concurrency / batch_size workers of tp_size GPUs fill its job's GPUs
    (:func:`job_gpus`): it ran that many tensor-parallel workers behind the router, batch_size clients each
    (:func:`agg_workers`). One row reads so, nvidia/DeepSeek-V3.1-NVFP4 on B200 (job 23803065, 448 = 56 x 8
    clients at tp 8): 8 workers of 8 GPUs are the job's 64, as its Qwen3-32B-NVFP4 rows' 32 aggregated
    workers of tp 2 and 40 + 6 x 4 disaggregated GPUs are, where one attention-DP worker would hold 8. The
    other 11 rows' jobs state no GPUs (job 23879486 has no disaggregated row), and read as workers, its
    DeepSeek-R1-NVFP4 rows would hold 16 GPUs at tp 4 and 64 at tp 8 in one job."""
    moe = table["model_path"].map(
        lambda m: isinstance(models.get(m), ModelProfile) and models[m].moe is not None
    )
    # read as W = concurrency / batch_size workers of tp_size GPUs, the row fills its job's GPUs
    stages = table["pp_size"].fillna(1) if "pp_size" in table.columns else 1
    workers_gpus = table["concurrency"] / table["batch_size"] * table["tp_size"] * stages
    fills_job = np.isclose(workers_gpus, job_gpus(table))
    return (
        (table["backend"] == "trtllm")
        & (table["mode"] == "agg")
        & table["attention_dp_size"].isna()
        & (table["tp_size"] > 1)
        & (table["concurrency"] == table["batch_size"] * table["tp_size"])
        & moe.astype(bool)
        & ~fills_job
    )


JOB_ID = r"gtl_job_id=(\d+)"
"""The benchmark job of a row of aiconfigurator's collection in ``silicon_data_source``
(:func:`job_gpus`)."""


def job_gpus(table: pd.DataFrame) -> pd.Series:
    """Per row: the GPUs its benchmark job (``gtl_job_id`` in ``silicon_data_source``) holds, where the
    job's disaggregated rows state it, else NaN.

    A disaggregated row states its pools whole: ``prefill_num_workers`` workers of ``prefill_tp_size`` x
    ``prefill_pp_size`` x ``prefill_attention_dp_size`` GPUs, and the same for decode (aiconfigurator's
    generator counts a worker's GPUs as tp x pp x dp: ``gpus_per_worker`` in
    ``src/aiconfigurator/generator/rule_plugin/trtllm.rule``, https://github.com/ai-dynamo/aiconfigurator).
    A job holds one allocation: the job's disaggregated rows that state their pools all count the same
    GPUs (job 23364591: 16 on each of its six H100 rows, 5 + 11 to 8 + 8 workers; job 23803065: 40 x 1 +
    6 x 4 = 64 on B200), and its aggregated rows fill it with as many workers as fit (the Qwen3-32B-NVFP4
    row of job 23803065: 32 workers of tp 2, :func:`agg_workers`). A job whose disaggregated rows disagree,
    or that has none, is NaN (unknown)."""
    if "silicon_data_source" not in table.columns:
        return pd.Series(np.nan, index=table.index)
    job = table["silicon_data_source"].astype(str).str.extract(JOB_ID)[0]
    gpus = pd.Series(0.0, index=table.index)
    for pool in ("prefill", "decode"):
        columns = [f"{pool}_{name}" for name in ("tp_size", "pp_size", "attention_dp_size")]
        width = table.reindex(columns=columns).fillna(1.0).prod(axis=1)
        gpus = gpus + table.reindex(columns=[f"{pool}_num_workers"]).iloc[:, 0] * width
    stated = (table["mode"] == "disagg") & job.notna() & gpus.notna()
    counts = gpus[stated].groupby(job[stated]).agg(["min", "max"])
    single = counts.loc[counts["min"] == counts["max"], "min"]
    return job.map(single).astype(float)


def squared_expert_layout(filled: pd.DataFrame, gpus_per_node: int = 8) -> pd.Series:
    """Aggregated rows that record an expert-parallel deployment of E GPUs as E x E: ``tp_size`` (or
    ``attention_dp_size``) = ``moe_tp_size`` x ``moe_ep_size`` with ``moe_tp_size`` = ``moe_ep_size`` = E,
    wider than one node of ``gpus_per_node`` GPUs. Such a row ran on E GPUs, its experts split E ways by
    expert parallelism (``moe_tp`` 1); :func:`silicon_parts` reads it so (tp or attention DP E).

    The evidence is in the sample itself: every such row with a twin of the same model, format, lengths
    and concurrency measures exactly (to the last digit) the TTFT and TPOT of that twin, and the twin is
    always the E-GPU deployment with ``moe_tp_size`` 1 and ``moe_ep_size`` E: 30 of the 124 SGLang rows at
    tp_size 16 / 64 (DeepSeek-R1 nvfp4 tp 16 = tp 4 x EP 4, tp 64 = tp 8 x EP 8; Qwen3.5-397B fp8 tp 16 =
    tp 4 x EP 4) and 15 of the 79 TensorRT-LLM rows at tp_size or attention_dp_size 16 / 64 (an
    attention-DP row's batch_size is then per recorded rank: its E ranks hold E x batch_size each, the
    concurrency being batch_size x the recorded attention_dp_size). The InferenceX scripts these SGLang
    rows come from launch one 8-GPU node, ``--tensor-parallel-size`` 4 or 8 with ``--ep-size``
    (https://github.com/SemiAnalysisAI/InferenceX/blob/1fc5d73cdd31c7fbdd657f3c7e5ec2180f4b0598/benchmarks/dsr1_fp4_b200.sh),
    its workflow counts ``GPU_COUNT = TP * PP * PCP``, EP adding none
    (https://github.com/SemiAnalysisAI/InferenceX/blob/00983c3e22a0489aa5f3219f4b8765f2258099fe/.github/workflows/benchmark-tmpl.yml),
    and SGLang's expert parallelism divides the tensor-parallel group (moe_tp = tp / ep), so ``tp_size``
    = E x E is the record multiplying the two degrees. Rows within a node (4 = 2 x 2) are read as
    stated: none of them has such a twin."""
    tp, dp = filled["tp_size"], filled["attention_dp_size"]
    moe_tp, moe_ep = filled["moe_tp_size"], filled["moe_ep_size"]
    return (
        (filled["mode"] == "agg")
        & (moe_tp > 1)
        & (moe_tp == moe_ep)
        & (tp * dp == moe_tp * moe_ep)
        & (tp * dp > gpus_per_node)
        & ((tp == 1) | (dp == 1))
    )


def fit_loop_params(table: pd.DataFrame, groups: list[tuple[pd.Index, Parts]]) -> dict[str, LoopParams]:
    """Per engine (``backend``): the :class:`LoopParams` that best fit the calibration rows' TTFT and TPOT
    together (:func:`fit_serving_params`, without the harnesses' request overheads)."""
    return fit_serving_params(table, groups)[0]


def fit_serving_params(
    table: pd.DataFrame, groups: list[tuple[pd.Index, Parts]]
) -> tuple[dict[str, LoopParams], dict[str, dict[str, float]]]:
    """Per engine (``backend``): the :class:`LoopParams` that best fit the calibration rows' TTFT and TPOT
    together (soft-L1 least squares on log(predicted / measured), as :mod:`costmodel.calibrate`), on the
    aggregated rows (the disaggregated ones: :func:`fit_disagg_params`); and, for an engine of
    :data:`validation.public.harness.HARNESS_ENGINES`, the ``request_overhead_s`` of each other benchmark
    harness with enough calibration rows, fitted in the same least squares (engine -> harness -> seconds;
    :mod:`validation.public.harness`)."""
    from scipy.optimize import least_squares

    agg = [(index, parts) for index, parts in groups if isinstance(parts, LoopParts)]
    harness = row_harness(table)

    names = list(BOUNDS)
    fitted: dict[str, LoopParams] = {}
    overheads: dict[str, dict[str, float]] = {}
    for backend in sorted(table["backend"].unique()):
        chosen = [
            (index[mask], parts, mask, str(harness[index[0]]))
            for index, parts in agg
            if (
                mask := (
                    (table.loc[index, "backend"] == backend) & (table.loc[index, "split"] == "calibration")
                ).to_numpy()
            ).any()
        ]
        if not chosen:
            continue
        counts = pd.Series([int(m.sum()) for _, _, m, _ in chosen]).groupby([h for *_, h in chosen]).sum()
        others = sorted(
            h
            for h, n in counts.items()
            if backend in HARNESS_ENGINES and h != HARNESS_REFERENCE and n >= HARNESS_MIN_ROWS
        )
        chosen = [(i, p, m, h if h in others else HARNESS_REFERENCE) for i, p, m, h in chosen]
        low = np.array([BOUNDS[n][0] for n in names] + [BOUNDS["request_overhead_s"][0]] * len(others))
        high = np.array([BOUNDS[n][1] for n in names] + [BOUNDS["request_overhead_s"][1]] * len(others))
        measured_ttft = np.concatenate([table.loc[i, MEASURED[0]].to_numpy(float) for i, *_ in chosen])
        measured_tpot = np.concatenate([table.loc[i, MEASURED[1]].to_numpy(float) for i, *_ in chosen])

        def residual(
            x: Any,
            chosen: Any = chosen,
            ttft: Any = measured_ttft,
            tpot: Any = measured_tpot,
            others: list[str] = others,
            low: Any = low,
            high: Any = high,
        ) -> Any:
            params = _harness_params(x, others, low, high)
            results = [parts.result(params[h]) for _, parts, _, h in chosen]
            p_ttft = (
                np.concatenate([r.ttft_s[m] for r, (_, _, m, _) in zip(results, chosen, strict=True)]) * 1e3
            )
            p_tpot = (
                np.concatenate([r.tpot_s[m] for r, (_, _, m, _) in zip(results, chosen, strict=True)]) * 1e3
            )
            return np.concatenate([np.log(p_ttft / ttft), np.log(p_tpot / tpot)])

        start = np.array([FIT_START[n] for n in names] + [FIT_START["request_overhead_s"]] * len(others))
        result = least_squares(residual, start, bounds=(low, high), loss="soft_l1", f_scale=0.1)
        params = _harness_params(result.x, others, low, high)
        fitted[str(backend)] = params[HARNESS_REFERENCE]
        if others:
            overheads[str(backend)] = {h: params[h].request_overhead_s for h in others}
    return fitted, overheads


def _harness_params(x: Any, others: list[str], low: Any, high: Any) -> dict[str, LoopParams]:
    """The fit's vector ``x`` as parameters per harness: the engine's :class:`LoopParams` (the first
    entries, in :data:`BOUNDS` order) for the reference harness, and each of ``others`` with its own
    ``request_overhead_s`` (one entry each, after them), every entry clipped to ``low`` / ``high``."""
    x = np.clip(np.asarray(x, dtype=float), low, high)
    base = LoopParams(**dict(zip(BOUNDS, x[: len(BOUNDS)].tolist(), strict=True)))
    out = {HARNESS_REFERENCE: base}
    for k, harness in enumerate(others):
        out[harness] = replace(base, request_overhead_s=float(x[len(BOUNDS) + k]))
    return out


def write_loop_params(
    fitted: dict[str, LoopParams],
    data_dir: Path,
    path: Path = SERVING_PARAMS,
    disagg: dict[str, dict[str, float]] | None = None,
    harness: dict[str, dict[str, float]] | None = None,
) -> None:
    """Write the fitted parameters (and the disaggregated rows' KV-transfer overheads, and the benchmark
    harnesses' request overheads, :func:`fit_serving_params`) with what they were fitted on."""
    import datetime as dt

    from costmodel.calibrate import git_revision, write_files
    from validation.public.reader import read_revision

    document = {
        "fitted_on": {
            "data": f"{SILICON_FILE} of {Path(data_dir).name}",
            "data_revision": read_revision(data_dir),
            "rows": "covered agg rows whose identity hashes to 0 mod 5 (validation/public/split.py); "
            "copies of one measurement share the split of the copy with the smallest id",
            "objective": "soft-L1 least squares of log(predicted / measured) TTFT and TPOT",
            "date": dt.date.today().isoformat(),
            "costmodel_revision": git_revision(),
        },
        "engines": {name: asdict(params) for name, params in sorted(fitted.items())},
    }
    if disagg:
        document["fitted_on"]["disagg_rows"] = (
            "covered disagg rows of the same rule, TTFT and TPOT; only kv_transfer_overhead_s and the "
            "disaggregated loop's own burst_fraction (effective), decode_share_dispersion held at 0 (round "
            "robin), the engine's others held"
        )
        for name in DISAGG_BOUNDS_WRITTEN:
            document[f"disagg_{name}"] = {k: v[name] for k, v in sorted(disagg.items())}
    if harness:
        document["fitted_on"]["harness_rows"] = (
            "request_overhead_s of the rows of each other benchmark harness (validation/public/harness.py), "
            "fitted with the engine's own"
        )
        document["harness_request_overhead_s"] = {
            k: dict(sorted(v.items())) for k, v in sorted(harness.items())
        }
    write_files({path: yaml.safe_dump(document, sort_keys=False)}, str(path))  # never an empty file


def read_harness_overheads(path: Path = SERVING_PARAMS) -> dict[str, dict[str, float]]:
    """The committed request overheads of the other benchmark harnesses [s], engine -> harness -> seconds;
    none when the file or its entry is absent (:mod:`validation.public.harness`)."""
    if not path.is_file():
        return {}
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    entry = document.get("harness_request_overhead_s") if isinstance(document, dict) else None
    if not isinstance(entry, dict):
        return {}
    return {str(k): {str(h): float(v) for h, v in m.items()} for k, m in entry.items() if isinstance(m, dict)}


def read_loop_params(path: Path = SERVING_PARAMS) -> dict[str, LoopParams]:
    """The committed per-engine parameters; none (defaults) when the file is absent
    (:func:`costmodel.loop_params.read_engine_params`)."""
    return read_engine_params(path)


def predict_silicon(
    data_dir: Path, params: dict[str, LoopParams] | None = None, *, sglang_drafting: bool = SGLANG_DRAFTING
) -> pd.DataFrame:
    """Every row of the silicon sample with its prediction or the reason it is not covered, with the
    committed per-engine parameters (or ``params``); ``sglang_drafting`` as :func:`silicon_parts`'."""
    table, groups = silicon_parts(data_dir, sglang_drafting=sglang_drafting)
    chosen = read_loop_params() if params is None else params
    overheads = read_disagg_overheads() if params is None else {}
    dispersion = read_disagg_share_dispersion() if params is None else {}
    waves = read_disagg_burst_fraction() if params is None else {}
    harness_overheads = read_harness_overheads() if params is None else {}
    harness = row_harness(table)
    predicted_ttft = np.full(len(table), np.nan)
    predicted_tpot = np.full(len(table), np.nan)
    for index, parts in groups:
        where = table.index.get_indexer(index)
        backend = str(table.loc[index[0], "backend"])
        loop = chosen.get(backend, LoopParams())
        # the rows' benchmark harness's own request overhead, where one was fitted
        own = harness_overheads.get(backend, {}).get(str(harness[index[0]]))
        if own is not None and isinstance(parts, LoopParts):
            loop = replace(loop, request_overhead_s=own)
        result = (
            parts.result(loop)
            if isinstance(parts, LoopParts)
            else parts.result(
                DisaggParams.from_loop(
                    loop,
                    kv_transfer_overhead_s=overheads.get(backend, 0.0),
                    overlap_host=overlaps_by_default(backend),
                    decode_share_dispersion=dispersion.get(backend, 0.0),
                    burst_fraction=waves.get(backend),
                )
            )
        )
        predicted_ttft[where] = result.ttft_s * 1e3
        predicted_tpot[where] = result.tpot_s * 1e3
    reason = table["reason"]
    out = pd.DataFrame(
        {
            "id": table["id"],
            "system": table["system"],
            "backend": table["backend"],
            "mode": table["mode"],
            "model_path": table["model_path"],
            "isl": table["isl"],
            "osl": table["osl"],
            "concurrency": table["concurrency"],
            "covered": np.isfinite(predicted_ttft),
            "reason": reason.where(reason != "", None),
            "split": table["split"],
            "ttft_ms": table["silicon_ttft_ms"],
            "tpot_ms": table["silicon_tpot_ms"],
            "predicted_ttft_ms": predicted_ttft,
            "predicted_tpot_ms": predicted_tpot,
        }
    )
    return out[list(ROW_COLUMNS)]


def silicon_summary(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per (system, engine, mode, metric, split): coverage and error figures (fractions)."""
    entries: list[dict[str, Any]] = []
    for (system, engine, mode, split), group in rows.groupby(
        ["system", "backend", "mode", "split"], sort=True
    ):
        total = len(group)
        for metric in ("ttft", "tpot"):
            covered = group[group["covered"]]
            ratio = covered[f"predicted_{metric}_ms"].to_numpy(float) / covered[f"{metric}_ms"].to_numpy(
                float
            )
            error = ratio - 1.0
            error = error[np.isfinite(error)]
            entries.append(
                {
                    "system": str(system),
                    "engine": str(engine),
                    "mode": str(mode),
                    "metric": metric,
                    "split": str(split),
                    "n": len(error),
                    "covered": len(covered),
                    "total": total,
                    "median_abs_err": float(np.median(np.abs(error))) if len(error) else None,
                    "p90_abs_err": float(np.percentile(np.abs(error), 90)) if len(error) else None,
                    "median_signed_err": float(np.median(error)) if len(error) else None,
                }
            )
    return entries


def uncovered_reasons(rows: pd.DataFrame) -> pd.Series:
    """Rows not covered, counted by reason."""
    return rows.loc[~rows["covered"], "reason"].fillna("no prediction").value_counts()


# ----------------------------------------------------------------------------------------------------
# Disaggregated rows (mode == "disagg"): costmodel.disagg.disagg_loop on a prefill and a decode engine
# ----------------------------------------------------------------------------------------------------

DISAGG_STATED = (
    "prefill_num_workers", "prefill_batch_size", "prefill_tp_size", "prefill_pp_size",
    "decode_num_workers", "decode_batch_size", "decode_tp_size", "decode_pp_size",
)  # fmt: skip
"""Columns a disaggregated row must state to be predicted: each pool's worker count, batch and layout."""
POOL_FIELDS = ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size", "batch_size")
POOL_LAYOUT = ("prefill_tp_size", "prefill_pp_size", "decode_tp_size", "decode_pp_size")
"""Columns of a disaggregated row's layouts, which a single-client row must state to be predicted."""
SINGLE_CLIENT = {
    "prefill_num_workers": 1,
    "prefill_batch_size": 1,
    "decode_num_workers": 1,
    "decode_batch_size": 1,
}
"""What a single-client disaggregated row that states no worker counts nor batches is predicted with: one
client's request is alone on one worker of each pool, whatever their counts and batch limits."""


def _refuse_disagg(table: pd.DataFrame, refuse: Any) -> None:
    """Count the disaggregated rows that do not state their deployment, with the reason.

    The sample's disaggregated benchmarks fill the decode pool: on every row that states both, the client
    concurrency equals decode_batch_size x decode_num_workers x decode_attention_dp_size (65 of 65 rows).
    The 15 rows without ``silicon_concurrency`` (8 aggregated, 7 disaggregated) all come from the five
    gap-analysis files of one campaign (``gtl_job_id=23364591``, Dynamo 0.8.0), none of whose rows states
    a concurrency: their ids leave the ``c`` slot empty, and the rest of ``silicon_data_source`` (job and
    task ids, date, image, Dynamo version) says nothing of it. No rule fills it in: on the gap-analysis
    files that do state a concurrency, the aggregated rule (batch_size x attention_dp_size) fails on 13 of
    the 14 rows of the later campaigns (there it is batch_size x tp_size). So they stay not covered, with
    the reason. (aiconfigurator's own regression tool predicts every row at its batch_size, without a
    concurrency.)

    The 393 rows without worker counts and batch sizes (DeepSeek-R1, the 2026-03-25 and 2026-04-06 files)
    state each pool's layout and the concurrency, but neither pool's worker count nor batch: concurrency =
    decode_batch_size x decode_num_workers x decode_attention_dp_size leaves two unknowns in one equation,
    and nothing states the prefill pool's size (no GPU total either), so they are not covered, except the
    10 with a single client: one client keeps one request in flight, so one worker of each pool serves it,
    alone in its batch, and the others idle; the loop's figures are the same for any worker counts and
    batch sizes (:func:`costmodel.disagg.disagg_loop` at concurrency 1), and the link is the NIC for any of
    them (each pool's worker has 8 or 16 GPUs: both exceed one 8-GPU NVLink domain). They are predicted at
    one worker of batch 1 per pool (:data:`SINGLE_CLIENT`). They are InferenceX runs: the 79 whose
    master configuration names one deployment without speculation run it, the others are refused with
    why (several deployments, MTP only, none; :mod:`validation.public.inferencex_disagg_workers`).
    """
    disagg = table["mode"] == "disagg"
    unstated = table[list(DISAGG_STATED)].isna().any(axis=1)
    single = (table["concurrency"] == 1) & table[list(POOL_LAYOUT)].notna().all(axis=1)
    # the InferenceX rows whose master configuration names one deployment run it, the others say why not
    # (validation.public.inferencex_disagg_workers)
    workers, why = master_workers(table)
    for text in sorted(set(why) - {""}):
        refuse(why == text, text)
    filled = workers.notna().all(axis=1)
    refuse(
        disagg & unstated & ~single & ~filled,
        "disagg row without prefill/decode worker counts and batch sizes",
    )


def _pool_engine(
    model: ModelProfile,
    formats: dict[str, str | None],
    system: str,
    backend: str,
    quant: str,
    tp: int,
    pp: int,
    dp: int,
    moe: dict[str, int],
    batch: int,
    budget: int | None = None,
    kv: str | None = None,
    *,
    defaults: bool = False,
    moe_backend: str | None = None,
    graphs: bool = True,
    draft_kv_layers: int = 0,
) -> Engine:
    """One worker of a pool: the row's model, device and formats, the pool's layout and batch. As in the
    aggregated rows, ``batch_size`` is per attention-DP rank (on every stated disaggregated row the client
    concurrency is decode_batch_size x decode_num_workers x decode_attention_dp_size), and the engine's KV
    format, token budget and memory rule are its defaults (:func:`kv_dtype`, :func:`token_budget`,
    :func:`engine_memory`; a rank's share of the default budget by the engine's rule,
    :func:`costmodel.token_budget.rank_token_budget`): the same software as its aggregated rows, except a
    rank's token ``budget`` (already the rank's) and the KV format ``kv`` where the row's recipe states them
    (:mod:`validation.public.inferencex_disagg`); ``defaults``: the row ran the engine's own memory rule
    (:func:`engine_memory`); ``moe_backend``: the MoE backend the recipe states for the pool (None: the
    engine's fastest kernel); ``graphs``: False where the recipe forces the pool to run without CUDA graphs
    (:func:`validation.public.inferencex_disagg.recipe_decode_graphs`), whose passes then pay the host's
    dispatch of each of the engine's kernels (the 'eager' execution mode, :mod:`costmodel.execution`);
    ``draft_kv_layers``: the layers a speculative draft caches per token in the pool's KV cache
    (:func:`costmodel.speculative.pool_draft_kv_layers`)."""
    hardware = load_hardware(SYSTEM_PROFILES[system])
    launched = token_budget(backend, hardware)  # the engine's default launch value
    engine = Engine(
        model,
        hardware,
        Workload(1, 1, 1, kv_dtype=kv or kv_dtype(backend, quant), **formats),
        Deployment(tp=tp, pp=pp, attention_dp=dp, **moe),
        max_batch_size=batch * dp,
        # a rank's budget where the recipe states it, else its share of the engine's default by the
        # engine's rule (costmodel.token_budget)
        max_batched_tokens=(
            budget * dp
            if budget
            else worker_batched_tokens(backend, launched, attention_dp=dp, sequences=batch * dp)
        ),
        # the kernel models read the calibrated kernels of the row's engine, as in the aggregated rows
        efficiency=hardware.efficiency.model_copy(
            update={
                "kernel_engine": backend,
                "moe_backend": moe_backend,
                "execution_mode": "graphs" if graphs else "eager",
            }
        ),
        draft_kv_layers=draft_kv_layers,
    )
    # SGLang's own memory rule reads the launch value (not max_batched_tokens, which the rule raises to the
    # sequences); a recipe's pool (``budget``) states only its rank's budget, and no recipe row runs the
    # engine's defaults (SGLang's memory rule raises where one would)
    return engine_memory(
        backend, engine, defaults=defaults, chunked_prefill_size=None if budget else launched
    )


FIT_START = {
    "step_overhead_s": 0.002,
    "request_overhead_s": 0.02,
    "burst_fraction": 0.1,
    "prefill_layer_overhead_s": 0.0005,
    "mla_prefill_layer_overhead_s": 0.0005,
    "first_token_lag_iterations": 1.0,
    "overlapped_host_s": 0.006,
    "layer_step_overhead_s": 1e-5,
}
"""Where the serving fit starts each :data:`costmodel.closed_loop.BOUNDS` parameter, by name (each other
harness's ``request_overhead_s`` starts at the engine's)."""


GENERATOR_PREFILL_MARGIN = 1500
"""Tokens above the prompt in the ``max_num_tokens`` aiconfigurator's generator gives a TensorRT-LLM
prefill worker (:func:`generator_prefill_budget`)."""


def generator_prefill_budget(rows: pd.DataFrame) -> pd.Series:
    """Per row, the token budget of the prefill workers (read for the disaggregated rows) that
    aiconfigurator's generator writes for a TensorRT-LLM row of its own collection
    (:data:`validation.public.harness.AICONFIGURATOR`): ``max_num_tokens`` = isl + 1500
    (``prefill max_num_tokens = SlaConfig.isl + 1500`` in
    ``src/aiconfigurator/generator/rule_plugin/benchmark/trtllm.rule`` at 581e459; the deployment rule,
    ``rule_plugin/trtllm.rule``, rounds the same sum up to a whole KV block), with chunked prefill off
    (``enable_chunked_prefill: ... default(false)`` in the templates
    ``generator/config/backend_templates/trtllm/extra_engine_args.1.3.0rc1.yaml.j2`` and
    ``extra_engine_args.1.3.0rc3.yaml.j2``, https://github.com/ai-dynamo/aiconfigurator): a prompt is one
    pass. NaN elsewhere (the engine's default, :func:`token_budget`). The sample's one such covered row,
    nvidia/Qwen3-32B-NVFP4 at isl 15000, could not have run at TensorRT-LLM's default 8192 without
    chunking, which the templates leave off."""
    aic = (rows["backend"] == "trtllm") & (row_harness(rows) == AICONFIGURATOR)
    return (rows["isl"] + GENERATOR_PREFILL_MARGIN).where(aic)


def _disagg_groups(
    table: pd.DataFrame, models: dict[str, ModelProfile | str], reason: pd.Series
) -> list[tuple[pd.Index, DisaggParts]]:
    """The :class:`DisaggParts` of every covered group of disaggregated rows (one pair of engines each);
    rows that cannot be expressed get their reason in ``reason``."""
    from costmodel.disagg import disagg_parts

    groups: list[tuple[pd.Index, DisaggParts]] = []
    pool_keys = [f"{pool}_{field}" for pool in ("prefill", "decode") for field in POOL_FIELDS]
    keys = ["backend", "model_path", "system", "gemm_quant_mode", "moe_quant_mode", *pool_keys]
    keys.extend(("decode_graphs", "decode_moe_backend", "prefill_budget", "recipe_kv", DRAFT_TOKENS))
    chosen = table[(table["mode"] == "disagg") & (reason == "")]
    # the deployment of the master configuration that ran a row stating none (filled in a copy: the split)
    workers = master_workers(chosen)[0]
    chosen = chosen.assign(
        **{c: workers[c].fillna(chosen[c]) for c in WORKER_COLUMNS},
        **{DRAFT_TOKENS: workers[DRAFT_TOKENS].fillna(0.0)},  # MTP in its decode pool (0: none)
    )
    single = chosen["concurrency"] == 1
    # a single client without stated workers: SINGLE_CLIENT's one worker per pool is the model's stand-in,
    # not the deployment, so no recipe is matched to it (its drafts, where its candidates agree, are kept)
    guessed = single & chosen[list(SINGLE_CLIENT)].isna().any(axis=1)
    chosen = chosen.assign(
        moe_quant_mode=chosen["moe_quant_mode"].fillna(chosen["gemm_quant_mode"]),
        # filled in a copy: the row identity (the split) unchanged
        **{c: chosen[c].where(~single | chosen[c].notna(), n) for c, n in SINGLE_CLIENT.items()},
    )
    # the engines' limits where the recipe that ran the row states them, else the row's batch columns
    limits = recipe_limits(chosen).where(~guessed)
    sgl = sglang_recipe_limits(chosen).where(~guessed)  # the SGLang recipes' limits, and their KV format
    limits = limits.fillna(sgl[limits.columns])
    # a prefill worker's expert split as its recipe (else every read recipe of its folder) states it
    # (inferencex_disagg.recipe_prefill_split), else the row's MoE columns (stated, or the master
    # configuration's ep)
    split = recipe_prefill_split(chosen, matched=~guessed)
    chosen = chosen.assign(**{c: split[c].fillna(chosen[c]) for c in split.columns})
    chosen = chosen.assign(
        prefill_batch_size=limits["prefill_batch_size"].fillna(chosen["prefill_batch_size"]),
        decode_batch_size=limits["decode_batch_size"].fillna(chosen["decode_batch_size"]),
        prefill_budget=limits["prefill_max_num_tokens"].fillna(generator_prefill_budget(chosen)),
        recipe_kv=sgl["kv_dtype"],
        decode_moe_backend=recipe_moe_backends(chosen).where(~guessed, ""),
        decode_graphs=recipe_decode_graphs(chosen) | guessed,
    )
    for key, rows in chosen.groupby(keys, sort=True, dropna=False):
        backend, model_path, system, quant, moe_quant = (str(k) for k in key[:5])
        model = models[model_path]
        assert isinstance(model, ModelProfile)
        model = launched_model(model, backend, model_path, quant)
        layout = dict(zip(pool_keys, key[5:-5], strict=True))
        decode_graphs = bool(key[-5])
        decode_moe_backend = str(key[-4]) or None
        budget = None if pd.isna(key[-3]) else int(key[-3])
        kv = None if pd.isna(key[-2]) else str(key[-2])
        kv = kv or launched_kv_dtype(backend, model_path, quant)
        speculation = disagg_speculation(model, int(key[-1]), backend)
        engines: dict[str, Engine] = {}
        try:
            formats = row_formats(model, backend, system, quant, moe_quant)
            for pool in ("prefill", "decode"):
                tp, pp, dp, moe_tp, moe_ep, batch = (layout[f"{pool}_{field}"] for field in POOL_FIELDS)
                dp = 1 if pd.isna(dp) else int(dp)
                moe: dict[str, int] = {}
                # an empty or 0 MoE degree is unstated: the engine's default (experts TP over the layer)
                if model.moe is not None and moe_tp > 0 and moe_ep > 0:
                    if moe_tp * moe_ep != tp * dp:
                        raise CostmodelError(
                            f"moe_tp x moe_ep differs from tp x attention_dp in the {pool} pool"
                        )
                    moe = {"moe_tp": int(moe_tp), "moe_ep": int(moe_ep)}
                engines[pool] = _pool_engine(
                    model, formats, system, backend, quant, int(tp), int(pp), dp, moe, int(batch),
                    budget if pool == "prefill" else None, kv,
                    defaults=bool((row_harness(rows) == AICONFIGURATOR).all()),
                    moe_backend=decode_moe_backend if pool == "decode" else None,
                    graphs=decode_graphs or pool == "prefill",
                    # the decode pool's draft (the one modelled) caches its layers in its KV pool
                    draft_kv_layers=pool_draft_kv_layers(backend, speculation.draft_tokens)
                    if speculation is not None and pool == "decode" else 0,
                )  # fmt: skip
            parts = disagg_parts(
                engines["prefill"],
                engines["decode"],
                prefill_workers=rows["prefill_num_workers"].to_numpy(float),
                decode_workers=rows["decode_num_workers"].to_numpy(float),
                concurrency=rows["concurrency"].to_numpy(float),
                isl=rows["isl"].to_numpy(float),
                osl=np.maximum(rows["osl"].to_numpy(float), 2.0),
                speculation=speculation,
                decode_host_passes=disagg_decode_host_passes(backend, drafts=speculation is not None),
            )
        except (CostmodelError, ValueError) as error:
            first = str(error).splitlines()[0][:120]
            reason[rows.index] = first if first.startswith("moe_tp") else f"not expressible: {first}"
            continue
        groups.append((rows.index, parts))
    return groups


DISAGG_FITTED = ("kv_transfer_overhead_s", "burst_fraction")
""":class:`DisaggParams` fields fitted on the disaggregated rows (the others: the engine's closed loop's, and
``decode_share_dispersion``, held at :data:`DISAGG_HELD`)."""

DISAGG_HELD = {"decode_share_dispersion": 0.0}
"""The disaggregated parameters held, not fitted: an even share of the clients over the decode workers (0),
as round-robin routing, Dynamo's default router
(https://docs.nvidia.com/dynamo/v1.2.0/user-guides/kv-cache-aware-routing), keeps it (docs/serving.md,
"A disaggregated wave share")."""

DISAGG_BOUNDS_WRITTEN = (*DISAGG_FITTED, *DISAGG_HELD)
"""The ``disagg_<field>`` entries the serving file holds: the fitted and the held."""


def fit_disagg_params(
    table: pd.DataFrame, groups: list[tuple[pd.Index, Parts]], loop: dict[str, LoopParams]
) -> dict[str, dict[str, float]]:
    """Per engine (``backend``): the :data:`DISAGG_FITTED` parameters (the KV transfer's fixed cost and the
    disaggregated loop's own wave share, an effective one) that best fit the TTFT and TPOT of its
    disaggregated calibration rows, the engine's closed-loop parameters ``loop`` (fitted on its aggregated
    rows) held fixed, and :data:`DISAGG_HELD` (an even decode share) (soft-L1 least squares on
    log(predicted / measured), as :func:`fit_loop_params`). An engine without disaggregated calibration
    rows gets none (its defaults: no transfer overhead, the closed loop's wave share). Until session 12 the
    wave share was the closed loop's and the decode share's dispersion was fitted instead (effective, at or
    next to its bound of 1 for both engines): docs/serving.md, "A disaggregated wave share"."""
    from scipy.optimize import least_squares

    from costmodel.disagg import BOUNDS as DISAGG_BOUNDS

    start = {"kv_transfer_overhead_s": 0.01, "burst_fraction": 0.2}
    fitted: dict[str, dict[str, float]] = {}
    names = DISAGG_FITTED
    low = np.array([DISAGG_BOUNDS[n][0] for n in names])
    high = np.array([DISAGG_BOUNDS[n][1] for n in names])
    for backend in sorted(table["backend"].unique()):
        chosen = []
        for index, parts in groups:
            if not isinstance(parts, DisaggParts):
                continue
            mask = (
                (table.loc[index, "backend"] == backend) & (table.loc[index, "split"] == "calibration")
            ).to_numpy()
            if mask.any():
                rows = index[mask]
                chosen.append((parts, mask, *(table.loc[rows, m].to_numpy(float) for m in MEASURED)))
        if not chosen:
            continue
        base = loop.get(str(backend), LoopParams())
        overlapped = overlaps_by_default(str(backend))

        def residual(
            x: Any, chosen: Any = chosen, base: LoopParams = base, overlapped: bool = overlapped
        ) -> Any:
            values = dict(zip(names, np.clip(x, low, high).tolist(), strict=True)) | DISAGG_HELD
            params = DisaggParams.from_loop(base, overlap_host=overlapped, **values)
            out = []
            for parts, mask, ttft, tpot in chosen:
                result = parts.result(params)
                out.append(np.log(result.ttft_s[mask] * 1e3 / ttft))
                out.append(np.log(result.tpot_s[mask] * 1e3 / tpot))
            return np.concatenate(out)

        result = least_squares(
            residual, np.array([start[n] for n in names]), bounds=(low, high), loss="soft_l1", f_scale=0.1
        )
        values = dict(zip(names, np.clip(result.x, low, high).tolist(), strict=True)) | DISAGG_HELD
        fitted[str(backend)] = {n: values[n] for n in DISAGG_BOUNDS_WRITTEN}
    return fitted


def read_disagg_overheads(path: Path = SERVING_PARAMS) -> dict[str, float]:
    """The committed per-engine KV-transfer overheads [s]; none when the file or its entry is absent."""
    return _read_disagg_entry(path, "disagg_kv_transfer_overhead_s")


def read_disagg_burst_fraction(path: Path = SERVING_PARAMS) -> dict[str, float]:
    """The committed per-engine wave share of the disaggregated loop [-]; none when the file or its entry is
    absent (the closed loop's ``burst_fraction`` then applies)."""
    return _read_disagg_entry(path, "disagg_burst_fraction")


def read_disagg_share_dispersion(path: Path = SERVING_PARAMS) -> dict[str, float]:
    """The committed per-engine effective dispersion of the decode share [-]; none when the file or its
    entry is absent."""
    return _read_disagg_entry(path, "disagg_decode_share_dispersion")


def _read_disagg_entry(path: Path, key: str) -> dict[str, float]:
    return read_disagg_entry(key, path)  # the library's reader: each value checked against its bounds
