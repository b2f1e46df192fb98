"""The disaggregated TensorRT-LLM rows run the engine limits of their InferenceX recipe: which rows get them,
and what a recipe with fewer decode slots than clients does to the prediction."""

from __future__ import annotations

import shutil
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import PUBLIC_GPU as DATA

from validation.public.inferencex_disagg import LIMIT_COLUMNS, RECIPES, recipe_limits
from validation.public.silicon import predict_silicon

H100 = "dsr1_h100_trtllm_fp8_disagg_{isl}x1024_c{clients}_cfg494"


def test_no_two_recipes_run_the_same_deployment_at_the_same_concurrency() -> None:
    """A row is matched to one recipe: recipes of one deployment and lengths run disjoint client counts."""

    def deployment(r: object) -> tuple[object, ...]:
        fields = ("system", "precision", "isl", "osl", "prefill_workers", "prefill_gpus",
                  "prefill_attention_dp", "decode_workers", "decode_gpus", "decode_attention_dp",
                  "draft_tokens")  # fmt: skip
        return tuple(getattr(r, f) for f in fields)

    for a, b in combinations(RECIPES, 2):
        if deployment(a) == deployment(b):
            assert not set(a.concurrencies) & set(b.concurrencies), (a.source, b.source)
    for r in RECIPES:
        assert r.source.startswith("https://github.com/")
        assert "/blob/" in r.source
        assert min(r.prefill_max_batch_size, r.prefill_max_num_tokens, r.decode_max_batch_size) >= 1


def test_an_mtp_recipe_runs_only_rows_that_draft_its_depth(silicon_table: pd.DataFrame) -> None:
    """The H100 row of 117 clients states no workers; its one deployment (ctx1_gen3_tep16_batch32_eplb0_mtp3)
    drafts 3 tokens, and its recipe caps each decode worker at 32 sequences (96 slots for 117 clients). The
    same row said to draft nothing, or 1 token, matches no recipe."""
    from validation.public.inferencex_disagg_workers import DRAFT_TOKENS, master_workers

    rows = silicon_table[
        silicon_table["id"].str.startswith(
            "2026_03_25_deepseek_r1_h100_sxm_trtllm_fp8_disagg_1024x1024_c117_"
        )
    ]
    assert len(rows) == 1
    workers = master_workers(rows)[0]
    filled = rows.assign(**{c: workers[c] for c in workers.columns})
    assert filled[DRAFT_TOKENS].tolist() == [3]
    limits = recipe_limits(filled)
    assert limits.iloc[0].tolist() == [2, 2048, 32]
    for other in (0, 1):
        assert recipe_limits(filled.assign(**{DRAFT_TOKENS: other})).isna().all(axis=None)


def test_the_h100_rows_run_fewer_decode_slots_than_clients(silicon_table: pd.DataFrame) -> None:
    """Each 3-worker H100 deployment states 2, 3 and 10 clients per decode worker; its recipes set the decode
    workers' max_batch_size to 1, 2 and 8 (3, 6 and 24 slots for 6, 9 and 30 clients)."""
    ids = [H100.format(isl=isl, clients=c) for isl in (1024, 8192) for c in (6, 9, 30)]
    limits = recipe_limits(silicon_table.loc[ids])
    assert silicon_table.loc[ids, "decode_batch_size"].tolist() == [2, 3, 10, 2, 3, 10]
    assert limits["decode_batch_size"].tolist() == [1, 2, 8, 1, 2, 8]
    # a prefill rank takes 2 prompts of 1,024 tokens in a 2,048-token budget, 1 of 8,192 in 8,224
    assert limits["prefill_batch_size"].tolist() == [2, 2, 2, 1, 1, 1]
    assert limits["prefill_max_num_tokens"].tolist() == [2048] * 3 + [8224] * 3


def test_only_dynamo_trtllm_disaggregated_rows_match(silicon_table: pd.DataFrame) -> None:
    """Rows of another engine, image or mode, or without worker counts, never get a recipe's limits."""
    limits = recipe_limits(silicon_table)
    matched = limits.notna().all(axis=1)
    assert matched.sum() >= 20
    hit = silicon_table[matched]
    assert (hit["mode"] == "disagg").all()
    assert (hit["backend"] == "trtllm").all()
    assert hit["silicon_data_source"].str.contains("ai-dynamo/tensorrtllm-runtime").all()
    assert hit["prefill_num_workers"].notna().all()
    assert limits[~matched].isna().all(axis=None)
    assert list(limits.columns) == list(LIMIT_COLUMNS)


