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

#: Schema metadata key on the zero-row table of a month the source's listing did not
#: mention: the source's word for "empty" there is not a proof, so the core must not
#: persist it as a complete month. See :func:`is_unlisted`.
UNLISTED = b"aperiodic_jupyter.unlisted"


@runtime_checkable
class Source(Protocol):
    #: "api" or "demo": recorded in ``df.attrs["source"]``.
    name: str
    #: True when the data is simulated; every label downstream says so.
    simulated: bool
    #: What the data is, in words, for ``df.attrs["label"]``, summaries and charts:
    #: simulated, the free preview, or the user's own API data.
    label: str
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
        intact. A month with no data is handed over as a zero-row table (marked with
        :data:`UNLISTED` when the source was not told it is empty, only not told of it)."""
        ...

    def cancel(self) -> None:
        """Cancel every fetch running on this source, from any thread: each raises
        :class:`FetchCancelled` promptly. Fetches started afterwards are not affected."""
        ...

    def close(self) -> None: ...


def empty_month() -> pa.Table:
    return pa.table({"time": pa.array([], type=pa.timestamp("us"))})


def unlisted_month() -> pa.Table:
    """The zero-row table of a month the listing left out: :func:`empty_month` marked
    with :data:`UNLISTED` in its schema metadata."""
    return empty_month().replace_schema_metadata({UNLISTED: b"1"})


def is_unlisted(table: pa.Table) -> bool:
    """True for a month handed over empty only because the listing did not mention it
    (an API answering ``{"files": []}`` for a past range looks exactly like this): keep
    it in memory if you like, never persist it as a complete month."""
    return table.num_rows == 0 and (table.schema.metadata or {}).get(UNLISTED) == b"1"
