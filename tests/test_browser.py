"""End to end in a real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven by
Playwright, as a user would: pick an exchange and symbol, click Load, wait for the
chart, brush a range, see it arrive in Python, export CSV, and look at the magic's view.

Set ``SAVE_SCREENSHOTS=docs`` to refresh the README's screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A token-less JupyterLab on a private port with private config, data and runtime dirs."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    settings = base / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "APERIODIC_CACHE_DIR": str(base / "cache"),
    }
    env.pop("APERIODIC_API_KEY", None)
    log = open(base / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={base / 'user-settings'}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            _get(f"{url}/api/status")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("JupyterLab did not start:\n" + (base / "lab.log").read_text()[-3000:]) from None
            time.sleep(0.5)
    yield url, root
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required (.ci/setup installs it with apt-get)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _write_notebook(root: Path, name: str, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / name)


def _wait_for_idle_kernel(url: str, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = json.loads(_get(f"{url}/api/sessions"))
        for s in sessions:
            if s.get("path") == path and s["kernel"]["execution_state"] == "idle":
                return
        time.sleep(0.5)
    raise TimeoutError(f"no idle kernel for {path}")


def _open_and_run_all(page, url: str, name: str) -> None:
    # A workspace of its own: JupyterLab would otherwise reopen the other tests' notebooks.
    page.goto(f"{url}/lab/workspaces/{Path(name).stem}/tree/{name}?reset")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    _wait_for_idle_kernel(url, name)
    page.click("text=Run", timeout=30_000)
    page.click("text=Run All Cells")


def _screenshot_dir(tmp_path: Path) -> Path:
    target = os.environ.get("SAVE_SCREENSHOTS")
    return ROOT / target if target else tmp_path


def test_explorer_load_brush_and_export_in_jupyterlab(lab, browser, tmp_path):
    url, root = lab
    _write_notebook(
        root,
        "explorer.ipynb",
        "from aperiodic_jupyter.jupyter.explorer import FlowExplorer\nw = FlowExplorer(exchange='okx-perps', symbol='ETH', interval='1h', range='2024-01..2024-02')\nw",
        "print('BRUSH', w.brush_range)\nprint('ROWS', None if w.brushed is None else len(w.brushed))",
    )
    page = browser.new_page(viewport={"width": 1280, "height": 1800}, accept_downloads=True)
    _open_and_run_all(page, url, "explorer.ipynb")

    selector = page.locator(".apj-explorer")
    selector.wait_for(timeout=60_000)
    # As a user: pick the exchange and symbol, then Load.
    selector.locator("select.apj-exchange").select_option("binance-futures")
    symbol = selector.locator("input.apj-symbol")
    symbol.fill("BTC")
    selector.locator("button.apj-load").click()

    try:
        page.wait_for_function(
            "document.querySelector('.apj-summary') && document.querySelector('.apj-summary').textContent.includes('rows')",
            timeout=90_000,
        )
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise AssertionError(
            f"no chart loaded; inline error: {selector.locator('.apj-error').inner_text()!r}; screenshot {tmp_path / 'failed.png'}"
        ) from None
    summary = selector.locator(".apj-summary").inner_text()
    assert "binance-futures perpetual-BTC-USDT:USDT 1h" in summary and "SIMULATED" in summary
    marks = page.locator(".vega-embed canvas.marks, .vega-embed svg.marks").first
    marks.wait_for(timeout=60_000)
    page.wait_for_timeout(500)

    # Brush the overview strip at the bottom of the chart: drag across its middle.
    box = marks.bounding_box()
    assert box and box["width"] > 300
    y = box["y"] + box["height"] - 62
    page.mouse.move(box["x"] + box["width"] * 0.40, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, y, steps=8)
    page.mouse.up()
    page.wait_for_timeout(1500)  # JupyterChart debounces selection updates
    page.locator(".jp-Cell").nth(0).screenshot(path=str(_screenshot_dir(tmp_path) / "explorer.png"))

    # The brushed range arrives in Python.
    page.locator(".jp-Cell").nth(1).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    out = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")
    page.wait_for_function(
        "() => { const o = document.querySelectorAll('.jp-Cell')[1].querySelector('.jp-OutputArea-output'); return o && o.textContent.includes('BRUSH (Timestamp'); }",
        timeout=30_000,
    )
    text = out.first.inner_text()
    assert "BRUSH (Timestamp('2024-" in text, text
    rows = int(text.split("ROWS")[1].strip())
    assert 0 < rows < 60 * 24

    # Export the brushed range as CSV: the browser downloads the file.
    export = page.locator(".apj-export").first
    export.locator("select.apj-scope").select_option("brush")
    with page.expect_download(timeout=30_000) as dl:
        export.locator("button", has_text="CSV").click()
    download = dl.value
    assert download.suggested_filename.startswith("binance-futures_perpetual-BTC-USDT-USDT_1h_2024")
    content = Path(download.path()).read_text().splitlines()
    assert content[0].startswith("time,taker_buy_volume,taker_sell_volume")
    assert len(content) - 1 == rows
    assert content[1][:4] == "2024"
    page.close()


def test_magic_view_renders_with_label_and_export_buttons(lab, browser, tmp_path):
    url, root = lab
    _write_notebook(root, "magic.ipynb", "%load_ext aperiodic_jupyter", "%flow binance-futures BTC 1h 2024-01..2024-03")
    page = browser.new_page(viewport={"width": 1280, "height": 1900}, accept_downloads=True)
    _open_and_run_all(page, url, "magic.ipynb")
    page.locator(".vega-embed canvas.marks, .vega-embed svg.marks").first.wait_for(timeout=90_000)
    cell = page.locator(".jp-Cell").nth(1)
    assert "SIMULATED demo data" in cell.locator(".apj-summary").inner_text()
    for label in ("CSV", "Parquet", "PNG", "SVG", "to variable"):
        assert cell.locator(".apj-export button", has_text=label).count() == 1
    with page.expect_download(timeout=60_000) as dl:
        cell.locator(".apj-export button", has_text="PNG").click()
    assert Path(dl.value.path()).read_bytes()[:4] == b"\x89PNG"
    page.wait_for_timeout(500)
    cell.screenshot(path=str(_screenshot_dir(tmp_path) / "magic.png"))
    page.close()
