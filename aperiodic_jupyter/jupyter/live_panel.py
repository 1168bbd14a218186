"""The live panel: a flow panel whose chart follows a :class:`~aperiodic_jupyter.core.
live.LiveFlow`, with its state line and a Stop button.

    p = %flow binance BTC 1m live              # or LivePanel(stream_flow(...))
    p.df                                       # the bars held (the flow's ring), growing
    p.stop()                                   # or the Stop button, re-running the cell, the kernel's interrupt

Three parts, each with one job:

- :class:`LiveUpdater`, a thread that takes the flow's bars in batches
  (:meth:`LiveFlow.poll <aperiodic_jupyter.core.live.LiveFlow.poll>`) and, at most
  :data:`RATE` times a second, hands a view the flow's frame and the time of the first
  bar that changed; it reports the state line when it changes (and every second, for
  "2 s ago"). It ends when the flow ends: stopped, or its final error (the chart keeps
  what it has).
- :class:`LiveChart`, what a chart widget does with such a frame: only the chart rows
  from the first changed bar on travel (the widget's ``tail``), never the whole
  history per bar. The chart holds the newest ``chart_bars`` bars of each series (a
  window under the chart's aggregation limit, so a bar never re-aggregates the chart):
  each tail tells the page to drop the bars that left the window. The tail goes with
  every update, and a saved notebook keeps the rows sent plus the tail, so once the
  tail outgrows a quarter of the window the rows before the new bars are sent anew
  and the tail starts again from them (the page, which has those rows, draws nothing
  anew and keeps its brush). The Vega-Lite spec is built once (about half a second)
  and checked against the data after :data:`SPEC_CHECK` seconds, then ever less often
  while it still fits (up to :data:`SPEC_CHECK_MAX`), since a few titles follow the
  data (the divergence panel's correlation, candles giving way to a line); only a
  changed spec draws the chart anew.
- :class:`LivePanel`, the widget: :class:`~.panel.FlowPanel` plus the two, its page
  code in ``js/live_panel.js``.

Memory stays flat: the frame is the flow's ring (``settings.live_max_bars`` bars per
series), the page holds the window (``chart_bars`` bars per series), the widget's
state at most a quarter more (or :data:`TAIL_MIN` rows) after it. What each update
builds and frees (the frame, a few megabytes at 10,000 bars, NumPy's memory, not
Arrow's pool; the chart rows) goes back to the system every :data:`RELEASE_EVERY`
seconds, so the allocators do not pile it up either. The API key lives in the
flow's stream only; it is never a trait, an output or a log line.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import traitlets

from ..core.errors import AperiodicError
from ..core.live import LiveFlow
from ..core.live_buffers import release_memory
from .chart_data import pack_records, unpack
from .chart_widget import ChartWidget, chart_for
from .charts import FLOW_DATASET, MAX_POINTS, chart_frame, parse_panels
from .compare_chart import venue_frame
from .panel import FlowPanel
from .summary import summary_line
from .vega_library import esm

__all__ = ["LivePanel", "LiveChart", "LiveUpdater", "RATE", "RELEASE_EVERY", "SPEC_CHECK", "SPEC_CHECK_MAX"]

log = logging.getLogger("aperiodic_jupyter")

#: At most this many chart updates a second: bars arriving faster are batched.
RATE = 4.0
#: Seconds between two checks that the chart's spec still fits its data (each builds the
#: chart: about half a second); doubled after each check that found nothing, up to
#: SPEC_CHECK_MAX, so a chart whose titles never follow its data costs next to nothing.
SPEC_CHECK = 30.0
SPEC_CHECK_MAX = 480.0
#: Seconds between two :func:`~aperiodic_jupyter.core.live_buffers.release_memory`
#: calls while updates run (each about a millisecond): the memory each update frees
#: goes back to the system instead of piling up in the allocators.
RELEASE_EVERY = 10.0
#: The rows a tail may reach, as a share of the window's, before the rows are sent anew...
TAIL_SHARE = 0.25
#: ... or this many rows, whichever is more (a small window would send its rows each time).
TAIL_MIN = 30
#: The chart's datasets a live update can extend, and the field each is sorted on.
_TIME_FIELDS = {FLOW_DATASET: "time", "venues": "t"}


# -- the thread between a live flow and a view ----------------------------------------------


class LiveUpdater:
    """Moves a live flow's bars to a view, in a thread of its own.

    Args:
        flow: the live flow (started here if it is not yet).
        show: called with ``(frame, since)``: the flow's frame (:meth:`LiveFlow.frame`)
            and the time of the first bar that is new or changed since the last call.
        on_state: called with the state line (:meth:`LiveFlow.status`) and whether the
            view is still following, whenever either changes.
        rate: at most this many ``show`` calls a second.
    """

    def __init__(
        self,
        flow: LiveFlow,
        show: Callable[[pd.DataFrame, pd.Timestamp], None],
        on_state: Callable[[str, bool], None],
        *,
        rate: float = RATE,
    ) -> None:
        self.flow = flow
        self._show = show
        self._on_state = on_state
        self._period = 1.0 / rate
        self._reported: tuple[str, bool] | None = None
        self._failure: str | None = None
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """``True`` until the flow has ended and the last update is shown."""
        return self._thread is not None and not self._ended.is_set()

    def start(self) -> LiveUpdater:
        self.flow.start()
        self._thread = threading.Thread(target=self._run, name="aperiodic-live-view", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the flow (its thread and socket end) and wait for this thread to end."""
        self.flow.stop(timeout)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        since: pd.Timestamp | None = None  # the first bar changed since the last show
        due = 0.0  # monotonic time of the next show allowed
        release = time.monotonic() + RELEASE_EVERY  # ... and of the next release_memory()
        try:
            while True:
                wait = max(due - time.monotonic(), 0.0) if since is not None else 1.0
                try:
                    bars = self.flow.poll(timeout=wait)
                except AperiodicError:  # the final error: the state line says it
                    bars = None
                if bars is None:
                    if since is not None and self.flow.error is not None:
                        self._show(self.flow.frame(), since)  # what came before the error stays
                    break
                for bar in bars:
                    since = bar.time if since is None or bar.time < since else since
                if since is not None and time.monotonic() >= due:
                    self._show(self.flow.frame(), since)
                    since = None
                    due = time.monotonic() + self._period
                    if time.monotonic() >= release:
                        release_memory()
                        release = time.monotonic() + RELEASE_EVERY
                self._report()
        except Exception as exc:  # a view that cannot draw must not leave the stream running
            log.exception("live view failed")
            self._failure = f"the live view failed: {type(exc).__name__}: {exc}"
            self.flow.stop()
        finally:
            # The flow closes its mailbox (which ends the loop above) just before its
            # thread exits: "not running" must mean no thread of this panel is left.
            self.flow.join()
            self._ended.set()
            self._report()

    def _report(self) -> None:
        now = (self._failure or self.flow.status(), not self._ended.is_set())
        if now != self._reported:
            self._reported = now
            self._on_state(*now)


