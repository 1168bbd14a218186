"""What a live flow hands out: :class:`Bar` (one bar of one series, new or an update),
its compact values, :class:`GapFill` (what REST gave after an outage), and the short
clock texts of the state line."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from .schema import FLOW_FILE_SCHEMA, PRICE_COLUMNS, TIME

__all__ = ["Bar", "BarValues", "GapFill", "Origin"]

#: Where a bar came from: the history loaded first, the stream, or REST filling a gap.
Origin: TypeAlias = Literal["history", "live", "rest"]

US = 1_000_000  # stream times are microseconds since the epoch
#: Column dtypes of a flow frame (the file schema's), and of the joined price columns.
DTYPES: dict[str, pa.DataType] = {f.name: f.type for f in FLOW_FILE_SCHEMA if f.name != TIME} | {
    c: pa.float64() for c in PRICE_COLUMNS
}
INTS = frozenset(name for name, t in DTYPES.items() if pa.types.is_integer(t))


class BarValues(Mapping[str, float | int]):
    """A bar's values as a read-only mapping over one row of floats: a few hundred
    bytes a bar instead of a dict's few kilobytes, so a queue of bars stays small.
    Counts come back as ``int`` (NaN when missing), the rest as ``float``."""

    __slots__ = ("_row", "_index")

    def __init__(self, row: np.ndarray, index: Mapping[str, int]) -> None:
        self._row = row
        self._index = index

    def __getitem__(self, name: str) -> float | int:
        value = float(self._row[self._index[name]])
        return int(value) if name in INTS and not math.isnan(value) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of one series.

    Attributes:
        exchange, symbol: the series (canonical venue name, Atlas symbol).
        time: the bar's start, tz-aware UTC.
        values: the flow columns (and ``open high low close`` with ``with_price``), as
            the API defines them (units: :data:`~aperiodic_jupyter.FLOW_UNITS`); NaN
            where the source gave none.
        origin: ``history`` (loaded first), ``live`` (the stream) or ``rest`` (a gap
            filled from the REST files).
        update: ``True`` when this bar replaces one given before with the same
            ``exchange``, ``symbol`` and ``time`` (the open bar re-published...); a
            consumer redraws the bar instead of appending one.
    """

    exchange: str
    symbol: str
    time: pd.Timestamp
    values: Mapping[str, float | int]
    origin: Origin
    update: bool = False

    def __getitem__(self, column: str) -> Any:
        if column == TIME:
            return self.time
        if column in ("exchange", "symbol"):
            return getattr(self, column)
        return self.values[column]

    def as_dict(self) -> dict[str, Any]:
        """``time``, ``exchange``, ``symbol`` and the values, as one flat dict."""
        return {TIME: self.time, "exchange": self.exchange, "symbol": self.symbol, **self.values}


@dataclass(frozen=True)
class GapFill:
    """The bars REST gave for one series after a (re)connection.

    Attributes:
        exchange, symbol: the series.
        after: the last bar held before the gap (its REST row is taken too: it may have
            been still open when it was received).
        before: the first bar received after the connection.
        bars: bars REST gave strictly between the two.
        missing: bars of the interval between the two that REST did not have (a bar with
            no trade is missing by right; a recent one may not be published yet).
        error: the fetch's one-line error when it failed (the stream goes on).
        text: the line the state shows: ``gap filled 11:58–12:00 from REST``.
    """

    exchange: str
    symbol: str
    after: pd.Timestamp
    before: pd.Timestamp
    bars: int
    missing: int
    error: str | None
    text: str


def fill_text(first: pd.Timestamp, last: pd.Timestamp, bars: int, missing: int, error: str | None) -> str:
    span = span_text(first, last)
    if error:
        return f"gap {span} not filled: {error}"
    if not bars:
        return f"gap {span}: no bars in REST yet"
    return f"gap filled {span} from REST" + (f" ({missing} bars missing there)" if missing else "")


def clock(t: pd.Timestamp, seconds: bool = False) -> str:
    """``12:03`` (``12:03:00`` with seconds), with the date in front when it is not
    today (UTC)."""
    text = f"{t.hour:02d}:{t.minute:02d}" + (f":{t.second:02d}" if seconds else "")
    day = t.date()
    return text if day == datetime.now(UTC).date() else f"{day.isoformat()} {text}"


def span_text(first: pd.Timestamp, last: pd.Timestamp) -> str:
    seconds = bool(first.second or last.second)
    a, b = clock(first, seconds), clock(last, seconds)
    if first.date() == last.date() and len(a) > 8:  # one day, not today: the date once
        b = b[11:]
    return a if first == last else f"{a}–{b}"


def ts(time_us: int) -> pd.Timestamp:
    return pd.Timestamp(time_us, unit="us", tz="UTC")
