"""Speculative decoding: acceptance rate, tokens per verification, time per token, speedup.

A cheap draft model proposes ``k`` tokens; the target model scores all of them in one forward pass and
keeps the longest prefix that survives a per-token rejection test, then samples one more token itself
(from a residual distribution after a rejection, from its own distribution — the *bonus* token — when all
``k`` drafts survive). The output is distributed exactly as the target's own samples (Leviathan et al.
2023, arXiv:2211.17192, Appendix A.1; Chen et al. 2023, arXiv:2302.01318, Algorithm 2 and its proof).

Notation follows Leviathan et al.: ``p`` is the target's next-token distribution, ``q`` the draft's
(Chen et al. swap the letters). ``alpha`` [-] is the expected acceptance rate, ``k`` [tokens] the number
of drafted tokens per verification (Leviathan's gamma), ``c`` [-] = T_draft / T_target the cost of one
draft step relative to one plain target decoding step, ``verify_ratio`` [-] = T_verify / T_target the
cost of the verification pass (k + 1 tokens in one forward pass) relative to that step.

Assumptions of the closed forms (the position-dependent form drops the first):

- Acceptance is i.i.d. across positions with rate ``alpha`` (Leviathan et al. §3.1). Real acceptance
  varies with the context; :func:`expected_tokens_positional` takes one rate per draft position.
- Verifying k + 1 tokens costs about one target step (``verify_ratio = 1``) while decoding is memory
  bound: the weights are read once for all k + 1 tokens. At large batch or long drafts the pass becomes
  compute bound and ``verify_ratio`` grows; the hardware-aware value comes from the roofline model.
- Drafting is sequential: k draft steps of T_draft each, not overlapped with verification.

Departures from the seed notes (seeds 000-002; ``docs/speculative.md`` has the table):

- Seed 000 gives E[n] ~ 3.4 and a 2.3x speedup at alpha = 0.8, k = 5, c = 0.1. Its formula
  (1 - alpha^(k+1)) / (1 - alpha) is right and gives 3.689 and 3.689 / 1.5 = 2.460x; 3.4 is
  (1 - alpha^k) / (1 - alpha) = 3.3616, the count without the bonus token (what seed 001's pseudocode
  does), and 2.3 is 3.4 / 1.5 from the rounded figure.
- Seed 002's recursion E_k = P (E_(k+1) + 1) needs the base case E_N = 0, not N; its closed form
  P (1 - P^N) / (1 - P) for the accepted drafts is right (:func:`expected_accepted_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from costmodel import checks
from costmodel.errors import CostmodelError

if TYPE_CHECKING:
    import pandas as pd

    from costmodel.specs import Deployment, HardwareProfile, ModelProfile, Workload

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DISTRIBUTION_ATOL = 1e-4
"""Default for how far from 1 a probability vector's sum may be [-]. A float32 softmax over a 256k
vocabulary sums to 1 within about 1.4e-5 (PyTorch); probabilities stored in bf16 only within about 1e-3,
so renormalise those or pass a larger ``atol``."""


# ----------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------


def _in_range(name: str, value: npt.ArrayLike, low: float, high: float) -> FloatArray:
    x = np.asarray(value, dtype=np.float64)
    bad = ~((x >= low) & (x <= high))  # also catches NaN
    if np.any(bad):
        raise CostmodelError(f"{name} must lie in [{low}, {high}], got {x[bad].flat[0]!r}")
    return x


def _draft_len(k: npt.ArrayLike, *, minimum: int = 0) -> FloatArray:
    x = np.asarray(k, dtype=np.float64)
    bad = ~((x >= minimum) & (x == np.floor(x)) & np.isfinite(x))
    if np.any(bad):
        raise CostmodelError(f"k must be an integer >= {minimum} [tokens], got {x[bad].flat[0]!r}")
    return x


def _distributions(name: str, probs: npt.ArrayLike, axis: int, atol: float) -> FloatArray:
    x = np.asarray(probs, dtype=np.float64)
    if x.ndim == 0:
        raise CostmodelError(f"{name} must have a vocabulary axis, got a scalar")
    if not np.all(x >= 0):  # also catches NaN
        raise CostmodelError(f"{name} must be non-negative probabilities (found a negative or NaN entry)")
    sums = x.sum(axis=axis)
    off = ~(np.abs(sums - 1.0) <= atol)
    if np.any(off):
        raise CostmodelError(
            f"{name} must sum to 1 over axis {axis} (within atol={atol}), got a sum of "
            f"{sums[off].flat[0]!r}; use from_logits() to normalise logits"
        )
    return x


# ----------------------------------------------------------------------------------------------------
# Distributions: acceptance and the residual
# ----------------------------------------------------------------------------------------------------


def from_logits(logits: npt.ArrayLike, temperature: float = 1.0, axis: int = -1) -> FloatArray:
    """Next-token distribution softmax(logits / temperature) over ``axis`` [-].

    ``temperature = 0`` is greedy decoding: a one-hot vector on the first largest logit. Speculative
    decoding with two greedy models accepts a draft token exactly when both argmaxes agree.
    """
    z = np.asarray(logits, dtype=np.float64)
    if not temperature >= 0:
        raise CostmodelError(f"temperature must be >= 0, got {temperature!r}")
    if temperature == 0:
        top = np.argmax(z, axis=axis)
        one_hot: FloatArray = (np.arange(z.shape[axis]) == np.expand_dims(top, -1)).astype(np.float64)
        return np.moveaxis(one_hot, -1, axis)
    z = z / temperature
    z = z - np.max(z, axis=axis, keepdims=True)  # exp cannot overflow
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=axis, keepdims=True), dtype=np.float64)


def acceptance_probability(p: npt.ArrayLike, q: npt.ArrayLike) -> FloatArray:
    """Probability of keeping a drafted token x: min(1, p(x) / q(x)) [-], elementwise.

    Parameters
    ----------
    p, q : array
        Target and draft probabilities of the same tokens [-] (whole distributions or gathered values;
        they need not sum to 1).

    Defined as 1 where q(x) = 0: the draft never proposes such a token, so the value is never used.
    Source: Leviathan et al. 2023, Algorithm 1 (Chen et al. 2023, Algorithm 2, with p and q swapped).
    """
    pp = np.asarray(p, dtype=np.float64)
    qq = np.asarray(q, dtype=np.float64)
    if not (np.all(pp >= 0) and np.all(qq >= 0)):
        raise CostmodelError("p and q must be non-negative probabilities (found a negative or NaN entry)")
    safe_q = np.where(qq > 0, qq, 1.0)
    return np.where(qq > 0, np.minimum(1.0, pp / safe_q), 1.0)


def acceptance_rate(
    p: npt.ArrayLike, q: npt.ArrayLike, axis: int = -1, *, atol: float = DISTRIBUTION_ATOL
) -> FloatArray:
    """Probability that a token drafted from q is kept: alpha = sum_x min(p(x), q(x)) [-].

    Parameters
    ----------
    p, q : array
        Target and draft next-token distributions [-]; non-negative, summing to 1 over ``axis``; other
        axes broadcast (one alpha per context).
    axis : int
        The vocabulary axis.
    atol : float
        Tolerance on each distribution's sum [-] (see :data:`DISTRIBUTION_ATOL`).

    Equals E_{x~q}[min(1, p(x)/q(x))] = 1 - TV(p, q), TV the total-variation distance
    (1/2) sum_x |p(x) - q(x)| (Leviathan et al. 2023, Definition 3.2 and Theorem 3.5, where
    D_LK = TV). Averaged over contexts it is the alpha of :func:`expected_tokens`.
    """
    pp = _distributions("p", p, axis, atol)
    qq = _distributions("q", q, axis, atol)
    return np.asarray(np.minimum(pp, qq).sum(axis=axis), dtype=np.float64)


def residual_distribution(
    p: npt.ArrayLike, q: npt.ArrayLike, axis: int = -1, *, atol: float = DISTRIBUTION_ATOL
) -> FloatArray:
    """Distribution the target resamples from after a rejection: max(0, p - q), normalised [-].

    Source: Leviathan et al. 2023, Algorithm 1 (p'(x) = norm(max(0, p(x) - q(x)))); Chen et al. 2023,
    Algorithm 2.
    Where p == q exactly (every entry of max(0, p - q) is 0, so it cannot be normalised) this returns p:
    no token is ever rejected then, so the choice never affects the output. ``p``, ``q``, ``axis`` and
    ``atol`` as in :func:`acceptance_rate`.
    """
    pp = _distributions("p", p, axis, atol)
    qq = _distributions("q", q, axis, atol)
    r = np.maximum(pp - qq, 0.0)
    mass = r.sum(axis=axis, keepdims=True)
    return np.where(mass > 0, r / np.where(mass > 0, mass, 1.0), pp)


# ----------------------------------------------------------------------------------------------------
# Tokens per verification
# ----------------------------------------------------------------------------------------------------


def _geometric_sum(alpha: FloatArray, n: FloatArray) -> FloatArray:
    """sum_{i=0}^{n-1} alpha^i = (1 - alpha^n) / (1 - alpha); exactly n at alpha = 1.

    1 - alpha^n cancels catastrophically as alpha -> 1 (alpha = 1 - 1e-12 loses 5 digits);
    -expm1(n log alpha) keeps full relative precision, and 1 - alpha is exact for alpha >= 1/2.
    """
    a, m = np.broadcast_arrays(alpha, n)
    inside = (a > 0) & (a < 1)
    a_in = np.where(inside, a, 0.5)
    s = -np.expm1(m * np.log(a_in)) / (1.0 - a_in)
    s = np.clip(s, np.minimum(m, 1.0), m)  # the exact sum lies in [1, n]; keep rounding from leaving it
    edge = np.where(a == 1, m, np.minimum(m, 1.0))  # alpha = 1: n terms of 1; alpha = 0: 0^0 = 1
    return np.asarray(np.where(inside, s, edge), dtype=np.float64)


def expected_tokens(alpha: npt.ArrayLike, k: npt.ArrayLike) -> FloatArray:
    """Expected tokens produced per verification pass: (1 - alpha^(k+1)) / (1 - alpha) [tokens].

    Parameters
    ----------
    alpha : float or array
        Acceptance rate [-], in [0, 1].
    k : int or array
        Drafted tokens per verification [tokens], integer >= 0.

    Source: Leviathan et al. 2023, Eq. 1. The accepted prefix is truncated-geometric and the target
    always adds one token (the resampled one after a rejection, the bonus one after k acceptances), so
    E = sum_{n=0}^{k} alpha^n. The alpha -> 1 limit k + 1 is returned exactly, and the form is
    numerically stable near 1. Assumes i.i.d. acceptance (see the module docstring).
    """
    a = _in_range("alpha", alpha, 0.0, 1.0)
    kk = _draft_len(k)
    return _geometric_sum(a, kk + 1.0)


def expected_accepted_tokens(alpha: npt.ArrayLike, k: npt.ArrayLike) -> FloatArray:
    """Expected drafted tokens kept per verification: alpha (1 - alpha^k) / (1 - alpha) [tokens].

    Seed 002's E_0 (the coin-toss recursion with base case 0). Adding the one token the target samples
    itself gives :func:`expected_tokens`: 1 + alpha sum_{i<k} alpha^i = sum_{i<=k} alpha^i. The limit
    alpha -> 1 is k.
    """
    a = _in_range("alpha", alpha, 0.0, 1.0)
    kk = _draft_len(k)
    return np.asarray(a * _geometric_sum(a, kk), dtype=np.float64)


def tokens_distribution(alpha: npt.ArrayLike, k: npt.ArrayLike) -> FloatArray:
    """P(N = n) for the tokens N produced by one verification, n = 1 .. k + 1 [-].

    Returns an array of shape ``broadcast(alpha, k).shape + (max(k) + 1,)``; entry ``[..., n - 1]`` is
    P(N = n): alpha^(n-1) (1 - alpha) for n <= k (the n-th draft is the first rejected), alpha^k for
    n = k + 1 (all drafts kept, plus the bonus token), and 0 beyond k + 1 where ``k`` varies.
    A truncated geometric distribution under i.i.d. acceptance (Leviathan et al. 2023, §3.1).
    """
    a = _in_range("alpha", alpha, 0.0, 1.0)
    kk = _draft_len(k)
    a, kk = np.broadcast_arrays(a, kk)
    k_max = int(kk.max()) if kk.size else 0
    n = np.arange(1, k_max + 2, dtype=np.float64)  # [n]
    a_, k_ = a[..., None], kk[..., None]
    power = np.power(a_, n - 1.0)  # 0^0 = 1
    prob = np.where(n <= k_, power * (1.0 - a_), np.where(n == k_ + 1.0, power, 0.0))
    return np.asarray(prob, dtype=np.float64)


def expected_tokens_positional(alphas: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """Expected tokens per verification when acceptance varies along the draft [tokens].

    Parameters
    ----------
    alphas : array
        alpha_i [-] for draft positions i = 1 .. k along ``axis``: the probability that draft i is kept
        given that drafts 1 .. i-1 were.
    axis : int
        The draft-position axis (its length is k; an empty axis means k = 0).

    E = 1 + sum_{i=1}^{k} prod_{j<=i} alpha_j, since P(N > i) = prod_{j<=i} alpha_j (the first i drafts
    survive). Constant alpha_i = alpha gives :func:`expected_tokens`.
    """
    a = _in_range("alphas", alphas, 0.0, 1.0)
    if a.ndim == 0:
        raise CostmodelError("alphas must have a draft-position axis, got a scalar")
    survive = np.cumprod(a, axis=axis)
    return np.asarray(1.0 + survive.sum(axis=axis), dtype=np.float64)


# ----------------------------------------------------------------------------------------------------
# Time and speedup
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeculativeTime:
    """Time per generated token with speculative decoding, by phase [s/token]."""

    draft_s: FloatArray
    """k draft steps, shared over the tokens of one verification [s/token]."""
    verify_s: FloatArray
    """The target's verification pass, shared likewise [s/token]."""
    expected_tokens: FloatArray
    """Tokens produced per verification [tokens]."""

    @property
    def total(self) -> FloatArray:
        """Time per generated token [s/token]."""
        return np.asarray(self.draft_s + self.verify_s, dtype=np.float64)


def time_per_token(
    alpha: npt.ArrayLike,
    k: npt.ArrayLike,
    *,
    draft_step_s: npt.ArrayLike,
    verify_step_s: npt.ArrayLike,
) -> SpeculativeTime:
    """(k T_draft + T_verify) / E[tokens]: time per generated token [s/token].

    Parameters
    ----------
    alpha : float or array
        Acceptance rate [-].
    k : int or array
        Drafted tokens per verification [tokens].
    draft_step_s : float or array
        Time of one draft decoding step, T_draft [s].
    verify_step_s : float or array
        Time of one target forward pass over k + 1 tokens, T_verify [s]; about one target decoding step
        while memory bound.

    Source: Leviathan et al. 2023, §3.3 (one step takes T c gamma + T, proof of Theorem 3.8); seed 002's
    "average time per token". Drafting and verification are sequential, not overlapped.
    """
    draft = np.asarray(draft_step_s, dtype=np.float64)
    verify = np.asarray(verify_step_s, dtype=np.float64)
    if not (np.all(draft >= 0) and np.all(verify > 0)):
        raise CostmodelError("draft_step_s must be >= 0 and verify_step_s > 0 [s]")
    n = expected_tokens(alpha, k)
    kk = _draft_len(k)
    return SpeculativeTime(
        draft_s=np.asarray(kk * draft / n, dtype=np.float64),
        verify_s=np.asarray(verify / n, dtype=np.float64),
        expected_tokens=n,
    )


def speedup(
    alpha: npt.ArrayLike,
    k: npt.ArrayLike,
    c: npt.ArrayLike,
    verify_ratio: npt.ArrayLike = 1.0,
) -> FloatArray:
    """Speedup of speculative over plain decoding [-]: E[tokens] / (k c + verify_ratio).

    Parameters
    ----------
    alpha : float or array
        Acceptance rate [-].
    k : int or array
        Drafted tokens per verification [tokens]; k = 0 is a verification pass alone (1 / verify_ratio).
    c : float or array
        T_draft / T_target [-]: one draft step over one plain target decoding step. About 0 for an
        n-gram or prompt-lookup draft.
    verify_ratio : float or array
        T_verify / T_target [-], 1 while the verification pass is memory bound.

    Source: Leviathan et al. 2023, Theorem 3.8: improvement factor
    (1 - alpha^(k+1)) / ((1 - alpha)(k c + 1)), here with a verification cost of ``verify_ratio``
    target steps in place of 1. Bounded by 1 / ((1 - alpha) verify_ratio) for any k and c.
    """
    ratio = _in_range("verify_ratio", verify_ratio, 0.0, np.inf)
    cc = _in_range("c", c, 0.0, np.inf)
    if np.any(ratio == 0):
        raise CostmodelError("verify_ratio must be > 0")
    # time_per_token in units of one target step
    return np.asarray(
        1.0 / time_per_token(alpha, k, draft_step_s=cc, verify_step_s=ratio).total, dtype=np.float64
    )


def optimal_k(
    alpha: npt.ArrayLike,
    c: npt.ArrayLike,
    *,
    k_max: int = 32,
    verify_ratio: npt.ArrayLike = 1.0,
) -> IntArray:
    """The draft length k in 1 .. k_max that maximises :func:`speedup`, or 0 [tokens].

    Parameters
    ----------
    alpha, c, verify_ratio : float or array
        As in :func:`speedup`; ``verify_ratio`` is taken as independent of k.
    k_max : int
        Longest draft considered [tokens]. With c -> 0 and alpha -> 1 the optimum grows without bound
        and the answer is k_max.

    Returns 0 where no k strictly beats plain decoding (speedup <= 1). Ties go to the shorter draft.
    Brute force over k, as Leviathan et al. 2023 choose gamma (§3.5), vectorised: it builds an array of
    shape ``broadcast(alpha, c, verify_ratio).shape + (k_max,)``.
    """
    if not (isinstance(k_max, int | np.integer) and k_max >= 1):
        raise CostmodelError(f"k_max must be an integer >= 1, got {k_max!r}")
    a = _in_range("alpha", alpha, 0.0, 1.0)
    cc = _in_range("c", c, 0.0, np.inf)
    ratio = np.asarray(verify_ratio, dtype=np.float64)
    ks = np.arange(1, k_max + 1, dtype=np.float64)  # [k]
    s = speedup(a[..., None], ks, cc[..., None], ratio[..., None])
    best = np.argmax(s, axis=-1)  # first maximum: the shortest draft
    best_speedup = np.take_along_axis(s, best[..., None], axis=-1)[..., 0]
    return np.asarray(np.where(best_speedup > 1.0, best + 1, 0), dtype=np.int64)


def break_even_alpha(c: npt.ArrayLike, k: npt.ArrayLike, verify_ratio: npt.ArrayLike = 1.0) -> FloatArray:
    """The acceptance rate below which drafting k tokens is slower than plain decoding [-].

    Parameters
    ----------
    c : float or array
        T_draft / T_target [-].
    k : int or array
        Drafted tokens per verification [tokens], integer >= 1.
    verify_ratio : float or array
        T_verify / T_target [-].

    Solves :func:`speedup` = 1, i.e. sum_{n=0}^{k} alpha^n = k c + verify_ratio, whose left side rises
    from 1 to k + 1 on [0, 1]. Returns 0 where k c + verify_ratio <= 1 (every alpha pays) and ``inf``
    where k c + verify_ratio > k + 1 (no alpha pays), so ``alpha > break_even_alpha(...)`` reads
    "speculation pays". For k = 1 the root is c + verify_ratio - 1, Leviathan et al. 2023,
    Corollary 3.9 (alpha > c); otherwise scipy's brentq finds it (one call per element).
    """
    cc = _in_range("c", c, 0.0, np.inf)
    kk = _draft_len(k, minimum=1)
    ratio = _in_range("verify_ratio", verify_ratio, 0.0, np.inf)
    cost = kk * cc + ratio  # [target steps] per verification

    def root(cost: float, k: float) -> float:
        return float(np.inf) if cost > k + 1.0 else _tokens_root(cost, k)

    solve = np.vectorize(root, otypes=[np.float64])
    return np.asarray(solve(cost, np.broadcast_to(kk, cost.shape)), dtype=np.float64)


def acceptance_for_tokens(tokens: npt.ArrayLike, k: npt.ArrayLike) -> FloatArray:
    """The i.i.d. acceptance rate alpha [-] whose :func:`expected_tokens` at k drafts is ``tokens``: the root
    on [0, 1] of sum_{n=0}^{k} alpha^n = tokens, which rises from 1 to k + 1 (Leviathan et al. 2023,
    Eq. 1), so a published mean acceptance length converts to the rate this module takes. ``tokens``
    outside [1, k + 1] is an error."""
    kk = _draft_len(k, minimum=1)
    tt, kk = np.broadcast_arrays(np.asarray(tokens, dtype=np.float64), kk)
    bad = ~((tt >= 1.0) & (tt <= kk + 1.0))  # also catches NaN
    if np.any(bad):
        raise CostmodelError(
            f"tokens per verification must lie in [1, k + 1], got {tt[bad].flat[0]!r} "
            f"at k = {kk[bad].flat[0]:g}"
        )
    return np.asarray(np.vectorize(_tokens_root, otypes=[np.float64])(tt, kk), dtype=np.float64)


def _tokens_root(tokens: float, k: float) -> float:
    """alpha in [0, 1] with sum_{n=0}^{k} alpha^n = tokens; 0 at or below 1 token, 1 at or above k + 1."""
    if tokens <= 1.0:
        return 0.0
    if tokens >= k + 1.0:
        return 1.0
    if k == 1.0:
        return tokens - 1.0
    from scipy.optimize import brentq  # scipy.optimize is slow to import; only the root needs it

    n = np.asarray(k + 1.0)
    return float(brentq(lambda a: float(_geometric_sum(np.asarray(a), n)) - tokens, 0.0, 1.0, xtol=1e-15))


# ----------------------------------------------------------------------------------------------------
# Hardware-aware plan
# ----------------------------------------------------------------------------------------------------

DRAFT_KINDS = ("model", "early-exit:<layers>", "quantized:<dtype>", "ngram")
"""Draft choices (seed 001): a separate small model (a profile or built-in name); the first N layers of
the target ("early-exit:8"); a weight-quantized copy of the target ("quantized:int4"); an n-gram /
prompt-lookup table ("ngram", about zero cost: its ``alpha`` is whatever the user measured)."""


def _draft(
    tgt: ModelProfile, draft: ModelProfile | str, workload: Workload, heterogeneous_vocab: bool = False
) -> tuple[ModelProfile | None, Workload, bool]:
    """The draft of :func:`plan`: the model it runs (None for an n-gram table), its workload (a quantized
    copy's weight format), and whether it holds weights of its own (a separate model or a quantized copy;
    an early exit reads the target's first layers, an n-gram table none)."""
    from costmodel.registry import load_model

    if isinstance(draft, str) and draft == "ngram":
        return None, workload, False
    if isinstance(draft, str) and draft.startswith("early-exit:"):
        layers = int(draft.split(":", 1)[1])
        if not 1 <= layers < tgt.n_layers:
            raise CostmodelError(f"early-exit draft needs 1 <= layers < {tgt.n_layers}, got {layers}")
        return tgt.model_copy(update={"n_layers": layers, "name": f"{tgt.name}[:{layers}]"}), workload, False
    if isinstance(draft, str) and draft.startswith("quantized:"):
        from dataclasses import replace

        return tgt, replace(workload, weight_dtype=draft.split(":", 1)[1]), True
    draft_model = load_model(draft)
    if draft_model.vocab_size != tgt.vocab_size and not heterogeneous_vocab:
        raise CostmodelError(
            f"draft {draft_model.name} has a vocabulary of {draft_model.vocab_size:,} tokens, the target "
            f"{tgt.name} {tgt.vocab_size:,}: a draft model must share the target's vocabulary (vLLM "
            "refuses the pair); use a draft of the target's family, or heterogeneous_vocab=True for "
            "vLLM's use_heterogeneous_vocab (drafting over the tokens both hold)"
        )
    return draft_model, workload, True


def _early_exit(draft: ModelProfile | str) -> bool:
    """Whether ``draft`` is an early exit (:func:`plan`): the target's own first layers."""
    return isinstance(draft, str) and draft.startswith("early-exit:")


def _draft_deployment(
    draft_model: ModelProfile | None, dep: Deployment, draft_tp: int | None, *, early_exit: bool = False
) -> Deployment:
    """The draft's split (:func:`plan`): tp 1 or the target's, no pipeline stages. An n-gram draft has no
    model to split; an early exit runs the target's own first layers, on the target's GPUs."""
    from costmodel.specs import Deployment

    d_tp = dep.tp if draft_tp is None else draft_tp
    if draft_model is None and draft_tp is not None:
        raise CostmodelError(
            f"draft_tp sets a draft model's GPUs; an n-gram draft has no model (got {draft_tp})"
        )
    if early_exit and d_tp != dep.tp:
        raise CostmodelError(
            f"draft_tp: an early-exit draft runs the target's own first layers, sharded over the target's "
            f"{dep.tp} GPU(s); it cannot run on {d_tp}"
        )
    if d_tp not in (1, dep.tp):
        raise CostmodelError(f"draft_tp must be 1 or the target's tp ({dep.tp}), got {draft_tp}")
    draft_dep = Deployment(tp=d_tp, gpus_per_node=dep.gpus_per_node)
    if draft_model is not None:
        try:
            draft_dep.check(draft_model)
        except ValueError as e:
            reason = str(e).replace(f"tp ({d_tp})", f"{d_tp}", 1)  # the draft's degree, not the target's
            raise CostmodelError(
                f"draft_tp: the draft cannot be split over {d_tp} GPUs ({reason}); use draft_tp=1"
            ) from e
    return draft_dep


def draft_weight_bytes_per_gpu(
    target: ModelProfile | str,
    draft: ModelProfile | str,
    workload: Workload,
    *,
    deployment: Deployment | None = None,
    draft_tp: int | None = None,
    heterogeneous_vocab: bool = False,
) -> float:
    """Weights the draft of :func:`plan` adds on the fullest GPU of the target's replica [bytes]: a
    separate draft model in the workload's weight format, or the target's quantized copy in its own,
    split over the draft's tp as :func:`costmodel.memory.replica_memory` splits a replica (with ``draft_tp``
    1, one GPU holds all of it); 0 for an early exit (its layers are the target's) and an n-gram table.
    The draft's own KV cache is not counted."""
    from costmodel.memory import replica_memory
    from costmodel.registry import load_model
    from costmodel.specs import Deployment

    tgt = load_model(target)
    draft_model, draft_workload, own = _draft(tgt, draft, workload, heterogeneous_vocab)
    draft_dep = _draft_deployment(
        draft_model, deployment or Deployment(), draft_tp, early_exit=_early_exit(draft)
    )
    if draft_model is None or not own:
        return 0.0
    w = draft_workload
    return replica_memory(
        draft_model,
        tp=draft_dep.tp,
        weight_dtype=w.weight_dtype,
        sparsity=w.sparsity,
        expert_dtype=w.expert_dtype,
    ).weight_bytes


POOL_DRAFT_ENGINES = ("vllm", "sglang", "trtllm")
"""Engines whose rule for a speculative draft's KV cache :func:`pool_draft_kv_layers` states."""


def pool_draft_kv_layers(engine: str, draft_tokens: int, draft_layers: int = 1) -> int:
    """Layers of the target's own attention shape whose KV cache a one-model speculative draft (an MTP
    module or an EAGLE head of ``draft_layers`` decoder layers, drafting ``draft_tokens`` tokens per
    verification) keeps per token in the engine's KV pool, so that every cached token costs them too [-]
    (:class:`costmodel.serving.Engine`'s ``draft_kv_layers``).

    - ``"trtllm"``: the KV cache manager appends ``get_num_spec_layers(spec_config)`` layers to the
      model's (``get_pp_layers``, on the last pipeline rank, in ``KVCacheManager.__init__``,
      https://github.com/NVIDIA/TensorRT-LLM/blob/001541bad83b84ae4c5c4a279e464572d5f690f7/tensorrt_llm/_torch/pyexecutor/resource_manager.py),
      and its bytes per token and so its block count run over all of them (the draft's bytes per token
      counted in the token budget since https://github.com/NVIDIA/TensorRT-LLM/pull/3497, 2025-04); for MTP
      that count is the MTP config's ``num_nextn_predict_layers``, which is its draft length even where one
      MTP layer is run that many times (``get_num_spec_layers``: ``spec_config.num_nextn_predict_layers``
      for ``is_mtp_one_model()``, ``tensorrt_llm/_torch/speculative/utils.py``, in every stored revision
      before the newest, which counts one layer for MTP-Eagle and none with a shared KV cache). So
      ``draft_tokens`` layers. The rows' TensorRT-LLM revision is not pinned (Dynamo 0.8.1 images); a
      separate draft KV manager splits the budget in proportion to the two managers' bytes per token in
      later revisions (https://github.com/NVIDIA/TensorRT-LLM/pull/12188, 2026-03), the same share.
    - ``"vllm"``: the draft's layers register in the target's forward context and take blocks of the
      same paged pool through the target's block table (:func:`draft_kv_bytes_per_gpu`, with the
      sources): ``draft_layers``.
    - ``"sglang"``, in the versions before sglang PR #23862 (merged 2026-04-27, "Fix
      --mem-fraction-static not accounting for EAGLE draft model KV cache",
      https://github.com/sgl-project/sglang/pull/23862), which the sample's SGLang rows (nightly images
      of 2026-03) predate: 0. The draft worker has a pool of its own, of ``num_nextn_predict_layers``
      layers (https://github.com/sgl-project/sglang/pull/8482) and ``draft_runner_cache_size`` tokens,
      the target's token count plus headroom, allocated after the target's; the target sizes its pool
      from its own layers alone (``ModelRunner.profile_max_num_token`` and ``init_memory_pool``,
      ``python/sglang/srt/model_executor/model_runner.py``). The draft's cache comes out of the memory
      ``mem_fraction_static`` leaves, whose default reserve SGLang raises by a fixed amount for any draft
      (2 GiB, 6 GiB for STANDALONE, "draft model and larger cuda graph buffers",
      ``ServerArgs._handle_gpu_memory_settings``; #23862 calls it "a flat 4GB/6GB heuristic"), not out
      of the target's tokens. From #23862 on, the draft's KV pool is budgeted inside
      ``mem_fraction_static`` with the target's, so it does shrink the target's tokens, and from
      https://github.com/sgl-project/sglang/pull/28855 (2026-06) the draft's weights too: this rule does
      not describe those versions.

    A bool is refused as a count; numpy integers are taken as ``int``."""
    if engine not in POOL_DRAFT_ENGINES:
        raise CostmodelError(f"engine must be one of {POOL_DRAFT_ENGINES}, got {engine!r}")
    for name, value in (("draft_tokens", draft_tokens), ("draft_layers", draft_layers)):
        if not (
            isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_) and value >= 1
        ):
            raise CostmodelError(f"{name} must be an integer >= 1, got {value!r}")
    if engine == "trtllm":
        return int(draft_tokens)
    if engine == "vllm":
        return int(draft_layers)
    return 0


