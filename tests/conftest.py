"""Shared test setup: offline Hugging Face, the fixture folder, and helpers to build oracle modules."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
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


@pytest.fixture
def default_dashboard_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Holds, for one test, the lock on the dashboard's default ports (``costmodel dashboard`` without
    ``--port`` takes the first free port from 8501 on). Two such servers started at once, by two pytest-xdist
    workers, could both find 8501 free and the second fail to bind it; the lock file lies in the folder all
    workers' temporary folders share, so they take turns (without xdist it is uncontended)."""
    shared = tmp_path_factory.getbasetemp().parent
    with (shared / "dashboard-default-port.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
