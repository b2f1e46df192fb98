"""The InferenceX launch scripts (validation/public/inferencex.py): every entry a cited script with its own
engine's flags, and the table-wide lookup and the vectorised rules the same as the one-row lookup and
each row alone."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import PUBLIC_GPU as DATA

from validation.public.inferencex import (
    REEXPORTED_FILES,
    SCRIPT_MODELS,
    SCRIPTS,
    SOURCE_FILES,
    attention_dp_balance,
    is_inferencex,
    isl_budget,
    launch_script,
    measured_dates,
    moe_backends,
    recv_interval,
    scheduler_flags,
    scripts_of,
)
from validation.public.reader import SYSTEM_PROFILES
from validation.public.silicon import read_silicon


@pytest.mark.parametrize("key", list(SCRIPTS), ids=lambda key: "/".join(key))
def test_every_script_is_one_engine_model_and_system_read_at_a_commit(key: tuple[str, ...]) -> None:
    assert len(key) in (3, 4, 5, 6)
    assert key[0] in ("vllm", "sglang", "trtllm")
    assert key[2] in SYSTEM_PROFILES
    script = SCRIPTS[key]
    assert re.fullmatch(
        r"https://github\.com/SemiAnalysisAI/InferenceX/blob/[0-9a-f]{40}/\S+\.sh", script.source
    )
    # each engine's own flags only
    if key[0] != "vllm":
        assert script.cuda_graph_max_tokens is None
        assert script.expert_activation_dtype is None
        assert script.budget_isl_multiple is None
        assert script.gpu_memory_utilization is None
    if key[0] != "trtllm":
        assert script.max_num_tokens is None
        assert script.batch_wait is None
        assert script.attention_dp_balance is None
    if key[0] != "sglang":
        assert script.scheduler_recv_interval is None
        assert script.speculative is None
    # a script that drafts states its drafting flags (steps, top-k, draft tokens), and only such a one,
    # and says what of it is not modelled
    assert (script.speculative is None) == (script.speculative_flags is None)
    assert script.speculative is None or script.not_modelled is not None


def test_a_script_model_alias_is_its_engines_alone() -> None:
    """The database dump's TensorRT-LLM DeepSeek-V3 rows ran the DeepSeek-R1 scripts, its SGLang fp4 ones
    ``dsr1_fp4_b200.sh``; its SGLang fp8 DeepSeek-V3 rows keep SGLang's defaults (no source names their
    script)."""
    assert set(SCRIPT_MODELS) == {
        ("trtllm", "deepseek-ai/DeepSeek-V3"),
        ("sglang", "deepseek-ai/DeepSeek-V3", "fp4"),
    }
    v3, r1 = "deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-R1"
    assert launch_script(True, "trtllm", v3, "b200_sxm", "fp8") is SCRIPTS[("trtllm", r1, "b200_sxm", "fp8")]
    assert (
        launch_script(True, "sglang", v3, "b200_sxm", "fp4", "0.5.9")
        is SCRIPTS[("sglang", r1, "b200_sxm", "fp4")]
    )
    assert launch_script(True, "sglang", v3, "b200_sxm", "fp8") is None
    assert launch_script(False, "sglang", v3, "b200_sxm", "fp4") is None


def test_the_sglang_fp4_deepseek_v3_rows_are_r1_runs_and_get_their_script() -> None:
    """The evidence for the SGLang fp4 alias, from the measurements themselves: every SGLang agg fp4
    DeepSeek-V3 row of the sample measures, to 0.1 ms, the TTFT and the TPOT of a DeepSeek-R1 row of the
    same lengths, parallelism and concurrency (the same run under two names), and the lookup gives both
    rows one script: ``dsr1_fp4_b200.sh``'s fp8 KV cache, receive interval and symmetric-memory all-reduce."""
    table = read_silicon(DATA).assign(inferencex=lambda t: is_inferencex(t))
    deepseek = table[
        (table["backend"] == "sglang")
        & (table["mode"] == "agg")
        & (table["precision"] == "fp4")
        & table["model_path"].isin(["deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3"])
    ].assign(ttft=lambda t: t["silicon_ttft_ms"].round(1), tpot=lambda t: t["silicon_tpot_ms"].round(1))
    same = ["isl", "osl", "tp_size", "attention_dp_size", "moe_ep_size", "batch_size", "ttft", "tpot"]
    v3 = deepseek[deepseek["model_path"] == "deepseek-ai/DeepSeek-V3"]
    r1 = deepseek[deepseek["model_path"] == "deepseek-ai/DeepSeek-R1"].drop_duplicates(same)
    twins = v3.merge(r1, on=same, how="left", suffixes=("", "_r1"), indicator=True)
    assert len(v3) == 69
    assert (twins["_merge"] == "both").all()
    assert v3["inferencex"].all()
    for row in twins.itertuples(index=False):
        script = launch_script(
            True, "sglang", row.model_path, row.system, row.precision, str(row.backend_version)
        )
        assert script is launch_script(
            True, "sglang", row.model_path_r1, row.system_r1, row.precision_r1, str(row.backend_version_r1)
        )
        assert script is not None
        assert script.kv_dtype == "fp8"
        assert script.symm_mem_all_reduce
        assert script.scheduler_recv_interval is not None


