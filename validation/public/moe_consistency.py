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

*Shared tuning caches* (TensorRT-LLM tables, :func:`shared_cache_ratios`): NVIDIA aiconfigurator's collector
(``collector/trtllm/collect_moe.py``, ``run_moe_torch``, https://github.com/ai-dynamo/aiconfigurator)
autotunes a series' tactics only when no cache file named ``<format>_<hidden>_<inter/tp>_<experts/ep>`` exists
yet (it loads the first file matching that prefix and then skips tuning), while TensorRT-LLM's autotuner keys
a tactic by the op's full input shapes, top-k included, and outside tuning answers a miss with the fallback
tactic (``AutoTuner.choose_one``, ``tensorrt_llm/_torch/autotuner.py``,
https://github.com/NVIDIA/TensorRT-LLM). Two layers with the same file name and different top-k
(``TUNING_CACHE_COLUMNS``) therefore run one tuned and one fallback tactic at every token count, whichever was
collected second. The report compares them at equal tokens and routing: the larger top-k has more work per
token (``k2 / k1`` of the routed pairs), so a median ratio below ``1 / SLOWER_RATIO`` (the smaller top-k is
that much slower with less work) or above ``SLOWER_RATIO x k2 / k1`` is a tactic, not the shape.
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


TUNING_CACHE_COLUMNS = ("hidden_size", "local_inter_size", "local_experts")
"""What the collector's tuning-cache file name holds besides the format (``<format>_<hidden>_<inter/tp>_
<experts/ep>``): layers equal in these and different in top-k share one file but not its tactics."""


def shared_cache_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Per TensorRT-LLM tuning-cache file (``key`` and :data:`TUNING_CACHE_COLUMNS`) whose layers have exactly
    two top-k values ``topk_low`` < ``topk_high``: ``ratio``, the median over tokens and routing of
    latency(top-k high) / latency(top-k low) (each the median over its layers at those tokens and routing),
    ``work`` = ``topk_high / topk_low`` and ``tactic`` (the ratio outside ``[1 / SLOWER_RATIO,
    SLOWER_RATIO x work]``). Rows of other engines, and files with one or more than two top-k, are left
    out."""
    trt = rows[rows["key"].astype(str).str.split(":").str[1] == "trtllm"]
    trt = trt.assign(
        local_inter_size=trt["inter_size"] // trt["moe_tp_size"],
        local_experts=trt["num_experts"] // trt["moe_ep_size"],
    )
    file_key = ["key", *TUNING_CACHE_COLUMNS]
    out = []
    for name, group in trt.groupby(file_key):
        topks = sorted(group["topk"].unique())
        if len(topks) != 2:
            continue
        at = group.groupby(["topk", "num_tokens", "distribution"])["latency"].median()
        ratio = (at.loc[topks[1]] / at.loc[topks[0]]).dropna()
        if ratio.empty:
            continue
        work = topks[1] / topks[0]
        median = float(ratio.median())
        out.append(
            {
                **dict(zip(file_key, name, strict=True)),
                "topk_low": int(topks[0]),
                "topk_high": int(topks[1]),
                "ratio": median,
                "work": work,
                "tactic": bool(median < 1.0 / SLOWER_RATIO or median > SLOWER_RATIO * work),
            }
        )
    return pd.DataFrame(out)


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
        shared = shared_report(args[0])
        if not shared.empty:
            print("\nTensorRT-LLM tuning-cache files shared by two top-k (median ratio of their latencies):")
            print(shared.round(3).to_string(index=False))
    return 0


def shared_report(root: str | Path) -> pd.DataFrame:
    """Per system and kernel: tuning-cache files shared by two top-k values (:func:`shared_cache_ratios`),
    the share whose ratio says a tactic, and the quartiles of the ratio."""
    out = []
    for table in iter_tables(root):
        if table.family != "moe":
            continue
        ratios = shared_cache_ratios(table.frame.assign(key=moe_adapter.params_key(table.frame)))
        for key, group in ratios.groupby("key") if not ratios.empty else []:
            out.append(
                {
                    "system": table.system,
                    "kernel": key,
                    "files": len(group),
                    "tactic": float(group["tactic"].mean()),
                    "ratio_q25": float(group["ratio"].quantile(0.25)),
                    "ratio_q50": float(group["ratio"].median()),
                    "ratio_q75": float(group["ratio"].quantile(0.75)),
                }
            )
    return pd.DataFrame(out)


if __name__ == "__main__":
    raise SystemExit(main())
