"""Read a Hugging Face ``config.json`` into a :class:`~costmodel.specs.ModelProfile`.

No network and no ``transformers`` import: each supported ``model_type`` maps its keys (and the
defaults its ``transformers`` configuration class applies when a key is absent) onto our fields.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from costmodel.errors import CostmodelError, describe_validation_error
from costmodel.specs import ModelProfile

Config = dict[str, Any]

# What a config.json may ask for, checked before anything is sized (an upload is untrusted input):
# every size is a whole number of at most MAX_DIM (context lengths: MAX_CONTEXT), and the model at most
# MAX_PARAMS parameters (exact as float64). The largest published configs are far below: d_ff ~ 10^5,
# vocabularies ~ 2.6 x 10^5, contexts ~ 10^7, parameters ~ 2 x 10^12.
MAX_DIM = 2**24
MAX_CONTEXT = 2**31 - 1
MAX_PARAMS = 2**53
MAX_CONFIG_BYTES = 16_000_000  # most are a few kB; quantized ones list every module (MiniMax-M3 NVFP4: 3 MB)
_BOOL_KEYS = frozenset(
    {
        "attention_bias",
        "mlp_bias",
        "tie_word_embeddings",
        "use_sliding_window",
        "use_parallel_residual",
        "new_decoder_architecture",
        "multi_query",
        "parallel_attn",
        "bias",
        "alibi",
        "use_conv_bias",
        "use_bias",
        "attn_output_gate",
        "use_qk_norm",
        "attention_k_eq_v",
        "enable_moe_block",
    }
)
_STR_KEYS = frozenset(
    {
        "hidden_act",
        "hidden_activation",
        "activation_function",
        "activation",
        "qk_norm_type",
        "mlp_hidden_act",
        "hybrid_override_pattern",
        "use_bidirectional_attention",
    }
)
_CONTEXT_KEYS = frozenset({"max_position_embeddings", "n_positions", "n_ctx", "sliding_window"})
_INT_LIST_KEYS = frozenset({"mlp_only_layers", "moe_layers", "no_rope_layers"})
_OBJECT_KEYS = frozenset({"quantization_config"})
_NAME_LIST_KEYS = frozenset({"layer_types", "mlp_layer_types", "indexer_types", "layers_block_type"})


def _checked(key: str, value: Any) -> Any:
    """``value`` of config key ``key`` if it has the type and range costmodel reads it with."""
    if key in _BOOL_KEYS:
        if isinstance(value, bool):
            return value
        raise CostmodelError(f"config.json field {key!r} must be true or false, got {_shown(value)}")
    if key in _STR_KEYS or (key == "time_step_rank" and value == "auto"):
        if isinstance(value, str) and len(value) <= (MAX_DIM if key == "hybrid_override_pattern" else 100):
            return value
        raise CostmodelError(f"config.json field {key!r} must be a name (a string), got {_shown(value)}")
    if key in _INT_LIST_KEYS:
        if isinstance(value, list) and len(value) <= MAX_DIM:
            return [_checked(f"{key}[]", item) for item in value]
        raise CostmodelError(
            f"config.json field {key!r} must be a list of whole numbers, got {_shown(value)}"
        )
    if key in _NAME_LIST_KEYS:
        if isinstance(value, list) and len(value) <= MAX_DIM and all(isinstance(v, str) for v in value):
            return value
        raise CostmodelError(f"config.json field {key!r} must be a list of names, got {_shown(value)}")
    if key in _OBJECT_KEYS:
        if isinstance(value, dict):
            return value
        raise CostmodelError(f"config.json field {key!r} must be an object, got {_shown(value)}")
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CostmodelError(f"config.json field {key!r} must be a whole number, got {_shown(value)}")
    limit = MAX_CONTEXT if key in _CONTEXT_KEYS else MAX_DIM
    if not 0 <= value <= limit:
        raise CostmodelError(f"config.json field {key!r} must lie in [0, {limit:,}], got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    """A config value for a message: its JSON type, and the value itself when short."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"a {value.bit_length() * 0.30103:,.0f}-digit number"  # str() fails past 4,300 digits
    kind = {str: "string", bool: "boolean", list: "list", dict: "object"}.get(type(value))
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{kind} {text}" if kind else text


