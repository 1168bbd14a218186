"""Queries: the one place where text and arguments become a validated :class:`Query`.

The magic, the widget and :func:`get_flow` all build queries here, so an input is valid
or invalid the same way everywhere, and every rejection is one :class:`QueryError` line
that says what is valid.

Range grammar (all dates UTC, both ends inclusive):

=========================  ==============================================
``2024-01``                one whole month
``2024-01..2024-03``       whole months, January 1 to March 31
``2024-01-15..2024-02-10`` days
``2024-01-15..2024-02``    mixed: from a day to the end of a month
``2024-01-15``             one day
``2024``, ``2023..2024``   whole years
``2024-Q1``                a quarter
``2024-01..``              from then to today
``7d``, ``4w``             the last 7 days / 4 weeks, ending today
``today``, ``yesterday``
=========================  ==============================================

``/`` is accepted in place of ``..`` (ISO 8601 intervals). A range that ends in the
future is cut at today; one that starts in the future is an error.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from .errors import QueryError

__all__ = [
    "Query",
    "Month",
    "EXCHANGES",
    "EXCHANGE_ALIASES",
    "INTERVALS",
    "TIMESTAMPS",
    "METRICS",
    "parse_range",
    "parse_date",
    "resolve_exchange",
    "make_query",
    "interval_ns",
    "utc_today",
]

EXCHANGES: tuple[str, ...] = ("binance-futures", "okx-perps", "hyperliquid-perps")
EXCHANGE_ALIASES: dict[str, str] = {
    "binance": "binance-futures",
    "binance-perps": "binance-futures",
    "binancefutures": "binance-futures",
    "okx": "okx-perps",
    "okx-futures": "okx-perps",
    "okex": "okx-perps",
    "hyperliquid": "hyperliquid-perps",
    "hl": "hyperliquid-perps",
}
INTERVALS: tuple[str, ...] = ("1m", "5m", "15m", "30m", "1h", "4h", "1d")
_INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14400, "1d": 86400}
TIMESTAMPS: tuple[str, ...] = ("exchange", "true")
#: Metrics served on the same ``/data/{metric}`` path shape (the public client's list).
METRICS: tuple[str, ...] = (
    "flow",
    "vtwap",
    "trade_size",
    "impact",
    "range",
    "updownticks",
    "run_structure",
    "returns",
    "slippage",
    "l1_price",
    "l1_imbalance",
    "l1_liquidity",
    "l2_imbalance",
    "l2_liquidity",
)

Timestamp = Literal["exchange", "true"]


def utc_today() -> date:
    return datetime.now(UTC).date()


def interval_ns(interval: str) -> int:
    """Length of an interval in nanoseconds."""
    try:
        return _INTERVAL_SECONDS[interval] * 1_000_000_000
    except KeyError:
        raise QueryError(f"unknown interval {interval!r}; valid: {', '.join(INTERVALS)}") from None


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month, the unit of files and of the cache."""

    year: int
    month: int

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def next(self) -> Month:
        return Month(self.year + (self.month == 12), self.month % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)


