"""Shared test setup: offline Hugging Face, the fixture folder, and helpers to build oracle modules."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATA = Path(__file__).parent / "data"
HF_CONFIGS = DATA / "hf_configs"
