"""The ``costmodel`` command: list profiles, size a workload, import a Hugging Face config.

Bad input never shows a traceback: one message on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from costmodel.errors import CostmodelError
from costmodel.estimate import estimate as run_estimate
from costmodel.estimate import size
from costmodel.params import param_count
from costmodel.registry import list_hardware, list_models, load_hardware, load_model, to_yaml
from costmodel.specs import Deployment, Workload

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Analytical cost and performance model for LLMs: will it fit, how fast, at what cost.",
    pretty_exceptions_enable=False,
)
# Piped output gets a wide console so tables are not cut to 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn bad-input exceptions into one message and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (CostmodelError, ValueError) as e:
            err.print(f"[bold red]error:[/] {e}", markup=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


@app.command()
@friendly
def models(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the built-in model profiles."""
    rows: list[dict[str, Any]] = []
    for name in list_models():
        m = load_model(name)
        p = param_count(m)
        rows.append(
            {
                "name": name,
                "params": p.total,
                "active_params": p.active,
                "layers": m.n_layers,
                "d_model": m.d_model,
                "heads": m.n_heads,
                "kv_heads": m.kv_heads if m.n_heads else None,
                "max_context": m.max_context,
                "kind": "ssm" if m.ssm else "moe" if m.moe else "dense",
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "params", "active", "layers", "d_model", "heads/kv", "context", "kind")
    for r in rows:
        heads = f"{r['heads']}/{r['kv_heads']}" if r["heads"] else "-"
        table.add_row(
            str(r["name"]),
            f"{r['params'] / 1e9:.2f} B",
            f"{r['active_params'] / 1e9:.2f} B",
            str(r["layers"]),
            str(r["d_model"]),
            heads,
            f"{r['max_context']:,}",
            str(r["kind"]),
        )
    out.print(table)


@app.command()
@friendly
def hardware(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the built-in hardware profiles."""
    rows: list[dict[str, Any]] = []
    for name in list_hardware():
        h = load_hardware(name)
        best = next(d for d in ("bf16", "fp16", "fp32") if d in h.compute_dtypes)
        rows.append(
            {
                "name": name,
                "display_name": h.display_name,
                f"peak_{best}_tflop_per_s": h.peak_flop_per_s(best) / 1e12,
                "memory_gib": h.memory_bytes / 2**30,
                "bandwidth_tb_per_s": h.memory_bandwidth_bytes_per_s / 1e12,
                "usd_per_hour": h.price.usd_per_hour if h.price else None,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "device", "dense 16-bit TFLOP/s", "memory", "bandwidth", "$/h")
    for r, name in zip(rows, list_hardware(), strict=True):
        peak = next(v for k, v in r.items() if k.startswith("peak_"))
        price = f"{r['usd_per_hour']:.2f}" if r["usd_per_hour"] else "-"
        table.add_row(
            name,
            str(r["display_name"]),
            f"{peak:,.0f}",
            f"{r['memory_gib']:.0f} GiB",
            f"{r['bandwidth_tb_per_s']:.2f} TB/s",
            price,
        )
    out.print(table)


def _workload_options(
    batch_size: int,
    prompt_len: int,
    output_len: int,
    weight_dtype: str,
    kv_dtype: str,
    activation_dtype: str,
    sparsity: str = "none",
) -> Workload:
    return Workload(
        batch_size,
        prompt_len,
        output_len,
        weight_dtype=weight_dtype,
        activation_dtype=activation_dtype,
        kv_dtype=kv_dtype,
        sparsity=sparsity,  # type: ignore[arg-type]
    )


BatchOpt = Annotated[int, typer.Option(help="Concurrent sequences.")]
PromptOpt = Annotated[int, typer.Option(help="Prompt tokens per sequence.")]
OutputOpt = Annotated[int, typer.Option(help="Generated tokens per sequence.")]
WeightOpt = Annotated[str, typer.Option(help="fp32 bf16 fp16 fp8 int8 int4 nf4 ternary binary")]
KVOpt = Annotated[str, typer.Option(help="KV-cache dtype.")]
ActOpt = Annotated[str, typer.Option(help="Activation / compute dtype (bf16, fp16, fp8, int8).")]
TPOpt = Annotated[int, typer.Option(help="Tensor-parallel degree.")]
PPOpt = Annotated[int, typer.Option(help="Pipeline stages.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
@friendly
def estimate(
    model: Annotated[str, typer.Option(help="Built-in model name, or a YAML / config.json path.")],
    hardware: Annotated[str, typer.Option(help="Built-in hardware name, or a YAML path.")] = "h100-sxm",
    batch_size: BatchOpt = 1,
    prompt_len: PromptOpt = 2048,
    output_len: OutputOpt = 256,
    weight_dtype: WeightOpt = "bf16",
    kv_dtype: KVOpt = "bf16",
    activation_dtype: ActOpt = "bf16",
    tp: TPOpt = 1,
    pp: PPOpt = 1,
    sparsity: Annotated[
        str, typer.Option(help="'none' or '2:4' structured sparsity of the weights.")
    ] = "none",
    as_json: JsonOpt = False,
) -> None:
    """Time to first token, time per output token, throughput, memory and cost of one workload."""
    w = _workload_options(
        batch_size, prompt_len, output_len, weight_dtype, kv_dtype, activation_dtype, sparsity
    )
    dep = Deployment(tp=tp, pp=pp)
    report = run_estimate(model, hardware, w, dep)
    sizes = size(
        model,
        hardware,
        batch_size=batch_size,
        prompt_len=prompt_len,
        output_len=output_len,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        activation_dtype=activation_dtype,
        sparsity=w.sparsity,
        deployment=dep,
    )
    if as_json:
        print(json.dumps(sizes.to_dict() | report.summary(), indent=2))
        return
    r = report.summary()
    at_max = None
    if report.max_batch_size > 0:
        big = _workload_options(
            int(report.max_batch_size),
            prompt_len,
            output_len,
            weight_dtype,
            kv_dtype,
            activation_dtype,
            sparsity,
        )
        at_max = run_estimate(model, hardware, big, dep).summary()
    table = Table(
        title=f"{report.model} on {dep.gpus_per_replica} x {report.hardware} (tp={tp}, pp={pp})",
        show_header=False,
    )
    rows = [
        ("parameters (total / active)", f"{sizes.params_total:,} / {sizes.params_active:,}"),
        (
            f"weights ({weight_dtype}, sparsity {sparsity}): one copy / per GPU",
            f"{_gb(sizes.weight_bytes)} / {_gb(sizes.weight_bytes_per_gpu)}",
        ),
        (
            f"KV cache ({kv_dtype}, {batch_size} x {prompt_len + output_len} tokens): one copy / per GPU",
            f"{_gb(sizes.kv_cache_bytes)} / {_gb(sizes.kv_cache_bytes_per_gpu)}",
        ),
        ("activations per GPU (one prefill chunk)", _gb(sizes.activation_bytes_per_gpu)),
        (
            "memory per GPU / usable",
            f"{_gb(r['memory_bytes_per_gpu'])} / {_gb(report.capacity_bytes_per_gpu)}",
        ),
        ("fits", "yes" if r["fits"] else "NO"),
        ("largest batch at this context", f"{r['max_batch_size']:,}"),
        (
            "throughput at the largest batch",
            f"{at_max['output_tokens_per_s']:,.0f} tokens/s, "
            f"{at_max['usd_per_million_output_tokens']:,.3f} $/M output"
            if at_max
            else "-",
        ),
        ("time to first token", f"{r['ttft_s'] * 1e3:,.1f} ms"),
        ("time per output token", f"{r['tpot_s'] * 1e3:,.2f} ms"),
        ("end-to-end", f"{r['e2e_s']:,.2f} s"),
        (
            "output tokens/s (replica / GPU)",
            f"{r['output_tokens_per_s']:,.0f} / {r['output_tokens_per_s_per_gpu']:,.0f}",
        ),
        (
            "prefill MFU / decode MBU" + (" (MFU of the 2:4 sparse peak)" if w.sparsity == "2:4" else ""),
            f"{r['prefill_mfu']:.0%} / {r['decode_mbu']:.0%}",
        ),
        ("$ per hour", f"{r['usd_per_hour']:,.2f}"),
        (
            "$ per million input / output tokens",
            f"{r['usd_per_million_input_tokens']:,.3f} / {r['usd_per_million_output_tokens']:,.3f}",
        ),
        (
            "prefill FLOPs / decode FLOPs per token",
            f"{sizes.prefill_flop:.3e} / {sizes.decode_flop_per_token:.3e}",
        ),
    ]
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)
    out.print("[dim]Default (uncalibrated) efficiencies: see the README's validation section.[/]")


@app.command()
@friendly
def compare(
    model: Annotated[str, typer.Option(help="Built-in model name, or a YAML / config.json path.")],
    hardware: Annotated[
        str, typer.Option(help="Comma-separated hardware names.")
    ] = "h100-sxm,a100-80gb,l40s",
    batch_size: BatchOpt = 8,
    prompt_len: PromptOpt = 2048,
    output_len: OutputOpt = 256,
    weight_dtype: WeightOpt = "bf16",
    kv_dtype: KVOpt = "bf16",
    activation_dtype: ActOpt = "bf16",
    tp: TPOpt = 1,
    as_json: JsonOpt = False,
) -> None:
    """Rank devices for one workload by $ per million output tokens."""
    w = _workload_options(batch_size, prompt_len, output_len, weight_dtype, kv_dtype, activation_dtype)
    rows = []
    for name in [h.strip() for h in hardware.split(",") if h.strip()]:
        r = run_estimate(model, name, w, Deployment(tp=tp))
        rows.append({"hardware": name} | r.summary())
    rows.sort(key=lambda row: (not row["fits"], row["usd_per_million_output_tokens"]))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("hardware", "fits", "TTFT", "TPOT", "tokens/s", "$/h", "$/M output", "$/M input")
    for row in rows:
        table.add_row(
            row["hardware"],
            "yes" if row["fits"] else "NO",
            f"{row['ttft_s'] * 1e3:,.1f} ms",
            f"{row['tpot_s'] * 1e3:,.2f} ms",
            f"{row['output_tokens_per_s']:,.0f}",
            f"{row['usd_per_hour']:,.2f}",
            f"{row['usd_per_million_output_tokens']:,.3f}",
            f"{row['usd_per_million_input_tokens']:,.3f}",
        )
    out.print(table)


@app.command()
@friendly
def speculative(
    target: Annotated[str, typer.Option(help="Target model (built-in name or path).")],
    draft: Annotated[
        str, typer.Option(help="Draft: a model name/path, 'early-exit:N', 'quantized:int4' or 'ngram'.")
    ],
    alpha: Annotated[float, typer.Option(help="Acceptance rate of the draft (0..1), e.g. measured.")],
    hardware: Annotated[str, typer.Option(help="Built-in hardware name, or a YAML path.")] = "h100-sxm",
    prompt_len: PromptOpt = 1024,
    output_len: OutputOpt = 256,
    weight_dtype: WeightOpt = "bf16",
    k_max: Annotated[int, typer.Option(help="Longest draft considered.")] = 8,
    tp: TPOpt = 1,
    as_json: JsonOpt = False,
) -> None:
    """Best draft length and speedup of speculative decoding versus batch size on a device."""
    from costmodel.speculative import plan

    w = Workload(1, prompt_len, output_len, weight_dtype=weight_dtype)
    frame = plan(target, draft, hardware, w, alpha=alpha, k_max=k_max, deployment=Deployment(tp=tp))
    rows: list[dict[str, Any]] = []
    for record in frame.to_dict("records"):  # per batch size: the best k, or the least bad one
        current = rows[-1] if rows and rows[-1]["batch_size"] == record["batch_size"] else None
        if current is None or record["speedup"] > current["speedup"]:
            pick = {
                key: record[key]
                for key in ("batch_size", "k", "speedup", "c", "verify_ratio", "tokens_per_s")
            }
            pick["best_k"] = pick.pop("k") if record["speedup"] > 1.0 else 0
            if current is None:
                rows.append(pick)
            else:
                rows[-1] = pick
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(
        "batch",
        "best k",
        "speedup",
        "c = T_draft/T_target",
        "T_verify/T_target",
        "tokens/s",
        title=f"speculative decoding: {target} with draft {draft}, alpha={alpha}, on {hardware}",
    )
    for r in rows:
        speed = f"{r['speedup']:.2f}x" if r["best_k"] else f"none pays ({r['speedup']:.2f}x at best)"
        table.add_row(
            str(r["batch_size"]),
            str(r["best_k"]),
            speed,
            f"{r['c']:.3f}",
            f"{r['verify_ratio']:.2f}",
            f"{r['tokens_per_s']:,.0f}",
        )
    out.print(table)


@app.command()
@friendly
def plan(
    model: Annotated[str, typer.Option(help="Built-in model name, or a YAML / config.json path.")],
    rate: Annotated[float, typer.Option(help="Total request arrival rate [requests/s].")],
    hardware: Annotated[
        str, typer.Option(help="Comma-separated hardware names.")
    ] = "h100-sxm,a100-80gb,l40s",
    ttft_p99: Annotated[float | None, typer.Option(help="p99 time-to-first-token SLO [s].")] = None,
    tpot_p99: Annotated[float | None, typer.Option(help="p99 time-per-output-token SLO [s].")] = None,
    prompt_mean: Annotated[int, typer.Option(help="Mean prompt tokens (lognormal, sigma 0.8).")] = 1024,
    output_mean: Annotated[int, typer.Option(help="Mean output tokens (geometric).")] = 256,
    trace: Annotated[
        Path | None, typer.Option(help="CSV/JSONL trace: lengths from it (overrides the means).")
    ] = None,
    tp: Annotated[str, typer.Option(help="Comma-separated tensor-parallel degrees to try.")] = "1,2,4,8",
    weight_dtype: WeightOpt = "bf16",
    kv_dtype: KVOpt = "bf16",
    as_json: JsonOpt = False,
) -> None:
    """Fewest GPUs per device that meet the latency SLOs at this traffic, ranked by $ per hour."""
    from costmodel.capacity import SLO
    from costmodel.capacity import plan as run_plan
    from costmodel.serving import Lengths, Traffic

    traffic = (
        Traffic.from_trace(trace, rate_per_s=rate)
        if trace
        else Traffic(rate, Lengths.lognormal(prompt_mean, 0.8), Lengths.geometric(output_mean))
    )
    frame = run_plan(
        model,
        [h.strip() for h in hardware.split(",") if h.strip()],
        traffic,
        SLO(ttft_s=ttft_p99, tpot_s=tpot_p99),
        tp=[int(t) for t in tp.split(",")],
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
    )
    if as_json:
        print(frame.to_json(orient="records", indent=2))
        return
    table = Table(
        "hardware",
        "tp",
        "replicas",
        "GPUs",
        "batch",
        "util",
        "TTFT p99",
        "TPOT p99",
        "$/h",
        "$/M output",
        title=f"{model} at {rate:g} requests/s",
    )
    for r in frame.to_dict("records"):
        if not r["feasible"]:
            table.add_row(
                r["hardware"], str(r["tp"]), "-", "-", "-", "-", "-", "-", "-", f"[dim]{r['reason']}[/]"
            )
            continue
        table.add_row(
            r["hardware"],
            str(r["tp"]),
            str(int(r["replicas"])),
            str(int(r["gpus"])),
            str(int(r["max_batch_size"])),
            f"{r['utilization']:.0%}",
            f"{r['ttft_p99_s'] * 1e3:,.0f} ms",
            f"{r['tpot_p99_s'] * 1e3:,.1f} ms",
            f"{r['usd_per_hour']:,.2f}",
            f"{r['usd_per_million_output_tokens']:,.3f}",
        )
    out.print(table)


@app.command()
@friendly
def dashboard(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "localhost",
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open it in a browser tab.")] = True,
) -> None:
    """Open the what-if dashboard (needs streamlit and plotly: the app extra)."""
    import importlib.util
    import subprocess

    script = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"
    if not script.is_file():
        raise CostmodelError(
            f"the dashboard ships with the source checkout and {script} is not there; "
            "run costmodel from a clone of the repository"
        )
    missing = [name for name in ("streamlit", "plotly") if importlib.util.find_spec(name) is None]
    if missing:
        raise CostmodelError(
            f"the dashboard needs {' and '.join(missing)}: install the app extra of costmodel"
        )
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "false" if open_browser else "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]
    raise typer.Exit(subprocess.call(command))


@app.command()
@friendly
def calibrate(
    out: Annotated[Path, typer.Option(help="Where to write the calibrated hardware profile (YAML).")],
    device: Annotated[str, typer.Option(help="cpu or cuda (cuda:N).")] = "cpu",
    hardware: Annotated[str | None, typer.Option(help="Base profile (default: detected).")] = None,
) -> None:
    """Measure micro-benchmarks (GEMM, streaming GEMV, launch) and write a profile with measured efficiencies.

    Needs torch and a source checkout (the validation package); same as python -m validation calibrate.
    """
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("validation") is None:
        raise CostmodelError(
            "calibration needs torch (the validation extra) and a source checkout of costmodel"
        )
    from validation.__main__ import main as validation_main

    raise typer.Exit(
        validation_main(
            ["calibrate", "--device", device, "--out", str(out)]
            + (["--hardware", hardware] if hardware else [])
        )
    )


@app.command("import-hf")
@friendly
def import_hf(
    config: Annotated[Path, typer.Argument(help="Path to a Hugging Face config.json.")],
    name: Annotated[str | None, typer.Option(help="Profile name (default: the folder or file name).")] = None,
) -> None:
    """Print the model profile for a Hugging Face config.json as YAML."""
    from costmodel.specs import ModelProfile

    print(to_yaml(ModelProfile.from_hf_config(config, name=name)), end="")


def main() -> None:
    """Entry point of the ``costmodel`` script."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
