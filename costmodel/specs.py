"""Declarative, validated descriptions of a model and of a device.

Specs are data: frozen pydantic models that reject unknown fields and impossible combinations on
load, with a message naming the field. They know nothing of the estimators that read them.

Glossary of canonical symbols (used in every module): ``vocab_size`` (V), ``d_model`` (d),
``n_layers`` (L), ``n_heads`` (H), ``n_kv_heads`` (H_kv), ``head_dim`` (d_h), ``d_ff`` (d_ff),
``batch_size`` (B), ``context_len`` (S).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from costmodel.errors import CostmodelError, describe_validation_error

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Fraction01 = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class Spec(BaseModel):
    """Shared base: immutable, no unknown fields, no NaN/inf, every field described."""

    # defer_build: validators are built on first use, keeping `import costmodel` fast
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, validate_default=True, defer_build=True
    )

    def __init__(self, **data: Any) -> None:
        """Keyword construction (``Deployment(tp=0)``) refuses bad values with costmodel's own error, one
        line naming each field; the pydantic error stays attached as ``__cause__``. ``model_validate``
        (files) keeps raising pydantic's ``ValidationError`` for the loaders to describe."""
        try:
            super().__init__(**data)
        except ValidationError as e:
            what = type(self).__name__
            raise CostmodelError(describe_validation_error(e, what)) from e


# ----------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------


class MoESpec(Spec):
    """Mixture-of-experts feed-forward layers (Mixtral, DeepSeek-V3)."""

    n_experts: PositiveInt = Field(description="Routed experts per MoE layer [-].")
    top_k: PositiveInt = Field(description="Routed experts each token is sent to [-].")
    expert_d_ff: PositiveInt = Field(description="Hidden width of one routed expert's MLP [-].")
    n_shared_experts: int = Field(0, ge=0, description="Always-active shared experts per MoE layer [-].")
    shared_expert_d_ff: PositiveInt | None = Field(
        None, description="Hidden width of one shared expert [-]; defaults to expert_d_ff."
    )
    first_dense_layers: int = Field(
        0, ge=0, description="Leading layers that use a dense MLP of width d_ff instead of experts [-]."
    )
    router_bias: bool = Field(False, description="Whether the router has a learned per-expert bias.")
    shared_expert_gate: bool = Field(
        False,
        description="A learned sigmoid gate (a d_model x 1 projection) on the shared experts' output "
        "(Qwen2-MoE, Qwen3.5).",
    )
    with_dense_mlp: bool = Field(
        False,
        description="Every layer runs a dense MLP of width d_ff and the experts side by side, each with its "
        "own norms (three more RMSNorms per layer: Gemma 4 26B-A4B) [-].",
    )
    latent_dim: PositiveInt | None = Field(
        None,
        description="Routed experts work on a projection of the token of this width: one d_model x "
        "latent_dim projection before them and one after, per layer and token (Nemotron-3 Super/Ultra "
        "'moe_latent_size') [-]; None: on d_model.",
    )
    router_scales: bool = Field(
        False,
        description="The router scales its (normalised) input per channel and each expert's weight by "
        "learned vectors: d_model + n_experts parameters per layer (Gemma 4).",
    )
    layer_step: PositiveInt = Field(
        1,
        description="From first_dense_layers on, every layer_step-th layer (counting from 1) is a mixture "
        "of experts and the others dense (Llama 4 Maverick: 2) [-].",
    )

    def is_moe_layer(self, index: int) -> bool:
        """Whether decoder layer ``index`` (from 0) is a mixture of experts."""
        return index >= self.first_dense_layers and (index + 1) % self.layer_step == 0

    @model_validator(mode="after")
    def _top_k_fits(self) -> Self:
        if self.top_k > self.n_experts:
            raise ValueError(
                f"moe.top_k ({self.top_k}) is larger than moe.n_experts ({self.n_experts}); "
                "a token cannot be routed to more experts than exist"
            )
        return self

    @property
    def shared_d_ff(self) -> int:
        """Hidden width of one shared expert [-]."""
        return self.shared_expert_d_ff or self.expert_d_ff


