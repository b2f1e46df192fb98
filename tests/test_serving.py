"""Serving building blocks: length distributions, traces, engine iteration time, KV concurrency.

Oracles: direct sums written out here (E[max] of geometric and uniform lengths, the exponential limit
H_B), Monte-Carlo draws, the roofline pass :func:`costmodel.estimate.step_time_s` in the limits where
the mixed iteration must reduce to it, and KV capacities from the model's published shapes
(Llama-3-8B: 8,030,261,248 parameters, 32 layers, 8 KV heads of 128: 131,072 KV bytes per token in bf16).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from costmodel import kernel_times
from costmodel.errors import CostmodelError
from costmodel.estimate import step_time_s
from costmodel.kernels import context_attention
from costmodel.memory import inference_activation_bytes
from costmodel.registry import load_hardware, load_model
from costmodel.serving import (
    Engine,
    Lengths,
    StepTable,
    Traffic,
    _Parts,
    load_trace,
    max_concurrency,
    prompt_pieces,
    static_batching_gain,
    step_time,
)
from costmodel.specs import Deployment, Workload
from tests.conftest import DATA

TRACES = DATA / "traces"
MODEL, HW = "llama-3-8b", "h100-sxm"


# ----------------------------------------------------------------------------------------------------
# Lengths
# ----------------------------------------------------------------------------------------------------


def test_geometric_moments() -> None:
    g = Lengths.geometric(100)
    # on {1, 2, ...} with p = 1/m: E = m, Var = (1 - p) / p^2; the default cap holds < 1e-12 of mass
    assert g.mean == pytest.approx(100, rel=1e-9)
    assert g.moment(2) - g.mean**2 == pytest.approx(0.99 / 0.01**2, rel=1e-8)
    capped = Lengths.geometric(100, max_tokens=50)
    assert capped.max == 50
    # capped mean: sum_{k=0}^{49} (1 - p)^k = (1 - 0.99^50) / 0.01
    assert capped.mean == pytest.approx((1 - 0.99**50) / 0.01, rel=1e-12)


def test_lognormal_mean_and_median() -> None:
    d = Lengths.lognormal(500, 0.5)
    # rounding to integers moves the mean by far less than a token
    assert d.mean == pytest.approx(500, abs=0.5)
    assert int(d.quantile(0.5)) == round(500 * math.exp(-0.125))  # median e^mu
    draws = d.sample(np.random.default_rng(1), 200_000)
    assert draws.mean() == pytest.approx(d.mean, rel=0.01)


def test_empirical_and_quantiles() -> None:
    d = Lengths.empirical([3, 1, 2, 3, 3])
    np.testing.assert_array_equal(d.values, [1, 2, 3])
    np.testing.assert_allclose(d.probs, [0.2, 0.2, 0.6])
    np.testing.assert_array_equal(d.quantile([0.0, 0.2, 0.21, 0.4, 1.0]), [1, 1, 2, 2, 3])
    assert Lengths.fixed(7).mean == 7
    assert Lengths.fixed(7).scv == 0


@pytest.mark.parametrize("B", [1, 2, 8, 32, 128])
def test_expected_max_of_geometric_and_uniform(B: int) -> None:
    g = Lengths.geometric(50)
    q = 1 - 1 / 50
    # E[max] = sum_{k>=0} P(max > k) = sum_k 1 - (1 - q^k)^B
    direct = sum(1 - (1 - q**k) ** B for k in range(5000))
    assert g.expected_max(B) == pytest.approx(direct, rel=1e-9)
    n = 40
    uniform = Lengths.empirical(np.arange(1, n + 1))
    assert uniform.expected_max(B) == pytest.approx(sum(1 - (k / n) ** B for k in range(n)), rel=1e-12)


def test_static_batching_gain_theorem_12() -> None:
    # exponential lengths: E[max of B] / E[N] = H_B; a geometric with a long mean approaches it
    long = Lengths.geometric(10_000)
    for B in (1, 8, 32):
        harmonic = sum(1 / k for k in range(1, B + 1))
        assert static_batching_gain(long, B) == pytest.approx(harmonic, rel=2e-3)
    assert static_batching_gain(Lengths.fixed(256), 64) == pytest.approx(1.0)
    # Monte-Carlo: batches of 16 lognormal lengths, ratio of mean batch max to mean length
    d = Lengths.lognormal(200, 1.0)
    draws = d.sample(np.random.default_rng(2), (20_000, 16))
    assert static_batching_gain(d, 16) == pytest.approx(draws.max(axis=1).mean() / draws.mean(), rel=0.02)
    with pytest.raises(CostmodelError):
        static_batching_gain(d, 0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Lengths.fixed(0),
        lambda: Lengths.geometric(0.5),
        lambda: Lengths.lognormal(100, 0),
        lambda: Lengths.empirical([1, 2.5]),
        lambda: Lengths.empirical([]),
        lambda: Lengths(np.array([2, 1]), np.array([0.5, 0.5])),
        lambda: Traffic(0.0, Lengths.fixed(1), Lengths.fixed(1)),
    ],
)
def test_bad_lengths_raise(make: object) -> None:
    with pytest.raises(CostmodelError):
        make()  # type: ignore[operator]


# ----------------------------------------------------------------------------------------------------
# Traces
# ----------------------------------------------------------------------------------------------------


def test_csv_and_jsonl_traces_agree() -> None:
    a, b = load_trace(TRACES / "small.csv"), load_trace(TRACES / "small.jsonl")
    assert len(a) == len(b) == 40
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.prompt_tokens, b.prompt_tokens)
    np.testing.assert_array_equal(a.output_tokens, b.output_tokens)
    assert a.rate_per_s == pytest.approx(39 / (a.arrival_s[-1] - a.arrival_s[0]))
    t = Traffic.from_trace(TRACES / "small.csv")
    assert t.prompt.mean == pytest.approx(a.prompt_tokens.mean())
    assert t.output.mean == pytest.approx(a.output_tokens.mean())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad_value.csv", r"bad_value\.csv:3: prompt_tokens must be a number, got 'ten'"),
        ("bad_order.csv", r"bad_order\.csv:4: arrival_time_s 0\.4 is earlier"),
        ("bad_header.csv", r"bad_header\.csv:1: the header lacks arrival_time_s"),
        ("bad_json.jsonl", r"bad_json\.jsonl:2: not valid JSON"),
        ("bad_missing.jsonl", r"bad_missing\.jsonl:3: prompt_tokens must be an integer >= 1"),
        ("no_such_file.csv", r"trace file not found"),
    ],
)
def test_malformed_traces_name_the_line(name: str, message: str) -> None:
    with pytest.raises(CostmodelError, match=message):
        load_trace(TRACES / name)


# ----------------------------------------------------------------------------------------------------
# Iteration time
# ----------------------------------------------------------------------------------------------------


def test_step_time_reduces_to_the_roofline_pass() -> None:
    m, hw, w = load_model(MODEL), load_hardware(HW), Workload()
    b, c = np.array([1, 8, 64]), np.array([100, 1000, 4000])
    np.testing.assert_allclose(
        step_time(m, hw, w, decode_batch=b, decode_context=c),
        step_time_s(m, hw, w, batch_size=b, new_tokens=1, past_tokens=c),
        rtol=1e-12,
    )
    k, p = np.array([16, 512, 2048]), np.array([0, 512, 1024])
    np.testing.assert_allclose(
        step_time(m, hw, w, prefill_tokens=k, prefill_past=p),
        step_time_s(m, hw, w, batch_size=1, new_tokens=k, past_tokens=p, logits="last"),
        rtol=1e-12,
    )
    assert step_time(m, hw, w) == 0.0


def test_mixed_iteration_lies_between_its_parts() -> None:
    m, hw, w = load_model(MODEL), load_hardware(HW), Workload()
    b, c = np.array([[1], [16], [128]]), 1500
    k = np.array([[64, 512, 4096]])
    decode = step_time(m, hw, w, decode_batch=b, decode_context=c)
    prefill = step_time(m, hw, w, prefill_tokens=k)
    mixed = step_time(m, hw, w, decode_batch=b, decode_context=c, prefill_tokens=k)
    assert mixed.shape == (3, 3)
    assert np.all(mixed >= np.maximum(decode, prefill))  # both parts' work is done
    assert np.all(mixed <= decode + prefill)  # one weight read is shared (the point of piggybacking)
    # a long chunk on a small batch is compute bound: at the same token count, trading one prompt token
    # for one decode costs little more than that decode's attention (Sarathi-Serve)
    same = step_time(m, hw, w, decode_batch=1, decode_context=c, prefill_tokens=4095)
    assert same - prefill[0, 2] < 0.05 * decode[0, 0]


def test_step_time_with_tensor_parallelism_is_faster() -> None:
    m, hw, w = load_model(MODEL), load_hardware(HW), Workload()
    one = step_time(m, hw, w, decode_batch=32, decode_context=1000, prefill_tokens=256)
    two = step_time(m, hw, w, Deployment(tp=2), decode_batch=32, decode_context=1000, prefill_tokens=256)
    assert two < one


def test_step_table_matches_step_time() -> None:
    engine = Engine.build(MODEL, HW, max_batch_size=64, max_batched_tokens=2048)
    table = StepTable(engine)
    rng = np.random.default_rng(3)
    for _ in range(40):
        b = int(rng.integers(0, 65))
        ctx = float(rng.uniform(0, 6000))
        chunks = [
            (int(rng.integers(1, 1500)), int(rng.integers(0, 3000))) for _ in range(int(rng.integers(0, 2)))
        ]
        if not b and not chunks:
            continue
        exact = float(engine.parts.linear_s(b + sum(k for k, _ in chunks)))
        exact += float(engine.parts.decode_attention_s(b, ctx))
        exact += sum(float(engine.parts.prefill_chunk_s(k, p)) for k, p in chunks)
        assert table.iteration_s(b, ctx * b, chunks) == pytest.approx(exact, rel=5e-3)
    # one chunk alone is exactly step_time
    assert table.iteration_s(10, 10 * 700.0, [(300, 0)]) == pytest.approx(
        float(engine.step_time(decode_batch=10, decode_context=700, prefill_tokens=300)), rel=5e-3
    )


# ----------------------------------------------------------------------------------------------------
# KV memory and concurrency
# ----------------------------------------------------------------------------------------------------


def _capacity_tokens_by_hand() -> int:
    weights = 8_030_261_248 * 2  # published parameter count, bf16
    kv_per_token = 2 * 8 * 128 * 32 * 2  # K and V, 8 heads x 128, 32 layers, 2 bytes = 131,072
    hw = load_hardware(HW)
    acts = float(inference_activation_bytes(load_model(MODEL), batch_size=1, new_tokens=8192))
    return int((0.9 * hw.memory_bytes - weights - acts) // kv_per_token)


def test_contiguous_vs_paged_concurrency() -> None:
    cap = _capacity_tokens_by_hand()
    ctx = np.array([100, 1000, 4000])
    contiguous = max_concurrency(MODEL, HW, context_len=ctx, allocation="contiguous")
    paged = max_concurrency(MODEL, HW, context_len=ctx, allocation="paged", block_size=16)
    assert contiguous.kv_capacity_tokens == cap
    np.testing.assert_array_equal(contiguous.max_sequences, cap // 8192)  # each reserves max_context
    np.testing.assert_array_equal(paged.max_sequences, (cap // 16) // np.ceil(ctx / 16))
    np.testing.assert_allclose(contiguous.fragmentation_fraction, 1 - ctx / 8192)
    assert np.all(paged.fragmentation_fraction < 16 / ctx)  # less than a block per sequence
    one = max_concurrency(MODEL, HW, context_len=ctx, block_size=1)
    np.testing.assert_array_equal(one.max_sequences, cap // ctx)
    assert np.all(one.fragmentation_fraction == 0)


def test_concurrency_over_a_length_distribution_and_tp() -> None:
    d = Lengths.empirical([10, 20, 40])
    c = max_concurrency(MODEL, HW, context_len=d, block_size=16)
    # blocks held: 1, 2, 3 -> mean 2
    assert int(c.max_sequences) == (c.kv_capacity_tokens // 16) // 2
    tp2 = max_concurrency(MODEL, HW, context_len=1000, deployment=Deployment(tp=2))
    assert tp2.kv_capacity_tokens > 2 * c.kv_capacity_tokens  # two devices, and weights halve per device


def test_weights_that_do_not_fit_leave_no_room() -> None:
    c = max_concurrency("llama-3-70b", "l40s", context_len=1000)
    assert c.kv_capacity_tokens == 0
    assert int(c.max_sequences) == 0


def test_engine_validation() -> None:
    with pytest.raises(CostmodelError, match="max_batched_tokens"):
        Engine.build(MODEL, HW, max_batch_size=512, max_batched_tokens=256)
    with pytest.raises(CostmodelError, match="allocation"):
        Engine.build(MODEL, HW, allocation="fancy")
    with pytest.raises(ValueError, match="tp"):
        Engine.build(MODEL, HW, tp=3)
    e = Engine.build(MODEL, HW)
    assert e.max_len == 8192
    assert e.gpus == 1
    assert e.usd_per_hour == pytest.approx(load_hardware(HW).price.usd_per_hour)  # type: ignore[union-attr]


def test_kv_capacity_follows_the_sparse_weights() -> None:
    # 2:4 sparse weights take 9/16 of the bytes: the room they free goes to the KV cache, as in estimate()
    import costmodel
    from costmodel.memory import replica_memory
    from costmodel.serving import kv_capacity_tokens

    model, hw = costmodel.load_model("llama-3-8b"), costmodel.load_hardware("h100-sxm")
    dense = kv_capacity_tokens(model, hw)
    sparse = kv_capacity_tokens(model, hw, sparsity="2:4")
    freed = replica_memory(model).weight_bytes - replica_memory(model, sparsity="2:4").weight_bytes
    per_token = costmodel.kv_bytes_per_token(model)
    assert sparse - dense == pytest.approx(freed / per_token, abs=1)


@pytest.mark.parametrize(
    ("model", "deployment"),
    [
        ("llama-3-8b", Deployment(tp=1)),
        ("llama-3-8b", Deployment(tp=2, pp=2)),
        ("qwen3-30b-a3b", Deployment(tp=1, attention_dp=2, moe_ep=2)),
    ],
)
def test_terms_sharing_their_passes_equal_each_term_alone(model: str, deployment: Deployment) -> None:
    """Engine.parts.terms_s evaluates the three brackets' S(T, 1, 0) passes together; each term is the
    same, bit for bit, as linear_s, decode_attention_s and prefill_attention_s called alone."""
    engine = Engine(load_model(model), load_hardware("h100-sxm"), Workload(), deployment)
    tokens = np.array([0.0, 1.0, 7.0, 300.0, 4096.0])
    batch, context = np.array([1.0, 3.0, 64.0, 0.0]), np.array([0.0, 900.0, 2000.0, 10.0])
    chunk, past = np.array([[512.0, 0.0], [37.0, 2048.0]]), np.array([[0.0, 0.0], [100.0, 5.0]])
    linear, decode, prefill = engine.parts.terms_s(tokens, batch, context, chunk, past)
    assert np.array_equal(linear, engine.parts.linear_s(tokens))
    assert np.array_equal(decode, engine.parts.decode_attention_s(batch, context))
    assert np.array_equal(prefill, engine.parts.prefill_chunk_s(chunk, past))
    assert np.all(decode[1:3] > 0)
    assert np.all(prefill[:, 0] != 0)
    none = engine.parts.terms_s(np.zeros(2), np.zeros(3), np.ones(3), np.zeros(1), np.zeros(1))
    assert all(np.array_equal(x, np.zeros_like(x)) for x in none)


@pytest.mark.parametrize(
    ("model", "deployment"),
    [
        ("llama-3-8b", Deployment(tp=1)),
        ("llama-3-8b", Deployment(tp=2, pp=2)),
        ("qwen3-30b-a3b", Deployment(tp=1, attention_dp=2, moe_ep=2)),
        ("deepseek-v3", Deployment(tp=8)),  # MLA: a verification's passes carry their drafts
    ],
)
def test_passes_evaluated_together_equal_each_alone(model: str, deployment: Deployment) -> None:
    """Engine.parts.together evaluates the passes of several iterations as one concatenated pass of each
    kind (arrays only); every iteration is the same, bit for bit, as on a fresh engine's parts alone."""
    engine = Engine(load_model(model), load_hardware("h100-sxm"), Workload(), deployment)
    batch, context = np.array([1.0, 3.0, 64.0, 0.0]), np.array([0.0, 900.0, 2000.0, 10.0])
    chunk, past = np.array([512.0, 0.0, 37.0, 8192.0]), np.array([0.0, 0.0, 100.0, 5.0])
    iterations = (
        {"decode_batch": batch, "decode_context": context, "prefill_tokens": chunk, "prefill_past": past},
        {"decode_batch": batch, "decode_context": context},
        {"decode_batch": 2.0 * batch, "decode_context": context, "decode_new_tokens": 3.0},
        {"prefill_tokens": 300.0, "prefill_past": 40.0},  # scalars: a pass of its own
        {"prefill_tokens": chunk[:, None], "prefill_past": past},
    )
    parts = engine.parts
    together = parts.together(lambda: [parts.step_time(**kwargs) for kwargs in iterations])
    for kwargs, got in zip(iterations, together, strict=True):
        alone = engine.parts.step_time(**kwargs)
        assert got.shape == alone.shape
        assert np.array_equal(got, alone)


