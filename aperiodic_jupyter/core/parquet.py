"""Monthly Parquet files: the check every downloaded file passes before it is cached,
and :class:`MonthData`, one month as the core carries and caches it.

A checked month is kept in the smaller of two forms: the file's bytes exactly as they
arrived (a month of 1-minute flow bars: about 0.7× its decoded table), decoded again
when a frame is built from it (about a millisecond per megabyte); or its table, for a
month whose file is mostly metadata (a month of hourly bars decodes to less than its
file) and for a month that came without a file (the demo's simulated months, a month
stitched from daily files, an empty month).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import ServerError
from .frame import normalize_time
from .schema import TIME

__all__ = ["DECODES", "MonthData", "read_parquet_bytes", "check_span", "time_bounds"]

#: Downloaded files of one fetch decoded and not yet handed over at once, however many
#: downloads finish together: each holds a decoded month and its scratch memory, and
#: Arrow's own threads (one per core) do the work of all of them anyway.
DECODES = max(1, min(4, os.cpu_count() or 1))


#: Below this size (bytes) a cached file is decoded when read, to keep whichever form
#: of the month is smaller (see :meth:`MonthData.smaller`).
SMALL_FILE = 1 << 20


def read_parquet_bytes(
    raw: bytes | bytearray | memoryview | pa.Buffer, columns: list[str] | None = None, *, threads: bool = True
) -> pa.Table:
    """Parse and fully decode a downloaded file (or only ``columns`` of it); raises on
    truncation or corruption. ``threads``: decode columns in parallel (Arrow's pool);
    off when the caller runs several decodes at once."""
    # The bytes are read in place (no copy); ParquetFile skips the dataset machinery
    # of read_table, about a millisecond per call.
    return pq.ParquetFile(pa.BufferReader(raw)).read(columns=columns, use_threads=threads)


class MonthData:
    """One month's bars: the Parquet bytes it came as, or its table.

    Attributes:
        raw: the file's bytes (``None`` for a month kept as a table).
        num_rows: bars in the month.
        schema: the month's Arrow schema (from the file's footer for bytes).
        nbytes: memory held, in bytes: the file's size, or the size of the table's
            buffers (whole buffers, also where the table is a slice of them).
    """

    __slots__ = ("raw", "_table", "num_rows", "schema", "nbytes", "_normal")

    def __init__(self, raw: bytes | bytearray | None, table: pa.Table | None, num_rows: int, schema: pa.Schema) -> None:
        self.raw = raw
        self._table = table
        self.num_rows = num_rows
        self.schema = schema
        self.nbytes = len(raw) if raw is not None else (table.get_total_buffer_size() if table is not None else 0)
        self._normal: tuple[pa.Table, np.ndarray | None] | None = None

    @classmethod
    def of_table(cls, table: pa.Table) -> MonthData:
        return cls(None, table, table.num_rows, table.schema)

    @classmethod
    def of_file(cls, raw: bytes | bytearray, checked: pa.Table | None = None) -> MonthData:
        """A month kept as its file's bytes. ``checked``: the table those bytes were
        decoded to (rows and schema are taken from it); else the footer is read, which
        raises on bytes that are not Parquet."""
        if checked is not None:
            return cls(raw, None, checked.num_rows, checked.schema)
        meta = pq.ParquetFile(pa.BufferReader(raw)).metadata
        return cls(raw, None, meta.num_rows, meta.schema.to_arrow_schema())

    @classmethod
    def kept(cls, table: pa.Table, raw: bytes | bytearray | None) -> MonthData:
        """A checked month in the smaller of its two forms: the file's bytes (``raw``,
        the bytes ``table`` was decoded from) when they are smaller than the table, else
        the table (small files are mostly metadata: a month of hourly bars decodes to
        less than its file)."""
        if raw is not None and len(raw) < table.get_total_buffer_size():
            return cls.of_file(raw, checked=table)
        return cls.of_table(table)

    def smaller(self) -> MonthData:
        """This month in its smaller form: a file under :data:`SMALL_FILE` bytes is
        decoded to compare (about a millisecond); a larger one is assumed to compress,
        as monthly files of minute bars do."""
        if self.raw is None or len(self.raw) >= SMALL_FILE:
            return self
        return MonthData.kept(self.table(threads=False), self.raw)

    def table(self, *, threads: bool = True) -> pa.Table:
        """The month decoded (the table itself for a month kept as one)."""
        if self._table is not None:
            return self._table
        assert self.raw is not None
        return read_parquet_bytes(self.raw, threads=threads)

    def normal(self) -> tuple[pa.Table, np.ndarray | None]:
        """A month kept as a table, ``time`` as tz-aware UTC ns (:func:`.frame.normalize_time`),
        and its bar starts as int64 ns (``None`` when they are out of order or the table
        has no such ``time``): worked out once, as a warm call from memory needs them
        each time."""
        if self._normal is None:
            assert self._table is not None
            table = normalize_time(self._table)
            stamps = None
            if TIME in table.column_names and pa.types.is_timestamp(table.column(TIME).type):
                ns = table.column(TIME).combine_chunks().cast(pa.int64()).to_numpy()
                stamps = ns if len(ns) < 2 or bool((ns[1:] >= ns[:-1]).all()) else None
            self._normal = (table, stamps)
        return self._normal

    def column(self, name: str) -> pa.ChunkedArray:
        """One column, decoding only that column of a file."""
        if self._table is not None:
            return self._table.column(name)
        assert self.raw is not None
        return read_parquet_bytes(self.raw, [name]).column(0)

    def __repr__(self) -> str:
        kind = "file" if self.raw is not None else "table"
        return f"MonthData({kind}, rows={self.num_rows}, nbytes={self.nbytes})"


def time_bounds(table: pa.Table) -> tuple[int, int] | None:
    """The first and last bar start of a table, as nanoseconds since the epoch (UTC; a
    naive ``time`` means UTC), or ``None`` without a timestamp ``time`` or without bars."""
    if TIME not in table.column_names or table.num_rows == 0:
        return None
    column = table.column(TIME)
    if not pa.types.is_timestamp(column.type):
        return None
    bounds = pc.min_max(column)  # Arrow keeps tz-aware times as UTC: no cast needed
    if not bounds["min"].is_valid:
        return None
    scale = _PER_UNIT[column.type.unit]
    return bounds["min"].value * scale, bounds["max"].value * scale


_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def check_span(table: pa.Table, first: date, last: date, label: str) -> None:
    """Raise :class:`ServerError` unless every bar of ``table`` starts inside the UTC days
    ``[first, last]``: a file served for the wrong month (or day) is never cached under
    the one asked for. ``label`` names what was asked (``2024-02`` or ``2024-02-03``);
    the message names the period the stray bars belong to, in the same form. Tables
    without a ``time`` column or without rows pass."""
    bounds = time_bounds(table)
    if bounds is None:
        return  # no bars, or an odd time column: the schema check's business, not this one's
    lo_ns, hi_ns = bounds
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    stop = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    start_ns, stop_ns = _ns(start), _ns(stop)
    if lo_ns >= start_ns and hi_ns < stop_ns:
        return
    times = normalize_time(table.select([TIME])).column(TIME).cast(pa.int64())
    stray = lo_ns if lo_ns < start_ns else hi_ns
    when = datetime.fromtimestamp(stray // 1_000_000_000, UTC)
    outside = pc.sum(pc.or_(pc.less(times, start_ns), pc.greater_equal(times, stop_ns)).cast(pa.int64())).as_py()
    period = when.strftime("%Y-%m-%d" if len(label) > 7 else "%Y-%m")
    raise ServerError(
        f"the file for {label} holds bars of {period} ({outside} of {table.num_rows} bars lie outside {label}); it was not cached"
    )


def _ns(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000_000
