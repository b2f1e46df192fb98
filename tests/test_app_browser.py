"""The dashboard in a real browser: ``python -m costmodel_app`` (what ``costmodel dashboard`` runs) in a
subprocess, driven by Debian's chromium through playwright. Every page renders its plotly charts without an error element, a
widget change re-renders and lands in the URL, a link reproduces the view, and the scenario downloads as
JSON; a link with values it cannot use says so; the screenshot script (docs/img/make_screenshots.py,
which writes the docs' pictures) photographs every page of the navigation.

Skips (with the reason) where /usr/bin/chromium (``apt-get install chromium``) or the playwright Python
package is missing; playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import costmodel as cm

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
pytest.importorskip("streamlit", reason="the dashboard needs the app extra: pip install 'costmodel[app]'")

ROOT = Path(__file__).resolve().parents[1]
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# a wait budget, not an assertion: generous because the suite may share two cores with another pytest worker
# (make test PYTEST_WORKERS=auto) or a loaded machine, and a page render can wait several seconds for the CPU
TIMEOUT_MS = 90_000
# page path -> plotly charts it draws on the default scenario (validation: on the results written below)
PAGES = {"": 3, "performance": 4, "speculative": 2, "capacity": 2, "compression": 3, "validation": 2,
         "validation?validation_view=Serving": 2, "validation?validation_view=Reference+kernels": 2}  # fmt: skip
PUBLIC_FILES = ("public-gpu-summary.json", "public-gpu-rows-sample.parquet", "public-gpu-regimes.json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_results(folder: Path) -> None:
    """A small results file in validation/run.py's format, so the Validation page has points to draw."""
    lines = [json.dumps({"record": "environment", "device": "cuda:0", "device_name": "NVIDIA H100"})]
    for i, (family, measured, predicted) in enumerate(
        [("gemm", 1e-3, 1.1e-3), ("gemm", 2e-2, 1.7e-2), ("attention", 4e-4, 5e-4), ("norm", 3e-5, 2e-5)]
    ):
        lines.append(
            json.dumps(
                {
                    "record": "point",
                    "kernel": f"{family}-{i}",
                    "family": family,
                    "regime": "memory",
                    "held_out": i % 2 == 1,
                    "device": "cuda:0",
                    "status": "ok",
                    "measured_s": measured,
                    "predicted_s": predicted,
                    "rel_error": (predicted - measured) / measured,
                }
            )
        )
    (folder / "gpu.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served on a free local port; always terminated, whatever the tests do."""
    results = tmp_path_factory.mktemp("results")
    write_results(results)
    for name in PUBLIC_FILES:  # the committed public evaluation, for the Validation page's other views
        shutil.copy(ROOT / "validation" / "results" / name, results / name)
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    port = free_port()
    # the launcher users get from `costmodel dashboard` (headless, no usage statistics, no toast)
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
    env = os.environ | {"COSTMODEL_VALIDATION_RESULTS": str(results)}
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"streamlit exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer within 60 s:\n{log.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def settle(page: Any, charts: int = 0) -> None:
    """Wait until the script run is over, nothing is stale, and ``charts`` plotly charts have drawn."""
    page.wait_for_function(
        """n => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'
            && !document.querySelector('[data-stale="true"]')
            && [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length >= n""",
        arg=charts,
    )


def assert_no_error(page: Any) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]'
    ).all_inner_texts()


def metric(page: Any, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return str(box.locator('[data-testid="stMetricValue"]').inner_text()).strip()


def milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.,]+) (ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number.replace(",", "")) * (1.0 if unit == "ms" else 1e3)


def wait_for_time(page: Any, label: str, seconds: float) -> None:
    """Wait until the metric ``label`` shows ``seconds`` (4 significant digits). The URL changes as soon as
    a widget commits, before the rerun it triggers, so the figure itself is what to wait for."""
    deadline = time.monotonic() + TIMEOUT_MS / 1e3
    while (shown := metric(page, label)) and milliseconds(shown) != pytest.approx(seconds * 1e3, rel=1e-3):
        if time.monotonic() > deadline:
            pytest.fail(f"{label} shows {shown}; the API gives {seconds * 1e3:.4g} ms")
        page.wait_for_timeout(100)


def test_every_page_renders_its_charts(server: str, page: Any, tmp_path: Path) -> None:
    for path, charts in PAGES.items():
        page.goto(f"{server}/{path}")
        settle(page, charts)
        assert page.locator(".js-plotly-plot").count() == charts, path
        assert_no_error(page)
        assert page.locator('[data-testid="stToast"]').count() == 0, path  # nothing covers the page
        page.screenshot(path=tmp_path / f"{(path or 'memory').replace('?', '-')}.png")
    # the sidebar navigation works too
    page.get_by_role("link", name="Performance").click()
    page.wait_for_url(re.compile(r"/performance"))
    settle(page, PAGES["performance"])
    assert_no_error(page)


