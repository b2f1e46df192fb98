"""Hardware profiles: every datasheet number sourced, SI accessors, dense (not sparse) peaks, and the
scale-up (NVLink) domain that decides which link a collective uses."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

import costmodel
from costmodel.specs import Sourced

ISSUE_15_PROFILES = ("b300", "gb200", "gb300", "rtx-pro-6000-server", "h20", "mi325x", "mi355x")


def sourced_numbers(hw: costmodel.HardwareProfile) -> dict[str, Sourced]:
    """Every datasheet number of a profile, by key."""
    sheet = hw.datasheet
    numbers = {f"peak {d}": e for d, e in sheet.peak_dense_tflop_per_s.items()}
    for key in type(sheet).model_fields:
        value = getattr(sheet, key)
        if isinstance(value, Sourced):
            numbers[key] = value
    return numbers


@pytest.mark.parametrize("name", costmodel.list_hardware())
def test_profile_is_sourced_and_consistent(name: str) -> None:
    hw = costmodel.load_hardware(name)
    assert hw.name == name
    for key, entry in sourced_numbers(hw).items():
        assert len(entry.source) > 20, f"{name} {key} lacks a real source"
        assert "http" in entry.source, f"{name} {key}: the source names no document URL"
    assert hw.memory_bytes > 0
    assert hw.memory_bandwidth_bytes_per_s > 0
    # narrower formats run at least as fast: fp32 <= tf32 <= bf16 <= fp8 <= fp6 <= fp4 (tensor cores
    # pack more of a narrower format per cycle; a datasheet that says otherwise is a sparse/dense mix-up)
    peaks = {d: hw.peak_flop_per_s(d) for d in hw.compute_dtypes}
    ladder = [d for d in ("fp32", "tf32", "bf16", "fp8", "fp6", "fp4") if d in peaks]
    for wide, narrow in itertools.pairwise(ladder):
        assert peaks[narrow] >= peaks[wide], f"{name}: {narrow} peak below {wide}"
    if "fp16" in peaks and "bf16" in peaks:
        assert peaks["fp16"] == peaks["bf16"]
    if hw.price is not None:
        assert "http" in hw.price.source
        assert re.fullmatch(r"\d{4}(-\d{2}){0,2}", hw.price.date)


def test_si_units() -> None:
    h100 = costmodel.load_hardware("h100-sxm")
    assert h100.memory_bytes == 80 * 2**30
    assert h100.memory_bandwidth_bytes_per_s == 3.35e12
    assert h100.peak_flop_per_s("bf16") == pytest.approx(989.4e12)


def test_dense_not_sparse_peaks() -> None:
    """NVIDIA datasheets quote 1,979 TFLOPS bf16 for H100 SXM 'with sparsity'; the dense peak is half."""
    assert costmodel.load_hardware("h100-sxm").peak_flop_per_s("bf16") < 1.0e15
    assert costmodel.load_hardware("a100-80gb").peak_flop_per_s("bf16") == pytest.approx(312e12)


def test_missing_dtype_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="has no 'fp8' peak"):
        costmodel.load_hardware("a100-80gb").peak_flop_per_s("fp8")


@pytest.mark.parametrize("name", ISSUE_15_PROFILES)
def test_issue_15_profiles_are_built_in(name: str) -> None:
    """The Blackwell (Ultra), Hopper H20 and CDNA 3/4 profiles load under their exact names, with
    per-direction link bandwidths (never the bidirectional datasheet figure) and dense peaks."""
    hw = costmodel.load_hardware(name)
    assert name in costmodel.list_hardware()
    sheet = hw.datasheet
    assert sheet.intra_node_bandwidth_gb_per_s is not None
    assert sheet.intra_node_bandwidth_gb_per_s.value <= 900  # NVLink 5: 1.8 TB/s bidirectional per GPU
    if sheet.sparsity_speedup is not None:
        assert sheet.sparsity_speedup.value == 2.0


@pytest.mark.parametrize("name", ISSUE_15_PROFILES)
def test_issue_15_profiles_scale_out_through_a_nic_slower_than_their_scale_up_link(name: str) -> None:
    """Every new profile has a cited per-GPU NIC bandwidth (a multi-node deployment needs one), per
    direction and below the scale-up link's: a 400 Gb/s NIC is 50 GB/s, an 800 Gb/s one 100 GB/s."""
    sheet = costmodel.load_hardware(name).datasheet
    inter, intra = sheet.inter_node_bandwidth_gb_per_s, sheet.intra_node_bandwidth_gb_per_s
    assert inter is not None
    assert intra is not None
    assert "http" in inter.source
    assert inter.value in (400 / 8, 800 / 8, 200 / 8)  # one 200, 400 or 800 Gb/s port per GPU [GB/s]
    assert inter.value < intra.value


