"""The month cache on its own: byte budget, freshness, atomic and validated disk files."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from aperiodic_jupyter.core.cache import CacheKey, DiskCache, Entry, MemoryCache, MonthCache, is_complete
from aperiodic_jupyter.core.parquet import MonthData
from aperiodic_jupyter.core.ranges import Month


def key(month: int, year: int = 2024) -> CacheKey:
    return CacheKey("demo", "flow", "binance-futures", "perpetual-BTC-USDT:USDT", "1h", "exchange", Month(year, month))


def table(rows: int) -> pa.Table:
    return pa.table({"x": pa.array(range(rows), type=pa.int64())})  # 8 bytes a row


def test_memory_cache_is_bounded_by_bytes_and_evicts_least_recently_used():
    mem = MemoryCache(max_bytes=8 * 300)
    for m in (1, 2, 3):
        mem.put(key(m), Entry(MonthData.of_table(table(100)), time.time(), Month(2024, m)))
    assert mem.nbytes == 2400
    mem.get(key(1))  # January is used again, so February is the oldest now
    mem.put(key(4), Entry(MonthData.of_table(table(100)), time.time(), Month(2024, 4)))
    assert set(mem.keys()) == {key(1), key(3), key(4)}
    assert mem.nbytes <= mem.max_bytes
    mem.put(key(5), Entry(MonthData.of_table(table(1000)), time.time(), Month(2024, 5)))  # larger than the budget: not kept
    assert key(5) not in mem.keys()


def test_a_finished_month_is_complete_the_current_one_is_not():
    jan = Month(2024, 1)
    assert is_complete(jan, datetime(2024, 2, 2, tzinfo=UTC).timestamp())
    assert not is_complete(jan, datetime(2024, 1, 31, 12, tzinfo=UTC).timestamp())
    assert not is_complete(jan, datetime(2024, 2, 1, 3, tzinfo=UTC).timestamp())  # inside the grace period


def test_current_month_entries_expire_after_the_ttl(tmp_path):
    cache = MonthCache(MemoryCache(), DiskCache(tmp_path), ttl=60)
    now = datetime(2024, 1, 15, tzinfo=UTC).timestamp()
    cache.put(key(1), table(10), now=now)
    assert cache.get(key(1), now=now + 30) is not None
    assert cache.get(key(1), now=now + 61) is None


def test_disk_writes_leave_no_temporary_files_and_bad_files_are_dropped(tmp_path):
    disk = DiskCache(tmp_path)
    disk.write(key(1), table(10))
    path = disk.path(key(1))
    assert sorted(p.name for p in path.parent.iterdir()) == [".data.parquet.b2", "data.parquet"]  # file + checksum
    path.write_bytes(b"PAR1 garbage")
    assert disk.read(key(1)) is None
    assert not path.exists()


def test_cache_paths_round_trip_through_the_hive_layout(tmp_path):
    disk = DiskCache(tmp_path)
    disk.write(key(7), table(1))
    (found,) = list(disk.keys())
    assert found[0] == key(7)
    assert "symbol=perpetual-BTC-USDT%3AUSDT" in str(found[1])


def test_clear_rejects_unknown_filters(tmp_path):
    with pytest.raises(TypeError, match="unknown cache filter"):
        MonthCache(MemoryCache(), DiskCache(tmp_path)).clear(colour="red")