class _Reader:
    """Typed access to a config dict; a missing required key names the key and the model type, and a
    value of the wrong type or size names the key (:func:`_checked`)."""

    def __init__(self, config: Config, model_type: str) -> None:
        self.config = config
        self.model_type = model_type

    def req(self, *keys: str) -> Any:
        for key in keys:
            if self.config.get(key) is not None:
                return _checked(key, self.config[key])
        raise CostmodelError(
            f"config.json for model_type {self.model_type!r} lacks {' or '.join(repr(k) for k in keys)}; "
            "add it as in the model's published config.json"
        )

    def get(self, key: str, default: Any) -> Any:
        value = self.config.get(key)
        return default if value is None else _checked(key, value)


def _llama_like(r: _Reader, *, qkv_bias: bool | None = None, tie: bool = False, act: str = "silu") -> Config:
    """Llama and its descendants: GQA, RMSNorm, rotary, gated MLP."""
    heads = r.req("num_attention_heads")
    d = r.req("hidden_size")
    bias = r.get("attention_bias", False)
    window = r.get("sliding_window", None)
    if r.get("use_sliding_window", True) is False:  # Qwen2 ships a window but disables it
        window = None
    out: Config = {
        "vocab_size": r.req("vocab_size"),
        "d_model": d,
        "n_layers": r.req("num_hidden_layers"),
        "n_heads": heads,
        "n_kv_heads": r.get("num_key_value_heads", heads),
        "d_ff": r.req("intermediate_size"),
        "qkv_bias": bias if qkv_bias is None else qkv_bias,
        "out_bias": bias,
        "mlp_bias": r.get("mlp_bias", False),
        "activation": _activation(r.get("hidden_act", r.get("hidden_activation", act))),
        "tie_embeddings": r.get("tie_word_embeddings", tie),
        "max_context": r.req("max_position_embeddings"),
        "sliding_window": window,
    }
    head_dim = r.get("head_dim", None)
    if head_dim is not None and head_dim * heads != d:
        out["head_dim"] = head_dim
    return out


def _activation(name: str) -> str:
    table = {
        "silu": "silu",
        "swish": "silu",
        "gelu": "gelu",
        "relu": "relu",
        "gelu_new": "gelu_tanh",
        "gelu_pytorch_tanh": "gelu_tanh",
        "gelu_fast": "gelu_tanh",
    }
    return table.get(name, "gelu")


def _mixtral(r: _Reader) -> Config:
    out = _llama_like(r)
    out["moe"] = {
        "n_experts": r.req("num_local_experts"),
        "top_k": r.req("num_experts_per_tok"),
        "expert_d_ff": out.pop("d_ff"),
    }
    return out


def _deepseek_v3(r: _Reader) -> Config:
    out = _llama_like(r)
    out.pop("n_kv_heads")
    out.pop("head_dim", None)
    n_shared = r.get("n_shared_experts", 0)
    out["moe"] = {
        "n_experts": r.req("n_routed_experts"),
        "top_k": r.req("num_experts_per_tok"),
        "expert_d_ff": r.req("moe_intermediate_size"),
        "n_shared_experts": n_shared,
        "first_dense_layers": r.get("first_k_dense_replace", 0),
    }
    out["mla"] = {
        "q_lora_rank": r.get("q_lora_rank", None),
        "kv_lora_rank": r.req("kv_lora_rank"),
        "qk_nope_head_dim": r.req("qk_nope_head_dim"),
        "qk_rope_head_dim": r.req("qk_rope_head_dim"),
        "v_head_dim": r.req("v_head_dim"),
    }
    return out


def _unsupported(r: _Reader, key: str, value: Any, supported: str) -> CostmodelError:
    return CostmodelError(
        f"config.json for model_type {r.model_type!r}: {key} = {value!r} is not supported "
        f"(supported: {supported}); costmodel would mis-count this architecture"
    )


def _qwen3(r: _Reader) -> Config:
    """Qwen3 (and the Qwen3 decoder of Qwen3-MoE): Llama with per-head RMSNorm on q and k; an optional
    window on the layers from ``max_window_layers`` on (transformers' Qwen3Config)."""
    out = _llama_like(r) | {"qk_norm": "per_head", "sliding_window": None}
    window = r.get("sliding_window", None) if r.get("use_sliding_window", False) else None
    if window is not None:
        first = min(r.get("max_window_layers", 28), out["n_layers"])
        if first == 0:
            out["sliding_window"] = window
        elif first < out["n_layers"]:
            out["layer_types"] = ["full_attention"] * first + ["sliding_attention"] * (
                out["n_layers"] - first
            )
            out["local_window"] = window
    return out


