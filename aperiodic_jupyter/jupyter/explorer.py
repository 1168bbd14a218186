"""``FlowExplorer``: pick exchange, symbol, interval and range, click Load, brush the chart.

One anywidget (JavaScript in ``js/explorer.js``; the chart part is ``js/chart_view.js``,
loaded once per page by ``js/loader.js``): the form, progress, status and error line,
summary, and below them the same chart and export bar as the flow panel
(:class:`~.chart_widget.ChartWidget`, which it is). Being one widget,
it works wherever anywidgets do: JupyterLab, Notebook 7, Voila, VS Code, and marimo
through ``mo.ui.anywidget(FlowExplorer())``.

Loading goes through the same core as everything else (:class:`~aperiodic_jupyter.Client`),
in a worker thread, because comm messages are handled only while the kernel is idle and a
fetch can take longer than a front end waits for a reply. Progress, status and errors
come back through traits. In marimo, a load finishing in a worker thread re-runs the
cells that use the explorer because the page answers the new chart by writing ``drawn``
(see :mod:`.chart_widget`).

With **Live** ticked, Load follows the market instead of fetching the range: recent
history, then each bar as it is published, the state line in the status, and a Stop
button (:class:`~.live_panel.LiveChart` does the chart's part, as for ``%flow … live``;
re-running the cell that made the explorer, or the kernel's interrupt, stops it too).

The API key is never a trait (widget state is saved into notebooks): the API source
uses the key from ``%config``/``APERIODIC_API_KEY``. Saved state holds the query fields,
the summary line, progress counters and the chart of the last load (its rows packed,
at most ``max_points`` bars: a few hundred kB at most), never the frame itself.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pandas as pd
import traitlets

from ..core.client import Client, default_client
from ..core.combine import combine, fetch_all, plan_queries
from ..core.errors import AperiodicError, FetchCancelled, QueryError
from ..core.live import LiveFlow, stream_flow
from ..core.progress import Progress
from ..core.query import INTERVALS, TIMESTAMPS, Query
from ..core.settings import SOURCES
from ..core.symbols import base_symbols
from ..core.venues import EXCHANGES, resolve_exchange
from . import live_cells
from .live_panel import LiveChart, LiveUpdater
from .panel_choice import DEFAULT_PANELS, PANELS, PRICE_PANELS, parse_panels
from .vega_library import esm

__all__ = ["FlowExplorer"]


def _venues(text: str) -> list[str]:
    """Canonical venue names from ``"okx"`` or ``"binance,okx"`` (raises on a bad one)."""
    return list(dict.fromkeys(resolve_exchange(v) for v in str(text).split(",") if v.strip()))


def _symbol_options(text: str) -> list[str]:
    """Bases listed on any of the chosen venues, for the symbol field's suggestions."""
    try:
        return sorted({b for v in _venues(text) for b in base_symbols(v)})
    except AperiodicError:
        return []


