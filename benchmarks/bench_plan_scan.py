"""Benchmark: the capacity planner against its own search and against the simulator, over a randomised,
seeded scan of (model, device, traffic, SLO) cases.

Run: ``python -m benchmarks.bench_plan_scan [--cases 200] [--jobs 2] [--csv rows.csv] [--jsonl rows.jsonl]``
(``--summarise rows.jsonl`` prints the figures of the cases finished so far). Same seed, same
cases, same figures. For each case, :func:`costmodel.capacity.plan` on one (device, TP) candidate, then:

- **not minimal**: a brute-force scan of every replica count 1..R with the planner's own criterion
  (:func:`costmodel.capacity.meets_slo`) finds a smaller count that passes (target 0);
- **false infeasible**: the plan says infeasible but some count up to 256, or ``max_replicas``, passes
  with 4x the planner's quadrature points (target 0);
- **against the simulator**: :func:`costmodel.simulate.serve` (4,000 Poisson requests) at the chosen
  row: the planner's p99 TTFT and TPOT over the simulated ones (target: median within 15 %), and the rows
  whose simulated p99 misses the SLO even at the low end of its 99 % confidence interval
  (:meth:`costmodel.simulate.ServeResult.quantile_interval`; target 0);
- **the pass rule**: the same plan with ``sampling_margin=0`` (the p99 itself held to the objective,
  not the upper end of its sampling-error band), its row simulated likewise where it differs: the GPUs
  the default margin adds, and the misses in simulation without it.

Cases: Llama-3-8B, Mistral-7B, Qwen2.5-7B, Llama-2-13B, Llama-3-70B (TP 4) on H100 SXM, H200, A100 80GB,
L40S, MI300X, A10G, L4 (TP 1 or 2); Poisson rate log-uniform in [0.5, 50] requests/s; prompts lognormal
(mean log-uniform in [100, 3000] tokens, sigma in [0.3, 1.2]); outputs geometric (mean log-uniform in
[16, 512]); p99 TTFT objective log-uniform in [0.15, 5] s, p99 TPOT in [0.015, 0.2] s.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

MODELS = ("llama-3-8b", "mistral-7b", "qwen2.5-7b", "llama-2-13b", "llama-3-70b")
DEVICES = ("h100-sxm", "h200", "a100-80gb", "l40s", "mi300x", "a10g", "l4")
SEED = 2026
_MARGIN_KEY = re.compile(r"_m(\d+(?:\.\d+)?)$")  # the columns of an alternative margin


def cases(n: int) -> list[dict[str, Any]]:
    """``n`` scenarios drawn with :data:`SEED`."""
    rng = np.random.default_rng(SEED)

    def loguniform(lo: float, hi: float) -> float:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    out = []
    for i in range(n):
        model = str(rng.choice(MODELS))
        device = str(rng.choice(DEVICES))
        tp = 4 if model == "llama-3-70b" else int(rng.choice([1, 2], p=[0.7, 0.3]))
        context = 4096 if model == "llama-2-13b" else 8192
        out.append(
            {
                "case": i,
                "model": model,
                "hardware": device,
                "tp": tp,
                "rate_per_s": loguniform(0.5, 50.0),
                "prompt_mean": loguniform(100.0, 3000.0),
                "prompt_sigma": float(rng.uniform(0.3, 1.2)),
                "output_mean": loguniform(16.0, 512.0),
                "prompt_cap": context // 2,
                "output_cap": context // 4,
                "ttft_s": loguniform(0.15, 5.0),
                "tpot_s": loguniform(0.015, 0.2),
            }
        )
    return out


def _engine(c: dict[str, Any], limit: int) -> Any:
    """The case's replica as :func:`costmodel.capacity.plan` times it (the case's ``engine``: its costs
    beyond the kernels and its kernels), launched at the batch limit ``limit`` (``max_num_seqs``: vLLM's
    CUDA graphs follow it)."""
    from costmodel.capacity import candidate_engine

    return candidate_engine(
        c["model"], c["hardware"], tp=c["tp"], engine=c.get("engine"), max_batch_size=limit
    )


def _simulate(c: dict[str, Any], traffic: Any, replicas: int, limit: int) -> dict[str, Any]:
    """The chosen row in :func:`costmodel.simulate.serve`: p99s, their 99 % intervals, misses."""
    from costmodel.simulate import serve

    engine = _engine(c, limit)
    sim = serve(engine, traffic.with_rate(c["rate_per_s"] / replicas), n_requests=4000, seed=c["case"])
    out: dict[str, Any] = {"preemptions": int(sim.preemptions.sum())}
    for metric in ("ttft", "tpot"):
        lo, hi = sim.quantile_interval(metric, 0.99)
        out[f"sim_{metric}_p99_s"] = float(sim.quantile(metric, 0.99))
        out[f"sim_{metric}_p99_lo_s"], out[f"sim_{metric}_p99_hi_s"] = lo, hi
        out[f"{metric}_misses_in_simulation"] = bool(lo > c[f"{metric}_s"])
    return out


def _alternative(
    c: dict[str, Any], traffic: Any, slo: Any, primary: dict[str, Any], margin: float
) -> dict[str, Any]:
    """The plan with ``sampling_margin=margin``, suffixed ``_m<margin>``: its replicas (0 where
    infeasible), and its row's p99s in the planner and in simulation (the primary's simulation where the
    row is the same) with its misses."""
    from costmodel.capacity import plan

    key = f"_m{margin:g}"
    row = plan(
        c["model"],
        [c["hardware"]],
        traffic,
        slo,
        tp=(c["tp"],),
        sampling_margin=margin,
        engine=c.get("engine"),
    ).iloc[0]
    if not row.feasible:
        return {f"replicas{key}": 0}
    r, limit = int(row.replicas), int(row.max_batch_size)
    out: dict[str, Any] = {f"replicas{key}": r, f"max_batch_size{key}": limit}
    if primary.get("kind") == "feasible" and (r, limit) == (primary["replicas"], primary["max_batch_size"]):
        sim = {k: primary[k] for k in ("ttft_misses_in_simulation", "tpot_misses_in_simulation")}
        sim.update({k: primary[k] for k in ("sim_ttft_p99_s", "sim_tpot_p99_s")})
    else:
        sim = _simulate(c, traffic, r, limit)
    out[f"misses{key}"] = bool(sim["ttft_misses_in_simulation"] or sim["tpot_misses_in_simulation"])
    for metric in ("ttft", "tpot"):
        out[f"{metric}_p99_s{key}"] = float(row[f"{metric}_p99_s"])
        out[f"sim_{metric}_p99_s{key}"] = float(sim[f"sim_{metric}_p99_s"])
    return out


def run_case(
    c: dict[str, Any], margin: float | None = None, alternatives: tuple[float, ...] = (0.0,)
) -> dict[str, Any]:
    """Plan one case with ``sampling_margin=margin`` (default the planner's) and check it, then plan it
    with each of the ``alternatives`` margins (see the module docstring)."""
    from costmodel.capacity import SAMPLING_MARGIN

    margin = SAMPLING_MARGIN if margin is None else margin
    out = _run_case(c, margin)
    out["sampling_margin"] = margin
    if out["kind"] != "does not fit":
        from costmodel.capacity import SLO
        from costmodel.serving import Lengths, Traffic

        traffic = Traffic(
            c["rate_per_s"],
            Lengths.lognormal(c["prompt_mean"], c["prompt_sigma"], max_tokens=c["prompt_cap"]),
            Lengths.geometric(c["output_mean"], max_tokens=c["output_cap"]),
        )
        slo = SLO(ttft_s=c["ttft_s"], tpot_s=c["tpot_s"])
        for alternative in alternatives:
            out.update(_alternative(c, traffic, slo, out, alternative))
    return out


def _run_case(c: dict[str, Any], margin: float) -> dict[str, Any]:
    """The default plan of one case, checked."""
    from costmodel.capacity import BATCH_LIMITS, PLAN_SAMPLES, SLO, meets_slo, plan
    from costmodel.serving import Lengths, Traffic

    warnings.simplefilter("ignore")
    traffic = Traffic(
        c["rate_per_s"],
        Lengths.lognormal(c["prompt_mean"], c["prompt_sigma"], max_tokens=c["prompt_cap"]),
        Lengths.geometric(c["output_mean"], max_tokens=c["output_cap"]),
    )
    slo = SLO(ttft_s=c["ttft_s"], tpot_s=c["tpot_s"])
    t0 = time.perf_counter()
    row = plan(
        c["model"],
        [c["hardware"]],
        traffic,
        slo,
        tp=(c["tp"],),
        sampling_margin=margin,
        engine=c.get("engine"),
    ).iloc[0]
    out: dict[str, Any] = {**c, "plan_s": time.perf_counter() - t0, "feasible": bool(row.feasible)}
    out["reason"] = row.reason
    if not row.feasible:
        if "SLO" not in row.reason:  # the weights or the cache do not fit: nothing to search
            out["kind"] = "does not fit"
            return out
        out["kind"] = "infeasible"
        engine = _engine(c, max(BATCH_LIMITS))
        counts = np.r_[np.arange(1, 257), 10_000]
        fine = meets_slo(
            engine, traffic, slo, replicas=counts, samples=4 * PLAN_SAMPLES, sampling_margin=margin
        )
        out["false_infeasible"] = bool(fine.any())
        return out
    out["kind"] = "feasible"
    r, limit = int(row.replicas), int(row.max_batch_size)
    engine = _engine(c, max(BATCH_LIMITS))
    own = meets_slo(engine, traffic, slo, replicas=np.arange(1, r + 1), sampling_margin=margin)
    out["first_passing"] = int(np.argmax(own.any(axis=1))) + 1 if own.any() else -1
    out["not_minimal"] = out["first_passing"] != r
    out.update(
        replicas=r,
        max_batch_size=limit,
        utilization=float(row.utilization),
        ttft_p99_s=float(row.ttft_p99_s),
        ttft_p99_error_s=float(row.ttft_p99_error_s),
        tpot_p99_s=float(row.tpot_p99_s),
        tpot_p99_error_s=float(row.tpot_p99_error_s),
        confirmed_by_simulation=bool(row.confirmed_by_simulation),
    )
    t0 = time.perf_counter()
    out.update(_simulate(c, traffic, r, limit))
    out["sim_s"] = time.perf_counter() - t0
    return out


def summarise(rows: list[dict[str, Any]]) -> None:
    """Print the scan's figures."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    feasible = frame[frame.kind == "feasible"]
    infeasible = frame[frame.kind == "infeasible"]
    print(
        f"cases {len(frame)}: feasible {len(feasible)}, infeasible by the SLO {len(infeasible)}, "
        f"cannot fit {int((frame.kind == 'does not fit').sum())}"
    )
    print(f"plans not minimal (brute-force scan, the planner's criterion): {int(feasible.not_minimal.sum())}")
    false_inf = int(infeasible.false_infeasible.sum()) if len(infeasible) else 0
    print(f"false infeasible (a count up to 256 or 10,000 passes with 4x quadrature points): {false_inf}")
    print(f"plan() per case: median {1e3 * frame.plan_s.median():.0f} ms")
    if feasible.empty:
        return
    for metric in ("ttft", "tpot"):
        ratio = feasible[f"{metric}_p99_s"] / feasible[f"sim_{metric}_p99_s"]
        err = (ratio - 1.0).abs()
        misses = int(feasible[f"{metric}_misses_in_simulation"].sum())
        print(
            f"p99 {metric.upper()} planner / simulator: median ratio {ratio.median():.3f}, median |error| "
            f"{100 * err.median():.1f} %, 90th percentile |error| {100 * err.quantile(0.9):.1f} %, "
            f"worst under-prediction {100 * (1 - ratio.min()):.1f} %; rows missing the SLO in simulation "
            f"(whole 99 % interval above it): {misses}"
        )
        rel = feasible[f"{metric}_p99_error_s"] / feasible[f"{metric}_p99_s"]
        print(
            f"  stated sampling error of the planner's p99 {metric.upper()}: median {100 * rel.median():.1f}%"
        )
    bins = pd.cut(feasible.utilization, [0.0, 0.3, 0.5, 0.6, 0.7, 1.0])
    by_load = feasible.assign(
        ttft=(feasible.ttft_p99_s / feasible.sim_ttft_p99_s - 1).abs(),
        tpot=(feasible.tpot_p99_s / feasible.sim_tpot_p99_s - 1).abs(),
        miss=feasible.ttft_misses_in_simulation | feasible.tpot_misses_in_simulation,
    ).groupby(bins, observed=True)
    print("by utilisation of the chosen row: rows, median |error| of p99 TTFT and TPOT, misses in simulation")
    for interval, g in by_load:
        print(
            f"  {interval}: {len(g)}, {100 * g.ttft.median():.1f} %, {100 * g.tpot.median():.1f} %, "
            f"{int(g.miss.sum())}"
        )
    print(f"rows with preemptions in simulation: {int((feasible.preemptions > 0).sum())}")
    for key in sorted(k[len("replicas_m") :] for k in frame.columns if k.startswith("replicas_m")):
        alt = frame[frame[f"replicas_m{key}"] > 0]
        both = feasible[feasible[f"replicas_m{key}"] > 0]
        gpus, gpus_alt = (both.replicas * both.tp).sum(), (both[f"replicas_m{key}"] * both.tp).sum()
        changed = int((both.replicas != both[f"replicas_m{key}"]).sum())
        errors = []
        for metric in ("ttft", "tpot"):
            err = (alt[f"{metric}_p99_s_m{key}"] / alt[f"sim_{metric}_p99_s_m{key}"] - 1.0).abs()
            errors.append(f"{100 * err.median():.1f} % / {100 * err.quantile(0.9):.1f} %")
        print(
            f"sampling_margin={key}: feasible {len(alt)}, of which miss their SLO in simulation (whole 99 % "
            f"interval above it): {int(alt[f'misses_m{key}'].eq(True).sum())}; on the {len(both)} rows "
            f"feasible under both it needs {gpus_alt:,} GPUs against {gpus:,} with "
            f"sampling_margin={frame.sampling_margin.iloc[0]:g} ({100 * (gpus_alt / gpus - 1):+.1f} %), "
            f"{changed} rows differ; median / 90th pct |error| of p99 TTFT {errors[0]}, TPOT {errors[1]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--csv", default=None, help="write one row per case here")
    parser.add_argument("--jsonl", default=None, help="append each case's row here as it finishes")
    parser.add_argument("--summarise", default=None, help="only print the figures of a --jsonl file")
    parser.add_argument("--first", default="", help="comma-separated cases to run before the others")
    parser.add_argument(
        "--resume", action="store_true", help="skip the cases already in --jsonl; summarise them all"
    )
    parser.add_argument("--sampling-margin", type=float, default=None, help="the plans' (default: plan()'s)")
    parser.add_argument(
        "--alternatives", default="0", help="comma-separated margins each case is also planned with"
    )
    parser.add_argument(
        "--engine",
        default="vllm",
        help="the serving engine of every plan: vllm, sglang, trtllm, or none "
        "(the kernels alone, the planner before session 19)",
    )
    args = parser.parse_args()
    if args.summarise:
        with open(args.summarise) as f:
            summarise([json.loads(line) for line in f if line.strip()])
        return
    engine = None if args.engine == "none" else args.engine
    todo = [{**c, "engine": engine} for c in cases(args.cases)]
    alternatives = tuple(float(x) for x in args.alternatives.split(",") if x.strip())
    rows = []
    if args.resume and args.jsonl:
        wanted = {f"{a:g}" for a in alternatives}
        with open(args.jsonl) as f:
            for line in filter(str.strip, f):
                row = json.loads(line)  # without the columns of margins not asked for this time
                rows.append(
                    {k: v for k, v in row.items() if (m := _MARGIN_KEY.search(k)) is None or m[1] in wanted}
                )
        done = {row["case"] for row in rows}
        todo = [c for c in todo if c["case"] not in done]
    t0 = time.perf_counter()
    job = functools.partial(run_case, margin=args.sampling_margin, alternatives=alternatives)
    first = {int(x) for x in args.first.split(",") if x.strip()}
    todo = [c for c in todo if c["case"] in first] + [c for c in todo if c["case"] not in first]
    with ProcessPoolExecutor(args.jobs) as pool:
        for future in as_completed([pool.submit(job, c) for c in todo]):
            row = future.result()
            rows.append(row)
            progress = f"case {row['case']}: {row['kind']} ({len(rows)}/{args.cases})"
            print(progress, file=sys.stderr, flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(row, default=float) + "\n")
    print(f"scan of {len(rows)} cases (seed {SEED}) in {time.perf_counter() - t0:.0f} s")
    if args.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)
    summarise(rows)


if __name__ == "__main__":
    main()
