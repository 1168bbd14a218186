"""A loopback stand-in for the Aperiodic live stream, following
``shared/api/price-preview-stream.md``.

A real WebSocket server (the ``websockets`` package) on 127.0.0.1, in a thread of its
own. Each connection plays the next :class:`Session` of the script (:meth:`FakeStream.
script`); when the script is used up, a connection is acknowledged and held open.

- The handshake checks ``X-API-KEY`` (401 otherwise) and can be refused with any status
  (``Session().refuse(429)``).
- The server reads the subscribe frame, then plays the session's steps: acknowledge
  (granting every channel but those ``reject`` names, with their codes), refuse the
  subscription (``op: error``), send bars, heartbeats, pongs, warnings, unknown ops,
  remove channels, wait, drop the TCP connection without a close frame, close with a
  code, or stay silent.
- Bars carry the same numbers as the REST loopback server's files
  (:func:`tests.server.synthetic_table`, bar ``i`` of the month has
  ``taker_buy_count == i``), so a test can check that a gap is filled from REST with
  exactly the bars the stream did not send. ``partial=True`` sends a still-open
  version of a bar (every value halved), as a stream re-publishing the open bar would.

Everything the server sees is recorded: the keys of the handshakes, the subscribe
frames, and the connections open now.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .server import API_KEY, synthetic_table

#: The server's logger name.
LOGGER = "fake-stream"

Step = Callable[["_Conn"], Awaitable[bool | None]]  # True: the session is over


def to_us(t: datetime) -> int:
    return int(round(t.replace(tzinfo=t.tzinfo or UTC).timestamp() * 1_000_000))


_days: dict[tuple, dict[datetime, dict[str, Any]]] = {}


def bar_row(dataset: str, exchange: str, symbol: str, interval: str, t: datetime) -> dict[str, Any] | None:
    """The row of the bar starting at ``t`` as the REST files of ``tests/server.py``
    have it (without ``time``), or ``None`` when they have none."""
    t = t.astimezone(UTC)
    key = (dataset, exchange, symbol, interval, "exchange", t.year, t.month, t.day)
    if key not in _days:
        table = synthetic_table(*key)
        rows = table.to_pylist() if table is not None else []
        _days[key] = {row.pop("time"): row for row in rows}
    row = _days[key].get(t.replace(tzinfo=None))
    return dict(row) if row is not None else None


@dataclass
class _Conn:
    ws: Any
    subscribe: dict[str, Any]
    granted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def channels(self) -> list[dict[str, Any]]:
        return [c for c in self.subscribe.get("channels", []) if isinstance(c, dict)]

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))


def _name(channel: Mapping[str, Any]) -> str:
    return f"{channel['dataset']}.{channel['exchange']}.{channel['interval']}"


class Session:
    """What the server does on one connection, step by step (methods chain)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.refusal: tuple[int, str] | None = None

    def refuse(self, status: int, error: str = "") -> Session:
        """Refuse the handshake with an HTTP status and a JSON ``error``."""
        self.refusal = (status, error or f"refused with {status}")
        return self

    def ack(self, *, reject: Mapping[str, str] | None = None) -> Session:
        """Acknowledge the subscription. ``reject`` maps an exchange (or a channel name)
        to a code: those channels are refused, the others granted."""
        reject = dict(reject or {})

        async def step(c: _Conn) -> None:
            granted, rejected = [], []
            for ch in c.channels:
                code = reject.get(_name(ch)) or reject.get(ch["exchange"])
                if code:
                    rejected.append(
                        {"channel": _name(ch), "code": code, "message": f"{ch['dataset']} is {code} on {ch['exchange']}"}
                    )
                else:
                    granted.append(ch)
            c.granted = granted
            await c.send(
                {"op": "subscribed", "id": c.subscribe.get("id"), "channels": [_name(g) for g in granted], "rejected": rejected}
            )

        self.steps.append(step)
        return self

    def refuse_subscription(self, code: str = "invalid_message", message: str = "malformed subscription") -> Session:
        """Refuse the whole subscription: ``{"op": "error", "id": ...}``."""

        async def step(c: _Conn) -> None:
            await c.send({"op": "error", "id": c.subscribe.get("id"), "code": code, "message": message})

        self.steps.append(step)
        return self

    def bars(self, *times: datetime, dataset: str | None = None, partial: bool = False, snapshot: bool = False) -> Session:
        """One data frame per bar time, per channel asked for (all granted channels
        once acknowledged; before that, every channel asked), per symbol; only
        ``dataset``'s channels if given. ``partial``: the bar as still open (values
        halved)."""

        async def step(c: _Conn) -> None:
            for t in times:
                for ch in c.granted or c.channels:
                    if dataset is not None and ch["dataset"] != dataset:
                        continue
                    for symbol in ch.get("symbols") or []:
                        row = bar_row(ch["dataset"], ch["exchange"], symbol, ch["interval"], t)
                        if row is None:
                            continue
                        if partial:
                            row = {k: (v // 2 if isinstance(v, int) else v / 2) for k, v in row.items()}
                        data = {"symbol": symbol, "interval": ch["interval"], "time": to_us(t), **row}
                        await c.send({"channel": _name(ch), "data": data, "snapshot": snapshot})

        self.steps.append(step)
        return self

    def send(self, frame: dict[str, Any] | str) -> Session:
        """Any frame, as is."""

        async def step(c: _Conn) -> None:
            await c.send(frame)

        self.steps.append(step)
        return self

    def heartbeat(self) -> Session:
        return self.send({"op": "heartbeat", "time": to_us(datetime.now(UTC))})

    def heartbeats(self, every: float, times: int) -> Session:
        """A heartbeat every ``every`` seconds, ``times`` times: a quiet but live socket."""
        for _ in range(times):
            self.wait(every).heartbeat()
        return self

    def warn(self, code: str, message: str) -> Session:
        """``{"op": "error"}`` without the subscription's id: a warning."""
        return self.send({"op": "error", "code": code, "message": message})

    def unsubscribe(self, channel: str, code: str = "not_entitled", message: str = "plan changed") -> Session:
        return self.send(
            {"op": "unsubscribed", "channels": [channel], "rejected": [{"channel": channel, "code": code, "message": message}]}
        )

    def wait(self, seconds: float) -> Session:
        async def step(c: _Conn) -> None:
            await asyncio.sleep(seconds)

        self.steps.append(step)
        return self

    def drop(self) -> Session:
        """Cut the TCP connection: no close frame."""

        async def step(c: _Conn) -> bool:
            c.ws.transport.abort()
            return True

        self.steps.append(step)
        return self

    def close(self, code: int, reason: str = "") -> Session:
        async def step(c: _Conn) -> bool:
            await c.ws.close(code, reason)
            return True

        self.steps.append(step)
        return self

    def hold(self) -> Session:
        """Stay open and silent until the client leaves (what a session ends with
        unless it drops or closes)."""

        async def step(c: _Conn) -> bool:
            await c.ws.wait_closed()
            return True

        self.steps.append(step)
        return self


class FakeStream:
    """The server. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.keys: list[str | None] = []  # X-API-KEY of every handshake
        self.subscriptions: list[dict[str, Any]] = []  # every subscribe frame received
        self.open = 0  # connections open now
        self._sessions: deque[Session] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/v1/stream"

    def script(self, *sessions: Session) -> None:
        """The sessions the next connections play, in order (replacing any left)."""
        with self._lock:
            self._sessions = deque(sessions)
            self.keys.clear()
            self.subscriptions.clear()

    def start(self) -> FakeStream:
        ready = threading.Event()

        def run() -> None:
            from websockets.asyncio.server import serve

            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                # Its own logger: what the server logs (the key it received, at DEBUG) is
                # not the client's doing.
                self._server = await serve(
                    self._handle,
                    "127.0.0.1",
                    0,
                    process_request=self._process_request,
                    logger=logging.getLogger(LOGGER),
                    compression=None,  # cheaper frames; the client works either way
                )
                self._port = self._server.sockets[0].getsockname()[1]
                ready.set()
                await self._server.wait_closed()

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-stream", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_session(self) -> Session:
        with self._lock:
            return self._sessions.popleft() if self._sessions else Session().ack().hold()

    def _process_request(self, connection: Any, request: Any) -> Any:
        key = request.headers.get("X-API-KEY")
        with self._lock:
            self.keys.append(key)
        session = self._next_session()
        if session.refusal is not None:
            status, error = session.refusal
            response = connection.respond(status, json.dumps({"error": error}))
            response.headers["Content-Type"] = "application/json"
            return response
        if key != self.api_key:
            return connection.respond(401, json.dumps({"error": "invalid API key"}))
        connection.session = session
        return None

    async def _handle(self, ws: Any) -> None:
        with self._lock:
            self.open += 1
        try:
            raw = await ws.recv()
            subscribe = json.loads(raw)
            with self._lock:
                self.subscriptions.append(subscribe)
            conn = _Conn(ws, subscribe)
            for step in ws.session.steps + [Session().hold().steps[0]]:
                if await step(conn):
                    break
        except Exception:  # the client left mid-script: that is a test's business
            pass
        finally:
            with self._lock:
                self.open -= 1
