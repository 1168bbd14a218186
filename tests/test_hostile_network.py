"""The API source against a hostile network (issue 16): Ctrl-C and Cancel while a host
stalls, per-file deadlines and a minimum rate, listings that lie, redirects to another
origin, and URL renewal that goes on while it makes progress. Every test runs against a
real loopback server (``tests/server.py``)."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from aperiodic_jupyter import DownloadError, FetchCancelled, ServerError, make_query
from aperiodic_jupyter.core.sources.api import ApiSource
from aperiodic_jupyter.core.sources.base import is_unlisted

from .server import API_KEY, FakeApi


def q(start="2024-01-01", end="2024-03-31", interval="1h"):
    return make_query("binance-futures", "BTC", interval, start, end)


def wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def source(api, **options):
    options.setdefault("backoff", 0.01)
    options.setdefault("timeout", 5.0)
    return ApiSource(API_KEY, api.base_url, **options)


def collect(src, query, **kwargs):
    got = {}
    src.fetch_months(query, query.months, lambda month, table, raw: got.__setitem__(month, table), **kwargs)
    return got


def download_threads():
    return [t for t in threading.enumerate() if t.name.startswith("aperiodic-download")]


# -- 1. Ctrl-C and Cancel --------------------------------------------------------------------

CTRL_C_SCRIPT = textwrap.dedent(
    """
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from aperiodic_jupyter import Client, make_query
    client = Client("api", api_key=sys.argv[1], base_url=sys.argv[2], cache_dir=sys.argv[3],
                    timeout=3.0, backoff=0.05, max_retry_wait=0.5)
    print("ready", flush=True)
    try:
        client.fetch(make_query("binance-futures", "BTC", "1h", "2024-01-01", "2024-03-31"))
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)


def test_ctrl_c_while_a_host_stalls_returns_at_once_and_stops_every_request(api, tmp_path):
    # February's host sends half the body and goes silent; January and March arrive.
    api.inject("file", stall=60, match="2024-02", times=99)
    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT, API_KEY, api.base_url, str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in proc.stdout], daemon=True).start()
    try:
        assert lines.get(timeout=60) == "ready"
        wait_for(lambda: ("file", "2024-02", 200) in api.log and api.counts["file"] >= 3)
        time.sleep(0.5)  # stuck in the middle of February's body
        files, lists = api.counts["file"], api.counts["list"]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        line = lines.get(timeout=8)
        to_control = time.monotonic() - t0
        proc.wait(timeout=8)
        to_exit = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(1.0)  # a grace period: a retry would show up here
    print(f"SIGINT → KeyboardInterrupt in {to_control:.2f} s, process gone in {to_exit:.2f} s")
    assert line == "interrupted"
    assert to_control < 3.0 and to_exit < 5.0
    assert api.counts["file"] == files and api.counts["list"] == lists  # nothing went out after it
    # Nothing partial was cached: February is not on disk, the finished months are, and
    # the half of February written as it arrived was deleted on the way out.
    cached = {p.parent.name for p in cache.rglob("*.parquet")}
    assert "month=02" not in cached and {"month=01", "month=03"} <= cached
    assert list(cache.rglob("*.tmp")) == []


@pytest.mark.parametrize("how", ["stalled body", "no answer yet"])
def test_cancel_from_another_thread_stops_the_fetch_and_its_downloads(api, make_client, how):
    if how == "stalled body":
        api.inject("file", stall=60, match="2024-02", times=99)
    else:
        api.inject("file", delay=60, match="2024-02", times=99)
    client = make_client(api, timeout=30.0)
    cancelled_at: list[float] = []

    def cancel_when_stuck():
        wait_for(lambda: api.counts["file"] >= 2 and api.inflight >= 1)  # January and March done, February stuck
        time.sleep(0.3)
        cancelled_at.append(time.monotonic())
        client.source.cancel()

    threading.Thread(target=cancel_when_stuck, daemon=True).start()
    with pytest.raises(FetchCancelled, match="cancelled"):
        client.fetch(q())
    took = time.monotonic() - cancelled_at[0]
    files = api.counts["file"]
    wait_for(lambda: not download_threads(), timeout=2.0)  # the stuck download let go too
    time.sleep(0.5)
    assert took < 1.5
    assert api.counts["file"] == files
    assert "2024-02" not in set(client.cache.info()["month"])
    assert list(client.cache.disk.root.rglob("*.tmp")) == []  # February's partial file is gone
    # The source is not left cancelled: the next fetch works.
    api._faults.clear()
    assert len(client.fetch(q())) == 91 * 24


