"""The fetch core: query → cache → source → frame.

Both front ends (the ``%flow`` magic and the explorer widget) and the module-level
:func:`~aperiodic_jupyter.get_flow` call :meth:`Client.fetch` on the client that
:func:`default_client` hands out; none of them fetch on their own or build clients.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack, overload

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .cache import CacheKey, DiskCache, MemoryCache, MonthCache, MonthLock, Spool, default_cache_dir
from .combine import combine, combine_tables, fetch_all, plan_queries
from .coverage import check_listed, coverage
from .errors import AperiodicError, DownloadError, FetchCancelled, QueryError
from .frame import RELEASE_BYTES, FrameBuilder, assemble, months_to_frame, release_decoded, small_frame, table_to_frame
from .output import Frame, check_output, convert
from .parquet import MonthData, check_span
from .price import join_price
from .progress import ProgressCallback, reporter
from .query import Query, make_query
from .ranges import Month
from .schema import FLOW_FILE_SCHEMA, TIME
from .settings import SOURCES, Secret, fingerprint, resolve_api_key, settings
from .sources.api import ApiSource
from .sources.base import OnMonth, Source, is_unlisted
from .sources.demo import DemoSource
from .sources.preview import PreviewSource

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Client", "FetchOptions", "default_client", "shared_memory_cache"]

log = logging.getLogger("aperiodic_jupyter")

#: Longest wait, in seconds, for another process that is downloading the same month
#: (it holds the month's lock in the disk cache); after it, the month is downloaded here.
LOCK_WAIT = 60.0

#: Seconds between two looks at a cancel event while waiting for a month another
#: thread is downloading.
_CANCEL_POLL = 0.2


_memory_lock = threading.Lock()
_memory: MemoryCache | None = None


def shared_memory_cache() -> MemoryCache:
    """The per-kernel memory cache every :class:`Client` shares by default."""
    global _memory
    with _memory_lock:
        if _memory is None:
            _memory = MemoryCache(settings.memory_cache_bytes)
        _memory.max_bytes = settings.memory_cache_bytes
        return _memory


class _InFlight:
    """Months being fetched right now, so a second caller waits instead of downloading
    the same month again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[CacheKey, Future[MonthData]] = {}

    def claim(self, keys: Sequence[CacheKey]) -> tuple[dict[CacheKey, Future[MonthData]], dict[CacheKey, Future[MonthData]]]:
        mine: dict[CacheKey, Future[MonthData]] = {}
        theirs: dict[CacheKey, Future[MonthData]] = {}
        with self._lock:
            for key in keys:
                if key in self._futures:
                    theirs[key] = self._futures[key]
                else:
                    mine[key] = self._futures[key] = Future()
        return mine, theirs

    def release(self, key: CacheKey) -> None:
        with self._lock:
            self._futures.pop(key, None)


_inflight = _InFlight()


