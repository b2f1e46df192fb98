"""GEMM time: ``C[m, n] = A[m, k] @ B[k, n]`` as a tiled kernel over the device's SMs.

The plain roofline (``costmodel.roofline``) charges ``max(FLOP / peak, bytes / bandwidth)``. A real GEMM
kernel differs from it in three ways this model keeps, each with one named parameter:

1. **Tiles and waves.** The output is cut into ``tile_m x tile_n`` tiles; each SM computes one tile at a
   time, so the kernel runs ``ceil(tiles / SMs)`` waves and a last, partly filled wave costs as much as a
   full one (NVIDIA, "Matrix Multiplication Background User's Guide", sections "Tile Quantization" and
   "Wave Quantization",
   https://docs.nvidia.com/deeplearning/performance/dl-performance-matrix-multiplication/index.html).
   Padding ``m`` and ``n`` up to whole tiles is tile quantization. When there are fewer tiles than SMs,
   libraries split the ``k`` loop over several SMs (split-K / stream-K; CUTLASS,
   https://github.com/NVIDIA/cutlass/blob/main/media/docs/cpp/efficient_gemm.md, "Parallelized
   Reductions"), down to ``min_k_per_split`` elements of ``k`` per SM.
2. **Weight streaming at small m.** Every operand is read once and the output written once:
   ``m k x bytes_a + k n x bytes_b + m n x bytes_out`` at ``bandwidth_fraction`` of the datasheet
   bandwidth, each operand with its own scales (fp8_block: 1 x 128 groups for A, 128 x 128 blocks for
   B). At decode batch sizes this, not the FLOPs, sets the time.
3. **Fixed cost.** ``launch_s``: launch, prologue and epilogue of the kernel, plus, for fp8 / fp4 inputs,
   the separate kernel that quantizes the bf16 activations (its bytes are counted in 2.).

    time = max(host_floor_s, launch_s + max(waves x tile_time x clock, bytes / (bandwidth x bw_fraction)))
    tile_time = 2 tile_m tile_n (k / splits + tile_overhead_k) / (peak / SMs x compute_fraction)
    clock = max(1, busy SM share / power_limited_sm_fraction), per wave (the board's power limit)

Ampere and Ada kernels (cuBLAS, CUTLASS 2.x: ``mma.sync`` and ``cp.async``, no TMA) differ from Hopper and
Blackwell ones in two ways with a parameter each: a CTA computes one tile and exits, so every tile pays its
pipeline fill and epilogue (``tile_overhead_k``; persistent warp-specialised kernels overlap them), and the
warp-level instruction is 16 rows, so few-row GEMMs are tiled by 16 or 32 rather than padded to 64
(``min_tile_m``). ``cache_resident_fraction`` says how much of the L2 a repeated GEMM's operands stay in.

**Repeated calls and the L2.** A benchmark that times one GEMM over and over finds its operands in the L2
cache when they fit, and streams them ``cache_bandwidth_ratio`` times faster; a model's forward pass reads
each layer's weights once per step, so serving switches this off (``costmodel.kernel_times.step_params``).
What must fit is what the caller cycles through between two calls of the same GEMM: a harness that runs
``weight_copies`` layers of the same shape in turn (to defeat the cache) needs that many copies of the
weights resident, beside the shared activations and the output.

``compute_fraction`` is the achieved fraction of the *format's own* dense peak (fp8 peak for fp8 GEMMs,
fp4 for nvfp4): the scaling work of fp8 (per-tensor) and block-scaled fp8 / fp4 (one scale per 128 or 16
elements, applied in the main loop) shows up as a lower fraction, not as a separate term.

Dtype keys: ``bf16``, ``fp16``, ``fp8`` (per-tensor / per-token scales), ``fp8_block`` (DeepSeek-style
1x128 activation and 128x128 weight blocks), ``nvfp4`` (16-element blocks with an fp8 scale), optionally
followed by ``:<engine>`` or ``:<engine>:<kernel>`` (the qualifier does not change the default parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from costmodel.dtypes import activation_bytes_per_element, bytes_per_element
from costmodel.errors import CostmodelError
from costmodel.kernels import cache_bytes, sm_count
from costmodel.specs import HardwareProfile

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Format:
    """A GEMM dtype key's datasheet compute dtype, its operands' bytes per element with their group scales
    (:mod:`costmodel.dtypes`), and whether a kernel quantizes the bf16 activations first."""

    compute: str
    a_bytes: float
    """A, the activations [bytes an element]: scale groups along a token's row
    (:func:`costmodel.dtypes.activation_bytes_per_element`; fp8_block 1 + 4/128, nvfp4 0.5 + 1/16)."""
    b_bytes: float
    """B, the weights [bytes an element]: fp8_block's one fp32 scale per 128 x 128 block, 1 + 4/16384
    (:func:`costmodel.dtypes.bytes_per_element`; DeepSeek-V3 §3.3.2, arXiv:2412.19437), nvfp4's one E4M3
    scale per 16 along k, 0.5625."""
    quantizes: bool


def _gemm_format(compute: str, dtype: str, quantizes: bool) -> _Format:
    return _Format(compute, activation_bytes_per_element(dtype), bytes_per_element(dtype), quantizes)


_FORMATS: dict[str, _Format] = {
    "bf16": _gemm_format("bf16", "bf16", False),
    "fp16": _gemm_format("fp16", "fp16", False),
    "fp8": _gemm_format("fp8", "fp8", True),  # per-tensor / per-token scales: a few bytes, not counted
    "fp8_block": _gemm_format("fp8", "fp8_block", True),
    "nvfp4": _gemm_format("fp4", "nvfp4", True),
}
DTYPES = tuple(_FORMATS)
POOL_BY_ENGINE = True
"""Keys name the engine (``"fp8_block:trtllm:torch_flow"``): ``costmodel.calibrate`` also fits each engine's
kernels of a format pooled (``"fp8_block:trtllm"``), which a kernel the device never ran falls back to
before other engines' (``costmodel.kernels.fallback_keys``): an engine's host-side dispatch, timed in its
fixed cost, comes with its own kernels."""
OUTPUT_BYTES = 2.0
"""Bytes per output element: every table's GEMMs write bf16 [bytes]."""