@pytest.mark.parametrize(
    ("model", "deployment"),
    [
        ("llama-3-8b", Deployment(tp=2, pp=2)),
        ("qwen3-30b-a3b", Deployment(tp=2, moe_ep=2)),
    ],
)
def test_passes_noted_for_later_equal_each_alone(model: str, deployment: Deployment) -> None:
    """_Parts.note leaves a later call's passes pending; the next together evaluates them with its own, as
    many passes as one together over all the calls takes (one per kind), and each later call then runs
    once on them. Every iteration is the same, bit for bit, as on a fresh engine's parts alone."""
    engine = Engine(load_model(model), load_hardware("h100-sxm"), Workload(), deployment)
    batch, context = np.array([1.0, 3.0, 64.0]), np.array([0.0, 900.0, 2000.0])
    first = {
        "decode_batch": 2.0 * batch,
        "decode_context": context,
        "prefill_tokens": np.array([8.0, 64.0, 512.0]),
    }
    later = (
        {"decode_batch": batch, "decode_context": context},
        {"prefill_tokens": np.array([300.0, 4096.0]), "prompt_len": 1000.0},
    )

    def counting(parts: _Parts) -> list[int]:
        evaluated: list[int] = []
        evaluate = parts._evaluate

        def counted(*args: Any) -> np.ndarray:
            evaluated.append(1)
            return evaluate(*args)

        object.__setattr__(parts, "_evaluate", counted)
        return evaluated

    at_once = engine.parts
    at_once_count = counting(at_once)
    at_once.together(lambda: [at_once.step_time(**kwargs) for kwargs in (first, *later)])
    parts = engine.parts
    evaluated = counting(parts)
    for kwargs in later:
        parts.note(lambda kwargs=kwargs: parts.step_time(**kwargs))
    assert not evaluated  # noted, not evaluated
    got_first = parts.together(lambda: parts.step_time(**first))
    assert len(evaluated) == len(at_once_count)
    runs: list[int] = []
    got_later = [
        parts.together(lambda kwargs=kwargs: runs.append(1) or parts.step_time(**kwargs)) for kwargs in later
    ]
    assert len(evaluated) == len(at_once_count)  # nothing more to evaluate
    assert len(runs) == len(later)  # so each later call ran once
    for kwargs, got in zip((first, *later), (got_first, *got_later), strict=True):
        alone = engine.parts.step_time(**kwargs)
        assert got.shape == alone.shape
        assert np.array_equal(got, alone)


