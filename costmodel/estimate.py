"""The orchestration layer: one call from (model, hardware, workload) to the figures people read.

:func:`size` gives sizes (parameters, memory, FLOPs, whether it fits); :func:`estimate` adds time,
throughput and cost from the per-operator roofline; :func:`sweep` runs a grid into a tidy DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from costmodel import checks
from costmodel.errors import CostmodelError
from costmodel.execution import has_trtllm_launches
from costmodel.flops import Recompute, forward_flop
from costmodel.memory import (
    Sparsity,
    checkpoint_formats,
    fit,
    kv_bytes_per_token,
    kv_cache_bytes,
    training_memory,
    weight_bytes,
)
from costmodel.ops import AttentionImpl, Op, forward_ops
from costmodel.params import param_count
from costmodel.registry import load_hardware, load_model
from costmodel.roofline import (
    Link,
    OpTimes,
    compute_peak_flop_per_s,
    link_bandwidth_bytes_per_s,
    op_times,
    sparsity_speedup,
)
from costmodel.specs import Deployment, Efficiency, HardwareProfile, ModelProfile, Workload, check_context

if TYPE_CHECKING:  # pandas costs ~0.4 s to import: only the table-making functions load it
    import pandas as pd


@dataclass(frozen=True)
class SizingReport:
    """Sizes for serving ``batch_size`` sequences of ``prompt_len`` + ``output_len`` tokens on one
    ``tp x pp`` replica.

    ``weight_bytes``, ``kv_bytes_per_token`` and ``kv_cache_bytes`` are exact counts for the whole model
    and batch (one copy, however it is split); ``weight_bytes`` is the checkpoint's weights alone, without
    the engine's load-time MLA copies (:func:`costmodel.memory.mla_absorb_copy_bytes`), which
    ``weight_bytes_per_gpu`` includes. The ``*_per_gpu`` figures, ``fits`` and the limits are per device,
    from :func:`costmodel.memory.fit`, as in :class:`Report`.
    """

    model: str
    hardware: str
    tp: int
    pp: int
    n_gpus: int
    batch_size: int
    prompt_len: int
    output_len: int
    weight_dtype: str
    kv_dtype: str
    activation_dtype: str
    sparsity: str
    params_total: int
    params_active: int
    weight_bytes: int
    kv_bytes_per_token: int
    kv_cache_bytes: int
    weight_bytes_per_gpu: float
    kv_cache_bytes_per_gpu: float
    activation_bytes_per_gpu: float
    memory_bytes_per_gpu: float
    capacity_bytes_per_gpu: float
    fits: bool
    max_batch_size: int
    max_context_len: int
    prefill_flop: float
    decode_flop_per_token: float
    attention_dp: int = 1
    """Attention data-parallel ranks of the replica; ``batch_size`` is spread over them [-]."""
    checkpoint: str | None = None
    """The published checkpoint whose storage formats the weights follow (``weight_dtype`` is then the
    format of its components without one of their own); None: ``weight_dtype`` throughout."""
    engine: str = "vllm"
    """The serving engine whose load-time W_UK / W_UV copies an MLA model's weights include
    (:func:`costmodel.memory.mla_absorb_copy_bytes`); default vLLM, as in :func:`estimate`."""

    def to_dict(self) -> dict[str, object]:
        """Plain types only, for JSON."""
        return asdict(self)


def size(
    model: ModelProfile | str,
    hardware: HardwareProfile | str,
    *,
    batch_size: int,
    prompt_len: int,
    output_len: int,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    sparsity: Sparsity = "none",
    deployment: Deployment | None = None,
    usable_fraction: float = 0.9,
    checkpoint: str | None = None,
    engine: str = "vllm",
) -> SizingReport:
    """Memory and FLOPs of one serving workload on one replica of ``deployment`` (default one GPU).

    Memory is per device (:func:`costmodel.memory.fit`, the model :func:`estimate` uses): the KV cache
    for the full ``prompt_len + output_len`` context, activations of one prefill chunk of the prompt.
    Decoding ``output_len`` tokens one at a time attends to exactly the keys a causal pass over them
    would, so the decode FLOPs are one causal forward of ``output_len`` new tokens on top of ``prompt_len``
    past ones.

    ``checkpoint`` names one of the model's published checkpoints
    (:func:`costmodel.memory.shipped_checkpoints`: ``"release"``, ``"fp8"``, ``"nvfp4"``, ...): the
    weights are then stored as it stores them, each component in its own format, and ``weight_dtype``
    must be left at its default or equal the checkpoint's ``weight_dtype``.

    ``engine`` (``"vllm"``, ``"sglang"``, ``"trtllm"``; default vLLM, as :func:`estimate`'s default
    efficiency) is the serving engine whose load-time W_UK / W_UV copies an MLA model's weights include
    on ``hardware`` (:func:`costmodel.memory.mla_absorb_copy_bytes`): the same input sizes the same as
    :func:`estimate` with an efficiency of that ``kernel_engine``.
    """
    for field, value in (("batch_size", batch_size), ("prompt_len", prompt_len), ("output_len", output_len)):
        if value < (0 if field == "output_len" else 1):
            raise ValueError(f"{field} must be a positive integer, got {value}")
    m, hw = load_model(model), load_hardware(hardware)
    dep = deployment or Deployment()
    dep.check(m)
    check_context(m, prompt_len, output_len)
    context = prompt_len + output_len
    component_dtypes: dict[str, str] = {}
    if checkpoint is not None:
        stored, component_dtypes = checkpoint_formats(m, checkpoint)
        if weight_dtype not in ("bf16", stored):
            raise CostmodelError(
                f"weight_dtype {weight_dtype!r} contradicts checkpoint {checkpoint!r} (which stores its "
                f"other weights in {stored}); give one or the other"
            )
        weight_dtype = stored
    f = fit(
        m,
        hw,
        batch_size=batch_size,
        context_len=context,
        prompt_len=prompt_len,
        tp=dep.tp,
        pp=dep.pp,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        activation_dtype=activation_dtype,
        sparsity=sparsity,
        usable_fraction=usable_fraction,
        attention_dp=dep.attention_dp,
        component_dtypes=component_dtypes,
        engine=engine,
    )
    p = param_count(m)
    prefill = forward_flop(m, batch_size=batch_size, new_tokens=prompt_len, logits="last").total
    decode = forward_flop(m, batch_size=batch_size, new_tokens=output_len, past_tokens=prompt_len).total
    per_token = float(decode) / (batch_size * output_len) if output_len else 0.0
    return SizingReport(
        model=m.name,
        hardware=hw.name,
        tp=dep.tp,
        pp=dep.pp,
        n_gpus=dep.gpus_per_replica,
        batch_size=batch_size,
        prompt_len=prompt_len,
        output_len=output_len,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        activation_dtype=activation_dtype,
        sparsity=sparsity,
        params_total=p.total,
        params_active=p.active,
        weight_bytes=weight_bytes(
            m, weight_dtype=weight_dtype, sparsity=sparsity, component_dtypes=component_dtypes
        ),
        kv_bytes_per_token=kv_bytes_per_token(m, kv_dtype=kv_dtype),
        kv_cache_bytes=int(kv_cache_bytes(m, batch_size=batch_size, context_len=context, kv_dtype=kv_dtype)),
        weight_bytes_per_gpu=f.weight_bytes_per_gpu,
        kv_cache_bytes_per_gpu=float(f.kv_cache_bytes_per_gpu),
        activation_bytes_per_gpu=float(f.activation_bytes_per_gpu),
        memory_bytes_per_gpu=float(f.memory_bytes_per_gpu),
        capacity_bytes_per_gpu=f.capacity_bytes_per_gpu,
        fits=bool(f.fits),
        max_batch_size=int(f.max_batch_size),
        max_context_len=int(f.max_context_len),
        prefill_flop=float(prefill),
        decode_flop_per_token=per_token,
        attention_dp=dep.attention_dp,
        checkpoint=checkpoint,
        engine=engine,
    )


# ----------------------------------------------------------------------------------------------------
# Performance: time, throughput, cost
# ----------------------------------------------------------------------------------------------------

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Setup:
    """Everything a pass needs besides the token counts."""

    model: ModelProfile
    hardware: HardwareProfile
    workload: Workload
    deployment: Deployment
    efficiency: Efficiency
    attention_impl: AttentionImpl
    link: Link

    def ops(
        self, batch: Any, new: Any, past: Any, logits: Literal["all", "last"], draft_tokens: Any = 0
    ) -> tuple[Op, ...]:
        w, dep = self.workload, self.deployment
        return forward_ops(
            self.model,
            # the replica's sequences, spread evenly over its attention-DP ranks (balanced: every rank
            # takes as long as the slowest)
            batch_size=np.asarray(batch, dtype=np.float64) / dep.attention_dp,
            new_tokens=new,
            past_tokens=past,
            weight_dtype=w.weight_dtype,
            activation_dtype=w.activation_dtype,
            kv_dtype=w.kv_dtype,
            attention_impl=self.attention_impl,
            logits=logits,
            tp=dep.tp,
            ep=dep.moe_ep_size,
            sparsity=w.sparsity,
            attention_dp=dep.attention_dp,
            moe_tp=dep.moe_tp_size,
            expert_dtype=w.expert_dtype,
            expert_activation_dtype=w.expert_activation_dtype,
            component_dtypes=w.component_formats or None,
            count_launches=self.efficiency.execution_mode == "eager",  # read only by eager timing
            # an engine's eager pass launches that engine's kernels: TensorRT-LLM's are counted apart for the
            # layer they were counted from (DeepSeek-V3's); another model keeps the reference decoder's count
            launch_counts="trtllm"
            if self.efficiency.kernel_engine == "trtllm" and has_trtllm_launches(self.model)
            else "reference",
            norm_in_allreduce=self.efficiency.norm_in_allreduce,
            # TensorRT-LLM's nvfp4 MoE quantizes its inputs before the attention-DP all-gather
            # (``CutlassFusedMoE`` / ``TRTLLMGenFusedMoE``, unless TLLM_DISABLE_FP4_ALLGATHER=1)
            quantized_moe_gather=self.efficiency.kernel_engine == "trtllm",
            draft_tokens=draft_tokens,
        )

    @property
    def kernels(self) -> bool:
        """Whether operators are timed by the kernel models (:mod:`costmodel.kernel_times`)."""
        from costmodel.kernel_times import uses_kernels

        return uses_kernels(self.hardware, self.efficiency)

    def times(self, ops: tuple[Op, ...]) -> OpTimes:
        if self.kernels:
            from costmodel import kernel_times

            return kernel_times.op_times(
                ops,
                self.hardware,
                weight_dtype=self.workload.weight_dtype,
                activation_dtype=self.workload.activation_dtype,
                expert_dtype=self.workload.experts_weight_dtype,
                expert_activation_dtype=self.workload.experts_activation_dtype,
                efficiency=self.efficiency,
                link=self.link,
                scale_up_domain=scale_up_domain_size(self.hardware, self.deployment),
            )
        return op_times(
            ops,
            self.hardware,
            activation_dtype=self.workload.activation_dtype,
            efficiency=self.efficiency,
            link=self.link,
            scale_up_domain=scale_up_domain_size(self.hardware, self.deployment),
        )

    def stage_send_s(self, sequences: Any, tokens_per_seq: Any) -> FloatArray:
        """One send of ``sequences`` x ``tokens_per_seq`` hidden states (the bf16 residual stream) from one
        pipeline stage to the next [s]. Each of the tp GPUs sends 1/tp of it over its own link and the
        receiving group all-gathers it over the intra-node link (the scatter/gather optimisation of
        Narayanan et al. 2021 §4.1), plus one launch."""
        dep, eff = self.deployment, self.efficiency
        p2p_link = link_for(dep.gpus_per_replica, self.hardware, dep)
        # each attention-DP rank sends its own share of the sequences over its own links
        hidden = (
            np.asarray(sequences) * np.asarray(tokens_per_seq) * self.model.d_model * 2.0 / dep.attention_dp
        )
        bw = link_bandwidth_bytes_per_s(self.hardware, p2p_link) * eff.interconnect_fraction
        send = hidden / dep.tp / bw
        if dep.tp > 1:
            gather_bw = (
                link_bandwidth_bytes_per_s(self.hardware, _tp_link(dep, self.hardware))
                * eff.interconnect_fraction
            )
            send = send + (dep.tp - 1) / dep.tp * hidden / gather_bw
        return np.asarray(send + eff.kernel_overhead_s)

    def microbatches(self, batch: Any) -> tuple[FloatArray, FloatArray]:
        """Pipeline micro-batches of whole sequences for ``batch`` sequences at inference: m = min(pp (or
        ``deployment.microbatches``), batch) of ceil(batch / m) sequences each (the largest one sets the
        pace). One micro-batch (``microbatches=1``) holds the whole batch unsplit: a mean (fractional)
        batch of at least one stays as it is, as at pp = 1. Returns (m, sequences per micro-batch)."""
        B = np.asarray(batch, dtype=np.float64)
        M = float(self.deployment.microbatches or self.deployment.pp)
        m = np.minimum(M, B)
        return m, np.ceil(B / m) if M > 1 else np.maximum(B, 1.0)

    def pipelined_pass(self, time_fn: Any, batch: Any, tokens_per_seq: Any) -> FloatArray:
        """Time until the last of ``batch`` sequences leaves a one-off pass (a prefill) [s].

        ``time_fn(b)`` is the time of b sequences through all layers on one tensor-parallel group, i.e. the
        sum of the pp stage times. The m micro-batches follow one another through the stages (GPipe fill
        and drain, Huang et al. 2019): (m + pp - 1) stage times of time_fn(b) / pp, plus the last
        micro-batch's pp - 1 sends. One sequence (m = 1) takes time_fn(1) + (pp - 1) sends: the stages
        run in turn, none in parallel.
        """
        pp = self.deployment.pp
        if pp == 1:
            return np.asarray(time_fn(batch))
        m, b = self.microbatches(batch)
        through = np.asarray(time_fn(b))
        return np.asarray((m + pp - 1) / pp * through + (pp - 1) * self.stage_send_s(b, tokens_per_seq))

    def pipelined_steps(self, time_fn: Any, batch: Any, tokens_per_seq: Any, steps: Any = 1.0) -> FloatArray:
        """Time of ``steps`` consecutive steps (decode or verification) of ``batch`` sequences [s].

        ``time_fn(b)`` is as in :meth:`pipelined_pass` (for ``steps`` > 1, the sum of the steps' times).
        A sequence's next step needs its previous token, so each micro-batch walks the stages in turn:
        one step of it takes time_fn(b) + (pp - 1) sends. While it walks, the other m - 1 micro-batches
        occupy the other stages, so the pipeline stays full when m = pp and adds no fill or drain per step
        (vLLM runs one scheduler per stage, each with its own batch in flight, "saturating all pipeline
        stages": https://github.com/vllm-project/vllm/issues/11945). With more micro-batches than stages,
        each stage must serve all m in turn: a cycle is max(time_fn(b) + (pp - 1) sends, m time_fn(b) / pp).
        Every sequence advances one token per cycle. Over ``steps`` steps the max is taken of the sums:
        exact when m <= pp (the default), where the walk always dominates.
        """
        pp = self.deployment.pp
        if pp == 1:
            return np.asarray(time_fn(batch))
        m, b = self.microbatches(batch)
        through = np.asarray(time_fn(b))
        walk = through + np.asarray(steps) * (pp - 1) * self.stage_send_s(b, tokens_per_seq)
        return np.asarray(np.maximum(walk, m / pp * through))


def scale_up_domain_size(hardware: HardwareProfile, deployment: Deployment) -> int:
    """Devices the intra-node (scale-up) link joins [-]: the profile's NVLink / Infinity Fabric domain
    where its datasheet states one (72 on a GB200 NVL72 rack, whose compute trays hold 4 GPUs), else the
    deployment's ``gpus_per_node``."""
    entry = hardware.datasheet.scale_up_domain_size
    return int(entry.value) if entry is not None else deployment.gpus_per_node


def link_for(group_size: int, hardware: HardwareProfile, deployment: Deployment) -> Link:
    """The link a collective among ``group_size`` devices runs on: the intra-node link while the group
    fits one scale-up domain (:func:`scale_up_domain_size`), the inter-node network beyond."""
    return "intra" if group_size <= scale_up_domain_size(hardware, deployment) else "inter"


def _tp_link(dep: Deployment, hw: HardwareProfile | None = None) -> Link:
    """Tensor (and expert) parallel collectives run among the ``tp`` devices of a replica (without a
    hardware profile: the domain is ``gpus_per_node``)."""
    if hw is None:
        return "intra" if dep.tp <= dep.gpus_per_node else "inter"
    return link_for(dep.tp, hw, dep)


def _affine_max_sum(
    x0: FloatArray, x1: FloatArray, y0: FloatArray, y1: FloatArray, n: FloatArray
) -> FloatArray:
    """sum_{j=0}^{n-1} max(x0 + x1 j, y0 + y1 j), exactly, elementwise over arrays."""

    def affine(c0: FloatArray, c1: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
        count = np.maximum(hi - lo, 0.0)
        return np.asarray(count * c0 + c1 * count * (lo + hi - 1) / 2)

    g0, g1 = x0 - y0, x1 - y1
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.where(g1 != 0, -g0 / np.where(g1 != 0, g1, 1.0), 0.0)
    k = np.where(g1 > 0, np.ceil(root), np.where(g1 < 0, np.floor(root) + 1, n))
    k = np.clip(k, 0, n)
    lower_is_x = np.where(g1 == 0, g0 >= 0, g1 < 0)
    zero = np.zeros_like(k)
    with_x_low = affine(x0, x1, zero, k) + affine(y0, y1, k, n)
    with_y_low = affine(y0, y1, zero, k) + affine(x0, x1, k, n)
    return np.asarray(np.where(lower_is_x, with_x_low, with_y_low))


def _decode_total_s(setup: _Setup, batch: Any, start: Any, steps: Any) -> FloatArray:
    """Time of ``steps`` decode steps of ``batch`` sequences, the first attending to ``start`` cached
    tokens, exactly: within a stretch where every operator's FLOPs and bytes are affine in the step
    index (always, but for the kink where a sliding window fills up), each operator's max(compute,
    memory) sums in closed form (see :func:`_affine_max_sum`); no loop over tokens."""
    start = np.asarray(start, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.float64)
    if setup.kernels:
        return _decode_total_quadrature_s(setup, batch, start, steps)
    window = setup.model.sliding_window
    if window is None:
        segments = [(np.zeros_like(start), steps)]
    else:
        kink = np.clip(window - start, 0, steps)  # step index from which the window is full
        segments = [(np.zeros_like(start), kink), (kink, steps)]

    def one_pass_sum(b: Any) -> FloatArray:
        total: FloatArray = np.zeros(())
        for lo, hi in segments:
            t0 = setup.times(setup.ops(b, 1, start + lo, "all"))
            t1 = setup.times(setup.ops(b, 1, start + lo + 1, "all"))
            for i, layers in enumerate(t0.layers):
                fixed = t0.communication_s[i] + t0.overhead_s
                c0, m0 = t0.compute_s[i], t0.memory_s[i]
                c1, m1 = t1.compute_s[i] - c0, t1.memory_s[i] - m0
                steps_here = np.asarray(hi - lo, dtype=np.float64)
                total = total + layers * (
                    _affine_max_sum(c0 + 0 * steps_here, c1, m0 + 0 * steps_here, m1, steps_here)
                    + fixed * steps_here
                )
        return total

    return setup.pipelined_steps(one_pass_sum, batch, 1, steps)


DECODE_QUADRATURE_POINTS = 9
"""Contexts at which :func:`_decode_total_quadrature_s` times a decode step [-]."""


def _decode_total_quadrature_s(setup: _Setup, batch: Any, start: FloatArray, steps: FloatArray) -> FloatArray:
    """Time of ``steps`` decode steps with the kernel models, which are not affine in the context (split-K
    chunks, waves). Only attention depends on the context: every other operator is timed once, and each
    attention operator at ``DECODE_QUADRATURE_POINTS`` evenly spaced step indices, summed by the
    trapezoid rule over the steps (exact where its time is affine between the points; exact for up to that
    many steps, which are timed one by one)."""
    from dataclasses import replace

    from costmodel import kernel_times
    from costmodel.kernel_shapes import AttentionShape
    from costmodel.roofline import host_s

    k = DECODE_QUADRATURE_POINTS
    n = np.maximum(steps, 1.0)[..., None]
    few = n <= k
    # step indices: 0 .. n - 1 one by one when few, else evenly spaced with trapezoid weights
    grid = np.arange(k, dtype=np.float64)
    j = np.where(few, np.minimum(grid, n - 1.0), grid / (k - 1) * (n - 1.0))
    trapezoid = np.full(k, 1.0 / (k - 1))
    trapezoid[[0, -1]] /= 2.0
    weights = np.where(few, (grid < n).astype(np.float64), trapezoid * n)

    def one_pass_sum(b: Any) -> FloatArray:
        ops = setup.ops(b, 1, start, "all")
        times = setup.times(ops)
        varying = [i for i, op in enumerate(ops) if op.kind == "attention"]
        if not all(isinstance(ops[i].kernel, AttentionShape) for i in varying):  # e.g. a top-k indexer
            b = np.asarray(b, dtype=np.float64)[..., None]
            t = setup.times(setup.ops(b, 1, start[..., None] + j, "all")).total_s
            return np.asarray(np.sum(np.broadcast_to(t, np.broadcast(t, weights).shape) * weights, axis=-1))
        total = sum(
            (layers * times.time_s(i) for i, layers in enumerate(times.layers) if i not in varying),
            start=np.zeros(()),
        ) * np.asarray(steps, dtype=np.float64)
        for i in varying:
            shape = ops[i].kernel
            assert isinstance(shape, AttentionShape)
            along = replace(
                shape,
                batch=np.asarray(shape.batch)[..., None],
                new_tokens=np.asarray(shape.new_tokens)[..., None],
                past_tokens=np.asarray(shape.past_tokens)[..., None] + j,
                decode_tokens=np.asarray(shape.decode_tokens)[..., None],
            )
            t = kernel_times.attention_s(setup.hardware, along, efficiency=setup.efficiency)
            if setup.efficiency.execution_mode == "eager":  # its dispatch, as kernel_times.op_times adds it
                dispatch, _ = host_s(ops[i], setup.efficiency)
                cpu = setup.hardware.device_kind == "cpu"
                t = t + dispatch if cpu else np.maximum(t, dispatch)
            total = total + ops[i].layers * np.sum(t * weights, axis=-1)
        return np.asarray(total)

    return np.asarray(np.where(steps > 0, setup.pipelined_steps(one_pass_sum, batch, 1, steps), 0.0))


@dataclass(frozen=True)
class Report:
    """Serving figures for one (model, hardware, workload, deployment); arrays follow the workload.

    Time attribution: prefill time is charged to input tokens, decode time to output tokens (the first
    output token comes out of the prefill). Energy assumes every device draws its TDP throughout (an
    upper bound). Throughputs are for one static batch run to completion. Memory figures, ``fits`` and
    ``max_batch_size`` are per device, from :func:`costmodel.memory.fit` (as in :func:`size`), with
    the copies of an MLA model's W_UK / W_UV that the efficiency's ``kernel_engine`` keeps (default vLLM).
    ``prefill_mfu`` is the model's dense-equivalent FLOPs over (TTFT x peak x devices) with the peak the
    matmuls can reach: the dense peak of the compute dtype, times the datasheet's sparsity speedup for
    2:4 sparse weights (so it never exceeds 1 because of sparsity).
    """

    model: str
    hardware: str
    workload: Workload
    deployment: Deployment
    ttft_s: FloatArray
    tpot_s: FloatArray
    e2e_s: FloatArray
    output_tokens_per_s: FloatArray
    output_tokens_per_s_per_gpu: FloatArray
    input_tokens_per_s: FloatArray
    memory_bytes_per_gpu: FloatArray
    capacity_bytes_per_gpu: float
    weight_bytes_per_gpu: float
    fits: npt.NDArray[np.bool_]
    max_batch_size: npt.NDArray[np.int64]
    prefill_mfu: FloatArray
    decode_mbu: FloatArray
    usd_per_hour: float
    usd_per_million_input_tokens: FloatArray
    usd_per_million_output_tokens: FloatArray
    joules_per_million_output_tokens: FloatArray
    prefill_ops: OpTimes
    decode_ops: OpTimes
    _ops: tuple[tuple[Op, ...], tuple[Op, ...]]
    _absorb: tuple[HardwareProfile | None, str] = (None, "vllm")
    """The device and engine an MLA decode's absorbed bmm are timed for
    (:func:`costmodel.kernel_times.op_timed_bytes`)."""

    def summary(self) -> dict[str, Any]:
        """The headline figures as Python scalars (for a scalar workload) or lists."""
        keys = (
            "ttft_s",
            "tpot_s",
            "e2e_s",
            "output_tokens_per_s",
            "output_tokens_per_s_per_gpu",
            "input_tokens_per_s",
            "memory_bytes_per_gpu",
            "fits",
            "max_batch_size",
            "prefill_mfu",
            "decode_mbu",
            "usd_per_hour",
            "usd_per_million_input_tokens",
            "usd_per_million_output_tokens",
            "joules_per_million_output_tokens",
        )
        return {k: np.asarray(getattr(self, k)).tolist() for k in keys}

    def to_frame(self) -> pd.DataFrame:
        """Per-operator table of the prefill pass and the first decode step (scalar workloads). FLOPs and
        bytes are those of the form each operator is timed in (:func:`costmodel.kernel_times.timed_flop`,
        :func:`costmodel.kernel_times.timed_bytes`: an MLA decode's absorbed form, not the naive expansion
        the operators count)."""
        import pandas as pd

        from costmodel.kernel_times import op_timed_bytes, timed_flop

        rows = []
        for phase, times, ops in (
            ("prefill", self.prefill_ops, self._ops[0]),
            ("decode", self.decode_ops, self._ops[1]),
        ):
            for i, op in enumerate(ops):
                t = np.asarray(times.time_s(i))
                if t.ndim:
                    raise ValueError("to_frame() needs a scalar workload; use sweep() for grids")
                # an operator with no work (a sparse-attention indexer below its top-k) achieved 0 FLOP/s,
                # whatever it cost; one with work needs a positive, finite time, else the model is at fault
                flop, moved = float(timed_flop(op)), float(op_timed_bytes(op, *self._absorb))
                if flop != 0 and not (np.isfinite(t) and float(t) > 0):
                    raise CostmodelError(
                        f"{phase} operator {op.name!r} has {flop:.4g} FLOP but was timed at "
                        f"{float(t)} s: its achieved FLOP/s is undefined (a kernel-model or profile defect)"
                    )
                rows.append(
                    {
                        "phase": phase,
                        "op": op.name,
                        "kind": op.kind,
                        "layers": op.layers,
                        "flop": flop * op.layers,
                        "bytes": moved * op.layers,
                        "intensity_flop_per_byte": flop / max(moved, 1.0),
                        "time_s": float(t) * op.layers,
                        "achieved_flop_per_s": 0.0 if flop == 0 else flop / float(t),
                        "bound": str(times.bound(i)),
                    }
                )
        frame = pd.DataFrame(rows)
        frame["time_fraction"] = frame["time_s"] / frame.groupby("phase")["time_s"].transform("sum")
        return frame


def estimate(
    model: ModelProfile | str,
    hardware: HardwareProfile | str,
    workload: Workload | None = None,
    deployment: Deployment | None = None,
    *,
    efficiency: Efficiency | None = None,
    attention_impl: AttentionImpl = "flash",
    usd_per_hour: float | None = None,
    usable_fraction: float = 0.9,
) -> Report:
    """Time to first token, time per output token, throughput, memory and cost of serving ``workload``.

    Parameters
    ----------
    model, hardware : profile or built-in name
    workload : Workload
        Batch, prompt and output lengths (arrays broadcast) and dtypes; default ``Workload()``.
    deployment : Deployment
        Parallelism; default one GPU.
    efficiency : Efficiency, optional
        Replaces the hardware profile's achievable fractions (e.g. calibrated ones).
    attention_impl : {"flash", "eager"}
    usd_per_hour : float, optional
        Price of one device-hour [USD/h]; default the hardware profile's.
    usable_fraction : float
        Fraction of device memory available for weights, cache and activations [-].

    Notes
    -----
    Prefill is one forward pass over the prompts (logits for the last token only); decode is
    ``output_len - 1`` single-token steps with the context growing, summed exactly (no loop over tokens).
    ``tpot_s`` is their mean (for ``output_len = 1``, the cost of the one step that would follow).
    """
    m, hw = load_model(model), load_hardware(hardware)
    w = workload or Workload()
    dep = deployment or Deployment()
    dep.check(m)
    check_context(m, w.prompt_len, w.output_len)
    if usd_per_hour is not None:
        checks.fraction("usd_per_hour", usd_per_hour, high=1e9)  # a positive, finite price [USD/h]
    checks.fraction("usable_fraction", usable_fraction)
    checks.choice("attention_impl", attention_impl, get_args(AttentionImpl))
    setup = _Setup(m, hw, w, dep, efficiency or hw.efficiency, attention_impl, _tp_link(dep, hw))
    B, P, N = (np.asarray(x, dtype=np.float64) for x in (w.batch_size, w.prompt_len, w.output_len))

    prefill_ops = setup.ops(B, P, 0, "last")
    ttft = setup.pipelined_pass(lambda b: setup.times(setup.ops(b, P, 0, "last")).total_s, B, P)
    steps = np.maximum(N - 1, 0)
    decode_total = _decode_total_s(setup, B, P, steps)
    first_step_ops = setup.ops(B, 1, P, "all")
    first_step = setup.pipelined_steps(lambda b: setup.times(setup.ops(b, 1, P, "all")).total_s, B, 1)
    tpot = np.where(steps > 0, decode_total / np.maximum(steps, 1), first_step)
    e2e = ttft + decode_total

    gpus = dep.gpus_per_replica
    out_rate = B * N / e2e
    price = (
        usd_per_hour if usd_per_hour is not None else (hw.price.usd_per_hour if hw.price else float("nan"))
    )
    usd_per_s_replica = price * gpus / 3600.0
    usd_in = usd_per_s_replica * ttft / (B * P) * 1e6
    usd_out = (
        usd_per_s_replica * np.where(steps > 0, decode_total, first_step) / (B * np.maximum(steps, 1)) * 1e6
    )
    tdp = hw.datasheet.tdp_w.value if hw.datasheet.tdp_w else float("nan")
    joules_out = tdp * gpus * e2e / (B * N) * 1e6

    # memory per GPU: the one model (weights and cache over TP x PP, KV heads replicated past n_kv_heads)
    memory = fit(
        m,
        hw,
        batch_size=w.batch_size,
        context_len=np.asarray(w.prompt_len) + np.asarray(w.output_len),
        prompt_len=w.prompt_len,
        tp=dep.tp,
        pp=dep.pp,
        weight_dtype=w.weight_dtype,
        kv_dtype=w.kv_dtype,
        activation_dtype=w.activation_dtype,
        sparsity=w.sparsity,
        usable_fraction=usable_fraction,
        attention_dp=dep.attention_dp,
        expert_dtype=w.expert_dtype,
        component_dtypes=w.component_formats or None,
        engine=setup.efficiency.kernel_engine,
    )

    # MFU against the peak the matmuls can reach: with 2:4 sparse weights, the sparse peak (a dense-
    # equivalent rate, as the FLOPs are dense-equivalent), so that MFU stays a fraction of what is possible
    peak = compute_peak_flop_per_s(hw, w.activation_dtype)
    if w.sparsity == "2:4":
        peak *= sparsity_speedup(hw)
    prefill_flop = forward_flop(m, batch_size=B, new_tokens=P, logits="last").total
    mfu = prefill_flop / (ttft * peak * gpus)
    # bytes the replica's GPUs move in one decode step: m micro-batches of b sequences, each through all
    # layers on the tp GPUs of a stage in turn; over the time of that step on all tp x pp GPUs
    m_micro, b_micro = setup.microbatches(B) if dep.pp > 1 else (np.ones_like(B), B)
    micro_ops = setup.ops(b_micro, 1, P, "all") if dep.pp > 1 else first_step_ops
    # the bytes of the form that is timed: an MLA decode runs absorbed under the kernel models and the
    # roofline alike (kernel_times.timed_bytes), not in the naive expansion the operators count
    from costmodel.kernel_times import op_timed_bytes

    moved = [op_timed_bytes(op, hw, setup.efficiency.kernel_engine) for op in micro_ops]
    step_bytes = m_micro * sum(b * op.layers for b, op in zip(moved, micro_ops, strict=True)) * dep.moe_gpus
    mbu = step_bytes / (first_step * hw.memory_bandwidth_bytes_per_s * gpus)
    return Report(
        model=m.name,
        hardware=hw.name,
        workload=w,
        deployment=dep,
        ttft_s=np.asarray(ttft),
        tpot_s=np.asarray(tpot),
        e2e_s=np.asarray(e2e),
        output_tokens_per_s=np.asarray(out_rate),
        output_tokens_per_s_per_gpu=np.asarray(out_rate / gpus),
        input_tokens_per_s=np.asarray(B * P / ttft),
        memory_bytes_per_gpu=memory.memory_bytes_per_gpu,
        capacity_bytes_per_gpu=memory.capacity_bytes_per_gpu,
        weight_bytes_per_gpu=memory.weight_bytes_per_gpu,
        fits=memory.fits,
        max_batch_size=memory.max_batch_size,
        prefill_mfu=np.asarray(mfu),
        decode_mbu=np.asarray(mbu),
        usd_per_hour=price * dep.n_gpus,
        usd_per_million_input_tokens=np.asarray(usd_in),
        usd_per_million_output_tokens=np.asarray(usd_out),
        joules_per_million_output_tokens=np.asarray(joules_out),
        prefill_ops=setup.times(prefill_ops),
        decode_ops=setup.times(first_step_ops),
        _ops=(prefill_ops, first_step_ops),
        _absorb=(hw, setup.efficiency.kernel_engine),
    )


def _as_list(x: Any) -> list[Any]:
    return list(x) if isinstance(x, list | tuple) else [x]


def sweep(
    models: Any,
    hardware: Any,
    *,
    batch_size: Any = 1,
    prompt_len: Any = 2048,
    output_len: Any = 256,
    weight_dtype: Any = "bf16",
    kv_dtype: Any = "bf16",
    activation_dtype: str = "bf16",
    deployments: Any = None,
    efficiency: Efficiency | None = None,
    expert_dtype: str | None = None,
    expert_activation_dtype: str | None = None,
    component_dtypes: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """A tidy table over the grid models x hardware x dtypes x deployments x batch x prompt x output.

    Each argument takes one value or a list (batch, prompt and output lengths: any array-like); the inner
    batch x prompt x output grid is one vectorised :func:`estimate` call per outer combination.
    ``expert_dtype`` / ``expert_activation_dtype`` / ``component_dtypes``: the routed experts' and the
    other components' own formats, as :class:`Workload`'s.
    """
    import pandas as pd

    b, p, o = np.meshgrid(
        np.atleast_1d(batch_size), np.atleast_1d(prompt_len), np.atleast_1d(output_len), indexing="ij"
    )
    b, p, o = b.ravel(), p.ravel(), o.ravel()
    frames = []
    for model in _as_list(models):
        for hw in _as_list(hardware):
            for wd in _as_list(weight_dtype):
                for kd in _as_list(kv_dtype):
                    for dep in _as_list(deployments) if deployments is not None else [Deployment()]:
                        w = Workload(
                            b,
                            p,
                            o,
                            weight_dtype=wd,
                            activation_dtype=activation_dtype,
                            kv_dtype=kd,
                            expert_dtype=expert_dtype,
                            expert_activation_dtype=expert_activation_dtype,
                            component_dtypes=component_dtypes,
                        )
                        r = estimate(model, hw, w, dep, efficiency=efficiency)
                        frames.append(
                            pd.DataFrame(
                                {
                                    "model": r.model,
                                    "hardware": r.hardware,
                                    "weight_dtype": wd,
                                    "kv_dtype": kd,
                                    "tp": dep.tp,
                                    "pp": dep.pp,
                                    "replicas": dep.replicas,
                                    "batch_size": b,
                                    "prompt_len": p,
                                    "output_len": o,
                                    "ttft_s": r.ttft_s,
                                    "tpot_s": r.tpot_s,
                                    "e2e_s": r.e2e_s,
                                    "output_tokens_per_s": r.output_tokens_per_s,
                                    "output_tokens_per_s_per_gpu": r.output_tokens_per_s_per_gpu,
                                    "memory_bytes_per_gpu": r.memory_bytes_per_gpu,
                                    "fits": r.fits,
                                    "usd_per_million_output_tokens": r.usd_per_million_output_tokens,
                                }
                            )
                        )
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingReport:
    """One training step and the whole run [s, FLOP/s fractions, USD]."""

    step_time_s: FloatArray
    tokens_per_s: FloatArray
    mfu: FloatArray
    train_time_s: FloatArray
    gpu_hours: FloatArray
    usd: FloatArray
    memory_bytes_per_gpu: FloatArray


def train(
    model: ModelProfile | str,
    hardware: HardwareProfile | str,
    *,
    global_batch_size: Any,
    seq_len: Any,
    tokens: Any = 0,
    deployment: Deployment | None = None,
    recompute: Recompute = "none",
    zero_stage: Literal[0, 1, 2, 3] = 1,
    efficiency: Efficiency | None = None,
    usd_per_hour: float | None = None,
    virtual_stages: int = 1,
) -> TrainingReport:
    """Step time and MFU of mixed-precision training, and time / GPU-hours / cost to train on ``tokens``.

    Model: each data-parallel replica runs ``global_batch_size / replicas`` sequences through the
    forward pass (the roofline of :func:`costmodel.ops.forward_ops`), backward costs twice the forward
    (compute and traffic; Narayanan et al. 2021 §5.1), recomputation adds a forward (or the attention core
    for ``"selective"``), gradients are all-reduced in bf16 across replicas with the ring cost (no overlap
    with compute: an upper bound), and the Adam update reads and writes 16 bytes per parameter and shard.
    MFU = model FLOPs (forward + backward, no recomputation) / (step time x dense peak x devices)
    (Chowdhery et al. 2022, App. B).

    Pipeline stages (pp > 1) run m micro-batches of whole sequences: ``deployment.microbatches`` (it must
    divide the sequences per replica), by default one sequence each (m = global_batch_size / replicas).
    With ``virtual_stages`` = v model chunks per stage (the interleaved 1F1B schedule), a step is
    (m + (pp - 1) / v) stage times, i.e. the bubble fraction (pp - 1) / (v m) of Narayanan et al. 2021
    §2.2 (v = 1: GPipe / 1F1B's (pp - 1) / m), plus the sends on the critical path: the first
    micro-batch's activations forward across the v pp - 1 chunk boundaries and the last one's gradients
    back; the other sends overlap with compute.
    """
    m, hw = load_model(model), load_hardware(hardware)
    dep = deployment or Deployment()
    dep.check(m)
    if dep.attention_dp > 1:
        raise CostmodelError(
            f"attention_dp ({dep.attention_dp}) is a serving layout; train() models tp x pp replicas: "
            "set attention_dp=1 and use replicas"
        )
    eff = efficiency or hw.efficiency
    gbs = np.asarray(global_batch_size, dtype=np.float64)
    S = np.asarray(seq_len, dtype=np.float64)
    micro = gbs / dep.replicas  # sequences per replica and step
    if np.any(micro < 1) or np.any(micro != np.round(micro)):
        raise CostmodelError(
            f"global_batch_size ({global_batch_size}) must be a positive multiple of deployment.replicas "
            f"({dep.replicas}): each replica trains on whole sequences"
        )
    if virtual_stages < 1 or dep.pp * virtual_stages > m.n_layers:
        raise CostmodelError(
            f"virtual_stages ({virtual_stages}) must be at least 1 and at most n_layers / pp "
            f"({m.n_layers} / {dep.pp}): each virtual stage holds at least one layer"
        )
    microbatches = np.asarray(float(dep.microbatches), dtype=np.float64) if dep.microbatches else micro
    if dep.pp > 1 and np.any(micro % microbatches):
        raise CostmodelError(
            f"deployment.microbatches ({dep.microbatches}) must divide the sequences per replica "
            f"(global_batch_size / replicas = {micro.tolist()}): micro-batches are whole sequences; "
            "choose a divisor, or leave it unset for one sequence per micro-batch"
        )
    seqs_per_micro = micro / microbatches if dep.pp > 1 else micro
    w = Workload(1, 1, 1)
    setup = _Setup(m, hw, w, dep, eff, "flash", _tp_link(dep, hw))

    def step(b: Any) -> FloatArray:
        times = setup.times(setup.ops(b, S, 0, "all"))
        forward = times.total_s
        if recompute == "full":
            return np.asarray(4.0 * forward)
        if recompute == "selective" and "attention" in times.names:
            i = times.names.index("attention")
            return np.asarray(3.0 * forward + times.layers[i] * times.time_s(i))
        return np.asarray(3.0 * forward)

    if dep.pp > 1:
        pp, v = dep.pp, virtual_stages
        sends = 2 * (v * pp - 1) * setup.stage_send_s(seqs_per_micro, S)
        compute = (microbatches + (pp - 1) / v) / pp * step(seqs_per_micro) + sends
    else:
        compute = step(micro)
    params = param_count(m).total
    shard = dep.tp * dep.pp
    grad_bytes = 2.0 * params / shard
    n = dep.replicas
    bw_link = link_for(dep.n_gpus, hw, dep)
    if n > 1:
        allreduce = (
            2.0
            * (n - 1)
            / n
            * grad_bytes
            / (link_bandwidth_bytes_per_s(hw, bw_link) * eff.interconnect_fraction)
        )
    else:
        allreduce = 0.0
    update = 32.0 * params / shard / (hw.memory_bandwidth_bytes_per_s * eff.memory_bandwidth_fraction)
    step_s = np.asarray(compute + allreduce + update)
    tokens_per_step = gbs * S
    flop = 3.0 * forward_flop(m, batch_size=gbs, new_tokens=S).total
    peak = compute_peak_flop_per_s(hw, "bf16")
    mfu = flop / (step_s * peak * dep.n_gpus)
    total_tokens = np.asarray(tokens, dtype=np.float64)
    run_s = step_s * total_tokens / tokens_per_step
    price = (
        usd_per_hour if usd_per_hour is not None else (hw.price.usd_per_hour if hw.price else float("nan"))
    )
    mem = (
        training_memory(
            m,
            batch_size=seqs_per_micro,
            seq_len=S,
            n_gpus=dep.replicas,
            zero_stage=zero_stage,
            recompute=recompute,
        ).total
        / shard
    )
    return TrainingReport(
        step_time_s=step_s,
        tokens_per_s=np.asarray(tokens_per_step / step_s),
        mfu=np.asarray(mfu),
        train_time_s=np.asarray(run_s),
        gpu_hours=np.asarray(run_s * dep.n_gpus / 3600.0),
        usd=np.asarray(run_s * dep.n_gpus / 3600.0 * price),
        memory_bytes_per_gpu=np.asarray(mem),
    )


def step_time_s(
    model: ModelProfile | str,
    hardware: HardwareProfile | str,
    workload: Workload,
    deployment: Deployment | None = None,
    *,
    batch_size: Any,
    new_tokens: Any,
    past_tokens: Any,
    efficiency: Efficiency | None = None,
    logits: Literal["all", "last"] = "all",
    draft_tokens: Any = 0,
) -> FloatArray:
    """Time of one forward pass of ``batch_size`` sequences x ``new_tokens`` after ``past_tokens`` [s],
    with the workload's dtypes: the building block for decode steps, verification passes and serving
    engine iterations. ``draft_tokens`` k: a speculative verification of k drafts a sequence, whose
    ``new_tokens`` = k + 1 an MLA model runs in the absorbed decode form (:func:`costmodel.ops.forward_ops`);
    0: a plain pass. Arrays broadcast."""
    m, hw = load_model(model), load_hardware(hardware)
    dep = deployment or Deployment()
    dep.check(m)
    setup = _Setup(m, hw, workload, dep, efficiency or hw.efficiency, "flash", _tp_link(dep, hw))
    return setup.pipelined_steps(
        lambda b: setup.times(setup.ops(b, new_tokens, past_tokens, logits, draft_tokens)).total_s,
        batch_size,
        new_tokens,
    )
