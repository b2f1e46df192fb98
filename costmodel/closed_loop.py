"""A serving benchmark's closed loop: ``concurrency`` clients, each sending one request of ``isl`` prompt
tokens and ``osl`` output tokens after another, against one continuous-batching engine.

This is how public serving benchmarks are run (vLLM's ``benchmark_serving --max-concurrency``, SGLang's
``bench_serving``, NVIDIA's aiconfigurator silicon runs): not Poisson traffic (:mod:`costmodel.capacity`)
but a fixed number of requests in flight. The model is a mean-value analysis of the engine's steady state,
counted in engine iterations:

- **Iteration.** Every running sequence whose prompt is done decodes one token; what is left of the token
  budget ``max_batched_tokens`` goes to prompt chunks (chunked prefill with decode-first scheduling, the
  vLLM V1 / Sarathi-Serve policy, Agrawal et al. 2024 §4.3). Its time comes from
  :func:`costmodel.serving.step_time` (no second time model) plus a fixed ``step_overhead_s`` per
  iteration (scheduler, sampling and launch costs outside the kernels: small with CUDA graphs, larger in
  eager mode).
- **Prefill.** A prompt arriving at a random point of an iteration waits half an iteration on average,
  then takes ``ceil(isl / (budget - D))`` iterations, D being the decodes per iteration.
- **Rates.** With R = min(concurrency, max running) sequences admitted, D of them decoding and the rest
  prefilling, requests complete at λ = D / (osl - 1) per iteration (each gets its first token from the
  prefill and osl - 1 from decodes). Little's law on the admitted sequences gives
  D = R (osl - 1) / (osl - 1 + k_p), k_p the iterations a prompt spends in prefill; the prompt budget
  caps λ at (budget - D) / isl.
- **Closed loop.** Each client's cycle is concurrency / λ iterations (Little's law on the whole loop), of
  which osl - 1 decode iterations, so TTFT = concurrency / λ - (osl - 1) iterations: it includes the
  queueing for a slot when concurrency exceeds what runs at once, and for the prompt budget when prefill is
  the bottleneck.
- **Times.** TPOT is the mean iteration time; TTFT is its iteration count times the mean iteration time.

Eight named parameters (:class:`LoopParams`), calibrated per engine from measurements, carry what the
kernels do not: ``step_overhead_s`` per iteration (scheduling, sampling, launches; small with CUDA graphs),
``layer_step_overhead_s`` per layer of every iteration (a layer's small kernels outside the operator list),
``request_overhead_s`` per request on its first token (HTTP, tokenisation, admission, detokenisation),
``burst_fraction``, the share of the requests that arrive in a wave with every other client,
``prefill_layer_overhead_s``, the host's cost per model layer of an iteration that carries prompt tokens
(engines replay CUDA graphs for decode-only batches; an iteration with a prompt runs eagerly and pays
launches and Python per layer, unless it fits the piecewise graphs vLLM captures for mixed batches up to
``graph_tokens`` tokens, :func:`loop_parts`),
``mla_prefill_layer_overhead_s``, the further cost per multi-head latent attention layer of such an
iteration (MLA's prefill expands the latent KV and runs per-head attention outside CUDA graphs), and
``first_token_lag_iterations``, the iterations an overlapped scheduler adds before a first token is
returned (it launches the next iteration before reading the last one's tokens): mean iterations in the
steady state, a wave's decode iterations in a wave, and ``overlapped_host_s``, the host's work per
iteration that an overlapped scheduler runs while the GPU runs the previous iteration (``overlap_host``:
an iteration then lasts max(kernels, ``overlapped_host_s``) + ``step_overhead_s``; without it, the sum of
the three, so that only ``step_overhead_s`` + ``overlapped_host_s`` is then determined,
:meth:`LoopParts.step_s`; an iteration that runs several forward passes, each prepared on the host in turn,
pays ``overlapped_host_s`` once per pass, ``host_passes`` of :func:`loop_parts`).

**Waves.** A benchmark starts all C clients at once: its first C prompts arrive together and are
prefilled first come first served at the prompt budget. With a prompt budget of P
tokens per iteration, the prompts are packed into iterations in order (a chunk of the next prompt fills
what is left of an iteration), and a prompt's first token comes with the end of the iteration that holds
its last token: the i-th of the R admitted prompts after ceil(i isl / P) iterations, the wave's mean over
i = 1..R (:func:`wave_prefill_iterations`; a wave that fits one iteration waits exactly one, where the
continuous (R - 1) isl / (2 P) + ceil(isl / P) of sessions before 10 adds (R - 1) isl / (2 P), half the
wave's prompt work, to every prompt; the two agree when isl is a whole number of budgets), each carrying
min(R isl, P) prompt tokens beside the steady state's decodes (more
than the first cycle has: its decodes start as its prompts finish), with no half iteration of wait (the
engine was idle); clients past R wait for a slot as in the steady state. The benchmark's mean TTFT mixes
that wave with the steady state: TTFT = (1 - f) TTFT_steady + f TTFT_wave, f = ``burst_fraction``. For a
run of n requests per client whose later requests stagger f = 1 / n (measured: f ~ 0.12-0.17 on vLLM and
TensorRT-LLM); an engine that keeps the waves (prefill-first scheduling sends a wave's requests to decode
together, so they finish and return together) has f near 1. A benchmark that states its n gives
f = 1 / n itself (``wave_share``), and the fitted ``burst_fraction`` is left to those that do not.

A wave also sets its requests' TPOT: its R sequences decode together, with no prompt between their
decodes, once the wave's prompts are in, so each iteration is a decode-only one of all R. A wave's prompt
that is done waits for the rest of the wave's prompts before its next token (a prefill-first engine runs
the wave's prompt iterations before any decode; a mixed one decodes in them, each a wave iteration): on
average the wave's prompt work R isl / P less the mean iterations to a first token above, in wave
iterations (the last, partial iteration counted by its share of the budget), spread over its osl - 1
tokens. The mean TPOT
is TPOT = (1 - f) iteration + f TPOT_wave; clients past R, admitted R at a time as a wave ends, decode in
waves alike.

**Trains.** A benchmark of fixed lengths (every prompt isl tokens, every output osl) against an engine
that mixes one prompt into the decodes' iteration keeps its clients in a train: the first cycle's prompts
are prefilled one iteration after another, every client then needs the same number of iterations per
cycle, so its next prompt arrives one iteration after the one before. With an overlapped scheduler
(TensorRT-LLM's default) a prompt arriving while iteration i runs waits for i + 1, already scheduled, and
its first token is returned with the iteration after its own; in a train both are the neighbouring
clients' prompt iterations, so a prompt's first token takes :data:`TRAIN_ITERATIONS` + 1 iterations that
carry a prompt (aiconfigurator models its own collection's TTFT as three mixed steps), not its own plus
lag iterations at the mean (``train`` of :func:`loop_parts`). The train's first clients have decode-only
iterations ahead of them: of the C clients, the i-th has min(i - 1, T) of the T iterations ahead of it
carrying prompts, (T + 1) / (2 C) of them short on average.

**Speculative decoding** (``speculation``, :class:`Speculation`: k drafted tokens, acceptance rate alpha,
a draft step costing c target decoding steps): each decode iteration verifies k + 1 tokens per sequence
in one pass (:meth:`costmodel.serving._Parts.step_time` with ``decode_new_tokens`` = k + 1) after k draft
steps, and yields E = (1 - alpha^(k+1)) / (1 - alpha) tokens per sequence
(:func:`costmodel.speculative.expected_tokens`, Leviathan et al. 2023, Eq. 1), so a request decodes in
(osl - 1) / E iterations and the TPOT is the iteration time over E. The verification's k + 1 tokens per
sequence count against the token budget. The draft's own KV cache, where the engine keeps it in the
target's pool, is the engine's (``Engine.draft_kv_layers``, by the engine's rule
:func:`costmodel.speculative.pool_draft_kv_layers`): the admission reads the pool as the engine sizes it.
The loop does not derive it from ``speculation`` (an engine's capacity is one number, whichever loop reads
it): an engine that drafts into its own pool states it.

With attention data parallelism (``attention_dp`` = r ranks, :class:`costmodel.specs.Deployment`) each
rank runs its own scheduler over its own share of the clients, sequences, token budget and KV cache
(concurrency / r, max_batch_size / r, max_batched_tokens / r: balanced, as a round-robin router makes
them; ``max_batched_tokens`` is the ranks' budgets together, which an engine's launch value gives by
its own rule, :func:`costmodel.token_budget.worker_batched_tokens`), and the ranks step together (the
MoE layers synchronise them). The analysis above is that of one rank; each iteration's time is
:func:`costmodel.serving.step_time` with every rank's decodes and chunks (r times one rank's); the
engine's rates are r times one rank's. An engine that balances its ranks
holds each rank's prompts until every rank has one (``adp_balance``, :mod:`costmodel.adp_balance`), so
that they prefill in the same iteration, as this analysis assumes.

Assumptions: all clients' requests are alike (fixed isl, osl; outputs run to osl, as with ``ignore_eos``);
the benchmark is its steady state plus waves of all clients (``burst_fraction``), nothing in between; no
preemption: the engine admits sequences while the KV cache of their mean length
isl + osl / 2 fits (paged allocation with blocks taken on demand, :func:`Engine.max_concurrency`), or of
what it reserves for each (``reserved_tokens``: isl + osl for an engine that reserves a request's whole
footprint on admission);
decodes see the mean context isl + osl / 2. An iteration's prompt tokens (a chunk, several prompts, or
a wave's budget) are separate prompts of one packed attention call, each attending only to itself: tokens
/ isl whole prompts (:func:`costmodel.serving.prompt_pieces`; a chunk of a prompt that takes several
iterations after (isl - chunk) / 2), not one sequence of all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from costmodel.adp_balance import AdpBalance
from costmodel.adp_balance import held_iterations as balance_held_iterations
from costmodel.batch_wait import BatchWait, held_iterations, prompts_per_release
from costmodel.errors import CostmodelError

if TYPE_CHECKING:
    from collections.abc import Callable

    from costmodel.serving import Engine, _Parts

FloatArray = npt.NDArray[np.float64]

TRAIN_ITERATIONS = 2.0
"""Prompt iterations between a train's prompt arriving and its first token besides its own (the module's
"Trains"): the iteration an overlapped scheduler already scheduled when the prompt arrived, and the one
after its prefill that returns its first token (TensorRT-LLM's ``PyExecutor._executor_loop_overlap``
launches the forward of the next scheduled batch before ``_process_previous_batch`` runs
``_handle_responses`` on the previous one, so a prefill's first token reaches the client only once the
following iteration is launched,
https://github.com/NVIDIA/TensorRT-LLM/blob/main/tensorrt_llm/_torch/pyexecutor/py_executor.py; the
``py_decoding_iter <= 1`` skip in ``_handle_responses`` applies only to generation-only, i.e.
disaggregated decode, requests, not to the aggregated rows a train models)."""

FIXED_POINT_ITERATIONS = 60
"""Damped fixed-point iterations for the decodes per iteration; the map is a contraction in practice and
60 halvings leave no visible change."""


@dataclass(frozen=True)
class LoopParams:
    """The closed-loop model's named parameters (see the module docstring); defaults add nothing."""

    step_overhead_s: float = 0.0
    """Fixed cost of one engine iteration outside its kernels [s]."""
    request_overhead_s: float = 0.0
    """Fixed cost on each request's first token outside the engine's iterations [s]."""
    burst_fraction: float = 0.0
    """Share of the requests that arrive in a wave with every other client [-], in [0, 1]: the benchmark's
    first cycle (1 / requests per client) and the waves an engine keeps after it."""
    prefill_layer_overhead_s: float = 0.0
    """Host cost per model layer of an iteration that carries prompt tokens [s]: the launches and Python of
    a pass run outside CUDA graphs (engines capture decode-only batches; vLLM also mixed batches of up to
    ``graph_tokens``, :func:`loop_parts`)."""
    mla_prefill_layer_overhead_s: float = 0.0
    """Further fixed cost per multi-head latent attention layer of an iteration that carries prompt tokens
    [s]: MLA's prefill form, which expands the latent KV into per-head keys and values and runs outside
    CUDA graphs, launches several more kernels per layer than its decode form or than grouped-query
    attention (docs/serving.md, "MLA prefill")."""
    first_token_lag_iterations: float = 0.0
    """Iterations by which an engine's overlapped scheduling delays a request's first token [-], in
    [0, 3]: the host schedules and launches iteration i + 1 before it reads iteration i's tokens, so a
    prompt arriving during i waits for i + 1 as well, and its first token is returned with the outputs of
    the iteration after its prefill (docs/serving.md, "Overlapped scheduling")."""

    layer_step_overhead_s: float = 0.0
    """Fixed cost per model layer of every iteration, decode-only or with prompt tokens [s]: the small
    kernels of a layer that neither the operator list nor the kernels' launches time (the rotary embedding
    where it runs outside the attention kernel, bias and residual adds outside the fused norms, other small
    elementwise kernels), each launch-bound at a few microseconds, so that their sum grows with the layers
    and not with the tokens; per engine, whose kernels these are. The KV-cache write and the activations'
    quantization before fp8 / fp4 GEMMs are not among them: the kernel models pay their launches
    (:data:`costmodel.kernel_times.GRAPH_LAUNCHES`, :func:`costmodel.kernel_times.step_params`)
    (docs/serving.md, "gpt-oss-120b on B200: norms fused into the all-reduce, and a cost per layer of every
    step")."""

    overlapped_host_s: float = 0.0
    """The host's work per iteration that an overlapped scheduler runs while the GPU runs the previous
    iteration [s] (preparing the next batch: scheduling, allocating its KV cache, building its inputs):
    hidden behind kernels that take longer, added to them where the engine does not overlap, once per
    forward pass that such an iteration prepares (:attr:`LoopParts.host_passes`, :meth:`LoopParts.step_s`)."""

    def __post_init__(self) -> None:
        for name in (
            "step_overhead_s",
            "request_overhead_s",
            "burst_fraction",
            "prefill_layer_overhead_s",
            "mla_prefill_layer_overhead_s",
            "first_token_lag_iterations",
            "overlapped_host_s",
            "layer_step_overhead_s",
        ):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise CostmodelError(f"{name} must be finite and >= 0, got {value!r}")
        if self.burst_fraction > 1:
            raise CostmodelError(f"burst_fraction must be at most 1, got {self.burst_fraction!r}")


