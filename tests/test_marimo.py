"""The marimo example app (``binder/explorer_marimo.py``) in a real browser, as a user
runs it: ``marimo run`` on 127.0.0.1 and Debian's Chromium. The explorer renders, Load
draws the chart, and the cell that reads the explorer shows the loaded row count; a
brush on the ``flow(...)`` panel re-runs the cell that reads its brushed rows.

marimo re-runs a cell when the page writes a widget's trait, not when Python does (a
load finishing in a worker thread): these tests are the proof that the page's answers
(``drawn`` after a chart, ``brush`` after a drag) reach marimo.

Set ``SAVE_SCREENSHOTS=docs`` to refresh ``docs/marimo.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .browser_harness import browser, free_port, get, hooked_page, wait_for_view
from .test_browser import _brush_overview, _screenshot_dir

__all__ = ["browser"]  # the module's one Chromium (a fixture)

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "binder" / "explorer_marimo.py"


@pytest.fixture(scope="module")
def marimo_app(tmp_path_factory):
    """``marimo run`` of the example app on a private port, with private config and cache."""
    base = tmp_path_factory.mktemp("marimo")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APERIODIC_")}
    env |= {
        "APERIODIC_CACHE_DIR": str(base / "cache"),
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_CACHE_HOME": str(base / "xdg-cache"),
        "XDG_STATE_HOME": str(base / "state"),
    }
    log = open(base / "marimo.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marimo",
            "-q",
            "run",
            str(APP),
            "--headless",
            "--no-token",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            get(f"{url}/")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("marimo did not start:\n" + (base / "marimo.log").read_text()[-3000:]) from None
            time.sleep(0.5)
    yield url, base / "marimo.log"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def app_page(marimo_app, browser):
    url, log = marimo_app
    page, errors = hooked_page(browser, viewport={"width": 1280, "height": 1500})
    page.goto(url)
    page.locator(".apj-explorer").wait_for(timeout=90_000)
    yield page, errors, log
    page.close()


def test_the_explorer_loads_and_the_cell_that_reads_it_shows_the_rows(app_page, tmp_path):
    page, errors, log = app_page
    explorer = page.locator(".apj-explorer")
    rows = page.get_by_text("Loaded rows:")
    page.get_by_text("Click Load above.").wait_for(timeout=30_000)  # nothing loaded yet
    assert explorer.locator("canvas.marks").count() == 0

    explorer.locator("button.apj-load").click()
    try:
        explorer.locator("canvas.marks").wait_for(timeout=90_000)
        rows.wait_for(timeout=30_000)
    except Exception:
        raise AssertionError(
            f"no chart or row count; inline error {explorer.locator('.apj-error').inner_text()!r}; log: {log.read_text()[-2000:]}"
        ) from None
    summary = explorer.locator(".apj-summary").inner_text()
    assert "binance-futures perpetual-BTC-USDT:USDT 1h" in summary and "1,440 rows" in summary and "SIMULATED" in summary
    assert rows.inner_text().startswith("Loaded rows: 1,440 · brushed rows: 1,440")
    state = wait_for_view(page, explorer)
    assert state["panels"][0]["title"].startswith("Price (quote per base)")
    # No IPython here: the export bar hands the frame to Python on the widget, not to a name.
    bar = explorer.locator(".apj-export")
    assert bar.locator("button", has_text="to Python").is_visible() and not bar.locator("input.apj-varname").is_visible()
    # The README's picture: the explorer with its chart, and the cell that reads it.
    top, bottom = explorer.bounding_box(), rows.bounding_box()
    clip = {"x": 0, "y": top["y"] - 16, "width": 1280, "height": bottom["y"] + bottom["height"] + 16 - (top["y"] - 16)}
    page.screenshot(path=str(_screenshot_dir(tmp_path) / "marimo.png"), full_page=True, clip=clip)
    assert not errors, errors


def test_a_brush_on_the_flow_panel_re_runs_the_cell_that_reads_it(app_page):
    page, errors, _log = app_page
    panel = page.locator(".apj-flowpanel").nth(1)  # flow("binance,okx BTC 1h 2024-11")
    line = page.get_by_text("Net taker delta in the brushed range")
    line.wait_for(timeout=60_000)
    assert "(1,440 rows)" in line.inner_text()  # two venues × 720 bars, nothing brushed
    wait_for_view(page, panel)
    _brush_overview(page, panel, 0.30, 0.50)
    # A slow drag sends a brush at every pause: the cell settles on the last one.
    text = settled(page, line, lambda t: "(1,440 rows)" not in t)
    brushed = int(text.split("(")[1].split(" rows")[0].replace(",", ""))
    assert 2 * 100 < brushed < 2 * 200, text  # 20 % of 720 bars, for each venue
    assert not errors, errors


def settled(page, locator, ready, quiet_ms: int = 1500, timeout: float = 30) -> str:
    """``locator``'s text once ``ready(text)`` holds and the text has not changed for ``quiet_ms``."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if text != last:
            last, since = text, time.monotonic()
        elif ready(text) and time.monotonic() - since >= quiet_ms / 1000:
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"the text did not settle: {last!r}")
