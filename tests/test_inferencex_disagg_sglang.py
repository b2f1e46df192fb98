"""The disaggregated SGLang rows run the engine limits of their srt-slurm recipe: which rows get them, how a
worker's limits become a rank's, and what a larger prefill budget does at one client."""

from __future__ import annotations

from itertools import combinations, pairwise

import numpy as np
import pandas as pd
from conftest import PUBLIC_GPU as DATA

from costmodel.disagg import DisaggParams, decode_slot_share, disagg_parts
from costmodel.specs import ModelProfile
from validation.public.inferencex_disagg import (
    SGLANG_LIMIT_COLUMNS,
    SGLANG_RECIPES,
    recipe_limits,
    sglang_rank_limits,
    sglang_recipe_limits,
)
from validation.public.silicon import _load_models, _pool_engine, row_formats

FP8 = "dsr1_b200_sglang_fp8_disagg_{isl}x1024_c{clients}_cfg{cfg}"


def test_no_two_recipes_run_the_same_deployment_at_the_same_concurrency() -> None:
    fields = ("system", "precision", "isl", "osl", "prefill_workers", "prefill_gpus", "prefill_attention_dp",
              "decode_workers", "decode_gpus", "decode_attention_dp", "draft_tokens")  # fmt: skip
    for a, b in combinations(SGLANG_RECIPES, 2):
        if all(getattr(a, f) == getattr(b, f) for f in fields):
            assert not set(a.concurrencies) & set(b.concurrencies), (a.source, b.source)
    for r in SGLANG_RECIPES:
        assert r.source.startswith("https://github.com/")
        assert "/blob/" in r.source
        assert r.kv_dtype == ("bf16" if r.system == "h100_sxm" else "fp8")


def test_a_workers_limits_are_shared_by_its_attention_dp_ranks(silicon_table: pd.DataFrame) -> None:
    """SGLang divides chunked-prefill-size and max-running-requests among a worker's attention-DP ranks:
    max-tpt-dep8-1p1d's 32,768-token budget is 4,096 per rank (an 8,192-token prompt in two chunks), the
    tp-8 low-latency worker's stays whole; the later recipes cap a rank at one prompt of max-prefill-tokens
    8,192. Their dp-8 decode worker of max-running-requests 256 holds 32 sequences per rank, fewer than the
    36 clients per rank it ran at 288 clients, so 4 of them wait for a slot; at 160 clients (20 a rank) it
    still has 32 slots a rank, and the others their whole share of max-running-requests (1,024 over 8
    ranks, 512 on one tp-8 rank), however few clients they serve."""
    ids = [FP8.format(isl=8192, clients=128, cfg=457), FP8.format(isl=8192, clients=64, cfg=455),
           FP8.format(isl=8192, clients=288, cfg=641), FP8.format(isl=8192, clients=160, cfg=641)]  # fmt: skip
    limits = sglang_recipe_limits(silicon_table.loc[ids])
    assert limits["prefill_max_num_tokens"].tolist() == [4096, 32768, 8192, 8192]
    assert limits["prefill_batch_size"].tolist() == [128, 512, 1, 1]
    assert silicon_table.loc[ids, "decode_batch_size"].tolist() == [16, 64, 36, 20]
    assert limits["decode_batch_size"].tolist() == [128, 512, 32, 32]
    assert (limits["kv_dtype"] == "fp8").all()


def test_every_stated_b200_sglang_row_has_one_recipe_and_no_other_row_does(
    silicon_table: pd.DataFrame,
) -> None:
    """The B200 SGLang disaggregated rows that state their workers all match a recipe; rows of another
    engine, mode or system, and the H100 single-client rows (no recipe of their layout read), match none.
    The TensorRT-LLM table never matches an SGLang row."""
    limits = sglang_recipe_limits(silicon_table)
    matched = limits["kv_dtype"].notna()
    sglang = (
        (silicon_table["backend"] == "sglang")
        & (silicon_table["mode"] == "disagg")
        & (silicon_table["system"] == "b200_sxm")
    )
    stated = (
        sglang & silicon_table["prefill_num_workers"].notna() & silicon_table["decode_batch_size"].notna()
    )
    assert stated.sum() >= 20
    assert (matched == stated).all()
    assert limits[~matched].isna().all(axis=None)
    assert list(limits.columns) == list(SGLANG_LIMIT_COLUMNS)
    assert recipe_limits(silicon_table[sglang]).isna().all(axis=None)


def test_a_decode_worker_below_its_slots_queues_no_client() -> None:
    """A decode rank's batch is its share of max-running-requests whatever the clients (SGLang's decode
    scheduler admits a request while fewer run), so where a worker's slots exceed every client of the pool
    no client waits for one, at any dispersion of the routing (a worker's share never exceeds the pool's
    clients); capped at the clients per worker, as before session 11, the same 16 clients on 5 workers
    left 1.6 of them waiting for a slot at the binomial dispersion."""
    recipe = SGLANG_RECIPES[0]
    assert sglang_rank_limits(recipe)[2] == recipe.decode_max_running_requests
    for dispersion in (0.0, 0.5, 1.0):
        batch, waiting = decode_slot_share(16.0, 5.0, sglang_rank_limits(recipe)[2], dispersion=dispersion)
        assert waiting == 0.0
        assert np.isclose(batch, 16.0 / 5.0)
    assert decode_slot_share(16.0, 5.0, 4.0, dispersion=1.0)[1] > 1.0


def test_a_larger_prefill_budget_never_makes_one_clients_ttft_larger() -> None:
    """One client, one 8,192-token prompt: a budget below the prompt splits it into passes that each read
    the weights again; from the prompt's length up, one pass. TTFT never grows with the budget, and the KV
    format the recipe sets (fp8) moves half the bytes of bf16 between the pools."""
    model_path = "deepseek-ai/DeepSeek-V3"
    model = _load_models(DATA / "model_configs", [model_path])[model_path]
    assert isinstance(model, ModelProfile)
    formats = row_formats(model, "sglang", "b200_sxm", "fp8", "fp8_block")

    def ttft(budget: int, kv: str | None = "fp8") -> float:
        engines = [
            _pool_engine(model, formats, "b200_sxm", "sglang", "fp8", 8, 1, 1, {}, batch,
                         budget if batch > 1 else None, kv)
            for batch in (512, 1)
        ]  # fmt: skip
        parts = disagg_parts(*engines, prefill_workers=np.array([1.0]), decode_workers=np.array([1.0]),
                             concurrency=np.array([1.0]), isl=np.array([8192.0]), osl=np.array([1024.0]))  # fmt: skip
        return float(parts.result(DisaggParams()).ttft_s[0])

    times = [ttft(b) for b in (2048, 4096, 8192, 16384, 32768)]
    assert all(b <= a * (1 + 1e-9) for a, b in pairwise(times))
    assert times[0] > times[-1]
    assert ttft(32768, "fp8") <= ttft(32768, "bf16")
