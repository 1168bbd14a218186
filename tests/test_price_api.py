"""Price from the API, the way a user meets it: ``get_ohlcv`` and ``get_flow(...,
with_price=True)`` against the loopback server (``GET /data/ohlcv``, same contract as
flow), the public ``aperiodic`` client as the reference, and ``%flow`` in a real IPython
shell drawing price on top of the flow panels, or saying why it cannot."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

import aperiodic_jupyter as aj
from aperiodic_jupyter.core.cache import MemoryCache
from aperiodic_jupyter.jupyter.panel import FlowPanel, summary_line

from .server import API_KEY, OHLCV_COLUMNS, FakeApi, with_gaps

BTC = "perpetual-BTC-USDT:USDT"
PRICE = ["open", "high", "low", "close"]


def price_lists(api: FakeApi) -> list[int]:
    """The statuses of the server's answers to ``/data/ohlcv`` listings."""
    return [status for route, label, status in api.log if route == "list" and label.startswith("ohlcv?")]


def flow_lists(api: FakeApi) -> list[int]:
    return [status for route, label, status in api.log if route == "list" and label.startswith("flow?")]


def same_flow(joined: pd.DataFrame, plain: pd.DataFrame, *, check_dtype: bool = True) -> None:
    """Every flow row and value of ``plain`` is in ``joined``, in order."""
    got = joined[plain.columns].reset_index(drop=True)
    got.attrs = {}
    want = plain.reset_index(drop=True)
    want.attrs = {}
    pd.testing.assert_frame_equal(got, want, check_dtype=check_dtype)


# -- get_ohlcv: the same rows and values as the public client from the same server --------


@pytest.mark.parametrize(
    "server, timestamp",
    [
        ({}, "exchange"),
        ({}, "true"),
        ({"data": with_gaps(ohlcv=50)}, "exchange"),  # bars without trades are missing
        ({"daily_from": date(2024, 3, 1)}, "exchange"),  # recent days come as daily files
    ],
    ids=["monthly", "arrival-time", "missing-bars", "daily-files"],
)
def test_public_client_get_ohlcv_returns_the_same_rows_and_values(make_client, server, timestamp):
    import aperiodic  # pinned in the test extra

    with FakeApi(**server) as api:
        theirs = aperiodic.get_ohlcv(
            API_KEY,
            timestamp=timestamp,
            interval="1h",
            exchange="binance-futures",
            symbol=BTC,
            start_date=date(2024, 1, 15),
            end_date=date(2024, 3, 10),
            base_url=api.base_url,
            output="pandas",
            show_progress=False,
        )
        ours = make_client(api).get_ohlcv("binance", "BTC", "1h", "2024-01-15", "2024-03-10", timestamp=timestamp)
        assert price_lists(api) == [200, 200] and flow_lists(api) == []

    assert list(ours.columns) == list(theirs.columns) == list(OHLCV_COLUMNS)  # quote_volume passed through
    assert str(ours["time"].dt.tz) == "UTC"
    assert ours.attrs["query"]["metric"] == "ohlcv" and ours.attrs["source"] == "api"
    assert 1300 < len(ours) == len(theirs)
    theirs = theirs.assign(time=pd.to_datetime(theirs["time"]).dt.tz_localize("UTC"))
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), theirs.reset_index(drop=True), check_dtype=False)
    # and they are price bars, not flow rows
    assert (ours["high"] >= ours[["open", "close"]].max(axis=1)).all()
    assert (ours["low"] <= ours[["open", "close"]].min(axis=1)).all()
    assert ours["time"].iloc[0] == pd.Timestamp("2024-01-15", tz="UTC")
    assert ours["time"].iloc[-1] == pd.Timestamp("2024-03-10 23:00", tz="UTC")


def test_get_ohlcv_at_the_top_level_from_the_environment(api, monkeypatch):
    monkeypatch.setenv("APERIODIC_API_KEY", API_KEY)
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    bars = aj.get_ohlcv("binance-futures", "BTC", "4h", "2024-02", progress=False)
    assert len(bars) == 29 * 6 and bars.attrs["simulated"] is False
    assert bars.attrs["downloaded"] == ["2024-02"]
    # bar i of the month opens at 1000 + i and closes (i % 5) - 2 away
    assert bars["open"].iloc[7] == 1007.0 and bars["close"].iloc[7] == 1007.0 + 7 % 5 - 2
    assert api.received_keys == [API_KEY]


# -- get_flow(..., with_price=True): joined on time, nothing lost --------------------------


