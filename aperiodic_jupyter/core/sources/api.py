"""The Aperiodic HTTP API as a source (``GET {base}/data/{metric}`` → presigned files).

Threads, not an event loop: one shared synchronous ``httpx.Client`` and a bounded thread
pool, so a call works the same from a script, from inside Jupyter's running event loop
(no ``nest_asyncio`` patching) and from a widget's worker thread.

Contract handling (``docs/api.md``):

- 429 / 502 / 503 / 504, time-outs and dropped connections are retried with bounded
  exponential backoff (tenacity) that honours ``Retry-After`` up to ``max_retry_wait``.
- A 403 from the file host means the presigned URL expired: ask the API for fresh URLs
  (up to ``max_refreshes`` times), never retry the dead URL.
- A body that is cut short or is not valid Parquet is retried, never cached.
- The key goes only into the ``X-API-KEY`` header of API requests; presigned URLs never
  appear in messages or logs (httpx's own request log is redacted).
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
import tenacity

from ... import __version__
from ..errors import AuthError, DownloadError, NoDataError, PlanError, QueryError, SchemaError, ServerError
from ..parquet import read_parquet_bytes
from ..query import Query
from ..ranges import Month, utc_today
from ..settings import Secret, resolve_api_key, resolve_base_url, settings
from .base import OnMonth, empty_month

log = logging.getLogger("aperiodic_jupyter")

RETRYABLE = frozenset({429, 502, 503, 504})
KEY_HELP = "set APERIODIC_API_KEY, run %config Aperiodic.api_key = '...', or pass api_key=...; source='demo' needs no key"


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Expired(Exception):
    pass


class _Wait:
    """Exponential backoff with jitter, or the server's ``Retry-After``, both capped."""

    def __init__(self, backoff: float, cap: float) -> None:
        self.backoff, self.cap = backoff, cap

    def __call__(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap)
        return min(self.cap, self.backoff * 2 ** (state.attempt_number - 1)) * random.uniform(0.5, 1.0)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


@contextmanager
def _transport_errors() -> Iterator[None]:
    """Time-outs and dropped connections are transient; say so without the URL."""
    try:
        yield
    except httpx.TimeoutException:
        raise _Transient("time-out") from None
    except httpx.TransportError as exc:
        raise _Transient(f"connection error: {type(exc).__name__}") from None


def _raise_if_retryable(response: httpx.Response) -> None:
    if response.status_code in RETRYABLE:
        raise _Transient(f"HTTP {response.status_code}", _retry_after(response))


_URL_QUERY = re.compile(r"(https?://[^\s\"'?]+)\?[^\s\"']*")


def redact(text: str) -> str:
    """Strip query strings (presigned signatures) from every URL in ``text``."""
    return _URL_QUERY.sub(r"\1?<redacted>", text)


class _RedactUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


