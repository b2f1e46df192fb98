"""The disaggregated closed loop: limits it must reach, orderings it must keep, and the KV transfer's bytes
and link against independent figures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import costmodel
from costmodel.closed_loop import LoopParams, Speculation
from costmodel.disagg import (
    DisaggParams,
    decode_slot_share,
    disagg_loop,
    disagg_pairs,
    disagg_parts,
    prefill_wait,
)
from costmodel.errors import CostmodelError
from costmodel.estimate import step_time_s
from costmodel.serving import Engine

LLAMA_3_8B_KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2
"""K and V x 32 layers x 8 KV heads x head_dim 128 x 2 bytes (bf16), from Meta-Llama-3-8B's config.json
(num_hidden_layers 32, num_key_value_heads 8, hidden_size 4096 / num_attention_heads 32)."""

PARAMS = DisaggParams(
    step_overhead_s=0.001, request_overhead_s=0.05, burst_fraction=0.0, kv_transfer_overhead_s=0.002
)


@pytest.fixture(scope="module")
def prefill() -> Engine:
    return Engine.build("llama-3-8b", "h100-sxm", max_batch_size=1, max_batched_tokens=8192)


@pytest.fixture(scope="module")
def decode() -> Engine:
    return Engine.build("llama-3-8b", "h100-sxm", max_batch_size=64, max_batched_tokens=8192)


def test_one_client_pays_prefill_transfer_and_lone_decodes(prefill: Engine, decode: Engine) -> None:
    """With one client nothing queues: TTFT is the request overhead, one prefill iteration of the whole
    prompt, and the transfer of its KV cache (bytes / link bandwidth + the fixed cost); TPOT is a lone
    decode iteration at the mean context."""
    isl, osl = 1000, 500
    r = disagg_loop(
        prefill, decode, prefill_workers=1, decode_workers=1, concurrency=1, isl=isl, osl=osl, params=PARAMS
    )
    prompt = float(prefill.step_time(prefill_tokens=isl, prefill_past=0)) + PARAMS.step_overhead_s
    # one tp=1 worker each, 2 GPUs in all: inside the 8-GPU NVLink domain of an HGX H100
    nvlink = prefill.hardware.datasheet.intra_node_bandwidth_gb_per_s
    assert nvlink is not None
    transfer = isl * LLAMA_3_8B_KV_BYTES_PER_TOKEN / (nvlink.value * 1e9) + PARAMS.kv_transfer_overhead_s
    assert float(r.transfer_s) == pytest.approx(transfer, rel=1e-12)
    assert float(r.ttft_s) == pytest.approx(PARAMS.request_overhead_s + prompt + transfer, rel=1e-9)
    lone = float(decode.step_time(decode_batch=1, decode_context=isl + osl / 2)) + PARAMS.step_overhead_s
    assert float(r.tpot_s) == pytest.approx(lone, rel=1e-9)
    assert str(r.bottleneck) == "clients"


def test_transfer_is_kv_bytes_over_the_links_in_parallel(prefill: Engine, decode: Engine) -> None:
    """Across nodes the KV cache crosses min(prefill GPUs, decode GPUs) NICs at the profile's per-GPU
    bandwidth; a smaller KV dtype moves fewer bytes."""
    wide = decode.replace(deployment=decode.deployment.model_copy(update={"tp": 4}))
    isl = np.array([128, 1024, 8000])
    parts = disagg_parts(prefill, wide, prefill_workers=4, decode_workers=2, concurrency=8, isl=isl, osl=100)
    assert not parts.intra.any()  # 4 x 1 + 2 x 4 = 12 GPUs > one 8-GPU domain
    nic = prefill.hardware.datasheet.inter_node_bandwidth_gb_per_s
    assert nic is not None
    np.testing.assert_array_equal(parts.kv_bytes, isl * LLAMA_3_8B_KV_BYTES_PER_TOKEN)
    np.testing.assert_allclose(
        parts.transfer_s, isl * LLAMA_3_8B_KV_BYTES_PER_TOKEN / (1 * nic.value * 1e9), rtol=1e-12
    )
    both_wide = disagg_parts(wide, wide, prefill_workers=4, decode_workers=2, concurrency=8, isl=isl, osl=100)
    np.testing.assert_allclose(both_wide.transfer_s, parts.transfer_s / 4, rtol=1e-12)
    fp8 = Engine.build("llama-3-8b", "h100-sxm", kv_dtype="fp8", max_batch_size=1)
    smaller = disagg_parts(fp8, wide, prefill_workers=4, decode_workers=2, concurrency=8, isl=isl, osl=100)
    np.testing.assert_array_equal(smaller.kv_bytes, parts.kv_bytes // 2)


def test_the_link_follows_the_scale_up_domain_unless_named(prefill: Engine, decode: Engine) -> None:
    workers = np.array([1, 3, 6, 7, 8])  # 1 prefill + n decode GPUs: up to 8 inside one HGX domain
    parts = disagg_parts(
        prefill, decode, prefill_workers=1, decode_workers=workers, concurrency=4, isl=512, osl=8
    )
    np.testing.assert_array_equal(parts.intra, workers + 1 <= 8)
    # one client: nothing waits, TTFT moves by the transfer alone
    kwargs = {"prefill_workers": 1, "decode_workers": 1, "concurrency": 1, "isl": 4096, "osl": 64}
    inter = disagg_loop(prefill, decode, link="inter", **kwargs)
    intra = disagg_loop(prefill, decode, link="intra", **kwargs)
    assert float(inter.transfer_s) > float(intra.transfer_s)
    assert float(inter.ttft_s) - float(intra.ttft_s) == pytest.approx(
        float(inter.transfer_s) - float(intra.transfer_s), rel=1e-9
    )
    # four clients: the slower loop sends prompts less often, so they wait less for the prefill worker
    kwargs["concurrency"] = 4
    inter = disagg_loop(prefill, decode, link="inter", **kwargs)
    intra = disagg_loop(prefill, decode, link="intra", **kwargs)
    assert 0 < float(inter.ttft_s - intra.ttft_s) < float(inter.transfer_s - intra.transfer_s)
    assert float(inter.prefill_wait_s) < float(intra.prefill_wait_s)


def test_ttft_grows_with_prefill_load(prefill: Engine, decode: Engine) -> None:
    """More clients, longer prompts or fewer prefill workers never shorten the time to first token."""
    clients = np.array([1, 2, 8, 32, 64, 128, 256, 512])[:, None]
    workers = np.array([1, 2, 4])[None, :]
    for isl, osl in ((512, 512), (4096, 128), (16000, 16)):
        r = disagg_loop(
            prefill,
            decode,
            prefill_workers=workers,
            decode_workers=8,
            concurrency=clients,
            isl=isl,
            osl=osl,
            params=PARAMS,
        )
        assert np.all(np.diff(r.ttft_s, axis=0) >= -1e-12)
        assert np.all(np.diff(r.ttft_s, axis=1) <= 1e-12)
        assert np.all(np.diff(r.output_tokens_per_s, axis=0) >= -1e-9)
    r = disagg_loop(
        prefill, decode, prefill_workers=1, decode_workers=4, concurrency=64, isl=[256, 1024, 4096, 16000],
        osl=256, params=PARAMS,
    )  # fmt: skip
    assert np.all(np.diff(r.ttft_s) > 0)


def test_more_decode_workers_never_raise_tpot(prefill: Engine, decode: Engine) -> None:
    clients = np.array([1, 4, 16, 64, 256, 1024])[:, None]
    workers = np.array([1, 2, 3, 4, 8, 16])[None, :]
    for prefill_workers in (1, 4):
        r = disagg_loop(
            prefill,
            decode,
            prefill_workers=prefill_workers,
            decode_workers=workers,
            concurrency=clients,
            isl=1024,
            osl=512,
            params=PARAMS,
        )
        assert np.all(np.diff(r.tpot_s, axis=1) <= 1e-12)
        assert np.all(np.diff(r.decode_batch, axis=1) <= 1e-9)


def test_a_saturated_pool_fixes_the_rate_and_the_rest_queues(prefill: Engine, decode: Engine) -> None:
    """Decode-bound (one decode worker, clients far beyond its 64 slots): the rate is slots / (decode time
    of a full batch) and each extra client adds 1 / rate to TTFT (Little's law on the loop). Prefill-bound
    (long prompts, one prefill worker): the rate tends to the prefill pool's, one prompt per pass."""
    r = disagg_loop(
        prefill, decode, prefill_workers=8, decode_workers=1, concurrency=[200, 300, 400], isl=256, osl=512,
        params=PARAMS,
    )  # fmt: skip
    assert set(r.bottleneck.tolist()) == {"decode"}
    full = float(decode.step_time(decode_batch=64, decode_context=256 + 256)) + PARAMS.step_overhead_s
    np.testing.assert_allclose(r.requests_per_s, 64 / (511 * full), rtol=1e-9)
    np.testing.assert_allclose(np.diff(r.ttft_s), 100 / r.requests_per_s[0], rtol=1e-9)
    np.testing.assert_allclose(r.decode_batch, 64.0)

    r = disagg_loop(
        prefill, decode, prefill_workers=1, decode_workers=4, concurrency=[64, 128], isl=16000, osl=64,
        params=PARAMS,
    )  # fmt: skip
    assert set(r.bottleneck.tolist()) == {"prefill"}
    # the prompts queue at the prefill worker: the rate approaches its capacity (one prompt per pass)
    # from below as clients are added, and each client's cycle is C / rate (Little's law on the loop)
    capacity = 1.0 / r.prefill_s
    assert np.all(r.requests_per_s < capacity)
    assert np.all(r.requests_per_s > 0.99 * capacity)
    assert r.requests_per_s[1] > r.requests_per_s[0]
    np.testing.assert_allclose(r.ttft_s, np.array([64, 128]) / r.requests_per_s - 63 * r.tpot_s, rtol=1e-9)
    assert np.all(r.prefill_wait_s > 10 * r.prefill_s)


def test_short_prompts_share_a_prefill_pass(decode: Engine) -> None:
    """A prefill engine with room for 8 prompts of 1000 tokens in its 8192-token budget prefills 8 per
    pass; its pass costs the linear work of all 8000 tokens plus each prompt's own attention, the 8 prompts
    one packed attention call: the roofline pass of 8 sequences of 1000 tokens. One call of 8 costs no more
    than 8 calls of one (one launch per layer, the SMs filled by 8 prompts' tiles): below the linear work
    of 8000 tokens plus 8 times a lone prompt's attention."""
    batched = Engine.build("llama-3-8b", "h100-sxm", max_batch_size=16, max_batched_tokens=8192)
    parts = disagg_parts(batched, decode, prefill_workers=1, decode_workers=1, concurrency=1, isl=1000, osl=8)
    assert float(parts.prompts_per_pass) == 8
    m, hw, w = batched.model, batched.hardware, batched.workload
    eight = float(step_time_s(m, hw, w, batch_size=8, new_tokens=1000, past_tokens=0, logits="last"))
    assert float(parts.prefill_pass_s) == pytest.approx(eight, rel=1e-9)
    one = float(batched.step_time(prefill_tokens=1000))
    linear_8000 = float(batched.step_time(decode_batch=8000))  # 8000 single-token sequences
    attention = one - float(batched.step_time(decode_batch=1000))
    assert float(parts.prefill_pass_s) < linear_8000 + 8 * attention
    assert float(parts.prefill_alone_s) == pytest.approx(one, rel=1e-12)


def test_scalar_and_array_inputs_agree(prefill: Engine, decode: Engine) -> None:
    kwargs = {"prefill_workers": [1, 2], "decode_workers": [[1], [3]], "concurrency": 48, "isl": 2048}
    r = disagg_loop(prefill, decode, osl=256, params=PARAMS, **kwargs)
    assert r.ttft_s.shape == (2, 2)
    for i, y in enumerate((1, 3)):
        for j, x in enumerate((1, 2)):
            one = disagg_loop(
                prefill, decode, prefill_workers=x, decode_workers=y, concurrency=48, isl=2048, osl=256,
                params=PARAMS,
            )  # fmt: skip
            assert float(one.ttft_s) == pytest.approx(r.ttft_s[i, j], rel=1e-12)
            assert float(one.tpot_s) == pytest.approx(r.tpot_s[i, j], rel=1e-12)


def test_bursts_wait_for_prefill_passes(prefill: Engine, decode: Engine) -> None:
    kwargs = {"prefill_workers": 2, "decode_workers": 4, "concurrency": 64, "isl": 1024, "osl": 256}
    calm = disagg_loop(prefill, decode, params=PARAMS, **kwargs)
    burst = disagg_loop(
        prefill, decode, params=DisaggParams(**{**PARAMS.__dict__, "burst_fraction": 0.5}), **kwargs
    )
    # a wave of all 64 prompts, 32 on each one-prompt worker: the i-th is done after i passes, the mean
    # after (1 + ... + 32) / 32 = 16.5, in place of the steady state's wait and pass, for half the requests
    s1, wait = float(calm.prefill_s), float(calm.prefill_wait_s)
    assert float(burst.ttft_s - calm.ttft_s) == pytest.approx(0.5 * (16.5 * s1 - (wait + s1)), rel=1e-9)
    assert float(burst.tpot_s) == float(calm.tpot_s)


def test_a_wave_that_fits_one_pass_rides_it(prefill: Engine, decode: Engine) -> None:
    # 8 clients on 2 workers of 8 prompts per pass: a wave is 4 prompts per worker in one pass, s(4),
    # between a lone prompt's pass and a full one; with every request in a wave, TTFT is that pass plus
    # the request overhead, the transfer and its wait at the decode rank
    engine = dataclasses.replace(prefill, max_batch_size=8, max_batched_tokens=8 * 1024)
    kwargs = {"prefill_workers": 2, "decode_workers": 4, "concurrency": 8, "isl": 1024, "osl": 256}
    wave = disagg_loop(
        engine, decode, params=DisaggParams(**{**PARAMS.__dict__, "burst_fraction": 1.0}), **kwargs
    )
    parts = disagg_parts(engine, decode, **kwargs)
    assert float(parts.prompts_per_pass) == 8
    alone = float(parts.chunks * (parts.prefill_alone_s + PARAMS.step_overhead_s))
    full = float(parts.chunks * (parts.prefill_pass_s + PARAMS.step_overhead_s))
    four = alone + 3 * (full - alone) / 7
    assert alone < four < full
    fixed = PARAMS.request_overhead_s + float(wave.transfer_s)
    assert float(wave.ttft_s) == pytest.approx(fixed + four + float(wave.kv_receive_wait_s), rel=1e-9)


def test_a_wave_waiting_for_a_decode_slot_prefills_inside_that_wait(prefill: Engine, decode: Engine) -> None:
    """Clients far beyond the decode slots (200 on one worker of 64): a request of the wave waits for a slot
    however fast the prefill pool takes its prompt (25 one-prompt passes a worker, well under a second,
    against seconds for a slot), so the wave adds nothing and TTFT stays Little's law on the loop,
    C / rate - (osl - 1) TPOT, the steady state's, with every request in a wave. With room in the slots the
    wave adds its passes (test_bursts_wait_for_prefill_passes)."""
    kwargs = {"prefill_workers": 8, "decode_workers": 1, "concurrency": 200, "isl": 256, "osl": 512}
    calm = disagg_loop(prefill, decode, params=PARAMS, **kwargs)
    wave = disagg_loop(prefill, decode, params=dataclasses.replace(PARAMS, burst_fraction=1.0), **kwargs)
    assert str(calm.bottleneck) == "decode"
    passes = (200 / 8 + 1) / 2 * float(calm.prefill_s)  # the wave's mean time at its prefill worker
    assert passes < 0.1 * float(calm.ttft_s)
    assert float(wave.ttft_s) == pytest.approx(
        200 / float(wave.requests_per_s) - 511 * float(wave.tpot_s), rel=1e-9
    )
    assert float(wave.ttft_s) == pytest.approx(float(calm.ttft_s), rel=1e-12)


def test_the_disaggregated_wave_share_is_its_own_where_given() -> None:
    """``DisaggParams.from_loop`` takes the closed loop's wave share unless the disaggregated loop's own is
    given (a fitted one), and checks it as any share: in [0, 1]."""
    loop = LoopParams(burst_fraction=0.11)
    assert DisaggParams.from_loop(loop).burst_fraction == 0.11
    assert DisaggParams.from_loop(loop, burst_fraction=None).burst_fraction == 0.11
    assert DisaggParams.from_loop(loop, burst_fraction=0.35).burst_fraction == 0.35
    with pytest.raises(CostmodelError, match="burst_fraction"):
        DisaggParams.from_loop(loop, burst_fraction=1.2)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prefill_workers": 0}, "prefill_workers"),
        ({"decode_workers": 1.5}, "decode_workers"),
        ({"concurrency": 0.5}, "concurrency"),
        ({"isl": 0}, "isl"),
        ({"osl": 1}, "osl"),
        ({"link": "nvlink"}, "link"),
    ],
)
def test_bad_input_is_one_clear_error(
    prefill: Engine, decode: Engine, change: dict[str, object], field: str
) -> None:
    kwargs: dict[str, object] = {
        "prefill_workers": 1, "decode_workers": 1, "concurrency": 4, "isl": 128, "osl": 16,
    }  # fmt: skip
    kwargs.update(change)
    with pytest.raises(CostmodelError, match=field):
        disagg_loop(prefill, decode, **kwargs)  # type: ignore[arg-type]


