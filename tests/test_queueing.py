"""Classic queues against closed forms derived by hand, exact rational sums, and textbook values.

Oracles: Erlang's formulas summed term by term in ``fractions.Fraction`` (exact), the M/M/1 and M/D/1
formulas written out below, the M/M/c stationary distribution summed directly, and textbook values
(M/M/2 at rho = 1/2 waits with probability 1/3: Kleinrock 1975 Vol. 1 §3.5 with c = 2, a = 1). The
simulated queues are in ``tests/test_simulate.py``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.errors import CostmodelError
from costmodel.queueing import birth_death, erlang_b, erlang_c, mg1, mgc, mm1, mmc, mmc_wait_quantile_s


def erlang_b_exact(c: int, a: Fraction) -> Fraction:
    """(a^c / c!) / sum_{k<=c} a^k / k!, exactly."""
    terms = [a**k / math.factorial(k) for k in range(c + 1)]
    return terms[-1] / sum(terms)


def erlang_c_exact(c: int, a: Fraction) -> Fraction:
    """(a^c / c!) c / (c - a) over sum_{k<c} a^k / k! + that, exactly (a < c)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(("c", "a"), [(1, "1/2"), (2, "1"), (3, "5/2"), (5, "3"), (10, "19/2"), (30, "24")])
def test_erlang_formulas_equal_exact_sums(c: int, a: str) -> None:
    aa = Fraction(a)
    assert erlang_b(c, float(aa)) == pytest.approx(float(erlang_b_exact(c, aa)), rel=1e-12)
    assert erlang_c(c, float(aa)) == pytest.approx(float(erlang_c_exact(c, aa)), rel=1e-12)


def test_textbook_mm2() -> None:
    # M/M/2, lambda = mu = 1 (rho = 1/2): P(wait) = 1/3, W_q = C / (c mu - lambda) = 1/3
    m = mmc(1.0, 1.0, 2)
    assert m.prob_wait == pytest.approx(1 / 3, rel=1e-12)
    assert m.mean_wait_s == pytest.approx(1 / 3, rel=1e-12)
    assert m.mean_sojourn_s == pytest.approx(4 / 3, rel=1e-12)
    assert m.mean_in_system == pytest.approx(4 / 3, rel=1e-12)  # Little: lambda W


def test_mm1_closed_forms() -> None:
    lam, mu = np.array([0.1, 0.5, 0.9]), 1.0
    m = mm1(lam, mu)
    rho = lam / mu
    np.testing.assert_allclose(m.utilization, rho)
    np.testing.assert_allclose(m.prob_wait, rho)
    np.testing.assert_allclose(m.mean_wait_s, rho / (mu - lam))
    np.testing.assert_allclose(m.mean_sojourn_s, 1 / (mu - lam))
    np.testing.assert_allclose(m.mean_in_system, rho / (1 - rho))
    np.testing.assert_allclose(m.mean_queue_length, rho**2 / (1 - rho))


def test_large_server_counts_stay_finite() -> None:
    # a^c / c! overflows double precision for c = 1000; the recursion does not. Oracle: log-space sum.
    c, a = 1000, 950.0
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(c + 1)]
    top = max(logs)
    b = math.exp(logs[-1] - top) / sum(math.exp(x - top) for x in logs)
    assert erlang_b(c, a) == pytest.approx(b, rel=1e-9)
    pw = erlang_c(c, a)
    assert 0 < pw < 1
    assert pw == pytest.approx(c * b / (c - a * (1 - b)), rel=1e-9)


def test_unstable_load_is_flagged_not_a_number() -> None:
    m = mmc([0.5, 2.0, 3.0], 1.0, 2)
    np.testing.assert_array_equal(m.stable, [True, False, False])
    assert np.isfinite(m.mean_wait_s[0])
    assert np.all(np.isinf(m.mean_wait_s[1:]))
    assert np.all(np.isinf(m.mean_sojourn_s[1:]))
    np.testing.assert_array_equal(m.prob_wait[1:], 1.0)
    assert not mg1(2.0, 0.5).stable
    assert np.isinf(mmc_wait_quantile_s(3.0, 1.0, 2, 0.99))


