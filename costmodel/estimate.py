"""The orchestration layer: one call from (model, hardware, workload) to the figures people read.

For now it covers sizing: parameters, memory and FLOPs for a serving workload, and whether it fits.
Time, throughput and cost arrive with the performance model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from costmodel.flops import forward_flop
from costmodel.memory import fit, kv_bytes_per_token
from costmodel.params import param_count
from costmodel.registry import load_hardware, load_model
from costmodel.specs import HardwareProfile, ModelProfile


@dataclass(frozen=True)
class SizingReport:
    """Sizes for serving ``batch_size`` sequences of ``prompt_len`` + ``output_len`` tokens."""

    model: str
    hardware: str
    n_gpus: int
    batch_size: int
    prompt_len: int
    output_len: int
    weight_dtype: str
    kv_dtype: str
    params_total: int
    params_active: int
    weight_bytes: int
    kv_bytes_per_token: int
    kv_cache_bytes: int
    activation_bytes: float
    required_bytes: float
    capacity_bytes: float
    fits: bool
    max_batch_size: int
    max_context_len: int
    prefill_flop: float
    decode_flop_per_token: float

    def to_dict(self) -> dict[str, object]:
        """Plain types only, for JSON."""
        return asdict(self)


def size(
    model: ModelProfile | str,
    hardware: HardwareProfile | str,
    *,
    batch_size: int,
    prompt_len: int,
    output_len: int,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    n_gpus: int = 1,
) -> SizingReport:
    """Memory and FLOPs of one serving workload on ``n_gpus`` devices.

    The KV cache is sized for the full ``prompt_len + output_len`` context. Decoding ``output_len``
    tokens one at a time attends to exactly the keys a causal pass over them would, so the decode FLOPs
    are one causal forward of ``output_len`` new tokens on top of ``prompt_len`` past ones.
    """
    for field, value in (("batch_size", batch_size), ("prompt_len", prompt_len), ("output_len", output_len)):
        if value < (0 if field == "output_len" else 1):
            raise ValueError(f"{field} must be a positive integer, got {value}")
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be a positive integer, got {n_gpus}")
    m, hw = load_model(model), load_hardware(hardware)
    context = prompt_len + output_len
    f = fit(
        m,
        hw,
        batch_size=batch_size,
        context_len=context,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        n_gpus=n_gpus,
    )
    p = param_count(m)
    prefill = forward_flop(m, batch_size=batch_size, new_tokens=prompt_len, logits="last").total
    decode = forward_flop(m, batch_size=batch_size, new_tokens=output_len, past_tokens=prompt_len).total
    per_token = float(decode) / (batch_size * output_len) if output_len else 0.0
    return SizingReport(
        model=m.name,
        hardware=hw.name,
        n_gpus=n_gpus,
        batch_size=batch_size,
        prompt_len=prompt_len,
        output_len=output_len,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        params_total=p.total,
        params_active=p.active,
        weight_bytes=f.weight_bytes,
        kv_bytes_per_token=kv_bytes_per_token(m, kv_dtype=kv_dtype),
        kv_cache_bytes=int(f.kv_cache_bytes),
        activation_bytes=float(f.activation_bytes),
        required_bytes=float(f.required_bytes),
        capacity_bytes=float(f.capacity_bytes),
        fits=bool(f.fits),
        max_batch_size=int(f.max_batch_size),
        max_context_len=int(f.max_context_len),
        prefill_flop=float(prefill),
        decode_flop_per_token=per_token,
    )
