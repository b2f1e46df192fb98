"""``make demo`` on a fresh machine with no terminal reaches the dashboard over HTTP (issue 17, item 1).

The working tree is checked out afresh with an empty home (no ~/.streamlit), no display and stdin from
/dev/null in a new session (no controlling terminal). The install step is satisfied by a thin venv that
reuses this environment's packages (nothing is downloaded), so what runs is the Makefile's own demo recipe.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from processes import copy_tree, fresh_home, get, pip_install, stop, thin_venv, wait_for_url, wait_gone

pytest.importorskip("streamlit", reason="the dashboard needs the app extra: pip install 'costmodel[app]'")
pytest.importorskip("hatchling", reason="the editable install needs hatchling (the dev extra)")
if shutil.which("make") is None:
    pytest.skip("make is not installed", allow_module_level=True)


@pytest.mark.slow
@pytest.mark.usefixtures("default_dashboard_port")
def test_make_demo_runs_unattended_and_serves_the_dashboard(tmp_path: Path) -> None:
    clone = copy_tree(tmp_path / "clone")
    python = thin_venv(clone / ".venv")
    pip_install(python, str(clone), cwd=clone)  # a regular install: an editable one needs `editables`
    (clone / ".venv" / ".installed-stamp").touch()  # the install step of the recipe is done
    log = tmp_path / "demo.log"
    env = fresh_home(tmp_path)
    with log.open("wb") as out:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "demo"],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no controlling terminal
        )
    try:
        url = wait_for_url(make, log)
        status, _ = get(url)
        assert status == 200
        assert get(f"{url}/_stcore/health") == (200, "ok")
        text = log.read_text()
        assert "time to first token" in text  # the estimate step ran first
        for unwanted in ("Email", "usage statistics", "Traceback"):
            assert unwanted not in text, text
        assert (tmp_path / "opened.txt").read_text().split() == [url]  # the browser, opened from Python
        os.killpg(make.pid, signal.SIGTERM)  # what closing the terminal or Ctrl+C does to the whole job
        make.wait(timeout=30)
        assert wait_gone(url), "the Streamlit server outlived make demo"
    finally:
        stop(make, group=True)
