"""Operator time from the kernel-family models: the time model behind step times, serving and planning.

:func:`op_times` times every operator of :func:`costmodel.ops.forward_ops` that carries a kernel shape
(:mod:`costmodel.kernel_shapes`) with its family's ``time_s`` from :mod:`costmodel.kernels`, using the
device's calibrated parameters (``hardware_profiles/calibrated/<device>.yaml``, found by
:func:`costmodel.kernels.params_for`) or the datasheet defaults where it has none:

- **GEMMs** (projections, dense MLP, shared experts, router, output head): :mod:`costmodel.kernels.gemm`
  with ``m`` = the pass's tokens. Key: the weight format (``bf16``, ``fp8``, ``fp8_block``, ``nvfp4``);
  routers and the head are 16-bit. Weight-only formats (int4, ...), 2:4 sparse weights and formats whose
  peak the datasheet lacks keep the roofline.
- **Attention**: one new token per sequence is the decode regime
  (:mod:`costmodel.kernels.generation_attention`, the new query against ``past + 1`` keys); more is the
  prefill regime (:mod:`costmodel.kernels.context_attention`, causal over the chunk and its past).
  MLA models run :mod:`costmodel.kernels.mla`: absorbed decode against the latent cache, and in prefill the
  naive form (the ``kv_b_proj`` GEMM over the attended tokens, then attention with 192/128-dim heads);
  the absorbed decode replaces that GEMM by the two per-head ``bmm`` of the absorb form.
- **MoE** routed experts: one fused block, :mod:`costmodel.kernels.moe`, its tokens routed independently
  (:data:`STEP_ROUTING`, the touched experts :mod:`costmodel.ops` reads); the block's activation and
  down-projection ride in it.
- **Collectives** inside a node: :mod:`costmodel.kernels.collective` (tensor-parallel all-reduce with the
  engine's custom all-reduce, expert-parallel all-to-all with NCCL); across nodes, the roofline's ring.
- Everything else (norms, activations, the embedding gather, SSM and linear-attention scans, eager or
  top-k sparse attention): the roofline with the profile's efficiencies (:mod:`costmodel.roofline`).

Parameter keys. The public tables calibrate several kernels per family and device (one per engine and
kernel source). The rule: GEMM uses the format's own key (fitted on all of that format's rows, every
engine's kernels pooled; the fitted keys also name their engine, ``"<format>:<engine>:<kernel>"``, with
each engine's own pool ``"<format>:<engine>"``), except where the engine's own pool times the kernel its
layers run and the format's pool does not (:data:`ENGINE_GEMM_FORMATS`: TensorRT-LLM's block-fp8
GEMMs read ``"fp8_block:trtllm"``); MoE the fastest, at each token count, of
the engine's own kernels of the format (its autotuner picks the fastest runner), else
the format's pooled key (one rule, :func:`moe_keys`; an engine reading another's keys only among the kernels
it runs, :data:`ENGINE_MOE_KERNELS`); attention, MLA and the all-reduce use the sorted-first
stored key of the engine named by ``Efficiency.kernel_engine`` (``vllm`` by default; ``sglang`` runs
vLLM's kernels) for the compute dtype (``bf16``; ``+fp8kv`` with an fp8 cache, and the decode classes
``+mha`` / ``+wide`` / ``+swa`` the tables distinguish), then of any engine, then the datasheet defaults.

The result is a :class:`costmodel.roofline.OpTimes` like the roofline's, so reports, charts and the
serving model read it unchanged: a kernel-timed operator keeps the roofline's split between compute and
memory time, scaled so that its time is the kernel model's (its ``bound`` is the roofline's), and the
per-kernel overhead is inside each family's time (``overhead_s`` is 0; roofline operators carry one launch,
:func:`launch_s`, in their own terms).

From benchmark parameters to step parameters (:func:`step_params`): the tables time one call at a time
in eager mode, so a fitted fixed cost includes the host's dispatch of the call, which a serving step does
not pay per kernel; each fixed cost is capped at its GPU launches (:func:`launch_s` each)
(:data:`GRAPH_LAUNCHES`; the MoE tables time CUDA-graph replays, so their fixed cost is kept). And a
benchmark repeating one call finds small operands in L2, while a step runs every layer on its own data,
so the cache terms are switched off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Final, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from costmodel.errors import CostmodelError
from costmodel.execution import host_terms
from costmodel.kernel_shapes import (
    AttentionShape,
    CollectiveShape,
    FusedInto,
    GemmShape,
    MlaUpShape,
    MoEShape,
)
from costmodel.kernels.collective import HIERARCHICAL_OPS, multi_node_s, node_split
from costmodel.memory import MlaAbsorbFormat, check_engine_vendor, device_kind, mla_absorb_format
from costmodel.ops import COLLECTIVES, Op
from costmodel.roofline import Link, OpTimes, host_s
from costmodel.roofline import op_times as roofline_op_times
from costmodel.specs import Efficiency, HardwareProfile

FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")
TimeModel = Literal["auto", "roofline", "kernels"]
TIME_MODELS: tuple[TimeModel, ...] = ("auto", "roofline", "kernels")

ENGINE_PREFIX = {"vllm": "vllm", "trtllm": "trtllm", "sglang": "vllm"}
"""Engine -> the prefix of its kernels' keys in the calibrated profiles. SGLang runs FlashInfer /
FlashAttention kernels and a custom all-reduce derived from vLLM's, so it reads vLLM's (for its fp8 and
block-fp8 experts, only the keys of the kernels it runs: :data:`ENGINE_MOE_KERNELS`)."""
ALL_REDUCE_KEYS = {"vllm": "vLLM_custom", "trtllm": "TRTLLM"}
"""Engine prefix -> its custom all-reduce's key (called in CUDA-graph mode, as engines serve)."""
GEMM_FORMATS = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4"}
"""Weight dtype -> GEMM model key (the formats the GEMM model has; others keep the roofline)."""
ENGINE_GEMM_FORMATS: dict[str, tuple[str, ...]] = {"trtllm": ("fp8_block",)}
"""Engine prefix -> the GEMM formats its step times with its own kernels' pooled fit (``"<format>:<engine>"``,
where the device's calibration stores it) instead of the format's pool of every engine's kernels.
TensorRT-LLM's block-scale fp8 linear layer runs TensorRT-LLM's own kernels on both architectures the
tables cover: ``FP8BlockScalesLinearMethod.apply`` quantizes with ``torch.ops.trtllm.fp8_quantize_1x128``
and calls ``torch.ops.trtllm.fp8_block_scaling_gemm`` off SM100 (Hopper), and on SM100 its DeepGEMM
``torch.ops.trtllm.fp8_swap_ab_gemm`` unless DeepGEMM is disabled
(``tensorrt_llm/_torch/modules/linear.py``, https://github.com/NVIDIA/TensorRT-LLM). aiconfigurator's
TensorRT-LLM collector times that module itself (``run_gemm`` in ``collector/trtllm/collect_gemm.py``,
https://github.com/ai-dynamo/aiconfigurator: a ``Linear`` with ``QuantAlgo.FP8_BLOCK_SCALES``, logged as
``deepgemm`` on SM100 and ``torch_flow`` before it, timed through ``benchmark_with_power``), at a fixed cost
of a few µs. The format's pool also holds vLLM's block-fp8 rows, timed one eager call at a time:
58-275 µs of host dispatch up to m of 1,000-4,000 (H100) or at every m (B200), which the pool's shape terms
absorb (H100: ``k_step_s`` 0.38 µs and ``min_tile_m`` 64, against 0.02 µs and 16 in TensorRT-LLM's own
fit), so the pool is no model of TensorRT-LLM's kernels: at m = 16 it prices a 4096 x 2048 GEMM at 13.3 µs
on H100 where TensorRT-LLM's table measures 8.2, and a 2048 x 7168 one at 18.7 µs on B200 against 11.1.
vLLM and SGLang keep the format's pool: their own block-fp8 rows are host-bound and time no GPU kernel at
decode sizes (docs/serving.md, "TensorRT-LLM's block-fp8 GEMMs")."""
MOE_FORMATS = {
    ("bf16", "bf16"): "bf16",
    ("fp16", "fp16"): "bf16",
    ("fp8", "fp8"): "fp8",
    ("fp8_block", "fp8"): "fp8_block",
    ("nvfp4", "fp4"): "nvfp4",
    ("int4", "bf16"): "int4_wo",
    ("int4_sym", "bf16"): "int4_wo",
    ("mxfp4", "bf16"): "w4a16_mxfp4",
    ("mxfp4", "fp8"): "w4a8_mxfp4_mxfp8",
}
"""(Experts' weight dtype, the compute format of their inputs) -> MoE model format: the kernels the public
tables time. NVFP4 experts are W4A4 (fp4 x fp4 at the fp4 peak); MXFP4 experts run with bf16 inputs
(dequantized in the kernel: vLLM's default, TensorRT-LLM on Hopper) or with MXFP8 inputs on Blackwell's
mixed fp8 x fp4 MMA at the fp8 peak (TensorRT-LLM's default there; docs/serving.md, "Formats"). Other
pairs (fp8 inputs with NVFP4 weights, ...) keep the roofline."""
MOE_BACKEND_KERNELS: dict[str, tuple[str, ...]] = {
    "CUTLASS": ("_cutlass",),
    "DEEPGEMM": ("deepgemm",),
    "TRTLLM": ("min_latency", "flashinfer_trtllm"),
    "MARLIN": ("marlin",),
}
"""TensorRT-LLM ``moe_config.backend`` (and vLLM's Marlin experts, ``MARLIN``: :func:`_marlin_moe_s`) -> the
kernel names (the key's last part, a substring) of the tables'
kernels that backend runs. aiconfigurator's collector (``collector/trtllm/collect_moe.py``,
https://github.com/ai-dynamo/aiconfigurator) times TensorRT-LLM's ``DEEPGEMM`` backend as ``deepgemm`` (its
fp8 block-scale experts on Blackwell), ``CUTLASS`` as ``moe_torch_flow_cutlass`` and ``TRTLLM``
(``TRTLLMGenFusedMoE``, the trtllm-gen kernels) as ``moe_torch_flow_min_latency`` (its nvfp4 experts
only). FlashInfer ships the same trtllm-gen MoE kernels (``trtllm_fp8_block_scale_moe``,
``trtllm_fp4_block_scale_moe``: https://docs.flashinfer.ai/api/fused_moe.html), which vLLM runs and the
tables time as ``..._flashinfer_trtllm_...``: a backend the engine's own tables lack is timed with that
kernel as another engine's tables measure it (:func:`moe_keys`)."""
SHARED_TRTLLM_GEN_MOE_KEYS: dict[str, tuple[str, ...]] = {
    "w4a8_mxfp4_mxfp8": ("w4a8_mxfp4_mxfp8:trtllm:moe_torch_flow",),
}
"""Format -> TensorRT-LLM table keys that time a trtllm-gen MoE kernel FlashInfer also ships, which the other
engines' steps choose among beside their own keys (:func:`moe_keys`). TensorRT-LLM's MXFP4 x MXFP8 rows
are ``TRTLLMGenFusedMoE`` (aiconfigurator's ``collector/trtllm/collect_moe.py`` sets
``moe_backend = "trtllm"`` for the MXFP4 formats on SM100: "Blackwell MXFP4 MoE is implemented by
TRTLLMGenFusedMoE"; the format is collected on SM100 only), the MxE4m3 x MxE2m1 block-scale runner with its
routing inside the kernel. vLLM's gpt-oss method with ``VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1``
(``Mxfp4Backend.SM100_FI_MXFP4_MXFP8_TRTLLM``,
``get_mxfp4_backend`` and ``Mxfp4MoEMethod.apply_monolithic`` in
https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/quantization/mxfp4.py) runs that
kernel as FlashInfer's ``trtllm_fp4_block_scale_moe`` (https://docs.flashinfer.ai/api/fused_moe.html). vLLM's
own table times this format only in another method's modular form (``vllm_mxfp4moe_..._expertsmodular``:
routing outside the kernel), at other models' expert shapes (4096 x 2048 of 256 experts and 7168 x 3072 of
384, top-6), while TensorRT-LLM's table times the kernel at gpt-oss-120b's (2880 x 2880, 128 experts,
top-4)."""
MOE_CHECKPOINT_KERNELS_EXCLUDED = ("compressedtensors",)
"""Kernel names the MoE key choice passes over for a format without pooled parameters: costmodel's
``mxfp4`` is the checkpoint layout of ``quant_method: mxfp4`` (gpt-oss), which vLLM serves with its
``Mxfp4MoEMethod`` (the tables' ``gptossmxfp4moe`` / ``mxfp4moe`` kernels); its compressed-tensors MXFP4
path (Marlin) serves other checkpoints."""
SGLANG_FP8_MOE_KERNELS = ("triton_tritonexperts", "flashinfer_trtllm")
"""Kernel names (substrings of a key's last part) of the MoE kernels SGLang runs for fp8 experts by default:
the Triton fused MoE (vLLM's ``..._triton_tritonexperts`` keys), and FlashInfer's trtllm-gen MoE where its
server arguments pick it on SM100 (:data:`ENGINE_MOE_KERNELS`). ``flashinfer_trtllm`` matches both forms
vLLM's B200 table times for block-fp8 experts, ``..._trtllmfp8expertsmonolithic`` (routing in the kernel) and
``..._trtllmfp8expertsmodular`` (routing outside), so SGLang's block-fp8 step there takes the faster of the
two, as vLLM's does; SGLang's runner is the monolithic one (``trtllm_fp8_block_scale_moe_wrapper`` passes the
router logits to FlashInfer's ``trtllm_fp8_block_scale_moe``,
python/sglang/srt/layers/moe/flashinfer_trtllm_moe.py, https://github.com/sgl-project/sglang), but timing the
monolithic form alone was tried and not kept (it raised the held-out TTFT error of the B200 SGLang block-fp8
rows, docs/validation.md)."""
ENGINE_MOE_KERNELS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("sglang", "fp8"): ("fp8_block", SGLANG_FP8_MOE_KERNELS),
    ("sglang", "fp8_block"): ("fp8_block", SGLANG_FP8_MOE_KERNELS),
}
"""(Engine, MoE format) -> (stand-in format, kernel names), for an engine that reads another engine's MoE keys
(:data:`ENGINE_PREFIX`) but runs only some of that engine's kernels for the format. Its step chooses among
the read keys of the format whose kernel (the key's last part) contains one of the names; where the device
stores none, among the stand-in format's keys of those kernels, priced at the format's own weight bytes
(:func:`moe_keys`, :func:`_moe_s`); where neither is stored, :func:`moe_keys`' general rule holds.

SGLang's per-tensor fp8 experts run no FlashInfer CUTLASS kernel, the one vLLM runs for them on Hopper
(docs/validation.md, "Per-tensor fp8 experts under SGLang"). With ``--moe-runner-backend auto`` (the default)
``Fp8MoEMethod.create_moe_runner`` takes DeepGEMM only behind a DeepEP / Mooncake / NIXL all-to-all
(``is_deepgemm_moe_runner_backend_enabled``), AITER on ROCm, and otherwise the Triton runner, which for
per-tensor checkpoints gets one scale per expert and no block shape (``get_triton_quant_info``); a
FlashInfer CUTLASS backend is redirected to Triton there, having no fp8 MoE path
(``python/sglang/srt/layers/quantization/fp8.py``, https://github.com/sgl-project/sglang at 00563d368df9).
ModelOpt FP8 checkpoints build the Triton runner unconditionally (``ModelOptFp8MoEMethod.create_moe_runner``,
``per_channel_quant=False``, ``.../quantization/modelopt_quant.py`` at faeb96856c44). That runner is the
Triton fused MoE kernel adapted from vLLM's (``fused_moe_kernel``), which the public tables time as vLLM's
``..._triton_tritonexperts`` with per-tensor scales only on L40S and RTX PRO 6000; on Hopper they time it with
128 x 128 block scales, the stand-in. The scale granularity leaves its time unchanged: on L40S, same shapes,
per-tensor over block is 1.01 median (p10 0.89, p90 1.09, 10,341 row pairs). On SM100 SGLang's server
arguments switch ``auto`` to ``flashinfer_trtllm`` for fp8 DeepSeek-V3, Qwen3-MoE and Llama-4 models without
an all-to-all backend (``ServerArgs._handle_model_specific_adjustments``,
``python/sglang/srt/server_args.py``), and ``Fp8MoEMethod.apply`` then runs FlashInfer's trtllm-gen fp8
MoE with per-tensor scales and routing in the kernel, the ``..._flashinfer_trtllm_trtllmfp8expertsmonolithic``
kernel of vLLM's B200 table (other architectures keep Triton there, which no Blackwell table times). The
tuned-configuration lookup (:func:`costmodel.kernels.moe_configs.tuned_config`) follows the stand-in key:
SGLang's own folder of Triton configs is not listed. The runner choice is the same for block-fp8 experts
(``get_triton_quant_info`` then passes the block scales and ``weight_block_size``), so on Hopper SGLang's
block-fp8 step reads vLLM's Triton key and not its FlashInfer CUTLASS one; on SM100 the trtllm-gen
block-scale kernels, the only block-fp8 kernels vLLM's B200 table times, as before.

Scope: only fp8 and block-fp8 experts are narrowed; SGLang's bf16, nvfp4 and mxfp4 experts still take the
fastest of vLLM's keys (:func:`moe_keys`' general rule). The narrowing does not read the model: on SM100
every SGLang fp8 model takes the trtllm-gen kernel, although SGLang switches ``auto`` to it only for the
architectures ``_handle_model_specific_adjustments`` lists (DeepSeek-V3, Qwen3-MoE / Qwen3-Next, Llama-4,
Nemotron-H and a few others); an fp8 MoE model outside that list runs Triton there, which no Blackwell
table times, so its SM100 SGLang estimate is the trtllm-gen kernel's, an approximation."""
STEP_ROUTING = "uniform"
"""How a step's tokens pick their experts (:func:`costmodel.kernels.moe.routing_load`): each token draws its
top-k independently of the others, so T tokens touch E (1 - (1 - k / E)^T) of E experts on average
(occupancy, Feller 1968, vol. 1, ch. IV), the fraction :func:`costmodel.ops.forward_ops` reads the
experts' weights by, not the min(E, T k) of a round-robin ("balanced") split, the public tables' worst
case. gpt-oss-120b (128 experts, top-4) at 32 decodes: 81 experts' weights stream, not all 128; with the
balanced split the B200 vLLM serving rows' TPOT at 32 clients (tp 1-8) was 18-74 % over (median 50 %),
within 9 % at 4 clients."""
GRAPH_LAUNCHES = {
    "gemm": {"launch_s": 1.0},
    "context_attention": {"launch_s": 2.0},
    "generation_attention": {"launch_s": 2.0, "combine_s": 1.0, "query_copy_s": 1.0},
    "mla": {"launch_s": 2.0, "module_kernel_s": 1.0, "host_floor_s": 0.0},
}
"""Family -> fixed-cost parameter -> the GPU kernel launches it stands for. Where a public table's rows were
timed one eager call at a time, a fitted fixed cost includes the host's dispatch of that call (Python,
quantization helpers, JIT lookups: up to ~200 us for some fp8-block GEMM paths). A serving step does not pay
it per kernel: decode runs as a CUDA graph replay, which removes per-kernel CPU launch overheads
(https://pytorch.org/blog/accelerating-pytorch-with-cuda-graphs/), and in eager prefill the host launches
ahead of long kernels. So each fixed cost is capped at that many launches (:func:`launch_s`; the attention
kernels also write the cache; decode's split-K reduction is one more kernel, as is FlashAttention-2's query
copy; fp8 / fp4 GEMMs first quantize their activations, one more launch, and so does TensorRT-LLM's
measured fp8 absorbed bmm, three kernels in one call; the MLA tables' eager host floor,
``host_floor_s``, is no GPU launch at all).
What the host adds per step is the closed-loop model's ``step_overhead_s``.

(Which tables are eager is per collector and version: aiconfigurator's shared helper captures a CUDA graph by
default, and where capture may fail, ``allow_graph_fail=True``, a row can be eager-timed without saying so.)
The fused MoE (family ``moe``) keeps its fitted fixed cost: aiconfigurator's MoE collectors (vLLM's
``collector/vllm/collect_moe.py`` and TensorRT-LLM's ``collector/trtllm/collect_moe.py``,
https://github.com/ai-dynamo/aiconfigurator) time each row through ``collector/helper.py``'s
``benchmark_with_power``, which captures the call in a CUDA graph and times graph replays, so the tables' MoE
fixed cost is already the GPU's: routing, permutation, the two grouped GEMMs and the finalize kernel, as a
decode step's graph replays them (16-50 us per layer on B200, where four launches would allow 8 us). Per
collector (docs/serving.md, "Which MoE tables were timed eagerly"): vLLM 0.24.0's production-path collector
(the ``vllm_<method>_<backend>_<experts>`` kernel sources) passes no ``allow_graph_fail``, so a failed capture
raises and leaves no row: every vLLM MoE row is a graph replay. TensorRT-LLM 1.3.0rc20's passes
``allow_graph_fail=True``, but the ops it times hold no per-call host synchronisation (the trtllm-gen MXFP4
runners; ``TritonFusedMoE`` turns its swiglu tensors into floats once, at construction), so they capture too.
The expert-parallel path's extra (``moe.Params.expert_map_s``) is the same GPU time and is kept in full too
(it was capped at one launch on an eager premise the collector's code does not bear out)."""
DEDUPE_MAX_ELEMENTS = 200_000
"""Largest workload array :func:`_on_unique` sorts to find its distinct shapes [-]."""
ATTENTION_ACT_BYTES = 2.0
"""Bytes per Q / O element in the attention kernels: they compute in bf16 (the parameter keys' compute
dtype) whatever the GEMMs' activation format [bytes]."""
WIDE_GROUP = 32
"""Query heads per KV head above which decode runs the wide-group kernel class (as the public tables key
it: ``validation/public/families/generation_attention.py``)."""


