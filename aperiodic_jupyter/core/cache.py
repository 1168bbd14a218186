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
percent-encoded, which all of them decode).

Next to each ``data.parquet`` sit two hidden files, which ``**/*.parquet`` globs and
pyarrow's datasets (which skip names starting with ``.``) never read:

- ``.data.parquet.b2``: the checksum of the file's bytes, its algorithm named first
  (``sha256 <hex>``; caches written by earlier versions hold ``blake2b-256 <hex>``,
  still verified, hence the name), written (atomically) before the file is moved into
  place with ``os.replace``. A read verifies it: a file
  whose bytes do not match (a flipped bit, a truncated copy, a file without checksum)
  is deleted and counts as a miss, so the month is fetched again.
- ``.data.parquet.lock``: an advisory ``flock`` held while a month downloads, so a
  second process fetching the same month waits for the first and reads its file. The
  kernel releases it when its process dies; a wait is bounded; a lock that cannot be
  taken never fails a fetch (the month is downloaded, as without a lock).

A downloading file is written to a hidden temporary file next to its place as it
arrives (:class:`Spool`), with its checksum computed on the way; once the file has
passed every check it is moved into place, so caching costs no time after the download.
A file that fails a check, is cut short or is cancelled is deleted, never moved.

An empty month is never written: a listing that (wrongly) names no file for a month
must not hide that month's data for good. In memory it stays fresh for ``ttl`` only.

In memory each month is kept as :class:`~.parquet.MonthData`: the file's bytes when they
are smaller than the decoded table (1-minute bars: about 0.7×), else the table.

A folder that cannot be used (read-only, ``APERIODIC_CACHE_DIR`` naming a file) never
fails a fetch: months stay in memory, and one :class:`CacheWarning` per folder says so.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .parquet import MonthData
from .query import Query
from .ranges import Month
from .settings import settings

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, months may download twice
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CacheKey",
    "CacheWarning",
    "MemoryCache",
    "DiskCache",
    "MonthCache",
    "MonthLock",
    "Spool",
    "default_cache_dir",
    "is_complete",
]

#: Data for a month may still arrive for a while after it ends.
GRACE = timedelta(hours=6)

#: Written into a month's checksum file, before the hex digest. SHA-256 runs at about
#: 1.5 GB/s where the CPU has SHA instructions (most x86 and ARM CPUs since 2017),
#: BLAKE2b at about 0.6 GB/s.
_ALGO = "sha256"
#: Checksums a read accepts: what this version writes, and what earlier ones wrote.
_ALGOS: dict[str, Callable[[], Any]] = {"sha256": hashlib.sha256, "blake2b-256": lambda: hashlib.blake2b(digest_size=32)}


class CacheWarning(UserWarning):
    """The disk cache folder cannot be used; months are kept in memory only."""


_warned_lock = threading.Lock()
_warned: set[str] = set()


def warn_unusable(root: Path, exc: OSError) -> None:
    """One warning line per folder per process: the folder cannot be used, and why."""
    where = str(root)
    with _warned_lock:
        if where in _warned:
            return
        _warned.add(where)
    reason = exc.strerror or type(exc).__name__
    warnings.warn(
        f"the cache folder {where} cannot be used ({reason}); months are kept in memory only. "
        "Set APERIODIC_CACHE_DIR or %config Aperiodic.cache_dir to a writable folder ('' for no disk cache)",
        CacheWarning,
        stacklevel=_caller_level(),
    )


#: Frames a warning is never attributed to: this package, and the machinery between a
#: user's cell and a magic.
_INNER = ("aperiodic_jupyter", "IPython", "ipykernel", "traitlets", "decorator", "threading", "concurrent", "asyncio")


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame in the user's code (a script's line, a
    cell's ``%flow`` line), so the warning points there instead of into this package."""
    level, frame = 2, sys._getframe(2)
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in _INNER:
        frame, level = frame.f_back, level + 1
    return level


def _digest(data: bytes | bytearray | memoryview | pa.Buffer, algo: str = _ALGO) -> str:
    h = _ALGOS[algo]()
    h.update(data)
    return str(h.hexdigest())


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
    data: MonthData
    fetched_at: float
    month: Month
    #: False for an answer that is not trusted for good (an empty month): it stays
    #: fresh for ``ttl`` only, however old the month is.
    final: bool = True

    @property
    def complete(self) -> bool:
        return self.final and is_complete(self.month, self.fetched_at)

    def fresh(self, now: float, ttl: float) -> bool:
        return self.complete or now - self.fetched_at < ttl


class MemoryCache:
    """Thread-safe LRU of months, bounded by the bytes they hold (file bytes or Arrow
    buffers, see :class:`~.parquet.MonthData`; ``max_bytes``, else
    ``settings.memory_cache_bytes``)."""

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
        size = entry.data.nbytes
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
            self._bytes -= old.data.nbytes

    def keys(self) -> list[CacheKey]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


class MonthLock:
    """A month's advisory lock in the disk cache: ``fcntl.flock`` on a hidden lock file,
    so the kernel releases it when the holding process dies (a killed process never
    leaves a lock that blocks). Within one process, threads coordinate without it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free: ``True`` when held now, ``False`` while another
        process holds it. Raises ``OSError`` when the lock cannot be used at all (no
        ``fcntl``, an unusable folder, a file system without locks)."""
        if fcntl is None:
            raise OSError("no file locks on this platform")
        if self.held:
            return True
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:
            self.release()
            raise
        self.held = True
        try:  # who holds it, for a person looking at the folder; never needed to unlock
            os.ftruncate(self._fd, 0)
            os.write(self._fd, f"{os.getpid()} {time.time():.0f}\n".encode())
        except OSError:
            pass
        return True

    def release(self) -> None:
        fd, self._fd, self.held = self._fd, None, False
        if fd is None:
            return
        try:
            os.close(fd)  # closing the last descriptor releases the flock
        except OSError:
            pass


class DiskCache:
    """Months as Parquet files in a Hive-partitioned tree (see module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def path(self, key: CacheKey) -> Path:
        return self.root / key.relpath()

    @staticmethod
    def sum_path(path: Path) -> Path:
        """The hidden checksum file of a month's file."""
        return path.with_name(f".{path.name}.b2")

    def lock(self, key: CacheKey) -> MonthLock:
        path = self.path(key)
        return MonthLock(path.with_name(f".{path.name}.lock"))

    def read(self, key: CacheKey) -> Entry | None:
        """The cached month (its file's bytes), or ``None``. A file whose bytes do not
        match its recorded checksum, whose footer is not valid Parquet, or that holds no
        rows is deleted. A folder that cannot be read is a miss. (A file is written only
        after it decoded whole, and the checksum proves these are the same bytes.)"""
        path = self.path(key)
        for _ in range(2):  # a second look when the file was replaced while being read
            try:
                with open(path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    raw = fh.read()
            except OSError:  # missing, a file where a folder should be, no permission
                return None
            recorded = self._recorded(path)
            if recorded is not None and recorded[1] == _digest(raw, recorded[0]):
                break
            if not self._same(path, st):
                continue
            self._discard(path, st)
            return None
        else:
            return None
        try:
            data = MonthData.of_file(raw)
        except (pa.ArrowException, OSError, ValueError):
            self._discard(path, st)
            return None
        if data.num_rows == 0:  # older versions cached empty months for good
            self._discard(path, st)
            return None
        return Entry(data, st.st_mtime, key.month)

    def _recorded(self, path: Path) -> tuple[str, str] | None:
        """(algorithm, hex digest) from a month's checksum file."""
        try:
            text = self.sum_path(path).read_text("ascii").split()
        except (OSError, ValueError):
            return None
        return (text[0], text[1]) if len(text) == 2 and text[0] in _ALGOS else None

    @staticmethod
    def _same(path: Path, st: os.stat_result) -> bool:
        try:
            now = path.stat()
        except OSError:
            return False
        return (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)

    def _discard(self, path: Path, st: os.stat_result) -> None:
        """Delete a bad file, unless another writer has replaced it meanwhile. Its
        checksum file stays: the next write replaces it."""
        if self._same(path, st):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass

    def write(
        self, key: CacheKey, table: pa.Table, raw: bytes | bytearray | None = None, fetched_at: float | None = None
    ) -> None:
        """Atomically store a month: the original file bytes when given (already
        validated by the caller), else the table written as Parquet. Its checksum is in
        place before the file is. The file's mtime records when the month was fetched
        (it decides whether the month is complete). Raises ``OSError`` when the folder
        cannot be written."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data: bytes | bytearray | pa.Buffer
        if raw is not None:
            data = raw
        else:
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            data = sink.getvalue()
        tmp = _temporary(path)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            self._place(tmp, path, _digest(data), fetched_at)
        finally:
            _unlink(tmp)

    def _place(self, tmp: Path, path: Path, digest: str, fetched_at: float | None) -> None:
        """Move a fully written temporary file into place, its checksum first."""
        if fetched_at is not None:
            os.utime(tmp, (fetched_at, fetched_at))
        sums = self.sum_path(path)
        tmp_sums = _temporary(sums)
        try:
            tmp_sums.write_text(f"{_ALGO} {digest}\n", "ascii")
            os.replace(tmp_sums, sums)
            os.replace(tmp, path)
        finally:
            _unlink(tmp_sums)

    def spool(self, key: CacheKey) -> Spool | None:
        """A temporary file to write the month to while it downloads (see
        :class:`Spool`), or ``None`` when the folder cannot be written (the month is
        then written, or warned about, once it is complete)."""
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return Spool(self, path)
        except OSError:
            return None

    def remove(self, path: Path) -> None:
        for p in (path, self.sum_path(path)):
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass

    def keys(self) -> Iterator[tuple[CacheKey, Path]]:
        try:
            if not self.root.is_dir():
                return
            for path in self.root.rglob("data.parquet"):
                key = CacheKey.from_relpath(path.relative_to(self.root))
                if key is not None:
                    yield key, path
        except OSError:
            return


def _temporary(path: Path) -> Path:
    """A hidden name next to ``path`` that no reader of the tree looks at."""
    name = path.name if path.name.startswith(".") else f".{path.name}"
    return path.with_name(f"{name}.{uuid.uuid4().hex}.tmp")


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


class Spool:
    """A month's file written to disk while it downloads, so that caching it costs no
    time once it has arrived.

    The downloader calls :meth:`restart` when a body starts (each attempt starts over)
    and :meth:`write` for each piece; the checksum is computed on the way.
    :meth:`commit` moves the file into place, checksum first, only when it holds
    exactly the bytes the caller checked (same length: the pieces were written as they
    were read into the checked buffer); :meth:`abort` deletes it, and nothing is
    written after it, even by a download still running. A spool that cannot be
    written (disk full) gives up quietly: the month is then written whole at commit
    time, or not at all."""

    def __init__(self, disk: DiskCache, path: Path) -> None:
        self._disk = disk
        self.path = path
        self._tmp = _temporary(path)
        self._lock = threading.Lock()  # a download thread writes, the fetching thread commits or aborts
        self._fh: Any = None
        self._hash: Any = None
        self.size = 0
        self.failed: OSError | None = None
        self.closed = False

    def restart(self) -> None:
        """A body starts (again): forget what was written."""
        with self._lock:
            if self.closed or self.failed is not None:
                return
            try:
                if self._fh is None:
                    self._fh = open(self._tmp, "wb")  # noqa: SIM115 - open across calls, closed by commit/abort
                else:
                    self._fh.seek(0)
                    self._fh.truncate()
            except OSError as exc:
                self._fail(exc)
                return
            self._hash = _ALGOS[_ALGO]()
            self.size = 0

    def write(self, piece: bytes | bytearray | memoryview) -> None:
        with self._lock:
            if self.closed or self._fh is None or self.failed is not None:
                return
            try:
                self._fh.write(piece)
            except OSError as exc:
                self._fail(exc)
                return
            self._hash.update(piece)
            self.size += len(piece)

    def commit(self, size: int, fetched_at: float | None = None) -> bool:
        """Move the file into place if it holds ``size`` bytes; ``False`` (and nothing
        written) otherwise. Raises ``OSError`` when the folder refuses the move."""
        with self._lock:
            if self.closed or self.failed is not None or self._fh is None or self.size != size:
                self._close()
                return False
            self.closed = True
            try:
                self._fh.close()
                self._disk._place(self._tmp, self.path, self._hash.hexdigest(), fetched_at)
            finally:
                _unlink(self._tmp)
            return True

    def abort(self) -> None:
        """Delete the temporary file (safe to call at any time, and twice)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        self.closed = True
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None
        _unlink(self._tmp)

    def _fail(self, exc: OSError) -> None:
        self.failed = exc  # commit then says False: the month is written whole, or warned about
        self._close()


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

    def find(self, key: CacheKey, now: float | None = None) -> tuple[MonthData, str] | None:
        """``(month, "memory" | "disk")`` for a fresh cached month, else ``None``; the
        month as kept (file bytes or table, see :class:`~.parquet.MonthData`)."""
        now = time.time() if now is None else now
        entry = self.memory.get(key)
        if entry is not None:
            if entry.fresh(now, self.ttl):
                return entry.data, "memory"
            self.memory.discard(key)
        if self.disk is not None:
            entry = self.disk.read(key)
            if entry is not None and entry.fresh(now, self.ttl):
                entry.data = entry.data.smaller()
                self.memory.put(key, entry)
                return entry.data, "disk"
        return None

    def get(self, key: CacheKey, now: float | None = None) -> tuple[pa.Table, str] | None:
        """``(table, "memory" | "disk")`` for a fresh cached month, else ``None`` (a
        month kept as file bytes is decoded)."""
        hit = self.find(key, now)
        return (hit[0].table(), hit[1]) if hit is not None else None

    def put(
        self,
        key: CacheKey,
        table: pa.Table,
        raw: bytes | bytearray | None = None,
        now: float | None = None,
        *,
        spool: Spool | None = None,
        as_file: bool = False,
    ) -> MonthData:
        """Keep a month that passed every check: ``table``, and ``raw``, the file's bytes
        it was decoded from, when it came as one file (written to disk as they are;
        ``spool``: those bytes already written while they arrived). Returns the month as
        kept. An empty month goes to memory only and stays fresh for ``ttl``: an empty
        answer is never trusted for good. A disk that cannot be written leaves the month
        in memory, with one :class:`CacheWarning` per folder. ``as_file``: keep the
        month as ``raw`` whatever ``table`` is (a file decoded straight into a frame
        hands over its schema only, without rows)."""
        now = time.time() if now is None else now
        data = MonthData.of_file(raw) if as_file and raw is not None else MonthData.kept(table, raw)
        final = data.num_rows > 0
        self.memory.put(key, Entry(data, now, key.month, final))
        if self.disk is not None and final:
            try:
                if spool is None or raw is None or not spool.commit(len(raw), now):
                    self.disk.write(key, table, raw, fetched_at=now)
            except OSError as exc:
                warn_unusable(self.disk.root, exc)
        elif spool is not None:
            spool.abort()
        return data

    def lock(self, key: CacheKey) -> MonthLock | None:
        """The month's cross-process lock, or ``None`` without a disk cache."""
        return self.disk.lock(key) if self.disk is not None else None

    def info(self) -> pd.DataFrame:
        """One row per cached month: where it is, its size, and whether it is complete."""
        rows: dict[CacheKey, dict[str, object]] = {}
        if self.disk is not None:
            for key, path in self.disk.keys():
                try:
                    st = path.stat()
                except OSError:
                    continue
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
            row = rows.setdefault(key, {"rows": entry.data.num_rows, "disk_bytes": 0, "complete": entry.complete, "path": None})
            row["memory_bytes"] = entry.data.nbytes
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
                    self.disk.remove(path)
                    removed.add(key)
        return len(removed)
