"""A timed speculative decoding loop on the reference decoder, against plain decoding.

The target is :class:`validation.kernels.decoder.Decoder` built from a ``ModelProfile`` at random init;
the draft is an early exit of the same network (its first ``draft_layers`` layers, then the shared norm
and head; seed 001's "early exit" draft). Both keep KV caches and roll them back after a rejection.
Sampling follows Leviathan et al. 2023, Algorithm 1 (``temperature > 0``) or greedy matching
(``temperature == 0``, where the output must equal plain greedy decoding token for token).

The report compares the measured speedup with (a) the analytic speedup from the measured acceptance rate
and the measured step times, T_draft / T_target and T_verify / T_target
(:func:`costmodel.speculative.speedup`), so the error isolates the formula, and, given a hardware
profile, (b) the same formula with the step times predicted by the roofline
(:func:`costmodel.estimate.step_time_s` for the target, the early exit as a model of ``draft_layers``
layers, and the verification pass of k + 1 tokens) and the measured acceptance rate, so the error adds
the time model's. Run it with ``python -m validation.speculative_loop [--device cuda --model llama-3-8b
--dtype bf16 --hardware PROFILE --out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from costmodel.estimate import step_time_s
from costmodel.registry import load_hardware
from costmodel.specs import HardwareProfile, ModelProfile, Workload
from costmodel.speculative import speedup
from validation.kernels.decoder import Decoder, LayerCache
from validation.measure import environment, prefer_flash_attention
from validation.run import read_records
from validation.suite import SMALL, TORCH_DTYPES, Point, model_of  # SMALL: runs in seconds on a CPU


def _truncate(cache: list[LayerCache], length: int) -> list[LayerCache]:
    """Keep the first ``length`` cached positions of every layer (K/V: [B, H, p, d])."""
    return [LayerCache(c.k, c.v, length=min(length, c.length)) for c in cache]


def _probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(torch.float32)
    return torch.softmax(logits.float() / temperature, dim=-1)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclass
class LoopReport:
    """One comparison of speculative and plain decoding; times per generated token [s]."""

    device: str
    model: str
    draft_layers: int
    k: int
    temperature: float
    new_tokens: int
    plain_s_per_token: float
    speculative_s_per_token: float
    measured_speedup: float
    acceptance_rate: float
    tokens_per_verification: float
    target_step_s: float
    draft_step_s: float
    verify_s: float
    predicted_speedup: float
    rel_error: float
    identical_to_plain: bool | None
    # (b), with a hardware profile: the roofline's step times [s] and the speedup they give
    hardware_profile: str | None = None
    roofline_target_step_s: float | None = None
    roofline_draft_step_s: float | None = None
    roofline_verify_s: float | None = None
    roofline_speedup: float | None = None
    roofline_rel_error: float | None = None


def build_target(model: ModelProfile, device: str, dtype: torch.dtype) -> Decoder:
    """The reference decoder at random init, built in place on ``device`` in ``dtype`` (no float32 copy
    of a large model on the host)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return Decoder(model).eval()
    finally:
        torch.set_default_dtype(previous)


