"""SGLang's scheduler settings that change the closed loop of a silicon row, from its launch defaults.

Two of SGLang's defaults depend on whether the server runs speculative decoding (EAGLE, or NEXTN, which
SGLang runs as EAGLE), both set in ``ServerArgs._handle_speculative_decoding``
(https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/server_args.py):

- **The overlap scheduler.** By default SGLang schedules iteration i + 1 on the CPU while the GPU runs
  iteration i ("zero-overhead batch scheduler", https://lmsys.org/blog/2024-12-04-sglang-v0-4/), so the
  host's fixed cost per iteration is hidden behind the kernels whenever they take longer
  (:attr:`costmodel.closed_loop.LoopParts.overlap_host`). With EAGLE speculative decoding it is switched
  off ("Overlap scheduler is disabled because of using eagle speculative decoding"; since 0.5.x unless the
  beta ``SGLANG_ENABLE_SPEC_V2`` is set), so each iteration pays the kernels and the host in turn.
A third rule switches it off for hybrid linear-attention models (Qwen3.5's gated DeltaNet) whose radix
cache is on at the default ``no_buffer`` Mamba strategy (``ServerArgs._handle_mamba_radix_cache``,
:func:`mamba_radix_cache`); the Qwen3.5-397B scripts launch with ``--disable-radix-cache``, which keeps it.
SGLang also caps the running requests at 48 with speculative decoding when ``--max-running-requests`` is
not given ("Max running requests is reset to 48 for speculative decoding"); the Qwen3.5-397B MTP recipe
gives 128 (``MAX_RUNNING_REQUESTS=128``), and no cap is applied.

Which rows run speculative decoding: those of the InferenceX scripts whose record says so
(:attr:`validation.public.inferencex.Script.speculative`), at the layouts the drafting recipe ran
(:func:`validation.public.inferencex.drafts`): Qwen3.5-397B fp8 at tp 4 with EP 1 alone, where InferenceX
ran its MTP recipe beside a plain one of the same format (the bf16 and nvfp4 rows, and fp8 at tp 8 or with
EP 4, ran the plain recipe, which overlaps); GLM-5's rows ran a script with no drafting (InferenceX #915).
Drafting (three draft steps of the MTP layer, four tokens verified per request) is priced where the
drafter's acceptance is cited (:attr:`validation.public.inferencex.Script.acceptance_length`: Qwen3.5's),
else only with :data:`validation.public.silicon.SGLANG_DRAFTING`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.loop_params import EAGLE_HOST_PASSES as EAGLE_HOST_PASSES  # re-exported
from costmodel.loop_params import host_passes as engine_host_passes
from costmodel.loop_params import overlaps_host
from validation.public.inferencex import Script, drafts, measured_dates


def speculative(script: Script | None, *, tp: int, moe_ep: int) -> bool:
    """Whether the row's SGLang server runs speculative decoding: its InferenceX script drafts at the
    row's layout (:func:`validation.public.inferencex.drafts`; ``script`` from
    :func:`validation.public.inferencex.launch_script`, None where the row ran no known script)."""
    return drafts(script, tp=tp, moe_ep=moe_ep)


def overlaps_by_default(backend: str) -> bool:
    """Whether ``backend`` at its defaults overlaps an iteration's host work with the previous iteration's
    kernels (:func:`costmodel.loop_params.overlaps_host`: SGLang). Other engines: False (their whole fitted
    host cost is added to every iteration; TensorRT-LLM's and vLLM's own overlapped or asynchronous
    scheduling is not separated from it)."""
    return overlaps_host(backend)


def mamba_radix_cache(script: Script | None, *, hybrid: bool) -> bool:
    """Whether the row's SGLang server keeps a hybrid linear-attention model's states in its
    ``MambaRadixCache`` at the default ``--mamba-scheduler-strategy no_buffer``: a ``hybrid`` model (gated
    DeltaNet or Mamba-2 layers beside attention) whose script leaves the radix cache on
    (:attr:`validation.public.inferencex.Script.radix_cache`; no script: the default, on). No script read
    sets ``--mamba-scheduler-strategy extra_buffer``, the strategy that keeps the overlap. Not gated by the
    SGLang version: the rule (sgl-project/sglang#11214, before #13584 of 2025-11-19) predates every hybrid
    row of the sample (Qwen3.5-397B, nightly-20260216 on); an older hybrid row would need the gate."""
    return hybrid and (script is None or script.radix_cache)


def overlap_host(backend: str, script: Script | None, *, tp: int, moe_ep: int, hybrid: bool = False) -> bool:
    """Whether the row's engine overlaps its host work with the previous iteration's kernels: SGLang's
    default (:func:`overlaps_by_default`), off with speculative decoding (:func:`speculative`), and off
    without it where a ``hybrid`` model's states go to the ``no_buffer`` Mamba radix cache
    (:func:`mamba_radix_cache`): ``ServerArgs._handle_mamba_radix_cache`` sets
    ``disable_overlap_schedule`` there ("Disabling overlap schedule since mamba no_buffer is not compatible
    with overlap schedule, try to use --disable-radix-cache if overlap schedule is necessary",
    https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/server_args.py; the ``MambaRadixCache``
    of sgl-project/sglang#11214, 2025; docs/basic_usage/qwen3.md, "Mamba Radix Cache"). Every
    Qwen3.5-397B script read launches with ``--disable-radix-cache``, so its plain rows overlap."""
    if not overlaps_by_default(backend) or speculative(script, tp=tp, moe_ep=moe_ep):
        return False
    return not mamba_radix_cache(script, hybrid=hybrid)


def host_passes(backend: str, script: Script | None, *, tp: int, moe_ep: int, twin: bool = False) -> float:
    """The forward passes an iteration of the row's engine prepares on the host in turn
    (:attr:`costmodel.closed_loop.LoopParts.host_passes`): costmodel's engine rule
    (:func:`costmodel.loop_params.host_passes`, :data:`EAGLE_HOST_PASSES`) where an SGLang server
    runs EAGLE (its InferenceX script drafts at the row's layout, :func:`speculative`, or the row is of a
    campaign's MTP series, ``twin``: :func:`drafting_rows`), else 1."""
    return engine_host_passes(backend, drafts=twin or speculative(script, tp=tp, moe_ep=moe_ep))


def disagg_decode_host_passes(backend: str, *, drafts: bool) -> float:
    """The forward passes a disaggregated decode worker's iteration prepares on the host
    (:attr:`costmodel.disagg.DisaggParts.decode_host_passes`): costmodel's engine rule
    (:func:`costmodel.loop_params.host_passes`, :data:`EAGLE_HOST_PASSES`) where an SGLang
    decode worker ``drafts`` (every SGLang MTP recipe read decodes with ``speculative-algorithm: EAGLE``,
    :data:`validation.public.inferencex_disagg_workers.SGLANG_MTP_RECIPES`), else 1.

    Unlike the aggregated EAGLE rows (:func:`overlap_host`: no overlap, each pass paid in turn), these
    decode workers keep the overlap scheduler: every SGLang MTP recipe read sets
    ``SGLANG_ENABLE_SPEC_V2: "1"`` in its decode environment (e.g. the H100 one,
    https://github.com/qiching/srt-slurm/blob/5063eb432640574bd93410ae2697591a7d15f57c/recipes/h100/1k1k/mtp/h100-fp8-1p2d-max-tp-mtp.yaml),
    and with it ``ServerArgs._handle_speculative_decoding`` leaves ``disable_overlap_schedule`` off for
    EAGLE ("Spec v2 is enabled for eagle/eagle3 speculative decoding and overlap schedule is turned on",
    python/sglang/srt/server_args.py), supported with PD disaggregation since sgl-project/sglang#12443
    (2025-10-31; fixed by #14088). So the three passes are prepared beside the previous iteration's
    kernels and the iteration lasts the longer of the two (:meth:`costmodel.disagg.DisaggParts.result`);
    the engine-wide overlap (:func:`overlaps_by_default`) is the right one for these pools."""
    return engine_host_passes(backend, drafts=drafts)


@dataclass(frozen=True)
class ColdStartCampaign:
    """The script a campaign of :data:`COLD_START_CAMPAIGNS` ran, as the rows name it, and its chunk."""

    chunk: int
    """The script's ``--chunked-prefill-size`` [tokens]."""
    system: str
    """The rows' ``system``."""
    gemm_quant_mode: str
    """The rows' ``gemm_quant_mode`` (the script's checkpoint format)."""
    models: tuple[str, ...]
    """The rows' ``model_path`` values (InferenceX's database dump names DeepSeek-R1 runs DeepSeek-V3)."""


COLD_START_CAMPAIGNS: dict[str, ColdStartCampaign] = {
    "2025-11-10": ColdStartCampaign(
        16384, "b200_sxm", "nvfp4", ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3")
    )
}
"""SGLang InferenceX campaigns (the ``measured=`` date of ``silicon_data_source``) whose reported mean TTFT
holds a one-off start-up stall of the server, each tied to the script it ran (its rows' system, format
and models: another script measured on the same date is not refused) with that script's chunk
(``dsr1_fp4_b200.sh``, every version read: ``--chunked-prefill-size 16384``,
https://github.com/SemiAnalysisAI/InferenceX/blob/2e46dba0393537668d37d83b532fff2cdbbad231/benchmarks/dsr1_fp4_b200_docker.sh,
https://github.com/SemiAnalysisAI/InferenceX/blob/1fc5d73cdd31c7fbdd657f3c7e5ec2180f4b0598/benchmarks/dsr1_fp4_b200.sh).

The evidence (docs/serving.md, "SGLang's 2025-11-10 nvfp4 campaign: a cold start in the measured run"): on
that campaign's DeepSeek-R1 nvfp4 rows (tp 4 and 8, and their DeepSeek-V3 copies in InferenceX's database
dump) the TTFT exceeds the steady-state prediction by a near-constant 5-8 s at every concurrency from 4 to
128 clients exactly where the client's first wave, C prompts of up to isl tokens, cannot be prefilled in
one chunk (C x isl > 16384: isl 1024 from 32 clients, isl 8192 from 4), and by 0.1-0.4 s elsewhere (isl
1024 at 4-16 clients), while the TPOT is smooth across that threshold. A cost paid once per run by the
first wave alone, S, raises the mean TTFT over the run's 10 C requests (``--num-prompts $((CONC * 10))``)
by S / 10 whatever C is: S of 50-80 s, a one-off stall whose cause is not identified, not a steady state
of the engine. A stall of the same kind, mean TTFT 5.7 s and p99 73 s at 64 clients against 0.39 s and
0.94 s at 32, was reported for this script on B200 (SGLang 0.5.6, tp 8, 1k / 1k, the same 16384 chunk) in
https://github.com/SemiAnalysisAI/InferenceX/issues/870, but its step falls between 32 and 64 clients: the
line C x isl > 16384 is placed by this campaign's own step (any cut between 16 and 32 clients at isl 1024
fits these rows equally well), not derived from the chunk. The later campaigns of the same scripts (0.5.9
images, 2026-03 and 04) show no such step. What stalls is not stated, so the stall is not modelled:
these rows are not covered, with the reason (:func:`cold_start_rows`). An audit of every engine's
InferenceX and aiconfigurator campaigns by one rule (docs/serving.md, "The cold-start signature across
engines") finds the flat excess at a stated line in this campaign alone."""

COLD_START_REASON = (
    "start-up stall in the measured run: the client's first wave exceeds the script's chunked prefill "
    "(SGLang InferenceX campaign of COLD_START_CAMPAIGNS; docs/serving.md)"
)


def cold_start_rows(table: pd.DataFrame) -> pd.Series:
    """Rows of ``table`` (the silicon sample, with its ``concurrency``) measured in a campaign of
    :data:`COLD_START_CAMPAIGNS` by that campaign's script (its system, GEMM format and models) whose first
    wave of prompts, concurrency x nominal isl tokens, exceeds that script's chunked-prefill size (SGLang
    rows alone)."""
    measured = measured_dates(table)
    wave = table["concurrency"].astype(float) * table["isl"].astype(float)
    refused = pd.Series(False, index=table.index)
    for date, campaign in COLD_START_CAMPAIGNS.items():
        script = (
            (table["backend"] == "sglang")
            & (measured == date)
            & (table["system"] == campaign.system)
            & (table["gemm_quant_mode"] == campaign.gemm_quant_mode)
            & table["model_path"].isin(campaign.models)
        )
        refused |= script & (wave > float(campaign.chunk))
    return refused


@dataclass(frozen=True)
class DraftingCampaign:
    """A campaign whose result files hold, beside the plain recipe's runs, a series of the same layout run
    by the recipe's MTP sibling (:data:`DRAFTING_CAMPAIGNS`)."""

    system: str
    """The rows' ``system``."""
    gemm_quant_mode: str
    """The rows' ``gemm_quant_mode``."""
    models: tuple[str, ...]
    """The rows' ``model_path`` values (the database dump names DeepSeek-R1 runs DeepSeek-V3)."""
    tp: int
    """The layout's tensor-parallel GPUs (``tp_size``)."""
    moe_ep: int
    """The layout's expert-parallel GPUs (``moe_ep_size``)."""
    speculative_flags: tuple[int, int, int]
    """The MTP recipe's (``--speculative-num-steps``, ``--speculative-eagle-topk``,
    ``--speculative-num-draft-tokens``)."""


DRAFTING_CAMPAIGNS: dict[str, DraftingCampaign] = {
    "2026-03-25": DraftingCampaign(
        "b200_sxm", "fp8", ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3"), 8, 1, (2, 1, 3)
    )
}
"""SGLang InferenceX campaigns (the ``measured=`` date) where the plain recipe and its MTP sibling ran the
same layout and the sample keeps no speculative-decoding column. DeepSeek-R1 fp8 on B200 at tp 8, EP 1:
``dsr1-fp8-b200-sglang`` and ``dsr1-fp8-b200-sglang-mtp`` (EAGLE with the checkpoint's MTP layer,
``--speculative-num-steps 2 --speculative-num-draft-tokens 3 --speculative-eagle-topk 1``, tp 8 EP 1:
https://github.com/SemiAnalysisAI/InferenceX/pull/626; both on ``lmsysorg/sglang:v0.5.9-cu130`` since
https://github.com/SemiAnalysisAI/InferenceX/pull/943). Which series is which: InferenceX's database dump
holds the plain recipe's runs (its Qwen3.5-397B configurations are the plain ones, none at the MTP recipe's
layout; docs/serving.md, "Qwen3.5-397B on B200"), so a result-file row of the campaign's layout whose
measurement no dump row of the campaign repeats ran the MTP recipe (:func:`drafting_rows`)."""


def drafting_rows(table: pd.DataFrame, repeats: npt.ArrayLike) -> pd.Series:
    """Rows of ``table`` (the silicon sample, with its ``concurrency``) that ran the MTP recipe of a
    campaign of :data:`DRAFTING_CAMPAIGNS`: SGLang result-file rows of the campaign's system, format,
    models and layout whose (isl, osl, concurrency) a database-dump row of the campaign also measured, and
    whose measurement no such dump row repeats (``repeats``: per row, the label
    :func:`validation.public.silicon.repeated_measurement` gives the rows that repeat one measurement):
    the configuration's second series."""
    text = table["silicon_data_source"].astype(str)
    measured = measured_dates(table)
    dump = text.str.startswith("db-dump/")
    parts = [table[c].astype(float).round(2).astype(str) for c in ("isl", "osl", "concurrency")]
    shape = parts[0].str.cat(parts[1:], sep="/")
    measurement = pd.Series(np.asarray(repeats), index=table.index)
    out = pd.Series(False, index=table.index)
    for date, campaign in DRAFTING_CAMPAIGNS.items():
        layout = (
            (table["backend"] == "sglang")
            & (table["mode"] == "agg")
            & (measured == date)
            & (table["system"] == campaign.system)
            & (table["gemm_quant_mode"] == campaign.gemm_quant_mode)
            & table["model_path"].isin(campaign.models)
            & (table["tp_size"] == campaign.tp)
            & (table["moe_ep_size"] == campaign.moe_ep)
        )
        plain = set(measurement[layout & dump])
        # only where the dump holds the plain run of the same lengths and clients: elsewhere the one series
        # the sample keeps is not known to be either recipe's
        dumped = set(shape[layout & dump])
        out |= layout & ~dump & ~measurement.isin(plain) & shape.isin(dumped)
    return out
