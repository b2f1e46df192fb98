"""GEMM time model: physics invariants (monotone, bounded by the ideal roofline, wave steps), the
parameter lookup, and calibration recovering known parameters from synthetic measurements."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.calibrate import (
    MeasuredGroup,
    Measurements,
    calibrate_measurements,
    fit_params,
    write_overlays,
)
from costmodel.errors import CostmodelError
from costmodel.kernels import gemm, params_for
from costmodel.registry import load_hardware
from costmodel.specs import HardwareProfile

H100 = load_hardware("h100-sxm")
A100 = load_hardware("a100-80gb")
SIZES = np.array([1, 7, 64, 129, 1000, 4096, 16384], dtype=np.float64)


def random_params(draw: st.DrawFn, dtype: str) -> gemm.Params:
    """Any parameters inside the fit's bounds (no L2 effect: the roofline bound is a DRAM bound)."""
    values = {name: draw(st.floats(low, high)) for name, (low, high) in gemm.BOUNDS.items()}
    values["cache_bandwidth_ratio"] = 1.0
    return dataclasses.replace(gemm.default_params(H100, dtype), **values)


@st.composite
def params_strategy(draw: st.DrawFn) -> gemm.Params:
    return random_params(draw, draw(st.sampled_from(["bf16", "fp8", "fp8_block"])))


@settings(max_examples=30, deadline=None)
@given(params_strategy())
def test_time_grows_with_every_dimension(params: gemm.Params) -> None:
    m, n, k = np.meshgrid(SIZES, SIZES, SIZES, indexing="ij")
    t = gemm.time_s(H100, params, m=m, n=n, k=k)
    assert np.all(t > 0)
    for axis in range(3):
        assert np.all(np.diff(t, axis=axis) >= -1e-15 * t.max()), f"not monotone along axis {axis}"


@settings(max_examples=30, deadline=None)
@given(params_strategy())
def test_never_faster_than_the_ideal_roofline(params: gemm.Params) -> None:
    m, n, k = np.meshgrid(SIZES, SIZES, SIZES, indexing="ij")
    t = gemm.time_s(H100, params, m=m, n=n, k=k)
    bound = gemm.roofline_bound_s(H100, m=m, n=n, k=k, dtype=params.dtype)
    assert np.all(t >= bound * (1 - 1e-12))


def test_compute_bound_gemm_costs_flops_over_achieved_peak() -> None:
    params = dataclasses.replace(gemm.default_params(H100, "bf16"), launch_s=0.0)
    m = n = k = 8192.0 * 4
    t = gemm.time_s(H100, params, m=m, n=n, k=k)
    ideal = 2 * m * n * k / (H100.peak_flop_per_s("bf16") * params.compute_fraction)
    assert t == pytest.approx(ideal, rel=0.02)  # 256 x 256 tiles: 16384 tiles, 124.1 waves on 132 SMs


def test_small_m_streams_the_weights_at_the_achieved_bandwidth() -> None:
    params = dataclasses.replace(gemm.default_params(H100, "bf16"), launch_s=0.0)
    n = k = 16384.0
    t = gemm.time_s(H100, params, m=1.0, n=n, k=k)
    weights = n * k * 2.0
    assert t == pytest.approx(
        weights / (H100.memory_bandwidth_bytes_per_s * params.bandwidth_fraction), rel=0.01
    )


def test_work_past_a_whole_wave_costs_a_step() -> None:
    """Wave quantization: 132 tiles of 256 x 256 fill the H100's 132 SMs once; 9 % more work (144 tiles)
    costs far more than 9 % (smaller tiles re-cut the work into finer waves and recover only part of the
    step), and 9 % less work (120 tiles) costs as much as the full wave."""
    params = dataclasses.replace(gemm.default_params(H100, "bf16"), launch_s=0.0, max_splits=1.0)
    assert gemm.sm_count(H100) == 132
    n, k = 256.0 * 12, 8192.0
    full = gemm.time_s(H100, params, m=256.0 * 11, n=n, k=k)
    assert gemm.time_s(H100, params, m=256.0 * 12, n=n, k=k) / full > 1.2
    assert gemm.time_s(H100, params, m=256.0 * 10, n=n, k=k) == pytest.approx(full, rel=1e-9)