def draft_kv_bytes_per_gpu(
    target: ModelProfile | str,
    draft: ModelProfile | str,
    workload: Workload,
    *,
    batch_size: npt.ArrayLike,
    context_len: npt.ArrayLike,
    deployment: Deployment | None = None,
    draft_tp: int | None = None,
    heterogeneous_vocab: bool = False,
) -> FloatArray:
    """KV cache (or recurrent state) the draft of :func:`plan` keeps on the fullest GPU of the target's
    replica for ``batch_size`` sequences of ``context_len`` tokens [bytes], in the workload's ``kv_dtype``.

    A draft *model* (or a quantized copy of the target) runs its own layers over every token of the
    sequence, so it caches each of them as the target does, with its own geometry: its KV heads split over
    min(draft tp, its KV heads) GPUs (with ``draft_tp`` 1, one GPU holds all of it), its sliding window
    capping the cached tokens, as :func:`costmodel.memory.fit` sizes a replica. vLLM allocates these layers
    in the target's own pool: loading the draft registers its attention layers in the target's forward
    context, the runner gives every registered layer a KV-cache spec, and the draft writes its keys through
    the target's block table (``DraftModelProposer.load_model`` and ``compute_new_slot_mapping``,
    vllm/v1/spec_decode/draft_model.py at
    https://github.com/vllm-project/vllm/blob/9b849b170a1f068223fd75cb8aee78c967bd419d/vllm/v1/spec_decode/draft_model.py;
    EAGLE and MTP heads the same way, ``EagleProposer.load_model`` in vllm/v1/spec_decode/eagle.py): a
    block then holds both models' layers, and a sequence costs the two caches together. 0 for an early
    exit (its layers are the target's first ones, whose cache the target keeps) and an n-gram table."""
    from costmodel.memory import replica_memory
    from costmodel.registry import load_model
    from costmodel.specs import Deployment

    tgt = load_model(target)
    draft_model, draft_workload, own = _draft(tgt, draft, workload, heterogeneous_vocab)
    draft_dep = _draft_deployment(
        draft_model, deployment or Deployment(), draft_tp, early_exit=_early_exit(draft)
    )
    B = checks.counts("batch_size", batch_size).astype(np.float64)
    S = checks.counts("context_len", context_len).astype(np.float64)
    if draft_model is None or not own:
        return np.asarray(0.0 * B * S)
    device = replica_memory(draft_model, tp=draft_dep.tp, kv_dtype=draft_workload.kv_dtype, engine=None)
    window = draft_model.sliding_window
    cached = S if window is None else np.minimum(S, window)
    return np.asarray(device.cache_bytes(batch_size=B, context_len=cached), dtype=np.float64)


