"""A loopback stand-in for the Aperiodic API, following ``shared/api/flow.md``.

A real HTTP server (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive) on 127.0.0.1:

- ``GET /api/v1/data/{metric}`` checks ``X-API-KEY`` and the parameters, and answers
  ``{"files": [...]}`` with one presigned-style URL per month (or per day from
  ``daily_from`` on), in shuffled order. ``ohlcv`` files are price bars
  (``shared/api/price-preview-stream.md``) with the same bar starts as the flow files of
  the same query, so the two join on ``time``; every other metric gets flow files;
- ``GET /files/{token}?X-Amz-Expires=...&X-Amz-Signature=...`` serves the Parquet file
  until the token expires (``url_ttl`` seconds), then answers 403 like S3.

Faults are injected per request with :meth:`FakeApi.inject`: a status (401, 403, 404,
429 with ``Retry-After``, 500, 503...) with extra headers or a redirect ``location``, a
delay, a truncated body, corrupt bytes, a body that stalls after its first half, a body
trickled ``N`` bytes every ``S`` seconds, or a lying listing (``listing="empty"``,
``"duplicate"``, ``"duplicate_day"``, ``"overlap"``, ``"swap"``, ``"extra"``). A fault's ``match``
is tested against a file's label (``2024-01``, ``2024-03-12``) or a listing's label,
``{metric}?{query}`` (``ohlcv?timestamp=exchange&interval=1h&...``), so a fault can hit
the price listing only (``match="ohlcv"``). Every request is counted, so tests can
assert "zero requests" on a warm call.

:func:`with_gaps` drops every Nth bar of a month from one metric's files (a bar with no
trades may be missing from either file).
"""

from __future__ import annotations

import calendar
import io
import json
import random
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aperiodic_jupyter.core.schema import FLOW_FILE_SCHEMA

API_KEY = "test-key-5f2c9a17d3"
EXCHANGES = {"binance-futures", "okx-perps", "hyperliquid-perps"}
INTERVAL_SECONDS = {
    "15s": 15,
    "30s": 30,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
}

DataFn = Callable[[str, str, str, str, str, int, int, int | None], pa.Table | None]


