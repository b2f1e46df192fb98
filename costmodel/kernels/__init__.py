"""Kernel time models: how long one family of GPU kernels takes, vectorised over shapes.

``costmodel.ops`` says *what* runs in a forward pass; the modules here say *how long* one kernel of a
family (GEMM, attention, MLA, MoE, collectives) takes on a device. The plain roofline
(``costmodel.roofline``) is the simplest such model; the family models add the physics it misses (wave
quantization over the SMs, the weight-streaming regime at small M, split-K decode attention, routing
imbalance, collective algorithms chosen by size, launch costs), each with a few named, physically
meaningful parameters.

The contract every family module follows (``costmodel.calibrate`` and ``validation/public`` rely on it):

``Params``
    A frozen dataclass of the family's named parameters, units in the names (``*_fraction``,
    ``*_s``, ``*_bytes``). A handful per (device, family, dtype), never a per-shape table.
``BOUNDS``
    ``{field name: (low, high)}`` for the parameters a fit may move; fields not listed stay at their
    default (datasheet) value.
``default_params(hardware, dtype) -> Params``
    From the datasheet alone: what the model predicts for a device nobody has measured.
``time_s(hardware, params, **shapes) -> FloatArray``
    Kernel time [s] for numpy arrays of shapes that broadcast together. Pure: no I/O, no loops over rows.

``Params`` may carry non-numeric fields that say what the parameters are for (the GEMM model's ``dtype``
key); ``default_params`` sets them, and only numeric fields are stored and fitted.

Parameter keys are the dtype (``"bf16"``, ``"fp8"``, ...), optionally followed by ``":<qualifier>"``
naming an engine and kernel class (``"fp8_block:vllm:DeepGemmFp8BlockScaledMMKernel"``); ``default_params``
receives the whole key and may ignore the qualifier.

Calibrated values are stored per device in its hardware profile (``HardwareProfile.kernel_calibration``:
family -> key -> {parameter: value}, with a record of the data they were fitted on) and found by
:func:`params_for`, which takes the exact key, else the same kernel under the name another version of its
engine gives it (:data:`SAME_KERNEL`), else falls back to the engine's pooled parameters for the format, then
to the dtype alone, then to the same engine's nearest other kernel of the same format and operation, then to
``default_params`` (:func:`fallback_keys`). Fitting itself lives in ``costmodel.calibrate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import numpy as np

from costmodel.errors import CostmodelError
from costmodel.specs import HardwareProfile


def family_name(family: ModuleType) -> str:
    """The key a family's parameters are stored under: its module name (``"gemm"``)."""
    return family.__name__.rsplit(".", 1)[-1]


