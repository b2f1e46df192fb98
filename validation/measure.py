"""Honest timing and the environment record.

Timing (gpt-fast style): warm up, synchronise, then time ``repeats`` calls one by one — CUDA events on a
GPU, ``time.perf_counter`` on the CPU — and report the median with the 10th and 90th percentiles. Calls
that take under ``min_time_s`` are batched into one timed run of several calls, so timer resolution and
launch jitter do not dominate.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import costmodel

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median and spread over ``repeats`` timed runs."""

    median_s: float
    p10_s: float
    p90_s: float
    repeats: int
    calls_per_repeat: int


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(
    fn: Callable[[], Any], device: str, *, repeats: int = 10, warmup: int = 3, min_time_s: float = 2e-3
) -> Timing:
    """Time ``fn()`` on ``device`` (see the module docstring)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    single = max(time.perf_counter() - t, 1e-9)
    calls = max(1, min(1000, int(min_time_s / single)))
    samples = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / calls)
        else:
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            samples.append((time.perf_counter() - t) / calls)
    samples.sort()
    q = statistics.quantiles(samples, n=10) if len(samples) >= 2 else [samples[0]] * 9
    return Timing(statistics.median(samples), q[0], q[-1], repeats, calls)


def peak_tensor_bytes(make: Callable[[], Callable[[], Any]]) -> int | None:
    """Peak bytes of live tensors while ``make()`` builds a callable and it runs once: weights, caches
    and inputs included. Counted by PyTorch's ``MemTracker`` (torch.distributed._tools), which follows
    every tensor storage as it is created and freed; it measures the tensors the code holds, not an
    allocator (a GPU's caching allocator also rounds blocks up, which ``max_memory_allocated`` includes).
    None where the tracker is missing (a torch without it)."""
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:  # pragma: no cover - torch builds without torch.distributed
        return None
    tracker = MemTracker()
    with tracker:
        fn = make()
        fn()
    peak = tracker.get_tracker_snapshot("peak")
    return int(sum(stats.get("Total", 0) for stats in peak.values()))


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "-uno",
                "--",
                "costmodel",
                "validation",
                ":(exclude)validation/results",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("COSTMODEL_GIT_REVISION", "unknown")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str) -> dict[str, Any]:
    """Where and with what a result was measured."""
    env: dict[str, Any] = {
        "record": "environment",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_revision": _git_revision(),
        "costmodel_version": costmodel.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": device,
        "host_cpu": _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        env |= {
            "device_name": props.name,
            "device_memory_bytes": props.total_memory,
            "sm_count": props.multi_processor_count,
            "cuda_version": torch.version.cuda,
            "driver": _nvidia_smi("driver_version"),
            "clocks_sm_mhz": _nvidia_smi("clocks.sm"),
            "clocks_max_sm_mhz": _nvidia_smi("clocks.max.sm"),
            "clocks_mem_mhz": _nvidia_smi("clocks.mem"),
            "power_limit_w": _nvidia_smi("power.limit"),
        }
    else:
        env["device_name"] = _cpu_name()
    return env


def _nvidia_smi(field: str) -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