@torch.no_grad()
def run(
    model: ModelProfile = SMALL,
    *,
    draft_layers: int = 2,
    k: int = 4,
    prompt_len: int = 32,
    new_tokens: int = 64,
    temperature: float = 0.0,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    hardware: HardwareProfile | None = None,
    target: Decoder | None = None,
    warmup: bool = True,
) -> LoopReport:
    """Generate ``new_tokens`` plainly and speculatively from the same prompt; time both (and, given
    ``hardware``, predict the step times with the roofline). ``target``: the network, if already built
    (by :func:`build_target`). ``warmup``: first run both loops briefly, untimed, so that the timed
    steps do not include first-call costs (kernel selection, allocator growth)."""
    torch.manual_seed(seed)
    if target is None:
        target = build_target(model, device, dtype)
    if warmup:
        short = min(new_tokens, 2 * k + 2)
        run(model, draft_layers=draft_layers, k=k, prompt_len=prompt_len, new_tokens=short,
            temperature=temperature, device=device, dtype=dtype, seed=seed, target=target,
            warmup=False)  # fmt: skip
        torch.manual_seed(seed)
    prompt = torch.randint(0, model.vocab_size, (1, prompt_len), device=device)  # [1, P]
    gen = torch.Generator(device=device).manual_seed(seed + 1)

    def sample(p: torch.Tensor) -> torch.Tensor:  # p: [V] -> [1, 1]
        if temperature == 0:
            return p.argmax().view(1, 1)
        return torch.multinomial(p, 1, generator=gen).view(1, 1)

    # plain decoding, timed step by step (the last step time is T_target at the end's context)
    cache = target.empty_cache(1, 0, device=device, dtype=dtype)
    logits, cache = target(prompt, cache)
    plain = [sample(_probs(logits[0, -1], temperature))]
    step_times = []
    _sync(device)
    start = time.perf_counter()
    for _ in range(new_tokens - 1):
        t = time.perf_counter()
        logits, cache = target(plain[-1], cache)
        plain.append(sample(_probs(logits[0, -1], temperature)))
        _sync(device)
        step_times.append(time.perf_counter() - t)
    plain_s = (time.perf_counter() - start) / max(new_tokens - 1, 1)

    # speculative decoding
    t_cache = target.empty_cache(1, 0, device=device, dtype=dtype)
    d_cache = target.empty_cache(1, 0, device=device, dtype=dtype)[:draft_layers]
    logits, t_cache = target(prompt, t_cache)
    _, d_cache = target(prompt, d_cache, n_layers=draft_layers)
    seq = [sample(_probs(logits[0, -1], temperature))]  # generated tokens, [1, 1] each
    draft_times, verify_times, tested, accepted, rounds = [], [], 0, 0, 0
    _sync(device)
    start = time.perf_counter()
    while len(seq) < new_tokens:
        base = prompt_len + len(seq) - 1  # cached positions both models must keep
        t_cache, d_cache = _truncate(t_cache, base), _truncate(d_cache, base)
        drafts, q_probs = [], []
        t = time.perf_counter()
        feed = seq[-1]
        for _ in range(k):
            logits, d_cache = target(feed, d_cache, n_layers=draft_layers)
            q = _probs(logits[0, -1], temperature)
            feed = sample(q)
            drafts.append(feed)
            q_probs.append(q)
        _sync(device)
        draft_times.append((time.perf_counter() - t) / k)
        t = time.perf_counter()
        logits, t_cache = target(torch.cat([seq[-1], *drafts], dim=1), t_cache)  # [1, k + 1, V]
        _sync(device)
        verify_times.append(time.perf_counter() - t)
        rounds += 1
        for i in range(k):
            p, q, x = _probs(logits[0, i], temperature), q_probs[i], int(drafts[i])
            tested += 1
            ratio = 1.0 if q[x] == 0 else min(1.0, float(p[x] / q[x]))
            if temperature == 0:
                ok = bool(p[x] == 1)
            else:
                ok = float(torch.rand((), generator=gen, device=device)) < ratio
            if not ok:
                residual = torch.clamp(p - q, min=0)
                seq.append(sample(residual / residual.sum() if residual.sum() > 0 else p))
                break
            accepted += 1
            seq.append(drafts[i])
            if len(seq) == new_tokens:
                break
        else:
            seq.append(sample(_probs(logits[0, k], temperature)))  # bonus token
    _sync(device)
    spec_s = (time.perf_counter() - start) / (len(seq) - 1)

    alpha = accepted / max(tested, 1)
    t_target = sorted(step_times)[len(step_times) // 2]
    t_draft = sorted(draft_times)[len(draft_times) // 2]
    t_verify = sorted(verify_times)[len(verify_times) // 2]
    predicted = float(speedup(min(alpha, 1.0), k, t_draft / t_target, t_verify / t_target))
    measured = plain_s / spec_s
    same = torch.equal(torch.cat(plain[:new_tokens], 1), torch.cat(seq[:new_tokens], 1))
    identical = bool(same) if temperature == 0 else None
    roofline: dict[str, float | str | None] = {}
    if hardware is not None:
        roofline = _roofline(model, hardware, dtype, draft_layers, k, prompt_len, new_tokens, alpha)
        roofline["roofline_rel_error"] = (float(roofline["roofline_speedup"]) - measured) / measured  # type: ignore[arg-type]
    return LoopReport(
        device=device,
        model=model.name,
        draft_layers=draft_layers,
        k=k,
        temperature=temperature,
        new_tokens=new_tokens,
        plain_s_per_token=plain_s,
        speculative_s_per_token=spec_s,
        measured_speedup=measured,
        acceptance_rate=alpha,
        tokens_per_verification=(len(seq) - 1) / rounds,
        target_step_s=t_target,
        draft_step_s=t_draft,
        verify_s=t_verify,
        predicted_speedup=predicted,
        rel_error=(predicted - measured) / measured,
        identical_to_plain=identical,
        **roofline,  # type: ignore[arg-type]
    )


def _roofline(
    model: ModelProfile,
    hardware: HardwareProfile,
    dtype: torch.dtype,
    draft_layers: int,
    k: int,
    prompt_len: int,
    new_tokens: int,
    alpha: float,
) -> dict[str, float | str | None]:
    """Step times predicted at the middle of the generation, and the speedup they give with ``alpha``."""
    name = next(n for n, t in TORCH_DTYPES.items() if t == dtype)
    workload = Workload(weight_dtype=name, activation_dtype=name, kv_dtype=name)
    past = prompt_len + new_tokens // 2
    draft = model.model_copy(update={"n_layers": draft_layers})  # the early exit: same embedding and head
    kw = dict(batch_size=1, past_tokens=past, logits="all")
    t_target = float(step_time_s(model, hardware, workload, new_tokens=1, **kw))  # type: ignore[arg-type]
    t_draft = float(step_time_s(draft, hardware, workload, new_tokens=1, **kw))  # type: ignore[arg-type]
    t_verify = float(step_time_s(model, hardware, workload, new_tokens=k + 1, **kw))  # type: ignore[arg-type]
    return {
        "hardware_profile": hardware.name,
        "roofline_target_step_s": t_target,
        "roofline_draft_step_s": t_draft,
        "roofline_verify_s": t_verify,
        "roofline_speedup": float(speedup(min(alpha, 1.0), k, t_draft / t_target, t_verify / t_target)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=SMALL.name, help="a built-in model or llama-small (default)")
    parser.add_argument("--dtype", choices=sorted(TORCH_DTYPES), help="default: fp32 on a CPU, bf16 on CUDA")
    parser.add_argument("--hardware", help="profile name or YAML path: adds the roofline's prediction")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--draft-layers", type=int, default=2)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, nargs="+", default=[0.0])
    parser.add_argument("--out", type=Path, help="JSON Lines file: an environment record, then one per run")
    parser.add_argument("--budget-s", type=float, help="start no run that would end after this [s]")
    args = parser.parse_args(argv)
    model = model_of(Point("speculative_loop", "speculative", {"model": args.model}))
    dtype = TORCH_DTYPES[args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")]
    hardware = load_hardware(args.hardware) if args.hardware else None
    prefer_flash_attention(args.device)
    start = time.monotonic()
    target = build_target(model, args.device, dtype)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        read_records(args.out, drop_torn_tail=True)  # append on a whole line, never onto a torn one
        with args.out.open("a") as f:
            f.write(json.dumps(environment(args.device)) + "\n")
    last = 0.0
    for temperature in args.temperature:
        if args.budget_s is not None and time.monotonic() - start + last > args.budget_s:
            print(f"budget of {args.budget_s:.0f} s spent: temperature {temperature} not run")
            continue
        t = time.monotonic()
        report = run(
            model,
            draft_layers=args.draft_layers,
            k=args.k,
            prompt_len=args.prompt_len,
            new_tokens=args.new_tokens,
            temperature=temperature,
            device=args.device,
            dtype=dtype,
            hardware=hardware,
            target=target,
        )
        last = time.monotonic() - t
        print(json.dumps(asdict(report), indent=2))
        if args.out is not None:  # each run as soon as it is done
            with args.out.open("a") as f:
                f.write(json.dumps({"record": "speculative_loop", **asdict(report)}) + "\n")


if __name__ == "__main__":
    main()
