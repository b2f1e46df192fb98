"""Shared test setup: offline Hugging Face, the fixture folder, and helpers to build oracle modules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATA = Path(__file__).parent / "data"
HF_CONFIGS = DATA / "hf_configs"
PUBLIC_GPU = Path(__file__).resolve().parents[1] / "validation" / "data" / "public-gpu"
"""The vendored public measurements (kernel tables, the silicon sample and its model configs)."""


@pytest.fixture(scope="session")
def silicon_table() -> pd.DataFrame:
    """The vendored silicon sample as :func:`validation.public.silicon.read_silicon` reads it, by row id
    (read once per test session; tests must not modify it)."""
    from validation.public.silicon import read_silicon

    return read_silicon(PUBLIC_GPU).set_index("id", drop=False)
