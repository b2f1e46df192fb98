"""Batch waiting (TensorRT-LLM's batch_wait_timeout_iters / batch_wait_max_tokens_ratio): the limits of
the mean hold, a hand computation, and how it enters the closed loop."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel.batch_wait import BatchWait, held_iterations, prompts_per_release
from costmodel.closed_loop import LoopParams, closed_loop, loop_parts
from costmodel.errors import CostmodelError
from costmodel.serving import Engine
from validation.public.inferencex import launch_script, scheduler_flags


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.build("llama-3-8b", "h100-sxm", max_batch_size=64, max_batched_tokens=8192)


def test_a_lone_prompt_waits_the_whole_timeout() -> None:
    """Prompts so rare that none arrives during another's window: each waits the timeout T."""
    wait = BatchWait(timeout_iterations=20, max_tokens=14746)
    assert float(held_iterations(wait, arrivals=1e-9, isl=1024, decodes=4)) == pytest.approx(20.0, rel=1e-6)


def test_many_arrivals_in_a_window_wait_half_of_it() -> None:
    """Without a token threshold and with many prompts per window, the mean tends to T / 2 from above."""
    wait = BatchWait(timeout_iterations=40, max_tokens=0)
    held = held_iterations(wait, arrivals=np.array([1.0, 10.0, 1e4]), isl=1024, decodes=64)
    assert np.all(held > 20.0)
    assert float(held[-1]) == pytest.approx(20.0, rel=1e-3)


def test_one_prompt_that_meets_the_threshold_is_never_held() -> None:
    """A prompt whose tokens with the decodes reach the threshold goes at once, as does any timeout 0."""
    assert float(held_iterations(BatchWait(20, 2000), arrivals=0.01, isl=2048, decodes=8)) == 0.0
    assert float(held_iterations(BatchWait(0, 14746), arrivals=0.01, isl=1024, decodes=8)) == 0.0


def test_hand_computation() -> None:
    """T = 20, threshold 0.9 x 16384 = 14746 tokens, isl 1024, 4 decodes, 0.01 prompts per iteration:
    n* = ceil((14746 - 4) / 1024) = 15 prompts would take 14 / 0.01 = 1400 iterations, so the window is
    the timeout W = 20, and the mean is (20 + 0.01 x 20^2 / 2) / (1 + 0.01 x 20) = 22 / 1.2."""
    wait = BatchWait(timeout_iterations=20, max_tokens=0.9 * 16384)
    assert float(held_iterations(wait, arrivals=0.01, isl=1024, decodes=4)) == pytest.approx(
        22 / 1.2, rel=1e-12
    )
    # the threshold closes the window first: n* = ceil((2048 - 48) / 1024) = 2, one more prompt at 0.1
    # per iteration takes 10 iterations: (10 + 0.1 x 100 / 2) / (1 + 1) = 7.5
    wait = BatchWait(timeout_iterations=20, max_tokens=2048)
    assert float(held_iterations(wait, arrivals=0.1, isl=1024, decodes=48)) == pytest.approx(7.5, rel=1e-12)


def test_the_hold_grows_with_the_timeout_and_shrinks_with_arrivals() -> None:
    timeouts = np.array([0, 1, 5, 10, 20, 40, 80])
    held = held_iterations(BatchWait(timeouts, 0.8 * 8192), arrivals=0.05, isl=1024, decodes=32)
    assert np.all(np.diff(held) >= 0)
    assert np.all(held <= timeouts)
    arrivals = np.array([1e-4, 1e-3, 0.01, 0.05, 0.1, 0.5, 2.0])
    held = held_iterations(BatchWait(40, 0.8 * 8192), arrivals=arrivals, isl=1024, decodes=32)
    assert np.all(np.diff(held) <= 1e-12)


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(CostmodelError, match="timeout_iterations"):
        BatchWait(timeout_iterations=-1, max_tokens=100)
    with pytest.raises(CostmodelError, match="max_tokens"):
        BatchWait(timeout_iterations=1, max_tokens=float("nan"))


def test_a_window_releases_its_opener_and_its_arrivals_together() -> None:
    """Hand computation: T = 20, no threshold met, 0.05 prompts per iteration: the window lasts 20
    iterations and releases 1 + 0.05 x 20 = 2 prompts; a threshold met by one prompt releases 1; rare
    prompts are released alone."""
    wait = BatchWait(timeout_iterations=20, max_tokens=0.9 * 16384)
    assert float(prompts_per_release(wait, arrivals=0.05, isl=1024, decodes=4)) == pytest.approx(
        2.0, rel=1e-12
    )
    assert float(prompts_per_release(BatchWait(20, 2000), arrivals=0.05, isl=2048, decodes=8)) == 1.0
    assert float(prompts_per_release(wait, arrivals=1e-9, isl=1024, decodes=4)) == pytest.approx(
        1.0, abs=1e-7
    )


