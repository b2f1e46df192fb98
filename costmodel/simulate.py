"""Discrete-event simulation: FCFS multi-server queues, and an iteration-level serving engine.

Both are small hand-written loops rather than a simulation library. The engine is a single server
that runs iterations back to back: the only events are "an iteration ends" and "a request arrives", and
the arrivals are known in advance, so the loop steps from one iteration to the next and admits whatever
has arrived meanwhile. A process-based library (SimPy) would wrap that same loop in a generator and add
a scheduler per event, with nothing to share between processes; ``docs/serving.md`` has the reasoning.
The FCFS queue is the Lindley recursion (one server, vectorised) or the Kiefer-Wolfowitz workload
recursion with a heap (c servers). Both are checked in ``tests/test_simulate.py`` against closed forms.

The engine simulator (:func:`serve`) plays the scheduler of :class:`costmodel.serving.Engine`: every
iteration, all running sequences past their prompt decode one token and the rest of the token budget
goes to prompt chunks in admission order; waiting requests are admitted first come first served while
the batch limit and the KV memory allow (paged: blocks of the prompt plus a 1 % watermark, as vLLM;
contiguous: one ``max_len`` reservation each); with paged allocation a decode that needs a block when
none is free preempts the most recently admitted sequence, which is recomputed when readmitted (its
prompt and the tokens generated so far are prefilled again). Iteration times come from
:class:`costmodel.serving.StepTable`, i.e. from the same roofline step time as the analytic model, with
the engine's fitted costs beyond the kernels where it names an engine (:meth:`Engine.iteration_s`; its
``request_overhead_s`` delays each request's first and last token, :attr:`Engine.first_token_overhead_s`).
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError
from costmodel.serving import Engine, StepTable, Traffic

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


# ----------------------------------------------------------------------------------------------------
# Classic queues
# ----------------------------------------------------------------------------------------------------


def fcfs_waits(arrival_s: npt.ArrayLike, service_s: npt.ArrayLike, servers: int = 1) -> FloatArray:
    """Waiting time in queue of each customer of a FCFS queue with ``servers`` identical servers [s].

    Parameters
    ----------
    arrival_s : array
        Arrival times, non-decreasing [s].
    service_s : array
        Service times, same length [s].
    servers : int
        c [-].

    One server: Lindley's recursion W_(n+1) = max(0, W_n + S_n - A_(n+1)), solved in closed form as a
    reflected random walk, W_n = Z_n - min_(k<=n) Z_k with Z the partial sums of S_k - A_(k+1) (Lindley
    1952). c servers: the Kiefer-Wolfowitz recursion, each customer starting when it has arrived and the
    earliest-free server is free (a heap of the servers' free times).
    """
    a = np.asarray(arrival_s, dtype=np.float64)
    s = np.asarray(service_s, dtype=np.float64)
    if a.shape != s.shape or a.ndim != 1:
        raise CostmodelError("arrival_s and service_s must be 1-D arrays of the same length")
    if np.any(np.diff(a) < 0) or np.any(~(s >= 0)):
        raise CostmodelError("arrival times must not decrease and service times must be >= 0")
    if not (isinstance(servers, int | np.integer) and servers >= 1):
        raise CostmodelError(f"servers must be an integer >= 1, got {servers!r}")
    if a.size == 0:
        return np.zeros(0)
    if servers == 1:
        z = np.concatenate([[0.0], np.cumsum(s[:-1] - np.diff(a))])
        return np.asarray(z - np.minimum.accumulate(z), dtype=np.float64)
    free = [0.0] * int(servers)
    waits = np.empty(a.size)
    for i in range(a.size):
        start = max(a[i], heapq.heappop(free))
        waits[i] = start - a[i]
        heapq.heappush(free, start + s[i])
    return waits


def batch_means_ci(x: npt.ArrayLike, *, batches: int = 20, z: float = 3.29) -> tuple[float, float]:
    """(mean, half-width) of a confidence interval for the mean of a correlated stationary series by the
    method of batch means: ``batches`` consecutive batch averages, treated as independent (Law & Kelton
    2000, *Simulation Modeling and Analysis*, §9.5.3). ``z`` is the normal quantile (3.29: 99.9 %,
    two-sided); with 20 batches a t quantile would be ~15 % wider, which ``z`` is chosen to cover."""
    v = np.asarray(x, dtype=np.float64)
    n = v.size // batches * batches
    if n == 0:
        raise CostmodelError(f"need at least {batches} observations for {batches} batch means")
    means = v[:n].reshape(batches, -1).mean(axis=1)
    return float(means.mean()), float(z * means.std(ddof=1) / np.sqrt(batches))


# ----------------------------------------------------------------------------------------------------
# The serving engine
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeResult:
    """What one simulated run measured. Per-request arrays are in arrival order; statistics use the
    requests that arrived in [warmup_s, horizon_s] (``measured``)."""

    arrival_s: FloatArray
    first_token_s: FloatArray
    """When the prefill that produced the first token ended [s]; NaN if it never did."""
    finish_s: FloatArray
    """When the last token was produced [s]; NaN if the run stopped first."""
    prompt_tokens: IntArray
    output_tokens: IntArray
    preemptions: IntArray
    warmup_s: float
    horizon_s: float
    output_tokens_per_s: float
    """Tokens produced in [warmup_s, horizon_s] over its length [tokens/s]."""
    mean_batch_size: float
    """Time-average of the sequences running in [warmup_s, horizon_s] [-]."""
    iterations: int

    @property
    def window(self) -> BoolArray:
        """Requests that arrived in the measurement window."""
        return np.asarray((self.arrival_s >= self.warmup_s) & (self.arrival_s <= self.horizon_s))

    @property
    def completed_fraction(self) -> float:
        """Share of the window's requests that finished before the run stopped [-] (1 when stable)."""
        w = self.window
        return float(np.isfinite(self.finish_s[w]).mean()) if w.any() else 0.0

    @property
    def measured(self) -> BoolArray:
        """Window requests that finished."""
        return np.asarray(self.window & np.isfinite(self.finish_s))

    @property
    def ttft_s(self) -> FloatArray:
        """Time to first token of each measured request [s]."""
        m = self.measured
        return np.asarray(self.first_token_s[m] - self.arrival_s[m])

    @property
    def e2e_s(self) -> FloatArray:
        """End-to-end latency of each measured request [s]."""
        m = self.measured
        return np.asarray(self.finish_s[m] - self.arrival_s[m])

    @property
    def tpot_s(self) -> FloatArray:
        """Mean time per output token after the first, of each measured request with >= 2 tokens [s]."""
        m = self.measured & (self.output_tokens > 1)
        return np.asarray((self.finish_s[m] - self.first_token_s[m]) / (self.output_tokens[m] - 1))

    def quantile(self, metric: str, q: npt.ArrayLike) -> FloatArray:
        """Empirical quantile of ``ttft``, ``tpot`` or ``e2e`` [s]."""
        return np.asarray(np.quantile(getattr(self, f"{metric}_s"), np.asarray(q, dtype=np.float64)))

    def quantile_interval(self, metric: str, q: float, *, z: float = 2.58) -> tuple[float, float]:
        """Confidence interval of the ``q``-quantile of ``ttft``, ``tpot`` or ``e2e`` [s] (z = 2.58: 99 %).

        Successive requests are correlated (they queue behind each other), so the binomial interval of
        independent samples is too narrow. Instead the share of requests at or below the estimated
        quantile is given a batch-means interval (:func:`batch_means_ci`, 20 consecutive batches), and
        the quantiles at its two ends bound the quantile (sectioning; Law & Kelton 2000, §9.5.3)."""
        x = getattr(self, f"{metric}_s")
        if x.size < 20:
            return float("nan"), float("nan")
        estimate = np.quantile(x, q)
        _, half = batch_means_ci((x <= estimate).astype(np.float64), z=z)
        lo, hi = np.quantile(x, [max(q - half, 0.0), min(q + half, 1.0)])
        return float(lo), float(hi)


def _requests(
    traffic: Traffic, n_requests: int, rng: np.random.Generator
) -> tuple[FloatArray, IntArray, IntArray]:
    if traffic.trace is not None:
        tr = traffic.trace
        scale = tr.rate_per_s / traffic.rate_per_s if len(tr) > 1 else 1.0
        return (tr.arrival_s - tr.arrival_s[0]) * scale, tr.prompt_tokens.copy(), tr.output_tokens.copy()
    if not (isinstance(n_requests, int | np.integer) and n_requests >= 1):
        raise CostmodelError(f"n_requests must be an integer >= 1, got {n_requests!r}")
    arrival = np.cumsum(rng.exponential(1.0 / traffic.rate_per_s, n_requests))
    return arrival, traffic.prompt.sample(rng, n_requests), traffic.output.sample(rng, n_requests)


def serve(
    engine: Engine,
    traffic: Traffic,
    *,
    n_requests: int = 2000,
    seed: int = 0,
    warmup_fraction: float = 0.1,
    drain_factor: float = 0.5,
    table: StepTable | None = None,
) -> ServeResult:
    """Simulate one engine replica serving ``traffic``: Poisson arrivals (``n_requests`` of them) or the
    trace's, iteration by iteration.

    Parameters
    ----------
    engine : Engine
    traffic : Traffic
        With a ``trace``, its requests are replayed (times scaled to ``traffic.rate_per_s``) and
        ``n_requests`` is ignored.
    n_requests : int
        Poisson arrivals to simulate [-].
    seed : int
        Seed of the arrival and length draws.
    warmup_fraction : float
        Share of the arrival horizon discarded from the statistics (the empty start) [-].
    drain_factor : float
        After the last arrival, the run continues at most ``drain_factor`` x horizon to let the window's
        requests finish; under overload some never do (``completed_fraction`` < 1).
    table : StepTable, optional
        Precomputed iteration times of ``engine`` (reuse it across runs of one engine).

    Output lengths are capped so that prompt + output <= ``engine.max_len`` (an engine's max-tokens
    limit); a prompt of ``max_len`` tokens or more raises :class:`CostmodelError`.
    """
    if not 0 <= warmup_fraction < 1:
        raise CostmodelError(f"warmup_fraction must lie in [0, 1), got {warmup_fraction}")
    if engine.deployment.attention_dp > 1:
        raise CostmodelError(
            f"attention_dp ({engine.deployment.attention_dp}) > 1 is not simulated (one scheduler per rank "
            "is not modelled here); use costmodel.closed_loop or the analytic capacity model"
        )
    rng = np.random.default_rng(seed)
    arrival, P, N = _requests(traffic, n_requests, rng)
    L = engine.max_len
    if np.any(P >= L):
        raise CostmodelError(
            f"a prompt of {int(P.max())} tokens leaves no room for an output token in max_len = {L}"
        )
    N = np.minimum(N, L - P)
    table = table or StepTable(engine)
    B, C, bs = engine.max_batch_size, engine.max_batched_tokens, engine.block_size
    capacity = engine.kv_capacity_tokens()
    paged = engine.allocation == "paged" and engine.model.ssm is None
    if engine.model.ssm is not None:
        B = min(B, capacity)
    elif not paged:
        B = min(B, capacity // L)
    total_blocks = capacity // bs
    watermark = max(1, total_blocks // 100)
    if B < 1 or (paged and -(-int((P + N).max()) // bs) + watermark > total_blocks):
        raise CostmodelError(
            f"{engine.model.name} on {engine.gpus} x {engine.hardware.name}: the KV cache "
            f"({capacity:,} tokens) cannot hold the longest request"
        )

    n = arrival.size
    gen = np.zeros(n, dtype=np.int64)  # tokens generated so far
    target = np.zeros(n, dtype=np.int64)  # tokens to prefill since the last admission
    done = np.zeros(n, dtype=np.int64)  # of which prefilled
    held = np.zeros(n, dtype=np.int64)  # KV blocks held
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    preempt = np.zeros(n, dtype=np.int64)
    running = np.zeros(0, dtype=np.int64)  # admission order
    waiting: deque[int] = deque()
    free = total_blocks
    horizon = float(arrival[-1])
    t_warm, t_stop = warmup_fraction * horizon, horizon * (1.0 + drain_factor)
    t, nxt, iterations = 0.0, 0, 0
    window_tokens, window_batch_time = 0, 0.0

    while True:
        while nxt < n and arrival[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        if running.size == 0 and not waiting:
            if nxt >= n:
                break
            t = float(arrival[nxt])
            continue
        if t > t_stop:
            break
        admitted: list[int] = []
        while waiting and running.size + len(admitted) < B:
            i = waiting[0]
            tokens = int(P[i] + gen[i])
            if paged:
                need = -(-tokens // bs)
                if free - need < watermark:
                    break
                free -= need
                held[i] = need
            waiting.popleft()
            admitted.append(i)
            target[i], done[i] = tokens, 0
        if admitted:
            running = np.concatenate([running, np.asarray(admitted, dtype=np.int64)])
        dec = running[done[running] >= target[running]]
        if paged and dec.size:
            grow = -(-(P[dec] + gen[dec]) // bs) - held[dec]  # a decode appends one token to the cache
            while grow.sum() > free:  # preempt the most recently admitted sequence (recomputed later)
                victim = int(running[-1])
                free += int(held[victim])
                held[victim] = 0
                preempt[victim] += 1
                running = running[:-1]
                waiting.appendleft(victim)
                keep = dec != victim
                dec, grow = dec[keep], grow[keep]
            held[dec] += grow
            free -= int(grow.sum())
        budget = C - dec.size
        chunks: list[tuple[int, int]] = []
        chunk_ids: list[int] = []
        for i in running[done[running] < target[running]]:
            if budget <= 0:
                break
            k = int(min(target[i] - done[i], budget))
            chunks.append((k, int(done[i])))
            chunk_ids.append(int(i))
            budget -= k
        if not dec.size and not chunks:  # everything preempted: readmit next round
            continue
        dt = table.iteration_s(int(dec.size), float((P[dec] + gen[dec] - 1).sum()), chunks)
        t_start, t = t, t + dt
        iterations += 1
        gen[dec] += 1
        produced = int(dec.size)
        for i, (k, _) in zip(chunk_ids, chunks, strict=True):
            done[i] += k
            if done[i] >= target[i]:
                gen[i] += 1
                produced += 1
                if np.isnan(first[i]):
                    first[i] = t
        ended = gen[running] >= N[running]
        if ended.any():
            ids = running[ended]
            finish[ids] = t
            free += int(held[ids].sum())
            held[ids] = 0
            running = running[~ended]
        overlap = min(t, horizon) - max(t_start, t_warm)
        if overlap > 0:
            window_batch_time += overlap * (dec.size + len(chunks))
        if t_warm <= t <= horizon:
            window_tokens += produced

    span = max(horizon - t_warm, 1e-12)
    # the engine's fixed cost on each first token outside its iterations (Engine.first_token_overhead_s):
    # a constant delay of every request, its first and its last token alike
    delay = engine.first_token_overhead_s
    return ServeResult(
        arrival_s=arrival,
        first_token_s=first + delay,
        finish_s=finish + delay,
        prompt_tokens=P,
        output_tokens=N,
        preemptions=preempt,
        warmup_s=t_warm,
        horizon_s=horizon,
        output_tokens_per_s=window_tokens / span,
        mean_batch_size=window_batch_time / span,
        iterations=iterations,
    )
