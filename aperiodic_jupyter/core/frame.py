"""Assembly: monthly tables → one trimmed, sorted table or pandas DataFrame.

The frame's ``time`` is a **column** (not the index) of tz-aware UTC timestamps: it keeps
multi-symbol frames flat, round-trips through Parquet and CSV, and matches what the
public client returns. ``df.set_index("time")`` gives a DatetimeIndex when wanted.

Two ways to the same pandas frame:

- :func:`assemble` then :func:`table_to_frame`: every month decoded and alive at once,
  then ``to_pandas`` (any schema; what Arrow and Polars outputs use);
- :func:`months_to_frame`: for the usual numeric bars, each month is decoded a few
  columns at a time straight into the frame's columns, so besides the frame only one
  such piece exists at any moment (a fetch's peak memory is about the frame plus the
  months' file bytes, not the frame plus every decoded month plus the decoder's
  scratch). It answers ``None`` when the months need the general path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import SchemaError
from .query import Query
from .ranges import Month
from .schema import TIME

if TYPE_CHECKING:
    from .parquet import MonthData

__all__ = ["normalize_time", "table_to_frame", "assemble", "months_to_frame", "release_decoded"]

_UTC_NS = pa.timestamp("ns", tz="UTC")

#: A month file larger than this is decoded by Arrow's threads, column by column; a
#: smaller one is faster decoded in the calling thread.
DECODE_THREADS_BYTES = 2 << 20
#: Months holding more than this many bytes give the memory their decoding used back to
#: the system before the frame is allocated and as it is filled.
RELEASE_BYTES = 16 << 20
#: A month file is decoded into the frame in pieces of columns of about this many bytes.
PIECE_BYTES = 2 << 20
#: While a frame is filled, the memory decoding used is given back each time pieces of
#: this many bytes were let go: each give-back costs about a millisecond, and the
#: memory given back must be faulted in again by the next decode.
RELEASE_EVERY = 4 << 20


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


def _normal_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as :func:`normalize_time` leaves a table, without metadata."""
    schema = schema.remove_metadata()
    if TIME in schema.names:
        i = schema.get_field_index(TIME)
        if pa.types.is_timestamp(schema.field(i).type):
            schema = schema.set(i, pa.field(TIME, _UTC_NS))
    return schema


def _check_schemas(schemas: Sequence[tuple[Month, pa.Schema]]) -> pa.Schema | None:
    """The first month's schema, once every month's agrees with it (months in order,
    months without rows left out)."""
    reference: tuple[Month, pa.Schema] | None = None
    for month, schema in schemas:
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


def _bounds(query: Query) -> tuple[pa.Scalar, pa.Scalar]:
    lo = pa.scalar(datetime.combine(query.start, time.min, tzinfo=UTC), type=_UTC_NS)
    hi = pa.scalar(datetime.combine(query.end, time.max, tzinfo=UTC), type=_UTC_NS)
    return lo, hi


def assemble(parts: Sequence[tuple[Month, pa.Table]], query: Query) -> pa.Table:
    """Concatenate the months of a query, trim to ``[start 00:00, end 23:59:59.999…]``
    UTC and sort by ``time``. Raises :class:`SchemaError` naming the month whose
    columns or types disagree with the others."""
    parts = sorted(((m, normalize_time(t)) for m, t in parts), key=lambda p: p[0])
    schema = _check_schemas([(m, t.schema.remove_metadata()) for m, t in parts if t.num_rows])
    if schema is None:
        return pa.table({TIME: pa.array([], type=_UTC_NS)})
    lo, hi = _bounds(query)
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


# -- months straight into a pandas frame ------------------------------------------------


def release_decoded() -> None:
    """Give the memory Arrow's pool kept from freed decodes back to the system (about a
    millisecond). The pool keeps freed memory for its own reuse, but what a fetch
    allocates next is mostly not Arrow's (the pandas frame, file bytes): called after a
    large decoded month is let go, it keeps a fetch's peak near what the fetch holds."""
    pa.default_memory_pool().release_unused()


def _copyable(field: pa.Field) -> bool:
    """A column :func:`months_to_frame` copies itself: one whose pandas dtype is the
    NumPy dtype of its Arrow type (integers and booleans only while they hold no nulls,
    which it checks as it copies)."""
    t = field.type
    return pa.types.is_integer(t) or pa.types.is_boolean(t) or t in (pa.float32(), pa.float64())


