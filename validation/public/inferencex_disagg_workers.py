"""The prefill / decode workers of the sample's disaggregated InferenceX rows that do not state them.

393 disaggregated DeepSeek-R1 rows of the silicon sample (``source_file=2026-03-25.csv`` and
``2026-04-06.csv`` in ``silicon_data_source``; B200 and H100, Dynamo + TensorRT-LLM and Dynamo + SGLang)
state each pool's GPUs and the client concurrency, but neither pool's worker count nor batch. They are
SemiAnalysis InferenceX runs, and InferenceX's NVIDIA master configuration lists, per entry (one image,
system and format), per isl / osl, each deployment it runs: the prefill and decode workers, their layouts
(``tp`` GPUs per worker, ``ep`` expert-parallel ranks, ``dp-attn``), the client concurrencies it runs them
at (``conc-list``) and whether it decodes with MTP speculation (``spec-decoding: "mtp"``), read at
https://github.com/SemiAnalysisAI/InferenceX/blob/0004cf5f2577a1c1007a9bed7cc7d55656519507/.github/configs/nvidia-master.yaml
(the commit :mod:`validation.public.inferencex_disagg` cites). :data:`DEPLOYMENTS` transcribes the
disaggregated DeepSeek-R1 B200 / H100 entries of that file, every deployment of them, MTP ones included.

The rule (:func:`master_workers`), per row that states neither worker counts nor batches, with more than one
client (a single-client row is predicted without them: :data:`validation.public.silicon.SINGLE_CLIENT`):

1. candidates: the deployments of the entries whose image is the row's ``image=`` (exactly), whose system,
   format (``precision``), isl and osl are the row's, and whose ``conc-list`` holds the row's concurrency;
2. of those, the ones whose GPUs per worker (``tp``) equal what the row states for each pool (tp x attention
   DP): the row's own layout columns must agree with the deployment, or it is not that run;
3. exactly one left: the row runs it. Its worker counts and layouts are filled
   from it (a ``dp-attn`` worker of ``tp`` GPUs is ``tp`` attention-DP ranks of tp 1, as the sample writes
   its stated rows; experts ``ep`` ways, each expert ``tp / ep`` ways), the prefill batch is 1 and the
   decode batch the clients per decode rank, ceil(concurrency / (decode workers x attention-DP ranks))
   (the sample's stated rows satisfy concurrency = decode_batch_size x decode_num_workers x
   decode_attention_dp_size exactly; where the division is not exact, the busiest rank's clients);
   an MTP deployment's decode pool drafts :func:`draft_tokens` tokens per verification
   (``decode_draft_tokens``, 0 without MTP; :func:`validation.public.silicon.disagg_speculation` prices
   them);
4. none, or several (the sample does not say whether a row ran MTP, so an STP and an MTP deployment at the
   same concurrency are two candidates): the row stays refused, with that reason.

A single-client row keeps no workers (it is predicted at one worker of each pool, whatever the deployment),
but gets the :data:`DRAFT_TOKENS` its candidates (steps 1-2) agree on: the H100 SGLang entry runs only MTP
deployments at that commit, so its single-client rows drafted, whichever ran them.

Nothing is taken from the measurements. The sample's MoE columns (``moe_tp`` / ``moe_ep``) do not enter
the match: on the B200 fp8 TensorRT-LLM 8k1k rows they state two layouts for every concurrency, where the
master configuration runs one deployment (prefill ``ep`` 8 at every one of them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

MASTER = (
    "https://github.com/SemiAnalysisAI/InferenceX/blob/0004cf5f2577a1c1007a9bed7cc7d55656519507/"
    ".github/configs/nvidia-master.yaml"
)
"""The master configuration read [URL]."""

POOL_COLUMNS = ("num_workers", "batch_size", "tp_size", "pp_size", "attention_dp_size", "moe_tp_size",
                "moe_ep_size")  # fmt: skip
WORKER_COLUMNS = tuple(f"{pool}_{field}" for pool in ("prefill", "decode") for field in POOL_COLUMNS)
"""The sample's pool columns :func:`master_workers` fills."""
DRAFT_TOKENS = "decode_draft_tokens"
"""The column of :func:`master_workers` beside :data:`WORKER_COLUMNS`: tokens the decode pool drafts per
verification (:func:`draft_tokens`; 0: no speculative decoding)."""
UNSTATED = ("prefill_num_workers", "prefill_batch_size", "decode_num_workers", "decode_batch_size")
"""A row missing any of these states no deployment (the rows this module is for)."""