class FlowExplorer(LiveChart):
    """The explorer. Prefill it from Python (``FlowExplorer(symbol="ETH", interval="15m")``)
    or from the magic (``%flow ... --widget``).

    Several venues (``exchange="binance,okx"``) or symbols (``symbol="BTC,ETH"``) load
    into one tidy frame with ``exchange`` and ``symbol`` columns, shown as the comparison
    view.

    Every form field is a synced trait (``exchange``, ``symbol``, ``interval``,
    ``range_text``, ``timestamp``, ``source``, ``panels``), as are ``loading``,
    ``progress_done``/``progress_total``/``progress_cached``, ``status``, ``error`` and
    ``summary``; ``live`` (the Live toggle) and ``live_running`` (following now).

    ``live=True`` (or the Live toggle) makes Load follow the market: ``history`` (bars or a
    ``timedelta``; default ``%config Aperiodic.live_history``) first, then each bar; the
    range is not used. ``speed`` runs the simulated demo feed faster (600: a 1m bar
    every 0.1 s). :meth:`stop` (the Stop button) ends it.

    Attributes:
        query: the last loaded :class:`~aperiodic_jupyter.Query` (observable); the
            first of ``queries`` when several venues or symbols were loaded.
        queries: every query of the last load.
        df: the last loaded frame (observable).
        brush_range: ``(start, end)`` UTC timestamps of the brush, or ``None``.
        brushed: the rows inside the brush (the whole frame when nothing is brushed).
        panel: the part that draws the chart and its exports: the explorer itself once
            something is loaded (``panel.brushed``, ``panel.export_bytes(...)``), else
            ``None``.
    """

    _esm = esm("loader.js", "explorer.js")

    exchanges = traitlets.List(list(EXCHANGES)).tag(sync=True)
    intervals = traitlets.List(list(INTERVALS)).tag(sync=True)
    timestamps = traitlets.List(list(TIMESTAMPS)).tag(sync=True)
    sources = traitlets.List(list(SOURCES)).tag(sync=True)
    symbol_options: traitlets.List[str] = traitlets.List([]).tag(sync=True)
    panel_options = traitlets.List(list(PANELS)).tag(sync=True)

    exchange = traitlets.Unicode("binance-futures").tag(sync=True)
    symbol = traitlets.Unicode("BTC").tag(sync=True)
    interval = traitlets.Unicode("1h").tag(sync=True)
    range_text = traitlets.Unicode("2024-01..2024-03").tag(sync=True)
    timestamp = traitlets.Unicode("exchange").tag(sync=True)
    source = traitlets.Unicode("auto").tag(sync=True)
    panels = traitlets.List(list(DEFAULT_PANELS)).tag(sync=True)

    loading = traitlets.Bool(False).tag(sync=True)
    progress_done = traitlets.Int(0).tag(sync=True)
    progress_total = traitlets.Int(0).tag(sync=True)
    progress_cached = traitlets.Int(0).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    #: The number of finished loads (a marimo cell can read ``explorer.value["loads"]``).
    loads = traitlets.Int(0).tag(sync=True)
    #: The Live toggle: Load follows the market instead of fetching the range.
    live = traitlets.Bool(False).tag(sync=True)
    #: Following the market now (the page shows Stop).
    live_running = traitlets.Bool(False).tag(sync=True)

    query = traitlets.Instance(Query, allow_none=True)

    def __init__(
        self,
        exchange: str = "binance-futures",
        symbol: str = "BTC",
        interval: str = "1h",
        range: str = "2024-01..2024-03",  # noqa: A002 - the grammar's own word
        *,
        timestamp: str = "exchange",
        source: str = "auto",
        panels: str | list[str] | tuple[str, ...] | None = None,
        client: Client | None = None,
        live: bool = False,
        history: int | timedelta | None = None,
        speed: float = 1.0,
        **kwargs: Any,
    ) -> None:
        exchange = ",".join(_venues(exchange))  # "okx" must select the okx-perps option
        super().__init__(
            exchange=exchange,
            symbol=symbol,
            interval=interval,
            range_text=range,
            timestamp=timestamp,
            source=source,
            panels=list(parse_panels(panels)),
            symbol_options=_symbol_options(exchange),
            show_summary=False,  # the form shows the summary
            live=live,
            **kwargs,
        )
        self.queries: list[Query] = []
        self._client = client
        self._thread: threading.Thread | None = None
        self.flow: LiveFlow | None = None  # the live flow followed last
        self._history, self._speed = history, speed
        self._updater: LiveUpdater | None = None
        self._cell = live_cells.cell_key()  # re-running the cell that made it stops it

    def __repr__(self) -> str:
        # What a terminal, a saved notebook's text form or nbconvert shows.
        if self.summary:
            return f"FlowExplorer: {self.summary}"
        return f"FlowExplorer: {self.exchange} {self.symbol} {self.interval} {self.range_text}, not loaded"

    @property
    def selector(self) -> FlowExplorer:
        """The form's traits: the explorer itself (it is one widget). Kept for code
        written for the two-widget explorer (``w.selector.symbol = "SOL"``)."""
        return self

    @property
    def panel(self) -> FlowExplorer | None:
        return self if self.df is not None else None

    @classmethod
    def from_query(
        cls, query: Query, *, source: str = "auto", panels: tuple[str, ...] | None = None, **live: Any
    ) -> FlowExplorer:
        """Prefilled with ``query``; ``live``, ``history`` and ``speed`` as for the constructor."""
        text = f"{query.start.isoformat()}..{query.end.isoformat()}"
        return cls(
            query.exchange, query.symbol, query.interval, text, timestamp=query.timestamp, source=source, panels=panels, **live
        )

    # -- loading -----------------------------------------------------------------------

    @traitlets.observe("exchange")
    def _exchange_changed(self, change: dict[str, Any]) -> None:
        self.symbol_options = _symbol_options(change["new"])

    @traitlets.observe("live")
    def _live_changed(self, change: dict[str, Any]) -> None:
        if not change["new"]:  # the toggle unticked while following: stop
            self.stop()

    def _on_message(self, widget: Any, content: dict[str, Any], buffers: list[bytes]) -> None:
        if content.get("type") == "cancel":
            self.cancel()
        elif content.get("type") == "stop":
            self.stop()
        elif content.get("type") == "load":
            fields = content.get("query") or {}
            with self.hold_sync():
                for name in ("exchange", "symbol", "interval", "range_text", "timestamp", "source"):
                    if name in fields:
                        setattr(self, name, str(fields[name]))
                if isinstance(fields.get("panels"), list):
                    self.panels = [str(p) for p in fields["panels"]]
                if "live" in fields:
                    self.live = bool(fields["live"])
            self.load(wait=False)
        else:
            super()._on_message(widget, content, buffers)

    def load(self, *, wait: bool = True) -> pd.DataFrame | None:
        """Fetch the selected query (with ``live``: start following the market). From
        Python this waits and returns the frame (live: once the history is shown); the
        Load button runs it in the background."""
        if self._thread is not None and self._thread.is_alive():
            self.error = "a load is already running"
            return None
        self.stop()  # a load replaces what the explorer followed
        try:
            symbols = [x.strip() for x in self.symbol.split(",") if x.strip()] or [self.symbol]
            queries, skipped = plan_queries(
                _venues(self.exchange) or [self.exchange],
                symbols,
                self.interval,
                "today" if self.live else self.range_text,  # a live view's range is now
                timestamp=self.timestamp,
            )
            panels = parse_panels(self.panels)
            if self.live:
                return self._follow(queries, panels, wait)
        except AperiodicError as exc:
            self.error = str(exc)
            self.status = ""
            if wait:
                raise
            return None
        with self.hold_sync():
            self.error = ""
            q = queries[0]
            what = q.symbol if len(queries) == 1 else f"{len(queries)} venues and symbols"
            self.status = f"loading {what} {q.interval} {q.start}..{q.end}"
            self.loading = True
            self.progress_done = self.progress_total = self.progress_cached = 0
        result: dict[str, Any] = {}
        self._thread = threading.Thread(
            target=self._fetch, args=(queries, skipped, panels, result), name="aperiodic-explorer", daemon=True
        )
        self._thread.start()
        if wait:
            self._thread.join()
            if "error" in result:
                raise result["error"]
            return self.df
        return None

    def cancel(self) -> None:
        """Stop the running load (the Cancel button): downloads stop within a fraction
        of a second, months already finished stay cached, nothing partial is kept."""
        if self._updater is not None and self._updater.running:
            self.stop()
            return
        if self._thread is None or not self._thread.is_alive():
            return
        self.status = "cancelling"
        (self._client or default_client(self.source)).source.cancel()

    def _progress(self, p: Progress) -> None:
        with self.hold_sync():
            self.progress_total = p.total
            self.progress_done = p.done
            self.progress_cached = p.cached

    def _fetch(self, queries: list[Query], skipped: list[str], panels: tuple[str, ...], result: dict[str, Any]) -> None:
        try:
            client = self._client or default_client(self.source)
            # Price comes along when a price panel is drawn; a price failure keeps the flow.
            frames = fetch_all(client, queries, progress=self._progress, with_price=bool(PRICE_PANELS & set(panels)))
            df = combine(frames, skipped) if len(frames) > 1 else frames[0]
            self._draw(df, panels)
            with self.hold_sync():
                self.status = "loaded"
                self.loads += 1
                # Before df is set: whoever watches df sees a finished load.
                self.loading = False
            self.queries = list(queries)
            self.query = queries[0]
            self.df = df
        except FetchCancelled as exc:
            result["error"] = exc
            self.status = "cancelled: months finished before it are cached"
        except AperiodicError as exc:
            result["error"] = exc
            self.error = str(exc)
            self.status = ""
        except Exception as exc:  # shown inline: a widget callback has nowhere else to go
            result["error"] = exc
            self.error = f"unexpected error: {type(exc).__name__}: {exc}"
            self.status = ""
        finally:
            self.loading = False

    # -- following the market ----------------------------------------------------------------

    def _follow(self, queries: list[Query], panels: tuple[str, ...], wait: bool) -> pd.DataFrame | None:
        if queries[0].timestamp != "exchange":
            raise QueryError("live follows the stream's exchange-time bars: set timestamp to exchange")
        flow = stream_flow(
            list(dict.fromkeys(q.exchange for q in queries)),
            list(dict.fromkeys(q.symbol for q in queries)),
            queries[0].interval,
            history=self._history,
            with_price=bool(PRICE_PANELS & set(panels)),
            source=self.source,
            client=self._client,
            speed=self._speed,
        )
        with self.hold_sync():
            self.error = ""
            self.status = "starting"
            self.loading = self.live_running = True
            self.progress_done = self.progress_total = self.progress_cached = 0
        self.flow = flow
        first = [True]

        def show(df: pd.DataFrame, since: pd.Timestamp) -> None:
            self.show_live(df, None if first[0] else since, panels)
            if first[0]:
                first[0] = False
                self.queries, self.query = list(queries), queries[0]
                with self.hold_sync():
                    self.loads += 1
                    self.loading = False

        def state(line: str, running: bool) -> None:
            with self.hold_sync():
                if not running and flow.error is not None:
                    self.error, self.status = line, "stopped"
                else:
                    self.status = line
                self.live_running = running
                if not running:
                    self.loading = False

        self._updater = LiveUpdater(flow, show, state)
        live_cells.adopt(self, self._cell)
        live_cells.watch_interrupts()
        self._updater.start()
        if wait:
            while self.loading and self._updater.running:
                time.sleep(0.02)
            if self.df is None and flow.error is not None:
                raise flow.error
        return self.df if wait else None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following the market (the Stop button): the connection closes, no
        thread is left behind, the chart and :attr:`df` keep the bars received."""
        updater = getattr(self, "_updater", None)  # None too while the constructor sets `live`
        if updater is not None:
            updater.stop(timeout)
