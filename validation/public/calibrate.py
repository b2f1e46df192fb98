"""The public tables as a calibration source: their calibration rows, grouped for ``costmodel.calibrate``.

Registered as the ``public`` entry point of the ``costmodel.measurements`` group (pyproject.toml), so
``costmodel calibrate --from DIR --out OUTDIR`` reads the tables without the library importing this package.
Only rows of the calibration split (:mod:`validation.public.split`) whose ``op_name`` has an adapter are
handed over; everything else is left to the evaluation (``python -m validation public``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from costmodel.calibrate import MeasuredGroup, Measurements
from validation.public.families import adapter_for
from validation.public.reader import Table, iter_tables, read_revision
from validation.public.split import CALIBRATION_MODULUS

DATA_SOURCE = "NVIDIA aiconfigurator per-kernel latency tables (https://github.com/ai-dynamo/aiconfigurator)"
ROW_RULE = (
    f"rows whose hash of every column except latency is 0 mod {CALIBRATION_MODULUS} "
    "(validation/public/split.py); the rest held out"
)


def fitted_rows(table: Table) -> npt.NDArray[np.bool_]:
    """Per row of ``table``, whether the calibration fits it: the calibration split's rows
    (:mod:`validation.public.split`), every family alike. The evaluation labels exactly these rows
    "calibration" and every other row "held-out". The MoE rows whose kernel tactic the collector left
    undetermined (:func:`validation.public.families.moe.undetermined_tactic`) are fitted with the rest:
    left out, they took most of the B200's nvfp4 rows with them (docs/kernels-moe-collective.md, "MoE at
    the end of session 11")."""
    return np.asarray(table.frame["calibration"].to_numpy(dtype=bool), dtype=bool)


def measurements(root: Path) -> Measurements:
    """Calibration rows of every covered table under ``root``, one group per (device, family, key)."""
    parts: dict[tuple[str, str, str], list[pd.DataFrame]] = {}
    for table in iter_tables(root):
        frame = table.frame[fitted_rows(table)]
        for op_name, rows in frame.groupby("op_name", sort=True):
            adapter = adapter_for(str(op_name))
            if adapter is not None:
                parts.setdefault((table.hardware, str(op_name), adapter.__name__), []).append(rows)
    groups = []
    for (hardware, op_name, _), frames in sorted(parts.items()):
        rows = pd.concat(frames, ignore_index=True)
        adapter = adapter_for(op_name)
        assert adapter is not None
        keys = np.asarray(adapter.params_key(rows), dtype=str)
        shapes = adapter.shapes(rows)
        measured = rows["latency_s"].to_numpy(dtype=np.float64)
        for key in np.unique(keys):
            mask = keys == key
            groups.append(
                MeasuredGroup(
                    hardware=hardware,
                    family=adapter.KERNEL_MODULE,
                    key=str(key),
                    measured_s=measured[mask],
                    shapes={name: np.asarray(value)[mask] for name, value in shapes.items()},
                )
            )
    return Measurements(groups=groups, source=DATA_SOURCE, revision=read_revision(root), row_rule=ROW_RULE)