class MLASpec(Spec):
    """Multi-head latent attention (DeepSeek-V2 §2.1, DeepSeek-V3): K and V are rebuilt from a
    compressed latent of width ``kv_lora_rank`` plus a shared rotary key of width
    ``qk_rope_head_dim``; only those two are cached."""

    q_lora_rank: PositiveInt | None = Field(
        None, description="Width of the low-rank query down-projection [-]; None: full-rank q_proj."
    )
    kv_lora_rank: PositiveInt = Field(description="Width of the compressed KV latent that is cached [-].")
    qk_nope_head_dim: PositiveInt = Field(description="Per-head query/key width without rotary [-].")
    qk_rope_head_dim: PositiveInt = Field(description="Per-head query/key width with rotary [-].")
    v_head_dim: PositiveInt = Field(description="Per-head value width [-].")

    @property
    def qk_head_dim(self) -> int:
        """Per-head query/key width [-]."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim


class SparseAttentionSpec(Spec):
    """DeepSeek Sparse Attention (DeepSeek-V3.2-Exp report, https://github.com/deepseek-ai/DeepSeek-V3.2-Exp/blob/main/DeepSeek_V3_2.pdf
    §2.1): a lightning indexer scores every past token for each query (``index_n_heads`` heads of
    ``index_head_dim``, ReLU, weighted sum over heads) and MLA attends to the ``index_topk`` best."""

    index_n_heads: PositiveInt = Field(description="Indexer heads H_I [-].")
    index_head_dim: PositiveInt = Field(description="Indexer query/key width d_I; its keys are cached [-].")
    index_topk: PositiveInt = Field(description="Keys each query attends to [tokens].")


class LinearAttentionSpec(Spec):
    """Gated DeltaNet layers (Yang et al. 2025, "Gated Delta Networks", arXiv:2412.06464) as Qwen3-Next
    and Qwen3.5 use them: a per-head key x value state updated by the gated delta rule, a depthwise
    causal convolution over q, k and v, and an output gate."""

    n_key_heads: PositiveInt = Field(description="Query/key heads [-].")
    n_value_heads: PositiveInt = Field(description="Value heads (each with its own state) [-].")
    key_head_dim: PositiveInt = Field(description="Query/key width per head d_k [-].")
    value_head_dim: PositiveInt = Field(description="Value width per head d_v [-].")
    conv_kernel: PositiveInt = Field(description="Depthwise causal convolution width [-].")

    @property
    def conv_dim(self) -> int:
        """Channels of the convolution: q, k and v [-]."""
        return 2 * self.n_key_heads * self.key_head_dim + self.n_value_heads * self.value_head_dim


class GlobalAttentionSpec(Spec):
    """The geometry of the 'full_attention' layers of layer_types when it differs from the local layers'
    (Gemma 4: 512-wide heads, fewer KV heads, values computed from the keys' projection)."""

    head_dim: PositiveInt = Field(description="Per-head width of the full-attention layers [-].")
    n_kv_heads: PositiveInt = Field(description="Key/value heads of the full-attention layers [-].")
    values_from_keys: bool = Field(
        False,
        description="No v_proj: values are the k_proj output, normalised apart from the keys and cached "
        "apart (Gemma 4 'attention_k_eq_v').",
    )


class SSMSpec(Spec):
    """Selective state-space (Mamba-1) blocks replacing attention and MLP (Gu & Dao 2023, §3)."""

    d_state: PositiveInt = Field(description="State size N per channel [-].")
    d_conv: PositiveInt = Field(description="Depthwise causal convolution kernel width [-].")
    expand: PositiveInt = Field(description="Inner width d_inner = expand * d_model [-].")
    dt_rank: PositiveInt = Field(description="Rank of the time-step (Delta) projection [-].")
    conv_bias: bool = Field(True, description="Whether the depthwise convolution has a bias.")
    proj_bias: bool = Field(False, description="Whether the in/out projections have biases.")


class Mamba2Spec(Spec):
    """Mamba-2 mixer blocks (Dao & Gu 2024, "Transformers are SSMs", arXiv:2405.21060, §7) as Nemotron-H
    uses them (the layout of transformers' NemotronHMamba2Mixer): one in_proj yields the gate z, the
    convolved x, B, C and the per-head time step; a scalar decay per head; a gated RMSNorm before
    out_proj."""

    n_heads: PositiveInt = Field(description="SSM heads (each with its own head_dim x d_state state) [-].")
    head_dim: PositiveInt = Field(description="Channels per SSM head [-].")
    d_state: PositiveInt = Field(description="State size N per channel [-].")
    n_groups: PositiveInt = Field(description="Groups sharing one B and C (like KV groups) [-].")
    conv_kernel: PositiveInt = Field(description="Depthwise causal convolution width [-].")
    conv_bias: bool = Field(True, description="Whether the depthwise convolution has a bias.")
    proj_bias: bool = Field(False, description="Whether in_proj and out_proj have biases.")

    @property
    def inner(self) -> int:
        """Inner width n_heads x head_dim [-]."""
        return self.n_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the convolution: x, B and C [-]."""
        return self.inner + 2 * self.n_groups * self.d_state


BlockKind = Literal["mamba2", "attention", "mlp", "moe"]
"""Kinds of single-mixer decoder layer in a ``blocks`` list (Nemotron-H's hybrid_override_pattern
'M', '*', '-', 'E')."""

LayerType = Literal["full_attention", "sliding_attention", "chunked_attention", "linear_attention"]
"""Kinds of decoder layer in a ``layer_types`` list, named as Hugging Face configs name them: causal
attention over the whole context, over the last ``local_window`` tokens, or over the tokens of the
current ``attention_chunk``-token chunk (Llama 4); or a linear-attention layer (``linear_attention``)."""
AttentionSpan = Literal["full", "sliding", "chunked"]


class CheckpointFormat(Spec):
    """How a published checkpoint stores its weights, when it is not one dtype throughout
    (gpt-oss: MXFP4 routed experts, bf16 everything else). A component's format applies to its matmul
    weights; its biases and norms stay in ``weight_dtype``. The :class:`Workload` that runs it:
    :func:`costmodel.memory.workload_formats`."""

    name: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="Short name of the release among the model's ``checkpoints`` (e.g. 'fp8', 'nvfp4'); "
        "None for the release the profile describes.",
    )
    weight_dtype: str = Field(
        "bf16", description="Format of every tensor whose component has no format of its own (a dtype name)."
    )
    attention: str | None = Field(None, description="Format of the attention projections' weights.")
    attention_out: str | None = Field(
        None,
        description="Format of the attention output projection (o_proj) where it differs from the other "
        "attention projections' (NVIDIA's NVFP4 DeepSeek checkpoints quantize o_proj only).",
    )
    mlp: str | None = Field(None, description="Format of the dense MLPs' weights.")
    experts: str | None = Field(None, description="Format of the routed experts' weights.")
    shared_experts: str | None = Field(None, description="Format of the shared experts' weights.")
    source: str = Field(min_length=3, description="Where the storage layout is documented (URL).")

    @property
    def component_dtypes(self) -> dict[str, str]:
        """Component -> format, for the components that have their own (``attention.o_proj``: the
        attention output projection's, see :func:`costmodel.memory.tensor_bytes`)."""
        names = {"attention": "attention", "attention.o_proj": "attention_out", "mlp": "mlp"}
        names |= {"experts": "experts", "shared_experts": "shared_experts"}
        return {c: getattr(self, f) for c, f in names.items() if getattr(self, f) is not None}

    @model_validator(mode="after")
    def _known_dtypes(self) -> Self:
        from costmodel.dtypes import get_dtype

        for where, name in [("weight_dtype", self.weight_dtype), *self.component_dtypes.items()]:
            try:
                get_dtype(name)
            except KeyError as e:
                raise ValueError(f"checkpoint.{where}: {e}") from None
        return self


NormPlacement = Literal["pre", "post", "sandwich", "parallel", "parallel_shared"]
NORMS_PER_LAYER: dict[str, int] = {"pre": 2, "post": 2, "sandwich": 4, "parallel": 2, "parallel_shared": 1}
"""Norm modules per layer: pre-/post-norm have one before (after) attention and one around the MLP;
sandwich (Gemma-2) has both; parallel blocks (GPT-J/NeoX, Falcon-40B) compute attention and MLP from
the same input, with two norms or, ``parallel_shared`` (Falcon-7B), one shared norm."""


class ModelProfile(Spec):
    """The architecture of a decoder-only language model, enough to count parameters, bytes and FLOPs.

    Attention and MLP sizes are ignored (and may be omitted) for pure SSM models.
    """

    name: str = Field(description="Short identifier, e.g. 'llama-3-8b'.")
    source: str = Field(description="Where the numbers come from (config.json URL, paper).")
    description: str = Field("", description="One line for people.")

    vocab_size: PositiveInt = Field(description="Vocabulary size V [tokens].")
    d_model: PositiveInt = Field(description="Residual stream width d [-].")
    n_layers: PositiveInt = Field(description="Decoder layers L [-].")
    n_heads: PositiveInt | None = Field(None, description="Query heads H [-].")
    n_kv_heads: PositiveInt | None = Field(
        None, description="Key/value heads H_kv [-]: = H for MHA, 1 for MQA, between for GQA; default H."
    )
    head_dim: PositiveInt | None = Field(
        None, description="Per-head width d_h [-]; default d_model / n_heads (Gemma uses 256 != d/H)."
    )
    d_ff: PositiveInt | None = Field(None, description="Hidden width of the dense MLP d_ff [-].")
    mlp: Literal["gated", "standard"] = Field(
        "gated", description="'gated': 3 matrices (SwiGLU/GeGLU); 'standard': 2 matrices (GELU/ReLU)."
    )
    activation: Literal["silu", "gelu", "gelu_tanh", "relu", "relu2"] = Field(
        "silu", description="MLP nonlinearity (the gate's, for gated MLPs)."
    )
    qkv_bias: bool = Field(False, description="Bias on the query, key and value projections.")
    out_bias: bool = Field(False, description="Bias on the attention output projection.")
    mlp_bias: bool = Field(False, description="Biases on the MLP (and expert) projections.")
    norm: Literal["rmsnorm", "layernorm"] = Field("rmsnorm", description="Normalisation kind.")
    norm_bias: bool | None = Field(
        None, description="Whether norms have a bias; default: True for layernorm, False for rmsnorm."
    )
    norm_placement: NormPlacement = Field(
        "pre", description="Where norms sit in a layer (see NORMS_PER_LAYER)."
    )
    final_norm: bool = Field(True, description="Whether a norm follows the last layer.")
    tie_embeddings: bool = Field(False, description="Whether the output head shares the embedding matrix.")
    lm_head_bias: bool = Field(False, description="Whether the output head has a bias.")
    position: Literal["rotary", "learned", "alibi", "none"] = Field(
        "rotary", description="Position encoding; only 'learned' has parameters (max_context x d_model)."
    )
    max_context: PositiveInt = Field(description="Longest supported context [tokens].")
    sliding_window: PositiveInt | None = Field(
        None, description="Attention window in every layer [tokens]; caps the KV cache. None: full."
    )
    layer_types: tuple[LayerType, ...] | None = Field(
        None,
        description="Kind of each decoder layer, in order (one per layer), for models that mix full and "
        "local attention (gpt-oss, Gemma-2/3); None: every layer alike (see sliding_window).",
    )
    local_window: PositiveInt | None = Field(
        None, description="Window of the 'sliding_attention' layers of layer_types [tokens]."
    )
    attention_chunk: PositiveInt | None = Field(
        None,
        description="Chunk of the 'chunked_attention' layers of layer_types [tokens]: a query sees the "
        "keys from the start of its chunk (Llama 4's attention_chunk_size).",
    )
    qk_norm: Literal["none", "per_head", "per_layer"] = Field(
        "none",
        description="RMSNorm on queries and keys: 'per_head' over head_dim, one weight shared by the heads "
        "(Qwen3, Gemma-3); 'per_layer' over all heads at once, n_heads x head_dim and n_kv_heads x "
        "head_dim weights (MiniMax-M2). Under tensor parallelism 'per_layer' is priced as MiniMax-M2's vLLM "
        "norm, an all-reduce of each token's partial mean squares (costmodel.ops), not an all-gather of q "
        "and k as some other models' engines run it.",
    )
    attention_output_gate: bool = Field(
        False,
        description="A sigmoid gate on the attention output computed by q_proj, which then has twice the "
        "outputs (Qwen3-Next, Qwen3.5 'attn_output_gate').",
    )
    linear_attention: LinearAttentionSpec | None = Field(
        None, description="Settings of the 'linear_attention' layers of layer_types (gated DeltaNet)."
    )
    attention_sinks: bool = Field(
        False,
        description="A learned logit per query head added to every softmax denominator (gpt-oss): "
        "n_heads parameters per layer, nothing cached.",
    )
    checkpoint: CheckpointFormat | None = Field(
        None, description="Storage formats of the published checkpoint; None: one dtype throughout."
    )
    checkpoints: tuple[CheckpointFormat, ...] = Field(
        (),
        description="Other published checkpoints of the same weights' shapes (e.g. Qwen's FP8 release, "
        "NVIDIA's NVFP4 one), each named and with how it stores its weights "
        "(:func:`costmodel.memory.shipped_checkpoints` lists them after the release itself).",
    )
    moe: MoESpec | None = Field(None, description="Mixture-of-experts settings; None for dense models.")
    mla: MLASpec | None = Field(None, description="Multi-head latent attention settings; None otherwise.")
    sparse_attention: SparseAttentionSpec | None = Field(
        None, description="DeepSeek sparse attention (an indexer selecting top-k keys) on MLA; None: dense."
    )
    ssm: SSMSpec | None = Field(None, description="Mamba block settings; set for pure SSM models.")
    blocks: tuple[BlockKind, ...] | None = Field(
        None,
        description="Nemotron-H style hybrids: each decoder layer is one block of this kind (a Mamba-2 "
        "mixer, full attention, a dense MLP or a mixture of experts) after one RMSNorm, in order (one per "
        "layer); None: every layer is attention (or layer_types' mixer) followed by an MLP.",
    )
    mamba2: Mamba2Spec | None = Field(None, description="Settings of the 'mamba2' blocks of blocks.")
    global_attention: GlobalAttentionSpec | None = Field(
        None,
        description="Geometry of the 'full_attention' layers of layer_types where it differs from the "
        "other attention layers' (Gemma 4); None: every attention layer alike.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [c.name for c in self.checkpoints]
        if None in names or "release" in names or len(set(names)) != len(names):
            raise ValueError(
                f"checkpoints: each needs its own name other than 'release' (the profile's own), got {names}"
            )
        if self.ssm is not None:
            if self.moe is not None or self.mla is not None:
                raise ValueError(
                    "ssm cannot be combined with moe or mla (hybrid models are not modelled yet)"
                )
            return self
        if self.n_heads is None:
            raise ValueError("n_heads is required for attention models (set ssm for a pure Mamba model)")
        if self.blocks is not None:
            self._consistent_blocks()
        if self.global_attention is not None:
            if self.layer_types is None or self.mla is not None:
                raise ValueError("global_attention needs layer_types (which layers are full) and no mla")
            if self.n_heads % self.global_attention.n_kv_heads:
                raise ValueError("global_attention.n_kv_heads must divide n_heads")
        if self.d_ff is None and self.n_dense_mlp_layers:
            raise ValueError("d_ff is required: it is the width of the dense MLP")
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads}): each key/value head "
                "serves a whole group of query heads"
            )
        if self.head_dim is None and self.mla is None and self.d_model % self.n_heads != 0:
            raise ValueError(
                f"n_heads ({self.n_heads}) does not divide d_model ({self.d_model}); set head_dim explicitly"
            )
        if self.mla is not None and self.n_kv_heads not in (None, self.n_heads):
            raise ValueError("n_kv_heads must equal n_heads (or be omitted) with mla: MLA has no KV grouping")
        if self.layer_types is not None:
            if len(self.layer_types) != self.n_layers:
                raise ValueError(
                    f"layer_types lists {len(self.layer_types)} layers but n_layers is {self.n_layers}; "
                    "give one entry per decoder layer"
                )
            if self.sliding_window is not None:
                raise ValueError(
                    "sliding_window windows every layer; with layer_types set the window of the "
                    "'sliding_attention' layers as local_window instead"
                )
            if "sliding_attention" in self.layer_types and self.local_window is None:
                raise ValueError("layer_types has 'sliding_attention' layers: set their local_window")
            if "chunked_attention" in self.layer_types and self.attention_chunk is None:
                raise ValueError("layer_types has 'chunked_attention' layers: set their attention_chunk")
            if ("linear_attention" in self.layer_types) != (self.linear_attention is not None):
                raise ValueError(
                    "linear_attention settings go with 'linear_attention' layers in layer_types: give both "
                    "or neither"
                )
        elif self.local_window is not None or self.attention_chunk is not None or self.linear_attention:
            raise ValueError(
                "local_window needs layer_types (which layers are local); else use sliding_window"
            )
        if self.sparse_attention is not None and (self.mla is None or self.mla.q_lora_rank is None):
            raise ValueError(
                "sparse_attention needs mla with a q_lora_rank: the indexer's queries come from the "
                "compressed query"
            )
        if self.moe is not None and self.moe.first_dense_layers > self.n_layers:
            raise ValueError(
                f"moe.first_dense_layers ({self.moe.first_dense_layers}) exceeds n_layers ({self.n_layers})"
            )
        return self

    def _consistent_blocks(self) -> None:
        assert self.blocks is not None
        if len(self.blocks) != self.n_layers:
            raise ValueError(
                f"blocks lists {len(self.blocks)} layers but n_layers is {self.n_layers}; give one entry "
                "per decoder layer"
            )
        if self.layer_types is not None or self.sliding_window is not None or self.mla is not None:
            raise ValueError("blocks cannot be combined with layer_types, sliding_window or mla")
        if ("mamba2" in self.blocks) != (self.mamba2 is not None):
            raise ValueError("mamba2 settings go with 'mamba2' entries in blocks: give both or neither")
        if ("moe" in self.blocks) != (self.moe is not None):
            raise ValueError("moe settings go with 'moe' entries in blocks: give both or neither")
        if self.moe is not None and (self.moe.first_dense_layers or self.moe.layer_step != 1):
            raise ValueError(
                "with blocks, the 'moe' entries place the experts: leave first_dense_layers "
                "and layer_step at their defaults"
            )

    # Derived sizes. Attention-only properties raise for SSM models rather than inventing a value.

    @property
    def kv_heads(self) -> int:
        """Key/value heads H_kv [-]."""
        return self.n_kv_heads or self._heads

    @property
    def head_size(self) -> int:
        """Per-head width d_h [-]."""
        return self.head_dim or self.d_model // self._heads

    @property
    def _heads(self) -> int:
        if self.n_heads is None:
            raise ValueError(f"model {self.name!r} has no attention heads (it is an SSM model)")
        return self.n_heads

    @property
    def attention_groups(self) -> dict[tuple[AttentionSpan, int | None], int]:
        """Attention layers by what a query attends to, with how many layers each: ``("full", None)``,
        ``("sliding", window)`` or ``("chunked", chunk)`` [tokens]. gpt-oss-20b:
        ``{("sliding", 128): 12, ("full", None): 12}``; empty for SSM models."""
        if self.ssm is not None:
            return {}
        if self.blocks is not None:
            n = self.blocks.count("attention")
            return {("full", None): n} if n else {}
        if self.layer_types is None:
            kind: AttentionSpan = "full" if self.sliding_window is None else "sliding"
            return {(kind, self.sliding_window): self.n_layers}
        spans: dict[str, tuple[AttentionSpan, int | None]] = {
            "full_attention": ("full", None),
            "sliding_attention": ("sliding", self.local_window),
            "chunked_attention": ("chunked", self.attention_chunk),
        }
        out: dict[tuple[AttentionSpan, int | None], int] = {}
        for layer in self.layer_types:
            if layer != "linear_attention":
                out[spans[layer]] = out.get(spans[layer], 0) + 1
        return out

    @property
    def n_attention_layers(self) -> int:
        """Layers with softmax attention (full, sliding or chunked) [-]."""
        return sum(self.attention_groups.values())

    @property
    def n_linear_attention_layers(self) -> int:
        """Layers with linear attention (gated DeltaNet) [-]."""
        return 0 if self.layer_types is None else self.layer_types.count("linear_attention")

    @property
    def n_mamba2_layers(self) -> int:
        """Mamba-2 blocks of a ``blocks`` model [-]."""
        return 0 if self.blocks is None else self.blocks.count("mamba2")

    @property
    def n_layer_norms(self) -> int:
        """Norm modules inside the decoder layers (not the final norm) [-]."""
        if self.ssm is not None or self.blocks is not None:
            return self.n_layers  # one pre-norm per block
        extra = 3 * self.n_moe_layers if self.moe is not None and self.moe.with_dense_mlp else 0
        return self.n_layers * NORMS_PER_LAYER[self.norm_placement] + extra

    def attention_geometry(self, span: AttentionSpan) -> tuple[int, int]:
        """(head_dim, n_kv_heads) of the attention layers of this span [-]: the global_attention's for
        full layers where set, else the model's."""
        g = self.global_attention
        if g is not None and span == "full":
            return g.head_dim, g.n_kv_heads
        return self.head_size, self.kv_heads

    @property
    def attention_windows(self) -> dict[int | None, int]:
        """Attention layers by the most tokens their KV cache holds [tokens] (None: the whole context),
        with how many layers each: ``{128: 12, None: 12}`` for gpt-oss-20b. A chunked layer holds up to
        one chunk (a ring of ``attention_chunk`` tokens, as transformers and engines keep it)."""
        out: dict[int | None, int] = {}
        for (_, size), layers in self.attention_groups.items():
            out[size] = out.get(size, 0) + layers
        return out

    @property
    def has_norm_bias(self) -> bool:
        """Whether each norm carries a bias vector."""
        return self.norm == "layernorm" if self.norm_bias is None else self.norm_bias

    @property
    def n_moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts [-]."""
        if self.moe is None:
            return 0
        if self.blocks is not None:
            return self.blocks.count("moe")
        if self.moe.with_dense_mlp:
            return self.n_layers
        step, first = self.moe.layer_step, self.moe.first_dense_layers
        return max(self.n_layers // step - first // step, 0)

    @property
    def n_dense_mlp_layers(self) -> int:
        """Layers with a dense MLP of width d_ff [-]."""
        if self.blocks is not None:
            return self.blocks.count("mlp")
        if self.moe is not None and self.moe.with_dense_mlp:
            return self.n_layers
        return 0 if self.ssm is not None else self.n_layers - self.n_moe_layers

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelProfile:
        """Load a profile from a YAML file (see :func:`costmodel.registry.load_model`)."""
        from costmodel.registry import load_model_file

        return load_model_file(Path(path))

    @classmethod
    def from_hf_config(
        cls, path_or_dict: str | Path | dict[str, Any], *, name: str | None = None
    ) -> ModelProfile:
        """Read a Hugging Face ``config.json`` (a path or the parsed dict); no network, no transformers.

        See :func:`costmodel.hf.from_hf_config` for the supported ``model_type`` values.
        """
        from costmodel.hf import from_hf_config

        return from_hf_config(path_or_dict, name=name)


# ----------------------------------------------------------------------------------------------------
# Hardware
# ----------------------------------------------------------------------------------------------------

ComputeDType = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "fp6", "fp4", "int8", "int4"]
"""Compute formats a datasheet quotes a peak for; fp6 / fp4 are the tensor-core rates of the (MX/NV) FP6 and
FP4 formats on Blackwell and CDNA 4."""


class Sourced(Spec):
    """A datasheet number with the document it comes from."""

    value: PositiveFloat = Field(description="The number, in the unit its key names.")
    source: str = Field(min_length=3, description="Document, URL and table it was read from.")


class SourcedText(Spec):
    """A published name or version (not a number) with the document it comes from."""

    value: str = Field(min_length=1, description="The text, exactly as published.")
    source: str = Field(min_length=3, description="Document, URL and table it was read from.")


MAX_BUSBW_SHARE = 1.5
"""Largest ``intra_node_allreduce_busbw_gb_per_s`` over ``intra_node_bandwidth_gb_per_s`` a profile may state
[-]: the collective fit's upper bound on its large-message bandwidth fraction
(``costmodel.kernels.collective.BOUNDS["large_bandwidth_fraction"]``, which a test holds equal; in-switch
reductions, NVLS, can pass 1)."""
MEASURED_FIGURES = (
    "intra_node_latency_us",
    "intra_node_allreduce_busbw_gb_per_s",
    "sustained_tensor_fraction",
    "sustained_fp4_fraction",
)
"""Datasheet keys that hold third-party measurements of a device, not its published specifications: a copy
of a profile without them is still the same device (:meth:`HardwareProfile.same_device`)."""


class Datasheet(Spec):
    """A device's published figures, in the human units their keys name."""

    peak_dense_tflop_per_s: dict[ComputeDType, Sourced] = Field(
        description="Dense (never sparsity-doubled) peak per compute dtype [TFLOP/s, TOPS for ints]."
    )
    sparsity_speedup: Sourced | None = Field(
        None,
        description="2:4 structured-sparsity peak / dense peak for matmuls [-] (2 on NVIDIA Ampere and "
        "later, AMD CDNA3); None: no sparse tensor cores.",
    )
    memory_capacity_gib: Sourced = Field(description="Device memory [GiB, 2^30 bytes].")
    memory_bandwidth_tb_per_s: Sourced = Field(description="Device memory bandwidth [TB/s, 1e12 bytes/s].")
    on_chip_cache_mib: Sourced | None = Field(None, description="L2 / last-level cache [MiB].")
    intra_node_link: Literal["nvlink", "pcie", "xgmi", "ici", "none"] = Field(
        "none", description="Device-to-device link inside a node."
    )
    intra_node_bandwidth_gb_per_s: Sourced | None = Field(
        None, description="Per device, per direction, inside a node [GB/s, 1e9 bytes/s]."
    )
    intra_node_latency_us: Sourced | None = Field(
        None,
        description="Smallest time of an 8-byte all-reduce among the node's 8 GPUs over the intra-node link "
        "[µs], as measured by nccl-tests (a third-party measurement, not a datasheet figure: state where it "
        "comes from in source; compare only figures taken alike: NCCL >= 2.27 with symmetric memory, without "
        "CUDA graphs, the same tuning): the link's round trips as a collective sees them (its switch, "
        "ports and, on a two-die GPU, the die crossing), which no NVIDIA datasheet states. The transfer rule "
        "carries a collective's fixed latencies in proportion to it (costmodel.calibrate.carried_latency_"
        "scale); None: unpublished, the source's latencies carry as fitted.",
    )
    intra_node_allreduce_busbw_gb_per_s: Sourced | None = Field(
        None,
        description="Largest NCCL all-reduce bus bandwidth among the node's GPUs over the intra-node link "
        "[GB/s, 1e9 bytes/s], as nccl-tests reports it (busbw = size / time x 2 (n - 1) / n) at its largest "
        "messages: the ring's achieved share of the link, which no datasheet states (a published "
        "measurement: state where it comes from in source). NVLink devices take it over "
        "intra_node_bandwidth_gb_per_s as the default large-message fraction of their collectives "
        "(costmodel.kernels.collective.published_link_fraction), which a device without a collective fit "
        "of its own, or a transferred device whose source meets over another kind of link, uses; None: "
        "the profile's efficiency.interconnect_fraction.",
    )
    boost_clock_mhz: Sourced | None = Field(
        None,
        description="The GPU's boost clock [MHz], the clock its dense tensor peak is quoted at. The transfer "
        "rule carries a kernel's fixed launch times (a launch's front-end work, a kernel's prologue and "
        "drain: GPU cycles) in proportion to the source's clock over the target's (costmodel.calibrate."
        "carried_clock_scale); None: the source's launch times carry as fitted.",
    )
    sustained_tensor_fraction: Sourced | None = Field(
        None,
        description="The largest dense GEMM rate a published benchmark measured on the device (large "
        "shapes, random data, warmed up) over the datasheet's dense peak of the format it ran [-], in "
        "(0, 1]: the share of the quoted peak its tensor cores sustain under a GEMM's power draw (the peak "
        "is quoted at the boost clock; GPU Boost lowers the clock to hold the board's power limit). A "
        "third-party measurement, not a datasheet figure: state where it comes from in source, and compare "
        "only figures taken alike (the same benchmark: Azure's cuBLASLt fp8 runs for the H200 / H100 and "
        "GB200 / B200, one torch.mm bf16 table for the A100 80GB and the L40S). The transfer rule carries a "
        "GEMM's fitted full-occupancy rate in proportion to it (costmodel.calibrate.carried_sustained_scale, "
        "carry_sustained_share); None: unpublished, the fit carries as it is.",
    )
    sustained_fp4_fraction: Sourced | None = Field(
        None,
        description="The dense FP4 (block-scaled NVFP4 / MXFP4) GEMM rate cuBLASLt was measured to sustain "
        "on the device at the largest published square shape, over the datasheet's dense fp4 peak [-], in "
        "(0, 1]. A third-party measurement: state where it comes from in source. The kernel models take it "
        "as the default compute fraction of an fp4 GEMM or grouped GEMM for which nothing is fitted "
        "(HardwareProfile.default_matmul_fraction: costmodel.kernels.gemm / moe / mla default_params and the "
        "roofline mode; a refit starts its nvfp4 keys there; an "
        "efficiency.matmul_fraction_by_dtype entry for fp4 still wins); it is not carried between devices "
        "(the published fp4 figures come from different benchmarks and power limits: docs/validation.md, "
        "'Sustained FP4 share'); None: efficiency.matmul_fraction, as for every other format.",
    )
    inter_node_bandwidth_gb_per_s: Sourced | None = Field(
        None, description="Per device, per direction, across nodes [GB/s, 1e9 bytes/s]."
    )
    scale_up_domain_size: Sourced | None = Field(
        None,
        description="Devices the intra-node link joins at its full bandwidth, i.e. the NVLink / Infinity "
        "Fabric domain (8 on an HGX board, 72 on a GB200 NVL72 rack, whose 4-GPU trays are not the domain) "
        "[-]; None: the deployment's gpus_per_node.",
    )
    tdp_w: Sourced | None = Field(
        None, description="Thermal design power [W]; None where unpublished (TPU v5e)."
    )
    compute_units: Sourced | None = Field(None, description="SMs / CUs / TensorCores / cores [-].")
    cuda_compute_capability: SourcedText | None = Field(
        None,
        description="CUDA compute capability 'major.minor' (NVIDIA's table, https://developer.nvidia.com/"
        "cuda-gpus), which the engines key their all-reduce dispatch on; None (non-NVIDIA devices, or a "
        "profile that does not state it): the engines' dispatch for other GPUs.",
    )
    cuda_device_name: SourcedText | None = Field(
        None,
        description="The name CUDA reports for the device (torch.cuda.get_device_name()), by which vLLM "
        "finds its tuned fused-MoE configs (costmodel.kernels.moe_configs); None: vLLM's default MoE "
        "launch configuration, as for a device vLLM ships no configs for.",
    )

    @model_validator(mode="after")
    def _sustained_share_at_most_one(self) -> Self:
        for key in ("sustained_tensor_fraction", "sustained_fp4_fraction"):
            share = getattr(self, key)
            if share is not None and share.value > 1.0:
                raise ValueError(
                    f"{key} ({share.value:g}) is a share of the dense tensor peak of the format measured: "
                    "at most 1 (a measured TFLOP/s figure must be divided by the peak first)"
                )
        if self.sustained_fp4_fraction is not None and "fp4" not in self.peak_dense_tflop_per_s:
            raise ValueError(
                "sustained_fp4_fraction is a share of the dense fp4 peak: add peak_dense_tflop_per_s.fp4 "
                "(or drop the share on a device without fp4 tensor cores)"
            )
        return self

    @model_validator(mode="after")
    def _busbw_needs_its_link(self) -> Self:
        busbw = self.intra_node_allreduce_busbw_gb_per_s
        if busbw is None:
            return self
        if self.intra_node_link in ("pcie", "none") or self.intra_node_bandwidth_gb_per_s is None:
            raise ValueError(
                "intra_node_allreduce_busbw_gb_per_s is a share of a switched link: it needs "
                "intra_node_link 'nvlink', 'xgmi' or 'ici' and intra_node_bandwidth_gb_per_s (on PCIe the "
                f"collective model uses NCCL's own PCIe rate); this profile has link {self.intra_node_link!r}"
            )
        share = busbw.value / self.intra_node_bandwidth_gb_per_s.value
        if share > MAX_BUSBW_SHARE:
            raise ValueError(
                f"intra_node_allreduce_busbw_gb_per_s ({busbw.value:g}) is {share:.2f} x "
                f"intra_node_bandwidth_gb_per_s ({self.intra_node_bandwidth_gb_per_s.value:g}); a ring's bus "
                f"bandwidth is at most {MAX_BUSBW_SHARE:g} x its per-direction link rate: check both units"
            )
        return self

    def figures(self) -> dict[str, object]:
        """Every published figure by key, without its source: what identifies the device."""
        out: dict[str, object] = {}
        for key, field in self:
            if isinstance(field, dict):
                out[key] = {k: v.value for k, v in field.items()}
            else:
                out[key] = field.value if isinstance(field, Sourced | SourcedText) else field
        return out

    @field_validator("cuda_compute_capability")
    @classmethod
    def _capability_is_major_minor(cls, value: SourcedText | None) -> SourcedText | None:
        if value is not None and not re.fullmatch(r"\d+\.\d+", value.value):
            raise ValueError(f"{value.value!r} is not 'major.minor' (e.g. '9.0')")
        return value


