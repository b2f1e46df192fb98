"""The residual stream's bytes and SGLang's all-reduce rule: the tensor-parallel all-reduce message and the
layer norms' bytes counted by hand from the model's config whatever the GEMMs' format, and SGLang's custom
all-reduce handing over to NCCL at its own buffer size (``_MAX_CAR_SIZE``) unless the launch enables
symmetric memory."""

from __future__ import annotations

import numpy as np
import pytest

import costmodel
from costmodel import kernel_times
from costmodel.kernels import collective
from costmodel.ops import forward_ops

LLAMA_70B = costmodel.load_model("llama-3-70b")
HIDDEN = 8192  # Llama-3-70B's config.json: "hidden_size": 8192
BF16 = 2  # bytes an element of the bf16 residual stream
MIB = 1024 * 1024


def _ops(new: int, weight: str = "bf16", activation: str = "bf16", tp: int = 8) -> dict[str, object]:
    ops = forward_ops(
        LLAMA_70B,
        batch_size=1,
        new_tokens=new,
        past_tokens=0,
        tp=tp,
        weight_dtype=weight,
        activation_dtype=activation,
    )
    return {op.name: op for op in ops}


# W16A16, W8A8 (per tensor and block-scaled), W4A4 (NVFP4) and weight-only int4: the GEMMs' inputs differ,
# the residual stream they write before each all-reduce is bf16 in all
FORMATS = [("bf16", "bf16"), ("fp8", "fp8"), ("fp8_block", "fp8_block"), ("nvfp4", "nvfp4"), ("int4", "bf16")]


@pytest.mark.parametrize(("weight", "activation"), FORMATS)
def test_the_all_reduce_message_is_tokens_by_hidden_by_two_bytes_whatever_the_gemms_format(
    weight: str, activation: str
) -> None:
    tokens = 300
    ops = _ops(tokens, weight, activation)
    for name in ("allreduce_attn", "allreduce_mlp"):
        op = ops[name]
        assert float(op.bytes_read) == tokens * HIDDEN * BF16  # type: ignore[attr-defined]
        assert float(op.kernel.message_bytes) == tokens * HIDDEN * BF16  # type: ignore[attr-defined]


@pytest.mark.parametrize(("weight", "activation"), FORMATS)
def test_a_norm_reads_the_stream_and_the_sublayer_output_in_bf16_and_writes_the_gemms_input(
    weight: str, activation: str
) -> None:
    # fused add + RMSNorm: reads the sublayer's output and the residual (bf16), writes the residual back
    # (bf16) and the normalized output in max(bits, 8) / 8 bytes (fp8: 1 byte; fp4: 1 byte, between
    # FlashInfer's add_rmsnorm_fp4quant, 0.5 + one e4m3 scale per 16 = 0.5625, and a bf16 store that the
    # GEMM's own quantization pass reads, 2)
    tokens = 300
    out = {"bf16": 2, "fp8": 1, "fp8_block": 1, "nvfp4": 1}[activation]
    norm = _ops(tokens, weight, activation)["norm"]
    assert float(norm.bytes_read) == tokens * HIDDEN * 2 * BF16  # type: ignore[attr-defined]
    assert float(norm.bytes_written) == tokens * HIDDEN * (BF16 + out)  # type: ignore[attr-defined]
    # the embedding writes the stream's rows in bf16
    assert float(_ops(tokens, weight, activation)["embedding"].bytes_written) == tokens * HIDDEN * BF16  # type: ignore[attr-defined]


@pytest.mark.parametrize(("weight", "activation"), FORMATS)
def test_every_gemm_writes_its_output_in_bf16_whatever_its_inputs_format(
    weight: str, activation: str
) -> None:
    # W8A8 / W4A4 GEMMs dequantize into a bf16 output (vLLM's CUTLASS fp8 GEMMs take bf16 or fp16 outputs
    # only); Llama-3-70B at tp 8, per GPU: qkv (64 + 2 x 8) heads x 128 / 8 = 1280 columns, o_proj and
    # mlp_down the full hidden 8192 (partial sums before the all-reduce), mlp_up 2 x 28672 / 8 = 7168
    tokens = 300
    ops = _ops(tokens, weight, activation)
    for name, columns in (("qkv_proj", 1280), ("o_proj", HIDDEN), ("mlp_up", 7168), ("mlp_down", HIDDEN)):
        assert float(ops[name].bytes_written) == tokens * columns * BF16  # type: ignore[attr-defined]