def test_bad_parameters_and_mismatched_models_are_refused(prefill: Engine) -> None:
    with pytest.raises(CostmodelError, match="kv_transfer_overhead_s"):
        DisaggParams(kv_transfer_overhead_s=-1.0)
    with pytest.raises(CostmodelError, match="burst_fraction"):
        DisaggParams(burst_fraction=1.5)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(CostmodelError, match="decode_share_dispersion"):
            DisaggParams(decode_share_dispersion=bad)
    other = Engine.build("qwen3-8b", "h100-sxm")
    with pytest.raises(CostmodelError, match="same model"):
        disagg_loop(prefill, other, prefill_workers=1, decode_workers=1, concurrency=1, isl=8, osl=8)


def test_pairs_agree_with_one_loop_each_and_name_what_cannot_run(prefill: Engine, decode: Engine) -> None:
    """disagg_pairs shares each engine's kernel times between its pairs; every pair's answer is the
    disagg_loop of that pair, and a pair that cannot run is a reason, not an error."""
    wide = Engine.build("llama-3-8b", "h100-sxm", tp=2, max_batch_size=128)
    other = Engine.build("qwen3-8b", "h100-sxm")
    pairs = [(prefill, decode), (prefill, wide), (wide, decode), (prefill, other)]
    X, Y, C = np.array([1, 2, 3])[:, None], np.array([4, 2, 1])[:, None], np.array([8, 64, 512])[None, :]
    kwargs = {"prefill_workers": X, "decode_workers": Y, "concurrency": C, "isl": 2000, "osl": 300}
    got = disagg_pairs(pairs, params=PARAMS, **kwargs)
    assert got[3] == "prefill and decode engines serve different models"
    for (p, d), result in zip(pairs[:3], got[:3], strict=True):
        assert not isinstance(result, str)
        one = disagg_loop(p, d, params=PARAMS, **kwargs)
        assert result.ttft_s.shape == (3, 3)
        np.testing.assert_allclose(result.ttft_s, one.ttft_s, rtol=1e-12)
        np.testing.assert_allclose(result.tpot_s, one.tpot_s, rtol=1e-12)
        np.testing.assert_allclose(result.output_tokens_per_s, one.output_tokens_per_s, rtol=1e-12)
    l4 = Engine.build("llama-3-8b", "l4", max_batch_size=4)  # another device: the NIC, which L4 lacks
    (reason,) = disagg_pairs(
        [(prefill, l4)], prefill_workers=1, decode_workers=1, concurrency=1, isl=100, osl=100
    )
    assert isinstance(reason, str)
    assert reason.startswith("link: ")