K_STEP = 64.0
"""Elements of k one main-loop step loads per operand (CUTLASS ``TileShape`` K) [elements]."""
TILE_SIZES = (64.0, 128.0, 256.0)
"""Output tile edges the kernel libraries choose from (CUTLASS / cuBLAS tile shapes) [elements]."""
TILE_AXIS_MAX_ELEMENTS = 1024
"""Largest call (its broadcast shape's element count) whose candidate tiles :func:`time_s` times on one
leading axis, in one array pass [elements]; a larger call times one tile at a time, keeping a running
minimum. Both give the same bits (each tile's arithmetic is elementwise; the minimum of the same values
is the same in any order). The axis multiplies every temporary by the 9-12 candidate tiles: 2.3-3.8x
faster up to 1,000 shapes (the per-call overhead of a Pareto search's or a plan's small passes), but
slower from 1,500-2,000 (1.2-3.7x at 1,500-3,000 on the 2-core review machine, 2026-12-03, once the
temporaries outgrow the caches) and about 10x the memory at 1e6 shapes (a dashboard grid, a calibration
sweep)."""

VLLM_SM89_FP8_KERNEL = "fp8:vllm:CutlassFP8ScaledMMLinearKernel"
"""The parameter key of vLLM's CUTLASS 2.x fp8 GEMM, which on compute capability 8.9 (Ada: L40S) runs the
tile its dispatch names for the shape (:data:`VLLM_SM89_FP8_TILES`) rather than the best one."""

SM89_FP8_DISPATCH_KEYS = (VLLM_SM89_FP8_KERNEL, "fp8:vllm", "fp8")
"""Keys timed with :data:`VLLM_SM89_FP8_TILES` on compute capability 8.9: the kernel's own and its pools
(``costmodel.calibrate`` copies a one-kernel pool's fit: on the L40S the tables time no other fp8 GEMM, and
vLLM's fp8 linear layers run this kernel there)."""