@dataclass(frozen=True)
class Speculation:
    """Speculative decoding in every decode iteration (notation of :mod:`costmodel.speculative`)."""

    draft_tokens: int
    """Drafted tokens per verification, k [tokens], >= 1."""
    acceptance_rate: float
    """Probability that a draft token is kept, alpha [-], in [0, 1]: the first draft's, and every
    draft's where ``later_acceptance_rate`` is None (i.i.d. over positions)."""
    draft_cost_ratio: float
    """One draft step's time over one plain decoding step of the target, c [-], >= 0 (a one-layer MTP
    module of an L-layer model: about 1 / L); with ``draft_head``, of that step less its output head."""
    draft_head: bool = False
    """Whether each draft step also runs the target's output head over its batch (priced by the kernel
    model, :meth:`costmodel.serving._Parts.output_head_s`): a draft step of an MTP module or EAGLE head
    samples its token from the target's vocabulary through the shared head, whose GEMM at a large
    vocabulary is a sizeable share of a one-layer step. Then the draft step is
    c (T_plain - T_head) + T_head; without it, c T_plain (the head's share understated)."""
    later_acceptance_rate: float | None = None
    """Probability that draft i >= 2 is kept given that drafts 1 .. i-1 were, alpha_later [-], in
    [0, 1]; None: ``acceptance_rate`` at every position (i.i.d.). A draft module trained to predict one
    token ahead and run on its own drafts for the later ones (DeepSeek-V3's MTP module) keeps them less
    often than the first (:func:`costmodel.speculative.expected_tokens_positional`)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.draft_tokens, int) and self.draft_tokens >= 1):
            raise CostmodelError(f"draft_tokens must be a whole number >= 1, got {self.draft_tokens!r}")
        if not (np.isfinite(self.acceptance_rate) and 0 <= self.acceptance_rate <= 1):
            raise CostmodelError(f"acceptance_rate must be in [0, 1], got {self.acceptance_rate!r}")
        if not (np.isfinite(self.draft_cost_ratio) and self.draft_cost_ratio >= 0):
            raise CostmodelError(f"draft_cost_ratio must be finite and >= 0, got {self.draft_cost_ratio!r}")
        later = self.later_acceptance_rate
        if later is not None and not (np.isfinite(later) and 0 <= later <= 1):
            raise CostmodelError(f"later_acceptance_rate must be in [0, 1] or None, got {later!r}")

    @property
    def tokens_per_iteration(self) -> float:
        """E: tokens a sequence gains per verification [tokens]. i.i.d. acceptance alpha:
        (1 - alpha^(k+1)) / (1 - alpha); with ``later_acceptance_rate`` a_l, the acceptances
        (alpha, a_l, ..., a_l) along the draft: 1 + alpha (1 - a_l^k) / (1 - a_l)."""
        from costmodel.speculative import expected_tokens, expected_tokens_positional

        if self.later_acceptance_rate is None:
            return float(expected_tokens(self.acceptance_rate, self.draft_tokens))
        alphas = [self.acceptance_rate] + [self.later_acceptance_rate] * (self.draft_tokens - 1)
        return float(expected_tokens_positional(alphas))


BOUNDS: dict[str, tuple[float, float]] = {
    "step_overhead_s": (0.0, 0.05),
    "request_overhead_s": (0.0, 1.0),
    "burst_fraction": (0.0, 1.0),
    "prefill_layer_overhead_s": (0.0, 0.005),
    "mla_prefill_layer_overhead_s": (0.0, 0.005),
    "first_token_lag_iterations": (0.0, 3.0),
    "overlapped_host_s": (0.0, 0.02),
    "layer_step_overhead_s": (0.0, 0.0002),
}
"""Ranges a calibration may move each :class:`LoopParams` field within."""


VLLM_MAX_CUDAGRAPH_TOKENS = 512
"""vLLM's default ceiling of ``max_cudagraph_capture_size`` [tokens]: min(2 max_num_seqs, 512), and at
most ``max_num_batched_tokens`` (``VllmConfig._set_cudagraph_sizes``,
https://github.com/vllm-project/vllm/blob/main/vllm/config/vllm.py)."""


def gpu_work_s(kernels_s: npt.ArrayLike, layer_step_overhead_s: float, layers: npt.ArrayLike) -> FloatArray:
    """An iteration's GPU work [s]: its timed kernels ``kernels_s`` and ``layer_step_overhead_s`` per layer of
    ``layers``, the small kernels of a layer that no operator times
    (:attr:`LoopParams.layer_step_overhead_s`), which run on the GPU among the others. The host's costs go
    around this sum: after it or beside it in an aggregated iteration (:meth:`LoopParts.step_s`), beside it
    from pass to pass in a disaggregated prefill worker (:meth:`costmodel.disagg.DisaggParts.result`), so both
    loops place the per-layer cost alike."""
    return np.asarray(np.asarray(kernels_s, dtype=np.float64) + layer_step_overhead_s * np.asarray(layers))


def host_bound_s(
    gpu_s: npt.ArrayLike, host_pass_s: npt.ArrayLike, passes: npt.ArrayLike, *, overlap: bool
) -> FloatArray:
    """An iteration's GPU work ``gpu_s`` [s] (:func:`gpu_work_s`) with the host's work of its forward passes,
    ``host_pass_s`` [s] for each of ``passes`` [-] (>= 1), before its fixed ``step_overhead_s``: with
    ``overlap`` the host prepares all of them while the GPU runs the previous iteration, so the iteration
    lasts max(GPU, ``passes`` x host); without it each pass waits for the host in turn, GPU + ``passes`` x
    host. The one rule of both loops (:meth:`LoopParts.step_s`, a disaggregated decode iteration in
    :meth:`costmodel.disagg.DisaggParts.result`).

    Why the overlapped form multiplies too: SGLang's spec-v2 EAGLE worker, the one that drafts under the
    overlap scheduler, builds the draft, the target's verification and the draft's extend as three
    forward batches (``EagleDraftWorker.draft``, ``EAGLEWorkerV2.verify``,
    ``EagleDraftWorker._draft_extend_for_decode``, the latter two planned on a side stream), none of which
    reads a result back to the host (the accepted lengths stay on the GPU, ``verify_done`` is a CUDA event),
    so the host's work for one iteration is all three plans, done while the previous iteration's kernels
    run (python/sglang/srt/speculative/eagle_worker_v2.py, https://github.com/sgl-project/sglang at
    006b0e3d317f1cd4a7300e919a4eaa878b1947e7)."""
    host = np.asarray(passes, dtype=np.float64) * np.asarray(host_pass_s, dtype=np.float64)
    gpu = np.asarray(gpu_s, dtype=np.float64)
    return np.asarray(np.maximum(gpu, host) if overlap else gpu + host)


def engine_step_s(
    kernels_s: npt.ArrayLike,
    params: LoopParams,
    *,
    step_layers: npt.ArrayLike,
    host_passes: npt.ArrayLike = 1.0,
    overlap: bool = False,
) -> FloatArray:
    """One iteration whose kernels take ``kernels_s`` [s] with the engine's fitted costs of ``params``:
    ``layer_step_overhead_s`` per layer of ``step_layers`` (GPU work, :func:`gpu_work_s`), the host's
    ``overlapped_host_s`` once per pass of ``host_passes``, after the kernels or, with ``overlap``, beside
    them (:func:`host_bound_s`), and ``step_overhead_s`` on the critical path [s]. The one iteration rule of
    the closed loop (:meth:`LoopParts.step_s`) and of the Poisson-traffic engine
    (:meth:`costmodel.serving.Engine.iteration_s`, read by :mod:`costmodel.capacity` and
    :mod:`costmodel.simulate`)."""
    kernels = gpu_work_s(kernels_s, params.layer_step_overhead_s, step_layers)
    host = host_bound_s(kernels, params.overlapped_host_s, host_passes, overlap=overlap)
    return np.asarray(host + params.step_overhead_s)


def prefill_host_s(params: LoopParams, layers: npt.ArrayLike, mla_layers: npt.ArrayLike) -> FloatArray:
    """Fixed cost of a pass that carries prompt tokens beyond its kernels [s]: ``prefill_layer_overhead_s``
    per layer of ``layers`` (those run outside CUDA graphs: all of them, or none where the iteration fits
    a captured graph, :func:`cuda_graph_tokens`) and ``mla_prefill_layer_overhead_s`` per layer of
    ``mla_layers`` (the model's MLA layers). It is added to the kernels before :func:`engine_step_s`; the
    closed loop (:meth:`LoopParts._prefill_host_s`) and :meth:`costmodel.serving.Engine.iteration_s` both
    read it."""
    return np.asarray(
        params.prefill_layer_overhead_s * np.asarray(layers)
        + params.mla_prefill_layer_overhead_s * np.asarray(mla_layers)
    )


def cuda_graph_tokens(engine: str, max_num_seqs: int, budget: int, capture_size: int | None = None) -> int:
    """The largest iteration [tokens] carrying prompt tokens that ``engine`` replays as CUDA graphs
    (:func:`loop_parts`' ``graph_tokens``): vLLM's piecewise graphs reach ``capture_size`` (its
    ``max-cudagraph-capture-size``) or by default min(2 ``max_num_seqs``, 512), and never more than the
    token ``budget``; TensorRT-LLM and SGLang capture decode-only batches alone (0)."""
    if engine != "vllm":
        return 0
    if capture_size is not None:
        return min(int(capture_size), int(budget))
    return min(2 * int(max_num_seqs), VLLM_MAX_CUDAGRAPH_TOKENS, int(budget))


@dataclass(frozen=True)
class ClosedLoop:
    """Steady state of a closed-loop benchmark; arrays follow broadcast(concurrency, isl, osl)."""

    ttft_s: FloatArray
    """Mean time to first token [s]."""
    tpot_s: FloatArray
    """Mean time per output token after the first [s]."""
    iteration_s: FloatArray
    """Mean engine iteration time [s]."""
    decodes_per_iteration: FloatArray
    """Sequences decoding in a mean iteration, D [-]."""
    prefill_tokens_per_iteration: FloatArray
    """Prompt tokens prefilled in a mean iteration [tokens]."""
    running: FloatArray
    """Sequences admitted at once, R = min(concurrency, the engine's limit) [-]."""
    prefill_bound: npt.NDArray[np.bool_]
    """Whether the prompt budget, not the decodes, limits the request rate."""

    requests_per_s: FloatArray
    """Completed requests per second of the engine [1/s]."""
    output_tokens_per_s: FloatArray
    """Output tokens per second of the engine [tokens/s]: osl per completed request."""


def closed_loop(
    engine: Engine,
    *,
    concurrency: npt.ArrayLike,
    isl: npt.ArrayLike,
    osl: npt.ArrayLike,
    params: LoopParams | None = None,
    reserved_tokens: npt.ArrayLike | None = None,
    speculation: Speculation | None = None,
    graph_tokens: npt.ArrayLike = 0.0,
    poll_iterations: npt.ArrayLike = 1.0,
    batch_wait: BatchWait | None = None,
    adp_balance: AdpBalance | None = None,
    wave_share: npt.ArrayLike | None = None,
    overlap_host: bool = False,
    train: bool = False,
    host_passes: float = 1.0,
) -> ClosedLoop:
    """Mean TTFT and TPOT of ``concurrency`` clients sending ``isl``/``osl`` requests back to back.

    Parameters
    ----------
    engine : the serving engine (model, device, dtypes, parallelism, ``max_batch_size``,
        ``max_batched_tokens``); its KV capacity also limits the sequences running at once.
    concurrency : clients of the closed loop [-], >= 1.
    isl : prompt tokens per request [tokens], >= 1.
    osl : output tokens per request [tokens], >= 2 (TPOT needs a second token).
    params : the named overheads and wave share (default: none, the kernels' time alone).
    reserved_tokens : the KV cache each admitted request holds against the pool [tokens] (default
        isl + osl / 2; see :func:`loop_parts`).
    speculation : speculative decoding in the decode iterations (default: none).
    graph_tokens : the largest iteration carrying prompt tokens that the engine replays as CUDA graphs
        [tokens] (default 0: every such iteration runs eagerly; see :func:`loop_parts`).
    poll_iterations : iterations between the scheduler's reads of new requests [-], >= 1 (default 1: every
        iteration; see :func:`loop_parts`).
    batch_wait : the engine holds new prompts to prefill them together (default: never;
        :mod:`costmodel.batch_wait`).
    adp_balance : the engine holds new prompts until every attention-DP rank has one (default: never;
        :mod:`costmodel.adp_balance`).
    wave_share : the share of the requests that arrive in a wave, where the benchmark states it [-]
        (default: the engine's fitted ``burst_fraction``; see :func:`loop_parts`).
    overlap_host : the engine's host work of an iteration runs while the GPU runs the previous one, so an
        iteration lasts max(kernels, ``step_overhead_s``) instead of their sum (default False; see
        :func:`loop_parts`).
    train : the clients' prompts arrive one iteration apart in a train (fixed lengths against an engine
        that prefills one prompt per iteration with overlapped scheduling; default False; see
        :func:`loop_parts`).
    host_passes : forward passes an iteration prepares on the host in turn, each paying
        ``overlapped_host_s`` where the host does not overlap [-], >= 1 (default 1; see :func:`loop_parts`).

    Arrays broadcast. See the module docstring for the model and its assumptions.
    """
    parts = loop_parts(
        engine,
        concurrency=concurrency,
        isl=isl,
        osl=osl,
        reserved_tokens=reserved_tokens,
        speculation=speculation,
        graph_tokens=graph_tokens,
        poll_iterations=poll_iterations,
        batch_wait=batch_wait,
        adp_balance=adp_balance,
        wave_share=wave_share,
        overlap_host=overlap_host,
        train=train,
        host_passes=host_passes,
    )
    return parts.result(params or LoopParams())


def loop_parts(
    engine: Engine,
    *,
    concurrency: npt.ArrayLike,
    isl: npt.ArrayLike,
    osl: npt.ArrayLike,
    reserved_tokens: npt.ArrayLike | None = None,
    speculation: Speculation | None = None,
    graph_tokens: npt.ArrayLike = 0.0,
    poll_iterations: npt.ArrayLike = 1.0,
    batch_wait: BatchWait | None = None,
    adp_balance: AdpBalance | None = None,
    wave_share: npt.ArrayLike | None = None,
    overlap_host: bool = False,
    train: bool = False,
    host_passes: float = 1.0,
) -> LoopParts:
    """The rates and kernel times of :func:`closed_loop` before its named parameters are applied.

    ``reserved_tokens`` [tokens]: the KV cache each admitted sequence holds against the engine's pool for
    admission; default isl + osl / 2, the mean of a paged cache that takes blocks on demand (vLLM, SGLang).
    An engine that reserves a request's whole footprint when it admits it (TensorRT-LLM's default
    ``GUARANTEED_NO_EVICT``) holds isl + osl. ``batch_wait``: prompts held in decode-only iterations
    before their prefill (:func:`costmodel.batch_wait.held_iterations`), added to the steady TTFT, and
    released together, 1 + lambda W of them sharing one iteration
    (:func:`costmodel.batch_wait.prompts_per_release`), so that iterations carrying prompts are that many
    times fewer and each carries that many prompts' tokens (within the prompt budget);
    ``adp_balance``: prompts held until every attention-DP rank has one
    (:func:`costmodel.adp_balance.held_iterations`), added likewise.

    ``wave_share`` f [-], in [0, 1]: the share of the requests that arrive in a wave of all clients, where
    the benchmark fixes it: a run of n requests per client whose later requests stagger has its first
    cycle, f = 1 / n, in a wave (default None: the engine's fitted ``burst_fraction``, for benchmarks that
    do not state n, and engines that keep their waves).


    ``graph_tokens`` [tokens]: the largest iteration with prompt tokens (prompt and decode tokens of one
    rank together) that the engine replays as CUDA graphs. vLLM captures its piecewise graphs for mixed
    prefill-decode batches up to ``max_cudagraph_capture_size`` tokens (default min(2 max_num_seqs, 512),
    ``VllmConfig._set_cudagraph_sizes``, https://github.com/vllm-project/vllm/blob/main/vllm/config/vllm.py)
    and runs a larger batch with no graph at all; such an iteration pays ``prefill_layer_overhead_s`` per
    layer, one within the graphs does not. Default 0: every iteration carrying prompt tokens is eager (the
    TensorRT-LLM and SGLang defaults, which graph decode-only batches alone).

    ``poll_iterations`` I [-]: the decode iterations between two reads of the scheduler's request queue.
    An engine that reads it before every iteration (I = 1, every engine's default) makes a prompt arriving
    at a random point of an iteration wait half an iteration; SGLang's ``--scheduler-recv-interval I``
    reads it only once I decode iterations have passed (an iteration that carried prompts counts 1000, so
    the queue is read right after it: ``SchedulerRecvSkipper`` in
    https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/managers/scheduler_recv_skipper.py),
    so an arrival waits I / 2 iterations on average, and its cycle is as much longer.

    ``train``: the clients' prompts arrive one iteration apart in a train (fixed lengths against an engine
    with an overlapped scheduler, the module's "Trains"): the :data:`TRAIN_ITERATIONS` iterations ahead of a
    prompt's first token besides its own carry the neighbouring clients' prompts, in place of the arrival's
    wait and ``first_token_lag_iterations`` at the mean iteration. Default False: staggered arrivals.

    ``host_passes`` [-], >= 1: the forward passes an iteration prepares on the host one after another, each
    paying ``overlapped_host_s`` (:func:`host_bound_s`: after the kernels where the engine does not overlap
    its host work; with ``overlap_host`` beside them, the iteration lasting the longer of the kernels and
    all the passes). Default 1,
    a plain iteration. SGLang's EAGLE worker, which runs with the overlap scheduler off, prepares three per
    verification: the draft steps, the target's verification and the draft's extend over the accepted
    tokens, each its own batch, forward and graph replay after the host has read the previous one's
    results (docs/serving.md, "SGLang's speculative iteration prepares three passes")."""
    if not (np.isfinite(host_passes) and host_passes >= 1.0):
        raise CostmodelError(f"host_passes must be finite and >= 1, got {host_passes!r}")
    C, N_in, N_out, poll = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (concurrency, isl, osl, poll_iterations))
    )
    for name, x, low in (
        ("concurrency", C, 1.0),
        ("isl", N_in, 1.0),
        ("osl", N_out, 2.0),
        ("poll_iterations", poll, 1.0),
    ):
        bad = ~(np.isfinite(x) & (x >= low))
        if np.any(bad):
            raise CostmodelError(f"{name} must be finite and >= {low:g}, got {x[bad].flat[0]!r}")

    # a running sequence runs n tokens per iteration (1, or k + 1 when verifying k drafts) and gains E
    n = 1.0 if speculation is None else speculation.draft_tokens + 1.0
    gained = 1.0 if speculation is None else speculation.tokens_per_iteration
    ranks, budget, R = _admitted(engine, C, N_in, N_out, reserved_tokens, n)
    steps = (N_out - 1.0) / gained

    D = R.copy()
    # _request_rate's arithmetic inlined, operation for operation (the same figures to the bit), with what
    # does not change between the iterations computed once: steps + wait, the first sum of its cycle
    cycle = steps + poll / 2.0
    for _ in range(FIXED_POINT_ITERATIONS):
        free = np.maximum(budget - D * n, 1.0)
        rate = np.minimum(R / (cycle + np.ceil(N_in / free)), free / N_in)
        D = 0.5 * D + 0.5 * rate * steps
    rate, chunks = _request_rate(D * n, R, N_in, steps, budget, poll / 2.0)
    free = np.maximum(budget - D * n, 1.0)
    prefill_bound = free / N_in < R / (steps + poll / 2.0 + chunks)

    # iterations that carry prompt work: a chunk of isl / chunks tokens, or more when several prompts
    # share an iteration (more arrive per iteration than one, or batch waiting releases its held prompts
    # together), up to the prompt budget; the others decode only
    prefill_tokens = rate * N_in
    chunk = N_in / chunks
    together = (
        1.0 if batch_wait is None else prompts_per_release(batch_wait, arrivals=rate, isl=N_in, decodes=D * n)
    )
    tokens = np.minimum(np.maximum(chunk * together, prefill_tokens), free)
    carrying = np.minimum(prefill_tokens / tokens, 1.0)
    with_prompt, decode_only, wave, wave_decode = _iteration_times(
        engine, speculation, ranks=ranks, running=R, decodes=D, n=n, isl=N_in, osl=N_out,
        chunk=chunk, tokens=tokens, free=free,
    )  # fmt: skip
    # the layers of an iteration run outside CUDA graphs: all of them above the largest captured batch
    steady_tokens = tokens + D * n
    wave_tokens = np.minimum(R * N_in, free) + D * n
    n_layers = float(engine.model.n_layers)
    return LoopParts(
        concurrency=C,
        isl=N_in,
        osl=N_out,
        running=R,
        decodes=D,
        requests_per_iteration=rate,
        chunks=chunks,
        prompt_budget=free,
        carrying_fraction=carrying,
        decode_only_s=np.asarray(decode_only),
        with_prompt_s=np.asarray(with_prompt),
        wave_s=np.asarray(wave),
        prefill_bound=np.asarray(prefill_bound),
        ranks=ranks,
        layers=np.where(steady_tokens > graph_tokens, n_layers, 0.0),
        mla_layers=float(engine.model.n_layers if engine.model.mla is not None else 0),
        wave_decode_s=np.asarray(wave_decode),
        tokens_per_iteration=gained,
        wave_layers=np.where(wave_tokens > graph_tokens, n_layers, 0.0),
        arrival_wait=np.asarray(poll / 2.0),
        wave_share=None if wave_share is None else _share(wave_share),
        held_iterations=_held(batch_wait, adp_balance, rate=rate, isl=N_in, decodes=D * n, ranks=ranks),
        overlap_host=overlap_host,
        wave_iterations=wave_prefill_iterations(R, N_in, free),
        train=train,
        step_layers=n_layers,
        host_passes=float(host_passes),
    )


