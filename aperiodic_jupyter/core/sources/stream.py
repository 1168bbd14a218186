"""The Aperiodic live stream: one WebSocket, one subscription, reconnected until it ends.

The protocol, as the public client's ``stream()`` speaks it
(``shared/api/price-preview-stream.md``):

- The key goes in the ``X-API-KEY`` header of the handshake. A handshake refused with
  401, 403 or 426 (or any other 4xx but 429) is final: :class:`StreamRefused`, one line.
  429, 502, 503 and 504 are retried.
- One text frame ``{"op": "subscribe", "id": "s1", "channels": [...]}`` (at most 200
  channels; each ``{"dataset", "exchange", "interval", "symbols"}``), acknowledged by
  ``{"op": "subscribed", "id": "s1", "channels": [granted], "rejected": [...]}``. Data
  frames may come before the acknowledgement; they are kept. Every channel rejected, or
  ``{"op": "error", "id": "s1"}``, is final: :class:`SubscriptionRejected`.
- Data frames ``{"channel", "data": {row}, "snapshot"}`` become :class:`Row` events.
  ``op: error`` without our id is a warning (the stream goes on), ``op: unsubscribed``
  removes channels (all removed is final), heartbeats, pongs and unknown ops are only
  signs of life.
- Close codes 1008 and 4000-4999 are final (:class:`StreamClosed`); any other close, a
  drop without a close frame, or ``idle_timeout`` seconds without any frame (75 s: the
  server sends a heartbeat about every 30 s) is reconnected with jittered exponential
  backoff capped at 30 s, re-sending the same subscription. A session that delivered a
  row or lasted a minute resets the backoff.
- Before the stream has ever been up, an unreachable host is tried
  ``first_attempts`` times, then ends in one line: a typo in the URL must not spin.

The feed yields events (:class:`Connecting`, :class:`Subscribed`, :class:`Row`,
:class:`Dropped`, :class:`Notice`) and knows nothing of bars, history or gaps: that is
:mod:`aperiodic_jupyter.core.live`. The demo's simulated feed yields the same events.

The key is never logged: websockets logs handshake headers at DEBUG level, so its
logger here masks ``X-API-KEY``; no message of this module contains the key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias
from urllib.parse import urlsplit

from ... import __version__
from ..errors import QueryError, StreamClosed, StreamError, StreamRefused, SubscriptionRejected
from ..settings import Secret
from .api import KEY_HELP

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection
    from websockets.exceptions import ConnectionClosed

__all__ = [
    "Channel",
    "Rejection",
    "Subscription",
    "Connecting",
    "Subscribed",
    "Row",
    "Dropped",
    "Notice",
    "Event",
    "Feed",
    "StreamFeed",
    "backoff_delay",
    "MAX_CHANNELS",
    "IDLE_TIMEOUT",
    "BACKOFF",
    "MAX_DELAY",
    "FINAL_CLOSE_CODES",
    "RETRY_STATUSES",
]

log = logging.getLogger("aperiodic_jupyter")

#: Channels one subscribe frame may carry.
MAX_CHANNELS = 200
#: Seconds for the handshake, and then for the acknowledgement.
OPEN_TIMEOUT = 10.0
#: Seconds without any frame (the server sends a heartbeat about every 30 s) after which
#: the connection is presumed dead and reconnected.
IDLE_TIMEOUT = 75.0
#: Seconds before the first reconnect; doubled at each failed attempt.
BACKOFF = 1.0
#: The longest wait between two reconnects, in seconds.
MAX_DELAY = 30.0
#: A session that stayed up this many seconds (or delivered a row) resets the backoff.
HEALTHY_SESSION = 60.0
#: Tries before the stream has ever been up; then the failure is final.
FIRST_CONNECT_ATTEMPTS = 5
#: Seconds the closing handshake may take when we leave (stop): short, so stop is prompt.
CLOSE_TIMEOUT = 2.0
#: Close codes that end the stream; every other close is reconnected.
FINAL_CLOSE_CODES = frozenset({1008, *range(4000, 5000)})
#: Handshake statuses that are retried; every other refusal is an answer, final.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

_CLOSE_HINTS = {
    4001: "the plan no longer includes live data, or the API key was rotated",
    1008: "the control-frame rate limit stayed exhausted",
}


class _HideKey(logging.Filter):
    """websockets logs every handshake header at DEBUG level: mask the key's."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "x-api-key":
            record.args = (args[0], "***")
        return True


_ws_log = logging.getLogger("aperiodic_jupyter.websocket")
_ws_log.addFilter(_HideKey())