def test_engines_sharing_parts_share_their_passes() -> None:
    """Engine.sharing_parts: copies of other scheduler limits reuse one _Parts (a pass does not depend on
    the limits); a copy of another layout gets its own; shared parts of another engine are refused."""
    engine = Engine(load_model("llama-3-8b"), load_hardware("h100-sxm"), Workload(), Deployment(tp=1))
    assert engine.parts is not engine.parts  # unshared: a fresh one each time
    shared = engine.sharing_parts()
    assert shared.parts is shared.parts
    assert shared.replace(max_batch_size=64, max_batched_tokens=4096).parts is shared.parts
    other = shared.replace(deployment=Deployment(tp=2))
    assert other.shared_parts is None
    assert other.parts is not shared.parts
    with pytest.raises(CostmodelError, match="shared_parts"):
        engine.replace(deployment=Deployment(tp=2), shared_parts=shared.parts)


def test_engines_sharing_parts_across_threads_get_the_unshared_step_times() -> None:
    """Oracle: the unshared engine. Eight threads, each timing its own ``replace(max_batch_size=...)``
    copy of one sharing engine at four contexts (review 17b's repro), get each step time of a fresh, unshared
    engine to the bit: no thread ever reads another's placeholders."""
    import dataclasses
    import threading

    engine = Engine(
        load_model("llama-3-8b"), load_hardware("h100-sxm"), Workload(), Deployment(tp=2)
    ).sharing_parts()
    grids = [np.arange(1.0, 200.0 + i) for i in range(8)]
    contexts = [[500.0 + i + 1000.0 * rep for rep in range(4)] for i in range(len(grids))]
    fresh = dataclasses.replace(engine, shared_parts=None).parts
    expected = [
        [fresh.step_time(decode_batch=grids[i], decode_context=c) for c in cs]
        for i, cs in enumerate(contexts)
    ]
    wrong: list[int] = []
    start = threading.Barrier(len(grids))

    def work(i: int) -> None:
        parts = engine.replace(max_batch_size=100 + i).parts
        start.wait()
        for c, want in zip(contexts[i], expected[i], strict=True):
            got = parts.together(lambda c=c: parts.step_time(decode_batch=grids[i], decode_context=c))
            if not np.array_equal(got, want):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(grids))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_noted_pass_that_fails_is_reported_to_its_own_caller_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review 17b: passes noted for a later call are evaluated with the next caller's; where one of them
    fails, that caller still gets its own result (the unshared engine's, to the bit) and the failure is
    raised where the noted call is made. The failing pass is simulated: a linear pass over 12,345 tokens."""
    from costmodel.serving import _Parts

    engine = Engine(load_model("llama-3-8b"), load_hardware("h100-sxm"), Workload(), Deployment(tp=1))
    evaluate = _Parts._evaluate

    def failing(self: _Parts, batch: Any, *args: Any) -> Any:
        if np.any(np.asarray(batch) == 12345.0):
            raise CostmodelError("simulated failure of a noted pass")
        return evaluate(self, batch, *args)

    monkeypatch.setattr(_Parts, "_evaluate", failing)
    grid = np.arange(1.0, 65.0)
    expected = engine.parts.step_time(decode_batch=grid, decode_context=700.0)
    parts = engine.sharing_parts().parts
    parts.note(lambda: parts.linear_s(np.array([12345.0, 3.0])))
    got = parts.together(lambda: parts.step_time(decode_batch=grid, decode_context=700.0))
    assert np.array_equal(got, expected)
    with pytest.raises(CostmodelError, match="simulated"):
        parts.linear_s(np.array([12345.0, 3.0]))


def test_sharing_engines_compare_array_workloads_field_by_field() -> None:
    """A workload of array sizes (a sweep) on a sharing engine: an equal one keeps the shared terms, a
    different one is refused with the error that names shared_parts, not numpy's ambiguous truth value."""
    import dataclasses

    sizes = {"batch_size": np.array([1, 2]), "prompt_len": np.array([128, 256])}
    engine = Engine(
        load_model("llama-3-8b"), load_hardware("h100-sxm"), Workload(**sizes), Deployment(tp=1)
    ).sharing_parts()
    same = dataclasses.replace(engine, workload=Workload(**sizes))
    assert same.parts is engine.parts
    with pytest.raises(CostmodelError, match="shared_parts"):
        dataclasses.replace(engine, workload=Workload(batch_size=np.array([1, 4]), prompt_len=128))


@pytest.mark.parametrize(
    ("model", "hardware", "deployment"),
    [
        ("llama-3-8b", "h100-sxm", Deployment(tp=1)),
        ("llama-3-70b", "h100-sxm", Deployment(tp=4)),
        ("llama-3-8b", "a100-80gb", Deployment(tp=2, pp=2)),
        ("qwen3-30b-a3b", "h100-sxm", Deployment(tp=1, attention_dp=2, moe_ep=2)),
        ("deepseek-v3", "b200", Deployment(tp=8)),
    ],
)
def test_each_part_of_an_iteration_is_a_time(model: str, hardware: str, deployment: Deployment) -> None:
    """A prompt chunk's attention is a time: positive, growing with the past it attends to, and no faster
    than its causal attention FLOPs at the device's peak; the decode-priced extras of its tokens are a
    time; the bracket step_time adds is their difference (it once reported -3.2 ms of "attention" for 512
    tokens of Llama 3 8B on an H100)."""
    engine = Engine(load_model(model), load_hardware(hardware), Workload(), deployment)
    parts = engine.parts
    k = np.array([1.0, 16.0, 128.0, 512.0, 2048.0, 8192.0])[:, None]
    past = np.array([0.0, 512.0, 4096.0])[None, :]
    attention = parts.prefill_attention_s(k, past)
    extras = parts.prompt_extras_s(k)
    assert np.all(attention > 0)
    assert np.all(extras > 0)
    assert np.all(np.diff(attention, axis=1) >= 0)
    chunk = parts.prefill_chunk_s(k, past)
    np.testing.assert_allclose(attention - extras, chunk, rtol=0, atol=1e-12 * float(parts.linear_s(8192.0)))
    m = engine.model
    if m.mla is None and m.n_heads is not None and m.head_dim is not None:
        # QK^T and PV over q p + q (q + 1) / 2 causal pairs of a rank's q = k / r queries, 2 FLOP per
        # multiply-add, per GPU
        q = k / deployment.attention_dp
        pairs = q * past + q * (q + 1) / 2
        flop = 2 * 2 * pairs * m.n_heads * m.head_dim * m.n_layers / deployment.tp
        assert np.all(attention >= flop / engine.hardware.peak_flop_per_s("bf16"))


# ----------------------------------------------------------------------------------------------------
# An iteration's prompt tokens as the separate prompts they are
# ----------------------------------------------------------------------------------------------------


def test_prompt_pieces_keep_every_prompts_causal_pairs() -> None:
    """Oracle: a stream of prompts of L tokens packed first come first served into iterations of k tokens,
    walked token by token over a whole period (L iterations), each token attending to itself and the
    tokens of its prompt before it: the mean causal pairs per iteration are those of :func:`prompt_pieces`
    (n sequences of m tokens after p past each), for k below, at and above L; and every sequence fits in
    its prompt, the longest one whole from k = L on."""
    for L in (7, 16):
        for k in (3, 5, 7, 10, 16, 23):
            pairs = sum(token % L + 1 for token in range(L * k))  # L iterations of k tokens
            n, m, past = prompt_pieces(k, L)
            model = n * (m * past + m * (m + 1) / 2)
            assert float(model) == pytest.approx(pairs / L, rel=1e-12), (L, k)
            assert float(n * m) == pytest.approx(k, rel=1e-15)
            assert float(n) >= 1
            assert float(past) >= 0
            assert float(past + m) == pytest.approx((L + min(k, L)) / 2, rel=1e-15)
            if k >= L:
                assert (float(m), float(past)) == (L, 0.0)
    with pytest.raises(CostmodelError, match="prompt_len"):
        prompt_pieces(10, 0)
    with pytest.raises(CostmodelError, match="tokens"):
        prompt_pieces(-1, 10)


def test_an_iterations_prompts_attend_as_separate_kernel_sequences() -> None:
    """Oracle: the attention of an iteration's prompt tokens, drawn from 1000-token prompts, is ONE call of
    the context-attention kernel (:mod:`costmodel.kernels.context_attention`, called here directly with
    the parameters a serving step uses) over n = k / L whole prompts (k >= L; one chunk after the mean
    past (L - k) / 2 below), through every layer, plus the output head over the n rows they sample (its
    weights read once). One call of w prompts costs no more than w calls of one; and all of it is far
    below one sequence of all k tokens (8192 tokens: 8.2 prompts' 4.1 M causal pairs per head, not 33.6 M)."""
    engine = Engine.build(MODEL, HW, max_batch_size=64, max_batched_tokens=16384)
    parts, m, hw = engine.parts, engine.model, engine.hardware
    key = "vllm.vllm_flash_attn_fa3:bf16"  # the sorted-first vLLM key on H100 (tests/test_kernel_times.py)
    ctx = kernel_times.step_params(hw, context_attention, key, launch_s=kernel_times.launch_s(hw))

    def kernel_s(batch: object, tokens: object, past: object) -> object:
        t = context_attention.time_s(
            hw,
            ctx,
            batch_size=batch,
            seq_len=tokens,
            n_heads=m.n_heads,
            n_kv_heads=m.kv_heads,
            head_dim=m.head_size,
            past_len=past,
        )
        return m.n_layers * t

    L = 1000.0
    k = np.array([1000.0, 3000.0, 3500.0, 600.0, 8192.0])
    n = np.array([1.0, 3.0, 3.5, 1.0, 8.192])
    tokens = np.array([1000.0, 1000.0, 1000.0, 600.0, 1000.0])
    past = np.array([0.0, 0.0, 0.0, 200.0, 0.0])
    oracle = kernel_s(n, tokens, past) + parts.output_head_s(n)
    got = parts.prompts_attention_s(k, L)
    np.testing.assert_allclose(got, oracle, rtol=1e-12)
    assert np.all(kernel_s(n, L, 0.0) <= n * kernel_s(1.0, L, 0.0))
    one_sequence = parts.prefill_attention_s(k, np.where(k < L, (L - k) / 2, 0.0))
    np.testing.assert_array_equal(got[[0, 3]], one_sequence[[0, 3]])  # one whole prompt; one chunk
    assert got[-1] < 0.3 * one_sequence[-1]
    # the iteration: every token's linear work together, each prompt's attention apart
    np.testing.assert_allclose(
        engine.step_time(decode_batch=32, decode_context=2000, prefill_tokens=k, prompt_len=L),
        parts.linear_s(32 + k) + parts.decode_attention_s(32, 2000) + parts.prompts_chunk_s(k, L),
        rtol=1e-12,
    )
    with pytest.raises(CostmodelError, match="prompt_len"):
        engine.step_time(prefill_tokens=1000, prompt_len="long")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "deployment"),
    [
        ("llama-3-8b", Deployment(tp=1)),
        ("llama-3-8b", Deployment(tp=2, pp=2)),
        ("qwen3-30b-a3b", Deployment(tp=1, attention_dp=2, moe_ep=2)),
    ],
)
def test_more_prompt_tokens_never_make_an_iteration_cheaper(model: str, deployment: Deployment) -> None:
    """Physics: an iteration of more prompt tokens (drawn from 1000-token prompts) does more work, so the
    prompts' attention (:meth:`_Parts.prompts_attention_s`) never falls as k grows over [2 r, 8 r L], r
    the attention-DP ranks, across the multiples of r L too, where whole prompts start to share the
    call; nor does an iteration's time, with or without 16 decodes, across those multiples, nor a
    prefill-only iteration's anywhere without pipeline stages (it is one packed pass). Not asserted: with
    pp > 1 an iteration paced by a whole prompt (:meth:`_Parts.paced_tokens`, T' = m L > b + k) falls by
    about one output-head row per prompt token as k grows towards m r L, as :meth:`_Parts.linear_s` charges
    the pacing's T' - b - k padding tokens a head row and one-token attention each, and unpaced it saws
    by a few microseconds with a period of pp tokens (:meth:`_Parts.linear_s` splits b + k into
    micro-batches of whole tokens, :meth:`_Parts.prompt_extras_s` keeps k in one); nor, with decodes,
    the output head's row-tile saw between :meth:`_Parts.linear_s` at b + k rows and
    :meth:`_Parts.prompt_extras_s` at k (up to 0.17 ms on Llama 3 8B / H100 at b = 16)."""
    engine = Engine(load_model(model), load_hardware("h100-sxm"), Workload(), deployment)
    parts, r, L = engine.parts, deployment.attention_dp, 1000.0
    multiples = r * L * np.arange(1.0, 9.0)
    k = np.unique(
        np.concatenate(
            [np.linspace(2.0 * r, 8 * r * L, 2001), multiples, multiples * (1 + 1e-9), multiples * 0.999]
        )
    )
    attention = parts.prompts_attention_s(k, L)
    assert np.all(np.diff(attention) >= -1e-12 * attention[1:])
    for b in (0.0, 16.0):
        around = np.stack([multiples * (1 - 1e-9), multiples, multiples * (1 + 1e-9)])
        t = parts.step_time(decode_batch=b, decode_context=1500, prefill_tokens=around, prompt_len=L)
        if deployment.pp > 1:  # the step up across each multiple alone, and unpaced: see the docstring
            t = t[1:, multiples >= deployment.pp * r * L]
        assert np.all(np.diff(t, axis=0) >= -1e-12 * t[1:]), (b, np.diff(t, axis=0))
    if deployment.pp == 1:
        t = parts.step_time(prefill_tokens=k, prompt_len=L)
        assert np.all(np.diff(t) >= -1e-12 * t[1:])


