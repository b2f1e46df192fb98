"""Model-free consistency of the public MoE tables: measured series that no work-based model can follow.

``python -m validation.public.moe_consistency DIR`` reads ``DIR/kernels/<system>/moe/...`` and, per system
and kernel (``<format>:<engine>:<kernel_source>``), compares each balanced-routing row with its *sibling*:
the same layer (hidden, intermediate, top-k, experts), tokens and TP with half the expert parallelism, or
the same EP with half the tensor parallelism. The sibling's GPU holds at least as much of every part of
the work: twice the experts (EP) or twice the width (TP) per expert, the same tokens and the same
balanced round robin (aiconfigurator's ``balanced_logits``, every expert ``T k / E`` pairs). A row measured
``SLOWER_RATIO`` x slower than its sibling is slower with strictly less work: a different kernel tactic or
a disturbed measurement, not the shape. Widths that are not a multiple of 16 are left out (Triton's
unaligned path is a real, modelled slowdown: ``costmodel.kernels.moe.ALIGNMENT_ELEMENTS``).

A *slow series* (one shape, every token count) is one whose median ratio to its sibling over the token
counts exceeds ``SLOWER_RATIO``; the report gives the share of rows in such series and of the rows of each
device, the share of its rows measured more than that slower than a sibling at all. It reads only
measurements, never a prediction.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from validation.public.families import moe as moe_adapter
from validation.public.reader import iter_tables

SLOWER_RATIO = 1.5
"""A row this many times slower than its sibling with at least its work is not explained by the work."""

LAYER = ("hidden_size", "inter_size", "topk", "num_experts", "num_tokens")


def sibling_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Balanced rows of one table with ``ratio`` = latency / the largest latency of its siblings (half the EP
    or half the TP, same layer and tokens); rows without a sibling are dropped."""
    keys = ["key", *LAYER, "moe_tp_size", "moe_ep_size"]
    base = rows[rows["distribution"] == "balanced"][[*keys, "latency"]]
    base = base.groupby(keys, as_index=False)["latency"].mean()
    ratios = []
    for halved in ("moe_ep_size", "moe_tp_size"):
        sibling = base.assign(**{halved: base[halved] * 2}).rename(columns={"latency": "sibling_latency"})
        ratios.append(base.merge(sibling, on=keys, how="inner"))
    both = pd.concat(ratios, ignore_index=True)
    width = both["inter_size"] / both["moe_tp_size"]
    both = both[np.mod(width, 16) == 0]
    both = both.groupby(keys, as_index=False)["sibling_latency"].max()
    both = both.merge(base, on=keys)
    return both.assign(ratio=both["latency"] / both["sibling_latency"])


def report(root: str | Path) -> pd.DataFrame:
    """Per system and kernel: balanced rows with a sibling, the share measured ``SLOWER_RATIO`` x slower than
    it, and the share of those rows whose whole series (all token counts) is that much slower."""
    out = []
    for table in iter_tables(root):
        if table.family != "moe":
            continue
        frame = table.frame.assign(key=moe_adapter.params_key(table.frame))
        ratios = sibling_ratios(frame)
        if ratios.empty:
            continue
        series = ["key", *LAYER[:-1], "moe_tp_size", "moe_ep_size"]
        ratios["series_ratio"] = ratios.groupby(series)["ratio"].transform("median")
        for key, group in ratios.groupby("key"):
            out.append(
                {
                    "system": table.system,
                    "kernel": key,
                    "rows": len(group),
                    "slower_rows": float((group["ratio"] > SLOWER_RATIO).mean()),
                    "slow_series_rows": float((group["series_ratio"] > SLOWER_RATIO).mean()),
                    "worst_ratio": float(group["ratio"].max()),
                }
            )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m validation.public.moe_consistency DIR", file=sys.stderr)
        return 2
    table = report(args[0])
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.max_colwidth", 60):
        print(table.round(3).to_string(index=False))
        total = table.groupby("system")[["rows"]].sum()
        for column in ("slower_rows", "slow_series_rows"):
            total[column] = (table[column] * table["rows"]).groupby(table["system"]).sum() / total["rows"]
        print("\nper system (balanced rows with a sibling):")
        print(total.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
