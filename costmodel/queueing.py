"""Classic queues in closed form: M/M/1, M/M/c (Erlang C), M/G/1 (Pollaczek-Khinchine), M/G/c
(Allen-Cunneen), and birth-death chains with state-dependent service (the batch-service model of a
continuous-batching engine in :mod:`costmodel.serving` is one).

Every function is vectorised: rates and server counts broadcast together. Units: rates in [1/s], times
in [s], counts [-].

Unstable load (utilisation >= 1) is not an error: the record says ``stable = False`` and every waiting
time, sojourn time and queue length is ``inf`` there (a sweep over loads keeps its shape and a plot shows
the wall). Invalid input (a negative rate, a non-integer or zero number of servers, a NaN) raises
:class:`costmodel.errors.CostmodelError`.

Sources: Kleinrock 1975, *Queueing Systems* Vol. 1 (ch. 3: birth-death chains, M/M/1, M/M/m,
M/M/m/m; ch. 5: M/G/1 and the Pollaczek-Khinchine mean-value formula); Harchol-Balter 2013,
*Performance Modeling and Design of Computer Systems* (ch. 14 M/M/k and Erlang C, ch. 23 M/G/1,
ch. 24 the M/G/k approximation); Erlang 1917 (the loss and delay formulas); Whitt 1993,
"Approximations for the GI/G/m queue", Production and Operations Management 2(2) (the Allen-Cunneen
approximation and where it is accurate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _rate(name: str, value: npt.ArrayLike, *, positive: bool = False) -> FloatArray:
    x = np.asarray(value, dtype=np.float64)
    bad = ~(x > 0) if positive else ~(x >= 0)  # also catches NaN
    bad |= ~np.isfinite(x)
    if np.any(bad):
        rule = "> 0" if positive else ">= 0"
        raise CostmodelError(f"{name} must be finite and {rule}, got {x[bad].flat[0]!r}")
    return x


def _servers(value: npt.ArrayLike) -> FloatArray:
    x = np.asarray(value, dtype=np.float64)
    bad = ~((x >= 1) & (x == np.floor(x)) & np.isfinite(x))
    if np.any(bad):
        raise CostmodelError(f"servers must be an integer >= 1, got {x[bad].flat[0]!r}")
    return x


@dataclass(frozen=True)
class QueueMetrics:
    """Steady-state figures of a queue; arrays follow the broadcast inputs.

    Where ``stable`` is False (``utilization >= 1``) the waits, sojourns and queue lengths are ``inf``
    and ``prob_wait`` is 1.
    """

    arrival_rate: FloatArray
    """lambda [1/s]."""
    utilization: FloatArray
    """rho = lambda / (c mu), the busy fraction of each server when stable [-]."""
    stable: BoolArray
    """rho < 1: the queue does not grow without bound."""
    prob_wait: FloatArray
    """P(an arrival waits) [-]: Erlang C for M/M/c, rho for M/G/1 (PASTA)."""
    mean_wait_s: FloatArray
    """Mean time in the queue before service, W_q [s]."""
    mean_service_s: FloatArray
    """Mean service time, E[S] [s]."""
    mean_sojourn_s: FloatArray
    """Mean time in the system, W = W_q + E[S] [s]."""
    mean_queue_length: FloatArray
    """Mean number waiting, L_q = lambda W_q (Little's law) [-]."""
    mean_in_system: FloatArray
    """Mean number in the system, L = lambda W (Little's law) [-]."""


def _metrics(
    lam: FloatArray, rho: FloatArray, prob_wait: FloatArray, wait_s: FloatArray, service_s: FloatArray
) -> QueueMetrics:
    stable = np.asarray(rho < 1)
    wq = np.where(stable, wait_s, np.inf)
    es = np.broadcast_to(service_s, wq.shape)
    return QueueMetrics(
        arrival_rate=np.asarray(np.broadcast_to(lam, wq.shape), dtype=np.float64),
        utilization=np.asarray(rho, dtype=np.float64),
        stable=stable,
        prob_wait=np.asarray(np.where(stable, prob_wait, 1.0), dtype=np.float64),
        mean_wait_s=np.asarray(wq, dtype=np.float64),
        mean_service_s=np.asarray(es, dtype=np.float64),
        mean_sojourn_s=np.asarray(wq + es, dtype=np.float64),
        mean_queue_length=np.asarray(np.where(stable, lam * wq, np.inf), dtype=np.float64),
        mean_in_system=np.asarray(np.where(stable, lam * (wq + es), np.inf), dtype=np.float64),
    )


def erlang_b(servers: npt.ArrayLike, offered_load: npt.ArrayLike) -> FloatArray:
    """Blocking probability of the M/M/c/c loss system, Erlang B(c, a) [-].

    Parameters
    ----------
    servers : int or array
        c [-], integer >= 1.
    offered_load : float or array
        a = lambda / mu [-] (erlangs).

    Computed with the recursion B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)) (Erlang 1917; the recursive
    form of Kleinrock 1975 Vol. 1 §3.7), which is stable for any c and a, unlike the ratio of sums
    a^c/c! / sum_k a^k/k!, whose terms overflow for c of a few hundred.
    """
    c = _servers(servers)
    a = _rate("offered_load", offered_load)
    c, a = np.broadcast_arrays(c, a)
    b = np.ones(c.shape)
    for k in range(1, int(c.max(initial=1)) + 1):
        b = np.where(k <= c, a * b / (k + a * b), b)
    return np.asarray(b, dtype=np.float64)


_ERLANG_RECURSION_MAX_SERVERS = 1024
"""Up to this many servers :func:`erlang_c` uses :func:`erlang_b`'s recursion (one vectorised step per
server); beyond, the closed form in the Poisson distribution (constant time per point)."""


def erlang_c(servers: npt.ArrayLike, offered_load: npt.ArrayLike) -> FloatArray:
    """Probability that an arrival to an M/M/c queue waits, Erlang C(c, a) [-]; 1 where a >= c.

    C = c B / (c - a (1 - B)) with B = Erlang B(c, a) (Harchol-Balter 2013, ch. 14; the identity
    follows from the two formulas' sums, Kleinrock 1975 Vol. 1 §3.5 and §3.7). B comes from the
    recursion of :func:`erlang_b` for c <= 1024, and for more servers from its closed form
    B = P(N = c) / P(N <= c), N ~ Poisson(a) (the truncated-Poisson form of Erlang's loss formula,
    Kleinrock 1975 Vol. 1 §3.7), in log space with the regularised incomplete gamma function
    P(N <= c) = Q(c + 1, a): time and memory independent of c (``erlang_c(10**7, 5)`` is immediate).
    """
    c = _servers(servers)
    a = _rate("offered_load", offered_load)
    c, a = np.broadcast_arrays(c, a)
    many = c > _ERLANG_RECURSION_MAX_SERVERS
    b = np.zeros(c.shape)
    if np.any(~many):
        b[~many] = erlang_b(c[~many], a[~many])
    if np.any(many):
        from scipy.special import gammaincc, gammaln

        cm, am = c[many], a[many]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_pmf = np.where(am > 0, cm * np.log(np.where(am > 0, am, 1.0)) - am - gammaln(cm + 1), -np.inf)
            b[many] = np.where(am > 0, np.exp(log_pmf) / gammaincc(cm + 1, am), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = c * b / (c - a * (1.0 - b))
    return np.asarray(np.where(a < c, np.clip(p, 0.0, 1.0), 1.0), dtype=np.float64)


def mmc(arrival_rate: npt.ArrayLike, service_rate: npt.ArrayLike, servers: npt.ArrayLike = 1) -> QueueMetrics:
    """M/M/c: Poisson arrivals, exponential service, c identical servers, FCFS, infinite room.

    Parameters
    ----------
    arrival_rate : float or array
        lambda [1/s].
    service_rate : float or array
        mu, the rate of one server [1/s].
    servers : int or array
        c [-].

    W_q = C(c, a) / (c mu - lambda), a = lambda / mu, C the Erlang C probability (Erlang 1917;
    Kleinrock 1975 Vol. 1 §3.5; Harchol-Balter 2013 ch. 14). For c = 1 this is M/M/1:
    W_q = rho / (mu - lambda). Holds exactly for Poisson arrivals and exponential service; see
    :func:`mgc` for other service-time distributions.
    """
    lam = _rate("arrival_rate", arrival_rate)
    mu = _rate("service_rate", service_rate, positive=True)
    c = _servers(servers)
    lam, mu, c = np.broadcast_arrays(lam, mu, c)
    a = lam / mu
    rho = a / c
    stable = rho < 1
    pw = erlang_c(c, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        wq = np.where(stable, pw / (c * mu - lam), np.inf)
    return _metrics(lam, rho, pw, wq, 1.0 / mu)


def mm1(arrival_rate: npt.ArrayLike, service_rate: npt.ArrayLike) -> QueueMetrics:
    """M/M/1, the one-server case of :func:`mmc`: W_q = rho / (mu - lambda) (Kleinrock 1975 Vol. 1
    §3.2, the mean number rho / (1 - rho) with Little's law)."""
    return mmc(arrival_rate, service_rate, 1)


def mmc_wait_quantile_s(
    arrival_rate: npt.ArrayLike, service_rate: npt.ArrayLike, servers: npt.ArrayLike, q: npt.ArrayLike
) -> FloatArray:
    """The q-quantile of the M/M/c waiting time W_q [s]; ``inf`` where unstable.

    P(W_q > t) = C(c, a) exp(-(c mu - lambda) t) (Harchol-Balter 2013, ch. 14; Kleinrock 1975 Vol. 1
    §3.5), so the quantile is max(0, ln(C / (1 - q)) / (c mu - lambda)): 0 when fewer than a fraction
    1 - q of arrivals wait at all.
    """
    m = mmc(arrival_rate, service_rate, servers)
    qq = np.asarray(q, dtype=np.float64)
    if np.any(~((qq >= 0) & (qq < 1))):
        raise CostmodelError(f"q must lie in [0, 1), got {q!r}")
    lam = m.arrival_rate
    mu = 1.0 / m.mean_service_s
    c = np.asarray(servers, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.log(np.maximum(m.prob_wait, 1e-300) / (1.0 - qq)) / (c * mu - lam)
    return np.asarray(np.where(m.stable, np.maximum(t, 0.0), np.inf), dtype=np.float64)


def mg1(
    arrival_rate: npt.ArrayLike, mean_service_s: npt.ArrayLike, service_scv: npt.ArrayLike = 1.0
) -> QueueMetrics:
    """M/G/1 FCFS: the Pollaczek-Khinchine mean waiting time.

    Parameters
    ----------
    arrival_rate : float or array
        lambda [1/s].
    mean_service_s : float or array
        E[S] [s].
    service_scv : float or array
        Squared coefficient of variation of the service time, Var(S) / E[S]^2 [-]: 0 deterministic,
        1 exponential.

    W_q = lambda E[S^2] / (2 (1 - rho)) = rho / (1 - rho) (1 + scv) / 2 E[S] (Pollaczek 1930, Khinchine
    1932; Kleinrock 1975 Vol. 1 §5.6, the P-K mean-value formula; Harchol-Balter 2013 ch. 23). Exact
    for Poisson arrivals and any service distribution with a finite second moment; P(wait) = rho by
    PASTA.
    """
    lam = _rate("arrival_rate", arrival_rate)
    es = _rate("mean_service_s", mean_service_s, positive=True)
    scv = _rate("service_scv", service_scv)
    lam, es, scv = np.broadcast_arrays(lam, es, scv)
    rho = lam * es
    stable = rho < 1
    with np.errstate(divide="ignore", invalid="ignore"):
        wq = np.where(stable, rho / (1.0 - rho) * (1.0 + scv) / 2.0 * es, np.inf)
    return _metrics(lam, rho, rho, wq, es)


def mgc(
    arrival_rate: npt.ArrayLike,
    mean_service_s: npt.ArrayLike,
    servers: npt.ArrayLike,
    service_scv: npt.ArrayLike = 1.0,
) -> QueueMetrics:
    """M/G/c FCFS by the Allen-Cunneen approximation: W_q ~ W_q(M/M/c) (1 + scv) / 2.

    Parameters as in :func:`mmc` and :func:`mg1`. Exact for c = 1 (it is Pollaczek-Khinchine) and for
    exponential service; for c > 1 it is the standard two-moment approximation (Whitt 1993, §3;
    Harchol-Balter 2013 ch. 24), accurate to about 10 % for moderate variability (scv <= 2) and loads
    above about 0.5, poorer at light load and for heavy-tailed service. ``prob_wait`` is Erlang C
    (exact only for exponential service).
    """
    lam = _rate("arrival_rate", arrival_rate)
    es = _rate("mean_service_s", mean_service_s, positive=True)
    scv = _rate("service_scv", service_scv)
    m = mmc(lam, 1.0 / es, servers)
    return _metrics(m.arrival_rate, m.utilization, m.prob_wait, m.mean_wait_s * (1.0 + scv) / 2.0, es)


def birth_death(arrival_rate: npt.ArrayLike, departure_rates: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Stationary distribution of a birth-death chain with constant birth rate and a geometric tail.

    Parameters
    ----------
    arrival_rate : float or array, shape [...]
        lambda [1/s], the birth rate in every state.
    departure_rates : array, shape [..., K]
        phi(1), ..., phi(K) [1/s], the death rate in states 1..K; in every state n > K the death rate
        stays phi(K) (all K servers busy, the rest wait).

    Returns
    -------
    (pi, tail) : arrays, shapes [..., K + 1] and [...]
        pi[n] = P(N = n) for n = 0..K, and P(N > K) = pi[K] r / (1 - r), r = lambda / phi(K).

    pi(n) is proportional to prod_{k<=n} lambda / phi(k) (detailed balance; Kleinrock 1975 Vol. 1
    §3.1). Where lambda >= phi(K) the chain is transient: pi is all NaN and tail is ``inf``.
    Computed in log space, so a product of thousands of ratios neither overflows nor underflows.
    """
    lam = _rate("arrival_rate", arrival_rate)
    phi = np.asarray(departure_rates, dtype=np.float64)
    if phi.ndim == 0 or np.any(~(phi > 0)):
        raise CostmodelError("departure_rates must be an array of positive rates over the states 1..K")
    lam_b = np.broadcast_to(lam, np.broadcast_shapes(lam.shape, phi.shape[:-1]))
    phi = np.broadcast_to(phi, (*lam_b.shape, phi.shape[-1]))
    r = lam_b / phi[..., -1]
    stable = r < 1
    with np.errstate(divide="ignore"):
        log_ratio = np.log(lam_b[..., None]) - np.log(phi)
    log_w = np.concatenate([np.zeros((*lam_b.shape, 1)), np.cumsum(log_ratio, axis=-1)], axis=-1)
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)  # lambda = 0: all mass at n = 0
    top = np.max(log_w, axis=-1, keepdims=True)
    w = np.exp(log_w - top)
    r_safe = np.where(stable, r, 0.0)
    tail_w = w[..., -1] * r_safe / (1.0 - r_safe)
    total = w.sum(axis=-1) + tail_w
    pi = np.where(stable[..., None], w / total[..., None], np.nan)
    tail = np.where(stable, tail_w / total, np.inf)
    return np.asarray(pi, dtype=np.float64), np.asarray(tail, dtype=np.float64)
