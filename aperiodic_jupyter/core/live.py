"""Live flow: recent history from the REST files, then each bar as the stream publishes
it, gaps filled, as one ordered iterator and a bounded frame.

    >>> live = stream_flow("binance", "BTC", "1m")        # nothing runs until iterated
    >>> for bar in live:                                   # history first, then live
    ...     print(bar.time, bar["volume_delta"], "update" if bar.update else "new")

What a consumer sees, :class:`Bar` by :class:`Bar`, per series (venue and symbol):

- first the recent history (``origin="history"``), from :meth:`Client.fetch
  <aperiodic_jupyter.Client.fetch>` like any fetch (cached months are reused);
- then the bars the stream publishes (``origin="live"``), in time order. The stream
  delivers at most once and replays nothing, so after every (re)connection the bars
  between the last bar held and the first bar received are fetched from REST
  (``origin="rest"``, the current month is fetched afresh: recent days are daily files)
  and given *before* that live bar: every bar once, in time order. The first
  connection after the history is treated the same way (the history may be minutes
  old). An outage is also recorded in :attr:`LiveFlow.gaps`; each fill in
  :attr:`LiveFlow.fills`.
- ``update=True`` marks a bar that replaces one given before (same venue, symbol and
  ``time``): the still-open bar re-published with more trades, a REST bar that corrects
  the last bar held before a drop, the price half of a bar arriving after its flow
  half. A row repeated with the same values gives nothing.

The bars also go into a ring of the last ``settings.live_max_bars`` bars per series
(fixed arrays: memory stays flat over a long session); :meth:`LiveFlow.frame` turns it
into a DataFrame with the columns, dtypes and ``attrs`` of
:func:`~aperiodic_jupyter.get_flow`, straight from NumPy (a view calls it several
times a second: see :class:`_FrameLayout`).

Everything network-bound runs in one thread per live flow (an asyncio loop for the
WebSocket, a worker for REST), so the same object is iterated from a script, from a
thread, or with ``async for`` inside Jupyter's running loop, and :meth:`LiveFlow.stop`
from any thread ends it and leaves no thread or socket behind.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .client import Client
from .combine import combine, fetch_all, plan_queries
from .coverage import coverage
from .errors import AperiodicError, AuthError, FetchCancelled, QueryError, StreamError
from .live_bars import DTYPES, Bar, BarValues, GapFill, Origin, clock, fill_text, span_text, ts
from .live_buffers import QUEUE_BARS, Mailbox, Ring
from .query import INTERVALS, Query, interval_ns
from .schema import FLOW_COLUMNS, PRICE_COLUMNS, TIME
from .settings import Secret, default_live_history, resolve_api_key, resolve_stream_url, settings
from .sources.api import KEY_HELP
from .sources.demo import DemoFeed
from .sources.stream import (
    BACKOFF,
    IDLE_TIMEOUT,
    Channel,
    Connecting,
    Dropped,
    Event,
    Feed,
    Notice,
    Row,
    StreamFeed,
    Subscribed,
    Subscription,
)
from .symbols import resolve_symbol

__all__ = ["stream_flow", "LiveFlow", "Bar", "BarValues", "GapFill", "Origin", "stop_all", "QUEUE_BARS"]

log = logging.getLogger("aperiodic_jupyter")


@dataclass
class _Series:
    query: Query
    ring: Ring
    step: int  # µs
    attrs: dict[str, Any]
    last: int | None = None  # µs: the newest bar given
    check_gap: bool = True  # the next flow row is the first since a (re)connection
    pending_price: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)


class _FrameLayout:
    """How the ring's columns become a frame's: the frame :func:`~aperiodic_jupyter.
    get_flow` gives (``to_pandas`` of its Arrow table: ``time`` tz-aware UTC ns, each
    column the NumPy dtype of its Arrow type, an integer column with a missing value
    ``float64``), built straight from NumPy, one block per dtype, without Arrow.

    A live view builds a frame a few times a second: through Arrow, each took several
    buffers from Arrow's pool, whose allocator (mimalloc) kept tens of megabytes of
    them once freed, so the resident memory crept up long after the ring was full.
    Here the frame's blocks are the ring's own gathered copies (NumPy's memory, freed
    as the frame goes), and the column labels are made once."""

    def __init__(self, columns: Sequence[str]) -> None:
        groups: dict[np.dtype, list[int]] = {}
        for j, name in enumerate(columns):
            groups.setdefault(np.dtype(DTYPES[name].to_pandas_dtype()), []).append(j)
        self.dtypes = list(groups)
        #: The ring's rows (columns) of each dtype's block.
        self.rows = [np.array(rows, dtype=np.intp) for rows in groups.values()]
        self.names = [TIME, *columns]
        self.columns = pd.Index(self.names)  # made once: pandas' str labels are Arrow's

    def frame(self, times: np.ndarray, blocks: list[np.ndarray]) -> pd.DataFrame:
        """The frame of ``times`` (µs) and ``blocks`` (``Ring.snapshot(self.rows)``'s,
        float64; taken as they are where the dtype is float64)."""
        placed: list[tuple[Any, np.ndarray]] = []
        for dtype, rows, block in zip(self.dtypes, self.rows, blocks, strict=True):
            at = rows + 1  # after `time`
            if dtype.kind in "iu":
                missing = np.isnan(block).any(axis=1)
                if missing.any():  # as to_pandas: an integer column with nulls is float64
                    placed.append((block[missing], at[missing]))
                    block, at = block[~missing], at[~missing]
                if len(at):
                    placed.append((block.astype(dtype), at))
            else:
                placed.append((block if block.dtype == dtype else block.astype(dtype), at))
        stamps = pd.array(times * 1000, dtype=pd.DatetimeTZDtype("ns", "UTC"), copy=False)
        try:
            from pandas.api.internals import create_dataframe_from_blocks
        except ImportError:  # pandas 2: one block per column, still no copy
            cols: dict[str, Any] = {TIME: stamps}
            for block, at in placed:
                cols.update((self.names[i], block[k]) for k, i in enumerate(at))
            return pd.DataFrame({n: cols[n] for n in self.names}, copy=False)
        placed.append((stamps, np.array([0], dtype=np.intp)))
        return create_dataframe_from_blocks(placed, index=pd.RangeIndex(len(times)), columns=self.columns)


# -- the live flow ------------------------------------------------------------------------------

_running: set[LiveFlow] = set()
_running_lock = threading.Lock()


def stop_all() -> None:
    """Stop every live flow of this process (on exit, and for a front end's reset)."""
    with _running_lock:
        flows = list(_running)
    for flow in flows:
        flow.stop()


atexit.register(stop_all)


class LiveFlow:
    """A live flow: iterate it for :class:`Bar` objects (``for`` or ``async for``), read
    :meth:`frame` for the bars held, :meth:`stop` it from anywhere. Made by
    :func:`stream_flow`; see the module docstring for what is given in which order.

    Iterating starts it (or :meth:`start`). The iteration ends after :meth:`stop`, at
    once (bars not yet taken are dropped), or raises the final error (a
    :class:`~aperiodic_jupyter.StreamError`, or the history fetch's error) after the
    bars received before it. Ctrl-C while iterating stops it. A ``with`` (or ``async
    with``) block stops it on the way out.

    Attributes:
        state: the one-line status (``loading history``, ``connecting``, ``live · last
            bar 12:03:00 UTC``, ``reconnecting (attempt 2) · ...``, ``live · ... · gap
            filled 11:58–12:00 from REST``, ``stopped``, or the final error's line).
            ``on_state`` receives each new line, from the live thread.
        gaps: every outage as ``(disconnected_at, reconnected_at)``, tz-aware UTC.
        fills: every :class:`GapFill` (after an outage, and after the first connection).
        subscription: what the server granted and rejected (``None`` until it says).
        history: the history as fetched (the frame of :func:`~aperiodic_jupyter.
            get_flow`, trimmed to the window), ``None`` until loaded or without history.
        notices: warnings the stream sent (the latest 50).
        error: the final error, ``None`` while running or after a stop.
        simulated: ``True`` for the demo's simulated feed (labelled so in ``state``).
    """

    def __init__(
        self,
        client: Client,
        queries: Sequence[Query],
        feed: Feed,
        *,
        owns_client: bool,
        history: timedelta,
        with_price: bool,
        max_bars: int,
        skipped: Sequence[str] = (),
        speed: float = 1.0,
        on_state: Callable[[str], None] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.queries = list(queries)
        self.feed = feed
        self.with_price = with_price
        self.simulated = bool(getattr(feed, "simulated", False))
        self.skipped = list(skipped)
        self.max_bars = max_bars
        self._owns_client = owns_client
        self._history = history
        self._speed = speed
        self._on_state = on_state
        self._now = now or (lambda: datetime.now(UTC))
        columns = FLOW_COLUMNS + (PRICE_COLUMNS if with_price else ())
        self.columns: tuple[str, ...] = tuple(columns)
        self._series = {
            (q.exchange, q.symbol): _Series(q, Ring(max_bars, columns), interval_ns(q.interval) // 1000, self._base_attrs(q))
            for q in self.queries
        }
        self._lock = threading.Lock()  # the rings and the records below, read by frame()
        self._state_lock = threading.RLock()  # reentrant: on_state may call stop()
        self._index = {name: j for j, name in enumerate(self.columns)}
        self._layout = _FrameLayout(self.columns)
        self._mailbox = Mailbox(QUEUE_BARS * len(self._series))
        self._buffer: deque[Bar] = deque()
        self.gaps: list[tuple[datetime, datetime]] = []
        self.fills: list[GapFill] = []
        self.subscription: Subscription | None = None
        self.history: pd.DataFrame | None = None
        self.notices: deque[str] = deque(maxlen=50)
        self.error: BaseException | None = None
        self.state = "not started"
        self._notes: dict[str, str] = {}  # kind -> text, shown after the live state
        self._newest: int | None = None  # µs, across series
        self._received_at: float | None = None  # monotonic time of the last live bar
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._stopping = threading.Event()
        self._started = False
        if self.skipped:
            self._notes["skipped"] = "; ".join(self.skipped)

    def __repr__(self) -> str:
        names = ", ".join(f"{q.exchange} {q.symbol}" for q in self.queries)
        return f"<LiveFlow {names} {self.queries[0].interval}: {self.state}>"

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> LiveFlow:
        """Start the live thread (history, then the stream); a second call does
        nothing. Returns the flow itself."""
        with self._lock:
            if self._started or self._stopping.is_set():
                return self
            self._started = True
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="aperiodic-live-rest")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._task = loop.create_task(self._main())
        self._thread = threading.Thread(target=self._run, name="aperiodic-live", daemon=True)
        with _running_lock:
            _running.add(self)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """``True`` while the live thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """End the live flow, from any thread: the iteration ends at once (bars not yet
        taken are dropped), the connection closes, a REST fetch in flight is cancelled
        (when the flow built its own client), and this returns once the live thread has
        exited (at most ``timeout`` seconds). Safe to call twice."""
        first = not self._stopping.is_set()
        self._stopping.set()
        if first:
            self._mailbox.close(discard=True)
            self._buffer.clear()  # bars the consumer had received but not yet taken go too
            if self.error is None:
                self._set_state("stopped")
            loop, task = self._loop, self._task
            if loop is not None and task is not None:
                try:
                    loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:  # the loop has finished already
                    pass
        if self._thread is not None and self._thread is not threading.current_thread():
            deadline = time.monotonic() + timeout
            while self._thread.is_alive() and time.monotonic() < deadline:
                if self._owns_client:
                    # Only this flow's fetches run on its own client. Again and again: a
                    # fetch may have been about to start when the first cancel went out.
                    self.client.source.cancel()
                self._thread.join(0.05)
        if not self._started and self._owns_client:
            self.client.close()

    def join(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` seconds) until the live thread has exited, without
        stopping it; ``True`` once it has (or never started). Its last steps (closing the
        loop, the pool and its client) follow the end of the bars a consumer sees."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def __enter__(self) -> LiveFlow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> LiveFlow:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self) -> None:
        loop, task = self._loop, self._task
        assert loop is not None and task is not None and self._pool is not None
        try:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(task)
            except (asyncio.CancelledError, Exception):  # _main records its errors itself
                pass
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
            self._pool.shutdown(wait=True)
            if self._owns_client:
                self.client.close()
            self._mailbox.close()
            with _running_lock:
                _running.discard(self)

    # -- consumers -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Bar]:
        self.start()
        return self

    def __next__(self) -> Bar:
        while not self._buffer:
            try:
                got = self._mailbox.get(None)
            except KeyboardInterrupt:
                self.stop()
                raise
            if got is None:
                raise StopIteration
            self._buffer.extend(got)
        return self._buffer.popleft()

    def __aiter__(self) -> LiveFlow:
        self.start()
        return self

    async def __anext__(self) -> Bar:
        while not self._buffer:
            got = await self._mailbox.aget(None)
            if got is None:
                raise StopAsyncIteration
            self._buffer.extend(got)
        return self._buffer.popleft()

    def poll(self, timeout: float | None = 0.0, limit: int | None = None) -> list[Bar] | None:
        """The bars received and not yet taken (at most ``limit``; the rest wait for the
        next call), waiting up to ``timeout`` seconds (``None``: until there is one)
        for the first: ``[]`` when none came in time, ``None`` when the flow has ended
        (or raises its final error). For a front end that redraws once per batch
        rather than once per bar. Starts the flow."""
        self.start()
        if not self._buffer:
            try:
                got = self._mailbox.get(timeout)
            except KeyboardInterrupt:
                self.stop()
                raise
            if not got:
                return got
            self._buffer.extend(got)
        return self._take(limit)

    async def apoll(self, timeout: float | None = 0.0, limit: int | None = None) -> list[Bar] | None:
        """:meth:`poll` for ``await``: the event loop runs while it waits."""
        self.start()
        while not self._buffer:
            got = await self._mailbox.aget(timeout)
            if got is None or (not got and timeout is not None):
                return got
            self._buffer.extend(got)
        return self._take(limit)

    def _take(self, limit: int | None) -> list[Bar]:
        n = len(self._buffer) if limit is None else min(limit, len(self._buffer))
        return [self._buffer.popleft() for _ in range(n)]

    @property
    def overflow(self) -> int:
        """Bars dropped because nobody took them in time (at most :data:`QUEUE_BARS`
        per series wait to be taken); :meth:`frame` still has the newest
        ``max_bars``."""
        return self._mailbox.overflow

    def status(self) -> str:
        """:attr:`state`, with how long ago the last live bar arrived when live, right
        after that bar (``live · last bar 12:03:00 UTC · 2 s ago · gap filled ...``)."""
        state = self.state
        if self._received_at is None or not state.startswith("live"):
            return state
        parts = state.split(" · ")
        at = next((i + 1 for i, part in enumerate(parts) if part.startswith("last bar ")), len(parts))
        parts.insert(at, f"{time.monotonic() - self._received_at:.0f} s ago")
        return " · ".join(parts)

    # -- the bounded live frame ----------------------------------------------------------------

    def frame(self) -> pd.DataFrame:
        """The bars held now (the last ``max_bars`` per series) as a pandas DataFrame
        with the columns, dtypes and ``attrs`` of :func:`~aperiodic_jupyter.get_flow`
        (several series: ``exchange`` and ``symbol`` columns, as there); ``time`` is
        tz-aware UTC. ``attrs["live"]`` adds the state, the gaps and the fills."""
        with self._lock:
            parts = [(s, *s.ring.snapshot(self._layout.rows)) for s in self._series.values()]
            live = {
                "state": self.state,
                "gaps": [(a.isoformat(), b.isoformat()) for a, b in self.gaps],
                "fills": [dataclasses.asdict(f) for f in self.fills],
                "max_bars": self.max_bars,
            }
        frames = [self._series_frame(s, times, values, live) for s, times, values in parts]
        if len(frames) == 1:
            return frames[0]
        out = combine(frames, self.skipped)
        out.attrs["live"] = live
        return out

    def _series_frame(self, series: _Series, times: np.ndarray, blocks: list[np.ndarray], live: dict[str, Any]) -> pd.DataFrame:
        attrs = dict(series.attrs)
        q = series.query
        if len(times):
            first, last = ts(int(times[0])), ts(int(times[-1]))
            asked = dataclasses.replace(q, start=first.date(), end=last.date())
            attrs["query"] = asked.to_dict()
            attrs["coverage"] = coverage(asked, first.to_pydatetime(), last.to_pydatetime()).to_dict()
        attrs["fetched_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        attrs["live"] = live
        df = self._layout.frame(times, blocks)
        df.attrs.update(attrs)
        return df

    def _base_attrs(self, query: Query) -> dict[str, Any]:
        source = self.client.source
        return {
            "query": query.to_dict(),
            "source": source.name,
            "simulated": bool(getattr(source, "simulated", False)),
            "label": source.label,
            "months": {},
            "from_cache": [],
            "downloaded": [],
        }

    # -- the live thread ---------------------------------------------------------------------

    def _set_state(self, line: str) -> None:
        # One lock for the check and the callback: no line lands after "stopped".
        with self._state_lock:
            if line == self.state or (self._stopping.is_set() and line != "stopped"):
                return
            self.state = line
            if self._on_state is not None:
                try:
                    self._on_state(line)
                except Exception:  # a display callback must never end the stream
                    log.exception("live flow: the on_state callback failed")

    def _live_line(self) -> str:
        head = "live"
        if self.simulated:
            head = "live (simulated)" if self._speed == 1 else f"live (simulated ×{self._speed:g})"
        parts = [head]
        if self._newest is None:
            parts.append("waiting for the first bar")
        else:
            t = ts(self._newest)
            parts.append(f"last bar {clock(t, seconds=True)} UTC")
        parts += self._notes.values()
        return " · ".join(parts)

    async def _main(self) -> None:
        try:
            if self._history > timedelta(0):
                await self._load_history()
            self._set_state("connecting")
            events = self.feed.events()
            try:
                async for event in events:
                    await self._on(event)
            finally:
                # Closed here, not left to the loop's shutdown: the socket's closing
                # handshake runs while the loop still serves it.
                await events.aclose()
        except asyncio.CancelledError:
            raise
        except FetchCancelled:
            if not self._stopping.is_set():
                self._fail(StreamError("the live flow's REST fetch was cancelled"))
        except AperiodicError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug must still end the flow in one line
            log.exception("live flow failed")
            self._fail(StreamError(f"the live flow failed: {type(exc).__name__}: {exc}"))

    def _fail(self, error: BaseException) -> None:
        if self._stopping.is_set():
            return
        self.error = error
        self._set_state(str(error))
        self._mailbox.close(error)

    async def _rest(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the REST worker: the loop keeps reading the socket."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    # history

    async def _load_history(self) -> None:
        self._set_state("loading history")
        frames = await self._rest(self._fetch_history)
        bars: list[Bar] = []
        with self._lock:
            for series, df in zip(self._series.values(), frames, strict=True):
                series.attrs.update({k: v for k, v in df.attrs.items() if k != "query"})
                for time_us, values in _rows(df, self.columns):
                    bar = self._give(series, time_us, values, "history")
                    if bar is not None:
                        bars.append(bar)
        self.history = frames[0] if len(frames) == 1 else combine(frames, self.skipped)
        self._mailbox.put(bars)

    def _fetch_history(self) -> list[pd.DataFrame]:
        now = pd.Timestamp(self._now()).tz_convert("UTC")
        frames = fetch_all(self.client, self.queries, with_price=self.with_price)
        out = []
        for q, df in zip(self.queries, frames, strict=True):
            step = pd.Timedelta(interval_ns(q.interval), unit="ns")
            # Complete bars only (the bar open at `now` comes live), the last `history` of them.
            open_bar = now.floor(step) if step <= pd.Timedelta(days=1) else now.floor("D")
            keep = (df[TIME] >= open_bar - self._history) & (df[TIME] < open_bar)
            trimmed = df.loc[keep].reset_index(drop=True)
            trimmed.attrs = dict(df.attrs)
            out.append(trimmed)
        return out

    # events

    async def _on(self, event: Event) -> None:
        if isinstance(event, Row):
            await self._on_row(event)
        elif isinstance(event, Subscribed):
            self._on_subscribed(event)
        elif isinstance(event, Dropped):
            self._notes.pop("gap", None)
            self._set_state(f"reconnecting (attempt {event.attempt}) · {event.reason}")
        elif isinstance(event, Connecting):
            if event.attempt == 0:
                self._set_state("connecting")
        elif isinstance(event, Notice):
            self.notices.append(event.text)
            log.info("live stream: %s", event.text)
            if event.subscription is not None:
                self.subscription = event.subscription
                self._notes["removed"] = event.text
                self._set_state(self._live_line())

    def _on_subscribed(self, event: Subscribed) -> None:
        with self._lock:
            self.subscription = event.subscription
            if event.outage is not None:
                self.gaps.append(event.outage)
            for series in self._series.values():
                series.check_gap = True
        if event.subscription.rejected:
            self._notes["rejected"] = "refused: " + "; ".join(map(str, event.subscription.rejected))
        else:
            self._notes.pop("rejected", None)
        self._set_state(self._live_line())

    async def _on_row(self, row: Row) -> None:
        parsed = self._parse(row)
        if parsed is None:
            return
        series, dataset, time_us, values = parsed
        # The first newer bar since a (re)connection tells whether bars were missed (a
        # repeat of a bar held says nothing: it may be the open bar re-published).
        if dataset == "flow" and series.check_gap and (series.last is None or time_us > series.last):
            series.check_gap = False
            if series.last is not None and time_us > series.last + series.step:
                await self._fill(series, series.last, time_us)
        with self._lock:
            if dataset == "flow":
                bar = self._give(series, time_us, values, "live")
            else:
                bar = self._give_price(series, time_us, values)
        self._received_at = time.monotonic()
        if bar is not None:
            self._mailbox.put([bar])
        self._set_state(self._live_line())

    def _parse(self, row: Row) -> tuple[_Series, str, int, dict[str, float]] | None:
        """The series, dataset, bar time (µs) and values of a row, or ``None`` for a
        row that is not ours (another symbol of a whole-venue channel) or malformed."""
        parts = row.channel.split(".")
        if len(parts) != 3 or parts[0] not in ("flow", "ohlcv"):
            return None
        dataset, exchange, interval = parts
        data = row.data
        symbol = str(data.get("symbol", ""))
        series = self._series.get((exchange, symbol))
        if series is None:
            try:  # the stream may name a symbol natively (BTCUSDT)
                series = self._series.get((exchange, resolve_symbol(exchange, symbol)))
            except AperiodicError:
                series = None
        if series is None or str(data.get("interval", interval)) != series.query.interval:
            return None
        if dataset == "ohlcv" and not self.with_price:
            return None
        stamp = data.get(TIME)
        if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp):
            self.notices.append(f"skipped a {dataset} row of {exchange} {symbol} without a valid time")
            return None
        names = FLOW_COLUMNS if dataset == "flow" else PRICE_COLUMNS
        values = {c: _number(data[c]) for c in names if c in data}
        return series, dataset, int(stamp), values

    def _give(self, series: _Series, time_us: int, values: Mapping[str, float], origin: Origin) -> Bar | None:
        """Put a bar's values into the ring (with the lock held); the :class:`Bar` to
        hand out, or ``None`` when nothing changed."""
        if origin == "live" and series.pending_price:
            values = {**series.pending_price.pop(time_us, {}), **values}
        old = series.ring.get(time_us)
        row = np.full(len(self.columns), np.nan) if old is None else old.copy()
        for j, name in enumerate(self.columns):
            if name in values:
                row[j] = values[name]
        if old is not None and np.array_equal(old, row, equal_nan=True):
            return None
        series.ring.put(time_us, row)
        if series.last is None or time_us > series.last:
            series.last = time_us
        self._newest = time_us if self._newest is None else max(self._newest, time_us)
        values_now = BarValues(row, self._index)  # `row` is this bar's own copy
        return Bar(series.query.exchange, series.query.symbol, ts(time_us), values_now, origin, update=old is not None)

    def _give_price(self, series: _Series, time_us: int, values: Mapping[str, float]) -> Bar | None:
        """A price row: merged into its bar when the bar is held, else kept until the
        bar's flow arrives (the two channels' frames come in either order)."""
        if series.ring.get(time_us) is not None:
            return self._give(series, time_us, values, "live")
        series.pending_price[time_us] = dict(values)
        while len(series.pending_price) > 16:  # prices of bars whose flow never came
            series.pending_price.pop(min(series.pending_price))
        return None

    # gaps

    async def _fill(self, series: _Series, after: int, before: int) -> None:
        q = series.query
        step = series.step
        self._set_state(f"filling gap {span_text(ts(after + step), ts(before - step))} from REST")
        error = None
        rows: list[tuple[int, dict[str, float]]] = []
        try:
            rows = await self._rest(self._rest_rows, q, after, before)
        except FetchCancelled:
            raise
        except AperiodicError as exc:
            error = str(exc)
        bars: list[Bar] = []
        with self._lock:
            inside = 0
            for time_us, values in rows:
                inside += after < time_us < before
                bar = self._give(series, time_us, values, "rest")
                if bar is not None:
                    bars.append(bar)
            missing = max((before - after) // step - 1 - inside, 0)
            text = fill_text(ts(after + step), ts(before - step), inside, missing, error)
            fill = GapFill(q.exchange, q.symbol, ts(after), ts(before), inside, missing, error, text)
            self.fills.append(fill)
        self._notes["gap"] = fill.text
        log.info("live flow %s %s: %s", q.exchange, q.symbol, fill.text)
        self._mailbox.put(bars)

    def _rest_rows(self, query: Query, after: int, before: int) -> list[tuple[int, dict[str, float]]]:
        """The REST bars of ``[after, before)``, in time order. The current month is
        fetched afresh (``refresh``): a cached copy may predate the gap."""
        first, last = ts(after).date(), ts(before).date()
        asked = dataclasses.replace(query, start=first, end=last)
        df = self.client.fetch(asked, refresh=True, with_price=self.with_price)
        return [(t, v) for t, v in _rows(df, self.columns) if after <= t < before]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _rows(df: pd.DataFrame, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, float]]]:
    """A fetched frame's bars as (time in µs, values)."""
    if df.empty:
        return
    times = df[TIME].astype("datetime64[us, UTC]").astype("int64").to_numpy()
    present = [c for c in columns if c in df.columns]
    matrix = df[present].to_numpy(dtype=np.float64, na_value=np.nan)
    for t, row in zip(times.tolist(), matrix.tolist(), strict=True):
        yield t, dict(zip(present, row, strict=True))


# -- the entry point ------------------------------------------------------------------------------


def stream_flow(
    exchange: str | Sequence[str],
    symbol: str | Sequence[str],
    interval: str,
    *,
    history: int | timedelta | None = None,
    with_price: bool = False,
    source: str = "auto",
    client: Client | None = None,
    api_key: str | Secret | None = None,
    stream_url: str | None = None,
    speed: float = 1.0,
    max_bars: int | None = None,
    on_state: Callable[[str], None] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    backoff: float = BACKOFF,
    now: Callable[[], datetime] | None = None,
) -> LiveFlow:
    """Live taker flow: recent history, then each bar as it is published, gaps filled.

    Returns a :class:`LiveFlow`; nothing runs until it is iterated (``for bar in ...``,
    ``async for``, :meth:`~LiveFlow.poll`) or started. Every argument is checked here,
    so a bad one is one :class:`~aperiodic_jupyter.QueryError` line before anything
    connects.

    Args:
        exchange, symbol: as for :func:`~aperiodic_jupyter.get_flow`; lists stream
            several venues or symbols over one connection (one subscription, one
            channel per venue). A venue that does not list the symbol is skipped and
            named in the state line.
        interval: ``15s 30s 1m 5m 15m 30m 1h 4h 1d``.
        history: recent history given first: a number of bars or a ``timedelta``;
            ``0`` for none. Default: ``settings.live_history`` bars (360: 6 h at 1m,
            15 days at 1h). Complete bars only; the bar still open comes live.
        with_price: also stream ``open high low close`` (the ``ohlcv`` channel, and
            price in the history and the gap fills), as ``get_flow(with_price=True)``.
        source: ``auto`` (the API with a key, else the demo, as for REST), ``api`` or
            ``demo`` (a simulated feed from the demo tape, labelled simulated, no key,
            no network). The preview serves files only: it does not stream.
        client: the :class:`~aperiodic_jupyter.Client` for history and gap fills;
            default: a new one for ``source`` (closed at the end, and its fetches are
            cancelled by :meth:`~LiveFlow.stop`; a client passed here is neither).
        api_key: the key; else ``%config Aperiodic.api_key``, else
            ``APERIODIC_API_KEY``. It goes only in the stream's ``X-API-KEY`` handshake
            header (and REST's), never in a message or log.
        stream_url: the stream endpoint; else ``settings.stream_url``, else
            ``APERIODIC_STREAM_URL``, else ``wss://stream.aperiodic.io/v1/stream``.
        speed: the demo feed's clock rate (``600``: a 1m bar every 0.1 s); the demo only.
        max_bars: bars kept per series for :meth:`~LiveFlow.frame`; default
            ``settings.live_max_bars``.
        on_state: called with each new one-line state, from the live thread.
        idle_timeout: seconds without any frame before the connection counts as dead
            (75; tests shorten it).
        backoff: seconds before the first reconnect (doubling, jittered, capped at 30).
        now: the clock for the history window and the demo feed's start (tests pass a
            fixed one).
    """
    if interval not in INTERVALS:
        raise QueryError(f"unknown interval {interval!r}; valid: {', '.join(INTERVALS)}")
    step = interval_ns(interval) // 1_000_000_000
    span = _history_span(history, step)
    bars = settings.live_max_bars if max_bars is None else max_bars
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
        raise QueryError(f"max_bars must be a whole number of bars, at least 1, got {max_bars!r}")
    if span.total_seconds() / step > bars:
        raise QueryError(
            f"history of {span.total_seconds() / step:.0f} bars is more than the live frame keeps (max_bars={bars}): "
            "shorten history or raise max_bars (settings.live_max_bars)"
        )
    clock = now or (lambda: datetime.now(UTC))
    today = pd.Timestamp(clock()).tz_convert("UTC")
    first_day: date = (today - span).date()
    exchanges = [exchange] if isinstance(exchange, str) else list(exchange)
    symbols = [symbol] if isinstance(symbol, str) else list(symbol)
    queries, skipped = plan_queries(exchanges, symbols, interval, first_day, today.date())
    owns = client is None
    chosen = client if client is not None else Client(source, api_key=api_key)  # type: ignore[arg-type]
    try:
        feed = _feed(chosen, queries, with_price, api_key, stream_url, speed, idle_timeout, backoff, clock)
    except BaseException:
        if owns:
            chosen.close()
        raise
    return LiveFlow(
        chosen,
        queries,
        feed,
        owns_client=owns,
        history=span,
        with_price=with_price,
        max_bars=bars,
        skipped=skipped,
        speed=speed,
        on_state=on_state,
        now=clock,
    )


def _history_span(history: int | timedelta | None, step_seconds: int) -> timedelta:
    if history is None:
        return default_live_history(step_seconds)
    if isinstance(history, timedelta):
        if history < timedelta(0):
            raise QueryError(f"history must not be negative, got {history}")
        return history
    if isinstance(history, bool) or not isinstance(history, int) or history < 0:
        raise QueryError(f"history is a number of bars (0 for none) or a timedelta, got {history!r}")
    return timedelta(seconds=history * step_seconds)


def _feed(
    client: Client,
    queries: Sequence[Query],
    with_price: bool,
    api_key: str | Secret | None,
    stream_url: str | None,
    speed: float,
    idle_timeout: float,
    backoff: float,
    now: Callable[[], datetime],
) -> Feed:
    datasets = ("flow", "ohlcv") if with_price else ("flow",)
    kind = client.source.name
    if kind == "preview":
        raise QueryError(
            "the Aperiodic preview serves files only, not the live stream: "
            "use source='demo' for a simulated live feed, or source='api' with a key"
        )
    if kind == "demo":
        return DemoFeed(queries, datasets, speed=speed, now=now)
    if speed != 1:
        raise QueryError(
            f"speed={speed!r} runs the simulated demo feed faster; the real stream runs at the market's pace (speed=1)"
        )
    key = resolve_api_key(api_key)
    if not key:
        raise AuthError(f"no Aperiodic API key for the live stream: {KEY_HELP}")
    channels = []
    for exchange in dict.fromkeys(q.exchange for q in queries):
        symbols = tuple(dict.fromkeys(q.symbol for q in queries if q.exchange == exchange))
        channels += [Channel(d, exchange, queries[0].interval, symbols) for d in datasets]
    return StreamFeed(resolve_stream_url(stream_url), key, channels, idle_timeout=idle_timeout, backoff=backoff)