def launch_s(hardware: HardwareProfile, efficiency: Efficiency | None = None) -> float:
    """One kernel launch on ``hardware`` [s]: the calibrated fixed cost of its plain bf16 GEMM (the cheapest
    call the public tables time, 2-3 us on H100 / B200) where it has one, else the profile's
    ``kernel_overhead_s`` (an assumption, 5 us by default)."""
    from costmodel.kernels import gemm, params_for
    from costmodel.memo import remember

    eff = efficiency or hardware.efficiency
    calibration = hardware.kernel_calibration
    if calibration is None or "bf16" not in calibration.params.get("gemm", {}):
        return eff.kernel_overhead_s
    # the parameter lookup costs more than a small pass's kernels: kept per device
    return remember(hardware, (launch_s,), lambda: float(params_for(hardware, gemm, "bf16").launch_s))


def uses_kernels(hardware: HardwareProfile, efficiency: Efficiency) -> bool:
    """Whether ``efficiency.time_model`` resolves to the kernel models on ``hardware``: 'kernels', or 'auto'
    on a device with a kernel calibration and the SM count the kernel models spread their work over
    (``datasheet.compute_units``; 'kernels' without it is an error naming the field)."""
    model = efficiency.time_model
    auto = hardware.kernel_calibration is not None and hardware.datasheet.compute_units is not None
    return model == "kernels" or (model == "auto" and auto)


