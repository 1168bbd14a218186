"""The live-flow tutorial (``binder/07-live-flow.ipynb``) runs end to end in a real kernel
on the simulated feed, bounded in time, and leaves no live thread behind."""

from __future__ import annotations

import re

import nbformat

from .test_tutorials import BINDER, clean_env, execute

TUTORIAL = BINDER / "07-live-flow.ipynb"
#: Run after the tutorial's last cell, in its kernel: what is still running.
PROBE = "import threading\nprint('LIVE THREADS', [t.name for t in threading.enumerate() if t.name.startswith('aperiodic-live')])"


def printed(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream").strip()


def run_tutorial(tmp_path) -> nbformat.NotebookNode:
    nb = nbformat.read(TUTORIAL, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    path = tmp_path / TUTORIAL.name
    nbformat.write(nb, path)
    return execute(path, clean_env(tmp_path))


def cell_after(nb: nbformat.NotebookNode, source_start: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start)]
    return cell


def test_the_tutorial_runs_shows_live_charts_and_a_script_loop_and_stops_everything(tmp_path):
    """One run (a kernel and the sped-up feed cost some 20 s), every cell checked."""
    ran = run_tutorial(tmp_path)
    assert [o for c in ran.cells for o in c.get("outputs", []) if o.get("output_type") == "error"] == []

    # The live chart: a widget, labelled simulated, that gained bars and said its state.
    (shown,) = cell_after(ran, "p = %flow").outputs
    assert "application/vnd.jupyter.widget-view+json" in shown["data"]
    assert shown["data"]["text/plain"].startswith("SIMULATED demo feed · live binance-futures perpetual-BTC-USDT:USDT 1m")
    waited = printed(cell_after(ran, "held = p.wait"))
    held = int(waited.split()[0])
    assert held >= 180 and re.search(r"; live \(simulated ×600\) · last bar \d\d:\d\d:00 UTC · \d+ s ago", waited), waited
    kept = re.fullmatch(r"stopped · (\d+) bars kept", printed(cell_after(ran, "p.stop()")))
    assert kept and int(kept.group(1)) >= held

    # Two venues on one flow.
    (result,) = [o for o in cell_after(ran, "venues = %flow").outputs if o.get("output_type") == "execute_result"]
    counts = dict(re.findall(r"(binance-futures|okx-perps)\s+(\d+)", result["data"]["text/plain"]))
    assert set(counts) == {"binance-futures", "okx-perps"} and all(int(n) >= 90 for n in counts.values()), counts

    # The script loop: history, then live bars, ended by its own bound.
    text = printed(cell_after(ran, "import time"))
    assert text == "30 bars: 10 from history, then 20 live; stopped", text
    lines = printed(cell_after(ran, "for bar in seen")).splitlines()
    assert len(lines) == 3 and all(" BTC live " in line for line in lines), lines

    # Nothing left running in the kernel.
    assert printed(ran.cells[-1]) == "LIVE THREADS []"


def test_the_tutorial_is_committed_without_outputs():
    nb = nbformat.read(TUTORIAL, as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