def test_a_pair_without_the_formats_peak_is_a_reason_not_an_exception() -> None:
    """An A100 has no fp8 peak: the pair is reported with that reason, the search goes on."""
    fp8 = Engine.build("llama-3-8b", "a100-80gb", weight_dtype="fp8", activation_dtype="fp8")
    bf16 = Engine.build("llama-3-8b", "a100-80gb")
    out = disagg_pairs(
        [(fp8, fp8), (bf16, bf16)],
        prefill_workers=np.array([1]),
        decode_workers=np.array([1]),
        concurrency=np.array([4.0]),
        isl=512,
        osl=64,
    )
    assert isinstance(out[0], str)
    assert "fp8" in out[0]
    assert not isinstance(out[1], str)


# ----------------------------------------------------------------------------------------------------
# Attention data parallelism in a pool: each rank holds its own requests, the MoE layer is shared
# ----------------------------------------------------------------------------------------------------

QWEN3_30B_A3B_KV_BYTES_PER_TOKEN = 2 * 48 * 4 * 128 * 2
"""K and V x 48 layers x 4 KV heads x head_dim 128 x 2 bytes (bf16), from Qwen3-30B-A3B's config.json
(num_hidden_layers 48, num_key_value_heads 4, head_dim 128)."""


def _moe_engine(*, tp: int = 1, attention_dp: int = 1, rank_batch: int = 16) -> Engine:
    """A Qwen3-30B-A3B worker on H100: attention_dp ranks of tp GPUs, the experts split over all of them by
    EP; ``rank_batch`` sequences and 8192 tokens per rank and iteration."""
    from costmodel.specs import Deployment

    base = Engine.build("qwen3-30b-a3b", "h100-sxm", max_batch_size=1)
    return base.replace(
        deployment=Deployment(tp=tp, attention_dp=attention_dp, moe_ep=tp * attention_dp),
        max_batch_size=rank_batch * attention_dp,
        max_batched_tokens=8192 * attention_dp,
    )


def test_a_decode_rank_holds_and_attends_to_its_own_share_of_the_clients() -> None:
    """C clients on one decode worker of r = 4 ranks: each rank holds C / r sequences' KV cache, so the
    decodes' attention of the worker's D sequences costs what one GPU's attention over D / r sequences
    costs (one rank is one GPU here), and TPOT is the worker's iteration at D."""
    ranks, clients, isl, osl = 4, 64, 2000, 400
    decode = _moe_engine(attention_dp=ranks, rank_batch=32)
    one_gpu = _moe_engine()  # the same model on one GPU, no attention DP
    r = disagg_loop(
        _moe_engine(tp=2), decode, prefill_workers=1, decode_workers=1, concurrency=clients, isl=isl,
        osl=osl, params=PARAMS,
    )  # fmt: skip
    D, context = float(r.decode_batch), isl + osl / 2
    assert 0.8 * clients < D <= clients  # clients bound: most of them decoding at any time
    np.testing.assert_allclose(
        decode.parts.decode_attention_s(D, context), one_gpu.parts.decode_attention_s(D / ranks, context),
        rtol=1e-9,
    )  # fmt: skip
    iteration = float(decode.step_time(decode_batch=D, decode_context=context)) + PARAMS.step_overhead_s
    # the loop interpolates the iteration linearly between the points of its geometric batch grid
    assert float(r.tpot_s) == pytest.approx(iteration, rel=0.01)
    # its KV limit is r times one rank's: a rank of 32 slots, 4 of them
    parts = disagg_parts(
        _moe_engine(tp=2), decode, prefill_workers=1, decode_workers=1, concurrency=clients, isl=isl, osl=osl
    )
    assert float(np.max(parts.decode_slots)) == ranks * 32


def test_ttft_is_a_lone_prompt_on_one_rank_plus_its_transfer() -> None:
    """One client, a prefill worker of 4 attention-DP ranks (1 GPU each) and a decode worker at tp 2:
    TTFT = request overhead + the prompt's prefill + its KV transfer. The prompt's cache lives on one
    GPU, so it leaves over one NVLink link, not four; its prefill runs on one rank while the other three
    idle: slower than on a 4-GPU tensor-parallel worker, faster than a pass with a prompt on every rank."""
    isl, osl = 4000, 200
    prefill, decode = _moe_engine(attention_dp=4, rank_batch=1), _moe_engine(tp=2)
    r = disagg_loop(
        prefill, decode, prefill_workers=1, decode_workers=1, concurrency=1, isl=isl, osl=osl, params=PARAMS
    )
    nvlink = prefill.hardware.datasheet.intra_node_bandwidth_gb_per_s
    assert nvlink is not None
    transfer = (
        isl * QWEN3_30B_A3B_KV_BYTES_PER_TOKEN / (1 * nvlink.value * 1e9) + PARAMS.kv_transfer_overhead_s
    )
    assert float(r.transfer_s) == pytest.approx(transfer, rel=1e-12)
    assert float(r.ttft_s) == pytest.approx(
        PARAMS.request_overhead_s + float(r.prefill_s) + transfer, rel=1e-9
    )
    lone = float(r.prefill_s) - PARAMS.step_overhead_s
    tensor_parallel = float(_moe_engine(tp=4).step_time(prefill_tokens=isl))
    every_rank = float(prefill.step_time(prefill_tokens=4 * isl))  # one prompt of isl on each rank
    assert tensor_parallel < lone < every_rank


def test_fewer_clients_per_decode_worker_than_ranks_is_refused() -> None:
    decode = _moe_engine(attention_dp=4)
    with pytest.raises(
        CostmodelError, match=r"^concurrency / decode_workers \(3\) is below .*attention_dp \(4\)"
    ):
        disagg_loop(
            _moe_engine(), decode, prefill_workers=1, decode_workers=2, concurrency=6, isl=100, osl=10
        )
    [reason] = disagg_pairs(
        [(_moe_engine(), decode)], prefill_workers=1, decode_workers=2, concurrency=6, isl=100, osl=10
    )
    assert isinstance(reason, str)
    # a search over client counts keeps the counts that feed every rank, the others are NaN
    [loop] = disagg_pairs(
        [(_moe_engine(), decode)],
        prefill_workers=1,
        decode_workers=2,
        concurrency=[6, 8, 64],
        isl=100,
        osl=10,
    )
    assert not isinstance(loop, str)
    assert np.isnan(loop.ttft_s[0])
    assert np.isnan(loop.tpot_s[0])
    alone = disagg_loop(
        _moe_engine(), decode, prefill_workers=1, decode_workers=2, concurrency=[8, 64], isl=100, osl=10
    )
    np.testing.assert_allclose(loop.ttft_s[1:], alone.ttft_s, rtol=1e-12)
    np.testing.assert_allclose(loop.tpot_s[1:], alone.tpot_s, rtol=1e-12)
    assert "attention_dp (4)" in reason