VLLM_SM89_FP8_TILES: tuple[tuple[float, tuple[tuple[float, float, float], ...]], ...] = (
    (16.0, ((8192.0, 16.0, 64.0), (16384.0, 16.0, 128.0), (np.inf, 32.0, 64.0))),
    (32.0, ((8192.0, 32.0, 64.0), (16384.0, 32.0, 128.0), (np.inf, 32.0, 64.0))),
    (64.0, ((8192.0, 64.0, 64.0), (16384.0, 64.0, 128.0), (np.inf, 64.0, 64.0))),
    (128.0, ((8192.0, 64.0, 128.0), (16384.0, 128.0, 128.0), (np.inf, 128.0, 64.0))),
    (256.0, ((4096.0, 64.0, 128.0), (np.inf, 128.0, 128.0))),
    (np.inf, ((4096.0, 128.0, 128.0), (8192.0, 256.0, 128.0), (np.inf, 128.0, 128.0))),
)
"""vLLM's CUTLASS 2.x fp8 tile (``tile_m``, ``tile_n``) on sm89, by m and by n rounded up to a power of two:
``(m up to, ((n_pow2 up to, tile_m, tile_n), ...))``. ``cutlass_gemm_sm89_fp8_dispatch`` buckets m by
``max(16, next_pow_2(m))`` into ``sm89_fp8_config_M16`` / ``M32`` / ``M64`` / ``M128`` / ``M256`` /
``default``, each of which picks its ``TileShape`` by ``next_pow_2(n)``
(https://github.com/vllm-project/vllm/blob/main/csrc/quantization/w8a8/cutlass/scaled_mm_c2x_sm89_fp8_dispatch.cuh;
``M16``'s second bound is written 24576, ``M64``'s first 8196 there, the same for powers of two). Older
vLLM (``csrc/quantization/cutlass_w8a8/``, before the move) bucketed by ``max(32, ...)``, so its 16-row
configuration never ran; the L40S tables (vLLM 0.24) show the 16-row one: at n = k = 1,024 every m <= 16
takes 5.1-5.4 µs and m = 17 9.4 µs. One CTA per tile over the whole k
(no split-K, see :func:`initial_guesses`): a 512 x 32 GEMM runs four 128 x 128 tiles, so in the L40S tables
its time does not change from n = 32 to n = 1,024 (101 µs at k = 12,288), where the best tile of the
model's other kernels would spread it over 32 SMs."""