def test_a_cancel_event_cancels_only_its_own_fetch(api):
    api.inject("file", stall=60, match="2023-02", times=99)
    src = source(api)
    event = threading.Event()
    threading.Timer(0.5, event.set).start()
    t0 = time.monotonic()
    with pytest.raises(FetchCancelled):
        collect(src, q("2023-01-01", "2023-03-31"), cancel=event)
    assert time.monotonic() - t0 < 2.0
    assert len(collect(src, q())) == 3  # another call is not affected
    src.close()


# -- 2. a deadline per file and a minimum rate -------------------------------------------------


def test_a_trickling_host_fails_naming_the_month(api, make_client):
    # 1 KiB every 0.25 s (the 1 KiB every 5 s, sped up), against a 16 KiB/s floor.
    api.inject("file", trickle=(1024, 0.25), match="2024-01", times=99)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"^file for 2024-01 stalled: .* below the minimum of 16\.0 KiB/s") as exc:
        make_client(api, max_attempts=3, min_rate=16384, rate_window=0.5, file_deadline=30).fetch(q(end="2024-01-31"))
    assert time.monotonic() - t0 < 5
    assert "\n" not in str(exc.value)


def test_a_body_that_stalls_halfway_ends_at_the_files_deadline(api, make_client):
    api.inject("file", stall=60, match="2024-03", times=99)
    client = make_client(api, file_deadline=1.0, min_rate=1e6, rate_window=30)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"^file for 2024-03 stalled: not complete within 1\.0 s"):
        client.fetch(q())
    assert time.monotonic() - t0 < 3
    assert set(client.cache.info()["month"]) == {"2024-01", "2024-02"}  # the others were kept


def test_a_silent_host_costs_one_deadline_not_attempts_times_timeout(api, make_client):
    api.inject("file", delay=60, times=99)  # never answers
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"file for 2024-01 stalled: not complete within 1\.0 s"):
        make_client(api, timeout=5.0, file_deadline=1.0).fetch(q(end="2024-01-31"))
    assert time.monotonic() - t0 < 3


def test_the_deadline_grows_with_the_announced_size(api, make_client):
    # ~30 KB at ~40 KB/s: slower than the 0.3 s base alone allows, within 0.3 s + size / 20 KB/s.
    api.inject("file", trickle=(4096, 0.1), times=1)
    df = make_client(api, file_deadline=0.3, min_rate=20_000, rate_window=0.5).fetch(q(end="2024-01-31"))
    assert len(df) == 31 * 24


# -- 3. listings that lie ----------------------------------------------------------------------


def test_months_an_empty_listing_leaves_out_are_handed_over_marked_unlisted(api):
    api.inject("list", listing="empty")
    got = collect(source(api), q())
    assert [str(m) for m in sorted(got)] == ["2024-01", "2024-02", "2024-03"]
    assert all(t.num_rows == 0 and is_unlisted(t) for t in got.values())
    assert api.counts["file"] == 0
    # A month that came with a file is not marked.
    assert not any(is_unlisted(t) for t in collect(source(api), q()).values())


@pytest.mark.parametrize("lie, label", [("duplicate", "2024-01"), ("duplicate_day", "2024-03-10")])
def test_a_file_listed_twice_is_refused_before_any_download(lie, label, make_client):
    from datetime import date

    with FakeApi(daily_from=date(2024, 3, 10)) as api:
        api.inject("list", listing=lie)
        client = make_client(api)
        with pytest.raises(ServerError, match=rf"^the Aperiodic API listed the file for {label} twice"):
            client.fetch(q())
        assert api.counts["file"] == 0
        assert client.cache.info().empty