def time_model_note(hardware: HardwareProfile, efficiency: Efficiency | None = None) -> str:
    """One line saying how a step on ``hardware`` is timed, for reports: by the kernel models with the
    device's fitted parameters (or those it takes from the device named by its overlay's
    ``transferred_from``), or by the roofline with the profile's assumed, uncalibrated efficiencies."""
    eff = efficiency or hardware.efficiency
    if not uses_kernels(hardware, eff) or hardware.kernel_calibration is None:
        return "Roofline with the profile's assumed (uncalibrated) efficiencies: see the README's validation."
    donor = hardware.kernel_calibration.record.transferred_from
    fitted = (
        f"{donor}'s fitted parameters ({hardware.name} has no measurements of its own)"
        if donor
        else f"{hardware.name}'s fitted parameters"
    )
    return f"Kernel models with {fitted}; the rest by the roofline: see the README's validation."


def op_times(
    ops: Sequence[Op],
    hardware: HardwareProfile,
    *,
    weight_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    efficiency: Efficiency | None = None,
    link: Link = "intra",
    scale_up_domain: int | None = None,
    expert_dtype: str | None = None,
    expert_activation_dtype: str | None = None,
) -> OpTimes:
    """Time of each operator on ``hardware`` from the kernel models (see the module docstring).

    Parameters
    ----------
    ops : from :func:`costmodel.ops.forward_ops`.
    hardware : HardwareProfile
    weight_dtype, activation_dtype : the pass's formats (they choose the GEMM and MoE parameters).
    expert_dtype, expert_activation_dtype : the routed experts' formats where they differ (None: as the
        pass's); they choose the MoE kernel (:data:`MOE_FORMATS`).
    efficiency : replaces ``hardware.efficiency`` for the roofline operators; its ``kernel_engine`` picks
        the engine's kernel parameters.
    link : the link the collectives use; ``"inter"`` keeps the roofline's ring for them.
    scale_up_domain : devices the intra-node link joins; when given, a collective whose devices
        (``Op.span``, else its group) fit in it uses the intra-node collective model, one spread beyond
        keeps the roofline's ring on the inter-node network (as :func:`costmodel.roofline.op_times`).
    """
    eff = efficiency or hardware.efficiency
    host = eff.execution_mode == "eager" or eff.step_overhead_s > 0  # applied last, to every operator
    device = eff.model_copy(update={"execution_mode": "graphs", "step_overhead_s": 0.0}) if host else eff
    roof = roofline_op_times(
        ops,
        hardware,
        activation_dtype=activation_dtype,
        efficiency=device,
        link=link,
        scale_up_domain=scale_up_domain,
    )
    overhead = launch_s(hardware, eff)
    chooser = _Keys(
        hardware,
        ENGINE_PREFIX[eff.kernel_engine],
        overhead,
        eff.moe_backend,
        all_reduce_nccl_from_bytes(hardware, eff),
        eff.kernel_engine,
    )
    compute, memory, comm = list(roof.compute_s), list(roof.memory_s), list(roof.communication_s)
    kernel_s: dict[int, FloatArray] = _gemms_s(hardware, chooser, ops, weight_dtype, activation_dtype)
    fused: dict[str, list[int]] = {}
    names = [op.name for op in ops]
    # one residual add + RMSNorm kernel as the pass prices its norms (the roofline, one launch), for the
    # fused all-reduces that run it apart
    norm = names.index("norm") if "norm" in names else -1
    norm_s = np.maximum(compute[norm], memory[norm]) + overhead if norm >= 0 else np.zeros(())
    for i, op in enumerate(ops):
        shape = op.kernel
        t = None
        if isinstance(shape, FusedInto):
            fused.setdefault(shape.op, []).append(i)
        elif isinstance(shape, CollectiveShape):
            # inside one node the collective model; across nodes its hierarchical form (NCCL inside each
            # node, every GPU's own NIC between them), else the roofline's ring with its launch as compute
            inside = link == "intra"
            if scale_up_domain is not None:
                inside = (op.span or op.group) <= scale_up_domain
            if inside:
                comm[i] = chooser.remember(_collective_s, shape)
            elif scale_up_domain is not None and shape.op in HIERARCHICAL_OPS:
                nodes, per_node = node_split(shape.group, op.span or op.group, scale_up_domain)
                local = dataclasses.replace(shape, group=per_node)
                comm[i] = multi_node_s(
                    hardware,
                    _collective_s(hardware, chooser, local, nccl=True) if per_node > 1 else 0.0,
                    message_bytes=shape.message_bytes,
                    nodes=nodes,
                    gpus_per_node=per_node,
                    op=shape.op,
                    interconnect_fraction=device.interconnect_fraction,
                )
            else:
                compute[i] = compute[i] + overhead
            if shape.fused_norm:  # where no fused call takes the message (NCCL across nodes: none does)
                apart = chooser.remember(_norm_apart, shape) if inside else True
                compute[i] = compute[i] + np.where(apart, norm_s, 0.0)
        elif isinstance(shape, AttentionShape):
            t = chooser.remember(_attention_s, shape)
        elif isinstance(shape, MlaUpShape):
            stored, inputs = op.weight_dtype or weight_dtype, op.compute_dtype or activation_dtype
            t = _mla_up_s(hardware, chooser, shape, stored, inputs)
        elif isinstance(shape, MoEShape):
            t = chooser.remember(
                _moe_s, shape, expert_dtype or weight_dtype, expert_activation_dtype or activation_dtype
            )
        if t is not None:
            kernel_s[i] = t
    # a fused kernel's time is shared among its operators in proportion to their roofline times, so the
    # per-operator table stays readable; the block's total is the kernel model's
    for owner, members in fused.items():
        head = names.index(owner) if owner in names else -1
        if head not in kernel_s:
            continue  # the owner kept the roofline: so do its members
        group = [head, *members]
        shares = [roof.time_s(j) for j in group]
        total = sum(shares)
        block = kernel_s[head]
        for j, share in zip(group, shares, strict=True):
            kernel_s[j] = np.asarray(
                np.where(total > 0, block * share / np.where(total > 0, total, 1.0), 0.0)
            )
    scaled: dict[tuple[int, ...], list[int]] = {}  # kernel-model operators by the shape of their terms
    for i, op in enumerate(ops):
        if op.kind in COLLECTIVES:
            continue
        if i not in kernel_s:  # roofline operator: its launch overhead goes into its own terms
            compute[i], memory[i] = compute[i] + overhead, memory[i] + overhead
            continue
        terms = np.broadcast_shapes(np.shape(kernel_s[i]), np.shape(compute[i]), np.shape(memory[i]))
        scaled.setdefault(terms, []).append(i)
    for terms, members in scaled.items():
        # keep the roofline's split between compute and memory, scaled to the kernel model's time: the
        # operators of one shape stacked, one elementwise pass for them all
        t, c, m = (np.empty((len(members), *terms)) for _ in range(3))
        for row, i in enumerate(members):
            t[row], c[row], m[row] = kernel_s[i], compute[i], memory[i]  # broadcast on assignment
        top = np.maximum(c, m)
        scale = np.where(top > 0, t / np.where(top > 0, top, 1.0), 0.0)
        kc, km = np.where(top > 0, c * scale, t), m * scale
        unmodelled = np.isnan(t)  # entries the kernel model leaves to the roofline (_mla_up_s)
        if unmodelled.any():
            kc, km = np.where(unmodelled, c + overhead, kc), np.where(unmodelled, m + overhead, km)
        for row, i in enumerate(members):
            compute[i], memory[i] = kc[row, ...], km[row, ...]  # arrays, 0-d ones included
    dispatching = eff.execution_mode == "eager" or hardware.device_kind == "cpu"
    for i, op in enumerate(ops):  # the eager host's dispatch and the pass's fixed cost (costmodel.execution)
        if host and op.kind not in COLLECTIVES:
            dispatch, step = host_s(op, eff)
            if not (dispatching or step):
                continue  # a GPU in graphs mode: no dispatch, and this operator carries no fixed cost
            c, m = host_terms(compute[i], memory[i], dispatch, same_core=hardware.device_kind == "cpu")
            compute[i], memory[i] = c + step, m + step
    return dataclasses.replace(
        roof, compute_s=tuple(compute), memory_s=tuple(memory), communication_s=tuple(comm), overhead_s=0.0
    )


def attention_s(
    hardware: HardwareProfile, shape: AttentionShape, *, efficiency: Efficiency | None = None
) -> FloatArray:
    """Time of one attention operator of this shape [s], as :func:`op_times` times it (the decode-step sum
    of :func:`costmodel.estimate.estimate` evaluates only attention at many contexts)."""
    eff = efficiency or hardware.efficiency
    return _attention_s(
        hardware,
        _Keys(
            hardware,
            ENGINE_PREFIX[eff.kernel_engine],
            launch_s(hardware, eff),
            eff.moe_backend,
            kernel_engine=eff.kernel_engine,
        ),
        shape,
    )


