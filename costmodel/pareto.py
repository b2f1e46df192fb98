"""A Pareto planner over deployments: for a model, a set of systems and one isl / osl mix, the frontier of
output tokens per second per GPU against tokens per second per user, and the cheapest deployment that
meets TTFT / TPOT objectives.

Every candidate deployment is a closed loop of ``concurrency`` clients, each sending one request of
``isl`` prompt tokens and ``osl`` output tokens after another (the benchmark :mod:`costmodel.closed_loop`
models, with the per-engine parameters of :mod:`costmodel.loop_params`). The search enumerates, per system:

- the weight format (``formats``: ``"bf16"``, ``"fp8"``, ``"nvfp4"``, ... mapped to weight and compute
  dtypes by :data:`FORMATS`), tensor-parallel degrees ``tp``, pipeline stages ``pp`` and, for a
  mixture-of-experts model, expert-parallel degrees ``ep`` (default 1 and tp: experts replicated across
  the TP group's ranks, or spread over all of them);
- the aggregated mode (``"agg"``: one engine per worker runs prefill and decode, chunked);
- the disaggregated mode (``"disagg"``: x prefill workers and y decode workers of one format and one
  pipeline stage each, the KV cache moved between them, :mod:`costmodel.disagg`), plugged in through one
  function, :func:`disagg_points`, called once per system with every pair of layouts;
- the concurrency, vectorised: every concurrency of one engine (every ratio and concurrency of one
  disaggregated pair) is one array evaluation; clients are counted per aggregated worker and per decode
  worker.

Per point: TTFT and TPOT (means, as the closed loop gives them), tokens/s per user = 1 / TPOT, output
tokens/s per GPU = the deployment's output rate / its GPUs, the GPUs, and the cost:

    usd_per_million_output_tokens = usd_per_gpu_hour x gpus / (output_tokens_per_s x 3600) x 1e6.

The frontier (per system, agg and disagg together) is the set of points that no other point of the same
system beats on both axes; the chosen point is the cheapest (lowest $ per million output tokens, ties to
the higher tokens/s per user) of all points that meet the objectives, on the frontier or not (a TTFT
objective can rule frontier points out). Per GPU, a deployment of N replicas of a point has the same
figures: the frontier is that of one replica.

Assumptions: those of :mod:`costmodel.closed_loop` and :mod:`costmodel.disagg` (fixed isl / osl,
steady state, no preemption); every point's workers are launched for that point's own load, as the
benchmark scripts the serving model is validated on launch theirs (InferenceX's
``--max-num-seqs $CONC``): an aggregated or decode worker at C clients admits at most C sequences
(``max_batch_size``; vLLM's CUDA graphs follow it), a prefill worker as many prompts per pass as its token
budget holds, each launched with a token budget of ``token_budget`` tokens per iteration (default the
engine's own on each device, :func:`costmodel.token_budget.default_token_budget`, raised to C where
smaller; an attention-DP rank's share is the engine's rule,
:func:`costmodel.token_budget.rank_token_budget`), so a point's figures do not depend on the other client
counts searched; the KV cache is stored in ``kv_dtype``. Attention data parallelism is searched
(``attention_dp``) for MoE models, in aggregated workers and in either pool of a disaggregated deployment.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from costmodel.closed_loop import LoopParams, cuda_graph_tokens, loop_parts
from costmodel.errors import CostmodelError, UnknownNameError
from costmodel.serving import Engine
from costmodel.token_budget import ENGINES, default_token_budget, rank_token_budget, worker_batched_tokens

if TYPE_CHECKING:
    import pandas as pd

    from costmodel.specs import Efficiency, HardwareProfile, ModelProfile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Mode = Literal["agg", "disagg"]
MODES: tuple[Mode, ...] = ("agg", "disagg")

FORMATS: dict[str, tuple[str, str]] = {
    "bf16": ("bf16", "bf16"),
    "fp16": ("fp16", "fp16"),
    "fp8": ("fp8", "fp8"),
    "fp8_block": ("fp8_block", "fp8"),
    "nvfp4": ("nvfp4", "nvfp4"),
    "int8": ("int8", "int8"),
    "int4": ("int4", "bf16"),
}
"""Weight format -> (weight dtype, the dtype its matmuls take their inputs in) of a candidate: weight-only
int4 computes in bf16; nvfp4 is W4A4 (NVFP4 weights and activations, at the fp4 peak), as the public
evaluation maps aiconfigurator's formats."""

