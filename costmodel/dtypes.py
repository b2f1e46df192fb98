"""Number formats: bits per element and the storage overhead of per-group scales.

One table serves weights, activations and the KV cache. A format's storage is exact integer
arithmetic: ``n`` elements of a format with ``bits = num/den`` and groups of ``g`` elements, each group
carrying ``scale_bits + zero_point_bits`` of metadata, occupy

    ceil((ceil(n * num / den) + ceil(n / g) * (scale_bits + zero_point_bits)) / 8)  bytes.

Assumptions, per format (the defaults a user gets; ``group_size`` can be overridden per call):

- ``fp32``, ``bf16``, ``fp16``: plain IEEE/bfloat storage, no metadata.
- ``fp8`` (E4M3/E5M2): 8 bits; one fp32 scale per tensor by default (negligible, counted as no groups).
- ``int8``: symmetric 8-bit with per-output-channel scales (LLM.int8()/SmoothQuant style); the
  per-channel scales are < 0.1 % of the bytes and are not counted unless ``group_size`` is given.
- ``int4``: GPTQ/AWQ layout, groups of 128 with a 16-bit scale and a 4-bit zero point per group
  (Frantar et al. 2023, "GPTQ"; Lin et al. 2024, "AWQ"): 4 + 20/128 = 4.156 bits per weight.
- ``nf4``: bitsandbytes NormalFloat4 (Dettmers et al. 2023, "QLoRA"), blocks of 64 with one fp32
  absmax each: 4 + 32/64 = 4.5 bits per weight (without double quantization, which brings the
  overhead to about 0.127 bits).
- ``ternary``: BitNet b1.58 weights {-1, 0, +1} (Ma et al. 2024). The information content is
  log2(3) = 1.585 bits; storage packs 5 trits per byte (3^5 = 243 <= 256), i.e. 1.6 bits per weight,
  which is what we count. One scale per tensor (negligible).
- ``binary``: 1 bit per weight (sign), one scale per tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError, UnknownNameError


@dataclass(frozen=True)
class DType:
    """A storage/compute number format.

    ``bits_num / bits_den`` is the exact number of bits per element; ``group_size`` elements share
    ``scale_bits + zero_point_bits`` of metadata (``None``: no per-group metadata is counted).
    ``quantized`` formats store weights that are dequantized to the activation dtype before use.
    """

    name: str
    bits_num: int
    bits_den: int
    quantized: bool
    group_size: int | None = None
    scale_bits: int = 0
    zero_point_bits: int = 0

    @property
    def bits(self) -> float:
        """Bits per element, without group metadata."""
        return self.bits_num / self.bits_den


DTYPES: Final[dict[str, DType]] = {
    d.name: d
    for d in (
        DType("fp32", 32, 1, quantized=False),
        DType("bf16", 16, 1, quantized=False),
        DType("fp16", 16, 1, quantized=False),
        DType("fp8", 8, 1, quantized=True),
        DType("int8", 8, 1, quantized=True),
        DType("int4", 4, 1, quantized=True, group_size=128, scale_bits=16, zero_point_bits=4),
        DType("nf4", 4, 1, quantized=True, group_size=64, scale_bits=32),
        DType("ternary", 8, 5, quantized=True),
        DType("binary", 1, 1, quantized=True),
    )
}
"""Storage formats by name. ``tf32`` is a compute mode of fp32 inputs, so it appears only in hardware
peak tables, never as a storage format."""


def get_dtype(name: str) -> DType:
    """The format called ``name``; an unknown name raises an error listing the known ones."""
    try:
        return DTYPES[name]
    except KeyError:
        raise UnknownNameError("dtype", str(name), DTYPES) from None


MAX_EXACT_BYTES: Final[int] = 2**53
"""Largest byte (or element) count costmodel computes [bytes] (9.0e15, 8 PiB): exact as an integer and as a
float64, far inside int64. Anything larger is refused with a message, never wrapped around."""


def check_exact_bytes(what: str, value: npt.ArrayLike) -> None:
    """Refuse a byte count (computed in float64 alongside the exact integer) past :data:`MAX_EXACT_BYTES`."""
    worst = float(np.max(np.asarray(value, dtype=np.float64), initial=0.0))
    if not worst <= MAX_EXACT_BYTES:  # also catches NaN
        raise CostmodelError(
            f"{what} would be {worst:.3g} bytes, past the {MAX_EXACT_BYTES:.3g} bytes (2**53) costmodel "
            "computes exactly: lower the batch size or the context"
        )


def _element_counts(n_elements: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """``n_elements`` as int64 after checking: whole numbers in [0, 2**53]."""
    try:
        raw = np.asarray(n_elements)
    except (OverflowError, ValueError):
        raw = np.asarray(np.nan)
    if raw.dtype == object:  # Python ints past int64
        raw = np.asarray(np.nan)
    if raw.dtype.kind not in "iuf" or (
        raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (raw == np.round(raw)))
    ):
        raise CostmodelError(f"n_elements must be whole numbers in [0, 2**53], got {n_elements!r}")
    if np.any(raw < 0) or np.any(raw > MAX_EXACT_BYTES):
        bad = raw[(raw < 0) | (raw > MAX_EXACT_BYTES)].flat[0]
        raise CostmodelError(f"n_elements must lie in [0, 2**53] (9.0e15), got {bad}")
    return raw.astype(np.int64)


def storage_bytes(
    n_elements: npt.ArrayLike, dtype: str, *, group_size: int | None = None
) -> npt.NDArray[np.int64]:
    """Exact bytes to store ``n_elements`` values in ``dtype`` [bytes].

    Parameters
    ----------
    n_elements : int or array of int
        Number of stored values [-].
    dtype : str
        A name from :data:`DTYPES`.
    group_size : int, optional
        Elements per scale group [-]; overrides the format's default. Only formats with metadata
        (``scale_bits`` > 0) use it; ``0`` turns group metadata off.
    """
    fmt = get_dtype(dtype)
    n = _element_counts(n_elements)  # <= 2**53, so n * bits_num (<= 32) cannot overflow int64
    payload_bits = -((-n * fmt.bits_num) // fmt.bits_den)  # ceil division, exact in integers
    g = fmt.group_size if group_size is None else group_size
    if g is not None and (isinstance(g, bool) or not isinstance(g, int | np.integer) or g < 0):
        raise CostmodelError(f"group_size must be a whole number >= 0 (0: no group metadata), got {g!r}")
    meta = fmt.scale_bits + fmt.zero_point_bits
    if g and meta:
        payload_bits = payload_bits + (-(-n // g)) * meta
    return -(-payload_bits // 8)


def bytes_per_element(dtype: str, *, group_size: int | None = None) -> float:
    """Average bytes per element including group metadata [bytes], e.g. 0.5195 for int4/g128."""
    fmt = get_dtype(dtype)
    g = fmt.group_size if group_size is None else group_size
    meta = (fmt.scale_bits + fmt.zero_point_bits) / g if g else 0.0
    return (fmt.bits + meta) / 8


def map_dtypes(dtype: str | npt.ArrayLike, per_name: Callable[[str], int]) -> npt.NDArray[np.int64]:
    """Apply ``per_name`` to a dtype name or an array of names, elementwise, calling it once per distinct
    name (so a million-point sweep over a few dtypes costs a few calls)."""
    names = np.asarray(dtype)
    if names.ndim == 0:
        return np.asarray(per_name(str(names)), dtype=np.int64)
    unique, inverse = np.unique(names, return_inverse=True)
    values = np.array([per_name(str(u)) for u in unique], dtype=np.int64)
    return values[inverse].reshape(names.shape)