# ----------------------------------------------------------------------------------------------------
# Parameter keys
# ----------------------------------------------------------------------------------------------------


class _Keys:
    """Chooses and caches each family's parameters for one device and engine (see the module docstring)."""

    def __init__(
        self,
        hardware: HardwareProfile,
        engine: str,
        launch_s: float,
        moe_backend: str | None = None,
        nccl_from_bytes: float | None = None,
        kernel_engine: str | None = None,
    ) -> None:
        self.hardware = hardware
        self.engine = engine
        self.launch_s = launch_s
        self.moe_backend = moe_backend
        # the engine that runs the step (``Efficiency.kernel_engine``) where it reads another's keys:
        # :data:`ENGINE_MOE_KERNELS` narrows the MoE kernels it chooses among; None: ``engine`` itself
        self.kernel_engine = kernel_engine or engine
        # where the engine's own all-reduce hands over to NCCL when it is not its stored key's rule
        # (SGLang's custom all-reduce buffer, 8 MiB on CUDA, 16 MiB on ROCm:
        # :func:`all_reduce_nccl_from_bytes`); None: the key's rule
        self.nccl_from_bytes = nccl_from_bytes

    def stored(self, family: ModuleType) -> list[str]:
        from costmodel.kernels import family_name

        calibration = self.hardware.kernel_calibration
        if calibration is None:
            return []
        return sorted(calibration.params.get(family_name(family), {}))

    def pick(self, family: ModuleType, suffixes: Sequence[str], default: str) -> str:
        """The sorted-first stored key of this engine ending in the first suffix that has one, then of
        any engine; else ``default``."""
        keys = self.stored(family)
        for suffix in suffixes:
            mine = [k for k in keys if k.startswith(self.engine + ".") and k.endswith(suffix)]
            anyone = [k for k in keys if k.endswith(suffix)]
            if mine or anyone:
                return (mine or anyone)[0]
        return default

    def remember(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(self.hardware, self, *args)``, computed once per distinct device, engine, launch cost,
        ``fn`` and argument values (:func:`costmodel.memo.remember`): a planner's passes repeat the same
        kernels on a device many times."""
        from costmodel.memo import remember

        engine = (self.engine, self.kernel_engine, self.moe_backend, self.nccl_from_bytes)
        key = (*engine, self.launch_s, fn, *args)
        return remember(self.hardware, key, lambda: fn(self.hardware, self, *args))

    def gemm_key(self, key: str) -> str:
        """The GEMM parameter key this engine's step reads for the format key ``key``: its own kernels'
        pool where :data:`ENGINE_GEMM_FORMATS` names the format and the device stores that pool, else
        ``key``."""
        from costmodel.kernels import gemm

        own = f"{key}:{self.engine}"
        if key in ENGINE_GEMM_FORMATS.get(self.engine, ()) and own in self.stored(gemm):
            return own
        return key

    def params(self, family: ModuleType, key: str) -> Any:
        # kept across calls: a planner times thousands of passes on a handful of devices
        index = (id(self.hardware), family.__name__, key, self.launch_s)
        cached = _PARAMS.get(index)
        if cached is None or cached[0] is not self.hardware:
            if len(_PARAMS) > 4096:
                _PARAMS.clear()
            cached = (self.hardware, step_params(self.hardware, family, key, launch_s=self.launch_s))
            _PARAMS[index] = cached
        return cached[1]


_PARAMS: dict[tuple[int, str, str, float], tuple[HardwareProfile, Any]] = {}


def step_params(hardware: HardwareProfile, family: ModuleType, key: str, *, launch_s: float) -> Any:
    """The parameters a serving step times ``family`` with: :func:`costmodel.kernels.params_for`, with each
    fixed cost capped at its launches of ``launch_s`` each (:data:`GRAPH_LAUNCHES`), no GEMM host floor
    (``gemm.Params.host_floor_s``: the graph replays without the eager dispatch) and the L2 reuse of
    repeated benchmark calls switched off (each layer streams its own data from HBM)."""
    from costmodel.kernels import family_name, params_for

    params = params_for(hardware, family, key)
    name = family_name(family)
    caps = dict(GRAPH_LAUNCHES.get(name, {}))
    if name == "gemm" and key.split(":", 1)[0] in ("fp8", "fp8_block", "nvfp4"):
        caps["launch_s"] = 2.0  # the activation-quantization kernel before the GEMM
    if name == "mla" and "fp8_block_scaling_bmm" in key:
        # TensorRT-LLM's fp8_block_scaling_bmm_out on SM 89 / 90, timed as one call: the input's 1 x 128
        # quantization, the fp8 block-scaled bmm and out.copy_ (memory.mla_absorb_format), three launches
        caps["launch_s"] = 3.0
    params = dataclasses.replace(
        params, **{n: min(getattr(params, n), c * launch_s) for n, c in caps.items()}
    )
    if name == "gemm":  # a CUDA-graph replay has no per-call host dispatch for the GEMM to hide behind
        params = dataclasses.replace(params, host_floor_s=0.0)
    if hasattr(params, "cta_overlap_fraction"):
        # the serving step prices decode attention as a difference of passes, S(b, 1, c) - S(b, 1, 0),
        # which stays non-decreasing in the batch only for the additive (unhidden) fixed time
        params = dataclasses.replace(params, cta_overlap_fraction=0.0)
    if hasattr(params, "cache_bytes"):
        params = dataclasses.replace(params, cache_bytes=0.0)
    elif hasattr(params, "cache_bandwidth_ratio"):
        params = dataclasses.replace(params, cache_bandwidth_ratio=1.0)
    return params


# ----------------------------------------------------------------------------------------------------
# Families
# ----------------------------------------------------------------------------------------------------


def _gemm_key(
    hardware: HardwareProfile, shape: GemmShape, weight_dtype: str, activation_dtype: str
) -> str | None:
    """The GEMM parameter key of a matmul: the weight format's, where its inputs are in that format's
    compute dtype (fp8 x fp8, NVFP4 x NVFP4 at the fp4 peak) and the device has its peak; None (the
    roofline) for weight-only use (bf16 inputs) and mixed pairs the tables do not time."""
    from costmodel.dtypes import matmul_compute_dtype

    if not shape.quantizable:
        key = activation_dtype if activation_dtype in ("bf16", "fp16") else "bf16"
    else:
        key = GEMM_FORMATS.get(weight_dtype, "")
    compute = {"fp8_block": "fp8", "nvfp4": "fp4"}.get(key, key)
    if shape.quantizable and compute != matmul_compute_dtype(activation_dtype):
        return None
    return key if key and compute in hardware.compute_dtypes else None


def _gemms_s(
    hardware: HardwareProfile, keys: _Keys, ops: Sequence[Op], weight_dtype: str, activation_dtype: str
) -> dict[int, FloatArray]:
    """Every GEMM operator's time, one :func:`costmodel.kernels.gemm.time_s` call per parameter key (the
    operators' token counts side by side), by operator index; operators that keep the roofline are absent."""
    groups: dict[str, list[int]] = {}
    for i, op in enumerate(ops):
        if isinstance(op.kernel, GemmShape) and not op.sparse:
            key = _gemm_key(
                hardware, op.kernel, op.weight_dtype or weight_dtype, op.compute_dtype or activation_dtype
            )
            if key is not None:
                groups.setdefault(keys.gemm_key(key), []).append(i)
    out: dict[int, FloatArray] = {}
    for key, members in groups.items():
        shapes = [ops[i].kernel for i in members]
        ms = [np.asarray(s.m, dtype=np.float64) for s in shapes if isinstance(s, GemmShape)]
        which = np.concatenate([np.full(m.size, j, dtype=np.float64) for j, m in enumerate(ms)])
        n_of = np.array([s.n for s in shapes if isinstance(s, GemmShape)])
        k_of = np.array([s.k for s in shapes if isinstance(s, GemmShape)])
        flat = keys.remember(_gemm_group_s, key, np.concatenate([m.ravel() for m in ms]), which, n_of, k_of)
        start = 0
        for i, m in zip(members, ms, strict=True):
            out[i] = np.asarray(np.where(m > 0, flat[start : start + m.size].reshape(m.shape), 0.0))
            start += m.size
    return out


def _gemm_group_s(
    hardware: HardwareProfile,
    keys: _Keys,
    key: str,
    m: FloatArray,
    which: FloatArray,
    n_of: FloatArray,
    k_of: FloatArray,
) -> FloatArray:
    """GEMM times of ``m`` rows through the ``which``-th of the (``n_of``, ``k_of``) weights [s]."""
    from costmodel.kernels import gemm

    params = keys.params(gemm, key)
    return _on_unique(
        lambda mm, w: gemm.time_s(
            hardware, params, m=np.maximum(mm, 1.0), n=n_of[w.astype(np.int64)], k=k_of[w.astype(np.int64)]
        ),
        m,
        which,
    )


def _gemm_s(
    hardware: HardwareProfile, keys: _Keys, shape: GemmShape, weight_dtype: str, activation_dtype: str
) -> FloatArray | None:
    from costmodel.kernels import gemm

    key = _gemm_key(hardware, shape, weight_dtype, activation_dtype)
    if key is None:
        return None
    m = np.asarray(shape.m, dtype=np.float64)
    params = keys.params(gemm, keys.gemm_key(key))
    t = _on_unique(lambda mm: gemm.time_s(hardware, params, m=np.maximum(mm, 1.0), n=shape.n, k=shape.k), m)
    return np.asarray(np.where(m > 0, t, 0.0))


def _on_unique(fn: Any, *arrays: npt.ArrayLike) -> FloatArray:
    """``fn(*arrays)`` evaluated once per distinct combination of the (broadcast) inputs: workload grids
    repeat token counts (a decode batch over many contexts), and the kernel models cost tens of array
    operations per element."""
    columns = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays))
    shape = columns[0].shape
    # below 64 elements the sort costs more than it saves, above DEDUPE_MAX_ELEMENTS the sort itself is slow
    if not 64 <= columns[0].size <= DEDUPE_MAX_ELEMENTS or len(columns) > 2:
        return np.asarray(fn(*columns), dtype=np.float64)
    # one or two columns as one sortable 1-D key (a pair as the real and imaginary parts of a complex)
    key = columns[0].ravel() if len(columns) == 1 else columns[0].ravel() + 1j * columns[1].ravel()
    unique, inverse = np.unique(key, return_inverse=True)
    if 2 * len(unique) > key.size:
        return np.asarray(fn(*columns), dtype=np.float64)
    parts = (unique.real,) if len(columns) == 1 else (unique.real, unique.imag)
    out = np.broadcast_to(np.asarray(fn(*parts), dtype=np.float64), (len(unique),))
    return np.asarray(out[inverse.ravel()].reshape(shape))


