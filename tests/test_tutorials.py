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

from .server import API_KEY, FakeApi

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
TUTORIALS = sorted(BINDER.glob("[0-9][0-9]-*.ipynb"))


def execute(path: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(BINDER)}})
    client.execute(env={k: v for k, v in env.items() if v is not None})
    return nb


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APERIODIC_")}
    env["APERIODIC_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def test_there_are_six_tutorials_and_the_readme_links_each():
    assert [p.name[:2] for p in TUTORIALS] == ["01", "02", "03", "04", "05", "06"]
    readme = (ROOT / "README.md").read_text()
    for p in TUTORIALS:
        assert f"binder/{p.name}" in readme, p.name


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs_on_the_demo_source(path, tmp_path):
    nb = execute(path, clean_env(tmp_path))
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []  # no traceback anywhere
    # A cell tagged raises-exception shows its one-line error on purpose.
    for cell in nb.cells:
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            (out,) = cell.outputs
            assert out["text"].startswith("UsageError: ") and out["text"].count("\n") == 1


def test_the_api_tutorial_against_the_loopback_api_leaks_no_secret(tmp_path):
    with FakeApi() as api:
        env = clean_env(tmp_path) | {"APERIODIC_API_KEY": API_KEY, "APERIODIC_API_URL": api.base_url}
        nb = execute(BINDER / "05-real-api.ipynb", env)
        assert api.counts["file"] == 3 and set(api.received_keys) == {API_KEY}
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


def _real_data_output(nb: nbformat.NotebookNode) -> str:
    (cell,) = [c for c in nb.cells if "real-data" in c.get("metadata", {}).get("tags", [])]
    return "".join(o.get("text", "") for o in cell.outputs)


def test_the_quickstarts_real_data_cell_says_in_one_line_when_the_preview_is_unreachable(tmp_path):
    env = clean_env(tmp_path) | {"APERIODIC_API_URL": "http://127.0.0.1:9/api/v1"}  # nothing listens there
    text = _real_data_output(execute(BINDER / "01-quickstart.ipynb", env)).strip()
    assert text.startswith("The preview could not be reached from here (") and "\n" not in text


def test_the_quickstarts_real_data_cell_reads_the_preview_when_it_answers(tmp_path):
    with FakeApi() as api:
        env = clean_env(tmp_path) | {"APERIODIC_API_URL": api.base_url}
        text = _real_data_output(execute(BINDER / "01-quickstart.ipynb", env)).strip()
        assert text.startswith("Aperiodic preview: real market data, limited slice: 168 bars")
        assert set(api.received_keys) == {"DEMO-KEY"}
