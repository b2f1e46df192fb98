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
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError
from costmodel.specs import HardwareProfile

FloatArray = npt.NDArray[np.float64]


def fit_params(
    family: ModuleType,
    hardware: HardwareProfile,
    dtype: str,
    measured_s: npt.ArrayLike,
    shapes: Mapping[str, Any],
    *,
    initial: Any = None,
    fixed: tuple[str, ...] = (),
) -> Any:
    """Least-squares fit of ``family.Params`` to measured kernel times.

    Parameters
    ----------
    family : a module of ``costmodel.kernels`` (``Params``, ``BOUNDS``, ``default_params``, ``time_s``).
    hardware : the device the measurements were taken on.
    dtype : the family's dtype key the parameters are for (``"bf16"``, ``"fp8"``, ...).
    measured_s : measured kernel times [s], one per row.
    shapes : keyword arrays for ``family.time_s``, one entry per row (or broadcastable).
    initial : starting parameters; default ``family.default_params(hardware, dtype)``.
    fixed : names in ``BOUNDS`` to keep at their starting value.

    Returns the fitted ``Params``. Raises ``CostmodelError`` when there is nothing to fit.
    """
    from scipy.optimize import least_squares

    measured = np.asarray(measured_s, dtype=np.float64)
    keep = np.isfinite(measured) & (measured > 0)
    if not keep.any():
        raise CostmodelError(f"no positive, finite measured times to fit {family.__name__} for {dtype!r}")
    start = initial if initial is not None else family.default_params(hardware, dtype)
    names = [name for name in family.BOUNDS if name not in fixed]
    if not names:
        return start
    low = np.array([family.BOUNDS[n][0] for n in names], dtype=np.float64)
    high = np.array([family.BOUNDS[n][1] for n in names], dtype=np.float64)
    x0 = np.clip([float(getattr(start, n)) for n in names], low, high)
    rows = {k: _rows(v, keep) for k, v in shapes.items()}
    log_measured = np.log(measured[keep])

    def residual(x: FloatArray) -> FloatArray:
        params = dataclasses.replace(start, **dict(zip(names, x.tolist(), strict=True)))
        predicted = np.broadcast_to(family.time_s(hardware, params, **rows), log_measured.shape)
        return np.asarray(np.log(np.maximum(predicted, 1e-30)) - log_measured, dtype=np.float64)

    # A parameter no row is sensitive to at the start (a compute fraction when every row starts memory
    # bound, a softmax rate in a family's decode op) keeps its start: least_squares stalls on a zero
    # Jacobian column, returning the start for every parameter.
    base = residual(x0)
    sensitive = np.array(
        [np.abs(residual(_nudge(x0, i, low, high)) - base).max() > 1e-12 for i in range(len(names))]
    )
    if not sensitive.any():
        return start
    names = [n for n, moves in zip(names, sensitive, strict=True) if moves]
    x0, low, high = x0[sensitive], low[sensitive], high[sensitive]
    # scale steps by the parameters' own magnitudes (they span 1e-7 s to 1e13 /s)
    x_scale = np.maximum(np.abs(x0), 1e-12)
    result = least_squares(residual, x0, bounds=(low, high), loss="soft_l1", f_scale=0.1, x_scale=x_scale)
    return dataclasses.replace(start, **dict(zip(names, result.x.tolist(), strict=True)))


def _nudge(x: FloatArray, i: int, low: FloatArray, high: FloatArray) -> FloatArray:
    """``x`` with its ``i``-th entry moved by 1 % inside the bounds."""
    moved = x.copy()
    up = x[i] * 1.01 if x[i] != 0 else 1e-12
    moved[i] = up if up <= high[i] else x[i] - (up - x[i])
    moved[i] = max(moved[i], low[i])
    return moved


def _rows(value: Any, keep: npt.NDArray[np.bool_]) -> Any:
    """Select the kept rows of a per-row array; scalars and non-row values pass through."""
    array = np.asarray(value)
    return array[keep] if array.ndim == 1 and array.shape[0] == keep.shape[0] else value