def _qwen3_moe(r: _Reader) -> Config:
    out = _qwen3(r)
    # Qwen3-MoE's sliding window (when used) covers every layer (Qwen3MoeAttention reads it directly)
    if r.get("use_sliding_window", False) and r.get("sliding_window", None) is not None:
        out.pop("layer_types", None)
        out.pop("local_window", None)
        out["sliding_window"] = r.config["sliding_window"]
    step = r.get("decoder_sparse_step", 1)
    dense = sorted(r.get("mlp_only_layers", []))
    if step != 1:
        raise _unsupported(r, "decoder_sparse_step", step, "1, every layer a mixture of experts")
    if dense != list(range(len(dense))):
        raise _unsupported(r, "mlp_only_layers", dense, "[] or the leading layers [0, 1, ..., k-1]")
    if r.get("shared_expert_intermediate_size", 0):
        raise _unsupported(
            r, "shared_expert_intermediate_size", r.config["shared_expert_intermediate_size"], "0"
        )
    out["moe"] = {
        "n_experts": r.req("num_experts", "num_local_experts"),  # transformers 5 writes the latter
        "top_k": r.req("num_experts_per_tok"),
        "expert_d_ff": r.req("moe_intermediate_size"),
        "first_dense_layers": len(dense),
    }
    if not dense:
        out.pop("d_ff")
    return out


_CHECKPOINT_COMPONENTS = {
    # component -> the module-name fragments that mark it in modules_to_not_convert
    "attention": ("self_attn",),
    "mlp": (".mlp.gate_proj", ".mlp.up_proj", ".mlp.down_proj", "mlp\\.("),
    "experts": ("experts",),
    "shared_experts": ("SHARED_EXPERT",),
}


def _compressed_int4(quant: Config) -> str | None:
    """``int4_sym_gN`` for a compressed-tensors recipe of one group of symmetric int4 weights in groups of
    N, stored ``pack-quantized`` (Kimi-K2.5); None for any other recipe."""
    groups = list((quant.get("config_groups") or {}).values())
    if len(groups) != 1 or quant.get("format") != "pack-quantized":
        return None
    w = groups[0].get("weights") or {}
    plain = w.get("type") == "int" and w.get("num_bits") == 4 and w.get("symmetric") is True
    if not plain or w.get("strategy") != "group" or groups[0].get("input_activations") is not None:
        return None
    return f"int4_sym_g{w.get('group_size')}"


def _checkpoint(r: _Reader, fields: Config) -> Config:
    """The checkpoint's storage formats from ``quantization_config``, for the recipes whose layout is
    fully stated there: MXFP4 (gpt-oss) and fp8 in 128 x 128 blocks (DeepSeek-V3, Qwen3-FP8, MiniMax-M2).
    Other recipes are not read: the profile then says nothing about the checkpoint's format."""
    quant = r.get("quantization_config", {})
    method, block = quant.get("quant_method"), quant.get("weight_block_size")
    if method == "mxfp4":
        fmt = "mxfp4"
    elif method == "fp8" and block == [128, 128]:
        fmt = "fp8_block"
    elif method == "compressed-tensors" and (int4 := _compressed_int4(quant)):
        fmt = int4
    else:
        return {}
    # routed "experts" must not match "shared_experts": mark those apart before matching
    entries = quant.get("modules_to_not_convert") or quant.get("ignore") or []
    skipped = " ".join(e.replace("shared_expert", "SHARED_EXPERT") for e in entries)
    moe = fields.get("moe") or {}
    present = {
        "attention": fields.get("ssm") is None,
        "mlp": fields.get("d_ff") is not None and (not moe or moe.get("first_dense_layers", 0) > 0),
        "experts": bool(moe),
        "shared_experts": bool(moe.get("n_shared_experts", 0)),
    }
    formats = {
        c: fmt
        for c, marks in _CHECKPOINT_COMPONENTS.items()
        if present[c] and not any(m in skipped for m in marks)
    }
    if not formats:
        return {}
    recipe = f"quant_method {method}" + (f", weight_block_size {block}" if block else "")
    source = f"config.json quantization_config ({recipe}); modules_to_not_convert kept in bf16"
    return {"checkpoint": {"weight_dtype": "bf16", **formats, "source": source}}


