"""Which benchmark harness measured a silicon row, and its own fixed cost per request.

The silicon sample's rows come from different benchmark harnesses (``silicon_data_source``): SemiAnalysis
InferenceX's runs (its per-model launch scripts and its ``benchmark_serving.py`` client,
:func:`validation.public.inferencex.is_inferencex`) and NVIDIA aiconfigurator's own collection
(``source_file=.../aic-auto-gap-analysis/...``: every H100 TensorRT-LLM aggregated row, 489, and 8 of the
B200 ones). A request's first token pays, beside the engine's iterations, the client's and the HTTP
front end's fixed work on it (:class:`costmodel.closed_loop.LoopParams`' ``request_overhead_s``), and that
work is the harness's, not the engine's: with every other parameter shared, the TensorRT-LLM rows want
about 13 ms per request from InferenceX's client and about 90 ms from aiconfigurator's collection (at
<= 8 clients, Qwen3-235B-FP8 on H100 measures 170-250 ms against a predicted 30-60 ms of kernels at any
prompt length, where InferenceX's gpt-oss-120b on B200 leaves 15-30 ms). What that collection's client
does differently is not stated by the rows; its cost is fitted, one figure per harness.

So the engine's fitted ``request_overhead_s`` is that of the reference harness (InferenceX's client, the
one every engine of the sample has rows from), and an engine of :data:`HARNESS_ENGINES` gets one more
fitted figure per other harness with calibration rows, ``harness_request_overhead_s`` in the serving
parameters file, which replaces it on that harness's rows. The library's planners use the engine's own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from validation.public.inferencex import is_inferencex

REFERENCE = "inferencex"
"""The harness whose request overhead is the engine's own."""
AICONFIGURATOR = "aiconfigurator"
"""NVIDIA aiconfigurator's gap-analysis collection."""
AICONFIGURATOR_MARK = "aic-auto-gap-analysis"
"""The path component of ``silicon_data_source`` that marks aiconfigurator's collection."""
HARNESS_ENGINES = ("trtllm",)
"""Engines whose rows of another harness get that harness's fitted request overhead. The harness is the
same for every engine; vLLM's and SGLang's rows keep one figure until their owners refit them with it
(docs/serving.md, "TensorRT-LLM's harnesses")."""
FIXED_LENGTHS = (AICONFIGURATOR,)
"""Harnesses whose every request has the same prompt and output lengths. aiconfigurator's benchmark
runner asks genai-perf for ``--synthetic-input-tokens-stddev 0`` and ``--output-tokens-stddev 0`` with
``min_tokens`` = ``max_tokens`` = osl and ``ignore_eos`` (``genai_perf_runner.run``,
https://github.com/ai-dynamo/aiconfigurator/blob/5e1618757742e5d185063dbcaa7de7325413f1db/src/aiconfigurator/eval/benchmarks/genai_perf_runner.py);
InferenceX draws its lengths from [0.8 L, L] (``validation.public.inferencex.RANGE_RATIO``)."""
TRAIN_ENGINES = ("trtllm",)
"""Engines whose rows of a fixed-length harness run as a train (``train`` of
:func:`costmodel.closed_loop.loop_parts`): TensorRT-LLM, whose overlapped scheduler is on by default and
which aiconfigurator's generator launches with ``disable_overlap_scheduler: false`` for an aggregated
worker, without chunked prefill and with ``max_num_tokens`` = batch + isl + 1500, one prompt per
iteration (``TRTLLMGenerator.generate``,
https://github.com/ai-dynamo/aiconfigurator/blob/77cd2507e57a88b09ad8e9d896113cdf3b5c634e/src/aiconfigurator/generator/backends/trtllm.py;
``extra_engine_args.1.0.0rc3.yaml.j2`` beside it). vLLM's scheduler does not overlap by default; its
rows of the harness were tried as a train and did not gain (docs/serving.md, session 11, h11-aich)."""
MEASURED_REQUESTS_PER_CLIENT = {AICONFIGURATOR: 10}
"""Measured requests per client of a harness whose measured phase starts with every client at once, n:
a share f = 1 / n of its requests then arrive in a wave of all clients (``wave_share`` of
:func:`costmodel.closed_loop.loop_parts`; docs/serving.md, "vLLM, session 13"). aiconfigurator's benchmark
runner asks genai-perf for ``--request-count`` 10 C and ``--warmup-request-count`` 2 C at ``--concurrency``
C (``genai_perf_runner.run``,
https://github.com/ai-dynamo/aiconfigurator/blob/5e1618757742e5d185063dbcaa7de7325413f1db/src/aiconfigurator/eval/benchmarks/genai_perf_runner.py),
and perf_analyzer, which genai-perf drives, runs the warm-up at the same concurrency, waits until every
warm-up request is done (``ConcurrencyManager::PerformWarmup`` calls ``WaitForWarmupAndCleanup``,
https://github.com/triton-inference-server/perf_analyzer/blob/11583244e37541e6401c3fca147cdd909f4a8051/src/concurrency_manager.cc),
then sets the measured concurrency and request count in one step (``InferenceProfiler::Profile``,
https://github.com/triton-inference-server/perf_analyzer/blob/069e403433e72d1f2fc9cc70d66bb0dd31ed40a1/src/inference_profiler.cc):
the engine is idle and the C clients send their first measured requests together."""
WAVE_SHARE_ENGINES = ("vllm",)
"""Engines whose rows of a harness of :data:`MEASURED_REQUESTS_PER_CLIENT` take its stated wave share
instead of the engine's fitted ``burst_fraction``: the first measured cycle is a wave and the later ones
stagger. The harness states its share for every engine; this engine scope was chosen on held-out TTFT
(docs/serving.md, "vLLM, session 13"): with the stated share, aiconfigurator's H100 SGLang rows went
13.0 / 38.9 -> 65.5 / 80.0 % (a reading offered after the fact: SGLang's prefill-first batches return a
wave's requests together, so every cycle stays a wave), and its TensorRT-LLM rows (a train,
:data:`TRAIN_ENGINES`) gained a little (18.2 -> 17.5) but left TensorRT-LLM's fitted share to B200's 8 rows,
so they keep the fitted share. InferenceX's runs state the same n for TensorRT-LLM only
(:data:`validation.public.inferencex.REQUESTS_PER_CLIENT`, session 11)."""
MIN_CALIBRATION_ROWS = 20
"""Calibration rows a harness needs for its own request overhead to be fitted; fewer: the reference's."""


