"""The demo source: no key, no network, realistic, deterministic and labelled."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from aperiodic_jupyter import Client, get_flow, make_query
from aperiodic_jupyter.core.cache import MemoryCache
from aperiodic_jupyter.core.ranges import Month
from aperiodic_jupyter.core.schema import FLOW_COLUMNS, FLOW_FILE_SCHEMA
from aperiodic_jupyter.core.sources.api import ApiSource
from aperiodic_jupyter.core.sources.demo import DemoSource, simulate_month


@pytest.fixture(scope="module")
def quarter():
    with Client("demo", cache_dir=False, memory_cache=MemoryCache()) as client:
        return client.get_flow("binance-futures", "BTC", "1h", "2024-01-01", "2024-03-31")


def test_no_key_means_demo_data_labelled_as_simulated():
    df = get_flow("binance-futures", "BTC", "1h", "2024-01-01", "2024-03-31", progress=False)
    assert len(df) == 91 * 24
    assert list(df.columns) == ["time", *FLOW_COLUMNS]
    assert df.attrs["source"] == "demo" and df.attrs["simulated"] is True
    assert "SIMULATED" in df.attrs["label"]


def test_with_a_key_the_api_is_the_default(monkeypatch):
    monkeypatch.setenv("APERIODIC_API_KEY", "k")
    with Client() as client:
        assert isinstance(client.source, ApiSource)
    with Client("demo") as client:
        assert isinstance(client.source, DemoSource)


def test_same_query_same_numbers():
    q = make_query("okx-perps", "ETH", "15m", "2024-05")
    a = DemoSource().month_table(q, Month(2024, 5))
    b = DemoSource().month_table(q, Month(2024, 5))
    pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas())
    assert a.schema == FLOW_FILE_SCHEMA


def test_realistic_enough_to_teach_with(quarter):
    df = quarter
    # every size bucket is populated on both sides
    for col in [c for c in FLOW_COLUMNS if c.endswith("_order_count")]:
        assert (df[col] > 0).mean() > 0.95, col
    # intraday seasonality: the US open is busier than the Asian night
    by_hour = df.groupby(df["time"].dt.hour)["taker_buy_count"].mean()
    assert by_hour.loc[14] > 1.5 * by_hour.loc[4]
    # volatility clustering / regimes: buy pressure persists from hour to hour
    assert df["taker_buy_sell_percentage"].autocorr(1) > 0.3
    # the API's quirks: natural-log entropy, NaN toxicity warm-up, unit-mixed percentages
    assert df["flow_entropy"].max() <= math.log(2) + 1e-12
    assert math.isnan(df["flow_toxicity_score"].iloc[0])
    assert df["taker_buy_large_order_percentage"].median() > 1000


def test_btc_is_busier_than_a_small_coin():
    with Client("demo", cache_dir=False, memory_cache=MemoryCache()) as client:
        btc = client.get_flow("binance-futures", "BTC", "1d", "2024-02")
        small = client.get_flow("binance-futures", "ARB", "1d", "2024-02")
    assert btc["taker_buy_count"].sum() > 3 * small["taker_buy_count"].sum()
    assert btc["volume_delta_notional"].abs().mean() > small["volume_delta_notional"].abs().mean()


def test_intervals_agree_because_they_share_one_tape():
    with Client("demo", cache_dir=False, memory_cache=MemoryCache()) as client:
        fine = client.get_flow("binance-futures", "SOL", "1m", "2024-02-01", "2024-02-02")
        coarse = client.get_flow("binance-futures", "SOL", "4h", "2024-02-01", "2024-02-02")
    summed = fine.set_index("time")["taker_sell_count"].resample("4h").sum()
    np.testing.assert_array_equal(summed.to_numpy(), coarse["taker_sell_count"].to_numpy())


def test_arrival_time_moves_a_few_trades_between_bars():
    ex = simulate_month("binance-futures", "perpetual-BTC-USDT:USDT", Month(2024, 1), "exchange")
    tr = simulate_month("binance-futures", "perpetual-BTC-USDT:USDT", Month(2024, 1), "true")
    assert len(ex) == len(tr)
    lag_ms = (tr.time_ns - ex.time_ns) / 1e6
    assert (lag_ms > 0).all() and 10 < np.median(lag_ms) < 100
    assert np.all(np.diff(tr.time_ns) >= 0)


def test_current_month_stops_at_the_last_complete_bar():
    now = datetime(2026, 11, 26, 10, 37, tzinfo=UTC)
    q = make_query("binance-futures", "BTC", "1h", "2026-11", today=now.date())
    table = DemoSource(now=lambda: now).month_table(q, Month(2026, 11))
    last = pd.Timestamp(table.column("time")[-1].as_py())
    assert last == pd.Timestamp("2026-11-26 09:00")


def test_months_before_a_listing_are_empty():
    q = make_query("binance-futures", "perpetual-BTC-USDC:USDC", "1d", "2023-12-01", "2024-01-31")
    with Client("demo", cache_dir=False, memory_cache=MemoryCache()) as client:
        df = client.fetch(q)
    assert df["time"].min() == pd.Timestamp("2024-01-04", tz="UTC")  # its first_capture


def test_demo_cache_is_kept_apart_from_api_data(tmp_path):
    with Client("demo", cache_dir=tmp_path, memory_cache=MemoryCache()) as client:
        client.get_flow("binance-futures", "BTC", "1d", "2024-01")
        assert set(client.cache.info()["source"]) == {"demo-v2"}
    assert (tmp_path / "demo-v2").is_dir() and not (tmp_path / "api").exists()


def test_module_level_async_api_in_a_running_loop():
    import asyncio

    import aperiodic_jupyter as aj

    async def cell():
        flow, other = await asyncio.gather(
            aj.get_flow_async("binance-futures", "BTC", "1d", "2024-01", progress=False),
            aj.get_flow_async("okx-perps", "ETH", "1d", "2024-01", progress=False),
        )
        return flow, other

    btc, eth = asyncio.run(cell())
    assert len(btc) == len(eth) == 31
    assert btc.attrs["query"]["symbol"] != eth.attrs["query"]["symbol"]
