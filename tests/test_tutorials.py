"""The Binder tutorials run end to end, leak nothing, and their environment does not drift."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .server import API_KEY, PREVIEW_KEY, FakeApi

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
TUTORIALS = sorted(BINDER.glob("[0-9][0-9]-*.ipynb"))
# The live tutorial runs once, in tests/test_live_tutorial.py, which checks its cells too.
RUN_HERE = [p for p in TUTORIALS if p.name != "07-live-flow.ipynb"]
#: Where nothing listens: a tutorial's preview cell meets a network that does not answer.
UNREACHABLE = "http://127.0.0.1:9/api/v1"
PREVIEW_LABEL = "Aperiodic preview: real market data, limited slice"
#: What each tutorial's real-data cell prints when the preview answers (the loopback
#: server's June 2025 slice): how the line starts, then what else it says. 04 works on
#: the user's own trades and has none.
REAL_DATA = {
    "01-quickstart.ipynb": (f"{PREVIEW_LABEL}: 168 bars, net taker delta ",),
    "02-explorer.ipynb": ("binance-futures perpetual-BTC-USDT:USDT 1h", "336 rows", "source: preview", PREVIEW_LABEL),
    "03-reading-order-flow.ipynb": (f"{PREVIEW_LABEL}: 720 hourly bars; buy-share autocorrelation by lag {{1: ",),
    "05-real-api.ipynb": (f"{PREVIEW_LABEL}: 168 bars; again from ['memory']; cached under preview-127.0.0.1_",),
    "06-flow-against-price.ipynb": (f"{PREVIEW_LABEL}: r = ", " between volume delta and log return over 720 hourly bars"),
}


def says(text: str, expected: tuple[str, ...]) -> bool:
    """One line that starts as expected and says the rest."""
    return "\n" not in text and text.startswith(expected[0]) and all(part in text for part in expected[1:])


def execute(path: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(BINDER)}})
    client.execute(env={k: v for k, v in env.items() if v is not None})
    return nb


def clean_env(tmp_path: Path, api_url: str = UNREACHABLE) -> dict[str, str]:
    """No key, a private cache, and the API at ``api_url``: never the internet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APERIODIC_")}
    env["APERIODIC_CACHE_DIR"] = str(tmp_path / "cache")
    env["APERIODIC_API_URL"] = api_url
    return env


def real_data_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if "real-data" in c.get("metadata", {}).get("tags", [])]


