"""Deadlines and cancellation for one download, enforced inside httpx's blocking reads.

httpx has a per-read timeout but no budget for a whole file and no way to stop a read
from another thread. A :class:`Guard` set for the calling thread is checked between
chunks, before each attempt, while sleeping before a retry, and every ``POLL`` seconds
while a read blocks (the connections come from :func:`guarded_transport`)."""

from __future__ import annotations

import select
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from .http_policy import Transient

#: Seconds between two looks at the cancel flag and the deadline while a read blocks.
POLL = 0.2


class Slow(Transient):
    """A body arriving slower than ``min_rate`` over a window: retried (a new connection
    may do better) while the file's budget lasts."""


class Stalled(Exception):
    """The file's time budget is spent: final."""


class Cancelled(Exception):
    """The fetch was cancelled: nothing is retried, nothing more is handed over."""


class Expired(Exception):
    """The file host refused a presigned URL (403): it expired; ask the API for fresh
    URLs, never retry the dead one."""


def _size(n: float) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


class Guard:
    """What one thread checks between chunks, before each attempt, while sleeping
    before a retry, and every ``POLL`` seconds while a read blocks: the fetch's cancel
    flag and, for a file, its time budget and minimum rate.

    The budget runs from the first request of the file over all its attempts and waits:
    ``budget`` seconds, plus ``announced size / min_rate`` once a response announced a
    size. While a body arrives, every ``window`` seconds must bring ``min_rate ×
    window`` bytes.
    """

    def __init__(
        self,
        cancelled: Callable[[], bool],
        budget: float | None = None,
        min_rate: float = 0.0,
        window: float = 0.0,
    ) -> None:
        self.cancelled = cancelled
        self.start = time.monotonic()
        self.budget = budget
        self.deadline = None if budget is None else self.start + budget
        self.min_rate = min_rate
        self.window = window
        self._sized = False
        self._received = 0
        self._win_start: float | None = None  # None while no body is arriving
        self._win_bytes = 0

    def receiving(self, size: int | None) -> None:
        """Headers of a body arrived; ``size`` as announced, when it is."""
        if size is not None and not self._sized and self.budget is not None and self.min_rate > 0:
            self._sized = True
            self.budget += size / self.min_rate
            self.deadline = self.start + self.budget
        self._received = self._win_bytes = 0
        self._win_start = time.monotonic()

    def got(self, n: int) -> None:
        self._received += n

    def idle(self) -> None:
        self._win_start = None

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled()
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise Stalled(f"not complete within {self.budget:.1f} s")
        if self._win_start is not None and self.window > 0 and now - self._win_start >= self.window:
            span, got = now - self._win_start, self._received - self._win_bytes
            if got < self.min_rate * span:
                raise Slow(f"{_size(got)} in {span:.1f} s, below the minimum of {_size(self.min_rate)}/s")
            self._win_start, self._win_bytes = now, self._received

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, POLL))


_local = threading.local()


def current_guard() -> Guard | None:
    return getattr(_local, "guard", None)


@contextmanager
def guarded(guard: Guard) -> Iterator[Guard]:
    previous = current_guard()
    _local.guard = guard
    try:
        yield guard
    finally:
        _local.guard = previous


def guarded_sleep(seconds: float) -> None:
    """tenacity's sleep between attempts: cut short by a cancel or the file's budget."""
    guard = current_guard()
    if guard is None:
        time.sleep(seconds)
    else:
        guard.sleep(seconds)


#: Bytes one read of a connection may return. httpcore asks for 64 KiB; each read then
#: costs a pass through httpcore, h11 and httpx in Python, which at 1 GB/s makes
#: receiving a body CPU-bound: larger reads return what the socket holds in one pass.
READ_BYTES = 256 << 10


def _readable(sock: Any, timeout: float) -> bool:
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    return bool(select.select([sock], [], [], timeout)[0])


class _GuardedStream(httpcore.NetworkStream):
    """A connection whose blocking reads wake every ``POLL`` seconds to ask the calling
    thread's guard, so a cancel or a spent budget ends a read stuck on a silent host
    (an unguarded thread reads as usual)."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        max_bytes = max(max_bytes, READ_BYTES)
        guard = current_guard()
        sock = self._inner.get_extra_info("socket")
        if guard is not None and sock is not None:
            end = None if timeout is None else time.monotonic() + timeout
            while True:
                guard.check()
                slot = POLL if end is None else min(POLL, end - time.monotonic())
                if slot <= 0:
                    raise httpcore.ReadTimeout("timed out")
                if _readable(sock, slot):
                    break
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _GuardedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _GuardedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def guarded_transport(limits: httpx.Limits) -> httpx.HTTPTransport | None:
    """httpx's own transport over a pool of guarded connections, or None (httpx's
    default, reads not guarded) when the environment names a proxy, which httpx only
    honours for its default transport."""
    if urllib.request.getproxies():
        return None
    context = httpx.create_ssl_context()
    transport = httpx.HTTPTransport(verify=context, limits=limits)
    if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):  # pragma: no cover
        return None  # an httpx whose transport is built otherwise: keep its own
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_GuardedBackend(),
    )
    return transport
