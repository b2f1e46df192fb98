"""The validation harness end to end on the CPU: calibrate, run the quick suite, resume, report.

Timing accuracy is not asserted here (the machine is noisy); the committed results and the README report
it. What is asserted: the pipeline works, records carry what they must, FLOP counts match exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import costmodel
from validation.__main__ import main
from validation.kernels import gemm
from validation.kernels.decoder import Decoder, attention_mask, sdpa_mask
from validation.run import read_records
from validation.suite import SMALL, calibration_points, count_flop, full_points, predict, quick_points

REQUIRED = {
    "kernel",
    "family",
    "regime",
    "held_out",
    "measured_s",
    "predicted_s",
    "rel_error",
    "dtype",
    "shape",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("validation")
    profile, out = folder / "cpu-calibrated.yaml", folder / "cpu-quick.jsonl"
    assert main(["calibrate", "--device", "cpu", "--out", str(profile)]) == 0
    assert main(["run", "--device", "cpu", "--suite", "quick", "--hardware", str(profile), "--out", str(out),
                 "--repeats", "3"]) == 0  # fmt: skip
    return profile, out


def test_calibrated_profile_loads_with_measured_efficiencies(results: tuple[Path, Path]) -> None:
    profile = costmodel.load_hardware(str(results[0]))
    assert profile.name == "cpu-calibrated"
    assert "fp32" in profile.efficiency.matmul_fraction_by_dtype
    assert profile.efficiency.source.startswith("calibrated by validation/calibrate.py")
    assert profile.datasheet == costmodel.load_hardware("cpu").datasheet  # only efficiencies change


def test_records_and_environment(results: tuple[Path, Path]) -> None:
    records = read_records(results[1])
    env, points = records[0], records[1:]
    assert env["record"] == "environment"
    assert {"device_name", "torch_version", "costmodel_version", "git_revision", "date"} <= set(env)
    assert len(points) == len(quick_points()) + len(calibration_points("cpu"))  # suite + micro-benchmarks
    measured = [r for r in points if r["status"] == "ok"]
    assert len(measured) >= len(points) - 1  # at most the int8 kernel may be unsupported on a platform
    for r in measured:
        assert set(r) >= REQUIRED, r["kernel"]
        assert r["measured_s"] > 0
        assert r["rel_error"] == pytest.approx((r["predicted_s"] - r["measured_s"]) / r["measured_s"])
    assert {r["held_out"] for r in points if r["family"] in ("layer", "model_prefill", "model_decode")} == {
        True
    }
    assert not any(r["held_out"] for r in points if r["kernel"] in ("copy", "launch"))


def test_peak_memory_of_model_points_within_five_percent(results: tuple[Path, Path]) -> None:
    """Peak live tensor bytes of the reference layers and models (weights, static KV cache, activations;
    counted as the tensors are created and freed) against costmodel.memory: the issue's 5 % target, met
    on this CPU for every layer, whole-model and decode-loop point."""
    kernels = ("layer", "model_prefill", "model_decode", "decode_loop")
    points = [r for r in read_records(results[1])[1:] if r["kernel"] in kernels and r["held_out"]]
    assert len(points) == 9
    for r in points:
        assert r["memory_method"].startswith("peak live tensor bytes")
        assert abs(r["memory_rel_error"]) < 0.05, (r["shape"], r["memory_rel_error"])


def test_flop_counts_match_exactly(results: tuple[Path, Path]) -> None:
    checked = [r for r in read_records(results[1])[1:] if r.get("flop_match") is not None]
    assert len(checked) >= 20
    mismatched = [
        (r["kernel"], r["shape"], r["counted_flop"], r["predicted_flop"])
        for r in checked
        if not r["flop_match"]
    ]
    assert not mismatched


def test_rerun_resumes_without_measuring_again(results: tuple[Path, Path]) -> None:
    before = results[1].read_text()
    assert main(["run", "--device", "cpu", "--suite", "quick", "--hardware", str(results[0]), "--out",
                 str(results[1])]) == 0  # fmt: skip
    assert results[1].read_text() == before


def test_report_writes_markdown(results: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(results[1])]) == 0
    text = results[1].with_suffix(".md").read_text()
    assert "| held-out | model_decode |" in text
    assert "**held-out, all**" in text
    assert "FLOPs exact" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "{tmp}/missing.jsonl"], "{tmp}/missing.jsonl: no such results file"),
        (["report", "{tmp}"], "{tmp}: is a folder; give the results files (*.jsonl) in it"),
        (["public", "--data", "{tmp}/missing", "--out", "{tmp}/out"], "--data {tmp}/missing: no such folder"),
        (["silicon-calibrate", "--data", "{tmp}"], "--data {tmp}: has no silicon_sample.csv"),
    ],
)
def test_a_missing_input_path_is_one_error(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path a command reads that is not there: one line naming it, exit 2, nothing written (issue 17)."""
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message.format(tmp=tmp_path)}\n"
    assert not (tmp_path / "out").exists()