def _gpt_oss(r: _Reader) -> Config:
    """gpt-oss: attention with biases and a learned sink logit per head, alternating local (128-token
    window) and full layers, every layer a mixture of experts with biases (router and experts)."""
    out = _llama_like(r) | {"sliding_window": None, "attention_sinks": True, "mlp_bias": True}
    out.pop("d_ff")
    n_layers = out["n_layers"]
    types = r.get(
        "layer_types", ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layers)]
    )
    unknown = sorted(set(types) - {"sliding_attention", "full_attention"})
    if unknown:
        raise _unsupported(r, "layer_types", unknown[0], "'sliding_attention', 'full_attention'")
    out["layer_types"] = types
    if "sliding_attention" in types:
        out["local_window"] = r.get("sliding_window", 128)
    out["head_dim"] = r.get("head_dim", 64)
    out["moe"] = {
        "n_experts": r.req("num_local_experts"),
        "top_k": r.req("num_experts_per_tok", "experts_per_token"),
        "expert_d_ff": r.req("intermediate_size"),
        "router_bias": True,
    }
    return out


def _minimax_m2(r: _Reader) -> Config:
    """MiniMax-M2: GQA with RMSNorm over all query (key) heads at once, every layer a mixture of experts
    with sigmoid routing (its score-correction bias is a buffer in transformers, not a parameter). The
    multi-token-prediction modules (``use_mtp``) are not part of the served model."""
    out = _llama_like(r) | {"sliding_window": None}
    if r.get("use_qk_norm", True):
        kind = r.get("qk_norm_type", "per_layer")
        if kind not in ("per_layer", "per_head"):
            raise _unsupported(r, "qk_norm_type", kind, "'per_layer', 'per_head'")
        out["qk_norm"] = kind
    if r.get("shared_intermediate_size", 0):
        raise _unsupported(r, "shared_intermediate_size", r.config["shared_intermediate_size"], "0")
    out["head_dim"] = r.get("head_dim", out["d_model"] // out["n_heads"])
    out["moe"] = {
        "n_experts": r.req("num_local_experts"),
        "top_k": r.req("num_experts_per_tok"),
        "expert_d_ff": out.pop("d_ff"),
    }
    return out


def _llama4(r: _Reader) -> Config:
    """Llama 4 text model: MoE layers (one routed expert of ``intermediate_size`` per token in Scout and
    Maverick, plus a shared expert) every ``interleave_moe_layer_step``-th layer, dense layers of
    ``intermediate_size_mlp`` between; rotary layers attend within chunks of ``attention_chunk_size``
    and every ``no_rope_layer_interval``-th layer (NoPE) over the whole context. Its QK-norm is an L2 norm
    without weights (transformers' Llama4TextL2Norm)."""
    out = _llama_like(r) | {"sliding_window": None}
    n_layers, step = out["n_layers"], r.get("interleave_moe_layer_step", 1)
    moe_layers = r.get("moe_layers", list(range(step - 1, n_layers, step)))
    if moe_layers != list(range(step - 1, n_layers, step)):
        raise _unsupported(r, "moe_layers", moe_layers, "every interleave_moe_layer_step-th layer")
    out["d_ff"] = r.get("intermediate_size_mlp", 16384) if step > 1 else None
    out["moe"] = {
        "n_experts": r.req("num_local_experts"),
        "top_k": r.req("num_experts_per_tok"),
        "expert_d_ff": r.req("intermediate_size"),
        "n_shared_experts": 1,
        "layer_step": step,
    }
    interval = r.get("no_rope_layer_interval", 4)
    rope = r.get("no_rope_layers", [int((i + 1) % interval != 0) for i in range(n_layers)])
    chunk = r.get("attention_chunk_size", 8192)
    types = r.get("layer_types", ["chunked_attention" if use and chunk else "full_attention" for use in rope])
    unknown = sorted(set(types) - {"chunked_attention", "full_attention"})
    if unknown:
        raise _unsupported(r, "layer_types", unknown[0], "'chunked_attention', 'full_attention'")
    out["layer_types"] = types
    if "chunked_attention" in types:
        out["attention_chunk"] = chunk
    return out


def _qwen3_5(r: _Reader) -> Config:
    """Qwen3.5 (and Qwen3-Next's layout): three of every four layers gated DeltaNet linear attention, the
    fourth full attention whose q_proj also yields a sigmoid output gate; QK-norm per head."""
    out = _qwen3(r) | {"attention_output_gate": r.get("attn_output_gate", True)}
    if r.get("use_sliding_window", False):
        raise _unsupported(r, "use_sliding_window", True, "false")
    n_layers, interval = out["n_layers"], r.get("full_attention_interval", 4)
    hybrid = ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(n_layers)]
    types = r.get("layer_types", hybrid)
    unknown = sorted(set(types) - {"linear_attention", "full_attention"})
    if unknown:
        raise _unsupported(r, "layer_types", unknown[0], "'linear_attention', 'full_attention'")
    out["layer_types"] = types
    if "linear_attention" in types:
        out["linear_attention"] = {
            "n_key_heads": r.req("linear_num_key_heads"),
            "n_value_heads": r.req("linear_num_value_heads"),
            "key_head_dim": r.req("linear_key_head_dim"),
            "value_head_dim": r.req("linear_value_head_dim"),
            "conv_kernel": r.get("linear_conv_kernel_dim", 4),
        }
    return out