@dataclass(frozen=True)
class Params:
    """Named parameters of the GEMM model for one (device, dtype)."""

    dtype: str = "bf16"
    """The format key these parameters are for (``DTYPES``, optionally ``'<dtype>:<kernel>'``)."""
    compute_fraction: float = 0.75
    """Achieved fraction of the format's dense peak by a large tile inside a full wave [-]."""
    bandwidth_fraction: float = 0.80
    """Achieved fraction of datasheet memory bandwidth when streaming operands [-]."""
    launch_s: float = 5e-6
    """Fixed cost per GEMM call: launch, prologue, epilogue, host-side dispatch [s]."""
    tile_intensity: float = 64.0
    """``tile_m tile_n / (tile_m + tile_n)`` below which a tile cannot feed its tensor cores at full rate
    (operands per FLOP grow as tiles shrink); 64 is a 128 x 128 tile [elements]."""
    k_step_s: float = 50e-9
    """Shortest time one SM spends per 64-wide step of its k loop, whatever the tile: the latency of the
    operand pipeline, which bounds small tiles that have too few FLOPs per step to hide it [s]."""
    min_k_per_split: float = 256.0
    """Smallest slice of k one SM takes when the k loop is split over idle SMs [elements]."""
    max_splits: float = 16.0
    """Most SMs one output tile's k loop is split over [-]; 1: the kernel never splits k."""
    cache_bandwidth_ratio: float = 1.0
    """Achieved bandwidth when the whole working set (A, B and C) fits in the L2 cache, relative to
    ``bandwidth_fraction`` x datasheet bandwidth: benchmarks that call one GEMM repeatedly find its
    operands in L2; a model's layers in sequence do not. 1: no cache effect [-]."""
    quantize_bandwidth_fraction: float = 0.5
    """fp8 / fp4 only: achieved fraction of bandwidth of the kernel that quantizes the activations [-]."""
    quantize_row_s: float = 0.0
    """fp8 / fp4 only: that kernel's time per activation row (per-token scale), whatever k [s]."""
    tile_overhead_k: float = 0.0
    """Fixed work of one output tile outside its k loop, as the k elements the main loop would cover in
    the same time: filling the operand pipeline before the first MMA and the epilogue that converts and
    stores the tile. A non-persistent kernel (one CTA per tile, CUTLASS 2.x / cuBLAS on Ampere and Ada)
    pays it on every tile; a persistent, warp-specialized kernel (Hopper / Blackwell, TMA) overlaps the
    epilogue with the next tile's main loop. 0: no such cost [elements]."""
    min_tile_m: float = 64.0
    """Smallest tile edge along m the kernels use, tried besides ``TILE_SIZES``: 64 where the tensor-core
    instruction itself is 64 rows (Hopper ``wgmma``, Blackwell ``tcgen05``); down to 16 with Ampere / Ada
    warp-level ``mma.sync`` (m16n8k16), whose libraries tile a few-row GEMM by 16 or 32 rows instead of
    padding it to 64 [elements]."""
    cache_resident_fraction: float = 1.0
    """Share of the L2 cache a repeatedly read working set stays resident in: ``cache_bandwidth_ratio``
    applies to GEMMs whose working set (``weight_copies`` x the weights, the activations and the output) is
    at most this share of ``datasheet.on_chip_cache_mib``. 1: the whole L2 [-]."""
    split_min_k_per_n: float = 0.0
    """Split-K only when ``k >= split_min_k_per_n x n`` [-]: a library heuristic that splits the k loop of
    a few-tile GEMM only when k is long against the output's width. In the L40S tables' bf16
    weight-streaming rows (cuBLAS), the rate implied at 16-row tiles jumps from k = 2,048 at n = 768 and
    from k = 3,072 at n = 1,024, and never up to k = 4,096 at n = 1,536: k about 3 n (the A100's bf16 fit
    takes the corner with 3: held-out median 9.9 -> 9.5 %). 0: split whenever tiles are fewer than SMs
    (``min_k_per_split``, ``max_splits``). Piecewise constant: set by the fit's starting corners
    (:func:`initial_guesses`), not moved by it [-]."""
    power_limited_sm_fraction: float = 1.0
    """Share of the SMs that can run this kernel's main loop at the boost clock within the board's power
    limit: with ``a`` of the SMs busy beyond it the clock, and every tile's rate, falls as
    ``power_limited_sm_fraction / a`` (GPU Boost lowers the clock to hold the power cap; the power drawn
    grows with the SMs switching). A partial last wave runs faster than a full one. In the L40S tables (a
    350 W card boosting to 2,520 MHz) vLLM's fp8 GEMM of m = 512, k = 12,288 runs one 128 x 128 tile per SM
    in 101-104 µs with 4 to 64 SMs busy, 112 µs with 96 and 134 µs with 128. 1: no limit [-]."""
    host_floor_s: float = 0.0
    """Host-side time per call that the GPU work hides behind: the engine's Python dispatch of the op
    (argument checks, scale layout, the quantization and GEMM launches) runs ahead of the GPU, so a call
    repeated back to back takes ``max(host_floor_s, GPU time)``, not their sum (``launch_s`` is the GPU's
    own fixed time, which adds). In the L40S tables vLLM's Triton block-fp8 path takes 290-380 µs for every
    shape whose GEMM is shorter than that (m = 1-4,096 at n, k <= 4,096) and the GEMM's time beyond it. A
    CUDA-graph replay (serving) pays none (:func:`costmodel.kernel_times.step_params`). 0: none [s]."""


BOUNDS: dict[str, tuple[float, float]] = {
    "compute_fraction": (0.05, 1.0),
    "bandwidth_fraction": (0.05, 1.0),
    "launch_s": (0.0, 1e-3),
    "tile_intensity": (8.0, 128.0),
    "min_k_per_split": (64.0, 8192.0),
    "k_step_s": (0.0, 2e-6),
    "cache_bandwidth_ratio": (1.0, 5.0),
    "quantize_bandwidth_fraction": (0.02, 1.0),
    "quantize_row_s": (0.0, 1e-7),
    "tile_overhead_k": (0.0, 2048.0),
    "min_tile_m": (16.0, 64.0),
    "cache_resident_fraction": (0.05, 1.0),
    "host_floor_s": (0.0, 1e-3),
    "power_limited_sm_fraction": (0.2, 1.0),
}


