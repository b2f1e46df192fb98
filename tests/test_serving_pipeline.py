"""step_time with pipeline parallelism: the terms' two passes see the same pipeline schedule.

What is asserted, and why:

- The chunk's bracket S_last(1, k, p) - S(k, 1, 0) is its attention through all layers (and the logits
  it skips). Each of the pp stages runs 1/pp of the layers and the chunk visits every stage, so the
  bracket is the same at every pp, equal to pp = 1's (both passes run as one micro-batch, so their
  linear work and stage sends cancel exactly).
- A prompt chunk is one sequence's and stays in one micro-batch: a prefill-only iteration is exactly
  S_last(1, k, p), the pipelined pass of that one sequence, at every pp (the linear term paces on
  max((b + k) / pp, k) tokens); the simulator's StepTable agrees with step_time at pp > 1 too.
- One more decode never makes an iteration faster: step_time is non-decreasing in decode_batch.
- One more prompt token never makes an iteration faster through the pipeline: the linear term and the
  decodes' bracket are non-decreasing in k, and the only drop left is the one pp = 1 has in the chunk's
  bracket (the kernel model's output-head GEMM is tile-quantised and the bracket subtracts it at k
  tokens, S_last keeping one token's logits), never a drop of the pipeline's own.
"""

from __future__ import annotations

import numpy as np
import pytest

from costmodel.estimate import step_time_s
from costmodel.serving import Engine, StepTable

CASES = [("llama-3-70b", "a100-80gb", 4), ("llama-3-8b", "h100-sxm", 1)]


def _engine(model: str, hardware: str, tp: int, pp: int) -> Engine:
    return Engine.build(
        model, hardware, tp=tp, pp=pp, weight_dtype="bf16", activation_dtype="bf16",
        max_batch_size=2048, max_batched_tokens=8192,
    )  # fmt: skip


@pytest.mark.parametrize(("model", "hardware", "tp"), CASES)
@pytest.mark.parametrize("pp", [2, 4])
def test_prefill_bracket_is_the_chunks_attention_at_every_pp(
    model: str, hardware: str, tp: int, pp: int
) -> None:
    k = np.arange(1.0, 8193.0, 13.0)[:, None]
    past = np.array([0.0, 64.0, 2000.0])[None, :]
    one = _engine(model, hardware, tp, 1).parts.prefill_attention_s(k, past)
    piped = _engine(model, hardware, tp, pp).parts.prefill_attention_s(k, past)
    np.testing.assert_allclose(piped, one, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("model", "hardware", "tp"), CASES)
@pytest.mark.parametrize("pp", [1, 2, 4])
def test_step_time_non_decreasing_in_decodes_and_prompt_tokens(
    model: str, hardware: str, tp: int, pp: int
) -> None:
    engine = _engine(model, hardware, tp, pp)
    b = np.arange(0.0, 2049.0)
    for k, past in ((0.0, 0.0), (512.0, 64.0), (4096.0, 2000.0)):
        t = engine.step_time(decode_batch=b, decode_context=640, prefill_tokens=k, prefill_past=past)
        assert np.all(np.diff(t) >= -1e-12 * t[1:]), (k, past)
    k = np.arange(0.0, 8193.0)
    bracket_pp1 = _engine(model, hardware, tp, 1).parts.prefill_chunk_s(k, 64.0)
    allowed = np.minimum(np.diff(bracket_pp1), 0.0)
    for decodes in (0.0, 1.0, 12.0, 13.0, 256.0):
        t = engine.step_time(decode_batch=decodes, decode_context=640, prefill_tokens=k, prefill_past=64.0)
        assert np.all(np.diff(t) >= allowed - 1e-12 * t[1:]), decodes


def test_one_more_client_one_more_chunk_costs_more_through_a_pipeline() -> None:
    """The defect that made the closed loop's TTFT saw at pp = 2: 12 decodes + a 1,536-token chunk took
    0.317 s but 13 decodes + a 1,664-token chunk 0.301 s, the chunk's bracket (0.140 s, then 0.121 s)
    holding the difference of two GEMM passes at k and k / 2 tokens instead of a few ms of attention."""
    engine = _engine("llama-3-70b", "a100-80gb", 4, 2)
    smaller = engine.step_time(decode_batch=12, decode_context=640, prefill_tokens=1536, prefill_past=64)
    larger = engine.step_time(decode_batch=13, decode_context=640, prefill_tokens=1664, prefill_past=64)
    assert larger > smaller
    assert abs(float(engine.parts.prefill_attention_s(1536, 64))) < 0.01


