"""validation.public.moe_consistency: a row slower than its sibling with at least its work is flagged."""

from __future__ import annotations

import pandas as pd
import pytest

from validation.public.moe_consistency import SLOWER_RATIO, sibling_ratios


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