def _qwen3_5_moe(r: _Reader) -> Config:
    """Qwen3.5 MoE: the Qwen3.5 hybrid with every layer a mixture of experts plus one gated shared
    expert."""
    # every layer is MoE: no dense width is needed (the MoE configs carry none)
    out = _qwen3_5(_Reader({"intermediate_size": 0} | r.config, r.model_type))
    if r.get("mlp_only_layers", []):
        raise _unsupported(r, "mlp_only_layers", r.config["mlp_only_layers"], "[]")
    shared = r.get("shared_expert_intermediate_size", 0)
    out.pop("d_ff", None)
    out["moe"] = {
        "n_experts": r.req("num_experts", "num_local_experts"),
        "top_k": r.req("num_experts_per_tok"),
        "expert_d_ff": r.req("moe_intermediate_size"),
        "n_shared_experts": 1 if shared else 0,
        "shared_expert_d_ff": shared or None,
        "shared_expert_gate": bool(shared),
    }
    return out


def _deepseek_v32(r: _Reader) -> Config:
    """DeepSeek-V3.2 (and GLM-5's glm_moe_dsa): DeepSeek-V3 with DeepSeek Sparse Attention."""
    out = _deepseek_v3(r)
    indexers = r.get("indexer_types", [])
    if any(kind != "full" for kind in indexers):
        shared = next(kind for kind in indexers if kind != "full")
        raise _unsupported(r, "indexer_types", shared, "'full' in every layer (an indexer per layer)")
    dense = out["moe"]["first_dense_layers"]
    mlp_types = r.get("mlp_layer_types", ["dense"] * dense + ["sparse"] * (out["n_layers"] - dense))
    if mlp_types != ["dense"] * dense + ["sparse"] * (out["n_layers"] - dense):
        raise _unsupported(
            r, "mlp_layer_types", "interleaved", "first_k_dense_replace dense layers, then MoE"
        )
    out["sparse_attention"] = {
        "index_n_heads": r.req("index_n_heads"),
        "index_head_dim": r.req("index_head_dim"),
        "index_topk": r.req("index_topk"),
    }
    return out


def _gemma4(r: _Reader) -> Config:
    """Gemma 4 text model (transformers' Gemma4TextConfig): sandwich norms, QK-norm per head, sliding-window
    layers (five of six by default) and full layers with their own geometry (global_head_dim, and with
    attention_k_eq_v fewer KV heads whose values come from k_proj); the 26B-A4B runs a dense MLP and 128
    experts side by side in every layer (enable_moe_block)."""
    heads = r.req("num_attention_heads")
    n_layers = r.get("num_hidden_layers", 30)
    default = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(n_layers)]
    types = list(r.get("layer_types", default))
    unknown = sorted(set(types) - {"sliding_attention", "full_attention"})
    if unknown:
        raise _unsupported(r, "layer_types", unknown[0], "'sliding_attention', 'full_attention'")
    if types and types[-1] != "full_attention":
        types[-1] = "full_attention"  # as Gemma4TextConfig forces it
    for key, value, supported in [
        ("hidden_size_per_layer_input", 256, "0 (no per-layer input embeddings)"),
        ("num_kv_shared_layers", 0, "0 (no layers reusing another layer's KV cache)"),
    ]:
        if r.get(key, value):
            raise _unsupported(r, key, r.config.get(key, value), supported)
    if r.get("use_bidirectional_attention", None) == "all":
        raise _unsupported(r, "use_bidirectional_attention", "all", "null or 'vision' (causal text)")
    k_eq_v = r.get("attention_k_eq_v", False)
    kv = r.get("num_key_value_heads", 4)
    global_kv = r.get("num_global_key_value_heads", None) if k_eq_v else None
    out: Config = {
        "vocab_size": r.get("vocab_size", 262_144),
        "d_model": r.req("hidden_size"),
        "n_layers": len(types),
        "n_heads": heads,
        "n_kv_heads": kv,
        "head_dim": r.get("head_dim", 256),
        "d_ff": r.req("intermediate_size"),
        "activation": _activation(r.get("hidden_activation", "gelu_pytorch_tanh")),
        "qkv_bias": r.get("attention_bias", False),
        "out_bias": r.get("attention_bias", False),
        "norm_placement": "sandwich",
        "qk_norm": "per_head",
        "tie_embeddings": r.get("tie_word_embeddings", True),
        "max_context": r.get("max_position_embeddings", 131_072),
        "layer_types": types,
        "local_window": r.get("sliding_window", 512) if "sliding_attention" in types else None,
    }
    if "full_attention" in types:
        out["global_attention"] = {
            "head_dim": r.get("global_head_dim", 512),
            "n_kv_heads": kv if global_kv is None else global_kv,
            "values_from_keys": k_eq_v,
        }
    if r.get("enable_moe_block", False):
        out["moe"] = {
            "n_experts": r.req("num_experts"),
            "top_k": r.req("top_k_experts"),
            "expert_d_ff": r.req("moe_intermediate_size"),
            "with_dense_mlp": True,
            "router_scales": True,
        }
    return out