@pytest.mark.parametrize(("name", "sms"), [("b200", 148), ("gb200", 152), ("b300", 148), ("gb300", 152)])
def test_the_wave_step_falls_at_each_blackwell_parts_own_sm_count(name: str, sms: int) -> None:
    """One wave of 256 x 256 tiles fills the device's SMs: up to ``sms`` tiles cost one wave, and the step
    to two (smaller tiles recover part of it) comes just past it: after 148 tiles on an HGX B200 or B300,
    after 152 on a GB200 or GB300, whose profiles state their own SM counts (tests/test_hardware.py)."""
    hw = load_hardware(name)
    params = dataclasses.replace(gemm.default_params(hw, "bf16"), launch_s=0.0, max_splits=1.0)
    assert gemm.sm_count(hw) == sms
    n, k = 256.0 * 4, 8192.0

    def t(tiles: int) -> float:
        return float(gemm.time_s(hw, params, m=256.0 * tiles / 4, n=n, k=k))

    one_wave = t(sms)
    assert t(sms - 4) == pytest.approx(one_wave, rel=1e-9)
    assert t(sms + 4) / one_wave > 1.2


def test_quantized_formats_pay_the_activation_pass_and_need_their_peak() -> None:
    bf16 = dataclasses.replace(gemm.default_params(H100, "bf16"), launch_s=0.0)
    fp8 = dataclasses.replace(
        gemm.default_params(H100, "fp8"), launch_s=0.0, compute_fraction=bf16.compute_fraction
    )
    big = {"m": 8192.0, "n": 8192.0, "k": 8192.0}
    assert gemm.time_s(H100, fp8, **big) < 0.6 * gemm.time_s(H100, bf16, **big)  # twice the peak
    wide_m = {"m": 65536.0, "n": 32.0, "k": 4096.0}  # the activations dominate: the quantization pass shows
    assert gemm.time_s(H100, fp8, **wide_m) > gemm.time_s(H100, bf16, **wide_m)
    with pytest.raises(CostmodelError, match="no 'fp8' peak"):
        gemm.time_s(load_hardware("a100-80gb"), gemm.default_params(H100, "fp8"), m=1, n=1, k=1)
    with pytest.raises(CostmodelError, match="unknown GEMM dtype"):
        gemm.default_params(H100, "int3")


def test_tile_overhead_costs_k_elements_of_main_loop_per_tile() -> None:
    """A non-persistent kernel pays each tile's pipeline fill and epilogue: in a compute-bound GEMM of
    many full waves and no split, time grows as ``k + tile_overhead_k``, so the achieved rate approaches
    the compute fraction only as ``k / (k + tile_overhead_k)``."""
    base = dataclasses.replace(gemm.default_params(A100, "bf16"), launch_s=0.0, max_splits=1.0)
    k0 = 160.0
    slow = dataclasses.replace(base, tile_overhead_k=k0)
    for k in (256.0, 1024.0, 8192.0):
        shape = {"m": 16384.0, "n": 16384.0, "k": k}
        ratio = gemm.time_s(A100, slow, **shape) / gemm.time_s(A100, base, **shape)
        assert ratio == pytest.approx((k + k0) / k, rel=1e-9)


def test_warp_level_tiles_do_not_pad_a_few_rows_to_64() -> None:
    """Ampere / Ada ``mma.sync`` kernels tile a few-row GEMM by 16 rows: a compute-limited 8-row GEMM
    costs less than with 64-row tiles (Hopper ``wgmma``), every m up to the smallest tile costs the same
    (tile quantization), and the large-m limit is unchanged."""
    wide = dataclasses.replace(
        gemm.default_params(A100, "bf16"),
        launch_s=0.0,
        bandwidth_fraction=1.0,
        tile_intensity=8.0,
        max_splits=1.0,
    )
    narrow = dataclasses.replace(wide, min_tile_m=16.0)
    few = {"n": 512.0, "k": 65536.0}  # 8 tiles of 64 x 64 on 108 SMs: compute-limited
    assert gemm.time_s(A100, narrow, m=8.0, **few) < gemm.time_s(A100, wide, m=8.0, **few)
    assert gemm.time_s(A100, narrow, m=1.0, **few) == gemm.time_s(A100, narrow, m=16.0, **few)
    big = {"m": 16384.0, "n": 16384.0, "k": 4096.0}
    assert gemm.time_s(A100, narrow, **big) == pytest.approx(gemm.time_s(A100, wide, **big), rel=1e-12)