@pytest.mark.parametrize(
    ("model", "deployment"),
    [
        ("llama-3-8b", Deployment(tp=1)),
        ("llama-3-8b", Deployment(tp=2, pp=2)),
        ("qwen3-30b-a3b", Deployment(tp=1, attention_dp=2, moe_ep=2)),
    ],
)
def test_one_prompt_or_one_chunk_of_one_is_the_single_chunk_iteration(
    model: str, deployment: Deployment
) -> None:
    """With ``prompt_len`` an iteration holding one whole prompt (k = L per rank) or one chunk of one
    (k < L, after the chunks' mean past (L - k) / 2) is, to the bit, the one-chunk iteration of before."""
    engine = Engine(load_model(model), load_hardware("h100-sxm"), Workload(), deployment)
    parts, r = engine.parts, deployment.attention_dp
    L = np.array([1024.0, 8192.0])
    chunk = np.array([1024.0, 2048.0])
    got = parts.step_time(decode_batch=16, decode_context=1500, prefill_tokens=r * chunk, prompt_len=L)
    before = parts.step_time(
        decode_batch=16, decode_context=1500, prefill_tokens=r * chunk, prefill_past=(L - chunk) / 2
    )
    np.testing.assert_array_equal(got, before)
    with pytest.raises(CostmodelError, match="prefill_past must be 0"):
        parts.step_time(prefill_tokens=1024, prefill_past=10, prompt_len=1024)


