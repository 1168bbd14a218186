"""Several symbols or venues fetched together into one tidy frame.

``get_flow(["binance-futures", "okx-perps"], "BTC", ...)`` and ``%flow binance,okx BTC
…`` resolve the symbol per venue (``BTC`` is ``perpetual-BTC-USDT:USDT`` on Binance and
OKX, ``perpetual-BTC-USDC:USDC`` on Hyperliquid), fetch every pair at once (each fetch
still goes through the client's cache and download pool), and stack the frames with
``exchange`` and ``symbol`` columns. A venue that does not list the symbol is skipped
and named in one line (``df.attrs["skipped"]``); the others still load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import SymbolError
from .progress import Progress
from .query import Query, make_query
from .venues import resolve_exchange

if TYPE_CHECKING:
    from .client import Client

__all__ = ["plan_queries", "fetch_all", "combine"]


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


def fetch_all(client: Client, queries: Sequence[Query], **options: Any) -> list[pd.DataFrame]:
    """Fetch every query at once, in query order. The first error is raised after
    every fetch has finished, so no download is left running behind it."""
    if len(queries) == 1:
        return [client.fetch(queries[0], **options)]
    progress = options.pop("progress", None)
    # A bar per fetch would draw over one another: several fetches show none, and a
    # callback sees the months of all of them added up.
    callbacks = _summed(progress, len(queries)) if callable(progress) else [None] * len(queries)
    with ThreadPoolExecutor(max_workers=min(len(queries), 8), thread_name_prefix="aperiodic-combine") as pool:
        futures = [pool.submit(client.fetch, q, progress=cb, **options) for q, cb in zip(queries, callbacks, strict=True)]
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
    out = pd.concat(parts, ignore_index=True).sort_values(["time", "exchange", "symbol"], kind="stable", ignore_index=True)
    first = frames[0].attrs
    out.attrs = {
        "queries": [f.attrs["query"] for f in frames],
        "source": first.get("source"),
        "simulated": first.get("simulated"),
        "label": first.get("label"),
        "parts": {f"{f.attrs['query']['exchange']} {f.attrs['query']['symbol']}": _provenance(f.attrs) for f in frames},
        "skipped": list(skipped),
    }
    return out


def _provenance(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: attrs[k] for k in ("months", "coverage", "price", "fetched_at") if k in attrs}
