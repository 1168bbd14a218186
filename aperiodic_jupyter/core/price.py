"""Price next to flow: open, high, low and close joined onto a flow table by bar start.

Flow and OHLCV files of the same exchange, symbol, interval and timestamp source share
bar starts, but a bar with no trades may be missing from either; the join keeps every
bar of both (an outer join on ``time``, sorted by it), with nulls where one side has
none. The join is done once, in Arrow, for every output: pandas sees the nulls as NaN
(an integer column with a null becomes float64, as a pandas merge makes it), Polars and
Arrow keep them as nulls in the column's own type. When the price cannot be had, the
flow is returned whole and the provenance's ``price`` record says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .frame import normalize_time
from .schema import PRICE_COLUMNS, TIME

__all__ = ["join_price", "price_status"]

_UTC_NS = pa.timestamp("ns", tz="UTC")


def join_price(
    flow: pa.Table, price: pa.Table | None, *, source: str | None = None, error: str | None = None
) -> tuple[pa.Table, dict[str, Any]]:
    """``flow`` with ``open high low close`` (quote per base) joined on ``time``, and the
    record that goes into the provenance as ``price``.

    Args:
        flow: a flow table (``time`` column, as :func:`.frame.assemble` leaves it).
        price: the OHLCV table of the same query, or ``None`` when it failed.
        source: the source the price came from (recorded).
        error: why the price is missing (one line), recorded when ``price`` is ``None``.

    Returns:
        The table (flow columns first, then the price columns the OHLCV table has) and
        ``{"joined": True, "bars": n, "source": ..., "missing_price": n}`` or
        ``{"joined": False, "error": "..."}``.
    """
    if price is None:
        return flow, {"joined": False, "error": error or "no price data"}
    flow, price = normalize_time(flow), normalize_time(price)
    keep = [c for c in PRICE_COLUMNS if c in price.column_names]
    out = _outer_join_on_time(flow, price.select([TIME, *keep]), keep)
    close = PRICE_COLUMNS[-1]
    missing = _count_missing(out.column(close)) if close in keep else out.num_rows
    return out, {"joined": True, "bars": price.num_rows, "source": source, "missing_price": missing}


def _outer_join_on_time(flow: pa.Table, price: pa.Table, keep: list[str]) -> pa.Table:
    flow_t, price_t = _ns(flow), _ns(price)
    if np.array_equal(flow_t, price_t):
        # The usual case: the same bar starts on both sides. The price columns are
        # appended as they are, so no column is copied (Polars and Arrow stay zero-copy).
        for name in keep:
            flow = flow.append_column(name, price.column(name))
        return flow
    if _increasing(flow_t) and _increasing(price_t):
        # Both sorted with unique bar starts (as assembled): place each side on the
        # union of bar starts. A side that has every bar is kept as it is (no copy);
        # the other is gathered with nulls where it has no bar.
        times = _union(flow_t, price_t)
        out = _spread(flow, flow_t, times)
        out = out.set_column(out.column_names.index(TIME), TIME, pa.array(times).cast(_UTC_NS))
        price = _spread(price, price_t, times)
        for name in keep:
            out = out.append_column(name, price.column(name))
        return out
    # Anything else (never seen from assembled months): Arrow's hash join, which leaves
    # rows in no particular order, then a sort, as a sorted outer merge would give.
    joined = flow.join(price, TIME, join_type="full outer", coalesce_keys=True)
    return joined.select([*flow.column_names, *keep]).sort_by(TIME)


def _ns(table: pa.Table) -> np.ndarray:
    """The bar starts as int64 nanoseconds."""
    return np.asarray(table.column(TIME).cast(pa.int64()).to_numpy())


def _increasing(times: np.ndarray) -> bool:
    return bool(np.all(times[1:] > times[:-1]))


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted union of two increasing arrays, by insertion (linear, no sort)."""
    at = np.minimum(np.searchsorted(a, b), max(len(a) - 1, 0))
    extra = b[a[at] != b] if len(a) else b
    return np.insert(a, np.searchsorted(a, extra), extra)


def _spread(table: pa.Table, times: np.ndarray, union: np.ndarray) -> pa.Table:
    """``table``'s rows placed on ``union`` (which holds all of ``times``): null rows
    where ``table`` has no bar."""
    if len(times) == len(union):
        return table  # every bar is there already
    if len(times) == 0:
        return pa.Table.from_arrays([pa.nulls(len(union), f.type) for f in table.schema], schema=table.schema)
    at = np.searchsorted(times, union)
    found = np.zeros(len(union), dtype=bool)
    inside = at < len(times)
    found[inside] = times[at[inside]] == union[inside]
    at[~found] = 0
    # Gather with indices that hold no null, then blank the rows with no bar: Arrow's
    # take is about twice as fast without nulls among the indices.
    taken = table.take(pa.array(at))
    there = pa.array(found)
    columns = [pc.if_else(there, column, pa.scalar(None, column.type)) for column in taken.columns]
    return pa.Table.from_arrays(columns, schema=table.schema)


def _count_missing(column: pa.ChunkedArray) -> int:
    """Nulls and NaN: what pandas counts as missing."""
    return int(pc.sum(pc.is_null(column, nan_is_null=True)).as_py() or 0)


def price_status(attrs: dict[str, Any]) -> str:
    """A few words for a summary line: ``""`` when the price is joined or was not
    asked for, else why it is missing."""
    price = attrs.get("price")
    if not price or price.get("joined"):
        return ""
    return f"no price: {price.get('error', 'unavailable')}"
