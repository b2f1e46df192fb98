"""MLA kernel models: the absorbed decode streams the latent cache, prefill is naive attention, physics
invariants, and the fitter moves parameters the defaults leave insensitive."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from costmodel import load_hardware
from costmodel.calibrate import fit_params
from costmodel.errors import CostmodelError
from costmodel.kernels import context_attention as ctx
from costmodel.kernels import generation_attention, mla

DEVICES = ("h100-sxm", "b200", "a100-80gb", "l40s")
# DeepSeek-V3 (DeepSeek-AI 2024, https://arxiv.org/abs/2412.19437, section 2.1.1 and the released
# config.json): kv_lora_rank 512, qk_rope_head_dim 64 -> 576 cached elements per token and layer.
LATENT = 512 + 64


def _t(hw, p, op, **shape):  # type: ignore[no-untyped-def]
    return mla.time_s(hw, p, op=np.full(np.broadcast(*shape.values()).shape, op), **shape)


@pytest.mark.parametrize("device", DEVICES)
def test_absorbed_decode_never_beats_streaming_the_latent_cache(device: str) -> None:
    hw = load_hardware(device)
    p = mla.default_params(hw, "bf16")
    b, length = np.meshgrid([1.0, 16.0, 256.0], [2.0, 1024.0, 65536.0])
    for kv_bytes in (2.0, 1.0):
        t = _t(
            hw, p, mla.OP_GENERATION, batch_size=b, seq_len=length, n_heads=128.0 + 0 * b, kv_bytes=kv_bytes
        )
        assert np.all(t >= b * length * LATENT * kv_bytes / hw.memory_bandwidth_bytes_per_s)


def test_absorbed_decode_beats_the_naive_form_at_long_context() -> None:
    """Naive MLA decode reads per-head K (192) and V (128) per token instead of one 576-dim latent."""
    hw = load_hardware("h100-sxm")
    p = mla.default_params(hw, "bf16")
    shape = dict(batch_size=32.0, seq_len=32768.0, n_heads=128.0)
    absorbed = _t(hw, p, mla.OP_GENERATION, **shape)
    naive = mla.time_s(hw, p, op=mla.OP_GENERATION, absorbed=False, **shape)
    assert naive > 20 * absorbed  # 128 x 320 vs 576 elements per token


@pytest.mark.parametrize("device", DEVICES)
def test_prefill_is_naive_attention_with_192_and_128_dims(device: str) -> None:
    hw = load_hardware(device)
    p = mla.default_params(hw, "bf16")
    s = np.array([16.0, 1024.0, 8192.0])
    t = _t(hw, p, mla.OP_CONTEXT, batch_size=2.0 + 0 * s, seq_len=s, n_heads=16.0 + 0 * s)
    c = dataclasses.replace(ctx.default_params(hw, "bf16"), softmax_pairs_per_s=p.softmax_pairs_per_s)
    expected = ctx.time_s(
        hw, c, batch_size=2, seq_len=s, n_heads=16, n_kv_heads=16, head_dim=192, v_head_dim=128
    )
    np.testing.assert_allclose(t, expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "op", [mla.OP_CONTEXT, mla.OP_GENERATION, mla.OP_CONTEXT_MODULE, mla.OP_GENERATION_MODULE]
)
def test_time_is_monotone_in_length_and_batch(device: str, op: int) -> None:
    hw = load_hardware(device)
    p = mla.default_params(hw, "bf16")
    lengths = np.array([1.0, 64.0, 1024.0, 8192.0, 32768.0])
    assert np.all(
        np.diff(_t(hw, p, op, batch_size=4.0 + 0 * lengths, seq_len=lengths, n_heads=32.0 + 0 * lengths)) >= 0
    )
    batches = np.array([1.0, 4.0, 64.0, 512.0])
    assert np.all(
        np.diff(_t(hw, p, op, batch_size=batches, seq_len=512.0 + 0 * batches, n_heads=32.0 + 0 * batches))
        >= 0
    )


@pytest.mark.parametrize("device", DEVICES)
def test_absorb_matmuls_obey_the_roofline(device: str) -> None:
    hw = load_hardware(device)
    p = dataclasses.replace(mla.default_params(hw, "bf16"), gemm_compute_fraction=1.0, bandwidth_fraction=1.0)
    tokens = np.array([1.0, 64.0, 4096.0, 16384.0])
    for op in (mla.OP_BMM_PRE, mla.OP_BMM_POST):
        t = _t(hw, p, op, batch_size=tokens, seq_len=1.0 + 0 * tokens, n_heads=128.0 + 0 * tokens)
        flop = 2 * tokens * 128 * 128 * 512
        weights = 128 * 128 * 512 * 2.0
        assert np.all(t >= flop / hw.peak_flop_per_s("bf16"))
        assert np.all(t >= weights / hw.memory_bandwidth_bytes_per_s)
        assert np.all(np.diff(t) >= 0)


def test_a_module_costs_more_than_its_attention() -> None:
    hw = load_hardware("b200")
    p = mla.default_params(hw, "bf16/fp8_block")
    shape = dict(
        batch_size=np.array([1.0, 64.0]), seq_len=np.array([4096.0, 4096.0]), n_heads=np.array([128.0, 16.0])
    )
    assert np.all(_t(hw, p, mla.OP_GENERATION_MODULE, **shape) > _t(hw, p, mla.OP_GENERATION, **shape))
    assert np.all(_t(hw, p, mla.OP_CONTEXT_MODULE, **shape) > _t(hw, p, mla.OP_CONTEXT, **shape))


def test_keys_name_the_gemm_format() -> None:
    hw = load_hardware("b200")
    assert mla.gemm_dtype("vllm.FLASH_ATTN:ctx_module:bf16+fp8kv/nvfp4") == "nvfp4"
    assert mla.default_params(hw, "x:bf16/fp8_block").gemm_peak_flop_per_s == hw.peak_flop_per_s("fp8")
    assert mla.default_params(hw, "x:bf16").gemm_peak_flop_per_s == hw.peak_flop_per_s("bf16")
    with pytest.raises(CostmodelError, match="GEMM format 'int2'"):
        mla.default_params(hw, "x:bf16/int2")


def test_fit_recovers_decode_parameters_the_defaults_leave_insensitive() -> None:
    """At the defaults every decode row is memory bound, so the compute fraction has no effect on the
    starting residual; the fitter must still move the parameters that do."""
    hw = load_hardware("h100-sxm")
    truth = dataclasses.replace(
        mla.default_params(hw, "bf16"),
        bandwidth_fraction=0.9,
        launch_s=1.2e-5,
        per_cta_bandwidth_fraction=0.2,
    )
    # several head counts, so that the heads one CTA serves (which also scales the bytes) is identifiable
    b, length, heads = (
        a.ravel() for a in np.meshgrid([1.0, 8.0, 64.0, 512.0], [2.0, 256.0, 4096.0, 65536.0], [16.0, 128.0])
    )
    shapes = dict(op=np.full(b.shape, mla.OP_GENERATION), batch_size=b, seq_len=length, n_heads=heads)
    fitted = fit_params(mla, hw, "bf16", mla.time_s(hw, truth, **shapes), shapes)
    assert fitted.bandwidth_fraction == pytest.approx(0.9, rel=0.02)
    assert fitted.launch_s == pytest.approx(1.2e-5, rel=0.05)


@pytest.mark.parametrize("device", DEVICES)
def test_an_eager_host_floor_bounds_every_op_from_below_and_nothing_else(device: str) -> None:
    hw = load_hardware(device)
    p = mla.default_params(hw, "bf16")
    floor = dataclasses.replace(p, host_floor_s=3e-4)
    for op in mla.OPS.values():
        shape = dict(batch_size=np.array([1.0, 64.0, 1024.0]), seq_len=np.array([2.0, 4096.0, 131072.0]))
        t, t_floor = (
            _t(hw, p, op, n_heads=16.0 + 0 * shape["batch_size"], **shape),
            _t(hw, floor, op, n_heads=16.0 + 0 * shape["batch_size"], **shape),
        )
        np.testing.assert_allclose(t_floor, np.maximum(t, 3e-4))


def test_each_head_group_streams_the_latent_cache_again() -> None:
    """A CTA serves heads_per_cta heads; 128 heads at 16 per CTA read the cache 8 times, so a long,
    bandwidth-bound decode takes about 8 times one group's time (vLLM's Triton MLA, BLOCK_H = 16)."""
    hw = load_hardware("a100-80gb")
    p = dataclasses.replace(
        mla.default_params(hw, "bf16"), heads_per_cta=16.0, launch_s=0.0, cta_overhead_s=0.0
    )
    shape = dict(batch_size=64.0, seq_len=65536.0)
    one = _t(hw, p, mla.OP_GENERATION, n_heads=16.0, **shape)
    eight = _t(hw, p, mla.OP_GENERATION, n_heads=128.0, **shape)
    assert eight == pytest.approx(8 * one, rel=0.02)


@pytest.mark.parametrize("device", DEVICES)
def test_a_fixed_split_grid_runs_in_waves_and_stays_monotone(device: str) -> None:
    """vLLM's Triton MLA decode always launches 4 splits per sequence and head group, one CTA per SM:
    time is flat in batch while the grid fits in one wave and steps up a wave at a time after it."""
    hw = load_hardware(device)
    p = dataclasses.replace(
        mla.default_params(hw, "bf16"),
        fill_splits=0.0,
        max_splits=4.0,
        resident_ctas_per_sm=1.0,
        heads_per_cta=16.0,
        per_cta_bandwidth_fraction=0.005,
        launch_s=0.0,
        cta_overhead_s=0.0,
    )
    sms = p.sm_count
    batches = np.arange(1.0, 3 * sms / 4 + 1)
    t = _t(
        hw,
        p,
        mla.OP_GENERATION,
        batch_size=batches,
        seq_len=65536.0 + 0 * batches,
        n_heads=16.0 + 0 * batches,
    )
    assert np.all(np.diff(t) >= -1e-12 * t[0])  # flat within a wave, up to rounding
    waves = np.ceil(4 * batches / sms)
    steps = np.diff(t) > 1e-9 * t[0]
    np.testing.assert_array_equal(steps, np.diff(waves) > 0)  # a step exactly where a wave is added
    one_wave = t[-1] - t[-2] if steps[-1] else np.diff(t)[steps][-1]
    np.testing.assert_allclose(t[-1] - t[0], (waves[-1] - 1) * one_wave, rtol=1e-9)


def test_one_query_head_streams_at_the_single_head_kernels_rate() -> None:
    """vLLM's Triton MLA decode runs its kernel without head groups for one query head: a long,
    bandwidth-bound call streams 1 / ratio as long (launch, per-CTA time and the reduction aside), and two
    or more heads are untouched."""
    hw = load_hardware("a100-80gb")
    key = "vllm.vllm_triton_mla:gen:bf16"
    grouped = dataclasses.replace(mla.default_params(hw, key), launch_s=0.0, cta_overhead_s=0.0)
    single = dataclasses.replace(grouped, single_head_rate_ratio=0.25)
    shape = dict(batch_size=np.array([64.0]), seq_len=np.array([65536.0]))
    combine_s = generation_attention.Params.combine_s  # the split-K reduction, not streaming
    one = _t(hw, single, mla.OP_GENERATION, n_heads=np.array([1.0]), **shape) - combine_s
    streaming = _t(hw, grouped, mla.OP_GENERATION, n_heads=np.array([1.0]), **shape) - combine_s
    assert one == pytest.approx(4.0 * streaming, rel=1e-12)
    for heads in (2.0, 16.0, 128.0):
        h = np.array([heads])
        assert _t(hw, single, mla.OP_GENERATION, n_heads=h, **shape) == _t(
            hw, grouped, mla.OP_GENERATION, n_heads=h, **shape
        )
    assert "single_head_rate_ratio" not in mla.fixed_for(key)
    for other in ("vllm.vllm_flashmla:gen:bf16", "trtllm.default:gen:bf16", "vllm.vllm_triton_mla:ctx:bf16"):
        assert "single_head_rate_ratio" in mla.fixed_for(other)


def test_the_triton_decode_grid_is_the_kernels_and_the_fit_keeps_it() -> None:
    """vLLM's Triton MLA decode runs 4 KV splits of 16-head programs, one per SM (its source): 32 sequences
    x 4 splits = 128 programs on the A100's 108 SMs take two waves, so where each program streams at its own
    rate batch 32 costs what batch 54 does (the same two waves) and more than batch 27 (one wave); a fit
    starts there and does not move the grid."""
    hw = load_hardware("a100-80gb")
    key = "vllm.vllm_triton_mla:gen:bf16"
    grid = mla.TRITON_MLA_DECODE_GRID
    assert set(grid) <= set(mla.fixed_for(key))
    starts = [p for p in mla.initial_guesses(hw, key) if p.fill_splits == 0.0]
    assert starts
    assert all(all(getattr(p, name) == value for name, value in grid.items()) for p in starts)
    # each program streams at its own rate (the A100 fit: 0.005 of the device's bandwidth), not the device's
    params = dataclasses.replace(
        starts[0], launch_s=0.0, cta_overhead_s=0.0, host_floor_s=0.0, per_cta_bandwidth_fraction=0.005
    )
    t = _t(hw, params, mla.OP_GENERATION, n_heads=np.full(3, 16.0), batch_size=np.array([27.0, 32.0, 54.0]),
           seq_len=np.full(3, 65536.0))  # fmt: skip
    assert t[1] > 1.5 * t[0]
    assert t[2] == pytest.approx(t[1], rel=0.05)


def test_trtllm_gen_low_latency_kernel_is_chosen_as_its_source_does() -> None:
    """trtllm-gen's ``selectMlaGenerationKernel`` on a B200 (148 SMs): at most 32 heads, or ``batch x
    ceil(heads / 16)`` CTAs within the SMs with at most 1,024 tokens per CTA after the split, take the
    16-head low-latency kernel (one latent pass per 16 heads); otherwise one pass (64-head tile, or the
    2-CTA pair at 128 heads). Cases worked by hand from the source's rule."""
    b200, h100 = load_hardware("b200"), load_hardware("h100-sxm")
    assert mla.default_params(b200, "trtllm.default:gen:bf16").low_latency_heads_per_cta == 16.0
    assert mla.default_params(b200, "vllm.FLASHINFER_MLA:gen_module:bf16").low_latency_heads_per_cta == 16.0
    # Hopper runs FlashMLA, other keys other kernels: the fitted heads_per_cta stays in charge
    assert mla.default_params(h100, "trtllm.default:gen:bf16").low_latency_heads_per_cta == 0.0
    assert mla.default_params(b200, "vllm.vllm_triton_mla:gen:bf16").low_latency_heads_per_cta == 0.0
    p = dataclasses.replace(mla.default_params(b200, "trtllm.default:gen:bf16"), sibling_pass_fraction=1.0)
    cases = [  # (batch, kv, heads) -> passes
        ((512.0, 65536.0, 32.0), 2.0),  # <= 32 heads: always low latency, 2 tiles
        ((1.0, 64.0, 16.0), 1.0),  # one tile
        ((1.0, 32767.0, 64.0), 4.0),  # 4 CTAs, min(128, 37) chunks of 886 tokens
        ((8.0, 32767.0, 64.0), 1.0),  # 32 CTAs, 4 chunks of 8,192 tokens: 64-head tile
        ((37.0, 256.0, 64.0), 4.0),  # 148 CTAs, one chunk of 256 tokens
        ((38.0, 256.0, 64.0), 1.0),  # 152 CTAs > 148 SMs
        ((18.0, 1024.0, 128.0), 8.0),  # 144 CTAs, one chunk of 1,024 tokens
        ((18.0, 1025.0, 128.0), 1.0),  # 1,025 tokens in the one chunk: the 2-CTA pair
    ]
    for (b, kv, h), expected in cases:
        passes, ctas, low_latency = mla.low_latency_passes(p, np.array([b]), np.array([kv]), np.array([h]))
        assert passes[0] == expected, (b, kv, h)
        # the low-latency kernel's CTAs are its head tiles; the 64-head tile is one CTA, the 2-CTA pair two
        assert ctas[0] == (2.0 if (h, expected) == (128.0, 1.0) else expected)
        assert low_latency[0] == (h <= 32.0 or expected > 1.0)
    half = dataclasses.replace(p, sibling_pass_fraction=0.5)
    passes, ctas, _ = mla.low_latency_passes(half, np.array([1.0]), np.array([64.0]), np.array([128.0]))
    assert (passes[0], ctas[0]) == (1.0 + 0.5 * 7, 8.0)


