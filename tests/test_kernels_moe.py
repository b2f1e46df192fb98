"""Physics of the MoE kernel time model (costmodel.kernels.moe): routing counts and monotonicity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from costmodel.errors import CostmodelError
from costmodel.kernels import moe
from costmodel.registry import load_hardware

H100 = load_hardware("h100-sxm")
B200 = load_hardware("b200")
TOKENS = np.array([1, 2, 4, 8, 16, 64, 256, 1024, 4096, 16384], dtype=float)
ROUTINGS = ("balanced", "uniform", "power_law_1.01", "power_law_1.2")


def test_uniform_touched_experts_matches_a_monte_carlo_draw() -> None:
    # Independent oracle: draw top-k without replacement for each token and count distinct experts.
    rng = np.random.default_rng(0)
    E, k = 64, 4
    for T in (1, 3, 10, 40):
        counts = [
            len(np.unique(np.concatenate([rng.choice(E, k, replace=False) for _ in range(T)])))
            for _ in range(400)
        ]
        expected = moe.expected_touched_experts_uniform(T, k, E)
        assert expected == pytest.approx(np.mean(counts), rel=0.03)


@pytest.mark.parametrize("routing", ROUTINGS)
@pytest.mark.parametrize(("E", "k", "ep"), [(8, 2, 1), (256, 8, 1), (256, 8, 8), (128, 8, 32)])
def test_touched_experts_bounded_and_saturating(routing: str, E: int, k: int, ep: int) -> None:
    load = moe.routing_load(routing, tokens=TOKENS, topk=k, num_experts=E, ep_size=ep)
    group = E / ep
    assert np.all(load.touched_experts >= 1)
    assert np.all(load.touched_experts <= np.minimum(group, TOKENS * k) + 1e-9)
    assert np.all(load.pairs <= TOKENS * k + 1e-9)
    assert np.all(load.pairs >= TOKENS * k / ep - 1e-9)  # the measured GPU is the busiest one
    assert np.all(np.diff(load.touched_experts) >= -1e-9)
    if routing in ("balanced", "uniform"):
        assert load.touched_experts[-1] == pytest.approx(group, rel=1e-6)  # all experts touched


def test_power_law_is_more_imbalanced_than_balanced() -> None:
    kwargs = {"tokens": 4096, "topk": 8, "num_experts": 256, "ep_size": 8}
    balanced = moe.routing_load("balanced", **kwargs)
    skewed = moe.routing_load("power_law_1.2", **kwargs)
    assert skewed.pairs > balanced.pairs
    assert skewed.busiest_expert_tokens > balanced.busiest_expert_tokens


SHAPE = {"hidden_size": 4096, "inter_size": 1536, "topk": 8, "num_experts": 128}


@pytest.mark.parametrize("dtype", sorted(moe.FORMATS))
@pytest.mark.parametrize("routing", ROUTINGS)
def test_time_is_positive_and_monotone_in_tokens(dtype: str, routing: str) -> None:
    hardware = load_hardware("b200")
    params = moe.default_params(hardware, dtype)
    t = moe.time_s(hardware, params, num_tokens=TOKENS, routing=routing, **SHAPE)
    assert np.all(t > 0)
    assert np.all(np.diff(t) >= -1e-15)


def test_small_batches_are_weight_streaming_and_large_ones_compute_bound() -> None:
    params = dataclasses.replace(moe.default_params(H100, "bf16"), cache_fraction=0.0)
    parts = moe.breakdown(H100, params, num_tokens=np.array([1.0, 65536.0]), **SHAPE)
    assert parts.memory_s[0] > parts.compute_s[0]
    assert parts.compute_s[1] > parts.memory_s[1]
    # one token touches k experts: exactly k experts' weights stream (k x 3 x H x I x 2 bytes)
    weight_bytes = 8 * 3 * 4096 * 1536 * 2
    assert parts.memory_s[0] >= weight_bytes / (H100.memory_bandwidth_bytes_per_s * params.bandwidth_fraction)


def test_weights_that_fit_in_the_cache_stream_faster() -> None:
    params = moe.default_params(load_hardware("l40s"), "fp8")
    l40s = load_hardware("l40s")
    small = {"hidden_size": 2048, "inter_size": 640, "topk": 8, "num_experts": 64}  # 8 experts: 31 MB
    warm = moe.breakdown(l40s, params, num_tokens=1.0, **small).memory_s
    cold = moe.breakdown(
        l40s, dataclasses.replace(params, cache_fraction=0.0), num_tokens=1.0, **small
    ).memory_s
    assert warm < cold
    no_cache = dataclasses.replace(params, cache_bytes=0.0)
    assert moe.breakdown(l40s, no_cache, num_tokens=1.0, **small).memory_s == pytest.approx(cold)


def test_each_intermediate_keeps_its_own_producer_consumer_pair_in_the_cache() -> None:
    # L40S (96 MiB L2), 128 experts of 2048 x 768, top-8, EP 128 (one local expert, whose 4.7 MB of fp8
    # weights always fit) with the vLLM layout that keeps all T k rows: at 2,048 tokens the intermediates
    # (50 + 25 + 67 MB) overflow the L2 together but each write -> read pair (<= 92 MB) fits; at 8,192 none
    l40s = load_hardware("l40s")
    params = dataclasses.replace(
        moe.default_params(l40s, "fp8"),
        routed_pair_fraction=1.0,
        intermediate_weight_share=0.0,
        cache_fraction=1.0,
        cache_sharpness=16.0,
        cache_speedup=3.0,
    )
    shape = {"hidden_size": 2048, "inter_size": 768, "topk": 8, "num_experts": 128, "ep_size": 128}
    T = np.array([2048.0, 8192.0])
    warm = moe.breakdown(l40s, params, num_tokens=T, **shape).memory_s
    cold = moe.breakdown(l40s, dataclasses.replace(params, cache_bytes=0.0), num_tokens=T, **shape).memory_s
    assert warm[0] < 0.6 * cold[0]  # the pairs hit: most intermediate traffic at the cache's rate
    assert warm[1] > 0.9 * cold[1]  # four times the rows: every pair overflows, the memory's rate
    assert warm[1] / warm[0] > 4.0 * 1.5  # the cliff: more than proportional to the rows


def test_dequantization_counts_touched_experts_only() -> None:
    params = moe.default_params(H100, "int4_wo")
    one = moe.breakdown(H100, params, num_tokens=1.0, **SHAPE)
    many = moe.breakdown(H100, params, num_tokens=1e5, **SHAPE)
    per_expert = 3 * 4096 * 1536 * params.dequant_s_per_element
    assert one.dequant_s == pytest.approx(SHAPE["topk"] * per_expert)
    assert many.dequant_s == pytest.approx(SHAPE["num_experts"] * per_expert)
    assert moe.breakdown(H100, moe.default_params(H100, "fp8"), num_tokens=1.0, **SHAPE).dequant_s == 0


def test_tensor_and_expert_parallelism_shrink_the_per_gpu_work() -> None:
    params = moe.default_params(H100, "bf16")
    base = moe.time_s(H100, params, num_tokens=4096, **SHAPE)
    assert moe.time_s(H100, params, num_tokens=4096, tp_size=4, **SHAPE) < base
    assert moe.time_s(H100, params, num_tokens=4096, ep_size=4, **SHAPE) < base


def test_non_gated_experts_are_cheaper() -> None:
    params = moe.default_params(H100, "bf16")
    gated = moe.time_s(H100, params, num_tokens=512, gated=True, **SHAPE)
    assert moe.time_s(H100, params, num_tokens=512, gated=False, **SHAPE) < gated


def test_scalar_and_array_inputs_agree() -> None:
    params = moe.default_params(H100, "fp8_block")
    array = moe.time_s(H100, params, num_tokens=TOKENS, routing="power_law_1.2", **SHAPE)
    scalars = [moe.time_s(H100, params, num_tokens=t, routing="power_law_1.2", **SHAPE) for t in TOKENS]
    np.testing.assert_allclose(array, np.ravel(scalars))


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(CostmodelError, match="routing"):
        moe.routing_load("zipf", tokens=1, topk=1, num_experts=8)
    with pytest.raises(CostmodelError, match="alpha > 1"):
        moe.routing_load("power_law_0.5", tokens=1, topk=1, num_experts=8)
    with pytest.raises(CostmodelError, match="MoE format"):
        moe.default_params(H100, "int3")
    with pytest.raises(CostmodelError, match=">= 1"):
        moe.time_s(H100, moe.default_params(H100, "bf16"), num_tokens=0, **SHAPE)


def _collector_draw(
    rng: np.random.Generator, tokens: int, topk: int, experts: int, ep: int, alpha: float
) -> tuple[int, int, int]:
    """One draw of aiconfigurator's power-law routing, written pair by pair as its collector does
    (collector/helper.py, _generate_power_law_distribution): an independent, loop-based oracle."""
    lo, hi = (1.0, 0.8 * tokens) if tokens * topk > experts else (0.01, 2.0)
    a = 1.0 - alpha
    weights = ((hi**a - lo**a) * rng.random(experts) + lo**a) ** (1.0 / a)
    counts = np.round(weights / weights.sum() * tokens * topk).astype(int)
    group = experts // ep
    ranks = counts.reshape(ep, group)  # a view: edits below change counts

    def adjust(remaining: int, step: int) -> None:
        while remaining > 0:
            for rank in ranks:
                valid = np.flatnonzero(rank < tokens) if step > 0 else np.flatnonzero(rank > 0)
                if valid.size == 0:
                    continue
                pick = valid[np.argmin(rank[valid])] if step > 0 else valid[np.argmax(rank[valid])]
                rank[pick] += step
                remaining -= 1
                if remaining == 0:
                    return

    excess = int(np.maximum(counts - tokens, 0).sum())
    np.minimum(counts, tokens, out=counts)
    adjust(excess, +1)
    delta = tokens * topk - int(counts.sum())
    adjust(abs(delta), 1 if delta > 0 else -1)
    timed = ranks[np.argmax(ranks.sum(axis=1))]
    return int(timed.sum()), int((timed > 0).sum()), int(timed.max())


@pytest.mark.parametrize(
    ("tokens", "topk", "experts", "ep", "alpha"),
    [(4, 8, 256, 1, 1.2), (16, 8, 256, 1, 1.01), (16, 8, 256, 8, 1.2), (48, 8, 128, 4, 1.2),
     (1024, 8, 256, 32, 1.2), (4096, 8, 256, 8, 1.01), (1024, 2, 8, 2, 1.2), (2, 22, 512, 128, 1.2)],
)  # fmt: skip
def test_power_law_load_matches_the_collectors_process(
    tokens: int, topk: int, experts: int, ep: int, alpha: float
) -> None:
    rng = np.random.default_rng(7)
    draws = np.array(
        [_collector_draw(rng, tokens, topk, experts, ep, alpha) for _ in range(300)], dtype=float
    )
    pairs, touched, busiest = moe.power_law_load(tokens, topk, experts, ep, alpha)
    # 128 draws in the model, 300 here: the two means agree within their sampling error
    assert pairs == pytest.approx(draws[:, 0].mean(), rel=0.06)
    assert touched == pytest.approx(draws[:, 1].mean(), rel=0.06)
    assert busiest == pytest.approx(draws[:, 2].mean(), rel=0.15, abs=1.0)


def test_power_law_touches_every_pair_at_small_batches() -> None:
    """With T k well under E the rounding leaves most pairs unassigned, and the fix-up gives each to an empty
    expert: as many experts touched as pairs, the same as balanced routing (the tables' T = 1-4 rows)."""
    for tokens in (1, 2, 4):
        assert moe.power_law_load(tokens, 8, 256, 1, 1.2)[1] == pytest.approx(tokens * 8)


def test_one_expert_top1_is_a_dense_gemm_pair() -> None:
    """E = k = 1: every token goes to the one expert whatever the routing (pairs = T, one expert touched)."""
    for routing in ROUTINGS:
        load = moe.routing_load(routing, tokens=TOKENS, topk=1, num_experts=1)
        assert np.allclose(load.pairs, TOKENS)
        assert np.allclose(load.touched_experts, 1.0)
        assert np.allclose(load.busiest_expert_tokens, TOKENS)


def _legacy_collector_draw(
    rng: np.random.Generator, tokens: int, topk: int, experts: int, ep: int, alpha: float
) -> tuple[int, int]:
    """One draw of the collector's earlier power-law fix-up (pairs and touched experts of the timed rank),
    pair by pair: missing pairs to the largest counts in turn (equal counts in expert order)."""
    lo, hi = (1.0, 0.8 * tokens) if tokens * topk > experts else (0.01, 2.0)
    a = 1.0 - alpha
    weights = ((hi**a - lo**a) * rng.random(experts) + lo**a) ** (1.0 / a)
    counts = np.round(weights / weights.sum() * tokens * topk).astype(int)
    delta = tokens * topk - int(counts.sum())
    order = np.argsort(-counts, kind="stable")
    for i in range(max(delta, 0)):
        counts[order[i % experts]] += 1
    for i in range(max(-delta, 0)):
        j = order[-(i % experts) - 1]
        if counts[j] > 0:
            counts[j] -= 1
        else:
            counts[np.argmax(counts)] -= 1
    ranks = counts.reshape(ep, experts // ep)
    timed = ranks[np.argmax(ranks.sum(axis=1))]
    return int(timed.sum()), int((timed > 0).sum())


@pytest.mark.parametrize(("tokens", "ep"), [(1, 32), (4, 8), (16, 1), (1024, 8)])
def test_legacy_power_law_load_matches_the_earlier_process(tokens: int, ep: int) -> None:
    rng = np.random.default_rng(11)
    draws = np.array([_legacy_collector_draw(rng, tokens, 8, 256, ep, 1.2) for _ in range(300)], dtype=float)
    pairs, touched, _ = moe.power_law_load(tokens, 8, 256, ep, 1.2, legacy=True)
    assert pairs == pytest.approx(draws[:, 0].mean(), rel=0.06)
    assert touched == pytest.approx(draws[:, 1].mean(), rel=0.06)


def test_legacy_fix_up_puts_a_small_batch_on_rank_0() -> None:
    """T k <= E / ep: the earlier fix-up hands the unassigned pairs to the first experts, all on rank 0."""
    load = moe.routing_load("power_law_legacy_1.2", tokens=1, topk=8, num_experts=256, ep_size=32)
    assert load.touched_experts == pytest.approx(8.0)
    assert (
        moe.routing_load("power_law_1.2", tokens=1, topk=8, num_experts=256, ep_size=32).touched_experts < 2
    )


@pytest.mark.parametrize("routing", ROUTINGS)
def test_one_expert_top1_streams_and_computes_one_dense_ffn(routing: str) -> None:
    """E = k = 1 is a dense gated FFN: 2 x 3 H I FLOPs per token, the three weight matrices streamed once
    (at the full rate: no SM limit here, see the next test)."""
    params = dataclasses.replace(moe.default_params(H100, "bf16"), cache_fraction=0.0, compute_units=0.0)
    H, I, T = 4096.0, 14336.0, np.array([64.0, 512.0, 4096.0])  # noqa: E741
    parts = moe.breakdown(
        H100, params, num_tokens=T, hidden_size=H, inter_size=I, topk=1, num_experts=1, routing=routing
    )
    flop = parts.compute_s * params.peak_flop_per_s * params.compute_fraction
    assert np.allclose(flop, 2.0 * 3.0 * H * I * T, rtol=1e-12)
    weight_bytes = 3.0 * H * I * 2.0  # bf16
    # tokens in and out, and per token each intermediate written once and read once: the gate/up output
    # (2 I), the activation (I) and the down-projection output (H)
    activation_bytes = 2.0 * (2.0 * T * H + 2.0 * T * (2.0 * I + I + H))
    streamed = parts.memory_s * params.memory_bandwidth_bytes_per_s * params.bandwidth_fraction
    assert np.allclose(streamed, weight_bytes + activation_bytes, rtol=1e-12)


L40S = load_hardware("l40s")
SMALL = {"hidden_size": 2048, "inter_size": 768, "topk": 8, "num_experts": 128}  # fp8 expert: 4.7 MB


def _per_byte_s(params: moe.Params, topk: int) -> float:
    """Memory time per streamed byte of a one-token call on SMALL experts with ``topk`` of them: the
    touched experts' weights, the token in and out, and its ``topk`` rows of intermediates."""
    H, I = SMALL["hidden_size"], SMALL["inter_size"]  # noqa: E741
    parts = moe.breakdown(L40S, params, num_tokens=1.0, **{**SMALL, "topk": topk})
    weights = float(parts.load.touched_experts) * 3 * H * I * params.weight_bits / 8
    traffic = weights + 2.0 * (2 * H + 2 * topk * (3 * I + H))
    return float(parts.memory_s) / traffic


def test_cache_hit_rate_falls_off_a_cliff_past_the_capacity() -> None:
    """LRU over a cyclic sweep: a working set well inside the cache streams at the cache's rate, one twice
    its size at (nearly) the memory's rate, never faster than one that fits."""
    params = dataclasses.replace(
        moe.default_params(L40S, "fp8"),
        cache_fraction=0.5,
        cache_sharpness=12.0,
        cache_speedup=4.0,
        compute_units=0.0,  # every byte at the full rate: the cache alone
    )
    cold = 1.0 / (params.memory_bandwidth_bytes_per_s * params.bandwidth_fraction)
    capacity = params.cache_fraction * params.cache_bytes  # 48 MiB
    rates = [_per_byte_s(params, k) for k in (2, 4, 8, 16, 32)]  # 9 MB ... 151 MB of weights
    assert rates[0] == pytest.approx(cold / params.cache_speedup, rel=0.02)  # 9 MB << 48 MiB
    assert rates[-1] == pytest.approx(cold, rel=0.02)  # 151 MB ~ 3 x 48 MiB
    assert np.all(np.diff(rates) >= 0)
    assert 2 * capacity < 32 * 3 * 2048 * 768


def test_rows_kept_for_other_gpus_experts_cost_traffic_only_under_expert_parallelism() -> None:
    base = moe.default_params(L40S, "fp8")
    keep = dataclasses.replace(base, routed_pair_fraction=1.0)
    T = np.array([1.0, 64.0, 4096.0, 16384.0])
    for ep in (2, 8, 128):
        compact = moe.time_s(L40S, base, num_tokens=T, ep_size=ep, **SMALL)
        kept = moe.time_s(L40S, keep, num_tokens=T, ep_size=ep, **SMALL)
        assert np.all(kept >= compact)
        assert kept[-1] > compact[-1]
    np.testing.assert_allclose(
        moe.time_s(L40S, keep, num_tokens=T, **SMALL), moe.time_s(L40S, base, num_tokens=T, **SMALL)
    )


@pytest.mark.parametrize("routing", ["power_law_1.01", "power_law_1.2"])
@pytest.mark.parametrize("ep", [1, 8, 32])
def test_imbalanced_routing_is_never_faster_once_every_expert_is_touched(routing: str, ep: int) -> None:
    """With every expert of the busiest GPU touched, skew only adds rows to it (and to its busiest expert)."""
    params = moe.default_params(H100, "fp8")
    T = np.array([4096.0, 16384.0, 65536.0])
    balanced = moe.time_s(H100, params, num_tokens=T, ep_size=ep, **SHAPE)
    skewed = moe.time_s(H100, params, num_tokens=T, ep_size=ep, routing=routing, **SHAPE)
    assert np.all(skewed >= balanced * (1 - 1e-12))


def test_few_narrow_experts_stream_on_fewer_sms_never_faster_than_the_full_rate() -> None:
    """One token, top-8: the up GEMM has 8 x (2 I/tp) / stream_tile_n column tiles; below one per SM the
    weights stream at that share of the rate, so time per weight byte rises with TP, and an SM limit never
    makes a call faster than the same call without it."""
    base = dataclasses.replace(moe.default_params(H100, "bf16"), cache_fraction=0.0, stream_tile_n=128.0)
    unlimited = dataclasses.replace(base, compute_units=0.0)
    shape = {"hidden_size": 4096, "inter_size": 2048, "topk": 8, "num_experts": 256}
    per_byte = []
    for tp in (1, 2, 4, 8, 16, 32):
        limited = moe.breakdown(H100, base, num_tokens=1.0, tp_size=tp, **shape).memory_s
        full = moe.breakdown(H100, unlimited, num_tokens=1.0, tp_size=tp, **shape).memory_s
        assert limited >= full
        per_byte.append(float(limited) / (8 * 3 * 4096 * 2048 / tp * 2))
    assert np.all(np.diff(per_byte) >= 0)
    # TP 1: 8 x 4096 / 128 = 256 up tiles and 8 x 32 down tiles fill the 132 SMs: the full rate
    assert moe.breakdown(H100, base, num_tokens=1.0, **shape).memory_s == pytest.approx(
        moe.breakdown(H100, unlimited, num_tokens=1.0, **shape).memory_s
    )


def test_tile_overhead_costs_most_where_the_reduction_loop_is_short() -> None:
    """With a per-tile pipeline fill of k0 loop elements the large-batch time per FLOP grows as the down
    GEMM's reduction I/tp shrinks (high TP); with k0 = 0 it is FLOP / achieved peak at every TP."""
    flat = dataclasses.replace(moe.default_params(H100, "bf16"), tile_overhead_k=0.0)
    filled = dataclasses.replace(flat, tile_overhead_k=64.0)
    T, shape = 65536.0, {"hidden_size": 4096, "inter_size": 14336, "topk": 2, "num_experts": 8}
    ratios = []
    for tp in (1, 2, 4, 8, 16, 32):
        base = moe.breakdown(H100, flat, num_tokens=T, tp_size=tp, **shape).compute_s
        flop = 2 * 3 * 4096 * 14336 / tp * T * 2
        assert float(base) == pytest.approx(flop / (flat.peak_flop_per_s * flat.compute_fraction), rel=1e-9)
        ratios.append(float(moe.breakdown(H100, filled, num_tokens=T, tp_size=tp, **shape).compute_s / base))
    assert ratios[0] > 1.0
    assert np.all(np.diff(ratios) > 0)


def test_misaligned_widths_pay_their_ratios_and_aligned_ones_never_do() -> None:
    """I/tp not a multiple of 16 elements (Triton's alignment specialization): the streaming and compute
    terms scale by their ratios; an aligned width of the same call is unchanged, and ratios of 1 are the
    plain model."""
    base = moe.default_params(H100, "bf16")
    slow = dataclasses.replace(base, misaligned_memory_ratio=2.0, misaligned_compute_ratio=3.0)
    T = np.array([1.0, 64.0, 16384.0])
    shape = {"hidden_size": 2048, "topk": 8, "num_experts": 128, "num_tokens": T}
    for tp, misaligned in ((16, False), (32, True), (8, False)):  # 768 / tp = 48, 24, 96 columns
        plain = moe.breakdown(H100, base, inter_size=768, tp_size=tp, **shape)
        penalised = moe.breakdown(H100, slow, inter_size=768, tp_size=tp, **shape)
        np.testing.assert_allclose(penalised.memory_s, plain.memory_s * (2.0 if misaligned else 1.0))
        np.testing.assert_allclose(penalised.compute_s, plain.compute_s * (3.0 if misaligned else 1.0))
        np.testing.assert_allclose(penalised.fixed_s, plain.fixed_s)


def test_default_launch_configuration_slows_only_the_large_batch_tiles() -> None:
    """vLLM's get_default_config: 64 x 64 x 32 tiles when the tokens exceed the GPU's experts, a small-M
    16 x 32 x 64 tile otherwise; only the former is charged default_config_ratio, and a tuned call never."""
    params = dataclasses.replace(moe.default_params(H100, "bf16"), default_config_ratio=1.5)
    T = np.array([1.0, 4.0, 8.0, 9.0, 64.0, 4096.0])  # 8 experts on the GPU
    shape = {"hidden_size": 4096, "inter_size": 14336, "topk": 2, "num_experts": 8, "num_tokens": T}
    tuned = moe.breakdown(H100, params, tp_size=2, tuned_config=True, **shape)
    default = moe.breakdown(H100, params, tp_size=2, tuned_config=False, **shape)
    gemm = np.where(T > 8, 1.5, 1.0)
    np.testing.assert_allclose(default.memory_s, tuned.memory_s * gemm)
    np.testing.assert_allclose(default.compute_s, tuned.compute_s * gemm)
    np.testing.assert_allclose(
        moe.time_s(H100, moe.default_params(H100, "bf16"), tp_size=2, tuned_config=False, **shape),
        moe.time_s(H100, moe.default_params(H100, "bf16"), tp_size=2, **shape),
    )


def test_rows_that_cannot_identify_a_ratio_keep_it_fixed() -> None:
    """A ratio between two kinds of rows is fitted only when both kinds are present."""
    rows = {"num_tokens": np.array([1.0, 64.0]), "num_experts": 8.0, "ep_size": 1.0, "inter_size": 14336.0}
    assert "default_config_ratio" in moe.fixed_for_rows("bf16:vllm:k", {**rows, "tuned_config": True})
    assert "default_config_ratio" in moe.fixed_for_rows("bf16:vllm:k", {**rows, "tuned_config": False})
    mixed = {
        **rows,
        "num_tokens": 64.0,
        "tuned_config": np.array([True, False]),
        "tp_size": np.array([1.0, 2.0]),
    }
    assert "default_config_ratio" not in moe.fixed_for_rows("bf16:vllm:k", mixed)
    assert "misaligned_memory_ratio" in moe.fixed_for_rows("bf16:vllm:k", mixed)  # 14336, 7168: aligned
    odd = {**mixed, "inter_size": 1856.0, "tp_size": np.array([16.0, 32.0])}  # 116, 58 columns
    assert "misaligned_memory_ratio" not in moe.fixed_for_rows("bf16:vllm:k", odd)


def test_intermediates_stay_in_the_cache_within_a_call_even_when_the_weights_do_not() -> None:
    """Each intermediate is written by one kernel of the call and read by the next, so it stays in the L2
    if the intermediates alone fit, whatever the weights swept between calls: Mixtral-sized fp8 experts
    (8 x 176 MB, far past the L40S's 96 MiB) stream at the memory's rate while a small batch's
    intermediates move at the cache's; a batch whose intermediates overflow the cache pays the memory's
    rate for them too."""
    params = dataclasses.replace(
        moe.default_params(L40S, "fp8"),
        cache_fraction=1.0,
        cache_sharpness=50.0,
        cache_speedup=4.0,
        intermediate_weight_share=0.0,
        compute_units=0.0,  # every weight at the full rate: the cache alone
        routed_pair_fraction=0.0,
    )
    H, I, E, k = 4096.0, 14336.0, 8.0, 2.0  # noqa: E741
    T = np.array([128.0, 16384.0])
    parts = moe.breakdown(L40S, params, num_tokens=T, hidden_size=H, inter_size=I, topk=k, num_experts=E)
    weights = E * 3.0 * H * I * 1.0  # fp8, every expert touched
    # the layer's input and output are reused from call to call (behind the weights: a miss); the
    # intermediates within the call
    io = 2.0 * 2.0 * T * H
    activations = 2.0 * 2.0 * T * k * (3.0 * I + H)
    assert weights > 10 * params.cache_bytes
    assert activations[0] / 2 < 0.5 * params.cache_bytes < params.cache_bytes < activations[1] / 2
    rate = params.memory_bandwidth_bytes_per_s * params.bandwidth_fraction
    expected = (weights + io + np.array([activations[0] / params.cache_speedup, activations[1]])) / rate
    np.testing.assert_allclose(parts.memory_s, expected, rtol=1e-3)
    # with no cache the same call streams everything from memory
    cold = moe.breakdown(
        L40S,
        dataclasses.replace(params, cache_fraction=0.0),
        num_tokens=T,
        hidden_size=H,
        inter_size=I,
        topk=k,
        num_experts=E,
    )
    np.testing.assert_allclose(cold.memory_s, (weights + io + activations) / rate, rtol=1e-12)
    assert np.all(parts.memory_s <= cold.memory_s)


def test_a_refit_also_starts_from_the_keys_stored_parameters() -> None:
    """The calibrated profile's own parameters for exactly the fitted key are one more start (the lower
    calibration cost wins); a key it does not store starts from the datasheet alone."""
    from costmodel.kernels import params_for

    key = "bf16:vllm:vllm_unquantizedfusedmoe_triton_tritonexperts"
    stored = params_for(H100, moe, key)
    starts = moe.initial_guesses(H100, key)
    assert len(starts) == 5
    assert starts[0] == moe.default_params(H100, key)
    assert starts[1] == dataclasses.replace(starts[0], local_tile_share=1.0)  # the tile's gradient-free 0
    assert starts[2] == stored
    # the SM-fill share's other basin: both starts again with every few-tile call on its tiles' SMs
    assert starts[3] == dataclasses.replace(starts[1], compute_fill_share=1.0)
    assert starts[4] == dataclasses.replace(stored, local_tile_share=1.0, compute_fill_share=1.0)
    assert len(moe.initial_guesses(H100, "bf16:vllm:no_such_kernel")) == 3
    weight_only = "int4_wo:vllm:vllm_compressedtensorswna16marlinmoe_marlin_marlinexperts"
    assert moe.initial_guesses(H100, weight_only)[-1] == params_for(H100, moe, weight_only)


def test_intermediates_share_the_weights_hit_rate_when_the_weights_stream_between_write_and_read() -> None:
    """``intermediate_weight_share`` = 1 counts every weight byte in each intermediate's reuse distance; a
    smaller share never makes a call slower (a shorter reuse distance)."""
    base = dataclasses.replace(moe.default_params(L40S, "fp8"), cache_fraction=1.0, cache_sharpness=12.0)
    T = np.array([1.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0])
    shape = {"hidden_size": 4096, "inter_size": 14336, "topk": 2, "num_experts": 8, "tp_size": 8}
    times = [
        moe.time_s(L40S, dataclasses.replace(base, intermediate_weight_share=share), num_tokens=T, **shape)
        for share in (0.0, 0.5, 1.0)
    ]
    assert np.all(times[0] <= times[1])
    assert np.all(times[1] <= times[2])
    assert times[0][3] < times[2][3]  # 1,024 tokens: intermediates fit, the weights (176 MB) do not
    # share 1: every intermediate's reuse distance holds all the touched weights; from 64 tokens on that is
    # all 8 experts (176 MB, past the 96 MiB L2), so nothing hits: the memory's rate for every byte
    one = dataclasses.replace(base, intermediate_weight_share=1.0)
    warm = moe.breakdown(L40S, one, num_tokens=T, **shape).memory_s
    cold = moe.breakdown(L40S, dataclasses.replace(one, cache_fraction=0.0), num_tokens=T, **shape).memory_s
    np.testing.assert_allclose(warm[1:], cold[1:], rtol=0.01)
    assert warm[0] < 0.6 * cold[0]  # one token: two experts (44 MB) and their intermediates fit


def _gate_oracle(tokens: int, topk: int, experts: int, ep: int, groups: int, kept: int) -> tuple[float, ...]:
    """Independent oracle: the collector's balanced logits (softmax of each token's one-hot picks) through
    DeepSeek-V3's noaux_tc gate in plain floats, token by token: sigmoid scores (zero bias), a group scores its
    two best, the ``kept`` best groups (ties to the lower index), then the top-k of their experts."""
    stride = -(-experts // topk)
    counts = [0] * experts
    size = experts // groups
    for t in range(tokens):
        hot = [0] * experts
        for i in range(topk):
            position = t + i * stride if tokens >= stride else t * stride / tokens + i * stride
            hot[int(position) % experts] += 1
        norm = sum(np.exp(h) for h in hot)
        score = [1.0 / (1.0 + np.exp(-np.exp(h) / norm)) for h in hot]
        group_score = [sum(sorted(score[g * size : (g + 1) * size])[-2:]) for g in range(groups)]
        chosen = sorted(range(groups), key=lambda g: (-group_score[g], g))[:kept]
        allowed = [e for g in chosen for e in range(g * size, (g + 1) * size)]
        for e in sorted(allowed, key=lambda e: (-score[e], e))[:topk]:
            counts[e] += 1
    local = counts[: experts // ep]
    return float(sum(local)), float(max(sum(c > 0 for c in local), 1)), float(max(local))


def _warp_top_k(values: list[float], k: int) -> list[int]:
    """The routing kernel's warp top-k, lane by lane: each pick is the largest (value, -lane), and the picked
    lane is then rewritten with the invalid value (-inf) under its own index, as ``reduceTopK`` does."""
    values = list(values)
    picks = []
    for _ in range(k):
        lane = max(range(len(values)), key=lambda i: (values[i], -i))
        picks.append(lane)
        values[lane] = -np.inf
    return picks


def test_one_expert_per_group_puts_every_pick_on_expert_zero() -> None:
    """8 experts in 8 groups (Mixtral under the collector's DeepSeek-V3 gate): a group's score is its best
    lane plus its empty second lane (-inf), so all groups tie at -inf, the warp top-k returns group 0 at
    every pick (rewriting -inf over -inf changes nothing), and both picks of every token are expert 0:
    rank 0 runs all T k pairs on one expert at every EP, balanced or power law."""
    scores = [0.6, 0.7, 0.55, 0.8, 0.5, 0.65, 0.52, 0.58]  # any finite sigmoid scores
    groups = [s + -np.inf for s in scores]  # best lane + the empty second lane
    kept = _warp_top_k(groups, 4)
    assert kept == [0, 0, 0, 0]
    candidates = [scores[g] for g in kept]  # lane 0 of each kept group: expert g, the only one
    assert [kept[i] for i in _warp_top_k(candidates, 2)] == [0, 0]
    for tokens in (1, 8, 4096):
        everything_on_one_expert = (2.0 * tokens, 1.0, 2.0 * tokens)  # pairs, touched, busiest
        for ep in (1, 2, 4, 8):
            assert moe.group_limited_balanced_load(tokens, 2, 8, ep, 8, 4) == everything_on_one_expert
    import pandas as pd

    from validation.public.families import moe as adapter

    table = pd.DataFrame(
        {
            "kernel_source": ["moe_torch_flow_min_latency"] * 2 + ["moe_torch_flow_cutlass"],
            "distribution": ["power_law_1.2"] * 3,
            "num_experts": [8, 256, 8],
        }
    )
    assert list(adapter.routing(table)) == ["balanced+group_limited_8_4", "power_law_1.2", "power_law_1.2"]


@pytest.mark.parametrize(
    ("tokens", "topk", "experts", "ep"),
    [(1, 8, 256, 1), (3, 8, 256, 64), (40, 8, 256, 2), (300, 8, 256, 8), (100, 8, 160, 4), (50, 4, 128, 2),
     (33, 1, 16, 2), (7, 6, 256, 16)],
)  # fmt: skip
def test_group_limited_gate_matches_a_token_by_token_oracle(
    tokens: int, topk: int, experts: int, ep: int
) -> None:
    assert moe.group_limited_balanced_load(tokens, topk, experts, ep, 8, 4) == _gate_oracle(
        tokens, topk, experts, ep, 8, 4
    )


def test_group_limited_gate_packs_top8_of_256_onto_the_lower_half() -> None:
    """Top-8 of 256 experts puts one pick in each of the 8 groups of 32: every group scores alike, the tie
    keeps groups 0-3 (experts 0-127), and the four missing picks go to their lowest experts (1-4 at one
    token). EP 2 rank 0 then holds all the pairs, as the TensorRT-LLM min-latency tables measure (EP 1 and
    EP 2 take the same time), and one token touches 8, 8, 6, 5, 5, 5, 4, 2, 1 experts at EP 1-256."""
    touched = [
        moe.group_limited_balanced_load(1, 8, 256, ep, 8, 4)[1] for ep in (1, 2, 4, 8, 16, 32, 64, 128, 256)
    ]
    assert touched == [8, 8, 6, 5, 5, 5, 4, 2, 1]
    for tokens in (32, 1024, 16384):
        ep1 = moe.group_limited_balanced_load(tokens, 8, 256, 1, 8, 4)
        ep2 = moe.group_limited_balanced_load(tokens, 8, 256, 2, 8, 4)
        assert ep1[0] == ep2[0] == tokens * 8  # every pair is kept, all of them on the lower half
        assert ep1[2] == tokens  # the tie's filler experts take every token


def test_group_limited_gate_leaves_routing_alone_where_the_picks_fit_in_the_kept_groups() -> None:
    """Top-1 (one group holds the pick) and top-4 of 128 (picks in 4 groups): the gate keeps every pick, so
    the outcome is the balanced routing's."""
    for topk, experts in ((1, 16), (4, 128)):
        for ep in (1, 2, 4):
            tokens = np.array([4.0, 64.0, 1024.0])
            gated = moe.routing_load(
                "balanced+group_limited_8_4", tokens=tokens, topk=topk, num_experts=experts, ep_size=ep
            )
            plain = moe.routing_load("balanced", tokens=tokens, topk=topk, num_experts=experts, ep_size=ep)
            np.testing.assert_allclose(gated.pairs, plain.pairs)
            np.testing.assert_allclose(gated.touched_experts, plain.touched_experts)


def test_group_limited_gate_bad_split_is_a_clear_error() -> None:
    with pytest.raises(CostmodelError, match="equal groups"):
        moe.routing_load("balanced+group_limited_8_4", tokens=4, topk=2, num_experts=12)
    with pytest.raises(CostmodelError, match="group_limited"):
        moe.routing_load("balanced+group_limited_x", tokens=4, topk=2, num_experts=16)


def test_min_latency_balanced_rows_route_through_the_gate() -> None:
    import pandas as pd

    from validation.public.families import moe as adapter

    table = pd.DataFrame(
        {
            "kernel_source": [
                "moe_torch_flow_min_latency",
                "moe_torch_flow_min_latency",
                "moe_torch_flow_cutlass",
            ],
            "distribution": ["balanced", "power_law_1.2", "balanced"],
        }
    )
    assert list(adapter.routing(table)) == ["balanced+group_limited_8_4", "power_law_1.2", "balanced"]


def test_every_expert_held_costs_its_scheduling_step_touched_or_not() -> None:
    """One token, top-1: one expert touched whatever the experts per GPU; only ``per_local_expert_s`` makes
    the layer slower with more (untouched) experts held, by exactly that much per expert."""
    base = dataclasses.replace(moe.default_params(H100, "fp8_block"), cache_bytes=0.0)
    step = 2e-7
    held = np.array([8.0, 64.0, 256.0, 512.0])
    kwargs = {"num_tokens": 1, "hidden_size": 4096, "inter_size": 1024, "topk": 1, "num_experts": held}
    without = moe.time_s(H100, base, **kwargs)
    with_walk = moe.time_s(H100, dataclasses.replace(base, per_local_expert_s=step), **kwargs)
    np.testing.assert_allclose(without, without[0], rtol=1e-12)  # the touched expert's work only
    np.testing.assert_allclose(with_walk - without, step * held, rtol=1e-9)
    # expert parallelism divides the held experts, and with them the walk
    split = moe.time_s(H100, dataclasses.replace(base, per_local_expert_s=step), **{**kwargs, "ep_size": 8})
    np.testing.assert_allclose(split - without, step * held / 8, rtol=1e-9)


def test_local_share_tile_follows_the_rows_per_held_expert_to_the_next_power_of_two() -> None:
    """Hand-computed: 384 experts, top-6, EP 8 (48 held): T k / (E / ep) = T / 8 rows per held expert, to
    the next power of two within [8, 256]; EP 128 (3 held) picks the same tile at 1/16 of the tokens."""
    tokens = np.array([1.0, 64.0, 512.0, 520.0, 1024.0, 1536.0, 16384.0])
    np.testing.assert_array_equal(
        moe.local_share_tile(tokens, 6, 384, 8), [8.0, 8.0, 64.0, 128.0, 128.0, 256.0, 256.0]
    )
    np.testing.assert_array_equal(
        moe.local_share_tile(tokens / 16, 6, 384, 128)[2:], [64, 128, 128, 256, 256]
    )


def test_local_share_tile_pads_every_touched_expert_and_is_off_at_zero() -> None:
    """Balanced routing, 384 experts of 7168 x 3072, top-6, EP 8: with the share at 0 the time is the
    fixed tile's; with share s the compute is that of touched x s x tile rows wherever that exceeds the
    routed pairs, and the time steps up where the tile doubles (512 -> 520 tokens) though the pairs grow
    by 1.6 %. EP 1 (tile of the real rows per expert) pads nothing once the pairs fill the tile."""
    base = dataclasses.replace(
        moe.default_params(B200, "w4a8_mxfp4_mxfp8"), tile_m_tokens=1.0, imbalance_fraction=0.0
    )
    kwargs = {"hidden_size": 7168, "inter_size": 3072, "topk": 6, "num_experts": 384, "ep_size": 8}
    tokens = np.array([512.0, 520.0])
    off = moe.breakdown(B200, base, num_tokens=tokens, **kwargs)
    on = moe.breakdown(B200, dataclasses.replace(base, local_tile_share=1.0), num_tokens=tokens, **kwargs)
    np.testing.assert_allclose(off.compute_s, off.compute_s[0] * tokens / tokens[0], rtol=1e-9)
    tile = moe.local_share_tile(tokens, 6, 384, 8)  # 64, 128
    flop_row = 2.0 * (2 * 3072 * 7168 + 7168 * 3072)
    expected = on.load.touched_experts * tile * flop_row / (base.peak_flop_per_s * base.compute_fraction)
    np.testing.assert_allclose(on.compute_s, expected, rtol=1e-9)
    assert on.compute_s[1] / on.compute_s[0] == pytest.approx(2.0, rel=1e-9)
    # EP 1: 16,384 tokens x 6 / 384 = 256 rows per expert, tile 256: nothing padded
    full = {**kwargs, "ep_size": 1, "num_tokens": 16384}
    same = [
        moe.breakdown(B200, dataclasses.replace(base, local_tile_share=s), **full).compute_s for s in (0, 1)
    ]
    np.testing.assert_allclose(same[0], same[1], rtol=1e-12)


def test_local_share_tile_stops_at_the_top_of_the_formats_tile_ladder() -> None:
    """FlashInfer's trtllm-gen launchers pick from {8..128} for bf16, fp8 and DeepSeek fp8 block scales,
    {8..64} for MXFP4 weights with bf16 activations and {8..256} for nvfp4 / MXFP8 activations
    (``csrc/trtllm_fused_moe_kernel_launcher.cu``): 16,384 tokens x top-8 over 32 local experts is 4,096
    rows per expert, far above every ladder, so each key's tile is its ladder's top; 4 rows stay at 8."""
    top = {
        "bf16": 128,
        "fp8": 128,
        "fp8_block": 128,
        "nvfp4": 256,
        "w4a16_mxfp4": 64,
        "w4a8_mxfp4_mxfp8": 256,
    }
    for name, expected in top.items():
        params = moe.default_params(B200, f"{name}:vllm:some_kernel")
        assert params.local_tile_max_tokens == expected
        tiles = moe.local_share_tile(np.array([16.0, 16384.0]), 8, 256, 8, params.local_tile_max_tokens)
        np.testing.assert_array_equal(tiles, [8.0, expected])
    with pytest.raises(CostmodelError):
        moe.local_share_tile(16.0, 8, 256, 8, 4.0)


def test_fallback_routing_is_charged_only_beyond_the_engines_fused_routing_kernel() -> None:
    """TensorRT-LLM's renormalizing top-k runs its fused routing op up to top-16 and 512 experts and falls
    back to PyTorch beyond (``routing.py``): a TensorRT-LLM key adds ``fallback_routing_s`` exactly once for
    top-22 or 1024 experts and never for top-16 / 512 experts; a vLLM key (no limit listed) never."""
    step = 2e-5
    trt = dataclasses.replace(moe.default_params(B200, "bf16:trtllm:moe_torch_flow"), fallback_routing_s=0.0)
    assert (trt.routing_kernel_max_topk, trt.routing_kernel_max_experts) == (16.0, 512.0)
    vllm = moe.default_params(B200, "bf16:vllm:some_kernel")
    assert (vllm.routing_kernel_max_topk, vllm.routing_kernel_max_experts) == (0.0, 0.0)
    layers = {
        "topk": np.array([16.0, 22.0, 8.0, 8.0]),
        "num_experts": np.array([512.0, 512.0, 512.0, 1024.0]),
    }
    kwargs = {"num_tokens": 4, "hidden_size": 2048, "inter_size": 1024, "ep_size": 8, **layers}
    for params, charged in ((trt, [0, 1, 0, 1]), (vllm, [0, 0, 0, 0])):
        without = moe.time_s(B200, params, **kwargs)
        with_term = moe.time_s(B200, dataclasses.replace(params, fallback_routing_s=step), **kwargs)
        np.testing.assert_allclose(with_term - without, step * np.array(charged), rtol=1e-9, atol=1e-15)
    # fitted only where the rows hold layers on both sides of the limit
    both = {"num_tokens": np.ones(2), "num_experts": np.array([128.0, 512.0]), "topk": np.array([6.0, 22.0])}
    assert "fallback_routing_s" not in moe.fixed_for_rows("bf16:trtllm:moe_torch_flow_nongated", both)
    only_over = {**both, "num_experts": np.array([512.0, 512.0]), "topk": np.array([22.0, 22.0])}
    assert "fallback_routing_s" in moe.fixed_for_rows("bf16:trtllm:moe_torch_flow_nongated", only_over)
    assert "fallback_routing_s" in moe.fixed_for_rows("bf16:vllm:some_kernel", both)


def test_the_expert_map_cost_is_paid_once_per_expert_parallel_call_and_in_full_in_a_step() -> None:
    """An EP call maps global expert ids to local ones before routing (vLLM's ``triton_kernel_moe_forward``
    gathers ``expert_map[topk_ids]``): ``expert_map_s`` adds exactly once where ``ep > 1``, whatever the
    experts per GPU or the tokens, and never at ``ep = 1`` (TP or a single GPU); fitted only on rows that
    hold both; a serving step (graph replay) pays it in full, as the collector times these rows as graph
    replays (aiconfigurator ``collector/helper.py``, ``benchmark_with_power`` without ``allow_graph_fail``)."""
    from costmodel.kernel_times import step_params

    step = 3e-5
    params = dataclasses.replace(moe.default_params(H100, "w4a16_mxfp4:vllm:k"), expert_map_s=0.0)
    kwargs = {
        "num_tokens": np.array([1.0, 8.0, 1.0, 1.0, 64.0]),
        "hidden_size": 2880,
        "inter_size": 2880,
        "topk": 4,
        "num_experts": 128,
        "tp_size": np.array([1.0, 8.0, 1.0, 1.0, 1.0]),
        "ep_size": np.array([1.0, 1.0, 4.0, 128.0, 8.0]),
    }
    without = moe.time_s(H100, params, **kwargs)
    with_term = moe.time_s(H100, dataclasses.replace(params, expert_map_s=step), **kwargs)
    np.testing.assert_allclose(with_term - without, step * np.array([0, 0, 1, 1, 1]), rtol=1e-9, atol=1e-15)
    mixed = {"ep_size": np.array([1.0, 8.0]), "num_tokens": np.ones(2), "num_experts": np.full(2, 128.0)}
    assert "expert_map_s" not in moe.fixed_for_rows("w4a16_mxfp4:vllm:k", mixed)
    for only in (np.ones(2), np.full(2, 8.0)):
        assert "expert_map_s" in moe.fixed_for_rows("w4a16_mxfp4:vllm:k", {**mixed, "ep_size": only})
    from costmodel.kernels import params_for

    key = "w4a16_mxfp4:vllm:vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic"
    launch = 1e-6
    stored, stepped = params_for(H100, moe, key), step_params(H100, moe, key, launch_s=launch)
    assert stored.expert_map_s > launch  # the fitted cost is more than one launch, so a cap would show
    assert stepped.expert_map_s == stored.expert_map_s
    assert stepped.launch_s == stored.launch_s  # the MoE's own fixed cost is kept (graph-timed rows)


def _simulated_switches_per_cta(tiles_per_group: list[int], sms: int) -> float:
    """Independent oracle: lay the groups' tiles end to end, hand CTA c the tiles c, c + sms, c + 2 sms, ...
    (a persistent grouped-GEMM scheduler) and count, per CTA, the tiles whose group differs from that CTA's
    previous tile (its first tile included); the mean over the CTAs."""
    owner = np.repeat(np.arange(len(tiles_per_group)), tiles_per_group)
    switches = 0
    for cta in range(sms):
        mine = owner[cta::sms]
        switches += int(len(mine) > 0) + int(np.count_nonzero(np.diff(mine)))
    return switches / sms


@pytest.mark.parametrize(
    ("tokens", "hidden", "inter", "topk", "experts", "ep"),
    [(1, 7168, 2048, 8, 384, 1), (64, 7168, 2048, 8, 384, 1), (64, 2048, 512, 8, 256, 1),
     (16384, 4096, 1536, 8, 128, 1), (16384, 5120, 8192, 1, 16, 4), (3, 6144, 16384, 2, 8, 1)],
)  # fmt: skip
def test_group_switches_match_a_persistent_scheduler_walking_the_groups_tiles(
    tokens: int, hidden: int, inter: int, topk: int, experts: int, ep: int
) -> None:
    """Balanced routing (every touched expert holds its mean rows): the switches per SM of both GEMMs equal
    the simulated scheduler's, each expert ceil(rows / 128) x ceil(N / 128) tiles, including experts with
    more tiles than SMs (16,384 tokens of 16 experts at EP 4: 2,048 rows x 8192 / 64 columns)."""
    params = moe.default_params(B200, "nvfp4")
    sms = int(params.compute_units)
    load = moe.routing_load("balanced", tokens=tokens, topk=topk, num_experts=experts, ep_size=ep)
    touched, rows = int(load.touched_experts), float(load.pairs / load.touched_experts)
    m_tiles = int(np.ceil(rows / 128))  # each expert's M tiles of its mean rows
    expected = sum(
        _simulated_switches_per_cta([m_tiles * -(-columns // 128)] * touched, sms)
        for columns in (2 * inter, hidden)
    )
    got = moe.group_switches(params, load, np.asarray(2.0 * inter), np.asarray(float(hidden)))
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_group_switch_cost_grows_with_the_tiles_not_the_bytes() -> None:
    """Same weight bytes per call, many narrow experts vs few wide ones: the streamed bytes are equal, but
    the narrow experts' GEMMs have more group changes (tiles per expert round up), so only
    ``group_switch_s`` makes them slower; at 0 the term is gone."""
    base = dataclasses.replace(moe.default_params(B200, "nvfp4"), cache_bytes=0.0)
    step = 1e-6
    kwargs = {"num_tokens": 64, "hidden_size": 4096, "topk": 8, "tp_size": 1}
    wide = {"inter_size": 2048, "num_experts": 64}  # 64 experts touched (512 pairs)
    narrow = {"inter_size": 64, "num_experts": 2048}  # 512 of 2048 touched, 1/32 the width each
    switched = dataclasses.replace(base, group_switch_s=step)
    extra_wide = moe.time_s(B200, switched, **kwargs, **wide) - moe.time_s(B200, base, **kwargs, **wide)
    extra_narrow = moe.time_s(B200, switched, **kwargs, **narrow) - moe.time_s(B200, base, **kwargs, **narrow)
    # hand count per SM: wide 64 x (32 + 32) tiles; narrow 512 x (1 + 32) tiles
    assert float(extra_wide) == pytest.approx(step * 64 * 64 / 148, rel=1e-9)
    assert float(extra_narrow) == pytest.approx(step * 512 * 33 / 148, rel=1e-9)


@pytest.mark.parametrize(
    ("key", "cutlass"),
    [("nvfp4:trtllm:moe_torch_flow_cutlass", True), ("bf16:trtllm:moe_torch_flow_nongated", True),
     ("fp8:vllm:vllm_modeloptfp8moe_flashinfer_cutlass_flashinferexperts", True),
     ("fp8_block:trtllm:moe_torch_flow_cutlass", False),  # DeepSeek block scales: not the array-TMA GEMM
     ("nvfp4:vllm:vllm_compressedtensorsw4a4nvfp4moe_flashinfer_trtllm_trtllmnvfp4expertsmonolithic", False),
     ("bf16:vllm:vllm_unquantizedfusedmoe_triton_tritonexperts", False), ("fp8_block:trtllm:deepgemm", False),
     ("int4_wo:vllm:vllm_compressedtensorswna16marlinmoe_marlin_marlinexperts", False),
     ("nvfp4:trtllm:moe_torch_flow_min_latency", False), ("bf16", False)],
)  # fmt: skip
def test_only_cutlass_grouped_gemm_keys_fit_the_group_switch_term(key: str, cutlass: bool) -> None:
    """Rows made with ``group_switch_s`` = 1 us (launch 20 us, the rest the datasheet defaults), fitted for
    ``launch_s`` and ``group_switch_s`` alone: a key whose kernel runs CUTLASS's array-TMA grouped GEMM
    recovers the 1 us; any other key keeps the term at 0 (its launch then absorbs what it can)."""
    from costmodel.calibrate import fit_params

    assert moe.runs_cutlass_grouped_gemm(key) is cutlass
    start = moe.default_params(B200, key)
    truth = dataclasses.replace(start, launch_s=2e-5, group_switch_s=1e-6)
    grid = np.meshgrid([1.0, 16.0, 256.0, 4096.0], [64.0, 256.0, 2048.0], [128.0, 384.0], indexing="ij")
    shapes = {"num_tokens": grid[0].ravel(), "inter_size": grid[1].ravel(), "num_experts": grid[2].ravel()}
    shapes |= {"hidden_size": 7168.0, "topk": 8.0, "tp_size": 1.0}
    measured = moe.time_s(B200, truth, **shapes)
    others = tuple(name for name in moe.BOUNDS if name not in ("launch_s", "group_switch_s"))
    fitted = fit_params(moe, B200, key, measured, shapes, initial=start, fixed=others)
    if cutlass:
        assert fitted.group_switch_s == pytest.approx(1e-6, rel=1e-3)
    else:
        assert fitted.group_switch_s == 0.0
    assert ("group_switch_s" in moe.fixed_for_rows(key, shapes)) is not cutlass


def test_group_switches_are_zero_without_an_sm_count() -> None:
    """A profile without an SM count (``compute_units`` 0) has no switch term, not ~34,000 switches of a
    one-SM GPU."""
    params = dataclasses.replace(moe.default_params(B200, "nvfp4"), compute_units=0.0, group_switch_s=1e-6)
    load = moe.routing_load("balanced", tokens=64, topk=8, num_experts=384, ep_size=1)
    assert float(moe.group_switches(params, load, np.asarray(4096.0), np.asarray(7168.0))) == 0.0


def _tile_schedule_ratio(sms: int, gemms: list[tuple[int, float]]) -> float:
    """An independent oracle: each GEMM's tiles (count, FLOP each) dealt one per SM in turn, each SM
    computing its tiles one after another at 1 FLOP/s; the GEMMs run one after the other. Returns that time
    over the whole GPU's (every FLOP spread over all SMs)."""
    busy, total = 0.0, 0.0
    for tiles, flop in gemms:
        per_sm = [0.0] * sms
        for t in range(tiles):
            per_sm[t % sms] += flop
        busy += max(per_sm)
        total += tiles * flop
    return busy / (total / sms)


@pytest.mark.parametrize(
    ("experts", "rows", "tile", "up_columns", "H", "width"),
    [
        (1, 256, 256, 4096, 4096, 2048),  # one expert, one M tile: 32 + 32 tiles on 148 SMs
        (2, 300, 256, 1024, 2048, 512),  # two M tiles each: 2 x 2 x 8 and 2 x 2 x 16 tiles
        (37, 8, 8, 512, 256, 128),  # up GEMM of exactly 148 tiles (fills the SMs), down GEMM of 74
    ],
)
def test_compute_fill_ratio_matches_tiles_dealt_to_the_sms(
    experts: int, rows: int, tile: int, up_columns: int, H: int, width: int
) -> None:
    """Up to one tile per SM, the compute time of few tiles is that of one tile per GEMM, not the GEMM's FLOP
    over all SMs. Cases only up to one wave per GEMM: past the SMs the model spreads a GEMM's FLOP over the
    whole GPU and leaves out the last wave's tail (224 tiles on 148 SMs are two waves, the second half full),
    which the oracle's whole waves would count."""
    params = moe.default_params(B200, "w4a8_mxfp4_mxfp8")
    sms = int(params.compute_units)
    m_tiles = -(-rows // tile)
    gemms = []
    for columns, k in ((up_columns, H), (H, width)):
        tiles = experts * m_tiles * -(-columns // 128)
        gemms.append((tiles, 2.0 * tile * 128 * k))
    ratio = moe.compute_fill_ratio(
        params,
        np.array([float(experts)]),
        np.array([float(experts * rows)]),
        np.array([float(tile)]),
        np.array([float(up_columns)]),
        np.array([float(H)]),
        np.array([float(width)]),
    )[0]
    assert all(tiles <= sms for tiles, _ in gemms)  # one wave per GEMM (see the docstring)
    assert ratio == pytest.approx(_tile_schedule_ratio(sms, gemms), rel=1e-9)
    assert ratio > 1.0


def test_compute_fill_share_scales_only_the_compute_of_few_tile_calls() -> None:
    """At a share of 0 the model is what it was; at 1 a call of few tiles computes on its tiles' SMs (the
    compute term times :func:`moe.compute_fill_ratio`), and a large batch, whose tiles cover the GPU, is
    unchanged; nothing but the compute term moves. No SM count: no term at a share of 0, an error above."""
    base = dataclasses.replace(moe.default_params(B200, "nvfp4"), local_tile_share=1.0)
    filled = dataclasses.replace(base, compute_fill_share=1.0)
    layer = dict(hidden_size=4096, inter_size=2048, topk=6, num_experts=256)
    # one expert per GPU at 64 tokens (32 + 32 tiles); 32 experts per GPU at 16,384 tokens (thousands)
    for tokens, ep, few in ((64.0, 256, True), (16384.0, 8, False)):
        a = moe.breakdown(B200, base, num_tokens=tokens, ep_size=ep, **layer)
        b = moe.breakdown(B200, filled, num_tokens=tokens, ep_size=ep, **layer)
        assert b.memory_s == pytest.approx(a.memory_s)
        assert b.fixed_s == pytest.approx(a.fixed_s)
        if few:
            assert float(b.compute_s) > 2.0 * float(a.compute_s)
        else:
            assert float(b.compute_s) == pytest.approx(float(a.compute_s))
    a = moe.breakdown(
        B200, dataclasses.replace(base, compute_units=0.0), num_tokens=64.0, ep_size=256, **layer
    )
    assert float(a.compute_s) > 0.0
    with pytest.raises(CostmodelError, match=r"datasheet\.compute_units"):
        moe.breakdown(
            B200, dataclasses.replace(filled, compute_units=0.0), num_tokens=64.0, ep_size=256, **layer
        )


@pytest.mark.parametrize("term", ["compute_fill_share", "group_switch_s"])
def test_sm_terms_without_an_sm_count_are_an_error(term: str) -> None:
    """A key fitted with an SM term (its other terms lowered to leave that time to it) on a profile with no
    SM count would run fast without the term: an error naming the datasheet field, not a silent drop."""
    datasheet = B200.datasheet.model_copy(update={"compute_units": None})
    no_sms = B200.model_copy(update={"datasheet": datasheet})
    params = moe.default_params(no_sms, "nvfp4")
    assert params.compute_units == 0.0
    layer = dict(num_tokens=64.0, hidden_size=4096, inter_size=2048, topk=6, num_experts=256, ep_size=256)
    assert float(moe.time_s(no_sms, params, **layer)) > 0.0  # neither term: the SM-free model runs
    with pytest.raises(CostmodelError, match=r"'b200' has no datasheet\.compute_units .* kernel models need"):
        moe.time_s(
            no_sms,
            dataclasses.replace(params, **{term: 0.5 if term == "compute_fill_share" else 1e-6}),
            **layer,
        )
