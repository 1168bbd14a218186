"""The month cache: a per-kernel memory cache (bounded by bytes) in front of a disk cache.

Keys are logical months — (source, metric, exchange, symbol, interval, timestamp,
year, month) — never URLs, which expire. A month fetched after it ended (plus a grace
period for late data) is *complete* and never fetched again; the current month expires
after ``ttl`` seconds.

On disk the cache is a Hive-partitioned Parquet dataset, one directory per source::

    <cache_dir>/<source>/metric=flow/exchange=binance-futures/
        symbol=perpetual-BTC-USDT%3AUSDT/interval=1h/timestamp=exchange/
        year=2024/month=01/data.parquet

so DuckDB, Polars, pyarrow or Spark can scan it directly (the ``:`` of Atlas symbols is
percent-encoded, which all of them decode). Writes go to a temporary file and are moved
into place with ``os.replace``; a file that does not read back as Parquet is deleted and
fetched again.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .query import Query
from .ranges import Month
from .settings import settings

__all__ = ["CacheKey", "MemoryCache", "DiskCache", "MonthCache", "default_cache_dir", "is_complete"]

#: Data for a month may still arrive for a while after it ends.
GRACE = timedelta(hours=6)


def default_cache_dir() -> Path:
    """``$APERIODIC_CACHE_DIR``, else the platform's user cache directory."""
    env = os.environ.get("APERIODIC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("aperiodic-jupyter", appauthor=False))


def is_complete(month: Month, fetched_at: float) -> bool:
    """A month fetched after its end (plus :data:`GRACE`) can never change again."""
    end = datetime(month.last_day.year, month.last_day.month, month.last_day.day, tzinfo=UTC)
    return datetime.fromtimestamp(fetched_at, UTC) >= end + timedelta(days=1) + GRACE


@dataclass(frozen=True)
class CacheKey:
    source: str
    metric: str
    exchange: str
    symbol: str
    interval: str
    timestamp: str
    month: Month

    @classmethod
    def of(cls, source: str, query: Query, month: Month) -> CacheKey:
        return cls(source, query.metric, query.exchange, query.symbol, query.interval, query.timestamp, month)

    def relpath(self) -> Path:
        return Path(
            self.source,
            f"metric={self.metric}",
            f"exchange={self.exchange}",
            f"symbol={quote(self.symbol, safe='')}",
            f"interval={self.interval}",
            f"timestamp={self.timestamp}",
            f"year={self.month.year:04d}",
            f"month={self.month.month:02d}",
            "data.parquet",
        )

    @classmethod
    def from_relpath(cls, rel: Path) -> CacheKey | None:
        parts = rel.parts
        if len(parts) != 9 or parts[-1] != "data.parquet":
            return None
        try:
            kv = dict(p.split("=", 1) for p in parts[1:8])
            return cls(
                parts[0],
                kv["metric"],
                kv["exchange"],
                unquote(kv["symbol"]),
                kv["interval"],
                kv["timestamp"],
                Month(int(kv["year"]), int(kv["month"])),
            )
        except (ValueError, KeyError):
            return None


@dataclass
class Entry:
    table: pa.Table
    fetched_at: float
    month: Month

    @property
    def complete(self) -> bool:
        return is_complete(self.month, self.fetched_at)

    def fresh(self, now: float, ttl: float) -> bool:
        return self.complete or now - self.fetched_at < ttl


class MemoryCache:
    """Thread-safe LRU of tables, bounded by their Arrow buffer size in bytes
    (``max_bytes``; else ``settings.memory_cache_bytes``)."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = int(settings.memory_cache_bytes if max_bytes is None else max_bytes)
        self._items: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: CacheKey) -> Entry | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def put(self, key: CacheKey, entry: Entry) -> None:
        size = entry.table.nbytes
        with self._lock:
            self._pop(key)
            if size > self.max_bytes:
                return
            self._items[key] = entry
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._pop(next(iter(self._items)))

    def discard(self, key: CacheKey) -> None:
        with self._lock:
            self._pop(key)

    def _pop(self, key: CacheKey) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.table.nbytes

    def keys(self) -> list[CacheKey]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


class DiskCache:
    """Months as Parquet files in a Hive-partitioned tree (see module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def path(self, key: CacheKey) -> Path:
        return self.root / key.relpath()

    def read(self, key: CacheKey) -> Entry | None:
        """The cached month, or ``None``. A file that is not valid Parquet is deleted."""
        path = self.path(key)
        try:
            fetched_at = path.stat().st_mtime
            table = pq.read_table(path)
        except FileNotFoundError:
            return None
        except (pa.ArrowException, OSError, ValueError):
            path.unlink(missing_ok=True)
            return None
        return Entry(table, fetched_at, key.month)

    def write(
        self, key: CacheKey, table: pa.Table, raw: bytes | bytearray | None = None, fetched_at: float | None = None
    ) -> None:
        """Atomically store a month: the original file bytes when given (already
        validated by the caller), else the table written as Parquet. The file's mtime
        records when the month was fetched (it decides whether the month is complete)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            if raw is not None:
                with open(tmp, "wb") as fh:
                    fh.write(raw)
            else:
                pq.write_table(table, tmp, compression="zstd")
            if fetched_at is not None:
                os.utime(tmp, (fetched_at, fetched_at))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def keys(self) -> Iterator[tuple[CacheKey, Path]]:
        if not self.root.is_dir():
            return
        for path in self.root.rglob("data.parquet"):
            key = CacheKey.from_relpath(path.relative_to(self.root))
            if key is not None:
                yield key, path


class MonthCache:
    """Memory in front of disk, with the freshness rule of :func:`is_complete`; a month
    that is not complete stays fresh for ``ttl`` seconds (else ``settings.ttl``)."""

    def __init__(
        self,
        memory: MemoryCache | None = None,
        disk: DiskCache | None = None,
        ttl: float | None = None,
    ) -> None:
        self.memory = memory if memory is not None else MemoryCache()
        self.disk = disk
        self.ttl = settings.ttl if ttl is None else ttl

    def get(self, key: CacheKey, now: float | None = None) -> tuple[pa.Table, str] | None:
        """``(table, "memory" | "disk")`` for a fresh cached month, else ``None``."""
        now = time.time() if now is None else now
        entry = self.memory.get(key)
        if entry is not None:
            if entry.fresh(now, self.ttl):
                return entry.table, "memory"
            self.memory.discard(key)
        if self.disk is not None:
            entry = self.disk.read(key)
            if entry is not None and entry.fresh(now, self.ttl):
                self.memory.put(key, entry)
                return entry.table, "disk"
        return None

    def put(self, key: CacheKey, table: pa.Table, raw: bytes | bytearray | None = None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.memory.put(key, Entry(table, now, key.month))
        if self.disk is not None:
            self.disk.write(key, table, raw, fetched_at=now)

    def info(self) -> pd.DataFrame:
        """One row per cached month: where it is, its size, and whether it is complete."""
        rows: dict[CacheKey, dict[str, object]] = {}
        if self.disk is not None:
            for key, path in self.disk.keys():
                st = path.stat()
                try:
                    n = pq.read_metadata(path).num_rows
                except (pa.ArrowException, OSError):
                    n = -1
                rows[key] = {
                    "rows": n,
                    "disk_bytes": st.st_size,
                    "complete": is_complete(key.month, st.st_mtime),
                    "path": str(path),
                }
        for key in self.memory.keys():
            entry = self.memory.get(key)
            if entry is None:
                continue
            row = rows.setdefault(key, {"rows": entry.table.num_rows, "disk_bytes": 0, "complete": entry.complete, "path": None})
            row["memory_bytes"] = entry.table.nbytes
        records = [
            {
                "source": k.source,
                "metric": k.metric,
                "exchange": k.exchange,
                "symbol": k.symbol,
                "interval": k.interval,
                "timestamp": k.timestamp,
                "month": str(k.month),
                "rows": v["rows"],
                "memory_bytes": v.get("memory_bytes", 0),
                "disk_bytes": v["disk_bytes"],
                "complete": v["complete"],
                "path": v["path"],
            }
            for k, v in sorted(rows.items(), key=lambda kv: str(kv[0]))
        ]
        columns = [
            "source",
            "metric",
            "exchange",
            "symbol",
            "interval",
            "timestamp",
            "month",
            "rows",
            "memory_bytes",
            "disk_bytes",
            "complete",
            "path",
        ]
        return pd.DataFrame.from_records(records, columns=columns)

    def clear(self, **match: str) -> int:
        """Remove cached months whose key fields equal ``match`` (e.g. ``exchange=...``,
        ``symbol=...``, ``source="demo"``); all of them when no filter is given.
        Returns how many months were removed."""
        bad = set(match) - {"source", "metric", "exchange", "symbol", "interval", "timestamp"}
        if bad:
            raise TypeError(f"unknown cache filter {sorted(bad)}")

        def hit(k: CacheKey) -> bool:
            return all(getattr(k, f) == v for f, v in match.items())

        removed: set[CacheKey] = set()
        for key in self.memory.keys():
            if hit(key):
                self.memory.discard(key)
                removed.add(key)
        if self.disk is not None:
            for key, path in list(self.disk.keys()):
                if hit(key):
                    path.unlink(missing_ok=True)
                    removed.add(key)
        return len(removed)
