"""Context and generation attention kernel models: counts against brute force, physics invariants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from costmodel import load_hardware
from costmodel.errors import CostmodelError
from costmodel.kernels import context_attention as ctx
from costmodel.kernels import generation_attention as gen

DEVICES = ("h100-sxm", "b200", "a100-80gb", "l40s")


def _brute_force_pairs(seq_len: int, window: int) -> int:
    """(query, key) pairs a causal (windowed) mask keeps, by enumerating the mask."""
    i = np.arange(seq_len)[:, None]
    j = np.arange(seq_len)[None, :]
    keep = j <= i
    if window > 0:
        keep &= j > i - window
    return int(keep.sum())


@pytest.mark.parametrize("seq_len", [1, 2, 7, 128, 129, 300])
@pytest.mark.parametrize("window", [0, 1, 16, 128, 1000])
def test_causal_pairs_match_the_enumerated_mask(seq_len: int, window: int) -> None:
    assert ctx.causal_pairs(seq_len, window) == _brute_force_pairs(seq_len, window)


@pytest.mark.parametrize("seq_len", [1024, 4096, 16384])
def test_causal_computes_about_half_the_full_pairs(seq_len: int) -> None:
    """Causal skips the tiles above the diagonal: ~s^2/2 plus the masked half of the diagonal tiles."""
    tile = 128.0
    _, unmasked_c, masked_c, _ = ctx.computed_pairs(seq_len, 0, True, tile)
    _, unmasked_f, masked_f, _ = ctx.computed_pairs(seq_len, 0, False, tile)
    ratio = (unmasked_c + masked_c) / (unmasked_f + masked_f)
    assert masked_f == 0
    assert 0.5 < ratio <= 0.5 + 1.5 * tile / seq_len


@pytest.mark.parametrize("device", DEVICES)
def test_causal_time_is_about_half_the_full_time_for_long_prompts(device: str) -> None:
    hw = load_hardware(device)
    p = ctx.default_params(hw, "bf16")
    shape = dict(batch_size=4, seq_len=16384, n_heads=32, n_kv_heads=8, head_dim=128)
    ratio = ctx.time_s(hw, p, causal=True, **shape) / ctx.time_s(hw, p, causal=False, **shape)
    assert 0.45 < ratio < 0.6


@pytest.mark.parametrize("device", DEVICES)
def test_defaults_come_from_the_datasheet(device: str) -> None:
    hw = load_hardware(device)
    p = ctx.default_params(hw, "bf16")
    assert p.peak_flop_per_s == hw.peak_flop_per_s("bf16")
    assert p.bandwidth_bytes_per_s == hw.memory_bandwidth_bytes_per_s
    assert p.sm_count == hw.datasheet.compute_units.value  # type: ignore[union-attr]
    g = gen.default_params(hw, "kernel:bf16+fp8kv")
    assert g.bandwidth_bytes_per_s == hw.memory_bandwidth_bytes_per_s
    l2 = hw.datasheet.on_chip_cache_mib
    assert g.cache_bytes == (0.0 if l2 is None else l2.value * 2**20)
    assert g.cache_bandwidth_ratio == 1.0  # no L2 speed-up without a measurement


def test_fp8_key_uses_the_fp8_peak() -> None:
    hw = load_hardware("h100-sxm")
    assert ctx.default_params(hw, "trtllm.torch_flow:fp8").peak_flop_per_s == hw.peak_flop_per_s("fp8")
    assert ctx.compute_dtype("vllm.fa3:bf16+fp8kv") == "bf16"


def test_bad_keys_and_profiles_are_clear_errors() -> None:
    hw = load_hardware("h100-sxm")
    with pytest.raises(CostmodelError, match="compute dtype 'int3'"):
        ctx.default_params(hw, "x:int3")
    no_sms = hw.model_copy(update={"datasheet": hw.datasheet.model_copy(update={"compute_units": None})})
    with pytest.raises(CostmodelError, match="compute_units"):
        gen.default_params(no_sms, "bf16")


@pytest.mark.parametrize("device", DEVICES)
def test_context_time_is_monotone_in_every_size(device: str) -> None:
    hw = load_hardware(device)
    p = ctx.default_params(hw, "bf16")
    base = dict(batch_size=4.0, seq_len=2048.0, n_heads=32.0, n_kv_heads=8.0, head_dim=128.0)
    for name, values in {
        "seq_len": np.array([1, 16, 100, 128, 129, 1000, 4096, 16384]),
        "batch_size": np.array([1, 2, 8, 64, 256]),
        "n_heads": np.array([8, 16, 32, 64]),
        "head_dim": np.array([64, 128, 256]),
    }.items():
        times = ctx.time_s(hw, p, **{**base, name: values.astype(float)})
        assert np.all(np.diff(times) >= 0), name


@pytest.mark.parametrize("device", DEVICES)
def test_context_never_beats_the_tensor_peak(device: str) -> None:
    hw = load_hardware(device)
    p = dataclasses.replace(ctx.default_params(hw, "bf16"), compute_fraction=1.0, launch_s=0.0)
    s = np.array([16.0, 512.0, 4096.0, 16384.0])
    useful_flop = 4 * 128 * 2 * 32 * ctx.causal_pairs(s)
    t = ctx.time_s(hw, p, batch_size=2, seq_len=s, n_heads=32, n_kv_heads=8, head_dim=128)
    assert np.all(t >= useful_flop / hw.peak_flop_per_s("bf16"))


def test_a_window_caps_the_work() -> None:
    hw = load_hardware("h100-sxm")
    p = ctx.default_params(hw, "bf16")
    shape = dict(batch_size=1, seq_len=np.array([256.0, 8192.0]), n_heads=32, n_kv_heads=8, head_dim=128)
    full = ctx.time_s(hw, p, **shape)
    windowed = ctx.time_s(hw, p, window=1024, **shape)
    assert windowed[0] == pytest.approx(full[0])  # window longer than the prompt: no change
    assert windowed[1] < 0.5 * full[1]


def test_scalars_and_arrays_agree() -> None:
    hw = load_hardware("b200")
    p = ctx.default_params(hw, "bf16")
    s = np.array([64.0, 1000.0, 8192.0])
    arr = ctx.time_s(hw, p, batch_size=2, seq_len=s, n_heads=16, n_kv_heads=4, head_dim=128)
    one = [
        float(ctx.time_s(hw, p, batch_size=2, seq_len=v, n_heads=16, n_kv_heads=4, head_dim=128)) for v in s
    ]
    np.testing.assert_allclose(arr, one)
    g = gen.default_params(hw, "bf16")
    arr = gen.time_s(hw, g, batch_size=8, kv_len=s, n_heads=16, n_kv_heads=4, head_dim=128)
    one = [
        float(gen.time_s(hw, g, batch_size=8, kv_len=v, n_heads=16, n_kv_heads=4, head_dim=128)) for v in s
    ]
    np.testing.assert_allclose(arr, one)


def test_kv_cache_bytes_match_the_tensors() -> None:
    """K and V as numpy tensors [batch, tokens, kv_heads, head_dim] of a 2-byte type."""
    b, length, hkv, d = 3, 37, 4, 64
    k = np.zeros((b, length, hkv, d), dtype=np.float16)
    assert gen.kv_cache_bytes(batch_size=b, kv_len=length, n_kv_heads=hkv, head_dim=d) == 2 * k.nbytes
    assert gen.kv_cache_bytes(batch_size=b, kv_len=length, n_kv_heads=hkv, head_dim=d, window=10) == (
        2 * k[:, :10].nbytes
    )


@pytest.mark.parametrize("device", DEVICES)
def test_decode_never_beats_the_datasheet_bandwidth(device: str) -> None:
    hw = load_hardware(device)
    p = gen.default_params(hw, "bf16")
    b, length = np.meshgrid([1.0, 8.0, 64.0, 512.0], [1.0, 128.0, 4096.0, 65536.0])
    for kv_bytes in (2.0, 1.0):
        shape = dict(batch_size=b, kv_len=length, n_kv_heads=8, head_dim=128, kv_bytes=kv_bytes)
        t = gen.time_s(hw, p, n_heads=32, **shape)
        assert np.all(t >= gen.kv_cache_bytes(**shape) / hw.memory_bandwidth_bytes_per_s)


@pytest.mark.parametrize("device", DEVICES)
def test_decode_is_monotone_in_batch_and_length(device: str) -> None:
    hw = load_hardware(device)
    p = gen.default_params(hw, "bf16")
    lengths = np.array([1.0, 64.0, 256.0, 1024.0, 8192.0, 131072.0])
    for batch in (1.0, 16.0, 256.0):
        t = gen.time_s(hw, p, batch_size=batch, kv_len=lengths, n_heads=32, n_kv_heads=8, head_dim=128)
        assert np.all(np.diff(t) >= 0)
    batches = np.array([1.0, 2.0, 16.0, 128.0, 2048.0])
    t = gen.time_s(hw, p, batch_size=batches, kv_len=4096, n_heads=32, n_kv_heads=8, head_dim=128)
    assert np.all(np.diff(t) >= 0)


def test_fp8_kv_halves_a_long_decode() -> None:
    hw = load_hardware("h100-sxm")
    p = gen.default_params(hw, "bf16")
    shape = dict(batch_size=64, kv_len=65536, n_heads=32, n_kv_heads=8, head_dim=128)
    ratio = gen.time_s(hw, p, kv_bytes=1.0, **shape) / gen.time_s(hw, p, kv_bytes=2.0, **shape)
    assert 0.5 <= ratio < 0.55


def test_split_k_fills_the_gpu_for_one_long_sequence() -> None:
    """One sequence and one KV head: without split-K a single CTA would stream the whole cache."""
    hw = load_hardware("h100-sxm")
    p = gen.default_params(hw, "bf16")
    shape = dict(batch_size=1, kv_len=131072, n_kv_heads=1, head_dim=128)
    one_cta_s = gen.kv_cache_bytes(**shape) / (hw.memory_bandwidth_bytes_per_s * p.per_cta_bandwidth_fraction)
    assert gen.time_s(hw, p, n_heads=8, **shape) < one_cta_s / 10


def test_an_l2_resident_cache_streams_faster_only_when_it_fits() -> None:
    hw = load_hardware("l40s")
    p = dataclasses.replace(gen.default_params(hw, "bf16"), cache_bandwidth_ratio=3.0, launch_s=0.0)
    cold = dataclasses.replace(p, cache_bytes=0.0)
    small = dict(batch_size=64, kv_len=256, n_heads=32, n_kv_heads=8, head_dim=128)  # 67 MB < 96 MiB
    large = dict(batch_size=64, kv_len=4096, n_heads=32, n_kv_heads=8, head_dim=128)
    assert gen.time_s(hw, p, **small) < gen.time_s(hw, cold, **small)
    assert gen.time_s(hw, p, **large) == pytest.approx(gen.time_s(hw, cold, **large))


@pytest.mark.parametrize("overhead_s", [0.0, 1e-6, 2e-5])
@pytest.mark.parametrize("groups", [1.0, 4.0, 24.0])
def test_split_k_takes_the_allowed_count_with_the_least_time(overhead_s: float, groups: float) -> None:
    """The split count is the one an exhaustive search over every allowed count finds fastest: more CTAs
    until the bandwidth saturates, none past the point where their per-CTA overhead costs more than it
    saves, and no split at all where the reduction pass costs more than splitting gains."""
    hw = load_hardware("h100-sxm")
    p = dataclasses.replace(
        gen.default_params(hw, "bf16"), cta_overhead_s=overhead_s, combine_s=3e-6, split_min_tokens=64.0
    )
    top = 16.0  # <= ceil(132 / groups) for every case, so the SM-filling rule below runs exactly s splits
    for length in (128.0, 2048.0, 65536.0):
        moved = gen.kv_cache_bytes(batch_size=groups, kv_len=length, n_kv_heads=1, head_dim=128)
        shape = dict(total_bytes=moved, flop=0.0, ctas_unsplit=groups, kv_len=length)
        allowed = min(top, length // 64)
        forced = [
            float(gen.stream_time_s(dataclasses.replace(p, max_splits=s), **shape))
            for s in np.arange(1.0, allowed + 1)
        ]
        best = float(gen.stream_time_s(dataclasses.replace(p, max_splits=top), best_split=True, **shape))
        assert best == pytest.approx(min(forced), rel=1e-12)


def test_a_transferred_calibration_keeps_the_targets_own_datasheet() -> None:
    """The transfer rule reuses fitted fractions and times, never the source's peak or bandwidth: an H200
    given the H100's decode fit streams at its own 4.8 TB/s."""
    from costmodel.calibrate import transferable
    from costmodel.kernels import numeric_fields

    h100, h200 = load_hardware("h100-sxm"), load_hardware("h200")
    fit = dataclasses.replace(gen.default_params(h100, "bf16"), bandwidth_fraction=0.9, launch_s=7e-6)
    moved = transferable({"generation_attention": {"k:bf16": numeric_fields(fit)}}, h100)
    values = moved["generation_attention"]["k:bf16"]
    assert values["bandwidth_fraction"] == 0.9
    assert values["launch_s"] == 7e-6
    target = dataclasses.replace(gen.default_params(h200, "bf16"), **values)
    assert (
        target.bandwidth_bytes_per_s == h200.memory_bandwidth_bytes_per_s > h100.memory_bandwidth_bytes_per_s
    )


