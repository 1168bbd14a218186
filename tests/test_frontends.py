"""The product in the front ends beside JupyterLab, in a real browser (Debian's Chromium
driven by Playwright), as a user meets it: Notebook 7 (the ``%flow`` chart, its CSV
export, its PNG and SVG rendered in the page, the explorer's Load) and Voila (a tutorial rendered as a dashboard, the explorer's
Load there). One server and one page per front end: a kernel start is the costly part.

Everything these tests look for is named once, in the selectors below, and is what a user
sees: the summary line, button labels, the Vega canvas. Whether a chart drew is read from
the Vega view behind it (panels, marks, item counts), not from pixels.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import nbformat
import pytest

from .browser_harness import NOTEBOOK7_NOISE, VOILA_NOISE, Tab, jupyter_server, server_app, wait_for_idle_kernel, write_notebook
from .browser_harness import browser as browser  # the module-scoped Chromium fixture

ROOT = Path(__file__).resolve().parents[1]

# -- what the tests look for: one place to adapt when the widgets change -----------------
SUMMARY = ".apj-summary"  # the summary line: query, rows, source, SIMULATED
EXPLORER = ".apj-explorer"  # the explorer's form
SYMBOL_INPUT = "input.apj-symbol"  # the explorer's symbol field
LOAD, CSV, PNG, SVG = "Load", "CSV", "PNG", "SVG"  # button labels
EXPORT_STATUS, EXPORT_DEST = ".apj-export-status", "select.apj-dest"  # the export bar's status line, where files go
CELL = ".jp-Cell"  # a notebook cell, in Notebook 7 and in Voila's lab template
VEGA_MARKS = "canvas.marks, svg.marks"  # what Vega draws into
RUN_MENU, RUN_ALL = "text=Run", "text=Run All Cells"  # Notebook 7's menu

TIMEOUT_S = 120  # a kernel start plus the first chart, on a busy 2-core machine


def _summary_says(tab: Tab, scope, *words: str) -> str:
    """Wait until a summary line inside ``scope`` holds every word; return it."""
    handle = tab.page.wait_for_function(
        """([el, sel, words]) => [...el.querySelectorAll(sel)].map((s) => s.textContent)
             .find((t) => words.every((w) => t.includes(w))) || false""",
        arg=[scope.element_handle(), SUMMARY, list(words)],
        timeout=TIMEOUT_S * 1000,
    )
    return handle.json_value()


def _price_bars(state: dict) -> int:
    """Bars the chart's top (price) panel draws: its largest mark's item count (a close
    line, or a candle's wicks and bodies, one item per bar either way)."""
    top = state["panels"][0]
    assert top["title"].startswith("Price"), [p["title"] for p in state["panels"]]
    return max(m["items"] for m in top["marks"])


def _load_in_explorer(tab: Tab, scope, symbol: str) -> dict:
    """As a user: type ``symbol`` into the explorer in ``scope`` and click Load; wait for
    the summary to name it and a new Vega view to draw; return that view's state."""
    before = tab.views_made()
    scope.locator(SYMBOL_INPUT).fill(symbol)
    scope.get_by_role("button", name=LOAD, exact=True).click()
    summary = _summary_says(tab, scope, f"-{symbol}-", "rows")
    assert "SIMULATED" in summary, summary
    tab.page.wait_for_function(f"() => (window.__apjVegaViews || []).length > {before}", timeout=TIMEOUT_S * 1000)
    return tab.drawn(scope, TIMEOUT_S)


def _hourly_bars(first: date, last: date) -> int:
    """Hourly bars from ``first`` 00:00 to ``last`` 23:00 UTC, both days included."""
    return ((last - first).days + 1) * 24


# -- Notebook 7 ------------------------------------------------------------------------------

MAGIC_LINE = "%flow binance BTC 1h 2024-01..2024-02"
MAGIC_DAYS = (date(2024, 1, 1), date(2024, 2, 29))
EXPLORER_CELL = (
    "from aperiodic_jupyter import FlowExplorer\nFlowExplorer(exchange='okx-perps', symbol='ETH', interval='1h', range='2024-03')"
)
EXPLORER_DAYS = (date(2024, 3, 1), date(2024, 3, 31))


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory, browser):
    """One Notebook 7 server and one page: a notebook that loads the extension, shows an
    explorer (nothing loaded yet) and the magic's chart, run top to bottom."""
    base = tmp_path_factory.mktemp("notebook7")
    root = base / "root"
    root.mkdir()
    write_notebook(root, "flow.ipynb", "%load_ext aperiodic_jupyter", EXPLORER_CELL, MAGIC_LINE)
    with jupyter_server(server_app("notebook", root), base) as url:
        tab = Tab.open(browser, NOTEBOOK7_NOISE, viewport={"width": 1280, "height": 1600}, accept_downloads=True)
        tab.page.goto(f"{url}/notebooks/flow.ipynb")
        tab.page.wait_for_selector(".jp-Notebook", timeout=TIMEOUT_S * 1000)
        wait_for_idle_kernel(url, "flow.ipynb")  # a Run All on a cold kernel is dropped
        tab.page.click(RUN_MENU, timeout=30_000)
        tab.page.click(RUN_ALL)
        cells = tab.page.locator(CELL)
        yield tab, {"explorer": cells.nth(1), "magic": cells.nth(2)}
        tab.page.close()


