"""Adapter: NVIDIA aiconfigurator's ``moe_perf`` tables -> ``costmodel.kernels.moe``.

One row is one fused MoE layer call measured on the GPU that holds the busiest expert group. The
parameters are looked up per ``<format>:<engine>:<kernel_source>`` (e.g.
``fp8_block:vllm:vllm_fp8moe_triton_tritonexperts``): different kernels reach different fractions of the
same peak, and the format sets the bytes per weight and the compute dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.kernels import moe, moe_configs
from costmodel.registry import load_hardware

KERNEL_MODULE = moe
OP_NAMES = ("moe",)

FORMAT_NAMES = {"bfloat16": "bf16", "float16": "bf16", "fp16": "bf16"}

LEGACY_ROUTING_TABLES = frozenset({("vllm", "0.14.0")})
"""(engine, engine version) of tables whose power-law rows were drawn by the collector's earlier fix-up
(``costmodel.kernels.moe.power_law_load(legacy=True)``): A100's vLLM 0.14 table, whose T = 1-16 rows with
32-256-way EP time rank 0 with ``min(E / ep, T k)`` experts, which only the earlier fix-up (missing pairs to
the largest counts, equal counts in expert order) produces; the 0.24 / TRT-LLM 1.3 tables run power-law and
balanced rows equally fast at T k << E, which only the current one (empty experts filled first) produces."""


NON_GATED_MODEL_SHAPES = (
    ("Nemotron-H (Nemotron 3 Super / Ultra): 512 experts, top-22", {"num_experts": 512, "topk": 22}),
    (
        "Nemotron 3 Nano: 128 experts of 2688 x 1856, top-6",
        {"num_experts": 128, "topk": 6, "hidden_size": 2688, "inter_size": 1856},
    ),
)
"""MoE configurations of models whose experts are non-gated (up, relu^2, down: NemotronH's
``mlp_hidden_act: relu2``, as costmodel's ``nemotron-3-*`` model files say) and that no other model in the
tables shares (NVIDIA aiconfigurator's collector cases,
``collector/cases/models/NemotronHForCausalLM_cases.yaml``, https://github.com/ai-dynamo/aiconfigurator).
The vLLM 0.24 tables' collector builds these experts with the model's activation, under kernel names that do
not say so (their gated time would need 1.02 TB/s of weight streaming on the 0.86 TB/s L40S); the vLLM 0.14
collector (:data:`LEGACY_ROUTING_TABLES`) always built
gate and up (``w1`` of ``2 x inter_size`` rows), and TensorRT-LLM names its ``nongated`` kernels."""


def non_gated(table: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """True per row for non-gated experts: a ``nongated`` kernel, or a :data:`NON_GATED_MODEL_SHAPES`
    configuration in a table whose collector runs the model's own activation (vLLM, not the 0.14 tables)."""
    named = table["kernel_source"].astype(str).str.contains("nongated").to_numpy(dtype=bool)
    model = np.zeros(len(table), dtype=bool)
    for _, columns in NON_GATED_MODEL_SHAPES:
        match = np.ones(len(table), dtype=bool)
        for column, value in columns.items():
            match &= table[column].to_numpy() == value
        model |= match
    engine = table["framework"].astype(str).str.lower().to_numpy(dtype=str)
    if "engine" in table and "engine_version" in table:
        pairs = zip(table["engine"].astype(str), table["engine_version"].astype(str), strict=True)
        legacy = np.array([pair in LEGACY_ROUTING_TABLES for pair in pairs], dtype=bool)
    else:
        legacy = np.zeros(len(table), dtype=bool)
    return np.asarray(named | (model & (engine == "vllm") & ~legacy), dtype=bool)


def formats(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The costmodel format name of each row (``bfloat16`` -> ``bf16``; others as the table spells them)."""
    raw = table["moe_dtype"].astype(str).str.lower()
    return np.asarray(raw.map(lambda v: FORMAT_NAMES.get(v, v)).to_numpy(dtype=str))


def params_key(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """``<format>:<engine>:<kernel_source>`` per row."""
    engine = table["framework"].astype(str).str.lower().to_numpy(dtype=str)
    kernel = table["kernel_source"].astype(str).to_numpy(dtype=str)
    return np.asarray(
        [f"{f}:{e}:{k}" for f, e, k in zip(formats(table), engine, kernel, strict=True)], dtype=str
    )


GROUP_LIMITED_GATE_KERNELS = {"moe_torch_flow_min_latency": (8, 4)}
"""Kernels (``kernel_source``) the collector routes through a group-limited gate, with its (groups, kept
groups): TensorRT-LLM's ``min_latency`` MoE is built with ``DeepseekV3Gate(n_group=8, topk_group=4)`` over
logits drawn for a plain top-k (``collector/trtllm/collect_moe.py``, https://github.com/ai-dynamo/aiconfigurator;
:func:`costmodel.kernels.moe.group_limited_balanced_load`). Its balanced rows are read as
``balanced+group_limited_8_4``; its power-law rows keep the table's routing (their logits through the gate
are not modelled), except where every group holds one expert (``num_experts`` = groups): the gate then puts
every pick on expert 0 whatever the logits, so those rows route as the balanced ones."""


def routing(table: pd.DataFrame) -> npt.NDArray[np.str_]:
    """The table's ``distribution`` per row, ``power_law_<a>`` read as ``power_law_legacy_<a>`` in the
    tables of ``LEGACY_ROUTING_TABLES``, ``balanced`` as ``balanced+group_limited_<n>_<m>`` for the kernels
    of ``GROUP_LIMITED_GATE_KERNELS``."""
    distribution = table["distribution"].astype(str)
    if "kernel_source" in table:
        kernel = table["kernel_source"].astype(str)
        for name, (groups, kept) in GROUP_LIMITED_GATE_KERNELS.items():
            gated = distribution == "balanced"
            if "num_experts" in table:
                # one expert per group: the logits do not matter (see group_limited_balanced_load)
                gated |= pd.to_numeric(table["num_experts"], errors="coerce").to_numpy() == groups
            gated &= kernel == name
            distribution = distribution.where(~gated, f"balanced+group_limited_{groups}_{kept}")
    if "engine" in table and "engine_version" in table:
        pairs = zip(table["engine"].astype(str), table["engine_version"].astype(str), strict=True)
        legacy = np.array([pair in LEGACY_ROUTING_TABLES for pair in pairs], dtype=bool)
        distribution = distribution.where(
            ~legacy, distribution.str.replace("power_law_", "power_law_legacy_")
        )
    return np.asarray(distribution.to_numpy(dtype=str))


def shapes(table: pd.DataFrame) -> dict[str, Any]:
    """Keyword arrays for ``moe.time_s``; ``gated`` is False for non-gated experts (:func:`non_gated`),
    ``tuned_config`` False for calls on a default launch configuration (:func:`tuned`)."""
    return {
        "num_tokens": table["num_tokens"].to_numpy(dtype=np.float64),
        "hidden_size": table["hidden_size"].to_numpy(dtype=np.float64),
        "inter_size": table["inter_size"].to_numpy(dtype=np.float64),
        "topk": table["topk"].to_numpy(dtype=np.float64),
        "num_experts": table["num_experts"].to_numpy(dtype=np.float64),
        "tp_size": table["moe_tp_size"].to_numpy(dtype=np.float64),
        "ep_size": table["moe_ep_size"].to_numpy(dtype=np.float64),
        "routing": routing(table),
        "gated": ~non_gated(table),
        "tuned_config": tuned(table),
    }


def tuned(table: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Per row: does the kernel run a tuned launch configuration (False: vLLM's Triton fused_moe with no
    config file for the row's experts per GPU, width per GPU, device and format;
    :func:`costmodel.kernels.moe_configs.tuned_config`)."""
    out = np.ones(len(table), dtype=bool)
    if "hardware" not in table:
        return out
    keys = params_key(table)
    hardware = table["hardware"].astype(str).to_numpy(dtype=str)
    experts = (table["num_experts"] / table["moe_ep_size"]).to_numpy(dtype=np.float64)
    width = (table["inter_size"] / table["moe_tp_size"]).to_numpy(dtype=np.float64)
    for hw, key in set(zip(hardware, keys, strict=True)):
        rows = (hardware == hw) & (keys == key)
        out[rows] = moe_configs.tuned_config(load_hardware(str(hw)), key, experts[rows], width[rows])
    return out


TUNING_CACHE_COLUMNS = ("moe_dtype", "hidden_size", "local_inter_size", "local_experts")
"""What NVIDIA aiconfigurator's TensorRT-LLM collector names a tactic-cache file by
(``<format>_<hidden>_<inter/tp>_<experts/ep>``, ``collector/trtllm/collect_moe.py``, ``run_moe_torch``,
https://github.com/ai-dynamo/aiconfigurator)."""


UNTUNED_KERNEL_SOURCES = ("deepgemm",)
"""TensorRT-LLM MoE kernel sources that call no autotuner: ``DeepGemmFusedMoE.forward_chunk`` runs
``moe_permute_op``, Triton quantisation and ``deep_gemm.fp8_m_grouped_gemm_nt_masked`` (DeepGEMM's own
heuristic), no ``AutoTuner.choose_one`` (``tensorrt_llm/_torch/modules/fused_moe/fused_moe_deepgemm.py``,
https://github.com/NVIDIA/TensorRT-LLM)."""

UNCACHED_FORMATS = ("w4a16_mxfp4",)
"""Formats whose series the collector runs without a tactic-cache file: ``run_moe_torch`` neither loads nor
tunes one when ``moe_type == "w4a16_mxfp4"`` (``collector/trtllm/collect_moe.py``,
https://github.com/ai-dynamo/aiconfigurator)."""


def undetermined_tactic(table: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """True per TensorRT-LLM row whose collector tactic-cache file (:data:`TUNING_CACHE_COLUMNS`) the table's
    series of more than one (top-k, kernel source, TP, EP) share: the collector tunes a series only when no
    such file exists yet, and TensorRT-LLM's autotuner keys a tactic by the custom op, the runner and the op's
    input shapes, top-k included, answering a miss outside tuning with its fallback tactic
    (``AutoTuner.choose_one``, ``AutoTuner._get_cache_key``, ``tensorrt_llm/_torch/autotuner.py``,
    https://github.com/NVIDIA/TensorRT-LLM). The file name holds no backend, so nvfp4's ``min_latency``
    series (TRT-LLM-Gen, op ``trtllm::fp4_block_scale_moe_runner``) and its CUTLASS series (ops
    ``trtllm::fused_moe::gemm1`` / ``gemm2``) of one local shape and top-k share a file whose entries serve
    one of them only; the collector runs a CUTLASS series beside every ``min_latency`` one, so no
    ``min_latency`` row is determined. Of such series one ran tuned tactics and the other the fallback, and
    the table does not say which (``validation.public.moe_consistency.shared_cache_ratios`` shows it in the
    measurements). The collector loads the first file matching ``<name>*``, so a file whose local expert
    count starts with the same digits (16 and 160 experts per GPU) may serve the shorter name instead: its
    rows are undetermined too. Kernels that consult no cache are exempt (:data:`UNTUNED_KERNEL_SOURCES`,
    :data:`UNCACHED_FORMATS`). A rule on the rows' identity only, never their latency.

    The layout counts as well: the autotuner's cache key holds ``hash(runner)`` (``AutoTunerProfilingCache.
    get_cache_key``), a runner hashes the values of its attributes (``TunableRunner.__hash__``), and the
    CUTLASS ``MoERunner`` keeps its ``top_k``, ``tp_size`` and ``ep_size`` among them
    (``tensorrt_llm/_torch/custom_ops/torch_custom_ops.py``). Two layers of one local shape and top-k but
    different TP or EP (Llama 4 Scout's 16 experts at EP e and Maverick's 128 at EP 8e, both 5120 x 8192,
    top-1) therefore share a file and miss each other's entries too. A series is thus one (top-k, kernel
    source, TP, EP); its routing is not part of it (the runner does not hold it), so the balanced and
    power-law series of one layout count once."""
    if table.empty or "framework" not in table:
        return np.zeros(len(table), dtype=bool)
    trt = table["framework"].astype(str).str.lower().to_numpy(dtype=str) == "trtllm"
    source = (
        table["kernel_source"].astype(str).to_numpy(dtype=str)
        if "kernel_source" in table
        else np.full(len(table), "", dtype=str)
    )
    dtype = table["moe_dtype"].astype(str).to_numpy(dtype=str)
    cached = trt & ~np.isin(source, UNTUNED_KERNEL_SOURCES) & ~np.isin(dtype, UNCACHED_FORMATS)
    files = pd.DataFrame(
        {
            "cached": cached,
            "moe_dtype": dtype,
            "hidden_size": table["hidden_size"].to_numpy(),
            "local_inter_size": (table["inter_size"] // table["moe_tp_size"]).to_numpy(),
            "local_experts": (table["num_experts"] // table["moe_ep_size"]).to_numpy(),
            "series": [
                f"{k}|{s}|{tp}|{ep}"
                for k, s, tp, ep in zip(
                    table["topk"].to_numpy(),
                    source,
                    table["moe_tp_size"].to_numpy(),
                    table["moe_ep_size"].to_numpy(),
                    strict=True,
                )
            ],
        }
    )
    shared = files.groupby(["cached", *TUNING_CACHE_COLUMNS])["series"].transform("nunique").to_numpy() > 1
    # the collector loads the first file matching ``<name>*``: a file of more local experts whose count
    # starts with the same digits (16 -> 160) matches as well
    head = ["cached", *TUNING_CACHE_COLUMNS[:-1]]
    counts = files.groupby(head)["local_experts"].agg(lambda v: sorted({str(int(x)) for x in v}))
    keys = list(zip(*(files[c] for c in head), strict=True))
    prefix = np.array(
        [
            any(o != str(int(e)) and o.startswith(str(int(e))) for o in counts[key])
            for key, e in zip(keys, files["local_experts"], strict=True)
        ],
        dtype=bool,
    )
    return np.asarray(cached & (shared | prefix), dtype=bool)