def plan(
    target: ModelProfile | str,
    draft: ModelProfile | str,
    hardware: HardwareProfile | str,
    workload: Workload,
    *,
    alpha: float,
    k_max: int = 8,
    batch_sizes: Any = (1, 2, 4, 8, 16, 32, 64, 128, 256),
    deployment: Deployment | None = None,
    draft_tp: int | None = None,
    heterogeneous_vocab: bool = False,
) -> pd.DataFrame:
    """Speedup of speculative decoding over plain decoding on ``hardware``, for each k and batch size.

    T_target is one decoding step of the target and T_verify one target pass over k + 1 tokens, both at
    the workload's mean context (prompt + output / 2) from the roofline model
    (:func:`costmodel.estimate.step_time_s`) on ``deployment``; T_draft is one decoding step of the draft
    on the same replica's GPUs, tensor-parallel over ``draft_tp`` of them: by default the target's tp, else
    1. vLLM's config documents both (``draft_tensor_parallel_size``: "Can only be 1 or the same as the
    target model's tensor parallel size", default the target's;
    https://github.com/vllm-project/vllm/blob/main/vllm/config/speculative.py), but its V1 draft-model
    proposer refuses 1 under a target tp > 1 ("must be the same", ``DraftModelProposer.
    _raise_if_draft_tp_mismatch``, ``vllm/v1/spec_decode/draft_model.py``): 1 prices the layout the config
    names, which current vLLM does not run. ``draft_tp`` is a draft model's: an ``early-exit:N`` draft is
    the target's own first N layers, sharded over the target's tp, and an ``ngram`` draft has no model, so
    either refuses any other value. The draft is priced
    without pipeline stages (engines do not pipeline the draft: vLLM's docs list speculative decoding as
    incompatible with pipeline parallelism, https://docs.vllm.ai/en/v0.8.2/features/spec_decode.html).
    While the target is memory bound, verifying k + 1 tokens costs about one step (the weights are read
    once); once the batch makes it compute bound, T_verify grows with k and the speedup shrinks. Returns
    one row per (batch_size, k) with the times [s], ``verify_ratio``, ``c``, expected tokens, ``speedup``
    and ``is_best`` (the best k of each batch size, if any beats plain decoding).

    A separate draft model must share the target's vocabulary: its proposals are token ids the target
    verifies, and the rejection step compares the two distributions over the same tokens. vLLM refuses a
    ``draft_model`` whose ``vocab_size`` differs from the target's
    (``SpeculativeConfig.verify_equal_vocab_size_if_draft_model``,
    https://github.com/vllm-project/vllm/blob/main/vllm/config/speculative.py) unless
    ``use_heterogeneous_vocab`` is set: Token-Level Intersection, the draft restricted to the tokens both
    vocabularies hold, greedy drafting only (https://github.com/vllm-project/vllm/pull/38174; Timor et al.,
    https://arxiv.org/abs/2502.05202). ``heterogeneous_vocab=True`` allows such a pair here likewise; its
    ``alpha`` must then be the one measured with the intersection. Early-exit, quantized and n-gram drafts
    are the target's own vocabulary by construction.
    """
    import pandas as pd

    from costmodel.estimate import step_time_s
    from costmodel.registry import load_model
    from costmodel.specs import Deployment

    a = float(_in_range("alpha", alpha, 0.0, 1.0))
    tgt = load_model(target)
    draft_model, draft_workload, _ = _draft(tgt, draft, workload, heterogeneous_vocab)
    dep = deployment or Deployment()
    draft_dep = _draft_deployment(draft_model, dep, draft_tp, early_exit=_early_exit(draft))
    B = np.asarray(batch_sizes, dtype=np.float64)[:, None]  # [batch, 1]
    ks = np.arange(1, k_max + 1, dtype=np.float64)[None, :]  # [1, k]
    context = np.asarray(workload.prompt_len, dtype=np.float64) + np.asarray(workload.output_len) / 2
    t_target = step_time_s(
        tgt, hardware, workload, deployment, batch_size=B, new_tokens=1, past_tokens=context
    )
    t_verify = step_time_s(
        tgt,
        hardware,
        workload,
        deployment,
        batch_size=B,
        new_tokens=ks + 1,
        past_tokens=context,
        draft_tokens=ks,
    )
    if draft_model is None:
        t_draft = np.zeros_like(t_target)
    else:
        t_draft = step_time_s(
            draft_model, hardware, draft_workload, draft_dep, batch_size=B, new_tokens=1, past_tokens=context
        )
    n = expected_tokens(a, ks)
    t_spec = (ks * t_draft + t_verify) / n
    up = t_target / t_spec
    best = np.argmax(up, axis=1)
    shape = up.shape
    frame = pd.DataFrame(
        {
            "batch_size": np.broadcast_to(B, shape).ravel().astype(int),
            "k": np.broadcast_to(ks, shape).ravel().astype(int),
            "alpha": a,
            "target_step_s": np.broadcast_to(t_target, shape).ravel(),
            "draft_step_s": np.broadcast_to(t_draft, shape).ravel(),
            "verify_s": np.broadcast_to(t_verify, shape).ravel(),
            "c": np.broadcast_to(t_draft / t_target, shape).ravel(),
            "verify_ratio": np.broadcast_to(t_verify / t_target, shape).ravel(),
            "expected_tokens": np.broadcast_to(n, shape).ravel(),
            "speedup": up.ravel(),
            "tokens_per_s": (np.broadcast_to(B, shape) / t_spec).ravel(),
        }
    )
    is_best = np.zeros(shape, dtype=bool)
    is_best[np.arange(shape[0]), best] = up[np.arange(shape[0]), best] > 1.0
    frame["is_best"] = is_best.ravel()
    return frame
