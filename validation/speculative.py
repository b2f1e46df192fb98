"""A reference speculative sampler over explicit categorical distributions, vectorised over trials.

The loop of Leviathan et al. 2023 (arXiv:2211.17192, Algorithm 1) / Chen et al. 2023
(arXiv:2302.01318, Algorithm 2), written for clarity and run for many independent trials at once with
numpy: T trials, V tokens, k drafts. The target and draft "models" are small tables of next-token
probabilities (:class:`FixedModel`, :class:`PositionalModel`, :class:`BigramModel`), so every quantity
the analytic model predicts (acceptance rate, tokens per verification, the output distribution) is
known exactly and can be compared with what the sampler does. ``python -m validation.speculative``
prints the Monte-Carlo evidence table of ``docs/speculative.md``; ``tests/test_speculative.py`` asserts it.

Shapes in comments: T trials, V vocabulary, k drafts, L output tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from costmodel.speculative import acceptance_rate, expected_tokens, expected_tokens_positional

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


# ----------------------------------------------------------------------------------------------------
# Toy models: next-token probabilities given the previous token and the position in the draft
# ----------------------------------------------------------------------------------------------------


class NextTokenModel(Protocol):
    """p(x | previous token, position in the draft block), one row per trial."""

    def __call__(self, prev: IntArray, position: IntArray) -> FloatArray:  # [T], [T] -> [T, V]
        """Next-token distributions for each trial."""
        ...


@dataclass(frozen=True)
class FixedModel:
    """The same distribution whatever the context: alpha is one constant."""

    probs: FloatArray  # [V]

    def __call__(self, prev: IntArray, position: IntArray) -> FloatArray:
        return np.broadcast_to(self.probs, (prev.shape[0], self.probs.shape[0]))


@dataclass(frozen=True)
class PositionalModel:
    """One distribution per position in the draft block (row i for draft i + 1, the last row reused).

    A construct for testing only: a different (p, q) pair per draft position gives known per-position
    acceptance rates alpha_i = 1 - TV(p_i, q_i).
    """

    probs: FloatArray  # [P, V]

    def __call__(self, prev: IntArray, position: IntArray) -> FloatArray:
        return np.asarray(self.probs[np.minimum(position, self.probs.shape[0] - 1)], dtype=np.float64)


@dataclass(frozen=True)
class BigramModel:
    """A Markov chain: row ``table[prev]`` is the next-token distribution after token ``prev``."""

    table: FloatArray  # [V, V]

    def __call__(self, prev: IntArray, position: IntArray) -> FloatArray:
        return np.asarray(self.table[prev], dtype=np.float64)


# ----------------------------------------------------------------------------------------------------
# The sampler
# ----------------------------------------------------------------------------------------------------


def sample(weights: FloatArray, rng: np.random.Generator) -> IntArray:
    """One token per row from non-negative, not necessarily normalised weights [T, V] (inverse CDF)."""
    cdf = np.cumsum(weights, axis=1)  # [T, V]
    u = rng.random(weights.shape[0]) * cdf[:, -1]  # [T]
    # first index whose cdf exceeds u; zero-weight tokens span an empty interval and are never drawn
    idx = (cdf <= u[:, None]).sum(axis=1)
    return np.asarray(np.minimum(idx, weights.shape[1] - 1), dtype=np.int64)


@dataclass(frozen=True)
class Step:
    """One draft-and-verify step for T trials."""

    tokens: IntArray  # [T, k + 1]; the first n_tokens of each row are the output, the rest is padding
    n_tokens: IntArray  # [T] tokens produced, N in 1 .. k + 1 (0 .. k without the bonus token)
    n_accepted: IntArray  # [T] drafts kept, 0 .. k
    accepted: BoolArray  # [T, k] whether each draft passed its test (drafts after a rejection are ignored)


def speculative_step(
    target: NextTokenModel,
    draft: NextTokenModel,
    k: int,
    prev: IntArray,
    rng: np.random.Generator,
    *,
    bonus_token: bool = True,
    resample: Literal["residual", "target"] = "residual",
) -> Step:
    """Draft k tokens, verify them, resample after the first rejection or add the bonus token.

    ``bonus_token=False`` reproduces seed 001's pseudocode, which samples nothing more when all k drafts
    are kept: the output is still exact, but a verification yields (1 - alpha^k) / (1 - alpha) tokens.
    ``resample="target"`` is the classic mistake of drawing the replacement for a rejected draft from p
    instead of norm(max(0, p - q)); it biases the output towards q, and the tests show they catch it.
    """
    T = prev.shape[0]
    rows = np.arange(T)
    drafts = np.empty((T, k), dtype=np.int64)
    p_of_draft = np.empty((T, k))  # p_i(x_i): the verification pass scores every drafted token at once
    q_of_draft = np.empty((T, k))
    context = prev
    for i in range(k):
        position = np.full(T, i)
        q_i = draft(context, position)  # [T, V]
        x = sample(q_i, rng)
        p_i = target(context, position)
        drafts[:, i], q_of_draft[:, i], p_of_draft[:, i] = x, q_i[rows, x], p_i[rows, x]
        context = x
    # keep x_i with probability min(1, p_i(x_i) / q_i(x_i)); q_i(x_i) > 0 because x_i was drawn from q_i
    accepted = rng.random((T, k)) * q_of_draft < p_of_draft  # [T, k]
    stop = np.concatenate([accepted, np.zeros((T, 1), dtype=bool)], axis=1)  # a sentinel rejection at k
    n_accepted = np.argmin(stop, axis=1).astype(np.int64)  # the first rejection: drafts kept before it

    # the token the target adds: from norm(max(0, p - q)) at the first rejected position, else from p
    context = np.where(n_accepted == 0, prev, drafts[rows, np.maximum(n_accepted - 1, 0)]) if k else prev
    p_next = target(context, n_accepted)  # [T, V]
    q_next = draft(context, n_accepted)
    rejected = n_accepted < k
    residual = np.maximum(p_next - q_next, 0.0) if resample == "residual" else p_next
    extra = sample(np.where(rejected[:, None], residual, p_next), rng)

    tokens = np.concatenate([drafts, np.zeros((T, 1), dtype=np.int64)], axis=1)  # [T, k + 1]
    tokens[rows, n_accepted] = extra
    n_tokens = n_accepted + (1 if bonus_token else rejected)
    return Step(tokens=tokens, n_tokens=n_tokens.astype(np.int64), n_accepted=n_accepted, accepted=accepted)


def speculative_generate(
    target: NextTokenModel,
    draft: NextTokenModel,
    k: int,
    *,
    n_tokens: int,
    n_trials: int,
    rng: np.random.Generator,
    start_token: int = 0,
) -> IntArray:
    """The first ``n_tokens`` output tokens of ``n_trials`` independent speculative runs [T, L].

    Steps repeat on the trials that are still short; each step starts from the last token produced.
    """
    out = np.zeros((n_trials, n_tokens + k + 1), dtype=np.int64)
    length = np.zeros(n_trials, dtype=np.int64)
    prev = np.full(n_trials, start_token, dtype=np.int64)
    offsets = np.arange(k + 1)
    while True:
        active = np.flatnonzero(length < n_tokens)
        if active.size == 0:
            return out[:, :n_tokens]
        step = speculative_step(target, draft, k, prev[active], rng)
        keep = offsets < step.n_tokens[:, None]  # [t, k + 1]
        rows = np.broadcast_to(active[:, None], keep.shape)[keep]
        cols = (length[active, None] + offsets)[keep]
        out[rows, cols] = step.tokens[keep]
        prev[active] = step.tokens[np.arange(active.size), step.n_tokens - 1]
        length[active] += step.n_tokens


# ----------------------------------------------------------------------------------------------------
# Distribution pairs with known acceptance
# ----------------------------------------------------------------------------------------------------


def pair_with_acceptance(
    alpha: float, vocab_size: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Target p and draft q over ``vocab_size`` tokens with 1 - TV(p, q) = ``alpha`` exactly.

    p is a softmax of N(0, 1.5^2) logits; q = (1 - lam) p + lam r with r a softmax of the negated
    logits (far from p), so TV(p, q) = lam TV(p, r) and lam = (1 - alpha) / TV(p, r). The residual
    max(0, p - q) = lam max(0, p - r) is spread over many tokens, not a copy of p.
    """
    logits = rng.standard_normal(vocab_size) * 1.5
    p = np.exp(logits - logits.max())
    p /= p.sum()
    r = np.exp(-logits - (-logits).max())
    r /= r.sum()
    tv = 0.5 * np.abs(p - r).sum()
    lam = (1.0 - alpha) / tv
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"alpha = {alpha} is out of reach for this pair (1 - TV(p, r) = {1 - tv:.3f})")
    return p, (1.0 - lam) * p + lam * r


