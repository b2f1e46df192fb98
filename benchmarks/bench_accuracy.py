"""Accuracy against published measurements: the table of docs/performance.md and the quality-fit errors
of docs/compression.md, recomputed.

Run: ``python benchmarks/bench_accuracy.py``. Prints each published figure beside costmodel's prediction
with the profiles as shipped (the A100 and H100 time their steps with their fitted kernel models) and,
beside it, with the roofline and the profiles' default efficiencies (``Efficiency(time_model="roofline")``).
These are published numbers, not ours;
no unit test pins them (tests assert physics; accuracy is reported here and in the docs). Sources:

- gpt-fast README, "Benchmarks" (https://github.com/pytorch-labs/gpt-fast): Llama-2-7B on one A100-80GB
  (power-limited to 330 W), batch 1, 5-token prompt, tokens/s including prefill: bf16 104.9, int8 155.58,
  int4 (g=32) 196.80.
- torchao quantization README (https://github.com/pytorch/ao, torchao/quantization/README.md):
  Llama-3.1-8B bf16 on an "NVIDIA-H100", batch 1: 126.90 tokens/s (variant not stated; compared with
  h100-sxm).
- TensorRT-LLM v0.5 performance docs (https://github.com/NVIDIA/TensorRT-LLM, docs/source/performance.md,
  "Low Latency"): LLaMA-7B first-token latency at batch 1: A100 fp16 16 ms (128 tokens) / 133 ms (2048);
  H100 fp8 7 ms / 36 ms.
- stas00/ml-engineering, "Maximum Achievable Matmul FLOPS" table
  (https://github.com/stas00/ml-engineering/tree/master/compute/accelerator): H100 SXM bf16 794.5 TFLOPS.
- Dubey et al. 2024, "The Llama 3 Herd of Models" (https://arxiv.org/abs/2407.21783) Table 4: Llama 3
  405B on 16,384 H100s, TP 8, PP 16, DP 128, 8,192-token sequences, 16M tokens per batch (16 sequences
  per data-parallel group): 400 TFLOPS per GPU. §3.3.2 describes an interleaved pipeline schedule but we
  found no number of virtual stages in it, so both ends are printed: v = 1 (no interleaving) and v = 7
  (about one layer per chunk: 126 layers over 16 stages).
"""

from __future__ import annotations

import numpy as np

import costmodel
from costmodel import compression as c
from costmodel.estimate import estimate, train
from costmodel.specs import Deployment, Efficiency, Workload

H100_BF16_DENSE_TFLOPS = 989.4  # the h100-sxm profile's datasheet peak, as Table 4's MFU uses it


def _roofline(hardware: str) -> Efficiency:
    return costmodel.load_hardware(hardware).efficiency.model_copy(update={"time_model": "roofline"})


def rows(roofline: bool = False) -> list[tuple[str, str, float, float]]:
    """(measurement, unit, published, costmodel); ``roofline``: with the roofline and the profiles'
    default efficiencies instead of the profiles' time model."""

    def eff(hardware: str) -> Efficiency | None:
        return _roofline(hardware) if roofline else None

    out = []
    for dtype, measured in (("bf16", 104.9), ("int8", 155.58), ("int4", 196.80)):
        w = Workload(1, 5, 200, weight_dtype=dtype)
        r = estimate("llama-2-7b", "a100-80gb", w, efficiency=eff("a100-80gb"))
        out.append(
            (
                f"Llama-2-7B decode, A100-80GB, batch 1, {dtype} (gpt-fast)",
                "tok/s",
                measured,
                200 / float(r.e2e_s),
            )
        )
    # 3.1-8B has Llama-3-8B's shapes
    r = estimate("llama-3-8b", "h100-sxm", Workload(1, 5, 200), efficiency=eff("h100-sxm"))
    out.append(("Llama-3.1-8B decode, H100, batch 1, bf16 (torchao)", "tok/s", 126.90, 200 / float(r.e2e_s)))
    for hw, label, dtype, prompt, measured in (
        ("a100-80gb", "A100-80GB", "fp16", 2048, 133.0),
        ("a100-80gb", "A100-80GB", "fp16", 128, 16.0),
        ("h100-sxm", "H100 SXM", "fp8", 2048, 36.0),
        ("h100-sxm", "H100 SXM", "fp8", 128, 7.0),
    ):
        w = Workload(1, prompt, 1, weight_dtype=dtype, activation_dtype=dtype, kv_dtype=dtype)
        ttft_ms = float(estimate("llama-2-7b", hw, w, efficiency=eff(hw)).ttft_s) * 1e3
        out.append(
            (f"LLaMA-7B TTFT, {label}, {dtype}, {prompt} tokens (TensorRT-LLM v0.5)", "ms", measured, ttft_ms)
        )
    h100 = costmodel.load_hardware("h100-sxm")
    if roofline:
        gemm = h100.peak_flop_per_s("bf16") * h100.efficiency.matmul_fraction / 1e12
    else:  # the shipped GEMM kernel model with H100's calibrated overlay, one 16384^3 bf16 call
        from costmodel.kernels import gemm as gemm_model
        from costmodel.kernels import params_for

        size = 16384.0
        t = float(gemm_model.time_s(h100, params_for(h100, gemm_model, "bf16"), m=size, n=size, k=size))
        gemm = 2.0 * size**3 / t / 1e12
    out.append(("Large bf16 GEMM, H100 SXM (stas00/ml-engineering MAMF table)", "TFLOPS", 794.5, gemm))
    for v in (1, 7):
        r = train("llama-3.1-405b", "h100-sxm", global_batch_size=2048, seq_len=8192,
                  deployment=Deployment(tp=8, pp=16, replicas=128), virtual_stages=v,
                  efficiency=eff("h100-sxm"))  # fmt: skip
        name = f"Llama 3 405B pre-training, 16,384 H100, TP8 PP16 DP128, v = {v} (Llama 3 paper, Table 4)"
        out.append((name, "TFLOPS/GPU", 400.0, float(r.mfu) * H100_BF16_DENSE_TFLOPS))
    return out


def quality_fit_rows() -> list[tuple[str, str, float, float]]:
    """(method, model, RMS of ln(predicted / published loss increase) in sample, held out)."""
    out = []
    for method, model in (("rtn", "power"), ("rtn", "exponential"), ("gptq", "power"), ("awq", "power")):
        errs = []
        for held_out in (False, True):
            pts = c.fit_points(method, held_out=held_out)
            pred = c.quality_penalty([p.compression_ratio for p in pts], method=method, model=model)
            y = np.array([p.loss_increase for p in pts])
            errs.append(float(np.sqrt(np.mean(np.log(pred.loss_increase / y) ** 2))))
        out.append((method, model, errs[0], errs[1]))
    return out


def main() -> None:
    print("| measurement (source) | published | costmodel | error | roofline | error |")
    print("|---|---|---|---|---|---|")
    for (name, unit, published, predicted), (*_, plain) in zip(rows(), rows(roofline=True), strict=True):
        print(
            f"| {name} | {published:g} {unit} | {predicted:.1f} {unit} | {predicted / published - 1:+.0%} "
            f"| {plain:.1f} {unit} | {plain / published - 1:+.0%} |"
        )
    print()
    print("Quality fits (docs/compression.md): RMS of ln(predicted / published loss increase)")
    print("| method | model | in sample | held out |")
    print("|---|---|---|---|")
    for method, model, fit, held in quality_fit_rows():
        print(f"| {method} | {model} | {fit:.2f} (x{np.exp(fit):.2f}) | {held:.2f} (x{np.exp(held):.2f}) |")


if __name__ == "__main__":
    main()
