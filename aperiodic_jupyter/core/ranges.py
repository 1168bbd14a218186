"""Dates: the :class:`Month` (the unit of files and of the cache) and the compact range
grammar every front end accepts.

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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .errors import QueryError

__all__ = ["Month", "RANGE_HELP", "utc_today", "parse_range", "parse_date", "check_range"]


def utc_today() -> date:
    """Today's date in UTC (the API's days are UTC days)."""
    return datetime.now(UTC).date()


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


RANGE_HELP = "use YYYY-MM, YYYY-MM..YYYY-MM, YYYY-MM-DD..YYYY-MM-DD, YYYY, YYYY-Q1, 7d, 4w, today"
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-?[qQ]([1-4])$")
_RELATIVE = re.compile(r"^(\d+)\s*([dw])$", re.IGNORECASE)
#: The longest relative range: 50 years reach back before any crypto market existed.
_MAX_RELATIVE_DAYS = 50 * 366


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
        raise QueryError(f"invalid date {t!r}: no such day or month; {RANGE_HELP}") from None
    if t.lower() == "today":
        return today, today
    if t.lower() == "yesterday":
        d = today - timedelta(days=1)
        return d, d
    raise QueryError(f"malformed date {t!r}; {RANGE_HELP}")


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
        raise QueryError(f"empty date range; {RANGE_HELP}")
    if m := _RELATIVE.match(t):
        days = int(m[1]) * (7 if m[2].lower() == "w" else 1)
        if days < 1:
            raise QueryError(f"a relative range needs at least one day, got {t!r}; {RANGE_HELP}")
        if days > _MAX_RELATIVE_DAYS:
            raise QueryError(f"a relative range of {t!r} reaches back before any data; at most {_MAX_RELATIVE_DAYS}d, or write 2019..today")
        return check_range(today - timedelta(days=days - 1), today, today)
    sep = ".." if ".." in t else "/" if "/" in t else None
    if sep is None:
        start, end = _span(t, today)
    else:
        left, _, right = t.partition(sep)
        if not left.strip():
            raise QueryError(f"range {t!r} has no start; {RANGE_HELP}")
        start = _span(left, today)[0]
        end = _span(right, today)[1] if right.strip() else today
    return check_range(start, end, today)


def check_range(start: date, end: date, today: date) -> tuple[date, date]:
    if start > today:
        raise QueryError(
            f"range starts in the future ({start.isoformat()}); the latest day with data is {today.isoformat()} (UTC)"
        )
    if end < start:
        raise QueryError(f"range ends ({end.isoformat()}) before it starts ({start.isoformat()}); write START..END")
    return start, min(end, today)
