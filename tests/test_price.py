"""Price through the same core as flow: get_ohlcv, the demo's price from the same tape,
and flow with price joined on time."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import aperiodic_jupyter as aj
from aperiodic_jupyter.core.price import join_price, price_status
from aperiodic_jupyter.jupyter.charts import DEFAULT_PANELS, PANELS, flow_chart, parse_panels


def test_get_ohlcv_goes_through_the_core_and_is_labelled_simulated(demo):
    bars = aj.get_ohlcv("binance", "BTC", "1h", "2024-01", source="demo", progress=False)
    assert list(bars.columns[:6]) == ["time", "open", "high", "low", "close", "volume"]
    assert str(bars["time"].dt.tz) == "UTC" and len(bars) == 744
    assert bars.attrs["simulated"] is True and bars.attrs["query"]["metric"] == "ohlcv"
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    # the same tape: price volume is the flow's buy plus sell volume
    flow = demo.get_flow("binance", "BTC", "1h", "2024-01")
    assert np.allclose(bars["volume"], flow["taker_buy_volume"].astype("float64") + flow["taker_sell_volume"], rtol=1e-5)


@pytest.mark.parametrize("symbol, month", [("BTC", "2024-01"), ("ETH", "2024-03"), ("SOL", "2024-06")])
def test_demo_bars_with_buying_tend_to_close_up(demo, symbol, month):
    df = demo.get_flow("binance", symbol, "1h", month, with_price=True)
    ret = np.log(df["close"] / df["open"])
    corr = np.corrcoef(df["volume_delta_notional"], ret)[0, 1]
    assert corr > 0.2, corr
    again = demo.get_flow("binance", symbol, "1h", month, with_price=True)
    assert np.corrcoef(again["volume_delta_notional"], np.log(again["close"] / again["open"]))[0, 1] == corr


def test_with_price_joins_ohlc_on_time_and_records_it(demo):
    df = demo.get_flow("okx", "ETH", "4h", "2024-02", with_price=True)
    assert {"open", "high", "low", "close"} <= set(df.columns) and "volume" not in df.columns
    assert len(df) == 29 * 6 and df["close"].notna().all()
    assert df.attrs["price"]["joined"] is True and df.attrs["query"]["metric"] == "flow"
    assert price_status(df.attrs) == ""


@pytest.mark.parametrize("order", [[1, 2, 3, 4], [3, 1, 4, 2]], ids=["sorted-as-assembled", "unsorted"])
def test_bars_missing_on_one_side_stay_as_nulls_as_a_pandas_outer_merge_keeps_them(order):
    times = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC", unit="ns")
    flow = pa.table({"time": times[:3], "volume_delta": [1.0, -1.0, 2.0], "taker_buy_count": pa.array([4, 5, 6])})
    closes = {1: np.nan, 2: 1.5, 3: 1.5, 4: 1.5}
    bars = pd.DataFrame({"time": times[order], "open": 1.0, "high": 2.0, "low": 0.5, "close": [closes[i] for i in order]})
    price = pa.Table.from_pandas(bars.assign(volume=3.0), preserve_index=False)
    out, record = join_price(flow, price, source="api")
    assert out.column_names == ["time", "volume_delta", "taker_buy_count", "open", "high", "low", "close"]
    assert out.column("time").to_pylist() == list(times)  # every bar of both, sorted
    assert out.column("taker_buy_count").type == pa.int64()  # a count stays a count, with nulls
    assert out.column("taker_buy_count").to_pylist() == [4, 5, 6, None, None]
    assert out.column("open").to_pylist() == [None, 1.0, 1.0, 1.0, 1.0]
    # the same rows and values as pandas' outer merge sorted on time (NaN where Arrow has null)
    reference = flow.to_pandas().merge(
        price.to_pandas()[["time", "open", "high", "low", "close"]], on="time", how="outer", sort=True
    )
    pd.testing.assert_frame_equal(out.to_pandas(), reference)
    # missing: the bar with no price row and the one whose close is NaN, as pandas counts them
    assert record == {"joined": True, "bars": 4, "source": "api", "missing_price": 2}


def address(table: pa.Table, name: str) -> int:
    return table.column(name).chunk(0).buffers()[1].address


def test_a_side_with_every_bar_is_joined_without_a_copy():
    times = pa.array(pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC", unit="ns"))
    flow = pa.table({"time": times, "volume_delta": [1.0, -1.0, 2.0]})
    price = pa.table({"time": times, "open": [1.0, 2.0, 3.0], "high": [4.0] * 3, "low": [0.5] * 3, "close": [1.5, 2.5, 3.5]})
    out, record = join_price(flow, price)  # the same bar starts: the price columns are appended
    assert address(out, "close") == address(price, "close") and address(out, "volume_delta") == address(flow, "volume_delta")
    assert record["missing_price"] == 0
    out, record = join_price(flow, price.take([0, 2]))  # the price misses a bar: only the price is gathered
    assert address(out, "volume_delta") == address(flow, "volume_delta")
    assert out.column("close").to_pylist() == [1.5, None, 3.5] and record["missing_price"] == 1


def test_a_failed_price_keeps_the_flow_and_says_why():
    flow = pa.table({"time": pd.date_range("2024-01-01", periods=2, freq="1h", tz="UTC"), "volume_delta": [1.0, 2.0]})
    out, record = join_price(flow, None, error="the API key was refused (401)")
    assert out is flow
    assert price_status({"price": record}) == "no price: the API key was refused (401)"


def test_with_price_is_for_flow_only(demo):
    with pytest.raises(aj.QueryError, match="with_price joins price onto flow"):
        demo.get_ohlcv("binance", "BTC", "1h", "2024-01", with_price=True)


# -- the views: price on top, CVD, divergence, and a user's choice of panels -------------


def titles(spec) -> list[str]:
    return [v["title"] if isinstance(v.get("title"), str) else "" for v in spec["vconcat"]]


def test_the_default_chart_reads_flow_under_price(demo):
    df = demo.get_flow("binance", "BTC", "1h", "2024-01", with_price=True)
    spec = flow_chart(df).to_dict()
    names = titles(spec)
    assert names[0].startswith("Price") and names[1].startswith("Cumulative volume delta")
    assert "c" in spec["datasets"]["flow"][0] and "dn" in spec["datasets"]["flow"][0]
    # the CVD restarts at the brushed range: filter by the brush, then a running sum
    cvd = json.dumps(spec["vconcat"][1])
    assert '"param": "brush"' in cvd and '"op": "sum"' in cvd and "cvd_n" in cvd


def test_candles_while_they_fit_and_a_close_line_when_aggregated(demo):
    week = demo.get_flow("binance", "BTC", "1h", "2024-01-01..2024-01-07", with_price=True)
    assert titles(flow_chart(week, panels="price").to_dict())[0].endswith("candles")
    year = demo.get_flow("binance", "BTC", "1m", "2024-01-01", "2024-12-31", with_price=True)
    chart = flow_chart(year, panels="price,cvd,delta,divergence")
    assert titles(chart.to_dict())[0].endswith("close")
    assert len(json.dumps(chart.to_dict(), separators=(",", ":"))) < 1_000_000  # a year of 1m bars with price


def test_the_divergence_view_states_the_correlation_in_its_header(demo):
    df = demo.get_flow("binance", "ETH", "1h", "2024-03", with_price=True)
    header = titles(flow_chart(df, panels="divergence").to_dict())[0]
    r = np.corrcoef(df["volume_delta_notional"], df["close"] / df["open"] - 1)[0, 1]
    assert header.startswith("Price change vs volume delta per 1h bar: r = ") and f"{r:+.2f}" in header
    assert "744 bars" in header and "buying lifts price" in header


def test_without_price_the_chart_leaves_price_panels_out_and_says_why(demo):
    flow = demo.get_flow("binance", "BTC", "1h", "2024-01")
    failed = flow.copy()
    failed.attrs = {**flow.attrs, "price": {"joined": False, "error": "the API key was refused (401)"}}
    spec = flow_chart(failed).to_dict()
    assert not any(t.startswith("Price") for t in titles(spec))
    assert "no price panel: the API key was refused (401)" in spec["title"]["subtitle"]


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, DEFAULT_PANELS),
        ("price,cvd,delta", ("price", "cvd", "delta")),
        ("delta, PRICE", ("price", "delta")),  # drawing order is the registry's
        ("all", tuple(PANELS)),
    ],
)
def test_users_choose_panels_by_name(spec, expected):
    assert parse_panels(spec) == expected


def test_an_unknown_panel_is_one_line():
    with pytest.raises(aj.QueryError, match="unknown panel 'candles'; valid: price, cvd, delta"):
        parse_panels("price,candles")


# -- in the front ends: %flow and the explorer draw price by default -----------------------


def test_the_magic_draws_price_cvd_and_flow_by_default(ip):
    assert ip.run_cell("%flow binance BTC 1h 2024-01 -o flows", store_history=False).success
    (panel,) = ip.shown
    assert tuple(panel.panels) == DEFAULT_PANELS and "close" in panel.df.columns
    assert titles(panel.spec.to_dict())[0].startswith("Price")
    assert "close" in ip.user_ns["flows"].columns  # -o binds the frame the chart shows


def test_the_magic_fetches_no_price_when_no_panel_needs_it_or_nothing_is_drawn(ip):
    ip.run_cell("%flow binance BTC 1h 2024-01 -p cvd,delta", store_history=False)
    (panel,) = ip.shown
    assert tuple(panel.panels) == ("cvd", "delta") and "close" not in panel.df.columns and "price" not in panel.df.attrs
    ip.run_cell("df = %flow binance BTC 1h 2024-01", store_history=False)
    assert "close" not in ip.user_ns["df"].columns  # an assignment is the plain flow frame


def test_a_bad_panel_name_in_the_magic_is_one_line(ip, capsys):
    result = ip.run_cell("%flow binance BTC 1h 2024-01 -p price,candles", store_history=False)
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert not result.success and text.startswith("UsageError: unknown panel 'candles'; valid: price, cvd") and "\n" not in text


def test_the_explorer_offers_the_same_panels_and_draws_price(monkeypatch):
    from aperiodic_jupyter.jupyter.explorer import FlowExplorer

    w = FlowExplorer("binance", "ETH", "4h", "2024-02")
    assert w.selector.panel_options == list(PANELS) and w.selector.panels == list(DEFAULT_PANELS)
    w.load()
    assert "close" in w.df.columns and tuple(w.panel.panels) == DEFAULT_PANELS
    # what js/explorer.js sends when a user unticks the price panels and clicks Load
    w.selector._handle_custom_msg({"type": "load", "query": {"panels": ["delta", "toxicity"]}}, [])
    w._thread.join(30)
    assert tuple(w.panel.panels) == ("delta", "toxicity") and "close" not in w.df.columns
    w.selector.panels = ["nope"]
    w.load(wait=False)
    assert w.selector.error.startswith("unknown panel 'nope'")