def test_the_scripts_of_a_table_are_each_rows_own() -> None:
    """:func:`scripts_of` (one lookup per distinct key) gives every row of the sample the script
    :func:`launch_script` gives it alone, and no row two."""
    table = read_silicon(DATA).assign(inferencex=lambda t: is_inferencex(t))
    served = scripts_of(table)
    # every script serves some row of the sample (one script may stand under two keys)
    assert len(served) == len({id(script) for script in SCRIPTS.values()})
    chosen = np.full(len(table), None, dtype=object)
    for script, rows in served:
        assert np.all(chosen[rows] == None)  # noqa: E711 (elementwise)
        chosen[rows] = script
    columns = ("backend", "model_path", "system", "precision", "backend_version")
    table = table.assign(measured=measured_dates(table))
    for i, row in enumerate(table[["inferencex", *columns, "measured"]].fillna("").itertuples(index=False)):
        key = tuple(str(value) for value in row[1:])
        assert chosen[i] is launch_script(bool(row[0]), *key), key


def test_the_rules_over_rows_are_each_rows_alone() -> None:
    """Arrays of rows give what each row gives alone; a row without a concurrency keeps the engine's
    defaults (no budget, no hold), attention DP never holds and alone balances."""
    script = SCRIPTS[("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp8")]
    isl = np.array([1024, 1024, 8192, 1024, 1024])
    osl = np.array([1024, 1024, 1024, 1024, 1024])
    tp = np.array([8, 8, 4, 8, 8])
    dp = np.array([1, 1, 1, 4, 1])
    clients = np.array([64.0, 300.0, 4.0, 64.0, np.nan])
    run = {"isl": isl, "osl": osl, "tp": tp, "attention_dp": dp, "concurrency": clients}
    together = np.stack(scheduler_flags(script, **run))
    balance = np.stack(attention_dp_balance(script, dp))
    for i in range(len(isl)):
        alone = scheduler_flags(script, **{name: values[i] for name, values in run.items()})
        np.testing.assert_array_equal(together[:, i], np.array(alone, dtype=float))
        np.testing.assert_array_equal(balance[:, i], np.array(attention_dp_balance(script, dp[i])))
    np.testing.assert_array_equal(together[:, 0], [8192, 40, 0.8 * 8192])
    np.testing.assert_array_equal(together[:, 2], [8320, 0, 0])
    np.testing.assert_array_equal(together[:, 3], [8192, 0, 0])  # attention DP never holds
    np.testing.assert_array_equal(together[:, 4], [0, 0, 0])
    np.testing.assert_array_equal(balance[:, 3], [60, 0])
    assert np.isnan(balance[:, [0, 1, 2, 4]]).all()
    # a script that sets none of these flags, and no script at all: the defaults
    glm = SCRIPTS[("sglang", "zhipuai/GLM-5", "b200_sxm")]
    for none in (glm, None):
        np.testing.assert_array_equal(np.stack(scheduler_flags(none, **run)), 0.0)
        assert np.isnan(np.stack(attention_dp_balance(none, dp))).all()
        assert np.isnan(isl_budget(none, isl)).all()
        np.testing.assert_array_equal(recv_interval(none, tp=tp, concurrency=clients), 1.0)
    kimi = SCRIPTS[("vllm", "moonshotai/Kimi-K2.5", "b200_sxm", "fp4")]
    np.testing.assert_array_equal(isl_budget(kimi, isl), 2 * isl)