def test_one_slot_prefill_wait_is_pollaczek_khinchine() -> None:
    """One prefill worker taking one prompt per pass of s seconds is an M/D/1 queue: its mean wait is
    rho s / (2 (1 - rho)) (Pollaczek-Khinchine, deterministic service), seen by C - 1 of C clients; a lone
    client never waits and rides a pass of its own."""
    s, rho, clients = 0.2, np.array([0.1, 0.5, 0.9]), 50.0
    w = prefill_wait(s, s, 1, workers=1, requests_per_s=rho / s, concurrency=clients)
    np.testing.assert_allclose(w.wait_s, rho * s / (2 * (1 - rho)) * (clients - 1) / clients, rtol=1e-12)
    np.testing.assert_allclose(w.pass_s, s)
    np.testing.assert_allclose(w.utilisation, rho, rtol=1e-12)
    lone = prefill_wait(s, s, 1, workers=1, requests_per_s=0.9 / s, concurrency=1)
    assert float(lone.wait_s) == 0.0


def test_a_prompt_waits_for_the_pass_in_progress_however_many_slots_are_free() -> None:
    """A worker of k = 4 slots (lone prompt 0.1 s, full pass 0.4 s) at 2 prompts/s rides passes of one
    prompt and is in a pass 2 x 0.1 = 20 % of the time; a prompt arriving then waits for its end, half a
    pass on average: 0.2 x 0.1 / 2 = 10 ms, on top of the Allen-Cunneen wait of M/D/4 at rho = 2 / (4 /
    0.4) = 0.2, both seen by 99 of 100 clients."""
    w = prefill_wait(0.1, 0.4, 4, workers=1, requests_per_s=2.0, concurrency=100)
    rho = 0.2
    queue = rho ** (np.sqrt(2 * (4 + 1)) - 1) / (4 * (1 - rho)) * 0.4 / 2
    assert float(w.batch) == 1.0
    assert float(w.wait_s) == pytest.approx((queue + 0.2 * 0.1 / 2) * 99 / 100, rel=1e-12)
    lone = prefill_wait(0.1, 0.4, 4, workers=1, requests_per_s=2.0, concurrency=1)
    assert float(lone.wait_s) == 0.0


def test_prefill_passes_fill_with_load_and_workers_share_it() -> None:
    """A worker that can take k = 8 prompts per pass rides passes of one prompt when idle and fuller ones
    as prompts arrive faster (never more than k); the wait grows with the load, and the same load over more
    workers waits less."""
    alone, full, k = 0.05, 0.2, 8
    rate = np.array([0.1, 5.0, 20.0, 35.0, 39.0])  # capacity k / full = 40 prompts/s
    w = prefill_wait(alone, full, k, workers=1, requests_per_s=rate, concurrency=64)
    assert float(w.batch[0]) == pytest.approx(1.0, abs=0.01)
    assert float(w.pass_s[0]) < 1.01 * alone
    assert np.all(np.diff(w.batch) >= 0)
    assert float(w.batch[-1]) > 4
    assert np.all(w.batch <= k)
    assert np.all(np.diff(w.wait_s) > 0)
    spread = prefill_wait(alone, full, k, workers=2, requests_per_s=rate, concurrency=64)
    assert np.all(spread.wait_s < w.wait_s)


def test_a_busier_prefill_pool_adds_wait_to_ttft(prefill: Engine, decode: Engine) -> None:
    """Below saturation the loop's TTFT is the request overhead, the wait at the prefill pool, the pass a
    prompt rides, its transfer and the transfer's wait at its decode rank; the waits grow with the
    clients."""
    r = disagg_loop(
        prefill, decode, prefill_workers=1, decode_workers=4, concurrency=[2, 16, 64], isl=4096, osl=256,
        params=PARAMS,
    )  # fmt: skip
    assert np.all(np.diff(r.prefill_wait_s) > 0)
    assert np.all(np.diff(r.kv_receive_wait_s) > 0)
    # one prompt per pass here (max_batch_size 1): the pass is a lone prompt's
    np.testing.assert_allclose(
        r.ttft_s,
        PARAMS.request_overhead_s + r.prefill_wait_s + r.prefill_s + r.transfer_s + r.kv_receive_wait_s,
        rtol=1e-9,
    )


def test_one_client_is_served_alike_by_any_worker_counts_and_batches(prefill: Engine) -> None:
    """A single client keeps one request in flight: one worker of each pool serves it, alone in its batch,
    so neither pool's worker count nor its batch limit changes TTFT or TPOT (the link held fixed)."""
    results = [
        disagg_loop(
            prefill.replace(max_batch_size=k),
            Engine.build("llama-3-8b", "h100-sxm", max_batch_size=batch),
            prefill_workers=x,
            decode_workers=y,
            concurrency=1,
            isl=2048,
            osl=256,
            params=PARAMS,
            link="inter",
        )
        for k, batch, x, y in ((1, 1, 1, 1), (1, 64, 3, 5), (4, 256, 8, 2))
    ]
    for r in results[1:]:
        assert float(r.ttft_s) == pytest.approx(float(results[0].ttft_s), rel=1e-9)
        assert float(r.tpot_s) == pytest.approx(float(results[0].tpot_s), rel=1e-9)


def test_a_decode_rank_receives_one_copy_of_the_kv_per_replica() -> None:
    """Tensor parallelism splits GQA KV heads over a decode rank's GPUs (one copy in all, Llama-3-8B's 8 KV
    heads over tp 4) and replicates them beyond (tp 16: 2 copies); the MLA latent (DeepSeek-V3's
    kv_lora_rank 512 + qk_rope_head_dim 64 per token and layer, config.json) is whole on every GPU of the
    rank, so a tp 8 rank holds 8 copies, and a one-GPU attention-DP rank one."""
    from costmodel.disagg import kv_copies
    from costmodel.specs import Deployment

    assert kv_copies(Engine.build("llama-3-8b", "h100-sxm", tp=4)) == pytest.approx(1.0)
    assert kv_copies(Engine.build("llama-3-8b", "h100-sxm", tp=16)) == pytest.approx(2.0)
    deepseek = Engine.build("deepseek-v3", "b200", tp=8)
    assert kv_copies(deepseek) == pytest.approx(8.0)
    ranks = deepseek.replace(deployment=Deployment(tp=1, attention_dp=8, moe_ep=8))
    assert kv_copies(ranks) == pytest.approx(1.0)


def test_an_mla_transfer_moves_every_copy_over_the_narrower_side() -> None:
    """From a prefill worker of one-GPU attention-DP ranks to a tp 8 decode worker the latent leaves the one
    GPU that holds it 8 times, over that GPU's NIC: 8 x kv bytes / NIC bandwidth; to a decode worker of
    one-GPU ranks, once."""
    from costmodel.memory import kv_cache_bytes
    from costmodel.specs import Deployment

    ranks = Engine.build(
        "deepseek-v3", "b200", weight_dtype="fp8", activation_dtype="fp8", max_batch_size=8,
        max_batched_tokens=8192,
    )  # fmt: skip
    ranks = ranks.replace(deployment=Deployment(tp=1, attention_dp=8, moe_ep=8))
    wide = ranks.replace(deployment=Deployment(tp=8, moe_ep=8))
    isl = 4096
    nic = ranks.hardware.datasheet.inter_node_bandwidth_gb_per_s
    assert nic is not None
    kv = float(kv_cache_bytes(ranks.model, batch_size=1, context_len=isl, kv_dtype=ranks.workload.kv_dtype))
    common = {"prefill_workers": 1, "decode_workers": 1, "concurrency": 8, "isl": isl, "osl": 64}
    to_wide = disagg_parts(ranks, wide, **common)
    to_ranks = disagg_parts(ranks, ranks, **common)
    assert not to_wide.intra.any()  # 16 GPUs: two 8-GPU domains
    assert not to_ranks.intra.any()
    assert float(to_wide.transfer_s) == pytest.approx(8 * kv / (nic.value * 1e9), rel=1e-9)
    assert float(to_ranks.transfer_s) == pytest.approx(kv / (nic.value * 1e9), rel=1e-9)


def test_the_receive_wait_is_the_md1_wait_of_a_simulated_queue() -> None:
    """One decode rank receiving one transfer at a time is an M/D/1 queue: the wait matches a simulation
    of it (Lindley's recursion, W' = max(0, W + s - a), Poisson arrivals) within its sampling error, seen by
    C - 1 of C clients; a lone client and an idle rank never wait, and a full one waits without bound."""
    from costmodel.disagg import kv_receive_wait

    rng = np.random.default_rng(7)
    s = 0.05
    for rho in (0.3, 0.6, 0.85):
        gaps = rng.exponential(s / rho, 400_000)
        wait, total = 0.0, 0.0
        for gap in gaps:
            total += wait
            wait = max(0.0, wait + s - gap)
        simulated = total / gaps.size
        modelled = float(kv_receive_wait(s, rho / s, concurrency=1e9))
        assert modelled == pytest.approx(simulated, rel=0.05)
    assert float(kv_receive_wait(s, 10.0, concurrency=4)) == pytest.approx(
        0.75 * float(kv_receive_wait(s, 10.0, concurrency=1e12)), rel=1e-9
    )
    assert float(kv_receive_wait(s, 10.0, concurrency=1)) == 0.0
    assert float(kv_receive_wait(s, 0.0, concurrency=8)) == 0.0
    assert np.all(np.diff(kv_receive_wait(s, [1.0, 5.0, 10.0, 19.0], concurrency=8)) > 0)
    assert np.isinf(kv_receive_wait(s, 1 / s, concurrency=8))


