"""Disaggregated serving: a closed loop of ``concurrency`` clients against a pool of prefill workers and a
pool of decode workers, the KV cache of every prompt moved from the first to the second.

This is how NVIDIA Dynamo, SGLang's PD disaggregation and TensorRT-LLM's disaggregated serving run (Zhong
et al. 2024, "DistServe", OSDI, §2-3; Patel et al. 2024, "Splitwise", ISCA): a request is prefilled on
one worker of the prefill pool, which produces its first token; its KV cache is copied to a worker of the
decode pool; that worker decodes the other ``osl - 1`` tokens among the sequences it is running. The model
is a mean-value analysis of the loop's steady state, like :mod:`costmodel.closed_loop`, with the same
named parameters and step times from :func:`costmodel.serving.step_time` (no second time model):

- **Prefill pool.** ``prefill_workers`` engines, each prefilling up to k = min(``max_batch_size``,
  floor(``max_batched_tokens`` / isl)) prompts per pass (at least one; a prompt longer than the budget is
  prefilled in ceil(isl / budget) chunks). A pass of k prompts costs the chunks' iterations of
  :func:`costmodel.serving.step_time`'s decomposition (every token's linear work, each chunk's own
  attention, the k prompts' in one packed call: :meth:`costmodel.serving._Parts.prompts_chunk_s`) plus
  ``step_overhead_s`` per iteration. A lone prompt takes s_1, one pass of k = 1; the pool completes
  at most mu_p = workers k / s_k prompts per second.
- **KV transfer.** The prompt's KV cache (:func:`costmodel.memory.kv_cache_bytes` of isl tokens in the
  prefill engine's ``kv_dtype``), once per copy the decode rank holds (:func:`kv_copies`: one where its
  GPUs split the KV heads, tp where they replicate it, as the MLA latent), crosses
  ``min(prefill GPUs, decode GPUs)`` links in parallel, counting
  the GPUs of one attention-DP rank (each GPU of the narrower side sends or receives its share over its
  own link): the scale-up link (NVLink) when
  the whole deployment fits one scale-up domain (:func:`costmodel.estimate.scale_up_domain_size`), else
  the scale-out NIC (RDMA), at the profile's per-device bandwidth
  (:func:`costmodel.roofline.link_bandwidth_bytes_per_s`); plus ``kv_transfer_overhead_s`` per request, the
  hand-off's fixed latency (the prefill's result going back through the router, which then sends the
  request to a decode worker; connection set-up). The transfer follows the prefill (no layer-by-layer
  overlap). A decode rank receives one request's cache at a time (:func:`kv_receive_wait`): the copies
  queue there, an M/D/1 queue per rank whose service is the copy's bytes over its links (the fixed
  latency holds no receive resource), and its wait joins the prompt's time before decoding.
- **Decode pool.** ``decode_workers`` engines, each running at most ``max_batch_size`` sequences, and no
  more than fit in its KV cache at the mean length isl + osl / 2 (:meth:`Engine.max_concurrency`). The
  router sends each request to one decode worker, where it waits for one of that worker's slots however
  many are free on the others (:func:`decode_slot_share`): of the M clients past the prefill pool a worker
  holds M / decode_workers on average, spread about it by ``decode_share_dispersion`` (0: evenly, the pool
  as one queue; 1: as binomial as uniform random routing); a worker decodes E[min(share, slots)] and the
  rest of its share waits. Where the benchmark runs exactly as many clients as slots (the sample's
  disaggregated rows do), an even share never waits, a dispersed one does, with fewer sequences per
  iteration (a lower TPOT). Dynamo's default router is round robin
  (https://docs.nvidia.com/dynamo/v1.2.0/user-guides/kv-cache-aware-routing), which keeps the shares even:
  a value above 0 stands in for a decode-side loss at C = decode_workers x slots that the model does not
  otherwise explain (docs/serving.md, "Decode routing"); the public calibration holds it at 0 since
  session 12 ("A disaggregated wave share"). TPOT and the rate are
  those of the mean decoding batch D = E[min(share, slots)] (a mean-value approximation): D / t(D) is
  concave, so the workers' mean E[D_i / t(D_i)] is at most D / t(D) (Jensen), and the rate an upper
  bound on that account.
  With D sequences per worker an iteration takes
  t(D) = step_time(decode_batch=max(D, 1), decode_context=isl + osl / 2) + ``step_overhead_s``: that is
  TPOT (a sequence decodes in a batch of at least itself, however few share the pool). The iteration is
  timed at a geometric grid of batch sizes and interpolated linearly between them. An engine that
  overlaps its host work (``overlapped_host_s`` per pass, :meth:`DisaggParams.from_loop`) prepares the
  iteration's passes (:attr:`DisaggParts.decode_host_passes`: 1, or an EAGLE worker's 3) beside the
  previous iteration's kernels: the step time above is then the longer of the two.
- **Speculative decoding** (``speculation``, :class:`costmodel.closed_loop.Speculation`: k drafted tokens,
  acceptance rate alpha, a draft step costing c plain decoding steps), in the decode pool only, as the
  aggregated loop runs it (:mod:`costmodel.closed_loop`): each decode iteration is k draft steps of
  c t_plain(D) each and one verification pass of k + 1 tokens per sequence
  (:meth:`costmodel.serving._Parts.step_time` with ``decode_new_tokens`` = k + 1), and yields
  E = (1 - alpha^(k+1)) / (1 - alpha) tokens per sequence (:func:`costmodel.speculative.expected_tokens`,
  Leviathan et al. 2023, Eq. 1). A request then decodes in (osl - 1) / E iterations and
  TPOT = (t(D) + ``step_overhead_s``) / E; the prefill pool runs no draft (its pass produces the first
  token only).
- **Prefill wait.** The router sends each prompt to one prefill worker as it arrives, where it waits for a
  pass to take it and rides a pass of the prompts that arrived during the one before
  (:func:`prefill_wait`: an M/D/k queue per worker in the Allen-Cunneen approximation, seen by the other
  C - 1 clients only, the arrival theorem of a closed network; with k > 1, plus the rest of the pass in
  progress, which takes its prompts only when it starts). Below saturation the wait is a fraction of
  a pass; it grows without bound as the pool's load lambda / mu_p nears 1.
- **Rates.** With M clients past the prefill pool, D(M) of them decoding per decode worker, Little's law
  on those gives the rate lambda = decode_workers D / ((osl - 1) t(D)); prompts reach the prefill pool at
  that rate. The clients close the loop: C = lambda (``request_overhead_s`` + prefill wait + the prompt's
  pass + transfer) + M, whose right side grows with M, solved for M by bisection. Where the decode slots
  (the decode workers' ``max_batch_size``, or their KV limit) cannot hold the M clients, the rest queue
  for a slot. The prefill pool never reaches saturation: its wait slows the
  clients' cycle down first, so its rate tends to mu_p as clients are added.
- **TTFT.** ``request_overhead_s`` + prefill wait + pass + transfer + the wait for a decode slot, the
  clients waiting for one over lambda (Little's law); equal to C / lambda - (osl - 1) t(D).
- **Waves.** As in :mod:`costmodel.closed_loop`, a share f = ``burst_fraction`` of the requests arrive in
  a wave with every other client (the benchmark's first cycle, 1 / requests per client, and the waves an
  engine keeps after it). A wave brings G = C / workers prompts to each prefill worker at once, which it
  prefills first come first served k per pass: with G <= k they share one pass of G prompts, s(G);
  beyond, the i-th waits for ceil(i / k) full passes, (G / k + 1) / 2 of them on average (k, s_k as in
  :func:`prefill_wait`). That replaces the steady state's wait and pass for those requests, so
  TTFT = TTFT_steady + f max(wave prefill - (wait + s(n) + slot wait), 0): the same mix of steady state
  and wave as the aggregated loop's (its wave: the mean over i = 1..R of ceil(i isl / P) iterations). A
  request whose decode slot is not free waits for it whatever its prefill (the wave's passes run during
  that wait), so the wave adds only what its prefill exceeds the steady wait before decoding by, the
  wait for a slot included (nothing where the slots bind for longer than the wave's passes). f is the
  engine's aggregated ``burst_fraction`` unless a share of the disaggregated loop's own is given
  (:meth:`DisaggParams.from_loop`; the Pareto planner and the public evaluation pass the shipped
  ``disagg_burst_fraction``, a direct :func:`disagg_loop` call with a :class:`LoopParams` does not): the
  decode pool does not prefill, so the clients of a wave decode alike and come back spaced as they left
  the prefill pool, and the wave is not the aggregated engine's (docs/serving.md, "A disaggregated wave
  share").

- **Attention data parallelism** (``attention_dp`` = r ranks in a pool's :class:`costmodel.specs.Deployment`,
  as SGLang's DP attention and TensorRT-LLM's ``enable_attention_dp`` run it in either pool): each rank of a
  worker holds its own requests' KV cache and schedules its own share of the worker's ``max_batch_size``
  and ``max_batched_tokens`` (the ranks' budgets together: an engine's launch value gives it by the
  engine's rule, :func:`costmodel.token_budget.worker_batched_tokens`); the MoE layers serve all ranks'
  tokens, so the ranks step in lockstep (:func:`costmodel.serving.step_time`). A prefill pass holds k
  prompts per rank, r k per worker; a lone prompt runs on one rank while the others idle, so s_1 is the
  busy rank's own operators at the prompt's tokens plus the MoE layer at those tokens only
  (:func:`busy_rank_linear_s`). A request's KV cache lives on one rank of each pool, so the transfer
  runs over min(prefill tp x pp, decode tp x pp) links.
  A decode worker's D sequences are spread evenly, D / r per rank (TPOT is the iteration of D on the
  worker, each rank attending to its own); fewer clients per decode worker than ranks is refused.

Assumptions: all clients alike (fixed isl, osl; outputs run to osl); steady state; requests spread evenly
over the workers of each pool and the ranks of each worker; prompts reach the prefill pool as from many
independent clients (Poisson in the limit), the decode slots are shared without a queue until they are
full (the asymptotic-bounds view of a closed network, Lazowska et al. 1984, "Quantitative System
Performance", §5.2); the decode engine only decodes (the transferred KV cache needs
no compute); prompts batched in one prefill pass cost their summed attention and the linear work of all
their tokens.

:func:`disagg_loop` evaluates one deployment (arrays over worker counts, clients and lengths);
:func:`disagg_pairs` many (prefill engine, decode engine) pairs at once for a deployment search, timing
each engine once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from costmodel import checks
from costmodel.closed_loop import (
    LoopParams,
    Speculation,
    draft_time,
    gpu_work_s,
    host_bound_s,
    no_cache_room,
)
from costmodel.errors import CostmodelError

if TYPE_CHECKING:
    from costmodel.roofline import Link
    from costmodel.serving import Engine, _Parts

FloatArray = npt.NDArray[np.float64]
_T = TypeVar("_T")

LINKS: tuple[Link, ...] = ("intra", "inter")
"""Link names accepted by ``link=`` (:data:`costmodel.roofline.Link`): the scale-up (NVLink) link inside
a scale-up domain, the scale-out network (RDMA NIC) across domains."""


@dataclass(frozen=True)
class DisaggParams:
    """Named parameters of the disaggregated loop: the closed loop's (:class:`LoopParams`, same meaning;
    the per-layer host costs apply to the prefill workers' passes, which carry prompt tokens) and the fixed
    cost of a KV transfer. Defaults add nothing."""

    step_overhead_s: float = 0.0
    """Fixed cost of one engine iteration outside its kernels, prefill and decode workers alike [s]."""
    request_overhead_s: float = 0.0
    """Fixed cost on each request's first token outside the engines' iterations [s]."""
    burst_fraction: float = 0.0
    """Share of the requests that arrive in a wave with every other client [-], in [0, 1]."""
    kv_transfer_overhead_s: float = 0.0
    """Fixed latency of one request's hand-off from the prefill to the decode pool beyond bytes / bandwidth
    [s]: the prefill's result back through the router, the request's dispatch to a decode worker, connection
    set-up. It delays the request but holds no decode rank's receive resource (:func:`kv_receive_wait`)."""
    layer_step_overhead_s: float = 0.0
    """Fixed cost per model layer of every iteration, prefill and decode workers alike [s]
    (:class:`LoopParams`)."""
    prefill_layer_overhead_s: float = 0.0
    """Host cost per model layer of a prefill worker's pass [s] (:class:`LoopParams`)."""
    mla_prefill_layer_overhead_s: float = 0.0
    """Further host cost per multi-head latent attention layer of a prefill worker's pass [s]
    (:class:`LoopParams`)."""
    overlapped_host_s: float = 0.0
    """The host's work per forward pass that an overlapped scheduler prepares while the GPU runs the
    previous iteration [s] (:class:`LoopParams`): a decode iteration lasts at least
    :attr:`DisaggParts.decode_host_passes` of it. Where the engine does not overlap,
    :meth:`from_loop` puts it in ``step_overhead_s`` instead and leaves this 0."""
    decode_share_dispersion: float = 0.0
    """Effective spread of the clients' share over the decode workers beyond an even share, as a share of
    the binomial variance of uniform random routing [-], in [0, 1] (:func:`decode_slot_share`; 0: an even
    share, the pool as one queue). The shipped value is held at 0 (round robin, Dynamo's default router;
    docs/serving.md, "A disaggregated wave share"); a fit may move it within its bounds."""

    def __post_init__(self) -> None:
        for name in (
            "step_overhead_s",
            "request_overhead_s",
            "burst_fraction",
            "kv_transfer_overhead_s",
            "layer_step_overhead_s",
            "prefill_layer_overhead_s",
            "mla_prefill_layer_overhead_s",
            "overlapped_host_s",
            "decode_share_dispersion",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float | np.floating) and math.isfinite(value) and value >= 0):
                raise CostmodelError(f"{name} must be finite and >= 0, got {value!r}")
        for name in ("burst_fraction", "decode_share_dispersion"):
            if getattr(self, name) > 1:
                raise CostmodelError(f"{name} must be at most 1, got {getattr(self, name)!r}")

    @classmethod
    def from_loop(
        cls,
        loop: LoopParams,
        *,
        kv_transfer_overhead_s: float = 0.0,
        overlap_host: bool = False,
        decode_share_dispersion: float = 0.0,
        burst_fraction: float | None = None,
    ) -> DisaggParams:
        """The closed loop's parameters of an engine, with a KV-transfer overhead. The host's work per
        iteration that an overlapped scheduler can hide (``overlapped_host_s``) is added to the fixed step
        cost, unless the engine overlaps it (``overlap_host``, as :class:`costmodel.closed_loop.LoopParts`),
        where it is kept as ``overlapped_host_s``: hidden behind a decode iteration's kernels where they
        take longer than the passes it prepares (:attr:`DisaggParts.decode_host_passes`), the floor of the
        iteration where they do not (before session 16 it was dropped there). ``burst_fraction``: the
        disaggregated loop's own wave share where one was fitted (None: the closed loop's)."""
        return cls(
            step_overhead_s=loop.step_overhead_s + (0.0 if overlap_host else loop.overlapped_host_s),
            overlapped_host_s=loop.overlapped_host_s if overlap_host else 0.0,
            request_overhead_s=loop.request_overhead_s,
            burst_fraction=loop.burst_fraction if burst_fraction is None else burst_fraction,
            kv_transfer_overhead_s=kv_transfer_overhead_s,
            layer_step_overhead_s=loop.layer_step_overhead_s,
            prefill_layer_overhead_s=loop.prefill_layer_overhead_s,
            mla_prefill_layer_overhead_s=loop.mla_prefill_layer_overhead_s,
            decode_share_dispersion=decode_share_dispersion,
        )