@pytest.mark.parametrize("device", DEVICES)
def test_hidden_cta_overhead_lies_between_the_larger_part_and_the_sum(device: str) -> None:
    """Overlapping the per-CTA overhead with the streaming never makes decode slower than running them one
    after the other, nor faster than the longer of the two."""
    hw = load_hardware(device)
    serial = dataclasses.replace(gen.default_params(hw, "bf16"), cta_overhead_s=4e-6, launch_s=0.0)
    b, length = np.meshgrid([1.0, 16.0, 256.0, 2048.0], [2.0, 128.0, 1024.0, 32768.0])
    shape = dict(batch_size=b, kv_len=length, n_heads=32, n_kv_heads=8, head_dim=128)
    t_serial = gen.time_s(hw, serial, **shape)
    hidden = gen.time_s(hw, dataclasses.replace(serial, cta_overlap_fraction=1.0), **shape)
    half = gen.time_s(hw, dataclasses.replace(serial, cta_overlap_fraction=0.5), **shape)
    no_overhead = gen.time_s(hw, dataclasses.replace(serial, cta_overhead_s=0.0), **shape)
    assert np.all(hidden <= half)
    assert np.all(half <= t_serial)
    assert np.all(hidden >= no_overhead * (1 - 1e-12))


def test_waves_are_never_faster_than_the_fluid_limit_and_equal_it_in_one_wave() -> None:
    """Streaming over ctas CTAs, slots at a time: a single wave is the fluid formula; more CTAs than slots
    take at least bytes / min(device, slots x per-CTA) and pay a whole wave for a partial one when the
    CTAs in flight cannot saturate the device."""
    moved = np.full(6, 1e9)
    ctas = np.array([10.0, 100.0, 132.0, 133.0, 264.0, 265.0])
    device_bw, cta_bw, slots = np.array(3e12), np.array(1e10), 132.0
    t = gen.wave_load_s(moved, ctas, slots, device_bw, cta_bw)
    fluid = moved / np.minimum(device_bw, np.minimum(ctas, slots) * cta_bw)
    assert np.all(t >= fluid * (1 - 1e-12))
    np.testing.assert_allclose(t[:3], moved[:3] / np.minimum(device_bw, ctas[:3] * cta_bw))
    per_cta_s = moved / ctas / cta_bw
    np.testing.assert_allclose(t[3:], np.ceil(ctas[3:] / slots) * per_cta_s[3:])  # 2, 2, 3 waves


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("resident", [1.0, 2.0, 64.0])
def test_decode_with_waves_and_hidden_overhead_stays_monotone(device: str, resident: float) -> None:
    hw = load_hardware(device)
    p = dataclasses.replace(
        gen.default_params(hw, "bf16"),
        resident_ctas_per_sm=resident,
        cta_overlap_fraction=0.8,
        cta_overhead_s=3e-6,
    )
    batches = np.array([1.0, 2.0, 16.0, 100.0, 128.0, 129.0, 1000.0, 2048.0])
    for length in (2.0, 4096.0, 131072.0):
        t = gen.time_s(hw, p, batch_size=batches, kv_len=length, n_heads=32, n_kv_heads=8, head_dim=128)
        assert np.all(np.diff(t) >= 0)
    lengths = np.array([1.0, 64.0, 256.0, 4096.0, 65536.0])
    t = gen.time_s(hw, p, batch_size=64.0, kv_len=lengths, n_heads=32, n_kv_heads=8, head_dim=128)
    assert np.all(np.diff(t) >= 0)