# -- what the protocol talks about ---------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """A subscription channel: a dataset of one venue at one interval, narrowed to
    ``symbols`` (Atlas symbols; ``None`` means every symbol the plan allows)."""

    dataset: str
    exchange: str
    interval: str
    symbols: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        """The channel's name on the wire, e.g. ``flow.binance-futures.1m``."""
        return f"{self.dataset}.{self.exchange}.{self.interval}"

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dataset": self.dataset, "exchange": self.exchange, "interval": self.interval}
        if self.symbols is not None:
            out["symbols"] = list(self.symbols)
        return out

    def __str__(self) -> str:
        return self.name + (f" ({', '.join(self.symbols)})" if self.symbols else "")


def channel_name(value: object) -> str:
    """A channel as the server names it in an answer: ``dataset.exchange.interval``,
    whether it came as that string or as an object."""
    if isinstance(value, dict):
        parts = [value.get(k) for k in ("dataset", "exchange", "interval")]
        if all(isinstance(p, str) for p in parts):
            return ".".join(parts)  # type: ignore[arg-type]
        return json.dumps(value, sort_keys=True)
    return str(value)


@dataclass(frozen=True)
class Rejection:
    """A channel the server refused: ``code`` is one of ``not_entitled``, ``not_live``,
    ``unknown_channel``, ``limit_exceeded``, ``invalid_message`` (or another the server
    adds)."""

    channel: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.channel} ({self.code}" + (f": {self.message})" if self.message else ")")


@dataclass(frozen=True)
class Subscription:
    """What streams (``granted`` channel names) and what was refused."""

    granted: tuple[str, ...]
    rejected: tuple[Rejection, ...] = ()