def months_to_frame(parts: Sequence[tuple[Month, MonthData]], query: Query) -> pd.DataFrame | None:
    """The same frame as ``table_to_frame(assemble(...))`` of the decoded months, built
    month by month: each month is decoded a few columns at a time (:data:`PIECE_BYTES`),
    straight into the frame's columns, and each piece is let go, with the memory its
    decoding used, before the next. So the build holds about the frame plus the months'
    file bytes, never every decoded month as well. ``None`` when the months need
    :func:`assemble` (no rows, a column type other than numbers and booleans, nulls in
    an integer column, bars out of order); :class:`SchemaError` as :func:`assemble`
    raises it."""
    parts = sorted(((m, p) for m, p in parts if p.num_rows), key=lambda p: p[0])
    schema = _check_schemas([(m, _normal_schema(p.schema)) for m, p in parts])
    if schema is None or TIME not in schema.names or schema.field(TIME).type != _UTC_NS:
        return None
    names = [n for n in schema.names if n != TIME]
    if not all(_copyable(schema.field(n)) for n in names):
        return None
    lo, hi = (bound.value for bound in _bounds(query))
    # Every month is placed in the frame before any is copied. A month that reaches past
    # the range (the first and last, at most) has its time column decoded now to find
    # its rows inside; the others lie wholly inside (every month's bars lie in that
    # month: checked before it was cached), which is checked again as they are copied.
    spans: list[tuple[int, int, int]] = []  # (first row, rows, offset in the frame)
    total = 0
    for month, part in parts:
        first, rows = 0, part.num_rows
        if month.first_day < query.start or month.last_day > query.end:
            ns = _nanoseconds(normalize_time(pa.table({TIME: part.column(TIME)})))
            if ns is None:
                return None
            first = int(np.searchsorted(ns, lo, side="left"))
            rows = int(np.searchsorted(ns, hi, side="right")) - first
        spans.append((first, rows, total))
        total += rows
    if total == 0:
        return None
    large = sum(p.nbytes for _, p in parts) > RELEASE_BYTES
    if large:
        # Arrow's pool keeps what decoders freed (earlier ones' too) for itself, while
        # the frame's memory comes from NumPy: give it back before the frame is made.
        release_decoded()
    groups = _groups(schema, names)
    blocks = {dtype: np.empty((len(rows), total), dtype=dtype) for dtype, rows in groups.items()}
    columns = {name: blocks[dtype][row] for dtype, rows in groups.items() for row, name in enumerate(rows)}
    stamps = np.empty(total, dtype=np.int64)
    freed = 0  # bytes of decoded pieces let go since their memory was last given back
    for (_, part), (first, rows, offset) in zip(parts, spans, strict=True):
        if not rows:
            continue
        for piece in _pieces(part, first, rows, [TIME, *names], schema):
            freed += piece.get_total_buffer_size()
            if TIME in piece.column_names:
                ns = _nanoseconds(piece)
                if ns is None or len(ns) != rows or ns[0] < lo or ns[-1] > hi:
                    return None
                stamps[offset : offset + rows] = ns
            for name in piece.column_names:
                if name == TIME:
                    continue
                at = offset
                for chunk in piece.column(name).chunks:
                    if chunk.null_count and not pa.types.is_floating(chunk.type):
                        return None  # pandas makes such a column float or object: assemble does
                    n = len(chunk)
                    columns[name][at : at + n] = chunk.to_numpy(zero_copy_only=False)
                    at += n
            del piece
            if large and freed >= RELEASE_EVERY:
                release_decoded()
                freed = 0
    if total > 1 and not bool((stamps[1:] >= stamps[:-1]).all()):
        return None  # months that overlap: assemble sorts
    times = pd.array(stamps, dtype=pd.DatetimeTZDtype("ns", "UTC"), copy=False)
    return _frame(schema, groups, blocks, times, total)


def _pieces(part: MonthData, first: int, rows: int, names: list[str], schema: pa.Schema) -> Iterator[pa.Table]:
    """A month's rows ``[first, first + rows)``, ``time`` as UTC ns: a month kept as a
    table at once, a file in groups of columns of about :data:`PIECE_BYTES` decoded
    (``time`` in the first), so that little more than a piece exists besides the frame."""
    if part.raw is None:
        yield normalize_time(part.table()).slice(first, rows)
        return
    reader = pq.ParquetFile(pa.BufferReader(part.raw))
    threads = part.nbytes > DECODE_THREADS_BYTES
    group: list[str] = []
    size = 0
    for name in names:
        width = max(1, schema.field(name).type.bit_width // 8)
        if group and size + width * part.num_rows > PIECE_BYTES:
            yield normalize_time(reader.read(columns=group, use_threads=threads)).slice(first, rows)
            group, size = [], 0
        group.append(name)
        size += width * part.num_rows
    yield normalize_time(reader.read(columns=group, use_threads=threads)).slice(first, rows)


def _nanoseconds(table: pa.Table) -> np.ndarray | None:
    """A month's ``time`` (tz-aware UTC ns) as int64, or ``None`` when its bars are not
    in order (only :func:`assemble` sorts)."""
    ns = table.column(TIME).combine_chunks().cast(pa.int64()).to_numpy()
    if len(ns) > 1 and not bool((ns[1:] >= ns[:-1]).all()):
        return None
    return ns


def _groups(schema: pa.Schema, names: list[str]) -> dict[np.dtype, list[str]]:
    """The columns by NumPy dtype, in schema order: one pandas block each."""
    groups: dict[np.dtype, list[str]] = {}
    for name in names:
        groups.setdefault(np.dtype(schema.field(name).type.to_pandas_dtype()), []).append(name)
    return groups


def _frame(
    schema: pa.Schema,
    groups: dict[np.dtype, list[str]],
    blocks: dict[np.dtype, np.ndarray],
    times: pd.api.extensions.ExtensionArray,
    total: int,
) -> pd.DataFrame:
    """The frame over ``blocks`` (one 2-D array per dtype, a row per column, as
    ``to_pandas`` lays a frame out; no copy) and the ``time`` column. Large single
    allocations also let NumPy back them with huge pages: filling them faults a few
    hundred pages instead of one per 4 kB."""
    try:
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:  # pandas 2: one block per column, still no copy
        columns: dict[str, object] = {n: blocks[d][r] for d, rows in groups.items() for r, n in enumerate(rows)}
        columns[TIME] = times
        return pd.DataFrame({n: columns[n] for n in schema.names}, copy=False)
    position = {name: i for i, name in enumerate(schema.names)}
    placed: list[tuple[np.ndarray | pd.api.extensions.ExtensionArray, np.ndarray]] = [
        (blocks[d], np.array([position[n] for n in rows])) for d, rows in groups.items()
    ]
    placed.append((times, np.array([position[TIME]])))
    return create_dataframe_from_blocks(placed, index=pd.RangeIndex(total), columns=pd.Index(schema.names))