def test_decode_reads_every_heads_query_and_writes_its_output() -> None:
    """Bandwidth-bound absorbed decode with no fixed costs moves the latent once per pass plus, per
    sequence and head, its 576-dim query (in the cache's format) and its 512-dim bf16 output."""
    hw = load_hardware("h100-sxm")
    p = dataclasses.replace(
        mla.default_params(hw, "bf16"),
        heads_per_cta=128.0,
        launch_s=0.0,
        cta_overhead_s=0.0,
        per_cta_bandwidth_fraction=1.0,
        bandwidth_fraction=1.0,
        compute_fraction=1.0,
        cache_bytes=0.0,
    )
    b, s = 4096.0, 2.0
    for kv_bytes in (2.0, 1.0):
        for h in (1.0, 128.0):
            t = _t(hw, p, mla.OP_GENERATION, batch_size=b, seq_len=s, n_heads=h, kv_bytes=kv_bytes)
            moved = b * s * LATENT * kv_bytes + b * h * (LATENT * kv_bytes + 512 * 2.0)
            assert t == pytest.approx(moved / hw.memory_bandwidth_bytes_per_s, rel=1e-6)


def test_absorb_matmuls_whose_operands_fit_in_l2_stream_at_the_cache_rate() -> None:
    """Benchmarks repeat one call: a batched matmul whose weights and activations fit in the 50 MiB L2 of
    an H100 streams ``cache_bandwidth_ratio`` times faster; one that does not, at the HBM rate."""
    hw = load_hardware("h100-sxm")
    base = dataclasses.replace(mla.default_params(hw, "bf16"), launch_s=0.0, gemm_compute_fraction=1.0)
    fast = dataclasses.replace(base, cache_bandwidth_ratio=2.0)
    tokens = np.array([1.0, 16384.0])
    for op, (k, n) in ((mla.OP_BMM_PRE, (128, 512)), (mla.OP_BMM_POST, (512, 128))):
        moved = 128 * (k * n * 2.0 + tokens * (k + n) * 2.0)
        assert moved[0] <= hw.datasheet.on_chip_cache_mib.value * 2**20 < moved[1]
        slow_t = _t(hw, base, op, batch_size=tokens, seq_len=1.0 + 0 * tokens, n_heads=128.0 + 0 * tokens)
        fast_t = _t(hw, fast, op, batch_size=tokens, seq_len=1.0 + 0 * tokens, n_heads=128.0 + 0 * tokens)
        np.testing.assert_allclose(
            slow_t, moved / (hw.memory_bandwidth_bytes_per_s * base.bandwidth_fraction)
        )
        assert fast_t[0] == pytest.approx(slow_t[0] / 2.0)
        assert fast_t[1] == pytest.approx(slow_t[1])