class Price(Spec):
    """An on-demand price for one device."""

    usd_per_hour: PositiveFloat = Field(description="On-demand price of one device [USD/h].")
    source: str = Field(min_length=3, description="Where the price was published.")
    date: str = Field(description="When the price was published or observed (YYYY-MM or YYYY-MM-DD).")

    @property
    def provider(self) -> str:
        """Who publishes the price, short: the source up to its first comma, colon or bracket."""
        name = re.split(r"[,:(]", self.source, maxsplit=1)[0].strip()
        for suffix in (" pricing page", " pricing", " list price", " price"):
            name = name.removesuffix(suffix)
        return name


class Efficiency(Spec):
    """Achievable fractions of the datasheet figures. Defaults are assumptions; calibration replaces them
    with measured values and says so in ``source``."""

    matmul_fraction: Fraction01 = Field(0.7, description="Fraction of dense peak a large GEMM reaches [-].")
    matmul_fraction_by_dtype: dict[ComputeDType, Fraction01] = Field(
        default_factory=dict, description="Per compute dtype, where measured; overrides matmul_fraction [-]."
    )
    memory_bandwidth_fraction: Fraction01 = Field(
        0.8, description="Fraction of datasheet bandwidth a large copy reaches [-]."
    )
    interconnect_fraction: Fraction01 = Field(0.8, description="Fraction of link bandwidth reached [-].")
    kernel_overhead_s: float = Field(
        5e-6, ge=0, description="Fixed launch/setup time per kernel, one per modelled operator [s]."
    )
    execution_mode: Literal["graphs", "eager"] = Field(
        "graphs",
        description="How the host issues a pass's kernels (costmodel.execution): 'graphs' (a CUDA graph or "
        "compiled program: no per-kernel host cost) or 'eager' (PyTorch eager: dispatch_s for every kernel "
        "each operator launches).",
    )
    dispatch_s: float = Field(
        5e-6,
        ge=0,
        description="Host time to dispatch one kernel in eager mode: Python, the PyTorch dispatcher, the "
        "launch [s]; unused in 'graphs' mode.",
    )
    step_overhead_s: float = Field(
        0.0,
        ge=0,
        description="Fixed host time per forward pass (graph launch, Python around the layers) [s].",
    )
    gemm_pack_fraction: float = Field(
        0.0,
        ge=0,
        description="CPU only: bandwidth of the BLAS GEMM's weight-packing pass (one more pass over the "
        "weights before the compute, for GEMMs of more than gemv_max_rows rows; costmodel.cpu_gemm) as a "
        "fraction of the weight-streaming bandwidth (datasheet bandwidth x memory_bandwidth_fraction); 0: no "
        "packing term [-].",
    )
    gemv_max_rows: float = Field(
        3.0,
        ge=0,
        description="CPU only: the most rows a matmul runs as a matrix-vector product, without a pack "
        "[rows].",
    )
    source: str = Field("assumption", description="Where these fractions come from.")
    time_model: Literal["auto", "roofline", "kernels"] = Field(
        "auto",
        description="How operators are timed (costmodel.kernel_times): 'roofline' (these fractions), "
        "'kernels' (the kernel-family models of costmodel.kernels with the device's calibrated or datasheet "
        "parameters), 'auto' (kernels where the device has a kernel_calibration and an SM count, else "
        "roofline).",
    )
    kernel_engine: Literal["vllm", "trtllm", "sglang"] = Field(
        "vllm",
        description="Whose kernels the kernel models' calibrated parameters are taken from where a device "
        "has several (attention, custom all-reduce); sglang runs vLLM's, and for fp8 / block-fp8 experts "
        "only the MoE kernels SGLang runs (costmodel.kernel_times.ENGINE_MOE_KERNELS).",
    )
    moe_backend: Literal["CUTLASS", "TRTLLM", "DEEPGEMM", "MARLIN"] | None = Field(
        None,
        description="The MoE backend the engine's launch states (TensorRT-LLM's moe_config.backend; MARLIN: "
        "vLLM only, kernel_engine 'vllm': its Marlin experts for MXFP4 weights, VLLM_MXFP4_USE_MARLIN=1): "
        "the routed experts are timed with that backend's kernels (costmodel.kernel_times.moe_keys; MXFP4 "
        "experts under MARLIN: costmodel.kernel_times._marlin_moe_s, as the tables time Marlin MXFP4 at "
        "other shapes only; another format takes the tables' Marlin kernel of that format where one is "
        "timed, e.g. int4 weight-only, else its own kernels); None: the engine's autotuner runs the fastest "
        "of its own MoE kernels.",
    )

    norm_in_allreduce: bool = Field(
        False,
        description="The engine fuses the residual add and RMSNorm after each tensor-parallel all-reduce "
        "into the all-reduce's kernel (TensorRT-LLM's RESIDUAL_RMS_NORM fusion, vLLM's fuse_allreduce_rms "
        "pass): at tp > 1 those norms run no kernel of their own (costmodel.ops.fused_norms).",
    )

    symm_mem_all_reduce: bool = Field(
        False,
        description="SGLang only (kernel_engine 'sglang'): the launch sets --enable-symm-mem or "
        "--enable-torch-symm-mem, so all-reduces beyond SGLang's 8 MiB custom all-reduce run on symmetric "
        "memory (timed as vLLM's symmetric-memory path); False, SGLang's default: they run on NCCL "
        "(costmodel.kernels.collective.SGLANG_CUSTOM_MAX_BYTES).",
    )

    @model_validator(mode="after")
    def _marlin_is_vllms(self) -> Self:
        if self.moe_backend == "MARLIN" and self.kernel_engine != "vllm":
            raise ValueError(
                "moe_backend 'MARLIN' is vLLM's Marlin MXFP4 experts (VLLM_MXFP4_USE_MARLIN=1): it needs "
                f"kernel_engine 'vllm', not {self.kernel_engine!r}; leave moe_backend None (or set a "
                "TensorRT-LLM backend with kernel_engine 'trtllm') otherwise"
            )
        return self

    @model_validator(mode="after")
    def _symm_mem_is_sglangs(self) -> Self:
        if self.symm_mem_all_reduce and self.kernel_engine != "sglang":
            raise ValueError(
                "symm_mem_all_reduce is SGLang's launch option (--enable-symm-mem): it needs kernel_engine "
                f"'sglang', not {self.kernel_engine!r}"
            )
        return self

    def matmul(self, dtype: str) -> float:
        """Achievable fraction of the dense peak for matmuls in ``dtype`` [-]."""
        return float(self.matmul_fraction_by_dtype.get(dtype, self.matmul_fraction))  # type: ignore[call-overload]