@pytest.mark.parametrize(
    "deployment", [Deployment(tp=8), Deployment(tp=1, attention_dp=8, moe_ep=8)], ids=["tp8", "dp8"]
)
def test_an_mla_verifications_attention_is_the_absorbed_decode_of_its_queries(deployment: Deployment) -> None:
    """DeepSeek-V3 fp8 on B200 at 16 and 128 heads a GPU. A speculative verification's n = k + 1 queries a
    sequence run in the absorbed decode kernel over the sequence's latent cache, read once: the iteration
    never undercuts the b sequences' plain decode and never exceeds a decode of the b n queries as sequences
    of their own over as many keys (the same linear work; the cache read n times). At 128 heads a GPU the
    decode attention is compute bound, so the queries' FLOPs show: the verification's attention costs well
    over the plain decode's. A model without MLA keeps S(b, 1, c) - S(b, 1, 0)."""
    engine = Engine(
        load_model("deepseek-v3"), load_hardware("b200"), Workload(weight_dtype="fp8"), deployment
    )
    parts = engine.parts
    b, c = np.array([4.0, 32.0, 128.0]) * deployment.attention_dp, 6000.0
    plain = parts.step_time(decode_batch=b, decode_context=c)
    for n in (2.0, 4.0):
        verify = parts.step_time(decode_batch=b, decode_context=c, decode_new_tokens=n)
        decodes = parts.step_time(decode_batch=b * n, decode_context=c + n - 1.0)
        assert np.all(plain <= verify)
        assert np.all(verify <= decodes)
        if deployment.attention_dp > 1:
            assert parts.decode_attention_s(b, c, n)[-1] > 1.5 * parts.decode_attention_s(b, c)[-1]
    llama = Engine(load_model("llama-3-8b"), load_hardware("h100-sxm"), Workload(), Deployment())
    assert np.array_equal(llama.parts.decode_attention_s(b, c, 4.0), llama.parts.decode_attention_s(b, c))


