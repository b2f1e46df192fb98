"""``python -m validation calibrate | run | report | all``: measure reference kernels against costmodel.

    python -m validation all --device cuda --out $OUT --budget-s 540   # every stage, one command
    python -m validation calibrate --device cpu --out validation/results/cpu-calibrated.yaml
    python -m validation run --device cpu --suite quick --hardware validation/results/cpu-calibrated.yaml \\
        --out validation/results/cpu-quick.jsonl
    python -m validation report validation/results/cpu-quick.jsonl
    python -m validation public --data validation/data/public-gpu --out $OUT   # predict the public tables
    python -m validation silicon-calibrate --data validation/data/public-gpu   # fit the serving loop
    python -m validation transfer --data validation/data/public-gpu --out $OUT [--attribute]  # transfer rule
    python -m validation tables [--write | --check]   # the docs' figure tables from the committed results
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from costmodel.errors import CostmodelError
from validation.campaign import STAGES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cal = sub.add_parser(
        "calibrate", help="micro-benchmarks -> a hardware profile with measured efficiencies"
    )
    cal.add_argument("--device", default="cpu")
    cal.add_argument("--hardware", help="base profile (default: detected)")
    cal.add_argument("--out", type=Path, required=True)
    run = sub.add_parser("run", help="measure a suite and compare with costmodel's predictions")
    run.add_argument("--device", default="cpu")
    run.add_argument("--suite", choices=("quick", "full"), default="quick")
    run.add_argument("--hardware", help="profile name or YAML path (e.g. a calibrated one)")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--repeats", type=int, default=10)
    rep = sub.add_parser("report", help="summarise results files")
    rep.add_argument("paths", type=Path, nargs="+")
    rep.add_argument("--out", type=Path)
    rep.add_argument(
        "--repredict", metavar="HARDWARE", help="ask the current model again, on this profile: before / after"
    )
    every = sub.add_parser("all", help="calibrate, suite, report, speculative loop, serving replay")
    every.add_argument("--device", default="cpu")
    every.add_argument("--out", type=Path, required=True, help="folder for the results files")
    every.add_argument("--suite", choices=("quick", "full"), help="default: full on CUDA, quick otherwise")
    every.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget for all stages")
    every.add_argument("--reserve-s", type=float, help="budget kept for the stages after the suite")
    every.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset, in any order")
    every.add_argument("--model", help="model of the speculative loop and the serving replay")
    every.add_argument("--requests", type=int, help="requests of the serving replay")
    every.add_argument("--repeats", type=int, default=10)
    pub = sub.add_parser("public", help="predict every row of the public kernel tables (never fits)")
    pub.add_argument("--data", type=Path, required=True, help="folder holding kernels/<system>/...")
    pub.add_argument("--out", type=Path, required=True, help="folder for summary.json and rows.csv")
    tra = sub.add_parser(
        "transfer", help="the transfer rule leave-one-device-out: each device with its partner's parameters"
    )
    tra.add_argument("--data", type=Path, required=True, help="folder holding kernels/<system>/...")
    tra.add_argument("--out", type=Path, required=True, help="folder for transfer.json")
    tra.add_argument(
        "--attribute",
        action="store_true",
        help="also attribute the miss to parameters (the device's own fit swapped in; OUT/attribution.csv)",
    )
    sil = sub.add_parser(
        "silicon-calibrate",
        help="fit the closed-loop serving model's per-engine parameters on the sample's calibration rows",
    )
    sil.add_argument("--data", type=Path, required=True, help="folder holding silicon_sample.csv")
    tab = sub.add_parser(
        "tables", help="render the docs' figure tables from the committed results (validation/tables.py)"
    )
    action = tab.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the generated blocks in place")
    action.add_argument("--check", action="store_true", help="exit 1 naming each stale block")
    tab.add_argument("--root", type=Path, help="repository root (default: this checkout)")
    for measuring in (cal, run, every):
        measuring.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
        measuring.add_argument(
            "--clock",
            choices=("wall", "thread"),
            default="wall",
            help="CPU timings: wall clock, or the CPU time of the one timing thread (with --threads 1: "
            "what a kernel costs on a machine shared with other jobs)",
        )
    args = parser.parse_args(argv)
    try:
        _check_inputs(args)
        if args.command in ("calibrate", "run", "all"):
            from validation.run import check_device

            check_device(args.device)
            from validation.measure import configure

            configure(threads=args.threads, clock=args.clock)
        return _command(args)
    except CostmodelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _check_inputs(args: argparse.Namespace) -> None:
    """Every path a command reads exists, before any work: one error line naming it, exit 2."""
    if args.command == "report":
        for path in args.paths:
            if path.is_dir():
                raise CostmodelError(f"{path}: is a folder; give the results files (*.jsonl) in it")
            if not path.is_file():
                raise CostmodelError(f"{path}: no such results file")
    if args.command in ("public", "silicon-calibrate", "transfer") and not args.data.is_dir():
        raise CostmodelError(f"--data {args.data}: no such folder")
    if args.command == "silicon-calibrate":
        from validation.public.silicon import SILICON_FILE

        if not (args.data / SILICON_FILE).is_file():
            raise CostmodelError(f"--data {args.data}: has no {SILICON_FILE}")


def _command(args: argparse.Namespace) -> int:
    if args.command == "tables":
        from validation.tables import COMMAND, ROOT, load_results, render_all, update

        root = args.root or ROOT
        if not (args.write or args.check):
            print(render_all(load_results(root), root))
            return 0
        outcome = update(root, write=args.write)
        for name in outcome.missing:
            print(f"no generated block {name}: add its markers (validation/tables.py)", file=sys.stderr)
        if args.write:
            for name in outcome.stale:
                print(f"rewrote {name}")
            for row in outcome.no_prose:
                print(f"no prose: {row} (a new or renamed row: write its cell)", file=sys.stderr)
            return 1 if outcome.missing else 0
        for name in outcome.stale:
            print(f"stale: {name}; run `{COMMAND} --write`", file=sys.stderr)
        return 1 if outcome.stale or outcome.missing else 0

    if args.command == "silicon-calibrate":
        from validation.public.silicon import (
            SERVING_PARAMS,
            fit_disagg_params,
            fit_serving_params,
            silicon_parts,
            write_loop_params,
        )

        table, groups = silicon_parts(args.data)
        fitted, harness = fit_serving_params(table, groups)
        disagg = fit_disagg_params(table, groups, fitted)
        write_loop_params(fitted, args.data, disagg=disagg, harness=harness)
        for engine, params in fitted.items():
            print(f"{engine}: {params}")
        for engine, by_harness in harness.items():
            for name, overhead in by_harness.items():
                print(f"{engine} ({name} harness): request_overhead_s={overhead:.4g}")
        for engine, values in disagg.items():
            print(f"{engine} (disagg): " + ", ".join(f"{k}={v:.4g}" for k, v in values.items()))
        print(f"wrote {SERVING_PARAMS}")
        return 0

    if args.command == "transfer":
        from validation.public.transfer import table_text as transfer_text
        from validation.public.transfer import write_transfer

        print(transfer_text(write_transfer(args.data, args.out)))
        print(f"\nwrote {args.out / 'transfer.json'}")
        if args.attribute:
            from validation.public.transfer import attribute_parameters, attribution_text

            attribution = attribute_parameters(args.data)
            attribution.to_csv(args.out / "attribution.csv", index=False)
            print(f"\n{attribution_text(attribution)}\n\nwrote {args.out / 'attribution.csv'}")
        return 0

    if args.command == "public":
        from validation.public.evaluate import evaluate, table_text, write_outputs

        try:
            document = write_outputs(args.data, args.out, evaluate(args.data))
        except CostmodelError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(table_text(document))
        print(f"\nwrote {args.out / 'summary.json'} and {args.out / 'rows.csv'}")
        return 0

    if args.command == "calibrate":
        from validation.calibrate import calibrate, write_profile

        if args.out.is_dir():  # before the measurements, not after them
            raise CostmodelError(f"--out {args.out}: is a folder; give the path of the profile YAML to write")
        profile, records = calibrate(args.device, hardware=args.hardware)
        write_profile(profile, records, args.out)
        eff = profile.efficiency
        print(
            f"wrote {args.out}: matmul fractions {eff.matmul_fraction_by_dtype}, "
            f"memory bandwidth fraction {eff.memory_bandwidth_fraction:.3f}, "
            f"kernel overhead {eff.kernel_overhead_s * 1e6:.1f} us, {eff.execution_mode} mode, "
            f"dispatch {eff.dispatch_s * 1e6:.2f} us per kernel"
        )
    elif args.command == "run":
        from validation.run import run_suite

        n = sum(
            1
            for _ in run_suite(
                args.device, args.suite, args.out, hardware=args.hardware, repeats=args.repeats
            )
        )
        print(f"measured {n} new points into {args.out}")
    elif args.command == "all":
        from validation.campaign import Campaign, run_campaign, table

        stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
        campaign = Campaign(
            args.device, args.out, args.suite, args.budget_s, args.reserve_s, stages, args.model,
            args.requests, args.repeats,
        )  # fmt: skip
        try:
            outcome = run_campaign(campaign)
        except (ValueError, CostmodelError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(table(outcome))
        return 0 if all(r.status == "ok" for r in outcome) else 1
    else:
        from costmodel.registry import load_hardware
        from validation.report import report

        hardware = load_hardware(args.repredict) if args.repredict else None
        result = report(args.paths, args.out, hardware=hardware)
        print(result["markdown"])
        if result["markdown_path"]:
            figure = f" and {result['figure_path']}" if result["figure_path"] else ""
            print(f"\nwrote {result['markdown_path']}{figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
