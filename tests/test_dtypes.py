"""Number formats: bytes of each layout, every scale and zero point included, computed by hand from the
format's specification (and, for MXFP4, against a published checkpoint: tests/test_memory.py)."""

from __future__ import annotations

import math

import pytest

import costmodel
from costmodel.dtypes import bytes_per_element, get_dtype, matrix_bytes, storage_bytes
from costmodel.errors import CostmodelError
from costmodel.memory import kv_cache_bytes, weight_bytes

OUT, IN = 4096, 11008  # a Llama-2-7B up_proj: in_features not a multiple of 128 x 128 tiles' rows
N = OUT * IN


def test_nvfp4_is_half_a_byte_plus_an_e4m3_scale_per_16_plus_an_fp32_per_tensor() -> None:
    assert matrix_bytes((OUT, IN), "nvfp4") == N // 2 + N // 16 + 4
    assert bytes_per_element("nvfp4") == (4 + 8 / 16) / 8


def test_mxfp4_is_half_a_byte_plus_an_e8m0_scale_per_32() -> None:
    # gpt-oss's experts: *_blocks uint8 [.., out, in / 32, 16] and *_scales uint8 [.., out, in / 32]
    out, inp = 5760, 2880
    blocks, scales = out * (inp // 32) * 16, out * (inp // 32)
    assert matrix_bytes((out, inp), "mxfp4") == blocks + scales
    assert bytes_per_element("mxfp4") == 4.25 / 8


def test_fp8_per_tensor_channel_and_128x128_block_scales() -> None:
    assert matrix_bytes((OUT, IN), "fp8") == N + 4  # one fp32 scale
    assert matrix_bytes((OUT, IN), "fp8_channel") == N + 4 * OUT  # one fp32 scale per output row
    # DeepSeek-V3 (README_WEIGHTS.md, https://github.com/deepseek-ai/DeepSeek-V3/blob/main/README_WEIGHTS.md):
    # fp32 weight_scale_inv per 128 x 128 tile, partial tiles padded: kv_a_proj_with_mqa [576, 7168]
    # carries a [5, 56] scale tensor
    assert matrix_bytes((576, 7168), "fp8_block") == 576 * 7168 + 4 * 5 * 56
    assert matrix_bytes((OUT, IN), "fp8_block") == N + 4 * math.ceil(OUT / 128) * math.ceil(IN / 128)
    # activations: 1 x 128 groups along the row
    assert storage_bytes(7168, "fp8_block") == 7168 + 4 * 56


@pytest.mark.parametrize("g", [32, 64, 128])
def test_weight_only_int4_and_int8_take_the_group_size_as_a_parameter(g: int) -> None:
    groups = OUT * math.ceil(IN / g)
    # GPTQ/AWQ: fp16 scale + 4-bit zero per group
    assert matrix_bytes((OUT, IN), f"int4_g{g}") == N // 2 + math.ceil(groups * 20 / 8)
    assert matrix_bytes((OUT, IN), "int4", group_size=g) == matrix_bytes((OUT, IN), f"int4_g{g}")
    # gpt-fast int4 (quantize.py): int32-packed weights (n / 2 bytes) and scales_and_zeros
    # [in / g, out, 2] in bf16
    assert matrix_bytes((OUT, IN), f"int4_tinygemm_g{g}") == N // 2 + groups * 2 * 2
    # int8 with a bf16 scale per group; plain int8: a bf16 scale per output row (gpt-fast's int8)
    assert matrix_bytes((OUT, IN), f"int8_g{g}") == N + groups * 2
    assert matrix_bytes((OUT, IN), "int8") == N + OUT * 2
    # W4A8 (TensorRT-LLM W4A8-AWQ): int4 weights, a 16-bit scale per group, no zero point
    assert matrix_bytes((OUT, IN), f"w4a8_g{g}") == N // 2 + groups * 2
    assert get_dtype("w4a8").compute_dtype == "fp8"


def test_nf4_groups_run_over_the_flattened_tensor() -> None:
    assert matrix_bytes((OUT, IN), "nf4") == N // 2 + 4 * N // 64
    assert matrix_bytes((3, 50), "nf4") == 75 + 4 * math.ceil(150 / 64)  # blocks straddle rows


def test_group_size_zero_turns_metadata_off_and_formats_without_groups_refuse_a_suffix() -> None:
    assert matrix_bytes((OUT, IN), "int4", group_size=0) == N // 2
    with pytest.raises(CostmodelError, match="unknown dtype 'nvfp4_g32'"):
        get_dtype("nvfp4_g32")
    with pytest.raises(CostmodelError, match="unknown dtype 'fp8_g128'"):
        get_dtype("fp8_g128")


def test_quantized_weights_keep_embeddings_head_and_norms_in_bf16() -> None:
    model = costmodel.load_model("qwen3-8b")
    p = costmodel.param_count(model)
    L, d, hd, f = 36, 4096, 128, 12288
    linears = [(32 * hd, d), (8 * hd, d), (8 * hd, d), (d, 32 * hd), (f, d), (f, d), (d, f)]
    by_hand = 2 * (p.embedding + p.output_head + p.norms + L * 2 * hd)  # norms and q/k norms in bf16
    by_hand += L * sum(o * i // 2 + (o * i // 16) + 4 for o, i in linears)
    assert weight_bytes(model, weight_dtype="nvfp4") == by_hand


def test_fp8_and_nvfp4_kv_caches() -> None:
    """A token's K and V in one layer is a row of 2 x H_kv x d_h values; nvfp4 adds an e4m3 scale per 16
    of them; fp8's per-layer k/v scales are attention parameters, not cache."""
    model = costmodel.load_model("qwen3-8b")
    row = 2 * 8 * 128
    bf16 = kv_cache_bytes(model, batch_size=3, context_len=1000, kv_dtype="bf16")
    assert bf16 == 3 * 1000 * 36 * row * 2
    assert kv_cache_bytes(model, batch_size=3, context_len=1000, kv_dtype="fp8") == bf16 // 2
    nvfp4 = kv_cache_bytes(model, batch_size=3, context_len=1000, kv_dtype="nvfp4")
    assert nvfp4 == 3 * 1000 * 36 * (row // 2 + row // 16)


@pytest.mark.parametrize(
    "name", ["fp8", "fp8_channel", "fp8_block", "int8", "int4", "nvfp4", "mxfp4", "w4a8"]
)
def test_every_quantized_format_is_smaller_than_bf16_and_larger_than_its_bare_values(name: str) -> None:
    bf16 = matrix_bytes((OUT, IN), "bf16")
    got = matrix_bytes((OUT, IN), name)
    assert N * get_dtype(name).bits / 8 < got < bf16


def test_compressed_tensors_int4_carries_a_bf16_scale_per_group_and_its_shape() -> None:
    """compressed-tensors pack-quantized symmetric int4 (Kimi-K2.5's experts, group 32): weight_packed
    int32 [out, in / 8], weight_scale bf16 [out, in / 32], weight_shape int64 [2]."""
    out, inp = 2048, 7168
    assert matrix_bytes((out, inp), "int4_sym_g32") == out * inp // 8 * 4 + out * inp // 32 * 2 + 16
    model = costmodel.load_model("kimi-k2.5")
    assert model.checkpoint is not None
    assert model.checkpoint.experts == "int4_sym_g32"
