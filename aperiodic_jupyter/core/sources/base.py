"""What the fetch core asks of a source; the core cannot tell sources apart otherwise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import pyarrow as pa

from ..query import Query
from ..ranges import Month

#: Called once per month as soon as its data is complete: (month, table, raw file bytes
#: when the month came as one file, else None). May be called from worker threads.
OnMonth = Callable[[Month, pa.Table, bytes | bytearray | None], None]


@runtime_checkable
class Source(Protocol):
    #: "api" or "demo": recorded in ``df.attrs["source"]``.
    name: str
    #: True when the data is simulated; every label downstream says so.
    simulated: bool
    #: Directory name of this source's disk cache; differs per API host, so that a
    #: test server's files never mix with the real API's.
    cache_namespace: str

    def check(self, query: Query) -> None:
        """Raise at once if this source can never answer ``query`` (no key, a metric it
        does not serve), before any progress is shown."""
        ...

    def fetch_months(self, query: Query, months: Sequence[Month], on_month: OnMonth) -> None:
        """Fetch whole months of ``query`` and hand each to ``on_month``; raise a
        :class:`~aperiodic_jupyter.errors.SourceError` if any month cannot be had
        intact. A month with no data is handed over as a zero-row table."""
        ...

    def close(self) -> None: ...


def empty_month() -> pa.Table:
    return pa.table({"time": pa.array([], type=pa.timestamp("us"))})