def test_the_128_head_pair_halves_the_kv_split_the_kernel_picks() -> None:
    """trtllm-gen's high-throughput MLA decode at 128 heads is a 2-CTA MMA pair: ``computeNumCtas`` doubles
    ``numCtasX`` before ``numCtasPerSeqKv = min(ceil(kv / stepKv), max(1, SMs / (numCtasX x batch)))``, so a
    sequence takes two CTAs before the split (half the chunks of the 64-head tile's one), while the pair
    streams the latent once. Worked by hand for a B200 (148 SMs)."""
    b200 = load_hardware("b200")
    p = mla.default_params(b200, "trtllm.default:gen:bf16")
    batch, kv, heads = np.array([8.0, 8.0]), np.array([32768.0, 32768.0]), np.array([64.0, 128.0])
    passes, ctas, low_latency = mla.low_latency_passes(p, batch, kv, heads)
    assert not low_latency.any()  # 32 / 64 tiles of 16 heads fit, but 32,768 / 4 tokens per CTA > 1,024
    np.testing.assert_array_equal(passes, [1.0, 1.0])
    np.testing.assert_array_equal(ctas, [1.0, 2.0])  # 8 and 16 CTAs before the split share the 148 SMs


def test_a_verifications_query_length_multiplies_the_work_not_the_kernel_choice() -> None:
    """trtllm-gen (B200) chooses its MLA decode kernel from the heads a KV head alone
    (``selectMlaGenerationKernel``: at most 32 heads always the 16-head low-latency kernel, 128 heads the
    2-CTA pair), while ``useSwapsMmaAbMlaGenKernel`` counts ``batch x q x ceil(heads / 16)`` CTAs and each
    of a sequence's q tokens runs its own tiles (``numCtasPerSeqQ = mMaxSeqLenQ``). Worked by hand for
    148 SMs with every pass from HBM: 16 heads, q = 4 stays low latency with 4 CTAs and 4 passes a
    sequence (not the 64-head tile the product 16 x 4 would pick); 64 heads, q = 2 at 8,000 tokens: 8
    CTAs, 18 chunks of 445 tokens, low latency, 8 passes; 128 heads, q = 4 at batch 8: 256 CTAs > 148,
    the pair, 4 pairs (8 CTAs) and 4 passes a sequence. q = 1 is the plain decode to the bit."""
    b200 = load_hardware("b200")
    p = dataclasses.replace(mla.default_params(b200, "trtllm.default:gen:bf16"), sibling_pass_fraction=1.0)
    cases = [  # (batch, kv, heads, q) -> (passes, CTAs a sequence, low latency)
        ((128.0, 6000.0, 16.0, 4.0), (4.0, 4.0, True)),
        ((1.0, 8000.0, 64.0, 2.0), (8.0, 8.0, True)),
        ((8.0, 8000.0, 128.0, 4.0), (4.0, 8.0, False)),
    ]
    for (b, kv, h, q), expected in cases:
        passes, ctas, low_latency = mla.low_latency_passes(
            p, np.array([b]), np.array([kv]), np.array([h]), np.array([q])
        )
        assert (passes[0], ctas[0], bool(low_latency[0])) == expected, (b, kv, h, q)
    shape = dict(
        batch_size=np.array([1.0, 8.0, 64.0, 512.0]),
        seq_len=np.array([501.0, 2001.0, 8001.0, 32001.0]),
        n_heads=np.array([16.0, 128.0, 16.0, 128.0]),
        kv_bytes=1.0,
    )
    q = dataclasses.replace(p, sibling_pass_fraction=0.5)
    for params in (p, q, mla.default_params(load_hardware("h100-sxm"), "trtllm.default:gen:bf16")):
        hw = b200 if params.low_latency_heads_per_cta else load_hardware("h100-sxm")
        one = mla.time_s(hw, params, op=mla.OP_GENERATION, query_len=1.0, **shape)  # type: ignore[arg-type]
        np.testing.assert_array_equal(one, mla.time_s(hw, params, op=mla.OP_GENERATION, **shape))  # type: ignore[arg-type]


