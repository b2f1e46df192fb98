"""The parameter lookup of the kernel models (costmodel.kernels.fallback_keys, params_for): which stored
parameters a key that was never fitted on a device is predicted with."""

from __future__ import annotations

import dataclasses

import pytest

from costmodel.kernels import (
    context_attention,
    fallback_keys,
    gemm,
    generation_attention,
    moe,
    params_for,
    same_kernel_keys,
)
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


def test_a_context_kernel_takes_no_decode_kernel_as_its_sibling() -> None:
    """In context attention an engine's decode kernel (vLLM's FlashInfer backend runs it for one-token
    prompts) is another operation: FlashAttention-3 takes FlashInfer's prefill kernel alone, not the median of
    it and the decode kernel, which would tie on the shared name prefix, and the decode kernel takes no
    prefill kernel either; without the family's phases (decode attention) they tie as before."""
    stored = ["vllm.vllm_flashinfer_trtllmdecode:bf16", "vllm.vllm_flashinfer_trtllmprefill:bf16"]
    phases = context_attention.SIBLING_PHASES
    assert fallback_keys("vllm.vllm_flash_attn_fa3:bf16", stored, phases=phases)[-1] == [stored[1]]
    assert fallback_keys("vllm.vllm_flash_attn_fa3:bf16", stored)[-1] == stored
    only_prefill = ["vllm.vllm_flash_attn_fa3:bf16"]
    asked = "vllm.vllm_flashinfer_trtllmdecode:bf16"
    assert fallback_keys(asked, only_prefill, phases=phases) == [[asked]]
    assert fallback_keys(asked, only_prefill) == [[asked], only_prefill]


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


def test_context_attention_lookup_skips_the_decode_kernel() -> None:
    """params_for passes the family's phases: an H100 FlashAttention-3 context key on a table of FlashInfer's
    prefill and decode kernels takes the prefill kernel's values, not the two's median."""
    hardware = _with(
        load_hardware("h100-sxm"),
        "context_attention",
        {
            "vllm.vllm_flashinfer_trtllmdecode:bf16": {"compute_fraction": 1.0, "launch_s": 9e-6},
            "vllm.vllm_flashinfer_trtllmprefill:bf16": {"compute_fraction": 0.7, "launch_s": 7e-6},
        },
    )
    params = params_for(hardware, context_attention, "vllm.vllm_flash_attn_fa3:bf16")
    assert (params.compute_fraction, params.launch_s) == (0.7, 7e-6)


def test_nothing_stored_is_the_datasheet() -> None:
    h100 = load_hardware("h100-sxm")
    hardware = _with(h100, "gemm", {"bf16": {"compute_fraction": 0.5}})
    assert params_for(hardware, gemm, "fp8:x") == gemm.default_params(h100, "fp8:x")
    assert dataclasses.replace(params_for(hardware, gemm, "bf16:x"), dtype="bf16") == dataclasses.replace(
        gemm.default_params(h100, "bf16"), compute_fraction=0.5
    )


def test_the_same_kernel_under_another_engine_versions_name() -> None:
    """vLLM 0.14 names its FlashAttention backend ``vllm_flash_attn``, 0.24 the version it runs
    (``vllm_flash_attn_fa2`` / ``_fa3``): which one depends on the device (FlashAttention-3 on compute
    capability 9.x only), and the name maps both ways."""
    assert same_kernel_keys("vllm.vllm_flash_attn:bf16+wide", "8.0") == ["vllm.vllm_flash_attn_fa2:bf16+wide"]
    assert same_kernel_keys("vllm.vllm_flash_attn:bf16", "9.0") == ["vllm.vllm_flash_attn_fa3:bf16"]
    assert same_kernel_keys("vllm.vllm_flash_attn_fa2:bf16+fp8kv", "8.9") == [
        "vllm.vllm_flash_attn:bf16+fp8kv"
    ]
    assert same_kernel_keys("vllm.vllm_flash_attn_fa3:bf16", "8.0") == []  # no FlashAttention-3 on sm80
    assert same_kernel_keys("vllm.vllm_flash_attn:bf16", None) == []  # capability unknown: no guess
    # Blackwell: later vLLM versions pick FlashAttention-4 on major 10, so no identity is stated there
    assert same_kernel_keys("vllm.vllm_flash_attn:bf16", "10.0") == []
    assert same_kernel_keys("vllm.vllm_flash_attn:bf16", "12.0") == []
    # the unquantized linear layer, any device; the alias is bf16's only
    assert same_kernel_keys("bf16:vllm:vllm_default") == ["bf16:vllm:torch.nn.functional.linear"]
    assert same_kernel_keys("bf16:vllm:torch.nn.functional.linear") == ["bf16:vllm:vllm_default"]
    assert same_kernel_keys("fp8:vllm:vllm_default", "8.9") == []
    assert same_kernel_keys("vllm.vllm_flashinfer_fidecode:bf16", "8.9") == []


