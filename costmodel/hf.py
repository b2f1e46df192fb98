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
MAX_CONFIG_BYTES = 1_000_000  # a config.json is a few kB
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
    }
)
_STR_KEYS = frozenset({"hidden_act", "hidden_activation", "activation_function", "activation"})
_CONTEXT_KEYS = frozenset({"max_position_embeddings", "n_positions", "n_ctx", "sliding_window"})


def _checked(key: str, value: Any) -> Any:
    """``value`` of config key ``key`` if it has the type and range costmodel reads it with."""
    if key in _BOOL_KEYS:
        if isinstance(value, bool):
            return value
        raise CostmodelError(f"config.json field {key!r} must be true or false, got {_shown(value)}")
    if key in _STR_KEYS or (key == "time_step_rank" and value == "auto"):
        if isinstance(value, str) and len(value) <= 100:
            return value
        raise CostmodelError(f"config.json field {key!r} must be a name (a string), got {_shown(value)}")
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
    "mamba": _mamba,
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_READERS))


def from_hf_config(path_or_dict: str | Path | Config, *, name: str | None = None) -> ModelProfile:
    """A :class:`ModelProfile` from a Hugging Face ``config.json`` path or its parsed dict.

    Supported ``model_type`` values: :data:`SUPPORTED_MODEL_TYPES`. Keys absent from the file take the
    default of the matching ``transformers`` configuration class (e.g. ``tie_word_embeddings`` is True
    for gemma, gpt2, falcon and mamba, False for the others). Gemma's embedding scaling and Phi-3's
    fused projections do not change counts and are not represented.
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
    if not isinstance(model_type, str) or model_type not in _READERS:
        raise CostmodelError(
            f"unsupported model_type {model_type!r} in {source}; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    fields = _READERS[model_type](_Reader(config, model_type))
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
