"""The serving replay on the CPU: batching is exact, the schedule is the simulator's, the records are there.

Timing accuracy is not asserted (the machine is noisy); what is asserted: a request served in a batch
(masked decodes, chunked prefill, preemption and recomputation) yields the same greedy tokens as the
reference decoder run on it alone; when every request is waiting from the start the schedule does not
depend on timing, and it is then iteration for iteration the one costmodel.simulate.serve plays; the CLI
writes the environment and finite errors for every metric.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from costmodel.serving import StepTable, Trace, Traffic
from costmodel.simulate import serve
from costmodel.specs import ModelProfile
from validation.kernels.decoder import Decoder
from validation.run import read_records
from validation.serving_replay import (
    METRICS,
    Replay,
    Setup,
    engine_for,
    main,
    poisson_trace,
    prompt_ids,
    replay,
)
from validation.suite import SMALL, SMALL_MOE

LIMITS = dict(max_batch_size=4, max_batched_tokens=48, block_size=16)  # prompts up to 96: chunked
TINY = Setup("llama-small", "fp32", 12, 40.0, 40, 0.5, 96, 8, 24, **LIMITS)  # type: ignore[arg-type]
TIGHT_KV = 16 * 11  # 11 blocks (1 kept free): growing sequences outgrow it and two are preempted
AMPLE_KV = 1 << 20


@torch.no_grad()
def decode_alone(decoder: Decoder, prompt: torch.Tensor, n: int) -> list[int]:
    """The oracle: one sequence through the reference decoder, whole prompt then greedy steps."""
    cache = decoder.empty_cache(1, 0, prompt.numel() + n)
    logits, cache = decoder(prompt[None], cache)  # [1, P, V]
    out = [int(logits[0, -1].argmax())]
    while len(out) < n:
        logits, cache = decoder(torch.tensor([[out[-1]]]), cache)
        out.append(int(logits[0, -1].argmax()))
    return out


def served(model: ModelProfile, trace: Trace, kv_tokens: int) -> tuple[Decoder, list[torch.Tensor], Replay]:
    torch.manual_seed(0)
    decoder = Decoder(model, layers=2).eval()
    prompts = prompt_ids(trace, decoder.profile.vocab_size, 0, "cpu")
    return decoder, prompts, replay(decoder, trace, prompts, kv_tokens=kv_tokens, **LIMITS)  # type: ignore[arg-type]


def burst_trace() -> Trace:
    """Twelve requests waiting from the start (the last 1 ns later: a trace needs a rate), four slots."""
    base = poisson_trace(TINY)
    arrival = np.zeros(len(base))
    arrival[-1] = 1e-9
    return Trace(arrival, base.prompt_tokens, base.output_tokens)


Burst = tuple[int, Decoder, list[torch.Tensor], Replay]


@pytest.fixture(scope="module", params=[TIGHT_KV, AMPLE_KV], ids=["kv-bound", "slot-bound"])
def burst(request: pytest.FixtureRequest) -> Burst:
    return (request.param, *served(SMALL, burst_trace(), request.param))


def test_batched_equals_alone(burst: Burst) -> None:
    """Masked batched decodes, chunked prefill next to decodes, and (KV-bound) preemption with
    recomputation all give the tokens of the request decoded alone."""
    kv_tokens, decoder, prompts, result = burst
    its = result.iterations
    assert max(it.decodes for it in its) > 1  # decodes really were batched
    assert any(it.decodes and it.chunks for it in its)  # prompt chunks rode along with decodes
    assert any(past > 0 for it in its for _, past in it.chunks)  # a prompt was split over iterations
    assert (result.preemptions.sum() > 0) == (kv_tokens == TIGHT_KV)  # preempted, then recomputed
    for i, prompt in enumerate(prompts):
        assert result.generated[i] == decode_alone(decoder, prompt, int(result.trace.output_tokens[i]))


@pytest.mark.parametrize(
    "model",
    [
        SMALL.model_copy(update={"sliding_window": 12, "position": "learned", "norm": "layernorm"}),
        SMALL_MOE,
    ],
    ids=["window-learned-positions", "moe"],
)
def test_batched_equals_alone_other_models(model: ModelProfile) -> None:
    trace = poisson_trace(TINY)  # arrivals in real time: admissions while others decode
    decoder, prompts, result = served(model, trace, 1 << 20)
    for i, prompt in enumerate(prompts):
        assert result.generated[i] == decode_alone(decoder, prompt, int(trace.output_tokens[i]))


def test_schedule_is_the_simulators(burst: Burst) -> None:
    """With everything queued at the start, the iterations' contents depend on the policy alone."""
    kv_tokens, _, _, result = burst
    trace = result.trace
    max_len = int((trace.prompt_tokens + trace.output_tokens).max())
    engine = engine_for(replace(TINY, kv_tokens=kv_tokens), "cpu", max_len)
    sim = serve(engine, Traffic.from_trace(trace), warmup_fraction=0.0, drain_factor=1e12)
    assert sim.iterations == len(result.iterations)
    np.testing.assert_array_equal(sim.preemptions, result.preemptions)
    # the same requests get their first / last token in the same iteration: equal groups in equal order
    for measured, simulated in ((result.first_token_s, sim.first_token_s), (result.finish_s, sim.finish_s)):
        np.testing.assert_array_equal(
            np.unique(measured, return_inverse=True)[1], np.unique(simulated, return_inverse=True)[1]
        )
    # and the step-time table prices exactly the measured iterations' contents the simulator ran
    table = StepTable(engine)
    predicted = sum(
        table.iteration_s(it.decodes, it.context_tokens, list(it.chunks)) for it in result.iterations
    )
    assert predicted == pytest.approx(float(np.nanmax(sim.finish_s)), rel=1e-9)


