"""Issue 16, the cache's side: damaged files (5), unusable folders (6), two processes
sharing a cache (10), and files that do not hold the month asked for, or nothing (3)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import aperiodic_jupyter
from aperiodic_jupyter import DownloadError, ServerError, make_query
from aperiodic_jupyter.core import cache as cache_module
from aperiodic_jupyter.core.cache import CacheKey, CacheWarning, DiskCache, MemoryCache, MonthLock
from aperiodic_jupyter.core.parquet import check_span
from aperiodic_jupyter.core.ranges import Month
from aperiodic_jupyter.core.sources import api as api_source

from .server import API_KEY, FakeApi, synthetic_table

REPO = Path(__file__).resolve().parents[1]


def q(symbol="BTC", interval="1h", start="2024-01-01", end="2024-03-31", **kw):
    return make_query("binance-futures", symbol, interval, start, end, **kw)


def month_path(client, month: str, symbol: str = "BTC", interval: str = "1h") -> Path:
    query = q(symbol=symbol, interval=interval)
    assert client.cache.disk is not None
    year, number = map(int, month.split("-"))
    return client.cache.disk.path(CacheKey.of(client.source.cache_namespace, query, Month(year, number)))


def partial_files(root: Path) -> list[Path]:
    """Temporary files a download or a write left in the cache tree."""
    return sorted(root.rglob("*.tmp"))


def in_memory(client) -> set[str]:
    return {str(key.month) for key in client.cache.memory.keys()}


# -- 5: integrity of what is read from disk -----------------------------------------------


def test_a_flipped_byte_in_a_cached_file_is_caught_and_the_month_fetched_again(api, make_client, tmp_path):
    client = make_client(api)
    want = client.fetch(q(end="2024-01-31"))
    path = month_path(client, "2024-01")
    size = path.stat().st_size
    rng = random.Random(16)
    positions = rng.sample(range(size // 8, size - size // 8), 30)  # the middle of the file
    for i, pos in enumerate(positions):
        good = path.read_bytes()
        with open(path, "r+b") as fh:
            fh.seek(pos)
            fh.write(bytes([good[pos] ^ (1 << rng.randrange(8))]))
        fresh = make_client(api, memory=MemoryCache())  # a new kernel: only the disk remembers
        assert fresh.cache.get(CacheKey.of(fresh.source.cache_namespace, q(), Month(2024, 1))) is None, pos
        got = fresh.fetch(q(end="2024-01-31"))
        assert got.attrs["months"] == {"2024-01": "download"}, pos
        pd.testing.assert_frame_equal(got, want)
        assert api.counts["file"] == i + 2
        assert path.read_bytes() == good  # the re-download put the good file back


def test_disk_reads_verify_the_recorded_checksum(tmp_path):
    disk = DiskCache(tmp_path)
    key = CacheKey("demo", "flow", "binance-futures", "perpetual-BTC-USDT:USDT", "1h", "exchange", Month(2024, 1))
    table = pa.table({"time": pa.array([1, 2], type=pa.timestamp("us")), "x": [1.0, 2.0]})
    disk.write(key, table)
    assert disk.read(key) is not None
    path = disk.path(key)
    DiskCache.sum_path(path).unlink()  # a file whose checksum is lost cannot be trusted
    assert disk.read(key) is None and not path.exists()
    disk.write(key, pa.table({"time": pa.array([], type=pa.timestamp("us"))}))  # an empty month, as older versions kept
    assert disk.read(key) is None and not path.exists()


def test_files_checksummed_by_earlier_versions_still_verify(tmp_path):
    disk = DiskCache(tmp_path)
    key = CacheKey("demo", "flow", "binance-futures", "perpetual-BTC-USDT:USDT", "1h", "exchange", Month(2024, 1))
    disk.write(key, pa.table({"time": pa.array([1, 2], type=pa.timestamp("us")), "x": [1.0, 2.0]}))
    path, sums = disk.path(key), DiskCache.sum_path(disk.path(key))
    algo, digest = sums.read_text("ascii").split()
    assert (algo, digest) == ("sha256", hashlib.sha256(path.read_bytes()).hexdigest())
    sums.write_text(f"blake2b-256 {hashlib.blake2b(path.read_bytes(), digest_size=32).hexdigest()}\n", "ascii")
    assert disk.read(key) is not None  # a cache written before SHA-256 is kept
    sums.write_text(f"blake2b-256 {'0' * 64}\n", "ascii")
    assert disk.read(key) is None and not path.exists()


def test_checksum_and_lock_files_do_not_disturb_scans_of_the_cache_tree(api, make_client, tmp_path):
    client = make_client(api)
    client.fetch(q())
    root = tmp_path / "cache" / client.source.cache_namespace
    names = {p.name for p in month_path(client, "2024-01").parent.iterdir()}
    assert names == {"data.parquet", ".data.parquet.b2", ".data.parquet.lock"}
    glob = str(root / "metric=flow" / "**" / "*.parquet")
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)").fetchall() == [(91 * 24,)]
    assert pl.scan_parquet(glob, hive_partitioning=True).select(pl.len()).collect().item() == 91 * 24
    assert ds.dataset(root, format="parquet", partitioning="hive").count_rows() == 91 * 24


# -- 6: an unusable cache folder never fails a fetch that worked ---------------------------


def _read_only(folder: Path, monkeypatch) -> None:
    """A folder nothing can be created in. chmod does not stop root, so as root every
    mkdir below it fails the way it does in a read-only folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    real = os.mkdir
    prefix = str(folder) + os.sep

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(prefix):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