def initial_guesses(hardware: HardwareProfile, key: str) -> list[Params]:
    """Starting points for a fit: the model is piecewise (tiles, waves, splits, the L2 step), so a local
    optimizer is started from a few physically plausible corners and the best fit is kept: Hopper-style
    corners (64-row tiles, the whole L2) and Ampere / Ada-style ones (16-row ``mma.sync`` tiles, a
    per-tile pipeline cost, the whole or half the L2), with split-K, or without it at all
    (``max_splits`` 1): vLLM's CUTLASS 2.x kernels for Ampere / Ada run data-parallel, one CTA per output
    tile over the whole k (``scaled_mm_c2x.cuh`` launches them in ``kGemmSplitKParallel`` mode with one
    slice, and CUTLASS's stream-K swizzle balances only ``kGemm`` launches:
    https://github.com/vllm-project/vllm/blob/main/csrc/quantization/cutlass_w8a8/scaled_mm_c2x.cuh,
    https://github.com/NVIDIA/cutlass/blob/main/include/cutlass/gemm/threadblock/threadblock_swizzle_streamk.h),
    so a GEMM of one or two output tiles with a long k runs on one or two SMs. Two of the Ampere / Ada
    corners also start with split-K gated by ``split_min_k_per_n`` 3 (cuBLAS) and a slower operand
    pipeline (``k_step_s``)."""
    start = default_params(hardware, key)
    hopper = [
        replace(start, min_k_per_split=min_k, k_step_s=step, cache_bandwidth_ratio=1.5)
        for min_k in (256.0, 2048.0)
        for step in (2e-8, 2e-7)
    ]
    ampere = [
        replace(
            start,
            min_k_per_split=256.0,
            max_splits=splits,
            k_step_s=2e-8,
            cache_bandwidth_ratio=1.5,
            cache_resident_fraction=resident,
            min_tile_m=16.0,
            tile_overhead_k=128.0,
        )
        for splits in (start.max_splits, 1.0)
        for resident in (1.0, 0.5)
    ]
    # the same corners with split-K only for k >= 3 n and a slow operand pipeline per CTA (a few-tile
    # GEMM that does not split k then streams at its CTAs' rate)
    gated = [replace(s, split_min_k_per_n=3.0, k_step_s=2e-7) for s in ampere[::2]]
    # host-bound dispatch (vLLM's block-scaled fp8 paths: 50-350 µs per call): the fixed time as a floor the
    # GEMM hides behind rather than added to it; a fit started at 0 cannot find it (no row is sensitive)
    floored = [replace(s, host_floor_s=1e-4, launch_s=5e-6) for s in (hopper[0], ampere[0], ampere[2])]
    return hopper + ampere + gated + floored


def fixed_for(key: str, hardware: HardwareProfile | None = None) -> tuple[str, ...]:
    """Parameters a fit must not move for ``key`` on any ``hardware``:
    the quantization pass does not exist for bf16 / fp16."""
    return () if _format(key).quantizes else ("quantize_bandwidth_fraction", "quantize_row_s")


def dtype_of(key: str) -> str:
    """The dtype part of a parameter key (``'fp8:CutlassFP8ScaledMMLinearKernel'`` -> ``'fp8'``)."""
    return key.split(":", 1)[0]


def default_params(hardware: HardwareProfile, dtype: str) -> Params:
    """Datasheet-only parameters: the profile's matmul and bandwidth fractions and kernel overhead. The
    compute fraction is :meth:`HardwareProfile.default_matmul_fraction` of the format's compute dtype: for
    nvfp4 the measured ``datasheet.sustained_fp4_fraction`` where the profile states it (cuBLASLt's FP4 rate
    at the largest published shape over the fp4 peak), else the profile's ``efficiency`` fraction."""
    fmt = _format(dtype)
    eff = hardware.efficiency
    return Params(
        dtype=dtype,
        compute_fraction=hardware.default_matmul_fraction(fmt.compute),
        bandwidth_fraction=eff.memory_bandwidth_fraction,
        launch_s=eff.kernel_overhead_s,
    )