def logit_pair(
    vocab_size: int, noise_std: float, rng: np.random.Generator, temperature: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """Target and draft from the same logits, the draft's perturbed by N(0, noise_std^2) noise.

    alpha falls from 1 as ``noise_std`` grows; read it off with ``acceptance_rate(p, q)``.
    """
    logits = rng.standard_normal(vocab_size) * 2.0
    noisy = logits + noise_std * rng.standard_normal(vocab_size)

    def softmax(z: FloatArray) -> FloatArray:
        e = np.exp((z - z.max()) / temperature)
        return np.asarray(e / e.sum(), dtype=np.float64)

    return softmax(logits), softmax(noisy)


def bigram_pair(
    vocab_size: int, noise_std: float, rng: np.random.Generator
) -> tuple[BigramModel, BigramModel]:
    """A random-weight target Markov chain and a draft chain with noisy logits (alpha varies by context)."""
    logits = rng.standard_normal((vocab_size, vocab_size))  # [prev, next]
    noisy = logits + noise_std * rng.standard_normal((vocab_size, vocab_size))

    def softmax(z: FloatArray) -> FloatArray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)

    return BigramModel(softmax(logits)), BigramModel(softmax(noisy))


def bigram_alphas(target: BigramModel, draft: BigramModel, k: int, start_token: int) -> FloatArray:
    """Exact per-position acceptance rates alpha_i = P(draft i kept | drafts 1 .. i-1 kept) [k].

    Forward recursion over the previous token: a_i(y) = P(drafts 1 .. i kept and x_i = y) satisfies
    a_1 = min(p, q)(. | x_0) and a_(i+1)(y) = sum_x a_i(x) min(p(y | x), q(y | x)), because a draft y is
    drawn with q(y | x) and kept with min(1, p/q). Then alpha_i = sum a_i / sum a_(i-1).
    """
    kept = np.minimum(target.table, draft.table)  # [V, V] P(draft y kept and drawn | previous x)
    a = np.zeros(target.table.shape[0])
    a[start_token] = 1.0
    mass = [1.0]
    for _ in range(k):
        a = a @ kept
        mass.append(float(a.sum()))
    return np.asarray(np.array(mass[1:]) / np.array(mass[:-1]), dtype=np.float64)