# transformers' NemotronHConfig: hybrid_override_pattern characters and layers_block_type names (with the
# legacy names its remap_legacy_layer_types accepts) -> our block kinds
_NEMOTRON_PATTERN = {"M": "mamba2", "*": "attention", "-": "mlp", "E": "moe"}
_NEMOTRON_BLOCKS = {
    "linear_attention": "mamba2",
    "mamba": "mamba2",
    "full_attention": "attention",
    "attention": "attention",
    "mlp": "mlp",
    "moe": "moe",
}


def _nemotron_h(r: _Reader) -> Config:
    """Nemotron-H and Nemotron-3: each layer one block (Mamba-2 mixer, GQA attention without rotary
    parameters, a squared-ReLU MLP without gate, or a mixture of such experts with one shared expert and
    sigmoid routing), each after one RMSNorm (transformers' NemotronHBlock). Multi-token-prediction layers
    (``num_nextn_predict_layers``) are not part of the served model (transformers does not build them)."""
    names = r.get("layers_block_type", r.get("layer_types", None))
    if names is not None:
        unknown = sorted(set(names) - set(_NEMOTRON_BLOCKS))
        if unknown:
            raise _unsupported(r, "layers_block_type", unknown[0], ", ".join(map(repr, _NEMOTRON_BLOCKS)))
        blocks = [_NEMOTRON_BLOCKS[n] for n in names]
    else:
        pattern = r.req("hybrid_override_pattern")
        unknown = sorted(set(pattern) - set(_NEMOTRON_PATTERN))
        if unknown:
            raise _unsupported(r, "hybrid_override_pattern", unknown[0], "'M', '*', '-', 'E'")
        blocks = [_NEMOTRON_PATTERN[c] for c in pattern]
    if r.get("attention_bias", False):
        raise _unsupported(r, "attention_bias", True, "false")
    heads = r.req("num_attention_heads")
    act = r.get("mlp_hidden_act", "relu2")
    if act != "relu2":
        raise _unsupported(r, "mlp_hidden_act", act, "'relu2'")
    out: Config = {
        "vocab_size": r.req("vocab_size"),
        "d_model": r.req("hidden_size"),
        "n_layers": len(blocks),
        "n_heads": heads,
        "n_kv_heads": r.get("num_key_value_heads", 8),
        "head_dim": r.get("head_dim", r.get("attention_head_dim", 128)),
        "d_ff": r.get("intermediate_size", 21504) if "mlp" in blocks else None,
        "mlp": "standard",
        "activation": "relu2",
        "mlp_bias": r.get("mlp_bias", False),
        "tie_embeddings": r.get("tie_word_embeddings", False),
        "max_context": r.get("max_position_embeddings", 4096),
        "blocks": blocks,
    }
    if r.get("sliding_window", None) is not None:
        raise _unsupported(r, "sliding_window", r.config["sliding_window"], "null")
    if "mamba2" in blocks:
        out["mamba2"] = {
            "n_heads": r.get("mamba_num_heads", 128),
            "head_dim": r.get("mamba_head_dim", 64),
            "d_state": r.get("ssm_state_size", 128),
            "n_groups": r.get("n_groups", 8),
            "conv_kernel": r.get("conv_kernel", 4),
            "conv_bias": r.get("use_conv_bias", True),
            "proj_bias": r.get("use_bias", False),  # transformers' mixer reads use_bias, not mamba_proj_bias
        }
    if "moe" in blocks:
        shared = r.get("n_shared_experts", 1)
        if shared > 1:
            raise _unsupported(r, "n_shared_experts", shared, "0 or 1")
        out["moe"] = {
            "n_experts": r.get("n_routed_experts", 8),
            "top_k": r.get("num_experts_per_tok", 2),
            "expert_d_ff": r.get("moe_intermediate_size", 7688),
            "n_shared_experts": shared,
            "shared_expert_d_ff": r.get("moe_shared_expert_intermediate_size", 7688),
            "latent_dim": r.get("moe_latent_size", None),
        }
    return out


