"""The dashboard's scenario: every input a view depends on, as one frozen, validated record.

Each field is one widget (sidebar or page) whose Streamlit key is the field name and whose value is
bound to the URL query parameter of the same name (``bind="query-params"``): a link reproduces the view,
and a parameter left at its default is not written into the URL. The same record is downloaded and
uploaded as JSON; that file also carries an uploaded Hugging Face ``config.json`` (``hf_config``), which
is too large for a URL.

Plain Python and costmodel only (no streamlit), so it is importable and testable on its own.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import costmodel as cm
from costmodel.errors import CostmodelError, UnknownNameError, describe_validation_error

DRAFT_RECIPES: tuple[str, ...] = (
    "early-exit:4",
    "early-exit:8",
    "early-exit:16",
    "quantized:int4",
    "quantized:int8",
    "quantized:fp8",
    "ngram",
)
"""Draft choices besides a built-in model (see :data:`costmodel.speculative.DRAFT_KINDS`)."""

MODEL_SOURCES = ("built-in", "config.json")
MAX_USD_PER_HOUR = 10_000.0
"""The highest price per GPU-hour the dashboard accepts [USD/h] (list prices are below $10/h)."""


def draft_options() -> list[str]:
    """Everything the draft selector offers: recipes derived from the target, then built-in models."""
    return [*DRAFT_RECIPES, *cm.list_models()]


GROUP_SIZES: tuple[int, ...] = (32, 64, 128)
"""Group sizes offered for the formats whose group size is a parameter (``int4_g32``, ...)."""


ATTENTION_EXCEPT_O_PROJ = "bf16_except_o_proj"
"""The attention weight format that keeps the attention projections in bf16 but the output projection
in the weights' format, as NVIDIA's NVFP4 DeepSeek-V3 / -R1 / -V3.2 checkpoints store them
(:func:`costmodel.memory.workload_formats`: ``{"attention": "bf16", "attention.o_proj": "nvfp4"}``)."""


def attention_dtypes() -> list[str]:
    """The attention weight formats: '' (as the weights), each weight format, and
    :data:`ATTENTION_EXCEPT_O_PROJ`."""
    return ["", *weight_dtypes(), ATTENTION_EXCEPT_O_PROJ]


def attention_label(attention_dtype: str) -> str:
    """How the dashboard's captions name an attention weight format."""
    return {"": "as the weights", ATTENTION_EXCEPT_O_PROJ: "bf16, o_proj as the weights"}.get(
        attention_dtype, attention_dtype
    )


def attention_component_dtypes(attention_dtype: str, weight_dtype: str) -> dict[str, str] | None:
    """:class:`costmodel.Workload`'s ``component_dtypes`` for an attention weight format (None: none)."""
    if not attention_dtype:
        return None
    if attention_dtype == ATTENTION_EXCEPT_O_PROJ:
        return {"attention": "bf16", "attention.o_proj": weight_dtype}
    return {"attention": attention_dtype}


def weight_dtypes() -> list[str]:
    """Weight formats: the table's, then each variable-group format at the group sizes of
    :data:`GROUP_SIZES` other than its default (``int4_sym_g32``: Kimi-K2.5's experts as shipped)."""
    names = list(cm.DTYPES)
    for name, d in cm.DTYPES.items():
        if d.variable_group:
            names += [f"{name}_g{g}" for g in GROUP_SIZES if g != d.group_size]
    return names


def activation_dtypes() -> list[str]:
    """Compute dtypes a Workload accepts for activations: 8 bits or wider, or an fp4 format of fp4 tensor
    cores (``nvfp4``: NVFP4 W4A4)."""
    return [name for name, d in cm.DTYPES.items() if d.bits >= 8 or d.compute_dtype == "fp4"]


