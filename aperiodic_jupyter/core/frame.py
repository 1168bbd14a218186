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

import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import SchemaError
from .query import INTERVAL_SECONDS, Query
from .ranges import Month
from .schema import TIME

if TYPE_CHECKING:
    from .parquet import MonthData

__all__ = [
    "normalize_time",
    "table_to_frame",
    "assemble",
    "months_to_frame",
    "FrameBuilder",
    "rows_bound",
    "small_frame",
    "release_decoded",
]

_UTC_NS = pa.timestamp("ns", tz="UTC")

#: A month file larger than this is decoded by Arrow's threads, column by column; a
#: smaller one is faster decoded in the calling thread.
DECODE_THREADS_BYTES = 2 << 20
#: Months holding more than this many bytes give the memory their decoding used back to
#: the system before the frame is allocated and as it is filled.
RELEASE_BYTES = 16 << 20
#: A month file is decoded into the frame in pieces of columns of about this many bytes.
PIECE_BYTES = 2 << 20
#: A file just downloaded is decoded into the frame (by its download thread, while other
#: files still arrive) in pieces of about this many bytes, each given back at once.
FILE_PIECE_BYTES = 1 << 20
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
    col = col.cast(_UTC_NS)  # a naive time is taken as UTC
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
    month by month with a :class:`FrameBuilder`: a month kept as its file is decoded a
    few columns at a time (:data:`PIECE_BYTES`), straight into the frame's columns, and
    each piece is let go, with the memory its decoding used, before the next. So the
    build holds about the frame plus the months' file bytes, never every decoded month
    as well. ``None`` when the months need :func:`assemble` (no rows, a column type
    other than numbers and booleans, nulls in an integer column, bars out of order, a
    month with more bars than its days hold); :class:`SchemaError` as :func:`assemble`
    raises it."""
    parts = sorted(((m, p) for m, p in parts if p.num_rows), key=lambda p: p[0])
    schema = _check_schemas([(m, _normal_schema(p.schema)) for m, p in parts])
    if schema is None:
        return None
    builder = FrameBuilder(query)
    builder.release = sum(p.nbytes for _, p in parts) > RELEASE_BYTES
    if builder.release:
        # Arrow's pool keeps what decoders freed (earlier ones' too) for itself, while
        # the frame's memory comes from NumPy: give it back before the frame is made.
        release_decoded()
    for month, part in parts:
        builder.add(month, part)
        if not builder.ok:
            return None
    return builder.frame()


#: Months kept as tables holding fewer bytes than this are stacked and converted by
#: ``to_pandas`` at once (:func:`small_frame`): for small frames its fixed costs are
#: lower than a copy per column and month.
SMALL_FRAME_BYTES = 8 << 20


def small_frame(parts: Sequence[tuple[Month, MonthData]], query: Query) -> pd.DataFrame | None:
    """The frame of months all kept as tables and together smaller than
    :data:`SMALL_FRAME_BYTES` (hourly bars: the warm call from memory), by one
    ``concat_tables`` and ``to_pandas``; ``None`` for any other months, or months out
    of order (:func:`assemble` sorts)."""
    if any(p.raw is not None for _, p in parts) or sum(p.nbytes for _, p in parts) > SMALL_FRAME_BYTES:
        return None
    parts = sorted(((m, p) for m, p in parts if p.num_rows), key=lambda p: p[0])
    if not parts:
        return None
    normal = [p.normal() for _, p in parts]
    tables = [table for table, _ in normal]
    first = tables[0].schema
    if not all(t.schema.equals(first) for t in tables[1:]):
        _check_schemas([(m, t.schema.remove_metadata()) for (m, _), t in zip(parts, tables, strict=True)])
        return None  # same columns in another order: assemble selects them
    if TIME not in first.names or first.field(TIME).type != _UTC_NS:
        return None
    lo, hi = (bound.value for bound in _bounds(query))
    kept: list[pa.Table] = []
    last = None
    for (month, _), (table, ns) in zip(parts, normal, strict=True):
        if ns is None:
            return None
        if month.first_day < query.start or month.last_day > query.end or ns[0] < lo or ns[-1] > hi:
            a = int(np.searchsorted(ns, lo, side="left"))
            b = int(np.searchsorted(ns, hi, side="right"))
            table, ns = table.slice(a, b - a), ns[a:b]
        if not len(ns):
            continue
        if last is not None and ns[0] < last:
            return None
        last = ns[-1]
        kept.append(table)
    if not kept:
        return None
    return pa.concat_tables(kept).replace_schema_metadata(None).to_pandas()


def rows_bound(query: Query, month: Month) -> int:
    """The most bars ``month`` can hold inside the query's range: its days in the range
    times the interval's bars per day (bars start on multiples of the interval)."""
    first, last = max(month.first_day, query.start), min(month.last_day, query.end)
    days = (last - first).days + 1
    if days <= 0:
        return 0
    seconds = INTERVAL_SECONDS.get(query.interval, 1)
    return days * (86_400 // seconds) if 86_400 % seconds == 0 else days * 86_400 // seconds + 2


class FrameBuilder:
    """A query's pandas frame, filled month by month as the months arrive, in any order.

    Each month of the query has a slot of :func:`rows_bound` rows in preallocated
    blocks (one 2-D array per dtype, as ``to_pandas`` lays a frame out; memory the
    system hands over only as it is written). A month handed over decoded
    (:meth:`add_table`, the table the download was checked with) is copied into its
    slot and can be let go at once; a month kept as its file (:meth:`add`), or a large
    file just downloaded (:meth:`add_file`, called by the download's own thread once
    the file's ``time`` passed the span check), is decoded into its slot a few columns
    at a time. So a cold fetch decodes each file once, and holds no decoded month.
    :meth:`frame` closes the gaps short months left (moving rows left, in place) and
    hands pandas views of the blocks: no copy. Months are added one at a time (a lock).

    The builder never raises on data: a month it does not copy itself (see
    :func:`months_to_frame`), or one that does not fit its slot, turns it off
    (``ok`` false, its memory let go) and :meth:`frame` answers ``None``; the caller
    then takes the general path, which raises what is to be raised.
    """

    def __init__(self, query: Query) -> None:
        self.query = query
        self.ok = True
        #: Give the memory decoding used back to the system as pieces are let go
        #: (:data:`RELEASE_EVERY`); set for large builds of months kept as files.
        self.release = False
        #: With ``release``: bytes of decoded pieces let go between two give-backs.
        self.release_every = RELEASE_EVERY
        #: Bytes of columns a file is decoded by at once (:data:`PIECE_BYTES`).
        self.piece_bytes = PIECE_BYTES
        self.added: set[Month] = set()
        self._lo, self._hi = (bound.value for bound in _bounds(query))
        self._slots: dict[Month, tuple[int, int]] = {}
        capacity = 0
        for month in query.months:
            bound = rows_bound(query, month)
            self._slots[month] = (capacity, bound)
            capacity += bound
        self._capacity = capacity
        self._rows: dict[Month, int] = {}
        self._schema: pa.Schema | None = None
        self._names: list[str] = []
        self._groups: dict[np.dtype, list[str]] = {}
        self._blocks: dict[np.dtype, np.ndarray] = {}
        self._columns: dict[str, np.ndarray] = {}
        self._stamps: np.ndarray | None = None
        self._freed = 0
        self._lock = threading.RLock()  # downloads place months from their own threads

    def _fail(self) -> None:
        self.ok = False
        self._blocks, self._columns, self._stamps = {}, {}, None

    def _start(self, month: Month, schema: pa.Schema) -> bool:
        """Ready to copy a month with rows of this (normal) schema into its slot: the
        blocks are made with the first such month."""
        if not self.ok or month not in self._slots or month in self.added:
            self._fail()
            return False
        if self._schema is None:
            if TIME not in schema.names or schema.field(TIME).type != _UTC_NS:
                self._fail()
                return False
            names = [n for n in schema.names if n != TIME]
            if not all(_copyable(schema.field(n)) for n in names):
                self._fail()
                return False
            groups = _groups(schema, names)
            try:
                blocks = {dtype: np.empty((len(rows), self._capacity), dtype=dtype) for dtype, rows in groups.items()}
                stamps = np.empty(self._capacity, dtype=np.int64)
            except MemoryError:
                self._fail()
                return False
            self._schema, self._names, self._groups, self._blocks, self._stamps = schema, names, groups, blocks, stamps
            self._columns = {name: blocks[dtype][row] for dtype, rows in groups.items() for row, name in enumerate(rows)}
        elif not schema.equals(self._schema):
            self._fail()  # the general path names the month that disagrees
            return False
        return True

    def _trimmed(self, month: Month) -> bool:
        return month.first_day < self.query.start or month.last_day > self.query.end

    def add_file(self, month: Month, raw: bytes | bytearray) -> bool:
        """Decode a month's checked file straight into its slot, a few columns at a time;
        whether the month was taken (every column decoded and copied). Raises what the
        decoder raises on a corrupt file (the slot is then written again by a retry)."""
        from .parquet import MonthData

        with self._lock:
            saved = self.release, self.release_every, self.piece_bytes
            # While other files download: smaller pieces, each given back at once.
            self.release, self.release_every, self.piece_bytes = True, FILE_PIECE_BYTES, FILE_PIECE_BYTES
            try:
                self.add(month, MonthData.of_file(raw))
            finally:
                self.release, self.release_every, self.piece_bytes = saved
            # Arrow's pool keeps freed memory per thread: only this (download) thread
            # can give back what its decoding used.
            release_decoded()
            self._freed = 0
            return month in self.added

    def add_table(self, month: Month, table: pa.Table) -> None:
        """Copy a decoded month into its slot."""
        with self._lock:
            self._add_table(month, table)

    def _add_table(self, month: Month, table: pa.Table) -> None:
        if not self.ok:
            return
        if table.num_rows == 0:
            if month in self.added or month not in self._slots:
                self._fail()
            self.added.add(month)
            self._rows[month] = 0
            return
        table = normalize_time(table)
        if not self._start(month, _normal_schema(table.schema)):
            return
        first, rows = 0, table.num_rows
        if self._trimmed(month):
            ns = _nanoseconds(table)
            if ns is None:
                self._fail()
                return
            first = int(np.searchsorted(ns, self._lo, side="left"))
            rows = int(np.searchsorted(ns, self._hi, side="right")) - first
        self._place(month, [table.slice(first, rows)] if rows else [], rows)

    def add(self, month: Month, data: MonthData) -> None:
        """Copy a month as kept (its table, or its file decoded a few columns at a time)."""
        with self._lock:
            self._add(month, data)

    def _add(self, month: Month, data: MonthData) -> None:
        if data.raw is None:
            self._add_table(month, data.table())
            return
        if not self.ok:
            return
        if data.num_rows == 0:
            self._add_table(month, pa.table({}))
            return
        schema = _normal_schema(data.schema)
        if not self._start(month, schema):
            return
        first, rows = 0, data.num_rows
        if self._trimmed(month):
            ns = _nanoseconds(normalize_time(pa.table({TIME: data.column(TIME)})))
            if ns is None:
                self._fail()
                return
            first = int(np.searchsorted(ns, self._lo, side="left"))
            rows = int(np.searchsorted(ns, self._hi, side="right")) - first
        pieces = _pieces(data, first, rows, [TIME, *self._names], schema, self.piece_bytes) if rows else []
        self._place(month, pieces, rows)

    def _place(self, month: Month, pieces: Iterable[pa.Table], rows: int) -> None:
        offset, bound = self._slots[month]
        if rows > bound:
            self._fail()  # more bars than the month's days hold: the general path
            return
        assert self._stamps is not None
        for piece in pieces:
            if TIME in piece.column_names:
                ns = _nanoseconds(piece)
                if ns is None or len(ns) != rows or ns[0] < self._lo or ns[-1] > self._hi:
                    self._fail()
                    return
                self._stamps[offset : offset + rows] = ns
            for name in piece.column_names:
                if name == TIME:
                    continue
                at = offset
                column = self._columns[name]
                for chunk in piece.column(name).chunks:
                    if chunk.null_count and not pa.types.is_floating(chunk.type):
                        self._fail()  # pandas makes such a column float or object: assemble does
                        return
                    n = len(chunk)
                    column[at : at + n] = chunk.to_numpy(zero_copy_only=False)
                    at += n
            if self.release:
                self._freed += piece.get_total_buffer_size()
                del piece
                if self._freed >= self.release_every:
                    release_decoded()
                    self._freed = 0
        self.added.add(month)
        self._rows[month] = rows

    def frame(self) -> pd.DataFrame | None:
        """The frame of every month added (months of the query never added count as
        empty), or ``None`` (see the class)."""
        if not self.ok or self._schema is None or self._stamps is None:
            return None
        total = 0
        for month, (offset, _) in self._slots.items():
            rows = self._rows.get(month, 0)
            if rows and offset != total:  # a short month before: move this one left
                for block in self._blocks.values():
                    for row in block:  # one row at a time: NumPy moves 1-D overlaps in place
                        row[total : total + rows] = row[offset : offset + rows]
                self._stamps[total : total + rows] = self._stamps[offset : offset + rows]
            total += rows
        if total == 0:
            return None
        stamps = self._stamps[:total]
        if total > 1 and not bool((stamps[1:] >= stamps[:-1]).all()):
            return None  # months that overlap: assemble sorts
        times = pd.array(stamps, dtype=pd.DatetimeTZDtype("ns", "UTC"), copy=False)
        blocks = {dtype: block[:, :total] for dtype, block in self._blocks.items()}
        self._blocks, self._columns, self._stamps = {}, {}, None  # the frame owns them now
        return _frame(self._schema, self._groups, blocks, times, total)


def _pieces(
    part: MonthData, first: int, rows: int, names: list[str], schema: pa.Schema, piece_bytes: int = PIECE_BYTES
) -> Iterator[pa.Table]:
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
        if group and size + width * part.num_rows > piece_bytes:
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
