"""Queries: the one place where text and arguments become a validated :class:`Query`.

The magic, the explorer and :func:`~aperiodic_jupyter.get_flow` all build queries here,
so an input is valid or invalid the same way everywhere, and every rejection is one
:class:`~aperiodic_jupyter.QueryError` line that says what is valid. Exchanges come from
:mod:`.venues`, symbols from :mod:`.symbols`, dates from :mod:`.ranges`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Literal

from .errors import QueryError
from .ranges import Month, check_range, parse_date, parse_range, utc_today
from .symbols import resolve_symbol
from .venues import resolve_exchange

__all__ = ["Query", "INTERVALS", "INTERVAL_SECONDS", "TIMESTAMPS", "METRICS", "make_query", "interval_ns"]

#: Bar lengths, shortest first, with their seconds. 15s and 30s need a higher API plan
#: (the API answers 403 otherwise); the demo source simulates every one.
INTERVAL_SECONDS: dict[str, int] = {
    "15s": 15,
    "30s": 30,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
}
INTERVALS: tuple[str, ...] = tuple(INTERVAL_SECONDS)
#: Intervals only higher API plans serve.
SUB_MINUTE: frozenset[str] = frozenset(i for i, seconds in INTERVAL_SECONDS.items() if seconds < 60)
TIMESTAMPS: tuple[str, ...] = ("exchange", "true")
#: Metrics served on the same ``/data/{metric}`` path shape (the public client's list).
METRICS: tuple[str, ...] = (
    "flow",
    "ohlcv",
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


def interval_ns(interval: str) -> int:
    """Length of an interval in nanoseconds."""
    try:
        return INTERVAL_SECONDS[interval] * 1_000_000_000
    except KeyError:
        raise QueryError(f"unknown interval {interval!r}; valid: {', '.join(INTERVALS)}") from None


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

    @property
    def months(self) -> list[Month]:
        """Every calendar month the range touches, in order."""
        out, m, last = [], Month.of(self.start), Month.of(self.end)
        while m <= last:
            out.append(m)
            m = m.next()
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d


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
    today = today or utc_today()
    exchange = resolve_exchange(exchange)
    if interval not in INTERVALS:
        raise QueryError(f"unknown interval {interval!r}; valid: {', '.join(INTERVALS)}")
    if timestamp not in TIMESTAMPS:
        raise QueryError(f"unknown timestamp source {timestamp!r}; valid: exchange, true")
    if metric not in METRICS:
        raise QueryError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    if end is None:
        if not isinstance(start, str):
            raise QueryError("give an end date, or a whole range as text like 2024-01..2024-03")
        first, last = parse_range(start, today=today)
    else:
        first, last = check_range(parse_date(start, today=today), parse_date(end, end=True, today=today), today)
    atlas = resolve_symbol(exchange, symbol)
    return Query(exchange, atlas, interval, first, last, timestamp, metric)  # type: ignore[arg-type]
