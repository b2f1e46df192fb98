"""Bytes against real allocations (transformers caches, parameter tensors) and published formulas."""

from __future__ import annotations

from functools import cache

import pytest
import torch
import transformers
from conftest import HF_CONFIGS
from oracles import hf_meta_model

import costmodel
from costmodel.dtypes import storage_bytes
from costmodel.kernel_shapes import MlaUpShape
from costmodel.memory import (
    kv_cache_bytes,
    lora_params,
    model_state_bytes,
    shipped_checkpoints,
    stored_dtype,
    tensors,
    training_activation_bytes,
    training_memory,
    weight_bytes,
    workload_formats,
)
from costmodel.specs import MLASpec, ModelProfile
from validation.kernels.decoder import Decoder

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("name", costmodel.list_models())
def test_weight_bytes_equal_parameter_bytes(name: str, dtype: str) -> None:
    module = hf_meta_model(HF_CONFIGS / f"{name}.json")
    itemsize = torch.empty((), dtype=TORCH_DTYPES[dtype]).element_size()
    expected = sum(p.numel() for p in module.parameters()) * itemsize
    assert weight_bytes(costmodel.load_model(name), weight_dtype=dtype) == expected


def test_int4_weight_bytes_by_hand() -> None:
    """GPTQ layout on one 4096 x 4096 matrix: 4 bits per weight + per 128-group an fp16 scale and 4-bit zero."""
    n = 4096 * 4096
    assert storage_bytes(n, "int4") == n // 2 + (n // 128) * (16 + 4) // 8
    assert storage_bytes(n, "nf4") == n // 2 + (n // 64) * 4  # one fp32 absmax per 64-block
    assert storage_bytes(n, "ternary") == -(-n // 5)  # 5 trits per byte
    assert storage_bytes(10, "int4", group_size=0) == 5


def test_quantization_keeps_embeddings_and_head() -> None:
    model = costmodel.load_model("llama-2-7b")
    p = costmodel.param_count(model)
    kept = 2 * (p.embedding + p.output_head + p.norms)
    quantized = p.attention + p.mlp
    # int8 weight-only: one bf16 scale per output row (gpt-fast's WeightOnlyInt8Linear)
    rows = 32 * (4 * 4096 + 2 * 11008 + 4096)  # q, k, v, o; gate, up; down
    assert weight_bytes(model, weight_dtype="int8") == kept + quantized + 2 * rows
    assert weight_bytes(model, weight_dtype="int4", group_size=0) == kept + quantized // 2


def test_seed_kv_cache_example() -> None:
    """Seed 003: LLaMA-7B, B=1, S=2048, fp16 -> 2 x 1 x 2048 x 32 x 4096 x 2 = 1,073,741,824 bytes."""
    model = costmodel.load_model("llama-2-7b")
    assert kv_cache_bytes(model, batch_size=1, context_len=2048, kv_dtype="fp16") == 1_073_741_824


def tiny_hf(kind: str) -> tuple[transformers.PreTrainedModel, ModelProfile]:
    common = dict(vocab_size=101, hidden_size=64, num_hidden_layers=3)
    if kind == "llama-gqa":
        config = transformers.LlamaConfig(
            **common,
            num_attention_heads=8,
            num_key_value_heads=2,
            intermediate_size=96,
            max_position_embeddings=64,
        )
    elif kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=101, n_embd=64, n_layer=3, n_head=4, n_positions=64)
    else:
        config = transformers.MambaConfig(**common, state_size=8, expand=2, conv_kernel=4)
    config_dict = config.to_dict()
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    return hf, costmodel.ModelProfile.from_hf_config(config_dict, name=kind)


def cache_nbytes(cache: object) -> int:
    total = 0
    for layer in cache.layers:  # type: ignore[attr-defined]
        total += sum(
            t.numel() * t.element_size() for t in vars(layer).values() if isinstance(t, torch.Tensor)
        )
    return total