def test_a_torn_last_line_is_skipped_by_report_and_cut_by_resume(
    results: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed mid-write leaves a torn last line: report skips it, resume cuts it and measures that
    point again; a bad line before the last is no interruption but an error naming file and line."""
    lines = results[1].read_text().splitlines()
    torn = tmp_path / "torn.jsonl"
    torn.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    assert main(["report", str(torn)]) == 0
    assert capsys.readouterr().err.count(f"warning: {torn}, line {len(lines)}: skipped a torn last line") == 1
    assert len(read_records(torn)) == len(lines) - 1
    assert main(["run", "--device", "cpu", "--suite", "quick", "--hardware", str(results[0]), "--out",
                 str(torn), "--repeats", "1"]) == 0  # fmt: skip
    again = [json.loads(line) for line in torn.read_text().splitlines()]  # every line whole again
    assert [r.get("id") for r in again] == [json.loads(line).get("id") for line in lines]
    assert "skipped a torn last line" in capsys.readouterr().err  # and cut: the file reads clean now
    assert main(["report", str(torn)]) == 0
    assert "warning" not in capsys.readouterr().err

    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n{oops\n" + lines[1] + "\n")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}, line 2: not a JSON record" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
@pytest.mark.parametrize("command", ["run", "all", "calibrate"])
def test_device_cuda_without_cuda_is_one_error_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: CUDA is not available")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    assert main([command, "--device", "gpu0", "--out", str(tmp_path / "out")]) == 2
    assert "--device 'gpu0' is not a torch device" in capsys.readouterr().err


def test_calibrate_out_that_cannot_be_written_leaves_no_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    assert main(["calibrate", "--device", "cpu", "--out", str(tmp_path)]) == 2  # a folder, refused first
    assert "error: --out" in capsys.readouterr().err

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "cpu-calibrated.yaml"
    assert main(["calibrate", "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"error: --out {out}: cannot write {out}: No space left on device (no partial file was left)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_static_and_growing_caches_agree() -> None:
    """The preallocated (in-place) KV cache and the concatenating one give the same logits."""
    torch.manual_seed(0)
    decoder = Decoder(SMALL.model_copy(update={"n_layers": 2})).eval()
    tokens = torch.randint(0, SMALL.vocab_size, (2, 5))
    with torch.no_grad():
        grow = decoder.empty_cache(2, 0)
        static = decoder.empty_cache(2, 0, capacity=8)
        a, grow = decoder(tokens, grow)
        b, static = decoder(tokens, static)
        c, _ = decoder(tokens[:, :1], grow)
        d, _ = decoder(tokens[:, :1], static)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(c, d)


def test_results_files_committed_are_valid() -> None:
    for path in Path(__file__).resolve().parents[1].glob("validation/results/*.jsonl"):
        records = read_records(path)
        assert records[0]["record"] == "environment", path
        for r in records[1:]:
            assert r["record"] in ("point", "environment", "replay", "metric", "request", "speculative_loop")
            json.dumps(r)


def test_full_suite_preflight_predicts_every_point_and_counts_flops_exactly() -> None:
    """The GPU suite, checked here before any GPU sees it: unique ids, a finite prediction for every point
    on an H100 profile (and peak memory for the model points), and costmodel's FLOPs equal to
    FlopCounterMode's on the meta device wherever the kernel can run there."""
    hardware = costmodel.load_hardware("h100-sxm")
    calibration, suite = calibration_points("cuda"), full_points()
    assert len({p.id for p in suite}) == len(suite)
    shared = {p.id for p in calibration} & {p.id for p in suite}  # measured once, as calibration input
    assert {p.params["M"] for p in suite if p.id in shared} == {8192}
    points = calibration + suite
    assert {"fp8", "bf16", "fp16"} <= {p.dtype for p in points if p.kernel == "gemm"}
    counted = 0
    for point in points:
        prediction = predict(point, hardware)
        assert np.isfinite(prediction.time_s), point
        assert prediction.time_s > 0, point
        if point.kernel in ("layer", "model_prefill", "model_decode", "decode_loop"):
            assert (prediction.memory_bytes or 0) > 0, point
        flop = count_flop(point)
        if flop is not None and prediction.flop is not None:
            assert flop == round(prediction.flop), (point, flop, prediction.flop)
            counted += 1
    assert counted >= 80


def test_fp8_gemm_computes_the_product() -> None:
    """The fp8 kernel (torch._scaled_mm, E4M3 inputs, bf16 out) against the product of the same fp8 values
    in float64; it runs on this CPU too."""
    torch.manual_seed(1)
    out = gemm.fp8(32, 48, 64, "cpu")()
    assert out.shape == (32, 48)
    assert out.dtype == torch.bfloat16
    torch.manual_seed(1)  # the same operands, drawn as the kernel draws them
    a = torch.randn(32, 64, dtype=torch.bfloat16).to(torch.float8_e4m3fn)
    b = torch.randn(48, 64, dtype=torch.bfloat16).to(torch.float8_e4m3fn)
    reference = a.double() @ b.double().T
    error = float((out.double() - reference).norm() / reference.norm())
    assert error < 1e-2  # bf16 rounding of the result


def test_campaign_runs_every_stage_in_one_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m validation all``: stages in order into files named after the device's profile; the suite
    stops at the budget (and resumes later); a failing stage does not stop the next; exit status 1 then."""
    out = tmp_path / "run"
    argv = ["all", "--device", "cpu", "--out", str(out), "--requests", "4", "--repeats", "2"]
    # the whole budget reserved for the stages after the suite: the suite starts no point
    assert main([*argv, "--budget-s", "600", "--reserve-s", "600"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cpu-calibrated.yaml", "cpu-quick.jsonl", "cpu-serving.jsonl", "cpu-speculative.jsonl"]
    assert [r["record"] for r in read_records(out / "cpu-quick.jsonl")] == ["environment"]
    assert costmodel.load_hardware(str(out / "cpu-calibrated.yaml")).name == "cpu-calibrated"
    spec = read_records(out / "cpu-speculative.jsonl")
    assert [r["record"] for r in spec] == ["environment", "speculative_loop", "speculative_loop"]
    assert spec[1]["hardware_profile"] == "cpu-calibrated"  # the stages after calibration use its profile
    assert {r["record"] for r in read_records(out / "cpu-serving.jsonl")} >= {"replay", "metric", "request"}

    # a stage that fails does not stop the next; the calibrated profile is kept, not measured again
    before = (out / "cpu-calibrated.yaml").read_text()
    with monkeypatch.context() as patch:
        patch.setattr("validation.speculative_loop.main", lambda argv: 1 / 0)
        assert main([*argv, "--stages", "calibrate,speculative,serving"]) == 1
    assert (out / "cpu-calibrated.yaml").read_text() == before
    assert len(read_records(out / "cpu-speculative.jsonl")) == 3  # nothing appended by the failed stage
    assert [r["record"] for r in read_records(out / "cpu-serving.jsonl")].count("replay") == 2
    assert "ZeroDivisionError" in capsys.readouterr().out

    # a model name that does not exist: one line naming it, before anything runs
    assert main([*argv, "--model", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_campaign_skips_stages_once_the_budget_is_spent(tmp_path: Path) -> None:
    from validation.campaign import Campaign, run_campaign

    outcome = run_campaign(Campaign("cpu", tmp_path, budget_s=0.0, stages=("calibrate", "report")))
    assert [(r.stage, r.status) for r in outcome] == [("calibrate", "skipped"), ("report", "skipped")]
    with pytest.raises(ValueError, match="unknown stages"):
        run_campaign(Campaign("cpu", tmp_path, stages=("calibrate", "benchmark")))


def test_repredict_judges_a_model_change_on_the_same_measurements(results: tuple[Path, Path]) -> None:
    """Asked again with the profile they were made with, the predictions are the recorded ones; with
    twice the bandwidth, memory-bound points are predicted faster and the measurements stay as they were."""
    from validation.report import before_after, load, repredict

    frame = load([results[1]])
    profile = costmodel.load_hardware(str(results[0]))
    same = repredict(frame, profile)
    np.testing.assert_allclose(same["predicted_s"], same["recorded_predicted_s"], rtol=1e-12)
    eff = profile.efficiency.model_copy(
        update={"memory_bandwidth_fraction": profile.efficiency.memory_bandwidth_fraction * 2}
    )
    faster = repredict(frame, profile.model_copy(update={"efficiency": eff}))
    np.testing.assert_array_equal(faster["measured_s"], same["measured_s"])
    memory = faster["regime"] == "memory"
    assert (faster["predicted_s"][memory] < same["predicted_s"][memory]).all()
    assert "| **composites** |" in before_after(faster)


@pytest.mark.parametrize("window", [None, 4, 64])
@pytest.mark.parametrize(("new", "past"), [(1, 0), (9, 0), (1, 30), (9, 7)])
def test_sdpa_mask_attends_as_the_explicit_mask(new: int, past: int, window: int | None) -> None:
    """Where the decoder drops the mask (SDPA's is_causal, or one query), attention is unchanged."""
    torch.manual_seed(0)
    q = torch.randn(2, 4, new, 8, dtype=torch.float64)  # [B, H, n, hd]
    k, v = torch.randn(2, 2, 2, past + new, 8, dtype=torch.float64)  # [B, Hkv, p + n, hd] each
    explicit = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=attention_mask(new, past, window, "cpu"), enable_gqa=True
    )
    mask = sdpa_mask(new, past, window, "cpu")
    fast = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=mask is None and new > 1, enable_gqa=True
    )
    torch.testing.assert_close(fast, explicit)
    assert (mask is None) == ((past == 0 or new == 1) and (window is None or past + new <= window))