def test_speculative_scripts_are_the_ones_that_leave_their_drafting_out() -> None:
    """The one drafting script is Qwen3.5-397B's fp8 recipe, whose MTP sibling ran tp 4 with EP 1 alone
    (InferenceX #897 / #898); the model-wide Qwen3.5 script (bf16, and nvfp4 through it) is the plain one
    InferenceX merged ("STP only", #704). GLM-5's rows ran the script of InferenceX #915
    (benchmarks/single_node/glm5_fp8_b200.sh at b9551f6), which launches no --speculative-* flag and
    --disable-radix-cache: they draft at no layout."""
    from validation.public.inferencex import drafts
    from validation.public.sglang import speculative

    drafting = {key for key, script in SCRIPTS.items() if script.speculative is not None}
    glm, qwen = ("sglang", "zhipuai/GLM-5", "b200_sxm"), ("sglang", "Qwen/Qwen3.5-397B-A17B", "b200_sxm")
    assert drafting == {(*qwen, "fp8")}
    assert SCRIPTS[glm].source.endswith(
        "/b9551f6e5eda1a3d52442b0fde574e547ee908b6/benchmarks/single_node/glm5_fp8_b200.sh"
    )
    assert SCRIPTS[glm].speculative_flags is None
    assert not SCRIPTS[glm].radix_cache
    assert SCRIPTS[(*qwen, "fp8")].speculative_layouts == ((4, 1),)
    for tp, ep in ((4, 1), (8, 1), (4, 4)):
        assert not speculative(SCRIPTS[glm], tp=tp, moe_ep=ep)
        assert drafts(SCRIPTS[(*qwen, "fp8")], tp=tp, moe_ep=ep) == ((tp, ep) == (4, 1))
        assert not drafts(SCRIPTS[qwen], tp=tp, moe_ep=ep)
        assert not drafts(None, tp=tp, moe_ep=ep)


@pytest.mark.parametrize("name", REEXPORTED_FILES)
def test_a_reexported_file_repeats_inferencex_runs(name: str) -> None:
    """Every row of a re-exported gap-analysis file measures, to the hundredth of a millisecond, the TTFT
    and TPOT of an InferenceX row (its result files or database dump) of the same engine, model, lengths
    and concurrency, so it is an InferenceX run (the client's lengths, the scripts' flags); the rows of the
    other gap-analysis files (aiconfigurator's collection) are not."""
    table = read_silicon(DATA)
    source = table["silicon_data_source"].astype(str).str.extract(r"source_file=([^;]+)")[0]
    copies = table[source == name]
    assert len(copies) > 0
    assert is_inferencex(copies).all()
    runs = table[
        source.isin(SOURCE_FILES) | table["silicon_data_source"].astype(str).str.startswith("db-dump/")
    ]
    keys = ["backend", "model_path", "isl", "osl", "concurrency", "ttft", "tpot"]
    rounded = {"ttft": "silicon_ttft_ms", "tpot": "silicon_tpot_ms"}

    def identity(rows: pd.DataFrame) -> set[tuple[object, ...]]:
        frame = rows.assign(**{k: rows[v].round(2) for k, v in rounded.items()})
        return set(frame[keys].itertuples(index=False, name=None))

    assert identity(copies) <= identity(runs)
    # the collection's own files are not InferenceX runs
    others = source.str.contains("gap-analysis", na=False) & ~source.isin(REEXPORTED_FILES)
    assert not is_inferencex(table[others]).any()


