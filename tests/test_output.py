"""output="pandas" | "polars" | "arrow": the same rows, columns, dtypes, UTC times and
provenance in all three, Polars and Arrow without a copy of the core's table, Polars
optional, and one line for what is refused."""

from __future__ import annotations

import dataclasses
import gc
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import aperiodic_jupyter as aj
from aperiodic_jupyter import QueryError, make_query
from aperiodic_jupyter.core import output as output_module
from aperiodic_jupyter.core.cache import CacheKey
from aperiodic_jupyter.core.output import METADATA_KEY, OUTPUTS

from .server import FakeApi, with_gaps

#: pandas dtype → (Polars dtype, Arrow type): how each column's type must map.
DTYPES = {
    "datetime64[ns, UTC]": (pl.Datetime("ns", "UTC"), pa.timestamp("ns", tz="UTC")),
    "float64": (pl.Float64, pa.float64()),
    "float32": (pl.Float32, pa.float32()),
    "int64": (pl.Int64, pa.int64()),
    "str": (pl.String, pa.string()),
}


def _values(column: pd.Series | pl.Series | pa.ChunkedArray) -> np.ndarray:
    if isinstance(column, pd.Series):
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            return column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        return column.to_numpy()
    if isinstance(column, pl.Series):
        if column.dtype == pl.Datetime:
            return column.dt.replace_time_zone(None).to_numpy()
        return column.to_numpy()
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.timestamp("ns")).to_numpy()
    return column.to_numpy()


def assert_same_columns(df: pd.DataFrame, other: pl.DataFrame | pa.Table) -> None:
    """``other`` equals the pandas frame column by column: names and order, the mapped
    dtype, and the values (NaN where pandas has NaN)."""
    assert list(other.columns if isinstance(other, pl.DataFrame) else other.column_names) == list(df.columns)
    assert (other.height if isinstance(other, pl.DataFrame) else other.num_rows) == len(df)
    for name in df.columns:
        expected_pl, expected_pa = DTYPES[str(df[name].dtype)]
        if isinstance(other, pl.DataFrame):
            got, got_type, expected, integer = other[name], other.schema[name], expected_pl, pl.Int64
        else:
            got, got_type, expected, integer = other.column(name), other.schema.field(name).type, expected_pa, pa.int64()
        if got_type == integer and str(df[name].dtype) == "float64":
            # A count missing from a bar (price joined where the flow has none): pandas
            # holds NaN in a float64 column, Polars and Arrow keep the count with a null.
            nulls = got.null_count() if isinstance(got, pl.Series) else got.null_count
            assert nulls == df[name].isna().sum() > 0, name
        else:
            assert got_type == expected, name
        np.testing.assert_array_equal(_values(got), _values(df[name]), err_msg=name)
    assert str(df["time"].dt.tz) == "UTC"


def _without_time_of_fetch(attrs: dict) -> dict:
    """``attrs`` without ``fetched_at`` (the second of each fetch), at any depth: a
    stacked frame keeps one per part."""
    assert "fetched_at" in json.dumps(attrs)
    return json.loads(json.dumps(attrs), object_hook=lambda d: {k: v for k, v in d.items() if k != "fetched_at"})


def three(fetch) -> tuple[pd.DataFrame, pl.DataFrame, pa.Table]:
    fetch("pandas")  # warm: all three then read the same months from memory
    return fetch("pandas"), fetch("polars"), fetch("arrow")


def assert_same_provenance(df: pd.DataFrame, polars_df: pl.DataFrame, table: pa.Table) -> None:
    expected = _without_time_of_fetch(df.attrs)
    assert aj.provenance(df) == df.attrs
    assert _without_time_of_fetch(aj.provenance(polars_df)) == expected
    assert _without_time_of_fetch(aj.provenance(table)) == expected
    assert _without_time_of_fetch(json.loads(table.schema.metadata[METADATA_KEY])) == expected


# -- the same data in all three ---------------------------------------------------------


