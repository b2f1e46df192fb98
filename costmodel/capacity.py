"""Capacity planning: latency and throughput of a continuous-batching engine under Poisson load, and the
fewest replicas (and the batch limit) that meet latency SLOs on each candidate device, ranked by cost.

:func:`analyze` is the analytic model of one engine replica (:class:`costmodel.serving.Engine`) under
:class:`costmodel.serving.Traffic`; :func:`plan` searches replicas x batch limits with it for every
candidate. ``docs/serving.md`` derives the model, lists where it holds, and reports its errors against
the discrete-event simulator (:func:`costmodel.simulate.serve`).

The model, in one paragraph. Decode iterations of n running sequences take t_d(n) (the roofline,
:func:`costmodel.serving.step_time`, at the mean decoding context c); each prompt adds its marginal
prefill time m(P) to the iterations that carry its chunks, so prompts take a fraction
u = lambda E[m(P)] of the engine's time. The number of requests in the replica is a birth-death chain:
arrivals at lambda, and with n <= B running, departures at n (1 - u) / (t_d(n) E[occupancy]) where a
request occupies its slot for E[N - 1 + chunks] iterations; above B, requests wait for a slot. This is
a limited processor-sharing queue with a state-dependent speed (for n <= B a symmetric queue, whose
occupancy law does not depend on the length distribution beyond its mean: Kelly 1979, *Reversibility and
Stochastic Networks*, §3.3; the FCFS wait for a slot is corrected for the length variability by the
Allen-Cunneen factor (1 + scv) / 2, Whitt 1993). Latencies follow per request: TTFT = wait for a slot +
the rest of the iteration in progress + its own prefill iterations; TPOT = t_d at the batch a running
request sees (size-biased) + the prefill work that lands during its decoding (a compound Poisson sum,
moment-matched to a gamma), spread over its N - 1 gaps. Percentiles are evaluated by deterministic
Monte-Carlo quadrature of these random variables (fixed seed; not a simulation of the engine).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError
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

    def quantile(self, metric: str, q: float) -> FloatArray:
        """``ttft``, ``tpot`` or ``e2e`` at one of ``quantiles`` [s]."""
        if q not in self.quantiles:
            raise CostmodelError(f"quantile {q} was not computed; have {self.quantiles}")
        return np.asarray(getattr(self, f"{metric}_s")[..., self.quantiles.index(q)])


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
# The analytic model
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """Everything :func:`analyze` needs that does not depend on the load: one engine, one traffic mix."""

    engine: Engine
    traffic: Traffic
    context: float  # mean past tokens of a decoding sequence, c [tokens]
    kv_sequences: int
    decode_s: FloatArray  # t_d(n), n = 1..B_max [s]
    n_grid: FloatArray  # batch sizes at which prompt costs are tabulated [-]
    prompt_weights: FloatArray  # probability of each prompt stratum [-]
    first_s: FloatArray  # m1(P, n): marginal time of a prompt alone in an iteration [n_grid, strata] [s]
    extra_s: FloatArray  # m2(P, n): marginal time of a prompt joining another one [n_grid, strata] [s]
    chunks: FloatArray  # iterations a prompt's prefill spans [n_grid, strata] [-]
    # the same three averaged over the strata (all that the fixed points of _evaluate need) [n_grid]
    first_mean_s: FloatArray
    extra_mean_s: FloatArray
    chunks_mean: FloatArray
    # saturation at the batch limits 1..B_max (it depends on the limit alone): all slots busy, arrivals
    # at the rate they leave [1/s], and E[m] at that rate [s]
    max_rate_per_s: FloatArray
    saturated_prompt_s: FloatArray


def _prepare(engine: Engine, traffic: Traffic) -> _Prepared:
    P, N = traffic.prompt, traffic.output
    en = N.mean
    # past tokens at decode step j = 1..N-1 are P + j - 1: time-average E[P] + E[(N-1)(N-2)] / (2 E[N-1])
    context = P.mean + (N.moment(2) - 3 * en + 2) / (2 * (en - 1)) if en > 1 else P.mean
    context = min(context, float(engine.max_len))
    capacity = engine.kv_capacity_tokens()
    if engine.model.ssm is not None:
        kv_sequences = capacity
    elif engine.allocation == "contiguous":
        kv_sequences = capacity // engine.max_len
    else:  # held: past + the new token, plus on average half a block of unused slots
        kv_sequences = int(capacity // (context + 1 + (engine.block_size - 1) / 2))
    B_max = engine.max_batch_size
    n_grid = np.unique(np.concatenate([[1.0], np.round(np.geomspace(1, B_max, 8))]))
    weights = _STRATUM_WEIGHTS
    points = P.quantile((_STRATA[:-1] + _STRATA[1:]) / 2).astype(np.float64)
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
    # one roofline evaluation per term, the token counts of every case side by side
    sets = [n, nn[..., None] + size, nn + other + points[None, :], nn + other]
    linear = parts.linear_s(np.concatenate([x.ravel() for x in sets]))
    lin_n, lin_chunk, lin_join, lin_base = np.split(linear, np.cumsum([x.size for x in sets])[:-1])
    attn = parts.prefill_attention_s(
        np.concatenate([size.ravel(), points]), np.concatenate([past.ravel(), np.zeros(points.size)])
    )
    attn_chunk, attn_whole = attn[: size.size].reshape(size.shape), attn[size.size :]
    decode_s = lin_n + parts.decode_attention_s(n, context)
    lin_grid = lin_n[n_grid.astype(np.int64) - 1][:, None]  # S(n, 1, 0) on the grid
    first = np.where(size > 0, lin_chunk.reshape(size.shape) - lin_grid[..., None] + attn_chunk, 0.0).sum(
        axis=-1
    )
    extra = np.where(joins, lin_join.reshape(joins.shape) - lin_base.reshape(nn.shape) + attn_whole, first)
    first_mean, extra_mean, chunks_mean = first @ weights, extra @ weights, J @ weights
    # saturation at every batch limit n: n / (t_d(n) E[occupancy] + n E[m]), E[m] taken at that rate
    E1, E2 = np.interp(n, n_grid, first_mean), np.interp(n, n_grid, extra_mean)
    occupancy = en - 1.0 + np.interp(n, n_grid, chunks_mean)
    max_rate, prompt_s = np.ones(n.shape), E1
    for _ in range(4):
        prompt_s = _mean_prompt_s(np.maximum(max_rate, 1e-9), decode_s, E1, E2)
        max_rate = n / (decode_s * occupancy + n * prompt_s)
    return _Prepared(
        engine,
        traffic,
        context,
        kv_sequences,
        decode_s,
        n_grid,
        prompt_weights=weights,
        first_s=first,
        extra_s=extra,
        chunks=J,
        first_mean_s=first_mean,
        extra_mean_s=extra_mean,
        chunks_mean=chunks_mean,
        max_rate_per_s=max_rate,
        saturated_prompt_s=prompt_s,
    )


def _mean_prompt_s(
    rate: FloatArray, decode_s: FloatArray, first_s: FloatArray, extra_s: FloatArray
) -> FloatArray:
    """Mean marginal time of a prompt, E[m] [s], at arrival rate lambda [1/s], given the decode iteration
    t_d [s] and the mean costs of a prompt alone in its iteration, E[m1], and joining another, E[m2] [s]
    (arrays broadcast). A fraction (1 - exp(-L)) / L of prompts come first in their iteration,
    L = lambda E[I] the prompts arriving during one iteration of mean length E[I] = t_d / (1 - lambda E[m]);
    E[I] and E[m] depend on each other: four rounds of the fixed point."""
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
    quantiles : sequence of float
        Latency quantiles to report [-].
    samples : int
        Points of the Monte-Carlo quadrature of the latency distributions [-].
    seed : int
        Seed of that quadrature (fixed: the result is a deterministic function of the inputs).

    The model and its sources are in the module docstring; ``docs/serving.md`` derives it. It holds
    (within the tolerances measured there against :func:`costmodel.simulate.serve`) while the load is
    below about 80 % of ``max_rate_per_s``, the KV cache is not the binding limit (no preemption), and a
    prompt fits the iteration token budget. Near saturation the mean-field batch and the exponential
    slot-wait tail understate the queueing; above it every latency is ``inf`` and ``stable`` is False.
    """
    prep = _prepare(engine, traffic)
    return _evaluate(prep, _nodes(traffic, samples, seed), rate_per_s, max_batch_size, tuple(quantiles))