def _attention_dtype(shape: AttentionShape) -> str:
    return "bf16+fp8kv" if shape.kv_bytes < 2.0 else "bf16"


def _attention_s(hardware: HardwareProfile, keys: _Keys, shape: AttentionShape) -> FloatArray:
    from costmodel.kernels import context_attention, generation_attention

    if shape.mla is not None:
        return _mla_attention_s(hardware, keys, shape)
    dtype = _attention_dtype(shape)
    B, n, past = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (shape.batch, shape.new_tokens, shape.past_tokens))
    )
    decode = n <= 1.0
    out = np.zeros(B.shape)
    if np.any(decode):
        group = shape.n_heads / max(shape.n_kv_heads, 1e-9)
        cls = "+mha" if group <= 1.0 else ("+wide" if group > WIDE_GROUP else "")
        swa = "+swa" if shape.window > 0 else ""
        suffixes = [f":{dtype}{cls}{swa}", f":{dtype}{cls}", f":{dtype}"]
        gen = keys.params(generation_attention, keys.pick(generation_attention, suffixes, dtype))
        out[decode] = _on_unique(
            lambda b, p: generation_attention.time_s(
                hardware,
                gen,
                batch_size=np.maximum(b, 1.0),
                kv_len=p + 1.0,
                n_heads=shape.n_heads,
                n_kv_heads=shape.n_kv_heads,
                head_dim=shape.head_dim,
                v_head_dim=shape.v_head_dim,
                window=shape.window,
                kv_bytes=shape.kv_bytes,
            ),
            B[decode],
            past[decode],
        )
    if not np.all(decode):
        ctx = keys.params(context_attention, keys.pick(context_attention, [f":{dtype}"], dtype))
        out[~decode] = _on_unique(
            lambda b, s, p: context_attention.time_s(
                hardware,
                ctx,
                batch_size=np.maximum(b, 1.0),
                seq_len=np.maximum(s, 1.0),
                n_heads=shape.n_heads,
                n_kv_heads=shape.n_kv_heads,
                head_dim=shape.head_dim,
                v_head_dim=shape.v_head_dim,
                window=shape.window,
                act_bytes=ATTENTION_ACT_BYTES,
                kv_bytes=shape.kv_bytes,
                past_len=p,
            ),
            B[~decode],
            n[~decode],
            past[~decode],
        )
    return np.asarray(np.where(B * n > 0, out, 0.0))


def _mla_key(keys: _Keys, regime: str, dtype: str) -> str:
    from costmodel.kernels import mla

    return keys.pick(mla, [f":{regime}:{dtype}", f":{regime}_module:{dtype}"], dtype)


def _mla_attention_s(hardware: HardwareProfile, keys: _Keys, shape: AttentionShape) -> FloatArray:
    from costmodel.kernels import context_attention, mla

    dims = shape.mla
    assert dims is not None
    dtype = _attention_dtype(shape)
    B, n, past, q = np.broadcast_arrays(
        *(
            np.asarray(x, dtype=np.float64)
            for x in (shape.batch, shape.new_tokens, shape.past_tokens, shape.decode_tokens)
        )
    )
    decode = n <= q
    out = np.zeros(B.shape)
    mla_dims = {
        "d_model": dims.d_model,
        "q_lora_rank": dims.q_lora_rank,
        "kv_lora_rank": dims.kv_lora_rank,
        "qk_nope_head_dim": dims.qk_nope_head_dim,
        "qk_rope_head_dim": dims.qk_rope_head_dim,
        "v_head_dim": dims.v_head_dim,
    }
    if np.any(decode):
        params = keys.params(mla, _mla_key(keys, "gen", dtype))
        # a verification's n queries a sequence run as n x heads query rows over the one latent cache:
        # FlashMLA plans seqlen_q x heads rows per key head (vLLM FlashMLAMetadataBuilder._build_decode,
        # num_q_tokens_per_head_k); trtllm-gen (B200) picks its kernel from the heads alone and runs each
        # token's head tiles as their own CTAs (mla.low_latency_passes). vLLM's Triton MLA and CUTLASS MLA
        # take one query a sequence and verify in the naive prefill form instead (docs/serving.md, "MLA
        # verification in the absorbed form"); n = 1 is the plain decode
        queries = np.where(decode, n, 1.0)
        t = mla.time_s(
            hardware,
            params,
            op=mla.OP_GENERATION,
            batch_size=np.maximum(B, 1.0),
            seq_len=past + queries,
            n_heads=shape.n_heads,
            query_len=queries,
            kv_bytes=shape.kv_bytes,
            sparse=shape.sparse_mla,
            **mla_dims,
        )
        out = np.where(decode, t, out)
    if not np.all(decode):
        params = keys.params(mla, _mla_key(keys, "ctx", dtype))
        # the naive prefill form: ordinary causal attention over the expanded per-head keys and values
        t = context_attention.time_s(
            hardware,
            mla._context_params(params),
            batch_size=np.maximum(B, 1.0),
            seq_len=np.maximum(n, 1.0),
            n_heads=shape.n_heads,
            n_kv_heads=shape.n_heads,
            head_dim=dims.qk_nope_head_dim + dims.qk_rope_head_dim,
            v_head_dim=dims.v_head_dim,
            act_bytes=ATTENTION_ACT_BYTES,
            kv_bytes=ATTENTION_ACT_BYTES,
            past_len=past,
        )
        out = np.where(decode, out, t)
    return np.asarray(np.where(B * n > 0, out, 0.0))


def _mla_up_s(
    hardware: HardwareProfile, keys: _Keys, shape: MlaUpShape, weight_dtype: str, activation_dtype: str
) -> FloatArray | None:
    from costmodel.kernels import mla

    dims = shape.dims
    tokens, context, n, q = np.broadcast_arrays(
        *(
            np.asarray(x, dtype=np.float64)
            for x in (shape.tokens, shape.context, shape.new_tokens, shape.decode_tokens)
        )
    )
    decode = n <= q
    expand = GemmShape(context, shape.n_heads * (dims.qk_nope_head_dim + dims.v_head_dim), dims.kv_lora_rank)
    naive = _gemm_s(hardware, keys, expand, weight_dtype, activation_dtype)
    if not np.any(decode):
        return naive
    if naive is None:  # a weight format without a GEMM model (weight-only fp8, int4, ...)
        # the absorbed bmm run in the format the engine holds W_UK / W_UV in (absorb_format: vLLM's bf16
        # copies of any quantized kv_b_proj), so a decode keeps a price; a prefill has no model here:
        # NaN marks it for op_times to take the roofline, entry by entry, so an entry's price does not
        # depend on the other entries of the array
        naive = np.full(tokens.shape, np.nan)
    absorbed = np.zeros(tokens.shape)
    fmt = absorb_format(shape, hardware, keys.kernel_engine)
    stored = keys.stored(mla)
    heads = shape.n_heads
    for regime, code, k_in, n_out in (
        ("bmm_pre", mla.OP_BMM_PRE, dims.qk_nope_head_dim, dims.kv_lora_rank),
        ("bmm_post", mla.OP_BMM_POST, dims.kv_lora_rank, dims.v_head_dim),
    ):
        # the engine's own measurement of its whole fp8 call where the tables have one (TensorRT-LLM's
        # fp8_block_scaling_bmm_out on Hopper: quantize, bmm, copy), fitted at fp8 weight bytes
        # (validation/public/families/mla.py); else its bf16 bmm's parameters at the format's bytes and peak,
        # and the passes around the bmm streamed at the bmm's achieved bandwidth, one launch each
        measured = [
            key
            for key in stored
            if fmt.measured_kernel is not None
            and key.startswith(f"{keys.engine}.")
            and fmt.measured_kernel in key
            and key.endswith(f":{regime}:bf16/fp8")
        ]
        extra_s: FloatArray | float = 0.0
        if measured:
            params = keys.params(mla, measured[0])
            weight_bytes = mla.GEMM_WEIGHT_BYTES["fp8"]
        else:
            params = keys.params(mla, keys.pick(mla, [f":{regime}:bf16"], "bf16"))
            weight_bytes = fmt.weight_bytes
            if fmt.bmm_dtype != "bf16" and fmt.bmm_dtype in hardware.compute_dtypes:
                peak = hardware.peak_flop_per_s(fmt.bmm_dtype)
                params = dataclasses.replace(params, gemm_peak_flop_per_s=peak)
            passes = heads * k_in * n_out * fmt.weight_pass_bytes + np.maximum(tokens, 1.0) * heads * (
                k_in * fmt.quantize_bytes + n_out * fmt.output_copy_bytes
            )
            extra_s = passes / (params.bandwidth_bytes_per_s * params.bandwidth_fraction) + (
                fmt.extra_kernels * keys.launch_s
            )
        absorbed = (
            absorbed
            + extra_s
            + mla.time_s(
                hardware,
                params,
                op=code,
                batch_size=np.maximum(tokens, 1.0),
                seq_len=1.0,
                n_heads=heads,
                weight_bytes=weight_bytes,
                d_model=dims.d_model,
                q_lora_rank=dims.q_lora_rank,
                kv_lora_rank=dims.kv_lora_rank,
                qk_nope_head_dim=dims.qk_nope_head_dim,
                qk_rope_head_dim=dims.qk_rope_head_dim,
                v_head_dim=dims.v_head_dim,
            )
        )
    return np.asarray(np.where(tokens > 0, np.where(decode, absorbed, naive), 0.0))


def absorb_format(shape: MlaUpShape, hardware: HardwareProfile | None, engine: str) -> MlaAbsorbFormat:
    """How ``engine`` holds and multiplies W_UK / W_UV for this ``kv_up_proj`` (its ``kv_b_dtype``) on
    ``hardware``: :func:`costmodel.memory.mla_absorb_format`, the rule memory counts the copies by, so the
    decode's timed bytes and peak (:func:`_mla_up_s`, :func:`timed_bytes`,
    :func:`costmodel.roofline.op_times`) and the copies a replica holds
    (:func:`costmodel.memory.mla_absorb_copy_bytes`) follow one format. An engine on a device whose vendor
    it does not run on is refused first, naming the engine and the fix (:func:`check_engine_vendor`)."""
    check_engine_vendor(engine, hardware)
    return mla_absorb_format(engine, shape.kv_b_dtype, **device_kind(hardware))


_VLLM_ABSORB = mla_absorb_format("vllm", "bf16")
"""The default of :func:`timed_bytes`: vLLM's 16-bit bmm (on every format: its copies are bf16)."""
MLA_BMM_OUTPUT_BYTES = 2.0
"""Bytes per element of an absorbed bmm's output [bytes]: bf16 in every engine (``bmm_fp8(...,
torch.bfloat16)`` in SGLang, TensorRT-LLM's bf16 ``out``; :func:`costmodel.memory.mla_absorb_format`)."""


