"""Benchmark: the analytic serving model (:func:`costmodel.capacity.analyze`) against the discrete-event
simulator (:func:`costmodel.simulate.serve`) on two scenarios, printed as the markdown tables A and B of
``docs/serving.md`` ("Checked against the simulator").

Run: ``python -m benchmarks.bench_sim_tables``. Llama-3-8B on one H100 SXM, bf16; loads as a share of the
analytic saturation rate; the simulator with 4,000 Poisson requests (seed 0, 10 % warm-up), the model
with 4,096 quadrature points. Each cell is simulated / analytic; latencies in ms, e2e in s.

- A: batch limit 64, token budget 4,096, prompts lognormal(mean 512, sigma 0.8, cap 4,096), outputs
  geometric(mean 128, cap 2,048).
- B: batch limit 256, token budget 8,192, prompts fixed 512, outputs geometric(mean 128).
"""

from __future__ import annotations

import os
import sys

from costmodel.capacity import ServingMetrics, analyze
from costmodel.serving import Engine, Lengths, StepTable, Traffic
from costmodel.simulate import ServeResult, serve

LOADS = (0.3, 0.6, 0.7, 0.8, 0.9)
SCENARIOS = {
    "A": (
        Engine.build("llama-3-8b", "h100-sxm", max_batch_size=64, max_batched_tokens=4096),
        Traffic(1.0, Lengths.lognormal(512, 0.8, max_tokens=4096), Lengths.geometric(128, max_tokens=2048)),
    ),
    "B": (
        Engine.build("llama-3-8b", "h100-sxm", max_batch_size=256, max_batched_tokens=8192),
        Traffic(1.0, Lengths.fixed(512), Lengths.geometric(128)),
    ),
}


def _pair(sim: ServeResult, m: ServingMetrics, metric: str, q: float, scale: float = 1e3) -> str:
    """'simulated / analytic' q-quantile of ``metric``, times ``scale``."""
    return f"{scale * float(sim.quantile(metric, q)):.3g} / {scale * float(m.quantile(metric, q)):.3g}"


def table(name: str) -> None:
    """Print scenario ``name``'s table."""
    engine, traffic = SCENARIOS[name]
    saturation = float(analyze(engine, traffic).max_rate_per_s)
    steps = StepTable(engine)
    print(f"\n**{name}. saturation {saturation:.1f} req/s.**\n")
    print(
        "| load | throughput sim/an | mean batch | TTFT p50 | TTFT p90 | TTFT p99 | TPOT p50 | TPOT p99 "
        "| e2e p99 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for load in LOADS:
        rated = traffic.with_rate(load * saturation)
        sim = serve(engine, rated, n_requests=4000, seed=0, table=steps)
        m = analyze(engine, rated, samples=4096, quantiles=(0.5, 0.9, 0.99))

        cells = [
            f"{load:g}",
            f"{sim.output_tokens_per_s / float(m.output_tokens_per_s):.3f}",
            f"{sim.mean_batch_size:.1f} / {float(m.mean_batch_size):.1f}",
            _pair(sim, m, "ttft", 0.5),
            _pair(sim, m, "ttft", 0.9),
            _pair(sim, m, "ttft", 0.99),
            _pair(sim, m, "tpot", 0.5),
            _pair(sim, m, "tpot", 0.99),
            _pair(sim, m, "e2e", 0.99, 1.0),
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", file=sys.stderr)
    for name in SCENARIOS:
        table(name)


if __name__ == "__main__":
    main()