def test_mi325x_nodes_have_one_400g_nic_per_gpu_and_b300_a_dated_provider_price() -> None:
    mi325x = costmodel.load_hardware("mi325x").datasheet.inter_node_bandwidth_gb_per_s
    assert mi325x is not None
    assert mi325x.value == 400 / 8  # ConnectX-7, 400 Gb/s, one per MI325X (AMD's ROCm MoRI guide)
    price = costmodel.load_hardware("b300").price
    assert price is not None
    assert "RunPod" in price.source
    assert "https://www.runpod.io/pricing" in price.source
    assert price.date == "2026-10"
    # an on-demand B300 GPU-hour costs more than a B200's at the same provider and date (b200.yaml)
    b200 = costmodel.load_hardware("b200").price
    assert b200 is not None
    assert "RunPod" in b200.source
    assert b200.date == price.date
    assert price.usd_per_hour > b200.usd_per_hour


def test_fp4_and_fp6_peaks() -> None:
    """FP4 / FP6 tensor peaks where the datasheets give them, dense: the per-GPU share of NVIDIA's rack
    figures (GB200 NVL72 FP4 1,440 PFLOPS with sparsity / 72 / 2; GB300 NVL72 FP4 1,080 PFLOPS dense / 72)
    and AMD's CDNA 4 rate (MI355X 2 x FP8)."""
    assert costmodel.load_hardware("gb200").peak_flop_per_s("fp4") == pytest.approx(1440e15 / 72 / 2)
    assert costmodel.load_hardware("gb300").peak_flop_per_s("fp4") == pytest.approx(1080e15 / 72)
    mi355x = costmodel.load_hardware("mi355x")
    # ISSCC 2026: 8 XCDs x 32 CUs x 8,192 dense FP8 FLOP per clock per CU, at 2.4 GHz
    assert mi355x.peak_flop_per_s("fp8") == pytest.approx(8 * 32 * 8192 * 2.4e9, rel=1e-12)
    assert mi355x.peak_flop_per_s("fp4") == pytest.approx(2 * mi355x.peak_flop_per_s("fp8"), rel=1e-12)
    assert mi355x.peak_flop_per_s("fp6") == mi355x.peak_flop_per_s("fp4")
    with pytest.raises(ValueError, match="has no 'fp4' peak"):
        costmodel.load_hardware("h20").peak_flop_per_s("fp4")  # Hopper has no FP4 tensor cores


# ----------------------------------------------------------------------------------------------------
# NVLink domains larger than a node: which link a collective uses
# ----------------------------------------------------------------------------------------------------


def collective_s(report: costmodel.Report, name: str) -> float:
    times = report.decode_ops
    return float(times.communication_s[times.names.index(name)])


def test_nvl72_domain_spans_the_rack() -> None:
    from costmodel.estimate import link_for, scale_up_domain_size

    dep = costmodel.Deployment(tp=16)
    gb200, h100 = costmodel.load_hardware("gb200"), costmodel.load_hardware("h100-sxm")
    assert scale_up_domain_size(gb200, dep) == 72
    assert scale_up_domain_size(h100, dep) == dep.gpus_per_node == 8
    assert link_for(72, gb200, dep) == "intra"
    assert link_for(73, gb200, dep) == "inter"
    assert link_for(16, h100, dep) == "inter"
    assert link_for(16, costmodel.load_hardware("b300"), dep) == "inter"  # HGX B300: 8 GPUs per domain


