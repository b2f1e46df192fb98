"""Speculative decoding: closed forms against exact rational sums, brute force and a Monte-Carlo sampler.

Oracles: exact ``fractions.Fraction`` sums of alpha^n; hand-derived values (written out in comments);
brute-force searches over k; and the reference sampler of ``validation/speculative.py`` run for 200,000
independent trials per case with fixed seeds (chi-square, binomial and CLT intervals at the 99.9 % level).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from costmodel.errors import CostmodelError
from costmodel.speculative import (
    acceptance_for_tokens,
    acceptance_probability,
    acceptance_rate,
    break_even_alpha,
    expected_accepted_tokens,
    expected_tokens,
    expected_tokens_positional,
    from_logits,
    optimal_k,
    residual_distribution,
    speedup,
    time_per_token,
    tokens_distribution,
)
from validation.speculative import (
    CASES,
    BigramModel,
    Case,
    FixedModel,
    Measurement,
    PositionalModel,
    bigram_alphas,
    measure,
    sequence_test,
    step_pvalues,
)

P_MIN = 1e-3  # chi-square / binomial p-values must exceed this
Z_999 = 3.29  # two-sided 99.9 % normal quantile

ALPHAS = [0.0, 1e-300, 1e-8, 0.1, 0.3, 0.5, 0.8, 0.9, 0.99, 1 - 1e-9, 1 - 1e-12, 1 - 2**-40, 1.0]
KS = [0, 1, 2, 5, 8, 17, 50]


def geometric(alpha: float, n: int, start: int = 0) -> float:
    """sum_{start<=i<n} alpha^i, exactly in rationals, then rounded once."""
    a = Fraction(alpha)
    return float(sum((a**i for i in range(start, n)), Fraction(0)))


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(p - q).sum(axis=-1)


# ----------------------------------------------------------------------------------------------------
# Errata: seed 000
# ----------------------------------------------------------------------------------------------------


def test_seed_000_example_errata() -> None:
    # alpha = 0.8, k = 5, c = 0.1: E = 1 + .8 + .64 + .512 + .4096 + .32768 = 3.68928, /(5 x 0.1 + 1)
    assert expected_tokens(0.8, 5) == pytest.approx(3.68928, rel=1e-14)
    assert speedup(0.8, 5, 0.1) == pytest.approx(3.68928 / 1.5, rel=1e-14)  # 2.45952, not 2.3
    # the seed's 3.4 is the sum without the alpha^5 term: 1 + .8 + .64 + .512 + .4096 = 3.3616,
    # i.e. (1 - alpha^k) / (1 - alpha), the count with the bonus token dropped; 2.3 is 3.4 / 1.5
    dropped = (1 - 0.8**5) / (1 - 0.8)
    assert dropped == pytest.approx(3.3616, rel=1e-12)
    assert round(dropped, 1) == 3.4
    assert round(3.4 / 1.5, 1) == 2.3
    assert expected_tokens(0.8, 5) - dropped == pytest.approx(0.8**5, rel=1e-12)  # the bonus token's share


def test_seed_001_table_exceeds_the_bound() -> None:
    # speedup <= E[tokens] (c >= 0) < 1 / (1 - alpha): 1.25 at alpha = 0.2, 2.5 at 0.6, 5 at 0.8
    for alpha, seed_high in [(0.2, 1.5), (0.6, 3.0)]:
        best = speedup(alpha, np.arange(1, 200), 0.0).max()  # c = 0 and k -> infinity: the supremum
        assert best <= 1 / (1 - alpha) < seed_high


# ----------------------------------------------------------------------------------------------------
# Tokens per verification
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("k", KS)
def test_expected_tokens_equals_exact_sum(alpha: float, k: int) -> None:
    assert expected_tokens(alpha, k) == pytest.approx(geometric(alpha, k + 1), rel=2e-15, abs=0)


@pytest.mark.filterwarnings("error")
def test_alpha_one_limit_is_exact_and_continuous() -> None:
    k = np.arange(0, 40)
    np.testing.assert_array_equal(expected_tokens(1.0, k), k + 1.0)
    np.testing.assert_array_equal(expected_accepted_tokens(1.0, k), k * 1.0)
    below = np.nextafter(1.0, 0.0)  # 1 - 1.1e-16
    np.testing.assert_allclose(expected_tokens(below, k), k + 1.0, rtol=1e-13)
    np.testing.assert_array_equal(speedup(1.0, 5, 0.1), 6 / 1.5)
    np.testing.assert_array_equal(expected_tokens(0.0, k), np.ones_like(k, dtype=float))


@pytest.mark.parametrize("alpha", ALPHAS)
def test_seed_form_plus_one_is_the_closed_form(alpha: float) -> None:
    k = np.array(KS)
    accepted = expected_accepted_tokens(alpha, k)  # seed 002: alpha (1 - alpha^k) / (1 - alpha)
    np.testing.assert_allclose(accepted, [geometric(alpha, n + 1, start=1) for n in KS], rtol=1e-14, atol=0)
    np.testing.assert_allclose(accepted + 1.0, expected_tokens(alpha, k), rtol=1e-15)


def test_tokens_distribution_by_hand() -> None:
    # alpha = 1/2, k = 2: N = 1 (first draft rejected) 1/2, N = 2 1/4, N = 3 (both kept + bonus) 1/4
    np.testing.assert_allclose(tokens_distribution(0.5, 2), [0.5, 0.25, 0.25])
    np.testing.assert_array_equal(tokens_distribution(0.0, 3), [1, 0, 0, 0])
    np.testing.assert_array_equal(tokens_distribution(1.0, 3), [0, 0, 0, 1])
    # k varying: rows padded with zeros beyond k + 1
    np.testing.assert_allclose(tokens_distribution(0.5, [1, 2]), [[0.5, 0.5, 0], [0.5, 0.25, 0.25]])


def test_tokens_distribution_sums_to_one_and_its_mean_is_expected_tokens() -> None:
    alpha = np.array(ALPHAS)[:, None]
    k = np.array(KS)[None, :]
    dist = tokens_distribution(alpha, k)
    n = np.arange(1, dist.shape[-1] + 1)
    np.testing.assert_allclose(dist.sum(axis=-1), 1.0, rtol=1e-14)
    exact = np.array([[geometric(a, kk + 1) for kk in KS] for a in ALPHAS])
    np.testing.assert_allclose((dist * n).sum(axis=-1), exact, rtol=1e-12)


def test_positional_by_hand() -> None:
    # 1 + 0.9 + 0.9 x 0.5 + 0.9 x 0.5 x 0.2 = 2.44
    assert expected_tokens_positional([0.9, 0.5, 0.2]) == pytest.approx(2.44, rel=1e-15)
    assert expected_tokens_positional(np.empty(0)) == 1.0  # k = 0: the target's own token
    batch = np.array([[0.9, 0.5, 0.2], [1.0, 1.0, 1.0], [0.0, 0.7, 0.7]])
    np.testing.assert_allclose(expected_tokens_positional(batch), [2.44, 4.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(expected_tokens_positional(batch.T, axis=0), [2.44, 4.0, 1.0], rtol=1e-15)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 0.999, 1.0])
def test_positional_with_constant_alpha_is_expected_tokens(alpha: float) -> None:
    for k in KS:
        assert expected_tokens_positional(np.full(k, alpha)) == pytest.approx(
            geometric(alpha, k + 1), rel=1e-13
        )


# ----------------------------------------------------------------------------------------------------
# Time, speedup, optimal k, break-even
# ----------------------------------------------------------------------------------------------------


def test_time_per_token_by_hand() -> None:
    # 5 drafts of 2 ms + a 20 ms verification, 3.68928 tokens each
    t = time_per_token(0.8, 5, draft_step_s=2e-3, verify_step_s=20e-3)
    assert t.total == pytest.approx(30e-3 / 3.68928, rel=1e-14)
    assert t.draft_s == pytest.approx(10e-3 / 3.68928, rel=1e-14)
    assert t.verify_s == pytest.approx(20e-3 / 3.68928, rel=1e-14)
    # speedup = T_target / time per token when the verification costs one target step
    assert speedup(0.8, 5, 0.1) == pytest.approx(20e-3 / t.total, rel=1e-14)
    assert speedup(0.8, 5, 0.1, verify_ratio=1.2) == pytest.approx(3.68928 / 1.7, rel=1e-14)


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.6, 0.9])
@pytest.mark.parametrize("c", [0.0, 0.02, 0.5])
def test_leviathan_corollary_3_9_for_one_draft(alpha: float, c: float) -> None:
    # k = 1: (1 + alpha) / (1 + c), > 1 exactly when alpha > c
    assert speedup(alpha, 1, c) == pytest.approx((1 + alpha) / (1 + c), rel=1e-15)
    assert (speedup(alpha, 1, c) > 1) == (alpha > c)


def test_optimal_k_equals_brute_force() -> None:
    alphas = np.linspace(0.0, 0.99, 34)
    cs = np.array([0.0, 0.01, 0.05, 0.1, 0.2, 0.35, 0.6, 1.0])
    got = optimal_k(alphas[:, None], cs[None, :], k_max=20)
    for i, a in enumerate(alphas):
        for j, c in enumerate(cs):
            values = [geometric(float(a), k + 1) / (k * c + 1) for k in range(1, 21)]
            best = max(values)
            k_best = values.index(best) + 1
            if abs(best - 1) < 1e-12:  # speculation exactly breaks even: either answer is right
                continue
            achieved = 1.0 if got[i, j] == 0 else values[got[i, j] - 1]
            assert achieved == pytest.approx(max(best, 1.0), rel=1e-12), (a, c, got[i, j], k_best)
            assert (got[i, j] == 0) == (best < 1)
            runner_up = sorted(values)[-2]
            if best > 1 and best - runner_up > 1e-9:
                assert got[i, j] == k_best, (a, c)


def test_optimal_k_cases_by_hand() -> None:
    # alpha = 0.8, c = 0.1: E/(kc + 1) = 2.4595 (k = 5), 2.4696 (k = 6), 2.4640 (k = 7) -> 6
    assert optimal_k(0.8, 0.1) == 6
    assert optimal_k(0.05, 0.1) == 0  # alpha < c: no k pays (Leviathan Cor. 3.9 and beyond)
    assert optimal_k(1.0, 0.0, k_max=7) == 7  # free, always-right drafts: as long as allowed


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 16])
def test_break_even_alpha_gives_speedup_one(k: int) -> None:
    c = np.array([0.001, 0.01, 0.05, 0.1, 0.3, 0.5, 0.9])
    alpha = break_even_alpha(c, k)
    assert np.all((alpha > 0) & (alpha < 1))
    np.testing.assert_allclose(speedup(alpha, k, c), 1.0, rtol=1e-13)
    assert np.all(speedup(np.minimum(alpha + 1e-6, 1), k, c) > 1)
    assert np.all(speedup(alpha - 1e-6, k, c) < 1)


def test_break_even_alpha_closed_forms() -> None:
    c = np.array([0.0, 0.05, 0.1, 0.4])
    np.testing.assert_allclose(break_even_alpha(c, 1), c, atol=1e-15)  # Leviathan Cor. 3.9: alpha = c
    # k = 2: 1 + a + a^2 = 2c + 1  ->  a = (-1 + sqrt(1 + 8c)) / 2
    np.testing.assert_allclose(break_even_alpha(c, 2), (-1 + np.sqrt(1 + 8 * c)) / 2, rtol=1e-13, atol=1e-15)
    assert break_even_alpha(0.1, 1, verify_ratio=1.2) == pytest.approx(0.3, rel=1e-14)  # 1 + a = 1.3
    # every alpha pays (k c + r <= 1) or none does (k c + r > k + 1)
    np.testing.assert_array_equal(break_even_alpha(0.0, [1, 5]), [0.0, 0.0])
    np.testing.assert_array_equal(break_even_alpha(0.1, 3, verify_ratio=0.5), 0.0)
    np.testing.assert_array_equal(break_even_alpha([1.01, 2.0], 4), [np.inf, np.inf])
    assert break_even_alpha(1.0, 4) == 1.0  # 4 c + 1 = 5 = k + 1: only alpha = 1 breaks even


def test_acceptance_for_tokens_inverts_expected_tokens() -> None:
    # k = 2: 1 + a + a^2 = E  ->  a = (-1 + sqrt(4E - 3)) / 2; k = 1: a = E - 1; the ends are 0 and 1
    tokens = np.array([1.0, 1.5, 2.2, 3.0])
    np.testing.assert_allclose(
        acceptance_for_tokens(tokens, 2), (-1 + np.sqrt(4 * tokens - 3)) / 2, atol=1e-14
    )
    np.testing.assert_allclose(acceptance_for_tokens([1.0, 1.25, 2.0], 1), [0.0, 0.25, 1.0], atol=1e-15)
    alpha = acceptance_for_tokens(3.39, 3)
    assert float(expected_tokens(alpha, 3)) == pytest.approx(3.39, rel=1e-13)
    for bad in (0.5, 4.5, np.nan):
        with pytest.raises(CostmodelError, match=r"tokens per verification must lie in \[1, k \+ 1\]"):
            acceptance_for_tokens(bad, 3)


# ----------------------------------------------------------------------------------------------------
# Distributions
# ----------------------------------------------------------------------------------------------------


def test_acceptance_by_hand() -> None:
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.3, 0.5])
    assert acceptance_rate(p, q) == pytest.approx(0.7, rel=1e-15)  # 0.2 + 0.3 + 0.2 = 1 - TV (0.3)
    assert acceptance_rate(p, p) == pytest.approx(1.0, rel=1e-15)
    assert acceptance_rate([1.0, 0.0], [0.0, 1.0]) == 0.0
    # float32 softmax output is accepted as is; bf16-rounded probabilities with a wider tolerance
    assert acceptance_rate([0.5, 0.50001], [0.5, 0.5]) == pytest.approx(1.0)
    assert acceptance_rate([0.5, 0.501], [0.5, 0.5], atol=1e-2) == pytest.approx(1.0)
    np.testing.assert_allclose(
        acceptance_probability([0.5, 0.3, 0.2, 0.0], [0.25, 0.6, 0.0, 0.15]), [1.0, 0.5, 1.0, 0.0]
    )


def test_acceptance_rate_is_one_minus_tv_and_expected_acceptance() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(50, 0.3), size=200)  # [200, 50]
    q = rng.dirichlet(np.full(50, 0.3), size=200)
    alpha = acceptance_rate(p, q)
    np.testing.assert_allclose(alpha, 1 - total_variation(p, q), rtol=1e-12)
    np.testing.assert_allclose(alpha, (q * acceptance_probability(p, q)).sum(axis=-1), rtol=1e-12)
    np.testing.assert_allclose(alpha, acceptance_rate(q, p), rtol=1e-15)
    np.testing.assert_allclose(acceptance_rate(p.T, q.T, axis=0), alpha, rtol=1e-15)


def test_residual_by_hand() -> None:
    # max(0, p - q) = [0.4, 0.1, 0] over 0.5
    np.testing.assert_allclose(residual_distribution([0.6, 0.3, 0.1], [0.2, 0.2, 0.6]), [0.8, 0.2, 0.0])
    p = np.array([0.25, 0.75])
    np.testing.assert_array_equal(residual_distribution(p, p), p)  # p == q: p itself, by convention
    batch = residual_distribution([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], [[0.2, 0.2, 0.6], [0.2, 0.2, 0.6]])
    np.testing.assert_allclose(batch, [[0.8, 0.2, 0.0], [0.2, 0.2, 0.6]])


def test_residual_restores_the_target() -> None:
    # Leviathan et al. Theorem 3.5 (Appendix A.1): P(x) = min(p, q)(x) + (1 - alpha) residual(x) = p(x)
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(30, 0.5), size=100)
    q = rng.dirichlet(np.full(30, 0.5), size=100)
    alpha = acceptance_rate(p, q)[:, None]
    np.testing.assert_allclose(np.minimum(p, q) + (1 - alpha) * residual_distribution(p, q), p, atol=1e-15)


def test_from_logits() -> None:
    logits = np.log([1.0, 2.0, 3.0])
    np.testing.assert_allclose(from_logits(logits), [1 / 6, 2 / 6, 3 / 6], rtol=1e-15)
    w = np.sqrt([1.0, 2.0, 3.0])  # temperature 2 takes the square root of the weights
    np.testing.assert_allclose(from_logits(logits, temperature=2.0), w / w.sum(), rtol=1e-15)
    np.testing.assert_array_equal(from_logits([[1.0, 3.0, 2.0]], temperature=0.0), [[0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(from_logits([[1.0], [3.0]], temperature=0.0, axis=0), [[0.0], [1.0]])
    np.testing.assert_allclose(from_logits([1000.0, 1000.0]), [0.5, 0.5])  # no overflow
    # greedy drafts and target: accepted exactly when the argmaxes agree
    assert acceptance_rate(from_logits([1.0, 2.0], 0.0), from_logits([0.0, 5.0], 0.0)) == 1.0
    assert acceptance_rate(from_logits([1.0, 2.0], 0.0), from_logits([5.0, 0.0], 0.0)) == 0.0


# ----------------------------------------------------------------------------------------------------
# Bad input, vectorisation, invariants
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: acceptance_rate([0.5, 0.6], [0.5, 0.5]), "p must sum to 1"),
        (lambda: acceptance_rate([0.5, 0.5002], [0.5, 0.5]), "p must sum to 1"),
        (lambda: acceptance_rate([0.5, 0.5002], [0.5, 0.5], atol=1e-5), "within atol=1e-05"),
        (lambda: acceptance_rate([0.5, 0.5], [1.2, -0.2]), "q must be non-negative"),
        (lambda: acceptance_rate([np.nan, 1.0], [0.5, 0.5]), "p must be non-negative"),
        (lambda: acceptance_rate(1.0, 1.0), "vocabulary axis"),
        (lambda: residual_distribution([0.5, 0.5], [0.9, 0.2]), "q must sum to 1"),
        (lambda: acceptance_probability([-0.1], [0.5]), "non-negative"),
        (lambda: expected_tokens(1.2, 3), "alpha must lie in"),
        (lambda: expected_tokens(np.nan, 3), "alpha must lie in"),
        (lambda: expected_tokens(0.5, -1), "k must be an integer"),
        (lambda: expected_tokens(0.5, 2.5), "k must be an integer"),
        (lambda: expected_tokens_positional(0.5), "draft-position axis"),
        (lambda: speedup(0.5, 3, -0.1), "c must lie in"),
        (lambda: speedup(0.5, 3, 0.1, verify_ratio=0.0), "verify_ratio must be > 0"),
        (lambda: optimal_k(0.5, 0.1, k_max=0), "k_max"),
        (lambda: break_even_alpha(0.1, 0), "k must be an integer >= 1"),
        (lambda: from_logits([1.0, 2.0], temperature=-1.0), "temperature"),
        (lambda: time_per_token(0.5, 2, draft_step_s=0.1, verify_step_s=0.0), "verify_step_s"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


def test_vectorised_calls_equal_scalar_calls() -> None:
    alpha = np.array([0.0, 0.3, 0.8, 0.95, 1.0])[:, None, None]
    k = np.array([1, 2, 5, 9])[None, :, None]
    c = np.array([0.0, 0.05, 0.3])[None, None, :]
    grid = np.broadcast_arrays(alpha, k, c)
    vector = {
        "expected_tokens": expected_tokens(alpha, k) + 0 * c,
        "expected_accepted_tokens": expected_accepted_tokens(alpha, k) + 0 * c,
        "speedup": speedup(alpha, k, c, verify_ratio=1.1),
        "optimal_k": optimal_k(alpha, c, k_max=12) + 0 * k,
        "break_even_alpha": break_even_alpha(c, k) + 0 * alpha,
    }
    for idx in np.ndindex(grid[0].shape):
        a, kk, cc = (float(g[idx]) for g in grid)
        scalar = {
            "expected_tokens": expected_tokens(a, int(kk)),
            "expected_accepted_tokens": expected_accepted_tokens(a, int(kk)),
            "speedup": speedup(a, int(kk), cc, verify_ratio=1.1),
            "optimal_k": optimal_k(a, cc, k_max=12),
            "break_even_alpha": break_even_alpha(cc, int(kk)),
        }
        for name, value in scalar.items():
            assert vector[name][idx] == value, (name, idx)
    dist = tokens_distribution(alpha[..., 0], k[..., 0])
    for i, a in enumerate(alpha.ravel()):
        for j, kk in enumerate(k.ravel()):
            np.testing.assert_array_equal(dist[i, j, : kk + 1], tokens_distribution(a, kk))
    assert np.ndim(expected_tokens(0.5, 3)) == 0


@settings(deadline=None)
@given(
    alpha=st.floats(0.0, 1.0),
    d_alpha=st.floats(0.0, 1.0),
    k=st.integers(0, 64),
    c=st.floats(0.0, 2.0),
    r=st.floats(0.1, 3.0),
)
def test_invariants(alpha: float, d_alpha: float, k: int, c: float, r: float) -> None:
    e = float(expected_tokens(alpha, k))
    assert 1.0 <= e <= k + 1
    higher = alpha + d_alpha * (1 - alpha)
    assert float(expected_tokens(higher, k)) >= e * (1 - 1e-15)  # rises with alpha
    assert float(expected_tokens(alpha, k + 1)) >= e  # and with k
    s = float(speedup(alpha, k, c, verify_ratio=r))
    assert s <= float(speedup(alpha, k, c / 2, verify_ratio=r))  # cheaper drafts never hurt
    if alpha < 1:
        assert s <= 1 / ((1 - alpha) * r) * (1 + 1e-12)
    if k >= 1:
        be = float(break_even_alpha(c, k, verify_ratio=r))
        assert be == np.inf or 0.0 <= be <= 1.0
        if 0 < be < 1:
            assert float(speedup(be, k, c, verify_ratio=r)) == pytest.approx(1.0, rel=1e-12)


def test_costmodel_speculative_does_not_import_torch() -> None:
    code = "import sys, costmodel.speculative; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------------------
# Monte-Carlo: the reference sampler (validation/speculative.py), 200,000 trials per case
# ----------------------------------------------------------------------------------------------------


@functools.cache
def measured(name: str) -> Measurement:
    return measure(next(c for c in CASES if c.name == name))


def exact_alphas(case: Case) -> np.ndarray:
    """Per-position acceptance, from the models by 1 - TV (not through costmodel's sum of minima)."""
    zero = np.zeros(1, dtype=np.int64)
    if isinstance(case.target, BigramModel):
        assert isinstance(case.draft, BigramModel)
        return bigram_alphas(case.target, case.draft, case.k, start_token=0)  # forward recursion
    pos = [np.array([i]) for i in range(case.k)]
    return np.array([1 - total_variation(case.target(zero, i)[0], case.draft(zero, i)[0]) for i in pos])


def case_id(case: Case) -> str:
    return case.name.replace(" ", "_")


@pytest.mark.parametrize("case", [c for c in CASES if not isinstance(c.target, BigramModel)], ids=case_id)
def test_each_token_of_a_step_is_distributed_as_the_target(case: Case) -> None:
    pvalues = step_pvalues(case, measured(case.name))
    assert min(pvalues) > P_MIN, f"chi-square p-values by position: {pvalues}"


@pytest.mark.parametrize("case", [c for c in CASES if not isinstance(c.target, PositionalModel)], ids=case_id)
def test_output_sequence_is_distributed_as_the_target_alone(case: Case) -> None:
    result = sequence_test(case, n_tokens=case.k + 2)
    pvalues = [*result.marginal_pvalues, result.pair_pvalue]
    assert min(pvalues) > P_MIN, f"chi-square p-values (tokens 1..{case.k + 2}, last pair): {pvalues}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_measured_acceptance_rate_is_one_minus_tv(case: Case) -> None:
    m = measured(case.name)
    alpha = float(exact_alphas(case)[0])
    test = binomtest(m.first_accepted, m.n_trials, alpha)
    ci = test.proportion_ci(0.999)
    assert ci.low <= alpha <= ci.high, f"alpha {alpha:.5f}, measured 99.9 % CI ({ci.low:.5f}, {ci.high:.5f})"
    assert test.pvalue > P_MIN, f"binomial p = {test.pvalue:.3g}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_measured_tokens_per_verification_match_expected_tokens(case: Case) -> None:
    m = measured(case.name)
    alphas = exact_alphas(case)
    if isinstance(case.target, FixedModel):
        predicted = float(expected_tokens(alphas[0], case.k))
    else:
        predicted = float(expected_tokens_positional(alphas))
    bound = Z_999 * m.stderr_tokens
    assert abs(m.mean_tokens - predicted) < bound, (
        f"measured {m.mean_tokens:.4f} +- {bound:.4f} (99.9 %), predicted {predicted:.4f}"
    )


def test_position_dependent_acceptance_is_not_the_mean_alpha() -> None:
    # the positional case's alphas (0.9, 0.7, 0.4, 0.8): the formula with their mean is off by 8 s.e.
    case = next(c for c in CASES if isinstance(c.target, PositionalModel))
    m = measured(case.name)
    naive = float(expected_tokens(float(np.mean(exact_alphas(case))), case.k))
    assert abs(m.mean_tokens - naive) > 5 * m.stderr_tokens


def test_without_the_bonus_token_the_seed_000_count_appears() -> None:
    # seed 001's pseudocode: nothing sampled after k acceptances -> sum_{n<k} alpha^n = 3.3616 at 0.8, 5
    case = CASES[0]
    assert (case.k, round(float(exact_alphas(case)[0]), 12)) == (5, 0.8)
    m = measure(case, bonus_token=False)
    assert abs(m.mean_tokens - 3.3616) < Z_999 * m.stderr_tokens, (m.mean_tokens, m.stderr_tokens)
    # still exact: only the count changes
    pvalues = step_pvalues(case, m)  # tokens 1 .. k: no step reaches k + 1 now
    assert len(pvalues) == case.k
    assert min(pvalues) > P_MIN, pvalues


def test_chisquare_detects_resampling_from_the_target() -> None:
    # the classic mistake (replacement drawn from p, not norm(max(0, p - q))) must fail the same test
    case = CASES[0]
    pvalues = step_pvalues(case, measure(case, resample="target"))
    assert min(pvalues) < 1e-12, pvalues


def test_zero_drafts_is_plain_decoding() -> None:
    case = CASES[0]
    m = measure(Case("k = 0", case.target, case.draft, 0, np.empty(0), 1.0, seed=7))
    assert np.all(m.n_tokens == 1)
    assert step_pvalues(case, m)[0] > P_MIN


# ----------------------------------------------------------------------------------------------------
# Hardware-aware plan (roofline times)
# ----------------------------------------------------------------------------------------------------


def test_plan_verification_costs_one_step_while_memory_bound_and_more_at_large_batch() -> None:
    import costmodel
    from costmodel.speculative import plan, speedup

    w = costmodel.Workload(1, 1024, 256)
    df = plan("llama-3-8b", "ngram", "h100-sxm", w, alpha=0.7, batch_sizes=[1, 512], k_max=6)
    small, large = df[df.batch_size == 1], df[df.batch_size == 512]
    assert (small.verify_ratio < 1.05).all()  # k + 1 tokens read the weights once
    assert (large.verify_ratio.diff().dropna() > 0).all()  # compute bound: grows with k
    assert large.speedup.max() < small.speedup.max()
    # the table's speedup is the analytic formula with the roofline's c and verify_ratio
    row = small[small.k == 4].iloc[0]
    assert row.speedup == pytest.approx(float(speedup(0.7, 4, row.c, row.verify_ratio)), rel=1e-12)
    assert row.c == 0.0


def test_plan_draft_kinds() -> None:
    import costmodel
    from costmodel.speculative import plan

    w = costmodel.Workload(1, 512, 128)
    early = plan("llama-2-7b", "early-exit:8", "a100-80gb", w, alpha=0.6, batch_sizes=[1], k_max=3)
    assert 0.2 < early.c.iloc[0] < 0.35  # 8 of 32 layers plus the shared head and embeddings
    quant = plan("llama-2-7b", "quantized:int4", "a100-80gb", w, alpha=0.9, batch_sizes=[1], k_max=3)
    assert 0.25 < quant.c.iloc[0] < 0.5  # about a quarter of the bytes, plus the bf16 head
    small = plan("llama-2-70b", "llama-2-7b", "h100-sxm", w, alpha=0.8, batch_sizes=[1], k_max=3,
                 deployment=costmodel.Deployment(tp=4))  # fmt: skip
    assert small.is_best.sum() == 1
    with pytest.raises(costmodel.CostmodelError, match="early-exit draft needs"):
        plan("llama-2-7b", "early-exit:40", "a100-80gb", w, alpha=0.5)


def test_timed_speculative_loop_runs_and_matches_plain_greedy_decoding() -> None:
    """The timed loop (early-exit draft of the reference decoder) reproduces plain greedy output token for
    token and reports measured vs predicted speedup; timing accuracy is reported, not asserted (CPU noise)."""
    from validation.speculative_loop import run

    report = run(new_tokens=24, k=3, draft_layers=2)
    assert report.identical_to_plain is True
    assert 0.0 <= report.acceptance_rate <= 1.0
    assert 1.0 <= report.tokens_per_verification <= 4.0
    assert report.measured_speedup > 0
    assert np.isfinite(report.rel_error)
    sampled = run(new_tokens=24, k=3, draft_layers=4, temperature=1.0)
    assert sampled.identical_to_plain is None
    assert sampled.acceptance_rate > 0


def test_speculative_loop_cli_records_roofline_prediction(tmp_path: Path) -> None:
    """With a hardware profile the loop also predicts its step times by the roofline; records land in a
    JSON Lines file after an environment record, one per temperature."""
    import torch

    from validation.run import read_records
    from validation.speculative_loop import main

    out = tmp_path / "spec.jsonl"
    main(
        ["--new-tokens", "12", "--k", "2", "--temperature", "0", "1", "--hardware", "cpu", "--out", str(out)]
    )
    env, *runs = read_records(out)
    assert env["record"] == "environment"
    assert env["torch_version"] == torch.__version__
    assert [r["temperature"] for r in runs] == [0.0, 1.0]
    for r in runs:
        assert r["record"] == "speculative_loop"
        assert r["hardware_profile"] == "cpu"
        # the early exit (2 of 8 layers, shared embedding and head) costs more than 2/8 of a target step
        # and less than one; verifying k + 1 tokens costs at least one step
        assert 2 / 8 < r["roofline_draft_step_s"] / r["roofline_target_step_s"] < 1
        assert r["roofline_verify_s"] >= r["roofline_target_step_s"]
        assert r["roofline_rel_error"] == pytest.approx(
            (r["roofline_speedup"] - r["measured_speedup"]) / r["measured_speedup"]
        )


def test_speculative_loop_cli_starts_no_run_past_its_budget(tmp_path: Path) -> None:
    from validation.run import read_records
    from validation.speculative_loop import main

    out = tmp_path / "spec.jsonl"
    main(["--new-tokens", "8", "--k", "2", "--budget-s", "0", "--out", str(out)])
    assert [r["record"] for r in read_records(out)] == ["environment"]


def test_plan_prices_the_draft_on_the_targets_tensor_parallel_gpus() -> None:
    """Llama-2-70B on 4 H100s with a Llama-2-7B draft. vLLM runs the draft with the target's tp by
    default (or tp = 1): at tp = 4 each GPU streams a quarter of the draft's 13.5 GB of weights per step, so
    T_draft >= 13.5 GB / 4 / 3.35 TB/s = 1.0 ms; at tp = 1 one GPU streams all of it: >= 4.0 ms. Pricing
    the draft on one GPU while the target uses four made its weight streaming look 4x slower (c and the
    speedup both wrong); tp = 2 is neither of the two layouts vLLM allows."""
    import costmodel
    from costmodel.speculative import plan

    w = costmodel.Workload(1, 512, 128)
    dep = costmodel.Deployment(tp=4)
    draft_bytes = costmodel.weight_bytes(costmodel.load_model("llama-2-7b"))
    bw = costmodel.load_hardware("h100-sxm").memory_bandwidth_bytes_per_s
    same = plan(
        "llama-2-70b", "llama-2-7b", "h100-sxm", w, alpha=0.8, batch_sizes=[1], k_max=2, deployment=dep
    )
    one = plan("llama-2-70b", "llama-2-7b", "h100-sxm", w, alpha=0.8, batch_sizes=[1], k_max=2, deployment=dep,
               draft_tp=1)  # fmt: skip
    t_same, t_one = same.draft_step_s.iloc[0], one.draft_step_s.iloc[0]
    assert draft_bytes / 4 / bw < t_same < t_one
    assert draft_bytes / bw < t_one
    assert same.c.iloc[0] < one.c.iloc[0]
    assert (same.speedup.to_numpy() > one.speedup.to_numpy()).all()
    with pytest.raises(costmodel.CostmodelError, match="draft_tp"):
        plan("llama-2-70b", "llama-2-7b", "h100-sxm", w, alpha=0.8, deployment=dep, draft_tp=2)


def test_a_recipe_draft_keeps_the_targets_gpus() -> None:
    """An early-exit draft is the target's own first layers, whose weights are sharded over the target's tp,
    so it cannot run on one GPU (priced there it streamed all 8 layers' weights on one GPU: c 0.10 -> 0.59);
    an n-gram draft has no model to place. Both refuse ``draft_tp``; an early-exit draft takes the target's."""
    import costmodel
    from costmodel.speculative import plan

    w = costmodel.Workload(1, 512, 128)
    dep = costmodel.Deployment(tp=8)
    with pytest.raises(costmodel.CostmodelError, match="early-exit draft runs the target's own first layers"):
        plan("llama-2-70b", "early-exit:8", "h100-sxm", w, alpha=0.7, deployment=dep, draft_tp=1)
    with pytest.raises(costmodel.CostmodelError, match="n-gram draft has no model"):
        plan("llama-2-70b", "ngram", "h100-sxm", w, alpha=0.7, deployment=dep, draft_tp=8)
    same = plan("llama-2-70b", "early-exit:8", "h100-sxm", w, alpha=0.7, batch_sizes=[1], deployment=dep)
    told = plan("llama-2-70b", "early-exit:8", "h100-sxm", w, alpha=0.7, batch_sizes=[1], deployment=dep,
                draft_tp=8)  # fmt: skip
    np.testing.assert_array_equal(same.draft_step_s, told.draft_step_s)


def test_plan_verifies_mla_drafts_in_the_absorbed_form_like_a_decode_of_the_drafted_tokens() -> None:
    """DeepSeek-V3 (MLA) on 8 H200s. A verification of k drafts runs each sequence's k + 1 queries through
    the absorbed decode kernel (SGLang, TensorRT-LLM and vLLM's FlashMLA / FlashInfer-MLA; vLLM's Triton MLA
    and CUTLASS MLA verify in the naive prefill form; docs/serving.md, "MLA verification in the absorbed
    form"): it does the work of a decode step of B (k + 1) sequences over the same keys but
    reads each cache once, so T_verify(B, k) <= T_target(B (k + 1)) at k more cached tokens. Priced as a
    prefill chunk (the cache's per-head keys and values rebuilt) it cost more: 31.7 against 23.9 ms at
    k = 1, B = 8."""
    import costmodel
    from costmodel.estimate import step_time_s
    from costmodel.speculative import plan

    w = costmodel.Workload(1, 2048, 256)
    dep = costmodel.Deployment(tp=8)
    df = plan("deepseek-v3", "ngram", "h200", w, alpha=0.8, batch_sizes=[8], k_max=3, deployment=dep)
    context = 2048 + 256 / 2
    for row in df.itertuples():
        decodes = step_time_s(
            "deepseek-v3",
            "h200",
            w,
            dep,
            batch_size=8 * (row.k + 1),
            new_tokens=1,
            past_tokens=context + row.k,
        )
        assert row.verify_s <= float(decodes)


def test_plan_never_verifies_more_drafts_for_less_on_a_b200() -> None:
    """DeepSeek-V3 (MLA) on 8 B200s (16 heads a GPU): trtllm-gen runs its 16-head low-latency MLA decode
    kernel for at most 32 heads whatever the draft (``selectMlaGenerationKernel``), each of the k + 1 tokens
    with its own CTAs over the cache, so T_verify never falls as k grows (before the fix, the product
    16 (k + 1) chose the 64-head tile from k = 2: 63.3 ms at k = 1, 55.1 ms at k = 2 for 256 sequences)."""
    import costmodel
    from costmodel.speculative import plan

    w = costmodel.Workload(1, 6000, 4000, weight_dtype="fp8")
    dep = costmodel.Deployment(tp=8)
    df = plan("deepseek-v3", "ngram", "b200", w, alpha=0.8, batch_sizes=[32, 256], k_max=8, deployment=dep)
    for _, g in df.groupby("batch_size"):
        verify = g.sort_values("k").verify_s.to_numpy()
        assert np.all(np.diff(verify) > 0.0)


def test_a_draft_model_with_another_vocabulary_is_refused_unless_asked() -> None:
    """A draft's proposals are token ids the target verifies: vLLM refuses a draft_model whose vocab_size
    differs from the target's (SpeculativeConfig.verify_equal_vocab_size_if_draft_model) unless
    use_heterogeneous_vocab is set. Llama 2 (32,000 tokens) cannot draft for Llama 3 (128,256); Qwen3-8B
    (151,936) not for Qwen2.5-7B (152,064) either: vLLM compares the configs' vocab_size alone."""
    import costmodel
    from costmodel.speculative import plan

    w = costmodel.Workload(1, 512, 128)
    for target, draft in (("llama-3-70b", "llama-2-7b"), ("qwen2.5-7b", "qwen3-8b")):
        with pytest.raises(costmodel.CostmodelError, match="must share the target's vocabulary"):
            plan(target, draft, "h100-sxm", w, alpha=0.8, batch_sizes=[1], k_max=2)
    allowed = plan("llama-3-70b", "llama-2-7b", "h100-sxm", w, alpha=0.8, batch_sizes=[1], k_max=2,
                   heterogeneous_vocab=True)  # fmt: skip
    assert (allowed.draft_step_s > 0).all()
    # the same vocabulary, and the target's own recipes, need nothing
    plan("llama-3-70b", "llama-3-8b", "h100-sxm", w, alpha=0.8, batch_sizes=[1], k_max=2)
    for recipe in ("early-exit:8", "quantized:int4", "ngram"):
        plan("llama-3-8b", recipe, "h100-sxm", w, alpha=0.8, batch_sizes=[1], k_max=2)


def test_the_drafts_own_weights_per_gpu() -> None:
    """A separate draft model holds its weights in the workload's format, split over the draft's tp (all on
    one GPU with draft_tp 1); a quantized copy of the target holds the target in its own format; an early
    exit (the target's first layers) and an n-gram table hold nothing of their own."""
    import costmodel
    from costmodel.memory import weight_bytes
    from costmodel.speculative import draft_weight_bytes_per_gpu

    w = costmodel.Workload(8, 2048, 256)
    dep = costmodel.Deployment(tp=2)
    small = weight_bytes(costmodel.load_model("llama-3-8b"), weight_dtype="bf16")
    target = costmodel.load_model("llama-3-70b")
    assert draft_weight_bytes_per_gpu(target, "llama-3-8b", w, deployment=dep) == small / 2
    assert draft_weight_bytes_per_gpu(target, "llama-3-8b", w, deployment=dep, draft_tp=1) == small
    int4 = weight_bytes(target, weight_dtype="int4")
    assert draft_weight_bytes_per_gpu(target, "quantized:int4", w, deployment=dep) == pytest.approx(int4 / 2)
    assert draft_weight_bytes_per_gpu(target, "early-exit:8", w, deployment=dep) == 0.0
    assert draft_weight_bytes_per_gpu(target, "ngram", w, deployment=dep) == 0.0


def test_the_draft_keeps_a_cache_of_its_own_layers_and_an_early_exit_or_ngram_none() -> None:
    """Oracle by hand: a Llama-3-8B draft caches 32 layers x 2 x 8 KV heads x 128 x 2 bytes (bf16) a token,
    its 8 KV heads split over min(tp, 8) GPUs (tp 4: a quarter; draft_tp 1: one GPU holds it all); fp8 halves
    it. A quantized copy of the target caches the target's own layers (Llama-3-70B: 80 of them); an early
    exit reads the target's first layers and their cache, an n-gram table has none."""
    from costmodel.specs import Deployment, Workload
    from costmodel.speculative import draft_kv_bytes_per_gpu

    w = Workload(1, 1024, 256)
    per_token = 32 * 2 * 8 * 128 * 2
    kw: dict[str, Any] = dict(batch_size=3, context_len=1280, deployment=Deployment(tp=4))
    assert float(draft_kv_bytes_per_gpu("llama-3-70b", "llama-3-8b", w, **kw)) == 3 * 1280 * per_token / 4
    assert (
        float(draft_kv_bytes_per_gpu("llama-3-70b", "llama-3-8b", w, draft_tp=1, **kw))
        == 3 * 1280 * per_token
    )
    fp8 = Workload(1, 1024, 256, kv_dtype="fp8")
    assert float(draft_kv_bytes_per_gpu("llama-3-70b", "llama-3-8b", fp8, **kw)) == 3 * 1280 * per_token / 8
    assert (
        float(draft_kv_bytes_per_gpu("llama-3-70b", "quantized:int4", w, **kw))
        == 3 * 1280 * 80 * 2 * 8 * 128 * 2 / 4
    )
    for none in ("early-exit:8", "ngram"):
        assert float(draft_kv_bytes_per_gpu("llama-3-70b", none, w, **kw)) == 0.0


def test_a_pool_holding_the_drafts_layers_fits_fewer_tokens_by_hand() -> None:
    """DeepSeek-V3 on one B200 replica of tp 8 with an fp8 KV cache: each of its 61 MLA layers caches the
    576-element latent (kv_lora_rank 512 + rope 64) of a token, replicated on every TP rank, so a device
    holds 61 x 576 = 35,136 bytes a token. TensorRT-LLM's MTP with 3 drafts appends 3 layers of that shape
    to the pool (pool_draft_kv_layers cites get_num_spec_layers), 64 x 576 = 36,864 bytes a token; the
    room for the cache (weights and activations apart) is unchanged, so the pool holds room // 36,864
    tokens. vLLM keeps its one-layer draft in the same pool; SGLang's draft pool is its own."""
    from costmodel.registry import load_hardware, load_model
    from costmodel.serving import Engine
    from costmodel.specs import Deployment, Workload
    from costmodel.speculative import pool_draft_kv_layers

    assert pool_draft_kv_layers("trtllm", 3) == 3
    assert pool_draft_kv_layers("vllm", 3) == 1
    assert pool_draft_kv_layers("sglang", 3) == 0
    with pytest.raises(CostmodelError, match="engine must be one of"):
        pool_draft_kv_layers("tgi", 3)
    model, hardware = load_model("deepseek-v3"), load_hardware("b200")
    plain = Engine(
        model, hardware, Workload(1, 1, 1, weight_dtype="fp8_block", activation_dtype="fp8", kv_dtype="fp8"),
        Deployment(tp=8),
    )  # fmt: skip
    drafting = plain.replace(draft_kv_layers=pool_draft_kv_layers("trtllm", 3))
    assert plain.replica_memory().kv_bytes_per_token == 61 * 576
    assert drafting.replica_memory().kv_bytes_per_token == 64 * 576
    room = float(plain.replica_memory().free_bytes(plain.usable_fraction * hardware.memory_bytes))
    assert plain.kv_capacity_tokens() == int(room // (61 * 576))
    assert drafting.kv_capacity_tokens() == int(room // (64 * 576))
    # the admission count reads the same pool
    assert drafting.max_concurrency(4096).kv_capacity_tokens == drafting.kv_capacity_tokens()
    with pytest.raises(CostmodelError, match="draft_kv_layers must be an integer"):
        plain.replace(draft_kv_layers=-1)


@pytest.mark.parametrize("bad", [True, False, 1.0, "3", None, -1, 62, 10**30])
def test_a_draft_layer_count_is_a_whole_count_within_the_targets_layers(bad: object) -> None:
    """A draft's KV layers in the target's pool are a whole count between 0 and the target's own layers
    (DeepSeek-V3: 61): a bool, a float, a string, a negative count or more layers than the target has get
    one error naming ``draft_kv_layers``, on the engine and on the memory functions it calls; numpy integers
    count as their value (no overflow in their own width). ``pool_draft_kv_layers`` refuses a bool too."""
    import numpy as np

    from costmodel.memory import replica_memory
    from costmodel.registry import load_hardware, load_model
    from costmodel.serving import Engine, kv_capacity_tokens, max_concurrency
    from costmodel.specs import Deployment, Workload
    from costmodel.speculative import pool_draft_kv_layers

    model, hardware = load_model("deepseek-v3"), load_hardware("b200")
    w = Workload(1, 1, 1, weight_dtype="fp8_block", activation_dtype="fp8", kv_dtype="fp8")
    plain = Engine(model, hardware, w, Deployment(tp=8))
    with pytest.raises(CostmodelError, match="draft_kv_layers must be an integer"):
        plain.replace(draft_kv_layers=bad)
    with pytest.raises(CostmodelError, match="draft_kv_layers must be an integer"):
        replica_memory(model, tp=8, kv_dtype="fp8", draft_kv_layers=bad)  # type: ignore[arg-type]
    with pytest.raises(CostmodelError, match="draft_kv_layers must be an integer"):
        kv_capacity_tokens(model, hardware, deployment=Deployment(tp=8), draft_kv_layers=bad)  # type: ignore[arg-type]
    with pytest.raises(CostmodelError, match="draft_kv_layers must be an integer"):
        max_concurrency(model, hardware, context_len=1024, deployment=Deployment(tp=8), draft_kv_layers=bad)  # type: ignore[arg-type]
    if isinstance(bad, bool):
        with pytest.raises(CostmodelError, match="draft_tokens must be an integer >= 1"):
            pool_draft_kv_layers("trtllm", bad)
    # a numpy count is its value: 61 target layers + 61 of the draft's, 122 x 576 bytes a token
    wide = plain.replace(draft_kv_layers=np.int8(61))
    assert wide.replica_memory().kv_bytes_per_token == 122 * 576
    assert pool_draft_kv_layers("trtllm", np.int64(3)) == 3