CONCURRENCY = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Client counts searched per worker by default [-]."""
TP = (1, 2, 4, 8)
PP = (1, 2)
DISAGG_WORKERS: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 2))
"""Prefill : decode worker counts tried in the disaggregated mode."""
TOKEN_BUDGET = 8192
"""A token budget per iteration [tokens]: vLLM's API server's default on a GPU of 70 GiB or more (not an
A100), TensorRT-LLM's everywhere, SGLang's from 60 to 160 GiB. Until session 19 every worker of the search
was launched with it whatever the engine and device; :func:`frontier` now launches each with the engine's
own default on its device (:func:`costmodel.token_budget.default_token_budget`) unless given
``token_budget``."""


# ----------------------------------------------------------------------------------------------------
# One candidate's served figures: the plug-in point for the modes
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """What one deployment delivers at each concurrency; arrays follow the concurrency."""

    ttft_s: FloatArray
    """Mean time to first token [s]."""
    tpot_s: FloatArray
    """Mean time per output token after the first [s]."""
    output_tokens_per_s: FloatArray
    """Output tokens per second of the whole deployment [tokens/s]."""
    batch_size: FloatArray
    """Sequences decoding together on one (decode) worker, R [-]."""
    gpus: int | FloatArray
    """GPUs of the whole deployment [-]."""


def agg_point(
    engine: Engine,
    *,
    concurrency: npt.ArrayLike,
    isl: float,
    osl: float,
    params: LoopParams,
    graph_tokens: npt.ArrayLike = 0.0,
    overlap_host: bool = False,
) -> Served:
    """One aggregated worker (:func:`costmodel.closed_loop.closed_loop`) at each client count;
    ``graph_tokens``: the largest iteration with prompt tokens its engine replays as CUDA graphs
    (:func:`costmodel.closed_loop.cuda_graph_tokens`, as the public evaluation predicts its rows);
    ``overlap_host``: the engine overlaps its host work with the kernels (:func:`loop_parts`)."""
    parts = loop_parts(
        engine,
        concurrency=concurrency,
        isl=isl,
        osl=osl,
        graph_tokens=graph_tokens,
        overlap_host=overlap_host,
    )
    result = parts.result(params)
    return Served(
        ttft_s=result.ttft_s,
        tpot_s=result.tpot_s,
        output_tokens_per_s=result.output_tokens_per_s,
        batch_size=np.asarray(result.running),
        gpus=engine.gpus,
    )


def disagg_points(
    pairs: Sequence[tuple[Engine, Engine]],
    *,
    prefill_workers: IntArray,
    decode_workers: IntArray,
    concurrency: npt.NDArray[Any],
    isl: int,
    osl: int,
    params: LoopParams,
    kv_transfer_overhead_s: float = 0.0,
    overlap_host: bool = False,
    decode_share_dispersion: float = 0.0,
    burst_fraction: float | None = None,
    decode_batch_limit: npt.ArrayLike | None = None,
    decode_host_passes: float = 1.0,
) -> list[Served | str]:
    """Disaggregated deployments: for each (prefill engine, decode engine) pair, ``prefill_workers[w]``
    prefill workers and ``decode_workers[w]`` decode workers serving ``concurrency[w, c]`` clients together,
    the KV cache moved from the first pool to the second (:func:`costmodel.disagg.disagg_pairs`, each
    engine's kernel times computed once however many pairs it is in). Returns per pair a :class:`Served`
    whose arrays (and ``gpus``) have shape (ratios, concurrency), or the reason the pair cannot run.

    The plug-in point of the disaggregated mode: the one function the search calls for it, once per
    system with every pair. ``params`` are the engine's closed-loop parameters, applied to both pools, with
    ``kv_transfer_overhead_s`` per request's transfer and the effective ``decode_share_dispersion`` of the
    clients over the decode workers (:func:`costmodel.disagg.decode_slot_share`), and the disaggregated
    loop's own wave share ``burst_fraction`` where one was fitted (None: ``params``');
    ``decode_batch_limit``: the most sequences a decode worker runs at once, per concurrency
    (:func:`costmodel.disagg.disagg_pairs`); ``decode_host_passes``: the forward passes a decode iteration
    prepares on the host (:func:`costmodel.loop_params.host_passes`: 1 for plain decoding, which the
    search prices; 3 for an SGLang decode pool that drafts with EAGLE).
    """
    from costmodel.disagg import DisaggParams, disagg_pairs

    results = disagg_pairs(
        pairs,
        prefill_workers=prefill_workers[:, None],
        decode_workers=decode_workers[:, None],
        concurrency=concurrency,
        isl=isl,
        osl=osl,
        params=DisaggParams.from_loop(
            params,
            kv_transfer_overhead_s=kv_transfer_overhead_s,
            overlap_host=overlap_host,
            decode_share_dispersion=decode_share_dispersion,
            burst_fraction=burst_fraction,
        ),
        decode_batch_limit=decode_batch_limit,
        decode_host_passes=decode_host_passes,
    )
    return [
        r
        if isinstance(r, str)
        else Served(
            ttft_s=r.ttft_s,
            tpot_s=r.tpot_s,
            output_tokens_per_s=r.output_tokens_per_s,
            batch_size=r.decode_batch,
            gpus=np.broadcast_to(r.gpus, r.ttft_s.shape),
        )
        for r in results
    ]


# ----------------------------------------------------------------------------------------------------
# The points
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Points:
    """Every evaluated point (candidate x concurrency), as columns of equal length. Prefill columns are 0
    for aggregated points, whose one kind of worker is counted in ``decode_workers``."""

    system: npt.NDArray[np.str_]
    """Hardware profile name."""
    mode: npt.NDArray[np.str_]
    """``"agg"`` or ``"disagg"``."""
    format: npt.NDArray[np.str_]
    """Weight format (a key of :data:`FORMATS`)."""
    tp: IntArray
    """Tensor-parallel degree of a (decode) worker [-]."""
    pp: IntArray
    """Pipeline stages of a (decode) worker [-]."""
    ep: IntArray
    """Expert-parallel degree of a (decode) worker [-]."""
    attention_dp: IntArray
    """Attention data-parallel ranks of a worker [-] (each of tp devices; 1: none)."""
    prefill_tp: IntArray
    prefill_pp: IntArray
    prefill_ep: IntArray
    prefill_attention_dp: IntArray
    """Attention data-parallel ranks of a prefill worker [-] (0: aggregated)."""
    prefill_workers: IntArray
    """Prefill workers [-] (0: aggregated)."""
    decode_workers: IntArray
    """Decode workers, or aggregated workers [-]."""
    concurrency: IntArray
    """Clients of the closed loop [-]."""
    batch_size: FloatArray
    """Sequences decoding together on one (decode) worker [-]."""
    gpus: IntArray
    """GPUs of the deployment [-]."""
    ttft_s: FloatArray
    """Mean time to first token [s]."""
    tpot_s: FloatArray
    """Mean time per output token [s]."""
    tokens_per_s_per_user: FloatArray
    """1 / TPOT [tokens/s]."""
    output_tokens_per_s: FloatArray
    """Output tokens per second of the deployment [tokens/s]."""
    output_tokens_per_s_per_gpu: FloatArray
    """Output tokens per second per GPU [tokens/s]."""
    usd_per_gpu_hour: FloatArray
    """Price of one GPU-hour [USD/h]; NaN without a price."""
    usd_per_hour: FloatArray
    """Price of the deployment per hour, usd_per_gpu_hour x gpus [USD/h]."""
    usd_per_million_output_tokens: FloatArray
    """usd_per_hour / (output_tokens_per_s x 3600) x 1e6 [USD]."""
    usd_per_million_tokens: FloatArray
    """The same per million prompt and output tokens together [USD]."""
    meets_slo: BoolArray
    """TTFT and TPOT within the objectives."""
    on_frontier: BoolArray
    """Not beaten on both tokens/s per user and output tokens/s per GPU by another point of its system."""

    def __len__(self) -> int:
        return int(self.system.size)

    def label(self, i: int) -> str:
        """A short description of point ``i``'s deployment."""
        fmt = f"{self.format[i]}"

        def layout(tp: int, pp: int, ep: int, dp: int = 1) -> str:
            return (
                f"TP{tp}" + (f" ADP{dp}" if dp > 1 else "") + (f" PP{pp}" if pp > 1 else "")
                + (f" EP{ep}" if ep > 1 else "")
            )  # fmt: skip

        decode = layout(int(self.tp[i]), int(self.pp[i]), int(self.ep[i]), int(self.attention_dp[i]))
        if self.mode[i] == "agg":
            return f"{self.system[i]} agg {decode} {fmt}"
        prefill = layout(
            int(self.prefill_tp[i]), int(self.prefill_pp[i]), int(self.prefill_ep[i]),
            int(self.prefill_attention_dp[i]),
        )  # fmt: skip
        return (
            f"{self.system[i]} disagg {int(self.prefill_workers[i])}x({prefill}) : "
            f"{int(self.decode_workers[i])}x({decode}) {fmt}"
        )

    def records(self, index: npt.ArrayLike | None = None) -> list[dict[str, Any]]:
        """Points as plain dicts (Python numbers; NaN where a figure does not exist), in ``index`` order."""
        rows = np.arange(len(self)) if index is None else np.asarray(index, dtype=np.int64)
        columns = {f.name: getattr(self, f.name) for f in fields(self)}
        return [{name: values[i].item() for name, values in columns.items()} for i in rows]

    def table(self) -> pd.DataFrame:
        """The points as a DataFrame (one column per field)."""
        import pandas as pd

        return pd.DataFrame({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class Frontier:
    """The result of :func:`frontier`."""

    points: Points
    """Every point evaluated; ``points.on_frontier`` marks the frontier."""
    best: int | None
    """Index of the cheapest point meeting the objectives; None when none does (or none has a price)."""
    skipped: tuple[tuple[str, str], ...]
    """Candidates that could not be evaluated: (description, reason)."""
    ttft_s: float | None
    """TTFT objective [s] (mean); None: none."""
    tpot_s: float | None
    """TPOT objective [s] (mean); None: none."""
    isl: int
    osl: int

    @property
    def frontier_index(self) -> IntArray:
        """Indices of the frontier points, by system, then tokens/s per user ascending."""
        p = self.points
        idx = np.flatnonzero(p.on_frontier)
        order = np.lexsort((p.tokens_per_s_per_user[idx], p.system[idx]))
        return np.asarray(idx[order], dtype=np.int64)

    def table(self, *, frontier_only: bool = False) -> pd.DataFrame:
        """The points (or the frontier points) as a DataFrame, with a ``label`` and a ``best`` column."""
        frame = self.points.table()
        frame.insert(0, "label", [self.points.label(i) for i in range(len(self.points))])
        frame["best"] = np.arange(len(frame)) == (-1 if self.best is None else self.best)
        if frontier_only:
            return frame.iloc[self.frontier_index].reset_index(drop=True)
        return frame


def pareto_mask(x: npt.ArrayLike, y: npt.ArrayLike, groups: npt.ArrayLike | None = None) -> BoolArray:
    """Points not dominated within their group: no other point has x' >= x and y' >= y with one of them
    strictly greater. Of identical points the first is kept. Larger is better on both axes; a NaN point is
    never on the frontier."""
    X, Y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    G = np.zeros(X.shape, dtype=np.int64) if groups is None else np.unique(groups, return_inverse=True)[1]
    G = np.asarray(G).reshape(X.shape)
    ok = np.isfinite(X) & np.isfinite(Y)
    mask = np.zeros(X.shape, dtype=bool)
    # by group, x descending, y descending, then original order: a point is on the frontier iff its y
    # beats every y before it in its group
    order = np.lexsort((np.arange(X.size), -Y, -X, G))
    order = order[ok[order]]
    if order.size == 0:
        return mask
    g, yy = G[order], Y[order]
    best_before = np.empty(order.size)
    bounds = np.flatnonzero(np.r_[True, g[1:] != g[:-1], True])
    for start, stop in itertools.pairwise(bounds):  # one pass per group
        best_before[start:stop] = np.r_[-np.inf, np.maximum.accumulate(yy[start:stop])[:-1]]
    mask[order] = yy > best_before
    return mask


# ----------------------------------------------------------------------------------------------------
# The search
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    tp: int
    pp: int
    ep: int
    format: str
    attention_dp: int = 1


def _layouts(
    model: ModelProfile,
    formats: Sequence[str],
    tp: Sequence[int],
    pp: Sequence[int],
    ep: Sequence[int] | None,
    max_gpus_per_worker: int,
    attention_dp: Sequence[int] = (1,),
    dropped: list[tuple[str, int]] | None = None,
) -> list[_Layout]:
    """The layouts to search; those over the GPUs a worker holds go to ``dropped`` as (their description,
    the GPUs they need), once for every format."""
    out: list[_Layout] = []
    for fmt in formats:
        for t in tp:
            for p in pp:
                # attention data parallelism only for a MoE model (its MoE layers tie the ranks together)
                for a in attention_dp if model.moe is not None else (1,):
                    if t * a * p > max_gpus_per_worker:
                        if dropped is not None:
                            dp = f" ADP{a}" if a > 1 else ""
                            dropped.append((f"TP{t}{dp} PP{p}", t * a * p))
                        continue
                    moe_gpus = t * a  # the experts spread over every device of the stage
                    degrees = (1,) if model.moe is None else tuple(dict.fromkeys(ep if ep else (1, moe_gpus)))
                    out.extend(_Layout(t, p, e, fmt, a) for e in degrees if moe_gpus % e == 0)
    return out


def _engine(
    model: ModelProfile,
    hardware: HardwareProfile,
    layout: _Layout,
    kv_dtype: str,
    max_batch_size: int,
    max_batched_tokens: int,
    efficiency: Efficiency | None = None,
) -> Engine:
    """One layout's engine; ``efficiency`` (None: the profile's) names the serving engine whose kernels
    time its passes (``kernel_engine``, :func:`frontier`)."""
    from costmodel.roofline import compute_dtype_of
    from costmodel.specs import Deployment, Workload

    weight, compute = FORMATS[layout.format]
    # a device without the compute dtype's peak cannot run the format (fp4 inputs on H100)
    hardware.peak_flop_per_s(compute_dtype_of(compute))
    return Engine(
        model,
        hardware,
        Workload(1, 1, 1, weight_dtype=weight, activation_dtype=compute, kv_dtype=kv_dtype),
        Deployment(tp=layout.tp, pp=layout.pp, attention_dp=layout.attention_dp, moe_ep=layout.ep)
        if layout.attention_dp > 1
        else Deployment(tp=layout.tp, pp=layout.pp, ep=layout.ep),  # ep divides tp (_layouts)
        max_batch_size=max_batch_size,
        max_batched_tokens=max_batched_tokens,
        efficiency=efficiency,
    )


def _check_ints(name: str, values: object, low: int = 1) -> tuple[int, ...]:
    """``values`` as a tuple of distinct integers >= ``low``; a single integer is a list of one."""
    if isinstance(values, int | np.integer):
        values = (values,)
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):  # a string is one name
        raise CostmodelError(f"{name} must be an integer or a list of integers >= {low}, got {values!r}")
    out = tuple(values)
    if not out or any(not (isinstance(v, int | np.integer) and v >= low) for v in out):
        raise CostmodelError(f"{name} must be a non-empty list of integers >= {low}, got {list(values)!r}")
    return tuple(int(v) for v in dict.fromkeys(out))


def _prices(usd_per_hour: Mapping[str, float] | None, systems: Sequence[str]) -> dict[str, float]:
    """``usd_per_hour`` checked: a mapping of system names among ``systems`` to positive finite prices."""
    if usd_per_hour is None:
        return {}
    if not isinstance(usd_per_hour, Mapping):
        raise CostmodelError(
            f"usd_per_hour must map system names to prices per GPU-hour [USD/h], e.g. {{'h100-sxm': 2.5}}, "
            f"got {usd_per_hour!r}"
        )
    out: dict[str, float] = {}
    for name, price in usd_per_hour.items():
        if name not in systems:
            raise CostmodelError(
                f"usd_per_hour names {name!r}, which is not one of the systems searched "
                f"({', '.join(systems)})"
            )
        ok = isinstance(price, int | float | np.integer | np.floating) and not isinstance(price, bool)
        if not (ok and math.isfinite(price) and price > 0):
            raise CostmodelError(
                f"usd_per_hour[{name!r}] must be a positive price per GPU-hour [USD/h], got {price!r}"
            )
        out[name] = float(price)
    return out


def _objective(name: str, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise CostmodelError(f"{name} must be a positive time [s] or None, got {value!r}")
    return value


def frontier(
    model: ModelProfile | str,
    systems: Sequence[HardwareProfile | str],
    *,
    isl: int,
    osl: int,
    ttft_s: float | None = None,
    tpot_s: float | None = None,
    formats: Sequence[str] = ("bf16", "fp8"),
    tp: int | Sequence[int] = TP,
    pp: int | Sequence[int] = PP,
    ep: int | Sequence[int] | None = None,
    attention_dp: int | Sequence[int] = (1,),
    concurrency: int | Sequence[int] = CONCURRENCY,
    modes: Sequence[str] = MODES,
    disagg_workers: Sequence[tuple[int, int]] = DISAGG_WORKERS,
    engine: str = "vllm",
    params: LoopParams | None = None,
    kv_transfer_overhead_s: float | None = None,
    kv_dtype: str = "bf16",
    max_gpus_per_worker: int = 8,
    usd_per_hour: Mapping[str, float] | None = None,
    token_budget: int | None = None,
) -> Frontier:
    """Search deployments of ``model`` on each of ``systems`` for one isl / osl mix; the frontier of
    output tokens/s per GPU against tokens/s per user, and the cheapest point meeting the objectives.

    Parameters
    ----------
    model : profile or name
    systems : hardware profiles or names
    isl, osl : prompt and output tokens per request [tokens] (osl >= 2)
    ttft_s, tpot_s : objectives on the mean TTFT and TPOT [s]; None: no objective
    formats : weight formats to try (keys of :data:`FORMATS`); a device without the compute dtype's peak
        skips the format, with the reason in ``skipped``
    tp, pp : tensor-parallel degrees and pipeline stages of a worker [-]
    ep : expert-parallel degrees for a MoE model [-]; default 1 and all the MoE layer's devices
        (tp x attention_dp) per layout
    attention_dp : attention data-parallel ranks to try for a MoE model [-] (each rank tp devices with
        its own scheduler, :class:`costmodel.specs.Deployment`); aggregated workers and either pool of a
        disaggregated deployment, and only client counts of at least one per (decode) rank
    concurrency : clients of the closed loop per aggregated worker, or per decode worker of a
        disaggregated deployment [-] (the ``concurrency`` column counts the deployment's clients); each
        point's workers are launched for its own count (the module docstring), so a point's figures are
        the same whatever other counts are searched
    modes : ``"agg"`` and / or ``"disagg"``
    disagg_workers : (prefill workers, decode workers) pairs tried in the disaggregated mode
    engine : the serving engine whose fitted loop parameters and kernels apply (``"vllm"``, ``"sglang"``,
        ``"trtllm"``; :func:`costmodel.loop_params.engine_params`, and ``Efficiency.kernel_engine`` for the
        kernel models: its calibrated kernels, the MoE kernels it runs, its all-reduce rule); ``params``
        replaces the loop parameters (``LoopParams()``: the kernels' time alone)
    kv_transfer_overhead_s : fixed cost of one request's KV transfer in the disaggregated mode [s];
        default the engine's fitted one (:func:`costmodel.loop_params.transfer_overhead_s`), 0 without
    kv_dtype : KV-cache storage format
    max_gpus_per_worker : largest tp x pp of one worker [-]
    usd_per_hour : price per GPU-hour by system name [USD/h], each a positive number, replacing those
        profiles' prices (a device without one in its profile has no cost until given one here); every name
        one of ``systems``
    token_budget : the token budget per iteration a worker is launched with, as the engine's own flag
        takes it (vLLM ``--max-num-batched-tokens``, TensorRT-LLM ``max_num_tokens``, SGLang
        ``--chunked-prefill-size``) [tokens]; None (default): the engine's own default on each device
        (:func:`costmodel.token_budget.default_token_budget`: vLLM 8,192 on a GPU of 70 GiB or more but
        an A100, else 2,048; SGLang 2,048 / 4,096 / 8,192 / 16,384 by device memory; TensorRT-LLM 8,192;
        GPUs only: a TPU or CPU in ``systems`` raises, naming ``token_budget``); raised to a point's clients
        per worker where they are more.
        Under attention DP each rank gets what the engine's rule gives it
        (:func:`costmodel.token_budget.rank_token_budget`): the whole value with vLLM and TensorRT-LLM
        (per rank), its share with SGLang (per worker), which SGLang also caps at its default
        ``--max-prefill-tokens`` of 16,384 (:data:`costmodel.token_budget.SGLANG_MAX_PREFILL_TOKENS`);
        without attention DP the two readings agree

    Returns a :class:`Frontier`. Candidates that cannot run (weights that do not fit, a degree that does
    not divide the heads, a format without a peak) are listed in ``skipped`` with the reason, never
    dropped silently.
    """
    from costmodel.loop_params import (
        decode_share_dispersion,
        disagg_burst_fraction,
        engine_params,
        host_passes,
        overlaps_host,
        transfer_overhead_s,
    )
    from costmodel.registry import load_hardware, load_model

    m = load_model(model)
    hardware = [load_hardware(s) for s in systems]
    if not hardware:
        raise CostmodelError("systems is empty: give one or more hardware profiles, e.g. ['h100-sxm']")
    for name, value, low in (("isl", isl, 1), ("osl", osl, 2)):
        if not (isinstance(value, int | np.integer) and value >= low):
            raise CostmodelError(f"{name} must be an integer >= {low} [tokens], got {value!r}")
    ttft_s, tpot_s = _objective("ttft_s", ttft_s), _objective("tpot_s", tpot_s)
    for fmt in formats:
        if fmt not in FORMATS:
            raise UnknownNameError("format", fmt, FORMATS)
    if not formats:
        raise CostmodelError(f"formats is empty: give one or more of {', '.join(FORMATS)}")
    for mode in modes:
        if mode not in MODES:
            raise UnknownNameError("mode", mode, MODES)
    if not modes:
        raise CostmodelError("modes is empty: give 'agg', 'disagg' or both")
    tps, pps = _check_ints("tp", tp), _check_ints("pp", pp)
    eps = None if ep is None else _check_ints("ep", ep)
    clients = np.asarray(_check_ints("concurrency", concurrency), dtype=np.int64)
    workers = [tuple(pair) for pair in disagg_workers]
    if "disagg" in modes and (
        not workers
        or any(len(w) != 2 or not all(isinstance(n, int | np.integer) and n >= 1 for n in w) for w in workers)
    ):
        raise CostmodelError("disagg_workers must be (prefill workers, decode workers) pairs, e.g. [(1, 2)]")
    if not (isinstance(max_gpus_per_worker, int | np.integer) and max_gpus_per_worker >= 1):
        raise CostmodelError(f"max_gpus_per_worker must be an integer >= 1, got {max_gpus_per_worker!r}")
    whole = isinstance(token_budget, int | np.integer) and not isinstance(token_budget, bool)
    if token_budget is not None and not (whole and token_budget >= 1):
        raise CostmodelError(
            "token_budget must be an integer >= 1 [tokens] or None (the engine's default), "
            f"got {token_budget!r}"
        )
    prices = _prices(usd_per_hour, [hw.name for hw in hardware])
    if engine not in ENGINES:  # its kernels are read even where ``params`` replaces its loop parameters
        raise UnknownNameError("engine", engine, ENGINES)
    loop = params if params is not None else engine_params(engine)
    transfer = kv_transfer_overhead_s if kv_transfer_overhead_s is not None else transfer_overhead_s(engine)
    if not (math.isfinite(transfer) and transfer >= 0):
        raise CostmodelError(f"kv_transfer_overhead_s must be a time >= 0 [s], got {transfer!r}")
    # read (and checked) here, so a bad shipped value is an error, not every disaggregated pair skipped
    dispersion = decode_share_dispersion(engine)
    # the disaggregated loop's own wave share where one was fitted, unless the caller gives the parameters
    wave = disagg_burst_fraction(engine) if params is None else None
    from costmodel.specs import check_context

    check_context(m, isl, osl)

    dropped: list[tuple[str, int]] = []
    layouts = _layouts(
        m, formats, tps, pps, eps, int(max_gpus_per_worker), _check_ints("attention_dp", attention_dp),
        dropped,
    )  # fmt: skip
    if not layouts:  # nothing to try is bad input, not a search that found nothing
        raise CostmodelError(
            f"no layout of {m.name} to search: every tp x attention_dp x pp exceeds the "
            f"{max_gpus_per_worker} GPUs of a worker (max_gpus_per_worker)"
            + ("" if m.moe is None else ", or no ep divides tp x attention_dp")
        )
    columns: dict[str, list[Any]] = {name: [] for name in _POINT_COLUMNS}
    candidates: list[tuple[tuple[Any, ...], int]] = []  # (the columns of _CANDIDATE_COLUMNS, points)
    skipped: list[tuple[str, str]] = []

    def add(hw: HardwareProfile, mode: str, layout: _Layout, prefill: _Layout | None, x: Any, y: Any,
            served: Served, loop_clients: Any) -> None:  # fmt: skip
        """One candidate's points: ``served`` arrays over (worker ratios,) concurrency."""
        shape = np.shape(served.ttft_s)
        price = prices.get(hw.name, hw.price.usd_per_hour if hw.price else math.nan)
        first = prefill or _Layout(0, 0, 0, layout.format, 0)
        per_candidate = (hw.name, mode, layout.format, layout.tp, layout.pp, layout.ep, layout.attention_dp,
                         first.tp, first.pp, first.ep, first.attention_dp, price)  # fmt: skip
        candidates.append((per_candidate, int(np.prod(shape))))
        values = (x, y, served.gpus, loop_clients, served.batch_size, served.ttft_s, served.tpot_s,
                  served.output_tokens_per_s)  # fmt: skip
        for key, value in zip(_POINT_COLUMNS, values, strict=True):
            column = np.empty(shape, dtype=np.asarray(value).dtype)
            column[...] = value  # broadcast on assignment
            columns[key].append(column.ravel())

    for hw in hardware:
        # the launch value: the caller's, else the engine's own default on this device
        budget = default_token_budget(engine, hw) if token_budget is None else int(token_budget)
        # the engine's own kernels (its calibrated keys, its MoE kernels, its all-reduce rule), as the
        # public evaluation times each row (validation.public.silicon); the MoE backend is the autotuner's
        kernels = hw.efficiency.model_copy(update={"kernel_engine": engine})
        engines: dict[_Layout, Engine | str] = {}
        for layout in layouts:
            try:
                # configured for each point's own load below (_launched); every copy of one layout shares
                # its terms, so the passes its aggregated and disaggregated workers need are evaluated once
                engines[layout] = _engine(m, hw, layout, kv_dtype, 1, budget, kernels).sharing_parts()
            except (CostmodelError, ValueError) as e:
                engines[layout] = _first_line(e)
        if "disagg" in modes:
            _note_disagg(engines, clients=clients, token_budget=budget, isl=isl, osl=osl, engine_name=engine)
        for layout, built in engines.items() if "agg" in modes else ():
            describe = f"{hw.name} agg {_describe(layout)}"
            if isinstance(built, str):
                skipped.append((describe, built))
                continue
            mine = clients[clients >= layout.attention_dp]  # at least one client per attention-DP rank
            if mine.size == 0:
                skipped.append((describe, f"fewer clients than its {layout.attention_dp} attention-DP ranks"))
                continue
            try:
                served = _agg_launched(
                    built,
                    mine,
                    token_budget=budget,
                    engine_name=engine,
                    isl=isl,
                    osl=osl,
                    params=loop,
                    overlap_host=overlaps_host(engine),
                )
            except (CostmodelError, ValueError) as e:
                skipped.append((describe, _first_line(e)))
                continue
            add(hw, "agg", layout, None, 0, 1, served, mine)
        if "disagg" in modes:
            _search_disagg(
                hw=hw,
                engines=engines,
                workers=workers,
                clients=clients,
                token_budget=budget,
                engine_name=engine,
                isl=isl,
                osl=osl,
                loop=loop,
                add=add,
                skipped=skipped,
                transfer_overhead_s=transfer,
                overlap_host=overlaps_host(engine),
                decode_share_dispersion=dispersion,
                burst_fraction=wave,
                # the search decodes without drafting: one host pass per decode iteration for every engine
                decode_host_passes=host_passes(engine, drafts=False),
            )

    # the layouts over a worker's GPUs, once each (any system, any format), after the searched ones' reasons
    skipped.extend(
        (f"{what} (every system and format)", f"tp x attention_dp x pp = {gpus} GPUs exceeds the "
         f"{max_gpus_per_worker} GPUs a worker holds (max_gpus_per_worker)")
        for what, gpus in dict.fromkeys(dropped)
    )  # fmt: skip
    if not candidates:
        reasons = "; ".join(f"{d}: {r}" for d, r in skipped[:3])
        raise CostmodelError(
            f"no deployment of {m.name} could be evaluated ({len(skipped)} tried: {reasons}"
            f"{'; ...' if len(skipped) > 3 else ''}); try more systems, formats or TP degrees"
        )
    counts = np.array([n for _, n in candidates])
    for k, name in enumerate(_CANDIDATE_COLUMNS):
        columns[name] = [np.repeat(np.array([c[k] for c, _ in candidates]), counts)]
    points = _points(columns, isl, osl, ttft_s, tpot_s)
    return Frontier(points, _cheapest(points), tuple(skipped), ttft_s, tpot_s, int(isl), int(osl))


def _search_disagg(
    *,
    hw: HardwareProfile,
    engines: dict[_Layout, Engine | str],
    workers: list[tuple[Any, ...]],
    clients: IntArray,
    token_budget: int,
    engine_name: str,
    isl: int,
    osl: int,
    loop: LoopParams,
    add: Callable[..., None],
    skipped: list[tuple[str, str]],
    transfer_overhead_s: float = 0.0,
    overlap_host: bool = False,
    decode_share_dispersion: float = 0.0,
    burst_fraction: float | None = None,
    decode_host_passes: float = 1.0,
) -> None:
    """Disaggregated candidates: prefill and decode workers of the same format and one pipeline stage
    each (attention-DP ranks in either, for a MoE model), every pair of layouts that run, every worker
    ratio, through :func:`disagg_points`; client counts of at least one per decode rank (the agg search's
    rule). A reason shared by several pairs is recorded once, with the first pair it stopped.

    Every worker is launched for its own load, so that a point does not depend on the other client counts
    searched: a decode worker at C clients runs at most C sequences (as :func:`_launched`, through
    ``decode_batch_limit``), a prefill worker as many prompts per pass as its token budget holds (tokens,
    not a sequence count, limit a prefill pass). Both pools' engines admit what the budget holds, so every
    decode worker's iterations are timed on one batch grid up to the budget
    (:func:`costmodel.disagg.decode_side`), whatever the clients, and all pairs are evaluated in one
    stacked pass. One call per token budget (C above ``token_budget`` raises it)."""
    ready = _disagg_ready(engines)
    pairs = [(p, d) for p, _ in ready for d, _ in ready if p.format == d.format]
    if not pairs:
        return
    X = np.array([w[0] for w in workers], dtype=np.int64)
    Y = np.array([w[1] for w in workers], dtype=np.int64)
    budgets = np.maximum(token_budget, clients)
    found: list[list[tuple[IntArray, Served]]] = [[] for _ in pairs]  # per pair: (counts, their points)
    reasons: dict[str, str] = {}
    failed: set[int] = set()
    for budget in (int(b) for b in np.unique(budgets)):
        counts = clients[budgets == budget]
        launched = {
            layout: _disagg_launched(e, budget, engine_name, int(counts.max())) for layout, e in ready
        }
        # at least one client per decode rank
        todo = [k for k, (_, d) in enumerate(pairs) if k not in failed and counts.max() >= d.attention_dp]
        if not todo:
            continue
        try:
            served = disagg_points(
                [(launched[pairs[k][0]], launched[pairs[k][1]]) for k in todo],
                prefill_workers=X,
                decode_workers=Y,
                concurrency=counts[None, :]
                * Y[:, None],  # the same clients per decode worker as per agg worker
                isl=isl,
                osl=osl,
                params=loop,
                kv_transfer_overhead_s=transfer_overhead_s,
                overlap_host=overlap_host,
                decode_share_dispersion=decode_share_dispersion,
                burst_fraction=burst_fraction,
                decode_batch_limit=counts[None, :],
                decode_host_passes=decode_host_passes,
            )
        except (CostmodelError, ValueError) as e:  # a failure the plug-in did not attribute to one pair
            served = [_first_line(e)] * len(todo)
        for k, result in zip(todo, served, strict=True):
            if isinstance(result, str):
                reasons.setdefault(
                    result, f"{hw.name} disagg {_describe(pairs[k][0])} : {_describe(pairs[k][1])}"
                )
                failed.add(k)
                continue
            keep = counts >= pairs[k][1].attention_dp  # the plug-in's NaN columns: fewer clients than ranks
            found[k].append(
                (
                    counts[keep],
                    Served(**{f.name: np.asarray(getattr(result, f.name))[:, keep] for f in fields(Served)}),
                )
            )
    for k, (p_layout, d_layout) in enumerate(pairs):
        if k in failed:
            continue
        if not found[k]:
            why = f"fewer clients per decode worker than its {d_layout.attention_dp} attention-DP ranks"
            reasons.setdefault(why, f"{hw.name} disagg {_describe(p_layout)} : {_describe(d_layout)}")
            continue
        counts = np.concatenate([c for c, _ in found[k]])
        result = Served(
            **{
                f.name: np.concatenate([getattr(s, f.name) for _, s in found[k]], axis=1)
                for f in fields(Served)
            }
        )
        add(hw, "disagg", d_layout, p_layout, X[:, None], Y[:, None], result, counts[None, :] * Y[:, None])
    skipped.extend((what, why) for why, what in reasons.items())


def _disagg_ready(engines: dict[_Layout, Engine | str]) -> list[tuple[_Layout, Engine]]:
    """The layouts a disaggregated pool can take: those that run, with one pipeline stage."""
    return [(layout, e) for layout, e in engines.items() if isinstance(e, Engine) and layout.pp == 1]


def _disagg_launched(engine: Engine, budget: int, engine_name: str, clients: int = 1) -> Engine:
    """One engine per layout for both pools (its kernel times computed once), launched with the token
    budget ``budget`` [tokens] and taking each attention-DP rank the budget ``engine_name``'s rule gives it
    (:func:`costmodel.token_budget.rank_token_budget`: SGLang's share, capped at its
    ``--max-prefill-tokens``), so a prefill pass carries what the engine's own rule lets it; it admits the
    launch value's sequences, ``budget``, where the ranks' budgets together hold them (vLLM, TensorRT-LLM,
    and SGLang below its cap), else as many as they hold, at least ``clients`` [-] (the most clients a
    decode worker of this budget serves: every running sequence decodes a token per iteration). A decode
    worker's own limit, its clients, is :func:`disagg_points`' ``decode_batch_limit``. Before session 19
    the pools admitted ``budget`` sequences whatever the rule, which raised SGLang's worker budget back to
    ``budget`` and cancelled its prefill cap."""
    ranks = engine.deployment.attention_dp
    held = rank_token_budget(engine_name, budget, ranks) * ranks
    sequences = max(min(int(budget), held), int(clients))
    tokens = worker_batched_tokens(engine_name, budget, attention_dp=ranks, sequences=sequences)
    return engine.replace(max_batch_size=sequences, max_batched_tokens=tokens)


def _note_disagg(
    engines: dict[_Layout, Engine | str],
    *,
    clients: IntArray,
    token_budget: int,
    isl: int,
    osl: int,
    engine_name: str,
) -> None:
    """Note the passes :func:`_search_disagg` will time each layout's prefill and decode workers with
    (:func:`costmodel.disagg.note_sides`), so that the layout's first evaluation (its aggregated worker's,
    or else its prefill side's) evaluates them with its own, one concatenated pass per kind, on the terms
    every copy of the layout shares (:meth:`costmodel.serving.Engine.sharing_parts`). Only which passes
    are evaluated together changes, and each element of a pass is evaluated on its own, so no figure does.
    A side that cannot be noted notes nothing (its error is the search's to report). Only the sides the
    search times are noted, by its rule: at each token budget, a decode side where the most clients reach
    one per attention-DP rank, a prefill side where some decode layout of its format does."""
    from costmodel.disagg import note_sides

    ready = _disagg_ready(engines)
    budgets = np.maximum(token_budget, clients)
    for budget in (int(b) for b in np.unique(budgets)):
        most = int(clients[budgets == budget].max())
        decodes = {layout for layout, _ in ready if most >= layout.attention_dp}
        formats = {layout.format for layout in decodes}
        for layout, built in ready:
            prefill, decode = layout.format in formats, layout in decodes
            if not (prefill or decode):
                continue
            try:
                note_sides(
                    _disagg_launched(built, budget, engine_name, most),
                    isl=isl,
                    osl=osl,
                    prefill=prefill,
                    decode=decode,
                )
            except (CostmodelError, ValueError):  # the side's own call reports it, for its pairs
                continue


def _launched(engine: Engine, clients: int, token_budget: int, engine_name: str) -> Engine:
    """``engine`` launched for ``clients`` clients per worker, as the benchmark scripts the serving model
    is validated on launch theirs (InferenceX's ``--max-num-seqs $CONC`` for vLLM, ``max_batch_size`` =
    CONC for TensorRT-LLM; docs/serving.md, "Pareto planner"): at most ``clients`` sequences at once, and
    launched with a token budget of ``token_budget`` raised to ``clients`` where smaller (every running
    sequence decodes a token per iteration), of which each attention-DP rank gets what ``engine_name``'s
    rule gives it (:func:`costmodel.token_budget.worker_batched_tokens`)."""
    budget = max(int(token_budget), int(clients))
    tokens = worker_batched_tokens(
        engine_name, budget, attention_dp=engine.deployment.attention_dp, sequences=int(clients)
    )
    return engine.replace(max_batch_size=int(clients), max_batched_tokens=tokens)


def _agg_launched(
    built: Engine,
    clients: IntArray,
    *,
    token_budget: int,
    engine_name: str,
    isl: int,
    osl: int,
    params: LoopParams,
    overlap_host: bool,
) -> Served:
    """:func:`agg_point` at each client count C of one worker launched for C (:func:`_launched`), with the
    CUDA graphs its ``max_num_seqs`` gives (a rank's, ceil(C / attention_dp), each attention-DP rank an engine
    of its own; :func:`costmodel.closed_loop.cuda_graph_tokens`), so that a point does not depend on the other
    counts searched. One array evaluation per token budget: a worker admits min(C, max_batch_size, what its KV
    cache holds) sequences (``closed_loop._admitted``), so one launched for the largest count of the group
    admits at each count what one launched for it does, and the graphs are an array over the counts."""
    budgets = np.maximum(int(token_budget), clients)
    ranks = built.deployment.attention_dp
    graphs = np.array(
        [
            # a rank's max_num_seqs: its share of the worker's C sequences, as the evaluation passes a
            # rank's batch (validation.public.silicon)
            cuda_graph_tokens(engine_name, -(-int(c) // ranks), rank_token_budget(engine_name, int(b), ranks))
            for c, b in zip(clients, budgets, strict=True)
        ],
        dtype=np.float64,
    )
    out = {
        name: np.full(clients.shape, np.nan)
        for name in ("ttft_s", "tpot_s", "output_tokens_per_s", "batch_size")
    }
    for budget in np.unique(budgets):
        group = budgets == budget
        served = agg_point(
            _launched(built, int(clients[group].max()), int(budget), engine_name),
            concurrency=clients[group],
            isl=isl,
            osl=osl,
            params=params,
            graph_tokens=graphs[group],
            overlap_host=overlap_host,
        )
        for name, column in out.items():
            column[group] = getattr(served, name)
    return Served(**out, gpus=built.gpus)


def _describe(layout: _Layout) -> str:
    dp = f" ADP{layout.attention_dp}" if layout.attention_dp > 1 else ""
    return f"TP{layout.tp}{dp} PP{layout.pp} EP{layout.ep} {layout.format}"


_CANDIDATE_COLUMNS = ("system", "mode", "format", "tp", "pp", "ep", "attention_dp", "prefill_tp",
                      "prefill_pp", "prefill_ep", "prefill_attention_dp", "usd_per_gpu_hour")  # fmt: skip
_POINT_COLUMNS = ("prefill_workers", "decode_workers", "gpus", "concurrency", "batch_size", "ttft_s",
                  "tpot_s", "output_tokens_per_s")  # fmt: skip


def _points(
    columns: dict[str, list[Any]], isl: int, osl: int, ttft_s: float | None, tpot_s: float | None
) -> Points:
    c = {name: np.concatenate(parts) for name, parts in columns.items()}
    gpus = c["gpus"].astype(np.int64)
    out_per_s = c["output_tokens_per_s"].astype(np.float64)
    usd_per_gpu_hour = c["usd_per_gpu_hour"].astype(np.float64)
    usd_per_hour = usd_per_gpu_hour * gpus
    usd_per_m_out = usd_per_hour / (out_per_s * 3600.0) * 1e6
    meets = np.ones(gpus.shape, dtype=bool)
    if ttft_s is not None:
        meets &= c["ttft_s"] <= ttft_s
    if tpot_s is not None:
        meets &= c["tpot_s"] <= tpot_s
    per_user = 1.0 / c["tpot_s"]
    per_gpu = out_per_s / gpus
    # among identical points the lower TTFT first, so the frontier keeps it
    return Points(
        system=c["system"].astype(str),
        mode=c["mode"].astype(str),
        format=c["format"].astype(str),
        tp=c["tp"].astype(np.int64),
        pp=c["pp"].astype(np.int64),
        ep=c["ep"].astype(np.int64),
        attention_dp=c["attention_dp"].astype(np.int64),
        prefill_tp=c["prefill_tp"].astype(np.int64),
        prefill_pp=c["prefill_pp"].astype(np.int64),
        prefill_ep=c["prefill_ep"].astype(np.int64),
        prefill_attention_dp=c["prefill_attention_dp"].astype(np.int64),
        prefill_workers=c["prefill_workers"].astype(np.int64),
        decode_workers=c["decode_workers"].astype(np.int64),
        concurrency=c["concurrency"].astype(np.int64),
        batch_size=c["batch_size"].astype(np.float64),
        gpus=gpus,
        ttft_s=c["ttft_s"].astype(np.float64),
        tpot_s=c["tpot_s"].astype(np.float64),
        tokens_per_s_per_user=per_user,
        output_tokens_per_s=out_per_s,
        output_tokens_per_s_per_gpu=per_gpu,
        usd_per_gpu_hour=usd_per_gpu_hour,
        usd_per_hour=usd_per_hour,
        usd_per_million_output_tokens=usd_per_m_out,
        usd_per_million_tokens=usd_per_m_out * osl / (isl + osl),
        meets_slo=meets,
        on_frontier=_frontier_mask(per_user, per_gpu, c["system"], c["ttft_s"]),
    )


def _frontier_mask(x: FloatArray, y: FloatArray, system: npt.NDArray[Any], ttft: FloatArray) -> BoolArray:
    """:func:`pareto_mask` by system, of identical points keeping the one with the lowest TTFT."""
    order = np.argsort(ttft, kind="stable")
    mask = np.zeros(x.shape, dtype=bool)
    mask[order] = pareto_mask(x[order], y[order], system[order])
    return mask


def _cheapest(p: Points) -> int | None:
    """The lowest $ per million output tokens among the points meeting the objectives (ties: the higher
    tokens/s per user, then the lower TTFT)."""
    ok = p.meets_slo & np.isfinite(p.usd_per_million_output_tokens)
    if not ok.any():
        return None
    idx = np.flatnonzero(ok)
    order = np.lexsort((p.ttft_s[idx], -p.tokens_per_s_per_user[idx], p.usd_per_million_output_tokens[idx]))
    return int(idx[order[0]])


def _first_line(error: Exception) -> str:
    return " ".join(str(error).splitlines()[0].split()) if str(error) else type(error).__name__