@dataclass(frozen=True)
class _Nodes:
    """The random numbers of the latency quadrature, one column per sample: they depend on the traffic's
    output lengths, the sample count and the seed, not on the engine or the load (common random numbers
    across a grid, and across the candidates of a plan)."""

    uniform: FloatArray  # U(0, 1) draws [10, samples]
    stratum: IntArray  # the request's prompt stratum [samples]
    output_len: FloatArray  # its output length N [tokens] [samples]
    draws: IntArray  # strata of the other prompts summed in its first two iterations [2, samples, _DRAWS]
    normal: FloatArray  # the standard normal quantile of uniform[2], for the gamma [samples]


def _nodes(traffic: Traffic, samples: int, seed: int) -> _Nodes:
    """The quadrature nodes for ``samples`` points drawn with ``seed``."""
    from statistics import NormalDist

    rng = np.random.default_rng(seed)
    U = rng.random((10, samples))
    cum_w = np.cumsum(_STRATUM_WEIGHTS)
    last = _STRATUM_WEIGHTS.size - 1
    stratum = np.minimum(np.searchsorted(cum_w, U[0], side="right"), last)
    draws = np.minimum(np.searchsorted(cum_w, rng.random((2, samples, _DRAWS)), side="right"), last)
    normal = np.array([NormalDist().inv_cdf(min(max(x, 1e-12), 1 - 1e-12)) for x in U[2]])
    return _Nodes(U, stratum, traffic.output.quantile(U[1]).astype(np.float64), draws, normal)


