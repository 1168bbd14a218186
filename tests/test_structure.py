"""The shape of the package as a user meets it: one settings object, one shared client
per source, one venue registry, the explorer exported lazily, and the bugs the
structure review found."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import date
from importlib import resources

import pytest
import traitlets
from IPython.core.interactiveshell import InteractiveShell

import aperiodic_jupyter as aj
from aperiodic_jupyter import Client, SchemaError, default_client, make_query, settings
from aperiodic_jupyter.core.cache import MemoryCache, MonthCache
from aperiodic_jupyter.core.sources.api import ApiSource
from aperiodic_jupyter.core.venues import EXCHANGE_ALIASES, EXCHANGES, VENUES
from aperiodic_jupyter.jupyter.explorer import FlowExplorer
from aperiodic_jupyter.jupyter.panel import FlowPanel

from .server import API_KEY, FakeApi, synthetic_table

# -- settings: named once, read everywhere ---------------------------------------------


def test_every_setting_is_one_trait_and_defaults_flow_from_it(monkeypatch, tmp_path):
    names = set(settings.trait_names(config=True))
    assert names == {"api_key", "base_url", "cache_dir", "memory_cache_bytes", "max_concurrency", "ttl", "source", "stream_url", "live_history", "live_max_bars"}
    settings.memory_cache_bytes = 12345
    settings.ttl = 42.0
    settings.max_concurrency = 3
    assert MemoryCache().max_bytes == 12345
    assert MonthCache().ttl == 42.0
    assert ApiSource(api_key="k", base_url="http://127.0.0.1:9/api/v1").max_concurrency == 3
    with Client("demo", cache_dir=False) as client:
        assert client.cache.ttl == 42.0


def test_config_magic_writes_the_same_settings_object(monkeypatch, capsys):
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext aperiodic_jupyter", store_history=False)
    shell.run_cell("%config Aperiodic.ttl = 60", store_history=False)
    shell.run_cell("%config Aperiodic.api_key = 'sk-never-shown'", store_history=False)
    assert settings.ttl == 60.0 and settings.api_key.reveal() == "sk-never-shown"
    shell.run_cell("%config Aperiodic", store_history=False)
    out = capsys.readouterr().out
    assert "ttl" in out and "max_concurrency" in out and "sk-never-shown" not in out
    assert "sk-never-shown" not in repr(settings)


# -- one client lifecycle ----------------------------------------------------------------


def test_one_shared_client_per_source_until_the_settings_change():
    first = default_client("demo")
    assert default_client("demo") is first and default_client("DEMO") is first
    settings.ttl = 5.0  # any setting: the next call builds a new client
    second = default_client("demo")
    assert second is not first and not second.closed
    assert first.closed  # nobody was using it: closed at once
    with pytest.raises(RuntimeError, match="closed"):
        first.fetch(make_query("binance", "BTC", "1d", "2024-01"))


def test_a_closed_client_is_never_handed_out():
    client = default_client("demo")
    client.close()
    again = default_client("demo")
    assert again is not client and not again.closed


def test_a_retired_client_finishes_the_fetch_another_thread_started(api, monkeypatch):
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    settings.api_key = API_KEY
    api.inject("file", delay=1.0, times=1)
    old = default_client("api")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(df=old.fetch(make_query("binance", "BTC", "1h", "2023-05"))))
    worker.start()
    while api.inflight == 0 and worker.is_alive():  # the file request is being served (1 s delay)
        threading.Event().wait(0.02)
    assert api.inflight == 1 and worker.is_alive()
    settings.max_concurrency = 4  # retire `old` while its download is in flight
    new = default_client("api")
    assert new is not old and not old.closed  # still in use: not closed under the worker
    worker.join(30)
    assert len(result["df"]) == 31 * 24
    assert old.closed  # closed once the last call finished


def test_threads_asking_at_once_share_one_client():
    settings.ttl = 7.0
    got: list[Client] = []
    threads = [threading.Thread(target=lambda: got.append(default_client("demo"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in got}) == 1


def test_get_flow_with_or_without_a_source_uses_the_shared_client():
    aj.get_flow("binance", "BTC", "1d", "2024-01", source="demo", progress=False)
    client = default_client("demo")
    aj.get_flow("binance", "BTC", "1d", "2024-01", source="demo", progress=False)
    assert default_client("demo") is client and not client.closed
    settings.source = "demo"
    df = aj.get_flow("binance", "BTC", "1d", "2024-01", progress=False)
    assert df.attrs["source"] == "demo"


# -- the venue registry --------------------------------------------------------------------


def test_one_registry_names_every_venue_and_each_has_its_symbol_list():
    assert EXCHANGES == tuple(v.name for v in VENUES)
    shipped = {p.name.removesuffix(".json") for p in resources.files("aperiodic_jupyter.core").joinpath("data").iterdir()}
    assert set(EXCHANGES) <= shipped
    for v in VENUES:
        assert all(EXCHANGE_ALIASES[a] == v.name for a in v.aliases)
        assert aj.resolve_symbol(v.name, "BTC").startswith("perpetual-BTC-")
    # every front end offers exactly the registry's venues
    assert FlowExplorer().selector.exchanges == list(EXCHANGES)


# -- the explorer is part of the package, loaded lazily -------------------------------------


def test_flow_explorer_is_exported_but_import_stays_light():
    code = (
        "import sys, aperiodic_jupyter as aj\n"
        "heavy = [m for m in ('ipywidgets', 'anywidget', 'altair', 'IPython.display') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from aperiodic_jupyter import FlowExplorer\n"
        "assert 'ipywidgets' in sys.modules and FlowExplorer.__name__ == 'FlowExplorer'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert aj.FlowExplorer is FlowExplorer and "FlowExplorer" in aj.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        aj.Nope  # noqa: B018


# -- bugs the review found --------------------------------------------------------------------


def test_an_exchange_alias_selects_the_dropdown_option_and_keeps_the_symbols():
    w = FlowExplorer(exchange="okx", symbol="ETH")
    assert w.selector.exchange == "okx-perps" and w.selector.exchange in w.selector.exchanges
    assert "ETH" in w.selector.symbol_options
    assert json.loads(json.dumps(w.selector.get_state()["exchange"])) == "okx-perps"


def test_brush_ranges_are_read_only_as_altair_selections_are():
    w = FlowExplorer("binance", "BTC", "1d", "2024-01")
    w.load()
    with pytest.raises(traitlets.TraitError, match="read-only"):
        w.brush_range = ("2024-01-02", "2024-01-03")
    panel = FlowPanel(w.df)
    with pytest.raises(traitlets.TraitError, match="read-only"):
        panel.brush_range = ("2024-01-02", "2024-01-03")


def test_daily_files_that_disagree_on_columns_are_a_schema_error(make_client):
    def data(*key):
        table = synthetic_table(*key)
        return table.drop_columns(["flow_entropy"]) if key[-1] == 20 else table

    with FakeApi(data, daily_from=date(2024, 3, 10)) as server:
        client = make_client(server)
        with pytest.raises(SchemaError, match="daily files of 2024-03 disagree"):
            client.fetch(make_query("binance", "BTC", "1h", "2024-03"))
        assert client.plan(make_query("binance", "BTC", "1h", "2024-03"))["cached"].tolist() == ["no"]


# -- %flow: every assignment form, and --widget says what it does not take ----------------


LINE = "%flow binance BTC 1d 2024-01"


@pytest.mark.parametrize(
    "cell, name",
    [
        (f"df = {LINE}", "df"),
        (f"import pandas as pd\nx: pd.DataFrame = {LINE}", "x"),
        (f"def f():\n    df = {LINE}\n    return df\nr = f()", "r"),
        (f"%%capture cap\ndf = {LINE}", "df"),
        (f"class Holder: pass\nholder = Holder()\nholder.df = {LINE}\ndf = holder.df", "df"),
        (f"box = {{}}\nbox['df'] = {LINE}\ndf = box['df']", "df"),
    ],
)
def test_every_assignment_form_binds_a_plain_frame_and_shows_nothing(ip, cell, name):
    import pandas as pd

    result = ip.run_cell(cell, store_history=False)
    assert result.success, result.error_in_exec
    assert type(ip.user_ns[name]) is pd.DataFrame and len(ip.user_ns[name]) == 31
    assert ip.shown == []


def test_unpacking_the_magic_is_refused_in_one_line(ip, capsys):
    result = ip.run_cell(f"a, = {LINE}", store_history=False)
    assert not result.success
    err = capsys.readouterr()
    text = (err.out + err.err).strip()
    assert text == "UsageError: assign %flow to one name (df = %flow ...); it returns one frame, not a tuple"


def test_a_bare_line_shows_the_panel(ip):
    assert ip.run_cell(LINE, store_history=False).result is None
    assert [type(x).__name__ for x in ip.shown] == ["FlowPanel"]


@pytest.mark.parametrize(
    "options, message",
    [
        ("BTC,ETH 1h 2024-01 --widget", "--widget opens one symbol at a time, got BTC,ETH"),
        ("BTC 1h 2024-01 --widget -c volumes", "--widget does not take -c/--columns"),
        ("BTC 1h 2024-01 --widget --no-cache", "--widget does not take --no-cache"),
        ("BTC 1h 2024-01 --widget -m returns", "--widget does not take -m/--metric"),
        ("BTC 1h 2024-01 --widget --dry-run --no-chart", "--no-chart (the explorer is a chart); --dry-run"),
    ],
)
def test_widget_says_in_one_line_which_options_it_does_not_take(ip, capsys, options, message):
    result = ip.run_cell(f"%flow binance {options}", store_history=False)
    assert not result.success
    err = capsys.readouterr()
    text = (err.out + err.err).strip()
    assert text.startswith("UsageError: ") and "\n" not in text and message in text, text


def test_widget_takes_source_timestamp_and_out(ip):
    ip.run_cell("%flow okx ETH 1h 2024-01 --widget -s demo -t true -o w", store_history=False)
    w = ip.user_ns["w"]
    assert isinstance(w, FlowExplorer) and ip.shown == [w]
    assert (w.selector.source, w.selector.timestamp) == ("demo", "true")


def test_the_magic_reuses_the_shared_client(ip):
    ip.run_cell(f"x = {LINE} -s demo", store_history=False)
    client = default_client("demo")
    ip.run_cell(f"x = {LINE} -s demo", store_history=False)
    assert default_client("demo") is client and not client.closed