def wave_prefill_iterations(running: npt.ArrayLike, isl: npt.ArrayLike, budget: npt.ArrayLike) -> FloatArray:
    """Mean iterations until a prompt of a wave of R prompts of ``isl`` tokens per rank has its first
    token, their prefill packed first come first served at ``budget`` prompt tokens per iteration
    [iterations]: on a rank of n prompts the i-th is done with the iteration that holds its last token,
    ceil(i isl / P), and the mean is over its clients. A fractional R (the clients spread over attention-DP
    ranks, or a KV-limited capacity) is an uneven split: a share f = R - floor(R) of the ranks runs
    ceil(R) prompts and the rest floor(R), so the mean over all the clients is
    ((1 - f) S(floor R) + f S(ceil R)) / R, S(n) the sum of ceil(i isl / P) over i = 1..n: continuous in R,
    and exact for C clients over ranks that differ by at most one. A prompt's first token comes at the end
    of an iteration, so a wave that fits one iteration waits exactly one, where the continuous form
    (R - 1) isl / (2 P) + ceil(isl / P) adds (R - 1) isl / (2 P); for isl a whole number of budgets the
    two agree. S(n) is a floor sum, summed in O(log P) integer steps (:func:`_ceil_sums`), so memory and
    time grow with the rows, not with R."""
    R, N_in, P = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (running, isl, budget)))
    for name, x in (("running", R), ("isl", N_in), ("budget", P)):
        if np.any(~np.isfinite(x) | (x <= 0)):
            raise CostmodelError(
                f"{name} must be finite and > 0, got {x[~np.isfinite(x) | (x <= 0)].flat[0]!r}"
            )
    whole = np.floor(R)
    share = R - whole  # of the ranks that run one prompt more
    # isl / P as a ratio of integers a / m: both scaled by 2^e, e <= 20 and small enough that the floor
    # sum's terms, below m (n + 1), stay inside int64 (a whole number of tokens, or of 2^-20 of one, exact)
    most = np.maximum(N_in, P) * (whole + 3.0)
    scale = np.ldexp(1.0, np.clip(np.floor(np.log2(2.0**60 / most)), -1000.0, 20.0).astype(np.int64))
    a = np.maximum(np.rint(N_in * scale), 1.0).astype(np.int64)  # at least one iteration per prompt
    m = np.maximum(np.rint(P * scale), 1.0).astype(np.int64)
    n = whole.astype(np.int64)
    low = _ceil_sums(n, a, m).astype(np.float64)
    high = low + (-((-(n + 1) * a) // m)).astype(np.float64)  # S(n + 1): prompt n + 1's own ceiling
    return np.asarray(((1.0 - share) * low + share * high) / R)


def wave_prompts_per_rank(running: npt.ArrayLike) -> FloatArray:
    """Mean prompts on a client's own rank in a wave of R prompts per rank [prompts]: R where the split is
    even; for a fractional R (:func:`wave_prefill_iterations`' uneven split, a share f = R - floor(R) of the
    ranks running ceil(R)) the mean over the clients, ((1 - f) floor(R)^2 + f ceil(R)^2) / R =
    R + f (1 - f) / R, more than R since the fuller ranks hold more of the clients."""
    R = np.asarray(running, dtype=np.float64)
    share = R - np.floor(R)
    return np.asarray(R + share * (1.0 - share) / R)


def _ceil_sums(n: npt.NDArray[np.int64], a: npt.NDArray[np.int64], m: npt.NDArray[np.int64]) -> FloatArray:
    """The sum of ceil(i a / m) over i = 1..n, elementwise for integers n >= 0, a >= 1, m >= 1: the floor
    sum of (a j + a + m - 1) / m over j = 0..n-1, reduced Euclid-like (a, m) -> (m mod a, a) in O(log m)
    steps (the standard floor_sum, e.g. AtCoder Library's ``floor_sum``,
    https://github.com/atcoder/ac-library/blob/master/atcoder/math.hpp), vectorised over the rows."""
    n, a, m = (np.array(x, dtype=np.int64) for x in np.broadcast_arrays(n, a, m))
    b = a + m - 1
    total = np.zeros(n.shape, dtype=np.int64)
    active = n > 0
    while np.any(active):
        total += np.where(active, (n * (n - 1) // 2) * (a // m) + n * (b // m), 0)
        a, b = np.where(active, a % m, a), np.where(active, b % m, b)
        top = a * n + b  # below m (n + 1)
        active &= top >= m
        n, b = np.where(active, top // m, n), np.where(active, top % m, b)
        a, m = np.where(active, m, a), np.where(active, a, m)
    return np.asarray(total, dtype=np.float64)


def _held(
    batch_wait: BatchWait | None,
    adp_balance: AdpBalance | None,
    *,
    rate: FloatArray,
    isl: FloatArray,
    decodes: FloatArray,
    ranks: float,
) -> FloatArray | None:
    """Decode-only iterations a steady-state prompt is held before its prefill: batch waiting and
    attention-DP balancing (each rank's arrivals ``rate``), None where the engine does neither."""
    if batch_wait is None and adp_balance is None:
        return None
    held = np.zeros_like(rate)
    if batch_wait is not None:
        held = held + held_iterations(batch_wait, arrivals=rate, isl=isl, decodes=decodes)
    if adp_balance is not None:
        held = held + balance_held_iterations(adp_balance, arrivals=rate, ranks=ranks)
    return np.asarray(held)


@dataclass(frozen=True)
class LoopParts:
    """What :func:`closed_loop` derives from the engine before its named parameters are applied: the rates
    and the kernel times of the three kinds of iteration (decode only, with one prompt's chunk, in a wave).
    Arrays follow broadcast(concurrency, isl, osl). A calibration evaluates :meth:`result` for many
    parameter sets without re-timing any kernel.
    ``concurrency`` is the whole loop's; ``running``, ``decodes``, ``requests_per_iteration`` and
    ``prompt_budget`` are one attention-DP rank's (of ``ranks``)."""

    concurrency: FloatArray
    isl: FloatArray
    osl: FloatArray
    running: FloatArray
    decodes: FloatArray
    requests_per_iteration: FloatArray
    chunks: FloatArray
    prompt_budget: FloatArray
    carrying_fraction: FloatArray
    decode_only_s: FloatArray
    with_prompt_s: FloatArray
    wave_s: FloatArray
    prefill_bound: npt.NDArray[np.bool_]
    ranks: float = 1.0
    layers: FloatArray | float = 0.0
    """Layers of an iteration with a prompt's chunk that run outside CUDA graphs, each paying
    ``prefill_layer_overhead_s``: the model's layers, or none where the iteration fits a captured graph."""
    wave_decode_s: FloatArray | None = None
    """A decode-only iteration of all ``running`` sequences, a wave's decodes [s]; None: ``decode_only_s``."""
    tokens_per_iteration: float = 1.0
    """Tokens a decoding sequence gains per iteration, E [tokens]: 1, or more with speculative decoding."""
    wave_layers: FloatArray | float | None = None
    """As ``layers``, for an iteration of a wave (more prompt tokens); None: ``layers``."""
    arrival_wait: FloatArray | float = 0.5
    """Iterations a staggered arrival waits for the scheduler to read it, I / 2 [-] (``poll_iterations``
    I of :func:`loop_parts`; 0.5 for an engine that reads its queue before every iteration)."""
    held_iterations: FloatArray | None = None
    """Decode-only iterations a prompt of the steady state is held before its prefill
    (:mod:`costmodel.batch_wait`, :mod:`costmodel.adp_balance`); None: none."""
    mla_layers: float = 0.0
    """The model's multi-head latent attention layers, each paying ``mla_prefill_layer_overhead_s`` in an
    iteration with prompt tokens."""
    wave_share: FloatArray | None = None
    """The share of the requests that arrive in a wave where the benchmark fixes it, f [-]; None: the
    engine's ``burst_fraction``."""
    overlap_host: bool = False
    """Whether the host's work of an iteration (``step_overhead_s``) overlaps the GPU's work of the previous
    one, so an iteration lasts max(kernels, host) rather than their sum (:meth:`step_s`)."""
    wave_iterations: FloatArray | None = None
    """Mean wave iterations until an admitted prompt of a wave has its first token, the mean over i = 1..R
    of ceil(i isl / P) (:func:`wave_prefill_iterations`); None: the continuous (R - 1) isl / (2 P) +
    ceil(isl / P)."""

    step_layers: float = 0.0
    """The model's layers, each paying ``layer_step_overhead_s`` in every iteration [-]."""

    host_passes: float = 1.0
    """Forward passes an iteration prepares on the host [-], >= 1, each paying ``overlapped_host_s``, after
    the kernels or, with :attr:`overlap_host`, beside them (:meth:`step_s`, :func:`host_bound_s`): 1 for a
    plain iteration; a speculative worker that drafts, verifies and extends the draft in passes of their own
    pays one per pass (``host_passes`` of :func:`loop_parts`)."""

    train: bool = False
    """Whether the clients' prompts arrive in a train, one iteration apart, so that the iterations ahead of
    a prompt's first token carry the neighbouring clients' prompts (:func:`loop_parts`)."""

    def step_s(self, kernels_s: npt.ArrayLike, params: LoopParams) -> FloatArray:
        """One iteration whose kernels take ``kernels_s`` [s] (and ``layer_step_overhead_s`` per layer of
        :attr:`step_layers`, GPU work like them), with the host's work: ``step_overhead_s`` on the critical
        path, and ``overlapped_host_s`` once per pass of :attr:`host_passes`, after the kernels, or, with
        :attr:`overlap_host`, beside them (the longer of the kernels and the passes counts;
        :func:`host_bound_s`)."""
        return engine_step_s(
            kernels_s,
            params,
            step_layers=self.step_layers,
            host_passes=self.host_passes,
            overlap=self.overlap_host,
        )

    def result(self, params: LoopParams) -> ClosedLoop:
        """TTFT, TPOT and rates with ``params`` applied."""
        rate, iteration = self.requests_per_iteration, self.iteration_s(params)
        share = params.burst_fraction if self.wave_share is None else self.wave_share
        steady = self.steady_ttft_s(params, iteration)  # once: the wave's TTFT reads it too
        ttft = (1.0 - share) * steady + share * self.wave_ttft_s(params, steady)
        return ClosedLoop(
            ttft_s=np.asarray(ttft),
            tpot_s=np.asarray(
                ((1.0 - share) * iteration + share * self.wave_tpot_s(params)) / self.tokens_per_iteration
            ),
            iteration_s=np.asarray(iteration),
            decodes_per_iteration=np.asarray(self.decodes * self.ranks),
            prefill_tokens_per_iteration=np.asarray(rate * self.isl * self.ranks),
            running=np.asarray(self.running * self.ranks),
            prefill_bound=np.asarray(self.prefill_bound),
            requests_per_s=np.asarray(rate * self.ranks / iteration),
            output_tokens_per_s=np.asarray(rate * self.ranks * self.osl / iteration),
        )

    def iteration_s(self, params: LoopParams) -> FloatArray:
        """Mean engine iteration time [s]: the share carrying a prompt chunk, the rest decode only."""
        carrying = self.carrying_fraction
        with_prompt = self.step_s(self._with_prompt_s(params), params)
        return np.asarray(carrying * with_prompt + (1.0 - carrying) * self.step_s(self.decode_only_s, params))

    def _with_prompt_s(self, params: LoopParams) -> FloatArray:
        """An iteration carrying one prompt's chunk, its host cost per layer included [s]."""
        return np.asarray(self.with_prompt_s + self._prefill_host_s(params))

    def _prefill_host_s(self, params: LoopParams, layers: FloatArray | float | None = None) -> FloatArray:
        """Fixed cost of a pass with prompt tokens beyond its kernels: per layer outside CUDA graphs
        (``layers``, default :attr:`layers`) and per MLA layer [s]."""
        return prefill_host_s(params, self.layers if layers is None else layers, self.mla_layers)

    def _wave_s(self, params: LoopParams) -> FloatArray:
        """An iteration of a wave, its host cost per layer included [s]."""
        layers = self.layers if self.wave_layers is None else self.wave_layers
        return np.asarray(self.wave_s + self._prefill_host_s(params, layers))

    def steady_ttft_s(self, params: LoopParams, iteration: FloatArray | None = None) -> FloatArray:
        """Mean TTFT of the steady state [s]: half an iteration of wait, the queue, the prompt's chunks
        (``iteration``: :meth:`iteration_s` of ``params`` where the caller has it)."""
        # Little's law on the loop: a cycle is C / rate iterations, osl - 1 of them decoding; what is not
        # the half-iteration wait or the prompt's own chunks is queueing, at the mean iteration time
        clients = self.concurrency / self.ranks  # one rank's
        chunks = self.chunks
        steps = (self.osl - 1.0) / self.tokens_per_iteration
        # a train's prompt waits TRAIN_ITERATIONS iterations ahead of it in place of the arrival wait
        wait = np.where(self.train, TRAIN_ITERATIONS, self.arrival_wait)
        queued = np.maximum(clients / self.requests_per_iteration - steps - wait - chunks, 0.0)
        prompt = chunks * self.step_s(self._with_prompt_s(params), params)
        if self.held_iterations is not None:  # held in decode-only iterations before its prefill
            prompt = prompt + self.held_iterations * self.step_s(self.decode_only_s, params)
        mean = self.iteration_s(params) if iteration is None else iteration
        if self.train:  # the iterations ahead carry the train's neighbouring prompts, but at its head
            share = np.clip(1.0 - (TRAIN_ITERATIONS + 1.0) / (2.0 * clients), 0.0, 1.0)
            with_prompt = self.step_s(self._with_prompt_s(params), params)
            ahead = TRAIN_ITERATIONS * (share * with_prompt + (1.0 - share) * mean)
            return np.asarray(params.request_overhead_s + queued * mean + ahead + prompt)
        lag = (wait + queued + params.first_token_lag_iterations) * mean
        return np.asarray(params.request_overhead_s + lag + prompt)

    def wave_tpot_s(self, params: LoopParams) -> FloatArray:
        """Mean time per decode iteration of a wave's requests, its wait spread over them [s] (per token
        without speculative decoding): the R admitted ones decode together in decode-only iterations of R
        after waiting R isl / P less their mean :attr:`wave_iterations` wave iterations on average for the
        rest of the wave's prompts (for a fractional R, the clients' mean of their own rank's prompt work,
        :func:`wave_prompts_per_rank`), spread over their (osl - 1) / E iterations. Clients past R are
        admitted as a wave ends, R at a time, so their waves are alike."""
        decode = self.decode_only_s if self.wave_decode_s is None else self.wave_decode_s
        if self.wave_iterations is None:
            wait = np.maximum((self.running + 1.0) * self.isl / (2.0 * self.prompt_budget) - self.chunks, 0.0)
        else:  # the prompt work of a client's rank left once its prompt is done: n isl / P, n that rank's
            # prompts (a client's mean, the same uneven split as the wave's TTFT), less its own iterations
            work = wave_prompts_per_rank(self.running) * self.isl / self.prompt_budget
            wait = np.maximum(work - self.wave_iterations, 0.0)
        iterations = (self.osl - 1.0) / self.tokens_per_iteration
        return np.asarray(
            self.step_s(decode, params) + wait * self.step_s(self._wave_s(params), params) / iterations
        )

    def wave_ttft_s(self, params: LoopParams, steady: FloatArray | None = None) -> FloatArray:
        """Mean TTFT of a wave of every client's prompt arriving at once [s] (the benchmark's first cycle):
        the R admitted prompts prefilled first come first served, the mean over i = 1..R of ceil(i isl / P)
        wave iterations (:attr:`wave_iterations`), P the prompt budget; clients past R pay the steady
        state's TTFT, and at least the admitted prompts' mean: they arrived with the wave and wait for its
        slots to free, so more clients than slots never lower a wave's mean TTFT (``steady``:
        :meth:`steady_ttft_s` of ``params`` where the caller has it)."""
        running, clients = self.running, self.concurrency / self.ranks
        iterations = (
            (running - 1.0) * self.isl / (2.0 * self.prompt_budget) + self.chunks
            if self.wave_iterations is None
            else self.wave_iterations
        )
        admitted = params.request_overhead_s + iterations * self.step_s(self._wave_s(params), params)
        # the lagging first token comes with the next iterations' outputs: the wave's decodes
        decode = self.decode_only_s if self.wave_decode_s is None else self.wave_decode_s
        admitted = admitted + params.first_token_lag_iterations * self.step_s(decode, params)
        steady = self.steady_ttft_s(params) if steady is None else steady
        rest = (clients - running) * np.maximum(steady, admitted)
        return np.asarray((running * admitted + rest) / clients)


def _share(wave_share: npt.ArrayLike) -> FloatArray:
    """``wave_share`` checked: finite, in [0, 1]."""
    share = np.asarray(wave_share, dtype=np.float64)
    if np.any(~np.isfinite(share) | (share < 0) | (share > 1)):
        raise CostmodelError("wave_share must be in [0, 1]")
    return share


def _request_rate(
    decodes: FloatArray,
    running: FloatArray,
    isl: FloatArray,
    steps: FloatArray,
    budget: float,
    wait: FloatArray | float = 0.5,
) -> tuple[FloatArray, FloatArray]:
    """Requests completed per iteration, and the chunks a prompt is prefilled in, given D decodes.

    A prompt waits ``wait`` iterations (half of one when the scheduler reads its queue every iteration),
    then takes ceil(isl / (budget - D)) iterations; Little's law on the R admitted sequences gives
    R / (osl - 1 + those iterations); the prompt budget caps the rate at (budget - D) / isl.
    """
    free = np.maximum(budget - decodes, 1.0)
    chunks = np.ceil(isl / free)
    rate = np.minimum(running / (steps + wait + chunks), free / isl)
    return np.asarray(rate), np.asarray(chunks)


def no_cache_room(engine: Engine, short: str) -> CostmodelError:
    """The error for an engine that cannot hold one request: ``short`` (the request is too long for the
    cache), unless the weights and activations leave no KV cache at all, where a smaller cache format or
    shorter requests cannot help: that says so and names what can."""
    if engine.kv_capacity_tokens() < 1:
        return CostmodelError(
            "the weights leave no room for a KV cache on each GPU of this layout; use more GPUs per worker "
            "(tp, pp, ep) or a smaller weight format"
        )
    return CostmodelError(short)


def _admitted(
    engine: Engine,
    concurrency: FloatArray,
    isl: FloatArray,
    osl: FloatArray,
    reserved_tokens: npt.ArrayLike | None,
    n: float,
) -> tuple[float, float, FloatArray]:
    """One attention-DP rank's share of the clients, limits and cache (all of them without attention DP):
    (ranks, the rank's token budget per iteration [tokens], the sequences R it runs at once), R limited by
    the clients, ``max_batch_size``, the KV cache (each sequence holding ``reserved_tokens``, default
    isl + osl / 2) and the budget at ``n`` tokens per sequence and iteration (:func:`loop_parts`)."""
    C, N_in, N_out = concurrency, isl, osl
    ranks = float(engine.deployment.attention_dp)
    if np.any(ranks > C):
        raise CostmodelError(
            f"concurrency ({float(np.min(C)):g}) is below attention_dp ({ranks:g}): the model spreads the "
            "clients evenly over the ranks and does not model idle ranks; use at least one client per rank"
        )
    budget = float(engine.max_batched_tokens) / ranks
    held = N_in + N_out / 2.0 if reserved_tokens is None else np.asarray(reserved_tokens, dtype=np.float64)
    if np.any(~np.isfinite(held) | (held < 1)):
        raise CostmodelError("reserved_tokens must be finite and >= 1 [tokens]")
    fits = engine.max_concurrency(np.ceil(np.broadcast_to(held, C.shape))).max_sequences / ranks
    R = np.minimum(C / ranks, np.minimum(engine.max_batch_size / ranks, np.asarray(fits, dtype=np.float64)))
    if np.any(R < 1):
        raise no_cache_room(
            engine,
            "not even one sequence of isl + osl / 2 tokens fits in the engine's KV cache; "
            "use more GPUs, a smaller kv_dtype, or shorter requests",
        )
    return ranks, budget, np.minimum(R, (budget - 1.0) / n)


def draft_time(
    parts: _Parts, speculation: Speculation | None, batch: FloatArray, context: FloatArray
) -> FloatArray:
    """The drafts of one speculative decoding iteration of ``batch`` sequences at ``context`` tokens [s]:
    k draft steps of c plain decoding steps each (with ``draft_head``: c of the step less its output
    head, plus the head); 0 without ``speculation``. One function for the aggregated loop and the
    disaggregated decode pool (:func:`costmodel.disagg.decode_side`), so both price a draft alike."""
    if speculation is None:
        return np.zeros(np.shape(batch))
    plain = parts.step_time(decode_batch=batch, decode_context=context)
    if not speculation.draft_head:
        return np.asarray(speculation.draft_tokens * speculation.draft_cost_ratio * plain)
    head = parts.output_head_s(batch)
    step = speculation.draft_cost_ratio * (plain - head) + head
    return np.asarray(speculation.draft_tokens * step)


def _iteration_times(
    engine: Engine,
    speculation: Speculation | None,
    *,
    ranks: float,
    running: FloatArray,
    decodes: FloatArray,
    n: float,
    isl: FloatArray,
    osl: FloatArray,
    chunk: FloatArray,
    tokens: FloatArray,
    free: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The four iterations of :func:`loop_parts` [s], each with its speculative drafts: one carrying a
    prompt's chunk (``tokens`` prompt tokens beside the ``decodes``), a decode-only one, one of a wave
    (every waiting prompt token up to the ``free`` budget) and a wave's decode-only one (all ``running``
    sequences); per rank, at the mean context isl + osl / 2."""
    R, D, N_in = running, decodes, isl
    context = N_in + osl / 2.0
    parts = engine.parts  # the iterations share their decodes' passes, evaluated once

    def draft_s(decodes: FloatArray) -> FloatArray:
        return draft_time(parts, speculation, decodes * ranks, context)

    # their ten or so distinct passes evaluated as three or four (:meth:`costmodel.serving._Parts.together`)
    return parts.together(lambda: _four(parts, draft_s, ranks, R, D, n, N_in, context, chunk, tokens, free))


def _four(
    parts: _Parts,
    draft_s: Callable[[FloatArray], FloatArray],
    ranks: float,
    R: FloatArray,
    D: FloatArray,
    n: float,
    N_in: FloatArray,
    context: FloatArray,
    chunk: FloatArray,
    tokens: FloatArray,
    free: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """:func:`_iteration_times`' four iterations."""
    # an iteration's prompt tokens are separate prompts of one packed call, each attending to itself
    # alone: tokens / isl whole prompts (:func:`costmodel.serving.prompt_pieces`), a chunk of isl /
    # chunks after (isl - chunk) / 2 when a prompt takes several iterations
    with_prompt = parts.step_time(
        decode_batch=D * ranks,
        decode_context=context,
        prefill_tokens=tokens * ranks,
        prompt_len=N_in,
        decode_new_tokens=n,
    ) + draft_s(D)
    decode_only = parts.step_time(
        decode_batch=D * ranks, decode_context=context, decode_new_tokens=n
    ) + draft_s(D)
    # an iteration of a wave of R prompts: as many prompt tokens as are waiting, up to the budget
    wave = parts.step_time(
        decode_batch=D * ranks,
        decode_context=context,
        prefill_tokens=np.minimum(R * N_in, free) * ranks,
        prompt_len=N_in,
        decode_new_tokens=n,
    ) + draft_s(D)
    # after a wave's prompts its R sequences decode together, no prompt between them
    wave_decode = parts.step_time(
        decode_batch=R * ranks, decode_context=context, decode_new_tokens=n
    ) + draft_s(R)
    return with_prompt, decode_only, wave, wave_decode