@pytest.mark.parametrize("device", DEVICES)
def test_a_window_grid_over_the_whole_sequence_grows_until_it_fills_the_gpu(device: str) -> None:
    """A kernel that sizes its split grid by the whole cached sequence pays each chunk's fixed time even
    where the window skips its tokens: at batch 1 the time grows with the cache length, stays above the
    window's own bytes, and once the grid fills the resident slots it stops growing. Within the window
    both grids are the same kernel."""
    hw = load_hardware(device)
    by_window = dataclasses.replace(
        gen.default_params(hw, "bf16"), cta_overhead_s=4e-6, resident_ctas_per_sm=8.0
    )
    by_sequence = dataclasses.replace(by_window, window_grid_full_length=1.0)
    lengths = np.array([64.0, 128.0, 1024.0, 16384.0, 1048576.0, 4194304.0])
    shape = dict(batch_size=1.0, n_heads=32, n_kv_heads=8, head_dim=64, window=128)
    t = gen.time_s(hw, by_sequence, kv_len=lengths, **shape)
    assert np.all(np.diff(t) >= 0)
    assert t[-1] == pytest.approx(t[-2])  # the grid is full
    assert t[3] > gen.time_s(hw, by_window, kv_len=lengths[3], **shape)
    np.testing.assert_allclose(t[:2], gen.time_s(hw, by_window, kv_len=lengths[:2], **shape))
    window_bytes = gen.kv_cache_bytes(batch_size=1, kv_len=128, n_kv_heads=8, head_dim=64)
    assert np.all(t >= window_bytes / hw.memory_bandwidth_bytes_per_s)


