"""``FlowExplorer``: pick exchange, symbol, interval and range, click Load, brush the chart.

The selector is a thin anywidget (JavaScript in ``js/explorer.js``); loading goes
through the same core as everything else (:class:`~aperiodic_jupyter.Client`), in a
worker thread, because comm messages are handled only while the kernel is idle and a
fetch can take longer than a front end waits for a reply. Progress, status and errors
come back through traits. Below the selector sits the same :class:`FlowPanel` the
magic shows.

The API key is never a trait (widget state is saved into notebooks): the API source
uses the key from ``%config``/``APERIODIC_API_KEY``. Saved state stays small: the query
fields, a summary line, progress counters; no bar data.
"""

from __future__ import annotations

import threading
from typing import Any

import anywidget
import ipywidgets as widgets
import pandas as pd
import traitlets

from ..core.client import Client, default_client
from ..core.combine import combine, fetch_all, plan_queries
from ..core.errors import AperiodicError, FetchCancelled
from ..core.progress import Progress
from ..core.query import INTERVALS, TIMESTAMPS, Query
from ..core.settings import SOURCES
from ..core.symbols import base_symbols
from ..core.venues import EXCHANGES, resolve_exchange
from .panel import FlowPanel, js_path, summary_line
from .panel_choice import DEFAULT_PANELS, PANELS, PRICE_PANELS, parse_panels
from .text_fallback import TextFallback

__all__ = ["FlowExplorer", "FlowSelector"]


class FlowSelector(anywidget.AnyWidget):
    """The form: every field a synced trait, Load a custom message."""

    _esm = js_path("explorer.js")
    _css = js_path("styles.css")

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
    summary = traitlets.Unicode("").tag(sync=True)
    simulated = traitlets.Bool(False).tag(sync=True)

    @traitlets.observe("exchange")
    def _exchange_changed(self, change: dict[str, Any]) -> None:
        self.symbol_options = _symbol_options(change["new"])


def _venues(text: str) -> list[str]:
    """Canonical venue names from ``"okx"`` or ``"binance,okx"`` (raises on a bad one)."""
    return list(dict.fromkeys(resolve_exchange(v) for v in str(text).split(",") if v.strip()))


def _symbol_options(text: str) -> list[str]:
    """Bases listed on any of the chosen venues, for the symbol field's suggestions."""
    try:
        return sorted({b for v in _venues(text) for b in base_symbols(v)})
    except AperiodicError:
        return []


