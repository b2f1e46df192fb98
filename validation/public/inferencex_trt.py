"""Scheduler flags of SemiAnalysis InferenceX's TensorRT-LLM scripts that change when a prompt is prefilled.

The silicon sample's InferenceX rows (:func:`validation.public.inferencex.is_inferencex`) carry the engine
but not its launch flags. Two of the flags its ``trtllm-serve`` scripts set move the first token, and
they differ by model, format, lengths and parallelism within one engine:

- ``--max_num_tokens``, the token budget per iteration (TensorRT-LLM's default 8192): a prompt longer than
  what is left of it beside the decodes is prefilled in more than one iteration, and a wave of prompts
  is prefilled budget by budget;
- ``batch_wait_timeout_iters`` / ``batch_wait_max_tokens_ratio`` (0 by default): the executor holds new
  prompts while sequences decode until the timeout or the token threshold
  (:mod:`costmodel.batch_wait`).

Each :class:`Script` is one script, read at the commit cited. Only rows of an InferenceX run of that
backend, model, system and format get its flags; other rows keep the engine's defaults.

Evidence in the sample that the rows ran so, beside the scripts: B200 TensorRT-LLM Llama-3.1-70B at 4
clients and isl 1024 measures a TTFT of 178-383 ms at osl 1024 and tp 1-4, but 58-104 ms at osl 8192
(and 62-67 ms at osl 1024 with tp 8), the same prompts: the scripts hold prompts only for 1k/1k below
tp 8, 20 iterations (18-19 TPOTs measured). DeepSeek-R1 fp8 (not fp4) at 64-128 clients, 1k/1k, tp 8
measures 466-738 ms against 137 ms for fp4 at 64 clients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from validation.public.inferencex import REPOSITORY


@dataclass(frozen=True)
class Script:
    """One InferenceX TensorRT-LLM script's scheduler flags, as functions of the row."""

    source: str
    """The script, at the commit read [URL]."""
    max_num_tokens: Callable[[int, int, int], int]
    """``--max_num_tokens`` for (isl, osl, concurrency) [tokens]."""
    batch_wait: Callable[[int, int, int, int], tuple[int, float] | None] = lambda isl, osl, tp, conc: None
    """(``batch_wait_timeout_iters``, ``batch_wait_max_tokens_ratio``) for (isl, osl, tp, concurrency), or
    None where the script leaves them at 0."""
    attention_dp_balance: tuple[int, int] | None = None
    """(``timeout_iters``, ``batching_wait_iters``) of the script's ``attention_dp_config`` with
    ``enable_balance: true`` on its attention-DP runs (:mod:`costmodel.adp_balance`), or None where it
    does not balance."""


REQUESTS_PER_CLIENT = 10
"""Requests per client of an InferenceX TensorRT-LLM run: its scripts send ``--num-prompts $(( $CONC * 10 ))``
with ``--max-concurrency $CONC`` (each script cited in :data:`SCRIPTS`; the gpt-oss one passes the
workflow's ``NUM_PROMPTS``, taken alike). The first C requests leave together, a wave; the client draws
each request's lengths at random (:func:`validation.public.inferencex.mean_length`), so TensorRT-LLM's
decode-first batches finish them at different iterations and the later cycles stagger: a share
1 / 10 of the requests arrives in a wave (:func:`costmodel.closed_loop.loop_parts`, ``wave_share``)."""

MAX_MODEL_LEN_MARGIN = 200
"""InferenceX's default ``MAX_MODEL_LEN`` is isl + osl + 200 tokens (its benchmark workflow's
``MAX_MODEL_LEN=$(( ISL + OSL + 200 ))``); the fp4 Llama script passes it as ``--max_num_tokens``."""


