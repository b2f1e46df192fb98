"""The engine limits of the silicon sample's disaggregated TensorRT-LLM rows, from the recipes that ran them.

The sample's disaggregated Dynamo + TensorRT-LLM rows (``nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime``
images, DeepSeek-R1 / V3 on H100 and B200) are SemiAnalysis InferenceX runs: its NVIDIA master configuration
launches each (system, format, isl / osl, prefill and decode workers and layouts, client concurrencies) from
one recipe of the srt-slurm repository (``CONFIG_FILE=recipes/trtllm/...`` in
https://github.com/SemiAnalysisAI/InferenceX/blob/0004cf5f2577a1c1007a9bed7cc7d55656519507/.github/configs/nvidia-master.yaml),
and a recipe states each engine's ``max_batch_size`` and ``max_num_tokens`` (per attention-DP rank, as
TensorRT-LLM applies them). The sample's ``prefill_batch_size`` / ``decode_batch_size`` are not those limits:
on every disaggregated row the concurrency is ``decode_batch_size`` x ``decode_num_workers`` x
``decode_attention_dp_size`` (clients per decode rank), and the prefill batch is 1 everywhere. Where a
recipe is found the engines run its limits, and the difference shows:

- more clients than decode slots. The H100 recipes of 1 prefill and 3 tp-16 decode workers run 6 clients
  on decode workers of ``max_batch_size`` 1 and 9 on workers of 2 (3 and 6 slots), so a third to a half of
  the clients wait for a slot for a whole decode: measured TTFT 0.86-0.91 and 0.46-0.47 of one request's
  decode, (C / slots - 1) = 1 and 0.5 in a closed loop (docs/serving.md, "Session 9");
- more prompts per prefill pass: a B200 fp4 prefill rank takes up to 8 prompts of 1,024 tokens in a
  10,240-token budget, not 1.

Each :class:`Recipe` is one recipe file, read at the commit cited; a row gets a recipe's limits only when its
backend, image, system, format, lengths, worker counts, layouts and concurrency all match exactly one
recipe (:func:`recipe_limits`). Other rows keep the sample's batch columns and the engine's default budget.

The disaggregated Dynamo + SGLang rows (``lmsysorg/sglang`` images, B200 fp8 and fp4) have recipes of their
own (:data:`SGLANG_RECIPES`, :func:`sglang_recipe_limits`): ``sglang_config`` sets each pool's
``chunked-prefill-size``, ``max-prefill-tokens`` and ``max-running-requests`` per worker, which SGLang shares
among a worker's attention-DP ranks, and an fp8 KV cache (``kv-cache-dtype: fp8_e4m3``) where the sample's
rows otherwise run SGLang's default, the model's bf16. ``cuda-graph-max-bs`` equals ``max-running-requests``
in each, so every decode batch runs in a CUDA graph, as the model assumes.

The recipes of the ``mtp`` folders (and SGLang's ``*-mtp.yaml``) decode with MTP speculation: a recipe
matches only rows whose deployment drafts as many tokens (``draft_tokens``; the ``stp`` recipes 0), the
column :func:`validation.public.inferencex_disagg_workers.master_workers` fills from the master
configuration's deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from costmodel.token_budget import rank_token_budget
from validation.public.inferencex_disagg_workers import DRAFT_TOKENS

SRT_SLURM = "https://github.com/ishandhanani/srt-slurm/blob"
IMAGE = "ai-dynamo/tensorrtllm-runtime"
"""What ``silicon_data_source`` names for a Dynamo + TensorRT-LLM run."""


@dataclass(frozen=True)
class Deployed:
    """What an srt-slurm recipe of a disaggregated Dynamo benchmark deploys and the client concurrencies it
    runs: the part every recipe shares, which :func:`_runs` matches a row against (pools as GPUs per worker
    and whether they run attention DP)."""

    source: str
    """The recipe, at the commit read [URL]."""
    system: str
    precision: str
    """The sample's ``precision`` of the rows it ran."""
    isl: int
    osl: int
    prefill_workers: int
    prefill_gpus: int
    prefill_attention_dp: bool
    decode_workers: int
    decode_gpus: int
    decode_attention_dp: bool
    concurrencies: tuple[int, ...]


@dataclass(frozen=True)
class Recipe(Deployed):
    """One srt-slurm recipe of a disaggregated Dynamo + TensorRT-LLM benchmark: its deployment and the
    engine limits it sets (per attention-DP rank)."""

    prefill_max_batch_size: int
    """A prefill rank's ``max_batch_size`` [prompts]."""
    prefill_max_num_tokens: int
    """A prefill rank's ``max_num_tokens`` [tokens per iteration]."""
    decode_max_batch_size: int
    """A decode rank's ``max_batch_size`` [sequences]."""
    draft_tokens: int = 0
    """MTP draft tokens per verification of its decode workers (``speculative_config``'s
    ``num_nextn_predict_layers``; 0: none, the ``stp`` recipes) [tokens]."""
    decode_moe_backend: str | None = None
    """A decode worker's ``moe_config.backend`` (``TRTLLM``, ``DEEPGEMM``, ``CUTLASS``; None: not read), the
    kernels it runs its routed experts with (``costmodel.specs.Efficiency.moe_backend``)."""
    decode_alltoall: str | None = None
    """The all-to-all a decode worker's environment forces (``TRTLLM_FORCE_ALLTOALL_METHOD``; None: none
    forced). ``DeepEP`` is DeepEP's normal kernels, which TensorRT-LLM runs without CUDA graphs
    (:data:`NO_GRAPH_ALLTOALL`)."""
    prefill_moe_ep: int | None = None
    """A prefill worker's ``moe_expert_parallel_size`` as the recipe states it, None exactly where it was not
    read (the H100 and B200 fp4 recipes: the row's MoE columns stand). With ``tensor_parallel_size`` t (the
    worker's GPUs under attention DP), TensorRT-LLM splits each expert t / ep ways (``moe_tp_size``)."""


def _h100(path: str) -> str:
    return f"{SRT_SLURM}/51962c0f0fb116045e1250edff7dd8dffdc63ac1/recipes/trtllm/h100-fp8/{path}"