@pytest.mark.parametrize("hardware", ["h100-sxm", "h200", "b200"])
@pytest.mark.parametrize(
    "deployment", [Deployment(tp=8), Deployment(tp=1, attention_dp=8, moe_ep=8)], ids=["tp8", "dp8"]
)
def test_more_drafts_never_make_an_mla_verification_cheaper(hardware: str, deployment: Deployment) -> None:
    """DeepSeek-V3 fp8, k = 0..7 drafts, b in 1..512 sequences a rank, c in 500..32,000 cached tokens. The
    k + 1 queries of a sequence read the latent the one query of a plain decode reads, so the verification's
    attention never falls below the plain decode's at the same b and c, and equals it to the bit at k = 0.
    The iteration's time never decreases as k grows where the head count fixes the kernel: FlashMLA (H100,
    H200) plans k + 1 times the heads' query rows over one kernel; trtllm-gen (B200) always runs its 16-head
    low-latency kernel at 16 heads a GPU (tp 8). At 128 heads a GPU (DP 8) the B200's engine switches
    between its low-latency kernel and the 2-CTA pair by ``batch x (k + 1) x 8`` CTAs, a rule of the engine
    that may price a longer draft below a shorter one, so there only the floor is asserted."""
    engine = Engine(
        load_model("deepseek-v3"), load_hardware(hardware), Workload(weight_dtype="fp8"), deployment
    )
    parts = engine.parts
    b = 2.0 ** np.arange(10.0)[:, None] * deployment.attention_dp
    c = np.array([500.0, 2000.0, 8000.0, 32000.0])[None, :]
    plain = parts.decode_attention_s(b, c)
    np.testing.assert_array_equal(parts.decode_attention_s(b, c, 1.0), plain)
    np.testing.assert_array_equal(
        parts.step_time(decode_batch=b, decode_context=c, decode_new_tokens=1.0),
        parts.step_time(decode_batch=b, decode_context=c),
    )
    steps = []
    for k in range(8):
        assert np.all(parts.decode_attention_s(b, c, k + 1.0) >= plain)
        steps.append(parts.step_time(decode_batch=b, decode_context=c, decode_new_tokens=k + 1.0))
    if hardware != "b200" or deployment.attention_dp == 1:
        assert np.all(np.diff(np.stack(steps), axis=0) >= 0.0)
    assert np.all(np.stack(steps)[1:] >= steps[0])


