"""Scaling laws: pre-training loss from parameters and tokens, and the compute-optimal model size.

- Chinchilla (Hoffmann et al. 2022, arXiv:2203.15556, Eq. 2): L(N, D) = E + A / N^alpha + B / D^beta,
  with the constants of the paper (``"hoffmann2022"``) or of Epoch AI's replication
  (Besiroglu et al. 2024, arXiv:2404.10102, ``"besiroglu2024"``, the default).
- The compute-optimal (N, D) under C = 6 N D in closed form (Hoffmann et al. 2022, Eq. 4).
- Kaplan et al. 2020 (arXiv:2001.08361, Eq. 1.1): L(N) = (N_c / N)^alpha_N, non-embedding parameters.
- Seed 001's rule of thumb, N_opt ~ 0.05 C^0.5 and D_opt ~ 20 N, for comparison: it contradicts itself
  (:func:`seed_rule_of_thumb`).
- Seed 000's MoE relation, an empirical assumption (:func:`moe_effective_params`).

Losses are in nats per token on the authors' own data (MassiveText for Chinchilla, WebText2 for
Kaplan): the two families are not comparable with each other or with another tokenizer's loss.

Why the two Chinchilla constant sets disagree (``docs/compression.md``, "Scaling laws"): at Chinchilla's
budget, 5.76e23 FLOP, the constants printed for the paper's parametric fit (its approach 3) put the
optimum at 32B parameters on 3.0T tokens, while its approaches 1 and 2 (N_opt ~ C^0.50 and C^0.49, its
Table 2) led to the model it trained: Chinchilla, 70B parameters on 1.4T tokens.
Besiroglu et al. refitted the data reconstructed from the paper's figure: the reported estimates do
not fit it, because the optimizer stopped before convergence (a poor choice of loss scale) and the
published constants are rounded; their refit (alpha 0.3478, beta 0.3658) gives 72B on 1.3T, in line
with approaches 1 and 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ChinchillaConstants:
    """Constants of L(N, D) = E + A / N^alpha + B / D^beta [nats per token; N, D counts]."""

    E: float
    """Irreducible loss [nats per token]."""
    A: float
    B: float
    alpha: float
    beta: float
    source: str


CONSTANTS: Final[dict[str, ChinchillaConstants]] = {
    "hoffmann2022": ChinchillaConstants(
        E=1.69,
        A=406.4,
        B=410.7,
        alpha=0.34,
        beta=0.28,
        source="Hoffmann et al. 2022, arXiv:2203.15556, §3.3 (approach 3, Eq. 2), as printed in the paper",
    ),
    "besiroglu2024": ChinchillaConstants(
        E=1.8172,
        A=482.01,
        B=2085.43,
        alpha=0.3478,
        beta=0.3658,
        source="Besiroglu et al. 2024, 'Chinchilla Scaling: A replication attempt', arXiv:2404.10102",
    ),
}
"""Chinchilla constant sets by name; :data:`CHINCHILLA_MODELS` lists the names."""

CHINCHILLA_MODELS: Final = tuple(CONSTANTS)
"""Names accepted by the ``constants=`` argument; the default is ``"besiroglu2024"``."""

ConstantsName = Literal["hoffmann2022", "besiroglu2024"]

KAPLAN_NC: Final = 8.8e13
"""N_c of Kaplan et al. 2020, Eq. 1.1 [non-embedding parameters]."""
KAPLAN_ALPHA_N: Final = 0.076
"""alpha_N of Kaplan et al. 2020, Eq. 1.1 [-]."""


def _constants(constants: ConstantsName | ChinchillaConstants) -> ChinchillaConstants:
    if isinstance(constants, ChinchillaConstants):
        return constants
    try:
        return CONSTANTS[constants]
    except KeyError:
        raise ValueError(f"constants must be one of {CHINCHILLA_MODELS}, got {constants!r}") from None


def chinchilla_loss(
    params: npt.ArrayLike,
    tokens: npt.ArrayLike,
    *,
    constants: ConstantsName | ChinchillaConstants = "besiroglu2024",
) -> FloatArray:
    """Final pre-training loss L(N, D) = E + A / N^alpha + B / D^beta [nats per token].

    Hoffmann et al. 2022, Eq. 2. Assumptions: dense decoder-only transformers trained for one epoch
    on D tokens with a cosine schedule matched to D, on the authors' MassiveText data; N counts all
    parameters (the paper includes embeddings).

    Parameters
    ----------
    params : float or array
        N, parameters [-].
    tokens : float or array
        D, training tokens [-].
    constants : str or ChinchillaConstants
        A name from :data:`CHINCHILLA_MODELS` or your own constants.
    """
    c = _constants(constants)
    N = np.asarray(params, dtype=np.float64)
    D = np.asarray(tokens, dtype=np.float64)
    return np.asarray(c.E + c.A / N**c.alpha + c.B / D**c.beta)


class ComputeAllocation(NamedTuple):
    """A training compute budget split into parameters and tokens; unpacks as ``params, tokens``."""

    params: FloatArray
    """N [-]."""
    tokens: FloatArray
    """D [-]."""

    @property
    def compute_flop(self) -> FloatArray:
        """6 N D [FLOP] (Kaplan et al. 2020, §2.1: forward + backward, no attention term)."""
        return np.asarray(6.0 * self.params * self.tokens)

    @property
    def tokens_per_param(self) -> FloatArray:
        """D / N [-]."""
        return np.asarray(self.tokens / self.params)


def compute_optimal(
    compute_flop: npt.ArrayLike, *, constants: ConstantsName | ChinchillaConstants = "besiroglu2024"
) -> ComputeAllocation:
    """The (N, D) minimising :func:`chinchilla_loss` under C = 6 N D [-].

    Hoffmann et al. 2022, Eq. 4. Substituting D = C / (6N) and setting dL/dN = 0 gives
    alpha A N^-alpha = beta B D^-beta, whose solution is

        N_opt = G (C/6)^(beta / (alpha + beta)),   D_opt = G^-1 (C/6)^(alpha / (alpha + beta)),
        G = (alpha A / (beta B))^(1 / (alpha + beta)).

    At C = 5.76e23 FLOP (Chinchilla's budget): ``"hoffmann2022"`` gives N = 32B, D = 3.0T;
    ``"besiroglu2024"`` gives N = 72B, D = 1.3T, matching the 70B / 1.4T model the paper trained. See
    the module docstring for why.
    """
    c = _constants(constants)
    C6 = np.asarray(compute_flop, dtype=np.float64) / 6.0
    s = c.alpha + c.beta
    G = (c.alpha * c.A / (c.beta * c.B)) ** (1.0 / s)
    return ComputeAllocation(
        params=np.asarray(G * C6 ** (c.beta / s)), tokens=np.asarray(C6 ** (c.alpha / s) / G)
    )


def kaplan_loss(non_embedding_params: npt.ArrayLike) -> FloatArray:
    """L(N) = (N_c / N)^alpha_N [nats per token] (Kaplan et al. 2020, Eq. 1.1).

    N_c = 8.8e13, alpha_N = 0.076, N the non-embedding parameters. Assumptions: trained to convergence
    on enough data (no data limit), WebText2, their tokenizer. Kaplan's compute-optimal allocation
    (N ~ C^0.73) is superseded by Chinchilla's (N ~ C^0.5); Hoffmann et al. (§2) attribute much of the
    difference to Kaplan et al.'s use of one learning-rate schedule whatever the number of tokens.
    """
    N = np.asarray(non_embedding_params, dtype=np.float64)
    return np.asarray((KAPLAN_NC / N) ** KAPLAN_ALPHA_N)


def seed_rule_of_thumb(compute_flop: npt.ArrayLike) -> ComputeAllocation:
    """Seed 001's rule: N_opt ~ 0.05 C^0.5 and D_opt ~ 20 N [-]. Kept for comparison only.

    The rule contradicts itself: with D = 20 N, C = 6 N D = 120 N^2, so N = (C / 120)^0.5 =
    0.0913 C^0.5, not 0.05 C^0.5. The seed's N spends only 6 x 20 x 0.05^2 = 30 % of the budget
    (``compute_flop`` of the result). At 5.76e23 FLOP it gives 38B parameters on 0.76T tokens where
    the consistent rule (and Chinchilla) gives 69B on 1.4T.
    """
    C = np.asarray(compute_flop, dtype=np.float64)
    N = 0.05 * np.sqrt(C)
    return ComputeAllocation(params=np.asarray(N), tokens=np.asarray(20.0 * N))


MOE_EXPONENT_RANGE: Final = (0.5, 0.7)
"""Seed 000 Theorem 4's "empirical beta ~ 0.5 to 0.7" [-]. Uncertain: the seed cites no source."""


def moe_effective_params(
    active_params: npt.ArrayLike, n_experts: npt.ArrayLike, *, exponent: npt.ArrayLike = 0.6
) -> FloatArray:
    """Dense-equivalent parameters of a mixture of experts: N_active E^beta [-]. EMPIRICAL, UNCERTAIN.

    Seed 000 Theorem 4: at equal compute, an MoE with E experts matches a dense model with E^beta times
    more parameters, beta ~ 0.5-0.7 (:data:`MOE_EXPONENT_RANGE`; the default is the middle). This is an
    assumption, not a derived result: the seed gives no source, its own "MoE scaling law"
    L = (N_c / N_active)^alpha_N (loss set by active parameters only) contradicts it (beta = 0), and
    Clark et al. 2022 ("Unified Scaling Laws for Routed Language Models", arXiv:2202.01169) find the
    benefit of more experts shrinking as the dense size grows, so no constant beta holds across scales.
    Use it for what-if ranges (pass ``exponent=MOE_EXPONENT_RANGE`` as an array), not predictions.
    """
    n = np.asarray(active_params, dtype=np.float64)
    return np.asarray(n * np.asarray(n_experts, dtype=np.float64) ** np.asarray(exponent, dtype=np.float64))
