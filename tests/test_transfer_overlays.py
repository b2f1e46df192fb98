"""Transferred overlays (``costmodel.calibrate.TRANSFER_RULE``): a device without measurements reuses its
source's fitted parameters and keeps its own datasheet (peak, bandwidth, SM count, L2 size); the L2's rate
is carried as an on-die rate per SM (``costmodel.calibrate.ON_CHIP_CACHE_PARAMS``)."""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from costmodel import load_hardware
from costmodel.calibrate import (
    KERNEL_LAUNCH_PARAMS,
    ON_CHIP_CACHE_PARAMS,
    RESIDENCY_CREDIT,
    TRANSFER_RULE,
    carried_cache_ratio,
    carried_clock_scale,
    carried_latency_scale,
    carried_residency_ratio,
    carried_untuned_ratio,
    nearest_measured,
    residency_credit,
    tensor_flop_per_clock_per_sm,
    transfer_overlays,
    transferable,
)
from costmodel.errors import CostmodelError
from costmodel.kernels import moe, numeric_fields, params_for
from costmodel.registry import calibrated_dir, load_hardware_file
from costmodel.specs import HardwareProfile


def _assert_transferred(target: HardwareProfile, source: HardwareProfile) -> None:
    """Every fitted parameter (a family's ``BOUNDS``) is the source's, but the L2's rate, which keeps the
    source's rate per SM; every field whose datasheet default differs between the two devices (peak,
    bandwidth, SM count, L2 size, ...) resolves to the target's."""
    moved, fitted = target.kernel_calibration, source.kernel_calibration
    assert moved is not None
    assert fitted is not None
    assert moved.record.transferred_from == source.name
    assert moved.params.keys() == fitted.params.keys()
    other_link = target.datasheet.intra_node_link != source.datasheet.intra_node_link
    scale = carried_latency_scale(source, target)
    for family_name, keys in fitted.params.items():
        family = importlib.import_module(f"costmodel.kernels.{family_name}")
        link_only = set(getattr(family, "LINK_PARAMS", ())) if other_link else set()
        round_trips = set(getattr(family, "LATENCY_PARAMS", ())) if scale is not None else set()
        assert moved.params[family_name].keys() == keys.keys()
        for key, values in keys.items():
            stored = moved.params[family_name][key]
            for name in values.keys() & family.BOUNDS.keys():
                if name in link_only:  # fitted over another kind of link: the target's own default
                    assert name not in stored, (target.name, family_name, key, name)
                elif name == ON_CHIP_CACHE_PARAMS.get(family_name):
                    resident = residency_credit(family_name, key)
                    carry = carried_residency_ratio if resident else carried_cache_ratio
                    assert stored.get(name) == carry(values[name], source, target)
                elif name in round_trips:  # a link round trip: in proportion to the published latency
                    assert scale is not None
                    assert stored[name] == values[name] * scale, (target.name, family_name, key, name)
                else:
                    assert stored[name] == values[name], (target.name, family_name, key, name)
            try:
                own = numeric_fields(family.default_params(target, key))
            except CostmodelError:  # a datasheet without an SM count: the family cannot run on it at all
                continue
            got = numeric_fields(params_for(target, family, key))
            theirs = numeric_fields(family.default_params(source, key))
            for name, value in values.items():
                if name not in family.BOUNDS and name in own and own[name] != theirs[name] == value:
                    assert got[name] == own[name], (target.name, family_name, key, name)


@pytest.mark.parametrize("target", sorted(TRANSFER_RULE))
def test_committed_transferred_overlays_keep_their_own_datasheet(target: str) -> None:
    """An H200 given the H100's fit streams at its own 4.8 TB/s in every family, not the H100's 3.35."""
    if not (calibrated_dir() / f"{target}.yaml").is_file():
        pytest.skip(f"no committed overlay of {target}")
    hardware = load_hardware(target)
    assert hardware.kernel_calibration is not None
    if hardware.kernel_calibration.record.transferred_from is None:
        pytest.skip(f"{target} has measurements of its own")
    _assert_transferred(hardware, load_hardware(TRANSFER_RULE[target]))


def test_transfer_only_rewrites_the_targets_and_leaves_the_measured_overlay(tmp_path: Path) -> None:
    """A stale H200 overlay (the H100's file, datasheet fields and all) is rewritten from the H100's
    overlay; the H100's file is read, never written."""
    source = calibrated_dir() / "h100-sxm.yaml"
    shutil.copy(source, tmp_path / "h100-sxm.yaml")
    stale = source.read_text().replace("name: h100-sxm", "name: h200", 1)
    (tmp_path / "h200.yaml").write_text(stale.replace("transferred_from: null", "transferred_from: h100-sxm"))
    h200_stale = load_hardware(str(tmp_path / "h200.yaml"))
    assert h200_stale.kernel_calibration is not None
    mla = h200_stale.kernel_calibration.params["mla"]
    assert any(v.get("bandwidth_bytes_per_s") == 3.35e12 for v in mla.values())  # the bug being fixed

    paths, moved = transfer_overlays(tmp_path, transfer={"h200": "h100-sxm", "b300": "b200"})

    assert paths == [tmp_path / "h200.yaml"]
    assert list(moved) == ["h200"]
    assert (tmp_path / "h100-sxm.yaml").read_bytes() == source.read_bytes()
    h200 = load_hardware(str(tmp_path / "h200.yaml"))
    _assert_transferred(h200, load_hardware(str(tmp_path / "h100-sxm.yaml")))
    assert h200.kernel_calibration is not None
    assert h200_stale.kernel_calibration is not None
    assert h200.kernel_calibration.record == h200_stale.kernel_calibration.record  # provenance kept
    assert (tmp_path / "h200.yaml").read_text().splitlines()[0] == stale.splitlines()[0]  # header kept


def test_transfer_only_never_overwrites_a_measured_device(tmp_path: Path) -> None:
    """A target with a fit of its own is left alone; with nothing to transfer, one clear error."""
    for name in ("h100-sxm", "b200"):
        shutil.copy(calibrated_dir() / f"{name}.yaml", tmp_path / f"{name}.yaml")
    before = (tmp_path / "b200.yaml").read_bytes()
    with pytest.raises(CostmodelError, match="no fitted overlay of a transfer source"):
        transfer_overlays(tmp_path, transfer={"b200": "h100-sxm"})
    assert (tmp_path / "b200.yaml").read_bytes() == before


