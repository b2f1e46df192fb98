"""Calibration: measure only micro-benchmarks and write a hardware profile with measured efficiencies.

- ``matmul_fraction_by_dtype``: achieved FLOP/s of a large square GEMM per dtype / the datasheet peak;
- ``memory_bandwidth_fraction``: weight bytes per second streamed by a matrix-vector product whose matrix
  is far larger than the caches (decode's dominant traffic) / the datasheet bandwidth. A large copy is
  measured too and recorded; on GPUs the two agree, on CPUs a GEMV streams far slower than a copy;
- ``kernel_overhead_s``: time of the smallest matmul ([1, 64] x [64, 64]): the fixed cost of one
  modelled operator (launch and framework dispatch) when it has no work. On a CPU it is 0: a CPU kernel's
  fixed cost is its dispatch, which ``dispatch_s`` counts for every kernel;
- ``gemm_pack_fraction`` (a CPU only): a 16-row GEMM over the streaming GEMV's weight, its time less its
  model time without the pack (with the bandwidth above; it is memory-bound): the BLAS's weight-packing
  pass (:mod:`costmodel.cpu_gemm`), the weight bytes over that time, as a fraction of the GEMV's
  streaming bandwidth measured in the same run. The large GEMMs' times held their own
  pack, so their FLOP rate is then taken net of it (``fraction_without_pack``);
- ``dispatch_s`` (and, on a CPU, ``execution_mode: eager``): one token through a decoder layer with almost
  no work (d_model 64), its time less the roofline time of that work, divided by the kernels it launches
  in eager PyTorch (:mod:`costmodel.execution`): the host's cost per kernel, with the Python module calls
  and views between kernels that a real layer has too.

The datasheet of the base profile is kept as it is (with its sources); only the ``efficiency`` block
changes, and its ``source`` says where, when and at which git revision it was measured. Composite kernels
(layers, models) are never used here: they are the held-out test of the model.

For a CPU the base profile is the generic ``cpu`` (a reference server part), so the fractions are
relative to that part's datasheet, not to the machine that ran: the product (the effective FLOP/s and
bandwidth) is what matters for predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from costmodel.calibrate import write_files
from costmodel.dtypes import get_dtype
from costmodel.registry import load_hardware, to_yaml
from costmodel.roofline import op_times
from costmodel.specs import Efficiency, HardwareProfile
from validation.measure import environment, time_call
from validation.run import default_hardware, failure_reason
from validation.suite import Point, _model_ops, build, calibration_points, predict


def base_bytes(dtype: str) -> float:
    return get_dtype(dtype).bits / 8


def _fp32_on_tensor_cores(device: str, base: HardwareProfile) -> bool:
    """Whether torch runs fp32 matmuls as TF32 here: only on CUDA when allowed (torch's default,
    ``torch.get_float32_matmul_precision() == "highest"``, keeps them on the fp32 SIMT units)."""
    return (
        device.startswith("cuda")
        and "tf32" in base.compute_dtypes
        and torch.get_float32_matmul_precision() != "highest"
    )


def calibrate(
    device: str, *, hardware: str | None = None, repeats: int = 10
) -> tuple[HardwareProfile, list[dict[str, Any]]]:
    """The calibrated profile and the micro-benchmark records behind it."""
    base = load_hardware(hardware or default_hardware(device))
    records: list[dict[str, Any]] = []
    by_dtype: dict[str, float] = {}
    bandwidth_fraction = base.efficiency.memory_bandwidth_fraction
    overhead = base.efficiency.kernel_overhead_s
    dispatch = base.efficiency.dispatch_s
    packs: list[tuple[Point, float]] = []
    for point in calibration_points(device):
        try:
            timing = time_call(build(point, device), device, repeats=repeats)
        except Exception as e:  # e.g. no fp8 matmul here: that dtype keeps the base profile's fraction
            status = f"skipped: {failure_reason(e)}"
            records.append({"kernel": point.kernel, "shape": point.params, "status": status})
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            continue
        rec: dict[str, Any] = {"kernel": point.kernel, "shape": point.params, "measured_s": timing.median_s}
        if point.kernel == "gemm" and point.family == "pack":  # after the fractions it is measured against
            packs.append((point, timing.median_s))
            continue
        if point.kernel == "gemm" and point.family == "memory":  # streaming matrix-vector product
            p = point.params
            moved = p["N"] * p["K"] * base_bytes(point.dtype)
            bandwidth_fraction = min(moved / timing.median_s / base.memory_bandwidth_bytes_per_s, 1.0)
            rec |= {"achieved_bytes_per_s": moved / timing.median_s, "fraction": bandwidth_fraction}
        elif point.kernel == "gemm":
            p = point.params
            achieved = 2.0 * p["M"] * p["N"] * p["K"] / timing.median_s
            dtype = point.dtype
            peak_dtype = "tf32" if dtype == "fp32" and _fp32_on_tensor_cores(device, base) else dtype
            if peak_dtype in base.compute_dtypes:
                fraction = min(achieved / base.peak_flop_per_s(peak_dtype), 1.0)
                by_dtype[dtype] = fraction
                rec |= {"achieved_flop_per_s": achieved, "fraction": fraction, "peak_dtype": peak_dtype}
        elif point.kernel == "copy":  # recorded for comparison; the streaming GEMV sets the bandwidth
            rec["achieved_bytes_per_s"] = 2.0 * point.params["bytes"] / timing.median_s
        elif point.kernel == "launch":
            overhead = timing.median_s
        elif point.kernel == "layer":  # the tiny layer: its time less its (negligible) work, per kernel
            work, launches = device_time(point, base)
            dispatch = max(timing.median_s - work, 0.0) / launches
            rec |= {"kernels": launches, "device_time_s": work, "dispatch_s": dispatch}
        records.append(rec)
    env = environment(device)
    matmul = by_dtype.get("bf16", by_dtype.get("fp32", base.efficiency.matmul_fraction))
    cpu = not device.startswith("cuda")
    efficiency = Efficiency(
        matmul_fraction=matmul,
        matmul_fraction_by_dtype=by_dtype,  # type: ignore[arg-type]
        memory_bandwidth_fraction=bandwidth_fraction,
        interconnect_fraction=base.efficiency.interconnect_fraction,
        # a CPU kernel's fixed cost is its dispatch, counted per eager kernel; a GPU keeps its per-operator
        # launch and its graphs mode (the dispatch is measured and recorded for an eager what-if)
        kernel_overhead_s=0.0 if cpu else overhead,
        execution_mode="eager" if cpu else base.efficiency.execution_mode,
        dispatch_s=dispatch,
        source=(
            f"calibrated by validation/calibrate.py on {env['device_name']} ({device}), torch "
            f"{env['torch_version']}, {env['date']}, git {env['git_revision']}; interconnect fraction "
            "not measured (kept from the base profile)"
        ),
    )
    for point, measured in packs:  # the 16-row GEMM's time beyond its model time without the pack
        p = point.params
        moved = p["N"] * p["K"] * base_bytes(point.dtype)
        roof = predict(point, base, efficiency).time_s
        pack = moved / max(measured - roof, 1e-12)  # [bytes/s]
        streaming = base.memory_bandwidth_bytes_per_s * bandwidth_fraction
        efficiency = efficiency.model_copy(update={"gemm_pack_fraction": pack / streaming})
        records.append(
            {"kernel": point.kernel, "shape": p, "measured_s": measured, "model_without_pack_s": roof}
        )
        records[-1] |= {"pack_bytes_per_s": pack, "gemm_pack_fraction": pack / streaming}
        # the large GEMMs' times held their pack too: their FLOP rate is the time without it
        for rec in records:
            if rec.get("kernel") == "gemm" and "achieved_flop_per_s" in rec:
                g = rec["shape"]
                net = rec["measured_s"] - g["N"] * g["K"] * base_bytes(g["dtype"]) / pack
                by_dtype[g["dtype"]] = min(rec["fraction"] * rec["measured_s"] / max(net, 1e-12), 1.0)
                rec["fraction_without_pack"] = by_dtype[g["dtype"]]
        matmul = by_dtype.get("bf16", by_dtype.get("fp32", matmul))
        efficiency = efficiency.model_copy(
            update={"matmul_fraction": matmul, "matmul_fraction_by_dtype": dict(by_dtype)}
        )
    profile = base.model_copy(
        update={
            "name": f"{base.name}-calibrated",
            "display_name": f"{base.display_name}, efficiencies measured on {env['device_name']}",
            "efficiency": efficiency,
        }
    )
    return profile, records


def device_time(point: Point, base: HardwareProfile) -> tuple[float, float]:
    """The device time of ``point``'s work on ``base`` with no fixed or host costs (the roofline with the
    base's fractions) [s], and the kernels it launches in eager PyTorch [-]."""
    graphs = base.efficiency.model_copy(
        update={"kernel_overhead_s": 0.0, "execution_mode": "graphs", "step_overhead_s": 0.0}
    )
    _, ops = _model_ops(point, attention="causal")
    work = float(np.sum(op_times(ops, base, activation_dtype=point.dtype, efficiency=graphs).total_s))
    return work, float(sum(float(np.sum(op.launches)) * op.layers for op in ops))


def write_profile(profile: HardwareProfile, records: list[dict[str, Any]], out: Path) -> None:
    """The profile as YAML (loadable by costmodel.load_hardware), the measurements as a comment block."""
    lines = "\n".join("# " + json.dumps(r) for r in records)
    text = f"# micro-benchmarks behind this profile's efficiency block:\n{lines}\n{to_yaml(profile)}"
    yaml.safe_load(text)  # must stay loadable
    write_files({out: text}, f"--out {out}")  # all or nothing: never an empty or partial profile