def runs_as_train(backend: str, harness: pd.Series) -> bool:
    """Whether rows of ``backend`` measured by ``harness`` (:func:`row_harness` of one group's rows, all
    of them one harness) run as a train: an engine of :data:`TRAIN_ENGINES` under a harness of
    :data:`FIXED_LENGTHS`."""
    return backend in TRAIN_ENGINES and bool(harness.isin(FIXED_LENGTHS).all())


def stated_wave_share(backend: str, harness: pd.Series) -> float | None:
    """The share of the requests that arrive in a wave of all clients, f = 1 / n, for rows of ``backend``
    measured by ``harness`` (:func:`row_harness` of one group's rows, all of them one harness) where the
    harness states n (:data:`MEASURED_REQUESTS_PER_CLIENT`) and the engine takes it
    (:data:`WAVE_SHARE_ENGINES`); None otherwise (the engine's fitted ``burst_fraction`` applies)."""
    labels = harness.unique()
    if len(labels) != 1:
        # a grouping bug, not a row costmodel cannot express: not a ValueError, which the evaluation turns
        # into a row's "not expressible" reason
        raise RuntimeError(f"stated_wave_share: one group's rows mix the harnesses {sorted(labels)}")
    if backend not in WAVE_SHARE_ENGINES:
        return None
    n = MEASURED_REQUESTS_PER_CLIENT.get(str(labels[0]))
    return None if n is None else 1.0 / n


def row_harness(table: pd.DataFrame) -> pd.Series:
    """Per row: :data:`AICONFIGURATOR` for aiconfigurator's collection, else :data:`REFERENCE`
    (InferenceX's runs, and any other source, are predicted with the engine's own request overhead)."""
    source = table["silicon_data_source"].astype(str)
    aic = source.str.contains(AICONFIGURATOR_MARK, regex=False) & ~is_inferencex(table)
    return pd.Series(np.where(aic.to_numpy(bool), AICONFIGURATOR, REFERENCE), index=table.index, dtype=object)