def test_cache_gain_applies_only_below_the_resident_share_of_l2() -> None:
    """A weight-streaming GEMM whose working set fits the resident share of the L2 runs
    ``cache_bandwidth_ratio`` faster; one just past that share streams from DRAM."""
    l40s = load_hardware("l40s")
    params = dataclasses.replace(
        gemm.default_params(l40s, "bf16"),
        launch_s=0.0,
        cache_bandwidth_ratio=2.0,
        cache_resident_fraction=0.25,
    )
    plain = dataclasses.replace(params, cache_bandwidth_ratio=1.0)
    share = 0.25 * gemm.cache_bytes(l40s)
    k = 1024.0
    inside, outside = (
        np.floor(0.9 * share / (2 * k)),
        np.ceil(1.1 * share / (2 * k)),
    )  # n: weights ~ 0.9 / 1.1 x
    assert gemm.time_s(l40s, params, m=1.0, n=inside, k=k) == pytest.approx(
        gemm.time_s(l40s, plain, m=1.0, n=inside, k=k) / 2.0, rel=1e-9
    )
    assert gemm.time_s(l40s, params, m=1.0, n=outside, k=k) == gemm.time_s(l40s, plain, m=1.0, n=outside, k=k)


def test_scalar_and_broadcast_inputs_agree() -> None:
    params = gemm.default_params(H100, "bf16")
    grid = gemm.time_s(H100, params, m=SIZES[:, None], n=SIZES[None, :], k=512.0)
    for i, m in enumerate(SIZES):
        for j, n in enumerate(SIZES):
            assert grid[i, j] == gemm.time_s(H100, params, m=m, n=n, k=512.0)


@settings(max_examples=20, deadline=None)
@given(params_strategy(), st.integers(0, 2**32 - 1))
def test_every_element_of_an_array_is_timed_as_if_alone(params: gemm.Params, seed: int) -> None:
    """The candidate tiles are timed on an axis of their own beside the shapes' (one array pass): each
    element of a 1-D or 2-D call equals its own scalar call to the bit, with 64-row and 16-row smallest
    tiles (``min_tile_m``)."""
    rng = np.random.default_rng(seed)
    params = dataclasses.replace(params, min_tile_m=float(rng.choice([16.0, 64.0])))
    m, n, k = (np.floor(np.exp(rng.uniform(0.0, 10.0, (3, 4)))) for _ in range(3))
    grid = gemm.time_s(H100, params, m=m, n=n, k=k)
    row = gemm.time_s(H100, params, m=m[0], n=n[0], k=k[0])
    for i, j in np.ndindex(m.shape):
        alone = gemm.time_s(H100, params, m=m[i, j], n=n[i, j], k=k[i, j])
        assert grid[i, j] == alone
        if i == 0:
            assert row[j] == alone


def _one_tile_at_a_time_s(
    hardware: HardwareProfile, params: gemm.Params, m: object, n: object, k: object
) -> np.ndarray:
    """Oracle: the per-tile loop of 67c2922, each candidate tile timed alone (through the dispatch hook,
    which hands ``time_s`` one tile) and the fastest so far kept by ``np.minimum``. The total is
    non-decreasing in the kernel time (a launch added, a maximum with the memory and the host floor), so
    the fastest total is the total of the fastest kernel, to the bit."""
    tiles_m = sorted({min(params.min_tile_m, gemm.TILE_SIZES[0]), *gemm.TILE_SIZES})
    best = None
    with pytest.MonkeyPatch.context() as patch:
        for tm in tiles_m:
            for tn in gemm.TILE_SIZES:
                patch.setattr(gemm, "dispatched_tiles", lambda *a, tm=tm, tn=tn, **kw: (tm, tn))
                one = gemm.time_s(hardware, params, m=m, n=n, k=k)
                best = one if best is None else np.minimum(best, one)
    return np.asarray(best)