def test_a_sparse_mla_decode_below_128_heads_takes_the_low_latency_kernel() -> None:
    """``selectMlaGenerationKernel`` (FlashInfer ``fmhaKernels.cuh``, TensorRT-LLM ``fmhaKernels.h``) takes
    the low-latency kernel where ``mNumHeadsQPerKv <= 32 || (mSparseMla && mNumHeadsQPerKv < 128)`` or the
    CTAs fit. Worked by hand for a B200 (148 SMs), every pass from HBM, 128 sequences over 2,048 top-k rows:
    64 heads dense is 128 x 4 = 512 CTAs > 148, the 64-head tile, 1 pass and 1 CTA a sequence; sparse, the
    low-latency kernel, 4 tiles of 16 heads, 4 passes and 4 CTAs a sequence; 128 heads sparse or not, the
    2-CTA pair (1 pass, 2 CTAs)."""
    p = dataclasses.replace(
        mla.default_params(load_hardware("b200"), "trtllm.default:gen:bf16"), sibling_pass_fraction=1.0
    )
    batch, kv = np.array([128.0, 128.0]), np.array([2048.0, 2048.0])
    heads = np.array([64.0, 128.0])
    dense = mla.low_latency_passes(p, batch, kv, heads)
    sparse = mla.low_latency_passes(p, batch, kv, heads, sparse=True)
    np.testing.assert_array_equal(dense[0], [1.0, 1.0])
    np.testing.assert_array_equal(dense[1], [1.0, 2.0])
    np.testing.assert_array_equal(dense[2], [False, False])
    np.testing.assert_array_equal(sparse[0], [4.0, 1.0])
    np.testing.assert_array_equal(sparse[1], [4.0, 2.0])
    np.testing.assert_array_equal(sparse[2], [True, False])