def _gpt2(r: _Reader) -> Config:
    d = r.req("n_embd")
    return {
        "vocab_size": r.req("vocab_size"),
        "d_model": d,
        "n_layers": r.req("n_layer"),
        "n_heads": r.req("n_head"),
        "d_ff": r.get("n_inner", 4 * d),
        "mlp": "standard",
        "activation": _activation(r.get("activation_function", "gelu_new")),
        "qkv_bias": True,
        "out_bias": True,
        "mlp_bias": True,
        "norm": "layernorm",
        "tie_embeddings": r.get("tie_word_embeddings", True),
        "position": "learned",
        "max_context": r.req("n_positions", "n_ctx"),
    }


def _gpt_neox(r: _Reader) -> Config:
    bias = r.get("attention_bias", True)
    return {
        "vocab_size": r.req("vocab_size"),
        "d_model": r.req("hidden_size"),
        "n_layers": r.req("num_hidden_layers"),
        "n_heads": r.req("num_attention_heads"),
        "d_ff": r.req("intermediate_size"),
        "mlp": "standard",
        "activation": _activation(r.get("hidden_act", "gelu")),
        "qkv_bias": bias,
        "out_bias": bias,
        "mlp_bias": True,
        "norm": "layernorm",
        "norm_placement": "parallel" if r.get("use_parallel_residual", True) else "pre",
        "tie_embeddings": r.get("tie_word_embeddings", False),
        "max_context": r.req("max_position_embeddings"),
    }


def _falcon(r: _Reader) -> Config:
    d, heads = r.req("hidden_size"), r.req("num_attention_heads")
    new_arch = r.get("new_decoder_architecture", False)
    if new_arch:
        kv = r.get("num_kv_heads", heads)
        placement = "parallel" if r.get("num_ln_in_parallel_attn", 2) == 2 else "parallel_shared"
    else:
        kv = 1 if r.get("multi_query", True) else heads
        placement = "parallel_shared" if r.get("parallel_attn", True) else "pre"
    bias = r.get("bias", False)
    return {
        "vocab_size": r.req("vocab_size"),
        "d_model": d,
        "n_layers": r.req("num_hidden_layers", "n_layer"),
        "n_heads": heads,
        "n_kv_heads": kv,
        "d_ff": r.get("ffn_hidden_size", 4 * d),
        "mlp": "standard",
        "activation": _activation(r.get("activation", "gelu")),
        "qkv_bias": bias,
        "out_bias": bias,
        "mlp_bias": bias,
        "norm": "layernorm",
        "norm_placement": placement,
        "tie_embeddings": r.get("tie_word_embeddings", True),
        "position": "alibi" if r.get("alibi", False) else "rotary",
        "max_context": r.get("max_position_embeddings", 2048),
    }


def _mamba(r: _Reader) -> Config:
    d = r.req("hidden_size", "d_model")
    dt_rank = r.get("time_step_rank", "auto")
    return {
        "vocab_size": r.req("vocab_size"),
        "d_model": d,
        "n_layers": r.req("num_hidden_layers", "n_layer"),
        "tie_embeddings": r.get("tie_word_embeddings", True),
        "position": "none",
        "max_context": r.get("max_position_embeddings", 2048),
        "ssm": {
            "d_state": r.get("state_size", 16),
            "d_conv": r.get("conv_kernel", 4),
            "expand": r.get("expand", 2),
            "dt_rank": math.ceil(d / 16) if dt_rank == "auto" else dt_rank,
            "conv_bias": r.get("use_conv_bias", True),
            "proj_bias": r.get("use_bias", False),
        },
    }