class CalibrationRecord(Spec):
    """What a set of calibrated kernel parameters was fitted on, so a number can be traced to its data."""

    data_source: str = Field(description="The measurement data (name, URL or path) the fit used.")
    data_revision: str = Field(description="Revision (commit, version) of that data.")
    row_rule: str = Field(description="Which rows were fitted (a rule on row identity, never on error).")
    date: str = Field(description="When the fit ran (YYYY-MM-DD).")
    costmodel_revision: str = Field(description="git revision of costmodel that ran the fit.")
    transferred_from: str | None = Field(
        None,
        description="For a device without measurements: the measured device whose fitted parameters "
        "were reused with this device's datasheet (see docs/validation.md, transfer rule).",
    )
    rows: dict[str, int] = Field(
        default_factory=dict, description="Rows fitted per kernel family [-] (of the source device)."
    )


class KernelCalibration(Spec):
    """Calibrated parameters of the kernel time models (``costmodel.kernels``) for one device."""

    params: dict[str, dict[str, dict[str, float]]] = Field(
        description="family (module name in costmodel.kernels) -> parameter key (dtype, optionally "
        "'dtype:kernel') -> parameter name -> value, in the units the parameter's name carries."
    )
    record: CalibrationRecord = Field(description="What the parameters were fitted on.")


