"""Coverage: what the data covers versus what was asked.

A query asks for whole UTC days; the data may start later (the contract was captured
from a later day), stop earlier (it was delisted) or be missing altogether. The venue
lists carry each instrument's capture dates, so this module can say why, in one line:

- :func:`check_listed` runs before any download and raises one
  :class:`~aperiodic_jupyter.NoDataError` line for a range wholly outside those dates;
- :func:`coverage` compares the assembled frame's first and last bar with the asked
  range and returns a :class:`Coverage` whose ``note`` says what is missing, and why.

Everything is compared at day granularity: a bar anywhere in a day covers that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .errors import NoDataError, SymbolError
from .query import Query
from .ranges import utc_today
from .symbols import instrument

__all__ = ["Coverage", "listing", "check_listed", "coverage"]


@dataclass(frozen=True)
class Coverage:
    """The days a frame covers, against the days its query asked for.

    Attributes:
        asked_start, asked_end: the query's first and last day.
        first_bar, last_bar: the days of the frame's first and last bar (``None`` when
            the frame is empty).
        listed_from, listed_until: the instrument's first capture and delisting day
            from the venue list (``None`` when unknown, or still listed).
        complete: ``True`` when the frame reaches both ends of the asked range (today,
            which is never complete yet, is not required).
        note: ``""`` when complete, else one line such as ``data covers
            2024-10-29..2024-12-31 of 2024-01-01..2024-12-31: hyperliquid-perps
            captures perpetual-ETH-USDC:USDC from 2024-10-29``.
        summary: the short form for a summary line (``""`` when complete), such as
            ``covers 2024-10-29..2024-12-31 only (first capture 2024-10-29)``.
    """

    asked_start: date
    asked_end: date
    first_bar: date | None
    last_bar: date | None
    listed_from: date | None
    listed_until: date | None
    complete: bool
    note: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for ``df.attrs["coverage"]`` (dates as ISO text)."""
        return {
            "asked": [self.asked_start.isoformat(), self.asked_end.isoformat()],
            "covered": [_iso(self.first_bar), _iso(self.last_bar)],
            "listed": [_iso(self.listed_from), _iso(self.listed_until)],
            "complete": self.complete,
            "note": self.note,
            "summary": self.summary,
        }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _day(text: str | None) -> date | None:
    # The venue lists write midnight UTC timestamps ("2024-10-29T00:00:00.000Z").
    return date.fromisoformat(text[:10]) if text else None


def listing(query: Query) -> tuple[date | None, date | None]:
    """The instrument's first capture and delisting day, ``(None, None)`` when the
    venue list does not know the symbol (a hand-built query is not an error here)."""
    try:
        inst = instrument(query.exchange, query.symbol)
    except SymbolError:
        return None, None
    return _day(inst.first_capture), _day(inst.end_date)


def check_listed(query: Query) -> None:
    """Raise :class:`NoDataError` when the asked range lies wholly before the
    instrument's first capture or wholly after its delisting: no source has data there,
    so nothing should be downloaded and the user should not get a silent empty frame."""
    listed_from, listed_until = listing(query)
    where = f"{query.symbol} on {query.exchange}"
    asked = f"{query.start.isoformat()}..{query.end.isoformat()}"
    if listed_from and query.end < listed_from:
        raise NoDataError(
            f"no data for {where} before {listed_from.isoformat()} (first capture); the range {asked} ends before it"
        )
    if listed_until and query.start > listed_until:
        raise NoDataError(
            f"no data for {where} after {listed_until.isoformat()} (last capture); the range {asked} starts after it"
        )


def coverage(
    query: Query, first_bar: datetime | None, last_bar: datetime | None, *, today: date | None = None
) -> Coverage:
    """Compare a frame's first and last bar (UTC) with the days ``query`` asked for.

    The start must be reached on the asked first day. The end must be reached on the
    asked last day, except for a range that ends today: today's bars are still coming
    (and the API publishes the newest ones with a delay), so data through yesterday
    counts as complete there.
    """
    today = today or utc_today()
    listed_from, listed_until = listing(query)
    first = first_bar.date() if first_bar else None
    last = last_bar.date() if last_bar else None
    due_end = query.end if query.end < today else today - timedelta(days=1)
    if due_end < query.start:  # only today was asked: nothing is due yet
        complete = True
    else:
        complete = first is not None and last is not None and first <= query.start and last >= due_end
    note = summary = ""
    if not complete:
        note, summary = _describe(query, first, last, due_end, listed_from, listed_until)
    return Coverage(query.start, query.end, first, last, listed_from, listed_until, complete, note, summary)


def _describe(
    query: Query,
    first: date | None,
    last: date | None,
    due_end: date,
    listed_from: date | None,
    listed_until: date | None,
) -> tuple[str, str]:
    """``(note, summary)`` for a frame that does not cover the asked range."""
    asked = f"{query.start.isoformat()}..{query.end.isoformat()}"
    # Name the capture dates where they explain a gap; otherwise the source simply had
    # no bars there, and saying where is all we know.
    reasons: list[str] = []
    short: list[str] = []
    if first is None or first > query.start:
        if listed_from and listed_from > query.start:
            reasons.append(f"{query.exchange} captures {query.symbol} from {listed_from.isoformat()}")
            short.append(f"first capture {listed_from.isoformat()}")
        if first is not None and first > max(query.start, listed_from or query.start):
            reasons.append(f"the source has no bars before {first.isoformat()}")
    if last is None or last < due_end:
        if listed_until and listed_until < query.end:
            reasons.append(f"{query.exchange} captured {query.symbol} until {listed_until.isoformat()}")
            short.append(f"last capture {listed_until.isoformat()}")
        if last is not None and last < min(due_end, listed_until or due_end):
            reasons.append(f"the source has no bars after {last.isoformat()}")
    paren = f" ({', '.join(short)})" if short else ""
    if first is None or last is None:
        why = "; ".join(reasons) or "the source has no bars there"
        return f"no data in {asked}: {why}", f"no data in the range{paren}"
    covered = f"{first.isoformat()}..{last.isoformat()}"
    return f"data covers {covered} of {asked}: {'; '.join(reasons)}", f"covers {covered} only{paren}"