@pytest.mark.parametrize("kind", ["llama-gqa", "gpt2"])
@pytest.mark.parametrize(("batch", "context"), [(1, 1), (3, 17), (2, 40)])
def test_kv_cache_equals_a_real_transformers_cache(kind: str, batch: int, context: int) -> None:
    hf, model = tiny_hf(kind)
    with torch.no_grad():
        cache = hf(torch.randint(0, 101, (batch, context)), use_cache=True).past_key_values
    assert kv_cache_bytes(model, batch_size=batch, context_len=context, kv_dtype="bf16") == cache_nbytes(
        cache
    )


def test_ssm_state_equals_the_transformers_mamba_cache_and_is_constant() -> None:
    hf, model = tiny_hf("mamba")
    sizes = []
    for context in (5, 23):
        with torch.no_grad():
            cache = hf(torch.randint(0, 101, (2, context)), use_cache=True).cache_params
        states = [cache.get_conv_state(i) for i in range(3)] + [
            cache.get_recurrent_state(i) for i in range(3)
        ]
        sizes.append(sum(t.numel() * t.element_size() for t in states))
        assert kv_cache_bytes(model, batch_size=2, context_len=context, kv_dtype="bf16") == sizes[-1]
    assert sizes[0] == sizes[1]


def test_mla_latent_cache_equals_the_reference_cache() -> None:
    model = ModelProfile(
        name="mla",
        source="test",
        vocab_size=97,
        d_model=64,
        n_layers=2,
        n_heads=4,
        d_ff=96,
        max_context=256,
        mla=MLASpec(q_lora_rank=32, kv_lora_rank=24, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16),
    )
    decoder = Decoder(model).to(torch.bfloat16)
    cache = decoder.empty_cache(3, 0, dtype=torch.bfloat16)
    with torch.no_grad():
        _, cache = decoder(torch.randint(0, 97, (3, 11)), cache)
    allocated = sum(c.k.numel() * c.k.element_size() for c in cache)
    assert kv_cache_bytes(model, batch_size=3, context_len=11, kv_dtype="bf16") == allocated
    # DeepSeek-V3: (512 + 64) values per token and layer instead of 2 x 128 heads x 128 = 32,768 (57x less)
    ds = costmodel.load_model("deepseek-v3")
    assert kv_cache_bytes(ds, batch_size=1, context_len=1, kv_dtype="bf16") == 61 * 576 * 2


def test_sliding_window_caps_the_cache() -> None:
    model = costmodel.load_model("mistral-7b")
    per_token = 32 * 2 * 8 * 128 * 2
    assert kv_cache_bytes(model, batch_size=1, context_len=1000) == 1000 * per_token
    assert kv_cache_bytes(model, batch_size=1, context_len=30_000) == 4096 * per_token


def test_zero_stages_reproduce_the_zero_paper_figure_1() -> None:
    """Rajbhandari et al. 2020, Fig. 1: Psi = 7.5B, K = 12, N_d = 64 -> 120, 31.4, 16.6, 1.9 GB per GPU."""
    psi = 7.5e9
    expected_gb = {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.9}
    for stage, gb in expected_gb.items():
        total = sum(model_state_bytes(int(psi), n_gpus=64, zero_stage=stage))  # type: ignore[arg-type]
        assert total / 1e9 == pytest.approx(gb, abs=0.05)


def test_activations_reproduce_korthikanti_equation_1() -> None:
    """Korthikanti et al. 2022, Eq. 1: s b h (34 + 5 a s / h) bytes per layer for a GPT layer."""
    gpt = costmodel.load_model("gpt2-xl")  # MHA, d_ff = 4h, standard MLP, LayerNorm
    s, b, h, a, L, V = 1024, 4, 1600, 25, 48, 50257
    got = training_activation_bytes(gpt, batch_size=b, seq_len=s, attention="eager", dropout=True)
    per_layer = s * b * h * (34 + 5 * a * s / h)
    assert got == pytest.approx(L * per_layer + 4 * s * b * V, rel=1e-12)
    # selective recomputation keeps 34 s b h (their Eq. 6 without tensor parallelism)
    sel = training_activation_bytes(
        gpt, batch_size=b, seq_len=s, attention="eager", dropout=True, recompute="selective"
    )
    assert sel == pytest.approx(L * 34 * s * b * h + 4 * s * b * V, rel=1e-12)