@dataclass(frozen=True)
class Query:
    """A validated request for one symbol's metric over whole days.

    Attributes:
        exchange: canonical venue name, e.g. ``binance-futures``.
        symbol: Atlas symbol, e.g. ``perpetual-BTC-USDT:USDT``.
        interval: bar length, one of ``INTERVALS``.
        start, end: first and last UTC day, inclusive.
        timestamp: ``exchange`` (exchange-reported trade time) or ``true`` (arrival
            time at Aperiodic's servers).
        metric: dataset name; ``flow`` by default.
    """

    exchange: str
    symbol: str
    interval: str
    start: date
    end: date
    timestamp: Timestamp = "exchange"
    metric: str = "flow"
    #: How the user wrote the symbol, for labels (not part of equality).
    label: str = field(default="", compare=False)

    @property
    def months(self) -> list[Month]:
        """Every calendar month the range touches, in order."""
        out, m, last = [], Month.of(self.start), Month.of(self.end)
        while m <= last:
            out.append(m)
            m = m.next()
        return out

    def describe(self) -> str:
        return (
            f"{self.metric} {self.exchange} {self.symbol} {self.interval} "
            f"{self.start.isoformat()}..{self.end.isoformat()} (timestamp={self.timestamp})"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        d.pop("label")
        return d


def resolve_exchange(name: str) -> str:
    """Canonical exchange name from a name or alias (``binance`` → ``binance-futures``)."""
    key = str(name).strip().lower()
    if key in EXCHANGES:
        return key
    if key in EXCHANGE_ALIASES:
        return EXCHANGE_ALIASES[key]
    raise QueryError(f"unknown exchange {name!r}; valid: {', '.join(EXCHANGES)} (aliases: {', '.join(sorted(EXCHANGE_ALIASES))})")


_RANGE_HELP = "use YYYY-MM, YYYY-MM..YYYY-MM, YYYY-MM-DD..YYYY-MM-DD, YYYY, YYYY-Q1, 7d, 4w, today"
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-?[qQ]([1-4])$")
_RELATIVE = re.compile(r"^(\d+)\s*([dw])$", re.IGNORECASE)


def _span(text: str, today: date) -> tuple[date, date]:
    """First and last day of one range endpoint written at any precision."""
    t = text.strip()
    try:
        if m := _DAY.match(t):
            d = date(int(m[1]), int(m[2]), int(m[3]))
            return d, d
        if m := _MONTH.match(t):
            mo = Month(int(m[1]), int(m[2]))
            if not 1 <= mo.month <= 12:
                raise ValueError
            return mo.first_day, mo.last_day
        if m := _YEAR.match(t):
            return date(int(m[1]), 1, 1), date(int(m[1]), 12, 31)
        if m := _QUARTER.match(t):
            q0 = Month(int(m[1]), 3 * int(m[2]) - 2)
            return q0.first_day, Month(q0.year, q0.month + 2).last_day
    except ValueError:
        raise QueryError(f"invalid date {t!r}: no such day or month; {_RANGE_HELP}") from None
    if t.lower() == "today":
        return today, today
    if t.lower() == "yesterday":
        d = today - timedelta(days=1)
        return d, d
    raise QueryError(f"malformed date {t!r}; {_RANGE_HELP}")


def parse_date(value: date | datetime | str, *, end: bool = False, today: date | None = None) -> date:
    """One date from a ``date``, ``datetime`` or text (``2024-01-15``, ``2024-01``,
    ``2024``). With ``end=True``, a month or year means its last day."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise QueryError(f"a date must be a date or text like 2024-01-15, not {type(value).__name__}")
    first, last = _span(value, today or utc_today())
    return last if end else first


def parse_range(text: str, *, today: date | None = None) -> tuple[date, date]:
    """Parse the compact range grammar (see the module docstring) into inclusive days.

    The end is cut at ``today`` (UTC) when it lies in the future; a start in the future,
    an end before the start, or malformed text raise :class:`QueryError`.
    """
    today = today or utc_today()
    t = str(text).strip()
    if not t:
        raise QueryError(f"empty date range; {_RANGE_HELP}")
    if m := _RELATIVE.match(t):
        days = int(m[1]) * (7 if m[2].lower() == "w" else 1)
        if days < 1:
            raise QueryError(f"a relative range needs at least one day, got {t!r}; {_RANGE_HELP}")
        return _check(today - timedelta(days=days - 1), today, today)
    sep = ".." if ".." in t else "/" if "/" in t else None
    if sep is None:
        start, end = _span(t, today)
    else:
        left, _, right = t.partition(sep)
        if not left.strip():
            raise QueryError(f"range {t!r} has no start; {_RANGE_HELP}")
        start = _span(left, today)[0]
        end = _span(right, today)[1] if right.strip() else today
    return _check(start, end, today)


def _check(start: date, end: date, today: date) -> tuple[date, date]:
    if start > today:
        raise QueryError(
            f"range starts in the future ({start.isoformat()}); the latest day with data is {today.isoformat()} (UTC)"
        )
    if end < start:
        raise QueryError(f"range ends ({end.isoformat()}) before it starts ({start.isoformat()}); write START..END")
    return start, min(end, today)


def make_query(
    exchange: str,
    symbol: str,
    interval: str,
    start: date | datetime | str,
    end: date | datetime | str | None = None,
    *,
    timestamp: str = "exchange",
    metric: str = "flow",
    today: date | None = None,
) -> Query:
    """Validate arguments into a :class:`Query`.

    ``start`` may be a whole range in the compact grammar (``"2024-01..2024-03"``) when
    ``end`` is omitted; otherwise ``start`` and ``end`` are dates, datetimes or text, and
    a month written as ``end`` means its last day. ``symbol`` may be an Atlas symbol, a
    base (``BTC``), an exchange-native name (``BTCUSDT``) or ``BTC/USDT:USDT``.
    """
    from .symbols import resolve_symbol

    today = today or utc_today()
    exchange = resolve_exchange(exchange)
    if interval not in INTERVALS:
        hint = " (15s and 30s need a higher plan and are not supported here)" if interval in ("15s", "30s") else ""
        raise QueryError(f"unknown interval {interval!r}; valid: {', '.join(INTERVALS)}{hint}")
    if timestamp not in TIMESTAMPS:
        raise QueryError(f"unknown timestamp source {timestamp!r}; valid: exchange, true")
    if metric not in METRICS:
        raise QueryError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    if end is None:
        if not isinstance(start, str):
            raise QueryError("give an end date, or a whole range as text like 2024-01..2024-03")
        first, last = parse_range(start, today=today)
    else:
        first, last = _check(parse_date(start, today=today), parse_date(end, end=True, today=today), today)
    atlas = resolve_symbol(exchange, symbol)
    return Query(exchange, atlas, interval, first, last, timestamp, metric, label=str(symbol))  # type: ignore[arg-type]