@pytest.mark.parametrize("model", ["deepseek-v3.2", "glm-5"])
def test_a_sparse_mla_verification_reads_a_top_k_a_query_token(model: str) -> None:
    """A top-k sparse MLA (DeepSeek-V3.2, GLM-5) verifying n = k + 1 tokens (k = 1, 3) gives each query token
    its own top-k rows (FlashMLA's sparse decode ``indices[batch, s_q, topk]``), so the attention is about n
    one-query sparse decodes: never below the plain decode's term (one query's rows) and never above n of
    them (every token's rows apart); the MTP iteration on 8 H200s under attention DP costs more than a plain
    decode step and less than n of them (it shares the weights' read among the n tokens)."""
    engine = Engine(
        load_model(model),
        load_hardware("h200"),
        Workload(weight_dtype="fp8"),
        Deployment(tp=1, attention_dp=8, moe_ep=8),
    )
    parts = engine.parts
    b, c = np.array([8.0, 64.0, 256.0, 1024.0])[:, None], np.array([2000.0, 16000.0, 64000.0])[None, :]
    plain = parts.step_time(decode_batch=b, decode_context=c)
    attention = parts.decode_attention_s(b, c)
    for n in (2.0, 4.0):
        verify_attention = parts.decode_attention_s(b, c, n)
        assert np.all(verify_attention > attention)
        assert np.all(verify_attention <= n * attention)
        verify = parts.step_time(decode_batch=b, decode_context=c, decode_new_tokens=n)
        assert np.all(plain < verify)
        assert np.all(verify < n * plain)


