"""Start the dashboard: a Streamlit server in a child process, unattended by default.

What a first run needs and Streamlit does not do on its own:

- no terminal prompt: the server runs headless (Streamlit's first-run "Email:" prompt, its usage-statistics
  notice and its in-app promotional toast are all skipped in headless mode), so ``make demo`` works in CI,
  over ssh and with no terminal at all;
- the browser is opened from Python (:mod:`webbrowser`) once the server answers, only where a graphical
  session exists, and the URL is printed either way;
- the server never outlives the launcher: SIGTERM, SIGHUP and Ctrl+C stop it, and on Linux the kernel
  stops it if the launcher is killed outright (``PR_SET_PDEATHSIG``).

Importing this module imports neither streamlit nor plotly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import webbrowser
from pathlib import Path
from types import FrameType

from costmodel.errors import CostmodelError

SCRIPT = Path(__file__).resolve().parent / "streamlit_app.py"
DEFAULT_PORT = 8501
STARTUP_TIMEOUT_S = 120.0  # first start on a cold 2-core machine imports pandas, plotly and streamlit
STOP_TIMEOUT_S = 10.0


class _StopSignalError(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def streamlit_command(port: int, address: str) -> list[str]:
    """The ``streamlit run`` command line: headless, no usage statistics, viewer toolbar, no file watcher."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(SCRIPT),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.showEmailPrompt",
        "false",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


def url_for(port: int, address: str) -> str:
    """The address a browser on this machine should open."""
    host = "localhost" if address in ("", "0.0.0.0", "::", "localhost", "127.0.0.1") else address
    if ":" in host:  # a literal IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _check(address: str) -> None:
    if not address.strip():
        raise CostmodelError("--address is empty: give a host name or IP address, e.g. localhost")
    missing = [name for name in ("streamlit", "plotly") if importlib.util.find_spec(name) is None]
    if missing:
        raise CostmodelError(f"the dashboard needs {' and '.join(missing)}: pip install 'costmodel[app]'")


def _bind_error(port: int, address: str) -> str | None:
    """Why a server cannot listen on ``address:port``, or None if it can."""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except OSError:
        raise CostmodelError(
            f"--address {address!r} does not resolve to an address of this machine"
        ) from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as e:
            return e.strerror or str(e)
    return None


def choose_port(port: int | None, address: str) -> int:
    """``port`` if given and free (else an error); without one, the first free port from 8501 on."""
    if port is not None:
        if not 1 <= port <= 65535:
            raise CostmodelError(f"--port must be between 1 and 65535 (got {port})")
        why = _bind_error(port, address)
        if why:
            raise CostmodelError(f"cannot serve on {address}:{port} ({why}): choose another --port")
        return port
    for candidate in range(DEFAULT_PORT, DEFAULT_PORT + 100):
        if _bind_error(candidate, address) is None:
            return candidate
    raise CostmodelError(f"ports {DEFAULT_PORT}-{DEFAULT_PORT + 99} are all in use on {address}: pass --port")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: deliver SIGTERM to the server when the launcher dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def _wait_until_up(process: subprocess.Popen[bytes], health: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as response:
            if response.status == 200:
                return True
        time.sleep(0.25)
    return False


def _graphical_session() -> bool:
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("BROWSER"))


def serve(port: int | None = None, address: str = "localhost", open_browser: bool = True) -> int:
    """Run the dashboard until it is stopped; returns the exit status for the shell.

    port: where the server listens (None: the first free port from 8501 on); address: the interface.
    open_browser: open a tab once the server answers (only in a graphical session, or where ``$BROWSER``
    names a browser). Bad options raise ``CostmodelError``.
    """
    _check(address)
    port = choose_port(port, address)
    url = url_for(port, address)
    health_host = "127.0.0.1" if url.startswith("http://localhost:") else address
    health = f"{url_for(port, health_host)}/_stcore/health"
    stopped: int | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _StopSignalError(signum)

    handled = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.signal(s, on_signal) for s in handled}
    process: subprocess.Popen[bytes] | None = None
    try:
        process = subprocess.Popen(
            streamlit_command(port, address),
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        if _wait_until_up(process, health, STARTUP_TIMEOUT_S):
            print(f"costmodel dashboard: {url}  (Ctrl+C to stop)", flush=True)
            if open_browser and _graphical_session():
                with contextlib.suppress(Exception):
                    webbrowser.open(url, new=2)
        elif process.poll() is None:
            print(f"costmodel dashboard: still starting, then at {url}", flush=True)
        return process.wait()
    except _StopSignalError as stop:
        stopped = stop.signum
    except KeyboardInterrupt:
        stopped = signal.SIGINT
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 + int(stopped)


def main(argv: list[str] | None = None) -> int:
    """``python -m costmodel_app [--port N] [--address HOST] [--no-open]``."""
    parser = argparse.ArgumentParser(prog="python -m costmodel_app", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=None, help="port to serve on (default: 8501 or the next free one)"
    )
    parser.add_argument("--address", default="localhost", help="address to listen on")
    parser.add_argument("--open", dest="open_browser", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    try:
        return serve(args.port, args.address, args.open_browser)
    except CostmodelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