def test_a_daily_file_that_overlaps_its_monthly_file_is_refused():
    from datetime import date

    with FakeApi(daily_from=date(2024, 3, 10)) as api:
        api.inject("list", listing="overlap")  # March 1st as a day file, also in March's monthly file
        got: dict = {}
        with pytest.raises(ServerError, match=r"^the files listed for 2024-03 overlap at 2024-03-01"):
            source(api).fetch_months(q(), q().months, lambda m, t, raw: got.__setitem__(str(m), t))
        assert sorted(got) == ["2024-01", "2024-02"]


def test_files_for_months_or_days_not_asked_are_ignored(api):
    api.inject("list", listing="extra")  # April (not asked) and January 32nd
    got = collect(source(api), q("2024-01-01", "2024-03-31"))
    assert [str(m) for m in sorted(got)] == ["2024-01", "2024-02", "2024-03"]
    assert [t.num_rows for _, t in sorted(got.items())] == [31 * 24, 29 * 24, 31 * 24]
    assert sorted(label for route, label, _ in api.log if route == "file") == ["2024-01", "2024-02", "2024-03"]


def test_swapped_urls_are_refused_not_handed_over_under_the_wrong_month(api):
    api.inject("list", listing="swap")  # January's URL serves February and the reverse
    got: dict = {}
    with pytest.raises(ServerError, match=r"^the file listed for 2024-0[12] holds bars .* outside 2024-0[12]"):
        source(api).fetch_months(q(), q().months, lambda m, t, raw: got.__setitem__(str(m), t))
    assert list(got) == ["2024-03"]  # the others finished and were handed over; the swapped two were not


# -- 4. redirects --------------------------------------------------------------------------------


def test_a_redirect_to_another_origin_never_receives_the_key(api, make_client):
    with FakeApi() as other:
        port = other.base_url.split(":")[2].split("/")[0]
        api.inject("list", status=307, location=f"http://127.0.0.1:{port}" + "{path}")
        with pytest.raises(ServerError, match=rf"redirected to another address \(http://127\.0\.0\.1:{port}\)") as exc:
            make_client(api).fetch(q())
        assert other.received_keys == [] and other.counts["total"] == 0
        assert API_KEY not in str(exc.value) and "\n" not in str(exc.value)


def test_a_redirect_within_the_api_keeps_the_key(api, make_client):
    api.inject("list", status=307, location="{path}")
    df = make_client(api).fetch(q())
    assert len(df) == 91 * 24
    assert api.received_keys == [API_KEY, API_KEY]


# -- 5. URL renewal while it makes progress -------------------------------------------------------


def test_url_renewal_goes_on_while_rounds_make_progress(make_client):
    # URLs live 1 s; each file takes 0.65 s before its URL is checked: with 4 at a time,
    # each round finishes only the first 4 files, so 12 months take 3 rounds. One renewal
    # in a row without progress is allowed; rounds that make progress do not count.
    with FakeApi(url_ttl=1.0) as api:
        api.inject("file", delay=0.65, times=999)
        df = make_client(api, max_concurrency=4, max_refreshes=1).fetch(q("2023-01-01", "2023-12-31"))
        assert df.attrs["downloaded"] == [f"2023-{m:02d}" for m in range(1, 13)]
        assert len(df) == 365 * 24
        assert api.counts["list"] >= 3


def test_url_renewal_stops_when_a_round_finishes_nothing(make_client):
    with FakeApi(url_ttl=0.0) as api:
        with pytest.raises(DownloadError, match="presigned URLs kept expiring .* 1 times in a row without finishing a file"):
            make_client(api, max_refreshes=1).fetch(q(end="2024-01-31"))
        assert api.counts["list"] == 2