def test_an_empty_cache_takes_one_chunk_without_a_warning() -> None:
    """kv_len 0 (a decode step before any token is cached) gives one chunk, not 0 / 0."""
    p = mla.default_params(load_hardware("b200"), "trtllm.default:gen:bf16")
    with np.errstate(all="raise"):
        passes, ctas, low_latency = mla.low_latency_passes(
            p, np.array([4.0]), np.array([0.0]), np.array([128.0])
        )
    # 4 x 8 tiles of 16 heads fit on the SMs, with one chunk of no tokens: the low-latency kernel
    assert (passes[0], ctas[0], bool(low_latency[0])) == (1.0 + 7.0 * p.sibling_pass_fraction, 8.0, True)


def test_the_absorb_matmuls_are_named_not_told_apart_by_size() -> None:
    """With ``v_head_dim == kv_lora_rank`` the pre matmul ([tokens, 128] x [128, 512]) must not take the
    post one's shape: its time does not depend on ``v_head_dim``, L2-resident or not."""
    hw = load_hardware("h100-sxm")
    p = dataclasses.replace(mla.default_params(hw, "bf16"), cache_bandwidth_ratio=3.0)
    tokens = np.array([1.0, 64.0, 16384.0])
    shape = dict(batch_size=tokens, seq_len=1.0 + 0 * tokens, n_heads=128.0 + 0 * tokens)
    usual = _t(hw, p, mla.OP_BMM_PRE, **shape)
    wide = mla.time_s(hw, p, op=np.full(3, mla.OP_BMM_PRE), v_head_dim=512.0, **shape)
    np.testing.assert_array_equal(usual, wide)
    expected = p.launch_s + mla.gemm_time_s(p, tokens, 128.0, 512.0, 2.0, count=128.0, l2_resident=True)
    np.testing.assert_allclose(usual, expected)