def test_notebook7_magic_draws_the_chart_labelled_simulated(notebook7):
    tab, cells = notebook7
    magic = cells["magic"]
    state = tab.drawn(magic, TIMEOUT_S)
    bars = _hourly_bars(*MAGIC_DAYS)
    summary = _summary_says(tab, magic, "rows")
    assert "binance-futures perpetual-BTC-USDT:USDT 1h" in summary and "SIMULATED" in summary, summary
    assert f"{bars:,} rows" in summary, summary
    assert len(state["panels"]) >= 3 and all(p["marks"] for p in state["panels"]), state["panels"]
    assert _price_bars(state) == bars
    assert magic.locator(VEGA_MARKS).first.is_visible()
    assert not tab.unexpected_errors()


def test_notebook7_csv_export_downloads_every_bar(notebook7):
    tab, cells = notebook7
    magic = cells["magic"]
    tab.drawn(magic, TIMEOUT_S)
    with tab.page.expect_download(timeout=60_000) as download:
        magic.get_by_role("button", name=CSV, exact=True).click()
    assert download.value.suggested_filename.endswith(".csv"), download.value.suggested_filename
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    first, last = MAGIC_DAYS
    assert len(rows) == _hourly_bars(first, last)
    times = [datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for r in rows]
    assert times[0] == datetime(first.year, first.month, first.day, tzinfo=UTC)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(times))
    assert all(float(r["taker_buy_volume"]) >= 0 and float(r["taker_sell_volume"]) >= 0 for r in rows)
    assert not tab.unexpected_errors()


def test_notebook7_png_and_svg_are_rendered_in_the_page(notebook7):
    """The chart as shown, rendered by its Vega view: downloaded, or written by the kernel."""
    tab, cells = notebook7
    magic = cells["magic"]
    tab.drawn(magic, TIMEOUT_S)
    status = magic.locator(EXPORT_STATUS)
    stem = "binance-futures_perpetual-BTC-USDT-USDT_1h_2024-01-01_2024-02-29"
    with tab.page.expect_download(timeout=60_000) as download:
        magic.get_by_role("button", name=PNG, exact=True).click()
    png = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == f"{stem}.png"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, len(png)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 1000 and height > 1000, (width, height)  # the whole chart, at twice its size
    assert status.inner_text() == f"downloaded {stem}.png ({len(png):,} bytes)"
    with tab.page.expect_download(timeout=60_000) as download:
        magic.get_by_role("button", name=SVG, exact=True).click()
    svg = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename == f"{stem}.svg"
    assert svg.lstrip().startswith("<svg") and "binance-futures perpetual-BTC-USDT:USDT 1h" in svg and "SIMULATED" in svg
    # "save to kernel folder" (VS Code's default): the page's bytes go to the kernel, which writes them.
    magic.locator(EXPORT_DEST).select_option("file")
    magic.get_by_role("button", name=PNG, exact=True).click()
    tab.page.wait_for_function("(el) => el.textContent.startsWith('saved ')", arg=status.element_handle(), timeout=60_000)
    saved = Path(status.inner_text().removeprefix("saved ").rsplit(" (", 1)[0])
    assert saved.name == f"{stem}.png" and saved.read_bytes()[:8] == png[:8] and saved.stat().st_size > 20_000
    magic.locator(EXPORT_DEST).select_option("download")
    assert not tab.unexpected_errors()


