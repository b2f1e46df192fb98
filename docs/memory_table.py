"""Write the published-checkpoint and deployment tables into docs/models.md, from running costmodel.

    python docs/memory_table.py           # rewrite the block between the markers in docs/models.md
    python docs/memory_table.py --check   # exit 1 if the committed block differs from what the code gives

The figures come from ``costmodel_app/published.py`` (published figures with their sources, and
costmodel's computed for the same checkpoint and split), the module the dashboard's Memory page shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "models.md"
START, END = "<!-- memory-table:start -->", "<!-- memory-table:end -->"
GIB = 2**30


def _difference(fraction: float) -> str:
    return "0 (to the byte)" if fraction == 0 else f"{fraction:+.3%}"


def render() -> str:
    """The markdown block, markers included."""
    sys.path[:0] = [str(ROOT), str(ROOT / "costmodel_app")]  # this checkout's library and app
    import published  # the app's own module, as the dashboard imports it

    lines = [
        START,
        "<!-- written by docs/memory_table.py from costmodel_app/published.py; do not edit by hand -->",
        "",
        "| repository | profile, checkpoint | published [bytes] | costmodel [bytes] | difference "
        "| what it stores | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in published.checkpoint_table().itertuples():
        lines.append(
            f"| {r.repository} | {r.model}, {r.checkpoint} | {r.published_bytes:,} | {r.costmodel_bytes:,} "
            f"({r.costmodel_bytes / GIB:.2f} GiB) | {_difference(r.difference_fraction)} "
            f"| {r.note or 'bf16'} | {r.source} |"
        )
    lines += [
        "",
        "| deployment | costmodel for the same split | published weights per GPU | costmodel | difference "
        "| with the engine's weight layout | why | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in published.deployment_table().itertuples():
        layout = (
            f"{d.with_engine_layout_bytes_per_gpu / GIB:.2f} GiB, "
            f"{_difference(d.with_engine_layout_difference_fraction)} ({d.engine_layout})"
            if d.engine_layout != "none modelled"
            else "none modelled"
        )
        lines.append(
            f"| {d.setup} | {d.model} ({d.checkpoint}) on {d.hardware}, TP {d.tp} | "
            f"{d.published_weight_bytes_per_gpu / GIB:.2f} GiB | "
            f"{d.costmodel_weight_bytes_per_gpu / GIB:.2f} GiB | {_difference(d.difference_fraction)} "
            f"| {layout} | {d.note} | {d.source} |"
        )
    lines += [
        "",
        "Every built-in model's published checkpoints (`costmodel.memory.shipped_checkpoints`; "
        "`checkpoint_bytes(model, name)`, `size(..., checkpoint=name)`):",
        "",
        "| profile | checkpoint | formats of the matmul weights | costmodel [GiB] | source |",
        "|---|---|---|---|---|",
    ]
    for s in published.shipped_table().itertuples():
        lines.append(
            f"| {s.model} | {s.checkpoint} | {s.formats} | {s.checkpoint_bytes / GIB:.2f} | {s.source} |"
        )
    lines.append(END)
    return "\n".join(lines)


def updated(text: str) -> str:
    """``text`` with its block between the markers replaced by :func:`render`'s."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + render() + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="Exit 1 if docs/models.md is not up to date.")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = updated(text)
    if args.check:
        if new != text:
            print("docs/models.md is out of date: run python docs/memory_table.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