@settings(max_examples=20, deadline=None)
@given(params_strategy(), st.integers(0, 2**32 - 1))
def test_the_tile_axis_and_the_tile_loop_give_the_bits_of_one_tile_at_a_time(
    params: gemm.Params, seed: int
) -> None:
    """Both reductions over the candidate tiles (one leading axis at or below ``TILE_AXIS_MAX_ELEMENTS``,
    a running minimum above it) equal the per-tile oracle to the bit, in value, shape and dtype: on
    shapes broadcast against each other, 0-element, NaN / inf / 0 / negative and integer inputs."""
    rng = np.random.default_rng(seed)
    params = dataclasses.replace(params, min_tile_m=float(rng.choice([16.0, 32.0, 64.0, 128.0])))
    sizes = np.floor(np.exp(rng.uniform(0.0, 10.0, (3, 4))))
    odd = np.array([np.nan, np.inf, -np.inf, 0.0, -3.0, 1.0])
    cases = [
        (sizes[:, :1], sizes[:1, :], 512.0),  # (3, 1) x (1, 4)
        (sizes[:, :1, None], sizes[0], sizes[1, :1]),  # (3, 1, 1) x (4,) x (1,)
        (np.zeros((0,)), 4096.0, 4096.0),
        (np.ones((2, 0)), np.ones((1, 1)), 8.0),
        (odd, rng.permutation(odd), 4096.0),
        (sizes.astype(np.int64), 1024, np.int32(2048)),
        (float(sizes[0, 0]), 4096.0, 4096.0),
    ]
    for m, n, k in cases:
        oracle = _one_tile_at_a_time_s(H100, params, m, n, k)
        for threshold in (0, 10**9):  # the loop, then the tile axis
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(gemm, "TILE_AXIS_MAX_ELEMENTS", threshold)
                got = gemm.time_s(H100, params, m=m, n=n, k=k)
            assert got.shape == oracle.shape
            assert got.dtype == oracle.dtype
            np.testing.assert_array_equal(got, oracle, strict=True)