def timed_bytes(op: Op, absorb: MlaAbsorbFormat | None = None) -> FloatArray:
    """Bytes per layer on one GPU that ``op`` moves in the form the kernel models time it [bytes]:
    ``op.bytes``, except in an MLA decode (one new token per sequence, or the 1 + k of a speculative
    verification: ``new_tokens <= decode_tokens``), which the operators count in the naive expansion
    (every cached token's per-head keys and values rebuilt and read) while the kernel models time the
    engines' absorbed form (DeepSeek-V2 §2.1.2, "absorb W_UK into W_UQ and W_UV into W_O";
    vLLM's MLA decode, vllm/model_executor/layers/attention/mla_attention.py, formerly
    vllm/v1/attention/backends/mla/common.py; :func:`costmodel.memory.mla_absorb_format` cites a commit):

    - ``kv_up_proj``: two per-head bmm over the new tokens, reading W_UK / W_UV (heads x kv_lora_rank x
      (nope + v)) in the format the engine holds them in (``absorb``, :func:`absorb_format`; None: 16 bits,
      vLLM's) and the query / output activations (inputs in the bmm's format, bf16 outputs), with the
      passes around an fp8 bmm (the inputs' quantization, TensorRT-LLM's output copy, SGLang-on-ROCm's
      per-call weight cast), not the expansion;
    - the attention: MQA over the cached latent (kv_lora_rank + rope elements a token, read once per
      sequence for all heads and queries), the absorbed queries (kv_lora_rank + rope per head and new
      token) in and the latent outputs (kv_lora_rank per head and new token) out, and the new tokens'
      latents written to the cache.

    Decode-time utilisations (MBU) divide these bytes, so they stay within what the timed kernels move."""
    shape = op.kernel
    if isinstance(shape, MlaUpShape):
        d = shape.dims
        tokens, n, q = np.broadcast_arrays(
            *(np.asarray(x, dtype=np.float64) for x in (shape.tokens, shape.new_tokens, shape.decode_tokens))
        )
        f = absorb or _VLLM_ABSORB
        weights = (
            shape.n_heads
            * d.kv_lora_rank
            * (d.qk_nope_head_dim + d.v_head_dim)
            * (f.weight_bytes + f.weight_pass_bytes)
        )
        # bmm_pre: q_nope in, its latent out; bmm_post: the latent output in, v out
        inputs, outputs = d.qk_nope_head_dim + d.kv_lora_rank, d.kv_lora_rank + d.v_head_dim
        acts = (
            tokens
            * shape.n_heads
            * (
                inputs * (f.input_bytes + f.quantize_bytes)
                + outputs * (MLA_BMM_OUTPUT_BYTES + f.output_copy_bytes)
            )
        )
        absorbed = np.where(tokens > 0, weights + acts, 0.0)
        return np.asarray(np.where(n <= q, absorbed, op.bytes))
    if isinstance(shape, AttentionShape) and shape.mla is not None:
        d = shape.mla
        B, n, past, q = np.broadcast_arrays(
            *(
                np.asarray(x, dtype=np.float64)
                for x in (shape.batch, shape.new_tokens, shape.past_tokens, shape.decode_tokens)
            )
        )
        latent = d.kv_lora_rank + d.qk_rope_head_dim
        Bn = B * n  # the queries: one a sequence in a decode, 1 + k in a verification
        reads = B * (past + n) * latent * shape.kv_bytes + Bn * shape.n_heads * latent * shape.act_bytes
        writes = Bn * shape.n_heads * d.kv_lora_rank * shape.act_bytes + Bn * latent * shape.kv_bytes
        return np.asarray(np.where(n <= q, np.where(B > 0, reads + writes, 0.0), op.bytes))
    return op.bytes


def op_timed_bytes(op: Op, hardware: HardwareProfile | None = None, engine: str = "vllm") -> FloatArray:
    """:func:`timed_bytes` of ``op`` as ``engine`` runs it on ``hardware`` (an MLA decode's ``kv_up_proj``
    in the format :func:`absorb_format` gives; every other operator as :func:`timed_bytes` counts it)."""
    shape = op.kernel
    return timed_bytes(op, absorb_format(shape, hardware, engine) if isinstance(shape, MlaUpShape) else None)


def absorbed(op: Op) -> npt.NDArray[np.bool_] | None:
    """Which entries of an MLA operator (``kv_up_proj`` or the MLA attention) run in the absorbed form
    [-]: a decode (one new token per sequence) or a speculative verification (at most the 1 + k tokens of
    ``decode_tokens``), the rule of :func:`_mla_up_s`, :func:`_mla_attention_s` and :func:`timed_bytes`;
    None for any other operator."""
    shape = op.kernel
    if isinstance(shape, MlaUpShape) or (isinstance(shape, AttentionShape) and shape.mla is not None):
        n, q = np.broadcast_arrays(
            *(np.asarray(x, dtype=np.float64) for x in (shape.new_tokens, shape.decode_tokens))
        )
        return np.asarray(n <= q)
    return None


def timed_flop(op: Op) -> FloatArray:
    """FLOPs per layer on one GPU of ``op`` in the form it is timed [FLOP]: ``op.flop``, except in an
    MLA decode (:func:`absorbed`), which the operators count in the naive expansion (:mod:`costmodel.flops`)
    and the engines run absorbed (DeepSeek-V2 §2.1.2; vLLM's MLA decode,
    vllm/model_executor/layers/attention/mla_attention.py, formerly
    vllm/v1/attention/backends/mla/common.py), the form :func:`timed_bytes` counts the bytes of:

    - ``kv_up_proj``: the two per-head bmm over the new tokens, 2 x tokens x heads x kv_lora_rank x nope
      (the query's no-rope part into the latent, W_UK) plus 2 x tokens x heads x kv_lora_rank x v (the
      latent output out to the value heads, W_UV), instead of the expansion of every attended token;
    - the attention: MQA of every head and query over the cached latent, 2 x batch x new x (past + new) x
      heads x ((kv_lora_rank + rope) for the scores + kv_lora_rank for the weighted sum of latents), new =
      1 in a decode and 1 + k in a verification (the causal mask inside the new block is not subtracted).

    The roofline times these (:func:`costmodel.roofline.op_times`), the per-operator table shows them
    (:meth:`costmodel.estimate.Report.to_frame`); the counted FLOPs (MFU, ``forward_flop``) stay naive."""
    shape, decode = op.kernel, absorbed(op)
    if decode is None:
        return op.flop
    if isinstance(shape, MlaUpShape):
        d = shape.dims
        tokens = np.asarray(shape.tokens, dtype=np.float64)
        flop = 2.0 * tokens * shape.n_heads * d.kv_lora_rank * (d.qk_nope_head_dim + d.v_head_dim)
        return np.asarray(np.where(decode, flop, op.flop))
    assert isinstance(shape, AttentionShape)
    assert shape.mla is not None
    d = shape.mla
    B, n, past = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (shape.batch, shape.new_tokens, shape.past_tokens))
    )
    width = 2.0 * d.kv_lora_rank + d.qk_rope_head_dim  # scores over latent + rope, then latent values
    flop = 2.0 * B * n * (past + n) * shape.n_heads * width
    return np.asarray(np.where(decode, flop, op.flop))


def moe_format(weight_dtype: str, activation_dtype: str) -> str | None:
    """The MoE kernel format (:data:`MOE_FORMATS`) of experts stored in ``weight_dtype`` whose inputs are in
    ``activation_dtype``; None where the tables time no such kernel. A group-size suffix (``int4_sym_g32``)
    keeps its format's kernel (the tables' int4 MoE kernels serve groups of 32 and 128 alike)."""
    from costmodel.dtypes import matmul_compute_dtype

    base = weight_dtype.rsplit("_g", 1)[0] if weight_dtype.rsplit("_g", 1)[-1].isdigit() else weight_dtype
    return MOE_FORMATS.get((base, matmul_compute_dtype(activation_dtype)))


def _moe_s(
    hardware: HardwareProfile, keys: _Keys, shape: MoEShape, weight_dtype: str, activation_dtype: str
) -> FloatArray | None:
    from costmodel.kernels import moe, moe_configs

    name = moe_format(weight_dtype, activation_dtype)
    if name is None:
        return None
    fmt = moe.format_of(name)
    if fmt.compute_dtype not in hardware.compute_dtypes:
        return None

    def params(key: str) -> moe.Params:
        # a stand-in format's kernel (:data:`ENGINE_MOE_KERNELS`) streams this format's weight bytes
        fitted: moe.Params = keys.params(moe, key)
        if moe.format_of(key) is fmt:
            return fitted
        return dataclasses.replace(fitted, weight_bits=fmt.weight_bits)

    T = np.asarray(shape.tokens, dtype=np.float64)
    if keys.moe_backend == "MARLIN":
        if keys.kernel_engine != "vllm":  # an Efficiency update that skipped its validator
            raise CostmodelError(
                "moe_backend 'MARLIN' is vLLM's Marlin MXFP4 experts: it needs kernel_engine 'vllm', not "
                f"{keys.kernel_engine!r}"
            )
        if name == MARLIN_MXFP4_FORMAT:
            return _marlin_moe_s(hardware, keys, shape, name, params)
        # another format (int4 weight-only): the tables' Marlin kernel of that format (moe_keys), timed
        # at the layer's own shape like any tabled kernel
    t = _on_unique(
        lambda tokens: np.min(
            [
                moe.time_s(
                    hardware,
                    params(key),
                    num_tokens=np.maximum(tokens, 1.0),
                    hidden_size=shape.hidden,
                    inter_size=shape.inter,
                    topk=shape.topk,
                    num_experts=shape.experts,
                    tp_size=shape.tp,
                    ep_size=shape.ep,
                    gated=shape.gated,
                    routing=STEP_ROUTING,
                    tuned_config=moe_configs.tuned_config(
                        hardware, key, shape.experts / shape.ep, shape.inter / shape.tp
                    ),
                )
                for key in moe_keys(keys, name, gated=shape.gated)
            ],
            axis=0,
        ),
        T,
    )
    return np.asarray(np.where(T > 0, t, 0.0))


MARLIN_MXFP4_FORMAT: Final = "w4a16_mxfp4"
"""The MoE format whose Marlin experts (``VLLM_MXFP4_USE_MARLIN=1``) :func:`_marlin_moe_s` composes."""
MARLIN_HIDDEN_ALIGN = 256
"""vLLM pads an MXFP4 layer's hidden size to a multiple of this for its Marlin experts [elements]."""
MARLIN_INTER_ALIGN = 128
"""... and each rank's expert intermediate size to a multiple of this [elements]. Both from
``Mxfp4MoEMethod.create_weights`` (the Marlin kernel needs n % 256 == 0 and k % 128 == 0 in both GEMMs),
https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/quantization/mxfp4.py."""

