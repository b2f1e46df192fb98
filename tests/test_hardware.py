"""Hardware profiles: every datasheet number sourced, SI accessors, dense (not sparse) peaks."""

from __future__ import annotations

import pytest

import costmodel


@pytest.mark.parametrize("name", costmodel.list_hardware())
def test_profile_is_sourced_and_consistent(name: str) -> None:
    hw = costmodel.load_hardware(name)
    assert hw.name == name
    for dtype, entry in hw.datasheet.peak_dense_tflop_per_s.items():
        assert len(entry.source) > 20, f"{name} {dtype} peak lacks a real source"
    assert hw.memory_bytes > 0
    assert hw.memory_bandwidth_bytes_per_s > 0
    # tensor-core 16-bit peaks are at least the fp32 vector peak; fp8/int8 are at least 16-bit
    peaks = {d: hw.peak_flop_per_s(d) for d in hw.compute_dtypes}
    if "bf16" in peaks and "fp32" in peaks:
        assert peaks["bf16"] >= peaks["fp32"]
    if "fp8" in peaks:
        assert peaks["fp8"] >= peaks["bf16"]
    if hw.price is not None:
        assert hw.price.source
        assert hw.price.date


def test_si_units() -> None:
    h100 = costmodel.load_hardware("h100-sxm")
    assert h100.memory_bytes == 80 * 2**30
    assert h100.memory_bandwidth_bytes_per_s == 3.35e12
    assert h100.peak_flop_per_s("bf16") == pytest.approx(989.4e12)


def test_dense_not_sparse_peaks() -> None:
    """NVIDIA datasheets quote 1,979 TFLOPS bf16 for H100 SXM 'with sparsity'; the dense peak is half."""
    assert costmodel.load_hardware("h100-sxm").peak_flop_per_s("bf16") < 1.0e15
    assert costmodel.load_hardware("a100-80gb").peak_flop_per_s("bf16") == pytest.approx(312e12)


def test_missing_dtype_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="has no 'fp8' peak"):
        costmodel.load_hardware("a100-80gb").peak_flop_per_s("fp8")
