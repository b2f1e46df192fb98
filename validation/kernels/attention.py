"""Attention through ``F.scaled_dot_product_attention``: causal prefill, and decode against a KV cache.

Shapes: B batch, H query heads, Hkv key/value heads, S tokens, P cached positions, D head width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def prefill(
    B: int, H: int, Hkv: int, S: int, D: int, dtype: torch.dtype, device: str
) -> Callable[[], Tensor]:
    """Causal self-attention over S new tokens (no cache)."""
    q = torch.randn(B, H, S, D, dtype=dtype, device=device)  # [B, H, S, D]
    k = torch.randn(B, Hkv, S, D, dtype=dtype, device=device)  # [B, Hkv, S, D]
    v = torch.randn(B, Hkv, S, D, dtype=dtype, device=device)
    return lambda: F.scaled_dot_product_attention(
        q, k, v, is_causal=True, enable_gqa=Hkv != H
    )  # [B, H, S, D]


def decode(B: int, H: int, Hkv: int, P: int, D: int, dtype: torch.dtype, device: str) -> Callable[[], Tensor]:
    """One new query per sequence against P cached keys and values plus its own (no mask needed)."""
    q = torch.randn(B, H, 1, D, dtype=dtype, device=device)  # [B, H, 1, D]
    k = torch.randn(B, Hkv, P + 1, D, dtype=dtype, device=device)  # [B, Hkv, P + 1, D]
    v = torch.randn(B, Hkv, P + 1, D, dtype=dtype, device=device)
    return lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=Hkv != H)  # [B, H, 1, D]