def test_tp16_all_reduce_runs_on_nvlink_in_an_nvl72_rack_and_crosses_nodes_on_h100() -> None:
    """Llama-3-70B, TP 16, one decode step of one sequence: each all-reduce moves the hidden state,
    d_model 8192 x 2 bytes (bf16). On a GB200 NVL72 rack the 16 GPUs share NVLink (900 GB/s per direction):
    the ring, 2 (n - 1) / n x bytes / (link x 0.8) + 10 us. On H100 SXM the group spans two 8-GPU nodes:
    NCCL's all-reduce inside each node, then each GPU's eighth of the buffer all-reduced between the two
    nodes over its own 400 Gb/s NIC (50 GB/s), 2 (2 - 1) / 2 x bytes / 8 / (50 GB/s x 0.8) plus the two-node
    latency (``collective.INTER_NODE_LATENCY_S``, read off public two-node nccl-tests tables)."""
    from costmodel import kernel_times
    from costmodel.kernels import collective

    w, dep = costmodel.Workload(1, 512, 2), costmodel.Deployment(tp=16)
    message = 8192 * 2
    # the GB200 runs the kernel models since its profile states its SM count; the ring is the roofline's
    gb200_hw = costmodel.load_hardware("gb200")
    roofline = gb200_hw.efficiency.model_copy(update={"time_model": "roofline"})
    gb200 = costmodel.estimate("llama-3-70b", gb200_hw, w, dep, efficiency=roofline)
    ring = 2 * 15 / 16 * message / (900e9 * 0.8) + 10e-6
    assert collective_s(gb200, "allreduce_attn") == pytest.approx(ring, rel=1e-12)
    h100 = costmodel.load_hardware("h100-sxm")
    nccl = kernel_times.step_params(h100, collective, "nccl:all_reduce", launch_s=kernel_times.launch_s(h100))
    node = collective.time_s(h100, nccl, message_bytes=message, num_gpus=8, eager=False)
    rails = message / 8 / (50e9 * 0.8) + collective.INTER_NODE_LATENCY_S  # the two-node hop's latency
    report = costmodel.estimate("llama-3-70b", h100, w, dep)
    assert collective_s(report, "allreduce_attn") == pytest.approx(float(node) + rails, rel=1e-12)


def test_tp16_all_reduce_stays_in_the_nvl72_rack_on_the_kernel_models() -> None:
    """The same TP 16 all-reduce (Llama-3-70B, one decode step: 8192 x 2 bytes) on the default path, where
    the GB200 and B200 run the kernel models. A B200 group of 16 spans two 8-GPU HGX nodes: NCCL inside each
    node, then each GPU's eighth of the buffer between the two over its own 400 Gb/s NIC (50 GB/s) plus the
    two-node latency. The GB200's 16 GPUs share the rack's NVLink domain of 72: no network term, so it costs
    less than any two-node form would (NCCL on 8 GPUs plus the network hop's latency alone), and less than
    the B200, whose GPUs, link and NIC are otherwise the same."""
    from costmodel import kernel_times
    from costmodel.kernels import collective

    w, dep = costmodel.Workload(1, 512, 2), costmodel.Deployment(tp=16)
    message = 8192 * 2
    inside, hop = {}, collective.INTER_NODE_LATENCY_S
    for name in ("gb200", "b200"):
        hw = costmodel.load_hardware(name)
        assert hw.efficiency.time_model != "roofline"
        nccl = kernel_times.step_params(hw, collective, "nccl:all_reduce", launch_s=kernel_times.launch_s(hw))
        inside[name] = float(collective.time_s(hw, nccl, message_bytes=message, num_gpus=8, eager=False))
    b200 = collective_s(costmodel.estimate("llama-3-70b", "b200", w, dep), "allreduce_attn")
    gb200 = collective_s(costmodel.estimate("llama-3-70b", "gb200", w, dep), "allreduce_attn")
    # the network's eighth of the buffer cannot cross a 400 Gb/s NIC faster than its line rate
    assert b200 >= inside["b200"] + message / 8 / 50e9 + hop
    assert gb200 < inside["gb200"] + hop  # the least a two-node form would cost
    assert gb200 < b200