def _poisson_pmf(mean: FloatArray, k: FloatArray) -> FloatArray:
    """P(K = k) for K ~ Poisson(mean), [..., 1] x [k] -> [..., k]."""
    from math import lgamma

    log_fact = np.array([lgamma(x + 1.0) for x in k])
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = k * np.log(mean) - mean - log_fact
    return np.asarray(np.where(mean > 0, np.exp(logp), (k == 0).astype(np.float64)))


def _ex(a: npt.ArrayLike) -> FloatArray:
    """[...] -> [..., 1], to broadcast a grid value against samples or states."""
    return np.asarray(a, dtype=np.float64)[..., None]


def _poisson_ppf(mean: FloatArray, u: FloatArray, cap: int = 40) -> npt.NDArray[np.int64]:
    """Inverse CDF of Poisson(mean) at the uniforms u (broadcast), up to ``cap``: common random numbers,
    so a grid point's draws do not depend on the rest of the grid."""
    finite = mean[np.isfinite(mean)]
    top = float(finite.max(initial=0.0))
    cap = min(cap, int(np.ceil(top + 6.0 * np.sqrt(top) + 3.0)))
    pmf = np.exp(-mean)
    cdf = pmf.copy()
    count = np.zeros(np.broadcast_shapes(mean.shape, u.shape), dtype=np.int64)
    for k in range(1, cap + 1):
        below = cdf < u
        if not below.any():  # every count is final
            break
        count += below
        pmf = pmf * mean / k
        cdf = cdf + pmf
    return count


def _gamma_ppf(shape: FloatArray, z: FloatArray) -> FloatArray:
    """Approximate inverse CDF of Gamma(shape, 1) at the probability whose standard normal quantile is z,
    by the Wilson-Hilferty cube (Wilson & Hilferty 1931; relative error under 1 % for shape >= 1, rough
    below)."""
    k = np.maximum(shape, 1e-6)
    return np.asarray(k * np.maximum(1.0 - 1.0 / (9.0 * k) + z / (3.0 * np.sqrt(k)), 0.0) ** 3)


def _weighted_quantiles(x: FloatArray, weight: FloatArray, qs: FloatArray) -> FloatArray:
    """Quantiles of the weighted samples along the last axis (NaN samples dropped) -> [..., q]."""
    x, weight = np.broadcast_arrays(x, weight)
    weight = np.where(np.isnan(x), 0.0, weight)
    order = np.argsort(np.where(np.isnan(x), np.inf, x), axis=-1)
    xs = np.take_along_axis(x, order, axis=-1)
    cw = np.cumsum(np.take_along_axis(weight, order, axis=-1), axis=-1)
    cw = cw / np.maximum(cw[..., -1:], 1e-300)
    idx = np.minimum((cw[..., None, :] < qs[:, None]).sum(axis=-1), x.shape[-1] - 1)  # [..., q]
    return np.asarray(np.take_along_axis(xs, idx, axis=-1))