def test_held_prompts_wait_in_decode_only_iterations_then_prefill_together(engine: Engine) -> None:
    """The hold adds its iterations, each a decode-only one plus the step overhead, to the steady TTFT; the
    released prompts share one iteration, so iterations carrying prompts are 1 + lambda W times fewer and
    each carries that many times the tokens (the prompt work per iteration is unchanged), and a fixed cost
    per prompt-carrying iteration is paid that many times less often. The first cycle's wave (nothing
    decodes yet, so nothing is held) keeps its TTFT."""
    params = LoopParams(step_overhead_s=0.002, request_overhead_s=0.01, burst_fraction=0.3)
    kwargs = {"concurrency": np.array([4, 16, 64]), "isl": 1024, "osl": 512}
    wait = BatchWait(timeout_iterations=20, max_tokens=0.9 * 8192)
    plain = loop_parts(engine, **kwargs)
    held = loop_parts(engine, **kwargs, batch_wait=wait)
    assert held.held_iterations is not None
    together = prompts_per_release(wait, arrivals=held.requests_per_iteration, isl=1024, decodes=held.decodes)
    assert np.all(together > 1.0)
    np.testing.assert_allclose(held.carrying_fraction * together, plain.carrying_fraction, rtol=1e-9)
    # a fixed cost per prompt-carrying iteration (host launches per layer) is paid 1 + lambda W times less
    layer = LoopParams(prefill_layer_overhead_s=0.001)
    for parts, share in ((plain, 1.0), (held, together)):
        paid = parts.iteration_s(layer) - parts.iteration_s(LoopParams())
        np.testing.assert_allclose(
            paid, plain.carrying_fraction / share * 0.001 * engine.model.n_layers, rtol=1e-9
        )
    # each held prompt's own prefill iteration is the release's, longer than a lone prompt's
    assert np.all(held.with_prompt_s > plain.with_prompt_s)
    waited = held.held_iterations * (held.decode_only_s + params.step_overhead_s)
    assert np.all(held.steady_ttft_s(params) - plain.steady_ttft_s(params) >= waited * (1 - 1e-9))
    np.testing.assert_allclose(held.wave_ttft_s(params), plain.wave_ttft_s(params), rtol=1e-12)
    a, b = (
        closed_loop(engine, **kwargs, params=params),
        closed_loop(engine, **kwargs, params=params, batch_wait=wait),
    )
    assert np.all(b.ttft_s > a.ttft_s)


def test_inferencex_scripts_hold_only_where_they_set_the_flags() -> None:
    """The Llama-3.1-70B fp8 script: 1k/1k below tp 8 holds 20 iterations or 0.9 x 16384 tokens; tp 8,
    other lengths, attention DP and rows of other sources keep TensorRT-LLM's defaults (no hold)."""
    row = {"isl": 1024, "osl": 1024, "tp": 4, "attention_dp": 1, "concurrency": 4.0}
    llama = ("trtllm", "meta-llama/Llama-3.1-70B", "b200_sxm", "fp8")

    def script_flags(inferencex: bool, *key: str, **run: float) -> tuple[float, float, float]:
        flags = scheduler_flags(launch_script(inferencex, *key), **run)
        return float(flags[0]), float(flags[1]), float(flags[2])

    assert script_flags(True, *llama, **row) == (16384, 20.0, 0.9 * 16384)
    assert script_flags(True, *llama, **{**row, "tp": 8}) == (16384, 0.0, 0.0)
    assert script_flags(True, *llama, **{**row, "osl": 8192}) == (16384, 0.0, 0.0)
    assert script_flags(True, *llama, **{**row, "attention_dp": 4}) == (16384, 0.0, 0.0)
    assert script_flags(False, *llama, **row) == (0.0, 0.0, 0.0)
    dsr1 = ("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp8")
    assert script_flags(True, *dsr1, **{**row, "isl": 8192, "osl": 1024, "concurrency": 4.0})[0] == 8320
    assert script_flags(True, *dsr1, **{**row, "tp": 8, "concurrency": 64.0}) == (8192, 40.0, 0.8 * 8192)
