"""A continuous-batching (iteration-level) serving loop on the reference decoder, replaying a request trace
in real time, against costmodel's serving simulator and analytic model for the same trace.

The loop plays the scheduler of :class:`costmodel.serving.Engine` as :func:`costmodel.simulate.serve`
simulates it, so the two runs differ only in where an iteration's time comes from (a wall clock here,
the roofline step time there):

- **Admission**, at the start of each iteration: requests that have arrived wait in a FCFS queue and are
  admitted in order while fewer than ``max_batch_size`` run and their KV blocks fit (blocks of
  ``block_size`` tokens for the prompt plus what was already generated, with vLLM's 1 % free-block
  watermark). A decode that needs a block when none is free preempts the most recently admitted
  sequence, whose tokens are prefilled again when it is readmitted (vLLM's recomputation).
- **One forward pass per iteration** carries one token for every running sequence whose prompt is done
  (the decodes) and, with what is left of the token budget ``max_batched_tokens``, prompt chunks of the
  admitted sequences in admission order (chunked prefill; Agrawal et al. 2024, Sarathi-Serve §4). The
  linear layers run once over all the iteration's tokens; attention runs per part: the decodes as one
  batch against the batched KV cache with a per-row mask (rows hold different lengths), each chunk
  against its own sequence's cache with the causal mask. This is the pass
  :func:`costmodel.serving.step_time` models.
- **Tokens** are greedy. A prompt's first token comes from its last chunk and is delivered, like every
  token, when the iteration ends (after ``torch.cuda.synchronize()`` on a GPU); TTFT = that time minus
  the arrival. A sequence is evicted in the iteration that produces its last token.
- **KV cache**: one preallocated buffer of ``max_batch_size`` rows x the longest request's tokens per
  layer ([rows, Hkv, max_len, hd]) whose first rows are the decoding sequences (a finished row is
  filled with the last one, so the decode batch is a contiguous slice); a sequence being prefilled
  writes into a buffer of its own, copied into the next free row when its prompt is done. The KV
  budget is enforced by block accounting (what a paged engine would hold), not by the buffer.

The trace is replayed in real time: a request is visible to the scheduler once the wall clock since the
start passes its arrival time; an idle engine sleeps until the next arrival. Attention models only
(MHA/GQA/MQA, sliding windows, MoE MLPs); not MLA or SSMs.

The comparison runs :func:`costmodel.simulate.serve` on the same trace with an :class:`Engine` for the
same model, dtype and limits on a hardware profile (a name or a YAML path, e.g. a calibrated one), and
:func:`costmodel.capacity.analyze` on the trace's rate and length distributions (steady state, Poisson).
``busy_time`` compares the measured iterations' total time with the simulator's step time for the same
iterations (the same decodes, contexts and chunks), which isolates the step-time model from the
queueing. Records go to a JSON Lines file: the environment, the run's settings and totals, one record per
metric (measured, predicted, relative error), one per request.

    python -m validation.serving_replay --device cpu --hardware validation/results/cpu-calibrated.yaml \\
        --out /tmp/serving.jsonl
    python -m validation.serving_replay --device cuda --model llama-3-8b --requests 200 \\
        --out $OUT/serving.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

import costmodel
from costmodel.capacity import analyze
from costmodel.registry import load_hardware
from costmodel.serving import Engine, Lengths, StepTable, Trace, Traffic, load_trace
from costmodel.simulate import ServeResult, serve
from costmodel.specs import ModelProfile
from validation.kernels.decoder import Attention, Decoder, attention_mask
from validation.measure import environment, prefer_flash_attention
from validation.run import default_hardware, read_records
from validation.suite import SMALL, SMALL_MOE, TORCH_DTYPES, _allocating

FAMILY = "serving_replay"
MODELS = {"llama-small": SMALL, "moe-small": SMALL_MOE}
"""The validation's own scaled-down profiles; any other name is a costmodel profile."""


