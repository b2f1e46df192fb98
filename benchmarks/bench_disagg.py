"""Benchmark: the disaggregated closed loop (``costmodel.disagg``), its speed in a deployment search and its
accuracy on the disaggregated rows of the public serving sample.

Run: ``python -m benchmarks.bench_disagg``. Prints the median time of one ``disagg_pairs`` call over every
(prefill, decode) layout pair of Llama-3-70B on H100 (tp 1/2/4/8 x bf16/fp8, 8 worker ratios x 11 client
counts), then per system x engine x split of ``silicon_sample.csv``'s ``mode == "disagg"`` rows: rows
covered / present and the median / p90 |error| (median signed) of TTFT and TPOT, with the committed
per-engine parameters, and the uncovered rows by reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.timing import median_s
from costmodel.disagg import disagg_pairs
from costmodel.serving import Engine

DATA = Path(__file__).resolve().parents[1] / "validation" / "data" / "public-gpu"


def speed() -> None:
    engines = [
        Engine.build("llama-3-70b", "h100-sxm", tp=tp, weight_dtype=w, max_batch_size=256)
        for tp in (1, 2, 4, 8)
        for w in ("bf16", "fp8")
    ]
    pairs = [(p, d) for p in engines for d in engines if p.workload.weight_dtype == d.workload.weight_dtype]
    X = np.array([1, 1, 1, 2, 2, 3, 1, 1])[:, None]
    Y = np.array([1, 2, 4, 1, 3, 1, 3, 8])[:, None]
    C = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])[None, :]

    def call() -> object:
        return disagg_pairs(pairs, prefill_workers=X, decode_workers=Y, concurrency=C, isl=4000, osl=500)

    call()  # warm imports
    t = median_s(call, repeats=5)
    print(
        f"disagg_pairs(): {len(pairs)} layout pairs x {X.size} worker ratios x {C.size} client counts: "
        f"median {t * 1e3:.0f} ms over 5 runs"
    )


def accuracy() -> None:
    from validation.public.silicon import predict_silicon, uncovered_reasons

    rows = predict_silicon(DATA)
    disagg = rows[rows["mode"] == "disagg"]
    print(
        f"\ndisaggregated rows of silicon_sample.csv: {int(disagg['covered'].sum())} / {len(disagg)} covered"
    )
    print(f"{'system':<9} {'engine':<7} {'split':<11} {'rows':>9}  {'TTFT med / p90 (signed)':<26} TPOT")
    for (system, engine, split), group in disagg.groupby(["system", "backend", "split"], sort=True):
        covered = group[group["covered"]]
        cells = []
        for metric in ("ttft", "tpot"):
            measured = covered[f"{metric}_ms"].to_numpy(float)
            error = covered[f"predicted_{metric}_ms"].to_numpy(float) / measured - 1
            if not error.size:
                cells.append("-")
                continue
            med, p90 = np.median(np.abs(error)), np.percentile(np.abs(error), 90)
            cells.append(f"{med:4.0%} / {p90:4.0%} ({np.median(error):+.0%})")
        counts = f"{len(covered):>4} / {len(group):<4}"
        print(f"{system:<9} {engine:<7} {split:<11} {counts} {cells[0]:<26} {cells[1]}")
    print("not covered:")
    for reason, n in uncovered_reasons(disagg).items():
        print(f"  {n:>5}  {reason}")


def main() -> None:
    speed()
    accuracy()


if __name__ == "__main__":
    main()
