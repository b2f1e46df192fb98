"""Which fused-MoE calls run a tuned launch configuration (costmodel.kernels.moe_configs)."""

from __future__ import annotations

import numpy as np

from costmodel.kernels import moe_configs


def test_vllms_own_example_configs_are_found() -> None:
    """vLLM's configs/README: "The example configurations provided are for the Mixtral model for TP2 on H100
    and TP4 on A100. Mixtral has intermediate size N = 14336, i.e. for TP2 we have N = 7168 and for TP4 we
    have N = 3584." (https://github.com/vllm-project/vllm/tree/main/vllm/model_executor/layers/fused_moe/configs)"""
    key = "bf16:vllm:vllm_unquantizedfusedmoe_triton_tritonexperts"
    assert moe_configs.tuned_config("h100-sxm", key, 8, 14336 / 2)
    assert moe_configs.tuned_config("a100-80gb", "bf16:vllm:vllm_fused_moe", 8, 14336 / 4)


def test_a_width_or_expert_count_without_a_file_falls_back_to_the_default() -> None:
    key = "bf16:vllm:vllm_fused_moe"
    found = moe_configs.tuned_config(
        "a100-80gb", key, np.array([8, 8, 4, 8]), np.array([7168, 14336, 7168, 7.5])
    )
    np.testing.assert_array_equal(found, [True, False, False, False])
    assert not moe_configs.tuned_config("b200", key, 8, 7168)  # no listing: vLLM finds no file either
    assert not moe_configs.tuned_config("a100-80gb", "fp8:vllm:vllm_fused_moe", 8, 7168)  # bf16 file only


def test_kernels_that_choose_their_own_tactics_always_count_as_tuned() -> None:
    for key in (
        "bf16:trtllm:moe_torch_flow_cutlass",
        "fp8:vllm:vllm_modeloptfp8moe_flashinfer_cutlass_flashinferexperts",
        "int4_wo:vllm:vllm_compressedtensorswna16marlinmoe_marlin_marlinexperts",
        "w4a16_mxfp4:vllm:vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic",
        "bf16",
    ):
        assert not moe_configs.reads_vllm_configs(key)
        assert np.all(
            moe_configs.tuned_config("a100-80gb", key, np.array([3.0, 8.0]), np.array([5.0, 7168.0]))
        )
