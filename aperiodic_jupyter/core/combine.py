"""Several symbols or venues fetched together into one tidy frame.

``get_flow(["binance-futures", "okx-perps"], "BTC", ...)`` and ``%flow binance,okx BTC
…`` resolve the symbol per venue (``BTC`` is ``perpetual-BTC-USDT:USDT`` on Binance and
OKX, ``perpetual-BTC-USDC:USDC`` on Hyperliquid), fetch every pair at once (each fetch
still goes through the client's cache and download pool), and stack the frames with
``exchange`` and ``symbol`` columns. A venue that does not list the symbol is skipped
and named in one line (``df.attrs["skipped"]``); the others still load.

Pandas frames are stacked by :func:`combine`; for ``output="polars"`` or ``"arrow"``
the parts are fetched as Arrow tables and stacked by :func:`combine_tables` (the same
columns, order and provenance, no pandas on the way).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from .errors import SymbolError
from .output import provenance
from .progress import Progress
from .query import Query, make_query
from .venues import resolve_exchange

if TYPE_CHECKING:
    from .client import Client

__all__ = ["plan_queries", "fetch_all", "combine", "combine_tables"]

#: The order of a stacked frame's rows.
_ORDER = ["time", "exchange", "symbol"]


def plan_queries(
    exchanges: Sequence[str],
    symbols: Sequence[str],
    interval: str,
    start: date | datetime | str,
    end: date | datetime | str | None = None,
    *,
    timestamp: str = "exchange",
    metric: str = "flow",
) -> tuple[list[Query], list[str]]:
    """One query per (venue, symbol), and one line per pair that cannot be asked
    (the venue does not list the symbol). Raises when no pair is left, or when only
    one pair was asked for (then its error is the answer)."""
    venues = list(dict.fromkeys(resolve_exchange(e) for e in exchanges))
    queries: list[Query] = []
    skipped: list[str] = []
    for exchange in venues:
        for symbol in symbols:
            try:
                queries.append(make_query(exchange, symbol, interval, start, end, timestamp=timestamp, metric=metric))
            except SymbolError as exc:
                if len(venues) * len(symbols) == 1:
                    raise
                skipped.append(f"{exchange}: {exc}")
    if not queries:
        raise SymbolError(f"no venue lists {', '.join(symbols)}: " + "; ".join(skipped))
    return queries, skipped


def fetch_all(client: Client, queries: Sequence[Query], **options: Any) -> list[Any]:
    """Fetch every query at once, in query order (each as ``options["output"]`` asks,
    pandas by default). The first error is raised after every fetch has finished, so
    no download is left running behind it."""
    if len(queries) == 1:
        return [client.fetch(queries[0], **options)]
    progress = options.pop("progress", None)
    # A bar per fetch would draw over one another: several fetches show none, and a
    # callback sees the months of all of them added up.
    callbacks = _summed(progress, len(queries)) if callable(progress) else [None] * len(queries)

    def one(query: Query, callback: Callable[[Progress], None] | None) -> Any:
        return client.fetch(query, progress=callback, **options)

    with ThreadPoolExecutor(max_workers=min(len(queries), 8), thread_name_prefix="aperiodic-combine") as pool:
        futures = [pool.submit(one, q, cb) for q, cb in zip(queries, callbacks, strict=True)]
        return [f.result() for f in futures]


def _summed(callback: Callable[[Progress], None], n: int) -> list[Callable[[Progress], None]]:
    """``n`` progress callbacks whose reports reach ``callback`` added up."""
    lock = threading.Lock()
    latest = [Progress(0, 0, 0)] * n

    def make(i: int) -> Callable[[Progress], None]:
        def report(p: Progress) -> None:
            with lock:
                latest[i] = p
                total = Progress(sum(x.done for x in latest), sum(x.total for x in latest), sum(x.cached for x in latest))
            callback(total)

        return report

    return [make(i) for i in range(n)]


def combine(frames: Sequence[pd.DataFrame], skipped: Sequence[str] = ()) -> pd.DataFrame:
    """Stack frames with ``exchange`` and ``symbol`` columns after ``time``, sorted by
    time then venue. ``attrs`` keeps each part's provenance under ``parts`` (keyed
    ``exchange symbol``) and what was skipped."""
    parts = []
    for f in frames:
        q = f.attrs["query"]
        part = f.copy()
        part.insert(1, "exchange", q["exchange"])
        part.insert(2, "symbol", q["symbol"])
        parts.append(part)
    out = pd.concat(parts, ignore_index=True).sort_values(_ORDER, kind="stable", ignore_index=True)
    out.attrs = _combined_attrs([f.attrs for f in frames], skipped)
    return out


def combine_tables(tables: Sequence[pa.Table], skipped: Sequence[str] = ()) -> tuple[pa.Table, dict[str, Any]]:
    """:func:`combine` in Arrow, for tables carrying their provenance in the schema
    metadata (``output="arrow"``): the stacked table and its provenance, as
    :func:`combine` would put them in ``attrs``. Columns a part lacks are null."""
    attrs = [provenance(t) for t in tables]
    parts = []
    for table, a in zip(tables, attrs, strict=True):
        q, n = a["query"], table.num_rows
        part = table.replace_schema_metadata(None)
        part = part.add_column(1, "exchange", pa.repeat(q["exchange"], n)).add_column(2, "symbol", pa.repeat(q["symbol"], n))
        parts.append(part)
    out = pa.concat_tables(parts, promote_options="default").sort_by([(c, "ascending") for c in _ORDER])
    return out, _combined_attrs(attrs, skipped)


def _combined_attrs(attrs: Sequence[dict[str, Any]], skipped: Sequence[str]) -> dict[str, Any]:
    first = attrs[0]
    return {
        "queries": [a["query"] for a in attrs],
        "source": first.get("source"),
        "simulated": first.get("simulated"),
        "label": first.get("label"),
        "parts": {f"{a['query']['exchange']} {a['query']['symbol']}": _provenance(a) for a in attrs},
        "skipped": list(skipped),
    }


def _provenance(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: attrs[k] for k in ("months", "coverage", "price", "fetched_at") if k in attrs}