SAME_KERNEL: tuple[tuple[str, str, str], ...] = (
    # vLLM <= 0.14 (the aiconfigurator collector's name) and vLLM 0.24 for its FlashAttention backend:
    # the 0.1x line runs FlashAttention-3 where the compute capability's major version is 9 and
    # FlashAttention-2 elsewhere (get_flash_attn_version, "3 if (device_capability.major == 9 and
    # is_fa_version_supported(3)) else 2", vllm/attention/utils/fa_utils.py at
    # https://github.com/vllm-project/vllm/blob/4d5ee6c6807136942c22100aa35a97e1390a42c5/vllm/attention/utils/fa_utils.py);
    # later versions pick FlashAttention-4 on major 10 (vllm/v1/attention/backends/fa_utils.py), so the
    # FlashAttention-2 identity is kept to Ampere and Ada (major 8), where both versions run it; 0.24's
    # collector names the version it ran (vllm_flash_attn_fa{version}).
    ("vllm.vllm_flash_attn:", "vllm.vllm_flash_attn_fa3:", "9"),
    ("vllm.vllm_flash_attn:", "vllm.vllm_flash_attn_fa2:", "8"),
    # an unquantized vLLM linear layer: the 0.14 collector's RowParallelLinear without a quantization
    # config, logged as "vllm_default" (compatible_versions 0.11-0.14,
    # https://github.com/ai-dynamo/aiconfigurator/blob/main/collector/vllm/collect_gemm.py), runs
    # UnquantizedLinearMethod -> dispatch_unquantized_gemm -> torch.nn.functional.linear on CUDA
    # (https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/utils.py), the name 0.24's
    # collector logs; bf16 only (the 0.14 name covers every format it ran).
    ("bf16:vllm:vllm_default", "bf16:vllm:torch.nn.functional.linear", ""),
    # vLLM's Triton fused_moe for unquantized experts (costmodel.kernels.moe_configs.VLLM_TRITON_KERNELS):
    # the 0.14 collector calls vllm's fused_experts and logs "vllm_fused_moe"
    # (https://github.com/ai-dynamo/aiconfigurator/blob/main/collector/vllm/collect_moe.py), 0.24's names
    # the method and experts class it ran (UnquantizedFusedMoEMethod, TritonExperts).
    ("bf16:vllm:vllm_fused_moe", "bf16:vllm:vllm_unquantizedfusedmoe_triton_tritonexperts", ""),
)
"""One kernel under two engine versions' names: ``(prefix, prefix, compute capabilities)``. A key that starts
with one prefix names the same kernel as the key with the other prefix in its place, on devices whose CUDA
compute capability's major version is the third field (``"9"``), is not (``"not 9"``, a form no entry uses
today), or on any (``""``).
A fact about software, each entry cited, never a per-shape or per-device choice; :func:`same_kernel_keys`
reads it and :func:`fallback_keys` looks the result up right after the exact key."""


def same_kernel_keys(key: str, capability: str | None = None) -> list[str]:
    """The keys that name ``key``'s kernel under another engine version's name (:data:`SAME_KERNEL`), on a
    device of CUDA compute capability ``capability`` (``"8.0"``; ``None``: unknown, so only the entries that
    hold on any device)."""
    major = None if capability is None else capability.split(".", 1)[0]

    def holds(where: str) -> bool:
        if not where:
            return True
        if major is None:
            return False
        return major != where.removeprefix("not ") if where.startswith("not ") else major == where

    out: list[str] = []
    for a, b, where in SAME_KERNEL:
        if not holds(where):
            continue
        for mine, theirs in ((a, b), (b, a)):
            if key.startswith(mine) and theirs + key[len(mine) :] not in out:
                out.append(theirs + key[len(mine) :])
    return out


SHAPE_FALLBACK_KERNELS: tuple[tuple[str, str], ...] = (
    # vLLM's FlashAttention backend on Hopper runs FlashAttention-3 and upgrades a layer to
    # FlashAttention-4 only where FlashAttention-3 cannot run it: "Some FA3 unsupported SM90 cases can
    # use FA4 when available", head_size > 256 ("FA3 does not support head_size=... on SM90"), or
    # different K and V head sizes with attention sinks (get_flash_attn_version,
    # vllm/v1/attention/backends/fa_utils.py, https://github.com/vllm-project/vllm/blob/main/vllm/v1/attention/backends/fa_utils.py).
    # The H100 tables bear it out: every vllm_flash_attn_fa4 row has head_dim 512, every fa3 row 64-256.
    # On Blackwell the name is another kernel for other shapes: vLLM prefers FlashAttention-4 on major 10
    # (SM100; major >= 10 at commit 7283494) but drops to FlashAttention-2 on major >= 10 for head_size > 128
    # (TMEM capacity; 192 exempted at 7283494 for MLA's 192 / 128 heads; fa_utils.py at 00bd149 and 7283494).
    ("vllm.vllm_flash_attn_fa4:", "9"),
)
"""Kernels an engine runs only for the shapes its default kernel cannot, on devices of one CUDA compute
capability major version: ``(key prefix, major version)``. Fitted there, such a key describes those shapes
only (FlashAttention-4 at head_dim 512 on an H100), so it is no model of the engine's kernel for a device of
another major version, where the same name is the default kernel or not run at all:
``costmodel.calibrate.transferable`` drops these keys when it carries a fit to a device of another (or an
unstated) major version, so that the fallback's sibling step (:func:`fallback_keys`) does not mix them into
every shape's parameters. Within one major version (H200 <- H100) they carry as the exact key. A fact about
software, each entry cited, never a per-shape or per-device choice."""


