"""Fit a kernel family's named parameters to measured kernel times.

A library feature: the public measurement tables, a user's own benchmark files and the torch
micro-benchmarks in ``validation/`` all feed this one fitter. What is fitted is the few parameters a
family module lists in ``BOUNDS`` (see ``costmodel.kernels``); everything else keeps its datasheet value.

The objective is the relative error of the prediction, as a log ratio ``log(predicted / measured)``, so a
1 µs kernel and a 10 ms kernel weigh the same, with a soft-L1 loss so a few anomalous rows (a measurement
hiccup, a kernel the model does not describe) cannot drag the parameters. Which rows are fitted is the
caller's choice and must be made by a rule that never looks at the error (e.g. a hash of the shape); the
rest are held out and reported separately.

scipy is imported on first use so that ``import costmodel`` stays light.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from costmodel.dtypes import DTYPES
from costmodel.errors import CostmodelError
from costmodel.kernels import family_name, numeric_fields
from costmodel.specs import CalibrationRecord, HardwareProfile, KernelCalibration

FloatArray = npt.NDArray[np.float64]

F_SCALE = 0.1
"""Residual (log ratio) beyond which the soft-L1 loss grows linearly: errors past ~10 % count less."""


def fit_params(
    family: ModuleType,
    hardware: HardwareProfile,
    dtype: str,
    measured_s: npt.ArrayLike,
    shapes: Mapping[str, Any],
    *,
    initial: Any = None,
    fixed: tuple[str, ...] = (),
    loss: str | None = None,
) -> Any:
    """Least-squares fit of ``family.Params`` to measured kernel times.

    Parameters
    ----------
    family : a module of ``costmodel.kernels`` (``Params``, ``BOUNDS``, ``default_params``, ``time_s``).
    hardware : the device the measurements were taken on.
    dtype : the family's dtype key the parameters are for (``"bf16"``, ``"fp8"``, ...).
    measured_s : measured kernel times [s], one per row.
    shapes : keyword arrays for ``family.time_s``, one entry per row (or broadcastable).
    initial : starting parameters, or a list of them (each is fitted, the lowest cost is kept); default
        ``family.initial_guesses(hardware, dtype)`` where the family defines it, else
        ``family.default_params(hardware, dtype)``.
    fixed : names in ``BOUNDS`` to keep at their starting value; default ``family.fixed_for(dtype,
        hardware)`` where the family defines it (parameters the key's kernels do not have), plus, always,
        ``family.fixed_for_rows(dtype, shapes)`` where the family defines it (parameters these rows cannot
        identify, e.g. a ratio between two kinds of rows when only one kind is present).
    loss : ``"soft_l1"`` or ``"cauchy"`` (scipy's robust losses, both with ``f_scale=F_SCALE``); default
        ``family.FIT_LOSS`` where the family defines it, else ``"soft_l1"``. Cauchy's pull fades for residuals
        far past ``F_SCALE``, for families whose tables hold whole series measured several times slower
        than their neighbours.

    Returns the fitted ``Params``. Raises ``CostmodelError`` when there is nothing to fit.
    """
    from scipy.optimize import least_squares

    measured = np.asarray(measured_s, dtype=np.float64)
    keep = np.isfinite(measured) & (measured > 0)
    if not keep.any():
        raise CostmodelError(f"no positive, finite measured times to fit {family.__name__} for {dtype!r}")
    if initial is None:
        guesses = getattr(family, "initial_guesses", None)
        initial = guesses(hardware, dtype) if guesses else family.default_params(hardware, dtype)
    if not fixed and hasattr(family, "fixed_for"):
        fixed = tuple(family.fixed_for(dtype, hardware))
    if hasattr(family, "fixed_for_rows"):  # parameters the fitted rows cannot tell apart from the others
        fixed = (*fixed, *family.fixed_for_rows(dtype, {k: _rows(v, keep) for k, v in shapes.items()}))
    loss = loss or getattr(family, "FIT_LOSS", "soft_l1")
    if loss not in ROBUST_LOSSES:
        raise CostmodelError(f"fit loss {loss!r} is not known: use one of {', '.join(ROBUST_LOSSES)}")
    starts = list(initial) if isinstance(initial, list | tuple) else [initial]
    names = [name for name in family.BOUNDS if name not in fixed]
    if not names:
        return starts[0]
    low = np.array([family.BOUNDS[n][0] for n in names], dtype=np.float64)
    high = np.array([family.BOUNDS[n][1] for n in names], dtype=np.float64)
    rows = {k: _rows(v, keep) for k, v in shapes.items()}
    log_measured = np.log(measured[keep])
    best: tuple[float, Any] | None = None
    for start in starts:

        def residual(x: FloatArray, start: Any = start) -> FloatArray:
            params = dataclasses.replace(start, **dict(zip(names, x.tolist(), strict=True)))
            predicted = np.broadcast_to(family.time_s(hardware, params, **rows), log_measured.shape)
            return np.asarray(np.log(np.maximum(predicted, 1e-30)) - log_measured, dtype=np.float64)

        x0 = np.clip([float(getattr(start, n)) for n in names], low, high)
        # A parameter no row is sensitive to at the start (a compute fraction when every row starts memory
        # bound, a softmax rate in a family's decode op) keeps its start: least_squares stalls on a zero
        # Jacobian column, returning the start for every parameter.
        base = residual(x0)
        sensitive = np.array(
            [np.abs(residual(_nudge(x0, i, low, high)) - base).max() > 1e-12 for i in range(len(names))]
        )
        if not sensitive.any():
            candidate = (robust_cost(base, loss), start)  # the cost least_squares reports, to compare starts
        else:

            def moved(xs: FloatArray, x0: FloatArray = x0, sensitive: Any = sensitive) -> FloatArray:
                full = x0.copy()
                full[sensitive] = xs
                return full

            def sub_residual(xs: FloatArray, residual: Any = residual, moved: Any = moved) -> FloatArray:
                return np.asarray(residual(moved(xs)), dtype=np.float64)

            # scale steps by the parameters' own magnitudes (they span 1e-7 s to 1e13 /s)
            x_scale = np.maximum(np.abs(x0[sensitive]), 1e-12)
            result = least_squares(
                sub_residual,
                x0[sensitive],
                bounds=(low[sensitive], high[sensitive]),
                loss=loss,
                f_scale=F_SCALE,
                x_scale=x_scale,
            )
            fitted = moved(result.x)
            candidate = (
                float(result.cost),
                dataclasses.replace(start, **dict(zip(names, fitted.tolist(), strict=True))),
            )
        if best is None or candidate[0] < best[0]:
            best = candidate
    assert best is not None
    return best[1]


ROBUST_LOSSES = ("soft_l1", "cauchy")
"""Losses ``fit_params`` accepts (scipy.optimize.least_squares' names)."""


def robust_cost(residual: FloatArray, loss: str = "soft_l1") -> float:
    """least_squares' cost of ``residual`` with ``loss`` and ``f_scale=F_SCALE``."""
    z = (residual / F_SCALE) ** 2
    rho = np.log1p(z) if loss == "cauchy" else 2.0 * (np.sqrt(1.0 + z) - 1.0)
    return float(0.5 * F_SCALE**2 * np.sum(rho))


def _nudge(x: FloatArray, i: int, low: FloatArray, high: FloatArray) -> FloatArray:
    """``x`` with its ``i``-th entry moved by 1 % inside the bounds (1 % of the bounds' width from 0, so a
    parameter that starts at zero, like an extra per-row cost, can still show that it matters)."""
    moved = x.copy()
    up = x[i] * 1.01 if x[i] != 0 else 0.01 * (high[i] - low[i]) if np.isfinite(high[i] - low[i]) else 1e-12
    moved[i] = up if up <= high[i] else x[i] - (up - x[i])
    moved[i] = max(moved[i], low[i])
    return moved


def _rows(value: Any, keep: npt.NDArray[np.bool_]) -> Any:
    """Select the kept rows of a per-row array; scalars and non-row values pass through."""
    array = np.asarray(value)
    return array[keep] if array.ndim == 1 and array.shape[0] == keep.shape[0] else value


# ----------------------------------------------------------------------------------------------------
# Calibrated profiles from a measurement set
# ----------------------------------------------------------------------------------------------------

TRANSFER_RULE: dict[str, str] = {
    "h200": "h100-sxm",  # same GH100 die and SM count, more and faster HBM
    "h100-pcie": "h100-sxm",  # same GH100 die, fewer SMs, HBM2e
    "a100-40gb": "a100-80gb",  # same GA100 die
    "gb200": "b200",  # same Blackwell GPU, Grace-attached
    "b300": "b200",  # Blackwell Ultra
    "gb300": "b200",
    "rtx-pro-6000-server": "l40s",  # GDDR PCIe server cards whose tensor cores take no wgmma/tcgen05
}
"""Device without measurements -> the measured device whose fitted parameters it reuses.

The rule: the nearest measured device of the same architecture (same SM generation and kernel libraries),
else the same product class (:func:`nearest_measured`; this table states its result for the devices measured
today, and tests/test_transfer_overlays.py checks they agree). Only dimensionless fractions, tile shapes and
fixed times are transferred; each device keeps its own datasheet (peak per format, bandwidth, SM count),
which the kernel models scale by; the L2's rate is carried as an on-die rate per SM, not as a multiple of
the source's memory bandwidth (:data:`ON_CHIP_CACHE_PARAMS`), and a decode's or a GEMM's L2 credit for a set
found again on the next repetition, onto a smaller L2, as no more streaming time than that L2's share of the
source's can save (:func:`carried_residency_ratio`); a device keeps its own defaults for the
collective parameters that describe a link its GPUs do not use, takes the collectives' link round-trip
times in proportion to its published small-message latency where both devices state one
(:func:`carried_latency_scale`), a kernel's fixed launch times in proportion to the source's clock over its
own where both state one (:func:`carried_clock_scale`), an engine's default-tile slowdown by the two
devices' tensor rates per SM per clock (:func:`carried_untuned_ratio`), a GEMM's full-occupancy share of
the tensor peak by the two devices' measured sustained shares where both state one
(:func:`carry_sustained_share`), no parameter of a decode key whose engine picks another kernel on the
target's compute capability (``generation_attention.capability_kernel``: TensorRT-LLM's trtllm-gen from
SM 100, XQA below; the key takes the target's datasheet defaults), and no key of a kernel the source's
engine runs only where its default kernel cannot, unless it shares the source's compute capability major
version (:data:`costmodel.kernels.SHAPE_FALLBACK_KERNELS`; :func:`transferable`). A kernel the source never
ran (no key at any level of :func:`costmodel.kernels.fallback_keys`) takes the target's datasheet defaults,
but for the parameters of the die a family names (``DIE_PARAMS``: decode attention's L2 rate), which take
their median over the source's carried keys of the family, and those of one CTA of the kernel's code
(``CTA_PARAMS``), which take their median over the source's keys of the same kernel under another format or
variant, and the times of a call that is one backend's sequence for every format (``CALL_PARAMS`` of the
calls ``SAME_CALL_KERNELS`` names: TensorRT-LLM's CUTLASS MoE), which take their median over the source's
keys of the same call under other formats (:func:`costmodel.kernels.params_for`). A device that has
measurements of its own is never transferred onto.
"""


def nearest_measured(target: HardwareProfile, measured: Sequence[HardwareProfile]) -> str | None:
    """The device of ``measured`` whose fit ``target`` takes by :data:`TRANSFER_RULE`'s rule, or ``None``.

    Level by level, the first level with any candidate decides: the same CUDA compute capability (the same
    SM, and the kernels the engines build and pick for it: H200 and H100 PCIe 9.0 <- H100 SXM 9.0), else the
    same major version (the same architecture: B300 10.3 <- B200 10.0), else GPUs that meet over the same kind
    of link (the product class: PCIe server cards). ``None`` where no level has one, or where the deciding
    level has several (the rule then names no single device)."""

    def capability(hw: HardwareProfile) -> str | None:
        entry = hw.datasheet.cuda_compute_capability
        return None if entry is None else entry.value

    levels: list[Callable[[HardwareProfile], bool]] = [
        lambda m: capability(target) is not None and capability(m) == capability(target),
        lambda m: (
            capability(target) is not None
            and capability(m) is not None
            and str(capability(m)).split(".")[0] == str(capability(target)).split(".")[0]
        ),
        lambda m: m.datasheet.intra_node_link == target.datasheet.intra_node_link,
    ]
    for matches in levels:
        found = sorted({m.name for m in measured if m.name != target.name and matches(m)})
        if found:
            return found[0] if len(found) == 1 else None
    return None


ON_CHIP_CACHE_PARAMS: dict[str, str] = {
    "gemm": "cache_bandwidth_ratio",
    "context_attention": "cache_bandwidth_ratio",
    "generation_attention": "cache_bandwidth_ratio",
    "mla": "cache_bandwidth_ratio",
    "moe": "cache_speedup",
}
"""Family -> its fitted rate of L2-resident data over the device's memory bandwidth [-].

The L2 is on the die, the memory beside it: an H200 has the H100's die and SMs with 1.43 x the HBM
bandwidth, so its L2 streams at the H100's rate, not at 1.43 x it. :func:`carried_cache_ratio` carries the
fitted ratio as the source's L2 rate per SM (``ratio x bandwidth / SMs``; L2 slices and crossbar ports grow
with the SMs at about equal clocks) to the target's SMs, over the target's own bandwidth."""


def carried_cache_ratio(ratio: float, source: HardwareProfile, target: HardwareProfile) -> float | None:
    """The target's L2-over-memory rate ratio [-] for ``source``'s fitted ``ratio``: the source's L2 rate
    per SM (``ratio x source bandwidth / source SMs``) times the target's SMs, over the target's bandwidth,
    and never below 1 (data the L2 holds never streams slower than from memory). ``None`` where either
    datasheet lacks the L2 size (the source's fit never saw its L2, or the target's models ignore it) or the
    SM count: the target keeps its own default."""
    from costmodel.kernels import cache_bytes

    counts = [hw.datasheet.compute_units for hw in (source, target)]
    if cache_bytes(source) <= 0 or cache_bytes(target) <= 0 or counts[0] is None or counts[1] is None:
        return None
    rate_per_sm = ratio * source.memory_bandwidth_bytes_per_s / counts[0].value
    return max(1.0, rate_per_sm * counts[1].value / target.memory_bandwidth_bytes_per_s)


RESIDENCY_CREDIT: dict[str, tuple[str, ...] | None] = {
    "generation_attention": None,
    "gemm": None,
    "mla": ("gen", "gen_module"),
}
"""Family -> the operations of its keys (``None``: every key; MLA: the decode and its module, not the
prefill or the absorb matmuls) whose fitted L2 ratio (:data:`ON_CHIP_CACHE_PARAMS`) is a credit for a
working set the timed call streams once and finds again in L2 on its next repetition, decided by one step at
the L2 size (decode attention's KV cache, MLA decode's latent cache by the same rule; a GEMM's operands over
the harness's copies). These carry by :func:`carried_residency_ratio` (:func:`residency_credit`), not by the
L2's rate alone.

The per-SM rule of :func:`carried_cache_ratio` reads a fitted ratio as the die's L2 rate. That holds where a
kernel re-reads resident operands at the L2's rate: the MLA absorb matmuls (16.8 MB of weights, far under
either L2) fit 4.9 on the H100 and 2.0 on the B200, 125 and 106 GB/s per SM. It does not hold for decode
attention: the same TensorRT-LLM bf16 kernel fits 1.0 on the H100 and 1.8 on the B200, 25 and 98 GB/s per
SM, and the decode tables show no L2 step at the H100's 50 MiB (docs/validation.md, "Session 17"): the ratio
is mostly how much of the source's resident rows its L2 kept, which the per-SM rule multiplied by 2.1 onto
the H100 (the carried form is an empirical fit to that evidence). MoE keeps the per-SM rule: its hit share
is a curve of the working set over the target's own L2 (``cache_fraction``, ``cache_sharpness``), so its
``cache_speedup`` is a rate; so do context attention and MLA's prefill and absorb matmuls (their resident
operands are re-read within a call)."""


def residency_credit(family: str, key: str) -> bool:
    """Whether ``key``'s fitted L2 ratio in ``family`` is a residency credit (:data:`RESIDENCY_CREDIT`): a
    family listed with ``None``, or one of its listed operations (the key's second ``:``-separated part,
    ``trtllm.default:gen:bf16`` -> ``gen``)."""
    if family not in RESIDENCY_CREDIT:
        return False
    operations = RESIDENCY_CREDIT[family]
    parts = key.split(":")
    return operations is None or (len(parts) > 2 and parts[1] in operations)


def carried_residency_ratio(ratio: float, source: HardwareProfile, target: HardwareProfile) -> float | None:
    """The target's L2 credit [-] for ``source``'s fitted ``ratio`` of a family in
    :data:`RESIDENCY_CREDIT`: the two-tier time of a target that holds a share ``h = min(L2_target /
    L2_source, 1)`` of the source's resident bytes and streams them at its die's L2 rate (``rate``, the
    per-SM rule of :func:`carried_cache_ratio`), the rest from memory: ``1 / ((1 - h) + h / rate)``,
    never below 1. One continuous curve of the L2 sizes: at ``h = 1`` (a target L2 at least the
    source's: an H200 from an H100, an L40S from an A100, the device itself) it is the per-SM rate, and
    an L2 stated 0.1 % under the source's moves it by under ``(rate - 1) x 0.1 %`` (review 17b: the
    former rule, ``min(rate, 1 / (1 - (1 - 1 / ratio) h))`` below ``h = 1`` and ``rate`` at it, jumped
    by up to 2.2x there, on the h100-pcie and a100-40gb overlays' edge).

    The bound is empirical, not derived. The kernel models already credit only a working set the
    target's own L2 holds (one step at ``cache_bytes(target) x resident_fraction``), and such a set is
    held whole, so shrinking its credit by ``h`` is a second count of the smaller L2 if the fitted ratio
    were the L2's rate. The H100's tables say it is not, for decode: the same TensorRT-LLM bf16 decode
    kernel fits 1.0 on the H100 (25 GB/s per SM) and 1.8 on the B200 (98 GB/s per SM), and the H100's
    decode tables show no step at its 50 MiB (docs/validation.md, "Session 17"); the per-SM rate alone
    carried 3.8 for that 1.8 onto the H100, 2.7x its two-tier credit here (1.4). The form is the simplest
    continuous one that keeps the leave-one-out transfer (docs/validation.md, "Review 17b"). ``None``
    where :func:`carried_cache_ratio` is ``None``."""
    from costmodel.kernels import cache_bytes

    rate = carried_cache_ratio(ratio, source, target)
    if rate is None:
        return None
    share = min(cache_bytes(target) / cache_bytes(source), 1.0)
    return max(1.0, 1.0 / ((1.0 - share) + share / rate))


def carried_latency_scale(source: HardwareProfile, target: HardwareProfile) -> float | None:
    """The factor [-] by which a transferred collective's link round-trip times (``LATENCY_PARAMS`` of
    :mod:`costmodel.kernels.collective`) are carried from ``source`` to ``target``: the target's published
    small-message all-reduce latency over the source's (``datasheet.intra_node_latency_us``). A collective's
    fixed time is flag writes and polls across the link and its switch, so it scales with that round trip,
    which no datasheet states (NCCL's own tuning prices every NVLink generation alike). ``None`` where either
    profile does not state it, or where their GPUs meet over different kinds of link (a PCIe figure over an
    NVLink one is no ratio of round trips; the link parameters stay the target's own there anyway): the
    source's fitted latencies carry as they are."""
    figures = [hw.datasheet.intra_node_latency_us for hw in (source, target)]
    if figures[0] is None or figures[1] is None:
        return None
    if source.datasheet.intra_node_link != target.datasheet.intra_node_link:
        return None
    return figures[1].value / figures[0].value


KERNEL_LAUNCH_PARAMS: dict[str, tuple[str, ...]] = {
    "gemm": ("launch_s",),
    "context_attention": ("launch_s", "query_copy_s"),
    "generation_attention": ("launch_s", "combine_s", "query_copy_s"),
    "mla": ("launch_s", "module_kernel_s"),
    "moe": ("launch_s",),
}
"""Family -> its fitted fixed times per kernel launch [s]: the call's launch (the front end's work, the
grid's set-up, the prologue before the first tile and the drain after the last), and the further kernels a
call launches (decode's split-K combine, FlashAttention-2's query copy, an MLA module's small kernels).
Not the per-CTA, per-row, per-k-step or per-expert costs, whose time is the memory's latency as much as
the SMs' cycles (carried by the clock ratio they move the A100 <-> L40S check the wrong way, docs/
validation.md), nor a host-side floor (``host_floor_s``) or a collective's link round trips."""


def carried_clock_scale(source: HardwareProfile, target: HardwareProfile) -> float | None:
    """The factor [-] by which a transferred kernel's fixed launch times (:data:`KERNEL_LAUNCH_PARAMS`) are
    carried from ``source`` to ``target``: the source's boost clock over the target's
    (``datasheet.boost_clock_mhz``). A launch and a kernel's prologue and drain are GPU cycles; the same
    cycles take 1.79 x longer on an A100 (1,410 MHz) than on an L40S (2,520 MHz). ``None`` where either
    profile does not state its clock: the source's launch times carry as fitted."""
    clocks = [hw.datasheet.boost_clock_mhz for hw in (source, target)]
    if clocks[0] is None or clocks[1] is None:
        return None
    return clocks[0].value / clocks[1].value


SUSTAINED_COMPUTE_PARAMS: dict[str, tuple[str, ...]] = {"gemm": ("compute_fraction",)}
"""Family -> its fitted fractions of the datasheet's dense tensor peak [-] that take the part of the two
devices' sustained-share ratio (:func:`carried_sustained_scale`) that the power limit
(:data:`SUSTAINED_POWER_PARAMS`) cannot, at its bound of 1 (:func:`carry_sustained_share`).

A datasheet quotes the tensor peak at the boost clock; under a large GEMM's power draw GPU Boost lowers the
clock to hold the board's power limit, so what the tensor cores sustain is a share of the quoted peak that
belongs to the device (its clock, its power limit, its SMs), not to the kernel. A fitted compute fraction is
that share times the kernel's own efficiency against it (its tiles, pipelines, epilogue), and only the
latter is the kernel's. The leave-one-out tables bear it out: the largest GEMMs of every kernel both devices
ran reach 0.84-0.89 x on a B200 the share of the peak they reach on an H100 (docs/validation.md, "The
sustained-share rule"). GEMM only: the other families' compute fractions were not weighed.

Every GEMM key is scaled, whatever its format, although each pair's shares were measured in one format
(``datasheet.sustained_tensor_fraction``: fp8 for the H100 / B200 pair, bf16 for the A100 / L40S one). That
is an empirical choice, not a law: the idea is that the power limit lowers one SM clock for every format,
each format's peak being quoted at the same boost clock, but a format that draws more power per clock meets
the limit sooner, and public tables show formats sustaining different shares on one device (an H100's bf16
and fp8 shares differ by about 0.1 in Stas Bekman's MAMF table; a B200 / H100 bf16 ratio from one torch.mm
table is 0.945 against the Azure fp8 ratio of 0.842; the L40S's largest fp8 GEMMs reach less of their peak
than its bf16 ones: docs/validation.md). It is kept because it is what the leave-one-out cells bear out
(bf16 0.84 / 0.87 x, fp8 0.85-0.89 x, B200 over H100; scaling bf16 too moved the H100 <-> B200 bf16 cells to
within 2 %); limiting it to fp8 keys was tried and not kept (docs/validation.md, "Sustained share: every
format"). A share per format, where one benchmark gives both, would be the better datum. fp4 keys have no
leave-one-out cell (a Hopper target has no fp4 tensor core) and the rule's fp4-capable pairs carry a ratio
of 1 (B200 and GB200) or state no share (B300, GB300). The fp4 share the B200 profile states
(``datasheet.sustained_fp4_fraction``, 0.582) prices an unfitted fp4 GEMM on its own device only and is not
carried (the GB200 states none: docs/validation.md, "Sustained FP4 share")."""


def carried_sustained_scale(source: HardwareProfile, target: HardwareProfile) -> float | None:
    """The factor [-] by which a transferred GEMM's full-occupancy rate (``compute_fraction x
    power_limited_sm_fraction``, :func:`carry_sustained_share`: the power limit first) is carried from
    ``source`` to ``target``: the target's measured sustained share of its dense peak (of the format the
    benchmark ran) over the source's (``datasheet.sustained_tensor_fraction``). ``None`` where either
    profile does not state it: the source's fractions carry as fitted."""
    shares = [hw.datasheet.sustained_tensor_fraction for hw in (source, target)]
    if shares[0] is None or shares[1] is None:
        return None
    return shares[1].value / shares[0].value


SUSTAINED_POWER_PARAMS: dict[str, str] = {"gemm": "power_limited_sm_fraction"}
"""Family -> its fitted share of the SMs that run at the boost clock within the board's power limit [-]
(:attr:`costmodel.kernels.gemm.Params.power_limited_sm_fraction`), which :func:`carry_sustained_share`
moves first by the two devices' sustained shares.

A sustained share is measured on large square GEMMs, every SM busy: the power limit's clock times the
benchmark kernel's own efficiency. Where a fit separated the two (the power-limit fraction below 1: its
partial last waves ran faster than its full ones, docs/validation.md), the ratio of two devices' sustained
clocks is a ratio of that fraction, and a GEMM with few SMs busy, which the power limit does not slow, keeps
the source's compute fraction. A fit that found no limit (at 1, or not stating one: the H100's) is the
same case at its edge: a target holding a smaller share gets a limit of the ratio, so its few-SM GEMMs keep
the source's rate; a larger share lifts the compute fraction, the limit staying at 1. So a fitted 0.999 and
a fitted 1 carry alike (review of session 17: an exact-1 switch changed the carried few-SM rate 16 % for a
0.1 % change in the fit)."""


def carry_sustained_share(
    kept: dict[str, float],
    family: str,
    scale: float,
    bounds: Mapping[str, tuple[float, float]],
    defaults: Mapping[str, float],
) -> None:
    """Carry ``kept`` (one key's transferable parameters of ``family``, changed in place) by ``scale``, the
    target's sustained tensor share over the source's (:func:`carried_sustained_scale`): the full-occupancy
    rate ``compute_fraction x power_limited_sm_fraction`` is multiplied by ``scale``.

    The power limit (:data:`SUSTAINED_POWER_PARAMS`) takes the factor first, within its fit bounds
    (``bounds``, the family's ``BOUNDS``: 0.2 to 1, its unlimited value), and the compute fraction
    (:data:`SUSTAINED_COMPUTE_PARAMS`) the rest, within its own bounds (0.05 to 1). A parameter the fit does
    not state is read from ``defaults`` (the source's datasheet defaults: a limit of 1) and written only
    where it moves. The rule is continuous in the fitted limit: a limit of 0.999 and one of 1 carry alike
    (below 1 the limit falls by the ratio, above 1 it stops at 1 and the compute fraction rises by what is
    left). The full-occupancy rate carries exactly, and back again, unless the compute fraction's bound
    clips it (the limit passes what its own bounds clip to the compute fraction): then the carried rate
    falls short of the ratio by the clipped part, and nothing is raised. The split between the
    two does not always come back (a limit that reached 1 going out returns as the ratio below 1, with the
    compute fraction higher by what the limit could not take)."""
    rest = scale
    power = SUSTAINED_POWER_PARAMS.get(family)
    limit = None if power is None else kept.get(power, defaults.get(power))
    if power is not None and limit is not None:
        low, high = bounds[power]
        moved = min(max(limit * scale, low), high)
        rest = scale * limit / moved
        if power in kept or moved != limit:
            kept[power] = moved
    for name in SUSTAINED_COMPUTE_PARAMS.get(family, ()):
        value = kept.get(name, defaults.get(name))
        if value is None or (name not in kept and rest == 1.0):
            continue
        low, high = bounds[name]
        kept[name] = min(max(value * rest, low), high)


UNTUNED_TILE_PARAMS: dict[str, tuple[str, str]] = {"moe": ("default_config_ratio", "overlap_exponent")}
"""Family -> (its fitted slowdown of an engine's default launch configuration over a tuned one [-], the
exponent [-] by which the family overlaps operand traffic with tensor work).

vLLM's Triton fused_moe runs a 64 x 64 x 32 tile for large batches where it ships no tuned file
(``get_default_config``, :mod:`costmodel.kernels.moe`), smaller than the tuned ones, so it moves more operand
bytes per flop through the SM's shared memory and L1. That feed is bytes per clock per SM: 128 on the A100
(the cited 23.1 TB/s, https://pmc.ncbi.nlm.nih.gov/articles/PMC10448217/table/t0015, is the full GA100 die's
128 SMs at 1.41 GHz; the A100 product has 108 SMs, the count its 2,048 flop per clock per SM and its profile
use, and the 128 B per clock per SM holds for them, 19.5 TB/s in all). On Ada it is *assumed* the same, not
confirmed: its SM keeps the GA10x 128 KB L1 / shared memory, which says nothing of that memory's bandwidth.
The tensor cores the feed must keep busy run a format's dense rate per SM per clock that differs by device
(A100 2,048 bf16 flop: 1,024 FMA per clock per SM, NVIDIA's Ampere whitepaper; L40S 1,012: 362 TFLOPS over
142 SMs at 2.52 GHz). So the tile's extra feed time, in units of its tensor time, grows with that rate: the
same tile that stalls an A100's tensor cores hardly stalls an L40S's. Only the ratio of the two tensor rates
enters, so what the carry needs is equal operand-feed bytes per clock per SM on both devices, not the 128
itself. :func:`carried_untuned_ratio` reads the source's ratio through the family's own overlap law (the
p-norm of :class:`costmodel.kernels.moe.MoEBreakdown`, whose fitted exponent p is that of weight streaming
from HBM against compute, borrowed here for shared-memory feed against compute):
``ratio = (1 + e^p)^(1/p)``, tensor time 1 and extra feed time ``e``; it carries ``e`` by the two devices'
tensor rates per SM per clock and recombines. The rate needs the boost clock, which the profiles state for
the A100s and the L40S only; elsewhere the ratio carries as fitted."""


def tensor_flop_per_clock_per_sm(hardware: HardwareProfile, dtype: str) -> float | None:
    """The format's dense tensor rate per SM per clock [FLOP]: peak / (SMs x boost clock); ``None`` where
    the profile lacks the format's peak, the SM count or the clock."""
    units, clock = hardware.datasheet.compute_units, hardware.datasheet.boost_clock_mhz
    if units is None or clock is None or dtype not in hardware.datasheet.peak_dense_tflop_per_s:
        return None
    return hardware.peak_flop_per_s(dtype) / (units.value * clock.value * 1e6)


def carried_untuned_ratio(
    ratio: float,
    exponent: float,
    dtype: str,
    source: HardwareProfile,
    target: HardwareProfile,
    *,
    bounds: tuple[float, float],
) -> float | None:
    """The target's default-configuration slowdown [-] for the source's fitted ``ratio`` of a key of format
    ``dtype`` (:data:`UNTUNED_TILE_PARAMS`): ``e = (ratio^p - 1)^(1/p)``, ``e x`` the target's tensor rate
    per SM per clock over the source's (:func:`tensor_flop_per_clock_per_sm`), then ``(1 + e^p)^(1/p)``,
    clamped to ``bounds`` (the parameter's entry in the family's ``BOUNDS``, e.g. ``(0.5, 4.0)`` for
    :attr:`costmodel.kernels.moe.Params.default_config_ratio`), the range a fit on the target could reach.

    ``None``, so that the source's ratio carries as fitted, where: ``ratio <= 1`` (no extra feed time to
    carry, ``e`` is not real below 1); either profile lacks the SM count, the boost clock or the format's
    entry in ``peak_dense_tflop_per_s`` (a format absent there, e.g. one a device runs on another format's
    tensor cores, carries as fitted); or the two rates are equal."""
    rates = [tensor_flop_per_clock_per_sm(hw, dtype) for hw in (source, target)]
    if rates[0] is None or rates[1] is None or rates[0] == rates[1] or ratio <= 1.0:
        return None
    extra = (ratio**exponent - 1.0) ** (1.0 / exponent) * rates[1] / rates[0]
    carried = float((1.0 + extra**exponent) ** (1.0 / exponent))
    return min(max(carried, bounds[0]), bounds[1])


def transferable(
    fitted: Mapping[str, Mapping[str, Mapping[str, float]]],
    source: HardwareProfile,
    target: HardwareProfile | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """The part of ``source``'s fitted parameters (family -> key -> {name: value}) another device may reuse.

    Parameters a fit moves (a family's ``BOUNDS``) and values a fit's starting corner set are kept; values
    equal to ``source``'s own defaults are dropped, so that the datasheet numbers some families store
    (peak, bandwidth, SM count, L2 size) come from the target's own profile, as :data:`TRANSFER_RULE` says.
    With a ``target``:

    - the L2's rate (:data:`ON_CHIP_CACHE_PARAMS`) is carried per SM to the target's SMs and bandwidth
      (:func:`carried_cache_ratio`), or dropped where either datasheet lacks the L2 size or SM count; a
      residency credit (:func:`residency_credit`: decode attention, MLA's decode, GEMMs) onto a smaller L2
      is bounded by the time that L2 can save (:func:`carried_residency_ratio`);
    - where ``target``'s GPUs meet over another kind of link than ``source``'s (``datasheet.intra_node_link``:
      NVLink / NVSwitch vs PCIe), the parameters a family names in ``LINK_PARAMS`` (the collectives' per-step
      latency, link bandwidth fractions, host path) are dropped: the target keeps its own defaults for them;
    - the link round-trip times a family names in ``LATENCY_PARAMS`` (the collectives' fixed latencies) are
      scaled by the target's published small-message latency over the source's
      (:func:`carried_latency_scale`), where both profiles state it;
    - a kernel's fixed launch times (:data:`KERNEL_LAUNCH_PARAMS`) are scaled by the source's boost clock
      over the target's (:func:`carried_clock_scale`), where both profiles state it;
    - keys of kernels the source's engine runs only for the shapes its default kernel cannot
      (:data:`costmodel.kernels.SHAPE_FALLBACK_KERNELS`, e.g. vLLM's FlashAttention-4 at head_dim 512 on
      an sm90 device) are dropped where the target's compute capability has another (or no stated) major
      version: fitted on those shapes only, they would enter every shape's parameters through the
      fallback's sibling step.
    - a decode key whose engine picks another kernel on the target's compute capability than on the
      source's (``generation_attention.capability_kernel``: TensorRT-LLM's attention op, trtllm-gen from
      SM 100, XQA below; a capability only one profile states counts as another kernel, and where neither
      states one nothing says the kernel changes, so the key carries as any other) keeps only the
      parameters no kernel owns (``generation_attention.KERNEL_INDEPENDENT_PARAMS``: none, since every
      decode parameter was fitted with the kernel's grid and differs between kernels on one device); the
      key stays, empty, so the target's datasheet defaults time it rather than a sibling key's fit.
    - an engine's default-configuration slowdown (:data:`UNTUNED_TILE_PARAMS`) is carried by the two
      devices' tensor rates per SM per clock (:func:`carried_untuned_ratio`), where both profiles state them;
    - a GEMM's full-occupancy rate is scaled by the target's measured sustained share of its peak over the
      source's (:func:`carried_sustained_scale`), where both profiles state it: through the power limit
      first, the compute fraction taking what the limit's bounds leave (:func:`carry_sustained_share`),
      each kept within its fit bounds.
    """
    import importlib

    from costmodel.kernels import compute_capability, shape_fallback_key

    other_link = target is not None and target.datasheet.intra_node_link != source.datasheet.intra_node_link
    latency_scale = None if target is None else carried_latency_scale(source, target)
    scale = 1.0 if latency_scale is None else latency_scale
    clock_scale = None if target is None else carried_clock_scale(source, target)
    sustained_scale = None if target is None else carried_sustained_scale(source, target)
    source_capability = compute_capability(source)
    target_capability = None if target is None else compute_capability(target)
    other_major = target is not None and (
        target_capability is None
        or source_capability is None
        or target_capability.split(".", 1)[0] != source_capability.split(".", 1)[0]
    )
    out: dict[str, dict[str, dict[str, float]]] = {}
    for family, keys in fitted.items():
        module = importlib.import_module(f"costmodel.kernels.{family}")
        dropped = set(getattr(module, "LINK_PARAMS", ())) if other_link else set()
        cache = ON_CHIP_CACHE_PARAMS.get(family)
        round_trips = set(getattr(module, "LATENCY_PARAMS", ())) if latency_scale is not None else set()
        for key, values in keys.items():
            if other_major and shape_fallback_key(key, source_capability):
                continue
            try:
                defaults = numeric_fields(module.default_params(source, key))
            except CostmodelError:
                defaults = {}
            kept = {
                name: value
                for name, value in values.items()
                if (name in module.BOUNDS or name not in defaults or value != defaults[name])
                and name not in dropped
            }
            picked = getattr(module, "capability_kernel", None)
            if (
                target is not None
                and picked is not None
                and key.startswith(module.CAPABILITY_PICKED_KERNELS)
                and picked(key, source_capability) != picked(key, target_capability)
            ):
                kept = {n: v for n, v in kept.items() if n in module.KERNEL_INDEPENDENT_PARAMS}
            if target is not None and cache is not None and cache in kept:
                resident = residency_credit(family, key)
                carry = carried_residency_ratio if resident else carried_cache_ratio
                carried = carry(kept[cache], source, target)
                if carried is None:
                    del kept[cache]
                else:
                    kept[cache] = carried  # in place: the overlay keeps the source's order
            for name in round_trips & kept.keys():
                kept[name] = kept[name] * scale
            if clock_scale is not None:
                for name in set(KERNEL_LAUNCH_PARAMS.get(family, ())) & kept.keys():
                    kept[name] = kept[name] * clock_scale
            if sustained_scale is not None and sustained_scale != 1.0:
                carry_sustained_share(kept, family, sustained_scale, module.BOUNDS, defaults)
            untuned = UNTUNED_TILE_PARAMS.get(family)
            exponent = None if untuned is None else kept.get(untuned[1], defaults.get(untuned[1]))
            if target is not None and untuned is not None and untuned[0] in kept and exponent is not None:
                carried = carried_untuned_ratio(
                    kept[untuned[0]],
                    exponent,
                    key.split(":")[0],
                    source,
                    target,
                    bounds=module.BOUNDS[untuned[0]],
                )
                if carried is not None:
                    kept[untuned[0]] = carried
            out.setdefault(family, {})[key] = kept
    return out


MEASUREMENTS_ENTRY_POINT_GROUP = "costmodel.measurements"
"""Installed entry points that read a measurement folder into :class:`Measurements`."""


@dataclass(frozen=True)
class MeasuredGroup:
    """Measured kernel times of one (device, family, parameter key): the rows a fit uses."""

    hardware: str
    family: ModuleType
    key: str
    measured_s: FloatArray
    shapes: Mapping[str, Any]


@dataclass(frozen=True)
class Measurements:
    """What a reader hands to :func:`calibrate_measurements`: calibration rows only, and their provenance."""

    groups: Sequence[MeasuredGroup]
    source: str
    revision: str
    row_rule: str


@dataclass(frozen=True)
class CalibrationOutcome:
    """One calibration per device (fitted and transferred) and the groups that could not be fitted."""

    calibrations: dict[str, KernelCalibration]
    skipped: list[str] = field(default_factory=list)


def _pooled(groups: Sequence[MeasuredGroup]) -> list[MeasuredGroup]:
    """More groups, pooling keys so that a caller that knows less than the whole key finds parameters too:
    one per (device, family, dtype) over every ``dtype:qualifier`` key of that dtype, and, for a family that
    sets ``POOL_BY_ENGINE`` (its keys ``"<dtype>:<engine>:<kernel>"``), one per (device, family, dtype,
    engine) over that engine's kernels (``"<dtype>:<engine>"``; :func:`costmodel.kernels.fallback_keys`)."""
    buckets: dict[tuple[str, str, str], list[MeasuredGroup]] = {}
    for g in groups:
        parts = g.key.split(":")
        buckets.setdefault((g.hardware, family_name(g.family), parts[0]), []).append(g)
        if getattr(g.family, "POOL_BY_ENGINE", False) and len(parts) >= 3:
            buckets.setdefault((g.hardware, family_name(g.family), ":".join(parts[:2])), []).append(g)
    pooled = []
    for (hardware, _, pool), members in buckets.items():
        if any(m.key == pool for m in members) or pool.split(":", 1)[0] not in DTYPES:
            continue  # already a pooled key, or keys whose first part names a kernel, not a format
        if len(members) == 1:  # the same rows: the same arrays, which calibrate_measurements fits once
            pooled.append(dataclasses.replace(members[0], key=pool))
            continue
        names = set(members[0].shapes)
        measured = np.concatenate([m.measured_s for m in members])
        shapes = {
            n: np.concatenate([np.broadcast_to(m.shapes[n], m.measured_s.shape) for m in members])
            for n in names
        }
        pooled.append(MeasuredGroup(hardware, members[0].family, pool, measured, shapes))
    return pooled


def tied_params(family: ModuleType) -> Mapping[str, tuple[str, tuple[str, ...]]]:
    """A family's ``TIED_PARAMS`` (``{key: (source key, names)}``; empty where it sets none). A source that is
    itself tied (a chain ``A <- B <- C``, or a key tied to itself) raises CostmodelError: the fit orders one
    level only, a tied key after its source."""
    ties: Mapping[str, tuple[str, tuple[str, ...]]] = getattr(family, "TIED_PARAMS", {})
    for key, (source, _) in ties.items():
        if source in ties:
            raise CostmodelError(
                f"{family_name(family)}.TIED_PARAMS chains {key!r} <- {source!r} <- {ties[source][0]!r}: tie "
                f"{key!r} to {ties[source][0]!r} directly (a tied key is fitted after its source, one level)"
            )
    return ties


def _tied_start(
    group: MeasuredGroup,
    hardware: HardwareProfile,
    fitted: Mapping[str, Mapping[str, float]],
    stored: Mapping[str, Mapping[str, float]],
) -> tuple[Any, tuple[str, ...], str | None]:
    """(``initial``, ``fixed``, ``note``) for :func:`fit_params` of ``group``: where its family ties the
    group's key to another key's parameters (:func:`tied_params`), the defaults with the source's values,
    kept fixed (plus the family's own ``fixed_for``), taken from the device's ``fitted`` values of this run,
    else from its ``stored`` ones (the values already in the overlay a ``--key`` run keeps); else
    ``(None, (), note)``, the untied fit, with ``note`` saying why the tie was dropped (``None`` for an
    untied key)."""
    tie = tied_params(group.family).get(group.key)
    if tie is None:
        return None, (), None
    source, names = tie
    values = next((v for v in (fitted.get(source), stored.get(source)) if v and set(names) <= set(v)), None)
    if values is None:
        return None, (), f"{source}'s {', '.join(names)} not fitted nor stored on this device"
    start = dataclasses.replace(
        group.family.default_params(hardware, group.key), **{n: values[n] for n in names}
    )
    has_fixed = hasattr(group.family, "fixed_for")
    own_fixed = tuple(group.family.fixed_for(group.key, hardware)) if has_fixed else ()
    return start, (*names, *own_fixed), None


def calibrate_measurements(
    measurements: Measurements,
    *,
    date: str,
    costmodel_revision: str,
    transfer: Mapping[str, str] = TRANSFER_RULE,
    known_hardware: Sequence[str] | None = None,
    pool: bool = True,
    stored: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]] | None = None,
) -> CalibrationOutcome:
    """Fit every group of ``measurements`` and build one :class:`KernelCalibration` per device.

    Devices named in ``transfer`` (and in ``known_hardware``, default: the built-in profiles) that have no
    measurements of their own receive the fitted parameters of their source device, recorded as
    ``transferred_from``. A key a family ties to another key (:func:`tied_params`) is fitted after it, with
    the source's values held: this run's fit of the source, else ``stored`` (``{device: {family: {key:
    values}}}``, the parameters a ``--key`` run keeps); where neither has them the key is fitted untied and
    ``skipped`` says so.
    """
    from costmodel.registry import list_hardware, load_hardware

    fitted: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    rows: dict[str, dict[str, int]] = {}
    skipped: list[str] = []
    own = len(measurements.groups)
    by_rows: dict[int, dict[str, float]] = {}  # id(measured_s) -> fitted: a one-key pool is not refit
    pooled = _pooled(measurements.groups) if pool else []
    # a key that takes parameters from another key (a family's TIED_PARAMS) is fitted after it
    own_groups = sorted(measurements.groups, key=lambda g: g.key in tied_params(g.family))
    for i, group in enumerate([*own_groups, *pooled]):
        family = family_name(group.family)
        values = by_rows.get(id(group.measured_s)) if i >= own else None
        if values is None:
            try:
                hardware = load_hardware(group.hardware)
                initial, fixed, dropped = _tied_start(
                    group,
                    hardware,
                    fitted.get(group.hardware, {}).get(family, {}),
                    (stored or {}).get(group.hardware, {}).get(family, {}),
                )
                if dropped is not None:
                    skipped.append(
                        f"{group.hardware} {family} {group.key}: its tie dropped ({dropped}), fitted untied"
                    )
                params = fit_params(
                    group.family,
                    hardware,
                    group.key,
                    group.measured_s,
                    group.shapes,
                    initial=initial,
                    fixed=fixed,
                )
            except CostmodelError as e:
                skipped.append(f"{group.hardware} {family} {group.key}: {e}")
                continue
            properties = set(getattr(group.family, "KERNEL_PROPERTIES", ()))  # default_params's, never stored
            values = by_rows[id(group.measured_s)] = {
                name: value for name, value in numeric_fields(params).items() if name not in properties
            }
        fitted.setdefault(group.hardware, {}).setdefault(family, {})[group.key] = values
        if i < own:  # pooled groups repeat rows already counted
            device_rows = rows.setdefault(group.hardware, {})
            device_rows[family] = device_rows.get(family, 0) + int(np.asarray(group.measured_s).size)

    def record(source: str, transferred_from: str | None = None) -> CalibrationRecord:
        return CalibrationRecord(
            data_source=measurements.source,
            data_revision=measurements.revision,
            row_rule=measurements.row_rule,
            date=date,
            costmodel_revision=costmodel_revision,
            transferred_from=transferred_from,
            rows=rows.get(source, {}),
        )

    calibrations = {
        hw: KernelCalibration(params=params, record=record(hw)) for hw, params in sorted(fitted.items())
    }
    known = set(list_hardware() if known_hardware is None else known_hardware)
    for target, source in sorted(transfer.items()):
        if target in known and target not in fitted and source in fitted:
            params = transferable(fitted[source], load_hardware(source), load_hardware(target))
            calibrations[target] = KernelCalibration(params=params, record=record(source, source))
    return CalibrationOutcome(calibrations, skipped)


def write_files(files: Mapping[Path, str], what: str = "--out") -> None:
    """Write every ``path: text`` all or nothing: each to a temporary file beside it, then renamed over it.

    An interrupted or failed write (a full disk, a read-only folder, a path that is a file) leaves no
    partial or empty file behind and replaces none; it raises one CostmodelError naming ``what``.
    """
    import os
    import tempfile

    written: list[tuple[str, Path]] = []
    path = next(iter(files), Path())
    try:
        try:
            for path, text in files.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                written.append((tmp, path))
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
            for tmp, path in written:
                os.replace(tmp, path)
        except OSError as e:
            reason = "a file is in the way of a folder" if isinstance(e, FileExistsError) else e.strerror or e
            raise CostmodelError(
                f"{what}: cannot write {path}: {reason} (no partial file was left)"
            ) from None
    finally:
        for tmp, _ in written:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _out_folder(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CostmodelError(
            f"--out {out}: is a file, not a folder; give a folder for the calibrated profiles"
        )
    return out


def write_overlays(calibrations: Mapping[str, KernelCalibration], out_dir: str | Path) -> list[Path]:
    """Write one overlay ``<name>.yaml`` (``name`` + ``kernel_calibration``) per device into ``out_dir``.

    ``load_hardware(path)`` reads such a file as the built-in profile of that name with these parameters;
    in ``hardware_profiles/calibrated/`` they are what the built-in profiles load with. The files are
    written all or nothing (:func:`write_files`).
    """
    import yaml

    out = _out_folder(out_dir)
    header = "# Written by `costmodel calibrate --from DIR`; do not edit by hand (refit instead).\n"
    files = {
        out / f"{name}.yaml": header
        + yaml.safe_dump(
            {"name": name, "kernel_calibration": calibration.model_dump(mode="json")}, sort_keys=False
        )
        for name, calibration in sorted(calibrations.items())
    }
    write_files(files, f"--out {out}")
    return list(files)


def transfer_overlays(
    out_dir: str | Path,
    *,
    transfer: Mapping[str, str] = TRANSFER_RULE,
    known_hardware: Sequence[str] | None = None,
) -> tuple[list[Path], dict[str, KernelCalibration]]:
    """Rewrite the transferred overlays in ``out_dir`` from the measured overlays already there, no refit.

    For each ``target: source`` of ``transfer`` whose source has a fitted overlay (``transferred_from`` is
    null) in ``out_dir`` and whose target has none of its own, ``<target>.yaml`` gets
    :func:`transferable` of the source's parameters and the source's record with ``transferred_from`` set,
    as :func:`calibrate_measurements` writes it. The measured overlays are read only, never rewritten.
    """
    from costmodel.registry import list_hardware, load_hardware

    out = _out_folder(out_dir)
    known = set(list_hardware() if known_hardware is None else known_hardware)

    def fitted_overlay(name: str) -> HardwareProfile | None:
        path = out / f"{name}.yaml"
        profile = load_hardware(str(path)) if path.is_file() else None
        calibration = None if profile is None else profile.kernel_calibration
        return profile if calibration is not None and calibration.record.transferred_from is None else None

    calibrations: dict[str, KernelCalibration] = {}
    for target, source_name in sorted(transfer.items()):
        source = fitted_overlay(source_name)
        if target not in known or source is None or fitted_overlay(target) is not None:
            continue
        calibration = source.kernel_calibration
        assert calibration is not None  # fitted_overlay returns only calibrated profiles
        calibrations[target] = KernelCalibration(
            params=transferable(calibration.params, source, load_hardware(target)),
            record=calibration.record.model_copy(update={"transferred_from": source_name}),
        )
    if not calibrations:
        sources = ", ".join(sorted(set(transfer.values())))
        raise CostmodelError(
            f"--out {out}: no fitted overlay of a transfer source ({sources}) to transfer from; "
            "run `costmodel calibrate --from DIR --out OUT` first"
        )
    return write_overlays(calibrations, out), calibrations


def find_reader(name: str = "public") -> Callable[[Path], Measurements]:
    """The installed measurement reader ``name`` (entry point group ``costmodel.measurements``).

    costmodel itself reads no measurement format: the reader of NVIDIA aiconfigurator's public tables lives
    in the source checkout's ``validation/`` package and is registered by ``pip install -e .``.
    """
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=MEASUREMENTS_ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        raise CostmodelError(
            f"no measurement reader {name!r} is installed (entry point group "
            f"{MEASUREMENTS_ENTRY_POINT_GROUP!r}); it comes with a source checkout: "
            "pip install -e '.[validation]'"
        )
    reader: Callable[[Path], Measurements] = found[0].load()
    return reader


def git_revision() -> str:
    """Short git revision of the checkout costmodel is imported from, with ``-dirty`` appended where its
    tracked files differ from that commit, or 'unknown' outside a git checkout or without git.
    ``git describe --always --dirty --abbrev=7 --exclude=*`` (the commit, never a tag's name) runs in the
    package's parent folder, not the caller's working directory, and only where that checkout tracks this
    very file: a package installed into an untracked folder of some repository (a wheel in a
    ``.venv/.../site-packages`` inside a checkout) is not that repository's code, so it is 'unknown' too."""
    import subprocess

    here = Path(__file__).resolve()
    # the package's own checkout, whatever a caller's GIT_* variables name: GIT_DIR, GIT_WORK_TREE,
    # GIT_INDEX_FILE, GIT_COMMON_DIR, GIT_OBJECT_DIRECTORY, GIT_ALTERNATE_OBJECT_DIRECTORIES and
    # GIT_NAMESPACE all redirect what describe reads, and none is needed to read it
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=here.parents[1], env=env, capture_output=True, text=True, check=True,
            timeout=10,
        ).stdout.strip()  # fmt: skip

    try:
        git("ls-files", "--error-unmatch", "--", f"{here.parent.name}/{here.name}")
        return git("describe", "--always", "--dirty", "--abbrev=7", "--exclude=*") or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def calibrate_from(
    root: str | Path,
    out_dir: str | Path,
    *,
    reader: Callable[[Path], Measurements] | None = None,
    families: Sequence[str] | None = None,
    hardware: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
) -> tuple[list[Path], CalibrationOutcome]:
    """Read a measurement folder, fit every group on its calibration rows, write overlays to ``out_dir``.

    ``families`` (module names in ``costmodel.kernels``) limits the fit to those families; the parameters
    of the other families already in an overlay of ``out_dir`` are kept, and the record then describes the
    latest fit (its ``rows`` name every family's row count). ``hardware`` (profile names) limits the fit to
    those measured devices (and the devices the transfer rule feeds from them); other overlays stay as they
    are. ``keys`` (parameter-key prefixes, e.g. ``"fp8_block:"``) limits the fit to the keys that start with
    one of them: every other key of the family in an overlay of ``out_dir`` is kept as it is, and the pooled
    keys (per dtype, per engine) are not refit, since their rows are the union of keys not all refit. A key
    its family ties to a refit key (:func:`tied_params`) is refit too, and a tied key refit without its source
    takes the source's values from the overlay in ``out_dir``, so the tie holds in what is written.
    """
    import dataclasses
    import datetime as dt

    from costmodel.registry import load_hardware

    _out_folder(out_dir)  # before the fit, not after it
    read = reader if reader is not None else find_reader()
    measurements = read(Path(root))
    if families is not None:
        unknown = sorted(set(families) - {family_name(g.family) for g in measurements.groups})
        if unknown:
            raise CostmodelError(f"no calibration rows of kernel family {', '.join(unknown)} under {root}")
        measurements = dataclasses.replace(
            measurements, groups=[g for g in measurements.groups if family_name(g.family) in families]
        )
    if hardware is not None:
        unknown = sorted(set(hardware) - {g.hardware for g in measurements.groups})
        if unknown:
            raise CostmodelError(f"no calibration rows measured on {', '.join(unknown)} under {root}")
        measurements = dataclasses.replace(
            measurements, groups=[g for g in measurements.groups if g.hardware in hardware]
        )
    stored: dict[str, Mapping[str, Mapping[str, Mapping[str, float]]]] = {}
    if keys is not None:
        wanted = tuple(keys)
        chosen = [g for g in measurements.groups if g.key.startswith(wanted)]
        refit = {(g.hardware, family_name(g.family), g.key) for g in chosen}
        # a key tied to a refit source is refit with it, so that the tie holds in the overlay
        chosen += [
            g
            for g in measurements.groups
            if not g.key.startswith(wanted)
            and (tie := tied_params(g.family).get(g.key)) is not None
            and (g.hardware, family_name(g.family), tie[0]) in refit
        ]
        measurements = dataclasses.replace(measurements, groups=chosen)
        # a tied key refit without its source takes the source's values already in OUT
        for device in {g.hardware for g in chosen}:
            path = Path(out_dir) / f"{device}.yaml"
            overlay = load_hardware(str(path)).kernel_calibration if path.is_file() else None
            if overlay is not None:
                stored[device] = overlay.params
    if not measurements.groups:
        raise CostmodelError(f"no calibration rows with a kernel model under {root}")
    outcome = calibrate_measurements(
        measurements,
        date=dt.date.today().isoformat(),
        costmodel_revision=git_revision(),
        pool=keys is None,
        stored=stored,
    )
    if families is not None or hardware is not None or keys is not None:
        refitted = families if families is not None else [family_name(g.family) for g in measurements.groups]
        for name, calibration in list(outcome.calibrations.items()):
            path = Path(out_dir) / f"{name}.yaml"
            old = load_hardware(str(path)).kernel_calibration if path.is_file() else None
            if old is None:
                continue
            kept = {f: p for f, p in old.params.items() if f not in refitted}
            rows = {f: n for f, n in old.record.rows.items() if f not in refitted} | calibration.record.rows
            if keys is not None:  # the refitted families keep their other keys, and their row counts
                kept |= {
                    f: {**old.params.get(f, {}), **calibration.params.get(f, {})}
                    for f in set(refitted) & (set(old.params) | set(calibration.params))
                }
                calibration = calibration.model_copy(update={"params": {}})
                rows = dict(old.record.rows)
            outcome.calibrations[name] = KernelCalibration(
                params=kept | calibration.params,
                record=calibration.record.model_copy(update={"rows": rows}),
            )
    return write_overlays(outcome.calibrations, out_dir), outcome
