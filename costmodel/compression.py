"""Compression: how many bytes a compressed model takes, how much error it makes, what quality it keeps.

Four parts, each a set of pure numpy functions:

1. **Bytes and compression ratios** of quantized weights (through :mod:`costmodel.dtypes`), unstructured
   sparsity (CSR, COO or a bitmask), N:M structured sparsity with its index metadata, low-rank
   factorisation, and the KV cache (quantization and token eviction).
2. **Error models**: uniform quantization (step, MSE model, worst-case bound, per-tensor / per-channel
   / per-group scales, absmax or min-max), binary and ternary weights with their optimal scales,
   optimal-brain-damage and optimal-brain-surgeon saliencies, and provable bounds on the attention
   output error under KV-cache quantization and under token eviction.
3. **Quality**: the seed's penalty L_compressed = L_original + gamma CR^delta (and an exponential
   alternative) fitted to published WikiText-2 perplexities (:data:`PERPLEXITY_RESULTS`), quality
   retention, efficiency and the Pareto frontier of candidate configurations.
4. **Entropy**: the differential entropy of a Gaussian weight, the entropy of its quantised values, and
   the Gaussian rate-distortion function (the seed's "4.13 bits" erratum).

Time on a device (the roofline consequence of fewer bytes) is the performance model's business, not
this module's. ``docs/compression.md`` has the derivations, the fit data and the measured evidence.

Departures from the seed notes (seeds 000, 003, 004), each explained where the function lives:

- Seed 003 Theorem 2 states E[(w - Q(w))^2] <= M^2 / (3 * 2^(2b)). That is the *uniform-error model*
  Delta^2/12 with Delta = 2M/2^b, not an upper bound: the worst case over weights in [-M, M] is
  Delta^2/4 = M^2 / 2^(2b), three times larger (:func:`quantization_mse_bound`).
- Seed 000 Theorem 11 bounds the eviction error by sum_evicted a_i ||v_i||. That holds only if the
  evicted terms are dropped *without* renormalising the remaining attention weights; softmax over the
  kept keys renormalises, and then the error is m ||mean_E(v) - mean_K(v)|| with m the evicted mass
  (:func:`eviction_error_bound`).
- Seed 000 Theorem 10's KV-quantization error O(Delta_K ||V|| + Delta_V ||K||) is replaced by a proven
  bound in which the value error does not grow with ||K|| (:func:`kv_quant_error_bound`).
- Seed 004's compression penalty exponent delta ~ 0.3-0.5 is an order of magnitude off: published
  8/5/4/3-bit results give delta ~ 6-7 (:func:`quality_penalty`).
- Seed 004's "Gaussian weight entropy ~ 4.13 bits (sigma = 1)": 1/2 log2(2 pi e) = 2.047 bits, and a
  differential entropy is not a bit count (:func:`gaussian_entropy_bits`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt

from costmodel.dtypes import bytes_per_element, storage_bytes

if TYPE_CHECKING:  # pandas is slow to import; only the table-making functions load it
    import pandas as pd

    from costmodel.memory import Sparsity
    from costmodel.specs import Deployment, HardwareProfile, ModelProfile, Workload

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# ----------------------------------------------------------------------------------------------------
# 1. Bytes and compression ratios
# ----------------------------------------------------------------------------------------------------


def bits_per_weight(dtype: str, *, group_size: int | None = None) -> float:
    """Average stored bits per weight of a named format, group scales and zero points included [bits].

    ``bytes_per_element`` of :mod:`costmodel.dtypes` times 8: int4 (g128, fp16 scale, 4-bit zero)
    4.156, nf4 (g64, fp32 absmax) 4.5, ternary 1.6, binary 1, int8 and fp8 8.
    """
    return 8.0 * bytes_per_element(dtype, group_size=group_size)


def integer_bits_per_weight(
    bits: npt.ArrayLike,
    *,
    group_size: npt.ArrayLike | None = None,
    scale_bits: int = 16,
    zero_point_bits: npt.ArrayLike | None = None,
) -> FloatArray:
    """Stored bits per weight of b-bit integer quantization with per-group metadata [bits].

    ``bits + (scale_bits + zero_point_bits) / group_size``. The default zero point has ``bits`` bits
    (asymmetric GPTQ/AWQ layout, as the ``int4`` entry of :data:`costmodel.dtypes.DTYPES`; pass 0 for
    symmetric quantization). ``group_size=None`` counts no metadata (per-channel scales: < 0.01 bits).
    For b = 4 and g = 128 this equals ``bits_per_weight("int4")``; it covers the widths that have no
    named format (3-bit, 2-bit, llama.cpp's 32-element blocks).

    Parameters
    ----------
    bits : int or array
        Bits of each quantized value [bits].
    group_size : int or array, optional
        Weights sharing one scale (and zero point) [-].
    scale_bits : int
        Bits of each group's scale [bits] (fp16: 16).
    zero_point_bits : int or array, optional
        Bits of each group's zero point [bits]; default ``bits``.
    """
    b = np.asarray(bits, dtype=np.float64)
    if group_size is None:
        return b
    z = b if zero_point_bits is None else np.asarray(zero_point_bits, dtype=np.float64)
    return np.asarray(b + (scale_bits + z) / np.asarray(group_size, dtype=np.float64))


def compression_ratio(dtype: str, *, baseline_dtype: str = "bf16", group_size: int | None = None) -> float:
    """Bytes of ``baseline_dtype`` over bytes of ``dtype`` per weight, metadata included [-].

    rho = |M_original| / |M_compressed| (seed 003, "Compression Ratio"). int4/g128 against bf16:
    16 / 4.156 = 3.85, not 4.
    """
    return bytes_per_element(baseline_dtype) / bytes_per_element(dtype, group_size=group_size)


SPARSE_FORMATS: Final = ("csr", "coo", "bitmask")
"""Storage layouts of unstructured sparsity understood by :func:`sparse_bytes`."""

SparseFormat = Literal["csr", "coo", "bitmask"]


def sparse_bytes(
    n_rows: npt.ArrayLike,
    n_cols: npt.ArrayLike,
    *,
    nnz: npt.ArrayLike,
    value_dtype: str = "bf16",
    fmt: SparseFormat = "csr",
    index_bytes: int = 4,
) -> IntArray:
    """Bytes of an unstructured-sparse ``n_rows x n_cols`` matrix with ``nnz`` stored values [bytes].

    Layouts:

    - ``"csr"`` (compressed sparse row): values + one column index per value + ``n_rows + 1`` row
      pointers, each index ``index_bytes`` wide (PyTorch's ``to_sparse_csr`` uses int64: 8).
    - ``"coo"``: values + a (row, column) pair of indices per value (PyTorch: ``[2, nnz]`` int64).
    - ``"bitmask"``: values + one bit per dense position, ``ceil(n_rows n_cols / 8)`` bytes.

    Values are stored in ``value_dtype`` through :func:`costmodel.dtypes.storage_bytes` (so int4 values
    carry their group scales). Per kept value CSR adds ``index_bytes`` and the bitmask adds 1/8 byte per
    dense position, so CSR is the smaller of the two only below a density of 1 / (8 index_bytes) (3.1 %
    with int32 indices). With bf16 values and int32 indices CSR costs 6 bytes per kept value: smaller
    than the dense bf16 matrix only above 2/3 sparsity.
    """
    if fmt not in SPARSE_FORMATS:
        raise ValueError(f"fmt must be one of {SPARSE_FORMATS}, got {fmt!r}")
    rows = np.asarray(n_rows, dtype=np.int64)
    cols = np.asarray(n_cols, dtype=np.int64)
    k = np.asarray(nnz, dtype=np.int64)
    values = storage_bytes(k, value_dtype)
    if fmt == "csr":
        meta = (k + rows + 1) * index_bytes
    elif fmt == "coo":
        meta = 2 * k * index_bytes
    else:
        meta = -(-(rows * cols) // 8)
    return np.asarray(values + meta, dtype=np.int64)


def nm_sparse_bytes(
    n_elements: npt.ArrayLike, *, n: int = 2, m: int = 4, value_dtype: str = "bf16"
) -> IntArray:
    """Bytes of an N:M structured-sparse tensor: N values kept in every M, plus their positions [bytes].

    Each kept value carries a ``ceil(log2 m)``-bit index of its position inside its group of ``m``: for
    2:4 that is 2 bits per kept value, the metadata layout of NVIDIA Ampere sparse tensor cores for
    16-bit operands (Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks", arXiv:2104.08378).
    A 2:4 bf16 matrix takes 8 + 1 = 9 bits per dense weight: 1.78x, not 2x.
    ``n_elements`` must be a multiple of ``m``.
    """
    if not 0 < n <= m:
        raise ValueError(f"need 0 < n <= m, got n={n}, m={m}")
    total = np.asarray(n_elements, dtype=np.int64)
    if np.any(total % m):
        raise ValueError(f"n_elements must be a multiple of m={m}")
    kept = total // m * n
    index_bits = math.ceil(math.log2(m))
    return np.asarray(storage_bytes(kept, value_dtype) + (-(-kept * index_bits // 8)), dtype=np.int64)


def low_rank_params(n_rows: npt.ArrayLike, n_cols: npt.ArrayLike, rank: npt.ArrayLike) -> IntArray:
    """Parameters of a rank-r factorisation W ~ U V, U [m, r], V [r, n]: (m + n) r [-] (seed 003)."""
    m, n, r = (np.asarray(x, dtype=np.int64) for x in (n_rows, n_cols, rank))
    return np.asarray((m + n) * r, dtype=np.int64)


def low_rank_compression_ratio(
    n_rows: npt.ArrayLike, n_cols: npt.ArrayLike, rank: npt.ArrayLike
) -> FloatArray:
    """m n / ((m + n) r) [-]: above 1 only for r < m n / (m + n) (2048 for a 4096 x 4096 matrix)."""
    m, n = np.asarray(n_rows, dtype=np.float64), np.asarray(n_cols, dtype=np.float64)
    return np.asarray(m * n / low_rank_params(n_rows, n_cols, rank))


def kv_quantization_ratio(
    kv_dtype: str, *, baseline_dtype: str = "bf16", group_size: int | None = None
) -> float:
    """KV-cache bytes in ``baseline_dtype`` over bytes in ``kv_dtype``, group metadata included [-].

    fp8 and int8 against bf16: 2; int4 with 128-element groups: 3.85; with 32-element groups, a
    KIVI-style setting (Liu et al. 2024), ``group_size=32`` gives 16 / 4.625 = 3.46.
    """
    return compression_ratio(kv_dtype, baseline_dtype=baseline_dtype, group_size=group_size)


def kv_eviction_ratio(context_len: npt.ArrayLike, *, kept_tokens: npt.ArrayLike) -> FloatArray:
    """Cached tokens without eviction over cached tokens with a budget of ``kept_tokens`` [-].

    ``context_len / min(context_len, kept_tokens)`` (H2O, StreamingLLM and similar fixed-budget
    policies). Multiply by :func:`kv_quantization_ratio` for a cache that is both evicted and quantized.
    """
    S = np.asarray(context_len, dtype=np.float64)
    kept = np.minimum(S, np.asarray(kept_tokens, dtype=np.float64))
    if np.any(kept <= 0):
        raise ValueError("kept_tokens and context_len must be positive")
    return np.asarray(S / kept)


# ----------------------------------------------------------------------------------------------------
# 2. Error models: uniform quantization
# ----------------------------------------------------------------------------------------------------

SCHEMES: Final = ("absmax", "minmax", "midrise")
"""Uniform quantizers understood by the error models:

- ``"absmax"``: symmetric, scale = max|w| / (2^(b-1) - 1), integer levels -(2^(b-1) - 1) ... 2^(b-1) - 1
  (2^b - 1 levels with zero; LLM.int8(), GPTQ ``sym=True``). The group's range statistic is max|w|.
- ``"minmax"``: asymmetric, scale = (max - min) / (2^b - 1), integer zero point round(-min / scale),
  levels 0 ... 2^b - 1 (GPTQ/AWQ default). The range statistic is max - min.
- ``"midrise"``: the seed's quantizer (seed 003 Theorem 2): 2^b cells of width 2M / 2^b tiling [-M, M],
  reconstruction at the cell centres. The range statistic is M = max|w|.
"""

Scheme = Literal["absmax", "minmax", "midrise"]

GRANULARITIES: Final = ("tensor", "channel", "group")
"""Scale granularities: one scale per tensor, per output channel (a row of a ``[out, in]`` weight), or per
group of ``group_size`` consecutive weights of a row."""

Granularity = Literal["tensor", "channel", "group"]


def quantization_step(
    group_range: npt.ArrayLike, bits: npt.ArrayLike, *, scheme: Scheme = "absmax"
) -> FloatArray:
    """Distance between adjacent quantization levels, Delta [units of the weights].

    ``absmax``: M / (2^(b-1) - 1) with M = max|w| (b >= 2); ``minmax``: (max - min) / (2^b - 1);
    ``midrise``: 2M / 2^b. See :data:`SCHEMES`.

    Parameters
    ----------
    group_range : float or array
        The group's range statistic (max|w| or max - min, by scheme) [units of the weights].
    bits : int or array
        Bits per quantized value [bits].
    """
    r = np.asarray(group_range, dtype=np.float64)
    b = np.asarray(bits, dtype=np.float64)
    if scheme == "absmax":
        if np.any(b < 2):
            raise ValueError("absmax quantization needs bits >= 2 (1 bit: use binary_scale)")
        return np.asarray(r / (2.0 ** (b - 1) - 1))
    if scheme == "minmax":
        return np.asarray(r / (2.0**b - 1))
    if scheme == "midrise":
        return np.asarray(2.0 * r / 2.0**b)
    raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


def quantization_mse(
    group_range: npt.ArrayLike,
    bits: npt.ArrayLike,
    *,
    scheme: Scheme = "absmax",
    group_size: npt.ArrayLike | None = None,
) -> FloatArray:
    """Predicted mean squared error of round-to-nearest quantization of one group [units^2].

    Delta^2 / 12 x (1 - k / g): the uniform-error (high-resolution) model of Bennett (1948) and Widrow
    (1956), with Delta from :func:`quantization_step`. ``k = 1`` for ``absmax`` (the element at max|w|
    lands exactly on the top level and makes no error), 0 otherwise (the integer zero point of
    ``minmax`` moves both ends off the grid). With ``group_size=None`` no correction is applied.

    Assumptions: no clipping (the scale covers the group, as absmax and min-max do), and the weights'
    density is roughly flat across each cell, so the rounding error is uniform on [-Delta/2, Delta/2].
    Measured (``docs/compression.md``): within 2 % on Gaussian weights and on the weights of a
    pretrained network (all-MiniLM-L6-v2) for b >= 3 with per-channel or group scales, and for b >= 4-5
    with one scale per tensor. It fails when Delta is large compared with the spread of most weights
    (b = 2; per-tensor scales stretched by outliers; heavy tails): most weights then round to zero and
    the true MSE is below the model's, so the model errs on the safe side (never more than 2 % low in
    336 measured cases).
    :func:`quantization_mse_bound` is a guaranteed bound.

    Seed 003 Theorem 2's M^2 / (3 x 2^(2b)) is this model for ``scheme="midrise"`` (Delta = 2M / 2^b).
    The integer grids used in practice have fewer levels per range: at b = 4 absmax gives
    M^2 / 588 where the seed gives M^2 / 768.

    Usage: ``quantization_mse(group_ranges(w, ...), bits).mean()`` predicts the MSE of a whole tensor.
    """
    step = quantization_step(group_range, bits, scheme=scheme)
    mse = step**2 / 12.0
    if group_size is not None and scheme == "absmax":
        mse = mse * (1.0 - 1.0 / np.asarray(group_size, dtype=np.float64))
    return np.asarray(mse)


def quantization_mse_bound(
    group_range: npt.ArrayLike, bits: npt.ArrayLike, *, scheme: Scheme = "absmax"
) -> FloatArray:
    """Worst-case mean squared error of round-to-nearest quantization without clipping: Delta^2 / 4 [units^2].

    Every weight inside the quantizer's range is within Delta/2 of a level, so |w - Q(w)| <= Delta/2
    and any average of squared errors is at most Delta^2/4, whatever the weights' distribution. The
    bound is attained by weights sitting half-way between levels. For the seed's midrise quantizer it
    is M^2 / 2^(2b), three times seed 003 Theorem 2's "bound" M^2 / (3 x 2^(2b)), which is the uniform-
    error *model*, equal to the true MSE only when the error is uniform (e.g. uniformly distributed
    weights). With clipping (a range set below max|w|, as in AWQ's clipping search) weights beyond the
    range err by more than Delta/2 and neither expression bounds the MSE.
    """
    return np.asarray(quantization_step(group_range, bits, scheme=scheme) ** 2 / 4.0)


def group_ranges(
    weights: npt.ArrayLike,
    *,
    scheme: Scheme = "absmax",
    granularity: Granularity = "group",
    group_size: int = 128,
) -> FloatArray:
    """Range statistic of every scale group of a ``[out, in]`` weight (or any array) [units].

    ``granularity="tensor"``: one group; ``"channel"``: one per row (reduction over the last axis);
    ``"group"``: consecutive runs of ``group_size`` along the last axis, which must divide it. The
    statistic is max|w| (``absmax``, ``midrise``) or max - min (``minmax``). Returns a 1-D array with one
    entry per group; each group holds ``weights.size / len(result)`` weights.
    """
    w = np.asarray(weights, dtype=np.float64)
    if granularity == "tensor":
        groups = w.reshape(1, -1)
    elif granularity == "channel":
        groups = w.reshape(-1, w.shape[-1])
    elif granularity == "group":
        if w.shape[-1] % group_size:
            raise ValueError(f"group_size {group_size} does not divide the last axis ({w.shape[-1]})")
        groups = w.reshape(-1, group_size)
    else:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if scheme == "minmax":
        return np.asarray(groups.max(axis=1) - groups.min(axis=1))
    return np.asarray(np.abs(groups).max(axis=1))


def tensor_quantization_mse(
    weights: npt.ArrayLike,
    bits: npt.ArrayLike,
    *,
    scheme: Scheme = "absmax",
    granularity: Granularity = "group",
    group_size: int = 128,
) -> FloatArray:
    """Predicted MSE of quantizing a whole tensor with the given scales, per element [units^2].

    The mean over scale groups of :func:`quantization_mse`. ``bits`` may be an array (one prediction
    per entry).
    """
    w = np.asarray(weights, dtype=np.float64)
    ranges = group_ranges(w, scheme=scheme, granularity=granularity, group_size=group_size)
    b = np.asarray(bits, dtype=np.float64)
    per_group = quantization_mse(ranges, b[..., None], scheme=scheme, group_size=w.size // ranges.size)
    return np.asarray(per_group.mean(axis=-1))


# ----------------------------------------------------------------------------------------------------
# Binary and ternary weights
# ----------------------------------------------------------------------------------------------------


def binary_scale(weights: npt.ArrayLike, *, axis: int | None = None) -> FloatArray:
    """MSE-optimal scale alpha of W ~ alpha sign(W): mean |W| [units].

    XNOR-Net (Rastegari et al. 2016, arXiv:1603.05279, binary-weight networks).

    ||W - alpha s||^2 = sum w^2 - 2 alpha sum |w| + alpha^2 n is a parabola in alpha with its minimum at
    sum |w| / n. Seed 000 Theorem 8's error sum (|W| - 1)^2 is this error at alpha = 1, which is optimal
    only if mean |W| = 1; seed 004's alpha = ||W||_1 / (m n) is the optimum.
    """
    return np.asarray(np.mean(np.abs(np.asarray(weights, dtype=np.float64)), axis=axis))


def binary_mse(
    weights: npt.ArrayLike, *, scale: npt.ArrayLike | None = None, axis: int | None = None
) -> FloatArray:
    """Mean squared error of alpha sign(W), sign(0) = +1 [units^2]; default alpha = :func:`binary_scale`.

    At the optimum it is mean(w^2) - mean(|w|)^2: sigma^2 (1 - 2/pi) = 0.363 sigma^2 for Gaussian weights.
    """
    w = np.asarray(weights, dtype=np.float64)
    a = binary_scale(w, axis=axis) if scale is None else np.asarray(scale, dtype=np.float64)
    if axis is not None:
        a = np.expand_dims(a, axis) if np.ndim(a) else a
    s = np.where(w >= 0, 1.0, -1.0)
    return np.asarray(np.mean((w - a * s) ** 2, axis=axis))


TERNARY_THRESHOLDS: Final = ("twn", "bitnet")
"""Threshold rules of :func:`ternary_threshold`."""


def ternary_threshold(
    weights: npt.ArrayLike, *, model: Literal["twn", "bitnet"] = "twn", axis: int | None = None
) -> FloatArray:
    """Threshold Delta below which a weight becomes 0 in ternary quantization [units].

    ``"twn"``: 0.7 mean|W|, Ternary Weight Networks' approximation of the MSE-optimal threshold for
    Gaussian or uniform weights (Li, Zhang & Liu 2016, arXiv:1605.04711). ``"bitnet"``:
    0.5 mean|W|, implied by BitNet b1.58's RoundClip(W / mean|W|, -1, 1) (Ma et al. 2024,
    arXiv:2402.17764, absmean quantization).
    """
    factor = {"twn": 0.7, "bitnet": 0.5}.get(model)
    if factor is None:
        raise ValueError(f"model must be one of {TERNARY_THRESHOLDS}, got {model!r}")
    return np.asarray(factor * binary_scale(weights, axis=axis))


def ternary_scale(weights: npt.ArrayLike, threshold: npt.ArrayLike, *, axis: int | None = None) -> FloatArray:
    """MSE-optimal scale alpha* of ternary weights {-alpha, 0, +alpha} for a given threshold [units].

    alpha* = sum_{|w| > Delta} |w| / |{w : |w| > Delta}| (seed 000 Theorem 9; TWN, Li et al. 2016).
    Derivation: with the zero set fixed by Delta, the error is
    sum_{|w| <= Delta} w^2 + sum_{|w| > Delta} (|w| - alpha)^2, whose only alpha-dependent part is
    minimised by the mean of |w| over the kept weights. The seed's statement is right. 0 when no
    weight exceeds the threshold.
    """
    w = np.abs(np.asarray(weights, dtype=np.float64))
    d = np.asarray(threshold, dtype=np.float64)
    if axis is not None and d.ndim:
        d = np.expand_dims(d, axis)
    kept = w > d
    total = np.sum(np.where(kept, w, 0.0), axis=axis)
    count = np.sum(kept, axis=axis)
    return np.asarray(np.divide(total, count, out=np.zeros_like(total, dtype=np.float64), where=count > 0))


def ternary_mse(
    weights: npt.ArrayLike,
    threshold: npt.ArrayLike,
    *,
    scale: npt.ArrayLike | None = None,
    axis: int | None = None,
) -> FloatArray:
    """Mean squared error of ternary quantization with threshold Delta and scale alpha [units^2].

    Default alpha = :func:`ternary_scale` (the optimum for this Delta). BitNet b1.58 uses alpha =
    mean|W| with Delta = alpha/2: a training-time choice, not the MSE optimum.
    """
    w = np.asarray(weights, dtype=np.float64)
    d = np.asarray(threshold, dtype=np.float64)
    a = ternary_scale(w, d, axis=axis) if scale is None else np.asarray(scale, dtype=np.float64)
    if axis is not None:
        d = np.expand_dims(d, axis) if d.ndim else d
        a = np.expand_dims(a, axis) if np.ndim(a) else a
    q = np.where(np.abs(w) > d, a * np.sign(w), 0.0)
    return np.asarray(np.mean((w - q) ** 2, axis=axis))


# ----------------------------------------------------------------------------------------------------
# Pruning saliency
# ----------------------------------------------------------------------------------------------------


def obd_saliency(weights: npt.ArrayLike, hessian_diag: npt.ArrayLike) -> FloatArray:
    """Optimal Brain Damage saliency s_i = 1/2 H_ii w_i^2 [units of the loss] (LeCun et al. 1990).

    The predicted loss increase from zeroing weight i alone. Assumptions (seed 003's proof sketch):
    the gradient is zero (a trained minimum), the loss is quadratic near the weights, and the other
    weights stay put. Exact for a quadratic loss at its minimum; cross terms H_ij are ignored, so it
    is not additive over many removed weights.
    """
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray(0.5 * np.asarray(hessian_diag, dtype=np.float64) * w**2)


def obs_saliency(weights: npt.ArrayLike, hessian_inv_diag: npt.ArrayLike) -> FloatArray:
    """Optimal Brain Surgeon saliency w_i^2 / (2 [H^-1]_ii) [units of the loss] (Hassibi & Stork 1993).

    The loss increase from zeroing weight i when the remaining weights are re-optimised (the update
    GPTQ applies column by column). Never larger than :func:`obd_saliency`, since
    1 / [H^-1]_ii <= H_ii for a positive definite H.
    """
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray(w**2 / (2.0 * np.asarray(hessian_inv_diag, dtype=np.float64)))


# ----------------------------------------------------------------------------------------------------
# Attention output error: KV quantization and eviction
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KVQuantErrorBound:
    """Bound on ||o - o_hat||_2 for one query's attention output under KV quantization [units of V]."""

    score_error: FloatArray
    """eps: largest change of any pre-softmax score, tau ||q||_1 Delta_K / 2 [-]."""
    key_term: FloatArray
    """Error through the attention weights: eps max_i ||v_i||_2 [units of V]."""
    value_term: FloatArray
    """Error of the values themselves: Delta_V sqrt(d_v) / 2 [units of V]."""

    @property
    def total(self) -> FloatArray:
        """The bound [units of V]."""
        return np.asarray(self.key_term + self.value_term)


def kv_quant_error_bound(
    *,
    key_step: npt.ArrayLike,
    value_step: npt.ArrayLike,
    query_l1_norm: npt.ArrayLike,
    value_max_norm: npt.ArrayLike,
    head_dim: npt.ArrayLike,
    value_dim: npt.ArrayLike | None = None,
    softmax_scale: npt.ArrayLike | None = None,
) -> KVQuantErrorBound:
    """Provable bound on the attention output error of one query when K and V are quantized.

    For o = sum_i a_i v_i, a = softmax(tau K q), and the same with K_hat = K + E_K, V_hat = V + E_V,
    where every element of E_K (E_V) is at most Delta_K / 2 (Delta_V / 2) in magnitude — true for
    round-to-nearest within the quantizer's range, any granularity, with Delta the largest step:

        ||o - o_hat||_2 <= eps max_i ||v_i||_2 + Delta_V sqrt(d_v) / 2,   eps = tau ||q||_1 Delta_K / 2.

    Derivation (``docs/compression.md`` has it in full): o - o_hat = V^T (a - a_hat) - E_V^T a_hat.
    (1) a_hat sums to 1 and each row of E_V has norm <= Delta_V sqrt(d_v) / 2, so the second term is at
    most that. (2) The scores move by delta_i = tau q . e_i, |delta_i| <= tau ||q||_1 Delta_K / 2 = eps
    (Hölder). Along the path s + t delta the softmax derivative is a_t (delta - <a_t, delta>), whose
    l1 norm is the mean absolute deviation of delta under a_t, at most eps (Popoviciu), so
    ||a - a_hat||_1 <= eps. (3) a - a_hat sums to 0, so V^T (a - a_hat) is 1/2 ||a - a_hat||_1 times a
    difference of two convex combinations of the v_i: at most 1/2 eps diam{v_i} <= eps max ||v_i||.

    This replaces seed 000 Theorem 10's O(Delta_K ||V|| + Delta_V ||K||): the value error does not
    grow with ||K|| (attention weights sum to 1), and the key error is scaled by the query, tau ||q||_1.

    Parameters
    ----------
    key_step, value_step : float or array
        Largest quantization step of K and of V [units of K, V] (:func:`quantization_step`).
    query_l1_norm : float or array
        ||q||_1 of the query [units of Q].
    value_max_norm : float or array
        max_i ||v_i||_2 over the cached tokens [units of V].
    head_dim : int or array
        d, the query/key width; ``softmax_scale`` defaults to 1 / sqrt(d).
    value_dim : int or array, optional
        d_v; default ``head_dim``.
    """
    d = np.asarray(head_dim, dtype=np.float64)
    dv = d if value_dim is None else np.asarray(value_dim, dtype=np.float64)
    tau = 1.0 / np.sqrt(d) if softmax_scale is None else np.asarray(softmax_scale, dtype=np.float64)
    eps = np.asarray(tau * np.asarray(query_l1_norm, dtype=np.float64) * np.asarray(key_step) / 2.0)
    return KVQuantErrorBound(
        score_error=eps,
        key_term=np.asarray(eps * np.asarray(value_max_norm, dtype=np.float64)),
        value_term=np.asarray(np.asarray(value_step, dtype=np.float64) * np.sqrt(dv) / 2.0),
    )


def eviction_error_bound(
    attention: npt.ArrayLike,
    value_norms: npt.ArrayLike,
    evicted: npt.ArrayLike,
    *,
    renormalized: bool = True,
) -> FloatArray:
    """Bound on ||o - o_hat||_2 when the tokens marked ``evicted`` are dropped from the KV cache [units of V].

    With m = sum_{i in E} a_i the attention mass of the evicted set E under the full cache:

    - ``renormalized=True`` (what attention over the kept keys computes: softmax renormalises the kept
      weights to a_i / (1 - m)): o - o_hat = m (mean_E v - mean_K v) exactly, with a-weighted means, so
      ||o - o_hat|| <= sum_{i in E} a_i ||v_i|| + m max_{i not in E} ||v_i|| <= 2 m max_i ||v_i||.
    - ``renormalized=False`` (evicted terms simply left out of the sum): o - o_hat = sum_E a_i v_i, and
      seed 000 Theorem 11's sum_E a_i ||v_i|| is the bound.

    The seed's bound is not a bound once weights are renormalised: two tokens with a = (1/2, 1/2),
    v_1 = 0 evicted, v_2 = u give ||o - o_hat|| = ||u|| / 2 where the seed predicts 0.

    Parameters
    ----------
    attention : array [..., n]
        Attention weights of one query over the full cache (rows sum to 1) [-].
    value_norms : array [..., n]
        ||v_i||_2 per cached token [units of V].
    evicted : bool array [..., n]
        Tokens removed from the cache.
    """
    a = np.asarray(attention, dtype=np.float64)
    norms = np.asarray(value_norms, dtype=np.float64)
    e = np.asarray(evicted, dtype=bool)
    dropped = np.sum(np.where(e, a * norms, 0.0), axis=-1)
    if not renormalized:
        return np.asarray(dropped)
    mass = np.sum(np.where(e, a, 0.0), axis=-1)
    kept_max = np.max(np.where(e, 0.0, norms), axis=-1)
    return np.asarray(np.where(np.all(e, axis=-1), np.inf, dropped + mass * kept_max))


# ----------------------------------------------------------------------------------------------------
# 3. Quality: published perplexities and the compression penalty
# ----------------------------------------------------------------------------------------------------


Method = Literal["rtn", "gptq", "awq"]
"""Post-training quantization methods of :data:`PERPLEXITY_RESULTS`."""


@dataclass(frozen=True)
class PerplexityResult:
    """One published WikiText-2 perplexity of a weight-only post-training-quantized model."""

    source: str
    """Where the numbers are printed (paper table or repository README)."""
    model: str
    method: Method
    """rtn: round-to-nearest; gptq: GPTQ with act-order (GPTQ-R); awq: activation-aware scaling."""
    bits: int
    """Bits per quantized value [bits]."""
    group_size: int | None
    """Weights per scale group; None: one scale per output channel."""
    bits_per_weight: float
    """Stored bits per weight, scales and zero points included [bits]."""
    ppl_fp16: float
    """The unquantized model's perplexity in the same evaluation [-]."""
    ppl_quant: float
    """The quantized model's perplexity [-]."""
    held_out: bool
    """True for the 13B models, kept out of the default fits to measure their prediction error."""

    @property
    def compression_ratio(self) -> float:
        """16 / bits_per_weight [-]: bytes of the fp16 weights over bytes of the quantized ones."""
        return 16.0 / self.bits_per_weight

    @property
    def loss_increase(self) -> float:
        """ln(ppl_quant / ppl_fp16): increase of the cross-entropy loss [nats per token]."""
        return math.log(self.ppl_quant / self.ppl_fp16)


_GPTQ_README = "Frantar et al. 2023 (GPTQ, arXiv:2210.17323), IST-DASLab/gptq README, LLaMA summary table"
_AWQ_T4 = "Lin et al. 2024 (AWQ, arXiv:2306.00978), Table 4"
_LLAMA_CPP = "ggerganov/llama.cpp README (2023), Quantization table, context 512"


def _rows() -> Iterable[PerplexityResult]:
    # GPTQ README (per-channel; GPTQ with --act-order --true-sequential; context 2048):
    # model: FP16, 4bit-RTN, 4bit-GPTQ, 3bit-RTN, 3bit-GPTQ, 3g128-GPTQ
    gptq_readme = {
        "LLaMA-7B": (5.68, 6.29, 6.09, 25.54, 8.07, 6.61),
        "LLaMA-13B": (5.09, 5.53, 5.36, 11.40, 6.63, 5.62),
        "LLaMA-30B": (4.10, 4.54, 4.45, 14.89, 5.69, 4.80),
        "LLaMA-65B": (3.53, 3.92, 3.84, 10.59, 5.04, 4.17),
    }
    for model, (base, r4, g4, r3, g3, g3g128) in gptq_readme.items():
        held = "13B" in model
        per_channel: tuple[tuple[Method, int, float], ...] = (
            ("rtn", 4, r4),
            ("gptq", 4, g4),
            ("rtn", 3, r3),
            ("gptq", 3, g3),
        )
        for method, bits, ppl in per_channel:
            yield PerplexityResult(_GPTQ_README, model, method, bits, None, float(bits), base, ppl, held)
        bpw = float(integer_bits_per_weight(3, group_size=128))
        yield PerplexityResult(_GPTQ_README, model, "gptq", 3, 128, bpw, base, g3g128, held)
    # AWQ Table 4 (INT3/INT4, group 128): FP16 and, per method, INT3 then INT4 rows.
    models = ("Llama-2-7B", "Llama-2-13B", "Llama-2-70B", "LLaMA-7B", "LLaMA-13B", "LLaMA-30B", "LLaMA-65B")
    fp16 = (5.47, 4.88, 3.32, 5.68, 5.09, 4.10, 3.53)
    awq_table: dict[tuple[Method, int], tuple[float, ...]] = {
        ("rtn", 3): (6.66, 5.52, 3.98, 7.01, 5.88, 4.88, 4.24),
        ("gptq", 3): (6.42, 5.41, 3.86, 6.53, 5.64, 4.74, 4.21),  # GPTQ-R (with reordering)
        ("awq", 3): (6.24, 5.32, 3.74, 6.35, 5.52, 4.61, 3.95),
        ("rtn", 4): (5.73, 4.98, 3.46, 5.96, 5.25, 4.23, 3.67),
        ("gptq", 4): (5.63, 4.99, 3.43, 5.83, 5.20, 4.22, 3.66),  # GPTQ-R
        ("awq", 4): (5.60, 4.97, 3.41, 5.78, 5.19, 4.21, 3.62),
    }
    for (method, bits), row in awq_table.items():
        bpw = float(integer_bits_per_weight(bits, group_size=128))
        for model, base_ppl, ppl in zip(models, fp16, row, strict=True):
            yield PerplexityResult(_AWQ_T4, model, method, bits, 128, bpw, base_ppl, ppl, "13B" in model)
    # llama.cpp (LLaMA-1, blocks of 32, fp16 scale; *_1 formats add an fp16 minimum): name, bits, zero bits
    formats = (("Q8_0", 8, 0), ("Q5_1", 5, 16), ("Q5_0", 5, 0), ("Q4_1", 4, 16), ("Q4_0", 4, 0))
    llama_cpp = {
        "LLaMA-7B": (5.9066, (5.9070, 5.9481, 5.9862, 6.0912, 6.1565)),
        "LLaMA-13B": (5.2543, (5.2548, 5.2706, 5.2856, 5.3608, 5.3860)),
    }
    for model, (base, ppls) in llama_cpp.items():
        for (_name, bits, zero), ppl in zip(formats, ppls, strict=True):
            bpw = float(integer_bits_per_weight(bits, group_size=32, zero_point_bits=zero))
            yield PerplexityResult(_LLAMA_CPP, model, "rtn", bits, 32, bpw, base, ppl, "13B" in model)


PERPLEXITY_RESULTS: Final[tuple[PerplexityResult, ...]] = tuple(_rows())
"""Published WikiText-2 perplexities of weight-only quantized LLaMA / Llama-2 models, copied from:

- GPTQ README (IST-DASLab/gptq, "summary of LLaMa results"; Frantar et al. 2023): LLaMA 7B-65B,
  FP16 / 4-bit RTN / 4-bit GPTQ / 3-bit RTN / 3-bit GPTQ per channel, and 3-bit GPTQ with groups of 128.
- AWQ Table 4 (Lin et al. 2024): Llama-2 7B/13B/70B and LLaMA 7B-65B, INT3 and INT4 with groups of
  128, rows RTN, GPTQ-R (GPTQ with reordering) and AWQ. (The table's GPTQ-without-reordering rows are
  left out.)
- llama.cpp README (2023, marked "outdated" there): LLaMA 7B/13B, Q8_0, Q5_1, Q5_0, Q4_1, Q4_0
  (round-to-nearest in blocks of 32; the README lists 8.5 / 6.0 / 5.5 / 5.0 / 4.5 bits per weight).

Perplexities of different sources are not comparable with each other (context 2048 vs 512), which is
why every row carries its own FP16 baseline and the fits use the loss increase ln(ppl_q / ppl_fp16).
"""

QUALITY_MODELS: Final = ("power", "exponential")
"""Penalty models of :func:`quality_penalty`:

- ``"power"`` (seed 004): Delta L = gamma CR^delta, CR = 16 / stored bits per weight.
- ``"exponential"``: Delta L = gamma 2^(-delta b), b = 16 / CR stored bits per weight. A second-order
  expansion of the loss gives Delta L ~ 1/2 tr(H Sigma_e), proportional to the quantization MSE,
  which scales as 2^(-2b) (:func:`quantization_mse`): the theory's delta is 2.
"""

QualityModel = Literal["power", "exponential"]


@dataclass(frozen=True)
class QualityFit:
    """Least-squares fit of log Delta L [fitted on ln(nats per token)] for one method and model."""

    method: str
    model: str
    gamma: float
    """Scale of the penalty [nats per token]. Uncertain: see ``gamma_range``."""
    delta: float
    """Exponent [-] (``power``: of CR; ``exponential``: per stored bit, in log2)."""
    covariance: FloatArray
    """Covariance of (ln gamma, delta) from ``scipy.optimize.curve_fit``."""
    residual_std: float
    """Standard deviation of ln Delta L around the fit [-]: the scatter across models."""
    n_points: int

    @property
    def gamma_range(self) -> tuple[float, float]:
        """gamma within +-2 standard errors [nats per token]."""
        se = math.sqrt(self.covariance[0, 0])
        return self.gamma * math.exp(-2 * se), self.gamma * math.exp(2 * se)

    @property
    def delta_range(self) -> tuple[float, float]:
        """delta within +-2 standard errors [-]."""
        se = math.sqrt(self.covariance[1, 1])
        return self.delta - 2 * se, self.delta + 2 * se


def _log_penalty(x: FloatArray, log_gamma: float, delta: float, model: QualityModel) -> FloatArray:
    if model == "power":
        return np.asarray(log_gamma + delta * np.log(x))
    return np.asarray(log_gamma - delta * math.log(2.0) * (16.0 / x))


def fit_quality_penalty(points: Sequence[PerplexityResult], *, model: QualityModel = "power") -> QualityFit:
    """Fit gamma and delta of a :data:`QUALITY_MODELS` penalty to published results.

    Least squares on ln Delta L (``scipy.optimize.curve_fit``): the loss increases span four orders of
    magnitude (8-bit: 1e-4 nats, 3-bit: 0.2 nats), and their scatter across models is multiplicative.
    """
    from scipy.optimize import curve_fit  # here, not at the top: keeps `import costmodel` light

    if model not in QUALITY_MODELS:
        raise ValueError(f"model must be one of {QUALITY_MODELS}, got {model!r}")
    if len(points) < 3:
        raise ValueError("need at least 3 points to fit 2 parameters and their scatter")
    cr = np.array([p.compression_ratio for p in points])
    y = np.log([p.loss_increase for p in points])
    popt, pcov = curve_fit(
        lambda x, lg, d: _log_penalty(x, lg, d, model), cr, y, p0=(-10.0, 5.0 if model == "power" else 2.0)
    )
    resid = y - _log_penalty(cr, popt[0], popt[1], model)
    methods = sorted({p.method for p in points})
    return QualityFit(
        method="+".join(methods),
        model=model,
        gamma=float(np.exp(popt[0])),
        delta=float(popt[1]),
        covariance=np.asarray(pcov, dtype=np.float64),
        residual_std=float(np.sqrt(np.sum(resid**2) / (len(points) - 2))),
        n_points=len(points),
    )


def fit_points(method: Method, *, held_out: bool = False) -> tuple[PerplexityResult, ...]:
    """The rows of :data:`PERPLEXITY_RESULTS` a default fit uses (``held_out=False``) or tests on (True).

    Only group-wise rows (group_size not None): per-channel 3-bit RTN collapses (LLaMA-7B: 5.68 ->
    25.54), an effect of the group size that a penalty in CR alone cannot represent.
    """
    return tuple(
        p
        for p in PERPLEXITY_RESULTS
        if p.method == method and p.group_size is not None and p.held_out == held_out
    )


@cache
def default_quality_fit(method: Method = "rtn", model: QualityModel = "power") -> QualityFit:
    """The fit :func:`quality_penalty` uses: :func:`fit_quality_penalty` on ``fit_points(method)``."""
    return fit_quality_penalty(fit_points(method), model=model)


@dataclass(frozen=True)
class QualityPenalty:
    """Predicted loss increase from weight compression, with a 95 % band [nats per token]."""

    loss_increase: FloatArray
    low: FloatArray
    high: FloatArray

    @property
    def perplexity_ratio(self) -> FloatArray:
        """ppl_compressed / ppl_original = exp(Delta L) [-]."""
        return np.asarray(np.exp(self.loss_increase))

    @property
    def quality_retention(self) -> FloatArray:
        """Q = ppl_original / ppl_compressed = exp(-Delta L) [-] (:func:`quality_retention`)."""
        return quality_retention(self.loss_increase)


def quality_penalty(
    compression_ratio: npt.ArrayLike,
    *,
    method: Method = "rtn",
    model: QualityModel = "power",
    fit: QualityFit | None = None,
) -> QualityPenalty:
    """Predicted increase of the cross-entropy loss from weight-only quantization [nats per token].

    Seed 004: L_compressed ~ L_original + gamma CR^delta (``model="power"``), with CR the compression
    ratio against fp16 weights (:func:`compression_ratio`, metadata included). gamma and delta are
    fitted (:func:`default_quality_fit`) to the group-wise rows of :data:`PERPLEXITY_RESULTS` for
    ``method``, except the 13B models, held out.

    Uncertain constants, fitted, not physical: rtn gamma = 4.8e-6 nats, delta = 6.7 (5.5-7.9 within two
    standard errors); gptq and awq delta = 5.9 and 5.8 (from 4- and 3-bit results only).
    ``docs/compression.md`` has every fit with its in-sample and held-out error. The seed's delta
    0.3-0.5 is far off: it makes llama.cpp's 4.5-bit LLaMA-7B lose 1.4 times what its 8.5-bit one
    loses, where the published ratio is 600. ``model="exponential"`` fits the rtn data better
    (delta = 1.99, as the MSE theory predicts) and is the better extrapolation.

    The band ``low``-``high`` is ±1.96 standard deviations of the prediction in log space (fit
    covariance plus the residual scatter of the fitted models). It understates the variation between
    models: the held-out 13B models lose 1.2-1.6 times less than predicted for gptq and awq.
    Assumptions: LLaMA-family dense models, WikiText-2, weight-only PTQ with groups of 32-128, no
    dependence on model size, CR between about 1.9 and 5.1 (8.5 to 3.15 stored bits); outside that range
    the fit extrapolates, and per-channel 3-bit RTN (a collapse: 0.8-1.5 nats) is far above it.

    Parameters
    ----------
    compression_ratio : float or array
        16 / stored bits per weight [-].
    method : {"rtn", "gptq", "awq"}
        Which published results to fit.
    model : {"power", "exponential"}
        :data:`QUALITY_MODELS`.
    fit : QualityFit, optional
        Use these constants instead of the default fit.
    """
    f = default_quality_fit(method, model) if fit is None else fit
    x = np.asarray(compression_ratio, dtype=np.float64)
    mean = _log_penalty(x, math.log(f.gamma), f.delta, model)
    jac = np.stack([np.ones_like(x), np.log(x) if model == "power" else -math.log(2.0) * 16.0 / x], axis=-1)
    var_fit = np.einsum("...i,ij,...j->...", jac, f.covariance, jac)
    sd = np.sqrt(var_fit + f.residual_std**2)
    return QualityPenalty(
        loss_increase=np.asarray(np.exp(mean)),
        low=np.asarray(np.exp(mean - 1.96 * sd)),
        high=np.asarray(np.exp(mean + 1.96 * sd)),
    )


def quality_retention(loss_increase: npt.ArrayLike) -> FloatArray:
    """Q = ppl_original / ppl_compressed = exp(-Delta L) [-].

    Seed 003 defines Q = Metric_compressed / Metric_original for a higher-is-better metric; perplexity
    is lower-is-better (PPL = exp(loss)), so Q is its inverse ratio and stays in (0, 1].
    """
    return np.asarray(np.exp(-np.asarray(loss_increase, dtype=np.float64)))


def compression_efficiency(quality: npt.ArrayLike, compression_ratio: npt.ArrayLike) -> FloatArray:
    """eta = Q rho (seed 003, "Compression Quality Trade-off") [-]."""
    return np.asarray(np.asarray(quality, dtype=np.float64) * np.asarray(compression_ratio, dtype=np.float64))


def pareto(
    candidates: pd.DataFrame,
    *,
    minimize: Sequence[str] = ("memory_bytes",),
    maximize: Sequence[str] = ("quality",),
) -> pd.DataFrame:
    """The non-dominated rows of ``candidates`` (the Pareto frontier), in their original order.

    A row is dominated when another row is at least as good in every objective column and strictly
    better in one. Equal rows do not dominate each other, so duplicates on the frontier all stay.
    O(n^2) comparisons in blocks: fine for tens of thousands of candidates.

    Parameters
    ----------
    candidates : DataFrame
        One row per configuration; any other columns ride along.
    minimize, maximize : sequence of str
        Objective columns where lower (higher) is better, e.g. ``memory_bytes`` and ``quality``.
    """

    cols = [*minimize, *maximize]
    missing = [c for c in cols if c not in candidates.columns]
    if missing:
        raise KeyError(f"objective columns not in candidates: {missing}")
    if not cols:
        raise ValueError("need at least one objective column")
    # orient every objective so that lower is better
    x = np.column_stack(
        [candidates[c].to_numpy(dtype=np.float64) for c in minimize]
        + [-candidates[c].to_numpy(dtype=np.float64) for c in maximize]
    )
    dominated = np.zeros(len(x), dtype=bool)
    block = max(1, 4_000_000 // max(1, len(x) * len(cols)))
    for start in range(0, len(x), block):
        xi = x[start : start + block, None, :]  # [b, 1, k]
        no_worse = np.all(x[None, :, :] <= xi, axis=-1)  # [b, n]: row j no worse than row i
        better = np.any(x[None, :, :] < xi, axis=-1)
        dominated[start : start + block] = np.any(no_worse & better, axis=-1)
    return candidates.loc[~dominated]


# ----------------------------------------------------------------------------------------------------
# 4. Entropy of Gaussian weights (seed 004 erratum)
# ----------------------------------------------------------------------------------------------------


def gaussian_entropy_bits(sigma: npt.ArrayLike) -> FloatArray:
    """Differential entropy h = 1/2 log2(2 pi e sigma^2) of N(0, sigma^2) [bits] (Cover & Thomas, Eq. 8.9).

    2.047 bits at sigma = 1, not seed 004's 4.13 (the nearest simple expression, log2(2 pi e) = 4.094,
    drops the 1/2). It is not a number of bits a weight needs: it changes with the units (sigma = 0.02,
    typical of LLM weights, gives -3.60 bits) and a continuous value needs infinitely many bits to be
    stored exactly. What it does give is :func:`quantized_entropy_bits` and, with a distortion,
    :func:`gaussian_rate_distortion_bits`.
    """
    s = np.asarray(sigma, dtype=np.float64)
    return np.asarray(0.5 * np.log2(2.0 * np.pi * np.e * s**2))


def quantized_entropy_bits(sigma: npt.ArrayLike, step: npt.ArrayLike) -> FloatArray:
    """Entropy of a Gaussian weight rounded to a grid of step Delta: ~ h - log2(Delta) [bits].

    The discrete entropy H(Q_Delta(W)) approaches h(W) - log2 Delta as Delta -> 0 (Cover & Thomas,
    Theorem 8.3.1): within 0.015 bits for Delta <= sigma / 2, 0.06 bits at Delta = sigma (below the
    true entropy). It is what an entropy coder needs per weight at that step; seed 004's 4.13 bits is
    this at Delta = 0.236 sigma. Approximation, not a bound.
    """
    return np.asarray(gaussian_entropy_bits(sigma) - np.log2(np.asarray(step, dtype=np.float64)))


def gaussian_rate_distortion_bits(sigma: npt.ArrayLike, mse: npt.ArrayLike) -> FloatArray:
    """R(D) = max(0, 1/2 log2(sigma^2 / D)): fewest bits per Gaussian weight at MSE D [bits].

    Cover & Thomas, "Elements of Information Theory", Theorem 10.3.2.

    The honest version of "minimum bits per weight": it needs a distortion. 4 bits buys at best
    D = sigma^2 / 256; an entropy-coded uniform quantizer needs about 0.25 bits more (Gish & Pierce 1968),
    a fixed-rate one more still.
    """
    s2 = np.asarray(sigma, dtype=np.float64) ** 2
    return np.asarray(np.maximum(0.0, 0.5 * np.log2(s2 / np.asarray(mse, dtype=np.float64))))


# ----------------------------------------------------------------------------------------------------
# The trade-off on a device: memory, speed (roofline) and quality together
# ----------------------------------------------------------------------------------------------------


def tradeoffs(
    model: ModelProfile | str,
    hardware: HardwareProfile | str,
    workload: Workload,
    *,
    weight_dtypes: Sequence[str] = ("bf16", "fp8", "int8", "int4", "nf4"),
    kv_dtypes: Sequence[str] = ("bf16", "fp8"),
    sparsities: Sequence[Sparsity] = ("none", "2:4"),
    method: Method = "rtn",
    deployment: Deployment | None = None,
) -> pd.DataFrame:
    """Memory, speed and expected quality of each compression choice for one workload on one device.

    Speed comes from :func:`costmodel.estimate.estimate` (fewer weight bytes help memory-bound decoding;
    weight-only formats compute in the activation dtype and pay a dequantization cost; 2:4 sparsity halves
    compute-bound matmul time only on devices with sparse tensor cores and is skipped elsewhere). Quality
    is :func:`quality_penalty` for the weight format (``method`` picks the published results it is fitted
    to); KV-cache quantization and 2:4 sparsity have no quality model here, so their rows carry NaN
    quality and stay off the Pareto frontier rather than look free. ``pareto`` marks the rows no other row
    beats on memory per GPU, time per output token and loss increase together.
    """
    from dataclasses import replace

    import pandas as pd

    from costmodel.estimate import estimate
    from costmodel.memory import weight_bytes
    from costmodel.registry import load_hardware, load_model

    m, hw = load_model(model), load_hardware(hardware)
    baseline = weight_bytes(m, weight_dtype="bf16")
    rows = []
    for sparsity in sparsities:
        if sparsity == "2:4" and hw.datasheet.sparsity_speedup is None:
            continue
        for wd in weight_dtypes:
            for kd in kv_dtypes:
                w = replace(workload, weight_dtype=wd, kv_dtype=kd, sparsity=sparsity)
                r = estimate(m, hw, w, deployment)
                cr = compression_ratio(wd, baseline_dtype="bf16")
                unknown = sparsity != "none" or kd != "bf16"
                q = quality_penalty(cr, method=method)
                nan = float("nan")
                rows.append(
                    {
                        "weight_dtype": wd,
                        "kv_dtype": kd,
                        "sparsity": sparsity,
                        "weight_bytes": weight_bytes(m, weight_dtype=wd, sparsity=sparsity),
                        "memory_ratio": baseline / weight_bytes(m, weight_dtype=wd, sparsity=sparsity),
                        "memory_bytes_per_gpu": float(np.max(r.memory_bytes_per_gpu)),
                        "fits": bool(np.all(r.fits)),
                        "ttft_s": float(np.max(r.ttft_s)),
                        "tpot_s": float(np.max(r.tpot_s)),
                        "output_tokens_per_s": float(np.min(r.output_tokens_per_s)),
                        "usd_per_million_output_tokens": float(np.max(r.usd_per_million_output_tokens)),
                        "loss_increase": nan if unknown else float(q.loss_increase),
                        "loss_increase_low": nan if unknown else float(q.low),
                        "loss_increase_high": nan if unknown else float(q.high),
                        "quality_retention": nan if unknown else float(q.quality_retention),
                    }
                )
    columns = [
        "weight_dtype",
        "kv_dtype",
        "sparsity",
        "weight_bytes",
        "memory_ratio",
        "memory_bytes_per_gpu",
        "fits",
        "ttft_s",
        "tpot_s",
        "output_tokens_per_s",
        "usd_per_million_output_tokens",
        "loss_increase",
        "loss_increase_low",
        "loss_increase_high",
        "quality_retention",
    ]
    frame = pd.DataFrame(
        rows, columns=columns
    )  # empty (with its columns) when no choice applies to the device
    known = frame.dropna(subset=["loss_increase"])
    front = pareto(known, minimize=("memory_bytes_per_gpu", "tpot_s", "loss_increase"), maximize=())
    frame["pareto"] = frame.index.isin(front.index)
    return frame