def test_cli_transfer_only(tmp_path: Path) -> None:
    """`costmodel calibrate --transfer-only --out OUT` fits nothing; without --from or it, one clear line."""
    from typer.testing import CliRunner

    from costmodel.cli import app

    shutil.copy(calibrated_dir() / "h100-sxm.yaml", tmp_path / "h100-sxm.yaml")
    result = CliRunner().invoke(app, ["calibrate", "--transfer-only", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == ["h100-pcie.yaml", "h100-sxm.yaml", "h200.yaml"]
    result = CliRunner().invoke(app, ["calibrate", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --from: missing; give the measurement folder, or --transfer-only"
    ]


def test_link_parameters_transfer_only_over_the_same_kind_of_link() -> None:
    """NVLink / NVSwitch collectives fitted on an H100 SXM: an H200 (NVLink too) takes all of them; an H100
    PCIe, whose GPUs meet over PCIe, takes the software's fixed times (launch and handshake, the host's eager
    floor) but keeps its own defaults for the per-step latency and the link's bandwidth fractions."""
    from costmodel.kernels import collective

    sxm, pcie, h200 = (load_hardware(n) for n in ("h100-sxm", "h100-pcie", "h200"))
    assert sxm.datasheet.intra_node_link == h200.datasheet.intra_node_link == "nvlink"
    assert pcie.datasheet.intra_node_link == "pcie"
    fit = dict(
        numeric_fields(collective.default_params(sxm, "nccl:all_reduce")),
        small_latency_s=4.9e-6, hop_latency_s=1.8e-6, large_bandwidth_fraction=0.65, host_floor_s=3e-6,
    )  # fmt: skip
    fitted = {"collective": {"nccl:all_reduce": fit}}
    same = transferable(fitted, sxm, h200)["collective"]["nccl:all_reduce"]
    other = transferable(fitted, sxm, pcie)["collective"]["nccl:all_reduce"]
    assert (same["hop_latency_s"], same["large_bandwidth_fraction"]) == (1.8e-6, 0.65)
    assert (other["small_latency_s"], other["host_floor_s"]) == (4.9e-6, 3e-6)
    assert not set(collective.LINK_PARAMS) & other.keys()
    own = collective.default_params(pcie, "nccl:all_reduce")
    resolved = collective.Params(**{**vars(own), **other})
    assert resolved.large_bandwidth_fraction == own.large_bandwidth_fraction
    # an NVLink key stores ll_max_bytes = 0 (no LL -> Simple switch there); a PCIe target keeps NCCL's switch
    stored = transferable({"collective": {"nccl:all_reduce": {**fit, "ll_max_bytes": 0.0}}}, sxm, pcie)
    assert "ll_max_bytes" not in stored["collective"]["nccl:all_reduce"]
    assert params_for(pcie, collective, "nccl:all_reduce").ll_max_bytes == collective.NCCL_LL_MAX_BYTES
    assert resolved.link_bandwidth_bytes_per_s == pcie.datasheet.intra_node_bandwidth_gb_per_s.value * 1e9
    assert transferable(fitted, sxm)["collective"]["nccl:all_reduce"] == same  # no target: nothing dropped


def test_collective_round_trips_carry_by_the_published_latency() -> None:
    """A collective's fixed latencies are flag round trips over the link: a B200 given an H100's fit takes
    them x 3.0 / 2.3 µs (the two nodes' published 8-byte all-reduce latencies), and an H100 given that back
    gets the H100's own values; the host's eager floor and every fraction carry as fitted. An H200 (the
    H100's NVLink 4 and NVSwitch, the same published latency) takes them as they are, and so does a GB200,
    whose profile publishes none."""
    from costmodel.kernels import collective

    h100, h200, b200, gb200 = (load_hardware(n) for n in ("h100-sxm", "h200", "b200", "gb200"))
    fit = dict(
        numeric_fields(collective.default_params(h100, "nccl:all_reduce")),
        small_latency_s=4.9e-6, large_extra_latency_s=1.9e-5, hop_latency_s=1.8e-6, symm_latency_s=9e-6,
        host_floor_s=2.1e-5, large_bandwidth_fraction=0.65, small_bandwidth_ratio=0.5,
    )  # fmt: skip
    fitted = {"collective": {"nccl:all_reduce": fit}}
    assert set(collective.LATENCY_PARAMS) <= set(collective.BOUNDS)
    assert "host_floor_s" not in collective.LATENCY_PARAMS  # host time, which no link sets
    assert carried_latency_scale(h100, b200) == pytest.approx(3.0 / 2.3)
    moved = transferable(fitted, h100, b200)["collective"]["nccl:all_reduce"]
    for name in collective.LATENCY_PARAMS:
        assert moved[name] == pytest.approx(fit[name] * 3.0 / 2.3), name
    for name in ("host_floor_s", "large_bandwidth_fraction", "small_bandwidth_ratio"):
        assert moved[name] == fit[name], name
    back = transferable({"collective": {"nccl:all_reduce": moved}}, b200, h100)["collective"]
    for name in collective.LATENCY_PARAMS:
        assert back["nccl:all_reduce"][name] == pytest.approx(fit[name]), name
    assert carried_latency_scale(h100, h200) == 1.0
    assert carried_latency_scale(b200, gb200) is None
    for target in (h200, gb200):
        kept = transferable(fitted, h100 if target is h200 else b200, target)["collective"]["nccl:all_reduce"]
        assert all(kept[name] == fit[name] for name in collective.LATENCY_PARAMS), target.name
    gemm = {"gemm": {"bf16": {"launch_s": 6e-6, "compute_fraction": 0.7}}}
    assert transferable(gemm, h100, b200)["gemm"]["bf16"]["launch_s"] == 6e-6  # a kernel launch: not a link


def test_leave_one_out_transfer_scales_the_collective_latencies() -> None:
    """The transfer check's B200 takes the H100's fitted collective latencies x 3.0 / 2.3 and records where
    they came from; its host floor is the H100's."""
    from validation.public.transfer import transferred_hardware

    b200, h100 = transferred_hardware("b200").kernel_calibration, load_hardware("h100-sxm").kernel_calibration
    assert b200 is not None
    assert h100 is not None
    assert b200.record.transferred_from == "h100-sxm"
    for key, own in h100.params["collective"].items():
        got = b200.params["collective"][key]
        assert got["small_latency_s"] == pytest.approx(own["small_latency_s"] * 3.0 / 2.3), key
        assert got.get("host_floor_s") == own.get("host_floor_s"), key


def test_kernel_launch_times_carry_by_the_clock() -> None:
    """A kernel's fixed launch times are GPU cycles: an A100 (1,410 MHz) given an L40S's (2,520 MHz) fit
    takes them x 2520 / 1410 in every family that has them, and gives them back x 1410 / 2520; per-CTA
    costs, the host floor and the fractions carry as fitted. The A100 40GB from the A100 80GB (the same
    clock) takes them as they are, and a device whose profile states no clock (the RTX PRO 6000 from the
    L40S) too."""
    import importlib

    a100, a100_40, l40s, rtx = (
        load_hardware(n) for n in ("a100-80gb", "a100-40gb", "l40s", "rtx-pro-6000-server")
    )
    assert carried_clock_scale(l40s, a100) == pytest.approx(2520 / 1410)
    assert carried_clock_scale(a100, a100_40) == 1.0
    assert carried_clock_scale(l40s, rtx) is None
    fitted = {}
    for family, names in KERNEL_LAUNCH_PARAMS.items():
        module = importlib.import_module(f"costmodel.kernels.{family}")
        assert set(names) <= set(module.BOUNDS), family
        extra = {n: 3e-6 for n in ("cta_overhead_s", "host_floor_s") if n in module.BOUNDS}
        fitted[family] = {"bf16": {**dict.fromkeys(names, 1e-05), **extra, "bandwidth_fraction": 0.7}}
    moved = transferable(fitted, l40s, a100)
    back = transferable(moved, a100, l40s)
    for family, names in KERNEL_LAUNCH_PARAMS.items():
        for name in names:
            assert moved[family]["bf16"][name] == pytest.approx(1e-5 * 2520 / 1410), (family, name)
            assert back[family]["bf16"][name] == pytest.approx(1e-5), (family, name)
        for name, value in fitted[family]["bf16"].items():
            if name not in names:
                assert moved[family]["bf16"][name] == value, (family, name)
    for source, target in ((a100, a100_40), (l40s, rtx)):
        kept = transferable(fitted, source, target)
        assert all(kept[f]["bf16"]["launch_s"] == 1e-5 for f in KERNEL_LAUNCH_PARAMS), target.name
    collective = {"collective": {"vLLM_custom": {"small_latency_s": 5e-6, "host_floor_s": 4e-5}}}
    assert transferable(collective, l40s, a100)["collective"]["vLLM_custom"]["host_floor_s"] == 4e-5


def test_default_configuration_slowdown_carries_by_the_tensor_rate_per_clock() -> None:
    """vLLM's default MoE tile's extra operand feed, in units of its tensor time, scales with the tensor rate
    per SM per clock: with p = 1 (feed and compute add) an A100's ratio 1.5 is 1 + 0.5 x the L40S's rate over
    the A100's on the L40S, from the datasheets' peaks, SM counts and clocks; the ratio goes back as it came;
    with a large p (the roofline's max) an L40S, at half the A100's rate per clock, is under its feed and runs
    at 1; a ratio of 1, and devices of one rate or without a stated clock (A100 40GB, H100 / B200), take the
    ratio as fitted; the other parameters carry as fitted."""
    a100, a100_40, l40s, h100, b200 = (
        load_hardware(n) for n in ("a100-80gb", "a100-40gb", "l40s", "h100-sxm", "b200")
    )
    rate_a100, rate_l40s = 312e12 / (108 * 1410e6), 362.05e12 / (142 * 2520e6)
    bounds = moe.BOUNDS["default_config_ratio"]
    assert tensor_flop_per_clock_per_sm(a100, "bf16") == pytest.approx(rate_a100)
    assert tensor_flop_per_clock_per_sm(l40s, "bf16") == pytest.approx(rate_l40s)
    assert tensor_flop_per_clock_per_sm(h100, "bf16") is None  # no clock stated
    assert carried_untuned_ratio(1.5, 1.0, "bf16", a100, l40s, bounds=bounds) == pytest.approx(
        1 + 0.5 * rate_l40s / rate_a100
    )
    assert carried_untuned_ratio(1.5, 60.0, "bf16", a100, l40s, bounds=bounds) == pytest.approx(1.0, abs=0.02)
    for source, target in ((a100, a100_40), (h100, b200), (b200, h100)):
        assert carried_untuned_ratio(1.5, 2.0, "bf16", source, target, bounds=bounds) is None
    assert carried_untuned_ratio(1.0, 2.0, "bf16", a100, l40s, bounds=bounds) is None
    fitted = {
        "moe": {"bf16": {"default_config_ratio": 1.44, "overlap_exponent": 1.9, "compute_fraction": 0.5}}
    }
    moved = transferable(fitted, a100, l40s)["moe"]["bf16"]
    assert 1.0 < moved["default_config_ratio"] < 1.44
    assert (moved["overlap_exponent"], moved["compute_fraction"]) == (1.9, 0.5)
    assert transferable({"moe": {"bf16": moved}}, l40s, a100)["moe"]["bf16"][
        "default_config_ratio"
    ] == pytest.approx(1.44)
    assert transferable(fitted, a100, a100_40)["moe"]["bf16"] == fitted["moe"]["bf16"]


def test_a_carried_default_configuration_slowdown_stays_within_the_fits_bounds() -> None:
    """Carried to a device of twice the tensor rate per SM per clock (L40S -> A100), a large ratio's extra
    feed doubles past what a fit on the target could reach: with p = 1, 3.5 on the L40S is
    1 + 2.5 x the A100's rate over the L40S's, about 6 on the A100, above the family's bound 4, and the
    carry returns the bound, directly and through :func:`transferable`; the lower bound (0.5) is below any
    carried ratio (never under 1), so a ratio carried within the bounds is unchanged by them."""
    a100, l40s = load_hardware("a100-80gb"), load_hardware("l40s")
    low, high = moe.BOUNDS["default_config_ratio"]
    assert (low, high) == (0.5, 4.0)
    rate_a100, rate_l40s = 312e12 / (108 * 1410e6), 362.05e12 / (142 * 2520e6)
    unclamped = carried_untuned_ratio(3.5, 1.0, "bf16", l40s, a100, bounds=(0.0, float("inf")))
    assert unclamped == pytest.approx(1 + 2.5 * rate_a100 / rate_l40s)
    assert unclamped is not None
    assert unclamped > high
    assert carried_untuned_ratio(3.5, 1.0, "bf16", l40s, a100, bounds=(low, high)) == high
    within = carried_untuned_ratio(1.2, 1.0, "bf16", l40s, a100, bounds=(low, high))
    assert within == pytest.approx(1 + 0.2 * rate_a100 / rate_l40s)
    fitted = {"moe": {"bf16": {"default_config_ratio": 3.5, "overlap_exponent": 1.0}}}
    assert transferable(fitted, l40s, a100)["moe"]["bf16"]["default_config_ratio"] == high


MEASURED = ("a100-80gb", "b200", "h100-sxm", "l40s")
"""The devices with measurements of their own (the public tables), which the rule takes fits from."""


@pytest.mark.parametrize("target", sorted(TRANSFER_RULE))
def test_transfer_rule_names_the_nearest_measured_device(target: str) -> None:
    """Each target's source is the measured device of the same compute capability, else of the same
    architecture (major version), else of the same kind of link: H200 and H100 PCIe (9.0) <- H100 SXM, A100
    40GB (8.0) <- A100 80GB, not the L40S (8.9); GB200 (10.0), B300 and GB300 (10.3) <- B200; the RTX PRO
    6000 (12.0, no measured Blackwell workstation part) <- the PCIe L40S."""
    measured = [load_hardware(name) for name in MEASURED]
    assert nearest_measured(load_hardware(target), measured) == TRANSFER_RULE[target]


def test_committed_transferred_overlays_are_what_transfer_only_writes(tmp_path: Path) -> None:
    """`costmodel calibrate --transfer-only` on the committed measured overlays rewrites every committed
    transferred overlay byte for byte: none was edited by hand or left behind by an older rule."""
    committed = {
        path.name: path.read_bytes()
        for path in calibrated_dir().glob("*.yaml")
        if path.stem in TRANSFER_RULE or path.stem in MEASURED
    }
    for name in MEASURED:
        shutil.copy(calibrated_dir() / f"{name}.yaml", tmp_path / f"{name}.yaml")
    paths, _ = transfer_overlays(tmp_path)
    assert {p.name for p in paths} == {n for n in committed if Path(n).stem in TRANSFER_RULE}
    for path in paths:
        assert path.read_bytes() == committed[path.name], path.name


def test_l2_rate_is_carried_per_sm() -> None:
    """The L2 is on the die: an H200 (the H100's die and SMs; 4.8 vs 3.35 TB/s of HBM) streams L2-resident
    data at the H100's rate, so its ratio over its own memory is 3.35 / 4.8 of the H100's, never below 1; a
    device with more SMs (same bandwidth) gets a higher ratio, one with more bandwidth (same SMs) a lower or
    equal one; the B200 (148 SMs, 8 TB/s, a cited L2 size) gets the H100's rate per SM on its 148; a
    datasheet without the L2 size leaves the target's default."""
    h100, h200, b200 = (load_hardware(n) for n in ("h100-sxm", "h200", "b200"))
    gb200 = load_hardware("gb200")
    for ratio in (1.0, 1.5, 3.0):
        carried = carried_cache_ratio(ratio, h100, h200)
        assert carried is not None
        h100_rate, h200_rate = ratio * 3.35e12, carried * 4.8e12
        assert h200_rate == pytest.approx(h100_rate) or (carried == 1.0 and h100_rate <= 4.8e12)
    assert carried_cache_ratio(1.5, h100, h100) == pytest.approx(1.5)

    def variant(bandwidth_tb_per_s: float, sms: float) -> HardwareProfile:
        sheet = h200.datasheet.model_copy(
            update={
                "memory_bandwidth_tb_per_s": h200.datasheet.memory_bandwidth_tb_per_s.model_copy(
                    update={"value": bandwidth_tb_per_s}
                ),
                "compute_units": h200.datasheet.compute_units.model_copy(update={"value": sms})
                if h200.datasheet.compute_units is not None
                else None,
            }
        )
        return h200.model_copy(update={"datasheet": sheet})

    by_bandwidth = [carried_cache_ratio(3.0, h100, variant(bw, 132)) for bw in (2.0, 3.35, 4.8, 8.0)]
    assert all(a is not None and b is not None and a >= b for a, b in itertools.pairwise(by_bandwidth))
    by_sms = [carried_cache_ratio(3.0, h100, variant(3.35, n)) for n in (66, 132, 264)]
    assert all(a is not None and b is not None and a < b for a, b in itertools.pairwise(by_sms))
    h100_per_sm = 3.0 * 3.35e12 / 132  # the H100's L2 rate per SM at a fitted ratio of 3 [B/s]
    assert carried_cache_ratio(3.0, h100, b200) == pytest.approx(h100_per_sm * 148 / 7.7e12)
    assert carried_cache_ratio(3.0, b200, h100) == pytest.approx(3.0 * 7.7e12 / 148 * 132 / 3.35e12)
    # the GB200 (152 SMs, 8.0 TB/s against the B200's 7.7): the B200's L2 rate per SM on 4 more SMs, over its own
    # bandwidth; a datasheet without the L2 size
    # (its profile stripped of it here) leaves the target's default
    assert carried_cache_ratio(1.5, b200, gb200) == pytest.approx(1.5 * 7.7 / 148 * 152 / 8.0)
    no_l2 = gb200.model_copy(
        update={"datasheet": gb200.datasheet.model_copy(update={"on_chip_cache_mib": None})}
    )
    assert carried_cache_ratio(1.5, b200, no_l2) is None


def test_latency_ratio_needs_the_same_kind_of_link() -> None:
    """A PCIe node's published latency over an NVLink node's is no ratio of round trips: nothing is scaled."""
    h100, pcie = load_hardware("h100-sxm"), load_hardware("h100-pcie")
    stated = pcie.datasheet.model_copy(update={"intra_node_latency_us": h100.datasheet.intra_node_latency_us})
    pcie = pcie.model_copy(update={"datasheet": stated})
    assert pcie.datasheet.intra_node_link != h100.datasheet.intra_node_link
    assert carried_latency_scale(h100, pcie) is None


@pytest.mark.parametrize("value", [-3.0, 0.0])
def test_a_bad_published_latency_is_refused_naming_the_field(tmp_path: Path, value: float) -> None:
    text = (calibrated_dir().parent / "h100-sxm.yaml").read_text(encoding="utf-8")
    assert "intra_node_latency_us: {value: 2.3," in text
    path = tmp_path / "bad.yaml"
    path.write_text(
        text.replace("intra_node_latency_us: {value: 2.3,", f"intra_node_latency_us: {{value: {value},")
    )
    with pytest.raises(CostmodelError, match="intra_node_latency_us"):
        load_hardware_file(path)


def test_shape_fallback_kernels_stay_within_their_major_version() -> None:
    """vLLM runs FlashAttention-4 on an sm90 device only where FlashAttention-3 cannot (head_dim > 256):
    the H100's ``vllm_flash_attn_fa4`` keys reach an H200 (the same major version) as fitted, but not a
    B200 (major 10), where a FlashAttention decode key then takes the H100's FlashAttention-3 fit alone
    through the sibling step instead of the median of FlashAttention-3 and the head_dim-512 kernel (vLLM's
    B200 decode kernel, FlashInfer's, takes neither: ``generation_attention.SIBLING_LIBRARY``)."""
    from costmodel.kernels import generation_attention, shape_fallback_key
    from validation.public.transfer import transferred_hardware

    assert shape_fallback_key("vllm.vllm_flash_attn_fa4:bf16", "9.0")
    assert not shape_fallback_key("vllm.vllm_flash_attn_fa4:bf16", "10.0")
    assert not shape_fallback_key("vllm.vllm_flash_attn_fa4:bf16", None)
    assert not shape_fallback_key("vllm.vllm_flash_attn_fa3:bf16", "9.0")
    h100, h200, b200 = (load_hardware(n) for n in ("h100-sxm", "h200", "b200"))
    fa3, fa4 = "vllm.vllm_flash_attn_fa3:bf16", "vllm.vllm_flash_attn_fa4:bf16"
    fitted = {
        family: {fa3: {"launch_s": 1e-5, "combine_s": 1e-6}, fa4: {"launch_s": 1e-5, "combine_s": 1e-4}}
        for family in ("generation_attention", "context_attention")
    }
    assert all(fa4 in v for v in transferable(fitted, h100, h200).values())
    moved = transferable(fitted, h100, b200)
    assert all(fa4 not in v and fa3 in v for v in moved.values())
    assert transferable(moved, b200, h100) == moved  # nothing of the kind on major 10
    source = h100.kernel_calibration
    assert source is not None
    assert fa4 in source.params["generation_attention"]
    b200_moved = transferred_hardware("b200")
    got = params_for(b200_moved, generation_attention, "vllm.vllm_flash_attn_fa2:bf16")
    assert got.combine_s == source.params["generation_attention"][fa3]["combine_s"]
    flashinfer = "vllm.vllm_flashinfer_trtllmdecode:bf16"  # another library: no sibling of either
    got = params_for(b200_moved, generation_attention, flashinfer)
    assert got.combine_s == generation_attention.default_params(b200, flashinfer).combine_s


def test_a_decode_key_of_another_kernel_on_the_target_carries_nothing() -> None:
    """TensorRT-LLM's attention op decodes with trtllm-gen from SM 100 (not 120 / 121) and XQA below: one key,
    two kernels. Carried between an H100 and a B200, such a key keeps no fitted parameter (each was fitted with
    the kernel's grid, and the stream's share differs between kernels on one device: the committed B200 fits
    hold 0.063 for trtllm-gen ``bf16+wide`` and 0.82 for the same kernel through vLLM's FlashInfer); it stays
    in the overlay, empty, so the target's datasheet defaults time it (oracle: ``default_params``). Between two
    devices that run one kernel (H200 <- H100, B300 <- B200) every parameter carries, as it does where
    neither profile states a capability, and a vLLM key is one kernel everywhere."""
    from costmodel.kernels import generation_attention as gen
    from validation.public.transfer import transferred_hardware

    key, vllm = "trtllm.torch_flow:bf16", "vllm.vllm_flash_attn_fa3:bf16"
    assert gen.capability_kernel(key, "9.0") == gen.capability_kernel(key, "12.0") == "xqa"
    assert gen.capability_kernel(key, "12.1") == "xqa"
    assert gen.capability_kernel(key, "10.0") == gen.capability_kernel(key, "10.3") == "trtllm-gen"
    assert gen.capability_kernel(key, None) is None
    assert gen.capability_kernel(vllm, "9.0") is gen.capability_kernel(vllm, "10.0") is None
    assert gen.capability_kernel("trtllm.torch_flow_flashinfer:bf16", "10.0") is None
    assert gen.KERNEL_INDEPENDENT_PARAMS == ()
    h100, h200, b200, b300 = (load_hardware(n) for n in ("h100-sxm", "h200", "b200", "b300"))
    fit = {"bandwidth_fraction": 0.8, "launch_s": 8e-6, "combine_s": 3e-6, "cta_overhead_s": 2e-6,
           "max_splits": 32.0, "heads_per_cta": 8.0}  # fmt: skip
    fitted = {"generation_attention": {key: fit, vllm: fit}}
    for source, target in ((h100, b200), (b200, h100)):
        moved = transferable(fitted, source, target)["generation_attention"]
        assert moved[key] == {}
        assert moved[vllm] == fit
    for source, target in ((h100, h200), (b200, b300)):
        assert transferable(fitted, source, target)["generation_attention"][key] == fit

    def unstated(hw: Any) -> Any:
        return hw.model_copy(
            update={"datasheet": hw.datasheet.model_copy(update={"cuda_compute_capability": None})}
        )

    both = transferable(fitted, unstated(h100), unstated(b200))["generation_attention"]
    assert both[key] == fit
    assert transferable(fitted, h100, unstated(b200))["generation_attention"][key] == {}
    # the leave-one-out H100 from the B200's committed fit: the whole key is the H100's datasheet
    got = params_for(transferred_hardware("h100-sxm"), gen, key)
    assert got == gen.default_params(h100, key)


def test_pcie_collectives_default_to_nccls_pcie_rate() -> None:
    """A PCIe device's unfitted link fractions are NCCL's own PCIe rate (``width x speed / 80`` GB/s, speed
    120 for 16 GT/s and 240 for 32 GT/s per lane: 24 of the L40S's 32 GB/s Gen4 x16, 48 of the H100 PCIe's
    64 GB/s Gen5 x16); an NVLink device that publishes no all-reduce bus bandwidth keeps its profile's
    interconnect fraction."""
    from costmodel.kernels import collective

    for name, lanes, speed in (("l40s", 16, 120), ("h100-pcie", 16, 240)):
        hw = load_hardware(name)
        params = collective.default_params(hw, "vLLM_custom")
        nccl_gb_per_s = lanes * speed / 80
        link = hw.datasheet.intra_node_bandwidth_gb_per_s
        assert link is not None
        assert params.large_bandwidth_fraction == pytest.approx(nccl_gb_per_s / link.value)
        assert params.host_bandwidth_ratio == params.large_bandwidth_fraction
    h100 = load_hardware("h100-sxm")
    assert h100.datasheet.intra_node_allreduce_busbw_gb_per_s is None
    assert collective.default_params(h100).large_bandwidth_fraction == h100.efficiency.interconnect_fraction


def test_an_nvlink_ring_defaults_to_its_published_bus_bandwidth() -> None:
    """An A100's unfitted ring runs at the all-reduce bus bandwidth Azure measured on 8 A100 SXM4 80GB with
    nccl-tests (231.58 GB/s at 8 GB, ND A100 v4), not the profile's assumed 0.8 of its 300 GB/s NVLink: the
    model's ring (the bandwidth-optimal path) for an 8-GPU all-reduce of 8 GiB, timed with the defaults,
    reports that bus bandwidth back (nccl-tests' busbw = size / time x 2 (n - 1) / n) to within its fixed
    latency, under NCCL's own tuning cap for an sm80 ring (235 GB/s). The leave-one-out A100, whose partner
    (the L40S) meets over PCIe, keeps it."""
    from costmodel.kernels import collective
    from validation.public.transfer import transferred_hardware

    a100 = load_hardware("a100-80gb")
    published = a100.datasheet.intra_node_allreduce_busbw_gb_per_s
    assert published is not None
    assert published.value == 231.58
    params = collective.default_params(a100, "nccl:all_reduce")
    assert params.large_bandwidth_fraction == pytest.approx(231.58 / 300)
    size, n = 8 * 2.0**30, 8
    ring_s = float(collective.breakdown(a100, params, message_bytes=size, num_gpus=n).large_s)
    fixed_s = params.small_latency_s + params.large_extra_latency_s + params.hop_latency_s * 2 * (n - 1)
    busbw_gb_per_s = size / ring_s * 2 * (n - 1) / n / 1e9
    assert busbw_gb_per_s < 231.58 < 235.0
    assert size / (ring_s - fixed_s) * 2 * (n - 1) / n / 1e9 == pytest.approx(231.58)
    moved = transferred_hardware("a100-80gb")
    resolved = params_for(moved, collective, "nccl:all_reduce")
    assert resolved.large_bandwidth_fraction == pytest.approx(231.58 / 300)


def test_a_one_shot_rate_ratio_stays_with_its_link() -> None:
    """The small-message path's rate is a ratio to the ring's fraction on the same link: an L40S (PCIe) given
    an A100's (NVLink) custom all-reduce fit keeps its own ratio (1 for a one-shot), so its two-GPU one-shot
    runs at NCCL's PCIe rate, not 1.48 x it (above the link's); the handshake and host floor carry."""
    from costmodel.kernels import collective

    a100, l40s = load_hardware("a100-80gb"), load_hardware("l40s")
    fitted = {"collective": {"vLLM_custom": {"small_bandwidth_ratio": 1.48, "small_latency_s": 5e-6}}}
    moved = transferable(fitted, a100, l40s)["collective"]["vLLM_custom"]
    assert moved == {"small_latency_s": 5e-6}
    params = collective.Params(**{**vars(collective.default_params(l40s, "vLLM_custom")), **moved})
    size = 2.0**30
    time = collective.time_s(l40s, params, message_bytes=size, num_gpus=2)
    assert size / time < l40s.datasheet.intra_node_bandwidth_gb_per_s.value * 1e9  # type: ignore[union-attr]


def _with_l2(hardware: HardwareProfile, mib: float) -> HardwareProfile:
    entry = hardware.datasheet.on_chip_cache_mib
    assert entry is not None
    sheet = hardware.datasheet.model_copy(
        update={"on_chip_cache_mib": entry.model_copy(update={"value": mib})}
    )
    return hardware.model_copy(update={"datasheet": sheet})


def test_a_residency_credit_carries_the_time_a_smaller_l2_can_save() -> None:
    """Oracle: two-tier streaming time. A target whose L2 holds ``h`` = L2_t / L2_s of the source's resident
    bytes streams ``h`` of them at its die's L2 rate (``rate``, the per-SM rule) and the rest from memory,
    ``t = (1 - h) + h / rate`` of the memory time, so its credit is ``1 / t`` (the B200's 126 MiB -> the
    H100's 50). Where the target's L2 is as large or larger (H200 from H100, L40S from A100, the device
    itself) ``h`` = 1 and the per-SM rate carries unchanged: a device carries its own fit."""
    h100, h200, b200, a100, l40s = (
        load_hardware(n) for n in ("h100-sxm", "h200", "b200", "a100-80gb", "l40s")
    )
    for ratio in (1.0, 1.3, 1.81, 4.5):
        h = 50.0 / 126.0
        rate = carried_cache_ratio(ratio, b200, h100)
        assert rate is not None
        assert carried_residency_ratio(ratio, b200, h100) == pytest.approx(1.0 / ((1.0 - h) + h / rate))
    for source, target in ((h100, h200), (a100, l40s), (h100, b200), (h100, h100)):
        rate = carried_cache_ratio(1.7, source, target)
        assert carried_residency_ratio(1.7, source, target) == pytest.approx(rate, rel=1e-12)
    for device in (h100, b200, a100):
        assert carried_residency_ratio(1.7, device, device) == pytest.approx(1.7, rel=1e-12)  # its own fit
    gb200 = load_hardware("gb200")
    no_l2 = gb200.model_copy(
        update={"datasheet": gb200.datasheet.model_copy(update={"on_chip_cache_mib": None})}
    )
    assert carried_residency_ratio(1.7, b200, no_l2) is None  # no L2 stated: the default


def test_a_residency_credit_is_continuous_where_the_l2_sizes_meet() -> None:
    """Review 17b: a target whose L2 is the source's less 0.1 % (h100-pcie <- h100-sxm and a100-40gb <-
    a100-80gb sit on that edge) gets the equal-L2 credit less at most its slope there: d ln(credit) / dh
    at h = 1 is credit - 1 for a two-tier time, so the step is under (credit - 1) x 0.1 %, where the old
    rule jumped by up to 2.2x. A datasheet's rounding of the L2 size cannot move the credit by a step."""
    pairs = (("h100-sxm", "h100-pcie"), ("a100-80gb", "a100-40gb"), ("b200", "h100-sxm"))
    for source_name, target_name in pairs:
        source, target = load_hardware(source_name), load_hardware(target_name)
        entry = source.datasheet.on_chip_cache_mib
        assert entry is not None
        for ratio in (1.3, 1.8, 4.5):
            at = carried_residency_ratio(ratio, source, _with_l2(target, entry.value))
            under = carried_residency_ratio(ratio, source, _with_l2(target, entry.value * 0.999))
            assert at is not None
            assert under is not None
            assert under <= at
            assert at / under - 1.0 <= (at - 1.0) * 1e-3 * 1.01, (source_name, target_name, ratio)


def test_a_smaller_target_l2_never_gives_a_faster_carried_decode() -> None:
    """Physics direction: the same B200 decode fit, carried onto H100s whose L2 shrinks from 126 MiB to 8,
    never predicts a decode faster (every working set from 1 to 200 MiB; a set the L2 does not hold streams
    from memory), and its credit never rises. (A vLLM key: TensorRT-LLM's own decode key carries nothing
    between these two, being another kernel on each, ``generation_attention.capability_kernel``.)"""
    from costmodel.kernels import generation_attention

    b200, h100 = load_hardware("b200"), load_hardware("h100-sxm")
    assert b200.kernel_calibration is not None
    key = "vllm.vllm_flashinfer_trtllmdecode:bf16"
    fitted = {
        "generation_attention": {key: dict(b200.kernel_calibration.params["generation_attention"][key])}
    }
    assert fitted["generation_attention"][key]["cache_bandwidth_ratio"] > 1.2
    kv_len = np.geomspace(4, 800, 24)  # 64 x 8 KV heads x 256 x 2 B = 0.25 MiB a token: 1-200 MiB
    shapes = {"batch_size": 64.0, "kv_len": kv_len, "n_heads": 32.0, "n_kv_heads": 8.0, "head_dim": 128.0}
    previous_time, previous_credit = None, None
    for mib in (126.0, 100.0, 64.0, 50.0, 32.0, 8.0):
        target = _with_l2(h100, mib)
        moved = transferable(fitted, b200, target)["generation_attention"][key]
        start = generation_attention.default_params(target, key)
        params = dataclasses.replace(start, **{k: v for k, v in moved.items() if hasattr(start, k)})
        time_s = generation_attention.time_s(target, params, **shapes)
        if previous_time is not None:
            assert np.all(time_s >= previous_time * (1.0 - 1e-12)), mib
            assert moved["cache_bandwidth_ratio"] <= previous_credit
        previous_time, previous_credit = time_s, moved["cache_bandwidth_ratio"]


def test_residency_credit_is_limited_to_the_kernels_it_describes() -> None:
    """Decode attention, MLA's decode (and its module) and the GEMMs carry a residency credit; MoE (a hit
    curve against the target's own L2), context attention and MLA's prefill and absorb matmuls (resident
    operands re-read within the call) carry the die's rate per SM: a B200 ratio of 2 reaches the H100 as
    2 x the two devices' bandwidth per SM there, and as the two-tier time of 50 / 126 of its bytes in the
    others."""
    assert set(RESIDENCY_CREDIT) <= set(ON_CHIP_CACHE_PARAMS)
    b200, h100 = load_hardware("b200"), load_hardware("h100-sxm")
    per_sm = 2.0 * 7.7e12 / 148 * 132 / 3.35e12
    h = 50.0 / 126.0
    two_tier = 1.0 / (1.0 - h + h / per_sm)
    cases = {
        ("moe", "bf16:trtllm:moe_torch_flow_cutlass"): per_sm,
        ("context_attention", "trtllm.torch_flow:bf16"): per_sm,
        ("mla", "trtllm.trtllm_bmm_out:bmm_post:bf16"): per_sm,
        ("mla", "trtllm.default:ctx:bf16"): per_sm,
        ("mla", "trtllm.default:gen:bf16"): two_tier,
        ("mla", "trtllm.default:gen_module:bf16+fp8kv"): two_tier,
        ("generation_attention", "vllm.vllm_flash_attn_fa3:bf16"): two_tier,  # one kernel on both
        ("gemm", "fp8:trtllm:torch_flow"): two_tier,
    }
    for (family, key), expected in cases.items():
        name = ON_CHIP_CACHE_PARAMS[family]
        moved = transferable({family: {key: {name: 2.0}}}, b200, h100)[family][key]
        assert moved[name] == pytest.approx(expected), (family, key)
        assert residency_credit(family, key) == (expected == two_tier), (family, key)
    assert not residency_credit("mla", "bf16")  # no operation part: not a decode key


def test_a_decode_kernel_the_source_never_ran_takes_its_l2_rate() -> None:
    """The leave-one-out L40S, given the A100's fit, predicts FlashInfer's fp8-KV decode (which vLLM 0.14
    on the A100 never ran: no key at any fallback level) with the datasheet defaults but the L2's rate of
    the die, the A100's fitted rates carried per SM (``carried_cache_ratio``): their median x the A100's
    2,039 GB/s over its 108 SMs x the L40S's 142 SMs over its 864 GB/s, not the datasheet's 1."""
    from costmodel.kernels import generation_attention
    from validation.public.transfer import transferred_hardware

    a100, l40s = load_hardware("a100-80gb"), load_hardware("l40s")
    assert a100.kernel_calibration is not None
    fitted = [
        v["cache_bandwidth_ratio"] for v in a100.kernel_calibration.params["generation_attention"].values()
    ]
    per_sm = sorted(fitted)[len(fitted) // 2] * a100.memory_bandwidth_bytes_per_s / 108
    expected = per_sm * 142 / l40s.memory_bandwidth_bytes_per_s
    key = "vllm.vllm_flashinfer_fidecode:bf16+fp8kv"
    got = params_for(transferred_hardware("l40s"), generation_attention, key)
    assert len(fitted) % 2 == 1
    assert expected > 3.0
    assert got.cache_bandwidth_ratio == pytest.approx(expected)
    default = generation_attention.default_params(l40s, key)
    assert dataclasses.replace(got, cache_bandwidth_ratio=1.0) == default


def test_committed_overlays_hold_every_tie_exactly() -> None:
    """Every parameter a family ties to another key (``TIED_PARAMS``, e.g. reduce-scatter's
    ``contention_exponent`` to the all-gather's) equals its source's value in every committed overlay, to the
    last bit: a fit holds the source's value fixed, and a transfer carries both alike (or, to a device on
    another kind of link, drops both, which then resolve to the same default)."""
    from costmodel.calibrate import tied_params

    checked = 0
    for path in sorted(calibrated_dir().glob("*.yaml")):
        if path.stem not in TRANSFER_RULE and path.stem not in MEASURED:
            continue
        hardware = load_hardware_file(path)
        assert hardware.kernel_calibration is not None, path.name
        for name, keys in hardware.kernel_calibration.params.items():
            family = importlib.import_module(f"costmodel.kernels.{name}")
            for key, (source, names) in tied_params(family).items():
                if key not in keys:
                    continue
                assert source in keys, (path.name, key, source)
                tied, of_source = params_for(hardware, family, key), params_for(hardware, family, source)
                for n in names:
                    assert (n in keys[key]) == (n in keys[source]), (path.name, key, n)
                    assert getattr(tied, n) == getattr(of_source, n), (path.name, key, n)
                    checked += 1
    assert checked > 0


def test_gemm_compute_fraction_carries_by_the_sustained_tensor_share() -> None:
    """A GEMM's fitted full-occupancy rate is the device's sustained share (its clock under the power
    limit) times the kernel's own efficiency: a B200 given an H100 fit (no power limit stated: 1) takes a
    power limit of the two published cuBLASLt fp8 shares' ratio (GB200 2,906.9 / 5,000 TFLOPS over H200
    1,366.3 / 1,979, Azure's AI benchmarking guide), its compute fraction unchanged, and gives it back; the
    memory fraction, the tile constants and the launch time carry as fitted; the other way the limit stays
    at 1 and the compute fraction rises, within the fit's bounds. The H200 (from the H100) and the GB200
    (from the B200) state their source's share and take the fit unchanged, and a B300 (no published share)
    too."""
    from costmodel.calibrate import SUSTAINED_COMPUTE_PARAMS, carried_sustained_scale
    from costmodel.kernels import gemm

    h100, h200, b200, gb200, b300 = (load_hardware(n) for n in ("h100-sxm", "h200", "b200", "gb200", "b300"))
    published = round(2906.9 / 5000, 3) / round(1366.3 / 1979, 3)
    assert carried_sustained_scale(h100, b200) == pytest.approx(published)
    assert carried_sustained_scale(b200, h100) == pytest.approx(1.0 / published)
    assert SUSTAINED_COMPUTE_PARAMS["gemm"] == ("compute_fraction",)
    fit = {"compute_fraction": 0.8, "bandwidth_fraction": 0.78, "launch_s": 3e-6, "tile_intensity": 53.0}
    fitted = {"gemm": {"bf16:trtllm:torch_flow": fit}}
    moved = transferable(fitted, h100, b200)["gemm"]["bf16:trtllm:torch_flow"]
    assert moved["power_limited_sm_fraction"] == pytest.approx(published)
    assert {k: v for k, v in moved.items() if k != "power_limited_sm_fraction"} == fit
    back = transferable({"gemm": {"bf16:trtllm:torch_flow": moved}}, b200, h100)["gemm"]
    assert back["bf16:trtllm:torch_flow"]["compute_fraction"] == pytest.approx(0.8)
    assert back["bf16:trtllm:torch_flow"]["power_limited_sm_fraction"] == pytest.approx(1.0)
    high = {"gemm": {"bf16": {"compute_fraction": 0.95}}}
    assert (
        transferable(high, b200, h100)["gemm"]["bf16"]["compute_fraction"]
        == gemm.BOUNDS["compute_fraction"][1]
    )
    assert carried_sustained_scale(h100, h200) == 1.0
    assert carried_sustained_scale(b200, gb200) == 1.0
    assert carried_sustained_scale(b200, b300) is None
    for source, target in ((h100, h200), (b200, gb200), (b200, b300)):
        assert transferable(fitted, source, target)["gemm"]["bf16:trtllm:torch_flow"] == fit, target.name


def test_the_sustained_share_carries_every_gemm_format_alike() -> None:
    """The power limit lowers the SMs' one clock, whatever format the tensor cores run, and every format's
    datasheet peak is quoted at the same boost clock: a key of each format (bf16, fp8, block fp8, nvfp4)
    takes the same factor, the ratio of the two published cuBLASLt fp8 shares, although they were measured
    in fp8 alone (SUSTAINED_COMPUTE_PARAMS' docstring)."""
    h100, b200 = load_hardware("h100-sxm"), load_hardware("b200")
    published = round(2906.9 / 5000, 3) / round(1366.3 / 1979, 3)
    keys = ("bf16:trtllm:torch_flow", "fp8:vllm", "fp8_block:trtllm", "nvfp4:trtllm")
    fitted = {"gemm": {key: {"compute_fraction": 0.6, "bandwidth_fraction": 0.8} for key in keys}}
    moved = transferable(fitted, b200, h100)["gemm"]
    for key in keys:
        assert moved[key]["compute_fraction"] == pytest.approx(0.6 / published), key
        assert moved[key]["bandwidth_fraction"] == 0.8, key


def test_leave_one_out_b200_takes_the_h100s_gemm_fractions_by_the_sustained_share() -> None:
    """The transfer check's B200 takes every H100 GEMM key's power limit (1: the H100's fits state none)
    x 0.581 / 0.690, and its compute and memory fractions as fitted."""
    from validation.public.transfer import transferred_hardware

    b200, h100 = transferred_hardware("b200").kernel_calibration, load_hardware("h100-sxm").kernel_calibration
    assert b200 is not None
    assert h100 is not None
    for key, own in h100.params["gemm"].items():
        got = b200.params["gemm"][key]
        limit = own.get("power_limited_sm_fraction", 1.0)
        assert got["power_limited_sm_fraction"] == pytest.approx(limit * 0.581 / 0.690), key
        assert got["compute_fraction"] == own["compute_fraction"], key
        assert got["bandwidth_fraction"] == own["bandwidth_fraction"], key


def test_the_sustained_share_moves_the_power_limit_where_the_source_fit_found_one() -> None:
    """A sustained share is measured with every SM busy: the power limit's clock times the benchmark kernel's
    efficiency. Where the source's fit separated the two (``power_limited_sm_fraction`` below 1: the A100's
    and the L40S's), the ratio of two published shares moves the power limit and leaves the compute fraction,
    so a GEMM on few SMs, which the power limit does not slow, keeps the source's rate, and one filling every
    SM runs the ratio slower. The shares are one benchmark's torch.mm bf16 rows (zzc0721/torch-performance-
    test-data: L40S 269.15 of 362.05 TFLOPS, A100 SXM4 80GB 264.53 of 312). A limit carried above 1 stops
    there and the compute fraction takes the rest; a source without one (H100) is read as a limit of 1."""
    from costmodel.calibrate import carried_sustained_scale, carry_sustained_share
    from costmodel.kernels import gemm

    a100, l40s = load_hardware("a100-80gb"), load_hardware("l40s")
    published = round(269.15 / 362.05, 3) / round(264.53 / 312, 3)
    assert published < 1.0  # the 350 W L40S holds less of its quoted peak than the 400 W A100
    assert carried_sustained_scale(a100, l40s) == pytest.approx(published)
    fit = {"compute_fraction": 0.9, "power_limited_sm_fraction": 0.8, "bandwidth_fraction": 0.67}
    moved = transferable({"gemm": {"bf16:vllm": fit}}, a100, l40s)["gemm"]["bf16:vllm"]
    assert moved["power_limited_sm_fraction"] == pytest.approx(0.8 * published)
    assert moved["compute_fraction"] == 0.9
    assert moved["bandwidth_fraction"] == 0.67
    # the time: as the source's parameters on the target's datasheet, but with every SM busy
    plain = dataclasses.replace(gemm.default_params(l40s, "bf16:vllm"), **fit)
    carried = dataclasses.replace(plain, **moved)
    one_tile = {"m": 128.0, "n": 128.0, "k": 65536.0}  # at most 16 split-K CTAs: 0.11 of the 142 SMs
    assert gemm.time_s(l40s, carried, **one_tile) == gemm.time_s(l40s, plain, **one_tile)
    full = {"m": 128.0 * 142.0, "n": 128.0 * 64.0, "k": 16384.0}  # 64 full waves of 128 x 128 tiles
    slower = gemm.time_s(l40s, carried, **full) / gemm.time_s(l40s, plain, **full)
    assert 1.0 < slower <= 1.0 / published * (1.0 + 1e-9)
    assert slower == pytest.approx(1.0 / published, rel=0.02)  # the launch time does not scale
    # back to the A100 (0.848 / 0.743 = 1.14): a limit of 0.95 x 1.14 passes its bound of 1, the rest goes
    # to the compute fraction; the full-occupancy rate is the ratio higher either way
    defaults = numeric_fields(gemm.default_params(l40s, "bf16:vllm"))
    back = {"compute_fraction": 0.8, "power_limited_sm_fraction": 0.95}
    carry_sustained_share(back, "gemm", 1.0 / published, gemm.BOUNDS, defaults)
    assert back["power_limited_sm_fraction"] == 1.0
    assert back["compute_fraction"] == pytest.approx(0.8 * 0.95 / published)
    unlimited = {"compute_fraction": 0.85, "bandwidth_fraction": 0.8}  # the H100's fits state no limit
    carry_sustained_share(unlimited, "gemm", published, gemm.BOUNDS, defaults)
    assert unlimited == {
        "compute_fraction": 0.85,
        "bandwidth_fraction": 0.8,
        "power_limited_sm_fraction": pytest.approx(published),
    }


@pytest.mark.parametrize("scale", [0.84, 1.14])
def test_the_sustained_share_carries_a_limit_near_1_as_one_at_1(scale: float) -> None:
    """The rule is continuous in the fitted power limit: a limit of 0.999, one of exactly 1 and none stated
    (the kernel's unlimited default) carry as the fits differ, by 0.1 %, for a target holding a smaller
    share and for one holding a larger. Whatever the split, the full-occupancy rate (compute fraction x
    limit) is the source's x the ratio, and back again."""
    from costmodel.calibrate import carry_sustained_share
    from costmodel.kernels import gemm

    defaults = numeric_fields(gemm.default_params(load_hardware("b200"), "fp8"))
    carried = []
    for fit in ({"power_limited_sm_fraction": 0.999}, {"power_limited_sm_fraction": 1.0}, {}):
        kept = {"compute_fraction": 0.5, **fit}
        carry_sustained_share(kept, "gemm", scale, gemm.BOUNDS, defaults)
        limit = kept.get("power_limited_sm_fraction", 1.0)
        assert kept["compute_fraction"] * limit == pytest.approx(
            0.5 * fit.get("power_limited_sm_fraction", 1.0) * scale
        )
        assert limit <= 1.0
        carried.append((kept["compute_fraction"], limit))
        carry_sustained_share(kept, "gemm", 1.0 / scale, gemm.BOUNDS, defaults)
        back = kept["compute_fraction"] * kept.get("power_limited_sm_fraction", 1.0)
        assert back == pytest.approx(0.5 * fit.get("power_limited_sm_fraction", 1.0))
    for fraction, limit in carried[1:]:
        assert fraction == pytest.approx(carried[0][0], rel=1.5e-3)
        assert limit == pytest.approx(carried[0][1], rel=1.5e-3)
    if scale < 1.0:  # the limit takes it all: a GEMM on few SMs keeps the source's rate
        assert carried[1] == (0.5, pytest.approx(scale))


def test_the_sustained_share_passes_what_a_bound_clips_on() -> None:
    """What the power limit's bounds (0.2, 1) clip goes to the compute fraction, read from the source's
    defaults where the fit does not state it, so the full-occupancy rate still moves by the whole ratio; only
    the compute fraction's own bounds (0.05, 1) can leave part of it, and then nothing is raised."""
    from costmodel.calibrate import carry_sustained_share
    from costmodel.kernels import gemm

    defaults = numeric_fields(gemm.default_params(load_hardware("b200"), "fp8"))
    up = {"power_limited_sm_fraction": 0.9}  # the compute fraction not stated: the default's
    carry_sustained_share(up, "gemm", 1.5, gemm.BOUNDS, defaults)
    assert up["power_limited_sm_fraction"] == 1.0
    assert up["compute_fraction"] == pytest.approx(defaults["compute_fraction"] * 0.9 * 1.5)
    down = {"compute_fraction": 0.5, "power_limited_sm_fraction": 0.25}
    carry_sustained_share(down, "gemm", 0.5, gemm.BOUNDS, defaults)
    assert down["power_limited_sm_fraction"] == gemm.BOUNDS["power_limited_sm_fraction"][0]
    assert down["compute_fraction"] * down["power_limited_sm_fraction"] == pytest.approx(0.5 * 0.25 * 0.5)
    clipped = {"compute_fraction": 0.9, "power_limited_sm_fraction": 0.9}
    carry_sustained_share(clipped, "gemm", 1.5, gemm.BOUNDS, defaults)
    assert clipped == {"compute_fraction": 1.0, "power_limited_sm_fraction": 1.0}
    untouched = {"compute_fraction": 0.5, "power_limited_sm_fraction": 0.5}
    carry_sustained_share(untouched, "gemm", 1.0, gemm.BOUNDS, defaults)
    assert untouched == {"compute_fraction": 0.5, "power_limited_sm_fraction": 0.5}


def test_leave_one_out_a100_and_l40s_carry_each_others_power_limits_by_the_sustained_shares() -> None:
    """The transfer check's L40S takes every A100 GEMM key's full-occupancy rate (compute fraction x power
    limit) times the published sustained shares' ratio, 0.743 / 0.848 (the two datasheets'
    sustained_tensor_fraction, one benchmark), and the A100 the L40S's times the inverse: the power limit
    takes the factor first, within its bounds (it cannot exceed 1, the unlimited value), the compute fraction
    the rest; the rate falls short of the ratio only where the compute fraction reaches its own bound of 1."""
    from costmodel.kernels import gemm
    from validation.public.transfer import transferred_hardware

    shares = {n: load_hardware(n).datasheet.sustained_tensor_fraction for n in ("l40s", "a100-80gb")}
    assert shares["l40s"] is not None
    assert shares["a100-80gb"] is not None
    ratio = shares["l40s"].value / shares["a100-80gb"].value
    low, high = gemm.BOUNDS["power_limited_sm_fraction"]
    top = gemm.BOUNDS["compute_fraction"][1]
    for target, source, scale in (("l40s", "a100-80gb", ratio), ("a100-80gb", "l40s", 1.0 / ratio)):
        moved = transferred_hardware(target).kernel_calibration
        own = load_hardware(source).kernel_calibration
        assert moved is not None
        assert own is not None
        checked = 0
        for key, fitted in own.params["gemm"].items():
            if key not in moved.params["gemm"]:
                continue
            got = moved.params["gemm"][key]
            limit = fitted["power_limited_sm_fraction"]
            assert got["power_limited_sm_fraction"] == pytest.approx(min(max(limit * scale, low), high)), key
            assert got["power_limited_sm_fraction"] <= 1.0, key  # a power limit never raises the peak
            rate = got["compute_fraction"] * got["power_limited_sm_fraction"]
            wanted = fitted["compute_fraction"] * limit * scale
            if got["compute_fraction"] < top:  # the rate carries by the published ratio exactly
                assert rate == pytest.approx(wanted), key
            else:  # clipped at the compute fraction's bound: short of the ratio, never past it
                assert rate <= wanted * (1 + 1e-12), key
            checked += 1
        assert checked > 0, target


def test_the_shares_a_transfer_compares_come_from_one_benchmark() -> None:
    """Only shares taken alike are compared: wherever the transfer rule or the leave-one-out check carries a
    fit between two devices that both state a sustained share, both cite the same benchmark (the repository
    their source's first URL names)."""
    import re

    from validation.public.transfer import LEAVE_ONE_OUT

    def benchmark(name: str) -> str | None:
        share = load_hardware(name).datasheet.sustained_tensor_fraction
        if share is None:
            return None
        found = re.search(r"github\.com/([\w.-]+/[\w.-]+)", share.source)
        assert found is not None, name
        return found.group(1)

    pairs = [*TRANSFER_RULE.items(), *LEAVE_ONE_OUT.items()]
    compared = 0
    for target, source in pairs:
        cited = (benchmark(target), benchmark(source))
        if None not in cited:
            assert cited[0] == cited[1], (target, source, cited)
            compared += 1
    assert compared >= 4  # H200 <- H100, GB200 <- B200, and both leave-one-out pairs


@pytest.mark.parametrize("value", [1.5, 0.0, -0.2])
@pytest.mark.parametrize(
    ("name", "stated"), [("h100-sxm", "0.690"), ("l40s", "0.743"), ("a100-80gb", "0.848")]
)
def test_a_bad_sustained_share_is_refused_naming_the_field(
    tmp_path: Path, value: float, name: str, stated: str
) -> None:
    """The profiles state their share and it is read as stated; a share outside (0, 1] is refused naming the
    field."""
    share = load_hardware(name).datasheet.sustained_tensor_fraction
    assert share is not None
    assert share.value == float(stated)
    text = (calibrated_dir().parent / f"{name}.yaml").read_text(encoding="utf-8")
    assert f"sustained_tensor_fraction: {{value: {stated}," in text
    path = tmp_path / "bad.yaml"
    path.write_text(
        text.replace(
            f"sustained_tensor_fraction: {{value: {stated},", f"sustained_tensor_fraction: {{value: {value},"
        )
    )
    with pytest.raises(CostmodelError, match="sustained_tensor_fraction"):
        load_hardware_file(path)