def test_lora_parameters_by_hand() -> None:
    model = costmodel.load_model("llama-2-7b")
    r, d, f = 8, 4096, 11008
    assert lora_params(model, rank=r, components=("attention",)) == 32 * 4 * r * (d + d)
    assert lora_params(model, rank=r, components=("mlp",)) == 32 * 3 * r * (d + f)


PEFT_MAMBA_MODEL_TYPES = {"falcon_h1", "mamba", "mamba2", "falcon_mamba", "nemotron_h"}
"""PEFT's rule, written out (``_check_lora_target_modules_mamba``, huggingface/peft PR #2562,
https://github.com/huggingface/peft/blob/005fdd53c63ed5a27177fd200295a00f93a57b55/src/peft/tuners/tuners_utils.py):
a LoRA target named ``out_proj`` or ``conv1d`` on these model types raises ValueError."""
PEFT_MAMBA_REFUSED = {"out_proj", "conv1d"}


@pytest.mark.parametrize(
    ("name", "out_proj_adapted"),
    [("mamba-2.8b", False), ("nemotron-h-56b", False), ("qwen3.5-122b-a10b", True)],
)
def test_lora_default_is_what_peft_all_linear_trains(name: str, out_proj_adapted: bool) -> None:
    """Oracle: PEFT's ``target_modules="all-linear"`` puts an adapter of r (in + out) parameters on every
    ``nn.Linear`` but the output layer, and refuses ``out_proj`` / ``conv1d`` on Mamba-type model types;
    transformers' own model of each config (meta device) lists the modules. What a user can train there is
    all-linear less those names. Less the MoE's routed experts, shared expert and router, which the default
    leaves out, that is the default count: Mamba's in / x / dt projections, Mamba-2's in_proj, Gated
    DeltaNet's in_proj_qkv / z / a / b and out_proj (qwen3_5 is not a Mamba type), attention and the MLP."""
    hf = hf_meta_model(HF_CONFIGS / f"{name}.json")
    refused = PEFT_MAMBA_REFUSED if hf.config.model_type in PEFT_MAMBA_MODEL_TYPES else set()
    r = 16
    trainable = {
        path: r * (module.in_features + module.out_features)
        for path, module in hf.named_modules()
        if isinstance(module, torch.nn.Linear)
        and not path.endswith("lm_head")
        and path.rsplit(".", 1)[-1] not in refused
        and "experts" not in path
        and "shared_expert" not in path
    }
    assert any(p.endswith("out_proj") for p in trainable) == out_proj_adapted
    assert lora_params(costmodel.load_model(name), rank=r) == sum(trainable.values())


def test_lora_components_without_a_matmul_are_refused_naming_the_ones_that_hold_them() -> None:
    model = costmodel.load_model("mamba-2.8b")
    with pytest.raises(costmodel.CostmodelError, match=r"hold no matmul of mamba-2.8b.*in: ssm"):
        lora_params(model, rank=8, components=("attention", "mlp"))
    with pytest.raises(costmodel.CostmodelError, match="hold no matmul"):
        training_memory(model, batch_size=1, seq_len=512, method="lora", lora_components=("mlp",))


def test_lora_components_must_be_a_sequence_of_known_names() -> None:
    """A bare string was matched by substring ("attention" in "linear_attention" added the softmax layers)
    and a misspelt name beside a valid one was dropped: both are refused, naming the fix or the names."""
    model = costmodel.load_model("qwen3.5-122b-a10b")
    with pytest.raises(
        costmodel.CostmodelError, match=r"got the string 'linear_attention': write \('linear_attention',\)"
    ):
        lora_params(model, rank=16, components="linear_attention")  # type: ignore[arg-type]
    with pytest.raises(
        costmodel.CostmodelError, match=r"unknown lora component 'atention'.*'attention'.*Known: attention"
    ):
        lora_params(model, rank=16, components=("atention", "mlp"))  # type: ignore[arg-type]
    with pytest.raises(costmodel.CostmodelError, match="unknown lora component"):
        training_memory(model, batch_size=1, seq_len=512, method="lora", lora_components=("mlps",))  # type: ignore[arg-type]