def test_ep16_under_attention_dp_gathers_on_nvlink_in_an_nvl72_rack() -> None:
    """DeepSeek-V3 with 16 attention-DP ranks and 16-way expert parallelism: the tokens' all-gather before
    the experts stays on NVLink on GB200 (domain 72) and crosses the two 8-GPU nodes on H100 SXM, there
    each GPU's share over its own NIC after the gather inside the node. Under tensor-parallel attention
    (attention_dp = 1) every GPU holds every token: no all-to-all, the experts' sum is the all-reduce."""
    w = costmodel.Workload(8, 512, 2)
    model = costmodel.load_model("deepseek-v3")
    tp_attention = costmodel.estimate(model, "gb200", w, costmodel.Deployment(tp=16, ep=16))
    kinds = [op.kind for op in tp_attention._ops[1]]
    assert "alltoall" not in kinds
    assert next(op for op in tp_attention._ops[1] if op.name == "allreduce_moe").group == 16
    dep = costmodel.Deployment(tp=1, attention_dp=16, ep=16)
    gb200_hw = costmodel.load_hardware("gb200")  # the roofline's ring (kernel models run there by default)
    roofline = gb200_hw.efficiency.model_copy(update={"time_model": "roofline"})
    gb200 = costmodel.estimate(model, gb200_hw, w, dep, efficiency=roofline)
    h100 = costmodel.estimate(model, "h100-sxm", w, dep)
    i = [op.name for op in gb200._ops[1]].index("allgather_moe")
    op = gb200._ops[1][i]
    moved = 15 / 16 * float(np.max(op.bytes_read))
    nvlink = float(np.max(gb200.decode_ops.communication_s[i])) - 10e-6
    assert nvlink == pytest.approx(moved / (900e9 * 0.8), rel=1e-12)
    # the network stage alone carries each GPU's eighth among the two nodes: (2 - 1) / 2 x bytes / 8
    rails = 1 / 2 * float(np.max(op.bytes_read)) / 8 / (50e9 * 0.8)
    assert float(np.max(h100.decode_ops.communication_s[i])) > rails


# NVIDIA, "CUDA GPU Compute Capability", https://developer.nvidia.com/cuda-gpus (data center: A100 8.0,
# A10 / A10G 8.6, L4 / L40S 8.9, H100 / H200 / H20 9.0, B200 / GB200 10.0, B300 / GB300 10.3; RTX PRO 6000
# Blackwell Server Edition 12.0; GeForce RTX 4090 8.9); AMD, Google and CPU devices have none.
PUBLISHED_COMPUTE_CAPABILITY = {
    "a100-40gb": "8.0",
    "a100-80gb": "8.0",
    "a10g": "8.6",
    "l4": "8.9",
    "l40s": "8.9",
    "rtx-4090": "8.9",
    "h100-sxm": "9.0",
    "h100-pcie": "9.0",
    "h200": "9.0",
    "h20": "9.0",
    "b200": "10.0",
    "gb200": "10.0",
    "b300": "10.3",
    "gb300": "10.3",
    "rtx-pro-6000-server": "12.0",
}


DEVICE_QUERY_L2_MIB = {"h100-sxm": 50, "h200": 60, "b200": 126}
"""L2 size as a device reports it (cudaDeviceProp.l2CacheSize [MiB]; torch's get_device_properties prints it
as ``L2_cache_size=..MB``) in the public query logs the profiles cite: the H100 SXM's 50 of the GH100 die's
60, the H200's whole 60, and the B200's 126 over its two dies."""


@pytest.mark.parametrize("name", sorted(DEVICE_QUERY_L2_MIB))
def test_l2_size_is_the_device_queried_one(name: str) -> None:
    """The profile's L2 is what the device itself reports, and its source says so: the kernel models' cache
    terms (L2-resident operands of a repeated benchmark) switch on exactly below this size."""
    from costmodel.kernels import cache_bytes

    hw = costmodel.load_hardware(name)
    entry = hw.datasheet.on_chip_cache_mib
    assert entry is not None
    assert entry.value == DEVICE_QUERY_L2_MIB[name]
    assert cache_bytes(hw) == DEVICE_QUERY_L2_MIB[name] * 2**20
    assert "deviceQuery" in entry.source or "get_device_properties" in entry.source