def test_the_receive_queue_is_held_for_the_copy_not_the_hand_offs_fixed_latency(
    prefill: Engine, decode: Engine
) -> None:
    """A decode rank's receive resource is busy for the copy's bytes over its links (TensorRT-LLM's workflow:
    the receiver requests and takes the blocks, steps 4-5 of docs/source/developer-guide/kv-transfer.md),
    not for the hand-off's fixed latency through the router (step 2). At any fixed cost per request the
    receive wait is the Pollaczek-Khinchine wait of an M/D/1 queue served in bytes / bandwidth, at the
    loop's own arrivals per rank, seen by C - 1 of C clients; the fixed cost joins TTFT once, as latency."""
    parts = disagg_parts(
        prefill, decode, prefill_workers=2, decode_workers=2, concurrency=64, isl=4096, osl=256
    )  # fmt: skip
    s = float(parts.transfer_s)
    for overhead in (0.0, 0.02, 0.2):
        params = dataclasses.replace(PARAMS, kv_transfer_overhead_s=overhead)
        r = parts.result(params)
        rho = float(r.requests_per_s) / float(parts.kv_receivers) * s
        assert 0.0 < rho < 1.0
        expected = rho * s / (2.0 * (1.0 - rho)) * 63.0 / 64.0
        assert float(r.kv_receive_wait_s) == pytest.approx(expected, rel=1e-9)
        assert float(r.transfer_s) == pytest.approx(s + overhead, rel=1e-12)
        assert float(r.ttft_s) > overhead
    # served at the rank, the 0.2 s fixed cost would have saturated it (load above 1), its wait unbounded
    assert float(r.requests_per_s) / float(parts.kv_receivers) * (s + 0.2) > 1.0
    assert np.isfinite(float(r.kv_receive_wait_s))


def test_a_prefill_pass_pays_the_hosts_per_layer_costs_and_decodes_do_not(
    prefill: Engine, decode: Engine
) -> None:
    """A prefill worker's pass carries prompt tokens, so the host runs it outside CUDA graphs and pays the
    closed loop's per-layer cost: one client's TTFT grows by exactly layers x that cost (32 layers of
    Llama 3 8B, its config.json num_hidden_layers) per chunk and its TPOT not at all; the MLA cost is per
    MLA layer, so a model without MLA pays none of it. ``from_loop`` carries both from the loop's."""
    from costmodel.closed_loop import LoopParams

    common = {"prefill_workers": 1, "decode_workers": 1, "concurrency": 1, "isl": 1000, "osl": 200}
    parts = disagg_parts(prefill, decode, **common)
    base = parts.result(PARAMS)
    hosted = parts.result(dataclasses.replace(PARAMS, prefill_layer_overhead_s=1e-4))
    mla = parts.result(dataclasses.replace(PARAMS, mla_prefill_layer_overhead_s=1e-3))
    assert float(parts.chunks) == 1.0
    assert float(hosted.ttft_s) - float(base.ttft_s) == pytest.approx(32 * 1e-4, rel=1e-9)
    assert float(hosted.tpot_s) == float(base.tpot_s)
    assert float(mla.ttft_s) == float(base.ttft_s)
    loop = LoopParams(prefill_layer_overhead_s=2e-4, mla_prefill_layer_overhead_s=3e-4)
    carried = DisaggParams.from_loop(loop, kv_transfer_overhead_s=0.01)
    assert (carried.prefill_layer_overhead_s, carried.mla_prefill_layer_overhead_s) == (2e-4, 3e-4)
    with pytest.raises(CostmodelError, match="mla_prefill_layer_overhead_s"):
        DisaggParams(mla_prefill_layer_overhead_s=-1.0)


def test_the_host_prepares_the_next_prefill_pass_while_the_gpu_runs_this_one(
    prefill: Engine, decode: Engine
) -> None:
    """Overlapped scheduling: passes follow each other every max(GPU pass, host work), so a host cost
    shorter than the GPU's pass leaves the prefill pool's capacity (utilisation per request rate) as it
    was, and a longer one sets it: chunks x (host + step overhead) per pass of k prompts."""
    common = {"prefill_workers": 2, "decode_workers": 2, "concurrency": 64, "isl": 2000, "osl": 200}
    parts = disagg_parts(prefill, decode, **common)
    gpu = float(parts.prefill_pass_s)

    def seconds_per_prompt(params: DisaggParams) -> float:
        r = parts.result(params)
        return float(r.prefill_utilisation) / float(r.requests_per_s)  # per_pass / (workers x k)

    short = dataclasses.replace(PARAMS, prefill_layer_overhead_s=0.5 * gpu / 32)
    long = dataclasses.replace(PARAMS, prefill_layer_overhead_s=3.0 * gpu / 32)
    assert seconds_per_prompt(short) == pytest.approx(seconds_per_prompt(PARAMS), rel=1e-9)
    k, chunks = float(parts.prompts_per_pass), float(parts.chunks)
    expected = chunks * (3.0 * gpu + PARAMS.step_overhead_s) / (2 * k)
    assert seconds_per_prompt(long) == pytest.approx(expected, rel=1e-9)


def test_an_mla_models_prefill_pass_pays_the_mla_cost_on_every_layer() -> None:
    """DeepSeek-V3 (61 layers, every one multi-head latent attention; its config.json num_hidden_layers):
    a lone prompt's TTFT grows by 61 x the MLA cost per chunk."""
    from costmodel.specs import Deployment

    engine = Engine.build(
        "deepseek-v3", "b200", weight_dtype="fp8", activation_dtype="fp8", max_batch_size=8,
        max_batched_tokens=8192,
    )  # fmt: skip
    engine = engine.replace(deployment=Deployment(tp=8, moe_ep=8))
    common = {"prefill_workers": 1, "decode_workers": 1, "concurrency": 1, "isl": 1024, "osl": 64}
    parts = disagg_parts(engine, engine, **common)
    base = parts.result(PARAMS)
    mla = parts.result(dataclasses.replace(PARAMS, mla_prefill_layer_overhead_s=1e-3))
    assert float(mla.ttft_s) - float(base.ttft_s) == pytest.approx(61 * 1e-3 * float(parts.chunks), rel=1e-9)


def test_the_overlappable_host_cost_adds_to_a_step_unless_the_engine_overlaps_it() -> None:
    """``from_loop`` folds the closed loop's ``overlapped_host_s`` into the disaggregated loop's step cost
    for an engine that runs host and kernels in turn (its sum is all the closed loop determines), and
    leaves it out for one that overlaps them (hidden behind each iteration's kernels)."""
    from costmodel.closed_loop import LoopParams

    loop = LoopParams(step_overhead_s=1e-3, overlapped_host_s=2e-3)
    assert DisaggParams.from_loop(loop).step_overhead_s == pytest.approx(3e-3, rel=1e-12)
    assert DisaggParams.from_loop(loop).overlapped_host_s == 0.0  # already on the path: not twice
    assert DisaggParams.from_loop(loop, overlap_host=True).step_overhead_s == 1e-3
    # overlapped, it is kept (not dropped): the floor of a decode iteration shorter than its host passes
    assert DisaggParams.from_loop(loop, overlap_host=True).overlapped_host_s == 2e-3