def test_flashinfer_tile_height_follows_the_packed_length() -> None:
    """FlashInfer's FA2DetermineCtaTileQ (include/flashinfer/utils.cuh): 128 rows above 64 packed rows
    below head_dim 256, 64 above 16 rows, else 16."""
    rows = np.array([1, 16, 17, 64, 65, 65, 4096])
    head_dim = np.array([128, 128, 128, 128, 128, 256, 256])
    assert ctx.packed_tile_rows(rows, head_dim).tolist() == [16, 16, 64, 64, 128, 64, 64]


def test_a_packed_gqa_prefill_launches_one_cta_per_kv_head_and_packed_tile() -> None:
    """With every rate made instant, the time is the CTAs' fixed cost spread over the SMs plus the last
    CTA's: the CTA count of FlashInfer's grid, batch x KV heads x ceil(tokens x group / tile rows)."""
    hw = load_hardware("l40s")
    p = ctx.default_params(hw, "vllm.vllm_flashinfer_fiprefill:bf16+fp8kv")
    assert p.gqa_packed == 1.0
    assert ctx.default_params(hw, "vllm.vllm_flash_attn_fa2:bf16").gqa_packed == 0.0
    overhead = 1e-6
    instant = dataclasses.replace(
        p,
        peak_flop_per_s=1e30,
        softmax_pairs_per_s=1e30,
        bandwidth_bytes_per_s=1e30,
        launch_s=0.0,
        cta_overhead_s=overhead,
    )
    batch, seq_len, heads, kv_heads = 4.0, 16.0, 32.0, 8.0  # group 4: 64 packed rows, one 64-row tile
    t = ctx.time_s(hw, instant, batch_size=batch, seq_len=seq_len, n_heads=heads, n_kv_heads=kv_heads,
                   head_dim=128.0)  # fmt: skip
    ctas = batch * kv_heads * np.ceil(seq_len * 4 / 64)
    assert float(t) == pytest.approx(overhead * (ctas / p.sm_count + 1.0), rel=1e-9)
    unpacked = dataclasses.replace(instant, gqa_packed=0.0)
    t0 = ctx.time_s(hw, unpacked, batch_size=batch, seq_len=seq_len, n_heads=heads, n_kv_heads=kv_heads,
                    head_dim=128.0)  # fmt: skip
    assert float(t0) == pytest.approx(overhead * (batch * heads / p.sm_count + 1.0), rel=1e-9)


