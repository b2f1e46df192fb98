"""The disaggregated InferenceX rows that state no workers run the one deployment of InferenceX's master
configuration that names them, or stay refused with the reason; the rows that state theirs do not move."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PUBLIC_GPU as DATA

import validation.public.silicon as silicon
from validation.public.inferencex_disagg_workers import (
    DEPLOYMENTS,
    DRAFT_TOKENS,
    ENTRIES,
    MASTER,
    SGLANG_MTP_DRAFT_TOKENS,
    WORKER_COLUMNS,
    draft_tokens,
    master_workers,
)

R1 = "2026_03_25_deepseek_r1_{}"


def _row(silicon_table: pd.DataFrame, name: str) -> pd.DataFrame:
    return silicon_table.loc[[R1.format(name)]]


def test_the_table_is_the_master_configuration_as_written() -> None:
    """Every deployment belongs to a transcribed entry, runs whole experts on whole workers, and the
    source is one file at one commit."""
    assert MASTER.startswith("https://github.com/SemiAnalysisAI/InferenceX/blob/")
    assert len(MASTER.split("/blob/")[1].split("/")[0]) == 40
    for d in DEPLOYMENTS:
        assert d.entry in ENTRIES
        assert d.concurrencies
        assert min(d.concurrencies) >= 1
        for pool in (d.prefill, d.decode):
            assert pool.workers >= 1
            assert pool.tp % pool.ep == 0
        # the recipe names its MTP depth (mtp0: none); the SGLang MTP deployments are their entries' own
        if d.entry.endswith("-trt"):
            assert d.mtp == ("_mtp0" not in d.recipe)
        else:
            assert d.mtp == (d.entry.endswith("-mtp") or "h100" in d.entry)


def test_a_row_gets_its_one_deployment(silicon_table: pd.DataFrame) -> None:
    """B200 fp4 TensorRT-LLM at 4,096 clients: ctx1_gen1_dep8_batch512, one prefill worker of 4
    attention-DP ranks, one decode worker of 8, 4,096 / 8 = 512 clients per decode rank."""
    rows = _row(silicon_table, "b200_sxm_trtllm_fp4_disagg_1024x1024_c4096_tp4_0_ep4_0_1166")
    workers, why = master_workers(rows)
    got = workers.iloc[0].to_dict()
    assert why.iloc[0] == ""
    assert got == {
        "prefill_num_workers": 1, "prefill_batch_size": 1, "prefill_tp_size": 1, "prefill_pp_size": 1,
        "prefill_attention_dp_size": 4, "prefill_moe_tp_size": 1, "prefill_moe_ep_size": 4,
        "decode_num_workers": 1, "decode_batch_size": 512, "decode_tp_size": 1, "decode_pp_size": 1,
        "decode_attention_dp_size": 8, "decode_moe_tp_size": 1, "decode_moe_ep_size": 8,
        DRAFT_TOKENS: 0,
    }  # fmt: skip


def test_layouts_and_the_busiest_rank(silicon_table: pd.DataFrame) -> None:
    """H100 at 4,916 clients: 2 prefill workers, one decode worker of 16 attention-DP ranks, ceil(4,916 / 16)
    = 308 clients on the busiest rank; SGLang fp4 8k1k at 16 clients: a tp-4 prefill worker and one tp-8
    decode worker without expert parallelism (ep 1: each expert over 8 GPUs), all 16 clients on it."""
    h100 = master_workers(
        _row(silicon_table, "h100_sxm_trtllm_fp8_disagg_1024x1024_c4916_tp16_0_ep16_0_873")
    )[0]
    assert h100.iloc[0][["prefill_num_workers", "decode_num_workers", "decode_attention_dp_size"]].tolist() == [
        2, 1, 16,
    ]  # fmt: skip
    assert h100.iloc[0]["decode_batch_size"] == 308
    c16 = silicon_table["id"].str.startswith(
        "2026_03_25_deepseek_r1_b200_sxm_sglang_fp4_disagg_8192x1024_c16_"
    )
    # the STP entry's image (the MTP entry's, without "-runtime", runs the same deployment with MTP)
    sglang = silicon_table[
        c16 & silicon_table["silicon_data_source"].str.endswith("sglang:v0.5.8.post1-cu130-runtime")
    ]
    workers, why = master_workers(sglang)
    assert len(sglang) >= 1
    assert (why == "").all()
    assert (workers["prefill_tp_size"] == 4).all()
    assert (workers["prefill_moe_ep_size"] == 1).all()
    assert (workers["decode_moe_tp_size"] == 8).all()
    assert (workers["decode_batch_size"] == 16).all()


def test_ambiguous_and_unknown_rows_stay_refused(silicon_table: pd.DataFrame) -> None:
    """10 clients: an STP and an MTP deployment of the same workers both run it (which one a row is, the
    sample does not say); 160 clients: no deployment runs it."""
    ids = [
        R1.format("b200_sxm_trtllm_fp4_disagg_1024x1024_c10_tp4_0_ep4_0_1152"),
        R1.format("b200_sxm_sglang_fp8_disagg_8192x1024_c160_tp8_0_ep1_0_540"),
    ]
    workers, why = master_workers(silicon_table.loc[ids])
    assert workers.isna().all(axis=None)
    assert why.iloc[0].startswith("2 deployments of the InferenceX master config run")
    assert "(1 with MTP)" in why.iloc[0]
    assert why.iloc[1].startswith("no deployment of the InferenceX master config runs")


def test_a_row_of_one_mtp_deployment_runs_it_with_its_recipes_drafts(silicon_table: pd.DataFrame) -> None:
    """875 clients: only ctx1_gen5_dep8_batch16_eplb0_mtp3 runs it, so the row gets its workers and its
    decode pool drafts 3 tokens (the recipe's mtp3); an SGLang MTP deployment drafts 2 (its recipes'
    speculative-num-steps)."""
    rows = silicon_table.loc[[R1.format("b200_sxm_trtllm_fp4_disagg_1024x1024_c875_tp4_0_ep4_0_1138")]]
    workers, why = master_workers(rows)
    assert why.iloc[0] == ""
    assert workers.iloc[0][["decode_num_workers", "decode_attention_dp_size", DRAFT_TOKENS]].tolist() == [
        5, 8, 3,
    ]  # fmt: skip
    assert workers.iloc[0]["decode_batch_size"] == np.ceil(875 / 40)
    for d in DEPLOYMENTS:
        k = draft_tokens(d)
        assert (k > 0) == d.mtp
        if d.mtp and d.entry.endswith("-trt"):
            assert f"_mtp{k}" in d.recipe
        elif d.mtp:
            assert k == SGLANG_MTP_DRAFT_TOKENS


def test_a_row_whose_gpus_differ_matches_nothing(silicon_table: pd.DataFrame) -> None:
    """The row's own layout must be the deployment's: a decode worker of 4 GPUs is not a dep8 worker."""
    rows = _row(silicon_table, "b200_sxm_trtllm_fp4_disagg_1024x1024_c4096_tp4_0_ep4_0_1166").copy()
    rows["decode_tp_size"] = 4.0
    workers, why = master_workers(rows)
    assert workers.isna().all(axis=None)
    assert why.iloc[0].startswith("no deployment")


def test_rows_that_state_their_deployment_or_one_client_are_left_alone(silicon_table: pd.DataFrame) -> None:
    stated = silicon_table[(silicon_table["mode"] == "disagg") & silicon_table["decode_num_workers"].notna()]
    single = silicon_table[
        silicon_table["id"].str.startswith("2026_03_25_deepseek_r1_") & (silicon_table["concurrency"] == 1)
    ]
    agg = silicon_table[silicon_table["mode"] == "agg"].head(200)
    for rows in (stated, single, agg):
        workers, why = master_workers(rows)
        assert len(rows)
        assert workers[list(WORKER_COLUMNS)].isna().all(axis=None)
        assert (why == "").all()
        if rows is not single:
            assert workers[DRAFT_TOKENS].isna().all()
    assert list(workers.columns) == [*WORKER_COLUMNS, DRAFT_TOKENS]


def test_a_single_client_drafts_where_every_candidate_deployment_does(silicon_table: pd.DataFrame) -> None:
    """The H100 SGLang entry runs MTP deployments only (EAGLE, 2 drafts), so its single-client rows get 2
    draft tokens whichever ran them; the B200 TensorRT-LLM single-client rows' one candidate runs none."""
    single = silicon_table[
        silicon_table["id"].str.startswith("2026_03_25_deepseek_r1_") & (silicon_table["concurrency"] == 1)
    ]
    drafts = master_workers(single)[0][DRAFT_TOKENS]
    h100 = (single["system"] == "h100_sxm") & (single["backend"] == "sglang")
    assert h100.sum() >= 3
    assert (drafts[h100] == SGLANG_MTP_DRAFT_TOKENS).all()
    assert (drafts[~h100].fillna(0) == 0).all()


