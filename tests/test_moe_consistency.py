"""validation.public.moe_consistency: a row slower than its sibling with at least its work is flagged."""

from __future__ import annotations

import pandas as pd
import pytest

from validation.public.moe_consistency import SLOWER_RATIO, shared_cache_ratios, sibling_ratios


def _rows(latency: dict[tuple[int, int], float], inter_size: int = 2048) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"key": "bf16:trtllm:k", "hidden_size": 4096, "inter_size": inter_size, "topk": 2, "num_experts": 8,
             "num_tokens": 64, "moe_tp_size": tp, "moe_ep_size": ep, "distribution": "balanced", "latency": t}
            for (tp, ep), t in latency.items()
        ]
    )  # fmt: skip


def test_sibling_is_half_the_ep_or_half_the_tp_and_the_slowest_one_counts() -> None:
    # (tp 1, ep 2) has half the experts of (1, 1); (2, 2) has half the width of (1, 2) and half the experts
    # of (2, 1): its ratio is against the slower of its two siblings
    ratios = sibling_ratios(_rows({(1, 1): 1.0, (1, 2): 3.0, (2, 1): 0.5, (2, 2): 0.4}))
    by = {(r.moe_tp_size, r.moe_ep_size): r.ratio for r in ratios.itertuples()}
    assert by == {(1, 2): pytest.approx(3.0), (2, 1): pytest.approx(0.5), (2, 2): pytest.approx(0.4 / 3.0)}
    assert by[(1, 2)] > SLOWER_RATIO  # three times slower with half the work: not the shape


def test_misaligned_widths_and_power_law_rows_are_left_out() -> None:
    # 2 x 24 columns: TP 2 of 48 is misaligned (Triton's unaligned path is a modelled slowdown)
    assert sibling_ratios(_rows({(1, 1): 1.0, (2, 1): 5.0}, inter_size=48)).empty
    power = _rows({(1, 1): 1.0, (1, 2): 5.0}).assign(distribution="power_law_1.2")
    assert sibling_ratios(power).empty


def _cache_rows(latency: dict[tuple[int, int], float], engine: str = "trtllm") -> pd.DataFrame:
    """Two layers per top-k whose local shapes match (8 experts at EP 1, 16 at EP 2): one tuning-cache file."""
    return pd.DataFrame(
        [
            {"key": f"bf16:{engine}:k", "hidden_size": 4096, "inter_size": 1024, "topk": k, "num_experts": e,
             "moe_tp_size": 1, "moe_ep_size": e // 8, "num_tokens": 64, "distribution": "balanced",
             "latency": t}
            for (k, e), t in latency.items()
        ]
    )  # fmt: skip


def test_two_top_k_in_one_cache_file_compare_against_their_work() -> None:
    # top-10 does 10/8 of top-8's routed work: 1.2 x is the shape, 0.5 x (top-8 twice slower with less work)
    # and 2.5 x (twice beyond the work) are a tactic
    for measured, tactic in ((1.2, False), (0.5, True), (2.5, True)):
        rows = _cache_rows({(8, 8): 1.0, (8, 16): 1.0, (10, 8): measured, (10, 16): measured})
        (row,) = shared_cache_ratios(rows).itertuples()
        assert (row.topk_low, row.topk_high) == (8, 10)
        assert row.work == pytest.approx(1.25)
        assert row.ratio == pytest.approx(measured)
        assert row.tactic is tactic


def test_other_engines_and_single_top_k_files_are_left_out() -> None:
    assert shared_cache_ratios(_cache_rows({(8, 8): 1.0, (10, 8): 3.0}, engine="vllm")).empty
    assert shared_cache_ratios(_cache_rows({(8, 8): 1.0, (8, 16): 3.0})).empty
