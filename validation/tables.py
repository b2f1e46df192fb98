"""The docs' figure tables, rendered from the committed results only (issues #14 and #16).

``python -m validation tables`` prints every generated table; ``--write`` rewrites each block in place in
README.md, docs/validation.md and docs/serving.md; ``--check`` exits 1 naming each block whose text differs
from what the committed files give. A block sits between two HTML comments::

    <!-- generated: NAME (python -m validation tables) -->
    ...
    <!-- end generated: NAME -->

Inputs, all committed (nothing is measured or predicted here): ``validation/results/public-gpu-summary.json``
(the kernel keys and the ``silicon`` list), ``public-gpu-regimes.json`` (``families``: every held-out row of
a device and family pooled), ``public-gpu-transfer.json`` (leave one device out),
``validation/results/cpu-quick.jsonl`` (through :func:`validation.report.markdown`),
``benchmarks/results/aiconfigurator-silicon.json`` and ``hardware_profiles/calibrated/serving-engines.yaml``.
A table that carries prose columns (a diagnosis, a parameter's meaning) generates its figure columns and
keeps each prose cell from the doc, matched by the row's first cell (a renamed row loses its prose;
``--write`` names every row left without one). Formats:
|error| in %, medians to 1 decimal, p90 to 1 decimal (kernels) or 0 (serving, transfer; the aiconfigurator
comparison gives both to 0); a figure over its target is bold (:data:`KERNEL_TARGETS`,
:data:`SERVING_TARGETS`,
:data:`TRANSFER_MEDIAN_TARGET`); a missing cell is ``-``.

Regeneration order: ``validation public``, ``validation transfer``, ``benchmarks.bench_aiconfigurator
--reuse``, then ``validation tables --write`` (docs/validation.md, "Keeping calibration honest").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from costmodel import closed_loop, disagg
from costmodel.errors import CostmodelError

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (README.md, docs/, validation/results/)."""

RESULTS = Path("validation/results")
AICONFIGURATOR = Path("benchmarks/results/aiconfigurator-silicon.json")
"""``benchmarks.bench_aiconfigurator``'s figures: aiconfigurator and costmodel on the same serving rows."""
SERVING_YAML = Path("hardware_profiles/calibrated/serving-engines.yaml")
COMMAND = "python -m validation tables"

KERNEL_TARGETS = (0.10, 0.25)
"""Per device and kernel family: held-out median and p90 |error| (issue 14)."""
SERVING_TARGETS = {"ttft": (0.20, 0.50), "tpot": (0.10, 0.25)}
"""Per system, engine and mode: median and p90 |error| of TTFT and TPOT (issue 16)."""
TRANSFER_MEDIAN_TARGET = 0.15
"""Leave one device out: median |error| per device and family (issue 14)."""

SYSTEMS = {"h100_sxm": "H100 SXM", "b200_sxm": "B200", "a100_sxm": "A100 80GB", "l40s": "L40S"}
"""The public tables' systems, in the docs' column order, with their labels."""
PROFILES = {"h100-sxm": "H100 SXM", "b200": "B200", "a100-80gb": "A100 80GB", "l40s": "L40S"}
"""A transfer source's hardware profile -> its label."""
ENGINES = {"vllm": "vLLM", "sglang": "SGLang", "trtllm": "TensorRT-LLM", "nccl": "NCCL"}

FAMILY_ROWS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("GEMM", (("gemm",),)),
    ("context attention", (("context_attention",),)),
    ("generation attention", (("generation_attention",),)),
    ("MLA context (kernel / module)", (("mla_context", "context_mla"), ("mla_context_module",))),
    ("MLA generation (kernel / module)", (("mla_generation", "generation_mla"), ("mla_generation_module",))),
    ("MLA absorb matmuls (pre / post)", (("mla_gen_pre",), ("mla_gen_post",))),
    ("MoE", (("moe",),)),
    ("all-reduce", (("all_reduce",),)),
    ("all-gather", (("all_gather",),)),
    ("reduce-scatter", (("reduce_scatter",),)),
    ("all-to-all", (("alltoall",),)),
)
"""Per-family table rows: label, then its parts, each the family names a device's tables may use (vLLM's
A100 MLA tables are ``context_mla`` / ``generation_mla``). A row of two parts shows ``a, b``; a device with
one part only names it (``4.7 / 21.4 (kernel)``)."""