@pytest.mark.parametrize(
    "metric, exchange, symbol, interval, span",
    [
        ("flow", "binance", "BTC", "1h", "2024-01..2024-03"),
        ("flow", "okx", "ETH", "1m", "2024-02-27..2024-03-02"),
        ("ohlcv", "hyperliquid", "SOL", "15m", "2024-12"),
    ],
)
def test_demo_polars_and_arrow_equal_pandas(demo, metric, exchange, symbol, interval, span):
    df, polars_df, table = three(lambda o: demo.get_metrics(metric, exchange, symbol, interval, span, output=o))
    assert type(df) is pd.DataFrame and type(polars_df) is pl.DataFrame and type(table) is pa.Table
    assert_same_columns(df, polars_df)
    assert_same_columns(df, table)
    pd.testing.assert_frame_equal(table.to_pandas(), df, check_like=False)
    assert_same_provenance(df, polars_df, table)
    assert aj.provenance(table)["simulated"] is True


def test_api_polars_and_arrow_equal_pandas(api, make_client):
    client = make_client(api)
    df, polars_df, table = three(lambda o: client.get_flow("binance", "BTC", "1h", "2024-01..2024-02", output=o))
    assert len(df) == (31 + 29) * 24
    assert_same_columns(df, polars_df)
    assert_same_columns(df, table)
    assert_same_provenance(df, polars_df, table)
    assert aj.provenance(polars_df)["source"] == "api" and aj.provenance(table)["months"] == {
        "2024-01": "memory",
        "2024-02": "memory",
    }
    price, polars_price, arrow_price = three(lambda o: client.get_ohlcv("okx", "ETH", "4h", "2024-03", output=o))
    assert "quote_volume" in price.columns  # a column the contract does not name passes through all three
    assert_same_columns(price, polars_price)
    assert_same_columns(price, arrow_price)


def test_venues_and_symbols_are_stacked_in_arrow_like_pandas(demo):
    def fetch(o):
        return demo.get_flow(["binance", "okx"], ["BTC", "ETH"], "4h", "2024-02", output=o)

    df, polars_df, table = three(fetch)
    assert list(df.columns[:3]) == ["time", "exchange", "symbol"] and len(df) == 4 * 174
    assert_same_columns(df, polars_df)
    assert_same_columns(df, table)
    assert_same_provenance(df, polars_df, table)
    assert set(aj.provenance(table)["parts"]) == set(df.attrs["parts"])


def test_a_skipped_venue_is_recorded_in_every_output(api, make_client):
    client = make_client(api)
    got = {o: client.get_flow(["binance", "okx"], "1000PEPE", "1d", "2024-06", output=o) for o in OUTPUTS}
    df = got["pandas"]
    assert set(df["exchange"]) == {"binance-futures"} and len(df.attrs["skipped"]) == 1
    assert_same_columns(df, got["polars"])
    assert_same_columns(df, got["arrow"])
    assert aj.provenance(got["polars"])["skipped"] == aj.provenance(got["arrow"])["skipped"] == df.attrs["skipped"]


def test_an_empty_result_has_the_same_columns_and_utc_time_in_every_output(api, make_client):
    api.inject("list", listing="empty")
    client = make_client(api)
    got = {o: client.get_flow("binance", "BTC", "1h", "2024-01", output=o) for o in OUTPUTS}
    df = got["pandas"]
    assert len(df) == 0 and str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert_same_columns(df, got["polars"])
    assert_same_columns(df, got["arrow"])
    assert df.attrs["months"] == {"2024-01": "not listed"}
    assert aj.provenance(got["arrow"])["coverage"] == aj.provenance(got["polars"])["coverage"] == df.attrs["coverage"]


def test_output_reaches_get_flow_fetch_and_fetch_async(demo):
    import asyncio

    q = make_query("binance", "BTC", "1d", "2024-01")
    assert type(aj.get_flow("binance", "BTC", "1d", "2024-01", source="demo", progress=False, output="Polars")) is pl.DataFrame
    assert type(aj.get_ohlcv("binance", "BTC", "1d", "2024-01", source="demo", progress=False, output="arrow")) is pa.Table
    assert type(demo.fetch(q, output="arrow")) is pa.Table
    assert type(asyncio.run(demo.fetch_async(q, output="polars"))) is pl.DataFrame
    assert type(demo.fetch(q)) is pd.DataFrame  # the default is unchanged


# -- no extra copy ----------------------------------------------------------------------


def _buffers(column: pa.ChunkedArray) -> set[int]:
    return {b.address for chunk in column.chunks for b in chunk.buffers() if b is not None and b.size}


def test_arrow_and_polars_share_the_cached_months_buffers(demo):
    q = make_query("binance", "BTC", "1h", "2024-01..2024-03")
    table = demo.fetch(q, output="arrow")
    polars_df = demo.fetch(q, output="polars")
    df = demo.fetch(q)
    months = [demo.cache.get(CacheKey.of(demo.source.cache_namespace, q, m)) for m in q.months]
    assert [where for _, where in months] == ["memory"] * 3
    back = polars_df.to_arrow()  # zero-copy too: its buffers are the frame's
    assert back.column("taker_buy_volume").num_chunks == 3  # one chunk per month, not rechunked
    for name in table.column_names:
        if name == "time":
            continue  # stored as in the file (timestamp[us]); cast to ns UTC once, as for pandas
        cached = set().union(*(_buffers(t.column(name)) for t, _ in months))
        assert _buffers(table.column(name)) <= cached, name
        assert _buffers(back.column(name)) <= cached, name
        # the check can tell a copy apart: pandas' column is its own memory
        assert df[name].to_numpy().ctypes.data not in cached, name
    assert table.schema.field("time").type == pa.timestamp("ns", tz="UTC")
    assert polars_df.schema["time"] == pl.Datetime("ns", "UTC")


# -- provenance of Polars frames ---------------------------------------------------------


def test_polars_provenance_belongs_to_the_returned_frame_and_leaves_with_it(demo):
    frame = demo.get_flow("binance", "BTC", "1d", "2024-01", output="polars")
    assert aj.provenance(frame)["query"]["symbol"] == "perpetual-BTC-USDT:USDT"
    derived = frame.filter(pl.col("taker_buy_count") > 0)
    with pytest.raises(QueryError, match="no provenance recorded for this polars.DataFrame") as info:
        aj.provenance(derived)
    assert "\n" not in str(info.value)
    key = id(frame)
    del frame
    gc.collect()
    assert key not in output_module._polars_provenance
    with pytest.raises(QueryError, match="carries no aperiodic_jupyter provenance"):
        aj.provenance(pa.table({"a": [1]}))


# -- Polars stays optional ----------------------------------------------------------------


def test_without_polars_the_request_is_one_line_and_nothing_downloads(api, make_client, monkeypatch):
    monkeypatch.setitem(sys.modules, "polars", None)  # `import polars` now raises ImportError
    client = make_client(api)
    with pytest.raises(QueryError) as info:
        client.get_flow("binance", "BTC", "1h", "2024-01", output="polars")
    assert str(info.value) == "output='polars' needs Polars, which is not installed: pip install polars"
    with pytest.raises(QueryError, match="pip install polars"):
        client.get_flow(["binance", "okx"], "BTC", "1h", "2024-01", output="polars")
    assert api.counts["total"] == 0  # refused before any request
    assert type(client.get_flow("binance", "BTC", "1h", "2024-01", output="arrow")) is pa.Table
    assert type(client.get_flow("binance", "BTC", "1h", "2024-01")) is pd.DataFrame


