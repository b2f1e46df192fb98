"""Benchmark: the capacity planner on ten candidate devices, and the analytic model on a load grid.

Run: ``python -m benchmarks.bench_capacity``. Prints medians over repeats. Target (serving issue, issue
13): one ``plan()`` call over ten candidates fast enough for a live dashboard, < 200 ms. The planner's
accuracy is ``benchmarks/bench_plan_scan.py``'s.
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.timing import median_cpu_s, median_s
from costmodel import memo
from costmodel.capacity import SLO, analyze, plan
from costmodel.serving import Engine, Lengths, Traffic
from costmodel.simulate import serve

HARDWARE = ["h100-sxm", "a100-80gb", "l40s", "h200", "a10g", "l4", "mi300x", "b200", "a100-40gb", "h100-pcie"]


def main() -> None:
    traffic = Traffic(
        20.0, Lengths.lognormal(1024, 0.8, max_tokens=6000), Lengths.geometric(256, max_tokens=2048)
    )
    slo = SLO(ttft_s=0.5, tpot_s=0.05)
    plan("llama-3-8b", HARDWARE, traffic, slo, tp=(1,))  # warm imports and caches
    t = median_s(lambda: plan("llama-3-8b", HARDWARE, traffic, slo, tp=(1,)), repeats=7)
    cpu = median_cpu_s(lambda: plan("llama-3-8b", HARDWARE, traffic, slo, tp=(1,)), repeats=7)
    print(
        f"plan(): llama-3-8b, 10 candidates (tp=1), p99 SLOs: median {t * 1e3:.0f} ms wall, "
        f"{cpu * 1e3:.0f} ms CPU over 7 runs (target < 200 ms; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores)"
    )

    def cold() -> None:  # kernel times computed afresh, as after a change of model or device
        memo.clear()
        plan("llama-3-8b", HARDWARE, traffic, slo, tp=(1,))

    cold_wall, cold_cpu = median_s(cold, repeats=7), median_cpu_s(cold, repeats=7)
    print(
        f"plan(), the same, costmodel.memo emptied before each call: median {cold_wall * 1e3:.0f} ms wall, "
        f"{cold_cpu * 1e3:.0f} ms CPU over 7 runs"
    )
    t = median_s(lambda: plan("llama-3-70b", ["h100-sxm", "a100-80gb", "l40s"], traffic, slo), repeats=5)
    print(f"plan(): llama-3-70b, 3 devices x tp 1/2/4/8 = 12 candidates: median {t * 1e3:.0f} ms over 5 runs")
    engine = Engine.build("llama-3-8b", "h100-sxm", max_batch_size=256)
    rates, limits = np.linspace(1, 20, 20)[:, None], np.array([8, 16, 32, 64, 128, 256])
    t = median_s(lambda: analyze(engine, traffic, rate_per_s=rates, max_batch_size=limits), repeats=5)
    print(
        f"analyze(): 20 rates x 6 batch limits, 4096 quadrature points: median {t * 1e3:.0f} ms over 5 runs"
    )
    t = median_s(lambda: serve(engine, traffic.with_rate(10.0), n_requests=2000), repeats=3)
    print(f"simulate.serve(): 2,000 requests at 10/s on one H100: median {t:.2f} s over 3 runs")


if __name__ == "__main__":
    main()