def test_the_1_1_dsr1_fp8_image_runs_deepgemm_and_an_unfloored_budget_everywhere() -> None:
    # dsr1_fp8_b200_trt_slurm.sh before InferenceX #594 (1.1.0rc2.post2): MOE_BACKEND="DEEPGEMM" for every
    # row, MAX_NUM_TOKENS=$(( ($CONC+$ISL+64+63)/64*64 )) with no floor; the later image keeps its own
    from validation.public.inferencex import moe_backends

    r1 = "deepseek-ai/DeepSeek-R1"
    early = launch_script(True, "trtllm", r1, "b200_sxm", "fp8", "1.1.0rc2.post2")
    late = launch_script(True, "trtllm", r1, "b200_sxm", "fp8", "1.2.0rc6.post2")
    assert early is not None
    assert late is not None
    assert early is not late
    isl = np.array([1024, 1024, 8192])
    osl = np.array([1024, 1024, 1024])
    conc = np.array([4.0, 256.0, 64.0])
    tp = np.full(3, 8.0)
    assert moe_backends(early, isl=isl, osl=osl, tp=tp, concurrency=conc).tolist() == ["DEEPGEMM"] * 3
    assert moe_backends(late, isl=isl, osl=osl, tp=tp, concurrency=conc).tolist()[0] == "TRTLLM"
    run = {"isl": isl, "osl": osl, "tp": tp, "attention_dp": np.ones(3), "concurrency": conc}
    # (4 + 1024 + 127) // 64 * 64 = 1152; (256 + 1024 + 127) // 64 * 64 = 1344; (64 + 8192 + 127) // 64 * 64
    assert scheduler_flags(early, **run)[0].tolist() == [1152.0, 1344.0, 8320.0]
    assert scheduler_flags(late, **run)[0].tolist() == [8192.0, 8192.0, 8320.0]


def test_h100_gpt_oss_runs_marlin_experts_where_its_script_exports_the_variable() -> None:
    # gptoss_fp4_h100.sh (c6b96dd) exports VLLM_MXFP4_USE_MARLIN=1; the December 2025 docker script
    # (145e88f: the 0.11.2 rows) does not
    from validation.public.inferencex import moe_backends

    oss, run = "openai/gpt-oss-120b", ("vllm", "openai/gpt-oss-120b", "h100_sxm", "fp4")
    isl, osl, tp, conc = np.array([8192.0]), np.array([1024.0]), np.array([2.0]), np.array([4.0])

    def backend(*key: str) -> list[str]:
        script = launch_script(True, *run, *key)
        assert script is not None
        return list(moe_backends(script, isl=isl, osl=osl, tp=tp, concurrency=conc))

    assert launch_script(True, "vllm", oss, "h100_sxm") is launch_script(True, *run, "0.18.0")
    assert backend("0.18.0", "2026-03-27") == ["MARLIN"]
    assert backend("0.11.2", "2025-12-08") == [""]
    # the unversioned rows measured before #327 (perf-changelog.yaml) ran the docker script, no Marlin
    for measured in ("2025-11-02", "2025-12-05"):
        assert launch_script(True, *run, "", measured) is launch_script(True, *run, "0.11.2")
        assert backend("", measured) == [""]
    assert backend("", "2026-03-27") == ["MARLIN"]


def test_the_dsr1_fp8_script_runs_deepgemm_only_at_its_high_concurrency_sweeps() -> None:
    # dsr1_fp8_b200_trt.sh: MOE_BACKEND="TRTLLM", "DEEPGEMM" from 256 clients at 1k/1k and 1k/8k
    from validation.public.inferencex import moe_backends

    script = launch_script(True, "trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp8")
    isl = np.array([1024, 1024, 1024, 8192, 1024, 1024])
    osl = np.array([1024, 1024, 8192, 1024, 1024, 1024])
    conc = np.array([255, 256, 512, 512, np.nan, 4])
    got = moe_backends(script, isl=isl, osl=osl, tp=np.full(6, 8.0), concurrency=conc)
    assert got.tolist() == ["TRTLLM", "DEEPGEMM", "DEEPGEMM", "TRTLLM", "", "TRTLLM"]
    other = launch_script(True, "trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm", "fp4")
    assert moe_backends(other, isl=isl, osl=osl, tp=np.full(6, 8.0), concurrency=conc).tolist() == [""] * 6