def test_qlora_is_smaller_than_lora_is_smaller_than_full() -> None:
    model = costmodel.load_model("llama-2-13b")
    kw = dict(batch_size=1, seq_len=1024)
    full, lora, qlora = (training_memory(model, method=m, **kw).total for m in ("full", "lora", "qlora"))  # type: ignore[arg-type]
    assert qlora < lora < full
    # full fine-tuning of 13B in mixed-precision Adam needs 16 bytes per parameter before activations
    assert full > 16 * 13.0e9


def test_gpt_oss_checkpoint_bytes_equal_the_published_checkpoints() -> None:
    """MXFP4 experts (4-bit values + an 8-bit scale per 32) and bf16 everything else. gpt-oss-20b's
    model.safetensors.index.json gives total_size 13,761,264,768 bytes
    (https://huggingface.co/openai/gpt-oss-20b/blob/main/model.safetensors.index.json); the model card
    (arXiv:2508.10925, Table 1) gives 12.8 GiB and 60.8 GiB."""
    from costmodel.memory import checkpoint_bytes

    small = checkpoint_bytes(costmodel.load_model("gpt-oss-20b"))
    large = checkpoint_bytes(costmodel.load_model("gpt-oss-120b"))
    assert small == 13_761_264_768
    assert round(small / 2**30, 1) == 12.8
    assert round(large / 2**30, 1) == 60.8


def test_checkpoint_formats_override_the_matmul_weights_of_their_component_only() -> None:
    model = costmodel.load_model("gpt-oss-20b")
    p = costmodel.param_count(model)
    expert_weights = 24 * 32 * 3 * 2880 * 2880  # gate, up, down per expert
    expert_biases = 24 * 32 * (2 * 2880 + 2880)
    assert p.experts == expert_weights + expert_biases
    as_shipped = weight_bytes(model, component_dtypes={"experts": "mxfp4"})
    assert as_shipped == 2 * (p.total - expert_weights) + expert_weights // 2 + expert_weights // 32