def test_a_short_packed_tile_runs_at_its_rows_share_of_the_pair_rate() -> None:
    """``feed_rows``: a 64-row FlashInfer tile does half the MMAs per K / V tile of a 128-row one; with
    ``feed_rows`` 128 its key loop takes twice as long as with no slowdown (16), a 128-row tile's the same."""
    hw = load_hardware("l40s")
    p = dataclasses.replace(
        ctx.default_params(hw, "vllm.vllm_flashinfer_fiprefill:bf16+fp8kv"),
        launch_s=0.0,
        cta_overhead_s=0.0,
        bandwidth_bytes_per_s=1e30,
    )
    shape = {"batch_size": 256.0, "n_heads": 32.0, "n_kv_heads": 8.0, "head_dim": 128.0}
    slow, fast = (dataclasses.replace(p, feed_rows=rows) for rows in (128.0, 16.0))
    few = ctx.time_s(hw, slow, seq_len=8.0, **shape) / ctx.time_s(hw, fast, seq_len=8.0, **shape)  # 32 rows
    assert float(few) == pytest.approx(2.0, rel=1e-9)  # 32 packed rows run in a 64-row tile
    many = ctx.time_s(hw, slow, seq_len=512.0, **shape) / ctx.time_s(hw, fast, seq_len=512.0, **shape)
    assert float(many) == pytest.approx(1.0, rel=1e-12)