def chain_marginal(target: BigramModel, start_token: int, position: int) -> FloatArray:
    """P(x_position = y) for the target chain started after ``start_token`` (position 1 is the first)."""
    dist = np.zeros(target.table.shape[0])
    dist[start_token] = 1.0
    for _ in range(position):
        dist = dist @ target.table
    return dist


# ----------------------------------------------------------------------------------------------------
# Monte-Carlo cases: what the tests assert and docs/speculative.md reports
# ----------------------------------------------------------------------------------------------------

VOCAB_SIZE = 12
N_TRIALS = 200_000


@dataclass(frozen=True)
class Case:
    """A target/draft pair, a draft length and the analytic prediction for it."""

    name: str
    target: NextTokenModel
    draft: NextTokenModel
    k: int
    alphas: FloatArray  # [k] acceptance rate of each draft position, known exactly
    predicted_tokens: float  # costmodel's E[tokens per verification]
    seed: int


def fixed_case(alpha: float, k: int, seed: int) -> Case:
    """One (p, q) pair at every position, 1 - TV = ``alpha``."""
    p, q = pair_with_acceptance(alpha, VOCAB_SIZE, np.random.default_rng(seed))
    exact = float(acceptance_rate(p, q))
    return Case(
        f"fixed alpha={alpha} k={k}",
        FixedModel(p),
        FixedModel(q),
        k,
        np.full(k, exact),
        float(expected_tokens(exact, k)),
        seed,
    )


