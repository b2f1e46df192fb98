"""The parameter lookup of the kernel models (costmodel.kernels.fallback_keys, params_for): which stored
parameters a key that was never fitted on a device is predicted with."""

from __future__ import annotations

import dataclasses

import pytest

from costmodel.kernels import context_attention, fallback_keys, gemm, params_for
from costmodel.registry import load_hardware
from costmodel.specs import CalibrationRecord, HardwareProfile, KernelCalibration

ATTENTION = [
    "vllm.vllm_flash_attn_fa2:bf16",
    "vllm.vllm_flashinfer_trtllmdecode:bf16",
    "vllm.vllm_flash_attn_fa2:bf16+fp8kv",
    "trtllm.torch_flow:bf16",
]


def test_the_exact_key_comes_first() -> None:
    assert fallback_keys(ATTENTION[0], ATTENTION)[0] == [ATTENTION[0]]


def test_the_same_engines_nearest_kernel_of_the_same_format() -> None:
    levels = fallback_keys("vllm.vllm_flash_attn_fa3:bf16", ATTENTION)
    assert levels == [["vllm.vllm_flash_attn_fa3:bf16"], ["vllm.vllm_flash_attn_fa2:bf16"]]


def test_another_engine_format_or_operation_is_no_sibling() -> None:
    assert fallback_keys("sglang.fa3:bf16", ATTENTION) == [["sglang.fa3:bf16"]]  # no sglang kernel
    assert fallback_keys("vllm.x:fp8", ATTENTION) == [["vllm.x:fp8"]]  # no vllm fp8 kernel
    mla = ["trtllm.default:ctx_module:bf16"]
    assert fallback_keys("trtllm.default:gen_module:bf16", mla) == [["trtllm.default:gen_module:bf16"]]
    moe = ["fp8:trtllm:cutlass", "fp8:vllm:triton"]
    assert fallback_keys("fp8:vllm:marlin", moe)[-1] == ["fp8:vllm:triton"]


def test_gemm_keys_fall_back_to_their_engines_kernels_before_another_engines() -> None:
    """A TensorRT-LLM fp8_block GEMM a device never ran takes that engine's fp8_block parameters, not the
    format's pool, which vLLM's block-fp8 paths (with their host-side dispatch) dominate."""
    stored = [
        "fp8_block",
        "fp8_block:trtllm",
        "fp8_block:trtllm:deepgemm",
        "fp8_block:vllm",
        "fp8_block:vllm:DeepGemmFp8BlockScaledMMKernel",
    ]
    levels = fallback_keys("fp8_block:trtllm:torch_flow", stored)
    assert levels[:3] == [["fp8_block:trtllm:torch_flow"], ["fp8_block:trtllm"], ["fp8_block"]]
    assert levels[-1] == ["fp8_block:trtllm:deepgemm"]  # the same engine's kernel, never vLLM's
    # without the engine's pool: the format's pool first (as before), then the engine's own kernel
    assert fallback_keys("fp8_block:trtllm:torch_flow", [k for k in stored if k != "fp8_block:trtllm"]) == [
        ["fp8_block:trtllm:torch_flow"],
        ["fp8_block"],
        ["fp8_block:trtllm:deepgemm"],
    ]


def test_a_dotted_kernel_name_is_no_engine_prefix_past_the_first_part() -> None:
    """``torch.nn.functional.linear`` names a kernel, not ``<engine>.<kernel>``: siblings are matched on the
    engine part before it."""
    stored = ["bf16:vllm:torch.nn.functional.linear", "bf16:trtllm:cublas.lt"]
    assert fallback_keys("bf16:trtllm:torch.nn.functional.linear", stored) == [
        ["bf16:trtllm:torch.nn.functional.linear"],
        ["bf16:trtllm:cublas.lt"],
    ]


def _with(hardware: HardwareProfile, family: str, table: dict[str, dict[str, float]]) -> HardwareProfile:
    record = CalibrationRecord(
        data_source="test", data_revision="test", row_rule="test", date="2026-01-01", costmodel_revision="x"
    )
    return hardware.model_copy(
        update={"kernel_calibration": KernelCalibration(params={family: table}, record=record)}
    )


def test_tied_siblings_give_each_parameters_median() -> None:
    h100 = load_hardware("h100-sxm")
    hardware = _with(
        h100,
        "context_attention",
        {
            "vllm.flash_a:bf16": {"compute_fraction": 0.4, "launch_s": 1e-6},
            "vllm.flash_b:bf16": {"compute_fraction": 0.6, "launch_s": 3e-6},
        },
    )
    params = params_for(hardware, context_attention, "vllm.flash_c:bf16")
    assert params.compute_fraction == pytest.approx(0.5)
    assert params.launch_s == pytest.approx(2e-6)
    # a parameter no sibling stores keeps its datasheet default
    default = context_attention.default_params(h100, "vllm.flash_c:bf16")
    assert params.bandwidth_fraction == default.bandwidth_fraction


def test_nothing_stored_is_the_datasheet() -> None:
    h100 = load_hardware("h100-sxm")
    hardware = _with(h100, "gemm", {"bf16": {"compute_fraction": 0.5}})
    assert params_for(hardware, gemm, "fp8:x") == gemm.default_params(h100, "fp8:x")
    assert dataclasses.replace(params_for(hardware, gemm, "bf16:x"), dtype="bf16") == dataclasses.replace(
        gemm.default_params(h100, "bf16"), compute_fraction=0.5
    )
