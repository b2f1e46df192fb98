"""The closed-loop benchmark model: limits it must reach and orderings it must keep."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel.closed_loop import LoopParams, closed_loop, loop_parts
from costmodel.errors import CostmodelError
from costmodel.serving import Engine


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.build("llama-3-8b", "h100-sxm", max_batch_size=64, max_batched_tokens=8192)


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


def test_a_burst_of_prompts_is_prefilled_first_come_first_served(engine: Engine) -> None:
    """All 64 clients' prompts of 4096 tokens arriving at once, at (budget - D) prompt tokens per
    iteration: prompt j finishes after (j + 1) x 4096 / (budget - D) iterations, so the group waits on
    average (64 x 4096 / (budget - D) - chunks) / 2 full-budget iterations more than a lone prompt."""
    parts = loop_parts(engine, concurrency=64, isl=4096, osl=2048)
    extra = parts.result(LoopParams(burst_fraction=1.0)).ttft_s - parts.result(LoopParams()).ttft_s
    waits = (64 * 4096 / parts.prompt_budget - parts.chunks) / 2
    assert float(extra) == pytest.approx(float(waits * parts.full_budget_s), rel=1e-9)
    assert float(waits) > 10