def test_a_renamed_kernel_takes_its_exact_parameters_before_any_pool_or_sibling() -> None:
    """The exact fitted parameters of the same kernel, not the pool's or the median of tied siblings; the
    device's compute capability says which FlashAttention the old name is."""
    stored = {
        "vllm.vllm_flash_attn_fa2:bf16": {"compute_fraction": 0.4, "launch_s": 1e-6},
        "vllm.vllm_flash_attn_fa3:bf16": {"compute_fraction": 0.6, "launch_s": 3e-6},
    }
    a100, h100 = load_hardware("a100-80gb"), load_hardware("h100-sxm")
    on_a100 = params_for(
        _with(a100, "context_attention", stored), context_attention, "vllm.vllm_flash_attn:bf16"
    )
    on_h100 = params_for(
        _with(h100, "context_attention", stored), context_attention, "vllm.vllm_flash_attn:bf16"
    )
    assert (on_a100.compute_fraction, on_a100.launch_s) == (0.4, 1e-6)
    assert (on_h100.compute_fraction, on_h100.launch_s) == (0.6, 3e-6)
    # without the map the two would tie as siblings (the same 15-character prefix): their median
    levels = fallback_keys("vllm.vllm_flash_attn:bf16", stored)
    assert levels[-1] == sorted(stored)

    gemms = {
        "bf16:vllm": {"compute_fraction": 0.5},
        "bf16:vllm:torch.nn.functional.linear": {"compute_fraction": 0.7},
    }
    hardware = _with(a100, "gemm", gemms)
    assert params_for(hardware, gemm, "bf16:vllm:vllm_default").compute_fraction == 0.7  # not the pool's 0.5
    assert (
        params_for(hardware, gemm, "bf16:vllm:cutlass").compute_fraction == 0.5
    )  # an unknown name: the pool


def test_an_unknown_name_still_falls_back() -> None:
    stored = ["vllm.vllm_flash_attn_fa2:bf16"]
    same = same_kernel_keys("vllm.vllm_flashinfer_fidecode:bf16", "8.9")
    assert fallback_keys("vllm.vllm_flashinfer_fidecode:bf16", stored, same) == [
        ["vllm.vllm_flashinfer_fidecode:bf16"],
        ["vllm.vllm_flash_attn_fa2:bf16"],  # the same engine's sibling, as before
    ]
    # a renamed key the table does not hold adds no level
    assert fallback_keys("vllm.vllm_flash_attn:bf16+swa", stored, ["vllm.vllm_flash_attn_fa2:bf16+swa"]) == [
        ["vllm.vllm_flash_attn:bf16+swa"]
    ]


def test_a_decode_key_nothing_fits_takes_the_devices_l2_rate() -> None:
    """The L2's rate over the memory's is the die's (``generation_attention.DIE_PARAMS``): a decode key with
    no stored fit at any level takes the median of the device's stored rates, its other defaults from the
    datasheet; a key with a sibling keeps the sibling's rate, and a family without die parameters (context
    attention) or a device with no stored rate keeps the datasheet's 1."""
    l40s = load_hardware("l40s")
    hardware = _with(
        l40s,
        "generation_attention",
        {
            "vllm.vllm_flash_attn_fa2:bf16": {"cache_bandwidth_ratio": 3.0, "launch_s": 8e-6},
            "vllm.vllm_flash_attn_fa2:bf16+mha": {"cache_bandwidth_ratio": 4.0},
            "vllm.vllm_flash_attn_fa2:bf16+wide": {"cache_bandwidth_ratio": 2.0},
        },
    )
    lone = params_for(hardware, generation_attention, "trtllm.torch_flow:bf16+fp8kv")
    default = generation_attention.default_params(l40s, "trtllm.torch_flow:bf16+fp8kv")
    assert lone == dataclasses.replace(default, cache_bandwidth_ratio=3.0)
    sibling = params_for(hardware, generation_attention, "vllm.vllm_flash_attn_fa3:bf16")
    assert (sibling.cache_bandwidth_ratio, sibling.launch_s) == (3.0, 8e-6)  # FlashAttention-2's bf16 key
    flashinfer = params_for(hardware, generation_attention, "vllm.vllm_flashinfer_fidecode:bf16")
    fi_default = generation_attention.default_params(l40s, "vllm.vllm_flashinfer_fidecode:bf16")
    assert flashinfer == dataclasses.replace(fi_default, cache_bandwidth_ratio=3.0)  # another library
    assert params_for(_with(l40s, "generation_attention", {"x.y:bf16": {"launch_s": 1e-5}}),
                      generation_attention, "trtllm.k:bf16+fp8kv").cache_bandwidth_ratio == 1.0  # fmt: skip
    context = _with(l40s, "context_attention", {"vllm.a:bf16": {"cache_bandwidth_ratio": 3.0}})
    assert params_for(context, context_attention, "trtllm.k:fp8").cache_bandwidth_ratio == 1.0