BOUNDS: dict[str, tuple[float, float]] = {
    "kv_transfer_overhead_s": (0.0, 0.05),
    "decode_share_dispersion": (0.0, 1.0),
    "burst_fraction": (0.0, 1.0),
}
"""Ranges a calibration may move the disaggregated loop's own parameters within (the others: those of
:data:`costmodel.closed_loop.BOUNDS`). A transfer's handshakes (connection, block lookup, completion
notice) cost milliseconds; 50 ms is ten times that, so a fit that stops at the bound is standing in for
something the model lacks, not a transfer cost, and is reported as such rather than absorbed (an unbounded
fit put 1-2 s here). The decode share's dispersion runs from an even share (0) to the binomial share of
uniform random routing (1); a fit at either end of either range is a bound hit, reported as one. The
disaggregated loop's own wave share (``burst_fraction``) runs over the same [0, 1] as the closed loop's."""


@dataclass(frozen=True)
class DisaggLoop:
    """Steady state of a disaggregated closed loop; arrays follow broadcast(concurrency, isl, osl,
    prefill_workers, decode_workers)."""

    ttft_s: FloatArray
    """Mean time to first token [s]."""
    tpot_s: FloatArray
    """Mean time per output token after the first, one decode iteration over the tokens it yields per
    sequence (1, or E with speculative decoding) [s]."""
    requests_per_s: FloatArray
    """Completed requests per second of the whole deployment [1/s]."""
    output_tokens_per_s: FloatArray
    """Output tokens per second of the whole deployment [tokens/s]: osl per completed request."""
    output_tokens_per_s_per_gpu: FloatArray
    """``output_tokens_per_s`` over every GPU of both pools [tokens/s]."""
    gpus: FloatArray
    """GPUs of both pools: prefill_workers x prefill GPUs + decode_workers x decode GPUs [-]."""
    prefill_s: FloatArray
    """A lone prompt's prefill, s_1 [s]."""
    prefill_wait_s: FloatArray
    """Mean wait of a prompt for a prefill pass to take it [s] (:func:`prefill_wait`)."""
    prefill_batch: FloatArray
    """Mean prompts per prefill pass, n in [1, k] [-] (:func:`prefill_wait`)."""
    transfer_s: FloatArray
    """One request's KV transfer, bytes / bandwidth + ``kv_transfer_overhead_s`` [s]."""
    kv_receive_wait_s: FloatArray
    """Mean wait of the transfer for those ahead of it at its decode rank [s] (:func:`kv_receive_wait`)."""
    decode_batch: FloatArray
    """Sequences decoding per decode worker, D [-]."""
    prefill_utilisation: FloatArray
    """Busy share of the prefill pool, lambda / mu_p [-]."""
    bottleneck: npt.NDArray[np.str_]
    """What limits the rate: "decode" (the decode slots are full, or a request waits longer for one than it
    takes to reach the decode pool), "prefill" (a prompt waits longer for the
    prefill pool than its own pass takes) or "clients" (neither)."""


