"""A serving engine's building blocks: request lengths and traffic, engine iteration times, and how many
sequences fit in KV memory.

- **Traffic** (:class:`Traffic`): Poisson arrivals at ``rate_per_s`` with prompt and output lengths drawn
  independently from :class:`Lengths` distributions (fixed, geometric, discretised lognormal, or the
  empirical distribution of a trace file, :func:`load_trace`).
- **Iteration time** (:func:`step_time`): one iteration of an iteration-level (continuous batching)
  engine: ``decode_batch`` sequences each decode one token, and optionally one prompt chunk of
  ``prefill_tokens`` is prefilled in the same pass (chunked prefill, Agrawal et al. 2024, Sarathi-Serve
  §4.2). Built only from :func:`costmodel.estimate.step_time_s`; no physics is re-derived here.
- **KV-bounded concurrency** (:func:`max_concurrency`): the most sequences whose KV cache fits next to
  the weights, for contiguous allocation (each sequence reserves ``max_len`` tokens, as engines did
  before PagedAttention) and for paged allocation (blocks of ``block_size`` tokens, Kwon et al. 2023,
  "Efficient Memory Management for LLM Serving with PagedAttention", §4.1-4.2), with the internal
  fragmentation of the last block.
- **Static vs continuous batching** (:func:`static_batching_gain`): seed 000's Theorem 12 generalised to
  an output-length distribution, E[max of B] / E[N].
- :class:`Engine` bundles a model, a device, dtypes, parallelism and the scheduler's limits;
  :class:`StepTable` tabulates its iteration times for the discrete-event simulator.

The analytic latency model of an engine under load is in :mod:`costmodel.capacity`; the simulator in
:mod:`costmodel.simulate`; the derivations and their validity in ``docs/serving.md``.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from costmodel import checks
from costmodel.closed_loop import LoopParams, cuda_graph_tokens, engine_step_s, prefill_host_s
from costmodel.errors import CostmodelError

if TYPE_CHECKING:
    from costmodel.memory import ReplicaMemory, Sparsity
    from costmodel.specs import Deployment, Efficiency, HardwareProfile, ModelProfile, Workload

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Allocation = Literal["paged", "contiguous"]
ALLOCATIONS: tuple[Allocation, ...] = ("paged", "contiguous")

DEFAULT_CAP_TOKENS = 131_072
"""Largest token count a geometric or lognormal :class:`Lengths` keeps by default [tokens]; the tail
beyond it is lumped on it (a ``max_tokens`` limit)."""


# ----------------------------------------------------------------------------------------------------
# Request lengths and traffic
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Lengths:
    """A distribution of token counts on {1, 2, ...}, stored as its support and probabilities.

    Build one with :meth:`fixed`, :meth:`geometric`, :meth:`lognormal` or :meth:`empirical`. Moments,
    quantiles and E[max] are exact sums over the support (no sampling).
    """

    values: IntArray
    """Sorted distinct token counts [tokens]."""
    probs: FloatArray
    """P(length = value) [-], summing to 1."""
    kind: str = "empirical"

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.int64)
        p = np.asarray(self.probs, dtype=np.float64)
        if v.ndim != 1 or v.size == 0 or v.shape != p.shape:
            raise CostmodelError("Lengths needs equally long 1-D arrays of values and probabilities")
        if np.any(v < 1) or np.any(np.diff(v) <= 0):
            raise CostmodelError("Lengths values must be increasing integers >= 1 [tokens]")
        if np.any(~(p >= 0)) or not math.isclose(float(p.sum()), 1.0, abs_tol=1e-9):
            raise CostmodelError("Lengths probabilities must be non-negative and sum to 1")
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "probs", p / p.sum())

    def __repr__(self) -> str:
        return f"Lengths({self.kind}, mean={self.mean:.1f}, max={self.max})"

    @classmethod
    def fixed(cls, tokens: int) -> Lengths:
        """Every request has exactly ``tokens`` tokens."""
        if not (isinstance(tokens, int | np.integer) and tokens >= 1):
            raise CostmodelError(f"fixed length must be an integer >= 1 [tokens], got {tokens!r}")
        return cls(np.array([tokens]), np.array([1.0]), kind="fixed")

    @classmethod
    def geometric(cls, mean: float, *, max_tokens: int | None = None) -> Lengths:
        """P(N = k) = (1 - p)^(k - 1) p on k = 1, 2, ..., with p = 1 / ``mean`` [tokens].

        The memoryless length: each decoding step ends the sequence with probability p (an end-of-
        sequence token at a constant rate). The tail beyond ``max_tokens`` (default: where it holds less
        than 1e-12, at most :data:`DEFAULT_CAP_TOKENS`) is lumped on ``max_tokens``, as an engine's
        max-tokens limit does, so the mean is that of the capped distribution.
        """
        if not (math.isfinite(mean) and mean >= 1):
            raise CostmodelError(f"geometric mean must be >= 1 [tokens], got {mean!r}")
        if mean == 1:
            return cls.fixed(1)
        p = 1.0 / mean
        cap = max_tokens or min(DEFAULT_CAP_TOKENS, math.ceil(math.log(1e-12) / math.log1p(-p)))
        k = np.arange(1, _cap(cap) + 1, dtype=np.int64)
        pmf = p * np.exp((k - 1) * math.log1p(-p))
        pmf[-1] = math.exp((cap - 1) * math.log1p(-p))  # P(N >= cap)
        return cls(k, pmf, kind="geometric")

    @classmethod
    def lognormal(cls, mean: float, sigma: float, *, max_tokens: int | None = None) -> Lengths:
        """A lognormal length rounded to the nearest integer >= 1 [tokens].

        ``mean`` is the mean of the continuous lognormal, ``sigma`` the standard deviation of its
        logarithm [-] (mu = ln(mean) - sigma^2 / 2). Prompt and output lengths of chat traces are close to
        lognormal (e.g. ShareGPT). The tail beyond ``max_tokens`` (default: the 1 - 1e-9 quantile, at
        most :data:`DEFAULT_CAP_TOKENS`) is lumped on it.
        """
        from scipy.special import ndtr  # scipy.special is slow to import; only this needs it

        if not (math.isfinite(mean) and mean >= 1 and math.isfinite(sigma) and sigma > 0):
            raise CostmodelError(f"lognormal needs mean >= 1 and sigma > 0, got {mean!r}, {sigma!r}")
        mu = math.log(mean) - sigma**2 / 2
        if max_tokens is None:
            max_tokens = min(DEFAULT_CAP_TOKENS, max(1, math.ceil(math.exp(mu + 6.0 * sigma))))
        cap = _cap(max_tokens)
        edges = np.arange(1, cap, dtype=np.float64) + 0.5  # k gets (k - 1/2, k + 1/2]
        cdf = np.concatenate([[0.0], ndtr((np.log(edges) - mu) / sigma), [1.0]])
        return cls(np.arange(1, cap + 1, dtype=np.int64), np.diff(cdf), kind="lognormal")

    @classmethod
    def empirical(cls, samples: npt.ArrayLike) -> Lengths:
        """The empirical distribution of observed lengths (each sample weighs the same)."""
        x = np.asarray(samples)
        if x.size == 0 or x.dtype.kind not in "iuf" or np.any(~(x >= 1)) or np.any(x != np.round(x)):
            raise CostmodelError("empirical lengths must be a non-empty array of integers >= 1 [tokens]")
        v, counts = np.unique(x.astype(np.int64), return_counts=True)
        return cls(v, counts / counts.sum(), kind="empirical")

    @property
    def mean(self) -> float:
        """E[N] [tokens]."""
        return float(self.values @ self.probs)

    def moment(self, order: int) -> float:
        """E[N^order] [tokens^order]."""
        return float(self.values.astype(np.float64) ** order @ self.probs)

    @property
    def scv(self) -> float:
        """Squared coefficient of variation Var(N) / E[N]^2 [-]."""
        return self.moment(2) / self.mean**2 - 1.0

    @property
    def max(self) -> int:
        """Largest length with non-zero probability [tokens]."""
        return int(self.values[np.nonzero(self.probs)[0][-1]])

    def cdf(self) -> FloatArray:
        """P(N <= value) at each support value [-]."""
        return np.minimum(np.cumsum(self.probs), 1.0)

    def quantile(self, q: npt.ArrayLike) -> IntArray:
        """Smallest length with P(N <= length) >= q [tokens], elementwise."""
        qq = np.asarray(q, dtype=np.float64)
        idx = np.searchsorted(self.cdf(), qq - 1e-12, side="left")
        return np.asarray(self.values[np.minimum(idx, self.values.size - 1)], dtype=np.int64)

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> IntArray:
        """Independent draws by inverse transform [tokens]."""
        return self.quantile(rng.random(size))

    def expected_max(self, batch_size: npt.ArrayLike) -> FloatArray:
        """E[max(N_1, ..., N_B)] of B independent lengths [tokens], exactly, elementwise over B.

        E[max] = sum_j v_j (F(v_j)^B - F(v_(j-1))^B), F the CDF (the distribution of a maximum of i.i.d.
        variables is F^B).
        """
        B = np.asarray(batch_size, dtype=np.float64)
        if np.any(~(B >= 1)):
            raise CostmodelError(f"batch_size must be >= 1, got {batch_size!r}")
        F = self.cdf()
        Fb = F ** B[..., None]
        prev = np.concatenate([np.zeros((*B.shape, 1)), Fb[..., :-1]], axis=-1)
        return np.asarray((Fb - prev) @ self.values.astype(np.float64), dtype=np.float64)


def _cap(max_tokens: int) -> int:
    if not (isinstance(max_tokens, int | np.integer) and max_tokens >= 1):
        raise CostmodelError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    return int(max_tokens)


TRACE_COLUMNS = ("arrival_time_s", "prompt_tokens", "output_tokens")
"""Fields of a trace row: arrival time since the start [s], prompt and output lengths [tokens]."""


@dataclass(frozen=True, eq=False)
class Trace:
    """Requests recorded from a real service: arrival times [s] and lengths [tokens], in arrival order."""

    arrival_s: FloatArray
    prompt_tokens: IntArray
    output_tokens: IntArray
    source: str = "<memory>"

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def rate_per_s(self) -> float:
        """Mean arrival rate (n - 1) / (last - first arrival) [1/s]."""
        span = float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) > 1 else 0.0
        if span <= 0:
            raise CostmodelError(f"trace {self.source}: needs two or more distinct arrival times for a rate")
        return (len(self) - 1) / span


def load_trace(path: str | Path) -> Trace:
    """Read a request trace from CSV (with a header row) or JSON Lines (one object per line).

    Each row needs ``arrival_time_s`` (seconds, non-decreasing, >= 0), ``prompt_tokens`` and
    ``output_tokens`` (integers >= 1); other columns are ignored. A malformed row raises
    :class:`CostmodelError` naming the file, the line number and the field.
    """
    p = Path(path)
    if not p.is_file():
        raise CostmodelError(f"trace file not found: {p}")
    rows: list[tuple[int, dict[str, Any]]] = []
    with p.open(newline="", encoding="utf-8") as f:
        if p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CostmodelError(f"{p}:{number}: not valid JSON ({e.msg})") from None
                if not isinstance(record, dict):
                    raise CostmodelError(
                        f"{p}:{number}: expected a JSON object with {', '.join(TRACE_COLUMNS)}"
                    )
                rows.append((number, record))
        else:
            reader = csv.DictReader(f)
            missing = [c for c in TRACE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CostmodelError(
                    f"{p}:1: the header lacks {', '.join(missing)} (need {', '.join(TRACE_COLUMNS)})"
                )
            for record in reader:
                if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
                    continue
                rows.append((reader.line_num, record))
    if not rows:
        raise CostmodelError(f"{p}: no requests in the trace")
    arrival = np.empty(len(rows))
    prompt = np.empty(len(rows), dtype=np.int64)
    output = np.empty(len(rows), dtype=np.int64)
    for i, (number, record) in enumerate(rows):
        arrival[i] = _field(p, number, record, "arrival_time_s", integer=False)
        prompt[i] = _field(p, number, record, "prompt_tokens", integer=True)
        output[i] = _field(p, number, record, "output_tokens", integer=True)
        if i and arrival[i] < arrival[i - 1]:
            raise CostmodelError(
                f"{p}:{number}: arrival_time_s {arrival[i]} is earlier than the row before "
                f"({arrival[i - 1]}); sort the trace by arrival time"
            )
    return Trace(arrival, prompt, output, source=str(p))


def _field(path: Path, line: int, record: dict[str, Any], name: str, *, integer: bool) -> float:
    raw = record.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise CostmodelError(f"{path}:{line}: {name} is missing")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise CostmodelError(f"{path}:{line}: {name} must be a number, got {raw!r}") from None
    if isinstance(raw, bool) or not math.isfinite(value):
        raise CostmodelError(f"{path}:{line}: {name} must be a finite number, got {raw!r}")
    if integer and (value != math.floor(value) or value < 1):
        raise CostmodelError(f"{path}:{line}: {name} must be an integer >= 1 [tokens], got {raw!r}")
    if not integer and value < 0:
        raise CostmodelError(f"{path}:{line}: {name} must be >= 0 [s], got {raw!r}")
    return value


@dataclass(frozen=True, eq=False)
class Traffic:
    """Requests arriving as a Poisson process at ``rate_per_s`` [1/s], prompt and output lengths drawn
    independently from ``prompt`` and ``output``. ``trace`` (optional) is replayed by the simulator
    instead of Poisson arrivals, its times scaled to ``rate_per_s``."""

    rate_per_s: float
    prompt: Lengths
    output: Lengths
    trace: Trace | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise CostmodelError(f"rate_per_s must be > 0 [1/s], got {self.rate_per_s!r}")

    @classmethod
    def from_trace(cls, trace: Trace | str | Path, rate_per_s: float | None = None) -> Traffic:
        """The empirical length distributions of a trace and its mean rate (or ``rate_per_s``)."""
        t = trace if isinstance(trace, Trace) else load_trace(trace)
        return cls(
            rate_per_s if rate_per_s is not None else t.rate_per_s,
            Lengths.empirical(t.prompt_tokens),
            Lengths.empirical(t.output_tokens),
            trace=t,
        )

    def with_rate(self, rate_per_s: float) -> Traffic:
        """The same requests at another arrival rate [1/s]."""
        return Traffic(rate_per_s, self.prompt, self.output, self.trace)


# ----------------------------------------------------------------------------------------------------
# Iteration time
# ----------------------------------------------------------------------------------------------------


def step_time(
    model: ModelProfile | str,
    hardware: HardwareProfile | str,
    workload: Workload | None = None,
    deployment: Deployment | None = None,
    *,
    decode_batch: npt.ArrayLike = 0,
    decode_context: npt.ArrayLike = 0,
    prefill_tokens: npt.ArrayLike = 0,
    prefill_past: npt.ArrayLike = 0,
    prompt_len: npt.ArrayLike | None = None,
    efficiency: Efficiency | None = None,
) -> FloatArray:
    """Time of one engine iteration [s]: ``decode_batch`` sequences decode one token each and one prompt
    chunk of ``prefill_tokens`` tokens (after ``prefill_past`` already-prefilled tokens of the same
    prompt) is prefilled in the same forward pass. Arrays broadcast.

    Parameters
    ----------
    decode_batch : int or array
        Decoding sequences b [-] (0: a prefill-only iteration).
    decode_context : float or array
        Their mean past context c [tokens] (tokens already in each one's KV cache).
    prefill_tokens : int or array
        Prompt tokens k prefilled in this iteration [tokens] (0: a decode-only iteration).
    prefill_past : int or array
        Prompt tokens of that sequence prefilled in earlier chunks, p [tokens].
    prompt_len : int or array, optional
        The length L of the prompts the ``prefill_tokens`` come from [tokens]: given, the k prompt tokens
        are not one chunk but separate sequences of one packed call, :func:`prompt_pieces` (k / L whole
        prompts for k >= L, else one chunk after the mean past (L - k) / 2), each attending only to its
        own prompt; ``prefill_past`` must then be 0 (the pasts follow from L). Default: one chunk after
        ``prefill_past``.

    With S(B, n, past) = :func:`costmodel.estimate.step_time_s` (B sequences of n new tokens),

        t = S(b + k, 1, 0) + [S(b, 1, c) - S(b, 1, 0)] + [S_last(1, k, p) - S(k, 1, 0)].

    The roofline charges the linear layers by the total token count and attention per sequence, so the
    first term is every token's linear work (and the output head), the second the decodes' attention
    over their caches, the third the chunk's causal attention over itself and its past (with logits for
    its last token only). Each bracket is a difference of two passes with the same tokens, in which
    everything but attention cancels. The first term charges the chunk's k tokens as k decodes (each
    one's attention as a one-token sequence and an output-head row), which the third returns, so the
    third is two times: :meth:`_Parts.prefill_attention_s` (the chunk's attention and its sampled row,
    S_last(1, k, p) - S_bare(k, 1, 0), S_bare without attention and head) less
    :meth:`_Parts.prompt_extras_s` (S(k, 1, 0) - S_bare(k, 1, 0)); the bracket itself
    (:meth:`_Parts.prefill_chunk_s`) can be negative. It reduces exactly to S(b, 1, c) for a decode-only
    iteration and to S_last(1, k, p) for a prefill-only one. Approximations: the mixed pass's attention
    time is the sum of the two parts' (each max(compute, memory)) rather than one max over their sum, and
    the decodes' attention is affine in the context, so the mean context gives the batch's total exactly
    (except where a sliding window fills up). Chunked prefill mixing both is Agrawal et al. 2024
    (Sarathi-Serve, §4).

    With pipeline parallelism (pp > 1) S is the pipelined step of min(pp, B) micro-batches that
    :func:`costmodel.estimate.step_time_s` returns. The first term splits the b + k tokens evenly over
    the m micro-batches, except that the chunk, one sequence's, stays in one micro-batch: it is
    S(max(b + k, m k), 1, 0), the pacing micro-batch holding max((b + k) / m, k) tokens
    (:meth:`_Parts.paced_tokens`). The decodes' bracket is that of one micro-batch's b / pp decodes.
    The chunk's bracket evaluates both passes as one micro-batch: the same schedule, so the linear work
    and stage sends cancel and what is left is the chunk's attention through all layers, equal to its
    pp = 1 value (each stage runs 1/pp of the layers, the chunk visits every stage). Splitting S(k, 1, 0)
    into pp micro-batches instead would leave the difference of two GEMM passes at k and k / pp tokens in
    the bracket, whose tile quantisation saws with k. A prefill-only iteration is then S_last(1, k, p)
    at every pp.

    With attention data parallelism (``deployment.attention_dp`` = r ranks) ``decode_batch`` and
    ``prefill_tokens`` are the replica's totals, spread evenly: each rank decodes b / r sequences and
    prefills one chunk of k / r tokens, while the MoE layers serve all ranks' tokens together. The ranks
    step in lockstep (the MoE layers synchronise them), so an iteration takes the slowest rank's time;
    balanced, that is any rank's.

    With ``prompt_len`` the third bracket is :meth:`_Parts.prompts_chunk_s`: that of one packed pass of
    :func:`prompt_pieces`' sequences; the linear term still counts all b + k tokens together (the GEMMs
    see every token of the iteration at once). With pp > 1 its pacing chunk is the largest prompt piece,
    min(k, r L) (a prompt stays in one micro-batch; r attention-DP ranks), so the linear term is
    S(T', 1, 0) with T' = max(b + k, m min(k, r L)), m the micro-batches (:meth:`_Parts.paced_tokens`).
    """
    from costmodel.registry import load_hardware, load_model

    parts = _Parts(load_model(model), load_hardware(hardware), workload, deployment, efficiency)
    return parts.step_time(
        decode_batch=decode_batch,
        decode_context=decode_context,
        prefill_tokens=prefill_tokens,
        prefill_past=prefill_past,
        prompt_len=prompt_len,
    )


def prompt_pieces(
    tokens: npt.ArrayLike, prompt_len: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The sequences of one packed attention call that an iteration's ``tokens`` prompt tokens k are, drawn
    from prompts of ``prompt_len`` tokens L packed first come first served: (n, m, p) = n = max(k / L, 1)
    sequences [-] of m = min(k, L) tokens [tokens] each after p = (L - m) / 2 past tokens of its prompt
    [tokens]. Arrays broadcast.

    A context-attention kernel takes the iteration's prompts as separate sequences of one packed
    (variable-length) call, each query attending only to its own prompt's keys: vLLM's FlashAttention
    backend calls ``flash_attn_varlen_func`` once for the whole batch with ``cu_seqlens_q`` the requests'
    query offsets (``FlashAttentionImpl.forward``,
    https://github.com/vllm-project/vllm/blob/main/vllm/v1/attention/backends/flash_attn.py); FlashInfer's
    ``BatchPrefillWithRaggedKVCacheWrapper`` takes the ragged batch by ``qo_indptr`` / ``kv_indptr``
    (https://github.com/flashinfer-ai/flashinfer/blob/main/flashinfer/prefill.py); TensorRT-LLM's
    attention runs its context phase on packed (``remove_input_padding``) sequences
    (https://nvidia.github.io/TensorRT-LLM/advanced/gpt-attention.html, "Padded and Packed Tensors"). So
    k tokens of k / L whole prompts have k (L + 1) / 2 causal pairs, not the k (k + 1) / 2 of one
    k-token sequence. Every prompt's pieces together have L (L + 1) / 2 pairs however the iterations cut
    it, so an iteration of k tokens has k (L + 1) / 2 on average, and so has (n, m, p): n (m p + m (m + 1)
    / 2) = k (L + 1) / 2. For k < L (a prompt chunked over L / k iterations after 0, k, 2k, ... tokens)
    that is one chunk after the chunks' mean past (L - k) / 2; for k >= L the mean count of whole prompts,
    fractional between multiples of L: it is continuous in k, and its longest sequence is L long, as an
    iteration of k >= L tokens always holds a query at a prompt's last position (the tail of a prompt
    begun before, or a whole one). n rounded up to whole sequences of k / n tokens would shorten that
    longest sequence just past each multiple of L (to 3 L / 4 past L), and the kernel's longest query
    tile with it, so that more tokens would cost less."""
    try:
        k, L = np.broadcast_arrays(
            np.asarray(tokens, dtype=np.float64), np.asarray(prompt_len, dtype=np.float64)
        )
    except (TypeError, ValueError) as error:
        raise CostmodelError(
            f"tokens and prompt_len must be numbers broadcasting together, got {tokens!r}, {prompt_len!r}"
        ) from error
    if not (np.isfinite(k).all() and (k >= 0).all()):
        raise CostmodelError(
            f"tokens (an iteration's prompt tokens) must be finite and >= 0, got "
            f"{k[~np.isfinite(k) | (k < 0)].flat[0]!r}"
        )
    if not (np.isfinite(L).all() and (L >= 1).all()):
        raise CostmodelError(
            f"prompt_len must be finite and >= 1, got {L[~np.isfinite(L) | (L < 1)].flat[0]!r}"
        )
    m = np.minimum(k, L)
    return np.asarray(np.maximum(k / L, 1.0)), np.asarray(m), np.asarray((L - m) / 2.0)


_T = TypeVar("_T")


def _exact_key(x: npt.ArrayLike) -> tuple[tuple[int, ...], bytes]:
    """A hashable key equal for two inputs exactly when their float64 values and shapes are."""
    a = np.asarray(x, dtype=np.float64)
    return a.shape, a.tobytes()


@dataclass(frozen=True)
class _Parts:
    """The three terms of :func:`step_time`, each from :func:`costmodel.estimate.step_time_s`; a term
    whose inputs are all zero costs no roofline evaluation. Each distinct pass is evaluated once per
    instance: the terms share passes (S(b, 1, 0) is in the first two brackets), and so do the iterations
    a closed loop times for the same decodes (:func:`costmodel.closed_loop.loop_parts`)."""

    model: ModelProfile
    hardware: HardwareProfile
    workload: Workload | None
    deployment: Deployment | None
    efficiency: Efficiency | None
    _passes: dict[tuple[Any, ...], FloatArray] = field(default_factory=dict, repr=False, compare=False)
    _wanted: list[list[tuple[Any, ...]]] = field(default_factory=list, repr=False, compare=False)
    _pending: list[tuple[Any, ...]] = field(default_factory=list, repr=False, compare=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    """Held by :meth:`_pass`, :meth:`note` and :meth:`together` while they read or change the passes and
    the noted ones: engines sharing one instance (:meth:`Engine.sharing_parts`) may run in several threads,
    and one thread's placeholders must never reach another (a thread waits for another's evaluation)."""

    def step_time(
        self,
        *,
        decode_batch: npt.ArrayLike = 0,
        decode_context: npt.ArrayLike = 0,
        prefill_tokens: npt.ArrayLike = 0,
        prefill_past: npt.ArrayLike = 0,
        decode_new_tokens: float = 1.0,
        prompt_len: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """:func:`step_time` of this engine (same arguments); ``decode_new_tokens`` n: each decoding
        sequence runs n new tokens over its cache (a speculative verification of n - 1 drafts, logits for
        all of them). The linear term counts b n + k tokens. The decodes' attention
        (:meth:`decode_attention_s`): an MLA model's S(b, n, c) - S(b, n, 0) in the absorbed decode form,
        whose kernel takes a sequence's n queries together, like n times the heads, over its latent cache
        read once (so its FLOPs grow with n where 128 heads a GPU under attention DP make it compute
        bound); other models' S(b, 1, c) - S(b, 1, 0), which holds while their decoding attention is
        memory bound. n = 1 is :func:`step_time`; ``prompt_len`` as there."""
        b, c, k, p = np.broadcast_arrays(
            *(
                np.asarray(x, dtype=np.float64)
                for x in (decode_batch, decode_context, prefill_tokens, prefill_past)
            )
        )
        names = ("decode_batch", "decode_context", "prefill_tokens", "prefill_past")
        for name, x in zip(names, (b, c, k, p), strict=True):
            if not (np.isfinite(x).all() and (x >= 0).all()):
                bad = ~((x >= 0) & np.isfinite(x))
                raise CostmodelError(f"{name} must be finite and >= 0, got {x[bad].flat[0]!r}")
        n = float(decode_new_tokens)
        if not (np.isfinite(n) and n >= 1):
            raise CostmodelError(f"decode_new_tokens must be finite and >= 1, got {decode_new_tokens!r}")
        if prompt_len is None:
            largest, prefill = k, self.prefill_chunk_s(k, p)
        else:
            prompt_pieces(k, prompt_len)  # checks prompt_len
            if (p != 0).any():
                raise CostmodelError(
                    "prefill_past must be 0 with prompt_len: the pieces' pasts follow from it"
                )
            r = self.deployment.attention_dp if self.deployment is not None else 1
            # a prompt stays in one pipeline micro-batch: the largest piece is a whole prompt per rank
            largest = np.minimum(k, r * np.asarray(prompt_len, dtype=np.float64))
            prefill = self.prompts_chunk_s(k, prompt_len)
        return np.asarray(
            self.linear_s(self.paced_tokens(b * n + k, largest)) + self.decode_attention_s(b, c, n) + prefill
        )

    def _pass(
        self,
        batch: Any,
        new: Any,
        past: Any,
        logits: Literal["all", "last", "bare", "head"] = "all",
        *,
        one_microbatch: bool = False,
        drafts: float = 0.0,
    ) -> FloatArray:
        """S(batch, new, past), each distinct pass computed once per engine; ``one_microbatch``: as one
        pipeline micro-batch (no split when pp > 1); ``logits="bare"``: S_bare, the pass without its
        attention operators and its output head (with the final norm and sampling), i.e. the tokens'
        linear work alone; ``logits="head"``: the output head's GEMM alone (every token's logits)."""
        # one micro-batch is every pass's schedule when pp = 1: such passes share their key
        one_microbatch = one_microbatch and self.deployment is not None and self.deployment.pp > 1
        key = (*(_exact_key(x) for x in (batch, new, past)), logits, one_microbatch, drafts)
        with self._lock:
            if key not in self._passes:
                if self._wanted:  # inside :meth:`together`'s first call: note the pass, a placeholder
                    self._wanted[-1].append((key, batch, new, past, logits, one_microbatch, drafts))
                    return np.zeros(np.broadcast_shapes(np.shape(batch), np.shape(new), np.shape(past)))
                self._passes[key] = self._evaluate(batch, new, past, logits, one_microbatch, drafts)
            return self._passes[key]

    def note(self, fn: Callable[[], object]) -> None:
        """Note the passes ``fn()`` needs without evaluating them (every pass a placeholder, the result
        discarded): the next :meth:`together` evaluates them with its own, grouped by kind as there. A
        search that will time the same engine in several calls (an aggregated worker, a prefill and a decode
        worker of one layout, sharing their terms through :meth:`Engine.sharing_parts`) notes the later
        calls' passes first, so that one concatenated pass per kind serves them all; each later call then
        finds its passes evaluated and runs once. Noted only when ``fn`` returns (an error leaves none)."""
        with self._lock:
            self._note(fn)

    def _note(self, fn: Callable[[], object]) -> None:
        if self._wanted:  # inside together's first call, which notes them anyway
            fn()
            return
        self._wanted.append([])
        try:
            fn()
        finally:
            wanted = self._wanted.pop()
        self._pending.extend(wanted)

    def together(self, fn: Callable[[], _T]) -> _T:
        """``fn()``, a function of this engine's terms, with the passes it needs evaluated together:
        ``fn`` runs once to note them (every pass a placeholder, the result discarded), the passes of one
        kind (the same ``logits``, micro-batching and single-token ``new``) are evaluated as one
        concatenated pass, with those :meth:`note` left pending, and ``fn`` runs again on them. Every
        element of a pass is evaluated on its own (the roofline and kernel models are elementwise), so the
        result is that of ``fn()`` to the bit, in a few evaluations instead of one per distinct pass: a
        closed loop's four iterations need ten (:func:`costmodel.closed_loop.loop_parts`), of two kinds.
        Where every pass ``fn`` needs was evaluated already, its first run is the result (no second
        run). ``fn`` must not branch on a term's value. Nested: the outer call notes the inner one's
        passes. One thread at a time runs it on one instance (:attr:`_lock`). Where the joint evaluation
        fails and passes noted by others were in it, it is retried on ``fn``'s own passes alone: a noted
        pass's error is its own caller's to report, when it evaluates it."""
        with self._lock:
            return self._together(fn)

    def _together(self, fn: Callable[[], _T]) -> _T:
        if self._wanted:
            return fn()
        self._wanted.append([])
        try:
            first = fn()
        finally:
            wanted = self._wanted.pop()
        if not wanted:  # every pass was there: the first run had them all
            return first
        pending = [w for w in self._pending if w[0] not in self._passes]
        self._pending.clear()
        try:
            self._evaluate_together([*pending, *wanted])
        except (CostmodelError, ValueError):
            if not pending:
                raise
            # a noted pass that fails is its own caller's to report, not this one's: drop them
            self._evaluate_together(wanted)
        return fn()

    def _evaluate_together(self, wanted: list[tuple[Any, ...]]) -> None:
        """Evaluate ``wanted`` (noted passes), those of one kind as one concatenated pass."""
        kinds: dict[tuple[Any, ...], dict[tuple[Any, ...], tuple[Any, ...]]] = {}
        for key, batch, new, past, logits, one_microbatch, drafts in wanted:
            # a pass of scalars stays one: numpy's scalar arithmetic (x ** p on a float64 scalar: the C
            # library's pow) and its array loops (SIMD) may differ in the last bit
            alone = None if any(np.ndim(x) for x in (batch, new, past)) else key
            kind = (logits, one_microbatch, drafts, bool(np.all(np.asarray(new) <= 1.0)), alone)
            kinds.setdefault(kind, {})[key] = (batch, new, past)
        for (logits, one_microbatch, drafts, _, _), passes in kinds.items():
            if len(passes) == 1:
                for key, (batch, new, past) in passes.items():
                    self._passes[key] = self._evaluate(batch, new, past, logits, one_microbatch, drafts)
                continue
            shapes = [np.broadcast_shapes(*(np.shape(x) for x in args)) for args in passes.values()]
            ends = np.cumsum([math.prod(shape) for shape in shapes]).tolist()
            starts = [0, *ends[:-1]]
            # each pass's arguments broadcast into its slice of the three concatenated columns
            batch, new, past = columns = np.empty((3, ends[-1]))
            for args, shape, start, end in zip(passes.values(), shapes, starts, ends, strict=True):
                for column, x in zip(columns, args, strict=True):
                    column[start:end].reshape(shape)[...] = x
            out = np.broadcast_to(
                self._evaluate(batch, new, past, logits, one_microbatch, drafts), batch.shape
            )
            for key, shape, start, end in zip(passes, shapes, starts, ends, strict=True):
                self._passes[key] = np.array(out[start:end].reshape(shape))

    def _evaluate(
        self,
        batch: Any,
        new: Any,
        past: Any,
        logits: Literal["all", "last", "bare", "head"],
        one_microbatch: bool,
        drafts: float = 0.0,
    ) -> FloatArray:
        from costmodel.estimate import _Setup, _tp_link, step_time_s
        from costmodel.ops import HEAD_OPS
        from costmodel.specs import Deployment as _Deployment
        from costmodel.specs import Workload as _Workload

        deployment = self.deployment
        if one_microbatch and deployment is not None and deployment.pp > 1:
            deployment = deployment.model_copy(update={"microbatches": 1})
        if logits == "bare" or logits == "head":  # step_time_s's pass less attention and head, or the head
            dep, hw = deployment or _Deployment(), self.hardware
            setup = _Setup(
                self.model, hw, self.workload or _Workload(), dep, self.efficiency or hw.efficiency, "flash",
                _tp_link(dep, hw),
            )  # fmt: skip

            def bare(b: Any) -> FloatArray:
                ops = setup.ops(b, new, past, "all")
                kept = tuple(o for o in ops if o.kind != "attention" and o.name not in HEAD_OPS)
                return setup.times(kept).total_s

            if logits == "head":  # on the last stage alone: no stage sends
                ops = setup.ops(batch, new, past, "all")
                return np.asarray(setup.times(tuple(o for o in ops if o.name in HEAD_OPS)).total_s)
            return setup.pipelined_steps(bare, batch, new)
        return step_time_s(
            self.model,
            self.hardware,
            self.workload or _Workload(),
            deployment,
            batch_size=batch,
            new_tokens=new,
            past_tokens=past,
            efficiency=self.efficiency,
            logits=logits,
            draft_tokens=drafts,
        )

    def linear_s(self, tokens: npt.ArrayLike) -> FloatArray:
        """S(T, 1, 0): T single-token sequences, i.e. every token's linear work and output head [s]."""
        T = np.asarray(tokens, dtype=np.float64)
        if not (T > 0).any():
            return np.zeros(T.shape)
        return np.asarray(np.where(T > 0, self._pass(np.maximum(T, 1.0), 1, 0), 0.0))

    def output_head_s(self, tokens: npt.ArrayLike) -> FloatArray:
        """The output head's GEMM over T tokens' hidden states [s] (T rows of logits; 0 where T = 0): what
        a draft step of speculative decoding runs besides its draft layer(s) (the MTP module shares the
        target's head). With pp > 1, the whole T on the last stage."""
        T = np.asarray(tokens, dtype=np.float64)
        if not (T > 0).any():
            return np.zeros(T.shape)
        return np.asarray(np.where(T > 0, self._pass(np.maximum(T, 1.0), 1, 0, "head"), 0.0))

    def paced_tokens(self, tokens: npt.ArrayLike, chunk: npt.ArrayLike) -> FloatArray:
        """The token count T whose S(T, 1, 0) paces an iteration of ``tokens`` tokens whose largest prompt
        chunk has ``chunk`` tokens [tokens]. With pp > 1 the m micro-batches split the tokens evenly, but
        a chunk is one sequence's and stays in one micro-batch, so the pacing micro-batch holds
        max(T / m, chunk) tokens: T' = max(T, m chunk) (a lone chunk walks the stages as one
        micro-batch). With pp = 1: ``tokens`` unchanged."""
        T = np.asarray(tokens, dtype=np.float64)
        dep = self.deployment
        if dep is None or dep.pp == 1:
            return T
        m = float(dep.microbatches or dep.pp)
        return np.asarray(np.maximum(T, m * np.asarray(chunk, dtype=np.float64)))

    def decode_attention_s(
        self, batch: npt.ArrayLike, context: npt.ArrayLike, new_tokens: float = 1.0
    ) -> FloatArray:
        """S(b, 1, c) - S(b, 1, 0): b decodes' attention over c cached tokens each [s]. With ``new_tokens``
        n > 1 (a speculative verification of n - 1 drafts) and an MLA model: S(b, n, c) - S(b, n, 0) with
        the n tokens run in the absorbed decode form, as the engines run a verification (each sequence's
        cached latent read once for its n queries, the queries' FLOPs n times a decode's;
        :func:`costmodel.ops.forward_ops`' ``draft_tokens``), never below the plain decode's term: the n
        queries read the cache the one query reads (the difference can otherwise dip under it where the
        past-0 pass's per-query traffic, one CTA's, grows faster with n than the split pass's). A top-k
        sparse MLA (DeepSeek-V3.2, GLM-5) takes the same S(b, n, c) - S(b, n, 0), whose attention
        :func:`costmodel.ops.forward_ops` runs as b n one-query sparse decodes (each query token reads its
        own top-k rows), between 1 and n times the plain term. Other models keep S(b, 1, c) -
        S(b, 1, 0)."""
        b, c = np.broadcast_arrays(np.asarray(batch, dtype=np.float64), np.asarray(context, dtype=np.float64))
        if not ((b > 0) & (c > 0)).any():
            return np.zeros(b.shape)
        b1 = np.maximum(b, 1.0)
        n = float(new_tokens)
        plain = self._pass(b1, 1, c) - self._pass(b1, 1, 0)
        if n > 1.0 and self.model.mla is not None:
            verify = self._pass(b1, n, c, drafts=n - 1.0) - self._pass(b1, n, 0, drafts=n - 1.0)
            return np.asarray(np.where(b > 0, np.maximum(verify, plain), 0.0))
        return np.asarray(np.where(b > 0, plain, 0.0))

    def _chunk_less(
        self,
        tokens: npt.ArrayLike,
        past: npt.ArrayLike,
        kind: Literal["all", "bare"],
        sequences: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """S_last(r s, k / (r s), p) - S_kind(k, 1, 0) [s]: k tokens as s equal sequences (default one, a
        chunk) after p past tokens each, on every attention-DP rank, less k one-token sequences priced as
        ``kind`` (both in one micro-batch); 0 where k = 0. :meth:`prefill_attention_s` subtracts the bare
        pass, :meth:`prefill_chunk_s` the full one."""
        k, p = np.broadcast_arrays(np.asarray(tokens, dtype=np.float64), np.asarray(past, dtype=np.float64))
        if not (k > 0).any():
            return np.zeros(k.shape)
        k1 = np.maximum(k, 1.0)
        r = self.deployment.attention_dp if self.deployment is not None else 1
        batch: Any = r if sequences is None else r * np.maximum(np.asarray(sequences, dtype=np.float64), 1.0)
        return np.asarray(
            np.where(
                k > 0,
                self._pass(batch, k1 / batch, p, "last", one_microbatch=True)
                - self._pass(k1, 1, 0, kind, one_microbatch=True),
                0.0,
            )
        )

    def _prompts_less(
        self, tokens: npt.ArrayLike, prompt_len: npt.ArrayLike, kind: Literal["all", "bare"]
    ) -> FloatArray:
        """:meth:`_chunk_less` of an iteration's k prompt tokens from prompts of L tokens: one packed pass of
        the n sequences of m tokens after p past that :func:`prompt_pieces` makes of each rank's k / r, on
        each of the r attention-DP ranks [s]. With pp > 1 the pass is one pipeline micro-batch of r n
        sequences (a prompt is not split between micro-batches), n kept fractional."""
        r = self.deployment.attention_dp if self.deployment is not None else 1
        k = np.asarray(tokens, dtype=np.float64)
        n, _, past = prompt_pieces(k / r, prompt_len)
        return self._chunk_less(k, past, kind, sequences=n)

    def prompts_attention_s(self, tokens: npt.ArrayLike, prompt_len: npt.ArrayLike) -> FloatArray:
        """:meth:`prefill_attention_s` of an iteration's k prompt tokens drawn from prompts of L tokens: the
        attention of :func:`prompt_pieces`' n sequences (per attention-DP rank, of its k / r tokens) in one
        packed call, each over itself and its past, with the output-head row each samples: the head's
        weights are read once [s]. Equal to :meth:`prefill_attention_s` (k, 0) for k = r L (one whole
        prompt per rank) and (k, (L - k / r) / 2) for k < r L."""
        return self._prompts_less(tokens, prompt_len, "bare")

    def prompts_chunk_s(self, tokens: npt.ArrayLike, prompt_len: npt.ArrayLike) -> FloatArray:
        """What an iteration's k prompt tokens drawn from prompts of L tokens add to an iteration whose
        :meth:`linear_s` counts them [s]: the bracket of :meth:`prefill_chunk_s` for :func:`prompt_pieces`'
        n sequences in one packed pass, less the k tokens as decodes. Like it, a difference of two times."""
        return self._prompts_less(tokens, prompt_len, "all")

    def prefill_attention_s(self, tokens: npt.ArrayLike, past: npt.ArrayLike) -> FloatArray:
        """S_last(1, k, p) - S_bare(k, 1, 0): a k-token chunk's attention over itself and p past tokens,
        and the output head of the token it samples [s] (S_bare: the pass without its attention operators
        and output head). Both passes run the same k tokens through the same linear layers, so only the
        chunk's attention and its head row remain: never negative. With r attention-DP ranks the k tokens
        are r chunks of k / r, one per rank: S_last(r, k / r, p) - S_bare(k, 1, 0). With pp > 1 both passes
        run as one pipeline micro-batch (the same schedule, so the k tokens' linear work and stage sends
        cancel): the chunk's attention through all layers, which one sequence's chunk spends in whichever
        micro-batch carries it."""
        return self._chunk_less(tokens, past, "bare")

    def prompt_extras_s(self, tokens: npt.ArrayLike) -> FloatArray:
        """S(k, 1, 0) - S_bare(k, 1, 0): what :meth:`linear_s` charges k tokens beyond their linear work
        [s], the attention of each as a one-token sequence and an output-head row each. A decode runs
        both; a prompt chunk's tokens run neither (the chunk's attention and its sampled row are in
        :meth:`prefill_attention_s`), so :meth:`prefill_chunk_s` returns them. Never negative."""
        k = np.asarray(tokens, dtype=np.float64)
        if not (k > 0).any():
            return np.zeros(k.shape)
        k1 = np.maximum(k, 1.0)
        return np.asarray(
            np.where(
                k > 0,
                self._pass(k1, 1, 0, one_microbatch=True) - self._pass(k1, 1, 0, "bare", one_microbatch=True),
                0.0,
            )
        )

    def prefill_chunk_s(self, tokens: npt.ArrayLike, past: npt.ArrayLike) -> FloatArray:
        """What a k-token chunk after p past tokens adds to an iteration whose :meth:`linear_s` counts its
        tokens [s]: :meth:`prefill_attention_s` - :meth:`prompt_extras_s` = S_last(1, k, p) - S(k, 1, 0)
        (S_last(r, k / r, p) with r attention-DP ranks). A difference of two times, not a time: negative
        where what :meth:`linear_s` charged the chunk's tokens as decodes outweighs the chunk's attention
        (-3.2 ms for 512 tokens of Llama 3 8B on an H100)."""
        return self._chunk_less(tokens, past, "all")

    def terms_s(
        self,
        tokens: npt.ArrayLike,
        decode_batch: npt.ArrayLike,
        decode_context: npt.ArrayLike,
        prefill_tokens: npt.ArrayLike,
        prefill_past: npt.ArrayLike,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(:meth:`linear_s` of ``tokens``, :meth:`decode_attention_s` of the decodes,
        :meth:`prefill_chunk_s` of the chunks), each the same as alone, with the S(T, 1, 0) passes of
        the three brackets evaluated as one (with pp > 1 the chunks' bracket keeps its own one-micro-batch
        pass): two roofline evaluations fewer for a caller that tabulates every term, as the capacity
        planner does."""
        T = np.asarray(tokens, dtype=np.float64)
        b, c = np.broadcast_arrays(
            np.asarray(decode_batch, dtype=np.float64), np.asarray(decode_context, dtype=np.float64)
        )
        k, p = np.broadcast_arrays(
            np.asarray(prefill_tokens, dtype=np.float64), np.asarray(prefill_past, dtype=np.float64)
        )
        b1, k1 = np.maximum(b, 1.0), np.maximum(k, 1.0)
        decodes, chunks = bool(np.any((b > 0) & (c > 0))), bool(np.any(k > 0))
        shared = self.deployment is None or self.deployment.pp == 1  # one micro-batch either way
        none = np.empty(0)
        parts = [T.ravel(), b1.ravel() if decodes else none, k1.ravel() if chunks and shared else none]
        base = self.linear_s(np.concatenate(parts))  # S(x, 1, 0) wherever x >= 1
        linear, base_b, base_k = np.split(base, np.cumsum([x.size for x in parts])[:-1])
        decode = np.zeros(b.shape)
        if decodes:
            decode = np.where(b > 0, self._pass(b1, 1, c) - base_b.reshape(b.shape), 0.0)
        prefill = np.zeros(k.shape)
        if chunks:
            r = self.deployment.attention_dp if self.deployment is not None else 1
            alone = base_k.reshape(k.shape) if shared else self._pass(k1, 1, 0, one_microbatch=True)
            prefill = np.where(k > 0, self._pass(r, k1 / r, p, "last", one_microbatch=True) - alone, 0.0)
        return np.asarray(linear.reshape(T.shape)), np.asarray(decode), np.asarray(prefill)


# ----------------------------------------------------------------------------------------------------
# KV memory and concurrency
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Concurrency:
    """How many sequences fit in one replica's KV memory; arrays follow ``context_len``."""

    max_sequences: IntArray
    """Most sequences that fit at once [-]."""
    kv_capacity_tokens: int
    """KV cache tokens that fit next to the weights and activations, per replica [tokens]."""
    reserved_tokens_per_sequence: FloatArray
    """Token slots each sequence holds: ``max_len`` (contiguous) or its blocks x ``block_size`` [tokens]."""
    fragmentation_fraction: FloatArray
    """Share of the held KV slots that stay empty, 1 - context / reserved [-]."""


def kv_capacity_tokens(
    model: ModelProfile,
    hardware: HardwareProfile,
    *,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    deployment: Deployment | None = None,
    usable_fraction: float = 0.9,
    prefill_chunk_tokens: int = 8192,
    sparsity: Sparsity = "none",
    expert_dtype: str | None = None,
    component_dtypes: Mapping[str, str] | None = None,
    engine: str = "vllm",
    draft_kv_layers: int = 0,
) -> int:
    """KV-cache tokens one replica can hold next to its weights and activations [tokens].

    Per device: ``usable_fraction`` x memory - weights / (tp pp) - activations of one prefill chunk / tp,
    divided by the KV bytes one token adds on that device (KV heads split over min(tp, n_kv_heads)
    devices and replicated beyond; the MLA latent replicated; layers split over pp), the layout of
    :func:`costmodel.estimate.estimate`. For an SSM (no per-token state) this is the room divided by one
    sequence's state, i.e. a count of sequences. 0 when the weights do not fit. With attention data
    parallelism each of the ``deployment.attention_dp`` ranks holds its own requests' cache: the replica
    holds attention_dp times what one rank's devices hold. ``engine``: whose load-time weight copies count
    (an MLA model's W_UK / W_UV copies, :func:`costmodel.memory.mla_absorb_copy_bytes`).
    ``draft_kv_layers``: layers of the model's shape a speculative draft caches per token in the same
    pool (:func:`costmodel.speculative.pool_draft_kv_layers`), which every token then costs too.
    """
    from costmodel.memory import replica_memory
    from costmodel.specs import Deployment as _Deployment

    chunk = checks.positive_int("prefill_chunk_tokens", prefill_chunk_tokens)
    checks.fraction("usable_fraction", usable_fraction)
    dep = deployment or _Deployment()
    dep.check(model)
    device = replica_memory(
        model,
        tp=dep.tp,
        pp=dep.pp,
        attention_dp=dep.attention_dp,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        activation_dtype=activation_dtype,
        sparsity=sparsity,
        prefill_tokens=min(chunk, model.max_context),
        expert_dtype=expert_dtype,
        component_dtypes=component_dtypes,
        engine=engine,
        hardware=hardware,
        draft_kv_layers=draft_kv_layers,
    )
    return _kv_tokens(model, hardware, device, usable_fraction, dep.attention_dp)


def _kv_tokens(
    model: ModelProfile, hardware: HardwareProfile, device: ReplicaMemory, usable_fraction: float, ranks: int
) -> int:
    """:func:`kv_capacity_tokens` of one device's memory ``device`` [tokens]; ``ranks``: attention-DP
    ranks, each holding its own sequences' cache."""
    usable_fraction = checks.fraction("usable_fraction", usable_fraction)
    room = float(device.free_bytes(usable_fraction * hardware.memory_bytes))
    per = device.state_bytes_per_sequence if model.ssm is not None else device.kv_bytes_per_token
    return max(int(room // per), 0) * ranks


def max_concurrency(
    model: ModelProfile | str,
    hardware: HardwareProfile | str,
    *,
    context_len: npt.ArrayLike | Lengths,
    allocation: Allocation = "paged",
    block_size: int = 16,
    max_len: int | None = None,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    deployment: Deployment | None = None,
    usable_fraction: float = 0.9,
    prefill_chunk_tokens: int = 8192,
    sparsity: Sparsity = "none",
    expert_dtype: str | None = None,
    component_dtypes: Mapping[str, str] | None = None,
    engine: str = "vllm",
    draft_kv_layers: int = 0,
) -> Concurrency:
    """The most sequences whose KV cache fits at once on one replica, and the memory each one holds.

    Parameters
    ----------
    context_len : int, array or Lengths
        Tokens each sequence has in its cache [tokens]; a :class:`Lengths` distribution averages the
        blocks held over it.
    allocation : {"paged", "contiguous"}
        ``"contiguous"``: each sequence reserves ``max_len`` slots when admitted, whatever its length
        (the pre-PagedAttention practice; Kwon et al. 2023, §3 and Fig. 2). ``"paged"``: each holds
        ceil(context / block_size) blocks, so at most block_size - 1 slots are wasted, in its last block
        (Kwon et al. 2023, §4.2).
    block_size : int
        Tokens per KV block [tokens] (vLLM's default 16).
    max_len : int, optional
        Longest sequence the engine accepts [tokens]; default the model's ``max_context``.
    draft_kv_layers : int
        Layers of the model's shape a speculative draft caches per token in the same pool
        (:func:`kv_capacity_tokens`).

    Returns the count floor(capacity / reserved) with the capacity of :func:`kv_capacity_tokens`
    (in whole blocks for paged allocation). A sliding window caps each sequence's cached tokens; for an
    SSM each sequence holds a fixed state and the count is independent of the context. With attention
    data parallelism each rank fits sequences in its own cache: the count is attention_dp times one
    rank's.
    """
    from costmodel.registry import load_hardware, load_model

    m, hw = load_model(model), load_hardware(hardware)
    if allocation not in ALLOCATIONS:
        raise CostmodelError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    if not (isinstance(block_size, int | np.integer) and block_size >= 1):
        raise CostmodelError(f"block_size must be an integer >= 1 [tokens], got {block_size!r}")
    longest = max_len if max_len is not None else m.max_context
    if longest < 1:
        raise CostmodelError(f"max_len must be >= 1 [tokens], got {longest}")
    capacity = kv_capacity_tokens(
        m,
        hw,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        activation_dtype=activation_dtype,
        deployment=deployment,
        usable_fraction=usable_fraction,
        prefill_chunk_tokens=prefill_chunk_tokens,
        sparsity=sparsity,
        expert_dtype=expert_dtype,
        component_dtypes=component_dtypes,
        engine=engine,
        draft_kv_layers=draft_kv_layers,
    )
    ranks = deployment.attention_dp if deployment is not None else 1
    rank_capacity = capacity // ranks  # capacity is ranks x one rank's
    window = m.sliding_window or longest
    if isinstance(context_len, Lengths):
        held = np.minimum(context_len.values, window).astype(np.float64)
        weights = context_len.probs
        ctx = np.asarray(held @ weights)
        blocks = np.asarray(np.ceil(held / block_size) @ weights)
    else:
        ctx = np.minimum(checks.counts("context_len", context_len, whole=False), window)
        blocks = np.ceil(ctx / block_size)
    if m.ssm is not None:  # a fixed state per sequence: kv_capacity_tokens already counts sequences
        count = np.full(ctx.shape, capacity, dtype=np.int64)
        return Concurrency(count, capacity, np.ones(ctx.shape), np.zeros(ctx.shape))
    if allocation == "contiguous":
        reserved = np.full(ctx.shape, float(min(longest, window)))
        count = ranks * np.floor(rank_capacity / reserved)
    else:
        reserved = np.maximum(blocks, 1.0) * block_size
        count = ranks * np.floor((rank_capacity // block_size) / np.maximum(blocks, 1.0))
    frag = 1.0 - np.minimum(ctx, reserved) / reserved
    return Concurrency(
        max_sequences=np.asarray(count, dtype=np.int64),
        kv_capacity_tokens=capacity,
        reserved_tokens_per_sequence=np.asarray(reserved, dtype=np.float64),
        fragmentation_fraction=np.asarray(frag, dtype=np.float64),
    )


# ----------------------------------------------------------------------------------------------------
# Static vs continuous batching
# ----------------------------------------------------------------------------------------------------


def static_batching_gain(output: Lengths, batch_size: npt.ArrayLike) -> FloatArray:
    """Throughput of continuous over static batching at batch size B, E[max_B N] / E[N] [-].

    Seed 000, Theorem 12, generalised to an output-length distribution. Static batching runs B requests
    together until the longest finishes, so a batch takes max_i N_i decode steps and delivers B requests;
    by renewal-reward its long-run rate is B / (E[max_i N_i] t_step) (not E[B / max_i N_i]).
    Continuous (iteration-level) batching refills a slot as soon as a sequence ends (Yu et al. 2022,
    Orca, §3), so each of the B slots completes a request every E[N] steps: B / (E[N] t_step). The ratio
    is E[max] / E[N]. Assumptions: the engine is saturated (a request always waits for a free slot) and
    an iteration takes the same time whatever the batch holds (decoding memory bound); prefill time is
    left out (it shrinks the gain). For exponential lengths E[max] / E[N] is the harmonic number H_B
    (~ ln B + 0.577); for fixed lengths it is 1.
    """
    return np.asarray(output.expected_max(batch_size) / output.mean, dtype=np.float64)


# ----------------------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Engine:
    """An iteration-level serving engine (one replica): what runs where, and the scheduler's limits.

    The scheduler (the vLLM V1 / Sarathi-Serve policy, Agrawal et al. 2024 §4.3) runs iterations back to
    back. Each iteration, every admitted sequence whose prompt is done decodes one token, and the
    remaining token budget ``max_batched_tokens - decodes`` goes to prompt chunks of admitted sequences
    in admission order. Waiting requests are admitted first come first served while fewer than
    ``max_batch_size`` run and their KV cache fits (:func:`max_concurrency`); with paged allocation a
    sequence that needs a block when none is free preempts the most recently admitted one, which is
    recomputed later (vLLM's default). Build one with :meth:`build`.
    """

    model: ModelProfile
    hardware: HardwareProfile
    workload: Workload
    """Only its dtypes matter here."""
    deployment: Deployment
    max_batch_size: int = 256
    """Most sequences running at once (vLLM ``max_num_seqs``) [-]; with attention data parallelism, of
    the whole replica (each rank runs max_batch_size / attention_dp)."""
    max_batched_tokens: int = 8192
    """Token budget of one iteration, decodes and prompt chunks together, of the whole replica [tokens]:
    with attention data parallelism, its ranks' budgets together (each rank schedules
    :attr:`rank_batched_tokens`, this over ``attention_dp``). Without attention DP it is the engine's
    launch value (vLLM ``--max-num-batched-tokens``, TensorRT-LLM ``max_num_tokens``, SGLang
    ``--chunked-prefill-size``); with it, it is no engine's flag: vLLM's and TensorRT-LLM's launch values
    are per rank, SGLang's per replica, so turn a launch value into this field with
    :func:`costmodel.token_budget.worker_batched_tokens` (``worker_batched_tokens("vllm", 8192,
    attention_dp=8, sequences=64)`` is 65,536, a rank's 8,192)."""
    allocation: Allocation = "paged"
    block_size: int = 16
    """KV block size [tokens]."""
    max_len: int = 0
    """Longest sequence accepted [tokens]; 0: the model's ``max_context``."""
    usable_fraction: float = 0.9
    """Share of device memory for weights, cache and activations (vLLM ``gpu_memory_utilization``)."""
    efficiency: Efficiency | None = None
    engine_name: str | None = None
    """The serving engine this replica runs (``"vllm"``, ``"sglang"``, ``"trtllm"``), whose fitted costs
    beyond the kernels its iterations and first tokens pay (:meth:`iteration_params`,
    :meth:`iteration_s`, :attr:`first_token_overhead_s`); refused on a device of a vendor it does not
    run on (:func:`costmodel.memory.check_engine_vendor`). None: no engine, the kernels alone (the
    building block the closed and disaggregated loops time and apply their own parameters to). The
    kernels are the ``efficiency``'s (``Efficiency.kernel_engine``, vLLM's by default): naming an engine
    here does not change them; :func:`costmodel.capacity.plan` sets both."""
    draft_kv_layers: int = 0
    """Layers of the model's attention shape whose KV cache a speculative draft keeps per token in this
    engine's pool [-] (:func:`costmodel.speculative.pool_draft_kv_layers`: TensorRT-LLM's MTP, vLLM's
    draft layers); 0: none there (no drafting, or a draft with a pool of its own, as SGLang's). At most the
    model's ``n_layers``; a bool is refused. Not derived from a :class:`costmodel.closed_loop.Speculation`:
    the engine holds none (the loop takes it per call), vLLM's count is the draft's own layer count, which a
    ``Speculation`` does not state, and the engine's KV capacity (:meth:`kv_capacity_tokens`,
    :meth:`max_concurrency`) must be one number whichever loop reads it. Set it with
    ``pool_draft_kv_layers(engine_name, draft_tokens, draft_layers)`` where a loop drafts, as
    ``validation.public.silicon`` does."""
    loop: LoopParams | None = None
    """The costs beyond the kernels, replacing the engine's fitted ones
    (:func:`costmodel.loop_params.engine_params`); None: the fitted ones of :attr:`engine_name` (none
    without a name). ``LoopParams()`` gives the kernels alone for a named engine."""
    graph_tokens: int | None = None
    """The largest iteration carrying prompt tokens, per attention-DP rank, that the engine replays as CUDA
    graphs [tokens], paying no ``prefill_layer_overhead_s``; None: the launch's own,
    :func:`costmodel.closed_loop.cuda_graph_tokens` of :attr:`engine_name`, a rank's ``max_batch_size``
    and token budget (:attr:`graph_tokens_in_force`)."""
    shared_parts: _Parts | None = field(default=None, repr=False)
    """The step-time terms :attr:`parts` returns, with the passes they have evaluated, shared by the
    engines of one model, device, workload, layout and efficiency (the fields a pass depends on; the
    scheduler's limits do not enter it); None: a fresh :class:`_Parts` on each access. Set by
    :meth:`sharing_parts`; kept by :meth:`replace` unless a change touches one of those fields."""

    def __post_init__(self) -> None:
        shared = self.shared_parts
        if shared is not None and (
            shared.model is not self.model
            or shared.hardware is not self.hardware
            or any(
                not _same_value(mine, theirs)
                for mine, theirs in (
                    (self.workload, shared.workload),
                    (self.deployment, shared.deployment),
                    (self.efficiency, shared.efficiency),
                )
            )
        ):
            raise CostmodelError(
                "shared_parts must be the step-time terms of this engine's model, hardware, workload, "
                "deployment and efficiency (Engine.sharing_parts)"
            )
        for name in ("max_batch_size", "max_batched_tokens", "block_size"):
            value = getattr(self, name)
            if not (isinstance(value, int | np.integer) and value >= 1):
                raise CostmodelError(f"{name} must be an integer >= 1, got {value!r}")
        from costmodel.memory import checked_draft_kv_layers

        checked_draft_kv_layers(self.draft_kv_layers, self.model)
        if self.allocation not in ALLOCATIONS:
            raise CostmodelError(f"allocation must be one of {ALLOCATIONS}, got {self.allocation!r}")
        if self.max_batched_tokens < self.max_batch_size:
            raise CostmodelError(
                f"max_batched_tokens ({self.max_batched_tokens}) must be >= max_batch_size "
                f"({self.max_batch_size}): every running sequence decodes one token per iteration"
            )
        if self.engine_name is not None:
            from costmodel.errors import UnknownNameError
            from costmodel.memory import ENGINES, check_engine_vendor

            if self.engine_name not in ENGINES:
                raise UnknownNameError("engine", self.engine_name, ENGINES)
            check_engine_vendor(self.engine_name, self.hardware)
        if self.graph_tokens is not None and not (
            isinstance(self.graph_tokens, int | np.integer) and self.graph_tokens >= 0
        ):
            raise CostmodelError(f"graph_tokens must be an integer >= 0 or None, got {self.graph_tokens!r}")
        if self.loop is not None and not isinstance(self.loop, LoopParams):
            raise CostmodelError(
                f"loop must be a costmodel.closed_loop.LoopParams or None, got {type(self.loop).__name__}"
            )
        if self.max_len == 0:
            object.__setattr__(self, "max_len", self.model.max_context)
        if self.max_len < 2:
            raise CostmodelError(f"max_len must be >= 2 [tokens], got {self.max_len}")
        self.deployment.check(self.model)

    @classmethod
    def build(
        cls,
        model: ModelProfile | str,
        hardware: HardwareProfile | str,
        *,
        weight_dtype: str = "bf16",
        kv_dtype: str = "bf16",
        activation_dtype: str = "bf16",
        tp: int = 1,
        pp: int = 1,
        expert_dtype: str | None = None,
        expert_activation_dtype: str | None = None,
        component_dtypes: Mapping[str, str] | None = None,
        **limits: Any,
    ) -> Engine:
        """An engine from names or profiles; ``limits`` are the other fields (``max_batch_size``, ...);
        the formats as :class:`costmodel.specs.Workload`'s."""
        from costmodel.registry import load_hardware, load_model
        from costmodel.specs import Deployment as _Deployment
        from costmodel.specs import Workload as _Workload

        w = _Workload(
            1,
            1,
            1,
            weight_dtype=weight_dtype,
            activation_dtype=activation_dtype,
            kv_dtype=kv_dtype,
            expert_dtype=expert_dtype,
            expert_activation_dtype=expert_activation_dtype,
            component_dtypes=component_dtypes,
        )
        return cls(load_model(model), load_hardware(hardware), w, _Deployment(tp=tp, pp=pp), **limits)

    def replace(self, **changes: Any) -> Engine:
        """A copy with some fields changed; its :attr:`shared_parts` are this engine's unless a change
        touches a field a pass depends on."""
        from dataclasses import replace

        if self.shared_parts is not None and not changes.keys().isdisjoint(_PASS_FIELDS):
            changes.setdefault("shared_parts", None)
        return replace(self, **changes)

    def sharing_parts(self) -> Engine:
        """This engine with one :class:`_Parts` for all its copies of other limits (:meth:`replace`): the
        passes one copy evaluates serve the others (:meth:`_Parts.note`, :meth:`_Parts.together`). Each
        pass is a pure function of the fields it is keyed by, so sharing changes no result, in one thread or
        several (the copies' calls take turns on the shared terms, :attr:`_Parts._lock`)."""
        return self if self.shared_parts is not None else self.replace(shared_parts=self.parts)

    @property
    def gpus(self) -> int:
        """Devices per replica [-]."""
        return self.deployment.gpus_per_replica

    @property
    def usd_per_hour(self) -> float:
        """Price of one replica-hour from the hardware profile [USD/h]; NaN without a price."""
        price = self.hardware.price.usd_per_hour if self.hardware.price else float("nan")
        return price * self.gpus

    @property
    def rank_batched_tokens(self) -> int:
        """One attention-DP rank's token budget, the longest prompt chunk its devices prefill [tokens]."""
        return max(self.max_batched_tokens // self.deployment.attention_dp, 1)

    def replica_memory(self) -> ReplicaMemory:
        """What one device of this replica holds [bytes] (:func:`costmodel.memory.replica_memory`): its
        layout, the workload's formats (the experts' and each component's own included) and the
        activations of one prefill chunk of a rank's token budget. The one place an engine's memory is
        sized: :meth:`kv_capacity_tokens` and an engine's own memory rule (the public evaluation's
        TensorRT-LLM free-memory fraction) both read it."""
        from costmodel.memory import replica_memory

        dep, w = self.deployment, self.workload
        return replica_memory(
            self.model,
            tp=dep.tp,
            pp=dep.pp,
            attention_dp=dep.attention_dp,
            weight_dtype=w.weight_dtype,
            kv_dtype=w.kv_dtype,
            activation_dtype=w.activation_dtype,
            sparsity=w.sparsity,
            prefill_tokens=min(self.rank_batched_tokens, self.model.max_context),
            expert_dtype=w.expert_dtype,
            component_dtypes=w.component_formats or None,
            engine=(self.efficiency or self.hardware.efficiency).kernel_engine,
            hardware=self.hardware,
            draft_kv_layers=self.draft_kv_layers,
        )

    def kv_capacity_tokens(self) -> int:
        """KV-cache tokens that fit on the replica [tokens] (:func:`kv_capacity_tokens`), from
        :meth:`replica_memory`."""
        return _kv_tokens(
            self.model,
            self.hardware,
            self.replica_memory(),
            self.usable_fraction,
            self.deployment.attention_dp,
        )

    def max_concurrency(self, context_len: npt.ArrayLike | Lengths) -> Concurrency:
        """:func:`max_concurrency` for this engine's layout and limits."""
        w = self.workload
        return max_concurrency(
            self.model,
            self.hardware,
            context_len=context_len,
            allocation=self.allocation,
            block_size=self.block_size,
            max_len=self.max_len,
            weight_dtype=w.weight_dtype,
            kv_dtype=w.kv_dtype,
            activation_dtype=w.activation_dtype,
            deployment=self.deployment,
            usable_fraction=self.usable_fraction,
            prefill_chunk_tokens=self.rank_batched_tokens,
            sparsity=w.sparsity,
            expert_dtype=w.expert_dtype,
            component_dtypes=w.component_formats or None,
            engine=(self.efficiency or self.hardware.efficiency).kernel_engine,
            draft_kv_layers=self.draft_kv_layers,
        )

    def step_time(self, **kwargs: Any) -> FloatArray:
        """One iteration of this engine [s]: :func:`step_time` (keyword arguments as there), the kernels,
        with the engine's costs beyond them (:meth:`iteration_s`) where it has any."""
        kernels = step_time(
            self.model, self.hardware, self.workload, self.deployment, efficiency=self.efficiency, **kwargs
        )
        if self.iteration_params() is None:
            return kernels
        decodes = np.asarray(kwargs.get("decode_batch", 0), dtype=np.float64)
        prompt = np.asarray(kwargs.get("prefill_tokens", 0), dtype=np.float64)
        return self.iteration_s(kernels, tokens=decodes + prompt, prompt=prompt > 0)

    def iteration_params(self) -> LoopParams | None:
        """The costs beyond the kernels that this engine's iterations and first tokens pay: :attr:`loop`
        where given, else the fitted ones of :attr:`engine_name`
        (:func:`costmodel.loop_params.engine_params`); None where they add nothing (no engine named, or
        all of the terms read here zero), so that callers keep the kernels' times exactly. The terms
        read: ``step_overhead_s``, ``overlapped_host_s`` (beside the kernels for an engine that overlaps
        its host work, :func:`costmodel.loop_params.overlaps_host`), ``layer_step_overhead_s``,
        ``prefill_layer_overhead_s``, ``mla_prefill_layer_overhead_s`` and ``request_overhead_s``; the
        benchmark's wave share (``burst_fraction``) and ``first_token_lag_iterations`` are the closed
        loop's, not read here."""
        params = self.loop
        if params is None and self.engine_name is not None:
            from costmodel.loop_params import engine_params

            params = engine_params(self.engine_name)
        if params is None:
            return None
        read = (
            params.step_overhead_s,
            params.overlapped_host_s,
            params.layer_step_overhead_s,
            params.prefill_layer_overhead_s,
            params.mla_prefill_layer_overhead_s,
            params.request_overhead_s,
        )
        return params if any(read) else None

    @property
    def graph_tokens_in_force(self) -> int:
        """The largest iteration carrying prompt tokens, per attention-DP rank, that this engine replays
        as CUDA graphs [tokens]: :attr:`graph_tokens` where given, else
        :func:`costmodel.closed_loop.cuda_graph_tokens` of a rank's ``max_batch_size`` and token budget
        (vLLM's piecewise graphs, min(2 ``max_batch_size``, 512); 0 for SGLang, TensorRT-LLM and no
        engine, which run such iterations eagerly)."""
        if self.graph_tokens is not None:
            return int(self.graph_tokens)
        ranks = self.deployment.attention_dp
        return cuda_graph_tokens(
            self.engine_name or "", -(-self.max_batch_size // ranks), self.rank_batched_tokens
        )

    def iteration_s(
        self, kernels_s: npt.ArrayLike, *, tokens: npt.ArrayLike, prompt: npt.ArrayLike
    ) -> FloatArray:
        """An iteration whose kernels take ``kernels_s`` [s], of ``tokens`` tokens in all [tokens] (decodes
        and prompt tokens of the replica), carrying prompt tokens where ``prompt`` [bool], with this
        engine's costs beyond the kernels [s] (arrays broadcast): the closed loop's rule, by the same
        functions (:func:`costmodel.closed_loop.prefill_host_s` added to the kernels of an iteration
        with prompt tokens, its layers outside CUDA graphs above :attr:`graph_tokens_in_force` a rank, then
        :func:`costmodel.closed_loop.engine_step_s` with every layer's ``layer_step_overhead_s``, one host
        pass, overlapped where the engine overlaps). ``kernels_s`` unchanged where
        :meth:`iteration_params` is None."""
        kernels = np.asarray(kernels_s, dtype=np.float64)
        terms = self._loop_terms
        if terms is None:
            return kernels
        params, layers, mla_layers, graph, ranks, overlap = terms
        carries = np.asarray(prompt, dtype=bool)
        eager = np.where(carries & (np.asarray(tokens, dtype=np.float64) / ranks > graph), layers, 0.0)
        mla = np.where(carries, mla_layers, 0.0)
        return engine_step_s(
            kernels + prefill_host_s(params, eager, mla), params, step_layers=layers, overlap=overlap
        )

    @functools.cached_property
    def _loop_terms(self) -> tuple[LoopParams, float, float, int, int, bool] | None:
        """What :meth:`iteration_s` reads, once per engine (the simulator asks for every iteration): the
        parameters, the layers, the MLA layers, :attr:`graph_tokens_in_force`, the attention-DP ranks and
        whether the engine overlaps its host work; None where :meth:`iteration_params` is."""
        from costmodel.loop_params import overlaps_host

        params = self.iteration_params()
        if params is None:
            return None
        layers = float(self.model.n_layers)
        return (
            params,
            layers,
            layers if self.model.mla is not None else 0.0,
            self.graph_tokens_in_force,
            self.deployment.attention_dp,
            self.engine_name is not None and overlaps_host(self.engine_name),
        )

    @property
    def first_token_overhead_s(self) -> float:
        """The fixed cost on each first token outside the iterations [s]: ``request_overhead_s`` of
        :meth:`iteration_params` (HTTP, tokenisation, admission, detokenisation); 0 for the kernels
        alone. It delays a request's first and last token alike, occupying no iteration."""
        params = self.iteration_params()
        return 0.0 if params is None else params.request_overhead_s

    @property
    def parts(self) -> _Parts:
        """The terms of :func:`step_time` separately (linear work, decode attention, prompt attention):
        :attr:`shared_parts` where set, else a fresh :class:`_Parts`."""
        if self.shared_parts is not None:
            return self.shared_parts
        return _Parts(self.model, self.hardware, self.workload, self.deployment, self.efficiency)


def _same_value(mine: Any, theirs: Any) -> bool:
    """Whether two field values are equal, field by field for two dataclasses of one type and elementwise
    for arrays (a :class:`Workload`'s ``batch_size`` may be one, whose ``==`` has no single truth value)."""
    import dataclasses

    if mine is theirs:
        return True
    if dataclasses.is_dataclass(mine) and type(mine) is type(theirs):
        return all(
            _same_value(getattr(mine, f.name), getattr(theirs, f.name)) for f in dataclasses.fields(mine)
        )
    try:
        return bool(mine == theirs)
    except ValueError:  # arrays of more than one element
        return bool(np.array_equal(mine, theirs))


_PASS_FIELDS = frozenset({"model", "hardware", "workload", "deployment", "efficiency"})
"""The :class:`Engine` fields a forward pass depends on (those of :class:`_Parts`)."""


class StepTable:
    """:func:`step_time` of one engine tabulated for the simulator, which asks for thousands of
    iterations a second: exact on every total token count (the linear part, S(T, 1, 0)) and batch size,
    linear interpolation over the context (the decodes' attention is affine in it) and bilinear over a
    geometric grid of chunk sizes and a linear grid of pasts (the chunk's attention).
    ``tests/test_serving.py`` checks it against :func:`step_time` within 0.5 %. An engine with costs
    beyond its kernels (:meth:`Engine.iteration_params`) adds them to every iteration by
    :meth:`Engine.iteration_s`, as :meth:`Engine.step_time` does.
    """

    def __init__(self, engine: Engine, *, context_points: int = 33, chunk_points: int = 64) -> None:
        B, C, L = engine.max_batch_size, engine.max_batched_tokens, engine.max_len
        parts = engine.parts
        self._parts = parts
        self.max_tokens = int(max(B + C, float(parts.paced_tokens(0.0, C))))
        self._linear = parts.linear_s(np.arange(self.max_tokens + 1, dtype=np.float64))  # [T]
        self._ctx = np.linspace(0.0, float(L), context_points)  # [c]
        b = np.arange(B + 1, dtype=np.float64)[:, None]
        self._decode_attn = parts.decode_attention_s(b, self._ctx[None, :])  # [b, c]
        self._k = np.unique(np.round(np.geomspace(1, max(C, 2), chunk_points)))  # [k]
        self._past = np.linspace(0.0, float(L), max(context_points // 2, 2))  # [p]
        self._prefill_chunk = parts.prefill_chunk_s(self._k[:, None], self._past[None, :])  # [k, p]
        # the engine's costs beyond the kernels (Engine.iteration_s), its prompt iterations' host cost per
        # kind (eager, within CUDA graphs) computed once: each iteration then makes one engine_step_s call
        self._terms = engine._loop_terms
        if self._terms is not None:
            params, layers, mla, _, _, _ = self._terms
            self._prompt_host = {e: float(prefill_host_s(params, layers * e, mla)) for e in (0, 1)}

    def decode_attention_s(self, batch: int, mean_context: float) -> float:
        """S(b, 1, c) - S(b, 1, 0) [s]."""
        return float(np.interp(mean_context, self._ctx, self._decode_attn[batch]))

    def prefill_chunk_s(self, tokens: float, past: float) -> float:
        """S_last(1, k, p) - S(k, 1, 0) (:meth:`_Parts.prefill_chunk_s`) [s], bilinear in (k, p)."""
        i = int(np.clip(np.searchsorted(self._k, tokens) - 1, 0, self._k.size - 2))
        k0, k1 = self._k[i], self._k[i + 1]
        f = min(max((tokens - k0) / (k1 - k0), 0.0), 1.0)
        lo = np.interp(past, self._past, self._prefill_chunk[i])
        hi = np.interp(past, self._past, self._prefill_chunk[i + 1])
        return float(lo + f * (hi - lo))

    def iteration_s(self, decodes: int, context_sum: float, chunks: list[tuple[int, int]]) -> float:
        """One iteration [s]: ``decodes`` sequences with ``context_sum`` past tokens between them, and
        prompt chunks given as (tokens, past) pairs. Each chunk is priced as its own attention call (its
        :meth:`prefill_chunk_s` bracket, launch and head row included), not as one sequence of a packed
        call as :meth:`_Parts.prompts_chunk_s` prices an iteration's prompts: an upper bound by one kernel
        launch and under-filled GPU per chunk beyond the first."""
        tokens = decodes + sum(k for k, _ in chunks)
        if chunks:
            tokens = int(self._parts.paced_tokens(tokens, max(k for k, _ in chunks)))
        t = float(self._linear[min(tokens, self.max_tokens)])
        if decodes:
            t += self.decode_attention_s(decodes, context_sum / decodes)
        for k, past in chunks:
            t += self.prefill_chunk_s(k, past)
        if self._terms is not None:  # the engine's costs beyond the kernels, as Engine.iteration_s adds them
            params, layers, _, graph, ranks, overlap = self._terms
            if chunks:
                t += self._prompt_host[int((decodes + sum(k for k, _ in chunks)) / ranks > graph)]
            return float(engine_step_s(t, params, step_layers=layers, overlap=overlap))
        return t
