"""The fetch core against a real loopback server that follows the API contract."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from datetime import date

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

import aperiodic_jupyter
from aperiodic_jupyter import (
    AuthError,
    DownloadError,
    FetchCancelled,
    NoDataError,
    PlanError,
    QueryError,
    SchemaError,
    ServerError,
    get_flow,
    make_query,
)
from aperiodic_jupyter.core.cache import MemoryCache
from aperiodic_jupyter.core.ranges import utc_today

from .server import API_KEY, FakeApi, synthetic_table


def q(symbol="BTC", interval="1h", start="2024-01-01", end="2024-03-31", **kw):
    return make_query("binance-futures", symbol, interval, start, end, **kw)


def test_three_months_trimmed_exactly_across_month_boundaries(api, make_client):
    df = make_client(api).fetch(q(start="2024-01-15", end="2024-03-10"))
    assert df["time"].iloc[0] == pd.Timestamp("2024-01-15 00:00", tz="UTC")
    assert df["time"].iloc[-1] == pd.Timestamp("2024-03-10 23:00", tz="UTC")
    assert len(df) == (date(2024, 3, 10) - date(2024, 1, 15)).days * 24 + 24
    assert df["time"].is_monotonic_increasing and df["time"].is_unique
    # Bar i of a month carries taker_buy_count == i: the first row is January's bar 14*24.
    assert df["taker_buy_count"].iloc[0] == 14 * 24
    assert df.loc[df["time"] == pd.Timestamp("2024-02-01", tz="UTC"), "taker_buy_count"].item() == 0


def test_get_flow_whole_quarter_from_the_loopback_server(api, monkeypatch):
    monkeypatch.setenv("APERIODIC_API_KEY", API_KEY)
    monkeypatch.setenv("APERIODIC_API_URL", api.base_url)
    df = get_flow("binance-futures", "BTC", "1h", "2024-01-01", "2024-03-31", progress=False)
    assert len(df) == 91 * 24
    assert df.attrs["source"] == "api" and df.attrs["simulated"] is False
    assert df.attrs["query"]["symbol"] == "perpetual-BTC-USDT:USDT"
    assert df.attrs["downloaded"] == ["2024-01", "2024-02", "2024-03"]
    assert str(df["time"].dt.tz) == "UTC"
    assert api.received_keys == [API_KEY]


@pytest.mark.parametrize("timestamp, offset", [("exchange", 0.0), ("true", 0.5)])
def test_both_timestamp_sources(api, make_client, timestamp, offset):
    df = make_client(api).fetch(q(start="2024-01-01", end="2024-01-01", timestamp=timestamp))
    assert df["taker_buy_volume"].iloc[3] == pytest.approx(3 + offset)
    assert df.attrs["query"]["timestamp"] == timestamp


def test_second_identical_call_makes_zero_requests(api, make_client, tmp_path):
    client = make_client(api)
    first = client.fetch(q())
    before = api.counts["total"]
    second = client.fetch(q())
    assert api.counts["total"] == before
    pd.testing.assert_frame_equal(first, second)
    assert second.attrs["from_cache"] == ["2024-01", "2024-02", "2024-03"]
    assert set(second.attrs["months"].values()) == {"memory"}

    # A new kernel (empty memory) reads the disk cache: still zero requests.
    fresh = make_client(api, memory=MemoryCache())
    third = fresh.fetch(q(start="2024-02-03", end="2024-02-04"))
    assert api.counts["total"] == before
    assert third.attrs["months"] == {"2024-02": "disk"}
    assert len(third) == 48


def test_refresh_downloads_again(api, make_client):
    client = make_client(api)
    client.fetch(q(start="2024-01-01", end="2024-01-31"))
    client.fetch(q(start="2024-01-01", end="2024-01-31"), refresh=True)
    assert api.counts["file"] == 2


def test_corrupt_download_is_retried_and_never_cached(api, make_client):
    client = make_client(api, max_attempts=3)
    api.inject("file", corrupt=True, match="2024-02", times=1)
    df = client.fetch(q())
    assert len(df) == 91 * 24  # the retry got the good file

    api.inject("file", corrupt=True, match="2023-02", times=99)
    with pytest.raises(DownloadError, match=r"2023-02 could not be downloaded intact after 3 attempts"):
        client.fetch(q(start="2023-01-01", end="2023-03-31"))
    cached = client.cache.info()
    assert "2023-02" not in set(cached["month"])
    assert {"2023-01", "2023-03"} <= set(cached["month"])  # the good months are kept


def test_truncated_body_is_retried(api, make_client):
    api.inject("file", truncate=True, times=2)
    df = make_client(api).fetch(q(start="2024-01-01", end="2024-01-31"))
    assert len(df) == 31 * 24
    assert [s for r, _, s in api.log if r == "file"] == [200, 200, 200]


def test_expired_presigned_url_is_refreshed_not_retried(make_client):
    with FakeApi(url_ttl=0.3) as api:
        # The February download is held up past the URL's lifetime: the file host says 403.
        api.inject("file", delay=0.6, match="2024-02")
        df = make_client(api).fetch(q())
        assert len(df) == 91 * 24
        assert api.counts["list"] == 2  # one refresh of the URLs
        statuses = [(label, s) for r, label, s in api.log if r == "file"]
        assert ("2024-02", 403) in statuses and statuses.count(("2024-02", 200)) == 1


def test_urls_that_keep_expiring_end_in_a_clear_error(make_client):
    with FakeApi(url_ttl=0.0) as api:
        with pytest.raises(DownloadError, match="presigned URLs kept expiring"):
            make_client(api, max_refreshes=2).fetch(q(start="2024-01-01", end="2024-01-31"))
        assert api.counts["list"] == 3


def test_bounded_retries_end_with_a_clear_error(api, make_client):
    api.inject("list", status=503, times=100)
    with pytest.raises(ServerError, match="did not answer after 4 attempts"):
        make_client(api, max_attempts=4).fetch(q())
    assert api.counts["list"] == 4


def test_rate_limit_waits_for_retry_after(api, make_client):
    api.inject("list", status=429, retry_after="1")
    t0 = time.monotonic()
    df = make_client(api).fetch(q(start="2024-01-01", end="2024-01-02"))
    assert time.monotonic() - t0 >= 0.95
    assert len(df) == 48
    assert [s for r, _, s in api.log if r == "list"] == [429, 200]


def test_retry_after_is_capped(api, make_client):
    api.inject("list", status=503, retry_after="3600")
    t0 = time.monotonic()
    make_client(api, max_retry_wait=0.2).fetch(q(start="2024-01-01", end="2024-01-02"))
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_statuses_on_files_are_retried(api, make_client, status):
    api.inject("file", status=status, times=2)
    df = make_client(api).fetch(q(start="2024-01-01", end="2024-01-31"))
    assert len(df) == 31 * 24
    assert [s for r, _, s in api.log if r == "file"] == [status, status, 200]


def test_plain_500_on_a_file_is_not_retried(api, make_client):
    api.inject("file", status=500)
    with pytest.raises(DownloadError, match="HTTP 500"):
        make_client(api).fetch(q(start="2024-01-01", end="2024-01-31"))


def test_slow_server_times_out_then_recovers(api, make_client):
    api.inject("file", delay=1.5)
    df = make_client(api, timeout=0.5).fetch(q(start="2024-01-01", end="2024-01-31"))
    assert len(df) == 31 * 24


def test_two_threads_asking_for_the_same_month_cause_one_download(api, make_client):
    client_a = make_client(api)
    client_b = make_client(api, memory=MemoryCache())
    api.inject("file", delay=0.5, match="2024-01")
    results = []
    threads = [threading.Thread(target=lambda c=c: results.append(c.fetch(q(end="2024-01-31")))) for c in (client_a, client_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and all(len(r) == 31 * 24 for r in results)
    assert api.counts["file"] == 1


def test_downloads_run_concurrently_but_bounded(api, make_client):
    api.inject("file", delay=0.3, times=12)
    make_client(api, max_concurrency=3).fetch(q(start="2023-01-01", end="2023-12-31"))
    assert api.counts["file"] == 12
    assert 2 <= api.max_inflight <= 3


def test_daily_files_are_combined_into_the_month(make_client):
    with FakeApi(daily_from=date(2024, 3, 10)) as api:
        client = make_client(api)
        df = client.fetch(q(start="2024-02-20", end="2024-03-31"))
        assert len(df) == (10 + 31) * 24
        assert df["time"].is_unique
        march = df[df["time"] >= pd.Timestamp("2024-03-10", tz="UTC")]
        assert march["taker_buy_count"].iloc[0] == 9 * 24  # bar index within the month
        assert march["time"].is_monotonic_increasing
        files = [label for r, label, _ in api.log if r == "file"]
        assert {"2024-03", "2024-03-10", "2024-03-31"} <= set(files)
        before = api.counts["total"]
        client.fetch(q(start="2024-03-15", end="2024-03-16"))
        assert api.counts["total"] == before


def test_files_whose_schemas_disagree_fail_naming_the_month(make_client):
    def data(*key):
        table = synthetic_table(*key)
        return table.drop_columns(["flow_entropy"]) if key[5:7] == (2024, 2) else table

    with FakeApi(data) as api:
        with pytest.raises(SchemaError, match="2024-02.*missing.*flow_entropy"):
            make_client(api).fetch(q())


def test_month_with_no_file_is_empty_not_an_error(api, make_client):
    df = make_client(api).fetch(q(start="2019-11-01", end="2020-01-31"))
    assert df["time"].min() == pd.Timestamp("2020-01-01", tz="UTC")
    assert len(df) == 31 * 24


def test_current_month_expires_finished_months_do_not(api, make_client):
    today = utc_today()
    last_month_start = (pd.Timestamp(today).to_period("M") - 1).start_time.date()
    client = make_client(api, ttl=0.0)
    client.fetch(q(start=last_month_start, end=today))
    files_before = api.counts["file"]
    df = client.fetch(q(start=last_month_start, end=today))
    # Only the current month was fetched again.
    assert api.counts["file"] == files_before + 1
    assert df.attrs["months"][str(today)[:7]] == "download"
    assert df.attrs["months"][str(last_month_start)[:7]] == "memory"


def test_a_corrupt_cached_file_is_dropped_and_fetched_again(api, make_client, tmp_path):
    client = make_client(api)
    client.fetch(q(end="2024-01-31"))
    path = client.cache.info()["path"].iloc[0]
    with open(path, "wb") as fh:
        fh.write(b"not parquet at all")
    again = make_client(api, memory=MemoryCache()).fetch(q(end="2024-01-31"))
    assert len(again) == 31 * 24
    assert again.attrs["months"] == {"2024-01": "download"}
    assert api.counts["file"] == 2


def test_cache_can_be_inspected_and_cleared(api, make_client):
    client = make_client(api)
    client.fetch(q())
    client.fetch(q(symbol="ETH", end="2024-01-31"))
    info = client.cache.info()
    assert len(info) == 4
    assert info["complete"].all()
    assert (info["disk_bytes"] > 0).all() and (info["memory_bytes"] > 0).all()
    assert set(info["symbol"]) == {"perpetual-BTC-USDT:USDT", "perpetual-ETH-USDT:USDT"}
    assert client.cache.clear(symbol="perpetual-ETH-USDT:USDT") == 1
    assert len(client.cache.info()) == 3
    assert client.cache.clear() == 3
    assert client.cache.info().empty


def test_disk_cache_scans_as_a_hive_partitioned_dataset(api, make_client, tmp_path):
    make_client(api).fetch(q())
    make_client(api).fetch(q(symbol="ETH", end="2024-01-31"))
    root = tmp_path / "cache" / make_client(api).source.cache_namespace
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    table = dataset.to_table(filter=(ds.field("symbol") == "perpetual-BTC-USDT:USDT") & (ds.field("month") == 2))
    assert table.num_rows == 29 * 24
    assert set(dataset.schema.names) >= {"time", "metric", "exchange", "symbol", "interval", "timestamp", "year", "month"}


def test_months_that_worked_are_kept_when_another_fails(api, make_client):
    api.inject("file", status=404, match="2024-03")
    client = make_client(api)
    with pytest.raises(DownloadError, match="2024-03"):
        client.fetch(q())
    assert set(client.cache.info()["month"]) == {"2024-01", "2024-02"}
    df = client.fetch(q())  # the retry only needs March
    assert len(df) == 91 * 24 and df.attrs["months"]["2024-03"] == "download"


def test_works_inside_a_running_event_loop_without_patching(api, make_client):
    client = make_client(api)

    async def notebook_cell():
        loop = asyncio.get_running_loop()
        sync_df = client.fetch(q(end="2024-01-31"))  # a plain call from inside the loop
        async_df = await client.fetch_async(q(start="2024-02-01", end="2024-02-29"))
        return loop, sync_df, async_df

    loop, sync_df, async_df = asyncio.run(notebook_cell())
    assert len(sync_df) == 31 * 24 and len(async_df) == 29 * 24
    assert "nest_asyncio" not in type(loop).__module__


# -- errors and secrets ----------------------------------------------------------------


def test_missing_key_fails_before_any_request(api, make_client):
    client = make_client(api, api_key=None)
    with pytest.raises(AuthError, match="APERIODIC_API_KEY"):
        client.fetch(q())
    assert api.counts["total"] == 0


def test_wrong_key_says_how_to_set_it(api, make_client):
    with pytest.raises(AuthError, match=r"refused \(401\).*APERIODIC_API_KEY") as err:
        make_client(api, api_key="wrong-key-123").fetch(q())
    assert "wrong-key-123" not in str(err.value)


def test_404_from_the_api_is_no_data(make_client):
    with FakeApi(lambda *key: None) as api:
        with pytest.raises(NoDataError, match=r"no flow data for perpetual-BTC-USDT:USDT on binance-futures.*\(404\)"):
            make_client(api).fetch(q())


def test_plan_403_carries_the_server_reason(api, make_client):
    api.inject("list", status=403, body={"error": "interval not in plan", "details": []})
    with pytest.raises(PlanError, match="plan does not cover.*interval not in plan"):
        make_client(api).fetch(q())


def test_400_shows_the_server_message(api, make_client):
    api.inject("list", status=400, body={"error": "Invalid parameters", "details": ["symbol not listed"]})
    with pytest.raises(QueryError, match="the API rejected the query: Invalid parameters \\(symbol not listed\\)"):
        make_client(api).fetch(q())


FAULTS = [
    ("list", {"status": 401}),
    ("list", {"status": 403, "body": {"error": f"bad key {API_KEY}"}}),
    ("list", {"status": 404}),
    ("list", {"status": 400, "body": {"error": "x", "details": [f"key={API_KEY}"]}}),
    ("list", {"status": 503, "times": 50}),
    ("file", {"status": 500}),
    ("file", {"corrupt": True, "times": 50}),
    ("file", {"status": 503, "times": 50}),
]


@pytest.mark.parametrize("route, fault", FAULTS)
def test_key_and_presigned_urls_absent_from_every_error_text(api, make_client, route, fault, caplog):
    api.inject(route, **fault)
    caplog.set_level(logging.DEBUG)
    client = make_client(api, max_attempts=2)
    with pytest.raises(Exception) as err:
        client.fetch(q(end="2024-01-31"))
    text = "".join(traceback.format_exception(err.value)) + repr(err.value) + repr(client) + repr(client.source)
    assert API_KEY not in text
    assert "X-Amz-Signature" not in text and "/files/" not in text
    assert API_KEY not in caplog.text


def test_presigned_urls_are_redacted_in_logs(api, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    make_client(api).fetch(q(end="2024-01-31"))
    assert "/files/" in caplog.text  # httpx did log the download...
    assert "X-Amz-Signature=" not in caplog.text  # ...without its signature
    assert API_KEY not in caplog.text


def test_public_client_returns_the_same_rows_and_values(api, make_client):
    import aperiodic  # pinned in the test extra

    theirs = aperiodic.get_metrics(
        API_KEY,
        metric="flow",
        timestamp="exchange",
        interval="1h",
        exchange="binance-futures",
        symbol="perpetual-BTC-USDT:USDT",
        start_date=date(2024, 1, 1),
        end_date=date(2024, 3, 31),
        base_url=api.base_url,
        output="pandas",
        show_progress=False,
    )
    ours = make_client(api).fetch(q())
    assert len(theirs) == len(ours) == 91 * 24
    theirs = theirs.assign(time=pd.to_datetime(theirs["time"]).dt.tz_localize("UTC"))
    pd.testing.assert_frame_equal(ours[theirs.columns].reset_index(drop=True), theirs.reset_index(drop=True), check_dtype=False)


def test_files_in_any_row_order_are_trimmed_and_sorted(make_client):
    def shuffled(*key):
        table = synthetic_table(*key)
        order = np.random.default_rng(key[6]).permutation(table.num_rows)
        return table.take(order)

    with FakeApi(shuffled) as api:
        df = make_client(api).fetch(q(start="2024-01-20", end="2024-02-10"))
    assert df["time"].is_monotonic_increasing
    assert df["time"].iloc[0] == pd.Timestamp("2024-01-20", tz="UTC")
    assert df["time"].iloc[-1] == pd.Timestamp("2024-02-10 23:00", tz="UTC")
    assert len(df) == 22 * 24


def test_a_caller_waiting_on_a_failed_download_gets_the_same_typed_error(api, make_client):
    api.inject("file", delay=0.5, status=404, match="2024-01")
    errors = []

    def fetch(client):
        try:
            client.fetch(q(end="2024-01-31"))
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(make_client(api, memory=MemoryCache()),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 2 and all(isinstance(e, DownloadError) for e in errors)
    assert all("2024-01" in str(e) for e in errors)
    assert api.counts["file"] == 1


# -- pandas frames built month by month, months kept as their files ------------------------


@pytest.mark.parametrize(
    "interval, start, end, daily",
    [
        ("1m", "2024-01-31", "2024-03-02", False),  # minute months, cut inside the first and last
        ("1h", "2019-12-15", "2020-01-10", False),  # a month with no file, then one cut short
        ("1h", "2024-02-20", "2024-03-31", True),  # a month stitched from daily files
    ],
)
def test_the_pandas_frame_is_the_arrow_tables_frame_cold_and_warm(make_client, interval, start, end, daily):
    with FakeApi(daily_from=date(2024, 3, 10) if daily else None) as api:
        client = make_client(api)
        query = q(interval=interval, start=start, end=end)
        cold = client.fetch(query)
        warm = client.fetch(query)
        table = client.fetch(query, output="arrow")
    assert set(warm.attrs["months"].values()) == {"memory"}
    expected = table.replace_schema_metadata(None).to_pandas()
    pd.testing.assert_frame_equal(cold, expected)
    pd.testing.assert_frame_equal(warm, expected)
    assert cold.attrs["coverage"] == warm.attrs["coverage"] == aperiodic_jupyter.provenance(table)["coverage"]


def test_the_kernel_keeps_minute_months_as_their_file_bytes(api, make_client):
    client = make_client(api)
    client.fetch(q(interval="1m", end="2024-01-31"))
    client.fetch(q(interval="1h", end="2024-01-31"))
    info = client.cache.info().set_index("interval")
    # A month of minute bars is kept as the file that arrived (smaller than its table);
    # never more than the file, whichever form is kept.
    assert info.loc["1m", "memory_bytes"] == info.loc["1m", "disk_bytes"]
    assert info.loc["1h", "memory_bytes"] <= info.loc["1h", "disk_bytes"]
    df = client.fetch(q(interval="1m", end="2024-01-31"))
    assert df.attrs["months"] == {"2024-01": "memory"} and len(df) == 31 * 1440
    df.loc[0, "taker_buy_volume"] = -1.0  # the caller's own frame: the cached month is unchanged
    assert client.fetch(q(interval="1m", end="2024-01-31")).loc[0, "taker_buy_volume"] == 0.0


def test_a_cancel_event_cancels_that_fetch_only(api, make_client):
    api.inject("file", stall=60, match="2024-02", times=99)
    client = make_client(api, timeout=30.0)
    event = threading.Event()
    threading.Timer(0.5, event.set).start()
    t0 = time.monotonic()
    with pytest.raises(FetchCancelled, match="cancelled"):
        client.fetch(q(), cancel=event)
    assert time.monotonic() - t0 < 2.0
    assert "2024-02" not in set(client.cache.info()["month"])
    # The client is not left cancelled, and an event set before any download stops the
    # call before it asks anything; months already cached need no download to cancel.
    api._faults.clear()
    assert len(client.fetch(q(start="2023-01-01", end="2023-03-31"))) == 90 * 24
    requests = api.counts["total"]
    with pytest.raises(FetchCancelled):
        client.fetch(q(start="2023-04-01", end="2023-04-30"), cancel=event)
    assert api.counts["total"] == requests
    assert len(client.fetch(q(start="2023-01-01", end="2023-03-31"), cancel=event)) == 90 * 24


def test_a_cancel_event_stops_a_demo_fetch_between_months():
    event = threading.Event()
    event.set()
    with aperiodic_jupyter.Client("demo", cache_dir=False, memory_cache=MemoryCache()) as client:
        with pytest.raises(FetchCancelled):
            client.fetch(make_query("binance", "BTC", "1h", "2024-01..2024-02"), cancel=event)
        assert client.cache.info().empty


def test_months_decoded_and_not_yet_handed_over_are_few_however_many_arrive(api, monkeypatch):
    # A caller slow to take each month (copying it, writing it) must not find every other
    # month decoded and waiting in memory: downloads wait for a permit to decode.
    from aperiodic_jupyter.core.parquet import DECODES
    from aperiodic_jupyter.core.sources import api as api_module

    waiting, most = 0, 0
    lock = threading.Lock()
    decode = api_module._decode_checked

    def counted(raw, f):
        nonlocal waiting, most
        table = decode(raw, f)
        with lock:
            waiting += 1
            most = max(most, waiting)
        return table

    def slow_caller(month, table, raw):
        nonlocal waiting
        time.sleep(0.05)
        with lock:
            waiting -= 1

    monkeypatch.setattr(api_module, "_decode_checked", counted)
    query = q(start="2023-01-01", end="2023-12-31")
    api_module.ApiSource(API_KEY, api.base_url, backoff=0.01).fetch_months(query, query.months, slow_caller)
    assert waiting == 0 and 1 <= most <= DECODES, most


def test_a_large_file_is_decoded_once_into_the_frame_kept_as_its_file_and_a_corrupt_one_retried(api, make_client, monkeypatch):
    from aperiodic_jupyter.core.frame import assemble, table_to_frame
    from aperiodic_jupyter.core.sources import api as api_module

    monkeypatch.setattr(api_module, "SMALL_FILE", 0)  # every file takes the large files' way
    decodes = []
    decode = api_module.read_parquet_bytes

    def whole(raw, columns=None, **kw):
        decodes.append(columns)
        return decode(raw, columns, **kw)

    monkeypatch.setattr(api_module, "read_parquet_bytes", whole)
    client = make_client(api, max_attempts=3)
    api.inject("file", corrupt=True, match="2024-02", times=1)
    query = q(start="2024-01-10", end="2024-03-31")
    df = client.fetch(query)
    assert decodes == []  # no file decoded whole: only its time column, then into the frame
    parts = {}
    for month in query.months:
        hit = client.cache.find(aperiodic_jupyter.core.cache.CacheKey.of(client.source.cache_namespace, query, month))
        assert hit is not None and hit[0].raw is not None  # kept as the file that arrived
        parts[month] = hit[0]
    pd.testing.assert_frame_equal(df, table_to_frame(assemble([(m, p.table()) for m, p in parts.items()], query)))

    api.inject("file", corrupt=True, match="2023-02", times=99)
    with pytest.raises(DownloadError, match=r"2023-02 could not be downloaded intact after 3 attempts"):
        client.fetch(q(start="2023-01-01", end="2023-03-31"))
    assert "2023-02" not in set(client.cache.info()["month"])
