"""Assembly: monthly tables → one trimmed, sorted pandas DataFrame with ``attrs``.

The frame's ``time`` is a **column** (not the index) of tz-aware UTC timestamps: it keeps
multi-symbol frames flat, round-trips through Parquet and CSV, and matches what the
public client returns. ``df.set_index("time")`` gives a DatetimeIndex when wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import SchemaError
from .query import Query
from .ranges import Month
from .schema import TIME

__all__ = ["normalize_time", "table_to_frame", "assemble"]

_UTC_NS = pa.timestamp("ns", tz="UTC")


def normalize_time(table: pa.Table) -> pa.Table:
    """Make ``time`` tz-aware UTC nanoseconds. Files carry it naive (meaning UTC) or
    tz-aware; both are accepted."""
    if TIME not in table.column_names:
        return table
    col = table.column(TIME)
    if col.type == _UTC_NS:
        return table
    if not pa.types.is_timestamp(col.type):
        raise SchemaError(f"column 'time' has type {col.type}, expected a timestamp")
    if col.type.tz is None:
        col = col.cast(pa.timestamp("ns")).cast(_UTC_NS)
    else:
        col = col.cast(_UTC_NS)
    return table.set_column(table.column_names.index(TIME), TIME, col)


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow table → pandas, with ``time`` as tz-aware UTC and a clean RangeIndex."""
    return normalize_time(table).to_pandas()


def _check_schemas(parts: Sequence[tuple[Month, pa.Table]]) -> pa.Schema | None:
    reference: tuple[Month, pa.Schema] | None = None
    for month, table in parts:
        if table.num_rows == 0:
            continue  # an empty month carries no schema worth comparing
        schema = table.schema.remove_metadata()
        if reference is None:
            reference = (month, schema)
            continue
        ref_month, ref = reference
        if set(schema.names) != set(ref.names):
            missing = sorted(set(ref.names) - set(schema.names)) or "none"
            extra = sorted(set(schema.names) - set(ref.names)) or "none"
            raise SchemaError(f"file for {month} has other columns than {ref_month}: missing {missing}, unexpected {extra}")
        for name in ref.names:
            if schema.field(name).type != ref.field(name).type:
                raise SchemaError(
                    f"file for {month} stores {name!r} as {schema.field(name).type}, "
                    f"but {ref_month} stores it as {ref.field(name).type}"
                )
    return reference[1] if reference else None


def assemble(parts: Sequence[tuple[Month, pa.Table]], query: Query) -> pa.Table:
    """Concatenate the months of a query, trim to ``[start 00:00, end 23:59:59.999…]``
    UTC and sort by ``time``. Raises :class:`SchemaError` naming the month whose
    columns or types disagree with the others."""
    parts = sorted(((m, normalize_time(t)) for m, t in parts), key=lambda p: p[0])
    schema = _check_schemas(parts)
    if schema is None:
        return pa.table({TIME: pa.array([], type=_UTC_NS)})
    lo = pa.scalar(datetime.combine(query.start, time.min, tzinfo=UTC), type=_UTC_NS)
    hi = pa.scalar(datetime.combine(query.end, time.max, tzinfo=UTC), type=_UTC_NS)
    tables = [_trim(t.select(schema.names).replace_schema_metadata(None), lo, hi) for _, t in parts if t.num_rows]
    table = pa.concat_tables(tables)
    times = table.column(TIME)
    if len(times) > 1 and not _is_sorted(times):
        table = table.sort_by(TIME)
    return table


def _trim(table: pa.Table, lo: pa.Scalar, hi: pa.Scalar) -> pa.Table:
    """Rows of one month inside ``[lo, hi]``. Months wholly inside are kept as they are
    and sorted months are sliced (both zero-copy); only an unsorted file that crosses
    a bound is filtered, so a long range costs no copy before pandas."""
    col = table.column(TIME)
    bounds = pc.min_max(col)
    if bounds["min"].as_py() >= lo.as_py() and bounds["max"].as_py() <= hi.as_py():
        return table
    flat = col.combine_chunks()
    if _is_sorted(flat):
        ns = flat.cast(pa.int64()).to_numpy()
        a = int(np.searchsorted(ns, lo.value, side="left"))
        b = int(np.searchsorted(ns, hi.value, side="right"))
        return table.slice(a, b - a)
    return table.filter(pc.and_(pc.greater_equal(col, lo), pc.less_equal(col, hi)))


def _is_sorted(col: pa.ChunkedArray | pa.Array) -> bool:
    flat = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return bool(pc.all(pc.less_equal(flat.slice(0, len(flat) - 1), flat.slice(1))).as_py())