class Client:
    """A source, a cache and settings: the object every fetch goes through.

    Args:
        source: ``"auto"`` (the API when a key is configured, else the demo), ``"api"``,
            ``"demo"``, or a :class:`~aperiodic_jupyter.sources.base.Source` instance.
        api_key: API key; else ``%config Aperiodic.api_key``, else ``APERIODIC_API_KEY``.
            Never shown in a repr, an error or a log line.
        base_url: API root; else ``APERIODIC_API_URL``, else the public API.
        cache_dir: disk cache root; ``None`` for the default (``APERIODIC_CACHE_DIR`` or
            the platform cache dir), ``False`` for no disk cache.
        memory_cache: the memory cache; by default the one shared by the kernel.
        ttl: seconds a month that is not yet complete stays fresh; else
            ``settings.ttl``.
        max_concurrency: downloads in flight at once; else ``settings.max_concurrency``.
        **api_options: passed to :class:`~aperiodic_jupyter.sources.api.ApiSource`
            (``timeout``, ``max_attempts``, ``backoff``, ``max_retry_wait``, ...).

    ``Client`` is a context manager; ``close()`` releases its HTTP connections, and a
    closed client refuses to fetch. Most code never builds one: :func:`default_client`
    hands out one shared client per source.
    """

    def __init__(
        self,
        source: Literal["auto", "api", "demo"] | Source = "auto",
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        cache_dir: str | Path | None | Literal[False] = None,
        memory_cache: MemoryCache | None = None,
        ttl: float | None = None,
        max_concurrency: int | None = None,
        **api_options: Any,
    ) -> None:
        if isinstance(source, str):
            choice = source if source != "auto" else settings.source
            if choice == "auto":
                choice = "api" if resolve_api_key(api_key) else "demo"
            if choice == "api":
                self.source: Source = ApiSource(api_key, base_url, max_concurrency=max_concurrency, **api_options)
            elif choice == "preview":
                if api_key:
                    raise QueryError("the preview uses the shared public key, never yours: drop api_key, or use source='api'")
                self.source = PreviewSource(base_url, max_concurrency=max_concurrency, **api_options)
            elif choice == "demo":
                self.source = DemoSource()
            else:
                raise QueryError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
        else:
            self.source = source
        if cache_dir is False or cache_dir == "" or (cache_dir is None and settings.cache_dir == ""):
            disk = None
        else:
            disk = DiskCache(cache_dir or settings.cache_dir or default_cache_dir())
        self.cache = MonthCache(memory_cache if memory_cache is not None else shared_memory_cache(), disk, ttl)
        #: Seconds to wait for another process downloading the same month (see
        #: :data:`LOCK_WAIT`) before downloading it here.
        self.lock_wait = LOCK_WAIT
        self._lock = threading.Lock()
        self._users = 0
        self._retired = False
        self.closed = False

    def __repr__(self) -> str:
        where = self.cache.disk.root if self.cache.disk else "memory only"
        return f"Client(source={self.source!r}, cache={str(where)!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the source's connections; the client refuses to fetch after this."""
        with self._lock:
            self.closed = True
        self.source.close()

    def retire(self) -> None:
        """Close as soon as no call is using this client (now, if none is): how
        :func:`default_client` lets go of a client another thread may still be using."""
        with self._lock:
            self._retired = True
            idle = self._users == 0
        if idle:
            self.close()

    @contextmanager
    def _in_use(self) -> Iterator[None]:
        with self._lock:
            if self.closed:
                raise RuntimeError("this Client is closed; aperiodic_jupyter.default_client() hands out an open one")
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                last = self._retired and self._users == 0
            if last:
                self.close()

    # -- building queries ---------------------------------------------------------------

    #: Validate arguments into a :class:`Query`: :func:`~aperiodic_jupyter.make_query`.
    query = staticmethod(make_query)

    # -- fetching ------------------------------------------------------------------------

    def plan(self, query: Query) -> pd.DataFrame:
        """The months a query needs and whether each is cached: a dry run, nothing is
        downloaded. Columns: ``month``, ``cached`` (``memory``, ``disk`` or ``no``).

        Raises:
            NoDataError: the range lies wholly outside the instrument's capture dates.
        """
        check_listed(query)
        rows = []
        for month in query.months:
            hit = self.cache.find(CacheKey.of(self.source.cache_namespace, query, month))
            rows.append({"month": str(month), "cached": hit[1] if hit else "no"})
        return pd.DataFrame(rows, columns=["month", "cached"])

    def fetch_table(
        self,
        query: Query,
        *,
        refresh: bool = False,
        progress: bool | ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[pa.Table, dict[str, str]]:
        """The query's rows as an Arrow table (``time`` tz-aware UTC), and where each
        month came from (``memory``, ``disk``, ``download``).

        Raises:
            NoDataError: the range lies wholly outside the instrument's capture dates
                (checked before the cache or the source is asked).
            FetchCancelled: ``cancel`` was set (see :meth:`fetch`).
        """
        parts, origin = self._months(query, refresh, progress, cancel)
        return _assemble(parts, query), origin

    def _months(
        self,
        query: Query,
        refresh: bool,
        progress: bool | ProgressCallback | None,
        cancel: threading.Event | None,
        builder: FrameBuilder | None = None,
    ) -> tuple[dict[Month, MonthData], dict[str, str]]:
        """The query's months (cached, downloaded, or downloaded by another thread) and
        where each came from. ``builder``: each downloaded month is copied into it from
        the table it was checked with, before that table is let go."""
        # Every front end fetches through here, so one check gives them all one line
        # instead of a silent empty frame.
        check_listed(query)
        with self._in_use():
            return self._fetch_months(query, refresh, progress, cancel, builder)

    def _fetch_months(self, query: Query, *how: Any) -> tuple[dict[Month, MonthData], dict[str, str]]:
        """:meth:`_months` once the client is marked in use (``how``: its other arguments)."""
        refresh, progress, cancel, builder = how
        ns = self.source.cache_namespace
        keys = {m: CacheKey.of(ns, query, m) for m in query.months}
        parts: dict[Month, MonthData] = {}
        origin: dict[str, str] = {}
        if not refresh:
            for month, key in keys.items():
                hit = self.cache.find(key)
                if hit is not None:
                    parts[month], origin[str(month)] = hit
        missing = [keys[m] for m in query.months if m not in parts]
        if missing:
            self.source.check(query)  # cached months need no key; a download does
            _raise_if_cancelled(cancel)
        report = reporter(progress, len(keys), len(parts), len(missing), f"{query.symbol} {query.interval}")
        if missing:
            mine, theirs = _inflight.claim(missing)
            failure: BaseException | None = None
            try:
                if mine:
                    self._download(query, mine, parts, origin, report, refresh, cancel, builder)
                for key, fut in theirs.items():
                    parts[key.month] = _result(fut, cancel)
                    origin[str(key.month)] = "download"
                    report()
            except BaseException as exc:
                failure = exc
                raise
            finally:
                for key, fut in mine.items():
                    if not fut.done():
                        # A caller waiting on this month gets the same typed error.
                        fut.set_exception(
                            failure
                            if isinstance(failure, AperiodicError)
                            else DownloadError(f"the download of {key.month} failed")
                        )
                    _inflight.release(key)
                report(close=True)
        return parts, dict(sorted(origin.items()))

    def _download(
        self,
        query: Query,
        mine: dict[CacheKey, Future[MonthData]],
        parts: dict[Month, MonthData],
        origin: dict[str, str],
        report: Callable[..., None],
        refresh: bool = False,
        cancel: threading.Event | None = None,
        builder: FrameBuilder | None = None,
    ) -> None:
        """Fetch this thread's months from the source. With a disk cache, each month is
        first locked across processes: a month another process is downloading is waited
        for (at most ``lock_wait`` seconds) and read from its file instead. A month that
        comes as one file is written to the disk cache as it arrives and moved into
        place once it has passed its checks (:class:`~.cache.Spool`); a month that fails
        them, or a fetch that fails or is cancelled, leaves no file."""
        by_month = {key.month: key for key in mine}
        guard = threading.Lock()
        held: dict[CacheKey, MonthLock] = {}
        spools: dict[Month, Spool | None] = {}

        def deliver(key: CacheKey, data: MonthData, where: str) -> None:
            with guard:
                parts[key.month] = data
                origin[str(key.month)] = where
            mine[key].set_result(data)
            report()

        def spool(month: Month) -> Spool | None:
            made = self.cache.disk.spool(by_month[month]) if self.cache.disk is not None else None
            with guard:
                spools[month] = made
            return made

        def on_month(month: Month, table: pa.Table, raw: bytes | bytearray | None) -> None:
            key = by_month[month]
            # Every source's months pass here: the bars must lie inside the month asked for.
            # (A large file the API source decoded straight into the frame hands over its
            # schema only, without rows: its bars were checked there. It is kept as its
            # file.)
            check_span(table, month.first_day, month.last_day, str(month))
            placed = builder is not None and month in builder.added
            with guard:
                written = spools.pop(month, None)
            data = self.cache.put(key, table, raw, spool=written, as_file=placed)
            unlisted = is_unlisted(table)
            if builder is not None and not placed and data.raw is not None:
                # Into the frame from the table the month was checked with, before it
                # goes: each file is decoded once on the way to the frame. (A month kept
                # as its table is stacked with the others at the end: for small months
                # one to_pandas costs less than a copy per column in this thread.)
                builder.add_table(month, table)
            if data.raw is not None:  # kept as its file: the decoded month goes now
                del table
                release_decoded()
            with guard:
                taken = held.pop(key, None)
            if taken is not None:
                taken.release()  # its file is in place: a waiting process may read it
            # A month the listing left out is empty by omission, not by proof: say so.
            deliver(key, data, "not listed" if unlisted else "download")

        busy: dict[CacheKey, MonthLock] = {}
        try:
            todo = self._lock_months(sorted(by_month.values(), key=lambda k: k.month), held, busy, deliver, refresh)
            if todo:
                self._from_source(query, todo, on_month, spool, cancel, builder)
            with guard:
                locks = list(held.values())  # a month the source did not hand over
                held.clear()
            for taken in locks:
                taken.release()  # hold nothing while waiting for other processes
            if busy:
                again = self._wait_for_others(busy, held, deliver)
                if again:
                    self._from_source(query, again, on_month, spool, cancel, builder)
        finally:
            with guard:
                locks = [*held.values(), *busy.values()]
                held.clear()
                left = [s for s in spools.values() if s is not None]
                spools.clear()
            for taken in locks:
                taken.release()
            for unfinished in left:
                unfinished.abort()  # a month that failed its checks, or never came: no file

    def _from_source(
        self,
        query: Query,
        months: list[Month],
        on_month: OnMonth,
        spool: Callable[[Month], Spool | None],
        cancel: threading.Event | None,
        builder: FrameBuilder | None = None,
    ) -> None:
        """``source.fetch_months``: the API source writes months to disk as they arrive
        and takes the cancel event itself; any other source is checked for a cancel
        between months."""
        if isinstance(self.source, ApiSource):
            place = builder.add_file if builder is not None else None
            self.source.fetch_months(query, months, on_month, cancel=cancel, spool=spool, place=place)
            return
        if cancel is None:
            self.source.fetch_months(query, months, on_month)
            return

        def checked(month: Month, table: pa.Table, raw: bytes | bytearray | None) -> None:
            _raise_if_cancelled(cancel)
            on_month(month, table, raw)

        self.source.fetch_months(query, months, checked)

    def _lock_months(
        self,
        keys: list[CacheKey],
        held: dict[CacheKey, MonthLock],
        busy: dict[CacheKey, MonthLock],
        deliver: Callable[[CacheKey, MonthData, str], None],
        refresh: bool,
    ) -> list[Month]:
        """The months to download now (locked here in ``held``, or not lockable); the
        months another process holds go to ``busy``. A month whose file appeared
        meanwhile is delivered from it."""
        if refresh or self.cache.disk is None:
            return [k.month for k in keys]
        todo: list[Month] = []
        for key in keys:
            lock = self.cache.lock(key)
            try:
                free = lock is not None and lock.try_acquire()
            except OSError as exc:  # a lock must never fail a fetch: download as without one
                log.debug("no lock for %s: %s", key.month, exc)
                todo.append(key.month)
                continue
            if lock is not None and not free:
                busy[key] = lock
                continue
            if lock is not None:
                held[key] = lock
            hit = self.cache.find(key)  # another process may have finished it just now
            if hit is not None:
                held.pop(key, None)
                if lock is not None:
                    lock.release()
                deliver(key, hit[0], hit[1])
            else:
                todo.append(key.month)
        return todo

    def _wait_for_others(
        self,
        busy: dict[CacheKey, MonthLock],
        held: dict[CacheKey, MonthLock],
        deliver: Callable[[CacheKey, MonthData, str], None],
    ) -> list[Month]:
        """Wait for the months other processes are downloading, reading each file once
        its lock is free; the months still missing (that process failed, found the month
        empty, or kept it past ``lock_wait``) are returned to be downloaded here."""
        deadline = time.monotonic() + self.lock_wait
        again: list[Month] = []
        pause = 0.02
        while busy:
            for key, lock in list(busy.items()):
                try:
                    free = lock.try_acquire()
                except OSError:
                    free = None
                if free is False and time.monotonic() < deadline:
                    continue
                del busy[key]
                if free:
                    held[key] = lock
                else:
                    lock.release()
                    if free is False:
                        log.info(
                            "%s is still locked by another process after %.0f s; downloading it here", key.month, self.lock_wait
                        )
                hit = self.cache.find(key)
                if hit is not None:
                    held.pop(key, None)
                    lock.release()
                    deliver(key, hit[0], hit[1])
                else:
                    again.append(key.month)
            if busy:
                time.sleep(pause)
                pause = min(pause * 1.5, 0.25)
        return sorted(again)

    @overload
    def fetch(
        self,
        query: Query,
        *,
        refresh: bool = ...,
        progress: bool | ProgressCallback | None = ...,
        with_price: bool = ...,
        output: Literal["pandas"] = ...,
        cancel: threading.Event | None = ...,
    ) -> pd.DataFrame: ...

    @overload
    def fetch(
        self,
        query: Query,
        *,
        refresh: bool = ...,
        progress: bool | ProgressCallback | None = ...,
        with_price: bool = ...,
        output: Literal["polars"],
        cancel: threading.Event | None = ...,
    ) -> pl.DataFrame: ...

    @overload
    def fetch(
        self,
        query: Query,
        *,
        refresh: bool = ...,
        progress: bool | ProgressCallback | None = ...,
        with_price: bool = ...,
        output: Literal["arrow"],
        cancel: threading.Event | None = ...,
    ) -> pa.Table: ...

    @overload
    def fetch(
        self,
        query: Query,
        *,
        refresh: bool = ...,
        progress: bool | ProgressCallback | None = ...,
        with_price: bool = ...,
        output: str,
        cancel: threading.Event | None = ...,
    ) -> Frame: ...

    def fetch(
        self,
        query: Query,
        *,
        refresh: bool = False,
        progress: bool | ProgressCallback | None = None,
        with_price: bool = False,
        output: str = "pandas",
        cancel: threading.Event | None = None,
    ) -> Frame:
        """Fetch a query as a pandas DataFrame (or, with ``output``, a Polars
        DataFrame or an Arrow table).

        ``time`` is a tz-aware UTC column (bar start), rows sorted by it and trimmed to
        ``[start 00:00, end 23:59:59.999999]``. ``df.attrs`` records ``query``,
        ``source``, ``simulated``, ``label``, ``months`` (month → ``memory``/``disk``/
        ``download``), ``from_cache``, ``downloaded`` and ``coverage`` (the days asked
        and covered, ``complete``, and a ``note`` saying what is missing and why; see
        :mod:`.coverage`).

        Args:
            refresh: ignore cached months and fetch again (the cache is updated).
            progress: ``True`` for a progress bar (shown only when something downloads),
                or a callable receiving :class:`Progress`.
            with_price: for a flow query, also fetch the ``ohlcv`` metric of the same
                query and join ``open high low close`` on ``time`` (see :mod:`.price`);
                a price fetch that fails leaves the flow whole and says why in
                ``df.attrs["price"]``. Every output: the join is done in Arrow, bars
                missing on one side are nulls (NaN in pandas).
            output: ``pandas`` (default), ``polars`` (zero-copy from the Arrow table;
                needs ``pip install polars``) or ``arrow`` (the table itself). ``time``
                is tz-aware UTC in all three; the ``attrs`` above are in ``df.attrs``,
                in the Arrow schema metadata, and for all three at
                :func:`aperiodic_jupyter.provenance` (see :mod:`.output`).
            cancel: an event that, once set (from any thread), cancels this call only:
                it raises :class:`~aperiodic_jupyter.FetchCancelled` within about 0.2 s;
                months finished before it stay cached. ``source.cancel()`` cancels
                every call on the source instead.

        A pandas frame is built month by month, each month decoded a few columns at a
        time straight into the frame's columns (:func:`~.frame.months_to_frame`), so a
        fetch holds about the frame plus the months' file bytes at its peak.
        """
        output = check_output(output)  # before any download: a typo or no Polars fails at once
        if with_price and query.metric != "flow":
            raise QueryError(f"with_price joins price onto flow; the {query.metric!r} metric has no price join")
        if output == "pandas" and not with_price:
            builder = FrameBuilder(query)
            parts, origin = self._months(query, refresh, progress, cancel, builder)
            df = _to_frame(parts, query, builder)
            del parts, builder
            first = last = None
            if TIME in df.columns and len(df):
                first, last = df[TIME].iloc[0], df[TIME].iloc[-1]
            df.attrs.update(self._attrs(query, origin, first, last))
            return df
        parts, origin = self._months(query, refresh, progress, cancel)
        table = _assemble(parts, query)
        del parts
        attrs = self._attrs(query, origin, *_time_bounds(table))
        if with_price:
            table, attrs["price"] = self._join_price(query, table, refresh, progress, cancel)
        return convert(table, attrs, output)

    def _join_price(
        self,
        query: Query,
        flow: pa.Table,
        refresh: bool,
        progress: bool | ProgressCallback | None,
        cancel: threading.Event | None = None,
    ) -> tuple[pa.Table, dict[str, Any]]:
        """``flow`` with the price of the same query joined on ``time`` (in Arrow, for
        every output: :mod:`.price`), and the provenance's ``price`` record."""
        try:
            # One bar per call: the price months (few, small) show no second bar.
            price, _ = self.fetch_table(
                dataclasses.replace(query, metric="ohlcv"),
                refresh=refresh,
                progress=progress if callable(progress) else None,
                cancel=cancel,
            )
        except FetchCancelled:
            raise
        except AperiodicError as exc:  # the flow is what was asked for: never lose it
            return join_price(flow, None, error=str(exc))
        return join_price(flow, price, source=self.source.name)

    async def fetch_async(self, query: Query, **kwargs: Any) -> Frame:
        """:meth:`fetch` for ``await``: the work runs in a worker thread, so the event
        loop (Jupyter's included) keeps running."""
        return await asyncio.to_thread(lambda: self.fetch(query, **kwargs))

    def _attrs(self, query: Query, origin: dict[str, str], first: Any, last: Any) -> dict[str, Any]:
        """The provenance of a frame whose bars run from ``first`` to ``last`` (``None``
        for none)."""
        simulated = bool(getattr(self.source, "simulated", False))
        return {
            "query": query.to_dict(),
            "source": self.source.name,
            "simulated": simulated,
            "label": self.source.label,
            "months": origin,
            "from_cache": [m for m, o in origin.items() if o != "download"],
            "downloaded": [m for m, o in origin.items() if o == "download"],
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "coverage": coverage(query, first, last).to_dict(),
        }

    def get_metrics(
        self,
        metric: str,
        exchange: str | Sequence[str],
        symbol: str | Sequence[str],
        interval: str,
        start: date | datetime | str,
        end: date | datetime | str | None = None,
        **options: Unpack[FetchOptions],
    ) -> Frame:
        """Any metric served on ``/data/{metric}`` (``flow``, ``vtwap``, ``returns``...);
        the arguments are :func:`~aperiodic_jupyter.get_flow`'s. Lists of venues or
        symbols give one tidy frame with ``exchange`` and ``symbol`` columns (see
        :mod:`.combine`; for ``output="polars"``/``"arrow"`` the parts are stacked in
        Arrow)."""
        timestamp = options.get("timestamp", "exchange")
        output = check_output(options.get("output", "pandas"))
        fetch_options: dict[str, Any] = {
            "refresh": options.get("refresh", False),
            "progress": options.get("progress"),
            "with_price": options.get("with_price", False),
            "output": output,
        }
        if isinstance(exchange, str) and isinstance(symbol, str):
            q = make_query(exchange, symbol, interval, start, end, timestamp=timestamp, metric=metric)
            return self.fetch(q, **fetch_options)
        exchanges = [exchange] if isinstance(exchange, str) else list(exchange)
        symbols = [symbol] if isinstance(symbol, str) else list(symbol)
        queries, skipped = plan_queries(exchanges, symbols, interval, start, end, timestamp=timestamp, metric=metric)
        if output == "pandas":
            return combine(fetch_all(self, queries, **fetch_options), skipped)
        table, attrs = combine_tables(fetch_all(self, queries, **{**fetch_options, "output": "arrow"}), skipped)
        return convert(table, attrs, output)

    def get_flow(
        self,
        exchange: str | Sequence[str],
        symbol: str | Sequence[str],
        interval: str,
        start: date | datetime | str,
        end: date | datetime | str | None = None,
        **options: Unpack[FetchOptions],
    ) -> Frame:
        """Taker-flow metrics; see :func:`aperiodic_jupyter.get_flow`."""
        return self.get_metrics("flow", exchange, symbol, interval, start, end, **options)

    def get_ohlcv(
        self,
        exchange: str | Sequence[str],
        symbol: str | Sequence[str],
        interval: str,
        start: date | datetime | str,
        end: date | datetime | str | None = None,
        **options: Unpack[FetchOptions],
    ) -> Frame:
        """Price bars; see :func:`aperiodic_jupyter.get_ohlcv`."""
        return self.get_metrics("ohlcv", exchange, symbol, interval, start, end, **options)


def _assemble(parts: dict[Month, MonthData], query: Query) -> pa.Table:
    """The months decoded, trimmed and stacked (:func:`.frame.assemble`); an empty
    flow result has the flow columns."""
    table = assemble([(month, data.table()) for month, data in parts.items()], query)
    if table.num_rows == 0 and query.metric == "flow":
        table = FLOW_FILE_SCHEMA.empty_table()
    return table


def _to_frame(parts: dict[Month, MonthData], query: Query, builder: FrameBuilder) -> pd.DataFrame:
    """The pandas frame of the months: ``builder`` holds the downloaded ones already;
    the cached ones are added now. Months the build does not copy take the general
    path (:func:`.frame.assemble`, then ``to_pandas``)."""
    if not builder.added:
        small = small_frame(list(parts.items()), query)  # hourly months from memory
        if small is not None:
            return small
    if builder.ok:
        for month in sorted(parts):
            if month not in builder.added:
                builder.add(month, parts[month])
    df = builder.frame()
    if sum(p.nbytes for p in parts.values()) > RELEASE_BYTES:
        release_decoded()  # what decoding kept in Arrow's pool: the frame is all that is needed now
    if df is None:  # columns or order the month-by-month build does not handle
        df = months_to_frame(list(parts.items()), query)
    if df is None:
        df = table_to_frame(_assemble(parts, query))
    return df


def _time_bounds(table: pa.Table) -> tuple[Any, Any]:
    """The first and last bar time of a table (``None`` without bars)."""
    if TIME not in table.column_names or not table.num_rows:
        return None, None
    bounds = pc.min_max(table.column(TIME))
    return bounds["min"].as_py(), bounds["max"].as_py()


def _raise_if_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise FetchCancelled("the fetch was cancelled; months finished before it are kept")


def _result(fut: Future[MonthData], cancel: threading.Event | None) -> MonthData:
    """A month another thread is downloading, waited for while ``cancel`` is not set."""
    if cancel is None:
        return fut.result()
    while True:
        try:
            return fut.result(timeout=_CANCEL_POLL)
        except FutureTimeout:
            _raise_if_cancelled(cancel)


class FetchOptions(TypedDict, total=False):
    """Keyword options of every ``get_*`` call.

    Attributes:
        timestamp: ``exchange`` (exchange time, default) or ``true`` (arrival time).
        refresh: fetch again even if cached (the cache is updated).
        progress: ``True`` for a progress bar while months download, or a callable
            receiving :class:`~aperiodic_jupyter.Progress`.
        with_price: flow only: join ``open high low close`` on ``time`` (any output).
        output: ``pandas`` (default), ``polars`` or ``arrow``; see
            :mod:`aperiodic_jupyter.core.output`.
    """

    timestamp: str
    refresh: bool
    progress: bool | ProgressCallback | None
    with_price: bool
    output: str


_clients_lock = threading.Lock()
_clients: dict[str, tuple[tuple[Any, ...], Client]] = {}


def default_client(source: str = "auto") -> Client:
    """The shared client for a source (``auto``, ``api`` or ``demo``), built from
    ``settings`` and the environment: the one way the magic, the explorer and
    :func:`~aperiodic_jupyter.get_flow` get a client.

    Safe across threads. When the settings or the environment change, the next call
    builds a new client and retires the old one, which closes once the calls still
    using it finish; a closed client is never handed out.
    """
    choice = str(source).strip().lower()
    if choice not in SOURCES:
        raise QueryError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
    with _clients_lock:
        fp = fingerprint()
        entry = _clients.get(choice)
        if entry is not None and entry[0] == fp and not entry[1].closed:
            return entry[1]
        if entry is not None:
            entry[1].retire()
        client = Client(choice)  # type: ignore[arg-type]
        _clients[choice] = (fp, client)
        return client