def test_widget_change_rerenders_and_lands_in_the_url(server: str, page: Any) -> None:
    page.goto(f"{server}/performance")
    settle(page, PAGES["performance"])
    batch = page.get_by_role("spinbutton", name="Batch size", exact=True)
    batch.fill("32")
    batch.press("Enter")
    page.wait_for_url(re.compile(r"batch_size=32"))
    expected = cm.estimate("llama-3-8b", "h100-sxm", cm.Workload(32, 2048, 256))
    wait_for_time(page, "Time per output token", float(expected.tpot_s))
    settle(page, PAGES["performance"])
    assert_no_error(page)


def test_a_link_reproduces_the_view(server: str, page: Any) -> None:
    page.goto(f"{server}/performance?batch_size=64&hardware=a100-80gb&hardware=h100-sxm&kv_dtype=fp8")
    settle(page, PAGES["performance"])
    assert_no_error(page)
    expected = cm.estimate("llama-3-8b", "a100-80gb", cm.Workload(64, 2048, 256, kv_dtype="fp8"))
    wait_for_time(page, "Time to first token", float(expected.ttft_s))
    caption = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
    assert "llama-3-8b on a100-80gb, h100-sxm" in caption


def test_bad_input_shows_a_message_not_a_traceback(server: str, page: Any) -> None:
    page.goto(f"{server}/performance?tp=3")
    settle(page)
    assert_no_error(page)
    alert = page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    assert "tp (3) must divide n_heads (32)" in alert


def test_scenario_downloads_as_json(server: str, page: Any, tmp_path: Path) -> None:
    page.goto(f"{server}/?batch_size=12&hardware=l40s")  # the default page (Memory) is at /
    settle(page, PAGES[""])
    page.get_by_text("Share, save, load").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download scenario (JSON)").click()
    target = tmp_path / "scenario.json"
    download.value.save_as(target)
    saved = json.loads(target.read_text())
    assert (saved["batch_size"], saved["hardware"], saved["model"]) == (12, ["l40s"], "llama-3-8b")


def test_a_link_with_values_it_cannot_use_says_so(server: str, page: Any) -> None:
    """?batch_size=1e400 was a traceback on every page; ?model=llama-9-8b was ignored without a word."""
    page.goto(f"{server}/performance?batch_size=1e400&model=llama-9-8b&kv_dtype=fp8")
    settle(page, PAGES["performance"])
    assert_no_error(page)
    warning = page.locator('[data-testid="stAlertContentWarning"]').first.inner_text()
    assert "batch_size = 1e400: not a finite number. Using 8." in warning
    assert "model = llama-9-8b: unknown model 'llama-9-8b'. Did you mean 'llama-3-8b'" in warning
    expected = cm.estimate("llama-3-8b", "h100-sxm", cm.Workload(8, 2048, 256, kv_dtype="fp8"))
    wait_for_time(page, "Time to first token", float(expected.ttft_s))  # the valid part of the link is used


def test_the_screenshot_script_photographs_every_page(server: str, browser: Any, tmp_path: Path) -> None:
    """docs/img/make_screenshots.py finds the pages in the navigation and writes one PNG each."""
    sys.path.insert(0, str(ROOT / "docs" / "img"))
    import make_screenshots

    written = make_screenshots.capture(browser, server, tmp_path)
    assert {path.stem for path in written.values()} >= {(path or "memory").split("?")[0] for path in PAGES}
    for path in written.values():
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
        assert (width, height) == (1440, 1050), path


def test_the_memory_page_shows_published_checkpoints_and_deployments(server: str, page: Any) -> None:
    """The tables of costmodel_app/published.py render in the browser with their source links."""
    page.goto(f"{server}/")
    settle(page, PAGES[""])
    assert_no_error(page)
    page.get_by_role("heading", name="Published checkpoints and deployments").wait_for()
    page.get_by_role("heading", name="Weights per GPU of real deployments").wait_for()
    grids = page.locator('[data-testid="stDataFrame"]')
    assert grids.count() >= 5  # 2 serving tables, checkpoints, deployments, training (+ the expander's)
    page.get_by_text("Every built-in model's published checkpoints").click()
    assert_no_error(page)


def test_the_attention_dp_and_moe_split_inputs_reach_the_url_and_the_page(server: str, page: Any) -> None:
    page.goto(f"{server}/performance?model=deepseek-v3&hardware=h200&tp=1&weight_dtype=fp8_block")
    settle(page, PAGES["performance"])
    for label, value, param in (("Attention DP", "8", "attention_dp=8"), ("MoE EP", "8", "moe_ep=8")):
        box = page.get_by_role("spinbutton", name=label, exact=True)
        box.fill(value)
        box.press("Enter")
        page.wait_for_url(re.compile(param))
    settle(page, PAGES["performance"])
    assert_no_error(page)
    expected = cm.estimate(
        "deepseek-v3",
        "h200",
        cm.Workload(8, 2048, 256, weight_dtype="fp8_block"),
        cm.Deployment(tp=1, attention_dp=8, moe_ep=8),
    )
    wait_for_time(page, "Time per output token", float(expected.tpot_s))
    caption = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
    assert "TP 1 × attention DP 8 × PP 1 × 1 replica(s), MoE TP 1 × EP 8" in caption


