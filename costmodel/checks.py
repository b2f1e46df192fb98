"""Argument checks at the entry of the public estimators.

Specs (``Workload``, ``Deployment``, profiles) validate themselves; the functions below them take plain
numbers, arrays and option names, and check them here, so that a bad argument is refused with
:class:`~costmodel.errors.CostmodelError` naming it, instead of giving a number (a negative byte count,
``sparsity="1:2"`` read as dense). Every check is vectorised: one pass over an array, no Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError

MAX_COUNT = 2**53
"""Largest count (tokens, sequences, elements) an estimator accepts [-]: exact in float64."""


def choice(name: str, value: Any, options: Iterable[Any]) -> None:
    """``value`` is one of ``options`` (e.g. ``typing.get_args`` of a ``Literal``)."""
    allowed = tuple(options)
    if isinstance(value, bool) and not any(isinstance(o, bool) for o in allowed):
        ok = False
    else:
        try:
            ok = value in allowed
        except (TypeError, ValueError):  # unhashable or array-valued: not an option
            ok = False
    if not ok:
        shown = ", ".join(repr(o) for o in allowed)
        raise CostmodelError(f"{name} must be one of {shown}, got {value!r}")


def counts(
    name: str, value: npt.ArrayLike, *, minimum: int = 0, whole: bool = True
) -> npt.NDArray[np.float64]:
    """Numbers in [minimum, 2**53] (a scalar or an array), returned as float64 for the estimators; whole
    numbers unless ``whole=False`` (the FLOP and activation models also take mean, fractional batches).

    Cheap on the hot paths: one number is a few Python comparisons; an integer array its min and max; a
    float array three vectorised comparisons (NaN and infinities fail them).
    """
    kind_of = "whole numbers" if whole else "finite numbers"
    try:
        arr = np.asarray(value)
    except (OverflowError, ValueError, TypeError):
        arr = np.asarray(None)
    kind = arr.dtype.kind
    if arr.ndim == 0 and kind in "iuf":  # one number: Python comparisons, no array passes
        one = float(arr)
        if not (minimum <= one <= MAX_COUNT and (not whole or one == math.floor(one))):
            raise CostmodelError(f"{name} must be {kind_of} in [{minimum}, 2**53], got {_short(value)}")
        return np.asarray(one)
    if kind in "iu":
        if arr.size and (arr.min() < minimum or arr.max() > MAX_COUNT):
            bad = arr[(arr < minimum) | (arr > MAX_COUNT)]
            raise CostmodelError(f"{name} must be {kind_of} in [{minimum}, 2**53], got {_short(bad.flat[0])}")
        return arr.astype(np.float64)
    if kind != "f":
        raise CostmodelError(f"{name} must be a number (or an array of them), got {_short(value)}")
    x = arr.astype(np.float64, copy=False)
    ok = (x >= minimum) & (x <= MAX_COUNT)  # False for NaN and infinities
    if whole:
        ok &= x == np.floor(x)
    if not ok.all():
        raise CostmodelError(f"{name} must be {kind_of} in [{minimum}, 2**53], got {_short(x[~ok].flat[0])}")
    return x


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """One whole number >= ``minimum`` (a GPU count, a rank)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise CostmodelError(f"{name} must be a whole number >= {minimum}, got {_short(value)}")
    if value > MAX_COUNT:
        raise CostmodelError(f"{name} must be <= 2**53, got {_short(value)}")
    return int(value)


def fraction(name: str, value: Any, *, low: float = 0.0, high: float = 1.0, open_low: bool = True) -> float:
    """A finite number in (low, high] (or [low, high] with ``open_low=False``); text that reads as one
    ("0.9") is refused, as :func:`counts` refuses it."""
    try:
        x = float("nan") if isinstance(value, str | bytes) else float(value)
    except (TypeError, ValueError, OverflowError):
        x = float("nan")
    above = x > low if open_low else x >= low
    if not (np.isfinite(x) and above and x <= high):
        bracket = "(" if open_low else "["
        raise CostmodelError(f"{name} must lie in {bracket}{low:g}, {high:g}], got {_short(value)}")
    return x


def _short(value: Any) -> str:
    """A value for a message: numpy scalars as plain numbers, at most 60 characters."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
