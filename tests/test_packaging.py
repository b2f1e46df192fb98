"""The built wheel carries the built-in profiles: an installed costmodel works without the source tree."""

from __future__ import annotations

import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(dest: Path) -> Path:
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
            str(dest),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    return next(dest.glob("costmodel-*.whl"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built once for the tests below (each only reads or installs it)."""
    pytest.importorskip("hatchling")
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.mark.slow
def test_wheel_ships_model_and_hardware_profiles(wheel: Path, tmp_path: Path) -> None:
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


@pytest.mark.slow
def test_wheel_ships_the_dashboard_without_importing_streamlit(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for page in ("memory", "performance", "speculative", "capacity", "compression", "validation"):
        assert f"costmodel_app/views/{page}.py" in names
    assert "costmodel_app/streamlit_app.py" in names
    for results in ("public-gpu-summary.json", "public-gpu-rows-sample.parquet", "public-gpu-regimes.json"):
        assert f"costmodel_app/_data/results/{results}" in names  # the Validation page's files
    assert not [n for n in names if n.startswith(("app/", "tests/", "validation/"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[costmodel.apps]" in text
    assert "dashboard = costmodel_app.launch:serve" in text


@pytest.mark.slow
@pytest.mark.usefixtures("default_dashboard_port")
def test_installed_wheel_starts_the_dashboard_and_sigterm_stops_it(wheel: Path, tmp_path: Path) -> None:
    """``pip install costmodel[app]`` then ``costmodel dashboard`` in a fresh venv, away from the source tree;
    SIGTERM to the command stops the Streamlit server too (issue 17, items 2 and 3)."""
    pytest.importorskip("streamlit", reason="the dashboard needs the app extra")
    from processes import fresh_home, get, pip_install, stop, thin_venv, wait_for_url, wait_gone

    python = thin_venv(tmp_path / "venv")
    pip_install(python, str(wheel), cwd=tmp_path)
    script = tmp_path / "venv" / "bin" / "costmodel"
    env = fresh_home(tmp_path)
    version = subprocess.run([script, "--version"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"costmodel {cm_version()}"
    where = subprocess.run(
        [python, "-c", "import costmodel, costmodel_app; print(costmodel.__file__, costmodel_app.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(tmp_path / "venv")) for path in where), where
    # the installed app renders every page without an exception (a module or data file missing from the
    # wheel would still answer HTTP 200: the page's script is what fails)
    render = (
        "import pathlib, costmodel_app\n"
        "from streamlit.testing.v1 import AppTest\n"
        "app = pathlib.Path(costmodel_app.__file__).parent\n"
        "for page in sorted(p.name for p in (app / 'views').glob('*.py')):\n"
        "    at = AppTest.from_file(str(app / 'streamlit_app.py'), default_timeout=120)\n"
        "    at.switch_page(f'views/{page}')\n"
        "    at.run()\n"
        "    assert not at.exception, (page, [e.value for e in at.exception])\n"
        "    print(page)\n"
    )
    rendered = subprocess.run([python, "-c", render], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert "memory.py" in rendered.stdout
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [script, "dashboard", "--no-open"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = wait_for_url(process, log)
        assert get(url)[0] == 200
        assert get(f"{url}/_stcore/health") == (200, "ok")
        assert not (tmp_path / "opened.txt").exists()  # --no-open
        process.send_signal(signal.SIGTERM)  # to the command only, not to its process group
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        assert wait_gone(url), "the Streamlit server outlived `costmodel dashboard`"
    finally:
        stop(process, group=True)


def cm_version() -> str:
    import costmodel

    return costmodel.__version__


def test_version_comes_from_one_place() -> None:
    """The wheel's version is read from costmodel.__version__ (pyproject.toml says dynamic)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert project["dynamic"] == ["version"]