def test_the_low_latency_tile_is_the_kernels_never_a_stored_value() -> None:
    """``low_latency_heads_per_cta`` says which kernel a key runs on a device: a stored or fallen-back value
    (another key's 16, a stale 8) never replaces :func:`mla.default_params`'s, and it is no fit parameter.
    vLLM's CUTLASS MLA on a B200 falls back to its sibling FlashInfer MLA key but keeps 0."""
    from costmodel.kernels import params_for
    from costmodel.specs import CalibrationRecord, KernelCalibration

    b200 = load_hardware("b200")
    record = CalibrationRecord(
        data_source="test", data_revision="test", row_rule="test", date="2026-01-01", costmodel_revision="x"
    )
    table = {
        "vllm.FLASHINFER_MLA:gen_module:bf16": {"low_latency_heads_per_cta": 16.0, "bandwidth_fraction": 0.5},
        "trtllm.default:gen:bf16": {"low_latency_heads_per_cta": 8.0},
    }
    hw = b200.model_copy(
        update={"kernel_calibration": KernelCalibration(params={"mla": table}, record=record)}
    )
    cutlass = params_for(hw, mla, "vllm.CUTLASS_MLA:gen_module:bf16")
    assert cutlass.bandwidth_fraction == 0.5  # the sibling's fitted values are taken ...
    assert cutlass.low_latency_heads_per_cta == 0.0  # ... but not its kernel's head tile
    assert params_for(hw, mla, "trtllm.default:gen:bf16").low_latency_heads_per_cta == 16.0
    assert "low_latency_heads_per_cta" in mla.KERNEL_PROPERTIES
    for name in mla.KERNEL_PROPERTIES:
        assert name not in mla.BOUNDS