def positional_case(alphas: tuple[float, ...], seed: int) -> Case:
    """A different (p_i, q_i) pair at each draft position i (and a last target row for the bonus)."""
    rng = np.random.default_rng(seed)
    pairs = [pair_with_acceptance(a, VOCAB_SIZE, rng) for a in alphas]
    bonus, _ = pair_with_acceptance(0.5, VOCAB_SIZE, rng)
    p = np.stack([pp for pp, _ in pairs] + [bonus])  # [k + 1, V]
    q = np.stack([qq for _, qq in pairs] + [bonus])
    exact = acceptance_rate(p[:-1], q[:-1])
    name = "positional alphas=(" + ", ".join(f"{a:g}" for a in alphas) + ")"
    return Case(
        name,
        PositionalModel(p),
        PositionalModel(q),
        len(alphas),
        exact,
        float(expected_tokens_positional(exact)),
        seed,
    )


def bigram_case(noise_std: float, k: int, seed: int) -> Case:
    """A random bigram target and a noisy bigram draft, from token 0: alpha depends on the context."""
    target, draft = bigram_pair(VOCAB_SIZE, noise_std, np.random.default_rng(seed))
    alphas = bigram_alphas(target, draft, k, start_token=0)
    return Case(
        f"bigram noise={noise_std} k={k}",
        target,
        draft,
        k,
        alphas,
        float(expected_tokens_positional(alphas)),
        seed,
    )


CASES: tuple[Case, ...] = (
    fixed_case(0.8, 5, seed=1),  # the seed-000 example
    fixed_case(0.5, 3, seed=2),
    fixed_case(0.95, 8, seed=3),
    fixed_case(0.3, 1, seed=4),
    positional_case((0.9, 0.7, 0.4, 0.8), seed=5),
    bigram_case(0.5, 4, seed=6),
)


@dataclass(frozen=True)
class Measurement:
    """What one Monte-Carlo run of a case measured."""

    n_trials: int
    first_accepted: int  # trials whose first draft was kept
    mean_tokens: float  # tokens per verification [tokens]
    std_tokens: float  # sample standard deviation of the tokens per verification [tokens]
    step_tokens: IntArray  # [T, k + 1] the output tokens of one step
    n_tokens: IntArray  # [T]

    @property
    def stderr_tokens(self) -> float:
        """Standard error of ``mean_tokens`` [tokens]."""
        return float(self.std_tokens / np.sqrt(self.n_trials))


def measure(
    case: Case,
    *,
    n_trials: int = N_TRIALS,
    bonus_token: bool = True,
    resample: Literal["residual", "target"] = "residual",
) -> Measurement:
    """One speculative step from token 0 for ``n_trials`` independent trials."""
    rng = np.random.default_rng(case.seed)
    prev = np.zeros(n_trials, dtype=np.int64)
    step = speculative_step(
        case.target, case.draft, case.k, prev, rng, bonus_token=bonus_token, resample=resample
    )
    n = step.n_tokens.astype(np.float64)
    return Measurement(
        n_trials=n_trials,
        first_accepted=int(step.accepted[:, 0].sum()) if case.k else 0,
        mean_tokens=float(n.mean()),
        std_tokens=float(n.std(ddof=1)),
        step_tokens=step.tokens,
        n_tokens=step.n_tokens,
    )


