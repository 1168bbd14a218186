"""The README's commands work as written: they are read out of README.md here, so the two
cannot drift.

The main-job command (create the venv, install with the ``lab`` extra, start JupyterLab
on the quickstart) must start as root (CI and many containers run as root), must not
crash on a machine without a display, must still open a browser where there is one, and
must serve the repository root with the quickstart open. Its server part runs here with
the suite's own ``.venv`` (which has jupyterlab from the test extra) instead of building
a second venv; only a private port, no token and private Jupyter directories are added.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
QUICKSTART = "binder/01-quickstart.ipynb"


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def main_job_command() -> str:
    """The first command of "The two commands": one line."""
    block = re.search(r"```bash\n(.*?)```", _section("The two commands"), re.S)
    assert block, "no bash block under 'The two commands'"
    lines = block.group(1).strip().splitlines()
    assert len(lines) == 1, "the main-job command is one line"
    return lines[0]


def main_job_parts() -> tuple[str, list[str], list[str]]:
    """(venv path, install argv, server argv) of the main-job command."""
    steps = [shlex.split(step) for step in main_job_command().split("&&")]
    assert len(steps) == 3, "create the venv && install && start JupyterLab"
    make_venv, install, server = steps
    assert make_venv[:3] == ["python3", "-m", "venv"] and len(make_venv) == 4
    return make_venv[3], install, server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str, bytes]:
    """(status, final URL after redirects, body)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.url, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, url, b""


def _wait_until(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.2)


def test_the_main_job_command_creates_installs_and_runs_from_one_venv():
    venv, install, server = main_job_parts()
    assert venv == ".venv"
    assert install[0] == f"{venv}/bin/pip" and install[1] == "install"
    assert ".[lab]" in install and install[install.index(".[lab]") - 1] == "-e"
    assert server[:2] == [f"{venv}/bin/jupyter", "lab"]
    assert "--allow-root" in server  # root in containers and CI
    assert "--no-browser" not in server  # a desktop user still gets a browser


@pytest.fixture
def run_main_job(tmp_path):
    """Start the README's server part on a free port; stop it and check nothing is left."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(env_changes: dict[str, str | None]) -> tuple[str, Path, Path]:
        venv, _, server = main_job_parts()
        jupyter = ROOT / server[0]
        if not jupyter.exists():  # the suite run by another interpreter: its own jupyter
            jupyter = Path(sys.executable).with_name("jupyter")
        port = _free_port()
        argv = [
            str(jupyter),
            *server[1:],
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
        for name in ("config", "data", "runtime"):
            env[f"JUPYTER_{name.upper()}_DIR"] = str(tmp_path / name)
        for k, v in env_changes.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        log = tmp_path / "lab.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        started.append((proc, tmp_path / "runtime"))
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, "JupyterLab exited:\n" + log.read_text()[-3000:]
            try:
                return _get(f"{url}/api/status")[0] == 200
            except OSError:
                return False

        _wait_until(up, 45, "JupyterLab to answer", log)
        return url, log, tmp_path / "runtime"

    yield start

    for proc, runtime in started:
        alive = proc.poll() is None
        if alive:
            proc.terminate()  # SIGTERM: what a service manager sends; the server shuts down
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError("JupyterLab did not stop on SIGTERM") from None

        def group_gone(pgid: int = proc.pid) -> bool:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            return False

        _wait_until(group_gone, 10, "every process JupyterLab started to exit")
        assert list(runtime.glob("jpserver-*.json")) == [], "the server did not shut down cleanly"


def _check_serves_the_repository(url: str) -> None:
    status, _, body = _get(f"{url}/api/contents/README.md")
    assert status == 200 and json.loads(body)["path"] == "README.md"  # the root is the repository
    status, _, body = _get(f"{url}/api/contents/{QUICKSTART}")
    assert status == 200 and json.loads(body)["type"] == "notebook"


def _check_opens_the_quickstart(url: str, path_and_query: str) -> None:
    parts = urlsplit(path_and_query)
    assert unquote(parts.path) == f"/lab/tree/{QUICKSTART}", path_and_query
    status, _, body = _get(f"{url}{parts.path}")
    assert status == 200 and b"JupyterLab" in body


@pytest.mark.timeout(90)
def test_the_main_job_command_serves_the_repository_and_opens_the_quickstart_in_the_browser(run_main_job, tmp_path):
    opened = tmp_path / "opened-url"
    browser = tmp_path / "browser"  # stands in for the desktop's browser: records the URL it is given
    browser.write_text(f"#!{sys.executable}\nimport pathlib, sys\npathlib.Path({str(opened)!r}).write_text(sys.argv[-1])\n")
    browser.chmod(0o755)
    url, log, _ = run_main_job({"BROWSER": str(browser)})
    _check_serves_the_repository(url)

    target = _wait_until(lambda: opened.exists() and opened.read_text(), 20, "the browser to be opened", log)
    if target.startswith("file:"):  # Jupyter's redirect page, which holds the token
        page = Path(url2pathname(urlsplit(target).path)).read_text()
        target = re.search(r'href="([^"]+)"', page).group(1)
    _check_opens_the_quickstart(url, urlsplit(target).path)


@pytest.mark.timeout(90)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="elsewhere the OS always has a browser to open")
def test_the_main_job_command_runs_without_a_display(run_main_job):
    # No DISPLAY, no BROWSER and no TERM (so no console browser either): nothing to open.
    url, log, _ = run_main_job({"TERM": None})
    _check_serves_the_repository(url)
    text = log.read_text()
    assert "No web browser found" in text  # reached the browser step and went on
    printed = re.findall(r"http://(?:127\.0\.0\.1|localhost):\d+(/\S*)", text)
    assert printed, text[-3000:]
    _check_opens_the_quickstart(url, printed[0])  # the URL a headless user copies opens the quickstart


def test_the_cli_example_runs_as_written(tmp_path):
    section = _section("The two commands")
    command = re.search(r"`([^`]* -m aperiodic_jupyter [^`]*)`", section).group(1)
    output_option = re.search(r"`(-o \S+\.parquet)`", section).group(1)
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/python", "say which Python: the venv's, active or not"
    python = ROOT / argv[0]
    if not python.exists():
        python = Path(sys.executable)
    out = tmp_path / Path(output_option.split()[1]).name
    env = {k: v for k, v in os.environ.items() if k not in ("APERIODIC_API_KEY", "APERIODIC_API_URL", "VIRTUAL_ENV")}
    env["APERIODIC_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run([str(python), *argv[1:], "-o", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # The summary: what was asked, how many bars from which source, the flow per day.
    for part in ("binance-futures perpetual-BTC-USDT:USDT 1h 2024-01-01..2024-03-31", "2,184 bars", "SIMULATED", "daily totals"):
        assert part in done.stdout, done.stdout
    assert f"wrote 2184 rows to {out}" in done.stdout
    assert pq.read_table(out).num_rows == 2184


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", ["README.md", "docs/api.md"])
def test_the_docs_send_readers_only_to_what_the_repository_has(doc):
    text = (ROOT / doc).read_text()
    assert "shared/" not in text  # the project workspace is not part of the package
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (ROOT / doc).parent / path if path else ROOT / doc
        assert file.exists(), f"{doc} links to {target}, which does not exist"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{doc} links to {target}: no such heading"
