"""Physics of the collective time model (costmodel.kernels.collective)."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel.errors import CostmodelError
from costmodel.kernels import collective
from costmodel.registry import load_hardware

SIZES = np.logspace(7, 30, 24, base=2.0)  # 128 B .. 1 GiB
KEYS = ("nccl", "TRTLLM", "vLLM_custom_graph", "vLLM_custom_eager")


@pytest.mark.parametrize("hardware_name", ["h100-sxm", "b200", "a100-80gb", "l40s"])
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("op", collective.OPS)
@pytest.mark.parametrize("n", [2, 4, 8])
def test_monotone_in_size_and_positive(hardware_name: str, key: str, op: str, n: int) -> None:
    hardware = load_hardware(hardware_name)
    t = collective.time_s(
        hardware, collective.default_params(hardware, key), message_bytes=SIZES, num_gpus=n, op=op
    )
    assert np.all(t > 0)
    assert np.all(np.diff(t) >= 0)


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


def test_eager_mode_pays_a_host_floor() -> None:
    hardware = load_hardware("h100-sxm")
    eager = collective.time_s(
        hardware, collective.default_params(hardware, "vLLM_custom_eager"), message_bytes=128, num_gpus=2
    )
    graph = collective.time_s(
        hardware, collective.default_params(hardware, "vLLM_custom_graph"), message_bytes=128, num_gpus=2
    )
    assert eager > graph


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
