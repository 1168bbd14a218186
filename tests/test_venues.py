"""Venues side by side: one tidy frame, the base resolved per venue, a venue without the
symbol named in one line while the others load."""

from __future__ import annotations

import pandas as pd
import pytest

import aperiodic_jupyter as aj
from aperiodic_jupyter.jupyter.panel import FlowPanel, summary_line


def test_three_venues_in_one_tidy_frame_with_the_base_resolved_per_venue():
    df = aj.get_flow(["binance", "okx", "hyperliquid"], "BTC", "1h", "2024-11", source="demo", progress=False)
    assert list(df.columns[:3]) == ["time", "exchange", "symbol"]
    pairs = df[["exchange", "symbol"]].drop_duplicates().values.tolist()
    assert pairs == [
        ["binance-futures", "perpetual-BTC-USDT:USDT"],
        ["hyperliquid-perps", "perpetual-BTC-USDC:USDC"],
        ["okx-perps", "perpetual-BTC-USDT:USDT"],
    ]
    assert df.groupby("exchange").size().tolist() == [720, 720, 720]
    assert df["time"].is_monotonic_increasing and df.attrs["simulated"] is True
    # each venue's own frame, unchanged
    okx = aj.get_flow("okx", "BTC", "1h", "2024-11", source="demo", progress=False)
    mine = df[df["exchange"] == "okx-perps"].drop(columns=["exchange", "symbol"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, okx, check_like=False)


def test_a_venue_that_lacks_the_symbol_is_named_and_the_others_load():
    df = aj.get_flow(["binance", "okx"], "1000PEPE", "1d", "2024-06", source="demo", progress=False)
    assert set(df["exchange"]) == {"binance-futures"}
    (line,) = df.attrs["skipped"]
    assert line.startswith("okx-perps: unknown symbol '1000PEPE' on okx-perps")
    assert "skipped okx-perps" in summary_line(df)
    with pytest.raises(aj.SymbolError, match="no venue lists NOPE"):
        aj.get_flow(["binance", "okx"], "NOPE", "1d", "2024-06", source="demo", progress=False)


def test_several_symbols_and_prices_come_along():
    df = aj.get_flow(["binance", "okx"], ["BTC", "ETH"], "4h", "2024-02", source="demo", progress=False, with_price=True)
    assert df.groupby(["exchange", "symbol"]).size().tolist() == [174] * 4
    assert df["close"].notna().all()
    assert set(df.attrs["parts"]) == {
        "binance-futures perpetual-BTC-USDT:USDT",
        "binance-futures perpetual-ETH-USDT:USDT",
        "okx-perps perpetual-BTC-USDT:USDT",
        "okx-perps perpetual-ETH-USDT:USDT",
    }


def test_the_magic_takes_several_venues_and_binds_the_tidy_frame(ip):
    assert ip.run_cell("df = %flow binance,okx,hl BTC 1d 2024-11", store_history=False).success
    df = ip.user_ns["df"]
    assert sorted(df["exchange"].unique()) == ["binance-futures", "hyperliquid-perps", "okx-perps"] and len(df) == 90


def test_the_magic_names_a_skipped_venue_in_one_line(ip, capsys):
    assert ip.run_cell("df = %flow binance,okx 1000PEPE 1d 2024-06", store_history=False).success
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("skipped okx-perps: unknown symbol '1000PEPE'")


def test_export_works_on_the_combined_frame(ip, tmp_path):
    df = aj.get_flow(["binance", "okx"], "ETH", "1d", "2024-03", source="demo", progress=False)
    panel = FlowPanel(df, namespace=ip.user_ns)
    raw, name, _ = panel.export_bytes("parquet")
    assert name.startswith("binance-futures-okx-perps_perpetual-ETH-USDT-USDT_1d_2024-03-01_2024-03-31")
    back = pd.read_parquet(__import__("io").BytesIO(raw))
    assert back["exchange"].tolist() == df["exchange"].tolist()
    assert panel.to_variable("both") == "both" and len(ip.user_ns.pop("both")) == 62


def test_the_explorer_loads_several_venues_and_symbols_into_one_frame():
    from aperiodic_jupyter.jupyter.explorer import FlowExplorer

    w = FlowExplorer(exchange="binance,okx", symbol="BTC", interval="1d", range="2024-03")
    assert w.selector.exchange == "binance-futures,okx-perps"
    assert "BTC" in w.selector.symbol_options
    progress = []
    w.selector.observe(lambda c: progress.append(c["new"]), ["progress_total"])
    df = w.load()
    assert sorted(df["exchange"].unique()) == ["binance-futures", "okx-perps"] and len(df) == 62
    assert [q.exchange for q in w.queries] == ["binance-futures", "okx-perps"] and w.query is w.queries[0]
    assert w.selector.progress_total == 2 and w.selector.progress_done == 2  # both venues' months, added up
    assert "binance-futures, okx-perps" in w.selector.summary
    # what js/explorer.js sends with two symbols typed on one venue
    w.selector._handle_custom_msg({"type": "load", "query": {"exchange": "okx-perps", "symbol": "BTC,ETH"}}, [])
    w._thread.join(60)
    assert sorted(w.df["symbol"].unique()) == ["perpetual-BTC-USDT:USDT", "perpetual-ETH-USDT:USDT"]
