"""The %flow magic in a real IPython shell, the way a user types it."""

from __future__ import annotations

import sys

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from IPython.core.completer import provisionalcompleter

import aperiodic_jupyter as aj
from aperiodic_jupyter.core.cache import CacheKey
from aperiodic_jupyter.jupyter.explorer import FlowExplorer
from aperiodic_jupyter.jupyter.panel import FlowPanel

from .server import API_KEY


def run(ip, line):
    result = ip.run_cell(line, store_history=True)
    return result


def test_assignment_binds_a_plain_dataframe_and_shows_nothing(ip):
    result = run(ip, "df = %flow binance-futures BTC 1h 2024-01..2024-03")
    assert result.success
    df = ip.user_ns["df"]
    assert type(df) is pd.DataFrame and len(df) == 91 * 24
    assert df.attrs["simulated"] is True
    assert ip.shown == []


def test_bare_line_shows_the_flow_panel(ip):
    result = run(ip, "%flow binance BTC 1h 2024-01")
    assert result.success and result.result is None
    (panel,) = ip.shown
    assert isinstance(panel, FlowPanel)
    assert "SIMULATED" in repr(panel) and "744 rows" in repr(panel)  # the summary line


def test_out_option_binds_and_still_shows(ip):
    result = run(ip, "%flow okx BTC 4h 2024-02 -o flows")
    assert result.success
    assert len(ip.user_ns["flows"]) == 29 * 6
    assert len(ip.shown) == 1


def test_several_symbols_give_a_symbol_column_and_a_tab_each(ip):
    run(ip, "%flow binance BTC,ETH 1d 2024-01 -o flows")
    flows = ip.user_ns["flows"]
    assert list(flows["symbol"].unique()) == ["perpetual-BTC-USDT:USDT", "perpetual-ETH-USDT:USDT"]
    assert list(flows.columns[:3]) == ["time", "exchange", "symbol"]
    tabs = ip.shown[0]
    assert [tabs.get_title(i) for i in range(2)] == ["BTC", "ETH"]


def test_column_groups_select_what_is_returned(ip):
    run(ip, "df = %flow binance BTC 1h 2024-01-01 -c volumes,toxicity")
    assert list(ip.user_ns["df"].columns) == [
        "time",
        "taker_buy_volume",
        "taker_sell_volume",
        "volume_delta",
        "volume_delta_notional",
        "flow_toxicity_score",
        "flow_entropy",
    ]


def test_no_chart_returns_the_table(ip):
    result = run(ip, "%flow binance BTC 1h 2024-01-01 --no-chart -t true")
    assert isinstance(result.result, pd.DataFrame)
    assert result.result.attrs["query"]["timestamp"] == "true"
    assert ip.shown == []


def test_dry_run_lists_months_and_what_is_cached(ip):
    run(ip, "x = %flow binance BTC 1h 2024-01..2024-02")
    result = run(ip, "%flow binance BTC 1h 2023-12..2024-02 --dry-run")
    plan = result.result
    assert list(plan["month"]) == ["2023-12", "2024-01", "2024-02"]
    assert list(plan["cached"]) == ["no", "memory", "memory"]


def test_no_cache_fetches_again(ip):
    run(ip, "x = %flow binance BTC 1d 2024-05")
    run(ip, "x = %flow binance BTC 1d 2024-05 --no-cache")
    assert ip.user_ns["x"].attrs["months"] == {"2024-05": "download"}


def test_widget_option_opens_the_explorer_prefilled(ip):
    run(ip, "w = %flow okx ETH 15m 2024-03-01..2024-03-02 --widget")
    w = ip.user_ns["w"]
    assert isinstance(w, FlowExplorer)
    s = w.selector
    assert (s.exchange, s.symbol, s.interval, s.range_text) == (
        "okx-perps",
        "perpetual-ETH-USDT:USDT",
        "15m",
        "2024-03-01..2024-03-02",
    )


# -- -f/--frame: a Polars DataFrame or an Arrow table instead of pandas ---------------------