def test_an_overlapped_decode_iteration_lasts_the_longer_of_its_kernels_and_its_host_passes(
    prefill: Engine, decode: Engine
) -> None:
    """An overlapping engine prepares the next decode iteration's passes while the GPU runs this one, so
    the iteration lasts max(kernels, passes x host per pass) + the fixed step cost (the aggregated loop's
    rule, ``LoopParts.step_s``; SGLang's spec-v2 EAGLE decode worker prepares three passes). Oracles: a
    host far slower than the kernels makes the iteration CPU-bound at exactly passes x host + step cost per
    iteration, whatever the kernels; a host far faster changes nothing against no host cost at all; with
    speculative decoding the iteration's E tokens share it."""
    isl, osl = 1000, 500
    common = {"prefill_workers": 1, "decode_workers": 1, "concurrency": 1, "isl": isl, "osl": osl}
    lone = float(decode.step_time(decode_batch=1, decode_context=isl + osl / 2))  # the kernels, s
    step = 1e-3
    for passes in (1.0, 3.0):
        parts = disagg_parts(prefill, decode, decode_host_passes=passes, **common)
        slow = 10.0 * lone  # per pass: the host binds
        cpu = parts.result(DisaggParams(step_overhead_s=step, overlapped_host_s=slow))
        assert float(cpu.tpot_s) == pytest.approx(passes * slow + step, rel=1e-9)
        fast = 1e-3 * lone / passes  # hidden behind the kernels
        hidden = parts.result(DisaggParams(step_overhead_s=step, overlapped_host_s=fast))
        bare = parts.result(DisaggParams(step_overhead_s=step))
        assert float(hidden.tpot_s) == pytest.approx(float(bare.tpot_s), rel=1e-12)
        assert float(bare.tpot_s) == pytest.approx(lone + step, rel=1e-9)
    spec = Speculation(draft_tokens=2, acceptance_rate=0.8, draft_cost_ratio=0.05)
    drafting = disagg_parts(prefill, decode, speculation=spec, decode_host_passes=3.0, **common)
    slow = 10.0 * lone
    cpu = drafting.result(DisaggParams(step_overhead_s=step, overlapped_host_s=slow))
    assert float(cpu.tpot_s) == pytest.approx((3.0 * slow + step) / spec.tokens_per_iteration, rel=1e-9)
    with pytest.raises(CostmodelError, match="decode_host_passes"):
        disagg_parts(prefill, decode, decode_host_passes=0.5, **common)
    with pytest.raises(CostmodelError, match="overlapped_host_s"):
        DisaggParams(overlapped_host_s=-1e-3)


def test_every_disaggregated_entry_point_prices_the_decode_pools_host_passes(
    prefill: Engine, decode: Engine
) -> None:
    """disagg_loop and disagg_pairs (the Pareto search's plug-in, disagg_points) take the decode pool's host
    passes as disagg_parts does, so a caller prices an SGLang EAGLE decode pool as the evaluation does.
    Oracle: a host far slower than the kernels binds the iteration at exactly passes x host + step cost per
    E tokens (SGLang's count, costmodel.loop_params.host_passes: 3 with drafts, 1 without; other engines 1),
    through every entry point alike; a count below one pass is refused by each."""
    from costmodel.loop_params import EAGLE_HOST_PASSES, host_passes
    from costmodel.pareto import disagg_points

    assert EAGLE_HOST_PASSES == 3
    assert host_passes("sglang", drafts=True) == 3.0
    assert host_passes("sglang", drafts=False) == 1.0
    for engine in ("vllm", "trtllm"):
        assert host_passes(engine, drafts=True) == 1.0
    common = {"prefill_workers": 1, "decode_workers": 1, "concurrency": 1, "isl": 1000, "osl": 500}
    lone = float(decode.step_time(decode_batch=1, decode_context=1250))
    step, slow = 1e-3, 10.0 * lone
    params = DisaggParams(step_overhead_s=step, overlapped_host_s=slow)
    spec = Speculation(draft_tokens=2, acceptance_rate=0.8, draft_cost_ratio=0.05)
    passes = host_passes("sglang", drafts=True)
    want = (passes * slow + step) / spec.tokens_per_iteration
    loop = disagg_loop(prefill, decode, params=params, speculation=spec, decode_host_passes=passes, **common)
    assert float(loop.tpot_s) == pytest.approx(want, rel=1e-9)
    (pair,) = disagg_pairs(
        [(prefill, decode)], params=params, speculation=spec, decode_host_passes=passes, **common
    )
    assert not isinstance(pair, str)
    assert float(pair.tpot_s) == pytest.approx(want, rel=1e-9)
    (plain,) = disagg_pairs([(prefill, decode)], params=params, **common)
    assert not isinstance(plain, str)
    assert float(plain.tpot_s) == pytest.approx(slow + step, rel=1e-9)
    loop_params = LoopParams(step_overhead_s=step, overlapped_host_s=slow)
    (served,) = disagg_points(
        [(prefill, decode)], prefill_workers=np.array([1]), decode_workers=np.array([1]),
        concurrency=np.array([[1]]), isl=1000, osl=500, params=loop_params, overlap_host=True,
        decode_host_passes=passes,
    )  # fmt: skip
    assert not isinstance(served, str)
    assert float(served.tpot_s[0, 0]) == pytest.approx(passes * slow + step, rel=1e-9)
    for bad in (0.5, float("nan"), "3"):
        with pytest.raises(CostmodelError, match="decode_host_passes"):
            disagg_loop(prefill, decode, decode_host_passes=bad, **common)  # type: ignore[arg-type]
        with pytest.raises(CostmodelError, match="decode_host_passes"):
            disagg_pairs([(prefill, decode)], decode_host_passes=bad, **common)  # type: ignore[arg-type]


def test_same_device_is_judged_by_the_datasheet_not_the_profile_name(prefill: Engine, decode: Engine) -> None:
    """The KV transfer stays on NVLink only between GPUs of one kind: a renamed copy of the H100 profile is
    the same device (its datasheet), an H200 (another memory size and bandwidth) is not, however few GPUs."""
    from costmodel.disagg import same_device
    from costmodel.registry import load_hardware

    h100 = prefill.hardware
    renamed = h100.model_copy(update={"name": "my-h100", "display_name": "Our H100 SXM"})
    copy = decode.replace(hardware=renamed)
    h200 = decode.replace(hardware=load_hardware("h200"))
    assert same_device(prefill, copy)
    assert not same_device(prefill, h200)
    kwargs = {"prefill_workers": 1, "decode_workers": 1, "concurrency": 1, "isl": 512, "osl": 8}
    assert disagg_parts(prefill, copy, **kwargs).intra.all()  # 2 GPUs, one HGX domain, one device kind
    assert not disagg_parts(prefill, h200, **kwargs).intra.any()  # 2 GPUs, but two kinds: the NIC


def test_a_renamed_copy_of_the_device_shares_its_scale_up_domain(prefill: Engine, decode: Engine) -> None:
    """Whether both pools can sit in one NVLink domain follows the device, not the profile's name: a
    decode pool on a renamed copy of the H100 profile moves the KV cache over NVLink as before; one on
    another device (H200) crosses the NIC."""
    renamed = decode.replace(hardware=decode.hardware.model_copy(update={"name": "my-h100"}))
    h200 = decode.replace(hardware=costmodel.load_hardware("h200"))
    workers = np.array([1, 3, 7, 8])
    common = {"prefill_workers": 1, "decode_workers": workers, "concurrency": 8, "isl": 512, "osl": 8}
    same = disagg_parts(prefill, decode, **common)
    np.testing.assert_array_equal(same.intra, workers + 1 <= 8)
    copy = disagg_parts(prefill, renamed, **common)
    np.testing.assert_array_equal(copy.intra, same.intra)
    np.testing.assert_array_equal(copy.transfer_s, same.transfer_s)
    assert not disagg_parts(prefill, h200, **common).intra.any()


def test_a_renamed_copy_of_the_model_is_the_same_model(prefill: Engine, decode: Engine) -> None:
    """Both pools must serve one model, judged by its architecture, not its profile's name: a decode pool
    whose model is a renamed, re-cited copy predicts exactly as before; another model (Qwen3-8B) is
    refused, with the same message under either name."""
    from costmodel.disagg import same_model

    model = decode.model.model_copy(update={"name": "our-llama", "source": "our copy", "description": "x"})
    renamed = dataclasses.replace(decode, model=model)
    other = Engine.build("qwen3-8b", "h100-sxm")
    assert same_model(prefill, renamed)
    assert not same_model(prefill, other)
    kwargs = {"prefill_workers": 1, "decode_workers": 2, "concurrency": 16, "isl": 512, "osl": 64}
    base = disagg_loop(prefill, decode, params=PARAMS, **kwargs)
    copy = disagg_loop(prefill, renamed, params=PARAMS, **kwargs)
    np.testing.assert_array_equal(copy.ttft_s, base.ttft_s)
    np.testing.assert_array_equal(copy.tpot_s, base.tpot_s)
    with pytest.raises(CostmodelError, match="both pools must run the same model"):
        disagg_loop(prefill, other, params=PARAMS, **kwargs)


def test_an_even_share_or_one_decode_worker_is_the_pooled_limit() -> None:
    """Dispersion 0 (an even share) or a single decode worker: each worker decodes min(M / Y, S) and the
    pool's excess (M - Y S)+ waits, whatever the other parameter."""
    staged = np.array([0.0, 10.0, 31.9, 32.0, 40.0, 100.0])
    batch, waiting = decode_slot_share(staged, 4, 8, dispersion=0.0)
    np.testing.assert_allclose(batch, np.minimum(staged / 4, 8))
    np.testing.assert_allclose(waiting, np.maximum(staged - 32, 0))
    for dispersion in (0.0, 0.4, 1.0):
        batch, waiting = decode_slot_share(staged, 1, 32, dispersion=dispersion)
        np.testing.assert_allclose(batch, np.minimum(staged, 32))
        np.testing.assert_allclose(waiting, np.maximum(staged - 32, 0))