def _rejections(items: object) -> tuple[Rejection, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(
        Rejection(channel_name(i.get("channel", "")), str(i.get("code", "")), str(i.get("message", "") or ""))
        for i in items
        if isinstance(i, dict)
    )


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connecting:
    """A connection is being opened: ``attempt`` 0 is the first, ``n`` the n-th try
    since the stream was last healthy."""

    attempt: int


@dataclass(frozen=True)
class Subscribed:
    """The subscription is acknowledged. ``outage`` is ``(disconnected_at,
    reconnected_at)`` (UTC) when this connection ends an outage."""

    subscription: Subscription
    outage: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class Row:
    """One published row: ``data`` as the server sent it (``symbol``, ``interval``,
    ``time`` in microseconds since the epoch, the dataset's columns)."""

    channel: str
    data: dict[str, Any]
    snapshot: bool = False


@dataclass(frozen=True)
class Dropped:
    """The connection failed or ended for a transient reason; the next attempt
    (``attempt``) follows after ``delay`` seconds."""

    at: datetime
    reason: str
    attempt: int
    delay: float


@dataclass(frozen=True)
class Notice:
    """Something to tell, the stream goes on: an ``op: error`` warning, channels the
    server removed (``subscription`` is then what is left), a frame skipped."""

    text: str
    subscription: Subscription | None = None


Event: TypeAlias = Connecting | Subscribed | Row | Dropped | Notice


class Feed(Protocol):
    """A source of live events: the WebSocket (:class:`StreamFeed`) or the demo's
    simulation (:class:`~aperiodic_jupyter.core.sources.demo.DemoFeed`). ``events``
    ends only by raising a :class:`~aperiodic_jupyter.StreamError` (or by being
    cancelled)."""

    def events(self) -> AsyncGenerator[Event, None]: ...


# -- the WebSocket feed -----------------------------------------------------------------------


class _Retry(Exception):
    """A transient failure: reconnect."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def backoff_delay(attempt: int, base: float = BACKOFF, cap: float = MAX_DELAY) -> float:
    """Seconds before reconnect ``attempt`` (0-based): ``base * 2**attempt`` capped at
    ``cap``, times a random factor in [0.5, 1) so that many clients dropped at once do
    not come back in step."""
    return min(cap, base * 2 ** min(attempt, 30)) * random.uniform(0.5, 1.0)


def _now() -> datetime:
    return datetime.now(UTC)


def where(url: str) -> str:
    """A stream URL as messages may show it: scheme, host and path, no query."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname or ''}{f':{p.port}' if p.port else ''}{p.path}"


def check_stream_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise QueryError(
            f"invalid stream URL {where(url)!r}; expected ws(s)://host/path, e.g. wss://stream.aperiodic.io/v1/stream"
        )
    return url


class StreamFeed:
    """The live stream of the Aperiodic API as events (see the module docstring).

    Args:
        url: the stream endpoint (``wss://...``).
        key: the API key, sent only in the handshake's ``X-API-KEY`` header.
        channels: what to subscribe to, in one subscription (at most 200).
        idle_timeout: seconds without any frame before the connection counts as dead.
        backoff: seconds before the first reconnect (doubling, jittered, capped at
            ``max_delay``).
        open_timeout: seconds for the handshake, and for the acknowledgement.
        first_attempts: tries before the stream was ever up, then the failure is final.
    """

    simulated = False

    def __init__(
        self,
        url: str,
        key: Secret,
        channels: Sequence[Channel],
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        backoff: float = BACKOFF,
        max_delay: float = MAX_DELAY,
        open_timeout: float = OPEN_TIMEOUT,
        first_attempts: int = FIRST_CONNECT_ATTEMPTS,
    ) -> None:
        self.url = check_stream_url(url)
        if not channels:
            raise QueryError("name at least one channel to stream")
        if len(channels) > MAX_CHANNELS:
            raise QueryError(f"at most {MAX_CHANNELS} channels per stream, got {len(channels)}; stream fewer venues or intervals")
        if idle_timeout <= 0 or backoff < 0 or open_timeout <= 0:
            raise QueryError("idle_timeout and open_timeout must be positive and backoff not negative (seconds)")
        self._key = key
        self.channels = tuple(channels)
        self.idle_timeout = float(idle_timeout)
        self.backoff = float(backoff)
        self.max_delay = float(max_delay)
        self.open_timeout = float(open_timeout)
        self.first_attempts = max(1, int(first_attempts))
        #: The server's latest word on the subscription; ``None`` until acknowledged.
        self.subscription: Subscription | None = None

    def __repr__(self) -> str:
        return f"StreamFeed({where(self.url)!r}, channels={[c.name for c in self.channels]})"

    async def events(self) -> AsyncGenerator[Event, None]:
        attempt = 0  # tries since the stream was last healthy
        ever_up = False
        down_since: datetime | None = None
        request = 0
        while True:
            yield Connecting(attempt)
            healthy = False
            reason = ""
            try:
                ws = await self._open()
                async with ws:
                    request += 1
                    early = await self._subscribe(ws, f"s{request}")
                    ever_up = True
                    outage = (down_since, _now()) if down_since is not None else None
                    down_since = None
                    assert self.subscription is not None
                    yield Subscribed(self.subscription, outage)
                    started = time.monotonic()
                    try:
                        for event in early:
                            healthy = healthy or isinstance(event, Row)
                            yield event
                        while True:
                            received = await self._next(ws)
                            if received is not None:
                                healthy = healthy or isinstance(received, Row)
                                yield received
                    finally:
                        healthy = healthy or time.monotonic() - started >= HEALTHY_SESSION
            except _Retry as exc:
                reason = exc.reason
            if healthy:
                attempt = 0
            attempt += 1
            if not ever_up and attempt >= self.first_attempts:
                raise StreamError(f"could not reach the live stream at {where(self.url)} after {attempt} attempts: {reason}")
            down_since = down_since or _now()
            delay = backoff_delay(attempt - 1, self.backoff, self.max_delay)
            log.info("live stream: %s; reconnecting in %.1f s (attempt %d)", reason, delay, attempt)
            yield Dropped(_now(), reason, attempt, delay)
            await asyncio.sleep(delay)

    async def _open(self) -> ClientConnection:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        try:
            return await connect(
                self.url,
                additional_headers={"X-API-KEY": self._key.reveal()},
                user_agent_header=f"aperiodic-jupyter/{__version__}",
                open_timeout=self.open_timeout,
                close_timeout=CLOSE_TIMEOUT,
                logger=_ws_log,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            text = _server_text(exc.response.body)
            if status in RETRY_STATUSES:
                raise _Retry(f"the stream answered {status}" + (f" ({text})" if text else "")) from None
            raise StreamRefused(_refusal(status, text), status) from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            # Connection refused, DNS, TLS, a proxy, a non-WebSocket answer: all may heal.
            raise _Retry(f"could not connect ({type(exc).__name__}: {exc})") from None

    async def _subscribe(self, ws: ClientConnection, request_id: str) -> list[Event]:
        """Send the subscription and wait for its acknowledgement; the events that came
        first (data frames may precede it) are returned, to be yielded after it."""
        await self._send(ws, {"op": "subscribe", "id": request_id, "channels": [c.wire() for c in self.channels]})
        early: list[Event] = []
        deadline = time.monotonic() + self.open_timeout
        while True:
            left = deadline - time.monotonic()
            frame = await self._frame(ws, left, f"no acknowledgement of the subscription within {self.open_timeout:g} s")
            if frame is None:
                early.append(Notice("skipped a frame that is not a JSON object"))
                continue
            if frame.get("id") == request_id and frame.get("op") == "subscribed":
                self.subscription = self._acknowledged(frame)
                return early
            if frame.get("id") == request_id and frame.get("op") == "error":
                raise SubscriptionRejected(
                    f"the live stream refused the subscription ({frame.get('code')}): {frame.get('message')}"
                )
            event = self._handle(frame)
            if event is not None:
                early.append(event)

    def _acknowledged(self, frame: dict[str, Any]) -> Subscription:
        granted = frame.get("channels")
        sub = Subscription(
            tuple(channel_name(c) for c in granted) if isinstance(granted, list) else (), _rejections(frame.get("rejected"))
        )
        if not sub.granted:
            why = "; ".join(map(str, sub.rejected)) or "the acknowledgement lists no channel"
            raise SubscriptionRejected(f"the live stream refused every channel: {why}", sub.rejected)
        return sub

    async def _next(self, ws: ClientConnection) -> Event | None:
        frame = await self._frame(
            ws, self.idle_timeout, f"no frame for {self.idle_timeout:g} s, not even a heartbeat: the connection is presumed dead"
        )
        if frame is None:
            return Notice("skipped a frame that is not a JSON object")
        return self._handle(frame)

    async def _send(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await ws.send(json.dumps(message))
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def _frame(self, ws: ClientConnection, timeout: float, silence: str) -> dict[str, Any] | None:
        """The next frame as a dict (``None`` if it is not one). Silence for ``timeout``
        seconds is a dead connection: it is aborted (no closing handshake to wait for)."""
        from websockets.exceptions import ConnectionClosed

        try:
            raw = await asyncio.wait_for(ws.recv(), max(timeout, 0.0))
        except TimeoutError:
            ws.transport.abort()
            raise _Retry(silence) from None
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        try:
            frame = json.loads(raw)
        except ValueError:
            return None
        return frame if isinstance(frame, dict) else None

    def _handle(self, frame: dict[str, Any]) -> Event | None:
        op = frame.get("op")
        if op is None and "channel" in frame:
            data = frame.get("data")
            if not isinstance(data, dict):
                return Notice(f"skipped a data frame without a row on {channel_name(frame['channel'])}")
            return Row(channel_name(frame["channel"]), data, bool(frame.get("snapshot", False)))
        if op == "error":
            return Notice(f"the live stream reported an error ({frame.get('code')}): {frame.get('message')}; it goes on")
        if op == "unsubscribed":
            return self._unsubscribed(frame)
        return None  # heartbeat, pong, and ops this client does not know: signs of life

    def _unsubscribed(self, frame: dict[str, Any]) -> Notice:
        rejected = _rejections(frame.get("rejected"))
        named = frame.get("channels")
        removed = {channel_name(c) for c in named} if isinstance(named, list) else set()
        removed |= {r.channel for r in rejected}
        before = self.subscription or Subscription(())
        self.subscription = Subscription(tuple(c for c in before.granted if c not in removed), before.rejected + rejected)
        why = "; ".join(map(str, rejected)) or ", ".join(sorted(removed))
        if not self.subscription.granted:
            raise SubscriptionRejected(f"the live stream removed every channel: {why}", self.subscription.rejected)
        return Notice(f"the live stream removed {why}", self.subscription)


def _closed(exc: ConnectionClosed) -> Exception:
    """A closed connection: final (:class:`StreamClosed`) or to be reconnected."""
    if exc.rcvd is None:
        return _Retry("the connection dropped without a close frame")
    code, reason = exc.rcvd.code, exc.rcvd.reason
    if code in FINAL_CLOSE_CODES:
        detail = reason or _CLOSE_HINTS.get(code, "a final close code")
        return StreamClosed(f"the live stream closed for good ({code}): {detail}", code)
    return _Retry(f"the server closed the connection ({code}{': ' + reason if reason else ''})")


def _server_text(body: bytes | bytearray | None) -> str:
    """The server's own words from a refusal's body (its JSON ``error`` or
    ``message``), one line, short."""
    text = (body or b"").decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        text = str(parsed.get("error") or parsed.get("message") or "")
    return " ".join(text.split())[:200]


def _refusal(status: int, text: str) -> str:
    said = f" ({text})" if text else ""
    if status == 401:
        return f"the live stream refused the API key (401){said}: {KEY_HELP}"
    if status == 403:
        return f"your plan has no live data (403 from the live stream){said}; the REST files still load"
    if status == 426:
        return f"the live stream asks for a newer client (426 Upgrade Required){said}: upgrade aperiodic-jupyter"
    return f"the live stream refused the connection ({status}){said}"
