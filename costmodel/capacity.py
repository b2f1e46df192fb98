"""Capacity planning: latency and throughput of a continuous-batching engine under Poisson load, and the
fewest replicas (and the batch limit) that meet latency SLOs on each candidate device, ranked by cost.

:func:`analyze` is the analytic model of one engine replica (:class:`costmodel.serving.Engine`) under
:class:`costmodel.serving.Traffic`; :func:`plan` searches replicas x batch limits with it for every
candidate. ``docs/serving.md`` derives the model, lists where it holds, and reports its errors against
the discrete-event simulator (:func:`costmodel.simulate.serve`).

The model, in one paragraph (``docs/serving.md`` numbers its equations S1-S12; the functions cite them).
Decode iterations of n running sequences take t_d(n) (the roofline, :func:`costmodel.serving.step_time`,
at the mean decoding context c, with the engine's fitted costs beyond the kernels where the
:class:`~costmodel.serving.Engine` names one, :meth:`~costmodel.serving.Engine.iteration_s`, and its
``request_overhead_s`` on every first token); each prompt adds its marginal prefill time m(P) (the
difference of the iterations with and without it) to the iterations that carry its chunks, so prompts
take a fraction u = lambda E[m(P)] of the engine's time. The number of requests in the replica is a
birth-death chain: arrivals at lambda, and with n requests min(n, B) run and leave at
min(n, B) (1 - u) / (t_d(min(n, B)) E[occupancy]) where a request occupies its slot for
E[N - 1 + chunks] iterations; above B, requests wait for a slot. This is a limited processor-sharing
queue with a state-dependent speed (for n <= B a symmetric queue, whose occupancy law does not depend on
the length distribution beyond its mean: Kelly 1979, *Reversibility and Stochastic Networks*, §3.3); an
arrival waits iff it finds n >= B (PASTA), for an exponential time corrected for the length variability
by the Allen-Cunneen factor (1 + scv) / 2 (Whitt 1993). Latencies follow per request: TTFT = wait for
a slot + the rest of the iteration in progress (length-biased) + its own prefill iteration(s); TPOT = t_d
at the batch the request runs in (itself and the others overlapping its decoding, an M/G/infinity shot
noise of their contexts) + the prompt work that lands during its decoding
(Poisson arrivals and their M/G/1 busy-period offspring, gamma-distributed), spread over its N - 1 gaps.
Quantiles come from a deterministic quadrature over the request's random variables (Latin hypercube,
fixed seed; not a simulation of the engine) with the slot wait integrated exactly. Every quadrature point
is non-decreasing in the load, so every quantile is; each carries its sampling error.

The planner (:func:`plan`) keeps each replica within :data:`VALIDATED_UTILIZATION` of saturation and the
batch limit within what the KV cache holds without preempting, where the model is validated; it finds
the fewest replicas by a search that is exact because pass/fail is monotone in the replica count; rows
outside the validated range are confirmed with :func:`costmodel.simulate.serve`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from costmodel import memo
from costmodel.closed_loop import LoopParams
from costmodel.errors import CostmodelError, UnknownNameError
from costmodel.memory import ENGINES
from costmodel.queueing import birth_death
from costmodel.serving import Engine, Lengths, Traffic

if TYPE_CHECKING:
    import pandas as pd

    from costmodel.specs import HardwareProfile, ModelProfile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

QUANTILES = (0.5, 0.9, 0.99)
"""Default latency quantiles reported [-]."""

# Strata of the prompt distribution for the prefill-cost quadrature: fine in the tail, where p99 lives.
_STRATA = np.concatenate(
    [np.linspace(0.0, 0.9, 19), [0.93, 0.96, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999, 1.0]]
)
_STRATUM_WEIGHTS = np.diff(_STRATA)
_STRATUM_MIDS = (_STRATA[:-1] + _STRATA[1:]) / 2
_POISSON_TERMS = 48  # prompts in the iteration an arrival lands in: counts 0..47 (L stays far below)
# Prompts drawn per quadrature sample for the sums of other prompts: fixed, so that a grid point's draws
# do not depend on the rest of the grid.
_DRAWS = 16


@dataclass(frozen=True)
class ServingMetrics:
    """One replica under Poisson load; arrays follow broadcast(rate_per_s, max_batch_size), latency
    quantiles add a last axis over ``quantiles``. Where ``stable`` is False every latency is ``inf``."""

    rate_per_s: FloatArray
    """Arrival rate at the replica, lambda [1/s]."""
    max_batch_size: IntArray
    """Batch limit in force, min(scheduler limit, KV-cache limit) [-]."""
    kv_max_sequences: int
    """Sequences the KV cache holds at the mean context (paged: with half a block of waste each) [-]."""
    stable: BoolArray
    """lambda < max_rate_per_s: the queue does not grow without bound."""
    utilization: FloatArray
    """lambda / max_rate_per_s [-]."""
    max_rate_per_s: FloatArray
    """Saturation arrival rate: all slots busy, B / (t_d(B) E[occupancy] + B E[m]) [1/s]."""
    output_tokens_per_s: FloatArray
    """Delivered output tokens: lambda E[N] when stable, max_rate_per_s E[N] when not [tokens/s]."""
    mean_batch_size: FloatArray
    """Mean sequences running [-]."""
    prefill_fraction: FloatArray
    """u, share of engine time spent on prompt work [-]."""
    prob_queued: FloatArray
    """P(an arrival finds every slot taken and waits) [-]."""
    decode_step_s: FloatArray
    """Decode iteration time at the batch a running request sees [s]."""
    ttft_mean_s: FloatArray
    tpot_mean_s: FloatArray
    """Mean over requests with two or more output tokens of their mean time per output token [s]."""
    e2e_mean_s: FloatArray
    quantiles: tuple[float, ...]
    ttft_s: FloatArray
    """Time-to-first-token quantiles [s], last axis over ``quantiles``."""
    tpot_s: FloatArray
    """Per-request time-per-output-token quantiles [s]."""
    e2e_s: FloatArray
    """End-to-end latency quantiles [s]."""
    ttft_error_s: FloatArray
    """Sampling error of each ``ttft_s`` quantile [s]: half the distance between the quadrature's
    quantiles at q -/+ sqrt(q (1 - q) / samples) (one binomial standard error; Latin hypercube nodes do
    no worse than independent ones)."""
    tpot_error_s: FloatArray
    """Sampling error of each ``tpot_s`` quantile [s], as ``ttft_error_s``."""
    e2e_error_s: FloatArray
    """Sampling error of each ``e2e_s`` quantile [s], as ``ttft_error_s``."""
    ttft_upper_s: FloatArray
    """The quadrature's quantile at q + sqrt(q (1 - q) / samples) [s], for each of ``quantiles``: the
    upper end of ``ttft_s``'s one-standard-error band, what :func:`plan` holds to the objective (like
    every quantile, non-decreasing in the load)."""
    tpot_upper_s: FloatArray
    """As ``ttft_upper_s``, of ``tpot_s`` [s]."""
    e2e_upper_s: FloatArray
    """As ``ttft_upper_s``, of ``e2e_s`` [s]."""
    kv_safe_sequences: int
    """Largest batch limit that is not KV-bound: the running batch's total context fits the cache with
    three standard deviations to spare (paged), so preemption is rare and the model holds [-]."""
    kv_bound: BoolArray
    """The requested batch limit exceeds ``kv_safe_sequences``: outside the model's validated range."""

    def quantile(self, metric: str, q: float) -> FloatArray:
        """``ttft``, ``tpot`` or ``e2e`` at one of ``quantiles`` [s]."""
        if q not in self.quantiles:
            raise CostmodelError(f"quantile {q} was not computed; have {self.quantiles}")
        return np.asarray(getattr(self, f"{metric}_s")[..., self.quantiles.index(q)])

    def quantile_error(self, metric: str, q: float) -> FloatArray:
        """The sampling error of :meth:`quantile` [s]."""
        if q not in self.quantiles:
            raise CostmodelError(f"quantile {q} was not computed; have {self.quantiles}")
        return np.asarray(getattr(self, f"{metric}_error_s")[..., self.quantiles.index(q)])

    def quantile_upper(self, metric: str, q: float) -> FloatArray:
        """The upper end of :meth:`quantile`'s one-standard-error band [s] (``ttft_upper_s``)."""
        if q not in self.quantiles:
            raise CostmodelError(f"quantile {q} was not computed; have {self.quantiles}")
        return np.asarray(getattr(self, f"{metric}_upper_s")[..., self.quantiles.index(q)])