@dataclass(frozen=True)
class Pool:
    """One pool of a deployment, as the master configuration writes it."""

    workers: int
    tp: int
    """GPUs per worker."""
    ep: int
    """Expert-parallel ranks per worker."""
    dp_attn: bool


@dataclass(frozen=True)
class Deployment:
    """One ``search-space`` item of a master-configuration entry at one isl / osl."""

    entry: str
    """The entry's key in :data:`MASTER`."""
    isl: int
    osl: int
    mtp: bool
    """``spec-decoding: "mtp"``."""
    concurrencies: tuple[int, ...]
    prefill: Pool
    decode: Pool
    recipe: str
    """The file name of the ``CONFIG_FILE`` it names (its recipe, for reference)."""


_TRT = "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:"
ENTRIES: dict[str, tuple[str, str, str]] = {
    # entry: (system, image, precision of the sample's rows)
    "dsr1-fp4-b200-dynamo-trt": ("b200_sxm", _TRT + "0.8.1.post1", "fp4"),
    "dsr1-fp8-b200-dynamo-trt": ("b200_sxm", _TRT + "0.8.1.post2", "fp8"),
    "dsr1-fp8-h100-dynamo-trt": ("h100_sxm", _TRT + "0.8.1.post3", "fp8"),
    "dsr1-fp8-h100-dynamo-sglang": ("h100_sxm", "lmsysorg/sglang:v0.5.8-cu130", "fp8"),
    "dsr1-fp4-b200-dynamo-sglang": ("b200_sxm", "lmsysorg/sglang:v0.5.8.post1-cu130-runtime", "fp4"),
    "dsr1-fp4-b200-dynamo-sglang-mtp": ("b200_sxm", "lmsysorg/sglang:v0.5.8.post1-cu130", "fp4"),
    "dsr1-fp8-b200-dynamo-sglang": ("b200_sxm", "lmsysorg/sglang:v0.5.8.post1-cu130-amd64", "fp8"),
    "dsr1-fp8-b200-dynamo-sglang-mtp": ("b200_sxm", "lmsysorg/sglang:v0.5.8.post1-cu130-amd64", "fp8"),
}  # fmt: skip
"""The master configuration's disaggregated DeepSeek-R1 B200 / H100 entries: system, image, format."""

T, F = True, False
K1, K8 = 1024, 8192


def _d(entry: str, isl: int, osl: int, mtp: bool, concs: tuple[int, ...], p: tuple[int, int, int, bool],
       d: tuple[int, int, int, bool], recipe: str) -> Deployment:  # fmt: skip
    return Deployment(entry, isl, osl, mtp, concs, Pool(*p), Pool(*d), recipe)


_FP4T, _FP8T, _H100T = "dsr1-fp4-b200-dynamo-trt", "dsr1-fp8-b200-dynamo-trt", "dsr1-fp8-h100-dynamo-trt"
_H100S = "dsr1-fp8-h100-dynamo-sglang"
_FP4S, _FP4SM = "dsr1-fp4-b200-dynamo-sglang", "dsr1-fp4-b200-dynamo-sglang-mtp"
_FP8S, _FP8SM = "dsr1-fp8-b200-dynamo-sglang", "dsr1-fp8-b200-dynamo-sglang-mtp"
_P4, _P8, _P16 = (1, 4, 4, T), (1, 8, 8, T), (1, 16, 16, T)