# Enabled SMs and L2 of the Blackwell parts as their devices report them (multiProcessorCount, l2CacheSize in
# whole MiB as torch prints it), in the public device reports the profiles cite: HGX B200 148 / 126 (Chips and
# Cheese; torch logs), GB200 152 / 126 (device reports; NVIDIA's Blackwell Tuning Guide, 126 MB), HGX B300
# 148 / 126 (device reports of an 'NVIDIA B300 SXM6 AC': 148 SMs, 126.5 MiB L2), GB300 152 / 126 (device
# reports: 152 SMs; developers' notes, ~126 MiB). Every one is two dies of 80 physical SMs, 160 in all
# (Chips and Cheese's B200 article; NVIDIA's "Inside NVIDIA Blackwell Ultra" for the B300 / GB300 chip).
BLACKWELL_DEVICE_QUERY = {"b200": (148, 126), "gb200": (152, 126), "b300": (148, 126), "gb300": (152, 126)}
BLACKWELL_PHYSICAL_SMS = 160
BLACKWELL_DEVICE_NAMES = {
    "b200": "NVIDIA B200", "gb200": "NVIDIA GB200", "b300": "NVIDIA B300 SXM6 AC", "gb300": "NVIDIA GB300"
}  # fmt: skip
"""torch.cuda.get_device_name() on each (vLLM's and SGLang's config file names, NVIDIA/cosmos-framework
pull request 114 for the B300's)."""


@pytest.mark.parametrize("name", sorted(BLACKWELL_DEVICE_QUERY))
def test_blackwell_profiles_state_their_own_sms_and_l2_so_the_kernel_models_run(name: str) -> None:
    """Each Blackwell profile states its own SM count and L2, with a cited source, and the name CUDA reports:
    a GB200 or GB300 (1,200 / 1,400 W, liquid-cooled) enables 152 of the chip's 160 SMs, 4 more than the
    HGX B200 or B300 (148), so neither borrows the HGX part's count. With both fields the kernel models
    replace the roofline there ('auto'), and the transferred L2 ratio exists (it needs both devices' L2)."""
    from costmodel import kernel_times
    from costmodel.calibrate import carried_cache_ratio
    from costmodel.kernels import cache_bytes, gemm

    hw = costmodel.load_hardware(name)
    units, l2, device = (
        hw.datasheet.compute_units,
        hw.datasheet.on_chip_cache_mib,
        hw.datasheet.cuda_device_name,
    )
    assert units is not None
    assert l2 is not None
    assert device is not None
    assert (units.value, l2.value) == BLACKWELL_DEVICE_QUERY[name]
    assert units.value <= BLACKWELL_PHYSICAL_SMS
    assert device.value == BLACKWELL_DEVICE_NAMES[name]
    for entry in (units, l2, device):
        assert "http" in entry.source
        assert len(entry.source) > 100
    assert gemm.sm_count(hw) == units.value
    assert cache_bytes(hw) == l2.value * 2**20
    assert kernel_times.uses_kernels(hw, hw.efficiency)
    b200 = costmodel.load_hardware("b200")
    ratio = carried_cache_ratio(2.0, b200, hw)  # the B200's L2 rate per SM on this device's SMs and bandwidth
    assert ratio == pytest.approx(
        2.0
        * b200.datasheet.memory_bandwidth_tb_per_s.value
        / 148
        * units.value
        / hw.datasheet.memory_bandwidth_tb_per_s.value
    )


@pytest.mark.parametrize("name", costmodel.list_hardware())
def test_cuda_identity_is_a_cited_datasheet_fact(name: str) -> None:
    """The compute capability and CUDA device name engines dispatch on travel with the profile's datasheet
    (not its name), each with its source; only NVIDIA GPUs have them."""
    hw = costmodel.load_hardware(name)
    capability = hw.datasheet.cuda_compute_capability
    assert (capability.value if capability else None) == PUBLISHED_COMPUTE_CAPABILITY.get(name)
    for entry in (capability, hw.datasheet.cuda_device_name):
        if entry is not None:
            assert hw.vendor == "nvidia"
            assert "http" in entry.source, f"{name}: the source names no document URL"


