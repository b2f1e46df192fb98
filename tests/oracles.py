"""Independent references the tests compare costmodel against: transformers modules on the meta device."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch


@cache
def hf_meta_model(config_path: Path) -> torch.nn.Module:
    """The Hugging Face model for a config.json, built on the meta device (no weights, no network)."""
    import transformers

    config = transformers.AutoConfig.for_model(**json.loads(config_path.read_text()))
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)


def hf_param_count(config_path: Path) -> int:
    """sum(p.numel()) over the parameters of the Hugging Face model (tied weights once)."""
    return sum(p.numel() for p in hf_meta_model(config_path).parameters())
