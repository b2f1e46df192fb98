"""The generic kernel-parameter fitter recovers known parameters from synthetic measurements."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import pytest

from costmodel import load_hardware
from costmodel.calibrate import fit_params
from costmodel.errors import CostmodelError
from costmodel.specs import HardwareProfile


@dataclass(frozen=True)
class _Params:
    matmul_fraction: float
    launch_s: float


def _toy_family() -> ModuleType:
    """A two-parameter roofline family: time = FLOP / (peak x fraction) + launch."""
    module = ModuleType("toy_family")

    def default_params(hardware: HardwareProfile, dtype: str) -> _Params:
        return _Params(matmul_fraction=0.5, launch_s=1e-5)

    def time_s(hardware: HardwareProfile, params: _Params, *, flop: np.ndarray) -> np.ndarray:
        return flop / (hardware.peak_flop_per_s("bf16") * params.matmul_fraction) + params.launch_s

    module.Params = _Params  # type: ignore[attr-defined]
    module.BOUNDS = {"matmul_fraction": (0.05, 1.0), "launch_s": (0.0, 1e-3)}  # type: ignore[attr-defined]
    module.default_params = default_params  # type: ignore[attr-defined]
    module.time_s = time_s  # type: ignore[attr-defined]
    sys.modules.setdefault("toy_family", module)
    return module


def test_fit_recovers_the_parameters_that_generated_the_data() -> None:
    hardware = load_hardware("h100-sxm")
    family = _toy_family()
    flop = np.geomspace(1e6, 1e14, 200)
    truth = _Params(matmul_fraction=0.8, launch_s=4e-6)
    rng = np.random.default_rng(0)
    measured = family.time_s(hardware, truth, flop=flop) * rng.lognormal(0.0, 0.02, flop.size)
    measured[::37] *= 5.0  # a few outliers must not drag the fit (soft-L1 loss)
    fitted = fit_params(family, hardware, "bf16", measured, {"flop": flop})
    assert fitted.matmul_fraction == pytest.approx(0.8, rel=0.03)
    assert fitted.launch_s == pytest.approx(4e-6, rel=0.1)


def test_fixed_parameters_keep_their_start_and_nothing_to_fit_is_an_error() -> None:
    hardware = load_hardware("h100-sxm")
    family = _toy_family()
    flop = np.geomspace(1e6, 1e14, 50)
    measured = family.time_s(hardware, _Params(0.8, 4e-6), flop=flop)
    fitted = fit_params(family, hardware, "bf16", measured, {"flop": flop}, fixed=("launch_s",))
    assert fitted.launch_s == 1e-5
    with pytest.raises(CostmodelError, match="no positive"):
        fit_params(family, hardware, "bf16", np.full(3, np.nan), {"flop": flop[:3]})


def test_an_unfitted_start_is_compared_at_the_cost_least_squares_reports() -> None:
    """A start whose parameters no row is sensitive to competes with fitted starts on scipy's own cost."""
    from scipy.optimize import least_squares

    from costmodel.calibrate import F_SCALE, ROBUST_LOSSES, robust_cost

    residual = np.array([0.01, -0.3, 2.0, 0.0])
    for loss in ROBUST_LOSSES:
        result = least_squares(lambda x: residual + 0.0 * x, np.zeros(1), loss=loss, f_scale=F_SCALE)
        assert robust_cost(residual, loss) == pytest.approx(result.cost, rel=1e-12)


def _git(*args: str, cwd: object) -> str:
    import subprocess

    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_git_revision_names_the_package_checkout_and_marks_a_dirty_tree(tmp_path, monkeypatch):
    """The revision is the commit of the checkout costmodel is imported from, whatever the caller's working
    directory, with ``-dirty`` exactly where that checkout's tracked files differ from it (git's own
    answers, read with rev-parse and status, are the oracle); outside a git checkout, or in a folder the checkout
    does not track (a wheel installed into its .venv), it is 'unknown'."""
    import shutil
    from pathlib import Path

    import costmodel.calibrate as calibrate

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = Path(calibrate.__file__).resolve().parents[1]
    try:
        head = _git("rev-parse", "--short=7", "HEAD", cwd=root)
    except Exception:
        pytest.skip("costmodel is not imported from a git checkout")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", cwd=root))
    monkeypatch.chdir(tmp_path)  # not a checkout: the caller's folder must not matter
    assert calibrate.git_revision() == head + ("-dirty" if dirty else "")
    # nor a caller's GIT_* variables, each of which would redirect git to another repository, tree or index
    for name, value in (
        ("GIT_DIR", tmp_path / "elsewhere.git"),
        ("GIT_WORK_TREE", tmp_path),
        ("GIT_INDEX_FILE", tmp_path / "elsewhere.index"),
        ("GIT_OBJECT_DIRECTORY", tmp_path),  # no objects there: the old three-name filter read nothing
    ):
        monkeypatch.setenv(name, str(value))
        assert calibrate.git_revision() == head + ("-dirty" if dirty else ""), name
        monkeypatch.delenv(name)

    # a checkout of its own: clean, then with a tracked file edited
    repo = tmp_path / "repo"
    (repo / "costmodel").mkdir(parents=True)
    (repo / "costmodel" / "calibrate.py").write_text("x = 1\n")
    for args in (
        ("init", "-q"),
        ("add", "."),
        ("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"),
    ):
        _git(*args, cwd=repo)
    monkeypatch.setattr(calibrate, "__file__", str(repo / "costmodel" / "calibrate.py"))
    commit = _git("rev-parse", "--short=7", "HEAD", cwd=repo)
    assert calibrate.git_revision() == commit
    (repo / "costmodel" / "calibrate.py").write_text("x = 2\n")
    assert calibrate.git_revision() == commit + "-dirty"

    # installed into an untracked folder of that checkout (a wheel in its .venv): not its code
    installed = repo / ".venv" / "site-packages" / "costmodel"
    installed.mkdir(parents=True)
    (installed / "calibrate.py").write_text("x = 3\n")
    monkeypatch.setattr(calibrate, "__file__", str(installed / "calibrate.py"))
    assert calibrate.git_revision() == "unknown"

    # installed beside the checkout, in no checkout at all (no GIT_* variable is set: git_revision strips
    # them all; the untracked folder inside a checkout is the .venv case above)
    outside = tmp_path / "wheel" / "costmodel"
    outside.mkdir(parents=True)
    monkeypatch.setattr(calibrate, "__file__", str(outside / "calibrate.py"))
    assert calibrate.git_revision() == "unknown"
