"""One command for a whole validation run on a device: calibrate, measure the suite, report, then the
speculative decoding loop and the continuous-batching replay, inside a time budget.

    python -m validation all --device cuda --out $OUT --budget-s 540

A lent GPU comes for a few minutes per command, so the stages run in one process, one after another,
each on its own: a stage that fails prints its traceback and the next one still runs. The suite stops
starting points when only ``reserve_s`` of the budget is left (for the two loops after it); its results
file resumes, so the same command over the files of an earlier run measures only what is missing.

Files, named after the device's profile (``h100-sxm``, ``cpu``, ...) so they can be committed as they are:
``<name>-calibrated.yaml``, ``<name>-<suite>.jsonl`` with its ``.md`` summary and ``.html`` figure,
``<name>-speculative.jsonl`` and ``<name>-serving.jsonl``: six files (the device tool returns eight).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STAGES = ("calibrate", "suite", "report", "speculative", "serving")


@dataclass(frozen=True)
class StageResult:
    """How one stage ended: 'ok', 'failed' (with the error) or 'skipped' (with why)."""

    stage: str
    status: str
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class Campaign:
    """What to run where. ``model`` (speculative loop and serving replay) and ``requests`` (replay) default
    to the replay's preset for the device: Llama-3-8B in bf16 on CUDA, the small CPU model otherwise."""

    device: str
    out_dir: Path
    suite: str | None = None  # default: full on CUDA, quick otherwise
    budget_s: float = 540.0
    reserve_s: float | None = None  # default: 150 s on CUDA, 30 s otherwise
    stages: tuple[str, ...] = STAGES
    model: str | None = None
    requests: int | None = None
    repeats: int = 10

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def suite_name(self) -> str:
        return self.suite or ("full" if self.cuda else "quick")

    def path(self, name: str, what: str) -> Path:
        return self.out_dir / f"{name}-{what}"


def run_campaign(campaign: Campaign) -> list[StageResult]:
    """Run the stages in order (see the module docstring); return how each ended."""
    from validation.measure import prefer_flash_attention
    from validation.run import default_hardware, failure_reason

    c = campaign
    unknown = set(c.stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    if c.model:  # a bad name stops here, before anything is measured or written
        from validation.suite import Point, model_of

        model_of(Point("campaign", "campaign", {"model": c.model}))
    start = time.monotonic()
    deadline = start + c.budget_s
    reserve = c.reserve_s if c.reserve_s is not None else (150.0 if c.cuda else 30.0)
    base = default_hardware(c.device)
    prefer_flash_attention(c.device)
    c.out_dir.mkdir(parents=True, exist_ok=True)
    calibrated = c.path(base, "calibrated.yaml")
    results = c.path(base, f"{c.suite_name}.jsonl")

    def hardware() -> str:  # the calibrated profile once it exists, the built-in one otherwise
        return str(calibrated) if calibrated.exists() else base

    def calibrate() -> str:
        if calibrated.exists():
            return f"kept {calibrated.name} (delete it to measure again)"
        from validation.calibrate import calibrate as measure
        from validation.calibrate import write_profile

        profile, records = measure(c.device, hardware=base, repeats=c.repeats)
        write_profile(profile, records, calibrated)
        return f"wrote {calibrated.name}: matmul fractions {profile.efficiency.matmul_fraction_by_dtype}"

    def suite() -> str:
        from validation.run import read_records, run_suite
        from validation.suite import SUITES, calibration_points

        stop = deadline - reserve
        records = list(
            run_suite(c.device, c.suite_name, results, hardware=hardware(), repeats=c.repeats, deadline=stop)
        )
        wanted = {p.id for p in calibration_points(c.device) + SUITES[c.suite_name]()}
        left = len(wanted - {r.get("id") for r in read_records(results)})
        late = f"; {left} left (budget spent: rerun over these files to finish)" if left else ""
        return f"measured {len(records)} new points into {results.name}{late}"

    def report() -> str:
        from validation.report import report as summarise

        summary = summarise([results])
        print(summary["markdown"])
        written = summary["markdown_path"]
        return f"wrote {Path(written).name}" if written else "nothing to report"

    def speculative() -> str:
        from validation.speculative_loop import main

        out = c.path(base, "speculative.jsonl")
        args = ["--device", c.device, "--hardware", hardware(), "--out", str(out), "--temperature", "0", "1"]
        share = 0.4 * max(deadline - time.monotonic(), 0.0)  # the serving replays come after
        args += ["--budget-s", f"{share:.0f}"]
        if c.cuda:  # Llama-3-8B with a 4-layer early exit, a longer prompt and generation
            args += ["--model", c.model or "llama-3-8b", "--draft-layers", "4", "--prompt-len", "128"]
            args += ["--new-tokens", "128"]
        elif c.model:
            args += ["--model", c.model]
        main(args)
        return f"appended to {out.name}"

    def serving() -> str:
        from validation.serving_replay import main

        out = c.path(base, "serving.jsonl")
        args = ["--device", c.device, "--hardware", hardware(), "--out", str(out)]
        args += ["--model", c.model] if c.model else []
        args += ["--requests", str(c.requests)] if c.requests else []
        t = time.monotonic()
        main(args)  # the preset's load
        if not c.cuda:
            return f"appended to {out.name}"
        if time.monotonic() + 1.5 * (time.monotonic() - t) > deadline:
            return f"appended to {out.name}; the saturated replay skipped (time budget)"
        main([*args, "--rate", "1000"])  # everything queued at once: the engine's capacity
        return f"appended to {out.name}"

    steps: dict[str, Callable[[], str]] = {
        "calibrate": calibrate,
        "suite": suite,
        "report": report,
        "speculative": speculative,
        "serving": serving,
    }
    outcome: list[StageResult] = []
    for name in STAGES:
        if name not in c.stages:
            continue
        t = time.monotonic()
        if t > deadline:
            outcome.append(StageResult(name, "skipped", 0.0, "time budget spent"))
            continue
        print(f"== {name} ({deadline - t:.0f} s of the budget left)", flush=True)
        try:
            detail, status = steps[name](), "ok"
        except Exception as e:  # one stage's failure must not lose the others
            traceback.print_exc()
            detail, status = failure_reason(e), "failed"
        outcome.append(StageResult(name, status, time.monotonic() - t, detail))
        print(f"== {name}: {status} in {outcome[-1].seconds:.1f} s: {detail}", flush=True)
    return outcome


def table(outcome: list[StageResult]) -> str:
    """The stages' outcome as a text table (printed last, where the device tool's output tail shows it)."""
    lines = [f"{'stage':<12} {'status':<8} {'seconds':>8}  detail"]
    lines += [f"{r.stage:<12} {r.status:<8} {r.seconds:>8.1f}  {r.detail}" for r in outcome]
    return "\n".join(lines)