# -- what a chart widget does with a live frame ----------------------------------------------


def _window(df: pd.DataFrame, bars: int) -> pd.DataFrame:
    """The newest ``bars`` bars of each series (the series share one clock)."""
    times = df["time"]
    distinct = times.drop_duplicates()
    if len(distinct) <= bars:
        return df
    return df[times >= distinct.nlargest(bars).min()]


def _bare(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without its ``attrs``: pandas deep-copies them on every operation, and the
    chart rows need none."""
    out = df.copy(deep=False)
    out.attrs = {}
    return out


class LiveChart(ChartWidget):
    """A chart widget that follows a live frame (see the module docstring): call
    :meth:`show_live` with each new frame. Subclasses give ``_esm``.

    Args:
        chart_bars: the newest bars of each series the chart draws (at most
            :data:`~.charts.MAX_POINTS`, so the chart is never aggregated).
    """

    def __init__(self, *, chart_bars: int = MAX_POINTS, **kwargs: Any) -> None:
        # ChartWidget's, even under a FlowPanel: that one draws a frame, and a live
        # chart has none until the history comes.
        ChartWidget.__init__(self, **kwargs)
        self.chart_bars = max(1, min(chart_bars, MAX_POINTS))
        self._live_panels: tuple[str, ...] = ()
        self._live_from: int | None = None  # epoch ms: the first chart row the tail replaces
        self._live_static: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._live_columns: list[str] = []
        self._live_checked = 0.0  # monotonic time of the last spec check
        self._live_check_every = SPEC_CHECK

    def show_live(self, df: pd.DataFrame, since: pd.Timestamp | None, panels: tuple[str, ...]) -> None:
        """Show ``df``, a live frame whose bars from ``since`` on are new or changed
        (``None``: draw it anew), and make it :attr:`df`."""
        window = _window(_bare(df), self.chart_bars)
        dataset = self._live_dataset()
        if since is None or dataset is None or panels != self._live_panels:
            self._draw_live(window, df.attrs, panels)
        else:
            start = _millis(since)
            self._live_from = start if self._live_from is None else min(self._live_from, start)
            tail = self._chart_rows(dataset, window, self._live_from)
            # The tail holds every row since the rows were sent, and goes with each
            # update (a saved notebook keeps rows + tail): past its share, the rows
            # before this update's bars are sent anew and the tail is these bars.
            keep = _millis(window["time"].iloc[0])
            if len(tail) > max(TAIL_SHARE * len(window), TAIL_MIN):
                self._send_rows(dataset, window, start, keep)
            else:
                self._send_live_tail(dataset, tail, keep)
            self._base = None  # ChartWidget.append's record of the rows is not this: it draws anew
            if time.monotonic() - self._live_checked > self._live_check_every:
                self._check_spec(window, df.attrs, panels)
        self.summary = summary_line(df)
        self.df = df

    def _live_dataset(self) -> str | None:
        """The dataset a live update extends (the bars; others, such as a reference
        line's, stay as drawn), or ``None``: nothing drawn yet, or a chart this cannot
        extend, which is drawn anew."""
        names = [part["dataset"] for part in self.data_layout if part["dataset"] in _TIME_FIELDS]
        return names[0] if self.spec is not None and len(names) == 1 else None

    def _draw_live(self, window: pd.DataFrame, attrs: dict[str, Any], panels: tuple[str, ...]) -> None:
        window.attrs = attrs  # the title, the label, the notes
        self._draw(window, panels, MAX_POINTS)
        self._live_panels = panels
        self._live_from = None
        self._live_checked = time.monotonic()
        # The bar columns drawn, and the other datasets' rows packed as drawn, to send
        # again with new bars.
        dataset = self._live_dataset()
        self._live_columns = [c["name"] for p in self.data_layout if p["dataset"] == dataset for c in p["columns"]]
        rows = unpack(self.data_layout, self.data)
        self._live_static = {
            part["dataset"]: pack_records(part["dataset"], rows[part["dataset"]], set())
            for part in self.data_layout
            if part["dataset"] not in _TIME_FIELDS
        }

    def _chart_rows(self, dataset: str, window: pd.DataFrame, start: int | None) -> pd.DataFrame:
        """The chart rows of ``window`` from ``start`` (epoch ms) on (all: ``None``), with
        the columns drawn: what the chart builders send for those bars."""
        field = _TIME_FIELDS[dataset]
        if dataset == FLOW_DATASET:
            part = window if start is None else window[window["time"] >= pd.Timestamp(start, unit="ms", tz="UTC")]
            rows = chart_frame(part, MAX_POINTS)[0]
        else:
            # A venue's label depends on every series (``exchange symbol`` once a venue
            # has two): the rows come from the whole window, cut after.
            rows = venue_frame(window, MAX_POINTS)[0]
            rows = rows if start is None else rows[rows[field] >= start]
        return rows.reindex(columns=self._live_columns)

    def _send_live_tail(self, dataset: str, rows: pd.DataFrame, keep: int) -> None:
        """The rows from the tail's start on; the page also drops the rows before
        ``keep`` (epoch ms: the window's first bar), so it holds the window only."""
        field = _TIME_FIELDS[dataset]
        layout, raw = pack_records(dataset, _records(rows), {field})
        with self.hold_sync():
            self.tail_layout = {**layout, "field": field, "from": int(self._live_from or 0), "keep": keep}
            self.tail = gzip.compress(raw, compresslevel=6, mtime=0)

    def _send_rows(self, dataset: str, window: pd.DataFrame, start: int, keep: int) -> None:
        """The window's rows before ``start`` (epoch ms) anew, under the same spec (no
        chart is built), and the rows from ``start`` on as the tail. The page draws
        nothing anew: it has the rows before ``start`` and takes the tail as usual (its
        brush stays); a page that renders the widget later starts from these rows."""
        field = _TIME_FIELDS[dataset]
        rows = self._chart_rows(dataset, window, None)
        early = rows[rows[field] < start]
        packed = {**self._live_static, dataset: pack_records(dataset, _records(early), {field})}
        order = [part["dataset"] for part in self.data_layout]  # the layout's order is the bytes' order
        self._live_from = start
        with self.hold_sync():
            self.data_layout = [packed[name][0] for name in order]
            self.data = gzip.compress(b"".join(packed[name][1] for name in order), compresslevel=6, mtime=0)
            self._send_live_tail(dataset, rows[rows[field] >= start], keep)

    def _check_spec(self, window: pd.DataFrame, attrs: dict[str, Any], panels: tuple[str, ...]) -> None:
        window.attrs = attrs
        spec = chart_for(window, panels, MAX_POINTS).to_dict()
        spec.pop("datasets", None)
        if spec != self._spec_sent:
            self._draw_live(window, attrs, panels)
            self._live_check_every = SPEC_CHECK
        else:
            self._live_checked = time.monotonic()
            self._live_check_every = min(2 * self._live_check_every, SPEC_CHECK_MAX)


def _millis(time: pd.Timestamp) -> int:
    return int(time.value // 1_000_000)


def _records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    # As the chart builders make them: JSON has no NaN, so missing values become null.
    return json.loads(rows.to_json(orient="records"))  # type: ignore[no-any-return]


# -- the panel -----------------------------------------------------------------------------


class LivePanel(LiveChart, FlowPanel):
    """A flow panel that follows a live flow: history first, then each bar, with the
    state line (``live · last bar 12:03:00 UTC · 2 s ago``, ``reconnecting (attempt
    2) · …``, ``… · gap filled 11:58–12:00 from REST``, ``stopped``, or the one-line
    error that ended it) and a Stop button. Starts the flow.

    Args:
        flow: from :func:`~aperiodic_jupyter.stream_flow` (the panel starts it).
        panels: the chart panels (as for :class:`~.panel.FlowPanel`).
        namespace: where "to variable" binds names (default: IPython's).
        rate: at most this many chart updates a second.
        chart_bars: the newest bars of each series drawn (at most 2,500).

    Attributes:
        flow: the live flow.
        df: the bars held so far (the flow's ring, :meth:`LiveFlow.frame`), ``None``
            until the history arrives; exports and the brush work on it while live.
        live_state: the state line, as the page shows it.
        live_running: ``True`` until the flow ends (stopped, or its final error).
    """

    _esm = esm("loader.js", "live_panel.js")

    live_state = traitlets.Unicode("").tag(sync=True)
    live_running = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        flow: LiveFlow,
        *,
        panels: str | list[str] | tuple[str, ...] | None = None,
        namespace: dict[str, Any] | None = None,
        rate: float = RATE,
        chart_bars: int = MAX_POINTS,
    ) -> None:
        LiveChart.__init__(self, chart_bars=chart_bars, namespace=namespace, show_summary=True)
        self.panels = parse_panels(panels)
        self.flow = flow
        self.simulated = flow.simulated
        self.live_state, self.live_running = "starting", True
        self._updater = LiveUpdater(flow, self._show, self._state, rate=rate)
        self._updater.start()

    def __repr__(self) -> str:
        # The text a terminal, nbconvert or a saved notebook without widgets shows.
        label = "SIMULATED demo feed · " if self.flow.simulated else ""
        series = ", ".join(f"{q.exchange} {q.symbol}" for q in self.flow.queries)
        head = f"{label}live {series} {self.flow.queries[0].interval} · {self.live_state}"
        return head + (f" · {self.summary}" if self.summary else "")

    @property
    def running(self) -> bool:
        """``True`` while the flow and the panel's updates run."""
        return self._updater.running

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following (the Stop button): the flow's thread and socket end, and so
        does the panel's update thread, before this returns. The chart and :attr:`df`
        keep the bars received."""
        self._updater.stop(timeout)

    def wait(self, bars: int, timeout: float) -> int:
        """Wait until :attr:`df` holds ``bars`` bars (all series), the flow ends, or
        ``timeout`` seconds pass; returns the bars held. For a notebook that must end
        (a tutorial run headless) or a test."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running and (self.df is None or len(self.df) < bars):
            time.sleep(0.05)
        return 0 if self.df is None else len(self.df)

    def _show(self, df: pd.DataFrame, since: pd.Timestamp) -> None:
        self.show_live(df, since if self.df is not None else None, self.panels)

    def _state(self, line: str, running: bool) -> None:
        with self.hold_sync():
            self.live_state, self.live_running = line, running

    def _on_message(self, widget: Any, content: dict[str, Any], buffers: list[bytes]) -> None:
        if content.get("type") == "stop":
            self.stop()
        else:
            super()._on_message(widget, content, buffers)