def disagg_loop(
    prefill: Engine,
    decode: Engine,
    *,
    prefill_workers: npt.ArrayLike,
    decode_workers: npt.ArrayLike,
    concurrency: npt.ArrayLike,
    isl: npt.ArrayLike,
    osl: npt.ArrayLike,
    params: DisaggParams | LoopParams | None = None,
    link: Link | None = None,
    speculation: Speculation | None = None,
    decode_host_passes: float = 1.0,
) -> DisaggLoop:
    """Mean TTFT, TPOT and throughput of ``concurrency`` clients against a disaggregated deployment.

    Parameters
    ----------
    prefill : one prefill worker (model, device, dtypes, parallelism; ``max_batch_size`` prompts and
        ``max_batched_tokens`` tokens per pass).
    decode : one decode worker (``max_batch_size``: the most sequences it decodes at once); same model.
    prefill_workers : workers in the prefill pool [-], whole, >= 1.
    decode_workers : workers in the decode pool [-], whole, >= 1.
    concurrency : clients of the closed loop [-], >= 1.
    isl : prompt tokens per request [tokens], >= 1.
    osl : output tokens per request [tokens], >= 2 (TPOT needs a second token).
    params : the named overheads and burst share (default: none, the kernels' time alone); a
        :class:`LoopParams` (an engine's closed-loop parameters) adds no transfer overhead.
    link : "intra" (scale-up, NVLink) or "inter" (scale-out NIC) for the KV transfer; default: "intra"
        when every GPU of both pools fits one scale-up domain of the same device (:func:`same_device`),
        else "inter".
    speculation : speculative decoding in the decode pool's iterations (default: none; the module
        docstring).
    decode_host_passes : forward passes a decode iteration prepares on the host [-], >= 1 (default 1;
        :attr:`DisaggParts.decode_host_passes`): :func:`costmodel.loop_params.host_passes` gives the
        engine's count, 3 for an SGLang decode pool that drafts with EAGLE. The count acts on
        ``params.overlapped_host_s``, the host cost an overlapping engine keeps
        (``DisaggParams.from_loop(overlap_host=True)``); for an engine that does not overlap, ``from_loop``
        folds one pass's host cost into ``step_overhead_s`` and a count above 1 adds nothing (every engine
        whose rule gives more than one pass, SGLang, overlaps).

    Arrays broadcast. See the module docstring for the model and its assumptions.
    """
    parts = disagg_parts(
        prefill,
        decode,
        prefill_workers=prefill_workers,
        decode_workers=decode_workers,
        concurrency=concurrency,
        isl=isl,
        osl=osl,
        link=link,
        speculation=speculation,
        decode_host_passes=decode_host_passes,
    )
    return parts.result(_params(params))


BISECTION_STEPS = 48
"""Halvings of the decode batch's range in :meth:`DisaggParts.result` (from at most a few thousand
sequences to well below 1e-9 of one)."""

DECODE_GRID_POINTS = 24
"""Decode batch sizes at which the decode iteration is timed (geometric in [1, max batch], plus 0);
between them it is interpolated linearly (linear work is piecewise linear in the batch, attention
affine)."""


def disagg_parts(
    prefill: Engine,
    decode: Engine,
    *,
    prefill_workers: npt.ArrayLike,
    decode_workers: npt.ArrayLike,
    concurrency: npt.ArrayLike,
    isl: npt.ArrayLike,
    osl: npt.ArrayLike,
    link: Link | None = None,
    speculation: Speculation | None = None,
    decode_host_passes: float = 1.0,
) -> DisaggParts:
    """The kernel times and limits of :func:`disagg_loop` before its named parameters are applied.
    ``decode_host_passes``: the forward passes a decode iteration prepares on the host
    (:attr:`DisaggParts.decode_host_passes`), >= 1 (default 1, plain decoding)."""
    _check_host_passes(decode_host_passes)
    if not same_model(prefill, decode):
        raise CostmodelError(
            f"decode serves {decode.model.name!r} but prefill {prefill.model.name!r}: "
            "both pools must run the same model"
        )
    N_in = checks.counts("isl", isl, minimum=1)
    N_out = checks.counts("osl", osl, minimum=2)
    parts = _combine(
        prefill,
        decode,
        prefill_side(prefill, isl=N_in),
        decode_side(decode, isl=N_in, osl=N_out, speculation=speculation),
        prefill_workers=prefill_workers,
        decode_workers=decode_workers,
        concurrency=concurrency,
        isl=N_in,
        osl=N_out,
        link=link,
    )
    return replace(parts, decode_host_passes=float(decode_host_passes))


def _check_host_passes(decode_host_passes: object) -> None:
    """Refuse a count of a decode iteration's host passes that is not a number >= 1."""
    passes = math.nan
    if isinstance(decode_host_passes, int | float | np.integer | np.floating) and not isinstance(
        decode_host_passes, bool
    ):
        passes = float(decode_host_passes)
    if not (math.isfinite(passes) and passes >= 1.0):
        raise CostmodelError(f"decode_host_passes must be finite and >= 1, got {decode_host_passes!r}")


def disagg_pairs(
    pairs: Sequence[tuple[Engine, Engine]],
    *,
    prefill_workers: npt.ArrayLike,
    decode_workers: npt.ArrayLike,
    concurrency: npt.ArrayLike,
    isl: npt.ArrayLike,
    osl: npt.ArrayLike,
    params: DisaggParams | LoopParams | None = None,
    link: Link | None = None,
    speculation: Speculation | None = None,
    decode_batch_limit: npt.ArrayLike | None = None,
    decode_host_passes: float = 1.0,
) -> list[DisaggLoop | str]:
    """:func:`disagg_loop` for many (prefill engine, decode engine) pairs, each engine's kernel times
    computed once however many pairs it is in (a deployment search pairs every layout with every other).
    Returns per pair its :class:`DisaggLoop`, or the one-line reason it cannot run (a prompt or a sequence
    that does not fit, a missing link bandwidth, different models, fewer clients per decode worker than its
    attention-DP ranks everywhere). Where only some rows have fewer clients per decode worker than its
    attention-DP ranks, those rows' figures are NaN (a search over client counts keeps the others).
    ``speculation``: speculative decoding in every pair's decode pool (:func:`disagg_loop`).
    ``decode_batch_limit``: the most sequences a decode worker runs at once, per row (broadcast with
    ``concurrency``), where it is below the decode engine's ``max_batch_size`` [-]: a deployment search
    launches its decode workers for each row's clients while one engine's decode iterations are timed
    on one batch grid for every row (default: the engine's limit alone). ``decode_host_passes``: the
    forward passes every pair's decode iteration prepares on the host (:func:`disagg_loop`)."""
    _check_host_passes(decode_host_passes)
    N_in = checks.counts("isl", isl, minimum=1)
    N_out = checks.counts("osl", osl, minimum=2)
    chosen = _params(params)
    limit = (
        None
        if decode_batch_limit is None
        else checks.counts("decode_batch_limit", decode_batch_limit, minimum=1)
    )
    prefills: dict[int, PrefillSide | str] = {}
    decodes: dict[int, DecodeSide | str] = {}
    out: list[DisaggLoop | str] = []
    ready: list[tuple[int, DisaggParts]] = []  # evaluated together below, in one array pass
    for prefill, decode in pairs:
        if id(prefill) not in prefills:
            prefills[id(prefill)] = _or_reason(partial(prefill_side, prefill, isl=N_in))
        if id(decode) not in decodes:
            decodes[id(decode)] = _or_reason(
                partial(decode_side, decode, isl=N_in, osl=N_out, speculation=speculation)
            )
        p, d = prefills[id(prefill)], decodes[id(decode)]
        if isinstance(p, str) or isinstance(d, str):
            out.append(p if isinstance(p, str) else str(d))
            continue
        if not same_model(prefill, decode):
            out.append("prefill and decode engines serve different models")
            continue
        try:
            parts = _combine(
                prefill, decode, p, d, prefill_workers=prefill_workers, decode_workers=decode_workers,
                concurrency=concurrency, isl=N_in, osl=N_out, link=link, refuse_idle_ranks=False,
            )  # fmt: skip
        except CostmodelError as error:
            out.append(str(error).splitlines()[0])
            continue
        slots = parts.decode_slots if limit is None else np.minimum(parts.decode_slots, limit)
        parts = replace(parts, decode_slots=slots, decode_host_passes=float(decode_host_passes))
        ready.append((len(out), parts))
        out.append("")
    for index, loop in _stacked_results(ready, chosen):
        out[index] = loop
    return out