def test_clients_beyond_the_decode_slots_wait_for_one(tmp_path: Path, silicon_table: pd.DataFrame) -> None:
    """6 clients on 3 decode slots (the H100 recipe's max_batch_size 1 x 3 workers): the slots are always
    full, so the loop completes slots / ((osl - 1) TPOT) requests per second and, by Little's law, a
    request's TTFT is C / rate - (osl - 1) TPOT = (C / slots - 1) whole decodes: one at 6 clients, half of
    one at 9 on 6 slots (its prefill and transfer inside that wait). With the stated 2 and 3 slots per
    worker nothing waited for a slot."""
    ids = [H100.format(isl=1024, clients=c) for c in (6, 9)]
    silicon_table.loc[ids].to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    name = "deepseek-ai--DeepSeek-V3_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    rows = predict_silicon(tmp_path, {}).set_index("id")
    decode_s = (1024 - 1) * rows["predicted_tpot_ms"] / 1e3
    waits = (rows["predicted_ttft_ms"] / 1e3 / decode_s).loc[ids].to_numpy()
    np.testing.assert_allclose(waits, [6 / 3 - 1, 9 / 6 - 1], rtol=1e-6)


def test_every_b200_recipe_states_its_decode_moe_backend_by_its_decode_layout() -> None:
    # as read: every tensor-parallel decode pool runs TRTLLM (trtllm-gen); an fp8 attention-DP pool runs
    # DEEPGEMM except the 8k1k stp ones, and every fp4 attention-DP pool CUTLASS (its nvfp4 experts); no H100
    # recipe's is read
    from validation.public.inferencex_disagg import RECIPES

    for recipe in RECIPES:
        if recipe.system != "b200_sxm":
            assert recipe.decode_moe_backend is None, recipe.source
        elif not recipe.decode_attention_dp:
            assert recipe.decode_moe_backend == "TRTLLM", recipe.source
        elif recipe.precision == "fp8":
            assert recipe.decode_moe_backend in ("TRTLLM", "DEEPGEMM"), recipe.source
        else:
            assert (recipe.precision, recipe.decode_moe_backend) == ("fp4", "CUTLASS"), recipe.source


def test_only_the_h100_attention_dp_decode_recipes_force_deepep() -> None:
    """As read: every H100 recipe whose decode workers run 16 attention-DP ranks (two 8-GPU nodes) forces
    DeepEP's normal all-to-all in its decode environment; no tensor-parallel decode recipe and no B200 one
    forces any."""
    for recipe in RECIPES:
        two_node_adp = recipe.system == "h100_sxm" and recipe.decode_attention_dp and recipe.decode_gpus == 16
        assert recipe.decode_alltoall == ("DeepEP" if two_node_adp else None), recipe.source


def test_only_rows_of_a_deepep_recipe_decode_without_graphs(silicon_table: pd.DataFrame) -> None:
    """recipe_decode_graphs is False exactly on the rows its DeepEP recipes run; every other row (the graphed
    recipes, B200, other engines, rows no recipe matches) keeps its CUDA graphs."""
    from validation.public.inferencex_disagg import recipe_decode_graphs
    from validation.public.inferencex_disagg_workers import DRAFT_TOKENS, WORKER_COLUMNS, master_workers

    # the deployment of the master configuration that ran a row stating none, as the prediction fills it
    workers = master_workers(silicon_table)[0]
    silicon_table = silicon_table.assign(
        **{c: workers[c].fillna(silicon_table[c]) for c in WORKER_COLUMNS},
        **{DRAFT_TOKENS: workers[DRAFT_TOKENS].fillna(0.0)},
    )
    graphs = recipe_decode_graphs(silicon_table)
    eager = silicon_table[~graphs]
    assert len(eager) >= 6
    assert (eager["system"] == "h100_sxm").all()
    assert (eager["backend"] == "trtllm").all()
    assert (eager["mode"] == "disagg").all()
    assert graphs[silicon_table["system"] == "b200_sxm"].all()
    limits = recipe_limits(silicon_table)
    matched = limits.notna().all(axis=1)
    assert (matched[~graphs]).all()  # a row without a recipe is never taken off its graphs


