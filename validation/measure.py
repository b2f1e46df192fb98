"""Honest timing and the environment record.

Timing (gpt-fast style): warm up, synchronise, then time ``repeats`` calls one by one — CUDA events on a
GPU, ``time.perf_counter`` on the CPU — and report the median with the 10th and 90th percentiles. Calls
that take under ``min_time_s`` are batched into one timed run of several calls, so timer resolution and
launch jitter do not dominate.

On a CPU shared with other jobs the wall clock times the other jobs too (a two-thread OpenMP region waits
for its slower thread whenever a core is taken). :func:`configure` with ``threads=1, clock="thread"`` runs
torch on one thread and times it with ``time.thread_time`` (the CPU time of the calling thread, which then
does all the work: https://docs.python.org/3/library/time.html#time.thread_time), so a measurement counts
the kernel's own work and not the load; what other jobs still change (shared caches, memory bandwidth) is
left, and the environment record says which clock ran.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

import costmodel
from costmodel.errors import CostmodelError

ROOT = Path(__file__).resolve().parents[1]
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
"""How CPU calls are timed: 'wall' (``time.perf_counter``) or 'thread' (``time.thread_time``, one thread)."""
_clock = {"name": "wall"}


def configure(*, threads: int | None = None, clock: str = "wall") -> None:
    """Torch's CPU threads (None: torch's choice) and the clock of CPU timings ('thread' needs one thread:
    the CPU time of the calling thread counts no work done by others)."""
    if clock not in CLOCKS:
        raise CostmodelError(f"--clock {clock!r}: use one of {', '.join(CLOCKS)}")
    if threads is not None:
        if threads < 1:
            raise CostmodelError(f"--threads {threads}: give at least 1")
        torch.set_num_threads(threads)
    if clock == "thread" and torch.get_num_threads() != 1:
        raise CostmodelError("--clock thread counts one thread's CPU time: add --threads 1")
    _clock["name"] = clock


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
    clock = time.perf_counter if device.startswith("cuda") else CLOCKS[_clock["name"]]
    for _ in range(warmup):
        fn()
    _sync(device)
    t = clock()
    fn()
    _sync(device)
    single = max(clock() - t, 1e-9)
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
            t = clock()
            for _ in range(calls):
                fn()
            samples.append((clock() - t) / calls)
    samples.sort()
    q = statistics.quantiles(samples, n=10) if len(samples) >= 2 else [samples[0]] * 9
    return Timing(statistics.median(samples), q[0], q[-1], repeats, calls)


class LiveTensorBytes(TorchDispatchMode):
    """While active, the bytes of every tensor storage an operator creates, until that storage is freed:
    ``current`` and ``peak`` [bytes]. Views and in-place results share a storage and count once. It
    counts the tensors the code holds, not an allocator's blocks (a GPU's caching allocator also rounds
    them up, which ``torch.cuda.max_memory_allocated`` includes). ``attention_ops`` names the fused
    attention kernels that ran (``_scaled_dot_product_flash_attention``, ..._efficient_..., ..._cudnn_...;
    none where SDPA fell back to its math decomposition)."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self.attention_ops: set[str] = set()
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def _free(self, nbytes: int) -> None:
        self.current -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        if "scaled_dot_product" in name:
            self.attention_ops.add(name)
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage not in self._seen:
                    nbytes = storage.nbytes()
                    self._seen[storage] = nbytes
                    weakref.finalize(storage, self._free, nbytes)
                    self.current += nbytes
                    self.peak = max(self.peak, self.current)
        return out


def trace_call(make: Callable[[], Callable[[], Any]]) -> LiveTensorBytes:
    """Build a callable with ``make()`` and run it once under :class:`LiveTensorBytes`: the peak bytes of
    live tensors (weights, caches, inputs and every intermediate) and the attention kernels that ran."""
    with LiveTensorBytes() as tracker:
        fn = make()
        fn()
        del fn
    return tracker


def prefer_flash_attention(device: str) -> None:
    """On CUDA, keep ``scaled_dot_product_attention`` off cuDNN's backend, so that it runs FlashAttention
    (as serving engines do) where it can: torch prefers cuDNN on Hopper with a recent cuDNN, and cuDNN
    builds a new graph for each new sequence length by default, which a decode loop would time."""
    if device.startswith("cuda"):
        torch.backends.cuda.enable_cudnn_sdp(False)


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
    if not device.startswith("cuda"):
        env["clock"] = _clock["name"]
        with contextlib.suppress(OSError):
            env["load_average"] = list(os.getloadavg())
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        backends = torch.backends.cuda
        env |= {
            "cudnn_version": torch.backends.cudnn.version(),
            "sdpa_backends_enabled": {
                "flash": backends.flash_sdp_enabled(),
                "efficient": backends.mem_efficient_sdp_enabled(),
                "cudnn": backends.cudnn_sdp_enabled(),
                "math": backends.math_sdp_enabled(),
            },
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "device_name": props.name,
            "device_memory_bytes": props.total_memory,
            "sm_count": props.multi_processor_count,
            "cuda_version": torch.version.cuda,
            **_nvidia_smi(
                {
                    "driver": "driver_version",
                    "clocks_sm_mhz": "clocks.sm",  # as found: idle if nothing ran just before
                    "clocks_max_sm_mhz": "clocks.max.sm",
                    "clocks_mem_mhz": "clocks.mem",
                    "power_limit_w": "power.limit",
                }
            ),
        }
    else:
        env["device_name"] = _cpu_name()
    return env


def _nvidia_smi(fields: dict[str, str]) -> dict[str, str | None]:
    """Record keys -> ``nvidia-smi --query-gpu`` fields, read in one call (None each where it fails)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields.values())}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
    except (OSError, subprocess.SubprocessError, IndexError):
        values = []
    if len(values) != len(fields):
        return dict.fromkeys(fields)
    return dict(zip(fields, values, strict=True))