def _evaluate(
    prep: _Prepared,
    nodes: _Nodes,
    rate_per_s: npt.ArrayLike | None,
    max_batch_size: npt.ArrayLike | None,
    quantiles: tuple[float, ...],
) -> ServingMetrics:
    engine, traffic = prep.engine, prep.traffic
    if any(not 0 < q < 1 for q in quantiles):
        raise CostmodelError(f"quantiles must lie in (0, 1), got {quantiles}")
    lam_in = np.asarray(traffic.rate_per_s if rate_per_s is None else rate_per_s, dtype=np.float64)
    if np.any(~(lam_in > 0)):
        raise CostmodelError(f"rate_per_s must be > 0 [1/s], got {rate_per_s!r}")
    B_in = np.asarray(engine.max_batch_size if max_batch_size is None else max_batch_size)
    if np.any(B_in < 1) or np.any(B_in > engine.max_batch_size) or np.any(B_in != np.round(B_in)):
        raise CostmodelError(
            f"max_batch_size must be integers in [1, {engine.max_batch_size}], got {max_batch_size!r}"
        )
    lam, B_req = np.broadcast_arrays(lam_in, B_in.astype(np.int64))
    B = np.minimum(B_req, prep.kv_sequences)
    fits = B >= 1
    Bc = np.maximum(B, 1)
    B_max = engine.max_batch_size
    N: Lengths = traffic.output
    en = N.mean
    w = prep.prompt_weights
    t_d = prep.decode_s  # [B_max]
    states = np.arange(1, B_max + 1, dtype=np.float64)  # [K]

    def at_batch(n: FloatArray, rate: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The mean per-prompt cost E[m] and the mean occupancy E[N - 1 + chunks] at batch n."""
        E1, E2 = np.interp(n, prep.n_grid, prep.first_mean_s), np.interp(n, prep.n_grid, prep.extra_mean_s)
        occupancy = en - 1.0 + np.interp(n, prep.n_grid, prep.chunks_mean)
        return _mean_prompt_s(rate, np.interp(n, states, t_d), E1, E2), occupancy

    max_rate = np.where(fits, prep.max_rate_per_s[Bc - 1], 0.0)
    Em_B = prep.saturated_prompt_s[Bc - 1]
    nB = Bc.astype(np.float64)
    stable = fits & (lam < max_rate)

    # fixed point between the mean batch and the prompt costs at that batch
    n_ref = np.minimum(lam * en * t_d[0], nB)
    capped = np.minimum(states, Bc[..., None])  # [..., K]: slots busy in state n
    busy = np.concatenate([np.zeros((*Bc.shape, 1)), capped], axis=-1)  # [..., K + 1]
    pi = tail = u = occ = phi = np.zeros(0)
    for _ in range(3):
        Em, occ = at_batch(n_ref, lam)
        u = np.minimum(lam * Em, 0.999)
        phi = capped * (1.0 - u[..., None]) / (t_d[capped.astype(np.int64) - 1] * occ[..., None])
        pi, tail = birth_death(np.where(stable, lam, 0.0), phi)
        pi = np.nan_to_num(pi)
        n_ref = np.maximum((pi * busy).sum(axis=-1) + tail * Bc, 1e-9)
    mean_b = n_ref
    second_b = (pi * busy**2).sum(axis=-1) + tail * Bc**2
    n_seen = np.clip(second_b / np.maximum(mean_b, 1e-12), 1.0, Bc)  # batch seen by a running request
    t_seen = np.interp(n_seen, states, t_d)
    Em, _ = at_batch(mean_b, lam)
    m1 = _interp_rows(mean_b, prep.n_grid, prep.first_s)  # per stratum, for the quadrature
    m2 = _interp_rows(mean_b, prep.n_grid, prep.extra_s)
    J = _interp_rows(mean_b, prep.n_grid, prep.chunks)
    u = np.minimum(lam * Em, 0.999)
    E1, E2, Em1sq = m1 @ w, m2 @ w, m1**2 @ w
    mean_iter = t_seen / (1.0 - u)
    idle = pi[..., 0]
    queued = tail + np.take_along_axis(pi, Bc[..., None], axis=-1)[..., 0]  # P(n >= B) by PASTA
    phi_B = np.take_along_axis(phi, (Bc - 1)[..., None], axis=-1)[..., 0]
    scv_occ = (N.moment(2) - en**2) / np.maximum(occ, 1e-9) ** 2
    slot_wait_mean = (1.0 + scv_occ) / 2.0 / np.maximum(phi_B - lam, 1e-12)

    # iteration lengths: I = t_d + the prompts that arrived during the previous one (Poisson, mean L)
    L = lam * mean_iter
    ks = np.arange(
        int(min(np.ceil(np.max(np.where(stable, L, 0.0), initial=0.0) * 3 + 12), 40)), dtype=np.float64
    )
    pk = _poisson_pmf(_ex(L), ks)  # [..., k]
    length_k = _ex(t_seen) + np.where(ks > 0, _ex(E1) + (ks - 1.0) * _ex(E2), 0.0)  # [..., k]
    EI = (pk * length_k).sum(-1)

    # Monte-Carlo quadrature over one request's random variables (common to every grid point). An
    # arrival lands in an iteration with probability proportional to its length (the inspection
    # paradox): samples carry that weight, and quantiles are weighted.
    U, stratum, n_out, draws = nodes.uniform, nodes.stratum, nodes.output_len, nodes.draws
    shape = (*lam.shape, U.shape[1])
    kc = _DRAWS

    def prompt_sum(count: npt.ArrayLike, which: int, first_alone: bool) -> FloatArray:
        """Marginal time of ``count`` prompts drawn from the strata [..., S]."""
        c = np.asarray(count, dtype=np.int64)
        k = int(min(c.max(initial=0), kc))  # draws beyond the largest count are never summed
        cost = np.take(m2, draws[which][:, :k], axis=-1)  # [..., S, k]
        if first_alone and k > 0:
            cost[..., 0] = np.take(m1, draws[which][:, 0], axis=-1)
        total = np.concatenate([np.zeros((*cost.shape[:-1], 1)), np.cumsum(cost, axis=-1)], axis=-1)
        upto = np.take_along_axis(total, np.minimum(c, kc)[..., None], axis=-1)[..., 0]
        return np.asarray(upto * np.maximum(c / kc, 1.0))  # beyond kc draws: scaled (near saturation)

    busy = U[3] < _ex(1.0 - idle)
    k_now = _poisson_ppf(np.broadcast_to(_ex(L), shape), U[8])
    now = _ex(t_seen) + prompt_sum(k_now, 0, True)
    weight = np.where(busy, now / _ex(np.maximum(EI, 1e-300)), 1.0)
    residual = busy * U[4] * now
    others = _poisson_ppf(_ex(lam) * np.where(busy, now, 0.0), U[9])  # arrived during the whole one
    m_own = np.take(m1, stratum, axis=-1)
    J_own = np.take(J, stratum, axis=-1)
    own = np.where(J_own > 1, J_own * _ex(t_seen) + m_own, _ex(t_seen) + m_own + prompt_sum(others, 1, False))
    slot = (U[6] < _ex(queued)) * -np.log1p(-U[7]) * _ex(slot_wait_mean)
    ttft = slot + residual + own
    # TPOT: the prompt work in the request's N - 1 iterations. Their lengths are correlated, lag-1
    # correlation u (a long iteration collects more prompts for the next), starting from the request's
    # own, long prefill iteration I_0: E[sum] = g (E[I] - t_d) + (I_0 - E[I]) u (1 - u^g) / (1 - u),
    # Var[sum] ~ g Var(I) (1 + u) / (1 - u); a gamma with an atom at 0 for "no prompt arrived".
    gaps = np.maximum(n_out - 1.0, 1.0)
    i0 = np.where(J_own > 1, _ex(mean_iter), own)
    uu = _ex(u)
    mean_x = np.maximum(
        gaps * _ex(mean_iter - t_seen) + (i0 - _ex(mean_iter)) * uu * (1.0 - uu**gaps) / (1.0 - uu), 0.0
    )
    var_x = gaps * _ex(lam * mean_iter * Em1sq / (1.0 - u**2)) * (1.0 + uu) / (1.0 - uu)
    p0 = np.exp(-_ex(lam) * (i0 + (gaps - 1.0) * _ex(mean_iter)))
    cond_mean = np.maximum(mean_x / np.maximum(1.0 - p0, 1e-12), 1e-30)
    cond_var = np.maximum((var_x + mean_x**2) / np.maximum(1.0 - p0, 1e-12) - cond_mean**2, 1e-30)
    gamma = _gamma_ppf(cond_mean**2 / cond_var, nodes.normal) * (cond_var / cond_mean)
    stall = np.where(U[5] < p0, 0.0, gamma)
    tpot = np.where(n_out > 1, _ex(t_seen) + stall / gaps, np.nan)
    e2e = ttft + np.where(n_out > 1, (n_out - 1.0) * tpot, 0.0)

    qs = np.asarray(quantiles)
    bad = np.where(stable, 0.0, np.inf)

    def quant(x: FloatArray) -> FloatArray:
        return np.asarray(_weighted_quantiles(x, weight, qs) + _ex(bad), dtype=np.float64)

    tpot_mean = t_seen / (1.0 - u)  # every gap is a mean iteration
    total_w = weight.sum(axis=-1)
    ttft_mean = (ttft * weight).sum(axis=-1) / total_w  # the quadrature's mean (heavy-tailed prompts)
    return ServingMetrics(
        rate_per_s=np.asarray(lam, dtype=np.float64),
        max_batch_size=np.asarray(B, dtype=np.int64),
        kv_max_sequences=prep.kv_sequences,
        stable=np.asarray(stable),
        utilization=np.asarray(np.where(fits, lam / np.maximum(max_rate, 1e-300), np.inf)),
        max_rate_per_s=np.asarray(max_rate, dtype=np.float64),
        output_tokens_per_s=np.asarray(np.minimum(lam, max_rate) * en, dtype=np.float64),
        mean_batch_size=np.asarray(np.where(stable, mean_b, Bc), dtype=np.float64),
        prefill_fraction=np.asarray(np.where(stable, u, np.minimum(max_rate * Em_B, 1.0)), dtype=np.float64),
        prob_queued=np.asarray(np.where(stable, queued, 1.0), dtype=np.float64),
        decode_step_s=np.asarray(np.where(stable, t_seen, t_d[Bc - 1]), dtype=np.float64),
        ttft_mean_s=np.asarray(ttft_mean + bad, dtype=np.float64),
        tpot_mean_s=np.asarray(tpot_mean + bad, dtype=np.float64),
        e2e_mean_s=np.asarray(ttft_mean + (en - 1.0) * tpot_mean + bad, dtype=np.float64),
        quantiles=tuple(float(q) for q in quantiles),
        ttft_s=quant(ttft),
        tpot_s=quant(tpot),
        e2e_s=quant(e2e),
    )


# ----------------------------------------------------------------------------------------------------
# The planner
# ----------------------------------------------------------------------------------------------------

BATCH_LIMITS = (8, 16, 32, 64, 128, 256)
"""Scheduler batch limits the planner tries by default [-]."""
_PROBES = 7  # replica counts the planner tries inside a bracket per round: one round settles 8


def _meets(m: ServingMetrics, slo: SLO) -> BoolArray:
    ok = m.stable.copy()
    for metric in ("ttft", "tpot", "e2e"):
        target = getattr(slo, f"{metric}_s")
        if target is not None:
            ok &= m.quantile(metric, slo.quantile) <= target
    return np.asarray(ok)


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
    batch_limits: Sequence[int] = BATCH_LIMITS,
    max_batched_tokens: int = 8192,
    allocation: str = "paged",
    max_replicas: int = 10_000,
    usd_per_hour: dict[str, float] | None = None,
    max_utilization: float = 0.85,
    samples: int = 512,
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
        Tensor-parallel degrees to try on every device (degrees the model cannot split are skipped).
    batch_limits : sequence of int
        Scheduler batch limits (``max_num_seqs``) to try [-].
    usd_per_hour : dict, optional
        Device-hour price by hardware name [USD/h], replacing the profiles' on-demand prices.
    max_utilization : float
        Highest load per replica as a share of its saturation rate [-]: headroom for bursts, and the
        range where :func:`analyze` is checked against the simulator (``docs/serving.md``).
    samples : int
        Quadrature points for the latency quantiles (:func:`analyze`).

    Returns one row per candidate: ``feasible`` (and ``reason`` when not), replicas, GPUs, the chosen
    batch limit, per-replica load and predicted latencies, ``usd_per_hour`` and
    ``usd_per_million_output_tokens`` / ``usd_per_million_tokens`` (input and output) at the offered
    load. For a fixed traffic both cost columns rank alike. Among batch limits meeting the SLOs with the
    fewest replicas the cheapest wins, then the lowest p-quantile TTFT. The search evaluates
    :func:`analyze` on a replicas x batch-limits grid: candidate replica counts start at the saturation
    bound ceil(rate / max_rate) and grow until the SLOs hold or ``max_replicas`` is reached.
    """
    import pandas as pd

    from costmodel.registry import load_hardware, load_model

    if not 0 < max_utilization < 1:
        raise CostmodelError(f"max_utilization must lie in (0, 1), got {max_utilization}")
    m = load_model(model)
    nodes = (_nodes(traffic, max(samples // 8, 64), 0), _nodes(traffic, samples, 0))
    rows: list[dict[str, Any]] = []
    for hw_in in hardware_list:
        hw = load_hardware(hw_in)
        for degree in tp:
            row: dict[str, Any] = {"hardware": hw.name, "tp": degree, "gpus_per_replica": degree}
            rows.append(row)
            try:
                engine = Engine.build(
                    m,
                    hw,
                    weight_dtype=weight_dtype,
                    kv_dtype=kv_dtype,
                    activation_dtype=activation_dtype,
                    tp=degree,
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
                        engine,
                        traffic,
                        slo,
                        tuple(batch_limits),
                        max_replicas,
                        nodes,
                        price,
                        max_utilization,
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
        "rate_per_replica_per_s",
        "utilization",
        "mean_batch_size",
        "ttft_p50_s",
        f"ttft_p{q}_s",
        f"tpot_p{q}_s",
        f"e2e_p{q}_s",
        "max_rate_per_replica_per_s",
        "usd_per_hour",
        "usd_per_million_output_tokens",
        "usd_per_million_tokens",
    ]
    # the same columns whether or not any row is feasible (once each: quantile 0.5 names the p50 column twice)
    frame = pd.DataFrame(rows).reindex(columns=list(dict.fromkeys(columns)))
    frame["feasible"] = frame["feasible"].fillna(False).astype(bool)
    frame["reason"] = frame["reason"].fillna("")
    ranked: pd.DataFrame = frame.sort_values(
        by=["feasible", "usd_per_hour"], ascending=[False, True], na_position="last"
    )
    return ranked.reset_index(drop=True)


def _plan_one(
    engine: Engine,
    traffic: Traffic,
    slo: SLO,
    batch_limits: tuple[int, ...],
    max_replicas: int,
    nodes: tuple[_Nodes, _Nodes],
    price: float | None,
    max_utilization: float,
) -> dict[str, Any]:
    """One candidate of :func:`plan`; ``nodes``: the quadrature nodes of its coarse pass, then its full
    ones (shared by the candidates: they depend on the traffic alone)."""
    q = slo.quantile
    quantiles = tuple(sorted({0.5, q}))
    coarse_nodes, full_nodes = nodes
    prep = _prepare(engine, traffic)
    if prep.kv_sequences < 1:
        return {"feasible": False, "reason": "the weights leave no room for a KV cache"}
    Bs = np.asarray(sorted({min(b, engine.max_batch_size) for b in batch_limits}), dtype=np.int64)  # [b]
    lam = traffic.rate_per_s
    infeasible = {"feasible": False, "reason": f"no replica count up to {max_replicas} meets the SLO"}

    def meets(replicas: FloatArray, with_nodes: _Nodes) -> BoolArray:
        """The SLOs at ``replicas`` [..., b] (inf: not asked, False), in one evaluation of the distinct
        (replicas, batch limit) pairs."""
        asked = np.isfinite(replicas)
        key = (replicas * Bs.size + np.arange(Bs.size))[asked]  # exact: integers far below 2^53
        pairs, back = np.unique(key, return_inverse=True)
        at = _evaluate(
            prep, with_nodes, lam / (pairs // Bs.size), Bs[(pairs % Bs.size).astype(np.int64)], quantiles
        )
        out = np.zeros(replicas.shape, dtype=np.bool_)
        out[asked] = _meets(at, slo)[back]
        return out

    saturation = prep.max_rate_per_s[np.minimum(Bs, prep.kv_sequences) - 1]
    r_lo = np.minimum(np.ceil(lam / np.maximum(max_utilization * saturation, 1e-300)), max_replicas)
    # coarse pass: the stability bound plus 0, 1, 2, 4, 8, ... replicas, up to max_replicas
    offsets = np.concatenate([[0], 2.0 ** np.arange(int(np.log2(max_replicas)) + 2)])
    R = np.minimum(r_lo[None, :] + offsets[:, None], max_replicas)  # [o, b]
    R = np.vstack([R, np.full((1, Bs.size), float(max_replicas))])
    ok = meets(R, coarse_nodes)
    if not ok.any():
        return infeasible
    # Per batch limit the fewest replicas lies in (lo, hi]: (stability bound, first count the coarse pass
    # passed]. That pass used few quadrature points, so each round checks with all of them, in one call, up
    # to 1 + _PROBES counts per bracket: its upper end unless already confirmed, and counts spread inside
    # it (all of them when they fit). An upper end that fails moves its bracket up (doubling). Counts
    # above the least upper end are never searched: a limit needing more replicas than another is not
    # chosen.
    cols = np.arange(Bs.size)
    first_ok = np.argmax(ok, axis=0)
    has = ok.any(axis=0)
    hi = np.where(has, R[first_ok, cols], np.inf)
    # the coarse pass's failures are not trusted as lower ends (few quadrature points: it fails counts that
    # pass with all of them), so every bracket starts at the stability bound
    lo = r_lo - 1.0
    sure = np.zeros(Bs.size, dtype=np.bool_)  # hi passed with all the quadrature points
    inside = np.arange(1, _PROBES + 1)[:, None] / (_PROBES + 1)  # [k, 1]
    while True:
        least = hi.min()
        live = np.isfinite(hi) & (lo < least) & ~(sure & (hi - lo <= 1))
        if not live.any():
            break
        ask_top = live & ~(sure & (hi == least))
        spread = np.clip(np.round(lo + np.where(live, least - lo, 0.0) * inside), lo + 1, least - 1)  # [k, b]
        probes = np.vstack(
            [np.where(ask_top, least, np.inf), np.where(live & (least - lo > 1), spread, np.inf)]
        )
        passed = meets(probes, full_nodes)  # [1 + k, b]
        moved = ask_top & ~passed[0] & ~sure & (hi == least)
        passing = np.where(passed & ~moved, probes, np.inf).min(axis=0)
        failing = np.where(~passed & (probes < passing), probes, -np.inf).max(axis=0)
        doubled = np.where(hi >= max_replicas, np.inf, np.minimum(2 * hi, max_replicas))
        lo = np.where(moved, hi, np.maximum(lo, failing))
        hi = np.where(moved, doubled, np.minimum(hi, passing))
        sure = ~moved & (sure | np.isfinite(passing))
    if not np.isfinite(hi).any():
        return infeasible
    r_best = hi.min()
    cand = np.nonzero(hi == r_best)[0]
    final = _evaluate(prep, full_nodes, lam / r_best, Bs[cand], quantiles)
    pick_i = int(np.argmin(final.quantile("ttft", q)))
    metrics, B_pick, r = final, int(Bs[cand][pick_i]), int(r_best)
    per_hour = (price if price is not None else engine.usd_per_hour / engine.gpus) * engine.gpus * r
    out_per_h = lam * traffic.output.mean * 3600.0
    all_per_h = lam * (traffic.output.mean + traffic.prompt.mean) * 3600.0

    def pick(x: npt.ArrayLike) -> float:
        return float(np.asarray(x)[pick_i])

    return {
        "feasible": True,
        "reason": "",
        "replicas": r,
        "gpus": r * engine.gpus,
        "max_batch_size": B_pick,
        "batch_limit_in_force": int(metrics.max_batch_size[pick_i]),
        "rate_per_replica_per_s": pick(metrics.rate_per_s),
        "utilization": pick(metrics.utilization),
        "mean_batch_size": pick(metrics.mean_batch_size),
        "ttft_p50_s": pick(metrics.quantile("ttft", 0.5)),
        f"ttft_p{_pct(q)}_s": pick(metrics.quantile("ttft", q)),
        f"tpot_p{_pct(q)}_s": pick(metrics.quantile("tpot", q)),
        f"e2e_p{_pct(q)}_s": pick(metrics.quantile("e2e", q)),
        "max_rate_per_replica_per_s": pick(metrics.max_rate_per_s),
        "usd_per_hour": per_hour,
        "usd_per_million_output_tokens": per_hour / out_per_h * 1e6,
        "usd_per_million_tokens": per_hour / all_per_h * 1e6,
    }


def _pct(q: float) -> str:
    """0.99 -> '99', 0.999 -> '99.9'."""
    return f"{q * 100:g}"