def shape_fallback_key(key: str, capability: str | None) -> bool:
    """Whether ``key`` names a kernel of :data:`SHAPE_FALLBACK_KERNELS` on a device of CUDA compute
    capability ``capability`` (``"9.0"``; ``None``: unknown, so none)."""
    if capability is None:
        return False
    major = capability.split(".", 1)[0]
    return any(key.startswith(prefix) and major == where for prefix, where in SHAPE_FALLBACK_KERNELS)


def fallback_keys(
    key: str,
    stored: Iterable[str],
    same: Iterable[str] = (),
    phases: Iterable[str] = (),
    library: bool = False,
) -> list[list[str]]:
    """The stored keys ``key`` is looked up as, level by level; the first level with a stored key wins, and
    a level of several keys gives each parameter's median over them (:func:`params_for`).

    1. ``key`` itself.
    1b. ``same``: the keys that name the same kernel under another version of its engine
       (:func:`same_kernel_keys`, which :func:`params_for` passes), those that are stored.
    2. For a ``"<format>:<engine>:<kernel>"`` key, ``"<format>:<engine>"``: that engine's parameters for the
       format, pooled over its kernels (``costmodel.calibrate`` fits them for the families that set
       ``POOL_BY_ENGINE``: GEMM). An engine's fixed costs (host-side dispatch, activation quantization)
       come with it; another engine's differ by multiples.
    3. The dtype part (before the first ``":"``): the parameters pooled over every kernel of that format
       (``costmodel.calibrate`` fits them for the GEMM and MoE keys, ``"<format>:<kernel>"``).
    4. The same engine's other kernels for the same format and operation: stored keys that differ from
       ``key`` in exactly one ``":"``-separated part, that part naming a kernel of the same engine
       (``"<engine>.<kernel>"``, as the attention and MLA keys do; ``"<format>:<engine>:<kernel>"``, as
       the GEMM and MoE keys do, differ in the kernel after an equal engine part): those whose kernel name
       shares the longest prefix with the asked one (``vllm_flash_attn_fa2`` for ``vllm_flash_attn_fa3``).
       A kernel of another engine, or of an engine the key does not name, is no sibling: engines' fixed
       costs (host dispatch, activation quantization) differ by multiples. The sibling's fixed times are
       taken too:
       the same engine launches its kernels the same way (the leave-one-device-out check, docs/validation.md,
       is further off with the datasheet's fixed times and the sibling's fractions alone). ``phases``
       (a family's ``SIBLING_PHASES``): name parts that mark a kernel of another operation within the
       family's table; a kernel whose name holds one is no sibling of a kernel whose name does not, nor
       the reverse (context attention: the engine's decode kernel, which it runs for a one-token prompt).
       ``library`` (a family's ``SIBLING_LIBRARY``): the shared prefix is counted in whole ``"_"``-separated
       name parts, past a first part that repeats the engine's name, and a kernel that shares none is no
       sibling: vLLM's ``vllm_flash_attn_fa3`` (FlashAttention) and ``vllm_flashinfer_trtllmdecode``
       (FlashInfer) share the characters ``vllm_flash`` and no library.

    Nothing found: the datasheet defaults (``default_params``).
    """
    table = set(stored)
    parts = key.split(":")
    markers = tuple(phases)

    def phase(kernel: str) -> tuple[bool, ...]:
        return tuple(marker in kernel for marker in markers)

    siblings: dict[int, list[str]] = {}
    for other in sorted(table):
        theirs = other.split(":")
        if other == key or len(theirs) != len(parts):
            continue
        differ = [i for i, (a, b) in enumerate(zip(parts, theirs, strict=True)) if a != b]
        if len(differ) != 1:
            continue
        i = differ[0]
        if i == 0 and "." in parts[i] and "." in theirs[i]:  # "<engine>.<kernel>"
            engine, kernel = parts[i].split(".", 1)
            their_engine, their_kernel = theirs[i].split(".", 1)
        elif 0 < i == len(parts) - 1 and len(parts) >= 3:  # "<format>:<engine>:<kernel>"
            engine, kernel, their_engine, their_kernel = parts[i - 1], parts[i], parts[i - 1], theirs[i]
        else:
            continue
        if engine == their_engine and phase(kernel) == phase(their_kernel):
            mine, theirs_name = (
                (kernel, their_kernel) if not library else _library_parts(engine, kernel, their_kernel)
            )
            shared = next(
                (j for j, (a, b) in enumerate(zip(mine, theirs_name, strict=False)) if a != b), None
            )
            common = min(len(mine), len(theirs_name)) if shared is None else shared
            if common > 0 or not library:
                siblings.setdefault(common, []).append(other)
    levels = [[key]]
    renamed = [k for k in same if k in table and k != key]
    if renamed:
        levels.append(renamed)
    if len(parts) >= 3 and ":".join(parts[:2]) in table:
        levels.append([":".join(parts[:2])])
    if len(parts) > 1 and parts[0] in table:
        levels.append([parts[0]])
    if siblings:
        levels.append(siblings[max(siblings)])
    return levels


