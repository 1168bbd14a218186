"""The live-flow tutorial (``binder/07-live-flow.ipynb``) runs end to end in a real kernel
on the simulated feed, bounded in time, and leaves no live thread behind."""

from __future__ import annotations

import re

import nbformat
import pytest

from .test_tutorials import BINDER, clean_env, execute

TUTORIAL = BINDER / "07-live-flow.ipynb"
#: Run after the tutorial's last cell, in its kernel: what is still running.
PROBE = "import threading\nprint('LIVE THREADS', [t.name for t in threading.enumerate() if t.name.startswith('aperiodic-live')])"


def printed(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream").strip()


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> nbformat.NotebookNode:
    nb = nbformat.read(TUTORIAL, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    path = tmp_path_factory.mktemp("live-tutorial") / TUTORIAL.name
    nbformat.write(nb, path)
    return execute(path, clean_env(path.parent))


def cell_after(nb: nbformat.NotebookNode, source_start: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start)]
    return cell


def test_the_tutorial_runs_without_an_error_and_stops_everything_it_started(ran):
    assert [o for c in ran.cells for o in c.get("outputs", []) if o.get("output_type") == "error"] == []
    assert printed(ran.cells[-1]) == "LIVE THREADS []"


def test_its_live_chart_gains_bars_says_its_state_and_is_labelled_simulated(ran):
    (shown,) = cell_after(ran, "p = %flow").outputs
    assert "application/vnd.jupyter.widget-view+json" in shown["data"]
    assert shown["data"]["text/plain"].startswith("SIMULATED demo feed · live binance-futures perpetual-BTC-USDT:USDT 1m")
    waited = printed(cell_after(ran, "held = p.wait"))
    held = int(waited.split()[0])
    assert held >= 180 and re.search(r"; live \(simulated ×600\) · last bar \d\d:\d\d:00 UTC · \d+ s ago", waited), waited
    kept = re.fullmatch(r"stopped · (\d+) bars kept", printed(cell_after(ran, "p.stop()")))
    assert kept and int(kept.group(1)) >= held


def test_its_script_loop_gets_history_then_live_bars_and_ends(ran):
    text = printed(cell_after(ran, "import time"))
    assert text == "30 bars: 10 from history, then 20 live; stopped", text
    lines = printed(cell_after(ran, "for bar in seen")).splitlines()
    assert len(lines) == 3 and all(" BTC live " in line for line in lines), lines


def test_its_venues_share_one_flow(ran):
    (result,) = [o for o in cell_after(ran, "venues = %flow").outputs if o.get("output_type") == "execute_result"]
    counts = dict(re.findall(r"(binance-futures|okx-perps)\s+(\d+)", result["data"]["text/plain"]))
    assert set(counts) == {"binance-futures", "okx-perps"} and all(int(n) >= 90 for n in counts.values()), counts


def test_the_tutorial_is_committed_without_outputs():
    nb = nbformat.read(TUTORIAL, as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