MARLIN_BLOCK_ROWS: Final = (8.0, 16.0, 32.0, 48.0, 64.0)
"""The M-block sizes vLLM's Marlin experts choose among [rows]: the first ``b`` with ``rows per expert / b <
0.9``, else 64, and each expert's rows padded to whole blocks (``fused_marlin_moe``'s ``block_size_m`` loop
and ``moe_align_block_size``, vllm/model_executor/layers/fused_moe/fused_marlin_moe.py,
https://github.com/vllm-project/vllm)."""

MARLIN_TABLE_SHAPE: Final = {"hidden": 3584.0, "inter": 3072.0, "topk": 16.0, "experts": 896.0}
"""The one expert shape vLLM's H100 table times its Marlin MXFP4 experts at (compressed-tensors, balanced
routing; validation/data/public-gpu/kernels/h100_sxm/moe/vllm/0.24.0)."""
MARLIN_TABLE_COMPUTE_TOKENS: Final = (4096.0, 6144.0, 8192.0, 12288.0, 16384.0)
"""... and its token counts from 4k, where the Marlin key's compute term dominates (the rows that pin its
fitted ``compute_fraction``) [tokens]."""


def marlin_padded_rows(tokens: Any, topk: Any, local_experts: Any, routing: str) -> FloatArray:
    """Rows vLLM's Marlin experts compute over the rows routed to them [-] (>= 1): each local expert's rows
    padded to whole :data:`MARLIN_BLOCK_ROWS` blocks, the block chosen from the mean rows per expert
    ``T k / E``. ``"balanced"`` routing: every expert holds the mean; otherwise (:data:`STEP_ROUTING`,
    ``"uniform"``) each token picks its experts independently, so an expert's rows are Binomial(T, k / E)
    and the ratio is ``b * sum_j P(rows > j b) / mean``. The table's 896 experts at top-16 hold 73 rows at
    4096 tokens and 110 at 6144, both two 64-row blocks: it times them at 14.8 and 15.3 ms (tp 2), where
    8192 tokens (146 rows, three blocks) take 22.7."""
    from scipy import stats

    T = np.atleast_1d(np.asarray(tokens, dtype=np.float64))
    share = np.broadcast_to(np.asarray(topk, dtype=np.float64) / local_experts, T.shape)
    mean = np.maximum(T * share, 1e-30)
    block = np.full_like(mean, MARLIN_BLOCK_ROWS[-1])
    for b in reversed(MARLIN_BLOCK_ROWS[:-1]):
        block = np.where(mean / b < 0.9, b, block)
    if routing == "balanced":
        return np.asarray(np.ceil(mean / block) * block / mean)
    ratio = np.empty_like(mean)
    for n, (t, b, p, mu) in enumerate(zip(T, block, share, mean, strict=True)):
        blocks = np.arange(0.0, np.ceil((mu + 12.0 * np.sqrt(mu) + 12.0) / b) + 1.0)
        ratio[n] = b * float(stats.binom.sf(blocks * b, round(t), min(float(p), 1.0)).sum()) / mu
    return np.asarray(np.maximum(ratio, 1.0))


MARLIN_TABLE_PADDING: Final = float(
    np.exp(
        np.mean(
            np.log(
                marlin_padded_rows(
                    np.array(MARLIN_TABLE_COMPUTE_TOKENS),
                    MARLIN_TABLE_SHAPE["topk"],
                    MARLIN_TABLE_SHAPE["experts"],
                    "balanced",
                )
            )
        )
    )
)
"""The padding the Marlin key's fitted compute fraction carries [-]: :func:`marlin_padded_rows` at its
table's shape, geometric mean over :data:`MARLIN_TABLE_COMPUTE_TOKENS` (1.28)."""


def _marlin_moe_s(
    hardware: HardwareProfile, keys: _Keys, shape: MoEShape, name: str, params: Callable[[str], Any]
) -> FloatArray:
    """One MoE layer run by vLLM's Marlin experts (``VLLM_MXFP4_USE_MARLIN=1`` on SM 90: weights dequantized
    in the GEMM's inner loop, bf16 tensor-core math) where the tables time Marlin at other shapes only [s]:
    one :func:`costmodel.kernels.moe.breakdown` composed term by term, each term from the key whose fitted
    value is a property of the kernel that runs and carries across shapes:

    - from the Marlin key at the padded shape (:data:`MARLIN_HIDDEN_ALIGN`, :data:`MARLIN_INTER_ALIGN`):
      the compute (its fitted ``compute_fraction``, 0.24 on H100, with its tile terms, over its M-block
      padding), the dequantization (a cost per weight element) and the costs per token and per
      token-expert pair (``per_token_s``, ``per_routed_pair_s``, ``per_pair_s``: routing, sorting and
      gathering each pair, the same per pair at any shape; pinned by the table's high-tp and high-ep rows,
      where little else is left), combined by Marlin's own ``overlap_exponent``;
    - from the format's own kernel at the layer's shape (the engine's choice without the backend): the
      memory term (both stream the same 4-bit weights; the Marlin key's is fitted at 896 experts of
      3584 x 3072 and top-16 and does not carry) and the per-call terms (launch, per expert).

    Rows per expert differ: T k / E is 146 at the table's 8192 tokens (896 experts, top-16) and 256 at
    gpt-oss-120b's (128, top-4). Marlin pads each expert's rows to whole M blocks
    (:func:`marlin_padded_rows`), and the fitted compute fraction carries the table's padding
    (:data:`MARLIN_TABLE_PADDING`), so the compute is scaled by the layer's padding over the table's.

    Oracle (tests/test_kernel_times.py): at the Marlin MXFP4 key's own tabled shape, tp 1-8 and >= 4k
    tokens, every row within 15 % of the table (-15 to +5 %). At tp 16 it runs 10-27 % long, as the Marlin
    key's own fitted total does (20-38 % from 6k tokens), so tp 16 is not claimed.

    Marlin is built for the memory-bound regime: a batch over 64 rows runs its 64-row kernel again, so its
    compute rate stays flat beyond a few hundred rows (https://github.com/IST-DASLab/marlin/issues/2;
    https://github.com/vllm-project/vllm/pull/2497: 141 TFLOP/s on A100 from batch 128 to 4000, "if prompt
    is longer ... first token generate will be slow"), and https://github.com/vllm-project/vllm/pull/25488
    finds gpt-oss-120b's Marlin path worse in TTFT than the Triton experts. vLLM's H100 tables time Marlin
    MXFP4 experts only at other models' shapes (``compressedtensors`` keys, passed over for the format's
    own kernel, :data:`MOE_CHECKPOINT_KERNELS_EXCLUDED`; docs/serving.md, h14-oss2, h19-h100long, h19-fix19c).
    Where the tables time no Marlin key for the format, the format's own kernel alone."""
    from costmodel.kernels import moe, moe_configs

    plain = _Keys(hardware, keys.engine, keys.launch_s, None, keys.nccl_from_bytes, keys.kernel_engine)
    marlin = [k for k in moe_keys(keys, name, gated=shape.gated) if "marlin" in k.split(":")[-1]]
    hidden = np.ceil(shape.hidden / MARLIN_HIDDEN_ALIGN) * MARLIN_HIDDEN_ALIGN
    inter = np.ceil(shape.inter / shape.tp / MARLIN_INTER_ALIGN) * MARLIN_INTER_ALIGN * shape.tp

    def terms(key: str, tokens: FloatArray, h: Any, i: Any) -> Any:
        return moe.breakdown(
            hardware,
            params(key),
            num_tokens=np.maximum(tokens, 1.0),
            hidden_size=h,
            inter_size=i,
            topk=shape.topk,
            num_experts=shape.experts,
            tp_size=shape.tp,
            ep_size=shape.ep,
            gated=shape.gated,
            routing=STEP_ROUTING,
            tuned_config=moe_configs.tuned_config(hardware, key, shape.experts / shape.ep, i / shape.tp),
        )

    def per_pair_s(key: str, b: Any, tokens: FloatArray) -> FloatArray:
        p = params(key)
        T = np.maximum(tokens, 1.0)
        return np.asarray(
            p.per_token_s * T + p.per_routed_pair_s * T * shape.topk + p.per_pair_s * b.load.pairs
        )

    def layer_s(tokens: FloatArray) -> FloatArray:
        own_keys = moe_keys(plain, name, gated=shape.gated)
        own = {k: terms(k, tokens, shape.hidden, shape.inter) for k in own_keys}
        if not marlin:
            return np.asarray(np.min([b.total for b in own.values()], axis=0))
        padding = marlin_padded_rows(tokens, shape.topk, shape.experts / shape.ep, STEP_ROUTING)
        composed = []
        for m in marlin:
            mb = terms(m, tokens, hidden, inter)
            for k, b in own.items():
                composed.append(
                    moe.MoEBreakdown(
                        fixed_s=b.fixed_s - per_pair_s(k, b, tokens) + per_pair_s(m, mb, tokens),
                        memory_s=b.memory_s,
                        compute_s=mb.compute_s * padding / MARLIN_TABLE_PADDING,
                        dequant_s=mb.dequant_s,
                        load=mb.load,
                        overlap_exponent=mb.overlap_exponent,
                    ).total
                )
        return np.asarray(np.min(composed, axis=0))

    T = np.asarray(shape.tokens, dtype=np.float64)
    return np.asarray(np.where(T > 0, _on_unique(layer_s, T), 0.0))