class Scenario(BaseModel):
    """What the dashboard shows: model, devices, deployment, workload and each page's own options."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- shared by every page (sidebar) ---
    model: str = Field("llama-3-8b", description="Built-in model name.")
    model_source: Literal["built-in", "config.json"] = Field(
        "built-in", description="Use the built-in model, or the uploaded Hugging Face config.json."
    )
    hf_config: dict[str, Any] | None = Field(
        None, description="Parsed Hugging Face config.json (JSON download/upload only; not in the URL)."
    )
    hardware: list[str] = Field(
        default_factory=lambda: ["h100-sxm"],
        description="Hardware profiles to compare; the first is the one single-device charts use.",
    )
    tp: int = Field(1, ge=1, le=1024, description="Tensor-parallel degree [-].")
    pp: int = Field(1, ge=1, le=1024, description="Pipeline-parallel stages [-].")
    replicas: int = Field(
        1,
        ge=1,
        le=65536,
        description="Copies of the model serving in parallel; GPUs = tp x attention_dp x pp x replicas [-].",
    )
    attention_dp: int = Field(
        1,
        ge=1,
        le=1024,
        description="Attention data-parallel ranks of a replica (MoE models; costmodel.Deployment) [-].",
    )
    moe_tp: int = Field(
        0,
        ge=0,
        le=1024,
        description="Tensor-parallel degree of each routed expert [-]; 0: tp x attention_dp / moe_ep.",
    )
    moe_ep: int = Field(1, ge=1, le=1024, description="Expert-parallel degree of the routed experts [-].")
    weight_dtype: str = Field("bf16", description="Weight storage format.")
    activation_dtype: str = Field("bf16", description="Activation / compute format.")
    kv_dtype: str = Field("bf16", description="KV-cache storage format.")
    expert_dtype: str = Field(
        "", description="Routed experts' weight format (MoE models; gpt-oss ships mxfp4); '': the weights'."
    )
    expert_activation_dtype: str = Field(
        "", description="Format the routed experts' matmuls take their inputs in; '': the activations'."
    )
    attention_dtype: str = Field(
        "",
        description="Attention projections' weight format where a checkpoint keeps them apart (NVIDIA's "
        f"NVFP4 Gemma-4-31B, GLM-5, Kimi-K2.5: bf16; its NVFP4 DeepSeek: {ATTENTION_EXCEPT_O_PROJ}, bf16 "
        "with the output projection in the weights' format); '': the weights'.",
    )
    batch_size: int = Field(8, ge=1, le=1_000_000, description="Concurrent sequences [-].")
    prompt_len: int = Field(2048, ge=1, le=10_000_000, description="Prompt tokens per sequence [tokens].")
    output_len: int = Field(256, ge=1, le=10_000_000, description="Generated tokens per sequence [tokens].")
    usd_per_hour: float = Field(
        0.0,
        ge=0.0,
        le=MAX_USD_PER_HOUR,
        description="Your price per GPU-hour of the first device [USD/h]; 0: its profile's on-demand price.",
    )

    # --- Memory page: training ---
    zero_stage: Literal[0, 1, 2, 3] = Field(1, description="ZeRO stage across the deployment's GPUs.")
    recompute: Literal["none", "selective", "full"] = Field("none", description="Activation recomputation.")
    lora_rank: int = Field(16, ge=1, le=4096, description="LoRA / QLoRA adapter rank [-].")
    train_micro_batch: int = Field(1, ge=1, le=4096, description="Training micro-batch per GPU [sequences].")
    train_seq_len: int = Field(2048, ge=1, le=1_000_000, description="Training sequence length [tokens].")

    # --- Performance page ---
    compare_all: bool = Field(True, description="Compare every built-in device, not just the selected ones.")

    # --- Speculative decoding page ---
    draft: str = Field("early-exit:8", description="Draft model or recipe.")
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="Acceptance rate of the draft [-].")
    k_max: int = Field(8, ge=1, le=32, description="Longest draft considered [tokens].")
    draft_cost_ratio: float | None = Field(
        None, ge=0.0, le=10.0, description="c = T_draft / T_target for the heatmap [-]; None: from the draft."
    )

    @model_validator(mode="before")
    @classmethod
    def _gpus_to_replicas(cls, data: Any) -> Any:
        """Scenario files of earlier versions give the GPU count (``n_gpus``): it becomes ``replicas``."""
        if isinstance(data, dict) and "n_gpus" in data and "replicas" not in data:
            data = dict(data)
            gpus = data.pop("n_gpus")
            try:
                per_replica = int(data.get("tp", 1)) * int(data.get("pp", 1))
            except (TypeError, ValueError, OverflowError):
                per_replica = 1  # a bad tp or pp is reported by its own field
            if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1 or gpus % per_replica:
                raise ValueError(
                    f"n_gpus ({gpus!r}) must be a whole number of replicas of tp x pp = {per_replica} GPUs; "
                    "give replicas instead"
                )
            data["replicas"] = gpus // per_replica
        return data

    @field_validator(
        "tp", "pp", "replicas", "attention_dp", "moe_tp", "moe_ep", "batch_size", "prompt_len", "output_len",
        "lora_rank", "train_micro_batch", "train_seq_len", "k_max", "zero_stage", mode="before",
    )  # fmt: skip
    @classmethod
    def _not_a_flag(cls, v: Any) -> Any:
        if isinstance(v, bool):  # pydantic would read true as 1
            raise ValueError(f"must be a whole number, not {str(v).lower()}")
        return v

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in cm.list_models():
            raise UnknownNameError("model", v, cm.list_models())
        return v

    @field_validator("hardware")
    @classmethod
    def _known_hardware(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("choose at least one hardware profile")
        for name in v:
            if name not in cm.list_hardware():
                raise UnknownNameError("hardware", name, cm.list_hardware())
        return list(dict.fromkeys(v))  # keep the order, drop repeats

    @field_validator("weight_dtype")
    @classmethod
    def _known_weight_dtype(cls, v: str) -> str:
        if v not in weight_dtypes():
            raise UnknownNameError("dtype", v, weight_dtypes())
        return v

    @field_validator("kv_dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        if v not in cm.DTYPES:
            raise UnknownNameError("dtype", v, cm.DTYPES)
        return v

    @field_validator("activation_dtype")
    @classmethod
    def _known_activation_dtype(cls, v: str) -> str:
        if v not in activation_dtypes():
            raise UnknownNameError("activation dtype", v, activation_dtypes())
        return v

    @field_validator("expert_dtype")
    @classmethod
    def _known_expert_dtype(cls, v: str) -> str:
        if v and v not in weight_dtypes():
            raise UnknownNameError("expert dtype", v, weight_dtypes())
        return v

    @field_validator("attention_dtype")
    @classmethod
    def _known_attention_dtype(cls, v: str) -> str:
        if v not in attention_dtypes():
            raise UnknownNameError("attention dtype", v, attention_dtypes()[1:])
        return v

    @property
    def component_dtypes(self) -> dict[str, str] | None:
        """The components stored apart from the weights, as :class:`costmodel.Workload`'s
        ``component_dtypes`` (None: none)."""
        return attention_component_dtypes(self.attention_dtype, self.weight_dtype)

    @field_validator("expert_activation_dtype")
    @classmethod
    def _known_expert_activation_dtype(cls, v: str) -> str:
        if v and v not in activation_dtypes():
            raise UnknownNameError("expert activation dtype", v, activation_dtypes())
        return v

    @property
    def expert_formats(self) -> dict[str, str | None]:
        """The routed experts' formats as :class:`costmodel.Workload` keywords (None: as the rest)."""
        return {
            "expert_dtype": self.expert_dtype or None,
            "expert_activation_dtype": self.expert_activation_dtype or None,
        }

    @field_validator("draft")
    @classmethod
    def _known_draft(cls, v: str) -> str:
        if v not in draft_options():
            raise UnknownNameError("draft", v, draft_options())
        return v

    # --- what costmodel needs ---

    def priced(self, hardware: str) -> str:
        """The key a page loads ``hardware`` by: ``name@price`` where this scenario's own price replaces
        the profile's (the first device), else the plain name. Cached computations keyed by it are
        recomputed when the price changes."""
        if self.usd_per_hour > 0 and hardware == self.hardware[0]:
            return f"{hardware}@{self.usd_per_hour!r}"
        return hardware

    @property
    def gpus_per_replica(self) -> int:
        """GPUs of one replica: tp x attention_dp x pp [-]."""
        return self.tp * self.attention_dp * self.pp

    @property
    def n_gpus(self) -> int:
        """GPUs in the deployment: tp x attention_dp x pp per replica, times the replicas [-]."""
        return self.gpus_per_replica * self.replicas

    def deployment(self) -> cm.Deployment:
        """``replicas`` copies of one replica on tp x attention_dp x pp GPUs. Raises
        :class:`~costmodel.errors.CostmodelError` naming the fields when the MoE split is not one
        (moe_tp x moe_ep must equal tp x attention_dp)."""
        return cm.Deployment(
            tp=self.tp,
            pp=self.pp,
            replicas=self.replicas,
            attention_dp=self.attention_dp,
            moe_tp=self.moe_tp or None,
            moe_ep=self.moe_ep if self.moe_ep > 1 else None,
        )

    def workload(self, **changes: Any) -> cm.Workload:
        """The serving workload, every format of the sidebar in it (the attention format too);
        ``changes`` replace batch_size, prompt_len or output_len (arrays too)."""
        sizes = {"batch_size": self.batch_size, "prompt_len": self.prompt_len, "output_len": self.output_len}
        return cm.Workload(
            **(sizes | changes),
            weight_dtype=self.weight_dtype,
            activation_dtype=self.activation_dtype,
            kv_dtype=self.kv_dtype,
            **self.expert_formats,
            component_dtypes=self.component_dtypes,
        )

    # --- files ---

    def to_json(self) -> str:
        """The whole scenario, indented, for download."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Scenario:
        """A scenario from a downloaded file; fields it lacks take their defaults.

        Raises :class:`~costmodel.errors.CostmodelError` naming the field on any problem.
        """
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            where = f" at line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
            raise CostmodelError(f"the scenario file is not valid JSON{where}") from None
        if not isinstance(data, dict):
            raise CostmodelError(f"the scenario file must hold a JSON object, not {type(data).__name__}")
        return cls.from_dict(data, "scenario file")

    @classmethod
    def from_dict(cls, data: dict[str, Any], what: str = "scenario") -> Scenario:
        """Validate ``data`` (missing fields take defaults) with a readable error naming each field."""
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise CostmodelError(describe_validation_error(e, what)) from None


DEFAULT = Scenario()
FIELDS: tuple[str, ...] = tuple(Scenario.model_fields)
WIDGET_FIELDS: tuple[str, ...] = tuple(f for f in FIELDS if f != "hf_config")
"""Fields that are widgets (bound to the URL); ``hf_config`` lives in session state only."""
MOE_FIELDS: tuple[str, ...] = ("attention_dp", "moe_tp", "moe_ep", "expert_dtype", "expert_activation_dtype")
"""Fields whose widgets the sidebar shows for a mixture-of-experts model only: a dense model takes their
defaults, whatever the URL or an earlier MoE model left in them."""