_READERS: dict[str, Callable[[_Reader], Config]] = {
    "llama": _llama_like,
    "mistral": _llama_like,
    "mixtral": _mixtral,
    "qwen2": lambda r: _llama_like(r, qkv_bias=True),
    # transformers reads Gemma's legacy hidden_act "gelu" as the tanh approximation
    "gemma": lambda r: _llama_like(r, tie=True) | {"activation": "gelu_tanh"},
    "phi3": _llama_like,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "falcon": _falcon,
    "deepseek_v3": _deepseek_v3,
    # Kimi-K2 ships the DeepSeek-V3 architecture under its own model_type (architectures:
    # DeepseekV3ForCausalLM); Kimi-K2.5 wraps it as a text_config of model_type deepseek_v3
    "kimi_k2": _deepseek_v3,
    "mamba": _mamba,
    "qwen3": _qwen3,
    "qwen3_moe": _qwen3_moe,
    "gpt_oss": _gpt_oss,
    "minimax_m2": _minimax_m2,
    "llama4_text": _llama4,
    "qwen3_5_text": _qwen3_5,
    "qwen3_5_moe_text": _qwen3_5_moe,
    "deepseek_v32": _deepseek_v32,
    "glm_moe_dsa": _deepseek_v32,
    "nemotron_h": _nemotron_h,
    "gemma4_text": _gemma4,
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_READERS))


def from_hf_config(path_or_dict: str | Path | Config, *, name: str | None = None) -> ModelProfile:
    """A :class:`ModelProfile` from a Hugging Face ``config.json`` path or its parsed dict.

    Supported ``model_type`` values: :data:`SUPPORTED_MODEL_TYPES`. Keys absent from the file take the
    default of the matching ``transformers`` configuration class (e.g. ``tie_word_embeddings`` is True
    for gemma, gpt2, falcon and mamba, False for the others). Gemma's embedding scaling and Phi-3's
    fused projections do not change counts and are not represented.

    A config with a ``text_config`` (a multimodal or wrapper model) is read through it: the profile
    describes the language model alone, without a vision tower or projector. A ``model_type`` or a
    value that changes the architecture beyond what costmodel represents raises
    :class:`~costmodel.errors.CostmodelError` naming it and what is supported, never a silent mis-count.
    """
    source = "config.json (dict)"
    if not isinstance(path_or_dict, dict):
        path = Path(path_or_dict)
        source = str(path)
        config = _read_json(path)
        if name is None:
            name = path.parent.name if path.name == "config.json" else path.stem
    else:
        config = path_or_dict
    if not isinstance(config, dict):
        raise CostmodelError(f"{source} must hold a JSON object, not {type(config).__name__}")
    model_type = config.get("model_type")
    outer = ""
    if isinstance(config.get("text_config"), dict):
        # a multimodal or wrapper config (Kimi-K2.5, Qwen3.5, Llama 4): the language model is the text_config
        outer = f" (text_config of model_type {model_type!r})"
        text = config["text_config"]
        if "quantization_config" in config and "quantization_config" not in text:
            text = text | {"quantization_config": config["quantization_config"]}
        config, model_type = text, text.get("model_type")
    if not isinstance(model_type, str) or model_type not in _READERS:
        raise CostmodelError(
            f"unsupported model_type {model_type!r}{outer} in {source}; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    reader = _Reader(config, model_type)
    fields = _READERS[model_type](reader)
    fields |= _checkpoint(reader, fields)
    fields = {k: v for k, v in fields.items() if v is not None}
    fields.setdefault("name", name or config.get("_name_or_path") or model_type)
    fields.setdefault("source", f"Hugging Face config.json ({source}), model_type {model_type}")
    try:
        profile = ModelProfile.model_validate(fields)
    except ValidationError as e:
        raise CostmodelError(describe_validation_error(e, f"model from {source}")) from None
    from costmodel.params import param_count  # exact Python ints: no allocation, no overflow

    total = param_count(profile).total
    if total > MAX_PARAMS:
        raise CostmodelError(
            f"{source} describes {float(total):.3g} parameters, past the {MAX_PARAMS:.3g} (2**53) costmodel "
            "counts exactly: check its sizes (hidden_size, head_dim, intermediate_size, layers, experts)"
        )
    return profile


def _read_json(path: Path) -> Any:
    """A config.json's content: a regular file of at most MAX_CONFIG_BYTES, read once, never echoed."""
    try:
        if not path.is_file():
            raise CostmodelError(
                f"cannot read {path}: not a regular file (a config.json is a small JSON file)"
            )
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise CostmodelError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise CostmodelError(f"{path} is over {MAX_CONFIG_BYTES:,} bytes: not a config.json")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CostmodelError(f"{path} is not UTF-8 text: not a config.json") from None
    except json.JSONDecodeError as e:
        raise CostmodelError(
            f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
        ) from None
    except (ValueError, RecursionError):  # integers past 4,300 digits, nesting past the recursion limit
        raise CostmodelError(
            f"{path} is not a config.json costmodel can read (an oversized number or nesting)"
        ) from None