def _library_parts(engine: str, kernel: str, other: str) -> tuple[list[str], list[str]]:
    """The ``"_"``-separated parts of two kernel names of one engine, without a first part that repeats the
    engine's name (``vllm_flashinfer_trtllmdecode`` -> ``["flashinfer", "trtllmdecode"]`` for ``vllm``)."""
    parts = [[p for p in name.split("_") if p] for name in (kernel, other)]
    skip = 1 if parts[0][:1] == parts[1][:1] == [engine] else 0
    return parts[0][skip:], parts[1][skip:]


def params_for(hardware: HardwareProfile, family: ModuleType, key: str) -> Any:
    """The parameters of ``family`` for ``key`` on ``hardware``: calibrated where the profile has them.

    Lookup order: :func:`fallback_keys` (the exact key, the same kernel under another version's name on a
    device of ``hardware``'s compute capability, the engine's pooled parameters for the format, the
    format's pooled parameters, the same engine's nearest other kernel of the same format and operation),
    then ``default_params`` (with a family's ``DIE_PARAMS``, parameters of the device rather than the
    kernel, at their median over the family's stored keys, its ``CTA_PARAMS`` at their median over the
    same kernel's stored keys of other formats or variants, and its ``CALL_PARAMS`` at their median over the
    same call's stored keys of other formats where ``SAME_CALL_KERNELS`` names the call: :func:`_unfitted`).
    Stored values replace the defaults field by field, so a parameter that was never fitted keeps its
    default; a family's ``KERNEL_PROPERTIES`` (what kernel the key runs on this device: MLA's low-latency head
    tile) always come from ``default_params``, never from a stored or pooled value.
    """
    start = family.default_params(hardware, key)
    calibration = hardware.kernel_calibration
    if calibration is None:
        return start
    table = calibration.params.get(family_name(family), {})
    capability = compute_capability(hardware)
    levels = fallback_keys(
        key,
        table,
        same_kernel_keys(key, capability),
        getattr(family, "SIBLING_PHASES", ()),
        getattr(family, "SIBLING_LIBRARY", False),
    )
    found = next((level for level in levels if level[0] in table), [])
    if not found:
        kernels = {key.split(":", 1)[0]} | {k.split(":", 1)[0] for k in same_kernel_keys(key, capability)}
        if key.count(":") >= 2:  # "<format>:<engine>:<kernel>": the call, for SAME_CALL_KERNELS
            kernels.add(key.split(":", 1)[1])
        return _unfitted(family, start, table, kernels)
    names = {f.name for f in dataclasses.fields(start)} - set(getattr(family, "KERNEL_PROPERTIES", ()))
    if len(found) == 1:  # the usual case: one stored key, its values as they are (no median to take)
        values = {k: float(v) for k, v in table[found[0]].items() if k in names}
    else:
        values = {
            k: float(np.median([table[f][k] for f in found if k in table[f]]))
            for k in set().union(*(table[f] for f in found))
            if k in names
        }
    return dataclasses.replace(start, **values)


