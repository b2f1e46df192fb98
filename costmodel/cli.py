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
from costmodel.estimate import size
from costmodel.params import param_count
from costmodel.registry import list_hardware, list_models, load_hardware, load_model, to_yaml

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


@app.command()
@friendly
def estimate(
    model: Annotated[str, typer.Option(help="Built-in model name, or a YAML / config.json path.")],
    hardware: Annotated[str, typer.Option(help="Built-in hardware name, or a YAML path.")] = "h100-sxm",
    batch_size: Annotated[int, typer.Option(help="Concurrent sequences.")] = 1,
    prompt_len: Annotated[int, typer.Option(help="Prompt tokens per sequence.")] = 2048,
    output_len: Annotated[int, typer.Option(help="Generated tokens per sequence.")] = 256,
    weight_dtype: Annotated[
        str, typer.Option(help="fp32 bf16 fp16 fp8 int8 int4 nf4 ternary binary")
    ] = "bf16",
    kv_dtype: Annotated[str, typer.Option(help="KV-cache dtype.")] = "bf16",
    n_gpus: Annotated[int, typer.Option(help="Devices the model is spread over.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Size a serving workload: parameters, memory, FLOPs, and whether it fits."""
    r = size(
        model,
        hardware,
        batch_size=batch_size,
        prompt_len=prompt_len,
        output_len=output_len,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        n_gpus=n_gpus,
    )
    if as_json:
        print(json.dumps(r.to_dict(), indent=2))
        return
    table = Table(title=f"{r.model} on {r.n_gpus} x {r.hardware}", show_header=False)
    rows = [
        ("parameters (total / active)", f"{r.params_total:,} / {r.params_active:,}"),
        (f"weights ({r.weight_dtype})", _gb(r.weight_bytes)),
        (
            f"KV cache ({r.kv_dtype}, {r.batch_size} x {r.prompt_len + r.output_len} tokens)",
            _gb(r.kv_cache_bytes),
        ),
        ("activations (prefill chunk)", _gb(r.activation_bytes)),
        ("required / usable memory", f"{_gb(r.required_bytes)} / {_gb(r.capacity_bytes)}"),
        ("fits", "yes" if r.fits else "NO"),
        ("largest batch at this context", f"{r.max_batch_size:,}"),
        ("longest context at this batch", f"{r.max_context_len:,}"),
        ("prefill FLOPs", f"{r.prefill_flop:.3e}"),
        ("decode FLOPs per token", f"{r.decode_flop_per_token:.3e}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


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