B200 = costmodel.load_hardware("b200")


def _allreduce_s(engine: str, tokens: int, hardware: object = B200, **update: object) -> float:
    ops = forward_ops(LLAMA_70B, batch_size=1, new_tokens=tokens, past_tokens=0, tp=8)
    i = [op.name for op in ops].index("allreduce_attn")
    eff = hardware.efficiency.model_copy(  # type: ignore[attr-defined]
        update={"kernel_engine": engine, "time_model": "kernels", **update}
    )
    return float(kernel_times.op_times(ops, hardware, efficiency=eff).time_s(i))  # type: ignore[arg-type]


def _key_s(key: str, message: float) -> float:
    params = kernel_times.step_params(B200, collective, key, launch_s=kernel_times.launch_s(B200))
    return float(collective.time_s(B200, params, message_bytes=message, num_gpus=8, eager=False))


def test_sglangs_custom_all_reduce_buffer_is_its_sources_8_mib() -> None:
    assert collective.SGLANG_CUSTOM_MAX_BYTES == 8192 * 1024


def test_sglang_hands_over_to_nccl_at_its_buffer_size_not_vllms_symmetric_memory_limit() -> None:
    # Llama-3-70B at tp 8: one token's all-reduce is 8192 x 2 bytes = 16 KiB; 511 tokens: 8 MiB - 16 KiB,
    # below SGLang's buffer (should_custom_ar: inp_size < max_size), vLLM's key's own time; 512 tokens:
    # exactly 8 MiB, NCCL's, never faster than the custom kernel's largest message, 8 MiB - 1 byte (the
    # step's never-shrinks guard); 2048 tokens: 32 MiB, NCCL
    below, at, beyond = 511, 512, 2048
    assert below * HIDDEN * BF16 < 8 * MIB == at * HIDDEN * BF16
    assert _allreduce_s("sglang", below) == pytest.approx(_allreduce_s("vllm", below), rel=1e-12)
    just_below = _key_s("vLLM_custom", collective.SGLANG_CUSTOM_MAX_BYTES - 1.0)
    for tokens in (at, beyond):
        nccl = _key_s("nccl:all_reduce", tokens * HIDDEN * BF16)
        assert _allreduce_s("sglang", tokens) == pytest.approx(max(nccl, just_below), rel=1e-12)
    # beyond 8 MiB vLLM (symmetric memory up to its published sizes) and SGLang time different paths
    vllm_32 = _key_s("vLLM_custom", beyond * HIDDEN * BF16)
    assert _allreduce_s("vllm", beyond) == pytest.approx(vllm_32, rel=1e-12)


def test_sglang_with_symmetric_memory_keeps_vllms_rule() -> None:
    for tokens in (511, 512, 2048, 8192):
        assert _allreduce_s("sglang", tokens, symm_mem_all_reduce=True) == pytest.approx(
            _allreduce_s("vllm", tokens), rel=1e-12
        )


def test_sglang_on_pcie_gpus_keeps_the_keys_rule() -> None:
    # beyond two PCIe-only GPUs SGLang's custom all-reduce is off (should_custom_ar): NCCL at every size,
    # which is the vLLM key's own rule there
    pcie = costmodel.load_hardware("h100-pcie")
    for tokens in (1, 511, 2048):
        assert _allreduce_s("sglang", tokens, pcie) == pytest.approx(
            _allreduce_s("vllm", tokens, pcie), rel=1e-12
        )


def test_the_sglang_step_all_reduce_never_shrinks_with_the_batch() -> None:
    times = [_allreduce_s("sglang", t) for t in (64, 256, 511, 512, 513, 1024, 2048, 4096)]
    assert np.all(np.diff(times) >= 0)