def _unfitted(family: ModuleType, start: Any, table: Any, kernels: set[str]) -> Any:
    """``start`` (the datasheet defaults of a key no fallback level holds) with the family's ``DIE_PARAMS``
    (parameters of the device, not the kernel: decode attention's L2 rate) at their median over the family's
    stored keys on the device, and its ``CTA_PARAMS`` (what one CTA of the kernel's code does: decode
    attention's per-CTA streaming, prologue and residency) at their median over the stored keys of the same
    kernel (``kernels``: the key's ``"<engine>.<kernel>"`` part and its other engine versions' names) under
    another format or variant, where any stores them; and, for a ``"<format>:<engine>:<kernel>"`` key whose
    ``"<engine>:<kernel>"`` part (in ``kernels`` too) the family names in ``SAME_CALL_KERNELS`` (one backend's
    call sequence for every format: TensorRT-LLM's CUTLASS MoE), its ``CALL_PARAMS`` (that call's own times)
    at their median over the stored keys of the same call under other formats."""

    def medians(names: Iterable[str], rows: list[Any]) -> dict[str, float]:
        return {
            name: float(np.median(found))
            for name in names
            if hasattr(start, name) and (found := [float(v[name]) for v in rows if name in v])
        }

    same = [v for k, v in table.items() if k.split(":", 1)[0] in kernels]
    values = medians(getattr(family, "DIE_PARAMS", ()), list(table.values()))
    values |= medians(getattr(family, "CTA_PARAMS", ()), same)
    calls = set(getattr(family, "SAME_CALL_KERNELS", ())) & {c for c in kernels if ":" in c}
    same_call = [v for k, v in table.items() if k.count(":") >= 2 and k.split(":", 1)[1] in calls]
    values |= medians(getattr(family, "CALL_PARAMS", ()), same_call)
    return dataclasses.replace(start, **values) if values else start


def compute_capability(hardware: HardwareProfile) -> str | None:
    """The profile's CUDA compute capability (``datasheet.cuda_compute_capability``: ``"8.0"``) or ``None``
    where it states none."""
    entry = hardware.datasheet.cuda_compute_capability
    return None if entry is None else str(entry.value)


def numeric_fields(params: Any) -> dict[str, float]:
    """The numeric fields of a ``Params`` instance, as stored in a profile."""
    return {
        f.name: float(getattr(params, f.name))
        for f in dataclasses.fields(params)
        if isinstance(getattr(params, f.name), int | float) and not isinstance(getattr(params, f.name), bool)
    }


def sm_count(hardware: HardwareProfile) -> float:
    """Streaming multiprocessors (``datasheet.compute_units``) [-]: the unit of parallelism the kernel
    models spread tiles over; a clear error where the profile lacks it."""
    units = hardware.datasheet.compute_units
    if units is None:
        raise CostmodelError(
            f"hardware {hardware.name!r} has no datasheet.compute_units (SM count), which the kernel models "
            "need: add it to the profile with its source"
        )
    return float(units.value)


def cache_bytes(hardware: HardwareProfile) -> float:
    """On-chip L2 cache (``datasheet.on_chip_cache_mib``) [bytes]; 0 where the profile lacks it, which turns
    the kernel models' cache-resident terms off."""
    entry = hardware.datasheet.on_chip_cache_mib
    return 0.0 if entry is None else float(entry.value) * 2**20