def buffers(column: pa.ChunkedArray) -> set[int]:
    """Addresses of a column's memory, to tell a shared buffer from a copy."""
    return {b.address for chunk in column.chunks for b in chunk.buffers() if b is not None and b.size}


def test_frame_option_binds_polars_from_the_cached_months_without_a_pandas_copy(ip):
    assert run(ip, "df = %flow binance BTC 1h 2024-01..2024-02 -f polars").success
    df = ip.user_ns["df"]
    assert type(df) is pl.DataFrame and df.height == 60 * 24 and ip.shown == []
    assert df.schema["time"] == pl.Datetime("ns", "UTC")
    assert aj.provenance(df)["simulated"] is True and aj.provenance(df)["label"].startswith("SIMULATED")
    # the frame's buffers are the months the kernel caches: nothing was copied on the way
    client = aj.default_client("auto")
    q = aj.make_query("binance", "BTC", "1h", "2024-01..2024-02")
    months = [client.cache.get(CacheKey.of(client.source.cache_namespace, q, m))[0] for m in q.months]
    cached = set().union(*(buffers(t.column("volume_delta")) for t in months))
    assert buffers(df.to_arrow().column("volume_delta")) <= cached
    assert run(ip, "same = %flow binance BTC 1h 2024-01..2024-02").success
    pd.testing.assert_frame_equal(df.to_pandas(), ip.user_ns["same"], check_dtype=False, check_like=False)


def test_frame_option_with_the_view_binds_arrow_and_still_draws_price(ip):
    assert run(ip, "%flow okx ETH 4h 2024-02 --frame arrow -o table").success
    table = ip.user_ns["table"]
    (panel,) = ip.shown
    assert type(table) is pa.Table and isinstance(panel, FlowPanel) and type(panel.df) is pd.DataFrame
    # -o binds the frame the chart shows: the price the view draws is in the table too
    assert table.column_names[-4:] == ["open", "high", "low", "close"] and table.num_rows == len(panel.df) == 29 * 6
    assert table.column("close").to_pylist() == panel.df["close"].tolist()
    assert aj.provenance(table)["price"]["joined"] is True and "SIMULATED" in repr(panel)


def test_frame_option_with_venues_columns_and_no_chart(ip):
    assert run(ip, "%flow binance,okx BTC 1h 2024-01-01..2024-01-03 -f polars -o venues").success
    venues = ip.user_ns["venues"]
    assert type(venues) is pl.DataFrame and venues.columns[:3] == ["time", "exchange", "symbol"]
    assert set(venues["exchange"]) == {"binance-futures", "okx-perps"} and len(ip.shown) == 1
    assert set(aj.provenance(venues)["parts"]) == {"binance-futures perpetual-BTC-USDT:USDT", "okx-perps perpetual-BTC-USDT:USDT"}
    result = run(ip, "%flow binance BTC,ETH 1d 2024-01 -c toxicity -f arrow --no-chart")
    assert type(result.result) is pa.Table and len(ip.shown) == 1
    assert result.result.column_names == ["time", "symbol", "flow_toxicity_score", "flow_entropy"]
    assert result.result.num_rows == 2 * 31


def test_frame_polars_without_polars_is_one_line_before_any_fetch(ip, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "polars", None)  # `import polars` now raises ImportError
    result = run(ip, "df = %flow binance BTC 1h 2024-01 -f polars")
    err = capsys.readouterr()
    text = (err.out + err.err).strip()
    assert not result.success and "df" not in ip.user_ns
    assert text == "UsageError: -f/--frame: output='polars' needs Polars, which is not installed: pip install polars"
    assert run(ip, "df = %flow binance BTC 1h 2024-01 -f arrow").success


def test_help_shows_the_grammar_with_examples(ip):
    doc = ip.find_line_magic("flow").__doc__
    assert "%flow EXCHANGE[,EXCHANGE...] SYMBOL[,SYMBOL...] INTERVAL RANGE" in doc
    assert "df = %flow binance BTC 1h 2024-01" in doc and "--dry-run" in doc