def printed(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream").strip()


@pytest.fixture(scope="module")
def preview_server():
    """One loopback API for the module: its preview answers the tutorials' real-data cells."""
    with FakeApi() as api:
        yield api


def test_there_are_seven_tutorials_and_the_readme_links_each():
    assert [p.name[:2] for p in TUTORIALS] == ["01", "02", "03", "04", "05", "06", "07"]
    readme = (ROOT / "README.md").read_text()
    for p in TUTORIALS:
        assert f"binder/{p.name}" in readme, p.name


@pytest.mark.parametrize("path", RUN_HERE, ids=lambda p: p.name)
def test_tutorial_runs_on_the_demo_source_and_its_real_data_cell_reads_the_preview(path, tmp_path, preview_server):
    """Each tutorial runs once: the demo source everywhere, and its real-data cell (one
    per tutorial but 04) reads the preview, which answers here (Binder is online)."""
    keys_before = len(preview_server.received_keys)
    nb = execute(path, clean_env(tmp_path, preview_server.base_url))
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []  # no traceback anywhere
    # A cell tagged raises-exception shows its one-line error on purpose.
    for cell in nb.cells:
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            (out,) = cell.outputs
            assert out["text"].startswith("UsageError: ") and out["text"].count("\n") == 1
    cells = real_data_cells(nb)
    assert len(cells) == (path.name in REAL_DATA)
    for cell in cells:
        text = printed(cell)
        assert says(text, REAL_DATA[path.name]) and PREVIEW_LABEL in text, text
    # only the real-data cell went to the network, with the shared preview key
    assert set(preview_server.received_keys[keys_before:]) == ({PREVIEW_KEY} if cells else set())


def test_every_real_data_cell_says_in_one_line_when_the_preview_is_unreachable(tmp_path):
    """The other outcome, without running every tutorial again: the real-data cells stand
    alone (each imports what it uses), so they run together in one kernel."""
    cells = {path.name: real_data_cells(nbformat.read(path, as_version=4)) for path in TUTORIALS}
    assert {name for name, found in cells.items() if found} == set(REAL_DATA)
    assert all(len(found) <= 1 for found in cells.values())
    nb = nbformat.v4.new_notebook(cells=[c for found in cells.values() for c in found])
    nb.metadata = nbformat.read(TUTORIALS[0], as_version=4).metadata
    path = tmp_path / "real-data.ipynb"
    nbformat.write(nb, path)
    ran = execute(path, clean_env(tmp_path))
    assert [o for c in ran.cells for o in c.outputs if o.get("output_type") == "error"] == []
    for name, cell in zip(REAL_DATA, ran.cells, strict=True):
        text = printed(cell)
        assert text.startswith("The preview could not be reached from here (") and "\n" not in text, (name, text)
        assert "/files/" not in text and "X-Amz-Signature" not in text, (name, text)


def test_the_api_tutorial_against_the_loopback_api_leaks_no_secret(tmp_path):
    with FakeApi() as api:
        env = clean_env(tmp_path, api.base_url) | {"APERIODIC_API_KEY": API_KEY}
        nb = execute(BINDER / "05-real-api.ipynb", env)
        # three API months; the preview cell's month came with the shared key (the
        # server refuses any other key there), never the user's
        assert api.counts["file"] == 3 + 1 and set(api.received_keys) == {API_KEY, PREVIEW_KEY}
        assert [status for route, label, status in api.log if route == "list" and label.startswith("preview/")] == [200]
    (cell,) = real_data_cells(nb)
    assert says(printed(cell), REAL_DATA["05-real-api.ipynb"]), printed(cell)
    saved = json.dumps(nb)
    assert "api-127.0.0.1" in saved  # it really used the API source
    assert API_KEY not in saved
    assert "X-Amz-Signature" not in saved and "/files/" not in saved


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorials_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


def _names(requirements: list[str]) -> dict[str, str]:
    out = {}
    for line in requirements:
        line = line.split("#")[0].strip()
        if line:
            name = re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower()
            out[name] = line
    return out


def test_binder_environment_installs_what_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _names(project["dependencies"] + project["optional-dependencies"]["lab"])
    binder = _names((BINDER / "requirements.txt").read_text().splitlines())
    for name, spec in declared.items():
        assert binder.get(name) == spec, f"binder/requirements.txt has {binder.get(name)!r}, pyproject.toml {spec!r}"


def _imported_modules(path: Path) -> set[str]:
    """Top-level modules a notebook's code cells import."""
    nb = nbformat.read(path, as_version=4)
    found: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            for m in re.finditer(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", cell.source, re.MULTILINE):
                found.add(m.group(1))
    return found


def test_a_fresh_environment_from_binder_files_runs_the_tutorials(tmp_path):
    """What repo2docker does: install binder/requirements.txt, run binder/postBuild."""
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "uv"], check=True)
    subprocess.run(
        [py, "-m", "uv", "pip", "install", "-q", "--python", str(py), "-r", str(BINDER / "requirements.txt")], check=True
    )
    env = clean_env(tmp_path) | {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    subprocess.run(["bash", str(BINDER / "postBuild")], check=True, env=env, cwd=tmp_path)
    probe = subprocess.run(
        [py, "-c", "import aperiodic_jupyter; print(aperiodic_jupyter.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in probe.stdout  # installed into the fresh environment, not borrowed from ours
    # Every module the tutorials import is there; the quickstart runs end to end (all
    # tutorials run in the suite's own environment above, so once here is enough).
    modules = sorted({m for path in TUTORIALS for m in _imported_modules(path)})
    check = subprocess.run([py, "-c", f"import {', '.join(modules)}"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-2000:]
    out = tmp_path / "out"
    for path in TUTORIALS[:1]:
        proc = subprocess.run(
            [venv / "bin" / "jupyter", "nbconvert", "--to", "notebook", "--execute", str(path), "--output-dir", str(out)],
            env=env,
            cwd=BINDER,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{path.name}: {proc.stderr[-3000:]}"
