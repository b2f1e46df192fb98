"""Physics of the collective time model (costmodel.kernels.collective)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from costmodel.errors import CostmodelError
from costmodel.kernels import collective, params_for
from costmodel.registry import load_hardware

SIZES = np.logspace(7, 30, 24, base=2.0)  # 128 B .. 1 GiB
KEYS = ("nccl", "TRTLLM", "vLLM_custom", "vLLM_custom_graph", "vLLM_custom_eager")


@pytest.mark.parametrize("hardware_name", ["h100-sxm", "b200", "a100-80gb", "l40s"])
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("op", collective.OPS)
@pytest.mark.parametrize("n", [2, 4, 8])
def test_monotone_in_size_and_positive(hardware_name: str, key: str, op: str, n: int) -> None:
    hardware = load_hardware(hardware_name)
    params = collective.default_params(hardware, key)
    t = collective.time_s(hardware, params, message_bytes=SIZES, num_gpus=n, op=op)
    assert np.all(t > 0)
    grows = np.diff(t) >= 0
    if params.vllm_paths and op == "all_reduce":
        # vLLM switches kernels at fixed sizes, and a switch may be to a faster one (B200, 8 GPUs, CUDA graphs:
        # 26.1 us at 512 KiB on its two-shot kernel, 17.2 us at 1 MiB on symmetric memory, in the public
        # table): monotone within each path
        one, two, symm = collective.vllm_paths(hardware, message_bytes=SIZES, num_gpus=n)
        path = np.select([one, two, symm], [1, 2, 3], 0)
        grows |= path[1:] != path[:-1]
    assert np.all(grows)


@pytest.mark.parametrize("hardware_name", ["h100-sxm", "b200", "a100-80gb", "l40s"])
@pytest.mark.parametrize("n", [2, 4, 8])
def test_all_reduce_is_no_faster_than_the_ring_bound(hardware_name: str, n: int) -> None:
    # NCCL's bus-bandwidth rule (nccl-tests doc/PERFORMANCE.md): an all-reduce moves 2 (n - 1) / n x bytes
    # through each GPU's link, so it cannot beat that at the datasheet link rate.
    hardware = load_hardware(hardware_name)
    link = hardware.datasheet.intra_node_bandwidth_gb_per_s
    assert link is not None
    for key in KEYS:
        t = collective.time_s(
            hardware, collective.default_params(hardware, key), message_bytes=SIZES, num_gpus=n
        )
        assert np.all(t >= 2 * (n - 1) / n * SIZES / (link.value * 1e9))


def test_bus_factors_are_nccls() -> None:
    n = np.array([2, 4, 8])
    np.testing.assert_allclose(collective.bus_factor("all_reduce", n), 2 * (n - 1) / n)
    for op in ("all_gather", "reduce_scatter", "alltoall"):
        np.testing.assert_allclose(collective.bus_factor(op, n), (n - 1) / n)


def test_more_gpus_take_longer_for_small_messages() -> None:
    hardware = load_hardware("h100-sxm")
    params = collective.default_params(hardware, "nccl")
    t = collective.time_s(hardware, params, message_bytes=1024, num_gpus=np.array([2, 4, 8]))
    assert np.all(np.diff(t) > 0)


def test_pcie_shares_the_fabric() -> None:
    hardware = load_hardware("l40s")
    params = collective.default_params(hardware, "vLLM_custom_graph")
    per_byte = collective.time_s(hardware, params, message_bytes=2**30, num_gpus=np.array([2, 8])) / 2**30
    ring = collective.bus_factor("all_reduce", np.array([2, 8]))
    assert per_byte[1] / ring[1] > per_byte[0] / ring[0]  # slower per bus byte with more GPUs


@pytest.mark.parametrize("hardware_name", ["l40s", "rtx-pro-6000-server"])
def test_pcie_gpus_beyond_two_share_one_host_path(hardware_name: str) -> None:
    # n GPUs share the host path's bandwidth: each GPU's ring traffic 2 (n - 1) / n x bytes at 1 / n of it,
    # so a large all-reduce's time grows as 2 (n - 1): 6 : 14 from 4 to 8 GPUs, whatever the parameters
    hardware = load_hardware(hardware_name)
    params = collective.default_params(hardware, "nccl")
    params = dataclasses.replace(params, small_latency_s=0.0, large_extra_latency_s=0.0, hop_latency_s=0.0)
    t = collective.time_s(hardware, params, message_bytes=2.0**34, num_gpus=np.array([4, 8]))
    assert t[1] / t[0] == pytest.approx(14 / 6, rel=1e-3)


@pytest.mark.parametrize("n", [4, 8])
def test_pcie_nccl_switches_protocol_at_its_tuners_size_not_the_faster_one(n: int) -> None:
    # NCCL's tuner picks LL or Simple from its own tables: below ll_max_bytes the LL path runs, above it
    # Simple, even where LL streams faster (small_bandwidth_ratio > 1), so the time per byte jumps at the
    # switch; 0 restores the faster of the two
    hardware = load_hardware("l40s")
    params = dataclasses.replace(
        collective.default_params(hardware, "nccl"), small_bandwidth_ratio=1.5, ll_max_bytes=2.0**20
    )
    sizes = np.array([2.0**18, 2.0**22])
    parts = collective.breakdown(hardware, params, message_bytes=sizes, num_gpus=n, eager=False)
    assert parts.total[0] == pytest.approx(parts.small_s[0], rel=1e-3)
    assert parts.total[1] == pytest.approx(parts.large_s[1], rel=1e-3)
    assert parts.large_s[1] > parts.small_s[1]  # Simple runs although LL would be faster
    faster = dataclasses.replace(params, ll_max_bytes=0.0)
    assert np.all(
        collective.time_s(hardware, faster, message_bytes=sizes, num_gpus=n) <= parts.total * (1 + 1e-9)
    )
    # two GPUs run vLLM's custom all-reduce, not NCCL: the switch does not apply
    custom = dataclasses.replace(collective.default_params(hardware, "vLLM_custom"), ll_max_bytes=2.0**20)
    assert np.array_equal(
        collective.time_s(hardware, custom, message_bytes=sizes, num_gpus=2),
        collective.time_s(
            hardware, dataclasses.replace(custom, ll_max_bytes=0.0), message_bytes=sizes, num_gpus=2
        ),
    )


@pytest.mark.parametrize("n", [4, 8])
def test_pcie_has_no_custom_all_reduce_beyond_two_gpus(n: int) -> None:
    # vLLM disables its custom all-reduce on more than two PCIe-only GPUs (custom_all_reduce.py): NCCL's ring
    pcie, nvlink = load_hardware("l40s"), load_hardware("h100-sxm")
    for hardware, same in ((pcie, True), (nvlink, False)):
        custom = collective.default_params(hardware, "vLLM_custom")
        ring = dataclasses.replace(custom, one_shot=False)
        a, b = (
            collective.time_s(hardware, p, message_bytes=SIZES, num_gpus=n, eager=False)
            for p in (custom, ring)
        )
        assert np.array_equal(a, b) == same


def test_eager_mode_pays_a_host_floor() -> None:
    hardware = load_hardware("h100-sxm")
    eager = collective.time_s(
        hardware, collective.default_params(hardware, "vLLM_custom_eager"), message_bytes=128, num_gpus=2
    )
    graph = collective.time_s(
        hardware, collective.default_params(hardware, "nccl"), message_bytes=128, num_gpus=2
    )
    assert eager > graph


def test_one_set_of_parameters_serves_both_execution_modes() -> None:
    # the same kernels, called in eager mode (paying the host floor) or replayed from a CUDA graph (not)
    hardware = load_hardware("h100-sxm")
    params = collective.default_params(hardware, "vLLM_custom")
    assert params.host_floor_s > 0
    eager, graph = (
        collective.time_s(hardware, params, message_bytes=SIZES, num_gpus=4, eager=mode)
        for mode in (True, False)
    )
    assert np.all(eager >= params.host_floor_s)
    assert np.all(eager >= graph)
    assert eager[0] > graph[0]  # a small message waits for the host
    assert eager[-1] == graph[-1]  # a large one hides it


def test_bad_input_is_a_clear_error() -> None:
    hardware = load_hardware("h100-sxm")
    params = collective.default_params(hardware)
    with pytest.raises(CostmodelError, match="num_gpus"):
        collective.time_s(hardware, params, message_bytes=1024, num_gpus=1)
    with pytest.raises(CostmodelError, match="broadcast"):
        collective.time_s(hardware, params, message_bytes=1024, num_gpus=2, op="broadcast")
    with pytest.raises(CostmodelError, match="intra_node_bandwidth"):
        collective.default_params(
            load_hardware("tpu-v5e").model_copy(
                update={
                    "datasheet": load_hardware("tpu-v5e").datasheet.model_copy(
                        update={"intra_node_bandwidth_gb_per_s": None}
                    )
                }
            )
        )


# ----------------------------------------------------------------------------------------------------
# Across nodes: the hierarchical algorithm on rail-optimized nodes
# ----------------------------------------------------------------------------------------------------

B200 = load_hardware("b200")
NIC = 50e9  # DGX B200: one 400 Gb/s ConnectX-7 per GPU, per direction (the profile's cited datasheet figure)


def _network_s(size: float, nodes: int, per_node: int, op: str = "all_reduce") -> float:
    """The inter-node stage alone (no intra-node stage, no latency, line rate)."""
    return float(
        collective.multi_node_s(
            B200,
            0.0,
            message_bytes=size,
            nodes=nodes,
            gpus_per_node=per_node,
            op=op,
            interconnect_fraction=1.0,
            latency_s=0.0,
        )
    )


def test_the_network_stage_sees_every_nic_of_the_node() -> None:
    size = 2.0**30
    # each of the 8 GPUs all-reduces its eighth of the buffer with its peers on its own rail: the ring
    # among 2 nodes moves 2 (2 - 1) / 2 x S / 8 per NIC
    assert _network_s(size, 2, 8) == pytest.approx(size / 8 / NIC)
    # one GPU per node: the plain ring among the nodes on one NIC
    assert _network_s(size, 4, 1) == pytest.approx(2 * 3 / 4 * size / NIC)
    # against a flat ring over all 16 GPUs at one NIC's rate: g x 2 (Ng - 1) / Ng / (2 (N - 1) / N) = 15 x
    flat = 2 * 15 / 16 * size / NIC
    assert flat / _network_s(size, 2, 8) == pytest.approx(15.0)
    # the node's aggregate NIC rate bounds the stage from below: no faster than S x 2 (N-1)/N / (g x NIC)
    for nodes in (2, 4, 8):
        for g in (1, 2, 4, 8):
            assert _network_s(size, nodes, g) >= 2 * (nodes - 1) / nodes * size / (g * NIC) * (1 - 1e-12)


def test_doubling_the_nodes_at_a_fixed_message_costs_at_most_twice_the_network_stage() -> None:
    size = 2.0**27
    times = [_network_s(size, nodes, 8) for nodes in (2, 4, 8, 16, 32)]
    ratios = np.array(times[1:]) / np.array(times[:-1])
    # 2 (N - 1) / N: x1.5 from 2 to 4 nodes, then towards 1; always more, never doubled
    assert ratios[0] == pytest.approx(1.5)
    assert np.all(ratios > 1.0)
    assert np.all(ratios < 2.0)
    assert np.all(np.diff(ratios) < 0)
    # the stage tends to 2 S / (g x NIC): the bandwidth-optimal all-reduce's limit
    assert times[-1] < 2 * size / (8 * NIC)


def test_all_gather_and_reduce_scatter_move_half_an_all_reduce_across_nodes() -> None:
    size = 2.0**28
    for op in ("all_gather", "reduce_scatter"):
        assert _network_s(size, 4, 8, op) == pytest.approx(_network_s(size, 4, 8) / 2)


def test_multi_node_time_adds_the_stages_and_its_latency() -> None:
    size = np.array([0.0, 2.0**20, 2.0**30])
    intra = np.array([1e-5, 2e-5, 3e-3])
    t = collective.multi_node_s(
        B200, intra, message_bytes=size, nodes=2, gpus_per_node=8, interconnect_fraction=0.5, latency_s=7e-6
    )
    np.testing.assert_allclose(t, intra + 7e-6 + size / 8 / (0.5 * NIC))
    # one node: no network stage at all
    one = collective.multi_node_s(
        B200, intra, message_bytes=size, nodes=1, gpus_per_node=8, interconnect_fraction=0.5
    )
    np.testing.assert_allclose(one, intra)


# Two-node nccl-tests all_reduce_perf tables, 16 B .. 1 KiB, out-of-place then in-place [us]: 2 x 8 H100 on
# Nebius InfiniBand (dstack examples/clusters/nebius/README.md) and 2 x 8 B200 on a Lambda 1-Click Cluster,
# NCCL 2.26.2 (dstack examples/clusters/lambda/README.md); the sources INTER_NODE_LATENCY_S cites
TWO_NODE_SMALL_ALL_REDUCE_US = {
    "h100-sxm": (
        [29.92, 30.10, 34.48, 30.38, 30.48, 30.45, 31.36],
        [29.42, 29.75, 29.36, 29.67, 29.97, 30.85, 31.29],
    ),
    "b200": (
        [35.55, 35.49, 35.85, 37.36, 37.38, 51.05, 45.33],
        [35.49, 36.28, 35.54, 36.82, 37.80, 37.17, 37.98],
    ),
}


def test_inter_node_latency_is_the_public_two_node_tables_less_the_intra_node_stage() -> None:
    """The default latency is what the public two-node tables add to the model's own intra-node stage:
    the median over both devices and both buffers of measured - (intra-node NCCL all-reduce among 8 GPUs),
    to the microsecond it is stated in, and the two-node call is that stage plus it. The intra-node stage is
    the fitted H100 / B200 NCCL parameters, so a refit that moves them by a microsecond asks for the constant
    to be re-derived (this test then says so)."""
    sizes = np.tile(2.0 ** np.arange(4, 11), 2)
    differences = []
    for name, measured_us in TWO_NODE_SMALL_ALL_REDUCE_US.items():
        hardware = load_hardware(name)
        params = params_for(hardware, collective, "nccl:all_reduce")
        intra = collective.time_s(hardware, params, message_bytes=sizes, num_gpus=8, eager=False)
        differences.extend(np.concatenate(measured_us) * 1e-6 - intra)
        total = collective.multi_node_s(
            hardware, intra, message_bytes=sizes, nodes=2, gpus_per_node=8, interconnect_fraction=1.0
        )
        np.testing.assert_allclose(total, intra + collective.INTER_NODE_LATENCY_S, rtol=1e-3)
    assert float(np.median(differences)) == pytest.approx(collective.INTER_NODE_LATENCY_S, abs=0.5e-6)


def test_node_split_fills_scale_up_domains() -> None:
    assert collective.node_split(16, 16, 8) == (2, 8)
    assert collective.node_split(64, 64, 8) == (8, 8)
    assert collective.node_split(8, 8, 8) == (1, 8)
    assert collective.node_split(2, 16, 8) == (2, 1)  # two ranks of a 16-GPU layout, one in each node
    assert collective.node_split(16, 16, 72) == (1, 16)  # one NVL72 rack


def test_multi_node_bad_input_is_a_clear_error() -> None:
    with pytest.raises(CostmodelError, match="alltoall"):
        collective.multi_node_s(
            B200, 0.0, message_bytes=1.0, nodes=2, gpus_per_node=8, op="alltoall", interconnect_fraction=1.0
        )
    with pytest.raises(CostmodelError, match="gpus_per_node"):
        collective.multi_node_s(
            B200, 0.0, message_bytes=1.0, nodes=2, gpus_per_node=0, interconnect_fraction=1.0
        )
    lone = B200.model_copy(
        update={"datasheet": B200.datasheet.model_copy(update={"inter_node_bandwidth_gb_per_s": None})}
    )
    with pytest.raises(CostmodelError, match="inter_node_bandwidth_gb_per_s"):
        collective.multi_node_s(
            lone, 0.0, message_bytes=1.0, nodes=2, gpus_per_node=8, interconnect_fraction=1.0
        )


# ----------------------------------------------------------------------------------------------------
# The engines hand large all-reduces over to NCCL at their published sizes
# ----------------------------------------------------------------------------------------------------

MIB = 2**20


def _handed(name: str, key: str, size: float, n: int) -> bool:
    return bool(collective.runs_on_nccl(load_hardware(name), key, message_bytes=size, num_gpus=n))


def test_vllm_hands_over_beyond_its_symmetric_memory_limit() -> None:
    # vLLM's SYMM_MEM_ALL_REDUCE_MAX_SIZES (inclusive) on compute capability 10.0 (B200) and 9.0 (H100)
    for name, n, limit in (("b200", 8, 128), ("b200", 2, 8), ("b200", 4, 32), ("h100-sxm", 2, 64),
                           ("h100-sxm", 8, 64), ("h200", 4, 32)):  # fmt: skip
        assert not _handed(name, "vLLM_custom", limit * MIB, n)
        assert _handed(name, "vLLM_custom", limit * MIB + 16, n)
    # other GPUs (A100: no symmetric-memory table): the custom all-reduce's 8 MiB buffer, exclusive
    assert not _handed("a100-80gb", "vLLM_custom", 8 * MIB - 16, 8)
    assert _handed("a100-80gb", "vLLM_custom", 8 * MIB, 8)


def test_trtllm_hands_over_beyond_its_workspace() -> None:
    for n, workspace in ((2, 16_000_000), (4, 8_000_000), (8, 8_000_000)):
        assert not _handed("h100-sxm", "TRTLLM", workspace, n)
        assert _handed("h100-sxm", "TRTLLM", workspace + 16, n)


def test_nccl_keys_and_pcie_gpus_never_hand_over() -> None:
    assert not _handed("b200", "nccl:all_reduce", 2.0**30, 8)
    # PCIe: vLLM's custom key's parameters already are NCCL's ring beyond two GPUs
    assert not _handed("l40s", "vLLM_custom", 2.0**30, 4)
    sizes = np.array([1.0, 2.0**30])
    handed = collective.runs_on_nccl(B200, "vLLM_custom", message_bytes=sizes, num_gpus=np.array([8, 8]))
    assert handed.tolist() == [False, True]


def test_vllm_switches_paths_at_its_published_sizes() -> None:
    # csrc/custom_all_reduce.cuh (one-shot below 512 / 256 KiB on 4 / 8 GPUs, always on 2), then
    # CUSTOM_ALL_REDUCE_MAX_SIZES capped at the 8 MiB buffer, then SYMM_MEM_ALL_REDUCE_MAX_SIZES (inclusive)
    def path(name: str, size: float, n: int) -> str:
        one, two, symm = collective.vllm_paths(load_hardware(name), message_bytes=size, num_gpus=n)
        return "one" if one else "two" if two else "symm" if symm else "nccl"

    assert [path("b200", size, 8) for size in (128 * 1024, 256 * 1024, MIB, 128 * MIB, 129 * MIB)] == [
        "one",
        "two",
        "symm",
        "symm",
        "nccl",
    ]
    assert [path("b200", size, 2) for size in (MIB, 2 * MIB, 8 * MIB, 9 * MIB)] == [
        "one",
        "symm",
        "symm",
        "nccl",
    ]
    assert [path("h100-sxm", size, 2) for size in (4 * MIB, 8 * MIB, 64 * MIB)] == ["one", "symm", "symm"]
    assert [path("h100-sxm", size, 4) for size in (256 * 1024, MIB, 8 * MIB)] == ["one", "two", "symm"]
    assert [path("a100-80gb", size, 8) for size in (128 * 1024, MIB, 8 * MIB)] == ["one", "two", "nccl"]
    # the paths and NCCL's hand-over tile the sizes
    sizes = np.logspace(10, 30, 41, base=2.0)
    for name in ("b200", "h100-sxm", "a100-80gb"):
        for n in (2, 4, 8):
            one, two, symm = collective.vllm_paths(load_hardware(name), message_bytes=sizes, num_gpus=n)
            nccl = collective.runs_on_nccl(
                load_hardware(name), "vLLM_custom", message_bytes=sizes, num_gpus=n
            )
            assert np.all(one.astype(int) + two + symm + nccl == 1)


def test_vllm_times_the_path_it_runs_not_the_faster_one() -> None:
    params = collective.default_params(B200, "vLLM_custom")
    size = np.array([128 * 1024.0, 512 * 1024.0, 4 * MIB])
    parts = collective.breakdown(B200, params, message_bytes=size, num_gpus=8, eager=False)
    t = parts.total
    assert t[0] == pytest.approx(parts.small_s[0])  # one-shot
    assert t[1] == pytest.approx(parts.large_s[1])  # two-shot, whichever is faster
    # 8 GPUs of SM 10.0 run symmetric memory's multimem all-reduce: the switch reduces, at its own rate
    symm = params.symm_latency_s + 2 * 7 / 8 * size[2] / (900e9 * params.symm_bandwidth_fraction)
    assert t[2] == pytest.approx(symm)
    # 2 GPUs of SM 10.0 run its two-shot: the custom two-shot plus a copy in and out of the symmetric buffer
    two = collective.breakdown(B200, params, message_bytes=4 * MIB, num_gpus=2, eager=False)
    copies = 4 * 4 * MIB / B200.memory_bandwidth_bytes_per_s
    assert float(two.total) == pytest.approx(float(two.large_s) + copies)
    # TensorRT-LLM and NCCL keep the faster of their two paths
    assert not collective.default_params(B200, "TRTLLM").vllm_paths
    assert not collective.default_params(B200, "nccl:all_reduce").vllm_paths


@pytest.mark.parametrize("name", ["h100-sxm", "b200", "b300"])
def test_a_renamed_profile_keeps_its_engines_dispatch(name: str) -> None:
    """A profile's name is a label: a user's renamed copy of a profile runs the same all-reduce paths and
    times (the compute capability vLLM keys its dispatch on is a datasheet field, not a name lookup)."""
    hardware = load_hardware(name)
    renamed = hardware.model_copy(update={"name": "my-own-" + name})
    sizes = np.geomspace(1e3, 3e8, 60)
    for n in (2, 4, 6, 8):
        for a, b in zip(
            collective.vllm_paths(hardware, message_bytes=sizes, num_gpus=n),
            collective.vllm_paths(renamed, message_bytes=sizes, num_gpus=n),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
        params = collective.default_params(hardware, "vLLM_custom")
        np.testing.assert_array_equal(
            collective.time_s(hardware, params, message_bytes=sizes, num_gpus=n, op="all_reduce"),
            collective.time_s(renamed, params, message_bytes=sizes, num_gpus=n, op="all_reduce"),
        )


def _nccl_rows(truth: collective.Params, op: str, sizes: np.ndarray, gpus: tuple[int, ...]) -> object:
    from costmodel.calibrate import MeasuredGroup

    b200 = load_hardware("b200")
    size, n = (a.ravel() for a in np.meshgrid(sizes, np.asarray(gpus, dtype=float)))
    shapes = {"message_bytes": size, "num_gpus": n, "op": np.full(size.shape, op)}
    measured = collective.time_s(b200, truth, message_bytes=size, num_gpus=n, op=op)
    return MeasuredGroup("b200", collective, f"nccl:{op}", measured, shapes)


def test_reduce_scatter_takes_the_all_gathers_growth_with_gpu_count() -> None:
    """NCCL runs reduce-scatter as all-gather backwards (TIED_PARAMS): rows that cannot show the growth of bus
    bandwidth with the GPU count (no large message on 4 or 8 GPUs) take the all-gather's, in either order."""
    from costmodel.calibrate import Measurements, calibrate_measurements

    b200 = load_hardware("b200")
    assert collective.TIED_PARAMS["nccl:reduce_scatter"] == ("nccl:all_gather", ("contention_exponent",))
    truth = dataclasses.replace(collective.default_params(b200, "nccl"), contention_exponent=-0.25)
    gather = _nccl_rows(truth, "all_gather", np.logspace(10, 29, 12, base=2.0), (2, 4, 8))
    scatter_large = _nccl_rows(truth, "reduce_scatter", np.logspace(10, 29, 12, base=2.0), (2,))
    scatter_small = _nccl_rows(truth, "reduce_scatter", np.logspace(10, 16, 4, base=2.0), (4, 8))
    scatter = dataclasses.replace(
        scatter_large,
        measured_s=np.concatenate([scatter_large.measured_s, scatter_small.measured_s]),
        shapes={
            k: np.concatenate([scatter_large.shapes[k], scatter_small.shapes[k]])
            for k in scatter_large.shapes
        },
    )
    for groups in ([scatter, gather], [gather, scatter]):
        data = Measurements(groups, source="synthetic", revision="r1", row_rule="all rows")
        fitted = calibrate_measurements(data, date="2026-12-02", costmodel_revision="abc", known_hardware=[])
        keys = fitted.calibrations["b200"].params["collective"]
        assert keys["nccl:all_gather"]["contention_exponent"] == pytest.approx(-0.25, abs=0.02)
        assert (
            keys["nccl:reduce_scatter"]["contention_exponent"]
            == keys["nccl:all_gather"]["contention_exponent"]
        )
    # without its source in the run, the reduce-scatter fits on its own rows
    alone = calibrate_measurements(
        Measurements([scatter], source="synthetic", revision="r1", row_rule="all rows"),
        date="2026-12-02",
        costmodel_revision="abc",
        known_hardware=[],
    )
    assert "nccl:reduce_scatter" in alone.calibrations["b200"].params["collective"]


