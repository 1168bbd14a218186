"""The benchmark's monthly files: the demo source's months, written as the server writes them."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from aperiodic_jupyter import make_query
from aperiodic_jupyter.core.ranges import Month
from aperiodic_jupyter.core.sources.demo import DemoSource

_demo = DemoSource()
_bytes: dict[tuple, bytes] = {}


def demo_month(
    metric: str, exchange: str, symbol: str, interval: str, timestamp: str, year: int, month: int, day: int | None = None
) -> pa.Table:
    q = make_query(exchange, symbol, interval, f"{year}-{month:02d}", timestamp=timestamp)
    return _demo.month_table(q, Month(year, month))


def month_bytes(symbol: str, interval: str, year: int, month: int) -> bytes:
    """The same bytes the server sends for that month (same table, same writer)."""
    key = (symbol, interval, year, month)
    if key not in _bytes:
        buf = io.BytesIO()
        pq.write_table(demo_month("flow", "binance-futures", symbol, interval, "exchange", year, month), buf)
        _bytes[key] = buf.getvalue()
    return _bytes[key]
