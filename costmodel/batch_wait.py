"""Batch waiting: an engine that holds new prompts back to prefill them together.

TensorRT-LLM's PyTorch executor can hold the context (prefill) requests it would schedule while
generation requests are running, until either ``batch_wait_timeout_iters`` iterations have passed since
it last let prompts through, or the iteration's scheduled tokens (the waiting prompts' tokens plus one per
decoding sequence) reach ``batch_wait_max_tokens_ratio`` x ``max_num_tokens``
(``PyExecutor._waiting_requests`` / ``_schedule`` in
https://github.com/NVIDIA/TensorRT-LLM/blob/main/tensorrt_llm/_torch/pyexecutor/py_executor.py; both
options are 0, off, by default). It
never holds when nothing decodes (an idle engine), nor with attention data parallelism. While a prompt is
held the engine keeps running decode-only iterations, so the prompt's first token comes that many
iterations later; the batch of prompts then shares one prefill.

Mean wait of a prompt in a steady stream of lambda prompts per iteration, T the timeout and n* the
prompts that meet the token threshold (the first prompt to arrive after a release opens a window):

- the window lasts W = min(T, (n* - 1) / lambda) iterations (the timeout, or until n* prompts wait);
- the prompt that opened it waits W; the lambda W that arrive during it wait W / 2 on average;
- so the mean is (W + lambda W^2 / 2) / (1 + lambda W): W when prompts are rare (lambda W << 1), tending
  to W / 2 when many arrive in a window; none when one prompt meets the threshold (n* <= 1);
- the window's 1 + lambda W prompts are released together and share one prefill iteration (as many as
  the token budget takes; ``_schedule`` lets every waiting prompt through once the wait ends), so the
  engine runs 1 + lambda W times fewer iterations carrying prompts, each with that many prompts: an
  iteration's fixed costs outside its kernels (launches of a pass run outside CUDA graphs) are paid once
  per release, not once per prompt (:func:`prompts_per_release`).

Assumptions: arrivals spread evenly over the window (a steady state; the benchmark's first wave arrives
before any sequence decodes and is never held); the held iterations do not slow the request rate
(they add at most T iterations to a cycle of osl ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BatchWait:
    """An engine's batch waiting (module docstring); arrays broadcast with the loop's rows."""

    timeout_iterations: npt.ArrayLike
    """Iterations a prompt may be held, T [-] (``batch_wait_timeout_iters``); 0 disables the wait."""
    max_tokens: npt.ArrayLike
    """Scheduled tokens that release the held prompts at once [tokens]
    (``batch_wait_max_tokens_ratio`` x ``max_num_tokens``); 0 or less: no token threshold."""

    def __post_init__(self) -> None:
        timeout = np.asarray(self.timeout_iterations, dtype=np.float64)
        if np.any(~np.isfinite(timeout) | (timeout < 0)):
            raise CostmodelError("timeout_iterations must be finite and >= 0 [iterations]")
        if np.any(~np.isfinite(np.asarray(self.max_tokens, dtype=np.float64))):
            raise CostmodelError("max_tokens must be finite [tokens]")


def window_iterations(
    wait: BatchWait, *, arrivals: npt.ArrayLike, isl: npt.ArrayLike, decodes: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """(W, lambda): the iterations a window opened by one prompt lasts, W = min(T, (n* - 1) / lambda)
    (0 where one prompt meets the threshold), and the arrivals per iteration, broadcast with it.

    ``arrivals``: prompts arriving per iteration, lambda [1/iteration], >= 0; ``isl``: tokens per prompt;
    ``decodes``: sequences decoding per iteration (each scheduled token counts towards the threshold)."""
    values = (wait.timeout_iterations, wait.max_tokens, arrivals, isl, decodes)
    T, threshold, rate, N_in, D = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in values))
    # prompts that meet the token threshold together with the decodes; no threshold: never met
    needed = np.where(threshold > 0, np.ceil(np.maximum(threshold - D, 0.0) / N_in), np.inf)
    filling = np.where(rate > 0, (needed - 1.0) / np.maximum(rate, 1e-300), np.inf)
    return np.asarray(np.where(needed <= 1, 0.0, np.minimum(T, filling))), np.asarray(rate)


def held_iterations(
    wait: BatchWait, *, arrivals: npt.ArrayLike, isl: npt.ArrayLike, decodes: npt.ArrayLike
) -> FloatArray:
    """Mean iterations a prompt is held by ``wait`` [-] (arguments of :func:`window_iterations`)."""
    window, rate = window_iterations(wait, arrivals=arrivals, isl=isl, decodes=decodes)
    return np.asarray((window + rate * window**2 / 2.0) / (1.0 + rate * window))


def prompts_per_release(
    wait: BatchWait, *, arrivals: npt.ArrayLike, isl: npt.ArrayLike, decodes: npt.ArrayLike
) -> FloatArray:
    """Mean prompts a window releases together into one prefill, 1 + lambda W [-] (the prompt that
    opened it and those that arrived during it; arguments of :func:`window_iterations`): the prompts of
    the steady state reach the engine in releases of this many, so it runs that many times fewer
    iterations carrying prompt tokens, each carrying that many prompts
    (:func:`costmodel.closed_loop.loop_parts`). 1 where nothing is held."""
    window, rate = window_iterations(wait, arrivals=arrivals, isl=isl, decodes=decodes)
    return np.asarray(1.0 + rate * window)
