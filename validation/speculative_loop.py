"""A timed speculative decoding loop on the reference decoder, against plain decoding.

The target is :class:`validation.kernels.decoder.Decoder` built from a ``ModelProfile`` at random init;
the draft is an early exit of the same network (its first ``draft_layers`` layers, then the shared norm
and head; seed 001's "early exit" draft). Both keep KV caches and roll them back after a rejection.
Sampling follows Leviathan et al. 2023, Algorithm 1 (``temperature > 0``) or greedy matching
(``temperature == 0``, where the output must equal plain greedy decoding token for token).

The report compares the measured speedup with (a) the analytic speedup from the measured acceptance rate
and the measured step times, T_draft / T_target and T_verify / T_target
(:func:`costmodel.speculative.speedup`), so the error isolates the formula, and on a GPU (b) the fully
analytic prediction of :func:`costmodel.speculative.plan` from the roofline. Run it with
``python -m validation.speculative_loop [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import torch

from costmodel.specs import ModelProfile
from costmodel.speculative import speedup
from validation.kernels.decoder import Decoder, LayerCache
from validation.suite import SMALL  # a Llama-3-shaped model that runs in seconds on a CPU


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
) -> LoopReport:
    """Generate ``new_tokens`` plainly and speculatively from the same prompt; time both."""
    torch.manual_seed(seed)
    target = Decoder(model).to(device=device, dtype=dtype).eval()
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
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--draft-layers", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    args = parser.parse_args()
    report = run(
        draft_layers=args.draft_layers,
        k=args.k,
        new_tokens=args.new_tokens,
        temperature=args.temperature,
        device=args.device,
    )
    print(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
