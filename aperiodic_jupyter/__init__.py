"""aperiodic-jupyter: crypto taker-flow data in Jupyter.

>>> from aperiodic_jupyter import get_flow
>>> df = get_flow("binance-futures", "BTC", "1h", "2024-01-01", "2024-03-31")

With no API key configured the data comes from the embedded demo source and is labelled
as simulated (``df.attrs["simulated"]``). In a notebook: ``%load_ext aperiodic_jupyter``
then ``%flow binance BTC 1h 2024-01..2024-03``.

``output="polars"`` or ``output="arrow"`` returns a Polars DataFrame or an Arrow table
instead, straight from the Arrow table the core holds (no pandas on the way);
``provenance(df)`` reads where any of the three came from.
"""

from __future__ import annotations

__version__ = "0.1.0"

import asyncio
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Unpack

from .core.client import Client, FetchOptions, default_client
from .core.compute import compute_flow, order_size_shares
from .core.errors import (
    AperiodicError,
    AuthError,
    DownloadError,
    ExportExtraMissing,
    FetchCancelled,
    FormatError,
    NoDataError,
    PlanError,
    PreviewError,
    QueryError,
    SchemaError,
    ServerError,
    SourceError,
    StreamClosed,
    StreamError,
    StreamRefused,
    SubscriptionRejected,
    SymbolError,
)
from .core.live import Bar, GapFill, LiveFlow, stream_flow
from .core.output import OUTPUTS, Frame, provenance
from .core.progress import Progress
from .core.query import INTERVALS, Query, make_query
from .core.ranges import parse_range
from .core.schema import FLOW_UNITS
from .core.settings import Secret, settings
from .core.symbols import resolve_symbol
from .core.trades import read_binance_aggtrades, read_okx_trades
from .core.venues import EXCHANGES
from .jupyter.flow_call import flow

if TYPE_CHECKING:
    from .jupyter.explorer import FlowExplorer

__all__ = [
    "__version__",
    "get_flow",
    "flow",
    "get_metrics",
    "get_ohlcv",
    "get_flow_async",
    "stream_flow",
    "LiveFlow",
    "Bar",
    "GapFill",
    "StreamError",
    "StreamRefused",
    "StreamClosed",
    "SubscriptionRejected",
    "get_metrics_async",
    "provenance",
    "OUTPUTS",
    "default_client",
    "set_api_key",
    "Client",
    "Query",
    "Progress",
    "FlowExplorer",
    "make_query",
    "parse_range",
    "resolve_symbol",
    "compute_flow",
    "order_size_shares",
    "settings",
    "EXCHANGES",
    "INTERVALS",
    "FLOW_UNITS",
    "AperiodicError",
    "QueryError",
    "SymbolError",
    "SourceError",
    "AuthError",
    "PlanError",
    "PreviewError",
    "NoDataError",
    "ServerError",
    "DownloadError",
    "SchemaError",
    "FormatError",
    "FetchCancelled",
    "ExportExtraMissing",
    "read_binance_aggtrades",
    "read_okx_trades",
]