def _format(key: str) -> _Format:
    dtype = dtype_of(key)
    if dtype not in _FORMATS:
        raise CostmodelError(f"unknown GEMM dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return _FORMATS[dtype]


def peak_flop_per_s(hardware: HardwareProfile, dtype: str) -> float:
    """Dense datasheet peak of the format's tensor cores [FLOP/s]; CostmodelError if not published."""
    compute = _format(dtype).compute
    if compute not in hardware.compute_dtypes:
        raise CostmodelError(
            f"hardware {hardware.name!r} has no {compute!r} peak in its datasheet, needed for {dtype} GEMMs"
        )
    return hardware.peak_flop_per_s(compute)


def operand_bytes(dtype: str, *, m: npt.ArrayLike, n: npt.ArrayLike, k: npt.ArrayLike) -> FloatArray:
    """Bytes a GEMM moves at least once: A and B in the format (+ scales), C in bf16, and the bf16
    activations read once more to quantize them for fp8 / fp4 formats [bytes]."""
    fmt = _format(dtype)
    M, N, K = (np.asarray(x, dtype=np.float64) for x in (m, n, k))
    moved = M * K * fmt.a_bytes + K * N * fmt.b_bytes + M * N * OUTPUT_BYTES
    if fmt.quantizes:
        moved = moved + M * K * 2.0  # bf16 activations read by the quantization kernel
    return np.asarray(moved)


def time_s(
    hardware: HardwareProfile,
    params: Params,
    *,
    m: npt.ArrayLike,
    n: npt.ArrayLike,
    k: npt.ArrayLike,
    weight_copies: npt.ArrayLike = 1.0,
) -> FloatArray:
    """Time of one GEMM ``[m, k] @ [k, n]`` [s] (see the module docstring).

    Parameters
    ----------
    hardware : the device (datasheet peak of the format, bandwidth, SM count).
    params : the model's named parameters for this device and dtype.
    m, n, k : GEMM sizes [elements]; arrays broadcast together.
    weight_copies : distinct ``[k, n]`` weight matrices the caller cycles through between two calls of this
        GEMM, all of which must stay in L2 for ``cache_bandwidth_ratio`` to apply [-]; 1: the same weights
        every call. Only the L2 term reads it.
    """
    M, N, K = (np.asarray(x, dtype=np.float64) for x in (m, n, k))
    fmt = _format(params.dtype)
    sms = sm_count(hardware)
    per_sm = peak_flop_per_s(hardware, params.dtype) * params.compute_fraction / sms
    max_splits = np.clip(K / params.min_k_per_split, 1.0, params.max_splits)
    if params.split_min_k_per_n > 0.0:
        max_splits = np.where(params.split_min_k_per_n * N <= K, max_splits, 1.0)
    bandwidth = hardware.memory_bandwidth_bytes_per_s * params.bandwidth_fraction
    moved = M * K * fmt.a_bytes + K * N * fmt.b_bytes + M * N * OUTPUT_BYTES

    def tiled_s(tile_m: npt.ArrayLike, tile_n: npt.ArrayLike) -> FloatArray:
        """Waves x one tile's time, for output tiles of tile_m x tile_n (scalars or per-row arrays)."""
        tm, tn = np.asarray(tile_m, dtype=np.float64), np.asarray(tile_n, dtype=np.float64)
        feed = np.minimum(1.0, tm * tn / (tm + tn) / params.tile_intensity)
        tiles = np.ceil(M / tm) * np.ceil(N / tn)
        splits = np.clip(sms / tiles, 1.0, max_splits)
        waves = np.ceil(tiles * splits / sms)
        k_split = K / splits
        tile_s = np.maximum(
            2.0 * tm * tn * (k_split + params.tile_overhead_k) / (per_sm * feed),
            (k_split + params.tile_overhead_k) / K_STEP * params.k_step_s,
        )
        # full waves, then the last one's busy SMs, at the clock the power limit allows
        last = (tiles * splits - (waves - 1.0) * sms) / sms
        limit = params.power_limited_sm_fraction
        slow_full, slow_last = max(1.0, 1.0 / limit), np.maximum(1.0, last / limit)
        return np.asarray(tile_s * ((waves - 1.0) * slow_full + slow_last), dtype=np.float64)

    dispatched = dispatched_tiles(hardware, params.dtype, m=M, n=N)
    if dispatched is not None:
        kernel = tiled_s(*dispatched)
    else:
        candidates = [(tm, tn) for tm in sorted({min(params.min_tile_m, TILE_SIZES[0]), *TILE_SIZES})
                      for tn in TILE_SIZES]  # fmt: skip
        shape = np.broadcast(M, N, K)
        if shape.size <= TILE_AXIS_MAX_ELEMENTS:
            # every candidate tile at once, on a leading axis (the same elementwise arithmetic per tile),
            # and the fastest kept: one array pass instead of one per tile
            axes = (-1, *(1,) * shape.ndim)
            tile_m, tile_n = (
                np.array(c, dtype=np.float64).reshape(axes) for c in zip(*candidates, strict=True)
            )
            kernel = np.asarray(np.min(tiled_s(tile_m, tile_n), axis=0), dtype=np.float64)
        else:  # one tile at a time, the fastest so far kept: memory of a few shape-sized temporaries
            kernel = np.full(shape.shape, np.inf)
            for tm, tn in candidates:
                kernel = np.minimum(kernel, tiled_s(tm, tn))
    memory = moved / bandwidth
    cache = cache_bytes(hardware)
    if cache > 0 and params.cache_bandwidth_ratio != 1.0:
        copies = np.maximum(np.asarray(weight_copies, dtype=np.float64), 1.0)
        working_set = moved + (copies - 1.0) * K * N * fmt.b_bytes
        resident = working_set <= cache * params.cache_resident_fraction
        memory = np.where(resident, memory / params.cache_bandwidth_ratio, memory)
    total = params.launch_s + np.maximum(kernel, memory)
    if fmt.quantizes:  # a separate kernel first reads the bf16 activations and writes them quantized
        quantize_bw = hardware.memory_bandwidth_bytes_per_s * params.quantize_bandwidth_fraction
        total = total + np.maximum(M * K * (2.0 + fmt.a_bytes) / quantize_bw, M * params.quantize_row_s)
    return np.asarray(np.maximum(total, params.host_floor_s))


def dispatched_tiles(
    hardware: HardwareProfile, key: str, *, m: npt.ArrayLike, n: npt.ArrayLike
) -> tuple[FloatArray, FloatArray] | None:
    """The (tile_m, tile_n) a kernel's own dispatch runs for each shape [elements], where the model knows
    it (:data:`VLLM_SM89_FP8_TILES`: vLLM's CUTLASS 2.x fp8 on compute capability 8.9); ``None`` where the
    model takes the best tile (cuBLAS, Triton and the other kernels choose by heuristics or autotuning)."""
    capability = hardware.datasheet.cuda_compute_capability
    if key not in SM89_FP8_DISPATCH_KEYS or capability is None or capability.value != "8.9":
        return None
    rows, cols = np.broadcast_arrays(np.asarray(m, dtype=np.float64), np.asarray(n, dtype=np.float64))
    n_pow2 = 2.0 ** np.ceil(np.log2(np.maximum(cols, 1.0)))
    tile_m, tile_n = np.zeros(rows.shape), np.zeros(rows.shape)
    chosen = np.zeros(rows.shape, dtype=bool)
    for m_max, by_n in VLLM_SM89_FP8_TILES:
        for n_max, tm, tn in by_n:
            here = ~chosen & (rows <= m_max) & (n_pow2 <= n_max)
            tile_m[here], tile_n[here] = tm, tn
            chosen |= here
    return tile_m, tile_n


def roofline_bound_s(
    hardware: HardwareProfile, *, m: npt.ArrayLike, n: npt.ArrayLike, k: npt.ArrayLike, dtype: str = "bf16"
) -> FloatArray:
    """The ideal bound: datasheet peak and bandwidth, no tiles, no launch [s]. ``time_s`` never beats it."""
    M, N, K = (np.asarray(x, dtype=np.float64) for x in (m, n, k))
    compute = 2.0 * M * N * K / peak_flop_per_s(hardware, dtype)
    memory = operand_bytes(dtype, m=M, n=N, k=K) / hardware.memory_bandwidth_bytes_per_s
    return np.asarray(np.maximum(compute, memory))