def _bars(interval: str, year: int, month: int, day: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Bar numbers within the month and bar starts (naive UTC) of a monthly or daily file."""
    step = INTERVAL_SECONDS[interval]
    first = datetime(year, month, day or 1)
    days = 1 if day else calendar.monthrange(year, month)[1]
    n = days * 86400 // step
    offset_bars = (first - datetime(year, month, 1)) // timedelta(seconds=step)
    idx = np.arange(offset_bars, offset_bars + n)
    times = np.datetime64(first, "us") + np.arange(n) * np.timedelta64(step, "s")
    return idx, times


def synthetic_table(
    metric: str, exchange: str, symbol: str, interval: str, timestamp: str, year: int, month: int, day: int | None = None
) -> pa.Table | None:
    """Deterministic, easy-to-check data: bar ``i`` of the month has
    ``taker_buy_count == i`` and ``taker_buy_volume == i + offset`` where the offset is
    0.0 for exchange time and 0.5 for arrival time. ``ohlcv`` files are price bars of
    the same bar starts (see :func:`synthetic_ohlcv`); every other metric gets flow
    files. Symbols containing ``NODATA`` have none; ``2019`` months are empty."""
    if "NODATA" in symbol or year == 2019:
        return None
    if metric == "ohlcv":
        return synthetic_ohlcv(interval, timestamp, year, month, day)
    idx, times = _bars(interval, year, month, day)
    cols: dict[str, pa.Array] = {"time": pa.array(times, type=pa.timestamp("us"))}
    offset = 0.5 if timestamp == "true" else 0.0
    for field in list(FLOW_FILE_SCHEMA)[1:]:
        if field.name == "taker_buy_volume":
            values = idx + offset
        elif field.name == "taker_buy_count":
            values = idx
        else:
            values = (idx % 7) + 1
        cols[field.name] = pa.array(np.asarray(values).astype(field.type.to_pandas_dtype()))
    return pa.table(cols, schema=FLOW_FILE_SCHEMA)


#: The columns of a synthetic ``ohlcv`` file: the five the contract names, plus one it
#: does not (``quote_volume``), which a client must pass through.
OHLCV_COLUMNS = ("time", "open", "high", "low", "close", "volume", "quote_volume")


def synthetic_ohlcv(interval: str, timestamp: str, year: int, month: int, day: int | None = None) -> pa.Table:
    """Price bars with the flow files' bar starts: bar ``i`` of the month opens at
    ``1000 + i + offset`` (offset as in :func:`synthetic_table`) and closes
    ``(i % 5) - 2`` away from it (down, flat or up); ``high`` is 1.5 above the larger of
    open and close, ``low`` 1.25 below the smaller; ``volume`` is the flow's buy plus
    sell volume of the bar and ``quote_volume`` is ``volume * close``."""
    idx, times = _bars(interval, year, month, day)
    offset = 0.5 if timestamp == "true" else 0.0
    open_ = 1000.0 + idx + offset
    close = open_ + (idx % 5) - 2
    volume = (idx + offset) + ((idx % 7) + 1)
    cols = {
        "time": pa.array(times, type=pa.timestamp("us")),
        "open": pa.array(open_, type=pa.float64()),
        "high": pa.array(np.maximum(open_, close) + 1.5, type=pa.float64()),
        "low": pa.array(np.minimum(open_, close) - 1.25, type=pa.float64()),
        "close": pa.array(close, type=pa.float64()),
        "volume": pa.array(volume, type=pa.float64()),
        "quote_volume": pa.array(volume * close, type=pa.float64()),
    }
    return pa.table(cols)


def with_gaps(*, ohlcv: int = 50, flow: int = 0, data: DataFn = synthetic_table) -> DataFn:
    """``data`` with bars missing: every ``ohlcv``-th bar of each month (bar numbers
    ``ohlcv - 1``, ``2 * ohlcv - 1``...) is left out of the ``ohlcv`` files, and every
    ``flow``-th out of the flow files; 0 leaves that metric whole. The same bars are
    missing from monthly and daily files."""

    def gappy(metric, exchange, symbol, interval, timestamp, year, month, day=None):
        table = data(metric, exchange, symbol, interval, timestamp, year, month, day)
        every = ohlcv if metric == "ohlcv" else flow
        if table is None or not every:
            return table
        start = np.datetime64(datetime(year, month, 1), "us")
        step = np.timedelta64(INTERVAL_SECONDS[interval], "s")
        bar = (table.column("time").to_numpy() - start) // step
        return table.filter(pa.array(bar % every != every - 1))

    return gappy


@dataclass
class Fault:
    route: str  # "list" or "file"
    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    truncate: bool = False
    corrupt: bool = False
    body: dict | None = None
    match: str | None = None  # only files (2024-01, 2026-08-12) or listings (ohlcv?...) whose label contains this
    times: int = 1
    headers: dict | None = None  # extra response headers of a status fault
    location: str | None = None  # a status fault's Location; "{path}" is the request's path and query
    stall: float = 0.0  # files: send the headers and half the body, then go silent this long
    trickle: tuple[int, float] | None = None  # files: send N bytes every S seconds
    # lists: "empty" answers {"files": []}; "duplicate" lists the first monthly file twice
    # (two URLs); "duplicate_day" the first daily file twice; "overlap" adds a daily file for
    # the 1st of the first daily month (its monthly file has it); "swap" swaps the URLs of the
    # first two monthly files; "extra" adds a file for the month after the range and one
    # for day 32 of the first month.
    listing: str | None = None


PREVIEW_KEY = "DEMO-KEY"
PREVIEW_MONTH = (2025, 6)
PREVIEW_WHITELIST = {
    "binance-futures": {"perpetual-BTC-USDT:USDT"},
    "okx-perps": {"perpetual-BTC-USDT:USDT"},
    "hyperliquid-perps": {"perpetual-BTC-USDC:USDC"},
}
#: A contract "listed last week": not in the shipped snapshot, served by /metadata/symbols.
NEW_LISTING = "perpetual-NEWCOIN-USDT:USDT"


def snapshot_symbols(exchange: str) -> list[str]:
    from aperiodic_jupyter.core.symbols import _snapshot

    return [i.atlas for i in _snapshot(exchange)]


def _in_preview(whitelist: dict[str, set[str]], params: dict[str, str]) -> bool:
    first, last = f"{PREVIEW_MONTH[0]:04d}-{PREVIEW_MONTH[1]:02d}-01", f"{PREVIEW_MONTH[0]:04d}-{PREVIEW_MONTH[1]:02d}-30"
    inside = first <= params.get("start_date", "") and params.get("end_date", "") <= last
    return inside and params.get("symbol") in whitelist.get(params.get("exchange", ""), set())


class FakeApi:
    """The server. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        data: DataFn = synthetic_table,
        *,
        api_key: str = API_KEY,
        url_ttl: float = 300.0,
        daily_from: date | None = None,
        latency: float = 0.0,
        bandwidth: float | None = None,
        preview: dict[str, set[str]] | None = None,
        symbols: dict[str, list[str]] | None = None,
    ) -> None:
        self.data = data
        self.api_key = api_key
        # The preview's whitelist (exchange -> Atlas symbols), served only in PREVIEW_MONTH
        # and only to PREVIEW_KEY; the real whitelist is the server's business and changes.
        self.preview = preview if preview is not None else dict(PREVIEW_WHITELIST)
        # /metadata/symbols answers: by default the shipped snapshot plus one new listing.
        self.symbols = symbols
        self.url_ttl = url_ttl
        self.daily_from = daily_from
        self.latency = latency
        self.bandwidth = bandwidth  # bytes per second shared by all responses, None = unlimited
        self._link_free = 0.0
        self.counts: Counter[str] = Counter()
        self.log: list[tuple[str, str, int]] = []  # (route, label or query, status)
        self.received_keys: list[str | None] = []
        self._faults: list[Fault] = []
        self._tokens: dict[str, tuple[tuple, float]] = {}
        self._files: dict[tuple, bytes] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.inflight = 0
        self.max_inflight = 0  # most file downloads served at the same moment
        self.stopping = threading.Event()  # ends stalls and trickles when the server stops

    # -- control ---------------------------------------------------------------------

    def inject(self, route: str, **kwargs) -> Fault:
        fault = Fault(route, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take_fault(self, route: str, label: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route == route and fault.times > 0 and (fault.match is None or fault.match in label):
                    fault.times -= 1
                    return fault
        return None

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    def start(self) -> FakeApi:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- data --------------------------------------------------------------------------

    def file_bytes(self, key: tuple) -> bytes | None:
        with self._lock:
            if key in self._files:
                return self._files[key]
        table = self.data(*key)
        if table is not None and key[-1] is None and self.daily_from is not None:
            cut = pa.scalar(datetime.combine(self.daily_from, datetime.min.time()), pa.timestamp("us"))
            table = table.filter(pc.less(table.column("time"), cut))
        raw = None
        if table is not None:
            buf = io.BytesIO()
            pq.write_table(table, buf)
            raw = buf.getvalue()
        with self._lock:
            self._files[key] = raw  # type: ignore[assignment]
        return raw

    def listing(self, params: dict[str, str]) -> list[dict]:
        files = [entry for entry, _ in self.listing_with_keys(params)]
        random.shuffle(files)
        return files

    def entry(self, key: tuple) -> dict:
        """A listing entry with a fresh presigned-style URL for ``key``."""
        token = secrets.token_hex(12)
        with self._lock:
            self._tokens[token] = (key, time.monotonic() + self.url_ttl)
        entry = {"year": key[5], "month": key[6], "url": self._file_url(token, key)}
        if key[-1] is not None:
            entry["day"] = key[-1]
        return entry

    def listing_with_keys(self, params: dict[str, str]) -> list[tuple[dict, tuple]]:
        start = date.fromisoformat(params["start_date"])
        end = date.fromisoformat(params["end_date"])
        base = (params["metric"], params["exchange"], params["symbol"], params["interval"], params["timestamp"])
        files = []
        y, m = start.year, start.month
        while (y, m) <= (end.year, end.month):
            if self.daily_from is not None and date(y, m, calendar.monthrange(y, m)[1]) >= self.daily_from:
                # After the cutover, days come as daily files; the cutover month keeps a
                # monthly file for the days before it.
                first = max(start, date(y, m, 1), self.daily_from)
                last = min(end, date(y, m, calendar.monthrange(y, m)[1]))
                days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
                keys = [base + (y, m, d.day) for d in days]
                if date(y, m, 1) < self.daily_from:
                    keys.insert(0, base + (y, m, None))
            else:
                keys = [base + (y, m, None)]
            for key in keys:
                if self.file_bytes(key) is None:
                    continue
                files.append((self.entry(key), key))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return files

    def lie(self, how: str, params: dict[str, str]) -> list[dict]:
        """A listing that lies in the way ``how`` names (see :class:`Fault`)."""
        pairs = sorted(self.listing_with_keys(params), key=lambda p: (p[1][5], p[1][6], p[1][7] or 0))
        files = [entry for entry, _ in pairs]
        monthly = [(e, k) for e, k in pairs if k[7] is None]
        daily = [(e, k) for e, k in pairs if k[7] is not None]
        if how == "empty":
            return []
        if how == "duplicate":
            files.append(self.entry(monthly[0][1]))
        elif how == "duplicate_day":
            files.append(self.entry(daily[0][1]))
        elif how == "overlap":  # a daily file for the 1st of the cutover month, which its monthly file covers
            files.append(self.entry(daily[0][1][:7] + (1,)))
        elif how == "swap":
            (a, _), (b, _) = monthly[0], monthly[1]
            a["url"], b["url"] = b["url"], a["url"]
        elif how == "extra":
            key = monthly[-1][1]
            y, m = key[5], key[6]
            after = key[:5] + ((y + 1, 1) if m == 12 else (y, m + 1)) + (None,)
            files.append(self.entry(after))
            files.append({"year": key[5], "month": key[6], "day": 32, "url": monthly[0][0]["url"]})
        else:
            raise ValueError(f"unknown listing lie {how!r}")
        random.shuffle(files)
        return files

    def _file_url(self, token: str, key: tuple) -> str:
        host, port = self._server.server_address[:2]  # type: ignore[union-attr]
        sig = secrets.token_hex(16)
        name = f"{key[5]:04d}-{key[6]:02d}" + (f"-{key[7]:02d}" if key[7] else "")
        return f"http://{host}:{port}/files/{token}/{name}.parquet?X-Amz-Expires={int(self.url_ttl)}&X-Amz-Signature={sig}"

    def resolve_token(self, token: str) -> tuple | None:
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or time.monotonic() > entry[1]:
            return None
        return entry[0]


def _label(key: tuple) -> str:
    return f"{key[5]:04d}-{key[6]:02d}" + (f"-{key[7]:02d}" if key[7] else "")


class _Handler(BaseHTTPRequestHandler):
    api: FakeApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self._write(body)

    def _write(self, body: bytes) -> None:
        bw = self.api.bandwidth
        if not bw:
            self.wfile.write(body)
            return
        # One shared link: every response's chunks queue for the same bytes/second.
        chunk = 256 * 1024
        for i in range(0, len(body), chunk):
            piece = body[i : i + chunk]
            with self.api._lock:
                start = max(time.monotonic(), self.api._link_free)
                self.api._link_free = start + len(piece) / bw
            delay = start + len(piece) / bw - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.wfile.write(piece)

    def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _apply_fault(self, fault: Fault | None, route: str, label: str) -> bool:
        """Answer with the fault if it decides the response; True when handled."""
        if fault is None:
            return False
        if fault.delay:
            self.api.stopping.wait(fault.delay)
        if fault.status is not None:
            headers = dict(fault.headers or {})
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            if fault.location is not None:
                headers["Location"] = fault.location.replace("{path}", self.path)
            body = fault.body or {"error": f"injected {fault.status}", "details": []}
            self._record(route, label, fault.status)
            self._json(fault.status, body, headers)
            return True
        return False

    def _record(self, route: str, label: str, status: int) -> None:
        with self.api._lock:
            self.api.counts[route] += 1
            self.api.counts["total"] += 1
            self.api.log.append((route, label, status))

    def do_GET(self) -> None:  # noqa: N802
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):  # the client hung up (a cancel, a deadline)
            self.close_connection = True

    def _get(self) -> None:
        if self.api.latency:
            time.sleep(self.api.latency)
        parts = urlsplit(self.path)
        if parts.path.startswith("/api/v1/data/preview/"):
            self._list(parts.path.rsplit("/", 1)[1], parts.query, preview=True)
        elif parts.path.startswith("/api/v1/data/"):
            self._list(parts.path.rsplit("/", 1)[1], parts.query)
        elif parts.path == "/api/v1/metadata/symbols":
            self._symbols(parts.query)
        elif parts.path.startswith("/files/"):
            self._file(parts.path.split("/")[2])
        else:
            self._record("other", parts.path, 404)
            self._json(404, {"error": "Not Found"})

    def _symbols(self, query: str) -> None:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        key = self.headers.get("X-API-KEY")
        with self.api._lock:
            self.api.received_keys.append(key)
        label = f"symbols?{query}"
        fault = self.api.take_fault("symbols", label)
        if self._apply_fault(fault, "symbols", label):
            return
        if key != self.api.api_key:
            self._record("symbols", label, 401)
            self._json(401, {"error": "Authorization Required"})
            return
        exchange = params.get("exchange", "")
        table = self.api.symbols or {}
        listed = table[exchange] if exchange in table else snapshot_symbols(exchange) + [NEW_LISTING]
        self._record("symbols", label, 200)
        self._json(200, {"symbols": listed, "exchange": exchange, "bucket": "ohlcv"})

    def _list(self, metric: str, query: str, preview: bool = False) -> None:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        label = f"{'preview/' if preview else ''}{metric}?{query}"  # e.g. ohlcv?timestamp=exchange&interval=1h&...
        key = self.headers.get("X-API-KEY")
        with self.api._lock:
            self.api.received_keys.append(key)
        fault = self.api.take_fault("list", label)
        if self._apply_fault(fault, "list", label):
            return
        if key != (PREVIEW_KEY if preview else self.api.api_key):
            self._record("list", label, 401)
            self._json(401, {"error": "Authorization Required"})
            return
        if preview and not _in_preview(self.api.preview, params):
            self._record("list", label, 403)
            self._json(403, {"error": "This request is outside the preview whitelist"})
            return
        problems = _validate(params)
        if problems:
            self._record("list", label, 400)
            self._json(400, {"error": "Invalid parameters", "details": problems})
            return
        params["metric"] = metric
        if fault is not None and fault.listing:
            files = self.api.lie(fault.listing, params)
            self._record("list", label, 200)
            self._json(200, {"files": files})
            return
        files = self.api.listing(params)
        if not files:
            self._record("list", label, 404)
            self._json(404, {"error": "Not Found"})
            return
        self._record("list", label, 200)
        self._json(200, {"files": files})

    def _file(self, token: str) -> None:
        with self.api._lock:
            self.api.inflight += 1
            self.api.max_inflight = max(self.api.max_inflight, self.api.inflight)
        try:
            self._serve_file(token)
        finally:
            with self.api._lock:
                self.api.inflight -= 1

    def _serve_file(self, token: str) -> None:
        fault = self.api.take_fault("file", self._peek_label(token))
        if self._apply_fault(fault, "file", self._peek_label(token)):
            return
        key = self.api.resolve_token(token)
        if key is None:
            self._record("file", self._peek_label(token), 403)
            self._send(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", "application/xml")
            return
        raw = self.api.file_bytes(key)
        label = _label(key)
        if fault is not None and fault.corrupt:
            raw = b"PAR1" + bytes(random.Random(1).randrange(256) for _ in range(len(raw or b"") // 2)) + b"PAR1"
        self._record("file", label, 200)
        if fault is not None and (fault.stall or fault.trickle):
            self._slow_body(raw or b"", fault)
            return
        if fault is not None and fault.truncate:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw[: len(raw) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(200, raw or b"", "application/octet-stream")

    def _slow_body(self, raw: bytes, fault: Fault) -> None:
        """Announce the whole body, then stall after half of it, or trickle it."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.close_connection = True
        try:
            if fault.stall:
                self.wfile.write(raw[: len(raw) // 2])
                self.wfile.flush()
                self.api.stopping.wait(fault.stall)
                return
            assert fault.trickle is not None
            size, every = fault.trickle
            for i in range(0, len(raw), size):
                self.wfile.write(raw[i : i + size])
                self.wfile.flush()
                if i + size < len(raw) and self.api.stopping.wait(every):
                    return
        except OSError:  # the client gave up: that is the point
            return

    def _peek_label(self, token: str) -> str:
        with self.api._lock:
            entry = self.api._tokens.get(token)
        return _label(entry[0]) if entry else "unknown"


def _validate(params: dict[str, str]) -> list[str]:
    problems = []
    for name in ("timestamp", "interval", "exchange", "symbol", "start_date", "end_date"):
        if not params.get(name):
            problems.append(f"missing parameter {name}")
    if problems:
        return problems
    if params["timestamp"] not in ("exchange", "true"):
        problems.append("timestamp must be exchange or true")
    if params["interval"] not in INTERVAL_SECONDS:
        problems.append("invalid interval")
    if params["exchange"] not in EXCHANGES:
        problems.append("invalid exchange")
    try:
        if date.fromisoformat(params["end_date"]) < date.fromisoformat(params["start_date"]):
            problems.append("end_date must be >= start_date")
    except ValueError:
        problems.append("dates must be YYYY-MM-DD")
    return problems