DEPLOYMENTS: tuple[Deployment, ...] = (
    # dsr1-fp4-b200-dynamo-trt, 1k1k
    _d(_FP4T, K1, K1, T, (1214,), _P4, (2, 8, 8, T), "ctx1_gen2_dep8_batch64_eplb0_mtp2"),
    _d(_FP4T, K1, K1, T, (875,), _P4, (5, 8, 8, T), "ctx1_gen5_dep8_batch16_eplb0_mtp3"),
    _d(_FP4T, K1, K1, T, (6,), _P4, (5, 8, 8, F), "ctx1_gen5_tep8_batch1_eplb0_mtp3"),
    _d(_FP4T, K1, K1, T, (10, 15, 25, 45, 90, 180), _P4, (5, 8, 8, F),
       "ctx1_gen5_tep8_batch32_eplb0_mtp3"),
    _d(_FP4T, K1, K1, T, (4968,), (3, 4, 4, T), (4, 8, 8, T), "ctx3_gen4_dep8_batch128_eplb0_mtp1"),
    _d(_FP4T, K1, K1, T, (10860,), (3, 4, 4, T), (5, 4, 4, T),
       "ctx3_gen5_dep4_batch512_eplb0_mtp1"),
    _d(_FP4T, K1, K1, F, (4096,), _P4, (1, 8, 8, T), "ctx1_gen1_dep8_batch512_eplb0_mtp0"),
    _d(_FP4T, K1, K1, F, (2192,), _P4, (2, 8, 8, T), "ctx1_gen2_dep8_batch128_eplb0_mtp0"),
    _d(_FP4T, K1, K1, F, (1365,), _P4, (5, 8, 8, T), "ctx1_gen5_dep8_batch32_eplb0_mtp0"),
    _d(_FP4T, K1, K1, F, (6,), _P4, (5, 8, 8, F), "ctx1_gen5_tep8_batch1_eplb0_mtp0"),
    _d(_FP4T, K1, K1, F, (10, 15, 25, 45, 90, 180), _P4, (5, 8, 8, F),
       "ctx1_gen5_tep8_batch32_eplb0_mtp0"),
    _d(_FP4T, K1, K1, F, (450,), _P4, (6, 8, 8, F), "ctx1_gen6_tep8_batch64_eplb0_mtp0"),
    # dsr1-fp4-b200-dynamo-trt, 8k1k
    _d(_FP4T, K8, K1, T, (90,), _P4, (1, 8, 8, T), "ctx1_gen1_dep8_batch8_eplb0_mtp3"),
    _d(_FP4T, K8, K1, T, (66,), _P4, (3, 8, 8, F), "ctx1_gen3_tep8_batch16_eplb0_mtp3"),
    _d(_FP4T, K8, K1, T, (6,), _P4, (5, 8, 8, F), "ctx1_gen5_tep8_batch1_eplb0_mtp3"),
    _d(_FP4T, K8, K1, T, (10, 15, 30, 60), _P4, (5, 8, 8, F), "ctx1_gen5_tep8_batch8_eplb0_mtp3"),
    _d(_FP4T, K8, K1, T, (548,), (3, 4, 4, T), (1, 8, 8, T), "ctx3_gen1_dep8_batch64_eplb0_mtp3"),
    _d(_FP4T, K8, K1, T, (1096, 1691), (5, 4, 4, T), (1, 8, 8, T),
       "ctx5_gen1_dep8_batch192_eplb0_mtp1"),
    _d(_FP4T, K8, K1, T, (658,), (5, 4, 4, T), (2, 8, 8, T), "ctx5_gen2_dep8_batch32_eplb0_mtp3"),
    _d(_FP4T, K8, K1, F, (6,), _P4, (5, 8, 8, F), "ctx1_gen5_tep8_batch1_eplb0_mtp0"),
    _d(_FP4T, K8, K1, F, (10, 15, 25, 50, 100), _P4, (5, 8, 8, F),
       "ctx1_gen5_tep8_batch8_eplb0_mtp0"),
    _d(_FP4T, K8, K1, F, (370,), (2, 4, 4, T), (5, 8, 8, F), "ctx2_gen5_tep8_batch64_eplb0_mtp0"),
    _d(_FP4T, K8, K1, F, (1606,), (4, 4, 4, T), (1, 8, 8, T),
       "ctx4_gen1_dep8_batch192_eplb0_mtp0"),
    _d(_FP4T, K8, K1, F, (837,), (4, 4, 4, T), (3, 8, 8, T), "ctx4_gen3_dep8_batch32_eplb0_mtp0"),
    _d(_FP4T, K8, K1, F, (2222,), (7, 4, 4, T), (2, 8, 8, T),
       "ctx7_gen2_dep8_batch128_eplb0_mtp0"),
    # dsr1-fp8-b200-dynamo-trt, 1k1k
    _d(_FP8T, K1, K1, T, (8,), _P8, (8, 8, 1, F), "ctx1_gen8_tp8_batch1_eplb0_mtp3_8"),
    _d(_FP8T, K1, K1, T, (32,), _P8, (8, 8, 1, F), "ctx1_gen8_tp8_batch4_eplb0_mtp3_32"),
    _d(_FP8T, K1, K1, T, (64,), _P8, (8, 8, 1, F), "ctx1_gen8_tp8_batch8_eplb0_mtp3_64"),
    _d(_FP8T, K1, K1, T, (256,), _P8, (8, 8, 1, F), "ctx1_gen8_tp8_batch32_eplb0_mtp3_256"),
    _d(_FP8T, K1, K1, T, (896,), _P8, (7, 8, 8, T), "ctx1_gen7_dep8_batch128_eplb0_mtp3_896"),
    _d(_FP8T, K1, K1, T, (1024,), _P8, (4, 8, 8, T), "ctx1_gen4_dep8_batch256_eplb0_mtp3_1024"),
    _d(_FP8T, K1, K1, T, (1184,), _P8, (3, 8, 8, T), "ctx1_gen3_dep8_batch384_eplb0_mtp3_1184"),
    _d(_FP8T, K1, K1, T, (1600,), _P8, (2, 8, 8, T), "ctx1_gen2_dep8_batch768_eplb0_mtp2_1600"),
    _d(_FP8T, K1, K1, F, (4,), _P8, (3, 8, 1, F), "ctx1_gen3_tp8_batch1024_eplb0_mtp0_4"),
    _d(_FP8T, K1, K1, F, (32,), _P8, (3, 8, 1, F), "ctx1_gen3_tp8_batch1024_eplb0_mtp0_32"),
    _d(_FP8T, K1, K1, F, (128,), _P8, (3, 8, 1, F), "ctx1_gen3_tp8_batch1024_eplb0_mtp0_128"),
    _d(_FP8T, K1, K1, F, (1920,), _P8, (5, 8, 8, T), "ctx1_gen5_dep8_batch48_eplb0_mtp0_1920"),
    _d(_FP8T, K1, K1, F, (4096,), _P8, (1, 8, 8, T), "ctx1_gen1_dep8_batch512_eplb0_mtp0_4096"),
    _d(_FP8T, K1, K1, F, (5152,), (2, 8, 8, T), (5, 8, 8, T),
       "ctx2_gen5_dep8_batch128_eplb0_mtp0_5152"),
    # dsr1-fp8-b200-dynamo-trt, 8k1k
    _d(_FP8T, K8, K1, T, (8,), _P8, (6, 8, 1, F), "ctx1_gen6_tp8_batch8_eplb0_mtp3_8"),
    _d(_FP8T, K8, K1, T, (8,), _P8, (2, 8, 1, F), "ctx1_gen2_tp8_batch32_eplb0_mtp3_8"),
    _d(_FP8T, K8, K1, T, (48,), _P8, (6, 8, 1, F), "ctx1_gen6_tp8_batch8_eplb0_mtp3_48"),
    _d(_FP8T, K8, K1, T, (64,), _P8, (4, 8, 1, F), "ctx1_gen4_tp8_batch16_eplb0_mtp3_64"),
    _d(_FP8T, K8, K1, T, (224,), (2, 8, 8, T), (3, 8, 8, T), "ctx2_gen3_dep8_batch8_eplb0_mtp3_224"),
    _d(_FP8T, K8, K1, T, (288,), (2, 8, 8, T), (1, 8, 8, T),
       "ctx2_gen1_dep8_batch32_eplb0_mtp3_288"),
    _d(_FP8T, K8, K1, T, (1088,), (4, 8, 8, T), (1, 8, 8, T),
       "ctx4_gen1_dep8_batch128_eplb0_mtp2_1088"),
    _d(_FP8T, K8, K1, F, (1,), _P8, (1, 8, 1, F), "ctx1_gen1_tp8_batch1_eplb0_mtp0_1"),
    _d(_FP8T, K8, K1, F, (32,), _P8, (4, 8, 1, F), "ctx1_gen4_tp8_batch32_eplb0_mtp0_32"),
    _d(_FP8T, K8, K1, F, (128,), _P8, (4, 8, 1, F), "ctx1_gen4_tp8_batch32_eplb0_mtp0_128"),
    _d(_FP8T, K8, K1, F, (96,), _P8, (6, 8, 1, F), "ctx1_gen6_tp8_batch16_eplb0_mtp0_96"),
    _d(_FP8T, K8, K1, F, (128,), _P8, (1, 8, 8, T), "ctx1_gen1_dep8_batch128_eplb0_mtp0_128"),
    _d(_FP8T, K8, K1, F, (128,), _P8, (2, 8, 8, T), "ctx1_gen2_dep8_batch64_eplb0_mtp0_128"),
    _d(_FP8T, K8, K1, F, (256,), _P8, (1, 8, 8, T), "ctx1_gen1_dep8_batch256_eplb0_mtp0_256"),
    _d(_FP8T, K8, K1, F, (640,), (2, 8, 8, T), (1, 8, 8, T),
       "ctx2_gen1_dep8_batch640_eplb0_mtp0_640"),
    # dsr1-fp8-h100-dynamo-trt, 1k1k
    _d(_H100T, K1, K1, T, (6,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch1_eplb0_mtp3"),
    _d(_H100T, K1, K1, T, (9,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch2_eplb0_mtp3"),
    _d(_H100T, K1, K1, T, (30,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch8_eplb0_mtp3"),
    _d(_H100T, K1, K1, T, (60,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch16_eplb0_mtp3"),
    _d(_H100T, K1, K1, T, (117,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch32_eplb0_mtp3"),
    _d(_H100T, K1, K1, T, (231,), _P16, (3, 16, 16, T), "ctx1_gen3_dep16_batch4_eplb0_mtp3"),
    _d(_H100T, K1, K1, T, (462,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch128_eplb0_mtp3"),
    _d(_H100T, K1, K1, T, (615,), _P16, (1, 16, 16, T), "ctx1_gen1_dep16_batch32_eplb0_mtp2"),
    _d(_H100T, K1, K1, T, (1229,), _P16, (1, 16, 16, T), "ctx1_gen1_dep16_batch64_eplb0_mtp1"),
    _d(_H100T, K1, K1, F, (6,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch1_eplb0_mtp0"),
    _d(_H100T, K1, K1, F, (9,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch2_eplb0_mtp0"),
    _d(_H100T, K1, K1, F, (30,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch8_eplb0_mtp0"),
    _d(_H100T, K1, K1, F, (60,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch16_eplb0_mtp0"),
    _d(_H100T, K1, K1, F, (231,), _P16, (3, 16, 16, T), "ctx1_gen3_dep16_batch4_eplb0_mtp0"),
    _d(_H100T, K1, K1, F, (462,), _P16, (3, 16, 16, T), "ctx1_gen3_dep16_batch8_eplb0_mtp0"),
    _d(_H100T, K1, K1, F, (924,), _P16, (3, 16, 16, T), "ctx1_gen3_dep16_batch16_eplb0_mtp0"),
    _d(_H100T, K1, K1, F, (1845,), _P16, (3, 16, 16, T), "ctx1_gen3_dep16_batch32_eplb0_mtp0"),
    _d(_H100T, K1, K1, F, (4916,), (2, 16, 16, T), (1, 16, 16, T),
       "ctx2_gen1_dep16_batch256_eplb0_mtp0"),
    # dsr1-fp8-h100-dynamo-trt, 8k1k (its commented-out conc 78 deployment is not run)
    _d(_H100T, K8, K1, T, (6,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch1_eplb0_mtp3"),
    _d(_H100T, K8, K1, T, (9,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch2_eplb0_mtp3"),
    _d(_H100T, K8, K1, T, (30,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch8_eplb0_mtp3"),
    _d(_H100T, K8, K1, T, (77,), _P16, (1, 16, 16, T), "ctx1_gen1_dep16_batch4_eplb0_mtp3"),
    _d(_H100T, K8, K1, T, (154,), (2, 16, 16, T), (1, 16, 16, T),
       "ctx2_gen1_dep16_batch8_eplb0_mtp3"),
    _d(_H100T, K8, K1, F, (6,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch1_eplb0_mtp0"),
    _d(_H100T, K8, K1, F, (9,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch2_eplb0_mtp0"),
    _d(_H100T, K8, K1, F, (30,), _P16, (3, 16, 16, F), "ctx1_gen3_tep16_batch8_eplb0_mtp0"),
    _d(_H100T, K8, K1, F, (154,), _P16, (2, 16, 16, F), "ctx1_gen2_tep16_batch64_eplb0_mtp0"),
    _d(_H100T, K8, K1, F, (308,), (2, 16, 16, T), (1, 16, 16, T),
       "ctx2_gen1_dep16_batch16_eplb0_mtp0"),
    # dsr1-fp8-h100-dynamo-sglang: MTP only (its STP deployments are commented out at that commit)
    _d(_H100S, K1, K1, T, (1, 2, 4, 8, 16, 32, 64, 128), (1, 16, 1, F), (2, 16, 1, F),
       "h100-fp8-1p2d-max-tp-mtp"),
    _d(_H100S, K1, K1, T, (1, 2, 4, 8, 16, 32, 64), (1, 16, 1, F), (1, 16, 16, T),
       "h100-fp8-1p1d-max-dep-mtp"),
    _d(_H100S, K1, K8, T, (1, 2, 4, 8, 16, 32, 64), (1, 16, 1, F), (2, 16, 1, F),
       "h100-fp8-1p2d-max-tp-mtp"),
    _d(_H100S, K1, K8, T, (1, 2, 4, 8, 16, 32, 64), (1, 16, 1, F), (1, 16, 16, T),
       "h100-fp8-1p1d-max-dep-mtp"),
    _d(_H100S, K8, K1, T, (1, 2, 4, 8, 16, 32, 64, 128), (1, 16, 1, F), (1, 16, 1, F),
       "h100-fp8-1p1d-max-tp-mtp"),
    _d(_H100S, K8, K1, T, (1, 2, 4, 8, 16, 32, 64), (1, 16, 1, F), (1, 16, 16, T),
       "h100-fp8-1p1d-max-dep-mtp"),
    # dsr1-fp4-b200-dynamo-sglang
    _d(_FP4S, K1, K1, F, (16, 128), _P4, (5, 8, 8, F), "low-latency-dep4-1p-tep8-5d"),
    _d(_FP4S, K1, K1, F, (32, 64, 256), _P4, (6, 8, 8, F), "low-latency-dep4-1p-tep8-6d"),
    _d(_FP4S, K1, K1, F, (512,), _P4, (1, 8, 8, T), "max-tpt-dep4-1p-dep8-1d"),
    _d(_FP4S, K1, K1, F, (512,), _P4, (2, 8, 8, T), "max-tpt-dep4-1p-dep8-2d"),
    _d(_FP4S, K8, K1, F, (64, 128), _P4, (1, 8, 8, F), "low-latency-dep4-1p-tep8-1d"),
    _d(_FP4S, K8, K1, F, (8,), _P4, (5, 8, 8, F), "low-latency-dep4-1p-tep8-5d"),
    _d(_FP4S, K8, K1, F, (4, 128), (2, 4, 4, T), (5, 8, 8, F), "low-latency-dep4-2p-tep8-5d"),
    _d(_FP4S, K8, K1, F, (4, 8, 16, 64), (1, 4, 1, F), (1, 8, 1, F), "low-latency-tp4-1p-tp8-1d"),
    _d(_FP4S, K8, K1, F, (1024, 2048), (7, 4, 4, T), (2, 8, 8, T), "max-tpt-dep4-7p-dep8-2d"),
    # dsr1-fp4-b200-dynamo-sglang-mtp
    _d(_FP4SM, K1, K1, T, (16, 512), _P4, (5, 8, 8, F), "low-latency-dep4-1p-tep8-5d"),
    _d(_FP4SM, K1, K1, T, (32, 64, 256, 512), _P4, (6, 8, 8, F), "low-latency-dep4-1p-tep8-6d"),
    _d(_FP4SM, K1, K1, T, (512, 1024), _P4, (1, 8, 8, T), "max-tpt-dep4-1p-dep8-1d"),
    _d(_FP4SM, K1, K1, T, (512,), _P4, (2, 8, 8, T), "max-tpt-dep4-1p-dep8-2d"),
    _d(_FP4SM, K8, K1, T, (64, 128), _P4, (1, 8, 8, F), "low-latency-dep4-1p-tep8-1d"),
    _d(_FP4SM, K8, K1, T, (8,), _P4, (5, 8, 8, F), "low-latency-dep4-1p-tep8-5d"),
    _d(_FP4SM, K8, K1, T, (4, 128), (2, 4, 4, T), (5, 8, 8, F), "low-latency-dep4-2p-tep8-5d"),
    _d(_FP4SM, K8, K1, T, (4, 8, 16, 64), (1, 4, 1, F), (1, 8, 1, F), "low-latency-tp4-1p-tp8-1d"),
    # dsr1-fp8-b200-dynamo-sglang
    _d(_FP8S, K1, K1, F, (4,), (1, 8, 8, F), (1, 8, 8, F), "low-latency-tep8-1p1d"),
    _d(_FP8S, K1, K1, F, (16, 32, 64, 128, 256), (1, 8, 8, F), (3, 8, 8, F), "low-latency-tep8-1p3d"),
    _d(_FP8S, K1, K1, F, (1024, 2048, 4096), _P8, (5, 8, 8, T), "max-tpt-dep8-1p5d"),
    _d(_FP8S, K1, K1, F, (2048, 4096), (2, 8, 8, T), (5, 8, 8, T), "max-tpt-dep8-2p5d"),
    _d(_FP8S, K8, K1, F, (4, 32, 64, 512), (1, 8, 8, F), (1, 8, 8, F), "low-latency-tep8-1p1d"),
    _d(_FP8S, K8, K1, F, (64, 512), (1, 8, 8, F), (4, 8, 8, F), "low-latency-tep8-1p4d"),
    _d(_FP8S, K8, K1, F, (32,), (1, 8, 8, F), (6, 8, 8, F), "low-latency-tep8-1p6d"),
    _d(_FP8S, K8, K1, F, (128, 512, 1024), _P8, (1, 8, 8, T), "max-tpt-dep8-1p1d"),
    _d(_FP8S, K8, K1, F, (256, 512, 1024), (2, 8, 8, T), (1, 8, 8, T), "max-tpt-dep8-2p1d"),
    # dsr1-fp8-b200-dynamo-sglang-mtp (the same image as the entry above)
    _d(_FP8SM, K1, K1, T, (4, 64), (1, 8, 8, F), (1, 8, 8, F), "low-latency-tep8-1p1d"),
    _d(_FP8SM, K1, K1, T, (4, 8, 16, 32, 128), (1, 8, 8, F), (3, 8, 8, F), "low-latency-tep8-1p3d"),
    _d(_FP8SM, K1, K1, T, (512, 4096), _P8, (5, 8, 8, T), "max-tpt-dep8-1p5d"),
    _d(_FP8SM, K1, K1, T, (1024, 2048, 4096), (2, 8, 8, T), (5, 8, 8, T), "max-tpt-dep8-2p5d"),
    _d(_FP8SM, K1, K1, T, (512, 1024, 2048), _P8, (2, 8, 8, T), "max-tpt-dep8-1p2d"),
    _d(_FP8SM, K8, K1, T, (16, 32, 64), (1, 8, 8, F), (1, 8, 8, F), "low-latency-tep8-1p1d"),
    _d(_FP8SM, K8, K1, T, (8, 256), (1, 8, 8, F), (4, 8, 8, F), "low-latency-tep8-1p4d"),
    _d(_FP8SM, K8, K1, T, (4, 8, 16, 256), (1, 8, 8, F), (6, 8, 8, F), "low-latency-tep8-1p6d"),
    _d(_FP8SM, K8, K1, T, (256,), _P8, (1, 8, 8, T), "max-tpt-dep8-1p1d"),
    _d(_FP8SM, K8, K1, T, (128, 512), (2, 8, 8, T), (1, 8, 8, T), "max-tpt-dep8-2p1d"),
)  # fmt: skip
"""Every deployment of the :data:`ENTRIES` of :data:`MASTER`, in the file's order."""


TRTLLM_MTP_RECIPE = (
    "https://github.com/ishandhanani/srt-slurm/blob/fe2cd90552d38cee128edc32f26fc0003c22f21d/"
    "recipes/trtllm/b200-fp8/1k1k/mtp/ctx1_gen8_tp8_batch4_eplb0_mtp3_32.yaml"
)
"""A TensorRT-LLM MTP recipe read: its name's ``mtp3`` is the decode worker's ``speculative_config``
(``decoding_type: MTP``, ``num_nextn_predict_layers: 3``), as every recipe name of the master configuration
spells its depth (``mtp0``: none)."""

SGLANG_MTP_RECIPES = (
    "https://github.com/qiching/srt-slurm/blob/5063eb432640574bd93410ae2697591a7d15f57c/recipes/b200-fp8/1k1k/mtp/low-latency-tep8-1p3d.yaml",
    "https://github.com/qiching/srt-slurm/blob/5063eb432640574bd93410ae2697591a7d15f57c/recipes/b200-fp8/1k1k/mtp/max-tpt-dep8-1p5d.yaml",
    "https://github.com/qiching/srt-slurm/blob/5063eb432640574bd93410ae2697591a7d15f57c/recipes/b200-fp8/8k1k/mtp/low-latency-tep8-1p6d.yaml",
    "https://github.com/ishandhanani/srt-slurm/blob/893b9b9a4877cae5edc8c3b812eb759c60e28323/recipes/b200-fp4/1k1k-mtp.yaml",
    "https://github.com/ishandhanani/srt-slurm/blob/6a30b5ddbc5c0eb33b256d7b0f6cc69c2d656ab9/recipes/h100/1k1k/mtp/h100-fp8-2p4d-max-dep-mtp.yaml",
)  # fmt: skip
"""SGLang MTP recipes read (B200 fp8 and fp4, H100): every one decodes with ``speculative-algorithm: EAGLE``
(SGLang's MTP for DeepSeek), ``speculative-num-steps: 2``, ``speculative-eagle-topk: 1``,
``speculative-num-draft-tokens: 3`` (the verified token and 2 drafts, one chain), with
``SGLANG_ENABLE_SPEC_V2=1`` (the overlap scheduler stays on under speculation)."""
SGLANG_MTP_DRAFT_TOKENS = 2
"""Draft tokens per verification of the SGLang MTP recipes (:data:`SGLANG_MTP_RECIPES`): num-steps 2,
top-k 1."""


def draft_tokens(deployment: Deployment) -> int:
    """Tokens the deployment's decode pool drafts per verification, k [tokens]: 0 without MTP; a
    TensorRT-LLM recipe's ``mtpN`` (``num_nextn_predict_layers``, :data:`TRTLLM_MTP_RECIPE`); an SGLang
    recipe's speculative-num-steps (:data:`SGLANG_MTP_DRAFT_TOKENS`)."""
    if not deployment.mtp:
        return 0
    if deployment.entry.endswith("-trt"):  # Dynamo + TensorRT-LLM
        found = re.search(r"_mtp(\d+)", deployment.recipe)
        if found is None:
            raise ValueError(f"recipe {deployment.recipe!r} names no MTP depth")
        return int(found.group(1))
    return SGLANG_MTP_DRAFT_TOKENS


def _pool_columns(pool: Pool, clients: int | None) -> tuple[float, ...]:
    """A pool's :data:`POOL_COLUMNS` as the sample writes a stated row (``clients``: the decode pool's)."""
    ranks = pool.tp if pool.dp_attn else 1
    batch = 1 if clients is None else math.ceil(clients / (pool.workers * ranks))
    return (pool.workers, batch, pool.tp // ranks, 1, ranks, pool.tp // pool.ep, pool.ep)


def _image(rows: pd.DataFrame) -> pd.Series:
    return rows["silicon_data_source"].astype(str).str.extract(r"image=([^;]+)")[0].str.strip()


def _gpus(rows: pd.DataFrame, pool: str) -> pd.Series:
    """GPUs per worker of a pool as the row states them (tp x attention DP)."""
    return rows[f"{pool}_tp_size"].fillna(1.0) * rows[f"{pool}_attention_dp_size"].fillna(1.0)


def master_workers(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Per row, the :data:`WORKER_COLUMNS` and :data:`DRAFT_TOKENS` of the one deployment of :data:`MASTER`
    that ran it (NaN elsewhere), and why a row the rule applies to is not filled ("" where filled, and for
    rows the rule does not apply to: they state their deployment, run one client, or name no image of
    :data:`ENTRIES`). The rule is the module's docstring."""
    out = pd.DataFrame(np.nan, index=rows.index, columns=[*WORKER_COLUMNS, DRAFT_TOKENS])
    why = pd.Series("", index=rows.index, dtype=object)
    image = _image(rows)
    unstated = (
        (rows["mode"] == "disagg")
        & rows[list(UNSTATED)].isna().any(axis=1)
        & image.isin({e[1] for e in ENTRIES.values()})
    )
    applies = unstated & (rows["concurrency"] > 1)
    gpus = {pool: _gpus(rows, pool) for pool in ("prefill", "decode")}

    def candidates(i: object) -> list[Deployment]:
        row = rows.loc[i]
        key = (row["system"], image[i], row["precision"])
        return [
            d
            for d in DEPLOYMENTS
            if ENTRIES[d.entry] == key
            and (d.isl, d.osl) == (row["isl"], row["osl"])
            and int(row["concurrency"]) in d.concurrencies
            and (d.prefill.tp, d.decode.tp) == (gpus["prefill"][i], gpus["decode"][i])
        ]

    # a single client is predicted without workers (validation.public.silicon.SINGLE_CLIENT), but its decode
    # pool drafts where every deployment that could have run it drafts as many tokens
    for i in rows.index[unstated & (rows["concurrency"] == 1)]:
        depths = {draft_tokens(d) for d in candidates(i)}
        if len(depths) == 1:
            out.loc[i, DRAFT_TOKENS] = depths.pop()
    for i in rows.index[applies]:
        row = rows.loc[i]
        found = candidates(i)
        where = (
            f"{image[i]} {row['precision']} {int(row['isl'])}/{int(row['osl'])} c{int(row['concurrency'])}"
        )
        if not found:
            why[i] = f"no deployment of the InferenceX master config runs {where} on the row's GPUs"
        elif len(found) > 1:
            mtp = sum(d.mtp for d in found)
            why[i] = (
                f"{len(found)} deployments of the InferenceX master config run {where} "
                f"({mtp} with MTP): which one ran is not stated"
            )
        else:
            d = found[0]
            out.loc[i] = (
                *_pool_columns(d.prefill, None),
                *_pool_columns(d.decode, int(row["concurrency"])),
                draft_tokens(d),
            )
    return out, why