def _h100_fork(path: str) -> str:
    # a fork of the same repository holds the H100 recipes of more clients than the upstream's index does
    return (
        "https://github.com/qiching/srt-slurm/blob/5063eb432640574bd93410ae2697591a7d15f57c/"
        f"recipes/trtllm/h100-fp8/{path}"
    )


def _b200_fp4(path: str) -> str:
    # the "recipies" folder of that commit; InferenceX cites the same names under recipes/trtllm/b200-fp4
    return f"{SRT_SLURM}/04fd98c3e43729db46bc11536a498358265e7bfc/recipies/trtllm/b200-fp4/{path}"


def _b200_fp8(commit: str, path: str) -> str:
    return f"{SRT_SLURM}/{commit}/recipes/trtllm/b200-fp8/{path}"


def _b200_fp8_fork(path: str) -> str:
    # the fork of :func:`_h100_fork`, which holds the low-concurrency B200 fp8 recipes too
    return (
        "https://github.com/qiching/srt-slurm/blob/5063eb432640574bd93410ae2697591a7d15f57c/"
        f"recipes/trtllm/b200-fp8/{path}"
    )


def _b200_fp8_fork2(path: str) -> str:
    # another fork of the same repository, the only one that holds the high-concurrency B200 fp8 8k1k recipes
    return (
        "https://github.com/connorcarpenter15/srt-slurm/blob/5a156f6b57af830b1912129283dc9e8294324d28/"
        f"recipes/trtllm/b200-fp8/{path}"
    )


_FP8_8K = "e71238b30d6858f7d4cae5677aade2e0aaa1c18c"
_FP8_1K = "fe2cd90552d38cee128edc32f26fc0003c22f21d"