def test_notebook7_explorer_load_draws_a_chart(notebook7):
    tab, cells = notebook7
    explorer = cells["explorer"]
    explorer.locator(EXPLORER).wait_for(timeout=TIMEOUT_S * 1000)
    assert explorer.locator(VEGA_MARKS).count() == 0, "nothing is loaded before Load"
    state = _load_in_explorer(tab, explorer, "SOL")
    assert _price_bars(state) == _hourly_bars(*EXPLORER_DAYS)
    assert not tab.unexpected_errors()


# -- Voila -------------------------------------------------------------------------------------

TUTORIAL = ROOT / "binder" / "02-explorer.ipynb"


@pytest.fixture(scope="module")
def voila(tmp_path_factory, browser):
    """The explorer tutorial as a Voila dashboard, one server and one page. Voila is no
    Jupyter Server app: it has no --allow-root (nor needs it) and spells its flags
    ``--Voila.*``."""
    base = tmp_path_factory.mktemp("voila")
    server = ["voila", str(TUTORIAL), "--no-browser", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--Voila.token="]
    # Voila executes the notebook for GET /: ask for a static file to see that it is up.
    with jupyter_server(server, base, ready="/voila/static/voila.js") as url:
        tab = Tab.open(browser, VOILA_NOISE, viewport={"width": 1280, "height": 1600})
        tab.page.goto(url + "/", timeout=TIMEOUT_S * 1000)  # answers once every cell has run
        yield tab, tab.page.locator(CELL, has=tab.page.locator(EXPLORER)).first  # the tutorial's first explorer
        tab.page.close()


def test_voila_renders_the_explorer_tutorial_as_a_dashboard(voila):
    tab, explorer = voila
    state = tab.drawn(explorer, TIMEOUT_S)
    summary = _summary_says(tab, explorer, "rows")
    assert "SIMULATED" in summary, summary
    assert len(state["panels"]) >= 3 and all(p["marks"] for p in state["panels"]), state["panels"]
    assert _price_bars(state) > 0
    # A dashboard: the tutorial's prose and outputs, none of its code.
    tutorial = nbformat.read(TUTORIAL, as_version=4)
    text = tab.page.inner_text("body")
    prose = [c.source for c in tutorial.cells if c.cell_type == "markdown"]
    code = {line for c in tutorial.cells if c.cell_type == "code" for line in c.source.splitlines() if len(line.strip()) > 10}
    code = {line for line in code if not any(line in p for p in prose)}  # the prose quotes some code
    assert code and prose[0].splitlines()[0].lstrip("# ") in text
    assert not [line for line in code if line in text], "a dashboard shows no code"
    assert not tab.unexpected_errors()


def test_voila_explorer_load_draws_a_new_chart(voila):
    tab, explorer = voila
    tab.drawn(explorer, TIMEOUT_S)
    shown = _summary_says(tab, explorer, "rows")
    symbol = "BTC" if "-BTC-" not in shown else "ETH"  # one the dashboard does not show yet
    state = _load_in_explorer(tab, explorer, symbol)
    assert _price_bars(state) > 0
    assert not tab.unexpected_errors()
