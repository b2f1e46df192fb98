"""Benchmark: the CPU time of :func:`costmodel.capacity.plan` per plan-scan case, the kernels alone
(``engine=None``) against vLLM's costs (``engine="vllm"``), alternating which runs first per case.

Run: ``python -m benchmarks.plan_time [--cases 60] [--first 0] [--out plans.pkl]``. Each case of
:mod:`benchmarks.bench_plan_scan` (seed 2026) is planned on its one (device, TP) candidate with each
engine; prints each case's CPU milliseconds and, at the end, the median CPU time per engine and their
ratio. CPU time (:func:`time.process_time`) is the work without the waits for a core, so it holds on a
shared machine better than the wall time. ``--out`` pickles each case's plans (pandas frames) with the
times, to compare two revisions' answers exactly. Used in ``docs/serving.md`` (the plan scan with vLLM's
costs, session 20: plan time before -> after).
"""

from __future__ import annotations

import argparse
import pickle
import time
import warnings
from typing import Any

import numpy as np

from benchmarks.bench_plan_scan import cases
from costmodel.capacity import SLO, plan
from costmodel.registry import load_hardware
from costmodel.serving import Lengths, Traffic

DEVICES = ("h100-sxm", "h200", "a100-80gb", "l40s", "mi300x", "a10g", "l4")
"""The scan's devices, loaded before the clock starts [-]."""


def _plan(c: dict[str, Any], engine: str | None) -> Any:
    traffic = Traffic(
        c["rate_per_s"],
        Lengths.lognormal(c["prompt_mean"], c["prompt_sigma"], max_tokens=c["prompt_cap"]),
        Lengths.geometric(c["output_mean"], max_tokens=c["output_cap"]),
    )
    slo = SLO(ttft_s=c["ttft_s"], tpot_s=c["tpot_s"])
    return plan(c["model"], [c["hardware"]], traffic, slo, tp=(c["tp"],), engine=engine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=60, help="scan cases 0..N-1")
    parser.add_argument("--first", type=int, default=0, help="first case timed")
    parser.add_argument("--out", default=None, help="pickle of the plans and times")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    for name in DEVICES:
        load_hardware(name)
    _plan(cases(1)[0], "vllm")  # imports and first-call costs off the clock
    rows = []
    for c in cases(args.cases)[args.first :]:
        rec: dict[str, Any] = {"case": c["case"]}
        for engine in (None, "vllm") if c["case"] % 2 else ("vllm", None):
            key = "none" if engine is None else engine
            start = time.process_time()
            rec[f"frame_{key}"] = _plan(c, engine)
            rec[f"cpu_{key}"] = time.process_time() - start
        rows.append(rec)
        print(c["case"], f"{rec['cpu_none'] * 1e3:.0f} {rec['cpu_vllm'] * 1e3:.0f} ms", flush=True)
    if args.out:
        with open(args.out, "wb") as f:
            pickle.dump(rows, f)
    alone, vllm = (np.array([r[f"cpu_{k}"] for r in rows]) for k in ("none", "vllm"))
    print(
        f"median CPU ms: kernels alone {1e3 * np.median(alone):.0f}, vllm {1e3 * np.median(vllm):.0f}, "
        f"ratio of medians {np.median(vllm) / np.median(alone):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