def moe_keys(keys: _Keys, fmt: str, *, gated: bool = True) -> list[str]:
    """The MoE kernels an engine chooses among for ``fmt``, each a stored parameter key.

    1. The engine's own ``<fmt>:<engine>:<kernel>`` keys (the non-gated kernels only for non-gated experts,
       and the reverse), and for an engine other than TensorRT-LLM the TensorRT-LLM keys of the trtllm-gen
       kernels FlashInfer ships (:data:`SHARED_TRTLLM_GEN_MOE_KEYS`). The engine runs the fastest of them at
       each token count: its MoE autotuner profiles every runner and tactic per shape and keeps the fastest
       (FlashInfer, run by vLLM and SGLang at warm-up, https://docs.flashinfer.ai/autotuning.html;
       TensorRT-LLM's ``AutoTuner`` and
       ``MoeConfig.backend`` ``AUTO``, https://nvidia.github.io/TensorRT-LLM/1.4.0rc4/llm-api/reference/MoeConfig.html),
       so a step is timed with the engine's fastest kernel, not an average of every engine's.
    2. Else the format's pooled key, where stored.
    3. Else one kernel of the format: the sorted-first of the engine's, then of any engine's; else the bare
       format (its datasheet defaults).

    Where the engine's launch states its MoE backend (``keys.moe_backend``, TensorRT-LLM's
    ``moe_config.backend``), the engine runs that backend's kernels and no other: the engine's own keys of
    that backend (:data:`MOE_BACKEND_KERNELS`), else any engine's keys of the same kernel; only where the
    tables time neither does the rule above apply.

    Where the format has no pooled key (a checkpoint layout: ``mxfp4``) the kernels named in
    :data:`MOE_CHECKPOINT_KERNELS_EXCLUDED` are passed over at every step.

    Before all of these, where the launch states no backend and :data:`ENGINE_MOE_KERNELS` names the kernels
    the step's engine (``keys.kernel_engine``) runs for the format: the read engine's keys of those kernels,
    the format's own first, else the stand-in format's (which :func:`_moe_s` prices at the format's weight
    bytes).
    """
    from costmodel.kernels import moe

    stored = keys.stored(moe)
    narrowed = ENGINE_MOE_KERNELS.get((keys.kernel_engine, fmt))
    if narrowed is not None and keys.moe_backend is None:
        stand_in, kernels = narrowed
        for name in (fmt, stand_in):
            chosen = [
                k
                for k in stored
                if k.startswith(f"{name}:{keys.engine}:")
                and ("nongated" in k) != gated
                and any(n in k.split(":")[-1] for n in kernels)
            ]
            if chosen:
                return chosen
    usable = [
        k
        for k in stored
        if k.startswith(fmt + ":")
        and (
            fmt in stored
            or keys.moe_backend == "MARLIN"
            or not any(x in k for x in MOE_CHECKPOINT_KERNELS_EXCLUDED)
        )
    ]
    engines = [k for k in usable if k.split(":")[1:2] == [keys.engine]]
    own = [k for k in engines if ("nongated" in k) != gated]
    # FlashInfer's trtllm-gen kernels, as TensorRT-LLM's tables time them, beside the engine's own
    if own and keys.engine != "trtllm":
        shared = SHARED_TRTLLM_GEN_MOE_KEYS.get(fmt, ())
        own += [k for k in shared if k in usable and k not in own and ("nongated" in k) != gated]
    if keys.moe_backend is not None:
        names = MOE_BACKEND_KERNELS[keys.moe_backend]
        runs = [k for k in usable if ("nongated" in k) != gated and any(n in k.split(":")[-1] for n in names)]
        if runs:
            return [k for k in runs if k in own] or runs
    if own:
        return own
    if fmt in stored:
        return [fmt]
    return (engines or usable or [fmt])[:1]


def _norm_apart(hardware: HardwareProfile, keys: _Keys, shape: CollectiveShape) -> npt.NDArray[np.bool_]:
    """Where a residual all-reduce marked ``fused_norm`` (:func:`costmodel.ops.fused_norms` removed its
    norm's kernel) runs its residual add and RMSNorm as a kernel of its own after a plain all-reduce:

    - vLLM: beyond the size its ``fuse_allreduce_rms`` pass hands to the fused call
      (:func:`costmodel.kernels.collective.vllm_fused_norm_max_bytes`; everywhere where vLLM lists no size
      for the device, or the device has no fused-call parameters to time it with), the pass leaving the
      all-reduce and the norm as they were;
    - TensorRT-LLM: where its all-reduce hands over to NCCL (past its workspace,
      :func:`costmodel.kernels.collective.runs_on_nccl`; everywhere where its own all-reduce is not
      stored): ``runNCCLAllReduce`` then runs the fusion's operations apart
      (``fallbackRunSubsequentOps`` in ``cpp/tensorrt_llm/thop/allreduceOp.cpp``,
      https://github.com/NVIDIA/TensorRT-LLM/blob/01e2c3612da7adc33cfe208f660d5f6cbbfc0b17/cpp/tensorrt_llm/thop/allreduceOp.cpp);
    - other engines: never (their fused calls are not read here)."""
    from costmodel.kernels import collective

    message = np.asarray(shape.message_bytes, dtype=np.float64)
    stored = keys.stored(collective)
    fused = ALL_REDUCE_KEYS["trtllm"]
    if keys.engine == "vllm":
        timed = fused in stored and ALL_REDUCE_KEYS["vllm"] in stored  # as _collective_s prices the call
        limit = collective.vllm_fused_norm_max_bytes(hardware, shape.group) if timed else 0.0
        return np.asarray(message > limit)
    if keys.engine == "trtllm":
        if fused not in stored:
            return np.ones(message.shape, dtype=bool)
        return collective.runs_on_nccl(hardware, fused, message_bytes=message, num_gpus=shape.group)
    return np.zeros(message.shape, dtype=bool)


def all_reduce_nccl_from_bytes(hardware: HardwareProfile, efficiency: Efficiency) -> float | None:
    """The all-reduce size from which an engine that reads another's all-reduce key hands over to NCCL
    where its own rule differs from that key's [bytes]: SGLang (vLLM's key) leaves its custom kernel for
    NCCL at its buffer size unless its launch enables symmetric memory (``Efficiency.symm_mem_all_reduce``,
    where its calls take vLLM's rule: vLLM first runs symmetric memory up to its published sizes); on
    devices whose GPUs meet over PCIe only the key's own rule holds (it is NCCL's ring there). The buffer
    is :data:`costmodel.kernels.collective.SGLANG_CUSTOM_MAX_BYTES` (8 MiB) on CUDA over NVLink and
    :data:`costmodel.kernels.collective.SGLANG_HIP_CUSTOM_MAX_BYTES` (16 MiB) on ROCm over xGMI; links
    SGLang runs no custom all-reduce on (TPU ICI) keep the key's rule. None: the key's own rule.

    Between 256 KiB and 8 MiB SGLang's calls are timed with vLLM's key as vLLM runs them: on devices where
    vLLM's custom kernel hands over to symmetric memory below 8 MiB (:data:`costmodel.kernels.collective.
    VLLM_CUSTOM_KERNEL_MAX_BYTES`: B200 from 1-2 MiB, H100 on 8 GPUs from 256 KiB), those sizes are
    priced as vLLM's symmetric-memory path, where SGLang keeps running its own two-shot custom kernel up to
    its buffer (docs/serving.md names the same approximation).

    A clear error where ``symm_mem_all_reduce`` is set for an engine other than SGLang (the flag names
    SGLang's launch options; :class:`costmodel.specs.Efficiency` refuses it too, but a ``model_copy``
    update skips that check)."""
    from costmodel.kernels.collective import SGLANG_CUSTOM_MAX_BYTES, SGLANG_HIP_CUSTOM_MAX_BYTES

    if efficiency.symm_mem_all_reduce and efficiency.kernel_engine != "sglang":
        raise CostmodelError(
            f"symm_mem_all_reduce is SGLang's launch option (--enable-symm-mem): it needs kernel_engine "
            f"'sglang', not {efficiency.kernel_engine!r}"
        )
    if efficiency.kernel_engine != "sglang" or efficiency.symm_mem_all_reduce:
        return None
    link = hardware.datasheet.intra_node_link
    if link == "nvlink":
        return float(SGLANG_CUSTOM_MAX_BYTES)
    if link == "xgmi":
        return float(SGLANG_HIP_CUSTOM_MAX_BYTES)
    return None


def _collective_s(
    hardware: HardwareProfile, keys: _Keys, shape: CollectiveShape, *, nccl: bool = False
) -> FloatArray:
    """One collective inside a node: the engine's custom all-reduce where stored (unless ``nccl``), handing
    over to NCCL's where the engine does at its published size limit
    (:func:`costmodel.kernels.collective.runs_on_nccl`, where NCCL's all-reduce is stored); else NCCL's."""
    from costmodel.kernels import collective

    message = np.asarray(shape.message_bytes, dtype=np.float64)

    def timed(key: str) -> FloatArray:
        return collective.time_s(
            hardware,
            keys.params(collective, key),
            message_bytes=message,
            num_gpus=shape.group,
            op=shape.op,
            eager=False,
        )

    stored = keys.stored(collective)
    custom = ALL_REDUCE_KEYS.get(keys.engine, "")
    if shape.op == "all_reduce" and not nccl and custom in stored:

        def engine_s(size: FloatArray) -> FloatArray:
            params = keys.params(collective, custom)
            t = collective.time_s(hardware, params, message_bytes=size, num_gpus=shape.group, eager=False)
            handed = (
                collective.runs_on_nccl(hardware, custom, message_bytes=size, num_gpus=shape.group)
                if keys.nccl_from_bytes is None
                else np.asarray(size >= keys.nccl_from_bytes)
            )
            if "nccl:all_reduce" in stored and np.any(handed):
                nccl_s = collective.time_s(
                    hardware,
                    keys.params(collective, "nccl:all_reduce"),
                    message_bytes=size,
                    num_gpus=shape.group,
                    eager=False,
                )
                t = np.where(handed, nccl_s, t)
            return np.asarray(t)

        t = engine_s(message)
        # a step's all-reduce never takes less time than a smaller one's: where the engine switches to a
        # faster path (B200 vLLM, 8 GPUs: 26 us at 512 KiB, 17 us at 1 MiB) the step keeps the slower
        # path's time up to the size where the faster one catches up, so step times stay non-decreasing in
        # the batch (the serving model's searches rely on it); the kernel evaluation times the path itself
        switches = collective.switch_bytes(hardware, custom, shape.group)
        if keys.nccl_from_bytes is not None:
            switches = sorted({*(v for v in switches if v < keys.nccl_from_bytes), keys.nccl_from_bytes})
        for switch in switches:
            t = np.where(message >= switch, np.maximum(t, engine_s(np.asarray(switch - 1.0))), t)
        fused = ALL_REDUCE_KEYS["trtllm"]
        if shape.fused_norm and keys.engine == "vllm" and fused in stored:
            # vLLM's fuse_allreduce_rms pass (on the residual all-reduces whose norms ops.fused_norms
            # removes): FlashInfer's port of TensorRT-LLM's fused all-reduce up to its size limit, vLLM's
            # own beyond (not faster than the fused call at the limit, as above). vLLM sizes FlashInfer's
            # workspace to that limit, so at tp 2 the fused call runs up to 64 MiB, past TensorRT-LLM's own
            # 16 MB workspace (TRTLLM_WORKSPACE_BYTES), whose larger rows ran NCCL: there the key's kernel
            # model is extrapolated (docs/serving.md, "The fused all-reduce, one rule")
            limit = collective.vllm_fused_norm_max_bytes(hardware, shape.group)
            params = keys.params(collective, fused)

            def fused_s(size: FloatArray) -> FloatArray:
                return collective.time_s(
                    hardware, params, message_bytes=size, num_gpus=shape.group, eager=False
                )

            if limit > 0:
                t = np.where(message <= limit, fused_s(message), np.maximum(t, fused_s(np.asarray(limit))))
    else:
        t = timed(f"nccl:{shape.op}")
    return np.asarray(np.where(message > 0, t, 0.0))