def test_random_routing_waits_as_the_binomial_share_does() -> None:
    """At dispersion 1 a worker's share is binomial(M, 1 / Y): the expected excess over its slots, and the
    sequences it decodes, agree with the exact binomial sums (an independent oracle) to a few percent once
    the share is a few tens of clients (the normal approximation's regime); every client is either decoding
    or waiting."""
    from scipy.stats import binom

    for staged, workers, slots in ((400, 4, 100), (96, 6, 16), (640, 8, 90)):
        n = np.arange(staged + 1)
        pmf = binom.pmf(n, staged, 1.0 / workers)
        excess = float(np.sum(np.maximum(n - slots, 0) * pmf))
        batch, waiting = decode_slot_share(float(staged), workers, slots, dispersion=1.0)
        assert float(waiting) == pytest.approx(workers * excess, rel=0.08)
        assert float(batch) == pytest.approx(float(np.sum(np.minimum(n, slots) * pmf)), rel=0.01)
        assert float(batch) * workers + float(waiting) == pytest.approx(staged, rel=1e-12)


def test_no_more_clients_than_one_workers_slots_never_wait() -> None:
    """M <= S: however the M clients are spread, no worker holds more than its S slots, so none waits and
    every one decodes (exactly, not to the normal tail's 0.08 clients at Y = 2, S = M = 1)."""
    for workers, slots in ((2, 1), (2, 2), (3, 1), (4, 8), (8, 64)):
        staged = np.linspace(0.0, slots, 7)
        for dispersion in (0.3, 1.0):
            batch, waiting = decode_slot_share(staged, workers, slots, dispersion=dispersion)
            np.testing.assert_array_equal(waiting, 0.0)
            np.testing.assert_allclose(batch * workers, staged, rtol=1e-12)


def test_a_few_slots_share_as_the_exact_binomial_does() -> None:
    """At dispersion 1, for 2 to 8 workers of 1 to 16 slots and every whole M up to Y S + 3 S, the sequences
    decoding per worker agree with the exact binomial E[min(N, S)] (scipy's binomial, an independent
    oracle) within 2.5 % and the clients waiting with Y E[(N - S)+] within 2 % of M (6 % and 3.5 % at a
    single slot): the bounds the docstring states."""
    from scipy.stats import binom

    for workers in (2, 3, 4, 8):
        for slots in (1, 2, 3, 4, 8, 16):
            for staged in range(1, workers * slots + 3 * slots + 1):
                n = np.arange(staged + 1)
                pmf = binom.pmf(n, staged, 1.0 / workers)
                exact_batch = float(np.sum(np.minimum(n, slots) * pmf))
                exact_waiting = workers * float(np.sum(np.maximum(n - slots, 0) * pmf))
                batch, waiting = decode_slot_share(float(staged), workers, slots, dispersion=1.0)
                case = (workers, slots, staged)
                assert float(batch) == pytest.approx(exact_batch, rel=0.06 if slots == 1 else 0.025), case
                assert abs(float(waiting) - exact_waiting) <= (0.035 if slots == 1 else 0.02) * staged, case


def test_dispersion_zero_is_the_even_share_exactly() -> None:
    """Dispersion 0: min(M / Y, S) decoding and (M - Y S)+ waiting, bit for bit."""
    staged = np.array([0.0, 3.0, 7.9, 24.0, 24.1, 1000.0])
    batch, waiting = decode_slot_share(staged, 3, 8, dispersion=0.0)
    np.testing.assert_array_equal(batch, np.minimum(staged / 3, 8))
    np.testing.assert_array_equal(waiting, 3 * np.maximum(staged / 3 - 8, 0))


def test_a_dispersed_router_makes_a_full_pool_wait_for_slots(prefill: Engine, decode: Engine) -> None:
    """With exactly as many clients as decode slots (4 workers x 64), an even share never waits for a slot,
    a dispersed one does: TTFT grows with the dispersion, TPOT falls (fewer sequences per iteration) and so
    does the rate; far below the slots the dispersion changes next to nothing."""
    common = dict(prefill_workers=4, decode_workers=4, isl=256, osl=512)
    ttft, tpot, rate = [], [], []
    for dispersion in (0.0, 0.3, 1.0):
        params = dataclasses.replace(PARAMS, decode_share_dispersion=dispersion)
        r = disagg_loop(prefill, decode, concurrency=256, params=params, **common)
        ttft.append(float(r.ttft_s))
        tpot.append(float(r.tpot_s))
        rate.append(float(r.requests_per_s))
    assert ttft[0] < ttft[1] < ttft[2]
    assert tpot[0] > tpot[1] > tpot[2]
    assert rate[0] > rate[1] > rate[2]
    # TTFT is still C / rate - decoding (Little's law on the loop)
    r = disagg_loop(
        prefill,
        decode,
        concurrency=256,
        params=dataclasses.replace(PARAMS, decode_share_dispersion=1.0),
        **common,
    )
    np.testing.assert_allclose(r.ttft_s, 256 / r.requests_per_s - 511 * r.tpot_s, rtol=1e-6)
    low = [
        float(disagg_loop(prefill, decode, concurrency=16, params=dataclasses.replace(PARAMS, decode_share_dispersion=d),
                          **common).ttft_s)
        for d in (0.0, 1.0)
    ]  # fmt: skip
    assert low[1] == pytest.approx(low[0], rel=1e-6)


# --- speculative decoding in the decode pool ---------------------------------------------------------------


def _spec(alpha: float, k: int = 3, c: float = 0.05) -> Speculation:
    return Speculation(draft_tokens=k, acceptance_rate=alpha, draft_cost_ratio=c)


def test_speculation_at_zero_acceptance_costs_the_verification_and_the_drafts(
    prefill: Engine, decode: Engine
) -> None:
    """With one client and alpha = 0 every iteration yields one token: TPOT is one verification pass of
    k + 1 tokens, k draft steps of c plain steps and the step overhead, hand-computed from the engine's
    own step times; it costs at least the plain decode plus the drafts, and TTFT is untouched (the
    prefill pool drafts nothing)."""
    isl, osl, k, c = 1000, 500, 3, 0.05
    kw = dict(prefill_workers=1, decode_workers=1, concurrency=1, isl=isl, osl=osl, params=PARAMS)
    plain = disagg_loop(prefill, decode, **kw)  # type: ignore[arg-type]
    spec = disagg_loop(prefill, decode, speculation=_spec(0.0, k, c), **kw)  # type: ignore[arg-type]
    context = isl + osl / 2
    one = float(decode.parts.step_time(decode_batch=1, decode_context=context))
    verify = float(decode.parts.step_time(decode_batch=1, decode_context=context, decode_new_tokens=k + 1))
    assert float(spec.tpot_s) == pytest.approx(verify + k * c * one + PARAMS.step_overhead_s, rel=1e-9)
    assert float(spec.tpot_s) >= float(plain.tpot_s) + k * c * one - 1e-15
    assert float(spec.ttft_s) == pytest.approx(float(plain.ttft_s), rel=1e-12)


def test_tpot_falls_with_acceptance_and_beats_plain_decoding_when_memory_bound(
    prefill: Engine, decode: Engine
) -> None:
    """At a few sequences a decode pass is memory bound (verifying 4 tokens costs about one step), so TPOT
    falls as alpha rises and, at alpha = 0.9 (E = 3.44 tokens per pass), is well below plain decoding;
    throughput rises alike."""
    kw = dict(prefill_workers=1, decode_workers=1, concurrency=4, isl=1024, osl=512, params=PARAMS)
    plain = disagg_loop(prefill, decode, **kw)  # type: ignore[arg-type]
    tpots, rates = [], []
    for alpha in (0.0, 0.3, 0.6, 0.9, 1.0):
        r = disagg_loop(prefill, decode, speculation=_spec(alpha), **kw)  # type: ignore[arg-type]
        tpots.append(float(r.tpot_s))
        rates.append(float(r.requests_per_s))
    assert np.all(np.diff(tpots) < 0)
    assert np.all(np.diff(rates) > 0)
    assert tpots[3] < 0.5 * float(plain.tpot_s)


@pytest.mark.parametrize("draft_head", [False, True])
def test_the_disaggregated_decode_iteration_is_the_aggregated_one(decode: Engine, draft_head: bool) -> None:
    """For the same engine, speculation and batch, the decode pool's iteration (drafts plus verification)
    is the aggregated loop's decode-only iteration (:func:`costmodel.closed_loop.loop_parts`), so the same
    pool alone gives the same TPOT in both models, with the drafts' output head priced apart or not."""
    from costmodel.closed_loop import _iteration_times
    from costmodel.disagg import decode_side

    spec = dataclasses.replace(_spec(0.8, k=2, c=1 / 32), draft_head=draft_head)
    isl, osl = np.asarray(2048.0), np.asarray(256.0)
    side = decode_side(decode, isl=isl, osl=osl, speculation=spec)
    batch = side.batch_grid[1:]
    agg = _iteration_times(
        decode, spec, ranks=1.0, running=batch, decodes=batch, n=3.0, isl=isl, osl=osl,
        chunk=isl, tokens=np.zeros_like(batch), free=np.full_like(batch, 8192.0),
    )[1]  # fmt: skip
    np.testing.assert_allclose(side.grid_s[1:], agg, rtol=1e-12)
    assert side.tokens_per_iteration == pytest.approx(1 + 0.8 + 0.64)