TRANSFER_FAMILIES = (
    ("GEMM", "gemm"),
    ("context attn.", "context_attention"),
    ("generation attn.", "generation_attention"),
    ("MoE", "moe"),
    ("all-reduce", "all_reduce"),
)


@dataclass(frozen=True)
class LoopRow:
    """A row of the serving parameter table: a yaml entry shown in ``unit`` (``scale`` x SI)."""

    label: str
    unit: str
    scale: float
    bounds: tuple[float, float]
    values: Callable[[Mapping[str, Any]], Mapping[str, float]]
    """Engine -> value [SI] from the yaml document."""
    held: bool = False
    """Not fitted (held at its value by ``silicon-calibrate``)."""


def _engine_field(name: str) -> Callable[[Mapping[str, Any]], Mapping[str, float]]:
    return lambda doc: {e: float(p[name]) for e, p in doc["engines"].items() if name in p}


def _disagg_field(key: str) -> Callable[[Mapping[str, Any]], Mapping[str, float]]:
    return lambda doc: {e: float(v) for e, v in doc.get(key, {}).items()}


def _loop_row(name: str, unit: str, scale: float) -> LoopRow:
    return LoopRow(f"`{name}`", unit, scale, closed_loop.BOUNDS[name], _engine_field(name))


def _disagg_row(name: str, unit: str, scale: float, held: bool = False) -> LoopRow:
    return LoopRow(
        f"`{name}` (disagg)", unit, scale, disagg.BOUNDS[name], _disagg_field(f"disagg_{name}"), held
    )


LOOP_ROWS: tuple[LoopRow, ...] = (
    _loop_row("step_overhead_s", "ms / iteration", 1e3),
    _loop_row("overlapped_host_s", "ms / iteration", 1e3),
    _loop_row("layer_step_overhead_s", "µs / layer / iteration", 1e6),
    _loop_row("request_overhead_s", "ms / request", 1e3),
    _loop_row("burst_fraction", "-", 1.0),
    _loop_row("prefill_layer_overhead_s", "ms / layer", 1e3),
    _loop_row("mla_prefill_layer_overhead_s", "ms / MLA layer", 1e3),
    _loop_row("first_token_lag_iterations", "iterations", 1.0),
    _disagg_row("kv_transfer_overhead_s", "ms / request", 1e3),
    _disagg_row("burst_fraction", "-", 1.0),
    _disagg_row("decode_share_dispersion", "-", 1.0, held=True),
)
"""The serving parameter table's rows, in the docs' order (``closed_loop.BOUNDS``, ``disagg.BOUNDS``);
``decode_share_dispersion`` is held at 0 (round robin), not fitted (the yaml's ``fitted_on``)."""

SERVING_ENGINES = ("vllm", "sglang", "trtllm")
AT_BOUND_FRACTION = 1e-6
"""A value within this share of its range from a bound sits at that bound."""


@dataclass(frozen=True)
class Results:
    """The committed result files a table reads."""

    summary: Mapping[str, Any]
    regimes: Mapping[str, Any]
    transfer: Mapping[str, Any]
    engines: Mapping[str, Any]
    cpu_markdown: str
    aiconfigurator: Mapping[str, Any] = field(default_factory=dict)
    cpu_environment: Mapping[str, Any] = field(default_factory=dict)
    """The CPU run's ``environment`` record (date, revision, threads, clock, load average)."""


