"""Diagnosis: one case of the plan scan (:mod:`benchmarks.bench_plan_scan`, vLLM's costs) re-planned and its
chosen row re-simulated on three seeds (the scan's, 101 and 202), optionally at another token budget.

Run: ``python -m benchmarks.plan_scan_diag CASE [--budget TOKENS]`` (e.g. ``16``, ``16 --budget 8192``).
Prints the plan's engine (token budget, CUDA-graph ceiling), replicas, batch limit, load and mean batch;
its p99 TTFT / TPOT with their sampling errors and its p50 TTFT; then, per seed,
:func:`costmodel.simulate.serve`'s p99 (with its 99 % interval) and p50 at that row's load (4,000 Poisson
requests). Used in ``docs/serving.md`` (the plan scan with vLLM's costs, session 20) to tell the
queueing model's misses from the search's: a miss on every seed is the model's.
"""

from __future__ import annotations

import argparse
import warnings

from benchmarks.bench_plan_scan import cases
from costmodel.capacity import SLO, candidate_engine, plan
from costmodel.serving import Lengths, Traffic
from costmodel.simulate import serve

SEEDS = (101, 202)
"""Seeds besides the scan's own (its case number) [-]."""
REQUESTS = 4000
"""Poisson requests per simulation, as the scan's [-]."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=int, help="scan case number (seed 2026, as bench_plan_scan)")
    parser.add_argument("--budget", type=int, default=None, help="max_batched_tokens (default: vLLM's)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    c = cases(args.case + 1)[args.case]
    traffic = Traffic(
        c["rate_per_s"],
        Lengths.lognormal(c["prompt_mean"], c["prompt_sigma"], max_tokens=c["prompt_cap"]),
        Lengths.geometric(c["output_mean"], max_tokens=c["output_cap"]),
    )
    slo = SLO(ttft_s=c["ttft_s"], tpot_s=c["tpot_s"])
    row = plan(c["model"], [c["hardware"]], traffic, slo, tp=(c["tp"],), max_batched_tokens=args.budget).iloc[
        0
    ]
    if not row.feasible:
        print(f"case {args.case}: infeasible: {row.reason}")
        return 0
    r, b = int(row.replicas), int(row.max_batch_size)
    engine = candidate_engine(
        c["model"], c["hardware"], tp=c["tp"], max_batch_size=b, max_batched_tokens=args.budget
    )
    print(
        f"case {args.case}: {c['model']} on {c['hardware']} TP {c['tp']}, "
        f"budget {engine.max_batched_tokens}, graphs {engine.graph_tokens_in_force}; {r} replicas at "
        f"batch limit {b}, load {row.utilization:.2f}, mean batch {row.mean_batch_size:.2f}; "
        f"objectives p99 TTFT {c['ttft_s']:.4g} s, TPOT {c['tpot_s']:.4g} s"
    )
    print(
        f"planner: p99 TTFT {row.ttft_p99_s:.4f} +- {row.ttft_p99_error_s:.4f} s, p99 TPOT "
        f"{row.tpot_p99_s:.4f} +- {row.tpot_p99_error_s:.4f} s; p50 TTFT {row.ttft_p50_s:.4f} s"
    )
    for seed in (args.case, *SEEDS):
        sim = serve(engine, traffic.with_rate(c["rate_per_s"] / r), n_requests=REQUESTS, seed=seed)
        lo_t, hi_t = sim.quantile_interval("ttft", 0.99)
        lo_p, hi_p = sim.quantile_interval("tpot", 0.99)
        print(
            f"seed {seed}: simulated p99 TTFT {sim.quantile('ttft', 0.99):.4f} s [{lo_t:.4f}, {hi_t:.4f}], "
            f"p50 {sim.quantile('ttft', 0.5):.4f} s; p99 TPOT {sim.quantile('tpot', 0.99):.4f} s "
            f"[{lo_p:.4f}, {hi_p:.4f}]"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