def test_every_b200_fp8_recipe_states_its_prefill_expert_split() -> None:
    """As read: every B200 fp8 8k1k recipe runs its 8-GPU prefill workers with ``moe_expert_parallel_size: 1``
    (each expert split 8 ways), every 1k1k one with 8 (one expert set per GPU); the H100 and B200 fp4
    recipes' split was not read (None, and only there: the rows' MoE columns stand)."""
    for recipe in RECIPES:
        fp8 = recipe.system == "b200_sxm" and recipe.precision == "fp8"
        expected = (1 if recipe.isl == 8192 else 8) if fp8 else None
        assert recipe.prefill_moe_ep == expected, recipe.source


def test_a_folder_split_stands_only_where_every_recipe_read_states_one() -> None:
    """The stand-in for rows no one recipe matches: B200 fp8 8-GPU prefill workers, 1k1k ep 8 and 8k1k ep 1;
    no key with an unread recipe (the H100 and fp4 folders) has one."""
    from validation.public.inferencex_disagg import folder_prefill_moe_ep

    assert folder_prefill_moe_ep() == {
        ("b200_sxm", "fp8", 1024, 1024, 8): 8,
        ("b200_sxm", "fp8", 8192, 1024, 8): 1,
    }


def test_an_unmatched_b200_fp8_8k1k_row_runs_its_folder_split_on_the_pool_gpus(
    silicon_table: pd.DataFrame,
) -> None:
    """A single-client B200 fp8 8k1k row (its workers unstated, so no recipe is matched) stating the master
    configuration's ep 8 runs every read 8k1k recipe's ep 1, each expert split over the worker's GPUs, counted
    as :class:`costmodel.specs.Deployment` counts a pool (``tp`` devices in each of ``attention_dp`` ranks):
    8 whether the row writes tp 8 / attention DP 1 or tp 1 / attention DP 8. A pool stating tp 8 and
    attention DP 8 is 64 GPUs, no 8k1k recipe's, so no split is read for it (its columns stand)."""
    from costmodel.specs import Deployment
    from validation.public.inferencex_disagg import recipe_prefill_split

    row = silicon_table.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp8_disagg_8192x1024_c1_tp8_ep8_1795"]
    assert row["prefill_moe_ep_size"] == 8
    assert pd.isna(row["prefill_num_workers"])
    layouts = [(8, 1), (1, 8), (8, 8)]
    rows = pd.DataFrame([row] * len(layouts)).reset_index(drop=True)
    rows["prefill_tp_size"] = [tp for tp, _ in layouts]
    rows["prefill_attention_dp_size"] = [dp for _, dp in layouts]
    split = recipe_prefill_split(rows, matched=pd.Series(False, index=rows.index))
    for (tp, dp), (moe_tp, moe_ep) in zip(layouts, split.to_numpy(), strict=True):
        gpus = Deployment(tp=tp, attention_dp=dp).moe_gpus
        if gpus == 8:
            assert (moe_tp, moe_ep) == (8.0, 1.0)
            assert moe_tp * moe_ep == gpus
        else:
            assert np.isnan(moe_tp)
            assert np.isnan(moe_ep)


def test_two_campaigns_of_one_recipe_run_its_prefill_expert_split(
    tmp_path: Path, silicon_table: pd.DataFrame
) -> None:
    """The 96-client B200 fp8 8k1k rows of the 2026-02-12 campaign (cfg554: prefill experts ep 8, as the
    master configuration writes them) and of 2026-03-23 (cfg669: moe_tp 8, as the recipe runs them) match one
    recipe, ctx1_gen6_tp8_batch16_eplb0_mtp0_96: both run its split, so both are predicted alike."""
    from validation.public.inferencex_disagg import recipe_prefill_moe_ep

    ids = [f"dsr1_b200_trtllm_fp8_disagg_8192x1024_c96_cfg{c}" for c in (554, 669)]
    rows = silicon_table.loc[ids]
    assert rows["prefill_moe_ep_size"].tolist() == [8, 1]
    assert recipe_prefill_moe_ep(rows).tolist() == [1.0, 1.0]
    rows.to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    name = "deepseek-ai--DeepSeek-V3_config.json"
    shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    predicted = predict_silicon(tmp_path, {}).set_index("id").loc[ids]
    assert predicted["covered"].all()
    for column in ("predicted_ttft_ms", "predicted_tpot_ms"):
        assert predicted[column].iloc[0] == predicted[column].iloc[1]
