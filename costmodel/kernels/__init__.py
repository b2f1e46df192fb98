"""Kernel time models: how long one family of GPU kernels takes, vectorised over shapes.

``costmodel.ops`` says *what* runs in a forward pass; the modules here say *how long* one kernel of a
family (GEMM, attention, MLA, MoE, collectives) takes on a device. The plain roofline
(``costmodel.roofline``) is the simplest such model; the family models add the physics it misses (wave
quantization over the SMs, the weight-streaming regime at small M, split-K decode attention, routing
imbalance, collective algorithms chosen by size, launch costs), each with a few named, physically
meaningful parameters.

The contract every family module follows (``costmodel.calibrate`` and ``validation/public`` rely on it):

``Params``
    A frozen dataclass of the family's named parameters, units in the names (``*_fraction``,
    ``*_s``, ``*_bytes``). A handful per (device, family, dtype), never a per-shape table.
``BOUNDS``
    ``{field name: (low, high)}`` for the parameters a fit may move; fields not listed stay at their
    default (datasheet) value.
``default_params(hardware, dtype) -> Params``
    From the datasheet alone: what the model predicts for a device nobody has measured.
``time_s(hardware, params, **shapes) -> FloatArray``
    Kernel time [s] for numpy arrays of shapes that broadcast together. Pure: no I/O, no loops over rows.

``Params`` may carry non-numeric fields that say what the parameters are for (the GEMM model's ``dtype``
key); ``default_params`` sets them, and only numeric fields are stored and fitted.

Parameter keys are the dtype (``"bf16"``, ``"fp8"``, ...), optionally followed by ``":<qualifier>"``
naming an engine or kernel class (``"fp8_block:DeepGemmFp8BlockScaledMMKernel"``); ``default_params``
receives the whole key and may ignore the qualifier.

Calibrated values are stored per device in its hardware profile (``HardwareProfile.kernel_calibration``:
family -> key -> {parameter: value}, with a record of the data they were fitted on) and found by
:func:`params_for`, which falls back to the dtype alone and then to ``default_params``. Fitting itself lives
in ``costmodel.calibrate``.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from costmodel.errors import CostmodelError
from costmodel.specs import HardwareProfile


def family_name(family: ModuleType) -> str:
    """The key a family's parameters are stored under: its module name (``"gemm"``)."""
    return family.__name__.rsplit(".", 1)[-1]


def params_for(hardware: HardwareProfile, family: ModuleType, key: str) -> Any:
    """The parameters of ``family`` for ``key`` on ``hardware``: calibrated where the profile has them.

    Lookup order: the exact key, then its dtype part (before ``":"``), then ``default_params``. Stored
    values replace the defaults field by field, so a parameter that was never fitted keeps its default.
    """
    start = family.default_params(hardware, key)
    calibration = hardware.kernel_calibration
    if calibration is None:
        return start
    table = calibration.params.get(family_name(family), {})
    stored = table.get(key, table.get(key.split(":", 1)[0]))
    if not stored:
        return start
    names = {f.name for f in dataclasses.fields(start)}
    return dataclasses.replace(start, **{k: v for k, v in stored.items() if k in names})


def numeric_fields(params: Any) -> dict[str, float]:
    """The numeric fields of a ``Params`` instance, as stored in a profile."""
    return {
        f.name: float(getattr(params, f.name))
        for f in dataclasses.fields(params)
        if isinstance(getattr(params, f.name), int | float) and not isinstance(getattr(params, f.name), bool)
    }


def sm_count(hardware: HardwareProfile) -> float:
    """Streaming multiprocessors (``datasheet.compute_units``) [-]: the unit of parallelism the kernel
    models spread tiles over; a clear error where the profile lacks it."""
    units = hardware.datasheet.compute_units
    if units is None:
        raise CostmodelError(
            f"hardware {hardware.name!r} has no datasheet.compute_units (SM count), which the kernel models "
            "need: add it to the profile with its source"
        )
    return float(units.value)


def cache_bytes(hardware: HardwareProfile) -> float:
    """On-chip L2 cache (``datasheet.on_chip_cache_mib``) [bytes]; 0 where the profile lacks it, which turns
    the kernel models' cache-resident terms off."""
    entry = hardware.datasheet.on_chip_cache_mib
    return 0.0 if entry is None else float(entry.value) * 2**20
