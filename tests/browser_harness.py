"""What every real-browser test needs, whichever front end it drives: a Jupyter-family
server on a private port with private config, data and runtime dirs, Debian's Chromium
(the ``browser`` fixture), pages that keep their Vega views and JavaScript errors, and
the known console noise of each front end.

The Chromium fixture, the Vega probes and the notebook helpers live in
``tests/test_browser.py`` (JupyterLab); they are re-exported here so that the other front
ends' tests import them from one place.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .test_browser import _free_port as free_port
from .test_browser import _get as get
from .test_browser import _hooked_page as hooked_page
from .test_browser import _wait_for_idle_kernel as wait_for_idle_kernel
from .test_browser import _wait_for_view as wait_for_view
from .test_browser import _write_notebook as write_notebook
from .test_browser import browser as browser

__all__ = [
    "Tab",
    "browser",
    "free_port",
    "get",
    "hooked_page",
    "jupyter_server",
    "unexpected",
    "wait_for_idle_kernel",
    "wait_for_view",
    "write_notebook",
    "NOTEBOOK7_NOISE",
    "VOILA_NOISE",
]

#: Console errors Notebook 7.6's own page logs even for a notebook holding only
#: ``print(1)``: not ours, not chased.
NOTEBOOK7_NOISE = (
    re.compile(r"Cannot read properties of undefined \(reading 'schema'\)"),
    re.compile(r"\[yjs#509\] Not same Y\.Doc"),
)

#: Voila 0.5's page asks a CDN for fontawesome (a failed request offline), and with
#: Notebook 7.6 in the same environment logs module-federation RUNTIME-012 errors from
#: ``@jupyter-notebook/lab-extension``. Both appear with a plain notebook too.
VOILA_NOISE = (
    re.compile(r"Failed to load resource: net::ERR_"),
    re.compile(r"RUNTIME-012"),
)


def unexpected(errors: Sequence[str], noise: Sequence[re.Pattern[str]]) -> list[str]:
    """The page errors that are none of the front end's known ``noise``."""
    return [e for e in errors if not any(p.search(e) for p in noise)]


@dataclass
class Tab:
    """A browser page of one front end: what it logged (``hooked_page``), which requests
    failed, and which of its console errors are known noise."""

    page: Any
    errors: list[str]
    noise: Sequence[re.Pattern[str]]
    failed: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Any, noise: Sequence[re.Pattern[str]], **options: Any) -> Tab:
        page, errors = hooked_page(browser, **options)
        tab = cls(page, errors, noise)
        page.on("requestfailed", lambda request: tab.failed.append(request.url))
        return tab

    def unexpected_errors(self) -> list[str]:
        """Page errors besides the known noise, and any failed request to this machine."""
        local = [f"request failed: {u}" for u in self.failed if u.startswith(("http://127.0.0.1", "ws://127.0.0.1"))]
        return unexpected(self.errors, self.noise) + local

    def drawn(self, scope: Any, timeout: float = 120) -> dict:
        """The Vega view in ``scope`` once every panel has marks (``wait_for_view``, within
        ``timeout`` seconds); if none draws, the failure says what the page logged."""
        try:
            return wait_for_view(self.page, scope, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; page errors: {self.unexpected_errors()}") from None

    def views_made(self) -> int:
        """How many Vega views the page has made so far (``VEGA_HOOK`` keeps them)."""
        return self.page.evaluate("() => (window.__apjVegaViews || []).length")


def server_app(app: str, root: Path, *flags: str) -> list[str]:
    """``app`` (``jupyterlab``, ``notebook``: a Jupyter Server app) serving ``root`` on
    127.0.0.1 with no browser, token or password, and no other port than the one given,
    plus the app's own ``flags``: what :func:`jupyter_server` runs."""
    return [
        app,
        "--allow-root",
        "--no-browser",
        "--ip=127.0.0.1",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        *flags,
    ]


@contextmanager
def jupyter_server(
    app: Sequence[str], base: Path, *, ready: str = "/api/status", timeout: float = 90, port: int | None = None
) -> Iterator[str]:
    """Run ``python -m <app...> --port=N`` with Jupyter's and IPython's config, data and
    runtime dirs (and the package's cache) under ``base``, token-less and without the
    API key; yield its URL once GET ``ready`` answers, stop it (within 20 s) after.

    ``app`` carries the front end's own flags (``--allow-root``, ``port_retries=0``...):
    the spellings differ between Jupyter Server apps and Voila.
    """
    port = port or free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
        "APERIODIC_CACHE_DIR": str(base / "cache"),
    }
    env.pop("APERIODIC_API_KEY", None)
    log_path = base / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", *app, f"--port={port}"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout
            while True:
                try:
                    get(url + ready)
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{app[0]} did not start:\n" + log_path.read_text()[-3000:]) from None
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
