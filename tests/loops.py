"""Set-up the closed-loop tests share (test_closed_loop.py, test_first_token.py): the engine they drive,
and the hand computation of where a host cost per layer of a prompt-carrying iteration is paid."""

from __future__ import annotations

from functools import cache

import numpy as np

from costmodel.closed_loop import LoopParams, LoopParts
from costmodel.serving import Engine


@cache
def llama_3_8b_h100() -> Engine:
    """Llama-3-8B on one H100 SXM, at most 64 sequences and 8192 batched tokens an iteration (a frozen
    engine, built once for every module that drives it)."""
    return Engine.build("llama-3-8b", "h100-sxm", max_batch_size=64, max_batched_tokens=8192)


def assert_paid_where_prompts_are(parts: LoopParts, base: LoopParams, more: LoopParams, extra: float) -> None:
    """``more`` adds ``extra`` seconds to every iteration that carries prompt tokens and nothing to a
    decode-only one: the mean iteration grows by the share of iterations carrying a chunk times it, the
    steady TTFT by it for each of the prompt's chunks and for the half iteration and the queue (clients
    past one cycle's worth of requests) at the mean iteration."""
    np.testing.assert_allclose(
        parts.iteration_s(more) - parts.iteration_s(base), parts.carrying_fraction * extra, rtol=1e-9
    )
    clients = parts.concurrency / parts.ranks
    queued = np.maximum(clients / parts.requests_per_iteration - (parts.osl - 1) - 0.5 - parts.chunks, 0)
    np.testing.assert_allclose(
        parts.steady_ttft_s(more) - parts.steady_ttft_s(base),
        parts.chunks * extra + (0.5 + queued) * parts.carrying_fraction * extra,
        rtol=1e-9,
    )