def test_live_tensor_bytes_counts_storages_once_and_frees_them() -> None:
    from validation.measure import LiveTensorBytes

    with LiveTensorBytes() as tracker:
        a = torch.ones(1000)  # 4,000 bytes
        view = a[10:20].view(2, 5)  # a view: the same storage
        a.mul_(2)  # in place: the same storage
        b = torch.ones(500, dtype=torch.float64) + 1  # a temporary (4,000) and b (4,000)
        del b
        c = torch.ones(250, dtype=torch.bfloat16)  # 500
        assert tracker.current == 4_000 + 500
    assert tracker.peak == 4_000 + 4_000 + 4_000
    assert view.shape == (2, 5)
    assert c.nbytes == 500


def test_fp32_calibration_peak_follows_torch_matmul_precision() -> None:
    """torch keeps fp32 matmuls off TF32 by default, so a GPU's fp32 GEMM is judged against the fp32
    (SIMT) peak, not the TF32 tensor-core one, unless the precision is lowered."""
    from validation.calibrate import _fp32_on_tensor_cores

    h100 = costmodel.load_hardware("h100-sxm")
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert not _fp32_on_tensor_cores("cuda", h100)
        torch.set_float32_matmul_precision("high")
        assert _fp32_on_tensor_cores("cuda", h100)
        assert not _fp32_on_tensor_cores("cpu", h100)
    finally:
        torch.set_float32_matmul_precision(before)


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import validation.run as runner
    from validation.suite import Point

    good = Point("gemm", "gemm", {"M": 8, "N": 16, "K": 16, "dtype": "fp32"})
    bad = Point("gemm", "gemm", {"M": 4, "N": 16, "K": 16, "dtype": "fp32"})
    monkeypatch.setitem(runner.SUITES, "quick", lambda: [bad, good])
    real_build = runner.build

    def build(point: Point, device: str) -> object:
        if point == bad:
            raise ValueError("a kernel that breaks in a way nobody foresaw")
        return real_build(point, device)

    monkeypatch.setattr(runner, "build", build)
    out = tmp_path / "r.jsonl"
    records = list(runner.run_suite("cpu", "quick", out, include_calibration=False, repeats=2))
    assert [r["status"] for r in records] == ["error", "ok"]
    assert records[0]["reason"] == "ValueError: a kernel that breaks in a way nobody foresaw"


def test_nvidia_smi_fields_read_in_one_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from validation.measure import _nvidia_smi

    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '580.159.04, 1980, 700.00'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    fields = {"driver": "driver_version", "clocks_sm_mhz": "clocks.sm", "power_limit_w": "power.limit"}
    assert _nvidia_smi(fields) == {"driver": "580.159.04", "clocks_sm_mhz": "1980", "power_limit_w": "700.00"}
    fake.write_text("#!/bin/sh\nexit 9\n")
    assert _nvidia_smi(fields) == dict.fromkeys(fields)