class FlowExplorer(TextFallback, widgets.VBox):
    """The explorer. Prefill it from Python (``FlowExplorer(symbol="ETH", interval="15m")``)
    or from the magic (``%flow ... --widget``).

    Several venues (``exchange="binance,okx"``) or symbols (``symbol="BTC,ETH"``) load
    into one tidy frame with ``exchange`` and ``symbol`` columns, shown as the venue
    comparison view when there are several venues.

    Attributes:
        query: the last loaded :class:`~aperiodic_jupyter.Query` (observable); the
            first of ``queries`` when several venues or symbols were loaded.
        queries: every query of the last load.
        df: the last loaded frame (observable).
        panel: the :class:`FlowPanel` showing it; ``panel.brush_range`` and
            ``panel.brushed`` give the brushed time range and rows.
    """

    query = traitlets.Instance(Query, allow_none=True)
    df = traitlets.Instance(pd.DataFrame, allow_none=True)
    brush_range = traitlets.Any(None, read_only=True)

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
        **kwargs: Any,
    ) -> None:
        exchange = ",".join(_venues(exchange))  # "okx" must select the okx-perps option
        self.selector = FlowSelector(
            exchange=exchange,
            symbol=symbol,
            interval=interval,
            range_text=range,
            timestamp=timestamp,
            source=source,
            panels=list(parse_panels(panels)),
        )
        self.selector.symbol_options = _symbol_options(exchange)
        self.output = widgets.Box(layout=widgets.Layout(flex_flow="column"))
        self.panel: FlowPanel | None = None
        self.queries: list[Query] = []
        self._client = client
        self._thread: threading.Thread | None = None
        super().__init__(children=[self.selector, self.output], **kwargs)
        self.selector.on_msg(self._on_message)

    def __repr__(self) -> str:
        # What a terminal, a saved notebook's text fallback or nbconvert shows instead of
        # ipywidgets' "FlowExplorer(children=...)": the summary line once loaded.
        s: FlowSelector | None = getattr(self, "selector", None)  # None while __init__ runs
        if s is None:
            return "FlowExplorer"
        if s.summary:
            return f"FlowExplorer: {s.summary}"
        return f"FlowExplorer: {s.exchange} {s.symbol} {s.interval} {s.range_text}, not loaded"

    @classmethod
    def from_query(cls, query: Query, *, source: str = "auto", panels: tuple[str, ...] | None = None) -> FlowExplorer:
        text = f"{query.start.isoformat()}..{query.end.isoformat()}"
        return cls(query.exchange, query.symbol, query.interval, text, timestamp=query.timestamp, source=source, panels=panels)

    # -- loading -----------------------------------------------------------------------

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if content.get("type") == "cancel":
            self.cancel()
        elif content.get("type") == "load":
            fields = content.get("query") or {}
            with self.selector.hold_sync():
                for name in ("exchange", "symbol", "interval", "range_text", "timestamp", "source"):
                    if name in fields:
                        setattr(self.selector, name, str(fields[name]))
                if isinstance(fields.get("panels"), list):
                    self.selector.panels = [str(p) for p in fields["panels"]]
            self.load(wait=False)

    def load(self, *, wait: bool = True) -> pd.DataFrame | None:
        """Fetch the selected query. From Python this waits and returns the frame; the
        Load button runs it in the background."""
        s = self.selector
        if self._thread is not None and self._thread.is_alive():
            s.error = "a load is already running"
            return None
        try:
            symbols = [x.strip() for x in s.symbol.split(",") if x.strip()] or [s.symbol]
            queries, skipped = plan_queries(_venues(s.exchange) or [s.exchange], symbols, s.interval, s.range_text, timestamp=s.timestamp)
            panels = parse_panels(s.panels)
        except AperiodicError as exc:
            s.error = str(exc)
            s.status = ""
            if wait:
                raise
            return None
        with s.hold_sync():
            s.error = ""
            q = queries[0]
            what = q.symbol if len(queries) == 1 else f"{len(queries)} venues and symbols"
            s.status = f"loading {what} {q.interval} {q.start}..{q.end}"
            s.loading = True
            s.progress_done = s.progress_total = s.progress_cached = 0
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
        if self._thread is None or not self._thread.is_alive():
            return
        self.selector.status = "cancelling"
        (self._client or default_client(self.selector.source)).source.cancel()

    def _progress(self, p: Progress) -> None:
        with self.selector.hold_sync():
            self.selector.progress_total = p.total
            self.selector.progress_done = p.done
            self.selector.progress_cached = p.cached

    def _fetch(self, queries: list[Query], skipped: list[str], panels: tuple[str, ...], result: dict[str, Any]) -> None:
        s = self.selector
        try:
            client = self._client or default_client(s.source)
            # Price comes along when a price panel is drawn; a price failure keeps the flow.
            frames = fetch_all(client, queries, progress=self._progress, with_price=bool(PRICE_PANELS & set(panels)))
            df = combine(frames, skipped) if len(frames) > 1 else frames[0]
            panel = FlowPanel(df, panels=panels, show_summary=False)  # the selector shows the summary
            panel.observe(self._on_brush, ["brush_range"])
            self.panel = panel
            self.output.children = [panel]
            with s.hold_sync():
                s.summary = summary_line(df)
                s.simulated = bool(df.attrs.get("simulated"))
                s.status = "loaded"
                # Before df is set: whoever watches df sees a finished load.
                s.loading = False
            self.set_trait("brush_range", None)
            self.queries = list(queries)
            self.query = queries[0]
            self.df = df
        except FetchCancelled as exc:
            result["error"] = exc
            s.status = "cancelled: months finished before it are cached"
        except AperiodicError as exc:
            result["error"] = exc
            s.error = str(exc)
            s.status = ""
        except Exception as exc:  # shown inline: a widget callback has nowhere else to go
            result["error"] = exc
            s.error = f"unexpected error: {type(exc).__name__}: {exc}"
            s.status = ""
        finally:
            s.loading = False

    def _on_brush(self, change: dict[str, Any]) -> None:
        self.set_trait("brush_range", change["new"])

    @property
    def brushed(self) -> pd.DataFrame | None:
        """Rows inside the brush, or the whole frame when nothing is brushed."""
        return self.panel.brushed if self.panel is not None else None