def _swapped_query_reshape_is_a_view(batch: int, n_kv_heads: int, group: int, head_dim: int = 8) -> bool:
    """FlashAttention-2's swap of a decode query, ``q.reshape(b, h_kv, g, d).transpose(1, 2).reshape(b g,
    h_kv, d)``, redone in numpy: setting ``.shape`` succeeds only where the reshape needs no copy (numpy's
    rule for strided views is torch's)."""
    q = np.zeros((batch, 1, n_kv_heads * group, head_dim)).reshape(batch, n_kv_heads, group, head_dim)
    swapped = q.transpose(0, 2, 1, 3)
    try:
        swapped.shape = (batch * group, n_kv_heads, head_dim)
    except AttributeError:
        return False
    return True


@pytest.mark.parametrize("batch", [1, 2, 3, 64])
@pytest.mark.parametrize("n_kv_heads", [1, 2, 8])
@pytest.mark.parametrize("group", [1, 2, 8])
def test_flash_attention_2_copies_the_query_exactly_where_the_swap_is_no_view(
    batch: int, n_kv_heads: int, group: int
) -> None:
    """The copy is charged where the swap happens (more query heads than KV heads) and the reshape is not
    a view (numpy oracle), and costs its fixed time plus reading and writing the bf16 query once."""
    hw = load_hardware("a100-80gb")
    key = "vllm.vllm_flash_attn:bf16"
    with_copy = dataclasses.replace(gen.default_params(hw, key), query_copy_s=6e-6)
    without = dataclasses.replace(with_copy, query_copy_s=0.0)
    shape = dict(
        batch_size=batch, kv_len=100, n_heads=n_kv_heads * group, n_kv_heads=n_kv_heads, head_dim=128
    )
    extra = float(gen.time_s(hw, with_copy, **shape) - gen.time_s(hw, without, **shape))
    copies = group > 1 and not _swapped_query_reshape_is_a_view(batch, n_kv_heads, group)
    query_bytes = batch * n_kv_heads * group * 128 * 2.0
    rate = hw.memory_bandwidth_bytes_per_s * with_copy.bandwidth_fraction
    assert extra == pytest.approx(6e-6 + 2 * query_bytes / rate if copies else 0.0, rel=1e-9, abs=1e-15)
    windowed = float(
        gen.time_s(hw, with_copy, window=64, **shape) - gen.time_s(hw, without, window=64, **shape)
    )
    assert windowed == 0.0  # a window turns the swap off