def _stacked_results(
    ready: list[tuple[int, DisaggParts]], params: DisaggParams
) -> list[tuple[int, DisaggLoop]]:
    """:meth:`DisaggParts.result` of many pairs in one array pass: the pairs' parts (same shapes, same batch
    grid, as one :func:`disagg_pairs` call gives them) stacked on a new first axis, the result split back.
    Elementwise, so each pair's answer is the one it gets alone."""
    from dataclasses import fields

    groups: dict[tuple[object, ...], list[tuple[int, DisaggParts]]] = {}
    for index, parts in ready:
        key = (parts.batch_grid.tobytes(), parts.decode_grid_s.shape, parts.gpus.shape)
        groups.setdefault(key, []).append((index, parts))
    out: list[tuple[int, DisaggLoop]] = []
    for members in groups.values():
        first = members[0][1]
        rows = np.broadcast_shapes(
            *(np.shape(getattr(first, f.name)) for f in fields(DisaggParts) if f.name not in _GRID_FIELDS)
        )
        stacked: dict[str, object] = {"batch_grid": first.batch_grid}
        for f in fields(DisaggParts):
            if f.name == "batch_grid":
                continue
            shape = (*rows, first.batch_grid.size) if f.name == "decode_grid_s" else rows
            values = [np.asarray(getattr(p, f.name)) for _, p in members]
            column = np.empty((len(values), *shape), dtype=np.result_type(*values))
            for k, value in enumerate(values):
                column[k] = value  # broadcast on assignment
            stacked[f.name] = column
        loop = DisaggParts(**stacked).result(params)  # type: ignore[arg-type]
        for k, (index, _) in enumerate(members):
            out.append(
                (
                    index,
                    DisaggLoop(**{f.name: np.asarray(getattr(loop, f.name))[k] for f in fields(DisaggLoop)}),
                )
            )
    return out


_GRID_FIELDS = ("batch_grid", "decode_grid_s")


def _or_reason(compute: Callable[[], _T]) -> _T | str:
    try:
        return compute()
    except CostmodelError as error:
        return str(error).splitlines()[0]


def _params(params: DisaggParams | LoopParams | None) -> DisaggParams:
    if params is None:
        return DisaggParams()
    if isinstance(params, LoopParams):
        return DisaggParams.from_loop(params)
    return params


@dataclass(frozen=True)
class PrefillSide:
    """A prefill worker's kernel times for prompts of ``isl`` tokens; arrays follow ``isl``."""

    prompts_per_pass: FloatArray
    """k, prompts one prefill pass holds [-]."""
    chunks: FloatArray
    """Iterations one prompt is prefilled in [-]."""
    alone_s: FloatArray
    """Kernel time of one prefill iteration of a lone prompt's chunk [s]."""
    pass_s: FloatArray
    """Kernel time of one prefill iteration of k prompts' chunks [s]."""
    kv_bytes: FloatArray
    """One request's KV cache after its prompt [bytes]."""


def prefill_side(prefill: Engine, *, isl: npt.ArrayLike) -> PrefillSide:
    """k prompts per pass, each in ``chunks`` iterations of isl / chunks tokens (the module docstring);
    with r attention-DP ranks, k per rank from the rank's budget and batch, r k per pass."""
    from costmodel.memory import kv_cache_bytes

    N_in = checks.counts("isl", isl, minimum=1)
    if np.any(prefill.max_concurrency(N_in).max_sequences < 1):
        raise no_cache_room(
            prefill,
            "not even one prompt of isl tokens fits in the prefill engine's KV cache; "
            "use more GPUs per prefill worker, a smaller kv_dtype, or shorter prompts",
        )
    r = float(prefill.deployment.attention_dp)
    pieces = prefill.parts
    k, chunks, lone, both = _prefill_passes(prefill, pieces, N_in)
    alone, batched = pieces.together(both)  # the passes of one kind evaluated as one
    alone, batched, lone, k, chunks = (np.reshape(x, N_in.shape) for x in (alone, batched, lone, k, chunks))
    if r > 1:
        alone = busy_rank_linear_s(prefill, lone, parts=pieces) + alone
    k = r * k
    kv_bytes = kv_cache_bytes(
        prefill.model, batch_size=1, context_len=N_in.astype(np.int64), kv_dtype=prefill.workload.kv_dtype
    )
    return PrefillSide(
        prompts_per_pass=np.asarray(k, dtype=np.float64),
        chunks=np.asarray(chunks, dtype=np.float64),
        alone_s=np.asarray(alone, dtype=np.float64),
        pass_s=np.asarray(batched, dtype=np.float64),
        kv_bytes=np.asarray(kv_bytes, dtype=np.float64),
    )


def _prefill_passes(
    prefill: Engine, pieces: _Parts, isl: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, Callable[[], tuple[FloatArray, FloatArray]]]:
    """:func:`prefill_side`'s prompts per pass and rank k, chunks per prompt and a lone chunk's paced
    tokens, and the function of ``pieces`` (``prefill.parts``) that times a lone chunk's pass (less its
    busy rank's linear work with attention DP) and a full pass; all flat (1-D) over ``isl``. A search
    notes the function's passes ahead of the side itself (:func:`note_sides`)."""
    # the passes on a 1-D array even for one isl: a pass of scalars is evaluated alone (numpy's scalar
    # arithmetic may differ from its array loops in the last bit, serving._Parts.together), one of arrays
    # with the engine's other passes of its kind (a search's decode and aggregated workers, _Parts.note)
    L = isl.reshape(-1)
    r = float(prefill.deployment.attention_dp)
    budget = float(prefill.rank_batched_tokens)
    k = np.clip(np.floor(budget / L), 1.0, max(float(prefill.max_batch_size) / r, 1.0))  # per rank
    chunks = np.ceil(L / budget)
    chunk = L / chunks
    past = (L - chunk) / 2.0
    # with pp > 1 a chunk stays in one micro-batch (_Parts.paced_tokens, as in step_time)
    lone = pieces.paced_tokens(chunk, chunk)

    def both() -> tuple[FloatArray, FloatArray]:
        # prefill_chunk_s(r x chunk): one chunk on every rank, the ranks in lockstep
        alone = pieces.prefill_chunk_s(r * chunk, past)
        if r == 1:  # busy_rank_linear_s without attention DP, a pass of the engine's
            alone = pieces.linear_s(lone) + alone
        batched = pieces.linear_s(pieces.paced_tokens(r * k * chunk, r * chunk))
        # the pass's k prompts as the separate sequences of one packed attention call (whole prompts, or
        # one chunk after its mean past: serving.prompt_pieces)
        return alone, batched + pieces.prompts_chunk_s(r * k * chunk, L)

    return k, chunks, lone, both


def note_sides(
    engine: Engine,
    *,
    isl: npt.ArrayLike,
    osl: npt.ArrayLike,
    prefill: bool = True,
    decode: bool = True,
) -> None:
    """Note on ``engine.parts`` the passes :func:`prefill_side` (where ``prefill``) and :func:`decode_side`
    (no speculation; where ``decode``) will evaluate for ``engine`` (:meth:`costmodel.serving._Parts.note`),
    without their other work: with parts shared by other copies of the engine
    (:meth:`costmodel.serving.Engine.sharing_parts`), the next evaluation on them takes these passes along,
    one concatenated pass per kind."""
    N_in = checks.counts("isl", isl, minimum=1)
    N_out = checks.counts("osl", osl, minimum=2)
    parts = engine.parts
    if prefill:
        parts.note(_prefill_passes(engine, parts, N_in)[3])
    if decode:
        parts.note(_decode_passes(engine, parts, N_in, N_out, None)[1])


MOE_LAYER_OPS = ("allgather_moe", "experts_up", "experts_act", "experts_down", "reducescatter_moe")
"""Operators of :func:`costmodel.ops.forward_ops` that serve every attention-DP rank's tokens together (the
routed experts and the gather / scatter around them); the others run on one rank's tokens."""