def test_with_price_joins_on_time_and_bars_missing_in_the_price_stay_as_nan(make_client):
    with FakeApi(with_gaps(ohlcv=50)) as api:
        client = make_client(api)
        plain = client.get_flow("binance", "BTC", "1h", "2024-01")
        df = client.get_flow("binance", "BTC", "1h", "2024-01", with_price=True)
        bars = client.get_ohlcv("binance", "BTC", "1h", "2024-01")

    assert len(df) == len(plain) == 31 * 24  # no flow row lost
    same_flow(df, plain)
    assert [c for c in df.columns if c not in plain.columns] == PRICE  # only o/h/l/c are joined
    # every 50th bar has no price: those rows stay, with NaN price
    missing = df.loc[df["close"].isna(), "time"]
    assert list(missing) == [pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=h) for h in range(49, 744, 50)]
    assert df.loc[df["close"].isna(), PRICE].isna().all().all()
    assert df.loc[df["close"].isna(), "taker_buy_volume"].notna().all()
    # the rest match the price bar of the same start, not the same position
    priced = df.dropna(subset=["close"]).set_index("time")[PRICE]
    pd.testing.assert_frame_equal(priced, bars.set_index("time")[PRICE], check_names=False)
    assert df.attrs["price"] == {"joined": True, "bars": 744 - 14, "source": "api", "missing_price": 14}
    assert df.attrs["query"]["metric"] == "flow"
    assert "no price" not in summary_line(df)