def test_only_flash_attention_2_grouped_keys_fit_the_query_copy() -> None:
    for key in (
        "vllm.vllm_flash_attn:bf16",
        "vllm.vllm_flash_attn_fa2:bf16",
        "vllm.vllm_flash_attn:bf16+wide",
    ):
        assert "query_copy_s" not in gen.fixed_for(key)
    for key in (
        "vllm.vllm_flash_attn_fa3:bf16",
        "trtllm.torch_flow:bf16",
        "vllm.vllm_flashinfer_trtllmdecode:bf16",
        "vllm.vllm_flash_attn:bf16+mha",
        "vllm.vllm_flash_attn_fa2:bf16+swa",
    ):
        assert "query_copy_s" in gen.fixed_for(key)
        assert all(p.query_copy_s == 0.0 for p in gen.initial_guesses(load_hardware("h100-sxm"), key))


FA2 = "vllm.vllm_flash_attn_fa2:bf16"


@pytest.mark.parametrize("device", ["a100-80gb", "l40s"])
def test_a_swapped_one_token_call_runs_one_cta_per_kv_head(device: str) -> None:
    # FlashAttention-2's varlen interface swaps a one-token GQA call's query heads into the sequence
    # dimension (seqlenq_ngroups_swapped): one CTA per (sequence, KV head), so with no copy (batch 1) the
    # call costs what an MHA call with n_kv_heads heads costs, whatever the query heads
    hw = load_hardware(device)
    p = dataclasses.replace(ctx.default_params(hw, FA2), launch_s=0.0)
    one = dict(batch_size=1.0, seq_len=1.0, head_dim=128.0)
    grouped = ctx.time_s(hw, p, **one, n_heads=np.array([16.0, 32.0, 64.0]), n_kv_heads=8.0)
    mha = ctx.time_s(hw, p, **one, n_heads=8.0, n_kv_heads=8.0)
    assert grouped == pytest.approx(np.full(3, mha), rel=0.02)
    # a kernel that never swaps (FlashInfer) runs one CTA per query head: more heads, more time
    flashinfer = ctx.default_params(hw, "vllm.vllm_flashinfer_fidecode:bf16+fp8kv")
    assert np.all(
        np.diff(ctx.time_s(hw, flashinfer, **one, n_heads=np.array([16.0, 64.0]), n_kv_heads=8.0)) > 0
    )


@pytest.mark.parametrize("device", ["a100-80gb", "l40s"])
def test_the_swapped_query_is_copied_only_where_the_swap_is_not_a_view(device: str) -> None:
    # q.reshape(b, h_kv, g, d).transpose(1, 2).reshape(b g, h_kv, d) is a view for one sequence or one KV
    # head; a window or a longer query turns the swap off
    hw = load_hardware(device)
    p = ctx.default_params(hw, FA2)
    shape = dict(seq_len=1.0, n_heads=32.0, head_dim=128.0)
    copy = ctx.swapped_query_copy_s
    assert copy(p, batch_size=8.0, n_kv_heads=8.0, **shape) >= p.query_copy_s > 0.0
    assert copy(p, batch_size=1.0, n_kv_heads=8.0, **shape) == 0.0
    assert copy(p, batch_size=8.0, n_kv_heads=1.0, **shape) == 0.0
    assert copy(p, batch_size=8.0, n_kv_heads=8.0, **shape, window=128.0) == 0.0
    assert copy(p, batch_size=8.0, n_kv_heads=8.0, **{**shape, "seq_len": 2.0}) == 0.0
    assert copy(p, batch_size=8.0, n_kv_heads=32.0, **shape) == 0.0  # MHA: nothing to swap
    other = ctx.default_params(hw, "vllm.vllm_flashinfer_fiprefill:bf16+fp8kv")
    assert copy(other, batch_size=8.0, n_kv_heads=8.0, **shape) == 0.0
    assert "query_copy_s" in ctx.fixed_for("vllm.vllm_flashinfer_fiprefill:bf16+fp8kv")
    assert "query_copy_s" not in ctx.fixed_for(FA2)


