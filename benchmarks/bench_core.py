"""Benchmark: a million-point what-if grid through the core estimators, and the import time.

Run: ``python benchmarks/bench_core.py``. Prints medians over repeats; targets (issue 2): the sweep of
>= 1,000,000 (batch, context, dtype) points under 1 s on a 2-core machine, ``import costmodel`` under
0.3 s and free of torch/streamlit.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys

import numpy as np

import costmodel
from benchmarks.timing import median_s
from costmodel.flops import forward_flop
from costmodel.memory import kv_cache_bytes, weight_bytes

REPEATS = 7


def import_time_s() -> float:
    code = "import time, sys; t = time.perf_counter(); import costmodel; print(time.perf_counter() - t)"
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(5)
    ]
    return statistics.median(runs)


def main() -> None:
    model = costmodel.load_model("llama-3-8b")
    dtypes = np.array(["fp32", "bf16", "fp16", "fp8", "int8", "int4", "nf4", "ternary"])
    batch = np.arange(1, 101)[:, None, None]  # [100, 1, 1]
    context = np.linspace(1, 131_072, 1250).astype(np.int64)[None, :, None]  # [1, 1250, 1]
    dtype = dtypes[None, None, :]  # [1, 1, 8]
    n_points = batch.size * context.size * dtype.size

    def sweep() -> None:
        p = costmodel.param_count(model)
        w = np.array([weight_bytes(model, weight_dtype=str(d)) for d in dtypes])[None, None, :]
        kv = kv_cache_bytes(model, batch_size=batch, context_len=context, kv_dtype=dtype)
        prefill = forward_flop(model, batch_size=batch, new_tokens=context).total
        decode = forward_flop(model, batch_size=batch, new_tokens=1, past_tokens=context).total
        total = w + kv
        assert total.shape == (100, 1250, 8)
        assert prefill.shape == decode.shape == (100, 1250, 1)
        assert p.total > 0

    sweep()  # warm caches (profile parsing, tensor list)
    t = median_s(sweep, REPEATS)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}, "
        f"numpy {np.__version__}"
    )
    print(
        f"sweep of {n_points:,} (batch, context, dtype) points through params, weight bytes, KV bytes, "
        f"prefill and decode FLOPs: median {t * 1e3:.1f} ms over {REPEATS} runs "
        f"({n_points / t / 1e6:.1f} M points/s; target < 1000 ms)"
    )
    imp = import_time_s()
    print(f"import costmodel: median {imp * 1e3:.0f} ms over 5 fresh interpreters (target < 300 ms)")
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, costmodel; print([m for m in ('torch', 'streamlit') if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"heavy modules after import costmodel: {heavy}")


if __name__ == "__main__":
    main()