def test_bars_missing_on_either_side_are_kept(make_client):
    """Flow misses every 60th bar, price every 50th: the join keeps the union of bars."""
    with FakeApi(with_gaps(ohlcv=50, flow=60)) as api:
        client = make_client(api)
        plain = client.get_flow("binance", "BTC", "1h", "2024-01")
        df = client.get_flow("binance", "BTC", "1h", "2024-01", with_price=True)

    hours = set(range(744))
    no_flow = {h for h in hours if h % 60 == 59}
    no_price = {h for h in hours if h % 50 == 49}
    assert len(plain) == 744 - len(no_flow)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    assert list(df["time"]) == [start + pd.Timedelta(hours=h) for h in sorted(hours - (no_flow & no_price))]
    assert df["time"].is_monotonic_increasing and df["time"].is_unique
    flow_rows = df[df["time"].isin(plain["time"])]
    # every flow row, with its values (counts turn float: the price-only bars hold NaN there)
    same_flow(flow_rows, plain, check_dtype=False)
    hour = ((df["time"] - start) // pd.Timedelta(hours=1)).astype(int)
    assert set(hour[df["taker_buy_volume"].isna()]) == no_flow - no_price
    assert set(hour[df["close"].isna()]) == no_price - no_flow


# -- a price that cannot be had never costs the flow --------------------------------------

PRICE_FAULTS = [
    pytest.param(
        {"status": 403, "body": {"error": f"ohlcv is not in your plan (key {API_KEY})", "details": []}}, "plan", id="403"
    ),
    pytest.param({"status": 404}, "no ohlcv data", id="404"),
    pytest.param({"status": 503, "times": 99}, "did not answer", id="503"),
]


@pytest.mark.parametrize("fault, says", PRICE_FAULTS)
def test_a_failed_price_keeps_the_flow_whole_and_says_why_in_one_line(api, make_client, fault, says):
    client = make_client(api)
    plain = client.get_flow("binance", "BTC", "1h", "2024-01..2024-02")
    injected = api.inject("list", match="ohlcv", **fault)
    api.reset_counts()

    df = client.get_flow("binance", "BTC", "1h", "2024-01..2024-02", with_price=True)

    assert len(df) == 60 * 24 and not (set(PRICE) & set(df.columns))
    same_flow(df, plain)
    assert df.attrs["price"]["joined"] is False
    error = df.attrs["price"]["error"]
    assert says in error and "\n" not in error
    assert API_KEY not in error and "X-Amz-Signature" not in error and "/files/" not in error
    line = summary_line(df)
    assert f"no price: {error}" in line and "\n" not in line and API_KEY not in line
    assert price_lists(api) and set(price_lists(api)) == {fault["status"]}
    assert flow_lists(api) == [] and api.counts["file"] == 0  # the flow came from the cache

    # The price comes back: the next call joins it; the failure was not remembered.
    injected.times = 0
    again = client.get_flow("binance", "BTC", "1h", "2024-01..2024-02", with_price=True)
    assert again.attrs["price"]["joined"] is True and again["close"].notna().all()
    same_flow(again, plain)


def test_a_failed_price_on_the_first_call_still_fetches_the_flow(api, make_client):
    api.inject("list", status=403, match="ohlcv")
    df = make_client(api).get_flow("binance", "BTC", "1d", "2024-03", with_price=True)
    assert len(df) == 31 and df.attrs["downloaded"] == ["2024-03"]
    assert df.attrs["price"]["joined"] is False
    assert flow_lists(api) == [200] and price_lists(api) == [403]


# -- the cache keeps price months apart from flow months ----------------------------------


def test_price_months_are_cached_apart_from_flow_months(api, make_client, tmp_path):
    client = make_client(api)
    first = client.get_flow("binance", "BTC", "1h", "2024-01..2024-02", with_price=True)
    assert api.counts["file"] == 4  # two flow months, two price months
    before = api.counts["total"]

    second = client.get_flow("binance", "BTC", "1h", "2024-01..2024-02", with_price=True)
    assert api.counts["total"] == before  # nothing downloaded, nothing listed
    pd.testing.assert_frame_equal(first, second)
    assert second.attrs["from_cache"] == ["2024-01", "2024-02"]

    info = client.cache.info()
    by_metric = {m: sorted(rows["month"]) for m, rows in info.groupby("metric")}
    assert by_metric == {"flow": ["2024-01", "2024-02"], "ohlcv": ["2024-01", "2024-02"]}
    assert info["complete"].all() and (info["disk_bytes"] > 0).all()

    # The price alone, and a new kernel reading the disk cache: still zero requests.
    bars = client.get_ohlcv("binance", "BTC", "1h", "2024-01-10", "2024-02-03")
    fresh = make_client(api, memory=MemoryCache())
    again = fresh.get_flow("binance", "BTC", "1h", "2024-02", with_price=True)
    assert api.counts["total"] == before
    assert len(bars) == 25 * 24 and list(bars.columns) == list(OHLCV_COLUMNS)
    assert again.attrs["months"] == {"2024-02": "disk"} and again["close"].notna().all()

    # Clearing the price leaves the flow cached.
    assert client.cache.clear(metric="ohlcv") == 2
    assert set(client.cache.info()["metric"]) == {"flow"}


# -- %flow in a real IPython shell against the server -------------------------------------


def titles(spec: dict) -> list[str]:
    return [v["title"] if isinstance(v.get("title"), str) else "" for v in spec["vconcat"]]


@pytest.fixture
def ip(ip, api, monkeypatch):
    """The shell (conftest's) with the key set by ``%config`` and the API at the
    loopback server."""
    shell = ip
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    assert shell.run_cell("%config Aperiodic.source = 'auto'", store_history=False).success
    assert shell.run_cell(f"%config Aperiodic.api_key = '{API_KEY}'", store_history=False).success
    yield shell
    shell.run_cell("%config Aperiodic.api_key = None", store_history=False)
    shell.user_ns.pop("flows", None)


def test_the_magic_draws_api_price_on_top_of_the_flow(ip, api, capsys):
    result = ip.run_cell("%flow binance BTC 1h 2024-01 -o flows", store_history=True)
    assert result.success and result.result is None
    (panel,) = ip.shown
    assert isinstance(panel, FlowPanel)
    assert panel.df.attrs["source"] == "api" and panel.df.attrs["price"]["joined"] is True
    assert len(panel.df) == 744 and panel.df["close"].notna().all()
    spec = panel.spec.to_dict()
    names = titles(spec)
    assert names[0].startswith("Price"), names
    assert not any(t.startswith("Price") for t in names[1:])
    # the price is the server's: bar i opens at 1000 + i
    assert np.allclose(panel.df["open"], 1000.0 + np.arange(744))
    assert "no price" not in repr(panel) and "no price panel" not in str(spec["title"])
    assert price_lists(api) == [200] and flow_lists(api) == [200]
    assert "close" in ip.user_ns["flows"].columns
    out = capsys.readouterr()
    assert API_KEY not in out.out + out.err + repr(panel)


def test_the_magic_still_shows_the_flow_when_the_price_listing_fails(ip, api, capsys):
    api.inject("list", status=403, match="ohlcv", body={"error": "ohlcv is not in your plan", "details": []})
    result = ip.run_cell("%flow binance BTC 1h 2024-01", store_history=True)
    assert result.success
    (panel,) = ip.shown
    assert isinstance(panel, FlowPanel)
    assert len(panel.df) == 744 and "close" not in panel.df.columns
    assert panel.df.attrs["price"]["joined"] is False
    assert "no price: " in repr(panel) and "ohlcv is not in your plan" in repr(panel)
    assert "no price: " in repr(panel)  # the text a saved notebook shows
    spec = panel.spec.to_dict()
    assert not any(t.startswith("Price") for t in titles(spec))
    assert any(t.startswith("Cumulative volume delta") for t in titles(spec))  # the flow panels are drawn
    assert any("no price panel: " in s for s in spec["title"]["subtitle"])
    assert flow_lists(api) == [200] and price_lists(api) == [403]
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and API_KEY not in out.out + out.err
