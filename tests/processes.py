"""Helpers for the first-run tests: a throwaway environment that reuses this one's packages, and a dashboard
process watched from the outside (its printed URL, HTTP, and that it is gone once stopped)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r"costmodel dashboard: (http://\S+)")


def thin_venv(where: Path) -> Path:
    """A fresh venv (no pip of its own) that sees this environment's packages through a .pth file, so
    nothing is downloaded or reinstalled; what is installed into it comes first on its path. Returns its
    python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_outer_env.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def pip_install(python: Path, *args: str, cwd: Path) -> None:
    """``pip install --no-deps`` into the venv of ``python`` (pip itself comes through the .pth)."""
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def fresh_home(tmp: Path) -> dict[str, str]:
    """The environment of a new user on a headless machine: empty home (no ~/.streamlit), no terminal, no
    display; ``$BROWSER`` records what would be opened in ``tmp/opened.txt``."""
    home = tmp / "home"
    home.mkdir()
    recorder = tmp / "browser.sh"
    recorder.write_text(f'#!/bin/sh\necho "$1" >> {tmp / "opened.txt"}\n')
    recorder.chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "TERM", "VIRTUAL_ENV", "PYTHONPATH", "BROWSER")
        and not k.startswith(("STREAMLIT_", "MAKE", "PYTEST"))
    }
    return env | {"HOME": str(home), "BROWSER": str(recorder), "PYTHONDONTWRITEBYTECODE": "1"}


def wait_for_url(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> str:
    """The URL the dashboard prints once it answers; fails with the log if it exits or stays silent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = URL_LINE.search(text)
        if found:
            return found.group(1)
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before printing the URL:\n{text}")
        time.sleep(0.5)
    pytest.fail(f"no URL within {timeout_s:.0f} s:\n{log.read_text(errors='replace')}")


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status), response.read().decode(errors="replace")


def served(url: str) -> bool:
    try:
        get(f"{url}/_stcore/health")
    except OSError:
        return False
    return True


def wait_gone(url: str, timeout_s: float = 20) -> bool:
    """True once nothing answers at ``url`` any more."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not served(url):
            return True
        time.sleep(0.25)
    return False


def stop(process: subprocess.Popen[bytes], group: bool = False) -> None:
    """Last-resort cleanup: SIGKILL to the process (or its whole session) if it is still there."""
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()


def copy_tree(dest: Path) -> Path:
    """A fresh checkout of the working tree (tracked and untracked, not ignored files) at ``dest``."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest
