"""The public ``aperiodic`` client (4.3.1, pinned in the test extra) and this package
against one loopback server: the preview (``GET {base}/data/preview/{metric}`` with
``X-API-KEY: DEMO-KEY``, the public client's ``preview=True``) and 15s/30s bars give
the same rows and values, as pandas and as Polars; outside the preview both are refused.

The public client reaches the loopback server through its ``base_url`` argument (its
``APERIODIC_API_URL`` default is read once, at import); with ``preview=True`` and no key
it sends its shared ``DEMO_API_KEY``, which the server checks.
"""

from __future__ import annotations

from datetime import date

import aperiodic
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from aperiodic_jupyter import Client, PreviewError
from aperiodic_jupyter.core.cache import MemoryCache

from .server import API_KEY, INTERVAL_SECONDS, PREVIEW_KEY, FakeApi

BTC = "perpetual-BTC-USDT:USDT"


@pytest.fixture(scope="module")
def server():
    with FakeApi() as api:
        yield api


def public(server: FakeApi, source: str, metric: str, interval: str, start: date, end: date, output: str, symbol: str = BTC):
    """The public client's call for the same request."""
    common = dict(
        timestamp="exchange",
        interval=interval,
        exchange="binance-futures",
        symbol=symbol,
        start_date=start,
        end_date=end,
        base_url=server.base_url,
        show_progress=False,
        output=output,
    )
    key = API_KEY if source == "api" else None  # the preview needs no key: the client sends DEMO-KEY
    if metric == "ohlcv":
        return aperiodic.get_ohlcv(key, preview=source == "preview", **common)
    return aperiodic.get_metrics(key, metric=metric, preview=source == "preview", **common)


def ours(server: FakeApi, tmp_path, source: str) -> Client:
    key = {"api_key": API_KEY} if source == "api" else {}
    return Client(source, base_url=server.base_url, cache_dir=tmp_path / "cache", memory_cache=MemoryCache(), **key)  # type: ignore[arg-type]


CASES = [
    pytest.param("preview", "flow", "1h", date(2025, 6, 1), date(2025, 6, 30), id="preview-flow-1h"),
    pytest.param("preview", "ohlcv", "1h", date(2025, 6, 3), date(2025, 6, 20), id="preview-ohlcv-1h"),
    pytest.param("preview", "flow", "15s", date(2025, 6, 10), date(2025, 6, 11), id="preview-flow-15s"),
    pytest.param("api", "flow", "15s", date(2024, 1, 30), date(2024, 1, 31), id="api-flow-15s"),
    pytest.param("api", "ohlcv", "30s", date(2024, 2, 28), date(2024, 3, 1), id="api-ohlcv-30s-two-months"),
]


@pytest.mark.parametrize("source, metric, interval, start, end", CASES)
def test_the_public_client_returns_the_same_rows_from_the_same_server(server, tmp_path, source, metric, interval, start, end):
    keys_before = len(server.received_keys)
    theirs_pd = public(server, source, metric, interval, start, end, "pandas")
    theirs_pl = public(server, source, metric, interval, start, end, "polars")
    with ours(server, tmp_path, source) as client:
        mine_pd = client.get_metrics(metric, "binance", "BTC", interval, start, end)
        mine_pl = client.get_metrics(metric, "binance", "BTC", interval, start, end, output="polars")

    days = (end - start).days + 1
    assert len(mine_pd) == len(theirs_pd) == days * 86_400 // INTERVAL_SECONDS[interval]
    assert mine_pd.attrs["source"] == source and mine_pd.attrs["query"]["interval"] == interval
    assert set(server.received_keys[keys_before:]) == {PREVIEW_KEY if source == "preview" else API_KEY}

    # pandas: the same columns in the same order, the same values; time is UTC here, naive UTC there
    assert list(mine_pd.columns) == list(theirs_pd.columns)
    theirs_pd = theirs_pd.assign(time=pd.to_datetime(theirs_pd["time"]).dt.tz_localize("UTC").dt.as_unit("ns"))
    pd.testing.assert_frame_equal(mine_pd.reset_index(drop=True), theirs_pd.reset_index(drop=True))

    # Polars, the public client's default: the same frame once time is read the same way
    assert type(mine_pl) is pl.DataFrame and mine_pl.schema["time"] == pl.Datetime("ns", "UTC")
    assert_frame_equal(mine_pl, theirs_pl.with_columns(pl.col("time").dt.cast_time_unit("ns").dt.replace_time_zone("UTC")))


def test_outside_the_preview_both_clients_are_refused_by_the_server(server, tmp_path):
    eth = "perpetual-ETH-USDT:USDT"
    with pytest.raises(Exception, match="outside the preview whitelist") as theirs:
        public(server, "preview", "flow", "1h", date(2025, 6, 1), date(2025, 6, 30), "pandas", symbol=eth)
    assert "403" in str(theirs.value)
    with ours(server, tmp_path, "preview") as client, pytest.raises(PreviewError) as mine:
        client.get_flow("binance", "ETH", "1h", "2025-06")
    text = str(mine.value)
    assert "outside the preview whitelist" in text and "APERIODIC_API_KEY" in text and "\n" not in text
