"""Attention-DP balancing: an engine that holds new prompts until every attention-DP rank has one.

With attention data parallelism every rank runs its own batch, but the ranks step together (the MoE
layers exchange tokens every layer), so a rank that prefills a prompt makes every other rank's
iteration as long as its own. TensorRT-LLM's PyTorch executor can balance this
(``attention_dp_config: enable_balance``): before each iteration the ranks exchange how many prompts and
decoding sequences each would schedule (``PyExecutor._balance_adp_requests``,
https://github.com/NVIDIA/TensorRT-LLM/blob/main/tensorrt_llm/_torch/pyexecutor/py_executor.py), and

- while some rank has no prompt to schedule, every rank holds its prompts, for at most
  ``timeout_iters`` T iterations (default 50), then lets them through;
- once every rank has one (and a free slot), the prompts go when every rank also has sequences decoding
  and ``batching_wait_iters`` B more iterations have passed (default 10; 0: at once);
- it never holds while some rank has nothing decoding (an idle rank).

(``AttentionDpConfig`` in
https://github.com/NVIDIA/TensorRT-LLM/blob/main/tensorrt_llm/llmapi/llm_args.py; balancing is off by
default.) While a prompt is held its rank keeps running decode-only iterations, so its first token comes
that many iterations later; the held prompts of all ranks are then prefilled in the same iteration.

Mean hold of a prompt in a steady stream of lambda prompts per iteration on each of r ranks (each rank's
share of the closed loop's requests, Poisson): the first prompt to arrive after a release opens a window;
the other r - 1 ranks each receive their first prompt after an exponential time of rate lambda, so every
rank has one after tau = the largest of r - 1 such times, P(tau <= t) = (1 - exp(-lambda t))^(r - 1). The
window lasts W = tau + B when tau < T, else T. The prompt that opened it waits W; the r lambda W that
arrive during it wait W / 2 on average; over all prompts the mean hold is

    (E[W] + r lambda E[W^2] / 2) / (1 + r lambda E[W])

(a renewal-reward ratio: prompts held per window over prompts per window). With one rank, or T = 0 and
B = 0, nothing is held.

Assumptions: arrivals are independent across ranks (a round-robin or least-loaded router sends the next
request to the rank whose request just finished, so each rank's arrivals follow its own completions);
every rank has sequences decoding (the benchmark's steady state; its first wave arrives on every rank at
once and is never held); the held iterations do not slow the request rate (they add at most T + B
iterations to a cycle of osl ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError

FloatArray = npt.NDArray[np.float64]

QUADRATURE_NODES = 48
"""Gauss-Legendre nodes for the window's moments over [0, T]; the integrand is smooth (a power of
1 - exp(-lambda t)), and 48 nodes reach machine precision on the timeouts engines use (tens of
iterations)."""


@dataclass(frozen=True)
class AdpBalance:
    """An engine's attention-DP balancing (module docstring); arrays broadcast with the loop's rows."""

    timeout_iterations: npt.ArrayLike
    """Iterations prompts are held while some rank has none, T [-] (``timeout_iters``)."""
    batching_wait_iterations: npt.ArrayLike = 0.0
    """Further iterations once every rank has a prompt, B [-] (``batching_wait_iters``)."""

    def __post_init__(self) -> None:
        for name in ("timeout_iterations", "batching_wait_iterations"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if np.any(~np.isfinite(value) | (value < 0)):
                raise CostmodelError(f"{name} must be finite and >= 0 [iterations]")


def window_moments(
    balance: AdpBalance, *, arrivals: npt.ArrayLike, ranks: float
) -> tuple[FloatArray, FloatArray]:
    """E[W] and E[W^2] of a balancing window [iterations, iterations^2] (module docstring).

    ``arrivals``: prompts arriving per iteration on one rank, lambda [1/iteration], >= 0; ``ranks``: the
    attention-DP ranks r, >= 1."""
    values = (balance.timeout_iterations, balance.batching_wait_iterations, arrivals)
    T, B, rate = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in values))
    others = max(float(ranks) - 1.0, 0.0)
    x, w = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    # nodes over [0, T] on a trailing axis: t = T (x + 1) / 2, dt = T / 2 dx
    t = T[..., None] * (x + 1.0) / 2.0
    cdf = (1.0 - np.exp(-rate[..., None] * t)) ** others  # P(tau <= t)
    half = T / 2.0
    int_cdf = half * np.sum(w * cdf, axis=-1)  # integral of F over [0, T]
    int_tcdf = half * np.sum(w * t * cdf, axis=-1)  # integral of t F over [0, T]
    at_timeout = (1.0 - np.exp(-rate * T)) ** others if others > 0 else np.ones_like(T)
    # E[tau; tau < T] and E[tau^2; tau < T] by parts
    tau1 = T * at_timeout - int_cdf
    tau2 = T**2 * at_timeout - 2.0 * int_tcdf
    mean = tau1 + B * at_timeout + T * (1.0 - at_timeout)
    square = tau2 + 2.0 * B * tau1 + B**2 * at_timeout + T**2 * (1.0 - at_timeout)
    return np.asarray(mean), np.asarray(square)


def held_iterations(balance: AdpBalance, *, arrivals: npt.ArrayLike, ranks: float) -> FloatArray:
    """Mean iterations a prompt is held by attention-DP balancing [-] (module docstring): 0 with one rank.

    ``arrivals``: prompts arriving per iteration on one rank, lambda [1/iteration]; ``ranks``: the
    attention-DP ranks r."""
    rate = np.asarray(arrivals, dtype=np.float64)
    if np.any(~np.isfinite(rate) | (rate < 0)):
        raise CostmodelError("arrivals must be finite and >= 0 [1/iteration]")
    if ranks <= 1:
        return np.zeros(np.broadcast_shapes(rate.shape, np.shape(balance.timeout_iterations)))
    mean, square = window_moments(balance, arrivals=rate, ranks=ranks)
    total = ranks * rate
    return np.asarray((mean + total * square / 2.0) / (1.0 + total * mean))
