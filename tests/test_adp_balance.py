"""Attention-DP balancing (TensorRT-LLM's attention_dp_config enable_balance / timeout_iters /
batching_wait_iters): the window's moments against closed forms, the limits of the mean hold, and how it
enters the closed loop."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel.adp_balance import AdpBalance, held_iterations, window_moments
from costmodel.closed_loop import LoopParams, closed_loop, loop_parts
from costmodel.errors import CostmodelError
from costmodel.registry import load_hardware, load_model
from costmodel.serving import Engine
from costmodel.specs import Deployment, Workload
from validation.public.inferencex import SCRIPT_MODELS, launch_script
from validation.public.inferencex import attention_dp_balance as script_balance


def _min_moments_two_ranks(rate: float, timeout: float) -> tuple[float, float]:
    """E[min(tau, T)] and E[min(tau, T)^2] for one exponential tau of rate lambda (two ranks: the one with
    the first prompt and one other), integrated by hand: (1 - e^-lT) / l and 2 / l^2 (1 - e^-lT (1 + lT))."""
    e = np.exp(-rate * timeout)
    return (1 - e) / rate, 2 / rate**2 * (1 - e * (1 + rate * timeout))


def test_the_window_of_two_ranks_is_the_closed_form() -> None:
    """With B = 0 the window is min(tau, T); for two ranks its moments have a closed form."""
    for rate, timeout in ((0.01, 60.0), (0.2, 50.0), (1.0, 5.0)):
        mean, square = window_moments(AdpBalance(timeout, 0), arrivals=rate, ranks=2)
        expected = _min_moments_two_ranks(rate, timeout)
        assert float(mean) == pytest.approx(expected[0], rel=1e-10)
        assert float(square) == pytest.approx(expected[1], rel=1e-10)


def test_the_window_of_three_ranks_is_the_closed_form() -> None:
    """Three ranks: P(tau > t) = 1 - (1 - e^-lt)^2 = 2 e^-lt - e^-2lt, so E[min(tau, T)] =
    2 (1 - e^-lT) / l - (1 - e^-2lT) / (2 l); a batching wait B adds B x P(tau < T)."""
    rate, timeout, wait = 0.05, 60.0, 10.0
    mean, _ = window_moments(AdpBalance(timeout, wait), arrivals=rate, ranks=3)
    within = (1 - np.exp(-rate * timeout)) ** 2
    expected = 2 * (1 - np.exp(-rate * timeout)) / rate - (1 - np.exp(-2 * rate * timeout)) / (2 * rate)
    assert float(mean) == pytest.approx(expected + wait * within, rel=1e-10)


def test_one_rank_holds_nothing() -> None:
    assert float(held_iterations(AdpBalance(60, 10), arrivals=0.1, ranks=1)) == 0.0


def test_rare_prompts_wait_the_whole_timeout() -> None:
    """So rare that no other rank ever gets a prompt within T: every prompt opens a window and waits T."""
    held = held_iterations(AdpBalance(60, 0), arrivals=1e-9, ranks=8)
    assert float(held) == pytest.approx(60.0, rel=1e-6)


def test_frequent_prompts_wait_half_the_batching_wait() -> None:
    """So frequent that every rank has one at once: only the batching wait B holds them, B / 2 on average
    over the many that arrive during it; without it nothing is held."""
    assert float(held_iterations(AdpBalance(60, 10), arrivals=1e4, ranks=8)) == pytest.approx(5.0, rel=1e-3)
    assert float(held_iterations(AdpBalance(60, 0), arrivals=1e4, ranks=8)) == pytest.approx(0.0, abs=1e-3)


def test_more_ranks_keep_a_window_open_longer_and_a_longer_timeout_holds_longer() -> None:
    """Every rank must have a prompt: more ranks take longer to fill (the window grows; the mean hold per
    prompt need not, as more prompts share the window), and a longer timeout holds longer."""
    rate = 0.02
    windows = [float(window_moments(AdpBalance(60, 0), arrivals=rate, ranks=r)[0]) for r in (2, 4, 8, 16)]
    assert np.all(np.diff(windows) > 0)
    timeouts = np.array([10.0, 30.0, 60.0, 120.0])
    assert np.all(np.diff(held_iterations(AdpBalance(timeouts, 0), arrivals=rate, ranks=8)) > 0)


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(CostmodelError, match="timeout_iterations"):
        AdpBalance(-1)
    with pytest.raises(CostmodelError, match="batching_wait_iterations"):
        AdpBalance(10, float("nan"))
    with pytest.raises(CostmodelError, match="arrivals"):
        held_iterations(AdpBalance(10), arrivals=-1.0, ranks=4)


@pytest.fixture(scope="module")
def engine() -> Engine:
    """An attention-DP engine: a MoE model over 8 GPUs, each a rank."""
    model, hardware = load_model("qwen3-30b-a3b"), load_hardware("h100-sxm")
    return Engine(
        model,
        hardware,
        Workload(1, 1, 1),
        Deployment(tp=1, attention_dp=8, moe_ep=8),
        max_batch_size=8 * 32,
        max_batched_tokens=8 * 8192,
    )


def test_held_prompts_wait_in_decode_only_iterations(engine: Engine) -> None:
    """The hold adds its iterations, each a decode-only one plus the step overhead, to the steady TTFT
    alone; the wave (every rank's prompts arrive at once) and the TPOT keep theirs."""
    params = LoopParams(step_overhead_s=0.001, request_overhead_s=0.01, burst_fraction=0.2)
    kwargs = {"concurrency": np.array([16, 64, 256]), "isl": 1024, "osl": 1024}
    balance = AdpBalance(60, 0)
    plain = loop_parts(engine, **kwargs)
    held = loop_parts(engine, **kwargs, adp_balance=balance)
    assert held.held_iterations is not None
    expected = held_iterations(balance, arrivals=plain.requests_per_iteration, ranks=8)
    np.testing.assert_allclose(held.held_iterations, expected, rtol=1e-12)
    extra = expected * (plain.decode_only_s + params.step_overhead_s)
    np.testing.assert_allclose(held.steady_ttft_s(params) - plain.steady_ttft_s(params), extra, rtol=1e-12)
    np.testing.assert_allclose(held.wave_ttft_s(params), plain.wave_ttft_s(params), rtol=1e-12)
    a = closed_loop(engine, **kwargs, params=params)
    b = closed_loop(engine, **kwargs, params=params, adp_balance=balance)
    np.testing.assert_allclose(a.tpot_s, b.tpot_s, rtol=1e-12)
    assert np.all(b.ttft_s > a.ttft_s)


def test_a_stated_wave_share_replaces_the_engines() -> None:
    """``wave_share`` is the benchmark's own share of requests in a wave: a loop given it ignores the
    engine's fitted ``burst_fraction``, and equals a loop whose burst_fraction is that share."""
    plain = Engine.build("llama-3-8b", "h100-sxm", max_batch_size=64, max_batched_tokens=8192)
    kwargs = {"concurrency": np.array([4.0, 32.0]), "isl": 2048, "osl": 256}
    stated = closed_loop(plain, **kwargs, params=LoopParams(burst_fraction=0.9), wave_share=0.1)
    fitted = closed_loop(plain, **kwargs, params=LoopParams(burst_fraction=0.1))
    np.testing.assert_allclose(stated.ttft_s, fitted.ttft_s, rtol=1e-12)
    np.testing.assert_allclose(stated.tpot_s, fitted.tpot_s, rtol=1e-12)
    with pytest.raises(CostmodelError, match="wave_share"):
        closed_loop(plain, **kwargs, wave_share=1.5)


def test_inferencex_scripts_balance_only_their_attention_dp_runs() -> None:
    """The DeepSeek-R1 scripts balance with a 60-iteration timeout and no batching wait, gpt-oss's at
    TensorRT-LLM's defaults (50, 10); only with attention DP, only on InferenceX rows; the database dump's
    DeepSeek-V3 rows are those DeepSeek-R1 runs."""
    dsr1 = ("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp4")

    def attention_dp_balance(inferencex: bool, *key: str, attention_dp: int) -> tuple[int, int] | None:
        timeout, wait = script_balance(launch_script(inferencex, *key), attention_dp)
        return None if np.isnan(timeout) else (int(timeout), int(wait))

    assert attention_dp_balance(True, *dsr1, attention_dp=8) == (60, 0)
    assert attention_dp_balance(True, *dsr1, attention_dp=1) is None
    assert attention_dp_balance(False, *dsr1, attention_dp=8) is None
    assert attention_dp_balance(True, "trtllm", "openai/gpt-oss-120b", "b200_sxm", "fp4", attention_dp=4) == (
        50,
        10,
    )
    assert SCRIPT_MODELS[("trtllm", "deepseek-ai/DeepSeek-V3")] == dsr1[1]
    assert attention_dp_balance(
        True, "trtllm", "deepseek-ai/DeepSeek-V3", "b200_sxm", "fp8", attention_dp=8
    ) == (
        60,
        0,
    )