class HardwareProfile(Spec):
    """One accelerator (or CPU socket), its datasheet, price and efficiency defaults."""

    name: str = Field(description="Short identifier, e.g. 'h100-sxm'.")
    display_name: str = Field(description="Full product name.")
    vendor: Literal["nvidia", "amd", "google", "intel", "generic"] = Field(description="Vendor.")
    device_kind: Literal["gpu", "tpu", "cpu"] = Field(description="Kind of device.")
    datasheet: Datasheet = Field(description="Published figures, each with its source.")
    price: Price | None = Field(None, description="On-demand price per device-hour.")
    efficiency: Efficiency = Field(default_factory=Efficiency, description="Achievable fractions.")
    kernel_calibration: KernelCalibration | None = Field(
        None,
        description="Kernel-model parameters fitted to measurements (see costmodel.calibrate); None: "
        "the kernel models use datasheet defaults.",
    )

    def peak_flop_per_s(self, dtype: str) -> float:
        """Dense peak for a compute dtype [FLOP/s]; raises if the device lacks that dtype."""
        entry = self.datasheet.peak_dense_tflop_per_s.get(dtype)  # type: ignore[call-overload]
        if entry is None:
            have = ", ".join(self.datasheet.peak_dense_tflop_per_s)
            raise CostmodelError(
                f"hardware {self.name!r} has no {dtype!r} peak in its datasheet (it has: {have})"
            )
        return float(entry.value) * 1e12

    def default_matmul_fraction(self, compute_dtype: str, efficiency: Efficiency | None = None) -> float:
        """Fraction of the dense peak of ``compute_dtype`` a large GEMM reaches when nothing is fitted for it
        [-]: ``efficiency.matmul_fraction_by_dtype`` where it names the format, else for fp4 the measured
        ``datasheet.sustained_fp4_fraction`` where the profile states it, else
        ``efficiency.matmul_fraction`` (:meth:`Efficiency.matmul`). ``efficiency``: the one to read
        (default: the profile's own; the roofline mode takes one as an argument).

        Every unfitted matmul of the format on the device's tensor cores takes it: the GEMM and grouped-GEMM
        defaults (``costmodel.kernels.gemm`` / ``moe`` ``default_params``), the MLA module's GEMMs
        (``costmodel.kernels.mla.default_params``, of its GEMM peak's format) and the roofline mode
        (``costmodel.roofline``: the step's roofs, the ridge point and the chart). The defaults also seed the
        fits (``costmodel.calibrate``'s ``initial_guesses`` / ``default_params`` start), so a refit of the
        B200 starts its nvfp4 keys at 0.582, not 0.60, and a key whose rows cannot move the compute fraction
        keeps that start."""
        eff = efficiency or self.efficiency
        share = self.datasheet.sustained_fp4_fraction
        if compute_dtype == "fp4" and share is not None and "fp4" not in eff.matmul_fraction_by_dtype:
            return float(share.value)
        return eff.matmul(compute_dtype)

    def same_device(self, other: HardwareProfile) -> bool:
        """Whether two profiles describe the same device: the same vendor, kind and datasheet figures
        (values, not the documents they cite), whatever the profiles are named. A renamed or user copy
        of a shipped profile is the same device; its efficiencies, price, calibration and third-party
        measurements (:data:`MEASURED_FIGURES`) do not make another one."""
        if other is self:
            return True

        def specification(profile: HardwareProfile) -> dict[str, object]:
            figures = profile.datasheet.figures()
            return {key: value for key, value in figures.items() if key not in MEASURED_FIGURES}

        return (self.vendor, self.device_kind, specification(self)) == (
            other.vendor,
            other.device_kind,
            specification(other),
        )

    @property
    def memory_bytes(self) -> int:
        """Device memory [bytes]."""
        return round(self.datasheet.memory_capacity_gib.value * 2**30)

    @property
    def memory_bandwidth_bytes_per_s(self) -> float:
        """Datasheet memory bandwidth [bytes/s]."""
        return self.datasheet.memory_bandwidth_tb_per_s.value * 1e12

    @property
    def compute_dtypes(self) -> list[str]:
        """Compute dtypes with a published peak."""
        return list(self.datasheet.peak_dense_tflop_per_s)

    @property
    def ridge_point_flop_per_byte(self) -> float:
        """bf16 (or best float) peak over bandwidth [FLOP/byte]: above it a kernel is compute bound."""
        dtype = next(d for d in ("bf16", "fp16", "fp32") if d in self.datasheet.peak_dense_tflop_per_s)
        return self.peak_flop_per_s(dtype) / self.memory_bandwidth_bytes_per_s


