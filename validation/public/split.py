"""Which measured rows calibrate the models and which are held out: a rule on the row's identity only.

A row belongs to the calibration subset when a hash of every column except the measured ``latency``
(system, engine, version, kernel, dtype and shape) is 0 modulo 5, so about one row in five. The rule never
looks at the measurement or at any prediction, is the same for every family and tool, and is stable across
runs and machines (pandas' ``hash_pandas_object`` is deterministic).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

CALIBRATION_MODULUS = 5
MEASURED_COLUMNS = ("latency",)


def calibration_mask(table: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """True for the rows of the calibration subset, False for held-out rows."""
    identity = table[[c for c in table.columns if c not in MEASURED_COLUMNS]]
    hashes = pd.util.hash_pandas_object(identity, index=False).to_numpy()
    return np.asarray(hashes % CALIBRATION_MODULUS == 0)
