"""Run a suite: measure each point, ask costmodel for its prediction, append one JSON line per point.

The output file starts with an environment record. Points are appended as they finish (a crash loses
nothing already measured) and a rerun skips the points already in the file (resume). An out-of-memory
point is recorded as such and the sweep goes on; a kernel the platform lacks is recorded as unsupported.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from costmodel.errors import CostmodelError
from costmodel.registry import load_hardware
from costmodel.specs import HardwareProfile
from validation.kernels import gemm
from validation.measure import environment, prefer_flash_attention, time_call, trace_call
from validation.suite import SUITES, Point, build, calibration_points, count_flop, predict


def default_hardware(device: str) -> str:
    """The built-in profile for the device: the GPU's name mapped to a profile, 'cpu' otherwise."""
    if not device.startswith("cuda"):
        return "cpu"
    name = torch.cuda.get_device_name(device).lower()
    for key, profile in (
        ("h200", "h200"),
        ("h100 pcie", "h100-pcie"),
        ("h100", "h100-sxm"),
        ("b200", "b200"),
        ("a100-sxm4-40", "a100-40gb"),
        ("a100", "a100-80gb"),
        ("l40s", "l40s"),
        ("l4", "l4"),
        ("a10g", "a10g"),
        ("4090", "rtx-4090"),
    ):
        if key in name:
            return profile
    raise ValueError(f"no built-in hardware profile for {name!r}; pass --hardware")


def check_device(device: str) -> None:
    """Refuse a ``--device`` this machine cannot run on, in one line (before any stage starts)."""
    try:
        kind = torch.device(device)
    except RuntimeError:
        raise CostmodelError(f"--device {device!r} is not a torch device; use cpu or cuda[:N]") from None
    if kind.type == "cuda":
        if not torch.cuda.is_available():
            raise CostmodelError(
                f"--device {device}: CUDA is not available here (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu or run on a GPU machine"
            )
        if kind.index is not None and kind.index >= torch.cuda.device_count():
            raise CostmodelError(
                f"--device {device}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 ...)"
            )


def read_records(path: Path, *, drop_torn_tail: bool = False) -> list[dict[str, Any]]:
    """All JSON records of a results file (an empty list if it does not exist).

    A torn last line (a write interrupted by a crash or a kill) is skipped with a warning on stderr, and
    with ``drop_torn_tail`` cut from the file, so that appending resumes on a clean line. A bad line
    before the last is not an interruption: it is an error naming the file and line.
    """
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    records: list[dict[str, Any]] = []
    start = 0
    for number, line in enumerate(lines, 1):
        offset, start = start, start + len(line) + 1
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not a record")
        except ValueError as e:
            reason = str(e).splitlines()[0][:100]
            if any(rest.strip() for rest in lines[number:]):
                raise CostmodelError(f"{path}, line {number}: not a JSON record ({reason})") from None
            cut = "; cut from the file before resuming" if drop_torn_tail else ""
            print(
                f"warning: {path}, line {number}: skipped a torn last line ({reason}){cut}", file=sys.stderr
            )
            if drop_torn_tail:
                with path.open("r+b") as f:
                    f.truncate(offset)
            break
        records.append(record)
    return records


def _progress(points: list[Point]) -> Iterable[Point]:
    try:
        from tqdm import tqdm

        return tqdm(points, desc="validation", unit="point", file=sys.stderr)  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover
        return points


