"""Independent references the tests compare costmodel against: transformers modules on the meta device."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import torch


def hf_language_config(config: dict[str, Any]) -> Any:
    """The transformers configuration of the language model a config.json describes.

    A config with a ``text_config`` gives that (transformers' ``get_text_config``); a ``model_type``
    transformers does not know (Kimi-K2's ``kimi_k2``) is built as the class its ``architectures`` names.
    """
    import transformers

    try:
        full = transformers.AutoConfig.for_model(**config)
    except ValueError:
        architecture = getattr(transformers, config["architectures"][0])
        return architecture.config_class(**config)
    return full.get_text_config()


@cache
def hf_meta_model(config_path: Path) -> torch.nn.Module:
    """The Hugging Face model for a config.json, built on the meta device (no weights, no network)."""
    import transformers

    config = hf_language_config(json.loads(config_path.read_text()))
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)


def hf_param_count(config_path: Path) -> int:
    """sum(p.numel()) over the parameters of the Hugging Face model (tied weights once)."""
    return sum(p.numel() for p in hf_meta_model(config_path).parameters())