def busy_rank_linear_s(engine: Engine, tokens: npt.ArrayLike, *, parts: _Parts | None = None) -> FloatArray:
    """Every token's linear work, S(T, 1, 0) of :func:`costmodel.serving.step_time`, when one
    attention-DP rank holds all ``tokens`` and the others none [s] (a lone prompt on a prefill worker).

    The ranks step in lockstep, so the pass lasts as long as the busy rank: its own operators (attention
    projections, dense and shared-expert MLPs, router, head; split ``tp`` ways) take what they take in a
    balanced pass of r x T tokens (T on every rank), while the MoE layer (:data:`MOE_LAYER_OPS`, spread
    over all tp x r GPUs) serves only the T tokens that exist, as in a balanced pass of T tokens. Without
    attention DP it is ``engine.parts.linear_s(tokens)`` (on ``parts`` where given: ``engine.parts`` with
    the passes it has evaluated already).
    """
    from costmodel.estimate import _Setup, _tp_link

    T = np.asarray(tokens, dtype=np.float64)
    dep = engine.deployment
    r = dep.attention_dp
    if r == 1:
        return (parts or engine.parts).linear_s(T)
    hw = engine.hardware
    setup = _Setup(
        engine.model, hw, engine.workload, dep, engine.efficiency or hw.efficiency, "flash", _tp_link(dep, hw)
    )

    def through(batch: npt.ArrayLike) -> FloatArray:
        # batch = the replica's single-token sequences: r x T, of which the MoE layer serves T
        b = np.asarray(batch, dtype=np.float64)
        rank = setup.times(setup.ops(b, 1, 0, "all"))
        moe = setup.times(setup.ops(b / r, 1, 0, "all"))
        total: FloatArray = np.zeros(b.shape)
        for i, (name, layers) in enumerate(zip(rank.names, rank.layers, strict=True)):
            total = total + layers * (moe.time_s(i) if name in MOE_LAYER_OPS else rank.time_s(i))
        return np.asarray(total)

    return np.asarray(np.where(T > 0, setup.pipelined_steps(through, r * np.maximum(T, 1.0), 1), 0.0))


@dataclass(frozen=True)
class DecodeSide:
    """A decode worker's limit and iteration times for ``isl`` / ``osl`` requests; arrays follow
    broadcast(isl, osl), with one more axis for the batch grid."""

    slots: FloatArray
    """Most sequences one decode worker runs at once: max_batch_size, or fewer where the KV cache of
    isl + osl / 2 tokens each is full [-]."""
    batch_grid: FloatArray
    """Decode batch sizes the decode iteration was timed at [-], shape (grid,)."""
    grid_s: FloatArray
    """Kernel time of a decode iteration at each ``batch_grid`` size [s], shape (..., grid)."""
    tokens_per_iteration: float = 1.0
    """Tokens a sequence gains per iteration, E [tokens] (1 without speculative decoding)."""
    kv_copies: float = math.nan
    """Copies of one request's KV cache a decode rank receives, :func:`kv_copies` of the decode engine
    [-], which :func:`decode_side` computes once per engine, not once per pair; NaN (a side built by
    hand): the joining computes it from the decode engine it is given."""


def decode_side(
    decode: Engine, *, isl: npt.ArrayLike, osl: npt.ArrayLike, speculation: Speculation | None = None
) -> DecodeSide:
    """The decode iteration on a grid of batch sizes, and the most sequences one worker runs. With
    ``speculation`` (k drafts, draft cost c) an iteration is k draft steps of c plain decoding steps and one
    verification pass of k + 1 tokens per sequence, as the aggregated loop's decode-only iteration
    (:func:`costmodel.closed_loop.loop_parts`), yielding E tokens per sequence."""
    N_in = checks.counts("isl", isl, minimum=1)
    N_out = checks.counts("osl", osl, minimum=2)
    context = N_in + N_out / 2.0
    fits = np.asarray(decode.max_concurrency(np.ceil(context)).max_sequences, dtype=np.float64)
    slots = np.minimum(float(decode.max_batch_size), fits)
    if np.any(slots < 1):
        raise no_cache_room(
            decode,
            "not even one sequence of isl + osl / 2 tokens fits in the decode engine's KV cache; "
            "use more GPUs per decode worker, a smaller kv_dtype, or shorter requests",
        )
    parts = decode.parts
    grid, timing = _decode_passes(decode, parts, N_in, N_out, speculation)
    times = parts.together(timing)  # the verification and the drafts share their passes
    return DecodeSide(
        slots=slots,
        batch_grid=grid,
        grid_s=np.asarray(times, dtype=np.float64),
        kv_copies=kv_copies(decode),
        tokens_per_iteration=1.0 if speculation is None else speculation.tokens_per_iteration,
    )


def _decode_passes(
    decode: Engine, parts: _Parts, isl: FloatArray, osl: FloatArray, speculation: Speculation | None
) -> tuple[FloatArray, Callable[[], FloatArray]]:
    """:func:`decode_side`'s batch grid, and the function of ``parts`` (``decode.parts``) that times a
    decode iteration at each of its sizes (with ``speculation``: the verification pass and the drafts)."""
    grid = np.unique(
        np.concatenate([[0.0], np.geomspace(1.0, float(decode.max_batch_size), DECODE_GRID_POINTS)])
    )
    at = np.asarray(isl + osl / 2.0)[..., None]
    if speculation is None:
        return grid, lambda: parts.step_time(decode_batch=grid, decode_context=at)
    spec, k = speculation, speculation.draft_tokens
    return (
        grid,
        lambda: (
            parts.step_time(decode_batch=grid, decode_context=at, decode_new_tokens=k + 1.0)
            + draft_time(parts, spec, grid, at)
        ),
    )


MODEL_IDENTITY = frozenset({"name", "source", "description"})
""":class:`~costmodel.specs.ModelProfile` fields that name and cite a model rather than describe it."""


def same_model(prefill: Engine, decode: Engine) -> bool:
    """Whether both pools serve the same model, judged by its architecture (every
    :class:`~costmodel.specs.ModelProfile` field but :data:`MODEL_IDENTITY`), whatever the profiles are
    called: a renamed copy or one read from the model's config.json is the same model, another size is not."""
    if prefill.model is decode.model:
        return True
    a, b = (e.model.model_dump(exclude=set(MODEL_IDENTITY)) for e in (prefill, decode))
    return bool(a == b)


def same_device(prefill: Engine, decode: Engine) -> bool:
    """Whether both pools run on the same device, judged by its facts (:meth:`HardwareProfile.same_device`:
    vendor, kind and datasheet figures), whatever the profiles are called. Only then can the KV transfer stay
    on the scale-up link (NVLink joins GPUs of one kind); a renamed or recalibrated copy of a profile is the
    same device, a different datasheet (another model, memory size or link) is not."""
    return prefill.hardware.same_device(decode.hardware)


