"""Number formats: bits per element and every scale and zero point their storage layout carries.

One table serves weights, activations and the KV cache. Storage is exact integer arithmetic. A matrix of
``rows x cols`` values (PyTorch's ``[out_features, in_features]``; the scale groups run along ``cols``,
the reduction axis) in a format of ``bits = num/den`` bits per value occupies

    ceil((ceil(rows * cols * num / den) + n_scales * (scale_bits + zero_point_bits)
          + tensor_scale_bits) / 8)  bytes,

where ``n_scales`` follows the format's granularity:

- ``"none"``: no metadata; ``"tensor"``: only the per-tensor scale (``tensor_scale_bits``);
- ``"channel"``: one scale per row (output channel): ``rows``;
- ``"group"``: one per ``group_size`` consecutive values of a row: ``rows * ceil(cols / g)``;
- ``"block"``: one per ``block_rows x group_size`` tile: ``ceil(rows / block_rows) * ceil(cols / g)``;
- ``"flat"``: one per ``group_size`` values of the flattened tensor: ``ceil(rows * cols / g)``.

A 1-D vector of ``n`` values (:func:`storage_bytes`: a KV-cache row, an activation row) counts its
``"group"``/``"block"``/``"flat"`` groups along ``n``; per-channel and per-tensor scales belong to a
weight matrix (:func:`matrix_bytes`), and a KV cache's per-layer scales (vLLM's ``k_scale``/``v_scale``)
are attention-layer parameters of a few bytes, not cache.

The formats (the group size of ``int4``, ``int8``, ``int4_tinygemm``, ``w4a8`` and ``nf4`` can be set by
a suffix, e.g. ``"int4_g32"``, or the ``group_size`` argument):

- ``fp32``, ``bf16``, ``fp16``: plain IEEE/bfloat storage.
- ``fp8``: E4M3 with one fp32 scale per tensor (per-tensor static scaling, e.g. the FP8 checkpoints of
  NVIDIA ModelOpt; https://docs.nvidia.com/deeplearning/transformer-engine/user-guide/examples/fp8_primer.html).
- ``fp8_channel``: E4M3 with one fp32 scale per output channel (vLLM's "channel" FP8 scheme).
- ``fp8_block``: E4M3 with one fp32 scale per 128 x 128 weight tile and per 1 x 128 activation group
  (DeepSeek-V3 §3.3.2, arXiv:2412.19437; ``weight_block_size: [128, 128]`` and fp32 ``weight_scale_inv``
  in its checkpoint).
- ``int8``: weight-only symmetric int8 with one bf16 scale per output channel (gpt-fast's
  ``WeightOnlyInt8Linear``; torchao ``int8_weight_only``); ``int8_gN``: a bf16 scale per N.
- ``int4``: GPTQ/AWQ layout, groups of 128 with a 16-bit scale and a 4-bit zero point per group
  (Frantar et al. 2023, "GPTQ"; Lin et al. 2024, "AWQ"): 4 + 20/128 = 4.156 bits per weight.
- ``int4_tinygemm``: gpt-fast's int4 (PyTorch ``_weight_int4pack_mm``): groups of 128 (32/64/256 by
  suffix) with a bf16 scale and a bf16 zero point each (``scales_and_zeros`` in gpt-fast's quantize.py).
- ``int4_sym``: compressed-tensors' ``pack-quantized`` symmetric int4 (W4A16, Marlin kernels): groups
  of 128 (or by suffix; Kimi-K2.5's experts use 32) with a bf16 ``weight_scale`` each, no zero point, and
  the int64[2] ``weight_shape`` each tensor carries (counted as 128 bits of per-tensor metadata;
  https://github.com/neuralmagic/compressed-tensors, ``PackedQuantizationCompressor``).
- ``w4a8``: int4 weights in groups of 128 with a 16-bit scale, no zero point, computed with fp8
  activations (TensorRT-LLM's W4A8-AWQ).
- ``nf4``: bitsandbytes NormalFloat4 (Dettmers et al. 2023, "QLoRA"), blocks of 64 of the flattened tensor
  with one fp32 absmax each: 4 + 32/64 = 4.5 bits per weight (no double quantization).
- ``mxfp4``: OCP Microscaling MXFP4: E2M1 values, one E8M0 (8-bit) scale per 32 along a row
  (OCP MX Formats Specification v1.0, §5; https://www.opencompute.org/documents/ocp-microscaling-formats-mx-v1-0-spec-final-pdf):
  4.25 bits per value. gpt-oss stores its experts so (``*_blocks`` uint8 and ``*_scales`` uint8).
- ``nvfp4``: NVIDIA NVFP4: E2M1 values, one FP8 E4M3 scale per 16 along a row and one fp32 scale per
  tensor (https://developer.nvidia.com/blog/introducing-nvfp4-for-efficient-and-accurate-low-precision-inference/;
  ``weight_scale`` and ``weight_scale_2`` in ModelOpt checkpoints): 4.5 bits per value + 4 bytes.
- ``mxfp8``: OCP Microscaling MXFP8: E4M3 values, one E8M0 scale per 32 along a row (OCP MX Formats
  Specification v1.0, §5): 8.25 bits per value. The activation format of Blackwell's MXFP4 x MXFP8 MoE
  kernels (TensorRT-LLM's ``W4A8_MXFP4_MXFP8``).
- ``ternary``: BitNet b1.58 weights {-1, 0, +1} (Ma et al. 2024), 5 trits per byte (3^5 = 243 <= 256),
  1.6 bits per weight; its single per-tensor scale is not counted.
- ``binary``: 1 bit per weight (sign); its single per-tensor scale is not counted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError, UnknownNameError

Granularity = Literal["none", "tensor", "channel", "group", "block", "flat"]


@dataclass(frozen=True)
class DType:
    """A storage/compute number format.

    ``bits_num / bits_den`` is the exact number of bits per element. Metadata: ``scale_bits +
    zero_point_bits`` per scale group (laid out by ``granularity``, see the module docstring), plus
    ``tensor_scale_bits`` once per tensor. ``quantized`` formats store weights that a kernel dequantizes
    (or runs natively, if the device has ``compute_dtype`` tensor cores); ``compute_dtype`` is the
    tensor-core input format a kernel for this format uses (None: the activation dtype, weight-only).
    """

    name: str
    bits_num: int
    bits_den: int
    quantized: bool
    group_size: int | None = None
    scale_bits: int = 0
    zero_point_bits: int = 0
    granularity: Granularity = "none"
    block_rows: int = 1
    tensor_scale_bits: int = 0
    compute_dtype: str | None = None
    variable_group: bool = False

    @property
    def bits(self) -> float:
        """Bits per element, without metadata."""
        return self.bits_num / self.bits_den


DTYPES: Final[dict[str, DType]] = {
    d.name: d
    for d in (
        DType("fp32", 32, 1, quantized=False),
        DType("bf16", 16, 1, quantized=False),
        DType("fp16", 16, 1, quantized=False),
        DType("fp8", 8, 1, quantized=True, granularity="tensor", tensor_scale_bits=32, compute_dtype="fp8"),
        DType("fp8_channel", 8, 1, quantized=True, granularity="channel", scale_bits=32, compute_dtype="fp8"),
        DType(
            "fp8_block",
            8,
            1,
            quantized=True,
            granularity="block",
            group_size=128,
            block_rows=128,
            scale_bits=32,
            compute_dtype="fp8",
        ),
        DType("int8", 8, 1, quantized=True, granularity="channel", scale_bits=16, variable_group=True),
        DType(
            "int4",
            4,
            1,
            quantized=True,
            granularity="group",
            group_size=128,
            scale_bits=16,
            zero_point_bits=4,
            variable_group=True,
        ),
        DType(
            "int4_tinygemm",
            4,
            1,
            quantized=True,
            granularity="group",
            group_size=128,
            scale_bits=16,
            zero_point_bits=16,
            variable_group=True,
        ),
        DType(
            "int4_sym",
            4,
            1,
            quantized=True,
            granularity="group",
            group_size=128,
            scale_bits=16,
            tensor_scale_bits=128,
            variable_group=True,
        ),
        DType(
            "w4a8",
            4,
            1,
            quantized=True,
            granularity="group",
            group_size=128,
            scale_bits=16,
            compute_dtype="fp8",
            variable_group=True,
        ),
        DType(
            "nf4", 4, 1, quantized=True, granularity="flat", group_size=64, scale_bits=32, variable_group=True
        ),
        DType(
            "mxfp4",
            4,
            1,
            quantized=True,
            granularity="group",
            group_size=32,
            scale_bits=8,
            compute_dtype="fp4",
        ),
        DType(
            "mxfp8",
            8,
            1,
            quantized=True,
            granularity="group",
            group_size=32,
            scale_bits=8,
            compute_dtype="fp8",
        ),
        DType(
            "nvfp4",
            4,
            1,
            quantized=True,
            granularity="group",
            group_size=16,
            scale_bits=8,
            tensor_scale_bits=32,
            compute_dtype="fp4",
        ),
        DType("ternary", 8, 5, quantized=True),
        DType("binary", 1, 1, quantized=True),
    )
}
"""Storage formats by name. ``tf32`` is a compute mode of fp32 inputs, so it appears only in hardware
peak tables, never as a storage format. Formats with a settable group size also exist as
``NAME_gN`` (e.g. ``int4_g32``), made on demand by :func:`get_dtype`."""

_GROUP_SUFFIX = re.compile(r"^(?P<base>[a-z0-9_]+?)_g(?P<g>[1-9][0-9]*)$")


def get_dtype(name: str) -> DType:
    """The format called ``name`` (``NAME_gN`` sets the group size of a format that has one); an unknown
    name raises an error listing the known ones."""
    fmt = DTYPES.get(name)
    if fmt is not None:
        return fmt
    match = _GROUP_SUFFIX.match(str(name))
    if match and match["base"] in DTYPES and DTYPES[match["base"]].variable_group:
        base = DTYPES[match["base"]]
        granularity: Granularity = "flat" if base.granularity == "flat" else "group"
        return replace(base, name=name, group_size=int(match["g"]), granularity=granularity)
    variable = [n for n, d in DTYPES.items() if d.variable_group]
    known = [*DTYPES, *(f"{n}_g32" for n in variable), *(f"{n}_g64" for n in variable)]
    raise UnknownNameError("dtype", str(name), known) from None


def _group(fmt: DType, group_size: int | None) -> tuple[Granularity, int]:
    """Effective granularity and group size after a ``group_size`` override (0: no group metadata)."""
    if group_size is None:
        return fmt.granularity, fmt.group_size or 0
    if group_size == 0:
        return "none", 0
    if fmt.granularity in ("none", "tensor") or not (fmt.scale_bits + fmt.zero_point_bits):
        return fmt.granularity, 0  # no per-group metadata to resize
    return (
        "flat" if fmt.granularity == "flat" else "block" if fmt.granularity == "block" else "group"
    ), group_size


def _ceil_div(a: npt.NDArray[np.int64], b: int) -> npt.NDArray[np.int64]:
    return np.asarray(-(-a // b), dtype=np.int64)


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
    """Exact bytes to store a vector of ``n_elements`` values in ``dtype`` [bytes].

    Parameters
    ----------
    n_elements : int or array of int
        Number of stored values [-].
    dtype : str
        A name from :data:`DTYPES` (or ``NAME_gN``).
    group_size : int, optional
        Elements per scale group [-]; overrides the format's default. ``0`` turns group metadata off.

    Group, block and flat groups run along the vector; per-channel and per-tensor scales are not
    counted here (they belong to a weight matrix: :func:`matrix_bytes`).
    """
    fmt = get_dtype(dtype)
    n = _element_counts(n_elements)  # <= 2**53, so n * bits_num (<= 32) cannot overflow int64
    if group_size is not None and (
        isinstance(group_size, bool) or not isinstance(group_size, int | np.integer) or group_size < 0
    ):
        raise CostmodelError(
            f"group_size must be a whole number >= 0 (0: no group metadata), got {group_size!r}"
        )
    bits = _ceil_div(n * fmt.bits_num, fmt.bits_den)  # exact in integers
    granularity, g = _group(fmt, group_size)
    meta = fmt.scale_bits + fmt.zero_point_bits
    if g and meta and granularity in ("group", "block", "flat"):
        bits = bits + _ceil_div(n, g) * meta
    return _ceil_div(bits, 8)


def matrix_bytes(shape: Sequence[int], dtype: str, *, group_size: int | None = None) -> int:
    """Exact bytes of one weight tensor of ``shape`` stored in ``dtype``, every scale included [bytes].

    ``shape`` is PyTorch's: ``[out_features, in_features]`` for a linear weight, scale groups along the
    last axis; a 1-D tensor is one row. Leading axes beyond two multiply the rows (stacked experts).
    """
    fmt = get_dtype(dtype)
    cols = int(shape[-1]) if shape else 1
    rows = math.prod(int(s) for s in shape[:-1])
    bits = -(-(rows * cols * fmt.bits_num) // fmt.bits_den)
    granularity, g = _group(fmt, group_size)
    meta = fmt.scale_bits + fmt.zero_point_bits
    if meta and granularity == "channel":
        bits += rows * meta
    elif meta and g and granularity == "group":
        bits += rows * -(-cols // g) * meta
    elif meta and g and granularity == "block":
        bits += -(-rows // fmt.block_rows) * -(-cols // g) * meta
    elif meta and g and granularity == "flat":
        bits += -(-(rows * cols) // g) * meta
    if granularity != "none":
        bits += fmt.tensor_scale_bits
    return -(-bits // 8)


def bytes_per_element(dtype: str, *, group_size: int | None = None) -> float:
    """Average bytes per element including group metadata [bytes], e.g. 0.5195 for int4/g128.

    Per-channel and per-tensor scales, whose share depends on the matrix shape, are not included."""
    fmt = get_dtype(dtype)
    granularity, g = _group(fmt, group_size)
    rows = fmt.block_rows if granularity == "block" else 1
    per_group = granularity in ("group", "block", "flat") and g
    meta = (fmt.scale_bits + fmt.zero_point_bits) / (g * rows) if per_group else 0.0
    return (fmt.bits + meta) / 8


def activation_bytes_per_element(dtype: str) -> float:
    """Average bytes per element of activations stored in ``dtype``, their group scales included [bytes]:
    the rate :func:`storage_bytes` charges a token's row, whose scale groups run along the row, 1 x
    ``group_size`` (an activation has no 128-row blocks: DeepSeek-V3 §3.3.2, arXiv:2412.19437, scales its
    activations per 1 x 128 group and only its weights per 128 x 128 block). fp8_block 1 + 4/128 = 1.03125,
    nvfp4 0.5 + 1/16 = 0.5625 (NVIDIA's NVFP4: one E4M3 scale per 16 values), mxfp4 0.5 + 1/32 = 0.53125
    and mxfp8 1 + 1/32 (OCP MX v1.0 §5: one E8M0 scale per 32). Per-tensor scales (fp8's, nvfp4's fp32
    second-level scale) are a few bytes a tensor and not included, as in :func:`bytes_per_element`."""
    fmt = get_dtype(dtype)
    granularity, g = _group(fmt, None)
    per_group = granularity in ("group", "block", "flat") and g
    meta = (fmt.scale_bits + fmt.zero_point_bits) / g if per_group else 0.0
    return (fmt.bits + meta) / 8


def matmul_compute_dtype(activation_dtype: str) -> str:
    """The tensor-core input format of a matmul whose activations are in ``activation_dtype``: the format's
    own compute dtype for quantized activations (``fp8`` / ``fp8_block`` / ``mxfp8`` -> ``"fp8"``,
    ``nvfp4`` / ``mxfp4`` -> ``"fp4"``), else its name (``bf16``, ``fp16``, ``fp32``, ``int8``). The
    datasheet peak of this name is the one the matmul runs at."""
    fmt = get_dtype(activation_dtype)
    if not fmt.quantized:
        return fmt.name
    return fmt.compute_dtype or fmt.name.split("_g")[0]


def runs_natively(weight_dtype: str, activation_dtype: str) -> bool:
    """Whether a kernel multiplies ``weight_dtype`` weights by ``activation_dtype`` inputs on the tensor cores
    without first converting the weights: the weights' compute format is the activations' (fp8 x fp8, fp4 x
    fp4), or an MX weight format in Blackwell's mixed fp8/fp6/fp4 MMA (MXFP4 weights x fp8 inputs run at the
    fp8 rate, TensorRT-LLM's ``UTCQMMA``: https://github.com/NVIDIA/TensorRT-LLM/blob/main/examples/models/core/gpt_oss/README.md).
    An unquantized weight runs natively in its own format. Otherwise the kernel dequantizes the weights to
    the activations' format (weight-only: int4 / MXFP4 / fp8 weights with bf16 inputs)."""
    weight = get_dtype(weight_dtype)
    if not weight.quantized:
        return True
    compute = matmul_compute_dtype(activation_dtype)
    if weight.compute_dtype == compute:
        return True
    return weight.name == "mxfp4" and compute == "fp8"


def map_dtypes(dtype: str | npt.ArrayLike, per_name: Callable[[str], int]) -> npt.NDArray[np.int64]:
    """Apply ``per_name`` to a dtype name or an array of names, elementwise, calling it once per distinct
    name (so a million-point sweep over a few dtypes costs a few calls)."""
    names = np.asarray(dtype)
    if names.ndim == 0:
        return np.asarray(per_name(str(names)), dtype=np.int64)
    unique, inverse = np.unique(names, return_inverse=True)
    values = np.array([per_name(str(u)) for u in unique], dtype=np.int64)
    return values[inverse].reshape(names.shape)