def test_a_large_call_keeps_a_few_shape_sized_temporaries() -> None:
    """Above ``TILE_AXIS_MAX_ELEMENTS`` the tiles are timed one at a time: the peak memory is a few arrays
    of the call's shape, not one per candidate tile (12 at ``min_tile_m`` 16; the tile axis peaked at
    about 97 result-sized arrays at 1e6 shapes)."""
    import tracemalloc

    params = dataclasses.replace(gemm.default_params(H100, "bf16"), min_tile_m=16.0)
    m = np.arange(1.0, 200_001.0)
    assert m.size > gemm.TILE_AXIS_MAX_ELEMENTS
    tracemalloc.start()
    try:
        out = gemm.time_s(H100, params, m=m, n=4096.0, k=4096.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * out.nbytes


# ---- calibration ---------------------------------------------------------------------------------------


def synthetic(
    truth: gemm.Params, n_rows: int = 600, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    shapes = {name: rng.choice(SIZES, n_rows) for name in ("m", "n", "k")}
    measured = gemm.time_s(H100, truth, **shapes) * rng.lognormal(0.0, 0.01, n_rows)
    return measured, shapes


def test_fit_recovers_known_gemm_parameters() -> None:
    truth = dataclasses.replace(
        gemm.default_params(H100, "bf16"), compute_fraction=0.82, bandwidth_fraction=0.9, launch_s=3e-6
    )
    measured, shapes = synthetic(truth)
    fitted = fit_params(gemm, H100, "bf16", measured, shapes)
    assert fitted.compute_fraction == pytest.approx(0.82, rel=0.05)
    assert fitted.bandwidth_fraction == pytest.approx(0.9, rel=0.05)
    assert fitted.launch_s == pytest.approx(3e-6, rel=0.15)
    assert fitted.quantize_row_s == truth.quantize_row_s  # no quantization pass in bf16: never moved


def test_calibrated_profile_round_trip_and_transfer(tmp_path: Path) -> None:
    truth = dataclasses.replace(gemm.default_params(H100, "bf16"), compute_fraction=0.8, launch_s=2e-6)
    measured, shapes = synthetic(truth, 300)
    group = MeasuredGroup("h100-sxm", gemm, "bf16:cublas", measured, shapes)
    data = Measurements([group], source="synthetic", revision="r1", row_rule="all rows")
    outcome = calibrate_measurements(data, date="2026-12-01", costmodel_revision="abc")
    assert set(outcome.calibrations) >= {"h100-sxm", "h200"}  # h200 <- h100-sxm by the transfer rule
    assert outcome.calibrations["h200"].record.transferred_from == "h100-sxm"
    assert outcome.calibrations["h100-sxm"].record.rows == {"gemm": 300}
    paths = write_overlays(outcome.calibrations, tmp_path)
    loaded = load_hardware(str(tmp_path / "h100-sxm.yaml"))
    assert loaded.datasheet == H100.datasheet  # an overlay keeps the built-in datasheet
    exact = params_for(loaded, gemm, "bf16:cublas")
    assert exact.compute_fraction == pytest.approx(0.8, rel=0.05)
    assert params_for(loaded, gemm, "bf16").compute_fraction == exact.compute_fraction  # pooled dtype key
    assert params_for(loaded, gemm, "fp8") == gemm.default_params(loaded, "fp8")  # nothing fitted: default
    h200 = load_hardware(str(tmp_path / "h200.yaml"))
    assert params_for(h200, gemm, "bf16:cublas").compute_fraction == exact.compute_fraction
    assert h200.datasheet.memory_bandwidth_tb_per_s.value > H100.datasheet.memory_bandwidth_tb_per_s.value
    assert len(paths) == len(outcome.calibrations)


def test_every_copy_a_benchmark_cycles_through_must_fit_the_l2() -> None:
    """A harness that runs c layers of one shape in turn keeps them all in L2 only when c copies of the
    weights fit: the same GEMM is cache-fast alone and streams from DRAM among six copies."""
    l40s = load_hardware("l40s")
    params = dataclasses.replace(gemm.default_params(l40s, "bf16"), launch_s=0.0, cache_bandwidth_ratio=2.0)
    plain = dataclasses.replace(params, cache_bandwidth_ratio=1.0)
    k = 4096.0
    n = np.floor(0.5 * gemm.cache_bytes(l40s) / (2 * k))  # weights: half the L2
    alone = gemm.time_s(l40s, params, m=1.0, n=n, k=k)
    assert alone == pytest.approx(gemm.time_s(l40s, plain, m=1.0, n=n, k=k) / 2.0, rel=1e-9)
    six = gemm.time_s(l40s, params, m=1.0, n=n, k=k, weight_copies=6.0)
    assert six == gemm.time_s(l40s, plain, m=1.0, n=n, k=k)
    assert gemm.time_s(l40s, params, m=1.0, n=n, k=k, weight_copies=1.0) == alone  # 1: the default


def test_a_kernel_that_never_splits_k_runs_a_lone_tile_on_one_sm() -> None:
    """``max_splits`` 1 (vLLM's CUTLASS 2.x kernels, launched without split-K or stream-K): a one-tile GEMM
    with a long k takes the whole k loop on one SM, as long as the same GEMM's k loop over all the SMs
    would take times the splits it loses."""
    l40s = load_hardware("l40s")
    split = dataclasses.replace(gemm.default_params(l40s, "bf16"), launch_s=0.0, k_step_s=1e-6)
    lone = dataclasses.replace(split, max_splits=1.0)
    shape = {"m": 16.0, "n": 64.0, "k": 65536.0}  # one 64 x 64 tile
    steps = shape["k"] / gemm.K_STEP
    assert gemm.time_s(l40s, lone, **shape) == pytest.approx(steps * lone.k_step_s, rel=1e-9)
    assert gemm.time_s(l40s, split, **shape) == pytest.approx(
        steps / split.max_splits * split.k_step_s, rel=1e-9
    )


def test_a_library_that_splits_k_only_when_it_is_long_against_n() -> None:
    """``split_min_k_per_n`` r: below k = r n the k loop is not split (the GEMM runs as with ``max_splits``
    1), from k = r n on it is split as without the gate; 0 keeps the ungated model."""
    a100 = load_hardware("a100-80gb")
    split = dataclasses.replace(gemm.default_params(a100, "bf16"), launch_s=0.0, k_step_s=1e-6)
    gated = dataclasses.replace(split, split_min_k_per_n=3.0)
    lone = dataclasses.replace(split, max_splits=1.0)
    n = 1024.0
    short = {"m": 16.0, "n": n, "k": 3.0 * n - 256.0}
    long = {"m": 16.0, "n": n, "k": 3.0 * n}
    assert gemm.time_s(a100, gated, **short) == gemm.time_s(a100, lone, **short)
    assert gemm.time_s(a100, gated, **short) > gemm.time_s(a100, split, **short)
    assert gemm.time_s(a100, gated, **long) == gemm.time_s(a100, split, **long)
    assert "split_min_k_per_n" not in gemm.BOUNDS  # a corner's property, not moved by the fit


def test_a_host_floor_is_hidden_behind_longer_gpu_work_not_added_to_it() -> None:
    """``host_floor_s``: back-to-back eager calls take max(host dispatch, GPU time): a GEMM shorter than the
    floor takes the floor whatever its size, a longer one its own time; a CUDA-graph replay (serving) pays
    no floor."""
    from costmodel import kernel_times

    l40s = load_hardware("l40s")
    bare = dataclasses.replace(gemm.default_params(l40s, "fp8_block"), launch_s=1e-5)
    floored = dataclasses.replace(bare, host_floor_s=3e-4)
    small = {"m": np.array([1.0, 64.0, 512.0]), "n": 1024.0, "k": 1024.0}
    assert np.all(gemm.time_s(l40s, bare, **small) < floored.host_floor_s)
    assert gemm.time_s(l40s, floored, **small) == pytest.approx(np.full(3, floored.host_floor_s))
    large = {"m": 16384.0, "n": 16384.0, "k": 16384.0}
    assert gemm.time_s(l40s, bare, **large) > floored.host_floor_s
    assert gemm.time_s(l40s, floored, **large) == gemm.time_s(l40s, bare, **large)
    serving = kernel_times.step_params(
        l40s, gemm, "fp8_block:vllm:TritonFp8BlockScaledMMKernel", launch_s=5e-6
    )
    assert serving.host_floor_s == 0.0


def test_vllm_sm89_fp8_runs_the_tile_its_dispatch_names() -> None:
    """vLLM's CUTLASS 2.x fp8 on sm89 takes its tile from a table by m and n (``VLLM_SM89_FP8_TILES``), one
    CTA per tile over the whole k: m = 512 runs 128 x 128 tiles, so n = 32 (4 tiles) and n = 1,024 (32
    tiles) both fill less than one wave and take the same compute time; the best-tile rule (other keys,
    other devices) would run the narrow one on smaller tiles, faster."""
    l40s = load_hardware("l40s")
    key = gemm.VLLM_SM89_FP8_KERNEL
    params = dataclasses.replace(gemm.default_params(l40s, key), launch_s=0.0, max_splits=1.0)
    params = dataclasses.replace(params, quantize_bandwidth_fraction=1.0)
    shape = {"m": 512.0, "k": 12288.0}
    narrow, wide = (gemm.time_s(l40s, params, **shape, n=n) for n in (32.0, 1024.0))
    assert narrow == pytest.approx(wide, rel=1e-9)
    best = dataclasses.replace(params, dtype="fp8:trtllm")  # a kernel whose dispatch the model does not know
    assert gemm.time_s(l40s, best, **shape, n=32.0) < narrow
    tiles = gemm.dispatched_tiles(l40s, key, m=np.array([1.0, 16.0, 17.0, 33.0, 100.0, 200.0, 512.0]), n=32.0)
    assert tiles is not None
    # m buckets by max(16, next_pow_2(m)): m <= 16 takes the 16-row config, m = 17 the 32-row one
    assert tiles[0].tolist() == [16.0, 16.0, 32.0, 64.0, 64.0, 64.0, 128.0]
    wide = gemm.dispatched_tiles(l40s, key, m=np.array([8.0, 8.0]), n=np.array([16384.0, 32768.0]))
    assert wide is not None
    assert wide[0].tolist() == [16.0, 32.0]  # M16's tiles by n
    assert wide[1].tolist() == [128.0, 64.0]
    assert gemm.dispatched_tiles(H100, key, m=1.0, n=1.0) is None
    assert gemm.dispatched_tiles(l40s, "fp8_block:vllm", m=1.0, n=1.0) is None


def test_fp4_default_compute_fraction_is_the_sourced_sustained_fp4_share() -> None:
    """Where nothing is fitted for nvfp4, a GEMM, an NVFP4 grouped GEMM and the MLA module's GEMMs take the
    profile's measured ``datasheet.sustained_fp4_fraction`` as their compute fraction (B200: cuBLASLt
    MXFP4 5,239 of 9,000 TFLOPS, DeepGEMM PR 348), and so does the roofline mode (the same GEMMs on the same
    tensor cores); the other formats, and a device that states no fp4 share, keep the efficiency fraction;
    an efficiency entry for fp4 still wins. The GB200 states none: Azure's cuBLASLt 'FP4' harness sets no
    block-scale mode, so its figure is not a block-scaled FP4 GEMM's (review 20b)."""
    from costmodel import roofline
    from costmodel.kernels import mla, moe

    hw = load_hardware("b200")
    share = hw.datasheet.sustained_fp4_fraction
    assert share is not None
    assert share.value == pytest.approx(5239.0 / 9000.0, abs=5e-4)
    assert gemm.default_params(hw, "nvfp4:trtllm:torch_flow").compute_fraction == share.value
    assert moe.default_params(hw, "nvfp4:vllm:any").compute_fraction == share.value
    assert mla.default_params(hw, "trtllm.default:ctx_module:bf16/nvfp4").gemm_compute_fraction == share.value
    assert mla.default_params(hw, "trtllm.default:ctx_module:bf16/fp8").gemm_compute_fraction == (
        hw.efficiency.matmul_fraction
    )
    # the roofline's compute roof for fp4 inputs: peak x share, over the derated bandwidth at the ridge
    bandwidth = hw.memory_bandwidth_bytes_per_s * hw.efficiency.memory_bandwidth_fraction
    ridge = roofline.ridge_point_flop_per_byte(hw, activation_dtype="nvfp4")
    assert ridge == pytest.approx(hw.peak_flop_per_s("fp4") * share.value / bandwidth, rel=1e-12)
    for dtype in ("bf16", "fp8", "fp8_block"):
        assert gemm.default_params(hw, dtype).compute_fraction == hw.efficiency.matmul_fraction
    for name in ("gb200", "b300"):
        other = load_hardware(name)
        assert other.datasheet.sustained_fp4_fraction is None
        assert gemm.default_params(other, "nvfp4").compute_fraction == other.efficiency.matmul_fraction
        assert mla.default_params(other, "trtllm.default:ctx_module:bf16/nvfp4").gemm_compute_fraction == (
            other.efficiency.matmul_fraction
        )
    b200 = load_hardware("b200")
    pinned = b200.model_copy(
        update={"efficiency": b200.efficiency.model_copy(update={"matmul_fraction_by_dtype": {"fp4": 0.5}})}
    )
    assert gemm.default_params(pinned, "nvfp4").compute_fraction == 0.5
    # the share is the compute roof a large nvfp4 GEMM reaches on the datasheet: one full wave of 128 x 256
    # tiles (148 on the B200's 148 SMs) over a long k takes exactly flop / (peak x share), after the separate
    # activation quantization (bf16 read, fp4 + E4M3 scales written at the bandwidth)
    m, n, k = 128.0 * 148 / 4, 1024.0, 65536.0
    p = dataclasses.replace(gemm.default_params(b200, "nvfp4"), launch_s=0.0, quantize_bandwidth_fraction=1.0)
    fp4_share = b200.datasheet.sustained_fp4_fraction
    assert fp4_share is not None
    roof = 2 * m * n * k / (b200.peak_flop_per_s("fp4") * fp4_share.value)
    quantize = m * k * (2.0 + 0.5 + 1.0 / 16) / b200.memory_bandwidth_bytes_per_s
    assert float(gemm.time_s(b200, p, m=m, n=n, k=k)) == pytest.approx(roof + quantize, rel=1e-9)
    # the docs state the same figures
    docs = (Path(__file__).parents[1] / "docs" / "validation.md").read_text(encoding="utf-8")
    assert "| 0.582 of 9,000 |" in docs


def test_a_bad_sustained_fp4_share_is_refused_naming_the_field(tmp_path: Path) -> None:
    """A share above 1, or on a device without an fp4 peak, is refused naming the field and the fix."""
    from costmodel.registry import calibrated_dir, load_hardware_file

    text = (calibrated_dir().parent / "b200.yaml").read_text(encoding="utf-8")
    assert "sustained_fp4_fraction: {value: 0.582," in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text.replace("sustained_fp4_fraction: {value: 0.582,", "sustained_fp4_fraction: {value: 5239,")
    )
    with pytest.raises(CostmodelError, match=r"sustained_fp4_fraction \(5239\) .* at most 1"):
        load_hardware_file(bad)
    no_peak = "\n".join(line for line in text.splitlines() if not line.startswith("    fp4:"))
    bad.write_text(no_peak)
    with pytest.raises(CostmodelError, match="sustained_fp4_fraction is a share of the dense fp4 peak"):
        load_hardware_file(bad)