def test_cli_records(tmp_path: Path) -> None:
    out = tmp_path / "serving.jsonl"
    args = ["--device", "cpu", "--hardware", "cpu", "--out", str(out), "--requests", "10", "--rate", "40",
            "--prompt-mean", "24", "--prompt-max", "64", "--output-mean", "8", "--output-max", "24",
            "--max-batch-size", "4", "--max-batched-tokens", "48"]  # fmt: skip
    main(args)
    main(args)  # a second run appends its own environment record
    records = read_records(out)
    kinds = [r["record"] for r in records]
    one_run = ["environment", "replay"] + ["metric"] * (len(METRICS) + 1) + ["request"] * 10
    assert kinds == one_run * 2
    env, settings = records[0], records[1]
    assert {"device_name", "torch_version", "costmodel_version", "git_revision", "date"} <= set(env)
    assert env["family"] == settings["family"] == "serving_replay"
    assert settings["hardware_profile"] == "cpu"
    assert settings["completed_fraction"] == settings["predicted_completed_fraction"] == 1.0
    run = [r for r in records if r["run_id"] == env["run_id"]]
    metrics = {r["metric"]: r for r in run if r["record"] == "metric"}
    assert set(metrics) == {m for m, _ in METRICS} | {"busy_time"}
    for m in metrics.values():
        assert 0 < m["measured"] < math.inf
        assert 0 < m["predicted"] < math.inf
        assert math.isfinite(m["rel_error"])
        assert m["rel_error"] == pytest.approx((m["predicted"] - m["measured"]) / m["measured"])
    if settings["analytic_stable"]:
        assert math.isfinite(metrics["ttft_p90"]["analytic_rel_error"])
    for r in (r for r in run if r["record"] == "request"):
        assert r["generated_tokens"] == r["output_tokens"]
        assert 0 < r["ttft_s"] <= r["e2e_s"]
        assert 0 < r["predicted_ttft_s"] <= r["predicted_e2e_s"]
        assert (r["tpot_s"] is None) == (r["output_tokens"] == 1)