BAD_LINES = [
    ("%flow kraken BTC 1h 2024-01", "unknown exchange 'kraken'; valid: binance-futures"),
    ("%flow binance BTCC 1h 2024-01", "did you mean BTC"),
    ("%flow binance BTC 2h 2024-01", "unknown interval '2h'; valid: 15s, 30s, 1m, 5m"),
    ("%flow binance BTC 1h 2024-13", "invalid date '2024-13'"),
    ("%flow binance BTC 1h 2024-03..2024-01", "before it starts"),
    ("%flow binance BTC 1h 2099-01", "starts in the future"),
    ("%flow binance BTC 1h 2024-01 --bogus", "unknown option '--bogus'; valid options: -t/--timestamp, -s/--source"),
    ("%flow binance BTC 1h 2024-01 --no-cahce", "unknown option '--no-cahce' (did you mean --no-cache?); valid options:"),
    ("%flow binance BTC 1h 2024-01 extra", "unexpected 'extra' after the range"),
    ("%flow binance BTC 1h 2024-01 -s", "-s/--source needs a value"),
    ("%flow binance BTC", "missing INTERVAL, RANGE"),
    ("%flow binance BTC 1h 2024-01 -c bids", "unknown column or group 'bids'; groups: volumes"),
    ("%flow binance BTC 1h 2024-01 -s ftp", "unknown source 'ftp'; valid: auto, api, preview, demo"),
    ("%flow binance BTC 1h 2024-01 -t local", "unknown timestamp source 'local'"),
    ("%flow binance BTC 1h 2024-01 -m candles", "unknown metric 'candles'"),
    ("%flow binance BTC 1h 2024-01 -m returns", "demo source simulates only flow and ohlcv, not 'returns'"),
    ("%flow binance BTC 1h 2024-01 -s api", "no Aperiodic API key: set APERIODIC_API_KEY"),
    ("%flow binance BTC 1h 2024-01 -f excel", "-f/--frame: unknown output 'excel'; valid: pandas, polars, arrow"),
    ("%flow binance BTC 1h 2024-01 --frame", "-f/--frame needs a value"),
    ("%flow binance BTC 1h 2024-01 -f polars --widget", "--widget does not take -f/--frame (the explorer's w.df is pandas"),
    # live: the range word, its options, and what it refuses
    (
        "%flow binance BTC 1m live --no-cache -c volumes",
        "live does not take -c/--columns (p.df holds every column; select from it); --no-cache",
    ),
    ("%flow binance BTC 1m live -t true", "live does not take -t true (the stream's bars are exchange-time bars)"),
    ("%flow binance BTC 1m live --dry-run", "live does not take --dry-run"),
    (
        "%flow binance BTC 1m 2024-01 --live",
        "--live follows the market from now: drop the range '2024-01', or write live in its place",
    ),
    ("%flow binance BTC 1h 2024-01 --history 6h", "--history goes with live, e.g. %flow binance BTC 1m live --history 6h"),
    ("%flow binance BTC 1h 2024-01 --speed 600", "--speed goes with live"),
    (
        "%flow binance BTC 1m live --history soon",
        "--history takes a number of bars (360) or a duration (90m, 6h, 2d, 1w), got 'soon'",
    ),
    ("%flow binance BTC 1m live --speed 0", "--speed takes a positive factor for the simulated feed"),
    ("%flow binance BTC 1m live --history 20000", "history of 20000 bars is more than the live frame keeps (max_bars=10000)"),
    ("%flow binance BTC 1m live -s preview", "the Aperiodic preview serves files only, not the live stream"),
    ("%flow binance BTC 1m live -s api", "no Aperiodic API key for the live stream"),
    ("%flow binance BTCC 1m live", "did you mean BTC"),
]


@pytest.mark.parametrize("line, message", BAD_LINES)
def test_every_bad_line_ends_in_one_readable_line(ip, capsys, line, message):
    result = run(ip, line)
    assert not result.success
    err = capsys.readouterr()
    text = (err.out + err.err).strip()
    assert "Traceback" not in text
    assert text.startswith("UsageError: ") and "\n" not in text, text
    assert message in text


