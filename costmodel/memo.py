"""A bounded memo for the step-time path's pure kernel-time functions.

A Pareto search or a capacity plan times thousands of forward passes, and most of their kernels repeat:
the same GEMM token counts, collective sizes and attention shapes come back in many engines' passes on
one device (in the Pareto benchmark about a third of the kernel calls are distinct). The kernel models
are pure functions of their arguments, so :func:`remember` returns the result computed the first time
for arguments of exactly the same values. Arrays count as the same when their dtype, shape and bytes are;
a result is stored read-only, so a caller that would write into it fails instead of changing what the next
caller reads. Only calls on small arrays are kept (:data:`MAX_ELEMENTS`): the memo is for the per-call
overhead of many small passes, not for large grids, where the arithmetic dominates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

MAX_ENTRIES = 8192
"""Results kept at most; the memo starts afresh when full [-]."""
MAX_ELEMENTS = 1024
"""Largest array argument whose call is kept [elements]."""

_ENTRIES: dict[Hashable, tuple[object, Any]] = {}


class _TooLargeError(Exception):
    """An array argument above :data:`MAX_ELEMENTS`: the call is computed, not kept."""


def exact_key(value: Any) -> Hashable:
    """A hashable key equal for two arguments exactly when a pure function cannot tell them apart: arrays
    by dtype, shape and bytes; floats by their bits (-0.0 is not 0.0); dataclass records field by field;
    other values with their type."""
    kind = type(value)
    if kind is float:
        return value.hex()  # type: ignore[no-any-return]
    if kind is np.ndarray:
        if value.size > MAX_ELEMENTS:
            raise _TooLargeError
        return (np.ndarray, value.dtype.str, value.shape, value.tobytes())
    if kind is tuple:
        return tuple(exact_key(v) for v in value)
    if kind in (str, int, bool) or value is None or callable(value):
        return (kind, value)
    if isinstance(value, np.generic):
        return (kind, value.tobytes())
    names = _FIELDS.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(value):
            return (kind, value)
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    return (kind, tuple(exact_key(getattr(value, n)) for n in names))


_FIELDS: dict[type, tuple[str, ...]] = {}


def remember(owner: object, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """``compute()``, computed once per ``owner`` (by identity: a device profile) and ``key`` (values made
    exact by :func:`exact_key`, which must name everything ``compute`` depends on besides ``owner``)."""
    try:
        index = (id(owner), exact_key(key))
    except _TooLargeError:
        return compute()
    hit = _ENTRIES.get(index)
    if hit is not None and hit[0] is owner:  # the entry holds owner alive, so its id is not reused
        return hit[1]  # type: ignore[no-any-return]
    out = compute()
    if isinstance(out, np.ndarray):
        out = out.copy()
        out.setflags(write=False)
    if len(_ENTRIES) >= MAX_ENTRIES:
        _ENTRIES.clear()
    _ENTRIES[index] = (owner, out)
    return out


def holds(owner: object, key: tuple[Any, ...]) -> bool:
    """Whether :func:`remember` would return a kept result for ``owner`` and ``key`` now, without
    computing anything (a caller that would prepare work only the computation reads skips it)."""
    try:
        index = (id(owner), exact_key(key))
    except _TooLargeError:
        return False
    hit = _ENTRIES.get(index)
    return hit is not None and hit[0] is owner


def clear() -> None:
    """Forget every kept result (a benchmark timing a cold search; tests that change a kernel model)."""
    _ENTRIES.clear()
