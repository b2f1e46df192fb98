"""Screenshots of every dashboard page, from the real dashboard in a real browser: ``docs/img/<page>.png``.

    python docs/img/make_screenshots.py            # every page into docs/img/, and docs/img/dashboard.png
    python docs/img/make_screenshots.py --out /tmp/shots --query 'model=mistral-7b'

Starts ``python -m costmodel_app`` (what ``costmodel dashboard`` runs: headless, no toast) on a free local
port, opens it in Debian's chromium through playwright (``apt-get install chromium``; the ``playwright``
Python package only, never its browser downloads), reads the pages from the sidebar's navigation (so a page
added later is photographed too), and saves one PNG per page once its script has finished and every
plotly chart has drawn. A page that shows a Streamlit exception is an error (exit 1): a screenshot of a
traceback is never written. The README's ``docs/img/dashboard.png`` is the Performance page.

Each page opens with the same link, ``--query`` (default: the default scenario compared on an H100 SXM and
an A100 80GB), so the pictures show one scenario.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
QUERY = "hardware=h100-sxm&hardware=a100-80gb"
README_PAGE = "performance"  # docs/img/dashboard.png, the README's picture
VIEWPORT = {"width": 1440, "height": 1050}
TIMEOUT_MS = 120_000  # a cold 2-core machine takes tens of seconds for the Capacity page
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dashboard(env: dict[str, str] | None = None, timeout_s: float = 120.0) -> Iterator[str]:
    """The dashboard served on a free local port (its URL), always stopped afterwards."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "costmodel_app",
        "--port",
        str(port),
        "--address",
        "127.0.0.1",
        "--no-open",
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=os.environ | (env or {}), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield _wait(process, log, f"http://127.0.0.1:{port}", timeout_s)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait(process: subprocess.Popen[bytes], log: Any, url: str, timeout_s: float) -> str:
    """``url`` once the server answers its health check; RuntimeError with its log if it does not."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the dashboard exited with {process.returncode}: {log.read().decode()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return url
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the dashboard did not answer within {timeout_s:.0f} s")
        time.sleep(0.25)


def settle(page: Any) -> None:
    """Wait until the script run is over, nothing is stale and every plotly chart has drawn."""
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'
            && !document.querySelector('[data-stale="true"]')
            && !document.querySelector('[data-testid="stSkeleton"]')
            && [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.main-svg'))""",
        timeout=TIMEOUT_MS,
    )
    page.wait_for_timeout(800)  # plotly's transitions, and a last rerun the URL binding may start
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'""",
        timeout=TIMEOUT_MS,
    )


def pages(page: Any, url: str) -> list[tuple[str, str]]:
    """(title, path) of every page in the sidebar's navigation, in its order; path '' is the default."""
    page.goto(url)
    settle(page)
    links = page.locator('[data-testid="stSidebarNav"] a')
    found = []
    for i in range(links.count()):
        link = links.nth(i)
        href = link.get_attribute("href") or ""
        path = href.split("?")[0].rstrip("/").removeprefix(url).strip("/")
        path = path.rsplit("/", 1)[-1] if "://" in path else path
        title = link.inner_text().strip().splitlines()[-1].strip()  # after the icon's ligature name
        found.append((title, path))
    if not found:
        raise RuntimeError("no navigation links found in the sidebar")
    return found


def capture(browser: Any, url: str, out: Path, query: str = QUERY, height: int = 1050) -> dict[str, Path]:
    """One PNG per page of the navigation into ``out``, named by the page's URL path (the default page by
    its title); returns {title: file}. RuntimeError naming the page if one shows an exception."""
    context = browser.new_context(viewport=VIEWPORT | {"height": height}, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    written: dict[str, Path] = {}
    try:
        page = context.new_page()
        for title, path in pages(page, url):
            page.goto(f"{url}/{path}?{query}" if query else f"{url}/{path}")
            settle(page)
            errors = page.locator('[data-testid="stException"]')
            if errors.count():
                raise RuntimeError(f"page {title!r} shows an exception: {errors.first.inner_text()[:500]}")
            name = path or title.lower().split()[0]
            target = out / f"{name}.png"
            page.screenshot(path=target)
            written[title] = target
    finally:
        context.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNGs (default: docs/img)")
    parser.add_argument("--query", default=QUERY, help="the link every page opens with (without '?')")
    parser.add_argument(
        "--height", type=int, default=VIEWPORT["height"], help="window height [px] (more: more of each page)"
    )
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print(
            "error: the playwright Python package is not installed (pip install playwright)", file=sys.stderr
        )
        return 2
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} not found (apt-get install chromium)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with dashboard() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        try:
            written = capture(browser, url, args.out, args.query, args.height)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        finally:
            browser.close()
    for title, path in written.items():
        print(f"{title}: {path}")
    readme = written.get(next((t for t, p in written.items() if p.stem == README_PAGE), ""))
    if readme is not None and args.out.resolve() == OUT:
        shutil.copyfile(readme, OUT / "dashboard.png")
        print(f"README picture: {OUT / 'dashboard.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
