"""Read the public per-kernel latency tables (NVIDIA aiconfigurator's layout) as they are.

Layout (any system, family, engine and version)::

    DIR/kernels/<system>/<family>/<engine>/<version>/<table>.parquet   # one row per measured shape
    DIR/kernels/<system>/<family>/<engine>/<version>/collection_meta.yaml

Each table keeps its own columns untouched (``latency`` stays in milliseconds) and gains:
``system``, ``engine`` and ``engine_version`` (from the folders), ``table`` (the file stem), ``hardware``
(the costmodel profile the system maps to), ``latency_s`` (``latency`` / 1000) and ``calibration`` (the
split rule of :mod:`validation.public.split`, applied to the file's own columns before anything is added).

An unknown system folder or a column this reader has never seen is one :class:`CostmodelError` naming it:
a new column may change what a row means (a new shape dimension, a new kernel switch), so it is read only
once somebody has said how.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from costmodel.errors import CostmodelError
from validation.public.split import calibration_mask

SYSTEM_PROFILES: dict[str, str] = {
    "h100_sxm": "h100-sxm",
    "h200_sxm": "h200",
    "b200_sxm": "b200",
    # the device column of these tables reads 'NVIDIA A100-SXM4-80GB', and systems/a100_sxm.yaml says 80 GiB
    "a100_sxm": "a100-80gb",
    "l40s": "l40s",
    "gb200": "gb200",
    "b300_sxm": "b300",
    "gb300": "gb300",
    "rtx_pro_6000_server": "rtx-pro-6000-server",
}
"""System folder of the public tables -> costmodel hardware profile name."""

KNOWN_COLUMNS: frozenset[str] = frozenset(
    {
        # every table
        "framework", "version", "device", "op_name", "kernel_source", "latency",
        # gemm
        "gemm_dtype", "m", "n", "k",
        # attention
        "batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "window_size", "beam_width",
        "attn_dtype", "kv_cache_dtype", "step",
        # mla (kernel and module), mla_bmm
        "mla_dtype", "tp_size", "model", "architecture", "gemm_type", "bmm_dtype", "num_tokens",
        # moe
        "moe_dtype", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size",
        "distribution",
        # collectives
        "nccl_dtype", "allreduce_dtype", "num_gpus", "message_size", "backend", "implementation",
    }
)  # fmt: skip
"""Every column the public tables are known to carry (union over families)."""

ADDED_COLUMNS = ("system", "engine", "engine_version", "table", "hardware", "latency_s", "calibration")


@dataclass(frozen=True)
class Table:
    """One parquet file: where it came from and its rows (with the added columns)."""

    system: str
    family: str
    engine: str
    engine_version: str
    name: str
    path: Path
    frame: pd.DataFrame = field(repr=False)
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def hardware(self) -> str:
        """The costmodel hardware profile name of this table's system."""
        return SYSTEM_PROFILES[self.system]


def hardware_name(system: str) -> str:
    """The costmodel hardware profile for a public system folder name; CostmodelError if unknown."""
    try:
        return SYSTEM_PROFILES[system]
    except KeyError:
        known = ", ".join(sorted(SYSTEM_PROFILES))
        raise CostmodelError(
            f"unknown system {system!r} in the public tables; known: {known} "
            "(add it to validation/public/reader.py SYSTEM_PROFILES with its hardware profile)"
        ) from None


def table_paths(root: str | Path) -> list[Path]:
    """Every ``kernels/<system>/<family>/<engine>/<version>/*.parquet`` under ``root``, sorted."""
    base = Path(root) / "kernels"
    if not base.is_dir():
        raise CostmodelError(f"{root} has no kernels/ folder (expected DIR/kernels/<system>/<family>/...)")
    return sorted(base.glob("*/*/*/*/*.parquet"))


def read_table(path: str | Path) -> Table:
    """One table, checked (system known, columns known, a positive latency) and with the added columns."""
    path = Path(path)
    version_dir = path.parent
    engine_version, engine = version_dir.name, version_dir.parent.name
    family, system = version_dir.parent.parent.name, version_dir.parent.parent.parent.name
    hardware = hardware_name(system)
    try:
        frame = pd.read_parquet(path)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise CostmodelError(f"reading {path} needs pyarrow (pip install pyarrow): {e}") from None
    unknown = sorted(set(frame.columns) - KNOWN_COLUMNS)
    if unknown:
        raise CostmodelError(
            f"{path}: unexpected column {', '.join(repr(c) for c in unknown)}; the reader does not know what "
            "it means (add it to validation/public/reader.py KNOWN_COLUMNS and to the family's adapter)"
        )
    clash = sorted(set(frame.columns) & set(ADDED_COLUMNS))
    if clash or "latency" not in frame.columns or "op_name" not in frame.columns:
        missing = "a 'latency' and an 'op_name' column" if not clash else f"no column named {clash}"
        raise CostmodelError(f"{path}: expected {missing}")
    calibration = calibration_mask(frame)  # on the file's own columns, before anything is added
    frame = frame.assign(
        system=system,
        engine=engine,
        engine_version=engine_version,
        table=path.stem,
        hardware=hardware,
        latency_s=frame["latency"].astype("float64") * 1e-3,
        calibration=calibration,
    )
    meta_path = version_dir / "collection_meta.yaml"
    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return Table(system, family, engine, engine_version, path.stem, path, frame, meta or {})


def iter_tables(root: str | Path, *, systems: Iterable[str] | None = None) -> Iterator[Table]:
    """Every table under ``root`` (optionally only some system folders), one at a time."""
    wanted = set(systems) if systems is not None else None
    for path in table_paths(root):
        system = path.parent.parent.parent.parent.name
        if wanted is None or system in wanted:
            yield read_table(path)


def read_revision(root: str | Path) -> str:
    """The data's revision (the ``REVISION`` file beside ``kernels/``), or 'unknown'."""
    path = Path(root) / "REVISION"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else "unknown"
