"""The CPU BLAS's weight-packing pass (costmodel.cpu_gemm): physics, not today's error."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel import load_hardware, load_model
from costmodel.ops import forward_ops
from costmodel.roofline import op_times
from costmodel.specs import Efficiency, HardwareProfile

FRACTION = 0.5  # of the weight-streaming bandwidth [-]


def _with_pack(hardware: HardwareProfile, fraction: float = FRACTION) -> Efficiency:
    return hardware.efficiency.model_copy(update={"gemm_pack_fraction": fraction, "gemv_max_rows": 3.0})


def _pack_s(hardware: HardwareProfile, weight_bytes: float) -> float:
    streaming = hardware.memory_bandwidth_bytes_per_s * hardware.efficiency.memory_bandwidth_fraction
    return weight_bytes / (FRACTION * streaming)


def _times(hardware: HardwareProfile, tokens: np.ndarray, eff: Efficiency, model: str = "llama-3-8b") -> dict:
    ops = forward_ops(
        load_model(model), batch_size=1, new_tokens=tokens, weight_dtype="fp32", activation_dtype="fp32"
    )
    times = op_times(ops, hardware, activation_dtype="fp32", efficiency=eff)
    return {name: times.time_s(i) for i, name in enumerate(times.names)} | {
        "total": times.total_s,
        "ops": ops,
    }


def test_gpus_never_pay_the_pack() -> None:
    """The term is the CPU BLAS's: a GPU profile given a packing bandwidth predicts as without one."""
    h100 = load_hardware("h100-sxm")
    tokens = np.array([1.0, 4.0, 64.0, 4096.0])
    ops = forward_ops(load_model("llama-3-8b"), batch_size=1, new_tokens=tokens)
    plain = op_times(ops, h100, efficiency=h100.efficiency)
    packed = op_times(ops, h100, efficiency=_with_pack(h100))
    for i in range(len(ops)):
        np.testing.assert_array_equal(plain.time_s(i), packed.time_s(i))


def test_a_cpu_gemm_pays_one_pass_over_its_weights_beyond_the_gemv_rows() -> None:
    cpu = load_hardware("cpu")
    tokens = np.arange(1.0, 9.0)
    plain = _times(cpu, tokens, cpu.efficiency)
    packed = _times(cpu, tokens, _with_pack(cpu))
    ops = {op.name: op for op in packed["ops"]}
    for name in ("qkv_proj", "o_proj", "mlp_up", "mlp_down"):
        extra = packed[name] - plain[name]
        np.testing.assert_array_equal(extra[tokens <= 3], 0.0)  # a GEMV streams the weights once
        np.testing.assert_allclose(extra[tokens > 3], _pack_s(cpu, ops[name].weight_bytes), rtol=1e-12)
    # elementwise operators and attention run no GEMM
    for name in ("norm", "attention"):
        np.testing.assert_array_equal(packed[name], plain[name])


def test_the_pack_never_makes_more_rows_faster_and_a_faster_pack_is_never_slower() -> None:
    cpu = load_hardware("cpu")
    tokens = np.array([1.0, 2.0, 3.0, 4.0, 16.0, 64.0, 512.0])
    slow = _times(cpu, tokens, _with_pack(cpu, 0.3))["total"]
    fast = _times(cpu, tokens, _with_pack(cpu, 0.9))["total"]
    assert np.all(np.diff(slow) >= 0)
    assert np.all(fast <= slow)
    assert np.all(fast >= _times(cpu, tokens, cpu.efficiency)["total"])


def test_routed_experts_pack_by_the_rows_each_touched_expert_gets() -> None:
    """The reference loops over experts: one GEMM per touched expert with ``T k / (E touched)`` rows; a
    single token gives each of its experts one row (a GEMV, no pack)."""
    cpu = load_hardware("cpu")
    model = load_model("mixtral-8x7b")
    tokens = np.array([1.0, 512.0])
    plain = _times(cpu, tokens, cpu.efficiency, "mixtral-8x7b")
    packed = _times(cpu, tokens, _with_pack(cpu), "mixtral-8x7b")
    assert model.moe is not None
    for name in ("experts_up", "experts_down"):
        extra = packed[name] - plain[name]
        assert extra[0] == 0.0
        assert extra[1] > 0.0
    ops = {op.name: op for op in packed["ops"]}
    # at 512 tokens every expert is touched: the pack reads all the experts' weights once
    assert packed["experts_down"][1] - plain["experts_down"][1] == pytest.approx(
        _pack_s(cpu, ops["experts_down"].weight_bytes)
    )