def load_results(root: Path = ROOT) -> Results:
    """Read the committed results under ``root``; one error naming a missing file."""
    paths = {name: root / RESULTS / f"public-gpu-{name}.json" for name in ("summary", "regimes", "transfer")}
    paths["aiconfigurator"] = root / AICONFIGURATOR
    for path in [*paths.values(), root / SERVING_YAML, root / RESULTS / "cpu-quick.jsonl"]:
        if not path.is_file():
            raise CostmodelError(f"{path}: no such results file; regenerate it (docs/validation.md)")
    from validation.report import load, markdown
    from validation.run import read_records

    docs = {name: json.loads(path.read_text()) for name, path in paths.items()}
    cpu_path = root / RESULTS / "cpu-quick.jsonl"
    cpu = markdown(load([cpu_path]))
    environment = next((r for r in read_records(cpu_path) if r.get("record") == "environment"), None)
    if environment is None:
        raise CostmodelError(f"{cpu_path}: no environment record; regenerate it (docs/validation.md)")
    engines = yaml.safe_load((root / SERVING_YAML).read_text())
    return Results(
        docs["summary"], docs["regimes"], docs["transfer"], engines, cpu, docs["aiconfigurator"], environment
    )


# --- formatting ---------------------------------------------------------------------------------------


def pct(error: float | None, decimals: int, target: float | None = None, sign: bool = False) -> str:
    """``error`` (a fraction) in % to ``decimals``; bold when over ``target`` (the unrounded figure);
    ``-`` when missing."""
    if error is None:
        return "-"
    text = f"{100 * error:+.{decimals}f}" if sign else f"{100 * error:.{decimals}f}"
    return f"**{text}**" if target is not None and error > target else text


def pair(
    median: float | None, p90: float | None, p90_decimals: int, targets: tuple[float, float] | None
) -> str:
    """``median / p90`` in %, each bold over its target; ``-`` when the group has no rows."""
    if median is None or p90 is None:
        return "-"
    lo, hi = targets if targets is not None else (None, None)
    return f"{pct(median, 1, lo)} / {pct(p90, p90_decimals, hi)}"


def sig3(value: float) -> str:
    """``value`` to 3 significant figures, trailing zeros kept (1.40, 50.0, 151)."""
    return f"{value:#.3g}".rstrip(".")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def table_cells(text: str) -> dict[str, list[str]]:
    """A markdown table's rows in ``text``, keyed by the first cell (for a block's prose cells)."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells:
            rows.setdefault(cells[0], cells)
    return rows


class ProseCells(dict[str, list[str]]):
    """:func:`table_cells` of a block's old body, noting each row whose prose :func:`kept` found empty."""

    def __init__(self, rows: Mapping[str, list[str]]) -> None:
        super().__init__(rows)
        self.empty: list[str] = []


def kept(old: Mapping[str, list[str]], key: str, column: int) -> str:
    """The doc's prose cell of row ``key`` (empty for a new row, or one whose first cell was renamed: noted in
    ``old.empty`` when ``old`` is a :class:`ProseCells`)."""
    cells = old.get(key, [])
    text = cells[column] if column < len(cells) else ""
    if not text and isinstance(old, ProseCells):
        old.empty.append(key)
    return text


# --- kernel tables ------------------------------------------------------------------------------------