def test_pairs_with_speculation_agree_with_one_loop(prefill: Engine, decode: Engine) -> None:
    spec = _spec(0.7)
    kw = dict(prefill_workers=2, decode_workers=3, concurrency=[6, 60], isl=1024, osl=256, params=PARAMS)
    one = disagg_loop(prefill, decode, speculation=spec, **kw)  # type: ignore[arg-type]
    (pair,) = disagg_pairs([(prefill, decode)], speculation=spec, **kw)  # type: ignore[arg-type]
    assert not isinstance(pair, str)
    np.testing.assert_allclose(pair.tpot_s, one.tpot_s, rtol=1e-12)
    np.testing.assert_allclose(pair.ttft_s, one.ttft_s, rtol=1e-12)


def test_every_disaggregated_iteration_pays_the_loops_cost_per_layer(prefill: Engine, decode: Engine) -> None:
    """``layer_step_overhead_s`` is a cost of every iteration per model layer, prefill passes and decode
    iterations alike: the same figures as that many layers' worth (32, Llama 3 8B) more
    ``step_overhead_s``; ``from_loop`` carries it from the loop's."""
    common = {"prefill_workers": 1, "decode_workers": 1, "concurrency": 4, "isl": 1000, "osl": 200}
    parts = disagg_parts(prefill, decode, **common)
    per_layer = 2e-5
    paid = parts.result(dataclasses.replace(PARAMS, layer_step_overhead_s=per_layer))
    moved = parts.result(dataclasses.replace(PARAMS, step_overhead_s=PARAMS.step_overhead_s + 32 * per_layer))
    assert float(paid.tpot_s) == pytest.approx(float(moved.tpot_s), rel=1e-12)
    assert float(paid.ttft_s) == pytest.approx(float(moved.ttft_s), rel=1e-12)
    assert float(paid.tpot_s) > float(parts.result(PARAMS).tpot_s)
    assert (
        DisaggParams.from_loop(LoopParams(layer_step_overhead_s=per_layer)).layer_step_overhead_s == per_layer
    )
    with pytest.raises(CostmodelError, match="layer_step_overhead_s"):
        DisaggParams(layer_step_overhead_s=-1.0)


def test_the_cost_per_layer_is_gpu_work_hidden_with_the_kernels_behind_a_slower_host(
    prefill: Engine, decode: Engine
) -> None:
    """``layer_step_overhead_s`` is GPU work in both loops (``closed_loop.gpu_work_s``): from pass to pass
    the prefill worker's host hides it with the kernels, passes following every max(GPU pass + 32 x per
    layer, host) (Llama 3 8B's 32 layers), while a lone prompt waits for both, as it waits for the kernels."""
    common = {"prefill_workers": 2, "decode_workers": 2, "concurrency": 64, "isl": 2000, "osl": 200}
    parts = disagg_parts(prefill, decode, **common)
    gpu, k, chunks = float(parts.prefill_pass_s), float(parts.prompts_per_pass), float(parts.chunks)
    per_layer = 0.5 * gpu / 32  # the small kernels add half the pass's GPU time

    def per_pass(params: DisaggParams) -> float:
        r = parts.result(params)
        return float(r.prefill_utilisation) / float(r.requests_per_s) * 2 * k  # per_pass, two workers

    for host in (0.5 * gpu, 1.2 * gpu, 3.0 * gpu):  # below the GPU work, between, above GPU + layers
        params = dataclasses.replace(
            PARAMS, prefill_layer_overhead_s=host / 32, layer_step_overhead_s=per_layer
        )
        expected = chunks * (max(gpu + 32 * per_layer, host) + PARAMS.step_overhead_s)
        assert per_pass(params) == pytest.approx(expected, rel=1e-9)
        alone = chunks * (float(parts.prefill_alone_s) + 32 * per_layer + host + PARAMS.step_overhead_s)
        assert float(parts.result(params).prefill_s) == pytest.approx(alone, rel=1e-12)


def test_a_decode_batch_limit_caps_the_slots_per_row(prefill: Engine, decode: Engine) -> None:
    """``decode_batch_limit``: the most sequences a decode worker runs, per row (a search launching its
    decode workers for each row's clients). At the clients per worker it changes nothing with an even
    share (no worker holds more than its share); below them a worker decodes at most the limit, each
    iteration no longer and a request's first token no sooner; a limit below 1 is refused by name."""
    wide = Engine.build("llama-3-8b", "h100-sxm", max_batch_size=512)
    kw = dict(prefill_workers=1, decode_workers=2, concurrency=np.array([[8, 64, 256]]), isl=1000, osl=200)
    (free,) = disagg_pairs([(prefill, wide)], params=PARAMS, **kw)  # type: ignore[arg-type]
    (share,) = disagg_pairs([(prefill, wide)], params=PARAMS, decode_batch_limit=kw["concurrency"] // 2, **kw)  # type: ignore[arg-type]
    limit = np.array([[4, 8, 16]])
    (capped,) = disagg_pairs([(prefill, wide)], params=PARAMS, decode_batch_limit=limit, **kw)  # type: ignore[arg-type]
    assert not isinstance(free, str)
    assert not isinstance(share, str)
    assert not isinstance(capped, str)
    for name in ("ttft_s", "tpot_s", "output_tokens_per_s", "decode_batch"):
        np.testing.assert_array_equal(getattr(share, name), getattr(free, name))
    assert np.all(capped.decode_batch <= limit)
    assert np.all(free.decode_batch[:, 1:] > limit[:, 1:])  # the limit binds where it is below the share
    assert np.all(capped.tpot_s <= free.tpot_s)
    assert np.all(capped.ttft_s >= free.ttft_s)
    with pytest.raises(CostmodelError, match="decode_batch_limit"):
        disagg_pairs([(prefill, wide)], params=PARAMS, decode_batch_limit=0, **kw)  # type: ignore[arg-type]


def test_the_decode_iteration_is_interpolated_on_its_grid_per_row(prefill: Engine, decode: Engine) -> None:
    """DisaggParts.decode_s (the closed loop's lookup, laid out once per row) is the piecewise-linear
    interpolation of each row's decode times on the batch grid, held flat beyond its ends: np.interp per row
    as the oracle, at rows of different isl (so different tables) and batches on, between and past the
    grid's points."""
    isl = np.array([[128.0], [2048.0]])
    parts = disagg_parts(prefill, decode, prefill_workers=1, decode_workers=1, concurrency=np.ones((2, 3)),
                         isl=isl, osl=100)  # fmt: skip
    grid = parts.batch_grid
    batch = np.array([[0.0, 1.0, 2.5], [grid[-1], 0.5 * (grid[-2] + grid[-1]), 3.0 * grid[-1]]])
    got = parts.decode_s(batch)
    table = np.broadcast_to(parts.decode_grid_s, (*batch.shape, grid.size))
    for row in np.ndindex(batch.shape):
        assert got[row] == pytest.approx(np.interp(batch[row], grid, table[row]), rel=1e-12)


def test_a_decode_side_built_by_hand_takes_its_kv_copies_from_the_decode_engine() -> None:
    """Review 17b: ``DecodeSide(slots=, batch_grid=, grid_s=)`` still builds (``kv_copies`` defaults to
    NaN), and joining it to a prefill side prices the same KV transfer as :func:`decode_side`'s own. Qwen3's
    4 KV heads over a decode rank of 8 GPUs are held twice, so each request's cache crosses the link twice."""
    from costmodel.disagg import DecodeSide, _combine, decode_side, prefill_side

    prefill = Engine.build("qwen3-30b-a3b", "h100-sxm", tp=8, max_batch_size=1, max_batched_tokens=8192)
    decode = Engine.build("qwen3-30b-a3b", "h100-sxm", tp=8, max_batch_size=64, max_batched_tokens=8192)
    isl, osl = np.asarray(2048.0), np.asarray(256.0)
    side = decode_side(decode, isl=isl, osl=osl)
    assert side.kv_copies == 2.0
    by_hand = DecodeSide(slots=side.slots, batch_grid=side.batch_grid, grid_s=side.grid_s)
    assert np.isnan(by_hand.kv_copies)
    joined = [
        _combine(
            prefill,
            decode,
            prefill_side(prefill, isl=isl),
            d,
            prefill_workers=1,
            decode_workers=1,
            concurrency=8,
            isl=isl,
            osl=osl,
            link=None,
        )
        for d in (side, by_hand)
    ]
    assert np.array_equal(joined[0].transfer_s, joined[1].transfer_s)
    assert float(joined[0].transfer_s) > 0