def test_the_symmetric_memory_flag_is_read_from_the_script_that_states_it() -> None:
    # InferenceX 1fc5d73: dsr1_fp4_b200.sh launches SGLang with --enable-symm-mem, dsr1_fp8_b200.sh without
    from validation.public.inferencex import launch_script

    r1 = "deepseek-ai/DeepSeek-R1"
    fp4 = launch_script(True, "sglang", r1, "b200_sxm", "fp4")
    fp8 = launch_script(True, "sglang", r1, "b200_sxm", "fp8")
    assert fp4 is not None
    assert fp8 is not None
    assert fp4.symm_mem_all_reduce
    assert not fp8.symm_mem_all_reduce
    assert fp4.source.endswith("dsr1_fp4_b200.sh")
    assert fp8.source.endswith("dsr1_fp8_b200.sh")
    # nor does GLM-5's SGLang script
    assert launch_script(True, "sglang", "zhipuai/GLM-5", "b200_sxm", "fp8") is not None
    assert not launch_script(True, "sglang", "zhipuai/GLM-5", "b200_sxm", "fp8").symm_mem_all_reduce  # type: ignore[union-attr]


def test_sglang_on_rocm_hands_over_at_its_hip_buffer_of_16_mib() -> None:
    # custom_all_reduce.py: _MAX_CAR_SIZE = 2 * 8192 * 1024 under _is_hip (MI300X, xGMI); 8192 * 1024 on CUDA
    sglang = {"kernel_engine": "sglang"}
    mi300x, tpu = costmodel.load_hardware("mi300x"), costmodel.load_hardware("tpu-v5e")
    for hardware, limit in ((mi300x, 2 * 8192 * 1024), (B200, 8192 * 1024), (tpu, None)):
        eff = hardware.efficiency.model_copy(update=sglang)
        assert kernel_times.all_reduce_nccl_from_bytes(hardware, eff) == limit


def test_symmetric_memory_is_sglangs_launch_option_only() -> None:
    from costmodel.errors import CostmodelError
    from costmodel.specs import Efficiency

    with pytest.raises(CostmodelError, match="symm_mem_all_reduce"):
        Efficiency(kernel_engine="trtllm", symm_mem_all_reduce=True)
    assert Efficiency(kernel_engine="sglang", symm_mem_all_reduce=True).symm_mem_all_reduce
    # an update that skips the check is refused where the flag is read
    eff = B200.efficiency.model_copy(update={"kernel_engine": "vllm", "symm_mem_all_reduce": True})
    with pytest.raises(CostmodelError, match="kernel_engine 'sglang'"):
        kernel_times.all_reduce_nccl_from_bytes(B200, eff)


def test_marlin_experts_are_vllms_backend_only() -> None:
    # VLLM_MXFP4_USE_MARLIN=1 is vLLM's variable: another engine's step is not priced with vLLM's Marlin key
    from costmodel.errors import CostmodelError
    from costmodel.kernel_shapes import MoEShape
    from costmodel.specs import Efficiency

    for engine in ("trtllm", "sglang"):
        with pytest.raises(CostmodelError, match="kernel_engine 'vllm'"):
            Efficiency(kernel_engine=engine, moe_backend="MARLIN")
    assert Efficiency(kernel_engine="vllm", moe_backend="MARLIN").moe_backend == "MARLIN"
    # an update that skips the check is refused where the backend is read
    h100 = costmodel.load_hardware("h100-sxm")
    shape = MoEShape(np.array([8192.0]), hidden=2880.0, inter=2880.0, topk=4.0, experts=128.0, tp=2.0, ep=1.0)
    keys = kernel_times._Keys(h100, "vllm", kernel_times.launch_s(h100), "MARLIN", kernel_engine="trtllm")
    with pytest.raises(CostmodelError, match="kernel_engine 'vllm'"):
        kernel_times._moe_s(h100, keys, shape, "mxfp4", "bf16")