@pytest.mark.parametrize(("model", "hardware", "tp"), CASES)
@pytest.mark.parametrize("pp", [2, 4])
def test_a_lone_chunk_is_one_micro_batch(model: str, hardware: str, tp: int, pp: int) -> None:
    engine = _engine(model, hardware, tp, pp)
    k = np.array([1.0, 17.0, 768.0, 2048.0, 8192.0])[:, None]
    past = np.array([0.0, 3000.0])[None, :]
    alone = step_time_s(
        engine.model, engine.hardware, engine.workload, engine.deployment,
        batch_size=1, new_tokens=k, past_tokens=past, efficiency=engine.efficiency, logits="last",
    )  # fmt: skip
    np.testing.assert_allclose(engine.step_time(prefill_tokens=k, prefill_past=past), alone, rtol=1e-9)
    # with enough decodes to fill the other micro-batches the tokens split evenly again
    even = engine.parts.linear_s(4096.0 + 512.0)
    assert float(engine.parts.linear_s(engine.parts.paced_tokens(4096.0 + 512.0, 512.0))) == float(even)


def test_step_table_matches_step_time_through_a_pipeline() -> None:
    engine = Engine.build("llama-3-8b", "h100-sxm", pp=2, max_batch_size=64, max_batched_tokens=2048)
    table = StepTable(engine)
    for b, ctx, k, past in (
        (0, 0.0, 2000, 0),
        (3, 900.0, 1500, 600),
        (40, 2500.0, 300, 0),
        (64, 100.0, 0, 0),
    ):
        chunks = [(k, past)] if k else []
        exact = float(
            engine.step_time(decode_batch=b, decode_context=ctx, prefill_tokens=k, prefill_past=past)
        )
        assert table.iteration_s(b, ctx * b, chunks) == pytest.approx(exact, rel=5e-3)


def test_the_planner_and_the_prefill_pool_price_a_chunk_as_step_time_does_at_pp_2() -> None:
    # the queueing model's prompt costs (capacity._prepare) and a disaggregated prefill worker's pass
    # (disagg.prefill_side) are differences of the iterations step_time times: at pp > 1 the chunk stays
    # in one micro-batch there too (once they split its tokens evenly over the micro-batches)
    from costmodel.capacity import _prepare
    from costmodel.disagg import prefill_side
    from costmodel.serving import Lengths, Traffic

    engine = Engine.build("llama-3-8b", "h100-sxm", pp=2, max_batch_size=64, max_batched_tokens=8192)
    prep = _prepare(engine, Traffic(1.0, Lengths.fixed(1500), Lengths.fixed(64)))
    # one prompt of 1,500 tokens alone in an iteration of n decodes, n on the batch grid (the running
    # maximum over n, as _prepare takes it: the kernel models' cost may dip where a GEMM fills a tile)
    n = prep.n_grid
    marginal = engine.step_time(decode_batch=n, prefill_tokens=1500) - engine.step_time(decode_batch=n)
    np.testing.assert_allclose(prep.first_s[:, 0], np.maximum.accumulate(marginal), rtol=1e-9)
    side = prefill_side(engine, isl=np.array([1500, 6000]))
    for isl, alone in zip((1500, 6000), side.alone_s, strict=True):
        assert float(alone) == pytest.approx(float(engine.step_time(prefill_tokens=isl)), rel=1e-9)
    # k = 5 prompts of 1,500 tokens in one pass: their tokens split evenly over the two micro-batches
    # (the largest chunk is under half of them), with each prompt's own attention, the k prompts one packed
    # attention call: step_time's iteration of k x 1,500 prompt tokens from prompts of 1,500, cheaper than
    # k separate chunks (one launch per layer instead of k)
    k = float(side.prompts_per_pass[0])
    linear = engine.parts.linear_s(k * 1500.0)
    packed = engine.step_time(prefill_tokens=k * 1500.0, prompt_len=1500.0)
    assert float(side.pass_s[0]) == pytest.approx(float(packed), rel=1e-9)
    separate = linear + k * engine.parts.prefill_chunk_s(1500.0, 0.0)
    assert float(side.pass_s[0]) < float(separate)
