"""The kernel-time memo: a kept result is returned only for arguments a pure function cannot tell apart,
and timing with it gives the same operator times as timing without it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from costmodel import load_hardware, load_model, memo
from costmodel.kernel_times import op_times
from costmodel.ops import forward_ops


@pytest.fixture(autouse=True)
def _empty_memo() -> None:
    memo.clear()


def _counting(value: float) -> tuple[list[int], object]:
    calls: list[int] = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.array([value])

    return calls, compute


def test_same_values_are_computed_once() -> None:
    owner = object()
    calls, compute = _counting(1.0)
    first = memo.remember(owner, ("f", np.array([1.0, 2.0]), 3.0), compute)  # type: ignore[arg-type]
    again = memo.remember(owner, ("f", np.array([1.0, 2.0]), 3.0), compute)  # type: ignore[arg-type]
    assert len(calls) == 1
    assert again is first


@pytest.mark.parametrize(
    "other",
    [
        ("f", np.array([1.0, 2.0], dtype=np.float32), 3.0),  # dtype
        ("f", np.array([[1.0, 2.0]]), 3.0),  # shape
        ("f", np.array([1.0, 2.5]), 3.0),  # value
        ("f", np.array([1.0, 2.0]), -3.0),  # scalar
        ("f", np.array([1.0, 2.0]), 3),  # an int is not a float
        ("g", np.array([1.0, 2.0]), 3.0),  # name
    ],
)
def test_arguments_that_differ_are_computed_again(other: tuple[object, ...]) -> None:
    owner = object()
    calls, compute = _counting(1.0)
    memo.remember(owner, ("f", np.array([1.0, 2.0]), 3.0), compute)  # type: ignore[arg-type]
    memo.remember(owner, other, compute)  # type: ignore[arg-type]
    assert len(calls) == 2


def test_negative_zero_is_not_zero_and_owners_are_told_apart() -> None:
    calls, compute = _counting(1.0)
    a, b = object(), object()
    memo.remember(a, (0.0,), compute)  # type: ignore[arg-type]
    memo.remember(a, (-0.0,), compute)  # type: ignore[arg-type]
    memo.remember(b, (0.0,), compute)  # type: ignore[arg-type]
    assert len(calls) == 3


def test_kept_results_are_read_only_and_large_arrays_are_not_kept() -> None:
    owner = object()
    calls, compute = _counting(2.0)
    out = memo.remember(owner, ("f",), compute)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="read-only"):
        out[0] = 3.0  # type: ignore[index]
    big = np.zeros(memo.MAX_ELEMENTS + 1)
    memo.remember(owner, ("f", big), compute)  # type: ignore[arg-type]
    memo.remember(owner, ("f", big), compute)  # type: ignore[arg-type]
    assert len(calls) == 3


def test_dataclass_records_key_by_their_fields() -> None:
    @dataclasses.dataclass(frozen=True)
    class Shape:
        m: np.ndarray
        n: float

    owner = object()
    calls, compute = _counting(1.0)
    memo.remember(owner, (Shape(np.array([4.0]), 8.0),), compute)  # type: ignore[arg-type]
    memo.remember(owner, (Shape(np.array([4.0]), 8.0),), compute)  # type: ignore[arg-type]
    memo.remember(owner, (Shape(np.array([5.0]), 8.0),), compute)  # type: ignore[arg-type]
    assert len(calls) == 2


@pytest.mark.parametrize(("model", "device"), [("qwen3-30b-a3b", "h100-sxm"), ("llama-3-8b", "b200")])
def test_remembered_kernel_times_equal_fresh_ones(model: str, device: str) -> None:
    """Every operator's times from a warm memo are bit for bit those of a cold one."""
    m, hw = load_model(model), load_hardware(device)
    passes = [(np.array([1.0, 8.0, 64.0]), 1.0, np.array([0.0, 512.0, 4096.0])), (2.0, 512.0, 128.0)]
    for batch, new, past in passes:
        ops = forward_ops(m, batch_size=batch, new_tokens=new, past_tokens=past, tp=2)
        memo.clear()
        cold = op_times(ops, hw)
        warm = op_times(ops, hw)
        for a, b in zip(
            (cold.compute_s, cold.memory_s, cold.communication_s),
            (warm.compute_s, warm.memory_s, warm.communication_s),
            strict=True,
        ):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
