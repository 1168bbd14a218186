"""Checks every downloaded file passes before it is cached: it decodes, and its bars lie
inside the period it was asked for."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import ServerError
from .frame import normalize_time
from .schema import TIME

__all__ = ["read_parquet_bytes", "check_span"]


def read_parquet_bytes(raw: bytes | bytearray | pa.Buffer) -> pa.Table:
    """Parse and fully decode a downloaded file; raises on truncation or corruption."""
    return pq.read_table(pa.BufferReader(raw))  # reads the bytes in place, no copy


def check_span(table: pa.Table, first: date, last: date, label: str) -> None:
    """Raise :class:`ServerError` unless every bar of ``table`` starts inside the UTC days
    ``[first, last]``: a file served for the wrong month (or day) is never cached under
    the one asked for. ``label`` names what was asked (``2024-02`` or ``2024-02-03``);
    the message names the period the stray bars belong to, in the same form. Tables
    without a ``time`` column or without rows pass."""
    if TIME not in table.column_names or table.num_rows == 0:
        return
    try:
        times = normalize_time(table.select([TIME])).column(TIME).cast(pa.int64())
    except (pa.ArrowException, ValueError):
        return  # an odd time column is the schema check's business, not this one's
    bounds = pc.min_max(times)
    lo_ns, hi_ns = bounds["min"].as_py(), bounds["max"].as_py()
    if lo_ns is None:
        return
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    stop = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    start_ns, stop_ns = _ns(start), _ns(stop)
    if lo_ns >= start_ns and hi_ns < stop_ns:
        return
    stray = lo_ns if lo_ns < start_ns else hi_ns
    when = datetime.fromtimestamp(stray // 1_000_000_000, UTC)
    outside = pc.sum(pc.or_(pc.less(times, start_ns), pc.greater_equal(times, stop_ns)).cast(pa.int64())).as_py()
    period = when.strftime("%Y-%m-%d" if len(label) > 7 else "%Y-%m")
    raise ServerError(
        f"the file for {label} holds bars of {period} ({outside} of {table.num_rows} bars lie outside {label}); it was not cached"
    )


def _ns(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000_000
