"""The Aperiodic HTTP API as a source (``GET {base}/data/{metric}`` → presigned files).

Threads, not an event loop: one shared synchronous ``httpx.Client`` and a bounded thread
pool, so a call works the same from a script, from inside Jupyter's running event loop
(no ``nest_asyncio`` patching) and from a widget's worker thread.

Contract handling (``docs/api.md``):

- 429 / 502 / 503 / 504, time-outs and dropped connections are retried with bounded
  exponential backoff (tenacity) that honours ``Retry-After`` up to ``max_retry_wait``.
- A 403 from the file host means the presigned URL expired: ask the API for fresh URLs,
  never retry the dead URL. Renewal goes on while rounds finish files; after
  ``max_refreshes`` renewals in a row that finish none, the call fails.
- A body that is cut short or is not valid Parquet is retried, never cached.
- The key goes only into the ``X-API-KEY`` header of API requests, and API requests
  follow only redirects to the same origin (scheme, host, port); a redirect elsewhere is
  refused in one line. Presigned URLs never appear in messages or logs (httpx's own
  request log is redacted).
- Each file has a time budget for all its attempts, ``file_deadline`` plus its announced
  size at ``min_rate``, and must arrive at ``min_rate`` or faster over every
  ``rate_window``; a file that does not is "stalled", named by its month.
- The listing is checked against what was asked: files of months or days not asked are
  ignored, a file listed twice is refused, a month not listed is handed over empty but
  marked unlisted (:func:`.base.is_unlisted`), and every file's bars must lie inside its
  month or day.
- A month that comes as one file can be written to disk as it arrives: the caller's
  ``spool`` gives each such month a :class:`BodySink`, which every attempt restarts and
  every piece of the body goes to; the caller moves it into place once the month has
  passed its checks (see :class:`~aperiodic_jupyter.core.cache.Spool`).
- At most a few downloaded files are decoded and not yet handed over at once
  (:data:`~..parquet.DECODES`), however many downloads finish together: each holds a
  decoded month, and a caller busy with one month must not find every other month
  decoded and waiting.
- Cancellation (:meth:`ApiSource.cancel`, a cancel event, or Ctrl-C in the calling
  thread) returns at once: blocking reads wake every ``POLL`` seconds to check a
  per-fetch flag, no retry or new request goes out, the pool does not wait for running
  downloads, and no month is handed over after it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tenacity

from ... import __version__
from ..errors import (
    AuthError,
    DownloadError,
    FetchCancelled,
    NoDataError,
    PlanError,
    QueryError,
    SchemaError,
    ServerError,
    SourceError,
)
from ..parquet import DECODES, SMALL_FILE, read_parquet_bytes, time_bounds
from ..query import SUB_MINUTE, Query
from ..ranges import Month, utc_today
from ..schema import TIME
from ..settings import Secret, resolve_api_key, resolve_base_url, settings
from .base import OnMonth, unlisted_month
from .download_guard import POLL, Cancelled, Expired, Guard, Slow, Stalled, guarded, guarded_sleep, guarded_transport
from .http_policy import Backoff, Transient, origin, raise_if_retryable, redact, same_origin, transport_errors

log = logging.getLogger("aperiodic_jupyter")

#: Redirects an API request follows (same origin only).
MAX_REDIRECTS = 5
KEY_HELP = "set APERIODIC_API_KEY, run %config Aperiodic.api_key = '...', or pass api_key=...; source='demo' needs no key"


class BodySink(Protocol):
    """Where a file's body goes as it arrives, besides memory (a month's spool file)."""

    def restart(self) -> None:
        """A body starts (each attempt): forget what was written before."""

    def write(self, piece: bytes | bytearray | memoryview) -> None: ...


#: The caller's sink for a month that comes as one file, or ``None`` for none.
SpoolFor = Callable[[Month], BodySink | None]
#: The caller's frame for a month that comes as one large file: decodes the checked
#: file's columns straight into it, a few at a time, and answers whether it took the
#: month (see :class:`~aperiodic_jupyter.core.frame.FrameBuilder`); raises what a
#: decode raises on a corrupt file.
PlaceFile = Callable[[Month, bytearray], bool]

#: Bytes of a body handed to its sink at once. Each hand-over (a file write, a checksum
#: update) lets go of the GIL and must wait to get it back while other downloads hold
#: it: one hand-over per 64 KiB read cost a year of minute bars about 0.2 s at 1 GB/s.
SINK_STEP = 1 << 20


def _pass_on(buf: bytearray, start: int, end: int, sink: BodySink) -> int:
    """Hand ``buf[start:end]`` to ``sink`` without copying it; the view is let go at
    once, so ``buf`` may still grow. Returns ``end``."""
    with memoryview(buf) as view, view[start:end] as piece:
        sink.write(piece)
    return end


class _Run:
    """One ``fetch_months`` call: its own cancel flag, plus the caller's event if any,
    and its permits to decode (one per month decoded and not yet handed over)."""

    def __init__(self, event: threading.Event | None) -> None:
        self.flag = threading.Event()
        self.event = event
        self.decoding = threading.BoundedSemaphore(DECODES)

    def cancelled(self) -> bool:
        return self.flag.is_set() or (self.event is not None and self.event.is_set())


class ApiSource:
    """Months from the Aperiodic API.

    Args:
        api_key: the key; else ``%config`` settings, else ``APERIODIC_API_KEY``.
        base_url: API root; else settings, else ``APERIODIC_API_URL``, else
            ``https://aperiodic.io/api/v1``.
        max_concurrency: downloads in flight at once; else ``settings.max_concurrency``.
        timeout: seconds for connect/read/write of one request.
        max_attempts: tries per request, counting the first.
        backoff: first retry delay in seconds (doubles each time, with jitter).
        max_retry_wait: cap on any one wait, ``Retry-After`` included.
        max_refreshes: renewals of expired presigned URLs in a row that finish no file
            before the call fails; a renewal round that finishes at least one file
            resets the count, so renewal goes on while it makes progress.
        file_deadline: seconds one file may take over all its attempts and waits, to
            which its announced size divided by ``min_rate`` is added; past it the file
            has stalled (``DownloadError: file for 2024-03 stalled: ...``).
        min_rate: bytes per second a body must arrive at, measured over every
            ``rate_window``; slower, the attempt has stalled and is retried while the
            budget lasts.
        rate_window: seconds over which ``min_rate`` is measured.
    """

    name = "api"
    simulated = False
    label = "Aperiodic API: your plan's data"
    #: The path under the base URL that lists a metric's files.
    data_path = "data"

    def __init__(
        self,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        *,
        max_concurrency: int | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_retry_wait: float = 10.0,
        max_refreshes: int = 3,
        file_deadline: float = 60.0,
        min_rate: float = 4096.0,
        rate_window: float = 20.0,
    ) -> None:
        self._key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(base_url)
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise QueryError(f"invalid API base URL {self.base_url!r}; expected http(s)://host/api/v1")
        host = "" if parts.netloc == "aperiodic.io" else "-" + re.sub(r"[^\w.-]", "_", parts.netloc)
        self.cache_namespace = self.name + host  # "api", "preview", or per test host
        self._origin = origin(httpx.URL(self.base_url))
        self.max_concurrency = max(1, int(settings.max_concurrency if max_concurrency is None else max_concurrency))
        self.max_attempts = max(1, int(max_attempts))
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        self.max_refreshes = max(0, int(max_refreshes))
        self.file_deadline = float(file_deadline)
        self.min_rate = max(0.0, float(min_rate))
        self.rate_window = max(0.0, float(rate_window))
        self._runs: set[_Run] = set()
        self._runs_lock = threading.Lock()
        limits = httpx.Limits(max_connections=self.max_concurrency + 2, max_keepalive_connections=self.max_concurrency + 2)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=limits,
            transport=guarded_transport(limits),
            headers={"User-Agent": f"aperiodic-jupyter/{__version__}"},
            follow_redirects=False,  # API requests follow same-origin redirects by hand; files ask for it
        )

    def __repr__(self) -> str:
        return f"ApiSource(base_url={self.base_url!r}, api_key={'<set>' if self._key else '<unset>'})"

    def close(self) -> None:
        self._http.close()

    def cancel(self) -> None:
        """Cancel every fetch running on this source, from any thread (the explorer's
        Cancel). Each raises :class:`~aperiodic_jupyter.FetchCancelled`
        within about ``POLL`` seconds; months handed over before stay, no other month is
        handed over, no request goes out after it. Later fetches are not affected; to
        cancel one fetch only, pass ``cancel=event`` to :meth:`fetch_months`."""
        with self._runs_lock:
            for run in self._runs:
                run.flag.set()

    # -- the listing -----------------------------------------------------------------

    def _retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=Backoff(self.backoff, self.max_retry_wait),
            retry=tenacity.retry_if_exception_type(Transient),
            before_sleep=self._log_retry,
            sleep=guarded_sleep,
            reraise=True,
        )

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info("retrying after %s (attempt %d of %d)", exc, state.attempt_number, self.max_attempts)

    def check(self, query: Query) -> None:
        self._require_key()

    def _require_key(self) -> Secret:
        if not self._key:
            raise AuthError(f"no Aperiodic API key: {KEY_HELP}")
        return self._key

    def list_symbols(self, exchange: str) -> list[str]:
        """The Atlas symbols the API serves for a venue now (``GET
        {base}/metadata/symbols?exchange=...``), retried like any API request."""
        key = self._require_key()
        try:
            for attempt in self._retrying():
                with attempt:
                    response = self._get_api(f"{self.base_url}/metadata/symbols", {"exchange": exchange}, key)
        except Transient as exc:
            raise ServerError(f"the Aperiodic API did not answer the symbol list ({exc.reason})") from None
        if response.status_code != 200:
            raise ServerError(f"the symbol list failed with HTTP {response.status_code}: {self._server_message(response)}")
        try:
            symbols = [str(x) for x in response.json()["symbols"]]
        except (ValueError, KeyError, TypeError):
            raise ServerError("the Aperiodic API answered a symbol list this client does not understand") from None
        return symbols

    def list_files(self, query: Query, start: date, end: date) -> list[dict[str, Any]]:
        """The API's file list for ``[start, end]`` as answered: dicts with year, month,
        maybe day, and a presigned url (not yet checked against what was asked)."""
        key = self._require_key()
        params = {
            "timestamp": query.timestamp,
            "interval": query.interval,
            "exchange": query.exchange,
            "symbol": query.symbol,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
        }
        url = f"{self.base_url}/{self.data_path}/{query.metric}"
        try:
            for attempt in self._retrying():
                with attempt:
                    response = self._get_api(url, params, key)
        except Transient as exc:
            raise ServerError(
                f"the Aperiodic API did not answer after {self.max_attempts} attempts ({exc.reason}); try again later"
            ) from None
        self._raise_for_api_status(response, query)
        try:
            files = response.json()["files"]
            out = []
            for f in files:
                entry = {"year": int(f["year"]), "month": int(f["month"]), "url": str(f["url"])}
                if f.get("day") is not None:
                    entry["day"] = int(f["day"])
                out.append(entry)
        except (ValueError, KeyError, TypeError):
            raise ServerError("the Aperiodic API answered a file list this client does not understand") from None
        log.debug("listing %s..%s: %d files", start, end, len(out))
        return out

    def _get_api(self, url: str, params: dict[str, str] | None, key: Secret) -> httpx.Response:
        """An API request with the key, following redirects only within the configured
        API's origin: another origin never receives ``X-API-KEY``."""
        target = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._get(target, params=params, headers={"X-API-KEY": key.reveal()})
            if not response.is_redirect:
                return response
            target = response.url.join(response.headers["Location"])
            params = None  # the Location carries its own query
            if not same_origin(target, self._origin):
                where = f"{target.scheme}://{target.host}" + (f":{target.port}" if target.port else "")
                raise ServerError(
                    f"the Aperiodic API redirected to another address ({where}); the key was not sent there. "
                    "If that is the API you mean, set base_url (or APERIODIC_API_URL) to it",
                    response.status_code,
                )
        raise ServerError(f"the Aperiodic API redirected more than {MAX_REDIRECTS} times", response.status_code)

    def _listing(self, query: Query, start: date, end: date, wanted: set[Month]) -> list[dict[str, Any]]:
        """The listing checked against what was asked: files of months or days not asked
        (or not days at all) are ignored; a file listed twice refuses the listing."""
        seen: dict[tuple[int, int, int], dict[str, Any]] = {}
        ignored = 0
        for f in self.list_files(query, start, end):
            if Month(f["year"], f["month"]) not in wanted or not 1 <= f["month"] <= 12:
                ignored += 1
                continue
            if "day" in f:
                try:
                    day = date(f["year"], f["month"], f["day"])
                except ValueError:
                    ignored += 1
                    continue
                if not start <= day <= end:
                    ignored += 1
                    continue
            if _fkey(f) in seen:
                # Two files for one month (or day) may differ; keeping either could cache
                # the wrong one for good. A listing that contradicts itself is refused.
                raise ServerError(
                    f"the Aperiodic API listed the file for {_label(f)} twice; "
                    "a listing that contradicts itself is refused (nothing was downloaded); try again later"
                )
            seen[_fkey(f)] = f
        if ignored:
            log.info("ignored %d listed files for months or days that were not asked", ignored)
        return list(seen.values())

    def _fetch_body(self, url: str, label: str, guard: Guard, sink: BodySink | None = None) -> bytearray:
        """A file's bytes, read straight into one buffer of the announced size (httpx's
        ``.content`` would hold the chunks and their join at once: twice the file), and
        into ``sink`` as they arrive."""
        guard.check()
        try:
            with transport_errors(), self._http.stream("GET", url, follow_redirects=True) as response:
                if response.status_code == 403:
                    raise Expired()
                raise_if_retryable(response)
                if response.status_code != 200:
                    raise DownloadError(
                        f"file for {label}: the file host answered HTTP {response.status_code}", response.status_code
                    )
                length = response.headers.get("Content-Length")
                sized = length is not None and "Content-Encoding" not in response.headers
                buf = bytearray(int(length)) if sized else bytearray()
                guard.receiving(len(buf) if sized else None)
                if sink is not None:
                    sink.restart()
                n = sent = 0
                for chunk in response.iter_bytes():
                    buf[n : n + len(chunk)] = chunk  # in place while it fits, appended past the end
                    n += len(chunk)
                    if sink is not None and n - sent >= SINK_STEP:
                        sent = _pass_on(buf, sent, n, sink)
                    guard.got(len(chunk))
                    guard.check()
                if sized and n != len(buf):
                    raise Transient(f"a body of {n} bytes where {len(buf)} were announced")
                if sink is not None and n > sent:
                    _pass_on(buf, sent, n, sink)
                return buf
        finally:
            guard.idle()

    def _get(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        with transport_errors():
            response = self._http.get(url, **kwargs)
        raise_if_retryable(response)
        return response

    def _raise_for_api_status(self, response: httpx.Response, query: Query) -> None:
        code = response.status_code
        if code == 200:
            return
        text = self._server_message(response)
        what = f"{query.symbol} on {query.exchange}"
        if code == 400:
            raise QueryError(f"the API rejected the query: {text}")
        if code == 401:
            raise AuthError(f"the API key was refused (401): {KEY_HELP}", 401)
        if code == 403:
            # Sub-minute bars are the usual reason: name the plan requirement, not just "403".
            need = f"{query.interval} bars need a higher Aperiodic plan; " if query.interval in SUB_MINUTE else ""
            raise PlanError(f"{need}your plan does not cover this request (403){': ' + text if text else ''}", 403)
        if code == 404:
            raise NoDataError(f"no {query.metric} data for {what}, {query.interval}, {query.start}..{query.end} (404)", 404)
        raise ServerError(f"the Aperiodic API failed with HTTP {code}{': ' + text if text else ''}", code)

    def _server_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
            text = str(body.get("error", ""))
            details = body.get("details") or []
            if details:
                text += " (" + "; ".join(map(str, details)) + ")"
        except (ValueError, AttributeError):
            text = ""
        text = redact(" ".join(text.split()))[:300]
        if self._key:
            text = text.replace(self._key.reveal(), "***")
        return text

    # -- the files ---------------------------------------------------------------------

    def _download(
        self, f: dict[str, Any], run: _Run, sink: BodySink | None = None, place: PlaceFile | None = None
    ) -> tuple[pa.Table, bytearray]:
        """A file's table and bytes. Holds one of ``run``'s decoding permits when it
        returns: whoever hands the month over gives it back. ``place``: see
        :func:`_decode_checked` (the table is then the file's schema, without rows)."""
        label = _label(f)
        guard = Guard(run.cancelled, self.file_deadline, self.min_rate, self.rate_window)
        try:
            with guarded(guard):
                for attempt in self._retrying():
                    with attempt:
                        raw = self._fetch_body(f["url"], label, guard, sink)
                        while not run.decoding.acquire(timeout=POLL):
                            guard.check()  # a cancel or the file's budget ends the wait
                        try:
                            return (_decode_checked(raw, f) if place is None else _decode_checked(raw, f, place)), raw
                        except BaseException:
                            run.decoding.release()
                            raise
        except Stalled as exc:
            raise DownloadError(f"file for {label} stalled: {exc}") from None
        except Slow as exc:
            raise DownloadError(f"file for {label} stalled: {exc.reason} ({self.max_attempts} attempts)") from None
        except Transient as exc:
            raise DownloadError(
                f"file for {label} could not be downloaded intact after {self.max_attempts} attempts: {exc.reason}"
            ) from None
        raise AssertionError("unreachable")

    def fetch_months(
        self,
        query: Query,
        months: Sequence[Month],
        on_month: OnMonth,
        *,
        cancel: threading.Event | None = None,
        spool: SpoolFor | None = None,
        place: PlaceFile | None = None,
    ) -> None:
        """See :meth:`.base.Source.fetch_months`. ``cancel``: an event that cancels this
        call only when set (as :meth:`cancel` does for every call). ``spool``: gives a
        month that comes as one file a :class:`BodySink` its body is written to as it
        arrives (the same sink for every attempt and renewal). ``place``: a month that
        comes as one large file is decoded once, straight into the caller's frame, once
        its ``time`` column passed the span check; its table handed over is then that
        column only, without rows (its bars were checked here)."""
        if not months:
            return
        run = _Run(cancel)
        with self._runs_lock:
            self._runs.add(run)
        try:
            with guarded(Guard(run.cancelled)):
                self._fetch(query, months, on_month, run, spool, place)
        except Cancelled:
            raise FetchCancelled("the fetch was cancelled; months finished before it are kept") from None
        finally:
            with self._runs_lock:
                self._runs.discard(run)

    def _fetch(
        self,
        query: Query,
        months: Sequence[Month],
        on_month: OnMonth,
        run: _Run,
        spool: SpoolFor | None,
        place: PlaceFile | None = None,
    ) -> None:
        wanted = set(months)
        start = min(months).first_day
        end = min(max(months).last_day, utc_today())
        listing = self._listing(query, start, end, wanted)
        by_month: dict[Month, list[dict[str, Any]]] = defaultdict(list)
        for f in listing:
            by_month[Month(f["year"], f["month"])].append(f)
        for month in sorted(wanted - set(by_month)):
            # The API lists no file: an empty month, marked so that the core does not
            # take "not listed" for "proven empty" and keep it for good.
            on_month(month, unlisted_month(), None)

        results: dict[tuple[int, int, int], tuple[pa.Table, bytearray]] = {}
        remaining = {m: len(fs) for m, fs in by_month.items()}
        # Only a month that is one file is written as it arrives; daily files are
        # stitched into a month first.
        sinks = {m: spool(m) for m, fs in by_month.items() if len(fs) == 1} if spool is not None else {}
        places = {m: place for m, fs in by_month.items() if len(fs) == 1} if place is not None else {}
        pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="aperiodic-download")
        clean = False
        try:
            pending = listing
            idle_rounds = 0  # renewal rounds in a row that finished no file
            while pending:
                expired, finished = self._round(pool, pending, run, by_month, remaining, results, on_month, sinks, places)
                if not expired:
                    break
                idle_rounds = 0 if finished else idle_rounds + 1
                if idle_rounds > self.max_refreshes:
                    raise DownloadError(
                        f"presigned URLs kept expiring (403 from the file host) for {', '.join(sorted({_label(f) for f in expired}))}; "
                        f"renewed them {self.max_refreshes} times in a row without finishing a file"
                    )
                log.info("presigned URLs expired for %d files; asking the API for fresh ones", len(expired))
                fresh = {_fkey(f): f for f in self._listing(query, start, end, wanted)}
                missing = [f for f in expired if _fkey(f) not in fresh]
                if missing:
                    raise DownloadError(f"the API no longer lists the file for {_label(missing[0])}")
                pending = [fresh[_fkey(f)] for f in expired]
            clean = True
        finally:
            if not clean:
                run.flag.set()  # running downloads stop at their next look; no retry goes out
            # Never wait for downloads on the way out of an error, a cancel or Ctrl-C.
            pool.shutdown(wait=clean, cancel_futures=not clean)

    def _round(
        self,
        pool: ThreadPoolExecutor,
        pending: list[dict[str, Any]],
        run: _Run,
        by_month: dict[Month, list[dict[str, Any]]],
        remaining: dict[Month, int],
        results: dict[tuple[int, int, int], tuple[pa.Table, bytearray]],
        on_month: OnMonth,
        sinks: dict[Month, BodySink | None],
        places: dict[Month, PlaceFile] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Download ``pending``, handing each month over as it completes; the files whose
        URL expired and how many files finished."""
        expired: list[dict[str, Any]] = []
        finished = 0
        failure: SourceError | None = None
        futures: dict[Future[tuple[pa.Table, bytearray]], dict[str, Any]] = {
            pool.submit(
                self._download, f, run, sinks.get(Month(f["year"], f["month"])), (places or {}).get(Month(f["year"], f["month"]))
            ): f
            for f in pending
        }
        waiting = set(futures)
        while waiting:
            done, waiting = wait(waiting, timeout=POLL, return_when=FIRST_COMPLETED)
            if run.cancelled():
                raise Cancelled()
            for fut in done:
                f = futures.pop(fut)  # a finished future holds its month: let both go once handed over
                try:
                    results[_fkey(f)] = fut.result()
                except Expired:
                    expired.append(f)
                    continue
                except SourceError as exc:
                    # Let the other downloads finish and be cached; fail after.
                    failure = failure or exc
                    continue
                finished += 1
                month = Month(f["year"], f["month"])
                remaining[month] -= 1
                try:
                    if remaining[month] == 0:
                        try:
                            table, raw = _combine(by_month[month], results)
                        except ServerError as exc:
                            failure = failure or exc
                        else:
                            on_month(month, table, raw)
                            del table, raw
                        for part in by_month[month]:  # the month is handed over: let its bytes go
                            results.pop(_fkey(part), None)
                finally:
                    run.decoding.release()  # handed over, or waiting for its other days: the next file may decode
            del done  # (while the next wait blocks)
        if failure is not None:
            raise failure
        return expired, finished


def _fkey(f: dict[str, Any]) -> tuple[int, int, int]:
    return (f["year"], f["month"], f.get("day", 0))


def _label(f: dict[str, Any]) -> str:
    return f"{f['year']:04d}-{f['month']:02d}" + (f"-{f['day']:02d}" if "day" in f else "")


_EPOCH = datetime(1970, 1, 1)


def _decode_checked(raw: bytearray, f: dict[str, Any], place: PlaceFile | None = None) -> pa.Table:
    """A downloaded file decoded whole (by Arrow's threads, which keep their memory
    for the next decode) and its bars checked against the month or day it was listed
    for.

    With ``place`` (a month that is one file of at least :data:`~..parquet.SMALL_FILE`
    bytes), only ``time`` is decoded for the check; the file is then decoded once,
    straight into the caller's frame, a few columns at a time (which proves every
    column decodes), and the file's schema is returned as a table without rows. When the caller does not take
    the month (columns its frame does not copy), the file is decoded whole as without
    ``place``."""
    if place is not None and len(raw) >= SMALL_FILE:
        try:
            reader = pq.ParquetFile(pa.BufferReader(raw))
            times = reader.read(columns=[TIME], use_threads=False) if TIME in reader.schema_arrow.names else None
        except (pa.ArrowException, OSError, ValueError):
            raise Transient("a file that is not valid Parquet (truncated or corrupt)") from None
        if times is not None:
            _check_bars(times, f)
            checked = times.schema.empty_table()
            del times  # let go in this thread, whose share of Arrow's pool place() gives back
            try:
                if place(Month(f["year"], f["month"]), raw):
                    return checked
            except (pa.ArrowException, OSError, ValueError):
                raise Transient("a file that is not valid Parquet (truncated or corrupt)") from None
    try:
        table = read_parquet_bytes(raw)
    except (pa.ArrowException, OSError, ValueError):
        raise Transient("a file that is not valid Parquet (truncated or corrupt)") from None
    _check_bars(table, f)
    return table


def _check_bars(table: pa.Table, f: dict[str, Any]) -> None:
    """Every bar of a file lies inside the month (or day) it was listed for; a file
    that holds another period's bars (two months' URLs swapped) is refused, not cached."""
    bounds = time_bounds(table)
    if bounds is None:
        return
    lo, hi = (_EPOCH + timedelta(microseconds=ns // 1000) for ns in bounds)
    first = datetime(f["year"], f["month"], f.get("day", 1))
    after = (
        first + timedelta(days=1)
        if "day" in f
        else datetime.combine(Month(f["year"], f["month"]).next().first_day, datetime.min.time())
    )
    if lo < first or hi >= after:
        label = _label(f)
        raise ServerError(
            f"the file listed for {label} holds bars from {lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d %H:%M} UTC, "
            f"outside {label}: the API's listing points to the wrong file; nothing was kept for {label}"
        )


def _combine(
    files: list[dict[str, Any]], results: dict[tuple[int, int, int], tuple[pa.Table, bytearray]]
) -> tuple[pa.Table, bytearray | None]:
    """One month's table: the monthly file as is (raw bytes kept for the disk cache),
    or its daily files concatenated in day order (files that overlap are refused)."""
    if len(files) == 1:
        return results[_fkey(files[0])]
    ordered = sorted(files, key=_fkey)
    tables = [results[_fkey(f)][0] for f in ordered]
    try:
        first = tables[0].schema
        tables = [t.select(first.names).cast(first.remove_metadata()) for t in tables]
        table = pa.concat_tables(tables)
    except (pa.ArrowInvalid, KeyError, ValueError) as exc:
        raise SchemaError(f"daily files of {_label(ordered[0])[:7]} disagree on their columns: {exc}") from None
    # In day order, each file's bars must start after the previous file's end (the
    # cutover month's monthly file, then its days): overlapping files would give bars twice.
    end = None
    for f, t in zip(ordered, tables, strict=True):
        if TIME not in t.column_names or t.num_rows == 0:
            continue
        bounds = pc.min_max(t.column(TIME))
        if end is not None and bounds["min"].as_py() <= end:
            raise ServerError(
                f"the files listed for {_label(ordered[0])[:7]} overlap at {_label(f)} (bars twice); nothing was kept for that month"
            )
        end = bounds["max"].as_py()
    return table, None