def _none(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """No deployment filled, but the drafts of the single-client rows kept (the fill is what is tested)."""
    empty = pd.DataFrame(np.nan, index=rows.index, columns=[*WORKER_COLUMNS, DRAFT_TOKENS])
    workers = master_workers(rows)[0]
    single = workers[list(WORKER_COLUMNS)].isna().all(axis=1)
    empty.loc[single, DRAFT_TOKENS] = workers.loc[single, DRAFT_TOKENS]
    return empty, pd.Series("", index=rows.index, dtype=object)


def test_covered_rows_do_not_move(
    tmp_path: Path, silicon_table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the stated disaggregated DeepSeek rows, the single-client ones and rows the fill covers: the rows
    covered without the fill are predicted identically with it, the filled rows are covered with it and
    refused without it."""
    filled = master_workers(silicon_table)[0].notna().all(axis=1)
    stated = (silicon_table["mode"] == "disagg") & silicon_table["decode_num_workers"].notna()
    single = silicon_table["id"].str.startswith("2026_03_25_deepseek_r1_") & (
        silicon_table["concurrency"] == 1
    )
    deepseek = silicon_table["model_path"].str.startswith("deepseek-ai/")
    rows = silicon_table[(filled | stated | single) & deepseek]
    rows.to_csv(tmp_path / "silicon_sample.csv", index=False)
    (tmp_path / "model_configs").mkdir()
    for name in ("deepseek-ai--DeepSeek-V3_config.json", "deepseek-ai--DeepSeek-R1_config.json"):
        shutil.copy(DATA / "model_configs" / name, tmp_path / "model_configs" / name)
    after = silicon.predict_silicon(tmp_path, {}).set_index("id")
    monkeypatch.setattr(silicon, "master_workers", _none)
    before = silicon.predict_silicon(tmp_path, {}).set_index("id")
    was = before.index[before["covered"]]
    assert len(was) >= 20
    for metric in ("predicted_ttft_ms", "predicted_tpot_ms"):
        np.testing.assert_array_equal(after.loc[was, metric].to_numpy(), before.loc[was, metric].to_numpy())
    new = rows.index[filled[rows.index]]
    assert not before.loc[new, "covered"].any()
    assert (
        before.loc[new, "reason"].eq("disagg row without prefill/decode worker counts and batch sizes").all()
    )
    assert after.loc[new, "covered"].sum() >= 0.9 * len(new)
    assert (before["split"] == after["split"]).all()


def test_filled_rows_agree_with_their_twins_that_state_a_deployment(silicon_table: pd.DataFrame) -> None:
    """An independent check of the rule (not an input to it): some rows repeat the measured TTFT and TPOT
    of a db-dump row that states its deployment (the same run in two files). Every filled row with such a
    twin gets the twin's worker counts, layouts and decode batch."""
    workers = master_workers(silicon_table)[0]
    filled = workers.notna().all(axis=1)
    stated = silicon_table[(silicon_table["mode"] == "disagg") & silicon_table["decode_num_workers"].notna()]
    twins = stated.drop_duplicates(["silicon_ttft_ms", "silicon_tpot_ms"]).set_index(
        ["silicon_ttft_ms", "silicon_tpot_ms"]
    )
    columns = [c for c in WORKER_COLUMNS if "moe" not in c and "pp" not in c]
    checked = 0
    for i in silicon_table.index[filled]:
        key = (silicon_table.at[i, "silicon_ttft_ms"], silicon_table.at[i, "silicon_tpot_ms"])
        if key in twins.index:
            twin = twins.loc[key]
            assert workers.loc[i, columns].tolist() == twin[columns].tolist(), i
            checked += 1
    assert checked >= 30