def test_api_source_through_config_and_the_loopback_server(ip, api, monkeypatch, capsys):
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    run(ip, f"%config Aperiodic.api_key = '{API_KEY}'")
    run(ip, "%config Aperiodic")
    run(ip, "%config Aperiodic.api_key")
    shown = capsys.readouterr()
    assert API_KEY not in shown.out + shown.err
    result = run(ip, "df = %flow binance BTC 1h 2024-01..2024-02")
    assert result.success
    df = ip.user_ns["df"]
    assert df.attrs["source"] == "api" and len(df) == 60 * 24
    assert api.received_keys[-1] == API_KEY


def test_server_errors_are_one_line_too(ip, api, monkeypatch, capsys):
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    run(ip, "%config Aperiodic.api_key = 'wrong-key-xyz'")
    result = run(ip, "df = %flow binance BTC 1h 2023-01 -s api")
    assert not result.success
    err = capsys.readouterr()
    text = (err.out + err.err).strip()
    assert text.splitlines()[-1].startswith("UsageError: the API key was refused (401)")
    assert "wrong-key-xyz" not in text and "Traceback" not in text


def complete(ip, text):
    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(text, len(text))]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("%flow bin", {"binance", "binance-futures"}),
        ("%flow okx-perps ET", {"ETH", "ETC"}),
        ("%flow binance BTC ", {"1m", "1h", "1d"}),
        ("%flow binance BTC 1h 2024-01 --t", {"--timestamp"}),
        ("%flow binance BTC 1h 2024-01 --timestamp ", {"exchange", "true"}),
        ("%flow binance BTC 1h 2024-01 -c ", {"volumes", "sizes", "toxicity"}),
        ("%flow binance BTC 1h 2024-01 -f ", {"pandas", "polars", "arrow"}),
        ("%flow binance BTC 1h 2024-01 --frame p", {"pandas", "polars"}),
        ("%flow binance BTC 1h 2024-01 --fr", {"--frame"}),
        ("df = %flow hyper", {"hyperliquid", "hyperliquid-perps"}),
        ("%flow binance BTC 1m l", {"live"}),
        ("p = %flow binance BTC 1m live --hi", {"--history"}),
        ("%flow binance BTC 1m live --history ", {"360", "6h"}),
        ("%flow binance BTC 1m live --history 6h --sp", {"--speed"}),
        ("%flow binance BTC 1m live --history 6h -s ", {"demo", "api"}),
    ],
)
def test_tab_completion(ip, text, expected):
    assert expected <= set(complete(ip, text))


def test_progress_shows_while_months_download_and_not_when_cached(ip, capsys, monkeypatch):
    import sys

    # The bar is drawn on a terminal's stderr only (a pipe or a log gets no frames);
    # the captured stderr stands in for one. tests/test_progress_text.py uses a real pty.
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("TERM", "xterm")  # a dumb terminal gets spaces instead of escapes
    run(ip, "x = %flow binance LTC 1d 2024-01..2024-02")
    first = capsys.readouterr().err
    assert "month" in first  # the progress bar counts months
    assert first.endswith("\r\x1b[J")  # and is erased when the fetch ends
    run(ip, "x = %flow binance LTC 1d 2024-01..2024-02")
    assert capsys.readouterr().err == ""


def test_set_key_prompts_hidden_and_never_echoes(ip, monkeypatch, capsys):
    import aperiodic_jupyter

    monkeypatch.setattr("getpass.getpass", lambda prompt="": "typed-secret-77")
    result = run(ip, "%flow --set-key")
    assert result.success
    out = capsys.readouterr()
    assert "typed-secret-77" not in out.out + out.err
    assert "API key set" in out.out
    assert aperiodic_jupyter.settings.api_key.reveal() == "typed-secret-77"
    assert "typed-secret-77" not in repr(aperiodic_jupyter.settings)