def test_importing_and_fetching_pandas_never_imports_polars():
    code = (
        "import sys, aperiodic_jupyter as aj\n"
        "aj.get_flow('binance', 'BTC', '1d', '2024-01', source='demo', progress=False)\n"
        "aj.get_flow('binance', 'BTC', '1d', '2024-01', source='demo', progress=False, output='arrow')\n"
        "print('polars' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# -- what is refused, in one line -----------------------------------------------------------


@pytest.mark.parametrize("bad", ["excel", "", None, "pl"])
def test_an_unknown_output_is_one_line_listing_the_valid_ones(api, make_client, bad):
    client = make_client(api)
    with pytest.raises(QueryError) as info:
        client.get_flow("binance", "BTC", "1h", "2024-01", output=bad)
    assert str(info.value) == f"unknown output {bad!r}; valid: pandas, polars, arrow"
    with pytest.raises(QueryError, match="valid: pandas, polars, arrow"):
        client.fetch(make_query("binance", "BTC", "1h", "2024-01"), output=bad)
    assert api.counts["total"] == 0


# -- with price: one join, in Arrow, for every output ---------------------------------------


def test_with_price_polars_and_arrow_equal_pandas(demo):
    df, polars_df, table = three(lambda o: demo.get_flow("binance", "BTC", "1h", "2024-01..2024-02", with_price=True, output=o))
    assert list(df.columns[-4:]) == ["open", "high", "low", "close"] and df["close"].notna().all()
    assert_same_columns(df, polars_df)
    assert_same_columns(df, table)
    assert_same_provenance(df, polars_df, table)
    assert aj.provenance(table)["price"] == {"joined": True, "bars": 60 * 24, "source": "demo", "missing_price": 0}
    venues, polars_venues, arrow_venues = three(
        lambda o: demo.get_flow(["binance", "okx"], "ETH", "4h", "2024-02", with_price=True, output=o)
    )
    assert list(venues.columns[:3]) == ["time", "exchange", "symbol"] and "close" in venues.columns
    assert_same_columns(venues, polars_venues)
    assert_same_columns(venues, arrow_venues)
    assert_same_provenance(venues, polars_venues, arrow_venues)


def test_with_price_bars_missing_on_either_side_are_nulls_in_every_output(make_client):
    """Flow misses every 60th bar, price every 50th: the same outer join in all three."""
    with FakeApi(with_gaps(ohlcv=50, flow=60)) as api:
        client = make_client(api)
        df, polars_df, table = three(lambda o: client.get_flow("binance", "BTC", "1h", "2024-01", with_price=True, output=o))
    no_flow, no_price = {h for h in range(744) if h % 60 == 59}, {h for h in range(744) if h % 50 == 49}
    assert len(df) == 744 - len(no_flow & no_price)
    assert table.column("close").null_count == len(no_price - no_flow) == df["close"].isna().sum()
    # a count missing from a bar stays an integer column with nulls outside pandas
    assert table.schema.field("taker_buy_count").type == pa.int64() and polars_df.schema["taker_buy_count"] == pl.Int64
    assert polars_df["taker_buy_count"].null_count() == len(no_flow - no_price)
    assert str(df["taker_buy_count"].dtype) == "float64"  # as pandas' own outer merge makes it
    assert_same_columns(df, polars_df)
    assert_same_columns(df, table)
    assert_same_provenance(df, polars_df, table)
    assert aj.provenance(polars_df)["price"]["missing_price"] == len(no_price - no_flow)


def test_a_failed_price_keeps_the_flow_and_says_why_in_every_output(api, make_client):
    client = make_client(api)
    api.inject("list", status=403, match="ohlcv", times=99, body={"error": "ohlcv is not in your plan", "details": []})
    df, polars_df, table = three(lambda o: client.get_flow("binance", "BTC", "1h", "2024-01", with_price=True, output=o))
    assert "close" not in table.column_names and "close" not in polars_df.columns and len(df) == 744
    assert_same_columns(df, polars_df)
    assert_same_columns(df, table)
    assert_same_provenance(df, polars_df, table)
    price = aj.provenance(table)["price"]
    assert price["joined"] is False and "ohlcv is not in your plan" in price["error"] and "\n" not in price["error"]


def test_with_price_keeps_polars_and_arrow_zero_copy(demo):
    q = make_query("okx", "BTC", "1h", "2024-03..2024-04")
    table = demo.fetch(q, with_price=True, output="arrow")
    back = demo.fetch(q, with_price=True, output="polars").to_arrow()
    price_months = [
        demo.cache.get(CacheKey.of(demo.source.cache_namespace, dataclasses.replace(q, metric="ohlcv"), m)) for m in q.months
    ]
    flow_months = [demo.cache.get(CacheKey.of(demo.source.cache_namespace, q, m)) for m in q.months]
    for months, name in ((price_months, "close"), (flow_months, "volume_delta_notional")):
        cached = set().union(*(_buffers(t.column(name)) for t, _ in months))
        assert _buffers(table.column(name)) <= cached and _buffers(back.column(name)) <= cached, name