@dataclass(frozen=True)
class SLO:
    """Latency objectives at one quantile: None leaves a metric free."""

    ttft_s: float | None = None
    """Time to first token [s]."""
    tpot_s: float | None = None
    """Per-request mean time per output token [s]."""
    e2e_s: float | None = None
    """End-to-end latency [s]."""
    quantile: float = 0.99
    """The quantile the objectives apply to [-] (0.99: p99)."""

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise CostmodelError(f"SLO quantile must lie in (0, 1), got {self.quantile}")
        for name in ("ttft_s", "tpot_s", "e2e_s"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise CostmodelError(f"SLO {name} must be > 0 [s], got {v!r}")


# ----------------------------------------------------------------------------------------------------
# The analytic model. Equation numbers (S1), (S2), ... refer to docs/serving.md, "The analytic model".
# ----------------------------------------------------------------------------------------------------

_KV_SIGMAS = 3.0
"""Standard deviations of the running batch's total context kept free in the KV cache for the batch
limit to count as not KV-bound [-] (normal approximation of a sum of B contexts: overflow in about 0.1 %
of the time)."""


def _batch_grid(max_batch_size: int) -> FloatArray:
    """Batch sizes at which the prompt costs are tabulated: powers of two below the engine's maximum, and
    that maximum. The same points for every engine, so a batch limit B on an engine built for more
    sequences interpolates the tables of the engine built for B (exactly when B is a power of two)."""
    powers = 2.0 ** np.arange(int(math.log2(max_batch_size)) + 1)
    return np.unique(np.concatenate([powers[powers < max_batch_size], [float(max_batch_size)]]))


@dataclass(frozen=True)
class _Prepared:
    """Everything :func:`analyze` needs that does not depend on the load: one engine, one traffic mix."""

    engine: Engine
    traffic: Traffic
    context: float  # mean past tokens of a decoding sequence, c [tokens]
    kv_sequences: int  # sequences the KV cache holds at the mean context [-]
    kv_safe_sequences: int  # largest batch whose total context fits with _KV_SIGMAS to spare [-]
    decode_s: FloatArray  # t_d(n), n = 1..B_max [s]
    n_grid: FloatArray  # batch sizes at which prompt costs are tabulated [-]
    prompt_weights: FloatArray  # probability of each prompt stratum [-]
    prompt_tokens: FloatArray  # the prompt length at each stratum's midpoint [tokens] [strata]
    context_grid: FloatArray  # contexts 0..max_len - 1 [tokens] [65]
    attention_s: FloatArray  # one sequence's decode attention over each of them, a(x) (S10) [s] [65]
    first_s: FloatArray  # m1(P, n): marginal time of a prompt alone in an iteration [n_grid, strata] [s]
    extra_s: FloatArray  # m2(P, n): marginal time of a prompt joining another one [n_grid, strata] [s]
    chunks: FloatArray  # iterations a prompt's prefill spans [n_grid, strata] [-]
    # the same three averaged over the strata (all that the mean-value equations need) [n_grid]
    first_mean_s: FloatArray
    extra_mean_s: FloatArray
    chunks_mean: FloatArray
    # saturation at the batch limits 1..B_max (it depends on the limit alone): all slots busy, arrivals
    # at the rate they leave [1/s], and E[m] at that rate [s]
    max_rate_per_s: FloatArray
    saturated_prompt_s: FloatArray
    companions: _Companions  # the other sequences decoding beside a request (S10b)


@dataclass(frozen=True)
class _Companions:
    """The other requests decoding beside a request (S10b), per candidate: they depend on the traffic,
    not on the engine or the load. Windows and lengths in decode iterations."""

    context_tokens: float  # c, the mean past context of a decoding sequence (S1) [tokens]
    mean_context_tokens: float  # E[x L]: a request's mean context x its decode iterations [tokens]
    mean_iterations: float  # E[L], L = N - 1 decode iterations of a request [-]
    window_grid: FloatArray  # windows w at which the second moment is tabulated [iterations] [33]
    square_tokens2: FloatArray  # E[x^2 (m^2 M - m^3 / 3)] / w^2, m = min(w, L), M = max(w, L) [tokens^2]


def _companions(traffic: Traffic, max_len: int, context: float) -> _Companions:
    """(S10b) The other requests in a request's batch, as a shot noise in context tokens.

    Other requests arrive at lambda and each decodes for L = N - 1 iterations holding x = P + L / 2 past
    tokens on average (capped at the context window). One that arrives s iterations before a window of
    w iterations starts, s in (-L, w), shares min(w, L, s + L, w - s) of them. Below the batch limit the
    running requests form an M/G/infinity system, so by Campbell's theorem the others' context per
    iteration of the window, X = sum_j x_j overlap_j / w, has mean lambda E[I] E[x L] (Little: the mean
    batch times the mean context) and variance lambda E[I] E[x^2 int overlap^2 ds] / w^2, where
    int overlap^2 ds = m^2 M - m^3 / 3 (m = min(w, L), M = max(w, L)): a snapshot's Poisson variance for
    a short window, falling as 1 / w once the window outlasts the others (Daley & Vere-Jones 2003,
    *An Introduction to the Theory of Point Processes* I, §6.2, Campbell's theorem)."""
    N = traffic.output
    L = N.values.astype(np.float64) - 1.0  # [l]
    P = traffic.prompt.quantile(_STRATUM_MIDS).astype(np.float64)  # [q]
    x = np.minimum(P[:, None] + L[None, :] / 2.0, max_len - 1.0)  # [q, l]
    x1, x2 = _STRATUM_WEIGHTS @ x, _STRATUM_WEIGHTS @ x**2  # E[x | L], E[x^2 | L] [l]
    w = np.geomspace(1.0, max(float(max_len), 2.0), 33)  # [w]
    # E[x^2 (m^2 M - m^3 / 3)] = E[x^2 (L^2 w - L^3 / 3); L <= w] + E[x^2 (w^2 L - w^3 / 3); L > w]: the
    # moments of L below and above each window, from cumulative sums over the sorted lengths
    order = np.argsort(L, kind="stable")
    Ls, weight = L[order], (N.probs * x2)[order]
    below = np.searchsorted(Ls, w, side="right")  # lengths L <= w

    def up_to(v: FloatArray) -> FloatArray:  # sum of v over the lengths L <= w, for each window
        return np.concatenate([[0.0], np.cumsum(v)])[below]

    def above(v: FloatArray) -> FloatArray:  # sum of v over the lengths L > w, for each window
        return np.concatenate([np.cumsum(v[::-1])[::-1], [0.0]])[below]

    square = (
        w * up_to(weight * Ls**2)
        - up_to(weight * Ls**2 * Ls) / 3.0
        + w**2 * above(weight * Ls)
        - w**2 * w * above(weight) / 3.0
    ) / w**2
    return _Companions(
        context_tokens=max(context, 1.0),
        mean_context_tokens=float(N.probs @ (x1 * L)),
        mean_iterations=float(N.probs @ L),
        window_grid=w,
        square_tokens2=np.asarray(square),
    )


def _context_moments(traffic: Traffic, max_len: int) -> tuple[float, float]:
    """Mean and variance of the past tokens of a decoding sequence seen at a random time [tokens],
    [tokens^2] (S1). A request decodes N - 1 steps, so it is seen with probability proportional to N - 1
    (length bias), at step j uniform on 1..N - 1, with P + j - 1 past tokens."""
    P, N = traffic.prompt, traffic.output
    n = N.values.astype(np.float64)
    steps = N.probs @ (n - 1.0)
    if steps <= 0:  # every request has one output token: nothing decodes
        return min(P.mean, float(max_len)), P.moment(2) - P.mean**2
    first = N.probs @ ((n - 1.0) * (n - 2.0) / 2.0) / steps  # E[j - 1]
    second = N.probs @ ((n - 2.0) * (n - 1.0) * (2.0 * n - 3.0) / 6.0) / steps  # E[(j - 1)^2]
    mean = min(P.mean + float(first), float(max_len))
    return float(mean), float((P.moment(2) - P.mean**2) + (second - first**2))


def _kv_limits(engine: Engine, context: float, context_var: float) -> tuple[int, int]:
    """(sequences the cache holds at the mean context, the largest batch not KV-bound) [-] (S4).

    Paged: a sequence holds its context, the new token and on average half a block of waste; a batch of
    B is not KV-bound when B (c + 1 + (block - 1) / 2) + z sqrt(B) sigma_c fits in the cache less vLLM's
    1 % free-block watermark (z = :data:`_KV_SIGMAS`). Contiguous: max_len slots each, no overflow
    possible. SSM: a fixed state per sequence."""
    capacity = engine.kv_capacity_tokens()
    if engine.model.ssm is not None:
        return capacity, capacity
    if engine.allocation == "contiguous":
        count = capacity // engine.max_len
        return count, count
    held = context + 1.0 + (engine.block_size - 1) / 2.0
    room = 0.99 * capacity
    z_sigma = _KV_SIGMAS * math.sqrt(max(context_var, 0.0))
    root = (-z_sigma + math.sqrt(z_sigma**2 + 4.0 * held * room)) / (2.0 * held)  # sqrt(B) at equality
    return int(capacity // held), int(root**2)


@dataclass(frozen=True)
class _PassInputs:
    """What :func:`_prepare` times of one engine and traffic, and the shapes it reads them back in: the
    token counts of every case side by side (:meth:`costmodel.serving._Parts.terms_s`'s ``arguments``)."""

    n: FloatArray  # batch sizes 1..B_max [-]
    n_grid: FloatArray  # the prompt tables' batch grid [-]
    points: FloatArray  # prompt lengths at the strata's midpoints [tokens]
    size: FloatArray  # chunk j of each prompt beside n decodes [n, q, j] [tokens]
    chunks: FloatArray  # iterations a prompt's prefill spans [n, q] [-]
    joins: BoolArray  # a prompt joins an iteration that carries a mean prompt [n, q]
    other: float  # that mean prompt [tokens]
    sets: list[FloatArray]  # the linear term's token counts, by case
    context_grid: FloatArray  # contexts of a(x) [tokens]
    timed: bool  # the engine has costs beyond the kernels
    arguments: tuple[FloatArray, ...]


def _pass_inputs(engine: Engine, traffic: Traffic, context: float) -> _PassInputs:
    """The passes :func:`_prepare` times for ``engine`` and ``traffic`` (``context``: the mean past tokens of
    a decoding sequence), as one :meth:`costmodel.serving._Parts.terms_s` call's arguments."""
    P = traffic.prompt
    B_max = engine.max_batch_size
    n_grid = _batch_grid(B_max)
    points = P.quantile(_STRATUM_MIDS).astype(np.float64)
    # chunk j of ceil(P / budget) at past j x budget, the budget being what n decodes leave
    nn = n_grid[:, None]  # [n, 1]
    budget = np.maximum(engine.max_batched_tokens - nn, 1.0)
    J = np.ceil(points[None, :] / budget)  # [n, q]
    j = np.arange(int(J.max()), dtype=np.float64)[None, None, :]  # [1, 1, j]
    size = np.clip(points[None, :, None] - j * budget[..., None], 0.0, budget[..., None])  # [n, q, j]
    past = np.broadcast_to(j * budget[..., None], size.shape)
    # joining an iteration that already carries a mean prompt: no weight read left to share
    other = min(P.mean, float(engine.max_batched_tokens))
    joins = (J == 1) & (points[None, :] + other <= budget)
    parts = engine.parts
    n = np.arange(1, B_max + 1, dtype=np.float64)
    # one roofline evaluation per term, the token counts of every case side by side; with pp > 1 a chunk
    # stays in one micro-batch, so each mixed iteration is paced as step_time paces it
    paced = parts.paced_tokens
    sets = [
        n,
        paced(nn[..., None] + size, size),
        paced(nn + other + points[None, :], np.maximum(other, points[None, :])),
        paced(nn + other, other),
    ]
    # t_d(n) at the mean context, and a(x) for one sequence on a grid of contexts, in one pass; the three
    # terms' S(T, 1, 0) passes evaluated together
    context_grid = np.linspace(0.0, max(engine.max_len - 1.0, 1.0), 65)
    # the engine's costs beyond the kernels (Engine.iteration_s), where it has any: then the mean prompt
    # an iteration already carries is timed too (its chunk bracket, the last prefill term), as the base a
    # joining prompt adds to
    timed = engine.iteration_params() is not None
    others = np.array([other]) if timed else np.zeros(0)
    arguments = (
        np.concatenate([x.ravel() for x in sets]),
        np.concatenate([n, np.ones(context_grid.size)]),
        np.concatenate([np.full(n.size, context), context_grid]),
        np.concatenate([size.ravel(), points, others]),
        np.concatenate([past.ravel(), np.zeros(points.size + others.size)]),
    )
    return _PassInputs(n, n_grid, points, size, J, joins, other, sets, context_grid, timed, arguments)


def _note_passes(engine: Engine, traffic: Traffic, context: float) -> None:
    """Ask for :func:`_prepare`'s kernel passes of ``engine`` (``context`` as there), so that they are
    evaluated with the next ones its :meth:`Engine.parts` evaluates (``_Parts.note``)."""
    engine.parts.terms_s(*_pass_inputs(engine, traffic, context).arguments)


def _prepare(engine: Engine, traffic: Traffic, companions: dict[int, _Companions] | None = None) -> _Prepared:
    """What :func:`analyze` needs of one engine and traffic, independent of the load. ``companions``: S10b's
    tables by context window, shared by the candidates of one plan (they depend on the traffic and the
    window alone)."""
    en = traffic.output.mean
    context, context_var = _context_moments(traffic, engine.max_len)
    kv_sequences, kv_safe = _kv_limits(engine, context, context_var)
    timing = _pass_inputs(engine, traffic, context)
    n, n_grid, points, size, J = timing.n, timing.n_grid, timing.points, timing.size, timing.chunks
    joins, other, sets, context_grid, timed = (
        timing.joins,
        timing.other,
        timing.sets,
        timing.context_grid,
        timing.timed,
    )
    nn, weights = n_grid[:, None], _STRATUM_WEIGHTS
    # the passes of one kind as one evaluation (with those noted for this engine's other launches)
    parts = engine.parts
    linear, attention, attn = parts.together(lambda: parts.terms_s(*timing.arguments))
    lin_n, lin_chunk, lin_join, lin_base = np.split(linear, np.cumsum([x.size for x in sets])[:-1])
    attn_chunk, attn_whole = attn[: size.size].reshape(size.shape), attn[size.size : size.size + points.size]
    lin_grid = lin_n[n_grid.astype(np.int64) - 1][:, None]  # S(n, 1, 0) on the grid
    chunk_s = lin_chunk.reshape(size.shape) - lin_grid[..., None] + attn_chunk  # what chunk j adds [n, q, j]
    join_s = lin_join.reshape(joins.shape) - lin_base.reshape(nn.shape) + attn_whole  # a joining prompt's
    if timed:  # the same marginals, of iterations with the engine's costs: t(kernels + x) - t(kernels)
        kernels_n = lin_n + attention[: n.size]  # decode-only iterations of n = 1..B [s]
        decode_full = engine.iteration_s(kernels_n, tokens=n, prompt=False)
        kernels_grid = kernels_n[n_grid.astype(np.int64) - 1][:, None]  # [n, 1]
        alone = engine.iteration_s(kernels_grid, tokens=nn, prompt=False)
        with_chunk = engine.iteration_s(
            kernels_grid[..., None] + chunk_s, tokens=nn[..., None] + size, prompt=True
        )
        chunk_s = with_chunk - alone[..., None]
        base = kernels_grid + lin_base.reshape(nn.shape) - lin_grid + attn[-1]  # decodes and a mean prompt
        join_s = engine.iteration_s(base + join_s, tokens=nn + other + points[None, :], prompt=True) - (
            engine.iteration_s(base, tokens=nn + other, prompt=True)
        )
    # running maximum over the batch: the kernel models' decode time can dip where a larger batch stops
    # splitting its attention (split-K) or fills a tile; the queueing model needs t_d non-decreasing in n
    decode_s = np.maximum.accumulate(decode_full if timed else lin_n + attention[: n.size])
    first = np.where(size > 0, chunk_s, 0.0).sum(axis=-1)
    extra = np.where(joins, join_s, first)
    # kernel times step with the token count (GEMM tiles and waves), so a prompt's cost can dip as decodes
    # are added; like t_d, the costs take their running maximum over the batch grid, so that the cost at
    # the batch limit bounds the cost at any mean batch below it: the saturation rate stays one the chain
    # cannot exceed (S7) and latencies never fall as the load (the mean batch) rises
    first, extra = np.maximum.accumulate(first, axis=0), np.maximum.accumulate(extra, axis=0)
    first_mean, extra_mean, chunks_mean = first @ weights, extra @ weights, J @ weights
    # saturation at every batch limit n (S7): n / (t_d(n) E[occupancy] + n E[m]), E[m] taken at that rate
    E1, E2 = np.interp(n, n_grid, first_mean), np.interp(n, n_grid, extra_mean)
    occupancy = en - 1.0 + np.interp(n, n_grid, chunks_mean)
    max_rate, prompt_s = np.ones(n.shape), E1
    for _ in range(4):
        prompt_s = _mean_prompt_s(np.maximum(max_rate, 1e-9), decode_s, E1, E2)
        max_rate = n / (decode_s * occupancy + n * prompt_s)
    cache = {} if companions is None else companions
    shared = cache.get(engine.max_len) or _companions(traffic, engine.max_len, context)
    cache[engine.max_len] = shared
    return _Prepared(
        engine,
        traffic,
        context,
        kv_sequences,
        kv_safe,
        decode_s,
        n_grid,
        prompt_weights=weights,
        prompt_tokens=points,
        context_grid=context_grid,
        attention_s=attention[n.size :],
        first_s=first,
        extra_s=extra,
        chunks=J,
        first_mean_s=first_mean,
        extra_mean_s=extra_mean,
        chunks_mean=chunks_mean,
        max_rate_per_s=max_rate,
        saturated_prompt_s=prompt_s,
        companions=shared,
    )


def _prepared(
    engine: Engine, traffic: Traffic, companions: dict[int, _Companions] | None = None
) -> _Prepared:
    """:func:`_prepare`, computed once per engine and length distributions (:mod:`costmodel.memo`, the
    device profile its owner): a dashboard's load curve (:func:`analyze`) of the engine its plan
    (:func:`plan`) has prepared, rebuilt with the same values, reads the plan's tables instead of timing
    every iteration again. The key holds every field of the engine (the model by identity, the prepared
    record keeping it alive) and the exact support and probabilities of both length distributions; the
    rate is not in it (nothing prepared depends on it) and the record returned carries the caller's
    engine and traffic. Its arrays are read-only."""

    def made() -> _Prepared:
        prep = _prepare(engine, traffic, companions)
        if engine.shared_parts is not None:  # kept without a plan's shared kernel passes (_plan_one): the
            # tables are all a later caller reads, and the passes would outlive the plan in the memo
            prep = dataclasses.replace(prep, engine=engine.replace(shared_parts=None))
        for f in dataclasses.fields(prep):
            value = getattr(prep, f.name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        return prep

    prep = memo.remember(engine.hardware, _prepared_key(engine, traffic), made)
    if prep.engine is engine and prep.traffic is traffic:
        return prep
    return dataclasses.replace(prep, engine=engine, traffic=traffic)


def _prepared_key(engine: Engine, traffic: Traffic) -> tuple[Any, ...]:
    """:func:`_prepared`'s memo key (its owner the engine's device profile): every field of the engine
    the prepared tables depend on, and the exact support and probabilities of both length distributions."""

    def lengths(d: Lengths) -> tuple[str, str, bytes, bytes]:
        return d.kind, d.values.dtype.str + d.probs.dtype.str, d.values.tobytes(), d.probs.tobytes()

    e, w = engine, engine.workload
    return (
        "capacity._prepare",
        id(e.model),
        (w.batch_size, w.prompt_len, w.output_len, w.weight_dtype, w.activation_dtype, w.kv_dtype),
        (w.sparsity, w.expert_dtype, w.expert_activation_dtype, tuple(sorted(w.component_formats.items()))),
        e.deployment.model_dump_json(),
        None if e.efficiency is None else e.efficiency.model_dump_json(),
        (e.max_batch_size, e.max_batched_tokens, e.allocation, e.block_size, e.max_len, e.usable_fraction),
        (e.engine_name, e.iteration_params(), e.graph_tokens_in_force),  # the costs beyond the kernels
        lengths(traffic.prompt),
        lengths(traffic.output),
    )


def _mean_prompt_s(
    rate: FloatArray, decode_s: FloatArray, first_s: FloatArray, extra_s: FloatArray
) -> FloatArray:
    """Mean marginal time of a prompt, E[m] [s], at arrival rate lambda [1/s], given the decode iteration
    t_d [s] and the mean costs of a prompt alone in its iteration, E[m1], and joining another, E[m2] [s]
    (arrays broadcast). A fraction (1 - exp(-L)) / L of prompts come first in their iteration,
    L = lambda E[I] the prompts arriving during one iteration of mean length E[I] = t_d / (1 - lambda E[m])
    (S3); E[I] and E[m] depend on each other: four rounds of the fixed point."""
    mean_s = first_s
    for _ in range(4):
        L = rate * decode_s / np.maximum(1.0 - rate * mean_s, 1e-3)
        f1 = np.where(L > 1e-9, -np.expm1(-L) / np.maximum(L, 1e-9), 1.0)
        mean_s = f1 * first_s + (1.0 - f1) * extra_s
    return np.asarray(mean_s)


def _interp_rows(x: FloatArray, grid: FloatArray, table: FloatArray) -> FloatArray:
    """table[g, q] interpolated linearly along g at x [...] -> [..., q]."""
    if grid.size == 1:
        return np.asarray(np.broadcast_to(table[0], (*np.shape(x), table.shape[1])))
    i = np.clip(np.searchsorted(grid, x) - 1, 0, grid.size - 2)
    f = np.clip((x - grid[i]) / (grid[i + 1] - grid[i]), 0.0, 1.0)[..., None]
    return np.asarray(table[i] + f * (table[i + 1] - table[i]))


def analyze(
    engine: Engine,
    traffic: Traffic,
    *,
    rate_per_s: npt.ArrayLike | None = None,
    max_batch_size: npt.ArrayLike | None = None,
    quantiles: Sequence[float] = QUANTILES,
    samples: int = 4096,
    seed: int = 0,
) -> ServingMetrics:
    """Throughput and latency distribution of one engine replica under Poisson arrivals.

    Parameters
    ----------
    engine : Engine
    traffic : Traffic
        Arrival rate and length distributions (prompt and output lengths independent).
    rate_per_s : float or array, optional
        Arrival rates to evaluate [1/s]; default ``traffic.rate_per_s``.
    max_batch_size : int or array, optional
        Scheduler batch limits to evaluate (<= ``engine.max_batch_size``) [-]; broadcast with the rates.
        Each is timed on its own launch (``max_num_seqs`` = the limit: vLLM's CUDA-graph ceiling
        min(2 b, 512, budget) follows it) unless ``engine.graph_tokens`` pins the ceiling.
    quantiles : sequence of float
        Latency quantiles to report [-].
    samples : int
        Points of the quadrature of the latency distributions [-] (Latin hypercube; the wait for a slot
        is integrated exactly). ``*_error_s`` gives the resulting sampling error of every quantile.
    seed : int
        Seed of that quadrature (fixed: the result is a deterministic function of the inputs).

    The model and its sources are in the module docstring; ``docs/serving.md`` derives it (equations
    S1-S12) and gives its validated range and its error against :func:`costmodel.simulate.serve`. It
    holds while the load is at most :data:`VALIDATED_UTILIZATION` of ``max_rate_per_s`` and the batch is
    not KV-bound (``kv_bound`` False: no preemption). Every latency quantile is non-decreasing in the
    rate (each quadrature point is, and the wait's law grows with the load). Above saturation every
    latency is ``inf`` and ``stable`` is False.
    """
    prep = _prepared(engine, traffic)
    nodes = _nodes(traffic, samples, seed)
    m = _evaluate(prep, nodes, rate_per_s, max_batch_size, tuple(quantiles))
    if max_batch_size is None:
        return m
    # each limit with its own launch (a limit is deployed as max_num_seqs): where its CUDA-graph ceiling
    # (vLLM's min(2 b, 512, budget)) differs from the engine's, those points are timed on that launch
    requested = np.broadcast_to(np.asarray(max_batch_size, dtype=np.int64), m.rate_per_s.shape)
    ceilings = {
        int(b): engine.replace(max_batch_size=int(b)).graph_tokens_in_force for b in np.unique(requested)
    }
    fields = {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
    for graphs in set(ceilings.values()) - {engine.graph_tokens_in_force}:
        group = [b for b, g in ceilings.items() if g == graphs]
        at = np.isin(requested, group)
        launch = engine.replace(max_batch_size=max(group), graph_tokens=graphs)  # as plan launches them
        own = _evaluate(
            _prepared(launch, traffic),
            nodes,
            rate_per_s,
            np.minimum(requested, launch.max_batch_size),
            tuple(quantiles),
        )
        for name, value in fields.items():
            if isinstance(value, np.ndarray) and value.shape[: at.ndim] == at.shape:
                mask = at.reshape(at.shape + (1,) * (value.ndim - at.ndim))
                fields[name] = np.where(mask, getattr(own, name), value)
    return dataclasses.replace(m, **fields)


@dataclass(frozen=True)
class _Nodes:
    """The random numbers of the latency quadrature, one column per sample: they depend on the traffic's
    output lengths, the sample count and the seed, not on the engine or the load (common random numbers
    across a grid, and across the candidates of a plan). Each uniform row is a Latin hypercube column:
    one point in each of ``samples`` equal slices of (0, 1)."""

    uniform: FloatArray  # U(0, 1) [12, samples]
    own_index: IntArray  # the request's own prompt: lower stratum of the interpolation [samples]
    own_fraction: FloatArray  # and the fraction towards the next stratum [samples]
    output_len: FloatArray  # its output length N [tokens] [samples]
    # other prompts' strata: its first two iterations, its decoding [3, _DRAWS, samples] (count-major)
    draws_by_count: IntArray
    biased: IntArray  # stratum of the prompt in the iteration it arrives during, token-biased [samples]
    normal_companions: FloatArray  # of uniform[2], for the count of others sharing its decoding [samples]
    normal_attention: FloatArray  # of uniform[7], for their attention given the count [samples]
    normal_count: FloatArray  # of uniform[5], for the count of prompts in the decode window [samples]
    normal_others: FloatArray  # of uniform[9], for the count of prompts joining its own iteration [samples]
    normal_offspring: FloatArray  # of uniform[11], for the work of prompts arriving meanwhile [samples]
    poisson_count: _PoissonTable  # _poisson_thresholds of uniform[5]
    poisson_others: _PoissonTable  # and of uniform[9]
    poisson_companions: _PoissonTable  # and of uniform[2]


def _nodes(traffic: Traffic, samples: int, seed: int) -> _Nodes:
    """The quadrature nodes for ``samples`` points drawn with ``seed``."""
    from scipy.special import ndtri  # as Lengths.lognormal: scipy.special only where it is needed

    if not (isinstance(samples, int | np.integer) and samples >= 16):
        raise CostmodelError(f"samples must be an integer >= 16, got {samples!r}")
    U = _uniforms(samples, seed)
    rng = np.random.default_rng([seed, 1])
    cum_w = np.cumsum(_STRATUM_WEIGHTS)
    last = _STRATUM_WEIGHTS.size - 1
    draws = np.minimum(np.searchsorted(cum_w, rng.random((3, samples, _DRAWS)), side="right"), last)
    # the prompt in progress when a request arrives is one picked with probability proportional to its
    # prefill work, taken as its token count (the inspection paradox)
    tokens = traffic.prompt.quantile(_STRATUM_MIDS).astype(np.float64) * _STRATUM_WEIGHTS
    biased = np.minimum(np.searchsorted(np.cumsum(tokens) / tokens.sum(), U[10], side="right"), last)
    own = np.clip(np.searchsorted(_STRATUM_MIDS, U[0]) - 1, 0, _STRATUM_MIDS.size - 2)
    fraction = np.clip((U[0] - _STRATUM_MIDS[own]) / (_STRATUM_MIDS[own + 1] - _STRATUM_MIDS[own]), 0.0, 1.0)
    normal = ndtri(np.clip(U[[2, 7, 5, 9, 11]], 1e-12, 1 - 1e-12))
    output = traffic.output.quantile(U[1]).astype(np.float64)
    walks = [_poisson_thresholds(samples, seed, row) for row in (5, 9, 2)]
    draws_by_count = np.ascontiguousarray(draws.transpose(0, 2, 1))
    return _Nodes(U, own, fraction, output, draws_by_count, biased, *normal, *walks)


@functools.lru_cache(maxsize=8)
def _uniforms(samples: int, seed: int) -> FloatArray:
    """The quadrature's uniforms [12, samples]: each row a Latin hypercube column, one point in each of
    ``samples`` equal slices of (0, 1), in a random order (cached, read-only)."""
    rng = np.random.default_rng(seed)
    U = (rng.permuted(np.tile(np.arange(samples), (12, 1)), axis=1) + rng.random((12, samples))) / samples
    U.setflags(write=False)
    return U


def _count_below(cdf: FloatArray, u: FloatArray) -> IntArray:
    """#{k: cdf[..., k] < u_s} for each u_s, i.e. the inverse CDF at u, per row of ``cdf`` [..., k] (a
    non-decreasing table in [0, 1]) -> [..., S]: one searchsorted over the rows laid end to end."""
    rows = int(np.prod(cdf.shape[:-1]))
    offset = 2.0 * np.arange(rows, dtype=np.float64)[:, None]  # rows apart: values stay in [0, 1]
    flat = (np.minimum(cdf.reshape(rows, -1), 1.0) + offset).ravel()
    at = np.searchsorted(flat, (u[None, :] + offset).ravel(), side="left").reshape(rows, u.size)
    return np.asarray(at - cdf.shape[-1] * np.arange(rows)[:, None], dtype=np.int64).reshape(
        (*cdf.shape[:-1], u.size)
    )


def _ex(a: npt.ArrayLike) -> FloatArray:
    """[...] -> [..., 1], to broadcast a grid value against samples or states."""
    return np.asarray(a, dtype=np.float64)[..., None]


_EXACT_POISSON = 10.0  # means up to which _poisson_ppf is the exact inverse CDF [-]
_POISSON_COUNTS = 40  # counts it tabulates: P(N > 40) < 1e-11 at a mean of 10
_POISSON_CELLS_PER_UNIT = 8  # cells of its lookup per unit of mean: a power of two, so mean x 8 is exact


@dataclass(frozen=True)
class _PoissonTable:
    """:func:`_poisson_thresholds` of one row of the quadrature's uniforms, with what every inverse CDF
    at those uniforms reuses (read-only)."""

    thresholds: FloatArray  # m_k(u), k = 1.._POISSON_COUNTS, then per_cell x inf [S, k + per_cell]
    at_end: FloatArray  # the exact count at the mean _EXACT_POISSON [S]
    below_cell: IntArray  # #{k: m_k(u) < c / 8} for the cells c = 0..79 of [0, _EXACT_POISSON) [S, c]
    per_cell: int  # the most thresholds of one sample inside one cell [-]


def _poisson_ppf(mean: FloatArray, table: _PoissonTable, z: FloatArray) -> FloatArray:
    """Inverse CDF of Poisson(mean) [..., S] at the quadrature's uniforms -> counts [..., S],
    non-decreasing in the mean at a fixed uniform (common random numbers).

    Exact up to a mean of :data:`_EXACT_POISSON`: the count at a uniform u is the number of k >= 1 with
    P(N <= k - 1) < u, i.e. with mean > m_k(u), the thresholds [S, k] of :func:`_poisson_thresholds`.
    Beyond, the count there plus the growth of the Cornish-Fisher quantile
    mean + z sqrt(mean) + (z^2 - 1) / 6 at the uniform's normal score z [S] (Johnson, Kemp & Kotz 2005,
    *Univariate Discrete Distributions* §4.5), increasing in the mean for z^2 < 4 x 10: continuous
    there, not integral."""
    mean, z = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), z)
    # below the exact range's end: the thresholds under the mean's cell [c / 8, (c + 1) / 8) are counted
    # in the table, and those inside it (at most per_cell, compared one by one: exact); at and beyond
    # it, the count there is a property of the uniform alone
    below = mean < _EXACT_POISSON
    S, cells = table.below_cell.shape
    cell = (np.where(below, mean, 0.0) * _POISSON_CELLS_PER_UNIT).astype(np.int64)  # floor: mean >= 0
    start = table.below_cell.reshape(-1).take(np.clip(cell, 0, cells - 1) + np.arange(S) * cells)
    at = start + np.arange(S) * table.thresholds.shape[1]  # the first threshold in the cell, flat
    flat = table.thresholds.reshape(-1)
    count = start.astype(np.float64)
    for j in range(table.per_cell):
        count += flat.take(at + j) < mean
    growth = (
        mean - _EXACT_POISSON + z * (np.sqrt(np.maximum(mean, _EXACT_POISSON)) - math.sqrt(_EXACT_POISSON))
    )
    return np.asarray(
        np.where(below, count, table.at_end) + np.where(mean > _EXACT_POISSON, np.maximum(growth, 0.0), 0.0)
    )


@functools.lru_cache(maxsize=8)
def _poisson_thresholds(samples: int, seed: int, row: int) -> _PoissonTable:
    """m_k(u) = Q^-1(k, u), k = 1.._POISSON_COUNTS, for the uniforms of row ``row`` of the quadrature
    with ``samples`` points and ``seed`` [S, k]: Poisson(m) has P(N <= k - 1) = Q(k, m), the regularised
    upper incomplete gamma, so P(N <= k - 1) < u iff m > m_k(u). Returned with the count at
    :data:`_EXACT_POISSON` of each sample and the counts below each cell of :func:`_poisson_ppf`'s lookup
    (:class:`_PoissonTable`). Cached: it depends on the uniforms alone (a deterministic function of its
    arguments)."""
    from scipy.special import gammainccinv

    u = _uniforms(samples, seed)[row]
    k = np.arange(1, _POISSON_COUNTS + 1, dtype=np.float64)[:, None]
    table = np.ascontiguousarray(gammainccinv(k, u[None, :]).T)  # [S, k]
    at_end = np.count_nonzero(table < _EXACT_POISSON, axis=-1).astype(np.float64)
    cells = int(_EXACT_POISSON) * _POISSON_CELLS_PER_UNIT
    edges = np.arange(cells + 1) / _POISSON_CELLS_PER_UNIT  # [c + 1]: the cells' edges, 0..10
    below = np.zeros((samples, cells + 1), dtype=np.int64)
    for column in table.T:  # sorted along k: count column by column
        below += column[:, None] < edges
    per_cell = int(np.diff(below, axis=-1).max())
    padded = np.hstack([table, np.full((samples, per_cell), np.inf)])
    below_cell = np.ascontiguousarray(below[:, :-1])
    for a in (padded, at_end, below_cell):
        a.setflags(write=False)
    return _PoissonTable(padded, at_end, below_cell, per_cell)


def _gamma_ppf(shape: FloatArray, z: FloatArray) -> FloatArray:
    """Approximate inverse CDF of Gamma(shape, 1) at the probability whose standard normal quantile is z,
    by the Wilson-Hilferty cube (Wilson & Hilferty 1931; relative error under 1 % for shape >= 1, rough
    below)."""
    k = np.maximum(shape, 1e-6)
    return np.asarray(k * np.maximum(1.0 - 1.0 / (9.0 * k) + z / (3.0 * np.sqrt(k)), 0.0) ** 3)


def _quantiles_after_wait(
    base: FloatArray, prob: FloatArray, mean_s: FloatArray, qs: FloatArray
) -> FloatArray:
    """Quantiles of X = b_I + W [s] -> [..., q]: I uniform over the samples ``base`` [..., S] [s], W
    independent, 0 with probability 1 - ``prob`` and exponential with mean ``mean_s`` [s] otherwise (S11).

    F(t) = (1/S) sum_{b_i <= t} (1 - p exp(-(t - b_i) / w)), inverted exactly: with the samples sorted and
    C_k = sum_{i <= k} exp(b_i / w), F = (k - p exp(-t / w) C_k) / S between b_k and b_(k+1). With p = 0
    this is the order statistic b_(ceil(qS)). Each sample non-decreasing, and p and w too, make every
    quantile non-decreasing."""
    b = np.sort(base, axis=-1)
    S = b.shape[-1]
    waits = (mean_s > 1e-12) & (prob > 0)
    if not waits.any():  # the order statistics b_(ceil(qS))
        at = np.clip(np.ceil(qs * S - 1e-9).astype(np.int64) - 1, 0, S - 1)
        return np.asarray(b[..., at])
    w = _ex(np.where(waits, mean_s, 1.0))
    p = _ex(np.where(waits, prob, 0.0))
    z = b / w
    top = z[..., -1:]  # the samples are sorted: the largest exponent is the last
    if np.all(top - z[..., :1] < 700.0):  # exp(z - top) stays a normal float: the faster cumulative sum
        log_c = np.log(np.cumsum(np.exp(z - top), axis=-1)) + top  # log C_k
    else:
        log_c = np.logaddexp.accumulate(z, axis=-1)
    k = np.arange(1, S + 1, dtype=np.float64)
    cdf = (k - p * np.exp(log_c - z)) / S  # F(b_k), its jump included
    below = (cdf[..., None, :] < qs[:, None]).sum(axis=-1)  # [..., q]: how many b_k have F(b_k) < q
    excess = below - S * qs
    solvable = (excess > 0) & (p > 0) & (below >= 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ck = np.take_along_axis(log_c, np.maximum(below - 1, 0), axis=-1)
        between = w * (log_ck - np.log(np.where(solvable, excess, 1.0) / np.where(p > 0, p, 1.0)))
    following = np.where(below < S, np.take_along_axis(b, np.minimum(below, S - 1), axis=-1), np.inf)
    return np.asarray(np.where(solvable, np.minimum(between, following), following))


@dataclass(frozen=True)
class _Grid:
    """The evaluation grid: arrival rates x batch limits, broadcast together [...]."""

    rate_per_s: FloatArray  # lambda [1/s]
    requested: IntArray  # the scheduler's batch limit [-]
    batch_limit: IntArray  # the limit in force, min(requested, KV sequences) [-]; 0: nothing fits
    max_rate_per_s: FloatArray  # saturation at that limit (S7) [1/s]
    stable: BoolArray  # lambda < max_rate_per_s


def _grid(prep: _Prepared, rate_per_s: npt.ArrayLike | None, max_batch_size: npt.ArrayLike | None) -> _Grid:
    engine = prep.engine
    lam_in = np.asarray(prep.traffic.rate_per_s if rate_per_s is None else rate_per_s, dtype=np.float64)
    if np.any(~(lam_in > 0)) or np.any(~np.isfinite(lam_in)):
        raise CostmodelError(f"rate_per_s must be finite and > 0 [1/s], got {rate_per_s!r}")
    B_in = np.asarray(engine.max_batch_size if max_batch_size is None else max_batch_size)
    if np.any(B_in < 1) or np.any(B_in > engine.max_batch_size) or np.any(B_in != np.round(B_in)):
        raise CostmodelError(
            f"max_batch_size must be integers in [1, {engine.max_batch_size}], got {max_batch_size!r}"
        )
    lam, requested = np.broadcast_arrays(lam_in, B_in.astype(np.int64))
    B = np.minimum(requested, prep.kv_sequences)
    max_rate = np.where(B >= 1, prep.max_rate_per_s[np.maximum(B, 1) - 1], 0.0)
    return _Grid(lam, requested, B, max_rate, np.asarray(lam < max_rate))


@dataclass(frozen=True)
class _Chain:
    """Requests in one replica as a birth-death chain (S5-S6), per grid point [...]."""

    idle: FloatArray  # P(no request) [-]
    prob_queued: FloatArray  # P(n >= B): an arrival finds every slot taken (PASTA) [-]
    mean_batch: FloatArray  # E[min(n, B)], sequences running [-]
    seen_batch: FloatArray  # E[min(n, B)^2] / E[min(n, B)]: the batch a running request sees [-]
    prefill_fraction: FloatArray  # u = lambda E[m], share of engine time on prompts [-]
    slot_rate_per_s: FloatArray  # phi(B), departures with every slot busy [1/s]
    occupancy: FloatArray  # E[N - 1 + chunks], iterations a request holds its slot [-]


def _prompt_load(prep: _Prepared, batch: FloatArray, lam: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(E[m] [s], E[N - 1 + chunks] [-]) at a mean batch: prompt costs interpolated on the grid (S2-S3)."""
    first = np.interp(batch, prep.n_grid, prep.first_mean_s)
    extra = np.interp(batch, prep.n_grid, prep.extra_mean_s)
    decode = np.interp(batch, np.arange(1.0, prep.decode_s.size + 1.0), prep.decode_s)
    occupancy = prep.traffic.output.mean - 1.0 + np.interp(batch, prep.n_grid, prep.chunks_mean)
    return _mean_prompt_s(lam, decode, first, extra), occupancy


def _chain(prep: _Prepared, lam: FloatArray, B: IntArray) -> _Chain:
    """The chain's stationary law. Arrivals at lambda; with n requests, min(n, B) run and leave at
    phi(n) = min(n, B) (1 - u) / (t_d(min(n, B)) E[occupancy]) (S5); u and the occupancy depend on the
    mean batch, which depends on the law: three rounds of the fixed point from the light-load batch."""
    states = np.arange(1, prep.decode_s.size + 1, dtype=np.float64)  # n = 1..K, K = engine maximum
    running = np.minimum(states, _ex(B))  # [..., K]
    running0 = np.concatenate([np.zeros((*B.shape, 1)), running], axis=-1)  # n = 0..K
    step_s = prep.decode_s[running.astype(np.int64) - 1]
    mean_batch = np.minimum(lam * prep.traffic.output.mean * prep.decode_s[0], B.astype(np.float64))
    for _ in range(3):
        prompt_s, occupancy = _prompt_load(prep, mean_batch, lam)
        u = np.minimum(lam * prompt_s, 0.999)
        phi = running * _ex(1.0 - u) / (step_s * _ex(occupancy))
        pi, tail = birth_death(lam, phi)  # tail: P(n > K), every slot busy
        mean_batch = np.maximum((pi * running0).sum(axis=-1) + tail * B, 1e-9)
        # a transient round (lambda >= phi(K): pi NaN, tail inf) has every slot busy; without this its
        # NaN batch made the next round's departure rates NaN and the whole call fail near saturation
        mean_batch = np.where(np.isfinite(mean_batch), mean_batch, B.astype(np.float64))
    second = (pi * running0**2).sum(axis=-1) + tail * B.astype(np.float64) ** 2
    waiting = np.arange(prep.decode_s.size + 1) >= _ex(B)  # n >= B
    prompt_s, _ = _prompt_load(prep, mean_batch, lam)
    return _Chain(
        idle=pi[..., 0],
        prob_queued=(pi * waiting).sum(axis=-1) + tail,
        mean_batch=mean_batch,
        seen_batch=np.clip(second / mean_batch, 1.0, B),
        prefill_fraction=np.minimum(lam * prompt_s, 0.999),
        slot_rate_per_s=np.take_along_axis(phi, _ex(B - 1).astype(np.int64), axis=-1)[..., 0],
        occupancy=occupancy,
    )


def _slot_wait_mean_s(chain: _Chain, lam: FloatArray, output: Lengths) -> FloatArray:
    """Mean wait for a slot of a request that waits [s] (S6): the chain above B is M/M/1-like with
    service rate phi(B), so 1 / (phi(B) - lambda), times the Allen-Cunneen factor (1 + scv) / 2 for the
    variability of the slot holding time (Whitt 1993)."""
    scv = (output.moment(2) - output.mean**2) / np.maximum(chain.occupancy, 1e-9) ** 2
    return np.asarray((1.0 + scv) / 2.0 / np.maximum(chain.slot_rate_per_s - lam, 1e-12))


@dataclass(frozen=True)
class _Iteration:
    """Iteration lengths at the mean batch (S8), per grid point [...]."""

    decode_s: FloatArray  # t_d at the batch a running request sees [s]
    batch_limit: FloatArray  # B, the batch limit in force [-]
    mean_s: FloatArray  # E[I] = t_d / (1 - u) [s]
    first_mean_s: FloatArray  # E[m1] [s]
    extra_mean_s: FloatArray  # E[m2] [s]
    first_square_s2: FloatArray  # E[m1^2] [s^2]
    # where the mean batch falls on the batch grid: the prompt costs are interpolated there
    grid_index: IntArray
    grid_fraction: FloatArray


def _iteration(prep: _Prepared, chain: _Chain, B: IntArray) -> _Iteration:
    states = np.arange(1.0, prep.decode_s.size + 1.0)
    t_seen = np.interp(chain.seen_batch, states, prep.decode_s)
    m1 = _interp_rows(chain.mean_batch, prep.n_grid, prep.first_s)
    g = prep.n_grid
    i = np.clip(np.searchsorted(g, chain.mean_batch) - 1, 0, max(g.size - 2, 0))
    upper = np.minimum(i + 1, g.size - 1)
    span = np.where(upper > i, g[upper] - g[i], 1.0)
    return _Iteration(
        decode_s=t_seen,
        batch_limit=B.astype(np.float64),
        mean_s=t_seen / (1.0 - chain.prefill_fraction),
        first_mean_s=np.interp(chain.mean_batch, g, prep.first_mean_s),
        extra_mean_s=np.interp(chain.mean_batch, g, prep.extra_mean_s),
        first_square_s2=m1**2 @ prep.prompt_weights,
        grid_index=i,
        grid_fraction=np.clip((chain.mean_batch - g[i]) / span, 0.0, 1.0),
    )


@dataclass(frozen=True)
class _Sums:
    """The quadrature's prompt costs, one row per batch of the grid: at any mean batch they are the
    linear interpolation of two rows, as the cost tables are. They depend on the engine, the traffic and
    the nodes, not on the load: built once per candidate, the sums of k prompts row by row as the
    evaluations reach them (:meth:`fill`; a plan's mean batches touch a few of the rows)."""

    now: FloatArray  # [g, _DRAWS + 1, S]: k prompts in the iteration an arrival lands in [s]
    others: FloatArray  # [g, _DRAWS + 1, S]: k prompts joining the request's own iteration [s]
    own: FloatArray  # [g, S]: m1 of the request's own prompt [s]
    own_chunks: FloatArray  # [g, S]: iterations its prefill spans [-]
    own_attention_s: FloatArray  # [S]: its decode attention less that of a sequence at the mean context [s]
    during: FloatArray  # [g, _DRAWS + 1, S]: k prompts prefilled while it decodes, m1 each [s]
    # (S10b) others sharing its N - 1 decode iterations: each, arriving in the span of N - 1 + E[L]
    # iterations that overlap them, adds a gamma-distributed context per iteration, of this shape and scale
    companion_shape: FloatArray  # [S]: E[Z]^2 / Var(Z) of one of them [-]
    companion_scale_tokens: FloatArray  # [S]: Var(Z) / E[Z] [tokens]
    # what fill() computes now / others / during from: m1 and m2 per stratum [g, strata], the nodes
    first_s: FloatArray
    extra_s: FloatArray
    nodes: _Nodes
    filled: BoolArray  # [g]: the rows of now / others / during computed so far

    def fill(self, rows: IntArray) -> None:
        """Compute the rows ``rows`` of ``now``, ``others`` and ``during`` not computed yet."""
        todo = np.unique(np.clip(rows, 0, self.filled.size - 1))
        todo = todo[~self.filled[todo]]
        if not todo.size:
            return
        T1, T2, draws = self.first_s[todo], self.extra_s[todo], self.nodes.draws_by_count
        # the first prompt of "now" is alone in its iteration (m1), the others join it (m2 each)
        self.now[todo] = _running_sums(T2, draws[0, 1:], T1.take(self.nodes.biased, axis=1))
        self.others[todo] = _running_sums(T2, draws[1])
        self.during[todo] = _running_sums(T1, draws[2])
        self.filled[todo] = True


def _sums(prep: _Prepared, nodes: _Nodes, max_batch_size: int | None = None) -> _Sums:
    """The prompt-cost sums on the rows of the batch grid up to the first at or above ``max_batch_size``
    (the largest batch limit to be evaluated; default the engine's): a mean batch never lies above it."""
    g = prep.n_grid
    rows = g.size if max_batch_size is None else int(np.searchsorted(g, max_batch_size)) + 1
    T1, T2, chunks = prep.first_s[:rows], prep.extra_s[:rows], prep.chunks[:rows]  # [g, strata]
    S = nodes.biased.size
    i, f = nodes.own_index, nodes.own_fraction
    # (S10) the request's own mean past context while it decodes: its prompt plus (N - 2) / 2 generated
    own_prompt = prep.prompt_tokens[i] * (1.0 - f) + prep.prompt_tokens[i + 1] * f
    own_context = np.minimum(own_prompt + (nodes.output_len - 2.0) / 2.0, prep.engine.max_len - 1.0)
    contexts = np.append(np.maximum(own_context, 0.0), prep.context)
    attention = np.interp(contexts, prep.context_grid, prep.attention_s)  # a(x), tabulated in _prepare
    # (S10b) one companion's context per iteration of a window of w = N - 1 iterations, Z: its moments
    # over the span w + E[L] of arrival times that overlap the window (Campbell's theorem per companion)
    comp = prep.companions
    w = np.maximum(nodes.output_len - 1.0, 1.0)
    span = w + comp.mean_iterations
    mean_z = comp.mean_context_tokens / span
    square_z = np.interp(np.log(w), np.log(comp.window_grid), comp.square_tokens2) / span
    var_z = np.maximum(square_z - mean_z**2, 1e-6 * mean_z**2)
    return _Sums(
        now=np.empty((rows, _DRAWS + 1, S)),  # filled row by row (fill): untouched rows cost nothing
        others=np.empty((rows, _DRAWS + 1, S)),
        own=T1[:, i] * (1.0 - f) + T1[:, i + 1] * f,
        own_chunks=chunks[:, i] * (1.0 - f) + chunks[:, i + 1] * f,
        own_attention_s=np.asarray(attention[:-1] - attention[-1]),
        during=np.empty((rows, _DRAWS + 1, S)),
        companion_shape=mean_z**2 / np.maximum(var_z, 1e-300),
        companion_scale_tokens=var_z / np.maximum(mean_z, 1e-300),
        first_s=T1,
        extra_s=T2,
        nodes=nodes,
        filled=np.zeros(rows, dtype=bool),
    )


def _running_sums(table: FloatArray, draws: IntArray, first: FloatArray | None = None) -> FloatArray:
    """Sums of the first k drawn strata's costs, k = 0..K, on each row of ``table`` [g, strata]:
    ``draws`` [K, S] -> [g, K + 1, S] (k = 0: nothing). With ``first`` [g, S], k >= 1 counts it as the
    first term and k - 1 draws after it (then ``draws`` holds K - 1 rows). Laid out count-major, each
    step is one contiguous add (a cumulative sum along a short last axis is several times slower)."""
    g, S = table.shape[0], draws.shape[1]
    lead = 0 if first is None else 1
    out = np.empty((g, draws.shape[0] + 1 + lead, S))
    out[:, 0] = 0.0
    total = out[:, 1 + lead]
    total[...] = table.take(draws[0], axis=1)
    for k in range(1, draws.shape[0]):
        np.add(total, table.take(draws[k], axis=1), out=out[:, 1 + lead + k])
        total = out[:, 1 + lead + k]
    if first is not None:
        out[:, 1] = first
        out[:, 2:] += first[:, None, :]
    return out


def _at_batch(it: _Iteration, table: FloatArray, count: FloatArray | None = None) -> FloatArray:
    """A [g, S] table, or a [g, k, S] one at the counts ``count`` [..., S], at each grid point's mean
    batch -> [..., S]. Beyond _DRAWS prompts (near saturation) the sum of _DRAWS is scaled."""
    i, f = _ex(it.grid_index).astype(np.int64), _ex(it.grid_fraction)
    upper = np.minimum(i + 1, table.shape[0] - 1)
    # flat indices into the table (one take is several times faster than a three-array fancy index)
    row, S = table[0].size, table.shape[-1]
    at = np.arange(S)  # sample s of count 0 (or of a [g, S] table) within a row
    if count is not None:
        at = at + np.minimum(count, _DRAWS).astype(np.int64) * S
    flat = table.reshape(-1)
    value = flat.take(i * row + at) * (1.0 - f) + flat.take(upper * row + at) * f
    if count is None:
        return np.asarray(value)
    return np.asarray(value * np.maximum(count / _DRAWS, 1.0))


def _ttft_before_slot_s(
    it: _Iteration, chain: _Chain, lam: FloatArray, nodes: _Nodes, sums: _Sums
) -> tuple[FloatArray, FloatArray]:
    """Time to first token less the wait for a slot [..., S] [s] (S9), and the length of the request's own
    prefill iteration(s) [..., S] [s].

    An arrival finds the engine busy with probability 1 - P(idle) and then lands in an iteration picked
    in proportion to its length (the inspection paradox): the count K of prompts in it has the law
    P(K = k) ~ Poisson(k; L) (t_d + [k >= 1] (E[m1] + (k - 1) E[m2])), L = lambda E[I], drawn by its
    inverse CDF. It waits for the rest of that iteration (a uniform share), then for its own: alone
    (t_d + m1(P) + the prompts that arrived meanwhile, m2 each) or, if its prompt spans J > 1 chunks, J
    iterations of t_d plus its whole prefill."""
    U, S = nodes.uniform, nodes.uniform.shape[1]
    shape = (*lam.shape, S)
    t_d, L = it.decode_s, lam * it.mean_s
    ks = np.arange(_POISSON_TERMS, dtype=np.float64)
    log_l = np.log(np.maximum(_ex(L), 1e-300))  # L = 0: all mass at k = 0
    log_pk = np.where(ks > 0, ks * log_l, 0.0) - _ex(L) - np.array([math.lgamma(k + 1.0) for k in ks])
    length_k = _ex(t_d) + np.where(ks > 0, _ex(it.first_mean_s) + (ks - 1.0) * _ex(it.extra_mean_s), 0.0)
    biased = np.exp(log_pk) * length_k
    cdf = np.cumsum(biased, axis=-1) / biased.sum(axis=-1, keepdims=True)  # [..., k]
    k_now = _count_below(cdf, U[8])  # [..., S]
    now = _ex(t_d) + _at_batch(it, sums.now, k_now.astype(np.float64))
    busy = U[3] < _ex(1.0 - chain.idle)
    residual = np.where(busy, U[4] * now, 0.0)
    others = _poisson_ppf(
        _ex(lam) * np.where(busy, now, 0.0), nodes.poisson_others, nodes.normal_others
    )  # meanwhile
    m_own, J_own = _at_batch(it, sums.own), _at_batch(it, sums.own_chunks)
    alone = _ex(t_d) + m_own + _at_batch(it, sums.others, others)
    own = np.where(J_own > 1.0, J_own * _ex(t_d) + m_own, alone)
    return np.asarray(np.broadcast_to(residual + own, shape)), np.asarray(
        np.where(J_own > 1.0, _ex(it.mean_s), own)
    )


def _tpot_s(
    prep: _Prepared,
    it: _Iteration,
    chain: _Chain,
    lam: FloatArray,
    own_s: FloatArray,
    nodes: _Nodes,
    sums: _Sums,
) -> FloatArray:
    """Per-request mean time per output token [..., S] [s] (S10): t_d at the batch it runs in (itself and
    its companions, S10b: :func:`_companion_tokens`, in sequences at the mean context, at most B),
    corrected for the request's own context, plus the prompt work X landing in its N - 1 iterations,
    spread over them.

    t_d is taken with every sequence at the mean context c, but the request is in every iteration it
    times, with its own mean context P + (N - 2) / 2: its decode attention differs from a sequence at c
    by ``sums.own_attention_s`` [S], added to each of its iterations (per sequence, decode attention is
    linear in the context and does not depend on the batch under the roofline, so the difference is
    taken at batch 1, independent of the load).

    Prompts arrive at lambda during its decoding time T_0 = I_0 + (N - 2) t_d (its own prefill iteration,
    then N - 2 decode iterations): K ~ Poisson(lambda T_0), each with the work m1(P) of its own prompt P.
    W is the sum of K prompts drawn from the prompt distribution (``sums.during``, scaled beyond
    _DRAWS): it keeps the tail of one long prompt, which sets p99 where a prompt lands in few windows (a
    moment-matched gamma, used before, was up to 10 % low there). Prompts that arrive while those run add
    more, as in an M/G/1 busy period (Kleinrock 1975, §5.8): given W, the offspring work O has mean
    W u / (1 - u) and variance W lambda E[m1^2] / (1 - u)^3, moment-matched to a gamma. X = W + O;
    E[X] = T_0 u / (1 - u). Each sample is non-decreasing in the load (K at a fixed uniform grows with its
    mean and the sum with K; the gamma quantile at a fixed normal score grows with its shape and scale).
    NaN where N = 1."""
    n_out = nodes.output_len
    gaps = np.maximum(n_out - 1.0, 1.0)
    u, t_d = _ex(chain.prefill_fraction), _ex(it.decode_s)
    window = own_s + (gaps - 1.0) * t_d
    count = _poisson_ppf(_ex(lam) * window, nodes.poisson_count, nodes.normal_count)
    work = _at_batch(it, sums.during, count)
    offspring_mean = work * u / (1.0 - u)
    scale_o = _ex(it.first_square_s2 / np.maximum(it.first_mean_s, 1e-300)) / (1.0 - u) ** 2
    shape_o = offspring_mean / np.maximum(scale_o, 1e-300)
    offspring = np.where(shape_o > 1e-9, _gamma_ppf(shape_o, nodes.normal_offspring) * scale_o, 0.0)
    stall = work + offspring
    # the batch this request runs in: itself and its companions, counted in sequences at the mean context
    # c (decode attention is affine in the batch's total context: a companion with 2c counts twice), at
    # most the batch limit; the K prompts whose prefill stalls it are companions too (S10b)
    others = _companion_tokens(prep, it, lam, nodes, sums, count) / prep.companions.context_tokens
    batch = np.minimum(1.0 + others, _ex(it.batch_limit))
    step = np.interp(batch, np.arange(1.0, prep.decode_s.size + 1.0), prep.decode_s)
    return np.asarray(
        np.where(n_out > 1, np.maximum(step + sums.own_attention_s, 0.0) + stall / gaps, np.nan)
    )


def _companion_tokens(
    prep: _Prepared, it: _Iteration, lam: FloatArray, nodes: _Nodes, sums: _Sums, arrived: FloatArray
) -> FloatArray:
    """The others' past context per iteration of a request's decoding, X [..., S] [tokens] (S10b).

    Its companions are the ``arrived`` requests [..., S] that arrive during its decoding, the very
    prompts whose prefill work S10 adds to its iterations (one Poisson count drives both: a request that
    lands in a long decode stalls it, then decodes beside it), and those that arrived before it started
    and are still decoding, an independent Poisson count of mean lambda E[I] E[L] (arrivals in a disjoint
    interval), drawn by its inverse CDF. Given K companions in all, their context is a gamma with K
    times one companion's mean and variance (``sums.companion_*``). Each sample is non-decreasing in the
    load: both counts grow with their means at fixed uniforms, the gamma quantile with its shape at a
    fixed normal score, and the scale does not depend on the load."""
    before = _poisson_ppf(
        _ex(lam * it.mean_s) * prep.companions.mean_iterations,
        nodes.poisson_companions,
        nodes.normal_companions,
    )
    count = before + arrived
    value = _gamma_ppf(count * sums.companion_shape, nodes.normal_attention) * sums.companion_scale_tokens
    return np.asarray(np.where(count > 0, value, 0.0))


def _evaluate(
    prep: _Prepared,
    nodes: _Nodes,
    rate_per_s: npt.ArrayLike | None,
    max_batch_size: npt.ArrayLike | None,
    quantiles: tuple[float, ...],
    sums: _Sums | None = None,
) -> ServingMetrics:
    """The model at every (rate, batch limit) of the grid; the steps are the equations of docs/serving.md.
    ``sums``: :func:`_sums` of ``prep`` and ``nodes``, when the caller evaluates them repeatedly."""
    if any(not 0 < q < 1 for q in quantiles):
        raise CostmodelError(f"quantiles must lie in (0, 1), got {quantiles}")
    grid = _grid(prep, rate_per_s, max_batch_size)
    stable, B = grid.stable, np.maximum(grid.batch_limit, 1)
    lam = np.where(stable, grid.rate_per_s, 0.0)  # unstable points: evaluated at no load, reported inf
    output = prep.traffic.output
    chain = _chain(prep, lam, B)
    wait_s = _slot_wait_mean_s(chain, lam, output)
    it = _iteration(prep, chain, B)
    sums = sums or _sums(prep, nodes)
    sums.fill(np.concatenate([it.grid_index.ravel(), it.grid_index.ravel() + 1]))  # the rows read below
    ttft_base, own_s = _ttft_before_slot_s(it, chain, lam, nodes, sums)
    # the engine's fixed cost on each first token outside its iterations (Engine.first_token_overhead_s)
    ttft_base = ttft_base + prep.engine.first_token_overhead_s
    tpot_all = _tpot_s(prep, it, chain, lam, own_s, nodes, sums)
    n_out = nodes.output_len
    # e2e: the slot wait sampled by its inverse CDF, P(W > s) = P(queued) exp(-s / w)
    slot = _ex(wait_s) * np.log(np.maximum(_ex(chain.prob_queued) / (1.0 - nodes.uniform[6]), 1.0))
    e2e = ttft_base + slot + np.where(n_out > 1, (n_out - 1.0) * np.nan_to_num(tpot_all), 0.0)
    tpot = tpot_all[..., n_out > 1] if np.any(n_out > 1) else np.full((*lam.shape, 1), np.nan)

    # (S12) each quantile q with q -/+ its binomial standard error sqrt(q (1 - q) / S): the quantiles there
    # bracket the quadrature's one-sigma sampling error
    qs = np.asarray(quantiles, dtype=np.float64)
    none = np.zeros(lam.shape)

    def quantiles_and_error(
        x: FloatArray, prob: FloatArray, mean_s: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        se = np.sqrt(qs * (1.0 - qs) / x.shape[-1])
        at = _quantiles_after_wait(
            x,
            prob,
            mean_s,
            np.concatenate([qs, np.clip(qs - se, 1e-9, None), np.clip(qs + se, None, 1 - 1e-9)]),
        )
        mid, lo, hi = np.split(at, 3, axis=-1)
        bad = _ex(np.where(stable, 0.0, np.inf))
        return np.asarray(mid + bad), np.asarray((hi - lo) / 2.0 + bad), np.asarray(hi + bad)

    ttft_q, ttft_err, ttft_hi = quantiles_and_error(ttft_base, chain.prob_queued, wait_s)
    tpot_q, tpot_err, tpot_hi = quantiles_and_error(tpot, none, none)
    e2e_q, e2e_err, e2e_hi = quantiles_and_error(e2e, none, none)
    bad = np.where(stable, 0.0, np.inf)
    ttft_mean = ttft_base.mean(axis=-1) + chain.prob_queued * wait_s
    tpot_mean = it.decode_s / (1.0 - chain.prefill_fraction)  # every gap a mean iteration
    limit = B
    en = output.mean
    fits = grid.batch_limit >= 1
    return ServingMetrics(
        rate_per_s=np.asarray(grid.rate_per_s, dtype=np.float64),
        max_batch_size=np.asarray(grid.batch_limit, dtype=np.int64),
        kv_max_sequences=prep.kv_sequences,
        kv_safe_sequences=prep.kv_safe_sequences,
        kv_bound=np.asarray(grid.requested > prep.kv_safe_sequences),
        stable=np.asarray(stable),
        utilization=np.asarray(
            np.where(fits, grid.rate_per_s / np.maximum(grid.max_rate_per_s, 1e-300), np.inf)
        ),
        max_rate_per_s=np.asarray(grid.max_rate_per_s, dtype=np.float64),
        output_tokens_per_s=np.asarray(
            np.minimum(grid.rate_per_s, grid.max_rate_per_s) * en, dtype=np.float64
        ),
        mean_batch_size=np.asarray(np.where(stable, chain.mean_batch, limit), dtype=np.float64),
        prefill_fraction=np.asarray(
            np.where(
                stable,
                chain.prefill_fraction,
                np.minimum(grid.max_rate_per_s * prep.saturated_prompt_s[limit - 1], 1.0),
            ),
            dtype=np.float64,
        ),
        prob_queued=np.asarray(np.where(stable, chain.prob_queued, 1.0), dtype=np.float64),
        decode_step_s=np.asarray(np.where(stable, it.decode_s, prep.decode_s[limit - 1]), dtype=np.float64),
        ttft_mean_s=np.asarray(ttft_mean + bad, dtype=np.float64),
        tpot_mean_s=np.asarray(tpot_mean + bad, dtype=np.float64),
        e2e_mean_s=np.asarray(ttft_mean + (en - 1.0) * tpot_mean + bad, dtype=np.float64),
        quantiles=tuple(float(q) for q in quantiles),
        ttft_s=ttft_q,
        tpot_s=tpot_q,
        e2e_s=e2e_q,
        ttft_error_s=ttft_err,
        tpot_error_s=tpot_err,
        e2e_error_s=e2e_err,
        ttft_upper_s=ttft_hi,
        tpot_upper_s=tpot_hi,
        e2e_upper_s=e2e_hi,
    )


# ----------------------------------------------------------------------------------------------------
# The planner
# ----------------------------------------------------------------------------------------------------

BATCH_LIMITS = (8, 16, 32, 64, 128, 256)
"""Scheduler batch limits the planner tries by default [-]."""
VALIDATED_UTILIZATION = 0.7
"""Highest load per replica, as a share of its saturation rate, at which :func:`analyze` is validated
against :func:`costmodel.simulate.serve` (``docs/serving.md``, the planner scan) [-]: the planner's
default ``max_utilization``, and above it every plan row is confirmed by simulation."""
PLAN_SAMPLES = 1024
"""Quadrature points of the planner's evaluations [-]."""
SIMULATED_REQUESTS = 4000
"""Poisson requests of one confirming simulation [-]."""
_FIRST_RUNGS = np.array([0.0, 1.0, 3.0])  # replica counts above the utilisation bound tried first
_PROBES = 7  # counts tried inside each bracket per refinement round: one round narrows it 8-fold


SAMPLING_MARGIN = 0.25
"""The planner's default ``sampling_margin`` [-]: the share of each p-quantile's one-standard-error band
above it (``ttft_upper_s``) that must lie within the objective. ``docs/serving.md`` (the planner, "Pass
rule, decided") gives the rule and the 200-case scan that chose this value (1 until session 7)."""


def _held(m: ServingMetrics, metric: str, q: float, margin: float) -> FloatArray:
    """The value of ``metric``'s q-quantile held to the objective: ``margin`` of the way from the
    quantile to the upper end of its one-standard-error band [s] (inf where unstable)."""
    with np.errstate(invalid="ignore"):  # inf - inf where unstable
        value = m.quantile(metric, q) + margin * (m.quantile_upper(metric, q) - m.quantile(metric, q))
    return np.asarray(np.where(m.stable, value, np.inf))


def _meets(m: ServingMetrics, slo: SLO, margin: float) -> BoolArray:
    """Every objective holds with ``margin`` of the quadrature's sampling error: the p-quantile moved
    ``margin`` of the way to the upper end of its one-standard-error band is within it. A convex
    combination of two quantities non-decreasing in the load, so monotone in it."""
    ok = m.stable.copy()
    for metric in ("ttft", "tpot", "e2e"):
        target = getattr(slo, f"{metric}_s")
        if target is not None:
            ok &= _held(m, metric, slo.quantile, margin) <= target
    return np.asarray(ok)


def _under_cap(utilization: npt.ArrayLike, max_utilization: float) -> BoolArray:
    """Each replica's load ``utilization`` [-] within the planner's cap ``max_utilization`` [-], with
    1e-12 for the rounding of a load the utilisation bound puts exactly at the cap: the one comparison
    the search and the infeasible reason share."""
    return np.asarray(np.asarray(utilization) <= max_utilization + 1e-12)


def _limit_names(limits: IntArray, named: BoolArray) -> str:
    """``limits`` [b] where ``named`` [b], as a reason prints them: "batch limit 8", "batch limits 8-64"
    (consecutive among ``limits``, sorted), "batch limits 8, 32", or "every batch limit"."""
    order = np.argsort(limits, kind="stable")
    chosen, values = np.asarray(named)[order], np.asarray(limits)[order]
    if chosen.all() and chosen.size > 1:
        return "every batch limit"
    runs: list[str] = []
    for i in np.flatnonzero(chosen):
        if i > 0 and chosen[i - 1]:
            runs[-1] = f"{runs[-1].split('-')[0]}-{values[i]}"
        else:
            runs.append(str(values[i]))
    return f"batch limit{'s' if chosen.sum() > 1 else ''} {', '.join(runs)}"


def _limits(prep: _Prepared, batch_limits: Sequence[int]) -> IntArray:
    """The batch limits the planner tries on one engine: each requested limit, lowered to the largest
    that is not KV-bound (there the model holds and the engine does not preempt) [-]."""
    top = min(prep.engine.max_batch_size, prep.kv_safe_sequences)
    return np.asarray(sorted({min(int(b), top) for b in batch_limits}), dtype=np.int64)


@dataclass(frozen=True)
class _Candidate:
    """One engine and traffic as the planner evaluates them."""

    prep: _Prepared
    nodes: _Nodes
    slo: SLO
    limits: IntArray  # [b]
    max_utilization: float
    sums: _Sums
    margin: float  # sampling_margin of plan()

    def metrics(self, replicas: FloatArray, columns: IntArray | None = None) -> ServingMetrics:
        """:func:`analyze` at ``replicas`` [..., b] (one column per batch limit, or per limit in
        ``columns``, indices into ``limits``), in one call."""
        lam = self.prep.traffic.rate_per_s / replicas
        q = tuple(sorted({0.5, self.slo.quantile}))
        limits = self.limits if columns is None else self.limits[columns]
        return _evaluate(self.prep, self.nodes, lam, np.broadcast_to(limits, lam.shape), q, self.sums)

    def meets(self, replicas: FloatArray, columns: IntArray | None = None) -> BoolArray:
        """The SLOs and the utilisation cap at ``replicas`` [..., b] (as :meth:`metrics`)."""
        return self.passes(self.metrics(replicas, columns))

    def passes(self, m: ServingMetrics) -> BoolArray:
        """The SLOs and the utilisation cap in ``m``."""
        return np.asarray(_meets(m, self.slo, self.margin) & _under_cap(m.utilization, self.max_utilization))


def meets_slo(
    engine: Engine,
    traffic: Traffic,
    slo: SLO,
    *,
    replicas: npt.ArrayLike,
    batch_limits: Sequence[int] = BATCH_LIMITS,
    max_utilization: float = VALIDATED_UTILIZATION,
    samples: int = PLAN_SAMPLES,
    sampling_margin: float = SAMPLING_MARGIN,
) -> BoolArray:
    """The planner's criterion: whether ``replicas`` [...] replicas of ``engine``, sharing ``traffic``,
    meet ``slo`` with each replica at most ``max_utilization`` of its saturation rate, at each of the
    batch limits :func:`plan` tries (``batch_limits`` lowered to the largest that is not KV-bound) ->
    [..., limits]. :func:`plan` returns the fewest replicas for which some limit passes."""
    prep = _prepared(engine, traffic)
    nodes = _nodes(traffic, samples, 0)
    limits = _limits(prep, batch_limits)
    r = np.asarray(replicas, dtype=np.float64)[..., None]
    out = np.zeros((*r.shape[:-1], limits.size), dtype=bool)
    # each limit on its own launch (its CUDA-graph ceiling), as plan times it
    ceilings = np.array([engine.replace(max_batch_size=int(b)).graph_tokens_in_force for b in limits])
    for graphs in np.unique(ceilings):
        cols = np.flatnonzero(ceilings == graphs)
        own = (
            prep
            if graphs == engine.graph_tokens_in_force
            else _prepared(
                engine.replace(max_batch_size=int(limits[cols].max()), graph_tokens=int(graphs)), traffic
            )
        )
        sums = _sums(own, nodes, int(limits[cols].max()))
        cand = _Candidate(own, nodes, slo, limits[cols], max_utilization, sums, sampling_margin)
        out[..., cols] = cand.meets(np.broadcast_to(r, (*r.shape[:-1], cols.size)).astype(np.float64))
    return out


@dataclass(frozen=True)
class _Evaluated:
    """One evaluation of the search: ``metrics`` at ``replicas`` [k, c] for the batch limits ``columns``
    [c] (indices into the candidate's ``limits``)."""

    replicas: FloatArray
    columns: IntArray
    metrics: ServingMetrics

    def at(self, replicas: float, columns: IntArray) -> ServingMetrics | None:
        """The metrics at ``replicas`` for each of ``columns`` [1, len(columns)], if this evaluation holds
        all of them, else None."""
        rows, cols = [], []
        for c in columns:
            j = np.flatnonzero(self.columns == c)
            hit = np.flatnonzero(self.replicas[:, j[0]] == replicas) if j.size else j
            if not hit.size:
                return None
            rows.append(int(hit[0]))
            cols.append(int(j[0]))
        r, c = np.array(rows), np.array(cols)
        fields = {
            name: value[r, c][None, ...]
            for name, value in vars(self.metrics).items()
            if isinstance(value, np.ndarray) and value.ndim >= 2
        }
        return dataclasses.replace(self.metrics, **fields)


def _fewest_replicas(
    cand: _Candidate, max_replicas: int, evaluated: list[_Evaluated] | None = None
) -> tuple[FloatArray, ServingMetrics]:
    """Per batch limit, the fewest replicas that pass (inf: none up to ``max_replicas``) [b], and
    metrics whose last row is ``max_replicas`` for every limit where none passes (for the reason).

    Pass/fail is monotone in the replica count: fewer requests per replica never raise a latency
    quantile (:func:`analyze` is monotone in the rate, property-tested) nor the utilisation. So one
    call tries r_lo + 0, 1, 3 (r_lo the utilisation bound); max_replicas (monotone: failing there, a
    limit fails everywhere) then bounds the limits that failed all three, where it matters: for every
    limit when none passed, else only for those that could still beat the best so far. Each bracket
    (last fail, first pass] is then cut 8-ways in one call per round, only for limits that can still
    beat the best so far. Every count is evaluated with the full quadrature: a failure is never taken
    from a cheaper pass."""
    lam, limits = cand.prep.traffic.rate_per_s, cand.limits
    saturation = cand.prep.max_rate_per_s[np.maximum(np.minimum(limits, cand.prep.kv_sequences), 1) - 1]
    r_lo = np.clip(np.ceil(lam / (cand.max_utilization * saturation) - 1e-9), 1.0, float(max_replicas))
    # one call brackets most answers: r_lo + 0, 1, 3 settle most plans
    top = float(max_replicas)
    R = np.minimum(r_lo[None, :] + _FIRST_RUNGS[:, None], top)  # [k, b]
    first = cand.metrics(R)
    record = evaluated if evaluated is not None else []
    record.append(_Evaluated(R, np.arange(limits.size), first))
    ok = cand.passes(first)
    hi = np.where(ok, R, np.inf).min(axis=0)  # passes
    lo = np.maximum(r_lo - 1.0, np.where(~ok & (hi > R), R, -np.inf).max(axis=0))  # fails
    # max_replicas bounds the limits that failed every rung (those that reached it already know), where
    # the answer can still be theirs (a count below the best so far, or the best is max_replicas itself)
    best = hi.min()
    bound = ~np.isfinite(hi) & (lo < top) & ((lo + 1 < best) | (best >= top))
    if bound.any():
        cols = np.flatnonzero(bound) if np.isfinite(best) else np.arange(limits.size)
        at_top = np.full((1, cols.size), top)
        first = cand.metrics(at_top, cols)
        record.append(_Evaluated(at_top, cols, first))
        passed = cand.passes(first)[0]
        hi[cols] = np.where(passed, top, hi[cols])
        lo[cols] = np.where(passed, lo[cols], top)
    while True:
        live = np.isfinite(hi) & (hi - lo > 1) & (lo + 1 < hi.min())
        if not live.any():
            return hi, first
        # only the limits still in play are evaluated; a probe that rounds onto a bracket end repeats
        # the count already decided there (hi passes)
        cols = np.flatnonzero(live)
        c_lo, c_hi = lo[cols], hi[cols]
        k = int(min(_PROBES, (c_hi - c_lo).max() - 1.0))  # a bracket of w counts needs w - 1 probes
        probes = np.round(c_lo + (c_hi - c_lo) * (np.arange(1, k + 1)[:, None] / (k + 1)))
        probes = np.where((probes > c_lo) & (probes < c_hi), probes, c_hi)  # [k, live]
        probed = cand.metrics(probes, cols)
        record.append(_Evaluated(probes, cols, probed))
        passed = cand.passes(probed)
        c_hi = np.minimum(c_hi, np.where(passed, probes, np.inf).min(axis=0))
        hi[cols] = c_hi
        lo[cols] = np.maximum(c_lo, np.where(~passed & (probes < c_hi), probes, -np.inf).max(axis=0))


def _infeasible_reason(searched: Sequence[tuple[_Candidate, ServingMetrics]], max_replicas: int) -> str:
    """Why no count up to ``max_replicas`` passes at any batch limit of one candidate, from each launch's
    full evaluation (its :class:`_Candidate`, and metrics whose last row is at ``max_replicas`` for every
    limit it times): over all the candidate's limits, not one launch's. If no limit keeps a replica under
    the utilisation cap there, that; else each objective's lowest held value (:func:`_held`) over the
    limits under the cap, with the limits that reach it (every one whose value prints the same: at a
    load near 0 they tie), for each objective none of them meets; if each objective is met by some limit
    but no limit meets them all, that."""
    limits = np.concatenate([cand.limits for cand, _ in searched])
    under = np.concatenate([_under_cap(m.utilization[-1], cand.max_utilization) for cand, m in searched])
    cand = searched[0][0]
    if not under.any():
        return (
            f"more than {max_replicas} replicas are needed to keep each under {cand.max_utilization:.0%} load"
        )
    q, pct = cand.slo.quantile, _pct(cand.slo.quantile)
    misses = []
    for metric in ("ttft", "tpot", "e2e"):
        target = getattr(cand.slo, f"{metric}_s")
        if target is not None:
            held = np.concatenate([_held(m, metric, q, c.margin)[-1] for c, m in searched])
            at = int(np.argmin(np.where(under, held, np.inf)))
            if held[at] > target:
                # every limit whose value prints as the lowest: at a load near 0 they tie to the last bits,
                # and naming one would say the limit matters
                lowest = f"{held[at]:.3g}"
                ties = under & np.array([f"{h:.3g}" == lowest for h in held])
                misses.append(
                    f"p{pct} {metric.upper()} {lowest} s (+ sampling error) > {target:.3g} s "
                    f"(at {_limit_names(limits, ties)})"
                )
    detail = (
        f"the lowest is {'; '.join(misses)}"
        if misses
        else "each objective is met at some batch limit, but no single limit meets them all"
    )
    return (
        f"no replica count up to {max_replicas} meets the SLO: at {max_replicas} replicas "
        f"({cand.prep.traffic.rate_per_s / max_replicas:.3g} requests/s each) {detail}"
    )


def _simulated(engine: Engine, traffic: Traffic, batch_limit: int, rate: float, slo: SLO) -> dict[str, Any]:
    """p-quantiles of one replica in :func:`costmodel.simulate.serve`, with the lower end of their
    confidence interval, and whether the SLOs hold (an objective fails only if the whole interval is above
    it)."""
    from costmodel.simulate import serve

    sim = serve(
        # the limit's launch (max_num_seqs = batch_limit): its CUDA graphs as the analytic model's
        engine.replace(max_batch_size=batch_limit, graph_tokens=engine.graph_tokens_in_force),
        traffic.with_rate(rate),
        n_requests=SIMULATED_REQUESTS,
        seed=0,
    )
    out: dict[str, Any] = {"preemptions": int(sim.preemptions.sum())}
    ok = sim.completed_fraction >= 0.999
    for metric in ("ttft", "tpot", "e2e"):
        value = float(sim.quantile(metric, slo.quantile))
        lo, _ = sim.quantile_interval(metric, slo.quantile)
        out[f"sim_{metric}_s"] = value
        target = getattr(slo, f"{metric}_s")
        if target is not None:
            ok &= lo <= target
    out["ok"] = bool(ok)
    return out


def _check_engine(engine: str | None, loop: LoopParams | None) -> None:
    """Refuse an unknown engine name (None, not "none", is the kernels alone) and ``loop`` without an
    engine (those costs are a named engine's; None means the kernels alone)."""
    if engine is not None and engine not in ENGINES:
        err = UnknownNameError("engine", engine, ENGINES)
        if str(engine).lower() == "none":
            err.message += " For the kernels alone, pass engine=None (not the string)."
        raise err
    if engine is None and loop is not None:
        raise CostmodelError(
            "loop applies a serving engine's costs beyond the kernels, but engine is None (the kernels "
            "alone): name the engine whose costs these are (engine='vllm', 'sglang' or 'trtllm')"
        )


def candidate_engine(
    model: ModelProfile | str,
    hardware: HardwareProfile | str,
    *,
    tp: int = 1,
    engine: str | None = "vllm",
    loop: LoopParams | None = None,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    expert_dtype: str | None = None,
    expert_activation_dtype: str | None = None,
    component_dtypes: Mapping[str, str] | None = None,
    max_batch_size: int = max(BATCH_LIMITS),
    max_batched_tokens: int | None = None,
    allocation: str = "paged",
) -> Engine:
    """One replica as :func:`plan` builds each candidate (arguments as there): launched with
    ``max_batch_size`` sequences (``max_num_seqs``; the planner's largest batch limit; a lower limit is
    timed on its own launch, vLLM's CUDA graphs following it, in :func:`plan` and :func:`analyze`),
    ``engine``'s fitted costs beyond the kernels (:attr:`Engine.engine_name`, or ``loop``) and its
    kernels (``Efficiency.kernel_engine``, as :func:`costmodel.pareto.frontier` times them). A device the
    engine does not run on is refused (:func:`costmodel.memory.check_engine_vendor`)."""
    from costmodel.registry import load_hardware
    from costmodel.token_budget import default_token_budget

    _check_engine(engine, loop)
    hw = load_hardware(hardware)
    if max_batched_tokens is None:  # the engine's own default launch (a TPU or CPU is refused there)
        try:
            max_batched_tokens = 8192 if engine is None else default_token_budget(engine, hw)
        except CostmodelError as e:
            raise CostmodelError(
                f"{e}".replace("as token_budget", "as max_batched_tokens (costmodel plan --token-budget)")
            ) from None
    return Engine.build(
        model,
        hw,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        activation_dtype=activation_dtype,
        expert_dtype=expert_dtype,
        expert_activation_dtype=expert_activation_dtype,
        component_dtypes=component_dtypes,
        tp=tp,
        max_batch_size=max_batch_size,
        max_batched_tokens=max_batched_tokens,
        allocation=allocation,
        engine_name=engine,
        loop=loop,
        efficiency=None
        if engine in (None, hw.efficiency.kernel_engine)
        else hw.efficiency.model_copy(update={"kernel_engine": engine}),
    )


def plan(
    model: ModelProfile | str,
    hardware_list: Sequence[HardwareProfile | str],
    traffic: Traffic,
    slo: SLO,
    *,
    tp: Sequence[int] = (1, 2, 4, 8),
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    expert_dtype: str | None = None,
    expert_activation_dtype: str | None = None,
    component_dtypes: Mapping[str, str] | None = None,
    batch_limits: Sequence[int] = BATCH_LIMITS,
    max_batched_tokens: int | None = None,
    allocation: str = "paged",
    max_replicas: int = 10_000,
    usd_per_hour: dict[str, float] | None = None,
    max_utilization: float = VALIDATED_UTILIZATION,
    samples: int = PLAN_SAMPLES,
    confirm: bool = False,
    sampling_margin: float = SAMPLING_MARGIN,
    engine: str | None = "vllm",
    loop: LoopParams | None = None,
) -> pd.DataFrame:
    """The fewest replicas, and the batch limit, that meet ``slo`` at ``traffic.rate_per_s`` on each
    candidate (device x tensor-parallel degree), ranked by $ per hour.

    Parameters
    ----------
    model : profile or name
    hardware_list : sequence of profiles or names
    traffic : Traffic
        Total arrival rate and length distributions; a load balancer splits it evenly at random over the
        replicas (each sees Poisson arrivals at rate / replicas).
    slo : SLO
        Latency objectives at ``slo.quantile``.
    tp : sequence of int
        Tensor-parallel degrees to try on every device (a degree the model cannot split is a row with
        ``feasible`` False and the reason, on every device; the CLI refuses one the user typed).
    weight_dtype, kv_dtype, activation_dtype, expert_dtype, expert_activation_dtype, component_dtypes
        Formats, as :class:`costmodel.specs.Workload`'s (a published checkpoint's:
        ``**costmodel.memory.workload_formats(model, checkpoint, hardware)``).
    batch_limits : sequence of int
        Scheduler batch limits (``max_num_seqs``) to try [-]; a limit above the largest that is not
        KV-bound (``analyze(...).kv_safe_sequences``) is lowered to it.
    usd_per_hour : dict, optional
        Device-hour price by hardware name [USD/h], replacing the profiles' on-demand prices.
    max_utilization : float
        Highest load per replica as a share of its saturation rate [-]. The default is the validated
        range of :func:`analyze` (:data:`VALIDATED_UTILIZATION`); a row above it is confirmed with
        :func:`costmodel.simulate.serve`, and replicas are added until the simulation meets the SLOs.
    samples : int
        Quadrature points for the latency quantiles (:func:`analyze`).
    confirm : bool
        Confirm every feasible row with :func:`costmodel.simulate.serve` (seconds per row), adding
        replicas until the simulation meets the SLOs.
    sampling_margin : float
        Share, in [0, 1], of each p-quantile's one-standard-error band above it (the quadrature's
        sampling error, ``ttft_upper_s``) that must also lie within the objective [-]: 0 holds the
        p-quantile itself to it (:data:`SAMPLING_MARGIN` by default).
    engine : str or None
        The serving engine each replica runs (``"vllm"``, the default as where no engine is named
        elsewhere, ``"sglang"``, ``"trtllm"``): its fitted costs beyond the kernels time every iteration
        and first token (:attr:`costmodel.serving.Engine.engine_name`), and its kernels time the passes
        (``Efficiency.kernel_engine``), as :func:`costmodel.pareto.frontier` times them; a device it does
        not run on is a row with ``feasible`` False and the reason. None: the kernels alone (vLLM's), as
        the planner was before session 19.
    loop : LoopParams, optional
        Those costs, replacing the engine's fitted ones (``LoopParams()``: the engine's kernels alone);
        refused with ``engine=None`` (the kernels alone, no costs beyond them).
    max_batched_tokens : int, optional
        Token budget per iteration [tokens] (vLLM ``--max-num-batched-tokens``). Default: the engine's own
        on each device (:func:`costmodel.token_budget.default_token_budget`, as
        :func:`costmodel.pareto.frontier` launches it; a TPU or CPU needs one), 8,192 with ``engine=None``.

    Returns one row per candidate: ``feasible`` (and ``reason`` when not), replicas, GPUs, the chosen
    batch limit, per-replica load, the predicted latencies and the sampling error of each p-quantile
    (``*_error_s``), ``validity`` and ``confirmed_by_simulation`` (with the simulated quantiles when
    simulated), ``usd_per_hour`` and ``usd_per_million_output_tokens`` / ``usd_per_million_tokens``
    (input and output) at the offered load. For a fixed traffic both cost columns rank alike. Among batch
    limits meeting the SLOs with the fewest replicas the cheapest wins, then the lowest p-quantile TTFT.
    The replica count is the minimum by construction: pass/fail is monotone in it and every count is
    decided with the full quadrature; "infeasible" comes from the full evaluation at ``max_replicas``,
    with the quantile that misses.
    """
    import pandas as pd

    from costmodel.registry import load_hardware, load_model

    if not 0 < max_utilization < 1:
        raise CostmodelError(f"max_utilization must lie in (0, 1), got {max_utilization}")
    if not 0 <= sampling_margin <= 1:
        raise CostmodelError(f"sampling_margin must lie in [0, 1], got {sampling_margin}")
    if not (isinstance(max_replicas, int | np.integer) and max_replicas >= 1):
        raise CostmodelError(f"max_replicas must be an integer >= 1, got {max_replicas!r}")
    _check_engine(engine, loop)
    m = load_model(model)
    nodes = _nodes(traffic, samples, 0)
    companions: dict[int, _Companions] = {}  # S10b's tables, the same for every candidate
    rows: list[dict[str, Any]] = []
    for hw_in in hardware_list:
        hw = load_hardware(hw_in)
        for degree in tp:
            row: dict[str, Any] = {"hardware": hw.name, "tp": degree, "gpus_per_replica": degree}
            rows.append(row)
            try:
                replica = candidate_engine(
                    m,
                    hw,
                    tp=degree,
                    engine=engine,
                    loop=loop,
                    weight_dtype=weight_dtype,
                    kv_dtype=kv_dtype,
                    activation_dtype=activation_dtype,
                    expert_dtype=expert_dtype,
                    expert_activation_dtype=expert_activation_dtype,
                    component_dtypes=component_dtypes,
                    max_batch_size=max(batch_limits),
                    max_batched_tokens=max_batched_tokens,
                    allocation=allocation,
                )
            except (CostmodelError, ValueError) as e:
                row.update(feasible=False, reason=str(e))
                continue
            price = (usd_per_hour or {}).get(hw.name)
            try:  # e.g. a device without a link bandwidth cannot run TP > 1: that candidate is infeasible
                row.update(
                    _plan_one(
                        replica,
                        traffic,
                        slo,
                        batch_limits,
                        max_replicas,
                        nodes,
                        price,
                        max_utilization,
                        confirm,
                        sampling_margin,
                        companions,
                    )
                )
            except (CostmodelError, ValueError) as e:
                row.update(feasible=False, reason=str(e))
    q = _pct(slo.quantile)
    columns = [
        "hardware",
        "tp",
        "gpus_per_replica",
        "feasible",
        "reason",
        "replicas",
        "gpus",
        "max_batch_size",
        "batch_limit_in_force",
        "kv_safe_batch_size",
        "rate_per_replica_per_s",
        "utilization",
        "mean_batch_size",
        "ttft_p50_s",
        f"ttft_p{q}_s",
        f"ttft_p{q}_error_s",
        f"tpot_p{q}_s",
        f"tpot_p{q}_error_s",
        f"e2e_p{q}_s",
        "max_rate_per_replica_per_s",
        "validity",
        "confirmed_by_simulation",
        f"sim_ttft_p{q}_s",
        f"sim_tpot_p{q}_s",
        "usd_per_hour",
        "usd_per_million_output_tokens",
        "usd_per_million_tokens",
    ]
    # the same columns whether or not any row is feasible (once each: quantile 0.5 names the p50 column twice)
    frame = pd.DataFrame(rows).reindex(columns=list(dict.fromkeys(columns)))
    for name in ("feasible", "confirmed_by_simulation"):
        frame[name] = frame[name].eq(True)
    for name in ("reason", "validity"):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), "")
    ranked: pd.DataFrame = frame.sort_values(
        by=["feasible", "usd_per_hour"], ascending=[False, True], na_position="last"
    )
    return ranked.reset_index(drop=True)


def _plan_one(
    engine: Engine,
    traffic: Traffic,
    slo: SLO,
    batch_limits: Sequence[int],
    max_replicas: int,
    nodes: _Nodes,
    price: float | None,
    max_utilization: float,
    confirm: bool,
    margin: float,
    companions: dict[int, _Companions] | None = None,
) -> dict[str, Any]:
    """One candidate of :func:`plan`; ``nodes``: the quadrature nodes, and ``companions``: S10b's tables
    (shared by the candidates: they depend on the traffic alone)."""
    pct = _pct(slo.quantile)
    prep = _prepared(engine, traffic, companions)
    if prep.kv_sequences < 1:
        return {"feasible": False, "reason": "the weights leave no room for a KV cache"}
    if prep.kv_safe_sequences < 1:
        return {
            "feasible": False,
            "reason": f"the KV cache ({prep.kv_sequences} sequences at the mean context) cannot hold one "
            "sequence with room for the spread of lengths: KV-bound at any batch limit",
        }
    # each limit with its own launch: a batch limit is deployed as the engine's max_num_seqs, and vLLM's
    # CUDA-graph ceiling follows it (min(2 b, 512, budget), cuda_graph_tokens); the limits sharing a
    # ceiling (every limit of an engine without prompt graphs) are searched together on one launch
    limits = _limits(prep, batch_limits)
    groups: dict[int, list[int]] = {}
    for b in limits.tolist():
        groups.setdefault(engine.replace(max_batch_size=int(b)).graph_tokens_in_force, []).append(int(b))
    if list(groups) == [engine.graph_tokens_in_force]:
        launches = [(engine, prep, limits)]
    else:
        # the launches differ from the candidate in their batch limit and graph ceiling alone, so their
        # kernel passes are the same functions (Engine.sharing_parts): noted first, then evaluated as one
        # concatenated pass per kind (elementwise: each result to the bit), not one evaluation per launch
        shared = engine.sharing_parts()
        made = [
            (shared.replace(max_batch_size=max(group), graph_tokens=graphs), group)
            for graphs, group in groups.items()
        ]
        for launch, _ in made:  # a launch the memo holds (a re-plan) reads its tables: no passes to note
            if not memo.holds(launch.hardware, _prepared_key(launch, traffic)):
                shared.parts.note(functools.partial(_note_passes, launch, traffic, prep.context))
        launches = [
            (launch, _prepared(launch, traffic, companions), np.asarray(group, dtype=np.int64))
            for launch, group in made
        ]
    searched = []
    for launch, own, group_limits in launches:
        cand = _Candidate(
            own, nodes, slo, group_limits, max_utilization, _sums(own, nodes, int(group_limits.max())), margin
        )
        evaluated: list[_Evaluated] = []
        hi, first = _fewest_replicas(cand, max_replicas, evaluated)
        searched.append((launch, cand, hi, first, evaluated))
    if not any(np.isfinite(hi).any() for _, _, hi, _, _ in searched):
        reason = _infeasible_reason([(cand, first) for _, cand, _, first, _ in searched], max_replicas)
        return {"feasible": False, "reason": reason}
    outs = [
        _plan_limits(launch, cand, hi, evaluated, max_replicas, price, confirm)
        for launch, cand, hi, _, evaluated in searched
        if np.isfinite(hi).any()
    ]
    feasible = [o for o in outs if o["feasible"]]
    if not feasible:
        return outs[-1]  # the simulation misses at every launch up to max_replicas
    return min(feasible, key=lambda o: (o["replicas"], o[f"ttft_p{pct}_s"]))


def _plan_limits(
    engine: Engine,
    cand: _Candidate,
    hi: FloatArray,
    evaluated: list[_Evaluated],
    max_replicas: int,
    price: float | None,
    confirm: bool,
) -> dict[str, Any]:
    """:func:`_plan_one`'s row on one launch ``engine`` (its candidate ``cand``: the batch limits it times
    alike), from the search's fewest passing replicas per limit ``hi`` (some finite) and its evaluations."""
    prep, traffic, slo = cand.prep, cand.prep.traffic, cand.slo
    q, pct = slo.quantile, _pct(slo.quantile)
    r = int(hi.min())
    lam = traffic.rate_per_s
    simulated: dict[str, Any] = {}
    while True:
        # pass/fail is monotone in the count: the limits passing at r are those whose fewest is <= r
        cols = np.flatnonzero(hi <= r)
        # the search evaluated every limit at its fewest count: those metrics, unless simulation added one
        found = (e.at(float(r), cols) for e in evaluated)
        final = next((m for m in found if m is not None), None) or cand.metrics(
            np.full((1, cols.size), float(r)), cols
        )
        ttft = np.where(cand.passes(final)[0], final.quantile("ttft", q)[0], np.inf)
        at = int(np.argmin(ttft))
        pick_i = int(cols[at])
        outside = float(final.utilization[0, at]) > VALIDATED_UTILIZATION + 1e-12
        # once a simulation has missed, the next count is confirmed the same way, even where its load is
        # back inside the validated range (the analytic row there was already found optimistic)
        if not (confirm or outside or simulated):
            break
        simulated = _simulated(engine, traffic, int(cand.limits[pick_i]), lam / r, slo)
        if simulated["ok"] or r >= max_replicas:
            break
        r += 1  # the simulation misses: one more replica, until it meets the SLOs
    if simulated and not simulated["ok"]:
        return {"feasible": False, "reason": f"the simulation misses the SLO up to {max_replicas} replicas"}
    validity = "analytic model inside its validated range" if not simulated else "confirmed by simulation"
    per_hour = (price if price is not None else engine.usd_per_hour / engine.gpus) * engine.gpus * r
    out_per_h = lam * traffic.output.mean * 3600.0
    all_per_h = lam * (traffic.output.mean + traffic.prompt.mean) * 3600.0

    def pick(x: npt.ArrayLike) -> float:
        return float(np.asarray(x)[0, at])

    return {
        "feasible": True,
        "reason": "",
        "replicas": r,
        "gpus": r * engine.gpus,
        "max_batch_size": int(cand.limits[pick_i]),
        "batch_limit_in_force": int(final.max_batch_size[0, at]),
        "kv_safe_batch_size": prep.kv_safe_sequences,
        "rate_per_replica_per_s": pick(final.rate_per_s),
        "utilization": pick(final.utilization),
        "mean_batch_size": pick(final.mean_batch_size),
        "ttft_p50_s": pick(final.quantile("ttft", 0.5)),
        f"ttft_p{pct}_s": pick(final.quantile("ttft", q)),
        f"ttft_p{pct}_error_s": pick(final.quantile_error("ttft", q)),
        f"tpot_p{pct}_s": pick(final.quantile("tpot", q)),
        f"tpot_p{pct}_error_s": pick(final.quantile_error("tpot", q)),
        f"e2e_p{pct}_s": pick(final.quantile("e2e", q)),
        "max_rate_per_replica_per_s": pick(final.max_rate_per_s),
        "validity": validity,
        "confirmed_by_simulation": bool(simulated),
        f"sim_ttft_p{pct}_s": simulated.get("sim_ttft_s", np.nan),
        f"sim_tpot_p{pct}_s": simulated.get("sim_tpot_s", np.nan),
        "usd_per_hour": per_hour,
        "usd_per_million_output_tokens": per_hour / out_per_h * 1e6,
        "usd_per_million_tokens": per_hour / all_per_h * 1e6,
    }


def _pct(q: float) -> str:
    """0.99 -> '99', 0.999 -> '99.9'."""
    return f"{q * 100:g}"
