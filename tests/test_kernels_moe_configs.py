"""Which fused-MoE calls run a tuned launch configuration (costmodel.kernels.moe_configs)."""

from __future__ import annotations

import numpy as np

from costmodel.kernels import moe_configs
from costmodel.registry import load_hardware

H100, A100, B200 = load_hardware("h100-sxm"), load_hardware("a100-80gb"), load_hardware("b200")


def test_vllms_own_example_configs_are_found() -> None:
    """vLLM's configs/README: "The example configurations provided are for the Mixtral model for TP2 on H100
    and TP4 on A100. Mixtral has intermediate size N = 14336, i.e. for TP2 we have N = 7168 and for TP4 we
    have N = 3584." (https://github.com/vllm-project/vllm/tree/main/vllm/model_executor/layers/fused_moe/configs)"""
    key = "bf16:vllm:vllm_unquantizedfusedmoe_triton_tritonexperts"
    assert moe_configs.tuned_config(H100, key, 8, 14336 / 2)
    assert moe_configs.tuned_config(A100, "bf16:vllm:vllm_fused_moe", 8, 14336 / 4)


def test_a_width_or_expert_count_without_a_file_falls_back_to_the_default() -> None:
    key = "bf16:vllm:vllm_fused_moe"
    found = moe_configs.tuned_config(A100, key, np.array([8, 8, 4, 8]), np.array([7168, 14336, 7168, 7.5]))
    np.testing.assert_array_equal(found, [True, False, False, False])
    assert not moe_configs.tuned_config(B200, key, 8, 7168)  # no listing: vLLM finds no file either
    assert not moe_configs.tuned_config(A100, "fp8:vllm:vllm_fused_moe", 8, 7168)  # bf16 file only


def test_kernels_that_choose_their_own_tactics_always_count_as_tuned() -> None:
    for key in (
        "bf16:trtllm:moe_torch_flow_cutlass",
        "fp8:vllm:vllm_modeloptfp8moe_flashinfer_cutlass_flashinferexperts",
        "int4_wo:vllm:vllm_compressedtensorswna16marlinmoe_marlin_marlinexperts",
        "w4a16_mxfp4:vllm:vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic",
        "bf16",
    ):
        assert not moe_configs.reads_vllm_configs(key)
        assert np.all(moe_configs.tuned_config(A100, key, np.array([3.0, 8.0]), np.array([5.0, 7168.0])))


def test_a_renamed_profile_keeps_its_tuned_configs() -> None:
    """vLLM finds its config files by the CUDA device name, a datasheet field of the profile: a user's
    renamed copy of the H100 profile still runs the tuned Mixtral TP2 config (vLLM's configs/README)."""
    renamed = H100.model_copy(update={"name": "my-h100"})
    key = "bf16:vllm:vllm_unquantizedfusedmoe_triton_tritonexperts"
    experts, width = np.array([8, 8, 16, 3]), np.array([7168, 100, 1344, 7168])
    np.testing.assert_array_equal(
        moe_configs.tuned_config(renamed, key, experts, width),
        moe_configs.tuned_config(H100, key, experts, width),
    )
    assert moe_configs.tuned_config(renamed, key, 8, 7168)


def test_a_profile_without_a_cuda_device_name_gets_vllms_default_config() -> None:
    """No device name (a user's profile that does not state it): vLLM would find no file, so every call runs
    the default launch configuration."""
    anonymous = H100.model_copy(
        update={"datasheet": H100.datasheet.model_copy(update={"cuda_device_name": None})}
    )
    assert not moe_configs.tuned_config(anonymous, "bf16:vllm:vllm_fused_moe", 8, 7168)


def test_the_gb200_runs_the_configs_vllm_ships_for_it() -> None:
    """vLLM's configs folder holds E=128,N=768,device_name=NVIDIA_GB200.json (Qwen3-30B-A3B's 128 experts of
    width 768 at tp 1) and E=384,N=256,device_name=NVIDIA_GB200,dtype=fp8_w8a8,block_shape=[128,128].json
    (Kimi K2's 384 experts of width 2048 at tp 8), and no GB200 file for Mixtral's E=8,N=7168 (tp 2)."""
    gb200 = load_hardware("gb200")
    assert moe_configs.vllm_device_name(gb200) == "NVIDIA_GB200"
    bf16 = "bf16:vllm:vllm_unquantizedfusedmoe_triton_tritonexperts"
    np.testing.assert_array_equal(
        moe_configs.tuned_config(gb200, bf16, np.array([128, 128, 8]), np.array([768, 96, 7168])),
        [True, False, False],
    )
    block = "fp8_block:vllm:vllm_fp8moe_triton_tritonexperts"
    assert moe_configs.tuned_config(gb200, block, 384, 2048 / 8)
    assert not moe_configs.tuned_config(gb200, "fp8:vllm:vllm_fused_moe", 384, 256)  # block-scaled file only