def test_a_malformed_compute_capability_is_a_clear_error(tmp_path: Path) -> None:
    text = (costmodel.registry.calibrated_dir().parent / "h100-sxm.yaml").read_text()
    path = tmp_path / "mine.yaml"
    path.write_text(
        text.replace('cuda_compute_capability: {value: "9.0"', 'cuda_compute_capability: {value: "sm_90"')
    )
    with pytest.raises(costmodel.CostmodelError, match=r"cuda_compute_capability.*'major\.minor'"):
        costmodel.registry.load_hardware_file(path)


def test_a_renamed_copy_is_the_same_device_and_shipped_profiles_are_distinct(tmp_path: Path) -> None:
    """Same device means the same datasheet figures, not the same profile name: a user's renamed copy of a
    shipped profile, citing its figures differently and with other efficiencies, is the same device; no
    two shipped profiles are."""
    h100 = costmodel.load_hardware("h100-sxm")
    text = (costmodel.registry.calibrated_dir().parent / "h100-sxm.yaml").read_text()
    assert text.count("name: h100-sxm") == 1
    path = tmp_path / "my-h100.yaml"
    path.write_text(
        text.replace("name: h100-sxm", "name: my-h100").replace('source: "', 'source: "my copy of ')
    )
    mine = costmodel.registry.load_hardware_file(path)
    assert mine.name != h100.name
    assert mine.datasheet.memory_capacity_gib.source != h100.datasheet.memory_capacity_gib.source
    assert mine.same_device(h100)
    assert h100.same_device(mine)
    tuned = mine.model_copy(
        update={"efficiency": mine.efficiency.model_copy(update={"matmul_fraction": 0.5})}
    )
    assert tuned.same_device(h100)
    shipped = [costmodel.load_hardware(n) for n in costmodel.list_hardware()]
    for a, b in itertools.combinations(shipped, 2):
        assert not a.same_device(b), (a.name, b.name)


def test_a_published_bus_bandwidth_needs_a_switched_link_within_reason(tmp_path: Path) -> None:
    """``intra_node_allreduce_busbw_gb_per_s`` is a share of the intra-node link: on a PCIe profile (where
    the collective model uses NCCL's PCIe rate) it would be ignored, and a ring's bus bandwidth far above its
    per-direction link rate is a unit slip; both are one clear error naming the field."""
    text = (costmodel.registry.calibrated_dir().parent / "a100-80gb.yaml").read_text()
    assert "intra_node_allreduce_busbw_gb_per_s: {value: 231.58" in text
    from costmodel.kernels import collective
    from costmodel.specs import MAX_BUSBW_SHARE

    assert collective.BOUNDS["large_bandwidth_fraction"][1] == MAX_BUSBW_SHARE  # one bound, two places
    cases = {
        "pcie": text.replace("intra_node_link: nvlink", "intra_node_link: pcie"),
        "units": text.replace(
            "intra_node_allreduce_busbw_gb_per_s: {value: 231.58",
            "intra_node_allreduce_busbw_gb_per_s: {value: 1852",
        ),
    }
    assert all(case != text for case in cases.values())
    for name, case in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(case)
        with pytest.raises(costmodel.CostmodelError, match="intra_node_allreduce_busbw_gb_per_s"):
            costmodel.registry.load_hardware_file(path)


def test_a_copy_without_third_party_measurements_is_the_same_device(tmp_path: Path) -> None:
    """The measured figures (nccl-tests latency, bus bandwidth) are not the device's specification: a user's
    copy of a shipped profile that leaves them out is still the same device (its disaggregated KV transfer
    stays on the shared NVLink domain)."""
    a100 = costmodel.load_hardware("a100-80gb")
    text = (costmodel.registry.calibrated_dir().parent / "a100-80gb.yaml").read_text()
    kept = [line for line in text.splitlines() if "intra_node_allreduce_busbw_gb_per_s" not in line]
    path = tmp_path / "my-a100.yaml"
    path.write_text("\n".join(kept).replace("name: a100-80gb", "name: my-a100") + "\n")
    mine = costmodel.registry.load_hardware_file(path)
    assert mine.datasheet.intra_node_allreduce_busbw_gb_per_s is None
    assert mine.same_device(a100)
    assert a100.same_device(mine)
    assert not mine.same_device(costmodel.load_hardware("a100-40gb"))
