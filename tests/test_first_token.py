"""What delays a closed loop's first token beyond the kernels: the per-layer cost of an MLA prefill pass
and the iterations an overlapped scheduler lags by. Each is checked against a hand computation of where
it is paid and where it is not."""

from __future__ import annotations

import numpy as np
import pytest
from loops import assert_paid_where_prompts_are, llama_3_8b_h100

from costmodel.closed_loop import BOUNDS, LoopParams, closed_loop, loop_parts
from costmodel.errors import CostmodelError
from costmodel.serving import Engine


@pytest.fixture(scope="module")
def gqa() -> Engine:
    return llama_3_8b_h100()


@pytest.fixture(scope="module")
def mla() -> Engine:
    return Engine.build("deepseek-v3", "b200", tp=8, max_batch_size=64, max_batched_tokens=8192)


def test_only_mla_layers_pay_the_mla_prefill_cost(gqa: Engine, mla: Engine) -> None:
    """An MLA model counts all its layers, a grouped-query one none; the cost c x L_mla is paid like the
    per-layer host cost: on each of the prompt's chunks, and by the iterations that carry prompts."""
    kwargs = {"concurrency": np.array([1, 8, 64]), "isl": 2000, "osl": 200}
    assert loop_parts(gqa, **kwargs).mla_layers == 0
    parts = loop_parts(mla, **kwargs)
    assert parts.mla_layers == mla.model.n_layers == 61
    c = 1e-3
    base, more = LoopParams(), LoopParams(mla_prefill_layer_overhead_s=c)
    assert_paid_where_prompts_are(parts, base, more, extra=c * 61)
    # a grouped-query model is untouched by it
    g = loop_parts(gqa, **kwargs)
    np.testing.assert_array_equal(g.steady_ttft_s(more), g.steady_ttft_s(base))
    with pytest.raises(CostmodelError, match="mla_prefill_layer_overhead_s"):
        LoopParams(mla_prefill_layer_overhead_s=-1e-3)


def test_a_lagging_first_token_waits_whole_iterations(gqa: Engine) -> None:
    """A lag of k iterations adds k mean iterations (with their step overhead) to the steady TTFT and k of
    the wave's decode-only iterations to a wave's admitted prompts; the TPOT and the rates are unchanged,
    and k = 0 is the loop without it."""
    kwargs = {"concurrency": np.array([1, 4, 32]), "isl": 1024, "osl": 512}
    parts = loop_parts(gqa, **kwargs)
    base = LoopParams(step_overhead_s=0.001, request_overhead_s=0.01)
    lagged = LoopParams(step_overhead_s=0.001, request_overhead_s=0.01, first_token_lag_iterations=2.0)
    np.testing.assert_allclose(
        parts.steady_ttft_s(lagged) - parts.steady_ttft_s(base), 2.0 * parts.iteration_s(base), rtol=1e-12
    )
    # every client is admitted (R = C), so the wave's mean is its admitted prompts'
    assert parts.wave_decode_s is not None
    np.testing.assert_allclose(
        parts.wave_ttft_s(lagged) - parts.wave_ttft_s(base),
        2.0 * (parts.wave_decode_s + 0.001),
        rtol=1e-12,
    )
    a, b = closed_loop(gqa, **kwargs, params=base), closed_loop(gqa, **kwargs, params=lagged)
    np.testing.assert_array_equal(a.tpot_s, b.tpot_s)
    np.testing.assert_array_equal(a.requests_per_s, b.requests_per_s)
    assert np.all(b.ttft_s > a.ttft_s)


def test_the_lag_is_a_few_iterations_at_most() -> None:
    """Overlapped scheduling delays a first token by whole iterations: one launched ahead of the prompt
    and one before its token is read back; the fit may move it within [0, 3]."""
    assert BOUNDS["first_token_lag_iterations"] == (0.0, 3.0)
    with pytest.raises(CostmodelError, match="first_token_lag_iterations"):
        LoopParams(first_token_lag_iterations=-0.5)
