"""The public kernel tables: reader, split rule, adapters, the evaluation command and its summary schema.

Fixtures are tiny tables written here in the upstream layout; measured values in them are synthetic (from
the GEMM model with known parameters), never edited copies of real measurements.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PUBLIC_GPU

from costmodel.errors import CostmodelError
from costmodel.kernels import gemm
from costmodel.registry import load_hardware
from validation.__main__ import main as validation_main
from validation.public.evaluate import SUMMARY_KEYS
from validation.public.families import adapter_for, adapters
from validation.public.reader import SYSTEM_PROFILES, iter_tables, read_table
from validation.public.split import calibration_mask

pytest.importorskip("pyarrow")


def gemm_table(n_rows: int = 60, *, seed: int = 0, dtype: str = "bfloat16") -> pd.DataFrame:
    """A GEMM table in the upstream columns; latency (ms) from the GEMM model at known parameters."""
    rng = np.random.default_rng(seed)
    m = rng.choice([1, 16, 128, 1024, 4096], n_rows)
    n = rng.choice([256, 1024, 4096, 8192], n_rows)
    k = rng.choice([256, 1024, 4096, 8192], n_rows)
    hardware = load_hardware("h100-sxm")
    key = {"bfloat16": "bf16", "fp8": "fp8"}[dtype]
    latency_s = gemm.time_s(hardware, gemm.default_params(hardware, key), m=m, n=n, k=k)
    return pd.DataFrame(
        {
            "framework": "VLLM",
            "version": "0.24.0",
            "device": "NVIDIA H100 80GB HBM3",
            "op_name": "gemm",
            "kernel_source": "torch.nn.functional.linear",
            "gemm_dtype": dtype,
            "m": m,
            "n": n,
            "k": k,
            "latency": latency_s * 1e3,
        }
    )


def write_table(
    root: Path, system: str, frame: pd.DataFrame, family: str = "gemm", name: str = "gemm_perf"
) -> Path:
    folder = root / "kernels" / system / family / "vllm" / "0.24.0"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    (folder / "collection_meta.yaml").write_text("schema_version: 1\n")
    return path


def test_reader_adds_system_hardware_seconds_and_split(tmp_path: Path) -> None:
    path = write_table(tmp_path, "h100_sxm", gemm_table())
    table = read_table(path)
    frame = table.frame
    assert (table.system, table.family, table.engine, table.engine_version) == (
        "h100_sxm",
        "gemm",
        "vllm",
        "0.24.0",
    )
    assert table.hardware == "h100-sxm"
    assert set(frame["hardware"]) == {"h100-sxm"}
    assert np.allclose(frame["latency_s"], frame["latency"] / 1000.0)
    assert frame["calibration"].dtype == bool
    assert table.meta == {"schema_version": 1}
    assert [t.name for t in iter_tables(tmp_path)] == ["gemm_perf"]


def test_every_mapped_system_names_a_profile_spelling() -> None:
    assert SYSTEM_PROFILES["a100_sxm"] == "a100-80gb"  # the tables' device column: 'NVIDIA A100-SXM4-80GB'
    assert all(name == name.lower() and "_" not in name for name in SYSTEM_PROFILES.values())


def test_unknown_system_is_one_error_naming_it(tmp_path: Path) -> None:
    path = write_table(tmp_path, "tpu_v9", gemm_table())
    with pytest.raises(CostmodelError, match="unknown system 'tpu_v9'"):
        read_table(path)


def test_unexpected_column_is_one_error_naming_it(tmp_path: Path) -> None:
    path = write_table(tmp_path, "h100_sxm", gemm_table().assign(sparsity="2:4"))
    with pytest.raises(CostmodelError, match="unexpected column 'sparsity'"):
        read_table(path)


def test_missing_kernels_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CostmodelError, match="no kernels/ folder"):
        list(iter_tables(tmp_path))


# ---- split rule -------------------------------------------------------------------------------------


def test_split_ignores_the_measurement_and_row_order() -> None:
    table = gemm_table(400)
    mask = calibration_mask(table)
    assert np.array_equal(mask, calibration_mask(table.assign(latency=table["latency"] * 7.0)))
    order = np.random.default_rng(1).permutation(len(table))
    assert np.array_equal(mask[order], calibration_mask(table.iloc[order].reset_index(drop=True)))


def test_split_takes_about_one_row_in_five() -> None:
    table = pd.DataFrame({"op_name": "gemm", "m": np.arange(5000), "n": 7, "k": 9, "latency": 1.0})
    assert 0.17 < calibration_mask(table).mean() < 0.23


# ---- adapters -----------------------------------------------------------------------------------------


def test_adapters_follow_the_contract() -> None:
    table = gemm_table(10).assign(hardware="h100-sxm", latency_s=1e-5, calibration=False)
    for op_name, adapter in adapters().items():
        assert op_name in adapter.OP_NAMES
        for name in ("Params", "BOUNDS", "default_params", "time_s"):
            assert hasattr(adapter.KERNEL_MODULE, name)
    adapter = adapter_for("gemm")
    assert adapter is not None
    assert adapter_for("no_such_op") is None
    keys = adapter.params_key(table)
    assert keys.shape == (10,)
    assert set(keys) == {"bf16:vllm:torch.nn.functional.linear"}  # format, engine, kernel
    shapes = adapter.shapes(table)
    assert all(np.asarray(v).shape == (10,) for v in shapes.values())


# ---- the evaluation command ---------------------------------------------------------------------------


def test_public_command_writes_the_summary_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_table(data, "h100_sxm", gemm_table(200))
    moe = pd.DataFrame({"framework": "VLLM", "version": "0.24.0", "device": "x", "op_name": "no_model_op",
                        "kernel_source": "k", "num_tokens": [1, 2, 3], "latency": [0.1, 0.2, 0.3]})  # fmt: skip
    write_table(data, "h100_sxm", moe, family="other", name="other_perf")
    assert validation_main(["public", "--data", str(data), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kernels"], "one entry per system, family, engine, dtype and split"
    for entry in summary["kernels"]:
        assert list(entry) == list(SUMMARY_KEYS)
        assert entry["split"] in ("calibration", "held-out")
        assert entry["n"] > 0
        assert 0 <= entry["median_abs_err"] <= entry["p90_abs_err"]
        assert entry["family"] == "gemm"
        assert entry["system"] == "h100_sxm"
        assert entry["dtype"] == "bf16"
    assert sum(e["n"] for e in summary["kernels"]) == 200
    assert summary["uncovered"] == [
        {"family": "no_model_op", "reason": "no adapter for this op_name", "n": 3}
    ]
    rows = pd.read_csv(out / "rows.csv")
    assert len(rows) == 200
    assert {"predicted_s", "latency_s", "split"} <= set(rows.columns)
    assert "not covered" in capsys.readouterr().out


def test_costmodel_calibrate_from_a_folder_writes_loadable_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`costmodel calibrate --from DIR` (the library finds the reader by entry point; here it is handed over
    directly, as an editable install would register it)."""
    from typer.testing import CliRunner

    import costmodel.calibrate as calibrate
    from costmodel.cli import app
    from costmodel.kernels import params_for
    from validation.public.calibrate import measurements

    monkeypatch.setattr(calibrate, "find_reader", lambda name="public": measurements)
    data, out = tmp_path / "data", tmp_path / "profiles"
    write_table(data, "h100_sxm", gemm_table(400, seed=3))
    result = CliRunner().invoke(app, ["calibrate", "--from", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "h100-sxm" in result.output
    assert (out / "h100-sxm.yaml").is_file()
    profile = load_hardware(str(out / "h100-sxm.yaml"))
    record = profile.kernel_calibration.record if profile.kernel_calibration else None
    assert record is not None
    assert record.row_rule.startswith("rows whose hash")
    assert record.data_revision == "unknown"
    assert record.rows["gemm"] == int(calibration_mask(gemm_table(400, seed=3)).sum())
    fitted = params_for(profile, gemm, "bf16:vllm:torch.nn.functional.linear")
    truth = gemm.default_params(load_hardware("h100-sxm"), "bf16")
    assert fitted.compute_fraction == pytest.approx(truth.compute_fraction, rel=0.1)
    assert (out / "h200.yaml").is_file()  # transferred


def test_a_partial_refit_keeps_the_other_families_and_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--family` / `--hardware` refit only what they name; parameters already in OUT for other families or
    devices stay as they were."""
    import yaml

    import costmodel.calibrate as calibrate
    from validation.public.calibrate import measurements

    monkeypatch.setattr(calibrate, "find_reader", lambda name="public": measurements)
    data, out = tmp_path / "data", tmp_path / "profiles"
    write_table(data, "h100_sxm", gemm_table(200, seed=4))
    write_table(data, "b200_sxm", gemm_table(200, seed=5))
    calibrate.calibrate_from(data, out)
    kept = {"context_attention": {"bf16": {"compute_fraction": 0.5}}}
    for name in ("h100-sxm", "b200"):
        path = out / f"{name}.yaml"
        document = yaml.safe_load(path.read_text())
        document["kernel_calibration"]["params"] |= kept
        path.write_text(yaml.safe_dump(document))
    h100_before = (out / "h100-sxm.yaml").read_text()
    calibrate.calibrate_from(data, out, families=["gemm"], hardware=["b200"])
    assert (out / "h100-sxm.yaml").read_text() == h100_before  # another device: untouched
    b200 = load_hardware(str(out / "b200.yaml")).kernel_calibration
    assert b200 is not None
    assert b200.params["context_attention"] == kept["context_attention"]  # another family: kept
    assert "gemm" in b200.params
    with pytest.raises(CostmodelError, match="a100-80gb"):
        calibrate.calibrate_from(data, out, hardware=["a100-80gb"])


def test_a_key_refit_keeps_the_familys_other_keys_and_its_pools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--key PREFIX` refits only the keys that start with it: the family's other keys and its pooled keys
    (whose rows are the union of keys not all refit) stay as they were, and so do the row counts."""
    import yaml

    import costmodel.calibrate as calibrate
    from validation.public.calibrate import measurements

    monkeypatch.setattr(calibrate, "find_reader", lambda name="public": measurements)
    data, out = tmp_path / "data", tmp_path / "profiles"
    write_table(data, "h100_sxm", gemm_table(200, seed=6))
    calibrate.calibrate_from(data, out)
    path = out / "h100-sxm.yaml"
    document = yaml.safe_load(path.read_text())
    params = document["kernel_calibration"]["params"]["gemm"]
    refit_key = next(k for k in params if k.count(":") >= 2)
    pools = {k: dict(v) for k, v in params.items() if k.count(":") < 2}
    assert pools, "the full fit wrote pooled keys"
    params["fp8:other:kernel"] = {"compute_fraction": 0.25}
    params[refit_key] = {**params[refit_key], "compute_fraction": 0.123}
    rows = dict(document["kernel_calibration"]["record"]["rows"])
    path.write_text(yaml.safe_dump(document))
    calibrate.calibrate_from(data, out, keys=[refit_key.rsplit(":", 1)[0]])
    after = load_hardware(str(path)).kernel_calibration
    assert after is not None
    gemm_params = after.params["gemm"]
    assert gemm_params["fp8:other:kernel"] == {"compute_fraction": 0.25}  # another key: kept
    assert gemm_params[refit_key]["compute_fraction"] != pytest.approx(0.123)  # refit
    for key, values in pools.items():
        assert gemm_params[key] == pytest.approx(values)  # pooled keys: not refit
    assert dict(after.record.rows) == rows


def test_library_never_imports_validation_or_app() -> None:
    import subprocess
    import sys

    code = (
        "import sys, costmodel, costmodel.cli, costmodel.calibrate, costmodel.kernels.gemm;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('validation', 'app')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


# ---- the dtype column and the dashboard's files --------------------------------------------------------

VENDORED = Path(__file__).resolve().parents[1] / "validation" / "data" / "public-gpu" / "kernels" / "h100_sxm"


def copy_slice(root: Path, relative: str, n_rows: int = 400) -> pd.DataFrame:
    """The first ``n_rows`` of a vendored table, written under ``root`` in the same layout."""
    frame = pd.read_parquet(VENDORED / relative).head(n_rows)
    target = root / "kernels" / "h100_sxm" / Path(relative).parent
    target.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target / Path(relative).name, index=False)
    (target / "collection_meta.yaml").write_text("schema_version: 1\n")
    return frame


def test_summary_dtype_is_a_format_and_the_kernel_has_its_own_field(tmp_path: Path) -> None:
    """Attention, MLA and collective keys start with the kernel; the summary's dtype is still the format."""
    data, out = tmp_path / "data", tmp_path / "out"
    tables = {
        "context_attention": copy_slice(data, "attention/vllm/0.24.0/context_attention_perf.parquet"),
        "generation_attention": copy_slice(
            data, "attention/trtllm/1.3.0rc20/generation_attention_perf.parquet"
        ),
        "mla_context_module": copy_slice(data, "mla/trtllm/1.3.0rc20/mla_context_module_perf.parquet"),
        "all_reduce": copy_slice(data, "comm/vllm/0.24.0/custom_allreduce_perf.parquet"),
    }
    assert validation_main(["public", "--data", str(data), "--out", str(out)]) == 0
    entries = json.loads((out / "summary.json").read_text())["kernels"]
    formats = {"bf16", "fp16", "fp8", "int8", "nvfp4", "fp8_block"}
    for family, table in tables.items():
        mine = [e for e in entries if e["family"] == family]
        assert mine, family
        for entry in mine:
            base = entry["dtype"].replace("+fp8kv", "").split("/")
            assert set(base) <= formats, (family, entry["dtype"])
            assert entry["kernel"] in set(table["kernel_source"].astype(str)), (family, entry["kernel"])


def test_the_evaluation_writes_a_small_deterministic_sample_and_the_error_by_regime(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from validation.public.sample import SAMPLE_COLUMNS, SAMPLE_PER_GROUP

    data = tmp_path / "data"
    write_table(data, "h100_sxm", gemm_table(2000, seed=5))
    copy_slice(data, "comm/nccl/2.29.2/nccl_perf.parquet", n_rows=200)
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert validation_main(["public", "--data", str(data), "--out", str(out)]) == 0
    sample = pd.read_parquet(outs[0] / "rows_sample.parquet")
    assert list(sample.columns) == list(SAMPLE_COLUMNS)
    pd.testing.assert_frame_equal(sample, pd.read_parquet(outs[1] / "rows_sample.parquet"))
    sizes = sample.groupby(["system", "family", "engine", "dtype", "split"]).size()
    for (*_, split), size in sizes.items():
        assert size <= SAMPLE_PER_GROUP[split]
    rows = pd.read_csv(outs[0] / "rows.csv")
    # the sample's rows are rows of the evaluation, with their measured and predicted times
    gemm_rows = rows[rows["family"] == "gemm"].set_index(["m", "n", "k"])
    gemm_sample = sample[sample["family"] == "gemm"]
    assert len(gemm_sample) == SAMPLE_PER_GROUP["held-out"] + SAMPLE_PER_GROUP["calibration"]
    shape = gemm_sample["shape"].str.extract(r"m=(\d+) n=(\d+) k=(\d+)").astype(int)
    assert set(map(tuple, shape.to_numpy())) <= set(gemm_rows.index)
    meta = json.loads(pq.read_schema(outs[0] / "rows_sample.parquet").metadata[b"costmodel"])
    assert {"data_revision", "costmodel_revision", "date", "systems", "software", "sample_rule"} <= set(meta)
    assert meta["systems"]["h100_sxm"]["hardware_profile"] == ["h100-sxm"]

    regimes = json.loads((outs[0] / "regimes.json").read_text())
    table = pd.DataFrame(regimes["regimes"]["data"], columns=regimes["regimes"]["columns"])
    gemm_m = table[(table["family"] == "gemm") & (table["axis"] == "m (tokens)")]
    # over every row, not the sample: the buckets of each split add up to the split's rows
    for split, part in gemm_m.groupby("split"):
        assert part["n"].sum() == (rows.loc[rows["family"] == "gemm", "split"] == split).sum()
    assert set(gemm_m["regime"]) <= {"≤ 16", "16–128", "128–1,024", "1,024–8,192", "> 8,192"}
    bound = table[(table["family"] == "gemm") & (table["axis"] == "bound")]
    assert set(bound["regime"]) == {"memory-bound", "compute-bound"}  # m = 1 streams, m = 4096 computes
    families = pd.DataFrame(regimes["families"]["data"], columns=regimes["families"]["columns"])
    assert set(families["family"]) == {
        "gemm",
        "all_reduce",
        "all_gather",
        "alltoall",
        "reduce_scatter",
    } & set(rows["family"])
    summary = json.loads((outs[0] / "summary.json").read_text())
    assert summary["outputs"]["rows_sample"] == "rows_sample.parquet"
    assert summary["environment"]["systems"]["h100_sxm"]["devices"] == ["NVIDIA H100 80GB HBM3"]


def test_regime_buckets_are_upper_closed_intervals() -> None:
    from validation.public.sample import bucket

    labels, order = bucket(pd.Series([1.0, 16.0, 17.0, 128.0, 1e6, np.nan]), (16, 128))
    assert list(labels) == ["≤ 16", "≤ 16", "16–128", "16–128", "> 128", "unknown"]
    assert list(order) == [0, 0, 1, 1, 2, -1]


def test_moe_adapter_reads_the_a100_vllm_014_table_with_the_earlier_routing_fix_up() -> None:
    from validation.public.families import moe as moe_adapter

    table = pd.DataFrame(
        {
            "distribution": ["power_law_1.2", "balanced", "power_law_1.01"],
            "engine": ["vllm", "vllm", "trtllm"],
            "engine_version": ["0.14.0", "0.14.0", "1.3.0rc20"],
        }
    )
    assert moe_adapter.routing(table).tolist() == ["power_law_legacy_1.2", "balanced", "power_law_1.01"]


def test_moe_adapter_reads_nemotron_h_experts_as_non_gated_where_the_collector_runs_them_so() -> None:
    """Relu^2 experts (NemotronH: up and down only) in the vLLM 0.24 tables, whose kernel names do not say
    so; the vLLM 0.14 collector always built gate and up, and TensorRT-LLM names its non-gated kernel."""
    from validation.public.families import moe as moe_adapter

    rows = [  # framework, version, kernel, hidden, inter, topk, experts, non-gated?
        ("VLLM", "0.24.0", "vllm_unquantizedfusedmoe_triton_tritonexperts", 2048, 5120, 22, 512, True),
        ("VLLM", "0.24.0", "vllm_unquantizedfusedmoe_triton_tritonexperts", 2688, 1856, 6, 128, True),
        ("VLLM", "0.24.0", "vllm_unquantizedfusedmoe_triton_tritonexperts", 4096, 1536, 8, 128, False),
        ("VLLM", "0.24.0", "vllm_unquantizedfusedmoe_triton_tritonexperts", 4096, 1856, 6, 128, False),
        ("VLLM", "0.14.0", "vllm_fused_moe", 4096, 2688, 22, 512, False),
        ("TRTLLM", "1.3.0rc20", "moe_torch_flow_cutlass", 4096, 1024, 10, 512, False),
        ("TRTLLM", "1.3.0rc20", "moe_torch_flow_nongated", 8192, 5120, 22, 512, True),
    ]
    columns = [
        "framework",
        "engine_version",
        "kernel_source",
        "hidden_size",
        "inter_size",
        "topk",
        "num_experts",
    ]
    table = pd.DataFrame([r[:-1] for r in rows], columns=columns)
    table["engine"] = table["framework"].str.lower()
    assert moe_adapter.non_gated(table).tolist() == [r[-1] for r in rows]


def test_moe_rows_sharing_a_tensorrt_llm_tactic_cache_file_have_an_undetermined_tactic() -> None:
    """The collector names its tactic-cache file by format, hidden, inter/tp and experts/ep only: two top-k
    values, two kernel sources (ops the autotuner keys apart) or two TP / EP layouts (runners it hashes
    apart) in one such file leave one series on the autotuner's fallback tactic, whichever came second.
    Kernels that consult no cache are exempt."""
    from validation.public.families import moe as moe_adapter

    cutlass, min_latency = "moe_torch_flow_cutlass", "moe_torch_flow_min_latency"
    rows = [  # framework, format, kernel source, hidden, inter, tp, experts, ep, topk, undetermined?
        ("TRTLLM", "bfloat16", cutlass, 4096, 1024, 1, 256, 8, 8, True),  # 32 experts of 1024 per GPU, top-8
        ("TRTLLM", "bfloat16", cutlass, 4096, 2048, 2, 128, 4, 10, True),  # ... and top-10: the same file
        ("TRTLLM", "bfloat16", cutlass, 4096, 1024, 1, 256, 4, 8, False),  # 64 per GPU: own file, one top-k
        ("TRTLLM", "fp8", cutlass, 4096, 1024, 1, 128, 4, 10, False),  # another format: another file
        ("VLLM", "bfloat16", "vllm_fused_moe", 4096, 1024, 1, 128, 4, 10, False),  # vLLM: no such cache
        ("VLLM", "bfloat16", "vllm_fused_moe", 4096, 1024, 1, 256, 4, 10, False),  # beside TRT-LLM's file
        # one top-k, two ops (CUTLASS's fused_moe::gemm1/2, TRT-LLM-Gen's fp4_block_scale_moe_runner)
        ("TRTLLM", "nvfp4", cutlass, 7168, 2048, 1, 256, 8, 8, True),
        ("TRTLLM", "nvfp4", min_latency, 7168, 2048, 1, 256, 8, 8, True),
        ("TRTLLM", "nvfp4", cutlass, 7168, 2048, 1, 256, 4, 8, False),  # 64 per GPU: CUTLASS alone
        # DeepGEMM calls no autotuner; the collector skips the cache for w4a16_mxfp4: both top-k determined
        ("TRTLLM", "fp8_block", "deepgemm", 4096, 1024, 1, 256, 8, 8, False),
        ("TRTLLM", "fp8_block", "deepgemm", 4096, 2048, 2, 128, 4, 10, False),
        ("TRTLLM", "w4a16_mxfp4", "moe_torch_flow", 4096, 1024, 1, 256, 8, 8, False),
        ("TRTLLM", "w4a16_mxfp4", "moe_torch_flow", 4096, 2048, 2, 128, 4, 10, False),
    ]
    columns = [
        "framework",
        "moe_dtype",
        "kernel_source",
        "hidden_size",
        "inter_size",
        "moe_tp_size",
        "num_experts",
        "moe_ep_size",
        "topk",
    ]
    table = pd.DataFrame([r[:-1] for r in rows], columns=columns)
    assert moe_adapter.undetermined_tactic(table).tolist() == [r[-1] for r in rows]
    assert moe_adapter.undetermined_tactic(table.iloc[:0]).tolist() == []
    # one top-k, two layouts: the runner's hash holds its TP and EP sizes, so Llama 4 Scout (16 experts,
    # EP 1) and Maverick (128 experts, EP 8), both 16 experts of 5120 x 8192 per GPU, miss each other's
    # entries; a layout's routings (not held by the runner) share its entries, and so do two rows of it
    llama = pd.DataFrame(
        [
            ("TRTLLM", "bfloat16", cutlass, 5120, 8192, 1, 16, 1, 1),
            ("TRTLLM", "bfloat16", cutlass, 5120, 8192, 1, 128, 8, 1),
            ("TRTLLM", "bfloat16", cutlass, 5120, 8192, 2, 16, 2, 1),  # 8 of 4096: its own file
            ("TRTLLM", "bfloat16", cutlass, 5120, 8192, 2, 16, 2, 1),  # the same layout again
        ],
        columns=columns,
    )
    assert moe_adapter.undetermined_tactic(llama).tolist() == [True, True, False, False]
    # the collector loads the first file matching "<name>*": 16 experts per GPU may load the file of 160
    glob = pd.DataFrame(
        [("TRTLLM", "bfloat16", cutlass, 4096, 1024, 1, e, 1, 8) for e in (16, 160, 32)], columns=columns
    )
    assert moe_adapter.undetermined_tactic(glob).tolist() == [True, False, False]
    # a DeepGEMM series looks up no tactic, whichever file it loads: no prefix rule among its rows either
    deepgemm = glob.assign(moe_dtype="fp8_block", kernel_source="deepgemm")
    assert not moe_adapter.undetermined_tactic(deepgemm).any()


def test_transfer_command_predicts_each_device_with_its_partners_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Leave-one-device-out: an H100 table is predicted with the B200's fitted parameters on the H100's
    own datasheet; every row counts (split "transfer"), none of them was fitted on."""
    from validation.public.transfer import LEAVE_ONE_OUT, transferred_hardware

    h100 = transferred_hardware("h100-sxm")
    assert h100.datasheet == load_hardware("h100-sxm").datasheet
    assert h100.kernel_calibration is not None
    assert h100.kernel_calibration.record.transferred_from == LEAVE_ONE_OUT["h100-sxm"] == "b200"
    b200 = load_hardware("b200").kernel_calibration
    assert b200 is not None
    # the B200's full-occupancy rate, carried by the two devices' published sustained shares (H200 0.690
    # for the H100, GB200 0.581 for the B200): its fit found a power limit, which takes the factor up to
    # the bound of 1, and the compute fraction the rest, within its bound of 1
    fitted, carried = b200.params["gemm"]["bf16"], h100.kernel_calibration.params["gemm"]["bf16"]
    limit = min(fitted["power_limited_sm_fraction"] * 0.690 / 0.581, 1.0)
    assert carried["power_limited_sm_fraction"] == pytest.approx(limit)
    assert carried["compute_fraction"] == pytest.approx(
        min(fitted["compute_fraction"] * fitted["power_limited_sm_fraction"] * 0.690 / 0.581 / limit, 1.0)
    )
    assert {LEAVE_ONE_OUT[LEAVE_ONE_OUT[d]] for d in LEAVE_ONE_OUT} == set(LEAVE_ONE_OUT)  # pairs
    data, out = tmp_path / "data", tmp_path / "out"
    write_table(data, "h100_sxm", gemm_table(50))
    assert validation_main(["transfer", "--data", str(data), "--out", str(out)]) == 0
    document = json.loads((out / "transfer.json").read_text())
    assert {"data_revision", "costmodel_revision", "date"} <= set(document)  # provenance, as summary.json
    pooled = [r for r in document["transfer"] if r["engine"] == "all"]
    assert [(r["system"], r["family"], r["lookup"], r["source"], r["split"], r["n"]) for r in pooled] == [
        ("h100_sxm", "gemm", "all", "b200", "transfer", 50),
        ("h100_sxm", "gemm", "exact", "b200", "transfer", 50),  # the B200 fitted the table's GEMM key
    ]
    assert "h100_sxm" in capsys.readouterr().out


def test_transfer_summary_tells_exact_keys_from_fallbacks() -> None:
    """A row whose key the partner fitted counts as ``exact``; one the rule looks up through the fallback (a
    kernel the partner never ran) as ``fallback``; the ``all`` row pools both."""
    from validation.public.transfer import exact_keys, summarize_transfer

    rows = pd.DataFrame(
        {
            "system": "h100_sxm",
            "hardware": "h100-sxm",
            "family": "gemm",
            "engine": "vllm",
            "dtype": "bf16",
            "key": ["bf16:vllm:torch.nn.functional.linear", "bf16:vllm:a_kernel_the_b200_never_ran"],
            "latency_s": [1.0, 1.0],
            "predicted_s": [1.1, 0.5],
        }
    )
    assert exact_keys(rows).tolist() == [True, False]
    pooled = summarize_transfer(rows).query("engine == 'all'").set_index("lookup")
    assert pooled["n"].to_dict() == {"all": 2, "exact": 1, "fallback": 1}
    assert pooled.loc["exact", "median_abs_err"] == pytest.approx(0.1)
    assert pooled.loc["fallback", "median_signed_err"] == pytest.approx(-0.5)


def test_a_kernel_the_partner_ran_under_another_vllm_name_counts_as_exact() -> None:
    """The A100's vLLM 0.14 rows name FlashAttention-2 ``vllm_flash_attn`` and the unquantized linear
    ``vllm_default``; the L40S's 0.24 fit names the same kernels ``vllm_flash_attn_fa2`` and
    ``torch.nn.functional.linear`` (``costmodel.kernels.SAME_KERNEL``): the partner's own key, and the
    prediction uses exactly its parameters."""
    from costmodel.kernels import context_attention, params_for
    from validation.public.transfer import exact_keys, partner_key, transferred_hardware

    a100 = transferred_hardware("a100-80gb")
    assert a100.kernel_calibration is not None
    fitted = a100.kernel_calibration.params
    assert partner_key("vllm.vllm_flash_attn:bf16", fitted["context_attention"], a100) == (
        "vllm.vllm_flash_attn_fa2:bf16"
    )
    assert (
        partner_key("bf16:vllm:vllm_default", fitted["gemm"], a100) == "bf16:vllm:torch.nn.functional.linear"
    )
    assert partner_key("vllm.vllm_triton_mla:ctx:bf16", fitted.get("mla", {}), a100) is None
    moved = params_for(a100, context_attention, "vllm.vllm_flash_attn:bf16")
    theirs = fitted["context_attention"]["vllm.vllm_flash_attn_fa2:bf16"]
    assert all(getattr(moved, name) == value for name, value in theirs.items())
    rows = pd.DataFrame(
        {
            "hardware": "a100-80gb",
            "family": ["context_attention", "gemm", "gemm"],
            "key": ["vllm.vllm_flash_attn:bf16", "bf16:vllm:vllm_default", "bf16:vllm:an_unknown_kernel"],
        }
    )
    assert exact_keys(rows).tolist() == [True, True, False]


def test_transfer_attribution_swaps_the_devices_own_parameters_in_one_at_a_time(tmp_path: Path) -> None:
    """The diagnostic of what does not carry over: on a key both devices fitted, the partner's set, the
    device's own set, each fitted parameter swapped in alone and the fixed times / dimensionless ones as two
    groups, all on the same rows; the partner's own variant recovers nothing."""
    from costmodel.kernels import gemm
    from validation.public.transfer import DIMENSIONLESS, FIXED_TIMES, attribute_parameters

    data = tmp_path / "data"
    write_table(data, "h100_sxm", gemm_table(50))
    frame = attribute_parameters(data)
    assert set(frame["hardware"]) == {"h100-sxm"}
    assert set(frame["source"]) == {"b200"}
    assert set(frame["family"]) == {"gemm"}
    assert set(frame["variant"]) == {"partner", "own", FIXED_TIMES, DIMENSIONLESS, *gemm.BOUNDS}
    assert set(frame["n"]) == {50}
    assert frame.loc[frame["variant"] == "partner", "recovered"].tolist() == [0.0]


def test_the_evaluation_labels_calibration_exactly_the_rows_the_calibration_fits() -> None:
    """The fitter takes the calibration split's rows of every family, the MoE rows of an undetermined tactic
    included, and the evaluation labels exactly those rows "calibration" (issue 14's contract)."""
    from validation.public.calibrate import fitted_rows
    from validation.public.families import moe as moe_adapter

    tables = [t for t in iter_tables(PUBLIC_GPU, systems=["b200_sxm"]) if t.family == "moe"]
    assert tables
    undetermined_fitted = 0
    for table in tables:
        split = table.frame["calibration"].to_numpy(dtype=bool)
        assert (fitted_rows(table) == split).all()
        undetermined_fitted += int((split & moe_adapter.undetermined_tactic(table.frame)).sum())
    assert undetermined_fitted > 0  # the B200's TensorRT-LLM tables do share tactic-cache files


def test_the_collective_adapter_gives_each_nccl_table_its_releases_p2p_ll_limit() -> None:
    from costmodel.kernels import collective
    from validation.public.families import collective as collective_adapter

    releases = {}
    for table in iter_tables(PUBLIC_GPU):
        if table.engine != "nccl":
            continue
        frame = table.frame
        limit = collective_adapter.shapes(frame)["p2p_ll_max_bytes"]
        assert np.all(limit == collective.p2p_ll_max_bytes(table.engine_version)), table.path
        releases[table.system] = (table.engine_version, float(limit[0]))
    # the A100 tables ran NCCL 2.27.3 (LL up to 32 channels x 16 KiB per peer), the H100 and B200 tables 2.29.2
    assert releases["a100_sxm"] == ("2.27.3", 32 * 16384.0)
    assert releases["b200_sxm"] == ("2.29.2", 16384.0) == releases["h100_sxm"]
    # rows without the reader's columns (a bare table) take the newest rule
    bare = pd.DataFrame(
        {
            "op_name": ["alltoall"],
            "kernel_source": ["NCCL"],
            "nccl_dtype": ["half"],
            "message_size": [1024],
            "num_gpus": [8],
        }
    )
    assert collective_adapter.shapes(bare)["p2p_ll_max_bytes"].tolist() == [16384.0]