def test_an_engines_memory_holds_the_mla_weight_copies_its_engine_keeps() -> None:
    """DeepSeek-V3 with per-tensor fp8 weights at tp 8 on an H200: vLLM dequantizes kv_b_proj into one bf16
    copy for the absorbed bmm, SGLang requantizes w_kc / w_vc to fp8 with one tensor scale, so vLLM holds
    61 layers x 32,768 x 512 elements x 1 byte more over 8 GPUs, and its KV capacity gives up that room at
    the latent's 61 x 576 x 2 bytes a token."""
    h200 = load_hardware("h200")
    base = Engine.build("deepseek-v3", h200, tp=8, weight_dtype="fp8")
    engines = {
        name: base.replace(efficiency=h200.efficiency.model_copy(update={"kernel_engine": name}))
        for name in ("vllm", "sglang")
    }
    extra = 61 * 32768 * 512 * 1.0 / 8
    held = {name: e.replica_memory().weight_bytes for name, e in engines.items()}
    assert held["vllm"] - held["sglang"] == pytest.approx(extra, rel=1e-12)
    lost = engines["sglang"].kv_capacity_tokens() - engines["vllm"].kv_capacity_tokens()
    assert engines["vllm"].kv_capacity_tokens() > 0
    assert abs(lost - extra / (61 * 576 * 2.0)) <= 1