logging.getLogger("httpx").addFilter(_RedactUrls())


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
        max_refreshes: how many times expired presigned URLs are renewed in one call.
    """

    name = "api"
    simulated = False

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
    ) -> None:
        self._key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(base_url)
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise QueryError(f"invalid API base URL {self.base_url!r}; expected http(s)://host/api/v1")
        self.cache_namespace = "api" if parts.netloc == "aperiodic.io" else "api-" + re.sub(r"[^\w.-]", "_", parts.netloc)
        self.max_concurrency = max(1, int(settings.max_concurrency if max_concurrency is None else max_concurrency))
        self.max_attempts = max(1, int(max_attempts))
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        self.max_refreshes = max_refreshes
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=self.max_concurrency + 2, max_keepalive_connections=self.max_concurrency + 2),
            headers={"User-Agent": f"aperiodic-jupyter/{__version__}"},
            follow_redirects=True,
        )

    def __repr__(self) -> str:
        return f"ApiSource(base_url={self.base_url!r}, api_key={'<set>' if self._key else '<unset>'})"

    def close(self) -> None:
        self._http.close()

    # -- the listing -----------------------------------------------------------------

    def _retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=_Wait(self.backoff, self.max_retry_wait),
            retry=tenacity.retry_if_exception_type(_Transient),
            before_sleep=self._log_retry,
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

    def list_files(self, query: Query, start: date, end: date) -> list[dict[str, Any]]:
        """The API's file list for ``[start, end]``: dicts with year, month, maybe day,
        and a presigned url."""
        key = self._require_key()
        params = {
            "timestamp": query.timestamp,
            "interval": query.interval,
            "exchange": query.exchange,
            "symbol": query.symbol,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
        }
        url = f"{self.base_url}/data/{query.metric}"
        try:
            for attempt in self._retrying():
                with attempt:
                    response = self._get(url, params=params, headers={"X-API-KEY": key.reveal()})
        except _Transient as exc:
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

    def _fetch_body(self, url: str, label: str) -> bytearray:
        """A file's bytes, read straight into one buffer of the announced size (httpx's
        ``.content`` would hold the chunks and their join at once: twice the file)."""
        with _transport_errors(), self._http.stream("GET", url) as response:
            if response.status_code == 403:
                raise _Expired()
            _raise_if_retryable(response)
            if response.status_code != 200:
                raise DownloadError(f"file for {label}: the file host answered HTTP {response.status_code}", response.status_code)
            length = response.headers.get("Content-Length")
            sized = length is not None and "Content-Encoding" not in response.headers
            buf = bytearray(int(length)) if sized else bytearray()
            n = 0
            for chunk in response.iter_bytes():
                buf[n : n + len(chunk)] = chunk  # in place while it fits, appended past the end
                n += len(chunk)
            if sized and n != len(buf):
                raise _Transient(f"a body of {n} bytes where {len(buf)} were announced")
            return buf

    def _get(self, url: str, **kwargs: Any) -> httpx.Response:
        with _transport_errors():
            response = self._http.get(url, **kwargs)
        _raise_if_retryable(response)
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
            raise PlanError(f"your plan does not cover this request (403){': ' + text if text else ''}", 403)
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

    def _download(self, url: str, label: str) -> tuple[pa.Table, bytearray]:
        try:
            for attempt in self._retrying():
                with attempt:
                    raw = self._fetch_body(url, label)
                    try:
                        table = read_parquet_bytes(raw)
                    except (pa.ArrowException, OSError, ValueError):
                        raise _Transient("a file that is not valid Parquet (truncated or corrupt)") from None
                    return table, raw
        except _Transient as exc:
            raise DownloadError(
                f"file for {label} could not be downloaded intact after {self.max_attempts} attempts: {exc.reason}"
            ) from None
        raise AssertionError("unreachable")

    def fetch_months(self, query: Query, months: Sequence[Month], on_month: OnMonth) -> None:
        if not months:
            return
        wanted = set(months)
        start = min(months).first_day
        end = min(max(months).last_day, utc_today())
        listing = [f for f in self.list_files(query, start, end) if Month(f["year"], f["month"]) in wanted]
        by_month: dict[Month, list[dict[str, Any]]] = defaultdict(list)
        for f in listing:
            by_month[Month(f["year"], f["month"])].append(f)
        for month in sorted(wanted - set(by_month)):
            on_month(month, empty_month(), None)  # the API lists no file: an empty month

        results: dict[tuple[int, int, int], tuple[pa.Table, bytearray]] = {}
        remaining = {m: len(fs) for m, fs in by_month.items()}
        pending = listing
        refreshes = 0
        failure: DownloadError | None = None
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="aperiodic-download") as pool:
            while pending:
                expired: list[dict[str, Any]] = []
                futures = {pool.submit(self._download, f["url"], _label(f)): f for f in pending}
                try:
                    for fut in as_completed(futures):
                        f = futures[fut]
                        try:
                            results[_fkey(f)] = fut.result()
                        except _Expired:
                            expired.append(f)
                            continue
                        except DownloadError as exc:
                            # Let the other downloads finish and be cached; fail after.
                            failure = failure or exc
                            continue
                        month = Month(f["year"], f["month"])
                        remaining[month] -= 1
                        if remaining[month] == 0:
                            on_month(month, *_combine(by_month[month], results))
                            for done in by_month[month]:  # the month is cached now: let its bytes go
                                results.pop(_fkey(done), None)
                except BaseException:
                    for other in futures:
                        other.cancel()
                    raise
                if failure is not None:
                    raise failure
                if not expired:
                    break
                refreshes += 1
                if refreshes > self.max_refreshes:
                    raise DownloadError(
                        f"presigned URLs kept expiring (403 from the file host) for {', '.join(sorted({_label(f) for f in expired}))}; "
                        f"renewed them {self.max_refreshes} times"
                    )
                log.info("presigned URLs expired for %d files; asking the API for fresh ones", len(expired))
                fresh = {_fkey(f): f for f in self.list_files(query, start, end)}
                missing = [f for f in expired if _fkey(f) not in fresh]
                if missing:
                    raise DownloadError(f"the API no longer lists the file for {_label(missing[0])}")
                pending = [fresh[_fkey(f)] for f in expired]


def _fkey(f: dict[str, Any]) -> tuple[int, int, int]:
    return (f["year"], f["month"], f.get("day", 0))


def _label(f: dict[str, Any]) -> str:
    return f"{f['year']:04d}-{f['month']:02d}" + (f"-{f['day']:02d}" if "day" in f else "")


def _combine(
    files: list[dict[str, Any]], results: dict[tuple[int, int, int], tuple[pa.Table, bytearray]]
) -> tuple[pa.Table, bytearray | None]:
    """One month's table: the monthly file as is (raw bytes kept for the disk cache),
    or its daily files concatenated in day order."""
    if len(files) == 1:
        return results[_fkey(files[0])]
    ordered = sorted(files, key=_fkey)
    tables = [results[_fkey(f)][0] for f in ordered]
    try:
        first = tables[0].schema
        return pa.concat_tables([t.select(first.names).cast(first.remove_metadata()) for t in tables]), None
    except (pa.ArrowInvalid, KeyError, ValueError) as exc:
        raise SchemaError(f"daily files of {_label(ordered[0])[:7]} disagree on their columns: {exc}") from None