def chisquare_pvalue(counts: IntArray, probs: FloatArray, *, min_expected: float = 5.0) -> float:
    """Pearson chi-square goodness-of-fit p-value of ``counts`` against ``probs`` (scipy.stats.chisquare).

    Cells expected fewer than ``min_expected`` times are pooled into one, so that the chi-square
    approximation holds (Cochran's rule); the degrees of freedom shrink accordingly.
    """
    from scipy.stats import chisquare

    expected = probs * counts.sum()
    small = expected < min_expected
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if not small.any():
        obs, exp = obs[:-1], exp[:-1]
    return float(chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


def step_pvalues(case: Case, m: Measurement) -> list[float]:
    """Chi-square p-value of token j of the step against the target's distribution there, j = 1 .. max N.

    Token j is counted over the trials whose step produced at least j tokens. Whether a step gets that
    far depends only on the tokens before j, and a fixed or positional model's distribution at j does not,
    so these tokens are i.i.d. draws from the target's p_j if the sampler is exact. Not for bigram cases
    (there p_j depends on token j - 1; :func:`sequence_test` covers them).
    """
    if isinstance(case.target, BigramModel):
        raise ValueError("step_pvalues needs a context-free target; use sequence_pvalues")
    pvalues = []
    for j in range(int(m.n_tokens.max())):
        tokens = m.step_tokens[m.n_tokens > j, j]
        probs = case.target(np.zeros(1, dtype=np.int64), np.array([j]))[0]
        pvalues.append(chisquare_pvalue(np.bincount(tokens, minlength=probs.size), probs))
    return pvalues


@dataclass(frozen=True)
class SequenceTest:
    """Chi-square p-values of a multi-step run against the target sampling alone."""

    marginal_pvalues: list[float]  # output token j, j = 1 .. L
    pair_pvalue: float  # the last two output tokens jointly, (x_(L-1), x_L): V^2 cells


def sequence_test(case: Case, *, n_tokens: int, n_trials: int = N_TRIALS) -> SequenceTest:
    """Compare the first ``n_tokens`` output tokens of independent speculative runs with the target alone.

    The reference is the law of the target sampling by itself from token 0: i.i.d. p for a fixed model,
    the Markov chain for a bigram model (token j's marginal is row 0 of the chain's j-step matrix). Each
    trial gives one token per position, so the counts at a position are multinomial. Runs of k + 2
    tokens cross at least one step boundary: the bonus token and the restart are covered.
    """
    if isinstance(case.target, PositionalModel):
        raise ValueError("a positional model has no sequence distribution of its own")
    zero = np.zeros(1, dtype=np.int64)
    chain = (
        case.target
        if isinstance(case.target, BigramModel)
        else BigramModel(np.tile(case.target(zero, zero), (VOCAB_SIZE, 1)))
    )
    rng = np.random.default_rng(case.seed + 1000)
    out = speculative_generate(case.target, case.draft, case.k, n_tokens=n_tokens, n_trials=n_trials, rng=rng)
    marginal = [
        chisquare_pvalue(np.bincount(out[:, j - 1], minlength=VOCAB_SIZE), chain_marginal(chain, 0, j))
        for j in range(1, n_tokens + 1)
    ]
    joint = chain_marginal(chain, 0, n_tokens - 1)[:, None] * chain.table  # [V, V]
    pair = out[:, -2] * VOCAB_SIZE + out[:, -1]
    return SequenceTest(marginal, chisquare_pvalue(np.bincount(pair, minlength=VOCAB_SIZE**2), joint.ravel()))


def evidence_table() -> str:  # pragma: no cover - a report for people; the tests assert the same runs
    """The Monte-Carlo evidence of docs/speculative.md, as a Markdown table."""
    from scipy.stats import binomtest

    lines = [
        "| case | alpha_1 = 1 - TV | measured alpha_1 (99.9 % CI) | E[tokens] predicted "
        "| measured +- 3.29 s.e. | chi-square p, token j of the step | chi-square p, output token j |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        m = measure(case)
        ci = binomtest(m.first_accepted, m.n_trials).proportion_ci(0.999)
        steps = (
            "-"
            if isinstance(case.target, BigramModel)
            else ", ".join(f"{p:.3f}" for p in step_pvalues(case, m))
        )
        seq = "-"
        if not isinstance(case.target, PositionalModel):
            s = sequence_test(case, n_tokens=case.k + 2)
            seq = ", ".join(f"{p:.3f}" for p in s.marginal_pvalues) + f"; pair {s.pair_pvalue:.3f}"
        lines.append(
            f"| {case.name} | {case.alphas[0]:.4f} | {m.first_accepted / m.n_trials:.4f} "
            f"({ci.low:.4f}, {ci.high:.4f}) | {case.predicted_tokens:.4f} | {m.mean_tokens:.4f} +- "
            f"{3.29 * m.stderr_tokens:.4f} | {steps} | {seq} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(evidence_table())