def test_a_decode_variant_nothing_fits_takes_its_kernels_per_cta_parameters() -> None:
    """A window changes FlashAttention-2's grid, not its CTA's code: the L40S's windowed FlashAttention-2 key,
    with only the A100's (vLLM 0.14's name for the same kernel) unwindowed keys stored, takes their per-CTA
    parameters' median (``generation_attention.CTA_PARAMS``) and keeps its own default launch and grid; a
    kernel of which nothing is stored keeps the per-CTA defaults."""
    l40s = load_hardware("l40s")
    hardware = _with(
        l40s,
        "generation_attention",
        {
            "vllm.vllm_flash_attn:bf16": {
                "cta_overhead_s": 4e-6,
                "resident_ctas_per_sm": 1.0,
                "launch_s": 7e-6,
            },
            "vllm.vllm_flash_attn:bf16+mha": {"cta_overhead_s": 2e-6, "resident_ctas_per_sm": 3.0},
        },
    )
    key = "vllm.vllm_flash_attn_fa2:bf16+swa"
    got = params_for(hardware, generation_attention, key)
    default = generation_attention.default_params(l40s, key)
    assert (got.cta_overhead_s, got.resident_ctas_per_sm) == (pytest.approx(3e-6), 2.0)
    assert (got.launch_s, got.max_splits, got.heads_per_cta) == (default.launch_s, 1.0, 1.0)
    other = params_for(hardware, generation_attention, "vllm.vllm_triton_attn:bf16+fp8kv")
    assert (
        other.cta_overhead_s
        == generation_attention.default_params(l40s, "vllm.vllm_triton_attn:bf16").cta_overhead_s
    )


def test_an_moe_format_nothing_fits_takes_its_calls_fixed_times_from_other_formats() -> None:
    """TensorRT-LLM's CUTLASS MoE runs one call sequence for every weight format (``moe.SAME_CALL_KERNELS``):
    an nvfp4 key of it with no stored fit at any level (the leave-one-out B200 from the H100, which has no
    fp4) takes the median of the call's times (``moe.CALL_PARAMS``) over the stored bf16 and fp8 keys of the
    same call, and keeps the datasheet's fractions and dequantization; a key of the collector's
    ``moe_torch_flow`` (Triton on Hopper, TensorRT-LLM-gen on Blackwell) or of a call nothing stores keeps
    every default."""
    b200 = load_hardware("b200")
    hardware = _with(
        b200,
        "moe",
        {
            "bf16:trtllm:moe_torch_flow_cutlass": {
                "launch_s": 20e-6,
                "per_expert_s": 1e-7,
                "compute_fraction": 0.9,
            },
            "fp8:trtllm:moe_torch_flow_cutlass": {
                "launch_s": 30e-6,
                "per_expert_s": 3e-7,
                "bandwidth_fraction": 0.5,
            },
            "w4a16_mxfp4:trtllm:moe_torch_flow": {"launch_s": 100e-6},
        },
    )
    key = "nvfp4:trtllm:moe_torch_flow_cutlass"
    got, default = params_for(hardware, moe, key), moe.default_params(b200, key)
    assert (got.launch_s, got.per_expert_s) == (pytest.approx(25e-6), pytest.approx(2e-7))
    assert dataclasses.replace(got, launch_s=default.launch_s, per_expert_s=default.per_expert_s) == default
    for other in ("w4a8_mxfp4_mxfp8:trtllm:moe_torch_flow", "nvfp4:trtllm:moe_torch_flow_nongated"):
        assert params_for(hardware, moe, other) == moe.default_params(b200, other)
    assert params_for(hardware, moe, "fp8:trtllm:moe_torch_flow_cutlass").launch_s == 30e-6  # its own fit


def test_a_decode_kernel_of_another_library_is_no_sibling() -> None:
    """With ``library`` (``generation_attention.SIBLING_LIBRARY``) the shared prefix counts whole name parts
    past the engine's own: FlashInfer's decode shares only ``vllm`` (and the characters ``vllm_flash``) with
    FlashAttention and is no sibling of it, FlashAttention-2 stays FlashAttention-3's, and TensorRT-LLM's
    ``torch_flow_flashinfer`` keeps ``torch_flow``; context attention (no flag) keeps the nearest name."""
    stored = [
        "vllm.vllm_flash_attn_fa2:bf16",
        "vllm.vllm_flashinfer_trtllmdecode:bf16",
        "trtllm.torch_flow:bf16",
    ]
    assert fallback_keys("vllm.vllm_flashinfer_fidecode:bf16", stored, library=True)[-1] == [stored[1]]
    assert fallback_keys("vllm.vllm_flash_attn_fa3:bf16", stored, library=True)[-1] == [stored[0]]
    assert fallback_keys("vllm.vllm_flash_attn_fa3:bf16", stored[1:], library=True) == [
        ["vllm.vllm_flash_attn_fa3:bf16"]
    ]
    assert fallback_keys("trtllm.torch_flow_flashinfer:bf16", stored, library=True)[-1] == [stored[2]]
    assert fallback_keys("vllm.vllm_flash_attn_fa3:bf16", stored[1:])[-1] == [stored[1]]  # characters
    assert generation_attention.SIBLING_LIBRARY
    assert not getattr(context_attention, "SIBLING_LIBRARY", False)