def __getattr__(name: str) -> Any:
    # The explorer pulls in ipywidgets, anywidget and Altair: load it only when asked
    # for, so `import aperiodic_jupyter` stays light (as lonboard does for Map).
    if name == "FlowExplorer":
        from .jupyter.explorer import FlowExplorer

        return FlowExplorer
    raise AttributeError(f"module 'aperiodic_jupyter' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext aperiodic_jupyter``: registers ``%flow``, ``%config Aperiodic`` and
    tab completion."""
    from .jupyter.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .jupyter.magic import unload_ipython_extension as unload

    unload(ipython)


def set_api_key(key: str | None) -> None:
    """Set the API key for this kernel (what ``%config Aperiodic.api_key`` does)."""
    settings.api_key = Secret(key) if key else None


def get_metrics(
    metric: str,
    exchange: str | Sequence[str],
    symbol: str | Sequence[str],
    interval: str,
    start: date | datetime | str,
    end: date | datetime | str | None = None,
    *,
    source: str | None = None,
    **options: Unpack[FetchOptions],
) -> Frame:
    """Any metric on the API's ``/data/{metric}`` path as a DataFrame (or, with
    ``output``, a Polars frame or an Arrow table); see :func:`get_flow`."""
    options.setdefault("progress", True)
    return default_client(source or "auto").get_metrics(metric, exchange, symbol, interval, start, end, **options)


def get_flow(
    exchange: str | Sequence[str],
    symbol: str | Sequence[str],
    interval: str,
    start: date | datetime | str,
    end: date | datetime | str | None = None,
    *,
    source: str | None = None,
    **options: Unpack[FetchOptions],
) -> Frame:
    """Taker-flow metrics for one symbol as a pandas DataFrame (or, with ``output``, a
    Polars DataFrame or an Arrow table).

    Args:
        exchange: ``binance-futures``, ``okx-perps``, ``hyperliquid-perps`` (or the
            aliases ``binance``, ``okx``, ``hyperliquid``), or a list of them: venues
            side by side in one tidy frame with ``exchange`` and ``symbol`` columns (a
            venue that does not list the symbol is skipped, ``df.attrs["skipped"]``).
        symbol: ``BTC``, ``BTCUSDT``, ``BTC-USDT-SWAP``, ``BTC/USDT:USDT`` or the Atlas
            ``perpetual-BTC-USDT:USDT``, or a list of them; a base resolves per venue.
        interval: ``15s 30s 1m 5m 15m 30m 1h 4h 1d`` (15s and 30s need a higher API plan).
        start, end: UTC days, inclusive (``date``, ``datetime`` or ``"2024-01-31"``); or
            pass a whole range as ``start`` (``"2024-01..2024-03"``) and no ``end``.
        timestamp: ``exchange`` (exchange time) or ``true`` (arrival time).
        source: ``auto`` (default: the API when a key is configured, else the demo),
            ``api`` or ``demo``.
        refresh: fetch again even if cached.
        progress: show a progress bar while months download (default ``True``).
        with_price: also fetch the price bars and join ``open high low close`` on
            ``time`` (bars missing on one side stay, as nulls: NaN in pandas); if the
            price cannot be had the flow is returned whole and ``df.attrs["price"]``
            (``provenance(df)["price"]`` for any output) says why. Works with every
            output: the join is done in Arrow.
        output: ``pandas`` (default), ``polars`` or ``arrow``. ``polars`` is
            ``pl.from_arrow`` of the core's table, zero-copy (one chunk per month), and
            needs ``pip install polars``; ``arrow`` is the ``pyarrow.Table`` itself.
            ``time`` is tz-aware UTC in all three (``Datetime("ns", "UTC")`` in
            Polars). Lists of venues or symbols are stacked in Arrow for both.

    Returns:
        One row per bar: ``time`` (tz-aware UTC bar start, a column), base-asset
        volumes (``taker_buy_volume``...), trade counts, quote-notional columns
        (``volume_delta_notional``, ``taker_*_order_volume``), ratios and scores. See
        ``aperiodic_jupyter.FLOW_UNITS`` for every column's unit. ``df.attrs`` says
        where the data came from, whether it is simulated, and what it covers; for an
        Arrow table the same dict is JSON in the schema metadata (key
        ``b"aperiodic_jupyter"``), and Polars frames have no attrs:
        :func:`provenance` returns it for any of the three (for Polars, only for the
        frame returned here, not frames derived from it).
    """
    return get_metrics("flow", exchange, symbol, interval, start, end, source=source, **options)


def get_ohlcv(
    exchange: str | Sequence[str],
    symbol: str | Sequence[str],
    interval: str,
    start: date | datetime | str,
    end: date | datetime | str | None = None,
    *,
    source: str | None = None,
    **options: Unpack[FetchOptions],
) -> Frame:
    """Price bars for one symbol, through the same query, cache, sources and errors as
    :func:`get_flow` (``GET {base}/data/ohlcv``).

    Returns:
        One row per bar with trades: ``time`` (tz-aware UTC bar start), ``open``,
        ``high``, ``low``, ``close`` (quote per base), ``volume`` (base asset) and
        whatever further columns the source's files carry (the demo adds ``trades``).
    """
    return get_metrics("ohlcv", exchange, symbol, interval, start, end, source=source, **options)


async def get_flow_async(*args: Any, **kwargs: Any) -> Frame:
    """:func:`get_flow` for ``await``: runs in a worker thread, so the event loop
    (Jupyter's included) keeps running; no loop patching."""
    return await asyncio.to_thread(get_flow, *args, **kwargs)


async def get_metrics_async(*args: Any, **kwargs: Any) -> Frame:
    """:func:`get_metrics` for ``await`` (see :func:`get_flow_async`)."""
    return await asyncio.to_thread(get_metrics, *args, **kwargs)
