"""The closed-loop benchmark model: limits it must reach and orderings it must keep."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from loops import assert_paid_where_prompts_are, llama_3_8b_h100

from costmodel.closed_loop import (
    LoopParams,
    LoopParts,
    Speculation,
    closed_loop,
    loop_parts,
    wave_prefill_iterations,
    wave_prompts_per_rank,
)
from costmodel.errors import CostmodelError
from costmodel.serving import Engine


@pytest.fixture(scope="module")
def engine() -> Engine:
    return llama_3_8b_h100()


def test_one_client_pays_its_own_prefill_and_decodes_alone(engine: Engine) -> None:
    """With one client nothing queues: TTFT is half an iteration of wait plus the prompt's one chunk, and
    TPOT lies between a lone decode step and a decode step that also carries that chunk."""
    r = closed_loop(engine, concurrency=1, isl=1000, osl=500)
    lone = float(engine.step_time(decode_batch=1, decode_context=1250))
    chunk = float(engine.step_time(decode_batch=1, decode_context=1250, prefill_tokens=1000, prefill_past=0))
    assert float(r.decodes_per_iteration) == pytest.approx(499 / 500.5, rel=1e-6)
    assert lone <= float(r.tpot_s) <= chunk
    assert float(r.ttft_s) == pytest.approx(0.5 * float(r.iteration_s) + chunk, rel=0.01)


def test_more_clients_never_make_a_request_faster(engine: Engine) -> None:
    clients = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256])
    for isl, osl in ((128, 1024), (2048, 256), (8000, 64)):
        r = closed_loop(engine, concurrency=clients, isl=isl, osl=osl)
        assert np.all(np.diff(r.ttft_s) >= -1e-12)
        assert np.all(np.diff(r.tpot_s) >= -1e-12)
        assert np.all(np.diff(r.output_tokens_per_s) >= -1e-9)


def test_clients_beyond_the_batch_limit_queue_for_a_slot(engine: Engine) -> None:
    """Past max_batch_size the engine's rate is fixed, so each extra client adds 1 / rate to the TTFT
    (Little's law on the loop) and nothing to the TPOT."""
    r = closed_loop(engine, concurrency=np.array([64, 128, 192]), isl=512, osl=256)
    assert np.ptp(r.tpot_s) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(np.diff(r.ttft_s), 64 / r.requests_per_s[0], rtol=1e-9)
    assert np.all(r.running == 64)


def test_the_prompt_budget_bounds_the_request_rate(engine: Engine) -> None:
    """Long prompts and short outputs: the prompt budget (8192 tokens less the decodes) caps the rate."""
    r = closed_loop(engine, concurrency=64, isl=16000, osl=4)
    assert bool(r.prefill_bound)
    budget_rate = (8192 - float(r.decodes_per_iteration)) / 16000 / float(r.iteration_s)
    assert float(r.requests_per_s) == pytest.approx(budget_rate, rel=1e-9)


def test_bad_input_is_one_clear_error(engine: Engine) -> None:
    with pytest.raises(CostmodelError, match="concurrency"):
        closed_loop(engine, concurrency=0, isl=10, osl=10)
    with pytest.raises(CostmodelError, match="osl"):
        closed_loop(engine, concurrency=1, isl=10, osl=1)
    with pytest.raises(CostmodelError, match="step_overhead_s"):
        LoopParams(step_overhead_s=float("nan"))
    with pytest.raises(CostmodelError, match="burst_fraction"):
        LoopParams(burst_fraction=1.5)


def test_overheads_add_where_they_are_paid(engine: Engine) -> None:
    """A per-request overhead adds to the TTFT only; a per-iteration overhead adds to every iteration, so
    to the TPOT once and to the TTFT once per iteration a first token waits for."""
    parts = loop_parts(engine, concurrency=np.array([1, 16]), isl=1000, osl=200)
    base = parts.result(LoopParams())
    request = parts.result(LoopParams(request_overhead_s=0.02))
    np.testing.assert_allclose(request.ttft_s - base.ttft_s, 0.02, rtol=1e-12)
    np.testing.assert_allclose(request.tpot_s, base.tpot_s, rtol=1e-12)
    step = parts.result(LoopParams(step_overhead_s=0.001))
    np.testing.assert_allclose(step.tpot_s - base.tpot_s, 0.001, rtol=1e-9)
    np.testing.assert_allclose(step.ttft_s - base.ttft_s, 0.001 * (0.5 + parts.chunks), rtol=1e-9)


def _hand_parts(concurrency: float, running: float) -> LoopParts:
    """A closed loop written down by hand: prompts of exactly one budget (isl = P = 8192 tokens, one chunk
    each), an iteration of a wave taking 0.2 s, one carrying a chunk 0.1 s, a decode-only one 0.01 s, a
    decode-only one of all the running sequences 0.02 s."""
    one = np.array(1.0)
    return LoopParts(
        concurrency=concurrency * one,
        isl=8192 * one,
        osl=101 * one,
        running=running * one,
        decodes=running * one,
        requests_per_iteration=running / 101.5 * one,
        chunks=one,
        prompt_budget=8192 * one,
        carrying_fraction=0.0 * one,
        decode_only_s=0.01 * one,
        with_prompt_s=0.1 * one,
        wave_s=0.2 * one,
        prefill_bound=np.array(False),
        wave_decode_s=0.02 * one,
    )


def test_a_wave_of_four_prompts_is_prefilled_first_come_first_served() -> None:
    """Four clients start together on an idle engine; each prompt fills one whole iteration of 0.2 s, so
    their first tokens come after 1, 2, 3 and 4 iterations: a mean of 2.5 x 0.2 s, plus the request
    overhead. A benchmark with 8 requests per client and no waves after the first has burst_fraction 1/8
    and averages the wave with the steady state (half a decode iteration, then one 0.1 s chunk)."""
    parts = _hand_parts(concurrency=4, running=4)
    params = LoopParams(request_overhead_s=0.05)
    assert float(parts.wave_ttft_s(params)) == pytest.approx(0.05 + 2.5 * 0.2, rel=1e-12)
    steady = 0.05 + 0.5 * 0.01 + 0.1
    assert float(parts.steady_ttft_s(params)) == pytest.approx(steady, rel=1e-12)
    mixed = parts.result(LoopParams(request_overhead_s=0.05, burst_fraction=1 / 8)).ttft_s
    assert float(mixed) == pytest.approx(7 / 8 * steady + 1 / 8 * (0.05 + 0.5), rel=1e-12)


def test_clients_past_the_running_limit_wait_for_a_slot_in_a_wave_too() -> None:
    """Six clients, four running: the four admitted prompts are the wave of 1 to 4 iterations; the two
    others find no slot and pay the steady state's TTFT, which queues them for (6 - 4) / rate = 50.75
    decode iterations (a cycle is 101.5 iterations for four running)."""
    parts = _hand_parts(concurrency=6, running=4)
    params = LoopParams()
    steady = float(parts.steady_ttft_s(params))
    assert steady == pytest.approx((0.5 + 50.75) * 0.01 + 0.1, rel=1e-12)
    assert float(parts.wave_ttft_s(params)) == pytest.approx((4 * 2.5 * 0.2 + 2 * steady) / 6, rel=1e-12)


def _packed_first_tokens(prompts: int, isl: int, budget: int) -> list[int]:
    """An engine's chunked prefill, token by token: each iteration takes up to ``budget`` prompt tokens
    from the prompts in order; a prompt's first token comes with the iteration that took its last token.
    The iteration of each prompt's first token (an oracle for wave_prefill_iterations)."""
    left, done, iteration = [isl] * prompts, [0] * prompts, 0
    while not all(done):
        iteration, room = iteration + 1, budget
        for k in range(prompts):
            if left[k] and room:
                take = min(left[k], room)
                left[k], room = left[k] - take, room - take
                if not left[k]:
                    done[k] = iteration
    return done


def test_a_wave_is_exact_packing(engine: Engine) -> None:
    """Prompts packed first come first served at P prompt tokens per iteration: the wave's mean TTFT in
    wave iterations is the mean iteration of a first token in a token-by-token packing (an independent
    oracle), whatever the prompt's length against the budget."""
    clients = np.array([1, 3, 8, 17, 40])
    for isl in (100, 3000, 8000, 20000):
        parts = loop_parts(engine, concurrency=clients, isl=isl, osl=64)
        assert np.all(parts.running == clients)  # every client admitted: the wave is all of them
        wave = parts.wave_ttft_s(LoopParams()) / parts.wave_s
        for n, model, budget in zip(clients, wave, parts.prompt_budget, strict=True):
            oracle = np.mean(_packed_first_tokens(int(n), isl, int(budget)))
            assert float(model) == pytest.approx(oracle, rel=1e-12)


def test_wave_prefill_iterations_by_hand() -> None:
    """Eight prompts of 1024 tokens fill one 8192-token iteration: every first token after exactly one
    (the continuous form said 1.44); sixteen take two, 1.5 on average; prompts of two whole budgets agree
    with the continuous form, (R - 1) isl / (2 P) + ceil(isl / P) = R + 1; three clients over two ranks
    of one-budget prompts wait 1 and 1, 2 on the fuller rank: 4 / 3; half a prompt per rank is one
    prompt on half the ranks, one iteration."""
    assert float(wave_prefill_iterations(8, 1024, 8192)) == 1.0
    assert float(wave_prefill_iterations(16, 1024, 8192)) == 1.5
    for prompts in (1, 2, 5, 9):
        assert float(wave_prefill_iterations(prompts, 16384, 8192)) == prompts + 1
    np.testing.assert_allclose(wave_prefill_iterations([1.5, 0.5], 8192, 8192), [4 / 3, 1.0], rtol=1e-15)


def _split_first_tokens(clients: int, ranks: int, isl: int, budget: int) -> list[int]:
    """Every client's first-token iteration in a wave of ``clients`` prompts spread over ``ranks`` as
    evenly as they go (ranks differ by one prompt at most), each rank packing its own token by token."""
    fuller = clients % ranks
    return [
        t for r in range(ranks) for t in _packed_first_tokens(clients // ranks + (r < fuller), isl, budget)
    ]


def test_a_wave_split_unevenly_over_ranks_is_exact_packing() -> None:
    """C clients over k ranks (R = C / k per rank, fractional where k does not divide C): the wave's mean
    first-token iteration over all the clients is the token-by-token packing on each rank (an independent
    oracle), and the clients' mean of their own rank's prompts is (1 / C) sum of n_r^2."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        ranks = int(rng.integers(1, 9))
        clients = int(rng.integers(ranks, 6 * ranks + 1))
        isl, budget = int(rng.integers(1, 5000)), int(rng.integers(1, 5000))
        oracle = np.mean(_split_first_tokens(clients, ranks, isl, budget))
        R = clients / ranks
        assert float(wave_prefill_iterations(R, isl, budget)) == pytest.approx(oracle, rel=1e-12)
        fuller = clients % ranks
        sizes = [clients // ranks + (r < fuller) for r in range(ranks)]
        assert float(wave_prompts_per_rank(R)) == pytest.approx(
            sum(n * n for n in sizes) / clients, rel=1e-12
        )


def test_wave_prefill_iterations_is_the_floor_sum_on_random_cases() -> None:
    """Whole and fractional prompts per rank, prompts and budgets (whole tokens and quarter tokens) across
    five orders of magnitude, many rows at once: the mix of floor(R) and ceil(R) prompts of the brute-force
    sum of ceil(i isl / P) in exact rationals."""
    from fractions import Fraction

    rng = np.random.default_rng(11)
    R = np.concatenate([rng.integers(1, 3000, 150).astype(float), rng.uniform(0.05, 3000.0, 150)])
    isl = np.round(10.0 ** rng.uniform(0, 5, R.size))
    budget = np.round(10.0 ** rng.uniform(0, 5, R.size) * 4.0) / 4.0 + 0.25
    model = wave_prefill_iterations(R, isl, budget)

    def brute(n: int, a: float, p: float) -> Fraction:
        x = Fraction(a) / Fraction(p)
        return Fraction(sum(-((-i * x.numerator) // x.denominator) for i in range(1, n + 1)))

    for r, a, p, got in zip(R, isl, budget, model, strict=True):
        low, f = int(np.floor(r)), r - np.floor(r)
        oracle = float(((1 - f) * brute(low, a, p) + f * brute(low + 1, a, p)) / r)
        assert float(got) == pytest.approx(oracle, rel=1e-12)


def test_wave_prefill_iterations_is_continuous_and_at_least_one() -> None:
    """No step where R crosses a whole number (1.999999 against 2) and never less as R grows; never less
    than one iteration however large the budget against the prompt (an absolute tolerance once sent
    P > 1e9 isl to 0), and a bad argument is named."""
    for isl, budget in ((8192, 8192), (3000, 8000), (20000, 8192)):
        below, at = wave_prefill_iterations([1.999999, 2.0], isl, budget)
        assert below == pytest.approx(at, rel=1e-5)
        assert np.all(np.diff(wave_prefill_iterations(np.linspace(0.1, 40, 400), isl, budget)) >= -1e-12)
    np.testing.assert_array_equal(
        wave_prefill_iterations([0.5, 1, 7, 1000.5], 1, [1e12, 1e15, 1e300, 3e9]), 1.0
    )
    with pytest.raises(CostmodelError, match="budget"):
        wave_prefill_iterations(4, 100, 0.0)


def test_a_wave_ends_with_its_prompt_work(engine: Engine) -> None:
    """A wave's requests finish together: the mean TTFT plus the osl - 1 TPOTs of a wave is the wave's
    prompt work, R isl / P wave iterations (the last, partial one by its share), then osl - 1 decode-only
    iterations of all R, whatever the packing, once the wave spans more than one iteration."""
    clients, osl = np.array([8, 17, 40]), 64
    for isl in (3000, 8000, 20000):
        parts = loop_parts(engine, concurrency=clients, isl=isl, osl=osl)
        params = LoopParams()
        whole = parts.wave_ttft_s(params) + (osl - 1) * parts.wave_tpot_s(params)
        work = parts.running * isl / parts.prompt_budget
        assert np.all(work >= parts.wave_iterations)
        np.testing.assert_allclose(whole, work * parts.wave_s + (osl - 1) * parts.wave_decode_s, rtol=1e-12)


def test_a_wave_split_over_ranks_ends_with_each_ranks_prompt_work() -> None:
    """Three clients over two ranks, one-budget prompts: one rank's wave is one iteration, the other's
    two; its clients' first tokens after 1 | 1, 2 iterations and their decodes start when their own rank's
    wave ends, after 1 | 2, 2, so TTFT + (osl - 1) TPOT is (1 + 2 + 2) / 3 wave iterations then osl - 1
    decode-only ones."""
    parts = dataclasses.replace(
        _hand_parts(concurrency=3, running=1.5),
        ranks=2.0,
        wave_iterations=wave_prefill_iterations(1.5, 8192, 8192),
    )
    params = LoopParams()
    assert float(parts.wave_ttft_s(params)) == pytest.approx(4 / 3 * 0.2, rel=1e-12)
    whole = parts.wave_ttft_s(params) + 100 * parts.wave_tpot_s(params)
    assert float(whole) == pytest.approx(5 / 3 * 0.2 + 100 * 0.02, rel=1e-12)


def test_ttft_grows_with_clients_and_prompt_and_is_at_least_one_prefill(engine: Engine) -> None:
    """With waves and overheads on: never faster with more clients or a longer prompt (past the batch
    limit of 64 too), and never faster than the prompt's prefill alone on an idle engine."""
    params = LoopParams(step_overhead_s=0.001, request_overhead_s=0.05, burst_fraction=0.15)
    clients = np.array([1, 2, 4, 8, 16, 32, 64, 96, 128, 256])
    isl = np.array([128, 1024, 4096, 16000])[:, None]
    r = closed_loop(engine, concurrency=clients, isl=isl, osl=256, params=params)
    assert np.all(np.diff(r.ttft_s, axis=1) >= -1e-12)
    assert np.all(np.diff(r.ttft_s, axis=0) >= -1e-12)
    alone = engine.step_time(prefill_tokens=isl)
    assert np.all(r.ttft_s >= alone)


def test_an_engine_that_reserves_whole_requests_runs_fewer_at_once() -> None:
    """An engine that holds each admitted request's whole isl + osl (TensorRT-LLM's GUARANTEED_NO_EVICT)
    fits as many sequences as its pool holds of that footprint, not of the mean isl + osl / 2; the clients
    it cannot run queue, so the TTFT is never smaller. Reserving the mean is the default."""
    small = Engine.build("llama-3-8b", "l4", max_batch_size=512, max_batched_tokens=8192)
    isl, osl, clients = 2000, 2000, 256
    pool = small.kv_capacity_tokens()
    default = loop_parts(small, concurrency=clients, isl=isl, osl=osl)
    mean = loop_parts(small, concurrency=clients, isl=isl, osl=osl, reserved_tokens=isl + osl / 2)
    whole = loop_parts(small, concurrency=clients, isl=isl, osl=osl, reserved_tokens=isl + osl)
    assert float(default.running) == float(mean.running)
    # paged blocks of 16 tokens: the pool's whole blocks over each sequence's blocks
    assert float(whole.running) == (pool // 16) // ((isl + osl) // 16)
    assert float(whole.running) < float(default.running) < clients
    params = LoopParams(burst_fraction=0.2)
    assert float(whole.result(params).ttft_s) > float(default.result(params).ttft_s)
    with pytest.raises(CostmodelError, match="reserved_tokens"):
        loop_parts(small, concurrency=4, isl=isl, osl=osl, reserved_tokens=0)


def test_a_host_cost_per_layer_is_paid_by_iterations_that_carry_prompts(engine: Engine) -> None:
    """``prefill_layer_overhead_s`` adds c x layers to every iteration with prompt tokens and nothing to a
    decode-only one: the TPOT grows by the share of iterations that carry a chunk times it, the steady
    TTFT by it for each of the prompt's chunks and for the half iteration and queue at the mean iteration;
    a wave pays it on every wave iteration."""
    parts = loop_parts(engine, concurrency=np.array([1, 16, 200]), isl=3000, osl=300)
    np.testing.assert_array_equal(parts.layers, 32.0)  # no captured graphs: every such iteration is eager
    assert engine.model.n_layers == 32
    c = 1e-4
    base, more = LoopParams(), LoopParams(prefill_layer_overhead_s=c)
    assert_paid_where_prompts_are(parts, base, more, extra=c * 32)
    assert np.all(parts.wave_ttft_s(more) > parts.wave_ttft_s(base))
    with pytest.raises(CostmodelError, match="prefill_layer_overhead_s"):
        LoopParams(prefill_layer_overhead_s=-1e-3)


def test_iterations_within_the_captured_graphs_pay_no_host_cost_per_layer(engine: Engine) -> None:
    """vLLM replays mixed prefill-decode batches of up to ``graph_tokens`` tokens as CUDA graphs and runs a
    larger one eagerly: a 1000-token prompt's iterations (its chunk plus the decodes) fit a 2048-token capture
    and pay no ``prefill_layer_overhead_s``, a 3000-token prompt's do not fit and pay it on every layer; a
    wave of 16 such prompts (16000 tokens) is eager either way. A larger capture never slows anything."""
    c = LoopParams(prefill_layer_overhead_s=1e-4)
    clients = np.array([1, 16])
    for isl, fits in ((1000, True), (3000, False)):
        graphed = loop_parts(engine, concurrency=clients, isl=isl, osl=300, graph_tokens=2048)
        eager = loop_parts(engine, concurrency=clients, isl=isl, osl=300)
        np.testing.assert_array_equal(graphed.layers, 0.0 if fits else 32.0)
        np.testing.assert_array_equal(graphed.wave_layers, [0.0 if fits else 32.0, 32.0])
        assert np.all(graphed.result(c).ttft_s <= eager.result(c).ttft_s)
        assert np.all(graphed.result(c).tpot_s <= eager.result(c).tpot_s)
        if fits:  # no host cost per layer in the steady state: the parameter leaves its iteration alone
            np.testing.assert_allclose(graphed.iteration_s(c), graphed.iteration_s(LoopParams()), rtol=1e-12)


def test_a_wave_finishes_together() -> None:
    """Four clients start together; their prompts take one 0.2 s wave iteration each, then the four decode
    their 100 further tokens together in decode-only iterations of 0.02 s (no prompt between them). Each
    request ends when the wave does, 4 x 0.2 + 100 x 0.02 = 2.8 s after the start, so the wave's mean TTFT
    plus 100 mean TPOTs is 2.8 s: the prompts finishing early wait for the rest of the wave (1.5
    iterations on average) before their next token."""
    parts = _hand_parts(concurrency=4, running=4)
    params = LoopParams(burst_fraction=1.0)
    r = parts.result(params)
    assert float(r.ttft_s) + 100 * float(r.tpot_s) == pytest.approx(4 * 0.2 + 100 * 0.02, rel=1e-12)
    assert float(r.tpot_s) == pytest.approx(0.02 + 1.5 * 0.2 / 100, rel=1e-12)
    mixed = parts.result(LoopParams(burst_fraction=1 / 8)).tpot_s  # the steady state decodes at 0.01 s
    assert float(mixed) == pytest.approx(7 / 8 * 0.01 + 1 / 8 * float(r.tpot_s), rel=1e-12)


def test_verifying_one_token_is_plain_decoding(engine: Engine) -> None:
    plain = engine.step_time(decode_batch=12, decode_context=900, prefill_tokens=300, prefill_past=100)
    one = engine.parts.step_time(
        decode_batch=12, decode_context=900, prefill_tokens=300, prefill_past=100, decode_new_tokens=1
    )
    assert float(one) == float(plain)
    more = engine.parts.step_time(decode_batch=12, decode_context=900, decode_new_tokens=4)
    assert float(more) >= float(engine.step_time(decode_batch=12, decode_context=900))


def test_speculation_pays_only_when_drafts_are_kept(engine: Engine) -> None:
    """Every draft kept and drafting free: k + 1 tokens per verification, faster than plain decoding while
    the pass is memory bound, but never more than k + 1 times. No draft kept: one token per (dearer)
    verification, never faster than plain decoding."""
    clients = np.array([1, 8, 32])
    plain = closed_loop(engine, concurrency=clients, isl=500, osl=400)
    kept = closed_loop(engine, concurrency=clients, isl=500, osl=400, speculation=Speculation(3, 1.0, 0.0))
    assert np.all(kept.tpot_s < plain.tpot_s)
    assert np.all(4 * kept.tpot_s >= plain.tpot_s)
    lost = closed_loop(engine, concurrency=clients, isl=500, osl=400, speculation=Speculation(3, 0.0, 0.05))
    assert np.all(lost.tpot_s >= plain.tpot_s)
    assert Speculation(3, 0.5, 0.0).tokens_per_iteration == pytest.approx(1 + 0.5 + 0.25 + 0.125)
    for bad in ((0, 0.5, 0.1), (3, 1.5, 0.1), (3, 0.5, -1.0)):
        with pytest.raises(CostmodelError):
            Speculation(*bad)  # type: ignore[arg-type]


def test_later_draft_positions_accept_at_their_own_rate() -> None:
    """With the first draft kept at a and each later one, given the ones before, at b, a verification
    yields 1 + a + a b + a b^2 tokens for three drafts (the survival sum, written out); b = a is the
    i.i.d. chain, b = 0 leaves the first draft alone, and a rate outside [0, 1] is refused by name."""
    a, b = 0.8, 0.5
    assert Speculation(3, a, 0.0, later_acceptance_rate=b).tokens_per_iteration == pytest.approx(
        1 + a + a * b + a * b * b
    )
    assert Speculation(3, a, 0.0, later_acceptance_rate=a).tokens_per_iteration == pytest.approx(
        Speculation(3, a, 0.0).tokens_per_iteration
    )
    assert Speculation(3, a, 0.0, later_acceptance_rate=0.0).tokens_per_iteration == pytest.approx(1 + a)
    assert Speculation(1, a, 0.0, later_acceptance_rate=0.1).tokens_per_iteration == pytest.approx(1 + a)
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(CostmodelError, match="later_acceptance_rate"):
            Speculation(3, a, 0.0, later_acceptance_rate=bad)


def test_the_verification_grows_with_drafts_times_batch_and_turns_compute_bound(engine: Engine) -> None:
    """A decode-only speculative iteration verifies B (k + 1) tokens: its time never falls with k or B, and
    at a large batch (compute bound) verifying 4 tokens a sequence costs well over one plain step, while
    at batch 1 (memory bound) it costs about one."""
    batches = np.array([1.0, 8.0, 64.0, 256.0])
    times = np.array(
        [[engine.parts.step_time(decode_batch=b, decode_context=1000, decode_new_tokens=k + 1) for b in batches]
         for k in range(4)]
    )  # fmt: skip
    assert np.all(np.diff(times, axis=0) >= 0)
    assert np.all(np.diff(times, axis=1) >= 0)
    plain = times[0]
    assert times[3, 0] < 1.3 * plain[0]
    assert times[3, -1] > 1.5 * plain[-1]


def test_a_draft_step_with_the_output_head_costs_its_layer_share_plus_the_head(engine: Engine) -> None:
    """``draft_head``: each of the k draft steps is c (plain step - head) + head; with c = 0 drafting costs
    k heads, so at acceptance 0 the TPOT is the verification's plus k heads (per token, E = 1)."""
    parts = loop_parts(engine, concurrency=[8], isl=500, osl=400, speculation=Speculation(3, 0.0, 0.0))
    headed = loop_parts(
        engine, concurrency=[8], isl=500, osl=400, speculation=Speculation(3, 0.0, 0.0, draft_head=True)
    )
    head = engine.parts.output_head_s(parts.decodes * parts.ranks)
    assert np.all(head > 0)
    np.testing.assert_allclose(headed.decode_only_s - parts.decode_only_s, 3 * head, rtol=1e-9)
    c = 1 / engine.model.n_layers
    scaled = loop_parts(engine, concurrency=[8], isl=500, osl=400, speculation=Speculation(3, 0.0, c))
    both = loop_parts(
        engine, concurrency=[8], isl=500, osl=400, speculation=Speculation(3, 0.0, c, draft_head=True)
    )
    plain = engine.parts.step_time(decode_batch=parts.decodes * parts.ranks, decode_context=700)
    np.testing.assert_allclose(
        both.decode_only_s - parts.decode_only_s, 3 * (c * (plain - head) + head), rtol=1e-9
    )
    assert np.all(both.decode_only_s > scaled.decode_only_s)  # the head is more than 1 / L of a step


def test_tpot_falls_with_acceptance_and_no_acceptance_is_slower_than_plain(engine: Engine) -> None:
    """With the same drafts and draft cost, a higher acceptance rate gains more tokens per iteration, so
    the TPOT falls monotonically; at acceptance 0 every iteration yields one token for a dearer pass and
    k draft steps, slower than plain decoding at every concurrency."""
    clients = np.array([1.0, 16.0, 128.0])
    plain = closed_loop(engine, concurrency=clients, isl=1000, osl=1000).tpot_s
    tpot = np.array(
        [
            closed_loop(
                engine, concurrency=clients, isl=1000, osl=1000,
                speculation=Speculation(3, alpha, 1 / engine.model.n_layers, draft_head=True),
            ).tpot_s
            for alpha in (0.0, 0.3, 0.6, 0.9, 1.0)
        ]
    )  # fmt: skip
    assert np.all(np.diff(tpot, axis=0) < 0)
    assert np.all(tpot[0] > plain)


def test_a_scheduler_that_reads_its_queue_every_i_iterations_adds_half_of_them_to_the_ttft(
    engine: Engine,
) -> None:
    """One client and a scheduler reading new requests every I decode iterations (SGLang's
    ``--scheduler-recv-interval``): the prompt waits I / 2 iterations instead of 1 / 2, so the TTFT grows
    by (I - 1) / 2 mean iterations and the cycle by as many, at the same iteration time (Little's law on
    one client: rate = 1 / (osl - 1 + I / 2 + chunks) iterations)."""
    every = loop_parts(engine, concurrency=1, isl=1000, osl=500)
    tenth = loop_parts(engine, concurrency=1, isl=1000, osl=500, poll_iterations=10)
    params = LoopParams(step_overhead_s=0.002, request_overhead_s=0.05)
    a, b = every.result(params), tenth.result(params)
    assert float(b.ttft_s) - float(a.ttft_s) == pytest.approx(4.5 * float(b.iteration_s), rel=1e-3)
    iterations = 499 + 5.0 + float(tenth.chunks)
    assert float(tenth.requests_per_iteration) == pytest.approx(1 / iterations, rel=1e-9)
    # the same with every client waiting its turn: never faster, whatever the load
    clients = np.array([1, 4, 16, 64, 256])
    ttft = [
        closed_loop(engine, concurrency=clients, isl=1000, osl=500, poll_iterations=i).ttft_s
        for i in (1, 10, 30)
    ]
    assert np.all(np.diff(np.stack(ttft), axis=0) >= -1e-12)
    with pytest.raises(CostmodelError, match="poll_iterations"):
        closed_loop(engine, concurrency=1, isl=10, osl=10, poll_iterations=0.5)


def test_result_is_its_parts_each_evaluated_alone(engine: Engine) -> None:
    """result() evaluates the steady TTFT once and hands it to the wave's: the same numbers, bit for bit,
    as the public methods each called on its own."""
    parts = loop_parts(
        engine, concurrency=np.array([1.0, 8.0, 64.0, 300.0]), isl=[[128.0], [3000.0]], osl=200
    )
    for params in (LoopParams(), LoopParams(1e-3, 4e-3, 0.4, 2e-5)):
        out = parts.result(params)
        share = params.burst_fraction
        ttft = (1.0 - share) * parts.steady_ttft_s(params) + share * parts.wave_ttft_s(params)
        np.testing.assert_array_equal(out.ttft_s, ttft)
        np.testing.assert_array_equal(out.iteration_s, parts.iteration_s(params))


def test_an_overlapped_host_hides_behind_longer_kernels(engine: Engine) -> None:
    """With overlapped scheduling an iteration lasts max(kernels, overlapped host) plus the host's serial
    part: a host cost below every iteration's kernels changes nothing, and one above them sets the pace
    (the CPU-bound limit, one decode-only iteration every overlapped_host_s + step_overhead_s)."""
    overlapped = loop_parts(engine, concurrency=np.array([1, 16]), isl=1000, osl=200, overlap_host=True)
    serial = 2e-4
    kernels_min = float(np.min(overlapped.decode_only_s))
    hidden = overlapped.result(LoopParams(step_overhead_s=serial, overlapped_host_s=0.5 * kernels_min))
    bare = overlapped.result(LoopParams(step_overhead_s=serial))
    np.testing.assert_allclose(hidden.tpot_s, bare.tpot_s, rtol=1e-12)
    np.testing.assert_allclose(hidden.ttft_s, bare.ttft_s, rtol=1e-12)
    slow_host = 10.0 * float(np.max(overlapped.wave_s))  # longer than any iteration's kernels
    bound = overlapped.result(LoopParams(step_overhead_s=serial, overlapped_host_s=slow_host))
    np.testing.assert_allclose(bound.iteration_s, slow_host + serial, rtol=1e-12)


def test_overlapping_the_host_never_slows_an_iteration_and_grows_with_the_host_cost(engine: Engine) -> None:
    """max(k, h) <= k + h: the overlapped loop is never slower than the serial one, both are monotone in
    the host's cost, and without overlap only the sum of the two host costs counts."""
    kwargs = {"concurrency": np.array([1, 8, 64, 256]), "isl": 2000, "osl": 300}
    overlapped = loop_parts(engine, **kwargs, overlap_host=True)
    serial = loop_parts(engine, **kwargs)
    previous = None
    for host in (0.0, 1e-3, 5e-3, 2e-2, 5e-2):
        params = LoopParams(step_overhead_s=3e-4, overlapped_host_s=host, burst_fraction=0.3)
        fast, slow = overlapped.result(params), serial.result(params)
        assert np.all(fast.tpot_s <= slow.tpot_s * (1 + 1e-12))
        assert np.all(fast.ttft_s <= slow.ttft_s * (1 + 1e-12))
        if previous is not None:
            assert np.all(fast.tpot_s >= previous.tpot_s - 1e-15)
            assert np.all(fast.ttft_s >= previous.ttft_s - 1e-15)
        previous = fast
        moved = serial.result(LoopParams(step_overhead_s=3e-4 + host, burst_fraction=0.3))
        np.testing.assert_allclose(slow.tpot_s, moved.tpot_s, rtol=1e-12)
        np.testing.assert_allclose(slow.ttft_s, moved.ttft_s, rtol=1e-12)
    with pytest.raises(CostmodelError, match="overlapped_host_s"):
        LoopParams(overlapped_host_s=-1e-3)


def test_an_overlapped_wave_by_hand() -> None:
    """The hand-written loop of _hand_parts with overlap: each iteration is max(kernels, h) + s. With h =
    0.05 s (above the 0.01 s and 0.02 s decode iterations, below the 0.1 s and 0.2 s prompt ones) and
    s = 0.001 s, the wave's decodes take 0.051 s each and its prompt iterations 0.201 s."""
    parts = dataclasses.replace(_hand_parts(concurrency=4, running=4), overlap_host=True)
    params = LoopParams(step_overhead_s=0.001, overlapped_host_s=0.05)
    np.testing.assert_allclose(parts.step_s(np.array([0.01, 0.02, 0.1, 0.2]), params),
                               [0.051, 0.051, 0.101, 0.201], rtol=1e-12)  # fmt: skip
    # four prompts of one budget each, first come first served: 1, 2, 3, 4 wave iterations, 2.5 on average
    np.testing.assert_allclose(parts.wave_ttft_s(params), 2.5 * 0.201, rtol=1e-12)
    # (R + 1) isl / (2 P) - 1 = 1.5 wave iterations of wait spread over 100 decodes of 0.051 s
    np.testing.assert_allclose(parts.wave_tpot_s(params), 0.051 + 1.5 * 0.201 / 100, rtol=1e-12)


def test_an_iteration_of_several_passes_pays_the_host_once_per_pass_counted_by_hand() -> None:
    """SGLang's EAGLE worker (overlap off) prepares its draft, verification and draft extend one after
    another: with host_passes = 3, h = 0.004 s and s = 0.001 s, each iteration of the hand-written loop is
    kernels + 3 h + s (0.01 -> 0.023 s, 0.1 -> 0.113 s, 0.2 -> 0.213 s), and the wave's TTFT and TPOT follow
    from those by hand; one pass is the plain kernels + h + s. With the host overlapped (SGLang's spec-v2
    worker) the passes are prepared beside the previous iteration's kernels: max(kernels, 3 h) + s, so the
    0.01 s iteration is host-bound at 0.013 s and the longer ones are kernels + s (closed_loop.host_bound_s,
    the disaggregated decode iteration's rule too)."""
    params = LoopParams(step_overhead_s=0.001, overlapped_host_s=0.004)
    one = _hand_parts(concurrency=4, running=4)
    three = dataclasses.replace(one, host_passes=3.0)
    kernels = np.array([0.01, 0.02, 0.1, 0.2])
    np.testing.assert_allclose(one.step_s(kernels, params), kernels + 0.005, rtol=1e-12)
    np.testing.assert_allclose(three.step_s(kernels, params), kernels + 0.013, rtol=1e-12)
    # four prompts of one budget each: 2.5 wave iterations of 0.213 s on average
    np.testing.assert_allclose(three.wave_ttft_s(params), 2.5 * 0.213, rtol=1e-12)
    # decodes of all four at 0.033 s, with 1.5 wave iterations of wait spread over 100 decodes
    np.testing.assert_allclose(three.wave_tpot_s(params), 0.033 + 1.5 * 0.213 / 100, rtol=1e-12)
    overlapped = dataclasses.replace(one, overlap_host=True)
    np.testing.assert_allclose(overlapped.step_s(kernels, params), kernels + 0.001, rtol=1e-12)
    overlapped = dataclasses.replace(three, overlap_host=True)
    np.testing.assert_allclose(overlapped.step_s(kernels, params), [0.013, 0.021, 0.101, 0.201], rtol=1e-12)


def test_host_passes_is_a_whole_pass_or_more(engine: Engine) -> None:
    """loop_parts carries the count to every iteration (a verification of 3 passes pays 2 h more than a
    plain one at any load, per iteration) and refuses a count below one pass."""
    kwargs = {"concurrency": np.array([1, 16, 128]), "isl": 1000, "osl": 200}
    plain, passes = loop_parts(engine, **kwargs), loop_parts(engine, **kwargs, host_passes=3)
    assert plain.host_passes == 1.0
    assert passes.host_passes == 3.0
    host = 2e-3
    a = plain.result(LoopParams(overlapped_host_s=host)).iteration_s
    b = passes.result(LoopParams(overlapped_host_s=host)).iteration_s
    np.testing.assert_allclose(b - a, 2 * host, rtol=1e-9)
    for bad in (0.5, float("nan")):
        with pytest.raises(CostmodelError, match="host_passes"):
            loop_parts(engine, **kwargs, host_passes=bad)


def test_a_train_of_clients_waits_through_its_neighbours_prompts_counted_by_hand() -> None:
    """Fixed lengths keep C clients in a train, one prompt per iteration: besides its own 0.1 s prompt
    iteration, the i-th client's first token waits through two more, of which min(i - 1, 2) carry the
    clients ahead of it (0.1 s) and the rest decode only (0.01 s, the mean here: no iteration of the
    hand-written steady state carries a prompt). Counted client by client, against the model's mean."""
    params = LoopParams(request_overhead_s=0.05, first_token_lag_iterations=1.7)
    for clients in (1, 2, 3, 4, 9):
        parts = dataclasses.replace(_hand_parts(concurrency=clients, running=clients), train=True)
        by_hand = [
            0.05 + min(i - 1, 2) * 0.1 + (2 - min(i - 1, 2)) * 0.01 + 0.1 for i in range(1, clients + 1)
        ]
        assert float(parts.steady_ttft_s(params)) == pytest.approx(np.mean(by_hand), rel=1e-12)
    # staggered arrivals (the default) keep half an iteration of wait and the lag at the mean iteration
    parts = _hand_parts(concurrency=4, running=4)
    assert float(parts.steady_ttft_s(params)) == pytest.approx(0.05 + (0.5 + 1.7) * 0.01 + 0.1, rel=1e-12)


def test_a_cost_per_layer_of_every_step_is_a_step_cost_of_the_models_layers(engine: Engine) -> None:
    """``layer_step_overhead_s`` x the model's layers is paid by every iteration, decode-only or with a
    prompt: in a serial loop the same figures as that much more ``step_overhead_s``; with an overlapped
    host it is GPU work beside the kernels, so a host shorter than kernels + layers stays hidden."""
    kwargs = {"concurrency": np.array([1, 8, 64]), "isl": 1000, "osl": 300}
    layers = float(engine.model.n_layers)
    serial = loop_parts(engine, **kwargs)
    assert serial.step_layers == layers
    per_layer = 1e-5
    paid = serial.result(
        LoopParams(step_overhead_s=2e-4, layer_step_overhead_s=per_layer, burst_fraction=0.2)
    )
    moved = serial.result(LoopParams(step_overhead_s=2e-4 + layers * per_layer, burst_fraction=0.2))
    np.testing.assert_allclose(paid.tpot_s, moved.tpot_s, rtol=1e-12)
    np.testing.assert_allclose(paid.ttft_s, moved.ttft_s, rtol=1e-12)
    overlapped = loop_parts(engine, **kwargs, overlap_host=True)
    host = float(np.min(overlapped.decode_only_s))  # no longer than any iteration's kernels
    with_host = overlapped.result(
        LoopParams(step_overhead_s=2e-4, layer_step_overhead_s=per_layer, overlapped_host_s=host)
    )
    np.testing.assert_allclose(
        with_host.iteration_s,
        overlapped.result(LoopParams(step_overhead_s=2e-4 + layers * per_layer)).iteration_s,
        rtol=1e-12,
    )
    with pytest.raises(CostmodelError, match="layer_step_overhead_s"):
        LoopParams(layer_step_overhead_s=-1e-6)