def test_broadcasting_matches_scalar_calls() -> None:
    lam = np.array([[0.2], [0.8], [1.5]])
    c = np.array([1, 2, 4])
    grid = mmc(lam, 1.0, c)
    assert grid.mean_wait_s.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            one = mmc(float(lam[i, 0]), 1.0, int(c[j]))
            assert grid.mean_wait_s[i, j] == one.mean_wait_s


def test_wait_quantile_inverts_the_tail() -> None:
    lam, mu, c = 3.0, 1.0, 4
    C = erlang_c(c, lam / mu)
    for q in (0.5, 0.9, 0.99):
        t = mmc_wait_quantile_s(lam, mu, c, q)
        expected = max(0.0, math.log(C / (1 - q)) / (c * mu - lam))
        assert t == pytest.approx(expected)
        if t > 0:  # P(W > t) = C exp(-(c mu - lambda) t) = 1 - q
            assert C * math.exp(-(c * mu - lam) * t) == pytest.approx(1 - q)
    assert mmc_wait_quantile_s(0.1, 1.0, 4, 0.5) == 0.0  # fewer than half the arrivals wait


def test_pollaczek_khinchine() -> None:
    lam, es = 0.6, 1.0
    # M/D/1: W_q = rho / (2 mu (1 - rho)); M/M/1 (scv 1) equals mm1
    assert mg1(lam, es, 0.0).mean_wait_s == pytest.approx(0.6 / (2 * 0.4))
    assert mg1(lam, es, 1.0).mean_wait_s == pytest.approx(float(mm1(lam, 1.0).mean_wait_s))
    # scv 4 (e.g. hyperexponential): (1 + 4) / 2 x the M/M/1 wait
    assert mg1(lam, es, 4.0).mean_wait_s == pytest.approx(2.5 * 0.6 / 0.4)


def test_allen_cunneen_reduces_to_its_exact_cases() -> None:
    assert mgc(2.5, 1.0, 3, 1.0).mean_wait_s == pytest.approx(float(mmc(2.5, 1.0, 3).mean_wait_s))
    assert mgc(0.7, 1.0, 1, 0.0).mean_wait_s == pytest.approx(float(mg1(0.7, 1.0, 0.0).mean_wait_s))


def test_birth_death_reproduces_mm1_and_mmc() -> None:
    # constant death rate mu: geometric (1 - rho) rho^n
    pi, tail = birth_death(0.6, np.ones(5))
    np.testing.assert_allclose(pi, 0.4 * 0.6 ** np.arange(6))
    assert tail == pytest.approx(0.6**6)
    # death rate min(n, c) mu: M/M/c, P(N >= c) = Erlang C
    c, lam = 4, 3.0
    pi, tail = birth_death(lam, np.minimum(np.arange(1, c + 1), c).astype(float))
    assert pi[c] + tail == pytest.approx(erlang_c(c, lam), rel=1e-12)
    # an unstable chain says so
    pi, tail = birth_death(5.0, np.array([1.0, 2.0]))
    assert np.isinf(tail)
    assert np.all(np.isnan(pi))


@pytest.mark.parametrize(
    "call",
    [
        lambda: mmc(-1.0, 1.0, 1),
        lambda: mmc(1.0, 0.0, 1),
        lambda: mmc(1.0, 1.0, 1.5),
        lambda: mmc(1.0, 1.0, 0),
        lambda: mmc(float("nan"), 1.0, 1),
        lambda: mg1(1.0, -1.0),
        lambda: mmc_wait_quantile_s(1.0, 2.0, 1, 1.0),
    ],
)
def test_bad_input_raises(call: object) -> None:
    with pytest.raises(CostmodelError):
        call()  # type: ignore[operator]


@settings(max_examples=60, deadline=None)
@given(
    c=st.integers(1, 60),
    a=st.floats(0.0, 59.0, allow_nan=False),
)
def test_erlang_c_is_a_probability_and_monotone(c: int, a: float) -> None:
    if a >= c:
        assert erlang_c(c, a) == 1.0
        return
    pw = float(erlang_c(c, a))
    assert 0.0 <= pw <= 1.0
    assert float(erlang_c(c + 1, a)) <= pw + 1e-12  # one more server never makes waiting likelier
    assert float(erlang_b(c, a)) <= pw + 1e-12  # blocking <= waiting (C = cB / (c - a(1 - B)))
