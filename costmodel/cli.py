"""The ``costmodel`` command: list profiles, size a workload, import a Hugging Face config.

Bad input never shows a traceback: one message on stderr and exit code 2.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from costmodel.errors import CostmodelError
from costmodel.estimate import estimate as run_estimate
from costmodel.estimate import size
from costmodel.params import param_count
from costmodel.registry import list_hardware, list_models, load_hardware, load_model, to_yaml
from costmodel.specs import Deployment, ModelProfile, Workload, check_context, tp_degrees

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Analytical cost and performance model for LLMs: will it fit, how fast, at what cost.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain text: the units in brackets ("[s]") stay visible
)
# Piped output gets a wide console so tables are not cut to 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


# numpy scalars leak their repr into messages (np.float64(1.5)): show the plain number
_NUMPY_REPR = re.compile(r"np\.(?:float|int|uint|bool|str|complex)\w*\(([^()]*)\)")


def one_line(message: str) -> str:
    """A message as one readable line: no numpy reprs, no line breaks, no runs of spaces."""
    return " ".join(_NUMPY_REPR.sub(r"\1", message).split())


def _option(loc: tuple[int | str, ...]) -> str:
    # a check across fields (no location) names its fields in its message
    return "--" + str(loc[-1]).replace("_", "-") if loc else ""


def describe_options(error: ValidationError) -> str:
    """A pydantic error as one line naming the options: ``--tp must be greater than 0 (got 0)``."""
    parts = []
    for item in error.errors():
        reason = item["msg"].removeprefix("Value error, ")
        reason = reason.replace("Input should be", "must be").replace("Input ", "")
        shown = item.get("input")
        got = f" (got {shown!r})" if isinstance(shown, int | float | str) else ""
        parts.append(f"{_option(item['loc'])} {reason}{got}".strip())
    return one_line("; ".join(parts))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` as one line on stderr; returns the exit to raise."""
    text = Text("error: ", style="bold red")
    text.append(one_line(message))
    err.print(text, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def as_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` of the API (``prompt_len + output_len``, ``tp (3)``) naming the CLI flags the user typed
    instead (``--isl + --osl``, ``--tp (3)``): each name of ``flags`` that stands alone is replaced."""
    if not flags:
        return message
    names = "|".join(re.escape(name) for name in sorted(flags, key=len, reverse=True))
    return re.sub(rf"(?<![\w.-])({names})(?![\w-])", lambda m: flags[m[1]], message)


def _friendly(func: F, flags: Mapping[str, str]) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ValidationError as e:
            raise fail(as_flags(describe_options(e), flags)) from None
        except (CostmodelError, ValueError, OverflowError, ZeroDivisionError) as e:
            if isinstance(e.__cause__, ValidationError):  # a spec built from the options
                raise fail(as_flags(describe_options(e.__cause__), flags)) from None
            raise fail(as_flags(str(e), flags)) from None
        except OSError as e:
            raise fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e)) from None

    return wrapper  # type: ignore[return-value]


def friendly(func: F) -> F:
    """Turn bad-input exceptions into one line on stderr and exit code 2 (never a traceback)."""
    return _friendly(func, {})


def friendly_flags(**flags: str) -> Callable[[F], F]:
    """:func:`friendly`, with the API's parameter names in messages replaced by the command's flags
    (``prompt_len="--isl"``): an error names what the user typed, not what the library calls it."""
    return lambda func: _friendly(func, flags)


def _finite(value: Any) -> Any:
    """``value`` with every NaN / infinity replaced by None, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def print_json(value: Any) -> None:
    """Strict JSON on stdout: a quantity that does not exist (no price, no TDP) is null, never NaN."""
    print(json.dumps(_finite(value), indent=2, allow_nan=False))


def print_csv(rows: list[dict[str, Any]]) -> None:
    """Rows as CSV on stdout (header from the first row); missing values are empty cells."""
    if not rows:
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in _finite(rows):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _version(value: bool) -> None:
    if value:
        from costmodel import __version__

        print(f"costmodel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Analytical cost and performance model for LLMs: will it fit, how fast, at what cost."""


def _gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


_DURATION = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(us|µs|ms|s|min)?\s*$")
_SECONDS_PER = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}


def parse_duration(text: str | None, option: str, bare_max_s: float) -> float | None:
    """A duration given with its unit ("500ms", "0.5s", "0.5 s") in seconds.

    A bare number is seconds, and is refused above ``bare_max_s``: ``--ttft-p99 500`` almost surely means
    500 ms, and reading it as 500 s would plan for a latency nobody wants.
    """
    if text is None:
        return None
    found = _DURATION.match(text)
    if not found:
        raise CostmodelError(
            f"{option} {text!r} is not a duration: write it with its unit, e.g. 500ms or 0.5s"
        )
    value = float(found.group(1)) * _SECONDS_PER[found.group(2) or "s"]
    if not math.isfinite(value) or value <= 0:
        raise CostmodelError(f"{option} must be a positive duration, e.g. 500ms or 0.5s (got {text!r})")
    if found.group(2) is None and value > bare_max_s:
        raise CostmodelError(
            f"{option} {text} would mean {value:g} s: write the unit, "
            f"e.g. {text}ms (or {value:g}s if you mean it)"
        )
    return value


def parse_names(text: str, option: str = "--hardware") -> list[str]:
    """A comma-separated list of names; an empty list is an error."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise CostmodelError(f"{option} is empty: give one or more names, e.g. h100-sxm,a100-80gb")
    return list(dict.fromkeys(names))


def parse_ints(text: str, option: str, low: int = 1, high: int = 1024) -> list[int]:
    """A comma-separated list of integers in [low, high]."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(not low <= v <= high for v in values):
        raise CostmodelError(
            f"{option} must be comma-separated integers in [{low}, {high}], e.g. 1,2,4 (got {text!r})"
        )
    return list(dict.fromkeys(values))


def check_tp(profile: ModelProfile, degrees: Iterable[int], flag: str = "--tp") -> None:
    """Each tensor-parallel degree the user typed must split ``profile``; else one line naming ``flag``
    and the degrees that do (:func:`costmodel.specs.tp_degrees`)."""
    for degree in degrees:
        if degree < 1:  # before Deployment, whose own check words it as pydantic's ValidationError
            raise CostmodelError(f"{flag} must be greater than 0 (got {degree})")
        try:
            Deployment(tp=degree).check(profile)
        except ValueError as e:
            takes = ", ".join(str(d) for d in tp_degrees(profile))
            raise CostmodelError(
                f"{as_flags(str(e), {'tp': flag})}; {flag} takes {takes} for {profile.name}"
            ) from None


def check_search_split(
    profile: ModelProfile,
    tp: list[int],
    pp: list[int],
    ep: list[int] | None,
    attention_dp: list[int],
    *,
    typed_tp: bool = True,
) -> None:
    """The degrees a search was given must each split ``profile`` on their own (``--tp`` only if typed:
    the search lists the default degrees that do not as skipped), and each ``--ep`` must divide some
    ``--tp`` x ``--attention-dp``."""
    if typed_tp:
        check_tp(profile, tp)
    for stages in pp:
        if stages > profile.n_layers:
            raise CostmodelError(f"--pp ({stages}) exceeds the model's n_layers ({profile.n_layers})")
    moe = profile.moe
    for ranks in attention_dp:
        if ranks > 1 and moe is None:
            raise CostmodelError(
                f"--attention-dp ({ranks}) > 1 needs a mixture-of-experts model (its ranks share the MoE "
                f"layers); {profile.name} is dense"
            )
    for experts in ep or ():
        if experts > 1 and moe is None:
            raise CostmodelError(
                f"--ep ({experts}) > 1 needs a mixture-of-experts model; {profile.name} is dense"
            )
        if moe is not None and moe.n_experts % experts:
            raise CostmodelError(f"--ep ({experts}) must divide moe.n_experts ({moe.n_experts})")
        groups = sorted({t * a for t in tp for a in attention_dp})
        if not any(group % experts == 0 for group in groups):
            raise CostmodelError(
                f"--ep ({experts}) must divide one of --tp x --attention-dp ({', '.join(map(str, groups))}), "
                "the GPUs of the MoE layer its experts are spread over"
            )


def check_split(profile: ModelProfile, dep: Deployment, flags: Mapping[str, str]) -> None:
    """``dep`` must split ``profile`` (:meth:`Deployment.check`): the tensor-parallel degree first, with
    the degrees that do, then the rest, each error naming the flags (``flags``: field -> flag)."""
    check_tp(profile, [dep.tp], flags.get("tp", "--tp"))
    try:
        dep.check(profile)
    except ValueError as e:
        raise CostmodelError(as_flags(str(e), flags)) from None


def parse_prices(text: str | None, names: list[str]) -> dict[str, float]:
    """``--usd-per-hour``: one price ("2.5", with one device) or one per device ("h100-sxm=2.5,l40s=0.9")."""
    if text is None:
        return {}
    prices: dict[str, float] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, _, value = part.rpartition("=")
        name = name.strip()
        if not name:
            if len(names) != 1:
                raise CostmodelError(
                    f"--usd-per-hour {text!r}: with several devices give one price each, "
                    f"e.g. {','.join(f'{n}=2.5' for n in names[:2])}"
                )
            name = names[0]
        if name not in names:
            raise CostmodelError(
                f"--usd-per-hour names {name!r}, which is not in --hardware ({', '.join(names)})"
            )
        try:
            price = float(value)
        except ValueError:
            price = math.nan
        if not (math.isfinite(price) and price > 0):
            raise CostmodelError(
                f"--usd-per-hour must be a positive price per device-hour in USD (got {value!r})"
            )
        prices[name] = price
    if not prices:
        raise CostmodelError("--usd-per-hour is empty: give a price per device-hour in USD, e.g. 2.5")
    return prices


def price_source(hardware: str, override: dict[str, float] | None = None) -> dict[str, Any]:
    """Where a device's price comes from: provider (short), date, and the full source."""
    if override and hardware in override:
        return {
            "price_provider": "--usd-per-hour",
            "price_date": None,
            "price_source": "given on the command line",
        }
    price = load_hardware(hardware).price
    if price is None:
        return {"price_provider": None, "price_date": None, "price_source": None}
    return {"price_provider": price.provider, "price_date": price.date, "price_source": price.source}


def price_label(row: dict[str, Any]) -> str:
    if row["price_provider"] is None:
        return "-"
    return str(row["price_provider"]) + (f", {row['price_date']}" if row["price_date"] else "")


def _money(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def _no_price_note(rows: list[dict[str, Any]]) -> str | None:
    """One line naming the devices without a price (their $ columns show '-') and how to give one."""
    names = sorted({str(r["hardware"]) for r in rows if _money(r.get("usd_per_hour")) == "-"})
    if not names:
        return None
    return (
        f"No price for {', '.join(names)}: the profile has no provider's dated on-demand price, so the $ "
        f"figures are '-'; give one with --usd-per-hour (e.g. --usd-per-hour {names[0]}=5.0)."
    )


def _fits_remedies(
    shard: str,
    weight_dtype: str,
    kv_dtype: str | None,
    weights_fit: bool,
    shrink: str = "lower --batch-size / --prompt-len / --output-len",
) -> str:
    """The ways to make a workload fit that apply to this input, as one clause: more GPUs (``shard``, the
    command's options), the smaller formats below those set (none at 4-bit weights and an 8-bit cache), and
    shorter or fewer sequences only where the weights alone leave room (``weights_fit``); otherwise a
    larger device."""
    from costmodel.dtypes import get_dtype

    fixes = [f"shard it over more GPUs ({shard})"]
    bits = get_dtype(weight_dtype).bits
    formats = (
        [f"--weight-dtype {' or '.join(f for f, b in (('fp8', 8), ('int4', 4)) if b < bits)}"]
        if bits > 4
        else []
    )
    if weights_fit and kv_dtype is not None and get_dtype(kv_dtype).bits > 8:
        formats.append("--kv-dtype fp8")
    if formats:
        fixes.append(f"store it smaller ({', '.join(formats)})")
    fixes.append(shrink if weights_fit else "pick a larger --hardware")
    return ", ".join(fixes[:-1]) + f", or {fixes[-1]}" if len(fixes) > 1 else fixes[0]


def _no_fit_note(
    model: str,
    rows: list[dict[str, Any]],
    layout: str,
    *,
    shard: str,
    weight_dtype: str,
    kv_dtype: str | None,
) -> str | None:
    """One line naming the devices a workload does not fit (their 'fits' says NO, their times assume it did)
    and the ways to make it fit that apply to the input (:func:`_fits_remedies`); ``rows`` carry hardware,
    fits, memory_bytes_per_gpu, capacity_bytes_per_gpu and weight_bytes_per_gpu."""
    short = [r for r in rows if not r["fits"]]
    if not short:
        return None
    heavy = {r["hardware"] for r in short if r["weight_bytes_per_gpu"] >= r["capacity_bytes_per_gpu"]}
    need = "; ".join(
        f"{r['hardware']}: {_gb(r['memory_bytes_per_gpu'])} per GPU, "
        f"{_gb(r['capacity_bytes_per_gpu'])} usable"
        + (f", {_gb(r['weight_bytes_per_gpu'])} of weights alone" if r["hardware"] in heavy else "")
        for r in short
    )
    remedies = _fits_remedies(shard, weight_dtype, kv_dtype, weights_fit=not heavy)
    said = f"{remedies[0].upper()}{remedies[1:]}"
    return f"{model} does not fit at {layout} ({need}): the times shown assume it did. {said}."


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
        print_json(rows)
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
            | price_source(name)
        )
    if as_json:
        print_json(rows)
        return
    table = Table("name", "device", "dense 16-bit TFLOP/s", "memory", "bandwidth", "$/h", "price from")
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
            price_label(r),
        )
    out.print(table)
    out.print("[dim]On-demand prices per device-hour from different providers: --usd-per-hour overrides.[/]")


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
ActOpt = Annotated[
    str, typer.Option(help="Activation / compute dtype (bf16, fp16, fp8, int8; nvfp4: W4A4 at the fp4 peak).")
]
TPOpt = Annotated[int, typer.Option(help="Tensor-parallel degree.")]
PPOpt = Annotated[int, typer.Option(help="Pipeline stages.")]
AttentionDPOpt = Annotated[
    int,
    typer.Option(
        help="Attention data-parallel ranks (each holds its own requests' KV cache; MoE models): SGLang "
        "--dp-size with --enable-dp-attention, TensorRT-LLM enable_attention_dp."
    ),
]
MoETPOpt = Annotated[
    int | None,
    typer.Option(help="Tensor-parallel degree of each routed expert (default tp x attention-dp / moe-ep)."),
]
MoEEPOpt = Annotated[
    int | None, typer.Option(help="Expert-parallel degree of the routed experts (default 1).")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine-readable output (JSON; null where a figure does not exist).")
]
CsvOpt = Annotated[bool, typer.Option("--csv", help="The table as CSV on stdout.")]
PriceOpt = Annotated[
    str | None,
    typer.Option(
        "--usd-per-hour",
        help="Price per device-hour [USD] replacing the profile's on-demand price: "
        "2.5, or per device h100-sxm=2.5,l40s=0.9.",
    ),
]


# the API names of what the workload options set, as the user typed them
_WORKLOAD_FLAGS = {"batch_size": "--batch-size", "prompt_len": "--prompt-len", "output_len": "--output-len"}
_DEPLOYMENT_FLAGS = {
    "tp": "--tp",
    "pp": "--pp",
    "attention_dp": "--attention-dp",
    "moe_tp": "--moe-tp",
    "moe_ep": "--moe-ep",
    "ep": "--moe-ep",  # the older name of moe_ep
}


@app.command()
@friendly_flags(**_WORKLOAD_FLAGS, **_DEPLOYMENT_FLAGS, sparsity="--sparsity")
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
    attention_dp: AttentionDPOpt = 1,
    moe_tp: MoETPOpt = None,
    moe_ep: MoEEPOpt = None,
    sparsity: Annotated[
        str, typer.Option(help="'none' or '2:4' structured sparsity of the weights.")
    ] = "none",
    usd_per_hour: PriceOpt = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Serving engine whose kernels time the passes and whose MLA weight copies count: vllm, "
            "sglang, trtllm."
        ),
    ] = "vllm",
    as_json: JsonOpt = False,
) -> None:
    """Time to first token, time per output token, throughput, memory and cost of one workload."""
    from costmodel.memory import ENGINES

    if engine not in ENGINES:
        raise CostmodelError(f"--engine {engine!r} is not an engine: use {', '.join(ENGINES)}")
    _check_engine_runs(engine, [hardware])
    w = _workload_options(
        batch_size, prompt_len, output_len, weight_dtype, kv_dtype, activation_dtype, sparsity
    )
    dep = Deployment(tp=tp, pp=pp, attention_dp=attention_dp, moe_tp=moe_tp, moe_ep=moe_ep)
    check_split(load_model(model), dep, _DEPLOYMENT_FLAGS)
    price = parse_prices(usd_per_hour, [hardware]).get(hardware)
    eff = load_hardware(hardware).efficiency.model_copy(update={"kernel_engine": engine})
    report = run_estimate(model, hardware, w, dep, efficiency=eff, usd_per_hour=price)
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
        engine=engine,
    )
    source = price_source(hardware, {hardware: price} if price else None)
    if as_json:
        print_json(sizes.to_dict() | report.summary() | source)
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
        at_max = run_estimate(model, hardware, big, dep, efficiency=eff, usd_per_hour=price).summary()
    table = Table(
        title=f"{report.model} on {dep.gpus_per_replica} x {report.hardware} (tp={tp}, pp={pp}"
        + (f", attention_dp={attention_dp}" if attention_dp > 1 else "")
        + (f", moe_tp={dep.moe_tp_size} x moe_ep={dep.moe_ep_size}" if moe_tp or moe_ep else "")
        + ")",
        show_header=False,
    )
    rows = [
        ("parameters (total / active)", f"{sizes.params_total:,} / {sizes.params_active:,}"),
        (  # one copy: the checkpoint's weights; per GPU: with the engine's load-time MLA copies
            f"weights ({weight_dtype}, sparsity {sparsity}): one copy / per GPU"
            + (f" with {engine}'s MLA copies" if load_model(model).mla is not None else ""),
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
            f"{_money(at_max['usd_per_million_output_tokens'], 3)} $/M output"
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
        (
            f"$ per hour ({dep.gpus_per_replica} GPU{'s' if dep.gpus_per_replica > 1 else ''}; price from)",
            f"{_money(r['usd_per_hour'])} ({price_label(source)})",
        ),
        (
            "$ per million input / output tokens",
            f"{_money(r['usd_per_million_input_tokens'], 3)} / "
            f"{_money(r['usd_per_million_output_tokens'], 3)}",
        ),
        (
            "prefill FLOPs / decode FLOPs per token",
            f"{sizes.prefill_flop:.3e} / {sizes.decode_flop_per_token:.3e}",
        ),
    ]
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)
    usable = {
        "hardware": report.hardware,
        "capacity_bytes_per_gpu": report.capacity_bytes_per_gpu,
        "weight_bytes_per_gpu": report.weight_bytes_per_gpu,
    }
    if note := _no_fit_note(
        str(report.model), [usable | r], f"tp={tp}, pp={pp}", shard="--tp / --pp", weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
    ):  # fmt: skip
        out.print(note, highlight=False, markup=False)
    from costmodel.kernel_times import time_model_note

    out.print(f"[dim]{time_model_note(load_hardware(hardware))}[/]", highlight=False)
    if note := _no_price_note([{"hardware": report.hardware, "usd_per_hour": r["usd_per_hour"]}]):
        out.print(f"[dim]{note}[/]")


@app.command()
@friendly_flags(**_WORKLOAD_FLAGS, tp="--tp")
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
    usd_per_hour: PriceOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Rank devices for one workload by $ per million output tokens (prices: each device's own source)."""
    names = parse_names(hardware)
    prices = parse_prices(usd_per_hour, names)
    w = _workload_options(batch_size, prompt_len, output_len, weight_dtype, kv_dtype, activation_dtype)
    check_tp(load_model(model), [tp])
    scenario = {
        "model": model,
        "batch_size": batch_size,
        "prompt_len": prompt_len,
        "output_len": output_len,
        "weight_dtype": weight_dtype,
        "kv_dtype": kv_dtype,
        "tp": tp,
    }
    rows: list[dict[str, Any]] = []
    usable: dict[str, dict[str, float]] = {}
    for name in names:
        r = run_estimate(model, name, w, Deployment(tp=tp), usd_per_hour=prices.get(name))
        rows.append({"hardware": name} | scenario | r.summary() | price_source(name, prices))
        usable[name] = {
            "capacity_bytes_per_gpu": r.capacity_bytes_per_gpu,
            "weight_bytes_per_gpu": r.weight_bytes_per_gpu,
        }
    rows.sort(
        key=lambda row: (
            not row["fits"],
            _finite(row["usd_per_million_output_tokens"]) is None,
            _finite(row["usd_per_million_output_tokens"]) or 0.0,
        )
    )
    workload = (
        f"{model}, batch {batch_size}, {prompt_len:,} prompt + {output_len:,} output tokens, "
        f"weights {weight_dtype}, KV {kv_dtype}, tp={tp}"
    )
    if as_json:
        print_json(rows)
        return
    if as_csv:
        print_csv(rows)
        return
    table = Table(
        "hardware",
        "fits",
        "TTFT",
        "TPOT",
        "tokens/s",
        "$/h",
        "$/M output",
        "$/M input",
        "price from",
        title=f"{workload}; ranked by $ per million output tokens",
    )
    for row in rows:
        table.add_row(
            row["hardware"],
            "yes" if row["fits"] else "NO",
            f"{row['ttft_s'] * 1e3:,.1f} ms",
            f"{row['tpot_s'] * 1e3:,.2f} ms",
            f"{row['output_tokens_per_s']:,.0f}",
            _money(row["usd_per_hour"]),
            _money(row["usd_per_million_output_tokens"], 3),
            _money(row["usd_per_million_input_tokens"], 3),
            price_label(row),
        )
    out.print(table)
    if note := _no_fit_note(
        model, [row | usable[row["hardware"]] for row in rows], f"tp={tp}", shard="--tp",
        weight_dtype=weight_dtype, kv_dtype=kv_dtype,
    ):  # fmt: skip
        out.print(note, highlight=False, markup=False)
    if note := _no_price_note(rows):
        out.print(f"[dim]{note}[/]")
    if len({row["price_provider"] for row in rows if row["price_provider"]}) > 1:
        out.print(
            "[dim]Prices come from different providers (column 'price from'), so the ranking compares "
            "providers as well as devices: --usd-per-hour sets your own.[/]"
        )


# Speculative decoding pays off for drafts of a few tokens; beyond 64 the acceptance alpha^k is negligible
# for any alpha < 0.9, and the frame (batch sizes x k) only grows.
K_MAX_LIMIT = 64


@app.command()
@friendly_flags(
    prompt_len="--prompt-len",
    output_len="--output-len",
    tp="--tp",
    draft_tp="--draft-tp",
    **{"heterogeneous_vocab=True": "--heterogeneous-vocab"},
)
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
    k_max: Annotated[int, typer.Option(help=f"Longest draft considered [tokens] (1 to {K_MAX_LIMIT}).")] = 8,
    tp: TPOpt = 1,
    draft_tp: Annotated[
        int | None,
        typer.Option(
            help="Tensor-parallel degree of a draft model: 1 or --tp (default --tp). vLLM's config "
            "documents both (draft_tensor_parallel_size), but its V1 draft-model proposer needs --tp; "
            "not for early-exit (the target's own layers, on --tp) or ngram (no model) drafts."
        ),
    ] = None,
    heterogeneous_vocab: Annotated[
        bool,
        typer.Option(
            "--heterogeneous-vocab",
            help="Allow a draft model whose vocabulary differs from the target's (vLLM's "
            "use_heterogeneous_vocab: drafting over the tokens both hold; --alpha measured so).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Best draft length and speedup of speculative decoding versus batch size on a device."""
    from costmodel.speculative import draft_kv_bytes_per_gpu, draft_weight_bytes_per_gpu, plan

    if not 1 <= k_max <= K_MAX_LIMIT:
        raise CostmodelError(f"--k-max must be between 1 and {K_MAX_LIMIT} draft tokens (got {k_max})")
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise CostmodelError(f"--alpha is an acceptance rate and must lie in [0, 1] (got {alpha:g})")
    w = Workload(1, prompt_len, output_len, weight_dtype=weight_dtype)
    check_tp(load_model(target), [tp])
    # the context and memory checks first, so bad input fails before anything reaches stdout
    room = size(target, hardware, batch_size=1, prompt_len=prompt_len, output_len=output_len,
                weight_dtype=weight_dtype, deployment=Deployment(tp=tp))  # fmt: skip
    frame = plan(target, draft, hardware, w, alpha=alpha, k_max=k_max, deployment=Deployment(tp=tp),
                 draft_tp=draft_tp, heterogeneous_vocab=heterogeneous_vocab)  # fmt: skip
    # the draft's own weights on the fullest GPU (a separate model or a quantized copy; none for an early
    # exit or an n-gram table), as the dashboard counts them, and its own KV cache, which grows with the
    # sequences as the target's does (vLLM keeps both in one pool). A sequence costs the batch-1 report's
    # cache plus the draft's, so the batch that fits is the room left after weights, activations and the
    # draft's weights, over the two caches of one sequence
    split = Deployment(tp=tp)
    extra = draft_weight_bytes_per_gpu(
        target, draft, w, deployment=split, draft_tp=draft_tp, heterogeneous_vocab=heterogeneous_vocab
    )
    draft_kv = float(
        draft_kv_bytes_per_gpu(
            target, draft, w, batch_size=1, context_len=prompt_len + output_len, deployment=split,
            draft_tp=draft_tp, heterogeneous_vocab=heterogeneous_vocab,
        )
    )  # fmt: skip
    max_batch = int(room.max_batch_size)
    if extra > 0 or draft_kv > 0:
        free = room.capacity_bytes_per_gpu - room.weight_bytes_per_gpu - room.activation_bytes_per_gpu - extra
        per_sequence = float(room.kv_cache_bytes_per_gpu) + draft_kv
        fitting = max_batch if per_sequence <= 0 else math.floor(free / per_sequence)
        max_batch = max(0, min(max_batch, fitting)) if free >= 0 else 0
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
    for r in rows:  # whether the target's and the draft's weights and KV caches fit at each batch
        r["max_batch_size"] = max_batch
        r["fits"] = bool(r["batch_size"] <= max_batch)
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
    if max_batch < rows[-1]["batch_size"]:
        where = (
            "does not fit even at batch 1, and the rows assume it did"
            if max_batch < 1
            else f"fits a batch of at most {max_batch:,}, and larger rows assume more memory"
        )
        weights = room.weight_bytes_per_gpu + extra
        weights_fit = weights + room.activation_bytes_per_gpu < room.capacity_bytes_per_gpu
        if not weights_fit:
            where += f" ({_gb(weights)} of weights alone per GPU, {_gb(room.capacity_bytes_per_gpu)} usable)"
        remedies = _fits_remedies(
            "--tp", weight_dtype, None, weights_fit, "shorten --prompt-len / --output-len"
        )
        drafts = (
            f"with its draft's weights ({_gb(extra)} a GPU) and KV cache ({_gb(draft_kv)} a sequence)"
            if extra
            else "(the draft adds no weights or cache)"
        )
        out.print(
            f"{room.model} on {tp} x {room.hardware} at {prompt_len + output_len:,} tokens of context "
            f"{drafts} {where}. {remedies[0].upper()}{remedies[1:]}.",
            highlight=False,
            markup=False,
        )


@app.command()
@friendly_flags(tp="--tp", prompt_len="--prompt-mean", output_len="--output-mean")
def plan(
    model: Annotated[str, typer.Option(help="Built-in model name, or a YAML / config.json path.")],
    rate: Annotated[float, typer.Option(help="Total request arrival rate [requests/s].")],
    hardware: Annotated[
        str, typer.Option(help="Comma-separated hardware names.")
    ] = "h100-sxm,a100-80gb,l40s",
    ttft_p99: Annotated[
        str | None,
        typer.Option(
            help="p99 time-to-first-token objective with its unit: 500ms, 0.5s (bare number: s, <= 60)."
        ),
    ] = None,
    tpot_p99: Annotated[
        str | None,
        typer.Option(
            help="p99 time-per-output-token objective with its unit: 50ms, 0.05s (bare number: s, <= 10)."
        ),
    ] = None,
    prompt_mean: Annotated[int, typer.Option(help="Mean prompt tokens (lognormal, sigma 0.8).")] = 1024,
    output_mean: Annotated[int, typer.Option(help="Mean output tokens (geometric).")] = 256,
    trace: Annotated[
        Path | None, typer.Option(help="CSV/JSONL trace: lengths from it (overrides the means).")
    ] = None,
    tp: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated tensor-parallel degrees to try, each splitting the model (default: "
            "those of 1,2,4,8 that do)."
        ),
    ] = None,
    weight_dtype: WeightOpt = "bf16",
    kv_dtype: KVOpt = "bf16",
    usd_per_hour: PriceOpt = None,
    max_utilization: Annotated[
        float,
        typer.Option(
            help="Highest load per replica as a fraction of its saturation rate [0-1, e.g. 0.7]. Above "
            "0.7 (the analytic model's validated range) rows are confirmed by simulation."
        ),
    ] = 0.7,
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm/--no-confirm",
            help="Confirm every chosen row with the discrete-event simulator (about 1 s per "
            "candidate), adding replicas until its simulated p99 meets the objectives.",
        ),
    ] = False,
    sampling_margin: Annotated[
        float | None,
        typer.Option(
            help="Share [0-1] of each p99's sampling-error band above it that must also meet the "
            "objective: 0 holds the p99 itself, 1 its upper end (default: the planner's, see "
            "docs/serving.md, 'Pass rule')."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Serving engine each replica runs: vllm, sglang, trtllm. Its fitted costs beyond the "
            "kernels (host time per iteration, per layer of an eager prompt iteration, per first token) "
            "and its kernels time the iterations, as in costmodel pareto; none: the kernels alone."
        ),
    ] = "vllm",
    token_budget: Annotated[
        int | None,
        typer.Option(
            help="Token budget per iteration each replica is launched with (vLLM --max-num-batched-tokens, "
            "SGLang --chunked-prefill-size, TensorRT-LLM max_num_tokens). Default: the engine's own on "
            "each device, as costmodel pareto (vLLM 8192 on GPUs of 70 GiB or more but A100, else 2048); "
            "8192 with --engine none; a TPU or CPU needs one."
        ),
    ] = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Fewest GPUs per device that meet the latency objectives at this traffic, ranked by $ per hour.

    Exits 1 (with the reasons on stderr) when no candidate meets them.
    """
    from costmodel.capacity import SAMPLING_MARGIN, SLO, VALIDATED_UTILIZATION
    from costmodel.capacity import plan as run_plan
    from costmodel.serving import Lengths, Traffic

    names = parse_names(hardware)
    if engine != "none":
        try:
            _check_engine_runs(_engine_name(engine), names)
        except CostmodelError as e:  # "none" is this command's too
            raise CostmodelError(f"{e} (or none: the kernels alone)") from None
    prices = parse_prices(usd_per_hour, names)
    degrees = parse_ints(tp or "1,2,4,8", "--tp")
    slo = SLO(
        ttft_s=parse_duration(ttft_p99, "--ttft-p99", 60.0),
        tpot_s=parse_duration(tpot_p99, "--tpot-p99", 10.0),
    )
    if not (math.isfinite(rate) and rate > 0):
        raise CostmodelError(f"--rate must be a positive number of requests per second (got {rate:g})")
    if not (math.isfinite(max_utilization) and 0 < max_utilization < 1):
        raise CostmodelError(
            f"--max-utilization must be a fraction of the saturation rate between 0 and 1, e.g. "
            f"{VALIDATED_UTILIZATION:g} (got {max_utilization:g})"
        )
    if token_budget is not None and token_budget < 1:
        raise CostmodelError(f"--token-budget must be at least 1 token (got {token_budget})")
    margin = SAMPLING_MARGIN if sampling_margin is None else sampling_margin
    if not (math.isfinite(margin) and 0 <= margin <= 1):
        raise CostmodelError(
            f"--sampling-margin must be a share of the p99's sampling-error band between 0 and 1, e.g. "
            f"{SAMPLING_MARGIN:g} (got {margin:g})"
        )
    profile = load_model(model)
    if tp is not None:  # degrees the user typed must split the model; the default's are those that do
        check_tp(profile, degrees)
    else:
        degrees = [d for d in degrees if d in tp_degrees(profile, max(degrees))]
    for flag, value in (("--prompt-mean", prompt_mean), ("--output-mean", output_mean)):
        if value < 1:
            raise CostmodelError(f"{flag} must be at least 1 token (got {value})")
    if trace is None:  # the means asked for, before the tails are lumped at the context
        check_context(profile, prompt_mean, output_mean)
    cap = max(profile.max_context - 1, 1)  # the tails lumped where an engine stops: one output token left
    traffic = (
        Traffic.from_trace(trace, rate_per_s=rate)
        if trace
        else Traffic(
            rate,
            Lengths.lognormal(prompt_mean, 0.8, max_tokens=cap),
            Lengths.geometric(output_mean, max_tokens=cap),
        )
    )
    try:  # on the mean lengths
        check_context(profile, traffic.prompt.mean, traffic.output.mean)
    except CostmodelError as e:
        lengths = "--trace's mean prompt + output" if trace else "--prompt-mean + --output-mean"
        raise CostmodelError(str(e).replace("prompt_len + output_len", lengths)) from None
    frame = run_plan(
        model,
        names,
        traffic,
        slo,
        tp=degrees,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        usd_per_hour=prices or None,
        max_utilization=max_utilization,
        confirm=confirm,
        sampling_margin=margin,
        engine=None if engine == "none" else engine,
        max_batched_tokens=token_budget,
    )
    rows = [row | price_source(str(row["hardware"]), prices) for row in _finite(frame.to_dict("records"))]
    objectives = (
        ", ".join(
            f"{label} <= {value * 1e3:,.0f} ms"
            for label, value in (("TTFT p99", slo.ttft_s), ("TPOT p99", slo.tpot_s))
            if value is not None
        )
        or "no latency objective"
    )
    if as_json:
        print_json(rows)
    elif as_csv:
        print_csv(rows)
    else:
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
            "price from",
            title=f"{model} at {rate:g} requests/s, {objectives}, "
            + ("kernels alone" if engine == "none" else f"on {engine}"),
        )
        simulated = any(r["confirmed_by_simulation"] for r in rows)
        if simulated:  # the simulator's p99s beside the model's
            table.add_column("simulated TTFT / TPOT p99")
        for r in rows:
            if not r["feasible"]:
                table.add_row(
                    r["hardware"],
                    str(r["tp"]),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    Text(str(r["reason"]), style="dim"),
                    *(["-"] if simulated else []),
                )
                continue
            sim = (
                f"{r['sim_ttft_p99_s'] * 1e3:,.0f} ms / {r['sim_tpot_p99_s'] * 1e3:,.1f} ms"
                if r["confirmed_by_simulation"]
                else "not simulated"
            )
            table.add_row(
                r["hardware"],
                str(r["tp"]),
                str(int(r["replicas"])),
                str(int(r["gpus"])),
                str(int(r["max_batch_size"])),
                f"{r['utilization']:.0%}",
                f"{r['ttft_p99_s'] * 1e3:,.0f} ms",
                f"{r['tpot_p99_s'] * 1e3:,.1f} ms",
                _money(r["usd_per_hour"]),
                _money(r["usd_per_million_output_tokens"], 3),
                price_label(r),
                *([sim] if simulated else []),
            )
        out.print(table)
    feasible = [r for r in rows if r["feasible"]]
    if not feasible:
        reasons = "; ".join(dict.fromkeys(f"{r['hardware']} tp={r['tp']}: {r['reason']}" for r in rows[:4]))
        raise fail(
            f"no candidate meets {objectives} at {rate:g} requests/s ({len(rows)} tried: {reasons}"
            f"{'; ...' if len(rows) > 4 else ''}); relax the objectives, or try more --hardware or --tp",
            code=1,
        )
    best = feasible[0]
    replicas = int(best["replicas"])
    # a row meeting no SLO has no $ figures whatever its price: only the rows that do are asked
    if note := _no_price_note(feasible):
        err.print(note, highlight=False, markup=False, soft_wrap=True)
    err.print(
        f"{'cheapest' if _money(best['usd_per_hour']) != '-' else 'first (no price to rank by)'}: "
        f"{int(best['gpus'])} x {best['hardware']} (tp={best['tp']}, {replicas} "
        f"replica{'s' if replicas > 1 else ''}) at {_money(best['usd_per_hour'])} $/h, meeting {objectives}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command()
@friendly
def dashboard(
    port: Annotated[
        int | None, typer.Option(help="Port to serve on (default: 8501, or the next free one).")
    ] = None,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "localhost",
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open it in a browser tab.")] = True,
) -> None:
    """Start the what-if dashboard and print its URL (needs the app extra: pip install 'costmodel[app]').

    The server runs headless (no prompt), opens a browser tab where there is a graphical session, and
    stops with this command (Ctrl+C or SIGTERM).
    """
    serve = _installed_app("dashboard")
    raise typer.Exit(serve(port=port, address=address, open_browser=open_browser))


APPS_GROUP = "costmodel.apps"
# Where the wheel's own dashboard lives, for a source checkout whose installed metadata predates it.
_BUNDLED_APPS = {"dashboard": ("costmodel_app.launch", "serve")}


def _installed_app(name: str) -> Callable[..., int]:
    """The entry point ``name`` of the ``costmodel.apps`` group: the library only knows the group's name."""
    import importlib
    from importlib.metadata import entry_points

    found = entry_points(group=APPS_GROUP, name=name)
    try:
        if found:
            return found[name].load()  # type: ignore[no-any-return]
        module, attribute = _BUNDLED_APPS[name]
        return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]
    except ImportError as e:
        raise CostmodelError(f"the {name} is not installed ({e}): pip install 'costmodel[app]'") from None


@app.command()
@friendly
def calibrate(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the calibrated profiles (one overlay YAML each).")
    ],
    source: Annotated[
        Path | None,
        typer.Option("--from", help="Measurement folder (DIR/kernels/<system>/<family>/...)."),
    ] = None,
    family: Annotated[
        list[str] | None,
        typer.Option(help="Fit only this kernel family (repeatable); the others in OUT are kept."),
    ] = None,
    hardware: Annotated[
        list[str] | None,
        typer.Option(help="Fit only this measured device (repeatable); other devices' overlays are kept."),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            help="Fit only the parameter keys starting with this prefix (repeatable, e.g. fp8_block:); the "
            "family's other keys in OUT are kept and its pooled keys are not refit; a key tied to a refit "
            "key (a family's TIED_PARAMS) is refit with it, and a tied key refit alone takes its source's "
            "values in OUT."
        ),
    ] = None,
    transfer_only: Annotated[
        bool,
        typer.Option(
            "--transfer-only",
            help="Fit nothing: rewrite OUT's transferred overlays from the measured overlays in OUT.",
        ),
    ] = False,
) -> None:
    """Fit the kernel models' parameters to measured kernel times and write calibrated hardware profiles.

    Fits each (device, family, dtype) on the calibration rows (a rule on row identity; the rest is held out)
    and writes OUT/<hardware>.yaml, loadable with --hardware OUT/<hardware>.yaml. Devices without
    measurements get the parameters of the nearest measured device (costmodel.calibrate.TRANSFER_RULE).
    The torch micro-benchmarks are `python -m validation calibrate`. --transfer-only (no --from) only
    rewrites those transferred overlays from the measured overlays already in OUT.
    """
    from costmodel.calibrate import CalibrationOutcome, calibrate_from, transfer_overlays

    if transfer_only:
        if source is not None or family or hardware or key:
            raise CostmodelError("--transfer-only fits nothing: drop --from, --family, --hardware and --key")
        paths, moved = transfer_overlays(out_dir)
        outcome = CalibrationOutcome(moved)
    elif source is None:
        raise CostmodelError("--from: missing; give the measurement folder, or --transfer-only")
    else:
        paths, outcome = calibrate_from(source, out_dir, families=family, hardware=hardware, keys=key)
    for name, calibration in outcome.calibrations.items():
        record = calibration.record
        how = f"from {record.transferred_from}" if record.transferred_from else f"rows {record.rows}"
        keys = sum(len(v) for v in calibration.params.values())
        out.print(f"{name}: {keys} parameter sets ({how})")
    for line in outcome.skipped:
        out.print(f"[yellow]not fitted[/]: {line}")
    out.print(f"wrote {len(paths)} profiles to {out_dir}")


@app.command()
@friendly_flags(
    prompt_len="--isl",
    output_len="--osl",
    isl="--isl",
    osl="--osl",
    tp="--tp",
    pp="--pp",
    ep="--ep",
    moe_ep="--ep",
    attention_dp="--attention-dp",
    token_budget="--token-budget",
    concurrency="--concurrency",
    formats="--formats",
    # the API's parameter has no flag here: the CLI searches one worker of 8 GPUs
    **{"GPUs of a worker (max_gpus_per_worker)": "GPUs a worker holds"},
)
def pareto(
    model: Annotated[str, typer.Option(help="Built-in model name, or a YAML / config.json path.")],
    hardware: Annotated[str, typer.Option(help="Comma-separated hardware names.")] = "h100-sxm,h200,b200",
    isl: Annotated[int, typer.Option(help="Prompt tokens per request [tokens].")] = 1024,
    osl: Annotated[int, typer.Option(help="Output tokens per request [tokens], >= 2.")] = 256,
    ttft: Annotated[
        str | None,
        typer.Option(
            help="Mean time-to-first-token objective with its unit: 500ms, 2s (bare number: s, <= 60)."
        ),
    ] = None,
    tpot: Annotated[
        str | None,
        typer.Option(
            help="Mean time-per-output-token objective with its unit: 50ms (bare number: s, <= 10)."
        ),
    ] = None,
    formats: Annotated[str, typer.Option(help="Comma-separated weight formats to try.")] = "bf16,fp8",
    tp: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated tensor-parallel degrees to try, each splitting the model (default "
            "1,2,4,8; those that do not are listed as skipped)."
        ),
    ] = None,
    pp: Annotated[str, typer.Option(help="Comma-separated pipeline stages to try.")] = "1,2",
    ep: Annotated[
        str | None, typer.Option(help="Comma-separated expert-parallel degrees (MoE); default 1 and tp.")
    ] = None,
    attention_dp: Annotated[
        str,
        typer.Option(
            help="Comma-separated attention data-parallel ranks to try (MoE models; either pool too). A "
            "worker's GPUs are tp x attention-dp x pp, so SGLang's --tp 8 --dp 8 --enable-dp-attention is "
            "--tp 1 --attention-dp 8 here; a layout over 8 GPUs is listed as skipped."
        ),
    ] = "1",
    concurrency: Annotated[
        str, typer.Option(help="Comma-separated client counts per worker (per decode worker) to try.")
    ] = ",".join(str(c) for c in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)),
    mode: Annotated[str, typer.Option(help="agg, disagg, or agg,disagg.")] = "agg,disagg",
    engine: Annotated[
        str,
        typer.Option(help="Engine whose fitted loop parameters and kernels apply: vllm, sglang, trtllm."),
    ] = "vllm",
    kv_dtype: KVOpt = "bf16",
    usd_per_hour: PriceOpt = None,
    token_budget: Annotated[
        int | None,
        typer.Option(
            help="Token budget per iteration the engine is launched with, as its own flag reads it: vLLM "
            "--max-num-batched-tokens and TensorRT-LLM max_num_tokens hold per attention-DP rank, SGLang "
            "--chunked-prefill-size per worker (divided among its ranks, each at most SGLang's default "
            "--max-prefill-tokens 16384); raised to a point's clients. Default: the engine's own on each "
            "device (vLLM 8192 on GPUs of 70 GiB or more but A100, else 2048; SGLang 2048 / 4096 / 8192 "
            "/ 16384 below 35 / 60 / 160 GiB and above; TensorRT-LLM 8192); a TPU or CPU needs one."
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Every point searched, not only the frontier.")
    ] = False,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Frontier of output tokens/s per GPU against tokens/s per user over deployments (TP, PP, EP, format,
    concurrency, aggregated or disaggregated), and the cheapest point meeting the objectives.

    Exits 1 (after the table) when objectives are given and no point meets them.
    """
    from costmodel import pareto as search
    from costmodel.token_budget import default_token_budget

    names = parse_names(hardware)
    _check_engine_runs(_engine_name(engine), names)
    prices = parse_prices(usd_per_hour, names)
    chosen_formats = parse_names(formats, "--formats")
    for name in chosen_formats:
        if name not in search.FORMATS:
            raise CostmodelError(f"--formats {name!r} is not a format: use {', '.join(search.FORMATS)}")
    modes = parse_names(mode, "--mode")
    for name in modes:
        if name not in search.MODES:
            raise CostmodelError(f"--mode {name!r} is not a mode: use agg, disagg or agg,disagg")
    for flag, value, low in (("--isl", isl, 1), ("--osl", osl, 2), ("--token-budget", token_budget, 1)):
        if value is not None and value < low:
            raise CostmodelError(f"{flag} must be at least {low} tokens (got {value})")
    degrees, stages = parse_ints(tp or "1,2,4,8", "--tp"), parse_ints(pp, "--pp")
    experts = parse_ints(ep, "--ep") if ep is not None else None
    ranks = parse_ints(attention_dp, "--attention-dp")
    check_search_split(load_model(model), degrees, stages, experts, ranks, typed_tp=tp is not None)
    result = search.frontier(
        model,
        names,
        isl=isl,
        osl=osl,
        ttft_s=parse_duration(ttft, "--ttft", 60.0),
        tpot_s=parse_duration(tpot, "--tpot", 10.0),
        formats=chosen_formats,
        tp=degrees,
        pp=stages,
        ep=experts,
        attention_dp=ranks,
        concurrency=parse_ints(concurrency, "--concurrency", high=65536),
        modes=modes,
        engine=_engine_name(engine),
        kv_dtype=kv_dtype,
        usd_per_hour=prices or None,
        token_budget=token_budget,
    )
    points = result.points
    shown = np.arange(len(points)) if show_all else result.frontier_index
    # the launch value each system's workers took: the flag's, else the engine's own default there
    budgets = {
        hw.name: token_budget if token_budget is not None else default_token_budget(_engine_name(engine), hw)
        for hw in (load_hardware(name) for name in names)
    }
    rows = [
        {"label": points.label(int(i))} | record | {"best": int(i) == result.best}
        for i, record in zip(shown, points.records(shown), strict=True)
    ]
    objectives = (
        ", ".join(
            f"mean {label} <= {value * 1e3:,.4g} ms"
            for label, value in (("TTFT", result.ttft_s), ("TPOT", result.tpot_s))
            if value is not None
        )
        or "no latency objective"
    )
    best = (
        None
        if result.best is None
        else points.records([result.best])[0] | {"label": points.label(result.best)}
    )
    # the cheapest point meeting the objectives may lie off the frontier (a point of its system with more
    # tokens/s per GPU and per user misses them): the table and the CSV show it apart, below the frontier,
    # not left out
    off = (
        []
        if show_all or best is None or best["on_frontier"]
        else [{"label": best["label"]} | {k: v for k, v in best.items() if k != "label"} | {"best": True}]
    )
    if as_json:
        print_json(
            {
                "model": model,
                "isl": isl,
                "osl": osl,
                "ttft_objective_s": result.ttft_s,
                "tpot_objective_s": result.tpot_s,
                "best": best,
                "token_budget_by_system": budgets,
                "points" if show_all else "frontier": rows,
                "skipped": [{"candidate": what, "reason": why} for what, why in result.skipped],
            }
        )
    elif as_csv:
        print_csv(rows + off)
    else:
        table = Table(
            "deployment",
            "concurrency",
            "GPUs",
            "TTFT \\[ms]",  # escaped: rich reads [ms] as a style
            "TPOT \\[ms]",
            "tokens/s/user",
            "output tokens/s/GPU",
            "$/M output tokens",
            "meets",
            title=f"{model}, isl {isl}, osl {osl}: {'every point' if show_all else 'Pareto frontier'} "
            f"by system ({objectives}; * = cheapest meeting them)",
        )
        for r in rows + off:
            if off and r is off[0]:
                table.add_section()
            table.add_row(
                ("* " if r["best"] else "") + r["label"],
                str(r["concurrency"]),
                str(r["gpus"]),
                f"{r['ttft_s'] * 1e3:,.1f}",
                f"{r['tpot_s'] * 1e3:,.2f}",
                f"{r['tokens_per_s_per_user']:,.1f}",
                f"{r['output_tokens_per_s_per_gpu']:,.0f}",
                _money(r["usd_per_million_output_tokens"], 3),
                "yes" if r["meets_slo"] else "no",
            )
        out.print(table)
        launched = ", ".join(f"{name} {value:,}" for name, value in budgets.items())
        out.print(
            f"[dim]Token budget per iteration ({'--token-budget' if token_budget else 'the engine default'}"
            f"): {launched} tokens, raised to a point's clients per worker where they are more.[/]"
        )
        if off:
            out.print(
                "[dim]* is off the frontier (below the line): a point of its system with more tokens/s "
                "per GPU and per user misses the objectives.[/]"
            )
        if note := _no_price_note(
            [{"hardware": r["system"], "usd_per_hour": r["usd_per_hour"]} for r in rows]
        ):
            out.print(f"[dim]{note}[/]")
        if result.skipped:
            out.print(
                f"[dim]{len(result.skipped)} candidates skipped (--json lists each with its reason), e.g. "
                f"{result.skipped[0][0]}: {result.skipped[0][1]}[/]",
                markup=True,
                highlight=False,
            )
    if best is None:
        if result.ttft_s is None and result.tpot_s is None:
            return
        unpriced = sorted({str(s) for s in points.system[points.meets_slo]})
        if unpriced:  # points meet the objectives, but none has a price to rank by
            raise fail(
                f"no deployment meets {objectives} with a price: {', '.join(unpriced)} meet"
                f"{'s' if len(unpriced) == 1 else ''} them but {'has' if len(unpriced) == 1 else 'have'} "
                f"no on-demand price; give one with --usd-per-hour (e.g. --usd-per-hour {unpriced[0]}=5.0)",
                code=1,
            )
        raise fail(
            f"no deployment meets {objectives}; relax the objectives, or try more --hardware, --formats "
            "or --tp",
            code=1,
        )
    lead = "cheapest meeting" if result.ttft_s or result.tpot_s else "cheapest point, with"
    plural = "s" if best["gpus"] > 1 else ""
    err.print(
        f"{lead} {objectives}: {best['label']} at concurrency {best['concurrency']} ({best['gpus']} "
        f"GPU{plural}), {_money(best['usd_per_million_output_tokens'], 3)} $ per million output tokens",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _check_engine_runs(engine: str, systems: list[str]) -> None:
    """Refuse ``--engine`` where none of ``systems`` is of a vendor it runs on
    (:data:`costmodel.memory.ENGINE_VENDORS`), naming the flag, before any work."""
    from costmodel.memory import ENGINE_VENDORS

    vendors = ENGINE_VENDORS.get(engine)
    if vendors is None:
        return
    devices = [load_hardware(name) for name in systems]
    if devices and all(hw.vendor not in vendors for hw in devices):
        vendor = {"amd": "AMD", "nvidia": "NVIDIA", "google": "Google"}
        on = ", ".join(f"{hw.name} ({vendor.get(hw.vendor, hw.vendor)})" for hw in devices)
        others = " or ".join(e for e in ("vllm", "sglang") if e not in ENGINE_VENDORS)
        raise CostmodelError(f"--engine {engine} does not run on {on}: use --engine {others}")


def _engine_name(name: str) -> str:
    from costmodel.loop_params import read_engine_params

    known = read_engine_params()
    if name not in known:
        raise CostmodelError(f"--engine {name!r} has no fitted parameters: use {', '.join(sorted(known))}")
    return name


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