def _unusable(kind: str, tmp_path: Path, monkeypatch) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    if kind == "a file":
        return blocker
    if kind == "under a file":
        return blocker / "cache"
    _read_only(tmp_path / "read-only", monkeypatch)
    return tmp_path / "read-only"


def _cache_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]


@pytest.mark.parametrize("kind", ["a file", "under a file", "read-only"])
def test_an_unusable_cache_folder_falls_back_to_memory_with_one_warning(api, make_client, tmp_path, monkeypatch, kind):
    folder = _unusable(kind, tmp_path, monkeypatch)
    client = make_client(api, cache_dir=folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = client.fetch(q())
        again = client.fetch(q())
        other = client.fetch(q(symbol="ETH", end="2024-01-31"))
    assert len(df) == 91 * 24 and len(again) == 91 * 24 and len(other) == 31 * 24
    assert set(again.attrs["months"].values()) == {"memory"}
    (line,) = _cache_warnings(caught)  # one line for the folder, however many months and calls
    assert str(folder) in line and "memory only" in line and "APERIODIC_CACHE_DIR" in line and "\n" not in line
    assert client.cache.info()["path"].isna().all()  # nothing on disk, all in memory


@pytest.mark.parametrize("kind", ["a file", "under a file", "read-only"])
def test_get_flow_on_the_demo_source_survives_an_unusable_cache_dir(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("APERIODIC_CACHE_DIR", str(_unusable(kind, tmp_path, monkeypatch)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = aperiodic_jupyter.get_flow("binance", "BTC", "1d", "2024-01..2024-02", source="demo", progress=False)
        plan = aperiodic_jupyter.default_client("demo").plan(q(interval="1d", end="2024-02-29"))
    assert len(df) == 60 and df.attrs["simulated"] is True
    assert set(plan["cached"]) == {"memory"}
    assert len(_cache_warnings(caught)) == 1


# -- 10: two processes fetching the same months --------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from aperiodic_jupyter import Client, make_query
    from aperiodic_jupyter.core.cache import MemoryCache
    api_key, base_url, cache_dir, start_at, out = sys.argv[1:6]
    client = Client("api", api_key=api_key, base_url=base_url, cache_dir=cache_dir, memory_cache=MemoryCache(), backoff=0.01)
    query = make_query("binance-futures", "BTC", "1h", "2024-01-01", "2024-03-31")
    while time.time() < float(start_at):
        time.sleep(0.002)
    df = client.fetch(query)
    df.to_parquet(out)
    print(json.dumps(df.attrs["months"]))
    """
)


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_two_processes_download_a_month_once_and_get_the_same_frame(tmp_path):
    with FakeApi(latency=0.4) as api:  # each request takes a while: the processes overlap
        cache_dir = tmp_path / "shared-cache"
        start_at = str(time.time() + 3.0)  # both past their imports, then go at once
        children = [
            _python(CHILD, API_KEY, api.base_url, str(cache_dir), start_at, str(tmp_path / f"{i}.parquet")) for i in range(2)
        ]
        outs = [child.communicate(timeout=60) for child in children]
        for child, (_, err) in zip(children, outs, strict=True):
            assert child.returncode == 0, err
        origins = [json.loads(out) for out, _ in outs]
        assert api.counts["file"] == 3, (api.log, origins)  # three months, each downloaded once
        for month in ("2024-01", "2024-02", "2024-03"):  # by one process, read from disk by the other
            assert sorted(o[month] for o in origins) == ["disk", "download"], origins
        first, second = (pd.read_parquet(tmp_path / f"{i}.parquet") for i in range(2))
        pd.testing.assert_frame_equal(first, second)
        assert len(first) == 91 * 24


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from aperiodic_jupyter.core.cache import MonthLock
    locks = [MonthLock(Path(p)) for p in sys.argv[1:]]
    assert all(lock.try_acquire() for lock in locks)
    print("locked", flush=True)
    time.sleep(600)
    """
)


def _hold(paths: list[Path]) -> subprocess.Popen:
    holder = _python(HOLDER, *map(str, paths))
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_lock_left_by_a_killed_process_does_not_block(api, make_client):
    client = make_client(api)
    assert client.cache.disk is not None
    key = CacheKey.of(client.source.cache_namespace, q(), Month(2024, 1))
    holder = _hold([client.cache.disk.lock(key).path])
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    assert client.cache.disk.lock(key).path.exists()  # the file stays; the lock died with its owner
    began = time.monotonic()
    df = client.fetch(q(end="2024-01-31"))
    assert time.monotonic() - began < 5 and df.attrs["months"] == {"2024-01": "download"}


def test_a_lock_held_by_a_hung_process_delays_by_a_bounded_wait(api, make_client):
    client = make_client(api)
    client.lock_wait = 1.0
    assert client.cache.disk is not None
    key = CacheKey.of(client.source.cache_namespace, q(), Month(2024, 2))
    holder = _hold([client.cache.disk.lock(key).path])
    try:
        began = time.monotonic()
        df = client.fetch(q())
        took = time.monotonic() - began
    finally:
        holder.kill()
        holder.wait(10)
    assert 1.0 <= took < 6, took
    assert len(df) == 91 * 24 and set(df.attrs["months"].values()) == {"download"}
    assert api.counts["file"] == 3


def test_a_lock_that_cannot_be_taken_never_fails_a_fetch(api, make_client, monkeypatch):
    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    assert cache_module.fcntl is not None
    monkeypatch.setattr(cache_module.fcntl, "flock", no_locks)
    df = make_client(api).fetch(q())
    assert len(df) == 91 * 24


def test_a_month_lock_is_exclusive_across_descriptors(tmp_path):
    one, two = MonthLock(tmp_path / "m.lock"), MonthLock(tmp_path / "m.lock")
    assert one.try_acquire() and not two.try_acquire()
    one.release()
    assert two.try_acquire()
    two.release()


# -- 3: every month is checked against what was asked before it is cached -----------------


def test_a_file_holding_another_months_bars_is_refused_and_not_cached(make_client):
    def swapped(metric, exchange, symbol, interval, timestamp, year, month, day):
        if (year, month) == (2024, 2):
            return synthetic_table(metric, exchange, symbol, interval, timestamp, 2024, 3, day)
        return synthetic_table(metric, exchange, symbol, interval, timestamp, year, month, day)

    with FakeApi(swapped) as api:
        client = make_client(api)
        with pytest.raises(ServerError, match=r"the file (listed )?for 2024-02 holds bars (of|from) 2024-03") as caught:
            client.fetch(q())
        assert "\n" not in str(caught.value)
        assert "2024-02" not in set(client.cache.info()["month"])
        assert not month_path(client, "2024-02").exists()
        assert partial_files(client.cache.disk.root) == []  # what was written as it arrived is gone too


class WrongMonths:
    """A source that hands over March's bars as February: the core's own check, which
    holds for every source, refuses them."""

    name = "test"
    simulated = False
    label = "a test source"
    cache_namespace = "test"

    def check(self, query):
        pass

    def fetch_months(self, query, months, on_month):
        for month in months:
            shown = Month(2024, 3) if month == Month(2024, 2) else month
            table = synthetic_table(
                "flow", query.exchange, query.symbol, query.interval, query.timestamp, shown.year, shown.month
            )
            on_month(month, table, None)

    def close(self):
        pass


def test_the_core_refuses_a_month_from_any_source_whose_bars_lie_outside_it(tmp_path):
    with aperiodic_jupyter.Client(WrongMonths(), cache_dir=tmp_path, memory_cache=MemoryCache()) as client:
        with pytest.raises(ServerError) as caught:
            client.fetch(q())
        assert str(caught.value).startswith(
            "the file for 2024-02 holds bars of 2024-03 (744 of 744 bars lie outside 2024-02); it was not cached"
        )
        assert set(client.cache.info()["month"]) == {"2024-01"}  # the month before was good and is kept
        assert client.fetch(q(end="2024-01-31")).attrs["months"] == {"2024-01": "memory"}


def test_bars_outside_the_period_asked_are_named():
    jan = synthetic_table("flow", "binance-futures", "perpetual-BTC-USDT:USDT", "1h", "exchange", 2024, 1)
    assert jan is not None
    check_span(jan, date(2024, 1, 1), date(2024, 1, 31), "2024-01")
    with pytest.raises(ServerError, match=r"^the file for 2024-02 holds bars of 2024-01 \(744 of 744 bars"):
        check_span(jan, date(2024, 2, 1), date(2024, 2, 29), "2024-02")
    day = jan.slice(48, 24)  # 2024-01-03
    check_span(day, date(2024, 1, 3), date(2024, 1, 3), "2024-01-03")
    with pytest.raises(ServerError, match=r"^the file for 2024-01-02 holds bars of 2024-01-03 "):
        check_span(day, date(2024, 1, 2), date(2024, 1, 2), "2024-01-02")
    with pytest.raises(ServerError, match=r"holds bars of 2024-01-04 \(1 of 25 bars"):
        check_span(jan.slice(48, 25), date(2024, 1, 3), date(2024, 1, 3), "2024-01-03")


def test_an_empty_month_is_not_kept_for_good(make_client):
    state = {"broken": True}

    def flaky(metric, exchange, symbol, interval, timestamp, year, month, day):
        if state["broken"] and (year, month) == (2024, 2):
            return None  # the listing leaves February out: an empty month
        return synthetic_table(metric, exchange, symbol, interval, timestamp, year, month, day)

    with FakeApi(flaky) as api:
        client = make_client(api, ttl=0.5)
        df = client.fetch(q())
        assert len(df) == (31 + 31) * 24  # January and March
        assert not month_path(client, "2024-02").exists()  # never on disk
        assert client.cache.info().set_index("month").loc["2024-02", "complete"] == False  # noqa: E712

        state["broken"] = False  # the server is healthy again
        api._files.clear()  # (the loopback server remembers what it served)
        fresh = make_client(api, memory=MemoryCache())  # a new process: only the disk remembers
        healthy = fresh.fetch(q())
        assert len(healthy) == 91 * 24
        assert healthy.attrs["months"] == {"2024-01": "disk", "2024-02": "download", "2024-03": "disk"}

        time.sleep(0.6)  # the same kernel asks again after the short TTL
        later = client.fetch(q())
        assert len(later) == 91 * 24
        assert later.attrs["months"]["2024-02"] in ("disk", "download")


# -- months written to disk as they arrive --------------------------------------------------


def test_a_month_is_written_to_disk_as_it_arrives_and_moved_into_place_once_checked(api, make_client, monkeypatch):
    # February trickles in (32 KiB every 30 ms; written on in steps of 64 KiB here, 1 MiB
    # by default): while it does, a hidden partial file grows next to where the month
    # goes, and nothing is at that place yet.
    monkeypatch.setattr(api_source, "SINK_STEP", 65536)
    api.inject("file", trickle=(32768, 0.03), match="2024-02", times=1)
    client = make_client(api)
    place = month_path(client, "2024-02", interval="1m")
    seen: list[int] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            if place.parent.is_dir():
                sizes = [p.stat().st_size for p in place.parent.glob(".data.parquet.*.tmp") if p.exists()]
                if sizes and not place.exists():
                    seen.append(max(sizes))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        df = client.fetch(q(interval="1m"))
    finally:
        done.set()
        watcher.join()
    assert len(df) == 91 * 1440
    served = api.file_bytes(("flow", "binance-futures", "perpetual-BTC-USDT:USDT", "1m", "exchange", 2024, 2, None))
    assert len(set(seen)) >= 3 and max(seen) <= len(served), seen  # it grew while it arrived, then was checked
    assert place.read_bytes() == served
    assert DiskCache.sum_path(place).read_text("ascii").split() == ["sha256", hashlib.sha256(served).hexdigest()]
    assert partial_files(client.cache.disk.root) == []


def test_a_body_cut_short_leaves_no_file_no_partial_file_and_no_memory_entry(api, make_client):
    api.inject("file", truncate=True, match="2024-02", times=99)
    client = make_client(api, max_attempts=2)
    with pytest.raises(DownloadError, match=r"^file for 2024-02 could not be downloaded intact after 2 attempts"):
        client.fetch(q(interval="1m"))
    assert not month_path(client, "2024-02", interval="1m").exists()
    assert partial_files(client.cache.disk.root) == []
    assert in_memory(client) == {"2024-01", "2024-03"}  # the months that arrived whole are kept
    assert month_path(client, "2024-01", interval="1m").exists() and month_path(client, "2024-03", interval="1m").exists()


def test_a_body_that_is_not_parquet_is_retried_and_the_good_one_is_what_lands_on_disk(api, make_client):
    api.inject("file", corrupt=True, match="2024-01", times=1)
    client = make_client(api, max_attempts=3)
    client.fetch(q(end="2024-01-31"))
    served = api.file_bytes(("flow", "binance-futures", "perpetual-BTC-USDT:USDT", "1h", "exchange", 2024, 1, None))
    assert month_path(client, "2024-01").read_bytes() == served
    assert partial_files(client.cache.disk.root) == []


def test_a_folder_that_cannot_be_written_while_downloading_still_warns_once(api, make_client, tmp_path, monkeypatch):
    client = make_client(api, cache_dir=_unusable("read-only", tmp_path, monkeypatch))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = client.fetch(q(interval="1m"))
    assert len(df) == 91 * 1440 and len(_cache_warnings(caught)) == 1
    assert in_memory(client) == {"2024-01", "2024-02", "2024-03"}