def _tie_rows() -> tuple[object, object]:
    """B200 all-gather rows that identify the growth with the GPU count (-0.25) and reduce-scatter rows that
    do not (large messages on 2 GPUs only)."""
    truth = dataclasses.replace(
        collective.default_params(load_hardware("b200"), "nccl"), contention_exponent=-0.25
    )
    gather = _nccl_rows(truth, "all_gather", np.logspace(10, 29, 12, base=2.0), (2, 4, 8))
    scatter = _nccl_rows(truth, "reduce_scatter", np.logspace(10, 29, 12, base=2.0), (2,))
    return gather, scatter


def test_a_key_refit_keeps_the_tie_with_either_key_alone(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--key` names one side of a tie: the reduce-scatter alone takes the all-gather's value stored in OUT;
    the all-gather alone refits the reduce-scatter too. Either way OUT holds the two equal to the bit."""
    import yaml

    from costmodel.calibrate import Measurements, calibrate_from

    gather, scatter = _tie_rows()

    def reader(root: object) -> Measurements:
        return Measurements([gather, scatter], source="synthetic", revision="r1", row_rule="all rows")

    monkeypatch.setattr("costmodel.calibrate.git_revision", lambda: "abc")
    path = tmp_path / "b200.yaml"

    def stored(changes: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
        document = yaml.safe_load(path.read_text())
        keys = document["kernel_calibration"]["params"]["collective"]
        for key, value in (changes or {}).items():
            keys[key]["contention_exponent"] = value
        path.write_text(yaml.safe_dump(document))
        return {k: v["contention_exponent"] for k, v in keys.items()}

    calibrate_from(tmp_path, tmp_path, reader=reader)
    fitted = stored()
    assert fitted["nccl:all_gather"] == pytest.approx(-0.25, abs=0.02)
    assert fitted["nccl:reduce_scatter"] == fitted["nccl:all_gather"]
    # the reduce-scatter alone: the all-gather's stored value (not an untied fit's 0), the all-gather kept
    stored({"nccl:all_gather": -0.4, "nccl:reduce_scatter": 0.0})
    _, outcome = calibrate_from(tmp_path, tmp_path, reader=reader, keys=["nccl:reduce_scatter"])
    assert stored() == {"nccl:all_gather": -0.4, "nccl:reduce_scatter": -0.4}
    assert outcome.skipped == []
    # the all-gather alone: refit, and the reduce-scatter with it
    _, outcome = calibrate_from(tmp_path, tmp_path, reader=reader, keys=["nccl:all_gather"])
    after = stored()
    assert after["nccl:all_gather"] == pytest.approx(-0.25, abs=0.02)
    assert after["nccl:reduce_scatter"] == after["nccl:all_gather"]
    assert outcome.skipped == []


def test_a_source_whose_fit_fails_drops_the_tie_and_says_so() -> None:
    from costmodel.calibrate import Measurements, calibrate_measurements

    gather, scatter = _tie_rows()
    broken = dataclasses.replace(gather, measured_s=np.full_like(gather.measured_s, np.nan))
    outcome = calibrate_measurements(
        Measurements([scatter, broken], source="synthetic", revision="r1", row_rule="all rows"),
        date="2026-12-02",
        costmodel_revision="abc",
        known_hardware=[],
    )
    assert "nccl:reduce_scatter" in outcome.calibrations["b200"].params["collective"]  # fitted untied
    assert any("nccl:all_gather" in line and "no positive" in line for line in outcome.skipped)
    assert any(
        line.startswith("b200 collective nccl:reduce_scatter: its tie dropped") for line in outcome.skipped
    )


def test_a_chain_of_ties_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from costmodel.calibrate import tied_params

    chain = {"a": ("b", ("contention_exponent",)), "b": ("c", ("contention_exponent",))}
    monkeypatch.setattr(collective, "TIED_PARAMS", chain)
    with pytest.raises(CostmodelError, match="chains 'a' <- 'b' <- 'c'"):
        tied_params(collective)


def _nccl_p2p_runs_ll(
    bytes_per_peer: int, release_line: tuple[int, int], channels_per_peer: int, n: int
) -> bool:
    """An independent re-reading of ``addP2pToPlan`` / ``scheduleP2pTasksToPlan`` (NVIDIA/nccl
    src/enqueue.cc) for one peer's message on one NVSwitch node: the per-peer channel bounds, then the LL test
    of the release line (before 2.29: against ``nChannelsMax`` x 16 KiB; from 2.29: against the channels the
    message is split over, ``min(nChannelsMin, ceil(bytes / (p2pChunkSize / 8)))``, 512 KiB NVLink chunks)."""
    n_channels_max = channels_per_peer
    n_channels_min = n_channels_max
    while n_channels_min * n > channels_per_peer and n_channels_min > 1:  # p2pnChannels = per-peer here
        n_channels_min //= 2
    if release_line < (2, 29):
        return bytes_per_peer <= n_channels_max * 16384
    min_part = (512 * 1024) // 8
    n_channels = min(n_channels_min, -(-bytes_per_peer // min_part))
    return bytes_per_peer <= n_channels * 16384


@pytest.mark.parametrize("release", ["2.27.3", "2.28.9", "2.29.2", "2.30.1"])
@pytest.mark.parametrize("n", [2, 4, 8])
def test_p2p_ll_limit_follows_each_nccl_releases_rule(release: str, n: int) -> None:
    line = tuple(int(p) for p in release.split(".")[:2])
    sizes = np.unique(np.round(np.logspace(4, 24, 400, base=2.0)).astype(int))  # 16 B .. 16 MiB per peer
    oracle = np.array([_nccl_p2p_runs_ll(int(s), (line[0], line[1]), 32, n) for s in sizes])
    ll_max = collective.p2p_ll_max_bytes(release)
    np.testing.assert_array_equal(sizes <= ll_max, oracle)
    # the 2.29 line's LL ends at NCCL_P2P_LL_THRESHOLD (16 KiB) per peer, the older lines' at 32 x 16 KiB
    assert ll_max == (16384 if line >= (2, 29) else 32 * 16384)


def test_p2p_ll_limit_defaults_and_bad_input() -> None:
    assert collective.p2p_ll_max_bytes(None) == collective.NCCL_P2P_LL_THRESHOLD_BYTES == 16384
    assert collective.p2p_ll_max_bytes("2.27.3", link="pcie") == 2 * 16384  # two channels to a PCIe peer
    with pytest.raises(CostmodelError, match=r"MAJOR\.MINOR"):
        collective.p2p_ll_max_bytes("latest")
    with pytest.raises(CostmodelError, match="link"):
        collective.p2p_ll_max_bytes("2.27.3", link="ethernet")
    hardware = load_hardware("b200")
    with pytest.raises(CostmodelError, match="p2p_ll_max_bytes"):
        collective.time_s(
            hardware, collective.default_params(hardware), message_bytes=1e6, num_gpus=8, op="alltoall",
            p2p_ll_max_bytes=-1.0,
        )  # fmt: skip


@pytest.mark.parametrize("hardware_name", ["h100-sxm", "b200", "a100-80gb"])
@pytest.mark.parametrize("release", ["2.27.3", "2.29.2"])
def test_nccl_alltoall_runs_ll_up_to_its_releases_limit_and_simple_above(
    hardware_name: str, release: str
) -> None:
    hardware = load_hardware(hardware_name)
    params = collective.default_params(hardware, "nccl")
    ll_max = collective.p2p_ll_max_bytes(release)
    for n in (2, 4, 8):
        per_peer = np.array([ll_max / 4, ll_max, ll_max * 1.01, ll_max * 4])
        parts = collective.breakdown(
            hardware, params, message_bytes=per_peer * n, num_gpus=n, op="alltoall", p2p_ll_max_bytes=ll_max
        )
        ll = per_peer <= ll_max
        np.testing.assert_allclose(parts.total[ll], parts.small_s[ll])
        np.testing.assert_allclose(parts.total[~ll], parts.large_s[~ll])
    # the other collectives keep the faster of the two paths
    size = np.array([1e3, 1e6, 1e9])
    ring = collective.breakdown(hardware, params, message_bytes=size, num_gpus=8, op="all_gather")
    np.testing.assert_allclose(ring.total, collective.smooth_min(ring.small_s, ring.large_s))


def test_a_fit_keeps_lls_rate_where_no_row_sends_more_than_16_kib_per_peer_with_it() -> None:
    sizes = np.logspace(9, 30, 22, base=2.0)
    newest = {
        "op": np.full(sizes.shape, "alltoall"),
        "message_bytes": sizes,
        "num_gpus": np.full(sizes.shape, 8.0),
    }
    assert collective.fixed_for_rows("nccl:alltoall", newest) == ("small_bandwidth_ratio",)
    older = {**newest, "p2p_ll_max_bytes": np.full(sizes.shape, collective.p2p_ll_max_bytes("2.27.3"))}
    assert collective.fixed_for_rows("nccl:alltoall", older) == ()
    assert (
        collective.fixed_for_rows("nccl:all_reduce", {**newest, "op": np.full(sizes.shape, "all_reduce")})
        == ()
    )


def test_a_fit_keeps_the_pcie_ll_switch_off_nvlink_keys() -> None:
    # ll_max_bytes applies to PCIe rings only: an NVLink key's fit must not store its lower bound
    assert collective.fixed_for("nccl:alltoall", load_hardware("b200")) == ("ll_max_bytes",)
    assert collective.fixed_for("nccl:all_reduce", load_hardware("l40s")) == ()


@pytest.mark.parametrize(("op", "steps"), [("all_reduce", 2), ("all_gather", 1), ("reduce_scatter", 1)])
def test_nccls_ring_pays_its_step_latency_on_every_ring_step_of_both_protocols(op: str, steps: int) -> None:
    # NCCL's tuning model prices each ring protocol as baseLat + nsteps x hwLat, nsteps = 2 (n - 1) for an
    # all-reduce and n - 1 for an all-gather or reduce-scatter (ncclTopoTuneModel, src/graph/tuning.cc):
    # an empty message costs the per-step time that many times on the LL (small) path as on the Simple one
    hardware = load_hardware("h100-sxm")
    params = dataclasses.replace(
        collective.default_params(hardware, f"nccl:{op}"), small_latency_s=0.0, large_extra_latency_s=0.0
    )
    n = np.array([2, 4, 8])
    parts = collective.breakdown(hardware, params, message_bytes=0.0, num_gpus=n, op=op)
    np.testing.assert_allclose(parts.small_s, params.hop_latency_s * steps * (n - 1))
    np.testing.assert_allclose(parts.large_s, parts.small_s)
    # a one-shot custom all-reduce writes its flag to every peer at once: n - 1 hops, not the ring's steps
    custom = dataclasses.replace(
        collective.default_params(hardware, "vLLM_custom"), small_latency_s=0.0, large_extra_latency_s=0.0
    )
    one_shot = collective.breakdown(hardware, custom, message_bytes=0.0, num_gpus=n, eager=False)
    np.testing.assert_allclose(one_shot.small_s, custom.hop_latency_s * (n - 1))


@pytest.mark.parametrize("ll_max_bytes", [0.0, 2.0**20])
def test_two_pcie_gpus_run_vllms_kernel_below_its_buffer_and_nccls_ring_from_it(ll_max_bytes: float) -> None:
    # vLLM's should_custom_ar: the custom kernel (one-shot on two GPUs) below its 8 MiB buffer, NCCL from it;
    # a choice by size, so the time is one path's, never a blend faster than both (custom_all_reduce.py)
    hardware = load_hardware("l40s")
    params = dataclasses.replace(
        collective.default_params(hardware, "vLLM_custom"), ll_max_bytes=ll_max_bytes
    )
    sizes = np.array(
        [2.0**20, collective.VLLM_CUSTOM_MAX_BYTES - 2.0, collective.VLLM_CUSTOM_MAX_BYTES, 2.0**28]
    )
    parts = collective.breakdown(hardware, params, message_bytes=sizes, num_gpus=2, eager=False)
    np.testing.assert_allclose(parts.total, np.concatenate([parts.small_s[:2], parts.large_s[2:]]))
    assert np.all(parts.total >= np.minimum(parts.small_s, parts.large_s))


def test_nccls_simple_ring_latency_beyond_ll_is_its_tuning_models() -> None:
    # baseLat Simple - LL = 8.4 - 6.6 us, hwLat on NVLink Simple - LL = 3.4 - 0.6 us per step, on an 8-GPU ring
    # (ncclTopoTuneModel, src/graph/tuning.cc at b6475625): 14 all-reduce steps, 7 for the other ring ops
    assert collective.nccl_simple_extra_latency_s("all_reduce") == pytest.approx(1.8e-6 + 14 * 2.8e-6)
    assert collective.nccl_simple_extra_latency_s("all_gather") == pytest.approx(1.8e-6 + 7 * 2.8e-6)
    assert collective.nccl_simple_extra_latency_s("reduce_scatter") == pytest.approx(21.4e-6)
    assert collective.nccl_simple_extra_latency_s("alltoall") is None  # point-to-point: not a ring
    nvlink, pcie = load_hardware("a100-80gb"), load_hardware("l40s")
    assert collective.default_params(nvlink, "nccl:all_reduce").large_extra_latency_s == pytest.approx(41e-6)
    for hardware, key in (
        (nvlink, "nccl:alltoall"),
        (nvlink, "nccl"),
        (nvlink, "vLLM_custom"),
        (pcie, "nccl:all_reduce"),
    ):
        fixed = 2 * hardware.efficiency.kernel_overhead_s
        assert collective.default_params(hardware, key).large_extra_latency_s == pytest.approx(fixed)


@pytest.mark.parametrize("hardware_name", ["l40s", "h100-pcie"])
def test_two_pcie_gpus_run_vllms_kernel_below_its_buffer_and_trtllm_calls_nccl_at_every_size(
    hardware_name: str,
) -> None:
    # vLLM's should_custom_ar: its custom kernel below 8 MiB = 8,388,608 bytes (a "<" test), NCCL's ring from it.
    # TensorRT-LLM's AllreduceOp::ifFallbackToNCCL returns NCCL unless both P2P and NVLink are supported
    # (cpp/tensorrt_llm/thop/allreduceOp.cpp): on PCIe its key is NCCL's ring at every size, never one-shot
    hardware = load_hardware(hardware_name)
    trt, vllm = (collective.default_params(hardware, key) for key in ("TRTLLM", "vLLM_custom"))
    assert not trt.one_shot
    assert vllm.one_shot
    sizes = np.array([1024.0, 8 * MIB - 16, 8 * MIB, 16_000_000])
    assert collective.runs_on_nccl(hardware, "TRTLLM", message_bytes=sizes, num_gpus=2).all()
    assert not collective.runs_on_nccl(hardware, "vLLM_custom", message_bytes=sizes, num_gpus=2).any()
    vllm_parts = collective.breakdown(hardware, vllm, message_bytes=sizes, num_gpus=2, eager=False)
    np.testing.assert_allclose(vllm_parts.total, [*vllm_parts.small_s[:2], *vllm_parts.large_s[2:]])
    # the serving path's never-shrinks guard sees vLLM's hand-over; TensorRT-LLM and NCCL have none there
    assert collective.switch_bytes(hardware, "vLLM_custom", 2) == [8.0 * MIB]
    assert collective.switch_bytes(hardware, "TRTLLM", 2) == []
    assert collective.switch_bytes(hardware, "TRTLLM", 4) == []
    assert collective.switch_bytes(hardware, "nccl:all_reduce", 2) == []


@pytest.mark.parametrize("hardware_name", ["mi300x", "tpu-v5e"])
def test_nvidia_nccls_nvlink_latencies_are_not_the_default_on_xgmi_or_ici(hardware_name: str) -> None:
    # NCCL_RING_LATENCY_US are NVIDIA NCCL's NVLink hwLat values; RCCL (xGMI) and TPU ICI tune their own, so
    # those devices keep the plain default of 2 x kernel_overhead_s for the large path's extra fixed time
    hardware = load_hardware(hardware_name)
    for key in ("nccl:all_reduce", "nccl:all_gather", "nccl:reduce_scatter"):
        fixed = 2 * hardware.efficiency.kernel_overhead_s
        assert collective.default_params(hardware, key).large_extra_latency_s == pytest.approx(fixed)


def test_nccls_simple_ring_latency_beyond_ll_follows_the_rings_gpu_count() -> None:
    # tuning.cc: 1.8 us of baseLat plus 2.8 us of NVLink hwLat per ring step; an all-reduce ring of n GPUs
    # takes 2 (n - 1) steps, an all-gather n - 1: 2 GPUs 1.8 + 2 x 2.8 = 7.4 us, 4 GPUs all-gather 1.8 + 3 x 2.8
    assert collective.nccl_simple_extra_latency_s("all_reduce", 2) == pytest.approx(7.4e-6)
    assert collective.nccl_simple_extra_latency_s("all_reduce", 4) == pytest.approx(18.6e-6)
    assert collective.nccl_simple_extra_latency_s("all_gather", 4) == pytest.approx(10.2e-6)
    assert collective.nccl_simple_extra_latency_s("all_reduce") == collective.nccl_simple_extra_latency_s(
        "all_reduce", 8
    )
    with pytest.raises(CostmodelError, match="num_gpus"):
        collective.nccl_simple_extra_latency_s("all_reduce", 1)
