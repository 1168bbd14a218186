from __future__ import annotations

from datetime import date, timedelta

import pytest

import aperiodic_jupyter
from aperiodic_jupyter import Client
from aperiodic_jupyter.core.cache import MemoryCache
from aperiodic_jupyter.core.client import shared_memory_cache

from .server import API_KEY, FakeApi
from .ws_server import FakeStream


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test sees the developer's key, API URL, cache or settings."""
    for name in ("APERIODIC_API_KEY", "APERIODIC_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APERIODIC_CACHE_DIR", str(tmp_path / "default-cache"))
    aperiodic_jupyter.settings.reset()
    shared_memory_cache().clear()  # a loopback server may reuse an earlier one's port
    yield
    aperiodic_jupyter.settings.reset()


@pytest.fixture
def ip(monkeypatch):
    """A real IPython shell with the extension loaded, as a user's notebook has it: what
    ``%flow`` displays lands in ``ip.shown``; names a test binds are removed after it."""
    from IPython.core.interactiveshell import InteractiveShell

    import aperiodic_jupyter.jupyter.magic as magic_module

    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext aperiodic_jupyter", store_history=False)
    shown: list = []
    monkeypatch.setattr(magic_module, "display", shown.append)
    shell.shown = shown
    before = set(shell.user_ns)
    yield shell
    for name in set(shell.user_ns) - before:
        if not name.startswith("_"):
            shell.user_ns.pop(name, None)


@pytest.fixture
def api():
    with FakeApi() as server:
        yield server


@pytest.fixture(scope="module")
def demo():
    """A demo client of the module's own: no disk cache, a private memory cache."""
    with Client("demo", cache_dir=False, memory_cache=MemoryCache()) as client:
        yield client


@pytest.fixture(scope="module")
def rest():
    """The loopback API for live tests: recent days come as daily files, as the contract says."""
    with FakeApi(daily_from=date.today() - timedelta(days=5)) as server:
        yield server


@pytest.fixture(scope="module")
def ws():
    """The loopback live stream (``tests/ws_server.py``)."""
    with FakeStream() as server:
        yield server


@pytest.fixture
def make_client(tmp_path):
    """Clients against a server, with fast retries and a private cache."""
    made = []

    def make(server: FakeApi, *, cache_dir=None, memory=None, **options) -> Client:
        options.setdefault("backoff", 0.01)
        options.setdefault("max_retry_wait", 2.0)
        options.setdefault("timeout", 5.0)
        client = Client(
            "api",
            api_key=options.pop("api_key", API_KEY),
            base_url=server.base_url,
            cache_dir=tmp_path / "cache" if cache_dir is None else cache_dir,
            memory_cache=memory if memory is not None else MemoryCache(),
            **options,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# -- two workers (pytest-xdist, addopts in pyproject.toml) ----------------------------------

#: Modules whose tests share nothing costly: each test may run on either worker. Every
#: other module stays on one worker, so its module-scoped server, browser or kernel
#: starts once.
SPREAD = {"test_tutorials", "test_readme_commands", "test_quality", "test_benchmarks_smoke", "test_views", "test_compare_chart"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.stem
        if module not in SPREAD:
            item.add_marker(pytest.mark.xdist_group(module))


# -- CI guards: a run that skipped tests or ran almost none must not pass -----------------

MIN_TESTS_IN_CI = 180


def pytest_sessionfinish(session, exitstatus):
    import os

    if not os.environ.get("CI") or exitstatus != 0 or hasattr(session.config, "workerinput"):
        return  # an xdist worker sees only its share; the controller checks the whole run
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter else {}
    skipped = len(stats.get("skipped", []))
    passed = len(stats.get("passed", []))
    if skipped:
        reporter.write_line(f"CI: {skipped} test(s) were skipped; every test must run in CI", red=True)
        session.exitstatus = 1
    elif passed < MIN_TESTS_IN_CI:
        reporter.write_line(f"CI: only {passed} tests passed, expected at least {MIN_TESTS_IN_CI}", red=True)
        session.exitstatus = 1
