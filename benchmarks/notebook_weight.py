"""The weight of a saved notebook: what each chart adds when widget state is saved.

    .venv/bin/python benchmarks/notebook_weight.py                     # 1, 2 and 10 charts
    .venv/bin/python benchmarks/notebook_weight.py --baseline 53bd913  # and the same at a commit

Executes a notebook of ``%flow`` charts with nbclient, which saves widget state as
JupyterLab does with "save widget state" on (``store_widget_state=True``), and reports
the size nbformat writes for 0, 1, 2 and 10 charts: the first chart (1 chart − 0) and
each further chart ((10 − 1) / 9). Each chart is the quickstart's, three months of 1h
bars with the default panels, a different symbol each (demo data, no network).

One kernel run gives every size: the notebook of n charts is the executed one cut after
its n-th chart, with the widget models that the kept outputs reach (their references,
followed) and no others, which is what running n charts saves. ``--baseline REV`` runs
the same notebook against the package at a git revision (``git archive`` into a
temporary folder; nothing in the working tree changes).

Targets (issue 14): the first chart ≤ 1.2 MB, every further chart ≤ 150 kB.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ["BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "AVAX", "LINK", "LTC", "DOT"]
FIRST_TARGET, FURTHER_TARGET = 1_200_000, 150_000
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def chart_notebook(charts: int) -> nbformat.NotebookNode:
    """``%load_ext`` then one quickstart chart per cell."""
    nb = nbformat.v4.new_notebook()
    cells = ["%load_ext aperiodic_jupyter"] + [f"%flow binance {s} 1h 2024-01..2024-03" for s in SYMBOLS[:charts]]
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run ``nb`` in a new kernel, saving widget state; a cell's error is raised."""
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True).execute(env=env)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise RuntimeError(f"the notebook failed: {errors[0].get('ename')}: {errors[0].get('evalue')}")
    return nb


def _refs(value: Any) -> set[str]:
    """Model ids a widget state refers to (``"IPY_MODEL_<id>"``, anywhere in it)."""
    if isinstance(value, str):
        return {value[len("IPY_MODEL_") :]} if value.startswith("IPY_MODEL_") else set()
    if isinstance(value, dict):
        return set().union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def cut(nb: nbformat.NotebookNode, cells: int) -> nbformat.NotebookNode:
    """The first ``cells`` cells, with the widget models their outputs reach."""
    out = copy.deepcopy(nb)
    out.cells = out.cells[:cells]
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    todo = {
        o["data"][WIDGET_VIEW]["model_id"] for c in out.cells for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {})
    }
    kept: set[str] = set()
    while todo:
        model = todo.pop()
        if model in state and model not in kept:
            kept.add(model)
            todo |= _refs(state[model]["state"])
    if kept:
        out.metadata["widgets"][WIDGET_STATE]["state"] = {k: v for k, v in state.items() if k in kept}
    else:
        out.metadata.pop("widgets", None)
    return out


def size(nb: nbformat.NotebookNode) -> int:
    """Bytes of the file nbformat writes (what JupyterLab saves)."""
    return len(nbformat.writes(nb).encode("utf-8"))


def weights(nb: nbformat.NotebookNode, counts: list[int]) -> dict[int, int]:
    """Saved sizes of an executed chart notebook cut to 0 and to each of ``counts`` charts."""
    return {n: size(cut(nb, 1 + n)) for n in [0, *counts]}


def first_and_further(sizes: dict[int, int]) -> tuple[int, float]:
    """``(bytes the first chart adds, bytes each further chart adds on average)``."""
    top = max(sizes)
    return sizes[1] - sizes[0], (sizes[top] - sizes[1]) / (top - 1)


def baseline_env(rev: str, workdir: Path) -> dict[str, str]:
    """An environment whose kernels import the package as it was at ``rev``."""
    archive = workdir / "baseline.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "aperiodic_jupyter", "js"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(workdir / "src", filter="data")
    return {"PYTHONPATH": str(workdir / "src")}


def table_row(label: str, sizes: dict[int, int]) -> list[str]:
    """One results row: the sizes, the first chart, each further chart, the verdict."""
    first, further = first_and_further(sizes)
    verdict = "met" if first <= FIRST_TARGET and further <= FURTHER_TARGET else "MISSED"
    cells = [f"{sizes[n] / 1000:,.0f}" for n in sorted(sizes)]
    return [label, *cells, f"{first / 1000:,.0f}", f"{further / 1000:,.1f}", verdict]


def header(counts: list[int]) -> list[str]:
    return ["package", *(f"{n} chart{'s' * (n != 1)} kB" for n in [0, *counts]), "first chart kB", "each further kB", "target"]


def section(quick: bool) -> Any:
    """This measurement as a ``benchmarks/run.py`` section (``--quick``: two charts)."""
    from harness import Section

    counts = [1, 2] if quick else [1, 2, 10]
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("APERIODIC_")} | {"APERIODIC_CACHE_DIR": tmp}
        sizes = weights(execute(chart_notebook(max(counts)), env), counts)
    sec = Section("Saved notebooks: what each chart adds with widget state saved (nbclient)")
    sec.header = header(counts)
    sec.rows.append(table_row("this package", sizes))
    sec.notes.append(
        "each chart: %flow binance SYMBOL 1h 2024-01..2024-03 (demo); targets: first ≤ 1.2 MB, each further ≤ 150 kB"
    )
    return sec


def main(argv: list[str] | None = None) -> dict[str, dict[int, int]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--charts", default="1,2,10", help="chart counts to report, comma-separated (default 1,2,10)")
    parser.add_argument("--baseline", default=None, help="also measure the package at this git revision")
    args = parser.parse_args(argv)
    counts = sorted({int(c) for c in args.charts.split(",")} | {1, 2})
    results: dict[str, dict[int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("APERIODIC_")}
        env["APERIODIC_CACHE_DIR"] = str(Path(tmp) / "cache")
        runs = [(f"before ({args.baseline})", env | baseline_env(args.baseline, Path(tmp)))] if args.baseline else []
        for label, run_env in [*runs, ("now", env)]:
            print(f"{label}: executing {max(counts)} charts …", file=sys.stderr)
            results[label] = weights(execute(chart_notebook(max(counts)), run_env), counts)
    print("| " + " | ".join(header(counts)) + " |")
    print("|" + "---|" * len(header(counts)))
    for label, sizes in results.items():
        print("| " + " | ".join(table_row(label, sizes)) + " |")
    print(json.dumps(results), file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