@cache
def tiny_hf_new(kind: str) -> tuple[transformers.PreTrainedModel, ModelProfile]:
    """Tiny transformers models of the 2025 architectures (random init, bf16) and their profiles; shared
    between tests, so callers that change the module copy it first."""
    common = dict(vocab_size=101, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    if kind == "qwen3":
        config = transformers.Qwen3Config(
            **common, num_hidden_layers=3, intermediate_size=96, max_position_embeddings=128
        )
    elif kind == "qwen3_moe":
        config = transformers.Qwen3MoeConfig(
            **common,
            num_hidden_layers=3,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_experts=4,
            num_experts_per_tok=2,
            max_position_embeddings=128,
        )
    elif kind == "minimax_m2":  # QK-norm over all heads at once
        config = transformers.MiniMaxM2Config(
            **common,
            num_hidden_layers=3,
            intermediate_size=32,
            num_local_experts=4,
            num_experts_per_tok=2,
            max_position_embeddings=128,
        )
    elif kind == "llama4":  # chunks of 5 tokens in rotary layers, full attention in every 2nd (NoPE)
        config = transformers.Llama4TextConfig(
            **common,
            num_hidden_layers=4,
            intermediate_size=32,
            intermediate_size_mlp=48,
            num_local_experts=4,
            num_experts_per_tok=1,
            interleave_moe_layer_step=2,
            no_rope_layer_interval=2,
            attention_chunk_size=5,
            max_position_embeddings=128,
        )
    else:  # gpt_oss: local layers with a 5-token window, full layers, sinks
        config = transformers.GptOssConfig(
            **common,
            num_hidden_layers=4,
            intermediate_size=32,
            num_local_experts=4,
            num_experts_per_tok=2,
            sliding_window=5,
            max_position_embeddings=128,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        )
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    return hf, costmodel.ModelProfile.from_hf_config(config.to_dict(), name=kind)


@cache
def tiny_dsa() -> tuple[transformers.PreTrainedModel, ModelProfile]:
    """A tiny DeepSeek-V3.2: MLA with DeepSeek sparse attention (2 indexer heads of 8, top-3 keys)."""
    config = transformers.DeepseekV32Config(
        vocab_size=101,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        q_lora_rank=24,
        kv_lora_rank=16,
        qk_nope_head_dim=8,
        qk_rope_head_dim=4,
        v_head_dim=8,
        intermediate_size=48,
        moe_intermediate_size=16,
        n_routed_experts=4,
        num_experts_per_tok=2,
        n_shared_experts=1,
        first_k_dense_replace=1,
        n_group=1,
        topk_group=1,
        index_n_heads=2,
        index_head_dim=8,
        index_topk=3,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    return hf, costmodel.ModelProfile.from_hf_config(config.to_dict(), name="tiny-dsa")


@pytest.mark.parametrize(("batch", "context"), [(1, 2), (2, 5), (3, 11)])
def test_sparse_attention_cache_holds_the_latent_and_the_indexer_key(batch: int, context: int) -> None:
    """Per token and layer: the MLA latent (kv_lora_rank + rope) and the indexer's key (index_head_dim);
    every token stays cached (the indexer scores all of them), whatever index_topk."""
    hf, model = tiny_dsa()
    assert costmodel.param_count(model).total == sum(p.numel() for p in hf.parameters())
    with torch.no_grad():
        cache_ = hf(torch.randint(0, 101, (batch, context)), use_cache=True).past_key_values
    held = sum(
        t.numel() * t.element_size()
        for layer in cache_.layers
        for t in (layer.keys, layer.values, layer.indexer_keys)
    )
    assert kv_cache_bytes(model, batch_size=batch, context_len=context, kv_dtype="bf16") == held
    assert held == batch * context * 3 * (16 + 4 + 8) * 2


def attended_cache_nbytes(hf: transformers.PreTrainedModel, batch: int, context: int) -> tuple[int, int]:
    """Bytes of the keys and values the attention of the token at position ``context - 1`` reads (what
    each layer's cache returns while decoding it), and the bytes the cache keeps after the step."""
    with torch.no_grad():
        cache = hf(torch.randint(0, 101, (batch, context - 1)), use_cache=True).past_key_values
    seen: list[int] = []
    for layer in cache.layers:
        update = layer.update

        def record(*args: object, _update: object = update, **kwargs: object) -> object:
            keys, values = _update(*args, **kwargs)  # type: ignore[operator]
            seen.append(keys.numel() * keys.element_size() + values.numel() * values.element_size())
            return keys, values

        layer.update = record
    with torch.no_grad():
        hf(torch.randint(0, 101, (batch, 1)), past_key_values=cache, use_cache=True)
    kept = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    return sum(seen), kept


@pytest.mark.parametrize("kind", ["qwen3", "qwen3_moe", "minimax_m2", "gpt_oss", "llama4"])
@pytest.mark.parametrize(("batch", "context"), [(1, 2), (3, 5), (2, 6), (2, 17)])
def test_kv_cache_equals_what_transformers_attends_to(kind: str, batch: int, context: int) -> None:
    """gpt-oss: the local layers' cache stops at the 5-token window, the full layers' keeps growing; the
    sinks are parameters, nothing cached. Llama 4: a chunked layer's cache is a ring of one 5-token chunk
    (the mask then keeps each query inside its chunk). Between steps transformers keeps window - 1
    tokens in a local layer and re-attaches the new token's K/V during the step."""
    hf, model = tiny_hf_new(kind)
    attended, kept = attended_cache_nbytes(hf, batch, context)
    assert kv_cache_bytes(model, batch_size=batch, context_len=context, kv_dtype="bf16") == attended
    if kind in ("gpt_oss", "llama4"):
        assert model.attention_windows == {5: 2, None: 2}
        one_token = 2 * 2 * 16 * 2  # K and V, 2 KV heads of 16, bf16
        dropped = 2 * batch * one_token if context >= 5 else 0  # the 2 local layers keep window - 1
        assert kept == attended - dropped


def _kv_b_proj_elements(name: str) -> tuple[int, int]:
    """(key rows' elements, all elements) of every layer's kv_b_proj, from the transformers module on the meta
    device: its weight is (heads x (nope + v), kv_lora_rank), each head's nope key rows before its v rows."""
    module = hf_meta_model(HF_CONFIGS / f"{name}.json")
    config = module.config
    nope, v = config.qk_nope_head_dim, config.v_head_dim
    keys = total = 0
    for layer in module.model.layers:
        w = layer.self_attn.kv_b_proj.weight
        total += w.numel()
        keys += w.view(config.num_attention_heads, nope + v, -1)[:, :nope].numel()
    return keys, total


@pytest.mark.parametrize(
    ("engine", "weights", "hardware", "key_bytes", "value_bytes"),
    [
        ("vllm", "bf16", "h200", 0, 0),  # W_UK_T / W_UV are views of kv_b_proj's own weight
        ("vllm", "fp8_block", "h200", 2, 2),  # one dequantized bf16 tensor ("we just store fp16/bf16 copies")
        ("vllm", "nvfp4", "b200", 2, 2),
        ("vllm", "fp8_block", "mi325x", 2, 2),  # AITER (and its fp8 bmm) is off by default
        ("sglang", "bf16", "h200", 2, 2),  # w_kc / w_vc: contiguous copies
        ("sglang", "fp8", "h200", 1, 1),  # requantized per tensor, bmm_fp8
        ("sglang", "fp8_channel", "h200", 1, 1),  # channel_quant_to_tensor_quant: per tensor too
        ("sglang", "fp8_channel", "mi325x", 1, 1),  # held in fp8, cast to bf16 on each call
        ("sglang", "fp8_block", "h200", 2, 2),  # block_quant_dequant to bf16 on CUDA
        ("sglang", "fp8_block", "mi325x", 1, 1),  # block_quant_to_tensor_quant on ROCm
        ("trtllm", "bf16", "h200", 2, 0),  # k_b_proj_trans its own parameter, v_b_proj a view
        ("trtllm", "fp8_block", "h200", 1, 0),  # k_b_proj_trans in fp8
        ("trtllm", "fp8_block", "b200", 3, 2),  # and bf16 k_b_proj_trans_dequant / v_b_proj_dequant on SM100
    ],
)
def test_the_absorbed_mla_decodes_weight_copies_are_counted_as_each_engine_keeps_them(
    engine: str, weights: str, hardware: str, key_bytes: int, value_bytes: int
) -> None:
    """Oracle: the elements of DeepSeek-V3's kv_b_proj counted on the transformers module (meta device),
    times the bytes each engine's weight loading keeps per element beside kv_b_proj (memory.
    mla_absorb_bytes_per_element cites the code): 61 x 32,768 x 512 = 1.02e9 elements, so 2.05 GB for a
    bf16 copy of the whole of it."""
    from costmodel.memory import mla_absorb_copy_bytes

    keys, total = _kv_b_proj_elements("deepseek-v3")
    expected = keys * key_bytes + (total - keys) * value_bytes
    model, hw = costmodel.load_model("deepseek-v3"), costmodel.load_hardware(hardware)
    copies = mla_absorb_copy_bytes(model, engine=engine, weight_dtype=weights, hardware=hw)
    assert copies == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_a_replica_holds_its_share_of_the_mla_weight_copies_and_other_models_hold_none(engine: str) -> None:
    """The copies split with kv_b_proj's heads over tensor parallelism: at tp 8 each GPU holds an eighth more
    than the checkpoint's weights; a model without MLA (Llama-3-8B, fp8) keeps no copy in any engine."""
    from costmodel.memory import mla_absorb_copy_bytes, replica_memory

    dsv3, llama = costmodel.load_model("deepseek-v3"), costmodel.load_model("llama-3-8b")
    h200 = costmodel.load_hardware("h200")
    kw = {"tp": 8, "weight_dtype": "fp8_block"}
    plain = replica_memory(dsv3, **kw, engine="vllm").weight_bytes - 2 * 61 * 32768 * 512 / 8
    held = replica_memory(dsv3, **kw, engine=engine, hardware=h200).weight_bytes
    copies = mla_absorb_copy_bytes(dsv3, engine=engine, weight_dtype="fp8_block", hardware=h200)
    assert held == pytest.approx(plain + copies / 8, rel=1e-12)
    assert mla_absorb_copy_bytes(llama, engine=engine, weight_dtype="fp8", hardware=h200) == 0.0


def test_an_unknown_engine_is_refused_when_sizing_mla_copies() -> None:
    from costmodel.errors import CostmodelError
    from costmodel.memory import mla_absorb_copy_bytes

    with pytest.raises(CostmodelError, match="engine"):
        mla_absorb_copy_bytes(costmodel.load_model("deepseek-v3"), engine="tgi", weight_dtype="fp8")


def test_a_lora_rank_up_to_the_hidden_size_is_accepted_and_above_it_refused() -> None:
    """B A of a [out, in] weight has rank at most min(out, in) <= d_model for every adapted matmul (Llama-3-8B:
    q / o 4,096 x 4,096, k / v 1,024 x 4,096, MLP 14,336 x 4,096): r = d_model is the largest that adds
    capacity and is accepted (the attention adapters by hand: 32 layers x r x (in + out) each); one more
    is refused, naming the field."""
    model = costmodel.load_model("llama-3-8b")
    d = model.d_model
    assert d == 4096
    attention = 32 * d * ((d + d) * 2 + (1024 + d) * 2)
    assert lora_params(model, rank=d, components=("attention",)) == attention
    with pytest.raises(costmodel.CostmodelError, match="lora_rank 4,097 exceeds"):
        lora_params(model, rank=d + 1)


def test_a_training_sequence_past_the_context_is_refused_and_at_it_accepted() -> None:
    model = costmodel.load_model("llama-3-8b")
    assert model.max_context == 8192
    training_memory(model, batch_size=1, seq_len=8192)
    with pytest.raises(costmodel.CostmodelError, match="seq_len = 8,193 tokens exceeds"):
        training_memory(model, batch_size=1, seq_len=[1024, 8193])


_MLA_MODELS = [name for name in costmodel.list_models() if costmodel.load_model(name).mla is not None]


@pytest.mark.parametrize("name", _MLA_MODELS)
def test_the_absorbed_bmm_is_timed_on_the_kv_b_proj_format_memory_stores(name: str) -> None:
    """Time and memory read one format for kv_b_proj: for every shipped MLA model and each of its published
    checkpoints run as stored (memory.workload_formats), the ``kv_b_dtype`` forward_ops gives the decode's
    ``kv_up_proj`` (the format the absorbed bmm and the engine's W_UK / W_UV copies are priced from) is the
    one memory.stored_dtype stores every layer's ``kv_b_proj.weight`` in. Oracle: stored_dtype, the rule the
    checkpoint byte counts are checked by against the published checkpoints."""
    from costmodel.ops import forward_ops

    model = costmodel.load_model(name)
    kv_b = [t for t in tensors(model) if t.component == "attention" and t.name == "kv_b_proj.weight"]
    assert kv_b, name
    for checkpoint in shipped_checkpoints(model):
        formats = workload_formats(model, checkpoint)
        component_dtypes = formats["component_dtypes"] or None
        stored = {
            stored_dtype(t, weight_dtype=formats["weight_dtype"], component_dtypes=component_dtypes)
            for t in kv_b
        }
        assert len(stored) == 1, (name, checkpoint, stored)
        ops = forward_ops(
            model,
            batch_size=8,
            new_tokens=1,
            past_tokens=100,
            tp=8,
            weight_dtype=formats["weight_dtype"],
            activation_dtype=formats["activation_dtype"],
            component_dtypes=component_dtypes,
            expert_dtype=formats["expert_dtype"],
        )
        (kernel,) = [op.kernel for op in ops if op.name == "kv_up_proj"]
        assert isinstance(kernel, MlaUpShape)
        assert kernel.kv_b_dtype == stored.pop(), (name, checkpoint)