# ----------------------------------------------------------------------------------------------------
# Deployment
# ----------------------------------------------------------------------------------------------------


class Deployment(Spec):
    """How one model is spread over devices (Megatron-LM style; Shoeybi et al. 2019, Narayanan et al. 2021),
    and how serving engines split a mixture-of-experts model.

    One replica (one engine) uses ``tp x attention_dp x pp`` devices; ``replicas`` copies serve in
    parallel (data parallelism). Within a pipeline stage:

    - **Attention data parallelism** (``attention_dp`` ranks, each of ``tp`` devices): every rank holds
      its own requests' KV cache and runs attention, the dense MLP layers, the shared experts, the router,
      the embedding and the output head on its own batch, with those weights split ``tp`` ways within the
      rank and replicated across ranks. The routed experts of each MoE layer are shared by all
      ``tp x attention_dp`` devices of the stage.
    - **MoE tensor and expert parallelism**: the routed experts spread over ``moe_ep`` groups (each holds
      n_experts / moe_ep of them) and each expert is split ``moe_tp`` ways, with
      ``moe_tp x moe_ep = tp x attention_dp``.

    Defaults keep the older layout: ``ep`` (the older name of ``moe_ep``) expert groups within the TP group,
    each expert split ``tp / ep`` ways. How engines spell it (docs/parallelism.md):

    - SGLang ``--tp-size N --dp-size D --enable-dp-attention`` -> tp = N / D, attention_dp = D; experts
      TP over all N GPUs (moe_tp = N), or EP with ``--ep-size N`` (moe_ep = N)
      (https://docs.sglang.io/docs/advanced_features/dp_dpa_smg_guide.md);
    - TensorRT-LLM ``tensor_parallel_size: N`` with ``enable_attention_dp: true`` -> tp = 1,
      attention_dp = N; ``moe_tensor_parallel_size`` / ``moe_expert_parallel_size`` -> moe_tp / moe_ep
      (https://nvidia.github.io/TensorRT-LLM/features/parallel-strategy.html);
    - vLLM ``--data-parallel-size D --tensor-parallel-size T`` on a MoE model -> tp = T, attention_dp = D;
      the experts form a TP group of D x T (moe_tp = D x T), or EP with ``--enable-expert-parallel``
      (moe_ep = D x T) (https://docs.vllm.ai/en/latest/serving/data_parallel_deployment/).
    """

    tp: PositiveInt = Field(
        1, description="Tensor-parallel degree of attention (and of everything but the routed experts) [-]."
    )
    pp: PositiveInt = Field(1, description="Pipeline-parallel stages [-].")
    replicas: PositiveInt = Field(1, description="Data-parallel replicas (independent engines) [-].")
    ep: PositiveInt = Field(
        1, description="Expert-parallel degree [-]; the older name of moe_ep (experts within the TP group)."
    )
    attention_dp: PositiveInt = Field(
        1,
        description="Attention data-parallel ranks per replica [-]: each holds its own requests' KV cache; "
        "the MoE layers are shared by all tp x attention_dp devices.",
    )
    moe_tp: PositiveInt | None = Field(
        None,
        description="Tensor-parallel degree of each routed expert [-]; default tp x attention_dp / moe_ep.",
    )
    moe_ep: PositiveInt | None = Field(
        None, description="Expert-parallel degree of the routed experts [-]; default ep."
    )
    gpus_per_node: PositiveInt = Field(8, description="Devices sharing the intra-node link [-].")
    microbatches: PositiveInt | None = Field(
        None,
        description="Pipeline micro-batches of whole sequences per step [-]; default min(pp, batch) at "
        "inference, one sequence per micro-batch in training.",
    )

    @model_validator(mode="after")
    def _moe_split(self) -> Self:
        if self.moe_ep is not None and self.ep not in (1, self.moe_ep):
            raise ValueError(
                f"ep ({self.ep}) and moe_ep ({self.moe_ep}) disagree: ep is the older name of moe_ep; "
                "set only one"
            )
        gpus, ep = self.moe_gpus, self.moe_ep_size
        if self.moe_tp is None:
            if gpus % ep:
                name = "ep" if self.moe_ep is None else "moe_ep"  # the field the caller set
                if self.attention_dp == 1:
                    raise ValueError(
                        f"{name} ({ep}) must divide tp ({self.tp}): experts are spread over the TP group"
                    )
                raise ValueError(
                    f"{name} ({ep}) must divide tp x attention_dp ({self.tp} x {self.attention_dp} = "
                    f"{gpus}), the GPUs of the MoE layer"
                )
        elif self.moe_tp * ep != gpus:
            raise ValueError(
                f"moe_tp x moe_ep ({self.moe_tp} x {ep} = {self.moe_tp * ep}) must equal the GPUs of the "
                f"MoE layer, tp x attention_dp ({self.tp} x {self.attention_dp} = {gpus})"
            )
        return self

    @property
    def moe_gpus(self) -> int:
        """Devices one MoE layer spreads over, tp x attention_dp [-]."""
        return self.tp * self.attention_dp

    @property
    def moe_ep_size(self) -> int:
        """Expert-parallel degree in effect: ``moe_ep``, else ``ep`` [-]."""
        return self.moe_ep if self.moe_ep is not None else self.ep

    @property
    def moe_tp_size(self) -> int:
        """Tensor-parallel degree of each routed expert in effect: ``moe_tp``, else
        tp x attention_dp / moe_ep [-]."""
        return self.moe_tp if self.moe_tp is not None else self.moe_gpus // self.moe_ep_size

    @property
    def gpus_per_replica(self) -> int:
        """Devices one replica uses, tp x attention_dp x pp [-]."""
        return self.tp * self.attention_dp * self.pp

    @property
    def n_gpus(self) -> int:
        """Devices in the whole deployment [-]."""
        return self.gpus_per_replica * self.replicas

    def check(self, model: ModelProfile) -> None:
        """Raise a ValueError naming the field if ``model`` cannot be split this way."""
        tp = self.tp
        if self.pp > model.n_layers:
            raise ValueError(f"pp ({self.pp}) exceeds the model's n_layers ({model.n_layers})")
        if self.attention_dp > 1 and model.moe is None:
            raise ValueError(
                f"attention_dp ({self.attention_dp}) > 1 needs a mixture-of-experts model (its ranks share "
                f"the MoE layers); {model.name} is dense: use replicas"
            )
        if model.ssm is not None:
            inner = model.ssm.expand * model.d_model
            if inner % tp:
                raise ValueError(f"tp ({tp}) must divide the Mamba inner width ({inner})")
            return
        if model.mamba2 is not None and model.mamba2.n_heads % tp:
            raise ValueError(f"tp ({tp}) must divide mamba2.n_heads ({model.mamba2.n_heads}) of {model.name}")
        heads = model.n_heads or 0
        if heads % tp:
            raise ValueError(f"tp ({tp}) must divide n_heads ({heads}) of {model.name}")
        kv = model.kv_heads
        if model.mla is None and kv % tp and tp % kv:
            raise ValueError(
                f"tp ({tp}) and n_kv_heads ({kv}) of {model.name} must divide one another "
                "(KV heads are split, or replicated when tp > n_kv_heads)"
            )
        if model.d_ff and model.n_dense_mlp_layers and model.d_ff % tp:
            raise ValueError(f"tp ({tp}) must divide d_ff ({model.d_ff}) of {model.name}")
        ep, etp = self.moe_ep_size, self.moe_tp_size
        if ep > 1:
            name = "ep" if self.moe_ep is None else "moe_ep"
            if model.moe is None:
                raise ValueError(f"{name} ({ep}) > 1 needs a mixture-of-experts model; {model.name} is dense")
            if model.moe.n_experts % ep:
                raise ValueError(f"{name} ({ep}) must divide moe.n_experts ({model.moe.n_experts})")
        if model.moe is not None and model.moe.expert_d_ff % etp:
            if self.moe_tp is None and self.attention_dp > 1:  # a default the caller did not write
                group, d_ff, experts = tp * self.attention_dp, model.moe.expert_d_ff, model.moe.n_experts
                # a split the model takes: moe_tp dividing the experts' width, moe_ep their number; the
                # largest expert parallelism first (whole experts per GPU, the engines' usual choice)
                pairs = [(group // e, e) for e in range(group, 0, -1) if not group % e]
                fit = next(((t, e) for t, e in pairs if not d_ff % t and not experts % e), None)
                name = "ep" if self.moe_ep is None and self.ep > 1 else "moe_ep"
                fix = (
                    f"set moe_tp and moe_ep (their product tp x attention_dp = {group}), e.g. "
                    f"moe_tp={fit[0]}, moe_ep={fit[1]}"
                    if fit
                    else f"no moe_tp x moe_ep = {group} divides both expert_d_ff and n_experts ({experts}): "
                    f"choose an attention_dp with tp x attention_dp dividing {d_ff} x {experts}"
                )
                raise ValueError(
                    f"moe_tp, by default tp x attention_dp / {name} ({tp} x {self.attention_dp} / {ep} = "
                    f"{etp}), must divide moe.expert_d_ff ({d_ff}): {fix}"
                )
            what = "tp / ep" if self.moe_tp is None else "moe_tp"
            raise ValueError(f"{what} ({etp}) must divide moe.expert_d_ff ({model.moe.expert_d_ff})")


def tp_degrees(model: ModelProfile, up_to: int = 1024) -> list[int]:
    """Tensor-parallel degrees up to ``up_to`` that split ``model`` (:meth:`Deployment.check` with the
    other fields at their defaults) [-], ascending: the divisors of the heads that also split the KV heads,
    the dense MLP width and the experts' width (or, for a state-space model, its inner width)."""
    out = []
    for degree in range(1, up_to + 1):
        try:
            Deployment(tp=degree).check(model)
        except ValueError:
            continue
        out.append(degree)
    return out


# ----------------------------------------------------------------------------------------------------
# Workload
# ----------------------------------------------------------------------------------------------------


MAX_WORKLOAD_SIZE = 2**31 - 1
"""Largest batch size, prompt or output length a Workload accepts [-] (2,147,483,647). With the context
rule (:func:`check_context`) it keeps every token count far inside int64; byte counts that would still
leave the exact integer range are refused where they are computed."""


def _positive_int_array(name: str, value: Any, *, minimum: int = 1) -> Any:
    import numpy as np

    if isinstance(value, bool) or (isinstance(value, int) and not -(2**63) <= value < 2**63):
        raise CostmodelError(f"{name} must be a whole number in [{minimum}, {MAX_WORKLOAD_SIZE:,}]")
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ValueError(f"{name} must be a whole number (or an array of them), got {value!r}")
    if np.any(arr < minimum):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if np.any(arr > MAX_WORKLOAD_SIZE):
        raise CostmodelError(f"{name} must be <= {MAX_WORKLOAD_SIZE:,}, got {np.max(arr):.0f}")
    return arr.astype(np.int64) if arr.ndim else int(arr)


WORKLOAD_COMPONENTS: tuple[str, ...] = ("attention", "attention.o_proj", "mlp", "shared_experts")
"""Components whose weight format a :class:`Workload` may set apart from ``weight_dtype`` (the routed
experts have ``expert_dtype``; ``attention.o_proj``: the attention output projection alone)."""


def _component_dtypes(value: Any) -> tuple[tuple[str, str], ...] | None:
    """``Workload.component_dtypes`` as sorted (component, format) pairs (hashable: the operator graph
    remembers its weights per format), each checked; None or empty: none."""
    from costmodel.dtypes import get_dtype

    if not value:
        return None
    try:
        pairs = sorted(dict(value).items())
    except (TypeError, ValueError):
        raise ValueError(
            f"component_dtypes must map components to formats, e.g. {{'attention': 'bf16'}}, got {value!r}"
        ) from None
    for component, fmt in pairs:
        if component == "experts":
            raise ValueError("component_dtypes: give the routed experts' format as expert_dtype")
        if component not in WORKLOAD_COMPONENTS:
            raise ValueError(
                f"component_dtypes: unknown component {component!r}; one of {', '.join(WORKLOAD_COMPONENTS)}"
            )
        get_dtype(fmt)
    return tuple((str(c), str(f)) for c, f in pairs)


def check_context(model: ModelProfile, prompt_len: Any, output_len: Any) -> None:
    """The one context rule: each sequence's prompt + output tokens fit the model's ``max_context``.

    Used by ``estimate()``, ``size()``, the CLI's ``plan`` (on the mean lengths) and the dashboard, so a
    workload the model cannot run is refused everywhere, never computed. Arrays are checked elementwise.
    A state-space model (``ssm``) has no positional limit: its ``max_context`` is the training context,
    not a bound, and is not enforced.
    """
    import numpy as np

    if model.ssm is not None:
        return

    total = np.asarray(prompt_len, dtype=np.float64) + np.asarray(output_len, dtype=np.float64)
    if np.any(total > model.max_context):
        worst = float(np.max(total))
        raise CostmodelError(
            f"prompt_len + output_len = {worst:,.0f} tokens exceeds {model.name}'s context of "
            f"{model.max_context:,} tokens (max_context): shorten the prompt or the output"
        )


@dataclass(frozen=True)
class Workload:
    """What is asked of a deployment: ``batch_size`` concurrent sequences, each with ``prompt_len`` prompt
    tokens and ``output_len`` generated tokens, and the storage formats. The three sizes may be numpy
    arrays that broadcast together (a sweep is one call).

    Formats: ``weight_dtype`` of the matmul weights; ``activation_dtype`` the format the matmuls quantize
    their inputs to, which sets the tensor-core peak they run at
    (:func:`costmodel.dtypes.matmul_compute_dtype`: ``fp8`` -> the fp8 peak, ``nvfp4`` -> the fp4 peak,
    i.e. NVFP4 weights and activations, W4A4); ``expert_dtype`` / ``expert_activation_dtype`` the same
    for the routed experts of a MoE model where they differ (gpt-oss ships MXFP4 experts and bf16
    attention: ``weight_dtype="bf16"``, ``expert_dtype="mxfp4"``); None: as the rest.
    ``component_dtypes``: the weight format of some other components where a checkpoint stores them
    apart (:data:`WORKLOAD_COMPONENTS`; NVIDIA's NVFP4 Gemma-4-31B keeps attention in bf16:
    ``weight_dtype="nvfp4"``, ``component_dtypes={"attention": "bf16"}``); a component kept in a 16-bit
    format runs with inputs in its own format, a quantized one takes ``activation_dtype``'s
    (:func:`costmodel.memory.workload_formats` gives all of these for a published checkpoint)."""

    batch_size: Any = 1
    prompt_len: Any = 2048
    output_len: Any = 256
    weight_dtype: str = "bf16"
    activation_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    sparsity: Literal["none", "2:4"] = "none"
    expert_dtype: str | None = None
    expert_activation_dtype: str | None = None
    component_dtypes: Any = None

    @property
    def component_formats(self) -> dict[str, str]:
        """Component -> weight format, for the components stored apart from ``weight_dtype`` [-]."""
        return dict(self.component_dtypes or ())

    @property
    def experts_weight_dtype(self) -> str:
        """Format of the routed experts' weights [-]."""
        return self.expert_dtype or self.weight_dtype

    @property
    def experts_activation_dtype(self) -> str:
        """Format the routed experts' matmuls take their inputs in [-]."""
        return self.expert_activation_dtype or self.activation_dtype

    def __post_init__(self) -> None:
        from costmodel.dtypes import get_dtype

        for name in ("batch_size", "prompt_len", "output_len"):
            object.__setattr__(self, name, _positive_int_array(name, getattr(self, name)))
        formats = ("weight_dtype", "activation_dtype", "kv_dtype", "expert_dtype", "expert_activation_dtype")
        for name in formats:
            if getattr(self, name) is not None:  # the expert formats may be None (as the rest)
                get_dtype(getattr(self, name))
        if self.sparsity not in ("none", "2:4"):
            raise ValueError(f"sparsity must be 'none' or '2:4', got {self.sparsity!r}")
        object.__setattr__(self, "component_dtypes", _component_dtypes(self.component_dtypes))
        for name in ("activation_dtype", "expert_activation_dtype"):
            fmt = get_dtype(getattr(self, name) or "bf16")
            # 4-bit inputs exist only as the block-scaled fp4 formats of fp4 tensor cores (NVFP4, MXFP4)
            if fmt.bits < 8 and fmt.compute_dtype != "fp4":
                raise ValueError(
                    f"{name} must be 8 bits or wider, or an fp4 format (nvfp4, mxfp4), got {fmt.name!r}"
                )