def test_the_pareto_attention_dp_option_reaches_the_url_and_the_search(server: str, page: Any) -> None:
    """The opt-in checkbox lands in the URL and the page then shows `costmodel pareto --attention-dp
    1,2,4,8`'s choice (a small MoE search: one device, one format, aggregated workers)."""
    from costmodel import pareto

    page.goto(
        f"{server}/pareto?model=qwen3-30b-a3b&hardware=h100-sxm&pareto_formats=fp8&pareto_tp=1&pareto_tp=2"
        "&pareto_pp=1&pareto_modes=agg"
    )
    settle(page, 1)
    assert_no_error(page)
    box = page.get_by_role("checkbox", name="Search attention data parallelism")
    assert not box.is_checked()
    box.check(force=True)  # streamlit draws its own box over the input
    page.wait_for_url(re.compile(r"pareto_attention_dp=true"))
    found = pareto.frontier(
        "qwen3-30b-a3b", ["h100-sxm"], isl=2048, osl=256, ttft_s=1.0, tpot_s=0.05, formats=("fp8",),
        tp=(1, 2), pp=(1,), modes=("agg",), attention_dp=(1, 2, 4, 8),
    )  # fmt: skip
    assert found.best is not None
    chosen = found.points.label(found.best)
    assert " ADP" in chosen  # the choice changes with the option (checked against the API below)
    page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=chosen).first.wait_for()
    settle(page, 1)
    assert_no_error(page)
    caption = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
    assert "EP, attention DP and the concurrency" in caption


def test_the_pareto_token_budget_reaches_the_url_and_the_search(server: str, page: Any) -> None:
    """The token budget lands in the URL and the page then shows `costmodel pareto --token-budget 256`'s
    choice (one device, one format); a value below the input's minimum is refused in the input, not sent."""
    from costmodel import pareto

    page.goto(f"{server}/pareto?pareto_formats=fp8")
    settle(page, 1)
    assert_no_error(page)
    box = page.get_by_role("spinbutton", name="Token budget [tokens]", exact=True)
    assert box.input_value() == ""  # empty: each engine's own default on each device
    box.fill("256")
    box.press("Enter")
    page.wait_for_url(re.compile(r"pareto_token_budget=256"))
    found, default = (
        pareto.frontier("llama-3-8b", ["h100-sxm"], isl=2048, osl=256, ttft_s=1.0, tpot_s=0.05,
                        formats=("fp8",), token_budget=budget)
        for budget in (256, None)
    )  # fmt: skip
    assert found.best is not None
    assert default.best is not None
    chosen = found.points.label(found.best)
    assert chosen != default.points.label(default.best)  # the choice changes with the budget
    page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=chosen).first.wait_for()
    settle(page, 1)
    assert_no_error(page)
    caption = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
    assert "a token budget of 256 tokens per iteration (raised to a point's clients per worker" in caption
    box.fill("0")
    box.press("Enter")
    page.wait_for_timeout(1000)
    settle(page, 1)
    assert_no_error(page)
    assert "pareto_token_budget=256" in page.url  # the input kept its last valid value
    caption = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
    assert "a token budget of 256 tokens per iteration" in caption


def test_each_unpriced_pareto_device_takes_its_price_from_its_own_input(server: str, page: Any) -> None:
    """gb300 and h20 have no price: each has an input of its own on the Pareto page; both prices land in
    the URL and the page then shows `costmodel pareto --usd-per-hour gb300=5,h20=1.5`'s choice."""
    from costmodel import pareto

    page.goto(f"{server}/pareto?hardware=gb300&hardware=h20&pareto_formats=fp8&pareto_tp=1&pareto_pp=1")
    settle(page, 1)
    assert_no_error(page)
    for name, price in (("gb300", "5"), ("h20", "1.5")):
        box = page.get_by_role("spinbutton", name=f"$ per GPU-hour for {name} (0: none)", exact=True)
        box.fill(price)
        box.press("Enter")
        page.wait_for_url(re.compile(rf"pareto_usd_per_hour_{name}={re.escape(price)}"))
        settle(page, 1)
    found = pareto.frontier(
        "llama-3-8b", ["gb300", "h20"], isl=2048, osl=256, ttft_s=1.0, tpot_s=0.05, formats=("fp8",), tp=(1,),
        pp=(1,), usd_per_hour={"gb300": 5.0, "h20": 1.5},
    )  # fmt: skip
    assert found.best is not None
    page.locator('[data-testid="stMarkdownContainer"]').filter(
        has_text=found.points.label(found.best)
    ).first.wait_for()
    settle(page, 1)
    assert_no_error(page)
    usd = found.points.usd_per_million_output_tokens[found.best]
    assert metric(page, "$ per million output tokens") == f"${usd:,.4g}"
