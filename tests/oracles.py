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


def gated_delta_rule_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gated delta rule in recurrent form (Yang et al. 2025, arXiv:2412.06464, Eq. 10), one token at
    a time, with its three state products written as matrix products so FlopCounterMode sees them.

    Shapes: q, k [B, T, H, d_k] (already one per value head); v [B, T, H, d_v]; g (log decay), beta
    [B, T, H]; state [B, H, d_k, d_v]. Queries are scaled by d_k^-1/2 as transformers does.
    """
    q = q / q.shape[-1] ** 0.5
    out = []
    for t in range(q.shape[1]):
        state = state * g[:, t].exp()[..., None, None]
        k_t = k[:, t].unsqueeze(-2)  # [B, H, 1, d_k]
        remembered = k_t @ state  # S^T k: [B, H, 1, d_v]
        delta = (v[:, t].unsqueeze(-2) - remembered) * beta[:, t][..., None, None]
        state = state + k_t.transpose(-1, -2) @ delta  # rank-1 update k delta^T
        out.append((q[:, t].unsqueeze(-2) @ state).squeeze(-2))  # read-out S^T q: [B, H, d_v]
    return torch.stack(out, dim=1), state