@pytest.mark.parametrize("device", DEVICES)
def test_a_decode_calls_default_fixed_cost_is_its_kernel_launches(device: str) -> None:
    """A decode-attention call launches the cache write and the attention kernel: its default ``launch_s`` is
    two of the profile's kernel launches, the count the serving step caps a fitted ``launch_s`` at
    (``kernel_times.GRAPH_LAUNCHES``), and the split-K reduction one more."""
    from costmodel.kernel_times import GRAPH_LAUNCHES

    hw = load_hardware(device)
    p = gen.default_params(hw, "vllm.vllm_flashinfer_fidecode:bf16+fp8kv")
    launches = GRAPH_LAUNCHES["generation_attention"]
    assert p.launch_s == pytest.approx(launches["launch_s"] * hw.efficiency.kernel_overhead_s)
    assert p.combine_s == pytest.approx(launches["combine_s"] * hw.efficiency.kernel_overhead_s)
    assert launches["launch_s"] == gen.CALL_LAUNCHES


@pytest.mark.parametrize(
    "key",
    [
        "vllm.vllm_flash_attn_fa3:bf16+fp8kv",
        "vllm.vllm_flash_attn_fa3:bf16+fp8kv+wide+swa",
        "vllm.vllm_flash_attn:bf16+fp8kv",
        "vllm.vllm_flashinfer_fidecode:bf16+fp8kv",
        "trtllm.torch_flow:bf16+fp8kv",
    ],
)
def test_an_fp8_kv_cache_adds_no_kernel_to_the_timed_decode_call(key: str) -> None:
    """An fp8 cache's query quantization is not in the tabled call: vLLM >= 0.11 quantizes the query in
    ``Attention.forward`` (PR #24914), not in the backend's ``forward``, and the collector casts the query to
    fp8 before the timed call. So an fp8-KV key nobody fitted defaults to the bf16 key's launches, and a serving
    step caps it at the same count (oracle: ``CALL_LAUNCHES`` kernels, the count of the bf16 call)."""
    from costmodel import kernel_times
    from costmodel.kernels import params_for

    hw = load_hardware("h100-sxm")
    bf16 = key.replace("+fp8kv", "")
    assert gen.default_params(hw, key).launch_s == gen.default_params(hw, bf16).launch_s
    assert gen.default_params(hw, key).launch_s == pytest.approx(
        gen.CALL_LAUNCHES * hw.efficiency.kernel_overhead_s
    )
    launch = kernel_times.launch_s(hw)
    fitted = params_for(hw, gen, key).launch_s
    step = kernel_times.step_params(hw, gen, key, launch_s=launch)
    assert step.launch_s == pytest.approx(min(fitted, gen.CALL_LAUNCHES * launch))


@pytest.mark.parametrize(
    ("key", "structure"),
    [
        ("vllm.vllm_flash_attn_fa2:bf16+swa", {"max_splits": 1.0, "heads_per_cta": 1.0}),
        ("vllm.vllm_flash_attn:bf16+wide+swa", {"max_splits": 1.0, "heads_per_cta": 1.0}),
        ("vllm.vllm_flash_attn_fa2:bf16+mha", {"max_splits": 1.0}),
        ("vllm.vllm_flash_attn_fa2:bf16", {}),  # the swapped path splits and packs the group
        ("vllm.vllm_flash_attn_fa2:bf16+wide", {}),
        ("vllm.vllm_flash_attn_fa3:bf16+swa", {}),  # FlashAttention-3 packs the group itself
        ("vllm.vllm_flashinfer_fidecode:bf16+fp8kv+swa", {}),
    ],
)
def test_flashattention2s_unswapped_decode_defaults_to_one_chunk_and_one_head_per_cta(
    key: str, structure: dict[str, float]
) -> None:
    """FlashAttention-2's varlen decode splits the KV only where it swaps the query heads (grouped heads, no
    window) and packs no group into a CTA with a window: the defaults of such keys say so, and then the
    reduction is never charged and every query head streams its KV head once."""
    hw = load_hardware("l40s")
    p = gen.default_params(hw, key)
    assert {name: getattr(p, name) for name in structure} == structure
    assert gen.unswapped_structure(key) == structure
    if structure:
        shapes = dict(batch_size=1, kv_len=65536, n_heads=32, n_kv_heads=8, head_dim=128)
        slow_combine = dataclasses.replace(p, combine_s=1e-3)
        assert gen.time_s(hw, slow_combine, **shapes) == pytest.approx(gen.time_s(hw, p, **shapes))
