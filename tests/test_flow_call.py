"""``flow("…")``: the ``%flow`` line where there are no magics (marimo, scripts), returning
the same panel the magic shows."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from aperiodic_jupyter import QueryError
from aperiodic_jupyter.jupyter.explorer import FlowExplorer
from aperiodic_jupyter.jupyter.flow_call import flow
from aperiodic_jupyter.jupyter.panel import FlowPanel


def test_a_line_returns_the_panel_the_magic_shows(ip):
    ip.run_cell("%flow binance BTC 1h 2024-01", store_history=False)
    (shown,) = ip.shown
    panel = flow("binance BTC 1h 2024-01")
    assert isinstance(panel, FlowPanel) and "744 rows" in panel.summary and "SIMULATED" in panel.summary
    # The same line and summary; the month now comes from the cache the magic filled.
    assert repr(panel) == repr(shown).replace("cache: 0 of 1 months", "cache: 1 of 1 months")
    assert panel.spec.to_dict()["vconcat"] == shown.spec.to_dict()["vconcat"]


def test_several_venues_or_symbols_are_one_comparison_view():
    venues = flow("binance,okx BTC 1h 2024-11")
    assert venues.spec.to_dict()["title"]["text"] == "BTC across 2 venues · 1h"
    symbols = flow("binance BTC,ETH 1d 2024-01")
    assert symbols.spec.to_dict()["title"]["text"] == "BTC/ETH on binance-futures · 1d"
    assert sorted(symbols.df["symbol"].unique()) == ["perpetual-BTC-USDT:USDT", "perpetual-ETH-USDT:USDT"]


def test_no_chart_returns_the_frame_in_the_output_asked_for():
    import polars as pl

    df = flow("binance BTC 1h 2024-01-01 -c volumes --no-chart -f polars")
    assert isinstance(df, pl.DataFrame) and df.columns[:3] == ["time", "taker_buy_volume", "taker_sell_volume"]
    assert df.height == 24
    plan = flow("binance BTC 1h 2023-12..2024-01 --dry-run")
    assert isinstance(plan, pd.DataFrame) and plan["month"].tolist() == ["2023-12", "2024-01"]
    explorer = flow("okx ETH 4h 2024-02 --widget")
    assert isinstance(explorer, FlowExplorer) and (explorer.exchange, explorer.symbol, explorer.interval) == (
        "okx-perps",
        "perpetual-ETH-USDT:USDT",
        "4h",
    )


def test_in_ipython_dash_o_binds_the_frame_as_the_magic_does(ip):
    panel = flow("binance BTC 1d 2024-01 -o flows")
    assert isinstance(panel, FlowPanel) and len(ip.user_ns["flows"]) == 31


@pytest.mark.parametrize(
    "line, message",
    [
        ("binance BTCC 1h 2024-01", "unknown symbol 'BTCC'"),
        ("binance BTC 1h", "missing RANGE"),
        ("--set-key", "--set-key prompts in IPython only; here call aperiodic_jupyter.set_api_key(key)"),
    ],
)
def test_a_bad_line_is_one_line(line, message):
    with pytest.raises(QueryError) as err:
        flow(line)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_without_ipython_the_panel_offers_to_python_and_dash_o_says_what_to_do():
    # A plain Python process, as marimo's kernel or a script is: no IPython shell.
    code = (
        "from aperiodic_jupyter.jupyter.flow_call import flow\n"
        "from aperiodic_jupyter import QueryError\n"
        "panel = flow('binance BTC 1d 2024-01')\n"
        "print(type(panel).__name__, panel.has_namespace, len(panel.df))\n"
        "try:\n"
        "    flow('binance BTC 1d 2024-01 -o flows')\n"
        "except QueryError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [
        "FlowPanel False 31",
        "-o binds a name in IPython only; here assign the result: flows = flow(...)",
    ]