def family_figures(regimes: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(system, family) -> the held-out row of ``regimes.json`` ``families``."""
    columns = regimes["families"]["columns"]
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for values in regimes["families"]["data"]:
        row = dict(zip(columns, values, strict=True))
        if row["split"] == "held-out":
            out[row["system"], row["family"]] = row
    return out


def family_cell(
    figures: Mapping[tuple[str, str], Mapping[str, Any]], system: str, parts: Sequence[Sequence[str]]
) -> str:
    """One device's cell of a per-family row: ``median / p90``, a two-part row's parts as ``a, b``, a lone
    part named (``4.7 / 21.4 (kernel)``), ``-`` without rows."""
    found = []
    for i, families in enumerate(parts):
        row = next((figures[system, f] for f in families if (system, f) in figures), None)
        if row is not None:
            found.append((i, pair(row["median_abs_err"], row["p90_abs_err"], 1, KERNEL_TARGETS)))
    if not found:
        return "-"
    if len(found) == 1 and len(parts) == 2:
        i, text = found[0]
        return f"{text} ({_part_name(parts, i)})"
    return ", ".join(text for _, text in found)


def _part_name(parts: Sequence[Sequence[str]], i: int) -> str:
    """The name of part ``i`` of a two-part row: pre / post for the absorb matmuls, else kernel / module."""
    return ("pre", "post")[i] if parts[0][0] == "mla_gen_pre" else ("kernel", "module")[i]


def families_table(results: Results, old: Mapping[str, list[str]], *, gemm: bool, diagnosis: bool) -> str:
    figures = family_figures(results.regimes)
    header = ["family", *SYSTEMS.values()] + (["leading diagnosis of the misses"] if diagnosis else [])
    rows = []
    for label, parts in FAMILY_ROWS:
        if label == "GEMM" and not gemm:
            continue
        row = [label] + [family_cell(figures, system, parts) for system in SYSTEMS]
        rows.append(row + ([kept(old, label, len(row))] if diagnosis else []))
    return table(header, rows)


def gemm_table(results: Results, old: Mapping[str, list[str]]) -> str:
    """README: GEMMs per device, held-out, with the fit key of the highest median."""
    figures = family_figures(results.regimes)
    keys = [k for k in results.summary["kernels"] if k["family"] == "gemm" and k["split"] == "held-out"]
    header = [
        "device",
        "GEMM rows held out",
        "median abs err",
        "p90 abs err",
        "worst key (engine, dtype, kernel) median",
    ]
    rows = []
    for system, label in SYSTEMS.items():
        row = figures.get((system, "gemm"))
        if row is None:
            rows.append([label, "-", "-", "-", "-"])
            continue
        own = [k for k in keys if k["system"] == system]
        worst = max(own, key=lambda k: k["median_abs_err"], default=None)
        name = (
            "-"
            if worst is None
            else (
                f"{pct(worst['median_abs_err'], 1)}% ({ENGINES.get(worst['engine'], worst['engine'])} "
                f"{worst['dtype']} {worst['kernel']})"
            )
        )
        lo, hi = KERNEL_TARGETS
        rows.append(
            [
                label,
                f"{row['n']:,}",
                f"{pct(row['median_abs_err'], 1, lo)}%",
                f"{pct(row['p90_abs_err'], 1, hi)}%",
                name,
            ]
        )
    return table(header, rows)


def transfer_table(results: Results, old: Mapping[str, list[str]]) -> str:
    """docs/validation.md: leave one device out, median / p90 per device and family, the count below."""
    pooled = {
        (r["system"], r["family"]): r
        for r in results.transfer["transfer"]
        if (r["engine"], r["dtype"], r["lookup"]) == ("all", "all", "all")
    }
    sources = results.transfer["leave_one_out"]
    profiles = {s: results.summary["environment"]["systems"][s]["hardware_profile"][0] for s in SYSTEMS}
    header = ["device (parameters from)", *(label for label, _ in TRANSFER_FAMILIES)]
    rows, met, cells = [], 0, 0
    for system, label in SYSTEMS.items():
        source = sources.get(profiles[system], "")
        row = [f"{label} ({PROFILES.get(source, source)})"]
        for _, family in TRANSFER_FAMILIES:
            r = pooled.get((system, family))
            if r is None:
                row.append("-")
                continue
            cells += 1
            met += r["median_abs_err"] <= TRANSFER_MEDIAN_TARGET
            row.append(f"{pct(r['median_abs_err'], 1, TRANSFER_MEDIAN_TARGET)} / {pct(r['p90_abs_err'], 0)}")
        rows.append(row)
    note = (
        f"{met} of the {cells} medians meet the {TRANSFER_MEDIAN_TARGET * 100:g} % target "
        f"(costmodel revision {results.transfer['costmodel_revision']}, {results.transfer['date']})."
    )
    return table(header, rows) + "\n\n" + note


# --- serving tables -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingGroup:
    system: str
    engine: str
    mode: str
    covered: int
    total: int
    figures: Mapping[tuple[str, str], Mapping[str, Any]]
    """(split, metric) -> the ``silicon`` entry."""

    def get(self, split: str, metric: str, field: str) -> Any:
        entry = self.figures.get((split, metric))
        return None if entry is None or not entry["n"] else entry[field]

    def n(self, split: str) -> int:
        entry = self.figures.get((split, "ttft"))
        return 0 if entry is None else int(entry["n"])

    def cell(self, split: str, metric: str, p90_decimals: int = 0, bold: bool = True) -> str:
        targets = SERVING_TARGETS[metric] if bold else None
        return pair(
            self.get(split, metric, "median_abs_err"),
            self.get(split, metric, "p90_abs_err"),
            p90_decimals,
            targets,
        )

    def signed(self, split: str, metric: str) -> str:
        return pct(self.get(split, metric, "median_signed_err"), 1, sign=True)


def serving_groups(summary: Mapping[str, Any]) -> list[ServingGroup]:
    """The ``silicon`` list per system, engine and mode, in the summary's order; coverage over both splits."""
    groups: dict[tuple[str, str, str], dict[tuple[str, str], Mapping[str, Any]]] = {}
    for entry in summary["silicon"]:
        groups.setdefault((entry["system"], entry["engine"], entry["mode"]), {})[
            entry["split"], entry["metric"]
        ] = entry
    out = []
    for (system, engine, mode), figures in groups.items():
        ttft = [e for (_, metric), e in figures.items() if metric == "ttft"]
        covered, total = sum(int(e["covered"]) for e in ttft), sum(int(e["total"]) for e in ttft)
        out.append(ServingGroup(system, engine, mode, covered, total, figures))
    return out


def _system(system: str, short: bool) -> str:
    label = SYSTEMS.get(system, system)
    return label.split()[0] if short else label


def _group_label(g: ServingGroup) -> str:
    """``B200 SGLang agg``: a group's key in docs/serving.md."""
    return f"{_system(g.system, True)} {ENGINES.get(g.engine, g.engine)} {g.mode}"


def serving_cells_met(groups: Sequence[ServingGroup]) -> tuple[int, int]:
    """Held-out cells (group x metric with rows) meeting both targets, and how many there are."""
    met = cells = 0
    for g in groups:
        for metric, (lo, hi) in SERVING_TARGETS.items():
            median, p90 = (
                g.get("held-out", metric, "median_abs_err"),
                g.get("held-out", metric, "p90_abs_err"),
            )
            if median is None:
                continue
            cells += 1
            met += median <= lo and p90 <= hi
    return met, cells


def readme_serving_table(results: Results, old: Mapping[str, list[str]]) -> str:
    """README: held-out and calibration TTFT / TPOT per covered group, bold over target, the count below."""
    groups = serving_groups(results.summary)
    header = [
        "system",
        "engine",
        "mode",
        "covered / rows",
        "held-out rows",
        "TTFT",
        "TPOT",
        "calibration rows",
        "calibration TTFT",
        "calibration TPOT",
    ]
    rows = [
        [
            _system(g.system, False),
            ENGINES.get(g.engine, g.engine),
            g.mode,
            f"{g.covered:,} / {g.total:,}",
            f"{g.n('held-out'):,}",
            g.cell("held-out", "ttft"),
            g.cell("held-out", "tpot"),
            f"{g.n('calibration'):,}",
            g.cell("calibration", "ttft"),
            g.cell("calibration", "tpot"),
        ]
        for g in groups
        if g.covered
    ]
    met, cells = serving_cells_met(groups)
    note = (
        f"{met} of the {cells} held-out system x engine x mode x metric cells meet both targets "
        f"(costmodel revision {results.summary['costmodel_revision']}, {results.summary['date']})."
    )
    return table(header, rows) + "\n\n" + note


def validation_serving_table(results: Results, old: Mapping[str, list[str]]) -> str:
    """docs/validation.md: every group, held-out median / p90 (median signed), calibration medians."""
    groups = serving_groups(results.summary)
    header = [
        "system",
        "engine",
        "mode",
        "covered / total",
        "held-out rows",
        "held-out TTFT",
        "held-out TPOT",
        "calibration TTFT / TPOT median",
    ]
    rows = []
    for g in groups:
        held = [
            "-"
            if g.get("held-out", m, "median_abs_err") is None
            else f"{g.cell('held-out', m, bold=False)} % ({g.signed('held-out', m)} %)"
            for m in ("ttft", "tpot")
        ]
        ttft, tpot = (g.get("calibration", m, "median_abs_err") for m in ("ttft", "tpot"))
        calibration = "-" if ttft is None or tpot is None else f"{pct(ttft, 1)} / {pct(tpot, 1)} %"
        rows.append(
            [
                _system(g.system, True),
                ENGINES.get(g.engine, g.engine),
                g.mode,
                f"{g.covered:,} / {g.total:,}",
                f"{g.n('held-out'):,}",
                *held,
                calibration,
            ]
        )
    return table(header, rows)


def serving_misses_table(results: Results, old: Mapping[str, list[str]]) -> str:
    """docs/serving.md "Where it misses today": the figure columns; the diagnosis kept from the doc."""
    groups = serving_groups(results.summary)
    header = [
        "system, engine, mode",
        "held-out rows",
        "TTFT",
        "TPOT",
        "calibration TTFT / TPOT median",
        "leading diagnosis of the miss",
    ]
    rows = []
    for g in groups:
        if not g.n("held-out"):
            continue
        key = _group_label(g)
        ttft, tpot = (g.get("calibration", m, "median_abs_err") for m in ("ttft", "tpot"))
        rows.append(
            [
                key,
                f"{g.n('held-out'):,}",
                f"{g.cell('held-out', 'ttft')} ({g.signed('held-out', 'ttft')})",
                f"{g.cell('held-out', 'tpot')} ({g.signed('held-out', 'tpot')})",
                f"{pct(ttft, 1)} / {pct(tpot, 1)}",
                kept(old, key, 5),
            ]
        )
    covered = sum(g.covered for g in groups)
    total = sum(g.total for g in groups)
    none = [f"{_group_label(g)} has {g.covered} of {g.total} covered" for g in groups if g.covered == 0]
    note = (
        f"Costmodel revision {results.summary['costmodel_revision']}, {results.summary['date']}. "
        f"Covered: {covered:,} of {total:,} deployments" + "".join(f"; {n}" for n in none) + "."
    )
    return table(header, rows) + "\n\n" + note


def aiconfigurator_table(results: Results, old: Mapping[str, list[str]]) -> str:
    """docs/serving.md "Side by side with NVIDIA aiconfigurator": held-out rows, both tools, integer %."""
    entries = [e for e in results.aiconfigurator["figures"] if e["rows"] == "held-out"]
    by_group: dict[tuple[str, str, str], dict[str, Mapping[str, Any]]] = {}
    for e in entries:
        by_group.setdefault((e["system"], e["engine"], e["mode"]), {})[e["tool"]] = e
    tools = ("aiconfigurator", "costmodel")
    header = [
        "system", "engine", "mode", *(f"{t} covered" for t in tools),
        *(f"{m} {t}" for m in ("TTFT", "TPOT") for t in tools),
    ]  # fmt: skip

    def cell(e: Mapping[str, Any] | None, metric: str) -> str:
        if e is None or not e["covered"]:
            return "-"
        figures = (e[f"{metric}_{k}_err"] for k in ("median_abs", "p90_abs", "median_signed"))
        median, p90, signed = figures
        return f"{pct(median, 0)} / {pct(p90, 0)} ({pct(signed, 0, sign=True)})"

    rows = []
    for (system, engine, mode), tool in by_group.items():
        label = "all" if system == "all" else _system(system, True)
        covered = [f"{tool[t]['covered']:,} / {tool[t]['total']:,}" if t in tool else "-" for t in tools]
        metrics = [cell(tool.get(t), m) for m in ("ttft", "tpot") for t in tools]
        rows.append([label, ENGINES.get(engine, engine), mode, *covered, *metrics])
    doc = results.aiconfigurator
    note = (
        f"aiconfigurator {doc['aiconfigurator_version']}; costmodel revision {doc['costmodel_revision']}, "
        f"{doc['date']} (`{AICONFIGURATOR.as_posix()}`)."
    )
    return table(header, rows) + "\n\n" + note


# --- the serving parameters ---------------------------------------------------------------------------


def loop_value(value: float, row: LoopRow) -> str:
    """A fitted value in the row's unit to 3 figures; ``0 (1e-10)`` for one that rounds to nothing."""
    lo, hi = row.bounds
    if row.held:
        return f"{sig3(value * row.scale) if value else '0'} (held)"
    if abs(value - lo) <= AT_BOUND_FRACTION * (hi - lo) and value != lo:
        return f"0 ({value * row.scale:.0e})" if lo == 0 else sig3(value * row.scale)
    return "0" if value == 0 else sig3(value * row.scale)


def at_bound(values: Mapping[str, float], row: LoopRow) -> str:
    """Which engines' values sit at a bound, bold; ``no`` when none does."""
    if row.held:
        return "held, not fitted"
    lo, hi = row.bounds
    tol = AT_BOUND_FRACTION * (hi - lo)
    sides: dict[str, list[str]] = {}
    for engine in SERVING_ENGINES:
        if engine not in values:
            continue
        v = values[engine]
        side = "lower" if abs(v - lo) <= tol else "upper" if abs(v - hi) <= tol else None
        if side:
            sides.setdefault(side, []).append(ENGINES[engine])
    if not sides:
        return "no"
    return "**" + "; ".join(f"{', '.join(e)}, {side}" for side, e in sides.items()) + "**"


def parameters_table(results: Results, old: Mapping[str, list[str]]) -> str:
    """docs/serving.md "The calibrated serving parameters": values from the yaml; meanings kept."""
    doc = results.engines
    header = [
        "parameter",
        "unit",
        "meaning (one line)",
        *(ENGINES[e] for e in SERVING_ENGINES),
        "bounds",
        "at a bound",
    ]
    harness = doc.get("harness_request_overhead_s", {})
    rows = []
    for row in LOOP_ROWS:
        values = row.values(doc)
        cells = []
        for engine in SERVING_ENGINES:
            if engine not in values:
                cells.append("-")
                continue
            text = loop_value(values[engine], row)
            if row.label == "`request_overhead_s`":
                text += "".join(
                    f" ({name}'s harness: {sig3(v * row.scale)}, `harness_request_overhead_s`)"
                    for name, v in harness.get(engine, {}).items()
                )
            cells.append(text)
        lo, hi = row.bounds
        rows.append(
            [
                row.label,
                row.unit,
                kept(old, row.label, 2),
                *cells,
                f"{lo * row.scale:g}-{hi * row.scale:g}",
                at_bound(values, row),
            ]
        )
    step, host = (_engine_field(f)(doc) for f in ("step_overhead_s", "overlapped_host_s"))
    total = "`step_overhead_s` + `overlapped_host_s`"
    rows.insert(
        2,
        [
            total,
            "ms / iteration",
            kept(old, total, 2),
            *(
                "-" if e == "sglang" or e not in step else sig3((step[e] + host[e]) * 1e3)
                for e in SERVING_ENGINES
            ),
            "-",
            "-",
        ],
    )
    fitted = doc["fitted_on"]
    note = (
        f"From `{SERVING_YAML.as_posix()}`, fitted at costmodel revision {fitted['costmodel_revision']} on "
        f"{fitted['date']} (data revision {str(fitted['data_revision'])[:7]})."
    )
    return note + "\n\n" + table(header, rows)


# --- the blocks ---------------------------------------------------------------------------------------


def cpu_table(results: Results, old: Mapping[str, list[str]]) -> str:
    """README: the committed CPU run's table, as ``validation report`` prints it, and under it the run's
    environment record (when, on what, at which revision and load)."""
    rows = "\n".join(line for line in results.cpu_markdown.splitlines() if line.startswith("|"))
    return rows + "\n\n" + cpu_note(results.cpu_environment)


def cpu_note(env: Mapping[str, Any]) -> str:
    """One line from a CPU results file's ``environment`` record."""
    when = datetime.fromisoformat(env["date"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    threads = env["cpu_threads"]
    revision = str(env["git_revision"])
    revision = revision[:7] + ("-dirty" if revision.endswith("-dirty") else "")
    load = " / ".join(f"{x:.1f}" for x in env["load_average"])
    return (
        f"Measured {when} on {env['host_cpu']}: {threads} thread{'s' if threads != 1 else ''}, "
        f"{env['clock']} clock, torch {env['torch_version']}, load average {load} (1 / 5 / 15 min); "
        f"costmodel revision {revision} (`validation/results/cpu-quick.jsonl`, suite {env['suite']})."
    )


def kernel_note(results: Results) -> str:
    return (
        f"Held-out rows of `public-gpu-regimes.json` `families`, costmodel revision "
        f"{results.regimes['costmodel_revision']}, {results.regimes['date']}."
    )


Renderer = Callable[[Results, Mapping[str, list[str]]], str]

BLOCKS: dict[str, tuple[str, Renderer]] = {
    "readme-gemm": ("README.md", gemm_table),
    "readme-families": ("README.md", lambda r, old: families_table(r, old, gemm=False, diagnosis=False)),
    "readme-serving": ("README.md", readme_serving_table),
    "readme-cpu": ("README.md", cpu_table),
    "validation-families": (
        "docs/validation.md",
        lambda r, old: kernel_note(r) + "\n\n" + families_table(r, old, gemm=True, diagnosis=True),
    ),
    "validation-transfer": ("docs/validation.md", transfer_table),
    "validation-serving": ("docs/validation.md", validation_serving_table),
    "serving-parameters": ("docs/serving.md", parameters_table),
    "serving-misses": ("docs/serving.md", serving_misses_table),
    "serving-aiconfigurator": ("docs/serving.md", aiconfigurator_table),
}
"""Block name -> the file that carries it and its renderer."""


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- generated: {name} ({COMMAND}) -->", f"<!-- end generated: {name} -->"


def find_block(text: str, name: str) -> tuple[int, int] | None:
    """The span of block ``name``'s body (between its two marker lines) in ``text``."""
    start, end = _markers(name)
    i = text.find(start + "\n")
    if i < 0:
        return None
    body = i + len(start) + 1
    j = text.find("\n" + end, body - 1)
    if j < 0:
        raise CostmodelError(f"block {name!r}: no closing '{end}'; add it after the table")
    return body, j + 1


def render_body(name: str, results: Results, old_body: str = "") -> str:
    """Block ``name``'s body: a blank line, the rendered text, a blank line."""
    return render_block(name, results, old_body)[0]


def render_block(name: str, results: Results, old_body: str = "") -> tuple[str, tuple[str, ...]]:
    """Block ``name``'s body (:func:`render_body`) and the first cells of its rows whose prose cell came back
    empty (a new row, or a renamed one that lost its prose)."""
    _, render = BLOCKS[name]
    old = ProseCells(table_cells(old_body))
    return "\n" + render(results, old) + "\n\n", tuple(old.empty)


@dataclass(frozen=True)
class Outcome:
    stale: tuple[str, ...]
    """Blocks whose text differs from the committed results'."""
    missing: tuple[str, ...]
    """Blocks whose markers are not in their file."""
    no_prose: tuple[str, ...] = ()
    """Rows (``block (file): first cell``) whose prose cell is empty after rendering: a new row, or one whose
    first cell changed, so its diagnosis was not carried over."""


def update(root: Path = ROOT, results: Results | None = None, *, write: bool = False) -> Outcome:
    """Compare (and with ``write``, rewrite) every block under ``root`` with what the results give."""
    results = results if results is not None else load_results(root)
    stale, missing, no_prose = [], [], []
    texts: dict[str, str] = {}
    for name, (file, _) in BLOCKS.items():
        text = texts.setdefault(file, (root / file).read_text())
        span = find_block(text, name)
        if span is None:
            missing.append(f"{name} ({file})")
            continue
        old = text[span[0] : span[1]]
        new, empty = render_block(name, results, old)
        no_prose += [f"{name} ({file}): {row}" for row in empty]
        if new != old:
            stale.append(f"{name} ({file})")
            texts[file] = text[: span[0]] + new + text[span[1] :]
    if write:
        for file, text in texts.items():
            if (root / file).read_text() != text:
                (root / file).write_text(text)
    return Outcome(tuple(stale), tuple(missing), tuple(no_prose))


def render_all(results: Results, root: Path = ROOT) -> str:
    """Every block as it would be written, each under its name."""
    parts = []
    for name, (file, _) in BLOCKS.items():
        text = (root / file).read_text()
        span = find_block(text, name)
        old = text[span[0] : span[1]] if span else ""
        parts.append(f"## {name} ({file})\n{render_body(name, results, old)}")
    return "\n".join(parts)