@dataclass(frozen=True)
class Setup:
    """What one replay serves and with which scheduler limits."""

    model: str
    dtype: str  # "fp32", "bf16" or "fp16"
    requests: int
    rate_per_s: float  # Poisson arrival rate [1/s]
    prompt_mean: float  # lognormal prompt lengths: mean [tokens] ...
    prompt_sigma: float  # ... sigma of the log [-] ...
    prompt_max: int  # ... capped at [tokens]
    output_mean: float  # geometric output lengths: mean [tokens] ...
    output_max: int  # ... capped at [tokens]
    max_batch_size: int  # running sequences at most [-]
    max_batched_tokens: int  # tokens of one iteration, decodes and prompt chunks [tokens]
    kv_tokens: int | None = None  # KV budget [tokens]; None: what the hardware profile holds
    block_size: int = 16  # KV block [tokens]
    seed: int = 0


PRESETS = {
    # about 10 s on two CPU cores, at about half of what the loop serves there
    "cpu": Setup("llama-small", "fp32", 32, 4.0, 64, 0.5, 256, 16, 64, 8, 256),
    # Llama-3-8B at random init on one H100 / H200: docs/serving.md's scenario A, shorter and lighter
    "gpu": Setup("llama-3-8b", "bf16", 200, 10.0, 512, 0.8, 2048, 128, 512, 64, 2048),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_profile(name: str) -> ModelProfile:
    """A validation profile (``llama-small``, ``moe-small``) or a costmodel model by name or path."""
    return MODELS.get(name) or costmodel.load_model(name)


def poisson_trace(setup: Setup) -> Trace:
    """``setup.requests`` Poisson arrivals (the first at 0 s), lognormal prompts, geometric outputs."""
    rng = np.random.default_rng(setup.seed)
    prompt = Lengths.lognormal(setup.prompt_mean, setup.prompt_sigma, max_tokens=setup.prompt_max)
    output = Lengths.geometric(setup.output_mean, max_tokens=setup.output_max)
    gaps = rng.exponential(1.0 / setup.rate_per_s, setup.requests)
    arrival = np.cumsum(gaps) - gaps[0]
    n = setup.requests
    return Trace(arrival, prompt.sample(rng, n), output.sample(rng, n), source="poisson")


# ----------------------------------------------------------------------------------------------------
# The forward pass of one iteration
# ----------------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    """Prompt tokens of one sequence prefilled in this iteration, written into its own cache
    (per layer (K, V) of [1, Hkv, capacity, hd]) after ``past`` tokens."""

    tokens: Tensor  # [k]
    past: int
    cache: list[tuple[Tensor, Tensor]]


def _attention_parts(
    attn: Attention,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    kv: tuple[Tensor, Tensor],
    lengths: Tensor,
    mask: Tensor,
    chunks: Sequence[Chunk],
    layer: int,
    window: int | None,
) -> Tensor:
    """Attention of the decodes (the first b tokens, their rows' caches ``kv`` holding ``lengths``
    tokens, ``mask`` [b, 1, 1, L]) and of each chunk; q/k/v are [T, heads x hd]."""
    H, Hkv, hd = attn.H, attn.Hkv, attn.hd
    b, gqa = lengths.shape[0], Hkv != H
    out = []
    if b:
        K, V = kv
        row = torch.arange(b, device=q.device)
        K[row, :, lengths] = k[:b].view(b, Hkv, hd)  # each row's new token at its own length
        V[row, :, lengths] = v[:b].view(b, Hkv, hd)
        L = mask.shape[-1]
        y = F.scaled_dot_product_attention(
            q[:b].view(b, 1, H, hd).transpose(1, 2),  # [b, H, 1, hd]
            K[:b, :, :L],  # [b, Hkv, L, hd]
            V[:b, :, :L],
            attn_mask=mask,  # [b, 1, 1, L]
            enable_gqa=gqa,
        )
        out.append(y.reshape(b, H * hd))
    start = b
    for c in chunks:
        n, p = c.tokens.shape[0], c.past
        Kc, Vc = c.cache[layer]
        Kc[:, :, p : p + n] = k[start : start + n].view(1, n, Hkv, hd).transpose(1, 2)
        Vc[:, :, p : p + n] = v[start : start + n].view(1, n, Hkv, hd).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q[start : start + n].view(1, n, H, hd).transpose(1, 2),  # [1, H, n, hd]
            Kc[:, :, : p + n],  # [1, Hkv, p + n, hd]
            Vc[:, :, : p + n],
            attn_mask=attention_mask(n, p, window, q.device),  # [n, p + n]
            enable_gqa=gqa,
        )
        out.append(y.transpose(1, 2).reshape(n, H * hd))
        start += n
    return torch.cat(out)  # [T, H * hd]


def iteration_forward(
    decoder: Decoder,
    tokens: Tensor,
    lengths: list[int],
    cache: list[tuple[Tensor, Tensor]],
    chunks: Sequence[Chunk],
) -> Tensor:
    """Logits [b + m, V] of one iteration: ``tokens`` [b] decoded by rows 0..b-1 of ``cache`` (per layer
    (K, V) of [rows, Hkv, max_len, hd]), which hold ``lengths`` tokens each, then the last token of
    each of the m ``chunks``. Each layer is :class:`validation.kernels.decoder.Layer`'s pre-norm block
    with the tokens of all sequences side by side ([T, d], T = b + chunk tokens) and attention per part.
    Index tensors are built before the first layer: a host-to-device copy waits for the queued work."""
    device = tokens.device
    b = tokens.shape[0]
    sizes = [c.tokens.shape[0] for c in chunks]
    last = [b - 1 + sum(sizes[: j + 1]) for j in range(len(chunks))]
    rows = torch.tensor(list(range(b)) + last, dtype=torch.long, device=device)  # tokens with logits
    past = torch.tensor(lengths, dtype=torch.long, device=device)  # [b]
    keys = torch.arange(max(lengths, default=-1) + 1, device=device)[None, :]  # [1, L]
    visible = keys <= past[:, None]  # [b, L]: a row sees its own past and the new token
    if decoder.window is not None:
        visible &= keys > past[:, None] - decoder.window
    mask = visible[:, None, None, :]  # [b, 1, 1, L]
    ids = torch.cat([tokens, *(c.tokens for c in chunks)])  # [T]
    x = decoder.embed_tokens(ids)  # [T, d]
    if decoder.embed_positions is not None:
        pos = [
            past,
            *(torch.arange(c.past, c.past + n, device=device) for c, n in zip(chunks, sizes, strict=True)),
        ]
        x = x + decoder.embed_positions(torch.cat(pos))
    for i, layer in enumerate(decoder.layers):
        attn = layer.attn
        h = layer.attn_norm(x)
        q, k, v = attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)  # [T, H hd], [T, Hkv hd] x 2
        y = _attention_parts(attn, q, k, v, cache[i], past, mask, chunks, i, decoder.window)
        x = x + attn.o_proj(y)
        x = x + layer.mlp(layer.mlp_norm(x))
    return decoder.lm_head(decoder.final_norm(x[rows]))  # [b + m, V]


# ----------------------------------------------------------------------------------------------------
# The serving loop
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Iteration:
    """One iteration as run: when, and what the forward pass carried."""

    start_s: float  # since the replay's start [s]
    end_s: float
    decodes: int  # sequences that decoded one token [-]
    context_tokens: int  # their cached tokens, summed [tokens]
    chunks: tuple[tuple[int, int], ...]  # (tokens, past) of each prompt chunk
    produced: int  # tokens delivered [-]


@dataclass(frozen=True)
class Replay:
    """What one replay measured; per-request arrays in trace order, times since the start [s]."""

    trace: Trace
    first_token_s: np.ndarray
    finish_s: np.ndarray
    preemptions: np.ndarray
    generated: list[list[int]]  # greedy tokens of each request
    iterations: list[Iteration]
    wall_s: float  # the whole replay, from the first arrival to the last token's bookkeeping [s]

    def as_serve_result(self) -> ServeResult:
        """The measurement as the simulator's result type (whole trace, no warm-up window), so that both
        are summarised by the same code."""
        horizon = float(self.trace.arrival_s[-1])
        tokens, busy = 0, 0.0
        for it in self.iterations:  # the simulator's window statistics over [0, last arrival]
            busy += max(min(it.end_s, horizon) - it.start_s, 0.0) * (it.decodes + len(it.chunks))
            tokens += it.produced if it.end_s <= horizon else 0
        span = max(horizon, 1e-12)
        return ServeResult(
            arrival_s=self.trace.arrival_s,
            first_token_s=self.first_token_s,
            finish_s=self.finish_s,
            prompt_tokens=self.trace.prompt_tokens,
            output_tokens=self.trace.output_tokens,
            preemptions=self.preemptions,
            warmup_s=0.0,
            horizon_s=horizon,
            output_tokens_per_s=tokens / span,
            mean_batch_size=busy / span,
            iterations=len(self.iterations),
        )


class _Rows:
    """The batched decode cache: per layer (K, V) of [rows, Hkv, max_len, hd]; ``ids[j]`` is the request
    in row j. Rows 0..len(ids)-1 are in use, so a decode step attends over a contiguous slice."""

    def __init__(self, decoder: Decoder, rows: int, max_len: int, dtype: torch.dtype, device: str) -> None:
        # zeros, not empty: masked positions are multiplied by 0, and 0 * NaN would leak into the output
        self.kv = [
            (
                torch.zeros(rows, a.Hkv, max_len, a.hd, dtype=dtype, device=device),
                torch.zeros(rows, a.Hkv, max_len, a.hd, dtype=dtype, device=device),
            )
            for a in (layer.attn for layer in decoder.layers)
        ]
        self.ids: list[int] = []

    def add(self, request: int, cache: list[tuple[Tensor, Tensor]], length: int) -> None:
        """Copy a prefilled sequence's ``length`` cached tokens into the next row."""
        j = len(self.ids)
        for (K, V), (k, v) in zip(self.kv, cache, strict=True):
            K[j, :, :length] = k[0, :, :length]
            V[j, :, :length] = v[0, :, :length]
        self.ids.append(request)

    def remove(self, dead: set[int], length: dict[int, int]) -> None:
        """Drop the rows of ``dead`` requests, filling each hole with the last live row."""
        ids = self.ids
        while ids and ids[-1] in dead:
            ids.pop()
        j = 0
        while j < len(ids):
            if ids[j] in dead:
                moved = ids.pop()
                n = length[moved]
                for K, V in self.kv:
                    K[j, :, :n] = K[len(ids), :, :n]
                    V[j, :, :n] = V[len(ids), :, :n]
                ids[j] = moved
                while ids and ids[-1] in dead:
                    ids.pop()
            j += 1


def kv_blocks(kv_tokens: int, block_size: int) -> tuple[int, int]:
    """(blocks, watermark): the KV budget in blocks, and the free blocks admission keeps (1 %, >= 1)."""
    blocks = kv_tokens // block_size
    return blocks, max(1, blocks // 100)


@torch.no_grad()
def replay(
    decoder: Decoder,
    trace: Trace,
    prompts: Sequence[Tensor],
    *,
    max_batch_size: int,
    max_batched_tokens: int,
    kv_tokens: int,
    block_size: int = 16,
    device: str = "cpu",
) -> Replay:
    """Serve ``trace`` (prompt token ids in ``prompts``, [P_i] each, on ``device``) with ``decoder``
    under the policy of the module docstring, in real time; greedy tokens."""
    if not all(isinstance(layer.attn, Attention) for layer in decoder.layers):
        raise ValueError("the replay covers standard attention (MHA/GQA/MQA), not MLA")
    B, C, bs = max_batch_size, max_batched_tokens, block_size
    if C < B:
        raise ValueError(f"max_batched_tokens ({C}) must be >= max_batch_size ({B})")
    P = [int(p) for p in trace.prompt_tokens]
    N = [int(x) for x in trace.output_tokens]
    arrival = [float(a) for a in trace.arrival_s]
    n = len(P)
    total_blocks, watermark = kv_blocks(kv_tokens, bs)
    if -(-max(p + x for p, x in zip(P, N, strict=True)) // bs) + watermark > total_blocks:
        raise ValueError(f"a KV budget of {kv_tokens} tokens cannot hold the longest request")
    dtype = next(decoder.parameters()).dtype
    rows = _Rows(decoder, B, max(p + x for p, x in zip(P, N, strict=True)), dtype, device)
    out = torch.zeros(n, max(N), dtype=torch.long, device=device)  # generated tokens [n, max N]
    gen, target, done, held = [0] * n, [0] * n, [0] * n, [0] * n
    first, finish, preempt = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=np.int64)
    staging: dict[int, tuple[Tensor, list[tuple[Tensor, Tensor]]]] = {}  # prefilling: tokens, cache
    running: list[int] = []  # admission order
    waiting: deque[int] = deque()
    free, nxt = total_blocks, 0
    iterations: list[Iteration] = []

    def cached(i: int) -> int:  # tokens in a decoding sequence's cache (its last token is not yet)
        return P[i] + gen[i] - 1

    def own_cache(tokens: int) -> list[tuple[Tensor, Tensor]]:
        return [
            (
                torch.empty(1, a.Hkv, tokens, a.hd, dtype=dtype, device=device),
                torch.empty(1, a.Hkv, tokens, a.hd, dtype=dtype, device=device),
            )
            for a in (layer.attn for layer in decoder.layers)
        ]

    _sync(device)
    t0 = time.perf_counter()
    while True:
        t_start = time.perf_counter() - t0
        while nxt < n and arrival[nxt] <= t_start:
            waiting.append(nxt)
            nxt += 1
        if not running and not waiting:
            if nxt >= n:
                break
            time.sleep(max(arrival[nxt] - t_start, 0.0))
            continue
        while waiting and len(running) < B:  # FCFS admission while the batch limit and the blocks allow
            i = waiting[0]
            tokens = P[i] + gen[i]
            need = -(-tokens // bs)
            if free - need < watermark:
                break
            free -= need
            held[i] = need
            waiting.popleft()
            running.append(i)
            target[i], done[i] = tokens, 0
            feed = prompts[i] if gen[i] == 0 else torch.cat([prompts[i], out[i, : gen[i]]])
            staging[i] = (feed, own_cache(tokens))
        decoding = set(rows.ids)
        grow = {i: -(-(P[i] + gen[i]) // bs) - held[i] for i in decoding}  # a decode appends one token
        while sum(grow.values()) > free:  # preempt the most recently admitted sequence (recomputed later)
            victim = running.pop()
            free += held[victim]
            held[victim] = 0
            preempt[victim] += 1
            waiting.appendleft(victim)
            if victim in decoding:
                rows.remove({victim}, {i: cached(i) for i in rows.ids})
                decoding.discard(victim)
                grow.pop(victim)
            else:
                staging.pop(victim)
        for i, g in grow.items():
            held[i] += g
            free -= g
        budget = C - len(rows.ids)
        chunks: list[Chunk] = []
        chunk_ids: list[int] = []
        for i in running:
            if budget <= 0:
                break
            if i in decoding:
                continue
            k = min(target[i] - done[i], budget)
            feed, cache = staging[i]
            chunks.append(Chunk(feed[done[i] : done[i] + k], done[i], cache))
            chunk_ids.append(i)
            budget -= k
        if not rows.ids and not chunks:  # everything preempted: readmit next round
            continue

        ids = list(rows.ids)
        index = torch.tensor(ids, dtype=torch.long, device=device)
        steps = torch.tensor([gen[i] - 1 for i in ids], dtype=torch.long, device=device)
        logits = iteration_forward(decoder, out[index, steps], [cached(i) for i in ids], rows.kv, chunks)
        new = logits.argmax(-1)  # [b + m], greedy
        out[index, steps + 1] = new[: len(ids)]
        for j, (i, c) in enumerate(zip(chunk_ids, chunks, strict=True)):
            done[i] += c.tokens.shape[0]
            if done[i] >= target[i]:
                out[i, gen[i]] = new[len(ids) + j]
        _sync(device)
        t_end = time.perf_counter() - t0

        produced = len(ids)
        for i in ids:
            gen[i] += 1
        for i in chunk_ids:
            if done[i] >= target[i]:
                gen[i] += 1
                produced += 1
                if math.isnan(first[i]):
                    first[i] = t_end
        ended = {i for i in running if gen[i] >= N[i]}
        for i in chunk_ids:  # prompts done: into the decode rows
            if done[i] >= target[i]:
                _, cache = staging.pop(i)
                if i not in ended:
                    rows.add(i, cache, target[i])
        if ended:
            for i in ended:
                finish[i] = t_end
                free += held[i]
                held[i] = 0
            running = [i for i in running if i not in ended]
            rows.remove(ended, {i: cached(i) for i in rows.ids})
        iterations.append(
            Iteration(
                start_s=t_start,
                end_s=t_end,
                decodes=len(ids),
                context_tokens=sum(cached(i) - 1 for i in ids),  # before this iteration's token
                chunks=tuple((c.tokens.shape[0], c.past) for c in chunks),
                produced=produced,
            )
        )
    wall = time.perf_counter() - t0
    tokens = out.cpu()
    return Replay(
        trace=trace,
        first_token_s=first,
        finish_s=finish,
        preemptions=preempt,
        generated=[tokens[i, : gen[i]].tolist() for i in range(n)],
        iterations=iterations,
        wall_s=wall,
    )


# ----------------------------------------------------------------------------------------------------
# costmodel's prediction and the comparison
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _BudgetEngine(Engine):
    """An :class:`Engine` whose KV cache holds ``kv_tokens`` tokens whatever the device memory (Engine
    itself has no field for it), so the simulator sees the replay's budget."""

    kv_tokens: int = 0

    def kv_capacity_tokens(self) -> int:
        return self.kv_tokens or super().kv_capacity_tokens()


def engine_for(setup: Setup, hardware: str, max_len: int) -> Engine:
    """The costmodel engine of ``setup`` on ``hardware`` (name or YAML path), paged blocks."""
    engine = Engine.build(
        model_profile(setup.model),
        load_hardware(hardware),
        weight_dtype=setup.dtype,
        kv_dtype=setup.dtype,
        activation_dtype=setup.dtype,
        max_batch_size=setup.max_batch_size,
        max_batched_tokens=setup.max_batched_tokens,
        block_size=setup.block_size,
        max_len=max_len,
    )
    if setup.kv_tokens is None:
        return engine
    fields = {f: getattr(engine, f) for f in Engine.__dataclass_fields__}
    return _BudgetEngine(**fields, kv_tokens=setup.kv_tokens)


METRICS = (
    ("output_tokens_per_s", "tokens/s"),
    ("ttft_p50", "s"),
    ("ttft_p90", "s"),
    ("tpot_p50", "s"),
    ("tpot_p90", "s"),
    ("e2e_p50", "s"),
    ("e2e_p90", "s"),
    ("mean_batch_size", "-"),
)


def summarize(result: ServeResult) -> dict[str, float]:
    """The compared metrics of a run over its whole trace; throughput is every output token over the
    time from the first arrival to the last token."""
    done = np.isfinite(result.finish_s)
    makespan = float(np.nanmax(result.finish_s) - result.arrival_s[0]) if done.any() else math.nan
    values = {"output_tokens_per_s": float(result.output_tokens[done].sum()) / makespan}
    for metric in ("ttft", "tpot", "e2e"):
        has = getattr(result, f"{metric}_s").size > 0
        p50, p90 = result.quantile(metric, [0.5, 0.9]) if has else (math.nan, math.nan)
        values[f"{metric}_p50"], values[f"{metric}_p90"] = float(p50), float(p90)
    values["mean_batch_size"] = result.mean_batch_size
    return values


def _error(predicted: float | None, measured: float) -> float | None:
    if predicted is None or not (math.isfinite(predicted) and math.isfinite(measured)) or measured == 0:
        return None
    return (predicted - measured) / measured


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def compare(
    measured: Replay, engine: Engine, *, table: StepTable | None = None
) -> tuple[ServeResult, list[dict[str, Any]], dict[str, Any]]:
    """The simulator's run of the same trace, one record per metric, and the analytic model's totals."""
    trace = measured.trace
    table = table or StepTable(engine)
    horizon = max(float(trace.arrival_s[-1]), 1e-3)
    simulated = serve(
        engine, Traffic.from_trace(trace), warmup_fraction=0.0, drain_factor=3600.0 / horizon, table=table
    )
    analytic = analyze(engine, Traffic.from_trace(trace))
    have, sim = summarize(measured.as_serve_result()), summarize(simulated)
    theory = {"mean_batch_size": float(analytic.mean_batch_size)}
    for metric in ("ttft", "tpot", "e2e"):
        for q in (0.5, 0.9):
            theory[f"{metric}_p{round(q * 100)}"] = float(analytic.quantile(metric, q))
    records = []
    for metric, unit in METRICS:
        records.append(
            {
                "metric": metric,
                "unit": unit,
                "measured": _finite(have[metric]),
                "predicted": _finite(sim[metric]),
                "rel_error": _error(sim[metric], have[metric]),
                "analytic": _finite(theory.get(metric, math.nan)),
                "analytic_rel_error": _error(theory.get(metric), have[metric]),
            }
        )
    busy = sum(it.end_s - it.start_s for it in measured.iterations)
    busy_predicted = sum(
        table.iteration_s(it.decodes, float(it.context_tokens), list(it.chunks)) for it in measured.iterations
    )
    records.append(
        {
            "metric": "busy_time",
            "unit": "s",
            "measured": busy,
            "predicted": busy_predicted,  # the step-time model on the measured iterations themselves
            "rel_error": _error(busy_predicted, busy),
            "analytic": None,
            "analytic_rel_error": None,
        }
    )
    totals = {
        "analytic_max_rate_per_s": _finite(analytic.max_rate_per_s),
        "analytic_utilization": _finite(analytic.utilization),
        "analytic_stable": bool(analytic.stable),
    }
    return simulated, records, totals


# ----------------------------------------------------------------------------------------------------
# A whole run: build, warm up, replay, predict, record
# ----------------------------------------------------------------------------------------------------


def prompt_ids(trace: Trace, vocab_size: int, seed: int, device: str) -> list[Tensor]:
    """Random prompt token ids, [P_i] each."""
    gen = torch.Generator().manual_seed(seed + 1)
    return [torch.randint(0, vocab_size, (int(p),), generator=gen).to(device) for p in trace.prompt_tokens]


def run(
    setup: Setup,
    *,
    device: str = "cpu",
    hardware: str | None = None,
    out: Path | None = None,
    trace: Trace | None = None,
) -> dict[str, Any]:
    """Replay ``trace`` (default: ``setup``'s Poisson trace) after a short warm-up, compare with
    costmodel, append the records to ``out``. Returns the records ({"replay": settings and totals,
    "metrics": [...], "requests": [...]}) and the measurement itself ("result", a :class:`Replay`)."""
    hw_name = hardware or default_hardware(device)
    trace = trace or poisson_trace(setup)
    profile = model_profile(setup.model)
    max_len = int((trace.prompt_tokens + trace.output_tokens).max())
    engine = engine_for(setup, hw_name, max_len)
    kv_tokens = engine.kv_capacity_tokens()
    torch.manual_seed(setup.seed)
    with _allocating(device, TORCH_DTYPES[setup.dtype]):
        decoder = Decoder(profile).eval()
    prompts = prompt_ids(trace, profile.vocab_size, setup.seed, device)
    limits = dict(
        max_batch_size=setup.max_batch_size,
        max_batched_tokens=setup.max_batched_tokens,
        kv_tokens=kv_tokens,
        block_size=setup.block_size,
        device=device,
    )
    # warm-up (kernels, allocator): the first few requests, all at once, a few tokens each
    w = min(len(trace), setup.max_batch_size)
    warm = Trace(np.zeros(w), trace.prompt_tokens[:w], np.minimum(trace.output_tokens[:w], 4))
    replay(decoder, warm, prompts[:w], **limits)  # type: ignore[arg-type]
    measured = replay(decoder, trace, prompts, **limits)  # type: ignore[arg-type]
    simulated, metrics, totals = compare(measured, engine)

    run_id = uuid.uuid4().hex[:8]
    hw = engine.hardware.name
    common = {"run_id": run_id, "family": FAMILY}
    settings = {
        "record": "replay",
        **common,
        **asdict(setup),
        "device": device,
        "hardware_profile": hw,
        "trace": trace.source,
        "requests": len(trace),
        "trace_rate_per_s": trace.rate_per_s if len(trace) > 1 else None,
        "max_len": max_len,
        "kv_tokens": kv_tokens,
        "iterations": len(measured.iterations),
        "predicted_iterations": simulated.iterations,
        "preemptions": int(measured.preemptions.sum()),
        "predicted_preemptions": int(simulated.preemptions.sum()),
        "completed_fraction": float(np.isfinite(measured.finish_s).mean()),
        "predicted_completed_fraction": simulated.completed_fraction,
        "wall_s": measured.wall_s,
        **totals,
    }
    metric_records = [{"record": "metric", **common, **m} for m in metrics]
    requests = []
    for i in range(len(trace)):
        a, n_out = float(trace.arrival_s[i]), int(trace.output_tokens[i])
        row = {"record": "request", **common, "request": i, "arrival_s": a}
        row |= {"prompt_tokens": int(trace.prompt_tokens[i]), "output_tokens": n_out}
        row["generated_tokens"] = len(measured.generated[i])
        row["preemptions"] = int(measured.preemptions[i])
        for prefix, r in (("", measured), ("predicted_", simulated)):
            first, end = float(r.first_token_s[i]), float(r.finish_s[i])
            row[f"{prefix}ttft_s"] = _finite(first - a)
            row[f"{prefix}tpot_s"] = _finite((end - first) / (n_out - 1)) if n_out > 1 else None
            row[f"{prefix}e2e_s"] = _finite(end - a)
        requests.append(row)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        read_records(out, drop_torn_tail=True)  # append on a whole line, never onto a torn one
        with out.open("a") as f:
            env = environment(device) | common | {"hardware_profile": hw, "model": setup.model}
            for record in [env, settings, *metric_records, *requests]:
                f.write(json.dumps(record) + "\n")
    return {"replay": settings, "metrics": metric_records, "requests": requests, "result": measured}


def _table(metrics: list[dict[str, Any]]) -> str:
    """The metric records as a text table for the terminal."""
    columns = ("measured", "predicted", "rel_error", "analytic", "analytic_rel_error")
    lines = [f"{'metric':<20} {'unit':<9}" + "".join(f"{c:>19}" for c in columns)]
    for m in metrics:
        cells = [
            "-" if m[c] is None else f"{m[c]:+.1%}" if c.endswith("error") else f"{m[c]:.4g}" for c in columns
        ]
        lines.append(f"{m['metric']:<20} {m['unit']:<9}" + "".join(f"{x:>19}" for x in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hardware", help="profile name or YAML path (default: the device's built-in one)")
    parser.add_argument("--out", type=Path, required=True, help="JSON Lines file the records are appended to")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="defaults (default: cpu, or gpu on cuda)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument(
        "--trace", type=Path, help="a trace file (CSV / JSON Lines) instead of Poisson arrivals"
    )
    options = {
        "model": str,
        "dtype": str,
        "requests": int,
        "rate": float,
        "prompt_mean": float,
        "prompt_sigma": float,
        "prompt_max": int,
        "output_mean": float,
        "output_max": int,
        "max_batch_size": int,
        "max_batched_tokens": int,
        "kv_tokens": int,
        "block_size": int,
        "seed": int,
    }
    for name, kind in options.items():
        choices = sorted(TORCH_DTYPES) if name == "dtype" else None
        parser.add_argument("--" + name.replace("_", "-"), type=kind, choices=choices)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    prefer_flash_attention(args.device)
    preset = PRESETS[args.preset or ("gpu" if args.device.startswith("cuda") else "cpu")]
    changes = {name: getattr(args, name) for name in options if getattr(args, name) is not None}
    if "rate" in changes:
        changes["rate_per_s"] = changes.pop("rate")
    setup = replace(preset, **changes)
    trace = None
    if args.trace is not None:
        full = load_trace(args.trace)
        k = args.requests or len(full)
        start = full.arrival_s[0]  # the replay's clock and the simulator's both start at the first arrival
        trace = Trace(full.arrival_s[:k] - start, full.prompt_tokens[:k], full.output_tokens[:k], full.source)
    result = run(setup, device=args.device, hardware=args.hardware, out=args.out, trace=trace)
    s = result["replay"]
    utilization = s["analytic_utilization"]
    print(
        f"{s['requests']} requests, {s['model']} ({s['dtype']}) on {args.device} vs {s['hardware_profile']}: "
        f"{s['iterations']} iterations ({s['predicted_iterations']} simulated), wall {s['wall_s']:.1f} s, "
        f"predicted utilization {'-' if utilization is None else f'{utilization:.2f}'}"
    )
    print(_table(result["metrics"]))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