def test_trtllm_gen_parameters_are_fitted_only_where_the_key_runs_trtllm_gen() -> None:
    """TensorRT-LLM's default MLA decode runs trtllm-gen on Blackwell and FlashMLA on Hopper, which has no
    low-latency variant: its two kernels' parameters are fixed there (and for keys of other kernels)."""
    b200, h100 = load_hardware("b200"), load_hardware("h100-sxm")
    for key in ("trtllm.default:gen:bf16", "vllm.FLASHINFER_MLA:gen_module:bf16"):
        assert not set(mla.TRTLLM_GEN_ONLY) & set(mla.fixed_for(key, b200))
        assert set(mla.TRTLLM_GEN_ONLY) <= set(mla.fixed_for(key, h100))
    assert set(mla.TRTLLM_GEN_ONLY) <= set(mla.fixed_for("vllm.FLASHMLA:gen_module:bf16", b200))


def test_trtllm_gen_splits_each_sequence_into_the_chunks_that_fit_in_one_wave() -> None:
    """trtllm-gen's ``computeNumCtas`` (TensorRT-LLM ``fmhaKernels.h``, and FlashInfer's copy) takes
    ``numCtasPerSeqKv = min(maxNumCtasPerSeqKv, max(1, int32_t(SMs / (numCtasX x numCtasY x numCtasZ))))``, an
    integer division. Worked by hand for a B200 (148 SMs): 3 sequences of 16 heads, one low-latency CTA each,
    a 64K-token cache: floor(148 / 3) = 49 chunks (147 CTAs, one wave), not ceil's 50 (150 CTAs, two)."""
    b200 = load_hardware("b200")
    p = mla.default_params(b200, "trtllm.default:gen:bf16")
    assert p.sm_count == 148
    assert p.low_latency_heads_per_cta == 16.0
    shape = dict(batch_size=np.array([3.0]), seq_len=np.array([65536.0]), n_heads=np.array([16.0]))
    picked = _t(b200, p, mla.OP_GENERATION, **shape)
    grid_of_49 = _t(
        b200, dataclasses.replace(p, fill_splits=0.0, max_splits=49.0), mla.OP_GENERATION, **shape
    )
    grid_of_50 = _t(
        b200, dataclasses.replace(p, fill_splits=0.0, max_splits=50.0), mla.OP_GENERATION, **shape
    )
    np.testing.assert_allclose(picked, grid_of_49)
    assert not np.allclose(picked, grid_of_50)
    # other decode kernels keep the ceil rule: FlashMLA on the H100 (132 SMs) splits 5 sequences into 27
    h100 = load_hardware("h100-sxm")
    q = mla.default_params(h100, "trtllm.default:gen:bf16")
    assert q.low_latency_heads_per_cta == 0.0
    five = {**shape, "batch_size": np.array([5.0])}
    kept = _t(h100, q, mla.OP_GENERATION, **five)
    grid_of_27 = dataclasses.replace(q, fill_splits=0.0, max_splits=27.0)
    np.testing.assert_allclose(kept, _t(h100, grid_of_27, mla.OP_GENERATION, **five))