def test_the_1_1_mtp_run_reads_its_mtp_scripts_budget_and_the_plain_run_its_own() -> None:
    """dsr1_fp8_b200_trt_mtp_slurm.sh at 40be3a4: MTP=3 (1 with attention DP); MAX_BATCH_SIZE=$CONC
    ($CONC/$TP with attention DP); MAX_ISL = ISL x (1 + RANDOM_RANGE_RATIO) rounded by awk's "%.0f";
    MAX_NUM_TOKENS=$(( ((MTP+1)*MAX_BATCH_SIZE+MAX_ISL+64+63)/64*64 )). The 2026-01-14 run of the shared
    1.1.0rc2.post2 image is that script's; the 2025-12-15 run keeps the plain script's budget."""
    from validation.public.inferencex import PRE_MARLIN_RUNS
    from validation.public.silicon import MTP_RUNS

    r1 = "deepseek-ai/DeepSeek-R1"
    mtp = launch_script(True, "trtllm", r1, "b200_sxm", "fp8", "1.1.0rc2.post2", "2026-01-14")
    plain = launch_script(True, "trtllm", r1, "b200_sxm", "fp8", "1.1.0rc2.post2", "2025-12-15")
    assert mtp is not None
    assert plain is not None
    assert mtp.source.endswith(
        "/40be3a4b73230a9b029bdc275f832547eb68df49/benchmarks/dsr1_fp8_b200_trt_mtp_slurm.sh"
    )
    assert plain is launch_script(True, "trtllm", r1, "b200_sxm", "fp8", "1.1.0rc2.post2")
    # 8k/1k, 16 clients, tp 8, no attention DP: MAX_ISL = 14745.6 -> 14746;
    # (4 x 16 + 14746 + 127) // 64 x 64 = 14937 // 64 x 64 = 233 x 64 = 14912 (the plain script's 8320)
    # 1k/1k, 128 clients, 8 attention-DP ranks of tp 8: MTP 1, MAX_BATCH_SIZE 128 / 8 = 16, MAX_ISL 1843;
    # (2 x 16 + 1843 + 127) // 64 x 64 = 2002 // 64 x 64 = 31 x 64 = 1984
    # 1k/1k, 4 clients: (4 x 4 + 1843 + 127) // 64 x 64 = 1986 // 64 x 64 = 1984 (plain: 1152)
    # 1k/1k, 2 clients, 8 ranks: MAX_BATCH_SIZE 2 / 8 = 0, raised to 1: (2 + 1843 + 127) // 64 x 64 = 1920
    run = {
        "isl": np.array([8192, 1024, 1024, 1024]),
        "osl": np.full(4, 1024),
        "tp": np.full(4, 8.0),
        "attention_dp": np.array([1.0, 8.0, 1.0, 8.0]),
        "concurrency": np.array([16.0, 128.0, 4.0, 2.0]),
    }
    assert scheduler_flags(mtp, **run)[0].tolist() == [14912.0, 1984.0, 1984.0, 1920.0]
    assert scheduler_flags(plain, **run)[0].tolist() == [8320.0, 1216.0, 1152.0, 1152.0]
    # its fp4 sibling at the same commit: the same budget; MOE_BACKEND CUTLASS with attention DP, else TRTLLM
    fp4 = launch_script(True, "trtllm", r1, "b200_sxm", "fp4", "1.1.0rc2.post2", "2026-01-14")
    assert fp4 is not None
    assert fp4.source.endswith(
        "/40be3a4b73230a9b029bdc275f832547eb68df49/benchmarks/dsr1_fp4_b200_trt_mtp_slurm.sh"
    )
    assert scheduler_flags(fp4, **run)[0].tolist() == [14912.0, 1984.0, 1984.0, 1920.0]
    assert moe_backends(fp4, **run).tolist() == ["TRTLLM", "CUTLASS", "TRTLLM", "CUTLASS"]
    assert moe_backends(mtp, **run).tolist() == ["DEEPGEMM"] * 4
    # a run's own script is keyed by its date only for an MTP run or a run measured before its script changed
    # (H100 gpt-oss before InferenceX #327 added VLLM_MXFP4_USE_MARLIN: its unversioned rows name no version)
    dated = [key for key in SCRIPTS if len(key) == 6]
    assert dated
    assert all(
        (key[0], key[4], key[5]) in MTP_RUNS or (key[0], key[2], key[5]) in PRE_MARLIN_RUNS for key in dated
    )


def test_a_rows_measured_date_is_its_sources_and_none_where_it_states_none() -> None:
    table = pd.DataFrame(
        {"silicon_data_source": ["source_file=2026-03-25.csv;measured=2026-01-14", "db-dump/run=7", None]}
    )
    assert measured_dates(table).fillna("").tolist() == ["2026-01-14", "", ""]
    assert measured_dates(pd.DataFrame({"x": [1]})).isna().all()