def _dsr1_max_num_tokens(isl: int, osl: int, conc: int) -> int:
    """``MAX_NUM_TOKENS=$(( ($CONC+$ISL+64+63)/64*64 ))``, at least 8192."""
    return max((conc + isl + 64 + 63) // 64 * 64, 8192)


def _llama_wait(isl: int, osl: int, tp: int, conc: int) -> tuple[int, float] | None:
    """1k/1k below tp 8: ``batch_wait_max_tokens_ratio: 0.9``, ``batch_wait_timeout_iters: 20``."""
    return (20, 0.9) if isl == 1024 and osl == 1024 and tp < 8 else None


def _dsr1_fp8_wait(isl: int, osl: int, tp: int, conc: int) -> tuple[int, float] | None:
    """``DELAY_BATCHING`` for 1k/1k at 64 <= concurrency < 256: timeout 40 iterations, ratio 0.8."""
    return (40, 0.8) if isl == 1024 and osl == 1024 and 64 <= conc < 256 else None


SCRIPTS: dict[tuple[str, str, str, str], Script] = {
    ("trtllm", "meta-llama/Llama-3.1-70B", "b200_sxm", "fp8"): Script(
        f"{REPOSITORY}/a267b4bd52f1cd162813fedfdcffb73936128dab/benchmarks/70b_fp8_b200_trt_slurm.sh",
        max_num_tokens=lambda isl, osl, conc: 16384,
        batch_wait=_llama_wait,
    ),
    ("trtllm", "meta-llama/Llama-3.1-70B", "b200_sxm", "fp4"): Script(
        f"{REPOSITORY}/73ef9225128eaf270ef655ff689247dde656ad6c/benchmarks/70b_fp4_b200_trt_slurm.sh",
        max_num_tokens=lambda isl, osl, conc: isl + osl + MAX_MODEL_LEN_MARGIN,
        batch_wait=_llama_wait,
    ),
    ("trtllm", "openai/gpt-oss-120b", "b200_sxm", "fp4"): Script(
        f"{REPOSITORY}/1825e7f0676d9adf7a3dbffcf50708907b7b25db/benchmarks/gptoss_fp4_b200_trt.sh",
        max_num_tokens=lambda isl, osl, conc: 20000,
        # enable_balance alone: TensorRT-LLM's AttentionDpConfig defaults, 50 and 10 iterations
        attention_dp_balance=(50, 10),
    ),
    ("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp8"): Script(
        f"{REPOSITORY}/0a919c5f81cec20c030d748c813de41c8c415db1/benchmarks/dsr1_fp8_b200_trt.sh",
        max_num_tokens=_dsr1_max_num_tokens,
        batch_wait=_dsr1_fp8_wait,
        attention_dp_balance=(60, 0),
    ),
    ("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp4"): Script(
        f"{REPOSITORY}/111f0312c13b4c3cca0dd365f6db4c017048f0d3/benchmarks/dsr1_fp4_b200_trt.sh",
        max_num_tokens=_dsr1_max_num_tokens,
        # as the MTP script of the 1.2.0rc6.post3 rows (dsr1_fp4_b200_trt_mtp.sh, 13dd0c2)
        attention_dp_balance=(60, 0),
    ),
}
"""(backend, model_path, system, precision) -> the script's scheduler flags."""

SCRIPT_MODELS = {"deepseek-ai/DeepSeek-V3": "deepseek-ai/DeepSeek-R1"}
"""InferenceX rows whose ``model_path`` names another model of the same architecture than the script they
ran: the 82 TensorRT-LLM DeepSeek-V3 rows of InferenceX's database dump (``db-dump/...``) are its DeepSeek-R1
runs (``dsr1_*_b200_trt*.sh``): 61 of them measure, to the last digit, the TTFT and TPOT of a DeepSeek-R1
row of the same format, parallelism, lengths and concurrency, and InferenceX benchmarks no DeepSeek-V3
configuration on TensorRT-LLM."""


def script_flags(
    inferencex: bool,
    backend: str,
    model_path: str,
    system: str,
    precision: str,
    *,
    isl: int,
    osl: int,
    tp: int,
    attention_dp: int,
    concurrency: float,
) -> tuple[int | None, float, float]:
    """A row's (token budget or None for the engine default, hold timeout [iterations], hold threshold
    [tokens]); (None, 0, 0) for a row of no script in :data:`SCRIPTS`. Attention DP never holds
    (TensorRT-LLM skips batch waiting with ``enable_attention_dp``)."""
    script = (
        SCRIPTS.get((backend, SCRIPT_MODELS.get(model_path, model_path), system, precision))
        if inferencex
        else None
    )
    if script is None or not math.isfinite(concurrency):
        return None, 0.0, 0.0
    conc = int(concurrency)
    budget = script.max_num_tokens(isl, osl, conc)
    wait = script.batch_wait(isl, osl, tp, conc) if attention_dp == 1 else None
    if wait is None:
        return budget, 0.0, 0.0
    return budget, float(wait[0]), wait[1] * budget


def attention_dp_balance(
    inferencex: bool, backend: str, model_path: str, system: str, precision: str, *, attention_dp: int
) -> tuple[int, int] | None:
    """A row's attention-DP balancing, (``timeout_iters``, ``batching_wait_iters``), or None: rows of a
    script in :data:`SCRIPTS` that balances, run with attention DP (``enable_attention_dp`` true, which
    is when those scripts write their ``attention_dp_config``)."""
    script = (
        SCRIPTS.get((backend, SCRIPT_MODELS.get(model_path, model_path), system, precision))
        if inferencex
        else None
    )
    if script is None or attention_dp <= 1:
        return None
    return script.attention_dp_balance