RECIPES: tuple[Recipe, ...] = (
    # H100 fp8: 1 prefill worker of 16 attention-DP ranks, 3 (or 2) tp-16 decode workers
    Recipe(_h100("1k1k/stp/ctx1_gen3_tep16_batch1_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 3, 16, False, (6,), 2, 2048, 1),
    Recipe(_h100("1k1k/stp/ctx1_gen3_tep16_batch2_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 3, 16, False, (9,), 2, 2048, 2),
    Recipe(_h100_fork("1k1k/stp/ctx1_gen3_tep16_batch8_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 3, 16, False, (30,), 2, 2048, 8),
    Recipe(_h100_fork("1k1k/stp/ctx1_gen3_tep16_batch16_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 3, 16, False, (60,), 2, 2048, 16),
    Recipe(_h100("8k1k/stp/ctx1_gen3_tep16_batch1_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 8192, 1024,
           1, 16, True, 3, 16, False, (6,), 1, 8224, 1),
    Recipe(_h100("8k1k/stp/ctx1_gen3_tep16_batch2_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 8192, 1024,
           1, 16, True, 3, 16, False, (9,), 1, 8224, 2),
    Recipe(_h100_fork("8k1k/stp/ctx1_gen3_tep16_batch8_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 8192, 1024,
           1, 16, True, 3, 16, False, (30,), 1, 8224, 8),
    Recipe(_h100_fork("8k1k/stp/ctx1_gen2_tep16_batch64_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 8192, 1024,
           1, 16, True, 2, 16, False, (154,), 1, 8224, 64),
    # H100 fp8, more clients: decode workers of 16 attention-DP ranks (1 prefill worker, or 2 for gen1)
    Recipe(_h100_fork("1k1k/stp/ctx1_gen3_dep16_batch4_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 3, 16, True, (231,), 2, 2048, 4, decode_alltoall="DeepEP"),
    Recipe(_h100_fork("1k1k/stp/ctx1_gen3_dep16_batch8_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 3, 16, True, (462,), 2, 2048, 8, decode_alltoall="DeepEP"),
    Recipe(_h100_fork("1k1k/stp/ctx1_gen3_dep16_batch16_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 3, 16, True, (924,), 2, 2048, 16, decode_alltoall="DeepEP"),
    Recipe(_h100_fork("1k1k/stp/ctx1_gen3_dep16_batch32_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 3, 16, True, (1845,), 2, 2048, 32, decode_alltoall="DeepEP"),
    Recipe(_h100_fork("1k1k/stp/ctx2_gen1_dep16_batch256_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 1024, 1024,
           2, 16, True, 1, 16, True, (4916,), 2, 2048, 256, decode_alltoall="DeepEP"),
    Recipe(_h100_fork("8k1k/stp/ctx2_gen1_dep16_batch16_eplb0_mtp0.yaml"), "h100_sxm", "fp8", 8192, 1024,
           2, 16, True, 1, 16, True, (308,), 1, 8224, 16, decode_alltoall="DeepEP"),
    # B200 fp4: prefill workers of 4 attention-DP ranks. Their decode workers' moe_config.backend as each
    # recipe states it: CUTLASS on every attention-DP decode pool, TRTLLM (trtllm-gen) on every
    # tensor-parallel one (tep: expert parallelism 8 under tensor-parallel attention), STP and MTP alike
    Recipe(_b200_fp4("1k1k/stp/ctx1_gen5_tep8_batch32_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 1024, 1024,
           1, 4, True, 5, 8, False, (10, 15, 25, 45, 90, 180), 8, 10240, 32,
           decode_moe_backend="TRTLLM"),
    Recipe(_b200_fp4("1k1k/stp/ctx1_gen6_tep8_batch64_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 1024, 1024,
           1, 4, True, 6, 8, False, (450,), 8, 10240, 64,
           decode_moe_backend="TRTLLM"),
    Recipe(_b200_fp4("1k1k/stp/ctx1_gen2_dep8_batch128_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 1024, 1024,
           1, 4, True, 2, 8, True, (2192,), 8, 10240, 128,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("1k1k/stp/ctx1_gen1_dep8_batch512_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 1024, 1024,
           1, 4, True, 1, 8, True, (4096,), 8, 10240, 512,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("8k1k/stp/ctx1_gen5_tep8_batch8_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 8192, 1024,
           1, 4, True, 5, 8, False, (10, 15, 25, 50, 100), 2, 16896, 16,
           decode_moe_backend="TRTLLM"),
    Recipe(_b200_fp4("8k1k/stp/ctx2_gen5_tep8_batch64_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 8192, 1024,
           2, 4, True, 5, 8, False, (370,), 2, 16896, 64,
           decode_moe_backend="TRTLLM"),
    Recipe(_b200_fp4("1k1k/stp/ctx1_gen5_tep8_batch1_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 1024, 1024,
           1, 4, True, 5, 8, False, (6,), 8, 10240, 1,
           decode_moe_backend="TRTLLM"),
    Recipe(_b200_fp4("1k1k/stp/ctx1_gen5_dep8_batch32_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 1024, 1024,
           1, 4, True, 5, 8, True, (1365,), 8, 10240, 32,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("8k1k/stp/ctx1_gen5_tep8_batch1_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 8192, 1024,
           1, 4, True, 5, 8, False, (6,), 2, 16896, 1,
           decode_moe_backend="TRTLLM"),
    Recipe(_b200_fp4("8k1k/stp/ctx4_gen1_dep8_batch192_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 8192, 1024,
           4, 4, True, 1, 8, True, (1606,), 2, 16896, 192,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("8k1k/stp/ctx4_gen3_dep8_batch32_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 8192, 1024,
           4, 4, True, 3, 8, True, (837,), 2, 16896, 32,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("8k1k/stp/ctx7_gen2_dep8_batch128_eplb0_mtp0.yaml"), "b200_sxm", "fp4", 8192, 1024,
           7, 4, True, 2, 8, True, (2222,), 2, 16896, 128,
           decode_moe_backend="CUTLASS"),
    # B200 fp8: prefill workers of 8 attention-DP ranks. Their decode workers' moe_config.backend as each
    # recipe states it: TRTLLM (trtllm-gen) on every tensor-parallel decode pool (expert parallelism 1, all
    # 256 experts on each GPU) and every 8k1k stp one, DEEPGEMM on the 1k1k and 8k1k-mtp attention-DP pools
    # (the 8k1k ones' prefill workers: moe_expert_parallel_size 1, each expert split over the 8 GPUs)
    Recipe(_b200_fp8(_FP8_1K, "1k1k/stp/ctx1_gen5_dep8_batch48_eplb0_mtp0_1920.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 5, 8, True, (1920,), 16, 16384, 48, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/stp/ctx1_gen1_dep8_batch512_eplb0_mtp0_4096.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 1, 8, True, (4096,), 16, 16384, 512, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8_fork("1k1k/stp/ctx1_gen3_tp8_batch1024_eplb0_mtp0_4.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 3, 8, False, (4,), 16, 16384, 1, decode_moe_backend="TRTLLM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8_fork("1k1k/stp/ctx1_gen3_tp8_batch1024_eplb0_mtp0_32.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 3, 8, False, (32,), 16, 16384, 12, decode_moe_backend="TRTLLM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/stp/ctx1_gen3_tp8_batch1024_eplb0_mtp0_128.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 3, 8, False, (128,), 16, 16384, 48, decode_moe_backend="TRTLLM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/stp/ctx2_gen5_dep8_batch128_eplb0_mtp0_5152.yaml"), "b200_sxm", "fp8",
           1024, 1024, 2, 8, True, 5, 8, True, (5152,), 16, 16384, 128, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_8K, "8k1k/stp/ctx1_gen4_tp8_batch32_eplb0_mtp0_128.yaml"), "b200_sxm", "fp8",
           8192, 1024, 1, 8, True, 4, 8, False, (128,), 1, 8320, 32, decode_moe_backend="TRTLLM",
           prefill_moe_ep=1),
    Recipe(
        "https://github.com/qiching/srt-slurm/blob/5063eb432640574bd93410ae2697591a7d15f57c/"
        "recipes/trtllm/b200-fp8/8k1k/stp/ctx1_gen4_tp8_batch32_eplb0_mtp0_32.yaml", "b200_sxm", "fp8",
        8192, 1024, 1, 8, True, 4, 8, False, (32,), 1, 8320, 8, decode_moe_backend="TRTLLM",
        prefill_moe_ep=1,
    ),
    Recipe(_b200_fp8(_FP8_8K, "8k1k/stp/ctx1_gen6_tp8_batch16_eplb0_mtp0_96.yaml"), "b200_sxm", "fp8",
           8192, 1024, 1, 8, True, 6, 8, False, (96,), 1, 8320, 16, decode_moe_backend="TRTLLM",
           prefill_moe_ep=1),
    Recipe(_b200_fp8(_FP8_8K, "8k1k/stp/ctx1_gen1_dep8_batch128_eplb0_mtp0_128.yaml"), "b200_sxm", "fp8",
           8192, 1024, 1, 8, True, 1, 8, True, (128,), 1, 8320, 16, decode_moe_backend="TRTLLM",
           prefill_moe_ep=1),
    Recipe(_b200_fp8(_FP8_8K, "8k1k/stp/ctx1_gen2_dep8_batch64_eplb0_mtp0_128.yaml"), "b200_sxm", "fp8",
           8192, 1024, 1, 8, True, 2, 8, True, (128,), 1, 8320, 8, decode_moe_backend="TRTLLM",
           prefill_moe_ep=1),
    Recipe(_b200_fp8_fork2("8k1k/stp/ctx1_gen1_dep8_batch256_eplb0_mtp0_256.yaml"), "b200_sxm", "fp8",
           8192, 1024, 1, 8, True, 1, 8, True, (256,), 1, 8320, 256, decode_moe_backend="TRTLLM",
           prefill_moe_ep=1),
    Recipe(_b200_fp8_fork2("8k1k/stp/ctx2_gen1_dep8_batch640_eplb0_mtp0_640.yaml"), "b200_sxm", "fp8",
           8192, 1024, 2, 8, True, 1, 8, True, (640,), 1, 8320, 640, decode_moe_backend="TRTLLM",
           prefill_moe_ep=1),
    # (80 clients a rank: neither its max_batch_size 640 nor its decode max_num_tokens 512 binds)
    # MTP recipes (the "mtp" folders), the last field their num_nextn_predict_layers; each decode rank's
    # max_num_tokens is its max_batch_size x (1 + drafts), so the verification never meets the budget
    Recipe(_b200_fp4("1k1k/mtp/ctx1_gen2_dep8_batch64_eplb0_mtp2.yaml"), "b200_sxm", "fp4", 1024, 1024,
           1, 4, True, 2, 8, True, (1214,), 8, 10240, 64, 2,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("1k1k/mtp/ctx1_gen5_dep8_batch16_eplb0_mtp3.yaml"), "b200_sxm", "fp4", 1024, 1024,
           1, 4, True, 5, 8, True, (875,), 8, 10240, 16, 3,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("1k1k/mtp/ctx3_gen4_dep8_batch128_eplb0_mtp1.yaml"), "b200_sxm", "fp4", 1024, 1024,
           3, 4, True, 4, 8, True, (4968,), 8, 10240, 128, 1,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("1k1k/mtp/ctx3_gen5_dep4_batch512_eplb0_mtp1.yaml"), "b200_sxm", "fp4", 1024, 1024,
           3, 4, True, 5, 4, True, (10860,), 8, 10240, 512, 1,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("8k1k/mtp/ctx1_gen1_dep8_batch8_eplb0_mtp3.yaml"), "b200_sxm", "fp4", 8192, 1024,
           1, 4, True, 1, 8, True, (90,), 2, 16896, 8, 3,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("8k1k/mtp/ctx1_gen3_tep8_batch16_eplb0_mtp3.yaml"), "b200_sxm", "fp4", 8192, 1024,
           1, 4, True, 3, 8, False, (66,), 2, 16896, 16, 3,
           decode_moe_backend="TRTLLM"),
    Recipe(_b200_fp4("8k1k/mtp/ctx1_gen5_tep8_batch8_eplb0_mtp3.yaml"), "b200_sxm", "fp4", 8192, 1024,
           1, 4, True, 5, 8, False, (10, 15, 30, 60), 2, 16896, 8, 3,
           decode_moe_backend="TRTLLM"),
    Recipe(_b200_fp4("8k1k/mtp/ctx3_gen1_dep8_batch64_eplb0_mtp3.yaml"), "b200_sxm", "fp4", 8192, 1024,
           3, 4, True, 1, 8, True, (548,), 2, 16896, 64, 3,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("8k1k/mtp/ctx5_gen1_dep8_batch192_eplb0_mtp1.yaml"), "b200_sxm", "fp4", 8192, 1024,
           5, 4, True, 1, 8, True, (1096, 1691), 2, 16896, 192, 1,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp4("8k1k/mtp/ctx5_gen2_dep8_batch32_eplb0_mtp3.yaml"), "b200_sxm", "fp4", 8192, 1024,
           5, 4, True, 2, 8, True, (658,), 2, 16896, 32, 3,
           decode_moe_backend="CUTLASS"),
    Recipe(_b200_fp8_fork("1k1k/mtp/ctx1_gen8_tp8_batch1_eplb0_mtp3_8.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 8, 8, False, (8,), 16, 16384, 1, 3, decode_moe_backend="TRTLLM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/mtp/ctx1_gen8_tp8_batch4_eplb0_mtp3_32.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 8, 8, False, (32,), 16, 16384, 4, 3, decode_moe_backend="TRTLLM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/mtp/ctx1_gen8_tp8_batch8_eplb0_mtp3_64.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 8, 8, False, (64,), 16, 16384, 8, 3, decode_moe_backend="TRTLLM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/mtp/ctx1_gen8_tp8_batch32_eplb0_mtp3_256.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 8, 8, False, (256,), 16, 16384, 32, 3, decode_moe_backend="TRTLLM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/mtp/ctx1_gen7_dep8_batch128_eplb0_mtp3_896.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 7, 8, True, (896,), 16, 16384, 16, 3, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/mtp/ctx1_gen4_dep8_batch256_eplb0_mtp3_1024.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 4, 8, True, (1024,), 16, 16384, 32, 3, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/mtp/ctx1_gen3_dep8_batch384_eplb0_mtp3_1184.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 3, 8, True, (1184,), 16, 16384, 48, 3, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8(_FP8_1K, "1k1k/mtp/ctx1_gen2_dep8_batch768_eplb0_mtp2_1600.yaml"), "b200_sxm", "fp8",
           1024, 1024, 1, 8, True, 2, 8, True, (1600,), 16, 16384, 96, 2, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=8),
    Recipe(_b200_fp8_fork2("8k1k/mtp/ctx1_gen6_tp8_batch8_eplb0_mtp3_48.yaml"), "b200_sxm", "fp8",
           8192, 1024, 1, 8, True, 6, 8, False, (48,), 1, 8320, 8, 3, decode_moe_backend="TRTLLM",
           prefill_moe_ep=1),
    Recipe(_b200_fp8_fork2("8k1k/mtp/ctx1_gen4_tp8_batch16_eplb0_mtp3_64.yaml"), "b200_sxm", "fp8",
           8192, 1024, 1, 8, True, 4, 8, False, (64,), 1, 8320, 16, 3, decode_moe_backend="TRTLLM",
           prefill_moe_ep=1),
    Recipe(_b200_fp8(_FP8_8K, "8k1k/mtp/ctx2_gen3_dep8_batch8_eplb0_mtp3_224.yaml"), "b200_sxm", "fp8",
           8192, 1024, 2, 8, True, 3, 8, True, (224,), 1, 8320, 8, 3, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=1),
    Recipe(_b200_fp8_fork2("8k1k/mtp/ctx2_gen1_dep8_batch32_eplb0_mtp3_288.yaml"), "b200_sxm", "fp8",
           8192, 1024, 2, 8, True, 1, 8, True, (288,), 1, 8320, 32, 3, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=1),
    Recipe(_b200_fp8_fork2("8k1k/mtp/ctx4_gen1_dep8_batch128_eplb0_mtp2_1088.yaml"), "b200_sxm", "fp8",
           8192, 1024, 4, 8, True, 1, 8, True, (1088,), 1, 8320, 128, 2, decode_moe_backend="DEEPGEMM",
           prefill_moe_ep=1),
    Recipe(_h100_fork("1k1k/mtp/ctx1_gen3_tep16_batch32_eplb0_mtp3.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 3, 16, False, (117,), 2, 2048, 32, 3),
    Recipe(_h100_fork("1k1k/mtp/ctx1_gen1_dep16_batch32_eplb0_mtp2.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 1, 16, True, (615,), 2, 2048, 32, 2, decode_alltoall="DeepEP"),
    Recipe(_h100_fork("1k1k/mtp/ctx1_gen1_dep16_batch64_eplb0_mtp1.yaml"), "h100_sxm", "fp8", 1024, 1024,
           1, 16, True, 1, 16, True, (1229,), 2, 2048, 64, 1, decode_alltoall="DeepEP"),
    Recipe(_h100_fork("8k1k/mtp/ctx1_gen1_dep16_batch4_eplb0_mtp3.yaml"), "h100_sxm", "fp8", 8192, 1024,
           1, 16, True, 1, 16, True, (77,), 1, 8224, 4, 3, decode_alltoall="DeepEP"),
)  # fmt: skip
"""The recipes read, each with the deployment and concurrencies it runs and its engines' limits."""

LIMIT_COLUMNS = ("prefill_batch_size", "prefill_max_num_tokens", "decode_batch_size")
"""Columns :func:`recipe_limits` fills: a prefill rank's batch and token budget, a decode rank's batch."""


def _layout(rows: pd.DataFrame, pool: str) -> tuple[pd.Series, pd.Series]:
    """A pool's GPUs per worker and whether it runs attention DP, as the sample states them."""
    tp = rows[f"{pool}_tp_size"].fillna(1.0)
    dp = rows[f"{pool}_attention_dp_size"].fillna(1.0)
    return tp * dp, dp > 1


def _runs(
    rows: pd.DataFrame,
    recipe: Deployed,
    backend: str,
    launched: pd.Series,
    pools: tuple[pd.Series, pd.Series, pd.Series, pd.Series],
) -> pd.Series:
    """Per row: whether ``recipe`` ran it: a disaggregated row of ``backend`` that the recipe's framework
    ``launched`` (its image in ``silicon_data_source``), on the recipe's system, format and lengths, with its
    worker counts and each pool's GPUs per worker and attention DP (``pools``: :func:`_layout` of the prefill
    then the decode pool), at one of its client concurrencies."""
    p_gpus, p_dp, d_gpus, d_dp = pools
    return (
        launched
        & (rows["mode"] == "disagg")
        & (rows["backend"] == backend)
        & (rows["system"] == recipe.system)
        & (rows["precision"] == recipe.precision)
        & (rows["isl"] == recipe.isl)
        & (rows["osl"] == recipe.osl)
        & (rows["prefill_num_workers"] == recipe.prefill_workers)
        & (p_gpus == recipe.prefill_gpus)
        & (p_dp == recipe.prefill_attention_dp)
        & (rows["decode_num_workers"] == recipe.decode_workers)
        & (d_gpus == recipe.decode_gpus)
        & (d_dp == recipe.decode_attention_dp)
        & rows["concurrency"].isin(recipe.concurrencies)
    )


def _drafts(rows: pd.DataFrame) -> pd.Series:
    """Per row, the draft tokens its decode pool runs (the ``decode_draft_tokens`` column of
    :func:`validation.public.inferencex_disagg_workers.master_workers`; 0 where absent): an STP recipe runs
    only rows without drafts, an MTP recipe only rows of its depth."""
    if DRAFT_TOKENS not in rows:
        return pd.Series(0.0, index=rows.index)
    return rows[DRAFT_TOKENS].fillna(0.0).astype(float)


NO_GRAPH_ALLTOALL = frozenset({"DeepEP"})
"""Forced all-to-all methods under which TensorRT-LLM decodes without CUDA graphs: ``DeepEP``,
"DeepEP intranode or internode: no CUDA Graphs support" (``AlltoallMethodType`` in
``tensorrt_llm/_torch/modules/fused_moe/fused_moe_wide_ep.py``, https://github.com/NVIDIA/TensorRT-LLM,
which picks it by itself only with ``TRTLLM_ALLOW_NO_CUDA_GRAPHS=1``); DeepEP's normal ``dispatch`` waits on
the host for the received counts, and its graph-compatible form (``num_worst_tokens``) is intranode only
(``Buffer.dispatch``, https://github.com/deepseek-ai/DeepEP)."""


def _recipe_hits(rows: pd.DataFrame) -> tuple[list[tuple[Recipe, pd.Series]], pd.Series]:
    """Per TensorRT-LLM recipe, the disaggregated rows it ran (its deployment and draft tokens), and per row
    the number of recipes that match it (a row's recipe is known where exactly one does)."""
    dynamo = rows["silicon_data_source"].astype(str).str.contains(IMAGE, regex=False)
    pools = (*_layout(rows, "prefill"), *_layout(rows, "decode"))
    drafts = _drafts(rows)
    hits = [
        (recipe, _runs(rows, recipe, "trtllm", dynamo, pools) & (drafts == recipe.draft_tokens))
        for recipe in RECIPES
    ]
    matches = pd.Series(0, index=rows.index)
    for _, hit in hits:
        matches += hit.astype(int)
    return hits, matches


def recipe_decode_graphs(rows: pd.DataFrame) -> pd.Series:
    """Per disaggregated row, whether the decode workers of the one recipe that ran it can replay CUDA graphs:
    False where the recipe forces an all-to-all of :data:`NO_GRAPH_ALLTOALL`, True elsewhere (no recipe
    matched, or none forced)."""
    out = pd.Series(True, index=rows.index, dtype=bool)
    hits, matches = _recipe_hits(rows)
    for recipe, hit in hits:
        out[hit] = recipe.decode_alltoall not in NO_GRAPH_ALLTOALL
    return out.where(matches == 1, True).astype(bool)


def recipe_moe_backends(rows: pd.DataFrame) -> pd.Series:
    """Per disaggregated row, the decode workers' ``moe_config.backend`` of the one recipe that ran it
    (:attr:`Recipe.decode_moe_backend`), "" where no recipe (or more than one) matches or it was not read."""
    out = pd.Series("", index=rows.index, dtype=object)
    hits, matches = _recipe_hits(rows)
    for recipe, hit in hits:
        out[hit] = recipe.decode_moe_backend or ""
    return out.where(matches == 1, "")


def _prefill_split_key(recipe: Deployed) -> tuple[str, str, int, int, int]:
    return recipe.system, recipe.precision, recipe.isl, recipe.osl, recipe.prefill_gpus


def folder_prefill_moe_ep() -> dict[tuple[str, str, int, int, int], int]:
    """Per (system, format, isl, osl, prefill GPUs per worker): the prefill ``moe_expert_parallel_size`` that
    every TensorRT-LLM recipe read of that key states, where all of them state it (none unread) and agree:
    B200 fp8 1k1k 8, 8k1k 1 (8-GPU workers). The stand-in for a row of that key that no one recipe matches."""
    values: dict[tuple[str, str, int, int, int], set[int | None]] = {}
    for recipe in RECIPES:
        values.setdefault(_prefill_split_key(recipe), set()).add(recipe.prefill_moe_ep)
    return {key: ep.pop() for key, ep in values.items() if len(ep) == 1 and None not in ep}


def recipe_prefill_split(rows: pd.DataFrame, *, matched: pd.Series | None = None) -> pd.DataFrame:
    """Per disaggregated TensorRT-LLM row, its prefill workers' expert split (``prefill_moe_tp_size``,
    ``prefill_moe_ep_size``), NaN where not known from a recipe. The ``moe_expert_parallel_size`` ep is
    that of the one recipe that ran the row (:attr:`Recipe.prefill_moe_ep`); a row that no one recipe matches
    (or that ``matched`` marks False: its worker counts a stand-in) gets :func:`folder_prefill_moe_ep`'s
    value for its system, format, lengths and prefill GPUs per worker, if there is one. Each expert is split
    over the worker's GPUs (``tensor_parallel_size``) / ep: the GPUs as :func:`_layout` reads the pool's
    columns (``prefill_tp_size`` devices in each of ``prefill_attention_dp_size`` ranks, as
    :class:`costmodel.specs.Deployment` and the decode pool read them), equal to the recipe's own count.

    Every B200 fp8 8k1k recipe read runs its 8-GPU attention-DP prefill workers with
    ``moe_expert_parallel_size: 1`` (each expert split 8 ways), where InferenceX's master configuration writes
    ``ep: 8`` for the same deployments; the engine runs the recipe's ``trtllm_config``. The sample's own MoE
    columns agree with the recipe on the 2026-03-23 campaign (``moe_tp`` 8) and with the master
    configuration on the 2026-02-12 one (``moe_ep`` 8), at the same measured TTFT; every 1k1k one states 8."""
    out = pd.DataFrame(np.nan, index=rows.index, columns=["prefill_moe_tp_size", "prefill_moe_ep_size"])
    hits, matches = _recipe_hits(rows)
    one = matches == 1
    if matched is not None:
        one &= matched
    ep = pd.Series(np.nan, index=rows.index, dtype=float)
    for recipe, hit in hits:
        if recipe.prefill_moe_ep is not None:
            ep[hit & one] = float(recipe.prefill_moe_ep)
    gpus, _ = _layout(rows, "prefill")
    dynamo = rows["silicon_data_source"].astype(str).str.contains(IMAGE, regex=False)
    others = ~one & dynamo & (rows["mode"] == "disagg") & (rows["backend"] == "trtllm")
    for (system, precision, isl, osl, n_gpus), value in folder_prefill_moe_ep().items():
        key = (
            (rows["system"] == system)
            & (rows["precision"] == precision)
            & (rows["isl"] == isl)
            & (rows["osl"] == osl)
            & (gpus == n_gpus)
        )
        ep[others & key] = float(value)
    out["prefill_moe_ep_size"] = ep
    out["prefill_moe_tp_size"] = gpus / ep
    return out


def recipe_prefill_moe_ep(rows: pd.DataFrame) -> pd.Series:
    """Per disaggregated row, the prefill workers' ``moe_expert_parallel_size`` of
    :func:`recipe_prefill_split` (the one recipe that ran it, else its recipe folder's), NaN where unknown."""
    return recipe_prefill_split(rows)["prefill_moe_ep_size"]


def recipe_limits(rows: pd.DataFrame) -> pd.DataFrame:
    """Per disaggregated row, the engine limits of the one recipe that ran it (:data:`LIMIT_COLUMNS`),
    NaN where no recipe (or more than one) matches. A TensorRT-LLM worker's ``tensor_parallel_size`` is its
    world size under attention DP (the sample writes either tp 16 / attention DP 1 or tp 1 / attention DP 16
    for the same 16 ranks), so a pool is matched by its GPUs per worker and whether it runs attention DP."""
    out = pd.DataFrame(np.nan, index=rows.index, columns=list(LIMIT_COLUMNS))
    hits, matches = _recipe_hits(rows)
    for recipe, hit in hits:
        out.loc[hit, list(LIMIT_COLUMNS)] = (
            recipe.prefill_max_batch_size,
            recipe.prefill_max_num_tokens,
            recipe.decode_max_batch_size,
        )
    return out.where(matches == 1)


# --- SGLang -------------------------------------------------------------------------------------------------

SGLANG_IMAGE = "lmsysorg/sglang"
"""What ``silicon_data_source`` names for a Dynamo + SGLang run (InferenceX's ``dynamo-sglang`` framework)."""

SGLANG_SERVER_ARGS = "https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/server_args.py"
"""Under ``enable-dp-attention`` SGLang divides ``chunked-prefill-size`` by ``data-parallel-size``
(``ServerArgs``: "DP attention is enabled. The chunked prefill size is adjusted to ..."), so a recipe's value
is a worker's total and each attention-DP rank chunks at its share."""


@dataclass(frozen=True)
class SglangRecipe(Deployed):
    """One srt-slurm recipe of a disaggregated Dynamo + SGLang benchmark: its deployment (the concurrencies
    its ``benchmark`` section runs) and the engine limits its ``sglang_config`` sets, as written (a
    worker's totals; :func:`sglang_recipe_limits` turns them into a rank's)."""

    prefill_chunked_prefill_size: int
    """The prefill worker's ``chunked-prefill-size`` [tokens per iteration, the worker's total]."""
    prefill_max_prefill_tokens: int
    """The prefill worker's ``max-prefill-tokens`` [tokens of new prompts per batch, per rank]."""
    prefill_max_running_requests: int
    """The prefill worker's ``max-running-requests`` [requests, the worker's total]."""
    decode_max_running_requests: int
    """The decode worker's ``max-running-requests`` [sequences, the worker's total]."""
    kv_dtype: str = "fp8"
    """``kv-cache-dtype`` on both pools: ``fp8_e4m3`` in every B200 recipe read; the H100 ones set none,
    SGLang's default for an fp8 checkpoint, the model's bf16
    (:func:`validation.public.engine_memory.kv_dtype`)."""
    draft_tokens: int = 0
    """EAGLE (MTP) draft tokens per verification of its decode workers (``speculative-num-steps`` at
    ``speculative-eagle-topk`` 1; 0: none, the ``stp`` recipes) [tokens]."""


def _sgl_fp8(path: str) -> str:
    return f"https://github.com/qiching/srt-slurm/blob/5063eb432640574bd93410ae2697591a7d15f57c/recipes/b200-fp8/{path}"


def _sgl_fp8_late(path: str) -> str:
    return f"https://github.com/qiching/srt-slurm/blob/4a22a1816f8e1ca6bc41dfca0fbf709782a45fee/recipes/b200-fp8/{path}"


_SGL_FP4_1K = f"{SRT_SLURM}/1e312702b54e978d38fab2098fbdf098b212878b/recipes/b200-fp4/1k1k-stp.yaml"
_SGL_FP4_1K_MTP = f"{SRT_SLURM}/893b9b9a4877cae5edc8c3b812eb759c60e28323/recipes/b200-fp4/1k1k-mtp.yaml"


def _sgl_h100(path: str) -> str:
    return f"https://github.com/qiching/srt-slurm/blob/5063eb432640574bd93410ae2697591a7d15f57c/recipes/h100/{path}"


def _sgl_fp4(path: str) -> str:
    return f"{SRT_SLURM}/6951981c0cc33f257704f1677fda8206607f4864/recipes/b200-fp4/{path}"


SGLANG_RECIPES: tuple[SglangRecipe, ...] = (
    # B200 fp8 (DeepSeek-R1 fp8 block weights): tp-8 / dp-8 workers of 8 GPUs
    SglangRecipe(_sgl_fp8("8k1k/stp/low-latency-tep8-1p1d.yaml"), "b200_sxm", "fp8", 8192, 1024,
                 1, 8, False, 1, 8, False, (4, 32, 64), 32768, 32768, 512, 512),
    SglangRecipe(_sgl_fp8("1k1k/stp/low-latency-tep8-1p1d.yaml"), "b200_sxm", "fp8", 1024, 1024,
                 1, 8, False, 1, 8, False, (4,), 32768, 32768, 512, 512),
    SglangRecipe(_sgl_fp8("1k1k/stp/low-latency-tep8-1p3d.yaml"), "b200_sxm", "fp8", 1024, 1024,
                 1, 8, False, 3, 8, False, (16, 32, 64, 128, 256), 32768, 32768, 512, 512),
    SglangRecipe(_sgl_fp8("8k1k/stp/low-latency-tep8-1p4d.yaml"), "b200_sxm", "fp8", 8192, 1024,
                 1, 8, False, 4, 8, False, (64,), 32768, 32768, 512, 512),
    SglangRecipe(_sgl_fp8("8k1k/stp/max-tpt-dep8-1p1d.yaml"), "b200_sxm", "fp8", 8192, 1024,
                 1, 8, True, 1, 8, True, (128,), 32768, 32768, 1024, 1024),
    SglangRecipe(_sgl_fp8("8k1k/stp/max-tpt-dep8-2p1d.yaml"), "b200_sxm", "fp8", 8192, 1024,
                 2, 8, True, 1, 8, True, (256,), 32768, 32768, 1024, 1024),
    # the later fp8 runs: dp-8 prefill workers of expert parallel 1 taking one 8,192-token prompt per rank
    SglangRecipe(_sgl_fp8_late("8k1k_stp_lowlat_1.yaml"), "b200_sxm", "fp8", 8192, 1024,
                 1, 8, True, 4, 8, False, (128,), 65536, 8192, 8, 32),
    SglangRecipe(_sgl_fp8_late("8k1k_stp_maxtpt_0.yaml"), "b200_sxm", "fp8", 8192, 1024,
                 1, 8, True, 2, 8, True, (288,), 65536, 8192, 8, 128),
    SglangRecipe(_sgl_fp8_late("8k1k_stp_maxtpt_1.yaml"), "b200_sxm", "fp8", 8192, 1024,
                 1, 8, True, 1, 8, True, (160, 288), 65536, 8192, 8, 256),
    SglangRecipe(_sgl_fp8_late("8k1k_stp_maxtpt_2.yaml"), "b200_sxm", "fp8", 8192, 1024,
                 2, 8, True, 1, 8, True, (512,), 65536, 8192, 8, 512),
    SglangRecipe(_sgl_fp8_late("8k1k_stp_maxtpt_3.yaml"), "b200_sxm", "fp8", 8192, 1024,
                 3, 8, True, 1, 8, True, (1024,), 65536, 8192, 8, 1024),
    # B200 fp4 (NVFP4 weights): prefill workers of 4 GPUs, decode workers of 8
    # 1k1k-stp.yaml's zip_override_maxtpt (1d and 2d): one file of all its scale variants
    SglangRecipe(_SGL_FP4_1K, "b200_sxm", "fp4", 1024, 1024,
                 1, 4, True, 1, 8, True, (512,), 32768, 32768, 1024, 1024),
    SglangRecipe(_SGL_FP4_1K, "b200_sxm", "fp4", 1024, 1024,
                 1, 4, True, 2, 8, True, (512,), 32768, 32768, 512, 512),
    # its base (tep8 decode workers) in zip_override_lowlat: 5 decode workers at 16 and 128 clients, 6 at
    # 32, 64 and 256
    SglangRecipe(_SGL_FP4_1K, "b200_sxm", "fp4", 1024, 1024,
                 1, 4, True, 5, 8, False, (16, 128), 32768, 32768, 512, 512),
    SglangRecipe(_SGL_FP4_1K, "b200_sxm", "fp4", 1024, 1024,
                 1, 4, True, 6, 8, False, (32, 64, 256), 32768, 32768, 512, 512),
    SglangRecipe(_sgl_fp4("8k1k/stp/low-latency-tp4-1p-tp8-1d.yaml"), "b200_sxm", "fp4", 8192, 1024,
                 1, 4, False, 1, 8, False, (4, 8, 16, 64), 32768, 32768, 512, 512),
    SglangRecipe(_sgl_fp4("8k1k/stp/low-latency-dep4-1p-tep8-1d.yaml"), "b200_sxm", "fp4", 8192, 1024,
                 1, 4, True, 1, 8, False, (64, 128), 32768, 32768, 512, 512),
    SglangRecipe(_sgl_fp4("8k1k/stp/max-tpt-dep4-7p-dep8-2d.yaml"), "b200_sxm", "fp4", 8192, 1024,
                 7, 4, True, 2, 8, True, (1024, 2048), 65536, 65536, 1024, 2048),
    # MTP recipes: decode workers drafting with EAGLE, speculative-num-steps 2, top-k 1 (the last field)
    SglangRecipe(_sgl_fp8("1k1k/mtp/low-latency-tep8-1p3d.yaml"), "b200_sxm", "fp8", 1024, 1024,
                 1, 8, False, 3, 8, False, (4, 8, 16, 32, 128), 32768, 32768, 512, 512, "fp8", 2),
    # 1k1k-mtp.yaml's zip_override_scale: its low-latency variants (5 and 6 tp-8 decode workers)
    SglangRecipe(_SGL_FP4_1K_MTP, "b200_sxm", "fp4", 1024, 1024,
                 1, 4, True, 5, 8, False, (16, 512), 32768, 32768, 512, 512, "fp8", 2),
    SglangRecipe(_SGL_FP4_1K_MTP, "b200_sxm", "fp4", 1024, 1024,
                 1, 4, True, 6, 8, False, (32, 64, 256, 512), 32768, 32768, 512, 512, "fp8", 2),
    # H100 fp8 (tp-16 workers of two nodes, no expert parallelism): no kv-cache-dtype, SGLang's default
    SglangRecipe(_sgl_h100("1k1k/mtp/h100-fp8-1p2d-max-tp-mtp.yaml"), "h100_sxm", "fp8", 1024, 1024,
                 1, 16, False, 2, 16, False, (1, 2, 4, 8, 16, 32, 64, 128), 2048, 2048, 2, 128, "bf16", 2),
    SglangRecipe(_sgl_h100("8k1k/mtp/h100-fp8-1p1d-max-tp-mtp.yaml"), "h100_sxm", "fp8", 8192, 1024,
                 1, 16, False, 1, 16, False, (1, 2, 4, 8, 16, 32, 64, 128), 2048, 2048, 2, 128, "bf16", 2),
)  # fmt: skip
"""The SGLang recipes read, each with the deployment and concurrencies it runs and its engines' limits."""

SGLANG_LIMIT_COLUMNS = (*LIMIT_COLUMNS, "kv_dtype")
"""Columns :func:`sglang_recipe_limits` fills: :data:`LIMIT_COLUMNS` (per attention-DP rank), KV format."""


def sglang_rank_limits(recipe: SglangRecipe) -> tuple[int, int, float]:
    """A recipe's limits per attention-DP rank: the prefill rank's batch (its share of
    ``max-running-requests``) and token budget (its share of ``chunked-prefill-size``, at most
    ``max-prefill-tokens``), and the decode rank's batch: its share of ``max-running-requests``, however
    few clients it serves. A decode worker admits a request whenever fewer than that many run
    (``get_new_prebuilt_batch`` in SGLang's ``disaggregation/decode.py`` takes
    ``max_running_requests`` less the running batch from its waiting queue), so slots its share of the
    clients leaves empty are no limit; capping them at the clients per rank (before session 11) made a
    worker of the per-worker routing model (:func:`costmodel.disagg.decode_slot_share`) queue clients a
    512-slot engine never queues."""
    p_dp = recipe.prefill_gpus if recipe.prefill_attention_dp else 1
    d_dp = recipe.decode_gpus if recipe.decode_attention_dp else 1
    budget = rank_token_budget(
        "sglang",
        recipe.prefill_chunked_prefill_size,
        p_dp,
        max_prefill_tokens=recipe.prefill_max_prefill_tokens,
    )
    prefill_batch = max(recipe.prefill_max_running_requests // p_dp, 1)
    decode_slots = max(recipe.decode_max_running_requests // d_dp, 1)
    return prefill_batch, budget, float(decode_slots)


def sglang_recipe_limits(rows: pd.DataFrame) -> pd.DataFrame:
    """Per disaggregated SGLang row, the engine limits of the one recipe that ran it
    (:data:`SGLANG_LIMIT_COLUMNS`, per attention-DP rank), NaN where no recipe (or more than one) matches.
    A pool is matched by its GPUs per worker and whether it runs attention DP, as :func:`recipe_limits`."""
    out = pd.DataFrame(np.nan, index=rows.index, columns=list(SGLANG_LIMIT_COLUMNS), dtype=object)
    matches = pd.Series(0, index=rows.index)
    dynamo = rows["silicon_data_source"].astype(str).str.contains(SGLANG_IMAGE, regex=False)
    pools = (*_layout(rows, "prefill"), *_layout(rows, "decode"))
    drafts = _drafts(rows)
    for recipe in SGLANG_RECIPES:
        hit = _runs(rows, recipe, "sglang", dynamo, pools) & (drafts == recipe.draft_tokens)
        matches += hit.astype(int)
        for index in rows.index[hit]:
            out.loc[index] = (*sglang_rank_limits(recipe), recipe.kv_dtype)
    out = out.where(matches == 1)
    return out.astype(dict.fromkeys(LIMIT_COLUMNS, float))