def _combine(
    prefill: Engine,
    decode: Engine,
    p: PrefillSide,
    d: DecodeSide,
    *,
    prefill_workers: npt.ArrayLike,
    decode_workers: npt.ArrayLike,
    concurrency: npt.ArrayLike,
    isl: FloatArray,
    osl: FloatArray,
    link: Link | None,
    refuse_idle_ranks: bool = True,
) -> DisaggParts:
    """The two sides joined by the KV transfer, at every worker count and concurrency. Fewer clients per
    decode worker than its attention-DP ranks are refused (``refuse_idle_ranks``), else refused only where
    every row has them (the others get NaN from :meth:`DisaggParts.result`)."""
    from costmodel.estimate import scale_up_domain_size
    from costmodel.roofline import link_bandwidth_bytes_per_s

    X = checks.counts("prefill_workers", prefill_workers, minimum=1)
    Y = checks.counts("decode_workers", decode_workers, minimum=1)
    C = checks.counts("concurrency", concurrency, minimum=1, whole=False)
    if link is not None:
        checks.choice("link", link, LINKS)
    X, Y, C, N_in, N_out = np.broadcast_arrays(X, Y, C, isl, osl)
    r_d = decode.deployment.attention_dp
    idle = (r_d > 1) & (r_d > C / Y)
    if np.any(idle) and (refuse_idle_ranks or np.all(idle)):
        raise CostmodelError(
            f"concurrency / decode_workers ({float(np.min(C / Y)):g}) is below the decode engine's "
            f"attention_dp ({r_d}): the model spreads each decode worker's sequences evenly over its ranks "
            "and does not model idle ranks; use at least one client per decode rank"
        )

    # KV transfer: one request's cache lives on one attention-DP rank of each pool (tp x pp GPUs), and
    # crosses min(prefill rank GPUs, decode rank GPUs) links in parallel
    g_p, g_d = prefill.gpus, decode.gpus
    gpus = X * g_p + Y * g_d
    rank_p, rank_d = (e.gpus // e.deployment.attention_dp for e in (prefill, decode))
    if link is None:
        domain = scale_up_domain_size(prefill.hardware, prefill.deployment)
        intra = same_device(prefill, decode) & (gpus <= domain)
    else:
        intra = np.full(gpus.shape, link == "intra")
    per_link = np.zeros(gpus.shape)
    for name in LINKS:
        where = intra if name == "intra" else ~intra
        if np.any(where):
            try:
                bandwidth = min(
                    link_bandwidth_bytes_per_s(prefill.hardware, name),
                    link_bandwidth_bytes_per_s(decode.hardware, name),
                )
            except ValueError as error:
                raise CostmodelError(f"link: {error}") from None
            per_link = np.where(where, bandwidth, per_link)
    # the copies of it the decode rank holds: one where its GPUs split the KV heads, tp where they
    # replicate it (the MLA latent, KV heads fewer than tp): every copy crosses a link
    copies = kv_copies(decode) if math.isnan(d.kv_copies) else d.kv_copies
    transfer = p.kv_bytes * copies / (min(rank_p, rank_d) * per_link)

    return DisaggParts(
        prefill_workers=X,
        decode_workers=Y,
        concurrency=C,
        isl=N_in,
        osl=N_out,
        prompts_per_pass=p.prompts_per_pass,
        chunks=p.chunks,
        prefill_alone_s=p.alone_s,
        prefill_pass_s=p.pass_s,
        kv_bytes=np.asarray(np.broadcast_to(p.kv_bytes, gpus.shape)),
        transfer_s=np.asarray(transfer, dtype=np.float64),
        kv_receivers=np.asarray(Y * r_d, dtype=np.float64),
        intra=np.asarray(intra, dtype=bool),
        idle_ranks=np.asarray(idle, dtype=bool),
        gpus=np.asarray(gpus, dtype=np.float64),
        decode_slots=d.slots,
        batch_grid=d.batch_grid,
        decode_grid_s=d.grid_s,
        prefill_layers=float(prefill.model.n_layers),
        prefill_mla_layers=float(prefill.model.n_layers if prefill.model.mla is not None else 0),
        tokens_per_iteration=d.tokens_per_iteration,
    )


@dataclass(frozen=True)
class PrefillWait:
    """A prompt's time at the prefill pool (:func:`prefill_wait`); arrays broadcast."""

    batch: FloatArray
    """Mean prompts per pass, n in [1, k] [-]."""
    pass_s: FloatArray
    """The pass a prompt rides, s(n) [s]."""
    utilisation: FloatArray
    """The pool's load, rho = arrival rate / capacity (full passes) [-]."""
    wait_s: FloatArray
    """Mean wait for a pass to take the prompt [s]."""

    @property
    def total_s(self) -> FloatArray:
        """Wait plus the prompt's own pass [s]."""
        return np.asarray(self.wait_s + self.pass_s)


def prefill_wait(
    alone_s: npt.ArrayLike,
    pass_s: npt.ArrayLike,
    prompts_per_pass: npt.ArrayLike,
    *,
    workers: npt.ArrayLike,
    requests_per_s: npt.ArrayLike,
    concurrency: npt.ArrayLike,
) -> PrefillWait:
    """Mean time a prompt of a closed loop spends at the prefill pool: the wait for a pass to take it, then
    its own pass.

    A worker runs passes back to back while prompts wait, each taking up to k of them (k per attention-DP
    rank x ranks), a full pass lasting s_k; the pool's capacity is mu = workers k / s_k, and at an arrival
    rate lambda its load is rho = lambda / mu. The router sends each request to one worker as it arrives
    (round robin or at random, as NVIDIA Dynamo's ``--router-mode round-robin | random`` and SGLang's
    router do, https://docs.nvidia.com/dynamo/additional-resources/tensor-rt-llm-details/dp-rank-routing),
    so each worker is its own queue at lambda / workers: the wait is a worker's, not a shared queue's.

    - **Wait**: the M/G/c queue of c = k servers of deterministic service s_k, in the Allen-Cunneen
      approximation with Sakasegawa's probability of waiting (Sakasegawa 1977, "An approximation formula
      L_q ~ alpha rho^beta / (1 - rho)", Ann. Inst. Statist. Math. 29; Allen 1990, "Probability,
      Statistics, and Queueing Theory", §6.4): W = rho^(sqrt(2 (c + 1)) - 1) / (c (1 - rho)) s_k
      (c_a^2 + c_s^2) / 2, with c_s^2 = 0 (a pass takes as long every time) and c_a^2 = 1 (prompts from
      many independent clients: Poisson in the limit, Palm-Khintchine). With one slot it is the
      Pollaczek-Khinchine mean wait of M/D/1, rho s / (2 (1 - rho)). In a closed loop an arriving prompt
      sees the other C - 1 clients only (the arrival theorem; Schweitzer's 1979 approximation scales the
      wait by (C - 1) / C: a lone client never waits). The wait grows without bound as rho nears 1; in the
      closed loop (:meth:`DisaggParts.result`) it slows the clients' cycle down, so the rate settles below
      mu and a pool near saturation holds the clients that are not decoding.
    - **The pass in progress** (k > 1): a worker takes new prompts when a pass starts (the engines schedule
      per iteration), so a prompt that arrives while a pass runs waits for its end however many slots are
      free, s(n) / 2 on average, with the probability that the worker is in a pass, min(a s(n) / n, 1)
      (passes of n prompts at a per second), as the aggregated loop's half iteration; seen by C - 1 of
      C clients as above. M/D/1's wait (k = 1) already holds it.
    - **Its pass**: below saturation a pass takes the prompts that arrived during the one before, n = a s(n)
      with a = lambda / workers, s(n) = s_1 + (n - 1) (s_k - s_1) / (k - 1) (linear between a lone prompt
      and a full pass: the linear work grows with the tokens, each prompt adds its own attention), so
      n = a (s_1 - g) / (1 - a g), g the slope, clipped to [1, k]; the prompt rides a pass of s(n).

    Parameters
    ----------
    alone_s : a lone prompt's pass, s_1 [s].
    pass_s : a full pass of k prompts, s_k [s].
    prompts_per_pass : k [-], >= 1.
    workers : prefill workers [-], >= 1.
    requests_per_s : prompts arriving at the pool, lambda [1/s].
    concurrency : clients of the loop, C [-], >= 1.
    """
    return prefill_pool(alone_s, pass_s, prompts_per_pass, workers=workers, concurrency=concurrency)(
        requests_per_s
    )


def prefill_pool(
    alone_s: npt.ArrayLike,
    pass_s: npt.ArrayLike,
    prompts_per_pass: npt.ArrayLike,
    *,
    workers: npt.ArrayLike,
    concurrency: npt.ArrayLike,
) -> Callable[[npt.ArrayLike], PrefillWait]:
    """:func:`prefill_wait` as a function of the arrival rate alone, what does not depend on it computed
    once (the closed loop bisects on the rate, :meth:`DisaggParts.result`); the same arithmetic, so the
    same figures to the bit. Arguments as :func:`prefill_wait`'s."""
    s1, sk = np.asarray(alone_s, dtype=np.float64), np.asarray(pass_s, dtype=np.float64)
    k = np.asarray(prompts_per_pass, dtype=np.float64)
    X = np.asarray(workers, dtype=np.float64)
    C = np.asarray(concurrency, dtype=np.float64)
    servers = k  # of one worker: a request is routed to a worker on arrival and waits there
    capacity = X * k / sk
    exponent = np.sqrt(2.0 * (servers + 1.0)) - 1.0  # Sakasegawa's P(wait) of M/M/c: rho ** exponent
    others = np.maximum(C - 1.0, 0.0)
    anyone, seen = others > 0.0, others / C  # a lone client never waits
    g = np.where(k > 1.0, (sk - s1) / np.maximum(k - 1.0, 1.0), 0.0)
    lone, batched = s1 - g, k > 1.0

    def at(requests_per_s: npt.ArrayLike) -> PrefillWait:
        lam = np.asarray(requests_per_s, dtype=np.float64)
        rho = np.minimum(np.maximum(lam / capacity, 0.0), 1.0)  # np.clip's values, without its wrapper
        waiting = rho**exponent
        with np.errstate(divide="ignore"):  # a full load waits forever: the closed loop never reaches it
            open_wait = waiting / (servers * (1.0 - rho)) * sk / 2.0
        wait = np.where(anyone, open_wait, 0.0) * seen
        a = lam / X
        room = 1.0 - a * g
        n = np.minimum(
            np.maximum(np.where(room > 0.0, a * lone / np.where(room > 0.0, room, 1.0), k), 1.0), k
        )
        pass_n = s1 + (n - 1.0) * g
        # a pass takes its prompts when it starts: one arriving while the worker is in a pass waits for its
        # end, s(n) / 2 on average, however many of the pass's slots are free (M/D/1's wait already holds it)
        busy = np.minimum(a * pass_n / n, 1.0)
        residual = np.where(batched, busy * pass_n / 2.0, 0.0) * seen
        return PrefillWait(
            batch=np.asarray(n), pass_s=np.asarray(pass_n), utilisation=np.asarray(rho),
            wait_s=np.asarray(wait + residual),
        )  # fmt: skip

    return at


def kv_copies(decode: Engine) -> float:
    """Copies of one request's KV cache the GPUs of one decode attention-DP rank hold together [-]: 1
    where tensor parallelism splits the KV heads, tp / min(tp, KV heads) where it replicates them (tp for
    the MLA latent, which every rank holds whole), as :func:`costmodel.memory.replica_memory` sizes a
    device. Each copy is received over a link: a prefill worker of one GPU per rank (attention DP)
    sending to a decode rank of tp GPUs sends the latent tp times."""
    from costmodel.memory import kv_bytes_per_token

    per_gpu = float(decode.replica_memory().kv_bytes_per_token)
    whole = float(kv_bytes_per_token(decode.model, kv_dtype=decode.workload.kv_dtype))
    rank_gpus = decode.gpus // decode.deployment.attention_dp
    return per_gpu * rank_gpus / whole if whole > 0 else 1.0


def kv_receive_wait(
    transfer_s: npt.ArrayLike, requests_per_s: npt.ArrayLike, *, concurrency: npt.ArrayLike
) -> FloatArray:
    """Mean wait of a request's KV transfer for the transfers ahead of it at its decode rank [s].

    A decode rank receives one request's KV cache at a time: TensorRT-LLM's generation executor "will
    reuse the same resource to process KV cache transfer for each request sequentially" unless
    ``TRTLLM_REQUEST_KV_CACHE_CONCURRENT=1`` (default 0), and a context executor sends one at a time
    (``TRTLLM_KVCACHE_SEND_MAX_CONCURRENCY_NUM``, default 1)
    (https://nvidia.github.io/TensorRT-LLM/features/disagg-serving.html, "Environment Variables"). Each
    rank is then an M/D/1 queue of service ``transfer_s`` at ``requests_per_s`` arrivals: the
    Pollaczek-Khinchine wait rho s / (2 (1 - rho)), rho = arrivals x s, seen by C - 1 of C clients (as
    :func:`prefill_wait`). The service is the copy's bytes over its links only: of TensorRT-LLM's
    per-request workflow the receiver runs the request for the blocks and their copy (steps 4-5), while
    the context's handle goes back to the user, who picks the generation executor (step 2), before it, and
    a connection is set up once per pair (step 3) (https://github.com/NVIDIA/TensorRT-LLM/blob/main/docs/source/developer-guide/kv-transfer.md,
    "Workflow"); the disaggregated loop's fixed ``kv_transfer_overhead_s`` is that latency, which holds no
    receive resource and does not enter the queue (:meth:`DisaggParts.result`). The same one-at-a-time
    receiver is assumed of the other engines' KV connectors (SGLang's, vLLM's), whose concurrency is not
    documented here.

    Parameters
    ----------
    transfer_s : one request's transfer, s [s].
    requests_per_s : transfers arriving at one decode rank [1/s].
    concurrency : clients of the loop, C [-], >= 1.
    """
    s = np.asarray(transfer_s, dtype=np.float64)
    rho = np.minimum(np.maximum(np.asarray(requests_per_s, dtype=np.float64) * s, 0.0), 1.0)
    C = np.asarray(concurrency, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # a full receiver waits forever
        open_wait = np.where(rho > 0.0, rho * s / (2.0 * (1.0 - rho)), 0.0)
    others = np.maximum(C - 1.0, 0.0)
    return np.asarray(np.where(others > 0.0, open_wait, 0.0) * (others / C))  # a lone client never waits


def decode_slot_share(
    staged: npt.ArrayLike, workers: npt.ArrayLike, slots: npt.ArrayLike, *, dispersion: float = 0.0
) -> tuple[FloatArray, FloatArray]:
    """How ``staged`` clients past the prefill pool share ``workers`` decode workers of ``slots`` each:
    (sequences decoding per worker, clients of the pool waiting for a slot) [-].

    Each request is sent to one decode worker, where it waits for one of that worker's slots, however many
    are free on the others: the pool is ``workers`` separate queues, not one. A worker's share N of the M
    clients has mean m = M / Y and variance ``dispersion`` x M (1 / Y)(1 - 1 / Y), that share of the
    binomial variance of independent uniform routing (0: an even share, the pool as one queue; 1: the
    binomial's). This is an effective parameter: the calibration sets it, and it stands for whatever
    makes the measured decode pool hold fewer sequences than C = Y S clients would fill, not for a
    router shown to spread them (:data:`BOUNDS`; docs/serving.md, "Decode routing").

    With N normal (mean m, standard deviation sigma), a worker decodes E[min(N, S)] = m - E[(N - S)+], and
    E[(N - S)+] = sigma phi(z) + (m - S) Phi(-z), z = (S - m) / sigma, wait for a slot. That excess is
    kept within the two bounds that hold for any share of mean m on [0, M]: at least (m - S)+ (Jensen) and
    at most (M - S)+ / Y, the chord of the convex (N - S)+ from N = 0 to N = M (a share never exceeds M).
    The upper bound makes M <= S wait exactly nothing, which the normal tail alone does not (0.08 clients
    at Y = 2, S = M = 1). Against the exact binomial sums at dispersion 1 (tests/test_disagg.py, scipy's
    binomial as the oracle) the sequences decoding per worker are then within 2.5 % for 2 to 16 slots and
    2 to 8 workers, and the clients waiting within 2 % of M (6 % and 3.5 % at a single slot); the error
    is largest just above M = S, where the normal's tail is a poor stand-in for a few clients. With one
    worker, or ``dispersion`` 0, it is min(m, S) and (M - Y S)+: the pooled limit, exactly.
    """
    M = np.asarray(staged, dtype=np.float64)
    Y = np.asarray(workers, dtype=np.float64)
    S = np.asarray(slots, dtype=np.float64)
    m = M / Y
    pooled = np.maximum(m - S, 0.0)
    if dispersion == 0.0:  # sd below is 0 (or NaN) everywhere, so both np.where take the pooled limit
        return np.asarray(np.minimum(m, S)), np.asarray(Y * pooled)
    from scipy.special import ndtr  # here, not at the top: keeps `import costmodel` light

    sd = np.sqrt(np.maximum(dispersion * M * (1.0 / Y) * (1.0 - 1.0 / Y), 0.0))
    safe = np.where(sd > 0.0, sd, 1.0)
    z = (S - m) / safe
    spread = safe * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) + (m - S) * ndtr(-z)
    chord = np.maximum(M - S, 0.0) / Y  # E[(N - S)+] <= m (M - S)+ / M: N <= M, (N - S)+ convex
    excess = np.where(sd > 0.0, np.minimum(np.maximum(spread, pooled), chord), pooled)
    batch = np.where(sd > 0.0, m - excess, np.minimum(m, S))
    return np.asarray(batch), np.asarray(Y * excess)


@dataclass(frozen=True)
class DisaggParts:
    """What :func:`disagg_loop` derives from the engines before its named parameters are applied. A
    calibration evaluates :meth:`result` for many parameter sets without re-timing any kernel."""

    prefill_workers: FloatArray
    decode_workers: FloatArray
    concurrency: FloatArray
    isl: FloatArray
    osl: FloatArray
    prompts_per_pass: FloatArray
    """k, prompts one prefill pass holds [-]."""
    chunks: FloatArray
    """Iterations one prompt is prefilled in [-]."""
    prefill_alone_s: FloatArray
    """Kernel time of one prefill iteration of a lone prompt's chunk [s]."""
    prefill_pass_s: FloatArray
    """Kernel time of one prefill iteration of k prompts' chunks [s]."""
    kv_bytes: FloatArray
    """One request's KV cache after its prompt [bytes]."""
    transfer_s: FloatArray
    """kv_bytes x the decode rank's copies (:func:`kv_copies`) / (links x per-link bandwidth) [s]."""
    kv_receivers: FloatArray
    """Decode attention-DP ranks of the pool, each receiving one request's KV cache at a time [-]."""
    intra: npt.NDArray[np.bool_]
    """Whether the transfer runs on the scale-up link."""
    idle_ranks: npt.NDArray[np.bool_]
    """Rows with fewer clients per decode worker than its attention-DP ranks: not modelled, NaN figures."""
    gpus: FloatArray
    decode_slots: FloatArray
    """Most sequences one decode worker runs at once [-]."""
    batch_grid: FloatArray
    """Decode batch sizes the decode iteration was timed at [-]."""
    decode_grid_s: FloatArray
    """Kernel time of a decode iteration at each ``batch_grid`` size, per row [s], shape (..., grid)."""
    prefill_layers: FloatArray | float = 0.0
    """The model's layers, each paying ``prefill_layer_overhead_s`` in a prefill pass [-]."""
    prefill_mla_layers: FloatArray | float = 0.0
    """The model's multi-head latent attention layers, each paying ``mla_prefill_layer_overhead_s`` in a
    prefill pass [-] (0 without MLA)."""
    tokens_per_iteration: FloatArray | float = 1.0
    """Tokens a decoding sequence gains per decode iteration, E [tokens]: 1, or more with speculative
    decoding (``decode_grid_s`` then holds the drafts and the verification pass)."""
    decode_host_passes: FloatArray | float = 1.0
    """Forward passes a decode iteration prepares on the host [-], >= 1, each costing
    ``overlapped_host_s`` beside the previous iteration's kernels, so the iteration lasts the longer of
    its kernels and their sum: 1 for plain decoding; a speculative worker that prepares its drafts, the
    verification and the draft's extend as passes of their own, one per pass
    (:attr:`costmodel.closed_loop.LoopParts.host_passes`, :func:`disagg_parts`)."""

    def decode_s(self, batch: FloatArray) -> FloatArray:
        """Kernel time of a decode iteration of ``batch`` sequences per row, interpolated [s]."""
        return self._decode_lookup(np.shape(batch))(batch)

    def _decode_lookup(self, shape: tuple[int, ...]) -> Callable[[FloatArray], FloatArray]:
        """:meth:`decode_s` for batches of ``shape``, the table laid out once per row (the closed loop
        looks it up at every step of its bisection)."""
        grid = self.batch_grid
        size = grid.size
        # one flat table, row r's grid point i at r size + i: a 1-D take per lookup, not a 2-D gather
        table = np.ascontiguousarray(np.broadcast_to(self.decode_grid_s, (*shape, size))).reshape(-1)
        starts = np.arange(table.size // size) * size
        widths = np.diff(grid)  # grid[i + 1] - grid[i], the same subtraction

        def at(batch: FloatArray) -> FloatArray:
            i = np.minimum(np.maximum(np.searchsorted(grid, batch, side="right") - 1, 0), size - 2)
            f = np.minimum(np.maximum((batch - grid[i]) / widths[i], 0.0), 1.0)
            flat = starts + i.reshape(-1)
            t_low = table[flat].reshape(shape)
            t_high = table[flat + 1].reshape(shape)
            return np.asarray(t_low + f * (t_high - t_low))

        return at

    def wave_prefill_s(self, alone_s: npt.ArrayLike, pass_s: npt.ArrayLike) -> FloatArray:
        """Mean time a prompt of a wave of every client spends at the prefill pool [s]: G = C / workers
        prompts reach each worker at once; with G <= k they share one pass, s(G) (linear between a lone
        prompt's ``alone_s`` and a full pass's ``pass_s``, as :func:`prefill_wait`), else the i-th is done
        after ceil(i / k) full passes, (G / k + 1) / 2 on average (continuous in G at G = k)."""
        s1, sk = np.asarray(alone_s, dtype=np.float64), np.asarray(pass_s, dtype=np.float64)
        k = self.prompts_per_pass
        per_worker = self.concurrency / self.prefill_workers
        g = np.where(k > 1.0, (sk - s1) / np.maximum(k - 1.0, 1.0), 0.0)
        one_pass = s1 + (np.clip(per_worker, 1.0, k) - 1.0) * g
        return np.asarray(np.where(per_worker <= k, one_pass, (per_worker / k + 1.0) / 2.0 * sk))

    def result(self, params: DisaggParams | LoopParams) -> DisaggLoop:
        """TTFT, TPOT and rates with ``params`` applied (a :class:`LoopParams`: no transfer overhead)."""
        params = _params(params)
        # every iteration's fixed cost outside its GPU work; the cost per layer (prefill_layers: the model's
        # layers) is GPU work, with the kernels (gpu_work_s, as the aggregated loop's step_s)
        overhead = params.step_overhead_s

        def gpu(kernels_s: npt.ArrayLike) -> FloatArray:
            return gpu_work_s(kernels_s, params.layer_step_overhead_s, self.prefill_layers)

        X, Y, C, steps = self.prefill_workers, self.decode_workers, self.concurrency, self.osl - 1.0
        k = self.prompts_per_pass
        # a prefill pass carries prompt tokens, so the host runs it outside CUDA graphs (closed_loop's
        # per-layer costs): a prompt waits for the host's work and the GPU's, one after the other; the
        # engine prepares the next pass while the GPU runs this one (overlapped scheduling), so passes
        # follow each other every max(GPU, host)
        host = (
            params.prefill_layer_overhead_s * self.prefill_layers
            + params.mla_prefill_layer_overhead_s * self.prefill_mla_layers
        )
        alone = self.chunks * (gpu(self.prefill_alone_s) + host + overhead)
        per_pass = self.chunks * (np.maximum(gpu(self.prefill_pass_s), host) + overhead)
        prefill_rate = X * k / per_pass
        transfer = self.transfer_s + params.kv_transfer_overhead_s
        fixed = params.request_overhead_s + transfer
        slots = self.decode_slots

        sizes = (C, X, Y, alone, per_pass, k, fixed, slots, steps)
        shape = np.broadcast_shapes(*(np.shape(v) for v in sizes))
        # what the bisection's steps share, computed once
        decode_at = self._decode_lookup(shape)
        prefill_at = prefill_pool(alone, per_pass, k, workers=X, concurrency=C)

        def state(staged: FloatArray) -> tuple[FloatArray, FloatArray, PrefillWait, FloatArray, FloatArray]:
            # M clients past the prefill pool (decoding or waiting for a decode slot), routed over the Y
            # decode workers (decode_slot_share): D decode per worker, the rest wait; Little's law on the
            # D sets the rate, lambda = Y D / ((osl - 1) TPOT); the other clients are before decoding; an
            # iteration yields E tokens per sequence: (osl - 1) / E iterations of a request's decode
            batch, waiting = decode_slot_share(staged, Y, slots, dispersion=params.decode_share_dispersion)
            # the host prepares the iteration's passes beside the previous iteration's kernels (an
            # overlapping engine; one that does not has its host cost in `overhead`, DisaggParams.from_loop):
            # the longer of the two counts, the aggregated loop's rule (host_bound_s)
            kernels = gpu(decode_at(np.maximum(batch, 1.0)))
            host = host_bound_s(kernels, params.overlapped_host_s, self.decode_host_passes, overlap=True)
            tpot = (host + overhead) / self.tokens_per_iteration
            lam = Y * batch / (steps * tpot)
            wait = prefill_at(lam)
            # the receive resource is held for the copy's bytes, not the hand-off's fixed latency
            receive = kv_receive_wait(self.transfer_s, lam / self.kv_receivers, concurrency=C)
            return lam, tpot, wait, lam * (fixed + wait.total_s + receive) + staged - C, waiting

        # the clients' cycle, C = lambda x before decoding + M, grows with M: bisect for it
        low, high = np.zeros(shape), np.broadcast_to(C, shape).astype(np.float64)
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (low + high)
            over = state(mid)[3] > 0.0
            high = np.where(over, mid, high)
            low = np.where(over, low, mid)
        M = 0.5 * (low + high)
        lam, tpot, wait, _, waiting = state(M)
        D = decode_slot_share(M, Y, slots, dispersion=params.decode_share_dispersion)[0]
        receive_wait = kv_receive_wait(self.transfer_s, lam / self.kv_receivers, concurrency=C)
        before = fixed + wait.total_s + receive_wait
        slot_wait = waiting / lam
        queued_ttft = before + slot_wait
        # a request of the wave waits for its decode slot whatever its prefill: the wave adds what its
        # prefill exceeds the steady wait before decoding by, the wait for a slot included
        ttft = queued_ttft + params.burst_fraction * np.maximum(
            self.wave_prefill_s(alone, per_pass) - wait.total_s - slot_wait, 0.0
        )
        full = (slots * (1.0 - 1e-9) <= D) | (waiting / lam > before)  # most of TTFT: a slot's wait
        bottleneck = np.where(full, "decode", np.where(wait.wait_s > wait.pass_s, "prefill", "clients"))
        tokens = lam * self.osl
        zero = np.where(self.idle_ranks, np.nan, np.zeros(lam.shape))  # rows not modelled: NaN
        return DisaggLoop(
            ttft_s=np.asarray(ttft + zero),
            tpot_s=np.asarray(tpot + zero),
            requests_per_s=np.asarray(lam + zero),
            output_tokens_per_s=np.asarray(tokens + zero),
            output_tokens_per_s_per_gpu=np.asarray(tokens / self.gpus + zero),
            gpus=np.asarray(self.gpus + zero),
            prefill_s=np.asarray(alone + zero),
            prefill_wait_s=np.asarray(wait.wait_s + zero),
            prefill_batch=np.asarray(wait.batch + zero),
            transfer_s=np.asarray(transfer + zero),
            kv_receive_wait_s=np.asarray(receive_wait + zero),
            decode_batch=np.asarray(D + zero),
            prefill_utilisation=np.asarray(lam / prefill_rate + zero),
            bottleneck=np.asarray(np.broadcast_to(bottleneck, lam.shape)),
        )
