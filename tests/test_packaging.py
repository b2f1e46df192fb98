"""The built wheel carries the built-in profiles: an installed costmodel works without the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_model_and_hardware_profiles(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("costmodel-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    code = (
        "import costmodel; "
        f"assert costmodel.__file__.startswith({str(site)!r}), costmodel.__file__; "
        "print(len(costmodel.list_models()), len(costmodel.list_hardware())); "
        "print(costmodel.load_hardware('h100-sxm').memory_bytes)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    n_models, n_hardware = map(int, done.stdout.split()[:2])
    assert n_models >= 15
    assert n_hardware >= 13