def measure_point(point: Point, device: str, hardware: HardwareProfile, *, repeats: int) -> dict[str, Any]:
    """One record: measured time, peak memory (model points; on a GPU every point), counted FLOPs,
    prediction, errors."""
    record: dict[str, Any] = {
        "record": "point",
        "id": point.id,
        "kernel": point.kernel,
        "family": point.family,
        "held_out": not point.calibration,
        "dtype": point.dtype,
        "shape": point.params,
        "device": device,
        "hardware_profile": hardware.name,
    }
    if kernel_used := gemm.implementation(point.kernel, point.dtype, device):
        record["implementation"] = kernel_used
    pred = predict(point, hardware)
    record |= {
        "predicted_s": pred.time_s,
        "regime": pred.regime,
        "predicted_flop": pred.flop,
        "predicted_memory_bytes": pred.memory_bytes,
    }
    cuda = device.startswith("cuda")
    try:
        if cuda:  # what is allocated before the point (cuBLAS workspaces, leftovers) is not the point's
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            baseline = torch.cuda.memory_allocated(device)
        fn = build(point, device)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        timing = time_call(fn, device, repeats=repeats)
        if cuda:
            peak = torch.cuda.max_memory_allocated(device)
            record["max_memory_allocated_bytes"] = peak
            record["memory_baseline_bytes"] = baseline
            record["measured_memory_bytes"] = peak - baseline
            record["memory_method"] = "torch.cuda.max_memory_allocated over the timed calls - baseline"
        del fn
    except Exception as e:  # recorded, and the sweep goes on (device time is scarce)
        if cuda:
            torch.cuda.empty_cache()
        return record | {"status": classify_failure(e), "reason": failure_reason(e)}
    if pred.memory_bytes or point.family == "attention":  # one more untimed call, traced
        try:
            trace = trace_call(lambda: build(point, device))
        except Exception as e:
            record["live_tensor_bytes_error"] = failure_reason(e)
            if cuda:
                torch.cuda.empty_cache()
        else:
            record["live_tensor_bytes"] = trace.peak
            record["attention_ops"] = sorted(trace.attention_ops)  # [] where SDPA ran its math fallback
            if not cuda and pred.memory_bytes:
                record["measured_memory_bytes"] = trace.peak
                record["memory_method"] = "peak live tensor bytes (validation.measure.LiveTensorBytes)"
    counted = count_flop(point)
    record |= {
        "status": "ok",
        "measured_s": timing.median_s,
        "measured_p10_s": timing.p10_s,
        "measured_p90_s": timing.p90_s,
        "repeats": timing.repeats,
        "calls_per_repeat": timing.calls_per_repeat,
        "rel_error": (pred.time_s - timing.median_s) / timing.median_s,
        "counted_flop": counted,
        "flop_match": None if counted is None or pred.flop is None else counted == round(pred.flop),
    }
    if record.get("measured_memory_bytes") and pred.memory_bytes:
        measured = record["measured_memory_bytes"]
        record["memory_rel_error"] = (pred.memory_bytes - measured) / measured
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return record


STICKY_CUDA_ERRORS = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "CUBLAS_STATUS_EXECUTION_FAILED",
    "CUDA error: an illegal",
)


def classify_failure(e: BaseException) -> str:
    """'oom' (the allocator's or cuBLAS's), 'unsupported' (a kernel the platform lacks) or 'error'."""
    text = str(e)
    if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in text or "ALLOC_FAILED" in text:
        return "oom"
    if isinstance(e, NotImplementedError | RuntimeError | AttributeError):
        return "unsupported"
    return "error"


def failure_reason(e: BaseException) -> str:
    """An exception as one short line for a record: its type and the first line of its message."""
    first = str(e).splitlines()[0][:200] if str(e) else ""
    return f"{type(e).__name__}: {first}"


def run_suite(
    device: str,
    suite: str,
    out: Path,
    *,
    hardware: str | None = None,
    repeats: int = 10,
    include_calibration: bool = True,
    deadline: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Measure every point of ``suite`` not yet in ``out``, appending records; yields each new record.

    ``deadline`` (a ``time.monotonic()`` value): start no point after it; a rerun resumes where it stopped.
    """
    prefer_flash_attention(device)
    hw = load_hardware(hardware or default_hardware(device))
    points = (calibration_points(device) if include_calibration else []) + SUITES[suite]()
    existing = read_records(out, drop_torn_tail=True)
    done = {r["id"] for r in existing if r.get("record") == "point"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        if not existing:
            f.write(json.dumps(environment(device) | {"suite": suite, "hardware_profile": hw.name}) + "\n")
            f.flush()
        for point in _progress([p for p in points if p.id not in done]):
            if deadline is not None and time.monotonic() > deadline:
                print(f"time budget spent: stopped before {point.id}; rerun to resume", file=sys.stderr)
                return
            record = measure_point(point, device, hw, repeats=repeats)
            f.write(json.dumps(record) + "\n")
            f.flush()
            yield record
            if any(text in record.get("reason", "") for text in STICKY_CUDA_ERRORS):
                # the CUDA context is broken: every later point would fail too
                print(
                    f"stopped after {point.id}: {record['reason']}; rerun in a fresh process", file=sys.stderr
                )
                return
